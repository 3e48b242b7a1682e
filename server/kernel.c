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

#define KERNEL_KILL_GRACE	2000	/* ms between SIGTERM and SIGKILL */
#define KERNEL_START_TRIES	3	/* deaths before hello, then give up */
#define KERNEL_ARGS_LOGGED	64	/* kernel argument notes, a line each */
#define KERNEL_TIMEOUT_GRACE	2000	/* ms after the timeout's interrupt */
#define KERNEL_QUEUE_MAX	1000	/* requests waiting per session */

struct req {
	uint64_t			 id;
	struct endpoint			*ep;	/* NULL once it is gone */
	int				 which;
	struct jmsg			*msg;
	const struct kernel_entry	*entry;
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
};

enum kernel_where {
	K_DAEMON,	/* answered by the daemon, now */
	K_RUNNER,	/* queued for the interpreter */
};

typedef void kernel_fn(struct session *, struct req *);

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

static void	kernel_pump(struct session *);
static void	kernel_publish(struct session *, struct req *, const char *,
		    json_t *, json_t *, zmsg_t *);
static void	kernel_channel_event(int, uint32_t, void *);
static void	kernel_stderr_event(int, uint32_t, void *);
static void	kernel_watch(struct session *, int);
static void	kernel_stop(struct session *, const char *);
static void	kernel_finish_end(struct session *, const char *);

/* Requests. */

static void
kernel_req_free(struct req *req)
{
	if (req == NULL)
		return;
	loop_timer_cancel(&req->timer);
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
kernel_parent(struct req *req)
{
	return (req != NULL ? req->msg->header_raw : NULL);
}

/*
 * Publish on the session's own endpoint and, once the shared endpoint has
 * spoken for this session, there too under the topic "session/NAME/".
 * Takes ownership of content and metadata.
 */
static void
kernel_publish(struct session *s, struct req *req, const char *type,
    json_t *content, json_t *metadata, zmsg_t *buffers)
{
	struct endpoint	*ep = s->endpoint;
	struct jmsg_out	 out;
	char		*topic;

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
	if (ep != NULL && !ep->closed) {
		xasprintf(&topic, "kernel.%s.%s", s->name, type);
		out.topic = topic;
		endpoint_publish(ep, &out);
		free(topic);
	}
	if (s->shared_seen && endpoint_shared != NULL) {
		xasprintf(&topic, "session/%s/%s", s->name, type);
		out.topic = topic;
		endpoint_publish(endpoint_shared, &out);
		free(topic);
	}
out:
	json_decref(content);
	json_decref(metadata);
}

static void
kernel_status(struct session *s, struct req *req, const char *state)
{
	kernel_publish(s, req, "status",
	    json_pack("{s:s}", "execution_state", state), NULL, NULL);
}

/*
 * Send to req's client on one of its endpoint's sockets, with req as the
 * parent. Takes ownership of content and metadata.
 */
static void
kernel_send(struct session *s, struct req *req, int which, const char *type,
    json_t *content, json_t *metadata, zmsg_t *buffers)
{
	struct jmsg_out	out;

	if (req->ep != NULL && !req->ep->closed && type != NULL) {
		memset(&out, 0, sizeof out);
		out.ids = req->msg->ids;
		out.msg_type = type;
		out.session = s->name;
		out.username = "cellblock";
		out.parent_raw = req->msg->header_raw;
		out.content = content;
		out.metadata = metadata;
		out.buffers = buffers;
		endpoint_send(req->ep, which, &out);
	}
	json_decref(content);
	json_decref(metadata);
}

/* The reply goes back on the socket the request came in on. */
static void
kernel_reply(struct session *s, struct req *req, const char *type,
    json_t *content, json_t *metadata, zmsg_t *buffers)
{
	kernel_send(s, req, req->which, type, content, metadata, buffers);
}

/* busy, reply, idle: for everything answered without the interpreter. */
static void
kernel_answer(struct session *s, struct req *req, json_t *content)
{
	kernel_status(s, req, "busy");
	kernel_reply(s, req, req->entry->reply, content, NULL, NULL);
	kernel_status(s, req, "idle");
}

/* A typed failure: one error on iopub, an error reply, state said. */
static void
kernel_fail(struct session *s, struct req *req, const char *ename,
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
kernel_info(struct session *s, struct req *req)
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
kernel_connect(struct session *s, struct req *req)
{
	struct endpoint	*ep = req->ep;
	json_t		*c = json_pack("{s:s}", "status", "ok");
	int		 i;

	for (i = 0; ep != NULL && i < PORT_N; i++) {
		json_object_set_new(c, connfile_port_names[i],
		    json_integer(ep->ci.ports[i]));
	}
	kernel_answer(s, req, c);
}

static void
kernel_interrupt_req(struct session *s, struct req *req)
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
kernel_shutdown_req(struct session *s, struct req *req)
{
	int	restart = kernel_bool(req->msg->content, "restart", 0);

	kernel_answer(s, req, json_pack("{s:s,s:b}", "status", "ok",
	    "restart", restart));
	if (restart && s->attach == NULL)
		kernel_restart(s, "shutdown_request with restart");
	else
		kernel_end(s, "shutdown_request");
}

static void
kernel_unknown(struct session *s, struct req *req)
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

/* Incoming. */

static struct session *
kernel_shared_session(struct jmsg *jm)
{
	struct session	*s;
	char		 name[SESSION_NAME_MAX + 1], *cause;
	u_char		 hash[32];

	if (session_name_valid(jm->session))
		snprintf(name, sizeof name, "%s", jm->session);
	else {
		crypto_hash_sha256(hash, (const u_char *)jm->session,
		    strlen(jm->session));
		snprintf(name, sizeof name, "c-%02x%02x%02x%02x%02x%02x",
		    hash[0], hash[1], hash[2], hash[3], hash[4], hash[5]);
	}
	if ((s = session_find(name)) != NULL) {
		if (s->owner != server_uid) {
			log_warn("shared: session %s is not the shared "
			    "endpoint's to use", name);
			return (NULL);
		}
	} else if ((s = kernel_new_session(name, server_uid, NULL, NULL,
	    &cause)) == NULL) {
		log_warn("shared: %s", cause);
		free(cause);
		return (NULL);
	}
	s->shared_seen = 1;
	return (s);
}

static void
kernel_input_reply(struct session *s, struct jmsg *jm)
{
	struct req	*cur = s->current;
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
	if (channel_send(&s->chan, m, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
	}
	kernel_watch(s, 1);
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
	struct req	*r;
	size_t		 bytes = size;

	if (zlist_size(s->queue) >= KERNEL_QUEUE_MAX)
		return (1);
	for (r = zlist_first(s->queue); r != NULL; r = zlist_next(s->queue))
		bytes += r->msg->size;
	return (bytes > 2 * cfg.max_message);
}

void
kernel_receive(struct endpoint *ep, int which, struct jmsg *jm)
{
	struct session	*s = ep->session;
	struct req	*req;

	if (s == NULL && (s = kernel_shared_session(jm)) == NULL) {
		jmsg_destroy(&jm);
		return;
	}
	s->last_active = time(NULL);
	if (which == EP_STDIN) {
		if (strcmp(jm->msg_type, "input_reply") == 0)
			kernel_input_reply(s, jm);
		jmsg_destroy(&jm);
		return;
	}
	req = xcalloc(1, sizeof *req);
	req->session = s;
	req->ep = ep;
	req->which = which;
	req->msg = jm;
	req->entry = kernel_lookup(jm->msg_type);
	if (req->entry == NULL || req->entry->where == K_DAEMON) {
		session_add_ref(s);
		if (req->entry == NULL)
			kernel_unknown(s, req);
		else
			req->entry->fn(s, req);
		kernel_req_free(req);
		session_remove_ref(s);
		return;
	}
	req->id = s->next_id++;
	req->execute = strcmp(jm->msg_type, "execute_request") == 0;
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
	zlist_append(s->queue, req);
	kernel_pump(s);
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
kernel_send_request(struct session *s, struct req *req)
{
	json_t	*m;
	char	*cause;
	int	 r;

	m = json_pack("{s:s,s:I,s:s,s:O,s:o,s:s,s:s}", "op", "request",
	    "id", (json_int_t)req->id, "msg_type", req->msg->msg_type,
	    "content", req->msg->content, "buffers",
	    kernel_buffers_b64(req->msg->buffers), "username",
	    req->msg->username, "session", req->msg->session);
	r = channel_send(&s->chan, m, &cause);
	json_decref(m);
	if (r != 0) {
		log_warn("%s: cannot send request: %s", s->name, cause);
		free(cause);
		return (-1);
	}
	kernel_watch(s, 1);
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
	struct req	*req = arg;
	struct session	*s = req->session;

	req->timer = NULL;
	log_warn("%s: cell ignored the timeout's interrupt; restarting",
	    s->name);
	kernel_stop(s, "CellTimeout");
}

/* Armed only for the running request; freeing a request cancels it. */
static void
kernel_timeout_fire(void *arg)
{
	struct req	*req = arg;
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
kernel_timeout_start(struct session *s, struct req *req)
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
kernel_cap_stream(struct req *budget, json_t *content)
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
kernel_cap_output(struct req *budget, const char *type,
    json_t *content)
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
		return (size <= cfg.max_display ? json_incref(content) : NULL);
	if (size <= cfg.max_display)
		return (json_incref(content));
	content = json_deep_copy(content);
	xasprintf(&note, "[cellblock: output of %zu bytes not shown: over the "
	    "%zu-byte display limit]", size, cfg.max_display);
	json_object_set_new(content, "data", json_pack("{s:s}", "text/plain",
	    note));
	json_object_set_new(content, "metadata", json_object());
	free(note);
	return (content);
}

static void
kernel_pump(struct session *s)
{
	struct req	*req;
	char		*cause;
	json_t		*note;

	if (s->current == NULL && zlist_size(s->queue) > 0 && s->pid == -1 &&
	    !s->ending && !s->stopping) {
		if (kernel_start(s, &cause) != 0) {
			log_error("%s: %s", s->name, cause);
			free(cause);
		}
	}
	while (s->current == NULL && s->hello != NULL && !s->stopping &&
	    s->ckpt_op == 0 && s->restore_op == 0 &&
	    (req = zlist_pop(s->queue)) != NULL) {
		s->current = req;
		session_set_state(s, SESSION_BUSY, req->msg->msg_type);
		kernel_status(s, req, "busy");
		if (req->execute && s->restore_report != NULL &&
		    (note = lifecycle_lost_note(s)) != NULL)
			kernel_publish(s, req, "stream", note, NULL, NULL);
		if (kernel_send_request(s, req) != 0)
			kernel_stop(s, "SessionKilled");
		else
			kernel_timeout_start(s, req);
	}
}

/* The last request stays known: late output from threads gets its parent. */
static void
kernel_finish_current(struct session *s)
{
	struct req	*req = s->current;

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

static struct req *
kernel_req_by_id(struct session *s, json_t *msg)
{
	json_int_t	 id = json_integer_value(json_object_get(msg, "id"));
	struct req	*r;

	r = s->current;
	if (r != NULL && (json_int_t)r->id == id)
		return (r);
	r = s->last;
	if (r != NULL && (json_int_t)r->id == id)
		return (r);
	return (NULL);
}

static void
kernel_abort_queued(struct session *s)
{
	struct req	*req, *next;

	req = zlist_first(s->queue);
	while (req != NULL) {
		next = zlist_next(s->queue);
		if (req->execute) {
			zlist_remove(s->queue, req);
			kernel_status(s, req, "busy");
			kernel_reply(s, req, "execute_reply",
			    json_pack("{s:s,s:s,s:s,s:[],s:O?}", "status",
			    "error", "ename", "ExecutionAborted", "evalue",
			    "not run: an earlier cell in the queue raised an "
			    "error", "traceback", "execution_count",
			    s->exec_count), NULL, NULL);
			kernel_status(s, req, "idle");
			kernel_req_free(req);
		}
		req = next;
	}
}

/*
 * The session's kernel arguments (cellblock attach's, opaque here) go to
 * each new interpreter before anything else, so that they configure its
 * shell before the first request or restore runs.
 */
static void
kernel_send_kernel_args(struct session *s)
{
	json_t	*m;
	char	*cause;

	if (s->kernel_args == NULL || json_array_size(s->kernel_args) == 0)
		return;
	m = json_pack("{s:s,s:O}", "op", "configure", "kernel_args",
	    s->kernel_args);
	if (channel_send(&s->chan, m, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
	}
	json_decref(m);
	kernel_watch(s, 1);
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
	if (lifecycle_restore(s))
		return;		/* requests wait for restore_done */
	kernel_pump(s);
}

static void
kernel_on_iopub(struct session *s, json_t *msg)
{
	json_t		*type = json_object_get(msg, "msg_type");
	json_t		*content = json_object_get(msg, "content");
	json_t		*meta = json_object_get(msg, "metadata");
	struct req	*req = kernel_req_by_id(s, msg);
	zmsg_t		*bufs;

	if (!json_is_string(type) || !json_is_object(content)) {
		log_warn("%s: malformed iopub from runner", s->name);
		return;
	}
	if (req != NULL && req->timed_out &&
	    strcmp(json_string_value(type), "error") == 0)
		content = kernel_timeout_error(s, content);
	else if ((content = kernel_cap_output(s->current != NULL ?
	    (struct req *)s->current : (struct req *)s->last,
	    json_string_value(type), content)) == NULL)
		return;
	bufs = kernel_buffers_bin(json_object_get(msg, "buffers"));
	kernel_publish(s, req, json_string_value(type), content,
	    json_is_object(meta) ? json_incref(meta) : NULL, bufs);
	zmsg_destroy(&bufs);
}

static void
kernel_on_reply(struct session *s, json_t *msg)
{
	struct req	*req = s->current;
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
	if (req->timed_out && error) {
		content = kernel_timeout_error(s, content);
		json_object_set_new(meta, "cellblock", json_pack("{s:s,s:b}",
		    "reason", "CellTimeout", "state_preserved", 1));
	} else
		json_incref(content);
	if (req->execute) {
		s->dirty = 1;
		/* The first reply after a resume says what came back. */
		if (s->restore_report != NULL) {
			json_object_set_new(meta, "cellblock_resumed",
			    s->restore_report);
			s->restore_report = NULL;
		}
	}
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
	struct req	*req = s->current;
	json_t		*prompt = json_object_get(msg, "prompt");

	if (req == NULL || kernel_req_by_id(s, msg) != req || req->ep == NULL ||
	    req->ep->closed || !req->allow_stdin) {
		log_warn("%s: input_request with no client to ask", s->name);
		return;
	}
	/* stdin, to the identity of the client whose request runs. */
	kernel_send(s, req, EP_STDIN, "input_request", json_pack("{s:s,s:b}",
	    "prompt", json_is_string(prompt) ? json_string_value(prompt) : "",
	    "password", json_is_true(json_object_get(msg, "password"))),
	    NULL, NULL);
	req->input_pending = 1;
}

/*
 * The shim unshared its namespaces and waits to be mapped and placed in
 * its cgroup; only then may it go on (sessions/contain.c).
 */
static void
kernel_on_contain(struct session *s, json_t *msg)
{
	json_t	*m;
	char	*cause;

	(void)msg;
	if (s->hello != NULL || s->pid <= 0) {
		log_warn("%s: unexpected contain request", s->name);
		return;
	}
	/* A zygote-born process proves it is the pid the zygote named. */
	if (s->chan.creds && s->chan.peer_pid != s->pid) {
		xasprintf(&cause, "the contain request came from pid %ld, not "
		    "from pid %ld", (long)s->chan.peer_pid, (long)s->pid);
		log_error("%s: %s", s->name, cause);
		m = json_pack("{s:s,s:s}", "op", "contain_fail", "error", cause);
		free(cause);
	} else if (contain_enter(s, s->pid, &cause) != 0) {
		log_error("%s: cannot contain interpreter: %s", s->name, cause);
		m = json_pack("{s:s,s:s}", "op", "contain_fail", "error", cause);
		free(cause);
	} else {
		/* One line per start: the benchmark times its phases by it. */
		log_info("%s: interpreter pid %ld contained (uid %lu)", s->name,
		    (long)s->pid, (u_long)s->host_uid);
		m = json_pack("{s:s}", "op", "contain_go");
	}
	if (s->chan.creds)
		channel_want_creds(&s->chan, 0);
	if (channel_send(&s->chan, m, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
	}
	json_decref(m);
	kernel_watch(s, 1);
}

/*
 * Legend: the runner's op, and what to do with it (docs/CHANNEL.md).
 */
static const struct {
	const char	*op;
	void		(*fn)(struct session *, json_t *);
} kernel_ops[] = {
	{ "hello", kernel_on_hello },
	{ "iopub", kernel_on_iopub },
	{ "reply", kernel_on_reply },
	{ "input_request", kernel_on_input_request },
	{ "contain", kernel_on_contain },
	{ "checkpoint_done", lifecycle_on_checkpoint_done },
	{ "restore_done", lifecycle_on_restore_done },
	{ "configured", kernel_on_configured },
};

static void
kernel_on_runner(struct session *s, json_t *msg)
{
	const char	*op = json_string_value(json_object_get(msg, "op"));
	size_t		 i;

	for (i = 0; i < nitems(kernel_ops); i++) {
		if (strcmp(kernel_ops[i].op, op) == 0) {
			kernel_ops[i].fn(s, msg);
			return;
		}
	}
	log_debug("%s: ignoring runner op '%s'", s->name, op);
}

/* Read and handle what the runner sent; -1 when the channel is broken. */
static int
kernel_drain(struct session *s)
{
	json_t	*msg;
	char	*cause;
	int	 r;

	r = channel_fill(&s->chan, &cause);
	if (r == -1) {
		log_warn("%s: channel: %s", s->name, cause);
		free(cause);
	}
	while ((msg = channel_next(&s->chan, &cause)) != NULL) {
		kernel_on_runner(s, msg);
		json_decref(msg);
		if (s->chan.fd == -1)
			return (-1);
	}
	if (cause != NULL) {
		log_warn("%s: channel broken: %s", s->name, cause);
		free(cause);
		return (-1);
	}
	if (r == 0)
		log_debug("%s: channel closed by the interpreter", s->name);
	return (r <= 0 ? -1 : 0);
}

static void
kernel_channel_event(int fd, uint32_t events, void *arg)
{
	struct session	*s = arg;
	char		*cause;

	(void)fd;
	session_add_ref(s);
	if ((events & EPOLLOUT) &&
	    channel_flush(&s->chan, &cause) == -1) {
		log_warn("%s: channel: %s", s->name, cause);
		free(cause);
	}
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
	    kernel_drain(s) != 0) {
		/* Dead or misbehaving: the reaper reports why. */
		kernel_watch(s, 0);
		if (s->pid > 0)
			kill(s->pid, SIGKILL);
	} else
		kernel_watch(s, 1);
	session_remove_ref(s);
}

/* Watch the channel: readable, and writable while output waits; 0: stop. */
static void
kernel_watch(struct session *s, int want)
{
	uint32_t	events;

	if (!want || s->chan.fd == -1) {
		loop_io_remove(&s->chan_io);
		return;
	}
	events = EPOLLIN | (channel_pending(&s->chan) ? EPOLLOUT : 0);
	if (s->chan_io == NULL)
		s->chan_io = loop_io_add(s->chan.fd, events,
		    kernel_channel_event, s);
	else
		loop_io_set(s->chan_io, events);
}

/* The shim's stderr: logged line by line, the tail kept for errors. */
static void
kernel_stderr_event(int fd, uint32_t events, void *arg)
{
	struct session	*s = arg;
	ssize_t		 n;
	char		*nl;

	(void)fd;
	(void)events;
	n = read(s->errfd, s->errbuf + s->errlen,
	    sizeof s->errbuf - 1 - s->errlen);
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			loop_io_remove(&s->err_io);
		return;
	}
	s->errlen += n;
	s->errbuf[s->errlen] = '\0';
	while ((nl = strchr(s->errbuf, '\n')) != NULL) {
		*nl = '\0';
		if (*s->errbuf != '\0')
			log_warn("%s: interpreter: %s", s->name, s->errbuf);
		s->errlen -= nl + 1 - s->errbuf;
		memmove(s->errbuf, nl + 1, s->errlen + 1);
	}
	if (s->errlen == sizeof s->errbuf - 1)
		s->errlen = 0;
}

/* Lifecycle of an incarnation. */

int
kernel_start(struct session *s, char **cause)
{
	struct spawn_args	 a;

	memset(&a, 0, sizeof a);
	a.shim = server_shim_path;
	a.runner = server_runner_path;
	a.python = cfg.python;
	a.workdir = s->workdir;
	a.name = s->name;
	a.limits = &s->limits;
	a.contain = contain_enabled();
	a.zygote = cfg.zygote;
	a.rootfs = cfg.rootfs[0] != '\0' ? cfg.rootfs : NULL;
	if (spawn_interpreter(s, &a, cause) != 0)
		return (-1);
	session_set_state(s, SESSION_CREATING, "interpreter starting");
	kernel_watch(s, 1);
	s->err_io = loop_io_add(s->errfd, EPOLLIN, kernel_stderr_event, s);
	kernel_status(s, NULL, "starting");
	return (0);
}

/*
 * A stop's SIGKILL timer holds a reference to its session. The pending
 * ones are listed so that a daemon exiting before they fire can free them
 * (and the sessions only they still hold): see kernel_shutdown_all.
 */
struct kernel_kill {
	struct session	*s;
	pid_t		 pid;
	struct loop_timer *timer;
};
static zlist_t	*kernel_kills;

static void
kernel_kill_timer(void *arg)
{
	struct kernel_kill	*k = arg;

	k->timer = NULL;
	if (k->s->pid == k->pid) {
		log_warn("%s: pid %ld ignored SIGTERM; killing", k->s->name,
		    (long)k->pid);
		kill(k->pid, SIGKILL);
	}
	zlist_remove(kernel_kills, k);
	session_remove_ref(k->s);
	free(k);
}

/* Ask the incarnation to end: SIGTERM now, SIGKILL after a grace period. */
static void
kernel_stop(struct session *s, const char *reason)
{
	struct kernel_kill	*k;

	if (s->pid <= 0 || s->stopping)
		return;
	s->stopping = 1;
	s->stop_reason = reason;
	kill(s->pid, SIGTERM);
	k = xmalloc(sizeof *k);
	k->s = s;
	k->pid = s->pid;
	session_add_ref(s);
	k->timer = loop_timer_add(KERNEL_KILL_GRACE, kernel_kill_timer, k);
	if (kernel_kills == NULL)
		kernel_kills = zlist_new();
	zlist_append(kernel_kills, k);
}

void
kernel_pump_session(struct session *s)
{
	kernel_pump(s);
}

void
kernel_watch_channel(struct session *s)
{
	kernel_watch(s, 1);
}

void
kernel_stop_session(struct session *s, const char *reason)
{
	kernel_stop(s, reason);
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
	if (s->pid > 0) {
		s->restart_pending = 1;
		kernel_stop(s, "SessionRestarted");
		return;
	}
	lifecycle_drop_checkpoints(s);
	if (kernel_start(s, &cause) != 0) {
		log_error("%s: %s", s->name, cause);
		free(cause);
	}
}

static void
kernel_fail_queue(struct session *s, const char *ename, const char *evalue)
{
	struct req	*req;

	while ((req = zlist_pop(s->queue)) != NULL) {
		kernel_status(s, req, "busy");
		kernel_fail(s, req, ename, evalue, 0);
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
	kernel_fail_queue(s, "SessionEnded", "the session was shut down "
	    "before this request ran");
	if (s->pid > 0)
		kernel_stop(s, "SessionKilled");
	else
		kernel_finish_end(s, why);
}

/* A tree the session controlled, removed without following a link. */
void
kernel_rmtree(const char *path)
{
	char	*cause;

	if (file_remove_tree(path, &cause) != 0) {
		log_warn("%s", cause);
		free(cause);
	}
}

static void
kernel_finish_end(struct session *s, const char *why)
{
	struct endpoint	*ep = s->endpoint;

	session_set_state(s, SESSION_DEAD, why);
	kernel_fail_queue(s, "SessionEnded", "the session ended before this "
	    "request ran");
	if (ep != NULL) {
		kernel_forget_endpoint(s, ep);
		endpoint_close(ep);
		s->endpoint = NULL;
	}
	control_session_ended(s, why);
	lifecycle_forget(s);
	contain_release(s);
	kernel_rmtree(s->workdir);
	kernel_req_free(s->current);
	kernel_req_free(s->last);
	s->current = s->last = NULL;
	session_unlink(s);
}

static void
kernel_death_reason(struct session *s, int status, const char **ename,
    char *evalue, size_t len)
{
	if (contain_oom_killed(s)) {
		*ename = "SessionOutOfMemory";
		snprintf(evalue, len, "the session used more than its memory "
		    "limit of %llu MiB and its interpreter was killed; its "
		    "state is lost", (unsigned long long)(s->limits.memory >>
		    20));
	} else if (s->stopping && s->stop_reason != NULL &&
	    strcmp(s->stop_reason, "CellTimeout") == 0) {
		*ename = s->stop_reason;
		snprintf(evalue, len, "the cell ran longer than %llu s and did "
		    "not stop when interrupted; the interpreter was restarted "
		    "and its state is lost",
		    (unsigned long long)s->limits.exec_timeout);
	} else if (s->stopping && s->stop_reason != NULL) {
		*ename = s->stop_reason;
		snprintf(evalue, len, "the interpreter was stopped (%s)",
		    s->restart_pending ? "restart" : "session ended");
	} else if (WIFSIGNALED(status)) {
		*ename = "SessionKilled";
		snprintf(evalue, len, "the interpreter was killed by signal "
		    "%d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else {
		*ename = "InterpreterExited";
		snprintf(evalue, len, "the interpreter exited with status %d%s%s",
		    WEXITSTATUS(status), s->errlen ? ": " : "", s->errbuf);
	}
}

/* An incarnation is gone: fail what it was doing, then restart or end. */
static void
kernel_lost(struct session *s, int status)
{
	const char	*ename;
	char		 evalue[1280], *cause;
	int		 before_hello = s->hello == NULL;

	kernel_drain(s);
	kernel_watch(s, 0);
	if (s->err_io != NULL)
		kernel_stderr_event(s->errfd, EPOLLIN, s);
	loop_io_remove(&s->err_io);
	kernel_death_reason(s, status, &ename, evalue, sizeof evalue);
	log_info("%s: interpreter pid %ld gone: %s: %s", s->name, (long)s->pid,
	    ename, evalue);
	spawn_close(s);
	session_set_pid(s, -1);
	if (s->ckpt_op != 0) {
		s->ckpt_op = 0;
		if (s->ckpt_waiter != NULL)
			control_answer(s->ckpt_waiter, json_pack("{s:b,s:s,s:i}",
			    "ok", 0, "error", "the interpreter died during the "
			    "checkpoint", "code", EXIT_FAILED));
		s->ckpt_waiter = NULL;
	}
	s->restore_op = 0;
	if (s->current != NULL) {
		kernel_fail(s, s->current, ename, evalue, 0);
		kernel_finish_current(s);
	}
	/*
	 * Stopped to hibernate: hibernated, unless a restart was asked for
	 * meanwhile (kernel_stop found it stopping already): that one must
	 * start clean, not resume from the checkpoint just written.
	 */
	if (s->hibernating && !s->ending && !s->restart_pending) {
		s->hibernating = 0;
		s->stopping = 0;
		session_set_state(s, SESSION_HIBERNATED, "checkpointed and "
		    "stopped");
		kernel_pump(s);		/* a request that came meanwhile */
		return;
	}
	s->hibernating = 0;
	if (s->ending) {
		kernel_finish_end(s, "interpreter stopped");
		return;
	}
	if (before_hello && !s->stopping &&
	    ++s->start_failures >= KERNEL_START_TRIES) {
		log_error("%s: interpreter failed to start %d times; giving up",
		    s->name, s->start_failures);
		kernel_fail_queue(s, "InterpreterFailedToStart", evalue);
		s->stopping = 0;
		s->restart_pending = 0;
		session_set_state(s, SESSION_DEAD, "interpreter cannot start");
		return;
	}
	/*
	 * A restart asked for is a clean start; after a crash the last
	 * checkpoint comes back, unless the config says start clean.
	 */
	if (s->restart_pending || !cfg.restart_from_checkpoint)
		lifecycle_drop_checkpoints(s);
	s->stopping = 0;
	s->restart_pending = 0;
	if (kernel_start(s, &cause) != 0) {
		log_error("%s: %s", s->name, cause);
		kernel_fail_queue(s, "InterpreterFailedToStart", cause);
		free(cause);
		return;
	}
	kernel_pump(s);
}

void
kernel_reaped(pid_t pid, int status)
{
	struct session	*s = session_find_pid(pid);

	if (s == NULL) {
		log_debug("reaped unknown pid %ld", (long)pid);
		return;
	}
	session_add_ref(s);
	kernel_lost(s, status);
	session_remove_ref(s);
}

void
kernel_forget_endpoint(struct session *s, struct endpoint *ep)
{
	struct req	*req;

	for (req = zlist_first(s->queue); req != NULL;
	    req = zlist_next(s->queue)) {
		if (req->ep == ep)
			req->ep = NULL;
	}
	if ((req = s->current) != NULL && req->ep == ep)
		req->ep = NULL;
	if ((req = s->last) != NULL && req->ep == ep)
		req->ep = NULL;
}

/* A fresh directory only: never adopt one a previous session left. */
static int
kernel_mkdir(const char *path, uid_t owner, char **cause)
{
	if (mkdir(path, 0700) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (chown(path, owner, (gid_t)-1) != 0) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	return (0);
}

/*
 * A new session: work directory, optional own endpoint and connection
 * file (ci == NULL: reachable only through the shared endpoint), and its
 * first interpreter, started at once so the first request is fast.
 */
/* Quotas on sessions, overall and per user (sessions brought back count). */
static int
kernel_quota(uid_t owner, char **cause)
{
	size_t	mine = session_owner_count(owner);

	if (session_count() >= cfg.max_sessions) {
		xasprintf(cause, "the daemon already holds %zu sessions "
		    "(max-sessions)", session_count());
		return (-1);
	}
	if (mine >= cfg.max_user_sessions) {
		xasprintf(cause, "uid %u already has %zu sessions "
		    "(max-sessions-per-user)", (u_int)owner, mine);
		return (-1);
	}
	return (0);
}

/*
 * Make a session: work directory (new, or kept from before a restart),
 * optional own endpoint and connection file (ci == NULL: reachable only
 * through the shared endpoint), and, when start is set, its first
 * interpreter at once so the first request is fast.
 */
struct session *
kernel_make_session(const char *name, uid_t owner, const struct conninfo *ci,
    const struct session_limits *limits, const char *keep_workdir,
    uid_t host_uid, int start, char **cause)
{
	struct session	*s;
	struct endpoint	*ep;
	char		*workdir, *path;
	uint32_t	 rnd;

	if (keep_workdir == NULL && kernel_quota(owner, cause) != 0)
		return (NULL);
	/*
	 * A random suffix: a later session of the same name never sees what
	 * an earlier one left, even if its removal failed.
	 */
	randombytes_buf(&rnd, sizeof rnd);
	if (keep_workdir != NULL)
		workdir = xstrdup(keep_workdir);
	else
		xasprintf(&workdir, "%s/work/%s.%08x", server_state_dir, name,
		    rnd);
	s = session_create(name, owner, workdir, cause);
	if (s == NULL) {
		free(workdir);
		return (NULL);
	}
	s->limits = limits != NULL ? *limits : cfg.limits;
	s->host_uid = host_uid;
	if (contain_prepare(s, cause) != 0)
		goto fail;
	/* The interpreter's host uid must own its working directory. */
	if (keep_workdir == NULL &&
	    kernel_mkdir(workdir, s->host_uid, cause) != 0)
		goto fail;
	free(workdir);
	workdir = NULL;
	if (ci != NULL) {
		if ((ep = endpoint_new(s, ci, cause)) == NULL)
			goto fail;
		s->endpoint = ep;
		xasprintf(&path, "%s/sessions/%s.json", server_state_dir, name);
		if (endpoint_write_file(ep, path, owner, cause) != 0) {
			free(path);
			goto fail;
		}
		free(path);
	}
	if (start && kernel_start(s, cause) != 0)
		goto fail;
	lifecycle_save(s);
	return (s);
fail:
	free(workdir);
	if (s->endpoint != NULL)
		endpoint_destroy((struct endpoint **)&s->endpoint);
	contain_release(s);
	session_unlink(s);
	return (NULL);
}

struct session *
kernel_new_session(const char *name, uid_t owner, const struct conninfo *ci,
    const struct session_limits *limits, char **cause)
{
	return (kernel_make_session(name, owner, ci, limits, NULL, (uid_t)-1,
	    1, cause));
}

json_t *
kernel_describe(struct session *s)
{
	struct endpoint	*ep = s->endpoint;
	uint64_t	 mem, cpu;
	json_t		*d;

	contain_stats(s, &mem, &cpu);
	d = json_pack("{s:s,s:i,s:s,s:I,s:s?,s:s,s:I,s:I,s:i,s:b,s:i,s:i,"
	    "s:{s:I,s:f,s:I,s:I,s:I}}",
	    "name", s->name, "owner", (int)s->owner, "state",
	    session_state_name(s->state), "pid", (json_int_t)s->pid,
	    "connection_file", ep != NULL ? ep->path : NULL, "workdir",
	    s->workdir,
	    "created", (json_int_t)s->created, "idle_seconds",
	    (json_int_t)(time(NULL) - s->last_active), "incarnation",
	    (int)s->incarnation, "attached", s->attach != NULL, "queued",
	    (int)zlist_size(s->queue), "uid", (int)s->host_uid, "limits",
	    "memory", (json_int_t)s->limits.memory, "cpus",
	    s->limits.cpu_millis / 1000.0, "pids", (json_int_t)s->limits.pids,
	    "tmp", (json_int_t)s->limits.tmp, "exec_timeout",
	    (json_int_t)s->limits.exec_timeout);
	json_object_set_new(json_object_get(d, "limits"), "idle_timeout",
	    json_integer((json_int_t)s->limits.idle_timeout));
	if (mem != UINT64_MAX)
		json_object_set_new(d, "memory", json_integer(mem));
	if (cpu != UINT64_MAX)
		json_object_set_new(d, "cpu_seconds", json_real(cpu / 1e6));
	json_object_set_new(d, "checkpoint", lifecycle_describe(s));
	if (contain_weaker() != NULL)
		json_object_set_new(d, "weaker_sandbox",
		    json_string(contain_weaker()));
	if (s->pid > 0)
		json_object_set_new(d, "born",
		    json_string(spawn_born_name(s->born)));
	return (d);
}

/* Daemon exit: every interpreter goes, quickly and for sure. */
void
kernel_shutdown_all(void)
{
	struct session		*s;
	struct kernel_kill	*k;
	struct endpoint		*ep;
	int			 i, left, status;
	pid_t			 pid;

	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->pid > 0)
			kill(s->pid, SIGTERM);
	}
	for (i = 0; i < 40; i++) {
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if ((s = session_find_pid(pid)) != NULL)
				session_set_pid(s, -1);
		}
		left = 0;
		for (s = session_first(); s != NULL; s = session_next())
			left += s->pid > 0;
		if (left == 0)
			break;
		usleep(50000);
	}
	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->pid > 0)
			kill(s->pid, SIGKILL);
		loop_io_remove(&s->chan_io);
		loop_io_remove(&s->err_io);
		contain_release(s);
		if ((ep = s->endpoint) == NULL)
			continue;
		/* A session with a checkpoint comes back on the same file. */
		if (s->ckpt_slot >= 0) {
			free(ep->path);
			ep->path = NULL;
		}
		/* Its sockets closed now, not reported dangling by czmq. */
		kernel_forget_endpoint(s, ep);
		endpoint_destroy(&ep);
		s->endpoint = NULL;
	}
	/* Every process is gone: the pending SIGKILLs have nothing to do. */
	while (kernel_kills != NULL && (k = zlist_pop(kernel_kills)) != NULL) {
		loop_timer_cancel(&k->timer);
		session_remove_ref(k->s);
		free(k);
	}
	zlist_destroy(&kernel_kills);
}
