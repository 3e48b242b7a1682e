/* cmd-run.c: `cellblock run NAME CODE|-`: a terminal client for one cell. */
/*
 * Two ways: as a Jupyter client (streams to the terminal, input() from
 * it), or with --json through the daemon's execution contract (the
 * control socket's execute: server/contract.c), printing the contract.
 */

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int	cmd_run_exec(int, char **);
static void	cmd_run_usage(void) __attribute__((noreturn));
static int	cmd_run_timed_out(struct jclient *, const char *, int, int);
static int	cmd_run_json(const char *, const char *, int);

/* The longest contract line read back (results may hold images). */
#define CMD_RUN_LINE_MAX	(512 * 1024 * 1024)

/* How long to wait for the cell's end after asking for the restart. */
#define CMD_RUN_RESTART_WAIT	15000

const struct cmd_entry cmd_run_entry = {
	"run", "[--json] [--timeout SECONDS] NAME CODE|-", cmd_run_exec
};

/* The usage line, then what the exit status says (also in cellblock.1). */
static void
cmd_run_usage(void)
{
	fprintf(stderr, "usage: cellblock %s %s\n"
	    "  --timeout S: interrupt the cell once it has run S seconds, and "
	    "restart\n"
	    "  the interpreter if it has not stopped %d s later (unlike the "
	    "session's\n"
	    "  exec-timeout, only for this run and from this client)\n"
	    "  --json: run through the daemon's execution contract and print "
	    "it as JSON\n"
	    "exit status: 0 ok, 1 the code raised (--json: any other status), "
	    "6 timed out (interrupted, or restarted)\n", cmd_run_entry.name,
	    cmd_run_entry.usage,
	    JCLIENT_TIMEOUT_GRACE / 1000);
	exit(EXIT_USAGE);
}

static char *
cmd_run_read_stdin(void)
{
	char	*buf = NULL;
	size_t	 len = 0, size = 0;
	ssize_t	 n;

	for (;;) {
		if (len + 65536 > size) {
			size = size ? size * 2 : 131072;
			buf = xrealloc(buf, size);
		}
		n = read(STDIN_FILENO, buf + len, size - len - 1);
		if (n <= 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	return (buf);
}

/*
 * The cell outlived --timeout: the interrupt ended it (state kept), or it
 * did not stop within the grace period, so the interpreter is restarted
 * through the control socket (as `cellblock restart` does; the daemon's
 * exec-timeout does the same), which fails the cell with SessionRestarted.
 */
static int
cmd_run_timed_out(struct jclient *jc, const char *name, int timeout, int rc)
{
	json_t	*req, *r = NULL;

	if (rc == JCLIENT_INTERRUPTED) {
		fprintf(stderr, "cellblock: timed out after %d s: the cell was "
		    "interrupted; the session's state is kept\n", timeout);
		return (EXIT_TIMEOUT);
	}
	fprintf(stderr, "cellblock: timed out after %d s: the cell did not "
	    "stop within %d s of its interrupt; restarting the interpreter "
	    "(the session's state is lost)\n", timeout,
	    JCLIENT_TIMEOUT_GRACE / 1000);
	req = json_pack("{s:s,s:s}", "cmd", "restart", "name", name);
	rc = client_command(req, &r);
	json_decref(req);
	json_decref(r);
	if (rc != EXIT_OK)
		return (rc);
	if (jclient_wait(jc, CMD_RUN_RESTART_WAIT) != 0)
		fprintf(stderr, "cellblock: no word of the cell after the "
		    "restart\n");
	return (EXIT_TIMEOUT);
}

static int
cmd_run_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	json_t		*req, *r;
	struct conninfo	 ci;
	struct jclient	*jc;
	char		*code, *cause;
	int		 ch, rc, timeout = 0, from_stdin, json = 0;

	r = NULL;
	while ((ch = getopt_long(argc, argv, "t:j", opts, NULL)) != -1) {
		if (ch == 'j')
			json = 1;
		else if (ch != 't' || (timeout = atoi(optarg)) <= 0)
			cmd_run_usage();
	}
	if (argc - optind != 2)
		cmd_run_usage();
	from_stdin = strcmp(argv[optind + 1], "-") == 0;
	code = from_stdin ? cmd_run_read_stdin() : xstrdup(argv[optind + 1]);
	if (json) {
		rc = cmd_run_json(argv[optind], code, timeout);
		free(code);
		return (rc);
	}

	req = json_pack("{s:s,s:s}", "cmd", "connect", "name", argv[optind]);
	rc = client_command(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		goto out;
	if (connfile_from_json(json_object_get(r, "connection"), &ci,
	    &cause) != 0) {
		fprintf(stderr, "cellblock: %s\n", cause);
		free(cause);
		rc = EXIT_FAILED;
		goto out;
	}
	/* On the shared endpoint the header's session picks the session. */
	jc = jclient_new(&ci, json_is_true(json_object_get(r, "shared")) ?
	    argv[optind] : NULL, &cause);
	if (jc == NULL || jclient_wait_ready(jc, 30000, &cause) != 0) {
		fprintf(stderr, "cellblock: %s\n", cause);
		free(cause);
		jclient_destroy(&jc);
		rc = EXIT_FAILED;
		goto out;
	}
	/* input() can be answered only when stdin is free and a terminal. */
	rc = jclient_execute(jc, code, !from_stdin && isatty(STDIN_FILENO),
	    timeout);
	if (rc == JCLIENT_OK || rc == JCLIENT_ERROR)
		rc = rc == JCLIENT_OK ? EXIT_OK : EXIT_FAILED;
	else
		rc = cmd_run_timed_out(jc, argv[optind], timeout, rc);
	jclient_destroy(&jc);
out:
	json_decref(r);
	free(code);
	return (rc);
}

/* The contract's status as the exit status (as without --json). */
static int
cmd_run_json_status(json_t *contract)
{
	const char	*st = json_string_value(json_object_get(contract,
			    "status"));

	if (st != NULL && strcmp(st, "ok") == 0)
		return (EXIT_OK);
	if (st != NULL && strcmp(st, "timeout") == 0)
		return (EXIT_TIMEOUT);
	return (EXIT_FAILED);
}

/*
 * The call waits as long as the cell runs: no reply timeout. Interrupted
 * here, the call runs on in the daemon (its id is in the contract).
 */
static int
cmd_run_json(const char *name, const char *code, int timeout)
{
	json_t	*req, *r;
	char	*out;
	int	 rc;

	client_timeout = -1;
	client_reply_max = CMD_RUN_LINE_MAX;
	req = json_pack("{s:s,s:s,s:s,s:I}", "cmd", "execute", "name", name,
	    "code", code, "timeout_ms", (json_int_t)timeout * 1000);
	rc = client_command(req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return (rc);
	out = json_dumps(json_object_get(r, "contract"), JSON_INDENT(2) |
	    JSON_SORT_KEYS);
	printf("%s\n", out != NULL ? out : "null");
	free(out);
	rc = cmd_run_json_status(json_object_get(r, "contract"));
	json_decref(r);
	return (rc);
}
