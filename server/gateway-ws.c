/* gateway-ws.c: a kernel's WebSocket channels: several sockets, one kernel, no lost output. */
/*
 * The WebSockets are a transport of the one core (transport.h). Each
 * kernel with a WebSocket has a gw_kernel, and two kinds of origins:
 *
 * - each connection is an origin: its requests go to the core with
 *   transport_deliver, and the core sends their replies (and stdin's
 *   input_request) back to it;
 * - the kernel itself is one more origin, subscribed to the session's
 *   iopub from the moment a client first asks for its channels, before
 *   any 101: it broadcasts iopub to every open connection, and logs what
 *   nobody received.
 *
 * A connection that closes while the core still holds requests of its
 * origin stays as an orphan until they are done: a reply for it goes to
 * the connection of the request's session, else to the kernel's only
 * connection, else into the log. A new connection gets the log replayed:
 * the messages whose request came from its session (?session_id=, which
 * jupyter_server >= 2.14.2 forwards), or, when it names none, everything,
 * if it is the kernel's only connection (older proxies drop session_id; a
 * reconnecting notebook is then the sole client). The log is bounded
 * (GW_LOG_MAX messages, GW_LOG_BYTES bytes); what falls off is counted
 * and said at the replay.
 */

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "http.h"
#include "gateway.h"

#define GW_LOG_MAX	4096
#define GW_LOG_BYTES	((size_t)64 * 1024 * 1024)
#define GW_SWEEP_EVERY	1000		/* ms */
#define GW_BAD_LOGGED	3		/* bad messages logged per conn */
#define GW_SESSIONS	16		/* client sessions remembered */

struct gw_conn;

struct gw_kernel {
	char			 name[SESSION_NAME_MAX + 1];
	time_t			 created;	/* tells a same-named successor */
	struct transport_origin	*origin;	/* the iopub subscriber */
	TAILQ_HEAD(, gw_conn)	 conns;		/* open ones and orphans */
	u_int			 nopen;
	zlist_t			*log;		/* gateway_out */
	size_t			 log_bytes;
	size_t			 log_dropped;
	char			 seen[GW_SESSIONS][128]; /* client sessions */
	u_int			 seen_next;
	struct gw_kernel	*next;
};

struct gw_conn {
	uint64_t		 id;
	struct transport_origin	*origin;	/* its requests' */
	struct ws		*ws;		/* NULL until open, and after */
	struct gw_kernel	*k;		/* NULL: the kernel went */
	enum gateway_framing	 framing;
	char			 session_id[128];
	u_int			 bad;
	int			 pending;	/* the upgrade is under way */
	TAILQ_ENTRY(gw_conn)	 entry;
};

static http_fn gateway_ws_channels;

static const struct http_route gateway_ws_routes[] = {
	{ "GET", "/api/kernels/{id}/channels", gateway_ws_channels,
	  HTTP_TOKEN, 0, NULL },
};

static void	gw_conn_send(void *, enum transport_channel,
		    const struct jmsg_out *);
static void	gw_conn_publish(void *, struct session *,
		    const struct jmsg_out *);
static void	gw_kernel_send(void *, enum transport_channel,
		    const struct jmsg_out *);
static void	gw_kernel_publish(void *, struct session *,
		    const struct jmsg_out *);

static const struct transport_ops gw_conn_ops = {
	"ws", gw_conn_send, gw_conn_publish, NULL
};
static const struct transport_ops gw_kernel_ops = {
	"ws", gw_kernel_send, gw_kernel_publish, NULL
};

/* The channel names of the core's channels, in transport_channel order. */
static const char *gw_channels[] = { "shell", "control", "stdin" };

static struct gw_kernel	*gw_kernels;
static uint64_t		 gw_next_conn = 1;
static struct loop_timer *gw_sweep_timer;
static long		 gw_open_total;

/* Kernels. */

static struct gw_kernel *
gw_kernel_find(struct session *s)
{
	struct gw_kernel	*k;

	for (k = gw_kernels; k != NULL; k = k->next) {
		if (strcmp(k->name, s->name) == 0 && k->created == s->created)
			return (k);
	}
	return (NULL);
}

static struct gw_kernel *
gw_kernel_get(struct session *s)
{
	struct gw_kernel	*k;

	if ((k = gw_kernel_find(s)) != NULL)
		return (k);
	k = xcalloc(1, sizeof *k);
	snprintf(k->name, sizeof k->name, "%s", s->name);
	k->created = s->created;
	TAILQ_INIT(&k->conns);
	k->log = zlist_new();
	k->origin = transport_origin_new(&gw_kernel_ops, k);
	transport_subscribe(s, k->origin);
	k->next = gw_kernels;
	gw_kernels = k;
	return (k);
}

static void
gw_conn_free(struct gw_conn *c)
{
	transport_origin_gone(&c->origin);
	free(c);
}

static void
gw_kernel_free(struct gw_kernel *k)
{
	struct gw_kernel	**kp;
	struct gateway_out	*o;
	struct gw_conn		*c;
	struct session		*s;

	for (kp = &gw_kernels; *kp != NULL; kp = &(*kp)->next) {
		if (*kp == k) {
			*kp = k->next;
			break;
		}
	}
	while ((c = TAILQ_FIRST(&k->conns)) != NULL) {
		TAILQ_REMOVE(&k->conns, c, entry);
		c->k = NULL;
		transport_origin_gone(&c->origin);
		/* The WebSocket's callbacks free the others, c->k NULL. */
		if (c->ws != NULL)
			ws_close(c->ws, 1001, "the kernel ended");
		else if (!c->pending)
			free(c);
	}
	if ((s = session_find(k->name)) != NULL && s->created == k->created)
		transport_unsubscribe(s, k->origin);
	transport_origin_gone(&k->origin);
	while ((o = zlist_pop(k->log)) != NULL)
		gateway_out_unref(&o);
	zlist_destroy(&k->log);
	free(k);
}

int
gateway_ws_connections(struct session *s)
{
	struct gw_kernel	*k = gw_kernel_find(s);

	return (k != NULL ? (int)k->nopen : 0);
}

static void
gw_count(long delta)
{
	gw_open_total += delta;
	metrics_set_connections("ws", gw_open_total);
}

/* Output. */

static int
gw_send(struct gw_conn *c, struct gateway_out *o)
{
	const u_char	*p;
	size_t		 len;
	int		 binary;

	if (c->ws == NULL)
		return (-1);
	p = gateway_wire_encode(o, c->framing, &len, &binary);
	return (ws_send(c->ws, binary ? WS_BINARY : WS_TEXT, p, len));
}

static void
gw_log(struct gw_kernel *k, struct gateway_out *o)
{
	struct gateway_out	*old;

	zlist_append(k->log, gateway_out_ref(o));
	k->log_bytes += o->size;
	while (zlist_size(k->log) > GW_LOG_MAX || k->log_bytes > GW_LOG_BYTES) {
		old = zlist_pop(k->log);
		k->log_bytes -= old->size;
		k->log_dropped++;
		gateway_out_unref(&old);
	}
}

/*
 * A reply whose requester has gone goes where its replay would: to the
 * connection of the request's session, else to the only connection.
 */
static struct gw_conn *
gw_adopter(struct gw_kernel *k, struct gateway_out *o)
{
	struct gw_conn	*c, *only = NULL;

	TAILQ_FOREACH(c, &k->conns, entry) {
		if (c->ws == NULL)
			continue;
		if (o->parent_session[0] != '\0' &&
		    strcmp(c->session_id, o->parent_session) == 0)
			return (c);
		only = c;
	}
	if (k->nopen == 1 && (only->session_id[0] == '\0' ||
	    strcmp(only->session_id, o->parent_session) == 0))
		return (only);
	return (NULL);
}

/* A message for one connection: to it, or to its stand-in, or the log. */
static void
gw_deliver(struct gw_kernel *k, struct gw_conn *c, struct gateway_out *o)
{
	if (c == NULL || c->ws == NULL)
		c = gw_adopter(k, o);
	if (c != NULL && gw_send(c, o) == 0)
		return;
	gw_log(k, o);
}

/* The core's replies to a connection's requests (transport_ops.send). */
static void
gw_conn_send(void *conn, enum transport_channel ch,
    const struct jmsg_out *out)
{
	struct gw_conn		*c = conn;
	struct gateway_out	*o;

	if (c->k == NULL || (size_t)ch >= nitems(gw_channels))
		return;
	o = gateway_out_new(gw_channels[ch], out);
	gw_deliver(c->k, c, o);
	gateway_out_unref(&o);
}

/* Never subscribed (the kernel is); here for a complete ops table. */
static void
gw_conn_publish(void *conn, struct session *s, const struct jmsg_out *out)
{
	struct gw_conn	*c = conn;

	if (c->k != NULL)
		gw_kernel_publish(c->k, s, out);
}

/* The kernel's origin sends no requests: nothing is ever sent to it. */
static void
gw_kernel_send(void *conn, enum transport_channel ch,
    const struct jmsg_out *out)
{
	struct gw_kernel	*k = conn;
	struct gateway_out	*o;

	if ((size_t)ch >= nitems(gw_channels))
		return;
	o = gateway_out_new(gw_channels[ch], out);
	gw_deliver(k, NULL, o);
	gateway_out_unref(&o);
}

/* A client session of this kernel (its requests' header.session). */
static void
gw_seen_add(struct gw_kernel *k, const char *session)
{
	char	cut[sizeof k->seen[0]];
	u_int	i;

	if (*session == '\0')
		return;
	/* Compared as kept: a longer id must still find its own entry. */
	snprintf(cut, sizeof cut, "%s", session);
	for (i = 0; i < GW_SESSIONS; i++) {
		if (strcmp(k->seen[i], cut) == 0)
			return;
	}
	snprintf(k->seen[k->seen_next], sizeof k->seen[0], "%s", cut);
	k->seen_next = (k->seen_next + 1) % GW_SESSIONS;
}

/*
 * Output of a request whose client has dropped: its session was seen on
 * this kernel, and no open connection speaks for it now. Others may hear
 * it live; it is kept for that client's return all the same.
 */
static int
gw_dropped(struct gw_kernel *k, struct gateway_out *o)
{
	struct gw_conn	*c;
	u_int		 i;

	if (o->parent_session[0] == '\0')
		return (0);
	for (i = 0; i < GW_SESSIONS; i++) {
		if (strcmp(k->seen[i], o->parent_session) == 0)
			break;
	}
	if (i == GW_SESSIONS)
		return (0);
	TAILQ_FOREACH(c, &k->conns, entry) {
		if (c->ws != NULL && strcmp(c->session_id,
		    o->parent_session) == 0)
			return (0);
	}
	return (1);
}

/*
 * iopub: to every open connection; into the log when none is open, or
 * when the client whose request it answers has dropped.
 */
static void
gw_kernel_publish(void *conn, struct session *s, const struct jmsg_out *out)
{
	struct gw_kernel	*k = conn;
	struct gateway_out	*o;
	struct gw_conn		*c, *next;
	int			 sent = 0;

	(void)s;
	o = gateway_out_new("iopub", out);
	for (c = TAILQ_FIRST(&k->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (gw_send(c, o) == 0)
			sent++;
	}
	if (sent == 0 || gw_dropped(k, o))
		gw_log(k, o);
	gateway_out_unref(&o);
}

/* What the log holds for a new connection, sent in order. */
static void
gw_replay(struct gw_kernel *k, struct gw_conn *c)
{
	struct gateway_out	*o;
	zlist_t			*keep = zlist_new();
	size_t			 n = 0;
	int			 all;

	all = c->session_id[0] == '\0' && k->nopen == 1;
	while ((o = zlist_pop(k->log)) != NULL) {
		if (all || (c->session_id[0] != '\0' &&
		    strcmp(o->parent_session, c->session_id) == 0)) {
			k->log_bytes -= o->size;
			gw_send(c, o);
			gateway_out_unref(&o);
			n++;
		} else
			zlist_append(keep, o);
	}
	zlist_destroy(&k->log);
	k->log = keep;
	if (n != 0 || k->log_dropped != 0) {
		log_info("%s: replayed %zu messages to %s (%zu dropped "
		    "before)", k->name, n, ws_peer(c->ws), k->log_dropped);
	}
	if (all)
		k->log_dropped = 0;
}

/* WebSocket callbacks. */

static void
gw_opened(struct ws *ws, void *arg)
{
	struct gw_conn	*c = arg;

	c->pending = 0;
	if (c->k == NULL) {
		ws_close(ws, 1001, "the kernel ended");
		return;
	}
	c->ws = ws;
	c->k->nopen++;
	gw_count(1);
	log_debug("%s: connection %llu from %s (%s framing)", c->k->name,
	    (unsigned long long)c->id, ws_peer(ws),
	    c->framing == GATEWAY_V1 ? "v1" : "legacy");
	gw_replay(c->k, c);
}

/* The 101 never went out: the connection never opened. */
static void
gw_refused(void *arg)
{
	struct gw_conn	*c = arg;

	if (c->k != NULL)
		TAILQ_REMOVE(&c->k->conns, c, entry);
	gw_conn_free(c);
}

static enum transport_channel
gw_channel(const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(gw_channels); i++) {
		if (strcmp(name, gw_channels[i]) == 0)
			return ((enum transport_channel)i);
	}
	return ((enum transport_channel)-1);
}

static void
gw_bad(struct gw_conn *c, const char *cause)
{
	if (c->bad++ < GW_BAD_LOGGED)
		log_warn("%s: from %s: %s", c->k->name, ws_peer(c->ws), cause);
}

static void
gw_message(struct ws *ws, enum ws_kind kind, const u_char *p, size_t len,
    void *arg)
{
	struct gw_conn		*c = arg;
	struct gateway_in	 in;
	struct session		*s;
	struct jmsg		*jm;
	enum transport_channel	 ch;
	char			*cause;

	(void)ws;
	if (c->k == NULL)
		return;
	if (gateway_wire_decode(c->framing, kind == WS_BINARY, p, len, &in,
	    &cause) != 0) {
		gw_bad(c, cause);
		free(cause);
		return;
	}
	if ((int)(ch = gw_channel(in.channel)) == -1) {
		gw_bad(c, "clients do not send on iopub");
		gateway_in_clear(&in);
		return;
	}
	if ((jm = gateway_in_jmsg(&in, len, &cause)) == NULL) {
		gw_bad(c, cause);
		free(cause);
		return;
	}
	if (c->session_id[0] == '\0' && *jm->session != '\0')
		snprintf(c->session_id, sizeof c->session_id, "%s",
		    jm->session);
	gw_seen_add(c->k, jm->session);
	s = session_find(c->k->name);
	if (s == NULL || s->created != c->k->created) {
		jmsg_destroy(&jm);
		return;
	}
	transport_deliver(c->origin, s, ch, jm);
}

static void
gw_closed(struct ws *ws, void *arg)
{
	struct gw_conn	*c = arg;
	int		 was_open = c->ws != NULL;

	(void)ws;
	c->ws = NULL;
	if (was_open)
		gw_count(-1);
	if (c->k == NULL) {
		free(c);	/* its origin went with the kernel */
		return;
	}
	if (was_open)
		c->k->nopen--;
	/* Requests of it still in the core: an orphan until they are done. */
	if (c->origin->refs > 1)
		return;
	TAILQ_REMOVE(&c->k->conns, c, entry);
	gw_conn_free(c);
}

static const struct ws_ops gw_ws_ops = {
	gw_opened, gw_refused, gw_message, gw_closed
};

/* The route. */

static int
gw_offers_v1(const char *protos)
{
	const char	*p;
	size_t		 len = strlen(GATEWAY_V1_PROTOCOL);

	for (p = protos; p != NULL && (p = strstr(p, GATEWAY_V1_PROTOCOL)) !=
	    NULL; p += len) {
		if ((p == protos || p[-1] == ' ' || p[-1] == ',') &&
		    (p[len] == '\0' || p[len] == ',' || p[len] == ' '))
			return (1);
	}
	return (0);
}

/* 404 for an unknown kernel before any upgrade: the proxies rely on it. */
static void
gateway_ws_channels(struct http_req *req)
{
	struct session	*s;
	struct gw_kernel *k;
	struct gw_conn	*c;
	const char	*sid;

	if ((s = gateway_find(http_param(req, 0), http_uid(req))) == NULL) {
		http_error(req, 404, "Not Found", "no such kernel: %s",
		    http_param(req, 0));
		return;
	}
	k = gw_kernel_get(s);
	c = xcalloc(1, sizeof *c);
	c->id = gw_next_conn++;
	c->k = k;
	c->origin = transport_origin_new(&gw_conn_ops, c);
	c->framing = gw_offers_v1(http_header(req, "Sec-WebSocket-Protocol")) ?
	    GATEWAY_V1 : GATEWAY_LEGACY;
	if ((sid = http_query(req, "session_id")) != NULL)
		snprintf(c->session_id, sizeof c->session_id, "%s", sid);
	c->pending = 1;
	TAILQ_INSERT_TAIL(&k->conns, c, entry);
	ws_accept(req, c->framing == GATEWAY_V1 ? GATEWAY_V1_PROTOCOL : NULL,
	    &gw_ws_ops, c);
}

/* Orphans whose requests are done go; so do kernels whose session went. */
static void
gw_sweep_kernel(struct gw_kernel *k)
{
	struct gw_conn	*c, *next;

	for (c = TAILQ_FIRST(&k->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->ws == NULL && !c->pending && c->origin->refs == 1) {
			TAILQ_REMOVE(&k->conns, c, entry);
			gw_conn_free(c);
		}
	}
}

static void
gw_sweep(void *arg)
{
	struct gw_kernel	*k, *next;
	struct session		*s;

	(void)arg;
	gw_sweep_timer = NULL;
	for (k = gw_kernels; k != NULL; k = next) {
		next = k->next;
		s = session_find(k->name);
		if (s == NULL || s->ending || s->created != k->created)
			gw_kernel_free(k);
		else
			gw_sweep_kernel(k);
	}
	gw_sweep_timer = loop_timer_add(GW_SWEEP_EVERY, gw_sweep, NULL);
}

void
gateway_ws_register(void)
{
	http_register("kernel channels", gateway_ws_routes,
	    nitems(gateway_ws_routes));
	gw_sweep_timer = loop_timer_add(GW_SWEEP_EVERY, gw_sweep, NULL);
}

void
gateway_ws_stop(void)
{
	loop_timer_cancel(&gw_sweep_timer);
	while (gw_kernels != NULL)
		gw_kernel_free(gw_kernels);
}
