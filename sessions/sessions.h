/* sessions.h: sessions, their interpreters and the private channel to them. */
/*
 * This layer knows nothing of ZeroMQ framing or HMAC. A session is a durable
 * name with an owner; its interpreter (cellblock-shim running the Python
 * runner) is only its current incarnation, reached through a channel of
 * length-prefixed JSON messages (docs/CHANNEL.md).
 */
#ifndef CELLBLOCK_SESSIONS_H
#define CELLBLOCK_SESSIONS_H

#include <sys/queue.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

/* The daemon's records a session points to, opaque to this layer. */
struct control_conn;
struct endpoint;
struct kernel_req;
struct loop_io;
struct loop_timer;
struct transport_sub;
struct waiter;

#define CHANNEL_MAX	((size_t)64 * 1024 * 1024)
#define SESSION_NAME_MAX 64

/* sessions/channel.c */
struct channel {
	int		 fd;
	char		*rbuf;
	size_t		 rpos;		/* start of the unconsumed bytes */
	size_t		 rlen;
	size_t		 rsize;
	char		*wbuf;
	size_t		 wlen;
	size_t		 woff;
	size_t		 wsize;
	int		 creds;		/* SO_PASSCRED on: note peer_pid */
	pid_t		 peer_pid;	/* writer of the last read, 0: unknown */
};
void		 channel_init(struct channel *, int);
void		 channel_close(struct channel *);
int		 channel_queue(struct channel *, json_t *, char **);
int		 channel_send(struct channel *, json_t *, char **);
#define CHANNEL_FDS_MAX	8
int		 channel_send_fds(struct channel *, json_t *, const int *, int,
		     char **);
int		 channel_flush(struct channel *, char **);
int		 channel_pending(const struct channel *);
int		 channel_fill(struct channel *, char **);
json_t		*channel_next(struct channel *, char **);
int		 channel_want_creds(struct channel *, int);

/* sessions/session.c */
enum session_state {
	SESSION_CREATING,	/* interpreter starting, no hello yet */
	SESSION_IDLE,
	SESSION_BUSY,
	SESSION_CHECKPOINTING,
	SESSION_HIBERNATED,
	SESSION_DEAD,
};

/* What one session may use; defaults from the config, overridable per session. */
struct session_limits {
	uint64_t	 memory;	/* bytes, memory cgroup */
	uint32_t	 cpu_millis;	/* 1000 = one CPU */
	uint64_t	 pids;
	uint64_t	 tmp;		/* bytes of /tmp and of /dev/shm */
	uint64_t	 exec_timeout;	/* seconds per execute, 0 = none */
	uint64_t	 nofile;
	uint64_t	 fsize;		/* bytes, largest file written */
	uint64_t	 idle_timeout;	/* seconds idle before hibernation,
					   0 = never */
	char		 allow_net[1024]; /* egress allowlist, canonical
					   (server/egress/egress.h); "": none */
};

/*
 * A session's lifecycle: checkpoints, hibernation, resume, fork. Written
 * by server/lifecycle.c alone (its constructor and destructor here
 * aside); the others read it (tests/test_layering.py pins it).
 */
struct session_lifecycle {
	char		 ckpt_sha[2][65]; /* two slots, "" = none */
	uint64_t	 ckpt_bytes[2];
	time_t		 ckpt_time[2];
	int		 ckpt_slot;	/* the newest good slot, -1: none */
	uint64_t	 ckpt_op;	/* checkpoint in flight, 0: none */
	int		 ckpt_writing;	/* the slot it writes */
	int		 ckpt_then_hibernate;
	struct waiter	*ckpt_waiter;	/* who to answer when it is done */
	uint64_t	 restore_op;	/* restore in flight, 0: none */
	int		 restore_slot;
	json_t		*restore_report; /* for the first reply after it */
	int		 hibernating;	/* stopping to hibernate */
	struct loop_timer *lifecycle_timer; /* idle or checkpoint due */
	int		 dirty;		/* state changed since the checkpoint */
	char		 fork_to[SESSION_NAME_MAX + 1]; /* after the
					   checkpoint */
	uid_t		 fork_owner;
};

struct session {
	char		 name[SESSION_NAME_MAX + 1];
	uid_t		 owner;
	enum session_state state;
	time_t		 created;
	time_t		 last_active;
	int		 references;
	int		 dying;

	/* Current incarnation. */
	pid_t		 pid;		/* cellblock-shim, -1 when none */
	struct channel	 chan;
	int		 errfd;		/* shim's stderr, -1 when none */
	char		 errbuf[1024];
	size_t		 errlen;
	unsigned	 incarnation;
	int		 born;		/* enum spawn_born: how it started */
	json_t		*hello;
	json_t		*kernel_args;	/* attach's argv tail, for each hello */
	json_t		*env;		/* {NAME: value}, for each hello; may be secret */
	char		*username;	/* gateway's KERNEL_USERNAME: shown, never trusted */
	int		 stopping;	/* we asked it to end */
	const char	*stop_reason;	/* ename for the request it cuts */
	int		 restart_pending;
	int		 start_failures; /* deaths before hello, in a row */
	int		 ending;	/* the session goes when it is reaped */

	/* Owned by the server: endpoint, attached client, request queue. */
	struct loop_io	*chan_io;	/* the channel in the daemon's loop */
	struct loop_io	*err_io;	/* the shim's stderr in it */
	struct endpoint	*endpoint;	/* its own, NULL: shared only */
	struct control_conn *attach;	/* the attach client, if any */
	struct transport_sub *subs;	/* iopub subscribers (transport.c) */
	char		*record_spare;	/* the file its next record is written
					   into (server/record.c), or NULL */
	/* The request queue: the protocol core's (server/kernel.c) alone. */
	TAILQ_HEAD(, kernel_req) queue;
	size_t		 queue_len;
	size_t		 queue_bytes;	/* of the requests' wire messages */
	struct kernel_req *current;	/* running in the interpreter */
	struct kernel_req *last;	/* late output's parent */
	uint64_t	 next_id;
	json_t		*exec_count;
	char		*workdir;
	json_t		*mounts;	/* read-only binds: [{source, target}],
					   checked as the owner (files-mount.c) */

	/* Containment (sessions/contain.c). */
	struct session_limits limits;
	uid_t		 host_uid;	/* the interpreter's uid on the host */
	gid_t		 host_gid;
	int		 cgroup_made;
	int		 cgroup_moving;	/* handed its tasks fds: checked at hello */
	char		 kernel_id[37]; /* the gateway's, made once when first
					  asked (server/gateway-kernel.c) */
	char		 cgroup[SESSION_NAME_MAX + 1]; /* its group's name: the
					   session's, or the pool member's
					   it was born as (server/pool.c) */
	int		 pooled;	/* a warm-pool member: no name yet */
	struct cgroup_meter *meter;	/* the contract's counters, once open */
	uint64_t	 oom_seen;	/* OOM kills counted so far */

	/* Lifecycle: server/lifecycle.c's alone. */
	struct session_lifecycle lc;
};

int		 session_name_valid(const char *);
void		 session_random_name(char *, size_t);
struct session	*session_create(const char *, uid_t, const char *, char **);
struct session	*session_create_unlisted(const char *, const char *);
int		 session_list(struct session *, const char *, uid_t, char **);
struct session	*session_find(const char *);
struct session	*session_find_pid(pid_t);
void		 session_set_pid(struct session *, pid_t);
void		 session_set_ending(struct session *);
size_t		 session_owner_count(uid_t);
struct session	*session_first(void);
struct session	*session_next(void);
size_t		 session_count(void);
void		 session_destroy(struct session **);
void		 session_add_ref(struct session *);
void		 session_remove_ref(struct session *);
const char	*session_state_name(enum session_state);
void		 session_set_state(struct session *, enum session_state,
		     const char *);
int		 session_visible(struct session *, uid_t);

/* sessions/contain.c */
struct contain_config {
	uid_t		 uid_base;	/* session uids: base .. base+count-1 */
	uint32_t	 uid_count;
	const char	*cgroup_name;	/* our group under the daemon's own */
	int		 allow_weaker;	/* start even if protections are off */
	const char	*proc_root;	/* "/proc", or a fake tree in tests */
};
int		 contain_init(const struct contain_config *, char **);
void		 contain_shutdown(void);
int		 contain_enabled(void);
const char	*contain_weaker(void);
const char	*contain_describe(void);
int		 contain_prepare(struct session *, char **);
#define CONTAIN_MOVE_FDS	8	/* most hierarchies a process moves itself into */
int		 contain_enter(struct session *, pid_t, int *, int *, char **);
int		 contain_enter_fallback(struct session *, pid_t, const char *,
		     char **);
int		 contain_moved(struct session *, char **);
json_t		*contain_moves_describe(void);
void		 contain_release(struct session *);
int		 contain_set_limits(struct session *,
		     const struct session_limits *, char **);
int		 contain_set_hostname(struct session *, const char *, char **);
int		 contain_oom_killed(struct session *);
void		 contain_stats(struct session *, uint64_t *, uint64_t *);
void		 contain_meter(struct session *, int, uint64_t *, uint64_t *,
		     int *);

/* sessions/spawn.c */
struct spawn_args {
	const char	*shim;		/* path of cellblock-shim */
	const char	*runner;	/* path of the runner script */
	const char	*python;	/* interpreter */
	const char	*workdir;
	const char	*egress_dir;	/* NULL, or ro at /run/cellblock */
	const char	*name;
	const char	*rootfs;	/* NULL: the host's /usr */
	const char	*init;		/* cellblock-init for pid 1, or NULL */
	int		 contain;	/* run the sandbox steps */
	int		 zygote;	/* fork from the zygote if it is ready */
	const struct session_limits *limits;
	json_t		*mounts;	/* read-only binds; forces exec */
	uid_t		 owner;		/* whose permissions the binds need */
	uid_t		 host_uid;	/* the binds' files show as these */
	gid_t		 host_gid;
};
#define SPAWN_BINDS_MAX	16	/* read-only binds per session */
enum spawn_born { SPAWN_EXEC, SPAWN_ZYGOTE, SPAWN_POOL };
int		 spawn_interpreter(struct session *, const struct spawn_args *,
		     char **);
pid_t		 spawn_exec(char **, int, int, char **);
const char	*spawn_born_name(enum spawn_born);
void		 spawn_signal(struct session *, int);
void		 spawn_close(struct session *);

/* sessions/zygote.c */
struct zygote_config {
	const char	*shim;		/* cellblock-shim, which starts it */
	const char	*lib;		/* cellblock-zygote.so */
	const char	*runner;	/* cellblock_runner.py, beside the zygote */
	const char	*python;
	const char	*home;		/* its own dir: HOME, matplotlib cache */
	uid_t		 uid;		/* (uid_t)-1: the daemon's own */
	gid_t		 gid;
};
int		 zygote_start(const struct zygote_config *, char **);
int		 zygote_fd(void);
int		 zygote_on_readable(char **);
int		 zygote_ready(void);
pid_t		 zygote_pid(void);
int		 zygote_reaped(pid_t, int, char **);
void		 zygote_stop(const char *);
pid_t		 zygote_spawn(json_t *, const int *, int, char **);
json_t		*zygote_describe(void);

#endif
