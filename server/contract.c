/* contract.c: the execution contract, a cell run as an in-process origin. */
/*
 * contract_run builds an execute_request and hands it to the core through
 * transport_deliver with its own origin (contract_ops), exactly as a
 * ZeroMQ or WebSocket client's would go: the session's queue, busy/idle,
 * exec-timeout, output caps and stop_on_error aborts are the core's. The
 * origin subscribes to the session's iopub and keeps what has its request
 * as parent: streams (head and tail within contract-max-output), results,
 * the error; the execute_reply ends it, its metadata.cellblock giving the
 * metrics. Finished contracts stay in one table, bounded in count and
 * age, so that a caller that went away can fetch the result by id.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"
#include "contract.h"
#include "files.h"

#define CONTRACT_TIMEOUT_GRACE	2000	/* ms after timeout_ms's interrupt */
#define CONTRACT_RESULTS_MAX	64	/* results kept per call */
#define CONTRACT_STDIN_MAX	10000	/* lines a call may answer with */

/* One stream's text: the first half of the cap, then a moving tail. */
struct contract_text {
	char		*head;
	size_t		 hlen;
	int		 head_full;	/* later text goes to the tail */
	char		*tail;
	size_t		 tlen;
	uint64_t	 total;
	int		 truncated;
};

struct contract {
	char		 id[37];	/* the execute_request's msg_id */
	uid_t		 owner;
	char		 session[SESSION_NAME_MAX + 1];
	struct session	*s;		/* a reference while running */
	struct transport_origin *origin;
	const void	*parent;	/* the request's header frame: its
					   iopub's parent_raw, while running */
	contract_event_cb *on_event;
	contract_done_cb *on_done;
	void		*arg;
	int		 detached;
	int		 running;	/* busy seen: the cell runs */
	int		 finished;
	uint64_t	 finished_at;	/* loop_now() */
	int		 timeout_ms;
	int		 timed_out;
	int		 cancelled;	/* before it ran: interrupt at its start */
	struct loop_timer *timer;	/* timeout_ms, then its grace */
	struct loop_timer *input_timer;	/* answers an input_request */
	json_t		*stdin_lines;
	size_t		 stdin_next;
	struct files_snap *snap;	/* artifacts: the tree as it started */
	struct contract_text out[2];	/* stdout, stderr */
	json_t		*results;
	size_t		 results_dropped;
	json_t		*error;		/* from iopub, until the reply's */
	json_t		*result;	/* the contract, once finished */
	size_t		 bytes;		/* its size, for the table's bound */
	TAILQ_ENTRY(contract) entry;
};

static TAILQ_HEAD(, contract) contract_all =
    TAILQ_HEAD_INITIALIZER(contract_all);
static size_t	contract_finished_n;
static size_t	contract_kept_bytes;	/* of finished contracts */

static void	contract_send(void *, enum transport_channel,
		    const struct jmsg_out *);
static void	contract_publish(void *, struct session *,
		    const struct jmsg_out *);
static void	contract_finish(struct contract *, const struct jmsg_out *);
static void	contract_free(struct contract *);

static const struct transport_ops contract_ops = {
	"contract", contract_send, contract_publish, NULL
};

/*
 * The reply's ename says which status a failed call has. Legend: ename
 * from the core, the runner or Python; the status; whether the session's
 * variables are gone with it (else the reply's state_preserved, or kept).
 */
static const struct {
	const char	*ename;
	const char	*status;
	int		 state_lost;
} contract_statuses[] = {
	{ "SessionQueueFull", "queue_full", 0 },
	{ "CellTimeout", "timeout", 0 },
	{ "SessionOutOfMemory", "out_of_memory", 1 },
	{ "MemoryError", "out_of_memory", 0 },
	{ "SessionKilled", "killed", 1 },
	{ "SessionRestarted", "killed", 1 },
	{ "SessionEnded", "killed", 1 },
	{ "InterpreterExited", "killed", 1 },
	{ "InterpreterFailedToStart", "killed", 1 },
};

/* Text. */

static size_t
contract_cap(void)
{
	return (cfg.contract_output > 2 ? cfg.contract_output : 2);
}

/* Back len off so that s[0..len) does not end inside a UTF-8 sequence. */
static size_t
contract_utf8_cut(const char *s, size_t len)
{
	size_t	i = len, n;

	while (i > 0 && len - i < 4 && ((u_char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return (len);
	n = (u_char)s[i - 1];
	/* The lead byte at i-1 and how many bytes it wants. */
	if (n >= 0xc0) {
		size_t want = n >= 0xf0 ? 4 : n >= 0xe0 ? 3 : 2;
		if (len - (i - 1) < want)
			return (i - 1);
	}
	return (len);
}

/* Skip continuation bytes at the start of a tail. */
static size_t
contract_utf8_skip(const char *s, size_t len)
{
	size_t	i = 0;

	while (i < len && i < 3 && ((u_char)s[i] & 0xc0) == 0x80)
		i++;
	return (i);
}

static void
contract_text_add(struct contract_text *t, const char *text, size_t len)
{
	size_t	half = contract_cap() / 2, n, keep;

	t->total += len;
	if (!t->head_full) {
		n = len < half - t->hlen ? len : half - t->hlen;
		if (n < len) {
			n = contract_utf8_cut(text, n);
			t->head_full = 1;	/* even if cut short */
		}
		t->head = xrealloc(t->head, t->hlen + n + 1);
		memcpy(t->head + t->hlen, text, n);
		t->hlen += n;
		text += n;
		len -= n;
		if (len == 0)
			return;
	}
	t->truncated = 1;
	if (len >= half) {
		text += len - half;
		len = half;
		t->tlen = 0;
	}
	keep = t->tlen + len > half ? half - len : t->tlen;
	if (t->tail == NULL)
		t->tail = xmalloc(half + 1);
	memmove(t->tail, t->tail + t->tlen - keep, keep);
	memcpy(t->tail + keep, text, len);
	t->tlen = keep + len;
}

/* head, an omission marker, tail: valid UTF-8 whatever was cut. */
static json_t *
contract_text_json(struct contract_text *t)
{
	char	*buf, *head;
	size_t	 skip, hlen, omitted;
	json_t	*j;

	hlen = t->hlen;
	head = t->head != NULL ? t->head : (char *)"";
	if (!t->truncated) {
		j = json_stringn(head, hlen);
		return (j != NULL ? j : json_string(""));
	}
	skip = t->tail != NULL ? contract_utf8_skip(t->tail, t->tlen) : 0;
	omitted = t->total - hlen - (t->tlen - skip);
	xasprintf(&buf, "%.*s\n[cellblock: %zu bytes omitted]\n%.*s",
	    (int)hlen, head, omitted, (int)(t->tlen - skip),
	    t->tail != NULL ? t->tail + skip : "");
	j = json_string(buf);
	if (j == NULL)		/* not UTF-8 after all: say so, do not fail */
		j = json_string("[cellblock: output not valid UTF-8]");
	free(buf);
	return (j);
}

/* Jupyter's tracebacks are ANSI-coloured: the contract's are plain. */
static char *
contract_strip_ansi(const char *in)
{
	char	*out = xmalloc(strlen(in) + 1), *o = out;

	while (*in != '\0') {
		if (*in == '\033' && in[1] == '[') {
			in += 2;
			while (*in != '\0' && (*in < 0x40 || *in > 0x7e))
				in++;
			if (*in != '\0')
				in++;
			continue;
		}
		*o++ = *in++;
	}
	*o = '\0';
	return (out);
}

/*
 * The frames joined by newlines in one pass: user code picks how many
 * (IPython's _render_traceback_), so no copy of the whole per frame.
 */
static json_t *
contract_traceback(json_t *tb)
{
	json_t	*v;
	size_t	 i, len = 0, n;
	char	*all, *o, *plain;

	json_array_foreach(tb, i, v) {
		if (json_is_string(v))
			len += json_string_length(v) + 1;
	}
	o = all = xmalloc(len + 1);
	json_array_foreach(tb, i, v) {
		if (!json_is_string(v))
			continue;
		if (o != all)
			*o++ = '\n';
		n = json_string_length(v);
		memcpy(o, json_string_value(v), n);
		o += n;
	}
	*o = '\0';
	plain = contract_strip_ansi(all);
	free(all);
	v = json_string(plain);
	free(plain);
	return (v != NULL ? v : json_string(""));
}

/* Events. */

static void
contract_event(struct contract *c, json_t *ev)
{
	if (c->on_event != NULL && !c->detached)
		c->on_event(c->arg, ev);
	json_decref(ev);
}

static void
contract_on_stream(struct contract *c, json_t *content)
{
	const char	*name = json_string_value(json_object_get(content, "name"));
	json_t		*text = json_object_get(content, "text");
	int		 err = name != NULL && strcmp(name, "stderr") == 0;

	if (!json_is_string(text))
		return;
	contract_text_add(&c->out[err], json_string_value(text),
	    json_string_length(text));
	contract_event(c, json_pack("{s:s,s:O}", "type", err ? "stderr" :
	    "stdout", "text", text));
}

static void
contract_on_result(struct contract *c, const char *type, json_t *content)
{
	json_t	*r, *ev, *data = json_object_get(content, "data");
	json_t	*md = json_object_get(content, "metadata");

	r = json_pack("{s:o,s:o,s:b}", "data", json_is_object(data) ?
	    json_incref(data) : json_object(), "metadata", json_is_object(md) ?
	    json_incref(md) : json_object(), "is_main_result",
	    strcmp(type, "execute_result") == 0);
	if (r == NULL)
		return;
	/* The event is a copy: the kept result must not grow a "type". */
	ev = json_deep_copy(r);
	json_object_set_new(ev, "type", json_string("result"));
	if (json_array_size(c->results) < CONTRACT_RESULTS_MAX)
		json_array_append_new(c->results, r);
	else {
		c->results_dropped++;
		json_decref(r);
	}
	contract_event(c, ev);
}

static json_t *
contract_error_of(json_t *content)
{
	const char	*ename, *evalue;

	ename = json_string_value(json_object_get(content, "ename"));
	evalue = json_string_value(json_object_get(content, "evalue"));
	return (json_pack("{s:s,s:s,s:o}", "ename", ename ? ename : "Error",
	    "evalue", evalue ? evalue : "", "traceback",
	    contract_traceback(json_object_get(content, "traceback"))));
}

static void contract_timeout_start(struct contract *);
static void contract_cancel_start(struct contract *);

/* The session's iopub: only what has this call's request as parent. */
/*
 * A request's stdin lines, as every surface takes them: absent, or an
 * array of at most CONTRACT_STDIN_MAX strings. 0, or -1 and why.
 */
int
contract_stdin_valid(json_t *in, char **cause)
{
	json_t	*v;
	size_t	 i;

	if (in == NULL)
		return (0);
	if (!json_is_array(in) || json_array_size(in) > CONTRACT_STDIN_MAX) {
		xasprintf(cause, "stdin: an array of at most %d strings",
		    CONTRACT_STDIN_MAX);
		return (-1);
	}
	json_array_foreach(in, i, v) {
		if (!json_is_string(v)) {
			xasprintf(cause, "stdin[%zu]: not a string", i);
			return (-1);
		}
	}
	return (0);
}

static void
contract_publish(void *conn, struct session *s, const struct jmsg_out *out)
{
	struct contract	*c = conn;
	const char	*type = out->msg_type, *state;
	json_t		*e;

	(void)s;
	if (c->finished || out->parent_raw == NULL ||
	    (const void *)out->parent_raw != c->parent)
		return;
	if (strcmp(type, "stream") == 0)
		contract_on_stream(c, out->content);
	else if (strcmp(type, "execute_result") == 0 ||
	    strcmp(type, "display_data") == 0)
		contract_on_result(c, type, out->content);
	else if (strcmp(type, "error") == 0) {
		json_decref(c->error);
		c->error = contract_error_of(out->content);
		e = json_deep_copy(c->error);
		json_object_set_new(e, "type", json_string("error"));
		contract_event(c, e);
	} else if (strcmp(type, "status") == 0) {
		state = json_string_value(json_object_get(out->content,
		    "execution_state"));
		if (state != NULL && strcmp(state, "busy") == 0 && !c->running &&
		    c->s != NULL && kernel_running(c->s) == c->parent) {
			c->running = 1;
			c->snap = files_snapshot(c->s);
			if (c->cancelled)
				contract_cancel_start(c);
			contract_timeout_start(c);
			contract_event(c, json_pack("{s:s,s:s}", "type",
			    "status", "state", "running"));
		}
	}
}

/* stdin: the next of the caller's lines ("" once they are used up). */
static void
contract_input_fire(void *arg)
{
	struct contract	*c = arg;
	struct jmsg	*jm;
	json_t		*v;
	const char	*line = "";

	c->input_timer = NULL;
	if (c->finished || c->s == NULL)
		return;
	v = json_array_get(c->stdin_lines, c->stdin_next);
	if (json_is_string(v)) {
		line = json_string_value(v);
		c->stdin_next++;
	}
	jm = xcalloc(1, sizeof *jm);
	jm->header = jmsg_header_new("input_reply", c->session, "cellblock");
	jm->msg_type = json_string_value(json_object_get(jm->header,
	    "msg_type"));
	jm->msg_id = json_string_value(json_object_get(jm->header, "msg_id"));
	jm->session = c->session;
	jm->username = "cellblock";
	jm->content = json_pack("{s:s}", "value", line);
	jm->buffers = zmsg_new();
	transport_deliver(c->origin, c->s, TRANSPORT_STDIN, jm);
}

/* A reply, or an input_request, for this origin's request. */
static void
contract_send(void *conn, enum transport_channel ch,
    const struct jmsg_out *out)
{
	struct contract	*c = conn;
	json_t		*prompt;

	if (c->finished)
		return;
	if (ch == TRANSPORT_STDIN) {
		prompt = json_object_get(out->content, "prompt");
		contract_event(c, json_pack("{s:s,s:s}", "type",
		    "input_request", "prompt", json_is_string(prompt) ?
		    json_string_value(prompt) : ""));
		/* After the core marks the input pending: from the loop. */
		if (c->input_timer == NULL)
			c->input_timer = loop_timer_add(0, contract_input_fire,
			    c);
		return;
	}
	if (strcmp(out->msg_type, "execute_reply") == 0)
		contract_finish(c, out);
}

/* Timeouts: interrupt, then as the core's exec-timeout, a restart. */

static void
contract_timeout_grace(void *arg)
{
	struct contract	*c = arg;

	c->timer = NULL;
	if (c->finished || c->s == NULL)
		return;
	log_warn("%s: call %s ignored its timeout's interrupt; restarting",
	    c->session, c->id);
	incarnation_stop(c->s, "CellTimeout");
}

static void
contract_timeout_fire(void *arg)
{
	struct contract	*c = arg;

	c->timer = NULL;
	if (c->finished || c->s == NULL)
		return;
	log_info("%s: call %s exceeded %d ms; interrupting", c->session, c->id,
	    c->timeout_ms);
	c->timed_out = 1;
	kernel_interrupt(c->s);
	c->timer = loop_timer_add(CONTRACT_TIMEOUT_GRACE,
	    contract_timeout_grace, c);
}

static void
contract_timeout_start(struct contract *c)
{
	if (c->timeout_ms > 0 && c->timer == NULL)
		c->timer = loop_timer_add(c->timeout_ms, contract_timeout_fire,
		    c);
}

/* The result. */

static const char *
contract_status(struct contract *c, json_t *content, json_t *cb,
    int *preserved)
{
	const char	*st = json_string_value(json_object_get(content,
			    "status"));
	const char	*ename = json_string_value(json_object_get(content,
			    "ename"));
	json_t		*sp = json_object_get(cb, "state_preserved");
	size_t		 i;

	*preserved = json_is_boolean(sp) ? json_is_true(sp) : 1;
	if (st != NULL && strcmp(st, "ok") == 0)
		return ("ok");
	if (st != NULL && strcmp(st, "aborted") == 0)
		return ("aborted");
	for (i = 0; ename != NULL && i < nitems(contract_statuses); i++) {
		if (strcmp(contract_statuses[i].ename, ename) != 0)
			continue;
		if (contract_statuses[i].state_lost)
			*preserved = 0;
		if (c->timed_out && strcmp(contract_statuses[i].status,
		    "killed") == 0)
			return ("timeout");
		return (contract_statuses[i].status);
	}
	if (c->timed_out)
		return ("timeout");	/* the interrupt's KeyboardInterrupt */
	return ("error");
}

/* The reply's error, with where a SyntaxError is. */
static json_t *
contract_error(struct contract *c, json_t *content, json_t *cb)
{
	json_t	*e, *v;

	if (json_object_get(content, "ename") == NULL)
		return (json_null());
	e = contract_error_of(content);
	/* The iopub error's traceback is the full one (a reply's may be []). */
	if (c->error != NULL && json_string_length(json_object_get(e,
	    "traceback")) == 0)
		json_object_set(e, "traceback", json_object_get(c->error,
		    "traceback"));
	if (json_is_integer(v = json_object_get(cb, "error_line")))
		json_object_set(e, "line", v);
	if (json_is_integer(v = json_object_get(cb, "error_column")))
		json_object_set(e, "column", v);
	return (e);
}

static json_t *
contract_metrics(json_t *cb)
{
	static const char	*keys[] = { "wall_ms", "cpu_ms",
		"peak_memory_bytes", "stdout_bytes", "stderr_bytes",
		"queued_ms" };
	json_t			*m = json_object(), *v;
	size_t			 i;

	for (i = 0; i < nitems(keys); i++) {
		v = json_object_get(cb, keys[i]);
		json_object_set(m, keys[i], v != NULL ? v : json_null());
	}
	return (m);
}

static json_t *
contract_artifacts(struct contract *c, int *truncated)
{
	*truncated = 0;
	if (c->s == NULL || c->s->dying || c->snap == NULL)
		return (json_array());
	return (files_changed(c->s, c->snap, CONTRACT_ARTIFACTS_MAX,
	    truncated));
}

static void
contract_prune(void)
{
	struct contract	*c, *next;
	uint64_t	 now = loop_now();

	for (c = TAILQ_FIRST(&contract_all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!c->finished || !c->detached)
			continue;
		if (contract_finished_n > CONTRACT_KEEP_MAX ||
		    contract_kept_bytes > CONTRACT_KEEP_BYTES ||
		    now - c->finished_at > CONTRACT_KEEP_SECONDS * 1000)
			contract_free(c);
	}
}

static void
contract_finish(struct contract *c, const struct jmsg_out *out)
{
	json_t		*meta = out->metadata, *content = out->content;
	json_t		*cb = json_object_get(meta, "cellblock"), *arts;
	json_t		*resumed = json_object_get(meta, "cellblock_resumed");
	json_t		*count = json_object_get(content, "execution_count");
	const char	*status;
	int		 preserved, truncated;
	struct session	*s = c->s;

	loop_timer_cancel(&c->timer);
	loop_timer_cancel(&c->input_timer);
	status = contract_status(c, content, cb, &preserved);
	arts = contract_artifacts(c, &truncated);
	files_snapshot_free(&c->snap);
	c->result = json_pack("{s:s,s:s,s:s,s:O,s:o,s:b,s:o,s:b,s:O,s:o,"
	    "s:o,s:b,s:O,s:o,s:b,s:b}",
	    "id", c->id, "session", c->session, "status", status,
	    "execution_count", json_is_integer(count) ? count : json_null(),
	    "stdout", contract_text_json(&c->out[0]),
	    "stdout_truncated", c->out[0].truncated,
	    "stderr", contract_text_json(&c->out[1]),
	    "stderr_truncated", c->out[1].truncated,
	    "results", c->results,
	    "error", contract_error(c, content, cb),
	    "metrics", contract_metrics(cb),
	    "state_preserved", preserved,
	    "resumed", json_is_object(resumed) ? resumed : json_null(),
	    "artifacts", arts,
	    "artifacts_truncated", truncated,
	    "results_truncated", c->results_dropped > 0);
	if (c->result == NULL)
		fatalx("%s: cannot build the contract", __func__);
	c->finished = 1;
	c->finished_at = loop_now();
	contract_finished_n++;
	c->bytes = json_dumpb(c->result, NULL, 0, JSON_COMPACT);
	contract_kept_bytes += c->bytes;
	c->parent = NULL;
	c->s = NULL;
	if (s != NULL) {
		transport_unsubscribe(s, c->origin);
		session_remove_ref(s);
	}
	if (c->on_done != NULL && !c->detached)
		c->on_done(c->arg, c->result);
	contract_prune();
}

/* The call. */

static struct jmsg *
contract_request(struct contract *c, const struct contract_req *r)
{
	struct jmsg	*jm = xcalloc(1, sizeof *jm);
	char		*raw;
	int		 allow_stdin = json_array_size(r->stdin_lines) > 0;

	jm->header = jmsg_header_new("execute_request", c->session,
	    "cellblock");
	raw = json_dumps(jm->header, JSON_COMPACT);
	jm->header_raw = zframe_new(raw, strlen(raw));
	free(raw);
	jm->msg_type = json_string_value(json_object_get(jm->header,
	    "msg_type"));
	jm->msg_id = json_string_value(json_object_get(jm->header, "msg_id"));
	jm->session = json_string_value(json_object_get(jm->header,
	    "session"));
	jm->username = "cellblock";
	jm->parent = json_object();
	jm->metadata = json_pack("{s:s}", "cellblock_client",
	    r->client != NULL ? r->client : "cli");
	jm->content = json_pack("{s:s,s:b,s:b,s:{},s:b,s:b}", "code", r->code,
	    "silent", 0, "store_history", r->store_history != 0,
	    "user_expressions", "allow_stdin", allow_stdin, "stop_on_error",
	    !r->keep_queue);
	jm->buffers = zmsg_new();
	jm->size = zframe_size(jm->header_raw) + strlen(r->code) + 256;
	return (jm);
}

struct contract *
contract_run(struct session *s, const struct contract_req *r,
    contract_event_cb *on_event, contract_done_cb *on_done, void *arg,
    char **cause)
{
	struct contract	*c;
	struct jmsg	*jm;

	if (r->code == NULL) {
		*cause = xstrdup("no code given");
		return (NULL);
	}
	if (s == NULL || s->ending || s->dying) {
		*cause = xstrdup("the session is ending");
		return (NULL);
	}
	if (contract_stdin_valid(r->stdin_lines, cause) != 0) {
		return (NULL);
	}
	c = xcalloc(1, sizeof *c);
	snprintf(c->session, sizeof c->session, "%s", s->name);
	c->owner = s->owner;
	c->s = s;
	session_add_ref(s);
	c->on_event = on_event;
	c->on_done = on_done;
	c->arg = arg;
	c->timeout_ms = r->timeout_ms > 0 ? r->timeout_ms : 0;
	c->stdin_lines = r->stdin_lines != NULL ? json_incref(r->stdin_lines) :
	    NULL;
	c->results = json_array();
	c->origin = transport_origin_new(&contract_ops, c);
	jm = contract_request(c, r);
	snprintf(c->id, sizeof c->id, "%s", jm->msg_id);
	c->parent = jm->header_raw;
	TAILQ_INSERT_TAIL(&contract_all, c, entry);
	transport_subscribe(s, c->origin);
	contract_event(c, json_pack("{s:s,s:s,s:s}", "type", "status",
	    "state", "queued", "id", c->id));
	transport_deliver(c->origin, s, TRANSPORT_SHELL, jm);
	return (c);
}

/*
 * A call cancelled while queued is interrupted once it runs. The runner
 * drops a SIGINT that comes before it has read the request (a stale one
 * must not hit the next cell), so it is sent again every 50 ms until the
 * call ends, at most 40 times.
 */
static void
contract_cancel_fire(void *arg)
{
	struct contract	*c = arg;

	c->input_timer = NULL;
	if (c->finished || c->s == NULL || ++c->cancelled > 40)
		return;
	kernel_interrupt(c->s);
	c->input_timer = loop_timer_add(50, contract_cancel_fire, c);
}

static void
contract_cancel_start(struct contract *c)
{
	loop_timer_cancel(&c->input_timer);
	c->input_timer = loop_timer_add(0, contract_cancel_fire, c);
}

void
contract_cancel(struct contract *c)
{
	if (c == NULL || c->finished || c->s == NULL || c->cancelled)
		return;
	c->cancelled = 1;
	if (c->running)
		contract_cancel_start(c);
}

/* The control socket's cancel: a call by id, its owner's (or root's). */
int
contract_cancel_id(const char *id, uid_t uid)
{
	struct contract	*c;

	TAILQ_FOREACH(c, &contract_all, entry) {
		if (strcmp(c->id, id) != 0)
			continue;
		if (uid != 0 && uid != c->owner)
			return (-1);
		contract_cancel(c);
		return (0);
	}
	return (-1);
}

void
contract_detach(struct contract *c)
{
	if (c == NULL)
		return;
	c->detached = 1;
	c->on_event = NULL;
	c->on_done = NULL;
	c->arg = NULL;
	contract_prune();
}

const char *
contract_id(struct contract *c)
{
	return (c->id);
}

uid_t
contract_owner(struct contract *c)
{
	return (c->owner);
}

json_t *
contract_result(struct contract *c)
{
	if (c->finished)
		return (json_incref(c->result));
	return (json_pack("{s:s,s:s,s:s}", "id", c->id, "session", c->session,
	    "status", c->running ? "running" : "queued"));
}

json_t *
contract_lookup(const char *id, uid_t uid)
{
	struct contract	*c;

	contract_prune();
	TAILQ_FOREACH(c, &contract_all, entry) {
		if (strcmp(c->id, id) != 0)
			continue;
		if (uid != 0 && uid != c->owner)
			return (NULL);
		return (contract_result(c));
	}
	return (NULL);
}

static void
contract_text_free(struct contract_text *t)
{
	free(t->head);
	free(t->tail);
}

static void
contract_free(struct contract *c)
{
	TAILQ_REMOVE(&contract_all, c, entry);
	if (c->finished) {
		contract_finished_n--;
		contract_kept_bytes -= c->bytes;
	}
	loop_timer_cancel(&c->timer);
	loop_timer_cancel(&c->input_timer);
	if (c->s != NULL) {
		transport_unsubscribe(c->s, c->origin);
		session_remove_ref(c->s);
	}
	transport_origin_gone(&c->origin);
	contract_text_free(&c->out[0]);
	contract_text_free(&c->out[1]);
	files_snapshot_free(&c->snap);
	json_decref(c->stdin_lines);
	json_decref(c->results);
	json_decref(c->error);
	json_decref(c->result);
	free(c);
}

/* At exit: every contract, finished or not, callers or not. */
void
contract_free_all(void)
{
	struct contract	*c;

	while ((c = TAILQ_FIRST(&contract_all)) != NULL)
		contract_free(c);
}
