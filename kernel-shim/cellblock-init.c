/* cellblock-init.c: pid 1 of a session: a tiny exec'd reaper, nothing else. */
/*
 * Pid 1 of the session's pid namespace forks the interpreter (pid 2) and
 * then execs this (kernel-shim/sandbox-run.c): a few pages instead of a
 * copy of the zygote's 110 MB address space and its page tables kept for
 * the session's whole life. It arrives as the inner uid with no
 * capabilities and no_new_privs; exec made it dumpable again, so the
 * first thing it does is undo that (pid 2 has the same uid and must not
 * reach its memory through /proc/1/mem), and only then does it close
 * the pipe pid 2 waits on before it runs anything of the session's. It
 * holds the session's channel, unread, so that the daemon sees it close
 * only once pid 1 has exited with pid 2's status.
 *
 *	cellblock-init PID2 SYNC_FD
 *
 * Then it is sandbox_pid_reaper(): reap everything reparented to it,
 * forward SIGINT, SIGTERM and SIGHUP to pid 2, and when pid 2 is gone
 * kill what is left and exit as it did (128 + N for signal N).
 */

#include <sys/prctl.h>
#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

static long
init_number(const char *s)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0)
		return (-1);
	return (v);
}

int
main(int argc, char **argv)
{
	char	*cause = NULL;
	long	 child, sync;
	int	 code;

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		_exit(1);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (argc != 3 || (child = init_number(argv[1])) == -1 ||
	    (sync = init_number(argv[2])) == -1) {
		fprintf(stderr, "usage: cellblock-init PID2 SYNC_FD\n");
		_exit(1);
	}
	/* Pid 2 goes on. The channel stays open until we exit (sandbox-run.c). */
	close((int)sync);
	if (sandbox_pid_reaper((pid_t)child, &code, &cause) != 0) {
		fprintf(stderr, "cellblock-init: %s\n", cause ? cause :
		    "reaper failed");
		_exit(1);
	}
	_exit(code);
}
