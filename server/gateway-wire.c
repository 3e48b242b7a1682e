/* gateway-wire.c: Jupyter messages to and from WebSocket frames, both framings. */
/*
 * Legacy (no subprotocol; every proxy uses it): a text frame is one JSON
 * message with a "channel" field; with buffers it is a binary frame: u32 BE
 * count, that many u32 BE offsets, the JSON, then the buffers. Tornado
 * proxies forward such binary messages as *text* frames, so a text frame
 * that does not start with '{' is tried as the binary form.
 *
 * v1.kernel.websocket.jupyter.org: u64 LE count, that many u64 LE offsets,
 * then channel, header, parent_header, metadata, content, buffers.
 *
 * Everything here is pure: bytes in, a message or a cause out. Nothing
 * from the wire is trusted: every offset is checked before it is used.
 */

#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "http.h"
#include "gateway.h"

#define WIRE_PARTS_MAX	1024		/* buffers in one message */

static const char *wire_channels[] = { "shell", "iopub", "stdin", "control" };

void
gateway_in_clear(struct gateway_in *in)
{
	json_decref(in->header);
	json_decref(in->parent);
	json_decref(in->metadata);
	json_decref(in->content);
	zmsg_destroy(&in->buffers);
	memset(in, 0, sizeof *in);
}

static json_t *
wire_json(const u_char *p, size_t len, char **cause, const char *what)
{
	json_error_t	 jerr;
	json_t		*j;

	j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		xasprintf(cause, "%s: %s", what, j == NULL ? jerr.text :
		    "not an object");
		json_decref(j);
		return (NULL);
	}
	return (j);
}

/* The checks every incoming message gets, whatever its framing. */
static int
wire_check(struct gateway_in *in, char **cause)
{
	size_t	i;

	for (i = 0; i < nitems(wire_channels); i++) {
		if (strcmp(in->channel, wire_channels[i]) == 0)
			break;
	}
	if (i == nitems(wire_channels)) {
		xasprintf(cause, "unknown channel '%s'", in->channel);
		return (-1);
	}
	if (in->header == NULL || !json_is_string(json_object_get(in->header,
	    "msg_type")) || !json_is_string(json_object_get(in->header,
	    "msg_id"))) {
		xasprintf(cause, "header without msg_type and msg_id");
		return (-1);
	}
	if (in->parent == NULL)
		in->parent = json_object();
	if (in->metadata == NULL)
		in->metadata = json_object();
	if (in->content == NULL)
		in->content = json_object();
	if (!json_is_object(in->parent) || !json_is_object(in->metadata) ||
	    !json_is_object(in->content)) {
		xasprintf(cause, "parent_header, metadata and content must "
		    "be objects");
		return (-1);
	}
	return (0);
}

static int
wire_set_channel(struct gateway_in *in, const u_char *p, size_t len,
    char **cause)
{
	if (len == 0 || len >= sizeof in->channel || memchr(p, '\0', len)) {
		xasprintf(cause, "bad channel");
		return (-1);
	}
	memcpy(in->channel, p, len);
	in->channel[len] = '\0';
	return (0);
}

/* A legacy JSON message (a text frame, or part 0 of a binary one). */
static int
wire_legacy_json(const u_char *p, size_t len, struct gateway_in *in,
    char **cause)
{
	json_t		*m, *v;
	const char	*ch;

	if ((m = wire_json(p, len, cause, "message")) == NULL)
		return (-1);
	ch = json_string_value(json_object_get(m, "channel"));
	if (ch == NULL || wire_set_channel(in, (const u_char *)ch,
	    strlen(ch), cause) != 0) {
		if (ch == NULL)
			xasprintf(cause, "message without a channel");
		json_decref(m);
		return (-1);
	}
	if (json_is_object(v = json_object_get(m, "header")))
		in->header = json_incref(v);
	if ((v = json_object_get(m, "parent_header")) != NULL &&
	    !json_is_null(v))
		in->parent = json_incref(v);
	if ((v = json_object_get(m, "metadata")) != NULL && !json_is_null(v))
		in->metadata = json_incref(v);
	if ((v = json_object_get(m, "content")) != NULL && !json_is_null(v))
		in->content = json_incref(v);
	json_decref(m);
	return (0);
}

static uint64_t
wire_be32(const u_char *p)
{
	return ((uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
	    (uint64_t)p[2] << 8 | p[3]);
}

static uint64_t
wire_le64(const u_char *p)
{
	uint64_t	v = 0;
	int		i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return (v);
}

/*
 * Offsets as both framings write them: n of them after the count, each at
 * least the table's end, none decreasing, none past the data. end[i] is
 * where part i stops: the next offset, or the data's end for the last.
 */
static int
wire_offsets(const u_char *p, size_t len, size_t width, uint64_t **offs,
    uint64_t *np, char **cause)
{
	uint64_t	n, i, table;

	if (len < width)
		goto bad;
	n = width == 4 ? wire_be32(p) : wire_le64(p);
	if (n < 1 || n > WIRE_PARTS_MAX + 6)
		goto bad;
	table = width * (n + 1);
	if (table > len)
		goto bad;
	*offs = xcalloc(n + 1, sizeof **offs);
	for (i = 0; i < n; i++) {
		(*offs)[i] = width == 4 ? wire_be32(p + width * (i + 1)) :
		    wire_le64(p + width * (i + 1));
		if ((*offs)[i] < table || (*offs)[i] > len ||
		    (i > 0 && (*offs)[i] < (*offs)[i - 1])) {
			free(*offs);
			goto bad;
		}
	}
	(*offs)[n] = len;
	*np = n;
	return (0);
bad:
	xasprintf(cause, "bad binary message: offsets");
	return (-1);
}

static int
wire_legacy_binary(const u_char *p, size_t len, struct gateway_in *in,
    char **cause)
{
	uint64_t	*o, n, i;
	int		 r = -1;

	if (wire_offsets(p, len, 4, &o, &n, cause) != 0)
		return (-1);
	if (wire_legacy_json(p + o[0], o[1] - o[0], in, cause) != 0)
		goto out;
	if (n > 1)
		in->buffers = zmsg_new();
	for (i = 1; i < n; i++)
		zmsg_addmem(in->buffers, p + o[i], o[i + 1] - o[i]);
	r = 0;
out:
	free(o);
	return (r);
}

static int
wire_v1(const u_char *p, size_t len, struct gateway_in *in, char **cause)
{
	uint64_t	*o, n, i;
	int		 r = -1;

	if (wire_offsets(p, len, 8, &o, &n, cause) != 0)
		return (-1);
	/* The last offset is the end: n - 1 parts, five before buffers. */
	if (n < 6) {
		xasprintf(cause, "bad v1 message: %llu offsets",
		    (unsigned long long)n);
		goto out;
	}
	if (wire_set_channel(in, p + o[0], o[1] - o[0], cause) != 0 ||
	    (in->header = wire_json(p + o[1], o[2] - o[1], cause,
	    "header")) == NULL)
		goto out;
	if (o[3] > o[2] && (in->parent = wire_json(p + o[2], o[3] - o[2],
	    cause, "parent_header")) == NULL)
		goto out;
	if ((in->metadata = wire_json(p + o[3], o[4] - o[3], cause,
	    "metadata")) == NULL || (in->content = wire_json(p + o[4],
	    o[5] - o[4], cause, "content")) == NULL)
		goto out;
	if (n > 6)
		in->buffers = zmsg_new();
	for (i = 5; i + 1 < n; i++)
		zmsg_addmem(in->buffers, p + o[i], o[i + 1] - o[i]);
	r = 0;
out:
	free(o);
	return (r);
}

/* One incoming WebSocket message as a Jupyter message, or -1 and why. */
int
gateway_wire_decode(enum gateway_framing f, int binary, const u_char *p,
    size_t len, struct gateway_in *in, char **cause)
{
	int	r;

	memset(in, 0, sizeof *in);
	if (len != 0 && p[0] == '{')
		r = wire_legacy_json(p, len, in, cause);
	else if (f == GATEWAY_V1 && binary)
		r = wire_v1(p, len, in, cause);
	else
		r = wire_legacy_binary(p, len, in, cause);
	if (r == 0)
		r = wire_check(in, cause);
	if (r != 0)
		gateway_in_clear(in);
	return (r);
}

/* Outgoing. */

static void
wire_put(u_char **buf, size_t *len, const void *p, size_t n)
{
	*buf = xrealloc(*buf, *len + n);
	memcpy(*buf + *len, p, n);
	*len += n;
}

static void
wire_put_le64(u_char *p, uint64_t v)
{
	int	i;

	for (i = 0; i < 8; i++, v >>= 8)
		p[i] = v & 0xff;
}

static char *
wire_dump(json_t *j)
{
	char	*s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s == NULL)
		fatalx("out of memory");
	return (s);
}

static u_char *
wire_encode_legacy(struct gateway_out *o, size_t *len, int *binary)
{
	u_char		*buf = NULL, hdr[4];
	char		*js;
	size_t		 n, i, off, jl;
	zframe_t	*f;

	js = wire_dump(o->msg);
	jl = strlen(js);
	*len = 0;
	if (o->buffers == NULL || zmsg_size(o->buffers) == 0) {
		*binary = 0;
		*len = jl;
		return ((u_char *)js);
	}
	*binary = 1;
	n = 1 + zmsg_size(o->buffers);
	buf = xmalloc(4 * (n + 1));
	*len = 4 * (n + 1);
	for (i = 0; i < 4; i++)
		buf[i] = (n >> (24 - 8 * i)) & 0xff;
	off = 4 * (n + 1);
	f = NULL;
	for (i = 0; i < n; i++) {
		hdr[0] = off >> 24;
		hdr[1] = off >> 16;
		hdr[2] = off >> 8;
		hdr[3] = off;
		memcpy(buf + 4 * (i + 1), hdr, 4);
		if (i == 0)
			off += jl;
		else {
			f = i == 1 ? zmsg_first(o->buffers) :
			    zmsg_next(o->buffers);
			off += zframe_size(f);
		}
	}
	wire_put(&buf, len, js, jl);
	for (f = zmsg_first(o->buffers); f != NULL; f = zmsg_next(o->buffers))
		wire_put(&buf, len, zframe_data(f), zframe_size(f));
	free(js);
	return (buf);
}

static u_char *
wire_encode_v1(struct gateway_out *o, size_t *len, int *binary)
{
	static const char *keys[] = { "header", "parent_header", "metadata",
	    "content" };
	char		*parts[4];
	size_t		 nb = o->buffers != NULL ? zmsg_size(o->buffers) : 0;
	size_t		 n = nb + 6, i, off;
	u_char		*buf;
	zframe_t	*f;

	*binary = 1;
	buf = xcalloc(1, 8 * (n + 1));
	*len = 8 * (n + 1);
	wire_put_le64(buf, n);
	off = 8 * (n + 1);
	wire_put_le64(buf + 8, off);
	off += strlen(o->channel);
	wire_put_le64(buf + 16, off);
	for (i = 0; i < 4; i++) {
		parts[i] = wire_dump(json_object_get(o->msg, keys[i]));
		off += strlen(parts[i]);
		wire_put_le64(buf + 8 * (i + 3), off);
	}
	i = 7;
	for (f = o->buffers ? zmsg_first(o->buffers) : NULL; f != NULL;
	    f = zmsg_next(o->buffers)) {
		off += zframe_size(f);
		wire_put_le64(buf + 8 * i++, off);
	}
	wire_put(&buf, len, o->channel, strlen(o->channel));
	for (i = 0; i < 4; i++) {
		wire_put(&buf, len, parts[i], strlen(parts[i]));
		free(parts[i]);
	}
	for (f = o->buffers ? zmsg_first(o->buffers) : NULL; f != NULL;
	    f = zmsg_next(o->buffers))
		wire_put(&buf, len, zframe_data(f), zframe_size(f));
	return (buf);
}

/* The bytes of o in framing f, made once and kept for every connection. */
const u_char *
gateway_wire_encode(struct gateway_out *o, enum gateway_framing f,
    size_t *len, int *binary)
{
	if (o->enc[f] == NULL) {
		o->enc[f] = f == GATEWAY_V1 ?
		    wire_encode_v1(o, &o->enc_len[f], &o->enc_binary[f]) :
		    wire_encode_legacy(o, &o->enc_len[f], &o->enc_binary[f]);
	}
	*len = o->enc_len[f];
	*binary = o->enc_binary[f];
	return (o->enc[f]);
}

/*
 * Over GATEWAY_MESSAGE_MAX the proxies' clients close the socket, so an
 * output that large is replaced by what fits, with a visible notice, as
 * the daemon's output caps do: a stream keeps its head, a display keeps a
 * text/plain note, anything else becomes an error content.
 */
static void
wire_truncate(struct gateway_out *o, size_t size)
{
	const char	*type = json_string_value(json_object_get(json_object_get(
			    o->msg, "header"), "msg_type"));
	json_t		*content;
	const char	*text;
	char		*note, *head;

	xasprintf(&note, "[cellblock: this %s message of %zu bytes was "
	    "over the gateway's %zu-byte limit and was cut]", type ? type :
	    "", size, (size_t)GATEWAY_MESSAGE_MAX);
	zmsg_destroy(&o->buffers);
	/* The content is the core's too: change a copy. */
	content = json_deep_copy(json_object_get(o->msg, "content"));
	json_object_set_new(o->msg, "content", content);
	if (type != NULL && strcmp(type, "stream") == 0 &&
	    (text = json_string_value(json_object_get(content, "text"))) !=
	    NULL) {
		head = xstrndup(text, GATEWAY_MESSAGE_MAX / 2);
		json_object_set_new(content, "text", json_sprintf("%s\n%s\n",
		    head, note));
		free(head);
	} else if (json_is_object(json_object_get(content, "data"))) {
		json_object_set_new(content, "data", json_pack("{s:s}",
		    "text/plain", note));
		json_object_set_new(content, "metadata", json_object());
	} else {
		json_object_set_new(o->msg, "content", json_pack("{s:s,s:s,"
		    "s:s,s:[s]}", "status", "error", "ename", "OutputTooLarge",
		    "evalue", note, "traceback", note));
	}
	json_object_set_new(o->msg, "metadata", json_object());
	free(note);
}

static size_t
wire_size(struct gateway_out *o)
{
	size_t		 size;
	char		*s = wire_dump(o->msg);
	zframe_t	*f;

	size = strlen(s) + 64;
	free(s);
	for (f = o->buffers ? zmsg_first(o->buffers) : NULL; f != NULL;
	    f = zmsg_next(o->buffers))
		size += zframe_size(f) + 16;
	return (size);
}

/* Takes ownership of header and parent; references the rest. */
static struct gateway_out *
wire_out_make(const char *channel, json_t *header, json_t *parent,
    json_t *metadata, json_t *content, zmsg_t *buffers)
{
	struct gateway_out	*o;
	const char		*ps;
	size_t			 size;

	o = xcalloc(1, sizeof *o);
	o->refs = 1;
	snprintf(o->channel, sizeof o->channel, "%s", channel);
	if (!json_is_object(parent)) {
		json_decref(parent);
		parent = json_object();
	}
	ps = json_string_value(json_object_get(parent, "session"));
	snprintf(o->parent_session, sizeof o->parent_session, "%s",
	    ps != NULL ? ps : "");
	ps = json_string_value(json_object_get(parent, "msg_id"));
	snprintf(o->parent_id, sizeof o->parent_id, "%s", ps != NULL ? ps : "");
	o->msg = json_pack("{s:o,s:O,s:O,s:o,s:o,s:o,s:s,s:[]}", "header",
	    header, "msg_id", json_object_get(header, "msg_id"), "msg_type",
	    json_object_get(header, "msg_type"), "parent_header", parent,
	    "metadata", metadata ? json_incref(metadata) : json_object(),
	    "content", content ? json_incref(content) : json_object(),
	    "channel", channel, "buffers");
	if (o->msg == NULL)
		fatalx("%s: json_pack failed", __func__);
	if (buffers != NULL && zmsg_size(buffers) != 0)
		o->buffers = zmsg_dup(buffers);
	if ((size = wire_size(o)) > GATEWAY_MESSAGE_MAX)
		wire_truncate(o, size);
	o->size = wire_size(o);
	return (o);
}

/* A message from the core (the seam's form) as the gateway sends it. */
struct gateway_out *
gateway_out_new(const char *channel, const struct jmsg_out *out)
{
	json_t		*header, *parent = NULL;
	json_error_t	 jerr;

	if ((header = jmsg_header_new(out->msg_type, out->session,
	    out->username)) == NULL)
		fatalx("out of memory");
	if (out->msg_id != NULL)
		json_object_set_new(header, "msg_id",
		    json_string(out->msg_id));
	if (out->parent_raw != NULL)
		parent = json_loadb((const char *)zframe_data(out->parent_raw),
		    zframe_size(out->parent_raw), 0, &jerr);
	return (wire_out_make(channel, header, parent, out->metadata,
	    out->content, out->buffers));
}

/* A message as the bridge received it from the session's endpoint. */
/*
 * A decoded message as the core takes it (a struct jmsg, as the ZeroMQ
 * endpoints make), moving in's parts. The header's bytes are what every
 * reply's parent_header will be. metadata.cellblock_client says
 * "gateway" whatever the client wrote there: the audit log's client kind.
 */
struct jmsg *
gateway_in_jmsg(struct gateway_in *in, size_t size, char **cause)
{
	static const char	*optional[] = { "session", "username" };
	struct jmsg		*jm;
	json_t			*v;
	char			*raw;
	size_t			 i;

	for (i = 0; i < nitems(optional); i++) {
		v = json_object_get(in->header, optional[i]);
		if (v != NULL && !json_is_string(v)) {
			xasprintf(cause, "header.%s is not a string",
			    optional[i]);
			gateway_in_clear(in);
			return (NULL);
		}
	}
	json_object_set_new(in->metadata, "cellblock_client",
	    json_string("gateway"));
	jm = xcalloc(1, sizeof *jm);
	if ((raw = json_dumps(in->header, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
	jm->header_raw = zframe_new(raw, strlen(raw));
	free(raw);
	jm->header = in->header;
	jm->parent = in->parent;
	jm->metadata = in->metadata;
	jm->content = in->content;
	jm->buffers = in->buffers != NULL ? in->buffers : zmsg_new();
	memset(in, 0, sizeof *in);
	jm->msg_type = json_string_value(json_object_get(jm->header,
	    "msg_type"));
	jm->msg_id = json_string_value(json_object_get(jm->header, "msg_id"));
	if ((jm->session = json_string_value(json_object_get(jm->header,
	    "session"))) == NULL)
		jm->session = "";
	if ((jm->username = json_string_value(json_object_get(jm->header,
	    "username"))) == NULL)
		jm->username = "";
	jm->size = size;
	return (jm);
}

struct gateway_out *
gateway_out_ref(struct gateway_out *o)
{
	o->refs++;
	return (o);
}

void
gateway_out_unref(struct gateway_out **op)
{
	struct gateway_out	*o = *op;
	int			 i;

	if (o == NULL)
		return;
	*op = NULL;
	if (--o->refs > 0)
		return;
	json_decref(o->msg);
	zmsg_destroy(&o->buffers);
	for (i = 0; i < 2; i++)
		free(o->enc[i]);
	free(o);
}
