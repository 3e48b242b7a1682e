/* test-protocol.c: unit tests for the wire codec, signing, the JSON writer and xmalloc. */
/*
 * No framework: CHECK counts, prints one line per failure, and main ends
 * with "N passed, N failed". Loops that run thousands of cases count as one
 * check each and print only their first few failures.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* program_invocation_short_name */
#endif

#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "protocol.h"
#include "check.h"

#define KEY		"a0436f6c-1916-498b-8eb9-e81ab9368e84"
#define CACHE_CAP	16384	/* the cap sign.c promises */
#define SIGNED_FIRST	4	/* index of header in a test message */

static void	 loop_fail(int *, const char *, ...)
		     __attribute__((format(printf, 2, 3)));
static uint64_t	 rng(void);
static zframe_t	*frame_str(const char *);
static int	 frame_is(zframe_t *, const void *, size_t);
static int	 frame_is_str(zframe_t *, const char *);
static zframe_t	*zmsg_nth(zmsg_t *, size_t);
static size_t	 zmsg_take(zmsg_t **, zframe_t **, size_t);
static zmsg_t	*zmsg_make(zframe_t **, size_t);
static zmsg_t	*craft(struct sign *, const char *, const char *const [4]);
static zmsg_t	*encode_test(struct sign *, const char *);
static int	 decodes(zmsg_t *, struct sign *);
static int	 decode_ok(zmsg_t *, struct sign *);
static int	 decode_fails(zmsg_t *, struct sign *, size_t, const char *);
static void	 test_fatal_one(int, const char *);
static void	 test_fatal(void);
static void	 test_xmalloc(void);
static void	 test_vector(const void *, size_t, zframe_t *[4], const char *);
static void	 test_vectors(void);
static void	 test_sign_misc(void);
static void	 test_header(void);
static void	 test_header_frame(void);
static int	 date_ok(const char *);
static int	 uuid_ok(const char *);
static int	 cmp_str(const void *, const void *);
static void	 test_ids(void);
static void	 test_roundtrip(void);
static void	 test_encode_edges(void);
static void	 test_rejects(void);
static void	 test_rejects_json(void);
static int	 cache_try(struct sign *, int);
static void	 test_cache(void);
static zmsg_t	*garbage(struct sign *, int, int *, size_t *, size_t *);
static void	 test_garbage(void);
static void	 test_mutations(void);
static void	 test_jwrite(void);

/* Reports one failing case of a loop, the first five only. */
static void
loop_fail(int *count, const char *fmt, ...)
{
	va_list	ap;

	if ((*count)++ >= 5)
		return;
	printf("FAIL case: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* splitmix64 with a fixed seed: every run sees the same garbage. */
static uint64_t
rng(void)
{
	static uint64_t	state = 0x5eed5eed5eed5eedULL;
	uint64_t	z;

	z = (state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31));
}

static zframe_t *
frame_str(const char *s)
{
	return (zframe_new(s, strlen(s)));
}

static int
frame_is(zframe_t *f, const void *data, size_t size)
{
	return (f != NULL && zframe_size(f) == size &&
	    (size == 0 || memcmp(zframe_data(f), data, size) == 0));
}

static int
frame_is_str(zframe_t *f, const char *s)
{
	return (frame_is(f, s, strlen(s)));
}

static zframe_t *
zmsg_nth(zmsg_t *z, size_t n)
{
	zframe_t	*f;

	for (f = zmsg_first(z); f != NULL && n > 0; f = zmsg_next(z))
		n--;
	return (f);
}

/* Moves the frames of *zp into v (at most max) and destroys the message. */
static size_t
zmsg_take(zmsg_t **zp, zframe_t **v, size_t max)
{
	size_t	n = 0;

	while (n < max && zmsg_size(*zp) > 0)
		v[n++] = zmsg_pop(*zp);
	zmsg_destroy(zp);
	return (n);
}

static zmsg_t *
zmsg_make(zframe_t **v, size_t n)
{
	zmsg_t	*z = zmsg_new();
	size_t	 i;

	for (i = 0; i < n; i++)
		zmsg_append(z, &v[i]);
	return (z);
}

/*
 * A message with one routing id and the given JSON frames; sig NULL means
 * sign it properly.
 */
static zmsg_t *
craft(struct sign *s, const char *sig, const char *const json[4])
{
	zframe_t	*parts[4];
	zmsg_t		*z;
	char		 hex[65];
	int		 i;

	for (i = 0; i < 4; i++)
		parts[i] = frame_str(json[i]);
	sign_compute(s, parts, hex);
	z = zmsg_new();
	zmsg_addstr(z, "id0");
	zmsg_addstr(z, PROTOCOL_DELIM);
	zmsg_addstr(z, sig != NULL ? sig : hex);
	for (i = 0; i < 4; i++)
		zmsg_append(z, &parts[i]);
	return (z);
}

/* A valid message: 2 ids, delimiter, signature, 4 JSON, 2 buffers. */
static zmsg_t *
encode_test(struct sign *s, const char *msg_type)
{
	struct jmsg_out	 out;
	zmsg_t		*ids, *bufs, *z;

	memset(&out, 0, sizeof out);
	ids = zmsg_new();
	zmsg_addmem(ids, "\0id\0", 4);
	zmsg_addstr(ids, "second-id");
	bufs = zmsg_new();
	zmsg_addmem(bufs, "\xff\0\xfe", 3);
	zmsg_addstr(bufs, "buffer two");
	out.ids = ids;
	out.buffers = bufs;
	out.msg_type = msg_type;
	out.session = "sess";
	out.username = "user";
	out.metadata = json_pack("{s:i}", "m", 1);
	out.content = json_pack("{s:i}", "c", 2);
	z = jmsg_encode(s, &out);
	json_decref(out.metadata);
	json_decref(out.content);
	zmsg_destroy(&ids);
	zmsg_destroy(&bufs);
	return (z);
}

/* Quietly: does it decode? */
static int
decodes(zmsg_t *z, struct sign *s)
{
	struct jmsg	*m;
	int		 ok;

	m = jmsg_decode(&z, s, 0, NULL);
	ok = (m != NULL);
	jmsg_destroy(&m);
	return (ok && z == NULL);
}

static int
decode_ok(zmsg_t *z, struct sign *s)
{
	struct jmsg	*m;
	char		*cause = NULL;
	int		 ok;

	m = jmsg_decode(&z, s, 0, &cause);
	ok = (m != NULL && z == NULL && cause == NULL);
	if (m == NULL)
		printf("  (unexpected cause: %s)\n", cause);
	jmsg_destroy(&m);
	free(cause);
	return (ok);
}

/* Decoding must fail, consume the message, and give a cause with want. */
static int
decode_fails(zmsg_t *z, struct sign *s, size_t max, const char *want)
{
	struct jmsg	*m;
	char		*cause = NULL;
	int		 ok;

	m = jmsg_decode(&z, s, max, &cause);
	ok = (m == NULL && z == NULL && cause != NULL &&
	    strstr(cause, want) != NULL);
	if (!ok)
		printf("  (wanted \"%s\", got %s \"%s\")\n", want,
		    m != NULL ? "success" : "failure",
		    cause != NULL ? cause : "(no cause)");
	jmsg_destroy(&m);
	free(cause);
	return (ok);
}

/* Runs fatal (errnum != 0) or fatalx in a child and checks what it says. */
static void
test_fatal_one(int errnum, const char *want)
{
	char	 buf[256], expect[256];
	int	 fd[2], status;
	ssize_t	 n;
	size_t	 len;
	pid_t	 pid;

	fflush(stdout);
	if (pipe(fd) != 0 || (pid = fork()) == -1) {
		CHECK(0 /* pipe or fork failed */);
		return;
	}
	if (pid == 0) {
		dup2(fd[1], STDERR_FILENO);
		if (errnum != 0) {
			errno = errnum;
			fatal("open %s", "x");
		}
		fatalx("boom %d", 7);
	}
	close(fd[1]);
	len = 0;
	while (len < sizeof buf - 1 &&
	    (n = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0)
		len += n;
	close(fd[0]);
	buf[len] = '\0';
	waitpid(pid, &status, 0);
	snprintf(expect, sizeof expect, "%s: %s\n",
	    program_invocation_short_name, want);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	CHECK(strcmp(buf, expect) == 0);
}

/* First, before anything is allocated, so forked children leak nothing. */
static void
test_fatal(void)
{
	test_fatal_one(0, "boom 7");
	test_fatal_one(ENOENT, "open x: No such file or directory");
}

static void
test_xmalloc(void)
{
	char	*s, *p;
	int	 n;

	s = xstrndup("abcdef", 3);
	CHECK(strcmp(s, "abc") == 0);
	free(s);
	s = xstrndup("ab", 10);
	CHECK(strcmp(s, "ab") == 0);
	free(s);
	s = xstrdup("");
	CHECK(s[0] == '\0');
	free(s);
	s = xprintf("%s-%d", "x", 42);
	CHECK(strcmp(s, "x-42") == 0);
	free(s);
	n = xasprintf(&s, "%05d", 7);
	CHECK(n == 5 && strcmp(s, "00007") == 0);
	free(s);

	/* Zero sizes give a usable pointer instead of dying. */
	p = xmalloc(0);
	CHECK(p != NULL);
	p = xrealloc(p, 0);
	CHECK(p != NULL);
	p = xrealloc(p, 100);
	memset(p, 1, 100);
	free(p);
	p = xcalloc(0, 8);
	CHECK(p != NULL);
	free(p);
	p = xcalloc(4, 4);
	CHECK(p[0] == 0 && p[15] == 0);
	free(p);
}

/* Checks that compute gives want and that verify agrees, once. */
static void
test_vector(const void *key, size_t keylen, zframe_t *parts[4],
    const char *want)
{
	struct sign	*s;
	char		 hex[65], upper[65], *cause = NULL;
	size_t		 i;

	s = sign_new("hmac-sha256", key, keylen, &cause);
	CHECK(s != NULL && cause == NULL);
	memset(hex, 'x', sizeof hex);
	sign_compute(s, parts, hex);
	CHECK(strcmp(hex, want) == 0);
	if (strcmp(hex, want) != 0)
		printf("  (got %s want %s)\n", hex, want);
	if (*want == '\0') {
		sign_destroy(&s);
		return;
	}

	/* jupyter_client compares hex text: uppercase must not pass. */
	for (i = 0; i <= strlen(want); i++)
		upper[i] = (char)toupper((unsigned char)want[i]);
	CHECK(sign_verify(s, upper, 64, parts, &cause) == -1);
	CHECK(cause != NULL && strcmp(cause, "bad signature") == 0);
	free(cause);
	cause = NULL;
	CHECK(sign_verify(s, want, 64, parts, &cause) == 0 && cause == NULL);
	CHECK(sign_verify(s, want, 64, parts, &cause) == -1);
	CHECK(cause != NULL && strcmp(cause, "replayed signature") == 0);
	free(cause);
	sign_destroy(&s);
	CHECK(s == NULL);
}

/*
 * Expected digests come from Python's hmac module, not from this code:
 *
 *   /usr/bin/python3 -c 'import hmac,hashlib,sys; k,*f=map(eval,
 *       sys.argv[1:]); print(hmac.new(k,b"".join(f),
 *       hashlib.sha256).hexdigest())' KEY HEADER PARENT METADATA CONTENT
 *
 * each argument a Python expression (H is VEC_HEADER as b'...'):
 *   NORMAL   'b"a0436f6c-1916-498b-8eb9-e81ab9368e84"' H 'b"{}"' x3
 *   LONGKEY  '("ключ-🔑-"*10).encode()' (140 bytes) H 'b"{}"' x3
 *   NULS     'b"k"' "b'{\"a\":\"\\x00\"}\\x00\\xff'" 'b"\x00"' 'b""'
 *            'b"\x00\x00{}"'
 *   BLOCK64  'b"x"*64' H 'b"{}"' x3
 *   EMPTY    'b"key"' 'b""' x4
 */
#define VEC_HEADER	"{\"msg_id\":\"1\",\"session\":\"s\"," \
			"\"username\":\"u\"," \
			"\"date\":\"2026-11-21T20:30:18.123456Z\"," \
			"\"msg_type\":\"kernel_info_request\"," \
			"\"version\":\"5.3\"}"
#define VEC_NORMAL	"98fd50af556cc9e8420ccd9e0a81e4a0" \
			"7ce0261960baa926b0f0a8f390bfbc8b"
#define VEC_LONGKEY	"226e5ee1a953212e03dab29df971e604" \
			"644285b704a2f198da176b0dc7e28d9d"
#define VEC_NULS	"175ef2f93058834a4f5b4f12c2a406d9" \
			"90d6ddbff0de0488c9e22b4d7cc1d0fb"
#define VEC_BLOCK64	"0799c1f490567c3f8186788144e9b9d9" \
			"61fe9f81f23500e74f3c537173958578"
#define VEC_EMPTY	"5d5d139563c95b5967b9bd9a8c9b233a" \
			"9dedb45072794cd232dc1b74832607d0"
#define LONGKEY_PIECE	"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87-\xf0\x9f\x94\x91-"

static void
test_vectors(void)
{
	zframe_t	*parts[4], *nuls[4], *empty[4];
	char		 longkey[256], block[64];
	const char	*sig;
	struct sign	*s;
	zmsg_t		*z;
	int		 i;

	parts[0] = frame_str(VEC_HEADER);
	for (i = 1; i < 4; i++)
		parts[i] = frame_str("{}");
	nuls[0] = zframe_new("{\"a\":\"\0\"}\0\xff", 11);
	nuls[1] = zframe_new("\0", 1);
	nuls[2] = zframe_new("", 0);
	nuls[3] = zframe_new("\0\0{}", 4);
	for (i = 0; i < 4; i++)
		empty[i] = zframe_new("", 0);

	test_vector(KEY, strlen(KEY), parts, VEC_NORMAL);
	longkey[0] = '\0';
	for (i = 0; i < 10; i++)
		strcat(longkey, LONGKEY_PIECE);
	CHECK(strlen(longkey) == 140);
	test_vector(longkey, strlen(longkey), parts, VEC_LONGKEY);
	test_vector("k", 1, nuls, VEC_NULS);
	memset(block, 'x', sizeof block);
	test_vector(block, sizeof block, parts, VEC_BLOCK64);
	test_vector("key", 3, empty, VEC_EMPTY);
	test_vector("", 0, parts, "");

	/* The Python vector decodes as a whole message too. */
	s = sign_new(NULL, KEY, strlen(KEY), NULL);
	z = zmsg_new();
	zmsg_addstr(z, PROTOCOL_DELIM);
	zmsg_addstr(z, VEC_NORMAL);
	for (i = 0; i < 4; i++)
		zmsg_addmem(z, zframe_data(parts[i]), zframe_size(parts[i]));
	CHECK(decode_ok(z, s));
	sign_destroy(&s);

	/* Unsigned: anything goes, and nothing is remembered. */
	s = sign_new("", "", 0, NULL);
	CHECK(s != NULL && !sign_enabled(s));
	sig = "whatever";
	CHECK(sign_verify(s, sig, strlen(sig), parts, NULL) == 0);
	CHECK(sign_verify(s, sig, strlen(sig), parts, NULL) == 0);
	CHECK(sign_verify(s, VEC_NORMAL, 64, parts, NULL) == 0);
	CHECK(sign_verify(s, VEC_NORMAL, 64, parts, NULL) == 0);
	sign_destroy(&s);

	for (i = 0; i < 4; i++) {
		zframe_destroy(&parts[i]);
		zframe_destroy(&nuls[i]);
		zframe_destroy(&empty[i]);
	}
}

static void
test_sign_misc(void)
{
	struct sign	*s;
	char		*cause = NULL;

	s = sign_new("hmac-md5", "k", 1, &cause);
	CHECK(s == NULL && cause != NULL && strstr(cause, "hmac-md5") != NULL);
	free(cause);
	CHECK(sign_new("HMAC-SHA256", "k", 1, NULL) == NULL);

	s = sign_new(NULL, "k", 1, NULL);
	CHECK(s != NULL && sign_enabled(s));
	sign_destroy(&s);
	sign_destroy(&s);
	sign_destroy(NULL);
	CHECK(s == NULL);
	CHECK(!sign_enabled(NULL));
}

/* 2026-11-21T20:30:18.123456Z, field by field. */
static int
date_ok(const char *d)
{
	static const char	*shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
	struct tm		 tm;
	time_t			 now;
	size_t			 i;

	if (strlen(d) != strlen(shape))
		return (0);
	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd' ? !isdigit((unsigned char)d[i]) :
		    d[i] != shape[i])
			return (0);
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	return (atoi(d) == tm.tm_year + 1900 && atoi(d + 5) >= 1 &&
	    atoi(d + 5) <= 12 && atoi(d + 8) >= 1 && atoi(d + 8) <= 31 &&
	    atoi(d + 11) <= 23 && atoi(d + 14) <= 59 && atoi(d + 17) <= 60);
}

static void
test_header(void)
{
	json_t		*h;
	char		 date[32];
	const char	*k;
	json_t		*v;
	int		 n = 0, ok = 1;

	jmsg_now(date);
	CHECK(date_ok(date));
	if (!date_ok(date))
		printf("  (date %s)\n", date);

	h = jmsg_header_new("status", NULL, NULL);
	CHECK(h != NULL && json_is_object(h) && json_object_size(h) == 6);
	CHECK(strcmp(json_string_value(json_object_get(h, "msg_type")),
	    "status") == 0);
	CHECK(strcmp(json_string_value(json_object_get(h, "version")),
	    "5.3") == 0);
	CHECK(strcmp(json_string_value(json_object_get(h, "session")), "") ==
	    0);
	CHECK(strcmp(json_string_value(json_object_get(h, "username")), "") ==
	    0);
	CHECK(uuid_ok(json_string_value(json_object_get(h, "msg_id"))));
	CHECK(date_ok(json_string_value(json_object_get(h, "date"))));
	json_object_foreach(h, k, v) {
		static const char *order[] = { "msg_id", "session",
		    "username", "date", "msg_type", "version" };
		if (n >= 6 || strcmp(k, order[n++]) != 0)
			ok = 0;
	}
	CHECK(ok);
	json_decref(h);

	h = jmsg_header_new("x", "s1", "u1");
	CHECK(strcmp(json_string_value(json_object_get(h, "session")), "s1") ==
	    0);
	CHECK(strcmp(json_string_value(json_object_get(h, "username")),
	    "u1") == 0);
	json_decref(h);
	CHECK(jmsg_header_new("bad\xff", NULL, NULL) == NULL);
}

static int
uuid_ok(const char *u)
{
	size_t	i;

	if (u == NULL || strlen(u) != 36)
		return (0);
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (u[i] != '-')
				return (0);
		} else if (!isdigit((unsigned char)u[i]) &&
		    (u[i] < 'a' || u[i] > 'f'))
			return (0);
	}
	return (u[14] == '4' && strchr("89ab", u[19]) != NULL);
}

static int
cmp_str(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

static void
test_ids(void)
{
	enum { N = 10000 };
	char	**ids, id[40];
	int	  i, bad = 0, dups = 0;

	ids = xcalloc(N, sizeof *ids);
	for (i = 0; i < N; i++) {
		memset(id, 'x', sizeof id);
		jmsg_new_id(id);
		if (!uuid_ok(id))
			loop_fail(&bad, "bad uuid %s", id);
		ids[i] = xstrdup(id);
	}
	qsort(ids, N, sizeof *ids, cmp_str);
	for (i = 1; i < N; i++) {
		if (strcmp(ids[i - 1], ids[i]) == 0)
			loop_fail(&dups, "duplicate uuid %s", ids[i]);
	}
	for (i = 0; i < N; i++)
		free(ids[i]);
	free(ids);
	CHECK(bad == 0);
	CHECK(dups == 0);
}

static void
test_roundtrip(void)
{
	static const char	 parent[] =
	    "{ \"z\" : 1,\"msg_id\":  \"p1\" ,\n\t\"a\":\"\\u00e9\"  }";
	struct sign		*s;
	struct jmsg_out		 out;
	struct jmsg		*m, *r;
	zmsg_t			*ids, *bufs, *z, *copy;
	zframe_t		*pf;
	json_t			*content, *metadata;
	char			*before, *after, *cause = NULL;
	size_t			 total;

	s = sign_new("hmac-sha256", KEY, strlen(KEY), NULL);
	ids = zmsg_new();
	zmsg_addmem(ids, "\0\x01\xff", 3);
	zmsg_addmem(ids, "", 0);
	bufs = zmsg_new();
	zmsg_addmem(bufs, "\0bin\0", 5);
	zmsg_addmem(bufs, "", 0);
	content = json_pack("{s:s, s:[i, f, n, b]}", "code", "print('é')",
	    "n", 1, 2.5, 1);
	metadata = json_pack("{s:i}", "a", 1);
	pf = zframe_new(parent, strlen(parent));
	before = json_dumps(content, JSON_COMPACT);

	memset(&out, 0, sizeof out);
	out.ids = ids;
	out.msg_type = "execute_request";
	out.session = "sess-1";
	out.username = "alice";
	out.parent_raw = pf;
	out.metadata = metadata;
	out.content = content;
	out.buffers = bufs;
	z = jmsg_encode(s, &out);
	CHECK(z != NULL && zmsg_size(z) == 10);

	/* Borrowed inputs are untouched. */
	after = json_dumps(content, JSON_COMPACT);
	CHECK(strcmp(before, after) == 0);
	CHECK(content->refcount == 1 && metadata->refcount == 1);
	CHECK(zmsg_size(ids) == 2 && zmsg_size(bufs) == 2);
	CHECK(frame_is_str(pf, parent));

	/* Frame by frame. */
	CHECK(frame_is(zmsg_nth(z, 0), "\0\x01\xff", 3));
	CHECK(frame_is(zmsg_nth(z, 1), "", 0));
	CHECK(frame_is_str(zmsg_nth(z, 2), PROTOCOL_DELIM));
	CHECK(zframe_size(zmsg_nth(z, 3)) == 64);
	CHECK(frame_is_str(zmsg_nth(z, 5), parent));
	CHECK(frame_is_str(zmsg_nth(z, 6), "{\"a\":1}"));
	CHECK(frame_is_str(zmsg_nth(z, 7), after));
	CHECK(memchr(zframe_data(zmsg_nth(z, 4)), ' ',
	    zframe_size(zmsg_nth(z, 4))) == NULL);
	CHECK(frame_is(zmsg_nth(z, 8), "\0bin\0", 5));
	CHECK(frame_is(zmsg_nth(z, 9), "", 0));
	total = zmsg_content_size(z);

	copy = zmsg_dup(z);
	m = jmsg_decode(&z, s, 0, &cause);
	CHECK(m != NULL && z == NULL && cause == NULL);
	if (m == NULL) {
		printf("  (cause %s)\n", cause);
		goto out;
	}
	CHECK(m->size == total);
	CHECK(zmsg_size(m->ids) == 2);
	CHECK(frame_is(zmsg_nth(m->ids, 0), "\0\x01\xff", 3));
	CHECK(frame_is(zmsg_nth(m->ids, 1), "", 0));
	CHECK(zmsg_size(m->buffers) == 2);
	CHECK(frame_is(zmsg_nth(m->buffers, 0), "\0bin\0", 5));
	CHECK(strcmp(m->msg_type, "execute_request") == 0);
	CHECK(strcmp(m->session, "sess-1") == 0);
	CHECK(strcmp(m->username, "alice") == 0);
	CHECK(uuid_ok(m->msg_id));
	CHECK(frame_is(m->header_raw, zframe_data(zmsg_nth(copy, 4)),
	    zframe_size(zmsg_nth(copy, 4))));
	CHECK(json_equal(m->content, content));
	CHECK(json_equal(m->metadata, metadata));
	CHECK(strcmp(json_string_value(json_object_get(m->parent, "msg_id")),
	    "p1") == 0);

	/* A reply's parent is the request header, byte for byte. */
	memset(&out, 0, sizeof out);
	out.ids = m->ids;
	out.msg_type = "execute_reply";
	out.session = m->session;
	out.parent_raw = m->header_raw;
	z = jmsg_encode(s, &out);
	CHECK(z != NULL && zmsg_size(z) == 8);
	CHECK(frame_is(zmsg_nth(z, 5), zframe_data(m->header_raw),
	    zframe_size(m->header_raw)));
	r = jmsg_decode(&z, s, 0, NULL);
	CHECK(r != NULL && json_equal(r->parent, m->header));
	CHECK(r != NULL && strcmp(r->msg_id, m->msg_id) != 0);
	CHECK(r != NULL && zmsg_size(r->buffers) == 0);
	CHECK(r != NULL && strcmp(r->username, "") == 0);
	jmsg_destroy(&r);
	jmsg_destroy(&m);
	CHECK(m == NULL);
	jmsg_destroy(&m);
	jmsg_destroy(NULL);
out:
	zmsg_destroy(&copy);
	free(before);
	free(after);
	free(cause);
	zframe_destroy(&pf);
	json_decref(content);
	json_decref(metadata);
	zmsg_destroy(&ids);
	zmsg_destroy(&bufs);
	sign_destroy(&s);
}

static void
test_encode_edges(void)
{
	struct sign	*s, *u;
	struct jmsg_out	 out;
	struct jmsg	*m;
	zmsg_t		*ids, *z;
	json_t		*bad;
	int		 i;

	s = sign_new(NULL, KEY, strlen(KEY), NULL);
	u = sign_new(NULL, "", 0, NULL);

	/* Defaults: no ids, {} for parent, metadata and content. */
	memset(&out, 0, sizeof out);
	out.msg_type = "status";
	z = jmsg_encode(s, &out);
	CHECK(z != NULL && zmsg_size(z) == 6);
	CHECK(frame_is_str(zmsg_nth(z, 0), PROTOCOL_DELIM));
	for (i = 3; i < 6; i++)
		CHECK(frame_is_str(zmsg_nth(z, i), "{}"));
	m = jmsg_decode(&z, s, 0, NULL);
	CHECK(m != NULL && m->ids != NULL && zmsg_size(m->ids) == 0);
	CHECK(m != NULL && m->buffers != NULL && zmsg_size(m->buffers) == 0);
	CHECK(m != NULL && json_object_size(m->parent) == 0);
	jmsg_destroy(&m);

	/* A topic replaces the ids. */
	ids = zmsg_new();
	zmsg_addstr(ids, "ignored");
	out.ids = ids;
	out.topic = "kernel.abc.status";
	z = jmsg_encode(s, &out);
	CHECK(z != NULL && zmsg_size(z) == 7);
	CHECK(frame_is_str(zmsg_nth(z, 0), "kernel.abc.status"));
	CHECK(frame_is_str(zmsg_nth(z, 1), PROTOCOL_DELIM));
	CHECK(decode_ok(z, s));
	zmsg_destroy(&ids);

	/* Unsigned: an empty signature frame. */
	memset(&out, 0, sizeof out);
	out.msg_type = "status";
	z = jmsg_encode(u, &out);
	CHECK(z != NULL && zframe_size(zmsg_nth(z, 1)) == 0);
	CHECK(decode_ok(z, u));

	/* What cannot be sent is refused, not sent broken. */
	bad = json_array();
	out.content = bad;
	CHECK(jmsg_encode(s, &out) == NULL);
	out.content = NULL;
	out.metadata = bad;
	CHECK(jmsg_encode(s, &out) == NULL);
	json_decref(bad);
	out.metadata = NULL;
	bad = json_pack("{s:o}", "s", json_string_nocheck("\xff\xfe"));
	out.content = bad;
	CHECK(jmsg_encode(s, &out) == NULL);
	json_decref(bad);
	out.content = NULL;
	out.session = "\xc3";
	CHECK(jmsg_encode(s, &out) == NULL);

	sign_destroy(&s);
	sign_destroy(&u);
}

static void
test_rejects(void)
{
	const char	*good[4] = { "{\"msg_type\":\"t\",\"msg_id\":\"1\"}",
			    "{}", "{}", "{}" };
	const char	*good2[4] = { "{\"msg_type\":\"t\",\"msg_id\":\"2\"}",
			    "{}", "{}", "{}" };
	const char	*good3[4] = { "{\"msg_type\":\"t\",\"msg_id\":\"3\"}",
			    "{}", "{}", "{}" };
	struct sign	*s;
	zmsg_t		*z, *z2;
	zframe_t	*f;
	char		 hex[65], *cause = NULL;
	size_t		 size;
	struct jmsg	*m;

	s = sign_new(NULL, KEY, strlen(KEY), NULL);

	/* Bad signatures do not poison the cache for the real one. */
	z = craft(s, NULL, good);
	memcpy(hex, zframe_data(zmsg_nth(z, 2)), 64);
	hex[64] = '\0';
	zmsg_destroy(&z);
	hex[10] = (hex[10] == '0') ? '1' : '0';
	CHECK(decode_fails(craft(s, hex, good), s, 0, "bad signature"));
	CHECK(decode_fails(craft(s, "", good), s, 0,
	    "signature of 0 bytes, expected 64"));
	hex[63] = '\0';
	CHECK(decode_fails(craft(s, hex, good), s, 0,
	    "signature of 63 bytes, expected 64"));
	z = craft(s, NULL, good);
	z2 = zmsg_dup(z);
	CHECK(decode_ok(z, s));
	CHECK(decode_fails(z2, s, 0, "replayed signature"));

	/* Framing. */
	z = craft(s, NULL, good);
	f = zmsg_nth(z, 1);
	zmsg_remove(z, f);
	zframe_destroy(&f);
	CHECK(decode_fails(z, s, 0, "no <IDS|MSG> delimiter"));
	z = zmsg_new();
	CHECK(decode_fails(z, s, 0, "no <IDS|MSG> delimiter"));
	z = zmsg_new();
	zmsg_addstr(z, PROTOCOL_DELIM);
	zmsg_addstr(z, "sig");
	zmsg_addstr(z, "{}");
	zmsg_addstr(z, "{}");
	CHECK(decode_fails(z, s, 0, "5 frames needed after delimiter, got 3"));
	z = zmsg_new();
	zmsg_addstr(z, PROTOCOL_DELIM "x");
	CHECK(decode_fails(z, s, 0, "no <IDS|MSG> delimiter"));
	z = NULL;
	m = jmsg_decode(&z, s, 0, &cause);
	CHECK(m == NULL && cause != NULL);
	free(cause);
	CHECK(jmsg_decode(NULL, s, 0, NULL) == NULL);

	/* Size: the limit is inclusive, and checked before anything else. */
	z = craft(s, NULL, good2);
	size = zmsg_content_size(z);
	z2 = zmsg_dup(z);
	cause = xprintf("message of %zu bytes exceeds limit %zu", size,
	    size - 1);
	CHECK(decode_fails(z, s, size - 1, cause));
	free(cause);
	CHECK(decode_ok(z2, s));
	/* Never touched: uninitialised bytes would upset valgrind. */
	f = zframe_new(NULL, PROTOCOL_MAX_DEFAULT + 1);
	z = zmsg_new();
	zmsg_append(z, &f);
	CHECK(decode_fails(z, s, 0, "exceeds limit"));

	/* The first delimiter counts; a later one is just a buffer. */
	z = craft(s, NULL, good3);
	zmsg_addstr(z, PROTOCOL_DELIM);
	m = jmsg_decode(&z, s, 0, NULL);
	CHECK(m != NULL && zmsg_size(m->ids) == 1 &&
	    zmsg_size(m->buffers) == 1);
	jmsg_destroy(&m);

	sign_destroy(&s);
}

static void
test_rejects_json(void)
{
	static const struct {
		const char	*frames[4];
		const char	*want;
	} cases[] = {
		{ { "[1]", "{}", "{}", "{}" },
		  "header is not a JSON object: got an array" },
		{ { "{\"msg_type\":\"t\",\"msg_id\":\"1\"}", "null", "{}",
		    "{}" }, "parent_header is not a JSON object: " },
		{ { "{\"msg_type\":\"t\",\"msg_id\":\"1\"}", "{}", "{", "{}" },
		  "metadata is not a JSON object: " },
		{ { "{\"msg_type\":\"t\",\"msg_id\":\"1\"}", "{}", "{}", "42" },
		  "content is not a JSON object: " },
		{ { "{\"msg_type\":\"t\",\"msg_id\":\"1\"}", "{}", "{}",
		    "{\"x\":NaN}" }, "content is not a JSON object: " },
		{ { "{\"msg_type\":\"t\",\"msg_id\":\"1\"}", "{}", "{}",
		    "{\"x\":Infinity}" }, "content is not a JSON object: " },
		{ { "{\"msg_type\":\"t\",\"msg_id\":\"1\"}", "{}", "{}",
		    "{\"x\":\"\xff\"}" }, "content is not a JSON object: " },
		{ { "{\"msg_type\":\"t\",\"msg_id\":\"1\"}", "{}", "{}",
		    "{} {}" }, "content is not a JSON object: " },
		{ { "", "{}", "{}", "{}" },
		  "header is not a JSON object: empty frame" },
		{ { "{\"msg_id\":\"1\"}", "{}", "{}", "{}" },
		  "header has no string msg_type" },
		{ { "{\"msg_type\":7,\"msg_id\":\"1\"}", "{}", "{}", "{}" },
		  "header has no string msg_type" },
		{ { "{\"msg_type\":\"t\"}", "{}", "{}", "{}" },
		  "header has no string msg_id" },
		{ { "{\"msg_type\":\"t\\u0000x\",\"msg_id\":\"1\"}", "{}",
		    "{}", "{}" }, "header msg_type contains a NUL" },
		{ { "{\"msg_type\":\"t\",\"msg_id\":\"1\",\"session\":"
		    "\"a\\u0000\"}", "{}", "{}", "{}" },
		  "header session contains a NUL" },
	};
	const char	*opt[4] = {
		("{\"msg_type\":\"t\",\"msg_id\":\"1\",\"session\":5}"),
		"{}", "{}", "{\"code\":\"a\\u0000b\"}"
	};
	struct sign	*s;
	struct jmsg	*m;
	zmsg_t		*z;
	char		*deep, *cause = NULL;
	size_t		 i;
	int		 ok;

	s = sign_new(NULL, KEY, strlen(KEY), NULL);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ok = decode_fails(craft(s, NULL, cases[i].frames), s, 0,
		    cases[i].want);
		if (!ok)
			printf("  (json case %zu)\n", i);
		CHECK(ok);
	}

	/* Optional strings default to ""; NULs in content are data. */
	z = craft(s, NULL, opt);
	m = jmsg_decode(&z, s, 0, NULL);
	CHECK(m != NULL && strcmp(m->session, "") == 0 &&
	    strcmp(m->username, "") == 0);
	CHECK(m != NULL && json_string_length(json_object_get(m->content,
	    "code")) == 3);
	jmsg_destroy(&m);

	/* Deep nesting is refused, not recursed into. */
	deep = xmalloc(200001);
	memset(deep, '[', 200000);
	deep[200000] = '\0';
	opt[3] = deep;
	z = craft(s, NULL, opt);
	m = jmsg_decode(&z, s, 0, &cause);
	CHECK(m == NULL && cause != NULL &&
	    strstr(cause, "content is not a JSON object") != NULL);
	free(cause);
	free(deep);
	sign_destroy(&s);
}

/* Verifies message number i of the cache test: 0 accepted, -1 refused. */
static int
cache_try(struct sign *s, int i)
{
	zframe_t	*parts[4];
	char		 buf[64], hex[65];
	int		 rv, j;

	snprintf(buf, sizeof buf, "{\"i\":%d}", i);
	parts[0] = frame_str(buf);
	for (j = 1; j < 4; j++)
		parts[j] = frame_str("{}");
	sign_compute(s, parts, hex);
	rv = sign_verify(s, hex, 64, parts, NULL);
	for (j = 0; j < 4; j++)
		zframe_destroy(&parts[j]);
	return (rv);
}

/*
 * After CACHE_CAP + EXTRA messages the oldest EXTRA are forgotten and the
 * rest still refused; taking EXTRA more forgets the next oldest.
 */
static void
test_cache(void)
{
	enum { EXTRA = 100, ROUND = CACHE_CAP + EXTRA };
	struct sign		*s;
	struct mallinfo2	 before, after;
	int			 i, accepted = 0, refused = 0, again = 0;

	s = sign_new(NULL, "k", 1, NULL);
	for (i = 0; i < ROUND; i++)
		accepted += (cache_try(s, i) == 0);
	CHECK(accepted == ROUND);
	for (i = EXTRA; i < ROUND; i++)
		refused += (cache_try(s, i) == -1);
	CHECK(refused == CACHE_CAP);
	for (i = 0; i < EXTRA; i++)
		again += (cache_try(s, i) == 0);
	CHECK(again == EXTRA);
	CHECK(cache_try(s, EXTRA) == 0);
	CHECK(cache_try(s, ROUND - 1) == -1);
	CHECK(cache_try(s, 0) == -1);

	/* Full now: more traffic must not grow the heap. */
	before = mallinfo2();
	accepted = 0;
	for (i = ROUND; i < 4 * ROUND; i++)
		accepted += (cache_try(s, i) == 0);
	after = mallinfo2();
	CHECK(accepted == 3 * ROUND);
	/* Meaningful natively; under sanitizers the numbers stay flat. */
	CHECK(after.uordblks <= before.uordblks + 64 * 1024);
	sign_destroy(&s);
}

/*
 * What a garbage frame is, so the test knows what decode should say
 * without asking the code under test.
 */
enum kind {
	K_DELIM,	/* <IDS|MSG> */
	K_JUNK,		/* not a JSON object */
	K_OBJECT,	/* a JSON object, not a usable header */
	K_HEADER	/* a usable header, unique per message */
};

static const char *junk[] = {
	"", "[", "[]", "null", "42", "\"s\"", "{", "{\"a\":}", "{\"a\":NaN}",
	"{\"a\":\"\xff\"}", "{\"a\":1,}", "{} x", "{\"a\":\"\\ud800\"}",
	"{'a':1}", "{\"a\":01}", "\xef\xbb\xbf{}", "{\"a\"\0:1}",
	"{\"a\":1e999}", "{\"a\":-}", "{\"\\u\":1}", "}", "{\"a\":[1,2}"
};
static const char *objects[] = {
	"{}", "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}",
	"{\"msg_type\":1,\"msg_id\":\"x\"}", "{\"msg_type\":\"t\"}",
	"{\"msg_id\":\"x\",\"msg_type\":\"a\\u0000b\"}", " {\"a\":true} ",
	"{\"msg_type\":\"t\",\"msg_id\":\"x\",\"session\":\"\\u0000\"}"
};

/*
 * A random message of 0-12 frames for signer s (keyed or not). Sets *valid
 * when it should decode, and then how many ids and buffers it has.
 */
static zmsg_t *
garbage(struct sign *s, int n, int *valid, size_t *nids, size_t *nbufs)
{
	zframe_t	*f[13], *parts[4];
	enum kind	 kind[13];
	int		 pick[13];
	char		 hex[65], buf[96];
	uint8_t		 bytes[4096];
	size_t		 nf, i, len, d;
	int		 signed_ok;

	/* Choose frame types; a third of the time, something near valid. */
	nf = rng() % 13;
	for (i = 0; i < nf; i++)
		pick[i] = (int)(rng() % 5);
	if (nf >= 6 && rng() % 3 == 0) {
		d = rng() % (nf - 5);
		pick[d] = 0;
		pick[d + 1] = 1;
		pick[d + 2] = 4;
		pick[d + 3] = pick[d + 4] = pick[d + 5] = 3;
		if (rng() % 4 == 0)
			pick[rng() % nf] = (int)(rng() % 5);
	}

	for (i = 0; i < nf; i++) {
		switch (pick[i]) {
		case 0:
			kind[i] = K_DELIM;
			f[i] = frame_str(PROTOCOL_DELIM);
			break;
		case 1:
			kind[i] = K_JUNK;
			len = (rng() % 8 == 0) ? rng() % 4096 : rng() % 64;
			for (d = 0; d < len; d++)
				bytes[d] = (uint8_t)rng();
			/* Cannot start an object or be a delimiter. */
			if (len > 0 && (bytes[0] == '{' ||
			    isspace(bytes[0]) || bytes[0] == '<'))
				bytes[0] = 'x';
			f[i] = zframe_new(bytes, len);
			break;
		case 2:
			kind[i] = K_JUNK;
			d = rng() % (sizeof junk / sizeof junk[0]);
			len = (d == 16) ? 8 : strlen(junk[d]);	/* has a NUL */
			f[i] = zframe_new(junk[d], len);
			break;
		case 3:
			kind[i] = K_OBJECT;
			f[i] = frame_str(objects[rng() %
			    (sizeof objects / sizeof objects[0])]);
			break;
		default:
			kind[i] = K_HEADER;
			snprintf(buf, sizeof buf, "{\"msg_type\":\"t\","
			    "\"msg_id\":\"g%d.%zu\"}", n, i);
			f[i] = frame_str(buf);
			break;
		}
	}

	/* Find the delimiter the way the protocol says: the first one. */
	for (d = 0; d < nf && kind[d] != K_DELIM; d++)
		;
	signed_ok = !sign_enabled(s);
	if (d + 6 <= nf && sign_enabled(s) && rng() % 4 != 0) {
		for (i = 0; i < 4; i++)
			parts[i] = f[d + 2 + i];
		sign_compute(s, parts, hex);
		zframe_destroy(&f[d + 1]);
		f[d + 1] = frame_str(hex);
		kind[d + 1] = K_JUNK;
		signed_ok = 1;
	}
	*valid = (d + 6 <= nf && signed_ok && kind[d + 2] == K_HEADER);
	for (i = d + 3; *valid && i < d + 6; i++)
		*valid = (kind[i] == K_OBJECT || kind[i] == K_HEADER);
	*nids = d;
	*nbufs = nf - d - 6;
	return (zmsg_make(f, nf));
}

static void
test_garbage(void)
{
	enum { N = 20000 };
	struct sign	*keyed, *unkeyed, *s;
	struct jmsg	*m;
	zmsg_t		*z;
	char		*cause;
	size_t		 nids, nbufs;
	int		 n, valid, wrong = 0, ok = 0, bad = 0;

	keyed = sign_new(NULL, KEY, strlen(KEY), NULL);
	unkeyed = sign_new(NULL, "", 0, NULL);
	for (n = 0; n < N; n++) {
		s = (n % 2 == 0) ? keyed : unkeyed;
		z = garbage(s, n, &valid, &nids, &nbufs);
		cause = NULL;
		m = jmsg_decode(&z, s, 0, &cause);
		if ((m != NULL) != valid || z != NULL ||
		    (m == NULL && cause == NULL))
			loop_fail(&wrong, "garbage %d: valid %d, got %s", n,
			    valid, m != NULL ? "success" : cause);
		if (m != NULL && (strcmp(m->msg_type, "t") != 0 ||
		    !json_is_object(m->content) ||
		    zmsg_size(m->ids) != nids ||
		    zmsg_size(m->buffers) != nbufs))
			loop_fail(&wrong, "garbage %d: wrong fields", n);
		if (m != NULL)
			ok++;
		else
			bad++;
		jmsg_destroy(&m);
		free(cause);
	}
	CHECK(wrong == 0);
	/* The generator must exercise both outcomes to mean anything. */
	CHECK(ok > 1000 && bad > N / 2);
	sign_destroy(&keyed);
	sign_destroy(&unkeyed);
}

/*
 * Mutations of a valid signed message (frames: 2 ids, delimiter, signature,
 * header, parent, metadata, content, 2 buffers). Touching anything from the
 * delimiter to content must be refused; ids and buffers are not signed.
 */
static void
test_mutations(void)
{
	enum { N = 6000, NF = 10 };
	struct sign	*s;
	zframe_t	*f[NF + 1], *tmp;
	zmsg_t		*z;
	size_t		 nf, i, j, size;
	int		 n, expect, kind, wrong = 0, replay = 0;

	s = sign_new(NULL, KEY, strlen(KEY), NULL);
	for (n = 0; n < N; n++) {
		z = encode_test(s, "execute_request");
		nf = zmsg_take(&z, f, NF);
		kind = (int)(rng() % 7);
		i = 2 + rng() % 6;		/* delimiter .. content */
		expect = 0;
		switch (kind) {
		case 0:				/* flip a bit */
			size = zframe_size(f[i]);
			zframe_data(f[i])[rng() % size] ^= 1 << (rng() % 8);
			break;
		case 1:				/* truncate */
			size = zframe_size(f[i]);
			tmp = zframe_new(zframe_data(f[i]), rng() % size);
			zframe_destroy(&f[i]);
			f[i] = tmp;
			break;
		case 2:				/* drop */
			zframe_destroy(&f[i]);
			memmove(&f[i], &f[i + 1], (nf - i - 1) * sizeof *f);
			nf--;
			break;
		case 3:				/* insert before i */
			i = 3 + rng() % 5;
			memmove(&f[i + 1], &f[i], (nf - i) * sizeof *f);
			f[i] = frame_str("{}");
			nf++;
			break;
		case 4:				/* swap two signed frames */
			j = SIGNED_FIRST + (i + 1 + rng() % 3) % 4;
			i = SIGNED_FIRST + i % 4;
			tmp = f[i];
			f[i] = f[j];
			f[j] = tmp;
			break;
		case 5:				/* unsigned: id/buffer */
			i = (rng() % 2) ? rng() % 2 : 8 + rng() % 2;
			size = zframe_size(f[i]);
			zframe_data(f[i])[rng() % size] ^= 0x80;
			expect = 1;
			break;
		default:			/* unsigned: extra buffer */
			f[nf++] = frame_str("extra");
			expect = 1;
			break;
		}
		z = zmsg_make(f, nf);
		if (decodes(zmsg_dup(z), s) != expect)
			loop_fail(&wrong, "mutation %d kind %d frame %zu: "
			    "expected %s", n, kind, i,
			    expect ? "success" : "failure");
		/* Once seen, a resend of it must be refused as a replay. */
		if (expect && decodes(z, s))
			loop_fail(&replay, "mutation %d replay accepted", n);
		if (!expect)
			zmsg_destroy(&z);
	}
	CHECK(wrong == 0);
	CHECK(replay == 0);
	sign_destroy(&s);
}

/*
 * jmsg_encode writes plain headers itself and leaves the rest to jansson:
 * either way the frame is what jansson makes of the header object (keys in
 * jmsg_header_new's order, compact), so parsing and dumping it again gives
 * the same bytes; a given msg_id is kept; a string needing escapes is
 * escaped.
 */
static void
test_header_frame(void)
{
	static const char *sessions[] = { "plain-1", "quote\"back\\slash",
	    "tab\tand é" };
	struct jmsg_out	 out;
	struct sign	*s;
	zmsg_t		*z;
	zframe_t	*f;
	json_t		*h;
	char		*again;
	size_t		 i;

	s = sign_new("hmac-sha256", "k", 1, NULL);
	for (i = 0; i < nitems(sessions); i++) {
		memset(&out, 0, sizeof out);
		out.msg_type = "status";
		out.session = sessions[i];
		out.username = i == 0 ? NULL : "bob";
		out.msg_id = i == 1 ? "given-id" : NULL;
		z = jmsg_encode(s, &out);
		CHECK(z != NULL);
		if (z == NULL)
			continue;
		f = zmsg_nth(z, 2);
		h = json_loadb((const char *)zframe_data(f), zframe_size(f), 0,
		    NULL);
		CHECK(h != NULL && json_object_size(h) == 6);
		again = h != NULL ? json_dumps(h, JSON_COMPACT) : NULL;
		CHECK(again != NULL && frame_is_str(f, again));
		CHECK(h != NULL && strcmp(json_string_value(json_object_get(h,
		    "session")), sessions[i]) == 0);
		CHECK(h != NULL && strcmp(json_string_value(json_object_get(h,
		    "username")), i == 0 ? "" : "bob") == 0);
		if (i == 1)
			CHECK(h != NULL && strcmp(json_string_value(
			    json_object_get(h, "msg_id")), "given-id") == 0);
		else
			CHECK(h != NULL && uuid_ok(json_string_value(
			    json_object_get(h, "msg_id"))));
		CHECK(h != NULL &&
		    date_ok(json_string_value(json_object_get(h, "date"))));
		free(again);
		json_decref(h);
		zmsg_destroy(&z);
	}
	sign_destroy(&s);
}

int
main(void)
{
	test_fatal();
	test_xmalloc();
	test_vectors();
	test_sign_misc();
	test_header();
	test_header_frame();
	test_ids();
	test_roundtrip();
	test_encode_edges();
	test_rejects();
	test_rejects_json();
	test_cache();
	test_garbage();
	test_mutations();
	test_jwrite();

	return (check_report());
}

/* jwrite writes what json_dumps writes, byte for byte, in both modes. */
static void
test_jwrite(void)
{
	static const char *texts[] = {
		"{}", "[]", "[{},[],{\"a\":[]}]", "{\"k\":null,\"t\":true,\"f\":false}",
		"{\"s\":\"plain\",\"q\":\"\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0001\\u001f\\u007f\"}",
		"{\"u\":\"\\u00e9 \\u2603 \\ud83d\\ude00 \\uffff\"}",
		"[0,-1,9223372036854775807,-9223372036854775808,42]",
		("[0.1,1.5,-0.0,1.0,1e20,1e-7,123456789012345678.0,5e-324,"
		"1.7976931348623157e308,2.5e+100,100.0,0.30000000000000004]"),
		"{\"nested\":{\"a\":{\"b\":[1,{\"c\":\"d\"}]}},\"z\":\"\\u00e9\"}",
		"{\"\\u00e9key\":1,\"a\\nb\":\"x\"}",
	};
	static const size_t	 flags[] = { JSON_COMPACT,
	    JSON_COMPACT | JSON_ENSURE_ASCII };
	struct jwrite		 w;
	json_t			*j;
	char			*want, *got;
	size_t			 i, f, len;

	for (i = 0; i < nitems(texts); i++) {
		j = json_loads(texts[i], JSON_DECODE_ANY, NULL);
		CHECK(j != NULL);
		if (j == NULL)
			continue;
		for (f = 0; f < nitems(flags); f++) {
			want = json_dumps(j, flags[f] | JSON_ENCODE_ANY);
			jwrite_init(&w, f ? JWRITE_ASCII : 0, NULL);
			jwrite_json(&w, j);
			got = jwrite_take(&w, &len);
			CHECK(!w.bad && want != NULL && strcmp(got, want) == 0 &&
			    len == strlen(want));
			if (want != NULL && strcmp(got, want) != 0)
				printf("jwrite: %s\n  json_dumps: %s\n", got, want);
			free(want);
			free(got);
		}
		json_decref(j);
	}
	/* Not UTF-8 (json_string_nocheck): refused, or replaced on asking. */
	j = json_pack("[o]", json_string_nocheck("a\xff\xc3" "b"));
	jwrite_init(&w, 0, NULL);
	jwrite_json(&w, j);
	CHECK(w.bad);
	jwrite_free(&w);
	jwrite_init(&w, JWRITE_ASCII | JWRITE_REPLACE, NULL);
	jwrite_json(&w, j);
	got = jwrite_take(&w, NULL);
	CHECK(w.bad && strcmp(got, "[\"a\\uFFFD\\uFFFDb\"]") == 0);
	free(got);
	json_decref(j);
}
