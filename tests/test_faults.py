"""Faults: things break on purpose, and the daemon survives and loses nothing.

An interpreter killed mid-execute, the daemon killed with sessions busy, a
full disk under a checkpoint, clients that never read, a flood of requests
faster than they run, half a multipart message, a flood of badly signed
messages, a 2 GB message, and a control socket flooded by one user. After each, the daemon must be alive and an
untouched *witness* session must still answer with its variables, in the
same incarnation: a daemon that crashed, hung or restarted a bystander
fails the test (docs/TESTING.md).

Every wait has a deadline; timings are recorded in assertion messages,
never asserted tightly (the machine is shared and noisy).
"""
import hashlib
import hmac
import json
import mmap
import os
import re
import signal
import socket
import struct
import subprocess
import time
import uuid

import pytest
import zmq

import cbtest
from cbtest import CELLBLOCK, CELLBLOCKD, Daemon, poll, run_cell
from proclib import (cgroup_parents, descendants, interpreter_pids, rss_kb, sanitized,
                     session_groups, still_alive)

TIMEOUT = 30            # any one reply; generous, the machine is shared
NOBODY = 65534
OTHER = 65533           # a second unprivileged user
SETPRIV = "/usr/bin/setpriv"
DELIM = b"<IDS|MSG>"


# ---------------------------------------------------------------- helpers

def sessions(daemon):
    p = daemon.cli("ls", "--json", check=True, timeout=TIMEOUT)
    return {s["name"]: s for s in json.loads(p.stdout)}


def value(kc, code, timeout=TIMEOUT):
    """Run code; return (reply, the execute_result's text or None)."""
    reply, out = run_cell(kc, code, timeout=timeout)
    res = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
    return reply, (res[0] if res else None)


def start_again(daemon):
    """A new daemon on the state dir of one that is gone."""
    assert daemon.proc.poll() is not None
    start = len(daemon.log_text())
    daemon.proc = subprocess.Popen([CELLBLOCKD, "--foreground", "--state-dir", daemon.state,
                                    *daemon.args], stdout=daemon.log, stderr=subprocess.STDOUT)
    # Its log says when it is ready; no CLI before that (it would start one).
    poll(lambda: "ready: control" in daemon.log_text()[start:], 30, "the restarted daemon")


def other_env(daemon):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
           "CELLBLOCK_STATE_DIR": daemon.state}
    env.update(getattr(cbtest, "sanitizer_env", dict)())
    return env


def as_user(uid, daemon, *args, timeout=TIMEOUT):
    return subprocess.run([SETPRIV, "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                           CELLBLOCK, *args], capture_output=True, text=True,
                          env=other_env(daemon), timeout=timeout)


class Witness:
    """An untouched session: it must keep its value and its incarnation."""

    def __init__(self, daemon, name="witness"):
        self.daemon, self.name = daemon, name
        self.kc = daemon.client(daemon.new(name))
        reply, _ = run_cell(self.kc, "w = sorted({'a': 1, 'b': 2}.items())", timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok", reply["content"]
        self.incarnation = sessions(daemon)[name]["incarnation"]

    def check(self, what="the fault"):
        d = self.daemon
        assert d.alive(), "cellblockd died after %s:\n%s" % (what, d.log_text()[-4000:])
        t0 = time.monotonic()
        reply, text = value(self.kc, "w")
        took = time.monotonic() - t0
        assert reply["content"]["status"] == "ok", reply["content"]
        assert text == "[('a', 1), ('b', 2)]", text
        assert sessions(d)[self.name]["incarnation"] == self.incarnation, \
            "the witness was restarted by %s" % what
        return took

    def close(self):
        self.kc.stop_channels()


@pytest.fixture(scope="module")
def daemon():
    # -v: debug lines; the 2 GB test waits for the line saying why its
    # connection was closed, which the daemon writes at any level.
    d = Daemon(["-v"])
    os.chmod(d.state, 0o711)        # other users reach control.sock
    yield d
    assert d.alive(), "cellblockd died during the tests:\n" + d.log_text()[-5000:]
    d.stop()


@pytest.fixture(scope="module")
def witness(daemon):
    w = Witness(daemon)
    yield w
    w.close()


@pytest.fixture
def victim(daemon):
    """A fresh session for a test to break; killed afterwards."""
    name = "v-" + uuid.uuid4().hex[:8]
    kc = daemon.client(daemon.new(name))
    kc.name = name
    yield kc
    kc.stop_channels()
    daemon.cli("kill", name)


def signed(key, parts):
    h = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        h.update(p)
    return h.hexdigest().encode()


def execute_parts(code, session_id, stop_on_error=True):
    header = {"msg_id": uuid.uuid4().hex, "session": session_id, "username": "fault",
              "date": "2026-01-01T00:00:00.000000Z", "msg_type": "execute_request",
              "version": "5.3"}
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": stop_on_error}
    return header, [json.dumps(x).encode() for x in (header, {}, {}, content)]


def log_count(daemon, pattern):
    rx = re.compile(pattern)
    return sum(1 for line in daemon.log_text().splitlines() if rx.search(line))


# ------------------------------------------------- the interpreter, killed

def test_interpreter_killed_mid_execute(daemon, witness, victim):
    """kill -9 of the interpreter while a cell runs: an error reply naming
    the reason arrives at once, then the session serves the next execute."""
    run_cell(victim, "before = 1", timeout=TIMEOUT)
    msg_id = victim.execute("import time\nfor i in range(6000):\n    time.sleep(0.01)")
    poll(lambda: sessions(daemon)[victim.name]["state"] == "busy", TIMEOUT, "the cell to run")
    pids = interpreter_pids(daemon, victim.name)
    assert pids, "no interpreter found for %s" % victim.name
    t0 = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    reply = victim.get_shell_msg(timeout=10)
    latency = time.monotonic() - t0
    assert reply["parent_header"]["msg_id"] == msg_id
    c = reply["content"]
    assert c["status"] == "error", c
    assert c["ename"] in ("SessionKilled", "InterpreterExited"), \
        "%s after %.3f s" % (c, latency)
    assert "signal 9" in c["evalue"] or "exited" in c["evalue"], c["evalue"]
    assert reply["metadata"]["cellblock"]["reason"] == c["ename"]
    assert reply["metadata"]["cellblock"]["state_preserved"] is False
    # The error is also published, and idle follows (front ends leave [*]).
    types = []
    deadline = time.monotonic() + 10
    while "idle" not in types and time.monotonic() < deadline:
        m = victim.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id:
            types.append(m["msg_type"] if m["msg_type"] != "status"
                         else m["content"]["execution_state"])
    assert "error" in types and types[-1] == "idle", types
    # Recorded, not asserted tightly: the issue asks for under a second.
    print("kill -9 to error reply: %.3f s" % latency)
    assert latency < 10, "the error reply took %.3f s" % latency
    # A new interpreter serves the next execute (no checkpoint: clean).
    reply, text = value(victim, "6 * 7", timeout=60)
    assert reply["content"]["status"] == "ok" and text == "42", reply["content"]
    reply, _ = run_cell(victim, "before", timeout=TIMEOUT)
    assert reply["content"]["ename"] == "NameError"
    assert sessions(daemon)[victim.name]["incarnation"] >= 2
    witness.check("an interpreter's death")


def test_signal_handler_raising_while_idle(daemon, witness, victim):
    """A cell's signal handler raises after the cell is done (ipykernel
    6.17's process dies of that, its state with it): the traceback comes
    as stderr under that cell, and the same interpreter keeps its state."""
    reply, _ = run_cell(victim, "x = 41\n"
                        "import os, signal, threading\n"
                        "def boom(signum, frame):\n"
                        "    raise RuntimeError('boom while idle')\n"
                        "signal.signal(signal.SIGUSR1, boom)\n"
                        "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()",
                        timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    cell = reply["parent_header"]["msg_id"]
    incarnation = sessions(daemon)[victim.name]["incarnation"]
    text, deadline = "", time.monotonic() + TIMEOUT
    while "RuntimeError: boom while idle" not in text:
        m = victim.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if m["msg_type"] == "stream":
            assert m["parent_header"]["msg_id"] == cell, m
            assert m["content"]["name"] == "stderr", m
            text += m["content"]["text"]
    assert "the session goes on" in text and "in boom" in text, text
    assert "cellblock_" not in text, "the runner's own frames shown:\n" + text
    reply, value_ = value(victim, "x + 1")
    assert reply["content"]["status"] == "ok" and value_ == "42", reply["content"]
    assert sessions(daemon)[victim.name]["incarnation"] == incarnation
    witness.check("a signal handler raising while idle")


# ------------------------------------------------- the daemon, killed

BUSY_CELL = "import time\nfor i in range(60000):\n    time.sleep(0.01)"


def test_daemon_killed_with_sessions_busy(tmp_path):
    """kill -9 of the daemon while every session runs a cell: nothing of the
    old daemon lives on, and the new one brings back every checkpointed
    session with its state, and no cgroup of a session it forgot."""
    d = Daemon()
    kcs = {}
    try:
        for i in range(3):
            name = "busy%d" % i
            kcs[name] = kc = d.client(d.new(name))
            reply, _ = run_cell(kc, "n = %d; tag = 'saved-%d'" % (i * 10, i), timeout=TIMEOUT)
            assert reply["content"]["status"] == "ok"
            p = d.cli("checkpoint", name)
            assert p.returncode == 0, p.stderr
            run_cell(kc, "n += 1", timeout=TIMEOUT)       # unsaved: lost in a crash
        kcs["nockpt"] = kc = d.client(d.new("nockpt"))    # never checkpointed
        run_cell(kc, "n = -1", timeout=TIMEOUT)
        for kc in kcs.values():
            kc.execute(BUSY_CELL)
        poll(lambda: all(s["state"] == "busy" for s in sessions(d).values()), TIMEOUT,
             "every session to be busy")
        parents = cgroup_parents(d)
        old = descendants(d.proc.pid)
        assert len(old) >= 4, old           # a process per session at least
        for kc in kcs.values():
            kc.stop_channels()
        kcs = {}

        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=30)
        t0 = time.monotonic()
        poll(lambda: not still_alive(old), 15,
             "the old daemon's shims and interpreters to die (left: %s)" % (still_alive(old),))
        died = time.monotonic() - t0

        start_again(d)
        listed = sessions(d)
        assert sorted(listed) == ["busy0", "busy1", "busy2"], (listed, d.log_text()[-3000:])
        assert all(s["state"] == "hibernated" and s["pid"] == -1 for s in listed.values())
        assert "nockpt: had no checkpoint" in d.log_text()
        # ... and nothing of it stays on disk: its files, its key.
        assert sorted(os.listdir(os.path.join(d.state, "work"))) == \
            sorted(os.path.basename(s["workdir"]) for s in listed.values())
        assert not os.path.exists(os.path.join(d.state, "sessions", "nockpt.json"))
        # No group of the old incarnations: only the sessions it knows.
        for parent, groups in session_groups(parents).items():
            assert set(groups) <= set(listed), (parent, groups)
            for g in groups:
                with open(os.path.join(parent, g, "cgroup.procs")) as f:
                    assert f.read().split() == [], (parent, g)
        for i in range(3):
            name = "busy%d" % i
            kc = d.client(os.path.join(d.state, "sessions", name + ".json"))
            try:
                reply, text = value(kc, "n, tag", timeout=60)
                assert text == "(%d, 'saved-%d')" % (i * 10, i), (text, reply["content"])
                assert reply["metadata"]["cellblock_resumed"]["restored"] is True
            finally:
                kc.stop_channels()
        print("old processes gone %.3f s after the daemon's kill -9" % died)
    finally:
        for kc in kcs.values():
            kc.stop_channels()
        d.stop()
    # A clean exit leaves no group; v1 not even the state dir's own one
    # (v2 keeps it: the daemon sat in its leaf).
    for parent, groups in session_groups(parents).items():
        assert groups == [], (parent, groups)
        assert parents[parent] == 2 or not os.path.exists(parent), parent


# ------------------------------------------------- a full disk

def test_disk_full_while_a_checkpoint_is_written(tmp_path):
    """The session work area is a 6 MiB tmpfs: a checkpoint that does not
    fit fails with ENOSPC, the error reaches the CLI and the log, the idle
    reaper does not hibernate on it, and the previous checkpoint still
    restores, after a crash and after a later hibernation."""
    conf = tmp_path / "cellblockd.conf"
    conf.write_text("idle-timeout = 3\n")
    d = Daemon(["--config", str(conf)])
    work = os.path.join(d.state, "work")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6M,mode=0711", "cb-fault-full", work],
                   check=True)
    kc = None
    try:
        kc = d.client(d.new("full"))
        run_cell(kc, "keep = 'old'", timeout=TIMEOUT)
        poll(lambda: sessions(d)["full"]["state"] == "hibernated", TIMEOUT,
             "the first hibernation")
        info = sessions(d)["full"]
        slot = info["checkpoint"]["slot"]
        ckpt = os.path.join(info["workdir"], ".cellblock", "checkpoint-" + slot)
        with open(ckpt, "rb") as f:
            good = f.read()
        reply, _ = run_cell(kc, "keep = 'new'; big = bytes(16 << 20)", timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert reply["metadata"]["cellblock_resumed"]["restored"] is True

        # The reaper tries, fails, and keeps the session running.
        failed = r"full: checkpoint failed: .*No space left on device"
        poll(lambda: log_count(d, failed) > 0, TIMEOUT, "the reaper's failed checkpoint")
        assert sessions(d)["full"]["state"] != "hibernated"
        # The CLI is told why (the reaper may be mid-attempt: try again).
        for _ in range(50):
            p = d.cli("checkpoint", "full")
            if "already checkpointing" not in p.stderr:
                break
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert "No space left on device" in p.stderr, p.stderr
        # Nothing lost: the old file intact, nothing half-written beside it,
        # the record still names it, and the live state is untouched.
        with open(ckpt, "rb") as f:
            assert f.read() == good
        assert os.listdir(os.path.dirname(ckpt)) == ["checkpoint-" + slot]
        assert sessions(d)["full"]["checkpoint"]["slot"] == slot
        assert value(kc, "keep, len(big)", timeout=60)[1] == "('new', 16777216)"

        # A crash: the new interpreter restores the previous checkpoint.
        for pid in interpreter_pids(d, "full"):
            os.kill(pid, signal.SIGKILL)
        reply, text = value(kc, "keep, 'big' in dir()", timeout=60)
        if reply["content"]["status"] == "error":   # the kill hit this request
            reply, text = value(kc, "keep, 'big' in dir()", timeout=60)
        assert text == "('old', False)", (text, reply["content"])
        assert reply["metadata"]["cellblock_resumed"]["restored"] is True
        # A later hibernation (it fits again) and resume keep the old state.
        poll(lambda: sessions(d)["full"]["state"] == "hibernated", TIMEOUT,
             "the next hibernation")
        reply, text = value(kc, "keep", timeout=60)
        assert text == "'old'", (text, reply["content"])
        assert reply["metadata"]["cellblock_resumed"]["restored"] is True
        assert d.alive()
    finally:
        if kc is not None:
            kc.stop_channels()
        d.cli("kill", "full")
        poll(lambda: not os.listdir(work), 15, "the session's work dir to go")
        subprocess.run(["umount", work], check=False)
        subprocess.run(["umount", "-l", work], check=False, stderr=subprocess.DEVNULL)
        d.stop()


# ------------------------------------------------- clients that never read

def test_clients_that_never_read(daemon, witness, victim):
    """A SUB that never reads while its session prints a lot, and a DEALER
    that sends executes and never reads the replies: others are served at
    once and the daemon's memory stays bounded (HWMs drop, not buffer)."""
    path = os.path.join(daemon.state, "sessions", victim.name + ".json")
    info = json.load(open(path))
    victim.stop_channels()          # it would be one more reader that lags
    ctx = zmq.Context()
    socks = []
    try:
        rss0 = rss_kb(daemon.proc.pid)
        for _ in range(3):
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.rcvhwm = 1
            sub.setsockopt(zmq.RCVBUF, 4096)
            sub.connect("tcp://127.0.0.1:%d" % info["iopub_port"])
            socks.append(sub)
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.rcvhwm = 1
        dealer.setsockopt(zmq.RCVBUF, 4096)
        dealer.connect("tcp://127.0.0.1:%d" % info["shell_port"])
        socks.append(dealer)
        key = info["key"].encode()
        sid = uuid.uuid4().hex
        # 20 cells of 7 MB of output each (under max-stream): 140 MB that
        # the slow subscribers are offered and cannot take.
        flood = "import sys\nfor i in range(7000):\n    sys.stdout.write('x' * 1023 + '\\n')"
        for i in range(20):
            _, parts = execute_parts(flood, sid)
            dealer.send_multipart([DELIM, signed(key, parts)] + parts)
        peak, served = rss0, []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            peak = max(peak, rss_kb(daemon.proc.pid))
            served.append(witness.check("clients that never read"))
            state = sessions(daemon)[victim.name]
            if state["queued"] == 0 and state["state"] == "idle":
                break
        else:
            raise AssertionError("the flooding session never finished")
        peak = max(peak, rss_kb(daemon.proc.pid))
        # The victim itself still answers a client that does read.
        kc = daemon.client(path)
        try:
            reply, text = value(kc, "'still here'", timeout=60)
            assert text == "'still here'", reply["content"]
        finally:
            kc.stop_channels()
        growth = (peak - rss0) // 1024
        print("daemon RSS %d -> peak %d KiB (+%d MiB); witness answered in %.3f s at worst"
              % (rss0, peak, growth, max(served)))
        if not sanitized(CELLBLOCKD):
            assert growth < 100, "the daemon grew by %d MiB for 140 MB nobody read" % growth
        assert max(served) < 10, served
    finally:
        for s in socks:
            s.close(0)
        ctx.term()


def test_a_flood_of_requests_waits_in_a_bounded_queue(daemon, witness, victim):
    """20,000 executes sent while a cell runs: 1000 wait their turn, the
    rest fail at once with SessionQueueFull (each waiting request costs the
    daemon memory: unbounded, these took 110 MB), and every queued one runs
    exactly once afterwards."""
    info = json.load(open(os.path.join(daemon.state, "sessions", victim.name + ".json")))
    key = info["key"].encode()
    run_cell(victim, "n = 0", timeout=TIMEOUT)
    # Interrupted later; stop_on_error off, or its error would abort the queue.
    blocker = victim.execute("import time; time.sleep(120)", stop_on_error=False)
    poll(lambda: sessions(daemon)[victim.name]["state"] == "busy", TIMEOUT, "the cell to run")
    rss0 = rss_kb(daemon.proc.pid)
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.sndhwm = dealer.rcvhwm = 0
        dealer.connect("tcp://127.0.0.1:%d" % info["shell_port"])
        sid = uuid.uuid4().hex
        for _ in range(20000):
            _, parts = execute_parts("n += 1", sid, stop_on_error=False)
            dealer.send_multipart([DELIM, signed(key, parts)] + parts)
        statuses = {}

        def replies(until):
            deadline = time.monotonic() + 120
            while sum(statuses.values()) < until and time.monotonic() < deadline:
                if dealer.poll(1000):
                    frames = dealer.recv_multipart()
                    c = json.loads(frames[frames.index(DELIM) + 5])
                    k = c.get("ename", c["status"])
                    statuses[k] = statuses.get(k, 0) + 1
            return statuses
        replies(19000)
        peak = rss_kb(daemon.proc.pid)
        assert statuses.get("SessionQueueFull") == 19000, statuses
        witness.check("a flood of requests")
        assert sessions(daemon)[victim.name]["queued"] == 1000
        assert daemon.cli("interrupt", victim.name).returncode == 0
        replies(20000)
        assert statuses == {"SessionQueueFull": 19000, "ok": 1000}, statuses
    finally:
        ctx.destroy(0)
    reply = victim.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == blocker
    # The victim's own client fell behind on 57,000 iopub messages: a new one.
    kc = daemon.client(os.path.join(daemon.state, "sessions", victim.name + ".json"))
    try:
        assert value(kc, "n")[1] == "1000"
    finally:
        kc.stop_channels()
    growth = (peak - rss0) // 1024
    print("20,000 requests: 1000 queued, daemon RSS +%d MiB" % growth)
    if not sanitized(CELLBLOCKD):
        assert growth < 50, "the daemon grew by %d MiB" % growth
    witness.check("a flood of requests")


# ------------------------------------------------- half a multipart message

class Zmtp:
    """A ZMTP 3.0 peer on a raw TCP socket (NULL mechanism, DEALER), so a
    message can be cut where libzmq would never cut it."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0")
                       + b"\0" + b"\0" * 31)
        props = b""
        for k, v in ((b"Socket-Type", b"DEALER"), (b"Identity", b"")):
            props += bytes([len(k)]) + k + struct.pack(">I", len(v)) + v
        body = b"\x05READY" + props
        self.s.sendall(bytes([0x04, len(body)]) + body)
        got = b""
        while len(got) < 64 + 2:            # their greeting and READY
            chunk = self.s.recv(4096)
            assert chunk, "the daemon closed the ZMTP handshake"
            got += chunk

    def frame(self, data, more):
        if len(data) < 256:
            return bytes([0x01 if more else 0x00, len(data)]) + data
        return bytes([0x03 if more else 0x02]) + struct.pack(">Q", len(data)) + data

    def close(self):
        self.s.close()


def test_half_a_multipart_message(daemon, witness, victim):
    info = json.load(open(os.path.join(daemon.state, "sessions", victim.name + ".json")))
    key = info["key"].encode()
    header, parts = execute_parts("ran_half = 1", uuid.uuid4().hex)
    before = log_count(daemon, r"dropped message: 5 frames needed")
    # 1. A whole ZeroMQ message that is only the delimiter and a header.
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect("tcp://127.0.0.1:%d" % info["shell_port"])
        dealer.send_multipart([DELIM, parts[0]])
        poll(lambda: log_count(daemon, r"dropped message: 5 frames needed") > before, 10,
             "the cut message to be dropped and logged")
    finally:
        ctx.destroy(0)
    # 2. On the wire: delimiter, signature and header sent, the next frame
    #    announced at 1 MiB and cut after 100 bytes; the peer then waits.
    z = Zmtp(info["shell_port"])
    try:
        z.s.sendall(z.frame(DELIM, True) + z.frame(signed(key, parts), True)
                    + z.frame(parts[0], True))
        z.s.sendall(bytes([0x03]) + struct.pack(">Q", 1 << 20) + b"{" * 100)
        # The same socket keeps serving everyone else meanwhile.
        reply, text = value(victim, "'ran_half' in dir(), 'served'")
        assert text == "(False, 'served')", reply["content"]
        witness.check("a message cut on the wire")
    finally:
        z.close()
    # 3. A peer that says MORE and hangs up: nothing half-read runs later.
    z = Zmtp(info["shell_port"])
    z.s.sendall(z.frame(DELIM, True) + z.frame(signed(key, parts), True)
                + b"".join(z.frame(p, True) for p in parts))
    z.close()
    reply, text = value(victim, "'ran_half' in dir()")
    assert text == "False", reply["content"]
    witness.check("half a multipart message")


# ------------------------------------------------- bad signatures

def test_ten_thousand_bad_signatures(daemon, witness, victim):
    """10,000 badly signed executes: all dropped, each counted in the log
    but only a few lines written one by one; everyone keeps being served."""
    info = json.load(open(os.path.join(daemon.state, "sessions", victim.name + ".json")))
    run_cell(victim, "hits = 0", timeout=TIMEOUT)
    one_by_one = r"%s: shell: dropped message: .*signature" % victim.name
    counted = re.compile(r"%s: dropped (\d+) more messages in the last second" % victim.name)
    lines0 = len(daemon.log_text().splitlines())
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.sndhwm = 0
        dealer.connect("tcp://127.0.0.1:%d" % info["shell_port"])
        sid = uuid.uuid4().hex
        t0 = time.monotonic()
        for i in range(10000):
            _, parts = execute_parts("hits += 1", sid)
            dealer.send_multipart([DELIM, b"%064x" % i] + parts)
        # Served while the flood is read: the witness and the victim itself.
        witness.check("a flood of bad signatures")

        def accounted():
            text = daemon.log_text().splitlines()[lines0:]
            singles = sum(1 for line in text if re.search(one_by_one, line))
            quiet = sum(int(m.group(1)) for line in text for m in [counted.search(line)] if m)
            return (singles + quiet == 10000) and (singles, quiet)
        singles, quiet = poll(accounted, 60, "all 10,000 drops accounted for in the log")
        took = time.monotonic() - t0
    finally:
        ctx.destroy(0)
    reply, text = value(victim, "hits")
    assert text == "0", reply["content"]
    # Rate-limited: a few lines a second, not one per message.
    assert singles <= 5 * (took + 2), (singles, quiet, took)
    print("10,000 bad signatures in %.2f s: %d logged one by one, %d counted"
          % (took, singles, quiet))
    witness.check("10,000 bad signatures")


# ------------------------------------------------- a 2 GB message

def test_two_gigabyte_message_is_refused(daemon, witness, victim, tmp_path):
    """One 2 GiB frame (sent lazily from a sparse file, never allocated
    here): the daemon's own ZMTP reader (server/wire.c) closes the
    connection at the frame's header, over max-message (64M by default),
    so the daemon's memory stays flat."""
    info = json.load(open(os.path.join(daemon.state, "sessions", victim.name + ".json")))
    key = info["key"].encode()
    size = 2 << 30
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(size)
    pid = daemon.proc.pid
    rss0 = rss_kb(pid)
    ctx = zmq.Context()
    with open(sparse, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        try:
            dealer = ctx.socket(zmq.DEALER)
            dealer.linger = 0
            dealer.connect("tcp://127.0.0.1:%d" % info["shell_port"])
            _, parts = execute_parts("ran_huge = 1", uuid.uuid4().hex)
            dealer.send_multipart([DELIM, signed(key, parts)] + parts[:3]
                                  + [zmq.Frame(memoryview(m))], copy=False)
            peak = rss0
            closed = (r"%s: shell: closed a connection: message over max-message"
                      % victim.name)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and log_count(daemon, closed) == 0:
                peak = max(peak, rss_kb(pid))
                time.sleep(0.02)
            assert log_count(daemon, closed) > 0, "the 2 GiB sender was never cut off"
            for _ in range(20):                 # a little longer: nothing creeps up
                peak = max(peak, rss_kb(pid))
                time.sleep(0.05)
            dealer.close(0)
        finally:
            ctx.destroy(0)
            m.close()
    reply, text = value(victim, "'ran_huge' in dir()")
    assert text == "False", reply["content"]
    growth = peak - rss0
    print("daemon RSS %d KiB -> peak %d KiB during a 2 GiB message" % (rss0, peak))
    if not sanitized(CELLBLOCKD):
        assert growth < 32 * 1024, "daemon RSS grew %d KiB on a refused 2 GiB message" % growth
    witness.check("a 2 GB message")


# ------------------------------------------------- the control socket

FLOODER = r"""
import os, resource, socket, struct, sys
path, n = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
conns, refused = [], 0
for i in range(n):
    try:
        c = socket.socket(socket.AF_UNIX)
    except OSError:                     # out of descriptors ourselves
        break
    # Blocking, so a full backlog waits for the daemon, at most 5 s.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 5, 0))
    try:
        c.connect(path)
    except OSError:
        refused += 1
        c.close()
        continue
    conns.append(c)
    c.setblocking(False)
    try:
        if i % 10 == 1:
            c.send(b"garbage that is not json\n" * 50 + b'{"cmd": 7}\n[1,2]\n')
        elif i % 10 == 2:
            c.send(b"y" * 200000)        # a huge line, never ended
    except OSError:
        pass
print("open %d refused %d" % (len(conns), refused), flush=True)
sys.stdin.read()                        # hold them until told to go
"""


def test_control_socket_flood_leaves_other_users_served(daemon, witness):
    """One user opens thousands of control connections with garbage, huge
    lines and silence; another user's requests are still served, and so
    are root's."""
    if os.geteuid() != 0 or not os.path.exists(SETPRIV):
        pytest.fail("this test needs root and util-linux setpriv")
    # As many connections as the daemon has descriptors, and then some.
    with open("/proc/%d/limits" % daemon.proc.pid) as f:
        limit = int(next(l for l in f if l.startswith("Max open files")).split()[3])
    want = min(limit + 100, 30000)
    flooder = subprocess.Popen([SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                                "--clear-groups", cbtest.PYTHON, "-c", FLOODER,
                                os.path.join(daemon.state, "control.sock"), str(want)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=other_env(daemon))
    try:
        line = flooder.stdout.readline()
        assert line.startswith("open"), line
        # Another user: a session of their own, and code run in it.
        t0 = time.monotonic()
        p = as_user(OTHER, daemon, "new", "--name", "other-user")
        assert p.returncode == 0, (p.stderr, daemon.log_text()[-2000:])
        p = as_user(OTHER, daemon, "run", "other-user", "print(6 * 7)", timeout=60)
        assert p.returncode == 0 and p.stdout == "42\n", (p.stdout, p.stderr)
        p = as_user(OTHER, daemon, "ls")
        assert p.returncode == 0 and "other-user" in p.stdout, p.stderr
        other = time.monotonic() - t0
        # Root's, and the witness on its endpoint.
        assert "witness" in sessions(daemon)
        witness.check("a control socket flood")
        # The flooder itself may keep some connections, not all.
        fds = len(os.listdir("/proc/%d/fd" % daemon.proc.pid))
        print("flooder: %s; other user served in %.2f s; daemon holds %d fds (limit %d)"
              % (line.strip(), other, fds, limit))
        assert fds < limit - 64, "the flooder took the daemon's descriptors: %d" % fds
    finally:
        flooder.stdin.close()
        flooder.wait(timeout=30)
        as_user(OTHER, daemon, "kill", "other-user")
    witness.check("the flood's end")


# ------------------------------------------------- a control client that reads late

def test_control_replies_wait_for_a_slow_reader(daemon, witness):
    """A control client that sends many requests before reading any gets
    every reply, in order: what the socket buffer cannot take waits in the
    daemon (an `ls` of a thousand sessions is more than a buffer), and the
    daemon's loop is not blocked meanwhile."""
    n = 4000        # ~0.8 MB of `ping` replies: several socket buffers
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(os.path.join(daemon.state, "control.sock"))
        s.sendall(b'{"cmd": "ping"}\n' * n)
        # The loop serves others while this client's replies wait.
        witness.check()
        buf = b""
        deadline = time.monotonic() + TIMEOUT
        while buf.count(b"\n") < n and time.monotonic() < deadline:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    lines = buf.split(b"\n")[:-1]
    assert len(lines) == n, f"{len(lines)} of {n} replies; log: " + \
        "\n".join(daemon.log_text().splitlines()[-5:])
    assert all(json.loads(x)["ok"] for x in lines)
    witness.check()
