"""Escape battery: hostile code run inside real sessions of a real, sandboxed
cellblockd, trying to get out, to reach other sessions or the host, or to
take more than its limits.

Every test runs its attempt as cell code in a session (an "attacker"), then
checks containment and checks that the daemon is alive and that a second
session created once for the module (the "witness") still answers with its
variable intact, in the same incarnation (it was never restarted). See
docs/SECURITY.md for the threat model these attempts stand for.

Needs root (the daemon refuses to start a sandbox it cannot build without
--allow-weaker-sandbox, and this battery never passes that option).
Run:  /usr/bin/python3 -m pytest -q tests/sandbox/test_escape.py
"""
import base64
import errno
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from cbtest import SANDBOX_INNER_UID, host_connect_read
INNER = str(SANDBOX_INNER_UID)

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "cellblock_root_conftest", os.path.join(_HERE, "..", "conftest.py"))
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
Daemon = _root.Daemon
run_cell = _root.run_cell
BIN = _root.BIN

TRY_SYSCALL = os.path.join(BIN, "try-syscall")
SECRET_ENV = "CELLBLOCK_TEST_SECRET"
RESULT = "@@R@@"

# Session defaults for this daemon: small, so bombs hit limits quickly.
MEMORY = 256 << 20
PIDS = 64
TMP = 16 << 20
NOFILE = 256
FSIZE = 32 << 20
# zygote (the default), exec (the fallback) or pool (docs/ZYGOTE.md, "The
# warm pool": every session the battery makes is claimed from the pool).
BORN = os.environ.get("CELLBLOCK_ESCAPE_BORN", "zygote")
CONFIG = f"""\
# escape battery: small limits
memory = 256M
pids = {PIDS}
tmp = 16M
nofile = {NOFILE}
fsize = 32M
cpus = 1
# a safety net: no cell of this battery may run away
exec-timeout = 90
zygote = {"no" if BORN == "exec" else "yes"}
"""

# Defined at the top of every attacker cell: a bounded fork/exec runner
# (not subprocess: see test_seccomp_allows_restart_syscall) and a way to
# hand structured results back to the test.
PRELUDE = r'''
import os as _os, json as _json, time as _time, select as _select, signal as _signal
def _run(argv, timeout=20, env=None):
    r_out, w_out = _os.pipe()
    r_err, w_err = _os.pipe()
    pid = _os.fork()
    if pid == 0:
        try:
            _os.dup2(w_out, 1)
            _os.dup2(w_err, 2)
            _os.dup2(_os.open("/dev/null", _os.O_RDONLY), 0)
            _os.closerange(3, 1024)
            _os.execve(argv[0], argv, dict(_os.environ) if env is None else env)
        finally:
            _os._exit(127)
    _os.close(w_out)
    _os.close(w_err)
    bufs = {r_out: b"", r_err: b""}
    live = [r_out, r_err]
    deadline = _time.monotonic() + timeout
    while live:
        left = deadline - _time.monotonic()
        if left <= 0:
            _os.kill(pid, _signal.SIGKILL)
            break
        ready, _, _ = _select.select(live, [], [], left)
        for fd in ready:
            data = _os.read(fd, 65536)
            if data:
                bufs[fd] += data
            else:
                live.remove(fd)
    _os.close(r_out)
    _os.close(r_err)
    _, status = _os.waitpid(pid, 0)
    return (_os.waitstatus_to_exitcode(status),
            bufs[r_out].decode(errors="replace"), bufs[r_err].decode(errors="replace"))
def _result(value):
    print("@@R@@" + _json.dumps(value))
'''


# ---------------------------------------------------------------- helpers

def _stdout(outputs, name="stdout"):
    return "".join(m["content"]["text"] for m in outputs
                   if m["msg_type"] == "stream" and m["content"]["name"] == name)


def _errors(outputs):
    return [m["content"] for m in outputs if m["msg_type"] == "error"]


def _host_children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            kids.append(int(entry))
    return kids


def _descendants(pid):
    """Every process below pid on the host (one pass over /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for kid in children.get(todo.pop(), ()):
            if kid not in found:
                found.add(kid)
                todo.append(kid)
    return found


def _status_field(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].split()
    return None


def _sha(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


def _tree_digest(root):
    """Names, modes, sizes and contents of everything under root (no links followed)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"{p} {st.st_mode} {st.st_uid} {st.st_size}\n".encode())
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def _wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class SlowSubscriber:
    """An iopub subscriber that never reads, like a client on a slow link:
    what the daemon publishes to it stays queued in the daemon."""

    def __init__(self, port):
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 1)
        self.sock.setsockopt(zmq.RCVBUF, 4096)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        time.sleep(0.3)                 # the subscription reaches the daemon

    def close(self):
        self.sock.close(linger=0)
        self.ctx.term()


class RssPeak:
    """The peak VmRSS (kB) of a process while the block runs."""

    def __init__(self, pid):
        self.pid = pid

    def rss(self):
        return int(_status_field(self.pid, "VmRSS")[0])

    def __enter__(self):
        self.base = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def grew_kb(self):
        return self.peak - self.base


def _pool_cannot(limits):
    """Limits a warm-pool member made with this battery's defaults cannot
    take (server/pool.c, pool_fits): another tmp, nofile, fsize or CPU
    count, or more memory."""
    opts = dict(zip(limits[::2], limits[1::2]))
    mem = opts.get("--memory")
    more = mem is not None and _size(mem) > MEMORY
    return more or any(k in opts for k in ("--tmp", "--nofile", "--fsize")) or \
        ("--cpus" in opts and -(-float(opts["--cpus"]) // 1) != 1)


def _size(text):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    return int(text[:-1] if mult != 1 else text) * mult


class Session:
    """One session of the battery's daemon and a client on it."""

    def __init__(self, daemon, name, limits=(), as_uid=None):
        self.daemon = daemon
        self.name = name
        if BORN == "pool":
            daemon.wait_pool(1)         # a member to claim, not a fresh start
        if as_uid is None:
            p = daemon.cli("new", "--name", name, *limits, check=True)
        else:                           # another local user, by the control socket
            def become():
                os.setgroups([])
                os.setgid(as_uid)
                os.setuid(as_uid)
            p = subprocess.run([_root.CELLBLOCK, "new", "--name", name, *limits],
                               capture_output=True, text=True, env=daemon.env(),
                               timeout=60, preexec_fn=become)
            if p.returncode != 0:
                raise AssertionError(f"cellblock new as uid {as_uid} failed "
                                     f"{p.returncode}:\n{p.stderr}")
        self.conn = p.stdout.strip()
        with open(self.conn) as f:
            self.info = json.load(f)
        self.kc = daemon.client(self.conn)
        self.closed = False
        d = self.describe()
        self.workdir = d["workdir"]
        # The battery attacks what users get by default: a zygote-born
        # session (docs/ZYGOTE.md), not only the exec fallback.
        # With the pool, limits a member cannot take start fresh, from the zygote.
        born = BORN if not (BORN == "pool" and _pool_cannot(limits)) else "zygote"
        assert d.get("born") == born, f"{name} was born by {d.get('born')}, not {born}"

    def describe(self):
        for s in json.loads(self.daemon.cli("ls", "--json", check=True).stdout):
            if s["name"] == self.name:
                return s
        return None

    def shim_pid(self):
        return self.describe()["pid"]

    def interpreter_pid(self):
        """The interpreter's host pid: pid 2 of the session's namespace
        (a zygote-born session's own process is its pid 1; a shim's is
        the parent of its pid 1)."""
        shim = self.shim_pid()
        for pid1 in [shim] + _host_children(shim):
            for pid2 in _host_children(pid1):
                if _status_field(pid2, "NSpid")[-1] == "2":
                    return pid2
        raise AssertionError(f"{self.name}: no interpreter under shim {shim}")

    def run(self, code, timeout=60, prelude=True):
        return run_cell(self.kc, (PRELUDE if prelude else "") + code,
                        timeout=timeout)

    def ok(self, code, timeout=60):
        """Run code that must succeed; return its stdout."""
        reply, outputs = self.run(code, timeout)
        assert reply["content"]["status"] == "ok", (
            f"{self.name}: cell failed: {reply['content']}\n"
            f"stderr: {_stdout(outputs, 'stderr')[-3000:]}")
        return _stdout(outputs)

    def result(self, code, timeout=60):
        """Run code that ends with _result(x); return x."""
        out = self.ok(code, timeout)
        lines = [ln for ln in out.splitlines() if ln.startswith(RESULT)]
        assert lines, f"{self.name}: no result in output:\n{out[-3000:]}"
        return json.loads(lines[-1][len(RESULT):])

    def works(self):
        """The session answers, whatever happened before (maybe restarted)."""
        assert self.ok("print(6 * 7)", timeout=60).strip() == "42"

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.kc.stop_channels()
        finally:
            self.daemon.cli("kill", self.name)


class Host:
    """The battery's daemon, its witness session and host-side facts."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="cb-escape-", dir="/var/tmp")
        os.chmod(self.base, 0o755)
        self.config = os.path.join(self.base, "cellblockd.conf")
        with open(self.config, "w") as f:
            f.write(CONFIG)
        self.secret = "envsecret-" + secrets.token_hex(16)
        # The daemon's environment carries a secret; its state directory is
        # not under /tmp (a system service keeps it in /var/lib), so that a
        # path not found inside is not merely hidden by the session's /tmp.
        saved_tmp = tempfile.tempdir
        os.environ[SECRET_ENV] = self.secret
        tempfile.tempdir = self.base
        try:
            self.daemon = Daemon(["--config", self.config],
                                 warm_pool=2 if BORN == "pool" else 0)
        finally:
            tempfile.tempdir = saved_tmp
            del os.environ[SECRET_ENV]
        try:
            self._start_witness()
        except BaseException:
            self.daemon.stop()
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def _start_witness(self):
        self.witness = Session(self.daemon, "witness")
        self.witness_value = "w-" + secrets.token_hex(12)
        self.witness_file = os.path.join(self.witness.workdir, "witness-secret.txt")
        self.witness_abstract = "cellblock-witness-" + secrets.token_hex(6)
        self.witness.ok(
            f"witness_value = {self.witness_value!r}\n"
            "for _p in ('/home/session/witness-secret.txt', '/tmp/witness-tmp.txt',\n"
            "           '/dev/shm/witness-shm'):\n"
            "    open(_p, 'w').write(witness_value)\n"
            "import socket\n"
            "witness_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            f"witness_sock.bind('\\0' + {self.witness_abstract!r})\n"
            "witness_sock.listen(4)\n")
        with open(self.witness_file) as f:
            assert f.read() == self.witness_value
        self.witness_incarnation = self.witness.describe()["incarnation"]
        with open(TRY_SYSCALL, "rb") as f:
            self.try_syscall_b64 = base64.b64encode(f.read()).decode()
        self.count = 0

    def session(self, prefix, limits=()):
        self.count += 1
        return Session(self.daemon, f"{prefix}-{self.count}", limits)

    def check_witness(self, bound=30.0):
        """The daemon lives; the witness answers within bound seconds with
        its variable, its file is intact, and it was never restarted.
        Returns the round trip."""
        assert self.daemon.alive(), "cellblockd died:\n" + self.daemon.log_text()[-5000:]
        t0 = time.monotonic()
        out = self.witness.ok(
            "print(witness_value, all(open(p).read() == witness_value for p in\n"
            "    ('/tmp/witness-tmp.txt', '/dev/shm/witness-shm')))", timeout=bound + 30)
        rtt = time.monotonic() - t0
        assert out.split() == [self.witness_value, "True"], out
        assert rtt < bound, f"witness took {rtt:.2f} s to answer 1 cell"
        with open(self.witness_file) as f:
            assert f.read() == self.witness_value
        d = self.witness.describe()
        assert d["incarnation"] == self.witness_incarnation, "the witness was restarted"
        assert d["state"] in ("idle", "busy")
        return rtt

    def install_try_syscall(self, sess):
        sess.ok(f"import base64\nopen('/tmp/ts', 'wb').write(base64.b64decode("
                f"'{self.try_syscall_b64}'))\n_os.chmod('/tmp/ts', 0o755)\n")

    def close(self):
        try:
            self.witness.close()
        finally:
            keep = os.environ.get("CELLBLOCK_ESCAPE_KEEP_LOG")
            if keep:
                with open(keep, "w") as f:
                    f.write(self.daemon.log_text())
            self.daemon.stop()
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def host():
    h = Host()
    try:
        yield h
        assert h.daemon.alive(), "cellblockd died:\n" + h.daemon.log_text()[-5000:]
    finally:
        h.close()


@pytest.fixture
def attacker(host):
    """A fresh session with the daemon's default (small) limits."""
    s = host.session("atk")
    yield s
    s.close()


@pytest.fixture
def make_session(host):
    """Sessions with their own limits; all killed at the end of the test."""
    made = []

    def make(prefix, *limits):
        s = host.session(prefix, limits)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def prober(host):
    """One shared session for the syscall probes: each probe is a child
    process, so a probe that is killed does not disturb the next."""
    s = host.session("probe")
    host.install_try_syscall(s)
    yield s
    s.close()


# ------------------------------------------------- host files and secrets

def test_host_secret_files_unreadable(host, attacker):
    r = attacker.result(r'''
out = {}
for p in ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/root",
          "/root/.ssh", "/var", "/var/lib", "/home/session/../..", "/boot",
          "/etc/machine-id", "/run", "/srv", "/mnt", "/media"]:
    try:
        _os.stat(p)
        try:
            out[p] = ("listed", sorted(_os.listdir(p))) if _os.path.isdir(p) else ("read", open(p).read()[:200])
        except OSError as e:
            out[p] = ("exists", e.errno)
    except OSError as e:
        out[p] = ("absent", e.errno)
out["home"] = sorted(_os.listdir("/home"))
out["passwd"] = open("/etc/passwd").read()
out["root"] = sorted(_os.listdir("/"))
_result(out)
''')
    for p in ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/root",
              "/root/.ssh", "/var", "/var/lib", "/boot", "/etc/machine-id", "/run",
              "/srv", "/mnt", "/media"]:
        assert r[p] == ["absent", errno.ENOENT], (p, r[p])
    # "/home/session/../.." is the sandbox's own root, not the host's.
    assert r["/home/session/../.."][0] == "listed"
    assert sorted(r["/home/session/../.."][1]) == r["root"]
    assert set(r["root"]) <= {"bin", "dev", "etc", "home", "lib", "lib32", "lib64",
                              "libx32", "opt", "proc", "sbin", "tmp", "usr"}
    assert r["home"] == ["session"]
    with open("/etc/passwd") as f:
        host_passwd = f.read()
    assert r["passwd"] != host_passwd
    assert [ln.split(":")[0] for ln in r["passwd"].splitlines()] == ["root", "session", "nobody"]
    host.check_witness()


def test_daemon_state_dir_unreachable(host, attacker):
    state = host.daemon.state
    targets = [state, os.path.join(state, "control.sock"), os.path.join(state, "shared.json"),
               os.path.join(state, "sessions", "witness.json"), host.witness.workdir,
               host.witness_file, os.path.join(state, "test-daemon.log"), host.config,
               f"/proc/1/root{state}", f"/proc/1/cwd{state}", f"/proc/2/root{state}"]
    r = attacker.result(f'''
out = {{}}
for p in {targets!r}:
    try:
        with open(p, "rb") as f:
            out[p] = ("read", f.read(64).hex())
    except OSError as e:
        out[p] = ("denied", e.errno)
_result(out)
''')
    for p in targets:
        assert r[p][0] == "denied", (p, r[p])
        assert r[p][1] in (errno.ENOENT, errno.EACCES, errno.ENOTDIR), (p, r[p])
    host.check_witness()


def test_hmac_keys_never_enter_the_sandbox(host, attacker):
    """The session's own key, the witness's key and the shared endpoint's key
    appear nowhere the session can read: environment, command lines, files,
    nor the interpreter's own memory. The cell only gets a 16-hex-digit
    prefix and a hash of the rest, so it cannot plant the key itself."""
    with open(os.path.join(host.daemon.state, "shared.json")) as f:
        shared_key = json.load(f)["key"]
    keys = [attacker.info["key"], host.witness.info["key"], shared_key]
    probes = [(k[:16], _sha(k[16:])) for k in keys]
    r = attacker.result(f'''
import hashlib, re
probes = {probes!r}
hits = []
def scan(blob, where):
    for prefix, rest in probes:
        pb = prefix.encode()
        start = 0
        while True:
            i = blob.find(pb, start)
            if i < 0:
                break
            if hashlib.sha256(blob[i + 16:i + 64]).hexdigest() == rest:
                hits.append(where)
            start = i + 1
scanned = {{"files": 0, "mem": 0}}
for pid in [p for p in _os.listdir("/proc") if p.isdigit()] + ["self"]:
    for name in ("cmdline", "environ"):
        try:
            scan(open(f"/proc/{{pid}}/{{name}}", "rb").read(), f"/proc/{{pid}}/{{name}}")
        except OSError:
            pass
for top in ("/home", "/tmp", "/dev/shm", "/etc", "/opt"):
    for dirpath, dirnames, filenames in _os.walk(top):
        for n in filenames:
            p = _os.path.join(dirpath, n)
            try:
                with open(p, "rb") as f:
                    scan(f.read(1 << 20), p)
                scanned["files"] += 1
            except OSError:
                pass
# The interpreter's own writable memory.
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
    for line in maps:
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if not fields[1].startswith("rw") or hi - lo > (256 << 20):
            continue
        try:
            mem.seek(lo)
            blob = mem.read(hi - lo)
        except (OSError, ValueError, OverflowError):
            continue
        scanned["mem"] += len(blob)
        scan(blob, "memory " + fields[0] + " " + (fields[5] if len(fields) > 5 else ""))
_result({{"hits": hits, "scanned": scanned}})
''', timeout=120)
    assert r["hits"] == [], r["hits"]
    assert r["scanned"]["files"] > 10 and r["scanned"]["mem"] > (8 << 20), r["scanned"]
    host.check_witness()


def test_daemon_environment_not_inherited(host, attacker):
    with open(f"/proc/{host.daemon.proc.pid}/environ", "rb") as f:
        assert host.secret.encode() in f.read(), "the test did not set up the secret"
    r = attacker.result(f'''
found = []
env = dict(_os.environ)
for pid in [p for p in _os.listdir("/proc") if p.isdigit()] + ["self"]:
    try:
        if {host.secret!r}.encode() in open(f"/proc/{{pid}}/environ", "rb").read():
            found.append(pid)
    except OSError:
        pass
rc, out, err = _run(["/usr/bin/env"])
_result({{"env": env, "found": found, "child": out}})
''')
    assert SECRET_ENV not in r["env"]
    assert host.secret not in json.dumps(r["env"])
    assert r["found"] == []
    assert host.secret not in r["child"] and SECRET_ENV not in r["child"]
    # Exactly the shim's allowlist (plus what the runner sets for pagers).
    assert set(r["env"]) <= {"PATH", "LANG", "HOME", "TERM", "MPLBACKEND", "MPLCONFIGDIR",
                             "PYTHONUNBUFFERED", "CELLBLOCK_SESSION", "OPENBLAS_NUM_THREADS",
                             "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PAGER", "GIT_PAGER"}
    assert r["env"]["HOME"] == "/home/session"
    host.check_witness()


def test_host_proc_1_environ_not_the_hosts(host, attacker):
    """/proc/1 inside is the session's own pid 1 (cellblock-init, the tiny
    exec'd reaper), not the host's init; it is not readable (it made itself
    undumpable before the interpreter went on); its root link cannot be
    followed."""
    r = attacker.result(r'''
out = {}
for p in ("/proc/1/environ", "/proc/1/root/etc/shadow", "/proc/1/mem", "/proc/1/fd/0"):
    try:
        out[p] = ("read", open(p, "rb").read(4096).decode(errors="replace"))
    except OSError as e:
        out[p] = ("denied", e.errno)
try:
    out["root"] = _os.readlink("/proc/1/root")
except OSError as e:
    out["root"] = e.errno
out["comm"] = open("/proc/1/comm").read().strip()
out["pids"] = sorted(int(p) for p in _os.listdir("/proc") if p.isdigit())
_result(out)
''')
    for p in ("/proc/1/environ", "/proc/1/root/etc/shadow", "/proc/1/mem", "/proc/1/fd/0"):
        assert r[p][0] == "denied", (p, r[p])
    assert r["root"] == errno.EACCES
    assert r["comm"] == "cellblock-init"
    host.check_witness()


# ------------------------------------------------------- other sessions

def test_other_session_files_unreachable(host, attacker):
    r = attacker.result(r'''
found = []
for top in ("/home", "/tmp", "/dev/shm", "/opt", "/etc"):
    for dirpath, dirnames, filenames in _os.walk(top):
        found += [_os.path.join(dirpath, n) for n in filenames if "witness" in n]
_result({"found": found, "home": _os.listdir("/home/session")})
''')
    assert r["found"] == []
    assert "witness-secret.txt" not in r["home"]
    # And on the host, the witness's work dir is closed to other session uids.
    st = os.stat(host.witness.workdir)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == host.witness.describe()["uid"] != attacker.describe()["uid"]
    host.check_witness()


def test_other_session_processes_invisible(host, attacker):
    wpid = host.witness.interpreter_pid()
    r = attacker.result(r'''
procs = {}
for p in _os.listdir("/proc"):
    if p.isdigit():
        try:
            procs[p] = open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
        except OSError as e:
            procs[p] = str(e)
_result(procs)
''')
    assert str(wpid) not in r
    assert all("witness" not in cmd for cmd in r.values()), r
    assert all(int(p) < 100 for p in r), r
    host.check_witness()


def test_kill_witness_host_pids_from_inside_fails(host, attacker):
    """The witness's interpreter, shim and pid 1, and the daemon, by host
    pid: none exists in the attacker's pid namespace."""
    shim = host.witness.shim_pid()
    pid1 = _host_children(shim)[0]
    targets = [host.witness.interpreter_pid(), pid1, shim, host.daemon.proc.pid]
    r = attacker.result(f'''
out = {{}}
for pid in {targets!r}:
    for sig in (_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGTERM):
        try:
            _os.kill(pid, sig)
            out[f"{{pid}}/{{sig}}"] = 0
        except OSError as e:
            out[f"{{pid}}/{{sig}}"] = e.errno
_result(out)
''')
    assert set(r.values()) == {errno.ESRCH}, r
    assert host.daemon.alive()
    assert host.witness.interpreter_pid() == targets[0]
    host.check_witness()


def test_uid_separation(host, make_session):
    a = make_session("uida")
    b = make_session("uidb")
    da, db, dw = a.describe(), b.describe(), host.witness.describe()
    uids = {da["uid"], db["uid"], dw["uid"]}
    assert len(uids) == 3 and min(uids) >= 200000, uids
    for s, d in ((a, da), (b, db), (host.witness, dw)):
        pid = s.interpreter_pid()
        assert _status_field(pid, "Uid") == [str(d["uid"])] * 4
        assert _status_field(pid, "Gid") == [str(d["uid"])] * 4
        assert _status_field(pid, "CapEff") == ["0000000000000000"]
        assert os.stat(s.workdir).st_uid == d["uid"]
    # Inside, both are the inner uid of their own namespace.
    assert a.ok("print(_os.getuid(), _os.geteuid())").split() == [INNER, INNER]
    assert b.ok("print(_os.getuid(), _os.geteuid())").split() == [INNER, INNER]
    host.check_witness()


# ----------------------------------------------------------------- network

def test_only_inet_and_unix_socket_families(host, attacker):
    """AF_INET/AF_INET6 work (on the session's own lo, sandbox-net.c);
    netlink and packet sockets, which could add devices, addresses and
    routes or send raw frames, stay refused, and raw/ICMP sockets fail for
    want of CAP_NET_RAW. A child process gets the same policy."""
    r = attacker.result(r"""
import socket
out = {}
for fam, typ, proto, name in (
        (socket.AF_INET, socket.SOCK_STREAM, 0, "inet-tcp"),
        (socket.AF_INET, socket.SOCK_DGRAM, 0, "inet-udp"),
        (socket.AF_INET6, socket.SOCK_STREAM, 0, "inet6"),
        (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP, "inet-raw"),
        (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6, "inet6-raw"),
        (socket.AF_NETLINK, socket.SOCK_RAW, 0, "netlink"),
        (socket.AF_NETLINK, socket.SOCK_DGRAM, 0, "netlink-dgram"),
        (socket.AF_PACKET, socket.SOCK_RAW, 0, "packet"),
        (socket.AF_PACKET, socket.SOCK_DGRAM, 0, "packet-dgram")):
    try:
        socket.socket(fam, typ, proto).close()
        out[name] = 0
    except OSError as e:
        out[name] = e.errno
try:
    socket.if_nameindex()
    out["if_nameindex"] = 0
except OSError as e:
    out["if_nameindex"] = e.errno
rc, out["child"], err = _run(["/usr/bin/python3", "-c",
    "import socket\ntry:\n socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close()\n"
    " print('made')\nexcept OSError as e:\n print(e.errno)"])
_result(out)
""")
    for name in ("inet-tcp", "inet-udp", "inet6"):
        assert r[name] == 0, (name, r)
    for name in ("inet-raw", "inet6-raw"):
        assert r[name] == errno.EPERM, (name, r)
    for name in ("netlink", "netlink-dgram", "packet", "packet-dgram", "if_nameindex"):
        assert r[name] == errno.EAFNOSUPPORT, (name, r)
    assert r["child"].strip() == str(errno.EAFNOSUPPORT)
    host.check_witness()


def _host_addresses():
    """Every address of the host's own interfaces (but loopback)."""
    p = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                       check=True)
    addrs = []
    for line in p.stdout.splitlines():
        f = line.split()
        if f[1] != "lo" and f[2] in ("inet", "inet6"):
            addrs.append(f[3].split("/")[0])
    return addrs


def test_no_egress_from_the_session_namespace(host, attacker):
    """Only lo, and no route: every non-loopback address is unreachable
    (the host's own addresses, private ranges, the cloud metadata address,
    public v4 and v6, v4-mapped v6), for TCP and UDP alike; DNS fails."""
    targets = ["1.1.1.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
               "2606:4700:4700::1111", "fe80::1", "::ffff:1.1.1.1"] + _host_addresses()
    r = attacker.result(f"""
import socket
out = {{"tcp": {{}}, "udp": {{}}}}
for addr in {targets!r}:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((addr, 53))
        out["tcp"][addr] = 0
    except OSError as e:
        out["tcp"][addr] = e.errno
    s.close()
    u = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        u.sendto(b"x", (addr, 53))
        out["udp"][addr] = 0
    except OSError as e:
        out["udp"][addr] = e.errno
    u.close()
try:
    socket.getaddrinfo("example.com", 80)
    out["dns"] = 0
except OSError as e:
    out["dns"] = str(e)
out["dev"] = [ln.split(":")[0].strip()
              for ln in open("/proc/self/net/dev").read().splitlines()[2:]]
out["route"] = open("/proc/self/net/route").read().splitlines()[1:]
out["route6"] = [ln for ln in open("/proc/self/net/ipv6_route").read().splitlines()
                 if not ln.split()[-1] == "lo"]
_result(out)
""")
    for kind in ("tcp", "udp"):
        for addr in targets:
            assert r[kind][addr] in (errno.ENETUNREACH, errno.EHOSTUNREACH,
                                     errno.EADDRNOTAVAIL, errno.EINVAL), (kind, addr, r)
    assert r["dns"] != 0
    assert r["dev"] == ["lo"], r["dev"]
    assert r["route"] == [], r["route"]
    assert r["route6"] == [], r["route6"]
    host.check_witness()


def test_session_loopback_server_unreachable_from_host_and_sessions(host, attacker,
                                                                    make_session):
    """A server a session runs on its loopback (v4 and v6) is the session's
    alone: the host's 127.0.0.1/::1 and another session's are other
    namespaces. The server is alive all along (the session itself reaches
    it at the end) and was never reached by anyone else."""
    token = secrets.token_hex(8)
    r = attacker.result(f"""
import socket, threading
_net_hits = []
_net_servers = []
def _net_serve(srv):
    while True:
        try:
            c, peer = srv.accept()
        except OSError:
            return
        _net_hits.append(peer[0])
        c.sendall({token!r}.encode())
        c.close()
ports = {{}}
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.bind((addr, 0))
    srv.listen(8)
    _net_servers.append(srv)
    threading.Thread(target=_net_serve, args=(srv,), daemon=True).start()
    ports[addr] = srv.getsockname()[1]
_result(ports)
""")
    ports = [("127.0.0.1", r["127.0.0.1"], socket.AF_INET), ("::1", r["::1"], socket.AF_INET6)]
    # From the host: nothing there, or (a host process on the same port by
    # chance) never the session's server.
    for addr, port, fam in ports:
        assert token.encode() not in (host_connect_read(fam, addr, port) or b"")
    # From another session: refused, and the same ports are free there.
    other = make_session("nbr")
    o = other.result(f"""
import socket
out = {{}}
for addr, port, fam in {[(a, p, int(f)) for a, p, f in ports]!r}:
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.settimeout(3)
    try:
        c.connect((addr, port))
        out[addr] = c.recv(64).decode()
    except OSError as e:
        out[addr] = e.errno
    c.close()
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((addr, port))
    out[addr + " bind"] = s.getsockname()[1]
    s.close()
_result(out)
""")
    for addr, port, _ in ports:
        assert o[addr] == errno.ECONNREFUSED, o
        assert o[addr + " bind"] == port, o
    # The session itself reaches its servers, which no one else reached.
    a = attacker.result(f"""
hits_before = list(_net_hits)
got = {{}}
for addr, port, fam in {[(a, p, int(f)) for a, p, f in ports]!r}:
    c = socket.create_connection((addr, port), timeout=5)
    got[addr] = c.recv(64).decode()
    c.close()
for srv in _net_servers:
    srv.close()
_result([hits_before, got])
""")
    assert a[0] == [], a
    assert a[1] == {"127.0.0.1": token, "::1": token}, a
    host.check_witness()


def test_connect_to_daemon_ports_fails(host, attacker):
    info = host.witness.info
    ports = [info[k] for k in ("shell_port", "iopub_port", "stdin_port", "control_port",
                               "hb_port")]
    ports += [attacker.info["shell_port"]]
    ctl = os.path.join(host.daemon.state, "control.sock")
    r = attacker.result(f'''
import socket
out = {{}}
for port in {ports!r}:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        out[str(port)] = 0
    except OSError as e:
        out[str(port)] = e.errno
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect({ctl!r})
    out["control.sock"] = 0
except OSError as e:
    out["control.sock"] = e.errno
_result(out)
''')
    # The daemon listens on the host's loopback; the session has its own.
    for port in ports:
        assert r[str(port)] == errno.ECONNREFUSED, r
    assert r["control.sock"] == errno.ENOENT
    host.check_witness()


def test_abstract_unix_socket_on_host_unreachable(host, attacker):
    name = "cellblock-escape-" + secrets.token_hex(6)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind("\0" + name)
    srv.listen(4)
    srv.setblocking(False)
    try:
        r = attacker.result(f'''
import socket
out = {{}}
for typ, label in ((socket.SOCK_STREAM, "stream"), (socket.SOCK_DGRAM, "dgram")):
    s = socket.socket(socket.AF_UNIX, typ)
    try:
        s.connect("\\0" + {name!r})
        out[label] = 0
    except OSError as e:
        out[label] = e.errno
    s.close()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\\0" + {host.witness_abstract!r})
    out["witness"] = 0
except OSError as e:
    out["witness"] = e.errno
out["listed"] = {name!r} in open("/proc/self/net/unix").read()
_result(out)
''')
        assert r["stream"] == errno.ECONNREFUSED, r
        assert r["dgram"] == errno.ECONNREFUSED, r
        assert r["witness"] == errno.ECONNREFUSED, r
        assert r["listed"] is False
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()
    host.check_witness()


def test_proc_net_shows_no_host_sockets(host, attacker):
    r = attacker.result(r'''
out = {}
for f in ("tcp", "tcp6", "udp", "unix"):
    out[f] = open(f"/proc/self/net/{f}").read().splitlines()[1:]
out["dev"] = [ln.split(":")[0].strip() for ln in open("/proc/self/net/dev").read().splitlines()[2:]]
_result(out)
''')
    assert r["tcp"] == [] and r["tcp6"] == [] and r["udp"] == [], r
    assert all("control.sock" not in ln for ln in r["unix"])
    assert set(r["dev"]) <= {"lo"}, r["dev"]
    host.check_witness()


# ---------------------------------------------------------- resource bombs

def test_fork_bomb_bounded_by_pids_limit(host, attacker):
    """Every process of a self-replicating bomb forks until the pids
    controller says no, for 4 s. The host never sees more processes under
    the session's shim than the limit; the session answers afterwards."""
    shim = attacker.shim_pid()
    msg_id = attacker.kc.execute(PRELUDE + r'''
bomb = r"""
import os, time
me = os.getpid()
end = time.monotonic() + 4
refused = 0
while time.monotonic() < end:
    try:
        if os.fork() == 0:
            continue
    except OSError:
        refused += 1
        time.sleep(0.01)
if os.getpid() == me:
    print(refused, flush=True)
os._exit(0)
"""
rc, out, err = _run(["/usr/bin/python3", "-c", bomb], timeout=30)
_result({"rc": rc, "refused": out.strip()})
''')
    peak = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        peak = max(peak, len(_descendants(shim)))
        time.sleep(0.2)
    reply = attacker.kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = attacker.kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    out = ""
    while True:
        m = attacker.kc.get_iopub_msg(timeout=30)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "stream":
            out += m["content"]["text"]
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    r = json.loads(out.split(RESULT)[-1])
    assert r["rc"] == 0 and int(r["refused"]) > 0, r     # the limit was reached
    assert peak > 10, f"the bomb never got going (peak {peak})"
    assert peak <= PIDS, f"{peak} processes seen under the session's shim, limit {PIDS}"
    attacker.works()
    host.check_witness()


def test_thread_bomb_bounded_by_pids_limit(host, attacker):
    r = attacker.result(r'''
import threading
stop = threading.Event()
threads, error = [], None
for i in range(1000):
    t = threading.Thread(target=stop.wait, args=(30,))
    try:
        t.start()
    except RuntimeError as e:
        error = str(e)
        break
    threads.append(t)
stop.set()
for t in threads:
    t.join(10)
_result({"started": len(threads), "error": error})
''')
    assert r["error"] is not None and "thread" in r["error"], r
    assert r["started"] < PIDS, r
    attacker.works()
    host.check_witness()


def test_memory_bomb_is_reported_and_session_restarts(host, attacker):
    attacker.ok("kept = 'before the bomb'")
    reply, outputs = attacker.run(r'''
hog = []
for i in range(200):
    hog.append(b"\x01" * (32 << 20))        # touched, not lazily zero
print("allocated", len(hog) * 32, "MiB")
''', timeout=90)
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "SessionOutOfMemory", c
    assert reply["metadata"]["cellblock"]["state_preserved"] is False
    assert reply["metadata"]["cellblock"]["reason"] == "SessionOutOfMemory"
    assert [e["ename"] for e in _errors(outputs)] == ["SessionOutOfMemory"]
    assert "allocated" not in _stdout(outputs)
    attacker.works()
    assert attacker.ok("print(globals().get('kept'))").strip() == "None"
    assert attacker.describe()["incarnation"] == 2
    host.check_witness()


def test_memory_limit_is_set_on_the_host(host, attacker):
    """Host side: the interpreter sits in cgroups whose limits are the
    configured ones, and the session's uid cannot write them."""
    pid = attacker.interpreter_pid()
    with open(f"/proc/{pid}/cgroup") as f:
        groups = {}
        for line in f:
            _, ctls, path = line.rstrip("\n").split(":", 2)
            for c in ctls.split(","):
                groups[c] = path
    checks = {"memory": ("memory.limit_in_bytes", MEMORY), "pids": ("pids.max", PIDS)}
    uid = attacker.describe()["uid"]
    for ctl, (knob, want) in checks.items():
        path = f"/sys/fs/cgroup/{ctl}{groups[ctl]}/{knob}"
        with open(path) as f:
            assert int(f.read()) == want, path
        st = os.stat(path)
        assert st.st_uid == 0 and st.st_uid != uid
        assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), oct(st.st_mode)
        dst = os.stat(os.path.dirname(path))
        assert dst.st_uid == 0 and not dst.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    host.check_witness()


def test_filling_tmp_and_shm_stops_at_the_cap(host, attacker):
    before = _tree_digest(attacker.workdir)
    r = attacker.result(r'''
out = {}
chunk = b"x" * (1 << 20)
for d in ("/tmp", "/dev/shm"):
    written, err = 0, None
    with open(d + "/fill", "wb", buffering=0) as f:
        for i in range(64):
            try:
                written += f.write(chunk)
            except OSError as e:
                err = e.errno
                break
    st = _os.statvfs(d)
    out[d] = {"written": written, "errno": err, "size": st.f_blocks * st.f_frsize}
    _os.unlink(d + "/fill")
# inodes are capped too
made, err = 0, None
for i in range(100000):
    try:
        open(f"/tmp/i{i}", "w").close()
        made += 1
    except OSError as e:
        err = e.errno
        break
for i in range(made):
    _os.unlink(f"/tmp/i{i}")
out["inodes"] = {"made": made, "errno": err}
_result(out)
''', timeout=120)
    for d in ("/tmp", "/dev/shm"):
        assert r[d]["errno"] == errno.ENOSPC, r
        assert r[d]["size"] == TMP, r
        assert r[d]["written"] <= TMP, r
    assert r["inodes"]["errno"] == errno.ENOSPC and r["inodes"]["made"] < 2048, r
    # Nothing of it landed on the host's disk.
    assert _tree_digest(attacker.workdir) == before
    attacker.works()
    host.check_witness()


def test_workdir_file_size_capped(host, attacker):
    """The work dir is on the host's disk; one file stops at fsize (EFBIG)."""
    r = attacker.result(r'''
chunk = b"y" * (1 << 20)
written, err = 0, None
with open("/home/session/big", "wb", buffering=0) as f:
    for i in range(64):
        try:
            written += f.write(chunk)
        except OSError as e:
            err = e.errno
            break
_result({"written": written, "errno": err})
''')
    assert r["errno"] == errno.EFBIG and r["written"] == FSIZE, r
    assert os.path.getsize(os.path.join(attacker.workdir, "big")) == FSIZE
    attacker.works()
    host.check_witness()


def test_cpu_spin_does_not_starve_the_witness(host, make_session):
    spinner = make_session("spin", "--cpus", "0.5")
    cpu0 = spinner.describe().get("cpu_seconds")
    msg_id = spinner.kc.execute(PRELUDE + r'''
import threading
end = _time.monotonic() + 6
def spin():
    while _time.monotonic() < end:
        pass
ts = [threading.Thread(target=spin) for i in range(4)]
for t in ts:
    t.start()
spin()
for t in ts:
    t.join()
''')
    t0 = time.monotonic()
    rtts = []
    while time.monotonic() - t0 < 5:
        rtts.append(host.check_witness(bound=2.0))
    reply = spinner.kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = spinner.kc.get_shell_msg(timeout=60)
    wall = time.monotonic() - t0
    assert reply["content"]["status"] == "ok"
    assert len(rtts) >= 3 and max(rtts) < 2.0, rtts
    cpu1 = spinner.describe().get("cpu_seconds")
    if cpu0 is not None and cpu1 is not None:
        # 0.5 CPU over the spin, with slack for scheduling granularity.
        assert cpu1 - cpu0 <= 0.5 * wall + 1.5, (cpu0, cpu1, wall)
    spinner.works()


def test_output_flood_truncated_and_daemon_memory_bounded(host, attacker):
    """print 50 MB: the client sees at most max-stream (8M) and a notice on
    stderr; the daemon's memory stays flat even with a subscriber that
    never reads."""
    slow = SlowSubscriber(attacker.info["iopub_port"])
    try:
        with RssPeak(host.daemon.proc.pid) as rss:
            reply, outputs = attacker.run(r'''
import sys
line = "z" * 1023 + "\n"
block = line * 1024
for i in range(50):
    sys.stdout.write(block)
print("flood done", file=sys.stderr)
''', timeout=180)
    finally:
        slow.close()
    assert reply["content"]["status"] == "ok", reply["content"]
    shown = len(_stdout(outputs))
    err = _stdout(outputs, "stderr")
    assert (8 << 20) - (1 << 20) <= shown <= (8 << 20) + (1 << 20), shown
    assert "output truncated" in err, err[-500:]
    assert "flood done" not in err
    assert rss.grew_kb < 100 * 1024, f"daemon RSS grew by {rss.grew_kb} kB"
    attacker.works()
    host.check_witness()


def test_fd_exhaustion_stops_at_nofile(host, attacker):
    r = attacker.result(r'''
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
fds, err = [], None
for i in range(100000):
    try:
        fds.append(_os.open("/dev/null", _os.O_RDONLY))
    except OSError as e:
        err = e.errno
        break
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard * 4, hard * 4))
    raised = True
except (OSError, ValueError):
    raised = False
n = len(fds)
for fd in fds:
    _os.close(fd)
_result({"soft": soft, "hard": hard, "opened": n, "errno": err, "raised": raised})
''')
    assert r["soft"] == r["hard"] == NOFILE, r
    assert r["errno"] == errno.EMFILE and r["opened"] < NOFILE, r
    assert r["raised"] is False
    attacker.works()
    host.check_witness()


# ------------------------------------------------------------- privilege

def test_setuid_binaries_do_not_give_root(host, attacker):
    r = attacker.result(r'''
import shutil
out = {}
out["su"] = _run(["/usr/bin/su", "-c", "id -u"], timeout=10)
out["passwd"] = _run(["/usr/bin/passwd", "-d", "root"], timeout=10)
for d in ("/home/session", "/tmp"):
    p = d + "/myid"
    shutil.copy("/usr/bin/id", p)
    _os.chmod(p, 0o4755)
    out[d] = (oct(_os.stat(p).st_mode), _run([p, "-u"])[1].strip(), _run([p, "-ur"])[1].strip())
out["mounts"] = [ln.split()[4] + " " + ln.split()[5] for ln in open("/proc/self/mountinfo")]
_result(out)
''')
    assert r["su"][0] != 0 and r["su"][1].strip() != "0", r["su"]
    assert r["passwd"][0] != 0, r["passwd"]
    for d in ("/home/session", "/tmp"):
        mode, euid, ruid = r[d]
        assert euid == INNER and ruid == INNER, r[d]
    for m in r["mounts"]:
        assert "nosuid" in m, m
    # The copied file is setuid on the host too, but owned by the session's
    # unprivileged uid, in a 0700 directory of that uid.
    p = os.path.join(attacker.workdir, "myid")
    assert os.stat(p).st_uid == attacker.describe()["uid"] != 0
    host.check_witness()


def test_capabilities_and_no_new_privs(host, attacker):
    r = attacker.result(r'''
st = {}
for line in open("/proc/self/status"):
    k, v = line.split(":", 1)
    st[k] = v.strip()
_result(st)
''')
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert r[k] == "0000000000000000", (k, r[k])
    assert r["NoNewPrivs"] == "1" and r["Seccomp"] == "2"
    assert r["Uid"].split() == [INNER] * 4 and r["Groups"] == ""
    host.check_witness()


def test_ptrace_denied(host, attacker):
    r = attacker.result(r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
out = {}
pid = _os.fork()
if pid == 0:
    # the child asks to be traced by its parent
    r = libc.ptrace(0, 0, None, None)       # PTRACE_TRACEME
    _os._exit(0 if r == 0 else ctypes.get_errno())
out["traceme"] = _os.waitstatus_to_exitcode(_os.waitpid(pid, 0)[1])
pid = _os.fork()
if pid == 0:
    _time.sleep(10)
    _os._exit(0)
r = libc.ptrace(16, pid, None, None)        # PTRACE_ATTACH to our own child
out["attach"] = ctypes.get_errno() if r != 0 else 0
r = libc.ptrace(0x4206, pid, None, None)    # PTRACE_SEIZE
out["seize"] = ctypes.get_errno() if r != 0 else 0
_os.kill(pid, _signal.SIGKILL)
_os.waitpid(pid, 0)
try:
    open("/proc/1/mem", "rb").read(1)
    out["mem1"] = 0
except OSError as e:
    out["mem1"] = e.errno
_result(out)
''')
    assert r["traceme"] == errno.EPERM, r
    assert r["attach"] == errno.EPERM and r["seize"] == errno.EPERM, r
    assert r["mem1"] == errno.EACCES, r
    host.check_witness()


def test_mount_denied(host, attacker):
    r = attacker.result(r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
out = {}
_os.makedirs("/tmp/mnt", exist_ok=True)
before = open("/proc/self/mountinfo").read()
for fs in (b"tmpfs", b"proc", b"cgroup", b"cgroup2", b"sysfs"):
    r = libc.mount(b"none", b"/tmp/mnt", fs, 0, None)
    out[fs.decode()] = ctypes.get_errno() if r != 0 else 0
r = libc.mount(b"none", b"/", None, 32 | 1, None)   # MS_REMOUNT|MS_RDONLY toggling
out["remount"] = ctypes.get_errno() if r != 0 else 0
r = libc.umount2(b"/proc", 2)                          # MNT_DETACH
out["umount"] = ctypes.get_errno() if r != 0 else 0
out["cli"] = _run(["/usr/bin/mount", "-t", "tmpfs", "none", "/tmp/mnt"], timeout=10)[0]
out["same"] = open("/proc/self/mountinfo").read() == before
_result(out)
''')
    for k in ("tmpfs", "proc", "cgroup", "cgroup2", "sysfs", "remount", "umount"):
        assert r[k] == errno.EPERM, (k, r)
    assert r["cli"] != 0 and r["same"] is True, r
    host.check_witness()


def test_nested_user_namespace_denied(host, attacker):
    r = attacker.result(r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for flag, name in ((0x10000000, "user"), (0x00020000, "ns"), (0x20000000, "pid"),
                   (0x40000000, "net"), (0x02000000, "cgroup")):
    r = libc.unshare(flag)
    out[name] = ctypes.get_errno() if r != 0 else 0
out["cli"] = _run(["/usr/bin/unshare", "-U", "-r", "/usr/bin/id", "-u"], timeout=10)
_result(out)
''')
    for name in ("user", "ns", "pid", "net", "cgroup"):
        assert r[name] == errno.EPERM, (name, r)
    rc, out, err = r["cli"]
    assert rc != 0 and out.strip() != "0", r["cli"]
    host.check_witness()


def test_device_files_absent_and_mknod_fails(host, attacker):
    r = attacker.result(r'''
out = {"dev": sorted(_os.listdir("/dev"))}
for p in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/sda", "/dev/vda",
          "/dev/tty", "/dev/console", "/dev/pts", "/dev/mqueue", "/dev/net/tun", "/dev/fuse",
          "/dev/kvm"):
    out[p] = _os.path.exists(p)
for name, dev in (("mem", (1, 1)), ("sda", (8, 0)), ("kmsg", (1, 11))):
    for d in ("/tmp", "/home/session", "/dev"):
        try:
            _os.mknod(f"{d}/{name}", 0o600 | 0o020000, _os.makedev(*dev))
            out[f"mknod {d}/{name}"] = 0
        except OSError as e:
            out[f"mknod {d}/{name}"] = e.errno
try:
    open("/dev/null", "w").write("x")
    out["null"] = "ok"
except OSError as e:
    out["null"] = e.errno
try:
    open("/dev/newfile", "w")
    out["devfile"] = 0
except OSError as e:
    out["devfile"] = e.errno
_result(out)
''')
    assert r["dev"] == sorted(["fd", "full", "null", "random", "shm", "stderr", "stdin",
                               "stdout", "urandom", "zero"]), r["dev"]
    for p in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/sda", "/dev/vda",
              "/dev/tty", "/dev/console", "/dev/pts", "/dev/mqueue", "/dev/net/tun",
              "/dev/fuse", "/dev/kvm"):
        assert r[p] is False, p
    for k, v in r.items():
        if k.startswith("mknod"):
            assert v != 0, (k, v)
    assert r["null"] == "ok"
    assert r["devfile"] == errno.EROFS
    host.check_witness()


def test_proc_and_sys_knobs_absent(host, attacker):
    r = attacker.result(r'''
out = {}
for p in ("/proc/sys", "/proc/sysrq-trigger", "/proc/kcore", "/proc/kmsg", "/proc/kallsyms",
          "/proc/modules", "/proc/meminfo", "/proc/cpuinfo", "/proc/keys", "/proc/timer_list",
          "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/sys", "/sys/kernel",
          "/sys/fs/cgroup"):
    out[p] = _os.path.exists(p)
for p in ("/proc/self/oom_score_adj", "/proc/self/setgroups", "/proc/self/uid_map"):
    try:
        with open(p, "w") as f:
            f.write("-1000\n" if "oom" in p else "0 0 1\n")
        out["write " + p] = 0
    except OSError as e:
        out["write " + p] = e.errno
out["proc"] = sorted(_os.listdir("/proc"))
_result(out)
''')
    for p in ("/proc/sys", "/proc/sysrq-trigger", "/proc/kcore", "/proc/kmsg", "/proc/kallsyms",
              "/proc/modules", "/proc/meminfo", "/proc/cpuinfo", "/proc/keys",
              "/proc/timer_list", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
              "/sys", "/sys/kernel", "/sys/fs/cgroup"):
        assert r[p] is False, p
    # Lowering one's OOM score is refused without CAP_SYS_RESOURCE.
    assert r["write /proc/self/oom_score_adj"] == errno.EACCES, r
    assert r["write /proc/self/setgroups"] != 0 and r["write /proc/self/uid_map"] != 0, r
    assert all(p.isdigit() or p in ("self", "thread-self") for p in r["proc"]), r["proc"]
    host.check_witness()


def test_cgroupfs_invisible(host, attacker):
    r = attacker.result(r'''
out = {"mounts": [ln.split(" - ")[1].split()[0] for ln in open("/proc/self/mountinfo")]}
out["cgroup"] = open("/proc/self/cgroup").read().splitlines()
found = []
for top in ("/dev", "/tmp", "/home", "/opt", "/etc"):
    for dirpath, dirnames, filenames in _os.walk(top):
        found += [n for n in filenames if n in ("memory.limit_in_bytes", "pids.max", "cgroup.procs")]
out["found"] = found
_result(out)
''')
    assert not any(fs.startswith("cgroup") or fs == "sysfs" for fs in r["mounts"]), r["mounts"]
    # A cgroup namespace: the session's own group is its root.
    assert all(line.endswith(":/") for line in r["cgroup"]), r["cgroup"]
    assert r["found"] == []
    host.check_witness()


def test_readonly_system_and_runner(host, attacker):
    """/usr, /etc, / and the runner (a host directory shared by every
    session) cannot be changed from inside."""
    runner_host = os.path.join(os.path.dirname(BIN), "kernel-shim", "runner",
                               "cellblock_runner.py")
    with open(runner_host, "rb") as f:
        runner_before = _sha(f.read())
    r = attacker.result(r'''
out = {}
for p in ("/usr/bin/evil", "/etc/passwd", "/etc/evil", "/evil", "/opt/cellblock/runner/cellblock_runner.py",
          "/opt/cellblock/runner/evil.py", "/usr/lib/python3/dist-packages/evil.pth"):
    try:
        with open(p, "a") as f:
            f.write("import os\n")
        out[p] = 0
    except OSError as e:
        out[p] = e.errno
for p in ("/opt/cellblock/runner/cellblock_runner.py", "/usr/bin/python3"):
    try:
        _os.rename(p, "/tmp/moved")
        out["rename " + p] = 0
    except OSError as e:
        out["rename " + p] = e.errno
_result(out)
''')
    for p, e in r.items():
        assert e in (errno.EROFS, errno.EACCES, errno.EXDEV), (p, e)
    with open(runner_host, "rb") as f:
        assert _sha(f.read()) == runner_before
    host.check_witness()


# ------------------------------------------- kernel attack surface syscalls

# try-syscall NAME -> what the sandbox must answer: an errno name, or
# "SIGSYS" for the foreign-ABI calls that kill the process.
DENIED = {
    "bpf": "EPERM", "perf_event_open": "EPERM", "userfaultfd": "EPERM",
    "io_uring_setup": "EPERM", "io_uring_enter": "EPERM", "io_uring_register": "EPERM",
    "keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM",
    "open_by_handle_at": "EPERM", "name_to_handle_at": "EPERM",
    "kexec_load": "EPERM", "kexec_file_load": "EPERM",
    "init_module": "EPERM", "finit_module": "EPERM", "delete_module": "EPERM",
    "personality": "ENOSYS",                    # ADDR_NO_RANDOMIZE: not in the table
    "tiocsti": "EPERM", "tiocsti-highbit": "EPERM",
    "tioclinux": "EPERM", "tioclinux-highbit": "EPERM",
    "ioctl-tiocsetd": "ENOSYS", "ioctl-tiocgptn": "ENOSYS",
    "shmget": "EPERM", "shmat": "EPERM", "msgget": "EPERM", "semget": "EPERM", "semop": "EPERM",
    "clone-newuser": "EPERM", "clone-newns": "EPERM", "clone-newpid": "EPERM",
    "clone-newnet": "EPERM", "clone-newcgroup": "EPERM", "clone3": "ENOSYS",
    "unshare-user": "EPERM", "unshare-ns": "EPERM", "setns": "EPERM",
    "mount": "EPERM", "umount2": "EPERM", "pivot_root": "EPERM", "chroot": "EPERM",
    "fsopen": "EPERM", "fsmount": "EPERM", "fsconfig": "EPERM", "fspick": "EPERM",
    "open_tree": "EPERM", "move_mount": "EPERM", "mount_setattr": "EPERM",
    "ptrace": "EPERM", "process_vm_readv": "EPERM", "process_vm_writev": "EPERM",
    "kcmp": "EPERM", "pidfd_getfd": "EPERM",
    "socket-netlink": "EAFNOSUPPORT", "socket-packet": "EAFNOSUPPORT",
    "socket-inet-highbit": "EAFNOSUPPORT", "socket-unspec": "EAFNOSUPPORT",
    "socket-ax25": "EAFNOSUPPORT", "socket-bridge": "EAFNOSUPPORT",
    "socket-x25": "EAFNOSUPPORT", "socket-key": "EAFNOSUPPORT",
    "socket-inet-raw": "EPERM",                 # no CAP_NET_RAW
    "socket-inet-ping": "EACCES",               # ping_group_range is empty
    "socket-unix-highbit": "EAFNOSUPPORT", "socketpair-inet": "EAFNOSUPPORT",
    "prctl-set-dumpable": "EPERM", "prctl-set-mm": "ENOSYS",
    "prctl-set-child-subreaper": "ENOSYS", "prlimit-set": "EPERM", "setrlimit": "EPERM",
    "fanotify_init": "ENOSYS",
    "swapon": "EPERM", "swapoff": "EPERM", "reboot": "EPERM", "syslog": "EPERM",
    "acct": "EPERM", "quotactl": "EPERM", "iopl": "EPERM", "ioperm": "EPERM",
    "modify_ldt": "EPERM", "sethostname": "EPERM", "setdomainname": "EPERM",
    "settimeofday": "EPERM", "clock_settime": "EPERM", "adjtimex": "EPERM",
    "clock_adjtime": "EPERM", "mbind": "EPERM", "set_mempolicy": "EPERM",
    "migrate_pages": "EPERM", "move_pages": "EPERM", "sched_setattr": "EPERM",
    "sched_setscheduler": "EPERM", "vmsplice": "EPERM", "splice": "EPERM", "tee": "EPERM",
    "memfd_secret": "EPERM", "execveat": "EPERM",
    "i386-getpid": "SIGSYS", "x32-getpid": "SIGSYS",
}


@pytest.mark.parametrize("name", sorted(DENIED))
def test_kernel_attack_surface_syscall(host, prober, name):
    r = prober.result(f'''
rc, out, err = _run(["/tmp/ts", {name!r}], timeout=10)
_result([rc, out.strip(), err.strip()])
''')
    rc, out, err = r
    want = DENIED[name]
    if want == "SIGSYS":
        assert rc == -signal.SIGSYS and out == "", r
    else:
        assert out == f"{name} errno={want}", r
        assert rc == getattr(errno, want), r
    prober.works()
    host.check_witness()


def test_try_syscall_list_is_covered(host, prober):
    """Every attempt try-syscall knows is either denied above or is one of
    the calls the policy allows on purpose: a new attempt must be classified."""
    allowed = {"getpid", "fork", "clone", "clone-highbit", "socket-unix", "socketpair-unix",
               "socket-inet", "socket-inet6",
               "ioctl-tcgets", "ioctl-tcgets-highbit", "ioctl-fionread", "prctl-get-name",
               "prctl-capbset-read", "prlimit-get", "personality-query", "personality-linux"}
    names = subprocess.run([TRY_SYSCALL, "--list"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert set(names) - allowed - set(DENIED) == set()
    r = prober.result(f'''
res = {{}}
for n in {sorted(allowed)!r}:
    res[n] = _run(["/tmp/ts", n], timeout=10)[1].strip()
_result(res)
''')
    for n, out in r.items():
        # allowed: the kernel itself answers (ok, or EFAULT/EBADF for bad arguments)
        assert "ENOSYS" not in out and "EPERM" not in out and "EAFNOSUPPORT" not in out, out
    host.check_witness()


def test_foreign_abi_in_the_interpreter_kills_it_and_session_restarts(host, attacker):
    """int 0x80 from the interpreter itself: the filter kills the process
    (SIGSYS); the cell fails with a typed reason; the next cell runs in a
    fresh interpreter."""
    attacker.ok("kept = 1")
    reply, outputs = attacker.run(r'''
import ctypes, mmap
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])     # mov eax, 20; int 0x80; ret
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
f = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print("getpid via i386:", f())
''')
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "SessionKilled", c
    assert "signal 31" in c["evalue"], c
    assert reply["metadata"]["cellblock"]["state_preserved"] is False
    assert "getpid via i386" not in _stdout(outputs)
    attacker.works()
    assert attacker.ok("print(globals().get('kept'))").strip() == "None"
    host.check_witness()


def test_x32_syscall_in_the_interpreter_kills_it(host, attacker):
    reply, outputs = attacker.run(r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print("x32 getpid:", libc.syscall(ctypes.c_long(0x40000000 | 39)))
''')
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "SessionKilled", c
    assert "signal 31" in c["evalue"], c
    attacker.works()
    host.check_witness()


def test_seccomp_allows_restart_syscall(host, attacker):
    """Not an escape: the policy must not break ordinary code. A thread
    blocked in sleep/poll whose process is stopped and continued (or gets
    a signal it ignores) resumes through restart_syscall(2); denied, the
    call fails with ENOSYS. The runner's own output threads die this way
    as soon as user code runs subprocess (SIGCHLD arrives while
    _posixsubprocess blocks signals around vfork)."""
    reply, outputs = attacker.run(r'''
rc, out, err = _run(["/usr/bin/python3", "-c", """
import os, signal, threading, time, select
errors = []
def sleeper():
    try:
        time.sleep(1.5)
    except OSError as e:
        errors.append("sleep errno %d" % e.errno)
def poller():
    r, w = os.pipe()
    p = select.poll()
    p.register(r, select.POLLIN)
    try:
        p.poll(1500)
    except OSError as e:
        errors.append("poll errno %d" % e.errno)
ts = [threading.Thread(target=sleeper), threading.Thread(target=poller)]
for t in ts:
    t.start()
time.sleep(0.3)
if os.fork() == 0:
    time.sleep(0.3)
    os.kill(os.getppid(), signal.SIGCONT)
    os._exit(0)
os.kill(os.getpid(), signal.SIGSTOP)
for t in ts:
    t.join(5)
os.wait()
print(errors)
"""], timeout=20)
_result([rc, out.strip(), err.strip()])
''')
    assert reply["content"]["status"] == "ok", reply["content"]
    res = json.loads(_stdout(outputs).split(RESULT)[-1])
    assert res[0] == 0 and res[1] == "[]", res
    # And the runner's own capture threads survive subprocess.
    reply, outputs = attacker.run(r'''
import subprocess
for i in range(30):
    subprocess.run(["/bin/true"])
''', prelude=False)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert "Function not implemented" not in _stdout(outputs, "stderr"), _stdout(outputs, "stderr")
    host.check_witness()


# ---------------------------------------------------- signals to the parent

# target of kill(), signal, and what must happen: "ignored" (the cell goes
# on; its child is "alive" or "killed"), or the incarnation ends with
# SessionKilled by that signal.
@pytest.mark.parametrize("target,sig,outcome", [
    ("getppid", "SIGKILL", "ignored/alive"),    # pid 1 is unkillable from inside
    ("1", "SIGKILL", "ignored/alive"),
    ("1", "SIGSTOP", "ignored/alive"),
    ("1", "SIGTERM", "killed 15"),              # pid 1 forwards it to the interpreter
    ("-1", "SIGKILL", "ignored/killed"),        # all but pid 1 and the caller
    ("0", "SIGKILL", "killed 9"),               # its own process group
])
def test_signals_to_parent_do_not_escape(host, attacker, target, sig, outcome):
    """Signals sent up or out from the interpreter stay in its pid
    namespace: pid 1 ignores what it has no handler for, forwards SIGTERM;
    kill(-1) reaches only the session's own processes. Whatever ends, ends
    with a typed reason; the session works afterwards; nothing outside
    changes."""
    pid_expr = "_os.getppid()" if target == "getppid" else target
    shim = attacker.shim_pid()
    reply, outputs = attacker.run(f'''
child = _os.fork()
if child == 0:
    _time.sleep(20)
    _os._exit(0)
print("ppid", _os.getppid(), flush=True)
_os.kill({pid_expr}, _signal.{sig})
_time.sleep(0.5)
print("still here")
done, status = _os.waitpid(child, _os.WNOHANG)
if done == 0:
    _os.kill(child, _signal.SIGKILL)
    _os.waitpid(child, 0)
print("child", "killed" if done and _os.WIFSIGNALED(status) else "alive")
''')
    c = reply["content"]
    out = _stdout(outputs)
    assert "ppid 1" in out, out
    if outcome.startswith("ignored/"):
        assert c["status"] == "ok", c
        assert "still here" in out and f"child {outcome.split('/')[1]}" in out, out
        assert attacker.shim_pid() == shim
        assert attacker.describe()["incarnation"] == 1
    else:
        assert c["status"] == "error" and c["ename"] == "SessionKilled", c
        assert f"signal {outcome.split()[1]} " in c["evalue"], c
        assert reply["metadata"]["cellblock"]["state_preserved"] is False
        assert "still here" not in out
    attacker.works()
    if sig == "SIGSTOP":
        # pid 1 was not stopped: the session's processes still get reaped
        assert attacker.ok('rc = _run(["/bin/true"])[0]\nprint(rc)').strip() == "0"
    assert attacker.describe()["state"] in ("idle", "busy")
    host.check_witness()


# ------------------------------------------------------- symlink tricks

def test_symlinks_in_workdir_not_followed_when_session_ends(host, attacker):
    """Links planted in the work dir point at host files, at the witness's
    files and at a host directory; `cellblock kill` removes the work dir
    and must remove the links, not what they point at."""
    bait = tempfile.mkdtemp(prefix="bait-", dir=host.base)
    with open(os.path.join(bait, "keep.txt"), "w") as f:
        f.write("keep")
    os.chmod(bait, 0o755)
    watched = ["/etc/passwd", "/etc/shadow", "/etc/hostname", host.witness_file,
               host.witness.conn, os.path.join(host.daemon.state, "shared.json"),
               os.path.join(bait, "keep.txt")]
    before = {}
    for p in watched:
        with open(p, "rb") as f:
            before[p] = (_sha(f.read()), os.stat(p).st_mode, os.stat(p).st_uid)
    witness_dir_before = _tree_digest(host.witness.workdir)
    bait_before = _tree_digest(bait)
    links = {
        "passwd": "/etc/passwd", "shadow": "/etc/shadow", "etc": "/etc",
        "witness-dir": host.witness.workdir, "witness-file": host.witness_file,
        "bait": bait, f"{attacker.name}.json": host.witness.conn,
        "connection.json": os.path.join(host.daemon.state, "shared.json"),
        "shared.json": os.path.join(host.daemon.state, "shared.json"),
        "state": host.daemon.state, "sub/deeper/passwd": "/etc/passwd",
        "sub/deeper/bait": bait,
    }
    r = attacker.result(f'''
out = {{}}
for name, target in {links!r}.items():
    p = "/home/session/" + name
    _os.makedirs(_os.path.dirname(p), exist_ok=True)
    _os.symlink(target, p)
    out[name] = _os.readlink(p)
# a hard link to something outside the work dir is refused
out["hard"] = {{}}
for src in ("/etc/passwd", "/usr/bin/su", "/usr/bin/python3", "/opt/cellblock/runner/cellblock_runner.py"):
    try:
        _os.link(src, "/home/session/hard-" + _os.path.basename(src))
        out["hard"][src] = 0
    except OSError as e:
        out["hard"][src] = e.errno
# files the session cannot delete are just more things for the daemon to walk
_os.makedirs("/home/session/ro/inner")
open("/home/session/ro/inner/f", "w").close()
_os.chmod("/home/session/ro/inner", 0o500)
_os.chmod("/home/session/ro", 0o500)
_result(out)
''')
    assert r.pop("hard") == {"/etc/passwd": errno.EXDEV, "/usr/bin/su": errno.EXDEV,
                             "/usr/bin/python3": errno.EXDEV,
                             "/opt/cellblock/runner/cellblock_runner.py": errno.EXDEV}
    assert r == links
    # The links are really there on the host, pointing out.
    assert os.readlink(os.path.join(attacker.workdir, "passwd")) == "/etc/passwd"
    workdir = attacker.workdir
    attacker.close()
    _wait_for(lambda: not os.path.lexists(workdir), 15, "the work dir to be removed")
    for p in watched:
        with open(p, "rb") as f:
            assert (_sha(f.read()), os.stat(p).st_mode, os.stat(p).st_uid) == before[p], p
    assert _tree_digest(host.witness.workdir) == witness_dir_before
    assert _tree_digest(bait) == bait_before
    assert os.path.exists(host.daemon.state + "/shared.json")
    assert os.path.isdir("/etc") and os.path.exists("/etc/passwd")
    host.check_witness()


def test_symlinked_workdir_entries_do_not_leak_host_files_inside(host, attacker):
    """Following one's own planted links from inside only resolves in the
    sandbox's tree: a link to /etc/shadow or to the witness's dir is dead."""
    r = attacker.result(f'''
out = {{}}
for name, target in (("s", "/etc/shadow"), ("w", {host.witness_file!r}),
                     ("st", {host.daemon.state!r}), ("r", "/proc/1/root/etc/shadow")):
    _os.symlink(target, "/home/session/" + name)
    try:
        out[name] = ("read", open("/home/session/" + name).read(100))
    except OSError as e:
        out[name] = ("denied", e.errno)
_result(out)
''')
    for k, v in r.items():
        assert v[0] == "denied", (k, v)
    host.check_witness()


def test_deep_tree_in_workdir_is_removed_when_session_ends(host, attacker):
    """A directory nest deeper than PATH_MAX (made with *at calls, which
    have no length limit) must not survive `cellblock kill`: a work dir
    left behind keeps the session's data on the host after its end."""
    workdir = attacker.workdir
    attacker.ok(DEEP_TREE)
    attacker.close()
    _wait_for(lambda: not os.path.lexists(workdir), 15,
              f"the work dir {workdir} to be removed (a {DEEP_LEVELS}-level "
              f"tree of 250-byte names is still there)")
    host.check_witness()


def test_recreated_session_name_sees_no_leftovers(host, make_session):
    """A session ends; another local user (uid 65534, through the control
    socket) creates one of the same name, and is given the freed host uid.
    It must start with an empty work dir, not the first one's files."""
    first = make_session("reuse")
    name, uid = first.name, first.describe()["uid"]
    first.ok(DEEP_TREE)
    first.close()
    second = None
    deadline = time.monotonic() + 15
    while second is None:
        try:
            second = Session(host.daemon, name, as_uid=65534)
        except AssertionError as e:     # the old one is still ending
            if "already exists" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        assert second.describe()["owner"] == 65534
        r = second.result(rf"""
out = {{"home": sorted(_os.listdir("/home/session"))}}
try:
    fd = _os.open("/home/session", _os.O_RDONLY)
    for i in range({DEEP_LEVELS}):
        fd = _os.open("d" * 250, _os.O_RDONLY, dir_fd=fd)
    out["secret"] = open(_os.open("secret", _os.O_RDONLY, dir_fd=fd)).read()
except OSError as e:
    out["secret"] = e.errno
_result(out)
""")
        assert r["home"] == [], (
            f"uid 65534's new session {name} (host uid {second.describe()['uid']}; the "
            f"old one, root's, had {uid}) got the old work dir: {r}")
    finally:
        second.close()
    host.check_witness()


DEEP_LEVELS = 40
DEEP_TREE = rf"""
fd = _os.open("/home/session", _os.O_RDONLY)
for i in range({DEEP_LEVELS}):
    _os.mkdir("d" * 250, dir_fd=fd)
    nfd = _os.open("d" * 250, _os.O_RDONLY, dir_fd=fd)
    _os.close(fd)
    fd = nfd
with open("secret", "w", opener=lambda p, f: _os.open(p, f, 0o600, dir_fd=fd)) as f:
    f.write("left behind")
_os.close(fd)
"""


# --------------------------------------------- a hostile runner: the channel
#
# Code in a session owns its interpreter process, so it can write to the
# channel to the daemon (the one socket in /proc/self/fd) as the runner
# would: the daemon must treat every frame as hostile.

CHANNEL_FD = r"""
def _channel_fd():
    socks = []
    for fd in _os.listdir("/proc/self/fd"):
        try:
            if _os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                socks.append(int(fd))
        except OSError:
            pass            # the listing's own fd
    assert len(socks) == 1, socks
    return socks[0]
def _send_raw(data):
    fd = _channel_fd()
    view = memoryview(data)
    while view:
        view = view[_os.write(fd, view):]
"""


@pytest.mark.parametrize("frame", ["oversized", "bad-json", "not-an-object",
                                   "bad-utf8"])
def test_garbage_on_the_channel_ends_only_that_incarnation(host, attacker, frame):
    bodies = {
        "oversized": None,                       # a length over the 64 MiB limit
        "bad-json": b"nope!",
        "not-an-object": b"[1,2,3]",
        "bad-utf8": b'{"op":"\xff\xfe\xfd"}',
    }
    attacker.ok("kept = 1")
    t0 = time.monotonic()
    reply, outputs = attacker.run(CHANNEL_FD + f"""
import struct
body = {bodies[frame]!r}
_send_raw(b"\\xff\\xff\\xff\\xff" + b"x" * 64 if body is None
          else struct.pack(">I", len(body)) + body)
_time.sleep(10)
print("not stopped")
""")
    took = time.monotonic() - t0
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "SessionKilled", c
    assert reply["metadata"]["cellblock"]["state_preserved"] is False
    assert took < 5, f"the broken channel was noticed only after {took:.1f} s"
    assert "not stopped" not in _stdout(outputs)
    attacker.works()
    assert attacker.describe()["incarnation"] == 2
    host.check_witness()


def test_raw_stream_frames_cannot_bypass_the_output_cap(host, attacker):
    """iopub stream frames written straight to the channel, with no parent
    (id 0) or a made-up one, must count against max-stream like the
    runner's own: otherwise one cell makes the daemon publish without limit
    and, with a subscriber that reads slowly, hold it all in memory (up to
    the PUB socket's 1000-message high-water mark of 64 MiB frames)."""
    slow = SlowSubscriber(attacker.info["iopub_port"])
    try:
        with RssPeak(host.daemon.proc.pid) as rss:
            msg_id = attacker.kc.execute(PRELUDE + CHANNEL_FD + r"""
import struct
text = "Q" * (16 << 20)
for i in range(8):
    body = _json.dumps({"op": "iopub", "id": 0 if i % 2 else 987654, "msg_type": "stream",
                        "content": {"name": "stdout", "text": text}}).encode()
    _send_raw(struct.pack(">I", len(body)) + body)
""")
            reply = attacker.kc.get_shell_msg(timeout=120)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = attacker.kc.get_shell_msg(timeout=120)
            shown = 0
            while True:
                try:
                    m = attacker.kc.get_iopub_msg(timeout=3)
                except Exception:
                    break
                if m["msg_type"] == "stream":
                    shown += len(m["content"]["text"])
    finally:
        slow.close()
    assert reply["content"]["status"] == "ok", reply["content"]
    summary = (f"{shown >> 20} MiB of stream output reached the client (cap 8 MiB); "
               f"daemon RSS grew by {rss.grew_kb >> 10} MiB with one slow subscriber")
    assert shown <= (8 << 20) + (1 << 20), summary
    assert rss.grew_kb < 100 * 1024, summary
    host.check_witness()


# ------------------------------------------------------------ exec-timeout

def test_exec_timeout_busy_loop(host, make_session):
    s = make_session("tmo", "--exec-timeout", "2")
    s.ok("kept = 'still here'")
    t0 = time.monotonic()
    reply, outputs = s.run(r'''
end = _time.monotonic() + 60
while _time.monotonic() < end:
    pass
''', timeout=60)
    took = time.monotonic() - t0
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "CellTimeout", c
    assert 1.5 <= took < 8, took
    meta = reply["metadata"]["cellblock"]
    assert meta["reason"] == "CellTimeout" and meta["state_preserved"] is True, meta
    assert s.ok("print(kept)").strip() == "still here"
    host.check_witness()


def test_exec_timeout_sleep_interrupted_state_kept(host, make_session):
    s = make_session("tms", "--exec-timeout", "2")
    s.ok("kept = [1, 2, 3]")
    t0 = time.monotonic()
    reply, outputs = s.run("_time.sleep(100)", timeout=60)
    took = time.monotonic() - t0
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "CellTimeout", c
    assert took < 8, took
    assert reply["metadata"]["cellblock"]["state_preserved"] is True
    assert s.ok("print(sum(kept))").strip() == "6"
    assert s.describe()["incarnation"] == 1
    host.check_witness()


def test_exec_timeout_ignoring_sigint_is_killed(host, make_session):
    """A cell that ignores the interrupt is killed after the grace period;
    the reply says so and says the state is lost."""
    s = make_session("tmk", "--exec-timeout", "2")
    s.ok("kept = 1")
    t0 = time.monotonic()
    reply, outputs = s.run(r'''
_signal.signal(_signal.SIGINT, _signal.SIG_IGN)
end = _time.monotonic() + 60
while _time.monotonic() < end:
    pass
''', timeout=60)
    took = time.monotonic() - t0
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "CellTimeout", c
    assert reply["metadata"]["cellblock"]["state_preserved"] is False
    assert took < 12, took
    s.works()
    assert s.ok("print(globals().get('kept'))").strip() == "None"
    host.check_witness()


# ------------------------------------------------- egress (docs/SECURITY.md)
#
# Sessions with --allow-net on a daemon with an egress ceiling and two test
# hosts in network namespaces this module creates (tests/egress_hosts.py).
# Its own daemon: the battery's stays without egress. Its witness is a
# session of that daemon without an allowlist.

@pytest.fixture(scope="module")
def egress():
    from egress_hosts import EgressEnv
    e = EgressEnv()
    try:
        p = e.daemon.cli("new", "--name", "egwitness", check=True)
        e.witness = e.daemon.client(p.stdout.strip())
        run_cell(e.witness, "egress_witness = 42")
        yield e
    finally:
        try:
            e.witness.stop_channels()
        finally:
            e.close()


def _egress_witness(e):
    assert e.daemon.alive(), "cellblockd died:\n" + e.daemon.log_text()[-5000:]
    reply, outputs = run_cell(e.witness, "print(egress_witness)", timeout=30)
    assert _stdout(outputs).strip() == "42"


EGRESS_TRY = r'''
import json, socket, urllib.request, urllib.error
def _try(url):
    try:
        urllib.request.urlopen(url, timeout=20).read()
        return "REACHED"
    except urllib.error.HTTPError as e:
        return "%d %s" % (e.code, e.read().decode(errors="replace").strip())
    except OSError as e:
        return "OSError %s" % e
'''


def test_egress_unlisted_destinations_refused(egress):
    """Unlisted host, unlisted port of a listed host, an unlisted address
    literal, a redirect from a listed host to an unlisted one: all 403 from
    the proxy, and the test host behind them is never reached."""
    other = egress.hosts.other.addr
    out, err = egress.cell("egatk", EGRESS_TRY + f"""
for url in ("http://other.test/hello.txt", "https://other.test/",
            "http://web.test:8080/", "http://{other}/hello.txt",
            "http://web.test/redirect?to=http://other.test/whoami"):
    print(_try(url))
""")
    lines = out.strip().splitlines()
    assert err is None and len(lines) == 5, out
    assert lines[0].startswith("403 cellblock egress: other.test:80 is not in")
    assert lines[1].startswith("OSError") and "Tunnel connection failed: 403" in lines[1]
    assert lines[2].startswith("403 cellblock egress: web.test:8080 is not in")
    assert lines[3].startswith("403 ") and "no ip/prefix rule lists it" in lines[3]
    assert lines[4].startswith("403 cellblock egress: other.test:80")
    _egress_witness(egress)


def test_egress_rebinding_to_the_daemons_ports_refused(egress):
    """A listed name resolving to 127.0.0.1 (DNS rebinding) and a CONNECT
    straight at the daemon's own ZeroMQ ports on 127.0.0.1 are refused:
    loopback is never a destination unless listed by address."""
    conn = json.loads(egress.daemon.cli("ls", "--json", check=True).stdout)[0]
    ports = json.load(open(conn["connection_file"]))
    out, err = egress.cell("egatk", EGRESS_TRY + f"""
print(_try("http://evil.test/"))
import os
for port in ({ports['shell_port']}, {ports['control_port']}):
    s = socket.create_connection(("127.0.0.1", int(os.environ["HTTP_PROXY"].rsplit(":", 1)[1])))
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\\r\\n\\r\\n" % port)
    print(s.recv(4096).decode().split("\\r\\n")[0])
    s.close()
""")
    lines = out.strip().splitlines()
    assert err is None and len(lines) == 3, out
    assert lines[0].startswith("403 ") and "loopback" in lines[0]
    for line in lines[1:]:
        assert line.startswith("HTTP/1.1 403") and "loopback address" in line
    _egress_witness(egress)


def test_egress_direct_connect_and_dns_from_inside_fail(egress):
    """Bypassing the proxy: the test host's address is unroutable from the
    session (ENETUNREACH), UDP to it too, and names do not resolve inside."""
    web = egress.hosts.web.addr
    out, err = egress.cell("egatk", f"""
import socket, errno
res = []
for port in (80, 443, 7000):
    s = socket.socket(); s.settimeout(5)
    try:
        s.connect(("{web}", port)); res.append("CONNECTED")
    except OSError as e:
        res.append(errno.errorcode.get(e.errno, str(e.errno)))
    s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", ("{web}", 53)); res.append("SENT")
except OSError as e:
    res.append(errno.errorcode.get(e.errno, str(e.errno)))
for name in ("web.test", "other.test"):
    try:
        socket.getaddrinfo(name, 80); res.append("RESOLVED")
    except socket.gaierror:
        res.append("gaierror")
print(" ".join(res))
""")
    assert err is None
    assert out.split() == ["ENETUNREACH"] * 4 + ["gaierror"] * 2, out
    _egress_witness(egress)


def test_egress_forged_requests_on_the_proxy_socket_refused(egress):
    """The relay is the session's code: requests it forges on the proxy's
    socket — a forward index past the list, a rule that is not a single
    host:port, https:// without CONNECT, credentials in the URI, a
    header flood — get 4xx, and the socket's directory is read-only."""
    out, err = egress.cell("egatk", r'''
import socket
def ask(data):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/run/cellblock/egress.sock")
    try:
        s.sendall(data)
    except OSError:
        pass
    r = s.recv(4096).decode(errors="replace"); s.close()
    return r.split("\r\n")[0][:12]
print(ask(b"CELLBLOCK-TCP 99\r\n"))
print(ask(b"CELLBLOCK-TCP -1\r\n"))
print(ask(b"GET https://other.test/ HTTP/1.1\r\n\r\n"))
print(ask(b"GET http://u:p@other.test/ HTTP/1.1\r\n\r\n"))
print(ask(b"GET http://web.test/ HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n"))
import os
try:
    os.unlink("/run/cellblock/egress.sock"); print("UNLINKED")
except OSError:
    print("kept")
''')
    assert err is None
    assert out.split("\n")[:6] == ["HTTP/1.1 400"] * 4 + ["HTTP/1.1 431", "kept"], out
    _egress_witness(egress)


def test_egress_flood_bounded_and_neighbours_unaffected(egress):
    """Three times egress-max-conns held open: the rest get 429, the
    neighbour session still downloads, the witness and the daemon answer."""
    from egress_hosts import MAX_CONNS
    out, err = egress.cell("egflood", f"""
import os, socket
port = int(os.environ["HTTP_PROXY"].rsplit(":", 1)[1])
held, codes = [], []
for i in range({MAX_CONNS * 3}):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"CONNECT web.test:7000 HTTP/1.1\\r\\n\\r\\n")
    s.settimeout(20)
    codes.append(s.recv(4096).decode(errors="replace").split()[1])
    held.append(s)
print(codes.count("200"), codes.count("429"))
""")
    assert err is None and out.split() == [str(MAX_CONNS), str(MAX_CONNS * 2)], out
    out, err = egress.cell("egnb", "import urllib.request\n"
                           "print(urllib.request.urlopen('http://web.test/hello.txt', "
                           "timeout=20).read().decode())")
    assert err is None and "hello from" in out
    _egress_witness(egress)
    egress.cell("egflood", "for s in held: s.close()")
