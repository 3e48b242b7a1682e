/* jwrite.c: compact JSON text written straight into a buffer, as json_dumps would. */
/*
 * Every message out (its content, metadata, parent) and every audit line
 * is JSON text. Jansson's json_dumps builds it through a callback per
 * token, an snprintf per integer and a string the caller copies again; at
 * five messages and one audit line per trivial execute that was a tenth
 * of the daemon's work (docs/BENCHMARKS.md). Here the text goes into one
 * growing buffer, byte for byte what json_dumps(JSON_COMPACT) writes for
 * the same values (JSWRITE_ASCII: with JSON_ENSURE_ASCII), members in the
 * object's order, reals as %.17g with jansson's touches. The caller may
 * also write members one by one, with no json_t at all (the audit line),
 * and may pass strings through a filter first (the audit's redaction).
 *
 * A string that is not UTF-8 (json_string_nocheck can make one) sets
 * w->bad: the message encoder refuses the message, as json_dumps failed;
 * with JWRITE_REPLACE the byte becomes U+FFFD instead (a log line must
 * still be written).
 */

#include <sys/types.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "protocol.h"

void
jwrite_init(struct jwrite *w, int flags, jwrite_filter_fn *filter)
{
	memset(w, 0, sizeof *w);
	w->flags = flags;
	w->filter = filter;
}

/* The text so far, NUL-terminated, owned by the caller from now on. */
char *
jwrite_take(struct jwrite *w, size_t *len)
{
	char	*s;

	jwrite_put(w, "", 0);		/* a buffer even for nothing */
	w->buf[w->len] = '\0';		/* jwrite_put kept room */
	s = w->buf;
	if (len != NULL)
		*len = w->len;
	w->buf = NULL;
	w->len = w->size = 0;
	return (s);
}

void
jwrite_free(struct jwrite *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->size = 0;
}

/* Always two bytes spare past len: room for a closing "}\n" or a NUL. */
void
jwrite_put(struct jwrite *w, const char *p, size_t n)
{
	if (w->len + n + 2 > w->size) {
		w->size = (w->len + n + 2) * 2;
		if (w->size < 256)
			w->size = 256;
		w->buf = xrealloc(w->buf, w->size);
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void
jwrite_putc(struct jwrite *w, char c)
{
	jwrite_put(w, &c, 1);
}

/* A comma unless this is the first member or element of its container. */
void
jwrite_sep(struct jwrite *w)
{
	char	last = w->len > 0 ? w->buf[w->len - 1] : '{';

	if (last != '{' && last != '[' && last != ':')
		jwrite_putc(w, ',');
}

void
jwrite_open(struct jwrite *w, char c)
{
	jwrite_sep(w);
	jwrite_putc(w, c);
}

void
jwrite_close(struct jwrite *w, char c)
{
	jwrite_putc(w, c);
}

/* One UTF-8 sequence at p (n bytes left): its code point, or -1. */
static int32_t
jwrite_utf8(const u_char *p, size_t n, size_t *used)
{
	int32_t	c;
	size_t	i, len;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return (-1);
	len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	if (len > n)
		return (-1);
	c = p[0] & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (-1);
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return (-1);
	*used = len;
	return (c);
}

static void
jwrite_u16(struct jwrite *w, u_int c)
{
	static const char	 hex[] = "0123456789ABCDEF";
	char			 e[6] = { '\\', 'u', hex[(c >> 12) & 15],
				    hex[(c >> 8) & 15], hex[(c >> 4) & 15],
				    hex[c & 15] };

	jwrite_put(w, e, sizeof e);
}

/*
 * Legend: the characters JSON escapes short, as jansson writes them; any
 * other below 0x20 as \u00XX; past 0x7f, with JWRITE_ASCII, \uXXXX (a
 * surrogate pair past 0xffff), else the UTF-8 as it is.
 */
static const char *jwrite_short[0x80] = {
	['\b'] = "\\b", ['\f'] = "\\f", ['\n'] = "\\n", ['\r'] = "\\r",
	['\t'] = "\\t", ['"'] = "\\\"", ['\\'] = "\\\\",
};

/* Past 0x7f: one sequence, escaped or as it is; how many bytes it took. */
static size_t
jwrite_wide(struct jwrite *w, const u_char *p, size_t n)
{
	int32_t	c;
	size_t	used;

	if ((c = jwrite_utf8(p, n, &used)) == -1) {
		w->bad = 1;
		if (w->flags & JWRITE_REPLACE)
			jwrite_u16(w, 0xfffd);
		return (1);
	}
	if (!(w->flags & JWRITE_ASCII))
		jwrite_put(w, (const char *)p, used);
	else if (c < 0x10000)
		jwrite_u16(w, c);
	else {
		jwrite_u16(w, 0xd800 | ((c - 0x10000) >> 10));
		jwrite_u16(w, 0xdc00 | ((c - 0x10000) & 0x3ff));
	}
	return (used);
}

/* n bytes at s as a JSON string, quotes included; no separator. */
void
jwrite_escape(struct jwrite *w, const char *s, size_t n)
{
	const u_char	*p = (const u_char *)s, *run = p, *end = p + n;

	jwrite_putc(w, '"');
	while (p < end) {
		if (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
			p++;
			continue;
		}
		jwrite_put(w, (const char *)run, p - run);
		if (*p >= 0x80)
			p += jwrite_wide(w, p, end - p);
		else {
			if (jwrite_short[*p] != NULL)
				jwrite_put(w, jwrite_short[*p], 2);
			else
				jwrite_u16(w, *p);
			p++;
		}
		run = p;
	}
	jwrite_put(w, (const char *)run, p - run);
	jwrite_putc(w, '"');
}

/* A string value, through the filter if there is one. */
void
jwrite_string(struct jwrite *w, const char *s, size_t n)
{
	char	*clean;

	jwrite_sep(w);
	if (w->filter != NULL && (clean = w->filter(s, n, NULL)) != NULL) {
		jwrite_escape(w, clean, strlen(clean));
		free(clean);
	} else
		jwrite_escape(w, s, n);
}

/* A string the caller vouches for: never filtered. */
void
jwrite_own(struct jwrite *w, const char *s)
{
	jwrite_sep(w);
	jwrite_escape(w, s, strlen(s));
}

void
jwrite_key(struct jwrite *w, const char *key, size_t n)
{
	jwrite_sep(w);
	jwrite_escape(w, key, n);
	jwrite_putc(w, ':');
}

static void
jwrite_digits(struct jwrite *w, uint64_t v, int neg)
{
	char	b[24], *p = b + sizeof b;

	do
		*--p = '0' + v % 10;
	while ((v /= 10) != 0);
	if (neg)
		*--p = '-';
	jwrite_sep(w);
	jwrite_put(w, p, b + sizeof b - p);
}

void
jwrite_int(struct jwrite *w, int64_t v)
{
	jwrite_digits(w, v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0);
}

/* n thousandths as the real it is: 1500 -> 1.5, 2000 -> 2.0. */
void
jwrite_milli(struct jwrite *w, uint64_t n)
{
	char	frac[4] = { '.', '0' + n / 100 % 10, '0' + n / 10 % 10,
		    '0' + n % 10 };
	size_t	len = 4;

	jwrite_digits(w, n / 1000, 0);
	while (len > 2 && frac[len - 1] == '0')
		len--;
	jwrite_put(w, frac, len);
}

/* jansson's exponent: no '+', no leading zeros (1e+20 -> 1e20). */
static size_t
jwrite_exponent(char *b, size_t n)
{
	char	*e = strchr(b, 'e'), *from;

	if (e == NULL)
		return (n);
	e++;
	if (*e == '-')
		e++;
	for (from = e; *from == '+' || *from == '0'; from++)
		;
	if (*from == '\0')
		from--;		/* keep one digit */
	memmove(e, from, b + n + 1 - from);
	return (n - (from - e));
}

/* A real as jansson writes it: %.17g, never read back as an integer. */
void
jwrite_real(struct jwrite *w, double d)
{
	char	b[40];
	int	n;

	n = snprintf(b, sizeof b, "%.17g", d);
	jwrite_sep(w);
	if (n < 0 || (size_t)n >= sizeof b - 2 || !isfinite(d)) {
		w->bad = 1;		/* jansson holds no inf or nan */
		jwrite_put(w, "null", 4);
		return;
	}
	if (strpbrk(b, ".e") == NULL) {
		memcpy(b + n, ".0", 3);
		n += 2;
	}
	jwrite_put(w, b, jwrite_exponent(b, n));
}

void
jwrite_literal(struct jwrite *w, const char *word)
{
	jwrite_sep(w);
	jwrite_put(w, word, strlen(word));
}

/* Any value: objects and arrays member by member. */
void
jwrite_json(struct jwrite *w, const json_t *j)
{
	const char	*key;
	json_t		*v;
	size_t		 i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		jwrite_open(w, '{');
		json_object_foreach((json_t *)j, key, v) {
			jwrite_key(w, key, strlen(key));
			jwrite_json(w, v);
		}
		jwrite_close(w, '}');
		break;
	case JSON_ARRAY:
		jwrite_open(w, '[');
		json_array_foreach(j, i, v)
			jwrite_json(w, v);
		jwrite_close(w, ']');
		break;
	case JSON_STRING:
		jwrite_string(w, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		jwrite_int(w, json_integer_value(j));
		break;
	case JSON_REAL:
		jwrite_real(w, json_real_value(j));
		break;
	case JSON_TRUE:
		jwrite_literal(w, "true");
		break;
	case JSON_FALSE:
		jwrite_literal(w, "false");
		break;
	default:
		jwrite_literal(w, "null");
		break;
	}
}
