/* gateway.h: what the gateway's own files share (gateway-*.c). */
#ifndef CELLBLOCK_GATEWAY_H
#define CELLBLOCK_GATEWAY_H

#define GATEWAY_MESSAGE_MAX	WS_MESSAGE_MAX	/* the proxies close above */
#define GATEWAY_V1_PROTOCOL	"v1.kernel.websocket.jupyter.org"

enum gateway_framing {
	GATEWAY_LEGACY,		/* no subprotocol: JSON text, binary w/ buffers */
	GATEWAY_V1,		/* v1.kernel.websocket.jupyter.org */
};

/* A message a client sent, decoded and checked. */
struct gateway_in {
	char	 channel[16];
	json_t	*header;
	json_t	*parent;
	json_t	*metadata;
	json_t	*content;
	zmsg_t	*buffers;	/* NULL: none */
};

/* A message for clients, shared by every connection and the replay log. */
struct gateway_out {
	int	 refs;
	char	 channel[16];
	char	 parent_session[128];	/* whose request it answers */
	char	 parent_id[128];	/* which request */
	json_t	*msg;		/* legacy form: header, ..., channel */
	zmsg_t	*buffers;
	u_char	*enc[2];	/* per framing, made on first use */
	size_t	 enc_len[2];
	int	 enc_binary[2];
	size_t	 size;
};

/* server/gateway-wire.c */
int		 gateway_wire_decode(enum gateway_framing, int, const u_char *,
		     size_t, struct gateway_in *, char **);
void		 gateway_in_clear(struct gateway_in *);
struct gateway_out *gateway_out_new(const char *, const struct jmsg_out *);
struct jmsg	*gateway_in_jmsg(struct gateway_in *, size_t, char **);
struct gateway_out *gateway_out_ref(struct gateway_out *);
void		 gateway_out_unref(struct gateway_out **);
const u_char	*gateway_wire_encode(struct gateway_out *,
		     enum gateway_framing, size_t *, int *);

#endif
