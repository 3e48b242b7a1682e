/* loop.c: the daemon's one event loop: epoll, ZMQ_FD, a min-heap of timers. */
/*
 * czmq's zloop handed every socket of every session to zmq_poll on each
 * wake-up, so the cost of one message grew with the number of sessions
 * (docs/BENCHMARKS.md). Here epoll reports only what signalled; ZeroMQ
 * sockets join through ZMQ_FD, whose edge-triggered promise is kept by a
 * "check" list: a socket is on it when it may hold unread messages (a
 * batch left some, or someone sent on it), and the loop asks ZMQ_EVENTS
 * for those alone. Timers sit in a binary min-heap ordered by deadline,
 * then by creation, so equal deadlines fire in the order they were set.
 */

#include <sys/epoll.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <czmq.h>

#include "base.h"
#include "loop.h"

#define LOOP_EVENTS	256	/* epoll events taken per wake-up */


struct loop_io {
	int			 fd;
	uint32_t		 events;
	loop_io_cb		*cb;
	void			*arg;
	void			*zsock;		/* libzmq handle, or NULL */
	int			 dead;		/* removed; freed after the turn */
	int			 checking;	/* on loop_check */
	TAILQ_ENTRY(loop_io)	 check_entry;
	TAILQ_ENTRY(loop_io)	 dead_entry;
};
TAILQ_HEAD(loop_io_list, loop_io);

struct loop_timer {
	uint64_t		 when;		/* loop_now() ms */
	uint64_t		 seq;		/* ties: first set, first fired */
	loop_timer_cb		*cb;
	void			*arg;
	size_t			 slot;		/* index in loop_heap */
	int			 firing;	/* out of the heap, cb running */
	int			 cancelled;	/* while firing */
};

static int			 loop_fd = -1;
static int			 loop_quitting;
static uint64_t			 loop_clock;
static uint64_t			 loop_seq;
static struct loop_io_list	 loop_check = TAILQ_HEAD_INITIALIZER(loop_check);
static struct loop_io_list	 loop_dead = TAILQ_HEAD_INITIALIZER(loop_dead);
static struct loop_timer	**loop_heap;
static size_t			 loop_nheap, loop_heapsize;

static uint64_t
loop_clock_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

uint64_t
loop_now(void)
{
	if (loop_clock == 0)
		loop_clock = loop_clock_ms();
	return (loop_clock);
}

void
loop_init(void)
{
	if (loop_fd != -1)
		return;
	if ((loop_fd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	loop_clock = loop_clock_ms();
}

/* Descriptors. */

static void
loop_ctl(int op, struct loop_io *io)
{
	struct epoll_event	ev;

	memset(&ev, 0, sizeof ev);
	ev.events = io->events;
	ev.data.ptr = io;
	if (epoll_ctl(loop_fd, op, io->fd, &ev) != 0)
		fatal("epoll_ctl %d fd %d", op, io->fd);
}

struct loop_io *
loop_io_add(int fd, uint32_t events, loop_io_cb *cb, void *arg)
{
	struct loop_io	*io;

	loop_init();
	io = xcalloc(1, sizeof *io);
	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->arg = arg;
	loop_ctl(EPOLL_CTL_ADD, io);
	return (io);
}

void
loop_io_set(struct loop_io *io, uint32_t events)
{
	if (io == NULL || io->dead || io->events == events)
		return;
	io->events = events;
	loop_ctl(EPOLL_CTL_MOD, io);
}

/*
 * Out of the epoll set now (before the caller closes the descriptor: a
 * forked child holding a copy would keep the registration alive), freed
 * after this turn's callbacks, which may still hold the pointer.
 */
void
loop_io_remove(struct loop_io **iop)
{
	struct loop_io	*io = *iop;

	if (io == NULL)
		return;
	*iop = NULL;
	if (io->dead)
		return;
	io->dead = 1;
	if (epoll_ctl(loop_fd, EPOLL_CTL_DEL, io->fd, NULL) != 0 &&
	    errno != EBADF && errno != ENOENT)
		fatal("epoll_ctl del fd %d", io->fd);
	if (io->checking) {
		TAILQ_REMOVE(&loop_check, io, check_entry);
		io->checking = 0;
	}
	TAILQ_INSERT_TAIL(&loop_dead, io, dead_entry);
}

/* ZeroMQ sockets. */

struct loop_io *
loop_zsock_add(void *sock, loop_io_cb *cb, void *arg)
{
	struct loop_io	*io;
	void		*handle = zsock_resolve(sock);
	size_t		 len;
	int		 fd;

	len = sizeof fd;
	if (zmq_getsockopt(handle, ZMQ_FD, &fd, &len) != 0)
		fatalx("ZMQ_FD: %s", zmq_strerror(zmq_errno()));
	io = loop_io_add(fd, EPOLLIN | EPOLLET, cb, arg);
	io->zsock = handle;
	/* Messages may be queued already: their edge has passed. */
	loop_zsock_check(io);
	return (io);
}

/* It may hold unread messages: ask ZMQ_EVENTS before the next wait. */
void
loop_zsock_check(struct loop_io *io)
{
	if (io == NULL || io->dead || io->checking || io->zsock == NULL)
		return;
	io->checking = 1;
	TAILQ_INSERT_TAIL(&loop_check, io, check_entry);
}

static int
loop_zsock_readable(struct loop_io *io)
{
	uint32_t	ev = 0;
	size_t		len = sizeof ev;

	if (zmq_getsockopt(io->zsock, ZMQ_EVENTS, &ev, &len) != 0)
		return (0);
	return ((ev & ZMQ_POLLIN) != 0);
}

/* One batch if readable, then back on the check list if more is left. */
static void
loop_zsock_run(struct loop_io *io)
{
	if (!loop_zsock_readable(io))
		return;
	io->cb(io->fd, EPOLLIN, io->arg);
	if (!io->dead && loop_zsock_readable(io))
		loop_zsock_check(io);
}

/* The sockets that may hold messages, each once per turn. */
static void
loop_run_checks(void)
{
	struct loop_io_list	 now = TAILQ_HEAD_INITIALIZER(now);
	struct loop_io		*io;

	TAILQ_CONCAT(&now, &loop_check, check_entry);
	while ((io = TAILQ_FIRST(&now)) != NULL) {
		TAILQ_REMOVE(&now, io, check_entry);
		io->checking = 0;
		if (!io->dead)
			loop_zsock_run(io);
	}
}

/* Timers. */

static int
loop_before(struct loop_timer *a, struct loop_timer *b)
{
	return (a->when < b->when || (a->when == b->when && a->seq < b->seq));
}

static void
loop_heap_put(size_t i, struct loop_timer *t)
{
	loop_heap[i] = t;
	t->slot = i;
}

static void
loop_heap_up(size_t i)
{
	struct loop_timer	*t = loop_heap[i];
	size_t			 parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (!loop_before(t, loop_heap[parent]))
			break;
		loop_heap_put(i, loop_heap[parent]);
		i = parent;
	}
	loop_heap_put(i, t);
}

static void
loop_heap_down(size_t i)
{
	struct loop_timer	*t = loop_heap[i];
	size_t			 child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= loop_nheap)
			break;
		if (child + 1 < loop_nheap &&
		    loop_before(loop_heap[child + 1], loop_heap[child]))
			child++;
		if (!loop_before(loop_heap[child], t))
			break;
		loop_heap_put(i, loop_heap[child]);
		i = child;
	}
	loop_heap_put(i, t);
}

static void
loop_heap_delete(struct loop_timer *t)
{
	size_t			 i = t->slot;
	struct loop_timer	*last;

	last = loop_heap[--loop_nheap];
	if (i == loop_nheap)
		return;
	loop_heap_put(i, last);
	if (i > 0 && loop_before(last, loop_heap[(i - 1) / 2]))
		loop_heap_up(i);
	else
		loop_heap_down(i);
}

struct loop_timer *
loop_timer_add(uint64_t ms, loop_timer_cb *cb, void *arg)
{
	struct loop_timer	*t;

	t = xcalloc(1, sizeof *t);
	t->when = loop_now() + ms;
	t->seq = loop_seq++;
	t->cb = cb;
	t->arg = arg;
	if (loop_nheap == loop_heapsize) {
		loop_heapsize = loop_heapsize == 0 ? 64 : loop_heapsize * 2;
		loop_heap = xrealloc(loop_heap, loop_heapsize *
		    sizeof *loop_heap);
	}
	loop_heap[loop_nheap++] = t;
	loop_heap_up(loop_nheap - 1);
	return (t);
}

void
loop_timer_cancel(struct loop_timer **tp)
{
	struct loop_timer	*t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	if (t->firing) {
		t->cancelled = 1;	/* freed when its callback returns */
		return;
	}
	loop_heap_delete(t);
	free(t);
}

/* Every timer due by now; one added meanwhile for now waits a turn. */
static void
loop_run_timers(void)
{
	struct loop_timer	*t;
	uint64_t		 last = loop_seq;

	while (loop_nheap > 0 && !loop_quitting) {
		t = loop_heap[0];
		if (t->when > loop_now() || t->seq >= last)
			break;
		loop_heap_delete(t);
		t->firing = 1;
		t->cb(t->arg);
		free(t);
	}
}

/* ms to wait: 0 with sockets to check, -1 with no timer, else the next. */
static int
loop_timeout(void)
{
	uint64_t	now = loop_now(), when;

	if (!TAILQ_EMPTY(&loop_check))
		return (0);
	if (loop_nheap == 0)
		return (-1);
	when = loop_heap[0]->when;
	if (when <= now)
		return (0);
	return (when - now > INT32_MAX ? INT32_MAX : (int)(when - now));
}

static void
loop_reap(void)
{
	struct loop_io	*io;

	while ((io = TAILQ_FIRST(&loop_dead)) != NULL) {
		TAILQ_REMOVE(&loop_dead, io, dead_entry);
		free(io);
	}
}

static void
loop_dispatch(struct epoll_event *ev)
{
	struct loop_io	*io = ev->data.ptr;

	if (io->dead)
		return;
	if (io->zsock != NULL) {
		/* Not on the check list now: this wake-up is its check. */
		if (io->checking) {
			TAILQ_REMOVE(&loop_check, io, check_entry);
			io->checking = 0;
		}
		loop_zsock_run(io);
	} else
		io->cb(io->fd, ev->events, io->arg);
}

/* Until loop_quit; 0, or -1 if epoll itself failed. */
int
loop_run(void)
{
	struct epoll_event	 evs[LOOP_EVENTS];
	int			 n, i;

	loop_init();
	loop_quitting = 0;
	while (!loop_quitting) {
		n = epoll_wait(loop_fd, evs, nitems(evs), loop_timeout());
		loop_clock = loop_clock_ms();
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			return (-1);
		}
		for (i = 0; i < n && !loop_quitting; i++)
			loop_dispatch(&evs[i]);
		if (!loop_quitting)
			loop_run_checks();
		loop_run_timers();
		loop_reap();
	}
	return (0);
}

void
loop_quit(void)
{
	loop_quitting = 1;
}

/* Daemon exit: whatever is still registered belongs to nobody now. */
void
loop_free(void)
{
	struct loop_io	*io;

	while ((io = TAILQ_FIRST(&loop_check)) != NULL) {
		TAILQ_REMOVE(&loop_check, io, check_entry);
		io->checking = 0;
	}
	loop_reap();
	while (loop_nheap > 0)
		free(loop_heap[--loop_nheap]);
	free(loop_heap);
	loop_heap = NULL;
	loop_heapsize = 0;
	if (loop_fd != -1)
		close(loop_fd);
	loop_fd = -1;
}
