/* egress-policy.c: parse, print and check network egress allowlists. */
/*
 * Pure functions, no I/O: the daemon uses them to check `--allow-net`
 * against the `egress-allow` ceiling, the proxy to decide each connection.
 * Both sides parse the same canonical text, so what `cellblock ls` shows is
 * what the proxy enforces.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "egress/egress.h"

/*
 * Addresses no name may lead to unless a rule lists them by address: the
 * host's own, its neighbours', and the ones nobody should route.  So DNS
 * rebinding a listed name to 127.0.0.1 (the daemon's ports) or to a
 * metadata service at 169.254.169.254 is refused.  Legend: family, network,
 * prefix bits, what it is (said in the refusal).
 */
static const struct egress_special {
	int		 family;
	const char	*net;
	int		 prefix;
	const char	*what;
} egress_special[] = {
	{ AF_INET,  "0.0.0.0",     8,  "'this network'" },
	{ AF_INET,  "10.0.0.0",    8,  "private" },
	{ AF_INET,  "100.64.0.0",  10, "shared (CGNAT)" },
	{ AF_INET,  "127.0.0.0",   8,  "loopback" },
	{ AF_INET,  "169.254.0.0", 16, "link-local" },
	{ AF_INET,  "172.16.0.0",  12, "private" },
	{ AF_INET,  "192.0.0.0",   24, "IETF protocol" },
	{ AF_INET,  "192.0.2.0",   24, "documentation" },
	{ AF_INET,  "192.168.0.0", 16, "private" },
	{ AF_INET,  "198.18.0.0",  15, "benchmarking" },
	{ AF_INET,  "198.51.100.0", 24, "documentation" },
	{ AF_INET,  "203.0.113.0", 24, "documentation" },
	{ AF_INET,  "224.0.0.0",   4,  "multicast" },
	{ AF_INET,  "240.0.0.0",   4,  "reserved" },
	{ AF_INET6, "::",          128, "unspecified" },
	{ AF_INET6, "::1",         128, "loopback" },
	{ AF_INET6, "64:ff9b::",   96, "NAT64" },
	{ AF_INET6, "2001:db8::",  32, "documentation" },
	{ AF_INET6, "fc00::",      7,  "unique-local (private)" },
	{ AF_INET6, "fe80::",      10, "link-local" },
	{ AF_INET6, "ff00::",      8,  "multicast" },
};

static int
egress_addr_len(int family)
{
	return (family == AF_INET ? 4 : 16);
}

/* Does network (addr, prefix) contain a? */
static int
egress_contains(const uint8_t *net, int prefix, const uint8_t *a)
{
	int	full = prefix / 8, rest = prefix % 8;
	uint8_t	mask;

	if (memcmp(net, a, full) != 0)
		return (0);
	if (rest == 0)
		return (1);
	mask = (uint8_t)(0xff << (8 - rest));
	return ((net[full] & mask) == (a[full] & mask));
}

static void
egress_mask(uint8_t *a, int family, int prefix)
{
	int	i, len = egress_addr_len(family);

	for (i = 0; i < len; i++) {
		if (prefix >= 8)
			prefix -= 8;
		else {
			a[i] &= (uint8_t)(0xff << (8 - prefix));
			prefix = 0;
		}
	}
}

/* The range a is in, as words for a refusal, or NULL; *prefix its size. */
const char *
egress_addr_special(int family, const uint8_t *a, int *prefix)
{
	uint8_t	net[16];
	size_t	i;

	for (i = 0; i < nitems(egress_special); i++) {
		if (egress_special[i].family != family)
			continue;
		if (inet_pton(family, egress_special[i].net, net) != 1)
			continue;
		if (egress_contains(net, egress_special[i].prefix, a)) {
			if (prefix != NULL)
				*prefix = egress_special[i].prefix;
			return (egress_special[i].what);
		}
	}
	return (NULL);
}

/* An address literal (no brackets); 0 and *family, *addr, or -1. */
int
egress_parse_ip(const char *s, int *family, uint8_t *addr)
{
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = AF_INET;
		return (0);
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = AF_INET6;
		return (0);
	}
	return (-1);
}

/*
 * A host name as DNS allows it (letters, digits, '-', labels of 1-63, at
 * most 253), lowercased, one trailing dot dropped.  Anything else — '_',
 * spaces, '%', bytes over 127 — is refused, so a name cannot smuggle a
 * second meaning into the proxy's log or a resolver.
 */
int
egress_normalize_name(const char *in, char *out, size_t len)
{
	size_t	n = strlen(in), i, label = 0;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > EGRESS_NAME_MAX || n >= len)
		return (-1);
	for (i = 0; i < n; i++) {
		if (in[i] == '.') {
			if (label == 0 || in[i - 1] == '-')
				return (-1);
			label = 0;
		} else if (isalnum((u_char)in[i]) || in[i] == '-') {
			if (in[i] == '-' && label == 0)
				return (-1);
			if (++label > 63)
				return (-1);
		} else
			return (-1);
		out[i] = (char)tolower((u_char)in[i]);
	}
	if (in[n - 1] == '-')
		return (-1);
	out[n] = '\0';
	return (0);
}

static int
egress_parse_port(const char *s, uint16_t *port)
{
	char		*end;
	unsigned long	 v;

	if (strcmp(s, "*") == 0) {
		*port = 0;
		return (0);
	}
	if (!isdigit((u_char)*s) || strlen(s) > 5)
		return (-1);
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v == 0 || v > 65535)
		return (-1);
	*port = (uint16_t)v;
	return (0);
}

static int
egress_parse_net(char *host, struct egress_dest *d)
{
	char		*slash, *end;
	long		 bits;

	if ((slash = strchr(host, '/')) != NULL)
		*slash++ = '\0';
	if (egress_parse_ip(host, &d->family, d->addr) != 0)
		return (-1);
	d->prefix = egress_addr_len(d->family) * 8;
	if (slash != NULL) {
		if (!isdigit((u_char)*slash) || strlen(slash) > 3)
			return (-1);
		bits = strtol(slash, &end, 10);
		if (*end != '\0' || bits < 0 || bits > d->prefix)
			return (-1);
		d->prefix = (int)bits;
	}
	egress_mask(d->addr, d->family, d->prefix);
	d->kind = EGRESS_NET;
	return (0);
}

/* One DEST; s is modified. */
static int
egress_parse_dest(char *s, struct egress_dest *d, char **cause)
{
	char	*colon, *host = s;

	memset(d, 0, sizeof *d);
	if (*s == '[') {
		host = s + 1;
		if ((colon = strchr(host, ']')) == NULL || colon[1] != ':')
			goto bad;
		*colon++ = '\0';
	} else if ((colon = strrchr(s, ':')) == NULL)
		goto bad;
	*colon++ = '\0';
	if (egress_parse_port(colon, &d->port) != 0) {
		xasprintf(cause, "'%s': bad port '%s' (1-65535 or *)", s,
		    colon);
		return (-1);
	}
	if (host != s || strchr(host, '/') != NULL ||
	    egress_parse_ip(host, &d->family, d->addr) == 0) {
		if (egress_parse_net(host, d) == 0 &&
		    (d->family == AF_INET || host != s))
			return (0);
		xasprintf(cause, "'%s': bad address or prefix", host);
		return (-1);
	}
	if (strcmp(host, "*") == 0) {
		d->kind = EGRESS_SUFFIX;
		return (0);
	}
	if (strncmp(host, "*.", 2) == 0) {
		d->kind = EGRESS_SUFFIX;
		d->host[0] = '.';
		if (egress_normalize_name(host + 2, d->host + 1,
		    sizeof d->host - 1) != 0)
			goto bad_name;
		return (0);
	}
	d->kind = EGRESS_NAME;
	if (egress_normalize_name(host, d->host, sizeof d->host) != 0)
		goto bad_name;
	return (0);
bad_name:
	xasprintf(cause, "'%s': not a host name", host);
	return (-1);
bad:
	xasprintf(cause, "'%s': not host:port, *.domain:port or "
	    "ip[/prefix]:port", s);
	return (-1);
}

/* A comma-separated list; "" is the empty policy.  Duplicates are kept. */
int
egress_policy_parse(const char *text, struct egress_policy *out, char **cause)
{
	char	*copy, *p, *item;
	int	 r = 0;

	memset(out, 0, sizeof *out);
	if (strlen(text) >= EGRESS_TEXT_MAX * 4) {
		xasprintf(cause, "allowlist too long");
		return (-1);
	}
	copy = p = xstrdup(text);
	while (r == 0 && (item = strsep(&p, ",")) != NULL) {
		while (isspace((u_char)*item))
			item++;
		item[strcspn(item, " \t\r\n")] = '\0';
		if (*item == '\0')
			continue;
		if (out->n == EGRESS_MAX_DESTS) {
			xasprintf(cause, "more than %d destinations",
			    EGRESS_MAX_DESTS);
			r = -1;
		} else
			r = egress_parse_dest(item, &out->d[out->n++], cause);
	}
	free(copy);
	if (r == 0 && egress_policy_format(out, NULL, 0) >= EGRESS_TEXT_MAX) {
		xasprintf(cause, "allowlist longer than %d bytes",
		    EGRESS_TEXT_MAX - 1);
		r = -1;
	}
	return (r);
}

void
egress_dest_format(const struct egress_dest *d, char *buf, size_t len)
{
	char	a[INET6_ADDRSTRLEN], port[8];
	int	full = egress_addr_len(d->family) * 8;

	if (d->port == 0)
		snprintf(port, sizeof port, "*");
	else
		snprintf(port, sizeof port, "%u", d->port);
	switch (d->kind) {
	case EGRESS_NAME:
		snprintf(buf, len, "%s:%s", d->host, port);
		break;
	case EGRESS_SUFFIX:
		snprintf(buf, len, "*%s:%s", d->host, port);
		break;
	case EGRESS_NET:
		inet_ntop(d->family, d->addr, a, sizeof a);
		if (d->prefix == full)
			snprintf(buf, len, d->family == AF_INET6 ? "[%s]:%s" :
			    "%s:%s", a, port);
		else
			snprintf(buf, len, d->family == AF_INET6 ?
			    "[%s/%d]:%s" : "%s/%d:%s", a, d->prefix, port);
		break;
	}
}

/* The canonical text; returns its length (as snprintf). */
int
egress_policy_format(const struct egress_policy *p, char *buf, size_t len)
{
	char	one[300];
	size_t	i, used = 0;

	if (len > 0)
		buf[0] = '\0';
	for (i = 0; i < p->n; i++) {
		egress_dest_format(&p->d[i], one, sizeof one);
		if (used + strlen(one) + 2 < len)
			snprintf(buf + used, len - used, "%s%s", i ? "," : "",
			    one);
		used += strlen(one) + (i ? 1 : 0);
	}
	return ((int)used);
}

static int
egress_name_matches(const struct egress_dest *d, const char *name)
{
	size_t	n = strlen(name), m = strlen(d->host);

	if (d->kind == EGRESS_NAME)
		return (strcmp(d->host, name) == 0);
	if (d->kind != EGRESS_SUFFIX)
		return (0);
	return (n > m && strcmp(name + n - m, d->host) == 0);
}

static int
egress_port_matches(uint16_t rule, uint16_t port)
{
	return (rule == 0 || rule == port);
}

/* Is one destination inside another (the ceiling's)? */
static int
egress_dest_within(const struct egress_dest *d, const struct egress_dest *c)
{
	if (c->port != 0 && c->port != d->port)
		return (0);
	if (d->kind == EGRESS_NET)
		return (c->kind == EGRESS_NET && c->family == d->family &&
		    c->prefix <= d->prefix &&
		    egress_contains(c->addr, c->prefix, d->addr));
	if (c->kind == EGRESS_NET)
		return (0);
	if (d->kind == EGRESS_NAME)
		return (egress_name_matches(c, d->host));
	/* *.a.b is inside *.b and *.a.b, and inside "*" (host ""). */
	return (c->kind == EGRESS_SUFFIX && (strcmp(c->host, d->host) == 0 ||
	    egress_name_matches(c, d->host + 1) || c->host[0] == '\0'));
}

/* Every destination of p inside one of the ceiling's. */
int
egress_policy_within(const struct egress_policy *p,
    const struct egress_policy *ceiling, char **cause)
{
	char	one[300];
	size_t	i, j;

	for (i = 0; i < p->n; i++) {
		for (j = 0; j < ceiling->n; j++) {
			if (egress_dest_within(&p->d[i], &ceiling->d[j]))
				break;
		}
		if (j == ceiling->n) {
			egress_dest_format(&p->d[i], one, sizeof one);
			xasprintf(cause, "%s is not within the daemon's "
			    "egress-allow (%s)", one, ceiling->n == 0 ?
			    "empty: no egress allowed" : "see cellblockd(8)");
			return (-1);
		}
	}
	return (0);
}

/* The first name rule allowing name:port, or -1.  name is normalized. */
int
egress_policy_match_name(const struct egress_policy *p, const char *name,
    uint16_t port)
{
	size_t	i;

	for (i = 0; i < p->n; i++) {
		if (egress_port_matches(p->d[i].port, port) &&
		    egress_name_matches(&p->d[i], name))
			return ((int)i);
	}
	return (-1);
}

/*
 * May the proxy connect to this address?  named: the connection was asked
 * by a name a name rule allowed.  A special address (egress_special) needs
 * an address rule at least as narrow as its range: 0.0.0.0/0 does not
 * list 127.0.0.1, 127.0.0.0/8 does.  Returns 0, or -1 and why.
 */
int
egress_policy_check_addr(const struct egress_policy *p, int family,
    const void *addr, uint16_t port, int named, char *why, size_t len)
{
	uint8_t		 a[16];
	char		 text[INET6_ADDRSTRLEN];
	const char	*special;
	int		 range = 0;
	size_t		 i;

	memcpy(a, addr, egress_addr_len(family));
	/* ::ffff:a.b.c.d is a.b.c.d to the kernel, so to us too. */
	if (family == AF_INET6 && memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff",
	    12) == 0) {
		memmove(a, a + 12, 4);
		family = AF_INET;
	}
	special = egress_addr_special(family, a, &range);
	for (i = 0; i < p->n; i++) {
		if (p->d[i].kind != EGRESS_NET || p->d[i].family != family ||
		    !egress_port_matches(p->d[i].port, port) ||
		    !egress_contains(p->d[i].addr, p->d[i].prefix, a))
			continue;
		if (special == NULL || p->d[i].prefix >= range)
			return (0);
	}
	if (named && special == NULL)
		return (0);
	inet_ntop(family, a, text, sizeof text);
	if (special != NULL)
		snprintf(why, len, "%s is a %s address and no ip/prefix rule "
		    "lists it (port %u)", text, special, port);
	else
		snprintf(why, len, "no rule allows %s port %u", text, port);
	return (-1);
}

/* Can a raw TCP forward use d: one host, one port, nothing wild? */
int
egress_policy_forwardable(const struct egress_dest *d)
{
	if (d->port == 0)
		return (0);
	if (d->kind == EGRESS_NAME)
		return (1);
	return (d->kind == EGRESS_NET &&
	    d->prefix == egress_addr_len(d->family) * 8);
}
