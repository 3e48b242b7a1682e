"""Shared test helpers: a real cellblockd with a private state directory,
jupyter_client clients on its sessions, and run_cell."""
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time

from proclib import pid_alive


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The programs under test: bin/, or another build of them (make asan: bin-asan/).
BIN = os.path.abspath(os.environ.get("CELLBLOCK_BIN") or os.path.join(ROOT, "bin"))
CELLBLOCK = os.path.join(BIN, "cellblock")
CELLBLOCKD = os.path.join(BIN, "cellblockd")
PYTHON = "/usr/bin/python3"


def c_define(header, name):
    """The integer a C header of the tree #defines as name: the tests take
    such contracts from the one place the C code does."""
    import re
    with open(os.path.join(ROOT, header)) as f:
        m = re.search(r"^#define\s+%s\s+(\d+)\b" % re.escape(name), f.read(), re.M)
    if m is None:
        raise LookupError(f"{header} defines no {name}")
    return int(m.group(1))


# Who the interpreter is inside its user namespace (kernel-shim/sandbox.h).
SANDBOX_INNER_UID = c_define("kernel-shim/sandbox.h", "SANDBOX_INNER_UID")
SANDBOX_INNER_GID = c_define("kernel-shim/sandbox.h", "SANDBOX_INNER_GID")


def control_request(sock_path, request, timeout=10):
    """One JSON-line request on a daemon's control socket; its answer."""
    import json
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


ZYGOTE_PENDING = ("starting", "down")   # will be ready; "off" and "ready" are final


def wait_zygote(control, timeout):
    """Poll `ping` through control(request) until the zygote is ready or
    off, or timeout passes; its last state."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            z = control({"cmd": "ping"}).get("zygote") or {}
        except ConnectionRefusedError:     # bound, not yet listening
            z = {"state": "starting"}
        if z.get("state") not in ZYGOTE_PENDING or time.monotonic() > deadline:
            return z
        time.sleep(0.05)


def sanitizer_env():
    """The sanitizers' options (make asan), for tests that build a minimal
    environment: without them a report would go to stderr, not to a file."""
    return {k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")}


class Daemon:
    """One cellblockd in the foreground with its own state directory."""

    def __init__(self, extra_args=(), wait_zygote=True, warm_pool=None):
        """warm_pool: members of the warm pool (docs/ZYGOTE.md); None: the
        CELLBLOCK_TEST_WARM_POOL environment variable, else 0, so that a
        test's sessions are born as it expects unless it asks for the pool
        (make test-pool runs the lifecycle tests with it)."""
        self.state = tempfile.mkdtemp(prefix="cb-test-")
        if warm_pool is None:
            warm_pool = os.environ.get("CELLBLOCK_TEST_WARM_POOL", "0")
        self.warm_pool = int(warm_pool)
        extra_args = ["--warm-pool", str(self.warm_pool), *extra_args]
        # Never the default HTTP port: parallel test daemons would collide.
        if not any(str(a).startswith("--http-listen") for a in extra_args):
            extra_args = [*extra_args, "--http-listen", "127.0.0.1:0"]
        self.args = list(extra_args)
        self.log = open(os.path.join(self.state, "test-daemon.log"), "w+")
        self.proc = subprocess.Popen(
            [CELLBLOCKD, "--foreground", "--state-dir", self.state, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        sock = os.path.join(self.state, "control.sock")
        deadline = time.monotonic() + 15
        while not os.path.exists(sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("cellblockd did not start:\n" + self.log_text())
            time.sleep(0.02)
        if wait_zygote:
            self.wait_zygote()
            if self.warm_pool:
                self.wait_pool()

    def control(self, request, timeout=10):
        """One request on the control socket; its answer as a dict."""
        return control_request(os.path.join(self.state, "control.sock"), request, timeout)

    def zygote(self):
        return self.control({"cmd": "ping"}).get("zygote", {})

    def wait_zygote(self, timeout=60):
        """Sessions made after this are zygote-born, if the daemon runs one
        (docs/ZYGOTE.md); returns its state."""
        z = wait_zygote(self.control, timeout)
        if z.get("state") in ZYGOTE_PENDING:
            raise RuntimeError("the zygote did not get ready:\n" + self.log_text())
        return z

    def pool(self):
        return self.control({"cmd": "ping"}).get("pool", {})

    def wait_pool(self, ready=None, timeout=60):
        """Until the warm pool holds `ready` (default: its size) members
        past their hello; returns its description."""
        want = self.warm_pool if ready is None else ready
        deadline = time.monotonic() + timeout
        while True:
            p = self.pool()
            if p.get("ready", 0) >= want or p.get("on") is False:
                return p            # full, or off (no zygote): nothing to wait for
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError(f"warm pool not ready ({p}):\n" + self.log_text()[-4000:])
            time.sleep(0.05)

    def env(self):
        env = dict(os.environ)
        env["CELLBLOCK_STATE_DIR"] = self.state
        return env

    def cli(self, *args, input=None, timeout=60, check=False):
        p = subprocess.run([CELLBLOCK, *args], capture_output=True, text=True,
                           env=self.env(), input=input, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"cellblock {args} failed {p.returncode}:\n{p.stderr}")
        return p

    def new(self, name=None):
        if self.warm_pool:
            self.wait_pool(1)       # pool-born, as the test run asked
        args = ["new"] + (["--name", name] if name else [])
        return self.cli(*args, check=True).stdout.strip()

    def new_name(self, *args):
        """`cellblock new ARGS`; the session's name (its connection
        file's, which is what new prints)."""
        path = self.cli("new", *args, check=True).stdout.strip()
        return os.path.basename(path)[:-len(".json")]

    def client(self, connection_file):
        from jupyter_client import BlockingKernelClient
        kc = BlockingKernelClient(connection_file=connection_file)
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        return kc

    def log_text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.state, ignore_errors=True)


def session_processes(name):
    """Live host pids in session `name`'s cgroup: its outer process (an
    exec'd shim or a clone of the zygote), pid 1 and everything below.
    By cgroup, since a zygote-born process has the zygote's command line."""
    import re
    pat = re.compile(r"^\d+:[^:]*:.*/cellblock-[0-9a-f]{8}/" + re.escape(name) + r"$", re.M)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if not pat.search(f.read()):
                    continue
        except OSError:
            continue
        if pid_alive(int(entry)):
            pids.append(int(entry))
    return pids


def run_cell(kc, code, timeout=30, **kw):
    """Execute code; return (reply, [iopub messages for it])."""
    msg_id = kc.execute(code, **kw)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    outputs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        outputs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return reply, outputs


def poll(pred, timeout, what):
    """Call pred until it returns something true; fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.05)


@contextlib.contextmanager
def running_daemon(args=()):
    """A private daemon for a module's tests; on exit it must still be
    alive (a test that crashed it fails even if its own checks passed)."""
    d = Daemon(list(args))
    try:
        yield d
        assert d.alive(), "cellblockd died:\n" + d.log_text()[-5000:]
    finally:
        d.stop()


# Both ways a session's interpreter is born (docs/ZYGOTE.md): parity tests
# run under each, as a module-scoped fixture parametrized by these.
DAEMON_MODES = ("zygote", "exec")


@contextlib.contextmanager
def daemon_in_mode(mode, tmp_path_factory, extra_args=()):
    """A private daemon whose sessions are zygote-born ("zygote") or
    exec'd ("exec": zygote = no); on exit it must still be alive."""
    args = list(extra_args)
    if mode == "exec":
        conf = tmp_path_factory.mktemp("conf") / "cellblockd.conf"
        conf.write_text("zygote = no\n")
        args += ["--config", str(conf)]
    with running_daemon(args) as d:
        yield d


@contextlib.contextmanager
def ipykernel(cwd, log=None, **kw):
    """A real ipykernel 6.17 (jupyter_client's KernelManager, kernelspec
    python3) to compare with, ready; its KernelManager, shut down on exit.
    log: a file for its stdout and stderr. debugpy, which ipykernel
    imports, warns about frozen modules: its file validation is off.
    jupyter_client picks free TCP ports by binding and closing them, so on
    a busy machine another process can take one first and the kernel dies
    at start ("Address already in use"): such a start is tried again."""
    from jupyter_client import KernelManager
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1",
               IPYTHONDIR=os.path.join(str(cwd), ".ipython"))
    out = {} if log is None else {"stdout": log, "stderr": log}
    for attempt in range(3):
        km = KernelManager(kernel_name="python3", **kw)
        km.start_kernel(cwd=str(cwd), env=env, **out)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            break
        except RuntimeError:
            if km.is_alive() or attempt == 2:
                raise
            km.cleanup_resources()
        finally:
            kc.stop_channels()
    try:
        yield km
    finally:
        km.shutdown_kernel(now=True)
        km.cleanup_resources()


def host_connect_read(fam, addr, port, timeout=3):
    """What a host process gets connecting to addr:port: None if refused
    (nothing listens there), else the first bytes it is sent (b"" if none
    within a second). Any other connect error fails the test."""
    import socket
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        c.connect((addr, port))
    except ConnectionRefusedError:
        return None
    except BaseException:
        c.close()
        raise
    try:
        c.settimeout(1)
        return c.recv(64)
    except OSError:
        return b""
    finally:
        c.close()
