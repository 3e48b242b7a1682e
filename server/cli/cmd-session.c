/* cmd-session.c: `cellblock interrupt|restart|kill|checkpoint NAME`. */

#include <string.h>

#include "cli.h"

static int	cmd_session_exec(int, char **);

const struct cmd_entry cmd_interrupt_entry = {
	"interrupt", "NAME", cmd_session_exec
};
const struct cmd_entry cmd_restart_entry = {
	"restart", "NAME", cmd_session_exec
};
const struct cmd_entry cmd_kill_entry = {
	"kill", "NAME", cmd_session_exec
};
const struct cmd_entry cmd_checkpoint_entry = {
	"checkpoint", "NAME", cmd_session_exec
};

static const struct cmd_entry *cmd_session_entries[] = {
	&cmd_interrupt_entry, &cmd_restart_entry, &cmd_kill_entry,
	&cmd_checkpoint_entry,
};

/* What a checkpoint kept and what it could not, for the user. */
static void
cmd_session_checkpoint(json_t *r)
{
	json_t	*m = json_object_get(r, "manifest"), *v;
	size_t	 i;

	if (json_object_get(r, "note") != NULL) {
		printf("%s\n", json_string_value(json_object_get(r, "note")));
		return;
	}
	printf("checkpoint: %lld bytes, %zu values saved\n",
	    (long long)json_integer_value(json_object_get(r, "bytes")),
	    json_array_size(json_object_get(m, "saved")));
	json_array_foreach(json_object_get(m, "skipped"), i, v) {
		printf("not saved: %s: %s\n",
		    json_string_value(json_object_get(v, "name")),
		    json_string_value(json_object_get(v, "reason")));
	}
}

/* The command's name is the control request's name. */
static int
cmd_session_exec(int argc, char **argv)
{
	json_t	*req, *r;
	int	 code;

	size_t	 i;

	if (argc != 2 || argv[1][0] == '-') {
		for (i = 0; i < nitems(cmd_session_entries); i++) {
			if (strcmp(argv[0], cmd_session_entries[i]->name) == 0)
				cmd_usage(cmd_session_entries[i]);
		}
	}
	/* A checkpoint of a large session may take a while. */
	if (strcmp(argv[0], "checkpoint") == 0)
		client_timeout = 600000;
	req = json_pack("{s:s,s:s}", "cmd", argv[0], "name", argv[1]);
	if ((code = client_command(req, &r)) == EXIT_OK) {
		if (strcmp(argv[0], "checkpoint") == 0)
			cmd_session_checkpoint(r);
		json_decref(r);
	}
	json_decref(req);
	return (code);
}
