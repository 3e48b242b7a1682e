/* control.c: the unix control socket the CLI talks to, one table of commands. */
/*
 * Requests and replies are single lines of JSON. The peer's uid comes from
 * SO_PEERCRED and owns what it creates; a user sees and touches only their
 * own sessions, root sees all. An `attach` connection stays open for the
 * life of its session: when it closes, the session ends, so a killed
 * launcher never leaves an interpreter behind.
 */

#include <sys/epoll.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server.h"
#include "files.h"
#include "http.h"

#define CONTROL_LINE_MAX	(1024 * 1024)
#define CONTROL_SPARE_CONNS	64	/* per uid beyond one per session */
#define CONTROL_OUT_MAX		(64 * 1024 * 1024) /* unread reply bytes */
#define CONTROL_KERNEL_ARGS_MAX	256	/* attach's kernel_args: as cmd-attach.c */
#define CONTROL_KERNEL_ARG_BYTES 65536

struct control_conn {
	int		 fd;
	uid_t		 uid;
	pid_t		 pid;
	char		*buf;
	size_t		 len;
	size_t		 size;
	struct session	*session;	/* attached session, if any */
	int		 closed;
	struct loop_io	*io;
	struct waiter	 waiter;	/* answers a checkpoint or fork */
	struct waiter	*waiting;	/* &waiter, or control_call's */
	const struct control_stream *stream; /* lines are its protocol's */
	void		*stream_conn;	/* what stream->open made */
	int		 skipping;	/* dropping an oversized stream line */
	u_int		 waits;		/* sessions whose ckpt_waiter it is */
	char		*obuf;		/* replies the socket did not take yet */
	size_t		 olen;
	size_t		 ooff;
	int		 passed_fd;	/* came with the request line, or -1 */
	void		(*job_gone)(void *); /* a long op's: the peer left */
	void		*job;
};

static int	 control_fd = -1;
static char	*control_path;
static zlist_t	*control_conns;		/* open connections */
static int	 control_spare = -1;	/* given up when out of descriptors */
static struct loop_io *control_io;	/* the listening socket */

/* Open connections per uid (a few uids at a time: a list will do). */
static struct control_uid {
	uid_t	uid;
	u_int	conns;
} *control_uids;
static size_t	 control_nuids;

typedef json_t *control_fn(struct control_conn *, json_t *);

static control_fn control_new, control_ls, control_connect,
    control_interrupt, control_restart, control_kill, control_attach,
    control_ping, control_checkpoint, control_fork, control_audit,
    control_stats, control_stream, control_token;

/*
 * Legend: command name as the CLI sends it in "cmd"; handler, which returns
 * the reply object ({"ok": true, ...} or {"ok": false, "error", "code"}).
 */
static const struct {
	const char	*name;
	control_fn	*fn;
} control_table[] = {
	{ "new", control_new },
	{ "ls", control_ls },
	{ "connect", control_connect },
	{ "interrupt", control_interrupt },
	{ "restart", control_restart },
	{ "kill", control_kill },
	{ "attach", control_attach },
	{ "checkpoint", control_checkpoint },
	{ "fork", control_fork },
	{ "ping", control_ping },
	{ "audit", control_audit },
	{ "stats", control_stats },
	{ "token", control_token },
};

/* server/audit.c and server/metrics.c answer these; we know the caller. */
static json_t *
control_audit(struct control_conn *c, json_t *req)
{
	return (audit_query(c->uid, req));
}

static json_t *
control_stats(struct control_conn *c, json_t *req)
{
	return (metrics_query(c->uid, req));
}

static void	control_close(struct control_conn *);
static void	control_answer(struct waiter *, json_t *);
static int	control_session_ended(struct session *, const void *);
static u_int	*control_uid_conns(uid_t);
static int	control_send(struct control_conn *, json_t *);

json_t *
control_error(int code, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;
	json_t	*r;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	r = json_pack("{s:b,s:s,s:i}", "ok", 0, "error", msg, "code", code);
	free(msg);
	return (r);
}

/* The session named in the request, if the caller may touch it. */
static struct session *
control_session(struct control_conn *c, json_t *req, json_t **err)
{
	const char	*name = json_string_value(json_object_get(req, "name"));
	struct session	*s;

	if (name == NULL) {
		*err = control_error(EXIT_USAGE, "no session name given");
		return (NULL);
	}
	s = session_find(name);
	if (s == NULL || s->ending) {
		*err = control_error(EXIT_NOSESSION, "no session '%s'", name);
		return (NULL);
	}
	if (!session_visible(s, c->uid)) {
		*err = control_error(EXIT_DENIED, "session '%s' is not yours",
		    name);
		return (NULL);
	}
	return (s);
}

static json_t *
control_ok(struct session *s)
{
	json_t	*r = json_pack("{s:b}", "ok", 1);

	if (s != NULL)
		json_object_set_new(r, "session", factory_describe(s));
	return (r);
}

static json_t *
control_new(struct control_conn *c, json_t *req)
{
	const char	*name = json_string_value(json_object_get(req, "name"));
	char		 buf[SESSION_NAME_MAX + 1], *cause;
	struct conninfo	 ci;
	struct session	*s;
	struct session_limits lim;
	json_t		*r, *m, *mounts = NULL, *env = NULL;

	if (config_limits(req, &lim, &cause) != 0) {
		r = control_error(EXIT_USAGE, "%s", cause);
		free(cause);
		return (r);
	}
	if (name == NULL) {
		session_random_name(buf, sizeof buf);
		name = buf;
	}
	if ((m = json_object_get(req, "mounts")) != NULL &&
	    (mounts = files_mount_check(m, c->uid, &cause)) == NULL) {
		r = control_error(EXIT_DENIED, "%s", cause);
		free(cause);
		return (r);
	}
	if ((m = json_object_get(req, "env")) != NULL &&
	    (env = factory_env_check(m, &cause)) == NULL) {
		json_decref(mounts);
		r = control_error(EXIT_USAGE, "%s", cause);
		free(cause);
		return (r);
	}
	endpoint_default_ci(&ci, name);
	s = factory_new_session_with(name, c->uid, &ci, &lim, mounts, env,
	    &cause);
	json_decref(mounts);
	json_decref(env);
	if (s == NULL) {
		r = control_error(EXIT_FAILED, "%s", cause);
		free(cause);
		return (r);
	}
	return (control_ok(s));
}

static json_t *
control_ls(struct control_conn *c, json_t *req)
{
	struct session	*s;
	json_t		*list = json_array();
	json_t		*d;
	char		 kid[37];

	(void)req;
	for (s = session_first(); s != NULL; s = session_next()) {
		if (session_visible(s, c->uid) && !s->ending) {
			d = factory_describe(s);
			/* Its id on the HTTP front (docs/GATEWAY.md). */
			gateway_kernel_id(s, kid);
			json_object_set_new(d, "kernel_id", json_string(kid));
			json_array_append_new(list, d);
		}
	}
	return (json_pack("{s:b,s:o,s:o}", "ok", 1, "sessions", list, "http",
	    http_describe()));
}

/* Connection details for `cellblock run`: the key travels to the owner. */
static json_t *
control_connect(struct control_conn *c, json_t *req)
{
	struct session	*s;
	struct endpoint	*ep;
	json_t		*err, *r;

	if ((s = control_session(c, req, &err)) == NULL)
		return (err);
	ep = s->endpoint != NULL ? s->endpoint : endpoint_shared;
	if (ep == NULL)
		return (control_error(EXIT_FAILED, "session '%s' has no "
		    "endpoint", s->name));
	r = control_ok(s);
	json_object_set_new(r, "connection", connfile_to_json(&ep->ci));
	json_object_set_new(r, "shared", json_boolean(ep == endpoint_shared));
	return (r);
}

static json_t *
control_interrupt(struct control_conn *c, json_t *req)
{
	struct session	*s;
	json_t		*err;

	if ((s = control_session(c, req, &err)) == NULL)
		return (err);
	kernel_interrupt(s);
	return (control_ok(s));
}

static json_t *
control_restart(struct control_conn *c, json_t *req)
{
	struct session	*s;
	json_t		*err;

	if ((s = control_session(c, req, &err)) == NULL)
		return (err);
	kernel_restart(s, "cellblock restart");
	return (control_ok(s));
}

static json_t *
control_kill(struct control_conn *c, json_t *req)
{
	struct session	*s;
	json_t		*err, *r;

	if ((s = control_session(c, req, &err)) == NULL)
		return (err);
	r = control_ok(s);
	kernel_end(s, "cellblock kill");
	return (r);
}

/* A kernel argument list is opaque here (the runner reads it), but bounded. */
static int
control_kernel_args_valid(json_t *args)
{
	size_t	 i;
	json_t	*v;

	if (!json_is_array(args) ||
	    json_array_size(args) > CONTROL_KERNEL_ARGS_MAX)
		return (0);
	json_array_foreach(args, i, v) {
		if (!json_is_string(v) ||
		    json_string_length(v) > CONTROL_KERNEL_ARG_BYTES)
			return (0);
	}
	return (1);
}

/*
 * Bind a session to the connection file Jupyter wrote, creating it, or
 * moving an existing session of the caller's (--name) onto those ports.
 */
static json_t *
control_attach(struct control_conn *c, json_t *req)
{
	const char	*name = json_string_value(json_object_get(req, "name"));
	json_t		*args = json_object_get(req, "kernel_args");
	struct conninfo	 ci;
	struct session	*s;
	struct endpoint	*ep;
	char		 buf[SESSION_NAME_MAX + 1], *cause, *path;
	json_t		*r;
	int		 made = 0;

	if (c->session != NULL)
		return (control_error(EXIT_USAGE, "already attached"));
	if (args != NULL && !control_kernel_args_valid(args))
		return (control_error(EXIT_USAGE, "kernel_args must be an "
		    "array of at most %d strings", CONTROL_KERNEL_ARGS_MAX));
	if (connfile_from_json(json_object_get(req, "connection"), &ci,
	    &cause) != 0) {
		r = control_error(EXIT_USAGE, "%s", cause);
		free(cause);
		return (r);
	}
	if (name == NULL) {
		session_random_name(buf, sizeof buf);
		name = buf;
	}
	if ((s = session_find(name)) != NULL && !s->ending) {
		if (!session_visible(s, c->uid))
			return (control_error(EXIT_DENIED, "session '%s' is "
			    "not yours", name));
		if (s->attach != NULL) {
			r = control_error(EXIT_FAILED, "session '%s' is "
			    "already attached", name);
			json_object_set_new(r, "retry", json_true());
			return (r);
		}
		if ((ep = endpoint_new(s, &ci, &cause)) == NULL)
			goto fail;
		if (s->endpoint != NULL) {
			endpoint_close(s->endpoint);
		}
		s->endpoint = ep;
		xasprintf(&path, "%s/sessions/%s.json", server_state_dir, name);
		if (endpoint_write_file(ep, path, s->owner, &cause) != 0)
			log_warn("%s: %s", name, cause), free(cause);
		free(path);
		record_save(s);
	} else if (s != NULL) {
		r = control_error(EXIT_FAILED, "session '%s' is ending", name);
		json_object_set_new(r, "retry", json_true());
		return (r);
	}
	else if ((s = factory_new_session(name, c->uid, &ci, NULL,
	    &cause)) == NULL)
		goto fail;
	else
		made = 1;
	s->attach = c;
	c->session = s;
	if (args != NULL) {
		/* For each interpreter it starts from now: kernel_on_hello. */
		json_decref(s->kernel_args);
		s->kernel_args = json_incref(args);
		/* Born in the warm pool: its hello came before the session. */
		if (made && s->hello != NULL)
			kernel_send_kernel_args(s);
	}
	log_info("%s: attached by pid %ld", s->name, (long)c->pid);
	return (control_ok(s));
fail:
	r = control_error(EXIT_FAILED, "%s", cause);
	free(cause);
	return (r);
}

/* Answered when the runner says the checkpoint is written (NULL: later). */
static json_t *
control_checkpoint(struct control_conn *c, json_t *req)
{
	struct session	*s;
	json_t		*err, *r;
	char		*cause;

	if ((s = control_session(c, req, &err)) == NULL)
		return (err);
	/*
	 * Hibernating: the checkpoint it stops on has just been written; an
	 * error ("no running interpreter") would say the opposite.
	 */
	if (s->state == SESSION_HIBERNATED || s->lc.hibernating)
		return (json_pack("{s:b,s:s}", "ok", 1, "note", "hibernated: "
		    "its checkpoint is current"));
	if (lifecycle_checkpoint(s, 0, c->waiting, &cause) != 0) {
		r = control_error(EXIT_FAILED, "%s", cause);
		free(cause);
		return (r);
	}
	return (NULL);
}

static json_t *
control_fork(struct control_conn *c, json_t *req)
{
	struct session	*s;
	json_t		*err;
	const char	*name = json_string_value(json_object_get(req, "new"));

	if ((s = control_session(c, req, &err)) == NULL)
		return (err);
	if (name == NULL)
		return (control_error(EXIT_USAGE, "no name for the new session"));
	return (lifecycle_fork(s, name, c->uid, c->waiting));
}

/* The answer to a request that waited: a checkpoint or a fork. */
static void
control_answer(struct waiter *w, json_t *reply)
{
	struct control_conn	*c = (struct control_conn *)((char *)w -
	    offsetof(struct control_conn, waiter));

	if (c->waits > 0)
		c->waits--;
	control_send(c, reply);
}

static json_t *
control_ping(struct control_conn *c, json_t *req)
{
	(void)req;
	return (json_pack("{s:b,s:s,s:I,s:o,s:o,s:o,s:o}", "ok", 1, "version",
	    CELLBLOCK_VERSION, "pid", (json_int_t)getpid(), "zygote",
	    zygote_describe(), "http", http_describe(), "pool",
	    pool_describe(c->uid == 0), "cgroup_moves",
	    contain_moves_describe()));
}

/* HTTP tokens belong to the caller's uid (server/token.c). */
static json_t *
control_token(struct control_conn *c, json_t *req)
{
	return (token_control(c->uid, req));
}

/*
 * Stream ops: a surface above (server/mcp.c for `cellblock mcp`) turns a
 * connection into its own protocol's line stream. It registers at start,
 * so this room never calls it by name.
 */
static const struct control_stream *control_streams[4];
static size_t	 control_nstreams;

void
control_stream_register(const struct control_stream *st)
{
	if (control_nstreams == nitems(control_streams))
		fatalx("too many control stream ops");
	control_streams[control_nstreams++] = st;
	control_handle(st->name, control_stream);
}

/* What the stream's protocol sends goes out as lines, as every reply. */
static void
control_stream_out(void *arg, json_t *msg, json_t *about)
{
	(void)about;
	control_send(arg, json_incref(msg));
}

/* From now on this connection's lines are the stream's, as the peer's uid. */
static json_t *
control_stream(struct control_conn *c, json_t *req)
{
	const char	*cmd = json_string_value(json_object_get(req, "cmd"));
	size_t		 i;

	if (c->fd == -1 || c->stream != NULL || c->session != NULL)
		return (control_error(EXIT_USAGE, "not on this connection"));
	for (i = 0; i < control_nstreams; i++) {
		if (strcmp(control_streams[i]->name, cmd) == 0)
			break;
	}
	if (i == control_nstreams)
		return (control_error(EXIT_FAILED, "%s is not served by this "
		    "daemon", cmd));
	c->stream = control_streams[i];
	c->stream_conn = c->stream->open(c->uid, control_stream_out, c);
	return (json_pack("{s:b,s:s}", "ok", 1, "stream", cmd));
}

/* HOOK_ENDED: an attach client hears that its session ended. */
static int
control_session_ended(struct session *s, const void *arg)
{
	const char		*why = arg;
	struct control_conn	*c = s->attach;

	if (c == NULL)
		return (0);
	s->attach = NULL;
	c->session = NULL;
	control_send(c, json_pack("{s:s,s:s,s:s}", "event", "ended", "name",
	    s->name, "reason", why));
	return (0);
}

/*
 * Write what the socket takes now; keep the rest and wait for EPOLLOUT
 * (an `ls` of a thousand sessions is more than a socket buffer). A peer
 * that lets CONTROL_OUT_MAX bytes pile up unread loses its connection.
 */
static int
control_flush(struct control_conn *c)
{
	ssize_t	n;

	while (c->ooff < c->olen) {
		n = send(c->fd, c->obuf + c->ooff, c->olen - c->ooff,
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n <= 0) {
			log_warn("control: uid %u: cannot reply: %s",
			    (u_int)c->uid, strerror(errno));
			c->closed = 1;
			return (-1);
		}
		c->ooff += n;
	}
	if (c->ooff == c->olen) {
		c->ooff = c->olen = 0;
		loop_io_set(c->io, EPOLLIN);
	} else
		loop_io_set(c->io, EPOLLIN | EPOLLOUT);
	return (0);
}

static int
control_send(struct control_conn *c, json_t *reply)
{
	char	*s;
	size_t	 len;

	if (reply == NULL)
		return (0);	/* answered later */
	s = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	if (s == NULL)
		return (-1);
	len = strlen(s);
	s[len++] = '\n';	/* json_dumps leaves room: replaced NUL */
	if (c->olen - c->ooff + len > CONTROL_OUT_MAX) {
		log_warn("control: uid %u: over %d bytes of replies unread; "
		    "closing", (u_int)c->uid, CONTROL_OUT_MAX);
		free(s);
		c->closed = 1;
		return (-1);
	}
	if (c->ooff > 0) {
		memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	c->obuf = xrealloc(c->obuf, c->olen + len);
	memcpy(c->obuf + c->olen, s, len);
	c->olen += len;
	free(s);
	return (control_flush(c));
}

/*
 * One request line: a JSON object whose "cmd" names a row of
 * control_table. Returns the request and *row, or NULL with a cause; any
 * failure is the caller's usage error. Kept apart from dispatch so that it
 * can be fuzzed without a daemon (tests/fuzz/fuzz-control.c).
 */
/*
 * Rows the rooms above this one add at start (contract-ops.c: execute,
 * result, cancel, files), as they call us and we must not name them.
 */
#define CONTROL_EXTRA_MAX	16
static struct {
	const char	*name;
	control_op_fn	*fn;
} control_extra[CONTROL_EXTRA_MAX];
static size_t	control_nextra;

void
control_handle(const char *name, control_op_fn *fn)
{
	if (control_nextra == CONTROL_EXTRA_MAX)
		fatalx("%s: too many rows", __func__);
	control_extra[control_nextra].name = name;
	control_extra[control_nextra++].fn = fn;
}

static control_op_fn *
control_row_fn(size_t row)
{
	if (row < nitems(control_table))
		return (control_table[row].fn);
	return (control_extra[row - nitems(control_table)].fn);
}

json_t *
control_parse_request(const char *line, size_t len, size_t *row,
    char **cause)
{
	json_t		*req;
	json_error_t	 jerr;
	const char	*cmd;
	size_t		 i;

	req = json_loadb(line, len, 0, &jerr);
	if (req == NULL || !json_is_object(req)) {
		json_decref(req);
		xasprintf(cause, "bad request: %s",
		    req == NULL ? jerr.text : "not an object");
		return (NULL);
	}
	cmd = json_string_value(json_object_get(req, "cmd"));
	for (i = 0; cmd != NULL && i < nitems(control_table); i++) {
		if (strcmp(control_table[i].name, cmd) == 0) {
			*row = i;
			return (req);
		}
	}
	for (i = 0; cmd != NULL && i < control_nextra; i++) {
		if (strcmp(control_extra[i].name, cmd) == 0) {
			*row = nitems(control_table) + i;
			return (req);
		}
	}
	xasprintf(cause, "unknown command '%s'", cmd ? cmd : "");
	json_decref(req);
	return (NULL);
}

/*
 * The rows of control_table a caller off the socket (the REST and MCP
 * fronts) may run through control_call: those that need nothing of a
 * connection but its uid and a waiter. attach binds a socket to a
 * session's life; execute, result and files answer on the connection
 * (contract-ops.c): those surfaces call contract.c and files.c directly.
 */
static const char *control_call_ops[] = {
	"new", "ls", "interrupt", "restart", "kill", "checkpoint", "fork",
	"stats",
};

/*
 * One op of control_table for a caller that is not on the socket, so
 * that every surface runs the same code. req names the op in "cmd"; uid
 * is the caller. A NULL reply means w hears the answer later (a
 * checkpoint, a fork): w must live until then.
 */
json_t *
control_call(uid_t uid, json_t *req, struct waiter *w)
{
	struct control_conn	 c;
	const char		*cmd = json_string_value(json_object_get(req,
				     "cmd"));
	size_t			 i, row;

	memset(&c, 0, sizeof c);
	c.fd = -1;
	c.passed_fd = -1;
	c.uid = uid;
	c.pid = -1;
	c.waiting = w;
	for (i = 0; cmd != NULL && i < nitems(control_call_ops); i++) {
		if (strcmp(control_call_ops[i], cmd) != 0)
			continue;
		for (row = 0; row < nitems(control_table); row++) {
			if (strcmp(control_table[row].name, cmd) == 0)
				return (control_table[row].fn(&c, req));
		}
	}
	return (control_error(EXIT_USAGE, "'%s' is not an op for this "
	    "caller", cmd != NULL ? cmd : ""));
}

static json_t *
control_dispatch(struct control_conn *c, const char *line, size_t len)
{
	json_t	*req, *r;
	char	*cause;
	size_t	 row;

	if ((req = control_parse_request(line, len, &row, &cause)) == NULL) {
		r = control_error(EXIT_USAGE, "%s", cause);
		free(cause);
		return (r);
	}
	r = control_row_fn(row)(c, req);
	json_decref(req);
	return (r);
}

/*
 * A read that also takes one descriptor passed with SCM_RIGHTS (cellblock
 * cp hands over the local file it opened as the caller: the daemon never
 * opens the caller's paths itself). It goes with the next request line.
 */
static ssize_t
control_recv(struct control_conn *c)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	struct iovec	 iov;
	struct msghdr	 mh;
	struct cmsghdr	*h;
	ssize_t		 n;
	size_t		 i, nfds;
	int		 fd;

	iov.iov_base = c->buf + c->len;
	iov.iov_len = c->size - c->len;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof cm.buf;
	n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
	/* Every descriptor that came is ours to close: keep one, the last. */
	for (h = CMSG_FIRSTHDR(&mh); n >= 0 && h != NULL;
	    h = CMSG_NXTHDR(&mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfds; i++) {
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
			if (c->passed_fd != -1)
				close(c->passed_fd);
			c->passed_fd = fd;
		}
	}
	return (n);
}

/* For server/contract-ops.c: the caller, its passed fd, replies later. */
uid_t
control_conn_uid(struct control_conn *c)
{
	return (c->uid);
}

int
control_conn_take_fd(struct control_conn *c)
{
	int	fd = c->passed_fd;

	c->passed_fd = -1;
	return (fd);
}

/* A line to the peer now (an event, or the late answer); takes j. */
int
control_conn_send(struct control_conn *c, json_t *j)
{
	if (control_send(c, j) != 0) {
		c->closed = 1;
		return (-1);
	}
	return (0);
}

/*
 * A request answered later (its op returned NULL) holds the connection's
 * job: gone(job) is called if the peer leaves first. job_done ends it.
 */
void
control_conn_job(struct control_conn *c, void (*gone)(void *), void *job)
{
	c->job_gone = gone;
	c->job = job;
}

int
control_conn_busy(struct control_conn *c)
{
	return (c->job_gone != NULL);
}

void
control_conn_job_done(struct control_conn *c)
{
	c->job_gone = NULL;
	c->job = NULL;
	if (c->waits > 0)
		c->waits--;
}

struct session *
control_conn_session(struct control_conn *c, json_t *req, json_t **err)
{
	return (control_session(c, req, err));
}

static void
control_readable(int fd, uint32_t events, void *arg)
{
	struct control_conn	*c = arg;
	char			*nl;
	ssize_t			 n;
	size_t			 used, max;
	json_t			*reply;

	(void)fd;
	if ((events & EPOLLOUT) && control_flush(c) != 0) {
		control_close(c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0)
		return;
	/* Grow by doubling up to the line limit: an idle peer costs little. */
	max = c->stream != NULL ? c->stream->line_max : CONTROL_LINE_MAX;
	if (c->len == c->size && c->size < max) {
		c->size = c->size == 0 ? 4096 : c->size * 2;
		if (c->size > max)
			c->size = max;
		c->buf = xrealloc(c->buf, c->size);
	}
	n = control_recv(c);
	if (n <= 0) {
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		control_close(c);
		return;
	}
	c->len += n;
	while (!c->closed &&
	    (nl = memchr(c->buf, '\n', c->len)) != NULL) {
		used = nl + 1 - c->buf;
		if (c->skipping)
			c->skipping = 0;	/* the oversized line's end */
		else if (c->stream != NULL)
			c->stream->input(c->stream_conn, c->buf, nl - c->buf);
		else {
			reply = control_dispatch(c, c->buf, nl - c->buf);
			if (reply == NULL)
				c->waits++; /* answered later: control_answer */
			control_send(c, reply);
		}
		if (c->passed_fd != -1) {	/* the request did not take it */
			close(c->passed_fd);
			c->passed_fd = -1;
		}
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
	/* A stream's peer hears of its oversized line and keeps its stream. */
	if (c->stream != NULL && c->len == max) {
		if (!c->skipping)
			c->stream->oversized(c->stream_conn);
		c->skipping = 1;
		c->len = 0;
	} else if (c->stream == NULL && c->len == CONTROL_LINE_MAX) {
		log_warn("control: uid %u: request too long", (u_int)c->uid);
		c->closed = 1;
	}
	if (c->closed)
		control_close(c);
}

static void
control_close(struct control_conn *c)
{
	struct session	*s;

	loop_io_remove(&c->io);
	if (c->stream != NULL)
		c->stream->close(c->stream_conn);
	if (c->job_gone != NULL)
		c->job_gone(c->job);
	if (c->passed_fd != -1)
		close(c->passed_fd);
	/* Rare (a checkpoint or fork in flight): no scan for every `new`. */
	for (s = session_first(); c->waits > 0 && s != NULL;
	    s = session_next()) {
		if (lifecycle_forget_waiter(s, &c->waiter))
			c->waits--;
	}
	s = c->session;
	if (s != NULL) {
		s->attach = NULL;
		c->session = NULL;
		kernel_end(s, "its attach client went away");
	}
	zlist_remove(control_conns, c);
	(*control_uid_conns(c->uid))--;
	close(c->fd);
	free(c->buf);
	free(c->obuf);
	free(c);
}

static u_int *
control_uid_conns(uid_t uid)
{
	size_t	i;

	for (i = 0; i < control_nuids; i++) {
		if (control_uids[i].uid == uid)
			return (&control_uids[i].conns);
	}
	control_uids = xrealloc(control_uids, (control_nuids + 1) *
	    sizeof *control_uids);
	control_uids[control_nuids].uid = uid;
	control_uids[control_nuids].conns = 0;
	return (&control_uids[control_nuids++].conns);
}

/* A line a second at most: a flood of refusals must not flood the log. */
static void
control_refused(uid_t uid, const char *why)
{
	static time_t	last;
	static u_int	quiet;
	time_t		now = time(NULL);

	if (now == last) {
		quiet++;
		return;
	}
	log_warn("control: uid %d: connection refused: %s (%u more refused "
	    "since the last such line)", (int)uid, why, quiet);
	last = now;
	quiet = 0;
}

/*
 * Out of descriptors, the pending connection would keep the listening
 * socket readable and the loop spinning: take it with the spare
 * descriptor and hang up at once.
 */
static void
control_shed(void)
{
	int	fd;

	if (control_spare == -1)
		return;
	close(control_spare);
	if ((fd = accept(control_fd, NULL, NULL)) != -1)
		close(fd);
	control_spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	control_refused((uid_t)-1, "the daemon is out of descriptors");
}

static void
control_accept(int lfd, uint32_t events, void *arg)
{
	struct control_conn	*c;
	struct ucred		 cred;
	socklen_t		 len = sizeof cred;
	int			 fd;

	(void)lfd;
	(void)events;
	(void)arg;
	fd = accept4(control_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno == EMFILE || errno == ENFILE)
			control_shed();
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		close(fd);
		return;
	}
	/*
	 * One user must not take every descriptor the daemon has (and with
	 * them every other user's requests): a connection per session (an
	 * attach lives as long as its session) and some to spare. Root is
	 * trusted.
	 */
	if (cred.uid != 0 && *control_uid_conns(cred.uid) >=
	    cfg.max_user_sessions + CONTROL_SPARE_CONNS) {
		control_refused(cred.uid, "too many open connections");
		close(fd);
		return;
	}
	(*control_uid_conns(cred.uid))++;
	c = xcalloc(1, sizeof *c);
	c->waiter.answer = control_answer;
	c->waiting = &c->waiter;
	c->passed_fd = -1;
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->io = loop_io_add(fd, EPOLLIN, control_readable, c);
	if (control_conns == NULL)
		control_conns = zlist_new();
	zlist_append(control_conns, c);
}

int
control_start(const char *path, char **cause)
{
	struct sockaddr_un	 sa;

	hook_add(HOOK_ENDED, control_session_ended);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		xasprintf(cause, "socket path too long: %s", path);
		return (-1);
	}
	strcpy(sa.sun_path, path);
	control_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (control_fd == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return (-1);
	}
	unlink(path);
	if (bind(control_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    chmod(path, 0666) != 0 || listen(control_fd, 128) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		close(control_fd);
		control_fd = -1;
		return (-1);
	}
	control_path = xstrdup(path);
	control_spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	control_io = loop_io_add(control_fd, EPOLLIN, control_accept, NULL);
	return (0);
}

void
control_stop(void)
{
	struct control_conn	*c;

	while (control_conns != NULL &&
	    (c = zlist_first(control_conns)) != NULL) {
		/* The daemon is going, not the session: it comes back. */
		if (c->session != NULL) {
			c->session->attach = NULL;
			c->session = NULL;
		}
		control_close(c);
	}
	zlist_destroy(&control_conns);
	free(control_uids);
	control_uids = NULL;
	control_nuids = 0;
	if (control_spare != -1)
		close(control_spare);
	control_spare = -1;
	if (control_fd == -1)
		return;
	loop_io_remove(&control_io);
	close(control_fd);
	unlink(control_path);
	free(control_path);
	control_fd = -1;
}
