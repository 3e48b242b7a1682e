/* try-syscall.c: make named syscall attempts; exit with the last errno. */

/*
 * Usage: try-syscall NAME...   (try-syscall --list names the attempts)
 *
 * Prints "NAME ok" or "NAME errno=EPERM" per attempt and exits with the
 * last errno (0 on success, 255 for a usage error).  A process the filter
 * kills prints nothing; its parent sees the signal.
 *
 * Every attempt must be harmless when no filter stops it, because the
 * checker also runs each one unfiltered, as root, to show what the kernel
 * itself would have said.  So arguments are chosen to fail early inside the
 * kernel: an unmapped pointer (EFAULT), fd -1 (EBADF), a pid nobody has
 * (ESRCH) or an invalid flag (EINVAL).  Attempts that can only succeed
 * (unshare, clone with namespace flags, socket) change nothing but this
 * short-lived process.  Never pass NULL where NULL means "do it": acct(NULL)
 * stops accounting, kexec_load with no segments unloads the crash kernel.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BADPTR		1L		/* nothing is mapped at 1: EFAULT */
#define BADFD		(-1L)
#define NOPID		0x3fffffffL	/* above pid_max: ESRCH */
#define NOKEY		0x5ec0ce11L	/* an IPC key nobody uses: ENOENT */
#define X32_BIT		0x40000000L	/* __X32_SYSCALL_BIT */
#define HIGHBIT		(1L << 32)	/* ignored by a kernel reading an int */
#define I386_GETPID	20

struct attempt {
	const char	*name;
	long		 nr;
	long		 arg[6];
	int		 flags;
#define ATTEMPT_FORKS	0x1	/* returns twice; the child exits at once */
	long		(*special)(void);
};

#define TRY(name, nr, ...)	{ name, nr, { __VA_ARGS__ }, 0, NULL }
#define FORK(name, nr, ...) \
	{ name, nr, { __VA_ARGS__ }, ATTEMPT_FORKS, NULL }
#define SPECIAL(name, fn)	{ name, -1, { 0 }, 0, fn }

static long			 attempt_i386_getpid(void);
static const struct attempt	*attempt_find(const char *);
static int			 attempt_run(const struct attempt *);

/* name, syscall, arguments; the comment says what an unfiltered kernel does. */
/*
 * name, syscall, arguments.  seccomp-check prints what each gets without a
 * filter too; the notes below are for arguments chosen against a real harm.
 */
static const struct attempt attempts[] = {
	/* Allowed, or allowed with an argument check. */
	TRY("getpid", SYS_getpid, 0),
	FORK("fork", SYS_fork, 0),
	FORK("clone", SYS_clone, SIGCHLD, 0, 0, 0, 0),
	FORK("clone-highbit", SYS_clone, HIGHBIT | SIGCHLD, 0, 0, 0, 0),
	FORK("clone-newns", SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0),
	FORK("clone-newuser", SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
	FORK("clone-newpid", SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0),
	FORK("clone-newnet", SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
	FORK("clone-newcgroup", SYS_clone,
	    CLONE_NEWCGROUP | SIGCHLD, 0, 0, 0, 0),
	TRY("clone3", SYS_clone3, BADPTR, 88),
	TRY("socket-unix", SYS_socket, AF_UNIX, SOCK_STREAM, 0),
	TRY("socket-unix-highbit", SYS_socket,
	    HIGHBIT | AF_UNIX, SOCK_STREAM, 0),
	TRY("socket-inet", SYS_socket, AF_INET, SOCK_STREAM, 0),
	TRY("socket-inet6", SYS_socket, AF_INET6, SOCK_DGRAM, 0),
	TRY("socket-inet-highbit", SYS_socket, HIGHBIT | AF_INET, SOCK_STREAM,
	    0),
	TRY("socket-inet-raw", SYS_socket, AF_INET, SOCK_RAW, IPPROTO_ICMP),
	TRY("socket-inet-ping", SYS_socket, AF_INET, SOCK_DGRAM, IPPROTO_ICMP),
	TRY("socket-unspec", SYS_socket, AF_UNSPEC, SOCK_STREAM, 0),
	TRY("socket-ax25", SYS_socket, AF_AX25, SOCK_SEQPACKET, 0),
	TRY("socket-bridge", SYS_socket, AF_BRIDGE, SOCK_STREAM, 0),
	TRY("socket-x25", SYS_socket, AF_X25, SOCK_SEQPACKET, 0),
	TRY("socket-key", SYS_socket, AF_KEY, SOCK_RAW, 2),
	TRY("socket-netlink", SYS_socket, AF_NETLINK, SOCK_RAW, 0),
	TRY("socket-packet", SYS_socket, AF_PACKET, SOCK_RAW, 0),
	TRY("socketpair-unix", SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, BADPTR),
	TRY("socketpair-inet", SYS_socketpair, AF_INET, SOCK_STREAM, 0, BADPTR),
	TRY("ioctl-tcgets", SYS_ioctl, BADFD, TCGETS, BADPTR),
	TRY("ioctl-tcgets-highbit", SYS_ioctl, BADFD, HIGHBIT | TCGETS, BADPTR),
	TRY("ioctl-fionread", SYS_ioctl, BADFD, FIONREAD, BADPTR),
	TRY("ioctl-tiocgptn", SYS_ioctl, BADFD, TIOCGPTN, BADPTR),
	TRY("ioctl-tiocsetd", SYS_ioctl, BADFD, TIOCSETD, BADPTR),
	TRY("tiocsti", SYS_ioctl, BADFD, TIOCSTI, BADPTR),
	TRY("tiocsti-highbit", SYS_ioctl, BADFD, HIGHBIT | TIOCSTI, BADPTR),
	TRY("tioclinux", SYS_ioctl, BADFD, TIOCLINUX, BADPTR),
	TRY("tioclinux-highbit", SYS_ioctl, BADFD, HIGHBIT | TIOCLINUX, BADPTR),
	TRY("prctl-get-name", SYS_prctl, PR_GET_NAME, BADPTR),
	TRY("prctl-capbset-read", SYS_prctl, PR_CAPBSET_READ, 0),
	TRY("prctl-set-dumpable", SYS_prctl, PR_SET_DUMPABLE, 1),
	TRY("prctl-set-mm", SYS_prctl, PR_SET_MM, -1L, 0, 0, 0),
	TRY("prctl-set-child-subreaper", SYS_prctl, PR_SET_CHILD_SUBREAPER, 0),
	TRY("prlimit-get", SYS_prlimit64, 0, RLIMIT_NOFILE, 0, BADPTR),
	TRY("prlimit-set", SYS_prlimit64, 0, RLIMIT_CORE, BADPTR, 0),
	TRY("setrlimit", SYS_setrlimit, RLIMIT_CORE, BADPTR),
	TRY("personality-query", SYS_personality, 0xffffffffL),
	TRY("personality-linux", SYS_personality, PER_LINUX),
	TRY("personality", SYS_personality, ADDR_NO_RANDOMIZE),
	TRY("fanotify_init", SYS_fanotify_init, -1L, 0),

	/* Other ABIs. */
	TRY("x32-getpid", X32_BIT | SYS_getpid, 0),
	SPECIAL("i386-getpid", attempt_i386_getpid),

	/* Reaching into other processes. */
	TRY("ptrace", SYS_ptrace, PTRACE_ATTACH, NOPID, 0, 0),
	TRY("process_vm_readv", SYS_process_vm_readv,
	    NOPID, BADPTR, 1, BADPTR, 1, 0),
	TRY("process_vm_writev", SYS_process_vm_writev,
	    NOPID, BADPTR, 1, BADPTR, 1, 0),
	TRY("kcmp", SYS_kcmp, NOPID, NOPID, 0, 0, 0),
	TRY("pidfd_getfd", SYS_pidfd_getfd, BADFD, 0, 0),

	/* Kernel facilities. */
	TRY("keyctl", SYS_keyctl, 0xffff),
	TRY("add_key", SYS_add_key, BADPTR, BADPTR, 0, 0, 0),
	TRY("request_key", SYS_request_key, BADPTR, BADPTR, 0, 0),
	TRY("bpf", SYS_bpf, 0 /* BPF_MAP_CREATE */, BADPTR, 64),
	TRY("perf_event_open", SYS_perf_event_open, BADPTR, 0, -1L, -1L, 0),
	TRY("userfaultfd", SYS_userfaultfd, -1L),
	TRY("io_uring_setup", SYS_io_uring_setup, 1, BADPTR),
	TRY("io_uring_enter", SYS_io_uring_enter, BADFD, 0, 0, 0, 0, 0),
	TRY("io_uring_register", SYS_io_uring_register, BADFD, 0, 0, 0),

	/* The sandbox's shape. */
	TRY("mount", SYS_mount, BADPTR, BADPTR, BADPTR, 0, 0),
	TRY("umount2", SYS_umount2, BADPTR, 0),
	TRY("pivot_root", SYS_pivot_root, BADPTR, BADPTR),
	TRY("chroot", SYS_chroot, BADPTR),
	TRY("unshare-user", SYS_unshare, CLONE_NEWUSER),
	TRY("unshare-ns", SYS_unshare, CLONE_NEWNS),
	TRY("setns", SYS_setns, BADFD, 0),
	TRY("fsopen", SYS_fsopen, BADPTR, 0),
	TRY("fsmount", SYS_fsmount, BADFD, 0, 0),
	TRY("fsconfig", SYS_fsconfig, BADFD, 0, 0, 0, 0),
	TRY("fspick", SYS_fspick, BADFD, BADPTR, 0),
	TRY("open_tree", SYS_open_tree, BADFD, BADPTR, 0),
	TRY("move_mount", SYS_move_mount, BADFD, BADPTR, BADFD, BADPTR, 0),
	TRY("mount_setattr", SYS_mount_setattr, BADFD, BADPTR, 0, BADPTR, 0),

	/* The machine. */
	/* An unknown flag fails first; no segments would unload the image. */
	TRY("kexec_load", SYS_kexec_load, 0, 1000, BADPTR, 0x8000),
	/* An unknown flag fails first; KEXEC_FILE_UNLOAD would unload. */
	TRY("kexec_file_load", SYS_kexec_file_load,
	    BADFD, BADFD, 0, 0, 0x80000000L),
	TRY("init_module", SYS_init_module, BADPTR, 16, BADPTR),
	TRY("finit_module", SYS_finit_module, BADFD, BADPTR, 0),
	TRY("delete_module", SYS_delete_module, BADPTR, 0),
	TRY("open_by_handle_at", SYS_open_by_handle_at, BADFD, BADPTR, 0),
	TRY("name_to_handle_at", SYS_name_to_handle_at,
	    BADFD, BADPTR, BADPTR, BADPTR, 0),
	TRY("swapon", SYS_swapon, BADPTR, 0),
	TRY("swapoff", SYS_swapoff, BADPTR),
	TRY("reboot", SYS_reboot, 0, 0, 0, 0),	/* no magic numbers */
	TRY("syslog", SYS_syslog, -1L, 0, 0),
	TRY("acct", SYS_acct, BADPTR),		/* NULL would stop accounting */
	TRY("quotactl", SYS_quotactl, 0, BADPTR, 0, 0),
	TRY("iopl", SYS_iopl, 4),
	TRY("ioperm", SYS_ioperm, 0x10000, 1, 1),
	TRY("modify_ldt", SYS_modify_ldt, 0, 0, 0),
	TRY("sethostname", SYS_sethostname, BADPTR, 1),
	TRY("setdomainname", SYS_setdomainname, BADPTR, 1),
	TRY("settimeofday", SYS_settimeofday, BADPTR, 0),	/* tz stays */
	TRY("clock_settime", SYS_clock_settime, 0, BADPTR),
	TRY("adjtimex", SYS_adjtimex, BADPTR),
	TRY("clock_adjtime", SYS_clock_adjtime, 0, BADPTR),

	/* Sharing the host. */
	TRY("mbind", SYS_mbind, 0, 0, 99, 0, 0, 0),
	TRY("set_mempolicy", SYS_set_mempolicy, 99, 0, 0),
	TRY("migrate_pages", SYS_migrate_pages, NOPID, 0, 0, 0),
	TRY("move_pages", SYS_move_pages, NOPID, 0, 0, 0, 0, 0),
	TRY("sched_setattr", SYS_sched_setattr, 0, BADPTR, 0),
	TRY("sched_setscheduler", SYS_sched_setscheduler,
	    0, SCHED_FIFO, BADPTR),

	/* Rarely used, often exploited. */
	TRY("vmsplice", SYS_vmsplice, BADFD, BADPTR, 1, 0),
	TRY("splice", SYS_splice, BADFD, 0, BADFD, 0, 1, 0),
	TRY("tee", SYS_tee, BADFD, BADFD, 1, 0),
	TRY("memfd_secret", SYS_memfd_secret, -1L),
	TRY("execveat", SYS_execveat, BADFD, BADPTR, 0, 0, 0),

	/* System V IPC. */
	TRY("shmget", SYS_shmget, IPC_PRIVATE, 0, 0600),
	TRY("shmat", SYS_shmat, -1L, 0, 0),
	TRY("msgget", SYS_msgget, NOKEY, 0),
	TRY("semget", SYS_semget, NOKEY, 0, 0),
	TRY("semop", SYS_semop, -1L, BADPTR, 1),
};

/*
 * getpid through the i386 entry point.  The kernel tags the call
 * AUDIT_ARCH_I386, which the filter does not list.
 */
static long
attempt_i386_getpid(void)
{
#if defined(__x86_64__)
	long	 ret;

	__asm__ volatile ("int $0x80"
	    : "=a" (ret)
	    : "a" ((long)I386_GETPID)
	    : "memory", "cc", "r8", "r9", "r10", "r11");
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return (-1);
	}
	return (ret);
#else
	errno = ENOSYS;
	return (-1);
#endif
}

static const struct attempt *
attempt_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
		if (strcmp(attempts[i].name, name) == 0)
			return (&attempts[i]);
	}
	return (NULL);
}

/* Make the attempt; return 0 or the errno it got. */
static int
attempt_run(const struct attempt *a)
{
	const long	*x = a->arg;
	long		 ret;

	errno = 0;
	if (a->special != NULL)
		ret = a->special();
	else
		ret = syscall(a->nr, x[0], x[1], x[2], x[3], x[4], x[5]);
	if (ret == -1)
		return (errno);
	if (a->flags & ATTEMPT_FORKS) {
		if (ret == 0)
			_exit(0);
		(void)waitpid((pid_t)ret, NULL, 0);
	}
	return (0);
}

int
main(int argc, char **argv)
{
	const struct attempt	*a;
	const char		*e;
	size_t			 i;
	int			 error = 0, n;

	if (argc < 2) {
		fprintf(stderr, "usage: try-syscall --list | NAME ...\n");
		return (255);
	}
	if (strcmp(argv[1], "--list") == 0) {
		for (i = 0; i < sizeof attempts / sizeof attempts[0]; i++)
			printf("%s\n", attempts[i].name);
		return (0);
	}
	for (n = 1; n < argc; n++) {
		if ((a = attempt_find(argv[n])) == NULL) {
			fprintf(stderr, "try-syscall: unknown attempt %s\n",
			    argv[n]);
			return (255);
		}
		if ((error = attempt_run(a)) == 0)
			printf("%s ok\n", a->name);
		else {
			if ((e = strerrorname_np(error)) == NULL)
				e = "?";
			printf("%s errno=%s\n", a->name, e);
		}
		fflush(stdout);
	}
	return (error);
}
