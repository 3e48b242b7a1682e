"""A session's files through the daemon (issue 13, server/files.c):
`cellblock cp` both ways byte for byte, files owned by the session's uid,
traversal and symlink attacks (a symlink race included) refused, the
size cap and the per-owner quota, a hibernated session's files served
without resuming it, and two owners kept apart."""
import ast
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest

from cbtest import CELLBLOCK, SANDBOX_INNER_UID, Daemon, poll, running_daemon, sanitizer_env

WAIT = 60
NOBODY = 65534


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    conf = tmp_path_factory.mktemp("conf") / "cellblockd.conf"
    conf.write_text("files-max-size = 8M\nfiles-quota = 20M\n")
    with running_daemon(["--config", str(conf)]) as d:
        yield d


@pytest.fixture
def session(daemon):
    name = daemon.new_name()
    yield name
    daemon.cli("kill", name)


def describe(daemon, name):
    return [s for s in json.loads(daemon.cli("ls", "--json", check=True).stdout)
            if s["name"] == name][0]


def run(daemon, name, code):
    p = daemon.cli("run", "--json", name, code, timeout=WAIT)
    k = json.loads(p.stdout)
    assert k["status"] == "ok", k
    return k


def value(daemon, name, expr):
    return run(daemon, name, expr)["results"][0]["data"]["text/plain"]


def files(daemon, name, op, path=""):
    return daemon.control({"cmd": "files", "op": op, "name": name, "path": path})


def test_cp_round_trips_bytes_exactly(daemon, session, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    p = daemon.cli("cp", str(src), session + ":data/in.bin")
    assert p.returncode == 0, p.stderr
    # The cell sees it, as its own uid, under its working directory.
    seen = value(daemon, session, "import hashlib, os\n"
                 "(hashlib.sha256(open('data/in.bin','rb').read()).hexdigest(), "
                 "os.stat('data/in.bin').st_uid, os.stat('data').st_uid)")
    assert ast.literal_eval(seen) == (hashlib.sha256(data).hexdigest(), SANDBOX_INNER_UID,
                                      SANDBOX_INNER_UID)
    host = os.stat(os.path.join(describe(daemon, session)["workdir"], "data/in.bin"))
    assert host.st_uid == describe(daemon, session)["uid"]
    run(daemon, session, "open('data/out.bin','wb').write(open('data/in.bin','rb').read()[::-1])")
    dst = tmp_path / "out.bin"
    p = daemon.cli("cp", session + ":data/out.bin", str(dst))
    assert p.returncode == 0, p.stderr
    assert dst.read_bytes() == data[::-1]
    # Into a directory: its base name.
    p = daemon.cli("cp", session + ":data/out.bin", str(tmp_path))
    assert p.returncode == 0 and (tmp_path / "out.bin").read_bytes() == data[::-1]


def test_list_and_remove(daemon, session, tmp_path):
    run(daemon, session, "import os\nos.makedirs('d/e')\nopen('d/f.txt','w').write('12345')")
    r = files(daemon, session, "list", "d")
    assert r["ok"] and sorted((e["name"], e["type"]) for e in r["entries"]) == \
        [("e", "dir"), ("f.txt", "file")]
    assert [e["size"] for e in r["entries"] if e["name"] == "f.txt"] == [5]
    top = files(daemon, session, "list")
    assert ".cellblock" not in [e["name"] for e in top["entries"]]
    assert files(daemon, session, "remove", "d")["ok"] is False     # not empty
    assert files(daemon, session, "remove", "d/f.txt")["ok"] is True
    assert files(daemon, session, "remove", "d/e")["ok"] is True
    r = files(daemon, session, "list", "d")
    assert r["ok"] and r["entries"] == []
    missing = files(daemon, session, "remove", "nope")
    assert missing["ok"] is False and missing["kind"] == "not_found"


BAD_PATHS = ["../x", "a/../../x", "/etc/passwd", "./x", "a//b", ".cellblock/state",
             "..", "x/..", "a" * 2000]


def test_traversal_is_refused(daemon, session, tmp_path):
    src = tmp_path / "f"
    src.write_text("x")
    for path in BAD_PATHS:
        p = daemon.cli("cp", str(src), session + ":" + path)
        assert p.returncode != 0, path
        r = files(daemon, session, "list", path)
        assert r["ok"] is False and r["kind"] in ("bad_path", "forbidden"), (path, r)
    p = daemon.cli("cp", session + ":../../../../etc/passwd", str(tmp_path / "p"))
    assert p.returncode != 0 and not (tmp_path / "p").exists()


def test_symlinks_are_never_followed(daemon, session, tmp_path):
    run(daemon, session, "import os\nos.symlink('/etc', 'etc')\nos.symlink('/etc/passwd', 'pw')\n"
        "os.symlink('..', 'up')\nos.makedirs('real')\nos.symlink('real', 'inside')")
    out = tmp_path / "o"
    for remote in ("etc/passwd", "pw", "up/x", "inside/y"):
        p = daemon.cli("cp", session + ":" + remote, str(out))
        assert p.returncode != 0, remote
        assert not out.exists()
    src = tmp_path / "s"
    src.write_text("planted")
    tag = "cb-files-" + uuid.uuid4().hex
    for remote in ("etc/" + tag, "up/" + tag, "inside/" + tag):
        p = daemon.cli("cp", str(src), session + ":" + remote)
        assert p.returncode != 0, remote
    assert not os.path.exists("/etc/" + tag)
    # The link itself is listed as a link, and removing it removes only it.
    entries = {e["name"]: e["type"] for e in files(daemon, session, "list")["entries"]}
    assert entries["pw"] == "symlink"
    assert files(daemon, session, "remove", "pw")["ok"] is True
    assert os.path.exists("/etc/passwd")


def test_a_symlink_race_never_escapes(daemon, session, tmp_path):
    # The cell swaps d between a real directory and a link to /etc as fast as
    # it can while uploads and downloads go to d/...: none may land outside.
    tag = "cb-race-" + uuid.uuid4().hex
    # renameat2(RENAME_EXCHANGE) swaps the two atomically: d always exists,
    # as a directory or as the link (an upload never finds it missing).
    swapper = ("import ctypes, os, threading\nos.makedirs('d', exist_ok=True)\n"
               "open('d/hostname', 'w').write('inside')\n"
               "os.symlink('/etc', 'lnk')\n"
               "libc = ctypes.CDLL(None, use_errno=True)\n"
               "assert libc.renameat2(-100, b'd', -100, b'lnk', 2) == 0\n"
               "assert libc.renameat2(-100, b'd', -100, b'lnk', 2) == 0\n"
               "stop = False\n"
               "def swap():\n"
               "    n = 0\n"
               "    while not stop and n < 20000000:\n"
               "        n += 1\n"
               "        libc.renameat2(-100, b'd', -100, b'lnk', 2)\n"
               "t = threading.Thread(target=swap, daemon=True)\nt.start()")
    run(daemon, session, swapper)
    src = tmp_path / "s"
    src.write_text("planted")
    got = []
    try:
        for i in range(60):
            daemon.cli("cp", str(src), "%s:d/%s" % (session, tag))
            out = tmp_path / ("h%d" % i)
            if daemon.cli("cp", session + ":d/hostname", str(out)).returncode == 0:
                got.append(out.read_text())
    finally:
        run(daemon, session, "stop = True\nt.join()")
    assert not os.path.exists("/etc/" + tag) and not os.path.exists("/" + tag)
    # Some copies went through while d was a real directory (not vacuous),
    # none ever through the link.
    assert got and all(g == "inside" for g in got), set(got)


def test_size_cap_and_quota(daemon, tmp_path):
    a, b = daemon.new_name(), daemon.new_name()
    try:
        big = tmp_path / "big"
        big.write_bytes(b"x" * (9 * 1024 * 1024))
        p = daemon.cli("cp", str(big), a + ":big")
        assert p.returncode != 0 and "files-max-size" in p.stderr, p.stderr
        part = tmp_path / "part"
        part.write_bytes(os.urandom(7 * 1024 * 1024))
        results = [daemon.cli("cp", str(part), "%s:p%d" % (s, i)).returncode
                   for i, s in enumerate((a, b, a, b))]
        # 20M for the owner across both sessions: the fourth 7M is refused.
        assert results[:2] == [0, 0] and 1 in results[2:], results
        r = files(daemon, b, "list")
        assert r["ok"] and not any(e["name"].startswith(".p") for e in r["entries"]), r
    finally:
        daemon.cli("kill", a)
        daemon.cli("kill", b)


def test_hibernated_session_files_without_resuming(tmp_path):
    conf = tmp_path / "cellblockd.conf"
    conf.write_text("idle-timeout = 2\n")
    d = Daemon(["--config", str(conf)])
    try:
        name = d.new_name()
        run(d, name, "open('kept.txt','w').write('still here')")
        poll(lambda: describe(d, name)["state"] == "hibernated", 30, "hibernation")
        out = tmp_path / "kept.txt"
        p = d.cli("cp", name + ":kept.txt", str(out))
        assert p.returncode == 0, p.stderr
        assert out.read_text() == "still here"
        up = tmp_path / "up.txt"
        up.write_text("while asleep")
        assert d.cli("cp", str(up), name + ":up.txt").returncode == 0
        info = describe(d, name)
        assert info["state"] == "hibernated" and info["pid"] == -1, info
        assert value(d, name, "open('up.txt').read()") == repr("while asleep")
    finally:
        d.stop()


def test_two_owners_are_isolated(daemon, session, tmp_path):
    run(daemon, session, "open('secret','w').write('s')")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
           "CELLBLOCK_STATE_DIR": daemon.state, **sanitizer_env()}
    where = tempfile.mkdtemp(prefix="cb-files-nobody-")
    try:
        os.chmod(where, 0o777)
        out = os.path.join(where, "n")
        p = subprocess.run(["/usr/bin/setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                            "--clear-groups", CELLBLOCK, "cp", session + ":secret", out],
                           capture_output=True, text=True, env=env, timeout=WAIT)
        assert p.returncode != 0 and "not yours" in p.stderr, p.stderr
        assert os.listdir(where) == []
    finally:
        shutil.rmtree(where)


def test_bad_descriptors_and_ops(daemon, session, tmp_path):
    # No fd, an fd of the wrong kind, an unknown op: clear errors, nothing lost.
    assert files(daemon, session, "put", "x")["ok"] is False
    assert files(daemon, session, "frob", "x")["ok"] is False
    r, w = os.pipe()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT)
        s.connect(os.path.join(daemon.state, "control.sock"))
        req = json.dumps({"cmd": "files", "op": "put", "name": session, "path": "x"}).encode() + b"\n"
        socket.send_fds(s, [req], [r])
        reply = json.loads(s.makefile().readline())
    os.close(r)
    os.close(w)
    assert reply["ok"] is False and "regular file" in reply["error"]
    assert value(daemon, session, "1+1") == "2"


def test_transfers_are_audited(daemon, session, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("12345")
    assert daemon.cli("cp", str(src), session + ":audited.txt").returncode == 0
    assert daemon.cli("cp", session + ":audited.txt", str(tmp_path / "b.txt")).returncode == 0
    p = daemon.cli("audit", "--json", session, check=True)
    events = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    if len(events) == 1 and isinstance(events[0], list):
        events = events[0]
    got = [(e.get("path"), e.get("bytes"), e.get("direction")) for e in events
           if e.get("event") == "transfer"]
    assert ("audited.txt", 5, "in") in got and ("audited.txt", 5, "out") in got, events


def test_extra_descriptors_are_not_kept(daemon, session, tmp_path):
    # Several descriptors in one message, and in many: the daemon keeps at
    # most one per connection (the last), closing the rest.
    before = len(os.listdir("/proc/%d/fd" % daemon.proc.pid))
    f = open(tmp_path / "x", "w")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(WAIT)
            s.connect(os.path.join(daemon.state, "control.sock"))
            rd = s.makefile()
            for _ in range(50):
                req = json.dumps({"cmd": "ping"}).encode() + b"\n"
                socket.send_fds(s, [req], [f.fileno()] * 3)
                assert json.loads(rd.readline())["ok"]
            during = len(os.listdir("/proc/%d/fd" % daemon.proc.pid))
            rd.close()
    finally:
        f.close()
    assert during <= before + 3, (before, during)
