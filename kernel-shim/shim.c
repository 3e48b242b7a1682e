/* shim.c: cellblock-shim: prepare a session's process, then exec the runner. */
/*
 * The daemon starts one shim per interpreter with the session channel on
 * a known fd. The shim builds the interpreter's world (working directory,
 * a clean environment, only the channel open) and execs the Python runner.
 * It never sees the endpoint's key: nothing here speaks Jupyter.
 */

#include <sys/types.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocol.h"

struct shim_args {
	int		 channel_fd;
	const char	*session;
	const char	*workdir;
	const char	*runner;
	const char	*python;
};

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: cellblock-shim --channel-fd N --session NAME "
	    "--workdir DIR --runner FILE [--python PATH]\n");
	exit(2);
}

/*
 * An empty environment plus this allowlist: nothing of the daemon's
 * environment (tokens, keys, paths) leaks into a session.
 */
static void
shim_environment(const struct shim_args *a)
{
	char	*ipydir;

	if (clearenv() != 0)
		fatalx("clearenv failed");
	setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
	setenv("LANG", "C.UTF-8", 1);
	setenv("HOME", a->workdir, 1);
	setenv("TERM", "xterm-256color", 1);
	setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline", 1);
	setenv("PYTHONUNBUFFERED", "1", 1);
	setenv("CELLBLOCK_SESSION", a->session, 1);
	xasprintf(&ipydir, "%s/.ipython", a->workdir);
	setenv("IPYTHONDIR", ipydir, 1);
	free(ipydir);
}

static void
shim_parse(int argc, char **argv, struct shim_args *a)
{
	static const struct option opts[] = {
		{ "channel-fd", required_argument, NULL, 'c' },
		{ "session", required_argument, NULL, 's' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "runner", required_argument, NULL, 'r' },
		{ "python", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 }
	};
	int	ch;

	memset(a, 0, sizeof *a);
	a->channel_fd = -1;
	a->python = "/usr/bin/python3";
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			a->channel_fd = atoi(optarg);
			break;
		case 's':
			a->session = optarg;
			break;
		case 'w':
			a->workdir = optarg;
			break;
		case 'r':
			a->runner = optarg;
			break;
		case 'p':
			a->python = optarg;
			break;
		default:
			usage();
		}
	}
	if (a->channel_fd < 3 || a->session == NULL || a->workdir == NULL ||
	    a->runner == NULL)
		usage();
}

int
main(int argc, char **argv)
{
	struct shim_args	 a;
	char			 fdarg[16];
	char			*pargv[10];
	int			 i = 0;

	shim_parse(argc, argv, &a);
	if (chdir(a.workdir) != 0)
		fatal("chdir %s", a.workdir);
	shim_environment(&a);
	close_range(a.channel_fd + 1, ~0U, 0);

	snprintf(fdarg, sizeof fdarg, "%d", a.channel_fd);
	pargv[i++] = (char *)a.python;
	pargv[i++] = "-I";
	pargv[i++] = (char *)a.runner;
	pargv[i++] = "--channel-fd";
	pargv[i++] = fdarg;
	pargv[i++] = "--session";
	pargv[i++] = (char *)a.session;
	pargv[i] = NULL;
	execv(a.python, pargv);
	fatal("exec %s", a.python);
}
