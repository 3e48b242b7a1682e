/* shim.c: cellblock-shim: contain a session's process, then exec the runner. */
/*
 * The daemon starts one shim per interpreter with the session channel on
 * a known fd. With --contain the shim runs the sandbox sequence of
 * SANDBOX-NOTES.md (sandbox-run.c) and execs the Python runner in pid 2.
 * With --zygote it starts the zygote instead: a preloaded interpreter,
 * without network and as an unprivileged uid, that forks sessions which
 * then run the same sequence (docs/ZYGOTE.md). The shim never sees the
 * endpoint's key.
 */

#include <sys/prctl.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "sandbox.h"
#include "sandbox-seccomp.h"

struct shim_args {
	int		 channel_fd;
	const char	*session;
	const char	*workdir;
	const char	*runner;
	const char	*python;
	int		 contain;
	const char	*rootfs;
	const char	*egress_dir;	/* bound read-only at /run/cellblock */
	uint64_t	 tmp;
	uint64_t	 nofile;
	uint64_t	 fsize;
	int		 threads;
	const char	*init;		/* cellblock-init, pid 1 execs it */
	int		 print_policy;
	const char	*zygote_lib;	/* --zygote: the zygote's C half */
	uid_t		 zygote_uid;	/* (uid_t)-1: keep ours */
	gid_t		 zygote_gid;
	struct sandbox_bind binds[SANDBOX_BINDS_MAX];	/* --mount-ro */
	size_t		 nbinds;
	uid_t		 mount_owner;	/* whose permissions they need */
	uid_t		 mount_uid;	/* --mount-as: the owner's files show */
	gid_t		 mount_gid;	/* as these (the session's host ids) */
};

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: cellblock-shim --channel-fd N --session NAME "
	    "--workdir DIR --runner FILE [--python PATH]\n"
	    "                      [--contain] [--rootfs DIR] [--tmp BYTES] "
	    "[--nofile N] [--fsize BYTES]\n"
	    "                      [--threads N] [--egress-dir DIR] "
	    "[--init PATH]\n"
	    "       cellblock-shim --zygote LIB --channel-fd N --workdir DIR "
	    "--runner FILE\n"
	    "                      [--python PATH] [--uid UID --gid GID]\n"
	    "       cellblock-shim --print-policy\n");
	exit(2);
}

/* --mount-ro SRC:DST, both absolute (the daemon checked the rest). */
static void
shim_bind(struct shim_args *a, char *arg)
{
	char	*colon = strchr(arg, ':');

	if (a->nbinds == SANDBOX_BINDS_MAX || colon == NULL || arg[0] != '/' ||
	    colon[1] != '/')
		usage();
	*colon = '\0';
	a->binds[a->nbinds].source = arg;
	a->binds[a->nbinds].target = colon + 1;
	a->binds[a->nbinds].fd = -1;
	a->nbinds++;
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
		{ "contain", no_argument, NULL, 'C' },
		{ "rootfs", required_argument, NULL, 'R' },
		{ "egress-dir", required_argument, NULL, 'E' },
		{ "tmp", required_argument, NULL, 't' },
		{ "nofile", required_argument, NULL, 'n' },
		{ "fsize", required_argument, NULL, 'f' },
		{ "threads", required_argument, NULL, 'T' },
		{ "init", required_argument, NULL, 'I' },
		{ "print-policy", no_argument, NULL, 'P' },
		{ "zygote", required_argument, NULL, 'Z' },
		{ "uid", required_argument, NULL, 'U' },
		{ "gid", required_argument, NULL, 'G' },
		{ "mount-ro", required_argument, NULL, 'M' },
		{ "mount-owner", required_argument, NULL, 'O' },
		{ "mount-as", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 }
	};
	int	ch;

	memset(a, 0, sizeof *a);
	a->channel_fd = -1;
	a->python = "/usr/bin/python3";
	a->tmp = 256ULL << 20;
	a->nofile = 1024;
	a->fsize = 1ULL << 30;
	a->threads = 1;
	a->zygote_uid = (uid_t)-1;
	a->zygote_gid = (gid_t)-1;
	a->mount_uid = (uid_t)-1;
	a->mount_gid = (gid_t)-1;
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
		case 'C':
			a->contain = 1;
			break;
		case 'R':
			a->rootfs = optarg;
			break;
		case 'E':
			a->egress_dir = optarg;
			break;
		case 't':
			a->tmp = strtoull(optarg, NULL, 10);
			break;
		case 'n':
			a->nofile = strtoull(optarg, NULL, 10);
			break;
		case 'f':
			a->fsize = strtoull(optarg, NULL, 10);
			break;
		case 'T':
			a->threads = atoi(optarg) > 0 ? atoi(optarg) : 1;
			break;
		case 'I':
			a->init = optarg;
			break;
		case 'P':
			a->print_policy = 1;
			break;
		case 'Z':
			a->zygote_lib = optarg;
			break;
		case 'U':
			a->zygote_uid = strtoul(optarg, NULL, 10);
			break;
		case 'G':
			a->zygote_gid = strtoul(optarg, NULL, 10);
			break;
		case 'M':
			shim_bind(a, optarg);
			break;
		case 'O':
			a->mount_owner = strtoul(optarg, NULL, 10);
			break;
		case 'A':
			if (sscanf(optarg, "%u:%u", &a->mount_uid,
			    &a->mount_gid) != 2)
				usage();
			break;
		default:
			usage();
		}
	}
	if (a->print_policy)
		return;
	if (a->channel_fd < 3 || a->workdir == NULL || a->runner == NULL ||
	    (a->session == NULL && a->zygote_lib == NULL))
		usage();
}

static void
shim_step(int r, const char *what, char *cause)
{
	if (r != 0)
		fatalx("%s: %s", what, cause ? cause : "failed");
}

static void __attribute__((noreturn))
shim_exec_runner(const struct shim_args *a, const char *runner,
    const char *home)
{
	char	 fdarg[16];
	char	*pargv[10];
	int	 i = 0;

	sandbox_run_environment(a->session, home, a->threads);
	snprintf(fdarg, sizeof fdarg, "%d", a->channel_fd);
	pargv[i++] = (char *)a->python;
	pargv[i++] = "-I";
	pargv[i++] = (char *)runner;
	pargv[i++] = "--channel-fd";
	pargv[i++] = fdarg;
	pargv[i++] = "--session";
	pargv[i++] = (char *)a->session;
	pargv[i] = NULL;
	execv(a->python, pargv);
	fatal("exec %s", a->python);
}

static void __attribute__((noreturn))
shim_contain(const struct shim_args *a)
{
	struct sandbox_plan	 p;
	char			*dir, runner[4096], *cause = NULL;

	memset(&p, 0, sizeof p);
	p.hostname = a->session;
	p.rootfs = a->rootfs;
	p.workdir = a->workdir;
	p.egress_dir = a->egress_dir;
	dir = xstrdup(a->runner);
	p.runner_dir = dirname(dir);
	p.tmp_bytes = a->tmp;
	p.inner_uid = SANDBOX_INNER_UID;
	p.inner_gid = SANDBOX_INNER_GID;
	p.nofile = a->nofile;
	p.fsize_bytes = a->fsize;
	p.keep_fd = a->channel_fd;
	p.binds = (struct sandbox_bind *)a->binds;
	p.nbinds = a->nbinds;
	p.bind_uid = a->mount_uid;
	p.bind_gid = a->mount_gid;
	p.init = a->init;
	snprintf(runner, sizeof runner, "%s/%s", SANDBOX_RUNNER_DIR,
	    basename((char *)a->runner));
	/* While still root in the host's namespaces; as the owner. */
	if (sandbox_mount_open_binds(&p, a->mount_owner, &cause) != 0)
		fatalx("%s", cause);
	sandbox_run(&p);	/* returns in pid 2, under seccomp */
	shim_exec_runner(a, runner, SANDBOX_HOME);
}

/*
 * The zygote never runs session code, but it holds every session's first
 * pages: it gets no network (an empty network namespace, while we are
 * still root), no groups and the uid the daemon reserved for it, so it
 * can write nothing that is not its own.  Its sessions still get every
 * step of the sandbox from sandbox_run().  The zygote stays in the host's
 * mount namespace: its children bind the daemon's work dirs, which a
 * mount from another namespace could not give them.
 */
static void __attribute__((noreturn))
shim_zygote(const struct shim_args *a)
{
	char	 fdarg[16], script[4096], *dir;
	char	*pargv[10];
	int	 i = 0, home;

	/*
	 * Its home is its own, but the path to it need not be searchable by
	 * its uid (a state dir under a private directory): open it now, enter
	 * it by fd, and name it through /proc/self/cwd from then on.
	 */
	if ((home = open(a->workdir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		fatal("%s", a->workdir);
	if (getuid() == 0 && unshare(CLONE_NEWNET) != 0)
		fatal("unshare network");
	if (a->zygote_gid != (gid_t)-1 && (setgroups(0, NULL) != 0 ||
	    setresgid(a->zygote_gid, a->zygote_gid, a->zygote_gid) != 0))
		fatal("zygote gid %lu", (u_long)a->zygote_gid);
	if (a->zygote_uid != (uid_t)-1 &&
	    setresuid(a->zygote_uid, a->zygote_uid, a->zygote_uid) != 0)
		fatal("zygote uid %lu", (u_long)a->zygote_uid);
	/* After the uid change, which clears the parent-death signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		fatal("prctl");
	if (fchdir(home) != 0)
		fatal("enter %s", a->workdir);
	close_range(a->channel_fd + 1, ~0U, 0);

	/* One BLAS thread: a process with threads cannot unshare a user ns. */
	sandbox_run_environment("", "/proc/self/cwd", 1);
	setenv("MPLCONFIGDIR", "/proc/self/cwd/matplotlib", 1);
	/* Where matplotlib falls back to if it cannot use that path as named. */
	setenv("TMPDIR", "/proc/self/cwd", 1);
	dir = xstrdup(a->runner);
	snprintf(script, sizeof script, "%s/cellblock_zygote.py", dirname(dir));
	snprintf(fdarg, sizeof fdarg, "%d", a->channel_fd);
	pargv[i++] = (char *)a->python;
	pargv[i++] = "-I";
	pargv[i++] = script;
	pargv[i++] = "--control-fd";
	pargv[i++] = fdarg;
	pargv[i++] = "--lib";
	pargv[i++] = (char *)a->zygote_lib;
	pargv[i] = NULL;
	execv(a->python, pargv);
	fatal("exec %s", a->python);
}

int
main(int argc, char **argv)
{
	struct shim_args	 a;
	char			*cause = NULL;

	shim_parse(argc, argv, &a);
	if (a.print_policy) {
		shim_step(sandbox_seccomp_print(stdout, &cause), "policy",
		    cause);
		return (0);
	}
	if (a.zygote_lib != NULL)
		shim_zygote(&a);
	if (a.contain)
		shim_contain(&a);
	/* A weaker sandbox (allowed by the operator): a clean process only. */
	if (chdir(a.workdir) != 0)
		fatal("chdir %s", a.workdir);
	close_range(a.channel_fd + 1, ~0U, 0);
	shim_exec_runner(&a, a.runner, a.workdir);
}
