/* kernel.c: the Jupyter protocol core: dispatch, busy/idle, queue, aborts. */
/*
 * Requests arrive decoded from an endpoint. Some are answered here at once
 * (kernel_info must never wait for Python to boot); the rest queue per
 * session and go to the interpreter one at a time, so shell stays FIFO.
 * The runner's messages come back over the channel and are published with
 * the right parent. Every request is bracketed by iopub busy/idle.
 */

#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"
#include "contract.h"

#define KERNEL_START_TRIES	3	/* deaths before hello, then give up */
#define KERNEL_ARGS_LOGGED	64	/* kernel argument notes, a line each */
#define KERNEL_TIMEOUT_GRACE	2000	/* ms after the timeout's interrupt */
#define KERNEL_QUEUE_MAX	1000	/* requests waiting per session */

struct kernel_req {
	uint64_t			 id;
	struct transport_origin		*origin; /* where replies go */
	int				 which;
	struct jmsg			*msg;
	const struct kernel_entry	*entry;
	int				 daemon;	/* answered here */
	int				 aborted;	/* stop_on_error: not run */
	int				 execute;
	int				 silent;
	int				 stop_on_error;
	int				 allow_stdin;
	int				 input_pending;
	struct session			*session;
	struct loop_timer		*timer;		/* exec-timeout */
	int				 timed_out;
	size_t				 stream_bytes;	/* output budget */
	size_t				 other_bytes;
	int				 truncated;
	struct contract_meter		 meter;	/* metadata.cellblock */
	TAILQ_ENTRY(kernel_req)		 qentry; /* in the session's queue */
};

enum kernel_where {
	K_DAEMON,	/* answered by the daemon, now */
	K_RUNNER,	/* queued for the interpreter */
};

typedef void kernel_fn(struct session *, struct kernel_req *);

static kernel_fn kernel_info, kernel_connect, kernel_shutdown_req,
    kernel_interrupt_req;

/*
 * Legend: request type; who answers it; the handler for daemon-answered
 * types; the reply type sent on the request's socket (NULL: none, as for
 * comm messages).
 */
static const struct kernel_entry {
	const char		*type;
	enum kernel_where	 where;
	kernel_fn		*fn;
	const char		*reply;
} kernel_table[] = {
	{ "kernel_info_request", K_DAEMON, kernel_info, "kernel_info_reply" },
	{ "connect_request", K_DAEMON, kernel_connect, "connect_reply" },
	{ "shutdown_request", K_DAEMON, kernel_shutdown_req,
	  "shutdown_reply" },
	{ "interrupt_request", K_DAEMON, kernel_interrupt_req,
	  "interrupt_reply" },
	{ "execute_request", K_RUNNER, NULL, "execute_reply" },
	{ "complete_request", K_RUNNER, NULL, "complete_reply" },
	{ "inspect_request", K_RUNNER, NULL, "inspect_reply" },
	{ "is_complete_request", K_RUNNER, NULL, "is_complete_reply" },
	{ "history_request", K_RUNNER, NULL, "history_reply" },
	{ "comm_info_request", K_RUNNER, NULL, "comm_info_reply" },
	{ "comm_open", K_RUNNER, NULL, NULL },
	{ "comm_msg", K_RUNNER, NULL, NULL },
	{ "comm_close", K_RUNNER, NULL, NULL },
};

static json_t	*kernel_restore_note(struct session *);
static json_t	*kernel_reply_metrics(struct session *, struct kernel_req *,
		    json_t *);
static void	kernel_abort(struct session *, struct kernel_req *);
static void	kernel_daemon_answer(struct session *, struct kernel_req *);
static void	kernel_publish(struct session *, struct kernel_req *, const char *,
		    json_t *, json_t *, zmsg_t *);
static void	kernel_finish_end(struct session *, const char *);

static kernel_resolve_fn	*kernel_resolver;

/* Requests. */

/* The session's queue: its length and bytes kept, never counted. */
static void
kernel_queue_put(struct session *s, struct kernel_req *req)
{
	TAILQ_INSERT_TAIL(&s->queue, req, qentry);
	s->queue_len++;
	s->queue_bytes += req->msg->size;
}

static void
kernel_queue_take(struct session *s, struct kernel_req *req)
{
	TAILQ_REMOVE(&s->queue, req, qentry);
	s->queue_len--;
	s->queue_bytes -= req->msg->size;
}

static void
kernel_req_free(struct kernel_req *req)
{
	if (req == NULL)
		return;
	loop_timer_cancel(&req->timer);
	transport_origin_unref(&req->origin);
	jmsg_destroy(&req->msg);
	free(req);
}

static int
kernel_bool(json_t *content, const char *key, int def)
{
	json_t	*v = json_object_get(content, key);

	return (json_is_boolean(v) ? json_is_true(v) : def);
}

static const struct kernel_entry *
kernel_lookup(const char *type)
{
	size_t	i;

	for (i = 0; i < nitems(kernel_table); i++) {
		if (strcmp(kernel_table[i].type, type) == 0)
			return (&kernel_table[i]);
	}
	return (NULL);
}

/* Output. */

static zframe_t *
kernel_parent(struct kernel_req *req)
{
	return (req != NULL ? req->msg->header_raw : NULL);
}

/*
 * To every subscriber of the session's iopub (transport.h): its own
 * endpoint, the shared one once it has spoken for the session, WebSocket
 * connections. Takes ownership of content and metadata.
 */
static void
kernel_publish(struct session *s, struct kernel_req *req, const char *type,
    json_t *content, json_t *metadata, zmsg_t *buffers)
{
	struct jmsg_out	 out;

	if (req != NULL && req->silent && strcmp(type, "status") != 0)
		goto out;
	memset(&out, 0, sizeof out);
	out.msg_type = type;
	out.session = s->name;
	out.username = "cellblock";
	out.parent_raw = kernel_parent(req);
	out.content = content;
	out.metadata = metadata;
	out.buffers = buffers;
	transport_publish(s, &out);
out:
	json_decref(content);
	json_decref(metadata);
}

static void
kernel_status(struct session *s, struct kernel_req *req, const char *state)
{
	kernel_publish(s, req, "status",
	    json_pack("{s:s}", "execution_state", state), NULL, NULL);
}

/*
 * Send to req's client on one of its endpoint's sockets, with req as the
 * parent. Takes ownership of content and metadata.
 */
static void
kernel_send(struct session *s, struct kernel_req *req, int which, const char *type,
    json_t *content, json_t *metadata, zmsg_t *buffers)
{
	struct jmsg_out	out;

	if (transport_origin_alive(req->origin) && type != NULL) {
		memset(&out, 0, sizeof out);
		out.ids = req->msg->ids;
		out.msg_type = type;
		out.session = s->name;
		out.username = "cellblock";
		out.parent_raw = req->msg->header_raw;
		out.content = content;
		out.metadata = metadata;
		out.buffers = buffers;
		transport_send(req->origin, which, &out);
	}
	json_decref(content);
	json_decref(metadata);
}

/*
 * Every execute_reply carries metadata.cellblock with the request's
 * metrics (docs/PROTOCOL.md), beside what else the core put there.
 */
static json_t *
kernel_reply_metrics(struct session *s, struct kernel_req *req, json_t *meta)
{
	json_t	*cb, *m;

	if (meta == NULL)
		meta = json_object();
	if (!json_is_object(cb = json_object_get(meta, "cellblock"))) {
		cb = json_object();
		json_object_set_new(meta, "cellblock", cb);
	}
	m = contract_meter_metrics(s, &req->meter);
	json_object_update(cb, m);
	json_decref(m);
	return (meta);
}

/* The reply goes back on the socket the request came in on. */
static void
kernel_reply(struct session *s, struct kernel_req *req, const char *type,
    json_t *content, json_t *metadata, zmsg_t *buffers)
{
	struct hook_reply	r;

	if (req->execute)
		metadata = kernel_reply_metrics(s, req, metadata);
	r.request = req->msg;
	r.type = type;
	r.content = content;
	r.cpu_us = req->execute ? req->meter.cpu_used_us : UINT64_MAX;
	hook_run(HOOK_REPLY, s, &r);
	kernel_send(s, req, req->which, type, content, metadata, buffers);
}

/* busy, reply, idle: for everything answered without the interpreter. */
static void
kernel_answer(struct session *s, struct kernel_req *req, json_t *content)
{
	kernel_status(s, req, "busy");
	kernel_reply(s, req, req->entry->reply, content, NULL, NULL);
	kernel_status(s, req, "idle");
}

/* A typed failure: one error on iopub, an error reply, state said. */
static void
kernel_fail(struct session *s, struct kernel_req *req, const char *ename,
    const char *evalue, int preserved)
{
	json_t	*content, *meta;

	content = json_pack("{s:s,s:s,s:s,s:[]}", "status", "error",
	    "ename", ename, "evalue", evalue, "traceback");
	if (req->execute && s->exec_count != NULL)
		json_object_set(content, "execution_count", s->exec_count);
	meta = json_pack("{s:{s:s,s:b}}", "cellblock", "reason", ename,
	    "state_preserved", preserved);
	if (req->execute) {
		kernel_publish(s, req, "error", json_pack("{s:s,s:s,s:[s]}",
		    "ename", ename, "evalue", evalue, "traceback",
		    evalue), NULL, NULL);
	}
	kernel_reply(s, req, req->entry->reply, content, meta, NULL);
	kernel_status(s, req, "idle");
}

/* Daemon-answered requests. */

static json_t *
kernel_language_info(struct session *s)
{
	json_t	*li;

	if (s->hello != NULL &&
	    (li = json_object_get(s->hello, "language_info")) != NULL &&
	    json_is_object(li))
		return (json_incref(li));
	return (json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:i},s:s}",
	    "name", "python", "version", CELLBLOCK_PYVER,
	    "mimetype", "text/x-python", "file_extension", ".py",
	    "pygments_lexer", "ipython3", "codemirror_mode", "name", "ipython",
	    "version", 3, "nbconvert_exporter", "python"));
}

static void
kernel_info(struct session *s, struct kernel_req *req)
{
	char	*banner;

	if (contain_weaker() != NULL)
		xasprintf(&banner, "cellblock %s: Python %s session '%s'\n"
		    "WEAKER SANDBOX: protections off: %s\n", CELLBLOCK_VERSION,
		    CELLBLOCK_PYVER, s->name, contain_weaker());
	else
		xasprintf(&banner, "cellblock %s: Python %s session '%s' "
		    "(sandboxed)\n", CELLBLOCK_VERSION, CELLBLOCK_PYVER,
		    s->name);
	kernel_answer(s, req, json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:[],s:b}",
	    "status", "ok", "protocol_version", PROTOCOL_VERSION,
	    "implementation", "cellblock", "implementation_version",
	    CELLBLOCK_VERSION, "language_info", kernel_language_info(s),
	    "banner", banner, "help_links", "debugger", 0));
	free(banner);
}

static void
kernel_connect(struct session *s, struct kernel_req *req)
{
	const struct conninfo	*ci = NULL;
	json_t			*c = json_pack("{s:s}", "status", "ok");
	int			 i;

	if (transport_origin_alive(req->origin) &&
	    req->origin->ops->conninfo != NULL)
		ci = req->origin->ops->conninfo(req->origin->conn);
	for (i = 0; ci != NULL && i < PORT_N; i++) {
		json_object_set_new(c, connfile_port_names[i],
		    json_integer(ci->ports[i]));
	}
	kernel_answer(s, req, c);
}

static void
kernel_interrupt_req(struct session *s, struct kernel_req *req)
{
	kernel_interrupt(s);
	kernel_answer(s, req, json_pack("{s:s}", "status", "ok"));
}

/*
 * An attached session belongs to the launcher Jupyter started: on any
 * shutdown it ends and the kernel manager starts a new launcher if it
 * wants a restart. Other sessions restart in place.
 */
static void
kernel_shutdown_req(struct session *s, struct kernel_req *req)
{
	int	restart = kernel_bool(req->msg->content, "restart", 0);

	kernel_answer(s, req, json_pack("{s:s,s:b}", "status", "ok",
	    "restart", restart));
	if (s->ending)
		return;		/* answered from the ending session's queue */
	if (restart && s->attach == NULL)
		kernel_restart(s, "shutdown_request with restart");
	else
		kernel_end(s, "shutdown_request");
}

static void
kernel_unknown(struct session *s, struct kernel_req *req)
{
	const char	*type = req->msg->msg_type;
	size_t		 len = strlen(type);
	char		*reply;

	log_warn("%s: unsupported message type '%s'", s->name, type);
	kernel_status(s, req, "busy");
	if (len > 8 && strcmp(type + len - 8, "_request") == 0) {
		xasprintf(&reply, "%.*s_reply", (int)(len - 8), type);
		kernel_reply(s, req, reply, json_pack("{s:s,s:s,s:s,s:[]}",
		    "status", "error", "ename", "UnsupportedRequest", "evalue",
		    type, "traceback"), NULL, NULL);
		free(reply);
	}
	kernel_status(s, req, "idle");
}

/* A request the daemon answers itself, now. */
static void
kernel_daemon_answer(struct session *s, struct kernel_req *req)
{
	if (req->entry == NULL)
		kernel_unknown(s, req);
	else
		req->entry->fn(s, req);
}


static void
kernel_input_reply(struct session *s, struct jmsg *jm)
{
	struct kernel_req	*cur = s->current;
	json_t		*v = json_object_get(jm->content, "value");
	json_t		*m;
	char		*cause;

	if (cur == NULL || !cur->input_pending) {
		log_warn("%s: input_reply with no input pending", s->name);
		return;
	}
	cur->input_pending = 0;
	m = json_pack("{s:s,s:I,s:s}", "op", "input_reply", "id",
	    (json_int_t)cur->id, "value", json_is_string(v) ?
	    json_string_value(v) : "");
	if (incarnation_send(s, m, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
	}
	json_decref(m);
}

/*
 * A client can send requests faster than they run (while a long cell
 * runs, say) and never read a reply: each waiting one costs the daemon
 * memory (some 6 kB for the smallest; 20,000 took 110 MB), so the queue
 * has a bound in requests and in bytes, and what is beyond fails at once.
 */
static int
kernel_queue_full(struct session *s, size_t size)
{
	if (s->queue_len >= KERNEL_QUEUE_MAX)
		return (1);
	return (s->queue_bytes + size > 2 * cfg.max_message);
}

/*
 * The listener every transport calls (transport.h). s == NULL: the
 * request's header.session picks the session, which the origin then
 * hears the iopub of.
 */
void
kernel_receive(struct transport_origin *origin, struct session *s,
    enum transport_channel which, struct jmsg *jm)
{
	struct kernel_req	*req;

	if (s == NULL) {
		if (kernel_resolver == NULL ||
		    (s = kernel_resolver(jm)) == NULL) {
			jmsg_destroy(&jm);
			return;
		}
		transport_subscribe(s, origin);
	}
	s->last_active = time(NULL);
	if (which == TRANSPORT_STDIN) {
		if (strcmp(jm->msg_type, "input_reply") == 0)
			kernel_input_reply(s, jm);
		jmsg_destroy(&jm);
		return;
	}
	req = xcalloc(1, sizeof *req);
	req->session = s;
	req->origin = transport_origin_ref(origin);
	req->which = which;
	req->msg = jm;
	req->entry = kernel_lookup(jm->msg_type);
	req->daemon = req->entry == NULL || req->entry->where == K_DAEMON;
	/*
	 * Shell keeps one order, as ipykernel's does: what the daemon answers
	 * itself waits for the requests ahead of it. Control never waits.
	 */
	if (req->daemon && (which != TRANSPORT_SHELL || s->ending ||
	    (s->current == NULL && TAILQ_EMPTY(&s->queue)))) {
		session_add_ref(s);
		kernel_daemon_answer(s, req);
		kernel_req_free(req);
		session_remove_ref(s);
		return;
	}
	req->id = s->next_id++;
	req->execute = strcmp(jm->msg_type, "execute_request") == 0;
	if (req->execute)
		contract_meter_queued(&req->meter);
	if (s->ending) {
		/* Nothing will run it: say so now rather than never. */
		kernel_status(s, req, "busy");
		kernel_fail(s, req, "SessionEnded", "the session is shutting "
		    "down", 0);
		kernel_req_free(req);
		return;
	}
	if (kernel_queue_full(s, jm->size)) {
		kernel_status(s, req, "busy");
		kernel_fail(s, req, "SessionQueueFull", "too many requests are "
		    "waiting for this session; this one was not queued", 1);
		kernel_req_free(req);
		return;
	}
	if (req->execute) {
		req->silent = kernel_bool(jm->content, "silent", 0);
		req->stop_on_error = kernel_bool(jm->content, "stop_on_error",
		    1);
		req->allow_stdin = kernel_bool(jm->content, "allow_stdin", 1);
	}
	kernel_queue_put(s, req);
	session_add_ref(s);
	kernel_pump(s);
	session_remove_ref(s);
}

/* Talking to the runner. */

static json_t *
kernel_buffers_b64(zmsg_t *buffers)
{
	json_t		*a = json_array();
	zframe_t	*f;
	char		*b64;
	size_t		 len;

	for (f = zmsg_first(buffers); f != NULL; f = zmsg_next(buffers)) {
		len = sodium_base64_encoded_len(zframe_size(f),
		    sodium_base64_VARIANT_ORIGINAL);
		b64 = xmalloc(len);
		sodium_bin2base64(b64, len, zframe_data(f), zframe_size(f),
		    sodium_base64_VARIANT_ORIGINAL);
		json_array_append_new(a, json_string(b64));
		free(b64);
	}
	return (a);
}

static zmsg_t *
kernel_buffers_bin(json_t *a)
{
	zmsg_t		*m;
	json_t		*v;
	size_t		 i, len, out;
	u_char		*bin;

	if (!json_is_array(a) || json_array_size(a) == 0)
		return (NULL);
	m = zmsg_new();
	json_array_foreach(a, i, v) {
		if (!json_is_string(v))
			continue;
		len = json_string_length(v);
		bin = xmalloc(len + 1);
		if (sodium_base642bin(bin, len + 1, json_string_value(v), len,
		    NULL, &out, NULL, sodium_base64_VARIANT_ORIGINAL) == 0)
			zmsg_addmem(m, bin, out);
		free(bin);
	}
	return (m);
}

static int
kernel_send_request(struct session *s, struct kernel_req *req)
{
	json_t	*m;
	char	*cause;
	int	 r;

	m = json_pack("{s:s,s:I,s:s,s:O,s:o,s:s,s:s}", "op", "request",
	    "id", (json_int_t)req->id, "msg_type", req->msg->msg_type,
	    "content", req->msg->content, "buffers",
	    kernel_buffers_b64(req->msg->buffers), "username",
	    req->msg->username, "session", req->msg->session);
	r = incarnation_send(s, m, &cause);
	json_decref(m);
	if (r != 0) {
		log_warn("%s: cannot send request: %s", s->name, cause);
		free(cause);
		return (-1);
	}
	return (0);
}

/*
 * exec-timeout: at the deadline the cell is interrupted; if it is still
 * running after a grace period the interpreter is killed and restarted.
 * Either way the client sees one error named CellTimeout.
 */
static void
kernel_timeout_grace(void *arg)
{
	struct kernel_req	*req = arg;
	struct session	*s = req->session;

	req->timer = NULL;
	log_warn("%s: cell ignored the timeout's interrupt; restarting",
	    s->name);
	incarnation_stop(s, "CellTimeout");
}

/* Armed only for the running request; freeing a request cancels it. */
static void
kernel_timeout_fire(void *arg)
{
	struct kernel_req	*req = arg;
	struct session	*s = req->session;

	req->timer = NULL;
	log_info("%s: cell exceeded %llu s; interrupting", s->name,
	    (unsigned long long)s->limits.exec_timeout);
	req->timed_out = 1;
	spawn_signal(s, SIGINT);
	req->timer = loop_timer_add(KERNEL_TIMEOUT_GRACE, kernel_timeout_grace,
	    req);
}

static void
kernel_timeout_start(struct session *s, struct kernel_req *req)
{
	if (!req->execute || s->limits.exec_timeout == 0)
		return;
	req->timer = loop_timer_add(s->limits.exec_timeout * 1000,
	    kernel_timeout_fire, req);
}

/* The interrupt the timeout caused surfaces as CellTimeout, state kept. */
static json_t *
kernel_timeout_error(struct session *s, json_t *content)
{
	json_t	*c = json_deep_copy(content);
	char	*why;

	xasprintf(&why, "the cell ran longer than %llu s and was interrupted; "
	    "the session's state is preserved",
	    (unsigned long long)s->limits.exec_timeout);
	json_object_set_new(c, "ename", json_string("CellTimeout"));
	json_object_set_new(c, "evalue", json_string(why));
	free(why);
	return (c);
}

/* content shown as it came, and its size for the hooks (the audit's count). */
static json_t *
kernel_sized(json_t *content, size_t size, size_t *sizep)
{
	*sizep = size;
	return (json_incref(content));
}

/*
 * Output caps. Everything the runner publishes is charged to a request's
 * budget: the running one, else the last one (output from threads, or
 * frames a hostile cell writes to the channel itself with any id). Past
 * max-stream bytes of streams the rest is dropped after one notice; other
 * messages may total 4 x max-display, and one display payload over
 * max-display is replaced by a note. So no cell can make the daemon queue
 * more than a bounded amount for subscribers that do not read.
 */
static json_t *
kernel_cap_stream(struct kernel_req *budget, json_t *content)
{
	const char	*text;
	char		*note;

	text = json_string_value(json_object_get(content, "text"));
	budget->stream_bytes += text != NULL ? strlen(text) : 0;
	if (budget->stream_bytes <= cfg.max_stream)
		return (json_incref(content));
	if (budget->truncated)
		return (NULL);
	budget->truncated = 1;
	xasprintf(&note, "\n[cellblock: output truncated: this request wrote "
	    "more than %zu bytes of stream output; the rest is not shown]\n",
	    cfg.max_stream);
	content = json_pack("{s:s,s:s}", "name", "stderr", "text", note);
	free(note);
	return (content);
}

static json_t *
kernel_cap_output(struct kernel_req *budget, const char *type,
    json_t *content, size_t *sizep)
{
	char		*note;
	size_t		 size;

	if (budget == NULL)
		return (NULL);	/* output before any request: nobody asked */
	if (strcmp(type, "stream") == 0)
		return (kernel_cap_stream(budget, content));
	size = json_dumpb(content, NULL, 0, JSON_COMPACT);
	budget->other_bytes += size;
	if (budget->other_bytes > 4 * cfg.max_display)
		return (NULL);
	if (strcmp(type, "display_data") != 0 &&
	    strcmp(type, "update_display_data") != 0 &&
	    strcmp(type, "execute_result") != 0)
		return (size <= cfg.max_display ? kernel_sized(content, size,
		    sizep) : NULL);
	if (size <= cfg.max_display)
		return (kernel_sized(content, size, sizep));
	content = json_deep_copy(content);
	xasprintf(&note, "[cellblock: output of %zu bytes not shown: over the "
	    "%zu-byte display limit]", size, cfg.max_display);
	json_object_set_new(content, "data", json_pack("{s:s}", "text/plain",
	    note));
	json_object_set_new(content, "metadata", json_object());
	free(note);
	return (content);
}

/*
 * The queue's head goes next: answered here if it is the daemon's (a
 * kernel_info that waited for the cell ahead of it), else sent to the
 * interpreter once there is one ready, which is started if there is none.
 */
void
kernel_pump(struct session *s)
{
	struct kernel_req	*req;
	char		*cause;
	json_t		*note;

	session_add_ref(s);
	while (s->current == NULL && !s->dying &&
	    (req = TAILQ_FIRST(&s->queue)) != NULL) {
		if (req->daemon || req->aborted) {
			kernel_queue_take(s, req);
			if (req->aborted)
				kernel_abort(s, req);
			else
				kernel_daemon_answer(s, req);
			kernel_req_free(req);
			continue;
		}
		if (s->pid == -1 && !s->ending && !s->stopping) {
			if (kernel_start(s, &cause) != 0) {
				log_error("%s: %s", s->name, cause);
				free(cause);
			}
			break;
		}
		if (s->hello == NULL || s->stopping || s->lc.ckpt_op != 0 ||
		    s->lc.restore_op != 0)
			break;
		kernel_queue_take(s, req);
		s->current = req;
		hook_run(HOOK_RUN, s, req->msg);
		session_set_state(s, SESSION_BUSY, req->msg->msg_type);
		kernel_status(s, req, "busy");
		if (req->execute && s->lc.restore_report != NULL &&
		    (note = kernel_restore_note(s)) != NULL)
			kernel_publish(s, req, "stream", note, NULL, NULL);
		if (req->execute)
			contract_meter_start(s, &req->meter);
		if (kernel_send_request(s, req) != 0)
			incarnation_stop(s, "SessionKilled");
		else
			kernel_timeout_start(s, req);
	}
	session_remove_ref(s);
}

/* Names a restore could not bring back, as a stderr note for the user. */
static json_t *
kernel_restore_note(struct session *s)
{
	json_t		*lost, *v;
	const char	*err, *refused;
	char		*text, *t;
	size_t		 i;

	if (s->lc.restore_report == NULL)
		return (NULL);
	err = json_string_value(json_object_get(s->lc.restore_report, "error"));
	if (err != NULL) {
		xasprintf(&text, "[cellblock: the session was resumed but its "
		    "checkpoint was refused (%s); variables are lost]\n", err);
		goto out;
	}
	lost = json_object_get(s->lc.restore_report, "lost");
	refused = json_string_value(json_object_get(s->lc.restore_report,
	    "refused_newer"));
	if (json_array_size(lost) == 0 && json_array_size(json_object_get(
	    s->lc.restore_report, "skipped")) == 0 && refused == NULL)
		return (NULL);
	if (refused != NULL)
		xasprintf(&text, "[cellblock: the newest checkpoint was refused "
		    "(%s); resumed from the one before; not restored:", refused);
	else
		text = xstrdup("[cellblock: session resumed from its "
		    "checkpoint; not restored:");
	json_array_foreach(lost, i, v) {
		xasprintf(&t, "%s %s", text, json_string_value(
		    json_object_get(v, "name")));
		free(text);
		text = t;
	}
	json_array_foreach(json_object_get(s->lc.restore_report, "skipped"), i,
	    v) {
		xasprintf(&t, "%s %s", text, json_string_value(
		    json_object_get(v, "name")));
		free(text);
		text = t;
	}
	xasprintf(&t, "%s]\n", text);
	free(text);
	text = t;
out:
	v = json_pack("{s:s,s:s}", "name", "stderr", "text", text);
	free(text);
	return (v);
}

/* The last request stays known: late output from threads gets its parent. */
static void
kernel_finish_current(struct session *s)
{
	struct kernel_req	*req = s->current;

	if (req != NULL)
		loop_timer_cancel(&req->timer);
	/* A running cell is activity: the idle clock restarts now. */
	s->last_active = time(NULL);
	kernel_req_free(s->last);
	s->last = s->current;
	s->current = NULL;
	if (s->pid != -1 && s->hello != NULL)
		session_set_state(s, SESSION_IDLE, "request done");
}

static struct kernel_req *
kernel_req_by_id(struct session *s, json_t *msg)
{
	json_int_t	 id = json_integer_value(json_object_get(msg, "id"));
	struct kernel_req	*r;

	r = s->current;
	if (r != NULL && (json_int_t)r->id == id)
		return (r);
	r = s->last;
	if (r != NULL && (json_int_t)r->id == id)
		return (r);
	return (NULL);
}

/*
 * After a failed cell with stop_on_error, the executes already queued are
 * not run, and say so as ipykernel 6.17 does: busy, a reply whose content
 * is only {"status": "aborted"} (its metadata as ipykernel's), idle. The
 * other requests in the queue stay, answered in order.
 */
static void
kernel_abort(struct session *s, struct kernel_req *req)
{
	char	date[32];

	jmsg_now(date);
	kernel_status(s, req, "busy");
	kernel_reply(s, req, req->entry->reply, json_pack("{s:s}", "status",
	    "aborted"), json_pack("{s:s,s:b,s:s,s:s}", "started", date,
	    "dependencies_met", 1, "engine", s->name, "status", "aborted"),
	    NULL);
	kernel_status(s, req, "idle");
}

/* Marked now, answered when each reaches the head: shell keeps its order. */
static void
kernel_abort_queued(struct session *s)
{
	struct kernel_req	*req;

	TAILQ_FOREACH(req, &s->queue, qentry) {
		if (req->execute && !req->aborted) {
			log_info("%s: aborting %s: %s", s->name,
			    req->msg->msg_id, req->msg->msg_type);
			req->aborted = 1;
		}
	}
}

/*
 * The session's kernel arguments (cellblock attach's, opaque here) and
 * environment (factory_env_check's) go to each new interpreter before
 * anything else, so that they configure its shell before the first
 * request or restore runs; and to one from the warm pool, which said
 * hello before it had a session, when they are set. Never logged: the
 * env's values may be secrets.
 */
void
kernel_send_kernel_args(struct session *s)
{
	json_t	*m;
	char	*cause;
	int	 args = json_array_size(s->kernel_args) != 0;

	if (!args && json_object_size(s->env) == 0)
		return;
	m = json_pack("{s:s}", "op", "configure");
	if (args)
		json_object_set(m, "kernel_args", s->kernel_args);
	if (json_object_size(s->env) != 0)
		json_object_set(m, "env", s->env);
	if (incarnation_send(s, m, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
	}
	json_decref(m);
}

/*
 * What the runner made of the kernel arguments: a line per argument it
 * ignored or warning it got (the sandbox's stderr is /dev/null, so it
 * says so here). Bounded: the runner's words are input like any other.
 */
static void
kernel_on_configured(struct session *s, json_t *msg)
{
	json_t	*v, *notes = json_object_get(msg, "notes");
	size_t	 i;

	json_array_foreach(notes, i, v) {
		if (i == KERNEL_ARGS_LOGGED) {
			log_warn("%s: kernel arguments: %zu more notes",
			    s->name, json_array_size(notes) - i);
			break;
		}
		if (json_is_string(v))
			log_warn("%s: kernel arguments: %.300s", s->name,
			    json_string_value(v));
	}
	v = json_object_get(msg, "applied");
	log_info("%s: kernel arguments: %zu sections applied", s->name,
	    json_is_array(v) ? json_array_size(v) : 0);
}

static void
kernel_on_hello(struct session *s, json_t *msg)
{
	json_decref(s->hello);
	s->hello = json_incref(msg);
	s->start_failures = 0;
	kernel_send_kernel_args(s);
	session_set_state(s, SESSION_IDLE, "interpreter ready");
	if (hook_run(HOOK_HELLO, s, NULL))
		return;		/* requests wait: a restore (lifecycle.c) */
	kernel_pump(s);
}

static void
kernel_on_iopub(struct session *s, json_t *msg)
{
	json_t		*type = json_object_get(msg, "msg_type");
	json_t		*content = json_object_get(msg, "content");
	json_t		*meta = json_object_get(msg, "metadata");
	struct kernel_req	*req = kernel_req_by_id(s, msg);
	struct hook_output	 out = { NULL, NULL, SIZE_MAX };
	zmsg_t		*bufs;

	if (!json_is_string(type) || !json_is_object(content)) {
		log_warn("%s: malformed iopub from runner", s->name);
		return;
	}
	if (strcmp(json_string_value(type), "stream") == 0 &&
	    (s->current != NULL || s->last != NULL))
		contract_meter_stream(s->current != NULL ? &s->current->meter :
		    &s->last->meter, content);
	if (req != NULL && req->timed_out &&
	    strcmp(json_string_value(type), "error") == 0)
		content = kernel_timeout_error(s, content);
	else if ((content = kernel_cap_output(s->current != NULL ?
	    (struct kernel_req *)s->current : (struct kernel_req *)s->last,
	    json_string_value(type), content, &out.size)) == NULL)
		return;
	bufs = kernel_buffers_bin(json_object_get(msg, "buffers"));
	out.type = json_string_value(type);
	out.content = content;
	hook_run(HOOK_OUTPUT, s, &out);
	kernel_publish(s, req, json_string_value(type), content,
	    json_is_object(meta) ? json_incref(meta) : NULL, bufs);
	zmsg_destroy(&bufs);
}

/* Merge fields into metadata.cellblock; takes add. */
static void
kernel_meta_set(json_t *meta, json_t *add)
{
	json_t	*cb;

	if (!json_is_object(cb = json_object_get(meta, "cellblock"))) {
		cb = json_object();
		json_object_set_new(meta, "cellblock", cb);
	}
	json_object_update(cb, add);
	json_decref(add);
}

/*
 * Where a SyntaxError is, as the runner found it (its reply op's
 * "cellblock" member, never in the content: that stays ipykernel's):
 * metadata.cellblock.error_line and error_column, integers only.
 */
static void
kernel_error_location(json_t *from, json_t *meta)
{
	json_t	*line = json_object_get(from, "line");
	json_t	*col = json_object_get(from, "column");
	json_t	*cb;

	if (!json_is_integer(line))
		return;
	if (!json_is_object(cb = json_object_get(meta, "cellblock"))) {
		cb = json_object();
		json_object_set_new(meta, "cellblock", cb);
	}
	json_object_set(cb, "error_line", line);
	if (json_is_integer(col))
		json_object_set(cb, "error_column", col);
}

static void
kernel_on_reply(struct session *s, json_t *msg)
{
	struct kernel_req	*req = s->current;
	json_t		*content = json_object_get(msg, "content");
	json_t		*meta = json_object_get(msg, "metadata");
	zmsg_t		*bufs;
	int		 error;

	if (req == NULL || kernel_req_by_id(s, msg) != req ||
	    !json_is_object(content)) {
		log_warn("%s: reply for no running request", s->name);
		return;
	}
	if (req->execute && json_object_get(content, "execution_count")) {
		json_decref(s->exec_count);
		s->exec_count = json_incref(json_object_get(content,
		    "execution_count"));
	}
	error = strcmp(json_string_value(json_object_get(content, "status")) ?
	    json_string_value(json_object_get(content, "status")) : "",
	    "error") == 0;
	bufs = kernel_buffers_bin(json_object_get(msg, "buffers"));
	meta = json_is_object(meta) ? json_deep_copy(meta) : json_object();
	if (error)
		kernel_error_location(json_object_get(msg, "cellblock"), meta);
	if (req->timed_out && error) {
		content = kernel_timeout_error(s, content);
		kernel_meta_set(meta, json_pack("{s:s,s:b}", "reason",
		    "CellTimeout", "state_preserved", 1));
	} else
		json_incref(content);
	/* Lifecycle's: the state changed; the first reply after a resume. */
	if (req->execute)
		hook_run(HOOK_EXECUTED, s, meta);
	kernel_reply(s, req, req->entry->reply, content, meta, bufs);
	zmsg_destroy(&bufs);
	kernel_status(s, req, "idle");
	if (req->execute && error && req->stop_on_error)
		kernel_abort_queued(s);
	kernel_finish_current(s);
	kernel_pump(s);
}

static void
kernel_on_input_request(struct session *s, json_t *msg)
{
	struct kernel_req	*req = s->current;
	json_t		*prompt = json_object_get(msg, "prompt");

	if (req == NULL || kernel_req_by_id(s, msg) != req ||
	    !transport_origin_alive(req->origin) || !req->allow_stdin) {
		log_warn("%s: input_request with no client to ask", s->name);
		return;
	}
	/* stdin, to the identity of the client whose request runs. */
	kernel_send(s, req, TRANSPORT_STDIN, "input_request", json_pack("{s:s,s:b}",
	    "prompt", json_is_string(prompt) ? json_string_value(prompt) : "",
	    "password", json_is_true(json_object_get(msg, "password"))),
	    NULL, NULL);
	req->input_pending = 1;
}








/* Lifecycle of an incarnation. */

/* A new incarnation, announced as ipykernel does: status "starting". */
int
kernel_start(struct session *s, char **cause)
{
	if (incarnation_start(s, cause) != 0)
		return (-1);
	hook_run(HOOK_SPAWN, s, NULL);
	kernel_status(s, NULL, "starting");
	return (0);
}







void
kernel_interrupt(struct session *s)
{
	if (s->current != NULL && s->hello != NULL)
		spawn_signal(s, SIGINT);
}

void
kernel_restart(struct session *s, const char *why)
{
	char	*cause;

	log_info("%s: restarting interpreter (%s)", s->name, why);
	hook_lifecycle(s, "restart", why, NULL);
	if (s->pid > 0) {
		s->restart_pending = 1;
		incarnation_stop(s, "SessionRestarted");
		return;
	}
	hook_run(HOOK_CLEAN_START, s, NULL);
	if (kernel_start(s, &cause) != 0) {
		log_error("%s: %s", s->name, cause);
		free(cause);
	}
}

static void
kernel_fail_queue(struct session *s, const char *ename, const char *evalue)
{
	struct kernel_req	*req;

	while ((req = TAILQ_FIRST(&s->queue)) != NULL) {
		kernel_queue_take(s, req);
		if (req->daemon)
			kernel_daemon_answer(s, req);
		else {
			kernel_status(s, req, "busy");
			kernel_fail(s, req, ename, evalue, 0);
		}
		kernel_req_free(req);
	}
}

void
kernel_end(struct session *s, const char *why)
{
	if (s->ending)
		return;
	session_set_ending(s);
	log_info("%s: ending (%s)", s->name, why);
	hook_lifecycle(s, "end", why, NULL);
	kernel_fail_queue(s, "SessionEnded", "the session was shut down "
	    "before this request ran");
	if (s->pid > 0)
		incarnation_stop(s, "SessionKilled");
	else
		kernel_finish_end(s, why);
}


static void
kernel_finish_end(struct session *s, const char *why)
{
	session_set_state(s, SESSION_DEAD, why);
	kernel_fail_queue(s, "SessionEnded", "the session ended before this "
	    "request ran");
	/* The factory's endpoint, record, cgroup, work dir; an attach client. */
	hook_run(HOOK_ENDED, s, why);
	transport_subs_free(s);
	kernel_req_free(s->current);
	kernel_req_free(s->last);
	s->current = s->last = NULL;
	session_destroy(&s);
}


/* HOOK_LOST: fail what the incarnation was doing, then restart or end. */
static int
kernel_lost(struct session *s, const void *arg)
{
	const struct hook_lost	*lost = arg;
	const char		*ename = lost->ename, *evalue = lost->evalue;
	char			*cause;
	int			 before_hello = lost->before_hello;
	int			 hibernated;

	if (s->pooled)
		return (0);	/* an unclaimed warm-pool member: server/pool.c */
	/* Lifecycle's ops in flight end; 1: it stopped to hibernate. */
	hibernated = hook_run(HOOK_STOPPED, s, NULL);
	if (s->current != NULL) {
		kernel_fail(s, s->current, ename, evalue, 0);
		kernel_finish_current(s);
	}
	/*
	 * Stopped to hibernate: hibernated, unless a restart was asked for
	 * meanwhile (kernel_stop found it stopping already): that one must
	 * start clean, not resume from the checkpoint just written.
	 */
	if (hibernated && !s->ending && !s->restart_pending) {
		s->stopping = 0;
		session_set_state(s, SESSION_HIBERNATED, "checkpointed and "
		    "stopped");
		hook_lifecycle(s, "hibernate", "checkpointed and stopped",
		    NULL);
		kernel_pump(s);		/* a request that came meanwhile */
		return (0);
	}
	if (s->ending) {
		kernel_finish_end(s, "interpreter stopped");
		return (0);
	}
	if (before_hello && !s->stopping &&
	    ++s->start_failures >= KERNEL_START_TRIES) {
		log_error("%s: interpreter failed to start %d times; giving up",
		    s->name, s->start_failures);
		kernel_fail_queue(s, "InterpreterFailedToStart", evalue);
		s->stopping = 0;
		s->restart_pending = 0;
		session_set_state(s, SESSION_DEAD, "interpreter cannot start");
		return (0);
	}
	/*
	 * A restart asked for is a clean start; after a crash the last
	 * checkpoint comes back, unless the config says start clean.
	 */
	if (s->restart_pending || !cfg.restart_from_checkpoint)
		hook_run(HOOK_CLEAN_START, s, NULL);
	s->stopping = 0;
	s->restart_pending = 0;
	if (kernel_start(s, &cause) != 0) {
		log_error("%s: %s", s->name, cause);
		kernel_fail_queue(s, "InterpreterFailedToStart", cause);
		free(cause);
		return (0);
	}
	kernel_pump(s);
	return (0);
}








/* The session a request names when its origin has none (the shared one). */
void
kernel_set_resolver(kernel_resolve_fn *fn)
{
	kernel_resolver = fn;
}

/*
 * The header frame of the request the interpreter runs now, NULL if
 * none: how an in-process origin (contract.c) tells its request's busy
 * from the busy of a reply that fails it unrun (aborted, queue full).
 */
const void *
kernel_running(struct session *s)
{
	return (s->current != NULL ? (const void *)s->current->msg->header_raw :
	    NULL);
}

size_t
kernel_queued(struct session *s)
{
	return (s->queue_len);
}

/* Before any session: the runner's ops and the hooks the core handles. */
void
kernel_init(void)
{
	incarnation_handle("hello", kernel_on_hello);
	incarnation_handle("iopub", kernel_on_iopub);
	incarnation_handle("reply", kernel_on_reply);
	incarnation_handle("input_request", kernel_on_input_request);
	incarnation_handle("configured", kernel_on_configured);
	hook_add(HOOK_LOST, kernel_lost);
}
