/* server.h: the daemon (cellblockd) and the CLI (cellblock), file by file. */
#ifndef CELLBLOCK_SERVER_H
#define CELLBLOCK_SERVER_H

#include <sys/types.h>
#include <sys/queue.h>
#include <stdio.h>

#include <czmq.h>
#include <jansson.h>

#include "log.h"
#include "protocol.h"
#include "sessions.h"

#ifndef nitems
#define nitems(a)	(sizeof (a) / sizeof (a)[0])
#endif

#define CELLBLOCK_KERNEL_NAME	"cellblock"
#define CELLBLOCK_DISPLAY_NAME	"Python 3 (cellblock)"

/* Exit codes shared by every CLI command (documented in cellblock.1). */
#define EXIT_OK		0
#define EXIT_FAILED	1	/* the command ran and failed (code raised) */
#define EXIT_USAGE	2	/* bad arguments */
#define EXIT_NODAEMON	3	/* no daemon could be reached or started */
#define EXIT_NOSESSION	4	/* no such session */
#define EXIT_DENIED	5	/* the session is not yours */

/* server/config.c */
struct config {
	char	*ip;		/* address endpoints bind, 127.0.0.1 */
	char	*transport;	/* tcp or ipc */
	size_t	 max_message;	/* bytes; larger wire messages are dropped */
	int	 log_level;
	char	*python;	/* interpreter the runner uses */
	char	*rootfs;	/* "" = the host's /usr */
	size_t	 uid_base;
	size_t	 uid_count;
	int	 allow_weaker;
	size_t	 max_stream;	/* stream bytes per execute */
	size_t	 max_display;	/* bytes of one display payload */
	size_t	 idle_timeout;	/* seconds idle before hibernation, 0: never */
	size_t	 checkpoint_interval; /* seconds between checkpoints of a
				   changed live session, 0: never */
	size_t	 max_sessions;
	size_t	 max_user_sessions;
	size_t	 max_user_ckpt;	/* bytes of newest checkpoints per owner */
	size_t	 min_free_memory; /* below it, reap the least recently used */
	int	 restart_from_checkpoint; /* after a crash; no: start clean */
	int	 zygote;	/* fork sessions from a preloaded interpreter */
	struct session_limits limits;	/* defaults for new sessions */
};
extern struct config cfg;
void		 config_defaults(void);
int		 config_set(const char *, const char *, char **);
int		 config_load(const char *, char **);
int		 config_parse(const char *, size_t, const char *, char **);
int		 config_parse_size(const char *, size_t *);
int		 config_limits(json_t *, struct session_limits *, char **);

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

/* server/heartbeat.c */
int		 heartbeat_start(char **);
void		 heartbeat_stop(void);
int		 heartbeat_bind(const char *, char **, char **);
void		 heartbeat_unbind(const char *);

/* server/endpoint.c */
enum { EP_SHELL, EP_CONTROL, EP_STDIN };
struct endpoint {
	struct session	*session;	/* NULL: the shared endpoint */
	struct conninfo	 ci;
	struct sign	*sign;
	struct wire	*shell;
	struct wire	*control;
	struct wire	*stdin_;
	struct wire	*iopub;
	char		*hb;
	char		*path;		/* its connection file */
	int		 closed;	/* freed from the loop soon */
	int64_t		 drop_window;	/* ms: start of this drop-log second */
	u_int		 drop_logged;	/* drops logged one by one in it */
	u_int		 drop_quiet;	/* drops counted, not yet logged */
	int		 drop_timer;	/* logs them; armed while drop_quiet */
	char		 drop_last[160];	/* the last quiet drop's cause */
};
extern struct endpoint *endpoint_shared;
struct endpoint	*endpoint_new(struct session *, const struct conninfo *,
		     char **);
void		 endpoint_default_ci(struct conninfo *, const char *);
void		 endpoint_destroy(struct endpoint **);
void		 endpoint_close(struct endpoint *);
void		 endpoint_reap_all(void);
int		 endpoint_write_file(struct endpoint *, const char *, uid_t,
		     char **);
void		 endpoint_send(struct endpoint *, int, const struct jmsg_out *);
void		 endpoint_publish(struct endpoint *, const struct jmsg_out *);

/* server/kernel.c */
void		 kernel_receive(struct endpoint *, int, struct jmsg *);
int		 kernel_start(struct session *, char **);
void		 kernel_restart(struct session *, const char *);
void		 kernel_interrupt(struct session *);
void		 kernel_end(struct session *, const char *);
void		 kernel_reaped(pid_t, int);
void		 kernel_forget_endpoint(struct session *, struct endpoint *);
json_t		*kernel_describe(struct session *);
struct session	*kernel_new_session(const char *, uid_t,
		     const struct conninfo *, const struct session_limits *,
		     char **);
struct session	*kernel_make_session(const char *, uid_t,
		     const struct conninfo *, const struct session_limits *,
		     const char *, uid_t, int, char **);
void		 kernel_shutdown_all(void);
void		 kernel_pump_session(struct session *);
void		 kernel_watch_channel(struct session *);
void		 kernel_stop_session(struct session *, const char *);
void		 kernel_rmtree(const char *);

/* server/lifecycle.c */
void		 lifecycle_start(void);
int		 lifecycle_checkpoint(struct session *, int, void *, char **);
void		 lifecycle_on_checkpoint_done(struct session *, json_t *);
int		 lifecycle_restore(struct session *);
void		 lifecycle_on_restore_done(struct session *, json_t *);
json_t		*lifecycle_lost_note(struct session *);
json_t		*lifecycle_describe(struct session *);
void		 lifecycle_save(struct session *);
void		 lifecycle_forget(struct session *);
void		 lifecycle_load_all(void);
void		 lifecycle_checkpoint_all(int);
void		 lifecycle_drop_checkpoints(struct session *);
json_t		*lifecycle_fork(struct session *, const char *, uid_t, void *);

/* server/control.c */
int		 control_start(const char *, char **);
void		 control_stop(void);
void		 control_session_ended(struct session *, const char *);
void		 control_answer(void *, json_t *);
json_t		*control_parse_request(const char *, size_t, size_t *, char **);

/* server/cellblockd.c */
extern zloop_t	*server_loop;
extern char	*server_state_dir;
extern char	*server_shim_path;
extern char	*server_runner_path;
extern char	*server_zygote_lib;
extern uid_t	 server_uid;
void		 server_exit(const char *);

/* server/client.c (CLI) */
struct client;
int		 client_connect(const char *, int, char **);
json_t		*client_call(int, json_t *, char **);
int		 client_send(int, json_t *, char **);
json_t		*client_recv(int, int, char **);
int		 client_exit_code(json_t *);
int		 client_command(json_t *, json_t **);
extern int	 client_timeout;
const char	*client_state_dir(void);
int		 client_state_dir_set(void);
void		 client_set_state_dir(const char *);

/* server/jclient.c (CLI: a Jupyter client over ZeroMQ) */
struct jclient;
struct jclient	*jclient_new(const struct conninfo *, const char *, char **);
void		 jclient_destroy(struct jclient **);
int		 jclient_wait_ready(struct jclient *, int, char **);
int		 jclient_execute(struct jclient *, const char *, int, int);

/* server/cmd-*.c: one CLI command per file */
struct cmd_entry {
	const char	*name;
	const char	*usage;
	int		 (*exec)(int, char **);
};
extern const struct cmd_entry cmd_new_entry;
extern const struct cmd_entry cmd_ls_entry;
extern const struct cmd_entry cmd_run_entry;
extern const struct cmd_entry cmd_interrupt_entry;
extern const struct cmd_entry cmd_restart_entry;
extern const struct cmd_entry cmd_kill_entry;
extern const struct cmd_entry cmd_checkpoint_entry;
extern const struct cmd_entry cmd_fork_entry;
extern const struct cmd_entry cmd_attach_entry;
extern const struct cmd_entry cmd_kernelspec_entry;
void		 cmd_usage(const struct cmd_entry *) __attribute__((noreturn));

/* server/wire.c */
#define WIRE_IN		0x1
#define WIRE_OUT	0x2
#define WIRE_ERR	0x4
enum wire_kind { WIRE_ROUTER, WIRE_PUB, WIRE_ECHO };
struct wire;
struct wire_conn;
typedef void	 wire_io_cb(int, int, void *);
typedef void	 wire_msg_cb(struct wire *, zmsg_t *, void *);
/* A loop to run sockets in, and its budget for unfinished messages. */
struct wire_loop {
	void	*(*add)(struct wire_loop *, int, int, wire_io_cb *, void *);
	void	 (*set)(struct wire_loop *, void *, int);
	void	 (*remove)(struct wire_loop *, void *);
	void	*data;				/* the loop's own */
	void	*data2;
	TAILQ_HEAD(, wire_conn) conns;		/* every connection in it */
	size_t	 held;				/* unfinished messages, bytes */
	size_t	 budget;
	u_char	*buf;				/* one read's */
};
extern struct wire_loop wire_main;
void		 wire_loop_init(struct wire_loop *, size_t);
void		 wire_loop_free(struct wire_loop *);
struct wire	*wire_new(struct wire_loop *, enum wire_kind, const char *,
		     size_t, wire_msg_cb *, void *, char **);
void		 wire_destroy(struct wire **);
const char	*wire_endpoint(struct wire *);
void		 wire_set_label(struct wire *, const char *);
int		 wire_send(struct wire *, zmsg_t **);
u_int		 wire_pub_dropped(struct wire *);
u_int		 wire_connections(struct wire *);

#endif
