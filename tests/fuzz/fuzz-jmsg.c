/* fuzz-jmsg.c: fuzz the wire decoder (protocol/jmsg.c) and HMAC check (sign.c). */
/*
 * Input: one flags byte, then the frames of one multipart message joined
 * by 0x1f (ASCII unit separator: never in valid JSON, and one byte for the
 * mutator to move). Flags:
 *
 *	0x01	the key is FUZZ_KEY; else it is empty (signing off)
 *	0x02	replace the signature frame with the right one, so that
 *		mutated JSON frames get past the check to the parser
 *	0x04	decode a copy again: signed, it must be refused as a replay
 *	0x08	a limit one byte under the message's size: it must be refused
 *
 * Oracles: a correctly signed message is never refused for its
 * signature; a decoded message agrees with its frames; re-encoding it and
 * decoding the result gives the same JSON back.
 */

#include <string.h>

#include "base.h"
#include "protocol.h"
#include "fuzz.h"

#define FUZZ_KEY	"5c1f8e0a-cellblock-fuzz-key"
#define FUZZ_SEP	0x1f

enum {
	FLAG_KEY = 0x01,
	FLAG_RESIGN = 0x02,
	FLAG_REPLAY = 0x04,
	FLAG_LIMIT = 0x08,
};

static zmsg_t		*fuzz_frames(const uint8_t *, size_t);
static int		 fuzz_delim(zmsg_t *, size_t *);
static void		 fuzz_resign(zmsg_t *, struct sign *);
static int		 fuzz_is_sign_cause(const char *);
static void		 fuzz_check_decoded(struct jmsg *, size_t, size_t);
static void		 fuzz_roundtrip(struct jmsg *, int);

static zmsg_t *
fuzz_frames(const uint8_t *data, size_t len)
{
	zmsg_t		*z = zmsg_new();
	const uint8_t	*p = data, *end = data + len, *sep;

	for (;;) {
		sep = memchr(p, FUZZ_SEP, end - p);
		if (sep == NULL) {
			zmsg_addmem(z, p, end - p);
			return (z);
		}
		zmsg_addmem(z, p, sep - p);
		p = sep + 1;
	}
}

/* The index of the first delimiter, as jmsg.c finds it. */
static int
fuzz_delim(zmsg_t *z, size_t *idx)
{
	zframe_t	*f;
	size_t		 i = 0;

	for (f = zmsg_first(z); f != NULL; f = zmsg_next(z), i++) {
		if (zframe_streq(f, PROTOCOL_DELIM)) {
			*idx = i;
			return (0);
		}
	}
	return (-1);
}

/* Puts the right signature for the four frames after it in place. */
static void
fuzz_resign(zmsg_t *z, struct sign *s)
{
	zframe_t	*f, *sig, *parts[4];
	char		 hex[65];
	size_t		 i;

	for (f = zmsg_first(z); f != NULL; f = zmsg_next(z)) {
		if (zframe_streq(f, PROTOCOL_DELIM))
			break;
	}
	if (f == NULL || (sig = zmsg_next(z)) == NULL)
		return;
	for (i = 0; i < 4; i++) {
		if ((parts[i] = zmsg_next(z)) == NULL)
			return;
	}
	sign_compute(s, parts, hex);
	zframe_reset(sig, hex, strlen(hex));
}

static int
fuzz_is_sign_cause(const char *cause)
{
	return (strcmp(cause, "bad signature") == 0 ||
	    strcmp(cause, "replayed signature") == 0 ||
	    strncmp(cause, "signature of", 12) == 0);
}

static void
fuzz_check_decoded(struct jmsg *m, size_t size, size_t nids)
{
	FUZZ_CHECK(m->size == size);
	FUZZ_CHECK(zmsg_size(m->ids) == nids);
	FUZZ_CHECK(m->header_raw != NULL && m->buffers != NULL);
	FUZZ_CHECK(json_is_object(m->header) && json_is_object(m->parent) &&
	    json_is_object(m->metadata) && json_is_object(m->content));
	FUZZ_CHECK(m->msg_type != NULL && m->msg_id != NULL &&
	    m->session != NULL && m->username != NULL);
	FUZZ_CHECK(strcmp(m->msg_type, json_string_value(json_object_get(
	    m->header, "msg_type"))) == 0);
}

/* What the daemon does with a request: answer it with its parts. */
static void
fuzz_roundtrip(struct jmsg *m, int keyed)
{
	struct jmsg_out	 out;
	struct sign	*s;
	struct jmsg	*back;
	zmsg_t		*z;
	char		*cause = NULL;

	memset(&out, 0, sizeof out);
	out.ids = m->ids;
	out.msg_type = m->msg_type;
	out.session = m->session;
	out.username = m->username;
	out.msg_id = m->msg_id;
	out.parent_raw = m->header_raw;
	out.metadata = m->metadata;
	out.content = m->content;
	out.buffers = m->buffers;

	s = sign_new("hmac-sha256", FUZZ_KEY, keyed ? strlen(FUZZ_KEY) : 0,
	    NULL);
	FUZZ_CHECK(s != NULL);
	z = jmsg_encode(s, &out);
	FUZZ_CHECK(z != NULL);
	back = jmsg_decode(&z, s, 0, &cause);
	if (back == NULL)
		fprintf(stderr, "re-encoded message refused: %s\n", cause);
	FUZZ_CHECK(back != NULL);
	FUZZ_CHECK(strcmp(back->msg_type, m->msg_type) == 0);
	FUZZ_CHECK(strcmp(back->msg_id, m->msg_id) == 0);
	FUZZ_CHECK(json_equal(back->parent, m->header));
	FUZZ_CHECK(json_equal(back->metadata, m->metadata));
	FUZZ_CHECK(json_equal(back->content, m->content));
	FUZZ_CHECK(zmsg_size(back->buffers) == zmsg_size(m->buffers));
	jmsg_destroy(&back);
	sign_destroy(&s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct sign	*s;
	struct jmsg	*m;
	zmsg_t		*z, *copy = NULL;
	char		*cause = NULL;
	size_t		 size, limit = 0, nids = 0;
	uint8_t		 flags;
	int		 keyed;

	if (len < 1)
		return (0);
	flags = data[0];
	keyed = (flags & FLAG_KEY) != 0;
	s = sign_new("hmac-sha256", FUZZ_KEY, keyed ? strlen(FUZZ_KEY) : 0,
	    NULL);
	FUZZ_CHECK(s != NULL);

	z = fuzz_frames(data + 1, len - 1);
	if ((flags & FLAG_RESIGN) && keyed)
		fuzz_resign(z, s);
	if (flags & FLAG_REPLAY)
		copy = zmsg_dup(z);
	size = zmsg_content_size(z);
	if ((flags & FLAG_LIMIT) && size > 0)
		limit = size - 1;
	fuzz_delim(z, &nids);

	m = jmsg_decode(&z, s, limit, &cause);
	FUZZ_CHECK(z == NULL);
	if (m == NULL) {
		FUZZ_CHECK(cause != NULL);
		if ((flags & FLAG_RESIGN) && keyed)
			FUZZ_CHECK(!fuzz_is_sign_cause(cause));
		free(cause);
		cause = NULL;
	} else {
		FUZZ_CHECK(limit == 0);
		fuzz_check_decoded(m, size, nids);
		fuzz_roundtrip(m, keyed);
		jmsg_destroy(&m);
		FUZZ_CHECK(m == NULL);
		if (copy != NULL) {
			/* Unsigned messages cannot be told apart: no cache. */
			m = jmsg_decode(&copy, s, 0, &cause);
			FUZZ_CHECK((m == NULL) == keyed);
			if (keyed)
				FUZZ_CHECK(strcmp(cause, "replayed signature") == 0);
			jmsg_destroy(&m);
			free(cause);
		}
	}
	zmsg_destroy(&copy);
	sign_destroy(&s);
	return (0);
}
