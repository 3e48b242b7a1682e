/* sandbox-seccomp.c: the session's seccomp policy table and its loader. */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox-seccomp.h"

/*
 * What an unlisted system call gets.  ENOSYS rather than EPERM: glibc and
 * CPython read ENOSYS as "this kernel is too old" and fall back to an older
 * call that the table does allow (clone3 -> clone, faccessat2 -> faccessat,
 * close_range -> close, ...), so a syscall added to a future libc degrades
 * instead of failing.  EPERM would turn each of those into a hard error.
 * The calls that matter are denied explicitly below, with EPERM, so a probe
 * of them reads as "refused", not "missing".
 */
#define SANDBOX_SECCOMP_DEFAULT	SCMP_ACT_ERRNO(ENOSYS)

/*
 * One comparison of one syscall argument: all this policy needs, and
 * libseccomp refuses two comparisons of the same argument in one rule.
 */
struct sandbox_seccomp_cond {
	int			 present;
	unsigned int		 arg;
	enum scmp_compare	 op;
	uint64_t		 mask;	/* SCMP_CMP_MASKED_EQ only */
	uint64_t		 value;
	const char		*text;	/* as printed by --print-policy */
};

struct sandbox_seccomp_rule {
	const char			*name;
	uint32_t			 action;
	struct sandbox_seccomp_cond	 cond;
	const char			*reason;
};

/* Actions. */
#define ALLOW		SCMP_ACT_ALLOW
#define ERRNO(e)	SCMP_ACT_ERRNO(e)

/* Conditions; the text is the source spelling, so the printout names TCGETS. */
#define ALWAYS		{ 0, 0, SCMP_CMP_EQ, 0, 0, "-" }
#define ARG_EQ(n, v)	{ 1, n, SCMP_CMP_EQ, 0, (v), "arg" #n " == " #v }
#define ARG_NE(n, v)	{ 1, n, SCMP_CMP_NE, 0, (v), "arg" #n " != " #v }
#define ARG_GT(n, v)	{ 1, n, SCMP_CMP_GT, 0, (v), "arg" #n " > " #v }
#define ARG_MASKED_EQ(n, m, v) \
	{ 1, n, SCMP_CMP_MASKED_EQ, (m), (v), "(arg" #n " & " #m ") == " #v }
/* The kernel reads an ioctl request as an unsigned int: match what it sees. */
#define ARG_LO32_EQ(n, v) \
	{ 1, n, SCMP_CMP_MASKED_EQ, 0xffffffffULL, (v), \
	  "(arg" #n " & 0xffffffff) == " #v }
#define ARG_BITS_CLEAR(n, m) \
	{ 1, n, SCMP_CMP_MASKED_EQ, (m), 0, "(arg" #n " & " #m ") == 0" }
#define ARG_BITS_SET(n, m) \
	{ 1, n, SCMP_CMP_MASKED_EQ, (m), (m), "arg" #n " has " #m }

/*
 * The policy.  Legend:
 *
 *   syscall	the name libseccomp resolves for this architecture.
 *   action	ALLOW, or ERRNO(e): the call fails with errno e, doing nothing.
 *   condition	ALWAYS, or one comparison of one argument (argN is the N-th
 *		argument, counting from 0).  Several rows for one syscall are
 *		alternatives; a call that matches none of its syscall's rows
 *		gets the default action (SANDBOX_SECCOMP_DEFAULT, ENOSYS).
 *		libseccomp cannot express "otherwise" within a syscall, so a
 *		refusal with a specific errno is written as the complementary
 *		comparison (socketpair: == AF_UNIX / != AF_UNIX), disjoint
 *		ranges (socket) or one row per forbidden bit (clone).
 *   reason	who needs the call, or what refusing it prevents.
 *
 * Not in the table, set as filter attributes: a foreign architecture
 * (i386 "int $0x80", and x32 numbers, which libseccomp sends to the same
 * action on x86_64, see sandbox_seccomp_build()) kills the process.
 *
 * Allowed calls were found by running the check workloads (tests/sandbox/
 * seccomp-check.c: numpy, pandas, matplotlib, sqlite3, multiprocessing,
 * subprocess, threading, IPython as the runner sets it up) under the debug
 * filter and under strace.  A few the workloads do not make are kept
 * because they can do nothing an allowed call cannot: legacy twins (open
 * of openat, stat of newfstatat, pipe of pipe2, epoll_create of
 * epoll_create1, ...), which older or static binaries started by
 * subprocess still use, and harmless standard-library calls, marked
 * "user code".
 */
static const struct sandbox_seccomp_rule sandbox_seccomp_rules[] = {
	/* Memory. */
	{ "brk", ALLOW, ALWAYS, "malloc heap" },
	{ "mmap", ALLOW, ALWAYS, "memory allocation, shared libraries" },
	{ "munmap", ALLOW, ALWAYS, "memory allocation" },
	{ "mprotect", ALLOW, ALWAYS, "dynamic loader, thread stack guards" },
	{ "mremap", ALLOW, ALWAYS, "realloc of large blocks (numpy)" },
	{ "madvise", ALLOW, ALWAYS, "malloc trimming, thread stacks" },
	{ "msync", ALLOW, ALWAYS, "mmap module, numpy.memmap flush" },

	/* Threads and their synchronisation. */
	/* 0x7E020000: every CLONE_NEW* flag of clone(2); NEWTIME is clone3. */
	{ "clone", ALLOW, ARG_BITS_CLEAR(0, 0x7E020000),
	    "threads, fork: only without namespace flags" },
	{ "clone", ERRNO(EPERM), ARG_BITS_SET(0, CLONE_NEWNS),
	    "no new mount namespace" },
	{ "clone", ERRNO(EPERM), ARG_BITS_SET(0, CLONE_NEWCGROUP),
	    "no new cgroup namespace" },
	{ "clone", ERRNO(EPERM), ARG_BITS_SET(0, CLONE_NEWUTS),
	    "no new UTS namespace" },
	{ "clone", ERRNO(EPERM), ARG_BITS_SET(0, CLONE_NEWIPC),
	    "no new IPC namespace" },
	{ "clone", ERRNO(EPERM), ARG_BITS_SET(0, CLONE_NEWUSER),
	    "no new user namespace (the kernel attack surface it opens)" },
	{ "clone", ERRNO(EPERM), ARG_BITS_SET(0, CLONE_NEWPID),
	    "no new PID namespace" },
	{ "clone", ERRNO(EPERM), ARG_BITS_SET(0, CLONE_NEWNET),
	    "no new network namespace" },
	{ "clone3", ERRNO(ENOSYS), ALWAYS,
	    "flags are behind a pointer, uninspectable; glibc falls back "
	    "to clone on ENOSYS" },
	{ "futex", ALLOW, ALWAYS, "locks, condition variables, the GIL" },
	{ "set_robust_list", ALLOW, ALWAYS, "glibc thread start" },
	{ "set_tid_address", ALLOW, ALWAYS, "glibc process and thread start" },
	{ "rseq", ALLOW, ALWAYS, "glibc thread start (restartable sequences)" },
	{ "arch_prctl", ALLOW, ALWAYS, "thread-local storage setup" },
	{ "gettid", ALLOW, ALWAYS, "threading.get_native_id, logging" },
	{ "sched_yield", ALLOW, ALWAYS, "spin locks (OpenBLAS)" },
	{ "sched_getaffinity", ALLOW, ALWAYS,
	    "CPU count (OpenBLAS, os.sched_getaffinity)" },
	{ "tgkill", ALLOW, ALWAYS, "raise(), signals to one's own threads" },
	{ "exit", ALLOW, ALWAYS, "thread exit" },
	{ "exit_group", ALLOW, ALWAYS, "process exit" },

	/* Processes. */
	{ "fork", ALLOW, ALWAYS, "os.fork (the fork syscall has no flags)" },
	{ "vfork", ALLOW, ALWAYS,
	    "subprocess: _posixsubprocess spawns with vfork (fork is slow)" },
	{ "execve", ALLOW, ALWAYS,
	    "the interpreter itself, subprocess, fc-list (matplotlib), "
	    "uname -p (platform)" },
	{ "wait4", ALLOW, ALWAYS, "subprocess, multiprocessing, os.wait" },
	{ "waitid", ALLOW, ALWAYS, "os.waitid, subprocess" },
	{ "kill", ALLOW, ALWAYS,
	    "multiprocessing terminate, Popen.kill (pid namespace bounds it)" },
	{ "getpid", ALLOW, ALWAYS, "os.getpid, multiprocessing" },
	{ "getppid", ALLOW, ALWAYS, "os.getppid, multiprocessing" },
	{ "getpgrp", ALLOW, ALWAYS, "user code: os.getpgrp" },
	{ "getpgid", ALLOW, ALWAYS, "user code: os.getpgid" },
	{ "getsid", ALLOW, ALWAYS, "user code: os.getsid" },
	{ "setsid", ALLOW, ALWAYS, "subprocess start_new_session" },
	{ "setpgid", ALLOW, ALWAYS, "subprocess process_group" },

	/* Signals. */
	{ "rt_sigaction", ALLOW, ALWAYS, "signal handlers" },
	{ "rt_sigprocmask", ALLOW, ALWAYS, "signal masks, thread start" },
	{ "rt_sigreturn", ALLOW, ALWAYS, "return from a signal handler" },
	{ "restart_syscall", ALLOW, ALWAYS,
	  "the kernel resumes a poll/sleep stopped by SIGSTOP through it" },
	{ "sigaltstack", ALLOW, ALWAYS, "faulthandler, thread start" },
	{ "rt_sigsuspend", ALLOW, ALWAYS, "shells waiting, signal.pause" },
	{ "alarm", ALLOW, ALWAYS, "user code: signal.alarm timeouts" },
	{ "setitimer", ALLOW, ALWAYS, "user code: signal.setitimer" },
	{ "getitimer", ALLOW, ALWAYS, "user code: signal.getitimer" },

	/* Files: the mounts decide which files; these are the verbs. */
	{ "read", ALLOW, ALWAYS, "files, pipes, the session channel" },
	{ "write", ALLOW, ALWAYS, "files, pipes, the session channel" },
	{ "readv", ALLOW, ALWAYS, "buffered I/O" },
	{ "writev", ALLOW, ALWAYS, "buffered I/O" },
	{ "pread64", ALLOW, ALWAYS, "dynamic loader, SQLite" },
	{ "pwrite64", ALLOW, ALWAYS, "SQLite" },
	{ "open", ALLOW, ALWAYS, "file open (older callers)" },
	{ "openat", ALLOW, ALWAYS, "file open" },
	{ "close", ALLOW, ALWAYS, "file close" },
	{ "close_range", ALLOW, ALWAYS, "subprocess close_fds" },
	{ "lseek", ALLOW, ALWAYS, "file positioning" },
	{ "fstat", ALLOW, ALWAYS, "file metadata" },
	{ "stat", ALLOW, ALWAYS, "file metadata" },
	{ "lstat", ALLOW, ALWAYS, "file metadata" },
	{ "newfstatat", ALLOW, ALWAYS, "file metadata (glibc stat)" },
	{ "statx", ALLOW, ALWAYS, "file metadata (coreutils)" },
	{ "statfs", ALLOW, ALWAYS, "libselinux probe (ls), os.statvfs" },
	{ "fstatfs", ALLOW, ALWAYS, "fontconfig cache checks, os.fstatvfs" },
	{ "access", ALLOW, ALWAYS, "os.access, shutil.which" },
	{ "faccessat", ALLOW, ALWAYS, "os.access" },
	{ "faccessat2", ALLOW, ALWAYS, "os.access (glibc tries it first)" },
	{ "readlink", ALLOW, ALWAYS, "os.readlink, path resolution" },
	{ "readlinkat", ALLOW, ALWAYS, "os.readlink" },
	{ "getdents64", ALLOW, ALWAYS, "os.listdir, os.scandir" },
	{ "getcwd", ALLOW, ALWAYS, "os.getcwd" },
	{ "chdir", ALLOW, ALWAYS, "os.chdir, subprocess cwd" },
	{ "fchdir", ALLOW, ALWAYS, "os.fchdir" },
	{ "mkdir", ALLOW, ALWAYS, "os.mkdir, matplotlib cache dir" },
	{ "mkdirat", ALLOW, ALWAYS, "os.mkdir" },
	{ "rmdir", ALLOW, ALWAYS, "os.rmdir, tempfile cleanup" },
	{ "unlink", ALLOW, ALWAYS, "os.unlink, tempfile cleanup" },
	{ "unlinkat", ALLOW, ALWAYS, "os.unlink, shutil.rmtree" },
	{ "rename", ALLOW, ALWAYS, "os.rename, atomic cache writes" },
	{ "renameat", ALLOW, ALWAYS, "os.rename" },
	{ "renameat2", ALLOW, ALWAYS, "os.rename (glibc)" },
	{ "link", ALLOW, ALWAYS, "user code: os.link" },
	{ "linkat", ALLOW, ALWAYS, "user code: os.link" },
	{ "symlink", ALLOW, ALWAYS, "user code: os.symlink" },
	{ "symlinkat", ALLOW, ALWAYS, "user code: os.symlink" },
	{ "chmod", ALLOW, ALWAYS, "os.chmod, shutil.copy" },
	{ "fchmod", ALLOW, ALWAYS, "os.fchmod, SQLite" },
	{ "fchmodat", ALLOW, ALWAYS, "os.chmod" },
	{ "fchown", ALLOW, ALWAYS, "SQLite chowns its journal when euid is 0" },
	{ "umask", ALLOW, ALWAYS, "os.umask, multiprocessing" },
	{ "utimensat", ALLOW, ALWAYS, "os.utime, shutil.copystat" },
	{ "truncate", ALLOW, ALWAYS, "os.truncate" },
	{ "ftruncate", ALLOW, ALWAYS, "SQLite, shared memory, file.truncate" },
	{ "fallocate", ALLOW, ALWAYS, "os.posix_fallocate, SQLite" },
	{ "fadvise64", ALLOW, ALWAYS, "os.posix_fadvise" },
	{ "fsync", ALLOW, ALWAYS, "os.fsync, SQLite" },
	{ "fdatasync", ALLOW, ALWAYS, "SQLite" },
	{ "flock", ALLOW, ALWAYS, "fcntl.flock, lock files" },
	{ "sendfile", ALLOW, ALWAYS, "shutil.copyfile" },
	{ "copy_file_range", ALLOW, ALWAYS, "os.copy_file_range, cp" },
	/* shutil.copy2 treats ENOSYS from listxattr as fatal. */
	{ "getxattr", ALLOW, ALWAYS, "shutil.copy2 copies xattrs" },
	{ "lgetxattr", ALLOW, ALWAYS, "shutil.copy2" },
	{ "fgetxattr", ALLOW, ALWAYS, "shutil.copy2" },
	{ "listxattr", ALLOW, ALWAYS, "shutil.copy2" },
	{ "llistxattr", ALLOW, ALWAYS, "shutil.copy2" },
	{ "flistxattr", ALLOW, ALWAYS, "shutil.copy2" },
	{ "setxattr", ALLOW, ALWAYS, "shutil.copy2 (user.* only, no caps)" },
	{ "lsetxattr", ALLOW, ALWAYS, "shutil.copy2" },
	{ "fsetxattr", ALLOW, ALWAYS, "shutil.copy2" },

	/* Descriptors and waiting on them. */
	{ "fcntl", ALLOW, ALWAYS, "non-blocking, close-on-exec, locks" },
	{ "dup", ALLOW, ALWAYS, "os.dup" },
	{ "dup2", ALLOW, ALWAYS, "subprocess stdio" },
	{ "dup3", ALLOW, ALWAYS, "os.dup2, subprocess stdio" },
	{ "pipe", ALLOW, ALWAYS, "os.pipe" },
	{ "pipe2", ALLOW, ALWAYS, "subprocess, multiprocessing pipes" },
	{ "poll", ALLOW, ALWAYS, "select.poll, subprocess.communicate" },
	{ "ppoll", ALLOW, ALWAYS, "select.poll" },
	{ "select", ALLOW, ALWAYS, "select.select" },
	{ "pselect6", ALLOW, ALWAYS, "select.select (glibc)" },
	{ "epoll_create", ALLOW, ALWAYS, "asyncio, selectors" },
	{ "epoll_create1", ALLOW, ALWAYS, "asyncio, selectors" },
	{ "epoll_ctl", ALLOW, ALWAYS, "asyncio, selectors" },
	{ "epoll_wait", ALLOW, ALWAYS, "asyncio, selectors" },
	{ "epoll_pwait", ALLOW, ALWAYS, "asyncio, selectors (glibc)" },
	{ "eventfd2", ALLOW, ALWAYS, "os.eventfd, event loops" },

	/* Time. */
	{ "clock_gettime", ALLOW, ALWAYS, "time.time without the vDSO" },
	{ "clock_getres", ALLOW, ALWAYS, "time.get_clock_info" },
	{ "clock_nanosleep", ALLOW, ALWAYS, "time.sleep" },
	{ "nanosleep", ALLOW, ALWAYS, "time.sleep (older callers)" },
	{ "gettimeofday", ALLOW, ALWAYS, "time of day" },
	{ "time", ALLOW, ALWAYS, "time of day" },
	{ "getrusage", ALLOW, ALWAYS, "resource.getrusage, timeit" },

	/* Identity and system information, all read-only. */
	{ "getuid", ALLOW, ALWAYS, "os.getuid, getpass, SQLite" },
	{ "geteuid", ALLOW, ALWAYS, "os.geteuid, SQLite" },
	{ "getgid", ALLOW, ALWAYS, "os.getgid" },
	{ "getegid", ALLOW, ALWAYS, "os.getegid" },
	{ "getresuid", ALLOW, ALWAYS, "os.getresuid" },
	{ "getresgid", ALLOW, ALWAYS, "os.getresgid" },
	{ "getgroups", ALLOW, ALWAYS, "os.getgroups, os.access" },
	{ "uname", ALLOW, ALWAYS, "platform, os.uname" },
	{ "sysinfo", ALLOW, ALWAYS, "physical memory size (sysconf)" },
	{ "getrandom", ALLOW, ALWAYS, "os.urandom, hash seed, numpy RNG" },

	/*
	 * Sockets: AF_UNIX, and AF_INET/AF_INET6 on the session's own network
	 * namespace, which has only lo (sandbox-net.c): local servers and
	 * asyncio loopback pairs work, every other address is unreachable.
	 * Raw and ICMP sockets fail in the kernel (no CAP_NET_RAW, an empty
	 * ping_group_range).  Every other family is refused: AF_NETLINK would
	 * let code add devices, addresses and routes to the namespace (kernel
	 * surface, and with them a way to egress), AF_PACKET raw frames.
	 * libseccomp has no "otherwise", so the refusal is the complement of
	 * {1, 2, 10} in disjoint rows; compared on all 64 bits, so a family
	 * with high bits set (which the kernel reads as an int) is refused.
	 */
	{ "socket", ALLOW, ARG_EQ(0, AF_UNIX),
	    "the session channel, multiprocessing managers" },
	{ "socket", ALLOW, ARG_EQ(0, AF_INET),
	    "TCP/UDP on the session's own loopback (local servers, Dask)" },
	{ "socket", ALLOW, ARG_EQ(0, AF_INET6),
	    "TCP/UDP on the session's own loopback (::1)" },
	{ "socket", ERRNO(EAFNOSUPPORT), ARG_EQ(0, AF_UNSPEC),
	    "no such family" },
	{ "socket", ERRNO(EAFNOSUPPORT), ARG_EQ(0, 3),
	    "AF_AX25: no other family" },
	{ "socket", ERRNO(EAFNOSUPPORT), ARG_MASKED_EQ(0, ~3ULL, 4),
	    "AF_IPX, AF_APPLETALK, AF_NETROM, AF_BRIDGE (4-7)" },
	{ "socket", ERRNO(EAFNOSUPPORT), ARG_EQ(0, 8),
	    "AF_ATMPVC: no other family" },
	{ "socket", ERRNO(EAFNOSUPPORT), ARG_EQ(0, 9),
	    "AF_X25: no other family" },
	{ "socket", ERRNO(EAFNOSUPPORT), ARG_GT(0, AF_INET6),
	    "no netlink (16) or packet (17) sockets, nor any family above" },
	{ "socketpair", ALLOW, ARG_EQ(0, AF_UNIX),
	    "multiprocessing, asyncio self-pipe" },
	{ "socketpair", ERRNO(EAFNOSUPPORT), ARG_NE(0, AF_UNIX),
	    "only AF_UNIX pairs" },
	{ "connect", ALLOW, ALWAYS, "multiprocessing managers, local clients" },
	{ "bind", ALLOW, ALWAYS, "multiprocessing managers, local servers" },
	{ "listen", ALLOW, ALWAYS, "multiprocessing managers, local servers" },
	{ "accept", ALLOW, ALWAYS, "multiprocessing managers, local servers" },
	{ "accept4", ALLOW, ALWAYS, "multiprocessing managers, local servers" },
	{ "sendto", ALLOW, ALWAYS, "socket send" },
	{ "recvfrom", ALLOW, ALWAYS, "socket receive" },
	{ "sendmsg", ALLOW, ALWAYS, "socket send, descriptor passing" },
	{ "recvmsg", ALLOW, ALWAYS, "socket receive, descriptor passing" },
	{ "shutdown", ALLOW, ALWAYS, "socket shutdown" },
	{ "getsockname", ALLOW, ALWAYS, "socket introspection" },
	{ "getpeername", ALLOW, ALWAYS, "socket introspection" },
	{ "getsockopt", ALLOW, ALWAYS, "socket options" },
	{ "setsockopt", ALLOW, ALWAYS, "socket options" },

	/* ioctl: a short list of harmless requests. */
	{ "ioctl", ALLOW, ARG_LO32_EQ(1, TCGETS), "isatty(), io.open" },
	{ "ioctl", ALLOW, ARG_LO32_EQ(1, TIOCGWINSZ), "os.get_terminal_size" },
	{ "ioctl", ALLOW, ARG_LO32_EQ(1, TIOCGPGRP), "tcgetpgrp()" },
	{ "ioctl", ALLOW, ARG_LO32_EQ(1, FIONREAD), "bytes waiting on a pipe" },
	{ "ioctl", ALLOW, ARG_LO32_EQ(1, FIONBIO), "non-blocking mode" },
	{ "ioctl", ALLOW, ARG_LO32_EQ(1, FIOCLEX), "close-on-exec" },
	{ "ioctl", ALLOW, ARG_LO32_EQ(1, FIONCLEX), "clear close-on-exec" },
	/*
	 * No pty requests: the sandbox has no devpts, and the runner sends
	 * "!cmd" through system_raw, not IPython's default pexpect-on-a-pty.
	 */
	{ "ioctl", ERRNO(EPERM), ARG_LO32_EQ(1, TIOCSTI),
	    "no typing into a terminal (also with high bits set)" },
	{ "ioctl", ERRNO(EPERM), ARG_LO32_EQ(1, TIOCLINUX),
	    "no console selection tricks (also with high bits set)" },

	/* prctl: naming and querying only. */
	{ "prctl", ALLOW, ARG_EQ(0, PR_SET_NAME), "thread names" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_GET_NAME), "thread names" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_SET_PDEATHSIG),
	    "children dying with their parent" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_GET_PDEATHSIG), "query" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_GET_DUMPABLE), "query" },
	{ "prctl", ERRNO(EPERM), ARG_EQ(0, PR_SET_DUMPABLE),
	    "could re-expose /proc/PID files; nothing needs it" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_GET_NO_NEW_PRIVS), "query" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_SET_NO_NEW_PRIVS),
	    "one-way, only ever tightens" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_CAPBSET_READ), "query (libcap)" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_GET_SECCOMP), "query" },
	{ "prctl", ALLOW, ARG_EQ(0, PR_SET_VMA),
	    "labels anonymous mappings (newer glibc malloc); harmless" },

	/* Resource limits and execution domain: read, never change. */
	{ "prlimit64", ALLOW, ARG_EQ(2, 0), "getrlimit (glibc), resource" },
	{ "prlimit64", ERRNO(EPERM), ARG_NE(2, 0),
	    "limits are set by the sandbox, not by the session" },
	{ "getrlimit", ALLOW, ALWAYS, "resource.getrlimit" },
	{ "setrlimit", ERRNO(EPERM), ALWAYS, "limits are set by the sandbox" },
	{ "personality", ALLOW, ARG_EQ(0, 0xffffffff), "query the persona" },
	{ "personality", ALLOW, ARG_EQ(0, PER_LINUX),
	    "plain Linux; others (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) get "
	    "the default" },

	/* Denied: reaching into other processes. */
	{ "ptrace", ERRNO(EPERM), ALWAYS, "debugging other processes" },
	{ "process_vm_readv", ERRNO(EPERM), ALWAYS, "reads other processes" },
	{ "process_vm_writev", ERRNO(EPERM), ALWAYS, "writes other processes" },
	{ "kcmp", ERRNO(EPERM), ALWAYS, "probes other processes' state" },
	{ "pidfd_getfd", ERRNO(EPERM), ALWAYS, "steals other processes' fds" },

	/* Denied: kernel facilities with a history of exploits. */
	{ "keyctl", ERRNO(EPERM), ALWAYS, "keyrings are not namespaced" },
	{ "add_key", ERRNO(EPERM), ALWAYS, "keyrings are not namespaced" },
	{ "request_key", ERRNO(EPERM), ALWAYS, "kernel keyrings" },
	{ "bpf", ERRNO(EPERM), ALWAYS, "eBPF programs and maps" },
	{ "perf_event_open", ERRNO(EPERM), ALWAYS,
	    "performance counters: side channels, exploits" },
	{ "userfaultfd", ERRNO(EPERM), ALWAYS,
	    "stalls the kernel at will, an exploit primitive" },
	{ "io_uring_setup", ERRNO(EPERM), ALWAYS,
	    "io_uring bypasses seccomp for its operations" },
	{ "io_uring_enter", ERRNO(EPERM), ALWAYS, "io_uring" },
	{ "io_uring_register", ERRNO(EPERM), ALWAYS, "io_uring" },

	/* Denied: changing the sandbox's own shape. */
	{ "mount", ERRNO(EPERM), ALWAYS, "the mount table is fixed" },
	{ "umount2", ERRNO(EPERM), ALWAYS, "the mount table is fixed" },
	{ "pivot_root", ERRNO(EPERM), ALWAYS, "the root is fixed" },
	{ "chroot", ERRNO(EPERM), ALWAYS, "the root is fixed" },
	{ "unshare", ERRNO(EPERM), ALWAYS, "no new namespaces" },
	{ "setns", ERRNO(EPERM), ALWAYS, "no joining other namespaces" },
	{ "fsopen", ERRNO(EPERM), ALWAYS, "new mount API" },
	{ "fsmount", ERRNO(EPERM), ALWAYS, "new mount API" },
	{ "fsconfig", ERRNO(EPERM), ALWAYS, "new mount API" },
	{ "fspick", ERRNO(EPERM), ALWAYS, "new mount API" },
	{ "open_tree", ERRNO(EPERM), ALWAYS, "new mount API" },
	{ "move_mount", ERRNO(EPERM), ALWAYS, "new mount API" },
	{ "mount_setattr", ERRNO(EPERM), ALWAYS,
	    "new mount API: could drop read-only" },

	/* Denied: the machine, not the session. */
	{ "kexec_load", ERRNO(EPERM), ALWAYS, "loads a new kernel" },
	{ "kexec_file_load", ERRNO(EPERM), ALWAYS, "loads a new kernel" },
	{ "init_module", ERRNO(EPERM), ALWAYS, "kernel modules" },
	{ "finit_module", ERRNO(EPERM), ALWAYS, "kernel modules" },
	{ "delete_module", ERRNO(EPERM), ALWAYS, "kernel modules" },
	{ "open_by_handle_at", ERRNO(EPERM), ALWAYS,
	    "opens files outside the mount tree (shocker)" },
	{ "name_to_handle_at", ERRNO(EPERM), ALWAYS,
	    "companion of open_by_handle_at" },
	{ "swapon", ERRNO(EPERM), ALWAYS, "host swap" },
	{ "swapoff", ERRNO(EPERM), ALWAYS, "host swap" },
	{ "reboot", ERRNO(EPERM), ALWAYS, "host power" },
	{ "syslog", ERRNO(EPERM), ALWAYS, "host kernel log" },
	{ "acct", ERRNO(EPERM), ALWAYS, "host process accounting" },
	{ "quotactl", ERRNO(EPERM), ALWAYS, "host disk quotas" },
	{ "iopl", ERRNO(EPERM), ALWAYS, "raw I/O ports" },
	{ "ioperm", ERRNO(EPERM), ALWAYS, "raw I/O ports" },
	{ "modify_ldt", ERRNO(EPERM), ALWAYS,
	    "16-bit segments, an exploit primitive" },
	{ "sethostname", ERRNO(EPERM), ALWAYS, "the hostname is fixed" },
	{ "setdomainname", ERRNO(EPERM), ALWAYS, "the domain name is fixed" },
	{ "settimeofday", ERRNO(EPERM), ALWAYS, "host clock" },
	{ "clock_settime", ERRNO(EPERM), ALWAYS, "host clock" },
	{ "adjtimex", ERRNO(EPERM), ALWAYS, "host clock" },
	{ "clock_adjtime", ERRNO(EPERM), ALWAYS, "host clock" },

	/* Denied: fair sharing of the host. */
	{ "mbind", ERRNO(EPERM), ALWAYS, "NUMA placement is the host's" },
	{ "set_mempolicy", ERRNO(EPERM), ALWAYS, "NUMA placement" },
	{ "migrate_pages", ERRNO(EPERM), ALWAYS, "NUMA placement" },
	{ "move_pages", ERRNO(EPERM), ALWAYS, "NUMA placement" },
	{ "sched_setattr", ERRNO(EPERM), ALWAYS, "real-time scheduling" },
	{ "sched_setscheduler", ERRNO(EPERM), ALWAYS, "real-time scheduling" },

	/* Denied: rarely used, often exploited. */
	{ "vmsplice", ERRNO(EPERM), ALWAYS, "Dirty Pipe-style exploits" },
	{ "splice", ERRNO(EPERM), ALWAYS, "Dirty Pipe-style exploits" },
	{ "tee", ERRNO(EPERM), ALWAYS, "page-cache exploits" },
	{ "memfd_secret", ERRNO(EPERM), ALWAYS,
	    "memory hidden from the kernel and the memory cgroup's view" },
	{ "execveat", ERRNO(EPERM), ALWAYS,
	    "exec of an fd; execve is enough" },

	/*
	 * Denied: System V IPC.  Segments outlive their process until the IPC
	 * namespace is torn down, lazily, so a session could hoard shared
	 * memory past its memory limit.  multiprocessing uses POSIX shm files
	 * in /dev/shm instead, which the tmpfs size bounds.
	 */
	{ "shmget", ERRNO(EPERM), ALWAYS, "SysV shared memory" },
	{ "shmat", ERRNO(EPERM), ALWAYS, "SysV shared memory" },
	{ "shmctl", ERRNO(EPERM), ALWAYS, "SysV shared memory" },
	{ "shmdt", ERRNO(EPERM), ALWAYS, "SysV shared memory" },
	{ "msgget", ERRNO(EPERM), ALWAYS, "SysV message queues" },
	{ "msgsnd", ERRNO(EPERM), ALWAYS, "SysV message queues" },
	{ "msgrcv", ERRNO(EPERM), ALWAYS, "SysV message queues" },
	{ "msgctl", ERRNO(EPERM), ALWAYS, "SysV message queues" },
	{ "semget", ERRNO(EPERM), ALWAYS, "SysV semaphores" },
	{ "semop", ERRNO(EPERM), ALWAYS, "SysV semaphores" },
	{ "semtimedop", ERRNO(EPERM), ALWAYS, "SysV semaphores" },
	{ "semctl", ERRNO(EPERM), ALWAYS, "SysV semaphores" },
};

static scmp_filter_ctx	 sandbox_seccomp_build(uint32_t, char **);
static int		 sandbox_seccomp_add(scmp_filter_ctx, uint32_t,
			     const struct sandbox_seccomp_rule *, char **);
static int		 sandbox_seccomp_load(scmp_filter_ctx, char **);
static int		 sandbox_seccomp_fail(char **, const char *, int);
static const char	*sandbox_seccomp_action_name(uint32_t, char *, size_t);

/*
 * Build the filter for this process's architecture.  Only the native
 * architecture is in the filter, so anything else takes the bad-architecture
 * action: i386 "int $0x80" arrives with AUDIT_ARCH_I386, and libseccomp puts
 * a range check (nr >= __X32_SYSCALL_BIT, except -1 which tracers use to skip
 * a call) in front of the x86_64 rules that takes the same action, so x32
 * numbers never reach the table.  Both kill the whole process: a process that
 * tries another ABI is attacking, not porting.  The PFC export does not show
 * the x32 check; the BPF does, and tests/sandbox/seccomp-check tests it.
 */
static scmp_filter_ctx
sandbox_seccomp_build(uint32_t default_action, char **cause)
{
	scmp_filter_ctx	 ctx;
	size_t		 i;
	int		 r;

	if ((ctx = seccomp_init(default_action)) == NULL) {
		*cause = strdup("seccomp_init failed");
		return (NULL);
	}
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
	/* Report the kernel's errno from seccomp_load, not libseccomp's. */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	if (r != 0) {
		if (asprintf(cause, "seccomp_attr_set: %s", strerror(-r)) == -1)
			*cause = NULL;
		seccomp_release(ctx);
		return (NULL);
	}
	/*
	 * Rows go in as written, without SCMP_FLTATR_CTL_OPTIMIZE's binary
	 * tree: the PFC export stays readable, and the kernel's seccomp cache
	 * skips the filter anyway for calls allowed whatever their arguments.
	 */
	for (i = 0; i < sizeof sandbox_seccomp_rules /
	    sizeof sandbox_seccomp_rules[0]; i++) {
		if (sandbox_seccomp_add(ctx, default_action,
		    &sandbox_seccomp_rules[i], cause) != 0) {
			seccomp_release(ctx);
			return (NULL);
		}
	}
	return (ctx);
}

/*
 * Add one row.  A row naming a syscall this libseccomp does not know fails
 * the build if it allows (the policy would silently differ from the table)
 * and is skipped if it denies (the default action denies it anyway).  A row
 * whose action is the default action (clone3) is documentation only:
 * libseccomp refuses such a rule with EACCES, and the default does the same.
 */
static int
sandbox_seccomp_add(scmp_filter_ctx ctx, uint32_t default_action,
    const struct sandbox_seccomp_rule *rule, char **cause)
{
	struct scmp_arg_cmp	 cmp;
	int			 nr, r;

	if (rule->action == default_action)
		return (0);
	nr = seccomp_syscall_resolve_name(rule->name);
	if (nr == __NR_SCMP_ERROR) {
		if (rule->action != SCMP_ACT_ALLOW)
			return (0);
		if (asprintf(cause, "seccomp: unknown syscall %s",
		    rule->name) == -1)
			*cause = NULL;
		return (-1);
	}
	if (!rule->cond.present)
		r = seccomp_rule_add_exact(ctx, rule->action, nr, 0);
	else {
		cmp.arg = rule->cond.arg;
		cmp.op = rule->cond.op;
		if (cmp.op == SCMP_CMP_MASKED_EQ) {
			cmp.datum_a = rule->cond.mask;
			cmp.datum_b = rule->cond.value;
		} else {
			cmp.datum_a = rule->cond.value;
			cmp.datum_b = 0;
		}
		r = seccomp_rule_add_exact_array(ctx, rule->action, nr, 1,
		    &cmp);
	}
	if (r != 0) {
		if (asprintf(cause, "seccomp_rule_add %s (%s): %s", rule->name,
		    rule->cond.text, strerror(-r)) == -1)
			*cause = NULL;
		return (-1);
	}
	return (0);
}

static int
sandbox_seccomp_load(scmp_filter_ctx ctx, char **cause)
{
	int	 r;

	/*
	 * The caller set no_new_privs already; setting it again costs nothing
	 * and makes this function safe to call on its own.
	 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		if (asprintf(cause, "prctl(PR_SET_NO_NEW_PRIVS): %s",
		    strerror(errno)) == -1)
			*cause = NULL;
		return (-1);
	}
	if ((r = seccomp_load(ctx)) != 0) {
		if (asprintf(cause, "seccomp_load: %s", strerror(-r)) == -1)
			*cause = NULL;
		return (-1);
	}
	return (0);
}

/*
 * The policy compiled once, for a zygote: libseccomp takes milliseconds to
 * compile the table, and every child would do it again.  The program is
 * what seccomp_load() would load, exported through a memfd.
 */
static struct sock_filter	*seccomp_compiled;
static unsigned short		 seccomp_compiled_len;

int
sandbox_seccomp_prepare(char **cause)
{
	scmp_filter_ctx	 ctx;
	struct stat	 st;
	int		 fd, r;

	*cause = NULL;
	if (seccomp_compiled != NULL)
		return (0);
	if ((ctx = sandbox_seccomp_build(SANDBOX_SECCOMP_DEFAULT,
	    cause)) == NULL)
		return (-1);
	if ((fd = memfd_create("cellblock-seccomp", MFD_CLOEXEC)) == -1) {
		seccomp_release(ctx);
		return (sandbox_seccomp_fail(cause, "memfd_create", errno));
	}
	r = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (r != 0 || fstat(fd, &st) != 0 || st.st_size == 0 ||
	    st.st_size % sizeof *seccomp_compiled != 0 ||
	    st.st_size / sizeof *seccomp_compiled > BPF_MAXINSNS ||
	    (seccomp_compiled = malloc(st.st_size)) == NULL ||
	    pread(fd, seccomp_compiled, st.st_size, 0) != st.st_size) {
		free(seccomp_compiled);
		seccomp_compiled = NULL;
		close(fd);
		return (sandbox_seccomp_fail(cause, "seccomp_export_bpf",
		    r != 0 ? -r : EINVAL));
	}
	seccomp_compiled_len = st.st_size / sizeof *seccomp_compiled;
	close(fd);
	return (0);
}

static int
sandbox_seccomp_fail(char **cause, const char *what, int error)
{
	if (asprintf(cause, "%s: %s", what, strerror(error)) == -1)
		*cause = NULL;
	return (-1);
}

/* The prepared program, with the flag seccomp_load() would have used. */
static int
sandbox_seccomp_install_compiled(char **cause)
{
	struct sock_fprog	prog = { seccomp_compiled_len,
				    seccomp_compiled };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return (sandbox_seccomp_fail(cause, "PR_SET_NO_NEW_PRIVS",
		    errno));
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
	    SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		return (sandbox_seccomp_fail(cause, "seccomp", errno));
	return (0);
}

/* Install the session policy in the calling process. */
int
sandbox_seccomp_install(char **cause)
{
	scmp_filter_ctx	 ctx;
	int		 r;

	*cause = NULL;
	if (seccomp_compiled != NULL)
		return (sandbox_seccomp_install_compiled(cause));
	ctx = sandbox_seccomp_build(SANDBOX_SECCOMP_DEFAULT, cause);
	if (ctx == NULL)
		return (-1);
	/*
	 * Filter every thread, not only the caller: a zygote-born session may
	 * already run helper threads (OpenBLAS) that must not stay unfiltered.
	 */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (r != 0) {
		if (asprintf(cause, "seccomp_attr_set(TSYNC): %s",
		    strerror(-r)) == -1)
			*cause = NULL;
		seccomp_release(ctx);
		return (-1);
	}
	r = sandbox_seccomp_load(ctx, cause);
	seccomp_release(ctx);
	return (r);
}

/*
 * Install the same table, but with unlisted syscalls reported to a
 * supervisor through a seccomp user-notification fd (returned in *notify_fd)
 * instead of failing with ENOSYS.  The supervisor lets each one continue and
 * so collects every missing allowance of a workload in one run.  Only
 * tests/sandbox/seccomp-check (--find-missing) calls this; the shim never
 * does, and no environment variable or option switches it on, so it cannot
 * weaken a real sandbox.  Single-threaded callers only: the kernel refuses
 * thread synchronisation together with a listener.
 */
int
sandbox_seccomp_install_debug(int *notify_fd, char **cause)
{
	scmp_filter_ctx	 ctx;

	*cause = NULL;
	*notify_fd = -1;
	if ((ctx = sandbox_seccomp_build(SCMP_ACT_NOTIFY, cause)) == NULL)
		return (-1);
	if (sandbox_seccomp_load(ctx, cause) != 0) {
		seccomp_release(ctx);
		return (-1);
	}
	*notify_fd = seccomp_notify_fd(ctx);
	seccomp_release(ctx);
	if (*notify_fd < 0) {
		*cause = strdup("seccomp_notify_fd failed");
		return (-1);
	}
	return (0);
}

/* The action as the table's legend spells it: ALLOW, ERRNO(EPERM), ... */
static const char *
sandbox_seccomp_action_name(uint32_t action, char *buf, size_t len)
{
	const char	*e;

	if (action == SCMP_ACT_ALLOW)
		return ("ALLOW");
	if (action == SCMP_ACT_KILL_PROCESS)
		return ("KILL_PROCESS");
	if (action == SCMP_ACT_NOTIFY)
		return ("NOTIFY");
	if ((action & 0xffff0000U) == SCMP_ACT_ERRNO(0)) {
		if ((e = strerrorname_np(action & 0xffff)) == NULL)
			e = "?";
		snprintf(buf, len, "ERRNO(%s)", e);
		return (buf);
	}
	snprintf(buf, len, "0x%08x", action);
	return (buf);
}

/* Print the table, then libseccomp's rendering of the filter it loads. */
int
sandbox_seccomp_print(FILE *f, char **cause)
{
	scmp_filter_ctx			 ctx;
	const struct sandbox_seccomp_rule	*rule;
	const struct scmp_version	*v;
	char				 buf[64];
	size_t				 i;
	int				 r;

	*cause = NULL;
	ctx = sandbox_seccomp_build(SANDBOX_SECCOMP_DEFAULT, cause);
	if (ctx == NULL)
		return (-1);
	v = seccomp_version();
	fprintf(f, "# cellblock seccomp policy (libseccomp %u.%u.%u)\n",
	    v->major, v->minor, v->micro);
	fprintf(f, "# default action: %s; foreign architecture "
	    "(i386, x32): KILL_PROCESS\n",
	    sandbox_seccomp_action_name(SANDBOX_SECCOMP_DEFAULT, buf,
	    sizeof buf));
	fprintf(f, "%-18s %-20s %-42s %s\n", "syscall", "action",
	    "condition", "reason");
	for (i = 0; i < sizeof sandbox_seccomp_rules /
	    sizeof sandbox_seccomp_rules[0]; i++) {
		rule = &sandbox_seccomp_rules[i];
		fprintf(f, "%-18s %-20s %-42s %s\n", rule->name,
		    sandbox_seccomp_action_name(rule->action, buf, sizeof buf),
		    rule->cond.text, rule->reason);
	}
	fprintf(f, "\n# libseccomp pseudo filter code, as loaded (x32 "
	    "numbers take the architecture action before these rules)\n");
	/* The export writes to the fd directly, past stdio's buffer. */
	if (fflush(f) == EOF) {
		if (asprintf(cause, "fflush: %s", strerror(errno)) == -1)
			*cause = NULL;
		seccomp_release(ctx);
		return (-1);
	}
	r = seccomp_export_pfc(ctx, fileno(f));
	seccomp_release(ctx);
	if (r != 0) {
		if (asprintf(cause, "seccomp_export_pfc: %s",
		    strerror(-r)) == -1)
			*cause = NULL;
		return (-1);
	}
	return (0);
}
