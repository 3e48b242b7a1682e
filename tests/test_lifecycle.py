"""Checkpoints, idle reaping to hibernation, transparent resume, restart
from the last checkpoint after a crash, and a corrupted checkpoint refused
in favour of the one before. A daemon with idle-timeout = 2 s."""
import json
import os
import re

import pytest

from cbtest import Daemon, poll, run_cell

SETUP = """
import numpy as np, pandas as pd
df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
arr = np.arange(10) ** 2
n, s, d = 41, "text", {"k": [1, 2]}
def double(v):
    return 2 * v
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def norm2(self):
        return self.x ** 2 + self.y ** 2
pt = Point(3, 4)
sq = lambda v: v * v
fh = open("data.txt", "w")
gen = (i for i in range(3))
"""

CHECK = ("(int(df.a.sum()), df.b.tolist(), int(arr[3]), n, s, d, double(5), "
         "pt.norm2(), sq(7), np.pi > 3)")
EXPECT = "(6, ['x', 'y', 'z'], 9, 41, 'text', {'k': [1, 2]}, 10, 25, 49, True)"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    conf = tmp_path_factory.mktemp("conf") / "cellblockd.conf"
    conf.write_text("idle-timeout = 2\n")
    d = Daemon(["--config", str(conf)])
    yield d
    assert d.alive(), d.log_text()[-3000:]
    d.stop()


def describe(daemon, name):
    for s in json.loads(daemon.cli("ls", "--json", check=True).stdout):
        if s["name"] == name:
            return s
    return None


def wait_hibernated(daemon, name):
    poll(lambda: describe(daemon, name)["state"] == "hibernated", 30,
         f"{name} to hibernate")


def value(kc, expr):
    reply, out = run_cell(kc, expr, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    res = [m for m in out if m["msg_type"] == "execute_result"]
    return reply, out, res[0]["content"]["data"]["text/plain"]


def stderr_of(out):
    return "".join(m["content"]["text"] for m in out
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")


def test_reap_resume_keeps_values_and_reports_losses(daemon):
    kc = daemon.client(daemon.new("analysis"))
    try:
        reply, _ = run_cell(kc, SETUP)
        assert reply["content"]["status"] == "ok"
        count = reply["content"]["execution_count"]
        wait_hibernated(daemon, "analysis")
        assert describe(daemon, "analysis")["pid"] == -1
        reply, out, text = value(kc, CHECK)
        assert text == EXPECT
        assert reply["content"]["execution_count"] == count + 1
        resumed = reply["metadata"]["cellblock_resumed"]
        assert resumed["restored"] is True
        assert {"df", "arr", "pt", "Point", "sq", "double"} <= set(resumed["names"])
        lost = {e["name"] for e in resumed["skipped"] + resumed["lost"]}
        assert {"fh", "gen"} <= lost
        note = stderr_of(out)
        assert "not restored" in note and "fh" in note and "gen" in note
        # the next reply is an ordinary one
        reply, _, _ = value(kc, "n")
        assert "cellblock_resumed" not in reply["metadata"]
    finally:
        kc.stop_channels()


def test_three_reap_resume_cycles(daemon):
    kc = daemon.client(daemon.new("cycles"))
    try:
        run_cell(kc, "total = 0")
        for i in range(3):
            wait_hibernated(daemon, "cycles")
            reply, _ = run_cell(kc, "total += 1")
            assert reply["content"]["status"] == "ok", reply["content"]
            assert reply["metadata"]["cellblock_resumed"]["restored"] is True
        assert value(kc, "total")[2] == "3"
    finally:
        kc.stop_channels()


def test_checkpoint_command_reports_what_was_not_saved(daemon):
    path = daemon.new("manual")
    kc = daemon.client(path)
    try:
        run_cell(kc, "keep = 7\nfh = open('f.txt', 'w')")
        p = daemon.cli("checkpoint", "manual")
        assert p.returncode == 0, p.stderr
        assert "not saved: fh" in p.stdout
        assert describe(daemon, "manual")["checkpoint"]["bytes"] > 0
    finally:
        kc.stop_channels()
        daemon.cli("kill", "manual")
    assert daemon.cli("checkpoint", "nosuch").returncode == 4


def test_crash_restarts_from_last_checkpoint(daemon):
    kc = daemon.client(daemon.new("crashy"))
    try:
        run_cell(kc, "saved = 'before'")
        assert daemon.cli("checkpoint", "crashy").returncode == 0
        run_cell(kc, "unsaved = 1")
        reply, _ = run_cell(kc, "import os; os.kill(os.getpid(), 9)")
        assert reply["content"]["ename"] == "SessionKilled"
        reply, _, text = value(kc, "saved")
        assert text == "'before'"
        assert reply["metadata"]["cellblock_resumed"]["restored"] is True
        reply, _ = run_cell(kc, "unsaved")
        assert reply["content"]["ename"] == "NameError"
    finally:
        kc.stop_channels()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_checkpoint_refused_previous_used(daemon, damage):
    kc = daemon.client(daemon.new("corrupt-" + damage))
    try:
        run_cell(kc, "v = 'first'")
        assert daemon.cli("checkpoint", "corrupt-" + damage).returncode == 0
        run_cell(kc, "v = 'second'")
        wait_hibernated(daemon, "corrupt-" + damage)
        info = describe(daemon, "corrupt-" + damage)
        newest = os.path.join(info["workdir"], ".cellblock",
                              "checkpoint-" + info["checkpoint"]["slot"])
        data = bytearray(open(newest, "rb").read())
        if damage == "flip":
            data[len(data) // 2] ^= 0xFF
        else:
            data = data[: len(data) // 2]
        open(newest, "wb").write(bytes(data))
        reply, out, text = value(kc, "v")
        assert text == "'first'"
        resumed = reply["metadata"]["cellblock_resumed"]
        assert "sha256" in resumed["refused_newer"]
        assert "refused" in stderr_of(out)
    finally:
        kc.stop_channels()


def restart_daemon(daemon, hard):
    """Stop the daemon (SIGTERM, or SIGKILL for a crash) and start a new
    one on the same state directory and config."""
    import signal
    import subprocess
    from cbtest import CELLBLOCKD
    daemon.proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
    daemon.proc.wait(timeout=30)
    daemon.proc = subprocess.Popen([CELLBLOCKD, "--foreground", "--state-dir",
                                    daemon.state, *daemon.args],
                                   stdout=daemon.log, stderr=subprocess.STDOUT)
    # Its log says when it is ready; no CLI before that (it would start one).
    start = len(daemon.log_text())
    poll(lambda: "ready: control" in daemon.log_text()[start:], 30,
         "the restarted daemon")


@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "kill-9"])
def test_sessions_survive_a_daemon_restart(daemon, hard):
    name = "survivor-" + ("hard" if hard else "soft")
    path = daemon.new(name)
    kc = daemon.client(path)
    run_cell(kc, SETUP)
    if hard:        # a crash saves nothing: only what was checkpointed
        assert daemon.cli("checkpoint", name).returncode == 0
    kc.stop_channels()
    before = json.load(open(path))
    restart_daemon(daemon, hard)
    info = describe(daemon, name)
    assert info["state"] == "hibernated" and info["pid"] == -1
    after = json.load(open(path))
    assert after["key"] == before["key"]
    # Same ports unless another process took one meanwhile (then it says so).
    if after["shell_port"] != before["shell_port"]:
        assert "trying new ports" in daemon.log_text()
    kc = daemon.client(path)
    try:
        reply, out, text = value(kc, CHECK)
        assert text == EXPECT
        assert reply["metadata"]["cellblock_resumed"]["restored"] is True
    finally:
        kc.stop_channels()


def test_fork_diverges(daemon):
    kc = daemon.client(daemon.new("src"))
    try:
        run_cell(kc, SETUP + "\nbranch = 'src'")
        p = daemon.cli("fork", "src", "dst")
        assert p.returncode == 0, p.stderr
        kd = daemon.client(p.stdout.strip())
        try:
            assert value(kd, CHECK)[2] == EXPECT
            run_cell(kd, "branch = 'dst'; n = 0")
            assert value(kd, "branch, n")[2] == "('dst', 0)"
            assert value(kc, "branch, n")[2] == "('src', 41)"
        finally:
            kd.stop_channels()
    finally:
        kc.stop_channels()
    assert daemon.cli("fork", "src", "dst").returncode != 0     # name taken
    assert daemon.cli("fork", "nosuch", "x").returncode == 4


def test_second_daemon_on_the_same_state_dir_is_refused(daemon):
    import subprocess
    from cbtest import CELLBLOCKD
    p = subprocess.run([CELLBLOCKD, "--foreground", "--state-dir", daemon.state],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "another cellblockd" in p.stderr
    assert daemon.alive() and daemon.cli("ls").returncode == 0


def test_restart_asked_while_hibernating_is_clean(daemon):
    """A restart that comes while the interpreter is being stopped to
    hibernate (here it ignores SIGTERM, so the stop takes the 2 s grace)
    starts clean; it used to be dropped and the next request resumed the
    checkpoint (found by make soak)."""
    kc = daemon.client(daemon.new("restart-hib"))
    try:
        run_cell(kc, "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); x = 1")
        start = len(daemon.log_text())
        poll(lambda: re.search(r"restart-hib: checkpoint [ab]: ", daemon.log_text()[start:]),
             30, "the hibernation's checkpoint")
        assert describe(daemon, "restart-hib")["state"] != "hibernated"
        assert daemon.cli("restart", "restart-hib").returncode == 0
        reply, _ = run_cell(kc, "x", timeout=60)
        assert reply["content"]["ename"] == "NameError", reply["content"]
        assert "cellblock_resumed" not in reply["metadata"]
    finally:
        kc.stop_channels()


def test_restart_is_clean_even_with_a_checkpoint(daemon):
    kc = daemon.client(daemon.new("clean"))
    try:
        run_cell(kc, "gone = 1")
        assert daemon.cli("checkpoint", "clean").returncode == 0
        assert daemon.cli("restart", "clean").returncode == 0
        reply, _ = run_cell(kc, "gone")
        assert reply["content"]["ename"] == "NameError"
        assert "cellblock_resumed" not in reply["metadata"]
    finally:
        kc.stop_channels()
