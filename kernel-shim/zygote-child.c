/* zygote-child.c: the zygote's C half: clone a session's process, contain it. */
/*
 * Built as bin/cellblock-zygote.so and loaded by cellblock_zygote.py with
 * ctypes.PyDLL, so the GIL stays held and nothing else runs meanwhile.
 *
 * The session's process is cloned with CLONE_PARENT straight into its new
 * namespaces (SANDBOX_NAMESPACES): it is pid 1 of its pid namespace and
 * the daemon's child, so the daemon reaps it, learns how it died, and
 * keeps it even if the zygote dies; the zygote keeps no children at all.
 * It runs sandbox_run_pid1(), forks the interpreter (pid 2) and execs
 * cellblock-init: one copy of the zygote per session, not three.
 *
 * The clone is raw (not fork(3)), so pid 1 has glibc's thread id of the
 * zygote cached until it execs; it runs only this file's code and the
 * sandbox steps, and pid 2 is made with fork(3), which sets everything
 * right again before Python runs.
 */

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
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
#define Z_INIT_WAIT	4	/* in pid 2: EOF once pid 1 is undumpable */

/*
 * What one session needs; the Python side fills it (cellblock_zygote.py,
 * class Request). Legend: C type, field. The struct and the layout that
 * zygote_child_layout() reports are both made from this one list, and the
 * Python side refuses to start unless its Request has exactly that layout.
 */
#define ZYGOTE_REQUEST(F)						\
	F(int,		channel_fd)	/* the runner's channel */	\
	F(int,		err_fd)		/* the daemon's pipe for our stderr */ \
	F(int,		workparent_fd)	/* O_PATH: the daemon's work/ dir */ \
	F(const char *,	workname)	/* the session's dir in it */	\
	F(const char *,	session)					\
	F(const char *,	runner_dir)					\
	F(const char *,	rootfs)		/* NULL: the host's /usr */	\
	F(uint64_t,	tmp)						\
	F(uint64_t,	nofile)						\
	F(uint64_t,	fsize)						\
	F(int,		threads)					\
	F(pid_t,	daemon)		/* our parent-to-be */		\
	F(const char *,	init)		/* cellblock-init, NULL: none */

#define ZYGOTE_MEMBER(type, name)	type name;
struct zygote_request {
	ZYGOTE_REQUEST(ZYGOTE_MEMBER)
};

#define ZYGOTE_FIELD(type, name)	{ #name,			\
	offsetof(struct zygote_request, name),				\
	sizeof(((struct zygote_request *)0)->name) },
static const struct {
	const char	*name;
	size_t		 offset;
	size_t		 size;
} zygote_fields[] = {
	ZYGOTE_REQUEST(ZYGOTE_FIELD)
};

ZYGOTE_EXPORT const char *zygote_child_layout(void);
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

/* Only in the clone, pid 1; returns only in pid 2. */
static void
zygote_child_run(const struct zygote_request *r)
{
	struct sandbox_plan	p;
	char			workdir[4096];

	/*
	 * The daemon is our parent: go with it. getppid() is 0 in a new pid
	 * namespace, so whether it still lives the handshake tells (a dead
	 * daemon's end of the channel is closed).
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		zygote_child_fail("PR_SET_PDEATHSIG");
	/* Named as the shim's processes are, not python3, until it execs. */
	prctl(PR_SET_NAME, "cellblock-shim");
	setsid();
	zygote_child_fds(r);
	/*
	 * The cwd is the work dir's parent, which the zygote entered by fd
	 * for the clone (zygote_child_spawn): the clone's copy of it in its
	 * own mount namespace, reached through /proc/self/cwd.
	 */
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
	p.init_wait_fd = Z_INIT_WAIT;
	p.init = r->init;
	sandbox_run_pid1(&p);
	sandbox_run_environment(r->session, SANDBOX_HOME, r->threads);
}

/*
 * The layout of struct zygote_request as JSON, {"size": N, "fields":
 * [[name, offset, size], ...]} in declaration order, for the Python side
 * to check its ctypes Request against before it sends a single request;
 * with the two constants it must share: the fd the runner's channel is
 * at in the clone, and where the runner's directory shows inside.
 */
const char *
zygote_child_layout(void)
{
	static char	buf[1024];
	size_t		i, len;

	if (buf[0] != '\0')
		return (buf);
	len = snprintf(buf, sizeof buf, "{\"size\":%zu,\"fields\":[",
	    sizeof(struct zygote_request));
	for (i = 0; i < nitems(zygote_fields) && len < sizeof buf; i++) {
		len += snprintf(buf + len, sizeof buf - len,
		    "%s[\"%s\",%zu,%zu]", i == 0 ? "" : ",",
		    zygote_fields[i].name, zygote_fields[i].offset,
		    zygote_fields[i].size);
	}
	if (len < sizeof buf)
		len += snprintf(buf + len, sizeof buf - len, "],"
		    "\"channel_fd\":%d,\"init_wait_fd\":%d,"
		    "\"runner_dir\":\"%s\"}", Z_CHANNEL, Z_INIT_WAIT,
		    SANDBOX_RUNNER_DIR);
	if (len >= sizeof buf) {
		buf[0] = '\0';
		return ("");	/* cannot happen; the Python side refuses "" */
	}
	return (buf);
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
	int	here, saved;

	if (r->workname == NULL || strchr(r->workname, '/') != NULL ||
	    r->workname[0] == '.' || r->workname[0] == '\0' ||
	    r->session == NULL ||
	    r->runner_dir == NULL) {
		errno = EINVAL;
		return (-1);
	}
	/*
	 * The work dir's parent is searchable by us, its own parents need
	 * not be: enter it by fd for the clone, whose new mount namespace
	 * then has its copy as the cwd (a mount of another namespace could
	 * not be bound), and come back.
	 */
	if ((here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (-1);
	if (fchdir(r->workparent_fd) != 0) {
		close(here);
		return (-1);
	}
	pid = syscall(SYS_clone, CLONE_PARENT | SANDBOX_NAMESPACES | SIGCHLD,
	    NULL, NULL, NULL, 0);
	if (pid != 0) {
		saved = errno;
		if (fchdir(here) != 0)
			zygote_child_fail("fchdir back");
		close(here);
		errno = saved;
		return (pid);
	}
	close(here);
	zygote_child_run(r);
	return (0);
}
