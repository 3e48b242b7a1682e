/* log.c: one line per event, with a level, to stderr or the daemon's log. */
/*
 * Two formats: text (time level func: message) for people, and json (one
 * object per line: time, level, func, session, event) for log shippers.
 * Every line passes through a filter the daemon installs first, the
 * secret redaction (server/redact.c): a log outlives what it describes.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "log.h"

static int		 log_level = LEVEL_INFO;
static FILE		*log_file;
static int		 log_json;
static log_filter_fn	*log_filter;
static log_session_fn	*log_is_session;

static const char *log_names[] = { "error", "warn", "info", "debug" };

void
log_open(int level, FILE *f)
{
	log_level = level;
	log_file = f;
	setvbuf(f, NULL, _IOLBF, 0);
}

void
log_set_format(int json)
{
	log_json = json;
}

void
log_set_filter(log_filter_fn *fn)
{
	log_filter = fn;
}

void
log_set_session(log_session_fn *fn)
{
	log_is_session = fn;
}

int
log_enabled(int level)
{
	return (level <= log_level);
}

/* Messages about a session start "NAME: "; json gives it its own key. */
static size_t
log_session_prefix(const char *msg)
{
	const char	*colon = strstr(msg, ": ");
	char		*name;
	int		 yes;

	if (log_is_session == NULL || colon == NULL || colon == msg ||
	    colon - msg > 64 || memchr(msg, ' ', colon - msg) != NULL)
		return (0);
	if ((name = strndup(msg, colon - msg)) == NULL)
		return (0);
	yes = log_is_session(name);
	free(name);
	return (yes ? (size_t)(colon - msg) : 0);
}

static void
log_put_json(FILE *f, const char *when, int level, const char *func,
    const char *msg)
{
	size_t	 n = log_session_prefix(msg);
	json_t	*o;
	char	*line;

	o = json_pack("{s:s,s:s,s:s}", "time", when, "level", log_names[level],
	    "func", func);
	if (o == NULL)
		return;
	if (n > 0) {
		json_object_set_new(o, "session", json_stringn(msg, n));
		msg += n + 2;
	}
	/* Not UTF-8 (bytes a session printed): keep the line, escaped. */
	if (json_object_set_new(o, "event", json_string(msg)) != 0)
		json_object_set_new(o, "event", json_string("(not UTF-8)"));
	if ((line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII)) != NULL) {
		fprintf(f, "%s\n", line);
		free(line);
	}
	json_decref(o);
}

/*
 * One event, one line: text a session printed may hold newlines and
 * terminal escapes, which must not forge lines or reach a terminal raw.
 */
static void
log_put_text(FILE *f, const char *msg)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)msg; *p != '\0'; p++) {
		if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\r')
			fputs("\\r", f);
		else if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('\n', f);
}

void
log_write(int level, const char *func, const char *fmt, ...)
{
	va_list		 ap;
	struct timespec	 ts;
	struct tm	 tm;
	char		 when[48], day[24], *msg, *clean;
	FILE		*f = log_file != NULL ? log_file : stderr;
	int		 n;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when, sizeof when, "%s.%03dZ", day,
	    (int)(ts.tv_nsec / 1000000));
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n == -1)
		return;		/* out of memory while logging: drop the line */
	if (log_filter != NULL && (clean = log_filter(msg)) != NULL) {
		free(msg);
		msg = clean;
	}
	if (log_json)
		log_put_json(f, when, level, func, msg);
	else {
		fprintf(f, "%s %s %s: ", when, log_names[level], func);
		log_put_text(f, msg);
	}
	free(msg);
}
