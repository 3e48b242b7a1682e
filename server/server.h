/* server.h: the daemon (cellblockd), file by file; the CLI has cli/cli.h. */
#ifndef CELLBLOCK_SERVER_H
#define CELLBLOCK_SERVER_H

#include <sys/types.h>
#include <stdio.h>

#include <czmq.h>
#include <jansson.h>

#include "base.h"
#include "loop.h"
#include "protocol.h"
#include "sessions.h"
#include "shared.h"

_Static_assert(CELLBLOCK_NAME_MAX == SESSION_NAME_MAX,
    "the CLI's session name bound is the daemon's");

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
	zsock_t		*shell;
	zsock_t		*control;
	zsock_t		*stdin_;
	zsock_t		*iopub;
	char		*hb;
	char		*path;		/* its connection file */
	struct loop_io	*io[3];		/* EP_SHELL, EP_CONTROL, EP_STDIN */
	int		 closed;	/* freed from the loop soon */
	struct loop_timer *reap_timer;	/* frees it, once closed */
	zsock_t		*mon[2];	/* shell, control monitors */
	struct loop_io	*mon_io[2];
	uint64_t	 drop_window;	/* ms: start of this drop-log second */
	u_int		 drop_logged;	/* drops logged one by one in it */
	u_int		 drop_quiet;	/* drops counted, not yet logged */
	struct loop_timer *drop_timer;	/* logs them; armed while drop_quiet */
	char		 drop_last[160];	/* the last quiet drop's cause */
};
extern struct endpoint *endpoint_shared;
struct endpoint	*endpoint_new(struct session *, const struct conninfo *,
		     char **);
void		 endpoint_default_ci(struct conninfo *, const char *);
void		 endpoint_destroy(struct endpoint **);
void		 endpoint_close(struct endpoint *);
char		*endpoint_zbind(zsock_t *, const char *);
void		 endpoint_reap_all(void);
int		 endpoint_write_file(struct endpoint *, const char *, uid_t,
		     char **);
zsock_t		*endpoint_socket(struct endpoint *, int);
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
void		 lifecycle_stop(void);
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
extern char	*server_state_dir;
extern char	*server_shim_path;
extern char	*server_runner_path;
extern char	*server_zygote_lib;
extern uid_t	 server_uid;
void		 server_exit(const char *);

#endif
