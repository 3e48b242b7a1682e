#!/usr/bin/python3
"""MCP benchmark (issue 14): tools/call run_code of `1+1`, round trip, over
stdio (`cellblock mcp`) and Streamable HTTP (/mcp), against REST v1
(POST /v1/sessions/{name}/execute) and ZeroMQ (jupyter_client) on the same
live session in the same run.

    /usr/bin/python3 tests/bench/mcp_bench.py            # what `make bench` runs
    /usr/bin/python3 tests/bench/mcp_bench.py --quick    # a smoke run

One private cellblockd (loopback only; its HTTP front on 127.0.0.1:0 when the
build has one), one token. The MCP clients here are raw JSON-RPC (a pipe, a
keep-alive http.client), so the figures are the server's, not a client
library's. Writes its section into docs/BENCHMARKS.md between its markers
(benchlib.write_section; appended if absent). Exit status
0 whatever the figures.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as B  # noqa: E402

CELLBLOCK = os.path.join(B.BIN, "cellblock")
CALL = {"name": "run_code", "arguments": {"code": "1+1"}}
INIT = {"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "mcp_bench", "version": "1"}}


def ms(t0):
    return (time.perf_counter() - t0) * 1000.0


class Stdio:
    """`cellblock mcp` on pipes, one request at a time."""

    def __init__(self, daemon):
        env = dict(os.environ, CELLBLOCK_STATE_DIR=daemon.state)
        self.p = subprocess.Popen([CELLBLOCK, "mcp"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=env)
        self.n = 0
        self.request("initialize", INIT)
        self.notify("notifications/initialized")

    def notify(self, method):
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.p.stdin.flush()

    def request(self, method, params):
        self.n += 1
        self.p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method,
                                       "params": params}).encode() + b"\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("cellblock mcp ended")
            msg = json.loads(line)
            if msg.get("id") == self.n:
                return msg

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=10)
        self.p.stdout.close()


class Http:
    """POST /mcp on one keep-alive connection; JSON or SSE answers."""

    def __init__(self, url, token):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        self.path = u.path
        self.hdr = {"Authorization": "Bearer " + token, "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream"}
        self.n = 0
        self.request("initialize", INIT)
        self.hdr["MCP-Protocol-Version"] = "2025-11-25"

    def request(self, method, params):
        self.n += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method,
                           "params": params})
        self.conn.request("POST", self.path, body=body, headers=self.hdr)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("POST /mcp: %d %s" % (r.status, data[:300]))
        if r.getheader("Mcp-Session-Id"):
            self.hdr["Mcp-Session-Id"] = r.getheader("Mcp-Session-Id")
        if r.getheader("Content-Type", "").startswith("text/event-stream"):
            for line in data.decode().splitlines():
                if line.startswith("data: "):
                    msg = json.loads(line[6:])
                    if msg.get("id") == self.n:
                        return msg
            raise RuntimeError("no response in the event stream")
        return json.loads(data)

    def close(self):
        self.conn.close()


def http_front(daemon):
    path = os.path.join(daemon.state, "http.json")
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not os.path.exists(path):
        return None, None
    with open(path) as f:
        url = json.load(f)["url"]
    env = dict(os.environ, CELLBLOCK_STATE_DIR=daemon.state)
    token = subprocess.run([CELLBLOCK, "token", "new", "--name", "mcp-bench"],
                           capture_output=True, text=True, env=env, check=True).stdout.strip()
    return url, token


def rest_execute(url, token, name):
    """One REST execute as a callable on a keep-alive connection, or None."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    hdr = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    def call():
        conn.request("POST", "/v1/sessions/%s/execute" % name,
                     body=json.dumps({"code": "1+1"}), headers=hdr)
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("REST execute: %d %s" % (r.status, data[:200]))
    try:
        call()
    except Exception as e:
        B.log("mcp", "REST path not measured: %s" % e)
        conn.close()
        return None, None
    return call, conn


def timed(fn, n, warm=20):
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(ms(t0))
    return B.summary(out)


def measure(daemon, n):
    r = daemon.control({"cmd": "new", "name": "mcpbench"})
    s = r["session"]
    kc = B.client_for(s["connection_file"])
    res = {}
    clients = []
    try:
        B.execute(kc, "1+1", timeout=120)
        res["zmq"] = timed(lambda: B.execute(kc, "1+1"), n)
        stdio = Stdio(daemon)
        clients.append(stdio)
        res["stdio"] = timed(lambda: stdio.request(
            "tools/call", {"name": "run_code", "arguments": {"code": "1+1",
                                                             "session": "mcpbench"}}), n)
        url, token = http_front(daemon)
        if url is not None:
            try:
                h = Http(url + "/mcp", token)
                clients.append(h)
                res["http"] = timed(lambda: h.request(
                    "tools/call", {"name": "run_code",
                                   "arguments": {"code": "1+1", "session": "mcpbench"}}), n)
            except Exception as e:
                B.log("mcp", "HTTP path not measured: %s" % e)
            call, conn = rest_execute(url, token, "mcpbench")
            if call is not None:
                res["rest"] = timed(call, n)
                conn.close()
    finally:
        for c in clients:
            c.close()
        kc.stop_channels()
    return res


def fmt(v):
    return "—" if v is None else "%.2f" % v


def report(res, n):
    lines = ["## MCP: tools/call run_code round trip (issue 14)", "",
             "`tools/call run_code` of `1+1` on one live session, %d calls each after 20 "
             "warm-up calls, one at a time, measured %s%s. stdio is `cellblock mcp` on "
             "pipes (the CLI relaying to the daemon's control socket); HTTP is POST /mcp "
             "on one keep-alive connection; REST is POST /v1/sessions/NAME/execute; "
             "ZeroMQ is jupyter_client waiting for the reply and idle (a Python client "
             "that costs more per call than these minimal MCP clients; bench.py's C "
             "client is the ZeroMQ floor)."
             % (n, time.strftime("%Y-%m-%d"),
                B.loadavg() and ", load " + B.loadavg() or ""), "",
             "| path | n | p50 ms | p99 ms |", "| --- | --- | --- | --- |"]
    for k, label in (("zmq", "ZeroMQ (jupyter_client)"), ("stdio", "MCP over stdio"),
                     ("http", "MCP over Streamable HTTP"), ("rest", "REST v1")):
        f = res.get(k)
        if f is None:
            lines.append("| %s | — | not measured | |" % label)
        else:
            lines.append("| %s | %d | %s | %s |" % (label, f["n"], fmt(f.get("p50")),
                                                   fmt(f.get("p99"))))
    return "\n".join(lines) + "\n"


def http_args():
    """--http-listen if this build's daemon has an HTTP front."""
    p = subprocess.run([B.CELLBLOCKD, "--help"], capture_output=True, text=True)
    return ["--http-listen", "127.0.0.1:0"] if "http-listen" in p.stdout + p.stderr else []


def main(argv=None):
    p = argparse.ArgumentParser(description="MCP round trips vs REST and ZeroMQ (issue 14)")
    p.add_argument("--quick", action="store_true", help="small counts")
    p.add_argument("--out", help="report (default docs/BENCHMARKS.md; --quick: "
                                 "tests/bench/.build/BENCHMARKS-mcp-quick.md)")
    p.add_argument("--n", type=int, help="round trips per path (1000)")
    args = p.parse_args(argv)
    n = args.n or (100 if args.quick else 1000)
    out = args.out or (os.path.join(B.BUILD, "BENCHMARKS-mcp-quick.md") if args.quick
                       else os.path.join(B.ROOT, "docs", "BENCHMARKS.md"))

    def run(daemon, workdir):
        B.log("mcp", "round trips, %d each" % n)
        return measure(daemon, n)
    return B.run_section("mcp", out, http_args(), run, lambda res: report(res, n))


if __name__ == "__main__":
    sys.exit(main())
