/* sandbox-check.c: build real sandboxes, check them from inside and out. */

/*
 * Usage: sandbox-check [-v]	(as root; -v prints the probes' JSON)
 *
 * Each run forks an "outer" process that does what cellblock-shim does
 * (drop groups, unshare, wait for its maps, fork pid 1) and runs the
 * library's steps for real, then execs /usr/bin/python3 with a probe.
 * The probe prints what it sees as one JSON object (one key a line) on
 * the channel fd; the checker compares each value with an expectation
 * written here by hand, and looks at the sandbox from outside through
 * the host's /proc.  Ends with "N passed, N failed"; exits 1 on failure.
 *
 *   run	plan				ends by
 *   full	host system, generated /etc	SIGTERM to the outer process
 *   rootfs	a prepared root			the probe's sys.exit(7)
 *   etcdir	a prepared /etc			SIGKILL to the outer process
 *   broken	a work dir that does not exist	setup failing, exit 250
 *
 * The checker runs in a private mount namespace of its own, where it
 * mounts a writable tmpfs at /usr/src holding a setuid-root copy of id(1):
 * the sandbox must see it read-only and nosuid, as it sees the rest of
 * /usr.  Nothing of that reaches the host's mount table.
 */

#include <sys/types.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

#define PYTHON		"/usr/bin/python3"	/* Debian's, with numpy & co */
#define HOST_ID_BASE	231072		/* a typical subuid range start */
#define TMP_BYTES	(16ULL << 20)
#define FSIZE_BYTES	(32ULL << 20)
#define NOFILE		256
#define CHANNEL_FD	3
#define SUBMOUNT	"/usr/src"	/* the test's writable tmpfs in /usr */
#define SETUP_FAILED	250		/* exit code of a failed setup step */
#define HANDSHAKE_MS	10000
#define FACTS_MS	240000		/* cold imports of numpy & co */
#define EXIT_MS		20000
#define NS_FLAGS	(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|\
			 CLONE_NEWIPC|CLONE_NEWUTS)

/* One sandbox, seen from the checker. */
struct run {
	const char	*name;
	pid_t		 outer;		/* the shim's stand-in */
	int		 pidfd;		/* of outer: bounded waits */
	int		 chan;		/* the checker's end of the channel */
	char		*facts;		/* the probe's JSON */
	pid_t		 init;		/* pid 1, as a host pid */
	pid_t		 interp;	/* the interpreter, as a host pid */
	char		 pidns[64];	/* its pid namespace, "pid:[N]" */
};

/* The checker's scratch tree. */
struct scratch {
	char	base[64];
	char	work[128];
	char	runner[128];
	char	state[128];
	char	etc[128];
	char	rootfs[128];
	uid_t	host_id;
};

static int	 passed, failed;
static int	 verbose;

static void	 check(int, const char *, const char *, ...)
		     __attribute__((format(printf, 3, 4)));
static void	 die(const char *, ...)
		     __attribute__((noreturn, format(printf, 1, 2)));
static void	 setup_fail(const char *, char *) __attribute__((noreturn));
static void	 interp_main(const struct sandbox_plan *, char *const [])
		     __attribute__((noreturn));
static void	 init_main(const struct sandbox_plan *, char *const [])
		     __attribute__((noreturn));
static void	 outer_main(const struct sandbox_plan *, char *const [], int,
		     int, int) __attribute__((noreturn));
static int	 wait_fd(int, int);
static int	 run_start(struct run *, const struct sandbox_plan *,
		     char *const [], uid_t);
static int	 run_read_facts(struct run *);
static int	 run_wait(struct run *, int, int *);
static char	*fact_get(const char *, const char *);
static void	 expect(struct run *, const char *, const char *);
static pid_t	 find_child(pid_t);
static int	 ns_members(const char *);
static char	*proc_status_line(pid_t, const char *);
static char	*json_names(const char **, size_t);
static int	 cmp_str(const void *, const void *);
static int	 exists(int, const char *);
static void	 write_file(const char *, const char *, mode_t);
static void	 copy_file(const char *, const char *, mode_t);
static void	 scratch_setup(struct scratch *);
static void	 scratch_cleanup(struct scratch *);
static void	 plan_init(struct sandbox_plan *, const struct scratch *);
static void	 run_full(struct scratch *);
static void	 run_rootfs(struct scratch *);
static void	 run_etcdir(struct scratch *);
static void	 run_broken(struct scratch *);
static void	 check_maps_refuse_root(void);
static const char *rname(const struct run *, const char *);
static void	 run_find(struct run *);
static void	 check_outside(struct run *, uid_t);
static void	 check_emptied(struct run *);
static void	 expect_full(struct run *, const struct scratch *);
static int	 scratch_rm(const char *, const struct stat *, int,
		     struct FTW *);

/* The probes: a shared prelude, then one body per run. */
#define PROBE_PRELUDE \
	"import errno, json, os, socket, sys\n" \
	"facts = []\n" \
	"def fact(name, fn):\n" \
	"    try:\n" \
	"        v = fn()\n" \
	"    except Exception as e:\n" \
	"        v = 'error: %s: %s' % (type(e).__name__, e)\n" \
	"    facts.append((name, v))\n" \
	"def err(fn):\n" \
	"    try:\n" \
	"        fn()\n" \
	"    except OSError as e:\n" \
	"        return errno.errorcode.get(e.errno, str(e.errno))\n" \
	"    return 'ok'\n" \
	"def send():\n" \
	"    out = '{\\n' + ',\\n'.join(json.dumps(k) + ': ' +\n" \
	"        json.dumps(v, sort_keys=True, separators=(',', ':'))\n" \
	"        for k, v in facts) + '\\n}\\n'\n" \
	"    chan = socket.socket(fileno=3)\n" \
	"    chan.sendall(out.encode())\n" \
	"    return chan\n"

static const char probe_full[] = PROBE_PRELUDE
	"import ctypes, pwd, resource, stat, subprocess, time\n"
	"state_dir, work_host, sub = sys.argv[1], sys.argv[2], sys.argv[3]\n"
	"tmp_bytes, fsize = int(sys.argv[4]), int(sys.argv[5])\n"
	"MB = 1 << 20\n"
	"def create(p):\n"
	"    with open(p, 'w') as f:\n"
	"        f.write('x')\n"
	"def fill(p, limit):\n"
	"    try:\n"
	"        with open(p, 'wb') as f:\n"
	"            for i in range(limit // MB + 2):\n"
	"                f.write(b'\\0' * MB)\n"
	"                f.flush()\n"
	"    finally:\n"
	"        if os.path.exists(p):\n"
	"            os.unlink(p)\n"
	"def fill_inodes(d, limit):\n"
	"    os.mkdir(d)\n"
	"    try:\n"
	"        for i in range(limit):\n"
	"            open('%s/%d' % (d, i), 'w').close()\n"
	"    finally:\n"
	"        for n in os.listdir(d):\n"
	"            os.unlink(d + '/' + n)\n"
	"        os.rmdir(d)\n"
	"def mounts(want):\n"
	"    r = []\n"
	"    for line in open('/proc/self/mountinfo'):\n"
	"        f = line.split()\n"
	"        if want(f[4], f[5].split(',')):\n"
	"            r.append(f[4])\n"
	"    return sorted(r)\n"
	"def pids():\n"
	"    return sorted(int(p) for p in os.listdir('/proc')\n"
	"                  if p.isdigit())\n"
	"def state(pid):\n"
	"    s = open('/proc/%d/stat' % pid).read()\n"
	"    return s.rsplit(')', 1)[1].split()[0]\n"
	"def status():\n"
	"    keep = ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb',\n"
	"            'NoNewPrivs')\n"
	"    r = {}\n"
	"    for line in open('/proc/self/status'):\n"
	"        k = line.split(':')[0]\n"
	"        if k in keep:\n"
	"            r[k] = line.split()[1]\n"
	"    return r\n"
	"def fds():\n"
	"    r = []\n"
	"    for n in sorted(os.listdir('/proc/self/fd'), key=int):\n"
	"        try:\n"
	"            t = os.readlink('/proc/self/fd/' + n)\n"
	"        except OSError:\n"
	"            continue\n"
	"        r.append([n, 'socket' if t.startswith('socket:') else t])\n"
	"    return r\n"
	"def sparse():\n"
	"    with open('/home/session/sparse', 'wb') as f:\n"
	"        try:\n"
	"            f.seek(fsize)\n"
	"            f.write(b'x')\n"
	"            f.flush()\n"
	"        finally:\n"
	"            os.unlink('/home/session/sparse')\n"
	"def devices():\n"
	"    with open('/dev/null', 'w') as f:\n"
	"        f.write('x')\n"
	"    r = [len(open('/dev/urandom', 'rb').read(16)),\n"
	"         open('/dev/zero', 'rb').read(8) == b'\\0' * 8,\n"
	"         len(open('/dev/random', 'rb').read(8))]\n"
	"    def full():\n"
	"        with open('/dev/full', 'w') as f:\n"
	"            f.write('x')\n"
	"    return r + [err(full)]\n"
	"def mount_tmpfs():\n"
	"    libc = ctypes.CDLL(None, use_errno=True)\n"
	"    if libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0:\n"
	"        return 'ok'\n"
	"    return errno.errorcode[ctypes.get_errno()]\n"
	"def net():\n"
	"    s = socket.socket()\n"
	"    s.settimeout(5)\n"
	"    t = socket.socket()\n"
	"    t.settimeout(5)\n"
	"    return [[list(i) for i in socket.if_nameindex()],\n"
	"            err(lambda: s.connect(('127.0.0.1', 9))),\n"
	"            err(lambda: t.connect(('192.0.2.1', 9)))]\n"
	"def numpy_ok():\n"
	"    import numpy as np\n"
	"    a = np.random.default_rng(0).random((200, 200)) + np.eye(200)\n"
	"    return bool(np.allclose(a @ np.linalg.inv(a), np.eye(200)))\n"
	"def pandas_ok():\n"
	"    import pandas as pd\n"
	"    df = pd.DataFrame({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]})\n"
	"    return df.groupby('k')['v'].sum().tolist()\n"
	"def mpl_ok():\n"
	"    import io, matplotlib\n"
	"    matplotlib.use('Agg')\n"
	"    import matplotlib.pyplot as plt\n"
	"    fig, ax = plt.subplots()\n"
	"    ax.plot([1, 2, 3], [3, 1, 2])\n"
	"    ax.set_title('sandbox')\n"
	"    buf = io.BytesIO()\n"
	"    fig.savefig(buf, format='png')\n"
	"    return buf.getvalue()[:8] == b'\\x89PNG\\r\\n\\x1a\\n'\n"
	"def sqlite_ok():\n"
	"    import sqlite3\n"
	"    c = sqlite3.connect('/tmp/probe.db')\n"
	"    c.execute('create table t (x)')\n"
	"    c.executemany('insert into t values (?)', [(1,), (2,), (3,)])\n"
	"    c.commit()\n"
	"    n = c.execute('select count(*) from t').fetchone()[0]\n"
	"    c.close()\n"
	"    os.unlink('/tmp/probe.db')\n"
	"    return n\n"
	"def pool_ok():\n"
	"    import multiprocessing\n"
	"    with multiprocessing.Pool(2) as p:\n"
	"        return p.map(abs, [-1, -2, -3])\n"
	"def run(argv):\n"
	"    return subprocess.run(argv, stdin=subprocess.DEVNULL, text=True,\n"
	"                          capture_output=True, timeout=30)\n"
	"def setuid():\n"
	"    st = os.stat(sub + '/id-suid')\n"
	"    r = run([sub + '/id-suid', '-u'])\n"
	"    return [bool(st.st_mode & stat.S_ISUID), r.stdout.strip()]\n"
	"def su():\n"
	"    r = run(['/usr/bin/su', '-c', 'id -u', 'root'])\n"
	"    return [bool(os.stat('/usr/bin/su').st_mode & stat.S_ISUID),\n"
	"            r.returncode != 0, r.stdout.strip()]\n"
	"def orphan():\n"
	"    r, w = os.pipe()\n"
	"    pid = os.fork()\n"
	"    if pid == 0:\n"
	"        g = os.fork()\n"
	"        if g == 0:\n"
	"            time.sleep(0.3)\n"
	"            os._exit(0)\n"
	"        os.write(w, str(g).encode())\n"
	"        os._exit(0)\n"
	"    os.close(w)\n"
	"    g = int(os.read(r, 32))\n"
	"    os.waitpid(pid, 0)\n"
	"    for i in range(100):\n"
	"        try:\n"
	"            s = state(g)\n"
	"        except (FileNotFoundError, ProcessLookupError):\n"
	"            # a read racing the reap: the entry opened, then gone\n"
	"            return 'reaped'\n"
	"        time.sleep(0.05)\n"
	"    return 'still there, state ' + s\n"
	"def zombies():\n"
	"    n = 0\n"
	"    for p in pids():\n"
	"        try:\n"
	"            n += state(p) == 'Z'\n"
	"        except OSError:\n"
	"            pass\n"
	"    return n\n"
	"def absent():\n"
	"    paths = ['/root', '/run', '/var', '/sys', '/boot', '/mnt',\n"
	"             '/srv', '/media', '/etc/shadow', '/etc/gshadow',\n"
	"             '/etc/sudoers', '/etc/ssl/private', '/etc/machine-id',\n"
	"             '/proc/sys', '/proc/kcore', '/proc/sysrq-trigger',\n"
	"             '/proc/cpuinfo', '/dev/pts', '/dev/mqueue', '/dev/tty',\n"
	"             '/dev/ptmx', state_dir, work_host]\n"
	"    return [p for p in paths if os.path.lexists(p)]\n"
	"def write_denied():\n"
	"    r = []\n"
	"    for p in ['/probe', '/usr/probe', sub + '/probe', '/etc/probe',\n"
	"              '/dev/probe', '/opt/cellblock/runner/probe',\n"
	"              '/home/probe']:\n"
	"        r.append([p, err(lambda: create(p))])\n"
	"    return r + [[sub + '/dir', err(lambda: os.mkdir(sub + '/dir'))]]\n"
	"def writable():\n"
	"    return [err(lambda: create(p)) for p in\n"
	"            ['/tmp/probe', '/dev/shm/probe', '/home/session/probe']]\n"
	"def rlimits():\n"
	"    return [list(resource.getrlimit(r)) for r in\n"
	"            [resource.RLIMIT_CORE, resource.RLIMIT_NOFILE,\n"
	"             resource.RLIMIT_FSIZE, resource.RLIMIT_MSGQUEUE]]\n"
	"def idmaps():\n"
	"    return [open('/proc/self/uid_map').read().split(),\n"
	"            open('/proc/self/gid_map').read().split(),\n"
	"            open('/proc/self/setgroups').read().strip()]\n"
	"def nprocs():\n"
	"    return [os.cpu_count(), os.sysconf('SC_NPROCESSORS_CONF'),\n"
	"            os.sysconf('SC_NPROCESSORS_ONLN'),\n"
	"            len(os.sched_getaffinity(0))]\n"
	"def me():\n"
	"    pw = pwd.getpwuid(os.getuid())\n"
	"    return [pw.pw_name, pw.pw_dir]\n"
	"def mode(p):\n"
	"    return oct(stat.S_IMODE(os.stat(p).st_mode))\n"
	"\n"
	"fact('proc_pids', pids)\n"
	"fact('ids', lambda: [os.getuid(), os.geteuid(), os.getgid(),\n"
	"                     os.getegid()])\n"
	"fact('groups', os.getgroups)\n"
	"fact('pid_ppid', lambda: [os.getpid(), os.getppid()])\n"
	"fact('hostname', socket.gethostname)\n"
	"fact('etc_hostname', lambda: open('/etc/hostname').read())\n"
	"fact('passwd', me)\n"
	"fact('cwd_home', lambda: [os.getcwd(), os.environ.get('HOME')])\n"
	"fact('root_listing', lambda: sorted(os.listdir('/')))\n"
	"fact('home_listing', lambda: sorted(os.listdir('/home')))\n"
	"fact('etc_listing', lambda: sorted(os.listdir('/etc')))\n"
	"fact('dev_listing', lambda: sorted(os.listdir('/dev')))\n"
	"fact('absent', absent)\n"
	"fact('usr_submounts',\n"
	"     lambda: mounts(lambda m, o: m.startswith('/usr/')))\n"
	"fact('write_denied', write_denied)\n"
	"fact('writable', writable)\n"
	"fact('mounts_rw', lambda: mounts(lambda m, o: 'rw' in o))\n"
	"fact('mounts_suid', lambda: mounts(lambda m, o: 'nosuid' not in o))\n"
	"fact('mounts_dev', lambda: mounts(lambda m, o: 'nodev' not in o))\n"
	"fact('tmp_modes', lambda: [mode('/tmp'), mode('/dev/shm')])\n"
	"fact('tmp_full', lambda: [err(lambda: fill('/tmp/f', tmp_bytes)),\n"
	"     err(lambda: fill('/dev/shm/f', tmp_bytes))])\n"
	"fact('tmp_inodes',\n"
	"     lambda: err(lambda: fill_inodes('/tmp/i', 1 << 20)))\n"
	"fact('devices', devices)\n"
	"fact('caps', status)\n"
	"fact('setuid', setuid)\n"
	"fact('su', su)\n"
	"fact('rlimits', rlimits)\n"
	"fact('fsize', lambda: err(sparse))\n"
	"fact('fds', fds)\n"
	"fact('idmaps', idmaps)\n"
	"fact('mount_denied', mount_tmpfs)\n"
	"fact('net', net)\n"
	"fact('nprocs', nprocs)\n"
	"fact('numpy', numpy_ok)\n"
	"fact('pandas', pandas_ok)\n"
	"fact('matplotlib', mpl_ok)\n"
	"fact('sqlite3', sqlite_ok)\n"
	"fact('multiprocessing', pool_ok)\n"
	"fact('subprocess_ls',\n"
	"     lambda: sorted(run(['ls', '/']).stdout.split()))\n"
	"fact('orphan', orphan)\n"
	"fact('zombies', zombies)\n"
	"def ptrace_init():\n"
	"    libc = ctypes.CDLL(None, use_errno=True)\n"
	"    if libc.ptrace(16, 1, None, None) == 0:\n"
	"        return 'attached'\n"
	"    return errno.errorcode[ctypes.get_errno()]\n"
	"def kill_init():\n"
	"    os.kill(1, 9)\n"
	"    time.sleep(0.2)\n"
	"    os.kill(1, 0)\n"
	"    return 'alive'\n"
	"fact('init_fds', lambda: err(lambda: os.listdir('/proc/1/fd')))\n"
	"fact('init_ptrace', ptrace_init)\n"
	"fact('init_kill', kill_init)\n"
	"sleeper = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
	"fact('sleeper', lambda: sleeper.poll() is None)\n"
	"send().recv(1)\n";

static const char probe_rootfs[] = PROBE_PRELUDE
	"fact('ids', lambda: [os.getuid(), os.getgid()])\n"
	"fact('root_listing', lambda: sorted(os.listdir('/')))\n"
	"fact('lib64', lambda: os.readlink('/lib64'))\n"
	"fact('mime_types', lambda: open('/etc/mime.types').read())\n"
	"fact('etc_listing', lambda: sorted(os.listdir('/etc')))\n"
	"fact('numpy', lambda: int(__import__('numpy').arange(5).sum()))\n"
	"send()\n"
	"sys.exit(7)\n";

static const char probe_etcdir[] = PROBE_PRELUDE
	"import pwd, subprocess\n"
	"fact('etc_listing', lambda: sorted(os.listdir('/etc')))\n"
	"fact('passwd', lambda: pwd.getpwuid(os.getuid()).pw_name)\n"
	"fact('etc_write', lambda: err(lambda: open('/etc/probe', 'w')))\n"
	"sleeper = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
	"send().recv(1)\n";

static void
check(int ok, const char *name, const char *fmt, ...)
{
	va_list	ap;

	if (ok) {
		passed++;
		printf("ok   %s\n", name);
		return;
	}
	failed++;
	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void
die(const char *fmt, ...)
{
	va_list	ap;

	printf("FAIL setup: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n%d passed, %d failed\n", passed, failed + 1);
	exit(1);
}

/* "run: what", for check names; valid until the next call. */
static const char *
rname(const struct run *run, const char *what)
{
	static char	buf[256];

	snprintf(buf, sizeof buf, "%s: %s", run->name, what);
	return (buf);
}

/* In a sandbox process: say which step failed, exit with SETUP_FAILED. */
static void
setup_fail(const char *step, char *cause)
{
	fprintf(stderr, "sandbox-check: %s: %s\n", step,
	    cause != NULL ? cause : "?");
	_exit(SETUP_FAILED);
}

/* pid 2: the interpreter. */
static void
interp_main(const struct sandbox_plan *plan, char *const argv[])
{
	static char	*env[] = {
		"HOME=" SANDBOX_HOME, "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
		"MPLBACKEND=Agg", NULL
	};
	char		*cause = NULL;

	if (sandbox_user_become(plan, &cause) != 0)
		setup_fail("become", cause);
	if (sandbox_caps_drop(&cause) != 0)
		setup_fail("drop_caps", cause);
	if (sandbox_rlimits_set(plan, &cause) != 0)
		setup_fail("rlimits", cause);
	if (sandbox_proc_hygiene(plan, &cause) != 0)
		setup_fail("hygiene", cause);
	execve(PYTHON, argv, env);
	_exit(127);
}

/*
 * pid 1: build the filesystem, start the interpreter, then give up its
 * own privileges and reap.  It keeps no channel: when the interpreter
 * dies, the daemon sees EOF at once.
 */
static void
init_main(const struct sandbox_plan *plan, char *const argv[])
{
	char	*cause = NULL;
	pid_t	 pid;
	int	 code;

	if (sandbox_mount_setup(plan, &cause) != 0)
		setup_fail("mount_setup", cause);
	if (sandbox_uts_hostname(plan, &cause) != 0)
		setup_fail("hostname", cause);
	if (sandbox_net_loopback_up(&cause) != 0)
		setup_fail("loopback", cause);
	if ((pid = fork()) == -1)
		setup_fail("fork", strerror(errno));
	if (pid == 0)
		interp_main(plan, argv);
	close(plan->keep_fd);
	if (sandbox_user_become(plan, &cause) != 0)
		setup_fail("init become", cause);
	if (sandbox_caps_drop(&cause) != 0)
		setup_fail("init drop_caps", cause);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		setup_fail("init pdeathsig", strerror(errno));
	if (sandbox_pid_reaper(pid, &code, &cause) != 0)
		setup_fail("init reaper", cause);
	_exit(code);
}

/* The shim's stand-in: namespaces, maps from the parent, pid 1, wait. */
static void
outer_main(const struct sandbox_plan *plan, char *const argv[], int chan,
    int ready, int go)
{
	char	*cause = NULL, c;
	pid_t	 pid;
	int	 code;

	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (sandbox_user_drop_groups(&cause) != 0)
		setup_fail("drop_groups", cause);
	if (unshare(NS_FLAGS) != 0)
		setup_fail("unshare", strerror(errno));
	if (write(ready, "r", 1) != 1 || wait_fd(go, HANDSHAKE_MS) <= 0 ||
	    read(go, &c, 1) != 1)
		setup_fail("handshake", "no maps from the parent");
	if (chan != plan->keep_fd) {
		if (dup2(chan, plan->keep_fd) == -1)
			setup_fail("dup2", strerror(errno));
	}
	close_range(plan->keep_fd + 1, ~0U, 0);

	/* After the maps, so the namespace is owned by the mapped user. */
	if (unshare(CLONE_NEWCGROUP) != 0)
		setup_fail("unshare cgroup", strerror(errno));
	if ((pid = fork()) == -1)
		setup_fail("fork", strerror(errno));
	if (pid == 0)
		init_main(plan, argv);
	close(plan->keep_fd);
	if (sandbox_pid_reaper(pid, &code, &cause) != 0)
		setup_fail("outer reaper", cause);
	_exit(code);
}

/* 1 if fd is readable within ms, 0 on timeout, -1 on error. */
static int
wait_fd(int fd, int ms)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLIN };
	int		r;

	do
		r = poll(&pfd, 1, ms);
	while (r == -1 && errno == EINTR);
	return (r);
}

static int
run_start(struct run *run, const struct sandbox_plan *plan,
    char *const argv[], uid_t host_id)
{
	char	*cause = NULL, c;
	int	 sv[2], ready[2], go[2];

	if (socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, sv) != 0 ||
	    pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0)
		die("socketpair/pipe: %s", strerror(errno));
	fflush(NULL);
	if ((run->outer = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (run->outer == 0) {
		close(sv[0]);
		close(ready[0]);
		close(go[1]);
		outer_main(plan, argv, sv[1], ready[1], go[0]);
	}
	close(sv[1]);
	close(ready[1]);
	close(go[0]);
	run->chan = sv[0];
	run->facts = NULL;
	if ((run->pidfd = syscall(SYS_pidfd_open, run->outer, 0)) == -1)
		die("pidfd_open: %s", strerror(errno));

	if (wait_fd(ready[0], HANDSHAKE_MS) <= 0 ||
	    read(ready[0], &c, 1) != 1) {
		check(0, run->name, "outer process never got to unshare");
		goto fail;
	}
	if (sandbox_user_write_maps(run->outer, SANDBOX_INNER_UID, host_id,
	    SANDBOX_INNER_GID, host_id, &cause) != 0) {
		check(0, run->name, "write_maps: %s", cause);
		free(cause);
		goto fail;
	}
	check(1, rname(run, "parent wrote the id maps"), "-");
	if (write(go[1], "g", 1) != 1)
		die("write: %s", strerror(errno));
	close(ready[0]);
	close(go[1]);
	return (0);
fail:
	close(ready[0]);
	close(go[1]);
	kill(run->outer, SIGKILL);
	waitpid(run->outer, NULL, 0);
	return (-1);
}

/* The probe's JSON, or NULL if it sent none within FACTS_MS. */
static int
run_read_facts(struct run *run)
{
	struct timespec	 t0, t;
	size_t		 len = 0, size = 65536;
	ssize_t		 n;
	int		 left;

	if ((run->facts = malloc(size)) == NULL)
		die("out of memory");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = FACTS_MS - (int)((t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || wait_fd(run->chan, left) <= 0)
			break;
		if ((n = read(run->chan, run->facts + len,
		    size - len - 1)) <= 0)
			break;
		len += n;
		run->facts[len] = '\0';
		if (len >= 3 && strcmp(run->facts + len - 3, "\n}\n") == 0) {
			if (verbose)
				printf("     %s facts:\n%s", run->name,
				    run->facts);
			return (0);
		}
		if (len + 1 >= size)
			break;
	}
	free(run->facts);
	run->facts = NULL;
	return (-1);
}

/* Wait up to ms for the outer process; its status in *status. */
static int
run_wait(struct run *run, int ms, int *status)
{
	if (wait_fd(run->pidfd, ms) <= 0)
		return (-1);
	if (waitpid(run->outer, status, 0) != run->outer)
		return (-1);
	close(run->pidfd);
	close(run->chan);
	return (0);
}

/* The raw JSON value of "key": on its own line, without the comma. */
static char *
fact_get(const char *facts, const char *key)
{
	char		*needle, *value;
	const char	*p, *end;

	needle = xprintf("\n\"%s\": ", key);
	p = strstr(facts, needle);
	if (p == NULL) {
		free(needle);
		return (NULL);
	}
	p += strlen(needle);
	free(needle);
	end = strchr(p, '\n');
	if (end > p && end[-1] == ',')
		end--;
	if ((value = strndup(p, end - p)) == NULL)
		die("out of memory");
	return (value);
}

static void
expect(struct run *run, const char *key, const char *want)
{
	char	*got;

	got = fact_get(run->facts, key);
	check(got != NULL && strcmp(got, want) == 0, rname(run, key),
	    "got %s, want %s", got != NULL ? got : "nothing", want);
	free(got);
}

/* The first process whose parent is `parent', by the host's /proc. */
static pid_t
find_child(pid_t parent)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[300], buf[512], *p;
	pid_t		 found = -1;
	long		 ppid;
	FILE		*f;

	if ((d = opendir("/proc")) == NULL)
		return (-1);
	while (found == -1 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof buf, f) != NULL &&
		    (p = strrchr(buf, ')')) != NULL &&
		    sscanf(p, ") %*c %ld", &ppid) == 1 && ppid == parent)
			found = atoi(de->d_name);
		fclose(f);
	}
	closedir(d);
	return (found);
}

/* How many host processes are in the pid namespace `ns'. */
static int
ns_members(const char *ns)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[300], link[64];
	ssize_t		 n;
	int		 count = 0;

	if ((d = opendir("/proc")) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/ns/pid", de->d_name);
		if ((n = readlink(path, link, sizeof link - 1)) <= 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, ns) == 0)
			count++;
	}
	closedir(d);
	return (count);
}

/* "Uid:\t1\t2\t3\t4" of a host pid, as "1 2 3 4". */
static char *
proc_status_line(pid_t pid, const char *key)
{
	char	 path[64], buf[256], *p, *out = NULL;
	FILE	*f;

	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (NULL);
	while (out == NULL && fgets(buf, sizeof buf, f) != NULL) {
		if (strncmp(buf, key, strlen(key)) != 0)
			continue;
		buf[strcspn(buf, "\n")] = '\0';
		for (p = buf; *p != '\0'; p++) {
			if (*p == '\t')
				*p = ' ';
		}
		if ((out = strdup(buf + strlen(key) + 1)) == NULL)
			die("out of memory");
	}
	fclose(f);
	return (out);
}

static int
cmp_str(const void *a, const void *b)
{
	return (strcmp(*(const char *const *)a, *(const char *const *)b));
}

/* names sorted, as a compact JSON list of strings. */
static char *
json_names(const char **names, size_t n)
{
	char	*s = xprintf("["), *t;
	size_t	 i;

	qsort(names, n, sizeof *names, cmp_str);
	for (i = 0; i < n; i++) {
		t = xprintf("%s%s\"%s\"", s, i == 0 ? "" : ",", names[i]);
		free(s);
		s = t;
	}
	t = xprintf("%s]", s);
	free(s);
	return (t);
}

static int
exists(int dirfd, const char *path)
{
	struct stat	st;

	return (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int	fd;

	fd = open(path, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, mode);
	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die("write %s: %s", path, strerror(errno));
	close(fd);
}

static void
copy_file(const char *from, const char *to, mode_t mode)
{
	char	buf[65536];
	ssize_t	n;
	int	in, out;

	if ((in = open(from, O_RDONLY|O_CLOEXEC)) == -1 ||
	    (out = open(to, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0700)) == -1)
		die("copy %s: %s", from, strerror(errno));
	while ((n = read(in, buf, sizeof buf)) > 0) {
		if (write(out, buf, n) != n)
			die("copy %s: %s", from, strerror(errno));
	}
	if (n == -1 || fchmod(out, mode) != 0)
		die("copy %s: %s", from, strerror(errno));
	close(in);
	close(out);
}

/*
 * The scratch tree, in the checker's own private mount namespace: a work
 * dir owned by the session's host uid, a runner dir, a fake state dir
 * (which must not be visible inside), a prepared /etc, a prepared root
 * whose usr is a bind of the host's, and the writable setuid tmpfs
 * under /usr.
 */
static void
scratch_setup(struct scratch *s)
{
	const char	*links[][2] = {
		{ "usr/bin", "bin" }, { "usr/sbin", "sbin" },
		{ "usr/lib", "lib" }, { "usr/lib64", "lib64" },
	};
	char		 path[256];
	size_t		 i;

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL) != 0)
		die("private mount namespace: %s", strerror(errno));
	snprintf(s->base, sizeof s->base, "/tmp/sandbox-check.XXXXXX");
	if (mkdtemp(s->base) == NULL)
		die("mkdtemp: %s", strerror(errno));
	snprintf(s->work, sizeof s->work, "%s/work", s->base);
	snprintf(s->runner, sizeof s->runner, "%s/runner", s->base);
	snprintf(s->state, sizeof s->state, "%s/state", s->base);
	snprintf(s->etc, sizeof s->etc, "%s/etc", s->base);
	snprintf(s->rootfs, sizeof s->rootfs, "%s/rootfs", s->base);
	if (mkdir(s->work, 0700) != 0 || chown(s->work, s->host_id,
	    s->host_id) != 0 || mkdir(s->runner, 0755) != 0 ||
	    mkdir(s->state, 0700) != 0 || mkdir(s->etc, 0755) != 0 ||
	    mkdir(s->rootfs, 0755) != 0)
		die("scratch dirs: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/cellblock_runner.py", s->runner);
	write_file(path, "# runner\n", 0644);
	snprintf(path, sizeof path, "%s/control.sock", s->state);
	write_file(path, "", 0600);

	snprintf(path, sizeof path, "%s/passwd", s->etc);
	write_file(path, "prepared:x:1000:1000::/home/session:/bin/sh\n",
	    0644);
	snprintf(path, sizeof path, "%s/group", s->etc);
	write_file(path, "prepared:x:1000:\n", 0644);

	/* The prepared root: a tmpfs so removing it can never reach /usr. */
	if (mount("tmpfs", s->rootfs, "tmpfs", 0, "mode=755,size=1m") != 0)
		die("rootfs tmpfs: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/usr", s->rootfs);
	if (mkdir(path, 0755) != 0 ||
	    mount("/usr", path, NULL, MS_BIND|MS_REC, NULL) != 0)
		die("rootfs usr: %s", strerror(errno));
	for (i = 0; i < nitems(links); i++) {
		snprintf(path, sizeof path, "%s/%s", s->rootfs, links[i][1]);
		if (symlink(links[i][0], path) != 0)
			die("rootfs %s: %s", path, strerror(errno));
	}
	snprintf(path, sizeof path, "%s/etc", s->rootfs);
	if (mkdir(path, 0755) != 0)
		die("rootfs etc: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/etc/mime.types", s->rootfs);
	write_file(path, "cellblock-rootfs-marker\n", 0644);
	snprintf(path, sizeof path, "%s/etc/ld.so.cache", s->rootfs);
	copy_file("/etc/ld.so.cache", path, 0644);
	/* Debian's libblas.so.3 is a link through /etc/alternatives. */
	snprintf(path, sizeof path, "%s/etc/alternatives", s->rootfs);
	if (mkdir(path, 0755) != 0 ||
	    mount("/etc/alternatives", path, NULL, MS_BIND, NULL) != 0)
		die("rootfs alternatives: %s", strerror(errno));

	if (mount("tmpfs", SUBMOUNT, "tmpfs", 0, "mode=1777,size=4m") != 0)
		die("tmpfs on %s: %s", SUBMOUNT, strerror(errno));
	copy_file("/usr/bin/id", SUBMOUNT "/id-suid", 04755);
}

static int
scratch_rm(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return (0);
}

/* The work dir holds only files (never a mount): safe to walk. */
static void
scratch_cleanup(struct scratch *s)
{
	char	path[256];

	umount2(SUBMOUNT, MNT_DETACH);
	/* Detach first: the prepared root holds binds of /usr and /etc. */
	if (umount2(s->rootfs, MNT_DETACH) == 0)
		rmdir(s->rootfs);
	nftw(s->work, scratch_rm, 16, FTW_DEPTH|FTW_PHYS|FTW_MOUNT);
	snprintf(path, sizeof path, "%s/cellblock_runner.py", s->runner);
	unlink(path);
	rmdir(s->runner);
	snprintf(path, sizeof path, "%s/control.sock", s->state);
	unlink(path);
	rmdir(s->state);
	snprintf(path, sizeof path, "%s/passwd", s->etc);
	unlink(path);
	snprintf(path, sizeof path, "%s/group", s->etc);
	unlink(path);
	rmdir(s->etc);
	rmdir(s->base);
}

static void
plan_init(struct sandbox_plan *plan, const struct scratch *s)
{
	memset(plan, 0, sizeof *plan);
	plan->hostname = "cb-check";
	plan->workdir = s->work;
	plan->runner_dir = s->runner;
	plan->tmp_bytes = TMP_BYTES;
	plan->inner_uid = SANDBOX_INNER_UID;
	plan->inner_gid = SANDBOX_INNER_GID;
	plan->nofile = NOFILE;
	plan->fsize_bytes = FSIZE_BYTES;
	plan->keep_fd = CHANNEL_FD;
}

/* pid 1 and the interpreter as host pids, and their pid namespace. */
static void
run_find(struct run *run)
{
	char	path[64];
	ssize_t	n = -1;

	run->init = find_child(run->outer);
	run->interp = run->init > 0 ? find_child(run->init) : -1;
	if (run->interp > 0) {
		snprintf(path, sizeof path, "/proc/%ld/ns/pid",
		    (long)run->interp);
		n = readlink(path, run->pidns, sizeof run->pidns - 1);
	}
	run->pidns[n > 0 ? n : 0] = '\0';
}

/* Outside view while the probe waits: host ids, pid namespace, members. */
static void
check_outside(struct run *run, uid_t host_id)
{
	char	*got, *want;

	run_find(run);
	check(run->interp > 0, "outside: found pid 1 and the interpreter",
	    "init %ld, interpreter %ld", (long)run->init, (long)run->interp);
	if (run->interp <= 0)
		return;

	want = xprintf("%lu %lu %lu %lu", (unsigned long)host_id,
	    (unsigned long)host_id, (unsigned long)host_id,
	    (unsigned long)host_id);
	got = proc_status_line(run->interp, "Uid:");
	check(got != NULL && strcmp(got, want) == 0,
	    "outside: interpreter runs as the mapped host uid",
	    "Uid: %s, want %s", got ? got : "?", want);
	free(got);
	got = proc_status_line(run->interp, "Gid:");
	check(got != NULL && strcmp(got, want) == 0,
	    "outside: interpreter runs as the mapped host gid",
	    "Gid: %s, want %s", got ? got : "?", want);
	free(got);
	got = proc_status_line(run->init, "Uid:");
	check(got != NULL && strcmp(got, want) == 0,
	    "outside: pid 1 gave up root too", "Uid: %s", got ? got : "?");
	free(got);
	free(want);

	check(run->pidns[0] != '\0' && ns_members(run->pidns) >= 3,
	    "outside: pid namespace holds pid 1, interpreter, sleeper",
	    "%d members", ns_members(run->pidns));
}

/* After the end: nothing of the pid namespace may be left, within 5s. */
static void
check_emptied(struct run *run)
{
	int	i, left = -1;

	for (i = 0; i < 50 && run->pidns[0] != '\0'; i++) {
		if ((left = ns_members(run->pidns)) == 0)
			break;
		usleep(100000);
	}
	check(left == 0, rname(run, "no process of the namespace survives"),
	    "%d left", left);
}

static void
expect_full(struct run *run, const struct scratch *s)
{
	const char	*root[16] = { "dev", "etc", "home", "opt", "proc",
			    "tmp", "usr" };
	const char	*sys[] = { "bin", "sbin", "lib", "lib64", "lib32",
			    "libx32" };
	const char	*etc[32] = { "group", "hostname", "hosts",
			    "nsswitch.conf", "passwd", "resolv.conf" };
	const char	*etc_host[] = { "ld.so.cache", "ld.so.conf",
			    "ld.so.conf.d", "fonts", "alternatives",
			    "localtime", "mime.types", "ssl", "python3", "python3.11",
			    "matplotlibrc" };
	size_t		 nroot = 7, netc = 6, i;
	cpu_set_t	 cpus;
	char		*v;
	int		 hostfd;

	if ((hostfd = open("/", O_PATH|O_DIRECTORY|O_CLOEXEC)) == -1)
		die("open /: %s", strerror(errno));
	for (i = 0; i < nitems(sys); i++) {
		if (exists(hostfd, sys[i]))
			root[nroot++] = sys[i];
	}
	for (i = 0; i < nitems(etc_host); i++) {
		v = xprintf("etc/%s", etc_host[i]);
		if (exists(hostfd, v))
			etc[netc++] = etc_host[i];
		free(v);
	}
	close(hostfd);

	expect(run, "proc_pids", "[1,2]");
	expect(run, "ids", "[1000,1000,1000,1000]");
	expect(run, "groups", "[]");
	expect(run, "pid_ppid", "[2,1]");
	expect(run, "hostname", "\"cb-check\"");
	expect(run, "etc_hostname", "\"cb-check\\n\"");
	expect(run, "passwd", "[\"session\",\"/home/session\"]");
	expect(run, "cwd_home", "[\"/home/session\",\"/home/session\"]");
	v = json_names(root, nroot);
	expect(run, "root_listing", v);
	expect(run, "subprocess_ls", v);
	free(v);
	expect(run, "home_listing", "[\"session\"]");
	v = json_names(etc, netc);
	expect(run, "etc_listing", v);
	free(v);
	expect(run, "dev_listing", "[\"fd\",\"full\",\"null\",\"random\","
	    "\"shm\",\"stderr\",\"stdin\",\"stdout\",\"urandom\",\"zero\"]");
	expect(run, "absent", "[]");
	expect(run, "usr_submounts", "[\"" SUBMOUNT "\"]");
	expect(run, "write_denied", "[[\"/probe\",\"EROFS\"],"
	    "[\"/usr/probe\",\"EROFS\"],[\"" SUBMOUNT "/probe\",\"EROFS\"],"
	    "[\"/etc/probe\",\"EROFS\"],[\"/dev/probe\",\"EROFS\"],"
	    "[\"/opt/cellblock/runner/probe\",\"EROFS\"],"
	    "[\"/home/probe\",\"EROFS\"],[\"" SUBMOUNT "/dir\",\"EROFS\"]]");
	expect(run, "writable", "[\"ok\",\"ok\",\"ok\"]");
	expect(run, "mounts_rw",
	    "[\"/dev/shm\",\"/home/session\",\"/proc\",\"/tmp\"]");
	expect(run, "mounts_suid", "[]");
	expect(run, "mounts_dev", "[\"/dev/full\",\"/dev/null\","
	    "\"/dev/random\",\"/dev/urandom\",\"/dev/zero\"]");
	expect(run, "tmp_modes", "[\"0o1777\",\"0o1777\"]");
	expect(run, "tmp_full", "[\"ENOSPC\",\"ENOSPC\"]");
	expect(run, "tmp_inodes", "\"ENOSPC\"");
	expect(run, "devices", "[16,true,8,\"ENOSPC\"]");
	expect(run, "caps", "{\"CapAmb\":\"0000000000000000\","
	    "\"CapBnd\":\"0000000000000000\",\"CapEff\":\"0000000000000000\","
	    "\"CapInh\":\"0000000000000000\",\"CapPrm\":\"0000000000000000\","
	    "\"NoNewPrivs\":\"1\"}");
	expect(run, "setuid", "[true,\"1000\"]");
	expect(run, "su", "[true,true,\"\"]");
	v = xprintf("[[0,0],[%d,%d],[%llu,%llu],[0,0]]", NOFILE, NOFILE,
	    (unsigned long long)FSIZE_BYTES, (unsigned long long)FSIZE_BYTES);
	expect(run, "rlimits", v);
	free(v);
	expect(run, "fsize", "\"EFBIG\"");
	expect(run, "fds", "[[\"0\",\"/dev/null\"],[\"1\",\"/dev/null\"],"
	    "[\"2\",\"/dev/null\"],[\"3\",\"socket\"]]");
	v = xprintf("[[\"1000\",\"%lu\",\"1\"],[\"1000\",\"%lu\",\"1\"],"
	    "\"deny\"]", (unsigned long)s->host_id,
	    (unsigned long)s->host_id);
	expect(run, "idmaps", v);
	free(v);
	expect(run, "mount_denied", "\"EPERM\"");
	expect(run, "net", "[[[1,\"lo\"]],\"ECONNREFUSED\",\"ENETUNREACH\"]");
	if (sched_getaffinity(0, sizeof cpus, &cpus) != 0)
		die("sched_getaffinity: %s", strerror(errno));
	/* No /sys, no /proc/cpuinfo: glibc (and so OpenBLAS) must fall back
	 * to sched_getaffinity rather than report one CPU. */
	v = xprintf("[%d,%d,%d,%d]", CPU_COUNT(&cpus), CPU_COUNT(&cpus),
	    CPU_COUNT(&cpus), CPU_COUNT(&cpus));
	expect(run, "nprocs", v);
	free(v);
	expect(run, "numpy", "true");
	expect(run, "pandas", "[4,2]");
	expect(run, "matplotlib", "true");
	expect(run, "sqlite3", "3");
	expect(run, "multiprocessing", "[1,2,3]");
	expect(run, "orphan", "\"reaped\"");
	expect(run, "zombies", "0");
	/* pid 1 runs as the session's uid too, but is not its to touch. */
	expect(run, "init_fds", "\"EACCES\"");
	expect(run, "init_ptrace", "\"EPERM\"");
	expect(run, "init_kill", "\"alive\"");
	expect(run, "sleeper", "true");
}

/*
 * The full plan on the host's system.  Ends the way the daemon stops a
 * session: SIGTERM to the shim, passed on to pid 1 and the interpreter,
 * whose 128+15 comes back out; pid 1 kills the sleeper it left behind.
 */
static void
run_full(struct scratch *s)
{
	struct sandbox_plan	 plan;
	struct run		 run = { .name = "full" };
	char			 tmp[32], fsz[32];
	char			*argv[] = { PYTHON, "-I", "-c",
				    (char *)probe_full, s->state, s->work,
				    SUBMOUNT, tmp, fsz, NULL };
	int			 status;

	plan_init(&plan, s);
	snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)TMP_BYTES);
	snprintf(fsz, sizeof fsz, "%llu", (unsigned long long)FSIZE_BYTES);
	if (run_start(&run, &plan, argv, s->host_id) != 0)
		return;
	if (run_read_facts(&run) != 0) {
		check(0, "full: probe facts", "channel closed, or nothing "
		    "within %d ms", FACTS_MS);
		kill(run.outer, SIGKILL);
		run_wait(&run, EXIT_MS, &status);
		return;
	}
	expect_full(&run, s);
	check_outside(&run, s->host_id);

	kill(run.outer, SIGTERM);
	if (run_wait(&run, EXIT_MS, &status) != 0) {
		check(0, "full: SIGTERM ends the session", "still running");
		kill(run.outer, SIGKILL);
		waitpid(run.outer, &status, 0);
	} else
		check(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM,
		    "full: SIGTERM ends the session with 128+15",
		    "status %#x", status);
	check_emptied(&run);
	free(run.facts);
}

/* A prepared root: its usr, its lib symlinks, its etc as the source. */
static void
run_rootfs(struct scratch *s)
{
	struct sandbox_plan	 plan;
	struct run		 run = { .name = "rootfs" };
	char			*argv[] = { PYTHON, "-I", "-c",
				    (char *)probe_rootfs, NULL };
	int			 status;

	plan_init(&plan, s);
	plan.rootfs = s->rootfs;
	if (run_start(&run, &plan, argv, s->host_id) != 0)
		return;
	if (run_read_facts(&run) != 0)
		check(0, "rootfs: probe facts", "channel closed, or nothing "
		    "within %d ms", FACTS_MS);
	else {
		expect(&run, "ids", "[1000,1000]");
		expect(&run, "root_listing", "[\"bin\",\"dev\",\"etc\","
		    "\"home\",\"lib\",\"lib64\",\"opt\",\"proc\",\"sbin\","
		    "\"tmp\",\"usr\"]");
		expect(&run, "lib64", "\"usr/lib64\"");
		expect(&run, "mime_types", "\"cellblock-rootfs-marker\\n\"");
		expect(&run, "etc_listing", "[\"alternatives\",\"group\","
		    "\"hostname\",\"hosts\",\"ld.so.cache\",\"mime.types\","
		    "\"nsswitch.conf\",\"passwd\",\"resolv.conf\"]");
		expect(&run, "numpy", "10");
		free(run.facts);
	}
	if (run_wait(&run, EXIT_MS, &status) != 0) {
		check(0, "rootfs: exit code passes through", "still running");
		kill(run.outer, SIGKILL);
		waitpid(run.outer, &status, 0);
		return;
	}
	check(WIFEXITED(status) && WEXITSTATUS(status) == 7,
	    "rootfs: the interpreter's exit code 7 passes through",
	    "status %#x", status);
}

/* A prepared /etc, and the shim killed outright: nothing may survive. */
static void
run_etcdir(struct scratch *s)
{
	struct sandbox_plan	 plan;
	struct run		 run = { .name = "etcdir" };
	char			*argv[] = { PYTHON, "-I", "-c",
				    (char *)probe_etcdir, NULL };
	int			 status;

	plan_init(&plan, s);
	plan.etc_dir = s->etc;
	if (run_start(&run, &plan, argv, s->host_id) != 0)
		return;
	if (run_read_facts(&run) != 0)
		check(0, "etcdir: probe facts", "channel closed, or nothing "
		    "within %d ms", FACTS_MS);
	else {
		expect(&run, "etc_listing", "[\"group\",\"passwd\"]");
		expect(&run, "passwd", "\"prepared\"");
		expect(&run, "etc_write", "\"EROFS\"");
		run_find(&run);
		free(run.facts);
	}
	kill(run.outer, SIGKILL);
	if (run_wait(&run, EXIT_MS, &status) != 0)
		check(0, "etcdir: SIGKILL", "outer process still running");
	check(run.pidns[0] != '\0', "etcdir: found the pid namespace",
	    "no interpreter");
	check_emptied(&run);
}

/* Setup that fails must fail closed, with a cause, before any exec. */
static void
run_broken(struct scratch *s)
{
	struct sandbox_plan	 plan;
	struct run		 run = { .name = "broken" };
	char			*argv[] = { PYTHON, "-c", "print(1)", NULL };
	int			 status;

	plan_init(&plan, s);
	plan.workdir = "/nonexistent/cellblock-check";
	printf("     (a line from sandbox-check on stderr is expected here)\n");
	if (run_start(&run, &plan, argv, s->host_id) != 0)
		return;
	if (run_wait(&run, EXIT_MS, &status) != 0) {
		check(0, "broken: setup fails closed", "still running");
		kill(run.outer, SIGKILL);
		waitpid(run.outer, &status, 0);
		return;
	}
	check(WIFEXITED(status) && WEXITSTATUS(status) == SETUP_FAILED,
	    "broken: a missing work dir fails setup, no interpreter",
	    "status %#x", status);
}

/* The map writer must never map host root, whoever asks. */
static void
check_maps_refuse_root(void)
{
	char	*cause = NULL;
	int	 r;

	r = sandbox_user_write_maps(getpid(), SANDBOX_INNER_UID, 0,
	    SANDBOX_INNER_GID, 0, &cause);
	check(r == -1 && cause != NULL, "write_maps refuses host root",
	    "returned %d", r);
	free(cause);
}

int
main(int argc, char **argv)
{
	struct scratch	s;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "-v") == 0)
		verbose = 1;
	else if (argc != 1) {
		fprintf(stderr, "usage: sandbox-check [-v]\n");
		return (2);
	}
	if (geteuid() != 0)
		die("must run as root (it builds real namespaces)");
	memset(&s, 0, sizeof s);
	s.host_id = HOST_ID_BASE + getpid() % 65536;
	scratch_setup(&s);

	check_maps_refuse_root();
	run_full(&s);
	run_rootfs(&s);
	run_etcdir(&s);
	run_broken(&s);

	scratch_cleanup(&s);
	printf("%d passed, %d failed\n", passed, failed);
	return (failed == 0 ? 0 : 1);
}
