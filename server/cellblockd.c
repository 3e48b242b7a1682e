/* cellblockd.c: the daemon: options, state directory, signals, the loop. */

#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "server.h"
#include "contract.h"
#include "rest.h"
#include "mcp.h"

char		*server_state_dir;
char		*server_shim_path;
char		*server_runner_path;
char		*server_zygote_lib;
char		*server_init_path;
uid_t		 server_uid;

static int	 server_sigfd = -1;
static int	 server_quit;
static struct zygote_config server_zc;
static int	 server_zygote_backoff = 1;	/* seconds before a restart */
static struct loop_timer *server_zygote_timer;
static struct loop_io	*server_sig_io;
static struct loop_io	*server_zygote_io;

static void	usage(void) __attribute__((noreturn));
static void	server_zygote_reaped(pid_t, int, void *);

static void
usage(void)
{
	fprintf(stderr, "usage: cellblockd [-fv] [--foreground] "
	    "[--state-dir DIR] [--config FILE]\n"
	    "                  [--address IP] [--transport tcp|ipc] "
	    "[--max-message SIZE]\n"
	    "                  [--rootfs DIR] [--allow-weaker-sandbox] "
	    "[--http-listen ADDRESS:PORT|off]\n"
	    "                  [--warm-pool N]\n");
	exit(EXIT_USAGE);
}

/* Paths of our siblings: the build tree first, then an installed layout. */
static char *
server_find(const char *exedir, const char *const *candidates)
{
	char	*path;

	char	*real;

	for (; *candidates != NULL; candidates++) {
		xasprintf(&path, "%s/%s", exedir, *candidates);
		real = realpath(path, NULL);
		free(path);
		if (real != NULL && access(real, R_OK) == 0)
			return (real);
		free(real);
	}
	return (NULL);
}

static void
server_paths(void)
{
	static const char *const shims[] = { "cellblock-shim",
	    "../libexec/cellblock/cellblock-shim", NULL };
	static const char *const inits[] = { "cellblock-init",
	    "../libexec/cellblock/cellblock-init", NULL };
	static const char *const zygotes[] = { "cellblock-zygote.so",
	    "../lib/cellblock/cellblock-zygote.so", NULL };
	static const char *const runners[] = {
	    "../kernel-shim/runner/cellblock_runner.py",
	    "../share/cellblock/runner/cellblock_runner.py", NULL };
	char	exe[4096], *dir;
	ssize_t	n;

	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		fatal("readlink /proc/self/exe");
	exe[n] = '\0';
	dir = dirname(exe);
	if ((server_shim_path = server_find(dir, shims)) == NULL)
		fatalx("cannot find cellblock-shim next to %s", dir);
	if ((server_runner_path = server_find(dir, runners)) == NULL)
		fatalx("cannot find the runner (cellblock_runner.py) near %s",
		    dir);
	/* Without it sessions still start, by exec: the zygote is speed. */
	server_zygote_lib = server_find(dir, zygotes);
	/* Without it pid 1 stays a copy of its parent: memory, not safety. */
	if ((server_init_path = server_find(dir, inits)) == NULL)
		log_warn("no cellblock-init next to %s: pid 1 of each session "
		    "stays a copy of the process that forked it", dir);
}

static void
server_mkdir(const char *sub, mode_t mode)
{
	char	*path;

	if (sub == NULL)
		path = xstrdup(server_state_dir);
	else
		xasprintf(&path, "%s/%s", server_state_dir, sub);
	if (mkdir(path, mode) != 0 && errno != EEXIST)
		fatal("mkdir %s", path);
	if (chmod(path, mode) != 0)
		fatal("chmod %s", path);
	free(path);
}

/*
 * Other users reach a root daemon through control.sock, so its directories
 * are traversable but not listable; each user's files are their own.
 */
static void
server_state(void)
{
	mode_t	mode = server_uid == 0 ? 0711 : 0700;

	server_mkdir(NULL, mode);
	server_mkdir("sessions", mode);
	server_mkdir("work", mode);
	server_mkdir("ipc", mode);
}

/*
 * One daemon per state directory: a second one would unlink the first's
 * socket and fight over its sessions. The lock lives as long as we do.
 */
static void
server_lock(void)
{
	char	*path, pid[32];
	int	 fd;

	xasprintf(&path, "%s/cellblockd.pid", server_state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		fatal("%s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		memset(pid, 0, sizeof pid);
		if (read(fd, pid, sizeof pid - 1) < 0)
			pid[0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		fatalx("another cellblockd (pid %s) serves %s", pid[0] ? pid :
		    "?", server_state_dir);
	}
	free(path);
}

static void
server_write_pid(void)
{
	char	*path, buf[32];
	int	 fd;

	xasprintf(&path, "%s/cellblockd.pid", server_state_dir);
	if ((fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW)) !=
	    -1) {
		snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
		if (write(fd, buf, strlen(buf)) < 0)
			log_warn("%s: %s", path, strerror(errno));
		close(fd);
	}
	free(path);
}

static void
server_signals(void)
{
	sigset_t	set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread exists, so every thread inherits it. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		fatal("sigprocmask");
	signal(SIGPIPE, SIG_IGN);
	server_sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (server_sigfd == -1)
		fatal("signalfd");
}

static void
server_signal_event(int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo	si;

	(void)fd;
	(void)events;
	(void)arg;
	while (read(server_sigfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo != SIGCHLD) {
			log_info("signal %d: shutting down", si.ssi_signo);
			server_quit = 1;
		}
	}
	/* Children are reaped by their pidfds (server/child.c). */
	child_sigchld();
	if (server_quit)
		loop_quit();
}

/* The zygote (docs/ZYGOTE.md): started once, restarted with a backoff. */
static void
server_zygote_event(int fd, uint32_t events, void *arg)
{
	char	*cause = NULL;

	(void)fd;
	(void)events;
	(void)arg;
	if (zygote_on_readable(&cause) != 0) {
		log_warn("zygote: %s; stopping it", cause);
		loop_io_remove(&server_zygote_io);
		zygote_stop(cause);
		free(cause);
		return;
	}
	if (zygote_ready())
		server_zygote_backoff = 1;
}

static void
server_zygote_start(void)
{
	char	*cause;

	if (zygote_start(&server_zc, &cause) != 0) {
		log_warn("zygote: %s; sessions start by exec", cause);
		free(cause);
		return;
	}
	server_zygote_io = loop_io_add(zygote_fd(), EPOLLIN,
	    server_zygote_event, NULL);
	child_watch(zygote_pid(), server_zygote_reaped, NULL);
}

static void
server_zygote_restart(void *arg)
{
	(void)arg;
	server_zygote_timer = NULL;
	if (!server_quit)
		server_zygote_start();
}

/* The zygote exited; its restart is scheduled. */
static void
server_zygote_reaped(pid_t pid, int status, void *arg)
{
	char	*cause = NULL;

	(void)arg;
	/* Out of the loop before zygote_reaped closes the descriptor. */
	loop_io_remove(&server_zygote_io);
	if (!zygote_reaped(pid, status, &cause))
		return;
	log_warn("zygote pid %ld %s; sessions start by exec, restart in %d s",
	    (long)pid, cause, server_zygote_backoff);
	free(cause);
	if (server_zygote_timer == NULL && !server_quit)
		server_zygote_timer = loop_timer_add(server_zygote_backoff *
		    1000, server_zygote_restart, NULL);
	if (server_zygote_backoff < 60)
		server_zygote_backoff *= 2;
}

/*
 * Its uid is the one just past the session range, so no session has it;
 * its home is its own, for the font cache matplotlib builds once.
 */
static void
server_zygote_init(void)
{
	char	*home;

	if (!cfg.zygote || !contain_enabled() || server_zygote_lib == NULL) {
		log_info("zygote: off (%s); sessions start by exec",
		    !cfg.zygote ? "zygote = no" : !contain_enabled() ?
		    "no sandbox" : "cellblock-zygote.so not found");
		return;
	}
		xasprintf(&home, "%s/zygote", server_state_dir);
	server_zc.uid = server_zc.gid = (uid_t)-1;
	if (server_uid == 0)
		server_zc.uid = server_zc.gid = cfg.uid_base + cfg.uid_count;
	if (mkdir(home, 0700) != 0 && errno != EEXIST)
		fatal("mkdir %s", home);
	if (server_uid == 0 && chown(home, server_zc.uid, server_zc.gid) != 0)
		fatal("chown %s", home);
	server_zc.shim = server_shim_path;
	server_zc.lib = server_zygote_lib;
	server_zc.runner = server_runner_path;
	server_zc.python = cfg.python;
	server_zc.home = home;
	server_zygote_start();
}

static void
server_shared(void)
{
	struct conninfo	 ci;
	char		*path, *cause;

	endpoint_default_ci(&ci, "shared");
	if ((endpoint_shared = endpoint_new(NULL, &ci, &cause)) == NULL)
		fatalx("shared endpoint: %s", cause);
	xasprintf(&path, "%s/shared.json", server_state_dir);
	if (endpoint_write_file(endpoint_shared, path, server_uid,
	    &cause) != 0)
		fatalx("%s", cause);
	free(path);
}

/* Before any thread: the probe forks, and v2 may move us into a leaf. */
static void
server_contain(void)
{
	struct contain_config	 cc;
	char			*cause, name[32];
	u_char			 h[32];

	/*
	 * One cgroup parent per state directory: two daemons on one host
	 * must never clean up each other's sessions.
	 */
	crypto_hash_sha256(h, (const u_char *)server_state_dir,
	    strlen(server_state_dir));
	snprintf(name, sizeof name, "cellblock-%02x%02x%02x%02x", h[0], h[1],
	    h[2], h[3]);
	memset(&cc, 0, sizeof cc);
	cc.uid_base = cfg.uid_base;
	cc.uid_count = cfg.uid_count;
	cc.cgroup_name = name;
	cc.allow_weaker = cfg.allow_weaker;
	cc.proc_root = "/proc";
	if (cfg.uid_count == 0 || cfg.uid_base == 0)
		fatalx("uid-base and uid-count must be positive");
	if (contain_init(&cc, &cause) != 0)
		fatalx("%s", cause);
	log_info("sandbox: %s", contain_describe());
}

static void
server_raise_nofile(void)
{
	struct rlimit	rl;

	/* Each session holds a handful of sockets and pipes. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
server_daemonize(const char *logpath)
{
	int	fd;

	if (daemon(1, 1) != 0)
		fatal("daemon");
	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd == -1)
		fatal("%s", logpath);
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
	fd = open("/dev/null", O_RDONLY);
	dup2(fd, 0);
	close(fd);
}

static void
server_versions(void)
{
	int	major, minor, patch;

	zmq_version(&major, &minor, &patch);
	log_info("cellblockd %s starting: libzmq %d.%d.%d, czmq %d.%d.%d, "
	    "jansson %s, libsodium %s", CELLBLOCK_VERSION, major, minor, patch,
	    CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH,
	    JANSSON_VERSION, sodium_version_string());
	log_info("state %s, shim %s, runner %s, python %s", server_state_dir,
	    server_shim_path, server_runner_path, cfg.python);
}

static int
server_log_session(const char *name)
{
	return (session_find(name) != NULL);
}

static char *
server_log_redact(const char *msg)
{
	return (redact(msg, NULL));
}

/*
 * systemd sets JOURNAL_STREAM to the device:inode of the stderr it gave
 * us; a child of a terminal that a user unit started inherits the
 * variable with another stderr, so compare (systemd.exec(5)).
 */
static int
server_journal_stderr(void)
{
	const char		*v = getenv("JOURNAL_STREAM");
	struct stat		 sb;
	unsigned long long	 dev, ino;

	if (v == NULL || sscanf(v, "%llu:%llu", &dev, &ino) != 2)
		return (0);
	if (fstat(2, &sb) != 0)
		return (0);
	return (sb.st_dev == dev && sb.st_ino == ino);
}

/*
 * The log's format and its redaction (docs/OPERATIONS.md). Under systemd
 * (JOURNAL_STREAM set) we stay in the foreground and log to stderr, so
 * the journal keeps every line and our pid is the one systemd watches.
 */
static void
server_log_setup(int *foreground)
{
	char	*cause;

	if (strcmp(cfg.log_format, "text") != 0 &&
	    strcmp(cfg.log_format, "json") != 0)
		fatalx("log-format must be text or json");
	if (redact_init(cfg.redact_patterns.v, cfg.redact_patterns.n,
	    &cause) != 0)
		fatalx("%s", cause);
	log_set_format(strcmp(cfg.log_format, "json") == 0);
	log_set_filter(server_log_redact);
	log_set_session(server_log_session);
	if (server_journal_stderr())
		*foreground = 2;	/* 2: systemd's, no banner */
}

void
server_exit(const char *why)
{
	log_info("exiting: %s", why);
	server_quit = 1;
	loop_quit();
}

static const struct option server_options[] = {
	{ "foreground", no_argument, NULL, 'f' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "state-dir", required_argument, NULL, 's' },
	{ "config", required_argument, NULL, 'c' },
	{ "address", required_argument, NULL, 'A' },
	{ "transport", required_argument, NULL, 'T' },
	{ "max-message", required_argument, NULL, 'M' },
	{ "rootfs", required_argument, NULL, 'R' },
	{ "allow-weaker-sandbox", no_argument, NULL, 'W' },
	{ "http-listen", required_argument, NULL, 'H' },
	{ "warm-pool", required_argument, NULL, 'P' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

int
main(int argc, char **argv)
{
	const char	*statedir = NULL, *config = NULL, *key;
	int		 ch, foreground = 0, verbose = 0;
	char		*cause, *path, *logpath;
	struct {
		const char	*key;
		const char	*value;
	} sets[16];
	size_t		 nsets = 0, i;

	/* A CLI that started us may have left its pipes open. */
	close_range(3, ~0U, 0);
	config_defaults();
	while ((ch = getopt_long(argc, argv, "fvs:c:h", server_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'f':
			foreground = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 's':
			statedir = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'A':
		case 'T':
		case 'M':
		case 'R':
		case 'H':
		case 'P':
			key = ch == 'A' ? "address" : ch == 'T' ? "transport" :
			    ch == 'R' ? "rootfs" : ch == 'H' ? "http-listen" :
			    ch == 'P' ? "warm-pool" :
			    "max-message";
			sets[nsets].key = key;
			sets[nsets++].value = optarg;
			break;
		case 'W':
			sets[nsets].key = "allow-weaker-sandbox";
			sets[nsets++].value = "yes";
			break;
		default:
			usage();
		}
		if (nsets == nitems(sets))
			usage();
	}
	if (optind != argc)
		usage();
	if (config != NULL && config_load(config, &cause) != 0)
		fatalx("%s", cause);
	for (i = 0; i < nsets; i++) {
		if (config_set(sets[i].key, sets[i].value, &cause) != 0)
			fatalx("%s", cause);
	}
	if (verbose)
		cfg.log_level = LEVEL_DEBUG;
	if (strcmp(cfg.transport, "tcp") != 0 &&
	    strcmp(cfg.transport, "ipc") != 0)
		fatalx("transport must be tcp or ipc");
	server_log_setup(&foreground);
	notify_init();

	server_uid = geteuid();
	server_state_dir = connfile_state_dir(statedir);
	server_state();
	server_lock();
	server_paths();
	xasprintf(&logpath, "%s/cellblockd.log", server_state_dir);
	if (!foreground)
		server_daemonize(logpath);
	log_open(cfg.log_level, stderr);
	server_write_pid();
	if (sodium_init() < 0)
		fatalx("libsodium init failed");
	server_raise_nofile();
	server_contain();
	zsys_handler_set(NULL);
	/*
	 * czmq caps a process at 1024 sockets and asserts past it; each
	 * session holds about nine. Let libzmq's own (much higher) limit be
	 * the only one; we raised RLIMIT_NOFILE to match above.
	 */
	zsys_set_max_sockets(0);
	server_signals();
	zsys_init();
	server_versions();
	metrics_init();
	if (audit_open(&cause) != 0)
		fatalx("audit log: %s", cause);

	loop_init();
	/* The rooms' wiring, before any session: who hears what. */
	transport_listen(kernel_receive);
	kernel_init();
	factory_init();
	lifecycle_init();
	pool_init();
	if (heartbeat_start(&cause) != 0)
		fatalx("%s", cause);
	server_shared();
	server_zygote_init();
	egress_start();
	lifecycle_load_all();
	lifecycle_start();
	pool_start();
	mcp_init();	/* the control socket's "mcp" stream op */
	xasprintf(&path, "%s/control.sock", server_state_dir);
	contract_ops_init();
	if (control_start(path, &cause) != 0)
		fatalx("%s", cause);
	server_sig_io = loop_io_add(server_sigfd, EPOLLIN, server_signal_event,
	    NULL);
	mcp_http_register();
	rest_register();
	gateway_start();

	log_info("ready: control %s, shared endpoint %s/shared.json", path,
	    server_state_dir);
	notify_ready("serving");
	/* Not in json logs: every line of stderr is then an object. */
	if (foreground == 1 && strcmp(cfg.log_format, "json") != 0) {
		fprintf(stderr, "\ncellblockd is running. Connect with:\n"
		    "  jupyter console --existing %s/shared.json\n"
		    "  CELLBLOCK_STATE_DIR=%s bin/cellblock new\n"
		    "Stop with Ctrl-C.\n\n", server_state_dir,
		    server_state_dir);
		gateway_banner(stderr);
		rest_banner(stderr);
	}
	while (!server_quit) {
		if (loop_run() != 0)
			break;
	}
	notify_stopping();
	mcp_http_stop();
	gateway_stop();
	lifecycle_checkpoint_all(10000);
	loop_io_remove(&server_zygote_io);
	zygote_stop(NULL);
	pool_stop();
	factory_shutdown_all();
	egress_stop();
	lifecycle_stop();
	control_stop();
	contract_free_all();
	endpoint_reap_all();
	endpoint_destroy(&endpoint_shared);
	heartbeat_stop();
	contain_shutdown();
	notify_close();		/* its watchdog timer, before the loop goes */
	loop_timer_cancel(&server_zygote_timer);
	loop_io_remove(&server_sig_io);
	child_forget_all();
	loop_free();
	audit_close();
	metrics_free();
	log_info("stopped");
	free(path);
	free(logpath);
	return (0);
}
