/* check.h: the counting CHECK of the unit-test programs (bin/test-*). */
#ifndef CELLBLOCK_CHECK_H
#define CELLBLOCK_CHECK_H

#include <stdio.h>

/*
 * Header-only on purpose: each test program is one file that includes
 * this once, so the counters are that program's own and nothing links
 * into the daemon. A failed check prints where and what, then the program
 * goes on, so one run shows every failure; check_report prints the
 * "N passed, N failed" line the suite reads and gives the exit status.
 */
static int	check_passed, check_failed;

#define CHECK(e)	check_one((e), #e, __FILE__, __LINE__)

static inline void
check_one(int ok, const char *what, const char *file, int line)
{
	if (ok) {
		check_passed++;
		return;
	}
	check_failed++;
	printf("FAIL %s:%d: %s\n", file, line, what);
}

static inline int
check_report(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return (check_failed != 0);
}

#endif
