/* sandbox-pid.c: PID namespace: pid 1 reaps, forwards signals, and takes the rest down. */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

static void	pid_nop(int);
static int	pid_exit_code(int);

/*
 * Signals pid 1 passes to the interpreter.  Legend: signal; why.  Anything
 * else sent to pid 1 from inside is dropped by the kernel (init ignores
 * signals it has no handler for), and SIGKILL from outside kills the
 * whole namespace.
 */
static const struct {
	int		 sig;
	const char	*why;
} pid_forward[] = {
	{ SIGINT,  "KeyboardInterrupt: the daemon's interrupt_request" },
	{ SIGTERM, "the daemon stopping the session" },
	{ SIGHUP,  "the daemon's controlling side went away" },
};

/* A handler, not SIG_DFL: the kernel drops SIG_DFL signals sent to init. */
static void
pid_nop(int sig)
{
	(void)sig;
}

/* The shell's convention: the exit status, or 128 + the killing signal. */
static int
pid_exit_code(int status)
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
 * signals in pid_forward to the child.  When the child is gone, kill
 * whatever it left behind and set *code to the exit code to use.
 *
 * kill(-1, SIGKILL) is only sent when this really is pid 1: called from
 * a process in the host's pid namespace it would reach every process of
 * the same uid on the host.  Elsewhere (the shim waiting on pid 1) this
 * is just a forwarding wait.
 */
int
sandbox_pid_reaper(pid_t child, int *code, char **cause)
{
	struct sigaction	 sa, old[nitems(pid_forward) + 1];
	sigset_t		 set, oldmask;
	siginfo_t		 si;
	pid_t			 pid;
	size_t			 i;
	int			 status, done = 0;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = pid_nop;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaction(SIGCHLD, &sa, &old[nitems(pid_forward)]);
	for (i = 0; i < nitems(pid_forward); i++) {
		sigaddset(&set, pid_forward[i].sig);
		sigaction(pid_forward[i].sig, &sa, &old[i]);
	}
	sigprocmask(SIG_BLOCK, &set, &oldmask);

	while (!done) {
		/* Sweep first: the child may have exited before the block. */
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid == child) {
				*code = pid_exit_code(status);
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
	for (i = 0; i < nitems(pid_forward); i++)
		sigaction(pid_forward[i].sig, &old[i], NULL);
	sigaction(SIGCHLD, &old[nitems(pid_forward)], NULL);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return (done ? 0 : -1);
}
