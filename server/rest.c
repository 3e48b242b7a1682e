/* rest.c: the agent API's REST v1 routes: sessions and their operations. */
/*
 * Every operation on a session is the control socket's own (control_call
 * runs a row of control_table for the token's owner), so REST, the CLI
 * and MCP share one implementation of new, ls, kill, interrupt, restart,
 * checkpoint and fork. What is here is HTTP: routes, the request body's
 * mapping onto a control request, status codes, and the session's REST
 * shape. A session of another owner is answered as unknown (404), so
 * that a token learns nothing of sessions that are not its owner's.
 * docs/AGENTS.md is the reference.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "http.h"
#include "contract.h"
#include "rest.h"

#define REST_BODY_MAX		(64 * 1024)	/* session requests */
#define REST_CODE_BODY_MAX	(8 * 1024 * 1024) /* execute: code + stdin */
#define REST_UPLOAD_MAX		((size_t)1 << 40) /* files.c has the cap */

/*
 * A long operation (checkpoint, fork) waits here for lifecycle.c's
 * answer. The HTTP request may go first (the client hung up): the
 * waiter lives on until answered, because the session holds it.
 */
struct rest_wait {
	struct waiter	 waiter;
	struct http_req	*req;		/* NULL once the client is gone */
	const char	*action;	/* "checkpoint" or "fork": the REST action */
	char		 name[SESSION_NAME_MAX + 1]; /* the session asked */
};

static http_fn	rest_create, rest_list, rest_get, rest_delete,
		rest_interrupt, rest_restart, rest_checkpoint, rest_fork;

/*
 * Legend: method; path (the {x} of a session is its name); handler; who
 * may call (a token: its owner owns what it touches); the largest body
 * taken; where an upload's bytes go instead of a buffer.
 */
static const struct http_route rest_routes[] = {
	{ "POST", "/v1/sessions", rest_create, HTTP_TOKEN, REST_BODY_MAX,
	  NULL },
	{ "GET", "/v1/sessions", rest_list, HTTP_TOKEN, 0, NULL },
	{ "GET", "/v1/sessions/{x}", rest_get, HTTP_TOKEN, 0, NULL },
	{ "DELETE", "/v1/sessions/{x}", rest_delete, HTTP_TOKEN, 0, NULL },
	{ "POST", "/v1/sessions/{x}/interrupt", rest_interrupt, HTTP_TOKEN,
	  REST_BODY_MAX, NULL },
	{ "POST", "/v1/sessions/{x}/restart", rest_restart, HTTP_TOKEN,
	  REST_BODY_MAX, NULL },
	{ "POST", "/v1/sessions/{x}/checkpoint", rest_checkpoint, HTTP_TOKEN,
	  REST_BODY_MAX, NULL },
	{ "POST", "/v1/sessions/{x}/fork", rest_fork, HTTP_TOKEN,
	  REST_BODY_MAX, NULL },
	{ "POST", "/v1/sessions/{x}/execute", rest_exec_run, HTTP_TOKEN,
	  REST_CODE_BODY_MAX, NULL },
	{ "GET", "/v1/executions/{x}", rest_exec_get, HTTP_TOKEN, 0, NULL },
	{ "GET", "/v1/sessions/{x}/files", rest_files_list, HTTP_TOKEN, 0,
	  NULL },
	{ "GET", "/v1/sessions/{x}/files/{*}", rest_files_get, HTTP_TOKEN, 0,
	  NULL },
	{ "DELETE", "/v1/sessions/{x}/files/{*}", rest_files_delete,
	  HTTP_TOKEN, 0, NULL },
	{ "PUT", "/v1/sessions/{x}/files/{*}", rest_files_put, HTTP_TOKEN,
	  REST_UPLOAD_MAX, rest_files_sink },
};

/*
 * The body of POST /v1/sessions, mapped onto the control socket's `new`.
 * Legend: the REST field (JSON names use underscores); the control key
 * (config.c's session keys, as `cellblock new` sends them); how the value
 * is taken: a size or count (number or string, "512M"), a CPU count
 * (number or string), a string or list of strings joined by commas, or
 * passed as JSON for the control op to check.
 */
enum rest_kind { REST_SIZE, REST_CPUS, REST_LIST, REST_JSON };
static const struct {
	const char	*field;
	const char	*key;
	enum rest_kind	 kind;
} rest_create_fields[] = {
	{ "memory", "memory", REST_SIZE },
	{ "cpus", "cpus", REST_CPUS },
	{ "pids", "pids", REST_SIZE },
	{ "tmp", "tmp", REST_SIZE },
	{ "nofile", "nofile", REST_SIZE },
	{ "fsize", "fsize", REST_SIZE },
	{ "exec_timeout", "exec-timeout", REST_SIZE },
	{ "idle_timeout", "idle-timeout", REST_SIZE },
	{ "allow_net", "allow-net", REST_LIST },
	{ "mounts", "mounts", REST_JSON },
	{ "env", "env", REST_JSON },
};

/* One field of rest_create_fields, as the control request's string. */
static int
rest_field(json_t *v, enum rest_kind kind, const char *field, json_t **out,
    char **cause)
{
	char	 buf[64];
	size_t	 i;
	json_t	*e;
	char	*joined = NULL, *next;

	*out = NULL;
	switch (kind) {
	case REST_SIZE:
		if (json_is_integer(v) && json_integer_value(v) >= 0) {
			snprintf(buf, sizeof buf, "%lld",
			    (long long)json_integer_value(v));
			*out = json_string(buf);
		} else if (json_is_string(v))
			*out = json_incref(v);
		break;
	case REST_CPUS:
		if (json_is_number(v) && json_number_value(v) > 0) {
			snprintf(buf, sizeof buf, "%.3f", json_number_value(v));
			*out = json_string(buf);
		} else if (json_is_string(v))
			*out = json_incref(v);
		break;
	case REST_LIST:
		if (json_is_string(v)) {
			*out = json_incref(v);
			break;
		}
		if (!json_is_array(v) || json_array_size(v) > 256)
			break;
		json_array_foreach(v, i, e) {
			if (!json_is_string(e)) {
				free(joined);
				joined = NULL;
				goto bad;
			}
			xasprintf(&next, "%s%s%s", joined ? joined : "",
			    joined ? "," : "", json_string_value(e));
			free(joined);
			joined = next;
		}
		*out = json_string(joined != NULL ? joined : "");
		free(joined);
		break;
	case REST_JSON:
		*out = json_incref(v);
		break;
	}
bad:
	if (*out != NULL)
		return (0);
	xasprintf(cause, "%s: bad value", field);
	return (-1);
}

/*
 * The control request `new` for a POST /v1/sessions body, or NULL with a
 * cause (a 400). Unknown fields are refused rather than ignored: an agent
 * that asks for a limit we do not know must not think it has it. Pure, so
 * that tests/fuzz/fuzz-rest.c drives it without a daemon.
 */
json_t *
rest_limits_request(json_t *body, char **cause)
{
	const char	*k;
	json_t		*v, *out, *req;
	size_t		 i;

	req = json_pack("{s:s}", "cmd", "new");
	json_object_foreach(body, k, v) {
		if (strcmp(k, "name") == 0) {
			if (!json_is_string(v) ||
			    !session_name_valid(json_string_value(v))) {
				xasprintf(cause, "name: not a valid session "
				    "name (letters, digits, '-', '_', '.')");
				goto fail;
			}
			json_object_set(req, "name", v);
			continue;
		}
		for (i = 0; i < nitems(rest_create_fields); i++) {
			if (strcmp(rest_create_fields[i].field, k) == 0)
				break;
		}
		if (i == nitems(rest_create_fields)) {
			xasprintf(cause, "%s: unknown field", k);
			goto fail;
		}
		if (json_is_null(v))
			continue;
		if (rest_field(v, rest_create_fields[i].kind, k, &out,
		    cause) != 0)
			goto fail;
		json_object_set_new(req, rest_create_fields[i].key, out);
	}
	return (req);
fail:
	json_decref(req);
	return (NULL);
}

/* A control reply's failure as an HTTP status and error type. */
static void
rest_control_error(struct http_req *req, json_t *r)
{
	const char	*msg = json_string_value(json_object_get(r, "error"));
	int		 code = json_integer_value(json_object_get(r, "code"));

	if (msg == NULL)
		msg = "failed";
	switch (code) {
	case EXIT_USAGE:
		rest_req_error(req, 400, "bad_request", "%s", msg);
		break;
	case EXIT_NOSESSION:
		rest_req_error(req, 404, "not_found", "%s", msg);
		break;
	case EXIT_DENIED:
		/* Another's session is as unknown; else (a mount) refused. */
		if (strstr(msg, "not yours") != NULL)
			rest_req_error(req, 404, "not_found",
			    "no such session");
		else
			rest_req_error(req, 403, "forbidden", "%s", msg);
		break;
	default:
		if (strstr(msg, "max-sessions") != NULL)
			rest_req_error(req, 429, "quota", "%s", msg);
		else if (strstr(msg, "busy") != NULL ||
		    strstr(msg, "already") != NULL)
			rest_req_error(req, 409, "conflict", "%s", msg);
		else
			rest_req_error(req, 503, "unavailable", "%s", msg);
		break;
	}
}

/*
 * Reply with a control reply's session (or its failure); a reply without
 * one (a checkpoint's) describes the session named.
 */
static void
rest_control_reply(struct http_req *req, json_t *r, u_int status,
    const char *asked)
{
	const char	*name;
	struct session	*s;

	if (!json_is_true(json_object_get(r, "ok"))) {
		rest_control_error(req, r);
		json_decref(r);
		return;
	}
	name = json_string_value(json_object_get(json_object_get(r,
	    "session"), "name"));
	if (name == NULL)
		name = asked;
	if (name != NULL && (s = session_find(name)) != NULL)
		http_reply_json(req, status, rest_req_describe(s));
	else
		http_reply_json(req, status, json_pack("{s:b,s:s?}", "ok", 1,
		    "note", json_string_value(json_object_get(r, "note"))));
	json_decref(r);
}

static void
rest_create(struct http_req *req)
{
	json_t		*body, *creq;
	const char	*name;
	char		*cause;

	if ((body = http_body_json(req, &cause)) == NULL) {
		rest_req_error(req, 400, "bad_json", "%s", cause);
		free(cause);
		return;
	}
	creq = rest_limits_request(body, &cause);
	json_decref(body);
	if (creq == NULL) {
		rest_req_error(req, 400, "bad_request", "%s", cause);
		free(cause);
		return;
	}
	/* Names are global: a taken one is a conflict, whoever holds it. */
	name = json_string_value(json_object_get(creq, "name"));
	if (name != NULL && session_find(name) != NULL)
		rest_req_error(req, 409, "conflict", "the name '%s' is taken",
		    name);
	else
		rest_control_reply(req, control_call(http_uid(req), creq,
		    NULL), 201, NULL);
	json_decref(creq);
}

static void
rest_list(struct http_req *req)
{
	json_t		*creq, *r, *list, *out, *e;
	const char	*name;
	struct session	*s;
	size_t		 i;

	creq = json_pack("{s:s}", "cmd", "ls");
	r = control_call(http_uid(req), creq, NULL);
	json_decref(creq);
	out = json_array();
	list = json_object_get(r, "sessions");
	json_array_foreach(list, i, e) {
		name = json_string_value(json_object_get(e, "name"));
		if (name != NULL && (s = session_find(name)) != NULL)
			json_array_append_new(out, rest_req_describe(s));
	}
	json_decref(r);
	http_reply_json(req, 200, json_pack("{s:o}", "sessions", out));
}

static void
rest_get(struct http_req *req)
{
	struct session	*s;

	if ((s = rest_req_session(req)) != NULL)
		http_reply_json(req, 200, rest_req_describe(s));
}

/* The simple operations: a control request naming the session. */
static void
rest_op(struct http_req *req, const char *cmd)
{
	struct session	*s;
	json_t		*creq, *r, *d;

	if ((s = rest_req_session(req)) == NULL)
		return;
	creq = json_pack("{s:s,s:s}", "cmd", cmd, "name", s->name);
	d = rest_req_describe(s);	/* kill: the session may go at once */
	r = control_call(http_uid(req), creq, NULL);
	json_decref(creq);
	if (json_is_true(json_object_get(r, "ok"))) {
		if (strcmp(cmd, "kill") == 0)
			json_object_set_new(d, "state", json_string("ended"));
		else {
			json_decref(d);
			d = rest_req_describe(s);
		}
		http_reply_json(req, 200, d);
	} else {
		json_decref(d);
		rest_control_error(req, r);
	}
	json_decref(r);
}

static void
rest_delete(struct http_req *req)
{
	rest_op(req, "kill");
}

static void
rest_interrupt(struct http_req *req)
{
	rest_op(req, "interrupt");
}

static void
rest_restart(struct http_req *req)
{
	rest_op(req, "restart");
}

/* lifecycle.c answers a checkpoint or fork; the client may be gone. */
static void
rest_wait_answer(struct waiter *w, json_t *r)
{
	struct rest_wait	*rw = (struct rest_wait *)w;

	if (rw->req != NULL) {
		http_on_close(rw->req, NULL, NULL);
		rest_control_reply(rw->req, r, strcmp(rw->action, "fork") == 0 ?
		    201 : 200, rw->name);
	} else
		json_decref(r);
	free(rw);
}

static void
rest_wait_gone(struct http_req *req, void *arg)
{
	struct rest_wait	*rw = arg;

	(void)req;
	rw->req = NULL;
}

static void
rest_long_op(struct http_req *req, json_t *creq, const char *action)
{
	struct rest_wait	*rw;
	json_t			*r;

	rw = xcalloc(1, sizeof *rw);
	rw->waiter.answer = rest_wait_answer;
	rw->req = req;
	rw->action = action;
	snprintf(rw->name, sizeof rw->name, "%s", strcmp(action, "fork") == 0 ?
	    "" : json_string_value(json_object_get(creq, "name")));
	r = control_call(http_uid(req), creq, &rw->waiter);
	if (r != NULL) {
		rest_control_reply(req, r, strcmp(action, "fork") == 0 ? 201 :
		    200, rw->name);
		free(rw);
		return;
	}
	http_suspend(req);
	http_on_close(req, rest_wait_gone, rw);
}

static void
rest_checkpoint(struct http_req *req)
{
	struct session	*s;
	json_t		*creq;

	if ((s = rest_req_session(req)) == NULL)
		return;
	creq = json_pack("{s:s,s:s}", "cmd", "checkpoint", "name", s->name);
	rest_long_op(req, creq, "checkpoint");
	json_decref(creq);
}

static void
rest_fork(struct http_req *req)
{
	struct session	*s;
	json_t		*body, *creq, *to;
	char		*cause, name[SESSION_NAME_MAX + 1];

	if ((s = rest_req_session(req)) == NULL)
		return;
	if ((body = http_body_json(req, &cause)) == NULL) {
		rest_req_error(req, 400, "bad_json", "%s", cause);
		free(cause);
		return;
	}
	to = json_object_get(body, "name");
	/* Checked whole: the copy below would cut a long one to another. */
	if (to != NULL && (!json_is_string(to) ||
	    !session_name_valid(json_string_value(to)))) {
		rest_req_error(req, 400, "bad_request", "name: not a valid "
		    "session name (letters, digits, '-', '_', '.')");
		json_decref(body);
		return;
	}
	if (to == NULL)
		session_random_name(name, sizeof name);
	else
		snprintf(name, sizeof name, "%s", json_string_value(to));
	if (session_find(name) != NULL)
		rest_req_error(req, 409, "conflict", "the name '%s' is taken",
		    name);
	else {
		creq = json_pack("{s:s,s:s,s:s}", "cmd", "fork", "name",
		    s->name, "new", name);
		rest_long_op(req, creq, "fork");
		json_decref(creq);
	}
	json_decref(body);
}

/*
 * In the foreground (`make run`): a token of the daemon's uid for agents,
 * replacing the one the last run made, and the lines that run the
 * examples against this daemon.
 */
void
rest_banner(FILE *f)
{
	json_t	*req, *r;

	if (http_url() == NULL)
		return;
	req = json_pack("{s:s,s:s}", "action", "revoke", "id",
	    "make-run-agent");
	json_decref(token_control(server_uid, req));
	json_decref(req);
	req = json_pack("{s:s,s:s}", "action", "new", "name",
	    "make-run-agent");
	r = token_control(server_uid, req);
	json_decref(req);
	if (json_is_true(json_object_get(r, "ok"))) {
		fprintf(f, "The agent API (REST v1, docs/AGENTS.md) is at "
		    "%s/v1. Try the examples:\n"
		    "  export CELLBLOCK_URL=%s CELLBLOCK_TOKEN=%s\n"
		    "  sh examples/agent_rest.sh; /usr/bin/python3 "
		    "examples/agent_sdk.py\n\n", http_url(), http_url(),
		    json_string_value(json_object_get(r, "token")));
	}
	json_decref(r);
}

void
rest_register(void)
{
	http_register("rest v1", rest_routes, nitems(rest_routes));
}
