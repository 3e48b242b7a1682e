"""Read-only mounts of an owner's directories (issue 13): `cellblock new
--mount-ro SRC:DST` bound read-only, nosuid, nodev inside the sandbox,
permission-checked as the owner (run as uid 65534: a directory it cannot
read is refused though the daemon, root, could), bad sources and targets
refused, and the mounts restored when a hibernated session resumes."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from cbtest import CELLBLOCK, Daemon, poll, sanitizer_env

WAIT = 60
NOBODY = 65534
ST_RDONLY, ST_NOSUID, ST_NODEV = 1, 2, 4


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    conf = tmp_path_factory.mktemp("conf") / "cellblockd.conf"
    conf.write_text("idle-timeout = 3\n")
    d = Daemon(["--config", str(conf)])
    try:
        yield d
        assert d.alive(), "cellblockd died:\n" + d.log_text()[-5000:]
    finally:
        d.stop()


@pytest.fixture
def tree():
    """/tmp/cb-mounts-*/{open,private}: one anyone may read, one only root."""
    top = tempfile.mkdtemp(prefix="cb-mounts-")
    os.chmod(top, 0o755)
    for name, mode in (("open", 0o755), ("private", 0o700), ("mine", 0o700)):
        os.mkdir(os.path.join(top, name))
        with open(os.path.join(top, name, "data.csv"), "w") as f:
            f.write("a,b\n1,2\n")
        os.chmod(os.path.join(top, name), mode)
    # nobody's own private data: a 0700 directory, a 0600 file.
    os.chmod(os.path.join(top, "mine", "data.csv"), 0o600)
    for p in ("mine", "mine/data.csv"):
        os.chown(os.path.join(top, p), NOBODY, NOBODY)
    os.symlink(os.path.join(top, "open"), os.path.join(top, "link"))
    yield top
    shutil.rmtree(top)


def as_nobody(daemon, *args):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
           "CELLBLOCK_STATE_DIR": daemon.state, **sanitizer_env()}
    return subprocess.run(["/usr/bin/setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                           "--clear-groups", CELLBLOCK, *args], capture_output=True,
                          text=True, env=env, timeout=WAIT)


def contract(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout)


def describe(daemon, name):
    return [s for s in json.loads(daemon.cli("ls", "--json", check=True).stdout)
            if s["name"] == name][0]


PROBE = ("import os\nst = os.statvfs('/data')\n"
         "try:\n    open('/data/new', 'w'); w = 'written'\nexcept OSError as e: w = e.errno\n"
         "(open('/data/data.csv').read(), st.f_flag & 7, w)")


def test_mount_is_read_only_nosuid_nodev(daemon, tree):
    p = as_nobody(daemon, "new", "--name", "mnt-ro", "--mount-ro", tree + "/open:/data")
    assert p.returncode == 0, p.stderr
    try:
        k = contract(as_nobody(daemon, "run", "--json", "mnt-ro", PROBE))
        assert k["status"] == "ok", k
        assert k["results"][0]["data"]["text/plain"] == \
            repr(("a,b\n1,2\n", ST_RDONLY | ST_NOSUID | ST_NODEV, 30))   # EROFS
        assert not os.path.exists(os.path.join(tree, "open", "new"))
        assert describe(daemon, "mnt-ro")["mounts"] == [
            {"source": tree + "/open", "target": "/data"}]
    finally:
        as_nobody(daemon, "kill", "mnt-ro")


def test_a_directory_the_owner_cannot_read_is_refused(daemon, tree):
    p = as_nobody(daemon, "new", "--name", "mnt-priv", "--mount-ro", tree + "/private:/data")
    assert p.returncode != 0
    assert "Permission denied" in p.stderr and "uid %d" % NOBODY in p.stderr, p.stderr
    assert "mnt-priv" not in [s["name"] for s in json.loads(daemon.cli("ls", "--json").stdout)]
    # Root may: the check is the owner's, not the daemon's.
    p = daemon.cli("new", "--name", "mnt-root", "--mount-ro", tree + "/private:/data")
    assert p.returncode == 0, p.stderr
    try:
        k = contract(daemon.cli("run", "--json", "mnt-root", "open('/data/data.csv').read()",
                                timeout=WAIT))
        assert k["results"][0]["data"]["text/plain"] == repr("a,b\n1,2\n")
    finally:
        daemon.cli("kill", "mnt-root")


@pytest.mark.parametrize("source,target", [
    ("{t}/link", "/data"),          # a symlink in the source
    ("{t}/open/../private", "/data"),
    ("relative", "/data"),
    ("{t}/missing", "/data"),
    ("{t}/open/data.csv", "/data"),  # not a directory
    ("{t}/open", "/etc"),
    ("{t}/open", "/usr/share/x"),
    ("{t}/open", "/home/session/data"),
    ("{t}/open", "/opt"),           # would cover /opt/cellblock
    ("{t}/open", "/"),
    ("{t}/open", "data"),
    ("{t}/open", "/a:b"),
])
def test_bad_mounts_are_refused(daemon, tree, source, target):
    req = {"cmd": "new", "name": "mnt-bad", "mounts": [
        {"source": source.format(t=tree), "target": target}]}
    r = daemon.control(req)
    assert r["ok"] is False and r["error"], r
    assert daemon.control({"cmd": "ls"})["ok"]
    assert "mnt-bad" not in [s["name"] for s in daemon.control({"cmd": "ls"})["sessions"]]


def test_the_owners_private_files_read_as_the_owner_could(daemon, tree):
    # Idmapped (ext4 here): the owner's files show as the session's own,
    # so a 0600 file of theirs is readable inside, and still read-only.
    p = as_nobody(daemon, "new", "--name", "mnt-mine", "--mount-ro", tree + "/mine:/data")
    assert p.returncode == 0, p.stderr
    try:
        k = contract(as_nobody(daemon, "run", "--json", "mnt-mine",
                               PROBE + "[:1] + (os.stat('/data/data.csv').st_uid,)"))
        assert k["results"][0]["data"]["text/plain"] == repr(("a,b\n1,2\n", 1000)), k
        k = contract(as_nobody(daemon, "run", "--json", "mnt-mine",
                               "import os\ntry:\n    os.chmod('/data/data.csv', 0o666); r = 'changed'\n"
                               "except OSError as e: r = e.errno\nr"))
        assert k["results"][0]["data"]["text/plain"] == "30"
        assert os.stat(os.path.join(tree, "mine", "data.csv")).st_mode & 0o777 == 0o600
    finally:
        as_nobody(daemon, "kill", "mnt-mine")


def test_mounts_field_shape_is_checked(daemon, tree):
    for mounts in ("x", [1], [{"source": tree + "/open"}],
                   [{"source": tree + "/open", "target": "/d%d" % i} for i in range(17)],
                   [{"source": tree + "/open", "target": "/d"},
                    {"source": tree + "/open", "target": "/d/e"}]):
        r = daemon.control({"cmd": "new", "name": "mnt-shape", "mounts": mounts})
        assert r["ok"] is False, mounts


def test_mounts_are_restored_on_resume(daemon, tree):
    p = daemon.cli("new", "--name", "mnt-resume", "--mount-ro", tree + "/open:/data",
                   "--mount-ro", tree + "/open:/mnt/second")
    assert p.returncode == 0, p.stderr
    try:
        code = "(open('/data/data.csv').read(), sorted(os.listdir('/mnt/second')))"
        k = contract(daemon.cli("run", "--json", "mnt-resume", "import os\nkeep = 1\n" + code,
                                timeout=WAIT))
        before = k["results"][0]["data"]["text/plain"]
        poll(lambda: describe(daemon, "mnt-resume")["state"] == "hibernated", 30, "hibernation")
        k = contract(daemon.cli("run", "--json", "mnt-resume", "import os\n(keep, %s)" % code,
                                timeout=WAIT))
        assert k["results"][0]["data"]["text/plain"] == "(1, %s)" % before, k
        assert k["resumed"] is not None
        record = json.load(open(os.path.join(daemon.state, "sessions", "mnt-resume.state")))
        assert [m["target"] for m in record["mounts"]] == ["/data", "/mnt/second"]
    finally:
        daemon.cli("kill", "mnt-resume")
