/* egress.c: the daemon's side of egress: run cellblock-egress, hand it sessions. */
/*
 * The proxy (server/egress/egress-proxy.c) is a child with its own loop:
 * the daemon only starts it, restarts it with a backoff when it dies, and
 * logs the records it sends.  For each session with a non-empty
 * allowlist the daemon makes STATE_DIR/egress/NAME/ holding a listening
 * unix socket (egress.sock) and the list for the runner (policy.json);
 * the directory is bound read-only at /run/cellblock in the session's
 * sandbox.  The daemon keeps the listening fd and passes a copy to the
 * proxy, so a restarted proxy gets every session back and connections
 * made meanwhile wait in the backlog.
 *
 * Nothing of this runs when the ceiling (egress-allow) is empty, the
 * default: then no session can have an allowlist.
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "loop.h"
#include "egress/egress.h"

#define EGRESS_SOCK		"egress.sock"
#define EGRESS_POLICY_FILE	"policy.json"
#define EGRESS_RECORD_MAX	8192
#define EGRESS_BACKLOG		128

/* One session the proxy serves. */
struct egress_reg {
	char			 name[SESSION_NAME_MAX + 1];
	uid_t			 owner;
	char			 allow[sizeof ((struct session_limits *)0)->allow_net];
	int			 lfd;
	char			*dir;
	struct egress_reg	*next;
};

static struct egress_reg	*egress_regs;
static char			*egress_path;	/* cellblock-egress */
static pid_t			 egress_pid = -1;
static int			 egress_ctl = -1;
static struct loop_io		*egress_io;
static struct loop_timer	*egress_timer;
static int			 egress_backoff = 1;
static int			 egress_on;
static int			 egress_stopping;

static void	egress_spawn(void);
static void	egress_reaped(pid_t, int, void *);
static int	egress_session_end(struct session *, const void *);

static int
egress_send(struct egress_reg *r, const char *op)
{
	char		 cbuf[CMSG_SPACE(sizeof(int))], *text;
	json_t		*m;
	struct iovec	 iov;
	struct msghdr	 mh;
	struct cmsghdr	*cm;
	ssize_t		 n;

	if (egress_ctl == -1)
		return (-1);
	m = json_pack("{s:s,s:s,s:I,s:s}", "op", op, "session", r->name,
	    "owner", (json_int_t)r->owner, "allow", r->allow);
	text = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	memset(&mh, 0, sizeof mh);
	iov.iov_base = text;
	iov.iov_len = strlen(text);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (strcmp(op, "add") == 0) {
		memset(cbuf, 0, sizeof cbuf);
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof cbuf;
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &r->lfd, sizeof(int));
	}
	n = sendmsg(egress_ctl, &mh, MSG_NOSIGNAL);
	free(text);
	if (n == -1)
		log_warn("%s: egress %s: %s", r->name, op, strerror(errno));
	return (n == -1 ? -1 : 0);
}

/* One record: a line in the daemon's log, and one in the audit log. */
static void
egress_record(const char *text)
{
	json_t		*r = json_loads(text, 0, NULL);
	const char	*op = json_string_value(json_object_get(r, "op"));
	char		*line;

	if (op != NULL && strcmp(op, "ready") == 0) {
		log_info("egress: proxy pid %lld ready as uid %lld",
		    json_integer_value(json_object_get(r, "pid")),
		    json_integer_value(json_object_get(r, "uid")));
		egress_backoff = 1;
	} else if (op != NULL && strcmp(op, "log") == 0) {
		json_object_del(r, "op");
		line = json_dumps(r, JSON_COMPACT);
		log_info("egress %s", line);
		free(line);
		hook_run(HOOK_EGRESS, session_find(json_string_value(
		    json_object_get(r, "session")) ?: ""), r);
	} else
		log_warn("egress: unexpected record from the proxy");
	json_decref(r);
}

static void
egress_event(int fd, uint32_t events, void *arg)
{
	char	buf[EGRESS_RECORD_MAX + 1];
	ssize_t	n;
	int	i;

	(void)events;
	(void)arg;
	/* A bounded batch per wake-up: the proxy cannot hold the loop. */
	for (i = 0; i < 64; i++) {
		n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
		if (n > 0) {
			buf[n] = '\0';
			egress_record(buf);
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			loop_io_remove(&egress_io);
		return;
	}
}

static void
egress_restart(void *arg)
{
	(void)arg;
	egress_timer = NULL;
	if (!egress_stopping)
		egress_spawn();
}

/* The proxy exited (server/child.c): it is restarted after a backoff. */
static void
egress_reaped(pid_t pid, int status, void *arg)
{
	(void)arg;
	loop_io_remove(&egress_io);
	close(egress_ctl);
	egress_ctl = -1;
	egress_pid = -1;
	if (egress_stopping)
		return;
	log_warn("egress: proxy pid %ld %s %d; restart in %d s", (long)pid,
	    WIFSIGNALED(status) ? "killed by signal" : "exited with",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
	    egress_backoff);
	if (egress_timer == NULL)
		egress_timer = loop_timer_add(egress_backoff * 1000,
		    egress_restart, NULL);
	if (egress_backoff < 60)
		egress_backoff *= 2;
}

static void
egress_argv(char **argv, char num[][24])
{
	int	i = 0;

	argv[i++] = egress_path;
	argv[i++] = "--control-fd";
	argv[i++] = "3";
	if (server_uid == 0) {
		/* Past the sessions' range and the zygote's uid. */
		snprintf(num[0], 24, "%zu", cfg.uid_base + cfg.uid_count + 1);
		argv[i++] = "--uid";
		argv[i++] = num[0];
		argv[i++] = "--gid";
		argv[i++] = num[0];
	}
	if (cfg.egress.hosts[0] != '\0') {
		argv[i++] = "--hosts";
		argv[i++] = cfg.egress.hosts;
	}
#define EGRESS_NUM(opt, n, v) do {					\
	snprintf(num[n], 24, "%zu", (size_t)(v));			\
	argv[i++] = opt;						\
	argv[i++] = num[n];						\
} while (0)
	EGRESS_NUM("--max-conns", 1, cfg.egress.max_conns);
	EGRESS_NUM("--max-bytes-in", 2, cfg.egress.max_bytes_in);
	EGRESS_NUM("--max-bytes-out", 3, cfg.egress.max_bytes_out);
	EGRESS_NUM("--rate", 4, cfg.egress.rate);
	EGRESS_NUM("--idle-timeout", 5, cfg.egress.idle_timeout);
	EGRESS_NUM("--max-time", 6, cfg.egress.max_time);
#undef EGRESS_NUM
	argv[i] = NULL;
}

static void
egress_spawn(void)
{
	char			*argv[24], num[8][24], *cause = NULL;
	struct egress_reg	*r;
	int			 sv[2], errfd;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		log_error("egress: socketpair: %s", strerror(errno));
		return;
	}
	egress_argv(argv, num);
	/* Its stderr is ours: the daemon's log. */
	errfd = dup(STDERR_FILENO);
	egress_pid = spawn_exec(argv, sv[1], errfd, &cause);
	close(errfd);
	close(sv[1]);
	if (egress_pid == -1) {
		log_error("egress: %s", cause);
		free(cause);
		close(sv[0]);
		return;
	}
	egress_ctl = sv[0];
	egress_io = loop_io_add(egress_ctl, EPOLLIN, egress_event, NULL);
	child_watch(egress_pid, egress_reaped, NULL);
	for (r = egress_regs; r != NULL; r = r->next)
		egress_send(r, "add");
}

static void
egress_find_program(void)
{
	static const char *const names[] = { "cellblock-egress",
	    "../libexec/cellblock/cellblock-egress" };
	char	exe[PATH_MAX], *dir, *p;
	ssize_t	n;
	size_t	i;

	if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) <= 0)
		fatal("readlink /proc/self/exe");
	exe[n] = '\0';
	dir = dirname(exe);
	for (i = 0; i < nitems(names); i++) {
		xasprintf(&p, "%s/%s", dir, names[i]);
		if (access(p, X_OK) == 0) {
			egress_path = p;
			return;
		}
		free(p);
	}
	fatalx("egress-allow is set but cellblock-egress is not next to %s",
	    dir);
}

/* At start: check the ceiling; start the proxy only if it allows any. */
void
egress_start(void)
{
	struct egress_policy	 ceiling;
	char			*cause = NULL, *dir;

	if (egress_policy_parse(cfg.egress.allow, &ceiling, &cause) != 0)
		fatalx("egress-allow: %s", cause);
	hook_add(HOOK_ENDED, egress_session_end);
	if (ceiling.n == 0) {
		log_info("egress: off (egress-allow is empty: no session may "
		    "reach the network)");
		return;
	}
	egress_find_program();
	xasprintf(&dir, "%s/egress", server_state_dir);
	if (mkdir(dir, 0711) != 0 && errno != EEXIST)
		fatal("mkdir %s", dir);
	free(dir);
	egress_on = 1;
	log_info("egress: ceiling %s", cfg.egress.allow);
	egress_spawn();
}

static void
egress_reg_free(struct egress_reg *r)
{
	char	*p;

	close(r->lfd);
	xasprintf(&p, "%s/%s", r->dir, EGRESS_SOCK);
	unlink(p);
	free(p);
	xasprintf(&p, "%s/%s", r->dir, EGRESS_POLICY_FILE);
	unlink(p);
	free(p);
	rmdir(r->dir);
	free(r->dir);
	free(r);
}

void
egress_stop(void)
{
	struct egress_reg	*r;

	egress_stopping = 1;
	loop_timer_cancel(&egress_timer);
	loop_io_remove(&egress_io);
	if (egress_pid > 0)
		kill(egress_pid, SIGKILL);
	if (egress_ctl != -1)
		close(egress_ctl);
	egress_ctl = -1;
	while ((r = egress_regs) != NULL) {
		egress_regs = r->next;
		egress_reg_free(r);
	}
	free(egress_path);
	egress_path = NULL;
}

static struct egress_reg *
egress_find(const char *name)
{
	struct egress_reg	*r;

	for (r = egress_regs; r != NULL; r = r->next) {
		if (strcmp(r->name, name) == 0)
			return (r);
	}
	return (NULL);
}

/* For the runner: which rules it may open a raw TCP port for. */
static int
egress_write_policy(struct egress_reg *r, char **cause)
{
	struct egress_policy	 p;
	json_t			*list = json_array(), *doc;
	char			 one[300], *path;
	size_t			 i;
	int			 ok;

	if (egress_policy_parse(r->allow, &p, cause) != 0) {
		json_decref(list);
		return (-1);
	}
	for (i = 0; i < p.n; i++) {
		egress_dest_format(&p.d[i], one, sizeof one);
		json_array_append_new(list, json_pack("{s:i,s:s,s:b,s:i}",
		    "index", (int)i, "dest", one, "forward",
		    egress_policy_forwardable(&p.d[i]), "port", p.d[i].port));
	}
	doc = json_pack("{s:s,s:o}", "allow", r->allow, "dests", list);
	xasprintf(&path, "%s/%s", r->dir, EGRESS_POLICY_FILE);
	ok = json_dump_file(doc, path, JSON_COMPACT) == 0 &&
	    chmod(path, 0644) == 0;
	if (!ok)
		xasprintf(cause, "%s: %s", path, strerror(errno));
	free(path);
	json_decref(doc);
	return (ok ? 0 : -1);
}

static int
egress_listen(struct egress_reg *r, char **cause)
{
	struct sockaddr_un	 sun;
	char			*path;
	int			 fd;

	xasprintf(&path, "%s/%s", r->dir, EGRESS_SOCK);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		xasprintf(cause, "%s: path too long for a socket", path);
		free(path);
		return (-1);
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* 0666 in a dir only this session's sandbox can reach. */
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    chmod(path, 0666) != 0 || listen(fd, EGRESS_BACKLOG) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		free(path);
		return (-1);
	}
	free(path);
	r->lfd = fd;
	return (0);
}

/*
 * The directory to bind at /run/cellblock for this session, made on its
 * first start; NULL with *cause NULL when the session has no egress.
 */
const char *
egress_session_dir(struct session *s, char **cause)
{
	struct egress_reg	*r;

	*cause = NULL;
	if (s->limits.allow_net[0] == '\0')
		return (NULL);
	if (!egress_on) {
		xasprintf(cause, "the session allows %s but egress is off "
		    "(egress-allow is empty)", s->limits.allow_net);
		return (NULL);
	}
	if ((r = egress_find(s->name)) != NULL &&
	    strcmp(r->allow, s->limits.allow_net) == 0)
		return (r->dir);
	egress_session_end(s, NULL);
	r = xcalloc(1, sizeof *r);
	snprintf(r->name, sizeof r->name, "%s", s->name);
	snprintf(r->allow, sizeof r->allow, "%s", s->limits.allow_net);
	r->owner = s->owner;
	r->lfd = -1;
	xasprintf(&r->dir, "%s/egress/%s", server_state_dir, s->name);
	if ((mkdir(r->dir, 0755) != 0 && errno != EEXIST) ||
	    chmod(r->dir, 0755) != 0) {
		xasprintf(cause, "%s: %s", r->dir, strerror(errno));
		free(r->dir);
		free(r);
		return (NULL);
	}
	if (egress_listen(r, cause) != 0 || egress_write_policy(r, cause) !=
	    0) {
		egress_reg_free(r);
		return (NULL);
	}
	r->next = egress_regs;
	egress_regs = r;
	egress_send(r, "add");
	return (r->dir);
}

/* HOOK_ENDED: the session is gone, so are its socket and connections. */
static int
egress_session_end(struct session *s, const void *why)
{
	struct egress_reg	**rp, *r;

	(void)why;
	for (rp = &egress_regs; (r = *rp) != NULL; rp = &r->next) {
		if (strcmp(r->name, s->name) == 0) {
			*rp = r->next;
			egress_send(r, "del");
			egress_reg_free(r);
			return (0);
		}
	}
	return (0);
}
