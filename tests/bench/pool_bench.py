"""pool_bench.py: the start of a session with and without the warm pool,
against the floor, and `new` against idle sessions (issues 17 and 11).

    /usr/bin/python3 tests/bench/pool_bench.py [--starts N] [--levels 1,100,1000]

Measures, in one run on this machine:
  1. the floor: fork + unshare(user, mount, pid, net, ipc, uts) + fork +
     run_cell("1+1") from a preloaded interpreter (IPython, numpy, pandas,
     matplotlib), with no daemon, wire, cgroup or mounts;
  2. new -> first `1+1` execute_reply through jupyter_client, with the
     warm pool (each start waits until a member is ready, as a user who
     does not start sessions back to back gets it) and without it
     (warm-pool = 0: the zygote);
  3. cgroup moves: no-pool starts with the new process moving itself into
     its cgroup (the default on v1) against the daemon's cgroup.procs
     write (CELLBLOCK_CGROUP_MOVE=daemon), interleaved on two daemons, and
     strace -f -T of the writes each path makes;
  4. the control `new` reply time with 1, 100 and 1,000 idle sessions, with
     the pool (the default); bounded by memory (stops adding sessions while
     MemAvailable is under 3 GB) and cleaned up (the daemon is stopped).
Writes tests/bench/.build/pool.json and its section of docs/BENCHMARKS.md
(between the pool_bench markers; bench.py keeps that block). Not a test.
"""
import argparse
import json
import os
import gc
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import benchlib as B


FLOOR = r'''
import ctypes, os, sys, time, json
import numpy, pandas, matplotlib
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
libc = ctypes.CDLL(None, use_errno=True)
FLAGS = 0x10000000 | 0x00020000 | 0x20000000 | 0x40000000 | 0x08000000 | 0x04000000
n = int(sys.argv[1])
out = []
for i in range(n + 1):
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        if libc.unshare(FLAGS) != 0:
            os._exit(3)
        p2 = os.fork()
        if p2 == 0:
            res = shell.run_cell("1+1", store_history=False)
            os.write(w, repr(res.result).encode())
            os._exit(0)
        os.waitpid(p2, 0)
        os._exit(0)
    os.close(w)
    got = os.read(r, 100)
    t1 = time.perf_counter()
    os.close(r)
    os.waitpid(pid, 0)
    if got != b"2":
        sys.exit("floor: run_cell answered %r" % got)
    if i:
        out.append((t1 - t0) * 1000)
print(json.dumps(out))
'''


SETTLE = 0.1     # s after the pool is full before a timed start


SCALE_NOTES = """What `new` does at any number of sessions, and what grows (found while making this section, 2026-12-04: `perf record --call-graph dwarf` of both daemons, its samples kept only inside the timed `new`s, 40 rounds):

- **The claim makes no file and binds no port** (2026-12-04): the member is made, between requests, with the default endpoint (five bound ports, its key), its connection file under the member's name and an empty file for its first record; the claim renames the two files and chowns the connection file (server/pool.c, factory.c, record.c). Before, the claim bound the five ports (40% of its CPU) and made two files; making a file was a fifth of the claim on this machine's ext4, which has no journal and so steps over every inode freed in the last seconds, one by one, to find a free one (`recently_deleted`). The daemon's CPU per `new` fell from about 930 µs to 520-640 µs at one session in the runs of that day (two daemons interleaved, 40-100 rounds).
- **The runner hears of its claim after the reply** (2026-12-04): the `claim` message is queued on the member's channel and written when the loop next turns. Written inside the request, it woke the runner, which the scheduler let take the CPU from the daemon (a task that slept long is favoured on wake-up) while the daemon still had the reply to write: with syscall and scheduler tracepoints (`perf record -e syscalls:sys_enter_recvmsg,syscalls:sys_exit_sendto,sched:sched_switch`), the daemon's time from reading the request to writing the reply was 487 µs at one session and 680 µs at 1,000, where it was preempted in 33 of 40 claims (14 of 40 at one); with the claim written later, 424 µs and 458 µs, preempted in 2 of 40. This, not the daemon's own work (its CPU per `new` grew by less than 10%), was most of what grew.
- **Nothing the daemon does per `new` scans its sessions**: the name's uniqueness and the quotas are hash and counter look-ups; the loop wakes for the sockets that signalled; the reaper finds a child by its pidfd (`child_sigchld` walks the list only while some child has none); no cgroup is written (the member moved itself when it was made; the CPU quota write, whose `tg_set_bandwidth` is O(cgroups) on the host, is the refill's).
- **What still grows is the file system's**: the three renames a claim does (the work dir in `work/`, the connection file and the record in `sessions/`) look names up in directories of 1,000 and 2,000 entries, which ext4 indexes as a tree (`ext4_dx_find_entry`, `dx_probe`, its blocks read through the buffer cache), where a directory of a few entries is one block; and malloc works a larger heap. Sampled inside the timed requests these were the only symbols that grew."""

NO_POOL_WHY = ("Without the pool the start misses its 20 ms target here: what is left after the cgroup moves (below) is mostly the new process's own work, two copies of the zygote's page tables (its clone and pid 2's fork), about 40 mount calls and the runner's attach, against a floor (the first row) that already does the two forks; docs/ZYGOTE.md, \"Cgroup moves\", has the phases and the next cut (a pid 1 sharing the zygote's memory until its exec).")


def floor(n):
    p = subprocess.run([B.PYTHON, "-c", FLOOR, str(n)], capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0:
        raise RuntimeError("floor: " + p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def ping_pool(d):
    return d.control({"cmd": "ping"}).get("pool", {})


def wait_pool(d, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = ping_pool(d)
        if not p.get("on") or p.get("ready", 0) >= p.get("size", 0):
            return p
        time.sleep(0.01)
    raise RuntimeError("the warm pool did not fill: %s" % ping_pool(d))


def settled(d):
    """The pool full again, and its newest member done with its warm-up
    (a silent execute right after its hello, which `ping` does not show):
    what a user who does not start sessions back to back finds."""
    wait_pool(d)
    time.sleep(SETTLE)


def starts(d, n, pool, c_client=False):
    """new -> first 1+1 reply, ms, through jupyter_client; its parts (the
    control reply, the client's setup, the first execute) and, each round,
    the same client's setup + first execute against a session that is
    already running (the client's own fixed cost). With c_client, each
    round also starts one through rtt (`rtt start`: no Python client) and
    times `rtt first` against the running session, interleaved so both
    clients see the same machine."""
    keys = ("first", "new", "client", "exec", "ctl_client", "ctl_exec", "ctl_total")
    if c_client:
        keys += ("c_first", "c_new", "c_open", "c_reply", "c_ctl")
    v, born = {k: [] for k in keys}, {}
    ctl = d.new()
    kc = B.client_for(ctl["connection_file"])
    try:
        B.execute(kc, "1+1")
    finally:
        kc.stop_channels()
    for i in range(n + 1):
        if pool:
            settled(d)
        else:
            time.sleep(0.05)
        t0 = time.perf_counter()
        s = d.new()
        t1 = time.perf_counter()
        kc = B.client_for(s["connection_file"])
        t2 = time.perf_counter()
        try:
            reply = B.wait_reply(kc, kc.execute("1+1"), 60)
            t3 = time.perf_counter()
        finally:
            kc.stop_channels()
        if reply["content"]["status"] != "ok":
            raise RuntimeError("1+1 failed: %s" % reply["content"])
        b = next((x.get("born") for x in d.ls() if x["name"] == s["name"]), "?")
        d.kill(s["name"], wait_pid=s.get("pid"))
        # The same client, against the session that is already running.
        t4 = time.perf_counter()
        kc = B.client_for(ctl["connection_file"])
        t5 = time.perf_counter()
        try:
            B.wait_reply(kc, kc.execute("1+1"), 60)
            t6 = time.perf_counter()
        finally:
            kc.stop_channels()
        row = {"first": t3 - t0, "new": t1 - t0, "client": t2 - t1, "exec": t3 - t2,
               "ctl_client": t5 - t4, "ctl_exec": t6 - t5, "ctl_total": t6 - t4}
        row = {k: x * 1000 for k, x in row.items()}
        if c_client:
            if pool:
                settled(d)
            r, _ = B.run_rtt(["start", d.sock], 60)
            d.kill(r["name"], wait_pid=r["pid"])
            c, _ = B.run_rtt(["first", ctl["connection_file"]], 60)
            row.update(c_first=r["total_us"] / 1e3, c_new=r["new_us"] / 1e3,
                       c_open=r["open_us"] / 1e3, c_reply=r["reply_us"] / 1e3,
                       c_ctl=c["total_us"] / 1e3)
            born["C " + r["born"]] = born.get("C " + r["born"], 0) + (1 if i else 0)
        # A stopped jupyter_client's sockets sit in reference cycles until
        # a collection: without one, ZeroMQ's socket limit (1,023 per
        # context) runs out within about 60 clients. Outside the clock.
        gc.collect()
        if i:
            for k in keys:
                v[k].append(row[k])
            born[b] = born.get(b, 0) + 1
            B.log("start", "%s %d/%d %.1f ms (%s)%s" % (
                "pool" if pool else "no pool", i, n, row["first"], b,
                ", C client %.1f ms" % row["c_first"] if c_client else ""))
    d.kill(ctl["name"], wait_pid=ctl.get("pid"))
    out = {"first_ms": B.summary(v["first"]), "new_ms": B.summary(v["new"]), "born": born,
           "samples": v["first"], "parts": {k: B.summary(v[k]) for k in keys}}
    if c_client:
        out["c_first_ms"] = B.summary(v["c_first"])
        out["c_samples"] = v["c_first"]
    return out


def ipykernel_starts(work, n):
    """ipykernel: KernelManager start -> first 1+1 reply through
    jupyter_client, ms (bench.py's section 1 measure, one warm-up)."""
    ipk = B.IPyKernels(work)
    samples = []
    try:
        for i in range(n + 1):
            t0 = time.perf_counter()
            km = ipk.start()
            kc = km.client()
            kc.start_channels()
            try:
                reply = B.wait_reply(kc, kc.execute("1+1"), 120)
                t1 = time.perf_counter()
            finally:
                kc.stop_channels()
                ipk.shutdown(km)
                gc.collect()
            if reply["content"]["status"] != "ok":
                raise RuntimeError("1+1 failed in ipykernel")
            if i:
                samples.append((t1 - t0) * 1000)
                B.log("start", "ipykernel %d/%d %.0f ms" % (i, n, samples[-1]))
    finally:
        ipk.shutdown_all()
    return B.summary(samples)


def while_traced(tool, pid, fn, timeout=30):
    """Run fn() while tool (an argv; "-o FILE -p PID" are appended) watches
    the daemon; the text tool wrote, once it has stopped."""
    tmp = tempfile.mkdtemp(prefix="cb-trace-")
    out = os.path.join(tmp, "out")
    t = subprocess.Popen(tool + ["-o", out, "-p", str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        fn()
    finally:
        t.send_signal(signal.SIGINT)
        t.wait(timeout=timeout)
    try:
        if tool[0] == "perf":
            return subprocess.run(["perf", "report", "-i", out, "--no-children", "--sort",
                                   "symbol", "--stdio"], capture_output=True, text=True,
                                  timeout=120).stdout
        with open(out, errors="replace") as f:
            return f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def strace_cgroup(pids, fn):
    """Run fn() while strace -f -T watches the writes of the daemon and
    its zygote (so also of the processes the zygote clones): the durations
    (ms) of the writes to a cgroup.procs file (the daemon moving a process)
    and to a v1 tasks file (a process moving itself, docs/ZYGOTE.md)."""
    extra = [a for p in pids[1:] for a in ("-p", str(p))]
    text = while_traced(["strace", "-f", "-qq", "-y", "-T", "-e", "trace=write", *extra],
                        pids[0], fn)
    found = {}
    for kind in ("cgroup.procs", "tasks"):
        found[kind] = [float(m.group(1)) * 1000 for m in re.finditer(
            r"/%s>.*= \d+ <([\d.]+)>" % re.escape(kind), text)]
    return found


def cgroup_moves(work, n, rounds=3):
    """No-pool starts with the process moving itself (the default) and
    with the daemon's cgroup.procs write (CELLBLOCK_CGROUP_MOVE=daemon), in
    interleaved rounds on two daemons of the same build; then, under
    strace (not timed), what each path writes."""
    ds = {}
    for mode in ("child", "daemon"):
        saved = os.environ.pop("CELLBLOCK_CGROUP_MOVE", None)
        if mode == "daemon":
            os.environ["CELLBLOCK_CGROUP_MOVE"] = "daemon"
        try:
            ds[mode] = B.Daemon(work, ["--warm-pool", "0"], name="cgmove-" + mode)
        finally:
            os.environ.pop("CELLBLOCK_CGROUP_MOVE", None)
            if saved is not None:
                os.environ["CELLBLOCK_CGROUP_MOVE"] = saved
    out = {}
    try:
        samples = {m: [] for m in ds}
        per = max(1, n // rounds)
        for _ in range(rounds):
            for m, d in ds.items():
                samples[m] += starts(d, per, False)["samples"]
        for m, d in ds.items():
            z = d.control({"cmd": "ping"})
            traced = {}
            if shutil.which("strace"):
                traced = strace_cgroup([d.pid, z["zygote"]["pid"]],
                                       lambda d=d: starts(d, 3, False))
            out[m] = {"first_ms": B.summary(samples[m]), "moves": d.control(
                {"cmd": "ping"}).get("cgroup_moves"), "writes_ms": traced}
    finally:
        for d in ds.values():
            d.stop()
    return out


def render_cgroup_moves(cm, load=None):
    """The "Cgroup moves" paragraph and its table; load: the load average
    before it, when it was run on its own after the rest."""
    if not cm:
        return []
    def w(m, kind):
        x = cm[m]["writes_ms"].get(kind, [])
        return "%d, p50 %.2f ms, max %.2f ms" % (len(x), B.pct(x, 50), max(x)) if x else "none"
    c, d = cm["child"], cm["daemon"]
    again = (" (run again on its own, load average before %s)" %
             " ".join("%.2f" % x for x in load)) if load else ""
    return ["Cgroup moves on this host (cgroup v1; no pool, zygote-born; two daemons of this "
            "build in interleaved rounds%s, docs/ZYGOTE.md \"Cgroup moves\"):" % again, "",
            "| who moves the new process | first `1+1` reply p50 | p99 | writes to `tasks` "
            "(by the process) | writes to `cgroup.procs` (by the daemon) |",
            "|---|---|---|---|---|",
            "| the process itself (default) | %.1f ms | %.1f ms | %s | %s |" % (
                c["first_ms"]["p50"], c["first_ms"]["p99"], w("child", "tasks"),
                w("child", "cgroup.procs")),
            "| the daemon (`CELLBLOCK_CGROUP_MOVE=daemon`, as before) | %.1f ms | %.1f ms | %s | %s |" % (
                d["first_ms"]["p50"], d["first_ms"]["p99"], w("daemon", "tasks"),
                w("daemon", "cgroup.procs")),
            "",
            "Moving itself, a start's first reply came %.1f ms (%.0f%%) sooner at the median "
            "in this run." % (d["first_ms"]["p50"] - c["first_ms"]["p50"],
                              100 * (d["first_ms"]["p50"] - c["first_ms"]["p50"]) /
                              d["first_ms"]["p50"]),
            "The writes are `strace -f -T` of the daemon and the zygote over three more starts "
            "of each (not timed). The process writes \"0\" to each hierarchy's `tasks`, "
            "moving its one thread, which takes no global lock; the daemon's write of a pid to "
            "`cgroup.procs` takes `cgroup_threadgroup_rwsem` for writing, whose writer waits "
            "for an RCU grace period on a hierarchy mounted without `favordynmods`. The "
            "daemon's counters after the run (control `ping`, `cgroup_moves`): %s; %s. With "
            "the pool, a claim moves nothing: the member moved when it was made." % (
                json.dumps(c["moves"]), json.dumps(d["moves"])), ""]


def strace_counts(pid, fn):
    """strace -c -f of the daemon (all its threads) while fn() runs:
    {syscall: calls}."""
    calls = {}
    for line in while_traced(["strace", "-c", "-f"], pid, fn).splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
        if m and m.group(2) != "total":
            calls[m.group(2)] = int(m.group(1))
    return calls


def perf_top(pid, fn, n=8):
    """perf record of the daemon while fn() runs: its n hottest symbols,
    [(percent, symbol)]."""
    top = []
    for line in while_traced(["perf", "record", "-q"], pid, fn, timeout=60).splitlines():
        m = re.match(r"\s+([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
        if m and len(top) < n:
            top.append((float(m.group(1)), m.group(2)))
    return top


def scale(work, levels, per_level, profile=False):
    """`new` against the number of idle sessions: one daemon per level,
    each holding level - 1 idle sessions, all alive at once and driven in
    interleaved rounds (one `new` on each in turn), so that the machine's
    drift and its other load fall on every level alike. Each `new`: the
    control reply's wall time and the daemon's CPU over it (all threads,
    schedstat)."""
    conf = os.path.join(work, "scale.conf")
    with open(conf, "w") as f:
        f.write("max-sessions = 1200\nmax-sessions-per-user = 1200\n"
                "idle-timeout = 0\ncheckpoint-interval = 0\n")
    out, ds = {}, []
    try:
        for level in levels:
            d = B.Daemon(work, ["--config", conf], name="scale-%d" % level)
            ds.append((level, d))
            for i in range(level - 1):
                if B.mem_available_kb() < 3 << 20:
                    out["stopped"] = "at %d sessions: MemAvailable under 3 GB" % i
                    break
                d.new()
                if (i + 1) % 100 == 0:
                    B.log("scale", "%d: %d idle sessions" % (level, i + 1))
            if "stopped" in out:
                ds.pop()
                d.stop()
                break
        ms = {lv: [] for lv, _ in ds}
        cpu = {lv: [] for lv, _ in ds}
        born = {lv: {} for lv, _ in ds}

        def one(level, d, timed=True):
            settled(d)
            c0 = B.cpu_ns([d.pid])
            t0 = time.perf_counter()
            s = d.new()
            t1 = time.perf_counter()
            c1 = B.cpu_ns([d.pid])
            if timed:
                ms[level].append((t1 - t0) * 1000)
                cpu[level].append((c1 - c0) / 1000)
                b = s.get("born", "?")
                born[level][b] = born[level].get(b, 0) + 1
            d.kill(s["name"], wait_pid=s.get("pid"))
            time.sleep(0.3)     # its cgroups removed before the next

        for r in range(per_level):
            for level, d in ds:
                one(level, d)
        for level, d in ds:
            out[str(level)] = {"new_ms": B.summary(ms[level]), "cpu_us": B.summary(cpu[level]),
                               "born": born[level], "daemon_rss_kb": B.status_kb(d.pid, "VmRSS")}
            B.log("scale", "%d sessions: new p50 %.2f ms, daemon CPU p50 %.0f us" % (
                level, out[str(level)]["new_ms"]["p50"], out[str(level)]["cpu_us"]["p50"]))
        # The same again under strace / perf, for the counts only (not timed).
        for level, d in ds if profile else ():
            calls = strace_counts(d.pid, lambda: [one(level, d, False) for _ in range(10)])
            if calls:
                out[str(level)]["syscalls_per_new"] = {
                    k: v / 10 for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:6]}
            if shutil.which("perf") and level == ds[-1][0]:
                out[str(level)]["perf_top"] = perf_top(
                    d.pid, lambda: [one(level, d, False) for _ in range(10)])
    finally:
        for _, d in ds:
            d.stop()
    return out


def pid1_memory(d):
    """PSS of a pool-born session's pid 1 (cellblock-init) and of its tree."""
    wait_pool(d)
    s = d.new()
    kc = B.client_for(s["connection_file"])
    try:
        B.execute(kc, "1+1")
    finally:
        kc.stop_channels()
    pid1 = s["pid"]
    r = {"pid1_pss_kb": B.smaps_rollup(pid1).get("Pss", 0),
         "pid1_rss_kb": B.status_kb(pid1, "VmRSS"),
         "pid1_comm": open("/proc/%d/comm" % pid1).read().strip(),
         "tree_pss_kb": B.tree_memory(pid1)["Pss"]}
    d.kill(s["name"], wait_pid=pid1)
    return r


def render(res):
    f, on, off = res["floor_ms"], res["pool_on"], res["pool_off"]
    lines = ["## 7. Warm pool, pid 1, cgroup moves (issue 17) and `new` against "
             "idle sessions (issue 11)", "",
             "From `tests/bench/pool_bench.py` (run by `make bench` after bench.py), "
             "%s, git %s, favordynmods %s, load average before %s." % (
                 res["date"], res["git"], "on" if res["favordynmods"] else "off",
                 " ".join("%.2f" % x for x in res["load_before"])), "",
             "| new session → first `1+1` reply | p50 | p99 | p50 ÷ the floor's | `new` reply p50 | born |",
             "|---|---|---|---|---|---|",
             "| floor: fork + unshare + fork + `run_cell` from a preloaded interpreter | "
             "%.1f ms | %.1f ms | 1 | — | — |" % (f["p50"], f["p99"]),
             "| warm pool (`warm-pool = 2`, a member ready), jupyter_client | %.1f ms | %.1f ms | %.2f | %.1f ms | %s |" % (
                 on["first_ms"]["p50"], on["first_ms"]["p99"], on["first_ms"]["p50"] / f["p50"],
                 on["new_ms"]["p50"],
                 ", ".join("%s %d" % kv for kv in sorted(on["born"].items())
                           if not kv[0].startswith("C "))),
             "| no pool (`warm-pool = 0`, zygote) | %.1f ms | %.1f ms | %.2f | %.1f ms | %s |" % (
                 off["first_ms"]["p50"], off["first_ms"]["p99"], off["first_ms"]["p50"] / f["p50"],
                 off["new_ms"]["p50"],
                 ", ".join("%s %d" % kv for kv in sorted(off["born"].items()))),
             ]
    if "c_first_ms" in on:
        c, pp = on["c_first_ms"], on["parts"]
        lines.insert(-1, "| warm pool, timed by the C client (`rtt start`: no Python client) | "
                     "%.1f ms | %.1f ms | %.2f | %.1f ms | %s |" % (
                         c["p50"], c["p99"], c["p50"] / f["p50"], pp["c_new"]["p50"],
                         ", ".join("%s %d" % (k[2:], n) for k, n in sorted(on["born"].items())
                                   if k.startswith("C "))))
    if res.get("ipykernel_ms"):
        ik = res["ipykernel_ms"]
        lines.append("| ipykernel 6.17 (jupyter_client `KernelManager` start, same client) | "
                     "%.1f ms | %.1f ms | %.2f | — | — |" % (ik["p50"], ik["p99"], ik["p50"] / f["p50"]))
    lines += [""]
    if "c_first_ms" in on:
        pp = on["parts"]
        jc, cc = on["first_ms"], on["c_first_ms"]

        def met(x):
            a, b = x["p50"] <= 10, x["p99"] <= 2 * x["p50"]
            return ("meets both targets" if a and b else "meets the p50 target, not the p99 one"
                    if a else "meets the p99 target, not the p50 one" if b else
                    "misses both targets")
        lines += [
            "Where the warm-pool start goes (p50 of each part over the same %d rounds; each round "
            "starts one session through jupyter_client, then one through the C client, and "
            "times both clients against a session that is already running):" % len(on["samples"]), "",
            "| part | jupyter_client | C client |", "|---|---|---|",
            "| `new` on the control socket (the claim, in the daemon) | %.1f ms | %.1f ms |" % (
                pp["new"]["p50"], pp["c_new"]["p50"]),
            "| client setup (context reuse, sockets, threads, connect) | %.1f ms | %.1f ms |" % (
                pp["client"]["p50"], pp["c_open"]["p50"]),
            "| first execute → its execute_reply | %.1f ms | %.1f ms |" % (
                pp["exec"]["p50"], pp["c_reply"]["p50"]),
            "| whole start (p50 of the sums) | %.1f ms | %.1f ms |" % (jc["p50"], cc["p50"]),
            "| the same client against a running session: setup + first execute | "
            "%.1f ms (%.1f + %.1f) | %.1f ms |" % (
                pp["ctl_total"]["p50"], pp["ctl_client"]["p50"], pp["ctl_exec"]["p50"],
                pp["c_ctl"]["p50"]),
            "",
            "The target is judged on the C client's figure: it is the server's start (the claim, "
            "the connect to the new session's ports, its first execute), where the "
            "jupyter_client figure adds what that client costs against any kernel, a running "
            "one included (the last row: %.1f ms of its %.1f ms). With the C client the warm-pool "
            "start %s (p50 %.1f ms, p99 %.1f ms); through jupyter_client it %s "
            "(p50 %.1f ms, p99 %.1f ms). Against the floor measured in the same run, which the "
            "load moves as much: %.2f of it with the C client, %.2f through jupyter_client "
            "(before this wave, 2026-12-03 13:59 UTC: 0.98 through jupyter_client, "
            "13.4 ms against a 13.6 ms floor). The p99s follow the machine more than the start: "
            "in the same rounds the C client's connect + first execute against a session that "
            "was already running has p50 %.1f ms, p99 %.1f ms. ipykernel's start through the same jupyter_client "
            "is the row above: the process start and imports a pool member has done before it "
            "is claimed." % (pp["ctl_total"]["p50"], jc["p50"], met(cc), cc["p50"], cc["p99"],
                             met(jc), jc["p50"], jc["p99"], cc["p50"] / f["p50"],
                             jc["p50"] / f["p50"], pp["c_ctl"]["p50"], pp["c_ctl"]["p99"]), "",
            "What the claim path no longer pays (2026-12-03, wave/start): IPython's lazy "
            "first-execute work (the tokenizer's regular expressions, the display formatters: "
            "4-5 ms) is done once in the zygote's template shell; a member warms itself while "
            "it waits (a silent `pass`: the ~420 pages an execute writes are copied from the "
            "zygote's before the claim, ~70 after; 2-3 ms); the connection file and a record "
            "without a checkpoint are written without `fsync` (0.4-5 ms each on this shared "
            "disk; the daemon writes the file again from the record when it restores, and a "
            "restore drops a record without a checkpoint). Still in `new`: the five port "
            "binds, the hostname, the `claim` message (no round trip: the runner answers "
            "nothing), the record and audit writes. The refill starts %d ms after a claim, "
            "after the claimer's first execute." % 100, ""]
    lines += [
             "Targets (issue 17): ≤ 10 ms p50 with the pool, ≤ 20 ms without it on an "
             "untuned host, p99 ≤ 2× p50. Each start waits until the pool is full again, and "
             "%d ms more for the newest member's warm-up (a user who starts sessions one after "
             "another at a human pace); back to back, "
             "`new`s beyond the pool's size start fresh, from the zygote. The machine is "
             "shared (see the load average above): the absolute figures move by 2-4× between "
             "runs, the ratio to the floor measured in the same run much less (four earlier "
             "runs on 2026-12-03, 1-minute load 3.9-7.3 before each: floor 12.7-30.1 ms, "
             "pool 14.2-24.5 ms, no pool 47.4-58.6 ms)." % (SETTLE * 1000), "",
             "%s" % NO_POOL_WHY, "",
             ] + render_cgroup_moves(res.get("cgroup_moves"),
                                                res.get("cgroup_moves_load")) + [
             "Pid 1 of a session is `%s`: %d kB RSS, %d kB PSS (the session's whole tree: "
             "%d kB PSS)." % (res["pid1"]["pid1_comm"], res["pid1"]["pid1_rss_kb"],
                              res["pid1"]["pid1_pss_kb"], res["pid1"]["tree_pss_kb"]), ""]
    sc = res.get("scale", {})
    if sc:
        levels = [k for k in sc if k != "stopped"]
        lines += ["`new` against the number of idle sessions (issue 11): one daemon per level, "
                  "each holding that many sessions less one (live interpreters, nothing "
                  "imported, each with its endpoint, channel and cgroups), all alive at once "
                  "and driven in interleaved rounds: one `new` on each in turn, %d rounds, so "
                  "that the machine's drift and its other load fall on every level alike. "
                  "Each `new` waits until the pool is full and settled, is timed from the "
                  "request to the reply on the control socket, and its session is killed and "
                  "gone before the next. Daemon CPU: all its threads' schedstat over the "
                  "request." % sc[levels[0]]["new_ms"]["n"], "",
                  "| idle sessions | `new` reply p50 | mean | p99 | daemon CPU per `new`, p50 "
                  "| mean | born | daemon RSS |", "|---|---|---|---|---|---|---|---|"]
        for k in levels:
            v = sc[k]
            c = v.get("cpu_us")
            lines.append("| %s | %.2f ms | %.2f ms | %.2f ms | %s | %s | %s | %.1f MB |" % (
                k, v["new_ms"]["p50"], v["new_ms"]["mean"], v["new_ms"]["p99"],
                "%.0f µs" % c["p50"] if c else "—", "%.0f µs" % c["mean"] if c else "—",
                ", ".join("%s %d" % kv for kv in sorted(v["born"].items())),
                v["daemon_rss_kb"] / 1024))
        prof = [(k, v["syscalls_per_new"]) for k, v in sc.items()
                 if k != "stopped" and "syscalls_per_new" in v]
        if prof:
            lines += ["", "Daemon system calls per `new` at each level (all threads, "
                      "`strace -c -f` over 10 more `new`s, not timed), the most "
                      "frequent:", ""]
            lines += ["- %s sessions: %s" % (k, ", ".join("%s %.0f" % kv for kv in p.items()))
                      for k, p in prof]
        tops = [(k, v["perf_top"]) for k, v in sc.items() if k != "stopped" and v.get("perf_top")]
        for k, top in tops:
            lines += ["", "The daemon's hottest symbols during 10 more `new`s at %s sessions "
                      "(`perf record`, all threads, the refills between them included): %s." % (
                          k, ", ".join("`%s` %.1f%%" % (s, p) for p, s in top))]
        if len(levels) > 1:
            a, b = sc[levels[0]], sc[levels[-1]]
            g = lambda key, q: 100 * (b[key][q] - a[key][q]) / a[key][q]
            lines += ["", "At %s sessions against 1 (issue 11's target: within 10%%): `new` "
                      "reply p50 %+.0f%%, mean %+.0f%%; daemon CPU per `new` p50 %+.0f%%, "
                      "mean %+.0f%%." % (levels[-1], g("new_ms", "p50"), g("new_ms", "mean"),
                                         g("cpu_us", "p50"), g("cpu_us", "mean"))
                      if "cpu_us" in a and "cpu_us" in b else
                      "`new` p50 at %s sessions against 1: %+.0f%% (issue 11's target: "
                      "within 10%%)." % (levels[-1], g("new_ms", "p50"))]
        if "stopped" in sc:
            lines += ["", "Stopped " + sc["stopped"] + "."]
    lines += ["", SCALE_NOTES, ""]
    return "\n".join(lines)


def write_section(text):
    B.write_section(os.path.join(B.ROOT, "docs", "BENCHMARKS.md"), "pool_bench", text)


def main():
    if sys.argv[1:] == ["--render"]:        # the last run's figures, the current text
        with open(os.path.join(B.BUILD, "pool.json")) as f:
            write_section(render(json.load(f)))
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("--starts", type=int, default=30)
    p.add_argument("--floor-n", type=int, default=50)
    p.add_argument("--ipk-starts", type=int, default=10,
                   help="ipykernel starts through KernelManager (0: none)")
    p.add_argument("--levels", default="1,100,1000")
    p.add_argument("--per-level", type=int, default=40)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="no strace -c of the daemon at each level")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="cb-poolbench-")
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "git": B.git_describe(),
           "favordynmods": B.machine_info().get("favordynmods"),
           "load_before": os.getloadavg()}
    try:
        res["floor_ms"] = B.summary(floor(a.floor_n))
        B.log("floor", "p50 %.1f ms" % res["floor_ms"]["p50"])
        on = B.Daemon(work, ["--warm-pool", "2"], name="pool-on")
        try:
            B.build_rtt()
            res["pool_on"] = starts(on, a.starts, True, c_client=True)
            res["pid1"] = pid1_memory(on)
        finally:
            on.stop()
        off = B.Daemon(work, ["--warm-pool", "0"], name="pool-off")
        try:
            res["pool_off"] = starts(off, a.starts, False)
        finally:
            off.stop()
        res["cgroup_moves"] = cgroup_moves(work, a.starts)
        if a.ipk_starts:
            res["ipykernel_ms"] = ipykernel_starts(work, a.ipk_starts)
        levels = [int(x) for x in a.levels.split(",") if x]
        res["scale"] = scale(work, levels, a.per_level,
                             profile=a.profile and shutil.which("strace") is not None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(B.BUILD, exist_ok=True)
    with open(os.path.join(B.BUILD, "pool.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    text = render(res)
    print(text)
    if not a.no_write:
        write_section(text)
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)
