/* cmd-stats.c: `cellblock stats`: the daemon's metrics, as Prometheus text or JSON. */

#include <getopt.h>
#include <stdlib.h>

#include "cli.h"

static int	cmd_stats_exec(int, char **);

const struct cmd_entry cmd_stats_entry = {
	"stats", "[--json]", cmd_stats_exec
};

static int
cmd_stats_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	json_t	*req, *r;
	int	 ch, code, as_json = 0;
	char	*s;

	while ((ch = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (ch != 'j')
			cmd_usage(&cmd_stats_entry);
		as_json = 1;
	}
	if (optind != argc)
		cmd_usage(&cmd_stats_entry);
	req = json_pack("{s:s}", "cmd", "stats");
	if ((code = client_command(req, &r)) == EXIT_OK) {
		if (as_json) {
			s = json_dumps(json_object_get(r, "metrics"),
			    JSON_INDENT(2));
			printf("%s\n", s);
			free(s);
		} else
			fputs(json_string_value(json_object_get(r, "text")),
			    stdout);
		json_decref(r);
	}
	json_decref(req);
	return (code);
}
