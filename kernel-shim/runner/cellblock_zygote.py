# cellblock zygote: one preloaded interpreter that forks every new session.
#
#   /usr/bin/python3 -I cellblock_zygote.py --control-fd N --lib cellblock-zygote.so
#
# Started by cellblock-shim --zygote (no network, its own unprivileged uid).
# It imports the runner, IPython, numpy, pandas and matplotlib once, says
# "ready" on its control socket, then serves spawn requests from the daemon
# (docs/ZYGOTE.md). For each, the C half clones the session's process as
# the daemon's child and runs every sandbox step; pid 2 of the session comes
# back here, contained, and runs the session's runner without an exec. No
# session code ever runs in this process.

import ctypes
import itertools
import json
import os
import signal
import socket
import sys
import time

RUNNER_DIR = os.path.dirname(os.path.abspath(__file__))
SANDBOX_RUNNER_DIR = "/opt/cellblock/runner"    # sandbox.h: where RUNNER_DIR shows inside
CHANNEL_FD = 3                                  # zygote-child.c: Z_CHANNEL
INIT_WAIT_FD = 4                                # zygote-child.c: Z_INIT_WAIT
# Both checked against the shared object at start (check_layout).
MAX_REQUEST = 65536
N_FDS = 3                                       # channel, stderr pipe, work dir's parent


class Request(ctypes.Structure):
    """struct zygote_request of zygote-child.c, field for field; checked
    against the layout the shared object reports (check_layout)."""
    _fields_ = [("channel_fd", ctypes.c_int),
                ("err_fd", ctypes.c_int),
                ("workparent_fd", ctypes.c_int),
                ("workname", ctypes.c_char_p),
                ("session", ctypes.c_char_p),
                ("runner_dir", ctypes.c_char_p),
                ("rootfs", ctypes.c_char_p),
                ("tmp", ctypes.c_uint64),
                ("nofile", ctypes.c_uint64),
                ("fsize", ctypes.c_uint64),
                ("threads", ctypes.c_int),
                ("daemon", ctypes.c_int),
                ("init", ctypes.c_char_p)]


class LayoutMismatch(RuntimeError):
    """The shared object's struct zygote_request is not our Request."""


def request_layout(cls=Request):
    """(size, [(name, offset, size), ...]) of a ctypes Request."""
    return (ctypes.sizeof(cls),
            [(name, getattr(cls, name).offset, getattr(cls, name).size)
             for name, _ in cls._fields_])


def check_layout(lib, cls=Request):
    """Refuse to go on unless the C half's struct zygote_request, as
    zygote_child_layout() reports it, is cls byte for byte: a request
    filled in the wrong layout would hand the clone garbage pointers."""
    try:
        layout = lib.zygote_child_layout
    except AttributeError:
        raise LayoutMismatch("the shared object reports no layout "
                             "(zygote_child_layout missing): rebuild it") from None
    layout.argtypes = []
    layout.restype = ctypes.c_char_p
    try:
        c = json.loads(layout() or b"")
        c_size, c_fields = c["size"], [tuple(f) for f in c["fields"]]
        c_consts = (c["channel_fd"], c["runner_dir"], c["init_wait_fd"])
    except (ValueError, KeyError, TypeError):
        raise LayoutMismatch("the shared object's layout is unreadable: %r" % layout())
    if c_consts != (CHANNEL_FD, SANDBOX_RUNNER_DIR, INIT_WAIT_FD):
        raise LayoutMismatch("the shared object puts the channel at fd %d, the runner "
                             "at %s and the wait for pid 1 at fd %d; cellblock_zygote.py "
                             "expects fd %d, %s and fd %d"
                             % (c_consts + (CHANNEL_FD, SANDBOX_RUNNER_DIR, INIT_WAIT_FD)))
    py_size, py_fields = request_layout(cls)
    if (c_size, c_fields) != (py_size, py_fields):
        diff = ["C %s, Python %s" % (f, g)
                for f, g in itertools.zip_longest(c_fields, py_fields) if f != g]
        raise LayoutMismatch(
            "struct zygote_request (zygote-child.c, %d bytes) and Request "
            "(cellblock_zygote.py, %d bytes) differ; (name, offset, size): %s"
            % (c_size, py_size, "; ".join(diff[:4]) or "in size only"))


def _load(path):
    # PyDLL: the GIL stays held through the clone, so no other Python code
    # runs in between and the child's interpreter state is the parent's.
    lib = ctypes.PyDLL(path, use_errno=True)
    check_layout(lib)
    lib.zygote_child_spawn.argtypes = [ctypes.POINTER(Request)]
    lib.zygote_child_spawn.restype = ctypes.c_int
    lib.zygote_child_prepare.argtypes = []
    lib.zygote_child_prepare.restype = ctypes.c_int
    if lib.zygote_child_prepare() != 0:
        raise OSError("cannot prepare the sandbox policy")
    return lib


def _request(req, fds):
    def text(key, optional=False):
        v = req.get(key)
        if v is None and optional:
            return None
        if not isinstance(v, str) or not v:
            raise ValueError("bad %s" % key)
        return v.encode()

    def count(key):
        v = req.get(key)
        if type(v) is not int or v <= 0:
            raise ValueError("bad %s" % key)
        return v

    return Request(channel_fd=fds[0], err_fd=fds[1], workparent_fd=fds[2],
                   workname=text("workname"), session=text("session"),
                   runner_dir=RUNNER_DIR.encode(), rootfs=text("rootfs", True),
                   tmp=count("tmp"), nofile=count("nofile"), fsize=count("fsize"),
                   threads=count("threads"), daemon=count("daemon"),
                   init=text("init", True))


def _c_environment():
    """The environment the C half built (os.environ is only a copy)."""
    libc = ctypes.CDLL(None)
    environ = ctypes.POINTER(ctypes.c_char_p).in_dll(libc, "environ")
    env = {}
    i = 0
    while environ[i] is not None:
        k, _, v = environ[i].decode("utf-8", "surrogateescape").partition("=")
        env[k] = v
        i += 1
    return env


def _reseed():
    """Every session had the zygote's generator states: make them its own."""
    import random
    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        try:
            np.random.seed()
        except Exception:
            pass


def _become_session(req, template):
    """In pid 2, contained: undo what the zygote's process state would leak
    into the session, then run the runner as the shim's exec would."""
    # Python ignores these two at start-up; sandbox hygiene reset them.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    env = _c_environment()
    os.environ.clear()
    os.environ.update(env)
    sys.path[:] = [SANDBOX_RUNNER_DIR if p == RUNNER_DIR else p for p in sys.path]
    sys.argv = [""]
    import tempfile
    tempfile.tempdir = None     # the zygote's, cached; the session's is /tmp
    _reseed()
    template.serve = _after_init(template.serve)
    import cellblock_runner
    return cellblock_runner.main(channel_fd=CHANNEL_FD, session=req["session"], built=template)


def _after_init(serve):
    """serve, once pid 1 is cellblock-init and undumpable: it closes the
    pipe at INIT_WAIT_FD then (exec made it dumpable again, and pid 2 has
    its uid). Session code runs only inside serve, so pid 2's own steps,
    its attach and its hello need not wait for pid 1's exec (docs/ZYGOTE.md,
    "Pid 1")."""
    def serve_after_init(*args, **kwargs):
        while True:
            try:
                if not os.read(INIT_WAIT_FD, 1):
                    break
            except InterruptedError:
                continue
        os.close(INIT_WAIT_FD)
        return serve(*args, **kwargs)
    return serve_after_init


def _session_exit(run):
    """The session's whole life; never returns into the zygote's loop."""
    code = 1
    try:
        code = run()
    except SystemExit as e:
        code = e.code if type(e.code) is int else 1
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        # What interpreter exit would run, without unwinding the zygote.
        try:
            import atexit
            atexit._run_exitfuncs()
        finally:
            os._exit(code if type(code) is int else 1)


def _spawn(lib, ctl, template, req, fds):
    creq = _request(req, fds)
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = lib.zygote_child_spawn(ctypes.byref(creq))
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        # The C half closed every fd of the zygote's but 0-3: the socket
        # object must not close a number the session reuses.
        ctl.detach()
        _session_exit(lambda: _become_session(req, template))
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(ctypes.get_errno() or 0, "clone failed")
    return pid


def serve(lib, ctl, template):
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, MAX_REQUEST, N_FDS)
        except InterruptedError:
            continue
        if not msg:
            return 0                # the daemon closed: we are done
        req = None
        try:
            req = json.loads(msg)
            if not isinstance(req, dict) or req.get("op") != "spawn" or len(fds) != N_FDS:
                raise ValueError("expected a spawn request with %d fds" % N_FDS)
            reply = {"op": "spawned", "id": req.get("id"), "pid": _spawn(lib, ctl, template, req, fds)}
        except (ValueError, OSError, TypeError) as e:
            reply = {"op": "spawned", "id": req.get("id") if isinstance(req, dict) else None,
                     "error": str(e)}
        finally:
            for fd in fds:
                os.close(fd)
        ctl.send(json.dumps(reply).encode())


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(prog="cellblock_zygote")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--lib", required=True)
    args = parser.parse_args(argv)
    ctl = socket.socket(fileno=args.control_fd)
    t0 = time.monotonic()
    try:
        lib = _load(args.lib)
    except LayoutMismatch as e:
        # Before "ready": the daemon logs this and starts sessions by exec.
        print("cellblock-zygote: refusing to start: %s" % e, file=sys.stderr)
        return 1
    sys.path.insert(0, RUNNER_DIR)
    import cellblock_runner
    cellblock_runner.preload()
    # The shell every session starts from (its per-process parts are made
    # in the session: cellblock_runner.attach).
    import shutil
    template_dir = "/proc/self/cwd/ipython-template"    # the zygote's home (cellblock-shim --zygote)
    shutil.rmtree(template_dir, ignore_errors=True)
    os.mkdir(template_dir, 0o700)
    template = cellblock_runner.build(ipython_dir=template_dir)
    # A process with threads cannot enter a new user namespace.
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        print("cellblock-zygote: preloading left %d threads; not serving" % threads,
              file=sys.stderr)
        return 1
    # Sessions share the preloaded objects' pages until they write them; a
    # garbage collection in a session would write every tracked object's
    # header. Frozen objects are never scanned, so those pages stay shared.
    import gc
    gc.collect()
    gc.freeze()
    preloaded = [m for m in ("IPython", "numpy", "pandas", "matplotlib") if m in sys.modules]
    ctl.send(json.dumps({"op": "ready", "pid": os.getpid(), "preloaded": preloaded,
                         "seconds": round(time.monotonic() - t0, 3)}).encode())
    return serve(lib, ctl, template)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
