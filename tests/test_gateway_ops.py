"""The gateway's operational edges (docs/GATEWAY.md, docs/OPERATIONS.md):
GET /metrics behind a token (or public), the audit log's "gateway" client
kind, 403 "Resource Limit" past a quota, the posted env kept out of the
kernel, wrong tokens logged a few lines at a time, and the URL in ping and
ls. Real daemon, real HTTP and WebSocket clients."""
import json
import os
import signal

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from cbtest import poll
from gwtest import Api, Channels, Gateway, header, stdout_of


@pytest.fixture
def gw():
    g = Gateway()
    yield g
    g.stop()


@pytest.fixture
def api(gw):
    a = Api(gw, gw.token("root"))
    yield a
    a.close()


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams, family, **labels):
    for s in fams[family].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def executes(fams):
    return sum(s.value for s in fams["cellblock_executes"].samples
               if s.name == "cellblock_executes_total")


def test_metrics_need_a_token_and_move(gw, api):
    r = requests.get(gw.url + "/metrics", timeout=10)
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    k = api.new_kernel()
    before = families(api.call("GET", "/metrics").text)
    ch = Channels(gw, api.token, k["id"])
    assert stdout_of(ch.execute("print(1 + 1)")) == "2\n"
    r = api.call("GET", "/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    after = families(r.text)
    assert executes(after) == executes(before) + 1
    assert sample(after, "cellblock_http_connections", kind="ws") == 1
    assert sample(after, "cellblock_http_connections", kind="http") >= 2
    # root's token sees the per-owner series, as `cellblock stats` shows root.
    assert "cellblock_sessions_by_owner" in after
    ch.close()
    poll(lambda: sample(families(api.call("GET", "/metrics").text),
                        "cellblock_http_connections", kind="ws") == 0, 10, "ws gauge down")


def test_metrics_public_without_owners():
    g = Gateway(config="metrics-public = yes\n")
    try:
        r = requests.get(g.url + "/metrics", timeout=10)
        assert r.status_code == 200, r.text
        fams = families(r.text)
        assert "cellblock_sessions" in fams
        assert "cellblock_sessions_by_owner" not in fams
        # Everything else still wants a token.
        assert requests.get(g.url + "/api/kernels", timeout=10).status_code == 401
    finally:
        g.stop()


def audit_events(gw):
    with open(os.path.join(gw.state, "audit", "audit.log")) as f:
        return [json.loads(line) for line in f]


def test_audit_kind_is_gateway_whatever_the_client_claims(gw, api):
    k = api.new_kernel()
    ch = Channels(gw, api.token, k["id"])
    ch.execute("x = 1")
    # A client claiming to be the CLI is still the gateway.
    msg = {"header": header("execute_request"), "parent_header": {},
           "metadata": {"cellblock_client": "cli"}, "channel": "shell",
           "content": {"code": "y = 2", "silent": False}}
    ch.ws.send(json.dumps(msg))
    ch.until_idle(msg["header"]["msg_id"])
    ch.close()
    ev = poll(lambda: [e for e in audit_events(gw) if e["event"] == "execute"]
              if len([e for e in audit_events(gw) if e["event"] == "execute"]) >= 2
              else None, 20, "two execute events")
    assert [e["client"] for e in ev] == ["gateway", "gateway"], ev


def test_quota_is_403_resource_limit():
    g = Gateway(config="max-sessions-per-user = 1\n")
    try:
        a = Api(g, g.token("root"))
        a.new_kernel()
        r = a.call("POST", "/api/kernels", json={"name": "python3"})
        assert r.status_code == 403, r.text
        assert r.json()["reason"] == "Resource Limit", r.text
        assert len(a.call("GET", "/api/kernels").json()) == 1
        a.close()
    finally:
        g.stop()


def test_posted_env_never_reaches_the_kernel(gw, api):
    k = api.new_kernel(env={"KERNEL_USERNAME": "ann", "GW_SECRET": "leak",
                            "PATH": "/evil", "PYTHONPATH": "/evil",
                            "KERNEL_WORKING_DIR": "/home/ann"})
    ch = Channels(gw, api.token, k["id"])
    out = stdout_of(ch.execute(
        "import os; print(os.environ.get('GW_SECRET'), os.environ.get('PATH'),"
        " os.environ.get('PYTHONPATH'), os.getcwd() == '/home/ann')"))
    ch.close()
    secret, path, pypath, cwd = out.split()
    assert secret == "None" and pypath == "None" and cwd == "False", out
    assert "/evil" not in path, out
    # KERNEL_USERNAME is a note in the log, not an owner.
    assert "KERNEL_USERNAME ann" in gw.log_text()
    assert api.model(k["id"]) is not None


def test_bad_tokens_are_logged_a_few_lines_at_a_time(gw, api):
    s = requests.Session()
    for i in range(200):
        r = s.get(gw.url + "/api/kernels", headers={"Authorization": "token bad%d" % i},
                  timeout=10)
        assert r.status_code == 401 and set(r.json()) == {"reason", "message"}
    s.close()
    assert api.call("GET", "/api/kernels").status_code == 200
    lines = [ln for ln in gw.log_text().splitlines() if "bad token" in ln]
    assert 1 <= len(lines) < 40, len(lines)


def test_ping_and_ls_show_the_url(gw, api):
    k = api.new_kernel()
    assert gw.control({"cmd": "ping"})["http"]["url"] == gw.url
    p = gw.cli("ls")
    assert gw.url in p.stderr and gw.url not in p.stdout, p
    listed = json.loads(gw.cli("ls", "--json").stdout)
    assert [s["kernel_id"] for s in listed] == [k["id"]]


def frozen_zygote(gw):
    """SIGSTOP the zygote: a start through it then hangs until undone."""
    pid = gw.control({"cmd": "ping"})["zygote"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    return pid


def thaw(pid):
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def test_launch_timeout_is_honoured_and_leaves_no_orphan(gw, api):
    pid = frozen_zygote(gw)
    try:
        # The client's own bound is below the 40 s default: only the
        # posted KERNEL_LAUNCH_TIMEOUT can answer it in time.
        r = api.call("POST", "/api/kernels", timeout=20,
                     json={"name": "python3", "env": {"KERNEL_LAUNCH_TIMEOUT": "2"}})
        assert r.status_code == 500, r.text
        assert "launch timeout" in r.json()["message"], r.text
        assert api.call("GET", "/api/kernels").json() == []
    finally:
        thaw(pid)
    # The daemon serves the next start.
    k = poll(lambda: _try_new(api), 90, "a kernel after the frozen zygote")
    assert k["execution_state"] == "idle"


def _try_new(api):
    r = api.call("POST", "/api/kernels", json={"name": "python3"})
    return r.json() if r.status_code == 201 else None


def test_client_gone_during_start_ends_the_kernel(gw, api):
    pid = frozen_zygote(gw)
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            api.call("POST", "/api/kernels", timeout=1, json={"name": "python3"})
        api.s.close()       # the client hangs up: its socket closes
        poll(lambda: "the client went away while it started" in gw.log_text(), 30,
             "the start ended for the gone client")
        assert api.call("GET", "/api/kernels").json() == []
    finally:
        thaw(pid)


def test_a_kernel_that_cannot_start_is_a_json_500():
    g = Gateway(config="zygote = no\npython = /bin/false\n")
    try:
        a = Api(g, g.token("root"))
        r = a.call("POST", "/api/kernels", json={"name": "python3"})
        assert r.status_code == 500 and set(r.json()) == {"reason", "message"}, r.text
        assert "died while starting" in r.json()["message"]
        assert a.call("GET", "/api/kernels").json() == []
        assert requests.get(g.url + "/api", timeout=10).status_code == 200
        a.close()
    finally:
        g.stop()
