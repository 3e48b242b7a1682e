/* fuzz-http.c: fuzz the HTTP front's request handling (server/http.c, token.c, gateway.c's tables). */
/*
 * Input: a request as the front sees it once libmicrohttpd has parsed
 * the bytes: lines "METHOD", "PATH", "AUTHORIZATION", "?token=", then
 * the body. The path is routed through every table the daemon registers
 * (http_lookup over the gateway's, the channels' and /metrics), the
 * token found in the header or query (token_from_request), and the body
 * read as the JSON handlers take it (http_parse_json).
 *
 * Oracles: a route captures only plain names: a {x} segment holds no
 * '/', and is never empty, "." or ".."; a {*} rest has no such segment
 * either, so a kernelspec resource never leaves its directory; a match
 * is a known path, a method mismatch is still known (405, not 404); a
 * token is a non-empty part of what was given; a body is an object or a
 * cause.
 */

#include <string.h>

#include "server.h"
#include "http.h"
#include "fuzz.h"

#define FUZZ_LINE_MAX	4096

/* Each segment of a captured value: none empty, "." or "..". */
static void
fuzz_http_plain(const char *v, int rest)
{
	const char	*p = v, *e;
	size_t		 len;

	FUZZ_CHECK(*v != '\0');
	if (!rest)
		FUZZ_CHECK(strchr(v, '/') == NULL);
	for (;;) {
		e = p + strcspn(p, "/");
		len = e - p;
		FUZZ_CHECK(len != 0);
		FUZZ_CHECK(!(len == 1 && p[0] == '.'));
		FUZZ_CHECK(!(len == 2 && p[0] == '.' && p[1] == '.'));
		if (*e == '\0')
			break;
		p = e + 1;
	}
}

static void
fuzz_http_route(const char *method, const char *path)
{
	const struct http_route	*r;
	char			 params[HTTP_PARAMS_MAX][256];
	size_t			 n, i;
	int			 known;

	r = http_lookup(method, path, params, &n, &known);
	if (r == NULL) {
		FUZZ_CHECK(n == 0);
		return;
	}
	FUZZ_CHECK(known);
	FUZZ_CHECK(strcmp(r->method, method) == 0);
	FUZZ_CHECK(n <= HTTP_PARAMS_MAX);
	for (i = 0; i < n; i++) {
		FUZZ_CHECK(memchr(params[i], '\0', sizeof params[i]) != NULL);
		fuzz_http_plain(params[i], strstr(r->pattern, "{*}") != NULL &&
		    i == n - 1);
	}
}

static void
fuzz_http_token(const char *auth, const char *query)
{
	const char	*t;

	t = token_from_request(*auth != '\0' ? auth : NULL,
	    *query != '\0' ? query : NULL);
	if (t == NULL)
		return;
	FUZZ_CHECK(*t != '\0');
	FUZZ_CHECK((t >= auth && t < auth + strlen(auth)) ||
	    (t >= query && t < query + strlen(query)));
}

static void
fuzz_http_body(const char *body, size_t len)
{
	json_t	*j;
	char	*cause = NULL;

	if ((j = http_parse_json(body, len, &cause)) == NULL) {
		FUZZ_CHECK(cause != NULL);
		free(cause);
		return;
	}
	FUZZ_CHECK(json_is_object(j));
	json_decref(j);
}

/* The next line of the input, NUL-terminated in line; "" past the end. */
static void
fuzz_http_line(const char **p, const char *end, char line[FUZZ_LINE_MAX])
{
	const char	*nl;
	size_t		 len;

	nl = memchr(*p, '\n', end - *p);
	len = (nl != NULL ? nl : end) - *p;
	if (len >= FUZZ_LINE_MAX)
		len = FUZZ_LINE_MAX - 1;
	memcpy(line, *p, len);
	line[len] = '\0';
	*p = nl != NULL ? nl + 1 : end;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static int	 ready;
	static char	 method[FUZZ_LINE_MAX], path[FUZZ_LINE_MAX];
	static char	 auth[FUZZ_LINE_MAX], query[FUZZ_LINE_MAX];
	const char	*p = (const char *)data, *end = p + len;

	if (!ready) {
		config_defaults();
		loop_init();
		gateway_register();
		ready = 1;
	}
	fuzz_http_line(&p, end, method);
	fuzz_http_line(&p, end, path);
	fuzz_http_line(&p, end, auth);
	fuzz_http_line(&p, end, query);
	fuzz_http_route(method, path);
	fuzz_http_token(auth, query);
	fuzz_http_body(p, end - p);
	return (0);
}
