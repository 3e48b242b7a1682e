/* contract-ops.c: the control socket's execute, result and files commands. */
/*
 * `cellblock run --json` and `cellblock cp` reach contract.c and files.c
 * through these rows of control_table (docs/CHANNEL.md lists the lines):
 *
 *   {"cmd":"execute","name","code","timeout_ms"?,"stdin"?:[..],
 *    "store_history"?,"stream"?}  -> {"event":{..}}* then
 *                                    {"ok":true,"contract":{..}}
 *   {"cmd":"result","id"}        -> {"ok":true,"contract":{..}}
 *   {"cmd":"cancel","id"}        -> {"ok":true}: interrupted (when it runs)
 *   {"cmd":"files","op":"list"|"remove","name","path"}
 *   {"cmd":"files","op":"put"|"get","name","path"} + one fd (SCM_RIGHTS):
 *                                    the local file the CLI opened as the
 *                                    caller, copied from or into, a chunk
 *                                    per loop turn; -> {"ok":true,"bytes"}
 *
 * A connection runs one long op at a time; if it closes first, a call
 * keeps running (its result stays retrievable by id) and a copy stops.
 */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "contract.h"
#include "files.h"

#define CONTRACT_OPS_CHUNK	(1024 * 1024)	/* bytes copied per loop turn */

struct contract_ops_run {
	struct control_conn	*conn;
	struct contract		*call;
	int			 in_run;	/* contract_run has not returned */
	json_t			*early;		/* done before it did */
};

struct contract_ops_copy {
	struct control_conn	*conn;
	struct session		*s;
	int			 put;
	int			 src;
	int			 dst;		/* get: the caller's file */
	struct files_write	*w;		/* put: the upload */
	uint64_t		 bytes;
	struct loop_timer	*timer;
	char			*path;
};

static json_t *
contract_ops_error(enum files_error e, char *cause)
{
	json_t	*r;

	r = control_error(e == FILES_ENOENT ? EXIT_NOSESSION : EXIT_FAILED,
	    "%s", cause);
	json_object_set_new(r, "kind", json_string(files_error_name(e)));
	free(cause);
	return (r);
}

/* Execute. */

static void
contract_ops_event(void *arg, json_t *ev)
{
	struct contract_ops_run	*r = arg;

	control_conn_send(r->conn, json_pack("{s:O}", "event", ev));
}

static void
contract_ops_done(void *arg, json_t *contract)
{
	struct contract_ops_run	*r = arg;

	if (r->in_run) {
		r->early = json_incref(contract);
		return;
	}
	control_conn_send(r->conn, json_pack("{s:b,s:O}", "ok", 1, "contract",
	    contract));
	control_conn_job_done(r->conn);
	contract_detach(r->call);
	free(r);
}

/* The peer left mid-call: the call runs on, kept by id. */
static void
contract_ops_run_gone(void *arg)
{
	struct contract_ops_run	*r = arg;

	contract_detach(r->call);
	free(r);
}

static json_t *
contract_ops_execute(struct control_conn *c, json_t *req)
{
	struct contract_req	 cr;
	struct contract_ops_run	*r;
	struct session		*s;
	json_t			*err, *t = json_object_get(req, "timeout_ms");
	json_t			*sh = json_object_get(req, "store_history");
	char			*cause;

	if ((s = control_conn_session(c, req, &err)) == NULL)
		return (err);
	if (control_conn_busy(c))
		return (control_error(EXIT_USAGE, "this connection is already "
		    "running a call"));
	memset(&cr, 0, sizeof cr);
	cr.code = json_string_value(json_object_get(req, "code"));
	cr.stdin_lines = json_object_get(req, "stdin");
	if (cr.code == NULL || strlen(cr.code) != json_string_length(
	    json_object_get(req, "code")))
		return (control_error(EXIT_USAGE, "code must be a string "
		    "without NUL"));
	if ((t != NULL && (!json_is_integer(t) || json_integer_value(t) < 0 ||
	    json_integer_value(t) > 86400000)) ||
	    (sh != NULL && !json_is_boolean(sh)))
		return (control_error(EXIT_USAGE, "timeout_ms must be 0 to "
		    "86400000, store_history a boolean"));
	if (contract_stdin_valid(cr.stdin_lines, &cause) != 0) {
		err = control_error(EXIT_USAGE, "%s", cause);
		free(cause);
		return (err);
	}
	cr.timeout_ms = t != NULL ? (int)json_integer_value(t) : 0;
	cr.store_history = sh == NULL || json_is_true(sh);
	cr.client = "cli";
	r = xcalloc(1, sizeof *r);
	r->conn = c;
	r->in_run = 1;
	r->call = contract_run(s, &cr, json_is_true(json_object_get(req,
	    "stream")) ? contract_ops_event : NULL, contract_ops_done, r,
	    &cause);
	r->in_run = 0;
	if (r->call == NULL) {
		free(r);
		err = control_error(EXIT_FAILED, "%s", cause);
		free(cause);
		return (err);
	}
	if (r->early != NULL) {		/* queue_full, or the session ended */
		err = json_pack("{s:b,s:o}", "ok", 1, "contract", r->early);
		contract_detach(r->call);
		free(r);
		return (err);
	}
	control_conn_job(c, contract_ops_run_gone, r);
	return (NULL);
}

static json_t *
contract_ops_cancel(struct control_conn *c, json_t *req)
{
	const char	*id = json_string_value(json_object_get(req, "id"));

	if (id == NULL)
		return (control_error(EXIT_USAGE, "no call id given"));
	if (contract_cancel_id(id, control_conn_uid(c)) != 0)
		return (control_error(EXIT_NOSESSION, "no call '%s' (unknown, "
		    "expired, or not yours)", id));
	return (json_pack("{s:b}", "ok", 1));
}

static json_t *
contract_ops_result(struct control_conn *c, json_t *req)
{
	const char	*id = json_string_value(json_object_get(req, "id"));
	json_t		*k;

	if (id == NULL)
		return (control_error(EXIT_USAGE, "no call id given"));
	if ((k = contract_lookup(id, control_conn_uid(c))) == NULL)
		return (control_error(EXIT_NOSESSION, "no call '%s' (unknown, "
		    "expired, or not yours)", id));
	return (json_pack("{s:b,s:o}", "ok", 1, "contract", k));
}

/* Files. */

static void
contract_ops_copy_free(struct contract_ops_copy *k, int ok)
{
	loop_timer_cancel(&k->timer);
	if (k->w != NULL)
		files_write_end(k->w, ok, NULL, NULL);
	if (k->src != -1)
		close(k->src);
	if (k->dst != -1)
		close(k->dst);
	session_remove_ref(k->s);
	free(k->path);
	free(k);
}

static void
contract_ops_copy_gone(void *arg)
{
	contract_ops_copy_free(arg, 0);
}

static void
contract_ops_copy_end(struct contract_ops_copy *k, json_t *reply)
{
	enum files_error	 e = FILES_EOK;
	char			*cause = NULL;
	struct control_conn	*c = k->conn;
	int			 r = 0;

	if (k->w != NULL) {
		r = files_write_end(k->w, reply == NULL, &e, &cause);
		k->w = NULL;
	}
	if (reply == NULL && r != 0)
		reply = contract_ops_error(e, cause);
	else if (reply == NULL)
		reply = json_pack("{s:b,s:I}", "ok", 1, "bytes",
		    (json_int_t)k->bytes);
	contract_ops_copy_free(k, 0);
	control_conn_job_done(c);
	control_conn_send(c, reply);
}

static int
contract_ops_write_all(int fd, const char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
		p += n;
		len -= n;
	}
	return (0);
}

/* One chunk per loop turn: a 1 GB copy must not stop every session. */
static void
contract_ops_copy_step(void *arg)
{
	struct contract_ops_copy *k = arg;
	static char		 buf[CONTRACT_OPS_CHUNK];
	enum files_error	 e;
	char			*cause;
	ssize_t			 n;

	k->timer = NULL;
	n = read(k->src, buf, sizeof buf);
	if (n == -1 && errno == EINTR)
		n = 0;
	else if (n == 0) {
		contract_ops_copy_end(k, NULL);
		return;
	}
	if (n < 0) {
		contract_ops_copy_end(k, control_error(EXIT_FAILED, "%s: read: "
		    "%s", k->path, strerror(errno)));
		return;
	}
	if (k->put && files_write_chunk(k->w, buf, n, &e, &cause) != 0) {
		contract_ops_copy_end(k, contract_ops_error(e, cause));
		return;
	}
	if (!k->put && contract_ops_write_all(k->dst, buf, n) != 0) {
		contract_ops_copy_end(k, control_error(EXIT_FAILED, "writing "
		    "the local file: %s", strerror(errno)));
		return;
	}
	k->bytes += n;
	k->timer = loop_timer_add(0, contract_ops_copy_step, k);
}

/* The caller's own file, passed as an fd: regular, opened the right way. */
static int
contract_ops_local_fd(struct control_conn *c, int put, int64_t *size,
    json_t **err)
{
	struct stat	st;
	int		fd = control_conn_take_fd(c), mode;

	if (fd == -1) {
		*err = control_error(EXIT_USAGE, "no file descriptor came with "
		    "the request");
		return (-1);
	}
	mode = fcntl(fd, F_GETFL) & O_ACCMODE;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (put && mode == O_WRONLY) || (!put && mode == O_RDONLY)) {
		close(fd);
		*err = control_error(EXIT_USAGE, "the local file must be a "
		    "regular file open for %s", put ? "reading" : "writing");
		return (-1);
	}
	*size = st.st_size;
	return (fd);
}

static json_t *
contract_ops_copy(struct control_conn *c, struct session *s, const char *path,
    int put)
{
	struct contract_ops_copy *k;
	enum files_error	 e;
	char			*cause;
	int64_t			 size;
	uint64_t		 rsize;
	json_t			*err;
	int			 fd;

	if (control_conn_busy(c))
		return (control_error(EXIT_USAGE, "this connection is already "
		    "copying"));
	if ((fd = contract_ops_local_fd(c, put, &size, &err)) == -1)
		return (err);
	k = xcalloc(1, sizeof *k);
	k->conn = c;
	k->s = s;
	session_add_ref(s);
	k->put = put;
	k->src = k->dst = -1;
	k->path = xstrdup(path);
	if (put) {
		k->src = fd;
		k->w = files_write_begin(s, path, size, &e, &cause);
	} else {
		k->dst = fd;
		k->src = files_open_beneath(s, path, &rsize, &e, &cause);
	}
	if ((put && k->w == NULL) || (!put && k->src == -1)) {
		contract_ops_copy_free(k, 0);
		return (contract_ops_error(e, cause));
	}
	control_conn_job(c, contract_ops_copy_gone, k);
	k->timer = loop_timer_add(0, contract_ops_copy_step, k);
	return (NULL);
}

static json_t *
contract_ops_files(struct control_conn *c, json_t *req)
{
	const char		*what = json_string_value(json_object_get(req,
				    "op"));
	json_t			*p = json_object_get(req, "path"), *err, *l;
	enum files_error	 e;
	struct session		*s;
	char			*cause;
	const char		*path;
	int			 truncated;

	if ((s = control_conn_session(c, req, &err)) == NULL)
		return (err);
	path = json_is_string(p) ? json_string_value(p) : "";
	if (what == NULL || (p != NULL && (!json_is_string(p) ||
	    strlen(path) != json_string_length(p))))
		return (control_error(EXIT_USAGE, "files: op and a path "
		    "string without NUL are needed"));
	if (strcmp(what, "list") == 0) {
		if ((l = files_list(s, path, &truncated, &e, &cause)) == NULL)
			return (contract_ops_error(e, cause));
		return (json_pack("{s:b,s:o,s:b}", "ok", 1, "entries", l,
		    "truncated", truncated));
	}
	if (strcmp(what, "remove") == 0) {
		if (files_remove(s, path, &e, &cause) != 0)
			return (contract_ops_error(e, cause));
		return (json_pack("{s:b}", "ok", 1));
	}
	if (strcmp(what, "put") == 0 || strcmp(what, "get") == 0)
		return (contract_ops_copy(c, s, path, strcmp(what, "put") == 0));
	return (control_error(EXIT_USAGE, "files: unknown op '%s'", what));
}

/* Our rows of the control socket's table, before it listens. */
void
contract_ops_init(void)
{
	control_handle("execute", contract_ops_execute);
	control_handle("result", contract_ops_result);
	control_handle("cancel", contract_ops_cancel);
	control_handle("files", contract_ops_files);
}
