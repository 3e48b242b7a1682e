/* cmd-session.c: `cellblock interrupt|restart|kill NAME`: act on a session. */

#include <string.h>

#include "server.h"

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

/* The command's name is the control request's name. */
static int
cmd_session_exec(int argc, char **argv)
{
	json_t	*req, *r;
	int	 code;

	if (argc != 2 || argv[1][0] == '-') {
		cmd_usage(strcmp(argv[0], "kill") == 0 ? &cmd_kill_entry :
		    strcmp(argv[0], "restart") == 0 ? &cmd_restart_entry :
		    &cmd_interrupt_entry);
	}
	req = json_pack("{s:s,s:s}", "cmd", argv[0], "name", argv[1]);
	if ((code = client_command(req, &r)) == EXIT_OK)
		json_decref(r);
	json_decref(req);
	return (code);
}
