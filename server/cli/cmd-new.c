/* cmd-new.c: `cellblock new`: create a session, print its connection file. */

#include <getopt.h>
#include <stdlib.h>

#include "cli.h"

static int	cmd_new_exec(int, char **);

const struct cmd_entry cmd_new_entry = {
	"new", "[--name NAME] [--memory SIZE] [--cpus N] [--pids N] "
	"[--tmp SIZE] [--exec-timeout SECONDS] [--idle-timeout SECONDS] "
	"[--allow-net DEST[,DEST...]]",
	cmd_new_exec
};

static int
cmd_new_exec(int argc, char **argv)
{
	/* Each limit travels as text; the daemon parses it like its config. */
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 0 },
		{ "memory", required_argument, NULL, 0 },
		{ "cpus", required_argument, NULL, 0 },
		{ "pids", required_argument, NULL, 0 },
		{ "tmp", required_argument, NULL, 0 },
		{ "exec-timeout", required_argument, NULL, 0 },
		{ "idle-timeout", required_argument, NULL, 0 },
		{ "allow-net", required_argument, NULL, 0 },
		{ NULL, 0, NULL, 0 }
	};
	json_t	*req, *r;
	int	 ch, code, idx;

	req = json_pack("{s:s}", "cmd", "new");
	while ((ch = getopt_long(argc, argv, "", opts, &idx)) != -1) {
		if (ch != 0)
			cmd_usage(&cmd_new_entry);
		json_object_set_new(req, opts[idx].name, json_string(optarg));
	}
	if (optind != argc)
		cmd_usage(&cmd_new_entry);
	if ((code = client_command(req, &r)) == EXIT_OK) {
		printf("%s\n", json_string_value(json_object_get(
		    json_object_get(r, "session"), "connection_file")));
		json_decref(r);
	}
	json_decref(req);
	return (code);
}
