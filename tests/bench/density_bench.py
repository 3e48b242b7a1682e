"""density_bench.py: PSS per idle session at 1,000 sessions, warm-pool members included (issue 17), against ipykernel's per kernel.

    /usr/bin/python3 tests/bench/density_bench.py [--sessions 1000] [--warm-pool 4]
                                                  [--no-imports] [--ipk-kernels 10]

One private daemon (warm-pool on, idle-timeout and periodic checkpoints
off so nothing hibernates, session caps lifted to 1,200). Sessions are
made in batches of 50 with `{"cmd":"new"}`, each batch then runs `1+1`
in every one of its sessions (`rtt tput -n 1`, the C client), until
--sessions exist, or MemAvailable would fall under 3 GB, or the time
budget passes. Then, 2 s later:

  - PSS of every session's whole process tree (its outer process, pid 1,
    the interpreter): benchlib.tree_memory over benchlib.children_map, as
    bench.py's section 3 does;
  - the same for every warm-pool member (root's `ping` lists their pids);
  - the daemon's VmRSS and PSS.

Then (unless --no-imports) `import numpy, pandas` in every session, batch
by batch while MemAvailable stays over 3 GB + 50 x 15 MB, and the same
figures again over the sessions that imported. ipykernel 6.17: --ipk-kernels
kernels, `1+1` then the same imports, PSS per kernel. Everything is
killed and waited for; the daemon stopped; its cgroups checked gone.
Writes tests/bench/.build/density-results.json and its section of
docs/BENCHMARKS.md (between the density_bench markers). Not a test.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib as B               # noqa: E402
import proclib                     # noqa: E402

BATCH = 50
RESERVE_KB = 3 << 20               # MemAvailable kept free
PER_SESSION_KB = 15 << 10          # a session's budget when planning a batch
IMPORTS = "import numpy, pandas"   # bench.py's IMPORTS_DENSITY


def pool_pids(d):
    return [m["pid"] for m in d.control({"cmd": "ping"}).get("pool", {}).get("list", [])
            if m.get("pid")]


def run_in(files, code):
    """code once in every session (one C client, all at once); errors."""
    data, _ = B.run_rtt(["tput", "-n", "1", "-w", "0", "-t", "300", "-c", code, *files],
                        timeout=900)
    return data["errors"]


def zygote_pss_mb(d):
    """The zygote's own PSS: what the sessions share with it, split."""
    pid = d.control({"cmd": "ping"}).get("zygote", {}).get("pid")
    return B.smaps_rollup(pid).get("Pss", 0) / 1024 if pid else None


def snapshot(d, pids):
    """PSS (MB) per session tree over pids, the pool's members, the daemon."""
    kids = B.children_map()
    per = [m for m in (B.tree_memory(p, kids) for p in pids) if m["procs"]]
    pool = [m for m in (B.tree_memory(p, kids) for p in pool_pids(d)) if m["procs"]]
    pss = [m["Pss"] / 1024 for m in per]
    ppss = [m["Pss"] / 1024 for m in pool]
    return {"sessions": len(per), "pool_members": len(pool),
            "pss_mb": B.summary(pss), "pool_pss_mb": B.summary(ppss),
            "all_pss_mb": B.summary(pss + ppss),
            "pss_anon_mb": B.summary([m["Pss_Anon"] / 1024 for m in per]),
            "rss_mb": B.summary([m["Rss"] / 1024 for m in per]),
            "pss_total_mb": sum(pss) + sum(ppss),
            "procs_per_session": B.pct([m["procs"] for m in per], 50),
            "daemon_rss_mb": (B.status_kb(d.pid, "VmRSS") or 0) / 1024,
            "daemon_pss_mb": B.tree_memory(d.pid, {})["Pss"] / 1024,
            "zygote_pss_mb": zygote_pss_mb(d),
            "mem_available_mb": B.mem_available_kb() // 1024}


def fill(d, a, out):
    """Sessions up to a.sessions, each having run 1+1; the made ones."""
    made, t0 = [], time.monotonic()
    while len(made) < a.sessions:
        b = min(BATCH, a.sessions - len(made))
        if B.mem_available_kb() - b * PER_SESSION_KB < RESERVE_KB:
            out["stopped"] = "at %d sessions: MemAvailable %d MB, keeping 3 GB free" % (
                len(made), B.mem_available_kb() // 1024)
            break
        if time.monotonic() - t0 > a.budget:
            out["stopped"] = "at %d sessions: the time budget (%d s)" % (len(made), a.budget)
            break
        batch = []
        try:
            for _ in range(b):
                batch.append(d.new())
        except Exception as e:
            out["stopped"] = "`new` failed at session %d: %s" % (len(made) + len(batch) + 1, e)
        made.extend(batch)
        if batch and run_in([s["connection_file"] for s in batch], "1+1"):
            out["stopped"] = "`1+1` failed in sessions %d..%d" % (len(made) - len(batch) + 1,
                                                                len(made))
        B.log("density", "%d sessions, MemAvailable %d MB" % (len(made),
                                                               B.mem_available_kb() // 1024))
        if "stopped" in out or not d.alive():
            break
    out["create_s"] = time.monotonic() - t0
    return made


def imports(d, made, out):
    """IMPORTS in the sessions, batch by batch while memory lasts."""
    done = []
    for i in range(0, len(made), BATCH):
        batch = made[i:i + BATCH]
        if B.mem_available_kb() - len(batch) * PER_SESSION_KB < RESERVE_KB:
            out["imports_stopped"] = "after %d sessions: MemAvailable %d MB" % (
                len(done), B.mem_available_kb() // 1024)
            break
        if run_in([s["connection_file"] for s in batch], IMPORTS):
            out["imports_stopped"] = "`%s` failed in a batch after %d" % (IMPORTS, len(done))
            break
        done.extend(batch)
        if len(done) % 200 == 0:
            B.log("density", "%d sessions imported numpy, pandas" % len(done))
    return done


def kill_all(d, made):
    for s in made:
        try:
            d.control({"cmd": "kill", "name": s["name"]})
        except Exception:
            pass
    deadline = time.monotonic() + 120
    while any(B.pid_alive(s["pid"]) for s in made) and time.monotonic() < deadline:
        time.sleep(0.1)
    return sum(B.pid_alive(s["pid"]) for s in made)


def ipykernel_density(work, n, do_imports):
    """PSS per ipykernel (its tree) after 1+1, then after the imports."""
    ipk = B.IPyKernels(work)
    kms, out = [], {}
    try:
        for _ in range(n):
            km = ipk.start()
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            kc.stop_channels()
            kms.append(km)
        files = [km.connection_file for km in kms]
        pids = [B.IPyKernels.pid(km) for km in kms]
        for label, code in [("trivial", "1+1")] + ([("imports", IMPORTS)] if do_imports else []):
            errors = run_in(files, code)
            time.sleep(2.0)
            kids = B.children_map()
            pss = [m["Pss"] / 1024 for m in (B.tree_memory(p, kids) for p in pids) if m["procs"]]
            out[label] = {"kernels": len(pss), "errors": errors, "pss_mb": B.summary(pss)}
            B.log("density", "ipykernel %s: PSS p50 %.1f MB over %d" % (
                label, B.pct(pss, 50), len(pss)))
    finally:
        ipk.shutdown_all()
    return out


def measure(a):
    def run(d, work):
        B.build_rtt()
        parents = proclib.cgroup_parents(d)
        out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "git": B.git_describe(), "load_before": B.loadavg(),
               "warm_pool": a.warm_pool, "wanted": a.sessions,
               "mem_available_mb_before": B.mem_available_kb() // 1024,
               "daemon_rss_mb_empty": (B.status_kb(d.pid, "VmRSS") or 0) / 1024}
        made = []
        try:
            made = fill(d, a, out)
            out["made"] = len(made)
            wait_pool(d, a.warm_pool)
            time.sleep(2.0)                  # the last cells' garbage settles
            out["trivial"] = snapshot(d, [s["pid"] for s in made])
            B.log("density", "trivial: PSS p50 %.1f MB over %d sessions + %d pool members" % (
                out["trivial"]["pss_mb"].get("p50") or 0, out["trivial"]["sessions"],
                out["trivial"]["pool_members"]))
            if a.imports and d.alive():
                done = imports(d, made, out)
                out["imported"] = len(done)
                time.sleep(2.0)
                out["imports"] = snapshot(d, [s["pid"] for s in done])
                B.log("density", "imports: PSS p50 %.1f MB over %d sessions" % (
                    out["imports"]["pss_mb"].get("p50") or 0, out["imports"]["sessions"]))
            out["daemon_alive"] = d.alive()
        finally:
            out["left_alive"] = kill_all(d, made)
            d.stop()
        # A clean stop removes the daemon's cgroups; what is left (empty)
        # is reported and removed here.
        out["cgroups_left"] = [g for g in sorted(parents) if os.path.isdir(g)]
        for g in out["cgroups_left"]:
            for sub in sorted((os.path.join(r, x) for r, ds, _ in os.walk(g) for x in ds),
                              key=len, reverse=True):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
            try:
                os.rmdir(g)
            except OSError:
                pass
        out["load_after"] = B.loadavg()
        if a.ipk_kernels:
            out["ipykernel"] = ipykernel_density(work, a.ipk_kernels, a.imports)
        return out
    return run


def wait_pool(d, want, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = d.control({"cmd": "ping"}).get("pool", {})
        if not p.get("on") or p.get("ready", 0) >= min(want, p.get("size", 0)):
            return p
        time.sleep(0.1)
    return None


def report(r):
    t = r["trivial"]
    lines = ["## Density at 1,000 idle sessions, warm-pool members included (issue 17)", "",
             "From `tests/bench/density_bench.py` (run by `make bench`), %s, git %s, load average "
             "%s before, %s after; MemAvailable %d MB before. One daemon with `warm-pool = %d`, "
             "idle-timeout and periodic checkpoints off; %d of %d sessions made (batches of %d "
             "with control `new`, then `1+1` in each through the C client) in %.0f s%s." % (
                 r["date"], r["git"], r["load_before"], r["load_after"],
                 r["mem_available_mb_before"], r["warm_pool"], r["made"], r["wanted"], BATCH,
                 r["create_s"], ("; stopped " + r["stopped"]) if r.get("stopped") else ""), "",
             "| PSS per session (its whole process tree) | sessions | p50 | p99 | max | "
             "≤ 15 MB | total |", "|---|---|---|---|---|---|---|"]

    def row(label, n, s, total=None, judged=True):
        if not s.get("n"):
            return "| %s | 0 | — | — | — | — | — |" % label
        return "| %s | %d | %.1f MB | %.1f MB | %.1f MB | %s | %s |" % (
            label, n, s["p50"], s["p99"], s["max"],
            "—" if not judged else "met" if s["max"] <= 15 else
            ("p99 met, max **not**" if s["p99"] <= 15 else "**not met**"),
            "%.0f MB" % total if total is not None else "")
    for key, what in (("trivial", "after `1+1`"), ("imports", "after `import numpy, pandas`")):
        s = r.get(key)
        if not s:
            continue
        lines += [row("sessions %s" % what, s["sessions"], s["pss_mb"]),
                  row("warm-pool members (no user code)", s["pool_members"], s["pool_pss_mb"]),
                  row("sessions and pool members together", s["sessions"] + s["pool_members"],
                      s["all_pss_mb"], s["pss_total_mb"])]
    ik = r.get("ipykernel", {})
    for key, what in (("trivial", "after `1+1`"), ("imports", "after `import numpy, pandas`")):
        if key in ik:
            lines.append(row("ipykernel 6.17 per kernel %s (context)" % what,
                             ik[key]["kernels"], ik[key]["pss_mb"], judged=False))
    lines += ["", "Daemon: VmRSS %.1f MB with no session, %.1f MB with %d sessions (%.0f kB more "
              "per session); its own PSS %.1f MB." % (
                  r["daemon_rss_mb_empty"], t["daemon_rss_mb"], t["sessions"],
                  1024 * (t["daemon_rss_mb"] - r["daemon_rss_mb_empty"]) / max(1, t["sessions"]),
                  t["daemon_pss_mb"])]
    if t.get("zygote_pss_mb") is not None:
        lines += ["", "The zygote (the preloaded interpreter every session and member is "
                  "cloned from) holds %.1f MB PSS itself: its share of the pages it shares with "
                  "them. What the host holds for the sessions: %.0f MB PSS (sessions, members, "
                  "zygote, daemon), %.1f MB per session; MemAvailable fell by %d MB from before "
                  "the first session to the measurement (%.1f MB per session: PSS plus the "
                  "kernel's own memory per session, page tables, cgroups, sockets, and whatever "
                  "else ran on the shared machine meanwhile)." % (
                      t["zygote_pss_mb"],
                      t["pss_total_mb"] + t["zygote_pss_mb"] + t["daemon_pss_mb"],
                      (t["pss_total_mb"] + t["zygote_pss_mb"] + t["daemon_pss_mb"]) /
                      max(1, t["sessions"]),
                      r["mem_available_mb_before"] - t["mem_available_mb"],
                      (r["mem_available_mb_before"] - t["mem_available_mb"]) /
                      max(1, t["sessions"]))]
    if "imports" in r:
        lines += ["", "`import numpy, pandas` ran in %d of the %d sessions%s (the zygote has them "
                  "preloaded: the import binds modules whose pages the sessions share with the "
                  "zygote)." % (
                      r["imported"], r["made"],
                      ("; stopped " + r["imports_stopped"]) if r.get("imports_stopped") else "")]
    lines += ["", "PSS: `/proc/PID/smaps_rollup` summed over each session's process tree "
              "(%s processes per session: pid 1 `cellblock-init` and "
              "the interpreter), as section 3 measures it: pages shared with the zygote and the other "
              "sessions are split between them, so the figure falls as sessions are added and "
              "the total is what the host really holds. Pool members are found by root's `ping` "
              "(their pids) and measured the same way. Everything was killed and waited for "
              "afterwards (%d processes left alive), the daemon stopped, its cgroups %s." % (
                  t["procs_per_session"], r["left_alive"],
                  "removed" if not r.get("cgroups_left") else
                  "**left behind**: " + ", ".join(r["cgroups_left"]))]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--warm-pool", type=int, default=4)
    p.add_argument("--no-imports", dest="imports", action="store_false")
    p.add_argument("--ipk-kernels", type=int, default=10)
    p.add_argument("--budget", type=int, default=1200, help="seconds for making sessions")
    p.add_argument("--out", default=os.path.join(B.ROOT, "docs", "BENCHMARKS.md"))
    p.add_argument("--render", action="store_true",
                   help="write the section again from the last run's results")
    a = p.parse_args()
    if a.render:
        with open(os.path.join(B.BUILD, "density-results.json")) as f:
            B.write_section(a.out, "density_bench", report(json.load(f)))
        return 0
    work_conf = os.path.join(B.BUILD, "density.conf")
    os.makedirs(B.BUILD, exist_ok=True)
    with open(work_conf, "w") as f:
        n = a.sessions + 200
        f.write("max-sessions = %d\nmax-sessions-per-user = %d\nidle-timeout = 0\n"
                "checkpoint-interval = 0\nwarm-pool = %d\n" % (n, n, a.warm_pool))
    return B.run_section("density", a.out, ["--config", work_conf, "--http-listen", "127.0.0.1:0"],
                         measure(a), report)

if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)
