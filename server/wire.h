/* wire.h: our own ZeroMQ server sockets (ROUTER, PUB, echo) with byte budgets. */
/*
 * A struct wire runs in a struct wire_loop: the daemon's (wire_main, on
 * server/loop.c) or the heartbeat thread's own poll. The loop's three
 * operations take and give epoll's event bits (WIRE_IN = EPOLLIN, ...),
 * so wire_main maps straight onto loop_io_add/set/remove. The budget is
 * what all unfinished messages of the loop's connections may hold.
 */
#ifndef CELLBLOCK_WIRE_H
#define CELLBLOCK_WIRE_H

#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <czmq.h>

#include "loop.h"

#define WIRE_IN		EPOLLIN
#define WIRE_OUT	EPOLLOUT
#define WIRE_ERR	(EPOLLERR | EPOLLHUP)

enum wire_kind { WIRE_ROUTER, WIRE_PUB, WIRE_ECHO };
struct wire;
struct wire_conn;
typedef loop_io_cb	 wire_io_cb;
typedef void		 wire_msg_cb(struct wire *, zmsg_t *, void *);

struct wire_loop {
	void	*(*add)(struct wire_loop *, int, uint32_t, wire_io_cb *,
		    void *);
	void	 (*set)(struct wire_loop *, void *, uint32_t);
	void	 (*remove)(struct wire_loop *, void *);
	void	*data;				/* the loop's own */
	void	*data2;
	TAILQ_HEAD(, wire_conn) conns;		/* every connection in it */
	size_t	 held;				/* unfinished messages, bytes */
	size_t	 budget;
	u_char	*buf;				/* one read's */
};

/* server/wire.c */
extern struct wire_loop wire_main;
void		 wire_loop_init(struct wire_loop *, size_t);
void		 wire_loop_free(struct wire_loop *);
int		 wire_listen(const char *, char **, char **);
struct wire	*wire_new(struct wire_loop *, enum wire_kind, const char *,
		     size_t, wire_msg_cb *, void *, char **);
struct wire	*wire_adopt(struct wire_loop *, enum wire_kind, int,
		     const char *, size_t, wire_msg_cb *, void *);
void		 wire_destroy(struct wire **);
const char	*wire_endpoint(struct wire *);
void		 wire_set_label(struct wire *, const char *);
int		 wire_send(struct wire *, zmsg_t **);
u_int		 wire_pub_dropped(struct wire *);
u_int		 wire_connections(struct wire *);

#endif
