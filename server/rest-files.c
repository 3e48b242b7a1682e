/* rest-files.c: a session's working directory over REST v1 (files.h). */
/*
 * Paths are resolved by server/files.c beneath the session's working
 * directory (no "..", no symlinks followed, owned by the session's uid,
 * served for a hibernated session without resuming it); this file maps
 * its error kinds onto status codes and streams the bytes. An upload goes
 * to disk chunk by chunk through the route's body sink, into a temporary
 * file renamed over the target only when the whole body has arrived, so
 * a cut-off upload leaves the old file as it was. A download is the open
 * descriptor handed to the front (http_reply_fd), never read into memory.
 * files.c audits every transfer.
 */

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "http.h"
#include "contract.h"
#include "files.h"
#include "rest.h"

/*
 * Legend: files.c's error kind; the HTTP status it becomes; the error
 * type in the reply's {"error": {"type"}}.
 */
static const struct {
	enum files_error	 e;
	u_int			 status;
	const char		*type;
} rest_files_errors[] = {
	{ FILES_ENOENT, 404, "not_found" },
	{ FILES_EINVAL, 400, "bad_path" },
	{ FILES_EACCES, 403, "forbidden" },
	{ FILES_ETOOBIG, 413, "too_large" },
	{ FILES_EQUOTA, 507, "quota" },
	{ FILES_EIO, 500, "io_error" },
};

/* An upload in progress, found again by its request (few at a time). */
struct rest_upload {
	struct http_req		*req;
	struct files_write	*w;
	uint64_t		 bytes;
	struct rest_upload	*next;
};
static struct rest_upload *rest_uploads;

static void
rest_files_error(struct http_req *req, enum files_error e, const char *cause)
{
	size_t	i;

	for (i = 0; i < nitems(rest_files_errors); i++) {
		if (rest_files_errors[i].e == e) {
			rest_req_error(req, rest_files_errors[i].status,
			    rest_files_errors[i].type, "%s", cause);
			return;
		}
	}
	rest_req_error(req, 500, "io_error", "%s", cause);
}

/* The path after /files/, captured by the route's {*}. */
static const char *
rest_files_path(struct http_req *req)
{
	const char	*p = http_param(req, 1);

	return (p != NULL ? p : "");
}

void
rest_files_get(struct http_req *req)
{
	struct session		*s;
	enum files_error	 e;
	uint64_t		 size;
	char			*cause;
	int			 fd;

	if ((s = rest_req_session(req)) == NULL)
		return;
	fd = files_open_beneath(s, rest_files_path(req), &size, &e, &cause);
	if (fd == -1) {
		rest_files_error(req, e, cause);
		free(cause);
		return;
	}
	http_reply_fd(req, 200, "application/octet-stream", fd, size);
}

void
rest_files_list(struct http_req *req)
{
	struct session		*s;
	enum files_error	 e;
	const char		*dir = http_query(req, "dir");
	char			*cause;
	int			 truncated = 0;
	json_t			*list;

	if ((s = rest_req_session(req)) == NULL)
		return;
	list = files_list(s, dir != NULL ? dir : "", &truncated, &e, &cause);
	if (list == NULL) {
		rest_files_error(req, e, cause);
		free(cause);
		return;
	}
	http_reply_json(req, 200, json_pack("{s:s,s:o,s:b}", "dir",
	    dir != NULL ? dir : "", "entries", list, "truncated", truncated));
}

void
rest_files_delete(struct http_req *req)
{
	struct session		*s;
	enum files_error	 e;
	char			*cause;

	if ((s = rest_req_session(req)) == NULL)
		return;
	if (files_remove(s, rest_files_path(req), &e, &cause) != 0) {
		rest_files_error(req, e, cause);
		free(cause);
		return;
	}
	http_reply_json(req, 200, json_pack("{s:s,s:b}", "path",
	    rest_files_path(req), "removed", 1));
}

static struct rest_upload **
rest_upload_find(struct http_req *req)
{
	struct rest_upload	**pp;

	for (pp = &rest_uploads; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->req == req)
			return (pp);
	}
	return (NULL);
}

/* Unlink an upload and end its file: kept (ok) or removed. */
static int
rest_upload_end(struct rest_upload **pp, int ok, enum files_error *e,
    char **cause)
{
	struct rest_upload	*up = *pp;
	int			 r = 0;

	*pp = up->next;
	if (up->req != NULL)
		http_on_close(up->req, NULL, NULL);
	if (up->w != NULL)
		r = files_write_end(up->w, ok, e, cause);
	free(up);
	return (r);
}

/* The client hung up mid-upload: the temporary file goes, the old stays. */
static void
rest_upload_gone(struct http_req *req, void *arg)
{
	struct rest_upload	**pp = rest_upload_find(req);

	(void)arg;
	if (pp != NULL) {
		(*pp)->req = NULL;
		rest_upload_end(pp, 0, NULL, NULL);
	}
}

/* The first chunk: the session, the path, the expected size, the file. */
static struct rest_upload *
rest_upload_begin(struct http_req *req)
{
	struct rest_upload	*up;
	struct session		*s;
	enum files_error	 e;
	const char		*cl = http_header(req, "Content-Length");
	int64_t			 expect = -1;
	char			*cause, *end;

	if ((s = rest_req_session(req)) == NULL)
		return (NULL);
	if (cl != NULL) {
		errno = 0;
		expect = strtoll(cl, &end, 10);
		if (errno != 0 || *end != '\0' || end == cl || expect < 0)
			expect = -1;
	}
	up = xcalloc(1, sizeof *up);
	up->req = req;
	up->w = files_write_begin(s, rest_files_path(req), expect, &e, &cause);
	if (up->w == NULL) {
		free(up);
		rest_files_error(req, e, cause);
		free(cause);
		return (NULL);
	}
	up->next = rest_uploads;
	rest_uploads = up;
	http_on_close(req, rest_upload_gone, up);
	return (up);
}

/* The last chunk has come: the file replaces the target; say so. */
static void
rest_upload_commit(struct http_req *req, struct rest_upload **pp)
{
	enum files_error	 e;
	uint64_t		 bytes = (*pp)->bytes;
	char			*cause;

	if (rest_upload_end(pp, 1, &e, &cause) != 0) {
		rest_files_error(req, e, cause);
		free(cause);
		return;
	}
	http_reply_json(req, 201, json_pack("{s:s,s:I}", "path",
	    rest_files_path(req), "size", (json_int_t)bytes));
}

/*
 * The route's body sink: each chunk of a PUT straight to the temporary
 * file, len 0 at the end. Any failure replies at once (the front drops
 * the rest of the body) and removes the temporary file.
 */
int
rest_files_sink(struct http_req *req, const void *buf, size_t len)
{
	struct rest_upload	**pp = rest_upload_find(req);
	enum files_error	 e;
	char			*cause;

	if (pp == NULL) {
		if (rest_upload_begin(req) == NULL)
			return (-1);
		pp = rest_upload_find(req);
	}
	if (len == 0) {
		rest_upload_commit(req, pp);
		return (0);
	}
	if (files_write_chunk((*pp)->w, buf, len, &e, &cause) != 0) {
		rest_upload_end(pp, 0, NULL, NULL);
		rest_files_error(req, e, cause);
		free(cause);
		return (-1);
	}
	(*pp)->bytes += len;
	return (0);
}

/* Reached only if the sink never replied (a body the front never fed). */
void
rest_files_put(struct http_req *req)
{
	rest_files_sink(req, NULL, 0);
}
