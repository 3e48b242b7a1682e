/* cmd-kernelspec.c: `cellblock kernelspec install`: the "cellblock" kernel. */

#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int	cmd_kernelspec_exec(int, char **);

const struct cmd_entry cmd_kernelspec_entry = {
	"kernelspec", "install [--user | --prefix DIR]", cmd_kernelspec_exec
};

/* mkdir -p, as Jupyter's data directories may not exist yet. */
static int
cmd_kernelspec_mkdirs(const char *path)
{
	char	*p = xstrdup(path), *slash;
	int	 r = 0;

	for (slash = p + 1; r == 0; slash++) {
		slash = strchr(slash, '/');
		if (slash != NULL)
			*slash = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			r = -1;
		if (slash == NULL)
			break;
		*slash = '/';
	}
	free(p);
	return (r);
}

static char *
cmd_kernelspec_dir(const char *prefix, int user)
{
	const char	*home = getenv("HOME"), *xdg = getenv("XDG_DATA_HOME");
	char		*dir;

	if (prefix != NULL)
		xasprintf(&dir, "%s/share/jupyter/kernels/cellblock", prefix);
	else if (user && xdg != NULL && *xdg == '/')
		xasprintf(&dir, "%s/jupyter/kernels/cellblock", xdg);
	else if (user)
		xasprintf(&dir, "%s/.local/share/jupyter/kernels/cellblock",
		    home ? home : "/");
	else
		dir = xstrdup("/usr/local/share/jupyter/kernels/cellblock");
	return (dir);
}

/*
 * The argv runs this very binary; a state directory chosen explicitly is
 * baked in, so the notebook reaches the same daemon as this shell.
 */
static json_t *
cmd_kernelspec_json(void)
{
	char	 exe[4096];
	ssize_t	 n;
	json_t	*argv;

	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = '\0';
	argv = json_pack("[s]", exe);
	if (getenv("CELLBLOCK_STATE_DIR") != NULL || client_state_dir_set()) {
		json_array_append_new(argv, json_string("--state-dir"));
		json_array_append_new(argv, json_string(client_state_dir()));
	}
	json_array_append_new(argv, json_string("attach"));
	json_array_append_new(argv, json_string("{connection_file}"));
	return (json_pack("{s:o,s:s,s:s,s:s,s:{s:b}}", "argv", argv,
	    "display_name", CELLBLOCK_DISPLAY_NAME, "language", "python",
	    "interrupt_mode", "message", "metadata", "debugger", 0));
}

static int
cmd_kernelspec_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", no_argument, NULL, 'u' },
		{ "prefix", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*prefix = NULL;
	char		*dir, *file;
	int		 ch, user = 0;
	json_t		*spec;

	if (argc < 2 || strcmp(argv[1], "install") != 0)
		cmd_usage(&cmd_kernelspec_entry);
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'u')
			user = 1;
		else if (ch == 'p')
			prefix = optarg;
		else
			cmd_usage(&cmd_kernelspec_entry);
	}
	if (optind != argc || (user && prefix != NULL))
		cmd_usage(&cmd_kernelspec_entry);
	dir = cmd_kernelspec_dir(prefix, user);
	xasprintf(&file, "%s/kernel.json", dir);
	spec = cmd_kernelspec_json();
	if (cmd_kernelspec_mkdirs(dir) != 0 ||
	    json_dump_file(spec, file, JSON_INDENT(2)) != 0) {
		fprintf(stderr, "cellblock: cannot write %s: %s\n", file,
		    strerror(errno));
		return (EXIT_FAILED);
	}
	printf("%s\n", dir);
	json_decref(spec);
	free(file);
	free(dir);
	return (EXIT_OK);
}
