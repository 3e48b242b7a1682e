/* rest-req.c: what every REST v1 handler shares: errors, path sessions. */
/*
 * Below rest.c, rest-exec.c and rest-files.c, which all call down into
 * it: the {"error": {"type", "message"}} reply, the session of a path's
 * {x} (a 404 when the caller may not see it, so that a token learns
 * nothing of other owners' sessions), and the session's REST shape.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "http.h"
#include "rest.h"

void
rest_req_error(struct http_req *req, u_int status, const char *type,
    const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	log_debug("rest: %s %s: %u %s: %s", http_method(req), http_path(req),
	    status, type, msg);
	http_reply_json(req, status, json_pack("{s:{s:s,s:s}}", "error",
	    "type", type, "message", msg));
	free(msg);
}

/* The session of the path's {x}, if the caller may see it; else a 404. */
struct session *
rest_req_session(struct http_req *req)
{
	const char	*name = http_param(req, 0);
	struct session	*s;

	s = name != NULL ? session_find(name) : NULL;
	if (s == NULL || s->ending || !session_visible(s, http_uid(req))) {
		rest_req_error(req, 404, "not_found", "no session '%s'",
		    name != NULL ? name : "");
		return (NULL);
	}
	return (s);
}

/* The control socket's description, with the id the gateway uses too. */
json_t *
rest_req_describe(struct session *s)
{
	json_t	*d = factory_describe(s);
	char	 id[37];

	gateway_kernel_id(s, id);
	json_object_set_new(d, "id", json_string(id));
	json_object_del(d, "connection_file");	/* REST needs no ZeroMQ */
	return (d);
}
