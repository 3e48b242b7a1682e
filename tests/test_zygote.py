"""The zygote (docs/ZYGOTE.md): sessions forked from a preloaded, contained
interpreter, each with its own random state, and the exec path as the
fallback whenever the zygote is off, broken or gone."""
import json
import os
import signal

import pytest

from cbtest import SANDBOX_INNER_UID, Daemon, poll, run_cell


def _ls(d, name):
    for s in json.loads(d.cli("ls", "--json", check=True).stdout):
        if s["name"] == name:
            return s
    raise AssertionError(f"no session {name}")


def _value(kc, code):
    reply, outputs = run_cell(kc, code)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(m["content"]["text"] for m in outputs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout").strip()


@pytest.fixture(scope="module")
def zd():
    d = Daemon()
    yield d
    d.stop()


def _status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_sessions_are_born_from_the_ready_zygote(zd):
    z = zd.zygote()
    assert z["state"] == "ready", z
    conn = zd.new("zb")
    assert _ls(zd, "zb")["born"] == "zygote"
    kc = zd.client(conn)
    try:
        # Preloaded: the first cell finds them imported, and the sandbox is on.
        out = _value(kc, "import os, sys\n"
                         "print(all(m in sys.modules for m in ('numpy', 'pandas', 'matplotlib')),"
                         " os.getpid(), os.getuid(), os.getcwd())")
        assert out == "True 2 1000 /home/session"
    finally:
        kc.stop_channels()
    assert "zb: interpreter 1 started as pid" in zd.log_text()
    assert "(zygote)" in zd.log_text()


def test_each_session_gets_its_own_random_state(zd):
    code = ("import random, uuid, numpy\n"
            "print(random.random(), numpy.random.random(), uuid.uuid4())")
    seen = []
    for name in ("rng1", "rng2"):
        kc = zd.client(zd.new(name))
        try:
            seen.append(_value(kc, code).split())
        finally:
            kc.stop_channels()
        assert _ls(zd, name)["born"] == "zygote"
    for a, b in zip(*seen):
        assert a != b, seen


def test_process_state_is_a_fresh_interpreters(zd):
    """What the zygote's own process state would leak is reset: signal
    dispositions Python sets at start-up, the environment, sys.path."""
    kc = zd.client(zd.new("zstate"))
    try:
        out = _value(kc, r"""
import json, os, signal, sys
r = {"pipe": signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN,
     "xfsz": signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN,
     "env": sorted(os.environ), "home": os.environ["HOME"],
     "session": os.environ["CELLBLOCK_SESSION"], "mpl": os.environ["MPLCONFIGDIR"],
     "runner": [p for p in sys.path if "runner" in p]}
import tempfile
r["tmp"] = tempfile.gettempdir()
rfd, wfd = os.pipe()
os.close(rfd)
try:
    os.write(wfd, b"x")
    r["broken_pipe"] = "no error"
except BrokenPipeError:
    r["broken_pipe"] = "BrokenPipeError"
print(json.dumps(r))
""")
    finally:
        kc.stop_channels()
    r = json.loads(out)
    assert r["pipe"] and r["xfsz"]
    assert r["broken_pipe"] == "BrokenPipeError"
    assert r["home"] == "/home/session" and r["session"] == "zstate"
    assert r["mpl"] == "/tmp/.matplotlib"
    assert r["runner"] == ["/opt/cellblock/runner"], r["runner"]
    assert r["tmp"] == "/tmp"
    assert "CELLBLOCK_STATE_DIR" not in r["env"]


def test_the_zygote_itself_is_contained(zd):
    z = zd.zygote()
    pid = z["pid"]
    st = _status(pid)
    uid = 200000 + 10000        # uid-base + uid-count: just past the session range
    assert st["Uid"].split() == [str(uid)] * 4
    assert st["Gid"].split() == [str(uid)] * 4
    assert st["Groups"].strip() == ""
    assert st["CapEff"] == st["CapPrm"] == "0000000000000000"
    assert st["NoNewPrivs"] == "1"
    assert st["Threads"] == "1"
    # Its own, empty network namespace; no ZeroMQ in its address space.
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    with open(f"/proc/{pid}/net/dev") as f:
        ifaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    assert ifaces == ["lo"]
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    assert "libzmq" not in maps and "cellblock-zygote.so" in maps


def test_zygote_killed_sessions_live_on_and_exec_takes_over(zd):
    kc = zd.client(zd.new("survivor"))
    try:
        assert _value(kc, "x = 41\nprint(x + 1)") == "42"
        old = zd.zygote()["pid"]
        os.kill(old, signal.SIGKILL)
        poll(lambda: zd.zygote()["pid"] != old or zd.zygote()["state"] != "ready",
             10, "the daemon to notice the zygote's death")
        # Its sessions are the daemon's children: they do not notice.
        assert _value(kc, "print(x)") == "41"
        assert _ls(zd, "survivor")["incarnation"] == 1
    finally:
        kc.stop_channels()
    if zd.zygote()["state"] != "ready":
        zd.new("fallback")
        assert _ls(zd, "fallback")["born"] == "exec"
        kc = zd.client(os.path.join(zd.state, "sessions", "fallback.json"))
        try:
            assert _value(kc, "import os; print(os.getuid())") == str(SANDBOX_INNER_UID)
        finally:
            kc.stop_channels()
    z = zd.wait_zygote()
    assert z["state"] == "ready" and z["pid"] != old
    assert "killed by signal 9" in z["last_error"]
    zd.new("reborn")
    assert _ls(zd, "reborn")["born"] == "zygote"
    assert f"zygote pid {old} killed by signal 9" in zd.log_text()


def test_a_restarted_interpreter_is_zygote_born_again(zd):
    kc = zd.client(zd.new("again"))
    try:
        assert _value(kc, "print(1)") == "1"
        zd.cli("restart", "again", check=True)
        poll(lambda: _ls(zd, "again")["incarnation"] == 2 and _ls(zd, "again")["state"] == "idle",
             30, "the restart")
        assert _value(kc, "import os; print(os.getpid())") == "2"
        assert _ls(zd, "again")["born"] == "zygote"
    finally:
        kc.stop_channels()


def test_zygote_off_means_exec(tmp_path):
    conf = tmp_path / "cellblockd.conf"
    conf.write_text("zygote = no\n")
    d = Daemon(["--config", str(conf)])
    try:
        assert d.zygote()["state"] == "off"
        kc = d.client(d.new("plain"))
        try:
            assert _value(kc, "import os; print(os.getpid(), os.getuid())") == "2 1000"
        finally:
            kc.stop_channels()
        assert _ls(d, "plain")["born"] == "exec"
        assert "zygote: off (zygote = no)" in d.log_text()
    finally:
        d.stop()
