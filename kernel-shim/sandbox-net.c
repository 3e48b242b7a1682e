/* sandbox-net.c: the session's network namespace, loopback only. */

/*
 * The session unshares a fresh network namespace (sandbox-run.c), which
 * holds one device, "lo", down.  This step brings it up, so code in the
 * session can run local servers on 127.0.0.1 and ::1 (asyncio loopback
 * pairs, multiprocessing managers over TCP, a local Dask cluster).  It adds
 * nothing else: no other device, no address, no route, so every address
 * but the loopback ones is unreachable (ENETUNREACH), and the namespace is
 * the session's alone (neither the host nor another session can reach it).
 *
 * The kernel gives lo 127.0.0.1/8 and ::1 itself when it comes up.  Needs
 * CAP_NET_ADMIN over the namespace: run in pid 1, before capabilities are
 * dropped; seccomp (in pid 2, later) keeps netlink and packet sockets
 * refused, so user code cannot add devices, addresses or routes.
 */

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <net/if.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

#define NET_LOOPBACK	"lo"

static int	net_flags(int, struct ifreq *, unsigned long, char **);

/* SIOCGIFFLAGS or SIOCSIFFLAGS on the loopback device. */
static int
net_flags(int s, struct ifreq *ifr, unsigned long request, char **cause)
{
	if (ioctl(s, request, ifr) != 0)
		return (sandbox_cause(cause, "%s %s: %s",
		    request == SIOCGIFFLAGS ? "SIOCGIFFLAGS" : "SIOCSIFFLAGS",
		    NET_LOOPBACK, strerror(errno)));
	return (0);
}

/* Bring lo up, then read its flags back: fail closed if it did not take. */
int
sandbox_net_loopback_up(char **cause)
{
	struct ifreq	ifr;
	int		s, r = -1;

	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return (sandbox_cause(cause, "socket: %s", strerror(errno)));
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, NET_LOOPBACK, sizeof ifr.ifr_name - 1);
	if (net_flags(s, &ifr, SIOCGIFFLAGS, cause) != 0)
		goto out;
	ifr.ifr_flags |= IFF_UP;
	if (net_flags(s, &ifr, SIOCSIFFLAGS, cause) != 0 ||
	    net_flags(s, &ifr, SIOCGIFFLAGS, cause) != 0)
		goto out;
	if ((ifr.ifr_flags & (IFF_UP | IFF_LOOPBACK)) !=
	    (IFF_UP | IFF_LOOPBACK)) {
		sandbox_cause(cause, "%s did not come up", NET_LOOPBACK);
		goto out;
	}
	r = 0;
out:
	close(s);
	return (r);
}
