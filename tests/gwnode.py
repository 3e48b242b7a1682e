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
