/* fuzz-zmtp.c: fuzz the ZMTP 3.0 codec (protocol/zmtp.c) as a peer would. */
/*
 * Input: one flags byte, then the bytes a peer sends from its first
 * (greeting) on, as captured from pyzmq in the seeds. Flags:
 *
 *	0x01	we are PUB (the peer a SUB); else ROUTER
 *	0x06	the read size: 1, 7, 64 bytes or all at once
 *
 * Oracles: the result (messages, error or not, bytes consumed) does not
 * depend on how the bytes are split into reads; what the codec holds for
 * an unfinished message never passes the limit, nor does a delivered
 * message's cost; a delivered message encoded again decodes the same.
 */

#include <string.h>

#include "base.h"
#include "protocol.h"
#include "fuzz.h"

#define FUZZ_MAX	65536	/* max-message: small, so limits are reached */
#define FUZZ_LIMIT	(FUZZ_MAX + ZMTP_FRAME_COST * ZMTP_FREE_FRAMES)

struct fuzz_run {
	zlist_t	*msgs;
	size_t	 used;		/* bytes consumed in all */
	int	 failed;
};

static void
fuzz_run(const char *type, const uint8_t *data, size_t len, size_t step,
    struct fuzz_run *r)
{
	struct zmtp	*z = zmtp_new(type, FUZZ_MAX);
	zmsg_t		*m;
	zframe_t	*f;
	ssize_t		 used;
	size_t		 n, cost;
	char		*cause = NULL;

	r->msgs = zlist_new();
	r->used = 0;
	r->failed = 0;
	while (r->used < len) {
		n = len - r->used < step ? len - r->used : step;
		used = zmtp_feed(z, data + r->used, n, &m, &cause);
		if (used < 0) {
			FUZZ_CHECK(cause != NULL && m == NULL);
			free(cause);
			r->failed = 1;
			break;
		}
		FUZZ_CHECK((size_t)used <= n);
		FUZZ_CHECK(used > 0 || n == 0);
		r->used += used;
		FUZZ_CHECK(zmtp_held(z) <= FUZZ_LIMIT);
		zmtp_output_taken(z);
		if (m == NULL)
			continue;
		FUZZ_CHECK(zmtp_ready(z));
		cost = 0;
		for (f = zmsg_first(m); f != NULL; f = zmsg_next(m))
			cost += zframe_size(f) + ZMTP_FRAME_COST;
		FUZZ_CHECK(cost <= FUZZ_LIMIT);
		zlist_append(r->msgs, m);
	}
	zmtp_destroy(&z);
}

static void
fuzz_free(struct fuzz_run *r)
{
	zmsg_t	*m;

	while ((m = zlist_pop(r->msgs)) != NULL)
		zmsg_destroy(&m);
	zlist_destroy(&r->msgs);
}

static int
fuzz_same(zmsg_t *a, zmsg_t *b)
{
	zframe_t	*fa, *fb;

	if (zmsg_size(a) != zmsg_size(b))
		return (0);
	for (fa = zmsg_first(a), fb = zmsg_first(b); fa != NULL;
	    fa = zmsg_next(a), fb = zmsg_next(b)) {
		if (!zframe_eq(fa, fb))
			return (0);
	}
	return (1);
}

/* Encode m and decode it behind a good handshake: the same frames. */
static void
fuzz_reencode(const char *type, zmsg_t *m)
{
	static const uint8_t	 hello[] = {
		0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0, 'N', 'U', 'L', 'L',
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x04, 0x19, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k',
		'e', 't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 3, 'S', 'U', 'B',
	};
	struct fuzz_run	 r;
	uint8_t		*buf, *enc;
	size_t		 len;

	if (strcmp(type, "ROUTER") == 0)
		return;		/* the handshake above is a SUB's */
	enc = zmtp_encode(m, 0, &len);
	FUZZ_CHECK(enc != NULL);
	buf = xmalloc(sizeof hello + len);
	memcpy(buf, hello, sizeof hello);
	memcpy(buf + sizeof hello, enc, len);
	fuzz_run(type, buf, sizeof hello + len, sizeof hello + len, &r);
	FUZZ_CHECK(!r.failed && zlist_size(r.msgs) == 1);
	FUZZ_CHECK(fuzz_same(zlist_first(r.msgs), m));
	fuzz_free(&r);
	free(enc);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const size_t	 steps[] = { 1, 7, 64, (size_t)-1 };
	const char		*type;
	struct fuzz_run		 whole, split;
	zmsg_t			*a, *b;

	if (len < 1)
		return (0);
	type = data[0] & 0x01 ? "PUB" : "ROUTER";
	fuzz_run(type, data + 1, len - 1, (size_t)-1, &whole);
	fuzz_run(type, data + 1, len - 1, steps[(data[0] >> 1) & 3], &split);
	FUZZ_CHECK(whole.failed == split.failed);
	FUZZ_CHECK(whole.failed || whole.used == split.used);
	FUZZ_CHECK(zlist_size(whole.msgs) == zlist_size(split.msgs));
	for (a = zlist_first(whole.msgs), b = zlist_first(split.msgs);
	    a != NULL; a = zlist_next(whole.msgs), b = zlist_next(split.msgs))
		FUZZ_CHECK(fuzz_same(a, b));
	for (a = zlist_first(whole.msgs); a != NULL; a = zlist_next(whole.msgs))
		fuzz_reencode(type, a);
	fuzz_free(&whole);
	fuzz_free(&split);
	return (0);
}
