/* fuzz-channel.c: fuzz the daemon's side of the session channel (channel.c). */
/*
 * Input: one byte that sets how many bytes reach the socket at a time
 * (1 to 256, 0: all at once), then what a runner writes on its end of the
 * socketpair. The daemon's end is read with channel_fill and channel_next
 * until EOF or until the channel is broken, as kernel.c reads it, so frames
 * arrive split anywhere.
 *
 * Oracles: every message handed out is an object with a string op;
 * channel_send of that message, read back through a second socketpair,
 * gives the same JSON.
 */

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "sessions.h"
#include "fuzz.h"

static void	fuzz_socketpair(int [2]);
static void	fuzz_echo(json_t *);
static int	fuzz_drain(struct channel *);

static void
fuzz_socketpair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) != 0)
		fatal("socketpair");
}

/* Sends msg on a fresh channel and reads it back: it must survive. */
static void
fuzz_echo(json_t *msg)
{
	struct channel	 out, in;
	json_t		*back = NULL;
	char		*cause = NULL;
	int		 sv[2];

	fuzz_socketpair(sv);
	channel_init(&out, sv[0]);
	channel_init(&in, sv[1]);
	FUZZ_CHECK(channel_send(&out, msg, &cause) == 0);
	while (back == NULL) {
		FUZZ_CHECK(channel_fill(&in, &cause) == 1);
		back = channel_next(&in, &cause);
		FUZZ_CHECK(cause == NULL);
		if (channel_pending(&out))
			FUZZ_CHECK(channel_flush(&out, &cause) >= 0);
	}
	FUZZ_CHECK(json_equal(back, msg));
	json_decref(back);
	channel_close(&out);
	channel_close(&in);
}

/* Hands out every complete message; -1 once the stream is broken. */
static int
fuzz_drain(struct channel *c)
{
	json_t	*msg;
	char	*cause;

	while ((msg = channel_next(c, &cause)) != NULL) {
		FUZZ_CHECK(json_is_object(msg));
		FUZZ_CHECK(json_is_string(json_object_get(msg, "op")));
		fuzz_echo(msg);
		json_decref(msg);
	}
	if (cause == NULL)
		return (0);
	free(cause);
	return (-1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct channel	 c;
	char		*cause;
	size_t		 chunk, off = 0;
	ssize_t		 n;
	int		 sv[2], r;

	if (len < 1)
		return (0);
	chunk = data[0] == 0 ? len : data[0];
	data++;
	len--;

	fuzz_socketpair(sv);
	channel_init(&c, sv[0]);
	if (len == 0)
		shutdown(sv[1], SHUT_WR);
	for (;;) {
		if (off < len) {
			n = send(sv[1], data + off, len - off < chunk ?
			    len - off : chunk, MSG_NOSIGNAL);
			FUZZ_CHECK(n > 0 || errno == EAGAIN);
			if (n > 0 && (off += n) == len)
				shutdown(sv[1], SHUT_WR);
		}
		if ((r = channel_fill(&c, &cause)) == -1) {
			free(cause);
			break;
		}
		if (fuzz_drain(&c) != 0 || r == 0)
			break;
	}
	close(sv[1]);
	channel_close(&c);
	return (0);
}
