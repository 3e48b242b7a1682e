/* lifecycle.c: checkpoints, idle reaping, hibernation and resume. */
/*
 * A session is a durable name; its interpreter is only its current
 * incarnation. The runner writes checkpoints inside the sandbox
 * (docs/CHECKPOINTS.md); the daemon only asks, keeps each file's sha256,
 * and hands it back for a restore in a fresh interpreter. Two slots
 * alternate, so a checkpoint that turns out bad on restore falls back to
 * the one before. The daemon never unpickles anything.
 */

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"

#define LIFECYCLE_TICK		1000	/* ms between idle checks */
#define LIFECYCLE_TRIM_TICKS	30	/* ticks between malloc_trim calls */

static uint64_t	lifecycle_next_op = 1;
static struct loop_timer *lifecycle_timer;	/* the idle tick */
static struct loop_timer *lifecycle_drain_timer; /* exit: checkpoints done? */

static json_t	*lifecycle_fork_now(struct session *);
static int	 lifecycle_over_quota(struct session *, uint64_t);
static void	 lifecycle_discard(struct session *, int);
static void	 lifecycle_due(void *);
static void	 lifecycle_load_checkpoints(struct session *, json_t *);

/* Where the runner sees slot n: inside the sandbox, or the host path. */
static char *
lifecycle_path(struct session *s, int slot)
{
	char	*p;

	if (contain_enabled())
		xasprintf(&p, "/home/session/.cellblock/checkpoint-%c",
		    'a' + slot);
	else
		xasprintf(&p, "%s/.cellblock/checkpoint-%c", s->workdir,
		    'a' + slot);
	return (p);
}

static void
lifecycle_send(struct session *s, json_t *m)
{
	char	*cause;

	if (incarnation_send(s, m, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
	}
	json_decref(m);
}

/* Newest checkpoints of all of the owner's sessions, with this one. */
static int
lifecycle_over_quota(struct session *s, uint64_t bytes)
{
	struct session	*o;
	uint64_t	 total = bytes;

	for (o = session_first(); o != NULL; o = session_next()) {
		if (o != s && o->owner == s->owner && o->lc.ckpt_slot >= 0)
			total += o->lc.ckpt_bytes[o->lc.ckpt_slot];
	}
	if (total <= cfg.max_user_ckpt)
		return (0);
	log_warn("%s: checkpoint of %llu bytes puts uid %u over %zu bytes",
	    s->name, (unsigned long long)bytes, (u_int)s->owner,
	    cfg.max_user_ckpt);
	return (1);
}

/* Remove a checkpoint file the daemon will not keep (by descriptor). */
static void
lifecycle_discard(struct session *s, int slot)
{
	char	 name[16];
	int	 dfd;

	snprintf(name, sizeof name, "checkpoint-%c", 'a' + slot);
	if ((dfd = file_open_dir(s->workdir, ".cellblock", NULL)) == -1)
		return;
	unlinkat(dfd, name, 0);
	close(dfd);
	s->lc.ckpt_sha[slot][0] = '\0';
	if (s->lc.ckpt_slot == slot)
		s->lc.ckpt_slot = -1;
}

/*
 * Ask the runner for a checkpoint. Only between requests: the runner is
 * strictly sequential and reads the channel only when idle.
 */
int
lifecycle_checkpoint(struct session *s, int then_hibernate,
    struct waiter *waiter, char **cause)
{
	char	*path;

	if (s->pid <= 0 || s->hello == NULL || s->stopping) {
		xasprintf(cause, "session '%s' has no running interpreter",
		    s->name);
		return (-1);
	}
	if (s->lc.ckpt_op != 0 || s->lc.restore_op != 0) {
		xasprintf(cause, "session '%s' is already checkpointing",
		    s->name);
		return (-1);
	}
	if (s->current != NULL) {
		xasprintf(cause, "session '%s' is busy; try when the running "
		    "cell ends", s->name);
		return (-1);
	}
	s->lc.ckpt_op = lifecycle_next_op++;
	s->lc.ckpt_writing = s->lc.ckpt_slot == 0 ? 1 : 0;
	s->lc.ckpt_then_hibernate = then_hibernate;
	s->lc.ckpt_waiter = waiter;
	path = lifecycle_path(s, s->lc.ckpt_writing);
	session_set_state(s, SESSION_CHECKPOINTING, then_hibernate ?
	    "idle: checkpoint, then hibernate" : "checkpoint requested");
	lifecycle_send(s, json_pack("{s:s,s:I,s:s}", "op", "checkpoint",
	    "id", (json_int_t)s->lc.ckpt_op, "path", path));
	free(path);
	return (0);
}

/* A waiter going away (its connection closed): 1 if it was s's. */
int
lifecycle_forget_waiter(struct session *s, struct waiter *w)
{
	if (s->lc.ckpt_waiter != w)
		return (0);
	s->lc.ckpt_waiter = NULL;
	return (1);
}

static void
lifecycle_answer(struct session *s, json_t *reply)
{
	struct waiter	*waiter = s->lc.ckpt_waiter;

	s->lc.ckpt_waiter = NULL;
	if (waiter != NULL)
		waiter->answer(waiter, reply);
	else
		json_decref(reply);
}

void
lifecycle_on_checkpoint_done(struct session *s, json_t *msg)
{
	json_int_t	 id = json_integer_value(json_object_get(msg, "id"));
	const char	*sha = json_string_value(json_object_get(msg, "sha256"));
	const char	*err = json_string_value(json_object_get(msg, "error"));
	int		 slot = s->lc.ckpt_writing;

	if (s->lc.ckpt_op == 0 || (uint64_t)id != s->lc.ckpt_op) {
		log_warn("%s: unexpected checkpoint_done", s->name);
		return;
	}
	s->lc.ckpt_op = 0;
	session_set_state(s, SESSION_IDLE, "checkpoint done");
	if (!json_is_true(json_object_get(msg, "ok")) || sha == NULL ||
	    strlen(sha) != 64) {
		/* Never hibernate on a failed checkpoint: nothing is lost. */
		log_warn("%s: checkpoint failed: %s", s->name, err ? err : "?");
		s->lc.fork_to[0] = '\0';
		lifecycle_answer(s, json_pack("{s:b,s:s,s:i}", "ok", 0, "error",
		    err ? err : "checkpoint failed", "code", EXIT_FAILED));
		kernel_pump(s);
		return;
	}
	if (lifecycle_over_quota(s, json_integer_value(json_object_get(msg,
	    "bytes")))) {
		lifecycle_discard(s, slot);
		s->lc.fork_to[0] = '\0';
		lifecycle_answer(s, json_pack("{s:b,s:s,s:i}", "ok", 0, "error",
		    "checkpoint refused: over the owner's "
		    "max-checkpoint-bytes-per-user; the previous one is kept",
		    "code", EXIT_FAILED));
		kernel_pump(s);
		return;
	}
	snprintf(s->lc.ckpt_sha[slot], sizeof s->lc.ckpt_sha[slot], "%s", sha);
	s->lc.ckpt_bytes[slot] = json_integer_value(json_object_get(msg,
	    "bytes"));
	s->lc.ckpt_time[slot] = time(NULL);
	s->lc.ckpt_slot = slot;
	s->lc.dirty = 0;
	record_save(s);
	log_info("%s: checkpoint %c: %llu bytes", s->name, 'a' + slot,
	    (unsigned long long)s->lc.ckpt_bytes[slot]);
	hook_lifecycle(s, "checkpoint", NULL, json_pack("{s:I,s:s}", "bytes",
	    (json_int_t)s->lc.ckpt_bytes[slot], "sha256", sha));
	if (s->lc.fork_to[0] != '\0')
		lifecycle_answer(s, lifecycle_fork_now(s));
	else
		lifecycle_answer(s, json_pack("{s:b,s:s,s:I,s:O?}", "ok", 1,
		    "sha256", sha, "bytes", (json_int_t)s->lc.ckpt_bytes[slot],
		    "manifest", json_object_get(msg, "manifest")));
	if (s->lc.ckpt_then_hibernate && kernel_queued(s) == 0) {
		s->lc.hibernating = 1;
		incarnation_stop(s, "SessionHibernated");
		return;
	}
	kernel_pump(s);
}

/* A fresh interpreter of a session with a checkpoint restores it first. */
int
lifecycle_restore(struct session *s)
{
	char	*path;
	int	 slot = s->lc.ckpt_slot;

	if (slot < 0 || s->lc.ckpt_sha[slot][0] == '\0')
		return (0);
	s->lc.restore_op = lifecycle_next_op++;
	s->lc.restore_slot = slot;
	path = lifecycle_path(s, slot);
	lifecycle_send(s, json_pack("{s:s,s:I,s:s,s:s}", "op", "restore",
	    "id", (json_int_t)s->lc.restore_op, "path", path, "sha256",
	    s->lc.ckpt_sha[slot]));
	free(path);
	return (1);
}

void
lifecycle_on_restore_done(struct session *s, json_t *msg)
{
	json_int_t	 id = json_integer_value(json_object_get(msg, "id"));
	const char	*err = json_string_value(json_object_get(msg, "error"));
	int		 slot = s->lc.restore_slot;
	json_t		*refused, *report;

	if (s->lc.restore_op == 0 || (uint64_t)id != s->lc.restore_op) {
		log_warn("%s: unexpected restore_done", s->name);
		return;
	}
	s->lc.restore_op = 0;
	if (!json_is_true(json_object_get(msg, "ok"))) {
		log_error("%s: checkpoint %c refused: %s", s->name, 'a' + slot,
		    err ? err : "?");
		hook_lifecycle(s, "resume_refused", err, NULL);
		s->lc.ckpt_sha[slot][0] = '\0';
		json_decref(s->lc.restore_report);
		s->lc.restore_report = json_pack("{s:b,s:s,s:s}", "restored", 0,
		    "error", err ? err : "restore failed", "checkpoint",
		    slot ? "b" : "a");
		/* The slot before, if it is good, is the next best thing. */
		s->lc.ckpt_slot = s->lc.ckpt_sha[!slot][0] != '\0' ? !slot : -1;
		if (lifecycle_restore(s))
			return;
	} else {
		/* Keep why a newer checkpoint was refused, if one was. */
		refused = json_object_get(s->lc.restore_report, "error");
		report = json_pack("{s:b,s:O,s:O,s:O,s:O?,s:s}",
		    "restored", 1, "names", json_object_get(msg, "restored"),
		    "lost", json_object_get(msg, "lost"), "skipped",
		    json_object_get(msg, "skipped"), "execution_count",
		    json_object_get(msg, "execution_count"), "checkpoint",
		    slot ? "b" : "a");
		if (refused != NULL)
			json_object_set(report, "refused_newer", refused);
		json_decref(s->lc.restore_report);
		s->lc.restore_report = report;
		log_info("%s: restored from checkpoint %c", s->name, 'a' + slot);
		hook_lifecycle(s, "resume", NULL, json_deep_copy(report));
	}
	kernel_pump(s);
}


/*
 * Idle reaping: a session is idle when no cell runs and no request has
 * arrived for idle-timeout seconds (a running cell is activity; the clock
 * restarts when it ends). Reaping is checkpoint, then stop: hibernated.
 */
static int
lifecycle_quiet(struct session *s)
{
	return (s->state == SESSION_IDLE && s->current == NULL &&
	    kernel_queued(s) == 0 && !s->ending && !s->stopping &&
	    s->lc.ckpt_op == 0 && s->lc.restore_op == 0);
}

static void
lifecycle_hibernate(struct session *s, const char *why)
{
	char	*cause;

	log_info("%s: %s: hibernating", s->name, why);
	if (lifecycle_checkpoint(s, 1, NULL, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
		s->last_active = time(NULL);	/* not again at once */
	}
}

/* MemAvailable from /proc/meminfo, or 0 when it cannot be read. */
static uint64_t
lifecycle_available(void)
{
	FILE			*f = fopen("/proc/meminfo", "r");
	char			 line[256];
	unsigned long long	 kb = 0;

	if (f == NULL)
		return (0);
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return ((uint64_t)kb << 10);
}

/* Short of memory: the least recently used quiet session goes first. */
static void
lifecycle_pressure(void)
{
	struct session	*s, *lru = NULL;
	uint64_t	 avail = lifecycle_available();

	if (avail == 0 || avail >= cfg.min_free_memory)
		return;
	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->pid > 0 && lifecycle_quiet(s) &&
		    (lru == NULL || s->last_active < lru->last_active))
			lru = s;
	}
	if (lru != NULL)
		lifecycle_hibernate(lru, "memory is short (least recently "
		    "used)");
}

/*
 * When the session is next due a look: at its idle deadline, or at its
 * periodic checkpoint's. One timer per live session, armed at hello and
 * re-armed when it fires; a request only moves last_active, which the
 * timer reads when it fires (so activity costs nothing here, and no tick
 * scans every session).
 */
static void
lifecycle_arm(struct session *s)
{
	time_t		now = time(NULL), due = 0, last, t;
	uint64_t	ms;

	loop_timer_cancel(&s->lc.lifecycle_timer);
	if (s->limits.idle_timeout != 0)
		due = s->last_active + (time_t)s->limits.idle_timeout;
	if (cfg.checkpoint_interval != 0) {
		last = s->lc.ckpt_slot >= 0 ? s->lc.ckpt_time[s->lc.ckpt_slot] :
		    s->created;
		t = last + (time_t)cfg.checkpoint_interval;
		if (due == 0 || t < due)
			due = t;
	}
	if (due == 0)
		return;		/* never idle-reaped, never checkpointed */
	ms = due > now ? (uint64_t)(due - now) * 1000 : LIFECYCLE_TICK;
	s->lc.lifecycle_timer = loop_timer_add(ms, lifecycle_due, s);
}

static void
lifecycle_due(void *arg)
{
	struct session	*s = arg;
	time_t		 now = time(NULL), last;
	char		*cause;

	s->lc.lifecycle_timer = NULL;
	if (s->pid <= 0 || s->hello == NULL)
		return;		/* armed again at the next hello */
	if (lifecycle_quiet(s)) {
		/* The session's own (cellblock new --idle-timeout). */
		if (s->limits.idle_timeout != 0 &&
		    now - s->last_active >= (time_t)s->limits.idle_timeout) {
			/* Until it has stopped, due again every tick. */
			lifecycle_hibernate(s, "idle past idle-timeout");
		}
		last = s->lc.ckpt_slot >= 0 ? s->lc.ckpt_time[s->lc.ckpt_slot] :
		    s->created;
		if (s->lc.ckpt_op == 0 && s->lc.dirty &&
		    cfg.checkpoint_interval != 0 &&
		    now - last >= (time_t)cfg.checkpoint_interval &&
		    lifecycle_checkpoint(s, 0, NULL, &cause) != 0) {
			log_warn("%s: periodic checkpoint: %s", s->name, cause);
			free(cause);
		}
	}
	lifecycle_arm(s);
}

/* HOOK_ENDED: the session's timer goes with it. */
static int
lifecycle_ended(struct session *s, const void *arg)
{
	(void)arg;
	loop_timer_cancel(&s->lc.lifecycle_timer);
	return (0);
}

/* Once a second: memory pressure and the allocator; no session scan. */
static void
lifecycle_tick(void *arg)
{
	static int	 trim_ticks;

	(void)arg;
	lifecycle_timer = loop_timer_add(LIFECYCLE_TICK, lifecycle_tick, NULL);
	lifecycle_pressure();
	/*
	 * Hand freed pages back now and then. The heap in use stays flat
	 * under a steady load, but glibc keeps freed memory and the RSS
	 * creeps up as ever other free pages get touched (seen in make soak):
	 * the RSS should say what the daemon holds.
	 */
	if (++trim_ticks >= LIFECYCLE_TRIM_TICKS) {
		trim_ticks = 0;
		malloc_trim(0);
	}
}

/* HOOK_HELLO: a fresh interpreter of a session with a checkpoint. */
static int
lifecycle_hello(struct session *s, const void *arg)
{
	(void)arg;
	lifecycle_arm(s);
	return (lifecycle_restore(s));
}

/*
 * HOOK_STOPPED: the incarnation is gone, and with it a checkpoint or a
 * restore in flight; 1 if it was stopped to hibernate (the core then
 * leaves it hibernated rather than starting another).
 */
static int
lifecycle_stopped(struct session *s, const void *arg)
{
	int	hibernating = s->lc.hibernating;

	(void)arg;
	if (s->lc.ckpt_op != 0) {
		s->lc.ckpt_op = 0;
		lifecycle_answer(s, json_pack("{s:b,s:s,s:i}", "ok", 0,
		    "error", "the interpreter died during the checkpoint",
		    "code", EXIT_FAILED));
	}
	s->lc.restore_op = 0;
	s->lc.hibernating = 0;
	return (hibernating);
}

/*
 * HOOK_EXECUTED: the state changed since the checkpoint; the first reply
 * after a resume says what came back (its metadata, arg).
 */
static int
lifecycle_executed(struct session *s, const void *arg)
{
	json_t	*meta = (json_t *)arg;

	s->lc.dirty = 1;
	if (s->lc.restore_report != NULL) {
		json_object_set_new(meta, "cellblock_resumed",
		    s->lc.restore_report);
		s->lc.restore_report = NULL;
	}
	return (0);
}

/* The checkpoints a session record names (record.c reads them). */
static void
lifecycle_load_checkpoints(struct session *s, json_t *r)
{
	struct record_ckpt	ck[2];
	int			i;

	s->lc.ckpt_slot = record_checkpoints(r, ck);
	for (i = 0; i < 2; i++) {
		memcpy(s->lc.ckpt_sha[i], ck[i].sha, sizeof ck[i].sha);
		s->lc.ckpt_bytes[i] = ck[i].bytes;
		s->lc.ckpt_time[i] = ck[i].time;
	}
}

/* HOOK_CLEAN_START: the checkpoints no longer describe the session. */
static int
lifecycle_clean_start(struct session *s, const void *arg)
{
	(void)arg;
	lifecycle_drop_checkpoints(s);
	return (0);
}

/* Before any session: what this file hears from the core and the runner. */
void
lifecycle_init(void)
{
	hook_add(HOOK_HELLO, lifecycle_hello);
	hook_add(HOOK_STOPPED, lifecycle_stopped);
	hook_add(HOOK_EXECUTED, lifecycle_executed);
	hook_add(HOOK_CLEAN_START, lifecycle_clean_start);
	hook_add(HOOK_ENDED, lifecycle_ended);
	incarnation_handle("checkpoint_done", lifecycle_on_checkpoint_done);
	incarnation_handle("restore_done", lifecycle_on_restore_done);
}

void
lifecycle_start(void)
{
	lifecycle_timer = loop_timer_add(LIFECYCLE_TICK, lifecycle_tick, NULL);
}

void
lifecycle_stop(void)
{
	struct session	*s;

	loop_timer_cancel(&lifecycle_timer);
	for (s = session_first(); s != NULL; s = session_next())
		loop_timer_cancel(&s->lc.lifecycle_timer);
}








/*
 * The record's env is checked again like one from a client: a name
 * reserved since is dropped, with the rest, rather than trusted.
 */
static void
lifecycle_load_env(struct session *s, json_t *r)
{
	json_t	*env = json_object_get(r, "env");
	char	*cause;

	if (json_is_string(json_object_get(r, "username")))
		s->username = xstrdup(json_string_value(json_object_get(r,
		    "username")));
	if (env == NULL)
		return;
	if ((s->env = factory_env_check(env, &cause)) == NULL) {
		log_warn("%s: env dropped: %s", s->name, cause);
		free(cause);
	}
}

/* Bring one session back as hibernated; the same ports if still free. */
static void
lifecycle_load(const char *file)
{
	json_t			*r;
	json_error_t		 jerr;
	struct conninfo		 ci, *cip = NULL;
	struct session_limits	 lim;
	struct session		*s;
	const char		*name, *workdir;
	char			*cause;

	if ((r = json_load_file(file, 0, &jerr)) == NULL) {
		log_warn("%s: unreadable: %s", file, jerr.text);
		return;
	}
	name = json_string_value(json_object_get(r, "name"));
	workdir = json_string_value(json_object_get(r, "workdir"));
	if (name == NULL || !session_name_valid(name) || workdir == NULL ||
	    record_limits(json_object_get(r, "limits"), &lim) != 0) {
		log_warn("%s: not a session record; ignored", file);
		goto out;
	}
	if (json_array_size(json_object_get(r, "checkpoints")) == 0) {
		log_warn("%s: had no checkpoint; its state is lost", name);
		unlink(file);
		goto out;
	}
	if (json_is_object(json_object_get(r, "connection")) &&
	    connfile_from_json(json_object_get(r, "connection"), &ci,
	    &cause) == 0)
		cip = &ci;
	s = factory_make_session(name, json_integer_value(json_object_get(r,
	    "owner")), cip, &lim, workdir, json_integer_value(json_object_get(r,
	    "host_uid")), 0, &cause);
	if (s == NULL && cip != NULL) {
		log_warn("%s: %s; trying new ports", name, cause);
		free(cause);
		memset(ci.ports, 0, sizeof ci.ports);
		s = factory_make_session(name, json_integer_value(
		    json_object_get(r, "owner")), cip, &lim, workdir,
		    json_integer_value(json_object_get(r, "host_uid")), 0,
		    &cause);
	}
	if (s == NULL) {
		log_error("%s: cannot bring back: %s", name, cause);
		free(cause);
		goto out;
	}
	s->created = json_integer_value(json_object_get(r, "created"));
	s->kernel_id[0] = '\0';	/* made from it: make it again */
	/* Written by us; the shim checks each as the owner again anyway. */
	if (json_is_array(json_object_get(r, "mounts")))
		s->mounts = json_incref(json_object_get(r, "mounts"));
	lifecycle_load_env(s, r);
	lifecycle_load_checkpoints(s, r);
	record_save(s);
	session_set_state(s, SESSION_HIBERNATED, "daemon restarted");
out:
	json_decref(r);
}

/* Is the entry `name` of dfd the work dir of a session we have? */
static int
lifecycle_claimed(int dfd, const char *name)
{
	struct session	*s;
	struct stat	 sb, wb;

	/* By inode: the record may spell the state directory differently. */
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return (1);
	for (s = session_first(); s != NULL; s = session_next()) {
		if (lstat(s->workdir, &wb) == 0 && wb.st_dev == sb.st_dev &&
		    wb.st_ino == sb.st_ino)
			return (1);
	}
	return (0);
}

/*
 * At start, once the records are loaded: what belonged to sessions that
 * did not come back (never checkpointed before a crash or a stop, or an
 * unreadable record) is still on disk, their work dirs (the user's files)
 * and connection files (keys), and nothing would ever claim it.
 */
static void
lifecycle_sweep(void)
{
	char		*dir, *path, *cause, name[SESSION_NAME_MAX + 1];
	DIR		*d;
	struct dirent	*de;
	size_t		 len;

	xasprintf(&dir, "%s/work", server_state_dir);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0 ||
			    lifecycle_claimed(dirfd(d), de->d_name))
				continue;
			xasprintf(&path, "%s/%s", dir, de->d_name);
			log_info("removing %s: its session did not come back",
			    path);
			if (file_remove_tree(path, &cause) != 0) {
				log_warn("%s", cause);
				free(cause);
			}
			free(path);
		}
		closedir(d);
	}
	free(dir);
	xasprintf(&dir, "%s/sessions", server_state_dir);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			len = strlen(de->d_name);
			if (len > 10 && strcmp(de->d_name + len - 10,
			    ".state.tmp") == 0) {
				unlinkat(dirfd(d), de->d_name, 0);
				continue;
			}
			if (len < 6 || len - 5 > SESSION_NAME_MAX ||
			    strcmp(de->d_name + len - 5, ".json") != 0)
				continue;
			snprintf(name, sizeof name, "%.*s", (int)(len - 5),
			    de->d_name);
			if (session_find(name) == NULL) {
				log_info("removing %s/%s: its session did not "
				    "come back", dir, de->d_name);
				unlinkat(dirfd(d), de->d_name, 0);
			}
		}
		closedir(d);
	}
	free(dir);
}

void
lifecycle_load_all(void)
{
	char	*dir, *file;
	DIR	*d;
	struct dirent *de;
	size_t	 len;

	xasprintf(&dir, "%s/sessions", server_state_dir);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			len = strlen(de->d_name);
			if (len < 7 ||
			    strcmp(de->d_name + len - 6, ".state") != 0)
				continue;
			xasprintf(&file, "%s/%s", dir, de->d_name);
			lifecycle_load(file);
			free(file);
		}
		closedir(d);
	}
	free(dir);
	lifecycle_sweep();
}

/*
 * At shutdown: checkpoint every live idle session, and give the runners
 * a bounded time to finish, so a restart loses nothing it could keep.
 */
static void
lifecycle_drain_tick(void *arg)
{
	struct session	*s;
	uint64_t	*deadline = arg;

	lifecycle_drain_timer = NULL;
	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->lc.ckpt_op != 0 && loop_now() < *deadline) {
			lifecycle_drain_timer = loop_timer_add(50,
			    lifecycle_drain_tick, deadline);
			return;
		}
	}
	loop_quit();
}

void
lifecycle_checkpoint_all(int wait_ms)
{
	struct session	*s;
	uint64_t	 deadline = loop_now() + wait_ms;
	char		*cause;
	int		 n = 0;

	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->state != SESSION_IDLE || s->ending || !s->lc.dirty)
			continue;
		if (lifecycle_checkpoint(s, 0, NULL, &cause) == 0)
			n++;
		else
			free(cause);
	}
	if (n == 0)
		return;
	log_info("checkpointing %d sessions before exit", n);
	lifecycle_drain_timer = loop_timer_add(50, lifecycle_drain_tick,
	    &deadline);
	loop_run();
	loop_timer_cancel(&lifecycle_drain_timer);
}

/*
 * Copy the source's newest checkpoint into the new session's work dir.
 * The source's directory is the source session's to play with: open by
 * descriptor, no links followed, regular files only, and the copy must
 * hash to what the daemon recorded.
 */
static int
lifecycle_copy_checkpoint(struct session *src, struct session *dst,
    char **cause)
{
	crypto_hash_sha256_state st;
	u_char		 h[32], buf[65536];
	char		 hex[65], name[16], *dstdir;
	int		 dfd, in = -1, out = -1, r = -1;
	ssize_t		 n;
	struct stat	 sb;

	snprintf(name, sizeof name, "checkpoint-%c", 'a' + src->lc.ckpt_slot);
	dfd = file_open_dir(src->workdir, ".cellblock", NULL);
	if (dfd == -1 || (in = file_open_regular(dfd, NULL, name, O_RDONLY,
	    NULL)) == -1 || fstat(in, &sb) != 0) {
		xasprintf(cause, "cannot read %s's checkpoint", src->name);
		goto out;
	}
	xasprintf(&dstdir, "%s/.cellblock", dst->workdir);
	if (mkdir(dstdir, 0700) != 0 || chown(dstdir, dst->host_uid,
	    dst->host_gid) != 0) {
		xasprintf(cause, "%s: %s", dstdir, strerror(errno));
		free(dstdir);
		goto out;
	}
	free(dstdir);
	xasprintf(&dstdir, "%s/.cellblock/checkpoint-a", dst->workdir);
	out = open(dstdir, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	free(dstdir);
	if (out == -1 || fchown(out, dst->host_uid, dst->host_gid) != 0) {
		xasprintf(cause, "cannot write the copy: %s", strerror(errno));
		goto out;
	}
	crypto_hash_sha256_init(&st);
	while ((n = read(in, buf, sizeof buf)) > 0) {
		crypto_hash_sha256_update(&st, buf, n);
		if (write(out, buf, n) != n) {
			xasprintf(cause, "copy: %s", strerror(errno));
			goto out;
		}
	}
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	if (n < 0 || fsync(out) != 0 ||
	    strcmp(hex, src->lc.ckpt_sha[src->lc.ckpt_slot]) != 0) {
		xasprintf(cause, "%s's checkpoint changed on disk; not forked",
		    src->name);
		goto out;
	}
	snprintf(dst->lc.ckpt_sha[0], sizeof dst->lc.ckpt_sha[0], "%s", hex);
	dst->lc.ckpt_bytes[0] = sb.st_size;
	dst->lc.ckpt_time[0] = time(NULL);
	dst->lc.ckpt_slot = 0;
	r = 0;
out:
	if (dfd != -1)
		close(dfd);
	if (in != -1)
		close(in);
	if (out != -1)
		close(out);
	return (r);
}

/* The new session: hibernated on a copy of the source's checkpoint. */
static json_t *
lifecycle_fork_now(struct session *src)
{
	struct conninfo	 ci;
	struct session	*dst;
	char		*cause, name[SESSION_NAME_MAX + 1];
	json_t		*r;

	snprintf(name, sizeof name, "%s", src->lc.fork_to);
	src->lc.fork_to[0] = '\0';
	endpoint_default_ci(&ci, name);
	dst = factory_make_session(name, src->lc.fork_owner, &ci, &src->limits,
	    NULL, (uid_t)-1, 0, &cause);
	if (dst == NULL)
		goto fail;
	if (lifecycle_copy_checkpoint(src, dst, &cause) != 0) {
		kernel_end(dst, "fork failed");
		goto fail;
	}
	/* Its env too, but never to another owner: values may be secrets. */
	if (src->env != NULL && dst->owner == src->owner)
		dst->env = json_incref(src->env);
	session_set_state(dst, SESSION_HIBERNATED, "forked");
	record_save(dst);
	log_info("%s: forked from %s", dst->name, src->name);
	hook_lifecycle(dst, "fork", NULL, json_pack("{s:s}", "from",
	    src->name));
	return (json_pack("{s:b,s:o}", "ok", 1, "session",
	    factory_describe(dst)));
fail:
	r = json_pack("{s:b,s:s,s:i}", "ok", 0, "error", cause, "code",
	    EXIT_FAILED);
	free(cause);
	return (r);
}

/*
 * `cellblock fork SRC NEW`: NEW starts from SRC's latest state (a fresh
 * checkpoint if SRC is live), then they diverge.
 */
json_t *
lifecycle_fork(struct session *src, const char *name, uid_t owner,
    struct waiter *waiter)
{
	char	*cause;
	json_t	*r;

	if (!session_name_valid(name) || session_find(name) != NULL)
		return (json_pack("{s:b,s:s,s:i}", "ok", 0, "error",
		    session_find(name) ? "that name is taken" :
		    "invalid session name", "code", EXIT_USAGE));
	snprintf(src->lc.fork_to, sizeof src->lc.fork_to, "%s", name);
	src->lc.fork_owner = owner;
	/* Hibernating: the checkpoint it stops on was just written. */
	if ((src->pid <= 0 || src->lc.hibernating) && src->lc.ckpt_slot >= 0)
		return (lifecycle_fork_now(src));
	if (lifecycle_checkpoint(src, 0, waiter, &cause) != 0) {
		src->lc.fork_to[0] = '\0';
		r = json_pack("{s:b,s:s,s:i}", "ok", 0, "error", cause, "code",
		    EXIT_FAILED);
		free(cause);
		return (r);
	}
	return (NULL);
}

/* A clean start: the checkpoints no longer describe this session. */
void
lifecycle_drop_checkpoints(struct session *s)
{
	if (s->lc.ckpt_slot < 0 && s->lc.ckpt_sha[0][0] == '\0' &&
	    s->lc.ckpt_sha[1][0] == '\0')
		return;
	s->lc.ckpt_sha[0][0] = s->lc.ckpt_sha[1][0] = '\0';
	s->lc.ckpt_slot = -1;
	record_save(s);
}
