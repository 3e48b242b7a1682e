"""Operations (docs/OPERATIONS.md): the audit log, secret redaction in the
daemon's log and the audit log, the metrics registry, JSON logs.

Each test runs its own daemon with a private state directory and a config
file; every client and daemon started here is stopped here.
"""
import hashlib
import json
import os
import stat
import subprocess

import pytest

from cbtest import BIN, CELLBLOCK, Daemon, poll, run_cell, sanitizer_env

NOBODY = 65534
SETPRIV = "/usr/bin/setpriv"
CLI_TIMEOUT = 60

# One secret per built-in rule (server/redact.c), and the operator's own.
# Pieces are joined at run time so that no secret sits whole in the code
# (the code is never logged, but its digest is).
SECRETS = {
    "private-key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq7BFUpkGp3\n"
                   "-----END RSA PRIVATE KEY-----",
    "authorization": "Authorization: Bearer abc" + "DEF0123456789token",
    "aws-access-key": "AKIA" + "IOSFODNN7EXAMPLE",
    "aws-secret-key": "aws_secret_access_key=" + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "gcp-api-key": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW",
    "gcp-oauth-token": "ya29." + "a0AfH6SMBx3kq9ZlT7PqR2",
    "azure-storage-key": "AccountKey=" + "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4"
                         "I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    "azure-sas": "https://a.blob.core.windows.net/c?sv=2020&sig=" + "Zk9vYmFyYmF6cXV4cXV1eHF1dXg%3D",
    "github-token": "ghp_" + "1234567890abcdefghijABCDEFGHIJ123456",
    "slack-token": "xoxb-" + "1234567890-abcdefghij",
    "api-key": "sk-" + "proj-abcdefghijklmnopqrstuvwxyz0123",
    "jwt": "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "password": "password=" + "hunter2hunter2",
    "high-entropy": "blob " + "Q2xvdWRTZWNyZXQ9N3hLcTJtUHZMOXJUd1pi4Y7",
    "employee-id": "staff " + "E-12345678",
}
# The part of each that must never reach a log.
SECRET_CORE = {
    "private-key": "MIIEowIBAAKCAQEAq7BFUpkGp3", "authorization": "abcDEF0123456789token",
    "aws-secret-key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "azure-storage-key": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6",
    "azure-sas": "Zk9vYmFyYmF6cXV4cXV1eHF1dXg", "password": "hunter2hunter2",
    "high-entropy": "Q2xvdWRTZWNyZXQ9N3hLcTJtUHZMOXJUd1pi4Y7", "employee-id": "E-12345678",
}


def core(rule):
    return SECRET_CORE.get(rule, SECRETS[rule])


def start(tmp_path, *lines, wait_zygote=True):
    conf = tmp_path / "cellblockd.conf"
    conf.write_text("\n".join(lines) + "\n")
    return Daemon(["--config", str(conf)], wait_zygote=wait_zygote)


def audit_lines(d):
    with open(os.path.join(d.state, "audit", "audit.log")) as f:
        return [json.loads(line) for line in f]


def cli_json_lines(d, *args, nobody=False):
    p = cli_as(d, *args, nobody=nobody)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def cli_as(d, *args, nobody=False):
    if nobody:
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
               "CELLBLOCK_STATE_DIR": d.state, **sanitizer_env()}
        p = subprocess.run([SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                            "--clear-groups", CELLBLOCK, *args], capture_output=True,
                           text=True, env=env, timeout=CLI_TIMEOUT)
    else:
        p = d.cli(*args, timeout=CLI_TIMEOUT)
    return p


@pytest.fixture
def client_of():
    """Jupyter clients, stopped at the end of the test."""
    clients = []

    def make(d, connection_file):
        kc = d.client(connection_file)
        clients.append(kc)
        return kc
    yield make
    for kc in clients:
        kc.stop_channels()


# ------------------------------------------------------------- redaction

def test_redaction_logs_marker_client_gets_raw(tmp_path, client_of):
    """Cell output carrying every kind of secret reaches the Jupyter client
    untouched, while the audit log (output and error) and the daemon's log
    hold only [REDACTED:rule] markers."""
    d = start(tmp_path, "audit-output = yes", "redact-pattern = employee-id E-[0-9]{8}")
    try:
        kc = client_of(d, d.new("red"))
        blob = json.dumps(SECRETS)
        # stdout gets every secret, stderr too, and the error's evalue.
        code = ("import json, sys\nS = json.loads(%r)\n"
                "for k, v in S.items(): print(k, v)\n"
                "for k, v in S.items(): print(k, v, file=sys.stderr)\n"
                "raise ValueError('\\n'.join(S.values()))\n" % blob)
        reply, outputs = run_cell(kc, code)
        assert reply["content"]["status"] == "error"
        seen = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        evalue = reply["content"]["evalue"]
        for rule, secret in SECRETS.items():
            assert secret in seen, rule            # the client gets it raw
            assert secret in evalue, rule
        ev = [e for e in audit_lines(d) if e["event"] == "execute"][-1]
        out = ev["output"]["stdout"] + ev["output"]["stderr"] + ev["evalue"]
        raw = open(os.path.join(d.state, "audit", "audit.log")).read()
        log = d.log_text()
        for rule in SECRETS:
            assert "[REDACTED:%s]" % rule in ev["output"]["stdout"], rule
            assert "[REDACTED:%s]" % rule in ev["output"]["stderr"], rule
            assert core(rule) not in out, rule
            assert core(rule) not in raw, rule
            assert core(rule) not in log, rule
        # The daemon logged the failure, with markers in place of secrets.
        line = [l for l in log.splitlines() if "ValueError" in l]
        assert len(line) == 1, line     # one line, its newlines escaped
        for rule in SECRETS:
            assert "[REDACTED:%s]" % rule in line[0], rule
    finally:
        d.stop()


def test_audit_output_cut_inside_a_character_is_still_kept(tmp_path, client_of):
    """The kept output stops at 64 KiB; a cut through a UTF-8 character must
    not make the whole output field go missing from the execute event."""
    d = start(tmp_path, "audit-output = yes")
    try:
        kc = client_of(d, d.new("cut"))
        # 'a' then 2-byte characters: byte 65536 is the middle of one.
        reply, _ = run_cell(kc, "print('a' + '\u00e9' * 40000)")
        assert reply["content"]["status"] == "ok"
        ev = [e for e in audit_lines(d) if e["event"] == "execute"][-1]
        kept = ev["output"]["stdout"]
        assert kept == "a" + "\u00e9" * 32767, len(kept)
    finally:
        d.stop()


def test_audit_of_an_execute_with_a_long_msg_id(tmp_path, client_of):
    """msg_id is the client's, of any length: the execute it names still
    ran in the audit log (with its metrics), not "ran": false."""
    d = start(tmp_path)
    try:
        kc = client_of(d, d.new("long"))
        msg = kc.session.msg("execute_request", {
            "code": "print('hi')", "silent": False, "store_history": True,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        mid = msg["header"]["msg_id"] = "m" * 300
        kc.shell_channel.send(msg)
        reply = kc.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != mid:
            reply = kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "ok"
        ev = poll(lambda: [e for e in audit_lines(d) if e["event"] == "execute"
                           and e["request_id"] == mid], 20, "the execute event")[-1]
        assert "ran" not in ev and ev["stdout_bytes"] == 3, ev
    finally:
        d.stop()


def test_bad_redact_pattern_is_refused(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("redact-pattern = broken (unclosed\n")
    p = subprocess.run([os.path.join(BIN, "cellblockd"), "--foreground", "--state-dir",
                        str(tmp_path / "st"), "--config", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "redact-pattern broken" in p.stderr


# ------------------------------------------------------------- audit log

def test_audit_records_executions_lifecycle_and_kinds(tmp_path, client_of):
    d = start(tmp_path, "memory = 512M")
    try:
        conn = d.new("aud")
        kc = client_of(d, conn)
        code_ok = "x = 6 * 7\nprint(x)"
        reply, _ = run_cell(kc, code_ok)
        assert reply["content"]["status"] == "ok"
        p = d.cli("run", "aud", "1/0", timeout=CLI_TIMEOUT)
        assert p.returncode == 1
        d.cli("restart", "aud", check=True, timeout=CLI_TIMEOUT)
        d.cli("kill", "aud", check=True, timeout=CLI_TIMEOUT)

        events = poll(lambda: [e for e in audit_lines(d) if e["event"] == "end"] and audit_lines(d),
                      30, "the end event")
        kinds = [e["event"] for e in events]
        for k in ("create", "execute", "restart", "end"):
            assert k in kinds, kinds
        ex = [e for e in events if e["event"] == "execute"]
        zmq = [e for e in ex if e["client"] == "zmq"]
        cli = [e for e in ex if e["client"] == "cli"]
        assert zmq and cli, ex
        z = [e for e in zmq if e["code_sha256"] == hashlib.sha256(code_ok.encode()).hexdigest()]
        assert len(z) == 1, zmq
        z = z[0]
        assert z["session"] == "aud" and z["owner"] == 0
        assert z["code_bytes"] == len(code_ok)
        assert z["status"] == "ok" and "ename" not in z
        assert z["limits"]["memory"] == 512 * 1024 * 1024
        assert z["stdout_bytes"] == 3 and z["wall_ms"] > 0
        assert z["request_id"] and z["runtime"]["python"]
        assert "IPython" in z["runtime"]["packages"]
        policy = subprocess.run([os.path.join(BIN, "cellblock-shim"), "--print-policy"],
                                capture_output=True, check=True, timeout=30).stdout
        assert z["runtime"]["policy_sha256"] == hashlib.sha256(policy).hexdigest()
        c = [e for e in cli if e["code_sha256"] == hashlib.sha256(b"1/0").hexdigest()][0]
        assert c["status"] == "error" and c["ename"] == "ZeroDivisionError"
        assert [e for e in events if e["event"] == "end"][0]["why"] == "cellblock kill"

        # Owner-only files; the CLI reads them back through the daemon.
        adir = os.path.join(d.state, "audit")
        assert stat.S_IMODE(os.stat(adir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(os.path.join(adir, "audit.log")).st_mode) == 0o600
        got = cli_json_lines(d, "audit", "--json", "aud")
        assert [e["event"] for e in got][:len(kinds)] == kinds
        assert cli_json_lines(d, "audit", "--json", "nosuch") == []
        assert cli_json_lines(d, "audit", "--json", "--since", "2999-01-01") == []
        assert len(cli_json_lines(d, "audit", "--json", "--since", "1h")) >= len(events)
        text = d.cli("audit", timeout=CLI_TIMEOUT)
        assert text.returncode == 0 and "ZeroDivisionError" in text.stdout
        # Another user sees none of root's events, only their own.
        assert cli_json_lines(d, "audit", "--json", nobody=True) == []
        assert cli_as(d, "new", "--name", "mine", nobody=True).returncode == 0
        mine = cli_json_lines(d, "audit", "--json", nobody=True)
        assert [(e["event"], e["session"], e["owner"]) for e in mine] == \
            [("create", "mine", NOBODY)]
        assert len(cli_json_lines(d, "audit", "--json")) > len(events)   # root: all
    finally:
        d.stop()


def test_audit_line_escapes_every_kind_of_character(tmp_path, client_of):
    """The execute event is written by the daemon's own JSON writer
    (server/audit.c), not jansson's: the line stays one line of ASCII JSON
    (non-ASCII as \\u escapes, beyond the BMP as surrogate pairs, control
    characters escaped) and reads back as exactly the text the cell wrote;
    the reals it measures are still reals."""
    d = start(tmp_path, "audit-output = yes", "cpus = 0.25")
    try:
        kc = client_of(d, d.new("esc"))
        text = "h\u00e9 \u2603 \U0001F600 \x01\x1f\x7f\t\r\b\f \"q\" back\\ / end"
        reply, _ = run_cell(kc, "import sys\nsys.stdout.write(%r)\nsys.stderr.write(%r)"
                            % (text, text[::-1]))
        assert reply["content"]["status"] == "ok"
        raw = open(os.path.join(d.state, "audit", "audit.log"), "rb").read()
        line = [l for l in raw.split(b"\n") if b'"event":"execute"' in l][-1]
        assert line.isascii() and b"\\uD83D\\uDE00" in line, line
        ev = json.loads(line)
        assert ev["output"] == {"stdout": text, "stderr": text[::-1]}, ev["output"]
        assert ev["limits"]["cpus"] == 0.25 and isinstance(ev["wall_ms"], float)
        assert isinstance(ev["cpu_ms"], float) and ev["stdout_bytes"] == len(text.encode())
        # other_output_bytes: the compact JSON of what else it published.
        reply, outputs = run_cell(kc, "{'k': [1, 2.5, 'v\u00e9']}")
        other = [m for m in outputs if m["msg_type"] not in ("stream", "status", "execute_input")]
        assert other, outputs
        ev = [e for e in audit_lines(d) if e["event"] == "execute"][-1]
        shown = sum(len(json.dumps(m["content"], separators=(",", ":"),
                                   ensure_ascii=False).encode()) for m in other)
        # All the runner published but streams: at least what was shown.
        assert shown <= ev["other_output_bytes"] < shown + 200, (ev, other)
    finally:
        d.stop()


BURN = ("import time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.3:\n    pass")


def test_audit_cpu_and_memory_across_restart_hibernation_and_a_new_group(tmp_path):
    """The execute event's cpu_ms and memory_bytes come from descriptors the
    daemon keeps open on the session's cgroup files (sessions/contain.c):
    they must still count the session's own interpreter after a restart,
    after hibernation and resume (a new interpreter in the same group),
    and after the session ends and a new one of the same name gets a new
    group (a descriptor on the removed group would read a dead one: 0 ms)."""
    d = start(tmp_path, "idle-timeout = 2")
    try:
        def burn(expect_cpu):
            before = len([e for e in audit_lines(d) if e["event"] == "execute"])
            p = d.cli("run", "meter", BURN if expect_cpu else "1+1", timeout=CLI_TIMEOUT)
            assert p.returncode == 0, p.stderr
            ev = poll(lambda: [e for e in audit_lines(d) if e["event"] == "execute"][before:],
                      20, "the execute event")[-1]
            assert ev["status"] == "ok" and ev["memory_bytes"] > 1 << 20, ev
            # 0.3 s of the interpreter's own CPU: the group counts at least that.
            assert (ev["cpu_ms"] >= 290) == expect_cpu, ev
            return ev

        d.new("meter")
        burn(True)
        burn(False)        # the start figure is read again, not kept
        d.cli("restart", "meter", check=True, timeout=CLI_TIMEOUT)
        burn(True)
        poll(lambda: [s for s in json.loads(d.cli("ls", "--json", check=True).stdout)
                      if s["name"] == "meter"][0]["state"] == "hibernated",
             30, "meter to hibernate")
        burn(True)         # resumed: a new interpreter in the same group
        d.cli("kill", "meter", check=True, timeout=CLI_TIMEOUT)
        poll(lambda: not [s for s in json.loads(d.cli("ls", "--json", check=True).stdout)
                          if s["name"] == "meter"], 30, "meter to end")
        d.new("meter")     # a new group of the same name
        burn(True)
        burn(False)
    finally:
        d.stop()


def test_audit_rotation(tmp_path, client_of):
    d = start(tmp_path, "audit-max-size = 4K", "audit-keep = 2")
    try:
        kc = client_of(d, d.new("rot"))
        for i in range(12):
            run_cell(kc, "print(%d)" % i)
        adir = os.path.join(d.state, "audit")
        files = sorted(os.listdir(adir))
        assert files == ["audit.log", "audit.log.1", "audit.log.2"], files
        for f in files:
            assert os.path.getsize(os.path.join(adir, f)) < 8192
            assert stat.S_IMODE(os.stat(os.path.join(adir, f)).st_mode) == 0o600
        got = cli_json_lines(d, "audit", "--json", "rot")
        assert len(got) >= 4 and got[-1]["event"] == "execute"
        times = [e["time"] for e in got]
        assert times == sorted(times)
    finally:
        d.stop()


# ------------------------------------------------------------- metrics

def parse_metrics(text):
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_parse_and_move(tmp_path, client_of):
    d = start(tmp_path)
    try:
        before = parse_metrics(d.cli("stats", check=True).stdout)
        kc = client_of(d, d.new("met"))
        for _ in range(3):
            run_cell(kc, "1 + 1")
        run_cell(kc, "raise KeyError('k')")
        after = parse_metrics(d.cli("stats", check=True).stdout)
        ok = ("cellblock_executes_total", dict(status="ok", ename=""))
        assert sample(after, ok[0], **ok[1]) - sample(before, ok[0], **ok[1]) == 3
        assert sample(after, "cellblock_executes_total", status="error", ename="KeyError") == 1
        assert sample(after, "cellblock_execute_seconds_count") == 4
        assert sample(after, "cellblock_execute_seconds_bucket", le="+Inf") == 4
        assert sample(after, "cellblock_lifecycle_events_total", event="create") == 1
        assert sample(after, "cellblock_sessions", state="idle") == 1
        assert sample(after, "cellblock_sessions_by_owner", owner="0") == 1
        assert sum(v for (n, _), v in after.items()
                   if n == "cellblock_session_start_seconds_count") >= 1
        assert sample(after, "cellblock_zygote_state", state="ready") == 1
        js = json.loads(d.cli("stats", "--json", check=True).stdout)
        assert js["cellblock_executes_total"]
        # A bad wire message is counted by reason.
        import zmq
        ctx = zmq.Context()
        try:
            with open(d.new("met2")) as f:
                ci = json.load(f)
            s = ctx.socket(zmq.DEALER)
            s.connect("tcp://%s:%d" % (ci["ip"], ci["shell_port"]))
            s.send_multipart([b"<IDS|MSG>", b"bad", b"{}", b"{}", b"{}", b"{}"])
            poll(lambda: sample(parse_metrics(d.cli("stats").stdout),
                                "cellblock_wire_dropped_total", reason="bad_signature"), 10,
                 "the drop counted")
            s.close(0)
        finally:
            ctx.term()
        # Another user gets the metrics, without the by-owner series.
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "CELLBLOCK_STATE_DIR": d.state}
        p = subprocess.run([SETPRIV, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                            "--clear-groups", CELLBLOCK, "stats"], capture_output=True,
                           text=True, env=env, timeout=CLI_TIMEOUT)
        assert p.returncode == 0, p.stderr
        assert "cellblock_executes_total" in p.stdout
        assert "cellblock_sessions_by_owner" not in p.stdout
    finally:
        d.stop()


# ------------------------------------------------------------- logs

def test_json_logs_parse_line_by_line(tmp_path, client_of):
    d = start(tmp_path, "log-format = json")
    try:
        kc = client_of(d, d.new("js"))
        run_cell(kc, r'''raise RuntimeError('boom \x1b[31m"q" é ✓\n2')''')
        d.cli("kill", "js", check=True, timeout=CLI_TIMEOUT)
        d.proc.terminate()
        d.proc.wait(timeout=30)
        text = d.log_text()
    finally:
        d.stop()
    lines = text.splitlines()
    assert len(lines) > 5
    objs = [json.loads(line) for line in lines]
    for o in objs:
        assert o["level"] in ("error", "warn", "info", "debug")
        assert o["time"].endswith("Z") and o["func"] and "event" in o
    about = [o for o in objs if o.get("session") == "js"]
    boom = [o["event"] for o in about if "RuntimeError" in o["event"]]
    assert boom and boom[0].endswith('boom \x1b[31m"q" \u00e9 \u2713\n2'), boom
    assert any(o["event"] == "stopped" for o in objs)


def test_audit_off_still_times_executes(tmp_path, client_of):
    d = start(tmp_path, "audit = no")
    try:
        kc = client_of(d, d.new("off"))
        run_cell(kc, "1")
        assert not os.path.exists(os.path.join(d.state, "audit"))
        p = d.cli("audit", timeout=CLI_TIMEOUT)
        assert p.returncode == 1 and "audit log is off" in p.stderr
        m = parse_metrics(d.cli("stats", check=True).stdout)
        assert sample(m, "cellblock_execute_seconds_count") == 1
    finally:
        d.stop()
