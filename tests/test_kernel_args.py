"""Kernel command-line arguments: a client's extra_arguments (issue 10 item 7).

jupyter_client appends `extra_arguments` to the kernelspec's argv, so the
`cellblock` kernel starts as `cellblock attach {connection_file} --A.b=c
...`. The same notebook, run by nbclient with the same arguments, must
come out of a cellblock session as it comes out of a real ipykernel 6.17
(kernel python3) in the same test; arguments ipykernel would reject, or
that mean nothing in a session, are logged as ignored and never cost the
kernel. Sessions run zygote-born and exec'd (`zygote = no`).

Every daemon and kernel started here is ended here; every wait has a
deadline.
"""
import json
import os
import re
import subprocess

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from cbtest import CELLBLOCK, DAEMON_MODES, daemon_in_mode, poll

WAIT = 120
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PID = re.compile(r"/tmp/ipykernel_\d+/")


@pytest.fixture(scope="module", params=DAEMON_MODES)
def daemon(request, tmp_path_factory):
    """A private daemon and its `cellblock` kernelspec on JUPYTER_PATH."""
    with daemon_in_mode(request.param, tmp_path_factory) as d:
        prefix = str(tmp_path_factory.mktemp("kernelspec"))
        old = os.environ.get("JUPYTER_PATH")
        try:
            p = subprocess.run([CELLBLOCK, "--state-dir", d.state, "kernelspec", "install",
                                "--prefix", prefix], capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p.stderr
            os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share", "jupyter")
            yield d
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old


def run_notebook(kernel_name, cells, extra_arguments, cwd):
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=WAIT,
                            startup_timeout=WAIT, allow_errors=True,
                            extra_arguments=list(extra_arguments),
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def outputs(nb):
    """Per cell, what a reader of the notebook sees (addresses and pids
    masked; images by type, their bytes differ with fonts and dates)."""
    seen = []
    for cell in nb.cells:
        shown = []
        for out in cell.outputs:
            kind = out["output_type"]
            if kind == "stream":
                shown.append((kind, out["name"], out["text"]))
            elif kind == "error":
                shown.append((kind, out["ename"], out["evalue"],
                              ANSI.sub("", "\n".join(out["traceback"]))))
            else:
                data = dict(out["data"])
                shown.append((kind, data.pop("text/plain", None), sorted(data)))
        seen.append(shown)
    text = json.dumps(seen)
    text = re.sub(r"0x[0-9a-f]+", "0xADDR", PID.sub("/tmp/ipykernel_PID/", text))
    return json.loads(text)


NOTEBOOK = [
    "print(answer, more, math.pi)",                 # exec_lines, -c
    "1\n2",                                         # ast_node_interactivity=all
    "import matplotlib.pyplot as plt\n_ = plt.plot([1, 2])\nplt.show()",   # svg figures
    "%autoreload 2\nprint('autoreload loaded')",    # --ext
    "print(get_ipython().history_manager.hist_file)",
    "def f():\n    return 1 / 0",
    "f()",                                          # xmode Plain
]


def extra_arguments(tmp_path):
    (tmp_path / "profile").mkdir()     # ipykernel wants it to exist
    return ["--HistoryManager.hist_file=:memory:",
            "--InteractiveShellApp.exec_lines=answer = 42",
            "--InteractiveShellApp.exec_lines=import math",
            "-c", "more = answer + 1",
            "--matplotlib=inline",
            "--InlineBackend.figure_formats=svg",
            "--InteractiveShell.ast_node_interactivity=all",
            "--ext=autoreload",
            "--InteractiveShell.xmode=Plain",
            "--profile-dir=%s" % (tmp_path / "profile")]


def test_notebook_with_extra_arguments_as_ipykernel(daemon, tmp_path):
    args = extra_arguments(tmp_path)
    cb = outputs(run_notebook("cellblock", NOTEBOOK, args, tmp_path))
    ipk = outputs(run_notebook("python3", NOTEBOOK, args, tmp_path))
    for code, mine, theirs in zip(NOTEBOOK, cb, ipk):
        assert mine == theirs, "cell %r" % code
    # Not vacuous: the arguments did something.
    assert cb[0] == [["stream", "stdout", "42 43 3.141592653589793\n"]]
    assert [o[1] for o in cb[1]] == ["1", "2"]
    assert cb[2][0][2] == ["image/svg+xml"]
    assert "Traceback (most recent call last)" in cb[6][0][3]
    log = daemon.log_text()
    assert "kernel arguments: ignored ProfileDir.location" in log


def test_arguments_ipykernel_rejects_never_kill_the_kernel(daemon, tmp_path):
    args = ["--no-such-flag", "--Nope.x=1", "stray", "--ip=10.1.2.3", "--f=/elsewhere.json",
            "--InteractiveShellApp.exec_lines=ok = 'yes'",
            "--InteractiveShellApp.exec_lines=raise ValueError('in exec_lines')",
            "--IPKernelApp.exec_files=/no/such/file.py", "--InteractiveShell.no_such_trait=1"]
    nb = run_notebook("cellblock", ["print(ok)", "print('still', ok)"], args, tmp_path)
    assert outputs(nb) == [[["stream", "stdout", "yes\n"]], [["stream", "stdout", "still yes\n"]]]
    log = poll(lambda: (lambda t: t if "ignored --no-such-flag" in t else None)(daemon.log_text()),
               30, "the ignored arguments in the log")
    for what in ("ignored --no-such-flag", "ignored Nope.x", "ignored positional argument 'stray'",
                 "ignored IPKernelApp.ip", "ignored IPKernelApp.connection_file"):
        assert "kernel arguments: " + what in log, what
    assert "no_such_trait" in log


def test_attach_still_takes_its_own_name(daemon, tmp_path):
    # `--name` after the connection file is attach's, not a kernel argument.
    nb = new_notebook(cells=[new_code_cell("print(answer)")])
    client = NotebookClient(nb, kernel_name="cellblock", timeout=WAIT, startup_timeout=WAIT,
                            extra_arguments=["--name", "argsnamed",
                                             "--InteractiveShellApp.exec_lines=answer = 7"])
    with client.setup_kernel():
        ls = json.loads(daemon.cli("ls", "--json", check=True).stdout)
        assert "argsnamed" in [s["name"] for s in ls]
        client.execute_cell(nb.cells[0], 0)
    assert nb.cells[0].outputs[0]["text"] == "7\n"


def test_each_interpreter_of_the_session_gets_them(daemon, tmp_path):
    # `cellblock restart` gives the session a new interpreter: its kernel
    # arguments configure that one too, and its old variables are gone.
    nb = new_notebook(cells=[new_code_cell("print(answer)\nlater = 1"),
                             new_code_cell("print(answer, 'later' in dir())")])
    client = NotebookClient(nb, kernel_name="cellblock", timeout=WAIT, startup_timeout=WAIT,
                            extra_arguments=["--name", "argsrestart",
                                             "--InteractiveShellApp.exec_lines=answer = 9"])
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        old = json.loads(daemon.cli("ls", "--json", check=True).stdout)
        old_pid = [s["pid"] for s in old if s["name"] == "argsrestart"][0]
        daemon.cli("restart", "argsrestart", check=True)
        poll(lambda: [s for s in json.loads(daemon.cli("ls", "--json", check=True).stdout)
                      if s["name"] == "argsrestart" and s["pid"] not in (old_pid, 0, -1)],
             WAIT, "a new interpreter")
        client.execute_cell(nb.cells[1], 1)
    assert nb.cells[0].outputs[0]["text"] == "9\n"
    assert nb.cells[1].outputs[0]["text"] == "9 False\n"


def test_kernel_arguments_are_bounded(daemon, tmp_path):
    # Absurd input gets a clear error, from attach and from the daemon;
    # neither starts a session for it.
    before = daemon.cli("ls", "--json", check=True).stdout
    p = daemon.cli("attach", str(tmp_path / "conn.json"), *(["--x=1"] * 300))
    assert p.returncode == 2 and "more than 256 kernel arguments" in p.stderr, p.stderr
    for bad in ("--a=1", ["--a=1", 7], ["x" * 70000], ["--a"] * 300):
        r = daemon.control({"cmd": "attach", "connection": {}, "kernel_args": bad})
        assert not r.get("ok") and "kernel_args must be" in r.get("error", ""), r
    assert daemon.cli("ls", "--json", check=True).stdout == before
    assert daemon.alive()
