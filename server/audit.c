/* audit.c: who ran what, when, under which limits: one JSON line per event. */
/*
 * STATE_DIR/audit/audit.log, owner-only (0700 directory, 0600 files),
 * rotated to audit.log.1 .. audit.log.N past audit-max-size bytes. Each
 * line is an object with at least time, event, session and owner; every
 * string in it that came from a session or a client is redacted
 * (server/redact.c) before it is written. It hears the
 * core through its hooks (server/hook.c, audit_hooks below): a request
 * starts running, each output message published, each reply, each
 * lifecycle event, each egress connection. The fields of each event are
 * listed in docs/OPERATIONS.md; `cellblock audit` reads the log back
 * through the control socket (audit_query), each user their own events.
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"
#include "cgroup.h"

#define AUDIT_OUTPUT_MAX	(64 * 1024)	/* bytes of each stream kept */
#define AUDIT_QUERY_MAX		1000		/* events one query returns */
#define AUDIT_REPLY_MAX		(900 * 1024)	/* under the CLI's 1 MB line */
#define AUDIT_LINE_MAX		(1024 * 1024)	/* longer lines are skipped */

/* The execute running in one session, while it runs. */
struct audit_run {
	char		*msg_id;	/* the client's: any length */
	struct timespec	 start;
	uint64_t	 out_bytes[3];	/* stdout, stderr, everything else */
	char		*text[2];	/* stdout, stderr, if audit-output */
	size_t		 tlen[2];
	int		 cut[2];	/* at AUDIT_OUTPUT_MAX: kept no more */
};

static int	 audit_fd = -1;
static char	*audit_dir;
static char	*audit_path;
static off_t	 audit_size;
static zhashx_t	*audit_runs;		/* session name -> struct audit_run */
static zhashx_t	*audit_rts;		/* session name -> struct audit_rt */
static char	 audit_policy[65];	/* sha256 of the seccomp policy */

static int	audit_exec_start(struct session *, const void *);
static int	audit_output(struct session *, const void *);
static int	audit_exec_reply(struct session *, const void *);
static int	audit_lifecycle(struct session *, const void *);
static int	audit_egress(struct session *, const void *);

/* Legend: the hook, and the handler that writes its events. */
static const struct {
	enum hook_event	 ev;
	hook_fn		*fn;
} audit_hooks[] = {
	{ HOOK_RUN, audit_exec_start },
	{ HOOK_OUTPUT, audit_output },
	{ HOOK_REPLY, audit_exec_reply },
	{ HOOK_LIFECYCLE, audit_lifecycle },
	{ HOOK_EGRESS, audit_egress },
};

/*
 * The client kinds a request may name in metadata.cellblock_client: the
 * CLI's own client sets "cli", the HTTP fronts set theirs; anything else
 * (or nothing) is a plain ZeroMQ client.
 */
static const char *audit_kinds[] = { "zmq", "cli", "gateway", "rest", "mcp" };

/*
 * A session's "runtime" object as its execute events write it: redacted
 * and serialised once per incarnation instead of copied, redacted and
 * dumped for every execute (a third of an audit line). Kept while what it
 * was made from is equal: the hello's runtime and version, and how the
 * interpreter was born.
 */
struct audit_rt {
	json_t		*from;		/* [runtime, implementation_version] */
	json_t		*hello;		/* the hello it was last checked for */
	int		 born;
	char		*text;		/* ,"runtime":{...} */
};

static void
audit_rt_free(void **item)
{
	struct audit_rt	*rt = *item;

	if (rt != NULL) {
		json_decref(rt->from);
		json_decref(rt->hello);
		free(rt->text);
		free(rt);
	}
	*item = NULL;
}

static void
audit_run_free(void **item)
{
	struct audit_run	*r = *item;

	if (r != NULL) {
		free(r->msg_id);
		free(r->text[0]);
		free(r->text[1]);
		free(r);
		*item = NULL;
	}
}

/* sha256 of what `cellblock-shim --print-policy` prints: the policy's id. */
static void
audit_policy_digest(void)
{
	crypto_hash_sha256_state	 st;
	u_char				 h[32];
	char				*argv[] = { server_shim_path,
					    "--print-policy", NULL };
	char				 buf[8192];
	posix_spawn_file_actions_t	 fa;
	int				 p[2], status;
	pid_t				 pid;
	ssize_t				 n;

	snprintf(audit_policy, sizeof audit_policy, "unknown");
	if (server_shim_path == NULL || pipe2(p, O_CLOEXEC) != 0)
		return;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	if (posix_spawn(&pid, server_shim_path, &fa, NULL, argv,
	    environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	crypto_hash_sha256_init(&st);
	while ((n = read(p[0], buf, sizeof buf)) > 0)
		crypto_hash_sha256_update(&st, (u_char *)buf, n);
	close(p[0]);
	crypto_hash_sha256_final(&st, h);
	if (pid == -1 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return;
	sodium_bin2hex(audit_policy, sizeof audit_policy, h, sizeof h);
}

static int
audit_open_file(char **cause)
{
	struct stat	sb;

	audit_fd = open(audit_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (audit_fd == -1 || fstat(audit_fd, &sb) != 0) {
		xasprintf(cause, "%s: %s", audit_path, strerror(errno));
		return (-1);
	}
	if (fchmod(audit_fd, 0600) != 0)
		log_warn("chmod %s: %s", audit_path, strerror(errno));
	audit_size = sb.st_size;
	return (0);
}

/*
 * Before the loop starts and before any thread (the digest forks). The
 * hooks go in even with the log off: a failed execute is still logged.
 */
int
audit_open(char **cause)
{
	size_t	i;

	for (i = 0; i < nitems(audit_hooks); i++)
		hook_add(audit_hooks[i].ev, audit_hooks[i].fn);
	if (!cfg.audit)
		return (0);
	audit_runs = zhashx_new();
	zhashx_set_destructor(audit_runs, audit_run_free);
	audit_rts = zhashx_new();
	zhashx_set_destructor(audit_rts, audit_rt_free);
	xasprintf(&audit_dir, "%s/audit", server_state_dir);
	xasprintf(&audit_path, "%s/audit.log", audit_dir);
	if (mkdir(audit_dir, 0700) != 0 && errno != EEXIST) {
		xasprintf(cause, "mkdir %s: %s", audit_dir, strerror(errno));
		return (-1);
	}
	if (chmod(audit_dir, 0700) != 0) {
		xasprintf(cause, "chmod %s: %s", audit_dir, strerror(errno));
		return (-1);
	}
	audit_policy_digest();
	return (audit_open_file(cause));
}

void
audit_close(void)
{
	if (audit_fd != -1)
		close(audit_fd);
	audit_fd = -1;
	zhashx_destroy(&audit_runs);
	zhashx_destroy(&audit_rts);
	free(audit_dir);
	free(audit_path);
	audit_dir = audit_path = NULL;
}

/* audit.log -> .1 -> .2 ...; the oldest past audit-keep goes. */
static void
audit_rotate(void)
{
	char	*from, *to;
	size_t	 i;
	char	*cause;

	close(audit_fd);
	audit_fd = -1;
	for (i = cfg.audit_keep; i > 0; i--) {
		if (i == 1)
			from = xstrdup(audit_path);
		else
			xasprintf(&from, "%s.%zu", audit_path, i - 1);
		xasprintf(&to, "%s.%zu", audit_path, i);
		if (rename(from, to) != 0 && errno != ENOENT)
			log_warn("rename %s: %s", from, strerror(errno));
		free(from);
		free(to);
	}
	if (cfg.audit_keep == 0 && unlink(audit_path) != 0)
		log_warn("unlink %s: %s", audit_path, strerror(errno));
	if (audit_open_file(&cause) != 0) {
		log_error("audit log: %s", cause);
		free(cause);
	}
}

/*
 * An audit line is written straight into a buffer (protocol/jwrite.c),
 * not built as a jansson object and dumped: that was a quarter of the
 * daemon's work per execute (docs/BENCHMARKS.md). The text is what
 * json_dumps(JSON_COMPACT | JSON_ENSURE_ASCII) wrote for the same members,
 * except reals the daemon measures itself (wall_ms, cpu_ms, limits.cpus),
 * written as the decimal they are (1.5, 0.123) instead of %.17g: the same
 * doubles when read back. Every string value is redacted (server/redact.c)
 * as the text it is, before escaping, so a rule sees real newlines; keys
 * are not (as before).
 */
#define AUDIT_JWRITE	(JWRITE_ASCII | JWRITE_REPLACE)

/* 2026-12-03T17:20:01.234Z; the calendar part made once a second. */
static size_t
audit_time(char *buf)
{
	static time_t	day_sec = -1;
	static char	day[32];
	static size_t	day_len;
	struct timespec	ts;
	struct tm	tm;
	int		ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != day_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		day_len = strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
		day_sec = ts.tv_sec;
	}
	ms = ts.tv_nsec / 1000000;
	memcpy(buf, day, day_len);
	buf[day_len] = '.';
	buf[day_len + 1] = '0' + ms / 100;
	buf[day_len + 2] = '0' + ms / 10 % 10;
	buf[day_len + 3] = '0' + ms % 10;
	buf[day_len + 4] = 'Z';
	buf[day_len + 5] = '\0';
	return (day_len + 5);
}

/* {"time":...,"event":...[,"session":...,"owner":...]: the line's start. */
static void
audit_begin(struct jwrite *l, const char *event, struct session *s)
{
	char	when[48];

	jwrite_init(l, AUDIT_JWRITE, redact_changed);
	jwrite_put(l, "{", 1);
	audit_time(when);
	jwrite_key(l, "time", 4);
	jwrite_own(l, when);
	jwrite_key(l, "event", 5);
	jwrite_own(l, event);
	if (s != NULL) {
		jwrite_key(l, "session", 7);
		jwrite_string(l, s->name, strlen(s->name));
		jwrite_key(l, "owner", 5);
		jwrite_int(l, s->owner);
	}
}

/* tail (",\"k\":v", already redacted), then "}\n" out; frees the line. */
static void
audit_end(struct jwrite *l, const char *tail)
{
	if (tail != NULL)
		jwrite_put(l, tail, strlen(tail));
	l->buf[l->len++] = '}';		/* jwrite_put kept room for both */
	l->buf[l->len++] = '\n';
	if (write(audit_fd, l->buf, l->len) != (ssize_t)l->len)
		log_warn("audit log: %s", strerror(errno));
	else
		audit_size += l->len;
	jwrite_free(l);
	if (cfg.audit_max_size > 0 && (size_t)audit_size >= cfg.audit_max_size)
		audit_rotate();
}

/*
 * Writes one event; takes ownership of o: time and event go first, then
 * session and owner when there is a session, then o's members (one of the
 * same name replaces the first's value in its place). The execute event,
 * one per execute, is written member by member instead (audit_exec_line).
 */
static void
audit_write(const char *event, struct session *s, json_t *o)
{
	struct jwrite	 l;
	json_t		*line;
	char		 when[48];

	if (audit_fd == -1) {
		json_decref(o);
		return;
	}
	audit_time(when);
	line = json_pack("{s:s,s:s}", "time", when, "event", event);
	if (s != NULL) {
		json_object_set_new(line, "session", json_string(s->name));
		json_object_set_new(line, "owner", json_integer(s->owner));
	}
	json_object_update(line, o);
	json_decref(o);
	jwrite_init(&l, AUDIT_JWRITE, redact_changed);
	jwrite_json(&l, line);
	json_decref(line);
	l.len--;		/* audit_end closes it */
	audit_end(&l, NULL);
}

static json_t *
audit_limits(const struct session_limits *l)
{
	return (json_pack("{s:I,s:f,s:I,s:I,s:I,s:I,s:I}", "memory",
	    (json_int_t)l->memory, "cpus", l->cpu_millis / 1000.0, "pids",
	    (json_int_t)l->pids, "tmp", (json_int_t)l->tmp, "exec_timeout",
	    (json_int_t)l->exec_timeout, "nofile", (json_int_t)l->nofile,
	    "fsize", (json_int_t)l->fsize));
}

/*
 * ,"runtime":{...} for s's execute events, as audit_write would have
 * written audit_runtime's object, remade only when anything it is made of
 * has changed (checked once per hello).
 */
static json_t	*audit_runtime(struct session *);

static const char *
audit_runtime_text(struct session *s)
{
	struct audit_rt		*rt = zhashx_lookup(audit_rts, s->name);
	struct jwrite		 l;
	json_t			*from, *o;

	/* The same hello (held, so not another at its address): unchanged. */
	if (rt != NULL && rt->hello == s->hello && rt->born == (int)s->born)
		return (rt->text);
	from = json_pack("[O?,O?,s,s,s]", json_object_get(s->hello, "runtime"),
	    json_object_get(s->hello, "implementation_version"), audit_policy,
	    cfg.rootfs, contain_enabled() ? contain_describe() : "off");
	if (rt != NULL && rt->born == (int)s->born && json_equal(rt->from,
	    from)) {
		json_decref(from);
		json_decref(rt->hello);
		rt->hello = json_incref(s->hello);
		return (rt->text);
	}
	o = audit_runtime(s);
	jwrite_init(&l, AUDIT_JWRITE, redact_changed);
	jwrite_put(&l, ",\"runtime\":", 11);
	jwrite_json(&l, o);
	json_decref(o);
	rt = xcalloc(1, sizeof *rt);
	rt->from = from;
	rt->hello = json_incref(s->hello);
	rt->born = s->born;
	rt->text = jwrite_take(&l, NULL);
	zhashx_update(audit_rts, s->name, rt);
	return (rt->text);
}

/* What ran it: the runner's hello (Python, preloaded packages), policy, root. */
static json_t *
audit_runtime(struct session *s)
{
	json_t	*rt = json_object_get(s->hello, "runtime");
	json_t	*o;

	o = json_is_object(rt) ? json_deep_copy(rt) : json_object();
	json_object_set_new(o, "runner", json_copy(json_object_get(s->hello,
	    "implementation_version")));
	json_object_set_new(o, "born", json_string(spawn_born_name(s->born)));
	json_object_set_new(o, "policy_sha256", json_string(audit_policy));
	json_object_set_new(o, "root", json_string(cfg.rootfs[0] != '\0' ?
	    cfg.rootfs : "/"));
	json_object_set_new(o, "sandbox", json_string(contain_enabled() ?
	    contain_describe() : "off"));
	return (o);
}

static const char *
audit_kind(const struct jmsg *jm)
{
	const char	*k;
	size_t		 i;

	k = json_string_value(json_object_get(jm->metadata,
	    "cellblock_client"));
	for (i = 0; k != NULL && i < nitems(audit_kinds); i++) {
		if (strcmp(k, audit_kinds[i]) == 0)
			return (audit_kinds[i]);
	}
	return ("zmq");
}

/* HOOK_RUN: a request starts running in s (the core's pump). */
static int
audit_exec_start(struct session *s, const void *arg)
{
	const struct jmsg	*jm = arg;
	struct audit_run	*r;

	if (audit_runs == NULL || strcmp(jm->msg_type, "execute_request") != 0)
		return (0);
	r = xcalloc(1, sizeof *r);
	r->msg_id = xstrdup(jm->msg_id);
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	zhashx_update(audit_runs, s->name, r);
	return (0);
}

static void
audit_keep_text(struct audit_run *r, int which, const char *text)
{
	size_t	n = strlen(text);

	if (r->cut[which])
		return;
	if (n > AUDIT_OUTPUT_MAX - r->tlen[which]) {
		n = AUDIT_OUTPUT_MAX - r->tlen[which];
		/* Not inside a character: JSON has no half of one. */
		while (n > 0 && ((u_char)text[n] & 0xc0) == 0x80)
			n--;
		r->cut[which] = 1;
	}
	r->text[which] = xrealloc(r->text[which], r->tlen[which] + n + 1);
	memcpy(r->text[which] + r->tlen[which], text, n);
	r->tlen[which] += n;
	r->text[which][r->tlen[which]] = '\0';
}

/* HOOK_OUTPUT: a message the core published for s's running request. */
static int
audit_output(struct session *s, const void *arg)
{
	const struct hook_output *out = arg;
	const char		*type = out->type, *name, *text;
	json_t			*content = out->content;
	struct audit_run	*r;
	int			 which;

	if (audit_runs == NULL ||
	    (r = zhashx_lookup(audit_runs, s->name)) == NULL)
		return (0);
	if (type == NULL || strcmp(type, "stream") != 0) {
		r->out_bytes[2] += out->size != SIZE_MAX ? out->size :
		    json_dumpb(content, NULL, 0, JSON_COMPACT);
		return (0);
	}
	name = json_string_value(json_object_get(content, "name"));
	text = json_string_value(json_object_get(content, "text"));
	if (text == NULL)
		return (0);
	which = name != NULL && strcmp(name, "stderr") == 0;
	r->out_bytes[which] += strlen(text);
	if (cfg.audit_output)
		audit_keep_text(r, which, text);
	return (0);
}

/* cpu: the CPU it used, in usec, as the contract meter read it. */
static void
audit_exec_metrics(struct jwrite *l, struct session *s,
    struct audit_run *r, uint64_t cpu)
{
	struct timespec	 now;
	uint64_t	 mem;

	if (r == NULL) {
		jwrite_key(l, "ran", 3);
		jwrite_literal(l, "false");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	jwrite_key(l, "wall_ms", 7);	/* to the microsecond */
	jwrite_milli(l, (now.tv_sec - r->start.tv_sec) * 1000000 +
	    (now.tv_nsec - r->start.tv_nsec) / 1000);
	contain_stats(s, &mem, NULL);
	if (cpu != CGROUP_UNKNOWN) {
		jwrite_key(l, "cpu_ms", 6);
		jwrite_milli(l, cpu);
	}
	if (mem != CGROUP_UNKNOWN) {
		jwrite_key(l, "memory_bytes", 12);
		jwrite_int(l, mem);
	}
	jwrite_key(l, "stdout_bytes", 12);
	jwrite_int(l, r->out_bytes[0]);
	jwrite_key(l, "stderr_bytes", 12);
	jwrite_int(l, r->out_bytes[1]);
	jwrite_key(l, "other_output_bytes", 18);
	jwrite_int(l, r->out_bytes[2]);
	if (cfg.audit_output) {
		jwrite_key(l, "output", 6);
		jwrite_open(l, '{');
		jwrite_key(l, "stdout", 6);
		jwrite_string(l, r->text[0] ? r->text[0] : "", r->tlen[0]);
		jwrite_key(l, "stderr", 6);
		jwrite_string(l, r->text[1] ? r->text[1] : "", r->tlen[1]);
		jwrite_close(l, '}');
	}
}

/* "key":"value" with value redacted. */
static void
audit_member(struct jwrite *l, const char *key, const char *value)
{
	jwrite_key(l, key, strlen(key));
	jwrite_string(l, value, strlen(value));
}

static void
audit_limits_line(struct jwrite *l, const struct session_limits *lim)
{
	jwrite_key(l, "limits", 6);
	jwrite_open(l, '{');
	jwrite_key(l, "memory", 6);
	jwrite_int(l, lim->memory);
	jwrite_key(l, "cpus", 4);
	jwrite_milli(l, lim->cpu_millis);
	jwrite_key(l, "pids", 4);
	jwrite_int(l, lim->pids);
	jwrite_key(l, "tmp", 3);
	jwrite_int(l, lim->tmp);
	jwrite_key(l, "exec_timeout", 12);
	jwrite_int(l, lim->exec_timeout);
	jwrite_key(l, "nofile", 6);
	jwrite_int(l, lim->nofile);
	jwrite_key(l, "fsize", 5);
	jwrite_int(l, lim->fsize);
	jwrite_close(l, '}');
}

/*
 * The execute event, member by member in the order docs/OPERATIONS.md
 * lists them: r is NULL for a request that never ran.
 */
static void
audit_exec_line(struct session *s, const struct jmsg *jm, json_t *content,
    struct audit_run *r, uint64_t cpu)
{
	struct jwrite	 l;
	const char		*code, *status, *ename;
	json_t			*evalue;
	u_char			 h[32];
	char			 hex[65];

	status = json_string_value(json_object_get(content, "status"));
	ename = json_string_value(json_object_get(content, "ename"));
	if ((code = json_string_value(json_object_get(jm->content,
	    "code"))) == NULL)
		code = "";
	crypto_hash_sha256(h, (const u_char *)code, strlen(code));
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	audit_begin(&l, "execute", s);
	audit_member(&l, "request_id", jm->msg_id);
	jwrite_key(&l, "client", 6);
	jwrite_own(&l, audit_kind(jm));
	audit_member(&l, "username", jm->username);
	audit_member(&l, "client_session", jm->session);
	jwrite_key(&l, "code_sha256", 11);
	jwrite_own(&l, hex);
	jwrite_key(&l, "code_bytes", 10);
	jwrite_int(&l, strlen(code));
	audit_limits_line(&l, &s->limits);
	audit_member(&l, "status", status != NULL ? status : "unknown");
	if (ename != NULL) {
		audit_member(&l, "ename", ename);
		if ((evalue = json_object_get(content, "evalue")) != NULL) {
			jwrite_key(&l, "evalue", 6);
			jwrite_json(&l, evalue);
		}
	}
	audit_exec_metrics(&l, s, r, cpu);
	audit_end(&l, audit_runtime_text(s));
}

/*
 * HOOK_REPLY: the core sends a reply to a request of s. Only execute
 * replies are events; one that never ran (aborted, refused) has "ran":
 * false.
 */
static int
audit_exec_reply(struct session *s, const void *arg)
{
	const struct hook_reply	*rep = arg;
	const struct jmsg	*jm = rep->request;
	const char		*type = rep->type, *ename;
	json_t			*content = rep->content;
	struct audit_run	*r = NULL;

	/* type is NULL for requests with no reply (comm_open, comm_msg). */
	if (type == NULL || strcmp(type, "execute_reply") != 0)
		return (0);
	ename = json_string_value(json_object_get(content, "ename"));
	/* The daemon's log says what failed; redaction (log.c) cleans it. */
	if (ename != NULL)
		log_info("%s: execute %s: %s: %s", s->name, jm->msg_id, ename,
		    json_string_value(json_object_get(content, "evalue")) ?
		    json_string_value(json_object_get(content, "evalue")) : "");
	if (audit_runs == NULL)
		return (0);
	if ((r = zhashx_lookup(audit_runs, s->name)) != NULL &&
	    strcmp(r->msg_id, jm->msg_id) != 0)
		r = NULL;	/* another one runs; this one never did */
	if (audit_fd != -1)
		audit_exec_line(s, jm, content, r, rep->cpu_us);
	if (r != NULL)
		zhashx_delete(audit_runs, s->name);
	return (0);
}

/*
 * HOOK_LIFECYCLE: a lifecycle event of s (create, hibernate, resume,
 * fork, restart, kill, end...), why it happened, and any details.
 */
static int
audit_lifecycle(struct session *s, const void *arg)
{
	const struct hook_lifecycle	*ev = arg;
	json_t				*o = json_object();

	if (strcmp(ev->event, "create") == 0)
		json_object_set_new(o, "limits", audit_limits(&s->limits));
	if (ev->why != NULL)
		json_object_set_new(o, "why", json_string(ev->why));
	if (ev->details != NULL)
		json_object_update(o, ev->details);
	if (strcmp(ev->event, "end") == 0 && audit_runs != NULL) {
		zhashx_delete(audit_runs, s->name);
		zhashx_delete(audit_rts, s->name);
	}
	audit_write(ev->event, s, o);
	return (0);
}

/* A file copied into or out of a session (for the file-transfer API). */
void
audit_transfer(struct session *s, const char *path, uint64_t size,
    const char *direction)
{
	audit_write("transfer", s, json_pack("{s:s,s:I,s:s}", "path", path,
	    "bytes", (json_int_t)size, "direction", direction));
}

/*
 * HOOK_EGRESS: a connection a session's code tried to make, as the egress
 * proxy records it (docs/SECURITY.md): session, owner, destination asked
 * and resolved, verdict and why, bytes each way, ms. The record names its
 * session itself: it may have ended before its last connection closed.
 */
static int
audit_egress(struct session *s, const void *record)
{
	(void)s;
	audit_write("egress", NULL, json_deep_copy(record));
	return (0);
}

/* Reading it back. */

static int
audit_match(json_t *ev, uid_t uid, const char *name, const char *since)
{
	const char	*t = json_string_value(json_object_get(ev, "time"));
	json_t		*owner = json_object_get(ev, "owner");

	if (uid != 0 && (!json_is_integer(owner) ||
	    json_integer_value(owner) != (json_int_t)uid))
		return (0);
	if (name != NULL && (json_string_value(json_object_get(ev,
	    "session")) == NULL || strcmp(json_string_value(
	    json_object_get(ev, "session")), name) != 0))
		return (0);
	/* ISO 8601 UTC times sort as strings; a prefix like 2026-12 works. */
	if (since != NULL && (t == NULL || strcmp(t, since) < 0))
		return (0);
	return (1);
}

/* One file's matching events onto out; the oldest go past the cap. */
static void
audit_read_file(const char *path, json_t *out, uid_t uid, const char *name,
    const char *since)
{
	FILE	*f;
	char	*line = NULL;
	size_t	 size = 0;
	ssize_t	 n;
	json_t	*ev;

	if ((f = fopen(path, "re")) == NULL)
		return;
	while ((n = getline(&line, &size, f)) > 0) {
		if (n > AUDIT_LINE_MAX)
			continue;
		if ((ev = json_loadb(line, n, 0, NULL)) == NULL)
			continue;	/* a torn last line after a crash */
		if (json_is_object(ev) && audit_match(ev, uid, name, since))
			json_array_append(out, ev);
		json_decref(ev);
		if (json_array_size(out) > AUDIT_QUERY_MAX)
			json_array_remove(out, 0);
	}
	free(line);
	fclose(f);
}

/*
 * The control command `audit`: {"name"?, "since"?} -> {"ok", "events"},
 * oldest first, the newest AUDIT_QUERY_MAX. uid 0 sees everything.
 */
json_t *
audit_query(uid_t uid, json_t *req)
{
	json_t		*events, *r;
	const char	*name, *since;
	char		*path;
	size_t		 i, bytes = 0;
	int		 truncated = 0;

	name = json_string_value(json_object_get(req, "name"));
	since = json_string_value(json_object_get(req, "since"));
	if (audit_path == NULL)
		return (json_pack("{s:b,s:s,s:i}", "ok", 0, "error",
		    "the audit log is off (audit = no)", "code", EXIT_FAILED));
	events = json_array();
	for (i = cfg.audit_keep; i > 0; i--) {
		xasprintf(&path, "%s.%zu", audit_path, i);
		audit_read_file(path, events, uid, name, since);
		free(path);
	}
	audit_read_file(audit_path, events, uid, name, since);
	/* The newest that fit one control reply; say when some did not. */
	for (i = json_array_size(events); i > 0; i--) {
		bytes += json_dumpb(json_array_get(events, i - 1), NULL, 0,
		    JSON_COMPACT | JSON_ENSURE_ASCII) + 1;
		if (bytes > AUDIT_REPLY_MAX)
			break;
	}
	for (; i > 0; i--) {
		json_array_remove(events, 0);
		truncated = 1;
	}
	r = json_pack("{s:b,s:o,s:b}", "ok", 1, "events", events, "truncated",
	    truncated || json_array_size(events) == AUDIT_QUERY_MAX);
	return (r);
}
