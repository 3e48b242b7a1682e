/* zygote.c: the daemon's side of the zygote, the preloaded interpreter. */
/*
 * One zygote per daemon (docs/ZYGOTE.md).  It is started through
 * cellblock-shim --zygote, says "ready" once it has imported everything,
 * then answers each spawn request with the pid of a new session process,
 * which is the daemon's own child (CLONE_PARENT).  The requests are
 * synchronous: the zygote answers right after its clone, in a few
 * milliseconds, and a zygote that does not answer in ZYGOTE_WAIT is
 * stopped, so sessions start by exec until it is back.  This file keeps
 * no loop state: the server polls zygote_fd() and restarts it.
 */

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "sessions.h"

#define ZYGOTE_WAIT	2000	/* ms for the answer to a spawn request */
#define ZYGOTE_MSG_MAX	65536

/* Z_OFF: never started (turned off); Z_DOWN: stopped or dead, restartable. */
enum zygote_state { Z_OFF, Z_DOWN, Z_STARTING, Z_READY };

static struct {
	enum zygote_state	 state;
	pid_t			 pid;
	int			 fd;		/* our end of its control socket */
	uint64_t		 next_id;
	uint64_t		 spawned;
	double			 started;	/* monotonic seconds */
	double			 ready_after;	/* seconds it took to preload */
	char			*last_error;
	char			*stop_reason;	/* why we stopped it, if we did */
} zygote = { Z_OFF, -1, -1, 0, 0, 0, 0, NULL, NULL };

static double
zygote_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

static void
zygote_note_error(const char *what)
{
	free(zygote.last_error);
	zygote.last_error = xstrdup(what);
}

int
zygote_start(const struct zygote_config *zc, char **cause)
{
	char	*argv[20], uid[24], gid[24];
	int	 sv[2], i = 0;
	pid_t	 pid;

	if (zygote.state == Z_STARTING || zygote.state == Z_READY)
		return (0);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		xasprintf(cause, "socketpair: %s", strerror(errno));
		return (-1);
	}
	argv[i++] = (char *)zc->shim;
	argv[i++] = "--zygote";
	argv[i++] = (char *)zc->lib;
	argv[i++] = "--channel-fd";
	argv[i++] = "3";
	argv[i++] = "--workdir";
	argv[i++] = (char *)zc->home;
	argv[i++] = "--runner";
	argv[i++] = (char *)zc->runner;
	argv[i++] = "--python";
	argv[i++] = (char *)zc->python;
	if (zc->uid != (uid_t)-1) {
		snprintf(uid, sizeof uid, "%lu", (u_long)zc->uid);
		snprintf(gid, sizeof gid, "%lu", (u_long)zc->gid);
		argv[i++] = "--uid";
		argv[i++] = uid;
		argv[i++] = "--gid";
		argv[i++] = gid;
	}
	argv[i] = NULL;
	/* Its stderr is ours: a zygote that cannot start says why in our log. */
	pid = spawn_exec(argv, sv[1], STDERR_FILENO, cause);
	close(sv[1]);
	if (pid == -1) {
		close(sv[0]);
		return (-1);
	}
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	zygote.fd = sv[0];
	zygote.pid = pid;
	zygote.state = Z_STARTING;
	zygote.started = zygote_now();
	log_info("zygote starting as pid %ld", (long)pid);
	return (0);
}

int
zygote_fd(void)
{
	return (zygote.fd);
}

int
zygote_ready(void)
{
	return (zygote.state == Z_READY);
}

pid_t
zygote_pid(void)
{
	return (zygote.pid);
}

/* One whole message, waiting at most ms; NULL with *cause on failure. */
static json_t *
zygote_receive(int ms, char **cause)
{
	static char	 buf[ZYGOTE_MSG_MAX];	/* one thread reads it */
	struct pollfd	 pfd = { .fd = zygote.fd, .events = POLLIN };
	ssize_t		 n;
	json_t		*m;
	int		 r;

	while ((r = poll(&pfd, 1, ms)) == -1 && errno == EINTR)
		;
	if (r <= 0) {
		xasprintf(cause, "no answer in %d ms", ms);
		return (NULL);
	}
	n = recv(zygote.fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
	if (n <= 0 || n > (ssize_t)sizeof buf) {
		xasprintf(cause, n == 0 ? "it closed its socket" :
		    n > 0 ? "oversized message" : "recv: %s",
		    strerror(errno));
		return (NULL);
	}
	m = json_loadb(buf, n, 0, NULL);
	if (!json_is_object(m)) {
		json_decref(m);
		xasprintf(cause, "not a JSON object");
		return (NULL);
	}
	return (m);
}

/*
 * Before it is ready, the only message is "ready"; after, it speaks only
 * when asked, so anything readable then (EOF included) means it is broken.
 */
int
zygote_on_readable(char **cause)
{
	json_t		*m;
	const char	*op;
	char		*list;

	if (zygote.fd == -1)
		return (0);
	if ((m = zygote_receive(0, cause)) == NULL)
		return (-1);
	op = json_string_value(json_object_get(m, "op"));
	if (zygote.state != Z_STARTING || op == NULL ||
	    strcmp(op, "ready") != 0) {
		xasprintf(cause, "unexpected message '%s'", op ? op : "?");
		json_decref(m);
		return (-1);
	}
	zygote.state = Z_READY;
	zygote.ready_after = zygote_now() - zygote.started;
	list = json_dumps(json_object_get(m, "preloaded"), JSON_ENCODE_ANY |
	    JSON_COMPACT);
	log_info("zygote pid %ld ready after %.2f s (preloaded: %s)",
	    (long)zygote.pid, zygote.ready_after, list ? list : "?");
	free(list);
	json_decref(m);
	return (0);
}

/* The pid the zygote gave must be a new child of ours, nothing else. */
static int
zygote_check_child(pid_t pid, char **cause)
{
	char	 path[64], buf[512], *p;
	long	 ppid;
	FILE	*f;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "re")) == NULL) {
		xasprintf(cause, "pid %ld: %s", (long)pid, strerror(errno));
		return (-1);
	}
	p = fgets(buf, sizeof buf, f);
	fclose(f);
	/* The command name may hold anything; the fields follow its ')'. */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %*c %ld", &ppid) != 1 || ppid != getpid() ||
	    session_find_pid(pid) != NULL) {
		xasprintf(cause, "pid %ld is not a new child of the daemon",
		    (long)pid);
		return (-1);
	}
	return (0);
}

static int
zygote_send(json_t *req, const int *fds, int nfds, char **cause)
{
	union {
		struct cmsghdr	hdr;
		char		space[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	char		*text;
	ssize_t		 n;

	if (nfds < 1 || nfds > 4)
		fatalx("%s: %d fds", __func__, nfds);
	text = json_dumps(req, JSON_COMPACT);
	iov.iov_base = text;
	iov.iov_len = strlen(text);
	memset(&mh, 0, sizeof mh);
	memset(&cm, 0, sizeof cm);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.space;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	cmsg = CMSG_FIRSTHDR(&mh);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	n = sendmsg(zygote.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(text);
	if (n != (ssize_t)iov.iov_len) {
		xasprintf(cause, "send: %s", n == -1 ? strerror(errno) :
		    "short");
		return (-1);
	}
	return (0);
}

/*
 * Ask for one session process; its pid, or -1 with *cause.  A zygote
 * that fails to answer properly is stopped (the caller falls back to
 * exec); one that answers with an error of its own is kept.
 */
pid_t
zygote_spawn(json_t *req, const int *fds, int nfds, char **cause)
{
	json_t		*m;
	json_int_t	 id = ++zygote.next_id, pid;
	char		*why = NULL;

	if (zygote.state != Z_READY) {
		xasprintf(cause, "not ready");
		return (-1);
	}
	json_object_set_new(req, "id", json_integer(id));
	if (zygote_send(req, fds, nfds, &why) != 0 ||
	    (m = zygote_receive(ZYGOTE_WAIT, &why)) == NULL)
		goto broken;
	if (json_integer_value(json_object_get(m, "id")) != id) {
		json_decref(m);
		why = xstrdup("answer to another request");
		goto broken;
	}
	if (json_object_get(m, "error") != NULL) {
		xasprintf(cause, "refused: %s",
		    json_string_value(json_object_get(m, "error")) ?: "?");
		json_decref(m);
		return (-1);
	}
	pid = json_integer_value(json_object_get(m, "pid"));
	json_decref(m);
	if (pid <= 1 || zygote_check_child(pid, &why) != 0)
		goto broken;
	zygote.spawned++;
	return (pid);

broken:
	xasprintf(cause, "zygote pid %ld broken: %s", (long)zygote.pid,
	    why ? why : "bad answer");
	zygote_stop(why ? why : "bad answer");
	free(why);
	return (-1);
}

/*
 * Stop it.  Its socket stays open until it is reaped (zygote_reaped): the
 * server polls that fd, and a number closed now could be reused by another
 * descriptor before the server stops polling it.
 */
void
zygote_stop(const char *why)
{
	if (zygote.state == Z_OFF || zygote.state == Z_DOWN)
		return;
	if (zygote.pid > 0)
		kill(zygote.pid, SIGKILL);
	zygote.state = Z_DOWN;
	free(zygote.stop_reason);
	zygote.stop_reason = why != NULL ? xstrdup(why) : NULL;
}

/* 1 if pid was the zygote: then *cause says how it ended. */
int
zygote_reaped(pid_t pid, int status, char **cause)
{
	if (pid != zygote.pid || pid <= 0)
		return (0);
	if (WIFSIGNALED(status))
		xasprintf(cause, "killed by signal %d", WTERMSIG(status));
	else
		xasprintf(cause, "exited with status %d", WEXITSTATUS(status));
	if (zygote.stop_reason != NULL) {
		free(zygote.last_error);
		xasprintf(&zygote.last_error, "stopped: %s; %s",
		    zygote.stop_reason, *cause);
	} else
		zygote_note_error(*cause);
	free(zygote.stop_reason);
	zygote.stop_reason = NULL;
	if (zygote.fd != -1)
		close(zygote.fd);
	zygote.fd = -1;
	zygote.pid = -1;
	zygote.state = Z_DOWN;
	return (1);
}

json_t *
zygote_describe(void)
{
	static const char *const names[] = { "off", "down", "starting",
	    "ready" };

	return (json_pack("{s:s,s:I,s:I,s:f,s:s?}", "state",
	    names[zygote.state], "pid", (json_int_t)zygote.pid, "spawned",
	    (json_int_t)zygote.spawned, "preload_seconds", zygote.ready_after,
	    "last_error", zygote.last_error));
}
