/* incarnation.c: the incarnation supervisor: start, watch, stop, reap. */
/*
 * A session outlives its interpreters; this file runs each one: spawn it
 * (sessions/spawn.c), contain it when it asks, read its channel and hand
 * each op to whoever registered for it (incarnation_handle: the protocol
 * core, lifecycle.c), stop it (SIGTERM, then SIGKILL after a grace), and
 * when it is reaped say why it died through HOOK_LOST. It calls nothing
 * above it: what happens next (restart, hibernate, end) is the core's.
 */

#include <sys/epoll.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

#define INCARNATION_KILL_GRACE	2000	/* ms between SIGTERM and SIGKILL */
#define INCARNATION_OPS_MAX	16
#define INCARNATION_EARLY_WAIT	5	/* ms a zygote-born process gets to ask */

static void	incarnation_on_contain(struct session *, json_t *);
static int	incarnation_check_moved(struct session *);
static void	incarnation_reaped(pid_t, int, void *);

/*
 * Legend: the runner's op (docs/CHANNEL.md) and who handles it; filled by
 * incarnation_handle at start, "contain" by this file.
 */
static struct {
	const char		*op;
	incarnation_op_fn	*fn;
} incarnation_ops[INCARNATION_OPS_MAX] = {
	{ "contain", incarnation_on_contain },
};
static size_t	incarnation_nops = 1;

void
incarnation_handle(const char *op, incarnation_op_fn *fn)
{
	if (incarnation_nops == INCARNATION_OPS_MAX)
		fatalx("%s: too many ops", __func__);
	incarnation_ops[incarnation_nops].op = op;
	incarnation_ops[incarnation_nops++].fn = fn;
}

static void
incarnation_on_op(struct session *s, json_t *msg)
{
	const char	*op = json_string_value(json_object_get(msg, "op"));
	size_t		 i;

	if (op != NULL && s->cgroup_moving && strcmp(op, "hello") == 0 &&
	    incarnation_check_moved(s) != 0)
		return;
	for (i = 0; op != NULL && i < incarnation_nops; i++) {
		if (strcmp(incarnation_ops[i].op, op) == 0) {
			incarnation_ops[i].fn(s, msg);
			return;
		}
	}
	log_debug("%s: ignoring runner op '%s'", s->name, op ? op : "?");
}

/* One message to the interpreter; the channel is watched for its flush. */
int
incarnation_send(struct session *s, json_t *m, char **cause)
{
	int	r;

	r = channel_send(&s->chan, m, cause);
	incarnation_watch(s, 1);
	return (r);
}

/*
 * The same, written when the loop next turns rather than now: the
 * runner, woken by the write, would take the CPU from the request in
 * hand (the scheduler favours a task that slept), which then waits for
 * it. Order is kept: whatever is sent later goes behind it.
 */
int
incarnation_send_later(struct session *s, json_t *m, char **cause)
{
	int	r;

	r = channel_queue(&s->chan, m, cause);
	incarnation_watch(s, 1);
	return (r);
}

/*
 * A process that moved itself into its cgroup (sessions/contain.c) is
 * checked at its hello, before anyone sees the session: outside its group
 * it is killed, and the reaper says why.
 */
static int
incarnation_check_moved(struct session *s)
{
	char	*cause;

	if (contain_moved(s, &cause) == 0)
		return (0);
	log_error("%s: interpreter pid %ld not contained: %s; killing it",
	    s->name, (long)s->pid, cause);
	free(cause);
	kill(s->pid, SIGKILL);
	return (-1);
}

/*
 * The shim unshared its namespaces and waits to be mapped and placed in
 * its cgroup; only then may it go on (sessions/contain.c). On cgroup v1
 * the answer carries the group's `tasks` descriptors and the process
 * moves itself; a second request with "fallback" (it could not) has the
 * daemon move it instead.
 */
static void
incarnation_on_contain(struct session *s, json_t *msg)
{
	json_t		*m, *fb = json_object_get(msg, "fallback");
	char		*cause;
	int		 fds[CONTAIN_MOVE_FDS], nfds = 0, i, r, sent = 0;

	if (s->hello != NULL || s->pid <= 0 ||
	    (fb != NULL && (!json_is_string(fb) || !s->cgroup_moving))) {
		log_warn("%s: unexpected contain request", s->name);
		return;
	}
	/* A zygote-born process proves it is the pid the zygote named. */
	if (s->chan.creds && s->chan.peer_pid != s->pid) {
		xasprintf(&cause, "the contain request came from pid %ld, not "
		    "from pid %ld", (long)s->chan.peer_pid, (long)s->pid);
		log_error("%s: %s", s->name, cause);
		r = -1;
	} else if (fb != NULL)
		r = contain_enter_fallback(s, s->pid, json_string_value(fb),
		    &cause);
	else
		r = contain_enter(s, s->pid, fds, &nfds, &cause);
	if (r != 0) {
		log_error("%s: cannot contain interpreter: %s", s->name, cause);
		m = json_pack("{s:s,s:s}", "op", "contain_fail", "error", cause);
		free(cause);
	} else {
		/* One line per start: the benchmark times its phases by it. */
		log_info("%s: interpreter pid %ld contained (uid %lu%s)",
		    s->name, (long)s->pid, (u_long)s->host_uid, nfds > 0 ?
		    ", moves itself" : "");
		m = json_pack("{s:s,s:i}", "op", "contain_go", "move", nfds);
	}
	if (s->chan.creds)
		channel_want_creds(&s->chan, 0);
	if (nfds > 0) {
		if (channel_send_fds(&s->chan, m, fds, nfds, &cause) == 0)
			sent = 1;
		else {
			/* Not sent: the daemon moves it, as it used to. */
			log_warn("%s: %s", s->name, cause);
			free(cause);
			json_decref(m);
			if (contain_enter_fallback(s, s->pid,
			    "descriptors not sent", &cause) == 0)
				m = json_pack("{s:s,s:i}", "op", "contain_go",
				    "move", 0);
			else {
				m = json_pack("{s:s,s:s}", "op", "contain_fail",
				    "error", cause);
				free(cause);
			}
		}
		for (i = 0; i < nfds; i++)
			close(fds[i]);
	}
	if (!sent && channel_send(&s->chan, m, &cause) != 0) {
		log_warn("%s: %s", s->name, cause);
		free(cause);
	}
	json_decref(m);
	incarnation_watch(s, 1);
}

/* Read and handle what the runner sent; -1 when the channel is broken. */
static int
incarnation_drain(struct session *s)
{
	json_t	*msg;
	char	*cause;
	int	 r;

	r = channel_fill(&s->chan, &cause);
	if (r == -1) {
		log_warn("%s: channel: %s", s->name, cause);
		free(cause);
	}
	while ((msg = channel_next(&s->chan, &cause)) != NULL) {
		incarnation_on_op(s, msg);
		json_decref(msg);
		if (s->chan.fd == -1)
			return (-1);
	}
	if (cause != NULL) {
		log_warn("%s: channel broken: %s", s->name, cause);
		free(cause);
		return (-1);
	}
	if (r == 0)
		log_debug("%s: channel closed by the interpreter", s->name);
	return (r <= 0 ? -1 : 0);
}

static void
incarnation_channel_event(int fd, uint32_t events, void *arg)
{
	struct session	*s = arg;
	char		*cause;

	(void)fd;
	session_add_ref(s);
	if ((events & EPOLLOUT) &&
	    channel_flush(&s->chan, &cause) == -1) {
		log_warn("%s: channel: %s", s->name, cause);
		free(cause);
	}
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
	    incarnation_drain(s) != 0) {
		/* Dead or misbehaving: the reaper reports why. */
		incarnation_watch(s, 0);
		if (s->pid > 0)
			kill(s->pid, SIGKILL);
	} else
		incarnation_watch(s, 1);
	session_remove_ref(s);
}

/* Watch the channel: readable, and writable while output waits; 0: stop. */
void
incarnation_watch(struct session *s, int want)
{
	uint32_t	events;

	if (!want || s->chan.fd == -1) {
		loop_io_remove(&s->chan_io);
		return;
	}
	events = EPOLLIN | (channel_pending(&s->chan) ? EPOLLOUT : 0);
	if (s->chan_io == NULL)
		s->chan_io = loop_io_add(s->chan.fd, events,
		    incarnation_channel_event, s);
	else
		loop_io_set(s->chan_io, events);
}

/* The shim's stderr: logged line by line, the tail kept for errors. */
static void
incarnation_stderr_event(int fd, uint32_t events, void *arg)
{
	struct session	*s = arg;
	ssize_t		 n;
	char		*nl;

	(void)fd;
	(void)events;
	n = read(s->errfd, s->errbuf + s->errlen,
	    sizeof s->errbuf - 1 - s->errlen);
	if (n <= 0) {
		if (n == 0 || errno != EAGAIN)
			loop_io_remove(&s->err_io);
		return;
	}
	s->errlen += n;
	s->errbuf[s->errlen] = '\0';
	while ((nl = strchr(s->errbuf, '\n')) != NULL) {
		*nl = '\0';
		if (*s->errbuf != '\0')
			log_warn("%s: interpreter: %s", s->name, s->errbuf);
		s->errlen -= nl + 1 - s->errbuf;
		memmove(s->errbuf, nl + 1, s->errlen + 1);
	}
	if (s->errlen == sizeof s->errbuf - 1)
		s->errlen = 0;
}

/*
 * A zygote-born process asks for its maps and cgroup (`contain`) a
 * fraction of a millisecond after its clone. Answered here, before the
 * rest of `new` (the session's record, the reply), its mounts and fork
 * run while the daemon finishes that work, instead of after it. Bounded:
 * a request that comes later is served by the loop, as before.
 */
static void
incarnation_contain_early(struct session *s)
{
	struct pollfd	pfd = { .fd = s->chan.fd, .events = POLLIN };

	if (s->born != SPAWN_ZYGOTE || s->chan.fd == -1 ||
	    poll(&pfd, 1, INCARNATION_EARLY_WAIT) != 1)
		return;
	incarnation_channel_event(s->chan.fd, pfd.revents & (POLLIN | POLLHUP |
	    POLLERR) ? EPOLLIN : 0, s);
}

/* A new incarnation: spawned, its channel and stderr in the loop. */
int
incarnation_start(struct session *s, char **cause)
{
	struct spawn_args	 a;

	memset(&a, 0, sizeof a);
	a.shim = server_shim_path;
	a.runner = server_runner_path;
	a.python = cfg.python;
	a.workdir = s->workdir;
	a.name = s->name;
	a.limits = &s->limits;
	a.contain = contain_enabled();
	a.zygote = cfg.zygote;
	a.rootfs = cfg.rootfs[0] != '\0' ? cfg.rootfs : NULL;
	a.init = server_init_path;
	a.mounts = s->mounts;
	a.owner = s->owner;
	a.host_uid = s->host_uid;
	a.host_gid = s->host_gid;
	/* Egress (server/egress.c): its socket bound in; by exec, see there. */
	a.egress_dir = egress_session_dir(s, cause);
	if (a.egress_dir == NULL && *cause != NULL)
		return (-1);
	if (spawn_interpreter(s, &a, cause) != 0)
		return (-1);
	child_watch(s->pid, incarnation_reaped, NULL);
	session_set_state(s, SESSION_CREATING, "interpreter starting");
	incarnation_watch(s, 1);
	s->err_io = loop_io_add(s->errfd, EPOLLIN, incarnation_stderr_event,
	    s);
	incarnation_contain_early(s);
	return (0);
}

/*
 * A stop's SIGKILL timer holds a reference to its session. The pending
 * ones are listed so that a daemon exiting before they fire can free them
 * (and the sessions only they still hold): see incarnation_shutdown_all.
 */
struct incarnation_kill {
	struct session	*s;
	pid_t		 pid;
	struct loop_timer *timer;
};
static zlist_t	*incarnation_kills;

static void
incarnation_kill_timer(void *arg)
{
	struct incarnation_kill	*k = arg;

	k->timer = NULL;
	if (k->s->pid == k->pid) {
		log_warn("%s: pid %ld ignored SIGTERM; killing", k->s->name,
		    (long)k->pid);
		kill(k->pid, SIGKILL);
	}
	zlist_remove(incarnation_kills, k);
	session_remove_ref(k->s);
	free(k);
}

/* Ask the incarnation to end: SIGTERM now, SIGKILL after a grace period. */
void
incarnation_stop(struct session *s, const char *reason)
{
	struct incarnation_kill	*k;

	if (s->pid <= 0 || s->stopping)
		return;
	s->stopping = 1;
	s->stop_reason = reason;
	kill(s->pid, SIGTERM);
	k = xmalloc(sizeof *k);
	k->s = s;
	k->pid = s->pid;
	session_add_ref(s);
	k->timer = loop_timer_add(INCARNATION_KILL_GRACE, incarnation_kill_timer, k);
	if (incarnation_kills == NULL)
		incarnation_kills = zlist_new();
	zlist_append(incarnation_kills, k);
}

/*
 * The signal that killed the interpreter, or 0. A zygote-born session's
 * own process is pid 1 of its namespace, cellblock-init, which cannot
 * die by a signal it sends itself: it exits 128 + N as the shell does
 * (kernel-shim/cellblock-init.c), and so does the shim's relay.
 */
static int
incarnation_signal(int status)
{
	if (WIFSIGNALED(status))
		return (WTERMSIG(status));
	if (WIFEXITED(status) && WEXITSTATUS(status) > 128 &&
	    WEXITSTATUS(status) < 128 + NSIG)
		return (WEXITSTATUS(status) - 128);
	return (0);
}

static void
incarnation_death_reason(struct session *s, int status, const char **ename,
    char *evalue, size_t len)
{
	int	sig;

	if (contain_oom_killed(s)) {
		*ename = "SessionOutOfMemory";
		snprintf(evalue, len, "the session used more than its memory "
		    "limit of %llu MiB and its interpreter was killed; its "
		    "state is lost", (unsigned long long)(s->limits.memory >>
		    20));
	} else if (s->stopping && s->stop_reason != NULL &&
	    strcmp(s->stop_reason, "CellTimeout") == 0) {
		*ename = s->stop_reason;
		snprintf(evalue, len, "the cell ran longer than %llu s and did "
		    "not stop when interrupted; the interpreter was restarted "
		    "and its state is lost",
		    (unsigned long long)s->limits.exec_timeout);
	} else if (s->stopping && s->stop_reason != NULL) {
		*ename = s->stop_reason;
		snprintf(evalue, len, "the interpreter was stopped (%s)",
		    s->restart_pending ? "restart" : "session ended");
	} else if ((sig = incarnation_signal(status)) != 0) {
		*ename = "SessionKilled";
		snprintf(evalue, len, "the interpreter was killed by signal "
		    "%d (%s)", sig, strsignal(sig));
	} else {
		*ename = "InterpreterExited";
		snprintf(evalue, len, "the interpreter exited with status %d%s%s",
		    WEXITSTATUS(status), s->errlen ? ": " : "", s->errbuf);
	}
}

/*
 * An incarnation is gone (server/child.c reaped it): its descriptors
 * closed, then HOOK_LOST says why.
 */
static void
incarnation_reaped(pid_t pid, int status, void *arg)
{
	struct session		*s = session_find_pid(pid);
	struct hook_lost	 lost;
	char			 evalue[1280];

	(void)arg;
	if (s == NULL) {
		log_debug("reaped unknown pid %ld", (long)pid);
		return;
	}
	session_add_ref(s);
	lost.before_hello = s->hello == NULL;
	incarnation_drain(s);
	incarnation_watch(s, 0);
	if (s->err_io != NULL)
		incarnation_stderr_event(s->errfd, EPOLLIN, s);
	loop_io_remove(&s->err_io);
	incarnation_death_reason(s, status, &lost.ename, evalue,
	    sizeof evalue);
	lost.evalue = evalue;
	log_info("%s: interpreter pid %ld gone: %s: %s", s->name, (long)s->pid,
	    lost.ename, evalue);
	hook_lifecycle(s, "interpreter_exit", lost.ename, json_pack("{s:s}",
	    "detail", evalue));
	spawn_close(s);
	session_set_pid(s, -1);
	hook_run(HOOK_LOST, s, &lost);
	session_remove_ref(s);
}

/* Daemon exit: every interpreter goes, quickly and for sure. */
void
incarnation_shutdown_all(void)
{
	struct session		*s;
	struct incarnation_kill	*k;
	int			 i, left, status;

	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->pid > 0)
			kill(s->pid, SIGTERM);
	}
	for (i = 0; i < 40; i++) {
		/* Each its own: no waitpid(-1) takes another's child. */
		left = 0;
		for (s = session_first(); s != NULL; s = session_next()) {
			if (s->pid > 0 && child_reap_now(s->pid, &status) == 0)
				session_set_pid(s, -1);
			left += s->pid > 0;
		}
		if (left == 0)
			break;
		usleep(50000);
	}
	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->pid > 0)
			kill(s->pid, SIGKILL);
		loop_io_remove(&s->chan_io);
		loop_io_remove(&s->err_io);
	}
	/* Every process is gone: the pending SIGKILLs have nothing to do. */
	while (incarnation_kills != NULL &&
	    (k = zlist_pop(incarnation_kills)) != NULL) {
		loop_timer_cancel(&k->timer);
		session_remove_ref(k->s);
		free(k);
	}
	zlist_destroy(&incarnation_kills);
}
