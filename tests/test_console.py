"""`jupyter console --existing` on a cellblock session, driven through a pty.

The console runs in its normal prompt_toolkit mode (TERM=xterm), which
also asks the kernel `is_complete` on every Enter and loads the kernel's
history at start.  Its screen output is matched after removing terminal
escape sequences.  Once against a `cellblock new` connection file, once
against the shared endpoint (`STATE_DIR/shared.json`).
"""
import json
import os
import re
import time

import pexpect
import pytest

from cbtest import PYTHON

TIMEOUT = 30            # per expected screen text; pexpect's own is 60
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")


class Console:
    """A `jupyter console --existing FILE` in a pty."""

    def __init__(self, connection_file, env, tmp_path):
        env = dict(env, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1",
                   JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                   JUPYTER_DATA_DIR=str(tmp_path / "data"),
                   JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                   IPYTHONDIR=str(tmp_path / "ipython"))
        self.child = pexpect.spawn(PYTHON, ["-m", "jupyter_console", "--existing",
                                            connection_file],
                                   env=env, encoding="utf-8", timeout=60,
                                   dimensions=(40, 160))
        self.raw = ""
        self.pos = 0

    def screen(self):
        return ANSI.sub("", self.raw)

    def expect(self, pattern, timeout=TIMEOUT):
        """Wait until pattern appears in the unescaped output after the
        previous match; return the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.screen(), self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("console: no %r within %ss; screen since last match:\n%s"
                                     % (pattern, timeout, self.screen()[self.pos:]))
            try:
                self.raw += self.child.read_nonblocking(65536, timeout=min(left, 0.5))
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                raise AssertionError("console exited before %r; screen:\n%s"
                                     % (pattern, self.screen()[self.pos:]))

    def send(self, line):
        self.child.sendline(line)

    def wait_exit(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while self.child.isalive():
            if time.monotonic() > deadline:
                raise AssertionError("console still running after %ss:\n%s"
                                     % (timeout, self.screen()[self.pos:]))
            try:
                self.raw += self.child.read_nonblocking(65536, timeout=0.5)
            except (pexpect.TIMEOUT, pexpect.EOF):
                pass
        self.child.close()
        return self.child.exitstatus

    def close(self):
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


def sessions(daemon):
    p = daemon.cli("ls", "--json")
    assert p.returncode == 0, p.stderr
    return {s["name"]: s for s in json.loads(p.stdout)}


def drive(console):
    """The console conversation; returns the session's name from the banner."""
    banner = console.expect(r"session '([A-Za-z0-9_.-]+)'")
    name = banner.group(1)
    console.expect(r"In \[1\]: ")
    console.send("x = 6*7")
    console.expect(r"In \[2\]: ")          # the kernel's execution_count went 1 -> 2
    console.send("print(x)")
    console.expect(r"\n42\n")
    console.expect(r"In \[3\]: ")
    console.send("x + 1")
    console.expect(r"Out\[3\]: 43\n")
    console.expect(r"In \[4\]: ")
    console.send("undefined_name")
    console.expect(r"NameError")
    console.expect(r"In \[5\]: ")
    console.child.sendcontrol("d")
    console.expect(r"Do you really want to exit \(\[y\]/n\)\?")
    console.send("y")
    console.expect(r"keeping kernel alive")
    status = console.wait_exit()
    assert status == 0, "console exit status %r:\n%s" % (status, console.screen())
    return name


@pytest.fixture
def console_factory(daemon, tmp_path):
    consoles = []

    def make(connection_file):
        c = Console(connection_file, daemon.env(), tmp_path)
        consoles.append(c)
        return c
    yield make
    for c in consoles:
        c.close()


def test_console_on_a_new_session(daemon, console_factory):
    path = daemon.new()
    expected = os.path.basename(path)[:-len(".json")]
    try:
        name = drive(console_factory(path))
        assert name == expected
        # --existing leaves the kernel running, its state intact
        s = sessions(daemon)
        assert expected in s and s[expected]["state"] != "dead", s
        p = daemon.cli("run", expected, "print(x * 2)", timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == "84", (p.returncode, p.stdout, p.stderr)
    finally:
        daemon.cli("kill", expected)


def test_console_on_the_shared_endpoint(daemon, console_factory):
    shared = os.path.join(daemon.state, "shared.json")
    assert os.path.isfile(shared)
    before = set(sessions(daemon))
    name = drive(console_factory(shared))
    try:
        after = sessions(daemon)
        assert name in after and name not in before, (name, sorted(before), sorted(after))
        assert set(after) - before == {name}, sorted(set(after) - before)
        p = daemon.cli("run", name, "print(x * 2)", timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == "84", (p.returncode, p.stdout, p.stderr)
    finally:
        daemon.cli("kill", name)
