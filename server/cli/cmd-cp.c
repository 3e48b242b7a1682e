/* cmd-cp.c: `cellblock cp LOCAL NAME:PATH` and `cellblock cp NAME:PATH LOCAL`. */
/*
 * The local file is opened here, as the caller, and handed to the daemon
 * as a descriptor (SCM_RIGHTS) with the control socket's files request:
 * the daemon, which runs as root, never opens a path of the caller's. The
 * session's side is resolved beneath its working directory
 * (server/files.c). A download goes to a temporary file beside LOCAL,
 * renamed over it once complete, so a failed copy leaves LOCAL as it was.
 */

#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int	cmd_cp_exec(int, char **);

const struct cmd_entry cmd_cp_entry = {
	"cp", "LOCAL NAME:PATH | NAME:PATH LOCAL", cmd_cp_exec
};

/* NAME:PATH: a valid session name before the first colon, no slash in it. */
static int
cmd_cp_remote(const char *arg, char *name, size_t size, const char **path)
{
	const char	*colon = strchr(arg, ':');
	size_t		 n;

	if (colon == NULL || memchr(arg, '/', colon - arg) != NULL)
		return (0);
	n = colon - arg;
	if (n == 0 || n >= size || n > CELLBLOCK_NAME_MAX)
		return (0);
	memcpy(name, arg, n);
	name[n] = '\0';
	*path = colon + 1;
	return (1);
}

/* The request line with fd attached. */
static int
cmd_cp_send(int sock, json_t *req, int fd, char **cause)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*h;
	char		*line;
	size_t		 len;
	ssize_t		 n;

	line = json_dumps(req, JSON_COMPACT);
	len = strlen(line);
	line[len++] = '\n';
	iov.iov_base = line;
	iov.iov_len = len;
	memset(&mh, 0, sizeof mh);
	memset(&cm, 0, sizeof cm);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof cm.buf;
	h = CMSG_FIRSTHDR(&mh);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof fd);
	/* The line is short: one sendmsg takes it whole, with the fd. */
	n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	free(line);
	if (n != (ssize_t)len) {
		xasprintf(cause, "daemon: %s", n == -1 ? strerror(errno) :
		    "short write");
		return (-1);
	}
	return (0);
}

/* Send, then wait as long as the copy takes. */
static int
cmd_cp_call(const char *name, const char *path, const char *op, int fd)
{
	json_t	*req, *r = NULL;
	char	*cause = NULL;
	int	 sock, rc;

	if ((sock = client_connect(NULL, 1, &cause)) == -1) {
		fprintf(stderr, "cellblock: %s\n", cause);
		free(cause);
		return (EXIT_NODAEMON);
	}
	req = json_pack("{s:s,s:s,s:s,s:s}", "cmd", "files", "op", op, "name",
	    name, "path", path);
	if (cmd_cp_send(sock, req, fd, &cause) == 0)
		r = client_recv(sock, -1, &cause);
	json_decref(req);
	close(sock);
	if ((rc = client_result(r, cause, &r)) == EXIT_OK)
		json_decref(r);
	return (rc);
}

static int
cmd_cp_put(const char *local, const char *name, const char *path)
{
	int	fd, rc;

	if ((fd = open(local, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "cellblock: %s: %s\n", local, strerror(errno));
		return (EXIT_FAILED);
	}
	rc = cmd_cp_call(name, path, "put", fd);
	close(fd);
	return (rc);
}

/* LOCAL, or LOCAL/basename(PATH) when LOCAL is a directory. */
static char *
cmd_cp_target(const char *local, const char *path)
{
	struct stat	 st;
	char		*copy, *t;

	if (stat(local, &st) != 0 || !S_ISDIR(st.st_mode))
		return (xstrdup(local));
	copy = xstrdup(path);
	xasprintf(&t, "%s/%s", local, basename(copy));
	free(copy);
	return (t);
}

static mode_t
cmd_cp_umask(void)
{
	mode_t	m = umask(0);

	umask(m);
	return (m);
}

static int
cmd_cp_get(const char *name, const char *path, const char *local)
{
	char	*target = cmd_cp_target(local, path), *tmp;
	int	 fd, rc;

	xasprintf(&tmp, "%s.cellblock-XXXXXX", target);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		fprintf(stderr, "cellblock: %s: %s\n", tmp, strerror(errno));
		free(tmp);
		free(target);
		return (EXIT_FAILED);
	}
	/* mkstemp's 0600 would be surprising: as a new file would be. */
	fchmod(fd, 0666 & ~cmd_cp_umask());
	rc = cmd_cp_call(name, path, "get", fd);
	close(fd);
	if (rc == EXIT_OK && rename(tmp, target) != 0) {
		fprintf(stderr, "cellblock: %s: %s\n", target, strerror(errno));
		rc = EXIT_FAILED;
	}
	if (rc != EXIT_OK)
		unlink(tmp);
	free(tmp);
	free(target);
	return (rc);
}

static int
cmd_cp_exec(int argc, char **argv)
{
	char		 n1[CELLBLOCK_NAME_MAX + 1], n2[CELLBLOCK_NAME_MAX + 1];
	const char	*p1, *p2;
	int		 r1, r2;

	if (argc != 3)
		cmd_usage(&cmd_cp_entry);
	r1 = cmd_cp_remote(argv[1], n1, sizeof n1, &p1);
	r2 = cmd_cp_remote(argv[2], n2, sizeof n2, &p2);
	if (r2 && !r1)
		return (cmd_cp_put(argv[1], n2, p2));
	if (r1 && !r2)
		return (cmd_cp_get(n1, p1, argv[2]));
	fprintf(stderr, "cellblock: cp: exactly one of the two must be "
	    "NAME:PATH (write a local path with a colon as ./a:b)\n");
	return (EXIT_USAGE);
}
