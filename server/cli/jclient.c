/* jclient.c: a small Jupyter client over ZeroMQ, for `cellblock run`. */
/*
 * It speaks to a session's endpoint exactly as jupyter_client does:
 * DEALER shell/control/stdin, SUB iopub, signed with the endpoint's key.
 * On the shared endpoint its header.session names the session it wants.
 */

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "protocol.h"

struct jclient {
	zsock_t		*shell;
	zsock_t		*control;
	zsock_t		*stdin_;
	zsock_t		*iopub;
	zpoller_t	*poller;
	struct sign	*sign;
	char		 session[CELLBLOCK_NAME_MAX + 1];
	char		 sent[40];	/* msg_id of the request in flight */
	int		 plain;		/* strip ANSI colours */

	/* The execute in flight, as its messages tell it. */
	int		 started;	/* its busy arrived: it runs */
	int		 replied;	/* its execute_reply arrived */
	int		 idle;		/* its idle arrived */
	int		 ok;		/* the reply's status was ok */
};


static volatile sig_atomic_t jclient_interrupted;

static void
jclient_sigint(int sig)
{
	(void)sig;
	jclient_interrupted = 1;
}

static zsock_t *
jclient_socket(int type, const struct conninfo *ci, int which)
{
	zsock_t	*s = zsock_new(type);
	char	*ep = connfile_endpoint(ci, which);

	zsock_set_linger(s, 100);
	if (type == ZMQ_SUB)
		zsock_set_subscribe(s, "");
	zsock_connect(s, "%s", ep);
	free(ep);
	return (s);
}

struct jclient *
jclient_new(const struct conninfo *ci, const char *session, char **cause)
{
	struct jclient	*jc;
	char		 id[37];

	jc = xcalloc(1, sizeof *jc);
	jc->sign = sign_new(ci->scheme, ci->key, strlen(ci->key), cause);
	if (jc->sign == NULL) {
		free(jc);
		return (NULL);
	}
	if (session != NULL)
		snprintf(jc->session, sizeof jc->session, "%s", session);
	else {
		jmsg_new_id(id);
		snprintf(jc->session, sizeof jc->session, "%s", id);
	}
	jc->shell = jclient_socket(ZMQ_DEALER, ci, PORT_SHELL);
	jc->control = jclient_socket(ZMQ_DEALER, ci, PORT_CONTROL);
	jc->stdin_ = jclient_socket(ZMQ_DEALER, ci, PORT_STDIN);
	jc->iopub = jclient_socket(ZMQ_SUB, ci, PORT_IOPUB);
	jc->poller = zpoller_new(jc->shell, jc->stdin_, jc->iopub,
	    jc->control, NULL);
	jc->plain = !isatty(STDOUT_FILENO) || !isatty(STDERR_FILENO);
	return (jc);
}

void
jclient_destroy(struct jclient **jcp)
{
	struct jclient	*jc = *jcp;

	if (jc == NULL)
		return;
	zpoller_destroy(&jc->poller);
	zsock_destroy(&jc->shell);
	zsock_destroy(&jc->control);
	zsock_destroy(&jc->stdin_);
	zsock_destroy(&jc->iopub);
	sign_destroy(&jc->sign);
	free(jc);
	*jcp = NULL;
}

/* Send a request; remember its msg_id when it is the one we wait on. */
static void
jclient_send(struct jclient *jc, zsock_t *s, const char *type,
    json_t *content, struct jmsg *parent, int track)
{
	struct jmsg_out	 out;
	zmsg_t		*m;
	char		 id[37];

	jmsg_new_id(id);
	memset(&out, 0, sizeof out);
	out.msg_id = id;
	out.msg_type = type;
	out.session = jc->session;
	out.username = getlogin() ? getlogin() : "cellblock";
	out.content = content;
	out.parent_raw = parent ? parent->header_raw : NULL;
	m = jmsg_encode(jc->sign, &out);
	json_decref(content);
	if (m == NULL)
		return;
	if (track)
		snprintf(jc->sent, sizeof jc->sent, "%s", id);
	zmsg_send(&m, s);
}

static struct jmsg *
jclient_recv(struct jclient *jc, zsock_t *s)
{
	zmsg_t		*m = zmsg_recv(s);
	char		*cause;
	struct jmsg	*jm;

	if (m == NULL)
		return (NULL);
	if ((jm = jmsg_decode(&m, jc->sign, PROTOCOL_MAX_DEFAULT,
	    &cause)) == NULL) {
		log_warn("dropped a message: %s", cause);
		free(cause);
	}
	return (jm);
}

static int
jclient_ours(struct jclient *jc, struct jmsg *jm)
{
	const char	*pid;

	pid = json_string_value(json_object_get(jm->parent, "msg_id"));
	return (pid != NULL && strcmp(pid, jc->sent) == 0);
}

/* The SUB socket joins late: poke with kernel_info until iopub talks. */
int
jclient_wait_ready(struct jclient *jc, int timeout, char **cause)
{
	int64_t		 end = zclock_mono() + timeout, next = 0;
	zsock_t		*which;
	struct jmsg	*jm;

	while (zclock_mono() < end) {
		if (zclock_mono() >= next) {
			jclient_send(jc, jc->shell, "kernel_info_request",
			    json_object(), NULL, 1);
			next = zclock_mono() + 200;
		}
		which = zpoller_wait(jc->poller, 100);
		if (which == NULL)
			continue;
		jm = jclient_recv(jc, which);
		if (jm != NULL && which == jc->iopub) {
			jmsg_destroy(&jm);
			return (0);
		}
		jmsg_destroy(&jm);
	}
	*cause = xstrdup("timed out waiting for the session to answer");
	return (-1);
}

/* Write text, without ANSI colour sequences when not on a terminal. */
static void
jclient_write(struct jclient *jc, FILE *f, const char *text)
{
	const char	*p;

	if (!jc->plain) {
		fputs(text, f);
		return;
	}
	for (p = text; *p != '\0'; p++) {
		if (p[0] == '\033' && p[1] == '[') {
			p += 2;
			while (*p != '\0' && !isalpha((u_char)*p))
				p++;
			if (*p == '\0')
				break;
			continue;
		}
		fputc(*p, f);
	}
}

static void
jclient_show_data(struct jclient *jc, json_t *content)
{
	json_t		*data = json_object_get(content, "data");
	const char	*text, *key;
	json_t		*v;

	text = json_string_value(json_object_get(data, "text/plain"));
	if (text != NULL) {
		jclient_write(jc, stdout, text);
		fputc('\n', stdout);
		return;
	}
	json_object_foreach(data, key, v) {
		printf("[%s output]\n", key);
		break;
	}
}

static void
jclient_show_error(struct jclient *jc, json_t *content)
{
	json_t	*tb = json_object_get(content, "traceback");
	json_t	*line;
	size_t	 i;

	fflush(stdout);
	if (json_array_size(tb) == 0) {
		fprintf(stderr, "%s: %s\n",
		    json_string_value(json_object_get(content, "ename")),
		    json_string_value(json_object_get(content, "evalue")));
		return;
	}
	json_array_foreach(tb, i, line) {
		if (json_is_string(line)) {
			jclient_write(jc, stderr, json_string_value(line));
			fputc('\n', stderr);
		}
	}
}

/* Show what our request published; note its busy and idle. */
static void
jclient_iopub(struct jclient *jc, struct jmsg *jm)
{
	const char	*t = jm->msg_type;
	json_t		*c = jm->content;
	const char	*name;

	if (!jclient_ours(jc, jm))
		return;
	if (strcmp(t, "stream") == 0) {
		name = json_string_value(json_object_get(c, "name"));
		jclient_write(jc, name && strcmp(name, "stderr") == 0 ?
		    stderr : stdout, json_string_value(json_object_get(c,
		    "text")) ?: "");
		fflush(stdout);
	} else if (strcmp(t, "execute_result") == 0 ||
	    strcmp(t, "display_data") == 0)
		jclient_show_data(jc, c);
	else if (strcmp(t, "error") == 0)
		jclient_show_error(jc, c);
	else if (strcmp(t, "status") == 0) {
		name = json_string_value(json_object_get(c,
		    "execution_state"));
		if (name != NULL && strcmp(name, "busy") == 0)
			jc->started = 1;
		if (name != NULL && strcmp(name, "idle") == 0)
			jc->idle = 1;
	}
}

static void
jclient_input(struct jclient *jc, struct jmsg *jm)
{
	char	 line[8192];
	size_t	 len;

	fputs(json_string_value(json_object_get(jm->content, "prompt")) ?: "",
	    stdout);
	fflush(stdout);
	if (fgets(line, sizeof line, stdin) == NULL)
		line[0] = '\0';
	len = strlen(line);
	if (len > 0 && line[len - 1] == '\n')
		line[len - 1] = '\0';
	jclient_send(jc, jc->stdin_, "input_reply", json_pack("{s:s}",
	    "value", line), jm, 0);
}

/* Wait up to ms for one message and handle it; SIGINT interrupts the cell. */
static void
jclient_step(struct jclient *jc, int ms)
{
	zsock_t		*which;
	struct jmsg	*jm;
	const char	*status;

	if (jclient_interrupted) {
		jclient_interrupted = 0;
		jclient_send(jc, jc->control, "interrupt_request",
		    json_object(), NULL, 0);
	}
	which = zpoller_wait(jc->poller, ms);
	if (which == NULL || (jm = jclient_recv(jc, which)) == NULL)
		return;
	if (which == jc->iopub)
		jclient_iopub(jc, jm);
	else if (which == jc->shell && jclient_ours(jc, jm)) {
		jc->replied = 1;
		status = json_string_value(json_object_get(jm->content,
		    "status"));
		jc->ok = status != NULL && strcmp(status, "ok") == 0;
	} else if (which == jc->stdin_ &&
	    strcmp(jm->msg_type, "input_request") == 0)
		jclient_input(jc, jm);
	jmsg_destroy(&jm);
}

static int
jclient_done(struct jclient *jc)
{
	return (jc->replied && jc->idle);
}

/*
 * Handle messages until the execute is done (1) or ms have passed (0; ms
 * 0 waits for ever).  With start_clock the ms count from when the cell
 * starts running (its busy), not from now.
 */
static int
jclient_pump(struct jclient *jc, int64_t ms, int start_clock)
{
	int64_t	end = 0;

	if (ms > 0 && !start_clock)
		end = zclock_mono() + ms;
	while (!jclient_done(jc)) {
		if (end == 0 && ms > 0 && jc->started)
			end = zclock_mono() + ms;
		if (end != 0 && zclock_mono() > end)
			return (0);
		jclient_step(jc, 200);
	}
	return (1);
}

/*
 * Run code; print output as it arrives.  Each run stands alone, so it
 * asks not to be aborted for an earlier cell's error (stop_on_error
 * false): a script's next `cellblock run` must run.
 *
 * timeout (seconds, 0 = none) counts from when the cell starts running,
 * not while it waits behind other requests: interrupting then would hit
 * another client's cell.  At the deadline the cell is interrupted; if it
 * has not ended JCLIENT_TIMEOUT_GRACE later, JCLIENT_STUCK tells the caller
 * to restart the interpreter (see jclient_wait for the rest).
 */
int
jclient_execute(struct jclient *jc, const char *code, int allow_stdin,
    int timeout)
{
	struct sigaction	 sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = jclient_sigint;
	sigaction(SIGINT, &sa, NULL);
	jc->started = jc->replied = jc->idle = jc->ok = 0;
	jclient_send(jc, jc->shell, "execute_request", json_pack("{s:s,s:b,"
	    "s:b,s:{},s:b,s:b}", "code", code, "silent", 0, "store_history", 1,
	    "user_expressions", "allow_stdin", allow_stdin, "stop_on_error", 0),
	    NULL, 1);
	if (jclient_pump(jc, (int64_t)timeout * 1000, 1)) {
		fflush(stdout);
		return (jc->ok ? JCLIENT_OK : JCLIENT_ERROR);
	}
	fflush(stdout);
	fprintf(stderr, "cellblock: the cell ran longer than %d s; "
	    "interrupting it\n", timeout);
	jclient_send(jc, jc->control, "interrupt_request", json_object(),
	    NULL, 0);
	if (jclient_pump(jc, JCLIENT_TIMEOUT_GRACE, 0)) {
		fflush(stdout);
		return (JCLIENT_INTERRUPTED);
	}
	return (JCLIENT_STUCK);
}

/* After JCLIENT_STUCK and a restart: show the cell's end, up to ms. */
int
jclient_wait(struct jclient *jc, int ms)
{
	int	done = jclient_pump(jc, ms, 0);

	fflush(stdout);
	return (done ? 0 : -1);
}
