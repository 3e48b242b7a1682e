/* http.h: the daemon's HTTP + WebSocket front, file by file. */
#ifndef CELLBLOCK_HTTP_H
#define CELLBLOCK_HTTP_H

#include <stdint.h>
#include <sys/types.h>

#include <czmq.h>
#include <jansson.h>

struct session;

/* server/http.c: the server, its route tables, requests and replies. */
struct http_req;
typedef void	 http_fn(struct http_req *);
/*
 * An upload streamed to the route instead of buffered: called with each
 * chunk of the body as it arrives, then once with len 0 at its end; the
 * route's fn runs after that unless the sink has replied already (a
 * reply from the sink ends the upload: the rest is read and dropped).
 * Returns 0, or -1 to stop reading (it must have replied then).
 */
typedef int	 http_sink_fn(struct http_req *, const void *, size_t);
/* The client went away before the exchange ended (a stream, a wait). */
typedef void	 http_close_fn(struct http_req *, void *);
enum http_auth {
	HTTP_OPEN,		/* anyone */
	HTTP_TOKEN,		/* a valid token; its owner is the caller */
};
/*
 * One route. Legend: method ("GET", "POST", "DELETE"); pattern, whose
 * segments are literal, "{x}" (one segment, captured) or a final "{*}"
 * (the rest, captured, at most HTTP_SEGMENTS_MAX segments); handler;
 * who may call it; the largest body it takes (0: none); where the body
 * goes when it is streamed rather than buffered (NULL: buffered, which
 * http_body and http_body_json then read).
 */
struct http_route {
	const char	*method;
	const char	*pattern;
	http_fn		*fn;
	enum http_auth	 auth;
	size_t		 body_max;
	http_sink_fn	*body_sink;
};
#define HTTP_SEGMENTS_MAX	16
#define HTTP_PARAMS_MAX		4
void		 http_register(const char *, const struct http_route *,
		     size_t);
int		 http_start(char **);
void		 http_stop(void);
json_t		*http_describe(void);
const char	*http_url(void);
int		 http_match(const char *, const char *, char [][256], size_t *);
const struct http_route *http_lookup(const char *, const char *, char [][256],
		     size_t *, int *);
json_t		*http_parse_json(const char *, size_t, char **);
const char	*http_method(struct http_req *);
const char	*http_path(struct http_req *);
const char	*http_param(struct http_req *, size_t);
const char	*http_query(struct http_req *, const char *);
const char	*http_header(struct http_req *, const char *);
const char	*http_peer(struct http_req *);
uid_t		 http_uid(struct http_req *);
const char	*http_body(struct http_req *, size_t *);
json_t		*http_body_json(struct http_req *, char **);
void		 http_reply(struct http_req *, u_int, const char *,
		     const void *, size_t);
void		 http_reply_json(struct http_req *, u_int, json_t *);
void		 http_error(struct http_req *, u_int, const char *,
		     const char *, ...) __attribute__((format(printf, 4, 5)));
void		 http_suspend(struct http_req *);
#define HTTP_XHDRS_MAX		4	/* http_reply_header's per reply */
void		 http_reply_header(struct http_req *, const char *,
		     const char *);
void		 http_reply_fd(struct http_req *, u_int, const char *, int,
		     uint64_t);
void		 http_on_close(struct http_req *, http_close_fn *, void *);
/*
 * Streaming replies (server-sent events, long outputs): begin sends the
 * status and headers with chunked encoding; write queues bytes (at most
 * HTTP_STREAM_MAX waiting, beyond that the client is too slow and is
 * dropped) and returns -1 once the client is gone; end finishes the
 * reply. Between begin and end the request stays valid until end, or
 * until its close callback has run.
 */
#define HTTP_STREAM_MAX		((size_t)8 * 1024 * 1024)
int		 http_stream_begin(struct http_req *, u_int, const char *);
int		 http_stream_write(struct http_req *, const void *, size_t);
void		 http_stream_end(struct http_req *);
typedef void	 http_upgrade_cb(void *, int, const char *, size_t, void *);
typedef void	 http_refused_cb(void *);
void		 http_upgrade(struct http_req *, const char *[][2],
		     http_upgrade_cb *, http_refused_cb *, void *);
void		 http_upgrade_close(void *);

/* server/http-metrics.c: GET /metrics */
void		 http_metrics_register(void);

/* server/token.c: tokens that map HTTP callers to owners. */
int		 token_load(char **);
int		 token_check(const char *, uid_t *);
json_t		*token_control(uid_t, json_t *);
const char	*token_from_request(const char *, const char *);

/* server/ws.c: WebSocket connections over an upgraded HTTP socket. */
struct ws;
enum ws_kind { WS_TEXT = 1, WS_BINARY = 2 };
struct ws_ops {
	void	(*opened)(struct ws *, void *);
	void	(*refused)(void *);	/* the 101 never went out */
	void	(*message)(struct ws *, enum ws_kind, const u_char *, size_t,
		    void *);
	void	(*closed)(struct ws *, void *);
};
#define WS_MESSAGE_MAX	((size_t)10 * 1024 * 1024)
#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
int		 ws_accept_key(const char *, char [29]);
void		 ws_accept(struct http_req *, const char *,
		     const struct ws_ops *, void *);
int		 ws_send(struct ws *, enum ws_kind, const void *, size_t);
void		 ws_close(struct ws *, uint16_t, const char *);
size_t		 ws_queued(struct ws *);
void		 ws_stop(void);
const char	*ws_peer(struct ws *);

#endif
