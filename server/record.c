/* record.c: a session's record file (sessions/NAME.state), in one place. */
/*
 * What a restarted daemon needs to bring a session back: owner, limits,
 * work dir, host uid, endpoint and the checkpoints' sha256. Written by
 * record_save whenever any of it changes, read back by lifecycle_load_all,
 * removed when the session ends. Kept by the daemon (0600, outside every
 * sandbox): a session cannot forge the hash its checkpoint is checked
 * against.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

static char *
record_path(const char *name)
{
	char	*p;

	xasprintf(&p, "%s/sessions/%s.state", server_state_dir, name);
	return (p);
}

static json_t *
record_json(struct session *s)
{
	struct endpoint	*ep = s->endpoint;
	json_t		*r, *ck = json_array();
	int		 i;

	for (i = 0; i < 2; i++) {
		if (s->lc.ckpt_sha[i][0] == '\0')
			continue;
		json_array_append_new(ck, json_pack("{s:i,s:s,s:I,s:I}", "slot",
		    i, "sha256", s->lc.ckpt_sha[i], "bytes",
		    (json_int_t)s->lc.ckpt_bytes[i], "time",
		    (json_int_t)s->lc.ckpt_time[i]));
	}
	r = json_pack("{s:i,s:s,s:i,s:s,s:i,s:I,s:i,s:o,s:{s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:I}}", "format", 1, "name", s->name, "owner",
	    (int)s->owner, "workdir", s->workdir, "host_uid", (int)s->host_uid,
	    "created", (json_int_t)s->created, "newest", s->lc.ckpt_slot,
	    "checkpoints", ck, "limits", "memory", (json_int_t)s->limits.memory,
	    "cpu_millis", (json_int_t)s->limits.cpu_millis, "pids",
	    (json_int_t)s->limits.pids, "tmp", (json_int_t)s->limits.tmp,
	    "exec_timeout", (json_int_t)s->limits.exec_timeout, "nofile",
	    (json_int_t)s->limits.nofile, "fsize", (json_int_t)s->limits.fsize);
	json_object_set_new(json_object_get(r, "limits"), "idle_timeout",
	    json_integer((json_int_t)s->limits.idle_timeout));
	json_object_set_new(json_object_get(r, "limits"), "allow_net",
	    json_string(s->limits.allow_net));
	json_object_set_new(r, "connection", ep != NULL ?
	    connfile_to_json(&ep->ci) : json_null());
	if (s->mounts != NULL)
		json_object_set(r, "mounts", s->mounts);
	/* The values too: the record is the daemon's, mode 0600. */
	if (s->env != NULL)
		json_object_set(r, "env", s->env);
	if (s->username != NULL)
		json_object_set_new(r, "username", json_string(s->username));
	return (r);
}

/*
 * Written whole to a temporary name, synced, renamed: never half. A record
 * without a checkpoint is not synced: a restore drops such a record anyway
 * (lifecycle.c: its state is lost), and the sync was the largest part of
 * a warm-pool `new` (0.4-5 ms on a shared disk).
 */
void
record_save(struct session *s)
{
	json_t	*r = record_json(s);
	char	*path = record_path(s->name), *text, *cause;
	int	 sync, rc;

	sync = json_array_size(json_object_get(r, "checkpoints")) != 0;
	text = json_dumps(r, JSON_COMPACT);
	rc = file_write_atomic_spare(path, s->record_spare, text, strlen(text),
	    0600, (uid_t)-1, sync, &cause);
	/* Used (renamed to path) or not usable (removed): gone either way. */
	free(s->record_spare);
	s->record_spare = NULL;
	if (rc != 0) {
		log_warn("%s: cannot save %s: %s", s->name, path, cause);
		free(cause);
	}
	free(text);
	free(path);
	json_decref(r);
}

void
record_forget(struct session *s)
{
	char	*path = record_path(s->name);

	unlink(path);
	free(path);
	if (s->record_spare != NULL) {
		unlink(s->record_spare);
		free(s->record_spare);
		s->record_spare = NULL;
	}
}

/*
 * A warm-pool member's first record is written inside the claimer's
 * `new`: its file is made now, with the member (NAME.state.tmp, which a
 * restart's sweep removes), so that the claim writes into it and renames
 * it rather than making one (file_make_spare says why). Without it the
 * save makes its file as any other.
 */
void
record_prepare(struct session *s)
{
	char	*path = record_path(s->name), *cause;

	free(s->record_spare);
	xasprintf(&s->record_spare, "%s.tmp", path);
	free(path);
	if (file_make_spare(s->record_spare, 0600, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
		free(s->record_spare);
		s->record_spare = NULL;
	}
}

/* The newest checkpoint, for `ls`. */
json_t *
record_describe(struct session *s)
{
	int	slot = s->lc.ckpt_slot;

	if (slot < 0)
		return (json_null());
	return (json_pack("{s:I,s:I,s:s}", "time", (json_int_t)
	    s->lc.ckpt_time[slot], "bytes", (json_int_t)s->lc.ckpt_bytes[slot],
	    "slot", slot ? "b" : "a"));
}

/*
 * The egress allowlist is checked again against today's ceiling: one the
 * operator narrowed since is not widened back by an old record.
 */
static void
record_allow_net(json_t *v, struct session_limits *out)
{
	char	*cause = NULL;

	if (json_string_value(v) == NULL || *json_string_value(v) == '\0')
		return;
	if (config_allow_net(json_string_value(v), out, &cause) != 0) {
		log_warn("allow-net %s dropped: %s", json_string_value(v),
		    cause);
		free(cause);
		out->allow_net[0] = '\0';
	}
}

int
record_limits(json_t *l, struct session_limits *out)
{
	*out = cfg.limits;
	if (!json_is_object(l))
		return (-1);
	out->memory = json_integer_value(json_object_get(l, "memory"));
	out->cpu_millis = json_integer_value(json_object_get(l, "cpu_millis"));
	out->pids = json_integer_value(json_object_get(l, "pids"));
	out->tmp = json_integer_value(json_object_get(l, "tmp"));
	out->exec_timeout = json_integer_value(json_object_get(l,
	    "exec_timeout"));
	out->nofile = json_integer_value(json_object_get(l, "nofile"));
	out->fsize = json_integer_value(json_object_get(l, "fsize"));
	/* A record from before per-session idle timeouts: the default. */
	if (json_is_integer(json_object_get(l, "idle_timeout")))
		out->idle_timeout = json_integer_value(json_object_get(l,
		    "idle_timeout"));
	record_allow_net(json_object_get(l, "allow_net"), out);
	return (out->memory && out->cpu_millis && out->pids && out->tmp &&
	    out->nofile && out->fsize ? 0 : -1);
}

/*
 * The record's two checkpoint slots into ck[2] (lifecycle.c keeps them):
 * the newest good slot, or -1.
 */
int
record_checkpoints(json_t *r, struct record_ckpt *ck)
{
	json_t	*c;
	size_t	 i;
	int	 slot;

	memset(ck, 0, 2 * sizeof *ck);
	json_array_foreach(json_object_get(r, "checkpoints"), i, c) {
		slot = json_integer_value(json_object_get(c, "slot"));
		if (slot != 0 && slot != 1)
			continue;
		snprintf(ck[slot].sha, sizeof ck[slot].sha, "%s",
		    json_string_value(json_object_get(c, "sha256")) ?: "");
		ck[slot].bytes = json_integer_value(json_object_get(c,
		    "bytes"));
		ck[slot].time = json_integer_value(json_object_get(c, "time"));
	}
	slot = json_integer_value(json_object_get(r, "newest"));
	return ((slot == 0 || slot == 1) && ck[slot].sha[0] ? slot : -1);
}
