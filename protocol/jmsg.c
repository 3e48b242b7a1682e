/* jmsg.c: Jupyter wire messages: ZeroMQ multipart frames <-> struct jmsg. */
/*
 * On the wire a message is
 *
 *	[routing ids...] <IDS|MSG> signature header parent_header metadata
 *	    content [buffers...]
 *
 * Every frame of an incoming message is hostile until proven otherwise:
 * decoding checks size, framing, signature and JSON in that order and
 * stops at the first failure with a cause naming it.
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "base.h"
#include "protocol.h"

/* The four signed frames, in wire order, as named in causes. */
static const char *jmsg_part_names[4] = {
	"header", "parent_header", "metadata", "content"
};

static void	 jmsg_cause(char **, const char *, ...)
		     __attribute__((format(printf, 2, 3)));
static void	 jmsg_clean(char *);
static int	 jmsg_find_delim(zmsg_t *, size_t *);
static json_t	*jmsg_parse(zframe_t *, const char *, char **);
static int	 jmsg_header_string(struct jmsg *, const char *, int,
		     const char **, char **);
static int	 jmsg_check_header(struct jmsg *, char **);
static int	 jmsg_check_frames(zmsg_t *, size_t, size_t *, char **);
static void	 jmsg_split(zmsg_t *, size_t, struct jmsg *, zframe_t **,
		     zframe_t *[4]);
static int	 jmsg_parse_all(struct jmsg *, zframe_t *[4], char **);
static zframe_t	*jmsg_dump(const json_t *);
static zframe_t	*jmsg_header_frame(const struct jmsg_out *);
static void	 jmsg_copy_frames(zmsg_t *, zmsg_t *);

/* Causes are short: the longest part is jansson's 160-byte error text. */
static void
jmsg_cause(char **cause, const char *fmt, ...)
{
	va_list	ap;
	char	buf[512];

	if (cause == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	*cause = xstrdup(buf);
}

/* Jansson quotes the offending input; keep wire bytes out of log lines. */
static void
jmsg_clean(char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
	}
}

/* Finds the first delimiter frame; its index is the number of ids. */
static int
jmsg_find_delim(zmsg_t *zmsg, size_t *idx)
{
	zframe_t	*f;
	size_t		 i = 0;

	for (f = zmsg_first(zmsg); f != NULL; f = zmsg_next(zmsg), i++) {
		if (zframe_size(f) == strlen(PROTOCOL_DELIM) &&
		    memcmp(zframe_data(f), PROTOCOL_DELIM,
		    strlen(PROTOCOL_DELIM)) == 0) {
			*idx = i;
			return (0);
		}
	}
	return (-1);
}

static json_t *
jmsg_parse(zframe_t *f, const char *what, char **cause)
{
	json_t		*j;
	json_error_t	 err;

	if (zframe_size(f) == 0) {
		jmsg_cause(cause, "%s is not a JSON object: empty frame", what);
		return (NULL);
	}
	/*
	 * JSON_ALLOW_NUL: Python sends "\u0000" for a NUL in user code and
	 * jupyter_client accepts it; the header strings we use are checked
	 * for it separately.
	 */
	j = json_loadb((const char *)zframe_data(f), zframe_size(f),
	    JSON_ALLOW_NUL, &err);
	if (j == NULL) {
		jmsg_clean(err.text);
		jmsg_cause(cause, "%s is not a JSON object: %s", what,
		    err.text);
		return (NULL);
	}
	if (!json_is_object(j)) {
		jmsg_cause(cause, "%s is not a JSON object: got %s", what,
		    json_is_array(j) ? "an array" : "a scalar");
		json_decref(j);
		return (NULL);
	}
	return (j);
}

/*
 * Borrows header[key] into *out. A required key must be a string; an
 * optional one that is absent or not a string reads as "". A string with a
 * NUL in it is refused either way: C would see only its first part.
 */
static int
jmsg_header_string(struct jmsg *m, const char *key, int required,
    const char **out, char **cause)
{
	json_t	*v;

	v = json_object_get(m->header, key);
	if (!json_is_string(v)) {
		if (required) {
			jmsg_cause(cause, "header has no string %s", key);
			return (-1);
		}
		*out = "";
		return (0);
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		jmsg_cause(cause, "header %s contains a NUL", key);
		return (-1);
	}
	*out = json_string_value(v);
	return (0);
}

static int
jmsg_check_header(struct jmsg *m, char **cause)
{
	if (jmsg_header_string(m, "msg_type", 1, &m->msg_type, cause) != 0 ||
	    jmsg_header_string(m, "msg_id", 1, &m->msg_id, cause) != 0 ||
	    jmsg_header_string(m, "session", 0, &m->session, cause) != 0 ||
	    jmsg_header_string(m, "username", 0, &m->username, cause) != 0)
		return (-1);
	return (0);
}

/* Checks size and framing; *nids is where the delimiter is. */
static int
jmsg_check_frames(zmsg_t *zmsg, size_t max_size, size_t *nids, char **cause)
{
	size_t	size, nafter;

	/* zmsg keeps a running total: no frame is read before this. */
	size = zmsg_content_size(zmsg);
	if (size > max_size) {
		jmsg_cause(cause, "message of %zu bytes exceeds limit %zu",
		    size, max_size);
		return (-1);
	}
	if (jmsg_find_delim(zmsg, nids) != 0) {
		jmsg_cause(cause, "no %s delimiter", PROTOCOL_DELIM);
		return (-1);
	}
	nafter = zmsg_size(zmsg) - *nids - 1;
	if (nafter < 5) {
		jmsg_cause(cause, "5 frames needed after delimiter, got %zu",
		    nafter);
		return (-1);
	}
	return (0);
}

/*
 * Moves the frames of a checked zmsg into m->ids, *sig and parts; what is
 * left, zmsg itself, becomes m->buffers.
 */
static void
jmsg_split(zmsg_t *zmsg, size_t nids, struct jmsg *m, zframe_t **sig,
    zframe_t *parts[4])
{
	zframe_t	*f;
	size_t		 i;

	m->ids = zmsg_new();
	for (i = 0; i < nids; i++) {
		f = zmsg_pop(zmsg);
		zmsg_append(m->ids, &f);
	}
	f = zmsg_pop(zmsg);
	zframe_destroy(&f);
	*sig = zmsg_pop(zmsg);
	for (i = 0; i < 4; i++)
		parts[i] = zmsg_pop(zmsg);
	m->buffers = zmsg;
}

static int
jmsg_parse_all(struct jmsg *m, zframe_t *parts[4], char **cause)
{
	json_t	**json[4] = {
		&m->header, &m->parent, &m->metadata, &m->content
	};
	int	  i;

	for (i = 0; i < 4; i++) {
		*json[i] = jmsg_parse(parts[i], jmsg_part_names[i], cause);
		if (*json[i] == NULL)
			return (-1);
	}
	return (jmsg_check_header(m, cause));
}

/*
 * Takes ownership of *zmsgp whatever happens. A max_size of 0 means
 * PROTOCOL_MAX_DEFAULT.
 */
struct jmsg *
jmsg_decode(zmsg_t **zmsgp, struct sign *sign, size_t max_size, char **cause)
{
	zmsg_t		*zmsg;
	zframe_t	*sig, *parts[4];
	struct jmsg	*m;
	size_t		 nids;
	int		 i;

	if (zmsgp == NULL || (zmsg = *zmsgp) == NULL) {
		jmsg_cause(cause, "no message");
		return (NULL);
	}
	*zmsgp = NULL;
	if (sign == NULL)
		fatalx("%s: no signer", __func__);
	if (max_size == 0)
		max_size = PROTOCOL_MAX_DEFAULT;
	if (jmsg_check_frames(zmsg, max_size, &nids, cause) != 0) {
		zmsg_destroy(&zmsg);
		return (NULL);
	}

	m = xcalloc(1, sizeof *m);
	m->size = zmsg_content_size(zmsg);
	jmsg_split(zmsg, nids, m, &sig, parts);
	if (sign_verify(sign, (const char *)zframe_data(sig), zframe_size(sig),
	    parts, cause) != 0 || jmsg_parse_all(m, parts, cause) != 0)
		jmsg_destroy(&m);
	else {
		m->header_raw = parts[0];
		parts[0] = NULL;
	}
	zframe_destroy(&sig);
	for (i = 0; i < 4; i++)
		zframe_destroy(&parts[i]);
	return (m);
}

void
jmsg_destroy(struct jmsg **mp)
{
	struct jmsg	*m;

	if (mp == NULL || (m = *mp) == NULL)
		return;
	zmsg_destroy(&m->ids);
	zframe_destroy(&m->header_raw);
	json_decref(m->header);
	json_decref(m->parent);
	json_decref(m->metadata);
	json_decref(m->content);
	zmsg_destroy(&m->buffers);
	free(m);
	*mp = NULL;
}

/*
 * Serialises compactly, as json_dumps(JSON_COMPACT) would (jwrite.c);
 * NULL means {}. The text is made in a buffer each thread keeps (up to
 * JMSG_DUMP_KEEP bytes) and copied into the frame: no allocation of its
 * own per message.
 */
#define JMSG_DUMP_KEEP	(64 * 1024)
static __thread char	*jmsg_dump_buf;
static __thread size_t	 jmsg_dump_size;

static zframe_t *
jmsg_dump(const json_t *j)
{
	struct jwrite	 w;
	zframe_t	*f = NULL;

	if (j == NULL)
		return (zframe_new("{}", 2));
	jwrite_init(&w, 0, NULL);
	w.buf = jmsg_dump_buf;
	w.size = jmsg_dump_size;
	jwrite_json(&w, j);
	if (!w.bad)
		f = zframe_new(w.buf, w.len);
	if (w.size > JMSG_DUMP_KEEP)
		jwrite_free(&w);
	jmsg_dump_buf = w.buf;
	jmsg_dump_size = w.size;
	return (f);
}

/* Appends copies of the frames of from (borrowed) to to. */
static void
jmsg_copy_frames(zmsg_t *to, zmsg_t *from)
{
	zframe_t	*f, *copy;

	for (f = zmsg_first(from); f != NULL; f = zmsg_next(from)) {
		copy = zframe_dup(f);
		zmsg_append(to, &copy);
	}
}

/*
 * Builds a signed message from borrowed parts. Returns NULL if metadata or
 * content is not an object or cannot be serialised (invalid UTF-8 in a
 * string made with json_string_nocheck, say), or if msg_type, session or
 * username is not valid UTF-8.
 */
zmsg_t *
jmsg_encode(struct sign *sign, const struct jmsg_out *out)
{
	zmsg_t		*z;
	zframe_t	*parts[4];
	json_t		*header;
	char		 sig[65];
	int		 i;

	if (sign == NULL || out == NULL || out->msg_type == NULL)
		fatalx("%s: no signer, message or msg_type", __func__);
	if ((out->metadata != NULL && !json_is_object(out->metadata)) ||
	    (out->content != NULL && !json_is_object(out->content)))
		return (NULL);

	if ((parts[0] = jmsg_header_frame(out)) == NULL) {
		if ((header = jmsg_header_new(out->msg_type, out->session,
		    out->username)) == NULL)
			return (NULL);
		if (out->msg_id != NULL && json_object_set_new(header,
		    "msg_id", json_string(out->msg_id)) != 0) {
			json_decref(header);
			return (NULL);
		}
		parts[0] = jmsg_dump(header);
		json_decref(header);
	}
	if (out->parent_raw != NULL)
		parts[1] = zframe_dup(out->parent_raw);
	else
		parts[1] = zframe_new("{}", 2);
	parts[2] = jmsg_dump(out->metadata);
	parts[3] = jmsg_dump(out->content);
	if (parts[0] == NULL || parts[2] == NULL || parts[3] == NULL) {
		for (i = 0; i < 4; i++)
			zframe_destroy(&parts[i]);
		return (NULL);
	}
	sign_compute(sign, parts, sig);

	z = zmsg_new();
	if (out->topic != NULL)
		zmsg_addstr(z, out->topic);
	else if (out->ids != NULL)
		jmsg_copy_frames(z, out->ids);
	zmsg_addstr(z, PROTOCOL_DELIM);
	zmsg_addstr(z, sig);
	for (i = 0; i < 4; i++)
		zmsg_append(z, &parts[i]);
	if (out->buffers != NULL)
		jmsg_copy_frames(z, out->buffers);
	return (z);
}

/* Printable ASCII that JSON writes as it is: no quote, no backslash. */
static int
jmsg_plain(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return (0);
	}
	return (1);
}

/*
 * The header frame written directly, byte for byte what jansson makes of
 * jmsg_header_new's object (the same keys in the same order, compact):
 * every message the daemon sends has one, and building and dumping a
 * jansson object for it cost more than its HMAC (docs/BENCHMARKS.md).
 * NULL when a string would need escaping or checking: the caller then
 * takes jansson's way.
 */
static zframe_t *
jmsg_header_frame(const struct jmsg_out *out)
{
	const char	*session = out->session != NULL ? out->session : "";
	const char	*username = out->username != NULL ? out->username : "";
	char		 id[37], date[32], buf[512];
	const char	*parts[] = {
	    "{\"msg_id\":\"", out->msg_id != NULL ? out->msg_id : id,
	    "\",\"session\":\"", session, "\",\"username\":\"", username,
	    "\",\"date\":\"", date, "\",\"msg_type\":\"", out->msg_type,
	    "\",\"version\":\"" PROTOCOL_VERSION "\"}" };
	size_t		 i, n, len = 0;

	if (!jmsg_plain(out->msg_type) || !jmsg_plain(session) ||
	    !jmsg_plain(username) ||
	    (out->msg_id != NULL && !jmsg_plain(out->msg_id)))
		return (NULL);
	if (out->msg_id == NULL)
		jmsg_new_id(id);
	jmsg_now(date);
	/* Concatenated by hand: snprintf's %s cost more than the rest. */
	for (i = 0; i < nitems(parts); i++) {
		n = strlen(parts[i]);
		if (n >= sizeof buf - len)
			return (NULL);
		memcpy(buf + len, parts[i], n);
		len += n;
	}
	return (zframe_new(buf, len));
}

/* A fresh header; NULL only if a string is not valid UTF-8. */
json_t *
jmsg_header_new(const char *msg_type, const char *session,
    const char *username)
{
	char	id[37], date[32];

	jmsg_new_id(id);
	jmsg_now(date);
	return (json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
	    "msg_id", id,
	    "session", session != NULL ? session : "",
	    "username", username != NULL ? username : "",
	    "date", date,
	    "msg_type", msg_type,
	    "version", PROTOCOL_VERSION));
}

/*
 * A version 4 UUID in lowercase: 64 random bits drawn once per process,
 * then a counter, as jupyter_client's ids are its session and a count.
 * Unique without a getrandom(2) for each of the five or so messages an
 * execute sends (docs/BENCHMARKS.md).
 */
void
jmsg_new_id(char buf[37])
{
	static const char	hex[] = "0123456789abcdef";
	static uint8_t		base[16];
	static uint64_t		count;	/* 0: base not drawn yet */
	uint8_t			r[16];
	size_t			i;
	char			*p = buf;

	if (count == 0) {
		if (sodium_init() < 0)
			fatalx("%s: sodium_init failed", __func__);
		randombytes_buf(base, sizeof base);
	}
	memcpy(r, base, sizeof r);
	count++;
	/* Bytes 9..15: 56 bits of count; 6 and 8 carry version and variant. */
	for (i = 0; i < 7; i++)
		r[15 - i] ^= (uint8_t)(count >> (8 * i));
	r[6] = (r[6] & 0x0f) | 0x40;
	r[8] = (r[8] & 0x3f) | 0x80;
	for (i = 0; i < sizeof r; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[r[i] >> 4];
		*p++ = hex[r[i] & 0xf];
	}
	*p = '\0';
}

/* UTC now as 2026-11-21T20:30:18.123456Z, the form jupyter_client sends. */
void
jmsg_now(char buf[32])
{
	static __thread time_t	 last = -1;	/* the second of day[] */
	static __thread char	 day[24];
	static __thread size_t	 n;
	struct timespec		 ts;
	struct tm		 tm;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		fatal("%s: clock_gettime", __func__);
	/* Each message has a date: the calendar part changes once a second. */
	if (ts.tv_sec != last) {
		if (gmtime_r(&ts.tv_sec, &tm) == NULL)
			fatalx("%s: gmtime_r failed", __func__);
		if ((n = strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S",
		    &tm)) == 0)
			fatalx("%s: strftime failed", __func__);
		last = ts.tv_sec;
	}
	memcpy(buf, day, n);
	snprintf(buf + n, 32 - n, ".%06uZ",
	    (unsigned)(ts.tv_nsec / 1000) % 1000000u);
}
