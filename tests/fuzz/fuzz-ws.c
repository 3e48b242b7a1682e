/* fuzz-ws.c: fuzz WebSocket messages on their way into the core (server/gateway-wire.c). */
/*
 * Input: one byte of flags, then a WebSocket message as a client sends it
 * on /api/kernels/{id}/channels. Flags bit 0: v1.kernel.websocket.jupyter.org
 * rather than the legacy framing; bit 1: a binary frame rather than text
 * (text frames may hold anything: tornado proxies forward binary as text).
 * The message is decoded (gateway_wire_decode) and made the struct jmsg
 * the core's listener takes (gateway_in_jmsg); then answered: a reply
 * with it as parent is encoded in both framings (gateway_out_new,
 * gateway_wire_encode) and decoded again.
 *
 * Oracles: a decoded message has a known channel, an object header with
 * string msg_type and msg_id, object parent, metadata and content; the
 * jmsg's borrowed strings are the header's, its header bytes parse back
 * to the header, its client kind is "gateway"; an encoded reply decodes
 * in its own framing to the same msg_type and parent msg_id, and never
 * exceeds GATEWAY_MESSAGE_MAX.
 */

#include <string.h>

#include "server.h"
#include "http.h"
#include "gateway.h"
#include "fuzz.h"

static void
fuzz_ws_check(struct jmsg *jm)
{
	json_error_t	 jerr;
	json_t		*h;

	FUZZ_CHECK(jm->msg_type != NULL && jm->msg_id != NULL);
	FUZZ_CHECK(jm->session != NULL && jm->username != NULL);
	FUZZ_CHECK(strcmp(jm->msg_type, json_string_value(json_object_get(
	    jm->header, "msg_type"))) == 0);
	FUZZ_CHECK(json_is_object(jm->parent) && json_is_object(jm->content) &&
	    json_is_object(jm->metadata));
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(jm->metadata,
	    "cellblock_client")), "gateway") == 0);
	h = json_loadb((const char *)zframe_data(jm->header_raw),
	    zframe_size(jm->header_raw), 0, &jerr);
	FUZZ_CHECK(h != NULL && json_equal(h, jm->header));
	json_decref(h);
}

/* A reply with jm as its parent, both ways round each framing. */
static void
fuzz_ws_reply(struct jmsg *jm)
{
	struct gateway_out	*o;
	struct gateway_in	 in;
	struct jmsg_out		 out;
	const u_char		*p;
	size_t			 len;
	int			 f, binary;
	char			*cause = NULL;

	memset(&out, 0, sizeof out);
	out.msg_type = "echo_reply";
	out.session = "fuzz";
	out.username = "cellblock";
	out.parent_raw = jm->header_raw;
	out.content = jm->content;
	out.buffers = jm->buffers;
	o = gateway_out_new("shell", &out);
	for (f = GATEWAY_LEGACY; f <= GATEWAY_V1; f++) {
		p = gateway_wire_encode(o, f, &len, &binary);
		FUZZ_CHECK(len <= GATEWAY_MESSAGE_MAX);
		if (gateway_wire_decode(f, binary, p, len, &in, &cause) != 0) {
			fprintf(stderr, "own reply refused: %s\n", cause);
			FUZZ_CHECK(0);
		}
		FUZZ_CHECK(strcmp(json_string_value(json_object_get(in.header,
		    "msg_type")), "echo_reply") == 0);
		FUZZ_CHECK(json_equal(json_object_get(in.parent, "msg_id"),
		    json_object_get(jm->header, "msg_id")));
		gateway_in_clear(&in);
	}
	gateway_out_unref(&o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct gateway_in	 in;
	struct jmsg		*jm;
	char			*cause = NULL;
	enum gateway_framing	 f;

	if (len == 0)
		return (0);
	f = (data[0] & 1) ? GATEWAY_V1 : GATEWAY_LEGACY;
	if (gateway_wire_decode(f, (data[0] & 2) != 0, data + 1, len - 1, &in,
	    &cause) != 0) {
		FUZZ_CHECK(cause != NULL);
		free(cause);
		return (0);
	}
	if ((jm = gateway_in_jmsg(&in, len - 1, &cause)) == NULL) {
		FUZZ_CHECK(cause != NULL);
		free(cause);
		return (0);
	}
	fuzz_ws_check(jm);
	fuzz_ws_reply(jm);
	jmsg_destroy(&jm);
	return (0);
}
