/* cmd-run.c: `cellblock run NAME CODE|-`: a terminal client for one cell. */

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int	cmd_run_exec(int, char **);

const struct cmd_entry cmd_run_entry = {
	"run", "[--timeout SECONDS] NAME CODE|-", cmd_run_exec
};

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

static int
cmd_run_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	json_t		*req, *r;
	struct conninfo	 ci;
	struct jclient	*jc;
	char		*code, *cause;
	int		 ch, rc, timeout = 0, from_stdin;

	while ((ch = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
		if (ch != 't' || (timeout = atoi(optarg)) <= 0)
			cmd_usage(&cmd_run_entry);
	}
	if (argc - optind != 2)
		cmd_usage(&cmd_run_entry);
	from_stdin = strcmp(argv[optind + 1], "-") == 0;
	code = from_stdin ? cmd_run_read_stdin() : xstrdup(argv[optind + 1]);

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
	rc = rc == 0 ? EXIT_OK : EXIT_FAILED;
	jclient_destroy(&jc);
out:
	json_decref(r);
	free(code);
	return (rc);
}
