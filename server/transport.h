/* transport.h: the seam between the transports and the protocol core. */
/*
 * A transport is anything that carries Jupyter messages to clients: the
 * ZeroMQ endpoints (server/endpoint.c) today, the HTTP front's WebSockets
 * (server/gateway*.c) next. Each gives the core the same three things:
 *
 * - requests, decoded into struct jmsg, through the listener it was given
 *   (transport_listen; the core registers kernel_receive), each with the
 *   origin it came from;
 * - an origin: a transport's ops table and its connection, which every
 *   request remembers so that its replies (and stdin's input_request) go
 *   back to the client that asked, and which the transport declares gone
 *   when the connection closes (replies for it are then dropped; requests
 *   already queued still run);
 * - subscriptions: a session's iopub goes to every origin subscribed to
 *   it (its own endpoint, the shared endpoint once it has spoken for the
 *   session, any number of WebSocket connections).
 *
 * The core owns queueing, busy/idle, ownership and aborts; a transport
 * owns framing, signing, sockets and its own buffering. Neither reaches
 * into the other. Everything here runs on the daemon's one loop thread.
 */
#ifndef CELLBLOCK_TRANSPORT_H
#define CELLBLOCK_TRANSPORT_H

#include <sys/types.h>

struct jmsg;
struct jmsg_out;
struct session;
struct conninfo;

/* The channel a request came in on and its reply goes out on. */
enum transport_channel {
	TRANSPORT_SHELL,
	TRANSPORT_CONTROL,
	TRANSPORT_STDIN,
};

/*
 * What the core calls on a transport. conn is the transport's own
 * connection pointer, never NULL when called (a gone origin is skipped).
 */
struct transport_ops {
	const char	*name;		/* "zmq", "ws": for logs */
	/*
	 * A reply, or an input_request on TRANSPORT_STDIN, to the client of
	 * this origin. out->ids are the request's ZeroMQ routing ids (NULL
	 * for transports without them); out->parent_raw its header.
	 */
	void		 (*send)(void *conn, enum transport_channel,
			     const struct jmsg_out *out);
	/* One iopub message of session s, to a subscriber. */
	void		 (*publish)(void *conn, struct session *s,
			     const struct jmsg_out *out);
	/* The ports connect_request reports; NULL: none (WebSockets). */
	const struct conninfo *(*conninfo)(void *conn);
};

/*
 * Where requests come from. Reference-counted: the transport holds one
 * reference while the connection lives, each request and subscription
 * one more. transport_origin_gone drops the transport's and marks it
 * gone (conn = NULL); the memory goes with the last reference.
 */
struct transport_origin {
	const struct transport_ops *ops;
	void		*conn;		/* NULL once gone */
	u_int		 refs;
};

/*
 * The core's entry point. s: the session the origin belongs to, or NULL
 * when the request's header.session picks it (the shared endpoint: the
 * core then subscribes the origin to that session). Takes ownership of jm.
 * The listener may end sessions and close origins, including this one.
 */
typedef void	 transport_listener(struct transport_origin *, struct session *,
		     enum transport_channel, struct jmsg *);

/* server/transport.c */
void		 transport_listen(transport_listener *);
void		 transport_deliver(struct transport_origin *, struct session *,
		     enum transport_channel, struct jmsg *);
struct transport_origin *transport_origin_new(const struct transport_ops *,
		     void *);
struct transport_origin *transport_origin_ref(struct transport_origin *);
void		 transport_origin_unref(struct transport_origin **);
void		 transport_origin_gone(struct transport_origin **);
int		 transport_origin_alive(const struct transport_origin *);
void		 transport_send(struct transport_origin *,
		     enum transport_channel, const struct jmsg_out *);
void		 transport_subscribe(struct session *,
		     struct transport_origin *);
void		 transport_unsubscribe(struct session *,
		     struct transport_origin *);
int		 transport_subscribed(struct session *,
		     struct transport_origin *);
void		 transport_publish(struct session *, const struct jmsg_out *);
void		 transport_subs_free(struct session *);

#endif
