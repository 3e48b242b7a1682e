"""Helpers for the gateway tests: a daemon with its HTTP front on a free
port, tokens, REST calls and a raw WebSocket Jupyter client (legacy JSON or
binary framing, v1) built on websocket-client."""
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import uuid

import requests
import websocket

from cbtest import CELLBLOCK, CELLBLOCKD, control_request, poll, wait_zygote

TIMEOUT = 30
MODEL_KEYS = {"id", "name", "last_activity", "execution_state", "connections"}
LAST_ACTIVITY_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
UUID_RE = r"^\w+-\w+-\w+-\w+-\w+$"


class Gateway:
    """cellblockd in the foreground, HTTP on 127.0.0.1:0, private state.
    stop(keep=True) or kill() leave the state for a restart on it."""

    def __init__(self, state=None, config=None, args=()):
        self.state = state or tempfile.mkdtemp(prefix="cb-gw-")
        self.config = config
        self.args = list(args)
        self.start()

    def start(self):
        argv = [CELLBLOCKD, "--foreground", "--state-dir", self.state,
                "--http-listen", "127.0.0.1:0", *self.args]
        if self.config:
            path = os.path.join(self.state, "test.conf")
            with open(path, "w") as f:
                f.write(self.config)
            argv += ["--config", path]
        http = os.path.join(self.state, "http.json")
        if os.path.exists(http):
            os.unlink(http)
        self.log = open(os.path.join(self.state, "test-daemon.log"), "a+")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        poll(lambda: os.path.exists(http) or self.proc.poll() is not None, 20,
             "http.json")
        assert self.proc.poll() is None, self.log_text()
        with open(http) as f:
            self.url = json.load(f)["url"]
        self.ws_url = self.url.replace("http://", "ws://", 1)
        wait_zygote(self.control, 60)

    def control(self, request, timeout=10):
        return control_request(os.path.join(self.state, "control.sock"), request, timeout)

    def cli(self, *args, check=True, prefix=(), timeout=60):
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
               "CELLBLOCK_STATE_DIR": self.state}
        p = subprocess.run([*prefix, CELLBLOCK, *args], capture_output=True, text=True,
                           env=env, timeout=timeout)
        if check:
            assert p.returncode == 0, (args, p.stderr)
        return p

    def token(self, name="t", uid=None):
        prefix = () if uid is None else ("/usr/bin/setpriv", "--reuid=%d" % uid,
                                         "--regid=%d" % uid, "--clear-groups")
        return self.cli("token", "new", "--name", name, prefix=prefix).stdout.strip()

    def log_text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def kill(self):
        """kill -9: no checkpoint, no cleanup; the state stays."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self, keep=False):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        if not keep:
            shutil.rmtree(self.state, ignore_errors=True)


class Api:
    """REST calls with one token."""

    def __init__(self, gw, token):
        self.gw = gw
        self.token = token
        self.s = requests.Session()
        self.s.headers["Authorization"] = "token " + token

    def call(self, method, path, **kw):
        kw.setdefault("timeout", TIMEOUT + 20)
        return self.s.request(method, self.gw.url + path, **kw)

    def new_kernel(self, **body):
        r = self.call("POST", "/api/kernels", json={"name": "python3", **body})
        assert r.status_code == 201, r.text
        return r.json()

    def model(self, kid):
        r = self.call("GET", "/api/kernels/" + kid)
        return r.json() if r.status_code == 200 else None

    def close(self):
        self.s.close()


def header(msg_type, session="test-session"):
    return {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session,
            "username": "test", "version": "5.3", "date": "2026-01-01T00:00:00.000000Z"}


def legacy_binary(msg, buffers):
    """The legacy binary form: u32 BE count, u32 BE offsets, JSON, buffers."""
    parts = [json.dumps(msg).encode()] + list(buffers)
    n = len(parts)
    offsets, off = [], 4 * (n + 1)
    for p in parts:
        offsets.append(off)
        off += len(p)
    return struct.pack(">%dI" % (n + 1), n, *offsets) + b"".join(parts)


def parse_legacy_binary(data):
    n = struct.unpack(">I", data[:4])[0]
    offs = list(struct.unpack(">%dI" % n, data[4:4 + 4 * n])) + [len(data)]
    parts = [data[offs[i]:offs[i + 1]] for i in range(n)]
    msg = json.loads(parts[0])
    msg["buffers"] = parts[1:]
    return msg


class Channels:
    """A raw WebSocket client of /api/kernels/ID/channels."""

    def __init__(self, gw, token, kid, session_id=None, query_token=False):
        url = "%s/api/kernels/%s/channels" % (gw.ws_url, kid)
        q = []
        if session_id:
            q.append("session_id=" + session_id)
        hdr = []
        if query_token:
            q.append("token=" + token)
        else:
            hdr.append("Authorization: token " + token)
        if q:
            url += "?" + "&".join(q)
        self.session = session_id or "test-session"
        self.ws = websocket.create_connection(url, header=hdr, timeout=TIMEOUT)

    def send(self, msg_type, content, channel="shell", buffers=()):
        msg = {"header": header(msg_type, self.session), "parent_header": {},
               "metadata": {}, "content": content, "channel": channel}
        if buffers:
            self.ws.send_binary(legacy_binary(msg, buffers))
        else:
            self.ws.send(json.dumps(msg))
        return msg["header"]["msg_id"]

    def recv(self, timeout=TIMEOUT):
        """The next message within timeout. Read in short slices: the
        daemon pings every 30 s and websocket-client restarts its socket
        timeout on each ping, so one long read could outlive its bound."""
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.05, min(5.0, deadline - time.monotonic())))
            try:
                op, data = self.ws.recv_data()
                break
            except websocket.WebSocketTimeoutException:
                if time.monotonic() >= deadline:
                    raise
        if op == websocket.ABNF.OPCODE_BINARY:
            return parse_legacy_binary(data)
        return json.loads(data)

    def until_idle(self, msg_id, timeout=TIMEOUT):
        """Every message for msg_id up to its idle status (replies included)."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(max(0.1, deadline - time.monotonic()))
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            got.append(m)
            idle = any(x["msg_type"] == "status" and
                       x["content"]["execution_state"] == "idle" for x in got)
            if idle and any(x["channel"] == "shell" for x in got):
                return got
        raise AssertionError("no idle for %s; got %s" % (msg_id, got))

    def execute(self, code, timeout=TIMEOUT):
        mid = self.send("execute_request", {"code": code, "silent": False,
                                            "store_history": True, "allow_stdin": False})
        return self.until_idle(mid, timeout)

    def close(self):
        self.ws.close()


def stdout_of(msgs):
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
