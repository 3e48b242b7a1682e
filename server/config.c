/* config.c: the daemon's settings, from defaults, a config file and flags. */
/*
 * The file is lines of `key = value`; `#` starts a comment. Every key is
 * one row of config_table below: adding a setting is adding a row.
 */

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct config	cfg;

enum config_type { CONFIG_STRING, CONFIG_SIZE, CONFIG_LEVEL };

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
};

static const char *config_levels[] = { "error", "warn", "info", "debug" };

/* Sizes take an optional K, M or G suffix (powers of 1024). */
int
config_parse_size(const char *s, size_t *out)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	if (!isdigit((u_char)*s))
		return (-1);
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return (-1);
	switch (toupper((u_char)*end)) {
	case 'G':
		v <<= 10;
		/* FALLTHROUGH */
	case 'M':
		v <<= 10;
		/* FALLTHROUGH */
	case 'K':
		v <<= 10;
		end++;
		break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return (-1);
	*out = v;
	return (0);
}

static int
config_apply(const struct config_entry *e, const char *value, char **cause)
{
	size_t	i;

	switch (e->type) {
	case CONFIG_STRING:
		free(*(char **)e->where);
		*(char **)e->where = xstrdup(value);
		return (0);
	case CONFIG_SIZE:
		if (config_parse_size(value, e->where) == 0)
			return (0);
		break;
	case CONFIG_LEVEL:
		for (i = 0; i < nitems(config_levels); i++) {
			if (strcmp(value, config_levels[i]) == 0) {
				*(int *)e->where = i;
				return (0);
			}
		}
		break;
	}
	xasprintf(cause, "bad value for %s: '%s'", e->key, value);
	return (-1);
}

int
config_set(const char *key, const char *value, char **cause)
{
	size_t	i;

	for (i = 0; i < nitems(config_table); i++) {
		if (strcmp(config_table[i].key, key) == 0)
			return (config_apply(&config_table[i], value, cause));
	}
	xasprintf(cause, "unknown setting '%s'", key);
	return (-1);
}

void
config_defaults(void)
{
	size_t	 i;
	char	*cause;

	for (i = 0; i < nitems(config_table); i++) {
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

int
config_load(const char *path, char **cause)
{
	FILE	*f;
	char	 line[4096], *key, *value, *eq, *why;
	int	 lineno = 0;

	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if ((key = strchr(line, '#')) != NULL)
			*key = '\0';
		key = config_trim(line);
		if (*key == '\0')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			xasprintf(cause, "%s:%d: expected key = value", path,
			    lineno);
			goto fail;
		}
		*eq = '\0';
		value = config_trim(eq + 1);
		key = config_trim(key);
		if (config_set(key, value, &why) != 0) {
			xasprintf(cause, "%s:%d: %s", path, lineno, why);
			free(why);
			goto fail;
		}
	}
	fclose(f);
	return (0);
fail:
	fclose(f);
	return (-1);
}
