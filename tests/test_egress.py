"""Network egress (issue 15): per-session allowlists through cellblock-egress.

A real sandboxed daemon with an egress-allow ceiling and a test resolver
(egress-hosts), two test hosts in network namespaces this module creates and
removes (tests/egress_hosts.py), and sessions made with --allow-net. Each
attempt runs as cell code inside a session; each is checked in the cell
(what the code sees) and in the daemon's log (the proxy's record).

Needs root (network namespaces, the sandbox). Only loopback and the test
hosts' 198.18.200-201.x addresses are ever contacted.
"""
import json
import os
import re
import signal
import subprocess

import pytest

from cbtest import CELLBLOCKD, Daemon, poll, run_cell
from egress_hosts import MAX_CONNS, RATE, EgressEnv as Env, _error, _stdout

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

@pytest.fixture(scope="module")
def env():
    e = Env()
    try:
        yield e
    finally:
        e.close()


# ---------------------------------------------------------- allowed

def test_urllib_http_to_an_allowed_host(env):
    out, err = env.cell("eg", "import urllib.request\n"
                        "print(urllib.request.urlopen('http://web.test/hello.txt', "
                        "timeout=20).read().decode())")
    assert err is None and out.strip() == f"hello from {env.hosts.web.addr}"
    r = env.record("eg", "web.test:80", "allowed")
    assert r["kind"] == "HTTP" and r["resolved"] == env.hosts.web.addr
    assert r["connected"] == f"{env.hosts.web.addr}:80"
    assert r["bytes_in"] > 0 and r["bytes_out"] > 0 and r["owner"] == 0


def test_urllib_https_through_connect(env):
    out, err = env.cell("eg", "import ssl, urllib.request\n"
                        "ctx = ssl.create_default_context(cafile='/tmp/web.crt')\n"
                        "print(urllib.request.urlopen('https://web.test/hello.txt', "
                        "context=ctx, timeout=20).read().decode())")
    assert err is None and "hello from" in out
    assert env.record("eg", "web.test:443", "allowed")["kind"] == "CONNECT"


def test_requests_http_and_https(env):
    out, err = env.cell("eg", "import requests\n"
                        "print(requests.get('http://web.test/hello.txt', timeout=20).text)\n"
                        "print(requests.get('https://web.test/hello.txt', timeout=20, "
                        "verify='/tmp/web.crt').text)")
    assert err is None and out.count("hello from") == 2


def test_pip_download_from_a_test_index(env):
    out, err = env.cell("eg", "import subprocess, os\n"
                        "p = subprocess.run(['/usr/bin/python3', '-m', 'pip', 'download', "
                        "'--no-deps', '--no-cache-dir', '--disable-pip-version-check', "
                        "'--index-url', 'http://web.test/simple/', '--trusted-host', "
                        "'web.test', '-d', '/tmp/dl', 'cbdemo'], capture_output=True, "
                        "text=True, timeout=120)\n"
                        "print(p.returncode, os.listdir('/tmp/dl') if os.path.isdir('/tmp/dl') "
                        "else None, p.stderr[-2000:])", timeout=180)
    assert err is None and out.startswith("0 ['cbdemo-1.0-py3-none-any.whl']"), out


def test_raw_tcp_forward(env):
    out, err = env.cell("eg", "import os, socket, cellblock_egress\n"
                        "host, port = cellblock_egress.forwards()['web.test:7000']\n"
                        "assert 'web.test:7000=127.0.0.1:%d' % port in "
                        "os.environ['CELLBLOCK_EGRESS_TCP']\n"
                        "s = socket.create_connection((host, port), timeout=20)\n"
                        "s.sendall(b'ping through the forward')\n"
                        "print(s.recv(100).decode()); s.close()")
    assert err is None and out.strip() == "ping through the forward"
    assert env.record("eg", "web.test:7000", "allowed")["kind"] == "TCP"


# ---------------------------------------------------------- refused

def test_unlisted_host_refused_https(env):
    out, err = env.cell("eg", "import urllib.request\n"
                        "urllib.request.urlopen('https://other.test/hello.txt', timeout=20)")
    assert err is not None and "Tunnel connection failed: 403" in err
    assert "not in this session's allowlist" in err
    r = env.record("eg", "other.test:443", "refused")
    assert "allowlist" in r["why"] and r["connected"] == ""


def test_unlisted_host_refused_http_with_a_body_naming_the_rule(env):
    out, err = env.cell("eg", "import urllib.request, urllib.error\n"
                        "try:\n"
                        "    urllib.request.urlopen('http://other.test/hello.txt', timeout=20)\n"
                        "except urllib.error.HTTPError as e:\n"
                        "    print(e.code, e.read().decode())")
    assert err is None and out.startswith("403 cellblock egress: other.test:80 is not in "
                                          "this session's allowlist (web.test:80,")


def test_unlisted_port_on_a_listed_host_refused(env):
    out, err = env.cell("eg", "import urllib.request\n"
                        "urllib.request.urlopen('https://web.test:8443/', timeout=20)")
    assert err is not None and "Tunnel connection failed: 403" in err
    assert "web.test:8443 is not in this session's allowlist" in err
    env.record("eg", "web.test:8443", "refused")


def test_listed_name_resolving_to_loopback_refused(env):
    # evil.test is listed, but resolves to 127.0.0.1: DNS rebinding to the
    # daemon's own ports.
    out, err = env.cell("eg", "import urllib.request, urllib.error\n"
                        "for url in ('http://evil.test/', 'http://both.test/'):\n"
                        "    try:\n"
                        "        urllib.request.urlopen(url, timeout=20)\n"
                        "    except urllib.error.HTTPError as e:\n"
                        "        print(e.code, e.read().decode().strip())")
    lines = out.strip().splitlines()
    assert err is None and len(lines) == 2
    assert lines[0].startswith("403 ") and "127.0.0.1 is a loopback address" in lines[0]
    # Every address must pass, not just the first.
    assert lines[1].startswith("403 ") and "both.test:80 resolves to" in lines[1]
    assert "loopback" in env.record("eg", "both.test:80", "refused")["why"]


def test_address_literal_not_listed_refused(env):
    other = env.hosts.other.addr
    out, err = env.cell("eg", "import urllib.request, urllib.error\n"
                        "try:\n"
                        f"    urllib.request.urlopen('http://{other}/hello.txt', timeout=20)\n"
                        "except urllib.error.HTTPError as e:\n"
                        "    print(e.code, e.read().decode().strip())")
    assert err is None and out.startswith("403 ") and "benchmarking address" in out


def test_redirect_to_an_unlisted_host_refused(env):
    out, err = env.cell("eg", "import urllib.request, urllib.error\n"
                        "try:\n"
                        "    urllib.request.urlopen('http://web.test/redirect?to="
                        "http://other.test/hello.txt', timeout=20)\n"
                        "except urllib.error.HTTPError as e:\n"
                        "    print(e.code, e.url, e.read().decode().strip())")
    assert err is None and out.startswith("403 http://other.test/hello.txt cellblock egress:")
    env.record("eg", "other.test:80", "refused")


def test_direct_connect_and_dns_bypassing_the_proxy_fail(env):
    web = env.hosts.web.addr
    out, err = env.cell("eg", "import socket, errno\n"
                        "for addr in (('%s', 80), ('%s', 7000)):\n"
                        "    s = socket.socket()\n"
                        "    s.settimeout(5)\n"
                        "    try:\n"
                        "        s.connect(addr)\n"
                        "        print('CONNECTED', addr)\n"
                        "    except OSError as e:\n"
                        "        print(errno.errorcode.get(e.errno, e.errno))\n"
                        "    s.close()\n"
                        "try:\n"
                        "    socket.getaddrinfo('web.test', 80)\n"
                        "    print('RESOLVED')\n"
                        "except socket.gaierror as e:\n"
                        "    print('gaierror')\n" % (web, web))
    assert err is None and out.split() == ["ENETUNREACH", "ENETUNREACH", "gaierror"], out


def test_relay_cannot_choose_its_session_or_widen_the_list(env):
    # The relay is the session's own code: speak to the proxy's socket
    # directly with a forward index past the list and a foreign request.
    out, err = env.cell("eg", "import socket\n"
                        "def ask(data):\n"
                        "    s = socket.socket(socket.AF_UNIX)\n"
                        "    s.connect('/run/cellblock/egress.sock')\n"
                        "    s.sendall(data)\n"
                        "    r = s.recv(4096).decode(errors='replace'); s.close()\n"
                        "    return r.split('\\r\\n')[0]\n"
                        "print(ask(b'CELLBLOCK-TCP 99\\r\\n'))\n"
                        "print(ask(b'CELLBLOCK-TCP 0\\r\\n'))\n"
                        "print(ask(b'GET https://other.test/ HTTP/1.1\\r\\n\\r\\n'))\n"
                        "print(ask(b'GET http://user@other.test/ HTTP/1.1\\r\\n\\r\\n'))\n"
                        "import os\n"
                        "try:\n"
                        "    open('/run/cellblock/policy.json', 'a')\n"
                        "except OSError as e:\n"
                        "    print('ro', e.errno in (13, 30), "
                        "bool(os.statvfs('/run/cellblock').f_flag & os.ST_RDONLY))\n")
    lines = out.strip().splitlines()
    assert err is None and len(lines) == 5, out
    assert lines[0].startswith("HTTP/1.1 400") and "no forwardable rule" in lines[0]
    assert lines[1] == "HTTP/1.1 200 Connection established"   # rule 0 is web.test:80
    assert lines[2].startswith("HTTP/1.1 400") and "CONNECT" in lines[2]
    assert lines[3].startswith("HTTP/1.1 400")
    assert lines[4] == "ro True True"    # EACCES/EROFS, a read-only mount


def test_a_request_that_is_not_utf8_is_still_recorded(env):
    # The record is JSON, which has no invalid UTF-8: the client's bytes are
    # made text, never the reason its attempt goes unlogged.
    out, err = env.cell("eg", "import socket\n"
                        "s = socket.socket(socket.AF_UNIX)\n"
                        "s.connect('/run/cellblock/egress.sock')\n"
                        "s.sendall(b'CONNECT \\xff.test:443 HTTP/1.1\\r\\n\\r\\n')\n"
                        "print(s.recv(4096).decode(errors='replace').split('\\r\\n')[0])\n"
                        "s.close()\n")
    assert err is None and out.startswith("HTTP/1.1 400"), out
    r = env.record("eg", "?.test:443", "refused")
    assert r["method"] == "CONNECT" and "host:port" in r["why"]


# ---------------------------------------------------------- bounds

FLOOD = f"""
import socket, time
held, answers = [], []
for i in range({MAX_CONNS * 3}):
    s = socket.create_connection(('127.0.0.1', int(__import__('os').environ['HTTP_PROXY'].rsplit(':', 1)[1])))
    s.sendall(b'CONNECT web.test:7000 HTTP/1.1\\r\\n\\r\\n')
    s.settimeout(20)
    answers.append(s.recv(4096).decode(errors='replace').split('\\r\\n')[0])
    held.append(s)
print(sum(a.startswith('HTTP/1.1 200') for a in answers), 'ok')
print(sum('egress-max-conns' in a for a in answers), 'over')
"""


def test_flood_hits_the_limits_and_the_neighbour_is_unaffected(env):
    out, err = env.cell("flood", FLOOD)
    assert err is None
    assert out.split()[:4] == [str(MAX_CONNS), "ok", str(MAX_CONNS * 2), "over"], out
    # While the flood's connections are held, the neighbour still gets out.
    out2, err2 = env.cell("eg", "import urllib.request\n"
                          "print(urllib.request.urlopen('http://web.test/hello.txt', "
                          "timeout=20).read().decode())")
    assert err2 is None and "hello from" in out2
    # And the daemon answers.
    assert env.daemon.cli("ls").returncode == 0
    # Rate: many quick sequential connections pass egress-rate. Straight to
    # the proxy's socket, each refused at once (no upstream connect), so
    # that the burst takes milliseconds, not the second the bucket refills
    # in: through the relay and an upstream, a loaded machine was slower.
    out3, err3 = env.cell("flood", "for s in held: s.close()\n"
                          "import time; time.sleep(1.5)\n"
                          "answers = []\n"
                          f"for i in range({RATE * 2}):\n"
                          "    s = socket.socket(socket.AF_UNIX)\n"
                          "    s.connect('/run/cellblock/egress.sock')\n"
                          "    s.sendall(b'GET https://other.test/ HTTP/1.1\\r\\n\\r\\n')\n"
                          "    s.settimeout(20)\n"
                          "    answers.append(s.recv(4096).decode(errors='replace'))\n"
                          "    s.close()\n"
                          "print(sum('egress-rate' in a for a in answers), 'rated')")
    assert err3 is None and int(out3.split()[0]) > 0, out3
    recs = [r for r in env.records() if r["session"] == "flood"]
    assert any("egress-max-conns" in r["why"] for r in recs)
    assert any("egress-rate" in r["why"] for r in recs)


# ---------------------------------------------------------- audit and metrics

def _audit(env):
    with open(os.path.join(env.daemon.state, "audit", "audit.log")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _egress_total(env, verdict):
    from prometheus_client.parser import text_string_to_metric_families
    text = env.daemon.cli("stats", check=True).stdout
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name == "cellblock_egress_total" and smp.labels.get("verdict") == verdict:
                return smp.value
    return 0


def test_every_attempt_in_the_audit_log_and_the_metrics(env):
    """Issue 16 item 1 and 3: each attempt, allowed or refused, is an `egress`
    event of the audit log (with the proxy's whole record) and a count."""
    before = {v: _egress_total(env, v) for v in ("allowed", "refused")}
    out, err = env.cell("aud", "import urllib.request\n"
                        "print(urllib.request.urlopen('http://web.test/hello.txt', "
                        "timeout=20).read().decode())\n"
                        "try:\n"
                        "    urllib.request.urlopen('http://other.test/', timeout=20)\n"
                        "except Exception as e:\n"
                        "    print('refused', e)")
    assert err is None and "hello from" in out and "refused" in out
    env.record("aud", "web.test:80", "allowed")
    env.record("aud", "other.test:80", "refused")
    ev = poll(lambda: [e for e in _audit(env) if e["event"] == "egress" and
                       e["session"] == "aud"] or None, 20, "egress audit events")
    ok = [e for e in ev if e["verdict"] == "allowed"][0]
    assert ok["asked"] == "web.test:80" and ok["resolved"] == env.hosts.web.addr
    assert ok["owner"] == 0 and ok["bytes_in"] > 0 and ok["bytes_out"] > 0
    assert "ms" in ok and ok["kind"] == "HTTP"
    no = [e for e in ev if e["verdict"] == "refused"][0]
    assert no["asked"] == "other.test:80" and "not in" in no["why"]
    after = {v: _egress_total(env, v) for v in ("allowed", "refused")}
    assert after["allowed"] - before["allowed"] >= 1
    assert after["refused"] - before["refused"] >= 1


# ---------------------------------------------------------- policy

def test_allow_net_is_bounded_by_the_ceiling_and_checked(env):
    d = env.daemon
    p = d.cli("new", "--name", "wide", "--allow-net", "example.com:443")
    assert p.returncode == 2 and "not within the daemon's egress-allow" in p.stderr
    p = d.cli("new", "--name", "bad", "--allow-net", "web.test:99999")
    assert p.returncode == 2 and "bad port" in p.stderr
    p = d.cli("new", "--name", "bad2", "--allow-net", "web.test")
    assert p.returncode == 2 and "host:port" in p.stderr
    names = [s["name"] for s in json.loads(d.cli("ls", "--json").stdout)]
    assert "wide" not in names and "bad" not in names


def test_default_daemon_allows_no_egress():
    d = Daemon([], wait_zygote=False)
    try:
        p = d.cli("new", "--name", "x", "--allow-net", "web.test:80")
        assert p.returncode == 2 and "empty: no egress allowed" in p.stderr
        p = d.cli("new", "--name", "plain", check=True)
        info = [s for s in json.loads(d.cli("ls", "--json").stdout) if s["name"] == "plain"]
        assert info[0]["allow_net"] == ""
        assert "egress: off" in d.log_text()
    finally:
        d.stop()


def test_allow_net_shown_in_ls(env):
    env.session("eg")
    info = [s for s in json.loads(env.daemon.cli("ls", "--json").stdout)
            if s["name"] == "eg"][0]
    assert info["allow_net"] == env.allow
    assert f"allow-net {env.allow}" in env.daemon.cli("ls").stdout


def test_proxy_restarted_when_it_dies(env):
    env.session("eg")
    pids = re.findall(r"egress: proxy pid (\d+) ready", env.daemon.log_text())
    os.kill(int(pids[-1]), signal.SIGKILL)
    poll(lambda: len(re.findall(r"egress: proxy pid (\d+) ready",
                                env.daemon.log_text())) > len(pids), 20,
         "the proxy's restart")
    out, err = env.cell("eg", "import urllib.request\n"
                        "print(urllib.request.urlopen('http://web.test/hello.txt', "
                        "timeout=20).read().decode())")
    assert err is None and "hello from" in out


def test_allow_net_kept_across_hibernation_and_daemon_restart(env):
    d = env.daemon
    env.session("keep", extra=("--idle-timeout", "1"))
    env.kcs.pop("keep").stop_channels()
    poll(lambda: [s for s in json.loads(d.cli("ls", "--json").stdout)
                  if s["name"] == "keep"][0]["state"] == "hibernated", 60,
         "keep to hibernate")
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(timeout=30)
    start = len(d.log_text())
    d.proc = subprocess.Popen([CELLBLOCKD, "--foreground", "--state-dir", d.state, *d.args],
                              stdout=d.log, stderr=subprocess.STDOUT)
    poll(lambda: "ready: control" in d.log_text()[start:], 30, "the restarted daemon")
    for kc in env.kcs.values():
        kc.stop_channels()
    env.kcs.clear()
    info = [s for s in json.loads(d.cli("ls", "--json").stdout) if s["name"] == "keep"][0]
    assert info["allow_net"] == env.allow and info["state"] == "hibernated"
    kc = d.client(os.path.join(d.state, "sessions", "keep.json"))
    env.kcs["keep"] = kc
    reply, outputs = run_cell(kc, "import urllib.request\n"
                              "print(urllib.request.urlopen('http://web.test/hello.txt', "
                              "timeout=20).read().decode())", timeout=60)
    assert _error(outputs) is None and "hello from" in _stdout(outputs)
