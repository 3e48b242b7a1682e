/* seccomp-check.c: test the seccomp policy with syscall probes and Python. */

/*
 * Usage: seccomp-check [--find-missing]
 *
 * Each expectation row runs bin/try-syscall ATTEMPT in a child that installs
 * the filter first, and once more unfiltered to show what the kernel alone
 * says.  Then: a thread started before the filter must be filtered too, the
 * policy must print, and each workload must run /usr/bin/python3 under the
 * filter and print OK.  One line per check, then "N passed, N failed"; exit
 * 1 if anything failed.  Runs as root or not.
 *
 * The expectations are written here by hand from the rules in
 * SANDBOX-NOTES.md, not read from the module's table: a test that reads the
 * table it checks cannot fail.
 *
 * --find-missing runs the workloads under sandbox_seccomp_install_debug():
 * every syscall the table does not cover is reported here through a seccomp
 * listener and then allowed to continue, so one run lists everything a
 * workload lacks.  Nothing else can switch that mode on.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox-seccomp.h"

#define PYTHON		"/usr/bin/python3"	/* Debian's, with numpy & co */
#define KILLED		(-1)	/* expectation: killed by SIGSYS */
#define SETUP_FAILED	250	/* child exit: filter or exec failed */
#define ATTEMPT_SECONDS	10
#define WORKLOAD_SECONDS 300
#define MAX_NR		1024

struct expectation {
	const char	*attempt;	/* a bin/try-syscall name */
	int		 expect;	/* errno, 0 for success, or KILLED */
};

/* What the policy must do; the legend is in the struct above. */
static const struct expectation expectations[] = {
	/* Allowed, as such or after an argument check. */
	{ "getpid", 0 },
	{ "fork", 0 },
	{ "clone", 0 },
	{ "clone-highbit", 0 },
	{ "socket-unix", 0 },
	{ "socket-inet", 0 },
	{ "socket-inet6", 0 },
	{ "socketpair-unix", EFAULT },
	{ "ioctl-tcgets", EBADF },
	{ "ioctl-tcgets-highbit", EBADF },
	{ "ioctl-fionread", EBADF },
	{ "prctl-get-name", EFAULT },
	{ "prctl-capbset-read", 0 },
	{ "prlimit-get", EFAULT },
	{ "personality-query", 0 },
	{ "personality-linux", 0 },

	/* Refused by an argument check. */
	{ "clone-newns", EPERM },
	{ "clone-newuser", EPERM },
	{ "clone-newpid", EPERM },
	{ "clone-newnet", EPERM },
	{ "clone-newcgroup", EPERM },
	{ "clone3", ENOSYS },
	{ "socket-unix-highbit", EAFNOSUPPORT },
	{ "socket-inet-highbit", EAFNOSUPPORT },
	{ "socket-unspec", EAFNOSUPPORT },
	{ "socket-ax25", EAFNOSUPPORT },
	{ "socket-bridge", EAFNOSUPPORT },
	{ "socket-x25", EAFNOSUPPORT },
	{ "socket-key", EAFNOSUPPORT },
	{ "socket-netlink", EAFNOSUPPORT },
	{ "socket-packet", EAFNOSUPPORT },
	{ "socketpair-inet", EAFNOSUPPORT },
	{ "tiocsti", EPERM },
	{ "tiocsti-highbit", EPERM },
	{ "tioclinux", EPERM },
	{ "tioclinux-highbit", EPERM },
	{ "prctl-set-dumpable", EPERM },
	{ "prlimit-set", EPERM },
	{ "setrlimit", EPERM },

	/* Not listed: the default action. */
	{ "ioctl-tiocgptn", ENOSYS },
	{ "ioctl-tiocsetd", ENOSYS },
	{ "prctl-set-mm", ENOSYS },
	{ "prctl-set-child-subreaper", ENOSYS },
	{ "personality", ENOSYS },
	{ "fanotify_init", ENOSYS },

	/* Other ABIs kill the process. */
	{ "x32-getpid", KILLED },
	{ "i386-getpid", KILLED },

	/* Denied outright. */
	{ "ptrace", EPERM },
	{ "process_vm_readv", EPERM },
	{ "process_vm_writev", EPERM },
	{ "kcmp", EPERM },
	{ "pidfd_getfd", EPERM },
	{ "keyctl", EPERM },
	{ "add_key", EPERM },
	{ "request_key", EPERM },
	{ "bpf", EPERM },
	{ "perf_event_open", EPERM },
	{ "userfaultfd", EPERM },
	{ "io_uring_setup", EPERM },
	{ "io_uring_enter", EPERM },
	{ "io_uring_register", EPERM },
	{ "mount", EPERM },
	{ "umount2", EPERM },
	{ "pivot_root", EPERM },
	{ "chroot", EPERM },
	{ "unshare-user", EPERM },
	{ "unshare-ns", EPERM },
	{ "setns", EPERM },
	{ "fsopen", EPERM },
	{ "fsmount", EPERM },
	{ "fsconfig", EPERM },
	{ "fspick", EPERM },
	{ "open_tree", EPERM },
	{ "move_mount", EPERM },
	{ "mount_setattr", EPERM },
	{ "kexec_load", EPERM },
	{ "kexec_file_load", EPERM },
	{ "init_module", EPERM },
	{ "finit_module", EPERM },
	{ "delete_module", EPERM },
	{ "open_by_handle_at", EPERM },
	{ "name_to_handle_at", EPERM },
	{ "swapon", EPERM },
	{ "swapoff", EPERM },
	{ "reboot", EPERM },
	{ "syslog", EPERM },
	{ "acct", EPERM },
	{ "quotactl", EPERM },
	{ "iopl", EPERM },
	{ "ioperm", EPERM },
	{ "modify_ldt", EPERM },
	{ "sethostname", EPERM },
	{ "setdomainname", EPERM },
	{ "settimeofday", EPERM },
	{ "clock_settime", EPERM },
	{ "adjtimex", EPERM },
	{ "clock_adjtime", EPERM },
	{ "mbind", EPERM },
	{ "set_mempolicy", EPERM },
	{ "migrate_pages", EPERM },
	{ "move_pages", EPERM },
	{ "sched_setattr", EPERM },
	{ "sched_setscheduler", EPERM },
	{ "vmsplice", EPERM },
	{ "splice", EPERM },
	{ "tee", EPERM },
	{ "memfd_secret", EPERM },
	{ "execveat", EPERM },
	{ "shmget", EPERM },
	{ "shmat", EPERM },
	{ "msgget", EPERM },
	{ "semget", EPERM },
	{ "semop", EPERM },
};

/*
 * What a session does: the data stack, processes, threads.  The fork Pool
 * maps a __main__ function (its workers are forks); the forkserver Pool
 * maps a builtin, since with -c a new process cannot import __main__.
 */
static const char workload_data[] =
"import io, os, shutil, tempfile, threading, subprocess, platform\n"
"import sqlite3, multiprocessing\n"
"import numpy as np\n"
"import pandas as pd\n"
"import matplotlib\n"
"matplotlib.use('Agg')\n"
"import matplotlib.pyplot as plt\n"
"def square(x):\n"
"    return x * x\n"
"a = np.random.default_rng(1).standard_normal((300, 300))\n"
"assert np.linalg.eigvalsh(a @ a.T).min() > -1e-9\n"
"df = pd.DataFrame({'k': np.arange(1000) % 7, 'v': np.arange(1000.0)})\n"
"assert df.groupby('k').v.sum().sum() == 499500.0\n"
"fig, ax = plt.subplots()\n"
"df.groupby('k').v.mean().plot.bar(ax=ax)\n"
"buf = io.BytesIO()\n"
"fig.savefig(buf, format='png')\n"
"assert buf.getvalue()[:8] == b'\\x89PNG\\r\\n\\x1a\\n'\n"
"tmp = tempfile.mkdtemp()\n"
"fig.savefig(os.path.join(tmp, 'plot.png'))\n"
"shutil.copy2(os.path.join(tmp, 'plot.png'), os.path.join(tmp, 'copy.png'))\n"
"df.to_csv(os.path.join(tmp, 'df.csv'))\n"
"assert len(pd.read_csv(os.path.join(tmp, 'df.csv'))) == 1000\n"
"np.save(os.path.join(tmp, 'a.npy'), a)\n"
"m = np.memmap(os.path.join(tmp, 'm.dat'), dtype='f8', mode='w+', shape=(1000,))\n"
"m[:] = 1.0\n"
"m.flush()\n"
"del m\n"
"assert np.load(os.path.join(tmp, 'a.npy'), mmap_mode='r').shape == (300, 300)\n"
"disk = sqlite3.connect(os.path.join(tmp, 'disk.db'))\n"
"disk.execute('pragma journal_mode=wal')\n"
"disk.execute('create table t (a)')\n"
"with disk:\n"
"    disk.executemany('insert into t values (?)', [(i,) for i in range(100)])\n"
"assert disk.execute('select count(*) from t').fetchone()[0] == 100\n"
"disk.close()\n"
"os.replace(os.path.join(tmp, 'copy.png'), os.path.join(tmp, 'moved.png'))\n"
"shutil.rmtree(tmp)\n"
"db = sqlite3.connect(':memory:')\n"
"db.execute('create table t (a integer, b text)')\n"
"db.executemany('insert into t values (?, ?)',\n"
"               [(i, str(i)) for i in range(100)])\n"
"assert db.execute('select sum(a) from t').fetchone()[0] == 4950\n"
"with multiprocessing.Pool(2) as pool:\n"
"    assert pool.map(square, range(10)) == [x * x for x in range(10)]\n"
"with multiprocessing.get_context('forkserver').Pool(2) as pool:\n"
"    assert pool.map(abs, [-1, -2]) == [1, 2]\n"
"r = subprocess.run(['echo', 'x'], capture_output=True, check=True)\n"
"assert r.stdout == b'x\\n'\n"
"r = subprocess.run('echo a | cat', shell=True, capture_output=True)\n"
"assert r.stdout == b'a\\n'\n"
"assert platform.processor() != None\n"
"out = []\n"
"t = threading.Thread(target=lambda: out.append(np.ones(1000).sum()))\n"
"t.start()\n"
"t.join()\n"
"assert out == [1000.0]\n"
"print('OK')\n";

/*
 * What the runner does: IPython's shell with "!cmd" through system_raw, as
 * kernel-shim/runner/cellblock_shell.py sets it (the default needs a pty),
 * top-level await, line and cell magics, dill.
 */
static const char workload_ipython[] =
"import dill\n"
"from traitlets.config import Config\n"
"from IPython.core.interactiveshell import InteractiveShell\n"
"InteractiveShell.system = InteractiveShell.system_raw\n"
"c = Config()\n"
"c.HistoryManager.hist_file = ':memory:'\n"
"shell = InteractiveShell.instance(config=c)\n"
"cells = ['import numpy as np\\nx = np.arange(10)', 'y = int(x.sum())\\ny',\n"
"         'import asyncio\\nawait asyncio.sleep(0)',\n"
"         '%timeit -n1 -r1 sum(range(10))', '!echo shell',\n"
"         'files = !ls / | head -1', '%%bash\\necho bash']\n"
"for cell in cells:\n"
"    r = shell.run_cell(cell)\n"
"    assert r.success, (cell, r.error_before_exec, r.error_in_exec)\n"
"assert shell.user_ns['y'] == 45\n"
"assert len(shell.user_ns['files']) == 1\n"
"assert dill.loads(dill.dumps(shell.user_ns['x'])).sum() == 45\n"
"print('OK')\n";

struct workload {
	const char	*name;
	const char	*code;
	const char	*needs;		/* modules; skipped if absent */
};

static const struct workload workloads[] = {
	{ "workload-data-stack", workload_data,
	    "numpy, pandas, matplotlib" },
	{ "workload-ipython", workload_ipython, "IPython, dill" },
};

/* How a child ended. */
struct outcome {
	int	 signal;	/* terminating signal, or 0 */
	int	 status;	/* exit status if not signalled */
};

/*
 * Syscalls the debug filter reported, by number, with the distinct values
 * of the argument the policy would test: the request for ioctl, the first
 * argument otherwise (prctl option, socket family, clone flags, ...).
 */
#define MAX_KEYS	8
struct missing {
	unsigned long	 count[MAX_NR];
	uint64_t	 keys[MAX_NR][MAX_KEYS];
	int		 nkeys[MAX_NR];
};

enum filter_mode {
	FILTER_NONE,
	FILTER_POLICY,
	FILTER_DEBUG
};

static char	 try_path[PATH_MAX];
static int	 passed;
static int	 failed;

static void	 check_attempt(const struct expectation *);
static void	 check_thread(void);
static void	*check_thread_main(void *);
static void	 check_print(void);
static void	 check_workload(const struct workload *, enum filter_mode);
static int	 run_attempt(const char *, enum filter_mode, struct outcome *);
static int	 run_python(const char *, enum filter_mode, const char *,
		     struct outcome *, struct missing *);
static void	 child_filter(enum filter_mode, int);
static int	 fd_send(int, int);
static int	 fd_receive(int);
static void	 supervise(int, pid_t, struct outcome *, struct missing *);
static void	 missing_add(struct missing *, const struct seccomp_data *);
static void	 missing_print(const struct missing *);
static void	 outcome_set(struct outcome *, int);
static const char *outcome_text(const struct outcome *, char *, size_t);
static const char *expect_text(int, char *, size_t);
static int	 outcome_matches(const struct outcome *, int);
static int	 remove_entry(const char *, const struct stat *, int,
		     struct FTW *);
static void	 report(int, const char *, ...)
		     __attribute__((format(printf, 2, 3)));
static void	 print_tail(const char *);
static int	 printed_ok(const char *);
static int	 find_try_syscall(void);

static void
report(int ok, const char *fmt, ...)
{
	va_list	 ap;

	if (ok)
		passed++;
	else
		failed++;
	printf("%s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static const char *
expect_text(int expect, char *buf, size_t len)
{
	const char	*e;

	if (expect == KILLED)
		return ("killed by SIGSYS");
	if (expect == 0)
		return ("ok");
	if ((e = strerrorname_np(expect)) == NULL)
		e = "?";
	snprintf(buf, len, "%s", e);
	return (buf);
}

static void
outcome_set(struct outcome *o, int status)
{
	o->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	o->status = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

static const char *
outcome_text(const struct outcome *o, char *buf, size_t len)
{
	if (o->signal != 0) {
		snprintf(buf, len, "killed by SIG%s", sigabbrev_np(o->signal));
		return (buf);
	}
	if (o->status == SETUP_FAILED)
		return ("setup failed");
	if (o->status == 255)
		return ("try-syscall usage error");
	return (expect_text(o->status, buf, len));
}

static int
outcome_matches(const struct outcome *o, int expect)
{
	if (expect == KILLED)
		return (o->signal == SIGSYS);
	return (o->signal == 0 && o->status == expect);
}

/* Install the filter a child runs under; any failure ends the child. */
static void
child_filter(enum filter_mode mode, int notify_sock)
{
	char	*cause;
	int	 fd;

	switch (mode) {
	case FILTER_NONE:
		return;
	case FILTER_POLICY:
		if (sandbox_seccomp_install(&cause) != 0)
			break;
		return;
	case FILTER_DEBUG:
		if (sandbox_seccomp_install_debug(&fd, &cause) != 0)
			break;
		/* Hand the listener to the parent, and keep no copy. */
		if (fd_send(notify_sock, fd) != 0)
			_exit(SETUP_FAILED);
		close(fd);
		close(notify_sock);
		return;
	}
	fprintf(stderr, "seccomp-check: %s\n", cause ? cause : "no cause");
	_exit(SETUP_FAILED);
}

static int
run_attempt(const char *name, enum filter_mode mode, struct outcome *o)
{
	char	*argv[] = { try_path, (char *)name, NULL };
	pid_t	 pid;
	int	 status, fd;

	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			dup2(fd, STDOUT_FILENO);
		/* Before the filter: it is the alarm that bounds a hang. */
		alarm(ATTEMPT_SECONDS);
		child_filter(mode, -1);
		execv(try_path, argv);
		_exit(SETUP_FAILED);
	}
	if (waitpid(pid, &status, 0) == -1)
		return (-1);
	outcome_set(o, status);
	return (0);
}

static void
check_attempt(const struct expectation *x)
{
	struct outcome	 got, base;
	char		 b1[64], b2[64], b3[64];

	if (run_attempt(x->attempt, FILTER_POLICY, &got) != 0 ||
	    run_attempt(x->attempt, FILTER_NONE, &base) != 0) {
		report(0, "%s: fork: %s", x->attempt, strerror(errno));
		return;
	}
	if (outcome_matches(&got, x->expect))
		report(1, "%s: %s (unfiltered: %s)", x->attempt,
		    outcome_text(&got, b1, sizeof b1),
		    outcome_text(&base, b2, sizeof b2));
	else
		report(0, "%s: got %s, want %s (unfiltered: %s)", x->attempt,
		    outcome_text(&got, b1, sizeof b1),
		    expect_text(x->expect, b3, sizeof b3),
		    outcome_text(&base, b2, sizeof b2));
}

/*
 * A thread started before the filter must be filtered too (a zygote-born
 * session may already run OpenBLAS threads): the thread waits on a pipe,
 * the main thread installs the filter and releases it, and it tries ptrace.
 */
static void *
check_thread_main(void *arg)
{
	int	*fds = arg;
	char	 byte;
	long	 r;

	if (read(fds[0], &byte, 1) != 1)
		return ((void *)(long)SETUP_FAILED);
	r = syscall(SYS_ptrace, PTRACE_ATTACH, 0x3fffffffL, 0L, 0L);
	return ((void *)(long)(r == -1 ? errno : 0));
}

static void
check_thread(void)
{
	struct outcome	 o;
	pthread_t	 t;
	void		*ret;
	char		*cause, b[64];
	int		 fds[2], status;
	pid_t		 pid;

	if ((pid = fork()) == -1) {
		report(0, "thread-before-filter: fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		alarm(ATTEMPT_SECONDS);
		if (pipe(fds) == -1 ||
		    pthread_create(&t, NULL, check_thread_main, fds) != 0)
			_exit(SETUP_FAILED);
		if (sandbox_seccomp_install(&cause) != 0)
			_exit(SETUP_FAILED);
		if (write(fds[1], "x", 1) != 1 || pthread_join(t, &ret) != 0)
			_exit(SETUP_FAILED);
		_exit((int)(long)ret);
	}
	if (waitpid(pid, &status, 0) == -1)
		return;
	outcome_set(&o, status);
	report(outcome_matches(&o, EPERM), "thread-before-filter: ptrace "
	    "from an older thread: %s, want EPERM",
	    outcome_text(&o, b, sizeof b));
}

/* --print-policy output: the table, then libseccomp's export in full. */
static void
check_print(void)
{
	FILE	*f;
	char	*cause = NULL, line[512];
	int	 r, rows = 0, end = 0;

	if ((f = tmpfile()) == NULL) {
		report(0, "print-policy: tmpfile: %s", strerror(errno));
		return;
	}
	r = sandbox_seccomp_print(f, &cause);
	rewind(f);
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "ptrace ", 7) == 0 &&
		    strstr(line, "ERRNO(EPERM)") != NULL)
			rows++;
		if (strcmp(line, "# pseudo filter code end\n") == 0)
			end = 1;
	}
	fclose(f);
	report(r == 0 && rows == 1 && end, "print-policy: %s",
	    r != 0 ? (cause ? cause : "failed") :
	    "table and complete PFC export");
	free(cause);
}

static int
fd_send(int sock, int fd)
{
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	char		 byte = 0;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} control;

	memset(&msg, 0, sizeof msg);
	memset(&control, 0, sizeof control);
	iov.iov_base = &byte;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.buf;
	msg.msg_controllen = sizeof control.buf;
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
	return (sendmsg(sock, &msg, 0) == 1 ? 0 : -1);
}

static int
fd_receive(int sock)
{
	struct msghdr	 msg;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	char		 byte;
	int		 fd;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} control;

	memset(&msg, 0, sizeof msg);
	iov.iov_base = &byte;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.buf;
	msg.msg_controllen = sizeof control.buf;
	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return (-1);
	cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS)
		return (-1);
	memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
	return (fd);
}

/*
 * Answer the debug filter's notifications until the child has exited and
 * the filter has no users left (the listener then reports POLLHUP), letting
 * each call continue.  After the child is reaped, orphans (a forkserver) get
 * one idle second to finish; what they do after that is not recorded.
 */
static void
supervise(int nfd, pid_t pid, struct outcome *o, struct missing *m)
{
	struct seccomp_notif		*req;
	struct seccomp_notif_resp	*resp;
	struct pollfd			 pfd[2];
	int				 pidfd, status, reaped = 0, n;

	status = W_EXITCODE(SETUP_FAILED, 0);
	/* Without pidfds (Linux < 5.3), look for the child once a second. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (seccomp_notify_alloc(&req, &resp) != 0)
		req = NULL;
	for (;;) {
		pfd[0].fd = nfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = pidfd;
		pfd[1].events = POLLIN;
		n = poll(pfd, reaped ? 1 : 2,
		    reaped || pidfd == -1 ? 1000 : -1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			break;
		if (n == 0) {
			if (reaped)
				break;
			if (waitpid(pid, &status, WNOHANG) == pid)
				reaped = 1;
			continue;
		}
		if (req != NULL && (pfd[0].revents & POLLIN)) {
			/* The kernel insists on a zeroed request. */
			memset(req, 0, sizeof *req);
			if ((n = seccomp_notify_receive(nfd, req)) != 0) {
				/* ENOENT: the caller died before we looked. */
				if (n == -ENOENT || n == -EINTR)
					continue;
				break;
			}
			missing_add(m, &req->data);
			memset(resp, 0, sizeof *resp);
			resp->id = req->id;
			resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
			/* ENOENT: the caller died meanwhile; nothing to do. */
			(void)seccomp_notify_respond(nfd, resp);
			continue;
		}
		if (pfd[0].revents & (POLLHUP | POLLERR))
			break;
		if (!reaped && (pfd[1].revents & POLLIN)) {
			if (waitpid(pid, &status, 0) == pid)
				reaped = 1;
		}
	}
	if (!reaped)
		(void)waitpid(pid, &status, 0);
	outcome_set(o, status);
	if (req != NULL)
		seccomp_notify_free(req, resp);
	if (pidfd != -1)
		close(pidfd);
}

static void
missing_add(struct missing *m, const struct seccomp_data *d)
{
	uint64_t	 key;
	int		 nr = d->nr, i;

	if (nr < 0 || nr >= MAX_NR)
		return;
	m->count[nr]++;
	key = nr == SCMP_SYS(ioctl) ? d->args[1] : d->args[0];
	for (i = 0; i < m->nkeys[nr]; i++) {
		if (m->keys[nr][i] == key)
			return;
	}
	if (m->nkeys[nr] < MAX_KEYS)
		m->keys[nr][m->nkeys[nr]++] = key;
}

static void
missing_print(const struct missing *m)
{
	char	*name;
	int	 nr, i, any = 0;

	for (nr = 0; nr < MAX_NR; nr++) {
		if (m->count[nr] == 0)
			continue;
		any = 1;
		name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		printf("     missing: %-20s %6lu calls; %s", name ? name : "?",
		    m->count[nr], nr == SCMP_SYS(ioctl) ? "arg1" : "arg0");
		for (i = 0; i < m->nkeys[nr]; i++)
			printf(" %#llx", (unsigned long long)m->keys[nr][i]);
		printf("\n");
		free(name);
	}
	if (!any)
		printf("     missing: none\n");
}

static int
remove_entry(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return (0);
}

/*
 * Run PYTHON -c CODE in a child under the given filter, its output in a
 * file.  A fresh, empty MPLCONFIGDIR makes matplotlib build its font cache
 * (and so run fc-list), the path a cold sandbox takes.
 */
static int
run_python(const char *code, enum filter_mode mode, const char *dir,
    struct outcome *o, struct missing *m)
{
	char	 out[PATH_MAX], mpl[PATH_MAX], ipy[PATH_MAX];
	char	*argv[] = { PYTHON, "-c", (char *)code, NULL };
	int	 sp[2] = { -1, -1 }, fd, nfd, status;
	pid_t	 pid;

	snprintf(out, sizeof out, "%s/output", dir);
	snprintf(mpl, sizeof mpl, "%s/mpl", dir);
	snprintf(ipy, sizeof ipy, "%s/ipython", dir);
	if (mode == FILTER_DEBUG &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
		return (-1);
	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
			_exit(SETUP_FAILED);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		setenv("MPLBACKEND", "Agg", 1);
		setenv("MPLCONFIGDIR", mpl, 1);
		setenv("IPYTHONDIR", ipy, 1);
		setenv("TMPDIR", dir, 1);
		alarm(WORKLOAD_SECONDS);
		child_filter(mode, sp[1]);
		execv(PYTHON, argv);
		_exit(SETUP_FAILED);
	}
	if (mode != FILTER_DEBUG) {
		if (waitpid(pid, &status, 0) == -1)
			return (-1);
		outcome_set(o, status);
		return (0);
	}
	close(sp[1]);
	nfd = fd_receive(sp[0]);
	close(sp[0]);
	if (nfd == -1) {
		(void)waitpid(pid, &status, 0);
		outcome_set(o, status);
		return (0);
	}
	supervise(nfd, pid, o, m);
	close(nfd);
	return (0);
}

/* Print the tail of a failed workload's output, indented. */
static void
print_tail(const char *dir)
{
	char	 path[PATH_MAX], buf[4096];
	FILE	*f;
	long	 size;
	size_t	 n;

	snprintf(path, sizeof path, "%s/output", dir);
	if ((f = fopen(path, "r")) == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0,
	    SEEK_SET);
	n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	printf("     | %s\n", buf);
}

/* The output ends with the line OK. */
static int
printed_ok(const char *dir)
{
	char	 path[PATH_MAX], line[256], last[256] = "";
	FILE	*f;

	snprintf(path, sizeof path, "%s/output", dir);
	if ((f = fopen(path, "r")) == NULL)
		return (0);
	while (fgets(line, sizeof line, f) != NULL)
		memcpy(last, line, sizeof last);
	fclose(f);
	return (strcmp(last, "OK\n") == 0);
}

static void
check_workload(const struct workload *w, enum filter_mode mode)
{
	struct outcome	 o, probe;
	struct missing	*m;
	char		 dir[] = "/tmp/seccomp-check.XXXXXX", b[64], code[256];
	int		 ok;

	if (mkdtemp(dir) == NULL) {
		report(0, "%s: mkdtemp: %s", w->name, strerror(errno));
		return;
	}
	/* A machine without the modules skips; it does not fail. */
	snprintf(code, sizeof code, "import %s", w->needs);
	if (run_python(code, FILTER_NONE, dir, &probe, NULL) != 0 ||
	    probe.signal != 0 || probe.status != 0) {
		printf("skip %s: %s cannot import %s\n", w->name, PYTHON,
		    w->needs);
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		return;
	}
	if ((m = calloc(1, sizeof *m)) == NULL ||
	    run_python(w->code, mode, dir, &o, m) != 0) {
		report(0, "%s: %s", w->name, strerror(errno));
		free(m);
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		return;
	}
	ok = o.signal == 0 && o.status == 0 && printed_ok(dir);
	if (ok)
		report(1, "%s: printed OK", w->name);
	else {
		report(0, "%s: %s, want ok and OK printed", w->name,
		    outcome_text(&o, b, sizeof b));
		print_tail(dir);
	}
	if (mode == FILTER_DEBUG)
		missing_print(m);
	free(m);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* bin/try-syscall sits next to this program. */
static int
find_try_syscall(void)
{
	char	 self[PATH_MAX];
	ssize_t	 n;

	if ((n = readlink("/proc/self/exe", self, sizeof self - 1)) == -1)
		return (-1);
	self[n] = '\0';
	snprintf(try_path, sizeof try_path, "%s/try-syscall", dirname(self));
	return (access(try_path, X_OK));
}

int
main(int argc, char **argv)
{
	enum filter_mode	 mode = FILTER_POLICY;
	size_t			 i;

	if (argc == 2 && strcmp(argv[1], "--find-missing") == 0)
		mode = FILTER_DEBUG;
	else if (argc != 1) {
		fprintf(stderr, "usage: seccomp-check [--find-missing]\n");
		return (2);
	}
	if (find_try_syscall() != 0) {
		fprintf(stderr, "seccomp-check: no try-syscall next to me\n");
		return (2);
	}
	if (mode == FILTER_POLICY) {
		for (i = 0; i < sizeof expectations /
		    sizeof expectations[0]; i++)
			check_attempt(&expectations[i]);
		check_thread();
		check_print();
	}
	for (i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
		check_workload(&workloads[i], mode);
	printf("%d passed, %d failed\n", passed, failed);
	return (failed == 0 ? 0 : 1);
}
