/* connfile.c: Jupyter connection files: read, write, endpoints, state dir. */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "shared.h"

const char *connfile_port_names[PORT_N] = {
	"shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"
};

static int
connfile_string(json_t *o, const char *key, char *buf, size_t len,
    const char *def, char **cause)
{
	json_t	*v = json_object_get(o, key);

	if (v == NULL && def != NULL) {
		snprintf(buf, len, "%s", def);
		return (0);
	}
	if (!json_is_string(v) || json_string_length(v) >= len) {
		xasprintf(cause, "connection file: '%s' missing or not a "
		    "string of at most %zu bytes", key, len - 1);
		return (-1);
	}
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return (0);
}

int
connfile_from_json(json_t *o, struct conninfo *ci, char **cause)
{
	json_t	*v;
	int	 i;

	memset(ci, 0, sizeof *ci);
	if (!json_is_object(o)) {
		*cause = xstrdup("connection file is not a JSON object");
		return (-1);
	}
	if (connfile_string(o, "transport", ci->transport,
	    sizeof ci->transport, "tcp", cause) != 0 ||
	    connfile_string(o, "ip", ci->ip, sizeof ci->ip, "127.0.0.1",
	    cause) != 0 ||
	    connfile_string(o, "key", ci->key, sizeof ci->key, "",
	    cause) != 0 ||
	    connfile_string(o, "signature_scheme", ci->scheme,
	    sizeof ci->scheme, "hmac-sha256", cause) != 0)
		return (-1);
	if (strcmp(ci->transport, "tcp") != 0 &&
	    strcmp(ci->transport, "ipc") != 0) {
		xasprintf(cause, "transport '%s' is not tcp or ipc",
		    ci->transport);
		return (-1);
	}
	for (i = 0; i < PORT_N; i++) {
		v = json_object_get(o, connfile_port_names[i]);
		if (v == NULL)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 65535) {
			xasprintf(cause, "connection file: bad %s",
			    connfile_port_names[i]);
			return (-1);
		}
		ci->ports[i] = json_integer_value(v);
	}
	return (0);
}

json_t *
connfile_to_json(const struct conninfo *ci)
{
	json_t	*o;
	int	 i;

	o = json_object();
	for (i = 0; i < PORT_N; i++) {
		json_object_set_new(o, connfile_port_names[i],
		    json_integer(ci->ports[i]));
	}
	json_object_set_new(o, "ip", json_string(ci->ip));
	json_object_set_new(o, "key", json_string(ci->key));
	json_object_set_new(o, "transport", json_string(ci->transport));
	json_object_set_new(o, "signature_scheme", json_string(ci->scheme));
	json_object_set_new(o, "kernel_name",
	    json_string(CELLBLOCK_KERNEL_NAME));
	return (o);
}

int
connfile_read(const char *path, struct conninfo *ci, char **cause)
{
	json_t		*o;
	json_error_t	 jerr;
	char		*why;
	int		 r;

	if ((o = json_load_file(path, 0, &jerr)) == NULL) {
		xasprintf(cause, "%s: %s", path, jerr.text);
		return (-1);
	}
	r = connfile_from_json(o, ci, &why);
	json_decref(o);
	if (r != 0) {
		xasprintf(cause, "%s: %s", path, why);
		free(why);
	}
	return (r);
}

/*
 * Written to a temporary name and renamed: a reader never sees half. Not
 * synced (a sync was most of a warm-pool `new`'s time in the daemon):
 * after a crash the daemon writes it again from the session's record
 * (lifecycle.c, restoring), and a session that is not restored has no use
 * for it.
 */
int
connfile_write(const char *path, const struct conninfo *ci, uid_t owner,
    char **cause)
{
	json_t	*o;
	char	*s, *text;
	int	 r;

	o = connfile_to_json(ci);
	s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	xasprintf(&text, "%s\n", s);
	free(s);
	r = file_write_atomic_nosync(path, text, strlen(text), 0600, owner,
	    cause);
	free(text);
	return (r);
}

/* jupyter_client's rule: ipc endpoints are "<ip>-<port>". */
char *
connfile_endpoint(const struct conninfo *ci, int which)
{
	char	*e;

	if (strcmp(ci->transport, "ipc") == 0)
		xasprintf(&e, "ipc://%s-%d", ci->ip, ci->ports[which]);
	else if (ci->ports[which] == 0)
		xasprintf(&e, "tcp://%s:*", ci->ip);
	else
		xasprintf(&e, "tcp://%s:%d", ci->ip, ci->ports[which]);
	return (e);
}

/*
 * The state directory: the flag, then $CELLBLOCK_STATE_DIR, then a default
 * that depends on who we are (as tmux picks its socket directory).
 */
char *
connfile_state_dir(const char *flag)
{
	const char	*env;
	char		*dir;

	if (flag != NULL && *flag != '\0')
		return (xstrdup(flag));
	if ((env = getenv("CELLBLOCK_STATE_DIR")) != NULL && *env != '\0')
		return (xstrdup(env));
	if (getuid() == 0)
		return (xstrdup("/var/lib/cellblock"));
	if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && *env == '/')
		xasprintf(&dir, "%s/cellblock", env);
	else
		xasprintf(&dir, "/tmp/cellblock-%u", (u_int)getuid());
	return (dir);
}
