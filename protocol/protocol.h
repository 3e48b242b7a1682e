/* protocol.h: the Jupyter wire codec (v5.3): framing, signing, headers. */
/*
 * This layer knows nothing of sessions or processes: it turns ZeroMQ
 * multipart messages into struct jmsg and back, and signs and verifies
 * them. Everything that comes off the wire is checked here; a failure is
 * returned as -1/NULL with a cause string (allocated, caller frees), never
 * an assert.
 */
#ifndef CELLBLOCK_PROTOCOL_H
#define CELLBLOCK_PROTOCOL_H

#include <sys/types.h>

#include <stddef.h>
#include <czmq.h>
#include <jansson.h>

#define PROTOCOL_VERSION	"5.3"
#define PROTOCOL_DELIM		"<IDS|MSG>"
#define PROTOCOL_MAX_DEFAULT	((size_t)64 * 1024 * 1024)

/* protocol/sign.c */
struct sign;
struct sign	*sign_new(const char *, const void *, size_t, char **);
void		 sign_destroy(struct sign **);
int		 sign_enabled(const struct sign *);
void		 sign_compute(struct sign *, zframe_t *[4], char [65]);
int		 sign_verify(struct sign *, const char *, size_t, zframe_t *[4],
		     char **);

/* protocol/jmsg.c */
struct jmsg {
	zmsg_t		*ids;		/* routing ids before the delimiter */
	zframe_t	*header_raw;	/* header frame exactly as received */
	json_t		*header;
	json_t		*parent;
	json_t		*metadata;
	json_t		*content;
	zmsg_t		*buffers;	/* frames after content; may be empty */
	const char	*msg_type;	/* borrowed from header */
	const char	*msg_id;	/* borrowed from header */
	const char	*session;	/* borrowed; "" when absent */
	const char	*username;	/* borrowed; "" when absent */
	size_t		 size;		/* total bytes of all frames */
};

struct jmsg_out {
	zmsg_t		*ids;		/* routing ids to echo; NULL = none */
	const char	*topic;		/* iopub topic frame; NULL = none */
	const char	*msg_type;
	const char	*session;	/* header.session */
	const char	*username;	/* header.username */
	const char	*msg_id;	/* NULL = a fresh one */
	zframe_t	*parent_raw;	/* parent header bytes; NULL = {} */
	json_t		*metadata;	/* NULL = {} */
	json_t		*content;	/* NULL = {} */
	zmsg_t		*buffers;	/* NULL = none */
};

struct jmsg	*jmsg_decode(zmsg_t **, struct sign *, size_t, char **);
void		 jmsg_destroy(struct jmsg **);
zmsg_t		*jmsg_encode(struct sign *, const struct jmsg_out *);
json_t		*jmsg_header_new(const char *, const char *, const char *);
void		 jmsg_new_id(char [37]);
void		 jmsg_now(char [32]);

/* protocol/zmtp.c */
#define ZMTP_GREETING_SIZE	64
/*
 * Bytes charged per frame besides its size: what a frame really costs
 * held in a zmsg (czmq's zframe_t, its list node, malloc's headers:
 * 400-450 bytes measured on czmq 4.2; test-zmtp checks it).
 */
#define ZMTP_FRAME_COST		512
#define ZMTP_FREE_FRAMES	64	/* frames whose cost max-message absorbs */
#define ZMTP_COMMAND_MAX	8192	/* largest command body accepted */
struct zmtp;
struct zmtp	*zmtp_new(const char *, size_t);
void		 zmtp_destroy(struct zmtp **);
ssize_t		 zmtp_feed(struct zmtp *, const u_char *, size_t, zmsg_t **,
		     char **);
int		 zmtp_ready(const struct zmtp *);
const char	*zmtp_peer_type(const struct zmtp *);
const u_char	*zmtp_identity(const struct zmtp *, size_t *);
size_t		 zmtp_held(const struct zmtp *);
const u_char	*zmtp_output(struct zmtp *, size_t *);
void		 zmtp_output_taken(struct zmtp *);
size_t		 zmtp_frame_header(u_char [9], size_t, int);
u_char		*zmtp_encode(zmsg_t *, size_t, size_t *);
size_t		 zmtp_encode_size(zmsg_t *, size_t);
size_t		 zmtp_encode_into(zmsg_t *, size_t, u_char *);

/* protocol/jwrite.c */
#define JWRITE_ASCII	0x1	/* \uXXXX past 0x7f (JSON_ENSURE_ASCII) */
#define JWRITE_REPLACE	0x2	/* a byte that is not UTF-8 becomes U+FFFD */
/* NULL: keep the text as it is; else a new string to write instead. */
typedef char	*jwrite_filter_fn(const char *, size_t, size_t *);
struct jwrite {
	char		 *buf;
	size_t		  len;
	size_t		  size;
	int		  flags;
	int		  bad;		/* a string was not UTF-8 */
	jwrite_filter_fn *filter;	/* strings pass it first, or NULL */
};
void		 jwrite_init(struct jwrite *, int, jwrite_filter_fn *);
char		*jwrite_take(struct jwrite *, size_t *);
void		 jwrite_free(struct jwrite *);
void		 jwrite_put(struct jwrite *, const char *, size_t);
void		 jwrite_sep(struct jwrite *);
void		 jwrite_open(struct jwrite *, char);
void		 jwrite_close(struct jwrite *, char);
void		 jwrite_escape(struct jwrite *, const char *, size_t);
void		 jwrite_string(struct jwrite *, const char *, size_t);
void		 jwrite_own(struct jwrite *, const char *);
void		 jwrite_key(struct jwrite *, const char *, size_t);
void		 jwrite_int(struct jwrite *, int64_t);
void		 jwrite_milli(struct jwrite *, uint64_t);
void		 jwrite_real(struct jwrite *, double);
void		 jwrite_literal(struct jwrite *, const char *);
void		 jwrite_json(struct jwrite *, const json_t *);

#endif
