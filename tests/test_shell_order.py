"""Shell replies in request order, and aborted replies, as ipykernel 6.17.

Each test drives cellblock and a real ipykernel (jupyter_client's
KernelManager, the python3 kernelspec, started in the test) with the same
raw ZeroMQ client (test_protocol.Raw), reads the replies in sequence as a
client that does not match parents would, and compares what each server
sent. Issue 10, items 1 and 2.
"""
import sys

import pytest

from cbtest import ipykernel
from test_protocol import Raw, session_name

SLOW_FAIL = "import time; time.sleep(0.5); raise ValueError('first fails')"


@pytest.fixture
def ipk(tmp_path):
    """A real ipykernel 6.17, and a Raw client on it."""
    with open(tmp_path / "kernel.log", "wb") as log, \
            ipykernel(tmp_path, log, connection_file=str(tmp_path / "kernel.json")) as km:
        r = Raw(km.connection_file)
        try:
            r.wait_ready(timeout=60)
            yield r
        finally:
            r.close()


@pytest.fixture
def cb(daemon):
    path = daemon.new()
    r = Raw(path)
    try:
        r.wait_ready()
        yield r
    finally:
        r.close()
        daemon.cli("kill", session_name(path))


def next_reply(r, channel="shell", timeout=20):
    """The next message on a channel, whatever its parent: what a client
    that reads replies in sequence gets."""
    return r.wait(channel, lambda m: True, timeout, "the next reply")


def burst(r):
    """A failing execute, then at once: kernel_info, an execute (to be
    aborted), comm_info, inspect, complete, is_complete, history and a
    second kernel_info, all on shell. The headers, in sending order."""
    sent = [r.execute(SLOW_FAIL)]
    sent.append(r.send("shell", "kernel_info_request"))
    sent.append(r.execute("x = 1"))
    sent.append(r.send("shell", "comm_info_request", {}))
    sent.append(r.send("shell", "inspect_request",
                       {"code": "len", "cursor_pos": 3, "detail_level": 0}))
    sent.append(r.send("shell", "complete_request", {"code": "le", "cursor_pos": 2}))
    sent.append(r.send("shell", "is_complete_request", {"code": "1+"}))
    sent.append(r.send("shell", "history_request",
                       {"output": False, "raw": True, "hist_access_type": "tail", "n": 1}))
    sent.append(r.send("shell", "kernel_info_request"))
    return sent


def replies_in_sequence(r, sent):
    return [next_reply(r) for _ in sent]


def summary(replies):
    return [(m["msg_type"], m["content"]["status"]) for m in replies]


def test_shell_replies_in_request_order_after_a_failing_execute(cb, ipk):
    """Read in sequence, the n-th reply answers the n-th request, on both
    servers; queued comm_info/inspect/complete/is_complete/history are
    answered (is_complete's status is its verdict on "1+"), only the queued
    execute is aborted."""
    got = {}
    for name, r in (("ipykernel", ipk), ("cellblock", cb)):
        sent = burst(r)
        replies = replies_in_sequence(r, sent)
        assert [m["parent_header"]["msg_id"] for m in replies] == \
            [h["msg_id"] for h in sent], (name, summary(replies))
        got[name] = summary(replies)
    assert got["cellblock"] == got["ipykernel"]
    assert got["cellblock"] == [
        ("execute_reply", "error"), ("kernel_info_reply", "ok"),
        ("execute_reply", "aborted"), ("comm_info_reply", "ok"),
        ("inspect_reply", "ok"), ("complete_reply", "ok"),
        ("is_complete_reply", "invalid"), ("history_reply", "ok"),
        ("kernel_info_reply", "ok")]


def test_kernel_info_waits_for_the_running_cell(cb):
    """A kernel_info sent while a cell runs is answered after that cell's
    reply and its idle, each bracketed by busy/idle with its own parent."""
    a = cb.execute("import time; time.sleep(0.5); 'a'")
    k = cb.send("shell", "kernel_info_request")
    first, second = next_reply(cb), next_reply(cb)
    assert [first["parent_header"]["msg_id"], second["parent_header"]["msg_id"]] == \
        [a["msg_id"], k["msg_id"]]
    states = cb.iopub_until_idle(k)
    assert [m["content"]["execution_state"] for m in states
            if m["msg_type"] == "status"] == ["busy", "idle"]


def test_control_is_answered_at_once(cb):
    """On control, kernel_info does not wait for the cell running on shell."""
    a = cb.execute("import time; time.sleep(3); 'a'")
    cb.wait("iopub", lambda m: m["parent_header"].get("msg_id") == a["msg_id"] and
            m["msg_type"] == "execute_input", what="execute_input")
    k = cb.send("control", "kernel_info_request")
    reply = next_reply(cb, "control", timeout=2)
    assert reply["parent_header"]["msg_id"] == k["msg_id"]
    assert not cb.received["shell"], "the cell finished before control was answered"
    assert cb.reply(a, timeout=20)["content"]["status"] == "ok"


def test_aborted_reply_content_matches_ipykernel(cb, ipk):
    """The aborted execute_reply: the same content keys and values as
    ipykernel's, the same metadata keys, and busy/idle with no output."""
    got = {}
    for name, r in (("ipykernel", ipk), ("cellblock", cb)):
        fail = r.execute(SLOW_FAIL)
        queued = r.execute("y = 2")
        assert r.reply(fail, timeout=20)["content"]["status"] == "error"
        reply = r.reply(queued, timeout=20)
        iopub = r.iopub_until_idle(queued, timeout=20)
        got[name] = (reply, [m["msg_type"] for m in iopub])
    ipk_reply, ipk_iopub = got["ipykernel"]
    cb_reply, cb_iopub = got["cellblock"]
    assert cb_reply["msg_type"] == ipk_reply["msg_type"] == "execute_reply"
    assert cb_reply["content"] == ipk_reply["content"] == {"status": "aborted"}
    # metadata.cellblock (the metrics every execute_reply carries,
    # docs/PROTOCOL.md) is the only addition.
    assert "cellblock" in cb_reply["metadata"]
    assert sorted(set(cb_reply["metadata"]) - {"cellblock"}) == sorted(ipk_reply["metadata"])
    assert cb_reply["metadata"]["status"] == ipk_reply["metadata"]["status"]
    assert cb_iopub == ipk_iopub == ["status", "status"]


def test_jupyter_client_sees_aborted(daemon):
    """jupyter_client's blocking client, as nbclient uses it, gets the
    aborted status for the queued cell and the session runs on."""
    path = daemon.new()
    kc = daemon.client(path)
    try:
        kc.wait_for_ready(timeout=30)
        a = kc.execute(SLOW_FAIL)
        b = kc.execute("z = 3")
        assert kc.get_shell_msg(timeout=20)["content"]["status"] == "error"
        rb = kc.get_shell_msg(timeout=20)
        assert rb["parent_header"]["msg_id"] == b and a != b
        assert rb["content"]["status"] == "aborted"
        r = kc.execute_interactive("z = 4; z", timeout=20)
        assert r["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        daemon.cli("kill", session_name(path))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
