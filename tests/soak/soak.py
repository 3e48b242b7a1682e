#!/usr/bin/python3
"""The soak: 100 sessions on one real daemon under a mixed load for a
bounded time, then checks that nothing crashed, leaked or was lost.

    make soak                     # 10 minutes of load
    make soak SOAKTIME=120        # or: /usr/bin/python3 tests/soak/soak.py --time 120

Every session keeps a counter; the driver knows what each must hold and
checks it whenever it reads it, after resumes, crashes, forks and at the
end. Load: executes, interrupts, exec timeouts, checkpoints, idle reaping
to hibernation (a short idle-timeout) and transparent resumes, forks,
`cellblock kill` and `restart`, and interpreters killed with SIGKILL.
Afterwards: the daemon never died, its RSS grew under 5% from the window
after warm-up to the last window, and once every session has ended no
descriptor, process, cgroup, work dir or connection file of theirs is
left. One progress line every 10 s, a summary table at the end, exit
status 1 on any failure. docs/TESTING.md says more.
"""
import argparse
import json
import os
import queue
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

# One process holds a client per session: more descriptors and zmq sockets
# than the defaults allow, raised before the first socket exists.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
import zmq  # noqa: E402
zmq.Context.instance().set(zmq.MAX_SOCKETS, 16384)

from cbtest import Daemon, run_cell  # noqa: E402
import proclib  # noqa: E402

SESSIONS = 100
TIMEOUT_SESSIONS = 20       # of them, made with --exec-timeout
EXEC_TIMEOUT = 3
IDLE_TIMEOUT = 8
WORKERS = 4
WAIT = 60                   # any one reply (a resume on a loaded machine)
RSS_GROWTH_MAX = 0.05
PROGRESS_EVERY = 10

# What the workers do, and how often (weights).
MIX = {"execute": 36, "check": 10, "interrupt": 8, "timeout": 6, "checkpoint": 6,
       "crash": 6, "fork": 5, "kill": 5, "restart": 4}

CONF = """\
idle-timeout = %d
max-sessions-per-user = 1000
memory = 256M
""" % IDLE_TIMEOUT


def log(msg):
    print(msg, flush=True)


class Session:
    def __init__(self, name, expected, timeout, path):
        self.name, self.expected, self.timeout, self.path = name, expected, timeout, path
        self.kc = None
        self.busy = False


class Soak:
    def __init__(self, seconds, seed):
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.pool = {}
        self.serial = 0
        self.stop = threading.Event()
        self.stats = {a: {"ok": 0, "failed": 0, "times": []} for a in MIX}
        self.failures = []
        self.resumes = 0
        self.rss = []           # (seconds since the load began, KiB)
        self.d = None

    # -- bookkeeping --
    def fail(self, what, detail):
        with self.lock:
            self.failures.append("%s: %s" % (what, detail))
        log("FAIL %s: %s" % (what, detail))

    def new_name(self):
        with self.lock:
            self.serial += 1
            return "soak%04d" % self.serial

    def acquire(self, exclude=None):
        """A random session no worker holds, or None (bounded tries)."""
        for _ in range(200):
            with self.lock:
                free = [s for s in self.pool.values() if not s.busy and s is not exclude]
                if free:
                    s = self.rng.choice(free)
                    s.busy = True
                    return s
            if self.stop.wait(0.05):
                return None
        return None

    def release(self, s):
        with self.lock:
            s.busy = False

    def client(self, s):
        """A client for s for the current action only: jupyter_client's
        blocking client runs on its thread's asyncio loop, so one made in
        one thread must not be used in another."""
        if s.kc is None:
            s.kc = self.d.client(s.path)
        return s.kc

    def close(self, s):
        if s.kc is not None:
            s.kc.stop_channels()
            s.kc.context.destroy(linger=0)
            s.kc = None

    def drop(self, s):
        self.close(s)
        with self.lock:
            self.pool.pop(s.name, None)

    def cli(self, *args, ok=True):
        # A CLI that finds no daemon starts one: never behind a dead one's back.
        if not self.d.alive():
            raise AssertionError("cellblockd is gone")
        p = self.d.cli(*args, timeout=WAIT)
        if ok and p.returncode != 0:
            raise AssertionError("cellblock %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                                p.stderr.strip()))
        return p

    def run(self, s, code):
        """Run code in s; return (reply content, reply metadata, result)."""
        reply, out = run_cell(self.client(s), code, timeout=WAIT)
        if "cellblock_resumed" in reply["metadata"]:
            with self.lock:
                self.resumes += 1
        res = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
        return reply["content"], reply["metadata"], (res[0] if res else None)

    def counter(self, s):
        c, meta, text = self.run(s, "counter")
        if c["status"] != "ok":
            raise AssertionError("counter: %s: %s" % (c.get("ename"), c.get("evalue")))
        return int(text)

    def expect(self, s, what):
        got = self.counter(s)
        if got != s.expected:
            raise AssertionError("%s: %s holds counter %d, expected %d"
                                 % (what, s.name, got, s.expected))

    def create(self, timeout):
        name = self.new_name()
        args = ["new", "--name", name] + (["--exec-timeout", str(EXEC_TIMEOUT)] if timeout else [])
        path = self.cli(*args).stdout.strip()
        s = Session(name, 0, timeout, path)
        try:
            c, _, _ = self.run(s, "counter = 0")
        finally:
            self.close(s)
        if c["status"] != "ok":
            raise AssertionError("counter = 0 in %s: %s" % (name, c))
        return s

    def checkpoint(self, s):
        """A checkpoint now; the idle reaper may be taking one: retry."""
        for _ in range(100):
            p = self.cli("checkpoint", s.name, ok=False)
            if p.returncode == 0:
                return
            # Transient: the reaper is checkpointing it, or stopping it.
            if not any(w in p.stderr for w in ("already checkpointing", "busy",
                                                  "no running interpreter")):
                raise AssertionError("checkpoint %s: %s" % (s.name, p.stderr.strip()))
            time.sleep(0.1)
        raise AssertionError("checkpoint %s: the reaper never let go" % s.name)

    # -- the actions; each leaves s.expected true or raises --
    def a_execute(self, s):
        c, _, text = self.run(s, "counter += 1; counter")
        if c["status"] != "ok":
            raise AssertionError("counter += 1: %s" % c)
        s.expected += 1
        if int(text) != s.expected:
            raise AssertionError("%s counted to %s, expected %d" % (s.name, text, s.expected))

    def a_check(self, s):
        self.expect(s, "check")

    def a_interrupt(self, s):
        kc = self.client(s)
        msg_id = kc.execute("import time\ntime.sleep(%d)" % WAIT)
        try:
            m = {}
            for _ in range(1000):               # until the cell has started
                m = kc.get_iopub_msg(timeout=WAIT)
                if m["parent_header"].get("msg_id") == msg_id and \
                        m["msg_type"] == "execute_input":
                    break
        except queue.Empty:
            raise AssertionError("no execute_input in %d s" % WAIT) from None
        t0 = time.monotonic()
        self.cli("interrupt", s.name)
        try:
            reply = kc.get_shell_msg(timeout=WAIT)
            for _ in range(1000):
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
                reply = kc.get_shell_msg(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("no reply %.1f s after the interrupt"
                                 % (time.monotonic() - t0)) from None
        # On a slow machine a short exec-timeout may fire first.
        want = ("KeyboardInterrupt", "CellTimeout") if s.timeout else ("KeyboardInterrupt",)
        if reply["content"].get("ename") not in want:
            raise AssertionError("interrupt: %s" % reply["content"])

    def a_timeout(self, s):
        if not s.timeout:
            return self.a_execute(s)
        t0 = time.monotonic()
        c, meta, _ = self.run(s, "import time\ntime.sleep(%d)" % WAIT)
        if c.get("ename") != "CellTimeout":
            raise AssertionError("exec timeout: %s after %.1f s" % (c, time.monotonic() - t0))

    def a_checkpoint(self, s):
        self.checkpoint(s)

    def a_crash(self, s):
        """SIGKILL to a live interpreter after a checkpoint: it comes back."""
        self.checkpoint(s)
        try:
            pids = proclib.interpreter_pids(self.d, s.name)
        except AssertionError:
            pids = []               # hibernated: nothing to kill
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        c, _, text = self.run(s, "counter")
        if c["status"] != "ok" and c.get("ename") == "SessionKilled":
            c, _, text = self.run(s, "counter")     # the kill raced this request
        if c["status"] != "ok" or int(text) != s.expected:
            raise AssertionError("after SIGKILL %s holds %s (%s), expected %d"
                                 % (s.name, text, c.get("ename"), s.expected))

    def a_fork(self, s):
        """Fork s to a new session in place of another one, killed."""
        victim = self.acquire(exclude=s)
        if victim is None:
            return self.a_execute(s)
        try:
            self.cli("kill", victim.name)
            self.drop(victim)
        finally:
            self.release(victim)
        name = self.new_name()
        for _ in range(100):    # while it starts (a resume), it cannot fork
            p = self.cli("fork", s.name, name, ok=False)
            if p.returncode == 0 or "no running interpreter" not in p.stderr:
                break
            time.sleep(0.1)
        if p.returncode != 0:
            raise AssertionError("fork %s: %s" % (s.name, p.stderr.strip()))
        path = p.stdout.strip()
        child = Session(name, s.expected, s.timeout, path)
        try:
            self.expect(child, "fork of %s" % s.name)
        finally:
            self.close(child)
        with self.lock:
            self.pool[name] = child

    def a_kill(self, s):
        self.cli("kill", s.name)
        self.drop(s)
        fresh = self.create(s.timeout)
        with self.lock:
            self.pool[fresh.name] = fresh

    def a_restart(self, s):
        self.cli("restart", s.name)
        c, _, _ = self.run(s, "counter")
        if c.get("ename") != "NameError":
            raise AssertionError("a restart kept state: %s" % c)
        c, _, _ = self.run(s, "counter = 0")
        s.expected = 0
        if c["status"] != "ok":
            raise AssertionError("counter = 0 after restart: %s" % c)

    # -- the run --
    def worker(self, wid, deadline):
        rng = random.Random(self.rng.random())
        actions, weights = list(MIX), list(MIX.values())
        for _ in range(10 ** 6):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            s = self.acquire()
            if s is None:
                continue
            action = rng.choices(actions, weights)[0]
            t0 = time.monotonic()
            try:
                getattr(self, "a_" + action)(s)
                ok = True
            except Exception as e:  # noqa: BLE001 (every failure is reported)
                ok = False
                self.fail(action, "%s: %s" % (s.name, "".join(
                    traceback.format_exception_only(type(e), e)).strip()[:500]))
                # Carry on from what the session really holds.
                try:
                    s.expected = self.counter(s)
                except Exception:  # noqa: BLE001
                    pass
            finally:
                self.close(s)
                self.release(s)
            with self.lock:
                st = self.stats[action]
                st["ok" if ok else "failed"] += 1
                st["times"].append(time.monotonic() - t0)

    def states(self):
        if not self.d.alive():
            return {"daemon gone": 1}
        p = self.d.cli("ls", "--json", timeout=WAIT)
        if p.returncode != 0:
            return {}
        counts = {}
        for s in json.loads(p.stdout):
            counts[s["state"]] = counts.get(s["state"], 0) + 1
        return counts

    def progress(self, t0):
        pid = self.d.proc.pid
        with self.lock:
            done = sum(v["ok"] + v["failed"] for v in self.stats.values())
            failed = sum(v["failed"] for v in self.stats.values())
            resumes = self.resumes
        states = " ".join("%s %d" % kv for kv in sorted(self.states().items()))
        log("[%4.0fs] actions %d (failed %d), resumes %d | %s | daemon rss %.1f MiB, %d fds"
            % (time.monotonic() - t0, done, failed, resumes, states,
               proclib.rss_kb(pid) / 1024, proclib.fd_count(pid)))

    def load(self):
        t0 = time.monotonic()
        deadline = t0 + self.seconds
        threads = [threading.Thread(target=self.worker, args=(i, deadline), daemon=True)
                   for i in range(WORKERS)]
        for t in threads:
            t.start()
        next_line = t0 + PROGRESS_EVERY
        for _ in range(int(self.seconds * 2) + 10):     # one sample a half second
            now = time.monotonic()
            if now >= deadline:
                break
            if not self.d.alive():
                self.fail("daemon", "cellblockd died:\n" + self.d.log_text()[-3000:])
                break
            self.rss.append((now - t0, proclib.rss_kb(self.d.proc.pid)))
            if now >= next_line:
                self.progress(t0)
                next_line += PROGRESS_EVERY
            time.sleep(0.5)     # a sampling period, not a synchronisation
        self.stop.set()
        deadline = time.monotonic() + 3 * WAIT      # an action's longest path
        for t in threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                self.fail("worker", "a worker did not finish its action in %d s" % (3 * WAIT))
        self.progress(t0)

    def rss_growth(self):
        """Max RSS in the window after warm-up (the second quarter) and in
        the last quarter of the load."""
        q = self.seconds / 4
        ref = [k for t, k in self.rss if q <= t < 2 * q]
        end = [k for t, k in self.rss if t >= 3 * q]
        if not ref or not end:
            return None
        return max(ref), max(end)

    def verify_all(self):
        """Every session holds its counter (most resume from hibernation)."""
        sessions = list(self.pool.values())
        bad, lock = [], threading.Lock()

        def check(chunk):
            for s in chunk:
                try:
                    self.expect(s, "final check")
                except Exception as e:  # noqa: BLE001
                    with lock:
                        bad.append("%s: %s" % (s.name, str(e)[:300]))
                finally:
                    self.close(s)
        chunks = [sessions[i::WORKERS] for i in range(WORKERS)]
        threads = [threading.Thread(target=check, args=(c,), daemon=True) for c in chunks]
        for t in threads:
            t.start()
        deadline = time.monotonic() + WAIT * (len(sessions) // WORKERS + 2)
        for t in threads:
            t.join(timeout=max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                self.fail("state", "the final check did not finish in time")
        for b in bad:
            self.fail("state", b)
        return len(sessions) - len(bad), len(sessions)

    def settle(self, measure, done, seconds):
        """measure() until done(value) or seconds pass; the last value."""
        deadline = time.monotonic() + seconds
        while True:
            v = measure()
            if done(v) or time.monotonic() > deadline:
                return v
            time.sleep(0.1)

    def main(self):
        fd, conf = tempfile.mkstemp(prefix="cb-soak-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write(CONF)
        self.d = d = Daemon(["--config", conf])
        report = {}
        pid = d.proc.pid
        parents = proclib.cgroup_parents(d)
        base_procs = proclib.descendants(pid)       # the zygote, if any
        fds0 = proclib.fd_count(pid)
        try:
            log("soak: daemon pid %d, state %s, %d s of load, %d sessions (%d with "
                "exec-timeout %d s), idle-timeout %d s, %d workers"
                % (pid, d.state, self.seconds, SESSIONS, TIMEOUT_SESSIONS, EXEC_TIMEOUT,
                   IDLE_TIMEOUT, WORKERS))
            t0 = time.monotonic()
            for i in range(SESSIONS):
                s = self.create(i < TIMEOUT_SESSIONS)
                self.pool[s.name] = s
            log("soak: %d sessions made in %.1f s" % (SESSIONS, time.monotonic() - t0))

            self.load()
            report["growth"] = self.rss_growth()

            good, total = self.verify_all()
            report["state"] = (good, total)
            report["alive"] = d.alive()

            # End every session; then nothing of theirs may be left.
            for s in list(self.pool.values()):
                self.cli("kill", s.name, ok=False)
                self.drop(s)
            left = self.settle(self.states, lambda v: v == {}, WAIT)
            if left:
                self.fail("end", "sessions left after kill: %s" % left)
            report["fds"] = (fds0, self.settle(lambda: proclib.fd_count(pid),
                                               lambda v: v <= fds0, 30))
            report["procs"] = sorted(self.settle(
                lambda: proclib.descendants(pid) - base_procs, lambda v: not v, 30))
            report["groups"] = sum(len(g) for g in proclib.session_groups(parents).values())
            report["files"] = sorted(os.listdir(os.path.join(d.state, "work"))) + sorted(
                f for f in os.listdir(os.path.join(d.state, "sessions")))
        finally:
            self.stop.set()
            last_procs = proclib.descendants(d.proc.pid) if d.alive() else set()
            if d.alive():
                d.proc.send_signal(signal.SIGTERM)
                try:
                    report["exit"] = d.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    report["exit"] = "hung"
            else:
                report["exit"] = d.proc.returncode
            report["after"] = sorted(self.settle(
                lambda: proclib.still_alive(last_procs | base_procs), lambda v: not v, 15))
            report["parents"] = [p for p, v in parents.items() if v == 1 and os.path.exists(p)]
            log_tail = d.log_text()
            self.kept_log = "/tmp/cb-soak-%d.log" % os.getpid()
            with open(self.kept_log, "w") as f:
                f.write(log_tail)
            d.stop()
            os.unlink(conf)
        return self.summary(report, log_tail)

    def summary(self, r, log_tail):
        log("")
        log("%-11s %7s %7s %7s %9s %9s" % ("action", "count", "ok", "failed", "p50 ms", "p95 ms"))
        for a, st in self.stats.items():
            times = sorted(st["times"])
            p50 = times[len(times) // 2] * 1000 if times else 0
            p95 = times[int(len(times) * 0.95)] * 1000 if times else 0
            log("%-11s %7d %7d %7d %9.0f %9.0f" % (a, st["ok"] + st["failed"], st["ok"],
                                                   st["failed"], p50, p95))
        log("%-11s %7d" % ("resumes", self.resumes))
        log("")
        checks = []

        def check(name, ok, detail):
            checks.append(ok)
            log("%-34s %-4s %s" % (name, "ok" if ok else "FAIL", detail))
        check("daemon alive through the load", bool(r.get("alive")), "")
        g = r.get("growth")
        if g:
            pct = (g[1] - g[0]) * 100.0 / g[0]
            check("daemon RSS growth after warm-up", pct < RSS_GROWTH_MAX * 100,
                  "%.1f MiB -> %.1f MiB (%+.2f%%, limit %d%%; max of 2nd vs last quarter)"
                  % (g[0] / 1024, g[1] / 1024, pct, RSS_GROWTH_MAX * 100))
        else:
            check("daemon RSS growth after warm-up", False, "too few samples")
        good, total = r.get("state", (0, 1))
        check("every session's counter", good == total and total > 0,
              "%d/%d as expected" % (good, total))
        fds = r.get("fds", (0, -1))
        check("descriptors after all sessions ended", fds[1] == fds[0],
              "%d before the first session, %d after the last" % fds)
        check("processes after all sessions ended", r.get("procs") == [],
              "%d left %s" % (len(r.get("procs") or []), (r.get("procs") or "")))
        check("session cgroups after they ended", r.get("groups") == 0,
              "%s left" % r.get("groups"))
        check("work dirs and files after they ended", r.get("files") == [],
              "%d left %s" % (len(r.get("files") or []), (r.get("files") or "")[:5]))
        check("clean exit on SIGTERM", r.get("exit") == 0, "exit status %s" % r.get("exit"))
        check("nothing left after the daemon", not r.get("after") and not r.get("parents"),
              "%d processes, %d cgroups" % (len(r.get("after") or []),
                                             len(r.get("parents") or [])))
        check("no failed action", not self.failures, "%d failures" % len(self.failures))
        for f in self.failures[:20]:
            log("  " + f)
        ok = all(checks)
        if not ok:
            log("\nthe daemon's log, last lines:\n" + log_tail[-3000:])
            log("the whole log: %s" % self.kept_log)
        if ok:
            os.unlink(self.kept_log)
        log("\nsoak: %s" % ("PASS" if ok else "FAIL"))
        return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time", type=float,
                    default=float(os.environ.get("SOAKTIME") or 600),
                    help="seconds of load (default 600, or $SOAKTIME)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    if args.time < 20:
        ap.error("--time must be at least 20 seconds")
    log("soak: seed %d" % args.seed)
    sys.exit(Soak(args.time, args.seed).main())


if __name__ == "__main__":
    main()
