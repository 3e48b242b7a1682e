/* heartbeat.c: one thread that echoes every endpoint's heartbeat socket. */
/*
 * Heartbeats live on their own thread so that a busy loop never looks like
 * a dead kernel. ZeroMQ sockets belong to the thread that uses them, so the
 * main thread asks this actor to bind and unbind; the actor owns them all.
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
	char	*cmd = NULL, *ep = NULL, *bound;
	zsock_t	*s;

	if (zstr_recvx(pipe, &cmd, &ep, NULL) < 1 || strcmp(cmd, "$TERM") == 0) {
		zstr_free(&cmd);
		zstr_free(&ep);
		return (-1);
	}
	if (strcmp(cmd, "BIND") == 0) {
		s = zsock_new(ZMQ_ROUTER);
		zsock_set_linger(s, 0);
		zsock_set_maxmsgsize(s, 4096);
		if ((bound = heartbeat_zbind(s, ep)) == NULL) {
			zstr_sendx(pipe, "ERR", zmq_strerror(zmq_errno()), NULL);
			zsock_destroy(&s);
		} else {
			zhashx_insert(socks, bound, s);
			zpoller_add(poller, s);
			zstr_sendx(pipe, "OK", bound, NULL);
			zstr_free(&bound);
		}
	} else if (strcmp(cmd, "UNBIND") == 0 &&
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

/* Bind a heartbeat endpoint; *bound gets the actual endpoint. */
int
heartbeat_bind(const char *ep, char **bound, char **cause)
{
	char	*status = NULL, *what = NULL;
	int	 r = -1;

	zstr_sendx(heartbeat_actor, "BIND", ep, NULL);
	if (zstr_recvx(heartbeat_actor, &status, &what, NULL) == 2 &&
	    strcmp(status, "OK") == 0) {
		*bound = xstrdup(what);
		r = 0;
	} else
		xasprintf(cause, "heartbeat %s: %s", ep, what ? what : "?");
	zstr_free(&status);
	zstr_free(&what);
	return (r);
}

void
heartbeat_unbind(const char *bound)
{
	if (heartbeat_actor != NULL)
		zstr_sendx(heartbeat_actor, "UNBIND", bound, NULL);
}
