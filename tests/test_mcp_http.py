"""/mcp, MCP's Streamable HTTP transport, at the HTTP level: sessions by
Mcp-Session-Id, JSON and SSE answers, GET's server stream, DELETE, Origin,
protocol-version headers, owners. A real daemon with its HTTP front; the
SDK's client over the same endpoint is in tests/test_mcp.py."""
import json

import pytest
import requests

TIMEOUT = 60
ACCEPT = "application/json, text/event-stream"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "http-test", "version": "0"}}}


@pytest.fixture(scope="module")
def gw():
    from gwtest import Gateway
    g = Gateway()
    g.tok = g.token("mcp")
    g.tok_nobody = g.token("nobody", uid=65534)
    yield g
    g.stop()


def post(gw, body, sid=None, token=None, headers=None, stream=False):
    h = {"Authorization": "Bearer " + (token or gw.tok), "Accept": ACCEPT,
         "Content-Type": "application/json"}
    if sid:
        h["Mcp-Session-Id"] = sid
    h.update(headers or {})
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(gw.url + "/mcp", data=data, headers=h, timeout=TIMEOUT, stream=stream)


def session(gw, token=None):
    r = post(gw, INIT, token=token)
    assert r.status_code == 200, r.text
    sid = r.headers["Mcp-Session-Id"]
    assert len(sid) == 32
    assert r.json()["result"]["protocolVersion"] == "2025-11-25"
    r = post(gw, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid, token)
    assert r.status_code == 202 and r.text == ""
    return sid


def events(r):
    """The JSON messages of an SSE body."""
    out = []
    for block in r.text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


def test_json_answer_and_session(gw):
    sid = session(gw)
    r = post(gw, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert "run_code" in {t["name"] for t in r.json()["result"]["tools"]}


def test_a_cell_streams_progress_then_its_answer(gw):
    sid = session(gw)
    r = post(gw, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                  "params": {"name": "run_code", "_meta": {"progressToken": "p"},
                             "arguments": {"code": "print('hi')\n6 * 7"}}}, sid)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream")
    msgs = events(r)
    assert msgs[-1]["id"] == 3 and "42" in json.dumps(msgs[-1]["result"]["content"])
    progress = [m for m in msgs[:-1] if m.get("method") == "notifications/progress"]
    assert progress and all(m["params"]["progressToken"] == "p" for m in progress)


def test_session_id_required_and_checked(gw):
    r = post(gw, {"jsonrpc": "2.0", "id": 4, "method": "ping"})
    assert r.status_code == 400
    r = post(gw, {"jsonrpc": "2.0", "id": 4, "method": "ping"}, "0" * 32)
    assert r.status_code == 404
    # another owner's id is an unknown one
    sid = session(gw)
    r = post(gw, {"jsonrpc": "2.0", "id": 5, "method": "ping"}, sid, token=gw.tok_nobody)
    assert r.status_code == 404
    r = post(gw, {"jsonrpc": "2.0", "id": 6, "method": "ping"}, sid)
    assert r.status_code == 200 and r.json() == {"jsonrpc": "2.0", "id": 6, "result": {}}


def test_no_token_no_entry(gw):
    r = requests.post(gw.url + "/mcp", data=json.dumps(INIT), timeout=TIMEOUT,
                      headers={"Accept": ACCEPT, "Content-Type": "application/json"})
    assert r.status_code in (401, 403)


def test_origin_checked(gw):
    r = post(gw, INIT, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = post(gw, INIT, headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 200
    # the host the request was sent to (a name that resolves here)
    r = post(gw, INIT, headers={"Origin": "https://box.example:8765", "Host": "box.example:8765"})
    assert r.status_code == 200
    r = post(gw, INIT, headers={"Origin": "https://evil.example", "Host": "box.example:8765"})
    assert r.status_code == 403
    r = post(gw, INIT, headers={"Origin": "null"})
    assert r.status_code == 403


def test_protocol_version_header(gw):
    sid = session(gw)
    r = post(gw, {"jsonrpc": "2.0", "id": 7, "method": "ping"}, sid,
             headers={"MCP-Protocol-Version": "1999-01-01"})
    assert r.status_code == 400 and "1999-01-01" in r.text
    r = post(gw, {"jsonrpc": "2.0", "id": 8, "method": "ping"}, sid,
             headers={"MCP-Protocol-Version": "2025-03-26"})
    assert r.status_code == 200


def test_bad_frames_over_http(gw):
    sid = session(gw)
    r = post(gw, b"{nope", sid)
    assert r.status_code == 200 and r.json()["error"]["code"] == -32700
    r = post(gw, {"jsonrpc": "2.0", "id": 9, "method": "nope/nope"}, sid)
    assert r.json()["error"]["code"] == -32601
    r = post(gw, [{"jsonrpc": "2.0", "id": "a", "method": "ping"},
                  {"jsonrpc": "2.0", "id": "b", "method": "ping"}], sid)
    assert sorted(m["id"] for m in r.json()) == ["a", "b"]


def test_get_stream_and_delete(gw):
    sid = session(gw)
    h = {"Authorization": "Bearer " + gw.tok, "Accept": "text/event-stream",
         "Mcp-Session-Id": sid}
    with requests.get(gw.url + "/mcp", headers=h, stream=True, timeout=TIMEOUT) as g:
        assert g.status_code == 200
        assert g.headers["Content-Type"].startswith("text/event-stream")
        again = requests.get(gw.url + "/mcp", headers=h, timeout=TIMEOUT)
        assert again.status_code == 409
        d = requests.delete(gw.url + "/mcp", headers=h, timeout=TIMEOUT)
        assert d.status_code == 204
        # the server stream ends with the session
        assert b"".join(g.iter_content(chunk_size=None)).startswith(b": cellblock")
    r = post(gw, {"jsonrpc": "2.0", "id": 10, "method": "ping"}, sid)
    assert r.status_code == 404


def test_oversized_body(gw):
    from cbtest import c_define
    sid = session(gw)
    big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + \
        b"x" * c_define("server/mcp.h", "MCP_MESSAGE_MAX") + b'"}}'
    r = post(gw, big, sid)
    assert r.status_code == 413
    r = post(gw, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, sid)
    assert r.status_code == 200 and r.json()["result"] == {}
