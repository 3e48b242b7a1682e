"""The execution contract (issue 13, server/contract.c): every status
reached for real through the control socket's execute op, the metrics
within sanity bounds, events streamed before the cell ends, results kept
by id, metadata.cellblock on every execute_reply compared with a real
ipykernel 6.17, `cellblock run --json`, and two owners kept apart."""
import json
import os
import socket
import subprocess

import pytest

from cbtest import CELLBLOCK, Daemon, ipykernel, poll, run_cell, running_daemon, sanitizer_env

WAIT = 60
NOBODY = 65534
METRICS = {"wall_ms", "cpu_ms", "peak_memory_bytes", "stdout_bytes",
           "stderr_bytes", "queued_ms"}
FIELDS = {"id", "session", "status", "execution_count", "stdout", "stderr",
          "stdout_truncated", "stderr_truncated", "results", "results_truncated",
          "error", "metrics", "state_preserved", "resumed", "artifacts",
          "artifacts_truncated"}


class Call:
    """One execute on its own control connection: events, then the contract."""

    def __init__(self, daemon, name, code, **kw):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.sock.connect(os.path.join(daemon.state, "control.sock"))
        req = {"cmd": "execute", "name": name, "code": code, "stream": True, **kw}
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        self.file = self.sock.makefile("rb")
        self.events = []
        self.reply = None

    def next(self):
        """The next line: an event (returned) or the final reply (None)."""
        line = self.file.readline()
        assert line, "the daemon closed the connection"
        m = json.loads(line)
        if "event" in m:
            self.events.append(m["event"])
            return m["event"]
        self.reply = m
        return None

    def wait(self):
        while self.reply is None:
            self.next()
        return self.reply

    def contract(self):
        r = self.wait()
        assert r.get("ok"), r
        return r["contract"]

    def close(self):
        self.file.close()
        self.sock.close()


def execute(daemon, name, code, **kw):
    c = Call(daemon, name, code, **kw)
    try:
        return c.contract()
    finally:
        c.close()


@pytest.fixture(scope="module")
def daemon():
    with running_daemon(["--max-message", "256K"]) as d:
        yield d


@pytest.fixture
def session(daemon):
    name = daemon.new_name()
    yield name
    daemon.cli("kill", name)


# ---------------------------------------------------------------- statuses

def test_ok_has_every_field(daemon, session):
    k = execute(daemon, session, "print('hi')\nimport sys; print('oops', file=sys.stderr)\n"
                "from IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))\n6*7")
    assert set(k) == FIELDS, set(k) ^ FIELDS
    assert k["status"] == "ok" and k["error"] is None and k["state_preserved"] is True
    assert k["stdout"] == "hi\n" and k["stderr"] == "oops\n"
    assert not k["stdout_truncated"] and not k["stderr_truncated"]
    assert isinstance(k["execution_count"], int)
    assert [r["is_main_result"] for r in k["results"]] == [False, True]
    assert k["results"][0]["data"]["text/html"] == "<b>x</b>"
    assert k["results"][1]["data"]["text/plain"] == "42"
    assert set(k["metrics"]) == METRICS
    assert k["metrics"]["stdout_bytes"] == 3 and k["metrics"]["stderr_bytes"] == 5
    assert k["resumed"] is None


def test_raising_cell_is_error_with_plain_traceback(daemon, session):
    k = execute(daemon, session, "x = 5\ndef f():\n    raise ValueError('bad value')\nf()")
    assert k["status"] == "error" and k["state_preserved"] is True
    e = k["error"]
    assert e["ename"] == "ValueError" and e["evalue"] == "bad value"
    assert "\x1b" not in e["traceback"] and "ValueError: bad value" in e["traceback"]
    assert "line" not in e
    # The state is kept: the next call sees x.
    assert execute(daemon, session, "x")["results"][0]["data"]["text/plain"] == "5"


def test_a_traceback_of_many_frames_is_joined_whole(daemon, session):
    # User code picks the frames (_render_traceback_); joining them was a
    # copy of the whole per frame, which held the daemon's loop for minutes.
    code = ("class E(Exception):\n"
            "    def _render_traceback_(self):\n"
            "        return ['\\x1b[31mframe %06d\\x1b[0m' % i for i in range(40000)]\n"
            "raise E()")
    k = execute(daemon, session, code)
    assert k["status"] == "error"
    assert k["error"]["traceback"] == "\n".join("frame %06d" % i for i in range(40000))


def test_syntax_error_has_line_and_column(daemon, session):
    k = execute(daemon, session, "a = 1\nb = (2 +* 3)\n")
    assert k["status"] == "error"
    assert k["error"]["ename"] == "SyntaxError"
    assert k["error"]["line"] == 2
    assert k["error"]["column"] == 9, k["error"]


def test_timeout_interrupts_and_keeps_state(daemon, session):
    k = execute(daemon, session, "y = 7\nwhile True: pass", timeout_ms=1000)
    assert k["status"] == "timeout" and k["state_preserved"] is True
    assert k["metrics"]["wall_ms"] >= 1000
    assert execute(daemon, session, "y")["results"][0]["data"]["text/plain"] == "7"


def test_the_sessions_exec_timeout_is_timeout(daemon):
    name = daemon.new_name("--exec-timeout", "1")
    try:
        k = execute(daemon, name, "kept = 2\nimport time\nwhile True: time.sleep(0.01)")
        assert k["status"] == "timeout" and k["state_preserved"] is True, k
        assert k["error"]["ename"] == "CellTimeout"
        assert execute(daemon, name, "kept")["results"][0]["data"]["text/plain"] == "2"
    finally:
        daemon.cli("kill", name)


def test_timeout_of_a_cell_that_ignores_the_interrupt_restarts(daemon, session):
    k = execute(daemon, session, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "z = 1\nwhile True: pass", timeout_ms=500)
    assert k["status"] == "timeout" and k["state_preserved"] is False, k
    after = execute(daemon, session, "'z' in globals()")
    assert after["results"][0]["data"]["text/plain"] == "False"


def test_memory_bomb_is_out_of_memory(daemon):
    name = daemon.new_name("--memory", "300M")
    try:
        k = execute(daemon, name, "b = bytearray(b'x') * (2 * 1024 ** 3)")
        assert k["status"] == "out_of_memory", k
        assert k["state_preserved"] is False
        assert execute(daemon, name, "1")["status"] == "ok"   # a new interpreter
    finally:
        daemon.cli("kill", name)


def test_killed_interpreter_is_killed(daemon, session):
    k = execute(daemon, session, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert k["status"] == "killed" and k["state_preserved"] is False, k
    assert execute(daemon, session, "2")["status"] == "ok"


def test_queued_after_a_failure_is_aborted(daemon, session):
    first = Call(daemon, session, "import time\ntime.sleep(1)\nraise RuntimeError('first')")
    try:
        assert first.next()["state"] == "queued"
        second = Call(daemon, session, "never = 1")
        try:
            k2 = second.contract()
        finally:
            second.close()
        assert [e["state"] for e in second.events if e["type"] == "status"] == ["queued"]
        k1 = first.contract()
    finally:
        first.close()
    assert k1["status"] == "error" and k2["status"] == "aborted"
    assert k2["metrics"]["wall_ms"] == 0
    assert execute(daemon, session, "'never' in globals()")["results"][0]["data"]["text/plain"] == "False"


def test_queue_overflow_is_queue_full(daemon, session):
    # max-message 256K: the queue holds at most 512 KiB of requests.
    hold = Call(daemon, session, "import time\ntime.sleep(3)")
    calls = []
    try:
        while hold.next()["state"] != "running":
            pass
        big = "x = 1  # " + "a" * 200000
        statuses = []
        for _ in range(4):
            c = Call(daemon, session, big)
            calls.append(c)
            c.next()        # queued: it reached the core
        for c in calls:
            statuses.append(c.contract()["status"])
        assert hold.contract()["status"] == "ok"
    finally:
        hold.close()
        for c in calls:
            c.close()
    assert "queue_full" in statuses and statuses[0] == "ok", statuses
    full = [s for s in statuses if s == "queue_full"]
    assert len(full) >= 1


# ---------------------------------------------------------------- metrics

def test_peak_memory_grows_with_a_200_mb_array(daemon, session):
    small = execute(daemon, session, "import numpy as np\nq = 1")["metrics"]["peak_memory_bytes"]
    big = execute(daemon, session, "a = np.ones(200 * 1024 * 1024 // 8)\na[-1]")
    peak = big["metrics"]["peak_memory_bytes"]
    assert isinstance(small, int) and isinstance(peak, int)
    assert peak >= 200 * 1024 * 1024 and peak > small + 150 * 1024 * 1024, (small, peak)


def test_cpu_ms_covers_a_spin(daemon, session):
    k = execute(daemon, session, "import time\nt = time.process_time()\n"
                "while time.process_time() - t < 0.5: pass")
    assert k["metrics"]["cpu_ms"] >= 499, k["metrics"]
    assert k["metrics"]["wall_ms"] >= k["metrics"]["cpu_ms"] - 50


def test_output_caps_keep_head_and_tail(daemon, session):
    k = execute(daemon, session, "print('HEAD' + 'a' * 300000 + 'TAIL')")
    assert k["stdout_truncated"] is True
    assert k["stdout"].startswith("HEAD") and k["stdout"].rstrip().endswith("TAIL")
    assert "bytes omitted" in k["stdout"] and len(k["stdout"]) < 70 * 1024
    assert k["metrics"]["stdout_bytes"] == 300009


def test_output_caps_never_split_a_character(daemon, session):
    k = execute(daemon, session, "print('a' + '\u00e9\u20ac\U0001f600' * 40000 + 'z')")
    out = k["stdout"]
    assert k["stdout_truncated"] is True
    assert out.startswith("a\u00e9\u20ac") and out.rstrip().endswith("\U0001f600z")
    head, tail = out.split("\n[cellblock: ", 1)
    assert set(head[1:]) <= {"\u00e9", "\u20ac", "\U0001f600"}
    assert k["metrics"]["stdout_bytes"] == len(("a" + "\u00e9\u20ac\U0001f600" * 40000 + "z\n").encode())


def test_results_past_the_cap_are_dropped_and_the_daemon_lives(daemon, session):
    # Each result past the 64 kept was freed before its event copy was made.
    code = "from IPython.display import display\nfor i in range(200): display({'text/plain': str(i)}, raw=True)"
    c = Call(daemon, session, code)
    try:
        k = c.contract()
    finally:
        c.close()
    assert k["status"] == "ok" and len(k["results"]) == 64 and k["results_truncated"] is True
    shown = [e["data"]["text/plain"] for e in c.events if e.get("type") == "result"]
    assert shown == [str(i) for i in range(200)]
    assert "type" not in k["results"][0]
    assert execute(daemon, session, "1+1")["status"] == "ok"


# ---------------------------------------------------------------- streaming, stdin, artifacts

def test_events_arrive_before_the_cell_ends(daemon, session):
    # The cell waits for a file the test makes only once it has seen the
    # first line: the event must have come before the cell could end.
    c = Call(daemon, session, "import os, time\nprint('first', flush=True)\n"
             "for _ in range(600):\n    if os.path.exists('go'): break\n    time.sleep(0.05)\n"
             "print('found' if os.path.exists('go') else 'never')")
    try:
        ev = c.next()
        while ev is not None and ev.get("type") != "stdout":
            ev = c.next()
        assert ev == {"type": "stdout", "text": "first\n"}
        wd = json.loads(daemon.cli("ls", "--json", check=True).stdout)
        workdir = [s for s in wd if s["name"] == session][0]["workdir"]
        open(os.path.join(workdir, "go"), "w").close()
        k = c.contract()
    finally:
        c.close()
    assert k["stdout"] == "first\nfound\n"
    assert [e["state"] for e in c.events if e["type"] == "status"] == ["queued", "running"]


def test_stdin_lines_answer_input(daemon, session):
    k = execute(daemon, session, "a = input('a? ')\nb = input('b? ')\nprint(a + '+' + b)",
                stdin=["one", "two"])
    assert k["status"] == "ok" and k["stdout"] == "one+two\n", k


def test_without_stdin_input_is_an_error(daemon, session):
    k = execute(daemon, session, "input()")
    assert k["status"] == "error" and k["error"]["ename"] == "StdinNotImplementedError"


def test_artifacts_list_what_the_call_changed(daemon, session):
    execute(daemon, session, "open('old.txt', 'w').write('old')")
    k = execute(daemon, session, "import os\nos.makedirs('out', exist_ok=True)\n"
                "open('out/new.csv', 'w').write('a,b\\n1,2\\n')")
    assert [(a["path"], a["size"]) for a in k["artifacts"]] == [("out/new.csv", 8)]
    assert k["artifacts_truncated"] is False


def test_a_detached_call_is_kept_by_id(daemon, session):
    c = Call(daemon, session, "import time\ntime.sleep(1)\nkept = 3\nkept")
    cid = c.next()["id"]
    c.close()               # the caller goes away mid-call
    def done():
        r = daemon.control({"cmd": "result", "id": cid})
        return r if r["ok"] and r["contract"]["status"] not in ("queued", "running") else None
    r = poll(done, WAIT, "the detached call's result")
    assert r["contract"]["status"] == "ok"
    assert r["contract"]["results"][0]["data"]["text/plain"] == "3"
    assert daemon.control({"cmd": "result", "id": "nope"})["ok"] is False


def test_bad_requests_get_clear_errors(daemon, session):
    for req in ({"code": 5}, {"code": "1", "timeout_ms": -1}, {"code": "1", "stdin": "x"},
                {"code": "1", "stdin": [1]}, {}):
        r = daemon.control({"cmd": "execute", "name": session, **req})
        assert r["ok"] is False and r["error"], (req, r)
    r = daemon.control({"cmd": "execute", "name": "no-such-session", "code": "1"})
    assert r["ok"] is False and "no session" in r["error"]
    assert execute(daemon, session, "1")["status"] == "ok"


# ---------------------------------------------------------------- Jupyter clients see the metrics

def jupyter_cell(kc, code):
    reply, _ = run_cell(kc, code, timeout=WAIT)
    return reply


def test_every_execute_reply_carries_metadata_cellblock(daemon, session, tmp_path):
    conn = os.path.join(daemon.state, "sessions", session + ".json")
    kc = daemon.client(conn)
    with ipykernel(tmp_path) as km:
        ipk = km.client()
        ipk.start_channels()
        try:
            ipk.wait_for_ready(timeout=WAIT)
            check_metadata_against_ipykernel(kc, ipk)
        finally:
            ipk.stop_channels()
            kc.stop_channels()


def check_metadata_against_ipykernel(kc, ipk):
    """The same cells in both: the reply differs by metadata.cellblock only."""
    for code in ("1+1", "raise KeyError('k')", "print('x')"):
        cb, ip = jupyter_cell(kc, code), jupyter_cell(ipk, code)
        meta = cb["metadata"]["cellblock"]
        assert METRICS <= set(meta), meta
        assert all(isinstance(meta[k], int) for k in METRICS), meta
        # Nothing else changed: content keys and the other metadata as ipykernel's.
        # (engine_info of ipykernel's error replies: the runner never sent it.)
        assert set(cb["content"]) == set(ip["content"]) - {"engine_info"}, (cb["content"], ip["content"])
        same = ("status", "ename", "evalue", "payload", "user_expressions")
        assert {k: cb["content"].get(k) for k in same} == {k: ip["content"].get(k) for k in same}
        # metadata.cellblock is all the daemon adds to the metadata.
        assert set(cb["metadata"]) - {"cellblock"} <= set(ip["metadata"]), cb["metadata"]
        assert "cellblock" not in ip["metadata"]


# ---------------------------------------------------------------- the CLI and owners

def nobody(daemon, *args, input=None):
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
           "CELLBLOCK_STATE_DIR": daemon.state, **sanitizer_env()}
    return subprocess.run(["/usr/bin/setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                           "--clear-groups", *args], capture_output=True, text=True,
                          env=env, input=input, timeout=WAIT)


def test_run_json_prints_the_contract(daemon, session):
    p = daemon.cli("run", "--json", session, "print('cli')\n21*2", timeout=WAIT)
    assert p.returncode == 0, p.stderr
    k = json.loads(p.stdout)
    assert k["status"] == "ok" and k["stdout"] == "cli\n"
    assert k["results"][0]["data"]["text/plain"] == "42"
    p = daemon.cli("run", "--json", session, "1/0", timeout=WAIT)
    assert p.returncode == 1 and json.loads(p.stdout)["error"]["ename"] == "ZeroDivisionError"
    p = daemon.cli("run", "--json", "--timeout", "1", session, "while True: pass", timeout=WAIT)
    assert p.returncode == 6 and json.loads(p.stdout)["status"] == "timeout"


def test_two_owners_are_isolated(daemon, session):
    mine = execute(daemon, session, "secret = 1")
    p = nobody(daemon, CELLBLOCK, "run", "--json", session, "secret")
    assert p.returncode != 0 and "not yours" in p.stderr, (p.returncode, p.stderr)
    # nobody's own session works, and the root's call id is not theirs.
    p = nobody(daemon, CELLBLOCK, "new", "--name", "nobodys")
    assert p.returncode == 0, p.stderr
    try:
        p = nobody(daemon, CELLBLOCK, "run", "--json", "nobodys", "'secret' in globals()")
        assert p.returncode == 0 and json.loads(p.stdout)["results"][0]["data"]["text/plain"] == "False"
        probe = ("import json,socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                 "s.connect(sys.argv[1])\ns.sendall(json.dumps({'cmd':'result','id':sys.argv[2]}).encode()+b'\\n')\n"
                 "print(s.makefile().readline())")
        p = nobody(daemon, "/usr/bin/python3", "-c", probe,
                   os.path.join(daemon.state, "control.sock"), mine["id"])
        r = json.loads(p.stdout)
        assert r["ok"] is False, r
        assert daemon.control({"cmd": "result", "id": mine["id"]})["ok"] is True
    finally:
        daemon.cli("kill", "nobodys")


def test_resumed_says_what_came_back_and_what_did_not(tmp_path):
    conf = tmp_path / "cellblockd.conf"
    conf.write_text("idle-timeout = 2\n")
    d = Daemon(["--config", str(conf)])
    try:
        name = d.new_name()
        first = execute(d, name, "x = 5\ng = (i for i in range(3))")
        assert first["resumed"] is None
        def hibernated():
            return [s for s in json.loads(d.cli("ls", "--json", check=True).stdout)
                    if s["name"] == name][0]["state"] == "hibernated"
        poll(hibernated, 30, "hibernation")
        k = execute(d, name, "x")
        assert k["status"] == "ok" and k["results"][0]["data"]["text/plain"] == "5"
        r = k["resumed"]
        assert r["restored"] is True and "x" in r["names"], r
        assert "g" in [e["name"] for e in r["lost"] + r["skipped"]], r
        assert k["metrics"]["queued_ms"] > 0       # it waited for the resume
        assert execute(d, name, "1")["resumed"] is None   # only the first call after
    finally:
        d.stop()


def test_every_field_of_every_op_with_every_wrong_type(daemon, session):
    # The control socket's execute, result and files with each field set to
    # each kind of wrong value: an answer every time, the daemon unharmed.
    values = [None, 0, -1, 2 ** 70, 1.5, "", "x", "../..", "\u0000a", [], [1], ["a", 2], {}, {"a": 1}, True]
    base = {"execute": {"name": session, "code": "1"},
            "result": {"id": "x"},
            "files": {"name": session, "op": "list", "path": ""}}
    fields = {"execute": ["name", "code", "timeout_ms", "stdin", "store_history", "stream"],
              "result": ["id"],
              "files": ["name", "op", "path"]}
    answered = 0
    for cmd, keys in fields.items():
        for key in keys:
            for v in values:
                req = {"cmd": cmd, **base[cmd], key: v}
                if cmd == "execute" and key == "code" and v == "x":
                    req["timeout_ms"] = 5000
                r = daemon.control(req, timeout=WAIT)
                # (stream: true answers with its first event first.)
                assert isinstance(r, dict) and ("ok" in r or "event" in r), (req, r)
                answered += 1
    assert answered == 15 * 10
    assert daemon.alive()
    assert execute(daemon, session, "6*7")["results"][0]["data"]["text/plain"] == "42"


def test_cancel_interrupts_a_running_or_queued_call(daemon, session):
    first = Call(daemon, session, "import time\ntime.sleep(1.5)\nfirst = 1")
    second = Call(daemon, session, "import time\ntime.sleep(60)\nsecond = 1")
    try:
        assert first.next()["state"] == "queued"
        sid = second.next()["id"]
        assert daemon.control({"cmd": "cancel", "id": sid})["ok"] is True   # still queued
        k1, k2 = first.contract(), second.contract()
    finally:
        first.close()
        second.close()
    assert k1["status"] == "ok"
    assert k2["status"] == "error" and k2["error"]["ename"] == "KeyboardInterrupt", k2
    running = Call(daemon, session, "import time\ntime.sleep(60)")
    try:
        while running.next()["state"] != "running":
            pass
        assert daemon.control({"cmd": "cancel", "id": running.events[0]["id"]})["ok"] is True
        assert running.contract()["error"]["ename"] == "KeyboardInterrupt"
    finally:
        running.close()
    assert daemon.control({"cmd": "cancel", "id": "nope"})["ok"] is False
    assert execute(daemon, session, "first + 0")["status"] == "ok"
