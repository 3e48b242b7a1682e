"""Debian's jupyter_server 1.23 with --gateway-url in front of the daemon:
its /api/sessions makes a kernel through cellblock, its WebSocket proxy
runs cells, its own gateway manager parses our models strictly, and its
culler, which decides from our last_activity/execution_state/connections,
keeps an idle connected kernel and a busy one and culls an idle
unconnected one."""
import re
import time
import types
import uuid

import pytest
import websocket

from cbtest import poll
from gwnode import Forwarder, JupyterApp
from gwtest import Channels, stdout_of

CULL = 3          # s: jupyter_server's cull_idle_timeout
INTERVAL = 1      # s: its cull_interval
# Waits on the proxy's socket stay under 30 s: jupyter_server pings every
# 30 s, and websocket-client answers pings inside recv, restarting its timeout.


@pytest.fixture
def server(gw, api):
    app = JupyterApp("jupyter_server", gw.url, api.token, extra=(
        "--MappingKernelManager.cull_idle_timeout=%d" % CULL,
        "--MappingKernelManager.cull_interval=%d" % INTERVAL,
        "--MappingKernelManager.cull_connected=False",
        "--MappingKernelManager.cull_busy=False"))
    yield app
    app.stop()


def proxy_channels(app, kid):
    """A WebSocket through jupyter_server's proxy, once it forwards: 1.23
    drops what is sent in the first instant after the upgrade, so
    kernel_info is asked until answered (bounded)."""
    ch = Channels(types.SimpleNamespace(ws_url=app.url.replace("http", "ws", 1)),
                  app.token, kid, session_id=uuid.uuid4().hex)
    for _ in range(20):
        mid = ch.send("kernel_info_request", {})
        try:
            ch.until_idle(mid, timeout=3)
            return ch
        except (AssertionError, websocket.WebSocketTimeoutException):
            continue
    ch.close()
    raise AssertionError("the proxy never answered kernel_info:\n" + app.log_text())


def test_sessions_execute_and_strict_models(gw, api, server):
    r = server.call("POST", "/api/sessions", json={
        "path": "a.ipynb", "type": "notebook", "name": "a.ipynb",
        "kernel": {"name": "python3"}})
    assert r.status_code == 201, (r.text, server.log_text())
    sid, kid = r.json()["id"], r.json()["kernel"]["id"]
    # The kernel is cellblock's, under the same id.
    assert [m["id"] for m in api.call("GET", "/api/kernels").json()] == [kid]
    ch = proxy_channels(server, kid)
    assert stdout_of(ch.execute("x = 6 * 7\nprint(x)", timeout=20)) == "42\n"
    # Its model, as jupyter_server parsed and re-served it, is ours (it
    # re-reads ours at each culler pass: at most one interval stale).
    keys = ("id", "execution_state", "connections")

    def same():
        theirs = server.call("GET", "/api/kernels/" + kid).json()
        ours = api.model(kid)
        return [theirs[k] for k in keys] == [ours[k] for k in keys] and ours
    ours = poll(same, 10 * INTERVAL, "jupyter_server's model equal to ours")
    assert ours["connections"] == 1 and ours["execution_state"] == "idle", ours
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", ours["last_activity"])
    # Interrupt and restart through jupyter_server keep the id; restart loses x.
    assert server.call("POST", "/api/kernels/%s/interrupt" % kid).status_code == 204
    r = server.call("POST", "/api/kernels/%s/restart" % kid)
    assert r.status_code == 200 and r.json()["id"] == kid, r.text
    got = stdout_of(ch.execute("print('x' in dir())", timeout=20))
    assert got == "False\n", got
    ch.close()
    # Deleting the session ends the kernel here too.
    assert server.call("DELETE", "/api/sessions/" + sid).status_code == 204
    assert api.model(kid) is None


def test_culler_sees_true_state(gw, api, server):
    r = server.call("POST", "/api/sessions", json={
        "path": "b.ipynb", "type": "notebook", "name": "b.ipynb",
        "kernel": {"name": "python3"}})
    assert r.status_code == 201, (r.text, server.log_text())
    kid = r.json()["kernel"]["id"]
    ch = proxy_channels(server, kid)
    ch.execute("y = 'still here'", timeout=20)

    def alive():
        ids = [m["id"] for m in api.call("GET", "/api/kernels").json()]
        return kid in ids and server.call("GET", "/api/kernels/" + kid).status_code == 200

    # Idle and connected, past the idle timeout by several culler passes:
    # kept, because our model says connections 1.
    time.sleep(CULL + 4 * INTERVAL)
    assert alive(), server.log_text()
    assert stdout_of(ch.execute("print(y)", timeout=20)) == "still here\n"
    # Busy and then unconnected: kept while the cell runs (our model says busy).
    ch.send("execute_request", {"code": "import time; time.sleep(%d)" % (CULL + 5),
                                      "silent": False})
    poll(lambda: api.model(kid)["execution_state"] == "busy", 20, "busy")
    ch.close()
    poll(lambda: api.model(kid)["connections"] == 0, 20, "connections 0")
    time.sleep(CULL + 2 * INTERVAL)
    assert alive(), server.log_text()
    assert api.model(kid)["execution_state"] == "busy"
    # Idle and unconnected after the cell: culled by jupyter_server, which
    # DELETEs it here.
    poll(lambda: kid not in [m["id"] for m in api.call("GET", "/api/kernels").json()],
         60, "the culler's DELETE")
    assert "Culling 'idle' kernel" in server.log_text(), server.log_text()


def test_upstream_drop_mid_cell_replayed_without_session_id(gw, api):
    """jupyter_server 1.23 drops ?session_id= upstream; when its socket to
    us breaks mid-cell it reconnects on its own (1 s, 2 s, ... backoff), and
    what the cell printed meanwhile must reach its client all the same."""
    fwd = Forwarder(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])))
    app = JupyterApp("jupyter_server", fwd.url, api.token)
    try:
        r = app.call("POST", "/api/sessions", json={
            "path": "c.ipynb", "type": "notebook", "name": "c.ipynb",
            "kernel": {"name": "python3"}})
        assert r.status_code == 201, (r.text, app.log_text())
        kid = r.json()["kernel"]["id"]
        ch = proxy_channels(app, kid)
        mid = ch.send("execute_request", {"code": "import time\nfor i in range(12):\n"
                                          "    print(i, flush=True); time.sleep(0.25)\n",
                                          "silent": False})
        first = []
        while "0" not in stdout_of(first):
            m = ch.recv(timeout=20)
            if m["parent_header"].get("msg_id") == mid:
                first.append(m)
        assert fwd.cut() >= 1
        rest = ch.until_idle(mid, timeout=25)
        lines = (stdout_of(first) + stdout_of(rest)).split()
        assert lines == [str(i) for i in range(12)], (lines, app.log_text())
        assert "re-establish the connection to Gateway" in app.log_text()
        assert stdout_of(ch.execute("print('again')", timeout=20)) == "again\n"
        ch.close()
    finally:
        app.stop()
        fwd.close()
