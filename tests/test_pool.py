"""The warm pool (docs/ZYGOTE.md, "The warm pool"): interpreters forked
from the zygote and contained in advance, claimed by `new`, refilled,
replaced when they die, cleaned when the daemon goes; sessions born there
are sessions like any other (their own name, random state, limits)."""
import json
import os
import signal
import subprocess
import sys

import pytest

from cbtest import CELLBLOCKD, ROOT, Daemon, pid_alive, poll, run_cell
from proclib import cgroup_parents


def _ls(d):
    return {s["name"]: s for s in json.loads(d.cli("ls", "--json", check=True).stdout)}


def _value(kc, code):
    reply, outputs = run_cell(kc, code)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(m["content"]["text"] for m in outputs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout").strip()


def _new(d, name, *limits):
    return d.cli("new", "--name", name, *limits, check=True).stdout.strip()


def _groups(parents):
    """Every group name under the daemon's cgroup, in any hierarchy."""
    return {e for p in parents for e in os.listdir(p)
            if os.path.isdir(os.path.join(p, e))}


@pytest.fixture(scope="module")
def pd():
    d = Daemon(warm_pool=2)
    try:
        d.wait_pool()
        yield d
    finally:
        d.stop()


def test_new_claims_a_member_and_the_pool_refills(pd):
    before = pd.wait_pool()
    member = before["list"][0]
    conn = _new(pd, "claimed")
    s = _ls(pd)["claimed"]
    assert s["born"] == "pool", s
    # It is the member that was waiting: same process, uid and cgroup.
    claimed = [m for m in before["list"] if m["pid"] == s["pid"]]
    assert claimed, (s, before)
    assert s["uid"] == claimed[0]["uid"] and s["cgroup"] == claimed[0]["cgroup"]
    assert s["workdir"].startswith(os.path.join(pd.state, "work", "claimed."))
    assert not os.path.exists(claimed[0]["workdir"])
    # Inside, it is named as a fresh session would be from birth.
    kc = pd.client(conn)
    try:
        out = _value(kc, "import os, socket\n"
                         "print(os.environ['CELLBLOCK_SESSION'], socket.gethostname(),"
                         " os.getuid(), os.getcwd(), os.getpid())\n"
                         "open('mine.txt', 'w').write('x')")
        assert out == "claimed claimed 1000 /home/session 2"
        assert os.path.exists(os.path.join(s["workdir"], "mine.txt"))
    finally:
        kc.stop_channels()
    # The pool holds its size again, with a new member; none is listed.
    after = pd.wait_pool()
    assert after["claimed"] == before["claimed"] + 1
    assert after["made"] >= before["made"] + 1
    assert s["pid"] not in [m["pid"] for m in after["list"]]
    assert all(not n.startswith("cbpool-") for n in _ls(pd))
    assert member["cgroup"].startswith("cbpool-")
    pd.cli("kill", "claimed", check=True)


def _listening_ports():
    """Every TCP port listening on the host (IPv4), from /proc/net/tcp."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return {int(r[1].split(":")[1], 16) for r in rows if r[3] == "0A"}


def test_a_claim_takes_the_members_ports_and_files_as_they_are(pd):
    """What `new` would make (five bound ports, the connection file, the
    record's file) is made with the member, between requests: the claim
    renames the files (same inodes) and the ports were listening before
    it (docs/ZYGOTE.md, "The warm pool")."""
    member = pd.wait_pool()["list"][0]     # the oldest ready: the one taken
    mine = member["connection_file"]
    assert mine == os.path.join(pd.state, "sessions", member["cgroup"] + ".json"), member
    with open(mine) as f:
        made = json.load(f)
    spare = os.path.join(pd.state, "sessions", member["cgroup"] + ".state.tmp")
    inodes = os.stat(mine).st_ino, os.stat(spare).st_ino
    assert os.stat(spare).st_size == 0
    ports = {made[k] for k in ("shell_port", "iopub_port", "stdin_port",
                               "control_port", "hb_port")}
    assert ports <= _listening_ports(), (ports, made)
    conn = _new(pd, "ready-made")
    try:
        s = _ls(pd)["ready-made"]
        assert s["born"] == "pool" and s["pid"] == member["pid"], (s, member)
        assert conn == os.path.join(pd.state, "sessions", "ready-made.json")
        with open(conn) as f:
            assert json.load(f) == made
        record = os.path.join(pd.state, "sessions", "ready-made.state")
        assert (os.stat(conn).st_ino, os.stat(record).st_ino) == inodes
        with open(record) as f:
            r = json.load(f)
        assert r["name"] == "ready-made" and r["connection"]["shell_port"] == made["shell_port"]
        assert not os.path.exists(mine) and not os.path.exists(spare)
        kc = pd.client(conn)
        try:
            assert _value(kc, "print(6 * 7)") == "42"
        finally:
            kc.stop_channels()
        # The refill made the next member's the same way.
        for m in pd.wait_pool()["list"]:
            assert os.path.exists(m["connection_file"]), m
    finally:
        pd.cli("kill", "ready-made", check=True)
    poll(lambda: not os.path.exists(conn) and not os.path.exists(record), 30,
         "the session's files to go with it")


def test_a_session_of_the_shared_endpoint_drops_the_members_own(pd):
    """The shared endpoint's sessions have no endpoint of their own: a
    member claimed for one closes what it was made with, file and ports."""
    from test_sessions import shared_client
    member = pd.wait_pool()["list"][0]
    with open(member["connection_file"]) as f:
        made = json.load(f)
    kc = shared_client(pd, "pool-shared")
    try:
        reply, _ = run_cell(kc, "x = 5")
        assert reply["content"]["status"] == "ok", reply["content"]
        s = [v for n, v in _ls(pd).items() if v["pid"] == member["pid"]]
        assert s and s[0]["born"] == "pool", (s, member)
        assert not os.path.exists(member["connection_file"])
        poll(lambda: made["shell_port"] not in _listening_ports(), 10,
             "the member's ports to close")
        name = s[0]["name"]
        assert not os.path.exists(os.path.join(pd.state, "sessions", name + ".json"))
    finally:
        kc.stop_channels()
    pd.cli("kill", name, check=True)


def test_two_pool_born_sessions_share_no_random_state(pd):
    code = ("import random, uuid, os, numpy\n"
            "print(random.random(), numpy.random.random(), uuid.uuid4(), os.urandom(8).hex())")
    seen = []
    for name in ("rand-a", "rand-b"):
        pd.wait_pool()
        kc = pd.client(_new(pd, name))
        try:
            assert _ls(pd)[name]["born"] == "pool"
            seen.append(_value(kc, code).split())
        finally:
            kc.stop_channels()
        pd.cli("kill", name, check=True)
    a, b = seen
    assert all(x != y for x, y in zip(a, b)), seen


def test_state_of_one_pool_born_session_is_not_the_next_ones(pd):
    pd.wait_pool()
    kc = pd.client(_new(pd, "state-a"))
    try:
        _value(kc, "leaked = 41\nimport sys; sys.modules['json'].leak = 1")
    finally:
        kc.stop_channels()
    pd.wait_pool()
    kc = pd.client(_new(pd, "state-b"))
    try:
        assert _ls(pd)["state-b"]["born"] == "pool"
        assert _value(kc, "import json\nprint('leaked' in globals(), hasattr(json, 'leak'))") \
            == "False False"
    finally:
        kc.stop_channels()
    pd.cli("kill", "state-a", check=True)
    pd.cli("kill", "state-b", check=True)


def test_limits_a_member_can_take_are_applied_on_the_host(pd):
    pd.wait_pool()
    kc = pd.client(_new(pd, "lim", "--memory", "300M", "--pids", "40"))
    try:
        s = _ls(pd)["lim"]
        assert s["born"] == "pool", s
        assert s["limits"]["memory"] == 300 << 20 and s["limits"]["pids"] == 40
        files = {}
        for parent in cgroup_parents(pd):
            for f in ("memory.limit_in_bytes", "memory.max", "pids.max"):
                p = os.path.join(parent, s["cgroup"], f)
                if os.path.exists(p):
                    files[f] = open(p).read().strip()
        mem = files.get("memory.limit_in_bytes", files.get("memory.max"))
        assert int(mem) == 300 << 20 and files["pids.max"] == "40", files
        # Inside, that group is the root of its cgroup namespace, as for any session.
        lines = _value(kc, "print(open('/proc/self/cgroup').read().strip())").splitlines()
        assert lines and all(ln.endswith(":/") for ln in lines), lines
    finally:
        kc.stop_channels()
    pd.cli("kill", "lim", check=True)


FIRST_CELL = ("ip = get_ipython()\n"
              "print(ip.execution_count, len(In), len(Out), len(_ih), repr(_), repr(_i),"
              " ip.last_execution_result is None, ip.last_execution_succeeded,"
              " len(list(ip.history_manager.get_range())),"
              " sorted(k for k in globals() if not k.startswith('_') and k != 'ip'))")


def test_the_first_cell_of_a_pool_born_session_sees_what_a_fresh_one_sees(pd):
    # A member warmed itself while it waited (a silent `pass`, server/pool.c
    # pool_hello): none of it shows in the claimer's first cell.
    seen = {}
    for name, limits in (("first-pool", ()), ("first-fresh", ("--tmp", "32M"))):
        pd.wait_pool()
        kc = pd.client(_new(pd, name, *limits))
        try:
            reply, outputs = run_cell(kc, FIRST_CELL)
            assert reply["content"]["status"] == "ok", reply["content"]
            text = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")
            seen[_ls(pd)[name]["born"]] = (reply["content"]["execution_count"], text.strip())
        finally:
            kc.stop_channels()
        pd.cli("kill", name, check=True)
    assert set(seen) == {"pool", "zygote"}, seen
    assert seen["pool"] == seen["zygote"], seen
    assert seen["pool"][0] == 1


@pytest.mark.parametrize("limits", [("--tmp", "32M"), ("--cpus", "2"), ("--memory", "2G")],
                         ids=["tmp", "cpus", "more-memory"])
def test_limits_the_pool_cannot_honour_start_fresh(pd, limits):
    ready = pd.wait_pool()["ready"]
    name = "fresh-" + limits[0][2:]
    kc = pd.client(_new(pd, name, *limits))
    try:
        s = _ls(pd)[name]
        assert s["born"] == "zygote", s
        assert s["cgroup"] == name
        assert _value(kc, "print(6 * 7)") == "42"
    finally:
        kc.stop_channels()
    assert pd.pool()["ready"] == ready      # nothing was taken
    pd.cli("kill", name, check=True)


def test_a_member_that_dies_is_replaced_and_cleaned(pd):
    before = pd.wait_pool()
    victim = before["list"][0]
    parents = cgroup_parents(pd)
    assert victim["cgroup"] in _groups(parents)
    os.kill(victim["pid"], signal.SIGKILL)
    poll(lambda: pd.pool()["lost"] == before["lost"] + 1, 30, "the member's loss")
    after = pd.wait_pool()
    assert victim["pid"] not in [m["pid"] for m in after["list"]]
    assert victim["cgroup"] not in _groups(parents)
    assert not os.path.exists(victim["workdir"])
    assert "warm pool member lost" in pd.log_text()
    assert pd.alive()


def test_an_empty_pool_falls_back_to_a_fresh_start():
    d = Daemon(warm_pool=1)
    try:
        d.wait_pool()
        # The refill waits a little after a claim: the second new finds none.
        _new(d, "first")
        kc = d.client(_new(d, "second"))
        try:
            ls = _ls(d)
            assert ls["first"]["born"] == "pool"
            assert ls["second"]["born"] == "zygote", ls["second"]
            assert _value(kc, "import socket; print(socket.gethostname())") == "second"
        finally:
            kc.stop_channels()
        d.wait_pool()
    finally:
        d.stop()


def test_pool_off_with_the_zygote_off(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("zygote = no\n")
    d = Daemon(["--config", str(conf)], warm_pool=2)
    try:
        p = d.pool()
        assert p["on"] is False and p["members"] == 0, p
        assert "warm pool off" in d.log_text()
        d.cli("new", "--name", "ex", check=True)
        assert _ls(d)["ex"]["born"] == "exec"
    finally:
        d.stop()


def test_members_are_gone_after_a_clean_exit_and_after_a_crash():
    d = Daemon(warm_pool=2)
    try:
        members = d.wait_pool()["list"]
        parents = cgroup_parents(d)
        names = {m["cgroup"] for m in members}
        assert names <= _groups(parents)
        # A crash: the members die with the daemon (parent-death signal),
        # their work dirs and cgroups stay until the next daemon starts.
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=30)
        poll(lambda: not any(pid_alive(m["pid"]) for m in members), 30,
             "the members to die with the daemon")
        assert all(os.path.exists(m["workdir"]) for m in members)
        files = [p for m in members for p in (
            m["connection_file"], os.path.join(d.state, "sessions", m["cgroup"] + ".state.tmp"))]
        assert all(os.path.exists(p) for p in files)
        start = len(d.log_text())
        d.proc = subprocess.Popen([CELLBLOCKD, "--foreground", "--state-dir", d.state,
                                   *d.args], stdout=d.log, stderr=subprocess.STDOUT)
        poll(lambda: "ready: control" in d.log_text()[start:], 30, "the restarted daemon")
        assert not any(os.path.exists(m["workdir"]) for m in members)
        assert not any(os.path.exists(p) for p in files), files
        assert not (names & _groups(cgroup_parents(d)))
        again = d.wait_pool()["list"]
        assert not ({m["cgroup"] for m in again} & names)
        # A clean exit: the new members, cgroups and work dirs all go.
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(timeout=30)
        assert not any(pid_alive(m["pid"]) for m in again)
        assert not any(os.path.exists(m["workdir"]) for m in again)
        assert not any(os.path.exists(m["connection_file"]) for m in again)
        assert not [n for n in os.listdir(os.path.join(d.state, "sessions"))
                    if n.startswith("cbpool-")]
        assert not any(os.path.isdir(p) and (names | {m["cgroup"] for m in again}) & _groups([p])
                       for p in parents)
    finally:
        d.stop()


# ------------------------------------------------------------ pid 1

PID1_CODE = r'''
import os, time
comm = open('/proc/1/comm').read().strip()
ppid = os.getppid()
# An orphan: our child forks a grandchild and exits at once, so the
# grandchild is reparented to pid 1, which must reap it when it exits.
pid = os.fork()
if pid == 0:
    if os.fork() == 0:
        time.sleep(0.2)
        os._exit(0)
    os._exit(0)
os.waitpid(pid, 0)
def zombies():
    out = []
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                if open('/proc/%s/stat' % p).read().rsplit(')', 1)[1].split()[0] == 'Z':
                    out.append(int(p))
            except OSError:
                pass
    return out
orphans = [p for p in os.listdir('/proc') if p.isdigit() and int(p) > 2]
for _ in range(100):            # bounded: 10 s
    live = [p for p in os.listdir('/proc') if p.isdigit() and int(p) > 2]
    if not live and not zombies():
        break
    time.sleep(0.1)
print(comm, ppid, bool(orphans), zombies(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
'''


@pytest.fixture(scope="module", params=["pool", "zygote", "exec"])
def born_daemon(request, tmp_path_factory):
    if request.param == "exec":
        conf = tmp_path_factory.mktemp("exec") / "c.conf"
        conf.write_text("zygote = no\n")
        d = Daemon(["--config", str(conf)], warm_pool=0)
    else:
        d = Daemon(warm_pool=2 if request.param == "pool" else 0)
    try:
        if request.param == "pool":
            d.wait_pool()
        yield request.param, d
    finally:
        d.stop()


def test_pid1_is_the_tiny_init_and_reaps_orphans(born_daemon):
    """Pid 1 is cellblock-init (an exec'd static reaper, not a copy of the
    zygote): the interpreter's parent, small on the host, owned by the
    session's uid with no capabilities; an orphan reparented to it is
    reaped, leaving no zombie."""
    born, d = born_daemon
    name = "pid1-" + born
    kc = d.client(_new(d, name))
    try:
        s = _ls(d)[name]
        assert s["born"] == born, s
        out = _value(kc, PID1_CODE).split(None, 3)
        assert out[:3] == ["cellblock-init", "1", "True"], out
        assert out[3] == "[] [1, 2]", out
        # On the host: the session's pid 1, by its namespace pid.
        pid1 = s["pid"] if born != "exec" else next(
            p for p in (int(x) for x in os.listdir("/proc") if x.isdigit())
            if _status(p).get("PPid") == str(s["pid"]))
        st = _status(pid1)
        assert st["NSpid"].split()[-1] == "1", st
        assert int(st["VmRSS"].split()[0]) < 4096, st["VmRSS"]
        assert st["CapEff"] == "0000000000000000"
        assert st["Uid"].split()[0] == str(s["uid"])
        assert os.readlink(f"/proc/{pid1}/exe").endswith("cellblock-init")
    finally:
        kc.stop_channels()
    d.cli("kill", name, check=True)


def test_a_signal_death_is_named_by_its_signal(born_daemon):
    """Pid 1 exits 128 + N when the interpreter died of signal N; the
    daemon names the signal, not a plain exit (and not its own SIGKILL)."""
    born, d = born_daemon
    name = "sig-" + born
    kc = d.client(_new(d, name))
    try:
        reply, _ = run_cell(kc, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)")
        c = reply["content"]
        assert c["status"] == "error" and c["ename"] == "SessionKilled", c
        assert "signal 11 " in c["evalue"], c
        assert _value(kc, "print(6 * 7)") == "42"
    finally:
        kc.stop_channels()
    d.cli("kill", name, check=True)


def _status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


# ------------------------------------- other suites, on pool-born sessions

def _suite(paths, env, timeout=900):
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
                       cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
    return p.stdout


def test_escape_battery_against_pool_born_sessions():
    """Pool-born sessions are indistinguishable from fresh ones to the
    escape battery: every session it makes is claimed from the pool."""
    out = _suite(["tests/sandbox/test_escape.py"], {"CELLBLOCK_ESCAPE_BORN": "pool"})
    assert " passed" in out and "skipped" not in out.splitlines()[-1], out[-500:]


def test_lifecycle_suites_on_pool_born_sessions():
    """Checkpoints, hibernation, resume, idle timeouts, daemon restarts,
    kernel arguments (a pool-born session said hello before `attach` gave
    it its arguments) and the execution contract with the pool on (the suites' daemons wait for a
    member before new)."""
    _suite(["tests/test_lifecycle.py", "tests/test_lifecycle_more.py",
            "tests/test_idle_timeout.py", "tests/test_kernel_args.py",
            "tests/test_contract.py"],
           {"CELLBLOCK_TEST_WARM_POOL": "2"})


def test_a_pool_born_session_is_metered_from_its_own_cgroup(pd):
    """The execution contract's figures (metadata.cellblock on every
    execute_reply) come from the cgroup the member was made in."""
    pd.wait_pool()
    kc = pd.client(_new(pd, "metered"))
    try:
        assert _ls(pd)["metered"]["born"] == "pool"
        reply, _ = run_cell(kc, "x = bytearray(20 << 20)\nsum(range(200000))")
        meta = reply["metadata"]["cellblock"]
        assert isinstance(meta["cpu_ms"], int) and isinstance(meta["peak_memory_bytes"], int), meta
        assert meta["peak_memory_bytes"] >= 20 << 20, meta
    finally:
        kc.stop_channels()
    pd.cli("kill", "metered", check=True)
