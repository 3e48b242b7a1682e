/* session.c: the registry of named sessions, their owners and states. */

#include <sys/types.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>
#include <sodium.h>

#include "base.h"
#include "sessions.h"

static zhashx_t	*session_table;		/* name -> struct session */
static zhashx_t	*session_pids;		/* "pid" -> struct session */

/* Sessions per owner, not ending: the quota check must not scan them all. */
static struct session_owner {
	uid_t	uid;
	size_t	live;
} *session_owners;
static size_t	 session_nowners;

static const char *session_state_names[] = {
	[SESSION_CREATING] = "creating",
	[SESSION_IDLE] = "idle",
	[SESSION_BUSY] = "busy",
	[SESSION_CHECKPOINTING] = "checkpointing",
	[SESSION_HIBERNATED] = "hibernated",
	[SESSION_DEAD] = "dead",
};

/* Names travel in paths, topics and cgroup names: keep them boring. */
int
session_name_valid(const char *name)
{
	size_t	i, len = strlen(name);

	if (len == 0 || len > SESSION_NAME_MAX || !isalnum((u_char)name[0]))
		return (0);
	for (i = 0; i < len; i++) {
		if (!isalnum((u_char)name[i]) && strchr("_.-", name[i]) == NULL)
			return (0);
	}
	return (strstr(name, "..") == NULL);
}

void
session_random_name(char *buf, size_t len)
{
	u_char	r[4];

	do {
		randombytes_buf(r, sizeof r);
		snprintf(buf, len, "s%02x%02x%02x", r[0], r[1], r[2]);
	} while (session_find(buf) != NULL);
}

static size_t *
session_owner_live(uid_t uid)
{
	size_t	i;

	for (i = 0; i < session_nowners; i++) {
		if (session_owners[i].uid == uid)
			return (&session_owners[i].live);
	}
	session_owners = xrealloc(session_owners, (session_nowners + 1) *
	    sizeof *session_owners);
	session_owners[session_nowners].uid = uid;
	session_owners[session_nowners].live = 0;
	return (&session_owners[session_nowners++].live);
}

/* The owner's sessions that are not ending (a few owners: a list will do). */
size_t
session_owner_count(uid_t uid)
{
	return (*session_owner_live(uid));
}

/* The session is going: it no longer counts against its owner's quota. */
void
session_set_ending(struct session *s)
{
	if (s->ending)
		return;
	s->ending = 1;
	(*session_owner_live(s->owner))--;
}

/* The incarnation's pid (-1: none), indexed for the reaper. */
void
session_set_pid(struct session *s, pid_t pid)
{
	char	key[24];

	if (session_pids == NULL)
		session_pids = zhashx_new();
	if (s->pid > 0) {
		snprintf(key, sizeof key, "%ld", (long)s->pid);
		if (zhashx_lookup(session_pids, key) == s)
			zhashx_delete(session_pids, key);
	}
	s->pid = pid;
	if (pid > 0) {
		snprintf(key, sizeof key, "%ld", (long)pid);
		zhashx_update(session_pids, key, s);
	}
}

/* May a session take this name? */
static int
session_name_free(const char *name, char **cause)
{
	if (!session_name_valid(name)) {
		xasprintf(cause, "invalid session name '%s' (letters, digits, "
		    "'_', '.', '-'; at most %d)", name, SESSION_NAME_MAX);
		return (-1);
	}
	if (session_find(name) != NULL) {
		xasprintf(cause, "session '%s' already exists", name);
		return (-1);
	}
	return (0);
}

/* A new session, in no table, with nothing running. */
static struct session *
session_alloc(const char *name, uid_t owner, const char *workdir)
{
	struct session	*s;

	s = xcalloc(1, sizeof *s);
	snprintf(s->name, sizeof s->name, "%s", name);
	s->owner = owner;
	s->state = SESSION_CREATING;
	s->created = s->last_active = time(NULL);
	s->references = 1;
	s->pid = -1;
	s->errfd = -1;
	channel_init(&s->chan, -1);
	TAILQ_INIT(&s->queue);
	s->next_id = 1;
	s->lc.ckpt_slot = -1;
	s->host_uid = (uid_t)-1;
	s->workdir = xstrdup(workdir);
	return (s);
}

struct session *
session_create(const char *name, uid_t owner, const char *workdir,
    char **cause)
{
	struct session	*s;

	if (session_table == NULL)
		session_table = zhashx_new();
	if (session_name_free(name, cause) != 0)
		return (NULL);
	s = session_alloc(name, owner, workdir);
	zhashx_insert(session_table, s->name, s);
	(*session_owner_live(owner))++;
	log_info("%s: created for uid %u", s->name, (u_int)owner);
	return (s);
}

/*
 * A session with no name in the table yet (a warm-pool member): the reaper
 * finds it by pid, nothing that lists sessions sees it, and it counts
 * against no owner until session_list gives it a name.
 */
struct session *
session_create_unlisted(const char *tag, const char *workdir)
{
	struct session	*s;

	s = session_alloc(tag, (uid_t)-1, workdir);
	s->ending = 1;		/* not counted: see session_set_ending */
	return (s);
}

/* An unlisted session takes its name and owner: from now on it is one. */
int
session_list(struct session *s, const char *name, uid_t owner, char **cause)
{
	if (session_table == NULL)
		session_table = zhashx_new();
	if (session_name_free(name, cause) != 0)
		return (-1);
	log_info("%s: is now %s, for uid %u", s->name, name, (u_int)owner);
	snprintf(s->name, sizeof s->name, "%s", name);
	s->owner = owner;
	s->kernel_id[0] = '\0';	/* made from name, owner and created */
	s->ending = 0;
	s->created = s->last_active = time(NULL);
	zhashx_insert(session_table, s->name, s);
	(*session_owner_live(owner))++;
	return (0);
}

struct session *
session_find(const char *name)
{
	if (session_table == NULL)
		return (NULL);
	return (zhashx_lookup(session_table, name));
}

struct session *
session_find_pid(pid_t pid)
{
	char	key[24];

	if (session_pids == NULL || pid <= 0)
		return (NULL);
	snprintf(key, sizeof key, "%ld", (long)pid);
	return (zhashx_lookup(session_pids, key));
}

struct session *
session_first(void)
{
	return (session_table == NULL ? NULL : zhashx_first(session_table));
}

struct session *
session_next(void)
{
	return (zhashx_next(session_table));
}

size_t
session_count(void)
{
	return (session_table == NULL ? 0 : zhashx_size(session_table));
}

/*
 * The session is over: its name leaves the table (a new one may take it
 * at once), the table's reference goes, and the caller's pointer with it.
 * The memory goes with the last reference (a timer or a callback on the
 * stack may still hold one).
 */
void
session_destroy(struct session **sp)
{
	struct session	*s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (session_table != NULL && session_find(s->name) == s)
		zhashx_delete(session_table, s->name);
	session_set_ending(s);
	session_set_pid(s, -1);
	s->dying = 1;
	session_remove_ref(s);
}

void
session_add_ref(struct session *s)
{
	s->references++;
}

void
session_remove_ref(struct session *s)
{
	if (--s->references > 0)
		return;
	channel_close(&s->chan);
	json_decref(s->hello);
	json_decref(s->kernel_args);
	json_decref(s->exec_count);
	json_decref(s->lc.restore_report);
	json_decref(s->mounts);
	json_decref(s->env);
	free(s->username);
	free(s->workdir);
	free(s->record_spare);
	free(s);
}

const char *
session_state_name(enum session_state st)
{
	return (session_state_names[st]);
}

void
session_set_state(struct session *s, enum session_state st, const char *why)
{
	int	level = LEVEL_INFO;

	if (s->state == st)
		return;
	/* Two per request: at info they would be most of a busy log. */
	if ((s->state == SESSION_IDLE && st == SESSION_BUSY) ||
	    (s->state == SESSION_BUSY && st == SESSION_IDLE))
		level = LEVEL_DEBUG;
	if (log_enabled(level))
		log_write(level, __func__, "%s: %s -> %s (%s)", s->name,
		    session_state_names[s->state], session_state_names[st],
		    why);
	s->state = st;
}

/* A user sees only their own sessions; root sees all. */
int
session_visible(struct session *s, uid_t uid)
{
	return (uid == 0 || s->owner == uid);
}
