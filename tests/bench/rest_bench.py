#!/usr/bin/python3
"""REST v1 benchmark (issue 13), against the ZeroMQ path in the same run.

    /usr/bin/python3 tests/bench/rest_bench.py            # what `make bench` runs
    /usr/bin/python3 tests/bench/rest_bench.py --quick    # a smoke run

One private cellblockd with its HTTP front on 127.0.0.1:0 (loopback only),
one token. Measures:

  1. execute of `1+1` on a live session, round trip: REST (keep-alive
     http.client, waiting reply) and the SDK's run_code (a connection per
     call, NDJSON) against jupyter_client over ZeroMQ (reply + idle);
  2. a new session to its first result: POST /v1/sessions then execute,
     against the control socket's `new` + a ZeroMQ client + execute
     (target: REST at most 2x ZeroMQ);
  3. upload and download of a 100 MB file through the files routes
     (streamed from and to disk).

Writes its section into docs/BENCHMARKS.md between its markers
(benchlib.write_section; appended if absent), after
bench.py has written the rest of the file. Exit status 0 whatever the
figures.
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

sys.path.insert(0, os.path.join(B.ROOT, "server", "sdk", "python"))
import cellblock_sdk  # noqa: E402

CELLBLOCK = os.path.join(B.BIN, "cellblock")
BIG = 100 * 1000 * 1000


class Front:
    """The daemon's HTTP front: URL, a token, a keep-alive connection."""

    def __init__(self, daemon, workdir):
        with open(os.path.join(daemon.state, "http.json")) as f:
            self.url = json.load(f)["url"]
        env = dict(os.environ, CELLBLOCK_STATE_DIR=daemon.state)
        self.token = subprocess.run([CELLBLOCK, "token", "new", "--name", "bench"],
                                    capture_output=True, text=True, env=env,
                                    check=True).stdout.strip()
        u = urllib.parse.urlsplit(self.url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        self.hdr = {"Authorization": "Bearer " + self.token,
                    "Content-Type": "application/json"}

    def call(self, method, path, obj=None):
        body = None if obj is None else json.dumps(obj)
        self.conn.request(method, path, body=body, headers=self.hdr)
        r = self.conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:300]))
        return json.loads(data) if data else None

    def close(self):
        self.conn.close()


def wait_http(daemon, timeout=20):
    path = os.path.join(daemon.state, "http.json")
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline or not daemon.alive():
            raise RuntimeError("no HTTP front:\n" + daemon.log_text()[-2000:])
        time.sleep(0.02)


def ms(t0):
    return (time.perf_counter() - t0) * 1000.0


def rtt(front, daemon, n):
    """1: the same session, three clients, interleaved in rounds."""
    s = daemon.new()
    kc = B.client_for(s["connection_file"])
    kc.wait_for_ready(timeout=60)
    sdk = cellblock_sdk.Session.connect(s["name"], url=front.url, token=front.token)
    path = "/v1/sessions/%s/execute" % s["name"]
    out = {"zmq": [], "rest": [], "sdk": []}
    for _ in range(20):                        # warm every path
        B.execute(kc, "1+1")
        front.call("POST", path, {"code": "1+1"})
    for i in range(n):
        t0 = time.perf_counter()
        B.execute(kc, "1+1")
        out["zmq"].append(ms(t0))
        t0 = time.perf_counter()
        c = front.call("POST", path, {"code": "1+1"})
        out["rest"].append(ms(t0))
        assert c["status"] == "ok", c
        if i % 4 == 0:
            t0 = time.perf_counter()
            sdk.run_code("1+1")
            out["sdk"].append(ms(t0))
    kc.stop_channels()
    daemon.kill(s["name"])
    return {k: B.summary(v) for k, v in out.items()}


def first_result(front, daemon, n):
    """2: a new session to its first result, each way, alternating."""
    out = {"zmq": [], "rest": []}
    for _ in range(n):
        t0 = time.perf_counter()
        s = daemon.new()
        kc = B.client_for(s["connection_file"])
        B.execute(kc, "1+1", timeout=120)
        out["zmq"].append(ms(t0))
        kc.stop_channels()
        daemon.kill(s["name"])
        t0 = time.perf_counter()
        r = front.call("POST", "/v1/sessions", {})
        c = front.call("POST", "/v1/sessions/%s/execute" % r["name"], {"code": "1+1"})
        out["rest"].append(ms(t0))
        assert c["status"] == "ok", c
        front.call("DELETE", "/v1/sessions/" + r["name"])
    return {k: B.summary(v) for k, v in out.items()}


def transfer(front, workdir):
    """3: 100 MB up and down, from and to disk."""
    src = os.path.join(workdir, "big.bin")
    with open(src, "wb") as f:
        for _ in range(BIG // (1 << 20)):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(BIG % (1 << 20)))
    s = cellblock_sdk.Session.create(url=front.url, token=front.token)
    out = {}
    try:
        t0 = time.perf_counter()
        with open(src, "rb") as f:
            s.files.write("big.bin", f)
        out["upload_s"] = ms(t0) / 1000
        t0 = time.perf_counter()
        n = 0
        with open(os.path.join(workdir, "big.out"), "wb") as f:
            for chunk in s.files.read("big.bin", format="stream"):
                f.write(chunk)
                n += len(chunk)
        out["download_s"] = ms(t0) / 1000
        assert n == BIG
    finally:
        s.kill()
    out["upload_mbs"] = BIG / 1e6 / out["upload_s"]
    out["download_mbs"] = BIG / 1e6 / out["download_s"]
    return out


def fmt(v):
    return "–" if v is None else "%.2f" % v


def report(res, args):
    r, f, t = res["rtt"], res["first"], res["transfer"]
    ratio = f["rest"]["p50"] / f["zmq"]["p50"] if f["zmq"].get("p50") else None
    lines = [
        "## The agent API: REST v1 against ZeroMQ (issue 13)",
        "",
        "`tests/bench/rest_bench.py` (`make bench`), %s, %s; one daemon, its "
        "HTTP front on loopback. Round trips interleave the clients on one "
        "live session; ZeroMQ is jupyter_client waiting for the reply and "
        "the idle status, REST a keep-alive `http.client` POST waiting for "
        "the contract, the SDK `run_code` (a connection per call, NDJSON)."
        % (time.strftime("%Y-%m-%d"), B.loadavg() and "load " + B.loadavg()),
        "",
        "| `1+1` round trip, ms | n | p50 | p99 |",
        "|---|---|---|---|",
    ]
    for k, label in (("zmq", "ZeroMQ (jupyter_client)"), ("rest", "REST"),
                     ("sdk", "SDK run_code")):
        lines.append("| %s | %d | %s | %s |" % (label, r[k]["n"], fmt(r[k].get("p50")),
                                                fmt(r[k].get("p99"))))
    lines += [
        "",
        "| New session → first result, ms | n | p50 | p99 |",
        "|---|---|---|---|",
        "| ZeroMQ: control `new` + client + execute | %d | %s | %s |"
        % (f["zmq"]["n"], fmt(f["zmq"].get("p50")), fmt(f["zmq"].get("p99"))),
        "| REST: `POST /v1/sessions` + execute | %d | %s | %s |"
        % (f["rest"]["n"], fmt(f["rest"].get("p50")), fmt(f["rest"].get("p99"))),
        "",
        "REST / ZeroMQ at p50: **%s×** (target ≤ 2×)." % fmt(ratio),
        "",
        "| 100 MB file | seconds | MB/s |",
        "|---|---|---|",
        "| upload (`PUT …/files/`, streamed from disk) | %s | %s |"
        % (fmt(t["upload_s"]), fmt(t["upload_mbs"])),
        "| download (`GET …/files/`, streamed to disk) | %s | %s |"
        % (fmt(t["download_s"]), fmt(t["download_mbs"])),
        "",
        "The REST round trip costs no more than jupyter_client's: the daemon "
        "answers both from the same core, and jupyter_client's own Python "
        "threads weigh more than one keep-alive HTTP exchange. A new session's "
        "first result is the zygote's clone plus the first execute either way; "
        "the HTTP front adds a request or two. Transfers stream through "
        "`files.c` (upload: each chunk libmicrohttpd reads goes into a temporary "
        "file renamed at the end; download: the descriptor handed to "
        "libmicrohttpd). A busy "
        "machine (load above) widens every p99.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description="REST v1 vs ZeroMQ (issue 13)")
    p.add_argument("--quick", action="store_true", help="small counts")
    p.add_argument("--out", help="report (default docs/BENCHMARKS.md; --quick: "
                                 "tests/bench/.build/BENCHMARKS-rest-quick.md)")
    p.add_argument("--rtt-n", type=int, help="round trips per client (1000)")
    p.add_argument("--first-n", type=int, help="new sessions per path (20)")
    args = p.parse_args(argv)
    rtt_n = args.rtt_n or (100 if args.quick else 1000)
    first_n = args.first_n or (4 if args.quick else 20)
    out = args.out or (os.path.join(B.BUILD, "BENCHMARKS-rest-quick.md") if args.quick
                       else os.path.join(B.ROOT, "docs", "BENCHMARKS.md"))

    def run(daemon, workdir):
        wait_http(daemon)
        front = Front(daemon, workdir)
        try:
            B.log("rest", "round trips, %d each" % rtt_n)
            res = {"rtt": rtt(front, daemon, rtt_n)}
            B.log("rest", "new session → first result, %d each" % first_n)
            res["first"] = first_result(front, daemon, first_n)
            B.log("rest", "100 MB up and down")
            res["transfer"] = transfer(front, workdir)
            return res
        finally:
            front.close()
    return B.run_section("rest", out, ["--http-listen", "127.0.0.1:0"], run,
                         lambda res: report(res, args))


if __name__ == "__main__":
    sys.exit(main())
