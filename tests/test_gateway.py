"""The HTTP + WebSocket front as a Kernel Gateway (docs/GATEWAY.md): the
REST surface and its errors, tokens and owners, the WebSocket channels in
both framings with buffers, output kept across a reconnect, kernel ids
across hibernation and a daemon kill -9. Real daemon, real sockets."""
import hashlib
import json
import os
import re
import socket
import tempfile
import time

import pytest
import requests
import websocket

from cbtest import poll
from gwtest import (LAST_ACTIVITY_RE, MODEL_KEYS, UUID_RE, Api, Channels, Gateway,
                    stdout_of)

NOBODY = 65534


def check_model(m):
    assert MODEL_KEYS <= set(m), m
    assert re.match(UUID_RE, m["id"]), m
    assert re.match(LAST_ACTIVITY_RE, m["last_activity"]), m
    assert m["execution_state"] in ("starting", "idle", "busy", "dead"), m
    assert isinstance(m["connections"], int)


# ---------------------------------------------------------------- REST

def test_rest_surface(gw, api):
    r = requests.get(gw.url + "/api", timeout=10)
    assert r.status_code == 200 and "version" in r.json()
    specs = api.call("GET", "/api/kernelspecs").json()
    assert specs["default"] in specs["kernelspecs"]
    assert "python3" in specs["kernelspecs"]
    assert api.call("GET", "/api/kernelspecs/python3").json()["spec"]["language"] == "python"
    k = api.new_kernel(env={"KERNEL_USERNAME": "ann", "PATH": "/evil",
                            "KERNEL_LAUNCH_TIMEOUT": "40"})
    check_model(k)
    assert k["execution_state"] == "idle"
    listed = api.call("GET", "/api/kernels").json()
    assert [m["id"] for m in listed] == [k["id"]]
    check_model(api.model(k["id"]))
    assert api.call("POST", "/api/kernels/%s/interrupt" % k["id"]).status_code == 204
    r = api.call("POST", "/api/kernels/%s/restart" % k["id"])
    assert r.status_code == 200 and r.json()["id"] == k["id"], r.text
    assert api.call("DELETE", "/api/kernels/" + k["id"]).status_code == 204
    assert api.call("GET", "/api/kernels/" + k["id"]).status_code == 404
    assert api.call("GET", "/api/kernels").json() == []


def test_rest_errors_are_json(gw, api):
    def err(r, status):
        assert r.status_code == status, (r.status_code, r.text)
        body = r.json()
        assert set(body) == {"reason", "message"}, body
    err(api.call("GET", "/api/kernels/00000000-0000-0000-0000-000000000000"), 404)
    err(api.call("GET", "/api/kernels/not-a-uuid"), 404)
    err(api.call("GET", "/nothing/here"), 404)
    err(api.call("PUT", "/api/kernels"), 405)
    err(api.call("POST", "/api/kernels", data=b"{not json"), 400)
    err(api.call("POST", "/api/kernels", json={"name": "ruby"}), 404)
    err(api.call("POST", "/api/kernels", data=b"x" * (2 * 1024 * 1024)), 413)
    for path in ("/kernelspecs/python3/../../../etc/passwd",
                 "/kernelspecs/python3/%2e%2e/%2e%2e/etc/passwd",
                 "/kernelspecs/..%2f..%2fetc/passwd", "/kernelspecs/python3/logo.png"):
        r = api.call("GET", path)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert "root:" not in r.text
    assert api.call("GET", "/kernelspecs/python3/kernel.json").json()["language"] == "python"
    # Unknown ids are 404 before any upgrade.
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(
            gw.ws_url + "/api/kernels/00000000-0000-0000-0000-000000000000/channels",
            header=["Authorization: " + api.s.headers["Authorization"]], timeout=10)
    assert e.value.status_code == 404
    assert gw.proc.poll() is None


def test_auth_forms_and_bad_tokens(gw, api):
    tok = api.token
    for hdr in ({"Authorization": "token " + tok}, {"Authorization": "Bearer " + tok}):
        assert requests.get(gw.url + "/api/kernels", headers=hdr, timeout=10).status_code == 200
    assert requests.get(gw.url + "/api/kernels?token=" + tok, timeout=10).status_code == 200
    for hdr in ({}, {"Authorization": "token"}, {"Authorization": "token " + tok + "x"},
                {"Authorization": "Basic " + tok}):
        r = requests.get(gw.url + "/api/kernels", headers=hdr, timeout=10)
        assert r.status_code == 401 and r.json()["reason"] == "Unauthorized", hdr
    k = api.new_kernel()
    # The upgrade takes ?token= too, and refuses without one.
    ch = Channels(gw, tok, k["id"], query_token=True)
    assert stdout_of(ch.execute("print(6*7)")) == "42\n"
    ch.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(gw.ws_url + "/api/kernels/%s/channels" % k["id"],
                                    timeout=10)
    assert e.value.status_code == 401


def test_a_stored_uid_past_uid_t_is_skipped_not_root():
    """tokens.json is read back with uids as JSON integers: one of 2^32 must
    not wrap to uid 0 (root's) but be skipped as not a token."""
    state = tempfile.mkdtemp(prefix="cb-gw-")
    tok = "cb_wrapped-uid"
    digest = hashlib.blake2b(tok.encode(), digest_size=32,
                             key=b"cellblock-token").hexdigest()
    with open(os.path.join(state, "tokens.json"), "w") as f:
        json.dump([{"id": "tk-00000001", "name": "wrap", "uid": 2**32,
                    "created": 0, "blake2b": digest}], f)
    os.chmod(os.path.join(state, "tokens.json"), 0o600)
    g = Gateway(state=state)
    try:
        r = requests.get(g.url + "/api/kernels", timeout=10,
                         headers={"Authorization": "token " + tok})
        assert r.status_code == 401, (r.status_code, r.text)
        assert "entry 0 is not a token, skipped" in g.log_text()
    finally:
        g.stop()


def test_token_cli_refuses_a_name_not_utf8(gw):
    """argv may hold any bytes: a name or id that is not UTF-8 is a usage
    error (it crashed the CLI, json_pack giving no request)."""
    before = gw.control({"cmd": "token", "action": "ls"})["tokens"]
    for args in (("new", "--name", b"\xff"), ("revoke", b"\xff")):
        p = gw.cli("token", *args, check=False)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert "not UTF-8" in p.stderr, p.stderr
    assert gw.control({"cmd": "token", "action": "ls"})["tokens"] == before


def test_tokens_isolate_owners_and_revoke_at_once(gw, api):
    other = Api(gw, gw.token("nobody", uid=NOBODY))
    mine = api.new_kernel()
    theirs = other.new_kernel()
    assert [m["id"] for m in other.call("GET", "/api/kernels").json()] == [theirs["id"]]
    # root's token sees all.
    assert {m["id"] for m in api.call("GET", "/api/kernels").json()} == {mine["id"], theirs["id"]}
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/interrupt"),
                         ("POST", "/restart")):
        r = other.call(method, "/api/kernels/" + mine["id"] + path)
        assert r.status_code == 404, (method, path, r.status_code)
    with pytest.raises(websocket.WebSocketBadStatusException):
        Channels(gw, other.token, mine["id"])
    assert api.model(mine["id"])["execution_state"] == "idle"
    # Tokens are listed per owner; only hashes are stored.
    ls = gw.cli("token", "ls", prefix=("/usr/bin/setpriv", "--reuid=%d" % NOBODY,
                                       "--regid=%d" % NOBODY, "--clear-groups")).stdout
    assert "nobody" in ls and "root" not in ls
    with open(os.path.join(gw.state, "tokens.json")) as f:
        stored = f.read()
    assert api.token not in stored and other.token not in stored
    assert os.stat(os.path.join(gw.state, "tokens.json")).st_mode & 0o077 == 0
    # Revoked: refused on the very next request.
    tid = [ln.split()[0] for ln in ls.splitlines() if ln.endswith("nobody")][0]
    gw.cli("token", "revoke", tid, prefix=("/usr/bin/setpriv", "--reuid=%d" % NOBODY,
                                            "--regid=%d" % NOBODY, "--clear-groups"))
    assert other.call("GET", "/api/kernels").status_code == 401
    other.close()


# ---------------------------------------------------------------- channels

def test_channels_execute_busy_idle_and_connections(gw, api):
    k = api.new_kernel()
    ch = Channels(gw, api.token, k["id"])
    # The very first message is bracketed by busy/idle with its parent.
    mid = ch.send("kernel_info_request", {})
    got = ch.until_idle(mid)
    iopub = [(m["msg_type"], m["content"].get("execution_state")) for m in got
             if m["channel"] == "iopub"]
    assert iopub == [("status", "busy"), ("status", "idle")], got
    assert any(m["msg_type"] == "kernel_info_reply" for m in got)
    assert api.model(k["id"])["connections"] == 1
    ch2 = Channels(gw, api.token, k["id"], session_id="second")
    assert api.model(k["id"])["connections"] == 2
    # A long cell: the model says busy while it runs, idle after.
    mid = ch.send("execute_request", {"code": "import time; time.sleep(1.5); x = 41",
                                      "silent": False})
    poll(lambda: api.model(k["id"])["execution_state"] == "busy", 10, "busy")
    ch.until_idle(mid)
    assert api.model(k["id"])["execution_state"] == "idle"
    # Replies go to the requester; iopub to both.
    got = ch2.execute("print(x + 1)")
    assert stdout_of(got) == "42\n"
    assert any(m["msg_type"] == "execute_reply" for m in got)
    ch.ws.settimeout(5)
    seen = []
    while True:
        m = ch.recv()
        seen.append(m)
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    assert not any(m["channel"] == "shell" for m in seen), seen
    assert stdout_of(seen) == "42\n"
    ch2.close()
    ch.close()
    poll(lambda: api.model(k["id"])["connections"] == 0, 10, "connections 0")


def test_binary_buffers_both_ways(gw, api):
    k = api.new_kernel()
    ch = Channels(gw, api.token, k["id"])
    ch.execute("import cellblock_comm\n"
               "def _t(comm, msg):\n"
               "    comm.on_msg(lambda m: comm.send({'n': len(m['buffers'])},\n"
               "        buffers=[bytes(b)[::-1] for b in m['buffers']]))\n"
               "cellblock_comm.comm_manager().register_target('echo', _t)\n")
    ch.send("comm_open", {"comm_id": "c1", "target_name": "echo", "data": {}})
    blobs = [bytes(range(256)) * 40, b"\xff\xfe\x00 not utf-8"]
    mid = ch.send("comm_msg", {"comm_id": "c1", "data": {}}, buffers=blobs)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = ch.recv()
        if m["msg_type"] == "comm_msg" and m["parent_header"].get("msg_id") == mid:
            assert m["content"]["data"] == {"n": 2}
            assert m["buffers"] == [b[::-1] for b in blobs]
            break
    else:
        pytest.fail("no comm_msg with buffers came back")
    # A browser's binary message forwarded by tornado as a *text* frame of
    # non-UTF-8 bytes is understood, not fatal.
    from gwtest import header, legacy_binary
    msg = {"header": header("comm_msg"), "parent_header": {}, "metadata": {},
           "content": {"comm_id": "c1", "data": {}}, "channel": "shell"}
    ch.ws.send(legacy_binary(msg, [b"\x80\x81\x82"]), opcode=websocket.ABNF.OPCODE_TEXT)
    while True:
        m = ch.recv()
        if m["msg_type"] == "comm_msg" and m["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            assert m["buffers"] == [b"\x82\x81\x80"]
            break
    ch.close()


def test_output_kept_across_a_dropped_socket(gw, api):
    k = api.new_kernel()
    ch = Channels(gw, api.token, k["id"])
    mid = ch.send("execute_request", {"code": "import time\nfor i in range(8):\n"
                                      "    print(i, flush=True); time.sleep(0.25)\n",
                                      "silent": False})
    first = []
    while "0" not in stdout_of(first):
        m = ch.recv()
        if m["parent_header"].get("msg_id") == mid:
            first.append(m)
    ch.ws.shutdown()      # dropped mid-cell, no close handshake
    time.sleep(1.0)       # the cell keeps printing while nobody listens
    ch2 = Channels(gw, api.token, k["id"])
    rest = ch2.until_idle(mid)
    lines = (stdout_of(first) + stdout_of(rest)).split()
    assert lines == [str(i) for i in range(8)], lines
    assert any(m["msg_type"] == "execute_reply" for m in rest)
    ch2.close()


def test_replay_matched_by_session_id(gw, api):
    k = api.new_kernel()
    a = Channels(gw, api.token, k["id"], session_id="alice")
    mid = a.send("execute_request", {"code": "import time; time.sleep(0.8); print('for-a')",
                                     "silent": False})
    a.ws.shutdown()
    b = Channels(gw, api.token, k["id"], session_id="bob")
    b.execute("print('b')")
    a2 = Channels(gw, api.token, k["id"], session_id="alice")
    assert stdout_of(a2.until_idle(mid)) == "for-a\n"
    a2.close()
    b.close()


def test_a_long_client_session_id_does_not_push_others_out(gw, api):
    """A client session id longer than the gateway keeps (127 bytes) is
    remembered once, not once per message: its 20 requests while alice is
    away leave alice's entry, so her output is still kept for her."""
    k = api.new_kernel()
    a = Channels(gw, api.token, k["id"], session_id="alice")
    mid = a.send("execute_request", {"code": "import time; time.sleep(1.5); print('for-a')",
                                     "silent": False})
    a.ws.shutdown()
    b = Channels(gw, api.token, k["id"], session_id="b" * 200)
    sent = [b.send("kernel_info_request", {}) for _ in range(20)]
    for msg_id in sent:
        b.until_idle(msg_id)
    a2 = Channels(gw, api.token, k["id"], session_id="alice")
    assert stdout_of(a2.until_idle(mid)) == "for-a\n"
    a2.close()
    b.close()


def test_kernel_id_survives_hibernation_and_kill_9(gw, api):
    gw.stop()
    g = Gateway(config="idle-timeout = 2\n")
    try:
        a = Api(g, g.token("root"))
        k = a.new_kernel()
        ch = Channels(g, a.token, k["id"])
        ch.execute("secret = 'kept'")
        ch.close()
        poll(lambda: a.model(k["id"])["cellblock"]["state"] == "hibernated", 60, "hibernated")
        m = a.model(k["id"])
        assert m["id"] == k["id"] and m["execution_state"] == "idle"
        ch = Channels(g, a.token, k["id"])
        assert stdout_of(ch.execute("print(secret)")) == "kept\n"
        ch.execute("secret2 = 'also'")
        ch.close()
        name = m["cellblock"]["session"]
        g.cli("checkpoint", name)
        g.kill()
        g.start()
        models = a.call("GET", "/api/kernels").json()
        assert [x["id"] for x in models] == [k["id"]], models
        ch = Channels(g, a.token, k["id"])
        assert stdout_of(ch.execute("print(secret, secret2)")) == "kept also\n"
        ch.close()
        a.close()
    finally:
        g.stop()


# ---------------------------------------------------------------- abuse

def test_bad_input_is_bounded(gw, api):
    k = api.new_kernel()
    rss0 = gw.rss_kb()
    s = requests.Session()
    for i in range(2000):
        r = s.get(gw.url + "/api/kernels", headers={"Authorization": "token bad%d" % i},
                  timeout=10)
        assert r.status_code == 401
    s.close()
    # Rate-limited logging: a few lines a second, not 2000.
    assert gw.log_text().count("a request with a bad token") < 200
    # Garbage over the WebSocket: frames that are not messages, bad JSON,
    # bad binary offsets, unknown channels; the socket keeps working.
    ch = Channels(gw, api.token, k["id"])
    for junk in (b"", b"{", b"\x00\x00\x00\x05abc", b"\xff" * 100,
                 json.dumps({"channel": "nope", "header": {}}).encode(),
                 json.dumps({"channel": "shell"}).encode()):
        ch.ws.send_binary(junk)
        ch.ws.send(junk.decode("latin-1"))
    assert stdout_of(ch.execute("print('still here')")) == "still here\n"
    ch.close()
    # Raw garbage instead of HTTP, and a header block far too big.
    for junk in (b"\x16\x03\x01\x02\x00" + os.urandom(300), b"GET / HTTP/1.1\r\n" +
                 b"X: " + b"a" * 100000 + b"\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])),
                                      timeout=10) as c:
            try:
                c.sendall(junk)
                c.recv(100)
            except OSError:
                pass
    assert api.model(k["id"])["execution_state"] == "idle"
    assert gw.rss_kb() < rss0 + 50 * 1024, (rss0, gw.rss_kb())


def test_idle_connections_and_slowloris_are_capped(gw, api):
    gw.stop()
    g = Gateway(config="http-max-connections-per-peer = 50\nhttp-timeout = 3\n")
    try:
        a = Api(g, g.token("root"))
        port = int(g.url.rsplit(":", 1)[1])
        idle = []
        for i in range(300):
            c = socket.socket()
            c.settimeout(5)
            c.connect(("127.0.0.1", port))
            if i % 2:
                c.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\n")   # slowloris: never ends
            idle.append(c)
        # Another peer (127.0.0.2) is served while 127.0.0.1 is at its cap.
        s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=("127.0.0.2", 0))
        s.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"200 OK" in s.recv(4096)
        s.close()
        # The idle ones are dropped by the timeout; then 127.0.0.1 is served.
        def closed(c):
            try:
                return c.recv(1) == b""
            except socket.timeout:
                return False
            except OSError:
                return True
        assert sum(closed(c) for c in idle[:60]) >= 50
        for c in idle:
            c.close()
        assert a.call("GET", "/api/kernels").status_code == 200
        a.close()
    finally:
        g.stop()
