/* notify.c: systemd's service notifications (sd_notify), spoken by hand. */
/*
 * Under a Type=notify unit systemd passes $NOTIFY_SOCKET, a datagram unix
 * socket (a leading '@' means the abstract namespace), and, with
 * WatchdogSec=, $WATCHDOG_USEC. We send READY=1 once the control socket
 * listens, WATCHDOG=1 from the loop at half the interval (so a wedged loop
 * is restarted), and STOPPING=1 when shutting down. The protocol is
 * sd_notify(3)'s; no libsystemd is needed for four short datagrams.
 * Outside systemd every call does nothing.
 */

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

static struct sockaddr_un notify_addr;
static socklen_t	 notify_len;
static int		 notify_fd = -1;
static uint64_t		 notify_watchdog_usec;
static struct loop_timer *notify_timer;

/* Read (and clear: no child needs them) the variables systemd passed. */
void
notify_init(void)
{
	const char	*path = getenv("NOTIFY_SOCKET"), *v, *pid;
	size_t		 n;

	if (path != NULL && (path[0] == '/' || path[0] == '@') &&
	    (n = strlen(path)) < sizeof notify_addr.sun_path) {
		notify_addr.sun_family = AF_UNIX;
		memcpy(notify_addr.sun_path, path, n);
		if (path[0] == '@')
			notify_addr.sun_path[0] = '\0';
		notify_len = offsetof(struct sockaddr_un, sun_path) + n;
		notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (notify_fd == -1)
			log_warn("NOTIFY_SOCKET: socket: %s", strerror(errno));
	}
	v = getenv("WATCHDOG_USEC");
	pid = getenv("WATCHDOG_PID");
	if (v != NULL && (pid == NULL || atol(pid) == (long)getpid()))
		notify_watchdog_usec = strtoull(v, NULL, 10);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

/* One notification; 0 if sent or not under systemd, -1 if it failed. */
int
notify_send(const char *state)
{
	if (notify_fd == -1)
		return (0);
	if (sendto(notify_fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&notify_addr, notify_len) == -1) {
		log_warn("sd_notify %s: %s", state, strerror(errno));
		return (-1);
	}
	return (0);
}

/* A loop timer is one-shot: each ping schedules the next. */
static void
notify_watchdog(void *arg)
{
	(void)arg;
	notify_send("WATCHDOG=1");
	notify_timer = loop_timer_add(notify_watchdog_usec / 2000,
	    notify_watchdog, NULL);
}

/* Ready: tell systemd, and start the watchdog pings if it wants them. */
void
notify_ready(const char *status)
{
	char	*msg;

	xasprintf(&msg, "READY=1\nSTATUS=%s\nMAINPID=%ld", status,
	    (long)getpid());
	notify_send(msg);
	free(msg);
	if (notify_fd != -1 && notify_watchdog_usec >= 2000) {
		notify_timer = loop_timer_add(notify_watchdog_usec / 2000,
		    notify_watchdog, NULL);
		log_info("systemd watchdog: every %llu ms",
		    (unsigned long long)notify_watchdog_usec / 2000);
	}
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}

void
notify_close(void)
{
	loop_timer_cancel(&notify_timer);
	if (notify_fd != -1)
		close(notify_fd);
	notify_fd = -1;
}
