/* files.c: a session's working directory, files in and out, beneath its fd. */
/*
 * The working directory is the session's to play with: a cell may plant
 * symlinks, swap a directory for a link while a transfer runs, or fill it.
 * So every path is checked (relative, no "." or ".." component, not the
 * daemon's .cellblock, bounded) and then opened beneath a descriptor of
 * the working dir: openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV where the kernel has it (5.6),
 * else a component at a time with O_NOFOLLOW (kernel-shim/base/file.c).
 * Either way no symlink is ever followed, and parents stay held by
 * descriptor, so a swap after the check changes nothing. Writes go to a
 * temporary file in the target's directory, owned by the session's uid,
 * renamed over the target at the end (a reader never sees half a file).
 * The host side is used, never the interpreter: a hibernated session's
 * files are served as they are.
 */

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __has_include
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define FILES_HAVE_OPENAT2
#endif
#endif

#include "server.h"
#include "files.h"

#define FILES_WALK_MAX		100000	/* entries a usage or change walk visits */
#define FILES_RESERVED		".cellblock"	/* the daemon's checkpoints */

struct files_write {
	struct session	*s;
	int		 dfd;		/* the target's directory */
	int		 fd;		/* the temporary file */
	char		*name;		/* the target, in dfd */
	char		*path;		/* the target, from the working dir */
	char		*tmp;		/* the temporary file's name, in dfd */
	uint64_t	 written;
	uint64_t	 quota_left;	/* bytes the owner may still add */
};

static int	files_openat2_missing;	/* ENOSYS once: walk from then on */

/* Legend: the kind; its name, as REST and the control socket say it. */
static const char *files_error_names[] = {
	[FILES_EOK] = "ok",
	[FILES_ENOENT] = "not_found",
	[FILES_EINVAL] = "bad_path",
	[FILES_EACCES] = "forbidden",
	[FILES_ETOOBIG] = "too_large",
	[FILES_EQUOTA] = "quota_exceeded",
	[FILES_EIO] = "io_error",
};

const char *
files_error_name(enum files_error e)
{
	if ((size_t)e >= nitems(files_error_names))
		return ("io_error");
	return (files_error_names[e]);
}

static int
files_fail(enum files_error *ep, enum files_error e, char **cause,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
files_fail(enum files_error *ep, enum files_error e, char **cause,
    const char *fmt, ...)
{
	va_list	ap;

	if (ep != NULL)
		*ep = e;
	if (cause != NULL) {
		va_start(ap, fmt);
		xvasprintf(cause, fmt, ap);
		va_end(ap);
	}
	return (-1);
}

/* What an errno from opening a user's path means to the caller. */
static enum files_error
files_errno_kind(int e)
{
	switch (e) {
	case ENOENT:
		return (FILES_ENOENT);
	case ELOOP:
	case EXDEV:
	case EACCES:
	case EPERM:
	case ENOTDIR:
	case EISDIR:
		return (FILES_EACCES);
	case EFBIG:
		return (FILES_ETOOBIG);
	case ENOSPC:
	case EDQUOT:
		return (FILES_EQUOTA);
	default:
		return (FILES_EIO);
	}
}

static int
files_errno(enum files_error *ep, char **cause, const char *path)
{
	int	e = errno;

	return (files_fail(ep, files_errno_kind(e), cause, "%s: %s", path,
	    e == ELOOP || e == EXDEV ? "a symlink (or outside the working "
	    "directory), refused" : strerror(e)));
}

/*
 * A relative path of components that are not "", "." or "..", not
 * starting with .cellblock; "" (the working dir itself) only if allowed.
 */
static int
files_path_ok(const char *path, int empty_ok, enum files_error *ep,
    char **cause)
{
	const char	*p, *end;
	size_t		 len = strlen(path);

	if (len == 0 || strcmp(path, ".") == 0) {
		if (empty_ok)
			return (0);
		return (files_fail(ep, FILES_EINVAL, cause, "no path given"));
	}
	if (len > FILES_PATH_MAX)
		return (files_fail(ep, FILES_EINVAL, cause, "path longer than "
		    "%d bytes", FILES_PATH_MAX));
	if (path[0] == '/')
		return (files_fail(ep, FILES_EINVAL, cause, "%s: an absolute "
		    "path; paths are relative to the working directory", path));
	for (p = path; *p != '\0'; p = *end == '/' ? end + 1 : end) {
		end = strchrnul(p, '/');
		if (end == p || (end - p == 1 && p[0] == '.') ||
		    (end - p == 2 && p[0] == '.' && p[1] == '.'))
			return (files_fail(ep, FILES_EINVAL, cause, "%s: empty, "
			    "\".\" or \"..\" components are refused", path));
		if (p == path && (size_t)(end - p) == strlen(FILES_RESERVED) &&
		    strncmp(p, FILES_RESERVED, end - p) == 0)
			return (files_fail(ep, FILES_EACCES, cause, "%s: the "
			    "daemon's own directory", path));
		if (*end == '\0')
			break;
	}
	return (0);
}

static int
files_root(struct session *s, enum files_error *ep, char **cause)
{
	int	fd;

	fd = open(s->workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return (files_fail(ep, FILES_EIO, cause, "session %s: its "
		    "working directory: %s", s->name, strerror(errno)));
	return (fd);
}

/* openat2 beneath root; -1 with errno ENOSYS if the kernel lacks it. */
static int
files_openat2(int root, const char *path, int flags, mode_t mode)
{
#ifdef FILES_HAVE_OPENAT2
	struct open_how	how;

	memset(&how, 0, sizeof how);
	how.flags = flags | O_CLOEXEC | O_NOFOLLOW;
	how.mode = (flags & O_CREAT) ? mode : 0;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	    RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
	return (syscall(SYS_openat2, root, path, &how, sizeof how));
#else
	(void)root;
	(void)path;
	(void)flags;
	(void)mode;
	errno = ENOSYS;
	return (-1);
#endif
}

/*
 * The parent directory of path, opened beneath root; *base its last name.
 * Each directory component with O_NOFOLLOW, by descriptor; made first if
 * create (then s says whose it is).
 */
static int
files_parent(int root, const char *path, int create, const struct session *s,
    const char **base)
{
	char	*copy = xstrdup(path), *comp, *next;
	int	 fd = dup(root), nfd, saved;

	*base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	for (comp = copy; fd != -1 && (next = strchr(comp, '/')) != NULL;
	    comp = next + 1) {
		*next = '\0';
		if (create && mkdirat(fd, comp, 0755) == 0 &&
		    s->host_uid != (uid_t)-1)
			fchownat(fd, comp, s->host_uid, s->host_gid,
			    AT_SYMLINK_NOFOLLOW);
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		saved = errno;
		close(fd);
		fd = nfd;
		errno = saved == ENOTDIR ? ELOOP : saved;
	}
	free(copy);
	return (fd);
}

/* The fallback: each directory component with O_NOFOLLOW, by descriptor. */
static int
files_walk(int root, const char *path, int flags, mode_t mode)
{
	const char	*base;
	int		 dfd, fd, saved;

	if ((dfd = files_parent(root, path, 0, NULL, &base)) == -1)
		return (-1);
	fd = openat(dfd, base, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	saved = errno;
	close(dfd);
	errno = saved;
	return (fd);
}

/* Open path beneath root, never through a symlink. */
static int
files_beneath(int root, const char *path, int flags, mode_t mode)
{
	int	fd;

	if (*path == '\0')
		return (openat(root, ".", flags | O_CLOEXEC));
	if (!files_openat2_missing) {
		fd = files_openat2(root, path, flags, mode);
		/*
		 * EAGAIN: a rename somewhere raced the lookup (a cell can do
		 * that all day); the walk is as safe and does not mind.
		 */
		if (fd != -1 || (errno != ENOSYS && errno != EAGAIN))
			return (fd);
		if (errno == ENOSYS)
			files_openat2_missing = 1;
	}
	return (files_walk(root, path, flags, mode));
}

int
files_open_beneath(struct session *s, const char *path, uint64_t *size,
    enum files_error *ep, char **cause)
{
	struct stat	st;
	int		root, fd;

	if (files_path_ok(path, 0, ep, cause) != 0 ||
	    (root = files_root(s, ep, cause)) == -1)
		return (-1);
	/* O_NONBLOCK: a FIFO planted there must not hang the daemon. */
	fd = files_beneath(root, path, O_RDONLY | O_NONBLOCK, 0);
	close(root);
	if (fd == -1)
		return (files_errno(ep, cause, path));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return (files_fail(ep, FILES_EACCES, cause, "%s: not a regular "
		    "file", path));
	}
	fcntl(fd, F_SETFL, 0);
	*size = st.st_size;
	audit_transfer(s, path, st.st_size, "out");
	return (fd);
}

static const char *
files_type(mode_t m)
{
	if (S_ISREG(m))
		return ("file");
	if (S_ISDIR(m))
		return ("dir");
	if (S_ISLNK(m))
		return ("symlink");
	return ("other");
}

static json_t *
files_entry(const char *dir, const char *name, const struct stat *st)
{
	char	*path;
	json_t	*e;

	if (*dir == '\0' || strcmp(dir, ".") == 0)
		path = xstrdup(name);
	else
		xasprintf(&path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ?
		    "" : "/", name);
	e = json_pack("{s:s,s:s,s:s,s:I,s:I}", "name", name, "path", path,
	    "type", files_type(st->st_mode), "size", (json_int_t)st->st_size,
	    "mtime", (json_int_t)st->st_mtime);
	free(path);
	return (e);
}

/* Names that are not UTF-8 cannot be JSON strings: they are left out. */
json_t *
files_list(struct session *s, const char *dir, int *truncated,
    enum files_error *ep, char **cause)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	json_t		*list, *e;
	int		 root, fd;

	*truncated = 0;
	if (files_path_ok(dir, 1, ep, cause) != 0 ||
	    (root = files_root(s, ep, cause)) == -1)
		return (NULL);
	fd = files_beneath(root, dir, O_RDONLY | O_DIRECTORY, 0);
	close(root);
	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		files_errno(ep, cause, *dir != '\0' ? dir : ".");
		return (NULL);
	}
	list = json_array();
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    ((*dir == '\0' || strcmp(dir, ".") == 0) &&
		    strcmp(de->d_name, FILES_RESERVED) == 0))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (json_array_size(list) == FILES_LIST_MAX) {
			*truncated = 1;
			break;
		}
		if ((e = files_entry(dir, de->d_name, &st)) != NULL)
			json_array_append_new(list, e);
	}
	closedir(d);
	return (list);
}

int
files_remove(struct session *s, const char *path, enum files_error *ep,
    char **cause)
{
	const char	*base;
	struct stat	 st;
	int		 root, dfd, r;

	if (files_path_ok(path, 0, ep, cause) != 0 ||
	    (root = files_root(s, ep, cause)) == -1)
		return (-1);
	dfd = files_parent(root, path, 0, s, &base);
	close(root);
	if (dfd == -1)
		return (files_errno(ep, cause, path));
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		r = files_errno(ep, cause, path);
		close(dfd);
		return (r);
	}
	/* A symlink is removed itself, never what it points at. */
	r = unlinkat(dfd, base, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
	if (r != 0)
		r = files_errno(ep, cause, path);
	close(dfd);
	return (r);
}

/* Bytes under one directory fd, bounded in entries and depth. */
static uint64_t
files_du(int dfd, int depth, size_t *budget)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	uint64_t	 total = 0;
	int		 fd;

	if (depth > FILES_DEPTH_MAX || (d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return (0);
	}
	while (*budget > 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		(*budget)--;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		total += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (fd != -1)
			total += files_du(fd, depth + 1, budget);
	}
	closedir(d);
	return (total);
}

uint64_t
files_usage(uid_t owner)
{
	struct session	*s;
	uint64_t	 total = 0;
	size_t		 budget = FILES_WALK_MAX;
	int		 fd;

	for (s = session_first(); s != NULL; s = session_next()) {
		if (s->owner != owner || s->ending)
			continue;
		fd = open(s->workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (fd != -1)
			total += files_du(fd, 0, &budget);
	}
	return (total);
}

struct files_write *
files_write_begin(struct session *s, const char *path, int64_t size,
    enum files_error *ep, char **cause)
{
	struct files_write	*w;
	const char		*base;
	uint64_t		 used;
	int			 root, dfd, fd;
	char			*tmp, rnd[9];

	if (files_path_ok(path, 0, ep, cause) != 0)
		return (NULL);
	if (size > 0 && (uint64_t)size > cfg.files_max_size) {
		files_fail(ep, FILES_ETOOBIG, cause, "%s: %lld bytes, over "
		    "the %zu-byte limit (files-max-size)", path,
		    (long long)size, cfg.files_max_size);
		return (NULL);
	}
	used = files_usage(s->owner);
	if (used >= cfg.files_quota || (size > 0 &&
	    (uint64_t)size > cfg.files_quota - used)) {
		files_fail(ep, FILES_EQUOTA, cause, "%s: the owner's sessions "
		    "hold %llu bytes of files; the quota is %zu (files-quota)",
		    path, (unsigned long long)used, cfg.files_quota);
		return (NULL);
	}
	if ((root = files_root(s, ep, cause)) == -1)
		return (NULL);
	dfd = files_parent(root, path, 1, s, &base);
	close(root);
	if (dfd == -1) {
		files_errno(ep, cause, path);
		return (NULL);
	}
	session_random_name(rnd, sizeof rnd);
	xasprintf(&tmp, ".%.200s.upload-%s", base, rnd);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0644);
	if (fd == -1 || (s->host_uid != (uid_t)-1 &&
	    fchown(fd, s->host_uid, s->host_gid) != 0)) {
		files_errno(ep, cause, path);
		if (fd != -1) {
			close(fd);
			unlinkat(dfd, tmp, 0);
		}
		close(dfd);
		free(tmp);
		return (NULL);
	}
	w = xcalloc(1, sizeof *w);
	w->s = s;
	session_add_ref(s);
	w->dfd = dfd;
	w->fd = fd;
	w->name = xstrdup(base);
	w->path = xstrdup(path);
	w->tmp = tmp;
	w->quota_left = cfg.files_quota - used;
	return (w);
}

int
files_write_chunk(struct files_write *w, const void *buf, size_t len,
    enum files_error *ep, char **cause)
{
	const char	*p = buf;
	ssize_t		 n;

	if (w->written + len > cfg.files_max_size)
		return (files_fail(ep, FILES_ETOOBIG, cause, "%s: over the "
		    "%zu-byte limit (files-max-size)", w->name,
		    cfg.files_max_size));
	if (w->written + len > w->quota_left)
		return (files_fail(ep, FILES_EQUOTA, cause, "%s: over the "
		    "owner's quota of %zu bytes (files-quota)", w->name,
		    cfg.files_quota));
	while (len > 0) {
		n = write(w->fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (files_errno(ep, cause, w->name));
		p += n;
		len -= n;
		w->written += n;
	}
	return (0);
}

int
files_write_end(struct files_write *w, int ok, enum files_error *ep,
    char **cause)
{
	int	r = 0;

	if (w == NULL)
		return (0);
	if (ok && close(w->fd) != 0)
		r = files_errno(ep, cause, w->name);
	else if (!ok)
		close(w->fd);
	if (ok && r == 0 && renameat(w->dfd, w->tmp, w->dfd, w->name) != 0)
		r = files_errno(ep, cause, w->name);
	if (!ok || r != 0)
		unlinkat(w->dfd, w->tmp, 0);
	else
		audit_transfer(w->s, w->path, w->written, "in");
	close(w->dfd);
	session_remove_ref(w->s);
	free(w->name);
	free(w->path);
	free(w->tmp);
	free(w);
	return (r);
}

/*
 * Artifacts: what a call created or changed, found by comparing the tree
 * before and after it (path -> inode, size, mtime, ctime), not by
 * timestamps against a clock: file times may be coarser or finer than
 * any clock the daemon reads, and a file written just before the call
 * must not count. Bounded in entries and depth; .cellblock is skipped.
 */
struct files_stamp {
	ino_t		ino;
	off_t		size;
	struct timespec	mtime;
	struct timespec	ctime;
};

struct files_snap {
	zhashx_t	*seen;		/* relative path -> struct files_stamp */
	int		 partial;	/* the walk stopped at its bound */
};

struct files_walk_ctx {
	struct files_snap	*before;	/* NULL: taking the snapshot */
	struct files_snap	*snap;
	json_t			*out;
	size_t			 max;
	size_t			 budget;
	int			*truncated;
};

static int
files_same(const struct files_stamp *a, const struct stat *st)
{
	return (a->ino == st->st_ino && a->size == st->st_size &&
	    a->mtime.tv_sec == st->st_mtim.tv_sec &&
	    a->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	    a->ctime.tv_sec == st->st_ctim.tv_sec &&
	    a->ctime.tv_nsec == st->st_ctim.tv_nsec);
}

static void
files_walk_file(struct files_walk_ctx *w, const char *path,
    const struct stat *st)
{
	struct files_stamp	*fs, *old;

	if (w->before == NULL) {
		fs = xmalloc(sizeof *fs);
		fs->ino = st->st_ino;
		fs->size = st->st_size;
		fs->mtime = st->st_mtim;
		fs->ctime = st->st_ctim;
		zhashx_update(w->snap->seen, path, fs);
		return;
	}
	old = zhashx_lookup(w->before->seen, path);
	if (old != NULL && files_same(old, st))
		return;
	if (json_array_size(w->out) >= w->max) {
		*w->truncated = 1;
		return;
	}
	json_array_append_new(w->out, json_pack("{s:s,s:I,s:I}", "path", path,
	    "size", (json_int_t)st->st_size, "mtime",
	    (json_int_t)st->st_mtime));
}

static void
files_walk_dir(struct files_walk_ctx *w, int dfd, const char *prefix,
    int depth)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		*path;
	int		 fd;

	if (depth > FILES_DEPTH_MAX || (d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    (depth == 0 && strcmp(de->d_name, FILES_RESERVED) == 0))
			continue;
		if (w->budget == 0) {
			if (w->truncated != NULL)
				*w->truncated = 1;
			if (w->snap != NULL)
				w->snap->partial = 1;
			break;
		}
		w->budget--;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISDIR(st.st_mode)) {
			xasprintf(&path, "%s%s/", prefix, de->d_name);
			fd = openat(dirfd(d), de->d_name, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd != -1)
				files_walk_dir(w, fd, path, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			xasprintf(&path, "%s%s", prefix, de->d_name);
			files_walk_file(w, path, &st);
		} else
			continue;
		free(path);
	}
	closedir(d);
}

static void
files_walk_tree(struct session *s, struct files_walk_ctx *w)
{
	int	fd;

	w->budget = FILES_WALK_MAX;
	fd = open(s->workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1)
		files_walk_dir(w, fd, "", 0);
}

static void
files_stamp_free(void **p)
{
	free(*p);
	*p = NULL;
}

struct files_snap *
files_snapshot(struct session *s)
{
	struct files_walk_ctx	w;
	struct files_snap	*snap = xcalloc(1, sizeof *snap);

	snap->seen = zhashx_new();
	zhashx_set_destructor(snap->seen, files_stamp_free);
	memset(&w, 0, sizeof w);
	w.snap = snap;
	files_walk_tree(s, &w);
	return (snap);
}

void
files_snapshot_free(struct files_snap **sp)
{
	if (*sp == NULL)
		return;
	zhashx_destroy(&(*sp)->seen);
	free(*sp);
	*sp = NULL;
}

/* Names that are not UTF-8 fail json_pack and are left out. */
json_t *
files_changed(struct session *s, struct files_snap *before, size_t max,
    int *truncated)
{
	struct files_walk_ctx	w;

	*truncated = before->partial;
	memset(&w, 0, sizeof w);
	w.before = before;
	w.out = json_array();
	w.max = max;
	w.truncated = truncated;
	files_walk_tree(s, &w);
	return (w.out);
}
