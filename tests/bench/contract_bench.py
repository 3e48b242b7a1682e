#!/usr/bin/python3
"""The execution contract and the files core, through the control socket.

    /usr/bin/python3 tests/bench/contract_bench.py [--n 500] [--mb 100] [--out docs/BENCHMARKS.md]

One daemon, one session. Measures, in the same run:

  zmq        execute `1+1` as a Jupyter client (jupyter_client, own endpoint)
  contract   the control socket's execute of `1+1` (one connection, one
             request line, the contract back): the path `cellblock run
             --json`, REST and MCP share
  daemon CPU per call of each (its utime+stime over the loop)
  cp         `cellblock cp` of an N MB file in and out (MB/s)

and writes the medians into the "Execution contract" section of
docs/BENCHMARKS.md (replacing the previous one; `make bench` runs it).
Not a test: exit 0 whatever the figures.
"""
import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from cbtest import Daemon, run_cell  # noqa: E402
import benchlib as B  # noqa: E402

SECTION = "## Execution contract: control-socket calls and file copies"


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def bench_zmq(d, path, n):
    kc = d.client(path)
    try:
        for _ in range(20):
            run_cell(kc, "1+1")
        times, c0 = [], cpu_s(d.proc.pid)
        for _ in range(n):
            t = time.perf_counter()
            run_cell(kc, "1+1")
            times.append((time.perf_counter() - t) * 1000)
        return times, (cpu_s(d.proc.pid) - c0) / n * 1e6
    finally:
        kc.stop_channels()


def bench_contract(d, name, n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(d.state, "control.sock"))
    f = s.makefile("rb")
    line = json.dumps({"cmd": "execute", "name": name, "code": "1+1"}).encode() + b"\n"
    try:
        for _ in range(20):
            s.sendall(line)
            f.readline()
        times, c0 = [], cpu_s(d.proc.pid)
        for _ in range(n):
            t = time.perf_counter()
            s.sendall(line)
            r = json.loads(f.readline())
            times.append((time.perf_counter() - t) * 1000)
            assert r["contract"]["status"] == "ok", r
        return times, (cpu_s(d.proc.pid) - c0) / n * 1e6
    finally:
        f.close()
        s.close()


def bench_cp(d, name, mb):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
        with open(src, "wb") as fh:
            fh.write(os.urandom(mb << 20))
        t = time.perf_counter()
        d.cli("cp", src, name + ":big.bin", check=True, timeout=600)
        up = mb / (time.perf_counter() - t)
        t = time.perf_counter()
        d.cli("cp", name + ":big.bin", dst, check=True, timeout=600)
        down = mb / (time.perf_counter() - t)
        assert os.path.getsize(dst) == mb << 20
        d.control({"cmd": "files", "op": "remove", "name": name, "path": "big.bin"})
    return up, down


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "docs", "BENCHMARKS.md"))
    a = ap.parse_args()
    d = Daemon()
    try:
        path = d.cli("new", check=True).stdout.strip()
        name = os.path.basename(path)[:-len(".json")]
        zt, zcpu = bench_zmq(d, path, a.n)
        ct, ccpu = bench_contract(d, name, a.n)
        up, down = bench_cp(d, name, a.mb)
    finally:
        d.stop()
    text = (SECTION + "\n\n"
            "`tests/bench/contract_bench.py` (`make bench`), one session, %d calls each, "
            "%s, load %.2f.\n\n"
            "| path | p50 ms | p99 ms | daemon CPU per call |\n|---|---|---|---|\n"
            "| Jupyter client (`jupyter_client`, ZeroMQ) `1+1` | %.3f | %.3f | %.0f us |\n"
            "| control socket `execute` (the contract) `1+1` | %.3f | %.3f | %.0f us |\n\n"
            "`cellblock cp` of %d MB: in %.0f MB/s, out %.0f MB/s (1 MiB per loop turn, "
            "the local file passed as a descriptor).\n"
            "The contract's metrics read the session cgroup's CPU and memory "
            "high-water files twice per execute through descriptors opened once "
            "(`cgroup_meter`); opening them by path each time cost about 50 us of "
            "daemon CPU per execute.\n") % (
        a.n, time.strftime("%Y-%m-%d"), os.getloadavg()[0],
        statistics.median(zt), pct(zt, 0.99), zcpu,
        statistics.median(ct), pct(ct, 0.99), ccpu, a.mb, up, down)
    print(text)
    B.write_section(a.out, "contract_bench", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
