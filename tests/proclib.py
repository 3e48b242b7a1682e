"""What the daemon holds, read from /proc and cgroupfs: memory, descriptors,
processes (by pid and start time, so a reused pid is never mistaken for
the old process) and its sessions' cgroups. Shared by tests/test_faults.py
and tests/soak/soak.py."""
import hashlib
import os


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def sanitized(binary):
    """A sanitizer build (make asan) keeps freed memory in quarantine, so
    its RSS says nothing about what the daemon holds on to."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1]), int(fields[19])


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def descendants(root):
    """(pid, starttime) of every live process under root, root excluded."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st[0] != "Z":
                children.setdefault(st[1], []).append((int(entry), st[2]))
    out, todo = set(), [root]
    for _ in range(100000):             # bounded walk
        if not todo:
            break
        for pid, start in children.get(todo.pop(), []):
            if (pid, start) not in out:
                out.add((pid, start))
                todo.append(pid)
    return out


def still_alive(procs):
    """The (pid, starttime) pairs that are still the same live process."""
    alive = set()
    for pid, start in procs:
        st = proc_stat(pid)
        if st is not None and st[0] != "Z" and st[2] == start:
            alive.add((pid, start))
    return alive


def cgroup_parents(daemon):
    """The daemon's per-state-directory cgroup (cellblock-<hash>) in every
    hierarchy it uses: {directory: cgroup version} (sessions/contain.c,
    server/cellblockd.c). daemon: a cbtest.Daemon that runs."""
    name = "cellblock-" + hashlib.sha256(daemon.state.encode()).hexdigest()[:8]
    own = {}
    with open("/proc/%d/cgroup" % daemon.proc.pid) as f:
        for line in f:
            _, ctls, path = line.rstrip("\n").split(":", 2)
            own[ctls] = path
    dirs = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fstype, _, opts = right.split()[:3]
            root, point = left.split()[3:5]
            if fstype == "cgroup2":
                path = own.get("")
            elif fstype == "cgroup":
                opts = set(opts.split(","))
                path = next((p for c, p in own.items() if c and set(c.split(",")) <= opts), None)
            else:
                continue
            if path is None:
                continue
            rel = path[len(root):] if root != "/" and path.startswith(root) else path
            d = os.path.join(point + rel, name)
            if os.path.isdir(d):
                dirs[d] = 2 if fstype == "cgroup2" else 1
    assert dirs, "no cgroup %s found for the daemon" % name
    return dirs


def session_groups(parents):
    """{parent dir: session group names in it} (the v2 daemon leaf aside)."""
    return {d: sorted(e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e))
                      and e != "daemon") if os.path.isdir(d) else []
            for d in parents}


def interpreter_pids(daemon, name):
    """Host pids of the session's interpreter: the leaves of its process
    tree in its cgroup (a shim or zygote child above, Python below)."""
    for parent in cgroup_parents(daemon):
        procs = os.path.join(parent, name, "cgroup.procs")
        if os.path.exists(procs):
            with open(procs) as f:
                pids = {int(p) for p in f.read().split()}
            if pids:
                break
    else:
        raise AssertionError("session %s has no processes in its cgroup" % name)
    ppids = {pid: (proc_stat(pid) or ("Z", 0, 0))[1] for pid in pids}
    found = []
    for pid in pids:
        if pid in ppids.values():
            continue
        try:
            if "python" in os.readlink("/proc/%d/exe" % pid):
                found.append(pid)
        except OSError:
            pass                # gone meanwhile (a session stopping)
    return found
