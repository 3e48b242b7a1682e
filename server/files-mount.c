/* files-mount.c: read-only mounts of an owner's directories, checked as the owner. */
/*
 * `cellblock new --mount-ro SRC:DST` and the REST/MCP creation calls'
 * "mounts" come here before the factory makes the session. Each source
 * must be an absolute path without symlinks that the OWNER can open for
 * reading: a child process takes the owner's uid, gid and groups and
 * opens it (the daemon itself, root, could read anything). The shim
 * opens it again with the owner's ids at every start (restored on resume,
 * kernel-shim/sandbox-mount.c), so a later chmod counts too. Targets are
 * absolute paths inside the sandbox outside what the sandbox itself
 * builds. Bounded: SPAWN_BINDS_MAX mounts of FILES_PATH_MAX bytes.
 */

#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "server.h"
#include "files.h"

/* Where a bind may not go: what the sandbox builds (sandbox-mount.c). */
static const char *files_mount_reserved[] = {
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	"/etc", "/proc", "/dev", "/tmp", "/opt/cellblock", "/home/session",
	"/run/cellblock",	/* the egress relay's socket (server/egress.c) */
};

/* Absolute, no "", "." or ".." components, no trailing slash, bounded. */
static int
files_mount_path_ok(const char *p)
{
	const char	*c, *end;
	size_t		 len = strlen(p);

	if (len < 2 || len > FILES_PATH_MAX || p[0] != '/' || p[len - 1] == '/')
		return (0);
	for (c = p + 1; ; c = end + 1) {
		end = strchrnul(c, '/');
		if (end == c || (end - c == 1 && c[0] == '.') ||
		    (end - c == 2 && c[0] == '.' && c[1] == '.'))
			return (0);
		if (*end == '\0')
			return (strchr(p, ':') == NULL);
	}
}

static int
files_mount_target_ok(const char *t)
{
	size_t	i, n;

	if (!files_mount_path_ok(t))
		return (0);
	for (i = 0; i < nitems(files_mount_reserved); i++) {
		n = strlen(files_mount_reserved[i]);
		if (strncmp(t, files_mount_reserved[i], n) == 0 &&
		    (t[n] == '\0' || t[n] == '/'))
			return (0);
		/* Nor a parent of one: it would hide it. */
		if (strncmp(files_mount_reserved[i], t, strlen(t)) == 0 &&
		    files_mount_reserved[i][strlen(t)] == '/')
			return (0);
	}
	return (1);
}

/* In a child, as the owner: 0, or the errno of opening src. */
static void __attribute__((noreturn))
files_mount_probe(const char *src, uid_t owner)
{
	struct passwd	*pw = getpwuid(owner);
	struct open_how	 how;
	gid_t		 groups[NGROUPS_MAX], gid;
	int		 n = NGROUPS_MAX;

	gid = pw != NULL ? pw->pw_gid : (gid_t)owner;
	if (pw == NULL || getgrouplist(pw->pw_name, gid, groups, &n) == -1)
		n = 0;
	if (setgroups(n, groups) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(owner, owner, owner) != 0)
		_exit(EPERM);
	memset(&how, 0, sizeof how);
	how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	if (syscall(SYS_openat2, AT_FDCWD, src, &how, sizeof how) == -1)
		_exit(errno > 0 && errno < 256 ? errno : EIO);
	_exit(0);
}

static int
files_mount_readable(const char *src, uid_t owner, char **cause)
{
	pid_t	pid;
	int	status, e;

	if ((pid = fork()) == -1) {
		xasprintf(cause, "fork: %s", strerror(errno));
		return (-1);
	}
	if (pid == 0)
		files_mount_probe(src, owner);
	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			xasprintf(cause, "waitpid: %s", strerror(errno));
			return (-1);
		}
	}
	e = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
	if (e == 0)
		return (0);
	xasprintf(cause, "mount source %s: %s (checked as uid %u)", src,
	    e == ELOOP ? "a symlink in the path, refused" : strerror(e),
	    (u_int)owner);
	return (-1);
}

/* One equal to the other, or either inside the other. */
static int
files_mount_nested(const char *a, const char *b)
{
	size_t	la = strlen(a), lb = strlen(b);

	if (la > lb)
		return (files_mount_nested(b, a));
	return (strncmp(a, b, la) == 0 && (b[la] == '\0' || b[la] == '/'));
}

/*
 * The request's mounts, checked; a new array of {source, target} to give
 * the factory, or NULL with *cause.
 */
json_t *
files_mount_check(json_t *mounts, uid_t owner, char **cause)
{
	json_t		*out, *m, *o;
	const char	*src, *dst;
	size_t		 i, j;

	if (!json_is_array(mounts) ||
	    json_array_size(mounts) > SPAWN_BINDS_MAX) {
		xasprintf(cause, "mounts must be an array of at most %d "
		    "{\"source\", \"target\"} objects", SPAWN_BINDS_MAX);
		return (NULL);
	}
	out = json_array();
	json_array_foreach(mounts, i, m) {
		src = json_string_value(json_object_get(m, "source"));
		dst = json_string_value(json_object_get(m, "target"));
		if (src == NULL || dst == NULL || !files_mount_path_ok(src) ||
		    !files_mount_target_ok(dst)) {
			xasprintf(cause, "mount %zu: source and target must be "
			    "absolute paths without \".\", \"..\" or \":\"; the "
			    "target not a directory the sandbox makes (/usr, "
			    "/etc, /tmp, /home/session, ...)", i);
			goto fail;
		}
		json_array_foreach(out, j, o) {
			if (files_mount_nested(json_string_value(
			    json_object_get(o, "target")), dst)) {
				xasprintf(cause, "mount target %s is, or is "
				    "inside or around, another one", dst);
				goto fail;
			}
		}
		if (files_mount_readable(src, owner, cause) != 0)
			goto fail;
		json_array_append_new(out, json_pack("{s:s,s:s}", "source", src,
		    "target", dst));
	}
	return (out);
fail:
	json_decref(out);
	return (NULL);
}
