/* mcp-http.c: /mcp on the HTTP front, MCP's Streamable HTTP transport over the one engine. */
/*
 * One endpoint (the 2025-03-26 and later revisions):
 * - POST /mcp carries one message (or a 2025-03-26 batch). Notifications
 *   and responses alone: 202, no body. Requests: answered as JSON when
 *   every answer is ready at once (ping, tools/list, most tools), else as
 *   a text/event-stream whose events are that request's progress and,
 *   last, its response; the stream then ends.
 * - An initialize without Mcp-Session-Id makes an MCP session: a struct
 *   mcp for the token's owner, its id in the Mcp-Session-Id header of
 *   the answer; every later request carries it (400 without, 404 for an
 *   unknown or ended one, as the spec says, so the client starts again).
 * - GET /mcp opens the session's server stream (its logging messages).
 * - DELETE /mcp ends the session; calls running keep running.
 * Tokens are the gateway's (http_uid is the owner); a session is seen by
 * its owner only. Origin, when a browser sends one, must be the front's
 * own host or a loopback name: the DNS-rebinding guard the spec asks for.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "mcp.h"
#include "http.h"

#define MCP_HTTP_SESSIONS_MAX	64	/* MCP sessions per owner */
#define MCP_HTTP_IDLE		3600	/* s an unused MCP session lives */
#define MCP_HTTP_SWEEP		60000	/* ms between idle sweeps */

struct mcp_http;

/* One POST waiting for the answers to its requests. */
struct mcp_http_post {
	struct mcp_http		*sess;
	struct http_req		*req;		/* NULL once the client left */
	json_t			*ids;		/* ids still unanswered */
	json_t			*early;		/* answers before the mode */
	int			 streaming;	/* an SSE reply has begun */
	int			 batch;		/* answer with an array */
	struct mcp_http_post	*next;
};

struct mcp_http {
	char			 id[33];	/* Mcp-Session-Id: 128 random bits */
	uid_t			 uid;
	struct mcp		*mcp;
	time_t			 used;
	struct http_req		*get;		/* the server stream, or NULL */
	struct mcp_http_post	*posts;
	struct mcp_http		*next;
};

static struct mcp_http	*mcp_http_all;
static struct loop_timer *mcp_http_timer;

static void	mcp_http_post(struct http_req *);
static void	mcp_http_get(struct http_req *);
static void	mcp_http_delete(struct http_req *);

/* Legend: as struct http_route (server/http.h). */
static const struct http_route mcp_http_routes[] = {
	{ "POST", "/mcp", mcp_http_post, HTTP_TOKEN, MCP_MESSAGE_MAX, NULL },
	{ "GET", "/mcp", mcp_http_get, HTTP_TOKEN, 0, NULL },
	{ "DELETE", "/mcp", mcp_http_delete, HTTP_TOKEN, 0, NULL },
};

/* An SSE event of one message. */
static int
mcp_http_event(struct http_req *req, json_t *msg)
{
	char	*s, *ev;
	int	 rc;

	if ((s = json_dumps(msg, JSON_COMPACT)) == NULL)
		return (-1);
	xasprintf(&ev, "event: message\ndata: %s\n\n", s);
	rc = http_stream_write(req, ev, strlen(ev));
	free(ev);
	free(s);
	return (rc);
}

/* Is id one this POST still waits for? Then it is no longer. */
static int
mcp_http_take_id(struct mcp_http_post *p, json_t *id)
{
	json_t	*v;
	size_t	 i;

	json_array_foreach(p->ids, i, v) {
		if (json_equal(v, id)) {
			json_array_remove(p->ids, i);
			return (1);
		}
	}
	return (0);
}

static int
mcp_http_waits_for(struct mcp_http_post *p, json_t *id)
{
	json_t	*v;
	size_t	 i;

	json_array_foreach(p->ids, i, v) {
		if (json_equal(v, id))
			return (1);
	}
	return (0);
}

static void
mcp_http_post_free(struct mcp_http_post *p)
{
	struct mcp_http_post	**pp;

	for (pp = &p->sess->posts; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	json_decref(p->ids);
	json_decref(p->early);
	free(p);
}

/* The client hung up: its answers have nowhere to go (calls run on). */
static void
mcp_http_post_closed(struct http_req *req, void *arg)
{
	struct mcp_http_post	*p = arg;

	(void)req;
	p->req = NULL;
	if (json_array_size(p->ids) == 0)
		mcp_http_post_free(p);
}

static void
mcp_http_get_closed(struct http_req *req, void *arg)
{
	struct mcp_http	*h = arg;

	if (h->get == req)
		h->get = NULL;
}

/* A message of the engine: to the POST it answers, or the server stream. */
static void
mcp_http_out(void *arg, json_t *msg, json_t *about)
{
	struct mcp_http		*h = arg;
	struct mcp_http_post	*p;
	int			 response;

	response = json_object_get(msg, "method") == NULL;
	if (about == NULL && response)
		about = json_null();	/* a bad frame's error: its POST's */
	for (p = about != NULL ? h->posts : NULL; p != NULL; p = p->next) {
		if (mcp_http_waits_for(p, about))
			break;
	}
	if (p == NULL) {
		/* Unrelated (logging), or an error with no id (a bad frame). */
		if (h->get != NULL)
			mcp_http_event(h->get, msg);
		return;
	}
	if (response)
		mcp_http_take_id(p, about);
	if (p->req == NULL) {
		if (json_array_size(p->ids) == 0)
			mcp_http_post_free(p);
		return;
	}
	if (!p->streaming) {
		json_array_append(p->early, msg);
		return;
	}
	mcp_http_event(p->req, msg);
	if (json_array_size(p->ids) == 0) {
		http_stream_end(p->req);
		mcp_http_post_free(p);
	}
}

static struct mcp_http *
mcp_http_find(const char *id, uid_t uid)
{
	struct mcp_http	*h;

	for (h = mcp_http_all; id != NULL && h != NULL; h = h->next) {
		if (strcmp(h->id, id) == 0 && h->uid == uid)
			return (h);
	}
	return (NULL);
}

static void
mcp_http_end(struct mcp_http *h)
{
	struct mcp_http		**hh;
	struct mcp_http_post	*p;

	for (hh = &mcp_http_all; *hh != NULL; hh = &(*hh)->next) {
		if (*hh == h) {
			*hh = h->next;
			break;
		}
	}
	mcp_free(&h->mcp);
	while ((p = h->posts) != NULL) {
		if (p->req != NULL) {
			http_on_close(p->req, NULL, NULL);
			if (p->streaming)
				http_stream_end(p->req);
			else
				http_error(p->req, 404, "Not Found", "the MCP "
				    "session ended");
		}
		mcp_http_post_free(p);
	}
	if (h->get != NULL) {
		http_on_close(h->get, NULL, NULL);
		http_stream_end(h->get);
	}
	log_info("mcp: uid %u: http session %.8s... ended", (u_int)h->uid,
	    h->id);
	free(h);
}

static void
mcp_http_sweep(void *arg)
{
	struct mcp_http	*h, *next;
	time_t		 now = time(NULL);

	(void)arg;
	mcp_http_timer = NULL;
	for (h = mcp_http_all; h != NULL; h = next) {
		next = h->next;
		if (h->posts == NULL && h->get == NULL &&
		    now - h->used > MCP_HTTP_IDLE)
			mcp_http_end(h);
	}
	mcp_http_timer = loop_timer_add(MCP_HTTP_SWEEP, mcp_http_sweep, NULL);
}

static struct mcp_http *
mcp_http_new(uid_t uid, char **cause)
{
	struct mcp_http	*h;
	u_char		 rnd[16];
	u_int		 n = 0;

	for (h = mcp_http_all; h != NULL; h = h->next)
		n += h->uid == uid;
	if (n >= MCP_HTTP_SESSIONS_MAX) {
		xasprintf(cause, "%u MCP sessions open for this owner; DELETE "
		    "one first", n);
		return (NULL);
	}
	h = xcalloc(1, sizeof *h);
	randombytes_buf(rnd, sizeof rnd);
	sodium_bin2hex(h->id, sizeof h->id, rnd, sizeof rnd);
	h->uid = uid;
	h->used = time(NULL);
	h->mcp = mcp_new(uid, "http", mcp_http_out, h);
	h->next = mcp_http_all;
	mcp_http_all = h;
	if (mcp_http_timer == NULL)
		mcp_http_timer = loop_timer_add(MCP_HTTP_SWEEP, mcp_http_sweep,
		    NULL);
	return (h);
}

/* Origin's host (between "://" and the port or path). */
static int
mcp_http_origin_host(const char *origin, char *host, size_t len)
{
	const char	*p = strstr(origin, "://"), *end;

	if (p == NULL)
		return (-1);
	p += 3;
	if (*p == '[')
		end = strchr(p, ']') != NULL ? strchr(p, ']') + 1 : NULL;
	else
		end = p + strcspn(p, ":/");
	if (end == NULL || (size_t)(end - p) >= len)
		return (-1);
	memcpy(host, p, end - p);
	host[end - p] = '\0';
	return (0);
}

/*
 * No Origin: not a browser, nothing to rebind. Else its host must be a
 * loopback name or the host this request was sent to.
 */
static int
mcp_http_origin_ok(struct http_req *req)
{
	const char	*origin = http_header(req, "Origin");
	const char	*to = http_header(req, "Host");
	char		 host[256], url[300], want[256];

	if (origin == NULL)
		return (1);
	if (mcp_http_origin_host(origin, host, sizeof host) != 0)
		return (0);
	if (strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 ||
	    strcmp(host, "[::1]") == 0)
		return (1);
	if (to == NULL)
		return (0);
	snprintf(url, sizeof url, "http://%s", to);
	if (mcp_http_origin_host(url, want, sizeof want) != 0)
		return (0);
	return (strcmp(host, want) == 0);
}

/*
 * The checks every method shares. 0 with *hp the session (NULL: none
 * named, which only an initialize may do), or -1 when answered already.
 */
static int
mcp_http_session(struct http_req *req, int may_be_new, struct mcp_http **hp)
{
	const char	*id = http_header(req, "Mcp-Session-Id");
	const char	*v = http_header(req, "MCP-Protocol-Version");

	*hp = NULL;
	if (!mcp_http_origin_ok(req)) {
		http_error(req, 403, "Forbidden", "Origin %s is not allowed",
		    http_header(req, "Origin"));
		return (-1);
	}
	if (v != NULL && !mcp_version_supported(v)) {
		http_error(req, 400, "Bad Request", "MCP-Protocol-Version %.32s "
		    "is not one this server speaks (%s and older to "
		    "2025-03-26)", v, MCP_PROTOCOL_LATEST);
		return (-1);
	}
	if (id == NULL) {
		if (may_be_new)
			return (0);
		http_error(req, 400, "Bad Request", "no Mcp-Session-Id: "
		    "initialize first");
		return (-1);
	}
	if ((*hp = mcp_http_find(id, http_uid(req))) == NULL) {
		http_error(req, 404, "Not Found", "no such MCP session (it "
		    "ended, or the daemon restarted): initialize again");
		return (-1);
	}
	(*hp)->used = time(NULL);
	return (0);
}

static void
mcp_http_request_id(json_t *el, json_t *ids, int *initialize)
{
	const char	*method = json_string_value(json_object_get(el,
			    "method"));
	json_t		*id = json_object_get(el, "id");

	if (method == NULL)
		return;
	if (strcmp(method, "initialize") == 0)
		*initialize = 1;
	if (json_is_string(id) || json_is_integer(id))
		json_array_append(ids, id);
}

/* The ids of the requests in a message or a batch. */
static json_t *
mcp_http_request_ids(json_t *msg, int *initialize)
{
	json_t	*ids = json_array(), *el;
	size_t	 i;

	if (json_is_array(msg)) {
		json_array_foreach(msg, i, el)
			mcp_http_request_id(el, ids, initialize);
	} else
		mcp_http_request_id(msg, ids, initialize);
	return (ids);
}

/* The answers ready at once go as JSON; a call still running streams. */
static void
mcp_http_answer(struct mcp_http_post *p)
{
	json_t	*msg;
	size_t	 i;

	if (json_array_size(p->ids) == 0) {
		if (p->batch)
			http_reply_json(p->req, 200, json_incref(p->early));
		else
			http_reply_json(p->req, 200, json_incref(
			    json_array_get(p->early, 0)));
		mcp_http_post_free(p);
		return;
	}
	if (http_stream_begin(p->req, 200, "text/event-stream") != 0) {
		p->req = NULL;
		return;
	}
	p->streaming = 1;
	http_on_close(p->req, mcp_http_post_closed, p);
	json_array_foreach(p->early, i, msg)
		mcp_http_event(p->req, msg);
	json_array_clear(p->early);
}

static void
mcp_http_post(struct http_req *req)
{
	struct mcp_http		*h;
	struct mcp_http_post	*p;
	const char		*body;
	size_t			 len;
	json_t			*msg, *ids;
	int			 init = 0;
	char			*cause;

	body = http_body(req, &len);
	msg = json_loadb(body != NULL ? body : "", len, JSON_DECODE_ANY, NULL);
	ids = mcp_http_request_ids(msg, &init);
	if (mcp_http_session(req, init, &h) != 0) {
		json_decref(msg);
		json_decref(ids);
		return;		/* answered */
	}
	if (h == NULL && (h = mcp_http_new(http_uid(req), &cause)) == NULL) {
		http_error(req, 429, "Too Many Requests", "%s", cause);
		free(cause);
		json_decref(msg);
		json_decref(ids);
		return;
	}
	if (init)
		http_reply_header(req, "Mcp-Session-Id", h->id);
	p = xcalloc(1, sizeof *p);
	p->sess = h;
	p->req = req;
	p->ids = ids;
	p->early = json_array();
	p->batch = json_is_array(msg);
	p->next = h->posts;
	h->posts = p;
	/*
	 * A bad frame has no id to wait for but still gets its error: wait
	 * for one answer then (the engine always answers one).
	 */
	if (json_array_size(ids) == 0 && (msg == NULL || !json_is_object(
	    msg) || json_object_get(msg, "jsonrpc") == NULL))
		json_array_append_new(p->ids, json_null());
	json_decref(msg);
	if (json_array_size(p->ids) == 0) {
		mcp_input(h->mcp, body, len);
		http_reply(req, 202, NULL, "", 0);
		mcp_http_post_free(p);
		return;
	}
	mcp_input(h->mcp, body != NULL ? body : "", len);
	mcp_http_answer(p);
}

static void
mcp_http_get(struct http_req *req)
{
	struct mcp_http	*h;
	const char	*accept = http_header(req, "Accept");

	if (mcp_http_session(req, 0, &h) != 0)
		return;
	if (accept == NULL || strstr(accept, "text/event-stream") == NULL) {
		http_error(req, 406, "Not Acceptable", "the server stream is "
		    "text/event-stream");
		return;
	}
	if (h->get != NULL) {
		http_error(req, 409, "Conflict", "this MCP session's stream is "
		    "open already");
		return;
	}
	if (http_stream_begin(req, 200, "text/event-stream") != 0)
		return;
	h->get = req;
	http_on_close(req, mcp_http_get_closed, h);
	http_stream_write(req, ": cellblock\n\n", 13);
}

static void
mcp_http_delete(struct http_req *req)
{
	struct mcp_http	*h;

	if (mcp_http_session(req, 0, &h) != 0)
		return;
	mcp_http_end(h);
	http_reply(req, 204, NULL, "", 0);
}

void
mcp_http_register(void)
{
	http_register("mcp", mcp_http_routes, nitems(mcp_http_routes));
}

void
mcp_http_stop(void)
{
	while (mcp_http_all != NULL)
		mcp_http_end(mcp_http_all);
	loop_timer_cancel(&mcp_http_timer);
}
