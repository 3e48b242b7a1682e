/* fuzz-control.c: fuzz the control socket's request parsing (server/control.c). */
/*
 * Input: what a peer writes to control.sock. It is cut into lines where
 * control_readable cuts it, and each line goes through
 * control_parse_request, then through the checks a handler makes of its
 * arguments before it touches any session: the session names, the limits
 * of `new` (config_limits) and the connection of `attach`
 * (connfile_from_json).
 *
 * Oracles: a parsed request is an object whose cmd is a known command; a
 * refused one has a cause; accepted limits are in range; an accepted
 * connection is well formed and survives connfile_to_json and back.
 */

#include <string.h>

#include "server.h"
#include "fuzz.h"

static void	fuzz_limits(json_t *);
static void	fuzz_connection(json_t *);
static void	fuzz_line(const char *, size_t);

static void
fuzz_limits(json_t *req)
{
	struct session_limits	 lim;
	char			*cause = NULL;

	if (config_limits(req, &lim, &cause) != 0) {
		FUZZ_CHECK(cause != NULL);
		free(cause);
		return;
	}
	FUZZ_CHECK(lim.cpu_millis >= 10 && lim.cpu_millis <= 1024 * 1000);
}

static void
fuzz_connection(json_t *conn)
{
	struct conninfo	 ci, again;
	json_t		*j;
	char		*cause = NULL;
	int		 i;

	if (connfile_from_json(conn, &ci, &cause) != 0) {
		FUZZ_CHECK(cause != NULL);
		free(cause);
		return;
	}
	FUZZ_CHECK(memchr(ci.transport, '\0', sizeof ci.transport) != NULL);
	FUZZ_CHECK(memchr(ci.ip, '\0', sizeof ci.ip) != NULL);
	FUZZ_CHECK(memchr(ci.key, '\0', sizeof ci.key) != NULL);
	FUZZ_CHECK(memchr(ci.scheme, '\0', sizeof ci.scheme) != NULL);
	FUZZ_CHECK(strcmp(ci.transport, "tcp") == 0 ||
	    strcmp(ci.transport, "ipc") == 0);
	for (i = 0; i < PORT_N; i++)
		FUZZ_CHECK(ci.ports[i] >= 0 && ci.ports[i] <= 65535);

	j = connfile_to_json(&ci);
	FUZZ_CHECK(connfile_from_json(j, &again, &cause) == 0);
	FUZZ_CHECK(memcmp(&ci, &again, sizeof ci) == 0);
	json_decref(j);
}

static void
fuzz_line(const char *line, size_t len)
{
	json_t		*req, *name;
	const char	*cmd;
	char		*cause = NULL;
	size_t		 row;

	if ((req = control_parse_request(line, len, &row, &cause)) == NULL) {
		FUZZ_CHECK(cause != NULL);
		free(cause);
		return;
	}
	FUZZ_CHECK(json_is_object(req));
	cmd = json_string_value(json_object_get(req, "cmd"));
	FUZZ_CHECK(cmd != NULL);

	name = json_object_get(req, "name");
	if (json_is_string(name))
		session_name_valid(json_string_value(name));
	name = json_object_get(req, "new");
	if (json_is_string(name))
		session_name_valid(json_string_value(name));
	if (strcmp(cmd, "new") == 0)
		fuzz_limits(req);
	else if (strcmp(cmd, "attach") == 0)
		fuzz_connection(json_object_get(req, "connection"));
	json_decref(req);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static int	 ready;
	const char	*p = (const char *)data, *end = p + len, *nl;

	if (!ready) {
		config_defaults();
		ready = 1;
	}
	/* As control_readable: only complete lines are requests. */
	while ((nl = memchr(p, '\n', end - p)) != NULL) {
		fuzz_line(p, nl - p);
		p = nl + 1;
	}
	return (0);
}
