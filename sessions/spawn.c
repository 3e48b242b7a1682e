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

#include "base.h"
#include "sessions.h"

#define SPAWN_CHANNEL_FD	3

static void	spawn_child(int, int, int, char **, char **)
		    __attribute__((noreturn));
static u_int	spawn_threads(const struct session_limits *);

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

/*
 * Fork and exec argv with chan at SPAWN_CHANNEL_FD and err as stderr; the
 * caller keeps its ends.  Used for the shim and for the zygote.
 */
pid_t
spawn_exec(char **argv, int chan, int err, char **cause)
{
	char	*envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin",
			    "LANG=C.UTF-8", NULL };
	pid_t	 pid;
	int	 devnull;

	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1) {
		xasprintf(cause, "/dev/null: %s", strerror(errno));
		return (-1);
	}
	pid = fork();
	if (pid == -1)
		xasprintf(cause, "fork: %s", strerror(errno));
	if (pid == 0)
		spawn_child(chan, err, devnull, argv, envp);
	close(devnull);
	return (pid);
}

/* The shim's command line for one incarnation (see cellblock-shim(8)). */
static void
spawn_argv(const struct spawn_args *a, char **argv, char num[][24],
    char **binds)
{
	json_t	*m;
	size_t	 j;
	int	 i = 0;

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
		snprintf(num[0], 24, "%llu", (unsigned long long)a->limits->tmp);
		snprintf(num[1], 24, "%llu",
		    (unsigned long long)a->limits->nofile);
		snprintf(num[2], 24, "%llu",
		    (unsigned long long)a->limits->fsize);
		snprintf(num[3], 24, "%u", spawn_threads(a->limits));
		argv[i++] = "--contain";
		argv[i++] = "--tmp";
		argv[i++] = num[0];
		argv[i++] = "--nofile";
		argv[i++] = num[1];
		argv[i++] = "--fsize";
		argv[i++] = num[2];
		argv[i++] = "--threads";
		argv[i++] = num[3];
		if (a->rootfs != NULL) {
			argv[i++] = "--rootfs";
			argv[i++] = (char *)a->rootfs;
		}
		if (a->init != NULL) {
			argv[i++] = "--init";
			argv[i++] = (char *)a->init;
		}

		/* Read-only binds (server/files-mount.c checked them). */
		json_array_foreach(a->mounts, j, m) {
			if (j == SPAWN_BINDS_MAX)
				break;
			xasprintf(&binds[j], "%s:%s", json_string_value(
			    json_object_get(m, "source")), json_string_value(
			    json_object_get(m, "target")));
			argv[i++] = "--mount-ro";
			argv[i++] = binds[j];
		}
		if (json_array_size(a->mounts) > 0) {
			snprintf(num[4], 24, "%lu", (unsigned long)a->owner);
			argv[i++] = "--mount-owner";
			argv[i++] = num[4];
			snprintf(num[5], 24, "%lu:%lu", (unsigned long)a->host_uid,
			    (unsigned long)a->host_gid);
			argv[i++] = "--mount-as";
			argv[i++] = num[5];
		}
		if (a->egress_dir != NULL) {
			argv[i++] = "--egress-dir";
			argv[i++] = (char *)a->egress_dir;
		}
	}
	argv[i] = NULL;
}

/*
 * The zygote's spawn request (docs/ZYGOTE.md): the work dir goes as its
 * parent's fd and its own name, as the zygote's uid may not be able to
 * walk the path to it.
 */
static pid_t
spawn_by_zygote(const struct spawn_args *a, int chan, int err, char **cause)
{
	json_t		*req;
	char		*dir, *slash;
	int		 fds[3];
	pid_t		 pid;

	dir = xstrdup(a->workdir);
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir) {
		xasprintf(cause, "work dir %s: not an absolute path", dir);
		free(dir);
		return (-1);
	}
	*slash = '\0';
	fds[0] = chan;
	fds[1] = err;
	fds[2] = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fds[2] == -1) {
		xasprintf(cause, "%s: %s", dir, strerror(errno));
		free(dir);
		return (-1);
	}
	req = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:I,s:I,s:I,s:i,s:i}",
	    "op", "spawn", "workname", slash + 1, "session", a->name,
	    "rootfs", a->rootfs, "init", a->init,
	    "tmp", (json_int_t)a->limits->tmp,
	    "nofile", (json_int_t)a->limits->nofile,
	    "fsize", (json_int_t)a->limits->fsize,
	    "threads", (int)spawn_threads(a->limits), "daemon", (int)getpid());
	pid = zygote_spawn(req, fds, 3, cause);
	json_decref(req);
	close(fds[2]);
	free(dir);
	return (pid);
}

int
spawn_interpreter(struct session *s, const struct spawn_args *a, char **cause)
{
	int	 sv[2], errp[2];
	pid_t	 pid = -1;
	char	*argv[32 + 2 * SPAWN_BINDS_MAX], num[6][24], *why = NULL;
	char	*binds[SPAWN_BINDS_MAX] = { NULL };
	size_t	 i;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		xasprintf(cause, "socketpair: %s", strerror(errno));
		return (-1);
	}
	if (pipe2(errp, O_CLOEXEC) == -1) {
		xasprintf(cause, "pipe: %s", strerror(errno));
		goto close_pair;
	}
	channel_init(&s->chan, sv[0]);
	s->born = SPAWN_EXEC;
	/*
	 * A session with egress or mounts starts by exec: the zygote's
	 * request carries no egress directory (yet), its socket must be bound
	 * in, and the binds are opened by the shim before it unshares.
	 */
	if (a->contain && a->zygote && a->egress_dir == NULL &&
	    json_array_size(a->mounts) == 0 && zygote_ready()) {
		/* Before the child can write: its first frame must carry its pid. */
		if (channel_want_creds(&s->chan, 1) != 0)
			xasprintf(&why, "SO_PASSCRED: %s", strerror(errno));
		else if ((pid = spawn_by_zygote(a, sv[1], errp[1], &why)) > 0)
			s->born = SPAWN_ZYGOTE;
		else
			channel_want_creds(&s->chan, 0);
		if (why != NULL) {
			log_warn("%s: zygote: %s; starting by exec instead",
			    s->name, why);
			free(why);
		}
	}
	if (pid <= 0) {
		spawn_argv(a, argv, num, binds);
		pid = spawn_exec(argv, sv[1], errp[1], cause);
		for (i = 0; i < SPAWN_BINDS_MAX; i++)
			free(binds[i]);
		if (pid == -1) {
			channel_init(&s->chan, -1);
			goto close_pipe;
		}
	}

	close(sv[1]);
	close(errp[1]);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	session_set_pid(s, pid);
	s->errfd = errp[0];
	s->errlen = 0;
	s->incarnation++;
	s->stopping = 0;
	log_info("%s: interpreter %u started as pid %ld (%s)", s->name,
	    s->incarnation, (long)pid, spawn_born_name(s->born));
	return (0);

close_pipe:
	close(errp[0]);
	close(errp[1]);
close_pair:
	close(sv[0]);
	close(sv[1]);
	return (-1);
}

const char *
spawn_born_name(enum spawn_born born)
{
	static const char *names[] = {
		[SPAWN_EXEC] = "exec",
		[SPAWN_ZYGOTE] = "zygote",
		[SPAWN_POOL] = "pool",
	};

	return (born >= 0 && born < (int)nitems(names) ? names[born] : "?");
}

/* BLAS and OpenMP pools: the session's CPU share, rounded up. */
static u_int
spawn_threads(const struct session_limits *l)
{
	return ((l->cpu_millis + 999) / 1000);
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
