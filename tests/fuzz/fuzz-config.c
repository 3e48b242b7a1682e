/* fuzz-config.c: fuzz the daemon's config-file parser (server/config.c). */
/*
 * Input: a config file (`key = value` lines). It is parsed over the
 * defaults with config_parse, as config_load does for a path.
 *
 * Oracles: what was accepted is in range (levels, CPUs, strings set); and
 * config_parse_size, given the whole input when it is one line, agrees
 * with a reference parser that refuses what does not fit in 64 bits.
 */

#include <ctype.h>
#include <string.h>

#include "server.h"
#include "fuzz.h"

static int	fuzz_ref_size(const char *, size_t *);
static void	fuzz_sizes(const uint8_t *, size_t);

/* Digits, then K, M or G (powers of 1024), then an optional B. */
static int
fuzz_ref_size(const char *s, size_t *out)
{
	static const char	*suffixes = "KMG";
	const char		*p;
	uint64_t		 v = 0, mul = 1;

	if (!isdigit((u_char)*s))
		return (-1);
	for (; isdigit((u_char)*s); s++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return (-1);
	}
	if (*s != '\0' && (p = strchr(suffixes, toupper((u_char)*s))) != NULL) {
		mul = (uint64_t)1 << (10 * (p - suffixes + 1));
		s++;
	}
	if (*s == 'B' || *s == 'b')
		s++;
	if (*s != '\0' || __builtin_mul_overflow(v, mul, &v))
		return (-1);
	*out = v;
	return (0);
}

static void
fuzz_sizes(const uint8_t *data, size_t len)
{
	char	*s;
	size_t	 got, want;
	int	 r;

	if (len > 64 || memchr(data, '\0', len) != NULL ||
	    memchr(data, '\n', len) != NULL)
		return;
	s = xstrndup((const char *)data, len);
	r = config_parse_size(s, &got);
	FUZZ_CHECK(r == fuzz_ref_size(s, &want));
	if (r == 0)
		FUZZ_CHECK(got == want);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char	*cause = NULL;

	config_defaults();
	if (config_parse((const char *)data, len, "fuzz.conf", &cause) != 0) {
		FUZZ_CHECK(cause != NULL && strncmp(cause, "fuzz.conf:", 10) == 0);
		free(cause);
	} else {
		FUZZ_CHECK(cfg.ip != NULL && cfg.transport != NULL &&
		    cfg.python != NULL && cfg.rootfs != NULL);
		FUZZ_CHECK(cfg.log_level >= LEVEL_ERROR &&
		    cfg.log_level <= LEVEL_DEBUG);
		FUZZ_CHECK(cfg.limits.cpu_millis >= 10 &&
		    cfg.limits.cpu_millis <= 1024 * 1000);
		FUZZ_CHECK(cfg.allow_weaker == 0 || cfg.allow_weaker == 1);
	}
	fuzz_sizes(data, len);
	return (0);
}
