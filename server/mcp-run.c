/* mcp-run.c: the run_code tool: a cell through the execution contract, its output as MCP content. */
/*
 * The cell goes through contract_run, so the core's queue, busy/idle,
 * ownership and audit apply as for every client. While it runs, its
 * output goes out as progress notifications (when the call carried a
 * progressToken), at least one a second so that a client's request
 * timeout, reset on progress, never fires on a long quiet cell. The
 * result: text blocks (stdout, stderr, results, the error), an image
 * block per image/png or image/jpeg result, HTML as an embedded resource,
 * and structuredContent = the contract, images there replaced by a
 * pointer to their block so that a result is not twice its size.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "mcp.h"
#include "contract.h"

#define MCP_RUN_KEEPALIVE	1000	/* ms between progress, at least */
#define MCP_RUN_IMAGES_MAX	8	/* image blocks in one result */
#define MCP_RUN_IMAGE_BYTES	(768 * 1024) /* of base64, all images */
#define MCP_RUN_PROGRESS_TEXT	4096	/* bytes of output per progress */

struct mcp_run {
	struct mcp_call		*call;		/* NULL once answered or gone */
	struct contract		*contract;	/* NULL until contract_run */
	struct loop_timer	*keepalive;
	struct loop_timer	*reaper;	/* detaches, after done */
	char			 session[SESSION_NAME_MAX + 1];
	uint64_t		 last;		/* ms: the last progress */
	int			 done;
};

/* Image MIME types sent as image blocks, in the order looked for. */
static const char *mcp_run_images[] = { "image/png", "image/jpeg" };

static void
mcp_run_free(struct mcp_run *r)
{
	loop_timer_cancel(&r->keepalive);
	loop_timer_cancel(&r->reaper);
	if (r->contract != NULL)
		contract_detach(r->contract);
	free(r);
}

/* After done, from the loop: not inside the contract's own callback. */
static void
mcp_run_reap(void *arg)
{
	struct mcp_run	*r = arg;

	r->reaper = NULL;
	mcp_run_free(r);
}

static void
mcp_run_keepalive(void *arg)
{
	struct mcp_run	*r = arg;

	r->keepalive = NULL;
	if (r->call == NULL || r->done)
		return;
	if (loop_now() - r->last >= MCP_RUN_KEEPALIVE) {
		mcp_call_progress(r->call, NULL);
		r->last = loop_now();
	}
	r->keepalive = loop_timer_add(MCP_RUN_KEEPALIVE, mcp_run_keepalive, r);
}

static void
mcp_run_event(void *arg, json_t *ev)
{
	struct mcp_run	*r = arg;
	const char	*type = json_string_value(json_object_get(ev, "type"));
	const char	*text = json_string_value(json_object_get(ev, "text"));
	char		*msg;

	if (r->call == NULL || type == NULL)
		return;
	if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0) {
		xasprintf(&msg, "%s: %.*s", type, MCP_RUN_PROGRESS_TEXT,
		    text != NULL ? text : "");
		mcp_call_progress(r->call, msg);
		free(msg);
	} else if (strcmp(type, "status") == 0)
		mcp_call_progress(r->call, json_string_value(json_object_get(
		    ev, "state")));
	else
		mcp_call_progress(r->call, type);
	r->last = loop_now();
}

static void
mcp_run_text(json_t *content, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
mcp_run_text(json_t *content, const char *fmt, ...)
{
	va_list	 ap;
	char	*text;

	va_start(ap, fmt);
	xvasprintf(&text, fmt, ap);
	va_end(ap);
	json_array_append_new(content, json_pack("{s:s,s:s}", "type", "text",
	    "text", text));
	free(text);
}

/* A part of a restore report as short text: at most 1000 bytes of it. */
static char *
mcp_run_dump(json_t *v)
{
	char	*s;

	if (v == NULL || (json_is_array(v) && json_array_size(v) == 0) ||
	    (json_is_object(v) && json_object_size(v) == 0))
		return (xstrdup("none"));
	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		return (xstrdup("?"));
	if (strlen(s) > 1000)
		strcpy(s + 996, "...");
	return (s);
}

/*
 * What a resume before the call brought back and what it could not (the
 * core's restore report: restored, names, lost, skipped, error).
 */
static void
mcp_run_resumed(json_t *content, json_t *resumed)
{
	char	*names, *lost, *skipped;

	if (!json_is_object(resumed))
		return;
	if (!json_is_true(json_object_get(resumed, "restored"))) {
		mcp_run_text(content, "The session was resumed, but its "
		    "checkpoint could not be restored (%s): its variables are "
		    "lost, its files are there.", json_string_value(
		    json_object_get(resumed, "error")) ?: "no checkpoint");
		return;
	}
	names = mcp_run_dump(json_object_get(resumed, "names"));
	lost = mcp_run_dump(json_object_get(resumed, "lost"));
	skipped = mcp_run_dump(json_object_get(resumed, "skipped"));
	mcp_run_text(content, "The session was resumed from its checkpoint "
	    "before this call. Restored: %s. Lost: %s. Not saved: %s.", names,
	    lost, skipped);
	free(names);
	free(lost);
	free(skipped);
}

/* One result's MIME bundle as blocks; images counted against the caps. */
static void
mcp_run_result(json_t *content, json_t *data, size_t *images, size_t *bytes)
{
	const char	*html = json_string_value(json_object_get(data,
			    "text/html"));
	const char	*plain = json_string_value(json_object_get(data,
			    "text/plain"));
	const char	*b64;
	size_t		 i, n;
	int		 shown = 0;

	for (i = 0; i < nitems(mcp_run_images); i++) {
		if ((b64 = json_string_value(json_object_get(data,
		    mcp_run_images[i]))) == NULL)
			continue;
		n = strlen(b64);
		if (*images >= MCP_RUN_IMAGES_MAX ||
		    *bytes + n > MCP_RUN_IMAGE_BYTES) {
			mcp_run_text(content, "[%s image of %zu base64 bytes "
			    "omitted: over the result's image cap; save it to "
			    "a file and read_file it]", mcp_run_images[i], n);
		} else {
			json_array_append_new(content, json_pack("{s:s,s:s,"
			    "s:s}", "type", "image", "data", b64, "mimeType",
			    mcp_run_images[i]));
			(*images)++;
			*bytes += n;
		}
		json_object_set_new(data, mcp_run_images[i], json_sprintf(
		    "(%zu base64 bytes: in content)", n));
		shown = 1;
		break;
	}
	if (html != NULL)
		json_array_append_new(content, json_pack("{s:s,s:{s:s,s:s,"
		    "s:s}}", "type", "resource", "resource", "uri",
		    "cellblock://result.html", "mimeType", "text/html", "text",
		    html));
	if (plain != NULL && !shown && html == NULL)
		mcp_run_text(content, "%s", plain);
}

static void
mcp_run_error(json_t *content, json_t *error, const char *status)
{
	const char	*tb = json_string_value(json_object_get(error,
			    "traceback"));

	if (json_is_object(error))
		mcp_run_text(content, "%s: %s%s%s",
		    json_string_value(json_object_get(error, "ename")) ?: "Error",
		    json_string_value(json_object_get(error, "evalue")) ?: "",
		    tb != NULL && *tb != '\0' ? "\n" : "", tb ? tb : "");
	if (strcmp(status, "ok") != 0 && strcmp(status, "error") != 0)
		mcp_run_text(content, "status: %s", status);
}

/* The contract as a tools/call result; structuredContent a copy. */
static json_t *
mcp_run_answer(json_t *contract)
{
	json_t		*c = json_deep_copy(contract), *content = json_array();
	json_t		*res;
	const char	*status = json_string_value(json_object_get(c,
			    "status")) ?: "error";
	const char	*out = json_string_value(json_object_get(c, "stdout"));
	const char	*err = json_string_value(json_object_get(c, "stderr"));
	size_t		 i, images = 0, bytes = 0;

	mcp_run_resumed(content, json_object_get(c, "resumed"));
	if (out != NULL && *out != '\0')
		mcp_run_text(content, "%s", out);
	if (err != NULL && *err != '\0')
		mcp_run_text(content, "stderr:\n%s", err);
	json_array_foreach(json_object_get(c, "results"), i, res)
		mcp_run_result(content, json_object_get(res, "data"), &images,
		    &bytes);
	mcp_run_error(content, json_object_get(c, "error"), status);
	if (json_array_size(content) == 0)
		mcp_run_text(content, "(no output)");
	return (json_pack("{s:o,s:o,s:b}", "content", content,
	    "structuredContent", c, "isError", strcmp(status, "ok") != 0));
}

static void
mcp_run_done(void *arg, json_t *contract)
{
	struct mcp_run	*r = arg;

	r->done = 1;
	loop_timer_cancel(&r->keepalive);
	if (r->call != NULL) {
		mcp_call_done(r->call, mcp_run_answer(contract));
		r->call = NULL;
	}
	if (r->contract != NULL && r->reaper == NULL)
		r->reaper = loop_timer_add(0, mcp_run_reap, r);
}

/* notifications/cancelled: interrupt the cell; the session stays. */
static void
mcp_run_cancel(struct mcp_call *call)
{
	struct mcp_run	*r = call->state;

	if (r->contract != NULL && !r->done)
		contract_cancel(r->contract);
}

/* The connection went: the cell runs on, its result kept by id. */
static void
mcp_run_gone(struct mcp_call *call)
{
	struct mcp_run	*r = call->state;

	r->call = NULL;
	mcp_call_done(call, NULL);
	if (r->reaper == NULL)
		mcp_run_free(r);
}

int
mcp_run_code(struct mcp_call *call, struct session *s, json_t *args,
    json_t **result, char **cause)
{
	struct contract_req	 req;
	struct mcp_run		*r;
	json_t			*timeout = json_object_get(args, "timeout");
	char			*why;

	memset(&req, 0, sizeof req);
	req.code = json_string_value(json_object_get(args, "code"));
	req.timeout_ms = timeout != NULL ? json_number_value(timeout) * 1000 :
	    0;
	req.store_history = -1;
	req.client = "mcp";
	/*
	 * A call the agent cancelled fails; the next call, sent before the
	 * interrupt landed, must still run: "the session stays usable".
	 */
	req.keep_queue = 1;
	r = xcalloc(1, sizeof *r);
	r->call = call;
	r->last = loop_now();
	snprintf(r->session, sizeof r->session, "%s", s->name);
	call->state = r;
	call->cancel = mcp_run_cancel;
	call->gone = mcp_run_gone;
	r->contract = contract_run(s, &req, mcp_run_event, mcp_run_done, r,
	    &why);
	if (r->contract == NULL) {
		(void)cause;
		*result = mcp_tool_error("Failed", why);
		free(why);
		call->cancel = NULL;
		call->gone = NULL;
		free(r);
		return (0);
	}
	if (r->done) {		/* answered already (queue_full) */
		mcp_run_free(r);
		return (1);
	}
	r->keepalive = loop_timer_add(MCP_RUN_KEEPALIVE, mcp_run_keepalive, r);
	return (1);
}
