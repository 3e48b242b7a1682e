/* mcp-call.c: what the MCP tools see of their connection: a call in flight, its answers, the peer's state. */
/*
 * The engine (server/mcp.c) makes the calls and the peer; the tools
 * (mcp-tools.c, mcp-run.c, mcp-files.c) answer through these, which send
 * through the peer's own send and finish, so that no tool calls up into
 * the engine. A call whose connection has gone (peer NULL) still ends
 * here: its answer goes nowhere.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mcp.h"

/* RFC 5424's levels, as MCP's logging/setLevel names them. */
static const char *mcp_log_levels[] = {
	"debug", "info", "notice", "warning", "error", "critical", "alert",
	"emergency",
};

/* JSON-RPC messages, built once for the engine and the tools. */
json_t *
mcp_msg_reply(json_t *id, json_t *result)
{
	return (json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id,
	    "result", result));
}

json_t *
mcp_msg_error(json_t *id, int code, const char *msg)
{
	return (json_pack("{s:s,s:o,s:{s:i,s:s}}", "jsonrpc", "2.0", "id",
	    id != NULL ? json_incref(id) : json_null(), "error", "code", code,
	    "message", msg));
}

json_t *
mcp_msg_notify(const char *method, json_t *params)
{
	return (json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method,
	    "params", params));
}

/* A level's rank, or -1 when it is none of RFC 5424's. */
int
mcp_log_level(const char *name)
{
	size_t	i;

	for (i = 0; name != NULL && i < nitems(mcp_log_levels); i++) {
		if (strcmp(mcp_log_levels[i], name) == 0)
			return ((int)i);
	}
	return (-1);
}

uid_t
mcp_uid(struct mcp_peer *peer)
{
	return (peer->uid);
}

/* Tool calls waiting for an answer on this connection, call included. */
u_int
mcp_calls(struct mcp_peer *peer)
{
	return (peer->ncalls);
}

const char *
mcp_default_session(struct mcp_peer *peer)
{
	return (peer->default_session);
}

void
mcp_set_default_session(struct mcp_peer *peer, const char *name)
{
	free(peer->default_session);
	peer->default_session = name != NULL ? xstrdup(name) : NULL;
}

/* notifications/message, if the peer asked for this level. */
void
mcp_log(struct mcp_peer *peer, const char *level, json_t *data)
{
	int	rank = mcp_log_level(level);

	if (rank == -1 || rank < peer->log_level) {
		json_decref(data);
		return;
	}
	peer->send(peer, mcp_msg_notify("notifications/message",
	    json_pack("{s:s,s:s,s:o}", "level", level, "logger", "cellblock",
	    "data", data)), NULL);
}

void
mcp_call_free(struct mcp_call *call)
{
	json_decref(call->id);
	json_decref(call->token);
	free(call);
}

/* Output while a call runs: a progress notification, if the peer asked. */
void
mcp_call_progress(struct mcp_call *call, const char *message)
{
	json_t	*p;

	if (call->peer == NULL || call->token == NULL || call->cancelled)
		return;
	call->progress += 1;
	p = json_pack("{s:O,s:f}", "progressToken", call->token, "progress",
	    call->progress);
	if (message != NULL)
		json_object_set_new(p, "message", json_string(message));
	call->peer->send(call->peer, mcp_msg_notify("notifications/progress",
	    p), call->id);
}

/* The end of a call: off its connection, freed. */
static void
mcp_call_end(struct mcp_call *call)
{
	if (call->peer != NULL)
		call->peer->finish(call);
	mcp_call_free(call);
}

/* The answer of a call that answered later (a cancelled one has none). */
void
mcp_call_done(struct mcp_call *call, json_t *result)
{
	if (call->peer != NULL && !call->cancelled)
		call->peer->send(call->peer, mcp_msg_reply(call->id, result),
		    call->id);
	else
		json_decref(result);
	mcp_call_end(call);
}

void
mcp_call_fail(struct mcp_call *call, int code, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	if (call->peer != NULL && !call->cancelled)
		call->peer->send(call->peer, mcp_msg_error(call->id, code, msg),
		    call->id);
	free(msg);
	mcp_call_end(call);
}

/* A failed tool, for the agent: isError and a typed name first. */
json_t *
mcp_tool_error(const char *type, const char *message)
{
	char	*text;
	json_t	*r;

	xasprintf(&text, "%s: %s", type, message);
	r = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text",
	    text, "isError", 1);
	free(text);
	return (r);
}

/* A tool's result: structured (taken), and the same as text unless said. */
json_t *
mcp_tool_result(json_t *structured, const char *text)
{
	char	*dump = NULL;
	json_t	*r;

	if (text == NULL)
		text = dump = json_dumps(structured, JSON_COMPACT);
	r = json_pack("{s:[{s:s,s:s}],s:o}", "content", "type", "text", "text",
	    text != NULL ? text : "", "structuredContent", structured);
	free(dump);
	return (r);
}
