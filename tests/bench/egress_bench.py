#!/usr/bin/python3
"""Egress proxy overhead: time to first byte and throughput of a 100 MB download.

    /usr/bin/python3 tests/bench/egress_bench.py [--mb 100] [--runs 3] [--out docs/BENCHMARKS.md]

Needs root. Makes a test host in a network namespace (tests/egress_hosts.py)
and a daemon with egress, then downloads the same bytes three ways, with the
same client code (a plain socket, HTTP/1.1, 1 MiB reads):

  direct    from the host's namespace straight to the test host
  proxy     from the host to the session's proxy socket (cellblock-egress alone)
  session   from a cell, through the runner's relay on 127.0.0.1 and the proxy

and writes the medians into the "Egress" section of docs/BENCHMARKS.md
(replacing the previous one; `make bench` runs it after bench.py). Not a
test: exit 0 whatever the figures.
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from egress_hosts import EgressEnv  # noqa: E402
import benchlib as B  # noqa: E402

CLIENT = r'''
import socket, time, json
def fetch(connect, request, total):
    t0 = time.perf_counter()
    s = connect()
    s.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise RuntimeError("closed in the head: %r" % buf[:200])
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    # CONNECT-less plain HTTP through the proxy: the origin's head only.
    assert head.split(b" ")[1] == b"200", head[:200]
    ttfb = None
    got = len(body)
    if got:
        ttfb = time.perf_counter() - t0
    while got < total:
        d = s.recv(1 << 20)
        if not d:
            break
        if ttfb is None:
            ttfb = time.perf_counter() - t0
        got += len(d)
    took = time.perf_counter() - t0
    s.close()
    return {"ttfb_ms": ttfb * 1000, "mb_s": got / took / 1e6, "bytes": got}
'''

SECTION = "## Egress: proxy overhead on a 100 MB download"


def run(args):
    env = EgressEnv()
    try:
        total = args.mb * 1000 * 1000
        web = env.hosts.web.addr
        path = f"/bytes/{total}"
        ns = {}
        exec(CLIENT, ns)
        fetch = ns["fetch"]
        import socket
        results = {"direct": [], "proxy": [], "session": []}
        env.session("bench")
        sock = os.path.join(env.daemon.state, "egress", "bench", "egress.sock")
        for _ in range(args.runs):
            results["direct"].append(fetch(
                lambda: socket.create_connection((web, 80)),
                f"GET {path} HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n".encode(),
                total))

            def unix():
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                return s
            results["proxy"].append(fetch(
                unix, f"GET http://web.test{path} HTTP/1.1\r\nHost: web.test\r\n\r\n".encode(),
                total))
            out, err = env.cell("bench", CLIENT + f"""
import os
port = int(os.environ["HTTP_PROXY"].rsplit(":", 1)[1])
print(json.dumps(fetch(lambda: socket.create_connection(("127.0.0.1", port)),
    b"GET http://web.test{path} HTTP/1.1\\r\\nHost: web.test\\r\\n\\r\\n", {total})))
""", timeout=600)
            if err:
                raise RuntimeError(err)
            results["session"].append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        env.close()


def report(results, args):
    rows = []
    for name, what in (("direct", "host → test host, no proxy"),
                       ("proxy", "host → cellblock-egress (unix socket) → test host"),
                       ("session", "cell → relay on 127.0.0.1 → cellblock-egress → test host")):
        r = results[name]
        rows.append(f"| {name} | {what} | {statistics.median(x['ttfb_ms'] for x in r):.2f} | "
                    f"{statistics.median(x['mb_s'] for x in r):.0f} |")
    d = statistics.median(x["mb_s"] for x in results["direct"])
    s = statistics.median(x["mb_s"] for x in results["session"])
    return "\n".join([
        SECTION, "",
        f"`tests/bench/egress_bench.py` (run by `make bench`): {args.mb} MB of HTTP "
        f"from a test host in a network namespace over a veth pair, median of "
        f"{args.runs} runs, the same socket client each way (1 MiB reads). "
        "Time to first byte includes connecting (and, through the proxy, the "
        "policy check and the proxy's own connect).", "",
        "| path | what | TTFB (ms) | throughput (MB/s) |",
        "|---|---|---:|---:|",
        *rows, "",
        f"A session gets {s / d * 100:.0f}% of the direct throughput; the proxy "
        "copies through 64 KiB buffers in one thread, and the relay in the "
        "session is Python threads."])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=100)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", default=os.path.join(HERE, "..", "..", "docs", "BENCHMARKS.md"))
    args = p.parse_args()
    if os.geteuid() != 0:
        print("egress_bench: needs root (network namespaces); skipped")
        return 0
    try:
        results = run(args)
    except Exception as e:          # a benchmark, not a test
        print(f"egress_bench: could not run: {e}")
        return 1
    text = report(results, args)
    print(text)
    B.write_section(args.out, "egress_bench", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
