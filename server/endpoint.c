/* endpoint.c: a Jupyter endpoint: shell, control, stdin, iopub, heartbeat. */
/*
 * Each session has its own endpoint and key; the shared endpoint is one
 * more whose header.session field selects the session (kernel.c). This
 * file owns the sockets: binding, reading and decoding, sending. Decoding
 * failures are logged once each and the message dropped. The sockets are
 * our own ZMTP ones (wire.c), not libzmq's, so that no peer can make the
 * daemon hold more than max-message for an unfinished message.
 */

#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"

#define ENDPOINT_BIND_TRIES	20	/* 50 ms apart: a restart's ports */
#define ENDPOINT_DROP_LINES	5	/* dropped messages logged per second */

struct endpoint *endpoint_shared;
static zlist_t	*endpoint_closed;	/* closed, not yet reaped */

static const char *endpoint_names[] = { "shell", "control", "stdin" };
/* By PORT_* (connfile.c's order), for log lines. */
static const char *endpoint_port_names[PORT_N] = {
	[PORT_SHELL] = "shell", [PORT_IOPUB] = "iopub",
	[PORT_STDIN] = "stdin", [PORT_CONTROL] = "control",
	[PORT_HB] = "hb",
};

static void	endpoint_send(void *, enum transport_channel,
		    const struct jmsg_out *);
static void	endpoint_publish(void *, struct session *,
		    const struct jmsg_out *);
static const struct conninfo *endpoint_conninfo(void *);

/* What the protocol core calls on an endpoint (transport.h). */
static const struct transport_ops endpoint_ops = {
	.name = "zmq",
	.send = endpoint_send,
	.publish = endpoint_publish,
	.conninfo = endpoint_conninfo,
};

static void	endpoint_message(struct wire *, zmsg_t *, void *);
static void	endpoint_dropped(struct endpoint *, int, const char *);
static void	endpoint_drop_summary(void *);

static const char *
endpoint_label(struct endpoint *ep)
{
	return (ep->session != NULL ? ep->session->name : "shared");
}

static struct wire *
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

static int
endpoint_which(struct endpoint *ep, struct wire *w)
{
	if (w == ep->shell)
		return (EP_SHELL);
	if (w == ep->control)
		return (EP_CONTROL);
	return (EP_STDIN);
}

/* A complete message on shell, control or stdin (wire.c calls). */
static void
endpoint_message(struct wire *w, zmsg_t *m, void *arg)
{
	struct endpoint	*ep = arg;
	struct jmsg	*jm;
	char		*cause;
	int		 which = endpoint_which(ep, w);

	/* Closed: its sockets live until the loop reaps them. */
	if (ep->closed) {
		zmsg_destroy(&m);
		return;
	}
	jm = jmsg_decode(&m, ep->sign, cfg.max_message, &cause);
	if (jm == NULL) {
		metrics_wire_dropped(cause);
		endpoint_dropped(ep, which, cause);
		free(cause);
		return;
	}
	log_debug("%s: %s: %s", endpoint_label(ep), endpoint_names[which],
	    jm->msg_type);
	transport_deliver(ep->origin, ep->session, which, jm);
}

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
 * Bind one socket; a restarted kernel reuses ports its predecessor held,
 * so EADDRINUSE on a given port is retried for a second.
 */
static struct wire *
endpoint_bind(struct endpoint *ep, enum wire_kind kind, int which,
    char **cause)
{
	struct conninfo	*ci = &ep->ci;
	struct wire	*w = NULL;
	char		*e, *label;
	const char	*colon;
	int		 tries;

	e = connfile_endpoint(ci, which);
	for (tries = 0; tries < ENDPOINT_BIND_TRIES; tries++) {
		if (tries > 0)
			free(*cause);
		w = wire_new(&wire_main, kind, e, cfg.max_message,
		    endpoint_message, ep, cause);
		if (w != NULL || errno != EADDRINUSE || ci->ports[which] == 0)
			break;
		usleep(50 * 1000);
	}
	free(e);
	if (w == NULL)
		return (NULL);
	if (strcmp(ci->transport, "tcp") == 0 &&
	    (colon = strrchr(wire_endpoint(w), ':')) != NULL)
		ci->ports[which] = atoi(colon + 1);
	xasprintf(&label, "%s: %s", endpoint_label(ep),
	    endpoint_port_names[which]);
	wire_set_label(w, label);
	free(label);
	return (w);
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
	ep->origin = transport_origin_new(&endpoint_ops, ep);
	if (s != NULL)
		transport_subscribe(s, ep->origin);
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
	if ((ep->shell = endpoint_bind(ep, WIRE_ROUTER, PORT_SHELL,
	    cause)) == NULL ||
	    (ep->iopub = endpoint_bind(ep, WIRE_PUB, PORT_IOPUB,
	    cause)) == NULL ||
	    (ep->stdin_ = endpoint_bind(ep, WIRE_ROUTER, PORT_STDIN,
	    cause)) == NULL ||
	    (ep->control = endpoint_bind(ep, WIRE_ROUTER, PORT_CONTROL,
	    cause)) == NULL)
		goto fail;
	hb = connfile_endpoint(&ep->ci, PORT_HB);
	i = heartbeat_bind(hb, &ep->hb, cause);
	free(hb);
	if (i != 0)
		goto fail;
	if (strcmp(ep->ci.transport, "tcp") == 0)
		ep->ci.ports[PORT_HB] = atoi(strrchr(ep->hb, ':') + 1);
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
	transport_origin_gone(&ep->origin);
	/*
	 * The file goes now, with the name: a session of the same name may be
	 * created before the reap below, and its fresh file must survive it.
	 */
	if (ep->path != NULL) {
		unlink(ep->path);
		free(ep->path);
		ep->path = NULL;
	}
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

	if (ep == NULL)
		return;
	if (ep->drop_quiet > 0) {
		loop_timer_cancel(&ep->drop_timer);
		endpoint_drop_summary(ep);
	}
	loop_timer_cancel(&ep->reap_timer);
	transport_origin_gone(&ep->origin);
	wire_destroy(&ep->shell);
	wire_destroy(&ep->control);
	wire_destroy(&ep->stdin_);
	wire_destroy(&ep->iopub);
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

/*
 * The connection file, written before its session had a name (a warm-pool
 * member's, server/pool.c), under the session's name and given to its
 * owner: a rename and a chown, where writing it afresh would make a file.
 */
int
endpoint_rename_file(struct endpoint *ep, const char *path, uid_t owner,
    char **cause)
{
	if (ep->path == NULL) {
		xasprintf(cause, "%s: no connection file to rename", path);
		return (-1);
	}
	if (rename(ep->path, path) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	free(ep->path);
	ep->path = xstrdup(path);
	if (owner != (uid_t)-1 && lchown(path, owner, (gid_t)-1) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	return (0);
}

static void
endpoint_send(void *conn, enum transport_channel which,
    const struct jmsg_out *out)
{
	struct endpoint	*ep = conn;
	zmsg_t	*m;

	if ((m = jmsg_encode(ep->sign, out)) == NULL) {
		log_warn("%s: cannot encode %s", endpoint_label(ep),
		    out->msg_type);
		return;
	}
	wire_send(endpoint_socket(ep, which), &m);
}

/*
 * iopub topics: "kernel.NAME.TYPE" on a session's own endpoint, as
 * ipykernel's; "session/NAME/TYPE" on the shared one, so that a client
 * can subscribe to one session's traffic there.
 */
static void
endpoint_publish(void *conn, struct session *s, const struct jmsg_out *msg)
{
	struct endpoint	*ep = conn;
	struct jmsg_out	 out = *msg;
	zmsg_t		*m;
	char		 buf[256], *topic = NULL;
	u_int		 n;
	int		 len;

	/* On the stack: five per execute, and the type is nearly always short. */
	len = snprintf(buf, sizeof buf, ep->session != NULL ? "kernel.%s.%s" :
	    "session/%s/%s", s->name, msg->msg_type);
	if (len < 0 || (size_t)len >= sizeof buf)
		xasprintf(&topic, ep->session != NULL ? "kernel.%s.%s" :
		    "session/%s/%s", s->name, msg->msg_type);
	out.topic = topic != NULL ? topic : buf;
	m = jmsg_encode(ep->sign, &out);
	free(topic);
	if (m == NULL) {
		log_warn("%s: cannot encode %s", endpoint_label(ep),
		    out.msg_type);
		return;
	}
	wire_send(ep->iopub, &m);
	/* libzmq's PUB drops for a slow subscriber silently; say so. */
	if ((n = wire_pub_dropped(ep->iopub)) > 0)
		log_debug("%s: iopub: dropped %s for %u slow subscribers",
		    endpoint_label(ep), out.msg_type, n);
}

static const struct conninfo *
endpoint_conninfo(void *conn)
{
	struct endpoint	*ep = conn;

	return (&ep->ci);
}
