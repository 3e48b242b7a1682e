/* test-child.c: self-test of child.c: pidfd reaping, no waitpid(-1). */

#include <sys/types.h>
#include <sys/wait.h>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "server.h"
#include "check.h"

static pid_t	test_pid;
static int	test_status = -1;
static int	test_calls;

static void
test_exited(pid_t pid, int status, void *arg)
{
	test_pid = pid;
	test_status = status;
	test_calls += arg == &test_calls;
	loop_quit();
}

/* A child that exits with code at once. */
static pid_t
test_fork(int code)
{
	pid_t	pid = fork();

	if (pid == 0)
		_exit(code);
	return (pid);
}

/*
 * The case waitpid(-1) got wrong: when a watched child exits, another
 * child that exited first (a zombie its starter has not waited for yet)
 * keeps its status for that starter.
 */
static void
test_watched_and_not(void)
{
	siginfo_t	 si;
	pid_t		 other, watched;
	int		 st;

	other = test_fork(9);
	/* A zombie now; WNOWAIT leaves its status where it was. */
	CHECK(waitid(P_PID, other, &si, WEXITED | WNOWAIT) == 0);
	watched = test_fork(7);
	child_watch(watched, test_exited, &test_calls);
	CHECK(loop_run() == 0);
	CHECK(test_calls == 1 && test_pid == watched);
	CHECK(WIFEXITED(test_status) && WEXITSTATUS(test_status) == 7);
	child_sigchld();	/* only children without a pidfd: none */
	CHECK(waitpid(other, &st, WNOHANG) == other);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 9);
}

/* The daemon's exit: a running child is not reaped; a gone one is. */
static void
test_reap_now(void)
{
	pid_t	pid;
	int	st = -1, calls = test_calls, i;

	if ((pid = fork()) == 0) {
		pause();
		_exit(0);
	}
	child_watch(pid, test_exited, &test_calls);
	CHECK(child_reap_now(pid, &st) == -1);
	kill(pid, SIGKILL);
	for (i = 0; i < 5000 && child_reap_now(pid, &st) != 0; i++)
		usleep(1000);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CHECK(test_calls == calls);	/* dropped without its callback */
	child_forget_all();
}

int
main(void)
{
	/* The test's bound: a reaper that never fires must not hang it. */
	alarm(20);
	log_open(0, stderr);
	loop_init();
	test_watched_and_not();
	test_reap_now();
	loop_free();
	return (check_report());
}
