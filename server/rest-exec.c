/* rest-exec.c: POST /v1/sessions/{name}/execute and GET /v1/executions/{id}. */
/*
 * An execute is a contract (server/contract.c): the same queue, busy/idle,
 * caps and aborts as every client's execute_request. This file only
 * carries it over HTTP, three ways, chosen by the Accept header:
 *
 *   application/json (default)  the request waits; the reply is the
 *                               contract (HTTP 429 when queue_full)
 *   application/x-ndjson        one JSON event per line as they happen,
 *                               the last {"type": "contract", "contract"}
 *   text/event-stream           the same events as SSE (event: TYPE)
 *
 * A streamed reply starts with {"type": "accepted", "id": ...}. A client
 * that goes away (or reads too slowly for the front's stream buffer)
 * only loses its view: the contract is detached, the cell runs on, the
 * session and its state stay, and GET /v1/executions/{id} returns the
 * contract for CONTRACT_KEEP_SECONDS.
 */

#include <sys/types.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "http.h"
#include "contract.h"
#include "rest.h"

#define REST_EXEC_TIMEOUT_MAX	(7 * 24 * 3600)	/* seconds a call may ask */
/*
 * The largest one write down a stream may be: the front holds at most
 * HTTP_STREAM_MAX unread, and a 16 MiB plot would otherwise cost the
 * client its stream. Bigger events go as a stub naming their size; a
 * bigger contract goes without its results, and GET /v1/executions/{id}
 * (a plain reply, no such bound) has it whole.
 */
#define REST_WRITE_MAX		(HTTP_STREAM_MAX / 2)

enum rest_exec_mode { REST_WAIT, REST_NDJSON, REST_SSE };

/*
 * One call. Freed from the loop (rest_exec_finish), never inside a
 * contract or HTTP callback: either may still be on the stack.
 */
struct rest_exec {
	struct http_req		*req;	/* NULL once replied or gone */
	struct contract		*ct;	/* NULL until contract_run returns */
	enum rest_exec_mode	 mode;
	int			 done;	/* the contract ended */
	int			 started; /* the stream has begun */
	json_t			*early;	/* events before it had: sent first */
	int			 finishing;
	struct loop_timer	*timer;
};

static void	rest_exec_finish(struct rest_exec *);

/*
 * A POST .../execute body as a contract request (the strings stay the
 * body's: free it after the call). Pure: the fuzz harness drives it.
 */
int
rest_exec_parse(json_t *body, struct contract_req *cr, char **cause)
{
	json_t		*code = json_object_get(body, "code");
	json_t		*t = json_object_get(body, "timeout");
	json_t		*in = json_object_get(body, "stdin");
	json_t		*sh = json_object_get(body, "store_history");
	json_t		*v;
	const char	*k;

	memset(cr, 0, sizeof *cr);
	cr->store_history = -1;
	cr->client = "rest";
	json_object_foreach(body, k, v) {
		if (strcmp(k, "code") != 0 && strcmp(k, "timeout") != 0 &&
		    strcmp(k, "stdin") != 0 &&
		    strcmp(k, "store_history") != 0) {
			xasprintf(cause, "%s: unknown field", k);
			return (-1);
		}
	}
	if (!json_is_string(code)) {
		xasprintf(cause, "code: %s", code == NULL ? "missing" :
		    "not a string");
		return (-1);
	}
	if (memchr(json_string_value(code), '\0',
	    json_string_length(code)) != NULL) {
		xasprintf(cause, "code: contains a NUL byte");
		return (-1);
	}
	cr->code = json_string_value(code);
	if (t != NULL && !json_is_null(t)) {
		if (!json_is_number(t) || !isfinite(json_number_value(t)) ||
		    json_number_value(t) <= 0 ||
		    json_number_value(t) > REST_EXEC_TIMEOUT_MAX) {
			xasprintf(cause, "timeout: seconds, a number in "
			    "(0, %d]", REST_EXEC_TIMEOUT_MAX);
			return (-1);
		}
		cr->timeout_ms = (int)ceil(json_number_value(t) * 1000);
	}
	if (in != NULL && !json_is_null(in)) {
		if (contract_stdin_valid(in, cause) != 0)
			return (-1);
		cr->stdin_lines = in;
	}
	if (sh != NULL && !json_is_null(sh)) {
		if (!json_is_boolean(sh)) {
			xasprintf(cause, "store_history: not a boolean");
			return (-1);
		}
		cr->store_history = json_is_true(sh);
	}
	return (0);
}

static enum rest_exec_mode
rest_exec_mode(struct http_req *req)
{
	const char	*accept = http_header(req, "Accept");

	if (accept == NULL)
		return (REST_WAIT);
	if (strstr(accept, "application/x-ndjson") != NULL)
		return (REST_NDJSON);
	if (strstr(accept, "text/event-stream") != NULL)
		return (REST_SSE);
	return (REST_WAIT);
}

/*
 * What goes instead of an event or contract over REST_WRITE_MAX: the
 * contract without results and with its output cut, or an event's type.
 */
static char *
rest_exec_stub(json_t *j, const char *type, struct rest_exec *x)
{
	json_t	*c, *inner;
	char	*s, *path;

	xasprintf(&path, "/v1/executions/%s", x->ct != NULL ?
	    contract_id(x->ct) : "");
	if (strcmp(type, "contract") != 0) {
		c = json_pack("{s:s,s:b,s:s}", "type", type, "omitted", 1,
		    "full", path);
		goto out;
	}
	c = json_deep_copy(j);
	inner = json_object_get(c, "contract");
	if (inner == NULL)
		inner = c;
	json_object_set_new(inner, "results", json_array());
	json_object_set_new(inner, "stdout", json_string(""));
	json_object_set_new(inner, "stderr", json_string(""));
	json_object_set_new(inner, "omitted", json_true());
	json_object_set_new(inner, "full", json_string(path));
out:
	free(path);
	if ((s = json_dumps(c, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
	json_decref(c);
	return (s);
}

/* One event down the stream; a client that is gone or too slow: drop it. */
static void
rest_exec_emit(struct rest_exec *x, const char *type, json_t *event)
{
	char	*line, *s;
	int	 r;

	if (x->req == NULL || x->mode == REST_WAIT)
		return;
	if (!x->started) {
		/* contract_run reports "queued" before it returns. */
		if (x->early == NULL)
			x->early = json_array();
		json_array_append_new(x->early, json_pack("{s:s,s:O}", "t",
		    type, "e", event));
		return;
	}
	if ((s = json_dumps(event, JSON_COMPACT)) == NULL)
		return;
	if (strlen(s) > REST_WRITE_MAX) {
		free(s);
		s = rest_exec_stub(event, type, x);
	}
	if (x->mode == REST_SSE)
		xasprintf(&line, "event: %s\ndata: %s\n\n", type, s);
	else
		xasprintf(&line, "%s\n", s);
	free(s);
	r = http_stream_write(x->req, line, strlen(line));
	free(line);
	if (r != 0) {
		/* The front ends the exchange; we only stop talking. */
		log_info("rest: execute %s: the client is gone; the call goes "
		    "on (GET /v1/executions/%s)", x->ct ? contract_id(x->ct) :
		    "-", x->ct ? contract_id(x->ct) : "-");
		http_on_close(x->req, NULL, NULL);
		x->req = NULL;
		rest_exec_finish(x);
	}
}

/* The events that came before the stream began, in order. */
static void
rest_exec_flush_early(struct rest_exec *x)
{
	json_t	*e;
	size_t	 i;

	json_array_foreach(x->early, i, e) {
		rest_exec_emit(x, json_string_value(json_object_get(e, "t")),
		    json_object_get(e, "e"));
	}
	json_decref(x->early);
	x->early = NULL;
}

static void
rest_exec_event(void *arg, json_t *event)
{
	struct rest_exec	*x = arg;
	const char		*type;

	type = json_string_value(json_object_get(event, "type"));
	rest_exec_emit(x, type != NULL ? type : "event", event);
}

static const char *
rest_exec_ctype(struct rest_exec *x)
{
	switch (x->mode) {
	case REST_NDJSON:
		return ("application/x-ndjson");
	case REST_SSE:
		return ("text/event-stream");
	default:
		return ("application/json");
	}
}

/* The last thing down the stream: the contract (alone, when waiting). */
static void
rest_exec_end(struct rest_exec *x, json_t *contract)
{
	json_t	*end;
	char	*s;

	if (x->mode == REST_WAIT) {
		if ((s = json_dumps(contract, JSON_COMPACT)) == NULL)
			fatalx("out of memory");
		if (strlen(s) > REST_WRITE_MAX) {
			free(s);
			s = rest_exec_stub(contract, "contract", x);
		}
		if (http_stream_write(x->req, s, strlen(s)) != 0)
			x->req = NULL;
		free(s);
	} else {
		end = json_pack("{s:s,s:O}", "type", "contract", "contract",
		    contract);
		rest_exec_emit(x, "contract", end);
		json_decref(end);
	}
	if (x->req != NULL) {
		http_stream_end(x->req);
		x->req = NULL;
	}
}

static void
rest_exec_done(void *arg, json_t *contract)
{
	struct rest_exec	*x = arg;
	const char		*status;

	x->done = 1;
	if (x->req == NULL)
		goto out;
	/* Ended before it was queued (queue_full): a plain reply. */
	if (x->ct == NULL && x->mode == REST_WAIT) {
		status = json_string_value(json_object_get(contract,
		    "status"));
		http_reply_json(x->req, status != NULL &&
		    strcmp(status, "queue_full") == 0 ? 429 : 200,
		    json_incref(contract));
		x->req = NULL;
		goto out;
	}
	if (x->ct == NULL && http_stream_begin(x->req, 200,
	    rest_exec_ctype(x)) != 0) {
		x->req = NULL;
		goto out;
	}
	x->started = 1;
	rest_exec_flush_early(x);
	if (x->req == NULL)
		goto out;
	http_on_close(x->req, NULL, NULL);
	rest_exec_end(x, contract);
out:
	if (x->ct != NULL)
		rest_exec_finish(x);
}

/* The client went away before the end: the call runs on, detached. */
static void
rest_exec_gone(struct http_req *req, void *arg)
{
	struct rest_exec	*x = arg;

	(void)req;
	x->req = NULL;
	rest_exec_finish(x);
}

static void
rest_exec_free(void *arg)
{
	struct rest_exec	*x = arg;

	x->timer = NULL;
	if (x->ct != NULL)
		contract_detach(x->ct);
	json_decref(x->early);
	free(x);
}

static void
rest_exec_finish(struct rest_exec *x)
{
	if (x->finishing || x->ct == NULL)
		return;
	x->finishing = 1;
	x->timer = loop_timer_add(0, rest_exec_free, x);
}

/*
 * Start the reply once the call is queued. Waiting is a stream too, whose
 * one write is the contract: a cell may run for hours, longer than the
 * front lets a suspended request wait, and a stream's client that hangs
 * up is still noticed.
 */
static void
rest_exec_started(struct rest_exec *x)
{
	json_t	*ev;

	if (x->req == NULL)
		return;		/* done already (queue_full), replied */
	if (http_stream_begin(x->req, 200, rest_exec_ctype(x)) != 0) {
		x->req = NULL;
		return;
	}
	http_on_close(x->req, rest_exec_gone, x);
	x->started = 1;
	if (x->mode == REST_WAIT)
		return;
	ev = json_pack("{s:s,s:s}", "type", "accepted", "id",
	    contract_id(x->ct));
	rest_exec_emit(x, "accepted", ev);
	json_decref(ev);
	rest_exec_flush_early(x);
}

void
rest_exec_run(struct http_req *req)
{
	struct session		*s;
	struct contract_req	 cr;
	struct rest_exec	*x;
	json_t			*body;
	char			*cause;

	if ((s = rest_req_session(req)) == NULL)
		return;
	if ((body = http_body_json(req, &cause)) == NULL) {
		rest_req_error(req, 400, "bad_json", "%s", cause);
		free(cause);
		return;
	}
	if (rest_exec_parse(body, &cr, &cause) != 0) {
		rest_req_error(req, 400, "bad_request", "%s", cause);
		free(cause);
		json_decref(body);
		return;
	}
	x = xcalloc(1, sizeof *x);
	x->req = req;
	x->mode = rest_exec_mode(req);
	x->ct = contract_run(s, &cr, rest_exec_event, rest_exec_done, x,
	    &cause);
	json_decref(body);
	if (x->ct == NULL) {
		if (x->req != NULL)
			rest_req_error(req, 409, "conflict", "%s", cause);
		free(cause);
		json_decref(x->early);
		free(x);
		return;
	}
	if (x->done) {
		rest_exec_finish(x);	/* replied from rest_exec_done */
		return;
	}
	rest_exec_started(x);
	if (x->req == NULL)
		rest_exec_finish(x);
}

void
rest_exec_get(struct http_req *req)
{
	json_t	*c;

	c = contract_lookup(http_param(req, 0), http_uid(req));
	if (c == NULL) {
		rest_req_error(req, 404, "not_found", "no execution '%s' (they "
		    "are kept %d seconds)", http_param(req, 0),
		    CONTRACT_KEEP_SECONDS);
		return;
	}
	http_reply_json(req, 200, c);
}
