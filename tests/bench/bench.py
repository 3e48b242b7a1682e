#!/usr/bin/python3
"""cellblock benchmark harness: cellblock against ipykernel, in one run.

    /usr/bin/python3 tests/bench/bench.py            # what `make bench` runs
    /usr/bin/python3 tests/bench/bench.py --quick    # ~1 minute smoke run
    /usr/bin/python3 tests/bench/bench.py --help

It starts its own cellblockd (private state directory, loopback only; a second
one with a short idle timeout for the hibernate/resume section) and its own
ipykernels (jupyter_client's KernelManager, python3 kernelspec), measures the
targets of issue 5, writes docs/BENCHMARKS.md (see --out), and stops and
removes everything it started, also on Ctrl-C or failure. Benchmarks are not
tests: the exit status is 0 whatever the figures; non-zero only when the
harness itself could not run.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib as B          # noqa: E402
import report                 # noqa: E402

IMPORTS_START = "import numpy, pandas, matplotlib"
BIG_ROWS, BIG_COLS = 1310720, 10         # float64: 104,857,600 bytes = 100 MiB
BIG_DF = ("import numpy as np, pandas as pd; "
          f"df = pd.DataFrame(np.random.default_rng(0).random(({BIG_ROWS}, {BIG_COLS})))")
LIFECYCLE_IDLE = 2                       # idle-timeout of the lifecycle daemon, seconds
IMPORTS_DENSITY = "import numpy, pandas"


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench.py", description="cellblock vs ipykernel benchmark (issue 5)")
    p.add_argument("--quick", action="store_true",
                   help="a ~1 minute smoke run with small counts; writes "
                        "tests/bench/.build/BENCHMARKS-quick.md unless --out")
    p.add_argument("--out", help="report path (default docs/BENCHMARKS.md)")
    p.add_argument("--start-n", type=int, help="cellblock starts per variant (30)")
    p.add_argument("--ipk-start-n", type=int, help="ipykernel starts per variant (20)")
    p.add_argument("--rtt-n", type=int, help="timed executes for the C client (2000)")
    p.add_argument("--py-rtt-n", type=int, help="timed executes through jupyter_client (500)")
    p.add_argument("--density-k", type=int,
                   help="concurrent idle sessions with numpy+pandas (50; up to 1000)")
    p.add_argument("--ipk-kernels", type=int,
                   help="ipykernels for density and throughput (10)")
    p.add_argument("--tput-sessions", type=int, help="sessions driven at once (50)")
    p.add_argument("--tput-count", type=int, help="executes per session (200)")
    p.add_argument("--resume-n", type=int, help="resumes of a hibernated small session (8)")
    p.add_argument("--ckpt-n", type=int,
                   help="checkpoints and restores of a 100 MB DataFrame session (3)")
    p.add_argument("--only", default="start,rtt,density,tput,lifecycle,scale",
                   help="comma list of sections: start,rtt,density,tput,lifecycle,scale "
                        "(density and tput share sessions)")
    p.add_argument("--scale-levels",
                   help="idle sessions for the scale section, comma list (1,100,1000)")
    p.add_argument("--no-ipykernel", action="store_true", help="skip every ipykernel run")
    p.add_argument("--profile", action="store_true",
                   help="also profile the daemon's execute path (perf stat, perf "
                        "record, strace -c) and write what was found")
    p.add_argument("--budget", type=float,
                   help="seconds after which remaining loops stop early (540)")
    a = p.parse_args(argv)
    full = dict(start_n=30, ipk_start_n=20, rtt_n=2000, py_rtt_n=500, density_k=50,
                ipk_kernels=10, tput_sessions=50, tput_count=200, resume_n=8, ckpt_n=3,
                budget=540)
    quick = dict(start_n=5, ipk_start_n=4, rtt_n=300, py_rtt_n=100, density_k=10,
                 ipk_kernels=3, tput_sessions=10, tput_count=50, resume_n=3, ckpt_n=1,
                 budget=90)
    full["scale_levels"] = "1,100,1000"
    quick["scale_levels"] = "1,20,50"
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.out is None:
        a.out = (os.path.join(B.BUILD, "BENCHMARKS-quick.md") if a.quick
                 else os.path.join(B.ROOT, "docs", "BENCHMARKS.md"))
    if not 1 <= a.density_k <= 1000:
        p.error("--density-k must be 1..1000")
    a.sections = set(s.strip() for s in a.only.split(",") if s.strip())
    bad = a.sections - {"start", "rtt", "density", "tput", "lifecycle", "scale"}
    if bad:
        p.error("unknown section(s): " + ",".join(sorted(bad)))
    return a


class Bench:
    def __init__(self, args):
        self.a = args
        self.work = tempfile.mkdtemp(prefix="cb-bench-")
        self.daemon = None
        self.extra_daemons = []  # the lifecycle section's
        self.ipk = None
        self.clients = []       # jupyter_client clients to stop
        self.res = {"notes": [], "errors": {}}

    # -- time --
    def elapsed(self):
        return time.monotonic() - B.T_START

    def over_budget(self):
        return self.elapsed() > self.a.budget

    def budget_note(self, what, done, wanted):
        if done < wanted:
            self.res["notes"].append(
                f"{what}: stopped after {done} of {wanted} (time budget {self.a.budget:.0f} s)")

    # -- setup / teardown --
    def setup(self):
        for b in (B.CELLBLOCKD, os.path.join(B.BIN, "cellblock-shim")):
            if not os.path.exists(b):
                B.log("setup", "bin/ is not built: running make all")
                subprocess.run(["make", "-C", B.ROOT, "all"], check=True, timeout=600)
                break
        B.build_rtt()
        # The density target is 1,000 sessions of one user: lift the default
        # per-user cap (200) for this daemon; everything else is default.
        conf = os.path.join(self.work, "cellblockd.conf")
        with open(conf, "w") as f:
            n = max(1000, self.a.density_k) + 100
            f.write(f"max-sessions = {n}\nmax-sessions-per-user = {n}\n")
        self.daemon = B.Daemon(self.work, ["--config", conf])
        B.log("setup", f"cellblockd pid {self.daemon.pid}, state {self.daemon.state}")
        if not self.a.no_ipykernel:
            self.ipk = B.IPyKernels(self.work)
        self.res["daemon_rss_kb_empty"] = B.status_kb(self.daemon.pid, "VmRSS")
        self.res["load_before"] = B.loadavg()
        self.res["busy_before"], hogs = B.machine_busy(2.0)
        if self.res["busy_before"] > 0.25:
            who = "; ".join(f"pid {p} {pc:.0f}% of a CPU `{cmd.replace(chr(96), chr(39))}`"
                            for p, pc, cmd in hogs)
            msg = (f"the machine was {100 * self.res['busy_before']:.0f}% busy before the run "
                   f"started (not this benchmark: {who or 'many small processes'}); every figure "
                   f"below is inflated by that competition for the {os.cpu_count()} CPUs, the "
                   f"tails and the throughput most. Rerun on a quiet machine for clean figures.")
            self.res["notes"].append(msg)
            B.log("setup", "warning: " + msg)

    def teardown(self):
        for kc in self.clients:
            try:
                kc.stop_channels()
            except Exception:
                pass
        if self.ipk is not None:
            self.ipk.shutdown_all()
        for d in self.extra_daemons:
            d.stop()
        if self.daemon is not None:
            try:
                os.makedirs(B.BUILD, exist_ok=True)
                shutil.copy(self.daemon.logpath, os.path.join(B.BUILD, "last-cellblockd.log"))
            except OSError:
                pass
            self.daemon.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def client(self, path):
        kc = B.client_for(path)
        self.clients.append(kc)
        return kc

    def drop_client(self, kc):
        kc.stop_channels()
        if kc in self.clients:
            self.clients.remove(kc)

    def new_ready(self, **kw):
        """A cellblock session that has answered one execute."""
        s = self.daemon.new(**kw)
        kc = self.client(s["connection_file"])
        r = B.execute(kc, "1+1", timeout=120)
        if r["content"]["status"] != "ok":
            raise RuntimeError(f"session {s['name']} failed 1+1: {r['content']}")
        return s, kc

    # ---- 1. start -----------------------------------------------------------
    def start_cellblock(self, code, n, label):
        samples, new_ms, names, born = [], [], [], set()
        warm = 1
        for i in range(warm + n):
            if i > warm and self.over_budget():
                break
            t0 = time.perf_counter()
            s = self.daemon.new()
            t_new = time.perf_counter()
            kc = self.client(s["connection_file"])
            msg_id = kc.execute(code)
            reply = B.wait_reply(kc, msg_id, 120)
            t1 = time.perf_counter()
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"{code!r} failed in cellblock: {reply['content'].get('evalue')}")
            born.update(x.get("born", "?") for x in self.daemon.ls() if x["name"] == s["name"])
            self.drop_client(kc)
            self.daemon.kill(s["name"], wait_pid=s.get("pid"))
            if i >= warm:
                samples.append((t1 - t0) * 1000)
                new_ms.append((t_new - t0) * 1000)
                names.append(s["name"])
                B.log("start", f"cellblock {label} {i}/{n}  {samples[-1]:.0f} ms")
        self.budget_note(f"cellblock start ({label})", len(samples), n)
        return {"ms": B.summary(samples), "control_new_ms": B.summary(new_ms),
                "breakdown": self.start_breakdown(names), "samples": samples,
                "born": sorted(born)}

    def start_breakdown(self, names):
        """Per-phase medians from the daemon's own log lines."""
        ts = {}
        pat = re.compile(r"^(\S+Z) info (\w+): (\S+): (.*)$")
        for line in self.daemon.log_text().splitlines():
            m = pat.match(line)
            if not m or m.group(3) not in names:
                continue
            t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000
            d = ts.setdefault(m.group(3), {})
            msg = m.group(4)
            if msg.startswith("created"):
                d.setdefault("created", t)
            elif "started as pid" in msg:
                d.setdefault("spawned", t)
            elif " contained (uid" in msg:
                d.setdefault("contained", t)
            elif "interpreter ready" in msg:
                d.setdefault("ready", t)
            elif "request done" in msg:
                d.setdefault("done", t)
        phases = {"created_to_spawned": ("created", "spawned"),
                  "spawned_to_ready": ("spawned", "ready"),
                  "spawned_to_contained": ("spawned", "contained"),
                  "contained_to_ready": ("contained", "ready"),
                  "ready_to_first_reply": ("ready", "done")}
        out = {}
        for k, (a, b) in phases.items():
            v = [d[b] - d[a] for d in ts.values() if a in d and b in d]
            out[k] = B.pct(v, 50)
        return out

    def start_ipykernel(self, code, n, label):
        samples = []
        warm = 1
        for i in range(warm + n):
            if i > warm and self.over_budget():
                break
            t0 = time.perf_counter()
            km = self.ipk.start()
            kc = km.client()
            kc.start_channels()
            msg_id = kc.execute(code)
            reply = B.wait_reply(kc, msg_id, 120)
            t1 = time.perf_counter()
            kc.stop_channels()
            self.ipk.shutdown(km)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"{code!r} failed in ipykernel: {reply['content'].get('evalue')}")
            if i >= warm:
                samples.append((t1 - t0) * 1000)
                B.log("start", f"ipykernel {label} {i}/{n}  {samples[-1]:.0f} ms")
        self.budget_note(f"ipykernel start ({label})", len(samples), n)
        return {"ms": B.summary(samples), "samples": samples}

    def section_start(self):
        r = self.res.setdefault("start", {})
        for label, code in (("plain", "1+1"), ("imports", IMPORTS_START)):
            r[f"cellblock_{label}"] = self.start_cellblock(code, self.a.start_n, label)
            r["born"] = " and ".join(sorted(set(r.get("born", "").split(" and ")) - {""}
                                            | set(r[f"cellblock_{label}"]["born"])))
            if self.ipk:
                r[f"ipykernel_{label}"] = self.start_ipykernel(code, self.a.ipk_start_n, label)

    # ---- 2. round trip ----------------------------------------------------------
    def py_rtt(self, kc, n, label):
        for _ in range(20):
            B.execute(kc, "1+1")
        samples = []
        for i in range(n):
            if i and i % 100 == 0 and self.over_budget():
                break
            t0 = time.perf_counter()
            B.execute(kc, "1+1", timeout=30)
            samples.append((time.perf_counter() - t0) * 1e6)
        B.log("rtt", f"{label} jupyter_client {len(samples)} executes p50 {B.pct(samples, 50):.0f} µs")
        return B.summary(samples)

    def c_rtt(self, conn_file, pids_fn, label):
        n, w = self.a.rtt_n, max(20, self.a.rtt_n // 20)
        d0 = B.daemon_threads_ns(self.daemon.pid)
        k0 = B.cpu_ns(pids_fn())
        data, client_cpu = B.run_rtt(["conn", "-n", str(n), "-w", str(w), conn_file],
                                     timeout=120 + n * 0.05)
        d1 = B.daemon_threads_ns(self.daemon.pid)
        k1 = B.cpu_ns(pids_fn())
        out = {"us": B.summary(data["rtt_us"]), "reply_us": B.summary(data["reply_us"]),
               "errors": data["errors"], "samples_us": data["rtt_us"],
               "kernel_cpu_us": (k1 - k0) / 1e3 / (n + w),
               "client_cpu_us": client_cpu * 1e6 / (n + w)}
        if label == "cellblock":
            out["daemon_cpu_us"] = sum(d1.values()) - sum(d0.values())
            out["daemon_cpu_us"] /= 1e3 * (n + w)
            out["daemon_threads_us"] = {k: (d1[k] - d0[k]) / 1e3 / (n + w) for k in d0}
        B.log("rtt", f"{label} C client {n} executes p50 {out['us']['p50']:.0f} µs "
                     f"p99 {out['us']['p99']:.0f} µs")
        return out

    def section_rtt(self):
        # A jupyter_client client is never connected while the C client
        # runs: its SUB socket would queue every iopub message of the run
        # and the next Python loop would first have to wade through them.
        r = self.res.setdefault("rtt", {})
        s, kc = self.new_ready(name="bench-rtt")
        self.drop_client(kc)
        pids = lambda: B.process_tree(s["pid"])     # noqa: E731
        r["cellblock_c"] = self.c_rtt(s["connection_file"], pids, "cellblock")
        kc = self.client(s["connection_file"])
        kc.wait_for_ready(timeout=60)
        r["cellblock_py"] = self.py_rtt(kc, self.a.py_rtt_n, "cellblock")
        self.drop_client(kc)
        self.daemon.kill(s["name"], wait_pid=s["pid"])

        n, w = self.a.rtt_n, max(20, self.a.rtt_n // 20)
        data, _ = B.run_rtt(["direct", "-n", str(n), "-w", str(w), "-r", B.RUNNER],
                            timeout=120 + n * 0.05)
        r["direct_c"] = {"us": B.summary(data["rtt_us"]), "errors": data["errors"],
                         "samples_us": data["rtt_us"],
                         "iopub_per_execute": data["iopub_per_execute"]}
        B.log("rtt", f"runner direct (no daemon) {n} executes p50 {r['direct_c']['us']['p50']:.0f} µs")

        if self.ipk:
            km = self.ipk.start()
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            kc.stop_channels()
            kpid = self.ipk.pid(km)
            r["ipykernel_c"] = self.c_rtt(km.connection_file, lambda: B.process_tree(kpid),
                                          "ipykernel")
            kc = km.client()
            kc.start_channels()
            self.clients.append(kc)
            kc.wait_for_ready(timeout=60)
            r["ipykernel_py"] = self.py_rtt(kc, self.a.py_rtt_n, "ipykernel")
            self.drop_client(kc)
            self.ipk.shutdown(km)

    # ---- 3 + 4. density and throughput ----------------------------------------------
    def tput(self, conn_files, label, pids_fn):
        n, w = self.a.tput_count, max(5, self.a.tput_count // 10)
        d0, k0 = B.daemon_threads_ns(self.daemon.pid), B.cpu_ns(pids_fn())
        data, client_cpu = B.run_rtt(["tput", "-n", str(n), "-w", str(w), "-t", "60", *conn_files],
                                     timeout=300)
        d1, k1 = B.daemon_threads_ns(self.daemon.pid), B.cpu_ns(pids_fn())
        total = len(data["rtt_us"])
        el = data["elapsed_s"]
        out = {"sessions": len(conn_files), "per_session": n, "executes": total,
               "elapsed_s": el, "per_s": total / el if el else None,
               "errors": data["errors"], "latency_us": B.summary(data["rtt_us"]),
               "kernel_cpu_us": (k1 - k0) / 1e3 / ((n + w) * len(conn_files)),
               "client_cpu_us": client_cpu * 1e6 / ((n + w) * len(conn_files))}
        if label == "cellblock":
            per = (n + w) * len(conn_files)
            out["daemon_cpu_us"] = (sum(d1.values()) - sum(d0.values())) / 1e3 / per
            out["daemon_threads_us"] = {k: (d1[k] - d0[k]) / 1e3 / per for k in d0}
        B.log("tput", f"{label}: {total} executes over {len(conn_files)} sessions in "
                      f"{el:.2f} s = {out['per_s']:.0f}/s")
        return out

    def section_density(self, do_density, do_tput):
        a = self.a
        k = a.density_k if do_density else min(a.density_k, a.tput_sessions)
        want_tput = min(a.tput_sessions, k) if do_tput else 0
        if do_tput and k < a.tput_sessions:
            self.res["notes"].append(
                f"throughput: {k} sessions (the density run's), not {a.tput_sessions}")
        sessions = []
        snapshot = None         # memory at the last multiple of 50 sessions
        new_ms = []             # control `new` latency, in creation order
        stop_reason = None
        batch = 10
        reserve_kb = 2 * 1024 * 1024
        t_begin = time.monotonic()
        while len(sessions) < k:
            if self.over_budget():
                stop_reason = f"time budget ({a.budget:.0f} s)"
                break
            b = min(batch, k - len(sessions))
            if B.mem_available_kb() - b * 200 * 1024 < reserve_kb:
                stop_reason = (f"memory: MemAvailable {B.mem_available_kb() // 1024} MB, "
                               f"keeping 2 GB free")
                break
            made = []
            try:
                for _ in range(b):
                    t0 = time.perf_counter()
                    made.append(self.daemon.new())
                    new_ms.append((time.perf_counter() - t0) * 1000)
            except Exception as e:
                stop_reason = f"`new` failed at session {len(sessions) + len(made) + 1}: {e}"
            if made and self.daemon.alive():
                try:
                    data, _ = B.run_rtt(["tput", "-n", "1", "-w", "0", "-t", "300",
                                         "-c", IMPORTS_DENSITY,
                                         *[s["connection_file"] for s in made]], timeout=900)
                    if data["errors"]:
                        stop_reason = f"{data['errors']} sessions failed `{IMPORTS_DENSITY}`"
                    else:
                        sessions.extend(made)
                except Exception as e:
                    stop_reason = stop_reason or f"importing in sessions {len(sessions) + 1}..{len(sessions) + len(made)}: {e}"
            if not self.daemon.alive():
                last = [l for l in self.daemon.log_text().splitlines() if l.strip()][-1:]
                stop_reason = (f"cellblockd died (exit status {self.daemon.proc.returncode}) while "
                               f"{len(sessions) + len(made)} sessions existed; its last log line: "
                               f"\"{last[0].strip().replace('`', chr(39)) if last else ''}\"")
                sessions.extend(made)
                B.log("density", stop_reason)
                break
            B.log("density", f"cellblock {len(sessions)}/{k} sessions with numpy+pandas, "
                             f"MemAvailable {B.mem_available_kb() // 1024} MB")
            if k > 50 and len(sessions) % 50 == 0 and not stop_reason:
                # Kept in case the daemon does not survive the next batches.
                snapshot = self.density_snapshot(sessions)
            if stop_reason:
                break
            if want_tput and len(sessions) == want_tput and "tput" not in self.res:
                self.res["tput"] = {"cellblock": self.tput(
                    [s["connection_file"] for s in sessions], "cellblock",
                    lambda: [p for s in sessions for p in B.process_tree(s["pid"])])}
        create_s = time.monotonic() - t_begin
        if want_tput and "tput" not in self.res and sessions and self.daemon.alive():
            self.res["tput"] = {"cellblock": self.tput(
                [s["connection_file"] for s in sessions[:want_tput]], "cellblock",
                lambda: [p for s in sessions for p in B.process_tree(s["pid"])])}
        if do_density:
            d = {"wanted": k, "sessions": len(sessions), "stop_reason": stop_reason,
                 "create_s": create_s,
                 "new_ms_first10": B.summary(new_ms[:10]), "new_ms_last10": B.summary(new_ms[-10:])}
            if self.daemon.alive():
                time.sleep(1.0)      # let the last imports' garbage settle
                d.update(self.density_snapshot(sessions))
            else:
                d["daemon_died"] = True
                d["last_snapshot"] = snapshot
            self.res["density"] = {"cellblock": d}
            if "daemon_rss_mb" in d:
                B.log("density", f"cellblock: daemon RSS {d['daemon_rss_mb']:.1f} MB, per-session "
                                 f"PSS p50 {d['pss_mb'].get('p50') or 0:.1f} MB over {d['measured']} sessions")
        # End them all at once, then wait for the processes (bounded).
        for s in sessions:
            try:
                self.daemon.control({"cmd": "kill", "name": s["name"]})
            except Exception:
                pass
        deadline = time.monotonic() + 60
        while any(B.pid_alive(s["pid"]) for s in sessions) and time.monotonic() < deadline:
            time.sleep(0.05)

        if self.ipk:
            self.ipk_density_tput(do_density, do_tput)

    def density_snapshot(self, sessions):
        kids = B.children_map()
        per = [B.tree_memory(s["pid"], kids) for s in sessions]
        per = [m for m in per if m["procs"]]
        pss = [m["Pss"] / 1024 for m in per]
        dm = B.tree_memory(self.daemon.pid, {})      # the daemon alone
        return {
            "measured": len(per),
            "daemon_rss_mb": (B.status_kb(self.daemon.pid, "VmRSS") or 0) / 1024,
            "daemon_pss_mb": dm["Pss"] / 1024,
            "daemon_rss_mb_empty": (self.res.get("daemon_rss_kb_empty") or 0) / 1024,
            "pss_mb": B.summary(pss),
            "pss_anon_mb": B.summary([m["Pss_Anon"] / 1024 for m in per]),
            "rss_mb": B.summary([m["Rss"] / 1024 for m in per]),
            "pss_total_mb": sum(pss),
            "procs_per_session": B.pct([m["procs"] for m in per], 50)}

    def ipk_density_tput(self, do_density, do_tput):
        m = self.a.ipk_kernels
        kms = []
        for i in range(m):
            if self.over_budget() and i >= 2:
                self.budget_note("ipykernel density/throughput kernels", i, m)
                break
            km = self.ipk.start()
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            kc.stop_channels()
            kms.append(km)
            B.log("density", f"ipykernel {i + 1}/{m} kernels started")
        files = [km.connection_file for km in kms]
        data, _ = B.run_rtt(["tput", "-n", "1", "-w", "0", "-t", "300", "-c", IMPORTS_DENSITY,
                             *files], timeout=900)
        pids = [self.ipk.pid(km) for km in kms]
        if do_density:
            time.sleep(1.0)
            kids = B.children_map()
            per = [B.tree_memory(p, kids) for p in pids]
            pss = [x["Pss"] / 1024 for x in per if x["procs"]]
            self.res["density"]["ipykernel"] = {
                "sessions": len(pss), "import_errors": data["errors"],
                "pss_mb": B.summary(pss),
                "pss_anon_mb": B.summary([x["Pss_Anon"] / 1024 for x in per if x["procs"]]),
                "rss_mb": B.summary([x["Rss"] / 1024 for x in per if x["procs"]])}
            B.log("density", f"ipykernel: per-kernel PSS p50 {B.pct(pss, 50):.1f} MB over {len(pss)} kernels")
        if do_tput:
            self.res.setdefault("tput", {})["ipykernel"] = self.tput(
                files, "ipykernel", lambda: [p for k in pids for p in B.process_tree(k)])
        for km in kms:
            self.ipk.shutdown(km)

    # ---- 6. cost against the number of idle sessions (issue 11) -------------------
    SCALE_NEW_N = 10            # timed `new`s per level, each killed before the next

    def scale_fill(self, idle, want):
        """Add idle sessions (plain interpreters, nothing imported) until
        want exist besides the measured one; batches wait until idle."""
        while len(idle) < want:
            if B.mem_available_kb() < 3 * 1024 * 1024:
                return (f"memory: MemAvailable {B.mem_available_kb() // 1024} MB, "
                        f"keeping 3 GB free")
            batch = [self.daemon.new() for _ in range(min(50, want - len(idle)))]
            idle.extend(batch)
            names = {x["name"] for x in batch}
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                st = [x["state"] for x in self.daemon.ls() if x["name"] in names]
                if all(x == "idle" for x in st):
                    break
                time.sleep(0.2)
            else:
                return "sessions did not all become idle within 300 s"
        return None

    def scale_new_ms(self):
        """`new` reply time with the current sessions; each new session
        is killed and gone before the next `new`."""
        out = []
        for _ in range(self.SCALE_NEW_N):
            t0 = time.perf_counter()
            s = self.daemon.new()
            out.append((time.perf_counter() - t0) * 1000)
            self.daemon.kill(s["name"], wait_pid=s["pid"])
            deadline = time.monotonic() + 10
            while self.daemon.state_of(s["name"]) is not None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)     # its cgroups' removal done: time `new` alone
        return out

    def section_scale(self):
        levels = [int(x) for x in self.a.scale_levels.split(",") if x.strip()]
        r = self.res.setdefault("scale", {"levels": []})
        s, kc = self.new_ready(name="bench-scale")
        self.drop_client(kc)
        pids = lambda: B.process_tree(s["pid"])     # noqa: E731
        idle = []
        try:
            for level in levels:
                why = self.scale_fill(idle, level - 1)
                if why:
                    r["stopped"] = f"at {1 + len(idle)} sessions: {why}"
                    B.log("scale", r["stopped"])
                    break
                time.sleep(1.0)          # the last starts' work settles
                new_ms = self.scale_new_ms()
                rtt = self.c_rtt(s["connection_file"], pids, "cellblock")
                row = {"sessions": 1 + len(idle), "new_ms": B.summary(new_ms),
                       "rtt_us": rtt["us"], "daemon_cpu_us": rtt["daemon_cpu_us"],
                       "daemon_threads_us": rtt["daemon_threads_us"],
                       "errors": rtt["errors"],
                       "daemon_rss_mb": (B.status_kb(self.daemon.pid, "VmRSS") or 0) / 1024}
                r["levels"].append(row)
                B.log("scale", f"{row['sessions']} sessions: new p50 {row['new_ms']['p50']:.1f} ms, "
                               f"rtt p50 {row['rtt_us']['p50']:.0f} µs, daemon CPU "
                               f"{row['daemon_cpu_us']:.0f} µs/execute")
        finally:
            for x in idle + [s]:
                try:
                    self.daemon.control({"cmd": "kill", "name": x["name"]})
                except Exception:
                    pass
            deadline = time.monotonic() + 60
            while any(B.pid_alive(x["pid"]) for x in idle) and time.monotonic() < deadline:
                time.sleep(0.05)

    # ---- 5. hibernate / resume / checkpoint / restore ----------------------------
    def section_lifecycle(self):
        """A second private daemon whose idle-timeout is LIFECYCLE_IDLE
        seconds (so sessions hibernate quickly), with periodic checkpoints
        off. Resume = the first execute_reply from a hibernated session
        (the daemon starts a fresh interpreter and restores its checkpoint)."""
        a = self.a
        conf = os.path.join(self.work, "lifecycle.conf")
        with open(conf, "w") as f:
            f.write(f"idle-timeout = {LIFECYCLE_IDLE}\ncheckpoint-interval = 0\n")
        d = B.Daemon(self.work, ["--config", conf], name="cellblockd-lifecycle")
        self.extra_daemons.append(d)
        r = self.res.setdefault("lifecycle", {"idle_timeout": LIFECYCLE_IDLE})
        wait_hib = LIFECYCLE_IDLE + 30

        def resume(kc, name, check):
            if not d.wait_state(name, "hibernated", wait_hib):
                raise RuntimeError(f"{name} did not hibernate within {wait_hib} s "
                                   f"(state {d.state_of(name)})")
            t0 = time.perf_counter()
            msg_id = kc.execute(check)
            reply = B.wait_reply(kc, msg_id, 120)
            t1 = time.perf_counter()
            B.wait_idle(kc, msg_id, 30)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"{name}: state lost on resume: {reply['content'].get('evalue')}")
            return (t1 - t0) * 1000

        # Small state.
        s = d.new(name="bench-resume")
        kc = self.client(s["connection_file"])   # heartbeat on, as clients keep it
        B.execute(kc, "x = 41", timeout=120)
        small = []
        for i in range(a.resume_n):
            if i and self.over_budget():
                break
            small.append(resume(kc, s["name"], "assert x == 41"))
            B.log("lifecycle", f"resume (small state) {i + 1}/{a.resume_n}  {small[-1]:.0f} ms")
        self.budget_note("resume of a hibernated session", len(small), a.resume_n)
        r["resume_small_ms"] = B.summary(small)
        self.drop_client(kc)
        d.kill(s["name"])

        # 100 MB DataFrame: checkpoint on demand (control `checkpoint`, what
        # `cellblock checkpoint` sends), then restore by resuming.
        s = d.new(name="bench-ckpt")
        kc = self.client(s["connection_file"])
        rep = B.execute(kc, BIG_DF, timeout=300)
        if rep["content"]["status"] != "ok":
            raise RuntimeError("making the 100 MB DataFrame failed: "
                               f"{rep['content'].get('evalue')}")
        ck, rs, nbytes = [], [], None
        for i in range(a.ckpt_n):
            if i and self.over_budget():
                break
            if i:       # a change, so each checkpoint is of a live, modified session
                B.execute(kc, f"df.iloc[0, 0] = {i}", timeout=60)
            t0 = time.perf_counter()
            rep = d.control({"cmd": "checkpoint", "name": s["name"]}, timeout=300)
            ck.append((time.perf_counter() - t0) * 1000)
            if not rep.get("ok"):
                raise RuntimeError(f"checkpoint failed: {rep.get('error')}")
            nbytes = rep.get("bytes")
            B.log("lifecycle", f"checkpoint (100 MB DataFrame) {i + 1}/{a.ckpt_n}  {ck[-1]:.0f} ms")
            rs.append(resume(kc, s["name"], f"assert df.shape == ({BIG_ROWS}, {BIG_COLS})"))
            B.log("lifecycle", f"restore (100 MB DataFrame, by resume) {i + 1}/{a.ckpt_n}  "
                               f"{rs[-1]:.0f} ms")
        r["checkpoint_100mb_ms"] = B.summary(ck)
        r["restore_100mb_ms"] = B.summary(rs)
        r["checkpoint_bytes"] = nbytes
        self.drop_client(kc)
        d.kill(s["name"])
        r["breakdown"] = self.lifecycle_breakdown(d.log_text())
        d.stop()
        self.extra_daemons.remove(d)

    @staticmethod
    def lifecycle_breakdown(text):
        """Medians, from the lifecycle daemon's log, of: a resume's spawn ->
        interpreter ready and ready -> restored, per session."""
        pat = re.compile(r"^(\S+Z) info (\w+): (\S+): (.*)$")
        cur, out = {}, {}
        for line in text.splitlines():
            m = pat.match(line)
            if not m:
                continue
            t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000
            name, msg = m.group(3), m.group(4)
            c = cur.setdefault(name, {})
            if "hibernated -> creating" in msg:
                c.clear()
                c["spawn"] = t
            elif "creating -> idle (interpreter ready)" in msg and "spawn" in c:
                c["ready"] = t
            elif msg.startswith("restored from checkpoint") and "ready" in c:
                o = out.setdefault(name, {"spawn_to_ready": [], "ready_to_restored": []})
                o["spawn_to_ready"].append(c["ready"] - c["spawn"])
                o["ready_to_restored"].append(t - c["ready"])
                c.clear()
        return {name: {k: B.pct(v, 50) for k, v in o.items()} for name, o in out.items()}

    # ---- profile ---------------------------------------------------------------------
    def section_profile(self):
        """perf stat / perf record / strace -c on the daemon while the C
        client runs a fixed number of executes on one session."""
        out = {}
        pdir = os.path.join(B.BUILD, "profile")
        os.makedirs(pdir, exist_ok=True)
        s, kc = self.new_ready(name="bench-prof")
        runner = B.find_runner(s["pid"])
        n = 2000
        conn = s["connection_file"]

        def under(tool_cmd, n_exec, outfile):
            t = subprocess.Popen(tool_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 start_new_session=True)
            time.sleep(0.5)     # let it attach
            try:
                B.run_rtt(["conn", "-n", str(n_exec), "-w", "0", conn], timeout=300)
            finally:
                t.send_signal(signal.SIGINT)
                try:
                    _, err = t.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    t.kill()
                    _, err = t.communicate()
            return err.decode(errors="replace")

        if shutil.which("perf"):
            stat = os.path.join(pdir, "perf-stat.txt")
            under(["perf", "stat", "-x", ",", "-o", stat, "-e",
                   "task-clock,context-switches,cpu-migrations,page-faults",
                   "-p", str(self.daemon.pid)], n, stat)
            out["perf_stat"] = {}
            for line in open(stat):
                f = line.strip().split(",")
                if len(f) > 3 and f[0] and f[0][0].isdigit():
                    out["perf_stat"][f[2]] = float(f[0]) / n
            data = os.path.join(pdir, "perf.data")
            under(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-g",
                   "-o", data, "-p", f"{self.daemon.pid},{runner}"], n, data)
            rep = lambda *a: subprocess.run(  # noqa: E731
                ["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                 "--percent-limit", "0.5", *a], capture_output=True, text=True, timeout=120).stdout
            by_dso = rep("--sort", "pid,comm,dso")
            by_sym = rep("--pid", str(self.daemon.pid), "--percentage", "relative",
                         "--sort", "sym")
            callers = subprocess.run(
                ["perf", "report", "-i", data, "--stdio", "--no-children", "--pid",
                 str(self.daemon.pid), "-G", "--percent-limit", "3"],
                capture_output=True, text=True, timeout=120).stdout
            for name, text in (("perf-by-dso.txt", by_dso), ("perf-daemon-symbols.txt", by_sym),
                               ("perf-daemon-callers.txt", callers)):
                with open(os.path.join(pdir, name), "w") as f:
                    f.write(text)
            out["perf_by_dso"] = [l for l in by_dso.splitlines() if re.match(r"^\s+\d", l)][:14]
            out["perf_daemon_syms"] = [l for l in by_sym.splitlines()
                                       if re.match(r"^\s+\d", l) and "[.]" in l][:14]
            out["perf_daemon_kernel_pct"] = sum(
                float(l.split("%")[0]) for l in by_sym.splitlines()
                if re.match(r"^\s+\d", l) and "[k]" in l)
        else:
            out["perf"] = "perf not installed"
        if shutil.which("strace"):
            sfile = os.path.join(pdir, "strace-c.txt")
            ns = 500
            under(["strace", "-c", "-f", "-o", sfile, "-p", str(self.daemon.pid)], ns, sfile)
            calls = []
            for line in open(sfile):
                f = line.split()
                if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                    calls.append((f[-1], int(f[3]) / ns))
            calls.sort(key=lambda x: -x[1])
            out["strace_per_execute"] = calls[:14]
            out["strace_total_per_execute"] = sum(c for _, c in calls)
        if shutil.which("strace"):
            bfile = os.path.join(pdir, "strace-new-bind.txt")
            t = subprocess.Popen(["strace", "-f", "-e", "trace=bind", "-o", bfile, "-p",
                                  str(self.daemon.pid)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(0.5)
            try:
                s2 = self.daemon.new()
            finally:
                time.sleep(0.2)
                t.send_signal(signal.SIGINT)
                t.wait(timeout=30)
            text = open(bfile).read()
            out["new_binds"] = {"tcp_binds": text.count("AF_INET,") + text.count("AF_INET6,"),
                                "eaddrinuse": text.count("EADDRINUSE"),
                                "sessions_alive": len(self.daemon.ls()) - 1}
            self.daemon.kill(s2["name"], wait_pid=s2.get("pid"))
        self.drop_client(kc)
        self.daemon.kill(s["name"], wait_pid=s["pid"])
        self.res["profile"] = out
        B.log("profile", f"written to {os.path.relpath(pdir, B.ROOT)}/")

    # ---- run --------------------------------------------------------------------------
    def run(self):
        a = self.a
        self.res["started"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.res["machine"] = B.machine_info()
        self.res["versions"] = B.library_versions()
        self.res["git"] = B.git_describe()
        self.res["args"] = sys.argv[1:]
        self.res["config"] = {k: getattr(a, k) for k in (
            "start_n", "ipk_start_n", "rtt_n", "py_rtt_n", "density_k", "ipk_kernels",
            "tput_sessions", "tput_count", "resume_n", "ckpt_n", "budget", "quick",
            "scale_levels")}
        self.setup()
        self.res["versions"]["cellblockd reports"] = B.daemon_versions(self.daemon.log_text())
        steps = []
        if "start" in a.sections:
            steps.append(("start", self.section_start))
        if "rtt" in a.sections:
            steps.append(("rtt", self.section_rtt))
        if a.sections & {"density", "tput"}:
            steps.append(("density", lambda: self.section_density(
                "density" in a.sections, "tput" in a.sections)))
        if "lifecycle" in a.sections:
            steps.append(("lifecycle", self.section_lifecycle))
        if "scale" in a.sections:
            steps.append(("scale", self.section_scale))
        if a.profile:
            steps.append(("profile", self.section_profile))
        for name, fn in steps:
            B.log(name, "begin")
            try:
                fn()
            except KeyboardInterrupt:
                raise
            except Exception as e:
                self.res["errors"][name] = f"{type(e).__name__}: {e}"
                B.log(name, "FAILED: " + self.res["errors"][name])
                traceback.print_exc()
            if not self.daemon.alive():
                self.res["errors"]["daemon"] = "cellblockd exited during the run; log tail:\n" + \
                    self.daemon.log_text()[-2000:]
                B.log(name, "cellblockd is gone; stopping")
                break
        self.res["load_after"] = B.loadavg()
        self.res["busy_after"], _ = B.machine_busy(1.0)
        self.res["wall_s"] = self.elapsed()


def kept_sections(path):
    """What the other benchmark scripts wrote into the report, each its own
    section between markers (benchlib.write_section): kept when this one
    rewrites the file."""
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        return ""
    m = B.SECTION_BEGIN.search(old)
    return "\n" + old[m.start():] if m else ""


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # Also SIGINT, explicitly: started in the background by a shell without
    # job control, Python would otherwise inherit it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    bench = Bench(args)
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        B.log("bench", "interrupted: cleaning up, no report written")
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        bench.teardown()
    if interrupted:
        return 130
    os.makedirs(B.BUILD, exist_ok=True)
    with open(os.path.join(B.BUILD, "results.json"), "w") as f:
        json.dump(bench.res, f, indent=1, default=str)
    text = report.render(bench.res, args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    text += kept_sections(args.out)
    with open(args.out, "w") as f:
        f.write(text)
    B.log("bench", f"wrote {os.path.relpath(args.out, B.ROOT)} "
                   f"(raw figures in {os.path.relpath(B.BUILD, B.ROOT)}/results.json) "
                   f"in {bench.elapsed():.0f} s")
    print(report.summary_table(bench.res))
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: jupyter_client objects complain from
    # __del__ when modules are already gone. Everything was cleaned up.
    os._exit(rc)
