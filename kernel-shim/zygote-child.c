/* zygote-child.c: the zygote's C half: clone a session's process, contain it. */
/*
 * Built as bin/cellblock-zygote.so and loaded by cellblock_zygote.py with
 * ctypes.PyDLL, so the GIL stays held and nothing else runs meanwhile.
 *
 * The session's outer process is cloned with CLONE_PARENT: its parent is
 * the daemon, exactly as for a shim the daemon fork+execs, so the daemon
 * reaps it, learns how it died, and keeps it even if the zygote dies.
 * The zygote keeps no children at all.
 *
 * The clone is raw (not fork(3)), so the outer process has glibc's
 * thread id of the zygote cached.  It runs only this file's code and
 * sandbox_run(), which creates pid 1 and pid 2 with fork(3): they, and the
 * interpreter in pid 2, have everything right again.
 */

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"
#include "sandbox-seccomp.h"

#define ZYGOTE_EXPORT	__attribute__((visibility("default")))

/* The fds of the outer process, by number (the runner's channel is 3). */
enum { Z_STDIN, Z_STDOUT, Z_STDERR, Z_CHANNEL, Z_WORKPARENT, Z_NFDS };

/* What one session needs; the Python side fills it (keep in step). */
struct zygote_request {
	int		 channel_fd;
	int		 err_fd;	/* the daemon's pipe for our stderr */
	int		 workparent_fd;	/* O_PATH: the daemon's work/ dir */
	const char	*workname;	/* the session's dir in it */
	const char	*session;
	const char	*runner_dir;
	const char	*rootfs;	/* NULL: the host's /usr */
	uint64_t	 tmp;
	uint64_t	 nofile;
	uint64_t	 fsize;
	int		 threads;
	pid_t		 daemon;	/* our parent-to-be */
};

ZYGOTE_EXPORT int	zygote_child_prepare(void);
ZYGOTE_EXPORT pid_t	zygote_child_spawn(const struct zygote_request *);

static void __attribute__((noreturn))
zygote_child_fail(const char *what)
{
	dprintf(STDERR_FILENO, "cellblock-zygote: %s: %s\n", what,
	    strerror(errno));
	_exit(1);
}

/*
 * Put the request's fds at fixed numbers and close everything else of
 * the zygote's (its control socket above all).  Moved high first, so a
 * source can never be overwritten by an earlier target.
 */
static void
zygote_child_fds(const struct zygote_request *r)
{
	int	src[Z_NFDS], fd, i;

	if ((src[Z_STDIN] = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		zygote_child_fail("/dev/null");
	src[Z_STDOUT] = src[Z_STDIN];
	src[Z_STDERR] = r->err_fd;
	src[Z_CHANNEL] = r->channel_fd;
	src[Z_WORKPARENT] = r->workparent_fd;
	for (i = 0; i < Z_NFDS; i++) {
		if ((fd = fcntl(src[i], F_DUPFD_CLOEXEC, 64)) == -1)
			zygote_child_fail("dup");
		src[i] = fd;
	}
	for (i = 0; i < Z_NFDS; i++) {
		if (dup2(src[i], i) == -1)
			zygote_child_fail("dup2");
	}
	if (close_range(Z_NFDS, ~0U, 0) != 0)
		zygote_child_fail("close_range");
}

/* Only in the outer process; returns only in pid 2. */
static void
zygote_child_run(const struct zygote_request *r)
{
	struct sandbox_plan	p;
	char			workdir[4096];

	/* The daemon is our parent: go with it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		zygote_child_fail("PR_SET_PDEATHSIG");
	if (getppid() != r->daemon)
		_exit(1);
	/* Named as the shim's processes are (pid 1 inherits it), not python3. */
	prctl(PR_SET_NAME, "cellblock-shim");
	setsid();
	zygote_child_fds(r);
	/*
	 * The work dir's parent is searchable by us, its own parents need
	 * not be: enter it by fd, and once the mount namespace is unshared
	 * the cwd is that namespace's copy, reached through /proc/self/cwd.
	 */
	if (fchdir(Z_WORKPARENT) != 0)
		zygote_child_fail("fchdir work dir");
	close(Z_WORKPARENT);
	snprintf(workdir, sizeof workdir, "/proc/self/cwd/%s", r->workname);

	memset(&p, 0, sizeof p);
	p.hostname = r->session;
	p.rootfs = r->rootfs;
	p.workdir = workdir;
	p.runner_dir = r->runner_dir;
	p.tmp_bytes = r->tmp;
	p.inner_uid = SANDBOX_INNER_UID;
	p.inner_gid = SANDBOX_INNER_GID;
	p.nofile = r->nofile;
	p.fsize_bytes = r->fsize;
	p.keep_fd = Z_CHANNEL;
	sandbox_run(&p);
	sandbox_run_environment(r->session, SANDBOX_HOME, r->threads);
}

/* Once, in the zygote: what every child would otherwise redo. */
int
zygote_child_prepare(void)
{
	char	*cause = NULL;

	if (sandbox_seccomp_prepare(&cause) != 0) {
		fprintf(stderr, "cellblock-zygote: seccomp: %s\n",
		    cause ? cause : "failed");
		free(cause);
		return (-1);
	}
	return (0);
}

/*
 * The parent (the zygote) gets the outer process's pid, or -1; pid 2 gets
 * 0 and goes on in Python, contained.  The workname must be one path
 * component: the daemon chose it, but we are not the daemon.
 */
pid_t
zygote_child_spawn(const struct zygote_request *r)
{
	pid_t	pid;

	if (r->workname == NULL || strchr(r->workname, '/') != NULL ||
	    r->workname[0] == '.' || r->workname[0] == '\0' ||
	    r->session == NULL ||
	    r->runner_dir == NULL) {
		errno = EINVAL;
		return (-1);
	}
	pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
	if (pid != 0)
		return (pid);
	zygote_child_run(r);
	return (0);
}
