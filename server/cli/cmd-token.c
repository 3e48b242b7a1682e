/* cmd-token.c: `cellblock token new [--name N] | ls | revoke ID|NAME`. */

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int	cmd_token_exec(int, char **);

const struct cmd_entry cmd_token_entry = {
	"token", "new [--name NAME] | ls | revoke ID|NAME", cmd_token_exec
};

/* The token itself is shown once, here; the daemon keeps only a hash. */
static int
cmd_token_new(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*name = "";
	json_t		*req, *r;
	int		 ch, code;

	while ((ch = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		if (ch != 'n')
			cmd_usage(&cmd_token_entry);
		name = optarg;
	}
	if (optind != argc)
		cmd_usage(&cmd_token_entry);
	req = json_pack("{s:s,s:s,s:s}", "cmd", "token", "action", "new", "name",
	    name);
	if ((code = client_command(req, &r)) == EXIT_OK) {
		printf("%s\n", json_string_value(json_object_get(r, "token")));
		fprintf(stderr, "token %s: shown once; keep it\n",
		    json_string_value(json_object_get(r, "id")));
		json_decref(r);
	}
	json_decref(req);
	return (code);
}

static int
cmd_token_ls(void)
{
	json_t		*req, *r, *t;
	size_t		 i;
	int		 code;
	time_t		 when;
	char		 date[32];

	req = json_pack("{s:s,s:s}", "cmd", "token", "action", "ls");
	if ((code = client_command(req, &r)) == EXIT_OK) {
		printf("%-12s %-6s %-20s %s\n", "ID", "UID", "CREATED", "NAME");
		json_array_foreach(json_object_get(r, "tokens"), i, t) {
			when = json_integer_value(json_object_get(t,
			    "created"));
			strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S",
			    localtime(&when));
			printf("%-12s %-6lld %-20s %s\n",
			    json_string_value(json_object_get(t, "id")),
			    (long long)json_integer_value(json_object_get(t,
			    "uid")), date,
			    json_string_value(json_object_get(t, "name")));
		}
		json_decref(r);
	}
	json_decref(req);
	return (code);
}

static int
cmd_token_revoke(const char *which)
{
	json_t	*req, *r;
	int	 code;

	req = json_pack("{s:s,s:s,s:s}", "cmd", "token", "action", "revoke", "id",
	    which);
	if ((code = client_command(req, &r)) == EXIT_OK)
		json_decref(r);
	json_decref(req);
	return (code);
}

static int
cmd_token_exec(int argc, char **argv)
{
	if (argc < 2)
		cmd_usage(&cmd_token_entry);
	if (strcmp(argv[1], "new") == 0)
		return (cmd_token_new(argc - 1, argv + 1));
	if (strcmp(argv[1], "ls") == 0 && argc == 2)
		return (cmd_token_ls());
	if (strcmp(argv[1], "revoke") == 0 && argc == 3)
		return (cmd_token_revoke(argv[2]));
	cmd_usage(&cmd_token_entry);
}
