/* log.c: one line per event, with a level, to stderr or the daemon's log. */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base.h"

static int	 log_level = LEVEL_INFO;
static FILE	*log_file;

static const char *log_names[] = { "error", "warn", "info", "debug" };

void
log_open(int level, FILE *f)
{
	log_level = level;
	log_file = f;
	setvbuf(f, NULL, _IOLBF, 0);
}

int
log_enabled(int level)
{
	return (level <= log_level);
}

void
log_write(int level, const char *func, const char *fmt, ...)
{
	va_list		 ap;
	struct timespec	 ts;
	struct tm	 tm;
	char		 when[32];
	FILE		*f = log_file != NULL ? log_file : stderr;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(f, "%s.%03ldZ %s %s: ", when, ts.tv_nsec / 1000000,
	    log_names[level], func);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
}
