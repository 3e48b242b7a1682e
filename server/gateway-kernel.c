/* gateway-kernel.c: the kernel id a session is known by to gateway clients. */
/*
 * A kernel id is a UUID derived from what the session keeps across
 * hibernation, resume and daemon restarts (owner, name and creation time),
 * so it never changes while the session lives and needs no field of its
 * own. Its own file because both the REST routes (gateway.c) and the
 * channels (gateway-ws.c) look sessions up by it.
 */

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "server.h"

/*
 * Made once per session when first asked, then kept: its inputs never
 * change while the session lives, and lookups by id walk every session.
 */
void
gateway_kernel_id(struct session *s, char out[37])
{
	u_char	h[crypto_hash_sha256_BYTES];
	char	*seed;

	if (s->kernel_id[0] != '\0') {
		memcpy(out, s->kernel_id, sizeof s->kernel_id);
		return;
	}

	xasprintf(&seed, "cellblock-kernel:%u:%s:%lld", (u_int)s->owner,
	    s->name, (long long)s->created);
	crypto_hash_sha256(h, (u_char *)seed, strlen(seed));
	free(seed);
	h[6] = (h[6] & 0x0f) | 0x80;	/* version 8: vendor-defined */
	h[8] = (h[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4], h[5],
	    h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
	memcpy(s->kernel_id, out, sizeof s->kernel_id);
}

/* The session a kernel id names, if uid may see it. */
struct session *
gateway_find(const char *id, uid_t uid)
{
	struct session	*s;
	char		 kid[37];

	if (strlen(id) != 36)
		return (NULL);
	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->ending || !session_visible(s, uid))
			continue;
		gateway_kernel_id(s, kid);
		if (strcmp(kid, id) == 0)
			return (s);
	}
	return (NULL);
}
