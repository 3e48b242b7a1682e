/* test-cgroup.c: cgroup.c against fake v1, v2 and hybrid trees, and real v1. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* vasprintf */
#endif

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "cgroup.h"

#define MiB		(1024ULL * 1024)
#define NREAL		7	/* real-v1 tests, counted when skipped */
#define V1_UNLIMITED	"9223372036854771712\n"	/* v1 memory's "max" */

#define CHECK(c)		check((c), __LINE__, #c)
#define CHECK_STR(got, want)	check_str((got), (want), __LINE__, #got)
#define CHECK_HAS(got, want)	check_has((got), (want), __LINE__, #got)
#define CHECK_CAUSE(cp, want)	check_cause((cp), (want), __LINE__)

/* What the fake kernel does besides holding files. */
struct fake {
	int		 v2;		/* the tree is one cgroup2 mount */
	const char	*clamp_file;	/* reads back clamp_value if written */
	const char	*clamp_value;
	const char	*omit_file;	/* mkdir does not create it */
	const char	*symlink_file;	/* mkdir makes it a symlink to victim */
	int		 killed;	/* children it saw die by SIGKILL */
};

struct fake_file {
	const char	*ctl;		/* NULL: every group has it */
	const char	*file;
	const char	*init;
};

static const struct fake_file fake_v1_files[] = {
	{ NULL,		"cgroup.procs",			"" },
	{ NULL,		"tasks",			"" },
	{ "memory",	"memory.limit_in_bytes",	V1_UNLIMITED },
	{ "memory",	"memory.memsw.limit_in_bytes",	V1_UNLIMITED },
	{ "memory",	"memory.oom_control",
	  "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n" },
	{ "memory",	"memory.usage_in_bytes",	"0\n" },
	{ "pids",	"pids.max",			"max\n" },
	{ "cpu",	"cpu.cfs_period_us",		"100000\n" },
	{ "cpu",	"cpu.cfs_quota_us",		"-1\n" },
	{ "cpuacct",	"cpuacct.usage",		"0\n" },
};

static const struct fake_file fake_v2_files[] = {
	{ NULL,		"cgroup.procs",			"" },
	{ NULL,		"cgroup.controllers",		"cpu memory pids\n" },
	{ NULL,		"cgroup.subtree_control",	"" },
	{ NULL,		"cgroup.kill",			"" },
	{ NULL,		"cgroup.events",		"populated 0\n" },
	{ NULL,		"cpu.stat",			"usage_usec 0\n" },
	{ "memory",	"memory.max",			"max\n" },
	{ "memory",	"memory.swap.max",		"max\n" },
	{ "memory",	"memory.oom.group",		"0\n" },
	{ "memory",	"memory.events",
	  "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n" },
	{ "memory",	"memory.current",		"0\n" },
	{ "pids",	"pids.max",			"max\n" },
	{ "cpu",	"cpu.max",			"max 100000\n" },
};

/* Trees: "@" stands for the tree's directory. */
static const char v2_mountinfo[] =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "31 23 0:28 / @/sys/fs/cgroup rw,nosuid,nodev,noexec,relatime "
    "shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

static const char v1_mountinfo[] =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "31 23 0:28 / @/sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / @/sys/fs/cgroup/cpuset rw shared:1 - cgroup cgroup "
    "rw,cpuset\n"
    "33 31 0:30 / @/sys/fs/cgroup/cpu,cpuacct rw shared:2 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "34 31 0:31 / @/sys/fs/cgroup/memory rw,nosuid - cgroup cgroup "
    "rw,memory\n"
    "35 31 0:32 / @/sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    "36 31 0:33 / @/sys/fs/cgroup/systemd rw - cgroup cgroup "
    "rw,xattr,name=systemd\n";
static const char v1_cgroup[] =
    "6:name=systemd:/user.slice/s1\n"
    "5:pids:/user.slice/s1\n"
    "4:memory:/user.slice/s1\n"
    "3:cpu,cpuacct:/\n"
    "2:cpuset:/\n";

/* This machine's /proc/self/mountinfo and /proc/self/cgroup, verbatim. */
static const char hybrid_mountinfo[] =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    "31 23 0:28 / @/sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / @/sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / @/sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup "
    "rw,cpuacct\n"
    "34 31 0:31 / @/sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup "
    "rw,cpuset\n"
    "35 31 0:32 / @/sys/fs/cgroup/memory rw,relatime - cgroup cgroup "
    "rw,memory\n"
    "36 31 0:33 / @/sys/fs/cgroup/devices rw,relatime - cgroup cgroup "
    "rw,devices\n"
    "37 31 0:34 / @/sys/fs/cgroup/freezer rw,relatime - cgroup cgroup "
    "rw,freezer\n"
    "38 31 0:35 / @/sys/fs/cgroup/blkio rw,relatime - cgroup cgroup "
    "rw,blkio\n"
    "39 31 0:36 / @/sys/fs/cgroup/pids rw,relatime - cgroup cgroup "
    "rw,pids\n"
    "40 31 0:37 / @/sys/fs/cgroup/systemd rw,relatime - cgroup cgroup "
    "rw,name=systemd\n"
    "41 31 0:38 / @/sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 "
    "rw\n";
#define HYBRID_OWN	"/process_api/5d6965b37de56953d8498bac94049776"
static const char hybrid_cgroup[] =
    "9:name=systemd:/\n"
    "8:pids:/\n"
    "7:blkio:/\n"
    "6:freezer:/\n"
    "5:devices:/\n"
    "4:memory:" HYBRID_OWN "\n"
    "3:cpuset:/\n"
    "2:cpuacct:/\n"
    "1:cpu:/\n"
    "0::/\n";

static int	passed, failed, skipped;
static char	tmp[256];	/* mkdtemp directory */
static struct fake fk;
static char	real_name[32];	/* the real test's <name> */
static char	*kept[256];	/* K()'s strings */
static size_t	 nkept;

static void	 check(int, int, const char *);
static void	 check_str(const char *, const char *, int, const char *);
static void	 check_has(const char *, const char *, int, const char *);
static const char *K(const char *, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *, ...) __attribute__((format(printf, 1, 2)));
static void	 mkdirs(const char *);
static void	 put(const char *, const char *);
static const char *slurp(const char *);
static int	 exists(const char *);
static int	 rm_entry(const char *, const struct stat *, int, struct FTW *);
static void	 rmtree(const char *);
static const char *tree(const char *, const char *, const char *);
static int	 has_ctl(const char *, const char *);
static void	 fake_populate(struct fake *, const char *);
static void	 fake_reap(struct fake *, const char *);
static void	 fake_kill(struct fake *, const char *);
static void	 fake_merge(const char *, const char *);
static void	 fake_wrote(struct fake *, const char *, const char *,
		    const char *);
static void	 fake_unpopulate(const char *);
static void	 fake_kernel(enum cgroup_fake_event, const char *,
		    const char *, const char *, void *);
static struct cgroup_host *fake_host(const char *, const char *);
static pid_t	 sleeper(int *);
static void	 sleeper_end(pid_t, int);
static int	 wait_child(pid_t, int, int *);
static void	 reap_all(void);
static void	 test_names(void);
static void	 v2_session(struct cgroup_host *, const char *, const char *);
static void	 test_v2(void);
static void	 test_v2_variants(void);
static void	 v1_session(struct cgroup_host *, const char *, const char *,
		    const char *);
static void	 test_v1(void);
static void	 test_v1_readback(void);
static void	 test_v1_stale(void);
static void	 symlink_own(const char *, const char *, const char *);
static void	 test_symlinks(void);
static void	 test_hybrid(void);
static void	 test_mount_root(void);
static void	 hog(int, size_t);
static void	 fork_bomb(int, int, int);
static void	 spin(int, int, size_t);
static int	 in_group(pid_t, const char *);
static void	 real_limits(struct cgroup_host *);
static void	 real_oom(struct cgroup_host *);
static void	 real_pids(struct cgroup_host *);
static void	 real_stats(struct cgroup_host *);
static void	 real_clamp(struct cgroup_host *);
static void	 real_self_move(struct cgroup_host *);
static void	 test_real_v1(void);

static void
check(int ok, int line, const char *what)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL line %d: %s\n", line, what);
}

static void
check_str(const char *got, const char *want, int line, const char *what)
{
	if (got != NULL && strcmp(got, want) == 0) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL line %d: %s is \"%s\", want \"%s\"\n", line, what,
	    got == NULL ? "(null)" : got, want);
}

static void
check_has(const char *got, const char *want, int line, const char *what)
{
	if (got != NULL && strstr(got, want) != NULL) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL line %d: %s is \"%s\", want it to contain \"%s\"\n",
	    line, what, got == NULL ? "(null)" : got, want);
}

/* A failure's cause says want; then it is freed for the next call's. */
static void
check_cause(char **cause, const char *want, int line)
{
	check_has(*cause, want, line, "cause");
	free(*cause);
	*cause = NULL;
}

/* A formatted path kept until the end of the test run. */
static const char *
K(const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	if (nkept == nitems(kept))
		abort();
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		abort();
	va_end(ap);
	return (kept[nkept++] = s);
}

/* A formatted path in one of a ring of buffers, for immediate use. */
static const char *
P(const char *fmt, ...)
{
	static char	ring[16][PATH_MAX];
	static int	next;
	va_list		ap;
	char		*buf = ring[next++ % 16];

	va_start(ap, fmt);
	vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	return (buf);
}

static void
mkdirs(const char *path)
{
	char	buf[PATH_MAX], *s;

	snprintf(buf, sizeof buf, "%s", path);
	for (s = buf + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(buf, 0755);
		*s = '/';
	}
	mkdir(buf, 0755);
}

static void
put(const char *path, const char *content)
{
	FILE	*f;

	if ((f = fopen(path, "w")) == NULL) {
		printf("cannot write %s: %s\n", path, strerror(errno));
		failed++;
		return;
	}
	fputs(content, f);
	fclose(f);
}

/* A file's content without its trailing newline, "<none>" if unreadable. */
static const char *
slurp(const char *path)
{
	static char	ring[8][4096];
	static int	next;
	char		*buf = ring[next++ % 8];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW)) == -1)
		return ("<none>");
	n = read(fd, buf, sizeof ring[0] - 1);
	close(fd);
	if (n < 0)
		return ("<none>");
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return (buf);
}

static int
exists(const char *path)
{
	struct stat	st;

	return (lstat(path, &st) == 0);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return (0);
}

static void
rmtree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Makes <tmp>/<sub> with proc/self/{mountinfo,cgroup}; returns it. */
static const char *
tree(const char *sub, const char *mountinfo, const char *cgroup)
{
	static char	 root[PATH_MAX];
	char		*text, *o;
	const char	*s;

	snprintf(root, sizeof root, "%s/%s", tmp, sub);
	mkdirs(P("%s/proc/self", root));
	text = calloc(1, strlen(mountinfo) * 2 + PATH_MAX * 16);
	for (s = mountinfo, o = text; *s != '\0'; s++) {
		if (*s == '@')
			o = stpcpy(o, root);
		else
			*o++ = *s;
	}
	put(P("%s/proc/self/mountinfo", root), text);
	put(P("%s/proc/self/cgroup", root), cgroup);
	free(text);
	return (root);
}

/* Is ctl one of the comma-separated controllers of a v1 mount's name? */
static int
has_ctl(const char *hname, const char *ctl)
{
	size_t	len = strlen(ctl), n;

	while (*hname != '\0') {
		n = strcspn(hname, ",");
		if (n == len && strncmp(hname, ctl, n) == 0)
			return (1);
		hname += n + (hname[n] == ',');
	}
	return (0);
}

/* The kernel fills a new group with its interface files. */
static void
fake_populate(struct fake *f, const char *dir)
{
	const struct fake_file	*files = f->v2 ? fake_v2_files : fake_v1_files;
	size_t			 n = f->v2 ? nitems(fake_v2_files) :
				    nitems(fake_v1_files), i;
	const char		*hname;
	char			 h[64];

	hname = strstr(dir, "/sys/fs/cgroup/");
	snprintf(h, sizeof h, "%s", hname == NULL ? "" : hname + 15);
	h[strcspn(h, "/")] = '\0';
	for (i = 0; i < n; i++) {
		if (!f->v2 && files[i].ctl != NULL && !has_ctl(h, files[i].ctl))
			continue;
		if (f->omit_file != NULL &&
		    strcmp(files[i].file, f->omit_file) == 0)
			continue;
		if (f->symlink_file != NULL &&
		    strcmp(files[i].file, f->symlink_file) == 0) {
			if (symlink(P("%s/victim", tmp), P("%s/%s", dir,
			    files[i].file)) == -1)
				CHECK(!"fake symlink");
			continue;
		}
		put(P("%s/%s", dir, files[i].file), files[i].init);
	}
}

/* cgroup.procs lists live members only. */
static void
fake_reap(struct fake *f, const char *dir)
{
	const char	*list = slurp(P("%s/cgroup.procs", dir));
	char		 out[4096] = "", *end;
	long		 pid;
	int		 st;

	for (; *list != '\0'; list = end + (*end == '\n')) {
		pid = strtol(list, &end, 10);
		if (end == list)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			f->killed += WIFSIGNALED(st) &&
			    WTERMSIG(st) == SIGKILL;
			continue;
		}
		if (kill(pid, 0) == -1 && errno == ESRCH)
			continue;
		snprintf(out + strlen(out), sizeof out - strlen(out), "%ld\n",
		    pid);
	}
	put(P("%s/cgroup.procs", dir), out);
}

/* cgroup.kill: every member dies at once. */
static void
fake_kill(struct fake *f, const char *dir)
{
	const char	*list = slurp(P("%s/cgroup.procs", dir));
	char		*end;
	long		 pid;
	int		 st;

	for (; *list != '\0'; list = end + (*end == '\n')) {
		pid = strtol(list, &end, 10);
		if (end == list)
			break;
		if (kill(pid, SIGKILL) == 0 && waitpid(pid, &st, 0) == pid)
			f->killed += WIFSIGNALED(st) &&
			    WTERMSIG(st) == SIGKILL;
	}
	put(P("%s/cgroup.procs", dir), "");
}

/* subtree_control accumulates "+ctl" writes (kept in a side file). */
static void
fake_merge(const char *dir, const char *value)
{
	char	list[256];

	snprintf(list, sizeof list, "%s", slurp(P("%s/.enabled", dir)));
	if (strcmp(list, "<none>") == 0)
		list[0] = '\0';
	snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
	    list[0] == '\0' ? "" : " ", value + 1);
	put(P("%s/.enabled", dir), list);
	put(P("%s/cgroup.subtree_control", dir), P("%s\n", list));
}

static void
fake_wrote(struct fake *f, const char *dir, const char *file,
    const char *value)
{
	unsigned long long	v;

	if (f->clamp_file != NULL && strcmp(file, f->clamp_file) == 0)
		put(P("%s/%s", dir, file), f->clamp_value);
	else if (strcmp(file, "memory.limit_in_bytes") == 0 ||
	    strcmp(file, "memory.memsw.limit_in_bytes") == 0 ||
	    strcmp(file, "memory.max") == 0) {
		/* The kernel keeps pages: a byte limit reads back rounded. */
		v = strtoull(value, NULL, 10);
		put(P("%s/%s", dir, file), P("%llu\n", v - v % 4096));
	} else if (strcmp(file, "cgroup.subtree_control") == 0)
		fake_merge(dir, value);
	else if (strcmp(file, "memory.oom_control") == 0)
		put(P("%s/%s", dir, file), P("oom_kill_disable %s\n"
		    "under_oom 0\noom_kill 0\n", value));
	else if (strcmp(file, "cgroup.kill") == 0)
		fake_kill(f, dir);
}

/* rmdir of a group takes its interface files with it. */
static void
fake_unpopulate(const char *dir)
{
	struct dirent	*de;
	DIR		*d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_DIR)
			unlink(P("%s/%s", dir, de->d_name));
	}
	closedir(d);
}

static void
fake_kernel(enum cgroup_fake_event ev, const char *dir, const char *file,
    const char *value, void *arg)
{
	struct fake	*f = arg;

	switch (ev) {
	case CGROUP_FAKE_MKDIR:
		fake_populate(f, dir);
		break;
	case CGROUP_FAKE_WRITE:
		fake_wrote(f, dir, file, value);
		break;
	case CGROUP_FAKE_READ:
		if (strcmp(file, "cgroup.procs") == 0)
			fake_reap(f, dir);
		break;
	case CGROUP_FAKE_RMDIR:
		fake_unpopulate(dir);
		break;
	}
}

static struct cgroup_host *
fake_host(const char *root, const char *name)
{
	struct cgroup_host	*h;
	char			*cause = NULL;

	h = cgroup_host_detect(P("%s/proc", root), name, &cause);
	if (h == NULL) {
		printf("FAIL detect %s: %s\n", root, cause);
		failed++;
		free(cause);
		return (NULL);
	}
	cgroup_host_set_fake(h, fake_kernel, &fk);
	return (h);
}

/* A child that waits for EOF on a pipe: *wfd ends it gently. */
static pid_t
sleeper(int *wfd)
{
	int	p[2];
	pid_t	pid;
	char	c;

	if (pipe2(p, O_CLOEXEC) == -1 || (pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) < 0);
	}
	close(p[0]);
	*wfd = p[1];
	return (pid);
}

static void
sleeper_end(pid_t pid, int wfd)
{
	int	st;

	close(wfd);
	wait_child(pid, 5000, &st);
}

/* Waits for pid at most ms milliseconds; SIGKILLs it on timeout. */
static int
wait_child(pid_t pid, int ms, int *st)
{
	struct pollfd	pfd;
	int		i, fd;

	fd = syscall(SYS_pidfd_open, pid, 0);
	if (fd != -1) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		poll(&pfd, 1, ms);
		close(fd);
		if (waitpid(pid, st, WNOHANG) == pid)
			return (0);
	} else {
		for (i = 0; i < ms; i++) {
			if (waitpid(pid, st, WNOHANG) == pid)
				return (0);
			usleep(1000);
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, st, 0);
	return (-1);
}

/* Orphans we adopted as subreaper; bounded at two seconds. */
static void
reap_all(void)
{
	int	i;
	pid_t	r;

	for (i = 0; i < 2000; i++) {
		if ((r = waitpid(-1, NULL, WNOHANG)) == -1)
			return;
		if (r == 0)
			usleep(1000);
	}
}

static void
test_names(void)
{
	char	long64[65], long65[66];

	memset(long64, 'a', 64);
	long64[64] = '\0';
	memset(long65, 'a', 65);
	long65[65] = '\0';
	CHECK(cgroup_valid_name("s1"));
	CHECK(cgroup_valid_name("A-b_c.d"));
	CHECK(cgroup_valid_name("9"));
	CHECK(cgroup_valid_name(long64));
	CHECK(!cgroup_valid_name(long65));
	CHECK(!cgroup_valid_name(""));
	CHECK(!cgroup_valid_name(NULL));
	CHECK(!cgroup_valid_name("a/b"));
	CHECK(!cgroup_valid_name(".."));
	CHECK(!cgroup_valid_name("a..b"));
	CHECK(!cgroup_valid_name(".hidden"));
	CHECK(!cgroup_valid_name("-x"));
	CHECK(!cgroup_valid_name("a b"));
	CHECK(!cgroup_valid_name("daemon"));
	CHECK(!cgroup_valid_name("s\n1"));
	CHECK(cgroup_host_detect("/proc", "../x", NULL) == NULL);
}

/* A v2 session's life: attach, OOM count, stats, kill, remove, stale. */
static void
v2_session(struct cgroup_host *h, const char *own, const char *s)
{
	char		*cause = NULL;
	uint64_t	 n = 0, mem = 0, cpu = 0;
	pid_t		 pid;
	int		 wfd;

	/* No self-move on v2: no tasks file moves a whole process. */
	{
		int	fds[8];

		CHECK(cgroup_self_move_open(h, "s1", fds, 8, &cause) == 0);
	}
	pid = sleeper(&wfd);
	CHECK(cgroup_attach(h, "s1", pid, &cause) == 0);
	CHECK_STR(slurp(P("%s/cgroup.procs", s)), P("%ld", (long)pid));
	put(P("%s/memory.events", s),
	    "low 0\nhigh 0\nmax 4\noom 3\noom_kill 2\noom_group_kill 1\n");
	CHECK(cgroup_oom_kills(h, "s1", &n, &cause) == 0 && n == 2);
	put(P("%s/memory.current", s), "1234\n");
	put(P("%s/cpu.stat", s), "usage_usec 5678\nuser_usec 1\n");
	CHECK(cgroup_stats(h, "s1", &mem, &cpu, &cause) == 0);
	CHECK(mem == 1234 && cpu == 5678);
	CHECK(cgroup_kill_all(h, "s1", &cause) == 0);
	CHECK(fk.killed == 1);
	CHECK(kill(pid, 0) == -1 && errno == ESRCH);
	close(wfd);
	CHECK(cgroup_remove(h, "s1", &cause) == 0);
	CHECK(!exists(s));
	CHECK(cgroup_remove(h, "s1", &cause) == 0);	/* idempotent */

	/* A restart finds the daemon leaf in place and leaves it alone. */
	mkdirs(P("%s/cellblock/old", own));
	fake_populate(&fk, P("%s/cellblock/old", own));
	CHECK(cgroup_cleanup_stale(h, &cause) == 1);
	CHECK(!exists(P("%s/cellblock/old", own)));
	CHECK(exists(P("%s/cellblock/daemon/cgroup.procs", own)));
	free(cause);
}

static void
test_v2(void)
{
	struct cgroup_limits	 lim = { 64 * MiB, 16, 1500 };
	struct cgroup_limits	 other = { 32 * MiB, 8, 500 };
	struct cgroup_host	*h;
	const char		*root, *path = NULL, *own, *s;
	char			*cause = NULL;

	root = tree("v2", v2_mountinfo, "0::/system.slice/cb.service\n");
	own = K("%s/sys/fs/cgroup/system.slice/cb.service", root);
	mkdirs(own);
	put(P("%s/cgroup.controllers", own), "cpuset cpu io memory pids\n");
	put(P("%s/cgroup.subtree_control", own), "");
	put(P("%s/cgroup.procs", own), "1\n");
	memset(&fk, 0, sizeof fk);
	fk.v2 = 1;
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK_STR(cgroup_host_describe(h), "memory=v2 pids=v2 cpu=v2");
	CHECK(cgroup_host_controller(h, "memory", &path) == 2);
	CHECK_STR(path, P("%s/cellblock", own));
	CHECK(cgroup_host_controller(h, "cpuacct", NULL) == 0);
	CHECK(cgroup_create(h, "s1", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "not prepared");

	CHECK(cgroup_host_prepare(h, &cause) == 0);
	CHECK_STR(slurp(P("%s/cellblock/daemon/cgroup.procs", own)),
	    P("%ld", (long)getpid()));
	CHECK_STR(slurp(P("%s/cgroup.subtree_control", own)),
	    "memory pids cpu");
	CHECK_STR(slurp(P("%s/cellblock/cgroup.subtree_control", own)),
	    "memory pids cpu");

	CHECK(cgroup_create(h, "s1", &lim, &cause) == 0);
	s = K("%s/cellblock/s1", own);
	CHECK_STR(slurp(P("%s/memory.max", s)), "67108864");
	CHECK_STR(slurp(P("%s/memory.swap.max", s)), "0");
	CHECK_STR(slurp(P("%s/memory.oom.group", s)), "1");
	CHECK_STR(slurp(P("%s/pids.max", s)), "16");
	CHECK_STR(slurp(P("%s/cpu.max", s)), "150000 100000");
	CHECK(cgroup_create(h, "s1", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "already exists");
	CHECK_STR(slurp(P("%s/pids.max", s)), "16");	/* left alone */
	/* A warm-pool member's limits rewritten in place (server/pool.c). */
	CHECK(cgroup_set_limits(h, "s1", &other, &cause) == 0);
	CHECK_STR(slurp(P("%s/memory.max", s)), "33554432");
	CHECK_STR(slurp(P("%s/pids.max", s)), "8");
	CHECK_STR(slurp(P("%s/cpu.max", s)), "50000 100000");
	CHECK(cgroup_set_limits(h, "nosuch", &other, &cause) == -1);
	free(cause);
	cause = NULL;
	fk.clamp_file = "pids.max";
	fk.clamp_value = "7\n";
	CHECK(cgroup_set_limits(h, "s1", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "pids.max reads back \"7\", wrote \"16\"");
	fk.clamp_file = NULL;
	CHECK(cgroup_set_limits(h, "s1", &lim, &cause) == 0);
	v2_session(h, own, s);
	cgroup_host_destroy(&h);
	cgroup_host_destroy(&h);	/* safe twice */
	CHECK(h == NULL);
}

static void
test_v2_variants(void)
{
	struct cgroup_limits	 lim = { 64 * MiB, 16, 1500 };
	struct cgroup_limits	 nopids = { 64 * MiB, 0, 1500 };
	struct cgroup_host	*h;
	const char		*root, *own, *path = NULL;
	char			*cause = NULL;
	pid_t			 pid;
	int			 wfd;

	/* Restarted from inside its own leaf: the group above is ours. */
	root = tree("v2leaf", v2_mountinfo,
	    "0::/system.slice/cb.service/cellblock/daemon\n");
	own = K("%s/sys/fs/cgroup/system.slice/cb.service", root);
	mkdirs(P("%s/cellblock/daemon", own));
	put(P("%s/cgroup.controllers", own), "cpu memory\n");
	put(P("%s/cgroup.subtree_control", own), "");
	memset(&fk, 0, sizeof fk);
	fk.v2 = 1;
	fake_populate(&fk, P("%s/cellblock", own));
	fake_populate(&fk, P("%s/cellblock/daemon", own));
	fk.omit_file = "cgroup.kill";	/* before 5.14 */
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK(cgroup_host_controller(h, "cpu", &path) == 2);
	CHECK_STR(path, P("%s/cellblock", own));
	/* pids is not in our cgroup.controllers: missing, not v2. */
	CHECK_HAS(cgroup_host_describe(h), "pids=none");
	CHECK(cgroup_host_prepare(h, &cause) == 0);
	CHECK(cgroup_create(h, "s2", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "no pids controller");
	CHECK(cgroup_create(h, "s2", &nopids, &cause) == 0);
	pid = sleeper(&wfd);
	CHECK(cgroup_attach(h, "s2", pid, &cause) == 0);
	/* No cgroup.kill: SIGKILL through pidfds, the fake reaps. */
	CHECK(cgroup_remove(h, "s2", &cause) == 0);
	CHECK(fk.killed == 1);
	CHECK(!exists(P("%s/cellblock/s2", own)));
	close(wfd);

	/* A value the kernel did not take fails closed. */
	fk.omit_file = NULL;
	fk.clamp_file = "memory.oom.group";
	fk.clamp_value = "0\n";
	CHECK(cgroup_create(h, "s3", &nopids, &cause) == -1);
	CHECK_CAUSE(&cause, "memory.oom.group reads back \"0\", wrote \"1\"");
	CHECK(!exists(P("%s/cellblock/s3", own)));
	/* A missing required file too. */
	fk.clamp_file = NULL;
	fk.omit_file = "cpu.max";
	CHECK(cgroup_create(h, "s4", &nopids, &cause) == -1);
	CHECK_HAS(cause, "cpu.max");
	CHECK(!exists(P("%s/cellblock/s4", own)));
	free(cause);
	cgroup_host_destroy(&h);
}

/* A v1 session's life in three hierarchies: mem, pids and cpu,cpuacct. */
static void
v1_session(struct cgroup_host *h, const char *mem, const char *pids,
    const char *cpu)
{
	char		*cause = NULL;
	uint64_t	 n = 0, m = 0, c = 0;
	pid_t		 pid;
	int		 wfd;

	pid = sleeper(&wfd);
	CHECK(cgroup_attach(h, "s1", pid, &cause) == 0);
	CHECK_STR(slurp(P("%s/cgroup.procs", mem)), P("%ld", (long)pid));
	CHECK_STR(slurp(P("%s/cgroup.procs", pids)), P("%ld", (long)pid));
	CHECK_STR(slurp(P("%s/cgroup.procs", cpu)), P("%ld", (long)pid));
	CHECK(cgroup_attach(h, "s1", 0, &cause) == -1);
	free(cause);
	cause = NULL;
	put(P("%s/memory.oom_control", mem),
	    "oom_kill_disable 0\nunder_oom 1\noom_kill 5\n");
	CHECK(cgroup_oom_kills(h, "s1", &n, &cause) == 0 && n == 5);
	put(P("%s/memory.oom_control", mem), "oom_kill_disable 0\n");
	CHECK(cgroup_oom_kills(h, "s1", &n, &cause) == -1);
	CHECK_CAUSE(&cause, "no \"oom_kill\" line");
	put(P("%s/memory.usage_in_bytes", mem), "8192\n");
	put(P("%s/cpuacct.usage", cpu), "3000000\n");
	CHECK(cgroup_stats(h, "s1", &m, &c, &cause) == 0);
	CHECK(m == 8192 && c == 3000);
	CHECK(cgroup_kill_all(h, "s1", &cause) == 0);
	CHECK(fk.killed == 1);
	CHECK_STR(slurp(P("%s/cgroup.procs", mem)), "");
	close(wfd);
	CHECK(cgroup_remove(h, "s1", &cause) == 0);
	CHECK(!exists(mem) && !exists(pids) && !exists(cpu));
	free(cause);
}

static void
test_v1(void)
{
	struct cgroup_limits	 lim = { 32 * MiB, 8, 500 };
	struct cgroup_limits	 less = { 16 * MiB, 4, 250 };
	struct cgroup_host	*h;
	const char		*root, *cg, *mem, *pids, *cpu, *path = NULL;
	char			*cause = NULL;

	root = tree("v1", v1_mountinfo, v1_cgroup);
	cg = K("%s/sys/fs/cgroup", root);
	mkdirs(P("%s/memory/user.slice/s1", cg));
	mkdirs(P("%s/pids/user.slice/s1", cg));
	mkdirs(P("%s/cpu,cpuacct", cg));
	mkdirs(P("%s/cpuset", cg));
	memset(&fk, 0, sizeof fk);
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK_STR(cgroup_host_describe(h),
	    "memory=v1 pids=v1 cpu=v1 cpuacct=v1");
	CHECK(cgroup_host_controller(h, "memory", &path) == 1);
	CHECK_STR(path, P("%s/memory/user.slice/s1/cellblock", cg));
	CHECK(cgroup_host_controller(h, "pids", &path) == 1);
	CHECK_STR(path, P("%s/pids/user.slice/s1/cellblock", cg));
	/* Own group is the root: under /<name>, co-mounted cpu,cpuacct. */
	CHECK(cgroup_host_controller(h, "cpu", &path) == 1);
	CHECK_STR(path, P("%s/cpu,cpuacct/cellblock", cg));
	CHECK(cgroup_host_controller(h, "cpuacct", &path) == 1);
	CHECK_STR(path, P("%s/cpu,cpuacct/cellblock", cg));
	CHECK(cgroup_host_prepare(h, &cause) == 0);
	CHECK(!exists(P("%s/memory/user.slice/s1/cellblock/daemon", cg)));
	CHECK(!exists(P("%s/cpuset/cellblock", cg)));

	CHECK(cgroup_create(h, "s1", &lim, &cause) == 0);
	mem = K("%s/memory/user.slice/s1/cellblock/s1", cg);
	pids = K("%s/pids/user.slice/s1/cellblock/s1", cg);
	cpu = K("%s/cpu,cpuacct/cellblock/s1", cg);
	CHECK_STR(slurp(P("%s/memory.limit_in_bytes", mem)), "33554432");
	CHECK_STR(slurp(P("%s/memory.memsw.limit_in_bytes", mem)),
	    "33554432");
	CHECK_STR(slurp(P("%s/pids.max", pids)), "8");
	CHECK_STR(slurp(P("%s/cpu.cfs_period_us", cpu)), "100000");
	CHECK_STR(slurp(P("%s/cpu.cfs_quota_us", cpu)), "50000");
	/* A warm-pool member's limits rewritten in place: memory lowered. */
	CHECK(cgroup_set_limits(h, "s1", &less, &cause) == 0);
	CHECK_STR(slurp(P("%s/memory.limit_in_bytes", mem)), "16777216");
	CHECK_STR(slurp(P("%s/memory.memsw.limit_in_bytes", mem)), "16777216");
	CHECK_STR(slurp(P("%s/pids.max", pids)), "4");
	CHECK_STR(slurp(P("%s/cpu.cfs_quota_us", cpu)), "25000");
	CHECK(cgroup_set_limits(h, "s1", &lim, &cause) == 0);
	v1_session(h, mem, pids, cpu);
	CHECK(exists(P("%s/memory/user.slice/s1/cellblock", cg)));
	free(cause);
	cgroup_host_destroy(&h);
}

static void
test_v1_readback(void)
{
	struct cgroup_limits	 odd = { 32 * MiB + 100, 8, 500 };
	struct cgroup_limits	 lim = { 32 * MiB, 8, 500 };
	struct cgroup_limits	 cpu5 = { 0, 0, 5 };
	struct cgroup_host	*h;
	const char		*root, *cg;
	char			*cause = NULL;

	root = tree("v1rb", v1_mountinfo, v1_cgroup);
	cg = K("%s/sys/fs/cgroup", root);
	mkdirs(P("%s/memory/user.slice/s1", cg));
	mkdirs(P("%s/pids/user.slice/s1", cg));
	mkdirs(P("%s/cpu,cpuacct", cg));
	memset(&fk, 0, sizeof fk);
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK(cgroup_host_prepare(h, &cause) == 0);
	/* Rounded to a page on read-back: that is a match. */
	CHECK(cgroup_create(h, "round", &odd, &cause) == 0);
	CHECK_STR(slurp(P("%s/memory/user.slice/s1/cellblock/round/"
	    "memory.limit_in_bytes", cg)), "33554432");
	CHECK(cgroup_remove(h, "round", &cause) == 0);

	/* A clamp is not: the group goes in every hierarchy. */
	fk.clamp_file = "pids.max";
	fk.clamp_value = "7\n";
	CHECK(cgroup_create(h, "clamp", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "pids.max reads back \"7\", wrote \"8\"");
	CHECK(!exists(P("%s/memory/user.slice/s1/cellblock/clamp", cg)));
	CHECK(!exists(P("%s/pids/user.slice/s1/cellblock/clamp", cg)));
	CHECK(!exists(P("%s/cpu,cpuacct/cellblock/clamp", cg)));
	fk.clamp_file = "memory.limit_in_bytes";
	fk.clamp_value = V1_UNLIMITED;
	CHECK(cgroup_create(h, "clamp", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "memory.limit_in_bytes reads back");

	/* No swap accounting: memsw is optional. */
	fk.clamp_file = NULL;
	fk.omit_file = "memory.memsw.limit_in_bytes";
	CHECK(cgroup_create(h, "noswap", &lim, &cause) == 0);
	CHECK(cgroup_remove(h, "noswap", &cause) == 0);
	/* The quota file is not: nor is a write the kernel refuses. */
	fk.omit_file = "cpu.cfs_quota_us";
	CHECK(cgroup_create(h, "noquota", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "cpu.cfs_quota_us");
	CHECK(!exists(P("%s/cpu,cpuacct/cellblock/noquota", cg)));
	fk.omit_file = NULL;
	/* oom_kill_disable is inherited: it is written 0 and read back. */
	CHECK(cgroup_create(h, "oomctl", &lim, &cause) == 0);
	CHECK_HAS(slurp(P("%s/memory/user.slice/s1/cellblock/oomctl/"
	    "memory.oom_control", cg)), "oom_kill_disable 0\n");
	CHECK(cgroup_remove(h, "oomctl", &cause) == 0);
	fk.clamp_file = "memory.oom_control";
	fk.clamp_value = "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n";
	CHECK(cgroup_create(h, "oomctl", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "memory.oom_control reads back \"1\", wrote \"0\"");
	fk.clamp_file = NULL;
	CHECK(cgroup_create(h, "cpu5", &cpu5, &cause) == 0);
	CHECK_STR(slurp(P("%s/cpu,cpuacct/cellblock/cpu5/cpu.cfs_quota_us",
	    cg)), "500");
	CHECK_STR(slurp(P("%s/pids/user.slice/s1/cellblock/cpu5/pids.max",
	    cg)), "max");
	CHECK(cgroup_remove(h, "cpu5", &cause) == 0);
	free(cause);
	cgroup_host_destroy(&h);
}

static void
test_v1_stale(void)
{
	struct cgroup_host	*h;
	const char		*root, *cg, *mem;
	char			*cause = NULL;

	root = tree("v1stale", v1_mountinfo, v1_cgroup);
	cg = K("%s/sys/fs/cgroup", root);
	mem = K("%s/memory/user.slice/s1/cellblock", cg);
	mkdirs(P("%s/old1", mem));
	mkdirs(P("%s/pids/user.slice/s1/cellblock/old1", cg));
	mkdirs(P("%s/cpu,cpuacct/cellblock/old2", cg));
	mkdirs(P("%s/.weird", mem));
	memset(&fk, 0, sizeof fk);
	fake_populate(&fk, P("%s/old1", mem));
	fake_populate(&fk, P("%s/pids/user.slice/s1/cellblock/old1", cg));
	fake_populate(&fk, P("%s/cpu,cpuacct/cellblock/old2", cg));
	put(P("%s/not-a-dir", mem), "x");
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK(cgroup_cleanup_stale(h, &cause) == -1);	/* not prepared */
	free(cause);
	cause = NULL;
	CHECK(cgroup_host_prepare(h, &cause) == 0);
	CHECK(cgroup_cleanup_stale(h, &cause) == 2);
	CHECK(!exists(P("%s/old1", mem)));
	CHECK(!exists(P("%s/pids/user.slice/s1/cellblock/old1", cg)));
	CHECK(!exists(P("%s/cpu,cpuacct/cellblock/old2", cg)));
	CHECK(exists(P("%s/.weird", mem)));
	CHECK(exists(P("%s/not-a-dir", mem)));
	CHECK(cgroup_cleanup_stale(h, &cause) == 0);
	free(cause);
	cgroup_host_destroy(&h);
}

/* A symlink inside our own group's path: refused, not followed. */
static void
symlink_own(const char *root, const char *cg, const char *away)
{
	struct cgroup_host	*h;
	char			*cause = NULL;

	mkdirs(P("%s/memory/user.slice", cg));
	CHECK(symlink(away, P("%s/memory/user.slice/s1", cg)) == 0);
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK(cgroup_host_prepare(h, &cause) == -1);
	CHECK_HAS(cause, "symlink");
	CHECK(!exists(P("%s/cellblock", away)));
	free(cause);
	cgroup_host_destroy(&h);
	unlink(P("%s/memory/user.slice/s1", cg));
	mkdirs(P("%s/memory/user.slice/s1", cg));
}

static void
test_symlinks(void)
{
	struct cgroup_limits	 lim = { 32 * MiB, 8, 500 };
	struct cgroup_host	*h;
	const char		*root, *cg, *mem, *away;
	char			*cause = NULL;
	pid_t			 pid;
	int			 wfd;

	root = tree("links", v1_mountinfo, v1_cgroup);
	cg = K("%s/sys/fs/cgroup", root);
	mem = K("%s/memory/user.slice/s1/cellblock", cg);
	mkdirs(P("%s/pids/user.slice/s1", cg));
	mkdirs(P("%s/cpu,cpuacct", cg));
	away = K("%s/away", tmp);
	mkdirs(away);
	put(P("%s/victim", tmp), "untouched\n");
	memset(&fk, 0, sizeof fk);
	symlink_own(root, cg, away);
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK(cgroup_host_prepare(h, &cause) == 0);
	/* A session group that is a symlink. */
	CHECK(symlink(away, P("%s/evil", mem)) == 0);
	pid = sleeper(&wfd);
	CHECK(cgroup_create(h, "evil", &lim, &cause) == -1);
	free(cause);
	cause = NULL;
	CHECK(cgroup_attach(h, "evil", pid, &cause) == -1);
	CHECK_CAUSE(&cause, "symlink");
	CHECK(cgroup_remove(h, "evil", &cause) == -1);
	free(cause);
	cause = NULL;
	CHECK(cgroup_cleanup_stale(h, &cause) == 0);
	CHECK(exists(P("%s/evil", mem)) && exists(away));
	CHECK(!exists(P("%s/cgroup.procs", away)));
	sleeper_end(pid, wfd);

	/* A value file that is a symlink. */
	fk.symlink_file = "pids.max";
	CHECK(cgroup_create(h, "s1", &lim, &cause) == -1);
	CHECK_CAUSE(&cause, "pids.max");
	CHECK_STR(slurp(P("%s/victim", tmp)), "untouched");
	CHECK(!exists(P("%s/pids/user.slice/s1/cellblock/s1", cg)));
	fk.symlink_file = NULL;
	CHECK(cgroup_create(h, "../x", &lim, &cause) == -1);
	CHECK_HAS(cause, "bad session name");
	free(cause);
	cgroup_host_destroy(&h);
}

static void
test_hybrid(void)
{
	struct cgroup_limits	 lim = { 32 * MiB, 8, 500 };
	struct cgroup_host	*h;
	const char		*root, *cg, *path = NULL;
	char			*cause = NULL;

	root = tree("hybrid", hybrid_mountinfo, hybrid_cgroup);
	cg = K("%s/sys/fs/cgroup", root);
	mkdirs(P("%s/memory" HYBRID_OWN, cg));
	mkdirs(P("%s/pids", cg));
	mkdirs(P("%s/cpu", cg));
	mkdirs(P("%s/cpuacct", cg));
	mkdirs(P("%s/unified", cg));
	put(P("%s/unified/cgroup.controllers", cg), "hugetlb\n");
	put(P("%s/unified/cgroup.subtree_control", cg), "");
	memset(&fk, 0, sizeof fk);
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK_STR(cgroup_host_describe(h),
	    "memory=v1 pids=v1 cpu=v1 cpuacct=v1");
	CHECK(cgroup_host_controller(h, "memory", &path) == 1);
	CHECK_STR(path, P("%s/memory" HYBRID_OWN "/cellblock", cg));
	CHECK(cgroup_host_controller(h, "pids", &path) == 1);
	CHECK_STR(path, P("%s/pids/cellblock", cg));
	CHECK(cgroup_host_controller(h, "cpu", &path) == 1);
	CHECK_STR(path, P("%s/cpu/cellblock", cg));
	CHECK(cgroup_host_controller(h, "cpuacct", &path) == 1);
	CHECK_STR(path, P("%s/cpuacct/cellblock", cg));
	CHECK(cgroup_host_prepare(h, &cause) == 0);
	CHECK(cgroup_create(h, "s1", &lim, &cause) == 0);
	CHECK(exists(P("%s/cpuacct/cellblock/s1/cpuacct.usage", cg)));
	CHECK(!exists(P("%s/unified/cellblock", cg)));
	CHECK(!exists(P("%s/memory/cellblock", cg)));
	CHECK(cgroup_remove(h, "s1", &cause) == 0);
	cgroup_host_destroy(&h);

	/* Same host without the v1 memory mount: memory is missing, not v2. */
	root = tree("hybrid-nomem", "41 31 0:38 / @/sys/fs/cgroup/unified "
	    "rw,relatime - cgroup2 cgroup2 rw\n", hybrid_cgroup);
	mkdirs(P("%s/sys/fs/cgroup/unified", root));
	put(P("%s/sys/fs/cgroup/unified/cgroup.controllers", root), "");
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK_HAS(cgroup_host_describe(h), "memory=none pids=none cpu=none");
	CHECK_HAS(cgroup_host_describe(h), "not in");
	CHECK(cgroup_host_controller(h, "memory", NULL) == 0);
	CHECK(cgroup_host_prepare(h, &cause) == 0);
	CHECK(cgroup_create(h, "s1", &lim, &cause) == -1);
	CHECK_HAS(cause, "no memory controller");
	free(cause);
	cgroup_host_destroy(&h);
}

static void
test_mount_root(void)
{
	static const char	 mi[] = "35 31 0:32 /docker/abc "
	    "@/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
	struct cgroup_host	*h;
	const char		*root, *path = NULL;

	/* A mount of a subtree: our group is relative to its root. */
	root = tree("mroot", mi, "4:memory:/docker/abc/sub\n");
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK(cgroup_host_controller(h, "memory", &path) == 1);
	CHECK_STR(path, P("%s/sys/fs/cgroup/memory/sub/cellblock", root));
	cgroup_host_destroy(&h);
	root = tree("mroot2", mi, "4:memory:/elsewhere\n");
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK(cgroup_host_controller(h, "memory", NULL) == 0);
	CHECK_HAS(cgroup_host_describe(h), "not visible");
	cgroup_host_destroy(&h);
	root = tree("mroot3", mi, "4:memory:/docker/abc/../x\n");
	if ((h = fake_host(root, "cellblock")) == NULL)
		return;
	CHECK(cgroup_host_controller(h, "memory", NULL) == 0);
	cgroup_host_destroy(&h);
	CHECK(cgroup_host_detect(P("%s/nowhere", tmp), "cellblock", NULL) ==
	    NULL);
}

/* Children for the real tests: each waits for a byte on rfd first. */
static void
hog(int rfd, size_t bytes)
{
	volatile char	*p;
	size_t		 i;
	char		 c;

	if (read(rfd, &c, 1) != 1)
		_exit(90);
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(91);
	for (i = 0; i < bytes; i += 4096)
		p[i] = 1;
	_exit(0);
}

/*
 * Forks at most max children, which wait for our exit, and writes on wfd
 * how many it made and whether fork then failed with EAGAIN (a pipe, not
 * the exit status, which valgrind may replace).
 */
static void
fork_bomb(int rfd, int wfd, int max)
{
	int	p[2], n, report[2];
	pid_t	pid;
	char	c;

	if (read(rfd, &c, 1) != 1 || pipe(p) == -1)
		_exit(1);
	for (n = 0; n < max; n++) {
		if ((pid = fork()) == -1)
			break;
		if (pid == 0) {
			close(p[1]);
			_exit(read(p[0], &c, 1) < 0);
		}
	}
	report[0] = n;
	report[1] = n < max && errno == EAGAIN;
	_exit(write(wfd, report, sizeof report) != sizeof report);
}

/* Touches bytes and burns 50 ms of CPU, says so on wfd, then waits. */
static void
spin(int rfd, int wfd, size_t bytes)
{
	struct timespec	 t0, t;
	volatile char	*p;
	size_t		 i;
	long		 k, ns = 0;
	char		 c;

	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (read(rfd, &c, 1) != 1 || p == MAP_FAILED)
		_exit(90);
	/* Counted from here: all of it is in the group. */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	for (i = 0; i < bytes; i += 4096)
		p[i] = 1;
	for (k = 0; k < 100000000 && ns < 50 * 1000 * 1000; k++) {
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
		ns = (t.tv_sec - t0.tv_sec) * 1000000000L +
		    (t.tv_nsec - t0.tv_nsec);
	}
	if (write(wfd, "x", 1) != 1)
		_exit(93);
	_exit(read(rfd, &c, 1) < 0);
}

/* Is pid's memory group (/proc/<pid>/cgroup) one ending in suffix? */
static int
in_group(pid_t pid, const char *suffix)
{
	FILE	*f;
	char	 line[1024];
	size_t	 n, len = strlen(suffix);
	int	 found = 0;

	if ((f = fopen(P("/proc/%ld/cgroup", (long)pid), "r")) == NULL)
		return (0);
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		n = strlen(line);
		if (strstr(line, ":memory:") != NULL && n >= len &&
		    strcmp(line + n - len, suffix) == 0)
			found = 1;
	}
	fclose(f);
	return (found);
}

static void
real_limits(struct cgroup_host *h)
{
	struct cgroup_limits	 lim = { 32 * MiB, 8, 500 };
	const char		*mem, *pids, *cpu;
	char			*cause = NULL;
	int			 ok;

	cgroup_host_controller(h, "memory", &mem);
	cgroup_host_controller(h, "pids", &pids);
	cgroup_host_controller(h, "cpu", &cpu);
	ok = cgroup_create(h, "limits", &lim, &cause) == 0;
	CHECK(ok);
	if (!ok) {
		printf("  cause: %s\n", cause);
		free(cause);
		return;
	}
	CHECK_STR(slurp(P("%s/limits/memory.limit_in_bytes", mem)),
	    "33554432");
	if (exists(P("%s/limits/memory.memsw.limit_in_bytes", mem)))
		CHECK_STR(slurp(P("%s/limits/memory.memsw.limit_in_bytes",
		    mem)), "33554432");
	CHECK_HAS(slurp(P("%s/limits/memory.oom_control", mem)),
	    "oom_kill_disable 0\n");
	CHECK_STR(slurp(P("%s/limits/pids.max", pids)), "8");
	CHECK_STR(slurp(P("%s/limits/cpu.cfs_period_us", cpu)), "100000");
	CHECK_STR(slurp(P("%s/limits/cpu.cfs_quota_us", cpu)), "50000");
	printf("real v1: %s/limits: memory.limit_in_bytes=%s pids.max=%s "
	    "cpu.cfs_quota_us=%s\n", mem,
	    slurp(P("%s/limits/memory.limit_in_bytes", mem)),
	    slurp(P("%s/limits/pids.max", pids)),
	    slurp(P("%s/limits/cpu.cfs_quota_us", cpu)));
	CHECK(cgroup_remove(h, "limits", &cause) == 0);
	CHECK(!exists(P("%s/limits", mem)) && !exists(P("%s/limits", pids)) &&
	    !exists(P("%s/limits", cpu)));
	free(cause);
}

static void
real_oom(struct cgroup_host *h)
{
	struct cgroup_limits	 lim = { 32 * MiB, 64, 1000 };
	char			*cause = NULL;
	uint64_t		 kills = 0;
	int			 p[2], st = 0;
	pid_t			 pid;

	if (cgroup_create(h, "oom", &lim, &cause) == -1) {
		CHECK(!"create oom");
		printf("  cause: %s\n", cause);
		free(cause);
		return;
	}
	if (pipe(p) == -1 || (pid = fork()) == -1) {
		CHECK(!"pipe/fork");
		return;
	}
	if (pid == 0) {
		close(p[1]);
		hog(p[0], 256 * MiB);
	}
	close(p[0]);
	CHECK(cgroup_attach(h, "oom", pid, &cause) == 0);
	CHECK(in_group(pid, P("/%s/oom", real_name)));
	CHECK(write(p[1], "x", 1) == 1);
	close(p[1]);
	CHECK(wait_child(pid, 30000, &st) == 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CHECK(cgroup_oom_kills(h, "oom", &kills, &cause) == 0 && kills >= 1);
	printf("real v1: 256 MiB hog under a 32 MiB limit: %s %d, "
	    "oom_kill %llu\n", WIFSIGNALED(st) ? "killed by signal" :
	    "exited", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
	    (unsigned long long)kills);
	CHECK(cgroup_remove(h, "oom", &cause) == 0);
	free(cause);
}

static void
real_pids(struct cgroup_host *h)
{
	struct cgroup_limits	 lim = { 256 * MiB, 8, 1000 };
	const char		*path;
	char			*cause = NULL;
	int			 p[2], q[2], st = 0, report[2] = { -1, 0 };
	pid_t			 pid;

	cgroup_host_controller(h, "pids", &path);
	if (cgroup_create(h, "pids", &lim, &cause) == -1) {
		CHECK(!"create pids");
		printf("  cause: %s\n", cause);
		free(cause);
		return;
	}
	if (pipe(p) == -1 || pipe(q) == -1 || (pid = fork()) == -1) {
		CHECK(!"pipe/fork");
		return;
	}
	if (pid == 0) {
		close(p[1]);
		close(q[0]);
		fork_bomb(p[0], q[1], 64);
	}
	close(p[0]);
	close(q[1]);
	CHECK(cgroup_attach(h, "pids", pid, &cause) == 0);
	CHECK(write(p[1], "x", 1) == 1);
	close(p[1]);
	CHECK(wait_child(pid, 30000, &st) == 0);
	CHECK(read(q[0], report, sizeof report) == sizeof report);
	close(q[0]);
	/* pids.max counts the forker: 7 more, fewer if a tool adds threads. */
	CHECK(report[0] >= 1 && report[0] <= 7 && report[1]);
	printf("real v1: pids.max 8: the forker made %d children, then fork "
	    "%s\n", report[0], report[1] ? "failed with EAGAIN" :
	    "did not fail with EAGAIN");
	CHECK_STR(slurp(P("%s/pids/pids.max", path)), "8");
	CHECK(cgroup_remove(h, "pids", &cause) == 0);
	CHECK(!exists(P("%s/pids", path)));
	free(cause);
	reap_all();
}

static void
real_stats(struct cgroup_host *h)
{
	struct cgroup_limits	 lim = { 256 * MiB, 16, 1000 };
	char			*cause = NULL, c;
	uint64_t		 mem = 0, cpu = 0;
	int			 to[2], from[2], st = 0;
	pid_t			 pid;

	if (cgroup_create(h, "stats", &lim, &cause) == -1) {
		CHECK(!"create stats");
		printf("  cause: %s\n", cause);
		free(cause);
		return;
	}
	if (pipe(to) == -1 || pipe(from) == -1 || (pid = fork()) == -1) {
		CHECK(!"pipe/fork");
		return;
	}
	if (pid == 0) {
		close(to[1]);
		close(from[0]);
		spin(to[0], from[1], 16 * MiB);
	}
	close(to[0]);
	close(from[1]);
	CHECK(cgroup_attach(h, "stats", pid, &cause) == 0);
	CHECK(write(to[1], "x", 1) == 1);
	CHECK(read(from[0], &c, 1) == 1);
	CHECK(cgroup_stats(h, "stats", &mem, &cpu, &cause) == 0);
	CHECK(mem >= 16 * MiB && cpu >= 40000 && cpu != CGROUP_UNKNOWN);
	printf("real v1: a child touching 16 MiB and spinning 50 ms: "
	    "memory %llu bytes, cpu %llu us\n", (unsigned long long)mem,
	    (unsigned long long)cpu);
	CHECK(cgroup_kill_all(h, "stats", &cause) == 0);
	CHECK(wait_child(pid, 5000, &st) == 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	close(to[1]);
	close(from[0]);
	CHECK(cgroup_remove(h, "stats", &cause) == 0);
	free(cause);
}

static void
real_clamp(struct cgroup_host *h)
{
	struct cgroup_limits	 lim = { UINT64_MAX, 8, 1000 };
	const char		*mem, *pids;
	char			*cause = NULL;

	/* The kernel silently clamps this one: read-back must catch it. */
	cgroup_host_controller(h, "memory", &mem);
	cgroup_host_controller(h, "pids", &pids);
	CHECK(cgroup_create(h, "clamp", &lim, &cause) == -1);
	CHECK_HAS(cause, "memory.limit_in_bytes");
	printf("real v1: memory limit 2^64-1: %s\n", cause);
	CHECK(!exists(P("%s/clamp", mem)) && !exists(P("%s/clamp", pids)));
	free(cause);
}

/*
 * The self-move (cgroup_self_move_open): a child that is no longer root,
 * in a user namespace of its own as a session's process is, writes "0"
 * to the tasks descriptors root opened, and is then a member everywhere
 * (cgroup_check_member); its parent, which did not move, is not.
 */
static void
real_self_move(struct cgroup_host *h)
{
	struct cgroup_limits	 lim = { 256 * MiB, 16, 1000 };
	char			*cause = NULL, c = 0;
	int			 fds[8], n, i, p[2], q[2], st = 0;
	pid_t			 pid;

	if (cgroup_create(h, "selfmove", &lim, &cause) == -1) {
		CHECK(!"create selfmove");
		printf("  cause: %s\n", cause);
		free(cause);
		return;
	}
	n = cgroup_self_move_open(h, "selfmove", fds, 8, &cause);
	CHECK(n >= 3);
	if (n < 1 || pipe(p) == -1 || pipe(q) == -1 || (pid = fork()) == -1) {
		CHECK(!"tasks fds/pipe/fork");
		return;
	}
	if (pid == 0) {
		close(p[1]);
		close(q[0]);
		if (setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0 ||
		    unshare(CLONE_NEWUSER) != 0)
			_exit(2);
		for (i = 0; i < n; i++) {
			if (write(fds[i], "0", 1) != 1)
				_exit(3);
			close(fds[i]);
		}
		if (write(q[1], "m", 1) != 1)
			_exit(4);
		_exit(read(p[0], &c, 1) < 0);
	}
	close(p[0]);
	close(q[1]);
	for (i = 0; i < n; i++)
		close(fds[i]);
	CHECK(read(q[0], &c, 1) == 1 && c == 'm');
	close(q[0]);
	CHECK(cgroup_check_member(h, "selfmove", pid, &cause) == 0);
	free(cause);
	cause = NULL;
	CHECK(cgroup_check_member(h, "selfmove", getpid(), &cause) == -1);
	CHECK_CAUSE(&cause, "is not in");
	printf("real v1: a child in its own user namespace moved itself into "
	    "%d hierarchies by their tasks files\n", n);
	close(p[1]);
	CHECK(wait_child(pid, 5000, &st) == 0 && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0);
	CHECK(cgroup_remove(h, "selfmove", &cause) == 0);
	free(cause);
}

static void
test_real_v1(void)
{
	struct cgroup_host	*h;
	char			*cause = NULL;
	const char		*path;
	int			 ctl;
	static const char *const ctls[] = { "memory", "pids", "cpu",
	    "cpuacct" };

	snprintf(real_name, sizeof real_name, "cbtest-%ld", (long)getpid());
	h = cgroup_host_detect("/proc", real_name, &cause);
	if (geteuid() != 0 || h == NULL ||
	    cgroup_host_controller(h, "memory", NULL) != 1) {
		skipped += NREAL;
		printf("real v1: skipped (%s)\n", geteuid() != 0 ?
		    "not root" : "no v1 memory controller");
		free(cause);
		cgroup_host_destroy(&h);
		return;
	}
	printf("real v1: this host: %s\n", cgroup_host_describe(h));
	CHECK_HAS(cgroup_host_describe(h), "memory=v1");
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (cgroup_host_prepare(h, &cause) == -1) {
		CHECK(!"prepare");
		printf("  cause: %s\n", cause);
		free(cause);
		cgroup_host_destroy(&h);
		return;
	}
	real_limits(h);
	real_oom(h);
	real_pids(h);
	real_stats(h);
	real_clamp(h);
	real_self_move(h);
	CHECK(cgroup_cleanup_stale(h, &cause) == 0);
	/* The test's own <name> groups go too: a daemon would keep them. */
	for (ctl = 0; ctl < (int)nitems(ctls); ctl++) {
		if (cgroup_host_controller(h, ctls[ctl], &path) == 0)
			continue;
		if (rmdir(path) == -1 && errno != ENOENT)
			CHECK(!"rmdir test group");
		CHECK(!exists(path));
	}
	free(cause);
	cgroup_host_destroy(&h);
}

int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(tmp, sizeof tmp, "/tmp/test-cgroup.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	test_names();
	test_v2();
	test_v2_variants();
	test_v1();
	test_v1_readback();
	test_v1_stale();
	test_symlinks();
	test_hybrid();
	test_mount_root();
	test_real_v1();
	rmtree(tmp);
	while (nkept > 0)
		free(kept[--nkept]);
	if (skipped != 0)
		printf("%d skipped\n", skipped);
	printf("%d passed, %d failed\n", passed, failed);
	return (failed != 0);
}
