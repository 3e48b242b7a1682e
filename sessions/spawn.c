/* spawn.c: start a session's interpreter (cellblock-shim) from the daemon. */
/*
 * The daemon holds ZeroMQ contexts and threads, so between fork() and
 * execve() the child does only async-signal-safe work: everything it needs
 * (argv, envp, fds) is prepared before the fork.
 */

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "protocol.h"
#include "sessions.h"

#define SPAWN_CHANNEL_FD	3

static void	spawn_child(int, int, int, char **, char **)
		    __attribute__((noreturn));

static void
spawn_child(int chan, int err, int devnull, char **argv, char **envp)
{
	sigset_t		 none;
	struct sigaction	 dfl;

	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* No interpreter may outlive the daemon. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setsid();
	if (dup2(devnull, 0) == -1 || dup2(devnull, 1) == -1 ||
	    dup2(err, 2) == -1 || dup2(chan, SPAWN_CHANNEL_FD) == -1)
		_exit(126);
	close_range(SPAWN_CHANNEL_FD + 1, ~0U, 0);
	execve(argv[0], argv, envp);
	_exit(127);
}

int
spawn_interpreter(struct session *s, const struct spawn_args *a, char **cause)
{
	int	 sv[2], errp[2], devnull;
	pid_t	 pid;
	char	*argv[32], num[4][24];
	char	*envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin",
			    "LANG=C.UTF-8", NULL };
	int	 i = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		xasprintf(cause, "socketpair: %s", strerror(errno));
		return (-1);
	}
	if (pipe2(errp, O_CLOEXEC) == -1) {
		xasprintf(cause, "pipe: %s", strerror(errno));
		goto close_pair;
	}
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1) {
		xasprintf(cause, "/dev/null: %s", strerror(errno));
		goto close_pipe;
	}
	argv[i++] = (char *)a->shim;
	argv[i++] = "--channel-fd";
	argv[i++] = "3";
	argv[i++] = "--session";
	argv[i++] = (char *)a->name;
	argv[i++] = "--workdir";
	argv[i++] = (char *)a->workdir;
	argv[i++] = "--runner";
	argv[i++] = (char *)a->runner;
	argv[i++] = "--python";
	argv[i++] = (char *)a->python;
	if (a->contain) {
		snprintf(num[0], sizeof num[0], "%llu",
		    (unsigned long long)a->limits->tmp);
		snprintf(num[1], sizeof num[1], "%llu",
		    (unsigned long long)a->limits->nofile);
		snprintf(num[2], sizeof num[2], "%llu",
		    (unsigned long long)a->limits->fsize);
		argv[i++] = "--contain";
		argv[i++] = "--tmp";
		argv[i++] = num[0];
		argv[i++] = "--nofile";
		argv[i++] = num[1];
		argv[i++] = "--fsize";
		argv[i++] = num[2];
		snprintf(num[3], sizeof num[3], "%u",
		    (a->limits->cpu_millis + 999) / 1000);
		argv[i++] = "--threads";
		argv[i++] = num[3];
		if (a->rootfs != NULL) {
			argv[i++] = "--rootfs";
			argv[i++] = (char *)a->rootfs;
		}
	}
	argv[i] = NULL;

	pid = fork();
	if (pid == -1) {
		xasprintf(cause, "fork: %s", strerror(errno));
		close(devnull);
		goto close_pipe;
	}
	if (pid == 0)
		spawn_child(sv[1], errp[1], devnull, argv, envp);

	close(devnull);
	close(sv[1]);
	close(errp[1]);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	s->pid = pid;
	s->errfd = errp[0];
	s->errlen = 0;
	channel_init(&s->chan, sv[0]);
	s->incarnation++;
	s->stopping = 0;
	log_info("%s: interpreter %u started as pid %ld", s->name,
	    s->incarnation, (long)pid);
	return (0);

close_pipe:
	close(errp[0]);
	close(errp[1]);
close_pair:
	close(sv[0]);
	close(sv[1]);
	return (-1);
}

void
spawn_signal(struct session *s, int sig)
{
	if (s->pid > 0)
		kill(s->pid, sig);
}

/* Drop our ends of the incarnation's fds; the process is reaped elsewhere. */
void
spawn_close(struct session *s)
{
	channel_close(&s->chan);
	if (s->errfd != -1)
		close(s->errfd);
	s->errfd = -1;
	json_decref(s->hello);
	s->hello = NULL;
}
