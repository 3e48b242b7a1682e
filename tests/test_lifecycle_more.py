"""More of the session lifecycle: resume through the shared endpoint and
through a kernelspec-launched notebook kernel, periodic checkpoints,
quotas, and reaping the least recently used session when memory is short."""
import json
import os
import subprocess

import pytest

from cbtest import CELLBLOCK, Daemon, poll, run_cell

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def make_daemon(tmp_path_factory, text):
    conf = tmp_path_factory.mktemp("conf") / "cellblockd.conf"
    conf.write_text(text)
    return Daemon(["--config", str(conf)])


def sessions(daemon):
    return {s["name"]: s for s in json.loads(daemon.cli("ls", "--json", check=True).stdout)}


def value(kc, code):
    reply, out = run_cell(kc, code, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    res = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
    return reply, res[0] if res else None


@pytest.fixture(scope="module")
def idle2(tmp_path_factory):
    d = make_daemon(tmp_path_factory, "idle-timeout = 2\n")
    prefix = str(tmp_path_factory.mktemp("ks"))
    p = subprocess.run([CELLBLOCK, "--state-dir", d.state, "kernelspec", "install",
                        "--prefix", prefix], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    d.jupyter_path = os.path.join(prefix, "share", "jupyter")
    yield d
    assert d.alive(), d.log_text()[-3000:]
    d.stop()


def test_resume_through_the_shared_endpoint(idle2):
    from jupyter_client import BlockingKernelClient
    kc = BlockingKernelClient(connection_file=os.path.join(idle2.state, "shared.json"))
    kc.load_connection_file()
    kc.session.session = "sharedresume"
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        run_cell(kc, "kept = 'shared'")
        poll(lambda: sessions(idle2)["sharedresume"]["state"] == "hibernated", 30,
             "the shared session to hibernate")
        reply, text = value(kc, "kept")
        assert text == "'shared'"
        assert reply["metadata"]["cellblock_resumed"]["restored"] is True
    finally:
        kc.stop_channels()


def test_notebook_kernel_left_idle_continues(idle2, monkeypatch):
    """A kernelspec-launched kernel hibernates while idle; the next cell
    finds its variables, and the launcher stayed up the whole time."""
    from jupyter_client import KernelManager
    monkeypatch.setenv("JUPYTER_PATH", idle2.jupyter_path)
    before = set(sessions(idle2))
    km = KernelManager(kernel_name="cellblock")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        name = [n for n in sessions(idle2) if n not in before][0]
        run_cell(kc, "import pandas as pd\ndf = pd.DataFrame({'v': [1, 2, 3]})")
        poll(lambda: sessions(idle2)[name]["state"] == "hibernated", 30,
             "the notebook's session to hibernate")
        assert km.is_alive()
        reply, text = value(kc, "int(df.v.sum())")
        assert text == "6"
        assert reply["metadata"]["cellblock_resumed"]["restored"] is True
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_periodic_checkpoint_of_a_changed_session(tmp_path_factory):
    d = make_daemon(tmp_path_factory, "idle-timeout = 0\ncheckpoint-interval = 1\n")
    try:
        kc = d.client(d.new("periodic"))
        try:
            run_cell(kc, "a = 1")
            first = poll(lambda: sessions(d)["periodic"]["checkpoint"], 30,
                         "a periodic checkpoint")
            run_cell(kc, "a = 2")
            poll(lambda: sessions(d)["periodic"]["checkpoint"]["slot"] != first["slot"],
                 30, "the next periodic checkpoint")
            assert sessions(d)["periodic"]["state"] in ("idle", "checkpointing")
        finally:
            kc.stop_channels()
    finally:
        d.stop()


def test_session_quotas(tmp_path_factory):
    d = make_daemon(tmp_path_factory, "max-sessions = 3\nmax-sessions-per-user = 2\n"
                    "max-checkpoint-bytes-per-user = 200K\n")
    os.chmod(d.state, 0o711)
    try:
        d.new("q1")
        kc = d.client(d.new("q2"))
        p = d.cli("new", "--name", "q3")
        assert p.returncode == 1 and "max-sessions-per-user" in p.stderr
        env = d.env()
        p = subprocess.run(NOBODY + [CELLBLOCK, "new", "--name", "n1"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        p = subprocess.run(NOBODY + [CELLBLOCK, "new", "--name", "n2"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "max-sessions" in p.stderr
        # checkpoint bytes: a small one fits, a big one is refused, the old kept
        run_cell(kc, "small = 1")
        assert d.cli("checkpoint", "q2").returncode == 0
        run_cell(kc, "big = bytes(1 << 20)")
        p = d.cli("checkpoint", "q2")
        assert p.returncode == 1 and "max-checkpoint-bytes-per-user" in p.stderr
        assert sessions(d)["q2"]["checkpoint"]["bytes"] < 200 * 1024
        kc.stop_channels()
    finally:
        d.stop()


def test_memory_pressure_reaps_idle_sessions_never_running_ones(tmp_path_factory):
    # A threshold no host meets: the daemon is always "short of memory",
    # so every quiet session is reaped, least recently used first, while a
    # session running a cell is left alone.
    d = make_daemon(tmp_path_factory, "idle-timeout = 0\nmin-free-memory = 100000G\n")
    try:
        idle = d.client(d.new("idle"))
        busy = d.client(d.new("busy"))
        run_cell(idle, "o = 1")
        msg_id = busy.execute("import time; time.sleep(6); 'done'")
        poll(lambda: sessions(d)["idle"]["state"] == "hibernated", 30,
             "the idle session to be reaped")
        assert sessions(d)["busy"]["state"] == "busy"
        reply = busy.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok"
        assert "cellblock_resumed" not in reply["metadata"]
        assert value(idle, "o")[1] == "1"
        assert "memory is short" in d.log_text()
        idle.stop_channels()
        busy.stop_channels()
    finally:
        d.stop()


def test_restart_clean_after_a_crash_when_configured(tmp_path_factory):
    d = make_daemon(tmp_path_factory, "restart-from-checkpoint = no\n")
    try:
        kc = d.client(d.new("cleancrash"))
        try:
            run_cell(kc, "x = 1")
            assert d.cli("checkpoint", "cleancrash").returncode == 0
            reply, _ = run_cell(kc, "import os; os.kill(os.getpid(), 9)")
            assert reply["content"]["ename"] == "SessionKilled"
            reply, _ = run_cell(kc, "x")
            assert reply["content"]["ename"] == "NameError"
        finally:
            kc.stop_channels()
    finally:
        d.stop()
