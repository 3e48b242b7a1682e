"""REST v1, the agent API (docs/AGENTS.md): every route against a real
daemon with real HTTP clients (requests, raw sockets, curl); bad input of
every kind answered with a clear error or a bounded result while the
daemon and other owners go on; streaming before the end; a client that
hangs up or never reads; upload -> pandas -> download byte for byte;
traversal and symlinks refused; two owners isolated."""
import json
import os
import socket
import subprocess
import urllib.parse

import pytest
import requests

from cbtest import ROOT, poll
from gwtest import Gateway

NOBODY = 65534
TIMEOUT = 60


class Rest:
    """REST v1 calls with one token."""

    def __init__(self, gw, token):
        self.gw = gw
        self.token = token
        self.s = requests.Session()
        self.s.headers["Authorization"] = "Bearer " + token

    def call(self, method, path, **kw):
        kw.setdefault("timeout", TIMEOUT)
        return self.s.request(method, self.gw.url + path, **kw)

    def new(self, **body):
        r = self.call("POST", "/v1/sessions", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def run(self, name, code, **kw):
        r = self.call("POST", "/v1/sessions/%s/execute" % name,
                      json={"code": code, **kw})
        assert r.status_code in (200, 429), r.text
        return r.json()

    def put(self, name, path, data):
        return self.call("PUT", "/v1/sessions/%s/files/%s" % (name, path), data=data)

    def get(self, name, path):
        return self.call("GET", "/v1/sessions/%s/files/%s" % (name, path))

    def close(self):
        self.s.close()


def main_text(c):
    for r in c["results"]:
        if r["is_main_result"]:
            return r["data"]["text/plain"]
    return None


def error_of(r, status, type_=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"type", "message"}, body
    assert body["error"]["message"], body
    if type_ is not None:
        assert body["error"]["type"] == type_, body
    return body["error"]


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def rest(gw):
    a = Rest(gw, gw.token("rest-root"))
    yield a
    a.close()


@pytest.fixture(scope="module")
def other(gw):
    a = Rest(gw, gw.token("rest-nobody", uid=NOBODY))
    yield a
    a.close()


@pytest.fixture
def sess(rest):
    s = rest.new()
    yield s["name"]
    rest.call("DELETE", "/v1/sessions/" + s["name"])


# ---------------------------------------------------------------- sessions

def test_session_routes(rest):
    s = rest.new(name="rest-routes", memory="512M", cpus=1, pids=256,
                 exec_timeout=300, idle_timeout=3600)
    assert {"name", "id", "state", "limits", "created"} <= set(s), s
    assert s["name"] == "rest-routes"
    assert s["limits"]["memory"] == 512 * 1024 * 1024
    assert s["limits"]["cpus"] == 1 and s["limits"]["pids"] == 256
    assert s["limits"]["exec_timeout"] == 300
    assert s["limits"]["idle_timeout"] == 3600
    assert "connection_file" not in s
    listed = rest.call("GET", "/v1/sessions").json()["sessions"]
    assert "rest-routes" in [x["name"] for x in listed]
    got = rest.call("GET", "/v1/sessions/rest-routes").json()
    assert got["id"] == s["id"]

    c = rest.run("rest-routes", "x = 41\nx + 1")
    assert c["status"] == "ok" and main_text(c) == "42", c
    assert "born" in rest.call("GET", "/v1/sessions/rest-routes").json()
    r = rest.call("POST", "/v1/sessions/rest-routes/interrupt")
    assert r.status_code == 200 and r.json()["name"] == "rest-routes", r.text
    r = rest.call("POST", "/v1/sessions/rest-routes/checkpoint")
    assert r.status_code == 200 and r.json()["name"] == "rest-routes", r.text

    r = rest.call("POST", "/v1/sessions/rest-routes/fork", json={"name": "rest-forked"})
    assert r.status_code == 201 and r.json()["name"] == "rest-forked", r.text
    c = rest.run("rest-forked", "x")
    assert c["status"] == "ok" and main_text(c) == "41", c
    assert rest.call("GET", "/v1/sessions/rest-forked").json()["id"] != s["id"]

    r = rest.call("POST", "/v1/sessions/rest-routes/restart")
    assert r.status_code == 200, r.text
    c = rest.run("rest-routes", "'x' in globals()")
    assert main_text(c) == "False", c
    # The id is the session's for life: restarts and resumes keep it.
    assert rest.call("GET", "/v1/sessions/rest-routes").json()["id"] == s["id"]

    for name in ("rest-routes", "rest-forked"):
        r = rest.call("DELETE", "/v1/sessions/" + name)
        assert r.status_code == 200 and r.json()["state"] == "ended", r.text
        error_of(rest.call("GET", "/v1/sessions/" + name), 404, "not_found")


def test_create_refuses_bad_bodies(rest):
    error_of(rest.call("POST", "/v1/sessions", data=b"{not json"), 400, "bad_json")
    error_of(rest.call("POST", "/v1/sessions", data=b"[1, 2]"), 400, "bad_json")
    error_of(rest.call("POST", "/v1/sessions", data=os.urandom(4096)), 400)
    for body in ({"memory": "lots"}, {"memory": -1}, {"cpus": "many"},
                 {"cpus": 0}, {"name": "../x"}, {"name": 7}, {"name": ""},
                 {"colour": "blue"}, {"env": {"CELLBLOCK_X": "x"}}, {"env": "A=1"},
                 {"allow_net": [1, 2]}, {"exec_timeout": {"a": 1}}):
        e = error_of(rest.call("POST", "/v1/sessions", json=body), 400)
        assert list(body)[0] in e["message"], (body, e)
    error_of(rest.call("POST", "/v1/sessions", data=b"x" * (200 * 1024)), 413)
    s = rest.new(name="rest-taken")
    try:
        error_of(rest.call("POST", "/v1/sessions", json={"name": "rest-taken"}),
                 409, "conflict")
        error_of(rest.call("POST", "/v1/sessions/rest-taken/fork",
                           json={"name": "rest-taken"}), 409, "conflict")
        # Too long was cut to SESSION_NAME_MAX and forked under that name.
        long = "rest-fork-" + "x" * 300
        error_of(rest.call("POST", "/v1/sessions/rest-taken/fork",
                           json={"name": long}), 400)
        assert rest.call("GET", "/v1/sessions/" + long[:64]).status_code == 404
    finally:
        rest.call("DELETE", "/v1/sessions/" + s["name"])
        rest.call("DELETE", "/v1/sessions/" + "rest-fork-" + "x" * 54)


def test_unknown_sessions_and_routes(rest):
    for method, path in (("GET", "/v1/sessions/nope"),
                         ("DELETE", "/v1/sessions/nope"),
                         ("POST", "/v1/sessions/nope/interrupt"),
                         ("POST", "/v1/sessions/nope/restart"),
                         ("POST", "/v1/sessions/nope/checkpoint"),
                         ("POST", "/v1/sessions/nope/fork"),
                         ("POST", "/v1/sessions/nope/execute"),
                         ("GET", "/v1/sessions/nope/files"),
                         ("GET", "/v1/sessions/nope/files/a.txt"),
                         ("PUT", "/v1/sessions/nope/files/a.txt"),
                         ("DELETE", "/v1/sessions/nope/files/a.txt"),
                         ("GET", "/v1/executions/nope")):
        kw = {"json": {"code": "1"}} if path.endswith("execute") else {}
        if method == "PUT":
            kw = {"data": b"abc"}
        error_of(rest.call(method, path, **kw), 404, "not_found")


def test_no_token_and_front_errors(gw, rest):
    error_of(requests.get(gw.url + "/v1/sessions", timeout=TIMEOUT), 401, "unauthorized")
    error_of(requests.get(gw.url + "/v1/sessions", timeout=TIMEOUT,
                          headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    error_of(rest.call("GET", "/v1/nothing"), 404, "not_found")
    error_of(rest.call("PATCH", "/v1/sessions"), 405, "method_not_allowed")


# ---------------------------------------------------------------- execute

def test_execute_contract(rest, sess):
    c = rest.run(sess, "print('hi')\n6 * 7")
    assert c["status"] == "ok", c
    assert c["stdout"] == "hi\n" and main_text(c) == "42"
    assert c["session"] == sess and c["id"]
    assert set(c["metrics"]) >= {"wall_ms", "cpu_ms", "queued_ms"}, c
    c = rest.run(sess, "1/0")
    assert c["status"] == "error" and c["error"]["ename"] == "ZeroDivisionError", c
    assert "\x1b[" not in c["error"]["traceback"]
    c = rest.run(sess, "x = (1,\n  2 +)")
    assert c["status"] == "error" and c["error"]["ename"] == "SyntaxError", c
    assert c["error"]["line"] == 2, c
    c = rest.run(sess, "input('a? ') + input('b? ')", stdin=["x", "y"])
    assert main_text(c) == "'xy'", c
    c = rest.run(sess, "import time\nwhile True: time.sleep(0.05)", timeout=1)
    assert c["status"] == "timeout", c
    assert main_text(rest.run(sess, "6 * 7")) == "42"   # the session lives on
    got = rest.call("GET", "/v1/executions/" + c["id"]).json()
    assert got["status"] == "timeout" and got["id"] == c["id"]


def test_execute_refuses_bad_bodies(rest, sess):
    path = "/v1/sessions/%s/execute" % sess
    error_of(rest.call("POST", path, data=b"{"), 400, "bad_json")
    error_of(rest.call("POST", path, data=os.urandom(10000)), 400)
    for body in ({}, {"code": 1}, {"code": "1", "timeout": -1},
                 {"code": "1", "timeout": "soon"}, {"code": "1", "stdin": "x"},
                 {"code": "1", "stdin": [1]}, {"code": "1", "store_history": "y"},
                 {"code": "1", "language": "r"}):
        error_of(rest.call("POST", path, json=body), 400, "bad_request")
    error_of(rest.call("POST", path, json={"code": "a\u0000b"}), 400)
    error_of(rest.call("POST", path, data=b'{"code": "' + b"#" * (9 << 20) + b'"}'),
             413)
    assert main_text(rest.run(sess, "6 * 7")) == "42"


def stream(rest, name, code, accept="application/x-ndjson", **kw):
    r = rest.call("POST", "/v1/sessions/%s/execute" % name, json={"code": code, **kw},
                  headers={"Accept": accept}, stream=True)
    assert r.status_code == 200, r.text
    return r


# A cell that says it started, then waits for the test to drop a file in
# its working directory through the files API: output that arrives before
# the cell ends, shown without a clock.
WAIT_FOR_GO = """
import os, sys, time
print('started', flush=True)
for _ in range(600):
    if os.path.exists('go'):
        break
    time.sleep(0.05)
print('ended')
x = 42
"""


def test_stream_events_arrive_before_the_end(rest, sess):
    r = stream(rest, sess, WAIT_FOR_GO)
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = r.iter_lines()
    first = json.loads(next(lines))
    assert first["type"] == "accepted" and first["id"]
    for line in lines:
        ev = json.loads(line)
        if ev["type"] == "stdout":
            assert ev["text"] == "started\n"
            break
        assert ev["type"] == "status", ev
    assert not rest.gw.proc.poll()
    assert rest.put(sess, "go", b"").status_code == 201
    events = [json.loads(line) for line in lines]
    r.close()
    assert events[-1]["type"] == "contract", events
    c = events[-1]["contract"]
    assert c["status"] == "ok" and c["stdout"] == "started\nended\n", c
    assert c["id"] == first["id"]
    assert {"type": "stdout", "text": "ended\n"} in events


def test_stream_sse(rest, sess):
    r = stream(rest, sess, "print('a')\n1 + 1", accept="text/event-stream")
    assert r.headers["Content-Type"].startswith("text/event-stream")
    text = r.content.decode()
    r.close()
    blocks = [b for b in text.split("\n\n") if b]
    kinds = [b.split("\n")[0] for b in blocks]
    assert kinds[0] == "event: accepted" and kinds[-1] == "event: contract", kinds
    assert "event: stdout" in kinds
    end = json.loads(blocks[-1].split("\n", 1)[1][len("data: "):])
    assert end["contract"]["status"] == "ok"


def raw_http(gw, method, path, token, body=b"", headers=(), length=None):
    """A socket speaking HTTP/1.1 by hand: for clients that hang up or
    never read, which requests cannot be. length: the Content-Length to
    claim (a body cut short), else the body's."""
    u = urllib.parse.urlsplit(gw.url)
    s = socket.create_connection((u.hostname, u.port), timeout=TIMEOUT)
    head = ["%s %s HTTP/1.1" % (method, path), "Host: x",
            "Authorization: Bearer " + token,
            "Content-Length: %d" % (len(body) if length is None else length),
            *headers]
    s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    if body:
        s.sendall(body)
    return s


def test_client_hangs_up_mid_call(rest, sess):
    """The session and its state outlive the connection; the result is
    there by id."""
    body = json.dumps({"code": WAIT_FOR_GO}).encode()
    s = raw_http(rest.gw, "POST", "/v1/sessions/%s/execute" % sess, rest.token, body,
                 ["Content-Type: application/json", "Accept: application/x-ndjson"])
    got = b""
    while b"started" not in got:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    exec_id = json.loads(got.split(b"\r\n\r\n", 1)[1].split(b"\n")[1])["id"]
    s.close()
    c = rest.call("GET", "/v1/executions/" + exec_id).json()
    assert c["status"] == "running", c
    assert rest.put(sess, "go", b"").status_code == 201
    c = poll(lambda: (lambda j: j if j["status"] != "running" else None)(
        rest.call("GET", "/v1/executions/" + exec_id).json()), 30, "the result")
    assert c["status"] == "ok" and c["stdout"] == "started\nended\n", c
    assert main_text(rest.run(sess, "x")) == "42"


FLOOD = "import sys\nfor i in range(400000): sys.stdout.write('%07d flooding\\n' % i)"


def test_flood_and_a_client_that_never_reads(rest, other, sess):
    """A cell floods stdout to a stream nobody reads: the daemon caps it,
    drops the client, keeps the session, and serves everyone else."""
    body = json.dumps({"code": FLOOD}).encode()
    s = raw_http(rest.gw, "POST", "/v1/sessions/%s/execute" % sess, rest.token, body,
                 ["Content-Type: application/json", "Accept: application/x-ndjson"])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    theirs = other.new()
    try:
        assert main_text(other.run(theirs["name"], "6 * 7")) == "42"
        c = rest.run(sess, "'after'")          # queued behind the flood
        assert main_text(c) == "'after'", c
    finally:
        other.call("DELETE", "/v1/sessions/" + theirs["name"])
        s.close()
    # Waiting, the same flood comes back bounded, with the truncation said.
    c = rest.run(sess, FLOOD)
    assert c["status"] == "ok" and c["stdout_truncated"], {k: c[k] for k in c
                                                            if k != "stdout"}
    assert len(c["stdout"]) < 16 * 1024 * 1024
    assert c["metrics"]["stdout_bytes"] == 400000 * len("0000000 flooding\n")
    assert rest.gw.proc.poll() is None


# ---------------------------------------------------------------- files

def test_files_round_trip_through_pandas(rest, sess):
    csv = b"a,b,c\n" + b"".join(b"%d,%d.5,x%d\n" % (i, i, i) for i in range(20000))
    r = rest.put(sess, "data/in.csv", csv)
    assert r.status_code == 201 and r.json()["size"] == len(csv), r.text
    c = rest.run(sess, "import pandas as pd\ndf = pd.read_csv('data/in.csv')\n"
                       "df.to_csv('data/out.csv', index=False)\nlen(df)")
    assert main_text(c) == "20000", c
    assert "data/out.csv" in [a["path"] for a in c["artifacts"]], c
    r = rest.get(sess, "data/out.csv")
    assert r.status_code == 200 and r.content == csv
    listing = rest.call("GET", "/v1/sessions/%s/files?dir=data" % sess).json()
    sizes = {e["name"]: e["size"] for e in listing["entries"]}
    assert sizes == {"in.csv": len(csv), "out.csv": len(csv)}, listing
    top = rest.call("GET", "/v1/sessions/%s/files" % sess).json()
    assert "data" in [e["name"] for e in top["entries"]]
    assert rest.call("DELETE", "/v1/sessions/%s/files/data/in.csv" % sess).status_code == 200
    error_of(rest.get(sess, "data/in.csv"), 404, "not_found")


def test_binary_upload_exact(rest, sess):
    blob = os.urandom(5 * 1024 * 1024 + 7)
    assert rest.put(sess, "blob.bin", blob).status_code == 201
    assert rest.get(sess, "blob.bin").content == blob
    c = rest.run(sess, "import hashlib\nhashlib.sha256(open('blob.bin','rb').read())"
                       ".hexdigest()")
    import hashlib
    assert main_text(c) == repr(hashlib.sha256(blob).hexdigest())
    # Replaced whole, never appended or mixed.
    assert rest.put(sess, "blob.bin", b"short").status_code == 201
    assert rest.get(sess, "blob.bin").content == b"short"


def test_traversal_and_symlinks_refused(rest, sess):
    c = rest.run(sess, "import os\nos.symlink('/etc/passwd', 'link')\n"
                       "os.symlink('/etc', 'dirlink')\nos.mkdir('d')")
    assert c["status"] == "ok", c
    for path in ("link", "dirlink/passwd"):
        r = rest.get(sess, path)
        assert r.status_code in (403, 404), (path, r.status_code)
        assert b"root:" not in r.content
    r = rest.put(sess, "dirlink/evil", b"x")
    assert r.status_code in (403, 404), r.text
    assert not os.path.exists("/etc/evil")
    for path in ("../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd",
                 "d/../../x", "/etc/passwd", "d//x", "dirlink/../../x", "a%00b",
                 "%00"):
        url = "/v1/sessions/%s/files/%s" % (sess, path)
        for method in ("GET", "PUT", "DELETE"):
            r = rest.call(method, url, data=b"x" if method == "PUT" else None)
            assert r.status_code in (400, 403, 404), (method, path, r.status_code)
            assert b"root:" not in r.content
    r = rest.call("GET", "/v1/sessions/%s/files?dir=../.." % sess)
    assert r.status_code in (400, 403, 404), r.text
    r = rest.call("GET", "/v1/sessions/%s/files?dir=dirlink" % sess)
    assert r.status_code in (400, 403, 404), r.text
    r = rest.call("GET", "/v1/sessions/%s/files?dir=d%%00x" % sess)
    assert r.status_code in (400, 404), r.text
    assert not [n for n in names(rest, sess) if n.startswith("a")]


def names(rest, sess):
    return sorted(e["name"] for e in
                  rest.call("GET", "/v1/sessions/%s/files" % sess).json()["entries"])


def test_upload_cut_off_leaves_the_old_file(rest, sess):
    assert rest.put(sess, "keep.txt", b"old").status_code == 201
    before = names(rest, sess)
    s = raw_http(rest.gw, "PUT", "/v1/sessions/%s/files/keep.txt" % sess, rest.token,
                 b"new but" * 10000, length=1000000)
    # The upload has begun (its temporary file is there) before the hang-up.
    poll(lambda: names(rest, sess) != before, 20, "the upload to begin")
    s.close()
    poll(lambda: names(rest, sess) == before, 20, "the temporary file to go")
    assert rest.get(sess, "keep.txt").content == b"old"


# ---------------------------------------------------------------- owners

def test_two_owners_isolated(rest, other):
    mine = rest.new()["name"]
    theirs = other.new()["name"]
    try:
        rest.run(mine, "secret = 'root'")
        assert rest.put(mine, "secret.txt", b"root's").status_code == 201
        assert mine not in [s["name"] for s in
                            other.call("GET", "/v1/sessions").json()["sessions"]]
        for method, path, kw in (
                ("GET", "/v1/sessions/" + mine, {}),
                ("DELETE", "/v1/sessions/" + mine, {}),
                ("POST", "/v1/sessions/%s/execute" % mine, {"json": {"code": "secret"}}),
                ("POST", "/v1/sessions/%s/interrupt" % mine, {}),
                ("POST", "/v1/sessions/%s/fork" % mine, {"json": {}}),
                ("GET", "/v1/sessions/%s/files/secret.txt" % mine, {}),
                ("PUT", "/v1/sessions/%s/files/x.txt" % mine, {"data": b"x"}),
                ("DELETE", "/v1/sessions/%s/files/secret.txt" % mine, {}),
                ("GET", "/v1/sessions/%s/files" % mine, {})):
            e = error_of(other.call(method, path, **kw), 404, "not_found")
            assert "not yours" not in e["message"]
        c = rest.run(mine, "secret")
        assert main_text(c) == "'root'"
        error_of(other.call("GET", "/v1/executions/" + c["id"]), 404)
        assert rest.get(mine, "secret.txt").content == b"root's"
        # Root sees every session (as on the control socket).
        assert theirs in [s["name"] for s in
                          rest.call("GET", "/v1/sessions").json()["sessions"]]
        assert main_text(other.run(theirs, "6 * 7")) == "42"
    finally:
        rest.call("DELETE", "/v1/sessions/" + mine)
        other.call("DELETE", "/v1/sessions/" + theirs)


def test_curl_example_with_the_banners_token(gw, rest, tmp_path):
    """examples/agent_rest.sh, curl only, run as the daemon's foreground
    banner (`make run`) says to run it: its URL and token."""
    import re
    m = re.search(r"export CELLBLOCK_URL=(\S+) CELLBLOCK_TOKEN=(\S+)", gw.log_text())
    assert m and m.group(1) == gw.url, gw.log_text()[-2000:]
    before = [s["name"] for s in rest.call("GET", "/v1/sessions").json()["sessions"]]
    env = {"PATH": "/usr/bin:/bin", "CELLBLOCK_URL": m.group(1),
           "CELLBLOCK_TOKEN": m.group(2), "HOME": str(tmp_path)}
    out = tmp_path / "plot.png"
    p = subprocess.run(["sh", os.path.join(ROOT, "examples", "agent_rest.sh"), str(out)],
                       capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "turn 4: KeyError" in p.stdout, p.stdout
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert p.stdout.rstrip().endswith("ok")
    # The example removes its session on the way out.
    assert [s["name"] for s in
            rest.call("GET", "/v1/sessions").json()["sessions"]] == before


def test_audit_says_rest(gw, rest, sess):
    c = rest.run(sess, "audited = 1")
    assert c["status"] == "ok"
    assert rest.put(sess, "audited.txt", b"abc").status_code == 201

    def events():
        with open(os.path.join(gw.state, "audit", "audit.log")) as f:
            evs = [json.loads(line) for line in f]
        ex = [e for e in evs if e.get("event") == "execute" and e.get("session") == sess]
        tr = [e for e in evs if e.get("event") == "transfer" and e.get("session") == sess]
        return (ex, tr) if ex and tr else None
    ex, tr = poll(events, 20, "the audit events")
    assert {e["client"] for e in ex} == {"rest"}, ex
    assert tr[-1]["path"] == "audited.txt" and tr[-1]["bytes"] == 3, tr


@pytest.fixture(scope="module")
def small():
    """A daemon with small caps: max-message 64K, files-max-size 1M, and
    an egress ceiling of 127.0.0.1:9."""
    g = Gateway(args=["--max-message", "64K"],
                config="files-max-size = 1M\negress-allow = 127.0.0.1:9\n")
    api = Rest(g, g.token("small"))
    yield api
    api.close()
    g.stop()


def test_allow_net_within_the_daemons_ceiling(small):
    e = error_of(small.call("POST", "/v1/sessions", json={"allow_net": "example.com:443"}),
                 400, "bad_request")
    assert "egress-allow" in e["message"], e
    for allow in (["127.0.0.1:9"], "127.0.0.1:9"):
        name = small.new(allow_net=allow)["name"]
        small.call("DELETE", "/v1/sessions/" + name)


def test_huge_uploads_refused_and_nothing_left(small):
    name = small.new()["name"]
    try:
        before = names(small, name)
        e = error_of(small.put(name, "big.bin", os.urandom(2 << 20)), 413, "too_large")
        assert "files-max-size" in e["message"]
        # No length said: the cap is counted chunk by chunk.
        chunks = (os.urandom(256 << 10) for _ in range(8))
        error_of(small.put(name, "big2.bin", chunks), 413, "too_large")
        assert names(small, name) == before
        assert small.put(name, "ok.bin", os.urandom(1 << 19)).status_code == 201
    finally:
        small.call("DELETE", "/v1/sessions/" + name)


def test_queue_full_is_429(small):
    """A session's queue has a bound in bytes (twice max-message): past it
    an execute is refused at once, HTTP 429 with the contract
    (queue_full), and the queued ones still run."""
    import threading
    api = small
    name = api.new()["name"]
    try:
        api.run(name, "1")
        results = {}

        def post(i, code):
            r = api.call("POST", "/v1/sessions/%s/execute" % name,
                         json={"code": code}, timeout=120)
            results[i] = (r.status_code, r.json())
        threads = [threading.Thread(target=post, args=(0, WAIT_FOR_GO))]
        threads[0].start()
        poll(lambda: api.call("GET", "/v1/sessions/" + name).json()["state"] == "busy",
             30, "the blocker to run")
        big = "#" * 40000 + "\n'queued'"
        for i in range(1, 8):
            t = threading.Thread(target=post, args=(i, big))
            t.start()
            threads.append(t)
        refused = poll(lambda: [i for i, (st, _) in list(results.items()) if st == 429],
                       30, "a refusal")
        assert results[refused[0]][1]["status"] == "queue_full"
        assert api.put(name, "go", b"").status_code == 201
        for t in threads:
            t.join(120)
        assert results[0][0] == 200 and results[0][1]["status"] == "ok"
        ran = [i for i in range(1, 8) if results[i][0] == 200]
        assert ran and all(main_text(results[i][1]) == "'queued'" for i in ran)
        assert all(results[i][1]["status"] == "queue_full"
                   for i in range(1, 8) if i not in ran)
    finally:
        api.call("DELETE", "/v1/sessions/" + name)


def test_hibernated_session_files_without_resuming(rest):
    """Files of a hibernated session are served and taken without waking
    it; the next execute resumes it with its variables."""
    name = rest.new(idle_timeout=1)["name"]
    try:
        rest.run(name, "kept = 'still here'")
        assert rest.put(name, "before.txt", b"before").status_code == 201
        poll(lambda: rest.call("GET", "/v1/sessions/" + name).json()["state"]
             == "hibernated", 60, "hibernation")
        assert rest.get(name, "before.txt").content == b"before"
        assert rest.put(name, "during.txt", b"during").status_code == 201
        assert "during.txt" in names(rest, name)
        assert rest.call("GET", "/v1/sessions/" + name).json()["state"] == "hibernated"
        c = rest.run(name, "kept, open('during.txt').read()")
        assert main_text(c) == "('still here', 'during')", c
    finally:
        rest.call("DELETE", "/v1/sessions/" + name)


def test_read_only_mounts_checked_as_the_owner(rest, other):
    """mounts at creation: a directory the owner can read is there, read
    only; one the owner cannot read is refused (403) and no session made."""
    import pathlib
    import shutil
    import tempfile
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="cb-rest-mnt-"))
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.csv").write_text("a,b\n1,2\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(shared, 0o755)
    os.chmod(shared / "data.csv", 0o644)
    secret = tmp_path / "secret"
    secret.mkdir()
    os.chmod(secret, 0o700)
    before = [s["name"] for s in other.call("GET", "/v1/sessions").json()["sessions"]]
    e = error_of(other.call("POST", "/v1/sessions", json={
        "mounts": [{"source": str(secret), "target": "/data"}]}), 403, "forbidden")
    assert str(secret) in e["message"] or "read" in e["message"], e
    assert [s["name"] for s in other.call("GET", "/v1/sessions").json()["sessions"]] == before
    name = other.new(mounts=[{"source": str(shared), "target": "/data"}])["name"]
    try:
        c = other.run(name, "print(open('/data/data.csv').read(), end='')\n"
                            "try:\n    open('/data/new', 'w')\nexcept OSError as e:\n"
                            "    print(type(e).__name__)")
        assert c["stdout"] == "a,b\n1,2\nOSError\n", c
        assert not (shared / "new").exists()
    finally:
        other.call("DELETE", "/v1/sessions/" + name)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_mutated_bodies_through_the_live_handlers(rest, sess):
    """Bodies mutated from valid ones (flipped bytes, cuts, splices of
    other fields), a fixed seed, through the real routes: every answer is
    a status below 500 with a JSON body, the daemon lives, the session
    still runs."""
    import random
    rng = random.Random(13)
    seeds = [
        ("POST", "/v1/sessions", b'{"name": "fz", "memory": "256M", "cpus": 0.5, '
                                 b'"exec_timeout": 30, "allow_net": []}'),
        ("POST", "/v1/sessions/%s/execute" % sess,
         b'{"code": "1+1", "timeout": 5, "stdin": ["a"], "store_history": false}'),
        ("POST", "/v1/sessions/%s/fork" % sess, b'{"name": "fz-fork"}'),
    ]
    made = set()
    for i in range(150):
        method, path, body = seeds[i % len(seeds)]
        b = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(b)) if b else 0
            if op < 0.4 and b:
                b[pos] = rng.randrange(256)
            elif op < 0.6:
                b = b[:pos]
            elif op < 0.8:
                b[pos:pos] = rng.choice([b'"', b"{", b"[", b"\\u0000", b"1e999", b"null",
                                         b'"memory": "9999999G"', b'"code": 7'])
            else:
                b = b + b
        if path.endswith("/execute") and b'"timeout"' not in b:
            b = b.replace(b"{", b'{"timeout": 5, ', 1)   # bounded, whatever the code
        r = rest.call(method, path, data=bytes(b), headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (bytes(b), r.status_code, r.text)
        r.json()
        if r.status_code in (200, 201) and "name" in r.json():
            made.add(r.json()["name"])
    assert rest.gw.proc.poll() is None
    for name in made - {sess}:
        rest.call("DELETE", "/v1/sessions/" + name)
    assert main_text(rest.run(sess, "6 * 7")) == "42"
