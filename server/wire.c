/* wire.c: our own ZeroMQ server sockets (ROUTER, PUB, echo) with byte budgets. */
/*
 * Each struct wire is one listening socket speaking ZMTP 3.0 through
 * protocol/zmtp.c, in whatever loop it is given (struct wire_loop in
 * wire.h: the daemon's server/loop.c, or the heartbeat thread's poll). Why not libzmq: it keeps an
 * unfinished multipart message out of the application's reach, so a
 * peer sending endless small frames grows the daemon without bound
 * (docs/PROTOCOL.md, "Wire bounds"). Here nothing a peer sends is held
 * beyond:
 *
 *	what			bound				then
 *	one message		max-message, plus ZMTP_FRAME_COST a frame	close
 *	all unfinished messages	one message's, per loop (shared)	close the largest
 *	a connection's output	one message + WIRE_QUEUE bytes	drop the message
 *	subscriptions		WIRE_SUBS_MAX prefixes		close
 *	connections		WIRE_CONN_MAX per socket	refuse new ones
 *
 * Behaviour as libzmq's sockets of the same type:
 *	ROUTER	a message arrives as [routing id, frames...]; the id is the
 *		peer's Identity property or a generated 0x00 + 4 bytes; a
 *		new peer with an id in use takes it over (the old connection
 *		is closed: ZMQ_ROUTER_HANDOVER); a send goes to the
 *		connection its first frame names, or nowhere.
 *	PUB	a peer's messages starting 0x01/0x00 add/remove a prefix;
 *		a send goes to every peer with a prefix of its first frame,
 *		and is dropped for a peer whose queue is full (libzmq's HWM).
 *	ECHO	a message is sent back on its connection (heartbeat).
 *
 * Connections are freed only from their own callback or by a neighbour
 * that is not on the stack; a failure during a send only marks one dead.
 *
 * In the daemon's loop output is not written as it is queued but once the
 * turn's callbacks are done (wire_flush, from a 0 ms timer): an execute's
 * busy, result, reply and idle often arise in one turn, and one writev
 * for them costs a quarter of four (docs/BENCHMARKS.md).
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"

#define WIRE_READ_SIZE	65536	/* one read() */
#define WIRE_READS	4	/* reads per wakeup: a flooder shares the loop */
#define WIRE_ACCEPTS	16	/* accepts per wakeup */
#define WIRE_CONN_MAX	512	/* connections per socket */
#define WIRE_SUBS_MAX	256	/* subscriptions per PUB peer */
#define WIRE_IOV	64	/* chunks per writev */
#define WIRE_LOG_LINES	5	/* disconnections logged per second per socket */
#define WIRE_SUB_MESSAGE 4096	/* largest message a SUB peer may send */
#define WIRE_ECHO_QUEUE	65536	/* an echo peer's output before it is closed */
#define WIRE_QUEUE	(8 << 20) /* output queued behind a first message */

/* A piece of output, shared by every PUB peer it is queued for. */
struct wire_chunk {
	u_int	 refs;
	size_t	 len;
	u_char	 data[];
};

struct wire_qent {
	struct wire_chunk	*chunk;
	TAILQ_ENTRY(wire_qent)	 entry;
};

struct wire_sub {
	size_t			 len;
	u_int			 count;	/* subscribed this many times */
	TAILQ_ENTRY(wire_sub)	 entry;
	u_char			 prefix[];
};

struct wire_conn {
	struct wire		*wire;
	int			 fd;
	void			*io;
	uint32_t		 events;	/* asked of the loop */
	int			 dead;		/* close from the callback */
	struct zmtp		*zmtp;
	size_t			 held;		/* charged to the loop's budget */

	u_char			 id[256];	/* ROUTER routing id */
	size_t			 id_len;
	int			 routed;	/* handshake done, id assigned */

	TAILQ_HEAD(, wire_qent)	 queue;
	size_t			 queued;	/* bytes, from qoff on */
	size_t			 qoff;		/* into the first chunk */

	TAILQ_HEAD(, wire_sub)	 subs;
	u_int			 nsubs;

	TAILQ_ENTRY(wire_conn)	 entry;		/* in the wire */
	TAILQ_ENTRY(wire_conn)	 lentry;	/* in the loop */
	int			 flushing;	/* on the loop's flush list */
	TAILQ_ENTRY(wire_conn)	 fentry;
};

struct wire {
	struct wire_loop	*loop;
	enum wire_kind		 kind;
	int			 fd;
	void			*io;
	char			*endpoint;	/* as bound, port filled in */
	char			*path;		/* ipc: to unlink */
	char			*label;		/* for logs */
	size_t			 max_message;
	wire_msg_cb		*cb;
	void			*arg;
	uint32_t		 next_id;
	u_int			 nconns;
	TAILQ_HEAD(, wire_conn)	 conns;

	struct log_limit	 log_limit;	/* its disconnections */
	u_int			 pub_dropped;
};

static void	wire_accept(int, uint32_t, void *);
static void	wire_conn_io(int, uint32_t, void *);
static void	wire_conn_read(struct wire_conn *);
static int	wire_conn_message(struct wire_conn *, zmsg_t *);
static void	wire_conn_routed(struct wire_conn *);
static int	wire_conn_output(struct wire_conn *);
static int	wire_conn_write(struct wire_conn *);
static void	wire_conn_want(struct wire_conn *);
static void	wire_conn_close(struct wire_conn *, const char *);
static int	wire_enqueue(struct wire_conn *, struct wire_chunk *, int);
static void	wire_budget(struct wire_conn *);
static int	wire_sub_update(struct wire_conn *, zmsg_t *);
static int	wire_sub_match(struct wire_conn *, zframe_t *);

static struct wire_chunk *
wire_chunk_new(const void *data, size_t len)
{
	struct wire_chunk	*ch;

	ch = xmalloc(sizeof *ch + len);
	ch->refs = 0;
	ch->len = len;
	memcpy(ch->data, data, len);
	return (ch);
}

/*
 * Whether a connection's output queue takes len more bytes: into an empty
 * queue anything (one message is at most max-message), behind that a few
 * MiB, so a peer that never reads holds at most max-message + WIRE_QUEUE.
 */
static int
wire_queue_takes(struct wire_conn *c, size_t len)
{
	if (c->wire->kind == WIRE_ECHO)
		return (c->queued + len <= WIRE_ECHO_QUEUE);
	return (c->queued == 0 || c->queued + len <= WIRE_QUEUE);
}

static void
wire_chunk_unref(struct wire_chunk *ch)
{
	if (--ch->refs == 0)
		free(ch);
}

/*
 * Parse "tcp://IP:PORT" (PORT a number or *; IP v4, or v6 in brackets)
 * or "ipc://PATH" into a socket address.
 */
static int
wire_parse(const char *ep, struct sockaddr_storage *ss, socklen_t *sl,
    char **cause)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_un	*sun = (struct sockaddr_un *)ss;
	char			 host[128], *colon, *end;
	long			 port = 0;

	memset(ss, 0, sizeof *ss);
	if (strncmp(ep, "ipc://", 6) == 0) {
		if (strlen(ep + 6) >= sizeof sun->sun_path)
			goto bad;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, ep + 6);
		*sl = sizeof *sun;
		return (0);
	}
	if (strncmp(ep, "tcp://", 6) != 0 ||
	    (colon = strrchr(ep + 6, ':')) == NULL ||
	    (size_t)(colon - (ep + 6)) >= sizeof host)
		goto bad;
	memcpy(host, ep + 6, colon - (ep + 6));
	host[colon - (ep + 6)] = '\0';
	if (strcmp(colon + 1, "*") != 0) {
		port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || port < 0 || port > 65535)
			goto bad;
	}
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1)
			goto bad;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*sl = sizeof *sin6;
		return (0);
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		goto bad;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	*sl = sizeof *sin;
	return (0);
bad:
	xasprintf(cause, "bad endpoint %s", ep);
	return (-1);
}

/* The endpoint as bound: the kernel's port replaces 0 or *. */
static char *
wire_bound(int fd, const char *ep)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof ss;
	char			*s, *colon;
	int			 port;

	if (strncmp(ep, "tcp://", 6) != 0)
		return (xstrdup(ep));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		fatal("getsockname");
	port = ss.ss_family == AF_INET6 ?
	    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
	    ntohs(((struct sockaddr_in *)&ss)->sin_port);
	colon = strrchr(ep, ':');
	xasprintf(&s, "%.*s:%d", (int)(colon - ep), ep, port);
	return (s);
}

static const char *wire_kinds[] = { "ROUTER", "PUB", "ROUTER" };

/*
 * Bind and listen on an endpoint, without a loop: the heartbeat's socket
 * is bound by the main thread and handed to its thread (heartbeat.c).
 * Returns the descriptor and *bound, the endpoint with its port filled
 * in; or -1 with errno kept (EADDRINUSE: a caller may retry) and a cause.
 */
int
wire_listen(const char *ep, char **bound, char **cause)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	int			 fd, one = 1, saved;

	if (wire_parse(ep, &ss, &sl, cause) != 0) {
		errno = EINVAL;
		return (-1);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		goto fail;
	if (ss.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&ss)->sun_path);
	else
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0)
		goto fail;
	*bound = wire_bound(fd, ep);
	return (fd);
fail:
	saved = errno;
	xasprintf(cause, "cannot bind %s: %s", ep, strerror(errno));
	if (fd != -1)
		close(fd);
	errno = saved;
	return (-1);
}

/*
 * A socket on a listening descriptor from wire_listen, in loop; takes fd.
 * bound is the endpoint wire_listen gave (an ipc path is unlinked at the
 * end).
 */
struct wire *
wire_adopt(struct wire_loop *loop, enum wire_kind kind, int fd,
    const char *bound, size_t max_message, wire_msg_cb *cb, void *arg)
{
	struct wire	*w;

	/*
	 * The loop's budget is one message's own limit (zmtp.c's), never
	 * less: a lone peer is refused by its message's limit, with that
	 * reason, before the shared budget could cut it off for another.
	 */
	if (loop->buf == NULL)
		wire_loop_init(loop, max_message + ZMTP_FRAME_COST *
		    ZMTP_FREE_FRAMES);
	w = xcalloc(1, sizeof *w);
	w->loop = loop;
	w->kind = kind;
	w->fd = fd;
	w->endpoint = xstrdup(bound);
	if (strncmp(bound, "ipc://", 6) == 0)
		w->path = xstrdup(bound + 6);
	w->label = xstrdup(w->endpoint);
	w->max_message = max_message;
	w->cb = cb;
	w->arg = arg;
	randombytes_buf(&w->next_id, sizeof w->next_id);
	TAILQ_INIT(&w->conns);
	w->io = loop->add(loop, fd, WIRE_IN, wire_accept, w);
	return (w);
}

/* Bind a new socket in loop: wire_listen, then wire_adopt. */
struct wire *
wire_new(struct wire_loop *loop, enum wire_kind kind, const char *ep,
    size_t max_message, wire_msg_cb *cb, void *arg, char **cause)
{
	struct wire	*w;
	char		*bound;
	int		 fd;

	if ((fd = wire_listen(ep, &bound, cause)) == -1)
		return (NULL);
	w = wire_adopt(loop, kind, fd, bound, max_message, cb, arg);
	free(bound);
	return (w);
}

const char *
wire_endpoint(struct wire *w)
{
	return (w->endpoint);
}

/* What logs call it: "NAME: shell" rather than the address. */
void
wire_set_label(struct wire *w, const char *label)
{
	free(w->label);
	w->label = xstrdup(label);
}

void
wire_destroy(struct wire **wp)
{
	struct wire	*w = *wp;

	if (w == NULL)
		return;
	while (!TAILQ_EMPTY(&w->conns))
		wire_conn_close(TAILQ_FIRST(&w->conns), NULL);
	w->loop->remove(w->loop, w->io);
	close(w->fd);
	if (w->path != NULL)
		unlink(w->path);
	free(w->path);
	free(w->endpoint);
	free(w->label);
	free(w);
	*wp = NULL;
}

/*
 * Disconnections are logged a few a second per socket one by one, then
 * counted: a peer reconnecting to be refused again cannot fill the disk.
 */
static void
wire_log(struct wire *w, const char *what)
{
	u_int	missed;
	int	log;

	/* Not loop_now(): the heartbeat thread logs through here too. */
	log = log_limit(&w->log_limit, (uint64_t)zclock_mono(), WIRE_LOG_LINES,
	    &missed);
	if (missed != 0)
		log_warn("%s: %u more disconnections in the last second, not "
		    "logged one by one", w->label, missed);
	if (log)
		log_warn("%s: %s", w->label, what);
}

static void
wire_accept(int fd, uint32_t events, void *arg)
{
	struct wire		*w = arg;
	struct wire_conn	*c;
	const u_char		*out;
	size_t			 len;
	int			 cfd, n, one = 1;

	(void)fd;
	(void)events;
	for (n = 0; n < WIRE_ACCEPTS; n++) {
		cfd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1)
			return;
		if (w->nconns >= WIRE_CONN_MAX) {
			wire_log(w, "refused a connection: too many");
			close(cfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c = xcalloc(1, sizeof *c);
		c->wire = w;
		c->fd = cfd;
		c->zmtp = zmtp_new(wire_kinds[w->kind], w->kind == WIRE_PUB ?
		    WIRE_SUB_MESSAGE : w->max_message);
		TAILQ_INIT(&c->queue);
		TAILQ_INIT(&c->subs);
		TAILQ_INSERT_TAIL(&w->conns, c, entry);
		TAILQ_INSERT_TAIL(&w->loop->conns, c, lentry);
		w->nconns++;
		out = zmtp_output(c->zmtp, &len);
		wire_enqueue(c, wire_chunk_new(out, len), 1);
		zmtp_output_taken(c->zmtp);
		c->events = WIRE_IN | WIRE_OUT;
		c->io = w->loop->add(w->loop, cfd, c->events, wire_conn_io, c);
	}
}

static void
wire_conn_io(int fd, uint32_t events, void *arg)
{
	struct wire_conn	*c = arg;

	(void)fd;
	if (!c->dead && (events & WIRE_OUT))
		wire_conn_write(c);
	if (!c->dead && (events & (WIRE_IN | WIRE_ERR)))
		wire_conn_read(c);
	if (c->dead) {
		wire_conn_close(c, NULL);
		return;
	}
	wire_conn_want(c);
}

/* Ask the loop for output readiness only while something is queued. */
static void
wire_conn_want(struct wire_conn *c)
{
	uint32_t want = WIRE_IN | (c->queued > 0 ? WIRE_OUT : 0);

	if (want != c->events) {
		c->events = want;
		c->wire->loop->set(c->wire->loop, c->io, want);
	}
}

/* Close with a reason (logged), or NULL for a peer that went away. */
static void
wire_conn_close(struct wire_conn *c, const char *why)
{
	struct wire	*w = c->wire;
	struct wire_qent *q;
	struct wire_sub	*s;
	char		*line;

	if (why != NULL) {
		xasprintf(&line, "closed a connection: %s", why);
		wire_log(w, line);
		free(line);
	}
	if (c->flushing) {
		/* What this turn queued, as it would have gone out at once. */
		TAILQ_REMOVE(&w->loop->flush, c, fentry);
		c->flushing = 0;
		if (!c->dead)
			wire_conn_write(c);
	}
	w->loop->held -= c->held;
	w->loop->remove(w->loop, c->io);
	close(c->fd);
	while ((q = TAILQ_FIRST(&c->queue)) != NULL) {
		TAILQ_REMOVE(&c->queue, q, entry);
		wire_chunk_unref(q->chunk);
		free(q);
	}
	while ((s = TAILQ_FIRST(&c->subs)) != NULL) {
		TAILQ_REMOVE(&c->subs, s, entry);
		free(s);
	}
	zmtp_destroy(&c->zmtp);
	TAILQ_REMOVE(&w->conns, c, entry);
	TAILQ_REMOVE(&w->loop->conns, c, lentry);
	w->nconns--;
	free(c);
}

/* Mark dead with a reason; the connection's own callback frees it. */
static void
wire_conn_kill(struct wire_conn *c, const char *why)
{
	char	*line;

	if (c->dead)
		return;
	c->dead = 1;
	/*
	 * Free its unfinished message now, not when its callback comes: the
	 * budget stops counting it at once, so the memory must go at once.
	 */
	c->wire->loop->held -= c->held;
	c->held = 0;
	zmtp_destroy(&c->zmtp);
	if (why != NULL) {
		xasprintf(&line, "closed a connection: %s", why);
		wire_log(c->wire, line);
		free(line);
	}
	c->events = WIRE_IN | WIRE_OUT;	/* a wakeup to be freed in */
	c->wire->loop->set(c->wire->loop, c->io, c->events);
	shutdown(c->fd, SHUT_RDWR);
}

static void
wire_conn_read(struct wire_conn *c)
{
	u_char		*buf = c->wire->loop->buf;
	ssize_t		 n, used;
	size_t		 off;
	zmsg_t		*m;
	char		*cause = NULL;
	int		 reads, was_ready;

	for (reads = 0; reads < WIRE_READS && !c->dead; reads++) {
		n = read(c->fd, buf, WIRE_READ_SIZE);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			c->dead = 1;
			return;
		}
		if (n == -1)
			return;
		for (off = 0; off < (size_t)n && !c->dead; off += used) {
			was_ready = zmtp_ready(c->zmtp);
			used = zmtp_feed(c->zmtp, buf + off, n - off, &m,
			    &cause);
			if (used == -1) {
				wire_conn_kill(c, cause);
				free(cause);
				return;
			}
			if (wire_conn_output(c) != 0)
				return;
			if (!was_ready && zmtp_ready(c->zmtp))
				wire_conn_routed(c);
			if (m != NULL && wire_conn_message(c, m) != 0)
				return;
		}
		wire_budget(c);
		/*
		 * A short read took all there was: the next read would say
		 * EAGAIN, a syscall per wake-up for nothing (the loop is
		 * level-triggered and calls again when more comes).
		 */
		if ((size_t)n < WIRE_READ_SIZE)
			break;
	}
}

/*
 * Charge what the unfinished message holds to the loop; over the shared budget, the
 * connection holding the most goes (often, but not always, this one).
 */
static void
wire_budget(struct wire_conn *c)
{
	struct wire_loop	*loop = c->wire->loop;
	struct wire_conn	*big, *o;
	char			*why;

	if (c->dead)
		return;
	loop->held -= c->held;
	c->held = zmtp_held(c->zmtp);
	loop->held += c->held;
	while (loop->held > loop->budget) {
		big = NULL;
		TAILQ_FOREACH(o, &loop->conns, lentry) {
			if (!o->dead && (big == NULL || o->held > big->held))
				big = o;
		}
		if (big == NULL)
			break;
		xasprintf(&why, "%zu bytes of unfinished messages held over "
		    "all connections, over the %zu-byte budget; this one held "
		    "the most (%zu)", loop->held, loop->budget, big->held);
		wire_conn_kill(big, why);
		free(why);
	}
}

/*
 * Queue what the codec wants sent (READY, PONG); bounded like any output,
 * so a peer that pings and never reads is closed. -1 if c died.
 */
static int
wire_conn_output(struct wire_conn *c)
{
	const u_char	*out;
	size_t		 len;

	out = zmtp_output(c->zmtp, &len);
	if (len == 0)
		return (0);
	if (wire_enqueue(c, wire_chunk_new(out, len), 0) != 0)
		wire_conn_kill(c, "peer does not read its handshake replies");
	else
		zmtp_output_taken(c->zmtp);
	return (c->dead ? -1 : 0);
}

/* The handshake is done: a ROUTER peer gets its routing id. */
static void
wire_conn_routed(struct wire_conn *c)
{
	struct wire		*w = c->wire;
	struct wire_conn	*o, *next;
	const u_char		*id;
	size_t			 len;

	c->routed = 1;
	if (w->kind != WIRE_ROUTER)
		return;
	id = zmtp_identity(c->zmtp, &len);
	if (len > 0) {
		memcpy(c->id, id, len);
		c->id_len = len;
	} else {
		c->id[0] = 0;
		memcpy(c->id + 1, &w->next_id, 4);
		w->next_id++;
		c->id_len = 5;
	}
	for (o = TAILQ_FIRST(&w->conns); o != NULL; o = next) {
		next = TAILQ_NEXT(o, entry);
		if (o != c && o->routed && o->id_len == c->id_len &&
		    memcmp(o->id, c->id, c->id_len) == 0 && !o->dead)
			wire_conn_kill(o, "its routing id was taken over by a "
			    "new connection");
	}
}

/* A complete message from a peer. Returns -1 if c died meanwhile. */
static int
wire_conn_message(struct wire_conn *c, zmsg_t *m)
{
	struct wire	*w = c->wire;
	u_char		*buf;
	size_t		 len;

	switch (w->kind) {
	case WIRE_ROUTER:
		zmsg_pushmem(m, c->id, c->id_len);
		w->cb(w, m, w->arg);
		break;
	case WIRE_PUB:
		if (wire_sub_update(c, m) != 0)
			wire_conn_kill(c, "too many subscriptions");
		zmsg_destroy(&m);
		break;
	case WIRE_ECHO:
		buf = zmtp_encode(m, 0, &len);
		if (buf != NULL) {
			if (wire_enqueue(c, wire_chunk_new(buf, len), 0) != 0)
				wire_conn_kill(c, "echo peer does not read");
			free(buf);
		}
		zmsg_destroy(&m);
		break;
	}
	return (c->dead ? -1 : 0);
}

/*
 * Queue a chunk for c (taking a reference); force ignores the queue's
 * bound (handshake bytes). Writes at once when the queue was empty.
 * Returns -1 if it was full and the chunk not queued.
 */
static int
wire_enqueue(struct wire_conn *c, struct wire_chunk *ch, int force)
{
	struct wire_loop	*loop = c->wire->loop;
	struct wire_qent	*q;
	int			 was_empty = c->queued == 0;

	if (!force && !wire_queue_takes(c, ch->len)) {
		if (ch->refs == 0)
			free(ch);
		return (-1);
	}
	q = xmalloc(sizeof *q);
	q->chunk = ch;
	ch->refs++;
	TAILQ_INSERT_TAIL(&c->queue, q, entry);
	c->queued += ch->len;
	if (c->dead || c->io == NULL)
		return (0);
	if (c->flushing)
		return (0);	/* goes with the rest at wire_flush */
	if (was_empty && loop->defer != NULL) {
		TAILQ_INSERT_TAIL(&loop->flush, c, fentry);
		c->flushing = 1;
		if (!loop->deferred) {
			loop->deferred = 1;
			loop->defer(loop);
		}
		return (0);
	}
	if (was_empty)
		wire_conn_write(c);
	if (!c->dead)
		wire_conn_want(c);
	return (0);
}

/* Write what the socket takes now. -1 if the connection died. */
static int
wire_conn_write(struct wire_conn *c)
{
	struct iovec		 iov[WIRE_IOV];
	struct wire_qent	*q;
	ssize_t			 n;
	size_t			 left;
	int			 i;

	while (c->queued > 0) {
		i = 0;
		TAILQ_FOREACH(q, &c->queue, entry) {
			if (i == WIRE_IOV)
				break;
			iov[i].iov_base = q->chunk->data + (i == 0 ? c->qoff : 0);
			iov[i].iov_len = q->chunk->len - (i == 0 ? c->qoff : 0);
			i++;
		}
		n = writev(c->fd, iov, i);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return (0);
		if (n <= 0) {
			wire_conn_kill(c, NULL);
			return (-1);
		}
		c->queued -= n;
		for (left = n; left > 0;) {
			q = TAILQ_FIRST(&c->queue);
			if (left < q->chunk->len - c->qoff) {
				c->qoff += left;
				break;
			}
			left -= q->chunk->len - c->qoff;
			c->qoff = 0;
			TAILQ_REMOVE(&c->queue, q, entry);
			wire_chunk_unref(q->chunk);
			free(q);
		}
	}
	return (0);
}

/* A SUB peer's message: first byte 1 subscribes, 0 unsubscribes. */
static int
wire_sub_update(struct wire_conn *c, zmsg_t *m)
{
	zframe_t	*f = zmsg_first(m);
	struct wire_sub	*s;
	const u_char	*p;
	size_t		 len;

	if (f == NULL || zframe_size(f) < 1)
		return (0);
	p = zframe_data(f) + 1;
	len = zframe_size(f) - 1;
	TAILQ_FOREACH(s, &c->subs, entry) {
		if (s->len == len && memcmp(s->prefix, p, len) == 0)
			break;
	}
	if (zframe_data(f)[0] == 0) {
		if (s != NULL && --s->count == 0) {
			TAILQ_REMOVE(&c->subs, s, entry);
			c->nsubs--;
			free(s);
		}
		return (0);
	}
	if (zframe_data(f)[0] != 1)
		return (0);	/* libzmq ignores these too */
	if (s != NULL) {
		s->count++;
		return (0);
	}
	if (c->nsubs >= WIRE_SUBS_MAX)
		return (-1);
	s = xmalloc(sizeof *s + len);
	s->len = len;
	s->count = 1;
	memcpy(s->prefix, p, len);
	TAILQ_INSERT_TAIL(&c->subs, s, entry);
	c->nsubs++;
	return (0);
}

static int
wire_sub_match(struct wire_conn *c, zframe_t *topic)
{
	struct wire_sub	*s;

	TAILQ_FOREACH(s, &c->subs, entry) {
		if (s->len <= zframe_size(topic) &&
		    memcmp(s->prefix, zframe_data(topic), s->len) == 0)
			return (1);
	}
	return (0);
}

/*
 * Send a message; takes *mp. ROUTER: to the connection its first frame
 * names (dropped if none, as libzmq does). PUB: to every subscriber
 * whose prefix matches its first frame, dropped for one whose queue is
 * full. Returns how many connections it was queued for.
 */
int
wire_send(struct wire *w, zmsg_t **mp)
{
	struct wire_conn	*c, *to = NULL;
	struct wire_chunk	*ch;
	zframe_t		*first = zmsg_first(*mp);
	size_t			 skip;
	int			 n = 0;

	if (first == NULL)
		goto out;
	TAILQ_FOREACH(c, &w->conns, entry) {
		if (w->kind == WIRE_ROUTER && c->routed && !c->dead &&
		    c->id_len == zframe_size(first) &&
		    memcmp(c->id, zframe_data(first), c->id_len) == 0)
			to = c;
	}
	if (w->kind == WIRE_ROUTER && to == NULL)
		goto out;
	/* Encoded straight into the chunk every peer's queue shares. */
	skip = w->kind == WIRE_ROUTER ? 1 : 0;
	if (zmsg_size(*mp) <= skip)
		goto out;
	ch = xmalloc(sizeof *ch + zmtp_encode_size(*mp, skip));
	ch->len = zmtp_encode_into(*mp, skip, ch->data);
	ch->refs = 1;	/* ours, while we queue it */
	TAILQ_FOREACH(c, &w->conns, entry) {
		if (c->dead || !c->routed || (to != NULL && c != to) ||
		    (w->kind == WIRE_PUB && !wire_sub_match(c, first)))
			continue;
		if (wire_enqueue(c, ch, 0) == 0)
			n++;
		else if (w->kind == WIRE_PUB)
			w->pub_dropped++;
		else
			wire_log(w, "dropped a reply: the peer's queue is "
			    "full (it does not read)");
	}
	wire_chunk_unref(ch);
out:
	zmsg_destroy(mp);
	return (n);
}

/* Messages dropped for slow subscribers since the last call. */
u_int
wire_pub_dropped(struct wire *w)
{
	u_int	n = w->pub_dropped;

	w->pub_dropped = 0;
	return (n);
}

u_int
wire_connections(struct wire *w)
{
	return (w->nconns);
}

/*
 * Write what this turn queued: a connection's messages in one writev (a
 * peer that does not keep up is left to its own callback, EPOLLOUT).
 */
void
wire_flush(struct wire_loop *loop)
{
	struct wire_conn	*c;

	loop->deferred = 0;
	while ((c = TAILQ_FIRST(&loop->flush)) != NULL) {
		TAILQ_REMOVE(&loop->flush, c, fentry);
		c->flushing = 0;
		/* Dead: its own callback frees it (wire_conn_kill woke it). */
		if (!c->dead && wire_conn_write(c) == 0)
			wire_conn_want(c);
	}
}

/* A loop's budget for unfinished messages, over all its connections. */
void
wire_loop_init(struct wire_loop *loop, size_t budget)
{
	TAILQ_INIT(&loop->conns);
	TAILQ_INIT(&loop->flush);
	loop->deferred = 0;
	loop->held = 0;
	loop->budget = budget;
	loop->buf = xmalloc(WIRE_READ_SIZE);
}

void
wire_loop_free(struct wire_loop *loop)
{
	free(loop->buf);
	loop->buf = NULL;
}

/* The daemon's loop (server/loop.c) as a struct wire_loop. */
static void *
wire_main_add(struct wire_loop *loop, int fd, uint32_t events,
    wire_io_cb *cb, void *arg)
{
	(void)loop;
	return (loop_io_add(fd, events, cb, arg));
}

static void
wire_main_set(struct wire_loop *loop, void *io, uint32_t events)
{
	(void)loop;
	loop_io_set(io, events);
}

static void
wire_main_remove(struct wire_loop *loop, void *io)
{
	struct loop_io	*lio = io;

	(void)loop;
	loop_io_remove(&lio);
}

static void
wire_main_flush(void *arg)
{
	wire_flush(arg);
}

/* A 0 ms timer fires after this turn's descriptors (server/loop.c). */
static void
wire_main_defer(struct wire_loop *loop)
{
	loop_timer_add(0, wire_main_flush, loop);
}

struct wire_loop wire_main = {
	.add = wire_main_add,
	.set = wire_main_set,
	.remove = wire_main_remove,
	.defer = wire_main_defer,
};
