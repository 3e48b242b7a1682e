/* sandbox-caps.c: capabilities: every one dropped for good, then no_new_privs. */

#include <sys/prctl.h>
#include <sys/syscall.h>

#include <linux/capability.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

#define CAPS_MAX	63	/* capabilities are bits of a u64 */

static int	caps_empty(char **);

/* Ask the kernel rather than trust capset's return value. */
static int
caps_empty(char **cause)
{
	struct __user_cap_header_struct	hdr;
	struct __user_cap_data_struct	data[2];
	int				i;

	memset(&hdr, 0, sizeof hdr);
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capget, &hdr, data) != 0)
		return (sandbox_cause(cause, "capget: %s", strerror(errno)));
	for (i = 0; i < 2; i++) {
		if (data[i].effective != 0 || data[i].permitted != 0 ||
		    data[i].inheritable != 0)
			return (sandbox_cause(cause, "capabilities remain"));
	}
	return (0);
}

/*
 * Drop every capability for good, then no_new_privs.  Order matters:
 * emptying the bounding set needs CAP_SETPCAP, so capset comes last.
 * The bounding loop stops at the first EINVAL, the first number past
 * CAP_LAST_CAP, so it needs no /proc/sys (which may not be mounted).
 * Raw syscalls: no libcap.
 */
int
sandbox_caps_drop(char **cause)
{
	struct __user_cap_header_struct	hdr;
	struct __user_cap_data_struct	data[2];
	int				cap;

	for (cap = 0; cap <= CAPS_MAX; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL && cap > 0)
			break;
		return (sandbox_cause(cause, "PR_CAPBSET_DROP %d: %s", cap,
		    strerror(errno)));
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
		return (sandbox_cause(cause, "PR_CAP_AMBIENT_CLEAR_ALL: %s",
		    strerror(errno)));

	memset(&hdr, 0, sizeof hdr);
	memset(data, 0, sizeof data);
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capset, &hdr, data) != 0)
		return (sandbox_cause(cause, "capset: %s", strerror(errno)));
	if (caps_empty(cause) != 0)
		return (-1);

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return (sandbox_cause(cause, "PR_SET_NO_NEW_PRIVS: %s",
		    strerror(errno)));
	return (0);
}
