/* cgroup.h: per-session cgroups on v1, v2 and hybrid hosts, limits verified. */
/*
 * At daemon start:
 *	h = cgroup_host_detect("/proc", "cellblock", &cause);
 *	cgroup_host_prepare(h, &cause);		make our group (v2: move us)
 *	cgroup_cleanup_stale(h, &cause);	a dead daemon's sessions
 * Per session: cgroup_create (limits written and read back), fork the
 * child held on a sync pipe, cgroup_attach (or, on v1, hand it
 * cgroup_self_move_open's descriptors and cgroup_check_member once it
 * moved itself), release it; cgroup_oom_kills
 * and cgroup_stats while it runs; cgroup_remove at the end.
 *
 * Layout. The version is detected per controller: a controller bound to a
 * v1 hierarchy (self/mountinfo) is v1, otherwise it is v2 only if listed in
 * the cgroup2 mount's cgroup.controllers for our group. So a hybrid host's
 * empty cgroup2 mount at /sys/fs/cgroup/unified counts for nothing. In
 * every hierarchy used, sessions live in
 *	<mount point><own>/<name>/<session>
 * where <own> is the daemon's group there (self/cgroup), "" when that is
 * the root: never a hierarchy's root itself. On v2 a group with processes
 * cannot give controllers to children, so prepare moves the daemon into
 * the leaf <own>/<name>/daemon and enables memory, pids and cpu in
 * <own>/cgroup.subtree_control and <own>/<name>/cgroup.subtree_control; it
 * must run before the daemon has other processes in <own>. A daemon that
 * starts already inside such a leaf (re-exec) takes the group above
 * <name> as <own>. Hence "daemon" is not a valid session name.
 *
 * Nothing below a mount point is followed through a symlink: paths are
 * walked a component at a time with O_NOFOLLOW, and value files must be
 * regular files.
 *
 * Errors: -1 (NULL) with *cause set to an allocated string naming the
 * file and values; the caller frees it. cause may be NULL.
 */
#ifndef CELLBLOCK_CGROUP_H
#define CELLBLOCK_CGROUP_H

#include <sys/types.h>
#include <stdint.h>

/*
 * A zero field means "no limit": that controller is then not required
 * either, which is how a caller that tolerates a weaker sandbox asks for
 * one (see cgroup_host_controller). cpu_millis: 1000 is one CPU, at least
 * 10 (the kernel's 1 ms minimum quota per 100 ms period).
 */
struct cgroup_limits {
	uint64_t	memory_bytes;	/* v1 also caps memory+swap at this */
	uint64_t	pids;
	uint32_t	cpu_millis;
};

#define CGROUP_UNKNOWN	UINT64_MAX	/* a statistic the host cannot give */

/*
 * Test seam: a fake cgroupfs is plain directories and files, with no
 * kernel to populate a new group, clamp a value, list members or refuse
 * rmdir. The callback plays that kernel: called after a mkdir (file NULL),
 * after a write (value is what was written), before a read, and before an
 * rmdir (file NULL). dir is the group's path. Never set by the daemon.
 */
enum cgroup_fake_event {
	CGROUP_FAKE_MKDIR,
	CGROUP_FAKE_WRITE,
	CGROUP_FAKE_READ,
	CGROUP_FAKE_RMDIR
};
typedef void cgroup_fake_fn(enum cgroup_fake_event, const char *dir,
    const char *file, const char *value, void *arg);

struct cgroup_host;

/* cgroup.c */
/* proc_root holds self/mountinfo and self/cgroup: "/proc", or a fake tree. */
struct cgroup_host	*cgroup_host_detect(const char *proc_root,
			    const char *name, char **cause);
void		 cgroup_host_set_fake(struct cgroup_host *, cgroup_fake_fn *,
		     void *);
int		 cgroup_host_prepare(struct cgroup_host *, char **cause);
void		 cgroup_host_destroy(struct cgroup_host **);
/* "memory=v1 pids=v1 cpu=v1 cpuacct=v1", plus why a controller is missing. */
const char	*cgroup_host_describe(struct cgroup_host *);
/* 1 or 2, 0 if unavailable; *path (may be NULL) gets <mount><own>/<name>. */
int		 cgroup_host_controller(const struct cgroup_host *,
		     const char *controller, const char **path);
/* [A-Za-z0-9][A-Za-z0-9_.-]{0,63}, no "..", not "daemon". */
int		 cgroup_valid_name(const char *);

/* Fails if the group exists; on any failure nothing is left behind. */
int		 cgroup_create(struct cgroup_host *, const char *session,
		     const struct cgroup_limits *, char **cause);
/* A group's limits rewritten (and read back) while it has members. */
int		 cgroup_set_limits(struct cgroup_host *, const char *session,
		     const struct cgroup_limits *, char **cause);
int		 cgroup_attach(struct cgroup_host *, const char *session,
		     pid_t, char **cause);
/*
 * The process moves itself (v1): one O_WRONLY descriptor of the group's
 * `tasks` per hierarchy into fds (at most max), for it to write "0" to
 * while single-threaded. Returns the count, 0 where that cannot be (a v2
 * hierarchy: then cgroup_attach), -1 on error.
 */
int		 cgroup_self_move_open(struct cgroup_host *,
		     const char *session, int *fds, int max, char **cause);
/* Is pid in the session's group in every v1 hierarchy (<pid>/cgroup)? */
int		 cgroup_check_member(struct cgroup_host *, const char *session,
		     pid_t, char **cause);
int		 cgroup_oom_kills(struct cgroup_host *, const char *session,
		     uint64_t *count, char **cause);
/* Either pointer may be NULL; cpu is CGROUP_UNKNOWN if nothing counts it. */
int		 cgroup_stats(struct cgroup_host *, const char *session,
		     uint64_t *mem_bytes, uint64_t *cpu_usec, char **cause);
/*
 * Per-execute counters, opened once per session cgroup (and closed before
 * it is removed: a descriptor would outlive the group and read a dead
 * one): CPU time (usec), the memory high-water mark, which reset_peak
 * restarts (v1 only: v2's memory.peak resets only for the descriptor that
 * wrote it; -1 there), and the memory in use (usage: cgroup_stats's
 * figures without opening anything).
 */
struct cgroup_meter;
struct cgroup_meter *cgroup_meter_open(struct cgroup_host *,
		     const char *session, char **cause);
void		 cgroup_meter_read(struct cgroup_meter *, uint64_t *cpu_usec,
		     uint64_t *peak);
void		 cgroup_meter_usage(struct cgroup_meter *, uint64_t *mem_bytes,
		     uint64_t *cpu_usec);
int		 cgroup_meter_reset_peak(struct cgroup_meter *);
void		 cgroup_meter_close(struct cgroup_meter **);
/* Blocks until no member is left, or fails after about 1.5 s. */
int		 cgroup_kill_all(struct cgroup_host *, const char *session,
		     char **cause);
/* Kills what is left, then rmdir everywhere; a missing group is success. */
int		 cgroup_remove(struct cgroup_host *, const char *session,
		     char **cause);
/*
 * Removes every session group under <name> (never the v2 daemon leaf,
 * never a symlink); returns how many, or -1. Only while no other daemon
 * uses <name>.
 */
int		 cgroup_cleanup_stale(struct cgroup_host *, char **cause);
/*
 * At a clean exit, every session group gone: removes <name> itself on v1
 * (v2 keeps it: the daemon still sits in its leaf). Then only destroy.
 */
int		 cgroup_host_remove(struct cgroup_host *, char **cause);

#endif /* CELLBLOCK_CGROUP_H */
