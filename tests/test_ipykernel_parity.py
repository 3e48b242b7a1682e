"""What a cell shows, compared with a real ipykernel 6.17 in the same run.

Issue 10 items 3, 4 and 8: the file name cell code is compiled under (as
warnings attributed to the calling cell, tracebacks and inspect show it),
the stream names of shell escapes (`!cmd`, `%sx`, `%%bash`), and
pdb/input() prompting over stdin, ended by an interrupt. Each test starts
a fresh ipykernel (jupyter_client's KernelManager, kernel python3) and a
fresh cellblock session, runs the same cells in both and compares. Every
session runs once zygote-born and once exec'd (`zygote = no`).

Every kernel, client and daemon started here is ended here; every wait
has a deadline.
"""
import json
import queue
import re
import time

import pytest

from cbtest import DAEMON_MODES, ROOT, daemon_in_mode
from cbtest import ipykernel as start_ipykernel

WAIT = 60           # s, bound on any one reply
PID = re.compile(r"/tmp/ipykernel_\d+/")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module", params=DAEMON_MODES)
def daemon(request, tmp_path_factory):
    with daemon_in_mode(request.param, tmp_path_factory) as d:
        yield d


class Kernel:
    """A client with what it takes to interrupt its kernel."""

    def __init__(self, kc, interrupt):
        self.kc = kc
        self.interrupt = interrupt


@pytest.fixture
def cellblock(daemon):
    kc = daemon.client(daemon.new())

    def interrupt():
        kc.control_channel.send(kc.session.msg("interrupt_request", {}))
        kc.get_control_msg(timeout=WAIT)
    try:
        yield Kernel(kc, interrupt)
    finally:
        kc.stop_channels()


@pytest.fixture
def ipykernel(tmp_path):
    with start_ipykernel(tmp_path) as km:
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=WAIT)
            yield Kernel(kc, km.interrupt_kernel)
        finally:
            kc.stop_channels()


# ---------------------------------------------------------------- helpers

def run(kernel, code, answers=(), interrupt=False):
    """Execute code with allow_stdin; answer its input_requests in order,
    and once they are used up, interrupt at the next one (if asked).
    Returns (reply content, prompts, iopub messages of the request)."""
    kc = kernel.kc
    msg_id = kc.execute(code, allow_stdin=True)
    answers, prompts, reply = list(answers), [], None
    deadline = time.monotonic() + WAIT
    while reply is None:
        assert time.monotonic() < deadline, "no reply to %r" % code
        try:
            m = kc.get_stdin_msg(timeout=0.05)
            prompts.append(m["content"]["prompt"])
            if answers:
                kc.input(answers.pop(0))
            else:
                assert interrupt, "unexpected input_request %r" % m["content"]
                kernel.interrupt()
                interrupt = False
        except queue.Empty:
            pass
        try:
            m = kc.get_shell_msg(timeout=0.05)
            if m["parent_header"].get("msg_id") == msg_id:
                reply = m["content"]
        except queue.Empty:
            pass
    out = []
    while True:
        m = kc.get_iopub_msg(timeout=WAIT)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            return reply, prompts, out
        if m["msg_type"] not in ("status", "execute_input"):
            out.append(m)


def streams(out):
    """{stream name: all its text}, so chunking does not matter."""
    text = {}
    for m in out:
        if m["msg_type"] == "stream":
            c = m["content"]
            text[c["name"]] = text.get(c["name"], "") + c["text"]
    return text


def seen(out):
    """What a user sees of iopub messages, pids of cell names masked."""
    shown = []
    for m in out:
        c = m["content"]
        if m["msg_type"] == "error":
            shown.append(("error", c["ename"], c["evalue"], c["traceback"]))
        elif m["msg_type"] == "execute_result":
            shown.append(("execute_result", c["data"]))
    shown.append(("streams", streams(out)))
    return json.loads(PID.sub("/tmp/ipykernel_PID/", json.dumps(shown)))


def both(cellblock, ipykernel, cells):
    """Run cells in both kernels; the (cellblock, ipykernel) views, a cell
    at a time, so a failure names the cell."""
    for code in cells:
        cb, ipk = run(cellblock, code), run(ipykernel, code)
        yield code, (cb[0]["status"], seen(cb[2])), (ipk[0]["status"], seen(ipk[2]))


def assert_no_host_paths(text):
    for path in (ROOT, "/opt/cellblock", "/home/session", "/work/"):
        assert path not in text, "%s leaks into %r" % (path, text[:2000])


# ---------------------------------------------------------------- item 3

CELL_NAMES = [
    "import warnings\nwarnings.warn('plain')",
    # Libraries attribute these to the calling cell (stacklevel).
    "import matplotlib.pyplot as plt\n"
    "plt.style.use('seaborn')",
    "import pandas as pd\ns = pd.Series([1, 2])\nz = s.iteritems()",
    "def f(x):\n    return 1 / x",
    "import inspect\nprint(f.__code__.co_filename)\nprint(inspect.getsourcefile(f))\n"
    "print(inspect.getsource(f), end='')",
    "f(0)",
    "import traceback\ntry:\n    f(0)\nexcept ZeroDivisionError:\n"
    "    print(traceback.format_exc())",
]


def test_cell_file_names_match_ipykernel(cellblock, ipykernel):
    for code, cb, ipk in both(cellblock, ipykernel, CELL_NAMES):
        assert cb == ipk, "cell %r" % code
        assert_no_host_paths(json.dumps(cb))
    # inspect_request (`f?`) names the cell's file as ipykernel does.
    shown = []
    for kernel in (cellblock, ipykernel):
        msg_id = kernel.kc.inspect("f", 1, detail_level=0)
        reply = kernel.kc.get_shell_msg(timeout=WAIT)
        assert reply["parent_header"]["msg_id"] == msg_id
        shown.append(PID.sub("/tmp/ipykernel_PID/", ANSI.sub("", reply["content"]["data"]["text/plain"])))
    assert shown[0] == shown[1] and "/tmp/ipykernel_PID/" in shown[0], shown
    # Not vacuous: the names are ipykernel's, not IPython's own.
    reply, _, out = run(cellblock, "print(f.__code__.co_filename)")
    name = streams(out)["stdout"].strip()
    assert re.fullmatch(r"/tmp/ipykernel_\d+/\d+\.py", name), name


# ---------------------------------------------------------------- item 4

SHELL_ESCAPES = [
    "!head /nonexistent-file",
    "!echo out; echo err >&2",
    "!printf 'a\\nb\\n'; exit 3",
    "print(_exit_code)",
    "x = !head /nonexistent-file\nprint(x)",
    "%sx echo hi; echo err >&2",
    "%%bash\necho bash-out\necho bash-err >&2",
]


def test_shell_escape_streams_match_ipykernel(cellblock, ipykernel):
    for code, cb, ipk in both(cellblock, ipykernel, SHELL_ESCAPES):
        assert cb == ipk, "cell %r" % code
    # Not vacuous: the merged stream really is stdout.
    reply, _, out = run(cellblock, "!head /nonexistent-file")
    assert list(streams(out)) == ["stdout"], out


def test_interrupted_shell_escape_keeps_the_cell(cellblock, ipykernel):
    # As under ipykernel (pexpect sends the command ^C): the command ends,
    # the cell goes on, _exit_code says it was SIGINT.
    for kernel in (cellblock, ipykernel):
        kc = kernel.kc
        msg_id = kc.execute("!echo started; sleep 60\nprint('went on', _exit_code)")
        deadline = time.monotonic() + WAIT
        while True:
            m = kc.get_iopub_msg(timeout=WAIT)
            if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
                break
            assert time.monotonic() < deadline
        kernel.interrupt()
        reply = kc.get_shell_msg(timeout=WAIT)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=WAIT)
        assert reply["content"]["status"] == "ok", reply["content"]
    reply, _, out = run(cellblock, "print(_exit_code)")
    assert streams(out) == {"stdout": "-2\n"}


def test_default_extensions_as_ipykernel(cellblock, ipykernel):
    # ipykernel loads storemagic: %store exists in both.
    cells = ["x = 1\n%store x", "%store -r x\nprint(x)", "%store"]
    for code, cb, ipk in both(cellblock, ipykernel, cells):
        assert cb == ipk, "cell %r" % code
        assert cb[0] == "ok", cb


# ---------------------------------------------------------------- item 8

PDB_CELL = "x = 5\nimport pdb; pdb.set_trace()\ny = x + 1\nprint('after', y)"


def test_pdb_answered_over_stdin(cellblock, ipykernel):
    cb = run(cellblock, PDB_CELL, answers=["p x", "c"])
    ipk = run(ipykernel, PDB_CELL, answers=["p x", "c"])
    assert cb[1] == ipk[1] == ["ipdb> ", "ipdb> "]
    assert (cb[0]["status"], seen(cb[2])) == (ipk[0]["status"], seen(ipk[2]))
    assert "5\n" in streams(cb[2])["stdout"] and "after 6" in streams(cb[2])["stdout"]
    # breakpoint() prompts too (under ipykernel it goes to debugpy, which
    # does nothing without a debugger client: docs/PROTOCOL.md).
    reply, prompts, out = run(cellblock, "x = 6\nbreakpoint()\nprint('after', x)",
                              answers=["p x * 2", "c"])
    assert prompts == ["ipdb> ", "ipdb> "] and reply["status"] == "ok"
    assert "12\n" in streams(out)["stdout"] and "after 6" in streams(out)["stdout"]


def test_pdb_interrupted_ends_the_cell(cellblock):
    reply, prompts, out = run(cellblock, "x = 7\nimport pdb; pdb.set_trace()\n"
                              "print('not', 'reached')", interrupt=True)
    assert prompts == ["ipdb> "]
    assert (reply["status"], reply["ename"], reply["evalue"]) == \
        ("error", "KeyboardInterrupt", "Interrupted by user")
    assert "not reached" not in streams(out).get("stdout", "")
    errors = [m["content"] for m in out if m["msg_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "KeyboardInterrupt"
    tb = ANSI.sub("", "\n".join(errors[0]["traceback"]))
    assert "pdb.set_trace()" in tb
    assert_no_host_paths(tb)
    assert "cellblock" not in tb
    # Usable: state kept, no tracing left behind, the debugger works again.
    reply, _, out = run(cellblock, "import sys\nprint(x, sys.gettrace())")
    assert reply["status"] == "ok" and streams(out) == {"stdout": "7 None\n"}
    reply, prompts, out = run(cellblock, PDB_CELL, answers=["c"])
    assert reply["status"] == "ok" and prompts == ["ipdb> "]
    assert "after 6" in streams(out)["stdout"]


def test_input_interrupted_like_ipykernel(cellblock, ipykernel):
    code = "s = input('say: ')\nprint('got', s)"
    cb = run(cellblock, code, interrupt=True)
    ipk = run(ipykernel, code, interrupt=True)
    assert cb[1] == ipk[1] == ["say: "]
    for key in ("status", "ename", "evalue"):
        assert cb[0][key] == ipk[0][key], key
    tb = ANSI.sub("", "\n".join(cb[0]["traceback"]))
    assert "input('say: ')" in tb and "Interrupted by user" in tb
    assert_no_host_paths(tb)
    reply, _, out = run(cellblock, "s = input('again: ')\nprint('got', s)", answers=["yes"])
    assert reply["status"] == "ok" and streams(out) == {"stdout": "got yes\n"}
