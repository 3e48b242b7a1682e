"""Sessions: isolation, state across many turns, and the shared endpoint.

The shared endpoint (`STATE_DIR/shared.json`) picks the session from the
header's `session` field (jupyter_client's `client.session.session`) and
publishes each session's iopub messages under the topic `session/NAME/`.
"""
import json
import os
import time
import uuid

import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.session import Session

from cbtest import run_cell


# ---------------------------------------------------------------- helpers

def sessions(daemon):
    p = daemon.cli("ls", "--json")
    assert p.returncode == 0, p.stderr
    return {s["name"]: s for s in json.loads(p.stdout)}


def shared_client(daemon, session_id=None):
    """A client on the shared endpoint; session_id picks the session."""
    kc = BlockingKernelClient(connection_file=os.path.join(daemon.state, "shared.json"))
    kc.load_connection_file()
    if session_id is not None:
        kc.session.session = session_id
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
    except BaseException:
        kc.stop_channels()
        raise
    return kc


def result_of(outputs):
    return [m["content"]["data"]["text/plain"] for m in outputs
            if m["msg_type"] == "execute_result"]


def expect_value(kc, expr, value):
    reply, outputs = run_cell(kc, expr)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert result_of(outputs) == [value], outputs


def expect_error(kc, code, ename):
    reply, outputs = run_cell(kc, code)
    assert reply["content"]["status"] == "error", reply["content"]
    assert reply["content"]["ename"] == ename, reply["content"]
    errors = [m["content"]["ename"] for m in outputs if m["msg_type"] == "error"]
    assert errors == [ename], outputs


@pytest.fixture
def cleanup(daemon):
    """Collects clients and session names; stops and kills them after."""
    clients, names = [], []
    yield clients, names
    for kc in clients:
        kc.stop_channels()
    for name in names:
        daemon.cli("kill", name)


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


# ---------------------------------------------------------------- per-session files

def test_two_sessions_do_not_share_variables(daemon, cleanup):
    clients, names = cleanup
    a_path, b_path = daemon.new(), daemon.new()
    names += [os.path.basename(p)[:-5] for p in (a_path, b_path)]
    a, b = daemon.client(a_path), daemon.client(b_path)
    clients += [a, b]

    reply, _ = run_cell(a, "secret = 1")
    assert reply["content"]["status"] == "ok", reply["content"]
    expect_error(b, "secret", "NameError")
    expect_value(a, "secret", "1")
    # nor their modules, nor their processes
    run_cell(a, "import sys; sys.cellblock_marker = 'a'")
    expect_value(b, "str(getattr(__import__('sys'), 'cellblock_marker', None))", "'None'")
    listed = sessions(daemon)
    pids = {listed[n]["pid"] for n in names}
    assert len(pids) == 2 and all(p > 0 for p in pids), listed


def test_state_kept_across_100_turns(session):
    reply, _ = run_cell(session, "x = 0")
    assert reply["content"]["status"] == "ok", reply["content"]
    first = reply["content"]["execution_count"]
    deadline = time.monotonic() + 60
    for turn in range(100):
        reply, outputs = run_cell(session, "x = x + 1")
        assert reply["content"]["status"] == "ok", (turn, reply["content"])
        assert reply["content"]["execution_count"] == first + turn + 1, (turn, reply["content"])
        assert time.monotonic() < deadline, "100 turns took over 60 s (at turn %d)" % turn
    expect_value(session, "x", "100")
    reply, _ = run_cell(session, "x == 100")
    assert reply["content"]["execution_count"] >= first + 102, reply["content"]


# ---------------------------------------------------------------- shared endpoint

def test_shared_endpoint_separates_clients_by_session_id(daemon, cleanup):
    clients, names = cleanup
    before = set(sessions(daemon))
    a, b = shared_client(daemon), shared_client(daemon)
    clients += [a, b]
    assert a.session.session != b.session.session
    names += [a.session.session, b.session.session]

    reply, _ = run_cell(a, "who = 'a'")
    assert reply["content"]["status"] == "ok", reply["content"]
    reply, _ = run_cell(b, "who = 'b'")
    assert reply["content"]["status"] == "ok", reply["content"]
    expect_value(a, "who", "'a'")
    expect_value(b, "who", "'b'")
    reply, _ = run_cell(a, "only_in_a = 1")
    assert reply["content"]["status"] == "ok", reply["content"]
    expect_error(b, "only_in_a", "NameError")

    listed = sessions(daemon)
    new = set(listed) - before
    # a jupyter_client session id is a valid session name, used as is
    assert new == {a.session.session, b.session.session}, (sorted(new), names)
    assert listed[a.session.session]["pid"] != listed[b.session.session]["pid"]


def test_named_session_survives_reconnects(daemon, cleanup):
    clients, names = cleanup
    names.append("mysess")
    kc = shared_client(daemon, "mysess")
    reply, _ = run_cell(kc, "kept = 41")
    assert reply["content"]["status"] == "ok", reply["content"]
    kc.stop_channels()
    assert "mysess" in sessions(daemon)

    for turn in range(3):
        kc = shared_client(daemon, "mysess")
        clients.append(kc)
        expect_value(kc, "kept + 1", "42")
        reply, _ = run_cell(kc, "kept = kept + 0")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert reply["header"]["session"] == "mysess", reply["header"]
        kc.stop_channels()
        clients.remove(kc)

    # a different id is a different session
    other = unique("othersess")
    names.append(other)
    kc = shared_client(daemon, other)
    clients.append(kc)
    expect_error(kc, "kept", "NameError")
    assert {"mysess", other} <= set(sessions(daemon))


def test_shared_iopub_topics_name_the_session(daemon, cleanup):
    clients, names = cleanup
    name_a, name_b = unique("topic-a"), unique("topic-b")
    names += [name_a, name_b]
    a, b = shared_client(daemon, name_a), shared_client(daemon, name_b)
    clients += [a, b]

    with open(os.path.join(daemon.state, "shared.json")) as f:
        info = json.load(f)
    assert info["ip"] in ("127.0.0.1", "localhost") or info["transport"] == "ipc", info
    decoder = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    prefix = ("session/%s/" % name_a).encode()
    sub.setsockopt(zmq.SUBSCRIBE, prefix)
    if info["transport"] == "tcp":
        sub.connect("tcp://%s:%d" % (info["ip"], info["iopub_port"]))
    else:
        sub.connect("ipc://%s-%d" % (info["ip"], info["iopub_port"]))
    try:
        received = []

        def recv(timeout_ms):
            if not sub.poll(timeout_ms):
                return None
            frames = sub.recv_multipart()
            idents, msg_list = decoder.feed_identities(frames, copy=True)
            msg = decoder.deserialize(msg_list, content=True, copy=True)   # verifies HMAC
            received.append((idents, msg))
            return msg

        # the subscription reaches the daemon asynchronously: nudge session A
        # with kernel_info until the SUB socket hears from it
        for attempt in range(50):
            a.kernel_info()
            a.get_shell_msg(timeout=10)
            if recv(200) is not None:
                break
        else:
            raise AssertionError("SUB on %r never received anything" % prefix)

        # B's cell is over (B's client saw idle) before A's starts, so any
        # leaked B message would be queued ahead of A's idle
        reply_b, outputs_b = run_cell(b, "print('from b'); 'b-result'")
        assert reply_b["content"]["status"] == "ok", reply_b["content"]
        assert any(m["msg_type"] == "stream" for m in outputs_b), outputs_b
        b_id = reply_b["parent_header"]["msg_id"]
        reply_a, _ = run_cell(a, "print('from a'); 'a-result'")
        a_id = reply_a["parent_header"]["msg_id"]

        deadline = time.monotonic() + 15
        while True:
            msg = recv(max(1, int((deadline - time.monotonic()) * 1000)))
            assert msg is not None, "A's idle never came on the SUB socket: %r" % [
                m["msg_type"] for _, m in received]
            if (msg["parent_header"].get("msg_id") == a_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                break

        for idents, msg in received:
            assert idents and idents[0].startswith(prefix), idents
            assert idents[0] == prefix + msg["msg_type"].encode(), (idents, msg["msg_type"])
            assert msg["parent_header"].get("msg_id") != b_id, "B's message leaked: %r" % msg
            assert msg["header"]["session"] == name_a, msg["header"]
        mine = [m for _, m in received if m["parent_header"].get("msg_id") == a_id]
        types = [m["msg_type"] for m in mine]
        assert types[0] == "status" and types[-1] == "status", types
        assert "execute_input" in types and "execute_result" in types, types
        streams = "".join(m["content"]["text"] for m in mine if m["msg_type"] == "stream")
        assert streams == "from a\n", streams
    finally:
        sub.close()
        ctx.term()
