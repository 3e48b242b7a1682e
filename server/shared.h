/* shared.h: what cellblockd and the cellblock CLI agree on: names, exit codes, connection files. */
/*
 * The daemon (server/) and the CLI (server/cli/) are two programs; this is
 * all either may know of the other. Everything else of the daemon is in
 * server.h, everything else of the CLI in cli/cli.h.
 */
#ifndef CELLBLOCK_SHARED_H
#define CELLBLOCK_SHARED_H

#include <sys/types.h>

#include <jansson.h>

#define CELLBLOCK_KERNEL_NAME	"cellblock"
#define CELLBLOCK_DISPLAY_NAME	"Python 3 (cellblock)"
/* The longest session name; server.h checks it is sessions.h's. */
#define CELLBLOCK_NAME_MAX	64

/*
 * Exit codes shared by every CLI command (documented in cellblock.1); the
 * daemon puts them in its control socket answers as "code".
 */
#define EXIT_OK		0
#define EXIT_FAILED	1	/* the command ran and failed (code raised) */
#define EXIT_USAGE	2	/* bad arguments */
#define EXIT_NODAEMON	3	/* no daemon could be reached or started */
#define EXIT_NOSESSION	4	/* no such session */
#define EXIT_DENIED	5	/* the session is not yours */
#define EXIT_TIMEOUT	6	/* run --timeout: the cell was interrupted,
				   or the interpreter restarted */

/* server/connfile.c */
enum { PORT_SHELL, PORT_IOPUB, PORT_STDIN, PORT_CONTROL, PORT_HB, PORT_N };
struct conninfo {
	char	transport[8];
	char	ip[256];
	int	ports[PORT_N];
	char	key[256];
	char	scheme[32];
};
extern const char *connfile_port_names[PORT_N];
int		 connfile_from_json(json_t *, struct conninfo *, char **);
json_t		*connfile_to_json(const struct conninfo *);
int		 connfile_read(const char *, struct conninfo *, char **);
int		 connfile_write(const char *, const struct conninfo *, uid_t,
		     char **);
char		*connfile_endpoint(const struct conninfo *, int);
char		*connfile_state_dir(const char *);

#endif
