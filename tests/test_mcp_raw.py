"""Raw JSON-RPC against `cellblock mcp` (stdio): malformed frames, unknown
methods, oversized messages, unsupported revisions, bad arguments. Each
gets a clear JSON-RPC error and the server keeps serving.

A real daemon and the real CLI; the SDK-client tests are tests/test_mcp.py.
"""
import json
import os
import select
import subprocess
import time

import pytest

from cbtest import CELLBLOCK, Daemon, c_define

MESSAGE_MAX = c_define("server/mcp.h", "MCP_MESSAGE_MAX")
TIMEOUT = 30


class Stdio:
    """`cellblock mcp` as an MCP host runs it: lines in, lines out."""

    def __init__(self, daemon):
        self.p = subprocess.Popen([CELLBLOCK, "mcp"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=daemon.env())
        self.buf = b""
        self.next_id = 0
        self.stray = []     # what request() read past

    def send_raw(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def send(self, msg):
        self.send_raw(json.dumps(msg).encode() + b"\n")

    def recv(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            assert left > 0, "no message from cellblock mcp"
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                assert chunk, "cellblock mcp closed stdout: %s" % self.p.stderr.read()
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, method, params=None, **kw):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        while True:     # notifications, other calls' answers may come first
            r = self.recv(**kw)
            if r.get("id") == self.next_id:
                return r
            self.stray.append(r)

    def initialize(self, version="2025-11-25"):
        r = self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                        "clientInfo": {"name": "raw", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    d.stop()


@pytest.fixture
def mcp(daemon):
    s = Stdio(daemon)
    yield s
    s.close()


def alive(mcp):
    r = mcp.request("ping")
    assert r == {"jsonrpc": "2.0", "id": mcp.next_id, "result": {}}


def test_initialize_negotiates(mcp):
    r = mcp.initialize("2025-03-26")["result"]
    assert r["protocolVersion"] == "2025-03-26"
    assert r["serverInfo"]["name"] == "cellblock"
    assert "tools" in r["capabilities"] and "logging" in r["capabilities"]


def test_unsupported_version_offers_ours(mcp):
    r = mcp.initialize("1999-01-01")["result"]
    # The spec: a version we speak (our newest); the client decides.
    assert r["protocolVersion"] == "2025-11-25"
    alive(mcp)


def test_version_not_a_string(mcp):
    r = mcp.request("initialize", {"protocolVersion": 7, "capabilities": {}})
    assert r["error"]["code"] == -32602
    assert "protocolVersion" in r["error"]["message"]
    alive(mcp)


def test_malformed_frames(mcp):
    mcp.initialize()
    for junk in (b"{not json\n", b"\xff\xfe\x00garbage\n", b"[1, 2\n"):
        mcp.send_raw(junk)
        r = mcp.recv()
        assert r["id"] is None and r["error"]["code"] == -32700, r
    for bad, code in ((42, -32600), ("str", -32600), ({"id": 1, "method": "ping"}, -32600),
                      ({"jsonrpc": "2.0", "id": 5}, -32600),
                      ({"jsonrpc": "2.0", "id": 6, "method": "ping", "params": [1]}, -32602)):
        mcp.send(bad)
        r = mcp.recv()
        assert r["error"]["code"] == code, (bad, r)
    alive(mcp)


def test_unknown_method(mcp):
    mcp.initialize()
    r = mcp.request("resources/frobnicate")
    assert r["error"]["code"] == -32601
    assert "resources/frobnicate" in r["error"]["message"]
    # An unknown notification is ignored: nothing comes back for it.
    mcp.send({"jsonrpc": "2.0", "method": "notifications/whatever"})
    alive(mcp)


def test_before_initialize(mcp):
    r = mcp.request("tools/list")
    assert r["error"]["code"] == -32002
    alive(mcp)


def test_oversized_message(mcp):
    mcp.initialize()
    big = json.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                      "params": {"name": "run_code",
                                 "arguments": {"code": "x" * (MESSAGE_MAX + 10)}}})
    mcp.send_raw(big.encode() + b"\n")
    r = mcp.recv()
    assert r["error"]["code"] == -32600 and "too large" in r["error"]["message"]
    alive(mcp)


def test_unknown_tool_and_bad_arguments(mcp):
    mcp.initialize()
    r = mcp.request("tools/call", {"name": "format_disk", "arguments": {}})
    assert r["error"]["code"] == -32602 and "format_disk" in r["error"]["message"]
    r = mcp.request("tools/call", {"name": "run_code", "arguments": {}})
    assert r["error"]["code"] == -32602 and "code is required" in r["error"]["message"]
    r = mcp.request("tools/call", {"name": "run_code", "arguments": {"code": 5}})
    assert r["error"]["code"] == -32602 and "arguments.code" in r["error"]["message"]
    r = mcp.request("tools/call", {"name": "run_code",
                                   "arguments": {"code": "1", "colour": "red"}})
    assert r["error"]["code"] == -32602 and "colour" in r["error"]["message"]
    alive(mcp)


def test_other_owners_session(daemon, mcp):
    """A session of another uid is an isError result naming the kind."""
    mcp.initialize()
    r = mcp.request("tools/call", {"name": "interrupt", "arguments": {"session": "nosuch"}})
    res = r["result"]
    assert res["isError"] is True and res["content"][0]["text"].startswith("NoSuchSession")
    alive(mcp)


def test_batch(mcp):
    mcp.initialize("2025-03-26")
    mcp.send([{"jsonrpc": "2.0", "id": "a", "method": "ping"},
              {"jsonrpc": "2.0", "id": "b", "method": "ping"}])
    ids = {mcp.recv()["id"], mcp.recv()["id"]}
    assert ids == {"a", "b"}


def test_session_tools(mcp):
    mcp.initialize()
    r = mcp.request("tools/call", {"name": "create_session",
                                   "arguments": {"name": "raw-one", "memory": "256M"}})
    assert "isError" not in r["result"], r
    assert r["result"]["structuredContent"]["session"]["name"] == "raw-one"
    r = mcp.request("tools/call", {"name": "list_sessions", "arguments": {}})
    names = [s["name"] for s in r["result"]["structuredContent"]["sessions"]]
    assert "raw-one" in names
    r = mcp.request("tools/call", {"name": "delete_session", "arguments": {"session": "raw-one"}})
    assert "isError" not in r["result"], r
    r = mcp.request("tools/call", {"name": "list_sessions", "arguments": {}})
    assert "raw-one" not in [s["name"] for s in r["result"]["structuredContent"]["sessions"]]


def call(mcp, name, args, **kw):
    return mcp.request("tools/call", {"name": name, "arguments": args}, **kw)


def test_calls_in_flight_are_bounded(mcp):
    """MCP_CALLS_MAX calls may wait on one connection; one more is refused
    at once (-32000), and the connection serves on."""
    limit = c_define("server/mcp.h", "MCP_CALLS_MAX")
    mcp.initialize()
    r = call(mcp, "create_session", {"name": "raw-busy"})
    assert "isError" not in r["result"], r
    for i in range(limit):
        mcp.send({"jsonrpc": "2.0", "id": "slow-%d" % i, "method": "tools/call",
                  "params": {"name": "run_code",
                             "arguments": {"session": "raw-busy",
                                           "code": "import time; time.sleep(600)"}}})
    r = call(mcp, "run_code", {"session": "raw-busy", "code": "1"})
    assert r["error"]["code"] == -32000 and "in flight" in r["error"]["message"]
    alive(mcp)
    mcp.send({"jsonrpc": "2.0", "id": "del", "method": "tools/call",
              "params": {"name": "delete_session", "arguments": {"session": "raw-busy"}}})
    answers = {m["id"]: m for m in mcp.stray if "id" in m}
    while len(answers) < limit + 1:     # every queued call ends with its session
        m = mcp.recv()
        answers[m["id"]] = m
    assert "isError" not in answers.pop("del")["result"]
    assert sorted(answers) == sorted("slow-%d" % i for i in range(limit))
    assert all(m["result"]["isError"] is True for m in answers.values())
    alive(mcp)


def test_images_are_capped(mcp):
    """Twelve PNGs in one result: eight image blocks, the rest a note."""
    cap = c_define("server/mcp-run.c", "MCP_RUN_IMAGES_MAX")
    mcp.initialize()
    code = ("from IPython.display import Image, display\n"
            "import base64\n"
            "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
            "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==')\n"
            "for i in range(12):\n    display(Image(data=png))")
    r = call(mcp, "run_code", {"code": code})
    res = r["result"]
    assert "isError" not in res or res["isError"] is False, res
    images = [b for b in res["content"] if b["type"] == "image"]
    assert len(images) == cap
    notes = [b for b in res["content"] if b["type"] == "text" and "omitted" in b["text"]]
    assert len(notes) == 12 - cap
    # structuredContent does not carry the bytes a second time
    for result in res["structuredContent"]["results"]:
        assert "in content" in result["data"]["image/png"]


def test_audit_says_mcp(daemon, mcp):
    mcp.initialize()
    r = call(mcp, "create_session", {"name": "raw-audit"})
    assert "isError" not in r["result"], r
    r = call(mcp, "run_code", {"session": "raw-audit", "code": "'audited'"})
    assert r["result"]["structuredContent"]["status"] == "ok"
    p = daemon.cli("audit", "--json", "raw-audit", timeout=30)
    assert p.returncode == 0, p.stderr
    events = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    kinds = {e.get("client") for e in events if e.get("event") in ("execute", "exec_start")
             or "client" in e}
    assert "mcp" in kinds, events
    call(mcp, "delete_session", {"session": "raw-audit"})


def test_logging_level(mcp):
    """The default session's creation is logged at info; setLevel warning
    silences it; a bad level is -32602."""
    mcp.initialize()
    r = mcp.request("logging/setLevel", {"level": "loud"})
    assert r["error"]["code"] == -32602
    r = call(mcp, "run_code", {"code": "1"})
    logs = [m for m in mcp.stray if m.get("method") == "notifications/message"]
    assert logs and logs[0]["params"]["level"] == "info"
    assert logs[0]["params"]["data"]["session"]
    r = call(mcp, "delete_session", {})
    assert "isError" not in r["result"], r
    mcp.stray.clear()
    assert mcp.request("logging/setLevel", {"level": "warning"})["result"] == {}
    call(mcp, "run_code", {"code": "1"})
    assert not [m for m in mcp.stray if m.get("method") == "notifications/message"]


class _Env:
    def __init__(self, state):
        self.state = state

    def env(self):
        return dict(os.environ, CELLBLOCK_STATE_DIR=self.state)


def test_cellblock_mcp_starts_the_daemon(tmp_path):
    """As every CLI command: no daemon, `cellblock mcp` starts one and
    serves through it; stdout carries only MCP messages."""
    from test_cli import daemons_for, stop_daemons
    state = str(tmp_path / "state")
    assert daemons_for(state) == []
    s = Stdio(_Env(state))
    try:
        r = s.initialize()
        assert r["result"]["serverInfo"]["name"] == "cellblock"
        assert len(daemons_for(state)) == 1
        r = call(s, "run_code", {"code": "2 ** 10"})
        assert "1024" in json.dumps(r["result"]["content"])
    finally:
        s.close()
        stop_daemons(state)


def test_stdin_closed_ends_the_default_session(daemon):
    s = Stdio(daemon)
    s.initialize()
    r = call(s, "run_code", {"code": "1"})
    name = r["result"]["structuredContent"]["session"]
    s.close()
    assert s.p.returncode == 0
    from cbtest import poll
    poll(lambda: name not in {x["name"] for x in daemon.control({"cmd": "ls"})["sessions"]},
         15, "the default session to end")


def test_html_result_is_a_resource(mcp):
    mcp.initialize()
    r = call(mcp, "run_code", {"code": "from IPython.display import HTML\nHTML('<b>bold</b>')"})
    res = r["result"]
    blocks = [b for b in res["content"] if b["type"] == "resource"]
    assert blocks and blocks[0]["resource"]["mimeType"] == "text/html"
    assert blocks[0]["resource"]["text"] == "<b>bold</b>"


def test_quiet_cell_keeps_the_request_alive(mcp):
    """A cell that prints nothing still sends progress about once a second
    (keep-alives carry no message), so a client that resets its timeout on
    progress never gives up on it."""
    mcp.initialize()
    mcp.send({"jsonrpc": "2.0", "id": "quiet", "method": "tools/call",
              "params": {"name": "run_code", "_meta": {"progressToken": 7},
                         "arguments": {"code": "import time; time.sleep(3.5)"}}})
    progress = []
    while True:
        m = mcp.recv()
        if m.get("id") == "quiet":
            break
        if m.get("method") == "notifications/progress":
            progress.append(m["params"])
    assert "isError" not in m["result"] or not m["result"]["isError"], m
    keepalives = [p for p in progress if "message" not in p]
    assert len(keepalives) >= 2, progress
    assert all(p["progressToken"] == 7 for p in progress)
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and len(set(values)) == len(values)
