/* sandbox-rlimits.c: resource limits of the interpreter, one row per limit. */

#include <sys/resource.h>

#include <errno.h>
#include <string.h>

#include "sandbox.h"

/*
 * Resource limits.  Legend: resource; the value, or PLAN_NOFILE /
 * PLAN_FSIZE for the plan's; why.
 */
#define PLAN_NOFILE	(~0ULL - 1)
#define PLAN_FSIZE	(~0ULL - 2)
static const struct {
	int		 resource;
	const char	*name;
	uint64_t	 value;
	const char	*why;
} rlimits_table[] = {
	{ RLIMIT_CORE, "core", 0,
	  "a core of the interpreter would carry the session's data to disk" },
	{ RLIMIT_NOFILE, "nofile", PLAN_NOFILE,
	  "bounds the kernel memory a session pins in open files" },
	{ RLIMIT_FSIZE, "fsize", PLAN_FSIZE,
	  "the work dir is on the host's disk; CPython ignores SIGXFSZ, so a "
	  "write fails with EFBIG (\"File too large\")" },
	{ RLIMIT_MSGQUEUE, "msgqueue", 0,
	  "POSIX message queues are kernel memory outside the memory cgroup" },
};

/*
 * Soft and hard limits alike, so the interpreter cannot raise them.  A
 * limit above the inherited hard limit cannot be set from inside a user
 * namespace; it is clamped to it, which is the stricter of the two.  A
 * plan without nofile or fsize is an error rather than "unlimited".
 */
int
sandbox_rlimits_set(const struct sandbox_plan *plan, char **cause)
{
	struct rlimit	rl, old;
	uint64_t	v;
	size_t		i;

	if (plan->nofile == 0 || plan->fsize_bytes == 0)
		return (sandbox_cause(cause, "rlimits: plan has no nofile or "
		    "fsize limit"));
	for (i = 0; i < nitems(rlimits_table); i++) {
		v = rlimits_table[i].value;
		if (v == PLAN_NOFILE)
			v = plan->nofile;
		else if (v == PLAN_FSIZE)
			v = plan->fsize_bytes;
		if (getrlimit(rlimits_table[i].resource, &old) != 0)
			return (sandbox_cause(cause, "getrlimit %s: %s",
			    rlimits_table[i].name, strerror(errno)));
		if (old.rlim_max != RLIM_INFINITY && v > old.rlim_max)
			v = old.rlim_max;
		rl.rlim_cur = rl.rlim_max = v;
		if (setrlimit(rlimits_table[i].resource, &rl) != 0)
			return (sandbox_cause(cause, "setrlimit %s: %s",
			    rlimits_table[i].name, strerror(errno)));
	}
	return (0);
}
