/* test-base.c: self-test of the base layer: allocation, logging, the no-follow file helpers. */
/*
 * No framework: CHECK counts, prints one line per failure, and main ends
 * with "N passed, N failed". Every case works in its own directory under
 * a fresh mkdtemp(3) directory, removed at the end.
 */

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "check.h"

static char	*top;

/* A path below this run's directory; the caller frees it. */
static char *
path(const char *rel)
{
	return (xprintf("%s/%s", top, rel));
}

static void
put(const char *rel, const char *text)
{
	char	*p = path(rel);
	FILE	*f;

	if ((f = fopen(p, "w")) == NULL)
		fatal("%s", p);
	fputs(text, f);
	fclose(f);
	free(p);
}

/* The file's whole text, or NULL if it cannot be read; the caller frees it. */
static char *
get(const char *rel)
{
	char	*p = path(rel), buf[4096];
	FILE	*f;
	size_t	 n;

	f = fopen(p, "r");
	free(p);
	if (f == NULL)
		return (NULL);
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (xstrdup(buf));
}

static int
exists(const char *rel)
{
	struct stat	 st;
	char		*p = path(rel);
	int		 r;

	r = lstat(p, &st) == 0;
	free(p);
	return (r);
}

static int
same(char *got, const char *want)
{
	int	r = got != NULL && strcmp(got, want) == 0;

	free(got);
	return (r);
}

static int
mentions(char **cause, const char *what)
{
	int	r = *cause != NULL && strstr(*cause, what) != NULL;

	if (!r)
		printf("     cause: %s (wanted \"%s\")\n",
		    *cause ? *cause : "(none)", what);
	free(*cause);
	*cause = NULL;
	return (r);
}

static void
mkdirs(const char *rel)
{
	char	*p = path(rel);

	if (mkdir(p, 0700) != 0)
		fatal("mkdir %s", p);
	free(p);
}

static void
link_to(const char *target, const char *rel)
{
	char	*p = path(rel);

	if (symlink(target, p) != 0)
		fatal("symlink %s", p);
	free(p);
}

static void
test_alloc(void)
{
	int	 a[7];
	char	*s;

	CHECK(nitems(a) == 7);
	s = xmalloc(0);
	CHECK(s != NULL);
	free(s);
	s = xcalloc(0, 8);
	CHECK(s != NULL);
	free(s);
	CHECK(same(xstrndup("abcdef", 3), "abc"));
	CHECK(same(xstrndup("ab", 10), "ab"));
	CHECK(xasprintf(&s, "%d-%s", 42, "x") == 4 && same(s, "42-x"));
}

static void
test_log(void)
{
	FILE	*f;
	char	 buf[1024];
	size_t	 n;

	if ((f = tmpfile()) == NULL)
		fatal("tmpfile");
	log_open(LEVEL_WARN, f);
	CHECK(log_enabled(LEVEL_WARN) && !log_enabled(LEVEL_INFO));
	log_info("hidden %d", 1);
	log_debug("hidden %d", 2);
	log_warn("shown %d", 3);
	fflush(f);
	rewind(f);
	n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	/* One line: the level, the function, the message. */
	CHECK(strstr(buf, " warn test_log: shown 3\n") != NULL);
	CHECK(strstr(buf, "hidden") == NULL);
	CHECK(strchr(buf, '\n') == buf + n - 1);
	log_open(LEVEL_INFO, stderr);
	fclose(f);
}

/* Three a second logged, the rest counted and told once, a second on. */
static void
test_log_limit(void)
{
	struct log_limit	l = { 0, 0, 0 };
	u_int			missed, logged = 0, i;

	for (i = 0; i < 10; i++)
		logged += log_limit(&l, 5000 + i, 3, &missed);
	CHECK(logged == 3 && missed == 0 && l.quiet == 7);
	CHECK(log_limit(&l, 5999, 3, &missed) == 0 && missed == 0);
	CHECK(log_limit(&l, 6000, 3, &missed) == 1 && missed == 8);
	CHECK(log_limit(&l, 6001, 3, &missed) == 1 && missed == 0);
}

static void
test_write_atomic(void)
{
	struct stat	 st;
	char		*p, *cause = NULL;

	mkdirs("w");
	put("w/outside", "precious");
	p = path("w/f");
	CHECK(file_write_atomic(p, "one", 3, 0640, (uid_t)-1, &cause) == 0);
	CHECK(same(get("w/f"), "one"));
	CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640);
	CHECK(!exists("w/f.tmp"));
	/* Replaced whole. */
	CHECK(file_write_atomic(p, "two!", 4, 0600, (uid_t)-1, &cause) == 0);
	CHECK(same(get("w/f"), "two!"));
	/* A link planted at the temporary name is removed, not written through. */
	link_to("outside", "w/f.tmp");
	CHECK(file_write_atomic(p, "three", 5, 0600, (uid_t)-1, &cause) == 0);
	CHECK(same(get("w/f"), "three"));
	CHECK(same(get("w/outside"), "precious"));
	CHECK(!exists("w/f.tmp"));
	/* Given to its owner. */
	CHECK(file_write_atomic(p, "", 0, 0600, getuid(), &cause) == 0);
	CHECK(stat(p, &st) == 0 && st.st_uid == getuid() && st.st_size == 0);
	free(p);

	/* No directory: nothing written, the cause names the temporary. */
	p = path("w/nodir/f");
	CHECK(file_write_atomic(p, "x", 1, 0600, (uid_t)-1, &cause) == -1);
	CHECK(mentions(&cause, "nodir/f.tmp: No such file or directory"));
	free(p);

	/* The rename fails (a directory is in the way): the old stays. */
	mkdirs("w/d");
	put("w/d/keep", "kept");
	p = path("w/d");
	CHECK(file_write_atomic(p, "x", 1, 0600, (uid_t)-1, &cause) == -1);
	CHECK(mentions(&cause, "w/d: "));
	CHECK(!exists("w/d.tmp") && same(get("w/d/keep"), "kept"));
	free(p);
}

/* The spare: made once, written and renamed later; gone or odd: made afresh. */
static void
test_write_spare(void)
{
	struct stat	 st, sp;
	char		*p, *spare, *fifo, *other, *cause = NULL;

	mkdirs("s");
	put("s/outside", "precious");
	p = path("s/rec");
	spare = path("s/member.tmp");
	CHECK(file_make_spare(spare, 0600, &cause) == 0);
	CHECK(stat(spare, &sp) == 0 && sp.st_size == 0 &&
	    (sp.st_mode & 0777) == 0600);
	CHECK(file_write_atomic_spare(p, spare, "one", 3, 0600, (uid_t)-1, 0,
	    &cause) == 0);
	/* The spare's inode is the file now: nothing was made. */
	CHECK(stat(p, &st) == 0 && st.st_ino == sp.st_ino);
	CHECK(same(get("s/rec"), "one") && !exists("s/member.tmp"));
	CHECK(!exists("s/rec.tmp"));
	/* Used up: the next write makes its temporary as without one. */
	CHECK(file_write_atomic_spare(p, spare, "two", 3, 0600, (uid_t)-1, 1,
	    &cause) == 0);
	CHECK(same(get("s/rec"), "two") && !exists("s/rec.tmp"));
	/* A spare with content is emptied first. */
	put("s/member.tmp", "a much longer old text");
	CHECK(file_write_atomic_spare(p, spare, "3", 1, 0600, (uid_t)-1, 0,
	    &cause) == 0);
	CHECK(same(get("s/rec"), "3"));
	/* A link where the spare was is not written through, and goes. */
	link_to("outside", "s/member.tmp");
	CHECK(file_write_atomic_spare(p, spare, "4", 1, 0600, (uid_t)-1, 0,
	    &cause) == 0);
	CHECK(same(get("s/rec"), "4") && same(get("s/outside"), "precious"));
	/* A FIFO (a write would block) is not used either, and goes. */
	fifo = path("s/member.tmp");
	CHECK(mkfifo(fifo, 0600) == 0);
	CHECK(file_write_atomic_spare(p, spare, "5", 1, 0600, (uid_t)-1, 0,
	    &cause) == 0);
	CHECK(same(get("s/rec"), "5") && !exists("s/member.tmp"));
	/* A second name for the spare (a hard link): not ours alone. */
	put("s/other", "theirs");
	other = path("s/other");
	CHECK(link(other, spare) == 0);
	free(other);
	CHECK(file_write_atomic_spare(p, spare, "6", 1, 0600, (uid_t)-1, 0,
	    &cause) == 0);
	CHECK(same(get("s/rec"), "6") && same(get("s/other"), "theirs"));
	CHECK(!exists("s/member.tmp"));
	/* No directory: the spare cannot be made, and says where. */
	free(spare);
	spare = path("s/nodir/member.tmp");
	CHECK(file_make_spare(spare, 0600, &cause) == -1);
	CHECK(mentions(&cause, "nodir/member.tmp: No such file or directory"));
	free(fifo);
	free(spare);
	free(p);
}

static void
test_open(void)
{
	char	*p, *cause = NULL;
	int	 fd, dfd;

	mkdirs("o");
	mkdirs("o/a");
	mkdirs("o/a/b");
	mkdirs("o/elsewhere");
	put("o/a/b/file", "data");
	put("o/elsewhere/secret", "secret");
	link_to("elsewhere", "o/a/link");
	link_to("../elsewhere/secret", "o/a/b/flink");
	p = path("o/fifo");
	if (mkfifo(p, 0600) != 0)
		fatal("mkfifo");
	free(p);

	p = path("o");
	/* A walk below a trusted top. */
	dfd = file_open_dir(p, "a/b", &cause);
	CHECK(dfd != -1);
	fd = file_open_regular(dfd, "a/b", "file", O_RDONLY, &cause);
	CHECK(fd != -1);
	if (fd != -1)
		close(fd);
	/* A link to a file, refused by name. */
	CHECK(file_open_regular(dfd, "a/b", "flink", O_RDONLY, &cause) == -1);
	CHECK(mentions(&cause, "a/b/flink: a symlink, refused"));
	/* One component only: no walking out with a slash or "..". */
	CHECK(file_open_at(dfd, "a/b", "../b", O_RDONLY, 0, &cause) == -1);
	CHECK(mentions(&cause, "a/b/../b: Invalid argument"));
	CHECK(file_open_at(dfd, "a/b", "..", O_RDONLY, 0, &cause) == -1);
	CHECK(mentions(&cause, "a/b/..: Invalid argument"));
	/* Creating beneath. */
	fd = file_open_at(dfd, "a/b", "new", O_WRONLY | O_CREAT | O_EXCL,
	    0600, &cause);
	CHECK(fd != -1 && write(fd, "n", 1) == 1);
	if (fd != -1)
		close(fd);
	CHECK(same(get("o/a/b/new"), "n"));
	if (dfd != -1)
		close(dfd);

	/* A directory link in the middle of the walk. */
	CHECK(file_open_dir(p, "a/link", &cause) == -1);
	CHECK(mentions(&cause, "o/a/link: a symlink, refused"));
	CHECK(file_open_dir(p, "a/missing/b", &cause) == -1);
	CHECK(mentions(&cause, "o/a/missing: No such file or directory"));
	/* top itself, and with rel NULL or "". */
	dfd = file_open_dir(p, NULL, &cause);
	CHECK(dfd != -1);
	/* A FIFO is refused, and opening it does not hang. */
	CHECK(file_open_regular(dfd, p, "fifo", O_RDONLY, &cause) == -1);
	CHECK(mentions(&cause, "/fifo: not a regular file"));
	CHECK(file_open_regular(dfd, p, "a", O_RDONLY, &cause) == -1);
	CHECK(mentions(&cause, "/a: not a regular file"));
	if (dfd != -1)
		close(dfd);
	dfd = file_open_dir(p, "", &cause);
	CHECK(dfd != -1);
	if (dfd != -1)
		close(dfd);
	free(p);
	/* The top's own last component must not be a link. */
	link_to("o", "otop");
	p = path("otop");
	CHECK(file_open_dir(p, "a", &cause) == -1);
	CHECK(mentions(&cause, "otop: a symlink, refused"));
	free(p);
}

static void
test_remove_tree(void)
{
	char	*p, *cause = NULL, rel[16];
	int	 i;

	mkdirs("r");
	mkdirs("r/keep");
	put("r/keep/file", "kept");
	mkdirs("r/t");
	mkdirs("r/t/d1");
	mkdirs("r/t/d1/d2");
	put("r/t/f", "f");
	put("r/t/d1/d2/g", "g");
	/* Links inside are removed themselves, what they point at stays. */
	link_to("../keep", "r/t/dirlink");
	link_to("../../keep/file", "r/t/d1/filelink");
	p = path("r/t");
	CHECK(file_remove_tree(p, &cause) == 0 && cause == NULL);
	CHECK(!exists("r/t"));
	CHECK(same(get("r/keep/file"), "kept"));
	/* Not there is not an error. */
	CHECK(file_remove_tree(p, &cause) == 0);
	free(p);
	/* A link as the tree itself: only the link goes. */
	link_to("keep", "r/top");
	p = path("r/top");
	CHECK(file_remove_tree(p, &cause) == 0 && !exists("r/top"));
	CHECK(same(get("r/keep/file"), "kept"));
	free(p);
	/* A single file. */
	put("r/single", "s");
	p = path("r/single");
	CHECK(file_remove_tree(p, &cause) == 0 && !exists("r/single"));
	free(p);

	/* Deeper than FILE_TREE_DEPTH: refused with a cause, not a crash. */
	p = path("r/deep");
	if (mkdir(p, 0700) != 0 || chdir(p) != 0)
		fatal("%s", p);
	for (i = 0; i < FILE_TREE_DEPTH + 2; i++) {
		snprintf(rel, sizeof rel, "d");
		if (mkdir(rel, 0700) != 0 || chdir(rel) != 0)
			fatal("deep mkdir");
	}
	if (chdir(top) != 0)
		fatal("chdir");
	CHECK(file_remove_tree(p, &cause) == -1);
	CHECK(mentions(&cause, "cannot remove all of"));
	CHECK(exists("r/deep"));
	free(p);
}

/* Clean up whatever a failed case left (the deep tree needs a shell). */
static void
cleanup(void)
{
	char	*cmd;

	xasprintf(&cmd, "rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("could not remove %s\n", top);
	free(cmd);
}

int
main(void)
{
	char	tmpl[] = "/tmp/test-base.XXXXXX";

	if ((top = mkdtemp(tmpl)) == NULL)
		fatal("mkdtemp");
	test_alloc();
	test_log();
	test_log_limit();
	test_write_atomic();
	test_write_spare();
	test_open();
	test_remove_tree();
	cleanup();
	return (check_report());
}
