"""cellblockd under systemd: the unit file passes `systemd-analyze verify`,
the daemon speaks sd_notify (READY, WATCHDOG, STOPPING) on $NOTIFY_SOCKET,
and with its stderr the journal ($JOURNAL_STREAM) it stays in the
foreground and logs there. PID 1 here may not be systemd: the unit is only
verified; the protocol is checked against a socket the test holds."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from cbtest import CELLBLOCKD, ROOT, control_request

UNIT = os.path.join(ROOT, "server", "packaging", "cellblockd.service")


def verify(path):
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", path],
                       capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and bad values too: its output says.
    lines = [l for l in (p.stdout + p.stderr).splitlines()
             if os.path.basename(path) in l or "cellblockd" in l]
    return p.returncode, lines


def test_unit_verifies(tmp_path):
    # The unit as shipped, pointed at the built daemon (the installed one
    # is verified as installed by tests/test_package.py).
    text = open(UNIT).read()
    assert "ExecStart=/usr/sbin/cellblockd " in text
    unit = tmp_path / "cellblockd.service"
    unit.write_text(text.replace("/usr/sbin/cellblockd", CELLBLOCKD))
    rc, lines = verify(str(unit))
    assert rc == 0 and lines == [], lines
    for key in ("Type=notify", "Delegate=yes", "KillMode=mixed",
                "StateDirectory=cellblock", "WatchdogSec="):
        assert key in text
    # The check can fail: a mistyped key is reported.
    bad = tmp_path / "cellblockd-bad.service"
    bad.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=mixd"))
    rc, lines = verify(str(bad))
    assert lines, "systemd-analyze accepted a bad KillMode"


def recv_all(sock, want, timeout):
    """Datagrams until one contains want; all of them."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if any(want in g for g in got):
            break
    return got


def test_sd_notify_ready_watchdog_stopping():
    state = tempfile.mkdtemp(prefix="cb-notify-")
    path = os.path.join(state, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
    log = open(os.path.join(state, "daemon.log"), "w+")
    proc = subprocess.Popen([CELLBLOCKD, "--foreground", "--state-dir", state,
                             "--config", "/dev/null"], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    try:
        got = recv_all(sock, "READY=1", 60)
        assert any("READY=1" in g for g in got), (got, open(log.name).read())
        ready = [g for g in got if "READY=1" in g][0]
        assert "MAINPID=%d" % proc.pid in ready
        # Ready means serving: the control socket answers now.
        assert control_request(os.path.join(state, "control.sock"), {"cmd": "ping"})["ok"]
        # 200 ms watchdog: pinged every 100 ms; a few must come.
        pings = recv_all(sock, "WATCHDOG=1", 10)
        assert any("WATCHDOG=1" in g for g in pings), pings
        proc.send_signal(signal.SIGTERM)
        got = recv_all(sock, "STOPPING=1", 30)
        assert any("STOPPING=1" in g for g in got), got
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        log.close()
        shutil.rmtree(state, ignore_errors=True)


def test_journal_stream_keeps_foreground_and_stderr():
    """Without --foreground, but with stderr the 'journal': no detaching,
    no cellblockd.log, every line on that stderr."""
    state = tempfile.mkdtemp(prefix="cb-journal-")
    log = open(os.path.join(state, "journal.txt"), "w+")
    st = os.fstat(log.fileno())
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    proc = subprocess.Popen([CELLBLOCKD, "--state-dir", state, "--config", "/dev/null"],
                            stdout=log, stderr=log, env=env)
    try:
        sock = os.path.join(state, "control.sock")
        deadline = time.monotonic() + 30
        while not os.path.exists(sock) and time.monotonic() < deadline:
            assert proc.poll() is None, open(log.name).read()
            time.sleep(0.05)
        assert proc.poll() is None          # still the same, undetached process
        assert not os.path.exists(os.path.join(state, "cellblockd.log"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        text = open(log.name).read()
        assert "ready: control" in text and "stopped" in text
        assert "cellblockd is running" not in text   # no banner for the journal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(state, ignore_errors=True)
