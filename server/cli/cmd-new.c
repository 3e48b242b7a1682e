/* cmd-new.c: `cellblock new`: create a session, print its connection file. */

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int	cmd_new_exec(int, char **);

const struct cmd_entry cmd_new_entry = {
	"new", "[--name NAME] [--memory SIZE] [--cpus N] [--pids N] "
	"[--tmp SIZE] [--exec-timeout SECONDS] [--idle-timeout SECONDS] "
	"[--allow-net DEST[,DEST...]] [--mount-ro SRC:DST ...] "
	"[--env NAME=VALUE ...]",
	cmd_new_exec
};

/*
 * --mount-ro SRC:DST: SRC made absolute here (the daemon resolves
 * nothing relative to the caller); the daemon checks the rest as the
 * caller (docs/AGENTS.md).
 */
static int
cmd_new_mount(json_t *mounts, const char *arg)
{
	const char	*colon = strrchr(arg, ':');
	char		*src, abs[PATH_MAX];

	if (colon == NULL || colon == arg || colon[1] == '\0')
		return (-1);
	src = xstrndup(arg, colon - arg);
	if (realpath(src, abs) == NULL) {
		fprintf(stderr, "cellblock: %s: cannot resolve it\n", src);
		free(src);
		exit(EXIT_USAGE);
	}
	free(src);
	json_array_append_new(mounts, json_pack("{s:s,s:s}", "source", abs,
	    "target", colon + 1));
	return (0);
}

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
		{ "mount-ro", required_argument, NULL, 'm' },
		{ "allow-net", required_argument, NULL, 0 },
		{ "env", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 }
	};
	json_t	*req, *r, *mounts = NULL, *env = NULL;
	char	*eq;
	int	 ch, code, idx;

	req = json_pack("{s:s}", "cmd", "new");
	while ((ch = getopt_long(argc, argv, "", opts, &idx)) != -1) {
		if (ch == 'm') {
			if (mounts == NULL)
				mounts = json_array();
			if (cmd_new_mount(mounts, optarg) != 0)
				cmd_usage(&cmd_new_entry);
			continue;
		}
		if (ch == 'e') {
			/* The daemon checks names and bounds (factory.c). */
			if ((eq = strchr(optarg, '=')) == NULL || eq == optarg)
				cmd_usage(&cmd_new_entry);
			if (env == NULL)
				env = json_object();
			*eq = '\0';
			if (json_object_set_new(env, optarg,
			    client_arg("--env", eq + 1)) != 0) {
				fprintf(stderr, "cellblock: --env %s: not "
				    "UTF-8\n", optarg);
				exit(EXIT_USAGE);
			}
			continue;
		}
		if (ch != 0)
			cmd_usage(&cmd_new_entry);
		json_object_set_new(req, opts[idx].name,
		    client_arg(opts[idx].name, optarg));
	}
	if (mounts != NULL)
		json_object_set_new(req, "mounts", mounts);
	if (env != NULL)
		json_object_set_new(req, "env", env);
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
