/* http.c: the HTTP server on the daemon's loop, its route tables and limits. */
/*
 * libmicrohttpd runs in external-epoll mode: its one epoll descriptor sits
 * in the daemon's loop, MHD_run is called when it is readable, and a timer
 * follows MHD_get_timeout for its own deadlines (connection timeouts). No
 * thread: every handler runs on the loop like the ZeroMQ endpoints, so it
 * can call the core directly.
 *
 * A request's life: the first call of the access handler matches a route
 * and checks the token; body calls fill a bounded buffer; the last call
 * runs the handler, which replies at once or suspends the connection and
 * replies later (a kernel start), or upgrades it (a WebSocket).
 */

#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server.h"
#include "http.h"

#define HTTP_TABLES_MAX		8
#define HTTP_BACKLOG		512
#define HTTP_HEADERS_MAX	(32 * 1024)	/* per connection, headers */
#define HTTP_SUSPEND_MAX	(120 * 1000)	/* ms a suspended request lives */
#define HTTP_DISCARD_MAX	(16 * 1024 * 1024) /* dropped past a body cap */
#define HTTP_SWEEP_EVERY	1000		/* ms between looks at parked
						   requests' clients */

/*
 * A streamed reply's bytes, shared by the request and libmicrohttpd's
 * response: the response outlives the request by a little, so req is
 * cleared when the request goes and the reader then ends the stream.
 */
struct http_stream {
	struct http_req		*req;
	char			*buf;
	size_t			 len;		/* bytes waiting */
	size_t			 off;		/* of those, already sent */
	int			 ended;		/* http_stream_end */
	int			 broken;	/* gone or too slow: abort */
};

struct http_req {
	struct MHD_Connection	*conn;
	const struct http_route	*route;
	char			 method[8];
	char			*path;
	char			 params[HTTP_PARAMS_MAX][256];
	size_t			 nparams;
	char			 peer[64];
	uid_t			 uid;
	char			*body;
	size_t			 body_len;
	int			 too_big;	/* over the route's body_max */
	size_t			 dropped;	/* body bytes read and dropped */
	int			 ran;		/* the handler was called */
	int			 suspended;
	struct MHD_Response	*resp;		/* waiting to be queued */
	u_int			 status;
	struct http_req		*next_suspended;
	uint64_t		 suspended_at;
	http_upgrade_cb		*up_cb;		/* a 101 is queued */
	http_refused_cb		*up_refused;
	void			*up_arg;
	int			 up_done;
	struct http_stream	*stream;	/* a streamed reply, or NULL */
	int			 parked;	/* stream suspended, no data */
	int			 gone;		/* the client went away */
	http_close_fn		*close_fn;
	void			*close_arg;
	int			 sink_done;	/* body_sink replied or ended */
	char			 xhdr[HTTP_XHDRS_MAX][2][256]; /* http_reply_header */
	size_t			 nxhdr;
	int			 refused;	/* no route, or no token: answered */
	TAILQ_ENTRY(http_req)	 entry;		/* in http_reqs */
};
static TAILQ_HEAD(, http_req) http_reqs = TAILQ_HEAD_INITIALIZER(http_reqs);

/* A route table as registered: a name for the logs and its rows. */
static struct {
	const char		*name;
	const struct http_route	*routes;
	size_t			 n;
} http_tables[HTTP_TABLES_MAX];
static size_t		 http_ntables;

static struct MHD_Daemon *http_daemon;
static struct loop_io	*http_epoll_io;
static struct loop_timer *http_timer;
static struct loop_timer *http_sweep_timer;
static struct loop_timer *http_kick_at;
static int		 http_kicks_left;
static long		 http_nconns;	/* open, as libmicrohttpd counts */
static int		 http_listen_fd = -1;
static char		*http_base_url;
static int		 http_port;
static char		*http_file;
static char		*http_tls_mem[2];	/* cert, key */
static struct http_req	*http_suspended;	/* list of suspended reqs */
static int		 http_in_run;

static void	http_run(void);
static void	http_schedule(void);
static void	http_sweep(void *);
static void	http_closed(struct http_req *);
static void	http_kick(void);

/*
 * Register a route table; the front serves the union, first match wins.
 * Later issues (the agent API, MCP) are more tables.
 */
void
http_register(const char *name, const struct http_route *routes, size_t n)
{
	if (http_ntables == HTTP_TABLES_MAX)
		fatalx("too many HTTP route tables");
	http_tables[http_ntables].name = name;
	http_tables[http_ntables].routes = routes;
	http_tables[http_ntables++].n = n;
}

/* A relative path whose every segment is a plain name: no "", ".", "..". */
static int
http_plain_path(const char *p)
{
	size_t	len;

	for (;;) {
		len = strcspn(p, "/");
		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return (0);
		if (p[len] == '\0')
			return (1);
		p += len + 1;
	}
}

/*
 * Match a path against a pattern, capturing {x} segments. A path with an
 * empty, "." or ".." segment, or too many, never matches: what a route
 * captures is always one plain name.
 */
int
http_match(const char *pattern, const char *path, char params[][256],
    size_t *np)
{
	const char	*p = pattern, *s = path, *pe, *se;
	size_t		 n = 0, segs = 0, len;
	int		 rest;

	*np = 0;
	if (*p != '/' || *s != '/')
		return (0);
	while (*p == '/' && *s == '/') {
		p++;
		s++;
		if (++segs > HTTP_SEGMENTS_MAX)
			return (0);
		pe = p + strcspn(p, "/");
		rest = (pe - p == 3 && strncmp(p, "{*}", 3) == 0);
		se = rest ? s + strlen(s) : s + strcspn(s, "/");
		len = se - s;
		if (len == 0 && pe != p)
			return (0);
		if ((len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.'))
			return (0);
		if (*p == '{') {
			if (n == HTTP_PARAMS_MAX || len >= 256)
				return (0);
			memcpy(params[n], s, len);
			params[n++][len] = '\0';
			if (rest && !http_plain_path(params[n - 1]))
				return (0);
		} else if ((size_t)(pe - p) != len || strncmp(p, s, len) != 0)
			return (0);
		p = pe;
		s = se;
	}
	if (*p != '\0' || *s != '\0')
		return (0);
	*np = n;
	return (1);
}

/*
 * The route for a method and path, first match wins; *known says whether
 * the path exists at all (405 rather than 404). The fuzz harness calls it
 * too (tests/fuzz/fuzz-http.c).
 */
const struct http_route *
http_lookup(const char *method, const char *path, char params[][256],
    size_t *np, int *known)
{
	const struct http_route	*r;
	size_t			 t, i;

	*known = 0;
	for (t = 0; t < http_ntables; t++) {
		for (i = 0; i < http_tables[t].n; i++) {
			r = &http_tables[t].routes[i];
			if (!http_match(r->pattern, path, params, np))
				continue;
			*known = 1;
			if (strcmp(r->method, method) == 0)
				return (r);
		}
	}
	*np = 0;
	return (NULL);
}

static const struct http_route *
http_route_find(struct http_req *req, int *known)
{
	return (http_lookup(req->method, req->path, req->params,
	    &req->nparams, known));
}

/* Accessors for handlers. */

const char *
http_method(struct http_req *req)
{
	return (req->method);
}

const char *
http_path(struct http_req *req)
{
	return (req->path);
}

const char *
http_param(struct http_req *req, size_t i)
{
	return (i < req->nparams ? req->params[i] : "");
}

const char *
http_query(struct http_req *req, const char *key)
{
	return (MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
	    key));
}

const char *
http_header(struct http_req *req, const char *key)
{
	return (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, key));
}

const char *
http_peer(struct http_req *req)
{
	return (req->peer);
}

uid_t
http_uid(struct http_req *req)
{
	return (req->uid);
}

const char *
http_body(struct http_req *req, size_t *len)
{
	*len = req->body != NULL ? req->body_len : 0;
	return (req->body != NULL ? req->body : "");
}

/* A body as a JSON object; an empty body is an empty object. */
json_t *
http_parse_json(const char *body, size_t len, char **cause)
{
	json_error_t	 jerr;
	json_t		*j;

	if (len == 0)
		return (json_object());
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		xasprintf(cause, "bad JSON: %s", jerr.text);
		return (NULL);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		xasprintf(cause, "bad JSON: not an object");
		return (NULL);
	}
	return (j);
}

json_t *
http_body_json(struct http_req *req, char **cause)
{
	if (req->body == NULL)
		return (json_object());
	return (http_parse_json(req->body, req->body_len, cause));
}

/* Replies. */

static void
http_resume(struct http_req *req)
{
	struct http_req	**pp;

	for (pp = &http_suspended; *pp != NULL; pp = &(*pp)->next_suspended) {
		if (*pp == req) {
			*pp = req->next_suspended;
			break;
		}
	}
	req->suspended = 0;
	MHD_resume_connection(req->conn);
	http_kick();
}

/* A header for the reply this request is about to get (Mcp-Session-Id). */
void
http_reply_header(struct http_req *req, const char *name, const char *value)
{
	if (req->nxhdr == HTTP_XHDRS_MAX)
		fatalx("%s: more than %d reply headers", __func__,
		    HTTP_XHDRS_MAX);
	snprintf(req->xhdr[req->nxhdr][0], sizeof req->xhdr[0][0], "%s", name);
	snprintf(req->xhdr[req->nxhdr][1], sizeof req->xhdr[0][1], "%s",
	    value);
	req->nxhdr++;
}

static void
http_set_response(struct http_req *req, u_int status,
    struct MHD_Response *resp)
{
	size_t	i;

	for (i = 0; i < req->nxhdr; i++)
		MHD_add_response_header(resp, req->xhdr[i][0], req->xhdr[i][1]);
	if (req->resp != NULL)
		MHD_destroy_response(req->resp);
	req->resp = resp;
	req->status = status;
	/* A reply ends the exchange, a stream's end does (http_stream_end). */
	if (req->stream == NULL)
		req->close_fn = NULL;
	if (req->suspended)
		http_resume(req);
}

void
http_reply(struct http_req *req, u_int status, const char *ctype,
    const void *data, size_t len)
{
	struct MHD_Response	*resp;

	resp = MHD_create_response_from_buffer(len, (void *)data,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		fatalx("out of memory");
	if (ctype != NULL)
		MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	http_set_response(req, status, resp);
}

/* Takes ownership of j. */
void
http_reply_json(struct http_req *req, u_int status, json_t *j)
{
	char	*s;

	if (j == NULL) {
		http_reply(req, status, NULL, "", 0);
		return;
	}
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	if (s == NULL)
		fatalx("out of memory");
	http_reply(req, status, "application/json", s, strlen(s));
	free(s);
}

/*
 * A file as the body, sent from its descriptor as the client takes it
 * (a download is never read into memory); the response closes fd.
 */
void
http_reply_fd(struct http_req *req, u_int status, const char *ctype, int fd,
    uint64_t size)
{
	struct MHD_Response	*resp;

	resp = MHD_create_response_from_fd64(size, fd);
	if (resp == NULL) {
		close(fd);
		http_error(req, 500, "Internal Server Error", "cannot send "
		    "the file");
		return;
	}
	if (ctype != NULL)
		MHD_add_response_header(resp, "Content-Type", ctype);
	http_set_response(req, status, resp);
}

/*
 * The front's own errors under /v1/ (no route, no token, too big) in the
 * agent API's shape, {"error": {"type", "message"}} (docs/AGENTS.md).
 * Legend: status; type.
 */
static const struct {
	u_int		 status;
	const char	*type;
} http_v1_types[] = {
	{ 400, "bad_request" },
	{ 401, "unauthorized" },
	{ 403, "forbidden" },
	{ 404, "not_found" },
	{ 405, "method_not_allowed" },
	{ 413, "too_large" },
	{ 499, "client_gone" },
	{ 503, "unavailable" },
	{ 504, "timeout" },
};

static json_t *
http_error_body(struct http_req *req, u_int status, const char *reason,
    const char *msg)
{
	const char	*type = "internal";
	size_t		 i;

	if (strncmp(req->path, "/v1/", 4) != 0)
		return (json_pack("{s:s,s:s}", "reason", reason, "message",
		    msg));
	for (i = 0; i < nitems(http_v1_types); i++) {
		if (http_v1_types[i].status == status)
			type = http_v1_types[i].type;
	}
	return (json_pack("{s:{s:s,s:s}}", "error", "type", type, "message",
	    msg));
}

/* Errors as the gateway clients parse them: {"reason", "message"}. */
void
http_error(struct http_req *req, u_int status, const char *reason,
    const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	log_debug("%s %s from %s: %u %s", req->method,
	    req->path, req->peer, status, msg);
	http_reply_json(req, status, http_error_body(req, status, reason,
	    msg));
	free(msg);
}

/* The handler replies later (http_reply and friends resume it). */
void
http_suspend(struct http_req *req)
{
	if (req->suspended || req->resp != NULL)
		return;
	req->suspended = 1;
	req->suspended_at = loop_now();
	req->next_suspended = http_suspended;
	http_suspended = req;
	MHD_suspend_connection(req->conn);
}

/*
 * Upgrades (WebSocket): headers are name/value pairs, NULL-terminated.
 * If the 101 never reaches the peer, refused is called instead, when
 * libmicrohttpd lets the request go.
 */

static void
http_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls,
    const char *extra, size_t extra_len, MHD_socket sock,
    struct MHD_UpgradeResponseHandle *urh)
{
	struct http_req	*req = con_cls;

	(void)cls;
	(void)conn;
	req->up_done = 1;
	req->up_cb(req->up_arg, sock, extra, extra_len, urh);
}

void
http_upgrade(struct http_req *req, const char *headers[][2],
    http_upgrade_cb *cb, http_refused_cb *refused, void *arg)
{
	struct MHD_Response	*resp;
	size_t			 i;

	if ((resp = MHD_create_response_for_upgrade(http_upgraded, NULL)) ==
	    NULL)
		fatalx("out of memory");
	for (i = 0; headers[i][0] != NULL; i++)
		MHD_add_response_header(resp, headers[i][0], headers[i][1]);
	req->up_cb = cb;
	req->up_refused = refused;
	req->up_arg = arg;
	http_set_response(req, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
}

void
http_upgrade_close(void *urh)
{
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	http_schedule();
}

/* The access handler. */

static void
http_peer_name(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo	*ci;
	const struct sockaddr		*sa;

	snprintf(buf, len, "?");
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, len);
}

/* Route, method and token: any failure is the reply, sent at once. */
static void
http_admit(struct http_req *req)
{
	const char	*tok;
	int		 known;

	req->route = http_route_find(req, &known);
	if (req->route == NULL) {
		if (known)
			http_error(req, 405, "Method Not Allowed",
			    "%s is not allowed on %s", req->method, req->path);
		else
			http_error(req, 404, "Not Found", "no such resource");
		return;
	}
	if (req->route->auth == HTTP_OPEN)
		return;
	tok = token_from_request(http_header(req, "Authorization"),
	    http_query(req, "token"));
	if (tok == NULL || token_check(tok, &req->uid) != 0) {
		http_error(req, 401, "Unauthorized", "%s",
		    tok == NULL ? "a token is required" :
		    "the token is not valid");
	}
}

static void
http_too_big(struct http_req *req)
{
	http_error(req, 413, "Payload Too Large", "the body is over %zu "
	    "bytes", req->route->body_max);
}

static enum MHD_Result
http_queue(struct http_req *req)
{
	enum MHD_Result	r;

	r = MHD_queue_response(req->conn, req->status, req->resp);
	MHD_destroy_response(req->resp);
	req->resp = NULL;
	return (r);
}

static struct http_req *
http_req_new(struct MHD_Connection *conn, const char *url, const char *method)
{
	struct http_req	*req;

	req = xcalloc(1, sizeof *req);
	req->conn = conn;
	req->uid = (uid_t)-1;
	snprintf(req->method, sizeof req->method, "%s", method);
	req->path = xstrdup(url);
	http_peer_name(conn, req->peer, sizeof req->peer);
	TAILQ_INSERT_TAIL(&http_reqs, req, entry);
	return (req);
}

/*
 * A body chunk: to the route's sink, or into the bounded buffer. Past
 * body_max, or once the sink has answered, the rest is read and dropped,
 * so the client gets its answer rather than a reset; past
 * HTTP_DISCARD_MAX it is abuse, and gets the answer now.
 */
static enum MHD_Result
http_body_chunk(struct http_req *req, const char *data, size_t *data_len)
{
	size_t	len = *data_len;

	*data_len = 0;
	if (!req->too_big && !req->sink_done &&
	    req->body_len + len > req->route->body_max)
		req->too_big = 1;
	if (req->too_big || req->sink_done) {
		req->dropped += len;
		if (req->dropped <= HTTP_DISCARD_MAX)
			return (MHD_YES);
		if (req->resp == NULL)
			http_too_big(req);
		return (http_queue(req));
	}
	req->body_len += len;
	if (req->route->body_sink != NULL) {
		if (req->route->body_sink(req, data, len) != 0 ||
		    req->resp != NULL)
			req->sink_done = 1;
		return (MHD_YES);
	}
	req->body = xrealloc(req->body, req->body_len + 1);
	memcpy(req->body + req->body_len - len, data, len);
	req->body[req->body_len] = '\0';
	return (MHD_YES);
}

/* The whole body is in: end the sink, run the handler. */
static void
http_handle(struct http_req *req)
{
	req->ran = 1;
	log_debug("%s %s from %s uid %d", req->method, req->path, req->peer,
	    (int)req->uid);
	if (req->route->body_sink != NULL && !req->sink_done) {
		req->sink_done = 1;
		if (req->route->body_sink(req, NULL, 0) != 0 &&
		    req->resp == NULL)
			http_error(req, 500, "Internal Server Error",
			    "the upload failed");
	}
	if (req->resp == NULL && !req->suspended)
		req->route->fn(req);
	if (req->resp == NULL && !req->suspended)
		http_error(req, 500, "Internal Server Error",
		    "the handler gave no reply");
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *data,
    size_t *data_len, void **con_cls)
{
	struct http_req	*req = *con_cls;

	(void)cls;
	(void)version;
	if (req == NULL) {
		*con_cls = req = http_req_new(conn, url, method);
		http_admit(req);
		if (req->resp == NULL)
			return (MHD_YES);
		req->refused = 1;
		return (http_queue(req));
	}
	/* Refused at the door: nothing of it is read or run, ever. */
	if (req->refused) {
		*data_len = 0;
		return (MHD_YES);
	}
	if (*data_len != 0)
		return (http_body_chunk(req, data, data_len));
	if (req->resp != NULL)
		return (http_queue(req));
	if (req->too_big) {
		http_too_big(req);
		return (http_queue(req));
	}
	if (!req->ran)
		http_handle(req);
	if (req->resp != NULL)
		return (http_queue(req));
	return (MHD_YES);
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode why)
{
	struct http_req	*req = *con_cls;
	struct http_req	**pp;

	(void)cls;
	(void)conn;
	if (req == NULL)
		return;
	if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK || req->suspended)
		http_closed(req);
	else
		req->close_fn = NULL;
	for (pp = &http_suspended; *pp != NULL; pp = &(*pp)->next_suspended) {
		if (*pp == req) {
			*pp = req->next_suspended;
			break;
		}
	}
	if (req->up_cb != NULL && !req->up_done && req->up_refused != NULL)
		req->up_refused(req->up_arg);
	if (req->stream != NULL)
		req->stream->req = NULL;
	if (req->resp != NULL)
		MHD_destroy_response(req->resp);
	TAILQ_REMOVE(&http_reqs, req, entry);
	free(req->path);
	free(req->body);
	free(req);
	*con_cls = NULL;
}

/* The front's connection gauge (WebSockets are counted again as "ws"). */
static void
http_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
    enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	(void)conn;
	(void)socket_ctx;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		http_nconns++;
	else if (code == MHD_CONNECTION_NOTIFY_CLOSED && http_nconns > 0)
		http_nconns--;
	metrics_set_connections("http", http_nconns);
}

/*
 * %-decoding of the path and the query: a %00 would end the C string the
 * routes see and quietly name another thing ("a%00b" as "a"), so a
 * decoded NUL becomes "/..", which no route matches (404) and no files
 * path passes (400).
 */
static size_t
http_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	size_t	n;

	(void)cls;
	(void)conn;
	n = MHD_http_unescape(s);
	if (memchr(s, '\0', n) == NULL)
		return (n);
	memcpy(s, "/..", 4);	/* "%00" had three bytes at least */
	return (3);
}

static void
http_log(void *cls, const char *fmt, va_list ap)
{
	char	*msg;

	(void)cls;
	if (vasprintf(&msg, fmt, ap) == -1)
		return;
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("libmicrohttpd: %s", msg);
	free(msg);
}

/* Driving libmicrohttpd from the loop. */

static void
http_run_timer(void *arg)
{
	(void)arg;
	http_timer = NULL;	/* one-shot: gone once it fires */
	http_run();
}

static void
http_schedule(void)
{
	MHD_UNSIGNED_LONG_LONG	to;

	if (http_daemon == NULL || http_in_run)
		return;
	if (MHD_get_timeout(http_daemon, &to) != MHD_YES)
		to = 1000;
	if (to > 1000)
		to = 1000;
	loop_timer_cancel(&http_timer);
	http_timer = loop_timer_add(to, http_run_timer, NULL);
}

static void
http_kick_timer(void *arg)
{
	(void)arg;
	http_kick_at = NULL;
	http_run();
	if (http_kicks_left > 0 && http_daemon != NULL) {
		http_kicks_left--;
		http_kick_at = loop_timer_add(0, http_kick_timer, NULL);
	}
}

/* MHD_run now and once more right after, from the loop, not from here. */
static void
http_kick(void)
{
	http_kicks_left = 1;
	if (http_kick_at == NULL)
		http_kick_at = loop_timer_add(0, http_kick_timer, NULL);
}

static void
http_run(void)
{
	if (http_daemon == NULL)
		return;
	http_in_run = 1;
	MHD_run(http_daemon);
	http_in_run = 0;
	http_schedule();
}

static void
http_epoll_event(int fd, uint32_t events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	http_run();
}

/*
 * libmicrohttpd does not watch a suspended connection, so a client that
 * hangs up on a parked stream or a wait would go unnoticed: peek at its
 * socket. EOF or an error is a client gone; bytes (a pipelined request)
 * or nothing yet is a client still there.
 */
static int
http_client_gone(struct http_req *req)
{
	const union MHD_ConnectionInfo	*ci;
	char				 c;
	ssize_t				 n;

	ci = MHD_get_connection_info(req->conn,
	    MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return (0);
	n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0 || (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR)))
		return (0);
	return (1);
}

/* Tell the owner once; afterwards the request is libmicrohttpd's to end. */
static void
http_closed(struct http_req *req)
{
	http_close_fn	*fn = req->close_fn;

	req->gone = 1;
	if (req->stream != NULL)
		req->stream->broken = 1;
	req->close_fn = NULL;
	if (fn != NULL)
		fn(req, req->close_arg);
}

static void
http_drop(struct http_req *req)
{
	http_closed(req);
	if (req->parked) {
		req->parked = 0;
		MHD_resume_connection(req->conn);
	} else if (req->suspended)
		http_error(req, 499, "Client Closed Request", "the client "
		    "went away");
	http_schedule();
}

/*
 * A suspended request waits for something in the core (a kernel start);
 * if that never answers, the client still gets an answer, not a hang.
 */
static void
http_sweep(void *arg)
{
	struct http_req	*req, *next;
	uint64_t	 now = loop_now();

	(void)arg;
	http_sweep_timer = NULL;
	for (req = TAILQ_FIRST(&http_reqs); req != NULL; req = next) {
		next = TAILQ_NEXT(req, entry);
		if ((!req->suspended && !req->parked) || req->gone)
			continue;
		if (http_client_gone(req))
			http_drop(req);
		else if (req->suspended && now - req->suspended_at >
		    HTTP_SUSPEND_MAX) {
			/*
			 * The waiter must hear it before the request goes,
			 * or it answers a freed request later.
			 */
			http_closed(req);
			req->gone = 0;
			http_error(req, 504, "Gateway Timeout", "no answer "
			    "from the kernel in time");
		}
	}
	http_sweep_timer = loop_timer_add(HTTP_SWEEP_EVERY, http_sweep, NULL);
}

/* Streams and the close callback. */

void
http_on_close(struct http_req *req, http_close_fn *fn, void *arg)
{
	req->close_fn = fn;
	req->close_arg = arg;
}

static ssize_t
http_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_stream	*st = cls;
	size_t			 n;

	(void)pos;
	if (st->broken || st->req == NULL)
		return (MHD_CONTENT_READER_END_WITH_ERROR);
	if (st->off == st->len) {
		if (st->ended)
			return (MHD_CONTENT_READER_END_OF_STREAM);
		/* Nothing yet: park; http_stream_write resumes it. */
		st->req->parked = 1;
		MHD_suspend_connection(st->req->conn);
		return (0);
	}
	n = st->len - st->off;
	if (n > max)
		n = max;
	memcpy(buf, st->buf + st->off, n);
	st->off += n;
	if (st->off == st->len)
		st->off = st->len = 0;
	return ((ssize_t)n);
}

static void
http_stream_free(void *cls)
{
	struct http_stream	*st = cls;

	if (st->req != NULL)
		st->req->stream = NULL;
	free(st->buf);
	free(st);
}

/*
 * A resumed connection is taken up by the next MHD_run, and its bytes go
 * out by the one after: run soon rather than at libmicrohttpd's timeout.
 */
static void
http_stream_wake(struct http_req *req)
{
	if (req->parked) {
		req->parked = 0;
		MHD_resume_connection(req->conn);
	}
	http_kick();
}

int
http_stream_begin(struct http_req *req, u_int status, const char *ctype)
{
	struct MHD_Response	*resp;
	struct http_stream	*st;

	if (req->gone || req->resp != NULL || req->stream != NULL)
		return (-1);
	st = xcalloc(1, sizeof *st);
	st->req = req;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
	    http_stream_read, st, http_stream_free);
	if (resp == NULL)
		fatalx("out of memory");
	if (ctype != NULL)
		MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	req->stream = st;
	http_set_response(req, status, resp);
	return (0);
}

int
http_stream_write(struct http_req *req, const void *buf, size_t len)
{
	struct http_stream	*st = req->stream;

	if (req->gone || st == NULL || st->broken || st->ended)
		return (-1);
	if (st->len - st->off + len > HTTP_STREAM_MAX) {
		log_warn("%s %s from %s: the client reads too slowly; dropped",
		    req->method, req->path, req->peer);
		st->broken = 1;
		http_stream_wake(req);
		return (-1);
	}
	if (st->off != 0) {
		memmove(st->buf, st->buf + st->off, st->len - st->off);
		st->len -= st->off;
		st->off = 0;
	}
	st->buf = xrealloc(st->buf, st->len + len + 1);
	memcpy(st->buf + st->len, buf, len);
	st->len += len;
	http_stream_wake(req);
	return (0);
}

void
http_stream_end(struct http_req *req)
{
	if (req->stream == NULL || req->stream->ended)
		return;
	req->stream->ended = 1;
	req->close_fn = NULL;	/* the exchange is over: no close to hear */
	http_stream_wake(req);
}

/* Listening. */

static int
http_parse_listen(const char *spec, struct sockaddr_storage *ss,
    socklen_t *sslen, char **cause)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 host[256];
	const char		*colon, *h, *port;
	char			*end;
	long			 p;
	size_t			 hl;

	memset(ss, 0, sizeof *ss);
	if ((colon = strrchr(spec, ':')) == NULL)
		goto bad;
	port = colon + 1;
	h = spec;
	hl = colon - spec;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof host)
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535)
		goto bad;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(p);
		*sslen = sizeof *sin;
		return (0);
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(p);
		*sslen = sizeof *sin6;
		return (0);
	}
bad:
	xasprintf(cause, "http-listen: '%s' is not ADDRESS:PORT or off", spec);
	return (-1);
}

static int
http_listen(char **cause)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 host[64];
	int			 fd, one = 1;

	if (http_parse_listen(cfg.http_listen, &ss, &sslen, cause) != 0)
		return (-1);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		xasprintf(cause, "http: socket: %s", strerror(errno));
		return (-1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 ||
	    listen(fd, HTTP_BACKLOG) != 0) {
		xasprintf(cause, "http: cannot listen on %s: %s",
		    cfg.http_listen, strerror(errno));
		close(fd);
		return (-1);
	}
	sslen = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sslen);
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    host, sizeof host);
		http_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		xasprintf(&http_base_url, "%s://%s:%d", http_tls_mem[0] ?
		    "https" : "http", host, http_port);
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    host, sizeof host);
		http_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		xasprintf(&http_base_url, "%s://[%s]:%d", http_tls_mem[0] ?
		    "https" : "http", host, http_port);
	}
	http_listen_fd = fd;
	return (0);
}

static char *
http_read_pem(const char *path, char **cause)
{
	char	*buf;
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		xasprintf(cause, "http: %s: %s", path, strerror(errno));
		return (NULL);
	}
	buf = xmalloc(65537);
	while (len < 65536 && (n = read(fd, buf + len, 65536 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = '\0';
	return (buf);
}

static int
http_tls_load(char **cause)
{
	if (*cfg.http_tls_cert == '\0' && *cfg.http_tls_key == '\0')
		return (0);
	if (*cfg.http_tls_cert == '\0' || *cfg.http_tls_key == '\0') {
		xasprintf(cause, "http: http-tls-cert and http-tls-key go "
		    "together");
		return (-1);
	}
	if ((http_tls_mem[0] = http_read_pem(cfg.http_tls_cert, cause)) ==
	    NULL)
		return (-1);
	if ((http_tls_mem[1] = http_read_pem(cfg.http_tls_key, cause)) ==
	    NULL)
		return (-1);
	return (0);
}

/* STATE_DIR/http.json: where the front listens, for scripts and tests. */
static void
http_write_file(void)
{
	json_t	*j = http_describe();
	char	*tmp;

	xasprintf(&http_file, "%s/http.json", server_state_dir);
	xasprintf(&tmp, "%s.tmp", http_file);
	if (json_dump_file(j, tmp, JSON_COMPACT) != 0 ||
	    chmod(tmp, 0644) != 0 || rename(tmp, http_file) != 0)
		log_warn("cannot write %s", http_file);
	free(tmp);
	json_decref(j);
}

static int
http_daemon_start(char **cause)
{
	const union MHD_DaemonInfo	*di;
	struct MHD_OptionItem		 opts[16];
	u_int				 n = 0, flags;

#define OPT(o, v, p) do {						\
	opts[n].option = (o);						\
	opts[n].value = (intptr_t)(v);					\
	opts[n++].ptr_value = (p);					\
} while (0)
	OPT(MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL);
	OPT(MHD_OPTION_LISTEN_SOCKET, http_listen_fd, NULL);
	OPT(MHD_OPTION_CONNECTION_LIMIT, cfg.http_max_conns, NULL);
	OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg.http_max_peer_conns,
	    NULL);
	OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg.http_timeout, NULL);
	OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_HEADERS_MAX, NULL);
	OPT(MHD_OPTION_NOTIFY_COMPLETED, http_completed, NULL);
	OPT(MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, NULL);
	OPT(MHD_OPTION_NOTIFY_CONNECTION, http_connection, NULL);
	if (http_tls_mem[0] != NULL) {
		OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, http_tls_mem[0]);
		OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, http_tls_mem[1]);
	}
	OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
	flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
	    MHD_USE_ERROR_LOG;
	if (http_tls_mem[0] != NULL)
		flags |= MHD_USE_TLS;
	http_daemon = MHD_start_daemon(flags, 0, NULL, NULL, http_access,
	    NULL, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (http_daemon == NULL) {
		xasprintf(cause, "http: libmicrohttpd would not start");
		return (-1);
	}
	di = MHD_get_daemon_info(http_daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (di == NULL)
		fatalx("libmicrohttpd has no epoll descriptor");
	http_epoll_io = loop_io_add(di->epoll_fd, EPOLLIN, http_epoll_event,
	    NULL);
	return (0);
}

int
http_start(char **cause)
{
	if (strcmp(cfg.http_listen, "off") == 0 || *cfg.http_listen == '\0') {
		log_info("http: off");
		return (0);
	}
	if (token_load(cause) != 0)
		return (-1);
	if (http_tls_load(cause) != 0 || http_listen(cause) != 0)
		return (-1);
	if (http_daemon_start(cause) != 0) {
		close(http_listen_fd);
		http_listen_fd = -1;
		return (-1);
	}
	http_write_file();
	http_schedule();
	http_sweep_timer = loop_timer_add(HTTP_SWEEP_EVERY, http_sweep, NULL);
	log_info("http: listening on %s (libmicrohttpd %s)", http_base_url,
	    MHD_get_version());
	return (0);
}

void
http_stop(void)
{
	if (http_daemon == NULL)
		return;
	while (http_suspended != NULL)
		http_error(http_suspended, 503, "Service Unavailable",
		    "the daemon is stopping");
	loop_timer_cancel(&http_timer);
	loop_timer_cancel(&http_sweep_timer);
	loop_timer_cancel(&http_kick_at);
	loop_io_remove(&http_epoll_io);
	MHD_stop_daemon(http_daemon);
	http_daemon = NULL;
	close(http_listen_fd);
	http_listen_fd = -1;
	if (http_file != NULL)
		unlink(http_file);
}

const char *
http_url(void)
{
	return (http_base_url);
}

/* For `cellblock ping` and http.json: null when the front is off. */
json_t *
http_describe(void)
{
	if (http_daemon == NULL && http_base_url == NULL)
		return (json_null());
	return (json_pack("{s:s,s:i,s:b}", "url", http_base_url, "port",
	    http_port, "tls", http_tls_mem[0] != NULL));
}
