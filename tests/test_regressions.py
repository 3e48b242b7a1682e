"""End-to-end checks for things that broke once: the ipc transport, a
session stopped and continued (SIGSTOP/SIGCONT restarts syscalls through
restart_syscall, which seccomp must allow), and requests queued before the
interpreter said hello."""
import json
import os
import signal
import time

import pytest

from cbtest import Daemon, run_cell
from proclib import descendants


@pytest.fixture(scope="module")
def ipc_daemon():
    d = Daemon(["--transport", "ipc"])
    yield d
    d.stop()


def test_ipc_transport_runs_code(ipc_daemon):
    path = ipc_daemon.new("ipc1")
    conn = json.load(open(path))
    assert conn["transport"] == "ipc"
    assert conn["ip"].startswith(ipc_daemon.state)
    assert os.path.exists(f"{conn['ip']}-{conn['shell_port']}")
    kc = ipc_daemon.client(path)
    try:
        reply, out = run_cell(kc, "print(6 * 7)")
        assert reply["content"]["status"] == "ok"
        assert any(m["msg_type"] == "stream" and m["content"]["text"] == "42\n"
                   for m in out)
    finally:
        kc.stop_channels()


def session_pids(daemon, name):
    """Host pids of every process of the session: its outer process (an
    exec'd shim or a clone of the zygote), pid 1 and the interpreter."""
    ls = json.loads(daemon.cli("ls", "--json", check=True).stdout)
    outer = [s["pid"] for s in ls if s["name"] == name and s["pid"] > 0]
    return outer + [pid for root in outer for pid, _ in descendants(root)]


def test_stopped_and_continued_session_keeps_its_output_threads(daemon):
    path = daemon.new("stopcont")
    kc = daemon.client(path)
    try:
        code = "import threading; sorted(t.name for t in threading.enumerate())"
        before, _ = run_cell(kc, code, user_expressions={"t": "len(threading.enumerate())"})
        threads = before["content"]["user_expressions"]["t"]["data"]["text/plain"]
        pids = session_pids(daemon, "stopcont")
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        reply, out = run_cell(kc, "print('alive')",
                              user_expressions={"t": "len(threading.enumerate())"})
        assert reply["content"]["status"] == "ok"
        assert reply["content"]["user_expressions"]["t"]["data"]["text/plain"] == threads
        text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream")
        assert text == "alive\n", text
    finally:
        kc.stop_channels()
        daemon.cli("kill", "stopcont")


def test_execute_sent_before_hello_runs(daemon):
    """A request queued while the interpreter starts runs once it is up."""
    path = daemon.new("early")
    from jupyter_client import BlockingKernelClient
    kc = BlockingKernelClient(connection_file=path)
    kc.load_connection_file()
    kc.start_channels()
    try:
        msg_id = kc.execute("1+1")        # before any hello, no waiting
        deadline = time.monotonic() + 30
        while True:
            reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        daemon.cli("kill", "early")
