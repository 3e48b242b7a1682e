/* sandbox-proc.c: hostname, capabilities, rlimits, hygiene, pid-1 reaper. */

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/capability.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

#define PROC_HOSTNAME_MAX	63	/* a DNS label; the kernel takes 64 */
#define PROC_CAP_MAX		63	/* capabilities are bits of a u64 */

static int	proc_caps_empty(char **);
static int	proc_null_stdio(int, char **);
static int	proc_close_fds(int, char **);
static void	proc_signals_default(void);
static void	proc_reaper_nop(int);
static int	proc_exit_code(int);

/*
 * Resource limits.  Legend: resource; the value, or PLAN_NOFILE /
 * PLAN_FSIZE for the plan's; why.
 */
#define PLAN_NOFILE	(~0ULL - 1)
#define PLAN_FSIZE	(~0ULL - 2)
static const struct {
	int		 resource;
	const char	*name;
	uint64_t	 value;
	const char	*why;
} proc_rlimits[] = {
	{ RLIMIT_CORE, "core", 0,
	  "a core of the interpreter would carry the session's data to disk" },
	{ RLIMIT_NOFILE, "nofile", PLAN_NOFILE,
	  "bounds the kernel memory a session pins in open files" },
	{ RLIMIT_FSIZE, "fsize", PLAN_FSIZE,
	  "the work dir is on the host's disk; CPython ignores SIGXFSZ, so a "
	  "write fails with EFBIG (\"File too large\")" },
	{ RLIMIT_MSGQUEUE, "msgqueue", 0,
	  "POSIX message queues are kernel memory outside the memory cgroup" },
};

/*
 * Signals pid 1 passes to the interpreter.  Legend: signal; why.  Anything
 * else sent to pid 1 from inside is dropped by the kernel (init ignores
 * signals it has no handler for), and SIGKILL from outside kills the
 * whole namespace.
 */
static const struct {
	int		 sig;
	const char	*why;
} proc_forward[] = {
	{ SIGINT,  "KeyboardInterrupt: the daemon's interrupt_request" },
	{ SIGTERM, "the daemon stopping the session" },
	{ SIGHUP,  "the daemon's controlling side went away" },
};

/*
 * The kernel takes any 64 bytes; this keeps to letters, digits and "-._"
 * so the name is also safe in the generated /etc/hosts (no blanks, no
 * newline, no "#") and cannot pass for an option.
 */
int
sandbox_proc_valid_hostname(const char *name)
{
	size_t	i, len;

	if (name == NULL || (len = strlen(name)) == 0 ||
	    len > PROC_HOSTNAME_MAX || name[0] == '-' || name[0] == '.')
		return (0);
	for (i = 0; i < len; i++) {
		if ((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') ||
		    strchr("-._", name[i]) != NULL)
			continue;
		return (0);
	}
	return (1);
}

/* Needs the new UTS namespace and its capabilities: before dropping them. */
int
sandbox_proc_hostname(const struct sandbox_plan *plan, char **cause)
{
	if (!sandbox_proc_valid_hostname(plan->hostname))
		return (sandbox_cause(cause, "hostname: invalid name"));
	if (sethostname(plan->hostname, strlen(plan->hostname)) != 0)
		return (sandbox_cause(cause, "sethostname: %s",
		    strerror(errno)));
	return (0);
}

/* Ask the kernel rather than trust capset's return value. */
static int
proc_caps_empty(char **cause)
{
	struct __user_cap_header_struct	hdr;
	struct __user_cap_data_struct	data[2];
	int				i;

	memset(&hdr, 0, sizeof hdr);
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capget, &hdr, data) != 0)
		return (sandbox_cause(cause, "capget: %s", strerror(errno)));
	for (i = 0; i < 2; i++) {
		if (data[i].effective != 0 || data[i].permitted != 0 ||
		    data[i].inheritable != 0)
			return (sandbox_cause(cause, "capabilities remain"));
	}
	return (0);
}

/*
 * Drop every capability for good, then no_new_privs.  Order matters:
 * emptying the bounding set needs CAP_SETPCAP, so capset comes last.
 * The bounding loop stops at the first EINVAL, the first number past
 * CAP_LAST_CAP, so it needs no /proc/sys (which may not be mounted).
 * Raw syscalls: no libcap.
 */
int
sandbox_proc_drop_caps(char **cause)
{
	struct __user_cap_header_struct	hdr;
	struct __user_cap_data_struct	data[2];
	int				cap;

	for (cap = 0; cap <= PROC_CAP_MAX; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL && cap > 0)
			break;
		return (sandbox_cause(cause, "PR_CAPBSET_DROP %d: %s", cap,
		    strerror(errno)));
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
		return (sandbox_cause(cause, "PR_CAP_AMBIENT_CLEAR_ALL: %s",
		    strerror(errno)));

	memset(&hdr, 0, sizeof hdr);
	memset(data, 0, sizeof data);
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capset, &hdr, data) != 0)
		return (sandbox_cause(cause, "capset: %s", strerror(errno)));
	if (proc_caps_empty(cause) != 0)
		return (-1);

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return (sandbox_cause(cause, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno)));
	return (0);
}

/*
 * Soft and hard limits alike, so the interpreter cannot raise them.  A
 * limit above the inherited hard limit cannot be set from inside a user
 * namespace; it is clamped to it, which is the stricter of the two.  A
 * plan without nofile or fsize is an error rather than "unlimited".
 */
int
sandbox_proc_rlimits(const struct sandbox_plan *plan, char **cause)
{
	struct rlimit	rl, old;
	uint64_t	v;
	size_t		i;

	if (plan->nofile == 0 || plan->fsize_bytes == 0)
		return (sandbox_cause(cause, "rlimits: plan has no nofile or "
		    "fsize limit"));
	for (i = 0; i < nitems(proc_rlimits); i++) {
		v = proc_rlimits[i].value;
		if (v == PLAN_NOFILE)
			v = plan->nofile;
		else if (v == PLAN_FSIZE)
			v = plan->fsize_bytes;
		if (getrlimit(proc_rlimits[i].resource, &old) != 0)
			return (sandbox_cause(cause, "getrlimit %s: %s",
			    proc_rlimits[i].name, strerror(errno)));
		if (old.rlim_max != RLIM_INFINITY && v > old.rlim_max)
			v = old.rlim_max;
		rl.rlim_cur = rl.rlim_max = v;
		if (setrlimit(proc_rlimits[i].resource, &rl) != 0)
			return (sandbox_cause(cause, "setrlimit %s: %s",
			    proc_rlimits[i].name, strerror(errno)));
	}
	return (0);
}

/*
 * fds 0-2 on /dev/null rather than closed: a closed 0-2 would be handed
 * to the next file the interpreter opens, and print() would write into it.
 */
static int
proc_null_stdio(int keep_fd, char **cause)
{
	int	fd, i;

	if ((fd = open("/dev/null", O_RDWR|O_CLOEXEC)) == -1)
		return (sandbox_cause(cause, "open /dev/null: %s",
		    strerror(errno)));
	for (i = 0; i <= 2; i++) {
		if (i == keep_fd || i == fd)
			continue;
		if (dup2(fd, i) == -1)
			return (sandbox_cause(cause, "dup2: %s",
			    strerror(errno)));
	}
	if (fd > 2)
		close(fd);
	else if (fd != keep_fd && fcntl(fd, F_SETFD, 0) == -1)
		return (sandbox_cause(cause, "fcntl: %s", strerror(errno)));
	return (0);
}

/* All fds above 2 but the channel, which loses FD_CLOEXEC to survive exec. */
static int
proc_close_fds(int keep_fd, char **cause)
{
	if (keep_fd >= 0 && fcntl(keep_fd, F_SETFD, 0) == -1)
		return (sandbox_cause(cause, "channel fd %d: %s", keep_fd,
		    strerror(errno)));
	if (keep_fd <= 3) {
		if (close_range(keep_fd == 3 ? 4 : 3, ~0U, 0) != 0)
			return (sandbox_cause(cause, "close_range: %s",
			    strerror(errno)));
		return (0);
	}
	if (close_range(3, keep_fd - 1, 0) != 0 ||
	    close_range(keep_fd + 1, ~0U, 0) != 0)
		return (sandbox_cause(cause, "close_range: %s",
		    strerror(errno)));
	return (0);
}

/*
 * Ignored signals and the signal mask survive execve: a zygote that
 * ignores SIGINT would hand the interpreter a deaf KeyboardInterrupt.
 */
static void
proc_signals_default(void)
{
	sigset_t	none;
	int		sig;

	for (sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * The last steps before seccomp and exec.  PR_SET_PDEATHSIG comes after
 * sandbox_user_become(), because a change of uid clears it.
 */
int
sandbox_proc_hygiene(const struct sandbox_plan *plan, char **cause)
{
	if (setsid() == -1 && getsid(0) != getpid())
		return (sandbox_cause(cause, "setsid: %s", strerror(errno)));
	proc_signals_default();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		return (sandbox_cause(cause, "PR_SET_PDEATHSIG: %s",
		    strerror(errno)));
	if (proc_null_stdio(plan->keep_fd, cause) != 0)
		return (-1);
	if (proc_close_fds(plan->keep_fd, cause) != 0)
		return (-1);
	if (chdir(SANDBOX_HOME) != 0)
		return (sandbox_cause(cause, "chdir %s: %s", SANDBOX_HOME,
		    strerror(errno)));
	return (0);
}

/* A handler, not SIG_DFL: the kernel drops SIG_DFL signals sent to init. */
static void
proc_reaper_nop(int sig)
{
	(void)sig;
}

/* The shell's convention: the exit status, or 128 + the killing signal. */
static int
proc_exit_code(int status)
{
	if (WIFEXITED(status))
		return (WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return (128 + WTERMSIG(status));
	return (255);
}

/*
 * Run as pid 1 of the session's pid namespace until `child' (the
 * interpreter) exits: reap every process that ends up ours, pass the
 * signals in proc_forward to the child.  When the child is gone, kill
 * whatever it left behind and set *code to the exit code to use.
 *
 * kill(-1, SIGKILL) is only sent when this really is pid 1: called from
 * a process in the host's pid namespace it would reach every process of
 * the same uid on the host.  Elsewhere (the shim waiting on pid 1) this
 * is just a forwarding wait.
 */
int
sandbox_proc_reaper(pid_t child, int *code, char **cause)
{
	struct sigaction	 sa, old[nitems(proc_forward) + 1];
	sigset_t		 set, oldmask;
	siginfo_t		 si;
	pid_t			 pid;
	size_t			 i;
	int			 status, done = 0;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = proc_reaper_nop;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaction(SIGCHLD, &sa, &old[nitems(proc_forward)]);
	for (i = 0; i < nitems(proc_forward); i++) {
		sigaddset(&set, proc_forward[i].sig);
		sigaction(proc_forward[i].sig, &sa, &old[i]);
	}
	sigprocmask(SIG_BLOCK, &set, &oldmask);

	while (!done) {
		/* Sweep first: the child may have exited before the block. */
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid == child) {
				*code = proc_exit_code(status);
				done = 1;
			}
		}
		if (done)
			break;
		if (pid == -1 && errno == ECHILD) {
			sandbox_cause(cause, "reaper: %ld is not our child",
			    (long)child);
			break;
		}
		if (sigwaitinfo(&set, &si) == -1 || si.si_signo == SIGCHLD)
			continue;
		kill(child, si.si_signo);
	}

	if (done && getpid() == 1) {
		kill(-1, SIGKILL);
		while (waitpid(-1, &status, WNOHANG) > 0)
			;
	}
	for (i = 0; i < nitems(proc_forward); i++)
		sigaction(proc_forward[i].sig, &old[i], NULL);
	sigaction(SIGCHLD, &old[nitems(proc_forward)], NULL);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return (done ? 0 : -1);
}
