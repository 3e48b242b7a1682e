/* channel.c: length-prefixed JSON messages over a session's socketpair. */
/*
 * The fd is non-blocking on our side: a runner that stops reading must
 * never stall the daemon, so writes are buffered and flushed when the
 * loop says the fd is writable. Frames are a 4-byte big-endian length
 * and one JSON object (docs/CHANNEL.md); anything else breaks the channel.
 */

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "protocol.h"
#include "sessions.h"

#define CHANNEL_READ_CHUNK	65536
#define CHANNEL_KEEP		16384	/* a buffer above this is freed once empty */

static void	channel_reserve(char **, size_t *, size_t);

/*
 * Reads land here first and only their bytes are kept per channel: a
 * thousand idle sessions must not each hold a read chunk (the daemon's
 * memory target, docs/BENCHMARKS.md). The daemon reads on one thread.
 */
static char	channel_scratch[CHANNEL_READ_CHUNK];

void
channel_init(struct channel *c, int fd)
{
	memset(c, 0, sizeof *c);
	c->fd = fd;
	if (fd != -1)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void
channel_close(struct channel *c)
{
	if (c->fd != -1)
		close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	channel_init(c, -1);
}

static void
channel_reserve(char **buf, size_t *size, size_t need)
{
	size_t	newsize;

	if (need <= *size)
		return;
	newsize = *size == 0 ? 4096 : *size;
	while (newsize < need)
		newsize *= 2;
	*buf = xrealloc(*buf, newsize);
	*size = newsize;
}

/*
 * Queue one message behind what waits, not written yet: the caller's
 * loop writes it when the channel is next writable (channel_flush), after
 * the work in hand; 0 or -1 with a cause.
 */
int
channel_queue(struct channel *c, json_t *msg, char **cause)
{
	struct jwrite	 w;
	char		*s;
	size_t		 len;
	uint32_t	 be;

	if (c->fd == -1) {
		*cause = xstrdup("channel closed");
		return (-1);
	}
	/* As json_dumps(JSON_COMPACT) wrote it, without its per-token cost. */
	jwrite_init(&w, 0, NULL);
	jwrite_json(&w, msg);
	s = jwrite_take(&w, &len);
	if (w.bad) {
		free(s);
		*cause = xstrdup("cannot encode message");
		return (-1);
	}
	if (len > CHANNEL_MAX) {
		free(s);
		xasprintf(cause, "message of %zu bytes too large", len);
		return (-1);
	}
	if (c->woff > 0 && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	channel_reserve(&c->wbuf, &c->wsize, c->wlen + 4 + len);
	be = htobe32((uint32_t)len);
	memcpy(c->wbuf + c->wlen, &be, 4);
	memcpy(c->wbuf + c->wlen + 4, s, len);
	c->wlen += 4 + len;
	free(s);
	return (0);
}

/* Queue one message and try to send it; 0 or -1 with a cause. */
int
channel_send(struct channel *c, json_t *msg, char **cause)
{
	if (channel_queue(c, msg, cause) != 0)
		return (-1);
	return (channel_flush(c, cause) == -1 ? -1 : 0);
}

/*
 * One message carrying descriptors (SCM_RIGHTS, on its first byte): only
 * on an empty queue, so the descriptors go with this message and no
 * other. -1 with a cause if it cannot be sent now; the caller keeps and
 * closes its fds either way.
 */
int
channel_send_fds(struct channel *c, json_t *msg, const int *fds, int nfds,
    char **cause)
{
	union {
		struct cmsghdr	hdr;
		char		space[CMSG_SPACE(sizeof(int) * CHANNEL_FDS_MAX)];
	} cm;
	struct msghdr	 mh;
	struct cmsghdr	*cmsg;
	struct iovec	 iov;
	char		*s;
	size_t		 len;
	uint32_t	 be;
	ssize_t		 n;

	if (c->fd == -1 || channel_pending(c) || nfds < 1 ||
	    nfds > CHANNEL_FDS_MAX) {
		*cause = xstrdup(c->fd == -1 ? "channel closed" :
		    "cannot pass descriptors now");
		return (-1);
	}
	if ((s = json_dumps(msg, JSON_COMPACT)) == NULL) {
		*cause = xstrdup("cannot encode message");
		return (-1);
	}
	len = strlen(s);
	channel_reserve(&c->wbuf, &c->wsize, 4 + len);
	be = htobe32((uint32_t)len);
	memcpy(c->wbuf, &be, 4);
	memcpy(c->wbuf + 4, s, len);
	free(s);
	c->woff = 0;
	c->wlen = 4 + len;
	memset(&mh, 0, sizeof mh);
	memset(&cm, 0, sizeof cm);
	iov.iov_base = c->wbuf;
	iov.iov_len = c->wlen;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.space;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	cmsg = CMSG_FIRSTHDR(&mh);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	do
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n <= 0) {
		xasprintf(cause, "sendmsg: %s", n == 0 ? "nothing sent" :
		    strerror(errno));
		c->woff = c->wlen = 0;
		return (-1);
	}
	c->woff = n;	/* the rest, if any, without the descriptors */
	return (channel_flush(c, cause) == -1 ? -1 : 0);
}

/* Write what we can; 1 if data remains, 0 if all sent, -1 on error. */
int
channel_flush(struct channel *c, char **cause)
{
	ssize_t	n;

	while (c->woff < c->wlen) {
		n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return (1);
		if (n == -1) {
			xasprintf(cause, "write: %s", strerror(errno));
			return (-1);
		}
		c->woff += n;
	}
	c->woff = c->wlen = 0;
	if (c->wsize > CHANNEL_KEEP) {
		free(c->wbuf);
		c->wbuf = NULL;
		c->wsize = 0;
	}
	return (0);
}

int
channel_pending(const struct channel *c)
{
	return (c->woff < c->wlen);
}


/*
 * With credentials wanted (a zygote-born interpreter, docs/ZYGOTE.md) the
 * kernel stamps each read with the writer's pid, which nobody but a
 * CAP_SYS_ADMIN writer can choose: the daemon checks it against the pid
 * the zygote reported before it lets the process into its sandbox.
 */
static ssize_t
channel_read(struct channel *c, char *buf, size_t len)
{
	struct iovec	 iov = { .iov_base = buf, .iov_len = len };
	union {
		struct cmsghdr	hdr;
		char		space[CMSG_SPACE(sizeof(struct ucred))];
	} cm;
	struct msghdr	 mh;
	struct cmsghdr	*cmsg;
	struct ucred	 uc;
	ssize_t		 n;

	if (!c->creds)
		return (read(c->fd, buf, len));
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.space;
	mh.msg_controllen = sizeof cm.space;
	if ((n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC)) <= 0)
		return (n);
	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		if (cmsg->cmsg_level == SOL_SOCKET &&
		    cmsg->cmsg_type == SCM_CREDENTIALS &&
		    cmsg->cmsg_len == CMSG_LEN(sizeof uc)) {
			memcpy(&uc, CMSG_DATA(cmsg), sizeof uc);
			c->peer_pid = uc.pid;
		}
	}
	return (n);
}

/* Ask for (on != 0) or stop asking for the writer's pid with every read. */
int
channel_want_creds(struct channel *c, int on)
{
	if (setsockopt(c->fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
		return (-1);
	c->creds = on;
	c->peer_pid = 0;
	return (0);
}
/* Read what is available; 1 read something, 0 EOF, -1 error. */
int
channel_fill(struct channel *c, char **cause)
{
	ssize_t	n;
	int	got = 0;

	/* Drop what channel_next consumed, once per read rather than per frame. */
	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	for (;;) {
		n = channel_read(c, channel_scratch, sizeof channel_scratch);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return (1);
		if (n == -1) {
			xasprintf(cause, "read: %s", strerror(errno));
			return (-1);
		}
		if (n == 0)
			return (got ? 1 : 0);
		got = 1;
		channel_reserve(&c->rbuf, &c->rsize, c->rlen + n);
		memcpy(c->rbuf + c->rlen, channel_scratch, n);
		c->rlen += n;
		/* Do not let one wakeup read unboundedly; the loop returns. */
		if (c->rlen > 4 * CHANNEL_READ_CHUNK)
			return (1);
		/*
		 * A short read took all there was: the next would say EAGAIN,
		 * a syscall per wake-up for nothing (the loop watches the
		 * channel level-triggered and calls again when more comes).
		 */
		if ((size_t)n < sizeof channel_scratch)
			return (1);
	}
}

/*
 * Pop the next complete message. NULL with *cause NULL means "need more
 * bytes"; NULL with a cause means the stream is broken.
 */
json_t *
channel_next(struct channel *c, char **cause)
{
	uint32_t	 be;
	size_t		 len;
	json_t		*msg;
	json_error_t	 jerr;

	*cause = NULL;
	if (c->rpos == c->rlen && c->rsize > CHANNEL_KEEP) {
		free(c->rbuf);		/* all consumed, after a big message */
		c->rbuf = NULL;
		c->rsize = c->rlen = c->rpos = 0;
	}
	if (c->rlen - c->rpos < 4)
		return (NULL);
	memcpy(&be, c->rbuf + c->rpos, 4);
	len = be32toh(be);
	if (len > CHANNEL_MAX) {
		xasprintf(cause, "frame of %zu bytes exceeds limit", len);
		return (NULL);
	}
	if (c->rlen - c->rpos < 4 + len)
		return (NULL);
	msg = json_loadb(c->rbuf + c->rpos + 4, len, JSON_REJECT_DUPLICATES,
	    &jerr);
	c->rpos += 4 + len;
	if (msg == NULL) {
		xasprintf(cause, "bad JSON: %s", jerr.text);
		return (NULL);
	}
	if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "op"))) {
		json_decref(msg);
		*cause = xstrdup("frame is not an object with an op");
		return (NULL);
	}
	return (msg);
}
