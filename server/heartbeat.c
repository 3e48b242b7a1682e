/* heartbeat.c: one thread that echoes every endpoint's heartbeat socket. */
/*
 * Heartbeats live on their own thread so that a busy loop never looks like
 * a dead kernel. The sockets are our own ZMTP echo sockets (wire.c) in
 * this thread's own poll loop. The main thread binds each listening
 * descriptor and hands it over without waiting (a `new` must not wait for
 * a thread that polls every session's heartbeat: docs/BENCHMARKS.md,
 * section 6); the actor owns the sockets from then on.
 */

#include <sys/epoll.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

#define HEARTBEAT_MAX	4096	/* bytes of one ping */

static zactor_t	*heartbeat_actor;

/*
 * The thread's own loop for its struct wire_loop: an epoll set of its own
 * (a ping wakes it for that connection alone, not a poll over every
 * session's socket) plus the actor's pipe through its ZMQ_FD, which is
 * edge-triggered: commands are read until the pipe says it has none.
 * Removed entries are freed after each pass, so a callback may remove any
 * entry, its own included.
 */
#define HEARTBEAT_EVENTS	64	/* epoll events per wake-up */

struct heartbeat_io {
	int			 fd;
	int			 dead;	/* removed: freed after the pass */
	wire_io_cb		*cb;
	void			*arg;
	TAILQ_ENTRY(heartbeat_io) entry;
};

struct heartbeat_poll {
	int			 epfd;
	TAILQ_HEAD(, heartbeat_io) dead;
};

static void	heartbeat_run(zsock_t *, void *);
static int	heartbeat_command(zsock_t *, struct wire_loop *, zhashx_t *);
static void	heartbeat_pass(zsock_t *, struct wire_loop *, int *);

static void
heartbeat_ctl(struct heartbeat_poll *hp, int op, struct heartbeat_io *io,
    uint32_t events)
{
	struct epoll_event	ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = io;
	if (epoll_ctl(hp->epfd, op, io->fd, &ev) != 0)
		fatal("heartbeat: epoll_ctl %d fd %d", op, io->fd);
}

static void *
heartbeat_io_add(struct wire_loop *loop, int fd, uint32_t events,
    wire_io_cb *cb, void *arg)
{
	struct heartbeat_io	*io;

	io = xcalloc(1, sizeof *io);
	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	heartbeat_ctl(loop->data, EPOLL_CTL_ADD, io, events);
	return (io);
}

static void
heartbeat_io_set(struct wire_loop *loop, void *p, uint32_t events)
{
	heartbeat_ctl(loop->data, EPOLL_CTL_MOD, p, events);
}

static void
heartbeat_io_remove(struct wire_loop *loop, void *p)
{
	struct heartbeat_poll	*hp = loop->data;
	struct heartbeat_io	*io = p;

	/* Out of the set before the caller closes the descriptor. */
	if (epoll_ctl(hp->epfd, EPOLL_CTL_DEL, io->fd, NULL) != 0 &&
	    errno != EBADF && errno != ENOENT)
		fatal("heartbeat: epoll_ctl del fd %d", io->fd);
	io->dead = 1;
	TAILQ_INSERT_TAIL(&hp->dead, io, entry);
}

static void
heartbeat_reap(struct heartbeat_poll *hp)
{
	struct heartbeat_io	*io;

	while ((io = TAILQ_FIRST(&hp->dead)) != NULL) {
		TAILQ_REMOVE(&hp->dead, io, entry);
		free(io);
	}
}

/* One epoll_wait and its callbacks; *stop set when the actor must end. */
static void
heartbeat_pass(zsock_t *pipe, struct wire_loop *loop, int *stop)
{
	struct heartbeat_poll	*hp = loop->data;
	struct epoll_event	 evs[HEARTBEAT_EVENTS];
	struct heartbeat_io	*io;
	int			 n, i;

	/*
	 * The pipe's edge: read it empty before each wait (our own signal
	 * at start may have taken the edge of a command already there).
	 */
	while (zsock_events(pipe) & ZMQ_POLLIN) {
		if (heartbeat_command(pipe, loop, loop->data2) != 0) {
			*stop = 1;
			return;
		}
	}
	n = epoll_wait(hp->epfd, evs, nitems(evs), -1);
	if (n == -1 && errno != EINTR) {
		*stop = 1;
		return;
	}
	for (i = 0; i < n; i++) {
		io = evs[i].data.ptr;
		if (io != NULL && !io->dead)
			io->cb(io->fd, evs[i].events, io->arg);
	}
	heartbeat_reap(hp);
}

static void
heartbeat_run(zsock_t *pipe, void *arg)
{
	struct heartbeat_poll	 hp;
	struct epoll_event	 ev;
	struct wire_loop	 loop = {
		.add = heartbeat_io_add,
		.set = heartbeat_io_set,
		.remove = heartbeat_io_remove,
		.data = &hp,
	};
	zhashx_t		*wires;		/* endpoint -> struct wire */
	struct wire		*w;
	int			 stop = 0;

	(void)arg;
	if ((hp.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("heartbeat: epoll_create1");
	TAILQ_INIT(&hp.dead);
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;	/* data.ptr NULL: the pipe */
	if (epoll_ctl(hp.epfd, EPOLL_CTL_ADD, zsock_fd(pipe), &ev) != 0)
		fatal("heartbeat: epoll_ctl pipe");
	/* Pings are tiny: a few of them unfinished is all there may be. */
	wire_loop_init(&loop, 16 * HEARTBEAT_MAX);
	wires = zhashx_new();
	loop.data2 = wires;
	zsock_signal(pipe, 0);
	while (!stop)
		heartbeat_pass(pipe, &loop, &stop);
	for (w = zhashx_first(wires); w != NULL; w = zhashx_next(wires))
		wire_destroy(&w);
	zhashx_destroy(&wires);
	heartbeat_reap(&hp);
	close(hp.epfd);
	wire_loop_free(&loop);
}

static int
heartbeat_command(zsock_t *pipe, struct wire_loop *loop, zhashx_t *wires)
{
	char		*cmd = NULL, *ep = NULL;
	struct wire	*w;
	int		 fd = -1;

	if (zsock_recv(pipe, "ssi", &cmd, &ep, &fd) != 0 || cmd == NULL ||
	    strcmp(cmd, "$TERM") == 0) {
		zstr_free(&cmd);
		zstr_free(&ep);
		return (-1);
	}
	if (strcmp(cmd, "ADD") == 0 && ep != NULL && fd != -1) {
		/* Bound by the main thread, handed over through this pipe. */
		w = wire_adopt(loop, WIRE_ECHO, fd, ep, HEARTBEAT_MAX, NULL,
		    NULL);
		zhashx_insert(wires, wire_endpoint(w), w);
	} else if (strcmp(cmd, "UNBIND") == 0 && ep != NULL &&
	    (w = zhashx_lookup(wires, ep)) != NULL) {
		zhashx_delete(wires, ep);
		wire_destroy(&w);
	}
	zstr_free(&cmd);
	zstr_free(&ep);
	return (0);
}

int
heartbeat_start(char **cause)
{
	heartbeat_actor = zactor_new(heartbeat_run, NULL);
	if (heartbeat_actor == NULL) {
		*cause = xstrdup("cannot start heartbeat thread");
		return (-1);
	}
	return (0);
}

void
heartbeat_stop(void)
{
	zactor_destroy(&heartbeat_actor);
}

/*
 * Bind a heartbeat endpoint; *bound gets the actual endpoint. The
 * descriptor is bound here and handed to the thread without waiting.
 */
int
heartbeat_bind(const char *ep, char **bound, char **cause)
{
	char	*why = NULL;
	int	 fd;

	if ((fd = wire_listen(ep, bound, &why)) == -1) {
		xasprintf(cause, "heartbeat %s: %s", ep, why);
		free(why);
		return (-1);
	}
	zsock_send(heartbeat_actor, "ssi", "ADD", *bound, fd);
	return (0);
}

void
heartbeat_unbind(const char *bound)
{
	if (heartbeat_actor != NULL)
		zsock_send(heartbeat_actor, "ssi", "UNBIND", bound, -1);
}
