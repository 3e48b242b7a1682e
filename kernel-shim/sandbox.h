/* sandbox.h: the plan of a session's sandbox and the steps that build it. */

#ifndef SANDBOX_H
#define SANDBOX_H

#include <sys/types.h>

#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * For nitems only: the steps call nothing of the base layer, as the
 * zygote's shared object links none of it (-z defs checks that).
 */
#include "base.h"

/*
 * Everything the steps need to know about one session.  The steps keep no
 * state of their own, so the same plan works in cellblock-shim and in a
 * child forked from a preloaded interpreter.
 *
 * The order, run by the caller (see SANDBOX-NOTES.md):
 *
 *   parent ns   sandbox_user_drop_groups()          as root, before unshare
 *   child       unshare(USER|NS|PID|NET|IPC|UTS)     (a zygote child is
 *                                                    cloned with them)
 *   parent      sandbox_user_write_maps(child, ...)  the daemon's
 *                                                    contain_enter()
 *   child       unshare(CGROUP), fork: the child is pid 1 (a zygote
 *               child is pid 1 already)
 *   pid 1       open plan.init, sandbox_mount_setup(),
 *               sandbox_uts_hostname(), sandbox_net_loopback_up(), fork
 *   pid 2       wait for pid 1's sync pipe, sandbox_user_become(),
 *               sandbox_caps_drop(), sandbox_rlimits_set(),
 *               sandbox_proc_hygiene(), seccomp, exec
 *   pid 1       sandbox_user_become(), sandbox_caps_drop(),
 *               prctl(PR_SET_PDEATHSIG), exec cellblock-init, which runs
 *               sandbox_pid_reaper(pid 2)
 *
 * Every function returns 0, or -1 with *cause set to an allocated message
 * the caller frees.  None of them exits.
 */
/*
 * A read-only bind of a host directory (cellblock new --mount-ro): fd is
 * the detached mount sandbox_mount_open_binds() cloned, before unshare,
 * with the owner's permissions; the mount setup attaches it at target.
 */
struct sandbox_bind {
	const char	*source;	/* absolute host path */
	const char	*target;	/* absolute path inside */
	int		 fd;		/* -1 until opened */
};
#define SANDBOX_BINDS_MAX	16

struct sandbox_plan {
	const char	*hostname;	/* the session name */
	const char	*rootfs;	/* NULL: the host's /usr, /lib*, /bin,
					   /sbin, /etc; else a prepared root
					   whose own are used instead */
	const char	*workdir;	/* host dir, rw at SANDBOX_HOME */
	const char	*runner_dir;	/* host dir, ro at SANDBOX_RUNNER_DIR */
	const char	*egress_dir;	/* host dir, ro at SANDBOX_EGRESS_DIR;
					   NULL: none (no egress) */
	const char	*etc_dir;	/* prepared /etc (host dir), read-only;
					   NULL: generate a minimal one */
	uint64_t	 tmp_bytes;	/* size= of /tmp and of /dev/shm */
	uid_t		 inner_uid;	/* SANDBOX_INNER_UID */
	gid_t		 inner_gid;	/* SANDBOX_INNER_GID */
	uint64_t	 nofile;	/* RLIMIT_NOFILE */
	uint64_t	 fsize_bytes;	/* RLIMIT_FSIZE */
	int		 keep_fd;	/* the channel: the only fd left open */
	int		 init_wait_fd;	/* 0: pid 2 waits for pid 1 (cellblock-
					   init undumpable) before its steps;
					   N > 3: the wait is left open at fd
					   N for its caller to do before any
					   session code (the zygote's) */
	struct sandbox_bind *binds;	/* read-only binds, or NULL */
	size_t		 nbinds;
	uid_t		 bind_uid;	/* the owner's files show as these */
	gid_t		 bind_gid;	/* (the session's host ids), or -1 */
	const char	*init;		/* cellblock-init, host path: pid 1
					   execs it; NULL: pid 1 reaps in
					   this image */
};

/* What sandbox_run unshares (sandbox_run_pid1's caller clones with). */
#define SANDBOX_NAMESPACES	(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | \
	CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

/*
 * Who the interpreter is inside its user namespace: the only id mapped
 * (onto the session's host uid), never 0. The daemon maps it, the shim
 * and the zygote become it, the tests read it from here.
 */
#define SANDBOX_INNER_UID	1000
#define SANDBOX_INNER_GID	1000

/* Where the plan's directories appear inside. */
#define SANDBOX_HOME		"/home/session"
#define SANDBOX_RUNNER_DIR	"/opt/cellblock/runner"
#define SANDBOX_EGRESS_DIR	"/run/cellblock"

/* sandbox-mount.c */
int	sandbox_mount_setup(const struct sandbox_plan *, char **);
int	sandbox_mount_open_binds(struct sandbox_plan *, uid_t, char **);

/* sandbox-user.c */
int	sandbox_user_drop_groups(char **);
int	sandbox_user_write_maps(pid_t, uid_t, uid_t, gid_t, gid_t, char **);
int	sandbox_user_become(const struct sandbox_plan *, char **);

/* sandbox-uts.c */
int	sandbox_uts_valid_hostname(const char *);
int	sandbox_uts_hostname(const struct sandbox_plan *, char **);

/* sandbox-caps.c */
int	sandbox_caps_drop(char **);

/* sandbox-rlimits.c */
int	sandbox_rlimits_set(const struct sandbox_plan *, char **);

/* sandbox-net.c */
int	sandbox_net_loopback_up(char **);

/* sandbox-proc.c */
int	sandbox_proc_hygiene(const struct sandbox_plan *, char **);

/* sandbox-pid.c */
int	sandbox_pid_reaper(pid_t, int *, char **);

/* sandbox-run.c: all of the above in order; returns only in pid 2. */
void	sandbox_run(const struct sandbox_plan *);
void	sandbox_run_pid1(const struct sandbox_plan *);
void	sandbox_run_environment(const char *, const char *, int);

/*
 * Set *cause (if cause is not NULL) and return -1, so a failing step reads
 * "return (sandbox_cause(cause, ...));".  Inline here because the three
 * files must also link without the daemon's xmalloc.c.
 */
static inline int __attribute__((format(printf, 2, 3)))
sandbox_cause(char **cause, const char *fmt, ...)
{
	va_list	ap;

	if (cause == NULL)
		return (-1);
	va_start(ap, fmt);
	if (vasprintf(cause, fmt, ap) == -1)
		*cause = NULL;
	va_end(ap);
	return (-1);
}

#endif /* SANDBOX_H */
