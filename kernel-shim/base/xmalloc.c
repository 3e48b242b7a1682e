/* xmalloc.c: allocation wrappers that die on exhaustion, and fatal exits. */
/*
 * Running out of memory is not an error the daemon can usefully report to
 * anyone, so these never return NULL. A zero size is rounded up to one byte
 * rather than treated as a bug: sizes often come from the wire, and an
 * empty frame must not be able to kill the daemon.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* vasprintf, program_invocation_short_name */
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

static void	 xvwarn(int, const char *, va_list)
		     __attribute__((format(printf, 2, 0)));

void *
xmalloc(size_t size)
{
	void	*ptr;

	if ((ptr = malloc(size == 0 ? 1 : size)) == NULL)
		fatalx("xmalloc: allocating %zu bytes: %s", size,
		    strerror(errno));
	return (ptr);
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void	*ptr;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if ((ptr = calloc(nmemb, size)) == NULL)
		fatalx("xcalloc: allocating %zu * %zu bytes: %s", nmemb, size,
		    strerror(errno));
	return (ptr);
}

void *
xrealloc(void *ptr, size_t size)
{
	void	*new;

	/* realloc(p, 0) may free p and return NULL: never ask for that. */
	if ((new = realloc(ptr, size == 0 ? 1 : size)) == NULL)
		fatalx("xrealloc: allocating %zu bytes: %s", size,
		    strerror(errno));
	return (new);
}

/* n elements of size bytes, refusing a product that overflows. */
void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void	*new;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if ((new = reallocarray(ptr, nmemb, size)) == NULL)
		fatalx("xreallocarray: allocating %zu * %zu bytes: %s", nmemb,
		    size, strerror(errno));
	return (new);
}

char *
xstrdup(const char *s)
{
	char	*cp;

	if ((cp = strdup(s)) == NULL)
		fatalx("xstrdup: %s", strerror(errno));
	return (cp);
}

/* Copies at most n bytes and always terminates; s need not be. */
char *
xstrndup(const char *s, size_t n)
{
	char	*cp;

	if ((cp = strndup(s, n)) == NULL)
		fatalx("xstrndup: %s", strerror(errno));
	return (cp);
}

int
xvasprintf(char **ret, const char *fmt, va_list ap)
{
	int	n;

	if ((n = vasprintf(ret, fmt, ap)) < 0)
		fatalx("xvasprintf: %s", strerror(errno));
	return (n);
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = xvasprintf(ret, fmt, ap);
	va_end(ap);
	return (n);
}

char *
xprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, fmt);
	xvasprintf(&s, fmt, ap);
	va_end(ap);
	return (s);
}

/*
 * Allocates nothing (the allocators call this when memory is gone) and
 * writes the line with one call, so lines from processes sharing stderr do
 * not interleave.
 */
static void
xvwarn(int errnum, const char *fmt, va_list ap)
{
	char	msg[1024];

	vsnprintf(msg, sizeof msg, fmt, ap);
	fprintf(stderr, "%s: %s%s%s\n", program_invocation_short_name, msg,
	    errnum != 0 ? ": " : "", errnum != 0 ? strerror(errnum) : "");
	fflush(stderr);
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	errnum = errno;

	va_start(ap, fmt);
	xvwarn(errnum, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	xvwarn(0, fmt, ap);
	va_end(ap);
	exit(1);
}
