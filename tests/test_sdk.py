"""The Python SDK (server/sdk/python/cellblock_sdk, docs/AGENTS.md) against
a real daemon: the E2B-shaped surface method by method, callbacks that
fire while the cell runs, typed exceptions for every status that is not
the cell's own, streamed files, and examples/agent_sdk.py end to end."""
import io
import os
import subprocess
import sys

import pytest

from cbtest import ROOT, poll
from gwtest import Gateway

sys.path.insert(0, os.path.join(ROOT, "server", "sdk", "python"))
import cellblock_sdk as cb  # noqa: E402

NOBODY = 65534


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def token(gw):
    return gw.token("sdk")


@pytest.fixture
def s(gw, token):
    with cb.Session.create(url=gw.url, token=token, memory="1G") as sess:
        yield sess


def test_create_connect_list_kill(gw, token):
    s = cb.Session.create(url=gw.url, token=token, name="sdk-one", memory="512M",
                          cpus=1, exec_timeout=600)
    assert s.name == "sdk-one" and s.id and s.sandbox_id == s.id
    assert s.info()["limits"]["memory"] == 512 * 1024 * 1024
    s.run_code("kept = 'yes'")
    t = cb.Session.connect("sdk-one", url=gw.url, token=token)
    assert t.id == s.id
    assert t.run_code("kept").text == "'yes'"
    assert cb.Session.connect(s.id, url=gw.url, token=token).name == "sdk-one"
    assert "sdk-one" in [x["name"] for x in cb.Session.list(url=gw.url, token=token)]
    assert s.is_running()
    s.kill()
    assert not t.is_running()
    with pytest.raises(cb.NotFoundError):
        cb.Session.connect("sdk-one", url=gw.url, token=token)
    s.kill()                                  # twice: harmless


def test_create_with_env_and_e2b_envs(gw, token):
    """env= (and E2B's envs=) is the session's environment: in os.environ,
    listed by name only."""
    for kw in ({"env": {"SDK_A": "1"}}, {"envs": {"SDK_A": "1"}}):
        with cb.Session.create(url=gw.url, token=token, **kw) as s:
            assert s.run_code("import os; os.environ.get('SDK_A')").text == "'1'"
            assert s.info()["env"] == ["SDK_A"]
    with pytest.raises(cb.InvalidArgumentError):
        cb.Session.create(url=gw.url, token=token, env={"CELLBLOCK_X": "1"})


def test_context_manager_ends_what_it_created(gw, token):
    with cb.Session.create(url=gw.url, token=token) as s:
        name = s.name
        with cb.Session.connect(name, url=gw.url, token=token) as again:
            assert again.run_code("1 + 1").text == "2"
        assert s.is_running()                 # a connected one is left alone
    with pytest.raises(cb.NotFoundError):
        cb.Session.connect(name, url=gw.url, token=token)


def test_run_code_execution(s):
    ex = s.run_code("print('out')\nimport sys; print('err', file=sys.stderr)\n"
                    "from IPython.display import display, HTML\n"
                    "display(HTML('<b>x</b>'))\n21 * 2")
    assert ex.status == "ok" and ex.error is None
    assert ex.text == "42"
    assert ex.logs.stdout == ["out\n"] and ex.logs.stderr == ["err\n"]
    assert ex.stdout == "out\n"
    assert [r.is_main_result for r in ex.results] == [False, True]
    assert ex.results[0].html == "<b>x</b>" and "html" in ex.results[0].formats()
    assert ex.execution_count >= 1 and ex.id
    assert ex.metrics["wall_ms"] >= 0 and "cpu_ms" in ex.metrics


def test_errors_are_data_not_exceptions(s):
    ex = s.run_code("undefined_name")
    assert ex.status == "error" and ex.text is None
    assert ex.error.name == "NameError" and "undefined_name" in ex.error.value
    assert "NameError" in ex.error.traceback and "\x1b[" not in ex.error.traceback
    ex = s.run_code("def f(:\n  pass")
    assert ex.error.name == "SyntaxError" and ex.error.line == 1


def test_callbacks_fire_while_the_cell_runs(s):
    """on_stdout writes the file the cell waits for: it can only finish if
    the callback ran before its end."""
    seen = []

    def on_stdout(text):
        seen.append(text)
        if text == "waiting\n":
            s.files.write("go", b"")

    ex = s.run_code("import os, time\nprint('waiting', flush=True)\n"
                    "for _ in range(600):\n"
                    "    if os.path.exists('go'): break\n"
                    "    time.sleep(0.05)\n"
                    "print('found' if os.path.exists('go') else 'never')",
                    on_stdout=on_stdout, on_result=seen.append)
    assert seen == ["waiting\n", "found\n"], seen
    assert ex.logs.stdout == seen


def test_on_result_and_on_error(s):
    results, errors = [], []
    s.run_code("from IPython.display import display\ndisplay(1)\n2",
               on_result=results.append, on_error=errors.append)
    assert [r.text for r in results] == ["1", "2"]
    assert [r.is_main_result for r in results] == [False, True]
    s.run_code("raise ValueError('v')", on_error=errors.append)
    assert [(e.name, e.value) for e in errors] == [("ValueError", "v")]


def test_typed_exceptions(s):
    with pytest.raises(cb.TimeoutException) as ei:
        s.run_code("import time\nprint('before')\nwhile True: time.sleep(0.05)",
                   timeout=1)
    assert ei.value.execution.status == "timeout"
    assert ei.value.execution.logs.stdout == ["before\n"]
    assert isinstance(ei.value, cb.ExecutionFailure)
    ex = s.run_code("import time\nwhile True: time.sleep(0.05)", timeout=1,
                    raise_on=False)
    assert ex.status == "timeout"
    with pytest.raises(cb.KilledError):
        s.run_code("import os\nos._exit(3)")
    assert s.run_code("1 + 1").text == "2"    # a new interpreter, same session
    with pytest.raises(cb.InvalidArgumentError):
        s.run_code("1", timeout=-5)
    assert s.run_code("1 + 2", language="python").text == "3"   # E2B's argument
    with pytest.raises(cb.InvalidArgumentError):
        s.run_code("1", language="r")
    with pytest.raises(cb.InvalidArgumentError):
        s.run_code("1", envs={"A": "b"})


def test_out_of_memory(gw, token):
    with cb.Session.create(url=gw.url, token=token, memory="256M") as s:
        with pytest.raises(cb.OutOfMemoryError) as ei:
            s.run_code("x = bytearray(1024 * 1024 * 1024)")
        assert ei.value.execution.status == "out_of_memory"


def test_files(s, tmp_path):
    s.files.write("a/b/hello.txt", "hello")
    assert s.files.read("a/b/hello.txt") == "hello"
    assert s.files.exists("a/b/hello.txt") and not s.files.exists("a/b/nope")
    blob = os.urandom(3 * 1024 * 1024 + 1)
    big = tmp_path / "big.bin"
    big.write_bytes(blob)
    with open(big, "rb") as f:                 # a file object: streamed
        info = s.files.write("big.bin", f)
    assert info.size == len(blob)
    assert s.files.read("big.bin", format="bytes") == blob
    assert b"".join(s.files.read("big.bin", format="stream")) == blob
    s.files.write("pipe.bin", io.BufferedReader(io.BytesIO(blob[:100000])))
    assert s.files.read("pipe.bin", format="bytes") == blob[:100000]
    entries = {e.name: e for e in s.files.list()}
    assert entries["big.bin"].size == len(blob) and entries["a"].type == "dir"
    assert [e.path for e in s.files.list("a", depth=2) if e.type == "file"] == \
        ["a/b/hello.txt"]
    s.files.remove("big.bin")
    with pytest.raises(cb.NotFoundError):
        s.files.read("big.bin")
    with pytest.raises((cb.NotFoundError, cb.InvalidArgumentError)):
        s.files.read("../../etc/passwd")
    s.run_code("import os\nos.symlink('/etc/passwd', 'pw')")
    with pytest.raises(cb.ForbiddenError):
        s.files.read("pw")


def test_fork_checkpoint_interrupt(s):
    s.run_code("state = [1, 2, 3]")
    assert s.checkpoint()["name"] == s.name
    with s.fork() as f:
        assert f.name != s.name and f.id != s.id
        assert f.run_code("state").text == "[1, 2, 3]"
        f.run_code("state.append(4)")
        assert s.run_code("state").text == "[1, 2, 3]"
    s.interrupt()
    s.restart()
    assert s.run_code("'state' in globals()").text == "False"


def test_owner_isolation(gw, token):
    theirs = gw.token("sdk-nobody", uid=NOBODY)
    with cb.Session.create(url=gw.url, token=token) as mine:
        with pytest.raises(cb.NotFoundError):
            cb.Session.connect(mine.name, url=gw.url, token=theirs)
        with pytest.raises(cb.NotFoundError):
            cb.Session.connect(mine.id, url=gw.url, token=theirs)
    with pytest.raises(cb.AuthenticationError):
        cb.Session.create(url=gw.url, token="not-a-token")


def test_broken_stream_recovers_by_id(s):
    """A stream cut mid-call (here the SDK's own read gives up: silence
    longer than request_timeout) is picked up again from GET
    /v1/executions/{id}: the SDK still returns the cell's result."""
    seen = []
    ex = s.run_code("import time\nprint('x', flush=True)\ntime.sleep(4)\n'done'",
                    on_stdout=seen.append, request_timeout=1)
    assert ex.text == "'done'" and seen == ["x\n"]
    assert ex.stdout == "x\n"


def test_example_runs(gw, token, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CELLBLOCK_URL": gw.url,
           "CELLBLOCK_TOKEN": token, "HOME": str(tmp_path)}
    out = tmp_path / "plot.png"
    p = subprocess.run([sys.executable if sys.executable.startswith("/usr/bin")
                        else "/usr/bin/python3",
                        os.path.join(ROOT, "examples", "agent_sdk.py"),
                        "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "turn 4: error KeyError" in p.stdout
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # --keep and --name: a second run reuses the session and its state.
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "examples", "agent_sdk.py"),
                        "--name", "sdk-example", "--keep", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "examples", "agent_sdk.py"),
                        "--name", "sdk-example", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0 and "reused" in p.stdout, p.stdout + p.stderr
    poll(lambda: "sdk-example" not in [
        x["name"] for x in cb.Session.list(url=gw.url, token=token)], 20, "the kill")


def test_same_id_and_state_across_a_daemon_restart():
    """E2B's users lose ids and files across pause/resume; here a daemon
    restart keeps the session's name, id, files and variables."""
    g = Gateway()
    try:
        token = g.token("restart")
        s = cb.Session.create(url=g.url, token=token)
        s.run_code("answer = 42")
        s.files.write("notes.txt", "kept")
        g.stop(keep=True)
        g.start()
        t = cb.Session.connect(s.id, url=g.url, token=token)
        assert (t.name, t.id) == (s.name, s.id)
        assert t.files.read("notes.txt") == "kept"
        assert t.run_code("answer").text == "42"
        t.kill()
    finally:
        g.stop()
