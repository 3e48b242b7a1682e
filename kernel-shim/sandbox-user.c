/* sandbox-user.c: user namespace: id maps (parent), identity (child). */

#include <sys/types.h>
#include <sys/prctl.h>

#include <linux/securebits.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

static int	user_write_file(pid_t, const char *, const char *, char **);

/*
 * Parent namespace, as root, before unshare(CLONE_NEWUSER).  Once the
 * parent writes setgroups=deny, setgroups(2) fails inside for good, and
 * whatever supplementary groups the process had stay attached to it: a
 * host group 0 kept this way would still open group-root files.  So they
 * are dropped here, while that is still allowed.
 */
int
sandbox_user_drop_groups(char **cause)
{
	/* Nothing to drop (an unprivileged daemon may not call setgroups). */
	if (getgroups(0, NULL) == 0)
		return (0);
	if (setgroups(0, NULL) != 0)
		return (sandbox_cause(cause, "setgroups: %s", strerror(errno)));
	return (0);
}

/* One write, as the kernel accepts a map only whole and only once. */
static int
user_write_file(pid_t pid, const char *name, const char *text, char **cause)
{
	char	path[64];
	size_t	len = strlen(text);
	ssize_t	n;
	int	fd, saved;

	snprintf(path, sizeof path, "/proc/%ld/%s", (long)pid, name);
	if ((fd = open(path, O_WRONLY|O_CLOEXEC)) == -1)
		return (sandbox_cause(cause, "open %s: %s", path,
		    strerror(errno)));
	n = write(fd, text, len);
	saved = errno;
	close(fd);
	if (n == -1)
		return (sandbox_cause(cause, "write %s: %s", path,
		    strerror(saved)));
	if ((size_t)n != len)
		return (sandbox_cause(cause, "write %s: short write", path));
	return (0);
}

/*
 * Parent side: map exactly one inner uid and gid onto an unprivileged host
 * uid and gid.  Inner root stays unmapped, so nothing inside can ever be
 * the namespace's root, and host root is refused outright.  setgroups is
 * denied first, as the kernel requires before an unprivileged gid_map and
 * as it keeps a process inside from dropping a group to dodge a "deny
 * group" permission.
 */
int
sandbox_user_write_maps(pid_t pid, uid_t inner, uid_t host_uid,
    gid_t inner_g, gid_t host_gid, char **cause)
{
	char	map[64];

	if (pid <= 0)
		return (sandbox_cause(cause, "write_maps: bad pid %ld",
		    (long)pid));
	if (host_uid == 0 || host_gid == 0)
		return (sandbox_cause(cause, "write_maps: refusing to map "
		    "host root"));
	if (inner == (uid_t)-1 || inner_g == (gid_t)-1 ||
	    host_uid == (uid_t)-1 || host_gid == (gid_t)-1)
		return (sandbox_cause(cause, "write_maps: bad id"));

	if (user_write_file(pid, "setgroups", "deny", cause) != 0)
		return (-1);
	snprintf(map, sizeof map, "%lu %lu 1\n", (unsigned long)inner_g,
	    (unsigned long)host_gid);
	if (user_write_file(pid, "gid_map", map, cause) != 0)
		return (-1);
	snprintf(map, sizeof map, "%lu %lu 1\n", (unsigned long)inner,
	    (unsigned long)host_uid);
	return (user_write_file(pid, "uid_map", map, cause));
}

/*
 * Child side, after the maps: become the inner user for good.
 *
 * setgroups(2) is denied here (setgroups=deny), so an empty group list is
 * checked for instead of set; sandbox_user_drop_groups() emptied it before
 * the unshare.  SECBIT_NO_SETUID_FIXUP keeps the capabilities across the
 * uid change: with inner root unmapped the kernel's fixup does not fire
 * anyway, but if a map ever included 0 it would silently take away the
 * CAP_SETPCAP that sandbox_caps_drop() needs to empty the bounding
 * set, and that step would fail instead of this one.
 */
int
sandbox_user_become(const struct sandbox_plan *plan, char **cause)
{
	uid_t	ru, eu, su;
	gid_t	rg, eg, sg;
	int	bits, n;

	if (setgroups(0, NULL) != 0) {
		if (errno != EPERM)
			return (sandbox_cause(cause, "setgroups: %s",
			    strerror(errno)));
		if ((n = getgroups(0, NULL)) != 0)
			return (sandbox_cause(cause, "setgroups is denied and "
			    "%d supplementary groups remain", n));
	}

	if ((bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0)) == -1 ||
	    prctl(PR_SET_SECUREBITS, bits | SECBIT_NO_SETUID_FIXUP,
	    0, 0, 0) == -1)
		return (sandbox_cause(cause, "securebits: %s",
		    strerror(errno)));

	if (setresgid(plan->inner_gid, plan->inner_gid, plan->inner_gid) != 0)
		return (sandbox_cause(cause, "setresgid %lu: %s",
		    (unsigned long)plan->inner_gid, strerror(errno)));
	if (setresuid(plan->inner_uid, plan->inner_uid, plan->inner_uid) != 0)
		return (sandbox_cause(cause, "setresuid %lu: %s",
		    (unsigned long)plan->inner_uid, strerror(errno)));

	/* Trust the kernel's answer, not the calls' return values. */
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0)
		return (sandbox_cause(cause, "getres[ug]id: %s",
		    strerror(errno)));
	if (ru != plan->inner_uid || eu != ru || su != ru ||
	    rg != plan->inner_gid || eg != rg || sg != rg)
		return (sandbox_cause(cause, "identity did not change"));
	return (0);
}
