/* sandbox-run.c: the whole sandbox sequence of one interpreter, in order. */
/*
 * Shared by cellblock-shim (which then execs the runner) and the zygote's
 * child (which then runs the preloaded runner): both get exactly the same
 * steps.  Two ways in, one sequence:
 *
 *   sandbox_run()         the shim: it unshares the namespaces itself,
 *                         waits on the channel while the daemon writes
 *                         the uid/gid maps and places it in its cgroup,
 *                         then forks pid 1 of the new pid namespace and
 *                         stays outside, relaying signals.
 *   sandbox_run_pid1()    the zygote's child, cloned straight into the
 *                         namespaces: it is pid 1 already, so the same
 *                         handshake and the same pid-1 steps follow with
 *                         no outer process and one fork fewer.
 *
 * Pid 1 builds the world (mounts, hostname, loopback), forks pid 2
 * (identity, capabilities, rlimits, fds, seccomp last), and then execs
 * cellblock-init (kernel-shim/cellblock-init.c), a tiny reaper, so that
 * what stays for the session's life is a few pages, not a copy of the
 * zygote.  sandbox_run() and sandbox_run_pid1() return only in pid 2.  A
 * failed step writes one line to stderr (the daemon logs it) and exits 1.
 */

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sandbox.h"
#include "sandbox-seccomp.h"

#define RUN_HANDSHAKE_WAIT	30000	/* ms for the daemon's go */
#define RUN_ANSWER_MAX		65536
#define RUN_MOVE_MAX		8	/* cgroup hierarchies to move into */

static pid_t	run_child = -1;

static void __attribute__((noreturn, format(printf, 1, 2)))
run_fail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fprintf(stderr, "cellblock-shim: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	fflush(stderr);
	/* _exit: a zygote child must not run the interpreter's exit hooks. */
	_exit(1);
}

static void
run_step(int r, const char *what, char *cause)
{
	if (r != 0)
		run_fail("%s: %s", what, cause ? cause : "failed");
}

/* One frame of docs/CHANNEL.md, written whole (the fd is blocking here). */
static void
run_send(int fd, json_t *msg)
{
	char		*s = json_dumps(msg, JSON_COMPACT);
	size_t		 len = s != NULL ? strlen(s) : 0;
	uint32_t	 be = htobe32(len);

	if (s == NULL || write(fd, &be, 4) != 4 ||
	    write(fd, s, len) != (ssize_t)len)
		run_fail("channel write: %s", strerror(errno));
	free(s);
	json_decref(msg);
}

/*
 * Reads len bytes; descriptors passed with them (SCM_RIGHTS) are added to
 * fds, their count to *nfds (at most RUN_MOVE_MAX; any more are closed).
 */
static int
run_read_full(int fd, void *buf, size_t len, int *fds, int *nfds)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	union {
		struct cmsghdr	hdr;
		char		space[CMSG_SPACE(sizeof(int) * RUN_MOVE_MAX)];
	} cm;
	struct msghdr	 mh;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	ssize_t		 n;
	size_t		 off = 0, i, got;
	int		 d;

	while (off < len) {
		if (poll(&pfd, 1, RUN_HANDSHAKE_WAIT) <= 0)
			return (-1);
		memset(&mh, 0, sizeof mh);
		iov.iov_base = (char *)buf + off;
		iov.iov_len = len - off;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.space;
		mh.msg_controllen = sizeof cm.space;
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0 || (mh.msg_flags & MSG_CTRUNC))
			return (-1);
		for (cmsg = CMSG_FIRSTHDR(&mh); cmsg != NULL;
		    cmsg = CMSG_NXTHDR(&mh, cmsg)) {
			if (cmsg->cmsg_level != SOL_SOCKET ||
			    cmsg->cmsg_type != SCM_RIGHTS)
				continue;
			got = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < got; i++) {
				memcpy(&d, CMSG_DATA(cmsg) + i * sizeof d,
				    sizeof d);
				if (*nfds < RUN_MOVE_MAX)
					fds[(*nfds)++] = d;
				else
					close(d);
			}
		}
		off += n;
	}
	return (0);
}

/* Our threads, from /proc/self/stat (field 20); -1 if unreadable. */
static int
run_threads(void)
{
	char	 buf[1024], *p;
	ssize_t	 n;
	int	 fd, i;

	if ((fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) == -1)
		return (-1);
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return (-1);
	buf[n] = '\0';
	/* After the command name, which may hold spaces and parentheses. */
	if ((p = strrchr(buf, ')')) == NULL)
		return (-1);
	for (i = 2; i < 20 && p != NULL; i++)
		p = strchr(p + 1, ' ');
	return (p != NULL ? atoi(p + 1) : -1);
}

/*
 * Move ourselves into the session's cgroup: "0" to each hierarchy's v1
 * `tasks` descriptor the daemon opened (its credentials, not ours, are
 * what the kernel checks). That moves one thread, the writer, and takes
 * no global lock, so it is the whole process only while it has one
 * thread: checked first. NULL, or why not (the daemon then moves us).
 */
static const char *
run_move_self(const int *fds, int nfds)
{
	static char	why[128];
	int		i, n;

	if ((n = run_threads()) != 1) {
		snprintf(why, sizeof why, "%d threads", n);
		return (why);
	}
	for (i = 0; i < nfds; i++) {
		if (write(fds[i], "0", 1) != 1) {
			snprintf(why, sizeof why, "writing \"0\" to tasks: %s",
			    strerror(errno));
			return (why);
		}
	}
	return (NULL);
}

/* One answer of the daemon to a contain request: how many fds to move. */
static int
run_answer(int fd, int *fds, int *nfds)
{
	uint32_t	 be;
	char		*buf;
	json_t		*m;
	const char	*op;
	int		 move;

	*nfds = 0;
	if (run_read_full(fd, &be, 4, fds, nfds) != 0 ||
	    be32toh(be) > RUN_ANSWER_MAX)
		run_fail("no answer from the daemon to the contain request");
	if ((buf = malloc(be32toh(be) + 1)) == NULL)
		run_fail("out of memory");
	if (run_read_full(fd, buf, be32toh(be), fds, nfds) != 0)
		run_fail("short answer from the daemon");
	m = json_loadb(buf, be32toh(be), 0, NULL);
	op = json_string_value(json_object_get(m, "op"));
	if (op != NULL && strcmp(op, "contain_fail") == 0)
		run_fail("daemon refused containment: %s", json_string_value(
		    json_object_get(m, "error")) ?: "no reason");
	if (op == NULL || strcmp(op, "contain_go") != 0)
		run_fail("daemon's answer to the contain request is not "
		    "contain_go: %s", op ?: "no op");
	move = json_integer_value(json_object_get(m, "move"));
	json_decref(m);
	free(buf);
	if (move != *nfds)
		run_fail("contain_go: %d cgroup descriptors, %d announced",
		    *nfds, move);
	return (move);
}

/*
 * Ask the daemon for our maps and cgroup, and wait for its answer. Given
 * descriptors, we move ourselves into the cgroup now, before anything
 * else runs; if we cannot, we say why and the daemon moves us.
 */
static void
run_handshake(int fd)
{
	const char	*why;
	int		 fds[RUN_MOVE_MAX], nfds, i;

	run_send(fd, json_pack("{s:s}", "op", "contain"));
	if (run_answer(fd, fds, &nfds) == 0)
		return;
	why = run_move_self(fds, nfds);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (why == NULL)
		return;
	run_send(fd, json_pack("{s:s,s:s}", "op", "contain", "fallback", why));
	if (run_answer(fd, fds, &nfds) != 0)
		run_fail("contain_go: descriptors after a fallback");
}

static void __attribute__((noreturn))
run_die(int sig)
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
run_forward(int sig)
{
	if (run_child > 0)
		kill(run_child, sig);
}

/*
 * The outer process stays outside the new pid namespace: it relays
 * signals to pid 1 and exits as the interpreter did. If it dies, pid 1's
 * parent-death signal tears the namespace down.
 */
static void __attribute__((noreturn))
run_wait(pid_t child)
{
	struct sigaction	sa;
	sigset_t		none;
	int			status;

	run_child = child;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = run_forward;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	while (waitpid(child, &status, 0) == -1) {
		if (errno != EINTR)
			run_fail("waitpid: %s", strerror(errno));
	}
	/*
	 * Die as the interpreter died, so the daemon can name the reason: pid
	 * 1 reports a signal death as 128+N, which becomes signal N again.
	 */
	if (WIFSIGNALED(status))
		run_die(WTERMSIG(status));
	if (WEXITSTATUS(status) > 128 && WEXITSTATUS(status) < 128 + NSIG)
		run_die(WEXITSTATUS(status) - 128);
	_exit(WEXITSTATUS(status));
}

/*
 * The wait for pid 1 left to pid 2's caller, at fd: the zygote's Python
 * reads it to EOF before it serves the session's first request, so pid
 * 2's own steps and the runner's attach run while pid 1 execs
 * cellblock-init (docs/ZYGOTE.md, "Pid 1"). Without cellblock-init there
 * is nothing to wait for: an already closed pipe.
 */
static void
run_defer_wait(int fd, int sync)
{
	int	none[2];

	if (sync == -1) {
		if (pipe2(none, O_CLOEXEC) != 0)
			run_fail("pipe: %s", strerror(errno));
		close(none[1]);
		sync = none[0];
	}
	if (sync != fd) {
		if (dup3(sync, fd, O_CLOEXEC) == -1)
			run_fail("dup3: %s", strerror(errno));
		close(sync);
	}
}

/*
 * Pid 2: the interpreter's own steps, seccomp last.  Dumpable again after
 * the change of uid cleared it: exec would do that for the shim's runner,
 * and a zygote child never execs; without it the interpreter's own /proc
 * files would belong to nobody.  Pid 1 is undumpable before pid 2 goes
 * on: the sync pipe closes only once it is (cellblock-init.c).
 */
static void
run_interpreter(const struct sandbox_plan *p, int sync)
{
	char	*cause = NULL, c;

	if (p->init_wait_fd > 2)
		run_defer_wait(p->init_wait_fd, sync);
	else {
		while (sync != -1 && read(sync, &c, 1) == -1 && errno == EINTR)
			;
		if (sync != -1)
			close(sync);
	}
	run_step(sandbox_user_become(p, &cause), "identity", cause);
	run_step(sandbox_caps_drop(&cause), "capabilities", cause);
	run_step(sandbox_rlimits_set(p, &cause), "rlimits", cause);
	run_step(sandbox_proc_hygiene(p, &cause), "hygiene", cause);
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
		run_fail("PR_SET_DUMPABLE: %s", strerror(errno));
	/* The name exec would give it; a zygote child has its parent's. */
	prctl(PR_SET_NAME, "python3");
	run_step(sandbox_seccomp_install(&cause), "seccomp", cause);
}

/*
 * Every fd above stderr but the three given (any may be -1), by ranges:
 * a close(2) per number would be a thousand system calls per start.
 */
static void
run_close_but(int a, int b, int c)
{
	int	keep[3] = { a, b, c }, i, j, t, from = STDERR_FILENO + 1;

	for (i = 0; i < 3; i++) {
		for (j = i + 1; j < 3; j++) {
			if (keep[j] < keep[i]) {
				t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
		}
	}
	for (i = 0; i < 3; i++) {
		if (keep[i] < from)
			continue;
		if (keep[i] > from && close_range(from, keep[i] - 1, 0) != 0)
			run_fail("close_range: %s", strerror(errno));
		from = keep[i] + 1;
	}
	if (close_range(from, ~0U, 0) != 0)
		run_fail("close_range: %s", strerror(errno));
}

/*
 * Pid 1 from here on: cellblock-init, as the inner uid with no
 * capabilities, holding stdio, the sync pipe and the channel. The channel
 * stays open in it on purpose: the daemon reads its EOF as "the
 * incarnation is gone" and kills what is left, so it must not come before
 * pid 1 has exited with pid 2's status (a signal death, 128 + N, would
 * otherwise be reported as the daemon's own SIGKILL).
 */
static void __attribute__((noreturn))
run_exec_init(const struct sandbox_plan *p, int initfd, pid_t child,
    int sync)
{
	char	*cause = NULL, pid[16], fd[16], *argv[4], *envp[1] = { NULL };

	run_step(sandbox_user_become(p, &cause), "identity", cause);
	run_step(sandbox_caps_drop(&cause), "capabilities", cause);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	run_close_but(p->keep_fd, sync, initfd);
	if (fcntl(sync, F_SETFD, 0) != 0 ||
	    (p->keep_fd >= 0 && fcntl(p->keep_fd, F_SETFD, 0) != 0))
		run_fail("fcntl: %s", strerror(errno));
	snprintf(pid, sizeof pid, "%ld", (long)child);
	snprintf(fd, sizeof fd, "%d", sync);
	argv[0] = "cellblock-init";
	argv[1] = pid;
	argv[2] = fd;
	argv[3] = NULL;
	/* initfd is close-on-exec: execveat reads it before closing it. */
	syscall(SYS_execveat, initfd, "", argv, envp, AT_EMPTY_PATH);
	run_fail("exec cellblock-init: %s", strerror(errno));
}

/* Pid 1 of the session's pid namespace: build the world, then reap. */
static void
run_pid1(const struct sandbox_plan *p)
{
	char	*cause = NULL;
	pid_t	 pid;
	int	 code, initfd = -1, sync[2] = { -1, -1 };

	/* getppid() is 0 here (the parent is outside our pid namespace). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Opened while the host's files are still in view. */
	if (p->init != NULL &&
	    (initfd = open(p->init, O_RDONLY | O_CLOEXEC)) == -1)
		run_fail("%s: %s", p->init, strerror(errno));
	run_step(sandbox_mount_setup(p, &cause), "mounts", cause);
	run_step(sandbox_uts_hostname(p, &cause), "hostname", cause);
	run_step(sandbox_net_loopback_up(&cause), "loopback", cause);
	if (initfd != -1 && pipe2(sync, O_CLOEXEC) != 0)
		run_fail("pipe: %s", strerror(errno));
	if ((pid = fork()) == -1)
		run_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (initfd != -1) {
			close(initfd);
			close(sync[1]);
		}
		run_interpreter(p, sync[0]);
		return;
	}
	if (initfd != -1) {
		close(sync[0]);
		run_exec_init(p, initfd, pid, sync[1]);
	}
	/* No cellblock-init given (sandbox-check): this process reaps. */
	run_step(sandbox_user_become(p, &cause), "identity", cause);
	run_step(sandbox_caps_drop(&cause), "capabilities", cause);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	run_step(sandbox_pid_reaper(pid, &code, &cause), "reaper", cause);
	_exit(code);
}

void
sandbox_run(const struct sandbox_plan *p)
{
	char	*cause = NULL;
	pid_t	 pid;

	run_step(sandbox_user_drop_groups(&cause), "groups", cause);
	if (unshare(SANDBOX_NAMESPACES) != 0)
		run_fail("unshare: %s", strerror(errno));
	run_handshake(p->keep_fd);
	/* Now in its cgroup: that cgroup becomes the root of its view. */
	if (unshare(CLONE_NEWCGROUP) != 0)
		run_fail("unshare cgroup: %s", strerror(errno));
	if ((pid = fork()) == -1)
		run_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		run_pid1(p);	/* returns only in pid 2 */
		return;
	}
	run_wait(pid);
}

/*
 * The caller was cloned with SANDBOX_NAMESPACES (and had no groups to
 * drop): it is pid 1 already, and the daemon's child.
 */
void
sandbox_run_pid1(const struct sandbox_plan *p)
{
	run_handshake(p->keep_fd);
	if (unshare(CLONE_NEWCGROUP) != 0)
		run_fail("unshare cgroup: %s", strerror(errno));
	run_pid1(p);		/* returns only in pid 2 */
}

/*
 * An empty environment plus this allowlist: nothing of the daemon's
 * environment (tokens, keys, paths) leaks into a session.
 */
void
sandbox_run_environment(const char *session, const char *home, int threads)
{
	char	n[16];

	if (clearenv() != 0)
		run_fail("clearenv failed");
	snprintf(n, sizeof n, "%d", threads > 0 ? threads : 1);
	setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
	setenv("LANG", "C.UTF-8", 1);
	setenv("HOME", home, 1);
	setenv("TERM", "xterm-256color", 1);
	setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline", 1);
	setenv("MPLCONFIGDIR", "/tmp/.matplotlib", 1);
	setenv("PYTHONUNBUFFERED", "1", 1);
	setenv("CELLBLOCK_SESSION", session, 1);
	/* BLAS pools sized to the session's CPU share, not the host's. */
	setenv("OPENBLAS_NUM_THREADS", n, 1);
	setenv("OMP_NUM_THREADS", n, 1);
	setenv("MKL_NUM_THREADS", n, 1);
}
