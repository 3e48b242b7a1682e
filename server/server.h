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
#include "transport.h"
#include "wire.h"

_Static_assert(CELLBLOCK_NAME_MAX == SESSION_NAME_MAX,
    "the CLI's session name bound is the daemon's");

/* server/config.c */
struct config_list {
	char	**v;
	size_t	  n;
};
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
	size_t	 warm_pool;	/* interpreters contained in advance */
	struct session_limits limits;	/* defaults for new sessions */
	char	*log_format;	/* text or json */
	struct config_list redact_patterns; /* operator rules, NAME REGEX */
	int	 audit;		/* write STATE_DIR/audit/ */
	int	 audit_output;	/* with each execute's redacted output */
	size_t	 audit_max_size; /* bytes of audit.log before it rotates */
	size_t	 audit_keep;	/* rotated files kept */
	size_t	 contract_output; /* bytes of stdout, of stderr, a contract
				   keeps (head and tail) */
	size_t	 files_max_size; /* bytes of one uploaded file */
	size_t	 files_quota;	/* bytes of all of an owner's session files */
	char	*http_listen;	/* ADDRESS:PORT of the HTTP front, or off */
	char	*http_tls_cert;	/* PEM files; both or neither */
	char	*http_tls_key;
	size_t	 http_max_conns;	/* HTTP + WebSocket connections */
	size_t	 http_max_peer_conns;	/* of those, from one address */
	size_t	 http_timeout;	/* seconds an idle HTTP connection lives */
	size_t	 http_max_starts; /* kernel starts over HTTP at once */
	char	*http_env_allow; /* names, NAME* prefixes: POST /api/kernels env
				   passed to the kernel (comma or space between) */
	int	 metrics_public; /* GET /metrics without a token */
	struct config_egress {		/* server/egress.c, cellblockd(8) */
		char	*allow;		/* the ceiling; "": no egress */
		char	*hosts;		/* "": resolve by DNS; else only these */
		size_t	 max_conns;
		size_t	 max_bytes_in;
		size_t	 max_bytes_out;
		size_t	 rate;
		size_t	 idle_timeout;
		size_t	 max_time;
	} egress;
};
extern struct config cfg;
void		 config_defaults(void);
int		 config_set(const char *, const char *, char **);
int		 config_load(const char *, char **);
int		 config_parse(const char *, size_t, const char *, char **);
int		 config_parse_size(const char *, size_t *);
int		 config_limits(json_t *, struct session_limits *, char **);
int		 config_allow_net(const char *, struct session_limits *,
		     char **);

/* server/child.c: the daemon's children, reaped by pidfd */
typedef void	 child_exit_fn(pid_t, int, void *);
void		 child_watch(pid_t, child_exit_fn *, void *);
void		 child_sigchld(void);
int		 child_reap_now(pid_t, int *);
void		 child_forget_all(void);

/* server/egress.c: runs cellblock-egress, the sessions' way out */
void		 egress_start(void);
void		 egress_stop(void);
const char	*egress_session_dir(struct session *, char **);

/* server/redact.c */
int		 redact_init(char *const *, size_t, char **);
int		 redact_add(const char *, char **);
void		 redact_free(void);
size_t		 redact_count(void);
const char	*redact_rule_name(size_t);
char		*redact(const char *, size_t *);
char		*redact_changed(const char *, size_t, size_t *);

/*
 * server/audit.c: the audit log (docs/OPERATIONS.md); it hears the core
 * through hooks (server/hook.c) it registers in audit_open.
 */
int		 audit_open(char **);
void		 audit_close(void);
void		 audit_transfer(struct session *, const char *, uint64_t,
		     const char *);
json_t		*audit_query(uid_t, json_t *);

/*
 * server/metrics.c: the metrics registry. metrics_render(with_owners)
 * returns the Prometheus text exposition (format 0.0.4, content type
 * "text/plain; version=0.0.4"), a new string the caller frees; call it on
 * the loop's thread. with_owners 0 leaves out cellblock_sessions_by_owner.
 * metrics_set_connections("http"|"ws", n) is the front's gauge.
 */
void		 metrics_init(void);
void		 metrics_free(void);
char		*metrics_render(int);
json_t		*metrics_query(uid_t, json_t *);
void		 metrics_set_connections(const char *, long);
void		 metrics_wire_dropped(const char *);

/* server/notify.c: sd_notify for a Type=notify unit */
void		 notify_init(void);
int		 notify_send(const char *);
void		 notify_ready(const char *);
void		 notify_stopping(void);
void		 notify_close(void);

/* server/heartbeat.c */
int		 heartbeat_start(char **);
void		 heartbeat_stop(void);
int		 heartbeat_bind(const char *, char **, char **);
void		 heartbeat_unbind(const char *);

/* server/endpoint.c */
enum { EP_SHELL = TRANSPORT_SHELL, EP_CONTROL = TRANSPORT_CONTROL,
    EP_STDIN = TRANSPORT_STDIN };
struct endpoint {
	struct session	*session;	/* NULL: the shared endpoint */
	struct transport_origin *origin; /* what its requests remember */
	struct conninfo	 ci;
	struct sign	*sign;
	struct wire	*shell;		/* our own ZMTP sockets (wire.c) */
	struct wire	*control;
	struct wire	*stdin_;
	struct wire	*iopub;
	char		*hb;
	char		*path;		/* its connection file */
	int		 closed;	/* freed from the loop soon */
	struct loop_timer *reap_timer;	/* frees it, once closed */
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
void		 endpoint_reap_all(void);
int		 endpoint_write_file(struct endpoint *, const char *, uid_t,
		     char **);
int		 endpoint_rename_file(struct endpoint *, const char *, uid_t,
		     char **);


/*
 * server/hook.c: what the core and the supervisor tell the rooms above
 * them, which register at start (docs/ARCHITECTURE.md).
 */
enum hook_event {
	HOOK_HELLO,		/* interpreter ready; a handler's 1 holds the
				   queue (a restore runs first) */
	HOOK_LOST,		/* an incarnation is gone: struct hook_lost */
	HOOK_ENDED,		/* the session ended: const char *why */
	HOOK_CLEAN_START,	/* the next incarnation starts clean */
	HOOK_STOPPED,		/* an incarnation is gone, before the core
				   goes on; a handler's 1: it stopped to
				   hibernate */
	HOOK_EXECUTED,		/* an execute ran; the reply's metadata
				   (json_t), which handlers may add to */
	/* For the observers (audit.c, metrics.c): none of these answer. */
	HOOK_SPAWN,		/* an interpreter is being started: NULL */
	HOOK_RUN,		/* a request starts running: struct jmsg */
	HOOK_OUTPUT,		/* output for the running one: hook_output */
	HOOK_REPLY,		/* a request answered: struct hook_reply */
	HOOK_LIFECYCLE,		/* create, hibernate, end...: hook_lifecycle */
	HOOK_EGRESS,		/* one egress connection's record (json_t);
				   s is NULL once the session is gone */
	HOOK_N
};
struct hook_lost {
	const char	*ename;		/* why, as the failed request says */
	const char	*evalue;
	int		 before_hello;	/* died before it was ready */
};
struct hook_output {
	const char	*type;		/* iopub msg_type */
	json_t		*content;
	size_t		 size;		/* content's compact JSON bytes, as the
					   core counted them; SIZE_MAX: not */
};
struct hook_reply {
	const struct jmsg *request;
	const char	*type;		/* NULL: a request with no reply */
	json_t		*content;
	uint64_t	 cpu_us;	/* an execute's CPU from its start (the
					   contract meter's); UINT64_MAX: not
					   counted, or it never ran */
};
struct hook_lifecycle {
	const char	*event;		/* docs/OPERATIONS.md's event names */
	const char	*why;		/* or NULL */
	json_t		*details;	/* or NULL; borrowed */
};
typedef int	 hook_fn(struct session *, const void *);
void		 hook_add(enum hook_event, hook_fn *);
int		 hook_run(enum hook_event, struct session *, const void *);
void		 hook_lifecycle(struct session *, const char *, const char *,
		     json_t *);

/*
 * Someone waiting for the answer to a long operation (a checkpoint, a
 * fork): typed, so that the core and lifecycle.c answer without knowing
 * who asked (control.c embeds one in each connection).
 */
struct waiter {
	void		 (*answer)(struct waiter *, json_t *);
};

/* server/record.c: the session record file */
void		 record_save(struct session *);
void		 record_forget(struct session *);
void		 record_prepare(struct session *);
json_t		*record_describe(struct session *);
int		 record_limits(json_t *, struct session_limits *);
struct record_ckpt {			/* one slot, as the record has it */
	char		 sha[65];	/* "": none */
	uint64_t	 bytes;
	time_t		 time;
};
int		 record_checkpoints(json_t *, struct record_ckpt *);

/* server/incarnation.c: the incarnation supervisor */
typedef void	 incarnation_op_fn(struct session *, json_t *);
void		 incarnation_handle(const char *, incarnation_op_fn *);
int		 incarnation_start(struct session *, char **);
void		 incarnation_stop(struct session *, const char *);
void		 incarnation_watch(struct session *, int);
int		 incarnation_send(struct session *, json_t *, char **);
int		 incarnation_send_later(struct session *, json_t *, char **);
void		 incarnation_shutdown_all(void);

/* server/kernel.c: the protocol core */
typedef struct session *kernel_resolve_fn(struct jmsg *);
void		 kernel_init(void);
void		 kernel_set_resolver(kernel_resolve_fn *);
transport_listener kernel_receive;
int		 kernel_start(struct session *, char **);
void		 kernel_send_kernel_args(struct session *);
void		 kernel_pump(struct session *);
void		 kernel_restart(struct session *, const char *);
void		 kernel_interrupt(struct session *);
void		 kernel_end(struct session *, const char *);
size_t		 kernel_queued(struct session *);
const void	*kernel_running(struct session *);

/* server/factory.c: the session factory */
void		 factory_init(void);
struct session	*factory_new_session(const char *, uid_t,
		     const struct conninfo *, const struct session_limits *,
		     char **);
struct session	*factory_make_session(const char *, uid_t,
		     const struct conninfo *, const struct session_limits *,
		     const char *, uid_t, int, char **);
struct session	*factory_new_session_with(const char *, uid_t,
		     const struct conninfo *, const struct session_limits *,
		     json_t *, json_t *, char **);
#define FACTORY_ENV_NAMES	64	/* a session's env: variables */
#define FACTORY_ENV_BYTES	65536	/* names and values in all */
json_t		*factory_env_check(json_t *, char **);
json_t		*factory_env_names(struct session *);
int		 factory_env_match(const char *, const char *);
int		 factory_env_name_ok(const char *);
struct session	*factory_shared_session(struct jmsg *);
json_t		*factory_describe(struct session *);
void		 factory_rmtree(const char *);
void		 factory_shutdown_all(void);

/* server/pool.c: the warm pool */
void		 pool_init(void);
void		 pool_start(void);
void		 pool_stop(void);
struct session	*pool_take(const char *, const struct session_limits *);
json_t		*pool_describe(int);

/* server/lifecycle.c */
void		 lifecycle_init(void);
void		 lifecycle_start(void);
void		 lifecycle_stop(void);
int		 lifecycle_checkpoint(struct session *, int, struct waiter *,
		     char **);
int		 lifecycle_forget_waiter(struct session *, struct waiter *);
void		 lifecycle_on_checkpoint_done(struct session *, json_t *);
int		 lifecycle_restore(struct session *);
void		 lifecycle_on_restore_done(struct session *, json_t *);
void		 lifecycle_load_all(void);
void		 lifecycle_checkpoint_all(int);
void		 lifecycle_drop_checkpoints(struct session *);
json_t		*lifecycle_fork(struct session *, const char *, uid_t,
		     struct waiter *);

/* server/control.c */
int		 control_start(const char *, char **);
void		 control_stop(void);
json_t		*control_parse_request(const char *, size_t, size_t *, char **);
json_t		*control_call(uid_t, json_t *, struct waiter *);
/*
 * A stream op (`cellblock mcp`): the connection's lines go to a protocol
 * of a room above, which registers at start. Legend: the "cmd" that
 * switches to it; the longest line it takes (longer: oversized, then the
 * rest of that line is dropped); open (the peer's uid, where to send
 * messages, its argument) returns the protocol's connection; input, one
 * line; oversized; close, when the connection goes.
 */
typedef void	 control_out_fn(void *, json_t *, json_t *);
struct control_stream {
	const char	*name;
	size_t		 line_max;
	void		*(*open)(uid_t, control_out_fn *, void *);
	void		 (*input)(void *, const char *, size_t);
	void		 (*oversized)(void *);
	void		 (*close)(void *);
};
void		 control_stream_register(const struct control_stream *);
struct control_conn;
typedef json_t	*control_op_fn(struct control_conn *, json_t *);
void		 control_handle(const char *, control_op_fn *);
json_t		*control_error(int, const char *, ...)
		     __attribute__((format(printf, 2, 3)));
uid_t		 control_conn_uid(struct control_conn *);
int		 control_conn_take_fd(struct control_conn *);
int		 control_conn_send(struct control_conn *, json_t *);
void		 control_conn_job(struct control_conn *, void (*)(void *),
		     void *);
int		 control_conn_busy(struct control_conn *);
void		 control_conn_job_done(struct control_conn *);
struct session	*control_conn_session(struct control_conn *, json_t *,
		     json_t **);

/* server/contract-ops.c: the control socket's execute, result, files */
void		 contract_ops_init(void);

/* server/gateway.c: the Kernel Gateway REST routes (docs/GATEWAY.md) */
void		 gateway_register(void);
void		 gateway_start(void);
void		 gateway_stop(void);
void		 gateway_banner(FILE *);
void		 gateway_kernel_id(struct session *, char [37]);
struct session	*gateway_find(const char *, uid_t);
const char	*gateway_state(struct session *);
json_t		*gateway_model(struct session *);

/* server/gateway-ws.c: the kernels' WebSocket channels */
void		 gateway_ws_register(void);
void		 gateway_ws_stop(void);
int		 gateway_ws_connections(struct session *);

/* server/cellblockd.c */
extern char	*server_state_dir;
extern char	*server_shim_path;
extern char	*server_runner_path;
extern char	*server_zygote_lib;
extern char	*server_init_path;
extern uid_t	 server_uid;
void		 server_exit(const char *);

#endif
