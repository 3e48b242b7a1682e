"""Helpers for the real-client gateway tests: a node script under tests/js
driven one JSON line at a time, and a TCP forwarder a test can cut (a
dropped connection) or re-point (a daemon restarted on a new port)."""
import json
import os
import queue
import select
import socket
import struct
import subprocess
import threading
import time

JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
NODE = "/usr/bin/node" if os.path.exists("/usr/bin/node") else "node"
STEP = 90          # s: every answer waited for is bounded


class NodeClient:
    """node tests/js/SCRIPT ARGS...; req(op, ...) sends one command and
    returns its answer; events() are the {"ev": ...} lines seen so far."""

    def __init__(self, script, *args):
        self.proc = subprocess.Popen(
            [NODE, os.path.join(JS, script), *args], cwd=JS, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.stderr = []
        self.seq = 0
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, op, **kw):
        self.seq += 1
        self.proc.stdin.write(json.dumps({"op": op, "seq": self.seq, **kw}) + "\n")
        self.proc.stdin.flush()
        return self.seq

    def wait(self, pred, timeout=STEP):
        """The next line pred accepts; lines before it are kept in seen."""
        while True:
            try:
                m = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError("node: nothing for %ss; stderr:\n%s" %
                                     (timeout, "".join(self.stderr[-40:])))
            if m is None:
                raise AssertionError("node exited; stderr:\n" + "".join(self.stderr[-40:]))
            if pred(m):
                return m

    def answer(self, seq, timeout=STEP):
        m = self.wait(lambda m: m.get("seq") == seq, timeout)
        assert m["ok"], m.get("error")
        return m

    def req(self, op, timeout=STEP, **kw):
        return self.answer(self.send(op, **kw), timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


class Forwarder:
    """127.0.0.1:0 → target; cut() resets every open connection (a network
    drop, no close handshake), target can be changed between connections."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.pairs = []
        self.lock = threading.Lock()
        self.closed = False
        self.hold_ws_until = 0.0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=10)
            except OSError:
                self._reset(c)
                continue
            with self.lock:
                self.pairs.append((c, u))
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()

    def hold_websockets(self, seconds):
        """Reset WebSocket upgrades (not REST calls) for a while: the
        client's reconnect fails and retries, as through a short outage."""
        self.hold_ws_until = time.monotonic() + seconds

    def _pipe(self, a, b):
        try:
            a.settimeout(10)
            first = a.recv(65536)
            if not first:
                raise OSError("eof")
            if b"/channels" in first.split(b"\r\n", 1)[0] and \
                    time.monotonic() < self.hold_ws_until:
                raise OSError("held")
            b.sendall(first)
            a.settimeout(None)
            while True:
                r, _, _ = select.select([a, b], [], [], 1.0)
                if self.closed:
                    break
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("eof")
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            self._reset(a)
            self._reset(b)
            with self.lock:
                if (a, b) in self.pairs:
                    self.pairs.remove((a, b))

    @staticmethod
    def _reset(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass

    def cut(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            # shutdown wakes the pipe thread; the reset is its close.
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        return len(pairs)

    def close(self):
        self.closed = True
        self.cut()
        self.lsock.close()


def listening_ports(pid):
    """TCP ports process pid listens on (IPv4 and IPv6): how a test reads
    back the port a server bound when told port 0 and does not say which."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            col = row.split()
            if col[3] == "0A" and col[9] in inodes:      # 0A: LISTEN
                ports.add(int(col[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


class JupyterApp:
    """Debian's `jupyter server` or `jupyter notebook` with --gateway-url:
    port 0 (read back from /proc), a temp root, config and runtime dirs,
    its own token; stop() ends it and removes them."""

    def __init__(self, module, gateway_url, gateway_token, extra=(), env=None):
        import tempfile
        import secrets
        from cbtest import PYTHON, poll
        self.dir = tempfile.mkdtemp(prefix="cb-%s-" % module.replace(".", "-"))
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)
        self.token = secrets.token_hex(16)
        e = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": self.dir,
             "JUPYTER_CONFIG_DIR": os.path.join(self.dir, "config"),
             "JUPYTER_DATA_DIR": os.path.join(self.dir, "data"),
             "JUPYTER_RUNTIME_DIR": os.path.join(self.dir, "runtime"),
             "JUPYTER_PLATFORM_DIRS": "1", **(env or {})}
        app = "NotebookApp" if module == "notebook" else "ServerApp"
        argv = [PYTHON, "-m", module, "--no-browser", "--allow-root",
                "--ip=127.0.0.1", "--port=0", "--port-retries=0",
                "--%s.token=%s" % (app, self.token),
                "--notebook-dir=" + self.root if module == "notebook" else
                "--ServerApp.root_dir=" + self.root,
                "--gateway-url=" + gateway_url,
                "--GatewayClient.auth_token=" + gateway_token,
                "--GatewayClient.request_timeout=60", *extra]
        self.log = open(os.path.join(self.dir, "app.log"), "w+")
        self.proc = subprocess.Popen(argv, env=e, cwd=self.root, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.port = poll(lambda: self.proc.poll() is not None or listening_ports(self.proc.pid),
                         60, module + " listening")
        assert self.proc.poll() is None, self.log_text()
        self.port = self.port[0]
        self.url = "http://127.0.0.1:%d" % self.port
        import requests
        self.http = requests.Session()
        self.http.headers["Authorization"] = "token " + self.token
        poll(lambda: self._up(), 60, module + " answering")

    def _up(self):
        import requests
        try:
            return self.http.get(self.url + "/api", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def call(self, method, path, **kw):
        kw.setdefault("timeout", 90)
        return self.http.request(method, self.url + path, **kw)

    def log_text(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self):
        import shutil
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
