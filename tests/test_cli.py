"""The `cellblock` CLI against real daemons and real interpreters.

Every process started here is ended here; every wait has a deadline.
"""
import json
import os
import re
import select
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid

import pytest

from cbtest import CELLBLOCK, poll, run_cell, sanitizer_env
from proclib import pid_alive

NOBODY = 65534
SETPRIV = "/usr/bin/setpriv"
CLI_TIMEOUT = 15        # any one CLI command, a cell included
TIMEOUT = 10            # any one Jupyter reply


# ---------------------------------------------------------------- helpers

def name_of(path):
    return os.path.basename(path)[:-len(".json")]


def sessions(daemon, as_nobody=False):
    p = cli_as(daemon, "ls", "--json", nobody=as_nobody)
    assert p.returncode == 0, p.stderr
    return {s["name"]: s for s in json.loads(p.stdout)}


def nobody_env(daemon):
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
            "CELLBLOCK_STATE_DIR": daemon.state, **sanitizer_env()}


def cb(daemon, *args, timeout=CLI_TIMEOUT, **kw):
    """daemon.cli with a deadline short enough that a hung session fails fast."""
    return daemon.cli(*args, timeout=timeout, **kw)


def cli_as(daemon, *args, nobody=False, input=None, timeout=CLI_TIMEOUT):
    if not nobody:
        return daemon.cli(*args, input=input, timeout=timeout)
    return subprocess.run([SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                           "--clear-groups", CELLBLOCK, *args], capture_output=True,
                          text=True, env=nobody_env(daemon), input=input, timeout=timeout)


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ValueError):
        return 0


def daemons_for(state_dir):
    """Pids of cellblockd processes serving state_dir (read from /proc).
    A daemon's child between fork and exec still looks like the daemon:
    processes whose parent is in the set are left out."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"cellblockd" and \
                state_dir.encode() in argv and pid_alive(int(entry)):
            pids.add(int(entry))
    return sorted(p for p in pids if ppid_of(p) not in pids)


def stop_daemons(state_dir):
    for pid in daemons_for(state_dir):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        poll(lambda: not daemons_for(state_dir), 15, "autostarted daemon to exit")
    finally:
        for pid in daemons_for(state_dir):
            os.kill(pid, signal.SIGKILL)


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def write_connection_file(directory):
    ports = free_ports(5)
    info = {"shell_port": ports[0], "iopub_port": ports[1], "stdin_port": ports[2],
            "control_port": ports[3], "hb_port": ports[4], "ip": "127.0.0.1",
            "key": uuid.uuid4().hex, "transport": "tcp",
            "signature_scheme": "hmac-sha256", "kernel_name": "cellblock"}
    path = os.path.join(directory, "kernel-%s.json" % uuid.uuid4().hex[:8])
    with open(path, "w") as f:
        json.dump(info, f)
    return path


class Attach:
    """A `cellblock attach` process, as Jupyter would launch it."""

    def __init__(self, daemon, tmpdir, name=None, jpy=None):
        self.file = write_connection_file(tmpdir)
        env = daemon.env()
        env.pop("JPY_SESSION_NAME", None)
        if jpy is not None:
            env["JPY_SESSION_NAME"] = jpy
        args = [CELLBLOCK, "attach", self.file] + (["--name", name] if name else [])
        self.err = open(self.file + ".stderr", "w+")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.err)

    def stderr(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.err.close()


def read_until(proc, text, timeout):
    """Read proc.stdout (a pipe) until text appears; returns what was read."""
    got = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while text.encode() not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %r from the process within %ss; got %r" % (text, timeout, got))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("process closed stdout before %r; got %r" % (text, got))
            got += chunk
    return got.decode()


@pytest.fixture
def named(daemon):
    """A fresh session made with `new --name`; yields its name and file."""
    name = "t-" + uuid.uuid4().hex[:8]
    path = daemon.new(name)
    yield name, path
    cb(daemon, "kill", name)


# ---------------------------------------------------------------- new

def test_new_prints_a_private_connection_file(daemon):
    p = cb(daemon, "new")
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip()
    try:
        assert os.path.isabs(path) and os.path.isfile(path), path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as f:
            info = json.load(f)
        for key in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port",
                    "ip", "key", "transport", "signature_scheme"):
            assert key in info, key
        assert info["key"] and info["ip"] == "127.0.0.1"
        assert name_of(path) in sessions(daemon)
    finally:
        cb(daemon, "kill", name_of(path))


def test_new_with_a_taken_name_fails(daemon, named):
    name, _ = named
    p = cb(daemon, "new", "--name", name)
    assert p.returncode == 1
    assert "already exists" in p.stderr and name in p.stderr, p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("bad", ["bad name", "a/b", "../etc", ".hidden", "x" * 300,
                                 "semi;colon", "tab\tname", "é"])
def test_new_rejects_invalid_names(daemon, bad):
    p = cb(daemon, "new", "--name", bad)
    assert p.returncode in (1, 2), (p.returncode, p.stderr)
    assert "invalid" in p.stderr.lower(), p.stderr
    assert bad not in sessions(daemon)
    assert not os.path.exists(os.path.join(daemon.state, "sessions", bad + ".json"))


@pytest.mark.parametrize("args", [("new", "--name", b"x\xff"), ("new", "--memory", b"\xff"),
                                  ("new", "--env", b"A=\xff"), ("audit", b"\xff")],
                         ids=["name", "limit", "env", "audit"])
def test_arguments_not_utf8_are_usage_errors(daemon, args):
    """argv may hold any bytes, a request only UTF-8: refused, never sent
    without the argument (a session under another name, an audit of all)."""
    before = set(sessions(daemon))
    p = cb(daemon, *args)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "not UTF-8" in p.stderr, p.stderr
    assert set(sessions(daemon)) == before


# ---------------------------------------------------------------- ls

def test_ls_table_and_json(daemon, named):
    name, path = named
    p = cb(daemon, "ls")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATE", "OWNER"], lines[0]
    row = [l for l in lines[1:] if l.split()[0] == name]
    assert len(row) == 1 and path in row[0] and "root" in row[0], p.stdout
    s = sessions(daemon)[name]
    assert s["name"] == name
    assert s["owner"] == 0
    assert s["connection_file"] == path
    assert s["state"] in ("creating", "idle", "busy")
    assert isinstance(s["pid"], int)
    poll(lambda: sessions(daemon)[name]["state"] == "idle", 20, "the session to be idle")
    pid = sessions(daemon)[name]["pid"]
    assert pid > 0 and pid_alive(pid)


# ---------------------------------------------------------------- run

def test_run_prints_output_and_result(daemon, named):
    name, _ = named
    p = cb(daemon, "run", name, "print('hello')\n6 * 7")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hello\n42\n"


def test_run_reads_code_from_stdin(daemon, named):
    name, _ = named
    p = cb(daemon, "run", name, "-", input="total = sum(range(5))\nprint('total', total)\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "total 10\n"


def test_run_exception_goes_to_stderr_with_exit_1(daemon, named):
    name, _ = named
    p = cb(daemon, "run", name, "print('before')\n1 / 0")
    assert p.returncode == 1
    assert "before" in p.stdout
    assert "ZeroDivisionError" in p.stderr and "Traceback" in p.stderr, p.stderr
    assert "ZeroDivisionError" not in p.stdout
    assert "\x1b[" not in p.stderr, "colour codes on a pipe"


def test_run_stderr_output_goes_to_stderr(daemon, named):
    name, _ = named
    p = cb(daemon, "run", name, "import sys\nprint('to-err', file=sys.stderr)\nprint('to-out')")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "to-out\n"
    assert "to-err" in p.stderr and "to-err" not in p.stdout


def test_run_state_persists(daemon, named):
    name, _ = named
    assert cb(daemon, "run", name, "kept = 41").returncode == 0
    p = cb(daemon, "run", name, "kept + 1")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "42\n"


def test_run_on_a_missing_session(daemon):
    p = cb(daemon, "run", "no-such-session-here", "1")
    assert p.returncode == 4
    assert "no session" in p.stderr


@pytest.mark.parametrize("args", [("run",), ("run", "onlyname"), ("run", "a", "b", "c"),
                                  ("run", "--timeout", "x", "a", "1"), ("run", "--bogus", "a", "1")])
def test_run_bad_arguments(daemon, args):
    p = cb(daemon, *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "usage" in p.stderr.lower()


# ---------------------------------------------------------------- interrupt, restart, kill

def test_interrupt_a_running_run(daemon, named):
    name, _ = named
    run = subprocess.Popen([CELLBLOCK, "run", name,
                            "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"],
                           env=daemon.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(run, "sleeping", 30)
        t0 = time.monotonic()
        p = cb(daemon, "interrupt", name)
        assert p.returncode == 0, p.stderr
        _, err = run.communicate(timeout=10)
        assert time.monotonic() - t0 < 10
        assert run.returncode == 1
        assert b"KeyboardInterrupt" in err, err
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    # The session survived it.
    assert cb(daemon, "run", name, "'alive'").stdout == "'alive'\n"


def test_ctrl_c_on_run_interrupts_the_cell(daemon, named):
    name, _ = named
    run = subprocess.Popen([CELLBLOCK, "run", name,
                            "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"],
                           env=daemon.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(run, "sleeping", 30)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=10)
        assert run.returncode == 1
        assert b"KeyboardInterrupt" in err, err
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_sigterm_ends_run_promptly(daemon, named):
    name, _ = named
    run = subprocess.Popen([CELLBLOCK, "run", name,
                            "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"],
                           env=daemon.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(run, "sleeping", 30)
        run.send_signal(signal.SIGTERM)
        try:
            rc = run.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise AssertionError("`cellblock run` still running 5 s after SIGTERM")
        assert rc != 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    # A client going away leaves the session usable once the cell ends.
    cb(daemon, "interrupt", name)
    p = cb(daemon, "run", name, "'after'", timeout=CLI_TIMEOUT)
    assert p.stdout == "'after'\n", p.stderr


SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"
STUBBORN = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "print('stubborn', flush=True)\ntime.sleep(60)")


def test_run_timeout_interrupts_the_cell_and_keeps_state(daemon, named):
    """run --timeout (issue 10 item 5): at the deadline the cell is
    interrupted, not left running: when run exits (status 6) the session is
    idle, its state kept, and the next run is answered, not queued behind."""
    name, _ = named
    assert cb(daemon, "run", name, "kept = 7").returncode == 0
    pid = sessions(daemon)[name]["pid"]
    p = cb(daemon, "run", "--timeout", "1", name, SLEEPER)
    assert p.returncode == 6, (p.returncode, p.stderr)
    assert p.stdout == "sleeping\n"
    assert "KeyboardInterrupt" in p.stderr, p.stderr
    assert "timed out after 1 s: the cell was interrupted" in p.stderr, p.stderr
    s = sessions(daemon)[name]
    assert s["state"] == "idle" and s["pid"] == pid, s
    p = cb(daemon, "run", name, "kept")
    assert p.returncode == 0 and p.stdout == "7\n", (p.stdout, p.stderr)


def test_run_timeout_restarts_a_cell_that_ignores_the_interrupt(daemon, named):
    """A cell that ignores SIGINT is still running after the grace period:
    run restarts the interpreter (as exec-timeout does), says so, exits 6,
    and the session answers from a fresh interpreter."""
    name, _ = named
    assert cb(daemon, "run", name, "kept = 7").returncode == 0
    old_pid = sessions(daemon)[name]["pid"]
    p = cb(daemon, "run", "--timeout", "1", name, STUBBORN, timeout=30)
    assert p.returncode == 6, (p.returncode, p.stderr)
    assert p.stdout == "stubborn\n"
    assert "did not stop within 2 s of its interrupt; restarting" in p.stderr, p.stderr
    assert "the interpreter was stopped (restart)" in p.stderr, p.stderr
    p = cb(daemon, "run", name, "kept")
    assert p.returncode == 1 and "NameError" in p.stderr, (p.stdout, p.stderr)
    p = cb(daemon, "run", name, "1 + 1")
    assert p.returncode == 0 and p.stdout == "2\n"
    assert sessions(daemon)[name]["pid"] not in (old_pid, 0, None)
    poll(lambda: not pid_alive(old_pid), 10, "the old interpreter to go")


def test_run_timeout_does_not_count_time_queued(daemon, named):
    """The deadline starts when the cell runs: a run queued behind another
    client's cell is not interrupted, nor is that other cell."""
    name, _ = named
    first = subprocess.Popen([CELLBLOCK, "run", name,
                              "import time\nprint('first', flush=True)\ntime.sleep(3)\n"
                              "print('first done')"],
                             env=daemon.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_until(first, "first", 30)
        p = cb(daemon, "run", "--timeout", "2", name, "'second'", timeout=30)
        assert p.returncode == 0 and p.stdout == "'second'\n", (p.returncode, p.stderr)
        out, err = first.communicate(timeout=30)
        assert first.returncode == 0 and b"first done" in out, (out, err)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_restart_clears_state(daemon, named):
    name, _ = named
    assert cb(daemon, "run", name, "gone = 1").returncode == 0
    old_pid = sessions(daemon)[name]["pid"]
    p = cb(daemon, "restart", name)
    assert p.returncode == 0, p.stderr
    p = cb(daemon, "run", name, "gone")
    assert p.returncode == 1 and "NameError" in p.stderr, (p.stdout, p.stderr)
    p = cb(daemon, "run", name, "1 + 1")
    assert p.returncode == 0 and p.stdout == "2\n"
    new_pid = sessions(daemon)[name]["pid"]
    assert new_pid != old_pid and new_pid > 0
    poll(lambda: not pid_alive(old_pid), 10, "the old interpreter to go")


def test_kill_ends_everything(daemon):
    path = daemon.new()
    name = name_of(path)
    pid = poll(lambda: sessions(daemon)[name]["pid"] > 0 and sessions(daemon)[name]["pid"],
               20, "an interpreter pid")
    p = cb(daemon, "kill", name)
    assert p.returncode == 0, p.stderr
    assert name not in sessions(daemon)
    poll(lambda: not os.path.exists(path), 10, "the connection file to be removed")
    poll(lambda: not pid_alive(pid), 10, "the interpreter to exit")
    p = cb(daemon, "kill", name)
    assert p.returncode == 4 and "no session" in p.stderr


@pytest.mark.parametrize("cmd", ["interrupt", "restart", "kill"])
def test_session_commands_on_missing_session_and_bad_args(daemon, cmd):
    p = cb(daemon, cmd, "no-such-session-here")
    assert p.returncode == 4 and "no session" in p.stderr
    p = cb(daemon, cmd)
    assert p.returncode == 2 and "usage" in p.stderr.lower()


# ---------------------------------------------------------------- autostart

def clean_env():
    env = dict(os.environ)
    env.pop("CELLBLOCK_STATE_DIR", None)
    return env


@pytest.mark.parametrize("how", ["flag", "env"])
def test_autostart(how, tmp_path):
    state = str(tmp_path / "state")
    env = clean_env()
    if how == "flag":
        args = [CELLBLOCK, "--state-dir", state]
    else:
        args = [CELLBLOCK]
        env["CELLBLOCK_STATE_DIR"] = state
    assert daemons_for(state) == []
    try:
        p = subprocess.run(args + ["new", "--name", "auto"], capture_output=True, text=True,
                           env=env, timeout=CLI_TIMEOUT)
        assert p.returncode == 0, p.stderr
        path = p.stdout.strip()
        assert path == os.path.join(state, "sessions", "auto.json")
        assert os.path.isfile(path)
        assert len(daemons_for(state)) == 1
        assert os.path.exists(os.path.join(state, "control.sock"))
        # The same daemon answers the next command: no second one starts.
        p = subprocess.run(args + ["run", "auto", "3 * 3"], capture_output=True, text=True,
                           env=env, timeout=CLI_TIMEOUT)
        assert p.returncode == 0 and p.stdout == "9\n", p.stderr
        assert len(daemons_for(state)) == 1
    finally:
        stop_daemons(state)


def test_no_daemon_and_no_autostart(tmp_path):
    blocker = tmp_path / "regular-file"
    blocker.write_text("not a directory\n")
    state = str(blocker / "state")
    try:
        p = subprocess.run([CELLBLOCK, "--state-dir", state, "ls"], capture_output=True,
                           text=True, env=clean_env(), timeout=CLI_TIMEOUT)
        assert p.returncode == 3, (p.returncode, p.stderr)
        assert p.stderr.startswith("cellblock: ") and "daemon" in p.stderr, p.stderr
        assert p.stdout == ""
    finally:
        stop_daemons(state)
    assert daemons_for(state) == []


# ---------------------------------------------------------------- ownership

def test_ownership_between_users(daemon, named):
    if not os.path.exists(SETPRIV) or os.geteuid() != 0:
        pytest.fail("this test needs root and util-linux setpriv")
    root_name, root_path = named
    assert stat.S_IMODE(os.stat(daemon.state).st_mode) == 0o711
    # nobody sees none of root's sessions.
    theirs = sessions(daemon, as_nobody=True)
    assert root_name not in theirs
    assert all(s["owner"] == NOBODY for s in theirs.values())
    # ... and touches none of them.
    for cmd in (["kill", root_name], ["interrupt", root_name], ["restart", root_name],
                ["run", root_name, "1"]):
        p = cli_as(daemon, *cmd, nobody=True)
        assert p.returncode == 5, (cmd, p.returncode, p.stderr)
        assert "not yours" in p.stderr, p.stderr
    assert root_name in sessions(daemon)
    # nobody cannot read root's connection file.
    p = subprocess.run([SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                        "--clear-groups", "cat", root_path], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode != 0 and "key" not in p.stdout
    # nobody's own session.
    mine = "nb-own-" + uuid.uuid4().hex[:6]
    try:
        p = cli_as(daemon, "new", "--name", mine, nobody=True)
        assert p.returncode == 0, p.stderr
        path = p.stdout.strip()
        st = os.stat(path)
        assert st.st_uid == NOBODY and stat.S_IMODE(st.st_mode) == 0o600
        assert sessions(daemon, as_nobody=True)[mine]["owner"] == NOBODY
        assert sessions(daemon)[mine]["owner"] == NOBODY
        p = cli_as(daemon, "ls", nobody=True)
        assert mine in p.stdout and root_name not in p.stdout
        p = cli_as(daemon, "run", mine, "'from nobody'", nobody=True)
        assert p.returncode == 0 and p.stdout == "'from nobody'\n", p.stderr
    finally:
        cb(daemon, "kill", mine)


# ---------------------------------------------------------------- kernelspec

def test_kernelspec_install_prefix(tmp_path):
    prefix = tmp_path / "prefix"
    p = subprocess.run([CELLBLOCK, "kernelspec", "install", "--prefix", str(prefix)],
                       capture_output=True, text=True, env=clean_env(), timeout=30)
    assert p.returncode == 0, p.stderr
    spec_file = prefix / "share" / "jupyter" / "kernels" / "cellblock" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["display_name"] == "Python 3 (cellblock)"
    assert spec["interrupt_mode"] == "message"
    assert spec["language"] == "python"
    assert spec["argv"][-2:] == ["attach", "{connection_file}"]
    assert os.path.samefile(spec["argv"][0], CELLBLOCK)


def test_kernelspec_install_user(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env()
    env["HOME"] = str(home)
    env.pop("XDG_DATA_HOME", None)
    p = subprocess.run([CELLBLOCK, "kernelspec", "install", "--user"], capture_output=True,
                       text=True, env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    spec_file = home / ".local" / "share" / "jupyter" / "kernels" / "cellblock" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["argv"][-2:] == ["attach", "{connection_file}"]
    assert spec["display_name"] == "Python 3 (cellblock)"


def test_kernelspec_bad_arguments(tmp_path):
    for args in (["kernelspec"], ["kernelspec", "remove"],
                 ["kernelspec", "install", "--user", "--prefix", str(tmp_path)]):
        p = subprocess.run([CELLBLOCK, *args], capture_output=True, text=True,
                           env=clean_env(), timeout=30)
        assert p.returncode == 2 and "usage" in p.stderr.lower(), (args, p.stderr)


# ---------------------------------------------------------------- attach

def test_attach_serves_the_connection_file(daemon, tmp_path):
    name = "att-" + uuid.uuid4().hex[:6]
    a = Attach(daemon, str(tmp_path), name=name)
    kc = None
    try:
        from jupyter_client import BlockingKernelClient
        kc = BlockingKernelClient(connection_file=a.file)
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        reply, out = run_cell(kc, "kept = 'yes'\n2 ** 10", timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok"
        assert [m["content"]["data"]["text/plain"] for m in out
                if m["msg_type"] == "execute_result"] == ["1024"]
        s = sessions(daemon)[name]
        assert s["attached"] is True
        # SIGINT to the launcher interrupts the running cell.
        msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(30)")
        deadline = time.monotonic() + 20
        while True:
            m = kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01))
            if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
                break
        t0 = time.monotonic()
        a.proc.send_signal(signal.SIGINT)
        while True:
            m = kc.get_shell_msg(timeout=10)
            if m["parent_header"].get("msg_id") == msg_id:
                break
        assert time.monotonic() - t0 < 10
        assert m["content"]["status"] == "error"
        assert m["content"]["ename"] == "KeyboardInterrupt"
        assert a.proc.poll() is None, "SIGINT must not end the launcher"
        reply, out = run_cell(kc, "kept", timeout=TIMEOUT)
        assert [m["content"]["data"]["text/plain"] for m in out
                if m["msg_type"] == "execute_result"] == ["'yes'"]
        pid = sessions(daemon)[name]["pid"]
        # SIGTERM ends the session and the launcher exits 0.
        a.proc.send_signal(signal.SIGTERM)
        assert a.proc.wait(timeout=15) == 0, a.stderr()
        poll(lambda: name not in sessions(daemon), 10, "the session to leave ls")
        poll(lambda: not pid_alive(pid), 10, "the interpreter to exit")
    finally:
        if kc is not None:
            kc.stop_channels()
        a.stop()
        cb(daemon, "kill", name)


def test_attach_killed_launcher_ends_the_session(daemon, tmp_path):
    name = "attk-" + uuid.uuid4().hex[:6]
    a = Attach(daemon, str(tmp_path), name=name)
    try:
        poll(lambda: name in sessions(daemon), 20, "the attached session")
        a.proc.kill()
        a.proc.wait(10)
        poll(lambda: name not in sessions(daemon), 10, "the session to end with its launcher")
    finally:
        a.stop()
        cb(daemon, "kill", name)


def test_attach_session_name_from_jpy_session_name(daemon, tmp_path):
    started = []

    def attach(jpy):
        before = set(sessions(daemon))
        a = Attach(daemon, str(tmp_path), jpy=jpy)
        started.append(a)
        new = poll(lambda: set(sessions(daemon)) - before, 20, "the attached session")
        assert len(new) == 1, new
        return a, new.pop()

    try:
        a1, n1 = attach("foo")
        assert re.fullmatch(r"nb-root-[0-9a-f]+", n1), n1
        assert sessions(daemon)[n1]["attached"] is True
        a1.proc.send_signal(signal.SIGTERM)
        assert a1.proc.wait(timeout=15) == 0, a1.stderr()
        poll(lambda: n1 not in sessions(daemon), 10, "the first session to end")
        a2, n2 = attach("foo")
        assert n2 == n1
        a3, n3 = attach("bar")
        assert n3 != n1 and re.fullmatch(r"nb-root-[0-9a-f]+", n3), n3
        assert {n1, n3} <= set(sessions(daemon))
    finally:
        for a in started:
            if a.proc.poll() is None:
                a.proc.send_signal(signal.SIGTERM)
                try:
                    a.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
            a.stop()


def test_attach_bad_connection_file(daemon, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = cb(daemon, "attach", str(bad), timeout=30)
    assert p.returncode == 2 and str(bad) in p.stderr, p.stderr
    p = cb(daemon, "attach", timeout=30)
    assert p.returncode == 2 and "usage" in p.stderr.lower()


# ---------------------------------------------------------------- control socket

def test_control_flood_does_not_block_others(daemon, named):
    name, _ = named
    sock_path = os.path.join(daemon.state, "control.sock")
    flood = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    flood.settimeout(10)
    flood.connect(sock_path)
    replies = []
    stop = threading.Event()

    def reader():
        buf = b""
        while not stop.is_set():
            try:
                chunk = flood.recv(65536)
            except (socket.timeout, OSError):
                return
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            replies.extend(lines)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    lines = []
    for i in range(2000):
        kind = i % 4
        lines.append([b"bogus line %d" % i, b"{\"cmd\": \"nope%d\"}" % i, b"[1, 2, 3]",
                      b"{\"cmd\": \"kill\"}"][kind] + b"\n")
    try:
        sender = threading.Thread(target=lambda: flood.sendall(b"".join(lines)), daemon=True)
        sender.start()
        for _ in range(3):
            t0 = time.monotonic()
            p = cb(daemon, "ls", "--json", timeout=10)
            assert p.returncode == 0, p.stderr
            assert name in {s["name"] for s in json.loads(p.stdout)}
            assert time.monotonic() - t0 < 5
        sender.join(10)
        poll(lambda: replies, 10, "a reply on the flooding connection")
        first = json.loads(replies[0])
        assert first["ok"] is False and first["code"] == 2 and "bad request" in first["error"]
        assert all(json.loads(r)["ok"] is False for r in replies)
    finally:
        stop.set()
        flood.close()
        t.join(5)
    assert daemon.alive()
    assert name in sessions(daemon)
    assert cb(daemon, "run", name, "'ok'").stdout == "'ok'\n"
