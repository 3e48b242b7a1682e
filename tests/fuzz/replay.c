/* replay.c: run a fuzz harness over saved inputs, without libFuzzer. */
/*
 * Usage: fuzz-replay-TARGET DIR|FILE ...
 *
 * Feeds every file (a directory's in name order) to the harness's
 * LLVMFuzzerTestOneInput, naming each first so that a crash says which.
 * This is how make test keeps the corpus and every crash the fuzzer ever
 * found (tests/fuzz/crashes/TARGET/) as regression tests; built by the
 * normal compiler, and with the sanitizers under make asan.
 */

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "base.h"
#include "fuzz.h"

static int	replay_file(const char *);
static int	replay_dir(const char *, size_t *);
static int	replay_cmp(const struct dirent **, const struct dirent **);

/* The whole file, then the harness on it; -1 if it cannot be read. */
static int
replay_file(const char *path)
{
	FILE		*f;
	struct stat	 sb;
	uint8_t		*buf;
	size_t		 len;

	if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &sb) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (f != NULL)
			fclose(f);
		return (-1);
	}
	if (!S_ISREG(sb.st_mode)) {
		fprintf(stderr, "%s: not a file\n", path);
		fclose(f);
		return (-1);
	}
	/* One more byte than needed, so an empty file is not malloc(0). */
	buf = xmalloc(sb.st_size + 1);
	len = fread(buf, 1, sb.st_size, f);
	fclose(f);
	if (len != (size_t)sb.st_size) {
		fprintf(stderr, "%s: short read\n", path);
		free(buf);
		return (-1);
	}
	fprintf(stderr, "replay %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return (0);
}

static int
replay_cmp(const struct dirent **a, const struct dirent **b)
{
	return (strcmp((*a)->d_name, (*b)->d_name));
}

static int
replay_dir(const char *dir, size_t *count)
{
	struct dirent	**names;
	char		 *path;
	int		  n, i, r = 0;

	if ((n = scandir(dir, &names, NULL, replay_cmp)) == -1) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return (-1);
	}
	for (i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			xasprintf(&path, "%s/%s", dir, names[i]->d_name);
			if (replay_file(path) != 0)
				r = -1;
			else
				(*count)++;
			free(path);
		}
		free(names[i]);
	}
	free(names);
	return (r);
}

int
main(int argc, char **argv)
{
	struct stat	 sb;
	size_t		 count = 0;
	int		 i, r = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE ...\n", argv[0]);
		return (2);
	}
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &sb) != 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			r = 1;
		} else if (S_ISDIR(sb.st_mode)) {
			if (replay_dir(argv[i], &count) != 0)
				r = 1;
		} else if (replay_file(argv[i]) != 0)
			r = 1;
		else
			count++;
	}
	printf("replayed %zu inputs\n", count);
	return (r);
}
