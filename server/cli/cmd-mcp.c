/* cmd-mcp.c: `cellblock mcp`: an MCP server on stdio, relayed to the daemon's one MCP engine. */
/*
 * The daemon does all of MCP (server/mcp.c): this switches a control
 * connection to the "mcp" stream op, as the calling uid (SO_PEERCRED),
 * then copies bytes both ways until either side closes. The framing
 * (newline-delimited JSON) and every error are the daemon's, so stdout
 * carries only MCP messages; our own complaints go to stderr.
 */

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define CMD_MCP_BUF	65536

static int	cmd_mcp_exec(int, char **);

const struct cmd_entry cmd_mcp_entry = {
	"mcp", "", cmd_mcp_exec
};

/* All of buf to fd; -1 when the other side is gone. */
static int
cmd_mcp_write(int fd, const char *buf, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
		buf += n;
		len -= n;
	}
	return (0);
}

/* One read from `from`, copied to `to`: 0, or -1 at EOF or an error. */
static int
cmd_mcp_copy(int from, int to)
{
	char	buf[CMD_MCP_BUF];
	ssize_t	n;

	n = read(from, buf, sizeof buf);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return (0);
	if (n <= 0)
		return (-1);
	return (cmd_mcp_write(to, buf, n));
}

static int
cmd_mcp_relay(int sock)
{
	struct pollfd	pfd[2] = {
		{ .fd = STDIN_FILENO, .events = POLLIN },
		{ .fd = sock, .events = POLLIN },
	};

	for (;;) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			return (EXIT_FAILED);
		}
		/* The host closed our stdin: the MCP session is over. */
		if (pfd[0].revents != 0 &&
		    cmd_mcp_copy(STDIN_FILENO, sock) != 0)
			return (EXIT_OK);
		if (pfd[1].revents != 0 &&
		    cmd_mcp_copy(sock, STDOUT_FILENO) != 0) {
			fprintf(stderr, "cellblock mcp: the daemon closed the "
			    "connection\n");
			return (EXIT_NODAEMON);
		}
	}
}

static int
cmd_mcp_exec(int argc, char **argv)
{
	json_t	*req, *r;
	char	*cause;
	int	 fd, code;

	(void)argv;
	if (argc != 1)
		cmd_usage(&cmd_mcp_entry);
	signal(SIGPIPE, SIG_IGN);
	if ((fd = client_connect(NULL, 1, &cause)) == -1) {
		fprintf(stderr, "cellblock mcp: %s\n", cause);
		free(cause);
		return (EXIT_NODAEMON);
	}
	req = json_pack("{s:s}", "cmd", "mcp");
	r = client_call(fd, req, &cause);
	json_decref(req);
	if (r == NULL || !json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "cellblock mcp: %s\n", r != NULL ?
		    json_string_value(json_object_get(r, "error")) : cause);
		code = r != NULL ? client_exit_code(r) : EXIT_NODAEMON;
		json_decref(r);
		close(fd);
		return (code);
	}
	json_decref(r);
	code = cmd_mcp_relay(fd);
	close(fd);
	return (code);
}
