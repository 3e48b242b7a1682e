/* files.h: a session's working directory as files in and out (issue 13). */
/*
 * REST's /v1/sessions/{name}/files, `cellblock cp` and MCP reach a
 * session's files through these calls only. Every path is relative to the
 * session's working directory and resolved beneath an opened descriptor of
 * it (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS,
 * else a per-component O_NOFOLLOW walk): no "..", no absolute paths, no
 * symlink is ever followed, so a cell that swaps a directory for a symlink
 * mid-call cannot send the daemon outside. The daemon works on the host
 * side of the directory, so a hibernated session's files are served
 * without resuming it. Files written are owned by the session's uid.
 *
 * All return -1 (or NULL) with *cause on any failure, and *errcode (when
 * not NULL) one of the FILES_E* kinds below so a surface picks its status
 * code: REST 404 / 400 / 403 / 413 / 507.
 */
#ifndef CELLBLOCK_FILES_H
#define CELLBLOCK_FILES_H

#include <sys/types.h>
#include <stdint.h>

#include <jansson.h>

struct session;
struct files_write;

enum files_error {
	FILES_EOK,
	FILES_ENOENT,	/* no such file or directory: 404 */
	FILES_EINVAL,	/* bad path (.., absolute, NUL, too long): 400 */
	FILES_EACCES,	/* a symlink, not a regular file, not allowed: 403 */
	FILES_ETOOBIG,	/* over files-max-size: 413 */
	FILES_EQUOTA,	/* over the owner's files-quota: 507 */
	FILES_EIO,	/* anything else the kernel said: 500 */
};

/*
 * Open path (relative to the working dir) for reading: a regular file,
 * not a symlink. Returns the fd (O_RDONLY|O_CLOEXEC) and its size.
 */
int		 files_open_beneath(struct session *, const char *, uint64_t *,
		     enum files_error *, char **);
/*
 * The entries of directory dir ("" or "." = the working dir): an array of
 * {name, path, type: "file"|"dir"|"symlink"|"other", size, mtime}, at most
 * FILES_LIST_MAX (then the array ends and *truncated is set).
 */
json_t		*files_list(struct session *, const char *, int *,
		     enum files_error *, char **);
/* Remove a file or an empty directory; never follows a symlink. */
int		 files_remove(struct session *, const char *, enum files_error *,
		     char **);
/*
 * A streamed upload: begin checks the path, size (expected, or -1 when
 * not known: then the cap is enforced chunk by chunk) and the owner's
 * quota, creates missing parent directories and a temporary file beside
 * the target; chunk appends; end (ok = 1) renames it over the target,
 * (ok = 0) removes it. end always frees w. The file is owned by the
 * session's uid, mode 0644 (directories 0755).
 */
struct files_write *files_write_begin(struct session *, const char *, int64_t,
		     enum files_error *, char **);
int		 files_write_chunk(struct files_write *, const void *, size_t,
		     enum files_error *, char **);
int		 files_write_end(struct files_write *, int, enum files_error *,
		     char **);
/* Bytes used under the working dirs of all of uid's sessions. */
uint64_t	 files_usage(uid_t);

/*
 * What a call changed in the working dir: files_snapshot records every
 * regular file (path, inode, size, mtime, ctime; bounded in depth and
 * count); files_changed lists those created or changed since, as
 * [{path, size, mtime}], at most max (then *truncated is set; also when
 * the snapshot itself stopped at its bound).
 */
struct files_snap;
struct files_snap *files_snapshot(struct session *);
void		 files_snapshot_free(struct files_snap **);
json_t		*files_changed(struct session *, struct files_snap *, size_t,
		     int *);

const char	*files_error_name(enum files_error);

/* server/files-mount.c: read-only mounts, checked as the owner */
json_t		*files_mount_check(json_t *, uid_t, char **);

#define FILES_LIST_MAX		10000	/* entries one list returns */
#define FILES_PATH_MAX		1024	/* bytes of a relative path */
#define FILES_DEPTH_MAX		32	/* directories deep, for changes */

#endif
