"""Infrastructure for the cellblock benchmark: a private daemon, ipykernels,
the C client, /proc accounting, statistics. No measurement logic here."""
import glob
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(HERE, ".build")
BIN = os.path.join(ROOT, "bin")
CELLBLOCKD = os.path.join(BIN, "cellblockd")
RUNNER = os.path.join(ROOT, "kernel-shim", "runner", "cellblock_runner.py")
RTT_SRC = os.path.join(HERE, "rtt.c")
RTT = os.path.join(BUILD, "rtt")
PYTHON = "/usr/bin/python3"
PKGS = "libczmq libzmq jansson libsodium nettle"

# The tests' control-socket client and zygote wait (tests/cbtest.py).
sys.path.insert(0, os.path.dirname(HERE))
import cbtest  # noqa: E402

T_START = time.monotonic()


# Each benchmark script owns one section of docs/BENCHMARKS.md, between
# its two markers; bench.py's generated part comes before all of them.
SECTION_BEGIN = re.compile(r"^<!-- \w+:begin -->$", re.M)


def write_section(path, name, text):
    """Put text into the report at path as section `name`: in place of
    what its markers held, else appended. Every other section stays."""
    begin, end = "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n"
    body = "%s\n%s\n%s" % (begin, text.strip("\n"), end)
    i = doc.find(begin)
    j = doc.find(end, i) if i != -1 else -1
    if j != -1:
        doc = doc[:i] + body + doc[j + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + body + "\n"
    with open(path, "w") as f:
        f.write(doc)


def run_section(tag, out, daemon_args, measure, report):
    """The frame of a benchmark that writes one section: a private daemon
    (daemon_args) in a temporary directory, measure(daemon, workdir) ->
    results (kept in BUILD/TAG-results.json), report(results) -> the
    section, written to out and printed. A benchmark reports a failure,
    it does not raise one: exit status 1 and the daemon's log tail."""
    os.makedirs(BUILD, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="cb-%sbench-" % tag)
    daemon = None
    try:
        daemon = Daemon(workdir, daemon_args)
        res = measure(daemon, workdir)
        with open(os.path.join(BUILD, "%s-results.json" % tag), "w") as f:
            json.dump(res, f, indent=1)
        text = report(res)
        write_section(out, "%s_bench" % tag, text)
        print(text)
    except Exception as e:
        log(tag, "could not run: %s" % e)
        if daemon is not None:
            print(daemon.log_text()[-3000:])
        return 1
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def log(section, msg):
    """One progress line, with the time since the harness started."""
    print(f"[{section}] {msg}  (+{time.monotonic() - T_START:.0f}s)", flush=True)


# ---- statistics -----------------------------------------------------------

def pct(values, q):
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(q / 100.0 * len(v)) - 1))
    return v[k]


def summary(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": pct(values, 50), "p99": pct(values, 99),
            "min": min(values), "max": max(values),
            "mean": sum(values) / len(values)}


# ---- building the C client ------------------------------------------------

def build_rtt():
    """Compile tests/bench/rtt.c with the project's protocol/ and base sources (not
    build/*.o, which another build may be rewriting). Rebuilt when any
    source is newer than the binary."""
    dirs = [os.path.join(ROOT, "protocol"), os.path.join(ROOT, "kernel-shim", "base")]
    srcs = [RTT_SRC] + sorted(p for d in dirs for p in glob.glob(os.path.join(d, "*.c"))
                              if not os.path.basename(p).startswith("test-"))
    deps = srcs + [h for d in dirs for h in glob.glob(os.path.join(d, "*.h"))]
    if os.path.exists(RTT) and all(os.path.getmtime(d) <= os.path.getmtime(RTT) for d in deps):
        return
    os.makedirs(BUILD, exist_ok=True)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *PKGS.split()],
                           capture_output=True, text=True, check=True).stdout.split()
    cmd = ["cc", "-std=gnu11", "-D_GNU_SOURCE", "-O2", "-g", "-Wall", "-Wextra",
           *("-I" + d for d in dirs), "-o", RTT + ".tmp", *srcs, *flags,
           "-lpthread"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("building rtt failed:\n" + " ".join(cmd) + "\n" + p.stderr)
    os.replace(RTT + ".tmp", RTT)


def run_rtt(args, timeout):
    """Run the C client; return (parsed JSON, client CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([RTT, *args], capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in (0, 2) or not p.stdout.strip():
        raise RuntimeError(f"rtt {' '.join(args[:3])}… exited {p.returncode}: {p.stderr.strip()[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(p.stdout), cpu


# ---- /proc accounting -----------------------------------------------------

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # comm may hold spaces and parentheses: split after the last ')'.
    return s[s.rindex(")") + 2:].split()


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(d)[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def process_tree(pid, kids=None):
    """pid and all its descendants (by ppid), pid first."""
    kids = kids if kids is not None else children_map()
    out, todo = [], [pid]
    while todo and len(out) < 10000:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def find_runner(shim_pid):
    """The interpreter of a session: the process in the shim's tree running
    cellblock_runner (the shim itself if none is found)."""
    for p in process_tree(shim_pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        # The shim's own command line names the runner too (--runner PATH).
        if os.path.basename(argv[0]).startswith(b"python") and \
                any(b"cellblock_runner" in a for a in argv):
            return p
    return shim_pid


def smaps_rollup(pid):
    """{'Rss': kB, 'Pss': kB, 'Pss_Anon': kB, ...}; {} if gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def tree_memory(pid, kids=None):
    """Summed smaps_rollup over a process tree, in kB, plus the count."""
    tot = {"Rss": 0, "Pss": 0, "Pss_Anon": 0, "Pss_File": 0, "procs": 0}
    for p in process_tree(pid, kids):
        r = smaps_rollup(p)
        if not r:
            continue
        tot["procs"] += 1
        for k in ("Rss", "Pss", "Pss_Anon", "Pss_File"):
            tot[k] += r.get(k, 0)
    return tot


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_ns(pids):
    """Nanoseconds on CPU of every thread of the given processes
    (/proc/PID/task/*/schedstat: exact, unlike the 10 ms ticks of stat)."""
    total = 0
    for pid in pids:
        for t in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            try:
                with open(t) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def daemon_threads_ns(pid):
    """CPU ns of a daemon's threads grouped: its main thread (tid = pid),
    ZeroMQ's I/O threads (ZMQbg/IO/*), and every other thread."""
    out = {"main": 0, "zmq_io": 0, "other": 0}
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            tid = int(os.path.basename(t))
            with open(t + "/comm") as f:
                comm = f.read().strip()
            with open(t + "/schedstat") as f:
                ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        key = "main" if tid == pid else ("zmq_io" if comm.startswith("ZMQbg/IO") else "other")
        out[key] += ns
    return out


def _proc_ticks():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = _stat_fields(d)
                with open(f"/proc/{d}/cmdline", "rb") as c:
                    cmd = c.read().replace(b"\0", b" ").decode(errors="replace").strip()
                out[int(d)] = (int(f[11]) + int(f[12]), cmd[:70])
            except (OSError, ValueError, IndexError):
                pass
    return out


def machine_busy(seconds=1.0):
    """(fraction of all CPUs busy over a short sample, the processes that
    used the most CPU meanwhile as [(pid, percent of one CPU, command)])."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle
    p0 = _proc_ticks()
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    p1 = _proc_ticks()
    hz = os.sysconf("SC_CLK_TCK")
    top = sorted(((pid, 100.0 * (p1[pid][0] - p0[pid][0]) / hz / seconds, p1[pid][1])
                  for pid in p1 if pid in p0 and pid != os.getpid()), key=lambda x: -x[1])
    return 1.0 - (i1 - i0) / max(1, t1 - t0), [t for t in top[:4] if t[1] >= 10]


def pid_alive(pid):
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def mem_available_kb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- the private daemon ---------------------------------------------------

class Daemon:
    """A cellblockd in the foreground with a private state directory; only
    loopback (its default address). stop() kills what it started."""

    def __init__(self, workdir, extra_args=(), name="cellblockd"):
        self.state = tempfile.mkdtemp(prefix="cbd-", dir=workdir)
        self.logpath = os.path.join(workdir, name + ".log")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(
            [CELLBLOCKD, "--foreground", "--state-dir", self.state, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)     # Ctrl-C reaches us, not it: we stop it
        self.pid = self.proc.pid
        sock = os.path.join(self.state, "control.sock")
        deadline = time.monotonic() + 15
        while not os.path.exists(sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("cellblockd did not start:\n" + self.log_text()[-3000:])
            time.sleep(0.01)
        self.sock = sock
        self.zygote = self.wait_zygote()

    def wait_zygote(self, timeout=120):
        """Sessions are measured as users get them: zygote-born once the
        zygote is ready (docs/ZYGOTE.md). Returns its state."""
        return cbtest.wait_zygote(self.control, timeout)

    def log_text(self):
        if not self.log.closed:         # stop() closes it; the file stays
            self.log.flush()
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def control(self, req, timeout=60):
        """One JSON-line request on control.sock; the reply object."""
        return cbtest.control_request(self.sock, req, timeout)

    def new(self, **limits):
        r = self.control({"cmd": "new", **limits})
        if not r.get("ok"):
            raise RuntimeError(f"cellblock new failed: {r.get('error')}")
        return r["session"]

    def ls(self):
        r = self.control({"cmd": "ls"})
        return r.get("sessions", [])

    def state_of(self, name):
        for s in self.ls():
            if s.get("name") == name:
                return s.get("state")
        return None

    def wait_state(self, name, state, timeout):
        """Poll `ls` until the session is in state; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state_of(name) == state:
                return True
            time.sleep(0.02)
        return False

    def kill(self, name, wait_pid=None, timeout=10):
        self.control({"cmd": "kill", "name": name})
        if wait_pid:
            deadline = time.monotonic() + timeout
            while pid_alive(wait_pid) and time.monotonic() < deadline:
                time.sleep(0.005)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # Anything our daemon started that outlived it (it should not):
        # session processes carry our state directory on their command line.
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if self.state.encode() in cmd:
                try:
                    os.kill(int(d), signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(self.state, ignore_errors=True)


def daemon_versions(log_text):
    """'libzmq 4.3.4, czmq 4.2.1, …' as the daemon logs it at start."""
    for line in log_text.splitlines():
        if "starting:" in line and "libzmq" in line:
            return line.split("starting:", 1)[1].strip()
    return None


# ---- ipykernel ------------------------------------------------------------

class IPyKernels:
    """ipykernel via jupyter_client's KernelManager and the python3
    kernelspec, with connection files and IPYTHONDIR in our work dir."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "ipykernel")
        os.makedirs(self.dir, exist_ok=True)
        self.ipythondir = os.path.join(self.dir, "ipython")
        self.errlog = open(os.path.join(self.dir, "kernels.log"), "ab")
        self.kms = []
        self.n = 0
        # Resolving the python3 kernelspec imports ipykernel (and debugpy,
        # which warns about frozen modules on stderr) into this process: do
        # it once here with fd 2 pointed at the kernels' log.
        from jupyter_client.kernelspec import KernelSpecManager
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(self.errlog.fileno(), 2)
            KernelSpecManager().get_kernel_spec("python3")
            import ipykernel  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)

    def start(self):
        """Start one kernel; return its KernelManager (not waited on)."""
        import zmq
        from jupyter_client import KernelManager
        self.n += 1
        km = KernelManager(kernel_name="python3",
                           connection_file=os.path.join(self.dir, f"kernel-{self.n}.json"))
        # The client's ZeroMQ default is to retry a refused connect every
        # 100 ms, which would round ipykernel's start up by as much; 5 ms
        # keeps the measurement about the kernel.
        km.context.setsockopt(zmq.RECONNECT_IVL, 5)
        env = dict(os.environ, IPYTHONDIR=self.ipythondir)
        km.start_kernel(env=env, stdout=self.errlog, stderr=self.errlog)
        self.kms.append(km)
        return km

    @staticmethod
    def pid(km):
        prov = getattr(km, "provisioner", None)
        proc = getattr(prov, "process", None)
        if proc is not None:
            return proc.pid
        return km.kernel.pid

    def shutdown(self, km):
        try:
            km.shutdown_kernel(now=True)
        except Exception:
            try:
                os.kill(self.pid(km), signal.SIGKILL)
            except Exception:
                pass
        if km in self.kms:
            self.kms.remove(km)

    def shutdown_all(self):
        for km in list(self.kms):
            self.shutdown(km)
        self.errlog.close()


# ---- jupyter_client helpers -----------------------------------------------

def client_for(connection_file, reconnect_ms=5, hb=True):
    import zmq
    from jupyter_client import BlockingKernelClient
    kc = BlockingKernelClient(connection_file=connection_file)
    kc.load_connection_file()
    kc.context.setsockopt(zmq.RECONNECT_IVL, reconnect_ms)
    kc.start_channels(hb=hb)
    return kc


def wait_reply(kc, msg_id, timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no execute_reply in time")
        m = kc.get_shell_msg(timeout=left)
        if m["parent_header"].get("msg_id") == msg_id:
            return m


def wait_idle(kc, msg_id, timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no idle in time")
        m = kc.get_iopub_msg(timeout=left)
        if (m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"):
            return m


def execute(kc, code, timeout=60):
    """Run code; wait for its reply and its idle; return the reply."""
    msg_id = kc.execute(code)
    reply = wait_reply(kc, msg_id, timeout)
    wait_idle(kc, msg_id, timeout)
    return reply


# ---- the machine ----------------------------------------------------------

def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": os.uname().release,
            "arch": os.uname().machine}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    # cgroup mounts with favordynmods make moving a process into a cgroup
    # cheap (docs/ZYGOTE.md): a host setting that changes the start figures.
    with open("/proc/mounts") as f:
        cg = [line.split() for line in f if line.split()[2:3] in (["cgroup"], ["cgroup2"])]
    info["favordynmods"] = any("favordynmods" in m[3].split(",") for m in cg if len(m) > 3)
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True) \
        if shutil.which("systemd-detect-virt") else None
    if virt is not None and virt.stdout.strip():
        info["virt"] = virt.stdout.strip()
    return info


def library_versions():
    code = r"""
import json, platform, importlib
out = {"Python": platform.python_version()}
for mod, name in [("IPython", "IPython"), ("ipykernel", "ipykernel"),
                  ("jupyter_client", "jupyter_client"), ("numpy", "numpy"),
                  ("pandas", "pandas"), ("matplotlib", "matplotlib"), ("zmq", "pyzmq")]:
    try:
        out[name] = importlib.import_module(mod).__version__
    except Exception as e:
        out[name] = "missing"
try:
    import zmq; out["libzmq (pyzmq's)"] = zmq.zmq_version()
except Exception:
    pass
print(json.dumps(out))
"""
    p = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    out = json.loads(p.stdout) if p.returncode == 0 else {}
    for pkg in PKGS.split():
        q = subprocess.run(["pkg-config", "--modversion", pkg], capture_output=True, text=True)
        if q.returncode == 0:
            out[pkg] = q.stdout.strip()
    return out


def git_describe():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + (" with uncommitted changes" if dirty else "")
    except Exception:
        return "unknown"
