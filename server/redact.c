/* redact.c: secrets out of what the daemon writes to its log and audit log. */
/*
 * Code in a session prints what it likes, tokens included. What a client
 * receives is its own business and is never touched; but the daemon's log
 * and the audit log outlive the session and are read by operators, so any
 * text from a session passes through redact() first. Each rule below is
 * one row; a match (or one group of it) becomes [REDACTED:rule], so a
 * reader knows something was there and what kind of thing it was.
 *
 * The rules are POSIX extended regular expressions (regcomp), plus a check
 * function for shapes a regex alone cannot tell (high entropy). Operators
 * add their own with `redact-pattern = NAME REGEX` lines in the config.
 *
 * Every execute's audit event passes twenty-odd strings through every
 * rule, most of them the same each time (the session's runtime, names,
 * kinds, statuses): the rules cost more than the rest of the execute's
 * path in the daemon (docs/BENCHMARKS.md). So the main thread remembers
 * the short strings it found clean, in a small direct-mapped table
 * compared byte for byte: a string seen clean is clean again, since the
 * rules only change with redact_init. Only clean strings are kept (a
 * remembered string holds no secret by definition), and only on the
 * thread that called redact_init (the heartbeat thread logs too).
 */

#include <sys/types.h>

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define REDACT_MARK	"[REDACTED:"
#define REDACT_NAME_MAX	32
#define REDACT_MAX_RULES 64
#define REDACT_MEMO	512	/* clean strings remembered */
#define REDACT_MEMO_LEN	256	/* longest string remembered */

typedef int redact_check_fn(const char *, size_t);

static redact_check_fn redact_high_entropy;
static void	redact_memo_clear(void);

/*
 * Legend: rule name (in the marker); the expression; REG_ICASE or 0; which
 * group is the secret (0: the whole match; the rest, a header name or a
 * key, stays readable); a check the matched text must also pass, or NULL.
 * Order matters: whole-block and header rules first, then fixed shapes,
 * then key=value pairs, then the entropy catch-all. Text already replaced
 * by an earlier rule is left alone.
 */
static const struct redact_row {
	const char	*name;
	const char	*regex;
	int		 flags;
	int		 group;
	redact_check_fn	*check;
} redact_table[] = {
	{ "private-key", "-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----"
	  "([^-]|-[^-])*(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----)?",
	  0, 0, NULL },
	{ "authorization", "(proxy-)?authorization[ \t]*:[ \t]*([^\r\n\"]+)",
	  REG_ICASE, 2, NULL },
	{ "aws-access-key", "(AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)"
	  "[A-Z0-9]{16}", 0, 0, NULL },
	{ "aws-secret-key", "aws_secret_access_key[\"']?[ \t]*[=:][ \t]*"
	  "[\"']?([A-Za-z0-9/+=]{40})", REG_ICASE, 1, NULL },
	{ "gcp-api-key", "AIza[0-9A-Za-z_-]{35}", 0, 0, NULL },
	{ "gcp-oauth-token", "ya29\\.[0-9A-Za-z_-]{20,}", 0, 0, NULL },
	{ "azure-storage-key", "AccountKey=([A-Za-z0-9+/]{86}==)", 0, 1,
	  NULL },
	{ "azure-sas", "[?&]sig=([A-Za-z0-9%+/=]{30,})", 0, 1, NULL },
	{ "github-token", "gh[pousr]_[A-Za-z0-9]{36,}", 0, 0, NULL },
	{ "slack-token", "xox[abprs]-[A-Za-z0-9-]{10,}", 0, 0, NULL },
	{ "api-key", "sk-[A-Za-z0-9_-]{20,}", 0, 0, NULL },
	{ "jwt", "eyJ[A-Za-z0-9_-]{4,}\\.eyJ[A-Za-z0-9_-]{4,}\\."
	  "[A-Za-z0-9_-]{8,}", 0, 0, NULL },
	{ "password", "(password|passwd|pwd|secret|token|api[_-]?key|"
	  "access[_-]?key)[\"']?[ \t]*[=:][ \t]*(\"[^\"\r\n]+\"|'[^'\r\n]+'|"
	  "[^ \t\r\n&;,\"']+)", REG_ICASE, 2, NULL },
	{ "high-entropy", "[A-Za-z0-9+/_=-]{32,}", 0, 0, redact_high_entropy },
};

struct redact_rule {
	char		 name[REDACT_NAME_MAX + 1];
	regex_t		 re;
	int		 group;
	redact_check_fn	*check;
};

static struct redact_rule redact_rules[REDACT_MAX_RULES];
static size_t	 redact_nrules;
static int	 redact_ready;

/* A string found clean, by the hash of its bytes mod REDACT_MEMO. */
struct redact_memo {
	size_t		 len;
	char		*s;	/* NULL: empty slot */
};
static struct redact_memo redact_memo[REDACT_MEMO];
static pthread_t	 redact_thread;	/* the one that uses redact_memo */

/*
 * Random keys are dense: over 4.3 bits per character, with upper case,
 * lower case and digits all present. Hex digests (at most 4 bits) and
 * words, paths and identifiers fall below it.
 */
static int
redact_high_entropy(const char *s, size_t len)
{
	u_int	 counts[256] = { 0 };
	int	 upper = 0, lower = 0, digit = 0;
	double	 h = 0, p;
	size_t	 i;

	for (i = 0; i < len; i++) {
		counts[(u_char)s[i]]++;
		upper |= isupper((u_char)s[i]) != 0;
		lower |= islower((u_char)s[i]) != 0;
		digit |= isdigit((u_char)s[i]) != 0;
	}
	if (!upper || !lower || !digit)
		return (0);
	for (i = 0; i < nitems(counts); i++) {
		if (counts[i] == 0)
			continue;
		p = (double)counts[i] / len;
		h -= p * log2(p);
	}
	return (h > 4.3);
}

static int
redact_compile(const char *name, const char *regex, int flags, int group,
    redact_check_fn *check, char **cause)
{
	struct redact_rule	*r;
	char			 err[256];
	int			 rc;

	if (redact_nrules == nitems(redact_rules)) {
		xasprintf(cause, "more than %zu redaction rules", nitems(
		    redact_rules));
		return (-1);
	}
	r = &redact_rules[redact_nrules];
	if ((rc = regcomp(&r->re, regex, REG_EXTENDED | flags)) != 0) {
		regerror(rc, &r->re, err, sizeof err);
		xasprintf(cause, "redact-pattern %s: %s", name, err);
		return (-1);
	}
	if ((size_t)group > r->re.re_nsub) {
		regfree(&r->re);
		xasprintf(cause, "redact-pattern %s: no group %d", name, group);
		return (-1);
	}
	snprintf(r->name, sizeof r->name, "%s", name);
	r->group = group;
	r->check = check;
	redact_nrules++;
	redact_memo_clear();	/* a string clean before may match this */
	return (0);
}

/*
 * An operator's rule: "NAME REGEX", NAME of letters, digits and dashes
 * (it goes in the marker), the regex the rest of the line; the whole
 * match is replaced.
 */
int
redact_add(const char *spec, char **cause)
{
	char	 name[REDACT_NAME_MAX + 1];
	size_t	 n;

	n = strspn(spec, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");
	if (n == 0 || n > REDACT_NAME_MAX || (spec[n] != ' ' &&
	    spec[n] != '\t')) {
		xasprintf(cause, "redact-pattern '%s': expected NAME REGEX "
		    "(NAME: up to %d letters, digits, - or _)", spec,
		    REDACT_NAME_MAX);
		return (-1);
	}
	memcpy(name, spec, n);
	name[n] = '\0';
	spec += n + strspn(spec + n, " \t");
	if (*spec == '\0') {
		xasprintf(cause, "redact-pattern %s: no expression", name);
		return (-1);
	}
	return (redact_compile(name, spec, 0, 0, NULL, cause));
}

static void
redact_memo_clear(void)
{
	size_t	i;

	for (i = 0; i < nitems(redact_memo); i++) {
		free(redact_memo[i].s);
		redact_memo[i].s = NULL;
	}
}

/* FNV-1a: a slot, not a secret; entries compare byte for byte. */
static struct redact_memo *
redact_memo_slot(const char *in, size_t len)
{
	uint64_t	h = 0xcbf29ce484222325ULL;
	size_t		i;

	if (len > REDACT_MEMO_LEN ||
	    !pthread_equal(pthread_self(), redact_thread))
		return (NULL);
	for (i = 0; i < len; i++)
		h = (h ^ (u_char)in[i]) * 0x100000001b3ULL;
	return (&redact_memo[h % REDACT_MEMO]);
}

/* The built-in table, then each operator pattern; once, at start. */
int
redact_init(char *const *patterns, size_t npatterns, char **cause)
{
	const struct redact_row	*row;
	size_t			 i;

	redact_free();
	redact_thread = pthread_self();
	for (i = 0; i < nitems(redact_table); i++) {
		row = &redact_table[i];
		if (redact_compile(row->name, row->regex, row->flags,
		    row->group, row->check, cause) != 0)
			fatalx("built-in redaction rule %s: %s", row->name,
			    *cause);
	}
	for (i = 0; i < npatterns; i++) {
		if (redact_add(patterns[i], cause) != 0) {
			redact_free();
			return (-1);
		}
	}
	redact_ready = 1;
	return (0);
}

void
redact_free(void)
{
	size_t	i;

	for (i = 0; i < redact_nrules; i++)
		regfree(&redact_rules[i].re);
	redact_nrules = 0;
	redact_ready = 0;
	redact_memo_clear();
}

size_t
redact_count(void)
{
	return (redact_nrules);
}

const char *
redact_rule_name(size_t i)
{
	return (i < redact_nrules ? redact_rules[i].name : NULL);
}

struct redact_buf {
	char	*s;
	size_t	 len;
	size_t	 size;
};

static void
redact_put(struct redact_buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->size) {
		b->size = (b->len + n + 1) * 2;
		b->s = xrealloc(b->s, b->size);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* One rule over the whole text: a new string, and how many it replaced. */
static char *
redact_one(const struct redact_rule *r, const char *in, size_t *hits)
{
	struct redact_buf	 b = { NULL, 0, 0 };
	regmatch_t		 m[10];
	const char		*p = in, *s, *e;
	int			 flags = 0;

	redact_put(&b, "", 0);
	while (*p != '\0' && regexec(&r->re, p, nitems(m), m, flags) == 0) {
		if (m[0].rm_eo == m[0].rm_so) {
			/* An operator's rule may match nothing: step on. */
			redact_put(&b, p, 1);
			p++;
			flags = REG_NOTBOL;
			continue;
		}
		if (m[r->group].rm_so == -1) {
			/* The secret's group is optional and absent. */
			redact_put(&b, p, m[0].rm_eo);
			p += m[0].rm_eo;
			flags = REG_NOTBOL;
			continue;
		}
		s = p + m[r->group].rm_so;
		e = p + m[r->group].rm_eo;
		redact_put(&b, p, s - p);
		if (strncmp(s, REDACT_MARK, strlen(REDACT_MARK)) == 0 ||
		    (r->check != NULL && !r->check(s, e - s)))
			redact_put(&b, s, e - s);
		else {
			redact_put(&b, REDACT_MARK, strlen(REDACT_MARK));
			redact_put(&b, r->name, strlen(r->name));
			redact_put(&b, "]", 1);
			(*hits)++;
		}
		redact_put(&b, e, (p + m[0].rm_eo) - e);
		p += m[0].rm_eo;
		flags = REG_NOTBOL;
	}
	redact_put(&b, p, strlen(p));
	return (b.s);
}

/*
 * NULL if the len bytes at in hold no secret (the caller keeps its own
 * text: no copy, the common case of an audit line's strings), else the
 * text with every secret replaced by its marker (the caller frees).
 * *hits, if not NULL, counts the replacements.
 */
char *
redact_changed(const char *in, size_t len, size_t *hits)
{
	struct redact_memo	*m;
	char			*cur, *next;
	size_t			 i, n = 0;

	if (hits != NULL)
		*hits = 0;
	m = redact_ready ? redact_memo_slot(in, len) : NULL;
	if (m != NULL && m->s != NULL && m->len == len &&
	    memcmp(m->s, in, len) == 0)
		return (NULL);
	if (!redact_ready || redact_nrules == 0)
		return (NULL);
	cur = xstrndup(in, len);
	for (i = 0; i < redact_nrules; i++) {
		next = redact_one(&redact_rules[i], cur, &n);
		free(cur);
		cur = next;
	}
	if (n == 0 && strlen(cur) == len && memcmp(cur, in, len) == 0) {
		if (m != NULL) {
			free(m->s);
			m->s = cur;
			m->len = len;
		} else
			free(cur);
		return (NULL);
	}
	if (hits != NULL)
		*hits = n;
	return (cur);
}

/*
 * The text with every secret replaced by its marker; always a new string
 * (the caller frees). *hits, if not NULL, counts the replacements.
 */
char *
redact(const char *in, size_t *hits)
{
	char	*out;

	if ((out = redact_changed(in, strlen(in), hits)) == NULL)
		out = xstrdup(in);
	return (out);
}
