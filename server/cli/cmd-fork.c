/* cmd-fork.c: `cellblock fork SRC NEW`: a new session from SRC's state. */

#include <string.h>

#include "cli.h"

static int	cmd_fork_exec(int, char **);

const struct cmd_entry cmd_fork_entry = {
	"fork", "SRC NEW", cmd_fork_exec
};

static int
cmd_fork_exec(int argc, char **argv)
{
	json_t	*req, *r;
	int	 code;

	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-')
		cmd_usage(&cmd_fork_entry);
	/* SRC is checkpointed first, which may take a while. */
	client_timeout = 600000;
	req = json_pack("{s:s,s:s,s:s}", "cmd", "fork", "name", argv[1], "new",
	    argv[2]);
	if ((code = client_command(req, &r)) == EXIT_OK) {
		printf("%s\n", json_string_value(json_object_get(
		    json_object_get(r, "session"), "connection_file")));
		json_decref(r);
	}
	json_decref(req);
	return (code);
}
