/* metrics.c: the daemon's counters, gauges and histograms, as Prometheus text. */
/*
 * Events are counted as they happen, by handlers of the core's hooks
 * (metrics_hooks below, registered by metrics_init); states (sessions by
 * state and owner, queue depth, the zygote) are read from the session
 * table when the metrics are rendered. metrics_render() is the one
 * function that turns it all into the Prometheus text exposition format
 * (version 0.0.4); the HTTP front serves it as GET /metrics and
 * `cellblock stats` prints it.
 * Every family is one row of metrics_table.
 */

#include <sys/types.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

#define METRICS_SERIES_MAX	64	/* per family; the rest go to "other" */

enum metrics_type { M_COUNTER, M_GAUGE, M_HISTOGRAM };

enum metrics_id {
	M_EXECUTES, M_EXECUTE_SECONDS, M_START_SECONDS, M_LIFECYCLE,
	M_CKPT_BYTES, M_DROPPED, M_EGRESS, M_HTTP_CONNS, M_SESSIONS,
	M_SESSIONS_OWNER, M_QUEUE, M_ZYGOTE, M_UP, M_NFAMILIES
};

/*
 * Legend: name (cellblock_ prefixed); type; help text; the label names of
 * its series, comma-separated ("" for one unlabelled series); whether the
 * value is read at render time (1) rather than counted as events occur.
 */
static const struct metrics_family {
	enum metrics_id		 id;
	const char		*name;
	enum metrics_type	 type;
	const char		*help;
	const char		*labels;
	int			 at_render;
} metrics_table[] = {
	{ M_EXECUTES, "cellblock_executes_total", M_COUNTER,
	  "Execute requests answered, by reply status and error name.",
	  "status,ename", 0 },
	{ M_EXECUTE_SECONDS, "cellblock_execute_seconds", M_HISTOGRAM,
	  "Wall time of execute requests that ran, start to reply.", "", 0 },
	{ M_START_SECONDS, "cellblock_session_start_seconds", M_HISTOGRAM,
	  "Time from starting an interpreter to its hello, by how it was "
	  "born.", "born", 0 },
	{ M_LIFECYCLE, "cellblock_lifecycle_events_total", M_COUNTER,
	  "Session lifecycle events: create, hibernate, resume, fork, "
	  "restart, kill, end.", "event", 0 },
	{ M_CKPT_BYTES, "cellblock_checkpoint_bytes_total", M_COUNTER,
	  "Bytes of checkpoints written.", "", 0 },
	{ M_DROPPED, "cellblock_wire_dropped_total", M_COUNTER,
	  "Wire messages dropped before dispatch, by reason.", "reason", 0 },
	{ M_EGRESS, "cellblock_egress_total", M_COUNTER,
	  "Outbound connections sessions attempted, by verdict.", "verdict",
	  0 },
	{ M_HTTP_CONNS, "cellblock_http_connections", M_GAUGE,
	  "Open connections on the HTTP front, by kind (http, ws).", "kind",
	  0 },
	{ M_SESSIONS, "cellblock_sessions", M_GAUGE,
	  "Sessions by state.", "state", 1 },
	{ M_SESSIONS_OWNER, "cellblock_sessions_by_owner", M_GAUGE,
	  "Sessions by owner uid.", "owner", 1 },
	{ M_QUEUE, "cellblock_queued_requests", M_GAUGE,
	  "Requests waiting in session queues.", "", 1 },
	{ M_ZYGOTE, "cellblock_zygote_state", M_GAUGE,
	  "1 for the zygote's current state.", "state", 1 },
	{ M_UP, "cellblock_start_time_seconds", M_GAUGE,
	  "When the daemon started, seconds since the epoch.", "", 1 },
};

/* Upper bounds, seconds: cells run from milliseconds to many minutes. */
static const double metrics_exec_buckets[] = { 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };
static const double metrics_start_buckets[] = { 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define METRICS_BUCKETS_MAX	16

struct metrics_series {
	char		*labels;	/* rendered: a="x",b="y" */
	double		 value;
	uint64_t	 buckets[METRICS_BUCKETS_MAX];
	uint64_t	 count;
};

struct metrics_store {
	struct metrics_series	s[METRICS_SERIES_MAX];
	size_t			n;
};

static struct metrics_store metrics_store[M_NFAMILIES];
static time_t	 metrics_started;

/* Session start times, by name, between metrics_spawn and the hello. */
static zhashx_t	*metrics_spawns;
/* "start msg_id" of the execute running in each session, by name. */
static zhashx_t	*metrics_runs;

static int	metrics_spawn(struct session *, const void *);
static int	metrics_hello(struct session *, const void *);
static int	metrics_run(struct session *, const void *);
static int	metrics_reply(struct session *, const void *);
static int	metrics_lifecycle(struct session *, const void *);
static int	metrics_egress(struct session *, const void *);

/* Legend: the hook, and the handler that counts it. */
static const struct {
	enum hook_event	 ev;
	hook_fn		*fn;
} metrics_hooks[] = {
	{ HOOK_SPAWN, metrics_spawn },
	{ HOOK_HELLO, metrics_hello },
	{ HOOK_RUN, metrics_run },
	{ HOOK_REPLY, metrics_reply },
	{ HOOK_LIFECYCLE, metrics_lifecycle },
	{ HOOK_EGRESS, metrics_egress },
};

static const struct metrics_family *
metrics_family(enum metrics_id id)
{
	size_t	i;

	for (i = 0; i < nitems(metrics_table); i++) {
		if (metrics_table[i].id == id)
			return (&metrics_table[i]);
	}
	fatalx("metrics family %d not in the table", id);
}

/* A label value, escaped as the text format wants, capped in length. */
static void
metrics_escape(char *out, size_t len, const char *v)
{
	size_t	o = 0;

	for (; v != NULL && *v != '\0' && o + 3 < len; v++) {
		if (*v == '\\' || *v == '"') {
			out[o++] = '\\';
			out[o++] = *v;
		} else if (*v == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else
			out[o++] = *v;
	}
	out[o] = '\0';
}

/* "a,b" and {"x","y"} -> a="x",b="y". */
static char *
metrics_labels(const char *names, const char *const *values)
{
	char	*out = xstrdup(""), *next, esc[192], name[32];
	size_t	 i = 0, n;

	while (*names != '\0') {
		n = strcspn(names, ",");
		snprintf(name, sizeof name, "%.*s", (int)n, names);
		metrics_escape(esc, sizeof esc, values[i++]);
		xasprintf(&next, "%s%s%s=\"%s\"", out, *out ? "," : "", name,
		    esc);
		free(out);
		out = next;
		names += n + (names[n] == ',');
	}
	return (out);
}

/*
 * The series of a family with these label values; past the cap, one
 * series whose every label is "other" (an ename is whatever a cell raises:
 * it must not grow the registry without bound).
 */
static struct metrics_series *
metrics_series(enum metrics_id id, const char *const *values)
{
	const struct metrics_family	*f = metrics_family(id);
	struct metrics_store		*st = &metrics_store[id];
	static const char *const	 other[] = { "other", "other",
					    "other" };
	char				*labels;
	size_t				 i;

	labels = metrics_labels(f->labels, values);
	for (i = 0; i < st->n; i++) {
		if (strcmp(st->s[i].labels, labels) == 0) {
			free(labels);
			return (&st->s[i]);
		}
	}
	if (st->n == METRICS_SERIES_MAX - 1 && values != other) {
		free(labels);
		return (metrics_series(id, other));
	}
	st->s[st->n].labels = labels;
	return (&st->s[st->n++]);
}

static void
metrics_add(enum metrics_id id, const char *const *values, double by)
{
	metrics_series(id, values)->value += by;
}

static const double *
metrics_buckets(enum metrics_id id, size_t *n)
{
	if (id == M_START_SECONDS) {
		*n = nitems(metrics_start_buckets);
		return (metrics_start_buckets);
	}
	*n = nitems(metrics_exec_buckets);
	return (metrics_exec_buckets);
}

static void
metrics_observe(enum metrics_id id, const char *const *values, double v)
{
	struct metrics_series	*s = metrics_series(id, values);
	const double		*b;
	size_t			 i, n;

	b = metrics_buckets(id, &n);
	for (i = 0; i < n; i++) {
		if (v <= b[i])
			s->buckets[i]++;
	}
	s->count++;
	s->value += v;
}

static void
metrics_clear(enum metrics_id id)
{
	struct metrics_store	*st = &metrics_store[id];
	size_t			 i;

	for (i = 0; i < st->n; i++)
		free(st->s[i].labels);
	memset(st, 0, sizeof *st);
}

void
metrics_init(void)
{
	size_t	i;

	metrics_started = time(NULL);
	metrics_spawns = zhashx_new();
	zhashx_set_destructor(metrics_spawns, (zhashx_destructor_fn *)
	    zstr_free);
	metrics_runs = zhashx_new();
	zhashx_set_destructor(metrics_runs, (zhashx_destructor_fn *)
	    zstr_free);
	for (i = 0; i < nitems(metrics_hooks); i++)
		hook_add(metrics_hooks[i].ev, metrics_hooks[i].fn);
}

void
metrics_free(void)
{
	size_t	i;

	for (i = 0; i < M_NFAMILIES; i++)
		metrics_clear(i);
	zhashx_destroy(&metrics_spawns);
	zhashx_destroy(&metrics_runs);
}

/* Counting, from the core's hooks (server/hook.c). */

static double
metrics_clock(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

/* HOOK_SPAWN: an interpreter is being started; its hello ends the clock. */
static int
metrics_spawn(struct session *s, const void *arg)
{
	(void)arg;
	zhashx_update(metrics_spawns, s->name, xprintf("%.9f",
	    metrics_clock()));
	return (0);
}

/* HOOK_HELLO */
static int
metrics_hello(struct session *s, const void *arg)
{
	const char	*t, *v[] = { spawn_born_name(s->born) };

	(void)arg;
	if ((t = zhashx_lookup(metrics_spawns, s->name)) == NULL)
		return (0);
	metrics_observe(M_START_SECONDS, v, metrics_clock() - strtod(t,
	    NULL));
	zhashx_delete(metrics_spawns, s->name);
	return (0);
}

/* HOOK_RUN: an execute starts running; its reply ends the clock. */
static int
metrics_run(struct session *s, const void *arg)
{
	const struct jmsg	*jm = arg;

	if (strcmp(jm->msg_type, "execute_request") == 0)
		zhashx_update(metrics_runs, s->name, xprintf("%.9f %s",
		    metrics_clock(), jm->msg_id));
	return (0);
}

/*
 * HOOK_REPLY: every execute reply counts; the time only of one that ran
 * (an aborted or refused one never started its clock).
 */
static int
metrics_reply(struct session *s, const void *arg)
{
	const struct hook_reply	*r = arg;
	const char		*status, *ename, *t, *v[2];
	char			*id;
	double			 start;

	if (r->type == NULL || strcmp(r->type, "execute_reply") != 0)
		return (0);
	status = json_string_value(json_object_get(r->content, "status"));
	ename = json_string_value(json_object_get(r->content, "ename"));
	v[0] = status != NULL ? status : "unknown";
	v[1] = ename != NULL ? ename : "";
	metrics_add(M_EXECUTES, v, 1);
	if ((t = zhashx_lookup(metrics_runs, s->name)) == NULL)
		return (0);
	start = strtod(t, &id);
	if (*id == ' ' && strcmp(id + 1, r->request->msg_id) == 0) {
		metrics_observe(M_EXECUTE_SECONDS, NULL, metrics_clock() -
		    start);
		zhashx_delete(metrics_runs, s->name);
	}
	return (0);
}

/* HOOK_LIFECYCLE */
static int
metrics_lifecycle(struct session *s, const void *arg)
{
	const struct hook_lifecycle	*ev = arg;
	const char			*v[] = { ev->event };

	metrics_add(M_LIFECYCLE, v, 1);
	if (strcmp(ev->event, "checkpoint") == 0)
		metrics_add(M_CKPT_BYTES, NULL, json_integer_value(
		    json_object_get(ev->details, "bytes")));
	if (strcmp(ev->event, "end") == 0) {
		zhashx_delete(metrics_runs, s->name);
		zhashx_delete(metrics_spawns, s->name);
	}
	return (0);
}

/* HOOK_EGRESS: one connection, allowed or refused. */
static int
metrics_egress(struct session *s, const void *arg)
{
	const char	*verdict, *v[1];

	(void)s;
	verdict = json_string_value(json_object_get(arg, "verdict"));
	v[0] = verdict != NULL && strcmp(verdict, "allowed") == 0 ?
	    "allowed" : "refused";
	metrics_add(M_EGRESS, v, 1);
	return (0);
}

/* The gateway sets it as connections come and go. */
void
metrics_set_connections(const char *kind, long n)
{
	const char	*v[] = { kind };

	metrics_series(M_HTTP_CONNS, v)->value = n;
}

/*
 * Legend: a piece of the decoder's or verifier's cause; the reason label.
 * First match wins; unknown causes count as "other".
 */
static const struct {
	const char	*cause;
	const char	*reason;
} metrics_drop_reasons[] = {
	{ "replayed", "replayed_signature" },
	{ "signature", "bad_signature" },
	{ "exceeds limit", "too_large" },
	{ "delimiter", "bad_framing" },
	{ "frames needed", "bad_framing" },
	{ "JSON", "bad_json" },
	{ "header", "bad_header" },
};

void
metrics_wire_dropped(const char *cause)
{
	const char	*v[] = { "other" };
	size_t		 i;

	for (i = 0; cause != NULL && i < nitems(metrics_drop_reasons); i++) {
		if (strstr(cause, metrics_drop_reasons[i].cause) != NULL) {
			v[0] = metrics_drop_reasons[i].reason;
			break;
		}
	}
	metrics_add(M_DROPPED, v, 1);
}

/* Reading states, at render time. */


static void
metrics_sample(int with_owners)
{
	static const enum session_state states[] = { SESSION_CREATING,
	    SESSION_IDLE, SESSION_BUSY, SESSION_CHECKPOINTING,
	    SESSION_HIBERNATED, SESSION_DEAD };
	struct session	*s;
	const char	*v[1];
	char		 uid[32];
	json_t		*z;
	size_t		 i, queued = 0;

	metrics_clear(M_SESSIONS);
	metrics_clear(M_SESSIONS_OWNER);
	metrics_clear(M_QUEUE);
	metrics_clear(M_ZYGOTE);
	metrics_clear(M_UP);
	for (i = 0; i < nitems(states); i++) {
		v[0] = session_state_name(states[i]);
		metrics_add(M_SESSIONS, v, 0);
	}
	for (s = session_first(); s != NULL; s = session_next()) {
		v[0] = session_state_name(s->state);
		metrics_add(M_SESSIONS, v, 1);
		snprintf(uid, sizeof uid, "%lu", (u_long)s->owner);
		v[0] = uid;
		if (with_owners)
			metrics_add(M_SESSIONS_OWNER, v, 1);
		queued += s->queue_len;
	}
	metrics_add(M_QUEUE, NULL, queued);
	z = zygote_describe();
	v[0] = json_string_value(json_object_get(z, "state"));
	if (v[0] == NULL)
		v[0] = "off";
	metrics_add(M_ZYGOTE, v, 1);
	json_decref(z);
	metrics_add(M_UP, NULL, metrics_started);
}

/* Rendering. */

/* The text as it grows: appended in place, not copied whole per line. */
struct metrics_text {
	char	*buf;
	size_t	 len, size;
};

static void
metrics_put(struct metrics_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
metrics_put(struct metrics_text *t, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("%s: vsnprintf", __func__);
	if ((size_t)n >= t->size - t->len) {
		while ((size_t)n >= t->size - t->len)
			t->size *= 2;
		t->buf = xrealloc(t->buf, t->size);
		va_start(ap, fmt);
		vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
		va_end(ap);
	}
	t->len += n;
}

static void
metrics_put_value(struct metrics_text *buf, const char *name,
    const char *suffix, const char *labels, const char *extra, double v)
{
	int	braces = *labels != '\0' || *extra != '\0';

	metrics_put(buf, "%s%s%s%s%s%s%s %.17g\n", name, suffix,
	    braces ? "{" : "", labels, *labels && *extra ? "," : "", extra,
	    braces ? "}" : "", v);
}

static void
metrics_put_histogram(struct metrics_text *buf,
    const struct metrics_family *f, struct metrics_series *s)
{
	const double	*b;
	size_t		 i, n;
	char		 le[48];

	b = metrics_buckets(f->id, &n);
	for (i = 0; i < n; i++) {
		snprintf(le, sizeof le, "le=\"%g\"", b[i]);
		metrics_put_value(buf, f->name, "_bucket", s->labels, le,
		    s->buckets[i]);
	}
	metrics_put_value(buf, f->name, "_bucket", s->labels, "le=\"+Inf\"",
	    s->count);
	metrics_put_value(buf, f->name, "_sum", s->labels, "", s->value);
	metrics_put_value(buf, f->name, "_count", s->labels, "", s->count);
}

static const char *
metrics_type_name(enum metrics_type t)
{
	return (t == M_COUNTER ? "counter" : t == M_GAUGE ? "gauge" :
	    "histogram");
}

/*
 * The whole registry in the Prometheus text format (version 0.0.4:
 * serve it as "text/plain; version=0.0.4"). with_owners 0 leaves out the
 * by-owner series, for a caller who may not learn other users' uids.
 * Returns a new string; the caller frees it. Call it from the loop's
 * thread only (it reads the session table).
 */
char *
metrics_render(int with_owners)
{
	const struct metrics_family	*f;
	struct metrics_store		*st;
	struct metrics_text		 t = { xmalloc(4096), 0, 4096 };
	size_t				 i, j;

	t.buf[0] = '\0';
	metrics_sample(with_owners);
	for (i = 0; i < nitems(metrics_table); i++) {
		f = &metrics_table[i];
		st = &metrics_store[f->id];
		if (f->id == M_SESSIONS_OWNER && !with_owners)
			continue;
		metrics_put(&t, "# HELP %s %s\n# TYPE %s %s\n", f->name,
		    f->help, f->name, metrics_type_name(f->type));
		if (st->n == 0 && *f->labels == '\0' && f->type != M_HISTOGRAM)
			metrics_put_value(&t, f->name, "", "", "", 0);
		for (j = 0; j < st->n; j++) {
			if (f->type == M_HISTOGRAM)
				metrics_put_histogram(&t, f, &st->s[j]);
			else
				metrics_put_value(&t, f->name, "",
				    st->s[j].labels, "", st->s[j].value);
		}
	}
	return (t.buf);
}

/*
 * The control command `stats`: the text, and the same as JSON (family ->
 * list of {labels, value}) for `cellblock stats --json`. Root sees the
 * by-owner series; others do not.
 */
json_t *
metrics_query(uid_t uid, json_t *req)
{
	const struct metrics_family	*f;
	struct metrics_store		*st;
	char				*text;
	json_t				*fam, *all = json_object(), *row;
	size_t				 i, j;

	(void)req;
	text = metrics_render(uid == 0 || uid == server_uid);
	for (i = 0; i < nitems(metrics_table); i++) {
		f = &metrics_table[i];
		st = &metrics_store[f->id];
		if (f->id == M_SESSIONS_OWNER && !(uid == 0 ||
		    uid == server_uid))
			continue;
		fam = json_array();
		for (j = 0; j < st->n; j++) {
			row = json_pack("{s:s,s:f}", "labels", st->s[j].labels,
			    "value", st->s[j].value);
			if (f->type == M_HISTOGRAM)
				json_object_set_new(row, "count",
				    json_integer(st->s[j].count));
			json_array_append_new(fam, row);
		}
		json_object_set_new(all, f->name, fam);
	}
	row = json_pack("{s:b,s:s,s:o}", "ok", 1, "text", text, "metrics",
	    all);
	free(text);
	return (row);
}
