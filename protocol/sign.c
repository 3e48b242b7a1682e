/* sign.c: HMAC-SHA256 signing of Jupyter messages and a replay cache. */
/*
 * jupyter_client signs the four JSON frames (header, parent_header,
 * metadata, content) exactly as sent, with the connection file's key string
 * taken as raw bytes, and drops any message whose signature it has already
 * seen. An empty key turns signing off: signatures are empty and nothing is
 * checked, as in jupyter_client.
 *
 * The HMAC is nettle's: it uses the CPU's SHA instructions where there are
 * any (five times libsodium's portable SHA-256 on 500-byte messages here),
 * and every message in and out is signed (docs/BENCHMARKS.md). libsodium
 * still gives the constant-time compare and the zeroing.
 *
 * The replay cache is a FIFO ring of digests with an open-addressing index
 * (linear probing, at most half full). It starts empty and doubles on demand
 * up to SIGN_CACHE_MAX, so an idle session costs nothing and a busy one at
 * most SIGN_CACHE_MAX * 40 bytes.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/hmac.h>
#include <sodium.h>

#include "base.h"
#include "protocol.h"

#define SIGN_SCHEME	"hmac-sha256"
#define SIGN_BYTES	SHA256_DIGEST_SIZE
#define SIGN_HEXLEN	(SIGN_BYTES * 2)
#define SIGN_CACHE_MIN	16
#define SIGN_CACHE_MAX	16384

struct sign_digest {
	uint8_t	b[SIGN_BYTES];
};

struct sign {
	int		 enabled;	/* key is not empty */
	struct hmac_sha256_ctx keyed;	/* HMAC state after the key */

	struct sign_digest *ring;	/* digests seen, oldest at head */
	uint32_t	 cap;		/* ring entries allocated */
	uint32_t	 len;		/* ring entries in use */
	uint32_t	 head;		/* oldest entry */
	uint32_t	*slots;		/* index: ring entry + 1, 0 = free */
	uint32_t	 mask;		/* slots - 1, slots = 2 * cap */
};

static void	 sign_digest(struct sign *, zframe_t *[4], uint8_t *);
static uint32_t	 sign_cache_home(const struct sign *, const uint8_t *);
static int	 sign_cache_has(const struct sign *, const uint8_t *);
static void	 sign_cache_index(struct sign *, uint32_t);
static void	 sign_cache_unindex(struct sign *, uint32_t);
static void	 sign_cache_grow(struct sign *);
static void	 sign_cache_add(struct sign *, const uint8_t *);

struct sign *
sign_new(const char *scheme, const void *key, size_t keylen, char **cause)
{
	struct sign	*s;

	if (scheme != NULL && *scheme != '\0' &&
	    strcmp(scheme, SIGN_SCHEME) != 0) {
		if (cause != NULL)
			*cause = xprintf("unsupported signature scheme: %s",
			    scheme);
		return (NULL);
	}
	if (sodium_init() < 0)
		fatalx("%s: sodium_init failed", __func__);

	s = xcalloc(1, sizeof *s);
	s->enabled = (keylen != 0);
	/*
	 * Keep only the keyed HMAC state: it saves hashing the key padding
	 * for every message, and it is the only copy of the key we hold.
	 */
	if (s->enabled)
		hmac_sha256_set_key(&s->keyed, keylen, key);
	return (s);
}

void
sign_destroy(struct sign **sp)
{
	struct sign	*s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	sodium_memzero(&s->keyed, sizeof s->keyed);
	free(s->ring);
	free(s->slots);
	free(s);
	*sp = NULL;
}

int
sign_enabled(const struct sign *s)
{
	return (s != NULL && s->enabled);
}

/* Writes the lowercase hex signature, or "" when signing is off. */
void
sign_compute(struct sign *s, zframe_t *parts[4], char hex[65])
{
	uint8_t	digest[SIGN_BYTES];

	if (s == NULL)
		fatalx("%s: no signer", __func__);
	if (!s->enabled) {
		hex[0] = '\0';
		return;
	}
	sign_digest(s, parts, digest);
	sodium_bin2hex(hex, SIGN_HEXLEN + 1, digest, sizeof digest);
}

/*
 * Checks sig (siglen bytes, not terminated, possibly holding anything) and
 * remembers it. Returns 0 if good, -1 with a cause if not.
 */
int
sign_verify(struct sign *s, const char *sig, size_t siglen,
    zframe_t *parts[4], char **cause)
{
	uint8_t		 digest[SIGN_BYTES];
	char		 hex[SIGN_HEXLEN + 1];
	const char	*why;

	if (s == NULL)
		fatalx("%s: no signer", __func__);
	if (!s->enabled)
		return (0);

	if (siglen != SIGN_HEXLEN) {
		if (cause != NULL)
			*cause = xprintf("signature of %zu bytes, expected %d",
			    siglen, SIGN_HEXLEN);
		return (-1);
	}
	sign_digest(s, parts, digest);
	sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);

	/* jupyter_client compares hex strings, so uppercase is bad too. */
	if (sodium_memcmp(hex, sig, SIGN_HEXLEN) != 0)
		why = "bad signature";
	else if (sign_cache_has(s, digest))
		why = "replayed signature";
	else {
		sign_cache_add(s, digest);
		return (0);
	}
	if (cause != NULL)
		*cause = xstrdup(why);
	return (-1);
}

static void
sign_digest(struct sign *s, zframe_t *parts[4], uint8_t *digest)
{
	struct hmac_sha256_ctx	st;
	int			i;

	st = s->keyed;
	for (i = 0; i < 4; i++)
		hmac_sha256_update(&st, zframe_size(parts[i]),
		    zframe_data(parts[i]));
	hmac_sha256_digest(&st, SIGN_BYTES, digest);
	sodium_memzero(&st, sizeof st);
}

/* Digests are HMAC outputs, uniform without the key: any 4 bytes hash. */
static uint32_t
sign_cache_home(const struct sign *s, const uint8_t *digest)
{
	uint32_t	h;

	memcpy(&h, digest, sizeof h);
	return (h & s->mask);
}

static int
sign_cache_has(const struct sign *s, const uint8_t *digest)
{
	uint32_t	i;

	if (s->len == 0)
		return (0);
	for (i = sign_cache_home(s, digest); s->slots[i] != 0;
	    i = (i + 1) & s->mask) {
		if (memcmp(s->ring[s->slots[i] - 1].b, digest, SIGN_BYTES) == 0)
			return (1);
	}
	return (0);
}

/* Puts ring entry idx into the index. */
static void
sign_cache_index(struct sign *s, uint32_t idx)
{
	uint32_t	i;

	i = sign_cache_home(s, s->ring[idx].b);
	while (s->slots[i] != 0)
		i = (i + 1) & s->mask;
	s->slots[i] = idx + 1;
}

/*
 * Takes ring entry idx out of the index. Linear probing has no tombstones
 * here: later entries of the cluster shift back into the hole unless their
 * home lies between the hole and where they sit.
 */
static void
sign_cache_unindex(struct sign *s, uint32_t idx)
{
	uint32_t	hole, i, home;

	hole = sign_cache_home(s, s->ring[idx].b);
	while (s->slots[hole] != idx + 1)
		hole = (hole + 1) & s->mask;

	for (i = (hole + 1) & s->mask; s->slots[i] != 0;
	    i = (i + 1) & s->mask) {
		home = sign_cache_home(s, s->ring[s->slots[i] - 1].b);
		if (((i - home) & s->mask) >= ((i - hole) & s->mask)) {
			s->slots[hole] = s->slots[i];
			hole = i;
		}
	}
	s->slots[hole] = 0;
}

/* Doubles the ring, unrolling it oldest first, and rebuilds the index. */
static void
sign_cache_grow(struct sign *s)
{
	struct sign_digest	*ring;
	uint32_t		 cap, i;

	cap = (s->cap == 0) ? SIGN_CACHE_MIN : s->cap * 2;
	ring = xcalloc(cap, sizeof *ring);
	for (i = 0; i < s->len; i++)
		ring[i] = s->ring[(s->head + i) % s->cap];
	free(s->ring);
	s->ring = ring;
	s->cap = cap;
	s->head = 0;

	free(s->slots);
	s->slots = xcalloc((size_t)cap * 2, sizeof *s->slots);
	s->mask = cap * 2 - 1;
	for (i = 0; i < s->len; i++)
		sign_cache_index(s, i);
}

/* Remembers a digest, forgetting the oldest once the cache is full. */
static void
sign_cache_add(struct sign *s, const uint8_t *digest)
{
	uint32_t	idx;

	if (s->len == s->cap && s->cap < SIGN_CACHE_MAX)
		sign_cache_grow(s);
	if (s->len == s->cap) {
		sign_cache_unindex(s, s->head);
		s->head = (s->head + 1) % s->cap;
		s->len--;
	}
	idx = (s->head + s->len) % s->cap;
	memcpy(s->ring[idx].b, digest, SIGN_BYTES);
	sign_cache_index(s, idx);
	s->len++;
}
