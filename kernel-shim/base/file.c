/* file.c: files in directories someone else controls: opened beneath, removed, written whole. */
/*
 * A session's work directory is the session's to play with, and cgroupfs
 * (or a fake tree in the tests) may hold anything, so every path below a
 * trusted top is opened one component at a time by descriptor with
 * O_NOFOLLOW: a planted symlink is refused, never followed, and no path is
 * ever rebuilt (a deep tree exceeds PATH_MAX). Each function returns -1
 * with an allocated *cause naming the path and why.
 */

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

static int	file_fail(char **, int, const char *, const char *);
static int	file_remove_at(int, const char *, int);
static int	file_write_all(int, const void *, size_t);

/*
 * Why dir/name did not open: O_NOFOLLOW reports a symlink as ELOOP, or as
 * ENOTDIR with O_DIRECTORY, which would hide what happened.
 */
static int
file_fail(char **cause, int dfd, const char *dpath, const char *name)
{
	struct stat	 st;
	int		 saved = errno;
	const char	*why = strerror(saved);

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		why = "a symlink, refused";
	if (cause != NULL) {
		if (dpath == NULL)
			xasprintf(cause, "%s: %s", name, why);
		else
			xasprintf(cause, "%s/%s: %s", dpath, name, why);
	}
	errno = saved;
	return (-1);
}

/*
 * Open name, one component, in dfd, never through a symlink; dpath names
 * dfd in the cause. O_CLOEXEC and O_NOFOLLOW are always added.
 */
int
file_open_at(int dfd, const char *dpath, const char *name, int flags,
    mode_t mode, char **cause)
{
	int	fd;

	if (strchr(name, '/') != NULL || strcmp(name, "..") == 0) {
		errno = EINVAL;
		return (file_fail(cause, dfd, dpath, name));
	}
	fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd == -1)
		return (file_fail(cause, dfd, dpath, name));
	return (fd);
}

/*
 * A value or data file: a regular file and nothing else. O_NONBLOCK, so a
 * FIFO planted in its place cannot hang the daemon before fstat refuses it.
 */
int
file_open_regular(int dfd, const char *dpath, const char *name, int flags,
    char **cause)
{
	struct stat	st;
	int		fd;

	fd = file_open_at(dfd, dpath, name, flags | O_NONBLOCK, 0, cause);
	if (fd == -1)
		return (-1);
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		if (cause != NULL) {
			if (dpath == NULL)
				xasprintf(cause, "%s: not a regular file",
				    name);
			else
				xasprintf(cause, "%s/%s: not a regular file",
				    dpath, name);
		}
		return (-1);
	}
	return (fd);
}

/*
 * Open the directory top/rel: top is trusted (only its last component must
 * not be a link), rel (NULL or "" for top itself) is walked one component
 * at a time, each refused if it is a symlink.
 */
int
file_open_dir(const char *top, const char *rel, char **cause)
{
	char	*copy, *comp, *save, *cur, *next;
	int	 fd, nfd;

	fd = open(top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return (file_fail(cause, AT_FDCWD, NULL, top));
	if (rel == NULL)
		return (fd);
	copy = xstrdup(rel);
	cur = xstrdup(top);
	for (comp = strtok_r(copy, "/", &save); comp != NULL && fd != -1;
	    comp = strtok_r(NULL, "/", &save)) {
		nfd = file_open_at(fd, cur, comp, O_RDONLY | O_DIRECTORY, 0,
		    cause);
		close(fd);
		fd = nfd;
		xasprintf(&next, "%s/%s", cur, comp);
		free(cur);
		cur = next;
	}
	free(cur);
	free(copy);
	return (fd);
}

/* Remove name in parent and all below it; the first failure's errno stays. */
static int
file_remove_at(int parent, const char *name, int depth)
{
	struct dirent	*de;
	DIR		*d;
	int		 fd, r = 0, saved = 0;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return (0);
	/* A directory: Linux says EISDIR, POSIX allows EPERM. */
	if (errno != EISDIR && errno != EPERM)
		return (-1);
	if (depth >= FILE_TREE_DEPTH) {
		errno = ELOOP;
		return (-1);
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		saved = errno;
		if (fd != -1)
			close(fd);
		errno = saved;
		return (-1);
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (file_remove_at(dirfd(d), de->d_name, depth + 1) != 0 &&
		    r == 0) {
			r = -1;
			saved = errno;
		}
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT &&
	    r == 0) {
		r = -1;
		saved = errno;
	}
	if (r != 0)
		errno = saved;
	return (r);
}

/*
 * Remove path and everything below it without following a link (unlinkat
 * removes the link itself) or crossing into a directory reached by one.
 * A path that is not there is not an error.
 */
int
file_remove_tree(const char *path, char **cause)
{
	if (file_remove_at(AT_FDCWD, path, 0) == 0)
		return (0);
	if (cause != NULL)
		xasprintf(cause, "cannot remove all of %s: %s", path,
		    strerror(errno));
	return (-1);
}

static int
file_write_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0) {
			errno = EIO;
			return (-1);
		}
		p += n;
		len -= n;
	}
	return (0);
}

/*
 * The temporary for path: the spare when there is one we made (a plain
 * file, ours alone: opened without following a link, never a FIFO), or
 * path.tmp created afresh. -1 with errno when neither opens.
 */
static int
file_temporary(const char *path, const char *spare, mode_t mode, char **tmp)
{
	struct stat	 sb;
	int		 fd, gone;

	if (spare != NULL) {
		fd = open(spare, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		gone = fd == -1 && errno == ENOENT;
		/*
		 * Truncated only if it is not empty: ext4 takes a truncate to
		 * zero as a rewrite and writes the file out at close.
		 */
		if (fd != -1 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    sb.st_nlink == 1 && (sb.st_size == 0 ||
		    ftruncate(fd, 0) == 0)) {
			*tmp = xstrdup(spare);
			return (fd);
		}
		if (fd != -1)
			close(fd);
		/* Not one we made (a link, a FIFO, a second name): unused. */
		if (!gone)
			unlink(spare);
	}
	xasprintf(tmp, "%s.tmp", path);
	unlink(*tmp);
	return (open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode));
}

/*
 * Replace path by buf whole or not at all: written to path.tmp (created
 * afresh, never through a link) or to spare (file_make_spare's), given
 * to owner ((uid_t)-1: left as is), synced (unless sync is 0), then
 * renamed over path. A reader sees the old file or the new one, never
 * half of either; on failure the temporary is gone and path untouched.
 */
static int
file_replace(const char *path, const char *spare, const void *buf,
    size_t len, mode_t mode, uid_t owner, int sync, char **cause)
{
	const char	*what;
	char		*tmp;
	int		 fd, saved;

	fd = file_temporary(path, spare, mode, &tmp);
	what = tmp;
	if (fd == -1)
		goto fail;
	if (file_write_all(fd, buf, len) != 0 ||
	    (owner != (uid_t)-1 && fchown(fd, owner, (gid_t)-1) != 0) ||
	    (sync && fsync(fd) != 0)) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	if (close(fd) != 0)
		goto fail;
	what = path;
	if (rename(tmp, path) != 0)
		goto fail;
	free(tmp);
	return (0);

fail:
	saved = errno;
	if (cause != NULL)
		xasprintf(cause, "%s: %s", what, strerror(saved));
	unlink(tmp);
	free(tmp);
	errno = saved;
	return (-1);
}

int
file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode,
    uid_t owner, char **cause)
{
	return (file_replace(path, NULL, buf, len, mode, owner, 1, cause));
}

/*
 * The same without the sync, for files the daemon can write again from
 * what it keeps elsewhere (a connection file: from the session's record).
 * After a power loss such a file may be empty; never half of a new one.
 */
int
file_write_atomic_nosync(const char *path, const void *buf, size_t len,
    mode_t mode, uid_t owner, char **cause)
{
	return (file_replace(path, NULL, buf, len, mode, owner, 0, cause));
}

/*
 * An empty file made now, between requests, for a later write that must
 * be quick (file_write_atomic_spare): making a file is the dearest part
 * of such a write in a large directory (ext4 without a journal steps
 * over every inode freed in the last seconds, one by one, to find a free
 * one). Only in a directory no one else can write to.
 */
int
file_make_spare(const char *spare, mode_t mode, char **cause)
{
	int	fd;

	unlink(spare);
	fd = open(spare, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd == -1 || close(fd) != 0) {
		xasprintf(cause, "%s: %s", spare, strerror(errno));
		return (-1);
	}
	return (0);
}

/*
 * file_write_atomic (sync set) or its nosync twin, writing into spare and
 * renaming it; a spare that is gone is no error: path.tmp is made instead.
 */
int
file_write_atomic_spare(const char *path, const char *spare, const void *buf,
    size_t len, mode_t mode, uid_t owner, int sync, char **cause)
{
	return (file_replace(path, spare, buf, len, mode, owner, sync, cause));
}
