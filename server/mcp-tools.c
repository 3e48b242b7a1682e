/* mcp-tools.c: the MCP tools, one table, each over the functions the control socket's ops call. */
/*
 * A tool's arguments are checked against its inputSchema before it runs
 * (a JSON-RPC -32602 names the field); its structuredContent follows its
 * outputSchema, which clients check. A tool that ran and failed (no such
 * session, not yours, the code raised) is a result with isError and a
 * typed name, so an agent can act on it. Session operations go through
 * control_call: the same functions, owner checks and audit as the CLI.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "mcp.h"

typedef int	 mcp_tool_fn(struct mcp_call *, json_t *, json_t **, char **);
typedef json_t	*mcp_file_fn(struct session *, json_t *);

static mcp_tool_fn mcp_tool_create, mcp_tool_list, mcp_tool_run,
    mcp_tool_delete, mcp_tool_fork;

/* Schemas, as JSON text: a session argument and a session result. */
#define S_SESSION	"\"session\": {\"type\": \"string\", \"maxLength\": 64, " \
			"\"description\": \"Session name; omit for this " \
			"connection's default session (created on first use)\"}"
#define O_SESSION	"{\"type\": \"object\", \"properties\": {\"session\": " \
			"{\"type\": \"object\", \"properties\": {\"name\": " \
			"{\"type\": \"string\"}, \"state\": {\"type\": " \
			"\"string\"}}, \"required\": [\"name\", \"state\"]}}, " \
			"\"required\": [\"session\"]}"
#define I_SESSION	"{\"type\": \"object\", \"properties\": {" S_SESSION \
			"}, \"additionalProperties\": false}"
#define LIMIT(n, d)	"\"" n "\": {\"type\": [\"string\", \"integer\"], " \
			"\"description\": \"" d "\"}"

/*
 * Legend: tool name; how it runs: a handler, else a control op on one
 * session, else a files function on one live session; whether its calls
 * wait (and count against MCP_CALLS_MAX: the tools that answer at once,
 * interrupt among them, are never refused for a busy connection); description an LLM reads to
 * pick and call it; inputSchema; outputSchema (NULL: none), JSON text.
 */
static const struct mcp_tool {
	const char	*name;
	mcp_tool_fn	*fn;
	const char	*op;
	mcp_file_fn	*file;
	int		 waits;
	const char	*description;
	const char	*input;
	const char	*output;
} mcp_tools[] = {
	{ "run_code", mcp_tool_run, NULL, NULL, 1,
	  "Run Python code in a persistent, sandboxed interpreter. Variables, "
	  "imports and files persist between calls in the same session. "
	  "Returns stdout, stderr, the value of the last expression, rich "
	  "results (images come back as image blocks) and, if the code "
	  "raised, the exception (isError is then true). The structured "
	  "result is the execution contract (status ok|error|timeout|"
	  "out_of_memory|killed|aborted|queue_full).",
	  "{\"type\": \"object\", \"properties\": {" S_SESSION ", "
	  "\"code\": {\"type\": \"string\", \"description\": \"Python source "
	  "to run, like a notebook cell\"}, "
	  "\"timeout\": {\"type\": \"number\", \"minimum\": 0, "
	  "\"description\": \"Seconds before the cell is interrupted "
	  "(default: the session's exec timeout)\"}}, "
	  "\"required\": [\"code\"], \"additionalProperties\": false}",
	  "{\"type\": \"object\", \"properties\": {\"status\": {\"type\": "
	  "\"string\"}}, \"required\": [\"status\"]}" },
	{ "write_file", NULL, NULL, mcp_files_write, 0,
	  "Write a file into a session's working directory (the cwd of its "
	  "code), creating parent directories. Text, or bytes as base64.",
	  "{\"type\": \"object\", \"properties\": {" S_SESSION ", "
	  "\"path\": {\"type\": \"string\", \"maxLength\": 1024, "
	  "\"description\": \"Path relative to the working directory\"}, "
	  "\"content\": {\"type\": \"string\", \"description\": \"The "
	  "file's text, or its bytes in base64\"}, "
	  "\"encoding\": {\"type\": \"string\", \"enum\": [\"text\", "
	  "\"base64\"], \"description\": \"How content is given (default "
	  "text)\"}}, \"required\": [\"path\", \"content\"], "
	  "\"additionalProperties\": false}",
	  "{\"type\": \"object\", \"properties\": {\"path\": {\"type\": "
	  "\"string\"}, \"size\": {\"type\": \"integer\"}}, "
	  "\"required\": [\"path\", \"size\"]}" },
	{ "read_file", NULL, NULL, mcp_files_read, 0,
	  "Read a file from a session's working directory: as text when it "
	  "is UTF-8 (or encoding text is asked), else as base64 (images "
	  "also come back as an image block).",
	  "{\"type\": \"object\", \"properties\": {" S_SESSION ", "
	  "\"path\": {\"type\": \"string\", \"maxLength\": 1024}, "
	  "\"encoding\": {\"type\": \"string\", \"enum\": [\"text\", "
	  "\"base64\"], \"description\": \"Default: text if the bytes are "
	  "UTF-8, else base64\"}}, \"required\": [\"path\"], "
	  "\"additionalProperties\": false}",
	  "{\"type\": \"object\", \"properties\": {\"path\": {\"type\": "
	  "\"string\"}, \"size\": {\"type\": \"integer\"}, \"encoding\": "
	  "{\"type\": \"string\"}, \"content\": {\"type\": \"string\"}}, "
	  "\"required\": [\"path\", \"size\", \"encoding\", "
	  "\"content\"]}" },
	{ "list_files", NULL, NULL, mcp_files_list, 0,
	  "List a directory of a session's working directory: name, path, "
	  "type (file, dir, symlink), size and mtime of each entry.",
	  "{\"type\": \"object\", \"properties\": {" S_SESSION ", "
	  "\"dir\": {\"type\": \"string\", \"maxLength\": 1024, "
	  "\"description\": \"Directory relative to the working directory "
	  "(default: the working directory)\"}}, "
	  "\"additionalProperties\": false}",
	  "{\"type\": \"object\", \"properties\": {\"entries\": {\"type\": "
	  "\"array\", \"items\": {\"type\": \"object\"}}, \"truncated\": "
	  "{\"type\": \"boolean\"}}, \"required\": [\"entries\"]}" },
	{ "create_session", mcp_tool_create, NULL, NULL, 0,
	  "Create a new sandboxed Python session with its own limits. Its "
	  "name is what the other tools take as session.",
	  "{\"type\": \"object\", \"properties\": {"
	  "\"name\": {\"type\": \"string\", \"maxLength\": 64, "
	  "\"description\": \"Name (letters, digits, - and _); default: a "
	  "random one\"}, "
	  LIMIT("memory", "Memory limit, e.g. 512M or 2G") ", "
	  LIMIT("cpus", "CPU limit, e.g. 1 or 0.5") ", "
	  LIMIT("pids", "Process limit") ", "
	  LIMIT("tmp", "Size of /tmp, e.g. 64M") ", "
	  LIMIT("exec_timeout", "Seconds any one cell may run") ", "
	  LIMIT("idle_timeout", "Seconds idle before it hibernates") ", "
	  "\"env\": {\"type\": \"object\", \"maxProperties\": 64, "
	  "\"additionalProperties\": {\"type\": \"string\"}, "
	  "\"description\": \"Environment variables set in the interpreter "
	  "(NAME: value; not CELLBLOCK_* nor proxy variables)\"}, "
	  "\"default\": {\"type\": \"boolean\", \"description\": \"Make it "
	  "this connection's default session\"}}, "
	  "\"additionalProperties\": false}",
	  O_SESSION },
	{ "list_sessions", mcp_tool_list, NULL, NULL, 0,
	  "List your sessions: name, state (running, idle, hibernated), "
	  "limits and resource use.",
	  "{\"type\": \"object\", \"properties\": {}, "
	  "\"additionalProperties\": false}",
	  "{\"type\": \"object\", \"properties\": {\"sessions\": {\"type\": "
	  "\"array\", \"items\": {\"type\": \"object\"}}}, "
	  "\"required\": [\"sessions\"]}" },
	{ "interrupt", NULL, "interrupt", NULL, 0,
	  "Interrupt the cell running in a session (KeyboardInterrupt); the "
	  "session and its variables stay.",
	  I_SESSION, O_SESSION },
	{ "restart", NULL, "restart", NULL, 0,
	  "Restart a session's interpreter: its variables are lost, its "
	  "files stay.",
	  I_SESSION, O_SESSION },
	{ "checkpoint", NULL, "checkpoint", NULL, 1,
	  "Write a checkpoint of a session's interpreter state now (it is "
	  "restored when the session resumes after hibernation).",
	  I_SESSION, "{\"type\": \"object\"}" },
	{ "fork_session", mcp_tool_fork, NULL, NULL, 1,
	  "Make a new session that starts from a copy of this session's "
	  "state (variables and files), to try something without risk.",
	  "{\"type\": \"object\", \"properties\": {" S_SESSION ", "
	  "\"new\": {\"type\": \"string\", \"maxLength\": 64, "
	  "\"description\": \"Name of the copy; default: a random one\"}}, "
	  "\"additionalProperties\": false}",
	  "{\"type\": \"object\"}" },
	{ "delete_session", mcp_tool_delete, NULL, NULL, 0,
	  "End a session for good: its interpreter, state and files go.",
	  I_SESSION, O_SESSION },
};

static int	 mcp_tools_run(const struct mcp_tool *, struct mcp_call *,
		    json_t *, json_t **, char **);
static int	 mcp_tools_session_op(struct mcp_call *, json_t *,
		    const char *, json_t **);

static json_t	*mcp_tools_input[nitems(mcp_tools)];
static json_t	*mcp_tools_output[nitems(mcp_tools)];

static json_t *
mcp_tools_schema(const char *text)
{
	json_error_t	 jerr;
	json_t		*v;

	if ((v = json_loads(text, 0, &jerr)) == NULL)
		fatalx("mcp tool schema: %s: %s", jerr.text, text);
	return (v);
}

/* The schemas, parsed once: a table that does not parse is a bug here. */
static void
mcp_tools_init(void)
{
	size_t	i;

	if (mcp_tools_input[0] != NULL)
		return;
	for (i = 0; i < nitems(mcp_tools); i++) {
		mcp_tools_input[i] = mcp_tools_schema(mcp_tools[i].input);
		if (mcp_tools[i].output != NULL)
			mcp_tools_output[i] = mcp_tools_schema(
			    mcp_tools[i].output);
	}
}

json_t *
mcp_tools_list(void)
{
	json_t	*list = json_array(), *t;
	size_t	 i;

	mcp_tools_init();
	for (i = 0; i < nitems(mcp_tools); i++) {
		t = json_pack("{s:s,s:s,s:O}", "name", mcp_tools[i].name,
		    "description", mcp_tools[i].description, "inputSchema",
		    mcp_tools_input[i]);
		if (mcp_tools_output[i] != NULL)
			json_object_set(t, "outputSchema", mcp_tools_output[i]);
		json_array_append_new(list, t);
	}
	return (list);
}

int
mcp_tools_call(struct mcp_call *call, const char *name, json_t *args,
    json_t **result, int *code, char **cause)
{
	json_t	*empty = NULL;
	size_t	 i;
	int	 rc;

	mcp_tools_init();
	for (i = 0; i < nitems(mcp_tools); i++) {
		if (strcmp(mcp_tools[i].name, name) == 0)
			break;
	}
	if (i == nitems(mcp_tools)) {
		xasprintf(cause, "unknown tool: %.100s (tools/list names "
		    "them)", name);
		*code = MCP_INVALID_PARAMS;
		return (-1);
	}
	if (args == NULL)
		args = empty = json_object();
	if (mcp_schema_check(mcp_tools_input[i], args, "arguments",
	    cause) != 0) {
		*code = MCP_INVALID_PARAMS;
		json_decref(empty);
		return (-1);
	}
	if (mcp_tools[i].waits && mcp_calls(call->peer) > MCP_CALLS_MAX) {
		xasprintf(cause, "tools/call %s: %d calls already in flight on "
		    "this connection; wait for one to finish", name,
		    MCP_CALLS_MAX);
		*code = MCP_BUSY;
		json_decref(empty);
		return (-1);
	}
	log_debug("mcp: uid %u: tools/call %s", (u_int)mcp_uid(call->peer),
	    name);
	rc = mcp_tools_run(&mcp_tools[i], call, args, result, cause);
	if (rc == -1)
		*code = MCP_INTERNAL_ERROR;
	json_decref(empty);
	return (rc);
}

/* ------------------------------------------------ session operations */

/* A control op's failure, as the typed names the docs list. */
static json_t *
mcp_tools_op_error(json_t *reply)
{
	const char	*msg = json_string_value(json_object_get(reply,
			    "error"));
	const char	*type;
	json_t		*r;

	switch (json_integer_value(json_object_get(reply, "code"))) {
	case EXIT_NOSESSION:
		type = "NoSuchSession";
		break;
	case EXIT_DENIED:
		type = "PermissionDenied";
		break;
	case EXIT_USAGE:
		type = "BadArguments";
		break;
	default:
		type = "Failed";
		break;
	}
	r = mcp_tool_error(type, msg != NULL ? msg : "failed");
	json_decref(reply);
	return (r);
}

/* A control op's answer as a tool result; takes reply. */
static json_t *
mcp_tools_op_result(json_t *reply)
{
	if (!json_is_true(json_object_get(reply, "ok")))
		return (mcp_tools_op_error(reply));
	json_object_del(reply, "ok");
	return (mcp_tool_result(reply, NULL));
}

/* The answer of a checkpoint or fork that waited. */
static void
mcp_tools_answer(struct waiter *w, json_t *reply)
{
	struct mcp_call	*call = (struct mcp_call *)((char *)w -
	    offsetof(struct mcp_call, waiter));

	mcp_call_done(call, mcp_tools_op_result(reply));
}

/* The connection went while a checkpoint or fork waited: nobody to tell. */
static void
mcp_tools_waiter_gone(struct mcp_call *call)
{
	struct session	*s;

	for (s = session_first(); s != NULL; s = session_next()) {
		if (lifecycle_forget_waiter(s, &call->waiter))
			break;
	}
	mcp_call_done(call, NULL);
}

/* One control op for the caller; 1 when it answers later. */
static int
mcp_tools_op(struct mcp_call *call, json_t *req, json_t **result)
{
	json_t	*reply;

	call->waiter.answer = mcp_tools_answer;
	reply = control_call(mcp_uid(call->peer), req, &call->waiter);
	json_decref(req);
	if (reply == NULL) {
		call->gone = mcp_tools_waiter_gone;
		return (1);
	}
	*result = mcp_tools_op_result(reply);
	return (0);
}

/*
 * The session a call names, or this connection's default, made now if
 * there is none yet (or it has ended). NULL with *result an isError.
 */
static const char *
mcp_tools_session(struct mcp_call *call, json_t *args, json_t **result)
{
	const char	*name = json_string_value(json_object_get(args,
			    "session"));
	struct mcp_peer	*m = call->peer;
	struct session	*s;
	json_t		*req, *reply;

	if (name != NULL)
		return (name);
	name = mcp_default_session(m);
	if (name != NULL && (s = session_find(name)) != NULL && !s->ending)
		return (name);
	req = json_pack("{s:s}", "cmd", "new");
	reply = control_call(mcp_uid(m), req, NULL);
	json_decref(req);
	if (!json_is_true(json_object_get(reply, "ok"))) {
		*result = mcp_tools_op_error(reply);
		return (NULL);
	}
	mcp_set_default_session(m, json_string_value(json_object_get(
	    json_object_get(reply, "session"), "name")));
	log_info("mcp: uid %u: default session %s", (u_int)mcp_uid(m),
	    mcp_default_session(m));
	mcp_log(m, "info", json_pack("{s:s,s:s}", "message", "created this "
	    "connection's default session", "session", mcp_default_session(m)));
	json_decref(reply);
	return (mcp_default_session(m));
}

/* A tool that is one control op on one session. */
static int
mcp_tools_session_op(struct mcp_call *call, json_t *args, const char *cmd,
    json_t **result)
{
	const char	*name;
	json_t		*req;

	if ((name = mcp_tools_session(call, args, result)) == NULL)
		return (0);
	req = json_pack("{s:s,s:s}", "cmd", cmd, "name", name);
	return (mcp_tools_op(call, req, result));
}

/* MCP's argument names and JSON types; the op takes the CLI's strings. */
static int
mcp_tool_create(struct mcp_call *call, json_t *args, json_t **result,
    char **cause)
{
	static const char *keys[][2] = {
		{ "name", "name" }, { "memory", "memory" }, { "cpus", "cpus" },
		{ "pids", "pids" }, { "tmp", "tmp" },
		{ "exec_timeout", "exec-timeout" },
		{ "idle_timeout", "idle-timeout" }, { "env", "env" },
	};
	json_t	*req = json_pack("{s:s}", "cmd", "new"), *v, *reply;
	char	*text;
	size_t	 i;

	(void)cause;
	for (i = 0; i < nitems(keys); i++) {
		if ((v = json_object_get(args, keys[i][0])) == NULL)
			continue;
		if (json_is_integer(v)) {
			xasprintf(&text, "%lld", (long long)
			    json_integer_value(v));
			json_object_set_new(req, keys[i][1], json_string(text));
			free(text);
		} else
			json_object_set(req, keys[i][1], v);
	}
	reply = control_call(mcp_uid(call->peer), req, NULL);
	json_decref(req);
	if (json_is_true(json_object_get(reply, "ok")) &&
	    json_is_true(json_object_get(args, "default")))
		mcp_set_default_session(call->peer, json_string_value(
		    json_object_get(json_object_get(reply, "session"),
		    "name")));
	*result = mcp_tools_op_result(reply);
	return (0);
}

static int
mcp_tool_list(struct mcp_call *call, json_t *args, json_t **result,
    char **cause)
{
	(void)args, (void)cause;
	return (mcp_tools_op(call, json_pack("{s:s}", "cmd", "ls"), result));
}

static int
mcp_tool_delete(struct mcp_call *call, json_t *args, json_t **result,
    char **cause)
{
	const char	*name = json_string_value(json_object_get(args,
			    "session"));
	int		 rc;

	(void)cause;
	if (name == NULL && (name = mcp_default_session(call->peer)) == NULL) {
		*result = mcp_tool_error("NoSuchSession", "this connection "
		    "has no default session yet");
		return (0);
	}
	rc = mcp_tools_session_op(call, args, "kill", result);
	if (json_object_get(args, "session") == NULL)
		mcp_set_default_session(call->peer, NULL);
	return (rc);
}

static int
mcp_tool_fork(struct mcp_call *call, json_t *args, json_t **result,
    char **cause)
{
	const char	*name, *new = json_string_value(json_object_get(args,
			    "new"));
	char		 buf[SESSION_NAME_MAX + 1];

	(void)cause;
	if ((name = mcp_tools_session(call, args, result)) == NULL)
		return (0);
	if (new == NULL) {
		session_random_name(buf, sizeof buf);
		new = buf;
	}
	return (mcp_tools_op(call, json_pack("{s:s,s:s,s:s}", "cmd", "fork",
	    "name", name, "new", new), result));
}

/* --------------------------------------------- tools on one session */

/* The live session a call names (or the default), if the caller's. */
struct session *
mcp_tools_find(struct mcp_call *call, json_t *args, json_t **result)
{
	const char	*name;
	struct session	*s;
	char		*msg;

	if ((name = mcp_tools_session(call, args, result)) == NULL)
		return (NULL);
	s = session_find(name);
	if (s == NULL || s->ending) {
		xasprintf(&msg, "no session '%s'", name);
		*result = mcp_tool_error("NoSuchSession", msg);
		free(msg);
		return (NULL);
	}
	if (!session_visible(s, mcp_uid(call->peer))) {
		xasprintf(&msg, "session '%s' is not yours", name);
		*result = mcp_tool_error("PermissionDenied", msg);
		free(msg);
		return (NULL);
	}
	return (s);
}

static int
mcp_tool_run(struct mcp_call *call, json_t *args, json_t **result,
    char **cause)
{
	struct session	*s;

	if ((s = mcp_tools_find(call, args, result)) == NULL)
		return (0);
	return (mcp_run_code(call, s, args, result, cause));
}

/* One tool's work, by the way its row says it runs. */
static int
mcp_tools_run(const struct mcp_tool *t, struct mcp_call *call, json_t *args,
    json_t **result, char **cause)
{
	struct session	*s;

	if (t->fn != NULL)
		return (t->fn(call, args, result, cause));
	if (t->op != NULL)
		return (mcp_tools_session_op(call, args, t->op, result));
	if ((s = mcp_tools_find(call, args, result)) != NULL)
		*result = t->file(s, args);
	return (0);
}
