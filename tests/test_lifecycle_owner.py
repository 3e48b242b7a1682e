"""The lifecycle's state under a loss (docs/ARCHITECTURE.md, "One owner per
field"): an interpreter killed in the middle of a checkpoint answers the one
who asked, frees the queue and comes back from the checkpoint before; the
first reply after that resume, and only it, says what came back. The parts
lifecycle.c took over from the core (HOOK_STOPPED, HOOK_EXECUTED), driven
through a real daemon and the real CLI."""
import json
import os
import signal
import subprocess

import pytest

from cbtest import CELLBLOCK, Daemon, poll, run_cell

SLOW = """
import time
class Slow:
    def __reduce__(self):
        time.sleep(120)          # the checkpoint hangs here, in dill
        return (Slow, ())
slow = Slow()
"""


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    d.stop()


def describe(d, name):
    for s in json.loads(d.cli("ls", "--json", check=True).stdout):
        if s["name"] == name:
            return s
    return None


def test_a_checkpoint_cut_by_a_death(daemon):
    d = daemon
    kc = d.client(d.new("cut"))
    try:
        reply, _ = run_cell(kc, "x = 1")
        assert reply["content"]["status"] == "ok"
        d.cli("checkpoint", "cut", check=True)
        reply, _ = run_cell(kc, SLOW + "x = 2")
        assert reply["content"]["status"] == "ok"
        ask = subprocess.Popen([CELLBLOCK, "checkpoint", "cut"], env=d.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            poll(lambda: describe(d, "cut")["state"] == "checkpointing", 30,
                 "the checkpoint to start")
            os.kill(describe(d, "cut")["pid"], signal.SIGKILL)
            out, err = ask.communicate(timeout=60)
        finally:
            if ask.poll() is None:
                ask.kill()
                ask.communicate()
        # The one who asked hears why (the waiter answered on the loss).
        assert ask.returncode != 0 and "died during the checkpoint" in err, (out, err)
        # The queue is free: the next cell runs, in an interpreter restored
        # from the checkpoint before (x = 1, no Slow).
        reply, _ = run_cell(kc, "print(x, 'slow' in dir())", timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        resumed = reply["metadata"]["cellblock_resumed"]
        assert resumed["restored"] is True and "x" in resumed["names"], resumed
        # Said once: the next reply has no report.
        reply, outputs = run_cell(kc, "print(x)")
        assert "cellblock_resumed" not in reply["metadata"]
        text = "".join(m["content"].get("text", "") for m in outputs
                       if m["msg_type"] == "stream")
        assert text.strip() == "1", outputs
        assert d.alive(), d.log_text()[-3000:]
    finally:
        kc.stop_channels()
