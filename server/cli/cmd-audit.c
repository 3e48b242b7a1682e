/* cmd-audit.c: `cellblock audit`: the audit log, the caller's events (root: all). */

#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int	cmd_audit_exec(int, char **);

const struct cmd_entry cmd_audit_entry = {
	"audit", "[--json] [--since TIME] [NAME]", cmd_audit_exec
};

/*
 * --since takes an ISO 8601 UTC time or a prefix of one (2026-12-03T09),
 * or an age: a number with s, m, h or d (30m: the last half hour).
 */
static int
cmd_audit_since(const char *arg, char *out, size_t len)
{
	static const struct {
		char	unit;
		long	seconds;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
	char	*end;
	long	 n;
	size_t	 i;
	time_t	 t;
	struct tm tm;

	if (strlen(arg) >= 4 && isdigit((u_char)arg[0]) && arg[4] == '-') {
		snprintf(out, len, "%s", arg);
		return (0);
	}
	n = strtol(arg, &end, 10);
	if (end == arg || n < 0 || end[0] == '\0' || end[1] != '\0')
		return (-1);
	for (i = 0; i < nitems(units); i++) {
		if (units[i].unit != *end)
			continue;
		t = time(NULL) - n * units[i].seconds;
		gmtime_r(&t, &tm);
		strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
		return (0);
	}
	return (-1);
}

static const char *
cmd_audit_str(json_t *ev, const char *key)
{
	const char	*v = json_string_value(json_object_get(ev, key));

	return (v != NULL ? v : "-");
}

/* One line an operator reads: when, what, which session, and the gist. */
static void
cmd_audit_line(json_t *ev)
{
	const char	*event = cmd_audit_str(ev, "event");
	json_t		*wall = json_object_get(ev, "wall_ms");

	printf("%s %-16s %-24s uid %-6lld ", cmd_audit_str(ev, "time"), event,
	    cmd_audit_str(ev, "session"),
	    (long long)json_integer_value(json_object_get(ev, "owner")));
	if (strcmp(event, "execute") == 0) {
		printf("%s %s%s%s", cmd_audit_str(ev, "client"),
		    cmd_audit_str(ev, "status"), json_object_get(ev,
		    "ename") ? " " : "", json_object_get(ev, "ename") ?
		    cmd_audit_str(ev, "ename") : "");
		if (json_is_number(wall))
			printf(" %.1fms", json_number_value(wall));
		printf(" code %.12s %lldB", cmd_audit_str(ev, "code_sha256"),
		    (long long)json_integer_value(json_object_get(ev,
		    "code_bytes")));
	} else if (json_object_get(ev, "why") != NULL)
		printf("%s", cmd_audit_str(ev, "why"));
	printf("\n");
}

static int
cmd_audit_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "since", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	json_t	*req, *r, *ev;
	int	 ch, code, as_json = 0;
	char	 since[64] = "", *s;
	size_t	 i;

	while ((ch = getopt_long(argc, argv, "js:", opts, NULL)) != -1) {
		if (ch == 'j')
			as_json = 1;
		else if (ch == 's' && cmd_audit_since(optarg, since,
		    sizeof since) == 0)
			continue;
		else
			cmd_usage(&cmd_audit_entry);
	}
	if (argc - optind > 1)
		cmd_usage(&cmd_audit_entry);
	req = json_pack("{s:s}", "cmd", "audit");
	if (optind < argc)
		json_object_set_new(req, "name", client_arg("NAME",
		    argv[optind]));
	if (since[0] != '\0')
		json_object_set_new(req, "since", json_string(since));
	if ((code = client_command(req, &r)) == EXIT_OK) {
		json_array_foreach(json_object_get(r, "events"), i, ev) {
			if (!as_json) {
				cmd_audit_line(ev);
				continue;
			}
			s = json_dumps(ev, JSON_COMPACT);
			printf("%s\n", s);
			free(s);
		}
		if (json_is_true(json_object_get(r, "truncated")))
			fprintf(stderr, "cellblock: older events left out; "
			    "narrow with --since or NAME\n");
		json_decref(r);
	}
	json_decref(req);
	return (code);
}
