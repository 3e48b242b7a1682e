/* child.c: the daemon's children, each reaped by its own pidfd. */
/*
 * Whoever starts a child for the loop to reap (an interpreter, the zygote,
 * the egress proxy) registers it here with what to call when it exits.
 * A child run to completion on the spot (the policy probe, the cgroup
 * helper) is not registered: its starter waits for that pid itself, and no
 * waitpid(-1) can take its status first. Each watched child's pidfd sits
 * in the daemon's loop, so an exit costs one wake-up and one waitpid(pid),
 * whatever the number of children. On a kernel without pidfd_open (before
 * 5.3) or out of descriptors, a child is found on SIGCHLD instead, by one
 * waitpid(pid, WNOHANG) per such child.
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

struct child {
	pid_t			 pid;
	int			 pidfd;		/* -1: found on SIGCHLD */
	struct loop_io		*io;
	child_exit_fn		*fn;
	void			*arg;
	TAILQ_ENTRY(child)	 entry;
};
static TAILQ_HEAD(, child) child_list = TAILQ_HEAD_INITIALIZER(child_list);
/* How many have no pidfd: SIGCHLD walks the list only if some do. */
static u_int	child_unwatched;

static int
child_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (syscall(SYS_pidfd_open, pid, 0));
#else
	(void)pid;
	errno = ENOSYS;
	return (-1);
#endif
}

static void
child_free(struct child *c)
{
	TAILQ_REMOVE(&child_list, c, entry);
	loop_io_remove(&c->io);
	if (c->pidfd != -1)
		close(c->pidfd);
	else
		child_unwatched--;
	free(c);
}

/*
 * 1 if c is gone (and its callback has run). A status of 0 from waitpid
 * is a child still running (a spurious wake-up); ECHILD is one reaped by
 * its starter after all, dropped without a callback.
 */
static int
child_try(struct child *c)
{
	child_exit_fn	*fn = c->fn;
	void		*arg = c->arg;
	pid_t		 pid = c->pid, r;
	int		 status;

	while ((r = waitpid(pid, &status, WNOHANG)) == -1 && errno == EINTR)
		continue;
	if (r == 0)
		return (0);
	child_free(c);
	if (r == -1) {
		log_debug("child %ld: %s", (long)pid, strerror(errno));
		return (1);
	}
	fn(pid, status, arg);
	return (1);
}

static void
child_event(int fd, uint32_t events, void *arg)
{
	(void)fd;
	(void)events;
	child_try(arg);
}

/* Reap pid, once it exits, from the loop: fn(pid, status, arg) then. */
void
child_watch(pid_t pid, child_exit_fn *fn, void *arg)
{
	struct child	*c;

	c = xcalloc(1, sizeof *c);
	c->pid = pid;
	c->fn = fn;
	c->arg = arg;
	TAILQ_INSERT_TAIL(&child_list, c, entry);
	if ((c->pidfd = child_pidfd_open(pid)) == -1) {
		child_unwatched++;
		log_debug("pidfd_open %ld: %s; found on SIGCHLD", (long)pid,
		    strerror(errno));
		return;
	}
	/* Readable once it has exited, a zombie already included. */
	c->io = loop_io_add(c->pidfd, EPOLLIN, child_event, c);
}

/* The daemon's SIGCHLD: only the children without a pidfd need it. */
void
child_sigchld(void)
{
	struct child	*c, *next;

	if (child_unwatched == 0)
		return;		/* the usual case: every child has a pidfd */
	for (c = TAILQ_FIRST(&child_list); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->pidfd == -1)
			child_try(c);
	}
}

/*
 * Wait for pid now (the daemon's exit, which cannot wait for the loop):
 * its status, or -1 if it is still running; its watch is dropped when it
 * is gone, without the callback.
 */
int
child_reap_now(pid_t pid, int *status)
{
	struct child	*c;
	pid_t		 r;

	while ((r = waitpid(pid, status, WNOHANG)) == -1 && errno == EINTR)
		continue;
	if (r == 0)
		return (-1);
	TAILQ_FOREACH(c, &child_list, entry) {
		if (c->pid == pid) {
			child_free(c);
			break;
		}
	}
	return (0);
}

/* The daemon's exit: the watches go; the children are not waited for. */
void
child_forget_all(void)
{
	struct child	*c;

	while ((c = TAILQ_FIRST(&child_list)) != NULL)
		child_free(c);
}
