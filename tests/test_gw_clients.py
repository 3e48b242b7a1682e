"""JupyterLab's own client library (npm @jupyterlab/services 7) against the
gateway: both framings with binary buffers, two users' tokens kept apart,
a socket dropped mid-cell, a daemon kill -9 and restart under an open
client. Real daemon, real client (tests/js/services.mjs), real sockets."""
import pytest
import websocket

from gwnode import Forwarder, NodeClient
from gwtest import Api, Channels, Gateway

NOBODY = 65534
OTHER = 64000          # a second unprivileged uid; no passwd entry needed
V1 = "v1.kernel.websocket.jupyter.org"


def as_uid(uid):
    return ("/usr/bin/setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups")


@pytest.fixture
def clients():
    """Node clients a test opens; all closed after it."""
    opened = []

    def open_client(url, token, framing="v1"):
        c = NodeClient("services.mjs", url, token, framing)
        opened.append(c)
        return c
    yield open_client
    for c in opened:
        c.close()


ECHO_TARGET = (
    "import cellblock_comm\n"
    "def _t(comm, msg):\n"
    "    comm.on_msg(lambda m: comm.send({'n': len(m['buffers'])},\n"
    "        buffers=[bytes(b)[::-1] for b in m['buffers']]))\n"
    "cellblock_comm.comm_manager().register_target('echo', _t)\n")


@pytest.mark.parametrize("framing", ["v1", "legacy"])
def test_services_framings_and_binary_buffers(gw, clients, framing):
    c = clients(gw.url, gw.token("root"), framing)
    k = c.req("start")
    # v1 is chosen when the library offers it; the legacy framing otherwise.
    assert k["protocol"] == (V1 if framing == "v1" else ""), k
    r = c.req("exec", code="print(6*7)", tag="a")
    assert r["status"] == "ok" and r["stdout"] == "42\n", r
    assert r["types"][0] == "status" and r["types"][-1] == "status", r
    assert c.req("exec", code=ECHO_TARGET, tag="t")["status"] == "ok"
    blobs = [bytes(range(256)) * 40, b"\xff\xfe\x00 not utf-8", b"\x00"]
    r = c.req("comm_echo", blobs=[b.hex() for b in blobs])
    assert r["data"] == {"n": 3}, r
    assert r["buffers"] == [b[::-1].hex() for b in blobs], r


def test_two_users_tokens_isolated_and_revoked_at_once(gw, clients):
    ta, tb = (gw.cli("token", "new", "--name", n, prefix=as_uid(u)).stdout.strip()
              for n, u in (("ann", NOBODY), ("bob", OTHER)))
    a, b = clients(gw.url, ta), clients(gw.url, tb)
    ka, kb = a.req("start")["id"], b.req("start")["id"]
    assert a.req("list")["ids"] == [ka]
    assert b.req("list")["ids"] == [kb]
    for me, other_id, mine in ((a, kb, ka), (b, ka, kb)):
        assert me.req("get", id=other_id)["model"] is None
        me.req("kill", id=other_id)     # the library hides a 404 here: check it did nothing
        assert me.req("get", id=mine)["model"]["id"] == mine
    assert a.req("exec", code="print('ann alive')", tag="x")["stdout"] == "ann alive\n"
    assert b.req("exec", code="print('bob alive')", tag="x")["stdout"] == "bob alive\n"
    # bob's client cannot open ann's kernel's channels either.
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        Channels(gw, tb, ka)
    assert e.value.status_code == 404
    # Revoked: the very next call is refused; the other user is untouched.
    ls = gw.cli("token", "ls", prefix=as_uid(OTHER)).stdout
    tid = [ln.split()[0] for ln in ls.splitlines() if ln.endswith("bob")][0]
    gw.cli("token", "revoke", tid, prefix=as_uid(OTHER))
    assert b.req("list")["status"] == 401
    r = a.req("list")
    assert (r["status"], r["ids"]) == (200, [ka]), r


@pytest.mark.parametrize("framing", ["v1", "legacy"])
def test_socket_dropped_mid_cell_gets_all_output(gw, clients, framing):
    fwd = Forwarder(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])))
    try:
        c = clients(fwd.url, gw.token("root"), framing)
        c.req("start")
        seq = c.send("exec", tag="long", code=(
            "import time\nfor i in range(10):\n    print(i, flush=True); time.sleep(0.3)\n"))
        c.wait(lambda m: m.get("ev") == "stream" and m["tag"] == "long")
        # A network drop, then a second of refused reconnects: the cell
        # goes on printing while nobody is connected.
        fwd.hold_websockets(1.0)
        assert fwd.cut() >= 1
        r = c.answer(seq)
        assert r["status"] == "ok", r
        assert r["stdout"].split() == [str(i) for i in range(10)], r
        st = c.req("connected")
        assert st["status"] == "connected" and st["opened"] >= 2, st
        assert c.req("exec", code="print('after')", tag="b")["stdout"] == "after\n"
    finally:
        fwd.close()


def test_daemon_kill_9_and_restart_keep_kernel_id_and_state(clients):
    g = Gateway()
    fwd = Forwarder(("127.0.0.1", int(g.url.rsplit(":", 1)[1])))
    try:
        token = g.token("root")
        c = clients(fwd.url, token)
        kid = c.req("start")["id"]
        assert c.req("exec", code="secret = 'kept'", tag="s")["status"] == "ok"
        api = Api(g, token)
        name = api.model(kid)["cellblock"]["session"]
        api.close()
        g.cli("checkpoint", name)
        g.kill()
        g.start()          # a new port: the forwarder follows it
        fwd.target = ("127.0.0.1", int(g.url.rsplit(":", 1)[1]))
        st = c.req("connected", timeout=120)
        assert st["status"] == "connected" and st["opened"] >= 2, st
        assert c.req("list")["ids"] == [kid]
        r = c.req("exec", code="print(secret)", tag="p")
        assert r["status"] == "ok" and r["stdout"] == "kept\n", r
    finally:
        fwd.close()
        g.stop()
