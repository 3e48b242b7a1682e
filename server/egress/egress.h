/* egress.h: network egress policy (pure) and the egress proxy's parts. */
#ifndef CELLBLOCK_EGRESS_H
#define CELLBLOCK_EGRESS_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stdint.h>

/*
 * A policy is a list of destinations (docs/SECURITY.md, "Egress"):
 *
 *   host:port        one name, exactly (case-insensitive, trailing dot ok)
 *   *.domain:port    any name under domain, not domain itself
 *   *:port           any name (only sensible in the daemon's ceiling)
 *   ip[/prefix]:port an address or a network; IPv6 in brackets:
 *                    [2001:db8::/32]:443
 *
 * port is 1-65535, or * for any port.  Destinations are comma-separated.
 */
#define EGRESS_MAX_DESTS	32
#define EGRESS_TEXT_MAX		1024	/* the canonical text, with its NUL */
#define EGRESS_NAME_MAX		253

enum egress_kind {
	EGRESS_NAME,		/* host is the exact name */
	EGRESS_SUFFIX,		/* host is ".domain" (or "" for any name) */
	EGRESS_NET,		/* family/addr/prefix */
};

struct egress_dest {
	enum egress_kind kind;
	char		 host[EGRESS_NAME_MAX + 2];
	int		 family;	/* AF_INET, AF_INET6 (EGRESS_NET) */
	uint8_t		 addr[16];	/* network byte order, masked */
	int		 prefix;	/* bits */
	uint16_t	 port;		/* 0: any port */
};

struct egress_policy {
	size_t			n;
	struct egress_dest	d[EGRESS_MAX_DESTS];
};

/* server/egress/egress-policy.c */
int	 egress_policy_parse(const char *, struct egress_policy *, char **);
int	 egress_policy_format(const struct egress_policy *, char *, size_t);
void	 egress_dest_format(const struct egress_dest *, char *, size_t);
int	 egress_policy_within(const struct egress_policy *,
	     const struct egress_policy *, char **);
int	 egress_policy_match_name(const struct egress_policy *, const char *,
	     uint16_t);
int	 egress_policy_check_addr(const struct egress_policy *, int,
	     const void *, uint16_t, int, char *, size_t);
int	 egress_policy_forwardable(const struct egress_dest *);
int	 egress_normalize_name(const char *, char *, size_t);
int	 egress_parse_ip(const char *, int *, uint8_t *);
const char *egress_addr_special(int, const uint8_t *, int *);

#endif /* CELLBLOCK_EGRESS_H */
