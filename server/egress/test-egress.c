/* test-egress.c: self-test of the egress policy (parse, ceiling, checks). */

#include <sys/socket.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "check.h"
#include "egress/egress.h"

/* check.h's count, with the case's name and the reason it was given. */
#define check(ok, what, detail) do {					\
	int		 check_ok_ = (ok);				\
	const char	*check_why_ = (detail);				\
									\
	check_one(check_ok_, (what), __FILE__, __LINE__);		\
	if (!check_ok_ && check_why_ != NULL)				\
		printf("  because: %s\n", check_why_);			\
} while (0)

/* Legend: input, 1 if it parses, its canonical form (NULL: same). */
static const struct {
	const char	*in;
	int		 ok;
	const char	*canon;
} parse_cases[] = {
	{ "", 1, "" },
	{ "pypi.org:443", 1, NULL },
	{ "PyPI.Org.:443", 1, "pypi.org:443" },
	{ " a.b:80 , c.d:81 ", 1, "a.b:80,c.d:81" },
	{ "*.example.com:443", 1, NULL },
	{ "*:443", 1, NULL },
	{ "*:*", 1, NULL },
	{ "10.1.2.3:5432", 1, NULL },
	{ "10.1.2.3/8:80", 1, "10.0.0.0/8:80" },
	{ "[::1]:80", 1, NULL },
	{ "[2001:db8::1/32]:443", 1, "[2001:db8::/32]:443" },
	{ "::1:80", 0, NULL },
	{ "host", 0, NULL },
	{ "host:", 0, NULL },
	{ "host:0", 0, NULL },
	{ "host:65536", 0, NULL },
	{ "host:80x", 0, NULL },
	{ "host:-1", 0, NULL },
	{ "ho_st:80", 0, NULL },
	{ "-host:80", 0, NULL },
	{ "host-:80", 0, NULL },
	{ "a..b:80", 0, NULL },
	{ "*.:80", 0, NULL },
	{ "*x.com:80", 0, NULL },
	{ "h%0a:80", 0, NULL },
	{ "1.2.3.4/33:80", 0, NULL },
	{ "1.2.3.4/:80", 0, NULL },
	{ "1.2.3.4/-1:80", 0, NULL },
	{ "[1.2.3.4]:80", 1, "1.2.3.4:80" },
	{ "[::1]80", 0, NULL },
	{ "a.b:80,,c.d:80", 1, "a.b:80,c.d:80" },
};

static void
test_parse(void)
{
	struct egress_policy	p;
	char			*cause = NULL, out[EGRESS_TEXT_MAX], what[128];
	size_t			 i;
	int			 r;

	for (i = 0; i < nitems(parse_cases); i++) {
		r = egress_policy_parse(parse_cases[i].in, &p, &cause);
		snprintf(what, sizeof what, "parse '%s'", parse_cases[i].in);
		check((r == 0) == parse_cases[i].ok, what, cause);
		if (r == 0 && parse_cases[i].ok) {
			egress_policy_format(&p, out, sizeof out);
			check(strcmp(out, parse_cases[i].canon ?
			    parse_cases[i].canon : parse_cases[i].in) == 0,
			    what, out);
			/* The canonical text parses to itself. */
			r = egress_policy_parse(out, &p, NULL);
			check(r == 0, what, "canonical form does not parse");
		}
		if (r != 0 && !parse_cases[i].ok)
			check(cause != NULL && *cause != '\0', what,
			    "refused without a cause");
		free(cause);
		cause = NULL;
	}
}

static void
test_limits(void)
{
	struct egress_policy	p;
	char			 big[8192], *cause = NULL;
	size_t			 i;

	big[0] = '\0';
	for (i = 0; i < EGRESS_MAX_DESTS + 1; i++)
		snprintf(big + strlen(big), sizeof big - strlen(big),
		    "%sh%zu.example:80", i ? "," : "", i);
	check(egress_policy_parse(big, &p, &cause) == -1, "33 destinations",
	    "accepted");
	free(cause);
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	cause = NULL;
	check(egress_policy_parse(big, &p, &cause) == -1, "8K of text",
	    "accepted");
	free(cause);
}

/* Legend: session list, ceiling, 1 if within. */
static const struct {
	const char	*sess, *ceil;
	int		 within;
} within_cases[] = {
	{ "", "", 1 },
	{ "a.com:443", "", 0 },
	{ "a.com:443", "a.com:443", 1 },
	{ "a.com:443", "a.com:80", 0 },
	{ "a.com:443", "a.com:*", 1 },
	{ "a.com:443", "*.com:443", 1 },
	{ "com:443", "*.com:443", 0 },
	{ "*.a.com:443", "*.com:443", 1 },
	{ "*.com:443", "*.a.com:443", 0 },
	{ "*.com:443", "*:443", 1 },
	{ "x.y:1", "*:*", 1 },
	{ "10.1.0.0/16:80", "10.0.0.0/8:80", 1 },
	{ "10.0.0.0/8:80", "10.1.0.0/16:80", 0 },
	{ "10.1.2.3:80", "*:*", 0 },
	{ "a.com:443", "0.0.0.0/0:*", 0 },
	{ "a.com:443,b.com:443", "a.com:443", 0 },
	{ "[::1]:80", "[::/0]:*", 1 },
	{ "[::1]:80", "0.0.0.0/0:*", 0 },
};

static void
test_within(void)
{
	struct egress_policy	s, c;
	char			*cause = NULL, what[160];
	size_t			 i;
	int			 r;

	for (i = 0; i < nitems(within_cases); i++) {
		snprintf(what, sizeof what, "'%s' within '%s'",
		    within_cases[i].sess, within_cases[i].ceil);
		if (egress_policy_parse(within_cases[i].sess, &s, NULL) != 0 ||
		    egress_policy_parse(within_cases[i].ceil, &c, NULL) != 0) {
			check(0, what, "does not parse");
			continue;
		}
		r = egress_policy_within(&s, &c, &cause);
		check((r == 0) == within_cases[i].within, what, cause);
		free(cause);
		cause = NULL;
	}
}

/* Legend: policy, name asked ("" for an address literal), address, port,
 * 1 if the connection is allowed. */
static const struct {
	const char	*pol, *name, *addr;
	int		 port, ok;
} check_cases[] = {
	{ "web.test:80", "web.test", "93.184.216.34", 80, 1 },
	{ "web.test:80", "web.test", "93.184.216.34", 81, 0 },
	{ "web.test:80", "other.test", "93.184.216.34", 80, 0 },
	{ "WEB.test:80", "web.test", "93.184.216.34", 80, 1 },
	{ "*.test:80", "a.web.test", "93.184.216.34", 80, 1 },
	{ "*.test:80", "test", "93.184.216.34", 80, 0 },
	/* Rebinding: a listed name pointing at the host's own addresses. */
	{ "web.test:80", "web.test", "127.0.0.1", 80, 0 },
	{ "web.test:80", "web.test", "::1", 80, 0 },
	{ "web.test:80", "web.test", "::ffff:127.0.0.1", 80, 0 },
	{ "web.test:80", "web.test", "169.254.169.254", 80, 0 },
	{ "web.test:80", "web.test", "10.0.0.5", 80, 0 },
	{ "web.test:80", "web.test", "192.168.1.1", 80, 0 },
	{ "web.test:80", "web.test", "fe80::1", 80, 0 },
	{ "web.test:80", "web.test", "fd00::1", 80, 0 },
	{ "web.test:80", "web.test", "224.0.0.1", 80, 0 },
	{ "web.test:80", "web.test", "0.0.0.0", 80, 0 },
	/* ... unless listed by address, narrowly enough. */
	{ "web.test:80,10.0.0.0/8:80", "web.test", "10.0.0.5", 80, 1 },
	{ "web.test:80,10.0.0.0/8:81", "web.test", "10.0.0.5", 80, 0 },
	{ "web.test:80,0.0.0.0/0:80", "web.test", "127.0.0.1", 80, 0 },
	{ "web.test:80,0.0.0.0/0:80", "web.test", "93.184.216.34", 80, 1 },
	{ "127.0.0.1:8080", "", "127.0.0.1", 8080, 1 },
	{ "127.0.0.1:8080", "", "127.0.0.2", 8080, 0 },
	{ "127.0.0.0/8:8080", "", "127.0.0.2", 8080, 1 },
	/* An address literal needs an address rule, a name rule is not it. */
	{ "web.test:80", "", "93.184.216.34", 80, 0 },
	{ "93.184.216.0/24:443", "", "93.184.216.34", 443, 1 },
	{ "[2001:db8::/32]:443", "", "2001:db8::5", 443, 1 },
	{ "", "web.test", "93.184.216.34", 80, 0 },
};

static void
test_check(void)
{
	struct egress_policy	p;
	uint8_t			 a[16];
	char			 why[256], what[200];
	int			 family, named, ok;
	size_t			 i;

	for (i = 0; i < nitems(check_cases); i++) {
		snprintf(what, sizeof what, "%s: %s %s port %d",
		    check_cases[i].pol, check_cases[i].name,
		    check_cases[i].addr, check_cases[i].port);
		if (egress_policy_parse(check_cases[i].pol, &p, NULL) != 0 ||
		    egress_parse_ip(check_cases[i].addr, &family, a) != 0) {
			check(0, what, "bad case");
			continue;
		}
		named = 0;
		if (*check_cases[i].name != '\0') {
			if (egress_policy_match_name(&p, check_cases[i].name,
			    check_cases[i].port) == -1) {
				check(!check_cases[i].ok, what,
				    "name refused");
				continue;
			}
			named = 1;
		}
		why[0] = '\0';
		ok = egress_policy_check_addr(&p, family, a,
		    check_cases[i].port, named, why, sizeof why) == 0;
		check(ok == check_cases[i].ok, what, why);
		if (!ok)
			check(why[0] != '\0', what, "refused without a reason");
	}
}

static void
test_forwardable(void)
{
	struct egress_policy	p;

	if (egress_policy_parse("db.test:5432,*.x:1,1.2.3.4:5,1.2.3.0/24:5,"
	    "a.b:*", &p, NULL) != 0) {
		check(0, "forwardable", "does not parse");
		return;
	}
	check(egress_policy_forwardable(&p.d[0]), "host:port forwardable", 0);
	check(!egress_policy_forwardable(&p.d[1]), "*.x not forwardable", 0);
	check(egress_policy_forwardable(&p.d[2]), "ip:port forwardable", 0);
	check(!egress_policy_forwardable(&p.d[3]), "prefix not forwardable",
	    0);
	check(!egress_policy_forwardable(&p.d[4]), "any port not "
	    "forwardable", 0);
}

int
main(void)
{
	test_parse();
	test_limits();
	test_within();
	test_check();
	test_forwardable();
	return (check_report());
}
