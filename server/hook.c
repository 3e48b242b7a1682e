/* hook.c: the core's events, and who listens: no upcalls by name. */
/*
 * The protocol core and the incarnation supervisor sit below control.c and
 * lifecycle.c: they never call up into them. What those need to hear of
 * ("the interpreter said hello", "an incarnation is lost", "the session
 * ended", "the next start is clean") they register for here, once, at
 * start. The observers (audit.c, metrics.c) hear the rest the same way
 * (a spawn, a request running, its output and reply, lifecycle events,
 * egress records), so that no room calls them by name. Handlers run in
 * the order they were added.
 */

#include "server.h"

#define HOOK_MAX	8	/* handlers per event; more is a wiring error */

static hook_fn	*hook_table[HOOK_N][HOOK_MAX];

void
hook_add(enum hook_event ev, hook_fn *fn)
{
	size_t	i;

	for (i = 0; i < HOOK_MAX; i++) {
		if (hook_table[ev][i] == NULL) {
			hook_table[ev][i] = fn;
			return;
		}
	}
	fatalx("%s: too many handlers for event %d", __func__, ev);
}

/* The handlers' results, or'd: for HOOK_HELLO, 1 holds the queue. */
int
hook_run(enum hook_event ev, struct session *s, const void *arg)
{
	size_t	i;
	int	r = 0;

	for (i = 0; i < HOOK_MAX && hook_table[ev][i] != NULL; i++)
		r |= hook_table[ev][i](s, arg);
	return (r);
}

/* A lifecycle event of s, why, and details (taken) for the observers. */
void
hook_lifecycle(struct session *s, const char *event, const char *why,
    json_t *details)
{
	struct hook_lifecycle	ev = { event, why, details };

	hook_run(HOOK_LIFECYCLE, s, &ev);
	json_decref(details);
}
