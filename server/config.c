/* config.c: the daemon's settings, from defaults, a config file and flags. */
/*
 * The file is lines of `key = value`; `#` starts a comment. Every key is
 * one row of config_table below: adding a setting is adding a row.
 */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "server.h"
#include "egress/egress.h"

/* A config file is a few dozen lines; refuse to slurp anything huge. */
#define CONFIG_FILE_MAX	(1024 * 1024)

struct config	cfg;

enum config_type {
	CONFIG_STRING,
	CONFIG_SIZE,		/* bytes, K/M/G suffix */
	CONFIG_COUNT,		/* plain number */
	CONFIG_CPUS,		/* CPUs, decimals allowed: stored as millis */
	CONFIG_BOOL,		/* yes/no, true/false, 1/0 */
	CONFIG_LEVEL,
	CONFIG_LIST,		/* repeatable: each line appends a string */
};

/*
 * Legend: key as written in the file (and as --key on the command line),
 * its type, where it lands, and the default.
 */
static const struct config_entry {
	const char		*key;
	enum config_type	 type;
	void			*where;
	const char		*def;
} config_table[] = {
	{ "address", CONFIG_STRING, &cfg.ip, "127.0.0.1" },
	{ "transport", CONFIG_STRING, &cfg.transport, "tcp" },
	{ "max-message", CONFIG_SIZE, &cfg.max_message, "64M" },
	{ "log-level", CONFIG_LEVEL, &cfg.log_level, "info" },
	{ "python", CONFIG_STRING, &cfg.python, "/usr/bin/python3" },
	{ "rootfs", CONFIG_STRING, &cfg.rootfs, "" },
	{ "uid-base", CONFIG_COUNT, &cfg.uid_base, "200000" },
	{ "uid-count", CONFIG_COUNT, &cfg.uid_count, "10000" },
	{ "allow-weaker-sandbox", CONFIG_BOOL, &cfg.allow_weaker, "no" },
	{ "max-stream", CONFIG_SIZE, &cfg.max_stream, "8M" },
	{ "max-display", CONFIG_SIZE, &cfg.max_display, "16M" },
	{ "idle-timeout", CONFIG_COUNT, &cfg.limits.idle_timeout, "1800" },
	{ "checkpoint-interval", CONFIG_COUNT, &cfg.checkpoint_interval, "600" },
	{ "max-sessions", CONFIG_COUNT, &cfg.max_sessions, "1000" },
	{ "max-sessions-per-user", CONFIG_COUNT, &cfg.max_user_sessions, "200" },
	{ "max-checkpoint-bytes-per-user", CONFIG_SIZE, &cfg.max_user_ckpt,
	  "20G" },
	{ "min-free-memory", CONFIG_SIZE, &cfg.min_free_memory, "512M" },
	{ "restart-from-checkpoint", CONFIG_BOOL, &cfg.restart_from_checkpoint,
	  "yes" },
	{ "zygote", CONFIG_BOOL, &cfg.zygote, "yes" },
	{ "warm-pool", CONFIG_COUNT, &cfg.warm_pool, "2" },
	{ "log-format", CONFIG_STRING, &cfg.log_format, "text" },
	{ "redact-pattern", CONFIG_LIST, &cfg.redact_patterns, NULL },
	{ "audit", CONFIG_BOOL, &cfg.audit, "yes" },
	{ "audit-output", CONFIG_BOOL, &cfg.audit_output, "no" },
	{ "audit-max-size", CONFIG_SIZE, &cfg.audit_max_size, "16M" },
	{ "audit-keep", CONFIG_COUNT, &cfg.audit_keep, "5" },
	{ "memory", CONFIG_SIZE, &cfg.limits.memory, "1G" },
	{ "cpus", CONFIG_CPUS, &cfg.limits.cpu_millis, "1" },
	{ "pids", CONFIG_COUNT, &cfg.limits.pids, "256" },
	{ "tmp", CONFIG_SIZE, &cfg.limits.tmp, "256M" },
	{ "exec-timeout", CONFIG_COUNT, &cfg.limits.exec_timeout, "0" },
	{ "nofile", CONFIG_COUNT, &cfg.limits.nofile, "1024" },
	{ "fsize", CONFIG_SIZE, &cfg.limits.fsize, "1G" },
	{ "contract-max-output", CONFIG_SIZE, &cfg.contract_output, "64K" },
	{ "files-max-size", CONFIG_SIZE, &cfg.files_max_size, "1G" },
	{ "files-quota", CONFIG_SIZE, &cfg.files_quota, "10G" },
	/* The HTTP front (server/http.c, docs/GATEWAY.md). */
	{ "http-listen", CONFIG_STRING, &cfg.http_listen, "127.0.0.1:8765" },
	{ "http-tls-cert", CONFIG_STRING, &cfg.http_tls_cert, "" },
	{ "http-tls-key", CONFIG_STRING, &cfg.http_tls_key, "" },
	{ "http-max-connections", CONFIG_COUNT, &cfg.http_max_conns, "1024" },
	{ "http-max-connections-per-peer", CONFIG_COUNT,
	  &cfg.http_max_peer_conns, "256" },
	{ "http-timeout", CONFIG_COUNT, &cfg.http_timeout, "30" },
	{ "http-max-starts", CONFIG_COUNT, &cfg.http_max_starts, "16" },
	{ "http-env-allow", CONFIG_STRING, &cfg.http_env_allow, "KERNEL_*" },
	{ "metrics-public", CONFIG_BOOL, &cfg.metrics_public, "no" },
	/* Egress (server/egress.c, docs/SECURITY.md). */
	{ "egress-allow", CONFIG_STRING, &cfg.egress.allow, "" },
	{ "egress-hosts", CONFIG_STRING, &cfg.egress.hosts, "" },
	{ "egress-max-conns", CONFIG_COUNT, &cfg.egress.max_conns, "32" },
	{ "egress-max-bytes-in", CONFIG_SIZE, &cfg.egress.max_bytes_in, "4G" },
	{ "egress-max-bytes-out", CONFIG_SIZE, &cfg.egress.max_bytes_out,
	  "1G" },
	{ "egress-rate", CONFIG_COUNT, &cfg.egress.rate, "20" },
	{ "egress-idle-timeout", CONFIG_COUNT, &cfg.egress.idle_timeout,
	  "300" },
	{ "egress-max-time", CONFIG_COUNT, &cfg.egress.max_time, "3600" },
};

/* The settings a session may override (`cellblock new --memory 1G`). */
static const char *config_session_keys[] = {
	"memory", "cpus", "pids", "tmp", "exec-timeout", "nofile", "fsize",
	"idle-timeout"
};

static const char *config_levels[] = { "error", "warn", "info", "debug" };

/* Sizes take an optional K, M or G suffix (powers of 1024). */
int
config_parse_size(const char *s, size_t *out)
{
	char			*end;
	unsigned long long	 v;
	int			 shift = 0;

	errno = 0;
	if (!isdigit((u_char)*s))
		return (-1);
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return (-1);
	switch (toupper((u_char)*end)) {
	case 'G':
		shift += 10;
		/* FALLTHROUGH */
	case 'M':
		shift += 10;
		/* FALLTHROUGH */
	case 'K':
		shift += 10;
		end++;
		break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	/* Shifted past 64 bits, "17179869184G" would be 0, not 16 EiB. */
	if (*end != '\0' || v > (ULLONG_MAX >> shift))
		return (-1);
	*out = v << shift;
	return (0);
}

static int
config_parse_cpus(const char *s, uint32_t *out)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= 0.01 && v <= 1024))
		return (-1);
	*out = (uint32_t)(v * 1000 + 0.5);
	return (0);
}

static int
config_parse_bool(const char *s, int *out)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0 ||
	    strcmp(s, "1") == 0)
		*out = 1;
	else if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0 ||
	    strcmp(s, "0") == 0)
		*out = 0;
	else
		return (-1);
	return (0);
}

static void
config_list_add(struct config_list *l, const char *value)
{
	l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
	l->v[l->n++] = xstrdup(value);
}

/* Apply to a copy of the limits instead of cfg (per-session overrides). */
static void *
config_where(const struct config_entry *e, struct session_limits *l)
{
	if (l == NULL)
		return (e->where);
	return ((char *)l + ((char *)e->where - (char *)&cfg.limits));
}

static int
config_apply_to(const struct config_entry *e, void *where, const char *value,
    char **cause)
{
	size_t	i;

	switch (e->type) {
	case CONFIG_COUNT:
		if (config_parse_size(value, where) == 0 &&
		    strspn(value, "0123456789") == strlen(value))
			return (0);
		break;
	case CONFIG_CPUS:
		if (config_parse_cpus(value, where) == 0)
			return (0);
		break;
	case CONFIG_BOOL:
		if (config_parse_bool(value, where) == 0)
			return (0);
		break;
	case CONFIG_LIST:
		config_list_add(where, value);
		return (0);
	case CONFIG_STRING:
		free(*(char **)where);
		*(char **)where = xstrdup(value);
		return (0);
	case CONFIG_SIZE:
		if (config_parse_size(value, where) == 0)
			return (0);
		break;
	case CONFIG_LEVEL:
		for (i = 0; i < nitems(config_levels); i++) {
			if (strcmp(value, config_levels[i]) == 0) {
				*(int *)where = i;
				return (0);
			}
		}
		break;
	}
	xasprintf(cause, "bad value for %s: '%s'", e->key, value);
	return (-1);
}

static int
config_apply(const struct config_entry *e, const char *value, char **cause)
{
	return (config_apply_to(e, e->where, value, cause));
}

static const struct config_entry *
config_find(const char *key)
{
	size_t	i;

	for (i = 0; i < nitems(config_table); i++) {
		if (strcmp(config_table[i].key, key) == 0)
			return (&config_table[i]);
	}
	return (NULL);
}

/*
 * `allow-net`: the session's egress allowlist, inside the daemon's
 * egress-allow ceiling, kept in canonical form (server/egress/egress.h).
 */
int
config_allow_net(const char *text, struct session_limits *out, char **cause)
{
	struct egress_policy	*p, *ceiling;
	int			 r = -1;

	p = xcalloc(2, sizeof *p);
	ceiling = p + 1;
	if (egress_policy_parse(text, p, cause) != 0)
		goto out;
	if (egress_policy_parse(cfg.egress.allow, ceiling, cause) != 0)
		goto out;
	if (egress_policy_within(p, ceiling, cause) != 0)
		goto out;
	egress_policy_format(p, out->allow_net, sizeof out->allow_net);
	r = 0;
out:
	free(p);
	return (r);
}

/*
 * A session's limits: the defaults, with the overrides a request carries
 * as strings in the same syntax as the config file.
 */
int
config_limits(json_t *req, struct session_limits *out, char **cause)
{
	const struct config_entry	*e;
	json_t				*v;
	size_t				 i;

	*out = cfg.limits;
	for (i = 0; i < nitems(config_session_keys); i++) {
		v = json_object_get(req, config_session_keys[i]);
		if (v == NULL)
			continue;
		e = config_find(config_session_keys[i]);
		if (!json_is_string(v)) {
			xasprintf(cause, "%s must be a string", e->key);
			return (-1);
		}
		if (config_apply_to(e, config_where(e, out),
		    json_string_value(v), cause) != 0)
			return (-1);
	}
	if ((v = json_object_get(req, "allow-net")) == NULL)
		return (0);
	if (!json_is_string(v)) {
		xasprintf(cause, "allow-net must be a string");
		return (-1);
	}
	return (config_allow_net(json_string_value(v), out, cause));
}

int
config_set(const char *key, const char *value, char **cause)
{
	const struct config_entry	*e = config_find(key);

	if (e != NULL)
		return (config_apply(e, value, cause));
	xasprintf(cause, "unknown setting '%s'", key);
	return (-1);
}

void
config_defaults(void)
{
	size_t	 i;
	char	*cause;

	for (i = 0; i < nitems(config_table); i++) {
		if (config_table[i].def == NULL)
			continue;	/* lists start empty */
		if (config_apply(&config_table[i], config_table[i].def,
		    &cause) != 0)
			fatalx("default %s: %s", config_table[i].key, cause);
	}
}

static char *
config_trim(char *s)
{
	char	*end;

	while (isspace((u_char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((u_char)end[-1]))
		*--end = '\0';
	return (s);
}

/*
 * One line, NUL-terminated, comments and all. A setting is applied as it
 * is read: an error leaves the lines before it applied.
 */
static int
config_parse_line(char *line, const char *name, int lineno, char **cause)
{
	char	*key, *value, *eq, *why;

	if ((key = strchr(line, '#')) != NULL)
		*key = '\0';
	key = config_trim(line);
	if (*key == '\0')
		return (0);
	if ((eq = strchr(key, '=')) == NULL) {
		xasprintf(cause, "%s:%d: expected key = value", name, lineno);
		return (-1);
	}
	*eq = '\0';
	value = config_trim(eq + 1);
	key = config_trim(key);
	if (config_set(key, value, &why) != 0) {
		xasprintf(cause, "%s:%d: %s", name, lineno, why);
		free(why);
		return (-1);
	}
	return (0);
}

/*
 * Parses a whole config file held in memory; name is what causes call it.
 * Lines may be of any length: a long comment must stay a comment, never
 * spill into a setting as it would past a fixed line buffer.
 */
int
config_parse(const char *buf, size_t len, const char *name, char **cause)
{
	const char	*p = buf, *end = buf + len, *nl;
	char		*line;
	int		 lineno = 0, r = 0;

	while (r == 0 && p < end) {
		lineno++;
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		/* C would see only the part before a NUL: refuse the line. */
		if (memchr(p, '\0', nl - p) != NULL) {
			xasprintf(cause, "%s:%d: NUL byte in line", name,
			    lineno);
			return (-1);
		}
		line = xstrndup(p, nl - p);
		r = config_parse_line(line, name, lineno, cause);
		free(line);
		p = nl + 1;
	}
	return (r);
}

int
config_load(const char *path, char **cause)
{
	FILE	*f;
	char	*buf;
	size_t	 len;
	int	 r = -1;

	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	buf = xmalloc(CONFIG_FILE_MAX + 1);
	len = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
	if (ferror(f))
		xasprintf(cause, "%s: read error", path);
	else if (len > CONFIG_FILE_MAX)
		xasprintf(cause, "%s: larger than %d bytes", path,
		    CONFIG_FILE_MAX);
	else
		r = config_parse(buf, len, path, cause);
	fclose(f);
	free(buf);
	return (r);
}
