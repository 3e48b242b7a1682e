/* cgroup.c: per-session cgroups on v1, v2 and hybrid hosts, limits verified. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* vasprintf, reallocarray */
#endif

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "cgroup.h"

/*
 * The version is decided per controller, as hybrid hosts mount a cgroup2
 * without controllers next to the v1 hierarchies: trusting that mount
 * would enforce nothing. Each hierarchy's <own>/<name> stays open for the
 * host's life and every session path is opened from it one component at
 * a time with O_NOFOLLOW, so a symlink planted in cgroupfs (or in a fake
 * tree) is refused, never followed. Limits are read back after writing:
 * a group whose limits did not take is removed, never used.
 */

#define CG_LEAF		"daemon"	/* v2: the daemon's own leaf group */
#define CG_NAME_MAX	64
#define CG_PERIOD_US	100000		/* cfs period; the quota scales to it */
#define CG_READ_MAX	(1024 * 1024)	/* bounds a cgroup.procs listing */
#define CG_ROUNDS	100		/* kill and rmdir attempts, ~1.5 s */
#define CG_FIELDS	64		/* fields of a mountinfo line */
#define CG_PROC_MAX	8192		/* bounds a <pid>/cgroup listing */

enum cg_ctl {
	CG_MEMORY,
	CG_PIDS,
	CG_CPU,
	CG_CPUACCT,	/* v1 only and optional: cpu time for cgroup_stats */
	CG_NCTL
};

static const char *const cg_ctl_names[CG_NCTL] = {
	"memory", "pids", "cpu", "cpuacct"
};

/* One hierarchy we use: a v1 mount (maybe several controllers) or v2. */
struct cg_hier {
	int		 version;	/* 1 or 2 */
	unsigned	 ctls;		/* bit per enum cg_ctl */
	char		*point;		/* mount point */
	char		*own;		/* our group below it: "" or "/a/b" */
	char		*path;		/* point + own + "/" + name */
	char		*seen;		/* v1: our group as <pid>/cgroup shows it */
	int		 fd;		/* on path once prepared, else -1 */
};

struct cgroup_host {
	char		*name;
	char		*proc_root;	/* for <pid>/cgroup */
	struct cg_hier	 hier[CG_NCTL];
	int		 nhier;
	int		 at[CG_NCTL];	/* index into hier, -1: unavailable */
	char		*why;		/* why a controller is absent */
	char		*desc;
	cgroup_fake_fn	*fake;
	void		*fake_arg;
};

/* A session's group in one hierarchy. */
struct cg_dir {
	int		 fd;
	char		*path;
};

/* What detection reads from <proc_root>/self. */
struct cg_mount {
	char		*root;		/* mounted subtree of the hierarchy */
	char		*point;
	char		*fstype;
	char		*super;		/* super options: v1 controllers */
};
struct cg_member {
	char		*ctls;		/* "memory", "cpu,cpuacct", "" on v2 */
	char		*path;
};
struct cg_proc {
	struct cg_mount	*mounts;
	size_t		 nmounts;
	struct cg_member *members;
	size_t		 nmembers;
};

/*
 * The limits, one row per file. Legend: ctl is the controller owning the
 * file; v1 and v2 name it in each version (NULL: nothing to write there);
 * fmt renders the value; cmp says how the read-back must match (v1 and v2
 * memory counters keep pages, so a byte value comes back rounded); key, if
 * set, names the line "key N" of the file that must read back; an optional
 * row is skipped if the kernel offers no such file (no swap accounting).
 * Rows run in order: the period before the quota, and the memory limit
 * before memory+swap, which may never be below it.
 *
 * v1 children inherit oom_kill_disable from their parent: left set, an
 * over-limit session would hang instead of being killed.
 */
enum cg_cmp {
	CMP_EXACT,
	CMP_PAGE
};
struct cg_limit {
	enum cg_ctl	 ctl;
	const char	*v1;
	const char	*v2;
	void		(*fmt)(const struct cgroup_limits *, char *, size_t);
	enum cg_cmp	 cmp;
	const char	*key;
	int		 optional;
};

static void	fmt_memory(const struct cgroup_limits *, char *, size_t);
static void	fmt_zero(const struct cgroup_limits *, char *, size_t);
static void	fmt_one(const struct cgroup_limits *, char *, size_t);
static void	fmt_pids(const struct cgroup_limits *, char *, size_t);
static void	fmt_period(const struct cgroup_limits *, char *, size_t);
static void	fmt_quota(const struct cgroup_limits *, char *, size_t);
static void	fmt_cpu_max(const struct cgroup_limits *, char *, size_t);

static const struct cg_limit cg_limits[] = {
	/* ctl		v1 file				v2 file
	   fmt		cmp		key			optional */
	{ CG_MEMORY,	"memory.limit_in_bytes",	"memory.max",
	  fmt_memory,	CMP_PAGE,	NULL,			0 },
	{ CG_MEMORY,	"memory.memsw.limit_in_bytes",	NULL,
	  fmt_memory,	CMP_PAGE,	NULL,			1 },
	{ CG_MEMORY,	"memory.oom_control",		NULL,
	  fmt_zero,	CMP_EXACT,	"oom_kill_disable",	0 },
	{ CG_MEMORY,	NULL,				"memory.swap.max",
	  fmt_zero,	CMP_EXACT,	NULL,			1 },
	{ CG_MEMORY,	NULL,				"memory.oom.group",
	  fmt_one,	CMP_EXACT,	NULL,			0 },
	{ CG_PIDS,	"pids.max",			"pids.max",
	  fmt_pids,	CMP_EXACT,	NULL,			0 },
	{ CG_CPU,	"cpu.cfs_period_us",		NULL,
	  fmt_period,	CMP_EXACT,	NULL,			0 },
	{ CG_CPU,	"cpu.cfs_quota_us",		NULL,
	  fmt_quota,	CMP_EXACT,	NULL,			0 },
	{ CG_CPU,	NULL,				"cpu.max",
	  fmt_cpu_max,	CMP_EXACT,	NULL,			0 },
};
_Static_assert(nitems(cg_limits) <= 32, "cg_apply keeps a bit per row");

/*
 * What the queries read, per version. Legend: ctl is whose hierarchy holds
 * the file; key names the line of a keyed file (NULL: the file is one
 * number); the value is divided by div (cpuacct.usage is in ns).
 */
enum cg_query {
	Q_OOM_KILLS,
	Q_MEM_BYTES,
	Q_CPU_USEC,
	Q_MEM_PEAK,
	Q_N
};
struct cg_stat {
	enum cg_ctl	 ctl;
	const char	*file;
	const char	*key;
	uint64_t	 div;
};
static const struct cg_stat cg_stats[Q_N][2] = {
	[Q_OOM_KILLS] = {
		{ CG_MEMORY,	"memory.oom_control",	 "oom_kill",	1 },
		{ CG_MEMORY,	"memory.events",	 "oom_kill",	1 },
	},
	[Q_MEM_BYTES] = {
		{ CG_MEMORY,	"memory.usage_in_bytes", NULL,		1 },
		{ CG_MEMORY,	"memory.current",	 NULL,		1 },
	},
	[Q_CPU_USEC] = {
		{ CG_CPUACCT,	"cpuacct.usage",	 NULL,		1000 },
		{ CG_CPU,	"cpu.stat",		 "usage_usec",	1 },
	},
	[Q_MEM_PEAK] = {
		{ CG_MEMORY,	"memory.max_usage_in_bytes", NULL,	1 },
		{ CG_MEMORY,	"memory.peak",		 NULL,		1 },
	},
};

static int	 cg_fail(char **, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 cg_note(struct cgroup_host *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 cg_pause(int);
static void	 cg_hook(struct cgroup_host *, enum cgroup_fake_event,
		    const char *, const char *, const char *);
static int	 cg_word(const char *, const char *, const char *);
static int	 cg_u64(const char *, uint64_t *);
static void	 cg_trim(char *);
static int	 cg_keyed(const char *, const char *, uint64_t *);
static int	 cg_read(struct cgroup_host *, int, const char *, const char *,
		    char **, char **);
static int	 cg_write(struct cgroup_host *, int, const char *, const char *,
		    const char *, char **);
static int	 cg_exists(int, const char *);
static int	 cg_mkdir(struct cgroup_host *, int, const char *, const char *,
		    int, char **);
static char	*cg_unescape(const char *);
static int	 cg_parse_mount(char *, struct cg_mount *);
static int	 cg_parse_member(char *, struct cg_member *);
static int	 cg_proc_read(const char *, struct cg_proc *, char **);
static void	 cg_proc_free(struct cg_proc *);
static char	*cg_relative(const char *, const char *);
static void	 cg_add(struct cgroup_host *, int, const char *, const char *,
		    enum cg_ctl);
static const struct cg_member *cg_member_for(const struct cg_proc *,
		    const char *);
static int	 cg_detect_v1(struct cgroup_host *, const struct cg_proc *,
		    enum cg_ctl);
static void	 cg_detect_v2(struct cgroup_host *, const struct cg_proc *,
		    unsigned);
static void	 cg_describe(struct cgroup_host *);
static int	 cg_enable(struct cgroup_host *, int, const char *, unsigned,
		    char **);
static int	 cg_prepare_v2(struct cgroup_host *, struct cg_hier *, int,
		    const char *, int, char **);
static int	 cg_prepare_hier(struct cgroup_host *, struct cg_hier *,
		    char **);
static int	 cg_prepared(struct cgroup_host *, char **);
static int	 cg_check(struct cgroup_host *, const char *, char **);
static int	 cg_dir_open(struct cgroup_host *, int, const char *,
		    struct cg_dir *, int, char **);
static void	 cg_dir_close(struct cg_dir *);
static int	 cg_wanted(enum cg_ctl, const struct cgroup_limits *);
static int	 cg_same(enum cg_cmp, const char *, const char *);
static int	 cg_apply(struct cgroup_host *, const struct cg_hier *,
		    struct cg_dir *, const char *, const struct cgroup_limits *,
		    char **);
static int	 cg_readback(struct cgroup_host *, struct cg_dir *,
		    const char *, const char *, char **, char **);
static int	 cg_verify(struct cgroup_host *, const struct cg_hier *,
		    struct cg_dir *, const char *, const struct cgroup_limits *,
		    uint32_t, char **);
static int	 cg_rmdir(struct cgroup_host *, int, const char *, char **);
static int	 cg_parse_pids(const char *, pid_t **, size_t *);
static int	 cg_pid_cmp(const void *, const void *);
static int	 cg_pidfd_open(pid_t);
static int	 cg_pidfd_kill(int);
static int	 cg_signal_procs(struct cgroup_host *, struct cg_dir *,
		    char **);
static int	 cg_count_procs(struct cgroup_host *, struct cg_dir *,
		    char **);
static int	 cg_kill_round(struct cgroup_host *, const char *, char **);
static int	 cg_populated(struct cgroup_host *, const char *, char **);
static const struct cg_stat *cg_stat_row(const struct cgroup_host *,
		    enum cg_query);
static int	 cg_query(struct cgroup_host *, const char *, enum cg_query,
		    uint64_t *, char **);
static int	 cg_list_groups(const struct cg_hier *, char ***, size_t *,
		    char **);

static int
cg_fail(char **cause, const char *fmt, ...)
{
	va_list	 ap;

	if (cause == NULL)
		return (-1);
	va_start(ap, fmt);
	if (vasprintf(cause, fmt, ap) == -1)
		fatalx("vasprintf");
	va_end(ap);
	return (-1);
}

/* Keeps the first reason detection passed a controller over, for logs. */
static void
cg_note(struct cgroup_host *h, const char *fmt, ...)
{
	va_list	 ap;

	if (h->why != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&h->why, fmt, ap) == -1)
		fatalx("vasprintf");
	va_end(ap);
}

/*
 * Waits between kill and rmdir attempts: v1 cannot notify us when a group
 * empties, and dying tasks leave it a little after SIGKILL.
 */
static void
cg_pause(int round)
{
	struct timespec	ts;

	ts.tv_sec = 0;
	ts.tv_nsec = (500L << (round < 5 ? round : 5)) * 1000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void
cg_hook(struct cgroup_host *h, enum cgroup_fake_event ev, const char *dir,
    const char *file, const char *value)
{
	if (h->fake != NULL)
		h->fake(ev, dir, file, value, h->fake_arg);
}

/* Is word one of the seps-separated items of list? */
static int
cg_word(const char *list, const char *word, const char *seps)
{
	size_t	len = strlen(word), n;

	while (*list != '\0') {
		n = strcspn(list, seps);
		if (n == len && strncmp(list, word, len) == 0)
			return (1);
		list += n;
		if (*list != '\0')
			list++;
	}
	return (0);
}

static int
cg_u64(const char *s, uint64_t *v)
{
	unsigned long long	 ull;
	char			*end;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	ull = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return (-1);
	*v = ull;
	return (0);
}

static void
cg_trim(char *s)
{
	size_t	len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
		s[--len] = '\0';
}

/* Finds "key N" in a file of such lines (memory.events, cpu.stat, ...). */
static int
cg_keyed(const char *buf, const char *key, uint64_t *v)
{
	size_t	 klen = strlen(key), n;
	char	 num[32];

	while (*buf != '\0') {
		n = strcspn(buf, "\n");
		if (n > klen && strncmp(buf, key, klen) == 0 &&
		    buf[klen] == ' ' && n - klen - 1 < sizeof num) {
			memcpy(num, buf + klen + 1, n - klen - 1);
			num[n - klen - 1] = '\0';
			return (cg_u64(num, v));
		}
		buf += n;
		if (*buf != '\0')
			buf++;
	}
	return (-1);
}

static int
cg_read(struct cgroup_host *h, int dfd, const char *dpath, const char *file,
    char **out, char **cause)
{
	char	*buf;
	size_t	 len = 0, size = 256;
	ssize_t	 n;
	int	 fd, saved;

	cg_hook(h, CGROUP_FAKE_READ, dpath, file, NULL);
	if ((fd = file_open_regular(dfd, dpath, file, O_RDONLY, cause)) == -1)
		return (-1);
	buf = xcalloc(1, size);
	for (;;) {
		if (len + 1 == size) {
			if (size >= CG_READ_MAX) {
				close(fd);
				free(buf);
				return (cg_fail(cause, "%s/%s: over %d bytes",
				    dpath, file, CG_READ_MAX));
			}
			buf = xrealloc(buf, size * 2);
			size *= 2;
		}
		n = read(fd, buf + len, size - len - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			close(fd);
			free(buf);
			return (cg_fail(cause, "%s/%s: %s", dpath, file,
			    strerror(saved)));
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	return (0);
}

static int
cg_write(struct cgroup_host *h, int dfd, const char *dpath, const char *file,
    const char *value, char **cause)
{
	size_t	len = strlen(value);
	ssize_t	n;
	int	fd, saved;

	if ((fd = file_open_regular(dfd, dpath, file, O_WRONLY | O_TRUNC,
	    cause)) == -1)
		return (-1);
	do
		n = write(fd, value, len);
	while (n == -1 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n == -1)
		return (cg_fail(cause, "%s/%s: writing \"%s\": %s", dpath,
		    file, value, strerror(saved)));
	if ((size_t)n != len)
		return (cg_fail(cause, "%s/%s: short write of \"%s\"", dpath,
		    file, value));
	cg_hook(h, CGROUP_FAKE_WRITE, dpath, file, value);
	return (0);
}

/* Is there a regular file (not a symlink) called file in dfd? */
static int
cg_exists(int dfd, const char *file)
{
	struct stat	st;

	if (fstatat(dfd, file, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return (0);
	return (S_ISREG(st.st_mode));
}

/* Returns 1 if made, 0 if it was there and excl is 0, else -1. */
static int
cg_mkdir(struct cgroup_host *h, int pfd, const char *ppath, const char *name,
    int excl, char **cause)
{
	char	*path;

	if (mkdirat(pfd, name, 0755) == -1) {
		if (errno == EEXIST && !excl)
			return (0);
		if (errno == EEXIST)
			return (cg_fail(cause, "%s/%s: already exists", ppath,
			    name));
		return (cg_fail(cause, "%s/%s: mkdir: %s", ppath, name,
		    strerror(errno)));
	}
	path = xprintf("%s/%s", ppath, name);
	cg_hook(h, CGROUP_FAKE_MKDIR, path, NULL, NULL);
	free(path);
	return (1);
}

/* mountinfo writes space, tab, newline and backslash as \ooo. */
static char *
cg_unescape(const char *s)
{
	char	*out = xcalloc(1, strlen(s) + 1), *o = out;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (s[1] - '0') * 64 + (s[2] - '0') * 8 +
			    (s[3] - '0');
			s += 4;
		} else
			*o++ = *s++;
	}
	return (out);
}

/* "id parent maj:min root point opts [optional...] - fstype source super" */
static int
cg_parse_mount(char *line, struct cg_mount *m)
{
	char	*f[CG_FIELDS], *s, *save;
	int	 n = 0, i, sep = -1;

	for (s = strtok_r(line, " \n", &save); s != NULL && n < CG_FIELDS;
	    s = strtok_r(NULL, " \n", &save))
		f[n++] = s;
	for (i = 6; i < n; i++) {
		if (strcmp(f[i], "-") == 0) {
			sep = i;
			break;
		}
	}
	if (sep == -1 || sep + 3 >= n)
		return (-1);
	m->root = cg_unescape(f[3]);
	m->point = cg_unescape(f[4]);
	m->fstype = xstrdup(f[sep + 1]);
	m->super = xstrdup(f[sep + 3]);
	return (0);
}

/* "hierarchy-id:controllers:path"; the path may hold colons. */
static int
cg_parse_member(char *line, struct cg_member *m)
{
	char	*ctls, *path;

	line[strcspn(line, "\n")] = '\0';
	if ((ctls = strchr(line, ':')) == NULL)
		return (-1);
	ctls++;
	if ((path = strchr(ctls, ':')) == NULL)
		return (-1);
	*path++ = '\0';
	m->ctls = xstrdup(ctls);
	m->path = xstrdup(path);
	return (0);
}

static int
cg_proc_read(const char *proc_root, struct cg_proc *p, char **cause)
{
	static const char *const files[] = { "mountinfo", "cgroup" };
	FILE	*f;
	char	*path, *line = NULL;
	size_t	 size = 0, i;
	int	 ok;

	for (i = 0; i < nitems(files); i++) {
		path = xprintf("%s/self/%s", proc_root, files[i]);
		if ((f = fopen(path, "re")) == NULL) {
			cg_fail(cause, "%s: %s", path, strerror(errno));
			free(path);
			free(line);
			return (-1);
		}
		free(path);
		while (getline(&line, &size, f) != -1) {
			if (i == 0) {
				p->mounts = xreallocarray(p->mounts,
				    p->nmounts + 1, sizeof *p->mounts);
				ok = cg_parse_mount(line,
				    &p->mounts[p->nmounts]);
				p->nmounts += (ok == 0);
			} else {
				p->members = xreallocarray(p->members,
				    p->nmembers + 1, sizeof *p->members);
				ok = cg_parse_member(line,
				    &p->members[p->nmembers]);
				p->nmembers += (ok == 0);
			}
		}
		fclose(f);
	}
	free(line);
	return (0);
}

static void
cg_proc_free(struct cg_proc *p)
{
	size_t	i;

	for (i = 0; i < p->nmounts; i++) {
		free(p->mounts[i].root);
		free(p->mounts[i].point);
		free(p->mounts[i].fstype);
		free(p->mounts[i].super);
	}
	for (i = 0; i < p->nmembers; i++) {
		free(p->members[i].ctls);
		free(p->members[i].path);
	}
	free(p->mounts);
	free(p->members);
}

/*
 * Where own (from self/cgroup) is below a mount of the hierarchy's
 * subtree root: "" for the root, "/a/b" below. NULL if the mount does not
 * show own, or own has an odd component.
 */
static char *
cg_relative(const char *root, const char *own)
{
	const char	*rel, *c;
	size_t		 len = strlen(root), n;

	if (own[0] != '/')
		return (NULL);
	if (strcmp(root, "/") == 0)
		rel = own;
	else if (strncmp(own, root, len) == 0 &&
	    (own[len] == '\0' || own[len] == '/'))
		rel = own + len;
	else
		return (NULL);
	if (strcmp(rel, "/") == 0)
		rel = "";
	for (c = rel; *c != '\0'; c += n) {
		c++;
		n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return (NULL);
	}
	return (xstrdup(rel));
}

static void
cg_add(struct cgroup_host *h, int version, const char *point,
    const char *rel, enum cg_ctl ctl)
{
	struct cg_hier	*hr;
	int		 i;

	for (i = 0; i < h->nhier; i++) {
		hr = &h->hier[i];
		if (hr->version == version && strcmp(hr->point, point) == 0)
			break;
	}
	if (i == h->nhier) {
		hr = &h->hier[h->nhier++];
		hr->version = version;
		hr->point = xstrdup(point);
		hr->own = xstrdup(rel);
		hr->path = xprintf("%s%s/%s", point, rel, h->name);
		hr->fd = -1;
	}
	h->hier[i].ctls |= 1u << ctl;
	h->at[ctl] = i;
}

/* The self/cgroup line for a v1 controller, or for v2 when ctl is "". */
static const struct cg_member *
cg_member_for(const struct cg_proc *p, const char *ctl)
{
	size_t	i;

	for (i = 0; i < p->nmembers; i++) {
		if (*ctl == '\0' && p->members[i].ctls[0] == '\0')
			return (&p->members[i]);
		if (*ctl != '\0' && cg_word(p->members[i].ctls, ctl, ","))
			return (&p->members[i]);
	}
	return (NULL);
}

/* Returns 1 if ctl is bound to a v1 hierarchy (usable or not). */
static int
cg_detect_v1(struct cgroup_host *h, const struct cg_proc *p, enum cg_ctl ctl)
{
	const struct cg_member	*mb;
	const struct cg_mount	*m;
	const char		*name = cg_ctl_names[ctl];
	char			*rel;
	size_t			 i;
	int			 bound = 0;

	mb = cg_member_for(p, name);
	for (i = 0; i < p->nmounts; i++) {
		m = &p->mounts[i];
		if (strcmp(m->fstype, "cgroup") != 0 ||
		    !cg_word(m->super, name, ","))
			continue;
		bound = 1;
		if (mb == NULL) {
			cg_note(h, "%s: v1 but not in self/cgroup", name);
			continue;
		}
		if ((rel = cg_relative(m->root, mb->path)) == NULL) {
			cg_note(h, "%s: %s not visible at %s", name,
			    mb->path, m->point);
			continue;
		}
		cg_add(h, 1, m->point, rel, ctl);
		free(rel);
		if (h->hier[h->at[ctl]].seen == NULL)
			h->hier[h->at[ctl]].seen = xprintf("%s/%s",
			    strcmp(mb->path, "/") == 0 ? "" : mb->path,
			    h->name);
		break;
	}
	return (bound);
}

/*
 * Controllers not bound to v1 count as v2 only if our group may use them:
 * its cgroup.controllers is what the parent enabled for it.
 */
static void
cg_detect_v2(struct cgroup_host *h, const struct cg_proc *p, unsigned v1)
{
	const struct cg_member	*mb;
	const struct cg_mount	*m = NULL;
	char			*rel = NULL, *suffix, *own, *list;
	size_t			 i, len, slen;
	int			 fd, ctl;

	if ((mb = cg_member_for(p, "")) == NULL) {
		cg_note(h, "no v1 mount, no cgroup2 line in self/cgroup");
		return;
	}
	for (i = 0; i < p->nmounts && rel == NULL; i++) {
		m = &p->mounts[i];
		if (strcmp(m->fstype, "cgroup2") == 0)
			rel = cg_relative(m->root, mb->path);
	}
	if (rel == NULL) {
		cg_note(h, "no cgroup2 mount showing our group");
		return;
	}
	/* Already in our leaf (re-exec): our group is the one above. */
	suffix = xprintf("/%s/%s", h->name, CG_LEAF);
	len = strlen(rel);
	slen = strlen(suffix);
	if (len >= slen && strcmp(rel + len - slen, suffix) == 0)
		rel[len - slen] = '\0';
	free(suffix);
	own = xprintf("%s%s", m->point, rel);
	if ((fd = file_open_dir(m->point, rel, NULL)) == -1 ||
	    cg_read(h, fd, own, "cgroup.controllers", &list, NULL) == -1) {
		cg_note(h, "cgroup2: cannot read %s/cgroup.controllers", own);
		list = NULL;
	}
	for (ctl = 0; list != NULL && ctl < CG_CPUACCT; ctl++) {
		if (v1 & (1u << ctl))
			continue;
		if (cg_word(list, cg_ctl_names[ctl], " \n"))
			cg_add(h, 2, m->point, rel, ctl);
		else
			cg_note(h, "%s: not in %s/cgroup.controllers",
			    cg_ctl_names[ctl], own);
	}
	if (fd != -1)
		close(fd);
	free(list);
	free(own);
	free(rel);
}

static void
cg_describe(struct cgroup_host *h)
{
	char	*s = xstrdup(""), *t;
	int	 ctl, i;

	for (ctl = 0; ctl < CG_NCTL; ctl++) {
		i = h->at[ctl];
		if (ctl == CG_CPUACCT && i == -1)
			continue;
		t = xprintf("%s%s%s=%s", s, *s == '\0' ? "" : " ",
		    cg_ctl_names[ctl], i == -1 ? "none" :
		    h->hier[i].version == 1 ? "v1" : "v2");
		free(s);
		s = t;
	}
	if (h->why != NULL && (h->at[CG_MEMORY] == -1 ||
	    h->at[CG_PIDS] == -1 || h->at[CG_CPU] == -1)) {
		t = xprintf("%s (%s)", s, h->why);
		free(s);
		s = t;
	}
	h->desc = s;
}

struct cgroup_host *
cgroup_host_detect(const char *proc_root, const char *name, char **cause)
{
	struct cgroup_host	*h;
	struct cg_proc		 p;
	unsigned		 v1 = 0;
	int			 ctl;

	if (!cgroup_valid_name(name)) {
		cg_fail(cause, "bad cgroup name \"%s\"", name);
		return (NULL);
	}
	memset(&p, 0, sizeof p);
	if (cg_proc_read(proc_root, &p, cause) == -1) {
		cg_proc_free(&p);
		return (NULL);
	}
	h = xcalloc(1, sizeof *h);
	h->name = xstrdup(name);
	h->proc_root = xstrdup(proc_root);
	for (ctl = 0; ctl < CG_NCTL; ctl++)
		h->at[ctl] = -1;
	for (ctl = 0; ctl < CG_NCTL; ctl++) {
		if (cg_detect_v1(h, &p, ctl))
			v1 |= 1u << ctl;
	}
	cg_detect_v2(h, &p, v1);
	cg_proc_free(&p);
	cg_describe(h);
	return (h);
}

void
cgroup_host_set_fake(struct cgroup_host *h, cgroup_fake_fn *fn, void *arg)
{
	h->fake = fn;
	h->fake_arg = arg;
}

void
cgroup_host_destroy(struct cgroup_host **hp)
{
	struct cgroup_host	*h = *hp;
	int			 i;

	if (h == NULL)
		return;
	for (i = 0; i < h->nhier; i++) {
		if (h->hier[i].fd != -1)
			close(h->hier[i].fd);
		free(h->hier[i].point);
		free(h->hier[i].own);
		free(h->hier[i].path);
		free(h->hier[i].seen);
	}
	free(h->name);
	free(h->proc_root);
	free(h->why);
	free(h->desc);
	free(h);
	*hp = NULL;
}

const char *
cgroup_host_describe(struct cgroup_host *h)
{
	return (h->desc);
}

int
cgroup_host_controller(const struct cgroup_host *h, const char *controller,
    const char **path)
{
	int	ctl, i;

	for (ctl = 0; ctl < CG_NCTL; ctl++) {
		if (strcmp(controller, cg_ctl_names[ctl]) != 0)
			continue;
		if ((i = h->at[ctl]) == -1)
			return (0);
		if (path != NULL)
			*path = h->hier[i].path;
		return (h->hier[i].version);
	}
	return (0);
}

int
cgroup_valid_name(const char *s)
{
	size_t	i;
	char	c;

	if (s == NULL || s[0] == '\0' || s[0] == '.' || s[0] == '_' ||
	    s[0] == '-')
		return (0);
	for (i = 0; s[i] != '\0'; i++) {
		c = s[i];
		if (i == CG_NAME_MAX)
			return (0);
		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '_' && c != '.' &&
		    c != '-')
			return (0);
	}
	return (strstr(s, "..") == NULL && strcmp(s, CG_LEAF) != 0);
}

/* Enables ctls for the children of a v2 group, and checks they took. */
static int
cg_enable(struct cgroup_host *h, int dfd, const char *dpath, unsigned ctls,
    char **cause)
{
	char	*have, plus[16];
	int	 ctl, r = 0;

	if (cg_read(h, dfd, dpath, "cgroup.subtree_control", &have,
	    cause) == -1)
		return (-1);
	for (ctl = 0; r == 0 && ctl < CG_NCTL; ctl++) {
		if (!(ctls & (1u << ctl)) ||
		    cg_word(have, cg_ctl_names[ctl], " \n"))
			continue;
		snprintf(plus, sizeof plus, "+%s", cg_ctl_names[ctl]);
		r = cg_write(h, dfd, dpath, "cgroup.subtree_control", plus,
		    cause);
	}
	free(have);
	if (r == -1 || cg_read(h, dfd, dpath, "cgroup.subtree_control",
	    &have, cause) == -1)
		return (-1);
	cg_trim(have);
	for (ctl = 0; r == 0 && ctl < CG_NCTL; ctl++) {
		if ((ctls & (1u << ctl)) &&
		    !cg_word(have, cg_ctl_names[ctl], " \n"))
			r = cg_fail(cause, "%s/cgroup.subtree_control: %s did "
			    "not take (reads \"%s\")", dpath,
			    cg_ctl_names[ctl], have);
	}
	free(have);
	return (r);
}

/*
 * No internal processes on v2: move ourselves into <name>/daemon, then
 * give the controllers to <own>'s and <name>'s children.
 */
static int
cg_prepare_v2(struct cgroup_host *h, struct cg_hier *hr, int ownfd,
    const char *ownpath, int fd, char **cause)
{
	char	 pid[32], *leaf;
	int	 lfd, r;

	if (cg_mkdir(h, fd, hr->path, CG_LEAF, 0, cause) == -1)
		return (-1);
	if ((lfd = file_open_at(fd, hr->path, CG_LEAF, O_RDONLY | O_DIRECTORY,
	    0, cause)) == -1)
		return (-1);
	leaf = xprintf("%s/%s", hr->path, CG_LEAF);
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	r = cg_write(h, lfd, leaf, "cgroup.procs", pid, cause);
	close(lfd);
	free(leaf);
	if (r == -1 || cg_enable(h, ownfd, ownpath, hr->ctls, cause) == -1)
		return (-1);
	return (cg_enable(h, fd, hr->path, hr->ctls, cause));
}

static int
cg_prepare_hier(struct cgroup_host *h, struct cg_hier *hr, char **cause)
{
	char	*ownpath;
	int	 ownfd, fd = -1;

	ownpath = xprintf("%s%s", hr->point, hr->own);
	if ((ownfd = file_open_dir(hr->point, hr->own, cause)) == -1)
		goto out;
	if (cg_mkdir(h, ownfd, ownpath, h->name, 0, cause) == -1)
		goto out;
	if ((fd = file_open_at(ownfd, ownpath, h->name, O_RDONLY |
	    O_DIRECTORY, 0, cause)) == -1)
		goto out;
	if (hr->version == 2 &&
	    cg_prepare_v2(h, hr, ownfd, ownpath, fd, cause) == -1) {
		close(fd);
		fd = -1;
		goto out;
	}
	hr->fd = fd;
out:
	if (ownfd != -1)
		close(ownfd);
	free(ownpath);
	return (fd == -1 ? -1 : 0);
}

int
cgroup_host_prepare(struct cgroup_host *h, char **cause)
{
	int	i;

	for (i = 0; i < h->nhier; i++) {
		if (h->hier[i].fd != -1)
			continue;
		if (cg_prepare_hier(h, &h->hier[i], cause) == -1)
			return (-1);
	}
	return (0);
}

static int
cg_prepared(struct cgroup_host *h, char **cause)
{
	int	i;

	for (i = 0; i < h->nhier; i++) {
		if (h->hier[i].fd == -1)
			return (cg_fail(cause, "%s: not prepared",
			    h->hier[i].path));
	}
	return (0);
}

static int
cg_check(struct cgroup_host *h, const char *session, char **cause)
{
	if (!cgroup_valid_name(session))
		return (cg_fail(cause, "bad session name \"%s\"", session));
	return (cg_prepared(h, cause));
}

/* Returns 1 if open, 0 if missing and missing_ok, else -1. */
static int
cg_dir_open(struct cgroup_host *h, int i, const char *session,
    struct cg_dir *d, int missing_ok, char **cause)
{
	char	*why;

	d->fd = file_open_at(h->hier[i].fd, h->hier[i].path, session,
	    O_RDONLY | O_DIRECTORY, 0, &why);
	if (d->fd == -1 && errno == ENOENT && missing_ok) {
		free(why);
		return (0);
	}
	if (d->fd == -1) {
		if (cause != NULL)
			*cause = why;
		else
			free(why);
		return (-1);
	}
	d->path = xprintf("%s/%s", h->hier[i].path, session);
	return (1);
}

static void
cg_dir_close(struct cg_dir *d)
{
	if (d->fd != -1)
		close(d->fd);
	free(d->path);
	d->fd = -1;
	d->path = NULL;
}

static int
cg_wanted(enum cg_ctl ctl, const struct cgroup_limits *l)
{
	switch (ctl) {
	case CG_MEMORY:
		return (l->memory_bytes != 0);
	case CG_PIDS:
		return (l->pids != 0);
	case CG_CPU:
		return (l->cpu_millis != 0);
	default:
		return (0);
	}
}

static void
fmt_memory(const struct cgroup_limits *l, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64, l->memory_bytes);
}

static void
fmt_zero(const struct cgroup_limits *l, char *buf, size_t len)
{
	(void)l;
	snprintf(buf, len, "0");
}

static void
fmt_one(const struct cgroup_limits *l, char *buf, size_t len)
{
	(void)l;
	snprintf(buf, len, "1");
}

static void
fmt_pids(const struct cgroup_limits *l, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64, l->pids);
}

static void
fmt_period(const struct cgroup_limits *l, char *buf, size_t len)
{
	(void)l;
	snprintf(buf, len, "%d", CG_PERIOD_US);
}

static void
fmt_quota(const struct cgroup_limits *l, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64,
	    (uint64_t)l->cpu_millis * CG_PERIOD_US / 1000);
}

static void
fmt_cpu_max(const struct cgroup_limits *l, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64 " %d",
	    (uint64_t)l->cpu_millis * CG_PERIOD_US / 1000, CG_PERIOD_US);
}

/* Byte values may come back rounded to a page, either way. */
static int
cg_same(enum cg_cmp cmp, const char *want, const char *got)
{
	uint64_t	a, b;
	long		page;

	if (cmp == CMP_EXACT)
		return (strcmp(want, got) == 0);
	if (cg_u64(want, &a) == -1 || cg_u64(got, &b) == -1)
		return (0);
	if ((page = sysconf(_SC_PAGESIZE)) <= 0)
		page = 4096;
	return ((a > b ? a - b : b - a) < (uint64_t)page);
}

/* Writes this hierarchy's rows, then reads every one back. */
static int
cg_apply(struct cgroup_host *h, const struct cg_hier *hr, struct cg_dir *d,
    const char *session, const struct cgroup_limits *l, char **cause)
{
	const struct cg_limit	*row;
	const char		*file;
	char			 value[64];
	uint32_t		 written = 0;
	size_t			 i;

	for (i = 0; i < nitems(cg_limits); i++) {
		row = &cg_limits[i];
		file = hr->version == 1 ? row->v1 : row->v2;
		if (file == NULL || !(hr->ctls & (1u << row->ctl)) ||
		    !cg_wanted(row->ctl, l))
			continue;
		if (row->optional && !cg_exists(d->fd, file))
			continue;
		row->fmt(l, value, sizeof value);
		if (cg_write(h, d->fd, d->path, file, value, cause) == -1)
			return (-1);
		written |= 1u << i;
	}
	return (cg_verify(h, hr, d, session, l, written, cause));
}

/* What a value file reads back: all of it, or the N of its "key N". */
static int
cg_readback(struct cgroup_host *h, struct cg_dir *d, const char *file,
    const char *key, char **got, char **cause)
{
	uint64_t	v;

	if (cg_read(h, d->fd, d->path, file, got, cause) == -1)
		return (-1);
	cg_trim(*got);
	if (key == NULL)
		return (0);
	if (cg_keyed(*got, key, &v) == -1) {
		free(*got);
		*got = xprintf("(no %s line)", key);
	} else {
		free(*got);
		*got = xprintf("%" PRIu64, v);
	}
	return (0);
}

static int
cg_verify(struct cgroup_host *h, const struct cg_hier *hr, struct cg_dir *d,
    const char *session, const struct cgroup_limits *l, uint32_t written,
    char **cause)
{
	const struct cg_limit	*row;
	const char		*file;
	char			 want[64], *got;
	size_t			 i;
	int			 same;

	for (i = 0; i < nitems(cg_limits); i++) {
		if (!(written & (1u << i)))
			continue;
		row = &cg_limits[i];
		file = hr->version == 1 ? row->v1 : row->v2;
		row->fmt(l, want, sizeof want);
		if (cg_readback(h, d, file, row->key, &got, cause) == -1)
			return (-1);
		same = cg_same(row->cmp, want, got);
		if (!same)
			cg_fail(cause, "session %s: %s/%s reads back \"%s\", "
			    "wrote \"%s\"", session, d->path, file, got, want);
		free(got);
		if (!same)
			return (-1);
	}
	return (0);
}

int
cgroup_create(struct cgroup_host *h, const char *session,
    const struct cgroup_limits *l, char **cause)
{
	struct cg_dir	d = { -1, NULL };
	unsigned	made = 0;
	int		ctl, i, r;

	if (cg_check(h, session, cause) == -1)
		return (-1);
	for (ctl = 0; ctl < CG_NCTL; ctl++) {
		if (cg_wanted(ctl, l) && h->at[ctl] == -1)
			return (cg_fail(cause, "session %s: no %s controller "
			    "(%s)", session, cg_ctl_names[ctl], h->desc));
	}
	for (i = 0; i < h->nhier; i++) {
		if (cg_mkdir(h, h->hier[i].fd, h->hier[i].path, session, 1,
		    cause) == -1)
			goto undo;
		made |= 1u << i;
		if (cg_dir_open(h, i, session, &d, 0, cause) == -1)
			goto undo;
		r = cg_apply(h, &h->hier[i], &d, session, l, cause);
		cg_dir_close(&d);
		if (r == -1)
			goto undo;
	}
	return (0);
undo:
	/* Fail closed: a group with the wrong limits must not be used. */
	for (i = 0; i < h->nhier; i++) {
		if (made & (1u << i))
			cg_rmdir(h, i, session, NULL);
	}
	return (-1);
}

int
cgroup_set_limits(struct cgroup_host *h, const char *session,
    const struct cgroup_limits *l, char **cause)
{
	struct cg_dir	d = { -1, NULL };
	int		ctl, i, r;

	if (cg_check(h, session, cause) == -1)
		return (-1);
	for (ctl = 0; ctl < CG_NCTL; ctl++) {
		if (cg_wanted(ctl, l) && h->at[ctl] == -1)
			return (cg_fail(cause, "session %s: no %s controller "
			    "(%s)", session, cg_ctl_names[ctl], h->desc));
	}
	for (i = 0; i < h->nhier; i++) {
		if (cg_dir_open(h, i, session, &d, 0, cause) == -1)
			return (-1);
		r = cg_apply(h, &h->hier[i], &d, session, l, cause);
		cg_dir_close(&d);
		if (r == -1)
			return (-1);
	}
	return (0);
}

/* rmdir in one hierarchy; dying members keep it busy briefly. */
static int
cg_rmdir(struct cgroup_host *h, int i, const char *session, char **cause)
{
	struct stat	 st;
	char		*path;
	int		 fd = h->hier[i].fd, round;

	if (fstatat(fd, session, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			return (0);
		return (cg_fail(cause, "%s/%s: %s", h->hier[i].path, session,
		    strerror(errno)));
	}
	if (!S_ISDIR(st.st_mode))
		return (cg_fail(cause, "%s/%s: not a directory, left alone",
		    h->hier[i].path, session));
	path = xprintf("%s/%s", h->hier[i].path, session);
	cg_hook(h, CGROUP_FAKE_RMDIR, path, NULL, NULL);
	for (round = 0;; round++) {
		if (unlinkat(fd, session, AT_REMOVEDIR) == 0 ||
		    errno == ENOENT)
			break;
		if (errno != EBUSY || round == CG_ROUNDS) {
			cg_fail(cause, "%s: rmdir: %s", path, strerror(errno));
			free(path);
			return (-1);
		}
		cg_pause(round);
	}
	free(path);
	return (0);
}

int
cgroup_attach(struct cgroup_host *h, const char *session, pid_t pid,
    char **cause)
{
	struct cg_dir	d = { -1, NULL };
	char		value[32];
	int		i, r;

	if (cg_check(h, session, cause) == -1)
		return (-1);
	if (pid <= 0)
		return (cg_fail(cause, "session %s: bad pid %ld", session,
		    (long)pid));
	snprintf(value, sizeof value, "%ld", (long)pid);
	for (i = 0; i < h->nhier; i++) {
		if (cg_dir_open(h, i, session, &d, 0, cause) == -1)
			return (-1);
		r = cg_write(h, d.fd, d.path, "cgroup.procs", value, cause);
		cg_dir_close(&d);
		if (r == -1)
			return (-1);
	}
	return (0);
}

/*
 * The self-move (docs/ZYGOTE.md, "Cgroup moves"): a descriptor of the
 * session's v1 `tasks` file in every hierarchy, opened here as root, for
 * the new process to write "0" to while it is single-threaded. The kernel
 * checks a migration against the credentials the file was opened with
 * (Linux 5.16), and moving the writer's own single thread skips the
 * global cgroup_threadgroup_rwsem that a cgroup.procs write takes (its
 * writer waits for an RCU grace period unless the hierarchy is mounted
 * with favordynmods). Returns how many descriptors are in fds (one per
 * hierarchy), 0 if a hierarchy is v2 (there the daemon writes
 * cgroup.procs: no tasks file moves a whole process), or -1.
 */
int
cgroup_self_move_open(struct cgroup_host *h, const char *session, int *fds,
    int max, char **cause)
{
	struct cg_dir	d = { -1, NULL };
	int		i, n;

	if (cg_check(h, session, cause) == -1)
		return (-1);
	for (i = 0; i < h->nhier; i++) {
		if (h->hier[i].version != 1 || h->hier[i].seen == NULL)
			return (0);
	}
	if (h->nhier > max)
		return (0);
	for (n = 0; n < h->nhier; n++) {
		if (cg_dir_open(h, n, session, &d, 0, cause) == -1)
			break;
		fds[n] = file_open_regular(d.fd, d.path, "tasks",
		    O_WRONLY | O_CLOEXEC, cause);
		cg_dir_close(&d);
		if (fds[n] == -1)
			break;
	}
	if (n == h->nhier)
		return (n);
	while (n-- > 0)
		close(fds[n]);
	return (-1);
}

/* Is our group's line of hr in a <pid>/cgroup listing session's group? */
static int
cg_member_line(const struct cg_hier *hr, const char *line,
    const char *session)
{
	const char	*ctls, *path;
	char		 name[32];
	size_t		 len;
	int		 ctl;

	if ((ctls = strchr(line, ':')) == NULL ||
	    (path = strchr(++ctls, ':')) == NULL)
		return (-1);
	len = path++ - ctls;
	if (len == 0 || len >= sizeof name)
		return (-1);
	memcpy(name, ctls, len);
	name[len] = '\0';
	for (ctl = 0; ctl < CG_NCTL; ctl++) {
		if ((hr->ctls & (1u << ctl)) && cg_word(name, cg_ctl_names[ctl],
		    ","))
			break;
	}
	if (ctl == CG_NCTL)
		return (-1);	/* another hierarchy's line */
	len = strlen(hr->seen);
	return (strncmp(path, hr->seen, len) == 0 && path[len] == '/' &&
	    strcmp(path + len + 1, session) == 0);
}

/*
 * Is pid in session's group in every v1 hierarchy? Read from
 * <proc_root>/<pid>/cgroup, one file and no cgroup lock: how the daemon
 * checks a process that moved itself (cgroup_self_move_open). v2
 * hierarchies are not checked here (the daemon moved it there itself).
 */
int
cgroup_check_member(struct cgroup_host *h, const char *session, pid_t pid,
    char **cause)
{
	char	*path, buf[CG_PROC_MAX], *line, *next;
	ssize_t	 n;
	int	 fd, i, r, found;

	if (cg_check(h, session, cause) == -1)
		return (-1);
	path = xprintf("%s/%ld/cgroup", h->proc_root, (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		cg_fail(cause, "%s: %s", path, strerror(errno));
		free(path);
		return (-1);
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0 || n == sizeof buf - 1) {
		cg_fail(cause, "%s: %s", path, n == -1 ? strerror(errno) :
		    "empty or too long");
		free(path);
		return (-1);
	}
	free(path);
	buf[n] = '\0';
	for (i = 0; i < h->nhier; i++) {
		if (h->hier[i].version != 1 || h->hier[i].seen == NULL)
			continue;
		found = 0;
		for (line = buf; line != NULL && *line != '\0'; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			if ((r = cg_member_line(&h->hier[i], line, session)) !=
			    -1) {
				found = r;
				if (next != NULL)
					next[-1] = '\n';
				break;
			}
			if (next != NULL)
				next[-1] = '\n';
		}
		if (!found) {
			return (cg_fail(cause, "pid %ld is not in %s/%s",
			    (long)pid, h->hier[i].path, session));
		}
	}
	return (0);
}

/* Parses a cgroup.procs listing into a sorted array. */
static int
cg_parse_pids(const char *buf, pid_t **pids, size_t *n)
{
	const char	*s;
	char		*end;
	size_t		 max = 1;
	long		 v;

	for (s = buf; *s != '\0'; s++)
		max += (*s == '\n');
	*pids = xcalloc(max, sizeof **pids);
	*n = 0;
	for (s = buf; *s != '\0'; s = end) {
		errno = 0;
		v = strtol(s, &end, 10);
		if (end == s || errno != 0 || v <= 0 || v > INT32_MAX ||
		    (*end != '\n' && *end != '\0') || *n == max) {
			free(*pids);
			*pids = NULL;
			return (-1);
		}
		(*pids)[(*n)++] = (pid_t)v;
		if (*end == '\n')
			end++;
	}
	qsort(*pids, *n, sizeof **pids, cg_pid_cmp);
	return (0);
}

static int
cg_pid_cmp(const void *a, const void *b)
{
	pid_t	x = *(const pid_t *)a, y = *(const pid_t *)b;

	return ((x > y) - (x < y));
}

static int
cg_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (syscall(SYS_pidfd_open, pid, 0));
#else
	(void)pid;
	errno = ENOSYS;
	return (-1);
#endif
}

static int
cg_pidfd_kill(int pfd)
{
#ifdef SYS_pidfd_send_signal
	return (syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0));
#else
	(void)pfd;
	errno = ENOSYS;
	return (-1);
#endif
}

/*
 * SIGKILLs the members; returns how many there were. A listed pid may
 * exit and be reused before we signal it, so each is pinned with a pidfd
 * and signalled only if a second listing, taken after pinning, still has
 * it: a pid listed then belongs to the pinned process.
 */
static int
cg_signal_procs(struct cgroup_host *h, struct cg_dir *d, char **cause)
{
	pid_t	*before = NULL, *after = NULL, *p;
	size_t	 n, nafter, i;
	char	*buf;
	int	*pfd, r = -1;

	if (cg_read(h, d->fd, d->path, "cgroup.procs", &buf, cause) == -1)
		return (-1);
	if (cg_parse_pids(buf, &before, &n) == -1) {
		free(buf);
		return (cg_fail(cause, "%s/cgroup.procs: bad listing",
		    d->path));
	}
	free(buf);
	pfd = xcalloc(n + 1, sizeof *pfd);
	for (i = 0; i < n; i++) {
		if ((pfd[i] = cg_pidfd_open(before[i])) == -1 &&
		    errno == ENOSYS)
			pfd[i] = -2;
	}
	if (cg_read(h, d->fd, d->path, "cgroup.procs", &buf, cause) == -1)
		goto out;
	if (cg_parse_pids(buf, &after, &nafter) == -1) {
		free(buf);
		cg_fail(cause, "%s/cgroup.procs: bad listing", d->path);
		goto out;
	}
	free(buf);
	for (i = 0; i < n; i++) {
		p = bsearch(&before[i], after, nafter, sizeof *after,
		    cg_pid_cmp);
		if (p == NULL)
			continue;
		/* Without pidfds (old kernel) a plain kill is all there is. */
		if (pfd[i] == -2 || (pfd[i] >= 0 &&
		    cg_pidfd_kill(pfd[i]) == -1 && errno == ENOSYS))
			kill(before[i], SIGKILL);
	}
	r = (int)n;
out:
	for (i = 0; i < n; i++) {
		if (pfd[i] >= 0)
			close(pfd[i]);
	}
	free(pfd);
	free(before);
	free(after);
	return (r);
}

static int
cg_count_procs(struct cgroup_host *h, struct cg_dir *d, char **cause)
{
	pid_t	*pids;
	size_t	 n;
	char	*buf;

	if (cg_read(h, d->fd, d->path, "cgroup.procs", &buf, cause) == -1)
		return (-1);
	if (cg_parse_pids(buf, &pids, &n) == -1) {
		free(buf);
		return (cg_fail(cause, "%s/cgroup.procs: bad listing",
		    d->path));
	}
	free(buf);
	free(pids);
	return ((int)n);
}

/* One kill pass over every hierarchy; returns the members it found. */
static int
cg_kill_round(struct cgroup_host *h, const char *session, char **cause)
{
	struct cg_dir	d = { -1, NULL };
	int		i, n, alive = 0;

	for (i = 0; i < h->nhier; i++) {
		if ((n = cg_dir_open(h, i, session, &d, 1, cause)) <= 0) {
			if (n == -1)
				return (-1);
			continue;
		}
		/* v2's cgroup.kill also catches children forked meanwhile. */
		if (h->hier[i].version == 2 && cg_exists(d.fd, "cgroup.kill")) {
			n = cg_count_procs(h, &d, cause);
			if (n > 0 && cg_write(h, d.fd, d.path, "cgroup.kill",
			    "1", cause) == -1)
				n = -1;
		} else
			n = cg_signal_procs(h, &d, cause);
		cg_dir_close(&d);
		if (n == -1)
			return (-1);
		alive += n;
	}
	return (alive);
}

int
cgroup_kill_all(struct cgroup_host *h, const char *session, char **cause)
{
	int	round, n;

	if (cg_check(h, session, cause) == -1)
		return (-1);
	for (round = 0; round < CG_ROUNDS; round++) {
		if ((n = cg_kill_round(h, session, cause)) <= 0)
			return (n);
		cg_pause(round);
	}
	return (cg_fail(cause, "session %s: members still alive after %d "
	    "rounds of SIGKILL", session, CG_ROUNDS));
}

/* How many members the session has over all hierarchies. */
static int
cg_populated(struct cgroup_host *h, const char *session, char **cause)
{
	struct cg_dir	d = { -1, NULL };
	int		i, n, total = 0;

	for (i = 0; i < h->nhier; i++) {
		if ((n = cg_dir_open(h, i, session, &d, 1, cause)) <= 0) {
			if (n == -1)
				return (-1);
			continue;
		}
		n = cg_count_procs(h, &d, cause);
		cg_dir_close(&d);
		if (n == -1)
			return (-1);
		total += n;
	}
	return (total);
}

int
cgroup_remove(struct cgroup_host *h, const char *session, char **cause)
{
	int	i, n;

	if (cg_check(h, session, cause) == -1)
		return (-1);
	if ((n = cg_populated(h, session, cause)) == -1)
		return (-1);
	if (n > 0 && cgroup_kill_all(h, session, cause) == -1)
		return (-1);
	for (i = 0; i < h->nhier; i++) {
		if (cg_rmdir(h, i, session, cause) == -1)
			return (-1);
	}
	return (0);
}

/* The row a query uses on this host, or NULL if none can answer it. */
static const struct cg_stat *
cg_stat_row(const struct cgroup_host *h, enum cg_query q)
{
	const struct cg_stat	*row;
	int			 v, i;

	for (v = 1; v <= 2; v++) {
		row = &cg_stats[q][v - 1];
		i = h->at[row->ctl];
		if (i != -1 && h->hier[i].version == v)
			return (row);
	}
	return (NULL);
}

static int
cg_query(struct cgroup_host *h, const char *session, enum cg_query q,
    uint64_t *out, char **cause)
{
	const struct cg_stat	*row;
	struct cg_dir		 d = { -1, NULL };
	char			*buf;
	int			 r;

	if ((row = cg_stat_row(h, q)) == NULL)
		return (cg_fail(cause, "session %s: no controller for %s",
		    session, cg_stats[q][1].file));
	if (cg_dir_open(h, h->at[row->ctl], session, &d, 0, cause) == -1)
		return (-1);
	r = cg_read(h, d.fd, d.path, row->file, &buf, cause);
	if (r == 0) {
		cg_trim(buf);
		r = row->key != NULL ? cg_keyed(buf, row->key, out) :
		    cg_u64(buf, out);
		if (r == -1 && row->key != NULL)
			cg_fail(cause, "%s/%s: no \"%s\" line", d.path,
			    row->file, row->key);
		else if (r == -1)
			cg_fail(cause, "%s/%s: not a number: \"%s\"", d.path,
			    row->file, buf);
		free(buf);
	}
	cg_dir_close(&d);
	if (r == 0)
		*out /= row->div;
	return (r);
}

int
cgroup_oom_kills(struct cgroup_host *h, const char *session,
    uint64_t *count, char **cause)
{
	if (cg_check(h, session, cause) == -1)
		return (-1);
	return (cg_query(h, session, Q_OOM_KILLS, count, cause));
}

int
cgroup_stats(struct cgroup_host *h, const char *session, uint64_t *mem_bytes,
    uint64_t *cpu_usec, char **cause)
{
	if (cg_check(h, session, cause) == -1)
		return (-1);
	if (mem_bytes != NULL &&
	    cg_query(h, session, Q_MEM_BYTES, mem_bytes, cause) == -1)
		return (-1);
	if (cpu_usec == NULL)
		return (0);
	if (cg_stat_row(h, Q_CPU_USEC) == NULL) {
		*cpu_usec = CGROUP_UNKNOWN;
		return (0);
	}
	return (cg_query(h, session, Q_CPU_USEC, cpu_usec, cause));
}

/*
 * Per-execute counters (the execution contract's metrics): the CPU and
 * memory high-water files opened once per session and re-read with pread,
 * as every execute reads them twice and opening them by path each time
 * cost more than the rest of an execute's daemon work.
 */
struct cgroup_meter {
	int		 cpu_fd;	/* -1: nothing counts CPU here */
	const char	*cpu_key;
	uint64_t	 cpu_div;
	int		 peak_fd;	/* -1: no high-water mark */
	int		 peak_reset;	/* v1: writing 0 restarts it */
	int		 mem_fd;	/* -1: no memory figure */
};

static int
cg_meter_file(struct cgroup_host *h, const char *session, enum cg_query q,
    int flags, const struct cg_stat **rowp)
{
	struct cg_dir	d = { -1, NULL };
	int		fd;

	if ((*rowp = cg_stat_row(h, q)) == NULL ||
	    cg_dir_open(h, h->at[(*rowp)->ctl], session, &d, 0, NULL) == -1)
		return (-1);
	fd = file_open_regular(d.fd, d.path, (*rowp)->file, flags, NULL);
	cg_dir_close(&d);
	return (fd);
}

struct cgroup_meter *
cgroup_meter_open(struct cgroup_host *h, const char *session, char **cause)
{
	struct cgroup_meter	*m;
	const struct cg_stat	*row;

	if (cg_check(h, session, cause) == -1)
		return (NULL);
	m = xcalloc(1, sizeof *m);
	m->cpu_fd = cg_meter_file(h, session, Q_CPU_USEC, O_RDONLY, &row);
	if (m->cpu_fd != -1) {
		m->cpu_key = row->key;
		m->cpu_div = row->div;
	}
	row = cg_stat_row(h, Q_MEM_PEAK);
	m->peak_reset = row != NULL && h->hier[h->at[row->ctl]].version == 1;
	m->peak_fd = cg_meter_file(h, session, Q_MEM_PEAK,
	    m->peak_reset ? O_RDWR : O_RDONLY, &row);
	if (m->peak_fd == -1)
		m->peak_reset = 0;
	m->mem_fd = cg_meter_file(h, session, Q_MEM_BYTES, O_RDONLY, &row);
	return (m);
}

static uint64_t
cg_meter_pread(int fd, const char *key, uint64_t div)
{
	char		buf[1024];
	ssize_t		n;
	uint64_t	v;

	if (fd == -1 || (n = pread(fd, buf, sizeof buf - 1, 0)) <= 0)
		return (CGROUP_UNKNOWN);
	buf[n] = '\0';
	cg_trim(buf);
	if ((key != NULL ? cg_keyed(buf, key, &v) : cg_u64(buf, &v)) != 0)
		return (CGROUP_UNKNOWN);
	return (v / div);
}

/* Either pointer may be NULL; CGROUP_UNKNOWN for what is not counted. */
void
cgroup_meter_read(struct cgroup_meter *m, uint64_t *cpu_usec, uint64_t *peak)
{
	if (cpu_usec != NULL)
		*cpu_usec = cg_meter_pread(m->cpu_fd, m->cpu_key, m->cpu_div);
	if (peak != NULL)
		*peak = cg_meter_pread(m->peak_fd, NULL, 1);
}

/*
 * cgroup_stats through the meter's descriptors: the memory in use and the
 * CPU used so far, each CGROUP_UNKNOWN if not counted. Either may be NULL.
 */
void
cgroup_meter_usage(struct cgroup_meter *m, uint64_t *mem_bytes,
    uint64_t *cpu_usec)
{
	if (mem_bytes != NULL)
		*mem_bytes = cg_meter_pread(m->mem_fd, NULL, 1);
	if (cpu_usec != NULL)
		*cpu_usec = cg_meter_pread(m->cpu_fd, m->cpu_key, m->cpu_div);
}

/* Start the high-water mark again from current usage; 0 if it can. */
int
cgroup_meter_reset_peak(struct cgroup_meter *m)
{
	if (!m->peak_reset)
		return (-1);
	return (pwrite(m->peak_fd, "0", 1, 0) == 1 ? 0 : -1);
}

void
cgroup_meter_close(struct cgroup_meter **mp)
{
	struct cgroup_meter	*m = *mp;

	if (m == NULL)
		return;
	if (m->cpu_fd != -1)
		close(m->cpu_fd);
	if (m->peak_fd != -1)
		close(m->peak_fd);
	if (m->mem_fd != -1)
		close(m->mem_fd);
	free(m);
	*mp = NULL;
}

/* Adds the session groups found in one hierarchy to names (no repeats). */
static int
cg_list_groups(const struct cg_hier *hr, char ***names, size_t *n,
    char **cause)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*dir;
	size_t		 i;
	int		 fd;

	fd = openat(hr->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return (cg_fail(cause, "%s: %s", hr->path, strerror(errno)));
	}
	while ((de = readdir(dir)) != NULL) {
		/* Not ours: odd names, our leaf, and anything not a dir. */
		if (!cgroup_valid_name(de->d_name))
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISDIR(st.st_mode))
			continue;
		for (i = 0; i < *n; i++) {
			if (strcmp((*names)[i], de->d_name) == 0)
				break;
		}
		if (i < *n)
			continue;
		*names = xreallocarray(*names, *n + 1, sizeof **names);
		(*names)[(*n)++] = xstrdup(de->d_name);
	}
	closedir(dir);
	return (0);
}

/*
 * Each state directory has its own <name>, so daemons on ever new state
 * directories (every test) would leave one empty group each behind.
 */
int
cgroup_host_remove(struct cgroup_host *h, char **cause)
{
	struct cg_hier	*hr;
	int		 i, ownfd, r = 0;

	for (i = 0; i < h->nhier; i++) {
		hr = &h->hier[i];
		if (hr->version != 1 || hr->fd == -1)
			continue;
		if ((ownfd = file_open_dir(hr->point, hr->own, r == 0 ? cause :
		    NULL)) == -1) {
			r = -1;
			continue;
		}
		cg_hook(h, CGROUP_FAKE_RMDIR, hr->path, NULL, NULL);
		if (unlinkat(ownfd, h->name, AT_REMOVEDIR) != 0 &&
		    errno != ENOENT)
			r = cg_fail(r == 0 ? cause : NULL, "%s: rmdir: %s",
			    hr->path, strerror(errno));
		close(ownfd);
	}
	return (r);
}

int
cgroup_cleanup_stale(struct cgroup_host *h, char **cause)
{
	char	**names = NULL;
	size_t	  n = 0, i;
	int	  r = 0, removed = 0;

	if (cg_prepared(h, cause) == -1)
		return (-1);
	for (i = 0; r == 0 && i < (size_t)h->nhier; i++)
		r = cg_list_groups(&h->hier[i], &names, &n, cause);
	/* Carry on past a failure: each removed group is one less leak. */
	for (i = 0; i < n; i++) {
		if (cgroup_remove(h, names[i], r == -1 ? NULL : cause) == 0)
			removed++;
		else
			r = -1;
		free(names[i]);
	}
	free(names);
	return (r == -1 ? -1 : removed);
}
