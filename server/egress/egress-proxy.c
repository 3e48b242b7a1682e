/* egress-proxy.c: cellblock-egress, the daemon-side proxy of sessions' egress. */
/*
 * One process with its own epoll loop, started and restarted by cellblockd
 * (server/egress.c), so a session hammering it costs the daemon nothing.
 * The daemon hands it, over the control socket (fd 3, SOCK_SEQPACKET), one
 * listening unix socket per session with a non-empty allowlist; a
 * connection's session is the socket it was accepted on, never anything
 * the session says.  Each connection opens with one of
 *
 *   CONNECT host:port HTTP/1.1      a tunnel (TLS)
 *   GET http://host[:port]/p HTTP/1.1   plain HTTP, one request, rewritten
 *                                   to origin form with Connection: close
 *   CELLBLOCK-TCP n                 a raw forward to the session's rule n
 *
 * then the name and every resolved address are checked (egress-policy.c),
 * the proxy connects and copies bytes both ways.  Answers are HTTP status
 * lines: 200 to go on, 4xx/5xx with a body naming the reason.  Every
 * connection ends in one JSON record sent to the daemon, which logs it.
 *
 * It resolves names itself (a thread per lookup, or only from --hosts),
 * holds no session secrets and, started as root, runs as its own uid.
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base.h"
#include "egress/egress.h"

#define PROXY_HEAD_MAX		16384	/* request line and headers */
#define PROXY_BUF		65536	/* each direction of a connection */
#define PROXY_ADDRS		8	/* resolved addresses tried */
#define PROXY_CLOSE_WAIT	5	/* s: draining a refused client */
#define PROXY_CTL_MAX		8192

enum proxy_tag { TAG_CONTROL, TAG_LISTEN, TAG_CLIENT, TAG_UPSTREAM,
    TAG_RESOLVED };

enum proxy_state {
	ST_HEAD,		/* reading the request */
	ST_RESOLVING,		/* a lookup thread has it */
	ST_CONNECTING,
	ST_TUNNEL,
	ST_CLOSING,		/* answered a refusal, draining the client */
};

enum proxy_kind { K_NONE, K_CONNECT, K_HTTP, K_TCP };
static const char *proxy_kind_names[] = { "?", "CONNECT", "HTTP", "TCP" };

struct proxy_tagged {
	enum proxy_tag	 tag;
	void		*p;
};

/* The bounds, from the command line (cellblockd(8), egress-*). */
struct proxy_limits {
	int		 max_conns;	/* concurrent, per session */
	uint64_t	 max_in;	/* bytes to the session, per session */
	uint64_t	 max_out;	/* bytes from it */
	double		 rate;		/* new connections per second (burst) */
	int		 idle;		/* s without a byte either way */
	int		 max_time;	/* s per connection */
	int		 connect_timeout; /* s for resolve + connect */
};

struct proxy_session {
	char			 name[128];
	long			 owner;
	struct egress_policy	 pol;
	char			 allow[EGRESS_TEXT_MAX];
	int			 lfd;
	struct proxy_tagged	 ltag;
	int			 conns;
	uint64_t		 bytes_in, bytes_out;
	double			 tokens;
	double			 tokens_at;
	int			 gone;	/* deleted; freed when conns is 0 */
	struct proxy_session	*next;
};

struct proxy_buf {
	char	*data;
	size_t	 off, len;
};

struct proxy_conn {
	struct proxy_session	*s;
	enum proxy_state	 state;
	enum proxy_kind		 kind;
	int			 cfd, ufd;
	struct proxy_tagged	 ctag, utag;
	char			 head[PROXY_HEAD_MAX];
	size_t			 headlen;
	char			 method[16];
	char			 asked[300];	/* host:port as asked */
	char			 host[EGRESS_NAME_MAX + 1];
	uint16_t		 port;
	int			 literal;	/* host is an address */
	struct sockaddr_storage	 addr[PROXY_ADDRS];
	int			 naddr, tried;
	char			 resolved[PROXY_ADDRS * 48];
	char			 connected[64];
	struct proxy_buf	 up, down;	/* to upstream, to client */
	int			 c_eof, u_eof, c_shut, u_shut;
	uint64_t		 bin, bout;
	double			 start, last;
	int			 allowed;
	char			 why[512];
	int			 dead;		/* freed when its lookup returns */
	struct proxy_conn	*next;
};

struct proxy_lookup {
	struct proxy_conn	*c;
	char			 host[EGRESS_NAME_MAX + 1];
	struct addrinfo		*res;
	int			 error;
};

/* A --hosts line: name and its addresses, the only resolver when set. */
struct proxy_host {
	char			 name[EGRESS_NAME_MAX + 1];
	int			 family;
	uint8_t			 addr[16];
};

static int			 proxy_ep;
static int			 proxy_ctl = -1;
static int			 proxy_lookup_pipe[2];
static struct proxy_tagged	 proxy_ctl_tag = { TAG_CONTROL, NULL };
static struct proxy_tagged	 proxy_lookup_tag = { TAG_RESOLVED, NULL };
static struct proxy_session	*proxy_sessions;
static struct proxy_conn	*proxy_conns;
static struct proxy_limits	 proxy_lim = { 32, 4ULL << 30, 1ULL << 30,
				     20, 300, 3600, 10 };
static struct proxy_host	*proxy_hosts;
static size_t			 proxy_nhosts;
static int			 proxy_hosts_only;
static uint64_t			 proxy_dropped;

static void	proxy_finish(struct proxy_conn *);
static void	proxy_update(struct proxy_conn *);

static double
proxy_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

static void
proxy_log(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "cellblock-egress: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Records go to the daemon; if it cannot take them now they are counted. */
static void
proxy_send_record(json_t *r)
{
	char	*text;

	if (proxy_dropped > 0)
		json_object_set_new(r, "dropped_before",
		    json_integer((json_int_t)proxy_dropped));
	text = json_dumps(r, JSON_COMPACT);
	if (text != NULL && send(proxy_ctl, text, strlen(text),
	    MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)strlen(text))
		proxy_dropped = 0;
	else
		proxy_dropped++;
	free(text);
	json_decref(r);
}

/*
 * The client's bytes (method, asked, why) as a JSON string: JSON has no
 * invalid UTF-8, and a NULL would lose the record of that very attempt.
 */
static json_t *
proxy_record_text(const char *text)
{
	json_t	*j;
	char	*copy, *p;

	if ((j = json_string(text)) != NULL)
		return (j);
	copy = xstrdup(text);
	for (p = copy; *p != '\0'; p++) {
		if ((u_char)*p >= 0x80)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return (j);
}

static void
proxy_record(struct proxy_conn *c)
{
	json_t	*r;

	r = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o,s:s,s:s,s:s,s:o,s:I,s:I,"
	    "s:I}", "op", "log", "session", c->s->name, "owner",
	    (json_int_t)c->s->owner, "kind", proxy_kind_names[c->kind],
	    "method", proxy_record_text(c->method), "asked",
	    proxy_record_text(c->asked), "resolved", c->resolved,
	    "connected", c->connected, "verdict", c->allowed ? "allowed" :
	    "refused", "why", proxy_record_text(c->why), "bytes_out",
	    (json_int_t)c->bout,
	    "bytes_in", (json_int_t)c->bin, "ms",
	    (json_int_t)((proxy_now() - c->start) * 1000));
	proxy_send_record(r);
}

/* epoll */

static void
proxy_watch(int fd, struct proxy_tagged *t, uint32_t events, int op)
{
	struct epoll_event	ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = t;
	if (epoll_ctl(proxy_ep, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL)
		proxy_log("epoll_ctl %d: %s", fd, strerror(errno));
}

/* Sessions */

static struct proxy_session *
proxy_session_find(const char *name)
{
	struct proxy_session	*s;

	for (s = proxy_sessions; s != NULL; s = s->next) {
		if (!s->gone && strcmp(s->name, name) == 0)
			return (s);
	}
	return (NULL);
}

/*
 * After each batch of events, never inside one: a later event of the same
 * batch may still point at what an earlier one ended.
 */
static void
proxy_reap(void)
{
	struct proxy_conn	**cp, *c;
	struct proxy_session	**sp, *s;

	for (cp = &proxy_conns; (c = *cp) != NULL;) {
		if (c->dead && c->state != ST_RESOLVING) {
			*cp = c->next;
			c->s->conns--;
			free(c->up.data);
			free(c->down.data);
			free(c);
		} else
			cp = &c->next;
	}
	for (sp = &proxy_sessions; (s = *sp) != NULL;) {
		if (s->gone && s->conns == 0) {
			*sp = s->next;
			free(s);
		} else
			sp = &s->next;
	}
}

static void
proxy_session_del(const char *name)
{
	struct proxy_session	*s = proxy_session_find(name);
	struct proxy_conn	*c;

	if (s == NULL)
		return;
	s->gone = 1;
	proxy_watch(s->lfd, &s->ltag, 0, EPOLL_CTL_DEL);
	close(s->lfd);
	for (c = proxy_conns; c != NULL; c = c->next) {
		if (c->s == s && !c->dead && c->state != ST_RESOLVING) {
			snprintf(c->why, sizeof c->why, "session ended");
			proxy_finish(c);
		}
	}
}

static void
proxy_session_add(json_t *m, int fd)
{
	const char		*name = json_string_value(json_object_get(m,
				    "session"));
	const char		*allow = json_string_value(json_object_get(m,
				    "allow"));
	struct proxy_session	*s;
	char			*cause = NULL;

	if (name == NULL || allow == NULL || fd == -1) {
		proxy_log("add: bad request");
		if (fd != -1)
			close(fd);
		return;
	}
	proxy_session_del(name);
	s = xcalloc(1, sizeof *s);
	if (egress_policy_parse(allow, &s->pol, &cause) != 0) {
		proxy_log("%s: %s", name, cause);
		free(cause);
		free(s);
		close(fd);
		return;
	}
	snprintf(s->name, sizeof s->name, "%s", name);
	snprintf(s->allow, sizeof s->allow, "%s", allow);
	s->owner = (long)json_integer_value(json_object_get(m, "owner"));
	s->lfd = fd;
	s->tokens = proxy_lim.rate;
	s->tokens_at = proxy_now();
	s->ltag.tag = TAG_LISTEN;
	s->ltag.p = s;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	s->next = proxy_sessions;
	proxy_sessions = s;
	proxy_watch(fd, &s->ltag, EPOLLIN, EPOLL_CTL_ADD);
}

/* One packet from the daemon: a JSON object, maybe with a listener fd. */
static int
proxy_control(void)
{
	char		 buf[PROXY_CTL_MAX], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec	 iov = { buf, sizeof buf - 1 };
	struct msghdr	 mh;
	struct cmsghdr	*cm;
	json_t		*m;
	ssize_t		 n;
	int		 fd = -1;
	const char	*op;

	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof cbuf;
	if ((n = recvmsg(proxy_ctl, &mh, MSG_CMSG_CLOEXEC)) <= 0)
		return (n == -1 && errno == EAGAIN ? 0 : -1);
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	}
	buf[n] = '\0';
	m = json_loads(buf, 0, NULL);
	op = json_string_value(json_object_get(m, "op"));
	if (op != NULL && strcmp(op, "add") == 0) {
		proxy_session_add(m, fd);
		fd = -1;
	} else if (op != NULL && strcmp(op, "del") == 0)
		proxy_session_del(json_string_value(json_object_get(m,
		    "session")) ?: "");
	else
		proxy_log("control: unknown request");
	if (fd != -1)
		close(fd);
	json_decref(m);
	return (0);
}

/* Connections: their end */

/* Log it, close both sides; proxy_reap frees it (after its lookup). */
static void
proxy_finish(struct proxy_conn *c)
{
	if (c->dead)
		return;
	proxy_record(c);
	if (c->cfd != -1) {
		proxy_watch(c->cfd, &c->ctag, 0, EPOLL_CTL_DEL);
		close(c->cfd);
	}
	if (c->ufd != -1) {
		proxy_watch(c->ufd, &c->utag, 0, EPOLL_CTL_DEL);
		close(c->ufd);
	}
	c->cfd = c->ufd = -1;
	c->dead = 1;
}

static const char *
proxy_status_text(int code)
{
	switch (code) {
	case 400:
		return ("Bad Request");
	case 403:
		return ("Forbidden");
	case 429:
		return ("Too Many Requests");
	case 431:
		return ("Request Header Fields Too Large");
	case 502:
		return ("Bad Gateway");
	case 504:
		return ("Gateway Timeout");
	}
	return ("Error");
}

/*
 * Answer with an error and drain what the client still sends: closing
 * with unread bytes would reset the connection and lose the answer.
 */
static void
proxy_refuse(struct proxy_conn *c, int code, const char *fmt, ...)
{
	char	body[600], msg[1024], why[sizeof c->why];
	va_list	ap;
	int	n;

	/* The arguments may be c->why itself. */
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	memcpy(c->why, why, sizeof c->why);
	snprintf(body, sizeof body, "cellblock egress: %s\n", c->why);
	n = snprintf(msg, sizeof msg, "HTTP/1.1 %d %s: %s\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    code, proxy_status_text(code), c->why, strlen(body), body);
	if (n > (int)sizeof msg)
		n = sizeof msg;
	if (c->ufd != -1) {
		proxy_watch(c->ufd, &c->utag, 0, EPOLL_CTL_DEL);
		close(c->ufd);
		c->ufd = -1;
	}
	if (write(c->cfd, msg, n) < 0 || shutdown(c->cfd, SHUT_WR) != 0) {
		proxy_finish(c);
		return;
	}
	c->state = ST_CLOSING;
	c->last = proxy_now();
	proxy_update(c);
}

/* Bytes both ways */

static void
proxy_update(struct proxy_conn *c)
{
	uint32_t	cev = 0, uev = 0;

	switch (c->state) {
	case ST_HEAD:
	case ST_CLOSING:
		cev = EPOLLIN;
		break;
	case ST_RESOLVING:
		break;
	case ST_CONNECTING:
		uev = EPOLLOUT;
		break;
	case ST_TUNNEL:
		if (!c->c_eof && c->up.len < PROXY_BUF)
			cev |= EPOLLIN;
		if (c->down.len > 0)
			cev |= EPOLLOUT;
		if (!c->u_eof && c->down.len < PROXY_BUF)
			uev |= EPOLLIN;
		if (c->up.len > 0)
			uev |= EPOLLOUT;
		break;
	}
	if (c->cfd != -1)
		proxy_watch(c->cfd, &c->ctag, cev, EPOLL_CTL_MOD);
	if (c->ufd != -1)
		proxy_watch(c->ufd, &c->utag, uev, EPOLL_CTL_MOD);
}

/* Read what fits into b; 0 data or nothing now, 1 EOF, -1 error. */
static int
proxy_fill(int fd, struct proxy_buf *b, uint64_t *count)
{
	ssize_t	n;

	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	n = read(fd, b->data + b->len, PROXY_BUF - b->len);
	if (n == 0)
		return (1);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR ? 0 : -1);
	b->len += n;
	*count += n;
	return (0);
}

static int
proxy_drain(int fd, struct proxy_buf *b)
{
	ssize_t	n;

	n = send(fd, b->data + b->off, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR ? 0 : -1);
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
	return (0);
}

static int
proxy_over_bytes(struct proxy_conn *c)
{
	struct proxy_session	*s = c->s;

	if (s->bytes_in > proxy_lim.max_in) {
		snprintf(c->why, sizeof c->why, "session passed its limit of "
		    "%llu bytes received (egress-max-bytes-in)",
		    (unsigned long long)proxy_lim.max_in);
		return (1);
	}
	if (s->bytes_out > proxy_lim.max_out) {
		snprintf(c->why, sizeof c->why, "session passed its limit of "
		    "%llu bytes sent (egress-max-bytes-out)",
		    (unsigned long long)proxy_lim.max_out);
		return (1);
	}
	return (0);
}

static void
proxy_tunnel(struct proxy_conn *c, int upstream, uint32_t ev)
{
	uint64_t	before_in = c->bin, before_out = c->bout;
	int		r = 0;

	if (!upstream && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->c_eof &&
	    c->up.len < PROXY_BUF) {
		if ((r = proxy_fill(c->cfd, &c->up, &c->bout)) == 1) {
			c->c_eof = 1;
			r = 0;
		}
	}
	if (upstream && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->u_eof &&
	    c->down.len < PROXY_BUF) {
		if ((r = proxy_fill(c->ufd, &c->down, &c->bin)) == 1) {
			c->u_eof = 1;
			r = 0;
		}
	}
	if (r == 0 && c->up.len > 0)
		r = proxy_drain(c->ufd, &c->up);
	if (r == 0 && c->down.len > 0)
		r = proxy_drain(c->cfd, &c->down);
	c->s->bytes_in += c->bin - before_in;
	c->s->bytes_out += c->bout - before_out;
	if (c->bin != before_in || c->bout != before_out)
		c->last = proxy_now();
	if (r != 0) {
		snprintf(c->why, sizeof c->why, "connection closed: %s",
		    strerror(errno));
		proxy_finish(c);
		return;
	}
	if (proxy_over_bytes(c)) {
		proxy_finish(c);
		return;
	}
	if (c->c_eof && c->up.len == 0 && !c->u_shut) {
		shutdown(c->ufd, SHUT_WR);
		c->u_shut = 1;
	}
	if (c->u_eof && c->down.len == 0 && !c->c_shut) {
		shutdown(c->cfd, SHUT_WR);
		c->c_shut = 1;
	}
	if (c->c_shut && c->u_shut) {
		snprintf(c->why, sizeof c->why, "closed");
		proxy_finish(c);
		return;
	}
	proxy_update(c);
}

/* Connecting */

static void
proxy_addr_text(const struct sockaddr_storage *ss, char *buf, size_t len,
    int with_port)
{
	char		a[INET6_ADDRSTRLEN];
	const void	*p;
	uint16_t	port;

	if (ss->ss_family == AF_INET) {
		p = &((const struct sockaddr_in *)ss)->sin_addr;
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	} else {
		p = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	}
	inet_ntop(ss->ss_family, p, a, sizeof a);
	if (!with_port)
		snprintf(buf, len, "%s", a);
	else
		snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%u" :
		    "%s:%u", a, port);
}

/* The answer that lets the client go on, then the request for HTTP. */
static void
proxy_connected(struct proxy_conn *c)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	size_t	n;

	proxy_addr_text(&c->addr[c->tried], c->connected,
	    sizeof c->connected, 1);
	c->allowed = 1;
	snprintf(c->why, sizeof c->why, "allowed");
	c->up.data = xmalloc(PROXY_BUF);
	c->down.data = xmalloc(PROXY_BUF);
	/* The rewritten request, or what the client sent after its head. */
	n = c->headlen < PROXY_BUF ? c->headlen : PROXY_BUF;
	memcpy(c->up.data, c->head, n);
	c->up.len = n;
	c->bout += n;
	c->s->bytes_out += n;
	if (c->kind != K_HTTP) {
		memcpy(c->down.data, ok, sizeof ok - 1);
		c->down.len = sizeof ok - 1;
	}
	c->state = ST_TUNNEL;
	c->last = proxy_now();
	proxy_update(c);
}

static void
proxy_try_connect(struct proxy_conn *c)
{
	const struct sockaddr_storage	*ss;
	int				 fd;

	for (; c->tried < c->naddr; c->tried++) {
		ss = &c->addr[c->tried];
		fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd == -1)
			continue;
		if (connect(fd, (const struct sockaddr *)ss, ss->ss_family ==
		    AF_INET ? sizeof(struct sockaddr_in) :
		    sizeof(struct sockaddr_in6)) == 0 || errno == EINPROGRESS) {
			c->ufd = fd;
			c->utag.tag = TAG_UPSTREAM;
			c->utag.p = c;
			c->state = ST_CONNECTING;
			proxy_watch(fd, &c->utag, EPOLLOUT, EPOLL_CTL_ADD);
			proxy_update(c);
			return;
		}
		close(fd);
	}
	proxy_refuse(c, 502, "cannot connect to %s (%s): %s", c->asked,
	    c->resolved, strerror(errno));
}

static void
proxy_connect_done(struct proxy_conn *c)
{
	int		err = 0;
	socklen_t	len = sizeof err;

	if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err == 0) {
		proxy_connected(c);
		return;
	}
	proxy_watch(c->ufd, &c->utag, 0, EPOLL_CTL_DEL);
	close(c->ufd);
	c->ufd = -1;
	errno = err;
	if (++c->tried < c->naddr) {
		proxy_try_connect(c);
		return;
	}
	proxy_refuse(c, 502, "cannot connect to %s (%s): %s", c->asked,
	    c->resolved, strerror(err));
}

/* Every address the name has must pass, or none is used: a name that also
 * points at 127.0.0.1 is refused outright. */
static void
proxy_check_addrs(struct proxy_conn *c)
{
	char		 why[256], a[64];
	const void	*p;
	size_t		 used = 0;
	int		 i;

	c->resolved[0] = '\0';
	for (i = 0; i < c->naddr; i++) {
		proxy_addr_text(&c->addr[i], a, sizeof a, 0);
		used += snprintf(c->resolved + used, sizeof c->resolved - used,
		    "%s%s", i ? " " : "", a);
		if (used >= sizeof c->resolved)
			used = sizeof c->resolved - 1;
	}
	for (i = 0; i < c->naddr; i++) {
		p = c->addr[i].ss_family == AF_INET ?
		    (const void *)&((struct sockaddr_in *)&c->addr[i])->sin_addr :
		    (const void *)&((struct sockaddr_in6 *)&c->addr[i])->sin6_addr;
		if (egress_policy_check_addr(&c->s->pol, c->addr[i].ss_family, p,
		    c->port, !c->literal, why, sizeof why) != 0) {
			proxy_refuse(c, 403, "%s%s%s: %s", c->asked, c->literal ?
			    "" : " resolves to ", c->literal ? "" : c->resolved,
			    why);
			return;
		}
	}
	c->tried = 0;
	proxy_try_connect(c);
}

static void
proxy_add_addr(struct proxy_conn *c, int family, const void *a)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;

	if (c->naddr == PROXY_ADDRS)
		return;
	memset(&c->addr[c->naddr], 0, sizeof c->addr[c->naddr]);
	if (family == AF_INET) {
		sin = (struct sockaddr_in *)&c->addr[c->naddr];
		sin->sin_family = AF_INET;
		sin->sin_port = htons(c->port);
		memcpy(&sin->sin_addr, a, 4);
	} else {
		sin6 = (struct sockaddr_in6 *)&c->addr[c->naddr];
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(c->port);
		memcpy(&sin6->sin6_addr, a, 16);
	}
	c->naddr++;
}

/* Resolving */

static void *
proxy_lookup_thread(void *arg)
{
	struct proxy_lookup	*l = arg;
	struct addrinfo		 hints;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	l->error = getaddrinfo(l->host, NULL, &hints, &l->res);
	if (write(proxy_lookup_pipe[1], &l, sizeof l) != sizeof l)
		abort();	/* a pipe write of a pointer cannot be short */
	return (NULL);
}

static void
proxy_lookup_done(void)
{
	struct proxy_lookup	*l;
	struct proxy_conn	*c;
	struct addrinfo		*ai;

	if (read(proxy_lookup_pipe[0], &l, sizeof l) != sizeof l)
		return;
	c = l->c;
	c->state = ST_HEAD;
	if (!c->dead && c->s->gone) {
		snprintf(c->why, sizeof c->why, "session ended");
		proxy_finish(c);
	}
	if (c->dead)
		goto out;
	if (l->error != 0)
		proxy_refuse(c, 502, "cannot resolve %s: %s", c->host,
		    gai_strerror(l->error));
	else {
		for (ai = l->res; ai != NULL; ai = ai->ai_next) {
			if (ai->ai_family == AF_INET)
				proxy_add_addr(c, AF_INET, &((struct sockaddr_in *)
				    ai->ai_addr)->sin_addr);
			else if (ai->ai_family == AF_INET6)
				proxy_add_addr(c, AF_INET6, &((struct
				    sockaddr_in6 *)ai->ai_addr)->sin6_addr);
		}
		if (c->naddr == 0)
			proxy_refuse(c, 502, "%s has no address", c->host);
		else
			proxy_check_addrs(c);
	}
out:
	if (l->res != NULL)
		freeaddrinfo(l->res);
	free(l);
}

static void
proxy_resolve(struct proxy_conn *c)
{
	struct proxy_lookup	*l;
	pthread_t		 t;
	pthread_attr_t		 attr;
	uint8_t			 a[16];
	int			 family;
	size_t			 i;

	if (egress_parse_ip(c->host, &family, a) == 0) {
		c->literal = 1;
		proxy_add_addr(c, family, a);
		proxy_check_addrs(c);
		return;
	}
	if (proxy_hosts_only) {
		for (i = 0; i < proxy_nhosts; i++) {
			if (strcmp(proxy_hosts[i].name, c->host) == 0)
				proxy_add_addr(c, proxy_hosts[i].family,
				    proxy_hosts[i].addr);
		}
		if (c->naddr == 0)
			proxy_refuse(c, 502, "cannot resolve %s: not in the "
			    "egress-hosts file", c->host);
		else
			proxy_check_addrs(c);
		return;
	}
	l = xcalloc(1, sizeof *l);
	l->c = c;
	snprintf(l->host, sizeof l->host, "%s", c->host);
	c->state = ST_RESOLVING;
	proxy_update(c);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, proxy_lookup_thread, l) != 0) {
		free(l);
		c->state = ST_HEAD;
		proxy_refuse(c, 502, "cannot resolve %s: no thread", c->host);
	}
	pthread_attr_destroy(&attr);
}

/* The request */

/* "host:port" or "[v6]:port" into c->host, c->port; def: no port given. */
static int
proxy_authority(struct proxy_conn *c, const char *auth, size_t len,
    uint16_t def)
{
	char		 buf[300], *host = buf, *colon = NULL, *end;
	unsigned long	 port = def;

	if (len == 0 || len >= sizeof buf)
		return (-1);
	memcpy(buf, auth, len);
	buf[len] = '\0';
	snprintf(c->asked, sizeof c->asked, "%s", buf);
	if (*host == '[') {
		host++;
		if ((end = strchr(host, ']')) == NULL)
			return (-1);
		*end++ = '\0';
		if (*end == ':')
			colon = end;
		else if (*end != '\0')
			return (-1);
	} else if ((colon = strrchr(host, ':')) != NULL)
		*colon = '\0';
	if (colon != NULL) {
		if (!isdigit((u_char)colon[1]))
			return (-1);
		port = strtoul(colon + 1, &end, 10);
		if (*end != '\0')
			return (-1);
	}
	if (port == 0 || port > 65535)
		return (-1);
	c->port = (uint16_t)port;
	if (colon == NULL)
		snprintf(c->asked + strlen(c->asked), sizeof c->asked -
		    strlen(c->asked), ":%u", c->port);
	if (strlen(host) < sizeof c->host &&
	    egress_parse_ip(host, &(int){0}, (uint8_t[16]){0}) == 0) {
		memcpy(c->host, host, strlen(host) + 1);
		return (0);
	}
	return (egress_normalize_name(host, c->host, sizeof c->host));
}

/* Headers a proxy must not pass on, and the one it sets instead. */
static int
proxy_hop_header(const char *line, size_t len)
{
	static const char *const hop[] = { "connection:", "proxy-connection:",
	    "keep-alive:", "proxy-authorization:", "te:", "upgrade:" };
	size_t	i;

	for (i = 0; i < nitems(hop); i++) {
		if (len >= strlen(hop[i]) &&
		    strncasecmp(line, hop[i], strlen(hop[i])) == 0)
			return (1);
	}
	return (0);
}

/*
 * GET http://host/path HTTP/1.1 -> GET /path HTTP/1.1, hop-by-hop headers
 * out, Connection: close in: one request per connection, so every request
 * line the proxy forwards is one it checked.  Body bytes already read
 * follow the new head.
 */
static int
proxy_rewrite(struct proxy_conn *c, const char *path, size_t pathlen,
    const char *version, size_t vlen, const char *headers, size_t hlen,
    size_t rest)
{
	char	out[PROXY_HEAD_MAX + 64];
	size_t	n, used;
	const char *p = headers, *eol;

	used = snprintf(out, sizeof out, "%s %.*s %.*s\r\n", c->method,
	    (int)pathlen, path, (int)vlen, version);
	while (p < headers + hlen) {
		eol = memmem(p, headers + hlen - p, "\r\n", 2);
		n = eol == NULL ? (size_t)(headers + hlen - p) : (size_t)(eol - p);
		if (n > 0 && !proxy_hop_header(p, n)) {
			if (used + n + 2 >= sizeof out)
				return (-1);
			memcpy(out + used, p, n);
			memcpy(out + used + n, "\r\n", 2);
			used += n + 2;
		}
		p += n + 2;
	}
	n = snprintf(out + used, sizeof out - used, "Connection: close\r\n\r\n");
	used += n;
	if (used + rest > sizeof c->head || used >= sizeof out)
		return (-1);
	memmove(c->head + used, c->head + c->headlen - rest, rest);
	memcpy(c->head, out, used);
	c->headlen = used + rest;
	return (0);
}

static int
proxy_parse_http(struct proxy_conn *c, const char *uri, size_t urilen,
    const char *version, size_t vlen, const char *headers, size_t hlen,
    size_t rest)
{
	const char	*auth = uri + 7, *path;
	size_t		 alen;

	if (urilen < 7 || strncasecmp(uri, "http://", 7) != 0) {
		snprintf(c->why, sizeof c->why, urilen >= 8 &&
		    strncasecmp(uri, "https://", 8) == 0 ? "https:// through a "
		    "proxy goes by CONNECT" : "not a proxy request (absolute "
		    "http:// URI, CONNECT or CELLBLOCK-TCP)");
		return (-1);
	}
	alen = strcspn(auth, "/?# \r");
	if (auth + alen > uri + urilen)
		alen = uri + urilen - auth;
	if (memchr(auth, '@', alen) != NULL ||
	    proxy_authority(c, auth, alen, 80) != 0) {
		snprintf(c->why, sizeof c->why, "bad host in the request URI");
		return (-1);
	}
	path = auth + alen;
	if (path == uri + urilen || *path != '/') {
		if (proxy_rewrite(c, "/", 1, version, vlen, headers, hlen,
		    rest) == 0)
			return (0);
	} else if (proxy_rewrite(c, path, uri + urilen - path, version, vlen,
	    headers, hlen, rest) == 0)
		return (0);
	snprintf(c->why, sizeof c->why, "request head too large");
	return (-1);
}

/* CELLBLOCK-TCP n: the relay's raw forward to the session's rule n. */
static int
proxy_parse_tcp(struct proxy_conn *c, const char *arg, size_t len)
{
	const struct egress_dest	*d;
	char				 num[8], *end;
	unsigned long			 n;

	if (len == 0 || len >= sizeof num)
		goto bad;
	memcpy(num, arg, len);
	num[len] = '\0';
	n = strtoul(num, &end, 10);
	if (*end != '\0' || !isdigit((u_char)num[0]) || n >= c->s->pol.n)
		goto bad;
	d = &c->s->pol.d[n];
	if (!egress_policy_forwardable(d))
		goto bad;
	egress_dest_format(d, c->asked, sizeof c->asked);
	c->port = d->port;
	if (d->kind == EGRESS_NAME)
		snprintf(c->host, sizeof c->host, "%s", d->host);
	else
		inet_ntop(d->family, d->addr, c->host, sizeof c->host);
	return (0);
bad:
	snprintf(c->why, sizeof c->why, "no forwardable rule %.*s",
	    (int)(len < 8 ? len : 8), arg);
	return (-1);
}

/* Split the request line; -1 leaves c->why. */
static int
proxy_parse(struct proxy_conn *c, size_t headend)
{
	const char	*line = c->head, *eol, *sp1, *sp2;
	size_t		 linelen, rest = c->headlen - headend;

	eol = memmem(line, headend, "\r\n", 2);
	linelen = eol - line;
	if ((sp1 = memchr(line, ' ', linelen)) == NULL || sp1 - line >=
	    (int)sizeof c->method) {
		snprintf(c->why, sizeof c->why, "bad request line");
		return (-1);
	}
	snprintf(c->method, sizeof c->method, "%.*s", (int)(sp1 - line), line);
	sp1++;
	if (strcmp(c->method, "CELLBLOCK-TCP") == 0) {
		c->kind = K_TCP;
		if (proxy_parse_tcp(c, sp1, eol - sp1) != 0)
			return (-1);
		c->headlen = rest;
		memmove(c->head, c->head + headend, rest);
		return (0);
	}
	if ((sp2 = memchr(sp1, ' ', eol - sp1)) == NULL) {
		snprintf(c->why, sizeof c->why, "bad request line");
		return (-1);
	}
	if (strcmp(c->method, "CONNECT") == 0) {
		c->kind = K_CONNECT;
		if (proxy_authority(c, sp1, sp2 - sp1, 0) != 0) {
			snprintf(c->why, sizeof c->why, "CONNECT needs "
			    "host:port");
			return (-1);
		}
		/* Bytes after the head are the client's first TLS bytes. */
		c->headlen = rest;
		memmove(c->head, c->head + headend, rest);
		return (0);
	}
	c->kind = K_HTTP;
	return (proxy_parse_http(c, sp1, sp2 - sp1, sp2 + 1, eol - sp2 - 1,
	    eol + 2, headend - 2 - (eol + 2 - line), rest));
}

/* The name against the policy; then resolve, check, connect. */
static void
proxy_decide(struct proxy_conn *c)
{
	char	text[EGRESS_TEXT_MAX];
	int	literal;

	literal = egress_parse_ip(c->host, &(int){0}, (uint8_t[16]){0}) == 0;
	if (!literal && c->kind != K_TCP &&
	    egress_policy_match_name(&c->s->pol, c->host, c->port) == -1) {
		egress_policy_format(&c->s->pol, text, sizeof text);
		proxy_refuse(c, 403, "%s:%u is not in this session's allowlist "
		    "(%s)", c->host, c->port, text);
		return;
	}
	if (proxy_over_bytes(c)) {
		proxy_refuse(c, 403, "%s", c->why);
		return;
	}
	proxy_resolve(c);
}

static void
proxy_read_head(struct proxy_conn *c)
{
	ssize_t	 n;
	char	*end;
	size_t	 headend;

	n = read(c->cfd, c->head + c->headlen, sizeof c->head - c->headlen);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		snprintf(c->why, sizeof c->why, "client closed before a "
		    "request");
		proxy_finish(c);
		return;
	}
	if (n < 0)
		return;
	c->headlen += n;
	c->last = proxy_now();
	if (c->headlen >= 14 && strncmp(c->head, "CELLBLOCK-TCP ", 14) == 0)
		end = memmem(c->head, c->headlen, "\n", 1);
	else
		end = memmem(c->head, c->headlen, "\r\n\r\n", 4);
	if (end == NULL) {
		if (c->headlen == sizeof c->head)
			proxy_refuse(c, 431, "request head over %d bytes",
			    PROXY_HEAD_MAX);
		return;
	}
	if (*end == '\n') {
		/* The raw line: "CELLBLOCK-TCP n\n", made "..\r\n" for parse. */
		if (end == c->head || end[-1] != '\r') {
			proxy_refuse(c, 400, "bad CELLBLOCK-TCP line");
			return;
		}
		headend = end + 1 - c->head;
	} else
		headend = end + 4 - c->head;
	if (proxy_parse(c, headend) != 0) {
		proxy_refuse(c, 400, "%s", c->why);
		return;
	}
	proxy_decide(c);
}

/* Accepting */

static int
proxy_rate_ok(struct proxy_session *s)
{
	double	now = proxy_now();

	s->tokens += (now - s->tokens_at) * proxy_lim.rate;
	if (s->tokens > proxy_lim.rate)
		s->tokens = proxy_lim.rate;
	s->tokens_at = now;
	if (s->tokens < 1)
		return (0);
	s->tokens -= 1;
	return (1);
}

static void
proxy_accept(struct proxy_session *s)
{
	struct proxy_conn	*c;
	int			 fd, i;

	for (i = 0; i < 16; i++) {
		fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1)
			return;
		c = xcalloc(1, sizeof *c);
		c->s = s;
		c->cfd = fd;
		c->ufd = -1;
		c->start = c->last = proxy_now();
		c->ctag.tag = TAG_CLIENT;
		c->ctag.p = c;
		snprintf(c->why, sizeof c->why, "?");
		s->conns++;
		c->next = proxy_conns;
		proxy_conns = c;
		proxy_watch(fd, &c->ctag, EPOLLIN, EPOLL_CTL_ADD);
		if (s->conns > proxy_lim.max_conns)
			proxy_refuse(c, 429, "more than %d concurrent "
			    "connections for this session (egress-max-conns)",
			    proxy_lim.max_conns);
		else if (!proxy_rate_ok(s))
			proxy_refuse(c, 429, "more than %g new connections a "
			    "second for this session (egress-rate)",
			    proxy_lim.rate);
	}
}

static void
proxy_event(struct proxy_tagged *t, uint32_t ev)
{
	struct proxy_conn	*c = t->p;

	switch (t->tag) {
	case TAG_CONTROL:
		if (proxy_control() != 0) {
			proxy_log("the daemon is gone; exiting");
			exit(0);
		}
		return;
	case TAG_RESOLVED:
		proxy_lookup_done();
		return;
	case TAG_LISTEN:
		if (!((struct proxy_session *)t->p)->gone)
			proxy_accept(t->p);
		return;
	case TAG_CLIENT:
	case TAG_UPSTREAM:
		break;
	}
	if (c->dead)
		return;
	switch (c->state) {
	case ST_HEAD:
		if (t->tag == TAG_CLIENT)
			proxy_read_head(c);
		break;
	case ST_CLOSING: {
		char	junk[4096];
		ssize_t	n = read(c->cfd, junk, sizeof junk);

		if (n == 0 || (n < 0 && errno != EAGAIN))
			proxy_finish(c);
		break;
	}
	case ST_RESOLVING:
		break;
	case ST_CONNECTING:
		if (t->tag == TAG_UPSTREAM)
			proxy_connect_done(c);
		break;
	case ST_TUNNEL:
		proxy_tunnel(c, t->tag == TAG_UPSTREAM, ev);
		break;
	}
}

/* Once a second: idle and total time limits, connects that hang. */
static void
proxy_sweep(void)
{
	struct proxy_conn	*c, *next;
	double			 now = proxy_now();

	for (c = proxy_conns; c != NULL; c = next) {
		next = c->next;
		if (c->dead || c->state == ST_RESOLVING)
			continue;
		if (c->state == ST_CLOSING) {
			if (now - c->last > PROXY_CLOSE_WAIT)
				proxy_finish(c);
		} else if (c->state != ST_TUNNEL &&
		    now - c->start > proxy_lim.connect_timeout)
			proxy_refuse(c, 504, "no request and connection within "
			    "%d s", proxy_lim.connect_timeout);
		else if (c->state == ST_TUNNEL && now - c->last >
		    proxy_lim.idle) {
			snprintf(c->why, sizeof c->why, "idle for %d s "
			    "(egress-idle-timeout)", proxy_lim.idle);
			proxy_finish(c);
		} else if (c->state == ST_TUNNEL && now - c->start >
		    proxy_lim.max_time) {
			snprintf(c->why, sizeof c->why, "open for %d s "
			    "(egress-max-time)", proxy_lim.max_time);
			proxy_finish(c);
		}
	}
}

/* Setup */

/* An /etc/hosts-style file: the only names the proxy resolves (tests). */
static void
proxy_load_hosts(const char *path)
{
	FILE	*f;
	char	 line[1024], *p, *addr, *name;
	uint8_t	 a[16];
	int	 family;

	if ((f = fopen(path, "re")) == NULL)
		fatal("%s", path);
	proxy_hosts_only = 1;
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "#\n")] = '\0';
		p = line;
		if ((addr = strsep(&p, " \t")) == NULL ||
		    egress_parse_ip(addr, &family, a) != 0)
			continue;
		while ((name = strsep(&p, " \t")) != NULL) {
			if (*name == '\0')
				continue;
			proxy_hosts = xrealloc(proxy_hosts,
			    (proxy_nhosts + 1) * sizeof *proxy_hosts);
			if (egress_normalize_name(name,
			    proxy_hosts[proxy_nhosts].name,
			    sizeof proxy_hosts[0].name) != 0)
				continue;
			proxy_hosts[proxy_nhosts].family = family;
			memcpy(proxy_hosts[proxy_nhosts].addr, a, 16);
			proxy_nhosts++;
		}
	}
	fclose(f);
}

/* Started as root: as many fds as sessions need, then our own uid. */
static void
proxy_privileges(long uid, long gid)
{
	struct rlimit	rl = { 65536, 65536 };

	if (geteuid() != 0)
		return;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (uid < 0)
		return;
	if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0)
		fatal("drop to uid %ld", uid);
	if (setuid(0) == 0)
		fatalx("could regain root after dropping it");
}

static void
proxy_usage(void)
{
	fprintf(stderr, "usage: cellblock-egress --control-fd N [--uid UID "
	    "--gid GID] [--hosts FILE]\n"
	    "           [--max-conns N] [--max-bytes-in N] [--max-bytes-out N]"
	    " [--rate N]\n"
	    "           [--idle-timeout S] [--max-time S] "
	    "[--connect-timeout S]\n");
	exit(2);
}

static void
proxy_args(int argc, char **argv, long *uid, long *gid)
{
	static const struct option opts[] = {
		{ "control-fd", required_argument, NULL, 'c' },
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "hosts", required_argument, NULL, 'H' },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "max-bytes-in", required_argument, NULL, 'i' },
		{ "max-bytes-out", required_argument, NULL, 'o' },
		{ "rate", required_argument, NULL, 'r' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "max-time", required_argument, NULL, 'T' },
		{ "connect-timeout", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	int	ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': proxy_ctl = atoi(optarg); break;
		case 'u': *uid = atol(optarg); break;
		case 'g': *gid = atol(optarg); break;
		case 'H': proxy_load_hosts(optarg); break;
		case 'm': proxy_lim.max_conns = atoi(optarg); break;
		case 'i': proxy_lim.max_in = strtoull(optarg, NULL, 10); break;
		case 'o': proxy_lim.max_out = strtoull(optarg, NULL, 10); break;
		case 'r': proxy_lim.rate = atof(optarg); break;
		case 'I': proxy_lim.idle = atoi(optarg); break;
		case 'T': proxy_lim.max_time = atoi(optarg); break;
		case 'C': proxy_lim.connect_timeout = atoi(optarg); break;
		default: proxy_usage();
		}
	}
	if (proxy_ctl < 3 || optind != argc || proxy_lim.max_conns < 1 ||
	    proxy_lim.rate < 1 || proxy_lim.idle < 1 || proxy_lim.max_time < 1 ||
	    proxy_lim.connect_timeout < 1)
		proxy_usage();
}

int
main(int argc, char **argv)
{
	struct epoll_event	 evs[64];
	long			 uid = -1, gid = -1;
	double			 swept = 0;
	int			 n, i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	proxy_args(argc, argv, &uid, &gid);
	if (getppid() == 1)
		exit(0);
	if ((proxy_ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    pipe2(proxy_lookup_pipe, O_CLOEXEC) != 0)
		fatal("epoll/pipe");
	proxy_privileges(uid, gid);
	fcntl(proxy_ctl, F_SETFD, FD_CLOEXEC);
	proxy_watch(proxy_ctl, &proxy_ctl_tag, EPOLLIN, EPOLL_CTL_ADD);
	proxy_watch(proxy_lookup_pipe[0], &proxy_lookup_tag, EPOLLIN,
	    EPOLL_CTL_ADD);
	proxy_send_record(json_pack("{s:s,s:i,s:i}", "op", "ready", "pid",
	    (int)getpid(), "uid", (int)getuid()));
	for (;;) {
		n = epoll_wait(proxy_ep, evs, nitems(evs), 1000);
		if (n == -1 && errno != EINTR)
			fatal("epoll_wait");
		for (i = 0; i < n; i++)
			proxy_event(evs[i].data.ptr, evs[i].events);
		proxy_reap();
		if (proxy_now() - swept >= 1) {
			proxy_sweep();
			swept = proxy_now();
		}
	}
}
