# Runner test harness: spawn the real runner on a socketpair and speak the channel framing to it.

import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

RUNNER_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                          "kernel-shim", "runner"))
RUNNER = os.path.join(RUNNER_DIR, "cellblock_runner.py")
PYTHON = "/usr/bin/python3"
TIMEOUT = 20.0          # default bound on any single wait

# A zygote-like start: preload in one process, fork, run main() in the child.
ZYGOTE = """
import os, sys
sys.path.insert(0, %r)
import cellblock_runner
cellblock_runner.preload()
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    sys.exit(cellblock_runner.main(channel_fd=fd, session="zygote-child"))
os.close(fd)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
""" % RUNNER_DIR


def _strict_json(body):
    def reject(name):
        raise ValueError("runner sent non-standard JSON constant %s" % name)
    return json.loads(body.decode("utf-8"), parse_constant=reject)


class Session:
    """One runner process and the daemon's end of its channel."""

    def __init__(self, tmp_path, env_extra=None, args=(), zygote=False):
        self.sock, child = socket.socketpair()
        self.workdir = tmp_path / "work"
        self.home = tmp_path / "home"
        self.workdir.mkdir()
        self.home.mkdir()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
               "MPLCONFIGDIR": os.environ["CELLBLOCK_TEST_MPLCONFIGDIR"]}
        env.update(env_extra or {})
        fd = str(child.fileno())
        if zygote:
            cmd = [PYTHON, "-I", "-c", ZYGOTE, fd]
        else:
            cmd = [PYTHON, "-I", RUNNER, "--channel-fd", fd, "--session", "test"] + list(args)
        self.stderr_path = tmp_path / "runner.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, pass_fds=[child.fileno()], env=env,
                                         cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        child.close()
        self.next_id = 1
        self.hello = self.recv(timeout=60)
        assert self.hello["op"] == "hello", self.hello
        self.pid = self.hello["pid"]

    # -- framing --
    def send(self, msg):
        body = json.dumps(msg).encode("utf-8")
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _read_exact(self, n, deadline):
        data = b""
        while len(data) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("runner sent nothing in time")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("runner closed the channel")
            data += chunk
        return data

    def recv(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        (length,) = struct.unpack(">I", self._read_exact(4, deadline))
        assert length <= 64 * 1024 * 1024
        msg = _strict_json(self._read_exact(length, deadline))
        assert isinstance(msg, dict) and isinstance(msg.get("op"), str), msg
        return msg

    # -- requests --
    def start(self, msg_type, content, **extra):
        rid = self.next_id
        self.next_id += 1
        self.send(dict({"op": "request", "id": rid, "msg_type": msg_type, "content": content,
                        "username": "tester", "session": "abc"}, **extra))
        return rid

    def collect(self, rid, timeout=TIMEOUT, on_message=None):
        """iopub messages for rid up to its reply → (iopub list, reply content)."""
        deadline = time.monotonic() + timeout
        iopub = []
        while True:
            msg = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if on_message is not None:
                on_message(msg)
            if msg["op"] == "iopub":
                assert msg["id"] == rid, msg
                iopub.append(msg)
            elif msg["op"] == "reply":
                assert msg["id"] == rid, msg
                return iopub, msg["content"]
            else:
                assert msg["op"] == "input_request", msg

    def request(self, msg_type, content, timeout=TIMEOUT, **extra):
        return self.collect(self.start(msg_type, content, **extra), timeout)

    def execute(self, code, timeout=TIMEOUT, **content):
        content = dict({"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False,
                        "stop_on_error": True}, **content)
        return self.request("execute_request", content, timeout)

    def interrupt(self):
        os.kill(self.pid, signal.SIGINT)

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send({"op": "shutdown"})
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.sock.close()


def streams(iopub, name=None):
    """Concatenated text of the stream messages (optionally one stream)."""
    return "".join(m["content"]["text"] for m in iopub
                   if m["msg_type"] == "stream" and name in (None, m["content"]["name"]))


def of_type(iopub, msg_type):
    return [m for m in iopub if m["msg_type"] == msg_type]


