"""The gateway's operational edges (docs/GATEWAY.md, docs/OPERATIONS.md):
GET /metrics behind a token (or public), the audit log's "gateway" client
kind, 403 "Resource Limit" past a quota, the posted env kept out of the
kernel, wrong tokens logged a few lines at a time, and the URL in ping and
ls. Real daemon, real HTTP and WebSocket clients."""
import json
import os
import re
import signal
import struct
import subprocess
import threading

import pytest
import requests
import websocket
from prometheus_client.parser import text_string_to_metric_families

from cbtest import poll
from gwtest import Api, Channels, Gateway, header, stdout_of


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
                     json={"name": "python3", "env": {"KERNEL_LAUNCH_TIMEOUT": "1"}})
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


def test_concurrent_starts_past_the_cap_are_403():
    g = Gateway(config="http-max-starts = 1\n")
    pid = frozen_zygote(g)
    done = {}
    try:
        a, b = Api(g, g.token("root")), Api(g, g.token("root2"))

        def first():
            done["r"] = a.call("POST", "/api/kernels", timeout=30,
                               json={"name": "python3", "env": {"KERNEL_LAUNCH_TIMEOUT": "4"}})
        t = threading.Thread(target=first)
        t.start()
        poll(lambda: "KERNEL_USERNAME" in g.log_text(), 20, "the first start under way")
        r = b.call("POST", "/api/kernels", json={"name": "python3"})
        assert r.status_code == 403 and r.json()["reason"] == "Resource Limit", r.text
        t.join(30)
        # The first one started (the daemon stops waiting for a stuck
        # zygote) or timed out; either way it was answered.
        assert done["r"].status_code in (201, 500), done["r"].text
        a.close()
        b.close()
    finally:
        thaw(pid)
        g.stop()


def test_tls_serves_https_and_wss(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    g = Gateway(config="http-tls-cert = %s\nhttp-tls-key = %s\n" % (cert, key))
    try:
        assert g.url.startswith("https://127.0.0.1:"), g.url
        assert g.control({"cmd": "ping"})["http"]["tls"] is True
        tok = g.token("root")
        r = requests.get(g.url + "/api/kernels", headers={"Authorization": "token " + tok},
                         verify=str(cert), timeout=10)
        assert r.status_code == 200 and r.json() == []
        r = requests.post(g.url + "/api/kernels", json={"name": "python3"}, verify=str(cert),
                          headers={"Authorization": "token " + tok}, timeout=60)
        assert r.status_code == 201, r.text
        ws = websocket.create_connection(
            g.url.replace("https://", "wss://") + "/api/kernels/%s/channels" % r.json()["id"],
            header=["Authorization: token " + tok], timeout=30,
            sslopt={"ca_certs": str(cert)})
        msg = {"header": header("execute_request"), "parent_header": {}, "metadata": {},
               "content": {"code": "print(6 * 7)", "silent": False}, "channel": "shell"}
        ws.send(json.dumps(msg))
        out = ""
        while True:
            m = json.loads(ws.recv())
            if m["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                continue
            if m["msg_type"] == "stream":
                out += m["content"]["text"]
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                break
        ws.close()
        assert out == "42\n"
        # Plain HTTP on the TLS port is not served.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(g.url.replace("https://", "http://") + "/api", timeout=5)
    finally:
        g.stop()


def test_refused_requests_never_run(gw, api):
    """A 401 or 404 at the door: the body is not read into a handler."""
    for hdr, path in (({"Authorization": "token nope"}, "/api/kernels"),
                      ({}, "/api/kernels"),
                      (api.s.headers, "/api/kernels/x/y/z")):
        r = requests.post(gw.url + path, headers=dict(hdr), timeout=10,
                          data=json.dumps({"name": "python3", "pad": "x" * 100000}))
        assert r.status_code in (401, 404), r.text
    assert api.call("GET", "/api/kernels").json() == []
    assert "KERNEL_USERNAME" not in gw.log_text()


def test_outputs_over_10_mib_are_cut_with_a_notice(gw, api):
    k = api.new_kernel()
    ch = Channels(gw, api.token, k["id"])
    got = ch.execute("from IPython.display import HTML, display\n"
                     "display(HTML('<b>' + 'x' * (12 * 1024 * 1024) + '</b>'))\n"
                     "print('after')", timeout=60)
    shown = [m for m in got if m["msg_type"] == "display_data"]
    assert len(shown) == 1, [m["msg_type"] for m in got]
    data = shown[0]["content"]["data"]
    assert set(data) == {"text/plain"}, list(data)
    assert "over the gateway's" in data["text/plain"] and "was cut" in data["text/plain"]
    assert stdout_of(got) == "after\n"
    ch.close()


def test_a_client_message_over_max_message_closes_only_that_socket():
    g = Gateway(config="max-message = 1M\n")
    try:
        a = Api(g, g.token("root"))
        k = a.new_kernel()
        ch = Channels(g, a.token, k["id"])
        ch.ws.send(json.dumps({"header": header("execute_request"), "parent_header": {},
                               "metadata": {}, "channel": "shell",
                               "content": {"code": "#" + "y" * (2 * 1024 * 1024)}}))
        ch.ws.settimeout(20)
        for _ in range(100):
            op, data = ch.ws.recv_data()
            if op == websocket.ABNF.OPCODE_CLOSE:
                break
        assert op == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack(">H", data[:2])[0] == 1009, data
        ch.ws.close()
        ch2 = Channels(g, a.token, k["id"])
        assert stdout_of(ch2.execute("print('still')")) == "still\n"
        ch2.close()
        a.close()
    finally:
        g.stop()


def test_the_foreground_banner_is_a_working_gateway_line(gw):
    """`make run`'s line: its URL and token work as pasted."""
    line = [ln for ln in gw.log_text().splitlines()
            if ln.strip().startswith("jupyter notebook --gateway-url=")]
    assert len(line) == 1, gw.log_text()
    m = re.match(r"\s*jupyter notebook --gateway-url=(\S+) --GatewayClient.auth_token=(\S+)$",
                 line[0])
    assert m and m.group(1) == gw.url, line
    r = requests.get(m.group(1) + "/api/kernels",
                     headers={"Authorization": "token " + m.group(2)}, timeout=10)
    assert r.status_code == 200 and r.json() == []


def test_a_kernel_whose_interpreter_cannot_come_back_is_dead_with_a_reason():
    """Clients cull by the model: a kernel whose interpreter died and cannot
    start again is "dead" with a reason, not idle, and the front serves on.
    The interpreter is a wrapper that works until the test breaks it; it
    lives under /usr, which the sandbox sees, and is removed afterwards."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="cbtest-python-", dir="/usr/local/lib")
    os.chmod(d, 0o755)
    broken = os.path.join(d, "broken")
    py = os.path.join(d, "python3")
    with open(py, "w") as f:
        f.write('#!/bin/sh\n[ -e %s ] && exit 1\nexec /usr/bin/python3 "$@"\n' % broken)
    os.chmod(py, 0o755)
    g = Gateway(config="zygote = no\npython = %s\n" % py)
    try:
        a = Api(g, g.token("root"))
        k = a.new_kernel()
        assert a.model(k["id"])["execution_state"] != "dead"
        name = k["cellblock"]["session"]
        pid = next(s["pid"] for s in g.control({"cmd": "ls"})["sessions"]
                   if s["name"] == name)
        open(broken, "w").close()
        os.kill(pid, signal.SIGKILL)
        poll(lambda: (a.model(k["id"]) or {}).get("execution_state") == "dead", 60,
             "the kernel model saying dead")
        m = a.model(k["id"])
        assert "could not be restarted" in m["reason"], m
        assert any(x["id"] == k["id"] and x["execution_state"] == "dead"
                   for x in a.call("GET", "/api/kernels").json())
        assert requests.get(g.url + "/api", timeout=10).status_code == 200
        a.close()
    finally:
        g.stop()
        shutil.rmtree(d, ignore_errors=True)
