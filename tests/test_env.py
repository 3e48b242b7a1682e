"""Per-session environment variables (docs/AGENTS.md, docs/GATEWAY.md):
one mechanism for every surface. `cellblock new --env`, REST's `env`,
MCP's create_session `env` and the gateway's posted env (what
http-env-allow passes) reach os.environ in the interpreter before any
cell; every later interpreter (restart, resume, daemon restart) has them
again, zygote-, exec- and pool-born alike; bad names and oversize envs
are refused with a clear error and no session; `ls --json` shows names,
and neither it nor the daemon's log ever shows a value."""
import json
import os
import subprocess

import pytest
import requests

from cbtest import CELLBLOCK, Daemon, poll, run_cell
from gwtest import Gateway

SECRET = "s3cr3t-value-7f1c2a"     # must never show in ls or the log
READ = "import os; (os.environ.get('A'), os.environ.get('B'), os.environ.get('TOKEN'))"
EXPECT = repr(("1", "x=y", SECRET))


def value(kc, expr):
    reply, out = run_cell(kc, expr, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    res = [m for m in out if m["msg_type"] == "execute_result"]
    return res[0]["content"]["data"]["text/plain"]


def ls(daemon):
    return {s["name"]: s for s in
            json.loads(daemon.cli("ls", "--json", check=True).stdout)}


def new_with_env(daemon, name, *extra):
    p = daemon.cli("new", "--name", name, "--env", "A=1", "--env", "B=x=y",
                   "--env", "TOKEN=" + SECRET, *extra)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def secret_files(state):
    """Files of the daemon's state holding SECRET, but the session's
    record (mode 0600, the daemon's: it brings the env back) and its work
    dir (the user's: a checkpoint holds the cells' results, which show it)."""
    found = []
    for top, dirs, files in os.walk(state):
        if top == state and "work" in dirs:
            dirs.remove("work")
        for f in files:
            path = os.path.join(top, f)
            try:
                with open(path, "rb") as fh:
                    if SECRET.encode() in fh.read() and not f.endswith(".state"):
                        found.append(path)
            except OSError:
                pass
    return found


def restart_daemon(daemon):
    """SIGTERM and a new daemon on the same state directory (as
    test_lifecycle.py does)."""
    import signal
    from cbtest import CELLBLOCKD
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(timeout=30)
    start = len(daemon.log_text())
    daemon.proc = subprocess.Popen([CELLBLOCKD, "--foreground", "--state-dir",
                                    daemon.state, *daemon.args],
                                   stdout=daemon.log, stderr=subprocess.STDOUT)
    poll(lambda: "ready: control" in daemon.log_text()[start:], 30,
         "the restarted daemon")


@pytest.fixture(scope="module", params=["zygote", "exec"])
def daemon(request, tmp_path_factory):
    args = []
    if request.param == "exec":
        conf = tmp_path_factory.mktemp("conf") / "cellblockd.conf"
        conf.write_text("zygote = no\n")
        args = ["--config", str(conf)]
    d = Daemon(args, warm_pool=0)
    yield d
    assert d.alive(), d.log_text()[-3000:]
    d.stop()


def test_env_reaches_every_incarnation(daemon):
    path = new_with_env(daemon, "envs", "--idle-timeout", "600")
    kc = daemon.client(path)
    try:
        assert value(kc, READ) == EXPECT
        # The interpreter's restart: a new process, the env again.
        assert daemon.cli("restart", "envs").returncode == 0
        poll(lambda: ls(daemon)["envs"]["incarnation"] >= 2, 60, "the restart")
        assert value(kc, READ) == EXPECT
        # A checkpoint, then a crash: the next interpreter restores into it.
        run_cell(kc, "kept = 41")
        assert daemon.cli("checkpoint", "envs").returncode == 0
    finally:
        kc.stop_channels()
    # Daemon restart: the record brings it back hibernated, env and all.
    restart_daemon(daemon)
    assert ls(daemon)["envs"]["state"] == "hibernated"
    kc = daemon.client(path)
    try:
        assert value(kc, "kept + 1") == "42"
        assert value(kc, READ) == EXPECT
    finally:
        kc.stop_channels()
    info = ls(daemon)["envs"]
    assert sorted(info["env"]) == ["A", "B", "TOKEN"], info
    listing = daemon.cli("ls", "--json", check=True).stdout
    assert SECRET not in listing
    assert SECRET not in daemon.log_text()
    assert secret_files(daemon.state) == [], "values only in the record"
    assert daemon.cli("kill", "envs").returncode == 0


def test_env_survives_hibernation(daemon):
    path = new_with_env(daemon, "env-hib", "--idle-timeout", "2")
    kc = daemon.client(path)
    try:
        run_cell(kc, "n = 1")
        poll(lambda: ls(daemon)["env-hib"]["state"] == "hibernated", 60,
             "env-hib to hibernate")
        assert value(kc, READ) == EXPECT     # resumed: a new interpreter
        assert value(kc, "n") == "1"
    finally:
        kc.stop_channels()
    assert SECRET not in daemon.log_text()
    assert daemon.cli("kill", "env-hib").returncode == 0


@pytest.mark.parametrize("arg, says", [
    ("CELLBLOCK_SESSION=x", "CELLBLOCK_SESSION: reserved"),
    ("CELLBLOCK_ANY=x", "CELLBLOCK_ANY: reserved"),
    ("HTTP_PROXY=http://evil:1", "HTTP_PROXY: reserved"),
    ("https_proxy=http://evil:1", "https_proxy: reserved"),
    ("NO_PROXY=*", "NO_PROXY: reserved"),
    ("PIP_PROXY=x", "PIP_PROXY: reserved"),
    ("GIT_CONFIG_COUNT=1", "GIT_CONFIG_COUNT: reserved"),
    ("1BAD=x", "not a valid name"),
    ("A-B=x", "not a valid name"),
    pytest.param("BIG=" + "v" * 70000, "bytes in all", id="oversize"),
])
def test_bad_env_is_refused_with_no_session(daemon, arg, says):
    p = daemon.cli("new", "--name", "env-bad", "--env", arg)
    assert p.returncode != 0
    assert says in p.stderr, p.stderr
    assert "env-bad" not in ls(daemon)
    if "=http" in arg or arg.startswith("BIG"):
        assert arg.split("=", 1)[1] not in p.stderr


def test_too_many_variables_refused(daemon):
    args = []
    for i in range(65):
        args += ["--env", "V%d=%d" % (i, i)]
    p = daemon.cli("new", "--name", "env-many", *args)
    assert p.returncode != 0 and "more than 64 variables" in p.stderr, p.stderr
    assert "env-many" not in ls(daemon)
    # 64 is fine
    p = daemon.cli("new", "--name", "env-64", *args[:128], check=True)
    assert len(ls(daemon)["env-64"]["env"]) == 64
    assert daemon.cli("kill", "env-64").returncode == 0


def test_usage_error_for_env_without_equals(daemon):
    p = daemon.cli("new", "--name", "env-noeq", "--env", "JUSTNAME")
    assert p.returncode != 0 and "--env NAME=VALUE" in p.stderr, p.stderr
    assert "env-noeq" not in ls(daemon)


def test_pool_born_session_gets_its_env():
    d = Daemon(warm_pool=2)
    try:
        d.wait_pool()
        path = new_with_env(d, "env-pool")
        assert ls(d)["env-pool"]["born"] == "pool"
        kc = d.client(path)
        try:
            assert value(kc, READ) == EXPECT
            # Not in the other members: the next pool-born one has none.
            d.wait_pool()
            kc2 = d.client(d.new("env-pool-2"))
            try:
                assert ls(d)["env-pool-2"]["born"] == "pool"
                assert value(kc2, READ) == repr((None, None, None))
            finally:
                kc2.stop_channels()
        finally:
            kc.stop_channels()
        assert SECRET not in d.log_text()
        assert d.alive()
    finally:
        d.stop()


@pytest.fixture(scope="module")
def gw():
    g = Gateway()
    yield g
    g.stop()


def test_rest_env(gw):
    token = gw.token("env-rest")
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + token
    try:
        r = s.post(gw.url + "/v1/sessions", timeout=60,
                   json={"name": "rest-env", "env": {"A": "1", "B": "x=y",
                                                     "TOKEN": SECRET}})
        assert r.status_code == 201, r.text
        assert sorted(r.json()["env"]) == ["A", "B", "TOKEN"]
        assert SECRET not in r.text
        r = s.post(gw.url + "/v1/sessions/rest-env/execute", timeout=60,
                   json={"code": READ})
        assert r.status_code == 200, r.text
        main = [x for x in r.json()["results"] if x["is_main_result"]]
        assert main[0]["data"]["text/plain"] == EXPECT
        r = s.post(gw.url + "/v1/sessions", timeout=60,
                   json={"name": "rest-env-bad", "env": {"HTTPS_PROXY": "x"}})
        assert r.status_code == 400 and "HTTPS_PROXY" in r.text, r.text
        assert s.get(gw.url + "/v1/sessions/rest-env-bad",
                     timeout=60).status_code == 404
        s.delete(gw.url + "/v1/sessions/rest-env", timeout=60)
    finally:
        s.close()
    assert SECRET not in gw.log_text()


def test_gateway_env_allowlist(gw):
    from gwtest import Api, Channels, stdout_of
    token = gw.token("env-gw")
    api = Api(gw, token)
    try:
        r = api.call("POST", "/api/kernels", json={"name": "python3", "env": {
            "KERNEL_FOO": "foo-" + SECRET, "KERNEL_USERNAME": "alice",
            "OTHER": "dropped", "PATH": "/evil", "CELLBLOCK_X": "no"}})
        assert r.status_code == 201, r.text
        model = r.json()
        assert model["username"] == "alice", model
        ch = Channels(gw, token, model["id"])
        try:
            msgs = ch.execute("import os; print(repr((os.environ.get('KERNEL_FOO'),"
                              " os.environ.get('OTHER'), os.environ.get('CELLBLOCK_X'),"
                              " os.environ.get('PATH') == '/evil')))")
            assert stdout_of(msgs).strip() == repr(("foo-" + SECRET, None, None, False))
        finally:
            ch.close()
        listed = {k["id"]: k for k in api.call("GET", "/api/kernels").json()}
        assert listed[model["id"]]["username"] == "alice"
        mine = [x for x in json.loads(gw.cli("ls", "--json").stdout)
                if x.get("kernel_id") == model["id"]]
        assert sorted(mine[0]["env"]) == ["KERNEL_FOO", "KERNEL_USERNAME"], mine
        assert mine[0]["username"] == "alice"
        api.call("DELETE", "/api/kernels/" + model["id"])
    finally:
        api.close()
    assert SECRET not in gw.log_text()


def test_mcp_create_session_env(gw):
    """The MCP tool over stdio (`cellblock mcp`), a real JSON-RPC client."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "CELLBLOCK_STATE_DIR": gw.state}
    p = subprocess.Popen([CELLBLOCK, "mcp"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    try:
        def call(i, method, params):
            p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method,
                                      "params": params}) + "\n")
            p.stdin.flush()
            while True:
                m = json.loads(p.stdout.readline())
                if m.get("id") == i:
                    return m
        call(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "1"}})
        p.stdin.write(json.dumps({"jsonrpc": "2.0",
                                  "method": "notifications/initialized"}) + "\n")
        r = call(2, "tools/call", {"name": "create_session", "arguments": {
            "name": "mcp-env", "env": {"A": "1", "B": "x=y", "TOKEN": SECRET}}})
        assert not r["result"].get("isError"), r
        r = call(3, "tools/call", {"name": "run_code", "arguments": {
            "session": "mcp-env", "code": READ}})
        assert EXPECT in json.dumps(r["result"]), r
        r = call(4, "tools/call", {"name": "create_session", "arguments": {
            "name": "mcp-env-bad", "env": {"CELLBLOCK_SESSION": "x"}}})
        assert r["result"].get("isError") and "reserved" in json.dumps(r), r
    finally:
        p.stdin.close()
        p.wait(timeout=30)
        p.stdout.close()
    gw.cli("kill", "mcp-env", check=False)


def test_gateway_env_allow_setting():
    """http-env-allow names and NAME* prefixes; reserved or invalid names
    are dropped even when allowed; a value that is not a string is a 400."""
    from gwtest import Api, Channels, stdout_of
    g = Gateway(config="http-env-allow = MY_VAR, LANG_* *_PROXY\n")
    try:
        token = g.token("env-allow")
        api = Api(g, token)
        try:
            r = api.call("POST", "/api/kernels", json={"name": "python3", "env": {
                "MY_VAR": "m", "LANG_X": "l", "KERNEL_FOO": "k", "MY_VAR2": "no",
                "HTTP_PROXY": "http://evil:1", "LANG_-x": "bad"}})
            assert r.status_code == 201, r.text
            kid = r.json()["id"]
            ch = Channels(g, token, kid)
            try:
                msgs = ch.execute("import os; print(sorted(k for k in os.environ if k in"
                                  " ('MY_VAR', 'LANG_X', 'KERNEL_FOO', 'MY_VAR2',"
                                  " 'HTTP_PROXY')), os.environ['MY_VAR'])")
                assert stdout_of(msgs).strip() == "['LANG_X', 'MY_VAR'] m"
            finally:
                ch.close()
            r = api.call("POST", "/api/kernels", json={"name": "python3",
                                                        "env": {"MY_VAR": 7}})
            assert r.status_code == 400 and "MY_VAR" in r.text, r.text
            api.call("DELETE", "/api/kernels/" + kid)
        finally:
            api.close()
        assert g.proc.poll() is None
    finally:
        g.stop()


def test_fork_keeps_env_for_its_owner(daemon):
    kc = daemon.client(new_with_env(daemon, "env-src"))
    try:
        run_cell(kc, "x = 1")
    finally:
        kc.stop_channels()
    p = daemon.cli("fork", "env-src", "env-dst")
    assert p.returncode == 0, p.stderr
    assert sorted(ls(daemon)["env-dst"]["env"]) == ["A", "B", "TOKEN"]
    path = ls(daemon)["env-dst"]["connection_file"]
    kc = daemon.client(path)
    try:
        assert value(kc, READ) == EXPECT
    finally:
        kc.stop_channels()
    for n in ("env-src", "env-dst"):
        daemon.cli("kill", n)
