"""Per-session idle timeouts (issue 10 item 6): `cellblock new
--idle-timeout S` (0 = never) hibernates one session and not its
neighbour, shows in `ls` and `ls --json`, and is kept across a daemon
restart; the daemon's idle-timeout stays the default."""
import json
import signal
import subprocess

import pytest

from cbtest import CELLBLOCKD, Daemon, poll

DEFAULT = 3600          # the daemon's idle-timeout here: never reached by a test


def sessions(daemon):
    return {s["name"]: s for s in json.loads(daemon.cli("ls", "--json", check=True).stdout)}


def run(daemon, name, code):
    p = daemon.cli("run", name, code, timeout=60)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p.stdout


def new(daemon, name, *args):
    p = daemon.cli("new", "--name", name, *args)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture
def daemon(tmp_path):
    conf = tmp_path / "cellblockd.conf"
    conf.write_text(f"idle-timeout = {DEFAULT}\ncheckpoint-interval = 0\n")
    d = Daemon(["--config", str(conf)])
    yield d
    assert d.alive(), d.log_text()[-3000:]
    d.stop()


def restart_daemon(daemon):
    """SIGTERM, then a new daemon on the same state directory and config."""
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(timeout=30)
    start = len(daemon.log_text())
    daemon.proc = subprocess.Popen([CELLBLOCKD, "--foreground", "--state-dir",
                                    daemon.state, *daemon.args],
                                   stdout=daemon.log, stderr=subprocess.STDOUT)
    poll(lambda: "ready: control" in daemon.log_text()[start:], 30, "the restarted daemon")


def test_short_idle_timeout_hibernates_one_session_not_its_neighbour(daemon):
    new(daemon, "short", "--idle-timeout", "1")
    new(daemon, "neighbour")
    new(daemon, "forever", "--idle-timeout", "0")
    run(daemon, "short", "kept = 'short'")
    run(daemon, "neighbour", "kept = 'neighbour'")
    ls = sessions(daemon)
    assert ls["short"]["limits"]["idle_timeout"] == 1
    assert ls["neighbour"]["limits"]["idle_timeout"] == DEFAULT   # the default
    assert ls["forever"]["limits"]["idle_timeout"] == 0
    table = {ln.split()[0]: ln.split()[4] for ln in
             daemon.cli("ls", check=True).stdout.splitlines()[1:]}
    assert table["short"].endswith("s/1s"), table
    assert table["neighbour"].endswith(f"s/{DEFAULT}s"), table
    assert table["forever"].endswith("s/never"), table
    neighbour_pid = ls["neighbour"]["pid"]
    poll(lambda: sessions(daemon)["short"]["state"] == "hibernated", 30,
         "the short session to hibernate")
    ls = sessions(daemon)
    assert ls["neighbour"]["state"] == "idle", ls["neighbour"]
    assert ls["neighbour"]["pid"] == neighbour_pid
    assert ls["forever"]["state"] == "idle", ls["forever"]
    # Hibernated, not lost: the next request resumes it.
    assert run(daemon, "short", "kept") == "'short'\n"
    assert run(daemon, "neighbour", "kept") == "'neighbour'\n"


def test_idle_timeout_is_kept_across_a_daemon_restart(daemon):
    new(daemon, "short", "--idle-timeout", "1")
    new(daemon, "neighbour")
    run(daemon, "short", "kept = 'short'")
    run(daemon, "neighbour", "kept = 'neighbour'")
    restart_daemon(daemon)
    ls = sessions(daemon)
    assert ls["short"]["limits"]["idle_timeout"] == 1
    assert ls["neighbour"]["limits"]["idle_timeout"] == DEFAULT
    # Both came back hibernated; resumed, only the short one goes again.
    assert run(daemon, "neighbour", "kept") == "'neighbour'\n"
    assert run(daemon, "short", "kept") == "'short'\n"
    neighbour_pid = sessions(daemon)["neighbour"]["pid"]
    poll(lambda: sessions(daemon)["short"]["state"] == "hibernated", 30,
         "the short session to hibernate after the restart")
    ls = sessions(daemon)
    assert ls["neighbour"]["state"] == "idle" and ls["neighbour"]["pid"] == neighbour_pid


@pytest.mark.parametrize("bad", ["soon", "-1", "1.5", ""])
def test_bad_idle_timeout_is_refused_and_makes_nothing(daemon, bad):
    p = daemon.cli("new", "--name", "bad", "--idle-timeout", bad)
    assert p.returncode != 0
    assert "idle-timeout" in p.stderr, p.stderr
    assert "bad" not in sessions(daemon)
