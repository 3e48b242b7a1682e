/* factory.c: the session factory: quotas, work dirs, endpoints, the end. */
/*
 * Where sessions come from: `new`, `attach`, the shared endpoint naming
 * one, a daemon restart bringing records back (lifecycle.c), a fork. And
 * where what the factory made goes when a session ends (HOOK_ENDED): its
 * endpoint, record, cgroups and work dir.
 */

#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"

/* A tree the session controlled, removed without following a link. */
void
factory_rmtree(const char *path)
{
	char	*cause;

	if (file_remove_tree(path, &cause) != 0) {
		log_warn("%s", cause);
		free(cause);
	}
}

/* A fresh directory only: never adopt one a previous session left. */
static int
factory_mkdir(const char *path, uid_t owner, char **cause)
{
	if (mkdir(path, 0700) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (chown(path, owner, (gid_t)-1) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	return (0);
}

/* Quotas on sessions, overall and per user (sessions brought back count). */
static int
factory_quota(uid_t owner, char **cause)
{
	size_t	mine = session_owner_count(owner);

	if (session_count() >= cfg.max_sessions) {
		xasprintf(cause, "the daemon already holds %zu sessions "
		    "(max-sessions)", session_count());
		return (-1);
	}
	if (mine >= cfg.max_user_sessions) {
		xasprintf(cause, "uid %u already has %zu sessions "
		    "(max-sessions-per-user)", (u_int)owner, mine);
		return (-1);
	}
	return (0);
}

/* Its own endpoint and the connection file that names it. */
static int
factory_endpoint(struct session *s, const struct conninfo *ci, char **cause)
{
	struct endpoint	*ep;
	char		*path;
	int		 r;

	if ((ep = endpoint_new(s, ci, cause)) == NULL)
		return (-1);
	s->endpoint = ep;
	xasprintf(&path, "%s/sessions/%s.json", server_state_dir, s->name);
	r = endpoint_write_file(ep, path, s->owner, cause);
	free(path);
	return (r);
}

/*
 * A member came with the default endpoint and its connection file
 * (pool_make), under the member's name: a session that asked for the
 * default, as `new` does, takes both by a rename. Otherwise (ports or a
 * key of its own, or the shared endpoint only) they go, and it gets what
 * a fresh session would.
 */
static int
factory_pool_endpoint(struct session *s, const struct conninfo *ci,
    char **cause)
{
	struct conninfo	 d;
	char		*path;
	int		 r;

	if (s->endpoint != NULL && ci != NULL) {
		endpoint_default_ci(&d, s->name);
		if (memcmp(&d, ci, sizeof d) == 0) {
			xasprintf(&path, "%s/sessions/%s.json",
			    server_state_dir, s->name);
			r = endpoint_rename_file(s->endpoint, path, s->owner,
			    cause);
			free(path);
			return (r);
		}
	}
	if (s->endpoint != NULL) {
		endpoint_close(s->endpoint);
		s->endpoint = NULL;
	}
	return (ci != NULL ? factory_endpoint(s, ci, cause) : 0);
}

/*
 * A warm-pool member becomes the session (server/pool.c): listed under
 * its name, its work dir renamed as a fresh one would be named (the
 * sandbox has it bound by inode, so it sees no change), its endpoint
 * and files taken over (made with the member, so that nothing here makes
 * a file or binds a port). NULL with *cause NULL: no member fits, start
 * one as before.
 */
static struct session *
factory_from_pool(const char *name, uid_t owner, const struct conninfo *ci,
    const struct session_limits *limits, char **cause)
{
	struct session	*s;
	char		*workdir;
	uint32_t	 rnd;

	*cause = NULL;
	if (!session_name_valid(name) || session_find(name) != NULL ||
	    (s = pool_take(name, limits)) == NULL)
		return (NULL);
	randombytes_buf(&rnd, sizeof rnd);
	xasprintf(&workdir, "%s/work/%s.%08x", server_state_dir, name, rnd);
	if (rename(s->workdir, workdir) != 0) {
		xasprintf(cause, "%s: %s", workdir, strerror(errno));
		free(workdir);
		goto fail;
	}
	free(s->workdir);
	s->workdir = workdir;
	if (session_list(s, name, owner, cause) != 0)
		goto fail;
	if (factory_pool_endpoint(s, ci, cause) != 0) {
		kernel_end(s, "its endpoint could not be made");
		return (NULL);
	}
	record_save(s);
	hook_lifecycle(s, "create", "warm pool", NULL);
	log_info("%s: interpreter pid %ld from the warm pool", s->name,
	    (long)s->pid);
	/* For this session what a hello is for others: its timers start. */
	hook_run(HOOK_HELLO, s, NULL);
	return (s);
fail:
	/* Still unlisted: killed, and cleaned when it is reaped. */
	s->pooled = 1;
	s->stopping = 1;
	kill(s->pid, SIGKILL);
	return (NULL);
}

/*
 * Make a session: work directory (new, or kept from before a restart),
 * optional own endpoint and connection file (ci == NULL: reachable only
 * through the shared endpoint), and, when start is set, its first
 * interpreter at once so the first request is fast.
 */
struct session *
factory_make_session(const char *name, uid_t owner, const struct conninfo *ci,
    const struct session_limits *limits, const char *keep_workdir,
    uid_t host_uid, int start, char **cause)
{
	struct session	*s;
	char		*workdir;
	uint32_t	 rnd;

	if (keep_workdir == NULL && factory_quota(owner, cause) != 0)
		return (NULL);
	/*
	 * A random suffix: a later session of the same name never sees what
	 * an earlier one left, even if its removal failed.
	 */
	randombytes_buf(&rnd, sizeof rnd);
	if (keep_workdir != NULL)
		workdir = xstrdup(keep_workdir);
	else
		xasprintf(&workdir, "%s/work/%s.%08x", server_state_dir, name,
		    rnd);
	s = session_create(name, owner, workdir, cause);
	if (s == NULL) {
		free(workdir);
		return (NULL);
	}
	s->limits = limits != NULL ? *limits : cfg.limits;
	s->host_uid = host_uid;
	if (contain_prepare(s, cause) != 0)
		goto fail;
	/* The interpreter's host uid must own its working directory. */
	if (keep_workdir == NULL &&
	    factory_mkdir(workdir, s->host_uid, cause) != 0)
		goto fail;
	free(workdir);
	workdir = NULL;
	if (ci != NULL && factory_endpoint(s, ci, cause) != 0)
		goto fail;
	if (start && kernel_start(s, cause) != 0)
		goto fail;
	record_save(s);
	hook_lifecycle(s, keep_workdir != NULL ? "recover" : "create", NULL,
	    NULL);
	return (s);
fail:
	free(workdir);
	if (s->endpoint != NULL)
		endpoint_destroy(&s->endpoint);
	transport_subs_free(s);
	contain_release(s);
	session_destroy(&s);
	return (NULL);
}

struct session *
factory_new_session(const char *name, uid_t owner, const struct conninfo *ci,
    const struct session_limits *limits, char **cause)
{
	const struct session_limits *l = limits != NULL ? limits : &cfg.limits;
	struct session	*s;

	if (factory_quota(owner, cause) != 0)
		return (NULL);
	if ((s = factory_from_pool(name, owner, ci, l, cause)) != NULL)
		return (s);
	if (*cause != NULL) {
		log_warn("%s: warm pool: %s; starting one instead", name,
		    *cause);
		free(*cause);
		*cause = NULL;
	}
	return (factory_make_session(name, owner, ci, l, NULL, (uid_t)-1,
	    1, cause));
}

/*
 * Names a session's env may not set: the daemon's own and those the
 * egress relay sets (docs/AGENTS.md). A trailing '*' is a prefix.
 */
static const char *factory_env_refused[] = {
	"CELLBLOCK_*", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
	"http_proxy", "https_proxy", "all_proxy", "no_proxy", "PIP_PROXY",
	"GIT_CONFIG_*",
};

/* Does name match pattern, a name or a NAME* prefix? */
int
factory_env_match(const char *pattern, const char *name)
{
	size_t	len = strlen(pattern);

	if (len > 0 && pattern[len - 1] == '*')
		return (strncmp(pattern, name, len - 1) == 0);
	return (strcmp(pattern, name) == 0);
}

static int
factory_env_name_valid(const char *name)
{
	const char	*p;

	if (!(name[0] == '_' || (name[0] >= 'A' && name[0] <= 'Z') ||
	    (name[0] >= 'a' && name[0] <= 'z')))
		return (0);
	for (p = name + 1; *p != '\0'; p++) {
		if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return (0);
	}
	return (1);
}

/* May a session's env set this name? Valid and not reserved. */
int
factory_env_name_ok(const char *name)
{
	size_t	i;

	if (strlen(name) > 256 || !factory_env_name_valid(name))
		return (0);
	for (i = 0; i < nitems(factory_env_refused); i++) {
		if (factory_env_match(factory_env_refused[i], name))
			return (0);
	}
	return (1);
}

/*
 * A session's environment from outside: an object of string values,
 * bounded, no name the sandbox relies on. A new reference, or NULL with
 * the cause; the cause names the variable, never its value.
 */
json_t *
factory_env_check(json_t *env, char **cause)
{
	const char	*k;
	json_t		*v;
	size_t		 i, total = 0;

	if (!json_is_object(env)) {
		*cause = xstrdup("env must be an object of NAME: value strings");
		return (NULL);
	}
	if (json_object_size(env) > FACTORY_ENV_NAMES) {
		xasprintf(cause, "env: more than %d variables",
		    FACTORY_ENV_NAMES);
		return (NULL);
	}
	json_object_foreach(env, k, v) {
		if (strlen(k) > 256 || !factory_env_name_valid(k)) {
			xasprintf(cause, "env: %.64s: not a valid name "
			    "([A-Za-z_][A-Za-z0-9_]*)", k);
			return (NULL);
		}
		for (i = 0; i < nitems(factory_env_refused); i++) {
			if (factory_env_match(factory_env_refused[i], k)) {
				xasprintf(cause, "env: %s: reserved (set by "
				    "cellblock for the sandbox)", k);
				return (NULL);
			}
		}
		if (!json_is_string(v) ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			xasprintf(cause, "env: %s: the value must be a string "
			    "without NUL", k);
			return (NULL);
		}
		total += strlen(k) + json_string_length(v) + 2;
		if (total > FACTORY_ENV_BYTES) {
			xasprintf(cause, "env: more than %d bytes in all",
			    FACTORY_ENV_BYTES);
			return (NULL);
		}
	}
	return (json_deep_copy(env));
}

/* The names only: values may be secrets (ls, the gateway's model). */
json_t *
factory_env_names(struct session *s)
{
	json_t		*names = json_array(), *v;
	const char	*k;

	json_object_foreach(s->env, k, v)
		json_array_append_new(names, json_string(k));
	return (names);
}

/*
 * A new session with read-only mounts (files_mount_check made them) and
 * environment (factory_env_check's): set before its first interpreter
 * starts, and recorded so that every later one, after a resume too, has
 * them. Takes references to mounts and env. Without mounts it may come
 * from the warm pool: its hello came before the session, so the env goes
 * now (kernel_send_kernel_args).
 */
struct session *
factory_new_session_with(const char *name, uid_t owner,
    const struct conninfo *ci, const struct session_limits *limits,
    json_t *mounts, json_t *env, char **cause)
{
	struct session	*s;

	if (json_array_size(mounts) == 0) {
		if ((s = factory_new_session(name, owner, ci, limits,
		    cause)) == NULL)
			return (NULL);
		if (json_object_size(env) != 0) {
			s->env = json_incref(env);
			record_save(s);
			if (s->hello != NULL)
				kernel_send_kernel_args(s);
		}
		return (s);
	}
	s = factory_make_session(name, owner, ci, limits, NULL, (uid_t)-1, 0,
	    cause);
	if (s == NULL)
		return (NULL);
	s->mounts = json_incref(mounts);
	if (json_object_size(env) != 0)
		s->env = json_incref(env);
	record_save(s);
	if (kernel_start(s, cause) != 0) {
		kernel_end(s, "its first interpreter did not start");
		return (NULL);
	}
	return (s);
}

/* Incoming. */

struct session *
factory_shared_session(struct jmsg *jm)
{
	struct session	*s;
	char		 name[SESSION_NAME_MAX + 1], *cause;
	u_char		 hash[32];

	if (session_name_valid(jm->session))
		snprintf(name, sizeof name, "%s", jm->session);
	else {
		crypto_hash_sha256(hash, (const u_char *)jm->session,
		    strlen(jm->session));
		snprintf(name, sizeof name, "c-%02x%02x%02x%02x%02x%02x",
		    hash[0], hash[1], hash[2], hash[3], hash[4], hash[5]);
	}
	if ((s = session_find(name)) != NULL) {
		if (s->owner != server_uid) {
			log_warn("shared: session %s is not the shared "
			    "endpoint's to use", name);
			return (NULL);
		}
	} else if ((s = factory_new_session(name, server_uid, NULL, NULL,
	    &cause)) == NULL) {
		log_warn("shared: %s", cause);
		free(cause);
		return (NULL);
	}
	return (s);
}

json_t *
factory_describe(struct session *s)
{
	struct endpoint	*ep = s->endpoint;
	uint64_t	 mem, cpu;
	json_t		*d;

	contain_stats(s, &mem, &cpu);
	d = json_pack("{s:s,s:i,s:s,s:I,s:s?,s:s,s:I,s:I,s:i,s:b,s:i,s:i,"
	    "s:{s:I,s:f,s:I,s:I,s:I}}",
	    "name", s->name, "owner", (int)s->owner, "state",
	    session_state_name(s->state), "pid", (json_int_t)s->pid,
	    "connection_file", ep != NULL ? ep->path : NULL, "workdir",
	    s->workdir,
	    "created", (json_int_t)s->created, "idle_seconds",
	    (json_int_t)(time(NULL) - s->last_active), "incarnation",
	    (int)s->incarnation, "attached", s->attach != NULL, "queued",
	    (int)kernel_queued(s), "uid", (int)s->host_uid, "limits",
	    "memory", (json_int_t)s->limits.memory, "cpus",
	    s->limits.cpu_millis / 1000.0, "pids", (json_int_t)s->limits.pids,
	    "tmp", (json_int_t)s->limits.tmp, "exec_timeout",
	    (json_int_t)s->limits.exec_timeout);
	json_object_set_new(json_object_get(d, "limits"), "idle_timeout",
	    json_integer((json_int_t)s->limits.idle_timeout));
	if (s->mounts != NULL)
		json_object_set(d, "mounts", s->mounts);
	json_object_set_new(d, "allow_net", json_string(s->limits.allow_net));
	if (s->env != NULL)
		json_object_set_new(d, "env", factory_env_names(s));
	if (s->username != NULL)
		json_object_set_new(d, "username", json_string(s->username));
	if (mem != UINT64_MAX)
		json_object_set_new(d, "memory", json_integer(mem));
	if (cpu != UINT64_MAX)
		json_object_set_new(d, "cpu_seconds", json_real(cpu / 1e6));
	json_object_set_new(d, "checkpoint", record_describe(s));
	if (contain_weaker() != NULL)
		json_object_set_new(d, "weaker_sandbox",
		    json_string(contain_weaker()));
	if (s->pid > 0)
		json_object_set_new(d, "born",
		    json_string(spawn_born_name(s->born)));
	/* A warm-pool member keeps the group it was made in (docs/ZYGOTE.md). */
	if (s->cgroup_made)
		json_object_set_new(d, "cgroup", json_string(s->cgroup));
	return (d);
}

/* HOOK_ENDED: what the factory made for the session goes. */
static int
factory_ended(struct session *s, const void *why)
{
	(void)why;
	if (s->endpoint != NULL) {
		endpoint_close(s->endpoint);
		s->endpoint = NULL;
	}
	record_forget(s);
	contain_release(s);
	factory_rmtree(s->workdir);
	return (0);
}

void
factory_init(void)
{
	hook_add(HOOK_ENDED, factory_ended);
	kernel_set_resolver(factory_shared_session);
}

/* Daemon exit, after the interpreters: endpoints closed, cgroups gone. */
void
factory_shutdown_all(void)
{
	struct session	*s;
	struct endpoint	*ep;

	incarnation_shutdown_all();
	for (s = session_first(); s != NULL; s = session_next()) {
		contain_release(s);
		if ((ep = s->endpoint) == NULL)
			continue;
		/* A session with a checkpoint comes back on the same file. */
		if (s->lc.ckpt_slot >= 0) {
			free(ep->path);
			ep->path = NULL;
		}
		/* Its sockets closed now, not reported dangling by czmq. */
		endpoint_destroy(&ep);
		s->endpoint = NULL;
	}
}
