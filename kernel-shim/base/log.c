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

#include "base.h"

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

/*
 * A JSON string of s. The base layer links no JSON library; this is all
 * the encoding a log line needs. Bytes that are not UTF-8 (what a session
 * printed) become U+FFFD, so every line stays parseable.
 */
static void
log_put_json_string(FILE *f, const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	int			 n, i;

	fputc('"', f);
	while (*p != '\0') {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p++);
		else if (*p == '\n' || *p == '\t' || *p == '\r') {
			fputs(*p == '\n' ? "\\n" : *p == '\t' ? "\\t" : "\\r", f);
			p++;
		} else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p++);
		else if (*p < 0x80)
			fputc(*p++, f);
		else {
			n = (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 :
			    (*p & 0xf8) == 0xf0 && *p < 0xf5 ? 3 : -1;
			for (i = 1; n > 0 && i <= n; i++) {
				if ((p[i] & 0xc0) != 0x80)
					n = -1;
			}
			/* Overlong forms, surrogates, past U+10FFFF. */
			if (n > 0 && ((n == 1 && *p < 0xc2) ||
			    (*p == 0xe0 && p[1] < 0xa0) ||
			    (*p == 0xed && p[1] >= 0xa0) ||
			    (*p == 0xf0 && p[1] < 0x90) ||
			    (*p == 0xf4 && p[1] >= 0x90)))
				n = -1;
			if (n < 0) {
				fputs("\\ufffd", f);
				p++;
			} else {
				fwrite(p, 1, n + 1, f);
				p += n + 1;
			}
		}
	}
	fputc('"', f);
}

static void
log_put_json(FILE *f, const char *when, int level, const char *func,
    const char *msg)
{
	size_t	 n = log_session_prefix(msg);
	char	*name;

	fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"func\":", when,
	    log_names[level]);
	log_put_json_string(f, func);
	if (n > 0 && (name = strndup(msg, n)) != NULL) {
		fputs(",\"session\":", f);
		log_put_json_string(f, name);
		free(name);
		msg += n + 2;
	}
	fputs(",\"event\":", f);
	log_put_json_string(f, msg);
	fputs("}\n", f);
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

/*
 * 1: log this one; 0: it is counted instead. now: monotonic ms; lines:
 * how many a second. *missed: how many the second before counted, once,
 * as a new second starts (0 otherwise): the caller says it in its words.
 */
int
log_limit(struct log_limit *l, uint64_t now, u_int lines, u_int *missed)
{
	*missed = 0;
	if (now - l->window >= 1000) {
		*missed = l->quiet;
		l->window = now;
		l->lines = l->quiet = 0;
	}
	if (l->lines < lines) {
		l->lines++;
		return (1);
	}
	l->quiet++;
	return (0);
}
