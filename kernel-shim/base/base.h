/* base.h: the floor every program links: allocation, fatal errors, logging, nitems, no-follow files. */
/*
 * Nothing here knows of Jupyter, sessions or sandboxes, and nothing here
 * includes anything but libc; protocol/, sessions/, server/ and the shim
 * build on it (docs/ARCHITECTURE.md, "The base layer"). Errors follow the
 * house tiers: the x*alloc wrappers die on exhaustion, fatal/fatalx are
 * for the impossible, and the file helpers return -1 with an allocated
 * *cause, as everything that touches the outside does.
 */
#ifndef CELLBLOCK_BASE_H
#define CELLBLOCK_BASE_H

#include <sys/types.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef nitems
#define nitems(a)	(sizeof (a) / sizeof (a)[0])
#endif

/* base/xmalloc.c */
void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xrealloc(void *, size_t);
void		*xreallocarray(void *, size_t, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xvasprintf(char **, const char *, va_list)
		     __attribute__((format(printf, 2, 0)));
int		 xasprintf(char **, const char *, ...)
		     __attribute__((format(printf, 2, 3)));
char		*xprintf(const char *, ...)
		     __attribute__((format(printf, 1, 2)));
void		 fatal(const char *, ...)
		     __attribute__((format(printf, 1, 2), noreturn));
void		 fatalx(const char *, ...)
		     __attribute__((format(printf, 1, 2), noreturn));

/* base/log.c */
#define LEVEL_ERROR	0
#define LEVEL_WARN	1
#define LEVEL_INFO	2
#define LEVEL_DEBUG	3

typedef char	*log_filter_fn(const char *);	/* a new string, or NULL */
typedef int	 log_session_fn(const char *);	/* 1: names a session */
void		 log_open(int, FILE *);
void		 log_set_format(int);
void		 log_set_filter(log_filter_fn *);
void		 log_set_session(log_session_fn *);
int		 log_enabled(int);
void		 log_write(int, const char *, const char *, ...)
		     __attribute__((format(printf, 3, 4)));

/*
 * A complaint anyone outside can repeat (a bad token, a refused peer):
 * the first lines of each second logged, the rest counted, so a flood
 * cannot fill the disk or the loop with writes.
 */
struct log_limit {
	uint64_t	 window;	/* ms: when this second began */
	u_int		 lines;		/* logged in it */
	u_int		 quiet;		/* counted in it, not logged */
};
int		 log_limit(struct log_limit *, uint64_t, u_int, u_int *);

#define log_error(...)	log_write(LEVEL_ERROR, __func__, __VA_ARGS__)
#define log_warn(...)	log_write(LEVEL_WARN, __func__, __VA_ARGS__)
#define log_info(...)	log_write(LEVEL_INFO, __func__, __VA_ARGS__)
#define log_debug(...)	do {						\
	if (log_enabled(LEVEL_DEBUG))					\
		log_write(LEVEL_DEBUG, __func__, __VA_ARGS__);		\
} while (0)

/* base/file.c: files in directories someone else controls */
#define FILE_TREE_DEPTH	4096	/* file_remove_tree gives up below this */

int		 file_open_dir(const char *, const char *, char **);
int		 file_open_at(int, const char *, const char *, int, mode_t,
		     char **);
int		 file_open_regular(int, const char *, const char *, int,
		     char **);
int		 file_remove_tree(const char *, char **);
int		 file_write_atomic(const char *, const void *, size_t, mode_t,
		     uid_t, char **);
int		 file_write_atomic_nosync(const char *, const void *, size_t,
		     mode_t, uid_t, char **);
int		 file_make_spare(const char *, mode_t, char **);
int		 file_write_atomic_spare(const char *, const char *,
		     const void *, size_t, mode_t, uid_t, int, char **);

#endif /* CELLBLOCK_BASE_H */
