"""Notebooks and kernel managers through the `cellblock` kernelspec.

nbclient and jupyter_client's KernelManager launch `cellblock attach
{connection_file}` exactly as Jupyter does, against a private daemon.
Checked: rich outputs saved in the notebook (a pandas table as text/html,
a matplotlib figure as a real PNG, stream text), errors as
CellExecutionError, execution counts, restart, interrupt, shutdown, and
that a killed launcher takes its session and interpreter with it.

Every process started here is ended here; every wait has a deadline.
"""
import base64
import json
import os
import signal
import subprocess
import time

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cbtest import CELLBLOCK, Daemon, run_cell, poll, session_processes
from proclib import pid_alive

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- helpers

def sessions(daemon):
    p = daemon.cli("ls", "--json")
    assert p.returncode == 0, p.stderr
    return {s["name"]: s for s in json.loads(p.stdout)}


def session_pids(name):
    """Live processes of session `name` (found by its cgroup)."""
    return session_processes(name)


def new_attached_session(daemon, before):
    """The one session that appeared since `before` (a set of names)."""
    now = sessions(daemon)
    new = [s for n, s in now.items() if n not in before]
    assert len(new) == 1, "expected one new session, got %r" % (new,)
    assert new[0]["attached"], new[0]
    return new[0]


def assert_session_gone(daemon, name, interpreter_pid, timeout=10):
    poll(lambda: name not in sessions(daemon), timeout, "session %s to leave `ls`" % name)
    poll(lambda: not pid_alive(interpreter_pid), timeout,
         "interpreter pid %d of %s to exit" % (interpreter_pid, name))
    poll(lambda: not session_pids(name), timeout, "every process of %s to exit" % name)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A private daemon and a private `cellblock` kernelspec on JUPYTER_PATH."""
    d = Daemon()
    prefix = str(tmp_path_factory.mktemp("kernelspec"))
    old = os.environ.get("JUPYTER_PATH")
    try:
        p = subprocess.run([CELLBLOCK, "--state-dir", d.state, "kernelspec", "install",
                            "--prefix", prefix], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share", "jupyter")
        yield d
        assert d.alive(), "cellblockd died during the tests:\n" + d.log_text()[-5000:]
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old
        d.stop()


class Kernel:
    """A KernelManager-launched cellblock kernel and its client."""

    def __init__(self, daemon):
        from jupyter_client import KernelManager
        before = set(sessions(daemon))
        self.km = KernelManager(kernel_name="cellblock")
        self.km.start_kernel()
        self.launcher = self.km.provisioner.process
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=30)
            info = new_attached_session(daemon, before)
        except BaseException:
            self.close()
            raise
        self.name, self.pid = info["name"], info["pid"]

    def close(self):
        try:
            self.kc.stop_channels()
        finally:
            if self.km.has_kernel:
                try:
                    self.km.shutdown_kernel(now=True)
                except Exception:
                    pass
            if self.launcher.poll() is None:
                self.launcher.kill()
                self.launcher.wait(10)


@pytest.fixture
def kernel(daemon):
    k = Kernel(daemon)
    yield k
    k.close()


def outputs_of(cell, output_type):
    return [o for o in cell.outputs if o.output_type == output_type]


# ---------------------------------------------------------------- nbclient

def test_notebook_rich_outputs_and_cleanup(daemon, tmp_path):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "cellblock", "display_name": "cellblock",
                                 "language": "python"}
    nb.cells = [
        new_markdown_cell("# cellblock smoke notebook"),
        new_code_cell("import pandas as pd\nimport matplotlib.pyplot as plt\n"
                      "print('hello from cellblock')"),
        new_code_cell("df = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'],\n"
                      "                   'temp': [3.5, 19.0, 27.25]})\ndf"),
        new_code_cell("plt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares');"),
        new_code_cell(""),          # no input: nbclient must not send it
        new_code_cell("total = df['temp'].sum()\nprint(f'total={total}')\ntotal * 2"),
    ]
    before = set(sessions(daemon))
    seen = {}
    client = None

    def on_start(notebook):
        seen["launcher"] = client.km.provisioner.process
        seen["session"] = new_attached_session(daemon, before)

    client = NotebookClient(nb, timeout=30, startup_timeout=30, kernel_name="cellblock",
                            resources={"metadata": {"path": str(tmp_path)}},
                            on_notebook_start=on_start)
    client.execute()

    path = tmp_path / "out.ipynb"
    nbformat.write(nb, str(path))
    saved = nbformat.read(str(path), as_version=4)
    nbformat.validate(saved)
    md, imports, table, figure, empty, last = saved.cells

    assert md.cell_type == "markdown"
    streams = outputs_of(imports, "stream")
    assert [s.name for s in streams] == ["stdout"], "\n".join(
        "%s: %s" % (s.name, s.text) for s in streams)
    assert "hello from cellblock" in "".join(s.text for s in streams)

    results = outputs_of(table, "execute_result")
    assert len(results) == 1, table.outputs
    html = results[0].data["text/html"]
    assert "<table" in html and "Oslo" in html and "27.25" in html, html
    assert "Pune" in results[0].data["text/plain"]

    images = [o for o in figure.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, figure.outputs
    png = base64.b64decode(images[0].data["image/png"])
    assert png.startswith(PNG_MAGIC) and len(png) > 1000, png[:16]
    assert not outputs_of(figure, "error"), figure.outputs

    assert empty.outputs == [] and empty.execution_count is None

    assert "total=49.75" in "".join(s.text for s in outputs_of(last, "stream"))
    assert [r.data["text/plain"] for r in outputs_of(last, "execute_result")] == ["99.5"]

    counts = [c.execution_count for c in (imports, table, figure, last)]
    assert counts == [1, 2, 3, 4], counts
    for c in (table, last):
        assert outputs_of(c, "execute_result")[0].execution_count == c.execution_count

    # nbclient shut the kernel down: no launcher, no session, no interpreter
    launcher, info = seen["launcher"], seen["session"]
    poll(lambda: launcher.poll() is not None, 10, "the attach process to exit")
    assert launcher.returncode == 0, launcher.returncode
    assert_session_gone(daemon, info["name"], info["pid"])


def test_notebook_error_is_cell_execution_error(daemon, tmp_path):
    nb = new_notebook()
    nb.cells = [
        new_code_cell("x = 1"),
        new_code_cell("def check(v):\n    raise ValueError(f'bad value {v}')\ncheck(42)"),
        new_code_cell("y = 2"),
    ]
    before = set(sessions(daemon))
    seen = {}
    client = None

    def on_start(notebook):
        seen["session"] = new_attached_session(daemon, before)

    client = NotebookClient(nb, timeout=30, startup_timeout=30, kernel_name="cellblock",
                            resources={"metadata": {"path": str(tmp_path)}},
                            on_notebook_start=on_start)
    with pytest.raises(CellExecutionError) as e:
        client.execute()
    assert e.value.ename == "ValueError", e.value
    assert "bad value 42" in e.value.evalue
    first, bad, after = nb.cells
    assert first.execution_count == 1 and bad.execution_count == 2
    assert after.execution_count is None and after.outputs == []
    errors = outputs_of(bad, "error")
    assert len(errors) == 1 and errors[0].ename == "ValueError", bad.outputs
    assert any("check" in line for line in errors[0].traceback), errors[0].traceback
    assert not outputs_of(bad, "stream"), "traceback also went to a stream: %r" % bad.outputs
    info = seen["session"]
    assert_session_gone(daemon, info["name"], info["pid"])


# ---------------------------------------------------------------- KernelManager

def test_restart_kernel_forgets_variables(daemon, kernel):
    reply, _ = run_cell(kernel.kc, "a = 5")
    assert reply["content"]["status"] == "ok", reply["content"]
    old_launcher, old_name, old_pid = kernel.launcher, kernel.name, kernel.pid
    others = set(sessions(daemon)) - {old_name}

    kernel.km.restart_kernel()
    kernel.launcher = kernel.km.provisioner.process
    assert kernel.launcher is not old_launcher
    assert old_launcher.poll() is not None, "old attach process still running after restart"
    kernel.kc.wait_for_ready(timeout=30)

    reply, outputs = run_cell(kernel.kc, "a")
    assert reply["content"]["status"] == "error", reply["content"]
    assert reply["content"]["ename"] == "NameError", reply["content"]
    assert reply["content"]["execution_count"] == 1, reply["content"]
    reply, outputs = run_cell(kernel.kc, "a = 2\na * 21")
    assert reply["content"]["status"] == "ok", reply["content"]
    results = [m["content"]["data"]["text/plain"] for m in outputs
               if m["msg_type"] == "execute_result"]
    assert results == ["42"], outputs
    # the session serving the kernel now is not the old interpreter
    live = [s for s in sessions(daemon).values() if s["attached"] and s["name"] not in others]
    assert len(live) == 1, live
    assert live[0]["pid"] != old_pid
    if live[0]["name"] != old_name:
        assert_session_gone(daemon, old_name, old_pid)
    kernel.name, kernel.pid = live[0]["name"], live[0]["pid"]


def test_interrupt_kernel_stops_sleep(kernel):
    kc = kernel.kc
    msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"
                        "print('not interrupted')")
    deadline = time.monotonic() + 30
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream"
                and "sleeping" in msg["content"]["text"]):
            break
        assert time.monotonic() < deadline, "the cell never started"
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=10)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=10)
    elapsed = time.monotonic() - t0
    assert reply["content"]["status"] == "error", reply["content"]
    assert reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
    assert elapsed < 5, "interrupt took %.1fs" % elapsed
    errors, streams = [], []
    while True:
        msg = kc.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            errors.append(msg["content"]["ename"])
        if msg["msg_type"] == "stream":
            streams.append(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert errors == ["KeyboardInterrupt"], errors
    assert "not interrupted" not in "".join(streams)
    # the session survives the interrupt, state and all
    reply, outputs = run_cell(kc, "time.sleep(0); 6 * 7")
    assert reply["content"]["status"] == "ok", reply["content"]
    assert [m["content"]["data"]["text/plain"] for m in outputs
            if m["msg_type"] == "execute_result"] == ["42"]


def test_shutdown_kernel_leaves_nothing(daemon, kernel):
    reply, _ = run_cell(kernel.kc, "z = 1")
    assert reply["content"]["status"] == "ok", reply["content"]
    kernel.kc.stop_channels()
    t0 = time.monotonic()
    kernel.km.shutdown_kernel()
    elapsed = time.monotonic() - t0
    assert not kernel.km.is_alive()
    assert kernel.launcher.poll() is not None, "attach process still running"
    # jupyter_client sends SIGTERM after 2.5 s: a clean exit needs none
    assert kernel.launcher.returncode == 0, kernel.launcher.returncode
    assert elapsed < 2.5, "shutdown took %.1fs (the launcher needed a signal)" % elapsed
    assert_session_gone(daemon, kernel.name, kernel.pid)


def test_sigkill_of_the_launcher_ends_the_session(daemon, kernel):
    reply, _ = run_cell(kernel.kc, "w = 1")
    assert reply["content"]["status"] == "ok", reply["content"]
    assert pid_alive(kernel.pid)
    assert len(session_pids(kernel.name)) >= 2     # pid 1 (cellblock-init), interpreter
    assert kernel.launcher.pid == kernel.km.provisioner.pid
    os.kill(kernel.launcher.pid, signal.SIGKILL)
    kernel.launcher.wait(10)
    assert_session_gone(daemon, kernel.name, kernel.pid, timeout=5)
