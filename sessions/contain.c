/* contain.c: the daemon's side of each session's sandbox: uids, cgroups, maps. */
/*
 * The child side lives in kernel-shim/ (one file per kernel facility). Here
 * the daemon decides at start which protections this host can give, and
 * per session: picks an unprivileged host uid, creates the cgroup with its
 * limits (read back, fail closed) before anything runs, and when the shim
 * has unshared its namespaces, writes its uid/gid maps and moves it into
 * the cgroup before releasing it.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "cgroup.h"
#include "sandbox.h"
#include "sessions.h"

static struct {
	struct contain_config	 cfg;
	int			 userns;	/* namespaces available */
	int			 uids;		/* a host uid per session */
	struct cgroup_host	*cg;
	char			*weaker;	/* what is off, or NULL */
	char			*describe;
	u_char			*used;		/* uid slots in use */
	int			 self_move;	/* the child moves itself (v1) */
	uint64_t		 by_child;	/* moves checked at hello */
	uint64_t		 by_daemon;	/* cgroup.procs writes per start */
	uint64_t		 fallbacks;	/* the child could not move itself */
	char			*fallback_why;	/* the first one's reason */
} contain;

/* Can this process create a user namespace? Try it in a child. */
static int
contain_probe_userns(void)
{
	pid_t	pid;
	int	status;

	pid = fork();
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID |
		    CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) == 0 ? 0 : 1);
	if (pid == -1 || waitpid(pid, &status, 0) != pid)
		return (0);
	return (WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
contain_off(const char *what)
{
	char	*w;

	if (contain.weaker == NULL)
		contain.weaker = xstrdup(what);
	else {
		xasprintf(&w, "%s, %s", contain.weaker, what);
		free(contain.weaker);
		contain.weaker = w;
	}
}

static void
contain_probe_cgroups(void)
{
	static const char *need[] = { "memory", "pids", "cpu" };
	char	*cause = NULL;
	size_t	 i;
	int	 n;

	contain.cg = cgroup_host_detect(contain.cfg.proc_root,
	    contain.cfg.cgroup_name, &cause);
	if (contain.cg == NULL || getuid() != 0 ||
	    cgroup_host_prepare(contain.cg, &cause) != 0) {
		log_warn("cgroups unavailable: %s", cause ? cause :
		    "not root");
		free(cause);
		cgroup_host_destroy(&contain.cg);
		contain_off("cgroups (memory, pids, cpu limits)");
		return;
	}
	for (i = 0; i < sizeof need / sizeof need[0]; i++) {
		if (cgroup_host_controller(contain.cg, need[i], NULL) == 0) {
			log_warn("cgroup controller %s unavailable", need[i]);
			cgroup_host_destroy(&contain.cg);
			contain_off("cgroups (memory, pids, cpu limits)");
			return;
		}
	}
	if ((n = cgroup_cleanup_stale(contain.cg, &cause)) > 0)
		log_info("removed %d stale session cgroups", n);
	else if (n < 0) {
		log_warn("stale cgroups: %s", cause);
		free(cause);
	}
}

/*
 * Who moves a new process into its cgroup (docs/ZYGOTE.md, "Cgroup
 * moves"): on cgroup v1 the process itself, from descriptors the daemon
 * opened; CELLBLOCK_CGROUP_MOVE=daemon keeps the daemon's cgroup.procs
 * write (the benchmark compares the two in one run).
 */
static void
contain_choose_move(void)
{
	const char	*v = getenv("CELLBLOCK_CGROUP_MOVE");

	contain.self_move = contain.cg != NULL &&
	    (v == NULL || strcmp(v, "daemon") != 0);
	if (contain.cg != NULL && !contain.self_move)
		log_info("cgroup moves: by the daemon (CELLBLOCK_CGROUP_MOVE)");
}

/*
 * Decide what this host can give. Without --allow-weaker-sandbox any
 * missing protection is fatal: a sandbox that silently enforces nothing
 * is worse than none.
 */
int
contain_init(const struct contain_config *cfg, char **cause)
{
	contain.cfg = *cfg;
	contain.userns = contain_probe_userns();
	contain.uids = contain.userns && getuid() == 0;
	/*
	 * Every child-side step runs inside the user namespace, so without
	 * one the interpreter gets none of them: say all that is lost.
	 */
	if (!contain.userns) {
		contain_off("namespaces (user, mount, pid, net, ipc, uts), "
		    "mount isolation, seccomp, rlimits, dropped capabilities");
		if (getuid() == 0)
			contain_off("the interpreter runs as root");
	}
	if (!contain.uids)
		contain_off("a separate host uid per session (needs root)");
	contain_probe_cgroups();
	contain_choose_move();
	contain.used = xcalloc(1, contain.cfg.uid_count);
	xasprintf(&contain.describe, "namespaces %s, per-session uids %s "
	    "(%u..%u), cgroups %s, seccomp %s", contain.userns ? "on" : "OFF",
	    contain.uids ? "on" : "OFF", (u_int)cfg->uid_base,
	    (u_int)(cfg->uid_base + cfg->uid_count - 1), contain.cg != NULL ?
	    cgroup_host_describe(contain.cg) : "OFF",
	    contain.userns ? "on" : "OFF");
	if (contain.weaker != NULL && !cfg->allow_weaker) {
		xasprintf(cause, "cannot sandbox sessions on this host: "
		    "missing %s; run as root on a host with user namespaces "
		    "and cgroups, or start with --allow-weaker-sandbox",
		    contain.weaker);
		return (-1);
	}
	if (contain.weaker != NULL)
		log_warn("WEAKER SANDBOX: protections off: %s", contain.weaker);
	return (0);
}

void
contain_shutdown(void)
{
	char	*cause;

	if (contain.cg != NULL && cgroup_host_remove(contain.cg, &cause) != 0) {
		log_warn("%s", cause);
		free(cause);
	}
	cgroup_host_destroy(&contain.cg);
	free(contain.weaker);
	free(contain.describe);
	free(contain.used);
	free(contain.fallback_why);
	memset(&contain, 0, sizeof contain);
}

int
contain_enabled(void)
{
	return (contain.userns);
}

const char *
contain_weaker(void)
{
	return (contain.weaker);
}

const char *
contain_describe(void)
{
	return (contain.describe);
}

static int
contain_pick_uid(struct session *s, char **cause)
{
	uint32_t	i;

	if (!contain.uids) {
		s->host_uid = getuid();
		s->host_gid = getgid();
		return (0);
	}
	/* A session brought back after a restart keeps its uid: it owns the files. */
	i = s->host_uid - contain.cfg.uid_base;
	if (s->host_uid != (uid_t)-1 && s->host_uid >= contain.cfg.uid_base &&
	    i < contain.cfg.uid_count && !contain.used[i]) {
		contain.used[i] = 1;
		s->host_gid = s->host_uid;
		return (0);
	}
	for (i = 0; i < contain.cfg.uid_count; i++) {
		if (!contain.used[i]) {
			contain.used[i] = 1;
			s->host_uid = contain.cfg.uid_base + i;
			s->host_gid = contain.cfg.uid_base + i;
			return (0);
		}
	}
	xasprintf(cause, "no free session uid in %u..%u",
	    (u_int)contain.cfg.uid_base,
	    (u_int)(contain.cfg.uid_base + contain.cfg.uid_count - 1));
	return (-1);
}

/* Before the first interpreter: a uid, and the cgroup with its limits. */
int
contain_prepare(struct session *s, char **cause)
{
	struct cgroup_limits	lim;
	char			*why;

	if (contain_pick_uid(s, cause) != 0)
		return (-1);
	if (contain.cg == NULL)
		return (0);
	lim.memory_bytes = s->limits.memory;
	lim.pids = s->limits.pids;
	lim.cpu_millis = s->limits.cpu_millis;
	if (s->cgroup[0] == '\0')
		snprintf(s->cgroup, sizeof s->cgroup, "%s", s->name);
	if (cgroup_create(contain.cg, s->cgroup, &lim, &why) != 0) {
		xasprintf(cause, "cgroup for %s refused: %s", s->name, why);
		free(why);
		contain_release(s);
		return (-1);
	}
	s->cgroup_made = 1;
	s->oom_seen = 0;
	return (0);
}

/*
 * The shim has unshared its namespaces and waits: map its inner uid and
 * gid to the session's host ones, with the user facility's own parent
 * half (kernel-shim/sandbox-user.c, which sandbox-check tests), and put it
 * in its cgroup. Only then is it released. fds (room for
 * CONTAIN_MOVE_FDS, may be NULL) gets *nfds descriptors of the group's
 * v1 `tasks` files when the process is to move itself (it writes "0" to
 * each before anything else: kernel-shim/sandbox-run.c); otherwise, or
 * with *nfds 0, the daemon moved it. The caller sends and closes them.
 */
int
contain_enter(struct session *s, pid_t pid, int *fds, int *nfds,
    char **cause)
{
	int	n = 0;

	if (nfds != NULL)
		*nfds = 0;
	s->cgroup_moving = 0;
	if (s->cgroup_made && contain.self_move && fds != NULL &&
	    (n = cgroup_self_move_open(contain.cg, s->cgroup, fds,
	    CONTAIN_MOVE_FDS, cause)) == -1)
		return (-1);
	if (s->cgroup_made && n == 0) {
		if (cgroup_attach(contain.cg, s->cgroup, pid, cause) != 0)
			return (-1);
		contain.by_daemon++;
	}
	if (contain.userns && sandbox_user_write_maps(pid, SANDBOX_INNER_UID,
	    s->host_uid, SANDBOX_INNER_GID, s->host_gid, cause) != 0) {
		while (n-- > 0)
			close(fds[n]);
		return (-1);
	}
	if (n > 0) {
		s->cgroup_moving = 1;
		*nfds = n;
	}
	return (0);
}

/*
 * The process could not move itself (why: its words): the daemon writes
 * cgroup.procs as it did before the self-move, and says so once.
 */
int
contain_enter_fallback(struct session *s, pid_t pid, const char *why,
    char **cause)
{
	if (!s->cgroup_moving) {
		xasprintf(cause, "no cgroup move was asked of pid %ld",
		    (long)pid);
		return (-1);
	}
	s->cgroup_moving = 0;
	if (contain.fallbacks++ == 0) {
		contain.fallback_why = xstrdup(why);
		log_warn("%s: the interpreter could not move itself into its "
		    "cgroup (%s); the daemon moves it (logged once)", s->name,
		    why);
	}
	if (cgroup_attach(contain.cg, s->cgroup, pid, cause) != 0)
		return (-1);
	contain.by_daemon++;
	return (0);
}

/*
 * At hello, a process that moved itself is checked: in its group in
 * every hierarchy, or the caller must kill it.
 */
int
contain_moved(struct session *s, char **cause)
{
	if (!s->cgroup_moving)
		return (0);
	s->cgroup_moving = 0;
	if (cgroup_check_member(contain.cg, s->cgroup, s->pid, cause) != 0)
		return (-1);
	contain.by_child++;
	return (0);
}

/* For the control ping: who moved the processes into their cgroups. */
json_t *
contain_moves_describe(void)
{
	return (json_pack("{s:s,s:I,s:I,s:I,s:s?}", "mode", contain.cg == NULL ?
	    "off" : contain.self_move ? "child" : "daemon", "by_child",
	    (json_int_t)contain.by_child, "by_daemon",
	    (json_int_t)contain.by_daemon, "fallbacks",
	    (json_int_t)contain.fallbacks, "fallback_reason",
	    contain.fallback_why));
}

void
contain_release(struct session *s)
{
	char	*cause;

	cgroup_meter_close(&s->meter);
	if (s->cgroup_made && contain.cg != NULL) {
		if (cgroup_remove(contain.cg, s->cgroup, &cause) != 0) {
			log_warn("%s: %s", s->name, cause);
			free(cause);
		}
		s->cgroup_made = 0;
	}
	s->cgroup[0] = '\0';
	if (contain.uids && s->host_uid >= contain.cfg.uid_base &&
	    s->host_uid < contain.cfg.uid_base + contain.cfg.uid_count)
		contain.used[s->host_uid - contain.cfg.uid_base] = 0;
	s->host_uid = (uid_t)-1;
}

/* Did the memory cgroup kill something since we last looked? */
int
contain_oom_killed(struct session *s)
{
	uint64_t	 n;
	char		*cause;

	if (!s->cgroup_made)
		return (0);
	if (cgroup_oom_kills(contain.cg, s->cgroup, &n, &cause) != 0) {
		free(cause);
		return (0);
	}
	if (n == CGROUP_UNKNOWN || n <= s->oom_seen)
		return (0);
	s->oom_seen = n;
	return (1);
}

/*
 * s's cgroup counters, opened on first use and kept until contain_release
 * removes the group (it outlives restarts and hibernation): NULL if there
 * is no group.
 */
static struct cgroup_meter *
contain_meter_of(struct session *s)
{
	char	*cause;

	if (!s->cgroup_made || contain.cg == NULL)
		return (NULL);
	if (s->meter == NULL &&
	    (s->meter = cgroup_meter_open(contain.cg, s->cgroup, &cause)) == NULL)
		free(cause);
	return (s->meter);
}

/*
 * The execution contract's counters (server/contract-meter.c): CPU usec
 * and the memory high-water mark, CGROUP_UNKNOWN where not counted;
 * reset restarts the mark (*reset_ok says whether it could).
 */
void
contain_meter(struct session *s, int reset, uint64_t *cpu, uint64_t *peak,
    int *reset_ok)
{
	struct cgroup_meter	*m;

	*cpu = *peak = CGROUP_UNKNOWN;
	*reset_ok = 0;
	if ((m = contain_meter_of(s)) == NULL)
		return;
	if (reset) {
		cgroup_meter_read(m, cpu, NULL);
		*reset_ok = cgroup_meter_reset_peak(m) == 0;
	} else
		cgroup_meter_read(m, cpu, peak);
}

/*
 * Either pointer may be NULL (an execute's audit line reads only the
 * memory: the contract meter's reads give it the CPU). Through the
 * meter's descriptors: opening the group's directory and file by path on
 * every execute was a tenth of the daemon's CPU per execute.
 */
void
contain_stats(struct session *s, uint64_t *mem, uint64_t *cpu)
{
	struct cgroup_meter	*m;

	if (mem != NULL)
		*mem = CGROUP_UNKNOWN;
	if (cpu != NULL)
		*cpu = CGROUP_UNKNOWN;
	if ((m = contain_meter_of(s)) != NULL)
		cgroup_meter_usage(m, mem, cpu);
}

/*
 * A running session's cgroup limits change (a warm-pool member claimed
 * with other limits than the defaults it was made with): written and
 * read back as at creation; on failure the caller must not use it.
 */
int
contain_set_limits(struct session *s, const struct session_limits *l,
    char **cause)
{
	struct cgroup_limits	lim;
	char			*why;

	if (!s->cgroup_made)
		return (0);
	lim.memory_bytes = l->memory;
	lim.pids = l->pids;
	lim.cpu_millis = l->cpu_millis;
	if (cgroup_set_limits(contain.cg, s->cgroup, &lim, &why) != 0) {
		xasprintf(cause, "cgroup for %s refused: %s", s->name, why);
		free(why);
		return (-1);
	}
	return (0);
}

/*
 * The hostname inside a running session (its UTS namespace, which the
 * outer process unshared): a pool member is named only when claimed. The
 * calling thread joins that namespace for the one call and comes back;
 * a UTS namespace may be joined by one thread of a threaded process.
 */
int
contain_set_hostname(struct session *s, const char *name, char **cause)
{
	char	path[64];
	int	mine, theirs, r = -1;

	if (!contain.userns || s->pid <= 0)
		return (0);
	snprintf(path, sizeof path, "/proc/%ld/ns/uts", (long)s->pid);
	if ((theirs = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if ((mine = open("/proc/thread-self/ns/uts", O_RDONLY | O_CLOEXEC)) ==
	    -1) {
		xasprintf(cause, "own uts namespace: %s", strerror(errno));
		close(theirs);
		return (-1);
	}
	if (setns(theirs, CLONE_NEWUTS) != 0)
		xasprintf(cause, "setns %s: %s", path, strerror(errno));
	else {
		if (sethostname(name, strlen(name)) != 0)
			xasprintf(cause, "sethostname: %s", strerror(errno));
		else
			r = 0;
		if (setns(mine, CLONE_NEWUTS) != 0)
			fatalx("%s: cannot go back to our own uts namespace: %s",
			    __func__, strerror(errno));
	}
	close(mine);
	close(theirs);
	return (r);
}
