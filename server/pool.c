/* pool.c: the warm pool: interpreters contained in advance, waiting unnamed. */
/*
 * `new` with the default sandbox (docs/ZYGOTE.md, "The warm pool") takes
 * one of cfg.warm_pool interpreters that are already forked from the
 * zygote, contained (own uid, namespaces, cgroup) and past their hello,
 * instead of starting one. A member is a session that is not listed
 * (sessions/session.c): nothing that lists or counts sessions sees it,
 * the reaper finds it by pid. This file makes members, keeps the count
 * up from the loop (a timer, never inside a request), replaces one that
 * dies, and hands one to the factory, which names it.
 *
 * Legend of a member's life:
 *	pool_make	work dir, uid, cgroup, endpoint and its file, the
 *			record's file, kernel_start (zygote)
 *	HOOK_HELLO	ready: pool_take may hand it out
 *	pool_take	the factory names it (factory_new_session)
 *	HOOK_LOST	died unclaimed: cleaned, and the pool refilled
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"

#define POOL_MAX		64	/* members, whatever the config says */
#define POOL_REFILL_DELAY	100	/* ms after a claim before the next
					   member: the claimer's first request
					   goes first */
#define POOL_RETRY		500	/* ms while the zygote is not ready */
#define POOL_BACKOFF_MAX	60000	/* ms, members dying before hello */

static struct session	*pool_members[POOL_MAX];
static size_t		 pool_n;
static size_t		 pool_want;
static int		 pool_on;
static int		 pool_backoff = POOL_RETRY;
static struct loop_timer *pool_timer;
static uint64_t		 pool_made, pool_claimed, pool_lost_count;

static void	pool_fill(void *);

static void
pool_schedule(int ms)
{
	if (!pool_on || pool_timer != NULL || pool_n >= pool_want)
		return;
	pool_timer = loop_timer_add(ms, pool_fill, NULL);
}

/*
 * Members stay in the order they were made, so pool_take hands out the
 * oldest ready one: the likeliest to be done with its warm-up.
 */
static void
pool_forget(struct session *s)
{
	size_t	i;

	for (i = 0; i < pool_n; i++) {
		if (pool_members[i] == s) {
			memmove(&pool_members[i], &pool_members[i + 1],
			    (pool_n - i - 1) * sizeof *pool_members);
			pool_n--;
			return;
		}
	}
}

/*
 * Everything a member holds, once its process is gone (or never was):
 * what a session's end releases (HOOK_ENDED: its cgroup, uid and work dir
 * by the factory, its timer by lifecycle.c), by the same handlers.
 */
static void
pool_discard(struct session *s)
{
	pool_forget(s);
	hook_run(HOOK_ENDED, s, "warm pool member discarded");
	/* Its own endpoint subscribed to it (pool_endpoint). */
	transport_subs_free(s);
	session_destroy(&s);
}

/* A fresh directory owned by the member's host uid. */
static int
pool_mkdir(const char *path, uid_t owner, char **cause)
{
	if (mkdir(path, 0700) != 0 || chown(path, owner, (gid_t)-1) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	return (0);
}

/*
 * What `new` would otherwise make inside the claimer's request, made now
 * between requests: the default endpoint (five bound ports, a key) and
 * its connection file under the member's name, which the claim renames
 * (factory.c). Only for tcp: an ipc endpoint's paths carry the session's
 * name.
 */
static int
pool_endpoint(struct session *s, char **cause)
{
	struct conninfo	 ci;
	char		*path;
	int		 r;

	if (strcmp(cfg.transport, "tcp") != 0)
		return (0);
	endpoint_default_ci(&ci, s->name);
	if ((s->endpoint = endpoint_new(s, &ci, cause)) == NULL)
		return (-1);
	xasprintf(&path, "%s/sessions/%s.json", server_state_dir, s->name);
	r = endpoint_write_file(s->endpoint, path, (uid_t)-1, cause);
	free(path);
	return (r);
}

/* One member: contained with the defaults, starting from the zygote. */
static int
pool_make(char **cause)
{
	struct session	*s;
	char		 tag[SESSION_NAME_MAX + 1], *workdir;
	uint32_t	 rnd;

	randombytes_buf(&rnd, sizeof rnd);
	snprintf(tag, sizeof tag, "cbpool-%08x", rnd);
	xasprintf(&workdir, "%s/work/%s", server_state_dir, tag);
	s = session_create_unlisted(tag, workdir);
	free(workdir);
	s->pooled = 1;
	s->limits = cfg.limits;
	/* An unclaimed member never hibernates: it has nothing to keep. */
	s->limits.idle_timeout = 0;
	if (contain_prepare(s, cause) != 0) {
		session_destroy(&s);
		return (-1);
	}
	if (pool_mkdir(s->workdir, s->host_uid, cause) != 0 ||
	    pool_endpoint(s, cause) != 0 || kernel_start(s, cause) != 0) {
		pool_discard(s);
		return (-1);
	}
	record_prepare(s);
	pool_members[pool_n++] = s;
	pool_made++;
	return (0);
}

/* The timer: one member per run, so the loop is never held for long. */
static void
pool_fill(void *arg)
{
	char	*cause;

	(void)arg;
	pool_timer = NULL;
	if (!pool_on || pool_n >= pool_want)
		return;
	if (!zygote_ready()) {
		pool_schedule(POOL_RETRY);
		return;
	}
	if (pool_make(&cause) != 0) {
		log_warn("warm pool: %s", cause);
		free(cause);
		pool_schedule(pool_backoff);
		pool_backoff = pool_backoff * 2 > POOL_BACKOFF_MAX ?
		    POOL_BACKOFF_MAX : pool_backoff * 2;
		return;
	}
	pool_schedule(0);
}

/*
 * HOOK_HELLO: a member is ready to be claimed. It is told to warm up (the
 * runner's "warm": a silent `pass`, so the pages an execute writes are
 * copied from the zygote's now, not on the claimer's first request); a
 * claim that comes first waits behind it on the channel. A runner that
 * cannot warm is still a member: the warm-up only saves time.
 */
static int
pool_hello(struct session *s, const void *arg)
{
	json_t	*m;
	char	*cause;

	(void)arg;
	if (!s->pooled)
		return (0);
	pool_backoff = POOL_RETRY;
	log_debug("%s: warm pool member ready (pid %ld, uid %lu)", s->name,
	    (long)s->pid, (u_long)s->host_uid);
	m = json_pack("{s:s}", "op", "warm");
	if (incarnation_send(s, m, &cause) != 0) {
		log_warn("%s: warm pool member not warmed: %s", s->name,
		    cause);
		free(cause);
	}
	json_decref(m);
	return (0);
}

/* HOOK_LOST: an unclaimed member died; the core leaves it to us. */
static int
pool_lost(struct session *s, const void *arg)
{
	const struct hook_lost	*lost = arg;
	int			 early = lost->before_hello && !s->stopping;

	if (!s->pooled)
		return (0);
	if (!s->stopping)
		log_warn("%s: warm pool member lost: %s: %s", s->name,
		    lost->ename, lost->evalue);
	pool_lost_count++;
	pool_discard(s);
	pool_schedule(early ? pool_backoff : 0);
	if (early)
		pool_backoff = pool_backoff * 2 > POOL_BACKOFF_MAX ?
		    POOL_BACKOFF_MAX : pool_backoff * 2;
	return (0);
}

/*
 * Can a member made with the defaults serve these limits? The mounts
 * (tmp), the rlimits (nofile, fsize), the BLAS thread count (cpus,
 * rounded up) and egress (allow_net) were fixed when it started; memory, pids and the CPU quota
 * are cgroup files that can still be written (memory only downwards:
 * v1 refuses a limit above memory+swap, which is written second).
 */
static int
pool_fits(const struct session *m, const struct session_limits *l)
{
	/* Egress binds its socket at start, by exec (server/egress.c). */
	if (strcmp(l->allow_net, m->limits.allow_net) != 0)
		return (0);
	return (l->tmp == m->limits.tmp && l->nofile == m->limits.nofile &&
	    l->fsize == m->limits.fsize && l->memory <= m->limits.memory &&
	    (l->cpu_millis + 999) / 1000 == (m->limits.cpu_millis + 999) /
	    1000);
}

/* A member that cannot be handed out goes; its cleanup is pool_lost's. */
static void
pool_drop(struct session *s, const char *why)
{
	log_warn("%s: warm pool member dropped: %s", s->name, why);
	pool_forget(s);
	s->stopping = 1;
	kill(s->pid, SIGKILL);
}

/*
 * A ready member for a session called name, with the session's limits
 * and hostname already applied and the runner told its name; NULL when
 * there is none that fits (the caller starts one as before). The member
 * is out of the pool but still unlisted: the factory lists it.
 */
struct session *
pool_take(const char *name, const struct session_limits *l)
{
	struct session	*s = NULL;
	json_t		*m;
	size_t		 i;
	char		*cause;

	for (i = 0; i < pool_n; i++) {
		s = pool_members[i];
		if (s->hello != NULL && s->pid > 0 && !s->stopping &&
		    pool_fits(s, l))
			break;
		s = NULL;
	}
	if (s == NULL)
		return (NULL);
	if ((l->memory != s->limits.memory || l->pids != s->limits.pids ||
	    l->cpu_millis != s->limits.cpu_millis) &&
	    contain_set_limits(s, l, &cause) != 0) {
		pool_drop(s, cause);
		free(cause);
		return (NULL);
	}
	if (contain_set_hostname(s, name, &cause) != 0) {
		pool_drop(s, cause);
		free(cause);
		return (NULL);
	}
	/* Written after the claimer's reply: incarnation_send_later says why. */
	m = json_pack("{s:s,s:s}", "op", "claim", "session", name);
	if (incarnation_send_later(s, m, &cause) != 0) {
		json_decref(m);
		pool_drop(s, cause);
		free(cause);
		return (NULL);
	}
	json_decref(m);
	pool_forget(s);
	s->pooled = 0;
	s->limits = *l;
	s->born = SPAWN_POOL;
	pool_claimed++;
	pool_schedule(POOL_REFILL_DELAY);
	return (s);
}

/* For ping: the pool's size and counters; for root, each member too. */
json_t *
pool_describe(int members)
{
	struct session	*s;
	json_t		*list = json_array();
	size_t		 i, ready = 0;

	for (i = 0; i < pool_n; i++) {
		s = pool_members[i];
		ready += s->hello != NULL;
		if (members)
			json_array_append_new(list, json_pack(
			    "{s:s,s:I,s:i,s:b,s:s,s:s?}", "cgroup", s->cgroup,
			    "pid", (json_int_t)s->pid, "uid", (int)s->host_uid,
			    "ready", s->hello != NULL, "workdir", s->workdir,
			    "connection_file", s->endpoint != NULL ?
			    s->endpoint->path : NULL));
	}
	return (json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "on", pool_on,
	    "size", (json_int_t)pool_want, "members", (json_int_t)pool_n,
	    "ready", (json_int_t)ready, "made", (json_int_t)pool_made,
	    "claimed", (json_int_t)pool_claimed, "lost",
	    (json_int_t)pool_lost_count, "list", list));
}

void
pool_init(void)
{
	hook_add(HOOK_HELLO, pool_hello);
	hook_add(HOOK_LOST, pool_lost);
}

/* Once the sessions of before a restart are back (their work dirs kept). */
void
pool_start(void)
{
	pool_want = cfg.warm_pool > POOL_MAX ? POOL_MAX : cfg.warm_pool;
	if (pool_want == 0)
		return;
	if (!cfg.zygote || !contain_enabled()) {
		log_info("warm pool off: it needs the zygote (and the "
		    "namespaces it forks into)");
		return;
	}
	pool_on = 1;
	log_info("warm pool: %zu members", pool_want);
	pool_schedule(0);
}

/* Daemon exit, before the sessions: every member killed and cleaned. */
void
pool_stop(void)
{
	struct session	*s;
	int		 i, status;
	pid_t		 pid;

	pool_on = 0;
	loop_timer_cancel(&pool_timer);
	for (i = 0; i < (int)pool_n; i++) {
		if (pool_members[i]->pid > 0)
			kill(pool_members[i]->pid, SIGKILL);
	}
	for (i = 0; pool_n > 0 && i < 100; i++) {
		s = pool_members[pool_n - 1];
		if (s->pid <= 0) {
			pool_discard(s);
			continue;
		}
		pid = waitpid(s->pid, &status, 0);
		if (pid == s->pid || (pid == -1 && errno == ECHILD)) {
			loop_io_remove(&s->chan_io);
			loop_io_remove(&s->err_io);
			spawn_close(s);
			session_set_pid(s, -1);
		}
	}
}
