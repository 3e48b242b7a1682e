/* cmd-attach.c: `cellblock attach FILE`: the launcher a kernelspec runs. */
/*
 * Jupyter starts this with the connection file it wrote; the daemon binds
 * a session to those ports and key, and this process stands for the
 * kernel: it lives while the session lives, turns SIGINT into an
 * interrupt and SIGTERM into a shutdown, and if it is killed outright its
 * control connection closes and the daemon ends the session.
 */

#include <sys/signalfd.h>

#include <ctype.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"

#define ATTACH_RETRY_MS		5000	/* a restart's predecessor is ending */
#define ATTACH_END_WAIT		5000
#define ATTACH_ARGS_MAX		256	/* kernel arguments, and their bytes: */
#define ATTACH_ARGS_BYTES	65536	/* far above any real kernelspec's */

static int	cmd_attach_exec(int, char **);

const struct cmd_entry cmd_attach_entry = {
	"attach", "CONNECTION_FILE [--name NAME] [KERNEL_ARG ...]",
	cmd_attach_exec
};

/*
 * jupyter_server names a notebook's kernel session in JPY_SESSION_NAME;
 * the same notebook and user give the same session name, so it can be
 * found again later.
 */
static void
cmd_attach_jpy_name(char *buf, size_t len)
{
	const char	*jpy = getenv("JPY_SESSION_NAME");
	struct passwd	*pw = getpwuid(getuid());
	u_char		 h[32];
	char		 user[17];
	size_t		 i;

	buf[0] = '\0';
	if (jpy == NULL || *jpy == '\0')
		return;
	snprintf(user, sizeof user, "%s", pw ? pw->pw_name : "user");
	for (i = 0; user[i] != '\0'; i++) {
		if (!isalnum((u_char)user[i]) && user[i] != '_')
			user[i] = '_';
	}
	crypto_hash_sha256(h, (const u_char *)jpy, strlen(jpy));
	snprintf(buf, len, "nb-%s-%02x%02x%02x%02x%02x", user, h[0], h[1],
	    h[2], h[3], h[4]);
}

static int
cmd_attach_signals(void)
{
	sigset_t	set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return (signalfd(-1, &set, SFD_CLOEXEC));
}

static int
cmd_attach_request(int fd, json_t *req, json_t **reply)
{
	int64_t	 end = zclock_mono() + ATTACH_RETRY_MS;
	char	*cause;
	json_t	*r;

	for (;;) {
		if ((r = client_call(fd, req, &cause)) == NULL) {
			fprintf(stderr, "cellblock: %s\n", cause);
			free(cause);
			return (EXIT_NODAEMON);
		}
		if (json_is_true(json_object_get(r, "ok"))) {
			*reply = r;
			return (EXIT_OK);
		}
		if (!json_is_true(json_object_get(r, "retry")) ||
		    zclock_mono() > end)
			break;
		json_decref(r);
		zclock_sleep(100);
	}
	fprintf(stderr, "cellblock: %s\n",
	    json_string_value(json_object_get(r, "error")));
	json_decref(r);
	return (EXIT_FAILED);
}

/* Wait for the session to end, relaying signals. */
static int
cmd_attach_wait(int fd, int sigfd, const char *name)
{
	struct pollfd		 pfd[2];
	struct signalfd_siginfo	 si;
	json_t			*m, *req;
	char			*cause;
	int64_t			 deadline = 0;

	pfd[0].fd = fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = sigfd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (deadline != 0 && zclock_mono() > deadline)
			return (EXIT_OK);	/* our exit ends it anyway */
		if (poll(pfd, 2, 200) <= 0)
			continue;
		if ((pfd[1].revents & POLLIN) &&
		    read(sigfd, &si, sizeof si) == sizeof si) {
			req = json_pack("{s:s,s:s}", "cmd",
			    si.ssi_signo == SIGINT ? "interrupt" : "kill",
			    "name", name);
			/* A lost daemon shows as a hangup on fd below. */
			if (client_send(fd, req, &cause) != 0)
				free(cause);
			json_decref(req);
			if (si.ssi_signo != SIGINT && deadline == 0)
				deadline = zclock_mono() + ATTACH_END_WAIT;
		}
		if ((pfd[0].revents & (POLLIN | POLLHUP)) == 0)
			continue;
		if ((m = client_recv(fd, 1000, &cause)) == NULL) {
			fprintf(stderr, "cellblock: %s\n", cause);
			free(cause);
			return (EXIT_FAILED);
		}
		if (json_object_get(m, "event") != NULL) {
			fprintf(stderr, "cellblock: session %s ended: %s\n",
			    name, json_string_value(json_object_get(m,
			    "reason")));
			json_decref(m);
			return (EXIT_OK);
		}
		json_decref(m);
	}
}

/*
 * What follows the connection file: our --name, and the arguments a
 * client added to the kernelspec's argv (jupyter_client's
 * extra_arguments: --Class.trait=value, IPython's flags). Those are the
 * session's kernel arguments, passed through as they are; the runner
 * applies the ones that configure its shell and logs the rest. Only
 * their count and size are checked here: an odd one must not stop the
 * kernel from starting.
 */
static int
cmd_attach_args(int argc, char **argv, char *name, size_t len,
    json_t **args)
{
	size_t	 bytes = 0;
	int	 i, passthrough = 0;

	*args = json_array();
	for (i = 0; i < argc; i++) {
		if (!passthrough && strcmp(argv[i], "--") == 0) {
			passthrough = 1;
			continue;
		}
		if (!passthrough && strcmp(argv[i], "--name") == 0 &&
		    i + 1 < argc) {
			snprintf(name, len, "%s", argv[++i]);
			continue;
		}
		if (!passthrough && strncmp(argv[i], "--name=", 7) == 0) {
			snprintf(name, len, "%s", argv[i] + 7);
			continue;
		}
		bytes += strlen(argv[i]);
		if (json_array_size(*args) >= ATTACH_ARGS_MAX ||
		    bytes > ATTACH_ARGS_BYTES) {
			fprintf(stderr, "cellblock: more than %d kernel "
			    "arguments or %d bytes of them\n", ATTACH_ARGS_MAX,
			    ATTACH_ARGS_BYTES);
			json_decref(*args);
			return (-1);
		}
		if (json_array_append_new(*args, json_string(argv[i])) != 0)
			fprintf(stderr, "cellblock: kernel argument %d is not "
			    "UTF-8; ignored\n", i + 1);
	}
	return (0);
}

static int
cmd_attach_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	char		 name[CELLBLOCK_NAME_MAX + 1], *cause;
	json_t		*conn, *req, *r, *args;
	json_error_t	 jerr;
	int		 ch, fd, sigfd, rc;

	cmd_attach_jpy_name(name, sizeof name);
	/* "+": options end at the connection file; the rest is ours below. */
	while ((ch = getopt_long(argc, argv, "+n:", opts, NULL)) != -1) {
		if (ch != 'n')
			cmd_usage(&cmd_attach_entry);
		snprintf(name, sizeof name, "%s", optarg);
	}
	if (argc - optind < 1)
		cmd_usage(&cmd_attach_entry);
	if (cmd_attach_args(argc - optind - 1, argv + optind + 1, name,
	    sizeof name, &args) != 0)
		return (EXIT_USAGE);
	if ((conn = json_load_file(argv[optind], 0, &jerr)) == NULL) {
		fprintf(stderr, "cellblock: %s: %s\n", argv[optind], jerr.text);
		json_decref(args);
		return (EXIT_USAGE);
	}
	/* Signals first: Jupyter may interrupt before we are attached. */
	sigfd = cmd_attach_signals();
	if ((fd = client_connect(NULL, 1, &cause)) == -1) {
		fprintf(stderr, "cellblock: %s\n", cause);
		free(cause);
		json_decref(conn);
		json_decref(args);
		return (EXIT_NODAEMON);
	}
	req = json_pack("{s:s,s:o,s:o}", "cmd", "attach", "connection", conn,
	    "kernel_args", args);
	if (name[0] != '\0')
		json_object_set_new(req, "name", json_string(name));
	rc = cmd_attach_request(fd, req, &r);
	json_decref(req);
	if (rc != EXIT_OK)
		return (rc);
	snprintf(name, sizeof name, "%s", json_string_value(json_object_get(
	    json_object_get(r, "session"), "name")));
	json_decref(r);
	fprintf(stderr, "cellblock: attached to session %s\n", name);
	return (cmd_attach_wait(fd, sigfd, name));
}
