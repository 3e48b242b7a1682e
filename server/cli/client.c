/* client.c: the CLI's side of the control socket, starting a daemon if none. */

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define CLIENT_START_WAIT	10000	/* ms for a new daemon to answer */

static char	*client_dir;
int		 client_timeout = 30000;	/* ms for one daemon reply */
size_t		 client_reply_max = 1024 * 1024; /* longest reply line */
static char	*client_buf;
static size_t	 client_len, client_size;

void
client_set_state_dir(const char *dir)
{
	free(client_dir);
	client_dir = connfile_state_dir(dir);
}

int
client_state_dir_set(void)
{
	return (client_dir != NULL);
}

const char *
client_state_dir(void)
{
	if (client_dir == NULL)
		client_set_state_dir(NULL);
	return (client_dir);
}

static int
client_try(const char *path)
{
	struct sockaddr_un	sa;
	int			fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/* As tmux starts its server: the daemon lives next to this binary. */
static int
client_start_daemon(char **cause)
{
	char	 exe[4096], *daemon;
	ssize_t	 n;
	pid_t	 pid;
	int	 status;

	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		xasprintf(cause, "cannot find myself: %s", strerror(errno));
		return (-1);
	}
	exe[n] = '\0';
	xasprintf(&daemon, "%s/cellblockd", dirname(exe));
	/* Installed, the daemon is in sbin beside our bin (docs/OPERATIONS.md). */
	if (access(daemon, X_OK) != 0) {
		free(daemon);
		xasprintf(&daemon, "%s/../sbin/cellblockd", exe);
	}
	pid = fork();
	if (pid == 0) {
		execl(daemon, "cellblockd", "--state-dir", client_state_dir(),
		    (char *)NULL);
		_exit(127);
	}
	if (pid == -1 || waitpid(pid, &status, 0) != pid ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		xasprintf(cause, "could not start %s (see %s/cellblockd.log)",
		    daemon, client_state_dir());
		free(daemon);
		return (-1);
	}
	free(daemon);
	return (0);
}

int
client_connect(const char *unused, int autostart, char **cause)
{
	char	*path;
	int	 fd, waited, started;

	(void)unused;
	xasprintf(&path, "%s/control.sock", client_state_dir());
	fd = client_try(path);
	if (fd == -1 && autostart && (errno == ENOENT || errno ==
	    ECONNREFUSED)) {
		/*
		 * If ours could not start, another may be starting (it holds
		 * the state directory's lock): wait for a socket either way.
		 */
		started = client_start_daemon(cause) == 0;
		for (waited = 0; fd == -1 && waited < CLIENT_START_WAIT;
		    waited += 20) {
			usleep(20000);
			fd = client_try(path);
		}
		if (fd != -1 && !started) {
			free(*cause);
			*cause = NULL;
		}
		if (fd == -1 && !started) {
			free(path);
			return (-1);
		}
	}
	if (fd == -1)
		xasprintf(cause, "no daemon at %s: %s", path, strerror(errno));
	free(path);
	return (fd);
}

int
client_send(int fd, json_t *req, char **cause)
{
	char	*s;
	size_t	 len, off = 0;
	ssize_t	 n;

	/* req is NULL, or will not dump, when argv held bytes not UTF-8. */
	if (req == NULL || (s = json_dumps(req, JSON_COMPACT)) == NULL) {
		*cause = xstrdup("an argument is not UTF-8 text");
		return (-1);
	}
	len = strlen(s);
	s[len++] = '\n';
	while (off < len) {
		n = send(fd, s + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			xasprintf(cause, "daemon: %s", strerror(errno));
			free(s);
			return (-1);
		}
		off += n;
	}
	free(s);
	return (0);
}

/* One line from the daemon; timeout in ms, -1 = wait forever. */
json_t *
client_recv(int fd, int timeout, char **cause)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	char		*nl = NULL;
	json_t		*r;
	json_error_t	 jerr;
	ssize_t		 n;
	size_t		 used;

	/* memchr may not be given the NULL of a buffer not yet made. */
	while (client_buf == NULL ||
	    (nl = memchr(client_buf, '\n', client_len)) == NULL) {
		if (client_len == client_size) {
			if (client_size >= client_reply_max) {
				*cause = xstrdup("daemon reply too long");
				return (NULL);
			}
			client_size = client_size ? client_size * 2 : 65536;
			if (client_size > client_reply_max)
				client_size = client_reply_max;
			client_buf = xrealloc(client_buf, client_size);
		}
		if (poll(&pfd, 1, timeout) == 0) {
			*cause = xstrdup("timed out waiting for the daemon");
			return (NULL);
		}
		n = read(fd, client_buf + client_len,
		    client_size - client_len);
		if (n == -1 && errno == EINTR) {
			*cause = xstrdup("interrupted");
			return (NULL);
		}
		if (n <= 0) {
			*cause = xstrdup("the daemon closed the connection");
			return (NULL);
		}
		client_len += n;
	}
	used = nl + 1 - client_buf;
	r = json_loadb(client_buf, used - 1, 0, &jerr);
	memmove(client_buf, client_buf + used, client_len - used);
	client_len -= used;
	if (r == NULL)
		xasprintf(cause, "bad reply from daemon: %s", jerr.text);
	return (r);
}

json_t *
client_call(int fd, json_t *req, char **cause)
{
	if (client_send(fd, req, cause) != 0)
		return (NULL);
	return (client_recv(fd, client_timeout, cause));
}

/*
 * An argument of argv as a request's string, what naming it for the
 * error: argv may hold any bytes, JSON only UTF-8 text. Not UTF-8 is a
 * usage error here, not an option quietly dropped from the request.
 */
json_t *
client_arg(const char *what, const char *value)
{
	json_t	*j;

	if ((j = json_string(value)) == NULL) {
		fprintf(stderr, "cellblock: %s: not UTF-8 text\n", what);
		exit(EXIT_USAGE);
	}
	return (j);
}

int
client_exit_code(json_t *reply)
{
	json_t	*code = json_object_get(reply, "code");

	return (json_is_integer(code) ? (int)json_integer_value(code) :
	    EXIT_FAILED);
}

/*
 * A reply as every command takes it: none (cause says why, freed here),
 * or a refusal, printed; the exit code. *reply is r when it is EXIT_OK.
 */
int
client_result(json_t *r, char *cause, json_t **reply)
{
	int	code;

	*reply = NULL;
	if (r == NULL) {
		fprintf(stderr, "cellblock: %s\n", cause);
		free(cause);
		return (EXIT_NODAEMON);
	}
	if (!json_is_true(json_object_get(r, "ok"))) {
		fprintf(stderr, "cellblock: %s\n",
		    json_string_value(json_object_get(r, "error")));
		code = client_exit_code(r);
		json_decref(r);
		return (code);
	}
	*reply = r;
	return (EXIT_OK);
}

/*
 * Connect (starting a daemon if none answers), send one request, and on
 * failure print the daemon's reason. Returns the exit code; *reply is the
 * reply when it is EXIT_OK.
 */
int
client_command(json_t *req, json_t **reply)
{
	json_t	*r;
	char	*cause;
	int	 fd;

	*reply = NULL;
	/* What json_pack makes of argv: NULL when an argument is not UTF-8. */
	if (req == NULL) {
		fprintf(stderr, "cellblock: an argument is not UTF-8 text\n");
		return (EXIT_USAGE);
	}
	if ((fd = client_connect(NULL, 1, &cause)) == -1) {
		fprintf(stderr, "cellblock: %s\n", cause);
		free(cause);
		return (EXIT_NODAEMON);
	}
	r = client_call(fd, req, &cause);
	close(fd);
	return (client_result(r, cause, reply));
}
