/* sandbox-proc.c: the interpreter's process state before exec: session, signals, fds, cwd. */

#include <sys/prctl.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

static int	proc_null_stdio(int, char **);
static int	proc_close_fds(int, int, char **);
static void	proc_signals_default(void);

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

/*
 * All fds above 2 but the channel, which loses FD_CLOEXEC to survive exec,
 * and the wait for pid 1 if the plan leaves it to the caller (it keeps
 * FD_CLOEXEC: that caller never execs).
 */
static int
proc_close_fds(int keep_fd, int wait_fd, char **cause)
{
	int	keep[2], from = 3, i, t;

	if (keep_fd >= 0 && fcntl(keep_fd, F_SETFD, 0) == -1)
		return (sandbox_cause(cause, "channel fd %d: %s", keep_fd,
		    strerror(errno)));
	keep[0] = keep_fd;
	keep[1] = wait_fd > 2 ? wait_fd : -1;
	if (keep[1] < keep[0]) {
		t = keep[0];
		keep[0] = keep[1];
		keep[1] = t;
	}
	for (i = 0; i < 2; i++) {
		if (keep[i] < from)
			continue;
		if (keep[i] > from && close_range(from, keep[i] - 1, 0) != 0)
			return (sandbox_cause(cause, "close_range: %s",
			    strerror(errno)));
		from = keep[i] + 1;
	}
	if (close_range(from, ~0U, 0) != 0)
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
	if (proc_close_fds(plan->keep_fd, plan->init_wait_fd, cause) != 0)
		return (-1);
	if (chdir(SANDBOX_HOME) != 0)
		return (sandbox_cause(cause, "chdir %s: %s", SANDBOX_HOME,
		    strerror(errno)));
	return (0);
}
