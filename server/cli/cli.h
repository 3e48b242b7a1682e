/* cli.h: the cellblock CLI, file by file. */
/*
 * The CLI talks to the daemon over its control socket (client.c) and to a
 * session as a Jupyter client (jclient.c); of the daemon it knows only
 * shared.h: names, exit codes and connection files.
 */
#ifndef CELLBLOCK_CLI_H
#define CELLBLOCK_CLI_H

#include <sys/types.h>

#include <czmq.h>		/* zclock, zsys: the CLI is a czmq program */
#include <jansson.h>

#include "base.h"
#include "shared.h"

/* cli/client.c: the control socket client */
struct client;
int		 client_connect(const char *, int, char **);
json_t		*client_call(int, json_t *, char **);
int		 client_send(int, json_t *, char **);
json_t		*client_recv(int, int, char **);
int		 client_exit_code(json_t *);
int		 client_command(json_t *, json_t **);
int		 client_result(json_t *, char *, json_t **);
json_t		*client_arg(const char *, const char *);
extern int	 client_timeout;
extern size_t	 client_reply_max;
const char	*client_state_dir(void);
int		 client_state_dir_set(void);
void		 client_set_state_dir(const char *);

/* cli/jclient.c: a Jupyter client over ZeroMQ */
struct jclient;
struct jclient	*jclient_new(const struct conninfo *, const char *, char **);
void		 jclient_destroy(struct jclient **);
int		 jclient_wait_ready(struct jclient *, int, char **);
int		 jclient_execute(struct jclient *, const char *, int, int);
int		 jclient_wait(struct jclient *, int);
/* ms between run --timeout's interrupt and the restart (as cellblockd's). */
#define JCLIENT_TIMEOUT_GRACE	2000
/* What jclient_execute saw. */
#define JCLIENT_OK		0	/* the cell ran and its reply was ok */
#define JCLIENT_ERROR		1	/* the cell raised (or was aborted) */
#define JCLIENT_INTERRUPTED	2	/* timed out; the interrupt ended it */
#define JCLIENT_STUCK		3	/* timed out; still running after
					   the interrupt's grace period */

/* cli/cmd-*.c: one command per file */
struct cmd_entry {
	const char	*name;
	const char	*usage;
	int		 (*exec)(int, char **);
};
extern const struct cmd_entry cmd_new_entry;
extern const struct cmd_entry cmd_ls_entry;
extern const struct cmd_entry cmd_run_entry;
extern const struct cmd_entry cmd_cp_entry;
extern const struct cmd_entry cmd_interrupt_entry;
extern const struct cmd_entry cmd_restart_entry;
extern const struct cmd_entry cmd_kill_entry;
extern const struct cmd_entry cmd_checkpoint_entry;
extern const struct cmd_entry cmd_fork_entry;
extern const struct cmd_entry cmd_attach_entry;
extern const struct cmd_entry cmd_kernelspec_entry;
extern const struct cmd_entry cmd_audit_entry;
extern const struct cmd_entry cmd_stats_entry;
extern const struct cmd_entry cmd_mcp_entry;
extern const struct cmd_entry cmd_token_entry;
void		 cmd_usage(const struct cmd_entry *) __attribute__((noreturn));

#endif
