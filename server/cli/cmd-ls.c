/* cmd-ls.c: `cellblock ls`: the caller's sessions (root: everyone's). */

#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int	cmd_ls_exec(int, char **);

const struct cmd_entry cmd_ls_entry = {
	"ls", "[--json]", cmd_ls_exec
};

static const char *
cmd_ls_user(int uid, char *buf, size_t len)
{
	struct passwd	*pw = getpwuid(uid);

	if (pw != NULL)
		return (pw->pw_name);
	snprintf(buf, len, "%d", uid);
	return (buf);
}

/* "-" where the host cannot tell (no cgroups: a weaker sandbox). */
static void
cmd_ls_memory(json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v))
		snprintf(buf, len, "%.1fM", json_integer_value(v) / 1048576.0);
	else
		snprintf(buf, len, "-");
}

static void
cmd_ls_cpu(json_t *v, char *buf, size_t len)
{
	if (json_is_number(v))
		snprintf(buf, len, "%.2fs", json_number_value(v));
	else
		snprintf(buf, len, "-");
}

/* The newest checkpoint: its age and size ("-" if none). */
static void
cmd_ls_checkpoint(json_t *c, char *buf, size_t len)
{
	long long	age;

	if (!json_is_object(c)) {
		snprintf(buf, len, "-");
		return;
	}
	age = (long long)time(NULL) - json_integer_value(json_object_get(c,
	    "time"));
	snprintf(buf, len, "%llds ago %.1fM", age < 0 ? 0 : age,
	    json_integer_value(json_object_get(c, "bytes")) / 1048576.0);
}

/* Idle seconds, then the session's idle timeout ("never" for 0). */
static void
cmd_ls_idle(json_t *s, char *buf, size_t len)
{
	json_t		*t;
	long long	 idle;

	t = json_object_get(json_object_get(s, "limits"), "idle_timeout");
	idle = json_integer_value(json_object_get(s, "idle_seconds"));
	if (!json_is_integer(t))
		snprintf(buf, len, "%llds", idle);
	else if (json_integer_value(t) == 0)
		snprintf(buf, len, "%llds/never", idle);
	else
		snprintf(buf, len, "%llds/%llds", idle,
		    (long long)json_integer_value(t));
}

static void
cmd_ls_table(json_t *list)
{
	json_t		*s;
	size_t		 i;
	char		 ubuf[16], mbuf[16], cbuf[16], kbuf[32], ibuf[48];
	const char	*conn, *weaker = NULL, *egress;

	/* IDLE: seconds idle / the idle timeout that hibernates it. */
	printf("%-24s %-12s %-10s %7s %13s %8s %8s %-16s %s\n", "NAME",
	    "STATE", "OWNER", "PID", "IDLE", "MEMORY", "CPU", "CHECKPOINT",
	    "CONNECTION");
	json_array_foreach(list, i, s) {
		conn = json_string_value(json_object_get(s,
		    "connection_file"));
		cmd_ls_memory(json_object_get(s, "memory"), mbuf, sizeof mbuf);
		cmd_ls_cpu(json_object_get(s, "cpu_seconds"), cbuf, sizeof cbuf);
		cmd_ls_checkpoint(json_object_get(s, "checkpoint"), kbuf,
		    sizeof kbuf);
		cmd_ls_idle(s, ibuf, sizeof ibuf);
		printf("%-24s %-12s %-10s %7lld %13s %8s %8s %-16s %s%s\n",
		    json_string_value(json_object_get(s, "name")),
		    json_string_value(json_object_get(s, "state")),
		    cmd_ls_user(json_integer_value(json_object_get(s, "owner")),
		    ubuf, sizeof ubuf),
		    (long long)json_integer_value(json_object_get(s, "pid")),
		    ibuf, mbuf, cbuf, kbuf,
		    conn ? conn : "(shared endpoint)",
		    json_is_true(json_object_get(s, "attached")) ?
		    " [attached]" : "");
		/* Its egress allowlist, when it has one, on a line below. */
		egress = json_string_value(json_object_get(s, "allow_net"));
		if (egress != NULL && *egress != '\0')
			printf("  allow-net %s\n", egress);
		weaker = json_string_value(json_object_get(s,
		    "weaker_sandbox"));
	}
	if (weaker != NULL)
		printf("WARNING: weaker sandbox: protections off: %s\n", weaker);
}

/* Where the HTTP front is, on stderr: the table stays the table. */
static void
cmd_ls_gateway(json_t *http)
{
	const char	*url = json_string_value(json_object_get(http, "url"));

	if (url != NULL)
		fprintf(stderr, "kernel gateway: %s (tokens: cellblock token "
		    "new)\n", url);
}

static int
cmd_ls_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	json_t	*req, *r, *list;
	int	 ch, code, as_json = 0;
	char	*s;

	while ((ch = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (ch != 'j')
			cmd_usage(&cmd_ls_entry);
		as_json = 1;
	}
	if (optind != argc)
		cmd_usage(&cmd_ls_entry);
	req = json_pack("{s:s}", "cmd", "ls");
	if ((code = client_command(req, &r)) == EXIT_OK) {
		list = json_object_get(r, "sessions");
		if (as_json) {
			s = json_dumps(list, JSON_INDENT(2));
			printf("%s\n", s);
			free(s);
		} else {
			cmd_ls_table(list);
			cmd_ls_gateway(json_object_get(r, "http"));
		}
		json_decref(r);
	}
	json_decref(req);
	return (code);
}
