/* loop.h: the daemon's one event loop: descriptors, ZeroMQ sockets, timers. */
/*
 * One epoll set for everything the daemon waits on: raw descriptors
 * (control connections, session channels, the signalfd, the zygote, and
 * the HTTP front's), ZeroMQ sockets through their ZMQ_FD, and one-shot
 * timers in a min-heap. A wake-up costs what signalled, never the number
 * of sessions (docs/ARCHITECTURE.md, "The loop").
 *
 * Rules:
 * - Callbacks run on the one daemon thread; none may block.
 * - loop_io_remove and loop_timer_cancel are safe from inside any callback,
 *   including the object's own; the memory is freed after the callback.
 * - A timer is one-shot: once its callback has run it is gone, so the
 *   callback must forget (NULL) its owner's pointer to it, or cancel it
 *   (harmless while it fires). Repeat by adding a new one.
 * - A ZeroMQ socket's ZMQ_FD is edge-triggered: the loop calls the
 *   callback while ZMQ_EVENTS says readable, one batch per call, and comes
 *   back next turn if the callback left messages. Anyone who sends on a
 *   socket that is also read must call loop_zsock_check afterwards: a send
 *   can consume the edge of messages that arrived meanwhile.
 */
#ifndef CELLBLOCK_LOOP_H
#define CELLBLOCK_LOOP_H

#include <stdint.h>

struct loop_io;
struct loop_timer;

/* events: EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP (sys/epoll.h). */
typedef void	 loop_io_cb(int, uint32_t, void *);
typedef void	 loop_timer_cb(void *);

/* server/loop.c */
void		 loop_init(void);
void		 loop_free(void);
struct loop_io	*loop_io_add(int, uint32_t, loop_io_cb *, void *);
void		 loop_io_set(struct loop_io *, uint32_t);
void		 loop_io_remove(struct loop_io **);
struct loop_io	*loop_zsock_add(void *, loop_io_cb *, void *);
void		 loop_zsock_check(struct loop_io *);
struct loop_timer *loop_timer_add(uint64_t, loop_timer_cb *, void *);
void		 loop_timer_cancel(struct loop_timer **);
uint64_t	 loop_now(void);
int		 loop_run(void);
void		 loop_quit(void);

#endif
