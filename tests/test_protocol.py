"""Jupyter protocol rules, checked against a real cellblockd.

Well-behaved traffic goes through jupyter_client; where a test must see the
wire exactly (header dates, parent headers byte for byte) or craft bad
messages, it uses `Raw`, a small ZeroMQ client that signs and parses frames
itself. Every wait has a deadline; no sleep is used to synchronise.
"""
import datetime
import hashlib
import hmac
import json
import os
import random
import re
import time
import uuid

import pytest
import zmq

from cbtest import Daemon, run_cell, poll

DELIM = b"<IDS|MSG>"
TIMEOUT = 10            # any single reply or iopub message
DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def utcnow_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


class Raw:
    """A Jupyter client on raw ZeroMQ sockets: DEALER shell/control/stdin,
    SUB iopub. Messages it builds are signed with the connection file's key
    unless told otherwise; messages it receives are parsed from the frames
    (JSON as sent, dates as strings) and their signatures checked."""

    def __init__(self, connection_file):
        with open(connection_file) as f:
            self.info = json.load(f)
        self.key = self.info["key"].encode()
        self.session_id = uuid.uuid4().hex
        self.ctx = zmq.Context()
        self.socks = {}
        for name, kind in (("shell", zmq.DEALER), ("control", zmq.DEALER),
                           ("stdin", zmq.DEALER), ("iopub", zmq.SUB)):
            s = self.ctx.socket(kind)
            s.linger = 0
            s.sndtimeo = 5000
            if kind == zmq.SUB:
                s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(self.url(name))
            self.socks[name] = s
        self.received = {name: [] for name in self.socks}   # parsed, unclaimed
        self.all = []           # every parsed message, for header checks

    def url(self, name):
        info = self.info
        port = info[name + "_port"]
        if info.get("transport", "tcp") == "ipc":
            return "ipc://%s-%d" % (info["ip"], port)
        return "tcp://%s:%d" % (info["ip"], port)

    def close(self):
        for s in self.socks.values():
            s.close(0)
        self.ctx.term()

    # -- building --
    def sign(self, parts):
        h = hmac.new(self.key, digestmod=hashlib.sha256)
        for p in parts:
            h.update(p)
        return h.hexdigest().encode()

    def build(self, msg_type, content, **header_extra):
        header = {"msg_id": uuid.uuid4().hex, "session": self.session_id,
                  "username": "tester", "date": utcnow_iso(),
                  "msg_type": msg_type, "version": "5.3"}
        header.update(header_extra)
        parts = [json.dumps(x).encode() for x in (header, {}, {}, content)]
        return header, [DELIM, self.sign(parts)] + parts

    def send(self, channel, msg_type, content=None, **header_extra):
        header, frames = self.build(msg_type, {} if content is None else content,
                                    **header_extra)
        self.socks[channel].send_multipart(frames)
        return header

    def execute(self, code, channel="shell", **kw):
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False,
                   "stop_on_error": True}
        content.update(kw)
        return self.send(channel, "execute_request", content)

    # -- receiving --
    def parse(self, frames):
        i = frames.index(DELIM)
        sig, parts = frames[i + 1], frames[i + 2:i + 6]
        msg = {"sig_ok": hmac.compare_digest(sig, self.sign(parts)),
               "raw": parts, "buffers": frames[i + 6:]}
        for name, part in zip(("header", "parent_header", "metadata", "content"), parts):
            msg[name] = json.loads(part)
        msg["msg_type"] = msg["header"]["msg_type"]
        return msg

    def _pump(self, timeout):
        """Read whatever arrives within timeout seconds (at least one poll)."""
        poller = zmq.Poller()
        for s in self.socks.values():
            poller.register(s, zmq.POLLIN)
        events = dict(poller.poll(int(timeout * 1000)))
        for name, s in self.socks.items():
            while s in events and s.poll(0):
                msg = self.parse(s.recv_multipart())
                assert msg["sig_ok"], "bad signature from the daemon: %r" % msg
                self.received[name].append(msg)
                self.all.append(msg)

    def wait(self, channel, pred, timeout=TIMEOUT, what="message"):
        deadline = time.monotonic() + timeout
        while True:
            for m in self.received[channel]:
                if pred(m):
                    self.received[channel].remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s on %s within %ss; got %r" % (
                    what, channel, timeout,
                    [(m["msg_type"], m["content"]) for m in self.received[channel]][-20:]))
            self._pump(min(left, 0.2))

    def reply(self, header, channel="shell", timeout=TIMEOUT):
        return self.wait(channel, lambda m: m["parent_header"].get("msg_id") == header["msg_id"],
                         timeout, "reply to %s" % header["msg_type"])

    def iopub_until_idle(self, header, timeout=TIMEOUT):
        """The iopub messages whose parent is header, up to and including idle."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            m = self.wait("iopub", lambda m: m["parent_header"].get("msg_id") == header["msg_id"],
                          max(deadline - time.monotonic(), 0.01), "iopub for %s (have %r)" % (
                              header["msg_type"], [x["msg_type"] for x in out]))
            out.append(m)
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return out

    def wait_ready(self, timeout=TIMEOUT):
        """The SUB socket joins late: send kernel_info until iopub speaks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.send("shell", "kernel_info_request")
            self._pump(0.2)
            if self.received["iopub"]:
                self.reply(h)
                self.iopub_until_idle(h)
                self.drain()
                return
        raise AssertionError("session never answered kernel_info with iopub traffic")

    def drain(self, quiet=0.1):
        """Read until nothing arrives for `quiet` seconds (bounded), then forget it."""
        for _ in range(100):
            n = sum(len(v) for v in self.received.values())
            self._pump(quiet)
            if sum(len(v) for v in self.received.values()) == n:
                break
        for v in self.received.values():
            v.clear()

    def run(self, code, timeout=TIMEOUT, **kw):
        h = self.execute(code, **kw)
        reply = self.reply(h, timeout=timeout)
        return reply, self.iopub_until_idle(h, timeout)


def text_of(outputs, kinds=("execute_result",)):
    out = []
    for m in outputs:
        if m["msg_type"] in kinds:
            if m["msg_type"] == "stream":
                out.append(m["content"]["text"])
            else:
                out.append(m["content"]["data"]["text/plain"])
    return "".join(out)


def session_name(path):
    return os.path.basename(path)[:-len(".json")]


def ls(daemon):
    p = daemon.cli("ls", "--json", check=True)
    return {s["name"]: s for s in json.loads(p.stdout)}


@pytest.fixture
def raw(daemon):
    path = daemon.new()
    r = Raw(path)
    r.path = path
    r.name = session_name(path)
    r.wait_ready()
    yield r
    r.close()
    daemon.cli("kill", r.name)


def kc_iopub_until_idle(kc, msg_id, timeout=TIMEOUT):
    out = []
    deadline = time.monotonic() + timeout
    while True:
        m = kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01))
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        out.append(m)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return out


def kc_reply(kc, msg_id, channel="shell", timeout=TIMEOUT):
    get = kc.get_shell_msg if channel == "shell" else kc.get_control_msg
    deadline = time.monotonic() + timeout
    while True:
        m = get(timeout=max(deadline - time.monotonic(), 0.01))
        if m["parent_header"].get("msg_id") == msg_id:
            return m


def kc_drain(kc):
    for _ in range(1000):
        try:
            kc.get_iopub_msg(timeout=0.1)
        except Exception:
            return


# ---------------------------------------------------------------- busy/idle

REQUESTS = [
    ("shell", "kernel_info_request", {}),
    ("shell", "complete_request", {"code": "impo", "cursor_pos": 4}),
    ("shell", "inspect_request", {"code": "len", "cursor_pos": 3, "detail_level": 0}),
    ("shell", "is_complete_request", {"code": "for i in range(3):"}),
    ("shell", "history_request", {"hist_access_type": "tail", "n": 5, "raw": True,
                                  "output": False}),
    ("shell", "comm_info_request", {}),
    ("shell", "cellblock_no_such_request", {}),
    ("control", "kernel_info_request", {}),
    ("control", "interrupt_request", {}),
]


def test_every_request_is_bracketed_by_busy_and_idle(raw):
    for channel, msg_type, content in REQUESTS:
        h = raw.send(channel, msg_type, content)
        msgs = raw.iopub_until_idle(h)
        states = [m["content"].get("execution_state") for m in msgs if m["msg_type"] == "status"]
        assert msgs[0]["msg_type"] == "status" and states[0] == "busy", (msg_type, msgs)
        assert states == ["busy", "idle"], (channel, msg_type, states)
        for m in msgs:
            assert m["parent_header"] == h, (msg_type, m)
        if msg_type != "cellblock_no_such_request":
            reply = raw.reply(h, channel)
            assert reply["msg_type"] == msg_type.replace("_request", "_reply")
            want = "incomplete" if msg_type == "is_complete_request" else "ok"
            assert reply["content"]["status"] == want, (msg_type, reply["content"])
            assert reply["parent_header"] == h
    # Nothing of these requests may come after their idle.
    raw._pump(0.3)
    late = [m for m in raw.received["iopub"] if m["parent_header"]]
    assert late == [], late


def test_execute_order_busy_input_outputs_idle(raw):
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\n41 + 1"
    h = raw.execute(code)
    reply = raw.reply(h)
    msgs = raw.iopub_until_idle(h)
    types = [m["msg_type"] for m in msgs]
    assert types[0] == "status" and msgs[0]["content"]["execution_state"] == "busy"
    assert types[1] == "execute_input", types
    assert msgs[1]["content"]["code"] == code
    assert msgs[1]["content"]["execution_count"] == reply["content"]["execution_count"]
    assert types[-1] == "status" and msgs[-1]["content"]["execution_state"] == "idle"
    middle = msgs[2:-1]
    streams = {m["content"]["name"]: m["content"]["text"] for m in middle
               if m["msg_type"] == "stream"}
    assert streams.get("stdout", "").strip() == "out", middle
    assert streams.get("stderr", "").strip() == "err", middle
    results = [m for m in middle if m["msg_type"] == "execute_result"]
    assert len(results) == 1 and results[0]["content"]["data"]["text/plain"] == "42"
    assert results[0]["content"]["execution_count"] == reply["content"]["execution_count"]
    assert reply["msg_type"] == "execute_reply" and reply["content"]["status"] == "ok"
    # Output published after idle would be lost by nbclient.
    raw._pump(0.3)
    assert [m for m in raw.received["iopub"] if m["parent_header"] == h] == []


# ---------------------------------------------------------------- headers

def check_header(m, now):
    h = m["header"]
    for key in ("msg_id", "session", "username", "date", "msg_type", "version"):
        assert isinstance(h.get(key), str), (key, h)
    assert h["version"] == "5.3", h
    assert DATE_RE.match(h["date"]), h["date"]
    when = datetime.datetime.strptime(h["date"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert abs((when - now).total_seconds()) < 120, (h["date"], now)
    assert isinstance(m["metadata"], dict), m
    assert isinstance(m["content"], dict), m


def test_header_fields(raw):
    raw.all.clear()
    sent = []
    sent.append(raw.send("shell", "kernel_info_request"))
    sent.append(raw.send("control", "kernel_info_request"))
    sent.append(raw.execute("from IPython.display import display\n"
                            "print('a'); display('b'); 'c'"))
    sent.append(raw.execute("1/0"))
    sent.append(raw.send("shell", "complete_request", {"code": "pri", "cursor_pos": 3}))
    for h in sent:
        ch = "control" if h is sent[1] else "shell"
        reply = raw.reply(h, ch)
        assert reply["parent_header"] == h
        # The parent header is the request's header, verbatim on the wire.
        assert json.loads(reply["raw"][1]) == h
        raw.iopub_until_idle(h)
    now = datetime.datetime.now(datetime.timezone.utc)
    msgs = raw.all
    types = {m["msg_type"] for m in msgs}
    assert {"kernel_info_reply", "execute_reply", "complete_reply", "status",
            "execute_input", "stream", "display_data", "execute_result",
            "error"} <= types, types
    for m in msgs:
        check_header(m, now)
        assert m["parent_header"] in sent, m
    ids = [m["header"]["msg_id"] for m in msgs]
    assert len(ids) == len(set(ids)), "msg_id reused"
    assert not set(ids) & {h["msg_id"] for h in sent}


# ---------------------------------------------------------------- kernel_info

def check_kernel_info(content):
    assert content["status"] == "ok"
    assert content["protocol_version"] == "5.3"
    assert isinstance(content["implementation"], str) and content["implementation"]
    assert isinstance(content["implementation_version"], str)
    li = content["language_info"]
    assert li["name"] == "python"
    assert isinstance(li["version"], str) and li["version"][0] == "3"
    assert isinstance(li["mimetype"], str) and li["mimetype"]
    assert li["file_extension"] == ".py"
    assert isinstance(li["pygments_lexer"], str)
    assert isinstance(li["codemirror_mode"], (str, dict))
    assert isinstance(li["nbconvert_exporter"], str)
    assert isinstance(content["banner"], str)
    assert isinstance(content["help_links"], list)


def test_kernel_info_reply_fields_on_shell_and_control(raw):
    for ch in ("shell", "control"):
        h = raw.send(ch, "kernel_info_request")
        reply = raw.reply(h, ch)
        assert reply["msg_type"] == "kernel_info_reply"
        check_kernel_info(reply["content"])


def test_kernel_info_while_a_cell_runs(raw):
    """Control answers at once; shell keeps request order (issue 10): its
    kernel_info is answered after the running cell's reply."""
    h = raw.execute("import time\nprint('started', flush=True)\ntime.sleep(5)")
    raw.wait("iopub", lambda m: m["parent_header"] == h and m["msg_type"] == "stream",
             what="the cell's first output")
    t0 = time.monotonic()
    k = raw.send("control", "kernel_info_request")
    reply = raw.reply(k, "control", timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    check_kernel_info(reply["content"])
    raw.iopub_until_idle(k, timeout=1.0)
    ks = raw.send("shell", "kernel_info_request")
    # The cell is still running: neither its reply nor the one behind it.
    raw._pump(0.3)
    assert not raw.received["shell"], raw.received["shell"]
    i = raw.send("control", "interrupt_request")
    raw.reply(i, "control")
    first = raw.wait("shell", lambda m: True, 10, "the next shell reply")
    assert first["parent_header"] == h and first["content"]["ename"] == "KeyboardInterrupt"
    second = raw.wait("shell", lambda m: True, 10, "the next shell reply")
    assert second["parent_header"]["msg_id"] == ks["msg_id"]
    check_kernel_info(second["content"])


def test_kernel_info_answered_before_the_interpreter_starts(daemon):
    path = daemon.new()
    r = Raw(path)
    try:
        for ch in ("shell", "control"):
            t0 = time.monotonic()
            h = r.send(ch, "kernel_info_request")
            reply = r.reply(h, ch, timeout=1.0)
            assert time.monotonic() - t0 < 1.0
            check_kernel_info(reply["content"])
        # And the session then works.
        reply, out = r.run("6 * 7")
        assert reply["content"]["status"] == "ok"
        assert text_of(out) == "42"
    finally:
        r.close()
        daemon.cli("kill", session_name(path))


# ---------------------------------------------------------------- shell FIFO, control

def test_shell_is_fifo(raw):
    raw.run("order = []")
    sent = []
    for i in range(6):
        # Earlier cells sleep longer: any reordering would show.
        sent.append(raw.execute("import time; time.sleep(%.2f); order.append(%d)"
                                % (0.05 * (6 - i), i)))
    counts = []
    for h in sent:
        reply = raw.reply(h)
        assert reply["content"]["status"] == "ok"
        counts.append(reply["content"]["execution_count"])
    # Replies arrived as they were asked for, and ran in that order.
    got = [m["parent_header"]["msg_id"] for m in raw.all if m["msg_type"] == "execute_reply"]
    assert got[-6:] == [h["msg_id"] for h in sent]
    assert counts == sorted(counts) and len(set(counts)) == 6
    _, out = raw.run("order")
    assert text_of(out) == "[0, 1, 2, 3, 4, 5]"


def test_interrupt_request_on_control(session):
    kc = session
    run_cell(kc, "kept = 'still here'", timeout=TIMEOUT)
    msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(30)")
    deadline = time.monotonic() + TIMEOUT
    while True:
        m = kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01))
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
            break
    t0 = time.monotonic()
    req = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(req)
    ireply = kc_reply(kc, req["header"]["msg_id"], "control", timeout=5)
    assert ireply["content"]["status"] == "ok"
    reply = kc_reply(kc, msg_id, timeout=5)
    assert time.monotonic() - t0 < 5
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    out = kc_iopub_until_idle(kc, msg_id, timeout=5)
    errors = [m for m in out if m["msg_type"] == "error"]
    assert len(errors) == 1 and errors[0]["content"]["ename"] == "KeyboardInterrupt"
    reply, out = run_cell(kc, "kept", timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok"
    assert [m["content"]["data"]["text/plain"] for m in out
            if m["msg_type"] == "execute_result"] == ["'still here'"]


# ---------------------------------------------------------------- stop_on_error

def test_stop_on_error_aborts_only_queued_executes(raw):
    raw.run("hits = []")
    a = raw.execute("import time; time.sleep(0.5); raise ValueError('A failed')")
    b = raw.execute("hits.append('B')")
    c = raw.execute("hits.append('C')")
    comp = raw.send("shell", "complete_request", {"code": "hit", "cursor_pos": 3})
    ra = raw.reply(a)
    assert ra["content"]["status"] == "error" and ra["content"]["ename"] == "ValueError"
    for h in (b, c):
        r = raw.reply(h)
        # As ipykernel 6.17 (tests/test_shell_order.py compares the two).
        assert r["content"] == {"status": "aborted"}, r["content"]
        msgs = raw.iopub_until_idle(h)
        # Not run: no execute_input, no output.
        assert [m["msg_type"] for m in msgs] == ["status", "status"], msgs
    rc = raw.reply(comp)
    assert rc["content"]["status"] == "ok"
    assert "hits" in rc["content"]["matches"]
    # A request sent after the error's reply runs normally.
    reply, out = raw.run("hits")
    assert reply["content"]["status"] == "ok"
    assert text_of(out) == "[]"


def test_stop_on_error_false_keeps_running(raw):
    raw.run("hits = []")
    a = raw.execute("import time; time.sleep(0.5); raise ValueError('A')",
                    stop_on_error=False)
    b = raw.execute("hits.append('B')")
    assert raw.reply(a)["content"]["status"] == "error"
    assert raw.reply(b)["content"]["status"] == "ok"
    _, out = raw.run("hits")
    assert text_of(out) == "['B']"


# ---------------------------------------------------------------- execution_count, silent

def test_execution_count_and_silent(raw):
    r1, _ = raw.run("x = 1")
    n = r1["content"]["execution_count"]
    r2, out2 = raw.run("x = 2", store_history=False)
    assert r2["content"]["status"] == "ok"
    r3, _ = raw.run("x = 3")
    assert r3["content"]["execution_count"] == n + 1
    h = raw.execute("print('loud'); 99", silent=True, store_history=False)
    r4 = raw.reply(h)
    assert r4["content"]["status"] == "ok"
    msgs = raw.iopub_until_idle(h)
    assert [(m["msg_type"], m["content"].get("execution_state")) for m in msgs] == \
        [("status", "busy"), ("status", "idle")]
    r5, out5 = raw.run("x")
    assert r5["content"]["execution_count"] == n + 2
    assert [m["content"]["execution_count"] for m in out5
            if m["msg_type"] == "execute_input"] == [n + 2]
    assert text_of(out5) == "3"


def test_user_expressions(raw):
    reply, _ = raw.run("a = 5", user_expressions={"double": "a * 2", "bad": "1 / 0"})
    ue = reply["content"]["user_expressions"]
    assert ue["double"]["status"] == "ok"
    assert ue["double"]["data"]["text/plain"] == "10"
    assert isinstance(ue["double"]["metadata"], dict)
    assert ue["bad"]["status"] == "error"
    assert ue["bad"]["ename"] == "ZeroDivisionError"
    assert isinstance(ue["bad"]["evalue"], str)
    assert isinstance(ue["bad"]["traceback"], list)


# ---------------------------------------------------------------- stdin

def test_input_request_goes_to_the_asking_client(daemon, session):
    kc = session
    other = daemon.client(kc.connection_file)     # a second client on the session
    try:
        msg_id = kc.execute("name = input('name? ')\nprint('got', name)", allow_stdin=True)
        req = kc.get_stdin_msg(timeout=TIMEOUT)
        with pytest.raises(Exception):
            other.get_stdin_msg(timeout=0.3)
    finally:
        other.stop_channels()
    assert req["msg_type"] == "input_request"
    assert req["content"]["prompt"] == "name? "
    assert req["content"]["password"] is False
    assert req["parent_header"]["msg_id"] == msg_id
    kc.input("bob")
    reply = kc_reply(kc, msg_id)
    assert reply["content"]["status"] == "ok"
    out = kc_iopub_until_idle(kc, msg_id)
    text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream")
    assert text == "got bob\n"


def test_input_without_allow_stdin_fails_at_once(session):
    kc = session
    t0 = time.monotonic()
    msg_id = kc.execute("input('never asked? ')", allow_stdin=False)
    reply = kc_reply(kc, msg_id, timeout=10)
    assert time.monotonic() - t0 < 10
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "StdinNotImplementedError"
    with pytest.raises(Exception):
        kc.get_stdin_msg(timeout=0.3)


# ---------------------------------------------------------------- errors

def test_one_error_message_and_no_traceback_on_stderr(raw):
    reply, out = raw.run("def f():\n    return 1 / 0\nf()")
    c = reply["content"]
    assert c["status"] == "error" and c["ename"] == "ZeroDivisionError"
    assert isinstance(c["evalue"], str) and isinstance(c["traceback"], list) and c["traceback"]
    assert isinstance(c["execution_count"], int)
    errors = [m for m in out if m["msg_type"] == "error"]
    assert len(errors) == 1, [m["msg_type"] for m in out]
    assert errors[0]["content"]["ename"] == "ZeroDivisionError"
    stderr = "".join(m["content"]["text"] for m in out
                     if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert "Traceback" not in stderr and "ZeroDivisionError" not in stderr, stderr


# ---------------------------------------------------------------- lifecycle

def test_starting_published_once_per_interpreter_start(daemon, session):
    kc = session
    name = session_name(kc.connection_file)
    run_cell(kc, "gone_after_restart = 1", timeout=TIMEOUT)
    kc_drain(kc)
    p = daemon.cli("restart", name)
    assert p.returncode == 0, p.stderr
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while not any(m["msg_type"] == "status" and m["content"]["execution_state"] == "starting"
                  for m in seen):
        seen.append(kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01)))
    reply, _ = run_cell(kc, "'gone_after_restart' in dir()", timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok"
    kc_drain(kc)
    # Nothing more may come: collect what is left.
    while True:
        try:
            seen.append(kc.get_iopub_msg(timeout=0.3))
        except Exception:
            break
    starting = [m for m in seen if m["msg_type"] == "status"
                and m["content"]["execution_state"] == "starting"]
    assert len(starting) == 1, starting


def test_restart_forgets_state(daemon, session):
    kc = session
    name = session_name(kc.connection_file)
    run_cell(kc, "forgotten = 1", timeout=TIMEOUT)
    assert daemon.cli("restart", name).returncode == 0
    reply, out = run_cell(kc, "'forgotten' in dir()", timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok"
    assert [m["content"]["data"]["text/plain"] for m in out
            if m["msg_type"] == "execute_result"] == ["False"]


def test_shutdown_request_ends_the_session(daemon):
    path = daemon.new()
    name = session_name(path)
    kc = daemon.client(path)
    try:
        msg_id = kc.shutdown(restart=False)
        reply = kc_reply(kc, msg_id, "control")
        assert reply["msg_type"] == "shutdown_reply"
        assert reply["content"]["status"] == "ok"
        assert reply["content"]["restart"] is False
        poll(lambda: name not in ls(daemon), 10, "the session to leave ls")
        poll(lambda: not os.path.exists(path), 10, "the connection file to go")
    finally:
        kc.stop_channels()
        daemon.cli("kill", name)


def test_shutdown_request_with_restart(daemon):
    path = daemon.new()
    name = session_name(path)
    kc = daemon.client(path)
    try:
        run_cell(kc, "before = 1", timeout=TIMEOUT)
        kc_drain(kc)
        msg_id = kc.shutdown(restart=True)
        reply = kc_reply(kc, msg_id, "control")
        assert reply["content"]["status"] == "ok"
        assert reply["content"]["restart"] is True
        deadline = time.monotonic() + TIMEOUT
        while True:
            m = kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01))
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "starting":
                break
        r, out = run_cell(kc, "'before' in dir()", timeout=TIMEOUT)
        assert r["content"]["status"] == "ok"
        assert [m["content"]["data"]["text/plain"] for m in out
                if m["msg_type"] == "execute_result"] == ["False"]
        assert name in ls(daemon)
        assert os.path.exists(path)
    finally:
        kc.stop_channels()
        daemon.cli("kill", name)


def test_interpreter_death_is_reported(session):
    kc = session
    run_cell(kc, "lost = 1", timeout=TIMEOUT)
    kc_drain(kc)
    msg_id = kc.execute("import os\nos.kill(os.getpid(), 9)")
    reply = kc_reply(kc, msg_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "SessionKilled"
    assert reply["metadata"]["cellblock"]["state_preserved"] is False
    out = kc_iopub_until_idle(kc, msg_id)
    errors = [m for m in out if m["msg_type"] == "error"]
    assert len(errors) == 1 and errors[0]["content"]["ename"] == "SessionKilled"
    deadline = time.monotonic() + TIMEOUT
    while True:
        m = kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01))
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "starting":
            break
    r, out = run_cell(kc, "'lost' in dir()", timeout=TIMEOUT)
    assert r["content"]["status"] == "ok"
    assert [m["content"]["data"]["text/plain"] for m in out
            if m["msg_type"] == "execute_result"] == ["False"]


# ---------------------------------------------------------------- comms

ECHO_TARGET = """
def _echo_target(comm, open_msg):
    def _on_msg(msg):
        comm.send({'echo': msg['content']['data']})
    comm.on_msg(_on_msg)
    comm.send({'opened': open_msg['content']['data']})
get_ipython().kernel.comm_manager.register_target('echo', _echo_target)
"""


def test_comm_info_and_client_comm_to_registered_target(raw):
    h = raw.send("shell", "comm_info_request", {})
    r = raw.reply(h)
    assert r["content"]["status"] == "ok" and r["content"]["comms"] == {}
    reply, _ = raw.run(ECHO_TARGET)
    assert reply["content"]["status"] == "ok", reply["content"]
    comm_id = uuid.uuid4().hex
    op = raw.send("shell", "comm_open", {"comm_id": comm_id, "target_name": "echo",
                                         "data": {"hello": 1}})
    msgs = raw.iopub_until_idle(op)
    assert [m["msg_type"] for m in msgs][0] == "status"
    opened = [m for m in msgs if m["msg_type"] == "comm_msg"]
    assert [m["content"] for m in opened] == [{"comm_id": comm_id, "data": {"opened": {"hello": 1}}}]
    assert not [m for m in msgs if m["msg_type"] == "comm_close"]
    cm = raw.send("shell", "comm_msg", {"comm_id": comm_id, "data": {"x": [1, 2]}})
    msgs = raw.iopub_until_idle(cm)
    echoes = [m for m in msgs if m["msg_type"] == "comm_msg"]
    assert len(echoes) == 1
    assert echoes[0]["content"]["comm_id"] == comm_id
    assert echoes[0]["content"]["data"] == {"echo": {"x": [1, 2]}}
    assert echoes[0]["parent_header"] == cm
    h = raw.send("shell", "comm_info_request", {"target_name": "echo"})
    r = raw.reply(h)
    assert r["content"]["comms"] == {comm_id: {"target_name": "echo"}}


def test_comm_open_to_unknown_target_is_closed(raw):
    comm_id = uuid.uuid4().hex
    op = raw.send("shell", "comm_open", {"comm_id": comm_id, "target_name": "nobody-home",
                                         "data": {}})
    msgs = raw.iopub_until_idle(op)
    closes = [m for m in msgs if m["msg_type"] == "comm_close"]
    assert len(closes) == 1 and closes[0]["content"]["comm_id"] == comm_id


def test_kernel_initiated_comm(raw):
    h = raw.execute("c = get_ipython().kernel.Comm(target_name='from_kernel', "
                    "data={'k': 'v'})\nc.send({'n': 1})\nc.comm_id")
    reply = raw.reply(h)
    assert reply["content"]["status"] == "ok", reply["content"]
    msgs = raw.iopub_until_idle(h)
    opens = [m for m in msgs if m["msg_type"] == "comm_open"]
    assert len(opens) == 1
    c = opens[0]["content"]
    assert c["target_name"] == "from_kernel" and c["data"] == {"k": "v"}
    assert text_of(msgs) == repr(c["comm_id"])
    sends = [m for m in msgs if m["msg_type"] == "comm_msg"]
    assert [m["content"] for m in sends] == [{"comm_id": c["comm_id"], "data": {"n": 1}}]
    assert opens[0]["parent_header"] == h
    # The same API is importable from the runner.
    reply, out = raw.run("from cellblock_runner import Comm\n"
                         "Comm(target_name='second').target_name")
    assert reply["content"]["status"] == "ok", reply["content"]
    assert [m["content"]["target_name"] for m in out if m["msg_type"] == "comm_open"] == ["second"]


# ---------------------------------------------------------------- bad input

def count_lines(daemon, pattern):
    rx = re.compile(pattern, re.I)
    return sum(1 for line in daemon.log_text().splitlines() if rx.search(line))


def bad_frames(raw, kind):
    """Frames of one bad message of `kind`. Where it has code, the code
    would set a marker variable if it ever ran."""
    code = {"code": "ran_%s = 1" % kind, "silent": False, "store_history": True,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
    header, frames = raw.build("execute_request", code)
    if kind == "bad_signature":
        frames[1] = raw.sign(frames[2:6])[:-4] + b"0000"
        if frames[1] == raw.sign(frames[2:6]):
            frames[1] = b"1" * 64
    elif kind == "unsigned":
        frames[1] = b""
    elif kind == "no_delimiter":
        frames = frames[1:]
    elif kind == "three_frames":
        frames = frames[:3]
    elif kind == "header_not_json":
        parts = [b'{"msg_id": "x", "msg_type": "execute_request", '] + frames[3:6]
        frames = [DELIM, raw.sign(parts)] + parts
    elif kind == "content_not_object":
        parts = frames[2:5] + [b'["ran_content_not_object = 1"]']
        frames = [DELIM, raw.sign(parts)] + parts
    else:
        raise AssertionError(kind)
    return frames


BAD_KINDS = {
    "bad_signature": r"dropped message: .*bad signature",
    "unsigned": r"dropped message: .*signature",
    "no_delimiter": r"dropped message: .*delimiter",
    "three_frames": r"dropped message: .*frames",
    "header_not_json": r"dropped message: .*header",
    "content_not_object": r"dropped message: .*content",
}


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_bad_message_is_dropped_and_logged(daemon, raw, kind):
    before = count_lines(daemon, BAD_KINDS[kind])
    raw.socks["shell"].send_multipart(bad_frames(raw, kind))
    # Same socket, so the daemon has read the bad one before this one.
    reply, out = raw.run("'ran_%s' in dir(), 6 * 7" % kind)
    assert reply["content"]["status"] == "ok"
    assert text_of(out) == "(False, 42)"
    assert daemon.alive()
    poll(lambda: count_lines(daemon, BAD_KINDS[kind]) > before, 5,
         "a log line naming the reason (%s)" % BAD_KINDS[kind])
    # Dropped means no reply and no iopub for it either.
    raw._pump(0.2)
    assert raw.received["shell"] == [] and raw.received["control"] == []


def test_replayed_message_is_dropped_and_logged(daemon, raw):
    raw.run("replays = []")
    header, frames = raw.build("execute_request", {
        "code": "replays.append(1)", "silent": False, "store_history": True,
        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    raw.socks["shell"].send_multipart(frames)
    assert raw.reply(header)["content"]["status"] == "ok"
    raw.iopub_until_idle(header)
    before = count_lines(daemon, r"dropped message: .*replayed")
    raw.socks["shell"].send_multipart(frames)       # the identical message again
    reply, out = raw.run("len(replays)")
    assert text_of(out) == "1"
    poll(lambda: count_lines(daemon, r"dropped message: .*replayed") > before, 5,
         "a log line saying 'replayed'")
    assert not [m for m in raw.received["shell"] if m["parent_header"] == header]


def test_garbage_flood_is_survived(daemon, raw):
    rng = random.Random(20240611)
    before = count_lines(daemon, r"dropped message")
    pieces = [DELIM, b"", b"{}", b"[]", b"null", b"{\"msg_type\": \"execute_request\"}",
              b"0" * 64]
    channels = ["shell", "control", "stdin"]
    for i in range(1000):
        frames = []
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.3:
                frames.append(rng.choice(pieces))
            else:
                frames.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80))))
        raw.socks[channels[i % 3]].send_multipart(frames)
    for ch in ("shell", "control"):
        h = raw.send(ch, "kernel_info_request")
        assert raw.reply(h, ch)["content"]["status"] == "ok"
    reply, out = raw.run("sum(range(10))")
    assert reply["content"]["status"] == "ok" and text_of(out) == "45"
    assert daemon.alive()
    poll(lambda: count_lines(daemon, r"dropped message") > before, 5, "dropped-message log lines")


@pytest.mark.parametrize("layout", ["one_frame", "many_frames"])
def test_oversized_message_is_dropped(layout):
    # -v: the daemon logs a connection libzmq closed for a frame over the
    # limit (docs/PROTOCOL.md); without it only the decoder's refusal is.
    d = Daemon(["--max-message", "1M", "-v"])
    r = None
    try:
        path = d.new()
        r = Raw(path)
        r.wait_ready()
        big = "x" * (2 * 1024 * 1024)
        content = {"code": "ran_big = 1  # " + (big if layout == "one_frame" else ""),
                   "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        header, frames = r.build("execute_request", content)
        if layout == "many_frames":
            # Each frame under the limit, the message as a whole twice over it.
            frames += [b"y" * (512 * 1024)] * 4
        too_big = r"exceed|too large|too big|limit|max"
        before = count_lines(d, too_big)
        r.socks["shell"].send_multipart(frames)
        # Whatever the transport did to the raw client, a fresh one works.
        kc = d.client(path)
        try:
            reply, out = run_cell(kc, "'ran_big' in dir()", timeout=TIMEOUT)
            assert reply["content"]["status"] == "ok"
            assert [m["content"]["data"]["text/plain"] for m in out
                    if m["msg_type"] == "execute_result"] == ["False"]
        finally:
            kc.stop_channels()
        assert d.alive()
        poll(lambda: count_lines(d, too_big) > before, 5,
             "a log line saying the message was too large")
    finally:
        if r is not None:
            r.close()
        d.stop()
