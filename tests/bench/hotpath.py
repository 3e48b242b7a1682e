"""The message hot path (issue 11): trivial executes/s across many sessions
and the daemon's CPU per execute, for one or more daemon builds in one run.

    /usr/bin/python3 tests/bench/hotpath.py [--sessions 50] [--count 200]
        [--rtt-n 2000] [--rounds 2] [--callgrind N] [--perf FILE | --strace FILE]
        [NAME=DIR ...]

Each DIR is a tree holding bin/cellblockd (and its shim and zygote) beside
kernel-shim/runner, as a worktree or a copy of one; none given: this tree.
Variants run alternately, round after round, so that the machine's other
load (the 2 cores are shared) falls on each alike. Per variant and round:
a private daemon (benchlib.Daemon), N trivial sessions (nothing imported),
then

- `rtt tput` over all of them, one `1+1` in flight per session: executes/s,
  and the daemon's CPU per execute from /proc/PID/stat (utime + stime of
  all its threads, in clock ticks) and from schedstat (ns) over the run;
- `rtt conn` on one session: the C client's round trip, p50/p99, and the
  daemon's CPU per execute with one session driven;
- with --callgrind N, once per variant: the daemon under valgrind's
  callgrind, instructions per execute over N executes of one session (user
  space only: counted, not timed, so the only figure here the shared
  machine's load cannot move; the kernel's part is not in it).

--perf and --strace attach `perf record` or `strace -c` to the daemon
during the tput run (profiling; the figures of that run are then off).

The load generator shares the cores: executes/s is what the whole machine
gives; daemon CPU per execute is the daemon's own. Writes a JSON line per
variant and round to tests/bench/.build/hotpath.jsonl and a summary table
on stdout. A benchmark, not a test: the exit status never depends on a
figure.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def stat_cpu_s(pid):
    """utime + stime of a process (all its threads), seconds."""
    f = B._stat_fields(pid)
    return (int(f[11]) + int(f[12])) / TICK


def start_perf_stat(pid, workdir):
    """Count the daemon's instructions (user and kernel) while it runs: a
    figure the other load on the shared cores does not inflate, unlike CPU
    time. None without a usable perf."""
    path = os.path.join(workdir, "perf-stat.csv")
    try:
        p = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions", "-o", path,
                              "-p", str(pid)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    except OSError:
        return None
    time.sleep(0.3)
    return p, path


def stop_perf_stat(h):
    if h is None:
        return None
    p, path = h
    p.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    try:
        for line in open(path):
            f = line.split(",")
            if len(f) > 2 and f[2].startswith("instructions") and f[0].isdigit():
                return int(f[0])
    except OSError:
        pass
    return None


def one(root, args, workdir):
    B.CELLBLOCKD = os.path.join(root, "bin", "cellblockd")
    d = B.Daemon(workdir, name="hotpath-cellblockd")
    try:
        sessions = [d.new() for _ in range(args.sessions)]
        files = [s["connection_file"] for s in sessions]
        B.run_rtt(["tput", "-n", "3", "-w", "0", "-t", "120", *files], timeout=600)
        out = {"sessions": len(files)}

        n, w = args.count, max(5, args.count // 10)
        perf = None
        if args.perf or args.strace:
            cmd = (["perf", "record", "-q", "--call-graph",
                    os.environ.get("HOTPATH_CG", "fp"), "-o", args.perf] if args.perf else
                   ["strace", "-c", "-f", "-o", args.strace])
            perf = subprocess.Popen(cmd + ["-p", str(d.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        pstat = start_perf_stat(d.pid, workdir)
        kids = [p for se in sessions for p in B.process_tree(se["pid"])]
        k0 = B.cpu_ns(kids)
        s0, n0 = stat_cpu_s(d.pid), sum(B.daemon_threads_ns(d.pid).values())
        data, ccpu = B.run_rtt(["tput", "-n", str(n), "-w", str(w), "-t", "60", *files],
                               timeout=600)
        s1, n1 = stat_cpu_s(d.pid), sum(B.daemon_threads_ns(d.pid).values())
        instr = stop_perf_stat(pstat)
        k1 = B.cpu_ns(kids)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        per = (n + w) * len(files)
        out["tput_per_s"] = len(data["rtt_us"]) / data["elapsed_s"]
        out["tput_errors"] = data["errors"]
        out["tput_daemon_us_stat"] = (s1 - s0) * 1e6 / per
        out["tput_daemon_us_sched"] = (n1 - n0) / 1e3 / per
        out["tput_client_us"] = ccpu * 1e6 / per
        out["tput_interpreter_us"] = (k1 - k0) / 1e3 / per
        out["tput_latency_p50_us"] = B.pct(data["rtt_us"], 50)
        if instr is not None:
            out["tput_daemon_kinstr"] = instr / 1e3 / per

        n, w = args.rtt_n, 100
        s0, n0 = stat_cpu_s(d.pid), sum(B.daemon_threads_ns(d.pid).values())
        data, _ = B.run_rtt(["conn", "-n", str(n), "-w", str(w), files[0]], timeout=600)
        s1, n1 = stat_cpu_s(d.pid), sum(B.daemon_threads_ns(d.pid).values())
        out["rtt_p50_us"] = B.pct(data["rtt_us"], 50)
        out["rtt_p99_us"] = B.pct(data["rtt_us"], 99)
        out["rtt_daemon_us_stat"] = (s1 - s0) * 1e6 / (n + w)
        out["rtt_daemon_us_sched"] = (n1 - n0) / 1e3 / (n + w)
        return out
    finally:
        d.stop()


def callgrind(root, args, workdir):
    """Instructions the daemon executes per trivial execute (user space,
    every thread), under valgrind's callgrind: counted, not timed, so the
    machine's other load cannot move it. Instrumentation is switched on
    only around the timed executes (callgrind_control -i)."""
    name = os.path.basename(os.path.normpath(root))
    out = os.path.join(workdir, f"callgrind-{name}.out")
    wrap = os.path.join(workdir, f"cbd-{name}.sh")
    with open(wrap, "w") as f:
        f.write("#!/bin/sh\nexec valgrind -q --tool=callgrind --instr-atstart=no "
                f"--callgrind-out-file={out} {root}/bin/cellblockd \"$@\"\n")
    os.chmod(wrap, 0o755)
    B.CELLBLOCKD = wrap
    d = B.Daemon(workdir, name=f"callgrind-{name}")
    try:
        s = d.new()
        B.run_rtt(["conn", "-n", "20", "-w", "5", "-t", "120", s["connection_file"]],
                  timeout=600)
        subprocess.run(["callgrind_control", "-i", "on", str(d.pid)], check=True,
                       capture_output=True)
        B.run_rtt(["conn", "-n", str(args.callgrind), "-w", "0", "-t", "120",
                   s["connection_file"]], timeout=1800)
        subprocess.run(["callgrind_control", "-i", "off", str(d.pid)], check=True,
                       capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(d.pid)], check=True,
                       capture_output=True)
    finally:
        d.stop()
    total = 0
    for fn in os.listdir(workdir):
        if fn.startswith(os.path.basename(out)):
            for line in open(os.path.join(workdir, fn)):
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
    return total / args.callgrind


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--count", type=int, default=200, help="executes per session (tput)")
    p.add_argument("--rtt-n", type=int, default=2000, help="timed executes, one session")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--perf", help="perf record -g the daemon during tput into this file")
    p.add_argument("--strace", help="strace -c -f the daemon during tput into this file")
    p.add_argument("--callgrind", type=int, metavar="N",
                   help="also count the daemon's instructions over N executes under callgrind")
    p.add_argument("--write", metavar="FILE",
                   help="also write the table, with the command and load, to FILE")
    p.add_argument("variants", nargs="*", help="NAME=DIR (default: this tree)")
    a = p.parse_args()
    variants = [v.split("=", 1) for v in a.variants] or [["this", B.ROOT]]
    B.build_rtt()
    os.makedirs(B.BUILD, exist_ok=True)
    res = {name: [] for name, _ in variants}
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cb-hotpath-") as work, \
            open(os.path.join(B.BUILD, "hotpath.jsonl"), "a") as log:
        for r in range(a.rounds):
            for name, root in variants:
                B.log("hotpath", f"round {r + 1}/{a.rounds}: {name} ({root})")
                o = one(root, a, work)
                if a.callgrind and r == 0:
                    o["callgrind_kinstr"] = callgrind(root, a, work) / 1e3
                o.update(variant=name, round=r + 1, time=time.time(),
                         load=os.getloadavg())
                log.write(json.dumps(o) + "\n")
                log.flush()
                res[name].append(o)
                B.log("hotpath", json.dumps({k: round(v, 1) if isinstance(v, float) else v
                                             for k, v in o.items() if k != "load"}))
    table = render_table(variants, res)
    print(table)
    if a.write:
        write(a.write, variants, res, table, load0)


NOTES = "<!-- notes below: written by hand, kept by hotpath.py --write -->"


def ceiling(o):
    """Executes/s the 2 cores allow at this run's CPU per execute."""
    per = o["tput_daemon_us_sched"] + o["tput_interpreter_us"] + o["tput_client_us"]
    return os.cpu_count() * 1e6 / per if per else float("nan")


def write(path, variants, res, table, load0):
    kept = ""
    if os.path.exists(path):
        old = open(path).read()
        if NOTES in old:
            kept = old[old.index(NOTES):]
    caps = "; ".join(f"{n}: {'/'.join(f'{ceiling(o):.0f}' for o in res[n])}/s"
                     for n, _ in variants)
    with open(path, "w") as f:
        f.write(f"`make bench-hotpath` (tests/bench/hotpath.py): {len(variants)} daemon "
                f"build(s) driven alternately, round after round, each with a private "
                f"daemon and 50 trivial sessions (nothing imported): `rtt tput` (one `1+1` "
                f"in flight per session) and `rtt conn` (one session); CPU per execute "
                f"from /proc (the daemon's over all its threads, the sessions' processes', "
                f"the C client's), instructions per execute under callgrind (user space "
                f"only; counted, not timed, so the other load on the shared cores cannot "
                f"move it). Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                f"`{' '.join(sys.argv[1:])}`; load average before "
                f"{' '.join(f'{x:.1f}' for x in load0)}, after "
                f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}: the machine was shared, "
                f"so times are inflated alike for every build and only the same run's "
                f"figures compare. Each cell: round 1/round 2/...\n\n{table}\n\n"
                f"What 2 cores allow at each round's CPU per execute (daemon + sessions + "
                f"client): {caps}.\n\n")
        f.write(kept or NOTES + "\n")


LABELS = {
    "tput_per_s": "trivial executes/s, 50 sessions at once",
    "tput_daemon_us_stat": "daemon CPU per execute then, /proc/PID/stat (µs)",
    "tput_daemon_us_sched": "the same from schedstat (µs)",
    "tput_daemon_kinstr": "daemon instructions per execute then, perf stat (thousands)",
    "tput_client_us": "C client CPU per execute (µs)",
    "tput_interpreter_us": "the sessions' processes' CPU per execute (µs)",
    "rtt_p50_us": "`1+1` round trip, one session, p50 (µs)",
    "rtt_p99_us": "the same, p99 (µs)",
    "rtt_daemon_us_stat": "daemon CPU per execute, one session, /proc/PID/stat (µs)",
    "rtt_daemon_us_sched": "the same from schedstat (µs)",
    "callgrind_kinstr": "daemon instructions per execute, callgrind, user space (thousands)",
}


def render_table(variants, res):
    L = ["| figure | " + " | ".join(n for n, _ in variants) + " |",
         "|---|" + "---|" * len(variants)]
    for k, label in LABELS.items():
        cells = []
        for name, _ in variants:
            vals = [o.get(k, float("nan")) for o in res[name]]
            cells.append("/".join(f"{v:.0f}" for v in vals if v == v) or "-")
        if any(c != "-" for c in cells):
            L.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(L)


if __name__ == "__main__":
    main()
