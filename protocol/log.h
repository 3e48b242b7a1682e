/* log.h: levelled one-line logging shared by every layer of the daemon. */
#ifndef CELLBLOCK_LOG_H
#define CELLBLOCK_LOG_H

#include <stdio.h>

#define LEVEL_ERROR	0
#define LEVEL_WARN	1
#define LEVEL_INFO	2
#define LEVEL_DEBUG	3

/* protocol/log.c */
typedef char	*log_filter_fn(const char *);	/* a new string, or NULL */
typedef int	 log_session_fn(const char *);	/* 1: names a session */
void	log_open(int, FILE *);
void	log_set_format(int);
void	log_set_filter(log_filter_fn *);
void	log_set_session(log_session_fn *);
int	log_enabled(int);
void	log_write(int, const char *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));

#define log_error(...)	log_write(LEVEL_ERROR, __func__, __VA_ARGS__)
#define log_warn(...)	log_write(LEVEL_WARN, __func__, __VA_ARGS__)
#define log_info(...)	log_write(LEVEL_INFO, __func__, __VA_ARGS__)
#define log_debug(...)	do {						\
	if (log_enabled(LEVEL_DEBUG))					\
		log_write(LEVEL_DEBUG, __func__, __VA_ARGS__);		\
} while (0)

#endif
