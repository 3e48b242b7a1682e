"""Turns the harness's results into docs/BENCHMARKS.md and a summary on stdout.
Every figure comes from the results of this run; nothing is typed in."""
import os
import shlex


MET, NOT_MET = "met", "**not met**"
NOT_IMPL, NOT_MEASURED = "not implemented yet", "not measured"
BIG = "1,310,720 × 10 float64"
WIRE_MSGS = 6   # per execute: request in; busy, execute_input, execute_result, idle, reply out


def ms(x):
    if x is None:
        return "—"
    return f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def us(x):
    if x is None:
        return "—"
    return f"{x / 1000:.2f} ms" if x >= 10000 else f"{x:.0f} µs"


def mb(x):
    return "—" if x is None else f"{x:.1f} MB"


def ratio(a, b):
    if a is None or b is None or not b:
        return "—"
    return f"{a / b:.2f}×"


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def rows(res):
    """[(group, measure, cellblock, ipykernel, ratio, target, verdict, reason)]"""
    out = []
    nproc = get(res, "machine", "nproc") or 2

    # 1. start
    st = res.get("start", {})
    for label, title in (("plain", "first cell `1+1`"),
                         ("imports", "first cell `import numpy, pandas, matplotlib`")):
        cb = get(st, f"cellblock_{label}", "ms")
        ipk = get(st, f"ipykernel_{label}", "ms")
        if not cb:
            continue
        bd = get(st, f"cellblock_{label}", "breakdown") or {}
        plain = get(st, "cellblock_plain", "ms", "p50")
        for q, limit in (("p50", 25), ("p99", 60)):
            v = cb.get(q)
            met = v is not None and v <= limit
            if met:
                reason = ""
            elif q == "p99":
                reason = "as for p50"
            elif label == "plain":
                born = get(st, "born") or "?"
                reason = (f"sessions born by {born}; the daemon's log puts "
                          f"{ms(bd.get('spawned_to_ready'))} (median) between the spawn and the "
                          f"interpreter's hello (see \"where the time goes\": the clone and fork "
                          f"of the zygote, namespaces, the daemon's cgroup moves and id maps, mounts, "
                          f"IPython's shell), and {ms(bd.get('created_to_spawned'))} from `new` to the "
                          f"spawn (in the daemon's loop: cgroups, five ports, the connection file)")
            else:
                d = (cb.get('p50') or 0) - (plain or 0)
                reason = (f"{'+' if d >= 0 else '−'}{ms(abs(d))} against a `1+1` first cell: "
                          + ("the libraries are preloaded, so this is the start's own cost"
                             if get(st, "born") == "zygote" else
                             "nothing is preloaded: the imports run in the new interpreter"))
            out.append(("start", f"{title}, {q}", ms(v), ms(get(ipk, q)) if ipk else "—",
                        ratio(v, get(ipk, q)), f"≤ {limit} ms" + (" (no extra cost)" if label == "imports" else ""),
                        MET if met else NOT_MET, reason))

    # 2. round trip
    rt = res.get("rtt", {})
    cbc, ipc, direct = get(rt, "cellblock_c", "us"), get(rt, "ipykernel_c", "us"), get(rt, "direct_c", "us")
    if cbc:
        v = cbc["p50"]
        over = v - direct["p50"] if direct else None
        met = v <= 300
        reason = "" if met else (
            f"the runner alone (C client on its channel, no daemon, no ZeroMQ) takes "
            f"{us(get(direct, 'p50'))} for the same execute; daemon + wire add {us(over)}")
        out.append(("rtt", "`1+1` round trip, C client, p50", us(v), us(get(ipc, "p50")),
                    ratio(v, get(ipc, "p50")), "≤ 0.3 ms", MET if met else NOT_MET, reason))
        out.append(("rtt", "`1+1` round trip, C client, p99", us(cbc["p99"]), us(get(ipc, "p99")),
                    ratio(cbc["p99"], get(ipc, "p99")), "—", "", ""))
        if over is not None:
            dcpu = get(rt, "cellblock_c", "daemon_cpu_us")
            # The target is per message: one execute is WIRE_MSGS of them.
            per = over / WIRE_MSGS
            met = per <= 50
            reason = (f"{us(over)} per execute round trip, which relays {WIRE_MSGS} wire messages "
                      f"(1 request in, 5 out): ≈ {us(per)} per message; the daemon spends "
                      f"{us(dcpu)} of CPU per execute (all its threads), see \"where the "
                      f"time goes\"")
            out.append(("rtt", "daemon's addition over the runner alone (p50 − p50), per message",
                        us(per), "—", "—", "≤ 50 µs per message", MET if met else NOT_MET, reason))
        cbp, ipp = get(rt, "cellblock_py", "p50"), get(rt, "ipykernel_py", "p50")
        out.append(("rtt", "`1+1` round trip, jupyter_client, p50 (context)", us(cbp), us(ipp),
                    ratio(cbp, ipp), "—", "", ""))
        out.append(("rtt", "`1+1` round trip, jupyter_client, p99 (context)",
                    us(get(rt, "cellblock_py", "p99")), us(get(rt, "ipykernel_py", "p99")),
                    ratio(get(rt, "cellblock_py", "p99"), get(rt, "ipykernel_py", "p99")), "—", "", ""))

    # 3. density
    dn = res.get("density", {})
    cb, ipk = dn.get("cellblock"), dn.get("ipykernel")
    if cb and cb.get("daemon_died"):
        out.append(("density", "cellblockd", "died", "—", "—", "survives 1,000 sessions", NOT_MET,
                    cb.get("stop_reason") or ""))
        snap = cb.get("last_snapshot")
        if snap:
            out.append(("density", f"daemon RSS with {snap['measured']} sessions (last snapshot before it died)",
                        mb(snap["daemon_rss_mb"]), "—", "—", "≤ 150 MB at 1,000", "", ""))
            out.append(("density", f"per-session PSS p50 at {snap['measured']} sessions",
                        mb(snap["pss_mb"].get("p50")), mb(get(ipk, "pss_mb", "p50")),
                        ratio(snap["pss_mb"].get("p50"), get(ipk, "pss_mb", "p50")), "≤ 15 MB",
                        MET if (snap["pss_mb"].get("p50") or 99) <= 15 else NOT_MET, ""))
        a, b = get(cb, "new_ms_first10", "p50"), get(cb, "new_ms_last10", "p50")
        if a is not None and b is not None:
            out.append(("density", "control `new` reply time, p50 of the first 10 → last 10 sessions made",
                        f"{ms(a)} → {ms(b)}", "—", "—", "—", "", ""))
    elif cb:
        k = cb.get("measured", cb["sessions"])
        out.append(("density", "concurrent idle sessions measured", str(k),
                    str(get(ipk, "sessions") or "—"), "—", "1,000", "",
                    (f"stopped early: {cb['stop_reason']}" if cb.get("stop_reason") else
                     ("" if k >= 1000 else "K is --density-k (50 by default, up to 1,000)"))))
        v = cb["daemon_rss_mb"]
        empty = cb.get("daemon_rss_mb_empty") or 0
        per_kb = (v - empty) * 1024 / max(k, 1)
        at1000 = empty + per_kb * 1000 / 1024
        if k >= 1000:
            verdict = MET if v <= 150 else NOT_MET
        elif v > 150:
            verdict = NOT_MET
        else:
            verdict = f"{MET} at {k}; not verified at 1,000"
        out.append(("density", f"daemon RSS with {k} sessions", mb(v), "—", "—",
                    "≤ 150 MB at 1,000", verdict,
                    f"{mb(empty)} with no session, ≈ {per_kb:.0f} kB more per session"
                    + (f" (measured after the throughput run); linear extrapolation to 1,000: "
                       f"≈ {at1000:.0f} MB" if k < 1000 else "")))
        p = cb["pss_mb"].get("p50")
        anon = get(cb, "pss_anon_mb", "p50")
        met = p is not None and p <= 15
        out.append(("density", "per-session PSS (all its processes), p50", mb(p),
                    mb(get(ipk, "pss_mb", "p50")), ratio(p, get(ipk, "pss_mb", "p50")), "≤ 15 MB",
                    MET if met else NOT_MET,
                    "" if met else (f"{mb(anon)} of it anonymous memory: the pages of the zygote a "
                                    f"session has written (so copied) plus its own; "
                                    f"{cb.get('procs_per_session')} processes per session, each with "
                                    f"its own page tables over the zygote's heap")))
        a, b = get(cb, "new_ms_first10", "p50"), get(cb, "new_ms_last10", "p50")
        if a is not None and b is not None:
            out.append(("density", "control `new` reply time, p50 of the first 10 → last 10 sessions made",
                        f"{ms(a)} → {ms(b)}", "—", "—", "—", "",
                        "the daemon does this work in its loop, so every session's traffic waits "
                        "meanwhile" + (f"; one `new` made {res['profile']['new_binds']['eaddrinuse']} "
                                       f"failed bind() calls before finding 5 free ports"
                                       if get(res, "profile", "new_binds") else "")))
        out.append(("density", "per-session PSS, p99", mb(cb["pss_mb"].get("p99")),
                    mb(get(ipk, "pss_mb", "p99")), ratio(cb["pss_mb"].get("p99"), get(ipk, "pss_mb", "p99")),
                    "—", "", ""))

    # 4. throughput
    tp = res.get("tput", {})
    cb, ipk = tp.get("cellblock"), tp.get("ipykernel")
    if cb:
        v = cb["per_s"]
        met = v >= 3000 and cb["sessions"] >= 50
        per = (cb.get("daemon_cpu_us") or 0) + (cb.get("kernel_cpu_us") or 0) + (cb.get("client_cpu_us") or 0)
        cap = nproc * 1e6 / per if per else None
        reason = "" if met else (
            f"CPU-bound on {nproc} cores: per execute the daemon uses {us(cb.get('daemon_cpu_us'))}, "
            f"the interpreter {us(cb.get('kernel_cpu_us'))}, the C client {us(cb.get('client_cpu_us'))} "
            f"of CPU ⇒ at most ≈ {cap:.0f}/s here" if cap else "")
        if ipk and ipk.get("kernel_cpu_us"):
            reason += (f"; ipykernel uses {us(ipk['kernel_cpu_us'])} of kernel CPU per execute, "
                       f"capping it near {nproc * 1e6 / (ipk['kernel_cpu_us'] + (ipk.get('client_cpu_us') or 0)):.0f}/s")
        if v >= 3000 and cb["sessions"] < 50:
            reason = f"only {cb['sessions']} sessions driven"
        out.append(("tput", f"trivial executes/s, {cb['sessions']} sessions"
                            + (f" (ipykernel: {ipk['sessions']} kernels)" if ipk else ""),
                    f"{v:.0f}/s", f"{ipk['per_s']:.0f}/s" if ipk else "—",
                    ratio(v, get(ipk, "per_s")), "≥ 3,000/s across 50",
                    MET if met else NOT_MET, reason))
        out.append(("tput", "latency of one execute under that load, p50",
                    us(cb["latency_us"]["p50"]), us(get(ipk, "latency_us", "p50")),
                    ratio(cb["latency_us"]["p50"], get(ipk, "latency_us", "p50")), "—", "", ""))

    return out + lifecycle_rows(res)


def lifecycle_rows(res):
    lc = res.get("lifecycle")
    if lc and lc.get("resume_small_ms", {}).get("n"):
        out = []
        bd = lc.get("breakdown", {})
        small_bd, big_bd = bd.get("bench-resume", {}), bd.get("bench-ckpt", {})
        v = lc["resume_small_ms"]
        met = v["p50"] <= 50
        out.append(("lifecycle", "resume of a hibernated session (small state) → first reply, p50",
                    ms(v["p50"]), "—", "—", "≤ 50 ms", MET if met else NOT_MET,
                    "" if met else (
                        f"resume starts a new interpreter: "
                        f"{ms(small_bd.get('spawn_to_ready'))} from spawn to its hello, then "
                        f"{ms(small_bd.get('ready_to_restored'))} to restore the checkpoint")))
        out.append(("lifecycle", "resume of a hibernated session (small state), p99",
                    ms(v["p99"]), "—", "—", "—", "", ""))
        c = lc.get("checkpoint_100mb_ms", {})
        if c.get("n"):
            met = c["p50"] <= 1000
            out.append(("lifecycle", f"checkpoint of a session holding a 100 MB DataFrame "
                                     f"({(lc.get('checkpoint_bytes') or 0) / 2**20:.0f} MiB file), p50",
                        f"{ms(c['p50'])} (max {ms(c['max'])}, n={c['n']})", "—", "—", "≤ 1 s",
                        MET if met else NOT_MET,
                        "" if met else "pickling and fsyncing the DataFrame in the runner"))
        rr = lc.get("restore_100mb_ms", {})
        if rr.get("n"):
            met = rr["p50"] <= 1000
            out.append(("lifecycle", "restore of that checkpoint (resume → first reply), p50",
                        f"{ms(rr['p50'])} (max {ms(rr['max'])}, n={rr['n']})", "—", "—", "≤ 1 s",
                        MET if met else NOT_MET,
                        (f"new interpreter {ms(big_bd.get('spawn_to_ready'))}, then restore "
                         f"{ms(big_bd.get('ready_to_restored'))}" if big_bd else "")))
        return out
    out = []
    err = (res.get("errors") or {}).get("lifecycle")
    for what, target in (("resume of a hibernated session (small state) → first reply", "≤ 50 ms"),
                         ("checkpoint of a session holding a 100 MB DataFrame", "≤ 1 s"),
                         ("restore of that checkpoint", "≤ 1 s")):
        out.append(("lifecycle", what, "—", "—", "—", target, NOT_MEASURED,
                    f"the lifecycle section failed: {err.splitlines()[0]}" if err else
                    "the lifecycle section was not run (--only)"))
    return out


GROUPS = [
    ("start", "1. Start: new session → first `execute_reply`"),
    ("rtt", "2. Execute round trip on a live session"),
    ("density", "3. Density: concurrent idle sessions that imported numpy and pandas"),
    ("tput", "4. Throughput: trivial executes per second, all sessions at once"),
    ("lifecycle", "5. Hibernate, resume, checkpoint, restore"),
]


def table(rs):
    lines = ["| measure | cellblock | ipykernel 6.17 | ratio (cb ÷ ipk) | target | verdict | why not |",
             "|---|---|---|---|---|---|---|"]
    for _, m, a, b, r, t, v, why in rs:
        lines.append(f"| {m} | {a} | {b} | {r} | {t} | {v} | {why} |")
    return "\n".join(lines)


HOW = {
    "start": lambda res, cfg: (
        f"cellblock: `{{\"cmd\":\"new\"}}` on the daemon's control socket (what `cellblock new` "
        f"sends, without the CLI's own exec), then a jupyter_client `BlockingKernelClient` on the "
        f"returned connection file sends `execute_request` at once (it queues until the "
        f"interpreter says hello). ipykernel: `KernelManager(kernel_name=\"python3\").start_kernel()`, "
        f"`km.client()`, `execute`. The clock stops at the matching `execute_reply`. One warm-up "
        f"start of each is not counted; after each start the session/kernel is ended and its "
        f"processes waited for, so starts do not overlap. {cfg['start_n']} cellblock and "
        f"{cfg['ipk_start_n']} ipykernel starts per variant; with so few samples p99 is "
        f"essentially the maximum. Both clients retry a refused connect every 5 ms instead of "
        f"ZeroMQ's default 100 ms, which would otherwise round ipykernel's start up. The "
        f"`control new` reply itself took {ms(get(res, 'start', 'cellblock_plain', 'control_new_ms', 'p50'))} "
        f"(median)."),
    "rtt": lambda res, cfg: (
        f"`tests/bench/rtt.c` (HMAC-signed with the project's `protocol/` codec; DEALER shell + "
        f"SUB iopub) sends `execute_request` for `1+1` and waits for both the `execute_reply` "
        f"and the `status: idle` with that parent before sending the next; {cfg['rtt_n']} timed "
        f"executes after a warm-up, same binary against both servers. \"Runner alone\" is "
        f"`rtt direct`: the same runner spawned on a socketpair and spoken to in the channel "
        f"framing (docs/CHANNEL.md), as the daemon does, with no daemon, ZeroMQ, HMAC or sandbox "
        f"({us(get(res, 'rtt', 'direct_c', 'us', 'p50'))} p50, "
        f"{us(get(res, 'rtt', 'direct_c', 'us', 'p99'))} p99). The jupyter_client rows "
        f"({cfg['py_rtt_n']} executes) show what a Python client sees."),
    "density": lambda res, cfg: (
        f"Sessions are made in batches of 10 and each runs `import numpy, pandas` (all of a batch "
        f"at once, through the C client); they are then left idle. Per-session PSS is "
        f"`/proc/PID/smaps_rollup` summed over the session's shim (from `ls` / `new`: `pid`) and "
        f"all its descendants (found by ppid). Daemon RSS is `VmRSS` of cellblockd. ipykernel: "
        f"{cfg['ipk_kernels']} kernels, same import, PSS of each kernel's process tree. The "
        f"harness stops adding sessions while keeping 2 GB of RAM available."),
    "lifecycle": lambda res, cfg: (
        f"A second private daemon with `idle-timeout = {get(res, 'lifecycle', 'idle_timeout')}` "
        f"(seconds) and periodic checkpoints off, so idle sessions hibernate (checkpoint, then "
        f"stop) within a few seconds. Resume: wait until `ls` says `hibernated`, then time an "
        f"`execute_request` that checks the state (`assert x == 41`) until its `execute_reply`; "
        f"{cfg.get('resume_n')} times. 100 MB: a session makes a {BIG} DataFrame; the "
        f"checkpoint is the control socket's `checkpoint` (what `cellblock checkpoint` sends), "
        f"timed until its answer; the restore is the next resume after the session "
        f"hibernated, checked with `assert df.shape == ...`; {cfg.get('ckpt_n')} round(s), the "
        f"DataFrame changed between them. ipykernel has no equivalent. The split in the "
        f"\"why\" column is from the daemon's log (median)."),
    "tput": lambda res, cfg: (
        f"`rtt tput`: one C client process holding a DEALER + SUB per session, all driven from "
        f"one poll loop with one `1+1` in flight per session (the next sent when the previous "
        f"one's reply and idle are in), {cfg['tput_count']} timed executes per session after a "
        f"warm-up. The cellblock sessions are the density run's first {cfg['tput_sessions']} "
        f"(numpy and pandas imported, which a trivial cell does not touch). ipykernel runs with "
        f"{cfg['ipk_kernels']} kernels to bound the run's time and memory; with {get(res, 'machine', 'nproc')} "
        f"cores either server is CPU-bound long before 10 kernels, so more would not raise its "
        f"figure. A C client is used so that the client is not what is measured (a Python client "
        f"costs several hundred µs of CPU per execute)."),
}


def start_time_goes(res):
    """The phases of a new session's start, from the daemon's log."""
    st = res.get("start", {})
    c = st.get("cellblock_plain")
    if not c:
        return []
    bd = c.get("breakdown") or {}
    total = get(c, "ms", "p50")
    phases = [("`new` request → interpreter spawned (daemon: work dir, cgroups and their "
               "limits, 5 ports, the connection file)", bd.get("created_to_spawned")),
              ("spawned → `contain` request (zygote: the clone into new "
               "user/mount/pid/net/ipc/uts namespaces)", bd.get("spawned_to_contained")),
              ("`contain` → interpreter's hello (daemon: cgroup moves, id maps; child: "
               "mounts, a fork, pid 1's exec of cellblock-init, capabilities, seccomp; the "
               "runner's per-process part: log, "
               "channel, its private IPython dir, capture threads)", bd.get("contained_to_ready"))]
    L = [f"Start of a new session (born by {st.get('born', '?')}), medians from the daemon's "
         f"log over the `1+1` starts; the client-side total was {ms(total)}:\n",
         "| phase | median |", "|---|---|"]
    known = 0.0
    for what, v in phases:
        L.append(f"| {what} | {ms(v)} |")
        known += v or 0
    if total:
        L.append(f"| the rest: the client's connection, `kernel_info`, the execute and its "
                 f"reply (total − the above) | {ms(total - known)} |")
    L.append("")
    return L


def where_time_goes(res):
    rt = res.get("rtt", {})
    cb = rt.get("cellblock_c")
    L = start_time_goes(res)
    if not cb:
        return "\n".join(L + ["Execute: not measured in this run (the `rtt` section was skipped)."])
    d = rt.get("direct_c", {})
    ik = rt.get("ipykernel_c", {})
    L.append("From the round-trip run (always measured; CPU from `/proc/PID/task/*/schedstat`, "
             "divided by the number of executes):\n")
    L.append("| one `1+1` execute | cellblock | ipykernel |")
    L.append("|---|---|---|")
    L.append(f"| wall, C client, p50 | {us(cb['us']['p50'])} | {us(get(ik, 'us', 'p50'))} |")
    L.append(f"| wall until `execute_reply` (before idle), p50 | {us(cb['reply_us']['p50'])} | "
             f"{us(get(ik, 'reply_us', 'p50'))} |")
    L.append(f"| the runner alone over its channel (no daemon), p50 | {us(get(d, 'us', 'p50'))} | — |")
    th = cb.get("daemon_threads_us") or {}
    L.append(f"| CPU in the daemon (all threads) | {us(cb.get('daemon_cpu_us'))} | — |")
    if th:
        L.append(f"| … of which its main loop / libzmq's I/O thread / other threads (the heartbeat's) | "
                 f"{us(th.get('main'))} / {us(th.get('zmq_io'))} / {us(th.get('other'))} | — |")
    tp = get(res, "tput", "cellblock")
    if tp and tp.get("daemon_threads_us"):
        t2 = tp["daemon_threads_us"]
        L.append(f"| the same with {tp['sessions']} sessions driven at once (throughput run) | "
                 f"{us(t2.get('main'))} / {us(t2.get('zmq_io'))} / {us(t2.get('other'))} | — |")
    L.append(f"| CPU in the interpreter (session's processes / kernel) | {us(cb.get('kernel_cpu_us'))} | "
             f"{us(ik.get('kernel_cpu_us'))} |")
    L.append(f"| CPU in the C client | {us(cb.get('client_cpu_us'))} | {us(ik.get('client_cpu_us'))} |")
    L.append(f"| iopub messages from the runner per execute | {d.get('iopub_per_execute', '—')} | — |")
    pr = res.get("profile")
    if not pr:
        L.append("\nThe daemon was not profiled in this run: add `--profile` for `perf stat`, "
                 "`perf record` and `strace -c` figures (written to `tests/bench/.build/profile/`).")
        return "\n".join(L)
    L.append("\n`--profile` (daemon attached to while the C client ran 2000 executes on one session; "
             "raw output in `tests/bench/.build/profile/`):\n")
    ps = pr.get("perf_stat")
    if ps:
        L.append("`perf stat -p cellblockd`, per execute: " + ", ".join(
            f"{k} {v:.2f}" + (" ms" if k == "task-clock" else "") for k, v in ps.items()) + ".\n")
    if pr.get("strace_per_execute"):
        L.append(f"`strace -c -f -p cellblockd` (500 executes; strace slows everything, counts only): "
                 f"{pr['strace_total_per_execute']:.1f} system calls per execute: " + ", ".join(
                     f"{name} {n:.1f}" for name, n in pr["strace_per_execute"]) + ".\n")
    if pr.get("new_binds"):
        nb = pr["new_binds"]
        L.append(f"`strace -e trace=bind` on the daemon during one `new` (with {nb['sessions_alive']} "
                 f"other session(s) of this daemon alive): {nb.get('tcp_binds', '?')} TCP bind() calls, "
                 f"{nb['eaddrinuse']} of them failing with EADDRINUSE, for the 5 ports a session "
                 f"needs. The endpoints bind `tcp://127.0.0.1:*`, which czmq resolves by trying "
                 f"ports from 49152 upward, one zmq_bind (and a netlink interface dump) each, so "
                 f"the cost of `new` grows with every port in use on the host in that range "
                 f"(other sessions' and any other program's, including clients' ephemeral "
                 f"ports).\n")
    if pr.get("perf_by_dso"):
        L.append("`perf record -e cpu-clock -g -p cellblockd,runner`, samples by process and library:\n")
        L.append("```")
        L.extend(l.rstrip() for l in pr["perf_by_dso"])
        L.append("```\n")
    if pr.get("perf_daemon_syms"):
        L.append(f"The daemon's own samples (both threads) by user-space symbol, in percent of the "
                 f"daemon's samples; its kernel symbols above 0.5% add up to "
                 f"{pr.get('perf_daemon_kernel_pct', 0):.0f}%, mostly scheduling and poll/eventfd "
                 f"wake-ups:\n")
        L.append("```")
        L.extend(l.rstrip() for l in pr["perf_daemon_syms"])
        L.append("```")
    return "\n".join(L)


def findings(res):
    """Observations computed from this run's figures."""
    F = []
    rt = res.get("rtt", {})
    cb, d = rt.get("cellblock_c"), rt.get("direct_c")
    if cb and d:
        over = cb["us"]["p50"] - d["us"]["p50"]
        F.append(f"- The daemon path costs {us(over)} per execute over the runner alone, and "
                 f"the daemon burns {us(cb.get('daemon_cpu_us'))} of CPU per execute to relay 6 "
                 f"small messages. With the runner at {us(d['us']['p50'])}, the 0.3 ms target "
                 f"leaves the daemon almost nothing: both sides need work.")
    tp = get(res, "tput", "cellblock")
    if tp and tp.get("daemon_cpu_us") and cb and cb.get("daemon_cpu_us"):
        main = get(tp, "daemon_threads_us", "main")
        F.append(f"- The daemon's CPU per execute: {us(cb['daemon_cpu_us'])} with one session "
                 f"driven, {us(tp['daemon_cpu_us'])} with {tp['sessions']} driven at once (its "
                 f"epoll loop wakes only for the sockets that signalled; section 6 has the cost "
                 f"against idle sessions). At that cost 3,000 executes/s would need "
                 f"{3000 * tp['daemon_cpu_us'] / 1e6:.1f} CPUs for the daemon alone"
                 + (f", and its single-threaded main loop ({us(main)} per execute) saturates one "
                    f"core near {1e6 / main:.0f}/s" if main else "") + ".")
    ik = rt.get("ipykernel_c")
    if cb and ik and ik.get("kernel_cpu_us") and cb.get("kernel_cpu_us"):
        F.append(f"- ipykernel 6.17 uses {us(ik['kernel_cpu_us'])} of CPU per trivial execute "
                 f"here against {us(cb['kernel_cpu_us'])} for cellblock's runner "
                 f"(+ {us(cb.get('daemon_cpu_us'))} in the daemon), which is why cellblock wins "
                 f"the round trip and throughput ratios while missing the absolute targets.")
    st = res.get("start", {})
    p, i = get(st, "cellblock_plain", "ms", "p50"), get(st, "cellblock_imports", "ms", "p50")
    ip, ii = get(st, "ipykernel_plain", "ms", "p50"), get(st, "ipykernel_imports", "ms", "p50")
    if p and i and ip and ii:
        F.append(f"- The import cell adds {ms(i - p)} to a cellblock start and {ms(ii - ip)} to an "
                 f"ipykernel start.")
    dn = get(res, "density", "cellblock")
    if dn and dn.get("stop_reason"):
        F.append(f"- The density run stopped at {dn['sessions']} sessions: {dn['stop_reason']}.")
    for k, v in (res.get("errors") or {}).items():
        F.append(f"- Section `{k}` failed: {v.splitlines()[0] if v else ''}")
    return "\n".join(F) if F else "- none"


def scale_section(res):
    """Issue 11: the cost of a message and of `new` against the number of
    idle sessions, and how far the largest count is from one session."""
    sc = res.get("scale") or {}
    lv = sc.get("levels") or []
    if not lv:
        err = (res.get("errors") or {}).get("scale")
        return f"Not measured in this run{': ' + err if err else ''}."
    L = ["| idle sessions | `new` reply, p50 | `new`, p99 | `1+1` round trip, C client, p50 | p99 "
         "| daemon CPU per execute (main / libzmq I/O) | daemon RSS |",
         "|---|---|---|---|---|---|---|"]
    for x in lv:
        th = x.get("daemon_threads_us") or {}
        main, io = th.get("main"), th.get("zmq_io")
        L.append(f"| {x['sessions']} | {ms(x['new_ms'].get('p50'))} | {ms(x['new_ms'].get('p99'))} "
                 f"| {us(x['rtt_us'].get('p50'))} | {us(x['rtt_us'].get('p99'))} "
                 f"| {us(x['daemon_cpu_us'])} ({us(main)} / {us(io)}) | {mb(x['daemon_rss_mb'])} |")
    first, last = lv[0], lv[-1]

    def change(a, b):
        return f"{100 * (b - a) / a:+.0f}%" if a else "?"
    L += ["", "| target (issue 11) | figure | verdict |", "|---|---|---|"]
    if len(lv) > 1:
        # `new` is judged by pool_bench.py, not here: this section grows one
        # daemon level by level, so the machine's drift over the minutes
        # between levels lands on the ratio (the 1-session p50 alone was
        # 4.3 ms in one run and 9.2 ms in the next, 2026-12-03).
        L.append(f"| `new` reply p50 at the most sessions within 10% of one session "
                 f"| {change(first['new_ms'].get('p50'), last['new_ms'].get('p50'))} "
                 f"({first['sessions']} → {last['sessions']}), levels one after another "
                 "| judged by pool_bench below (its `new` against the number of idle sessions: "
                 "one daemon per level, interleaved rounds) |")
        for what, a, b in (
                ("round trip p50 at the most sessions within 10% of one session",
                 first["rtt_us"].get("p50"), last["rtt_us"].get("p50")),
                ("daemon CPU per execute at the most sessions within 10% of one session",
                 first["daemon_cpu_us"], last["daemon_cpu_us"])):
            ok = a and b is not None and b <= 1.1 * a
            L.append(f"| {what} | {change(a, b)} ({first['sessions']} → {last['sessions']}) "
                     f"| {'met' if ok else '**not met**'} |")
    cpu = first["daemon_cpu_us"]
    L.append(f"| daemon CPU ≤ 150 µs per trivial execute | {us(cpu)} (one session) "
             f"| {'met' if cpu is not None and cpu <= 150 else '**not met**'} |")
    tp = get(res, "tput", "cellblock", "per_s")
    if tp is not None:
        L.append(f"| ≥ 3,000 trivial executes/s across {get(res, 'tput', 'cellblock', 'sessions')} "
                 f"sessions | {tp:.0f}/s (section 4) | {'met' if tp >= 3000 else '**not met**'} |")
    L += ["", "One measured session answers `1+1` from the C client (section 2's method) while the "
          "other sessions sit idle: live interpreters, nothing imported, each with its own endpoint "
          "(four ZeroMQ sockets in the daemon's loop, one heartbeat socket in its thread) and "
          "channel. At each level the daemon answers 10 `new` requests (each new session is killed "
          "and gone, and 0.3 s left for its cgroups' removal, before the next, so the count "
          "stays put), then the round trip runs. Daemon CPU "
          "is all its threads' time from `/proc/PID/task/*/schedstat` over the run, divided by the "
          "executes; the session sockets are the daemon's own ZMTP (protocol/zmtp.c), which "
          "leaves libzmq's I/O thread next to nothing."]
    if sc.get("stopped"):
        L += ["", f"Stopped early {sc['stopped']}."]
    return "\n".join(L)


def render(res, args):
    m = res.get("machine", {})
    v = res.get("versions", {})
    cfg = res.get("config", {})
    cmd = "/usr/bin/python3 tests/bench/bench.py" + (
        " " + " ".join(shlex.quote(a) for a in res.get("args", [])) if res.get("args") else "")
    R = rows(res)
    L = ["# Benchmarks",
         "",
         "<!-- Generated by tests/bench/bench.py; do not edit by hand: rerun it. -->",
         "",
         f"cellblock against ipykernel 6.17 (started by jupyter_client's `KernelManager` with the "
         f"`python3` kernelspec), measured in the same run, for the targets of issue 5. "
         f"cellblock's sessions were born by: {get(res, 'start', 'born') or '?'} "
         f"(docs/ZYGOTE.md). Where a target is not met, the reason column says why. "
         f"Benchmarks are not tests: nothing here fails `make test`.",
         "",
         ("Reproduce (this run's command; `make bench` runs the same script without "
          "arguments; about " if res.get("args") else
          "Reproduce (what `make bench` runs; about ")
         + f"{res.get('wall_s', 0) / 60:.0f} minutes here):",
         "",
         "```sh",
         cmd,
         "```",
         "",
         "| run | |",
         "|---|---|",
         f"| date | {res.get('started')} |",
         f"| source | git {res.get('git')} |",
         f"| machine | {m.get('nproc')} CPUs, {m.get('cpu', '?')}, {m.get('ram_gb')} GB RAM"
         + (f", {m['virt']} guest" if m.get("virt") else "") + " |",
         f"| kernel | Linux {m.get('kernel')} ({m.get('arch')}) |",
         f"| cgroup `favordynmods` | {'on' if m.get('favordynmods') else 'off'} (docs/ZYGOTE.md: "
         f"off, each session start waits about 14 ms more for its move into its cgroup) |",
         f"| other load on the machine | load average {res.get('load_before')} before, "
         f"{res.get('load_after')} after; CPUs busy in the second before the run: "
         f"{100 * (res.get('busy_before') or 0):.0f}%, after: {100 * (res.get('busy_after') or 0):.0f}% "
         f"(work outside the benchmark shares the cores and inflates every figure, the tails most) |",
         f"| cellblockd links | {v.get('cellblockd reports') or '?'} |",
         f"| Python side (/usr/bin/python3) | Python {v.get('Python')}, IPython {v.get('IPython')}, "
         f"ipykernel {v.get('ipykernel')}, jupyter_client {v.get('jupyter_client')}, "
         f"pyzmq {v.get('pyzmq')} (libzmq {v.get('libzmq (pyzmq' + chr(39) + 's)')}), "
         f"numpy {v.get('numpy')}, pandas {v.get('pandas')}, matplotlib {v.get('matplotlib')} |",
         f"| settings | " + ", ".join(f"{k}={cfg[k]}" for k in cfg) + " |",
         ""]
    if res.get("notes"):
        L += ["Notes on this run:", ""] + [f"- {n}" for n in res["notes"]] + [""]
    for key, title in GROUPS:
        rs = [r for r in R if r[0] == key]
        L += [f"## {title}", ""]
        if not rs:
            err = (res.get("errors") or {}).get("density" if key == "tput" else key)
            L += [f"Not measured in this run{': ' + err if err else ''}.", ""]
            continue
        L += [table(rs), ""]
        if key in HOW:
            L += [HOW[key](res, cfg), ""]
    L += ["## 6. Cost against the number of idle sessions (issue 11: the daemon's own loop)", "",
          scale_section(res), ""]
    L += ["## Where the time of one execute goes", "", where_time_goes(res), "",
          "## Findings from this run", "", findings(res), ""]
    L += hotpath_section()
    return "\n".join(L)


HOTPATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hotpath.md")


def hotpath_section():
    """Section 7 comes from `make bench-hotpath` (tests/bench/hotpath.py),
    which compares daemon builds in one run of its own: its last figures
    and what they mean, kept across runs of this script."""
    if not os.path.exists(HOTPATH):
        return []
    with open(HOTPATH) as f:
        return ["## 7. The message hot path, build against build (issue 11)", "", f.read()]


def summary_table(res):
    R = rows(res)
    w = max((len(r[1]) for r in R), default=10)
    lines = [f"{'measure':<{w}}  {'cellblock':>12}  {'ipykernel':>12}  {'ratio':>7}  {'target':<22} verdict"]
    for _, m, a, b, r, t, v, _why in R:
        lines.append(f"{m:<{w}}  {a:>12}  {b:>12}  {r:>7}  {t:<22} {v.replace('**', '')}")
    return "\n".join(lines)
