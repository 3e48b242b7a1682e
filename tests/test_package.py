"""The Debian package: `make deb` builds it, `dpkg -i` installs it, the
installed cellblockd (started directly, as the unit would start it, with a
private state directory) serves a session through the installed cellblock,
and `dpkg --purge` leaves no file of it behind.

It installs into this machine's /usr, /etc and /lib, so it runs only as
root and removes what it installed even when it fails. Every step has a
deadline; dpkg's lock (another apt run) is waited for, boundedly."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from cbtest import ROOT, control_request, wait_zygote

VERSION = "0.1.0"
PKG = "cellblock"
INSTALLED = {
    "/usr/sbin/cellblockd", "/usr/bin/cellblock", "/usr/libexec/cellblock/cellblock-shim",
    "/usr/libexec/cellblock/cellblock-egress", "/usr/share/cellblock/runner/cellblock_egress.py",
    "/usr/libexec/cellblock/cellblock-init",
    "/usr/lib/cellblock/cellblock-zygote.so", "/usr/share/cellblock/runner/cellblock_runner.py",
    "/usr/share/man/man1/cellblock.1.gz", "/usr/share/man/man8/cellblockd.8.gz",
    "/lib/systemd/system/cellblockd.service", "/etc/cellblock/cellblockd.conf",
    "/usr/share/jupyter/kernels/cellblock/kernel.json",
    "/usr/lib/python3/dist-packages/cellblock_sdk/__init__.py",
}
# Where a trace of the package could stay. /usr/local and /tmp are left out:
# other tests write kernelspecs and state there while this one runs.
SCAN = ["/etc", "/usr", "/var", "/opt", "/srv"]
SKIP = ("/usr/local", "/var/tmp", "/var/cache/apt")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: root only")


def arch():
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True, check=True).stdout.strip()


def traces():
    """Every path on the system whose name mentions cellblock."""
    found = set()
    for top in SCAN:
        for d, dirs, files in os.walk(top):
            if d.startswith(SKIP):
                dirs[:] = []
                continue
            for n in dirs + files:
                if "cellblock" in n:
                    found.add(os.path.join(d, n))
    return found


def dpkg(*args, timeout=300):
    """dpkg, retried while another package run holds its lock."""
    deadline = time.monotonic() + timeout
    while True:
        p = subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=timeout)
        locked = "lock" in p.stderr and p.returncode != 0
        if not locked or time.monotonic() > deadline:
            return p
        time.sleep(2)


def installed():
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PKG], capture_output=True,
                       text=True)
    return p.returncode == 0 and "installed" in p.stdout and "not-installed" not in p.stdout


@pytest.fixture
def deb():
    p = subprocess.run(["make", "-C", ROOT, "deb"], capture_output=True, text=True,
                       timeout=900, env={k: v for k, v in os.environ.items() if k != "MAKEFLAGS"})
    assert p.returncode == 0, (p.stdout + p.stderr)[-5000:]
    path = os.path.join(ROOT, "build", "deb", "%s_%s_%s.deb" % (PKG, VERSION, arch()))
    assert os.path.exists(path), p.stdout[-3000:]
    return path


def serve_session(state):
    """The installed daemon as the unit runs it; a session via the installed CLI."""
    log = open(os.path.join(state, "daemon.log"), "w+")
    d = subprocess.Popen(["/usr/sbin/cellblockd", "--foreground", "--state-dir", state,
                          "--config", "/etc/cellblock/cellblockd.conf",
                          # never the default port: another daemon may hold it
                          "--http-listen", "127.0.0.1:0"],
                         stdout=log, stderr=subprocess.STDOUT)
    env = dict(os.environ, CELLBLOCK_STATE_DIR=state)
    try:
        sock = os.path.join(state, "control.sock")
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            assert d.poll() is None and time.monotonic() < deadline, open(log.name).read()
            time.sleep(0.05)
        z = wait_zygote(lambda r: control_request(sock, r), 60)
        assert z.get("state") == "ready", (z, open(log.name).read())
        text = open(log.name).read()
        assert "shim /usr/libexec/cellblock/cellblock-shim" in text, text
        assert "runner /usr/share/cellblock/runner/cellblock_runner.py" in text, text
        conn = subprocess.run(["/usr/bin/cellblock", "new", "--name", "pkg"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert conn.returncode == 0, conn.stderr
        r = subprocess.run(["/usr/bin/cellblock", "run", "pkg", "import numpy; print(6 * 7)"],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == "42", (r.stdout, r.stderr)
        ls = subprocess.run(["/usr/bin/cellblock", "ls", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
        assert [s["born"] for s in json.loads(ls.stdout)] == ["zygote"]
    finally:
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(timeout=30)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
        log.close()


def test_deb_installs_serves_and_purges(deb):
    if installed():
        dpkg("--purge", PKG)     # left by an earlier run that was killed
    before = traces()
    state = tempfile.mkdtemp(prefix="cb-pkg-")
    try:
        p = dpkg("-i", deb)
        assert p.returncode == 0, p.stdout + p.stderr
        for path in INSTALLED:
            assert os.path.exists(path), path
        conffiles = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", PKG],
                                   capture_output=True, text=True).stdout
        assert "/etc/cellblock/cellblockd.conf" in conffiles
        spec = json.load(open("/usr/share/jupyter/kernels/cellblock/kernel.json"))
        assert spec["argv"][:2] == ["/usr/bin/cellblock", "attach"]
        # --man=no: its man check formats pages into /var/cache/man, a
        # trace of the test, not of the package; `man -w` only finds them.
        v = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            "/lib/systemd/system/cellblockd.service"],
                           capture_output=True, text=True, timeout=60)
        for sec, page in (("1", "cellblock"), ("8", "cellblockd")):
            w = subprocess.run(["man", "-w", sec, page], capture_output=True, text=True)
            assert w.stdout.strip() == "/usr/share/man/man%s/%s.%s.gz" % (sec, page, sec)
        noise = [l for l in (v.stdout + v.stderr).splitlines() if "cellblockd" in l]
        assert v.returncode == 0 and noise == [], noise
        # The SDK imports from Debian's python3 with no checkout on the path;
        # the bytecode that writes must not outlive the package.
        sdk = subprocess.run(["/usr/bin/python3", "-c",
                              "import cellblock_sdk; print(cellblock_sdk.__file__)"],
                             capture_output=True, text=True, cwd="/",
                             env={"PATH": "/usr/bin:/bin"}, timeout=60)
        assert sdk.stdout.strip() == \
            "/usr/lib/python3/dist-packages/cellblock_sdk/__init__.py", sdk
        serve_session(state)
    finally:
        shutil.rmtree(state, ignore_errors=True)
        p = dpkg("--purge", PKG)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not installed()
    left = traces() - before
    assert left == set(), sorted(left)
