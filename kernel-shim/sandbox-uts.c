/* sandbox-uts.c: UTS namespace: the session's hostname (pid 1, before capabilities go). */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

#define UTS_HOSTNAME_MAX	63	/* a DNS label; the kernel takes 64 */

/*
 * The kernel takes any 64 bytes; this keeps to letters, digits and "-._"
 * so the name is also safe in the generated /etc/hosts (no blanks, no
 * newline, no "#") and cannot pass for an option.
 */
int
sandbox_uts_valid_hostname(const char *name)
{
	size_t	i, len;

	if (name == NULL || (len = strlen(name)) == 0 ||
	    len > UTS_HOSTNAME_MAX || name[0] == '-' || name[0] == '.')
		return (0);
	for (i = 0; i < len; i++) {
		if ((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') ||
		    strchr("-._", name[i]) != NULL)
			continue;
		return (0);
	}
	return (1);
}

/* Needs the new UTS namespace and its capabilities: before dropping them. */
int
sandbox_uts_hostname(const struct sandbox_plan *plan, char **cause)
{
	if (!sandbox_uts_valid_hostname(plan->hostname))
		return (sandbox_cause(cause, "hostname: invalid name"));
	if (sethostname(plan->hostname, strlen(plan->hostname)) != 0)
		return (sandbox_cause(cause, "sethostname: %s",
		    strerror(errno)));
	return (0);
}
