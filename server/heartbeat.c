/* heartbeat.c: one thread that echoes every endpoint's heartbeat socket. */
/*
 * Heartbeats live on their own thread so that a busy loop never looks like
 * a dead kernel. ZeroMQ sockets belong to the thread that uses them: the
 * main thread binds each and hands it over; the actor owns it from then
 * on, and destroys it when asked to unbind.
 */

#include <string.h>

#include "server.h"

static zactor_t	*heartbeat_actor;

static void	heartbeat_run(zsock_t *, void *);
static int	heartbeat_command(zsock_t *, zpoller_t *, zhashx_t *);

static void
heartbeat_run(zsock_t *pipe, void *arg)
{
	zpoller_t	*poller;
	zhashx_t	*socks;		/* endpoint -> zsock_t */
	zsock_t		*which, *s;
	zmsg_t		*m;

	(void)arg;
	poller = zpoller_new(pipe, NULL);
	socks = zhashx_new();
	zsock_signal(pipe, 0);
	for (;;) {
		which = zpoller_wait(poller, -1);
		if (which == NULL)
			break;
		if (which == pipe) {
			if (heartbeat_command(pipe, poller, socks) != 0)
				break;
			continue;
		}
		/* ROUTER echo: the identity frame routes it back. */
		if ((m = zmsg_recv(which)) != NULL)
			zmsg_send(&m, which);
	}
	for (s = zhashx_first(socks); s != NULL; s = zhashx_next(socks))
		zsock_destroy(&s);
	zhashx_destroy(&socks);
	zpoller_destroy(&poller);
}

static int
heartbeat_command(zsock_t *pipe, zpoller_t *poller, zhashx_t *socks)
{
	char	*cmd = NULL, *ep = NULL;
	void	*ptr = NULL;
	zsock_t	*s;

	if (zsock_recv(pipe, "ssp", &cmd, &ep, &ptr) != 0 || cmd == NULL ||
	    strcmp(cmd, "$TERM") == 0) {
		zstr_free(&cmd);
		zstr_free(&ep);
		return (-1);
	}
	if (strcmp(cmd, "ADD") == 0 && ep != NULL && ptr != NULL) {
		/* Bound by the main thread, handed over through this pipe. */
		s = ptr;
		zhashx_insert(socks, ep, s);
		zpoller_add(poller, s);
	} else if (strcmp(cmd, "UNBIND") == 0 && ep != NULL &&
	    (s = zhashx_lookup(socks, ep)) != NULL) {
		zpoller_remove(poller, s);
		zhashx_delete(socks, ep);
		zsock_destroy(&s);
	}
	zstr_free(&cmd);
	zstr_free(&ep);
	return (0);
}

/*
 * Bind through libzmq, not zsock_bind: for "tcp://IP:*" czmq tries ports
 * one by one from 49152 up (a bind and a netlink dump each), so a `new`
 * got slower with every port in use; libzmq binds port 0 and the kernel
 * picks a free one at once.  Returns the endpoint bound (allocated), or
 * NULL with zmq_errno() set.
 */
char *
heartbeat_zbind(zsock_t *s, const char *ep)
{
	if (zmq_bind(zsock_resolve(s), ep) != 0)
		return (NULL);
	return (zsock_last_endpoint(s));
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
 * Bind a heartbeat endpoint; *bound gets the actual endpoint. The socket
 * is made and bound here and handed to the thread without waiting for it:
 * a `new` must not wait for a thread that polls every session's heartbeat
 * socket (docs/BENCHMARKS.md, section 6). The pipe's handover is the full
 * memory barrier ZeroMQ asks for when a socket changes threads.
 */
int
heartbeat_bind(const char *ep, char **bound, char **cause)
{
	zsock_t	*s;
	char	*b;

	s = zsock_new(ZMQ_ROUTER);
	if (s == NULL) {
		xasprintf(cause, "heartbeat %s: cannot create a socket", ep);
		return (-1);
	}
	zsock_set_linger(s, 0);
	zsock_set_maxmsgsize(s, 4096);
	if ((b = heartbeat_zbind(s, ep)) == NULL) {
		xasprintf(cause, "heartbeat %s: %s", ep,
		    zmq_strerror(zmq_errno()));
		zsock_destroy(&s);
		return (-1);
	}
	*bound = xstrdup(b);
	zstr_free(&b);
	zsock_send(heartbeat_actor, "ssp", "ADD", *bound, s);
	return (0);
}

void
heartbeat_unbind(const char *bound)
{
	if (heartbeat_actor != NULL)
		zsock_send(heartbeat_actor, "ssp", "UNBIND", bound, NULL);
}
