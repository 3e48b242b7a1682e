/* heartbeat.c: one thread that echoes every endpoint's heartbeat socket. */
/*
 * Heartbeats live on their own thread so that a busy loop never looks like
 * a dead kernel. The sockets are our own ZMTP echo sockets (wire.c) in
 * this thread's own poll loop. The main thread binds each listening
 * descriptor and hands it over without waiting (a `new` must not wait for
 * a thread that polls every session's heartbeat: docs/BENCHMARKS.md,
 * section 6); the actor owns the sockets from then on.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

#define HEARTBEAT_MAX	4096	/* bytes of one ping */

static zactor_t	*heartbeat_actor;

/*
 * The thread's own loop for its struct wire_loop: a zmq_poll over the
 * actor's pipe and every descriptor. Removed entries are compacted after
 * each pass so a callback may remove any entry, its own included.
 */
struct heartbeat_io {
	int		 fd;		/* -1: removed */
	uint32_t	 events;
	wire_io_cb	*cb;
	void		*arg;
};

struct heartbeat_poll {
	struct heartbeat_io	**ios;
	size_t			  n, cap;
};

static void	heartbeat_run(zsock_t *, void *);
static int	heartbeat_command(zsock_t *, struct wire_loop *, zhashx_t *);
static void	heartbeat_pass(zsock_t *, struct wire_loop *, int *);

static void *
heartbeat_io_add(struct wire_loop *loop, int fd, uint32_t events,
    wire_io_cb *cb, void *arg)
{
	struct heartbeat_poll	*hp = loop->data;
	struct heartbeat_io	*io;

	if (hp->n == hp->cap) {
		hp->cap = hp->cap ? hp->cap * 2 : 16;
		hp->ios = xrealloc(hp->ios, hp->cap * sizeof *hp->ios);
	}
	io = xcalloc(1, sizeof *io);
	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->arg = arg;
	hp->ios[hp->n++] = io;
	return (io);
}

static void
heartbeat_io_set(struct wire_loop *loop, void *p, uint32_t events)
{
	struct heartbeat_io	*io = p;

	(void)loop;
	io->events = events;
}

static void
heartbeat_io_remove(struct wire_loop *loop, void *p)
{
	struct heartbeat_io	*io = p;

	(void)loop;
	io->fd = -1;	/* freed by the compaction after this pass */
}

/* One zmq_poll and its callbacks; *stop set when the actor must end. */
static void
heartbeat_pass(zsock_t *pipe, struct wire_loop *loop, int *stop)
{
	struct heartbeat_poll	*hp = loop->data;
	zmq_pollitem_t		*items;
	struct heartbeat_io	*io;
	size_t			 i, n = hp->n, j;
	uint32_t		 ev;

	items = xcalloc(n + 1, sizeof *items);
	items[0].socket = zsock_resolve(pipe);
	items[0].events = ZMQ_POLLIN;
	for (i = 0; i < n; i++) {
		items[i + 1].fd = hp->ios[i]->fd;
		items[i + 1].events = (hp->ios[i]->events & WIRE_IN ?
		    ZMQ_POLLIN : 0) | (hp->ios[i]->events & WIRE_OUT ?
		    ZMQ_POLLOUT : 0);
	}
	if (zmq_poll(items, n + 1, -1) == -1) {
		if (zmq_errno() != EINTR)
			*stop = 1;
		free(items);
		return;
	}
	for (i = 0; i < n; i++) {
		io = hp->ios[i];
		if (io->fd == -1 || items[i + 1].revents == 0)
			continue;
		ev = (items[i + 1].revents & ZMQ_POLLIN ? WIRE_IN : 0) |
		    (items[i + 1].revents & ZMQ_POLLOUT ? WIRE_OUT : 0) |
		    (items[i + 1].revents & ZMQ_POLLERR ? WIRE_ERR : 0);
		io->cb(io->fd, ev, io->arg);
	}
	for (i = j = 0; i < hp->n; i++) {
		if (hp->ios[i]->fd == -1)
			free(hp->ios[i]);
		else
			hp->ios[j++] = hp->ios[i];
	}
	hp->n = j;
	if ((items[0].revents & ZMQ_POLLIN) &&
	    heartbeat_command(pipe, loop, loop->data2) != 0)
		*stop = 1;
	free(items);
}

static void
heartbeat_run(zsock_t *pipe, void *arg)
{
	struct heartbeat_poll	 hp = { NULL, 0, 0 };
	struct wire_loop	 loop = {
		.add = heartbeat_io_add,
		.set = heartbeat_io_set,
		.remove = heartbeat_io_remove,
		.data = &hp,
	};
	zhashx_t		*wires;		/* endpoint -> struct wire */
	struct wire		*w;
	size_t			 i;
	int			 stop = 0;

	(void)arg;
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
	for (i = 0; i < hp.n; i++)
		free(hp.ios[i]);
	free(hp.ios);
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
