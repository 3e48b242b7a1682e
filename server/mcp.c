/* mcp.c: the MCP engine: JSON-RPC 2.0 framing, the lifecycle, one table of methods, calls in flight. */
/*
 * Transport-free: a message comes in through mcp_input, everything going
 * out leaves through the connection's output callback (mcp.h). Requests
 * are answered in the order their work finishes (a tools/call of a long
 * cell answers later, while pings are answered at once), as JSON-RPC
 * allows. Nothing here trusts the peer: every field is checked and every
 * failure is a JSON-RPC error with a message that says what was wrong;
 * the connection keeps serving.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mcp.h"

struct mcp {
	struct mcp_peer	 peer;		/* first: what the tools see */
	char		 transport[8];	/* "stdio", "http": for logs */
	mcp_out_fn	*out;
	void		*arg;
	int		 initialized;	/* initialize answered */
	char		 version[16];	/* the revision agreed */
	struct mcp_call	*calls;		/* in flight */
};

/* Revisions we speak, newest first: the SDK's and those it accepts. */
static const char *mcp_versions[] = {
	MCP_PROTOCOL_LATEST, "2025-06-18", "2025-03-26",
};


typedef int	 mcp_method_fn(struct mcp *, json_t *, json_t *, json_t **,
		     char **);

static void	mcp_call_unlink(struct mcp_call *);
static void	mcp_peer_send(struct mcp_peer *, json_t *, json_t *);
static mcp_method_fn mcp_initialize, mcp_ping, mcp_initialized_note,
    mcp_cancelled, mcp_tools_list_m, mcp_tools_call_m, mcp_set_level;

/*
 * Legend: method; handler; whether the peer must have initialized first;
 * whether it is a notification (no id, never answered). A handler returns
 * 0 with *result, 1 when answered later, or a negative JSON-RPC error code
 * with a cause.
 */
static const struct {
	const char	*method;
	mcp_method_fn	*fn;
	int		 needs_init;
	int		 notification;
} mcp_methods[] = {
	{ "initialize", mcp_initialize, 0, 0 },
	{ "ping", mcp_ping, 0, 0 },
	{ "tools/list", mcp_tools_list_m, 1, 0 },
	{ "tools/call", mcp_tools_call_m, 1, 0 },
	{ "logging/setLevel", mcp_set_level, 1, 0 },
	{ "notifications/initialized", mcp_initialized_note, 0, 1 },
	{ "notifications/cancelled", mcp_cancelled, 0, 1 },
};

static void	*mcp_stdio_open(uid_t, control_out_fn *, void *);
static void	 mcp_stdio_input(void *, const char *, size_t);
static void	 mcp_stdio_oversized(void *);
static void	 mcp_stdio_close(void *);

/* `cellblock mcp`: the control socket's "mcp" stream op (control.c). */
static const struct control_stream mcp_stdio = {
	"mcp", MCP_MESSAGE_MAX, mcp_stdio_open, mcp_stdio_input,
	mcp_stdio_oversized, mcp_stdio_close
};

void
mcp_init(void)
{
	control_stream_register(&mcp_stdio);
}

static void *
mcp_stdio_open(uid_t uid, control_out_fn *out, void *arg)
{
	return (mcp_new(uid, "stdio", out, arg));
}

static void
mcp_stdio_input(void *m, const char *buf, size_t len)
{
	mcp_input(m, buf, len);
}

static void
mcp_stdio_oversized(void *m)
{
	mcp_input_oversized(m);
}

static void
mcp_stdio_close(void *m)
{
	struct mcp	*mp = m;

	mcp_free(&mp);
}

struct mcp *
mcp_new(uid_t uid, const char *transport, mcp_out_fn *out, void *arg)
{
	struct mcp	*m = xcalloc(1, sizeof *m);

	m->peer.uid = uid;
	snprintf(m->transport, sizeof m->transport, "%s", transport);
	m->out = out;
	m->arg = arg;
	m->peer.log_level = mcp_log_level("info");
	m->peer.send = mcp_peer_send;
	m->peer.finish = mcp_call_unlink;
	log_debug("mcp: uid %u: %s connection", (u_int)uid, transport);
	return (m);
}

/*
 * The connection's default session was never named by the agent, so it
 * cannot be found again: it ends with the connection (sessions made with
 * create_session stay). Other calls still running keep running; their
 * answers go nowhere.
 */
void
mcp_free(struct mcp **mp)
{
	struct mcp	*m = *mp;
	struct mcp_call	*call, *next;
	json_t		*req;

	if (m == NULL)
		return;
	*mp = NULL;
	for (call = m->calls; call != NULL; call = next) {
		next = call->next;
		call->peer = NULL;
		call->next = NULL;
		if (call->gone != NULL)
			call->gone(call);
	}
	if (m->peer.default_session != NULL) {
		req = json_pack("{s:s,s:s}", "cmd", "kill", "name",
		    m->peer.default_session);
		json_decref(control_call(m->peer.uid, req, NULL));
		json_decref(req);
	}
	free(m->peer.default_session);
	free(m);
}

const char *
mcp_transport(struct mcp *m)
{
	return (m->transport);
}

const char *
mcp_version(struct mcp *m)
{
	return (m->version);
}

int
mcp_initialized(struct mcp *m)
{
	return (m->initialized);
}

int
mcp_version_supported(const char *v)
{
	size_t	i;

	for (i = 0; v != NULL && i < nitems(mcp_versions); i++) {
		if (strcmp(mcp_versions[i], v) == 0)
			return (1);
	}
	return (0);
}

static void
mcp_send(struct mcp *m, json_t *msg, json_t *about)
{
	m->out(m->arg, msg, about);
	json_decref(msg);
}

/* The tools' way out (mcp-call.c): the same as the engine's. */
static void
mcp_peer_send(struct mcp_peer *peer, json_t *msg, json_t *about)
{
	mcp_send((struct mcp *)peer, msg, about);
}

static void
mcp_reply(struct mcp *m, json_t *id, json_t *result)
{
	mcp_send(m, mcp_msg_reply(id, result), id);
}

static void
mcp_error(struct mcp *m, json_t *id, int code, const char *msg)
{
	mcp_send(m, mcp_msg_error(id, code, msg), id);
}

static int
mcp_initialize(struct mcp *m, json_t *id, json_t *params, json_t **result,
    char **cause)
{
	const char	*asked;

	(void)id;
	asked = json_string_value(json_object_get(params, "protocolVersion"));
	if (asked == NULL) {
		*cause = xstrdup("initialize: protocolVersion must be a string");
		return (MCP_INVALID_PARAMS);
	}
	/*
	 * The spec's negotiation: the asked revision if we speak it, else
	 * our newest, and the client decides whether it can live with that.
	 */
	snprintf(m->version, sizeof m->version, "%s",
	    mcp_version_supported(asked) ? asked : mcp_versions[0]);
	if (!mcp_version_supported(asked))
		log_info("mcp: uid %u: revision %.32s asked, %s offered",
		    (u_int)m->peer.uid, asked, m->version);
	m->initialized = 1;
	*result = json_pack("{s:s,s:{s:{s:b},s:{}},s:{s:s,s:s,s:s},s:s}",
	    "protocolVersion", m->version,
	    "capabilities", "tools", "listChanged", 0, "logging",
	    "serverInfo", "name", "cellblock", "title", "cellblock: stateful "
	    "sandboxed Python sessions", "version", CELLBLOCK_VERSION,
	    "instructions", "Each session is a long-lived, sandboxed Python "
	    "interpreter: variables, imports and files persist between "
	    "run_code calls. Calls without a session use this connection's "
	    "default session, created on first use.");
	return (0);
}

static int
mcp_ping(struct mcp *m, json_t *id, json_t *params, json_t **result,
    char **cause)
{
	(void)m, (void)id, (void)params, (void)cause;
	*result = json_object();
	return (0);
}

static int
mcp_initialized_note(struct mcp *m, json_t *id, json_t *params,
    json_t **result, char **cause)
{
	(void)id, (void)params, (void)result, (void)cause;
	log_debug("mcp: uid %u: initialized (%s)", (u_int)m->peer.uid, m->version);
	return (0);
}

static int
mcp_set_level(struct mcp *m, json_t *id, json_t *params, json_t **result,
    char **cause)
{
	int	level = mcp_log_level(json_string_value(json_object_get(params,
		    "level")));

	(void)id;
	if (level == -1) {
		*cause = xstrdup("logging/setLevel: level must be one of "
		    "debug, info, notice, warning, error, critical, alert, "
		    "emergency");
		return (MCP_INVALID_PARAMS);
	}
	m->peer.log_level = level;
	*result = json_object();
	return (0);
}

static int
mcp_tools_list_m(struct mcp *m, json_t *id, json_t *params, json_t **result,
    char **cause)
{
	(void)m, (void)id, (void)params, (void)cause;
	*result = json_pack("{s:o}", "tools", mcp_tools_list());
	return (0);
}

/* Requests are ids of JSON-RPC: strings or integers. */
static int
mcp_same_id(json_t *a, json_t *b)
{
	if (json_is_integer(a) && json_is_integer(b))
		return (json_integer_value(a) == json_integer_value(b));
	return (json_is_string(a) && json_is_string(b) &&
	    strcmp(json_string_value(a), json_string_value(b)) == 0);
}

/* A call answered: off the connection's list (peer.finish). */
static void
mcp_call_unlink(struct mcp_call *call)
{
	struct mcp	 *m = (struct mcp *)call->peer;
	struct mcp_call **pp;

	if (m == NULL)
		return;
	for (pp = &m->calls; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == call) {
			*pp = call->next;
			m->peer.ncalls--;
			break;
		}
	}
	call->peer = NULL;
}

/*
 * The peer gave up on a request: the tool stops its work (a cell is
 * interrupted) and, as the spec says, no response goes out.
 */
static int
mcp_cancelled(struct mcp *m, json_t *id, json_t *params, json_t **result,
    char **cause)
{
	json_t		*rid = json_object_get(params, "requestId");
	struct mcp_call	*call;

	(void)id, (void)result, (void)cause;
	for (call = m->calls; call != NULL; call = call->next) {
		if (mcp_same_id(call->id, rid))
			break;
	}
	if (call == NULL)
		return (0);	/* finished already: races are normal */
	log_info("mcp: uid %u: call cancelled: %s", (u_int)m->peer.uid,
	    json_string_value(json_object_get(params, "reason")) ?: "");
	call->cancelled = 1;
	if (call->cancel != NULL)
		call->cancel(call);
	return (0);
}

static int
mcp_tools_call_m(struct mcp *m, json_t *id, json_t *params, json_t **result,
    char **cause)
{
	const char	*name = json_string_value(json_object_get(params,
			    "name"));
	json_t		*args = json_object_get(params, "arguments");
	json_t		*token;
	struct mcp_call	*call;
	int		 rc, code = MCP_INVALID_PARAMS;

	if (name == NULL) {
		*cause = xstrdup("tools/call: name must be a string");
		return (MCP_INVALID_PARAMS);
	}
	call = xcalloc(1, sizeof *call);
	call->peer = &m->peer;
	call->id = json_incref(id);
	token = json_object_get(json_object_get(params, "_meta"),
	    "progressToken");
	if (json_is_string(token) || json_is_integer(token))
		call->token = json_incref(token);
	call->next = m->calls;
	m->calls = call;
	m->peer.ncalls++;
	rc = mcp_tools_call(call, name, args, result, &code, cause);
	if (rc == 1)
		return (1);
	mcp_call_unlink(call);
	mcp_call_free(call);
	return (rc == 0 ? 0 : code);
}

/* A request's id, if it is one JSON-RPC allows (string or integer). */
static int
mcp_valid_id(json_t *id)
{
	return (json_is_string(id) || json_is_integer(id));
}

/* One JSON-RPC message (an object), request or notification. */
static void
mcp_dispatch(struct mcp *m, json_t *msg)
{
	json_t		*id = json_object_get(msg, "id");
	json_t		*params = json_object_get(msg, "params");
	const char	*method = json_string_value(json_object_get(msg,
			    "method"));
	const char	*version = json_string_value(json_object_get(msg,
			    "jsonrpc"));
	json_t		*result = NULL;
	char		*cause = NULL, *what;
	size_t		 i;
	int		 rc;

	if (id != NULL && !mcp_valid_id(id))
		id = NULL;
	if (version == NULL || strcmp(version, "2.0") != 0) {
		mcp_error(m, id, MCP_INVALID_REQUEST, "not JSON-RPC 2.0: "
		    "\"jsonrpc\" must be \"2.0\"");
		return;
	}
	if (method == NULL) {
		/* A response: we send no requests, so there is none to match. */
		if (json_object_get(msg, "result") == NULL &&
		    json_object_get(msg, "error") == NULL)
			mcp_error(m, id, MCP_INVALID_REQUEST, "a request needs "
			    "a \"method\" string");
		return;
	}
	if (params != NULL && !json_is_object(params)) {
		if (id != NULL)
			mcp_error(m, id, MCP_INVALID_PARAMS, "\"params\" must "
			    "be an object");
		return;
	}
	for (i = 0; i < nitems(mcp_methods); i++) {
		if (strcmp(mcp_methods[i].method, method) == 0)
			break;
	}
	if (i == nitems(mcp_methods) ||
	    mcp_methods[i].notification != (id == NULL)) {
		if (id == NULL)
			return;	/* an unknown notification: ignored */
		xasprintf(&what, "method not found: %.100s", method);
		mcp_error(m, id, MCP_METHOD_NOT_FOUND, what);
		free(what);
		return;
	}
	if (mcp_methods[i].needs_init && !m->initialized) {
		mcp_error(m, id, MCP_NOT_INITIALIZED, "not initialized: send "
		    "initialize first");
		return;
	}
	rc = mcp_methods[i].fn(m, id, params, &result, &cause);
	if (mcp_methods[i].notification)
		;
	else if (rc == 0)
		mcp_reply(m, id, result);
	else if (rc < 0)
		mcp_error(m, id, rc, cause != NULL ? cause : "failed");
	free(cause);
}

/*
 * One message as the transport framed it: a line of stdio, an HTTP body.
 * A batch (an array, which 2025-03-26 allows) is its elements in turn,
 * each answered on its own.
 */
void
mcp_input(struct mcp *m, const char *buf, size_t len)
{
	json_error_t	 jerr;
	json_t		*msg, *el;
	char		*what;
	size_t		 i;

	if (len == 0 || (len == 1 && buf[0] == '\r'))
		return;
	if (len > MCP_MESSAGE_MAX) {
		mcp_input_oversized(m);
		return;
	}
	if ((msg = json_loadb(buf, len, JSON_DECODE_ANY, &jerr)) == NULL) {
		xasprintf(&what, "parse error: %s (line %d, column %d)",
		    jerr.text, jerr.line, jerr.column);
		mcp_error(m, NULL, MCP_PARSE_ERROR, what);
		free(what);
		return;
	}
	if (json_is_array(msg) && json_array_size(msg) > 0) {
		json_array_foreach(msg, i, el) {
			if (json_is_object(el))
				mcp_dispatch(m, el);
			else
				mcp_error(m, NULL, MCP_INVALID_REQUEST,
				    "a batch holds request objects");
		}
	} else if (json_is_object(msg))
		mcp_dispatch(m, msg);
	else
		mcp_error(m, NULL, MCP_INVALID_REQUEST, "a message is a JSON "
		    "object");
	json_decref(msg);
}

void
mcp_input_oversized(struct mcp *m)
{
	char	*what;

	xasprintf(&what, "message too large: over %d bytes (send big files "
	    "in parts, or put them in the session's directory)",
	    MCP_MESSAGE_MAX);
	mcp_error(m, NULL, MCP_INVALID_REQUEST, what);
	free(what);
}
