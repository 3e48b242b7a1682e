"""cellblock as an MCP server, driven by the official MCP TypeScript SDK
(@modelcontextprotocol/sdk, pinned in tests/js/package-lock.json): its
Client over StdioClientTransport (`cellblock mcp`) and over
StreamableHTTPClientTransport (/mcp on the HTTP front), against a real
daemon and real sandboxed interpreters. Raw JSON-RPC abuse is
tests/test_mcp_raw.py.
"""
import base64
import json
import os
import shutil
import subprocess
import uuid

import pytest

from cbtest import CELLBLOCK, Daemon, ROOT, poll

JS = os.path.join(ROOT, "tests", "js")
CLIENT = os.path.join(JS, "mcp-client.mjs")
NODE = shutil.which("node") or "/usr/bin/node"
STEP_TIMEOUT = 120

TOOLS = {"run_code", "create_session", "list_sessions", "write_file", "read_file",
         "list_files", "interrupt", "restart", "fork_session", "checkpoint",
         "delete_session"}



class Target:
    """Where the SDK client connects: `cellblock mcp` or an /mcp URL."""

    def __init__(self, kind, env, url=None, token=None):
        self.kind, self.env, self.url, self.token = kind, env, url, token

    def run(self, steps, timeout=STEP_TIMEOUT, token=None):
        argv = ([NODE, CLIENT, "stdio", CELLBLOCK] if self.kind == "stdio" else
                [NODE, CLIENT, "http", self.url, token or self.token])
        p = subprocess.run(argv, input=json.dumps(steps), capture_output=True, text=True,
                           env=self.env, timeout=timeout, cwd=JS)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def call(self, steps, **kw):
        """Only the tools/call outcomes, in order."""
        return self.run(steps, **kw)["steps"]


def stdio_target():
    d = Daemon()
    return d, Target("stdio", d.env())


def http_target():
    from gwtest import Gateway
    gw = Gateway()
    return gw, Target("http", dict(os.environ), url=gw.url + "/mcp", token=gw.token("mcp"))


@pytest.fixture(scope="module", params=["stdio", "http"])
def target(request):
    sdk = os.path.join(JS, "node_modules", "@modelcontextprotocol", "sdk")
    assert os.path.isdir(sdk), "the MCP SDK is not installed: make deps"
    d, t = stdio_target() if request.param == "stdio" else http_target()
    yield t
    d.stop()


def run(code, session=None, **kw):
    args = {"code": code}
    if session:
        args["session"] = session
    return {"tool": "run_code", "args": args, **kw}


def texts(result):
    return "\n".join(b["text"] for b in result["content"] if b["type"] == "text")


def ok(step):
    assert "error" not in step, step
    assert not step["result"].get("isError"), step["result"]
    return step["result"]


# ------------------------------------------------------------------ tests

def test_initialize_and_every_schema(target):
    r = target.run([{"list": True}])
    assert r["server"]["name"] == "cellblock"
    assert "tools" in r["capabilities"] and "logging" in r["capabilities"]
    tools = {t["name"]: t for t in r["steps"][0]["tools"]}   # each compiled by ajv
    assert set(tools) == TOOLS
    for t in tools.values():
        assert len(t["description"]) > 40, t["name"]
        assert t["inputSchema"]["type"] == "object"
        assert t["outputSchema"] and t["outputSchema"]["type"] == "object"
    assert tools["run_code"]["inputSchema"]["required"] == ["code"]


def test_ten_turn_analysis(target):
    """One default session holds a DataFrame across ten calls; a plot
    comes back as an image block whose bytes are a PNG."""
    steps = target.call([
        run("import pandas as pd\nimport numpy as np"),
        run("df = pd.DataFrame({'g': list('abcabcabca'), 'v': range(10)})"),
        run("df.shape"),
        run("agg = df.groupby('g')['v'].sum()\nagg"),
        run("print(agg.to_dict())"),
        run("total = int(agg.sum())"),
        run("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt"),
        run("fig, ax = plt.subplots()\nagg.plot.bar(ax=ax)\nfig.savefig('agg.png')"),
        run("from IPython.display import Image, display\n"
            "display(Image(filename='agg.png'))"),
        run("total + len(df)"),
    ])
    results = [ok(s) for s in steps]
    assert "(10, 2)" in texts(results[2])
    assert "{'a': 18, 'b': 12, 'c': 15}" in texts(results[4])
    images = [b for b in results[8]["content"] if b["type"] == "image"]
    assert len(images) == 1 and images[0]["mimeType"] == "image/png"
    assert base64.b64decode(images[0]["data"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "55" in texts(results[9])
    for r in results:
        assert r["structuredContent"]["status"] == "ok"


def test_error_is_a_typed_result(target):
    step = target.call([run("{}['missing']")])[0]
    assert "error" not in step
    res = step["result"]
    assert res["isError"] is True
    assert "KeyError" in texts(res)
    assert res["structuredContent"]["status"] == "error"
    assert res["structuredContent"]["error"]["ename"] == "KeyError"


def test_timeout_then_working(target):
    steps = target.call([run("x = 7"),
                         {"tool": "run_code", "args": {"code": "import time\ntime.sleep(60)",
                                                       "timeout": 1}},
                         run("x * 6")])
    res = steps[1]["result"]
    assert res["isError"] is True and res["structuredContent"]["status"] == "timeout"
    assert "42" in texts(ok(steps[2]))


def test_cancelled_long_cell_then_working(target):
    """The SDK cancels after three progress notifications: the cell is
    interrupted, the session and its variables stay."""
    steps = target.call([
        run("kept = 'still here'"),
        run("import time\nfor i in range(600):\n    print('tick', i, flush=True)\n"
            "    time.sleep(0.1)", abortAfterProgress=3),
        run("print(kept)"),
        run("print(_interrupted if '_interrupted' in dir() else 'fine')"),
    ])
    assert "error" in steps[1]          # the SDK rejects an aborted call
    assert len(steps[1]["progress"]) >= 3
    assert "still here" in texts(ok(steps[2]))
    ok(steps[3])


def test_progress_before_result(target):
    step = target.call([run("import time\nfor i in range(3):\n    print('line', i, flush=True)\n"
                            "    time.sleep(0.5)", progress=True)])[0]
    ok(step)
    prog = step["progress"]
    assert prog, "no progress notifications"
    assert all(p["at"] <= step["doneAt"] for p in prog)
    seen = " ".join(p.get("message", "") for p in prog)
    assert "line 0" in seen and "line 2" in seen
    assert [p["progress"] for p in prog] == sorted(p["progress"] for p in prog)


def test_file_write_read_round_trip(target):
    name = "mcp-files-%s" % uuid.uuid4().hex[:6]
    blob = bytes(range(256)) * 4
    steps = target.call([
        {"tool": "create_session", "args": {"name": name}},
        {"tool": "write_file", "args": {"session": name, "path": "data/in.csv",
                                        "content": "a,b\n1,2\n3,4\n"}},
        {"tool": "write_file", "args": {"session": name, "path": "blob.bin", "encoding": "base64",
                                        "content": base64.b64encode(blob).decode()}},
        run("import pandas as pd\nd = pd.read_csv('data/in.csv')\n"
            "d['c'] = d.a + d.b\nd.to_csv('out.csv', index=False)\n"
            "print(open('blob.bin', 'rb').read() == bytes(range(256)) * 4)", session=name),
        {"tool": "read_file", "args": {"session": name, "path": "out.csv"}},
        {"tool": "read_file", "args": {"session": name, "path": "blob.bin"}},
        {"tool": "list_files", "args": {"session": name}},
        {"tool": "read_file", "args": {"session": name, "path": "../../etc/passwd"}},
        {"tool": "delete_session", "args": {"session": name}},
    ])
    for s in steps[:7]:
        ok(s)
    assert "True" in texts(steps[3]["result"])
    assert steps[4]["result"]["structuredContent"]["content"] == "a,b,c\n1,2,3\n3,4,7\n"
    got = steps[5]["result"]["structuredContent"]
    assert got["encoding"] == "base64" and base64.b64decode(got["content"]) == blob
    names = {e["name"] for e in steps[6]["result"]["structuredContent"]["entries"]}
    assert {"data", "blob.bin", "out.csv"} <= names
    assert steps[7]["result"]["isError"] is True
    assert texts(steps[7]["result"]).startswith("BadPath")


def test_session_tools(target):
    name = "mcp-ops-%s" % uuid.uuid4().hex[:6]
    copy = name + "-copy"
    steps = target.call([
        {"tool": "create_session", "args": {"name": name, "memory": "512M",
                                            "idle_timeout": 600}},
        run("v = 41", session=name),
        {"tool": "checkpoint", "args": {"session": name}},
        {"tool": "fork_session", "args": {"session": name, "new": copy}},
        run("v + 1", session=copy),
        {"tool": "restart", "args": {"session": name}},
        run("'v' in globals()", session=name),
        {"tool": "interrupt", "args": {"session": name}},
        {"tool": "list_sessions"},
        {"tool": "delete_session", "args": {"session": copy}},
        {"tool": "delete_session", "args": {"session": name}},
        {"tool": "interrupt", "args": {"session": name}},
    ])
    for s in steps[:11]:
        ok(s)
    assert steps[0]["result"]["structuredContent"]["session"]["limits"]["idle_timeout"] == 600
    assert "42" in texts(steps[4]["result"])
    assert "False" in texts(steps[6]["result"])
    listed = {s["name"] for s in steps[8]["result"]["structuredContent"]["sessions"]}
    assert {name, copy} <= listed
    assert steps[11]["result"]["isError"] is True
    assert texts(steps[11]["result"]).startswith("NoSuchSession")


def test_unknown_tool_and_bad_arguments(target):
    steps = target.call([{"tool": "rm_rf", "args": {}},
                         {"tool": "run_code", "args": {"code": 3}},
                         run("1")])
    assert steps[0]["error"]["code"] == -32602 and "rm_rf" in steps[0]["error"]["message"]
    assert steps[1]["error"]["code"] == -32602 and "code" in steps[1]["error"]["message"]
    ok(steps[2])


def test_first_reply_after_resume_says_what_came_back(target):
    """A session that hibernated (idle timeout 1 s) resumes on the next
    call, whose reply begins with what was restored."""
    name = "mcp-resume-%s" % uuid.uuid4().hex[:6]
    steps = target.call([
        {"tool": "create_session", "args": {"name": name, "idle_timeout": 1}},
        run("import pandas as pd\nframe = pd.DataFrame({'v': [1, 2, 3]})", session=name),
    ])
    for s in steps:
        ok(s)
    def hibernated():
        listed = ok(target.call([{"tool": "list_sessions"}])[0])["structuredContent"]
        return {s["name"]: s["state"] for s in listed["sessions"]}[name] == "hibernated"
    poll(hibernated, 60, "the session to hibernate")
    steps = target.call([run("int(frame.v.sum())", session=name),
                         {"tool": "delete_session", "args": {"session": name}}])
    first = ok(steps[0])
    assert first["content"][0]["text"].startswith("The session was resumed from its checkpoint")
    assert "frame" in first["content"][0]["text"]
    assert first["structuredContent"]["resumed"]["restored"] is True
    assert "6" in texts(first)
    ok(steps[1])


def test_two_tokens_isolated_over_http():
    """Two owners' tokens: neither sees nor touches the other's sessions,
    and one's Mcp-Session-Id is nothing to the other."""
    from gwtest import Gateway
    gw = Gateway()
    try:
        url = gw.url + "/mcp"
        mine = Target("http", dict(os.environ), url=url, token=gw.token("root"))
        theirs = Target("http", dict(os.environ), url=url, token=gw.token("nobody", uid=65534))
        a = mine.call([{"tool": "create_session", "args": {"name": "iso-root"}},
                       run("secret = 'root only'", session="iso-root")])
        for s in a:
            ok(s)
        b = theirs.call([{"tool": "list_sessions"},
                         run("print(secret)", session="iso-root"),
                         {"tool": "read_file", "args": {"session": "iso-root", "path": "x"}},
                         {"tool": "delete_session", "args": {"session": "iso-root"}},
                         {"tool": "create_session", "args": {"name": "iso-nobody"}},
                         run("print('mine')", session="iso-nobody")])
        assert "iso-root" not in {s["name"] for s in
                                  ok(b[0])["structuredContent"]["sessions"]}
        for s in b[1:4]:
            assert s["result"]["isError"] is True
            assert texts(s["result"]).startswith("PermissionDenied"), s
        assert "mine" in texts(ok(b[5]))
        again = mine.call([run("print(secret)", session="iso-root"), {"tool": "list_sessions"}])
        assert "root only" in texts(ok(again[0]))
        # root sees all (as everywhere), so list both; nobody saw only its own
        assert {"iso-root", "iso-nobody"} <= {s["name"] for s in
                                              ok(again[1])["structuredContent"]["sessions"]}
    finally:
        gw.stop()
