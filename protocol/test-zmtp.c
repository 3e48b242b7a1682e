/* test-zmtp.c: unit tests for the ZMTP 3.0 codec (protocol/zmtp.c). */
/*
 * No framework, as test-protocol.c: CHECK counts, prints one line per
 * failure, and main ends with "N passed, N failed".
 */

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "protocol.h"

#define CHECK(e)	check_one((e), #e, __FILE__, __LINE__)
#define MAXMSG		((size_t)1 << 20)
#define nitems(a)	(sizeof (a) / sizeof (a)[0])

static int	npassed, nfailed;

static void
check_one(int ok, const char *what, const char *file, int line)
{
	if (ok) {
		npassed++;
		return;
	}
	nfailed++;
	printf("FAIL %s:%d: %s\n", file, line, what);
}

/* A byte buffer that grows. */
struct buf {
	u_char	*p;
	size_t	 len;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	b->p = xrealloc(b->p, b->len + n + 1);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
buf_greeting(struct buf *b, const char *mech, u_char major)
{
	u_char	g[64];

	memset(g, 0, sizeof g);
	g[0] = 0xff;
	g[9] = 0x7f;
	g[10] = major;
	g[11] = 1;		/* a 3.1 peer, as libzmq 4.3 is */
	memcpy(g + 12, mech, strlen(mech));
	buf_add(b, g, sizeof g);
}

static void
buf_prop(struct buf *b, const char *name, const char *value)
{
	u_char	n = strlen(name), l[4];
	size_t	vl = strlen(value);

	l[0] = vl >> 24, l[1] = vl >> 16, l[2] = vl >> 8, l[3] = vl;
	buf_add(b, &n, 1);
	buf_add(b, name, n);
	buf_add(b, l, 4);
	buf_add(b, value, vl);
}

static void
buf_command(struct buf *b, const struct buf *body)
{
	u_char	h[2] = { 0x04, body->len };

	buf_add(b, h, 2);
	buf_add(b, body->p, body->len);
}

static void
buf_ready(struct buf *b, const char *type, const char *identity)
{
	struct buf	body = { NULL, 0 };

	buf_add(&body, "\5READY", 6);
	buf_prop(&body, "socket-type", type);	/* case-insensitive names */
	if (identity != NULL)
		buf_prop(&body, "Identity", identity);
	buf_command(b, &body);
	free(body.p);
}

static void
buf_frame(struct buf *b, const void *p, size_t n, int more)
{
	u_char	h[9];

	buf_add(b, h, zmtp_frame_header(h, n, more));
	buf_add(b, p, n);
}

/*
 * Feed all of b in pieces of step bytes; messages go to out (if not
 * NULL). Returns 0, or -1 with *cause set.
 */
static int
feed(struct zmtp *z, const struct buf *b, size_t step, zlist_t *out,
    char **cause)
{
	size_t	 off = 0, n;
	ssize_t	 used;
	zmsg_t	*m;

	while (off < b->len) {
		n = b->len - off < step ? b->len - off : step;
		used = zmtp_feed(z, b->p + off, n, &m, cause);
		if (used < 0)
			return (-1);
		if (m != NULL) {
			if (out != NULL)
				zlist_append(out, m);
			else
				zmsg_destroy(&m);
		}
		off += used;
	}
	return (0);
}

static struct zmtp *
handshaken(const char *type, const char *peer)
{
	struct zmtp	*z = zmtp_new(type, MAXMSG);
	struct buf	 b = { NULL, 0 };
	char		*cause = NULL;

	buf_greeting(&b, "NULL", 3);
	buf_ready(&b, peer, "");
	if (feed(z, &b, b.len, NULL, &cause) != 0)
		printf("handshake: %s\n", cause);
	zmtp_output_taken(z);
	free(b.p);
	free(cause);
	return (z);
}

static void
test_handshake(void)
{
	struct zmtp	*z = zmtp_new("ROUTER", MAXMSG);
	struct buf	 b = { NULL, 0 };
	const u_char	*out, *id;
	size_t		 len, idlen;
	char		*cause = NULL;

	out = zmtp_output(z, &len);
	CHECK(len == ZMTP_GREETING_SIZE);
	CHECK(out[0] == 0xff && out[9] == 0x7f);
	CHECK(out[10] == 3 && out[11] == 0);	/* 3.0: subscriptions as messages */
	CHECK(memcmp(out + 12, "NULL\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20) == 0);
	zmtp_output_taken(z);
	buf_greeting(&b, "NULL", 3);
	buf_ready(&b, "DEALER", "client-7");
	CHECK(feed(z, &b, 1, NULL, &cause) == 0);	/* a byte at a time */
	CHECK(zmtp_ready(z));
	CHECK(strcmp(zmtp_peer_type(z), "DEALER") == 0);
	id = zmtp_identity(z, &idlen);
	CHECK(idlen == 8 && memcmp(id, "client-7", 8) == 0);
	out = zmtp_output(z, &len);
	CHECK(len > 2 && out[0] == 0x04 && out[1] == len - 2);
	CHECK(len > 8 && memcmp(out + 2, "\5READY", 6) == 0);
	CHECK(memmem(out, len, "\13Socket-Type\0\0\0\6ROUTER", 22) != NULL);
	CHECK(memmem(out, len, "\10Identity\0\0\0\0", 13) != NULL);
	free(b.p);
	zmtp_destroy(&z);
	CHECK(z == NULL);
	zmtp_destroy(&z);	/* twice is harmless */
	z = zmtp_new("PUB", MAXMSG);
	zmtp_output_taken(z);
	b.p = NULL, b.len = 0;
	buf_greeting(&b, "NULL", 3);
	buf_ready(&b, "SUB", NULL);
	CHECK(feed(z, &b, 7, NULL, &cause) == 0 && zmtp_ready(z));
	out = zmtp_output(z, &len);
	CHECK(memmem(out, len, "PUB", 3) != NULL);
	CHECK(memmem(out, len, "Identity", 8) == NULL);
	free(b.p);
	zmtp_destroy(&z);
}

/* Frames in, the same frames out, whatever the read sizes. */
static void
test_frames(void)
{
	static const size_t	 sizes[] = { 0, 1, 255, 256, 70000 };
	static const size_t	 steps[] = { 1, 3, 64, 100000 };
	struct buf		 b = { NULL, 0 };
	struct zmtp		*z;
	zlist_t			*got;
	zmsg_t			*m;
	zframe_t		*f;
	u_char			*data, *enc;
	size_t			 i, s, len;
	char			*cause = NULL;
	int			 ok;

	data = xmalloc(70000);
	for (i = 0; i < 70000; i++)
		data[i] = i * 7;
	for (i = 0; i < nitems(sizes); i++)
		buf_frame(&b, data, sizes[i], i + 1 < nitems(sizes));
	buf_frame(&b, "second", 6, 0);
	for (s = 0; s < nitems(steps); s++) {
		z = handshaken("ROUTER", "DEALER");
		got = zlist_new();
		CHECK(feed(z, &b, steps[s], got, &cause) == 0);
		CHECK(zlist_size(got) == 2);
		m = zlist_first(got);
		ok = m != NULL && zmsg_size(m) == nitems(sizes);
		for (i = 0, f = m ? zmsg_first(m) : NULL; ok && f != NULL;
		    f = zmsg_next(m), i++)
			ok = zframe_size(f) == sizes[i] &&
			    memcmp(zframe_data(f), data, sizes[i]) == 0;
		CHECK(ok);
		CHECK(zmtp_held(z) == 0);
		/* The encoder writes what the decoder read. */
		enc = m != NULL ? zmtp_encode(m, 0, &len) : NULL;
		CHECK(enc != NULL && len == b.len - 8 &&
		    memcmp(enc, b.p, len) == 0);
		free(enc);
		/* A ROUTER's send skips the routing id frame. */
		enc = m != NULL ? zmtp_encode(m, 1, &len) : NULL;
		CHECK(enc != NULL && enc[0] == 0x01 && enc[1] == 1);
		free(enc);
		while ((m = zlist_pop(got)) != NULL)
			zmsg_destroy(&m);
		zlist_destroy(&got);
		zmtp_destroy(&z);
	}
	free(b.p);
	free(data);
}

/*
 * The budget: frames under the limit each, one message over it in total
 * (sizes, and ZMTP_FRAME_COST a frame), refused at the header of the frame
 * that would cross it; what is held never passes the limit.
 */
static void
test_budget(void)
{
	static const size_t	 sizes[] = { 0, 100, 4000 };
	struct zmtp		*z;
	struct buf		 b = { NULL, 0 };
	u_char			 data[4000];
	size_t			 i, n, limit, maxheld;
	ssize_t			 r = 0;
	zmsg_t			*m = NULL;
	char			*cause = NULL;

	memset(data, 'x', sizeof data);
	limit = MAXMSG + ZMTP_FRAME_COST * ZMTP_FREE_FRAMES;
	for (i = 0; i < nitems(sizes); i++) {
		z = handshaken("ROUTER", "DEALER");
		b.len = 0;
		buf_frame(&b, data, sizes[i], 1);
		maxheld = 0;
		for (n = 0; n < 10 * MAXMSG; n++) {
			r = zmtp_feed(z, b.p, b.len, &m, &cause);
			if (r != (ssize_t)b.len || m != NULL)
				break;
			if (zmtp_held(z) > maxheld)
				maxheld = zmtp_held(z);
		}
		CHECK(r == -1 && m == NULL);
		CHECK(cause != NULL && strstr(cause, "over max-message") != NULL);
		CHECK(maxheld <= limit);
		CHECK(maxheld + ZMTP_FRAME_COST + sizes[i] > limit);
		CHECK(n == limit / (ZMTP_FRAME_COST + sizes[i]));
		free(cause);
		cause = NULL;
		zmtp_destroy(&z);
	}
	/* A single frame over the limit: refused at its header. */
	z = handshaken("ROUTER", "DEALER");
	b.len = 0;
	buf_add(&b, "\x02\0\0\0\0\x80\0\0\0", 9);	/* 2 GiB */
	CHECK(zmtp_feed(z, b.p, b.len, &m, &cause) == -1);
	CHECK(zmtp_held(z) == 0);
	free(cause);
	zmtp_destroy(&z);
	free(b.p);
}

/* ZMTP_FRAME_COST is honest: the heap grows by no more than is charged. */
static void
test_frame_cost(void)
{
	struct zmtp		*z = handshaken("ROUTER", "DEALER");
	struct mallinfo2	 before, after;
	u_char			 empty[2] = { 0x01, 0x00 }, small[2 + 40];
	size_t			 i, grew;
	zmsg_t			*m;
	char			*cause = NULL;

	memset(small, 'y', sizeof small);
	small[0] = 0x01, small[1] = 40;
	before = mallinfo2();
	for (i = 0; i < 1000; i++)
		zmtp_feed(z, empty, 2, &m, &cause);
	for (i = 0; i < 1000; i++)
		zmtp_feed(z, small, sizeof small, &m, &cause);
	after = mallinfo2();
	grew = after.uordblks - before.uordblks;
	if (grew > zmtp_held(z))
		printf("heap grew %zu for %zu charged\n", grew, zmtp_held(z));
	CHECK(grew <= zmtp_held(z));
	CHECK(zmtp_held(z) == 2000 * ZMTP_FRAME_COST + 40 * 1000);
	zmtp_destroy(&z);
}

static void
test_commands(void)
{
	struct zmtp	*z = handshaken("PUB", "SUB");
	struct buf	 b = { NULL, 0 }, body = { NULL, 0 };
	zlist_t		*got = zlist_new();
	const u_char	*out;
	zmsg_t		*m;
	size_t		 len;
	char		*cause = NULL;

	buf_add(&body, "\4PING\0\12ctx", 10);
	buf_command(&b, &body);
	body.len = 0;
	buf_add(&body, "\11SUBSCRIBEkernel.", 17);
	buf_command(&b, &body);
	body.len = 0;
	buf_add(&body, "\6CANCELkernel.", 14);
	buf_command(&b, &body);
	body.len = 0;
	buf_add(&body, "\7UNKNOWNwhatever", 16);
	buf_command(&b, &body);
	buf_frame(&b, "\1topic", 6, 0);		/* a 3.0 subscription */
	CHECK(feed(z, &b, 5, got, &cause) == 0);
	out = zmtp_output(z, &len);
	CHECK(len == 10 && memcmp(out, "\x04\x08\4PONGctx", 10) == 0);
	CHECK(zlist_size(got) == 3);
	m = zlist_pop(got);
	CHECK(m != NULL && zframe_size(zmsg_first(m)) == 8 &&
	    memcmp(zframe_data(zmsg_first(m)), "\1kernel.", 8) == 0);
	zmsg_destroy(&m);
	m = zlist_pop(got);
	CHECK(m != NULL && memcmp(zframe_data(zmsg_first(m)), "\0kernel.", 8) == 0);
	zmsg_destroy(&m);
	m = zlist_pop(got);
	CHECK(m != NULL && memcmp(zframe_data(zmsg_first(m)), "\1topic", 6) == 0);
	zmsg_destroy(&m);
	zlist_destroy(&got);
	b.len = body.len = 0;
	buf_add(&body, "\5ERROR\4gone", 11);
	buf_command(&b, &body);
	CHECK(feed(z, &b, b.len, NULL, &cause) == -1);
	CHECK(cause != NULL && strstr(cause, "ERROR: gone") != NULL);
	free(cause);
	free(b.p);
	free(body.p);
	zmtp_destroy(&z);
}

/* Each malformed input is refused with its cause, never a crash. */
static void
test_rejects(void)
{
	static const struct {
		const char	*what;
		int		 greet;		/* prepend a good greeting */
		int		 ready;		/* and a good READY */
		const char	*bytes;
		size_t		 len;
		const char	*cause;
	} rows[] = {
		{ "zmtp1", 0, 0, "\5\0abc", 5, "not ZMTP 3" },
		{ "unversioned", 0, 0, "\xff\0\0\0\0\0\0\0\0\x7e", 10, "ZMTP 1.0" },
		{ "zmtp2", 0, 0, "\xff\0\0\0\0\0\0\0\0\x7f\2", 11, "ZMTP 2" },
		{ "more cmd", 1, 0, "\x05\0", 2, "MORE set" },
		{ "no name", 1, 0, "\x04\0", 2, "malformed command" },
		{ "not ready", 1, 0, "\x04\6\5HELLO", 8, "not READY" },
		{ "no type", 1, 0, "\x04\6\5READY", 8, "without Socket-Type" },
		{ "short prop", 1, 0, "\x04\x09\5READY\3ab", 11, "malformed READY" },
		{ "long value", 1, 0,
		  "\x04\x0e\5READY\1a\0\0\0\x09xy", 16, "past its end" },
		{ "bad type", 1, 0,
		  "\x04\x19\5READY\13Socket-Type\0\0\0\3PUB", 27, "PUB socket" },
		{ "frame first", 1, 0, "\x00\1x", 3, "before READY" },
		{ "reserved", 1, 1, "\x08\0", 2, "reserved frame" },
		{ "cmd in msg", 1, 1, "\x01\0\x04\1\1x", 6, "inside a multipart" },
		{ "huge cmd", 1, 1, "\x06\0\0\0\0\0\0\x40\0", 9, "command of" },
	};
	struct zmtp	*z;
	struct buf	 b = { NULL, 0 };
	size_t		 i;
	char		*cause;
	int		 r;

	for (i = 0; i < nitems(rows); i++) {
		b.len = 0;
		cause = NULL;
		z = zmtp_new("ROUTER", MAXMSG);
		if (rows[i].greet)
			buf_greeting(&b, "NULL", 3);
		if (rows[i].ready)
			buf_ready(&b, "DEALER", NULL);
		buf_add(&b, rows[i].bytes, rows[i].len);
		r = feed(z, &b, b.len, NULL, &cause);
		if (r != -1 || cause == NULL || strstr(cause, rows[i].cause) == NULL)
			printf("reject %s: r %d cause %s\n", rows[i].what, r,
			    cause ? cause : "(none)");
		CHECK(r == -1 && cause != NULL &&
		    strstr(cause, rows[i].cause) != NULL);
		free(cause);
		zmtp_destroy(&z);
	}
	b.len = 0;
	z = zmtp_new("ROUTER", MAXMSG);
	buf_greeting(&b, "CURVE", 3);
	cause = NULL;
	CHECK(feed(z, &b, 1, NULL, &cause) == -1 &&
	    strstr(cause, "not NULL") != NULL);
	free(cause);
	zmtp_destroy(&z);
	free(b.p);
}

/* Random bytes after a good handshake: refused or taken, never a crash. */
static void
test_garbage(void)
{
	struct zmtp	*z;
	u_char		 junk[512];
	uint64_t	 x = 88172645463325252ULL;
	size_t		 i, j;
	zmsg_t		*m;
	char		*cause;

	for (i = 0; i < 2000; i++) {
		z = handshaken(i % 2 ? "ROUTER" : "PUB", i % 2 ? "REQ" : "XSUB");
		for (j = 0; j < sizeof junk; j++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			junk[j] = x;
			if (j % 3 == 0)
				junk[j] &= 0x07;	/* plausible flags */
		}
		cause = NULL;
		for (j = 0; j < sizeof junk; j++) {
			if (zmtp_feed(z, junk + j, 1, &m, &cause) == -1)
				break;
			zmsg_destroy(&m);
		}
		free(cause);
		zmtp_destroy(&z);
	}
	CHECK(1);
}

int
main(void)
{
	test_handshake();
	test_frames();
	test_budget();
	test_frame_cost();
	test_commands();
	test_rejects();
	test_garbage();
	printf("%d passed, %d failed\n", npassed, nfailed);
	return (nfailed != 0);
}
