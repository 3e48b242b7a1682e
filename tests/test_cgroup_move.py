"""Cgroup moves (docs/ZYGOTE.md, "Cgroup moves"): on cgroup v1 a new
session's process moves itself into its group, from `tasks` descriptors
the daemon opened, and the daemon checks it there at its hello;
CELLBLOCK_CGROUP_MOVE=daemon keeps the daemon's cgroup.procs write. Either
way every process of the session is in the session's group in every
hierarchy."""
import json
import os

import pytest

from cbtest import Daemon, run_cell
from proclib import cgroup_parents


def _v1_only(d):
    parents = cgroup_parents(d)
    if not parents or any(v != 1 for v in parents.values()):
        pytest.skip("the self-move is for cgroup v1 hosts (this one: %s)" % parents)
    return parents


def _moves(d):
    return d.control({"cmd": "ping"})["cgroup_moves"]


def _ls(d, name):
    return {s["name"]: s for s in json.loads(d.cli("ls", "--json", check=True).stdout)}[name]


def _in_group_everywhere(d, name, parents):
    """The session's pid 1 and the interpreter, in its group in every
    hierarchy: each group's `tasks` lists them, and /proc/PID/cgroup agrees."""
    s = _ls(d, name)
    pid = s["pid"]
    kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
    assert kids, "no interpreter below pid 1"
    for parent in parents:
        tasks = open(os.path.join(parent, s["cgroup"], "tasks")).read().split()
        assert str(pid) in tasks and kids[0] in tasks, (parent, tasks, pid, kids)
    for p in (pid, int(kids[0])):
        lines = open(f"/proc/{p}/cgroup").read().splitlines()
        for parent in parents:
            group = os.path.join(parent, s["cgroup"])
            paths = [ln.split(":", 2)[2] for ln in lines if ln.split(":")[1]]
            assert any(group.endswith(x) and x.endswith("/" + s["cgroup"])
                       for x in paths), (p, group, lines)
    return s


def _start(d, name):
    kc = d.client(d.cli("new", "--name", name, check=True).stdout.strip())
    try:
        reply, _ = run_cell(kc, "1+1")
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()


@pytest.mark.parametrize("zygote", ["yes", "no"])
def test_a_new_session_moves_itself_into_its_cgroup(zygote, tmp_path):
    conf = tmp_path / "cellblockd.conf"
    conf.write_text("zygote = %s\n" % zygote)
    d = Daemon(["--config", str(conf)], warm_pool=0)
    try:
        parents = _v1_only(d)
        before = _moves(d)
        assert before["mode"] == "child", before
        _start(d, "selfmove")
        s = _in_group_everywhere(d, "selfmove", parents)
        assert s["born"] == ("zygote" if zygote == "yes" else "exec"), s
        after = _moves(d)
        # Moved by itself and checked at its hello; no cgroup.procs write.
        assert after["by_child"] == before["by_child"] + 1, (before, after)
        assert after["by_daemon"] == before["by_daemon"], (before, after)
        assert after["fallbacks"] == 0, after
        assert "moves itself" in d.log_text()
        d.cli("kill", "selfmove", check=True)
    finally:
        d.stop()


def test_the_daemon_moves_it_when_told_to(monkeypatch):
    monkeypatch.setenv("CELLBLOCK_CGROUP_MOVE", "daemon")
    d = Daemon(warm_pool=0)
    try:
        parents = _v1_only(d)
        before = _moves(d)
        assert before["mode"] == "daemon", before
        _start(d, "daemonmove")
        _in_group_everywhere(d, "daemonmove", parents)
        after = _moves(d)
        assert after["by_daemon"] == before["by_daemon"] + 1, (before, after)
        assert after["by_child"] == before["by_child"], (before, after)
        d.cli("kill", "daemonmove", check=True)
    finally:
        d.stop()
