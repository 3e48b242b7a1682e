/* rtt.c: a small C Jupyter client for cellblock's benchmark harness. */
/*
 * It measures what a Python client would blur: the round trip of one
 * execute_request, from sending it to having both its execute_reply (shell)
 * and its `status: idle` (iopub). Messages are built and checked with the
 * project's own codec (protocol/jmsg.c, protocol/sign.c): HMAC-SHA256 on
 * every message sent and verified on every message received, as any real
 * client does.
 *
 *	rtt conn [-n N] [-w W] [-c CODE] FILE
 *	    One session (cellblock or ipykernel; any Jupyter connection
 *	    file): W warm-up executes, then N timed ones, one at a time.
 *	rtt direct [-n N] [-w W] [-c CODE] -r RUNNER [-p PYTHON]
 *	    No daemon, no ZeroMQ: spawn the cellblock runner on a socketpair
 *	    and speak docs/CHANNEL.md to it, as the daemon does. The
 *	    difference from `conn` is what the daemon (and the wire) adds.
 *	rtt tput [-n N] [-w W] [-c CODE] FILE...
 *	    One DEALER + SUB per connection file, all driven at once from one
 *	    poll loop, one execute in flight per session, N per session.
 *	rtt start [-c CODE] SOCKET
 *	    A session's start as a client sees it, without a Python client's
 *	    own setup: `new` on the daemon's control socket, then at once
 *	    connect to the new session and send one execute_request; the
 *	    clock stops at its execute_reply. ZeroMQ's context is made before
 *	    the clock starts (a client has one already).
 *	rtt first [-c CODE] FILE
 *	    The same from connect on, against a running session: the
 *	    client's own part of a start.
 *
 * Output is one JSON object on stdout: samples in microseconds and, for
 * tput, the elapsed wall time. Every wait is bounded (-t, default 30 s
 * per execute); a timeout exits 1 with a message on stderr.
 */

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "protocol.h"

#define RTT_MAX_CONN	1024

struct conn {
	const char	*path;
	zsock_t		*shell;
	zsock_t		*iopub;
	struct sign	*sign;
	char		 session[37];
	char		 sent[64];	/* msg_id in flight */
	unsigned long	 seq;
	int		 replied;
	int		 idle;
	int		 done;		/* executes completed in this phase */
	int		 record;	/* keep samples in this phase */
	int64_t		 t0;
	double		*samples;	/* timed round trips, µs */
	double		*reply_samples;	/* send -> execute_reply, µs */
	int		 nsamples;
	int		 errors;	/* execute_reply status != ok */
};

static int		 opt_n = 2000;
static int		 opt_warm = 50;
static int		 opt_timeout = 30;	/* seconds per execute */
static const char	*opt_code = "1+1";
static const char	*opt_runner;
static const char	*opt_python = "/usr/bin/python3";

static int64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static void
die(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "rtt: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* JSON-escapes s into a static buffer (the code cell is short). */
static const char *
json_quote(const char *s)
{
	json_t		*j = json_string(s);
	static char	*buf;

	free(buf);
	buf = json_dumps(j, JSON_ENCODE_ANY);
	json_decref(j);
	return (buf);
}

/* ---- Jupyter over ZeroMQ ---------------------------------------------- */

static zsock_t *
conn_socket(int type, const char *transport, const char *ip, int port)
{
	zsock_t	*s = zsock_new(type);

	if (s == NULL)
		die("zsock_new failed");
	zsock_set_linger(s, 0);
	zsock_set_rcvhwm(s, 0);
	zsock_set_sndhwm(s, 0);
	if (type == ZMQ_SUB)
		zsock_set_subscribe(s, "");
	if (strcmp(transport, "ipc") == 0) {
		if (zsock_connect(s, "ipc://%s-%d", ip, port) != 0)
			die("connect ipc://%s-%d failed", ip, port);
	} else if (zsock_connect(s, "tcp://%s:%d", ip, port) != 0)
		die("connect tcp://%s:%d failed", ip, port);
	return (s);
}

static void
conn_open(struct conn *c, const char *path)
{
	json_error_t	 err;
	json_t		*o;
	const char	*key, *transport, *ip, *scheme;
	char		*cause = NULL;

	c->path = path;
	if ((o = json_load_file(path, 0, &err)) == NULL)
		die("%s: %s", path, err.text);
	key = json_string_value(json_object_get(o, "key"));
	transport = json_string_value(json_object_get(o, "transport"));
	ip = json_string_value(json_object_get(o, "ip"));
	scheme = json_string_value(json_object_get(o, "signature_scheme"));
	if (key == NULL || ip == NULL)
		die("%s: no key or ip", path);
	if (transport == NULL)
		transport = "tcp";
	c->sign = sign_new(scheme, key, strlen(key), &cause);
	if (c->sign == NULL)
		die("%s: %s", path, cause);
	c->shell = conn_socket(ZMQ_DEALER, transport, ip, (int)json_integer_value(
	    json_object_get(o, "shell_port")));
	c->iopub = conn_socket(ZMQ_SUB, transport, ip, (int)json_integer_value(
	    json_object_get(o, "iopub_port")));
	jmsg_new_id(c->session);
	json_decref(o);
	c->samples = xcalloc((size_t)opt_n + 1, sizeof *c->samples);
	c->reply_samples = xcalloc((size_t)opt_n + 1, sizeof *c->reply_samples);
}

static void
conn_close(struct conn *c)
{
	zsock_destroy(&c->shell);
	zsock_destroy(&c->iopub);
	sign_destroy(&c->sign);
	free(c->samples);
	free(c->reply_samples);
}

/*
 * Builds and sends a signed request. The header is written by hand so the
 * msg_id is known without parsing our own message back.
 */
static void
conn_send(struct conn *c, const char *type, const char *content)
{
	zframe_t	*parts[4];
	zmsg_t		*m;
	char		 sig[65], date[32], header[512];
	int		 i, len;

	/* The clock starts before encoding and sending: the client's own
	 * work counts, and a preemption right after the send must not hide
	 * part of the wait for the reply. */
	c->replied = c->idle = 0;
	c->t0 = now_ns();
	snprintf(c->sent, sizeof c->sent, "%.8s-%lu", c->session, ++c->seq);
	jmsg_now(date);
	len = snprintf(header, sizeof header, "{\"msg_id\":\"%s\","
	    "\"session\":\"%s\",\"username\":\"bench\",\"date\":\"%s\","
	    "\"msg_type\":\"%s\",\"version\":\"%s\"}", c->sent, c->session,
	    date, type, PROTOCOL_VERSION);
	parts[0] = zframe_new(header, (size_t)len);
	parts[1] = zframe_new("{}", 2);
	parts[2] = zframe_new("{}", 2);
	parts[3] = zframe_new(content, strlen(content));
	sign_compute(c->sign, parts, sig);
	m = zmsg_new();
	zmsg_addstr(m, PROTOCOL_DELIM);
	zmsg_addstr(m, sig);
	for (i = 0; i < 4; i++)
		zmsg_append(m, &parts[i]);
	if (zmsg_send(&m, c->shell) != 0)
		die("%s: send failed", c->path);
}

static void
conn_send_execute(struct conn *c)
{
	char	content[4096];

	snprintf(content, sizeof content, "{\"code\":%s,\"silent\":false,"
	    "\"store_history\":true,\"user_expressions\":{},"
	    "\"allow_stdin\":false,\"stop_on_error\":true}",
	    json_quote(opt_code));
	conn_send(c, "execute_request", content);
}

static int
conn_ours(struct conn *c, struct jmsg *jm)
{
	const char	*p = json_string_value(json_object_get(jm->parent,
	    "msg_id"));

	return (p != NULL && strcmp(p, c->sent) == 0);
}

/*
 * Reads one message from s (ready). Sets replied / idle for the request in
 * flight. Returns 1 when that request is complete.
 */
static int
conn_read(struct conn *c, zsock_t *s)
{
	zmsg_t		*m = zmsg_recv(s);
	struct jmsg	*jm;
	char		*cause = NULL;
	const char	*st;
	int64_t		 t;

	if (m == NULL)
		return (0);
	jm = jmsg_decode(&m, c->sign, 0, &cause);
	if (jm == NULL) {
		fprintf(stderr, "rtt: %s: dropped a message: %s\n", c->path,
		    cause);
		free(cause);
		return (0);
	}
	if (!conn_ours(c, jm)) {
		jmsg_destroy(&jm);
		return (0);
	}
	t = now_ns();
	if (s == c->shell) {
		c->replied = 1;
		st = json_string_value(json_object_get(jm->content, "status"));
		if (st == NULL || strcmp(st, "ok") != 0)
			c->errors++;
		if (c->record && c->nsamples < opt_n)
			c->reply_samples[c->nsamples] = (double)(t - c->t0) / 1e3;
	} else if (strcmp(jm->msg_type, "status") == 0) {
		st = json_string_value(json_object_get(jm->content,
		    "execution_state"));
		if (st != NULL && strcmp(st, "idle") == 0)
			c->idle = 1;
	}
	jmsg_destroy(&jm);
	if (!(c->replied && c->idle))
		return (0);
	if (c->record && c->nsamples < opt_n)
		c->samples[c->nsamples++] = (double)(t - c->t0) / 1e3;
	c->done++;
	return (1);
}

/* The SUB socket joins late: kernel_info until iopub speaks (as
 * jupyter_client's wait_for_ready and `cellblock run` do). */
static void
conn_wait_ready(struct conn *c)
{
	zmq_pollitem_t	 items[2];
	int64_t		 end = now_ns() + 30LL * 1000000000, next = 0;
	int		 got_reply = 0, got_iopub = 0;
	zmsg_t		*m;

	items[0].socket = zsock_resolve(c->shell);
	items[1].socket = zsock_resolve(c->iopub);
	items[0].events = items[1].events = ZMQ_POLLIN;
	while (!(got_reply && got_iopub)) {
		if (now_ns() > end)
			die("%s: no answer to kernel_info in 30 s", c->path);
		if (now_ns() >= next) {
			conn_send(c, "kernel_info_request", "{}");
			next = now_ns() + 200LL * 1000000;
			got_reply = got_iopub = 0;
		}
		if (zmq_poll(items, 2, 50) <= 0)
			continue;
		if (items[0].revents & ZMQ_POLLIN) {
			m = zmsg_recv(c->shell);
			zmsg_destroy(&m);
			got_reply = 1;
		}
		if (items[1].revents & ZMQ_POLLIN) {
			m = zmsg_recv(c->iopub);
			zmsg_destroy(&m);
			got_iopub = 1;
		}
	}
	/* Drain what the last kernel_info may still publish. */
	while (zmq_poll(items, 2, 100) > 0) {
		if (items[0].revents & ZMQ_POLLIN) {
			m = zmsg_recv(c->shell);
			zmsg_destroy(&m);
		}
		if (items[1].revents & ZMQ_POLLIN) {
			m = zmsg_recv(c->iopub);
			zmsg_destroy(&m);
		}
	}
}

static void
print_samples(const char *name, const double *v, int n)
{
	int	i;

	printf("\"%s\":[", name);
	for (i = 0; i < n; i++)
		printf("%s%.1f", i ? "," : "", v[i]);
	printf("]");
}

/*
 * Drives every conn at once, one execute in flight on each, until each has
 * done count more; records round trips when record is set.
 */
static void
run_phase(struct conn *cs, int nc, int count, int record, int64_t *t_start,
    int64_t *t_end)
{
	zmq_pollitem_t	*items;
	int		 i, left = nc;
	int64_t		 deadline;

	if (count == 0)
		return;
	items = xcalloc((size_t)nc * 2, sizeof *items);
	for (i = 0; i < nc; i++) {
		items[2 * i].socket = zsock_resolve(cs[i].shell);
		items[2 * i + 1].socket = zsock_resolve(cs[i].iopub);
		items[2 * i].events = items[2 * i + 1].events = ZMQ_POLLIN;
		cs[i].done = 0;
		cs[i].record = record;
	}
	*t_start = now_ns();
	for (i = 0; i < nc; i++)
		conn_send_execute(&cs[i]);
	deadline = now_ns() + (int64_t)opt_timeout * 1000000000;
	while (left > 0) {
		if (zmq_poll(items, nc * 2, 1000) < 0 && errno != EINTR)
			die("zmq_poll: %s", strerror(errno));
		if (now_ns() > deadline)
			die("an execute took more than %d s", opt_timeout);
		for (i = 0; i < nc; i++) {
			struct conn	*c = &cs[i];
			int		 fin = 0;

			if (c->done >= count)
				continue;
			while (zsock_events(c->shell) & ZMQ_POLLIN)
				fin |= conn_read(c, c->shell);
			while (zsock_events(c->iopub) & ZMQ_POLLIN)
				fin |= conn_read(c, c->iopub);
			if (!fin)
				continue;
			deadline = now_ns() + (int64_t)opt_timeout * 1000000000;
			if (c->done >= count)
				left--;
			else
				conn_send_execute(c);
		}
	}
	*t_end = now_ns();
	free(items);
}

static int
mode_conn(int argc, char **argv, int tput)
{
	struct conn	*cs;
	int		 nc = argc, i, errors = 0;
	int64_t		 t0, t1;

	if (nc < 1 || (!tput && nc != 1) || nc > RTT_MAX_CONN)
		die("give one connection file (conn) or 1..%d (tput)",
		    RTT_MAX_CONN);
	cs = xcalloc((size_t)nc, sizeof *cs);
	for (i = 0; i < nc; i++)
		conn_open(&cs[i], argv[i]);
	for (i = 0; i < nc; i++)
		conn_wait_ready(&cs[i]);
	/* Warm-up (-w per session) first; the clock runs for the rest. */
	run_phase(cs, nc, opt_warm, 0, &t0, &t1);
	run_phase(cs, nc, opt_n, 1, &t0, &t1);

	printf("{\"mode\":\"%s\",\"sessions\":%d,\"per_session\":%d,"
	    "\"elapsed_s\":%.6f,", tput ? "tput" : "conn", nc, opt_n,
	    (double)(t1 - t0) / 1e9);
	for (i = 0; i < nc; i++)
		errors += cs[i].errors;
	printf("\"errors\":%d,", errors);
	if (!tput) {
		print_samples("reply_us", cs[0].reply_samples, cs[0].nsamples);
		printf(",");
	}
	/* All round trips, every session's after its own. */
	printf("\"rtt_us\":[");
	{
		int	first = 1, j;

		for (i = 0; i < nc; i++)
			for (j = 0; j < cs[i].nsamples; j++) {
				printf("%s%.1f", first ? "" : ",",
				    cs[i].samples[j]);
				first = 0;
			}
	}
	printf("]}\n");
	for (i = 0; i < nc; i++)
		conn_close(&cs[i]);
	free(cs);
	return (errors ? 2 : 0);
}

/* ---- a session's start ------------------------------------------------- */

/* One JSON-line request on the daemon's control socket; its reply. */
static json_t *
control_call(const char *path, const char *req)
{
	struct sockaddr_un	 sun;
	struct pollfd		 pfd;
	json_error_t		 err;
	json_t			*o;
	char			 buf[65536];
	size_t			 len = 0;
	ssize_t			 n;
	int64_t			 end = now_ns() + (int64_t)opt_timeout *
				    1000000000;
	int			 fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path)
		die("%s: path too long", path);
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
		die("%s: %s", path, strerror(errno));
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		die("%s: write: %s", path, strerror(errno));
	while (memchr(buf, '\n', len) == NULL) {
		if (len == sizeof buf - 1 || now_ns() > end)
			die("%s: no reply line", path);
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((n = read(fd, buf + len, sizeof buf - 1 - len)) <= 0)
			die("%s: closed before its reply", path);
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if ((o = json_loads(buf, JSON_DISABLE_EOF_CHECK, &err)) == NULL)
		die("%s: bad reply: %s", path, err.text);
	return (o);
}

/* Connect, send one execute at once, wait for its reply; its times. */
static void
first_execute(const char *file, int64_t *t_open, int64_t *t_reply)
{
	struct conn	 c;
	zmq_pollitem_t	 item;
	int64_t		 end = now_ns() + (int64_t)opt_timeout * 1000000000;

	memset(&c, 0, sizeof c);
	conn_open(&c, file);
	*t_open = now_ns();
	conn_send_execute(&c);
	item.socket = zsock_resolve(c.shell);
	item.events = ZMQ_POLLIN;
	while (!c.replied) {
		if (now_ns() > end)
			die("%s: no execute_reply in %d s", file, opt_timeout);
		if (zmq_poll(&item, 1, 100) <= 0)
			continue;
		while (!c.replied && (zsock_events(c.shell) & ZMQ_POLLIN))
			conn_read(&c, c.shell);
	}
	*t_reply = now_ns();
	if (c.errors)
		die("%s: the execute failed", file);
	conn_close(&c);
}

static int
mode_start(int argc, char **argv, int fresh)
{
	json_t		*r = NULL, *s;
	const char	*file, *born;
	int64_t		 t0, t1, t2, t3;

	if (argc != 1)
		die(fresh ? "give the daemon's control socket" :
		    "give one connection file");
	zsys_init();	/* the context: a client has one before it starts */
	t0 = now_ns();
	if (fresh) {
		r = control_call(argv[0], "{\"cmd\":\"new\"}\n");
		s = json_object_get(r, "session");
		file = json_string_value(json_object_get(s,
		    "connection_file"));
		if (!json_is_true(json_object_get(r, "ok")) || file == NULL)
			die("new failed: %s", json_dumps(r, 0));
	} else
		file = argv[0];
	t1 = now_ns();
	first_execute(file, &t2, &t3);
	printf("{\"mode\":\"%s\",", fresh ? "start" : "first");
	if (fresh) {
		/* json_quote has one buffer: one call per printf. */
		s = json_object_get(r, "session");
		born = json_string_value(json_object_get(s, "born"));
		printf("\"name\":%s,", json_quote(json_string_value(
		    json_object_get(s, "name"))));
		printf("\"born\":%s,", json_quote(born != NULL ? born : "?"));
		printf("\"pid\":%lld,", (long long)json_integer_value(
		    json_object_get(s, "pid")));
	}
	printf("\"new_us\":%.1f,\"open_us\":%.1f,\"reply_us\":%.1f,"
	    "\"total_us\":%.1f}\n", (double)(t1 - t0) / 1e3,
	    (double)(t2 - t1) / 1e3, (double)(t3 - t2) / 1e3,
	    (double)(t3 - t0) / 1e3);
	json_decref(r);
	return (0);
}

/* ---- the runner, directly, over its channel --------------------------- */

static int	direct_fd = -1;
static pid_t	direct_pid;

static void
chan_write(const char *body)
{
	size_t		 len = strlen(body), off = 0;
	unsigned char	 hdr[4];
	struct iovec	 iov[2];
	ssize_t		 n;

	hdr[0] = (unsigned char)(len >> 24);
	hdr[1] = (unsigned char)(len >> 16);
	hdr[2] = (unsigned char)(len >> 8);
	hdr[3] = (unsigned char)len;
	iov[0].iov_base = hdr;
	iov[0].iov_len = 4;
	iov[1].iov_base = (void *)body;
	iov[1].iov_len = len;
	n = writev(direct_fd, iov, 2);
	if (n < 0)
		die("channel write: %s", strerror(errno));
	off = (size_t)n;
	/* Short writes only for big bodies; finish plainly. */
	while (off < len + 4) {
		const char	*p = off < 4 ? (const char *)hdr + off :
		    body + (off - 4);
		size_t		 want = off < 4 ? 4 - off : len + 4 - off;

		if ((n = write(direct_fd, p, want)) < 0)
			die("channel write: %s", strerror(errno));
		off += (size_t)n;
	}
}

static void
read_exact(void *buf, size_t len, int64_t deadline)
{
	size_t	off = 0;
	ssize_t	n;
	struct timeval tv;

	while (off < len) {
		int64_t	left = deadline - now_ns();

		if (left <= 0)
			die("runner: no answer in time");
		tv.tv_sec = left / 1000000000;
		tv.tv_usec = (left % 1000000000) / 1000;
		setsockopt(direct_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		n = read(direct_fd, (char *)buf + off, len - off);
		if (n == 0)
			die("runner closed its channel");
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("channel read: %s", strerror(errno));
		}
		off += (size_t)n;
	}
}

/* One framed JSON object from the runner. */
static json_t *
chan_read(int64_t deadline)
{
	unsigned char	 hdr[4];
	uint32_t	 len;
	char		*body;
	json_t		*j;
	json_error_t	 err;

	read_exact(hdr, 4, deadline);
	len = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
	    ((uint32_t)hdr[2] << 8) | hdr[3];
	if (len > 64u * 1024 * 1024)
		die("runner sent a %u-byte frame", len);
	body = xmalloc(len);
	read_exact(body, len, deadline);
	j = json_loadb(body, len, 0, &err);
	free(body);
	if (j == NULL)
		die("runner sent bad JSON: %s", err.text);
	return (j);
}

static void
direct_kill(void)
{
	if (direct_pid > 0) {
		kill(direct_pid, SIGKILL);
		waitpid(direct_pid, NULL, 0);
		direct_pid = 0;
	}
}

static int
mode_direct(void)
{
	int		 sv[2], i, total = opt_warm + opt_n, nsamples = 0;
	int		 iopub_msgs = 0, errors = 0;
	char		 tmpl[] = "/tmp/cb-bench-direct-XXXXXX", *dir;
	char		 home[sizeof tmpl + 8], req[4096];
	double		*samples = xcalloc((size_t)opt_n + 1, sizeof *samples);
	int64_t		 t0, t1, deadline;
	json_t		*m;
	const char	*op;

	if (opt_runner == NULL)
		die("direct needs -r RUNNER");
	if ((opt_runner = realpath(opt_runner, NULL)) == NULL)
		die("runner: %s", strerror(errno));
	if ((dir = mkdtemp(tmpl)) == NULL)
		die("mkdtemp: %s", strerror(errno));
	snprintf(home, sizeof home, "HOME=%s", dir);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair: %s", strerror(errno));
	direct_pid = fork();
	if (direct_pid < 0)
		die("fork: %s", strerror(errno));
	if (direct_pid == 0) {
		char	*env[] = { home, "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
		    NULL };
		int	 devnull = open("/dev/null", O_RDWR);

		if (dup2(sv[1], 3) < 0 || chdir(dir) != 0)
			_exit(127);
		dup2(devnull, 0);
		dup2(devnull, 1);
		/* stderr stays: a runner that fails to start says why. */
		execle(opt_python, opt_python, "-I", opt_runner,
		    "--channel-fd", "3", "--session", "bench-direct",
		    (char *)NULL, env);
		_exit(127);
	}
	close(sv[1]);
	direct_fd = sv[0];
	atexit(direct_kill);

	deadline = now_ns() + 60LL * 1000000000;
	do {
		m = chan_read(deadline);
		op = json_string_value(json_object_get(m, "op"));
		i = op != NULL && strcmp(op, "hello") == 0;
		json_decref(m);
	} while (!i);

	for (i = 1; i <= total; i++) {
		int	done = 0;

		t0 = now_ns();
		snprintf(req, sizeof req, "{\"op\":\"request\",\"id\":%d,"
		    "\"msg_type\":\"execute_request\",\"content\":{\"code\":%s,"
		    "\"silent\":false,\"store_history\":true,"
		    "\"user_expressions\":{},\"allow_stdin\":false,"
		    "\"stop_on_error\":true},\"username\":\"bench\","
		    "\"session\":\"bench\"}", i, json_quote(opt_code));
		chan_write(req);
		deadline = t0 + (int64_t)opt_timeout * 1000000000;
		while (!done) {
			m = chan_read(deadline);
			op = json_string_value(json_object_get(m, "op"));
			if (op != NULL && strcmp(op, "reply") == 0 &&
			    json_integer_value(json_object_get(m, "id")) == i) {
				const char *st = json_string_value(
				    json_object_get(json_object_get(m,
				    "content"), "status"));
				if (st == NULL || strcmp(st, "ok") != 0)
					errors++;
				done = 1;
			} else if (op != NULL && strcmp(op, "iopub") == 0 &&
			    i > opt_warm)
				iopub_msgs++;
			json_decref(m);
		}
		t1 = now_ns();
		if (i > opt_warm)
			samples[nsamples++] = (double)(t1 - t0) / 1e3;
	}
	chan_write("{\"op\":\"shutdown\"}");
	{
		int64_t	end = now_ns() + 5LL * 1000000000;
		int	status;

		while (waitpid(direct_pid, &status, WNOHANG) == 0 &&
		    now_ns() < end)
			usleep(10000);
		direct_kill();
	}
	rmdir(dir);	/* the runner may leave files; best effort */
	printf("{\"mode\":\"direct\",\"per_session\":%d,\"errors\":%d,"
	    "\"iopub_per_execute\":%.2f,", opt_n, errors,
	    nsamples ? (double)iopub_msgs / nsamples : 0.0);
	print_samples("rtt_us", samples, nsamples);
	printf("}\n");
	free(samples);
	return (errors ? 2 : 0);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: rtt conn   [-n N] [-w W] [-c CODE] [-t S] FILE\n"
	    "       rtt tput   [-n N] [-w W] [-c CODE] [-t S] FILE...\n"
	    "       rtt direct [-n N] [-w W] [-c CODE] [-t S] -r RUNNER "
	    "[-p PYTHON]\n"
	    "       rtt start  [-c CODE] [-t S] SOCKET\n"
	    "       rtt first  [-c CODE] [-t S] FILE\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char	*mode;
	int		 ch;

	if (argc < 2)
		usage();
	mode = argv[1];
	argc--;
	argv++;
	while ((ch = getopt(argc, argv, "n:w:c:t:r:p:")) != -1) {
		switch (ch) {
		case 'n': opt_n = atoi(optarg); break;
		case 'w': opt_warm = atoi(optarg); break;
		case 'c': opt_code = optarg; break;
		case 't': opt_timeout = atoi(optarg); break;
		case 'r': opt_runner = optarg; break;
		case 'p': opt_python = optarg; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (opt_n < 1 || opt_warm < 0 || opt_timeout < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	zsys_handler_set(NULL);
	if (strcmp(mode, "conn") == 0)
		return (mode_conn(argc, argv, 0));
	if (strcmp(mode, "tput") == 0)
		return (mode_conn(argc, argv, 1));
	if (strcmp(mode, "direct") == 0)
		return (mode_direct());
	if (strcmp(mode, "start") == 0)
		return (mode_start(argc, argv, 1));
	if (strcmp(mode, "first") == 0)
		return (mode_start(argc, argv, 0));
	usage();
	return (2);
}
