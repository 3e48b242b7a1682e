/* contract.h: the execution contract, one cell's result as data (issue 13). */
/*
 * REST (server/rest*.c), MCP (server/mcp*.c) and the control socket's
 * "execute" op (cellblock run --json) run code through contract_run. A
 * contract is an in-process transport origin (server/transport.h): its
 * execute_request goes through kernel_receive like any client's, so the
 * core's queue, busy/idle, ownership, exec-timeout, output caps and aborts
 * apply unchanged; the contract only listens to the replies and iopub of
 * its own request and assembles them into one JSON object.
 *
 * The object's fields (docs/AGENTS.md "The execution contract"):
 *   id               the request id (contract_id), for contract_lookup
 *   session          the session's name
 *   status           ok | error | timeout | out_of_memory | killed |
 *                    aborted | queue_full
 *   execution_count  integer or null
 *   stdout, stderr   strings, head + tail kept within the caps
 *   stdout_truncated, stderr_truncated   booleans
 *   results          [{"data": {mime: value}, "metadata": {},
 *                      "is_main_result": bool}], at most 64
 *   results_truncated  boolean: more were displayed than kept
 *   error            null or {ename, evalue, traceback (plain text, ANSI
 *                    stripped), line?, column? (SyntaxError and kin)}
 *   metrics          {wall_ms, cpu_ms, peak_memory_bytes, stdout_bytes,
 *                    stderr_bytes, queued_ms}
 *   state_preserved  whether the session's variables survived the call
 *   resumed          null, or what a resume before the call restored and
 *                    lost ({restored: [...], lost: [...], error?})
 *   artifacts        [{path, size, mtime}] files created or changed in
 *                    the working directory during the call (capped)
 *   artifacts_truncated  boolean
 *
 * Events, to the event callback as they happen (each a new object the
 * callback borrows):
 *   {"type": "stdout"|"stderr", "text": "..."}
 *   {"type": "result", "data": {...}, "metadata": {...},
 *    "is_main_result": bool}
 *   {"type": "error", "ename", "evalue", "traceback"}
 *   {"type": "status", "state": "queued"|"running"|"idle"}
 *   {"type": "input_request", "prompt": "..."}   (answered from stdin_lines)
 * then the done callback once, with the contract (borrowed: take a
 * reference to keep it). Everything runs on the daemon's loop thread.
 */
#ifndef CELLBLOCK_CONTRACT_H
#define CELLBLOCK_CONTRACT_H

#include <sys/types.h>
#include <stdint.h>

#include <jansson.h>

struct session;
struct contract;

struct contract_req {
	const char	*code;
	int		 timeout_ms;	/* 0: only the session's exec-timeout */
	json_t		*stdin_lines;	/* array of strings, or NULL; borrowed */
	int		 store_history;	/* -1: the default (yes) */
	const char	*client;	/* "rest" "mcp" "cli" "gateway": audit */
	int		 keep_queue;	/* 1: a failure aborts no queued cell
					   (stop_on_error false: MCP's calls
					   are independent) */
};

typedef void	 contract_event_cb(void *, json_t *);
typedef void	 contract_done_cb(void *, json_t *);

/*
 * Queue code on s for the caller. NULL with *cause when it cannot be
 * queued at all (session ending...); a full queue is not NULL: the
 * contract ends at once with status queue_full, as every status is data.
 * The callbacks may be NULL. done may be called before contract_run
 * returns (queue_full): the returned contract is then already finished,
 * and stays valid until contract_detach.
 */
int		 contract_stdin_valid(json_t *, char **);
struct contract	*contract_run(struct session *, const struct contract_req *,
		     contract_event_cb *, contract_done_cb *, void *, char **);
/*
 * Interrupt the cell (SIGINT; a call still queued is interrupted as it
 * starts); the contract ends with status error, KeyboardInterrupt.
 */
void		 contract_cancel(struct contract *);
/* The same by id, for its owner (or root); -1 if unknown or not theirs. */
int		 contract_cancel_id(const char *, uid_t);
/*
 * The caller is gone or done: no more callbacks. A running call keeps
 * running; its result stays retrievable by id (contract_lookup) for
 * CONTRACT_KEEP_SECONDS, at most CONTRACT_KEEP_MAX calls and
 * CONTRACT_KEEP_BYTES of them (the oldest detached go first). Every caller
 * ends with contract_detach, finished or not.
 */
void		 contract_detach(struct contract *);
const char	*contract_id(struct contract *);
/* The contract so far (status "running" until done); new reference. */
json_t		*contract_result(struct contract *);
/*
 * A finished or running call by id, seen by its owner (or root); new
 * reference, NULL if unknown, expired or someone else's.
 */
json_t		*contract_lookup(const char *, uid_t);
/* The session a call ran on, owner of the calling uid. */
uid_t		 contract_owner(struct contract *);

/*
 * metadata.cellblock of every execute_reply (server/kernel.c calls it as
 * the reply passes the core): wall_ms, cpu_ms, peak_memory_bytes,
 * stdout_bytes, stderr_bytes, queued_ms. contract_meter_* keep the
 * per-request counters (struct contract_meter lives in the request).
 */
struct contract_meter {
	uint64_t	 queued_at;	/* loop_now() ms when queued */
	uint64_t	 started_at;	/* when sent to the interpreter */
	uint64_t	 cpu_start_us;	/* the session's cgroup cpu at start */
	uint64_t	 cpu_used_us;	/* since then, as the metrics said */
	uint64_t	 stdout_bytes;
	uint64_t	 stderr_bytes;
	int		 peak_reset;	/* memory.peak was reset at start */
};
void		 contract_meter_queued(struct contract_meter *);
void		 contract_meter_start(struct session *, struct contract_meter *);
void		 contract_meter_stream(struct contract_meter *, json_t *);
json_t		*contract_meter_metrics(struct session *,
		     struct contract_meter *);

void		 contract_free_all(void);

#define CONTRACT_KEEP_SECONDS	600	/* a detached call's result */
#define CONTRACT_KEEP_MAX	256	/* results kept, oldest dropped first */
#define CONTRACT_KEEP_BYTES	(256 * 1024 * 1024) /* and their bytes */
#define CONTRACT_ARTIFACTS_MAX	100	/* artifacts listed per call */

#endif
