/* mcp.h: the daemon's one MCP engine (JSON-RPC 2.0) and what its transports and tools share. */
/*
 * One engine (server/mcp.c) speaks the Model Context Protocol; it knows
 * nothing of stdio or HTTP. A transport (the control socket's "mcp" op for
 * `cellblock mcp`, /mcp on the HTTP front) makes one struct mcp per MCP
 * connection, hands it each message it reads (mcp_input) and gets back,
 * through the output callback it gave, every message to send: responses,
 * and notifications (progress, logging). The tools are one table
 * (server/mcp-tools.c) over the same session functions the control
 * socket's ops call (control_call) and the execution contract.
 */
#ifndef CELLBLOCK_MCP_H
#define CELLBLOCK_MCP_H

#include <sys/types.h>

#include <jansson.h>

#include "server.h"

#define MCP_MESSAGE_MAX		8388608	/* bytes of one message in (8 MiB) */
#define MCP_CALLS_MAX		8	/* calls that wait (cells, checkpoints,
					   forks) in flight per connection */
#define MCP_PROTOCOL_LATEST	"2025-11-25"

/* JSON-RPC 2.0 error codes (the spec's; -32002 is MCP's "not initialized"). */
#define MCP_PARSE_ERROR		-32700
#define MCP_INVALID_REQUEST	-32600
#define MCP_METHOD_NOT_FOUND	-32601
#define MCP_INVALID_PARAMS	-32602
#define MCP_INTERNAL_ERROR	-32603
#define MCP_NOT_INITIALIZED	-32002
#define MCP_BUSY		-32000

struct mcp;

/*
 * One message to the peer. about: the id of the request it belongs to
 * (its response, or a progress notification of its call), borrowed; NULL
 * for a message of the connection as a whole. The callback takes a
 * reference of its own if it keeps msg.
 */
typedef void	 mcp_out_fn(void *, json_t *, json_t *);

struct mcp_call;

/*
 * A connection as its tools see it (the first member of server/mcp.c's
 * struct mcp): whose it is, its default session, and the engine's way out
 * (send takes msg; finish takes a call off the connection), so that the
 * tools answer without calling up into the engine.
 */
struct mcp_peer {
	uid_t		 uid;
	char		*default_session; /* made on first use */
	u_int		 ncalls;	/* tool calls in flight */
	int		 log_level;	/* mcp_log_level's rank */
	void		 (*send)(struct mcp_peer *, json_t *, json_t *);
	void		 (*finish)(struct mcp_call *);
};

/* A tool call in flight (the engine makes it, mcp-call.c ends it). */
struct mcp_call {
	struct mcp_peer	*peer;		/* NULL once the connection is gone */
	json_t		*id;		/* the request's id */
	json_t		*token;		/* _meta.progressToken, or NULL */
	double		 progress;	/* last progress sent */
	int		 cancelled;	/* notifications/cancelled came */
	struct waiter	 waiter;	/* answers a checkpoint or a fork */
	void		*state;		/* the tool's own (a contract) */
	void		 (*cancel)(struct mcp_call *); /* the tool stops it */
	void		 (*gone)(struct mcp_call *); /* connection closed */
	struct mcp_call	*next;
};

/* server/mcp.c */
void		 mcp_init(void);
struct mcp	*mcp_new(uid_t, const char *, mcp_out_fn *, void *);
void		 mcp_free(struct mcp **);
void		 mcp_input(struct mcp *, const char *, size_t);
void		 mcp_input_oversized(struct mcp *);
const char	*mcp_transport(struct mcp *);
const char	*mcp_version(struct mcp *);
int		 mcp_initialized(struct mcp *);
int		 mcp_version_supported(const char *);

/* server/mcp-call.c */
json_t		*mcp_msg_reply(json_t *, json_t *);
json_t		*mcp_msg_error(json_t *, int, const char *);
json_t		*mcp_msg_notify(const char *, json_t *);
int		 mcp_log_level(const char *);
uid_t		 mcp_uid(struct mcp_peer *);
u_int		 mcp_calls(struct mcp_peer *);
const char	*mcp_default_session(struct mcp_peer *);
void		 mcp_set_default_session(struct mcp_peer *, const char *);
void		 mcp_log(struct mcp_peer *, const char *, json_t *);
void		 mcp_call_free(struct mcp_call *);
void		 mcp_call_progress(struct mcp_call *, const char *);
void		 mcp_call_done(struct mcp_call *, json_t *);
void		 mcp_call_fail(struct mcp_call *, int, const char *, ...)
		     __attribute__((format(printf, 3, 4)));
json_t		*mcp_tool_error(const char *, const char *);
json_t		*mcp_tool_result(json_t *, const char *);

/*
 * server/mcp-tools.c. A tool returns 0 with *result (done), 1 when it
 * answers later through mcp_call_done/mcp_call_fail, or -1 with a
 * JSON-RPC error code in *code and a cause (bad arguments and the like;
 * a tool that ran and failed returns 0 with isError in its result).
 */
json_t		*mcp_tools_list(void);
int		 mcp_tools_call(struct mcp_call *, const char *, json_t *,
		     json_t **, int *, char **);
struct session	*mcp_tools_find(struct mcp_call *, json_t *, json_t **);

/* server/mcp-schema.c */
int		 mcp_schema_check(json_t *, json_t *, const char *, char **);

/* server/mcp-files.c: write_file, read_file, list_files over files.h */
#define MCP_FILE_READ_MAX	(1024 * 1024)	/* bytes read_file returns */
json_t		*mcp_files_write(struct session *, json_t *);
json_t		*mcp_files_read(struct session *, json_t *);
json_t		*mcp_files_list(struct session *, json_t *);

/* server/mcp-run.c: run_code over the execution contract */
int		 mcp_run_code(struct mcp_call *, struct session *, json_t *,
		     json_t **, char **);

/* server/mcp-http.c: /mcp on the HTTP front */
void		 mcp_http_register(void);
void		 mcp_http_stop(void);

#endif
