/* shim.c: cellblock-shim: contain a session's process, then exec the runner. */
/*
 * The daemon starts one shim per interpreter with the session channel on
 * a known fd. With --contain the shim builds the sandbox in the order of
 * SANDBOX-NOTES.md: unshare the namespaces, wait on the channel while the
 * daemon writes the uid/gid maps and places it in its cgroup, then fork
 * pid 1 of the new pid namespace (mounts, hostname, then a reaper) and
 * pid 2 (identity, capabilities, rlimits, fds, seccomp last), which execs
 * the Python runner. The shim never sees the endpoint's key.
 */

#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "protocol.h"
#include "sandbox.h"
#include "sandbox-seccomp.h"

#define SHIM_HANDSHAKE_WAIT	30000	/* ms for the daemon's go */

struct shim_args {
	int		 channel_fd;
	const char	*session;
	const char	*workdir;
	const char	*runner;
	const char	*python;
	int		 contain;
	const char	*rootfs;
	uint64_t	 tmp;
	uint64_t	 nofile;
	uint64_t	 fsize;
	int		 threads;
	int		 print_policy;
};

static pid_t	shim_child = -1;

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: cellblock-shim --channel-fd N --session NAME "
	    "--workdir DIR --runner FILE [--python PATH]\n"
	    "                      [--contain] [--rootfs DIR] [--tmp BYTES] "
	    "[--nofile N] [--fsize BYTES]\n"
	    "                      [--threads N]\n"
	    "       cellblock-shim --print-policy\n");
	exit(2);
}

/*
 * An empty environment plus this allowlist: nothing of the daemon's
 * environment (tokens, keys, paths) leaks into a session.
 */
static void
shim_environment(const struct shim_args *a, const char *home)
{
	char	threads[16];

	if (clearenv() != 0)
		fatalx("clearenv failed");
	snprintf(threads, sizeof threads, "%d", a->threads);
	setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
	setenv("LANG", "C.UTF-8", 1);
	setenv("HOME", home, 1);
	setenv("TERM", "xterm-256color", 1);
	setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline", 1);
	setenv("MPLCONFIGDIR", "/tmp/.matplotlib", 1);
	setenv("PYTHONUNBUFFERED", "1", 1);
	setenv("CELLBLOCK_SESSION", a->session, 1);
	/* BLAS pools sized to the session's CPU share, not the host's. */
	setenv("OPENBLAS_NUM_THREADS", threads, 1);
	setenv("OMP_NUM_THREADS", threads, 1);
	setenv("MKL_NUM_THREADS", threads, 1);
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
		{ "tmp", required_argument, NULL, 't' },
		{ "nofile", required_argument, NULL, 'n' },
		{ "fsize", required_argument, NULL, 'f' },
		{ "threads", required_argument, NULL, 'T' },
		{ "print-policy", no_argument, NULL, 'P' },
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
		case 'P':
			a->print_policy = 1;
			break;
		default:
			usage();
		}
	}
	if (a->print_policy)
		return;
	if (a->channel_fd < 3 || a->session == NULL || a->workdir == NULL ||
	    a->runner == NULL)
		usage();
}

/* One frame of docs/CHANNEL.md, written whole (the fd is blocking here). */
static void
shim_send(int fd, json_t *msg)
{
	char		*s = json_dumps(msg, JSON_COMPACT);
	uint32_t	 be = htobe32(strlen(s));

	if (write(fd, &be, 4) != 4 ||
	    write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		fatal("channel write");
	free(s);
	json_decref(msg);
}

static int
shim_read_full(int fd, void *buf, size_t len)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	ssize_t		 n;
	size_t		 off = 0;

	while (off < len) {
		if (poll(&pfd, 1, SHIM_HANDSHAKE_WAIT) <= 0)
			return (-1);
		n = read(fd, (char *)buf + off, len - off);
		if (n <= 0)
			return (-1);
		off += n;
	}
	return (0);
}

/* Ask the daemon for our maps and cgroup, and wait for its answer. */
static void
shim_handshake(int fd)
{
	uint32_t	 be;
	char		*buf;
	json_t		*m;
	const char	*op;

	shim_send(fd, json_pack("{s:s}", "op", "contain"));
	if (shim_read_full(fd, &be, 4) != 0 || be32toh(be) > 65536)
		fatalx("no answer from the daemon to the contain request");
	buf = xmalloc(be32toh(be) + 1);
	if (shim_read_full(fd, buf, be32toh(be)) != 0)
		fatalx("short answer from the daemon");
	m = json_loadb(buf, be32toh(be), 0, NULL);
	op = json_string_value(json_object_get(m, "op"));
	if (op == NULL || strcmp(op, "contain_go") != 0)
		fatalx("daemon refused containment: %s", json_string_value(
		    json_object_get(m, "error")) ?: "no reason");
	json_decref(m);
	free(buf);
}

static void __attribute__((noreturn))
shim_die(int sig)
{
	struct sigaction	sa;
	sigset_t		set;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigaction(sig, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	prctl(PR_SET_DUMPABLE, 0);	/* no core file */
	kill(getpid(), sig);
	_exit(128 + sig);
}

static void
shim_forward(int sig)
{
	if (shim_child > 0)
		kill(shim_child, sig);
}

/*
 * The shim itself stays outside the new pid namespace: it relays signals
 * to pid 1 and exits as the interpreter did. If it dies, pid 1's
 * parent-death signal tears the namespace down.
 */
static void __attribute__((noreturn))
shim_wait(pid_t child)
{
	struct sigaction	sa;
	int			status;

	shim_child = child;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = shim_forward;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	while (waitpid(child, &status, 0) == -1) {
		if (errno != EINTR)
			fatal("waitpid");
	}
	/*
	 * Die as the interpreter died, so the daemon can name the reason: pid
	 * 1 reports a signal death as 128+N, which becomes signal N again.
	 */
	if (WIFSIGNALED(status))
		shim_die(WTERMSIG(status));
	if (WEXITSTATUS(status) > 128 && WEXITSTATUS(status) < 128 + NSIG)
		shim_die(WEXITSTATUS(status) - 128);
	exit(WEXITSTATUS(status));
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

	shim_environment(a, home);
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

/* Pid 2: the interpreter's own steps, seccomp last, then the runner. */
static void __attribute__((noreturn))
shim_interpreter(const struct shim_args *a, const struct sandbox_plan *p)
{
	char	*cause = NULL, runner[4096];

	shim_step(sandbox_user_become(p, &cause), "identity", cause);
	shim_step(sandbox_proc_drop_caps(&cause), "capabilities", cause);
	shim_step(sandbox_proc_rlimits(p, &cause), "rlimits", cause);
	shim_step(sandbox_proc_hygiene(p, &cause), "hygiene", cause);
	snprintf(runner, sizeof runner, "%s/%s", SANDBOX_RUNNER_DIR,
	    basename((char *)a->runner));
	/* The environment goes before seccomp: nothing after needs more. */
	shim_step(sandbox_seccomp_install(&cause), "seccomp", cause);
	shim_exec_runner(a, runner, SANDBOX_HOME);
}

/* Pid 1 of the session's pid namespace: build the world, then reap. */
static void __attribute__((noreturn))
shim_pid1(const struct shim_args *a, const struct sandbox_plan *p)
{
	char	*cause = NULL;
	pid_t	 pid;
	int	 code;

	/* getppid() is 0 here (the parent is outside our pid namespace). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	shim_step(sandbox_mount_setup(p, &cause), "mounts", cause);
	shim_step(sandbox_proc_hostname(p, &cause), "hostname", cause);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0)
		shim_interpreter(a, p);
	shim_step(sandbox_user_become(p, &cause), "identity", cause);
	shim_step(sandbox_proc_drop_caps(&cause), "capabilities", cause);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	shim_step(sandbox_proc_reaper(pid, &code, &cause), "reaper", cause);
	_exit(code);
}

static void __attribute__((noreturn))
shim_contain(const struct shim_args *a)
{
	struct sandbox_plan	 p;
	char			*cause = NULL, *dir;
	pid_t			 pid;

	memset(&p, 0, sizeof p);
	p.hostname = a->session;
	p.rootfs = a->rootfs;
	p.workdir = a->workdir;
	dir = xstrdup(a->runner);
	p.runner_dir = dirname(dir);
	p.tmp_bytes = a->tmp;
	p.inner_uid = 1000;
	p.inner_gid = 1000;
	p.nofile = a->nofile;
	p.fsize_bytes = a->fsize;
	p.keep_fd = a->channel_fd;

	shim_step(sandbox_user_drop_groups(&cause), "groups", cause);
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
	    CLONE_NEWIPC | CLONE_NEWUTS) != 0)
		fatal("unshare");
	shim_handshake(a->channel_fd);
	/* Now in its cgroup: that cgroup becomes the root of its view. */
	if (unshare(CLONE_NEWCGROUP) != 0)
		fatal("unshare cgroup");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0)
		shim_pid1(a, &p);
	shim_wait(pid);
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
	if (a.contain)
		shim_contain(&a);
	/* A weaker sandbox (allowed by the operator): a clean process only. */
	if (chdir(a.workdir) != 0)
		fatal("chdir %s", a.workdir);
	close_range(a.channel_fd + 1, ~0U, 0);
	shim_exec_runner(&a, a.runner, a.workdir);
}
