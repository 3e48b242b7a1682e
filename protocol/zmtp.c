/* zmtp.c: a ZMTP 3.0 codec (greeting, NULL handshake, frames) with hard limits. */
/*
 * Pure and I/O-free: bytes in, complete messages and bytes to send out.
 * The socket layer (server/wire.c) owns the descriptors. Why our own:
 * libzmq never hands an unfinished multipart message to the application,
 * so a peer sending endless frames, each under ZMQ_MAXMSGSIZE, grows the
 * process without bound (docs/PROTOCOL.md, "Wire bounds"). Here every
 * frame header is checked against the message's budget before a byte of
 * it is stored, and the budget charges ZMTP_FRAME_COST per frame so that
 * a million empty frames are bounded too.
 *
 * The specs: ZMTP 3.0 (rfc.zeromq.org spec 23) and 3.1 (spec 37). We
 * announce 3.0: libzmq then encodes subscriptions as messages (first byte
 * 1 subscribe, 0 unsubscribe) rather than 3.1's SUBSCRIBE/CANCEL
 * commands, which are accepted anyway, as are PING (answered by PONG).
 *
 *	greeting (64 bytes)
 *	  0	 0xff			signature
 *	  1-8	 padding		any (libzmq: its identity length + 1)
 *	  9	 0x7f			signature; bit 0 set marks ZMTP >= 2
 *	  10-11	 major, minor		3, 0 (a peer's minor may be higher)
 *	  12-31	 mechanism		"NULL", NUL padded
 *	  32	 as-server		ignored (NULL has no roles)
 *	  33-63	 filler			zeros
 *	frame
 *	  flags	 bit 0 MORE, bit 1 LONG (8-byte size), bit 2 COMMAND,
 *		 bits 3-7 reserved (zero, or the frame is refused)
 *	  size	 1 byte, or 8 bytes big-endian with LONG
 *	  body	 size bytes
 *	command body: name length (1 byte), name, data
 *	READY data: properties, each name length (1), name, value length
 *	  (4, big-endian), value; names compare case-insensitively
 */

#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base.h"
#include "protocol.h"

#define ZMTP_SIG_MAJOR	10	/* greeting offsets (table above) */
#define ZMTP_SIG_MECH	12
#define ZMTP_OUT_MAX	4096	/* handshake output + PONGs a peer may owe */

#define ZMTP_MORE	0x01
#define ZMTP_LONG	0x02
#define ZMTP_COMMAND	0x04

enum zmtp_state {
	ZMTP_GREETING,		/* collecting the peer's 64 bytes */
	ZMTP_FLAGS,		/* a frame's flags byte */
	ZMTP_SIZE,		/* its size, 1 or 8 bytes */
	ZMTP_BODY,		/* its body */
};

struct zmtp {
	const char	*type;		/* ours: "ROUTER", "PUB" */
	size_t		 limit;		/* budget of one message */
	enum zmtp_state	 state;
	int		 ready;		/* the peer's READY was accepted */

	u_char		 greeting[ZMTP_GREETING_SIZE];
	size_t		 have;		/* bytes of greeting or size field */

	u_char		 flags;		/* of the frame being read */
	u_char		 sizebuf[8];
	uint64_t	 size;
	size_t		 got;		/* bytes of its body so far */
	u_char		*body;		/* a command's, or the frame's data */
	zframe_t	*frame;		/* a message frame being filled */

	zmsg_t		*msg;		/* the unfinished message */
	size_t		 charged;	/* its budget used, declared sizes */
	size_t		 held;		/* bytes actually stored + frame costs */

	char		 peer_type[16];
	u_char		 identity[255];
	size_t		 identity_len;

	u_char		 out[ZMTP_OUT_MAX];
	size_t		 out_len;
};

/*
 * Peers each of our socket types accepts (libzmq's check_socket_type).
 *	ours	our Socket-Type
 *	peers	the Socket-Types allowed to connect, space separated
 *	ident	whether our READY carries an (empty) Identity property
 */
static const struct {
	const char	*ours;
	const char	*peers;
	int		 ident;
} zmtp_types[] = {
	{ "ROUTER",	" REQ DEALER ROUTER ",	1 },
	{ "PUB",	" SUB XSUB ",		0 },
};

static int	zmtp_greeting_byte(struct zmtp *, u_char, char **);
static int	zmtp_out_add(struct zmtp *, const void *, size_t, char **);
static int	zmtp_send_ready(struct zmtp *, char **);
static int	zmtp_header_done(struct zmtp *, char **);
static int	zmtp_frame_done(struct zmtp *, zmsg_t **, char **);
static int	zmtp_command(struct zmtp *, zmsg_t **, char **);
static int	zmtp_ready_props(struct zmtp *, const u_char *, size_t,
		    char **);
static int	zmtp_prop(struct zmtp *, const char *, const u_char *, size_t,
		    char **);

struct zmtp *
zmtp_new(const char *type, size_t max_message)
{
	struct zmtp	*z;
	size_t		 i;

	z = xcalloc(1, sizeof *z);
	for (i = 0; i < nitems(zmtp_types); i++) {
		if (strcmp(zmtp_types[i].ours, type) == 0)
			z->type = zmtp_types[i].ours;
	}
	if (z->type == NULL)
		fatalx("%s: unknown socket type %s", __func__, type);
	z->limit = max_message + ZMTP_FRAME_COST * ZMTP_FREE_FRAMES;
	/* Our greeting goes out at once; READY waits for the peer's. */
	z->out[0] = 0xff;
	z->out[9] = 0x7f;
	z->out[ZMTP_SIG_MAJOR] = 3;
	memcpy(z->out + ZMTP_SIG_MECH, "NULL", 4);
	z->out_len = ZMTP_GREETING_SIZE;
	return (z);
}

void
zmtp_destroy(struct zmtp **zp)
{
	struct zmtp	*z = *zp;

	if (z == NULL)
		return;
	free(z->body);
	zframe_destroy(&z->frame);
	zmsg_destroy(&z->msg);
	free(z);
	*zp = NULL;
}

int
zmtp_ready(const struct zmtp *z)
{
	return (z->ready);
}

const char *
zmtp_peer_type(const struct zmtp *z)
{
	return (z->peer_type);
}

const u_char *
zmtp_identity(const struct zmtp *z, size_t *len)
{
	*len = z->identity_len;
	return (z->identity);
}

/* What the unfinished message costs now: bytes stored plus frame costs. */
size_t
zmtp_held(const struct zmtp *z)
{
	return (z->held);
}

/* Bytes the codec wants sent (greeting, READY, PONG); take them all. */
const u_char *
zmtp_output(struct zmtp *z, size_t *len)
{
	*len = z->out_len;
	return (z->out);
}

void
zmtp_output_taken(struct zmtp *z)
{
	z->out_len = 0;
}

static int
zmtp_out_add(struct zmtp *z, const void *p, size_t n, char **cause)
{
	if (z->out_len + n > sizeof z->out) {
		*cause = xstrdup("peer does not read its handshake replies");
		return (-1);
	}
	memcpy(z->out + z->out_len, p, n);
	z->out_len += n;
	return (0);
}

/* Check each greeting byte as it comes, so a wrong peer fails early. */
static int
zmtp_greeting_byte(struct zmtp *z, u_char c, char **cause)
{
	static const u_char	null_mech[20] = "NULL";
	size_t			i = z->have;

	z->greeting[z->have++] = c;
	if (i == 0 && c != 0xff) {
		*cause = xstrdup("not ZMTP 3 (no greeting signature)");
		return (-1);
	}
	if (i == 9 && (c & 0x01) == 0) {
		*cause = xstrdup("ZMTP 1.0 peer (unversioned), not supported");
		return (-1);
	}
	if (i == ZMTP_SIG_MAJOR && c < 3) {
		xasprintf(cause, "ZMTP %u peer, need 3 or later", c);
		return (-1);
	}
	if (z->have < ZMTP_GREETING_SIZE)
		return (0);
	if (memcmp(z->greeting + ZMTP_SIG_MECH, null_mech, 20) != 0) {
		*cause = xstrdup("security mechanism is not NULL");
		return (-1);
	}
	z->state = ZMTP_FLAGS;
	return (zmtp_send_ready(z, cause));
}

/* Append one property to a command body being built in buf. */
static size_t
zmtp_put_prop(u_char *buf, const char *name, const void *value, size_t len)
{
	size_t	n = strlen(name);

	buf[0] = n;
	memcpy(buf + 1, name, n);
	buf[1 + n] = len >> 24;
	buf[2 + n] = len >> 16;
	buf[3 + n] = len >> 8;
	buf[4 + n] = len;
	memcpy(buf + 5 + n, value, len);
	return (5 + n + len);
}

static int
zmtp_send_ready(struct zmtp *z, char **cause)
{
	u_char	buf[128];
	size_t	n = 2, i;

	buf[n++] = 5;
	memcpy(buf + n, "READY", 5);
	n += 5;
	n += zmtp_put_prop(buf + n, "Socket-Type", z->type, strlen(z->type));
	for (i = 0; i < nitems(zmtp_types); i++) {
		if (zmtp_types[i].ours == z->type && zmtp_types[i].ident)
			n += zmtp_put_prop(buf + n, "Identity", "", 0);
	}
	buf[0] = ZMTP_COMMAND;
	buf[1] = n - 2;
	return (zmtp_out_add(z, buf, n, cause));
}

/*
 * A frame header is complete: check it against the limits before any of
 * its body is stored.
 */
static int
zmtp_header_done(struct zmtp *z, char **cause)
{
	size_t	cost;

	if (z->flags & ZMTP_COMMAND) {
		if (z->flags & ZMTP_MORE) {
			*cause = xstrdup("command frame with MORE set");
			return (-1);
		}
		if (z->msg != NULL) {
			*cause = xstrdup("command inside a multipart message");
			return (-1);
		}
		if (z->size > ZMTP_COMMAND_MAX) {
			xasprintf(cause, "command of %llu bytes, over %u",
			    (unsigned long long)z->size, ZMTP_COMMAND_MAX);
			return (-1);
		}
		z->body = xmalloc(z->size > 0 ? z->size : 1);
		return (0);
	}
	/* A message frame before READY was refused at its flags byte. */
	cost = ZMTP_FRAME_COST;
	if (z->size > z->limit || z->charged + cost + z->size > z->limit) {
		xasprintf(cause, "message over max-message (%zu bytes and "
		    "frames so far, next frame %llu bytes)", z->charged,
		    (unsigned long long)z->size);
		return (-1);
	}
	z->charged += cost + z->size;
	z->held += cost;
	z->frame = zframe_new(NULL, z->size);
	return (0);
}

static int
zmtp_frame_done(struct zmtp *z, zmsg_t **msgp, char **cause)
{
	int	more = z->flags & ZMTP_MORE;

	z->state = ZMTP_FLAGS;
	if (z->flags & ZMTP_COMMAND)
		return (zmtp_command(z, msgp, cause));
	if (z->msg == NULL)
		z->msg = zmsg_new();
	zmsg_append(z->msg, &z->frame);
	if (more)
		return (0);
	*msgp = z->msg;
	z->msg = NULL;
	z->charged = z->held = 0;
	return (0);
}

/*
 * Commands (name: what we do):
 *	READY		first command; properties checked
 *	ERROR		the peer gives up: fail with its reason
 *	PING		answer PONG with the context (ZMTP 3.1 heartbeat)
 *	SUBSCRIBE	3.1 subscription: delivered as a 0x01 message
 *	CANCEL		3.1 unsubscription: delivered as a 0x00 message
 *	anything else	ignored, as the spec allows
 */
static int
zmtp_command(struct zmtp *z, zmsg_t **msgp, char **cause)
{
	const u_char	*p = z->body;
	size_t		 len = z->size, nl;
	u_char		 pong[2 + 5 + 16], prefix;
	zframe_t	*f;
	int		 r = 0;

	if (len < 1 || (nl = p[0]) == 0 || nl + 1 > len) {
		*cause = xstrdup("malformed command name");
		r = -1;
		goto out;
	}
	p++, len--;
	if (!z->ready) {
		if (nl != 5 || memcmp(p, "READY", 5) != 0) {
			*cause = xstrdup("first command is not READY");
			r = -1;
		} else
			r = zmtp_ready_props(z, p + 5, len - 5, cause);
		goto out;
	}
	if (nl == 5 && memcmp(p, "ERROR", 5) == 0) {
		nl = len > 6 ? p[5] : 0;
		if (nl > len - 6)
			nl = len - 6;
		xasprintf(cause, "peer sent ERROR: %.*s", (int)nl, p + 6);
		r = -1;
	} else if (nl == 4 && memcmp(p, "PING", 4) == 0 && len >= 6) {
		nl = len - 6 > 16 ? 16 : len - 6;	/* context: up to 16 */
		pong[0] = ZMTP_COMMAND;
		pong[1] = 5 + nl;
		memcpy(pong + 2, "\4PONG", 5);
		memcpy(pong + 7, p + 6, nl);
		r = zmtp_out_add(z, pong, 7 + nl, cause);
	} else if ((nl == 9 && memcmp(p, "SUBSCRIBE", 9) == 0) ||
	    (nl == 6 && memcmp(p, "CANCEL", 6) == 0)) {
		prefix = nl == 9 ? 1 : 0;
		f = zframe_new(NULL, len - nl + 1);
		zframe_data(f)[0] = prefix;
		memcpy(zframe_data(f) + 1, p + nl, len - nl);
		*msgp = zmsg_new();
		zmsg_append(*msgp, &f);
	}
out:
	free(z->body);
	z->body = NULL;
	return (r);
}

static int
zmtp_ready_props(struct zmtp *z, const u_char *p, size_t len, char **cause)
{
	char	 name[256];
	size_t	 nl;
	uint32_t vl;

	while (len > 0) {
		nl = p[0];
		if (nl == 0 || 1 + nl + 4 > len) {
			*cause = xstrdup("malformed READY property");
			return (-1);
		}
		memcpy(name, p + 1, nl);
		name[nl] = '\0';
		p += 1 + nl, len -= 1 + nl;
		vl = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		    (uint32_t)p[2] << 8 | p[3];
		p += 4, len -= 4;
		if (vl > len) {
			*cause = xstrdup("READY property value past its end");
			return (-1);
		}
		if (zmtp_prop(z, name, p, vl, cause) != 0)
			return (-1);
		p += vl, len -= vl;
	}
	if (z->peer_type[0] == '\0') {
		*cause = xstrdup("READY without Socket-Type");
		return (-1);
	}
	z->ready = 1;
	return (0);
}

static int
zmtp_prop(struct zmtp *z, const char *name, const u_char *v, size_t len,
    char **cause)
{
	char	want[24];
	size_t	i;

	if (strcasecmp(name, "Identity") == 0) {
		if (len > sizeof z->identity) {
			*cause = xstrdup("Identity over 255 bytes");
			return (-1);
		}
		memcpy(z->identity, v, len);
		z->identity_len = len;
		return (0);
	}
	if (strcasecmp(name, "Socket-Type") != 0)
		return (0);	/* other metadata: ignored */
	if (len == 0 || len >= sizeof z->peer_type ||
	    memchr(v, ' ', len) != NULL || memchr(v, '\0', len) != NULL)
		goto bad;
	snprintf(want, sizeof want, " %.*s ", (int)len, (const char *)v);
	for (i = 0; i < nitems(zmtp_types); i++) {
		if (zmtp_types[i].ours == z->type &&
		    strstr(zmtp_types[i].peers, want) != NULL) {
			memcpy(z->peer_type, v, len);
			z->peer_type[len] = '\0';
			return (0);
		}
	}
bad:
	xasprintf(cause, "a %.*s socket cannot talk to %s",
	    (int)(len > 16 ? 16 : len), (const char *)v, z->type);
	return (-1);
}

/*
 * Feed bytes from the peer. Consumes up to len bytes and stops after a
 * complete message, which goes to *msgp (NULL if none completed; the
 * caller owns it), or after output appeared (zmtp_output). Returns the bytes consumed, or -1 with a cause: the
 * connection must then be closed, the codec only destroyed.
 */
ssize_t
zmtp_feed(struct zmtp *z, const u_char *buf, size_t len, zmsg_t **msgp,
    char **cause)
{
	size_t	i = 0, n, out0 = z->out_len;
	u_char	c;

	/*
	 * Stop after a complete message, or after anything to send (READY,
	 * PONG): the caller sends it before feeding more, so the output
	 * buffer never fills however many PINGs one read holds.
	 */
	*msgp = NULL;
	while (i < len && *msgp == NULL && z->out_len == out0) {
		switch (z->state) {
		case ZMTP_GREETING:
			if (zmtp_greeting_byte(z, buf[i++], cause) != 0)
				return (-1);
			break;
		case ZMTP_FLAGS:
			c = buf[i++];
			if (c & ~(ZMTP_MORE | ZMTP_LONG | ZMTP_COMMAND)) {
				xasprintf(cause, "reserved frame flags 0x%02x",
				    c);
				return (-1);
			}
			if (!z->ready && (c & ZMTP_COMMAND) == 0) {
				*cause = xstrdup("message frame before READY");
				return (-1);
			}
			z->flags = c;
			z->have = 0;
			z->state = ZMTP_SIZE;
			break;
		case ZMTP_SIZE:
			z->sizebuf[z->have++] = buf[i++];
			if (z->have < (z->flags & ZMTP_LONG ? 8u : 1u))
				break;
			z->size = 0;
			for (n = 0; n < z->have; n++)
				z->size = z->size << 8 | z->sizebuf[n];
			if (zmtp_header_done(z, cause) != 0)
				return (-1);
			z->got = 0;
			z->state = ZMTP_BODY;
			if (z->size == 0 && zmtp_frame_done(z, msgp, cause) != 0)
				return (-1);
			break;
		case ZMTP_BODY:
			n = len - i;
			if (n > z->size - z->got)
				n = z->size - z->got;
			memcpy((z->frame != NULL ? zframe_data(z->frame) :
			    z->body) + z->got, buf + i, n);
			z->got += n;
			if (z->frame != NULL)
				z->held += n;
			i += n;
			if (z->got == z->size &&
			    zmtp_frame_done(z, msgp, cause) != 0)
				return (-1);
			break;
		}
	}
	return ((ssize_t)i);
}

/* The header of one frame into hdr (9 bytes room); returns its length. */
size_t
zmtp_frame_header(u_char hdr[9], size_t size, int more)
{
	int	i;

	if (size <= 255) {
		hdr[0] = more ? ZMTP_MORE : 0;
		hdr[1] = size;
		return (2);
	}
	hdr[0] = ZMTP_LONG | (more ? ZMTP_MORE : 0);
	for (i = 0; i < 8; i++)
		hdr[1 + i] = (uint64_t)size >> (56 - 8 * i);
	return (9);
}

/* At least what zmtp_encode_into writes for m from the skip-th frame. */
size_t
zmtp_encode_size(zmsg_t *m, size_t skip)
{
	zframe_t	*f;
	size_t		 total = 0, i;

	for (f = zmsg_first(m), i = 0; f != NULL; f = zmsg_next(m), i++) {
		if (i >= skip)
			total += 9 + zframe_size(f);
	}
	return (total);
}

/*
 * Encode the frames of m from the skip-th on (a ROUTER skips the routing
 * id) into buf, of zmtp_encode_size bytes; returns the length used.
 */
size_t
zmtp_encode_into(zmsg_t *m, size_t skip, u_char *buf)
{
	zframe_t	*f;
	u_char		*p = buf;
	size_t		 i, n = zmsg_size(m);

	for (f = zmsg_first(m), i = 0; f != NULL; f = zmsg_next(m), i++) {
		if (i < skip)
			continue;
		p += zmtp_frame_header(p, zframe_size(f), i + 1 < n);
		memcpy(p, zframe_data(f), zframe_size(f));
		p += zframe_size(f);
	}
	return (p - buf);
}

/* The same as one new buffer; *len gets its size. NULL if nothing is left. */
u_char *
zmtp_encode(zmsg_t *m, size_t skip, size_t *len)
{
	u_char	*buf;

	if (skip >= zmsg_size(m))
		return (NULL);
	buf = xmalloc(zmtp_encode_size(m, skip));
	*len = zmtp_encode_into(m, skip, buf);
	return (buf);
}
