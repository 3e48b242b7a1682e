/* endpoint.c: a Jupyter endpoint: shell, control, stdin, iopub, heartbeat. */
/*
 * Each session has its own endpoint and key; the shared endpoint is one
 * more whose header.session field selects the session (kernel.c). This
 * file owns the sockets: binding, reading and decoding, sending. Decoding
 * failures are logged once each and the message dropped.
 */

#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"

#define ENDPOINT_BATCH		64	/* messages read per wakeup per socket */
#define ENDPOINT_BIND_TRIES	20	/* 50 ms apart: a restart's ports */
#define ENDPOINT_DROP_LINES	5	/* dropped messages logged per second */

struct endpoint *endpoint_shared;
static zlist_t	*endpoint_closed;	/* closed, not yet reaped */

static const char *endpoint_names[] = { "shell", "control", "stdin" };

static void	endpoint_dropped(struct endpoint *, int, const char *);
static void	endpoint_drop_summary(void *);
static int	endpoint_bind(zsock_t *, struct conninfo *, int, char **);

static const char *
endpoint_label(struct endpoint *ep)
{
	return (ep->session != NULL ? ep->session->name : "shared");
}

zsock_t *
endpoint_socket(struct endpoint *ep, int which)
{
	switch (which) {
	case EP_SHELL:
		return (ep->shell);
	case EP_CONTROL:
		return (ep->control);
	case EP_STDIN:
		return (ep->stdin_);
	}
	fatalx("bad endpoint socket %d", which);
}

/* One batch from one socket; the loop comes back if more is waiting. */
static void
endpoint_readable(struct endpoint *ep, int which)
{
	zsock_t		*s = endpoint_socket(ep, which);
	struct jmsg	*jm;
	zmsg_t		*m;
	char		*cause;
	int		 n;

	for (n = 0; n < ENDPOINT_BATCH; n++) {
		if ((zsock_events(s) & ZMQ_POLLIN) == 0)
			break;
		if ((m = zmsg_recv(s)) == NULL)
			break;
		jm = jmsg_decode(&m, ep->sign, cfg.max_message, &cause);
		if (jm == NULL) {
			endpoint_dropped(ep, which, cause);
			free(cause);
			continue;
		}
		log_debug("%s: %s: %s", endpoint_label(ep),
		    endpoint_names[which], jm->msg_type);
		kernel_receive(ep, which, jm);
		/* kernel_receive may have closed this endpoint. */
		if (ep->closed)
			return;
	}
}

static void
endpoint_shell_event(int fd, uint32_t events, void *arg)
{
	(void)fd;
	(void)events;
	endpoint_readable(arg, EP_SHELL);
}

static void
endpoint_control_event(int fd, uint32_t events, void *arg)
{
	(void)fd;
	(void)events;
	endpoint_readable(arg, EP_CONTROL);
}

static void
endpoint_stdin_event(int fd, uint32_t events, void *arg)
{
	(void)fd;
	(void)events;
	endpoint_readable(arg, EP_STDIN);
}

/* Legend: the loop's callback for each socket read, by EP_*. */
static loop_io_cb *const endpoint_events[] = {
	endpoint_shell_event, endpoint_control_event, endpoint_stdin_event
};

/*
 * A peer can send bad messages as fast as the loop reads them (anyone can
 * connect; only the key's holders can sign). Log the first few each
 * second one by one and count the rest, so a flood of bad signatures
 * cannot fill the disk through the log or slow the loop down with writes;
 * the count and the last cause follow in one line a second later.
 */
static void
endpoint_dropped(struct endpoint *ep, int which, const char *cause)
{
	uint64_t now = loop_now();

	if (now - ep->drop_window >= 1000) {
		ep->drop_window = now;
		ep->drop_logged = 0;
	}
	if (ep->drop_logged < ENDPOINT_DROP_LINES) {
		ep->drop_logged++;
		log_warn("%s: %s: dropped message: %s", endpoint_label(ep),
		    endpoint_names[which], cause);
		return;
	}
	snprintf(ep->drop_last, sizeof ep->drop_last, "%s: %s",
	    endpoint_names[which], cause);
	if (ep->drop_quiet++ == 0)
		ep->drop_timer = loop_timer_add(1000, endpoint_drop_summary,
		    ep);
}

static void
endpoint_drop_summary(void *arg)
{
	struct endpoint	*ep = arg;

	ep->drop_timer = NULL;
	log_warn("%s: dropped %u more messages in the last second, not "
	    "logged one by one (the last: %s)", endpoint_label(ep),
	    ep->drop_quiet, ep->drop_last);
	ep->drop_quiet = 0;
}

/*
 * libzmq refuses a frame over ZMQ_MAXMSGSIZE by closing the connection,
 * silently. With -v, a monitor on shell and control turns that into a log
 * line; libzmq does not say why a connection closed, so the line says both.
 */
static void
endpoint_monitor_event(int fd, uint32_t events, void *arg)
{
	struct endpoint	*ep = arg;
	zmsg_t		*m;
	int		 i;

	(void)fd;
	(void)events;
	for (i = 0; i < 2; i++) {
		if (ep->mon[i] == NULL ||
		    (zsock_events(ep->mon[i]) & ZMQ_POLLIN) == 0 ||
		    (m = zmsg_recv(ep->mon[i])) == NULL)
			continue;
		log_info("%s: %s: a client connection closed (by the client, "
		    "or by us for a protocol error or a frame over the "
		    "%zu-byte max-message limit)", endpoint_label(ep), i == 0 ?
		    "shell" : "control", cfg.max_message);
		zmsg_destroy(&m);
	}
}

static zsock_t *
endpoint_monitor(struct endpoint *ep, zsock_t *s, struct loop_io **iop)
{
	static u_int	 n;
	char		 addr[64];
	zsock_t		*pair;

	snprintf(addr, sizeof addr, "inproc://cellblock-monitor-%u", n++);
	if (zmq_socket_monitor(zsock_resolve(s), addr,
	    ZMQ_EVENT_DISCONNECTED) != 0)
		return (NULL);
	pair = zsock_new(ZMQ_PAIR);
	zsock_set_linger(pair, 0);
	if (zsock_connect(pair, "%s", addr) != 0) {
		zsock_destroy(&pair);
		return (NULL);
	}
	*iop = loop_zsock_add(pair, endpoint_monitor_event, ep);
	return (pair);
}

/*
 * Bind through libzmq, not zsock_bind: for "tcp://IP:*" czmq tries ports
 * one by one from 49152 up (a bind and a netlink dump each), so a `new`
 * got slower with every port in use; libzmq binds port 0 and the kernel
 * picks a free one at once.  Returns the endpoint bound (allocated), or
 * NULL with zmq_errno() set.
 */
char *
endpoint_zbind(zsock_t *s, const char *ep)
{
	if (zmq_bind(zsock_resolve(s), ep) != 0)
		return (NULL);
	return (zsock_last_endpoint(s));
}

static int
endpoint_bind(zsock_t *s, struct conninfo *ci, int which, char **cause)
{
	char	*ep, *bound = NULL, *colon;
	int	 tries, r = -1;

	ep = connfile_endpoint(ci, which);
	for (tries = 0; tries < ENDPOINT_BIND_TRIES; tries++) {
		if ((bound = endpoint_zbind(s, ep)) != NULL) {
			r = 0;
			break;
		}
		/* A restarted kernel reuses ports its predecessor held. */
		if (zmq_errno() != EADDRINUSE || ci->ports[which] == 0)
			break;
		zclock_sleep(50);
	}
	if (r != 0)
		xasprintf(cause, "cannot bind %s: %s", ep,
		    zmq_strerror(zmq_errno()));
	else if (strcmp(ci->transport, "tcp") == 0 && bound != NULL &&
	    (colon = strrchr(bound, ':')) != NULL)
		ci->ports[which] = atoi(colon + 1);
	zstr_free(&bound);
	free(ep);
	return (r);
}

static zsock_t *
endpoint_socket_new(int type)
{
	zsock_t	*s;

	s = zsock_new(type);
	if (s == NULL)
		fatalx("cannot create ZeroMQ socket");
	zsock_set_linger(s, 200);
	if (type == ZMQ_ROUTER) {
		zsock_set_maxmsgsize(s, (int64_t)cfg.max_message);
		/*
		 * jupyter_client uses its session id as the routing id, so a
		 * client that reconnects presents the same one; without
		 * handover the new connection is ignored while the old one
		 * lingers.
		 */
		zsock_set_router_handover(s, 1);
	}
	return (s);
}

/*
 * What a new endpoint binds by default: the configured transport and
 * address (ipc: a socket path named for it), any ports, a fresh key.
 */
void
endpoint_default_ci(struct conninfo *ci, const char *name)
{
	memset(ci, 0, sizeof *ci);
	snprintf(ci->transport, sizeof ci->transport, "%s", cfg.transport);
	if (strcmp(cfg.transport, "ipc") == 0)
		snprintf(ci->ip, sizeof ci->ip, "%s/ipc/%s", server_state_dir,
		    name);
	else
		snprintf(ci->ip, sizeof ci->ip, "%s", cfg.ip);
	snprintf(ci->scheme, sizeof ci->scheme, "hmac-sha256");
}

/*
 * Bind a new endpoint. want gives transport, ip, key and ports (0 = any,
 * for tcp); an empty key gets a fresh random one.
 */
struct endpoint *
endpoint_new(struct session *s, const struct conninfo *want, char **cause)
{
	struct endpoint	*ep;
	u_char		 raw[32];
	char		*hb;
	int		 i;

	ep = xcalloc(1, sizeof *ep);
	ep->session = s;
	ep->ci = *want;
	if (ep->ci.scheme[0] == '\0')
		snprintf(ep->ci.scheme, sizeof ep->ci.scheme, "hmac-sha256");
	if (ep->ci.key[0] == '\0') {
		randombytes_buf(raw, sizeof raw);
		sodium_bin2hex(ep->ci.key, sizeof ep->ci.key, raw, sizeof raw);
	}
	if (strcmp(ep->ci.transport, "ipc") == 0) {
		for (i = 0; i < PORT_N; i++) {
			if (ep->ci.ports[i] == 0)
				ep->ci.ports[i] = i + 1;
		}
	}
	ep->sign = sign_new(ep->ci.scheme, ep->ci.key, strlen(ep->ci.key),
	    cause);
	if (ep->sign == NULL)
		goto fail;
	ep->shell = endpoint_socket_new(ZMQ_ROUTER);
	ep->control = endpoint_socket_new(ZMQ_ROUTER);
	ep->stdin_ = endpoint_socket_new(ZMQ_ROUTER);
	ep->iopub = endpoint_socket_new(ZMQ_PUB);
	if (endpoint_bind(ep->shell, &ep->ci, PORT_SHELL, cause) != 0 ||
	    endpoint_bind(ep->iopub, &ep->ci, PORT_IOPUB, cause) != 0 ||
	    endpoint_bind(ep->stdin_, &ep->ci, PORT_STDIN, cause) != 0 ||
	    endpoint_bind(ep->control, &ep->ci, PORT_CONTROL, cause) != 0)
		goto fail;
	hb = connfile_endpoint(&ep->ci, PORT_HB);
	i = heartbeat_bind(hb, &ep->hb, cause);
	free(hb);
	if (i != 0)
		goto fail;
	if (strcmp(ep->ci.transport, "tcp") == 0)
		ep->ci.ports[PORT_HB] = atoi(strrchr(ep->hb, ':') + 1);
	for (i = 0; i < (int)nitems(ep->io); i++)
		ep->io[i] = loop_zsock_add(endpoint_socket(ep, i),
		    endpoint_events[i], ep);
	/*
	 * Only with -v: the two monitors cost each session about 36 kB of
	 * the daemon's memory (their inproc pipes) and two more sockets in
	 * every poll, for a log line (docs/BENCHMARKS.md).
	 */
	if (log_enabled(LEVEL_DEBUG)) {
		ep->mon[0] = endpoint_monitor(ep, ep->shell, &ep->mon_io[0]);
		ep->mon[1] = endpoint_monitor(ep, ep->control, &ep->mon_io[1]);
	}
	return (ep);
fail:
	endpoint_destroy(&ep);
	return (NULL);
}

static void
endpoint_reap(void *arg)
{
	struct endpoint	*ep = arg;

	ep->reap_timer = NULL;
	zlist_remove(endpoint_closed, ep);
	endpoint_destroy(&ep);
}

/* Out of the loop: nothing more is read from this endpoint. */
static void
endpoint_unwatch(struct endpoint *ep)
{
	size_t	i;

	for (i = 0; i < nitems(ep->io); i++)
		loop_io_remove(&ep->io[i]);
	for (i = 0; i < nitems(ep->mon_io); i++)
		loop_io_remove(&ep->mon_io[i]);
}

/*
 * Close from inside a callback: stop reading now, free from the loop later
 * (the caller's stack may still hold this endpoint).
 */
void
endpoint_close(struct endpoint *ep)
{
	if (ep->closed)
		return;
	ep->closed = 1;
	endpoint_unwatch(ep);
	ep->reap_timer = loop_timer_add(1, endpoint_reap, ep);
	if (endpoint_closed == NULL)
		endpoint_closed = zlist_new();
	zlist_append(endpoint_closed, ep);
}

/*
 * Daemon exit, once the loop has stopped for good: free the endpoints
 * closed since its last turn, whose reaping timers will never fire.
 */
void
endpoint_reap_all(void)
{
	struct endpoint	*ep;

	while (endpoint_closed != NULL &&
	    (ep = zlist_pop(endpoint_closed)) != NULL)
		endpoint_destroy(&ep);
	zlist_destroy(&endpoint_closed);
}

void
endpoint_destroy(struct endpoint **epp)
{
	struct endpoint	*ep = *epp;
	zsock_t		**socks[] = { &ep->shell, &ep->control, &ep->stdin_ };
	size_t		 i;

	if (ep == NULL)
		return;
	if (ep->drop_quiet > 0) {
		loop_timer_cancel(&ep->drop_timer);
		endpoint_drop_summary(ep);
	}
	loop_timer_cancel(&ep->reap_timer);
	endpoint_unwatch(ep);
	for (i = 0; i < nitems(socks); i++)
		zsock_destroy(socks[i]);
	zsock_destroy(&ep->iopub);
	for (i = 0; i < nitems(ep->mon); i++)
		zsock_destroy(&ep->mon[i]);
	if (ep->hb != NULL)
		heartbeat_unbind(ep->hb);
	if (ep->path != NULL)
		unlink(ep->path);
	free(ep->hb);
	free(ep->path);
	sign_destroy(&ep->sign);
	sodium_memzero(ep->ci.key, sizeof ep->ci.key);
	free(ep);
	*epp = NULL;
}

int
endpoint_write_file(struct endpoint *ep, const char *path, uid_t owner,
    char **cause)
{
	if (connfile_write(path, &ep->ci, owner, cause) != 0)
		return (-1);
	free(ep->path);
	ep->path = xstrdup(path);
	return (0);
}

void
endpoint_send(struct endpoint *ep, int which, const struct jmsg_out *out)
{
	zmsg_t	*m;

	if ((m = jmsg_encode(ep->sign, out)) == NULL) {
		log_warn("%s: cannot encode %s", endpoint_label(ep),
		    out->msg_type);
		return;
	}
	zmsg_send(&m, endpoint_socket(ep, which));
	zmsg_destroy(&m);
	/* A send may take the edge of a request that came meanwhile. */
	loop_zsock_check(ep->io[which]);
}

void
endpoint_publish(struct endpoint *ep, const struct jmsg_out *out)
{
	zmsg_t	*m;

	if ((m = jmsg_encode(ep->sign, out)) == NULL) {
		log_warn("%s: cannot encode %s", endpoint_label(ep),
		    out->msg_type);
		return;
	}
	zmsg_send(&m, ep->iopub);
	zmsg_destroy(&m);
}
