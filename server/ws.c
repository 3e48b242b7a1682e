/* ws.c: WebSocket connections (RFC 6455) on upgraded HTTP sockets. */
/*
 * Framing is libwslay's lower wslay_frame_* layer, not its event API: that
 * one closes the socket (1007) on a text frame that is not UTF-8, and
 * tornado proxies (Notebook 6.4, jupyter_server) forward browsers' binary
 * messages as exactly such text frames. Here a text message is bytes; the
 * consumer decides what they mean.
 *
 * Output is queued in one buffer per connection and written when the
 * socket takes it; a peer that stops reading and lets WS_QUEUE_MAX pile up
 * is closed, so a slow client costs bounded memory. Connections are freed
 * from a timer, never inside their own callback, and the owner's closed
 * callback runs from that timer too.
 */

#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <sodium.h>
#include <wslay/wslay.h>

#include "server.h"
#include "http.h"

#define WS_QUEUE_MAX	((size_t)64 * 1024 * 1024)	/* unsent bytes */
#define WS_READ_CHUNK	(64 * 1024)
#define WS_PING_EVERY	30000		/* ms between our pings */
#define WS_CONTROL_MAX	125

struct ws {
	int			 fd;
	void			*urh;
	struct loop_io		*io;
	wslay_frame_context_ptr	 fc;
	const struct ws_ops	*ops;
	void			*arg;
	char			 peer[64];

	u_char			*in;		/* read, not yet framed */
	size_t			 in_len, in_off;
	u_char			*msg;		/* message being assembled */
	size_t			 msg_len;
	int			 msg_op;	/* 0: none */
	uint64_t		 frame_got;	/* payload of this frame so far */
	u_char			 ctl[WS_CONTROL_MAX];
	size_t			 ctl_len;

	u_char			*out;
	size_t			 out_len, out_off;

	int			 closing;	/* close sent; flush, then go */
	int			 dead;
	LIST_ENTRY(ws)		 entry;		/* in ws_all */
	struct loop_timer	*reap;
	struct loop_timer	*ping;
};

static LIST_HEAD(, ws) ws_all = LIST_HEAD_INITIALIZER(ws_all);

/* The accept key: base64(SHA-1(key + GUID)). */
int
ws_accept_key(const char *key, char out[29])
{
	u_char	 sha[20];
	char	*s;
	int	 r;

	if (key == NULL || strlen(key) == 0 || strlen(key) > 64)
		return (-1);
	xasprintf(&s, "%s%s", key, WS_GUID);
	r = gnutls_hash_fast(GNUTLS_DIG_SHA1, s, strlen(s), sha);
	free(s);
	if (r != 0)
		return (-1);
	sodium_bin2base64(out, 29, sha, sizeof sha,
	    sodium_base64_VARIANT_ORIGINAL);
	return (0);
}

/* wslay's callbacks: bytes come from ws->in, frames go to ws->out. */

static ssize_t
ws_recv_cb(uint8_t *buf, size_t len, int flags, void *arg)
{
	struct ws	*ws = arg;
	size_t		 n = ws->in_len - ws->in_off;

	(void)flags;
	if (n == 0)
		return (-1);	/* wslay: want read */
	if (n > len)
		n = len;
	memcpy(buf, ws->in + ws->in_off, n);
	ws->in_off += n;
	return ((ssize_t)n);
}

static ssize_t
ws_send_cb(const uint8_t *data, size_t len, int flags, void *arg)
{
	struct ws	*ws = arg;

	(void)flags;
	if (ws->out_off != 0 && ws->out_off == ws->out_len)
		ws->out_off = ws->out_len = 0;
	ws->out = xrealloc(ws->out, ws->out_len + len);
	memcpy(ws->out + ws->out_len, data, len);
	ws->out_len += len;
	return ((ssize_t)len);
}

static int
ws_genmask_cb(uint8_t *buf, size_t len, void *arg)
{
	(void)arg;
	randombytes_buf(buf, len);
	return (0);
}

static const struct wslay_frame_callbacks ws_callbacks = {
	ws_send_cb, ws_recv_cb, ws_genmask_cb
};

/* Going away. */

static void
ws_free(void *arg)
{
	struct ws	*ws = arg;

	ws->reap = NULL;	/* it fired: this is its callback */
	/*
	 * The owner hears of the close here, from the loop, never inside a
	 * ws_send of its own: what it was iterating stays valid.
	 */
	if (ws->ops->closed != NULL)
		ws->ops->closed(ws, ws->arg);
	LIST_REMOVE(ws, entry);
	loop_timer_cancel(&ws->ping);
	loop_io_remove(&ws->io);
	if (ws->urh != NULL)
		http_upgrade_close(ws->urh);
	wslay_frame_context_free(ws->fc);
	free(ws->in);
	free(ws->msg);
	free(ws->out);
	free(ws);
}

/* Mark dead, tell the owner once, free from the loop. */
static void
ws_kill(struct ws *ws, const char *why)
{
	if (ws->dead)
		return;
	ws->dead = 1;
	log_debug("WebSocket from %s closed: %s", ws->peer, why);
	ws->reap = loop_timer_add(0, ws_free, ws);
}

static void
ws_flush(struct ws *ws)
{
	ssize_t	n;

	while (!ws->dead && ws->out_off < ws->out_len) {
		n = send(ws->fd, ws->out + ws->out_off,
		    ws->out_len - ws->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			ws->out_off += n;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		ws_kill(ws, n == 0 ? "peer gone" : strerror(errno));
		return;
	}
	if (ws->dead)
		return;
	if (ws->out_off == ws->out_len) {
		ws->out_off = ws->out_len = 0;
		if (ws->closing) {
			shutdown(ws->fd, SHUT_WR);
			ws_kill(ws, "closed");
			return;
		}
	}
	loop_io_set(ws->io, EPOLLIN | (ws->out_len != 0 ? EPOLLOUT : 0));
}

static int
ws_frame(struct ws *ws, int opcode, const void *data, size_t len)
{
	struct wslay_frame_iocb	 iocb;
	ssize_t			 r;
	size_t			 off = 0;

	if (ws->dead || ws->closing)
		return (-1);
	if (ws->out_len - ws->out_off + len > WS_QUEUE_MAX) {
		ws_kill(ws, "the peer is not reading");
		return (-1);
	}
	memset(&iocb, 0, sizeof iocb);
	iocb.fin = 1;
	iocb.opcode = opcode;
	iocb.payload_length = len;
	do {
		iocb.data = (const uint8_t *)data + off;
		iocb.data_length = len - off;
		if ((r = wslay_frame_send(ws->fc, &iocb)) < 0)
			fatalx("wslay_frame_send: %zd", r);
		off += r;
	} while (off < len);
	return (0);
}

/* Queue one whole message; -1 if the connection is gone or stuck. */
int
ws_send(struct ws *ws, enum ws_kind kind, const void *data, size_t len)
{
	if (ws_frame(ws, kind == WS_TEXT ? WSLAY_TEXT_FRAME :
	    WSLAY_BINARY_FRAME, data, len) != 0)
		return (-1);
	ws_flush(ws);
	return (ws->dead ? -1 : 0);
}

void
ws_close(struct ws *ws, uint16_t code, const char *reason)
{
	u_char	buf[WS_CONTROL_MAX];
	size_t	len;

	if (ws->dead || ws->closing)
		return;
	buf[0] = code >> 8;
	buf[1] = code & 0xff;
	len = strlen(reason) > WS_CONTROL_MAX - 2 ? WS_CONTROL_MAX - 2 :
	    strlen(reason);
	memcpy(buf + 2, reason, len);
	ws_frame(ws, WSLAY_CONNECTION_CLOSE, buf, len + 2);
	ws->closing = 1;
	ws_flush(ws);
}

size_t
ws_queued(struct ws *ws)
{
	return (ws->out_len - ws->out_off);
}

const char *
ws_peer(struct ws *ws)
{
	return (ws->peer);
}

/* Input. */

static void
ws_control(struct ws *ws, int opcode)
{
	switch (opcode) {
	case WSLAY_PING:
		ws_frame(ws, WSLAY_PONG, ws->ctl, ws->ctl_len);
		break;
	case WSLAY_CONNECTION_CLOSE:
		if (!ws->closing) {
			ws_frame(ws, WSLAY_CONNECTION_CLOSE, ws->ctl,
			    ws->ctl_len >= 2 ? 2 : 0);
			ws->closing = 1;
		}
		break;
	}
}

/* A data frame's payload; a message is whole at its final frame. */
static int
ws_data(struct ws *ws, const struct wslay_frame_iocb *iocb, int first,
    int last)
{
	if (first && iocb->opcode != WSLAY_CONTINUATION_FRAME) {
		if (ws->msg_op != 0)
			return (-1);	/* a new message inside another */
		ws->msg_op = iocb->opcode;
		ws->msg_len = 0;
	} else if (first && ws->msg_op == 0)
		return (-1);		/* a continuation of nothing */
	if (ws->msg_len + iocb->data_length > cfg.max_message)
		return (-2);
	if (iocb->data_length != 0) {
		ws->msg = xrealloc(ws->msg, ws->msg_len + iocb->data_length);
		memcpy(ws->msg + ws->msg_len, iocb->data, iocb->data_length);
		ws->msg_len += iocb->data_length;
	}
	if (last && iocb->fin) {
		ws->ops->message(ws, ws->msg_op == WSLAY_TEXT_FRAME ? WS_TEXT :
		    WS_BINARY, ws->msg != NULL ? ws->msg : (u_char *)"",
		    ws->msg_len, ws->arg);
		ws->msg_op = 0;
		ws->msg_len = 0;
		free(ws->msg);
		ws->msg = NULL;
	}
	return (0);
}

/* Frame what was read; -1 and a close on a protocol error. */
static void
ws_parse(struct ws *ws)
{
	struct wslay_frame_iocb	 iocb;
	ssize_t			 r;
	int			 first, last, e;

	while (!ws->dead && !ws->closing) {
		memset(&iocb, 0, sizeof iocb);
		r = wslay_frame_recv(ws->fc, &iocb);
		if (r == WSLAY_ERR_WANT_READ)
			break;
		if (r < 0 || iocb.rsv != 0 || (iocb.opcode > 2 &&
		    iocb.opcode < 8) || iocb.opcode > 10) {
			ws_close(ws, 1002, "protocol error");
			return;
		}
		first = ws->frame_got == 0;
		ws->frame_got += iocb.data_length;
		last = ws->frame_got == iocb.payload_length;
		if (iocb.opcode >= 8) {
			memcpy(ws->ctl + ws->ctl_len, iocb.data,
			    iocb.data_length);
			ws->ctl_len += iocb.data_length;
			if (last)
				ws_control(ws, iocb.opcode);
		} else if ((e = ws_data(ws, &iocb, first, last)) != 0) {
			ws_close(ws, e == -2 ? 1009 : 1002, e == -2 ?
			    "message too big" : "bad fragmentation");
			return;
		}
		if (last)
			ws->frame_got = ws->ctl_len = 0;
	}
}

static void
ws_read(struct ws *ws)
{
	ssize_t	n;

	if (ws->in_off == ws->in_len)
		ws->in_off = ws->in_len = 0;
	ws->in = xrealloc(ws->in, ws->in_len + WS_READ_CHUNK);
	n = recv(ws->fd, ws->in + ws->in_len, WS_READ_CHUNK, MSG_DONTWAIT);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		ws_kill(ws, n == 0 ? "peer gone" : strerror(errno));
		return;
	}
	if (n > 0)
		ws->in_len += n;
	ws_parse(ws);
}

static void
ws_event(int fd, uint32_t events, void *arg)
{
	struct ws	*ws = arg;

	(void)fd;
	if (ws->dead)
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		ws_read(ws);
	if (!ws->dead)
		ws_flush(ws);
}

static void
ws_ping(void *arg)
{
	struct ws	*ws = arg;

	ws->ping = NULL;
	if (ws->dead || ws->closing)
		return;
	ws_frame(ws, WSLAY_PING, "cellblock", 9);
	ws_flush(ws);
	if (!ws->dead)
		ws->ping = loop_timer_add(WS_PING_EVERY, ws_ping, ws);
}

/* Accepting. */

struct ws_pending {
	const struct ws_ops	*ops;
	void			*arg;
	char			 peer[64];
};

static void
ws_upgraded(void *arg, int fd, const char *extra, size_t extra_len,
    void *urh)
{
	struct ws_pending	*p = arg;
	struct ws		*ws;
	int			 one = 1;

	ws = xcalloc(1, sizeof *ws);
	ws->fd = fd;
	ws->urh = urh;
	ws->ops = p->ops;
	ws->arg = p->arg;
	memcpy(ws->peer, p->peer, sizeof ws->peer);
	free(p);
	if (wslay_frame_context_init(&ws->fc, &ws_callbacks, ws) != 0)
		fatalx("out of memory");
	/*
	 * A reply goes out as several small frames (busy, reply, idle):
	 * with Nagle on, the peer's delayed ACK holds each round trip 40 ms.
	 * (Under TLS fd is libmicrohttpd's socketpair: no TCP, no option.)
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	LIST_INSERT_HEAD(&ws_all, ws, entry);
	ws->io = loop_io_add(fd, EPOLLIN, ws_event, ws);
	ws->ping = loop_timer_add(WS_PING_EVERY, ws_ping, ws);
	ws->ops->opened(ws, ws->arg);
	if (extra_len != 0 && !ws->dead) {
		ws->in = xmalloc(extra_len);
		memcpy(ws->in, extra, extra_len);
		ws->in_len = extra_len;
		ws_parse(ws);
		if (!ws->dead)
			ws_flush(ws);
	}
}

static void
ws_refused(void *arg)
{
	struct ws_pending	*p = arg;

	if (p->ops->refused != NULL)
		p->ops->refused(p->arg);
	free(p);
}

static int
ws_header_has(const char *value, const char *token)
{
	size_t	len = strlen(token);

	for (; value != NULL && *value != '\0'; value++) {
		if (strncasecmp(value, token, len) == 0)
			return (1);
	}
	return (0);
}

/*
 * Answer an upgrade request with 101, or with 400 if it is not a proper
 * WebSocket handshake. protocol: the subprotocol chosen, NULL for none.
 */
void
ws_accept(struct http_req *req, const char *protocol,
    const struct ws_ops *ops, void *arg)
{
	struct ws_pending	*p;
	const char		*key, *ver, *headers[4][2];
	char			 accept[29];
	size_t			 n = 0;

	key = http_header(req, "Sec-WebSocket-Key");
	ver = http_header(req, "Sec-WebSocket-Version");
	if (!ws_header_has(http_header(req, "Upgrade"), "websocket") ||
	    !ws_header_has(http_header(req, "Connection"), "upgrade") ||
	    ver == NULL || strcmp(ver, "13") != 0 ||
	    ws_accept_key(key, accept) != 0) {
		http_error(req, 400, "Bad Request", "not a WebSocket "
		    "handshake (version 13)");
		if (ops->refused != NULL)
			ops->refused(arg);
		return;
	}
	headers[n][0] = "Upgrade";
	headers[n++][1] = "websocket";
	headers[n][0] = "Sec-WebSocket-Accept";
	headers[n++][1] = accept;
	if (protocol != NULL) {
		headers[n][0] = "Sec-WebSocket-Protocol";
		headers[n++][1] = protocol;
	}
	headers[n][0] = headers[n][1] = NULL;
	p = xcalloc(1, sizeof *p);
	p->ops = ops;
	p->arg = arg;
	snprintf(p->peer, sizeof p->peer, "%s", http_peer(req));
	http_upgrade(req, headers, ws_upgraded, ws_refused, p);
}

/*
 * The daemon stops: every connection goes now, its owner told, its socket
 * handed back, before libmicrohttpd stops (it must not find an upgraded
 * connection still open).
 */
void
ws_stop(void)
{
	struct ws	*ws;

	while ((ws = LIST_FIRST(&ws_all)) != NULL) {
		ws->dead = 1;
		loop_timer_cancel(&ws->reap);
		ws_free(ws);
	}
}
