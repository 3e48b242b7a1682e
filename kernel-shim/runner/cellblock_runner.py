# cellblock session runner: hosts one IPython interpreter and serves the daemon over its channel.
#
#   /usr/bin/python3 -I cellblock_runner.py --channel-fd N [--history PATH] [--session NAME]
#
# A zygote may instead `import cellblock_runner`, call preload(), fork, and
# call main(channel_fd=N, ...) in the child. Importing has no side effects.

import argparse
import builtins
import collections
import contextlib
import fcntl
import getpass
import os
import platform
import shutil
import sys
import tempfile
import threading
import traceback

if __name__ == "__main__":
    # Under `python3 -I` the script's own directory is not on sys.path.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cellblock_checkpoint     # checkpoint/restore ops (docs/CHECKPOINTS.md)
import cellblock_comm
import cellblock_debugger
import cellblock_egress         # relays to the egress proxy (docs/SECURITY.md)
import cellblock_fastpath       # cheaper IPython per execute, same result
import cellblock_kernelargs
import cellblock_requests
from IPython.core.error import StdinNotImplementedError

from cellblock_channel import Channel, FrameTooLarge, channel_b64, channel_encode
from cellblock_comm import Comm  # noqa: F401  (re-exported: `from cellblock_runner import Comm`)
from cellblock_shell import RUNNER_DIR, CellblockShell
from cellblock_sigint import InterruptGate, sigint_blocked
from cellblock_streams import ChannelStream, FdCapture, Flusher

__all__ = ["Comm", "attach", "build", "main", "preload"]
__version__ = "0.1.0"

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
PROTOCOL_VERSION = "5.3"
LANGUAGE_INFO = {
    "name": "python",
    "version": platform.python_version(),
    "mimetype": "text/x-python",
    "file_extension": ".py",
    "pygments_lexer": "ipython3",
    "codemirror_mode": {"name": "ipython", "version": 3},
    "nbconvert_exporter": "python",
}
COMM_TYPES = frozenset(("comm_open", "comm_msg", "comm_close"))


def preload():
    """For a zygote: import the data libraries sessions use, so forked
    children share their pages (IPython came with importing this module).
    Each library is optional: a missing or broken one is skipped quietly."""
    import warnings
    _default_environment()      # before matplotlib reads MPLBACKEND
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("numpy", "pandas", "matplotlib", "matplotlib.pyplot", "matplotlib_inline"):
            try:
                __import__(name)
            except Exception:
                pass


def _default_environment():
    # Figures appear inline. "agg" counts as unset: it is the sandbox's
    # headless default and would silently discard every plot.
    if os.environ.get("MPLBACKEND", "").lower() in ("", "agg"):
        os.environ["MPLBACKEND"] = INLINE_BACKEND


class Runner:
    """State of one session: the channel, the shell, and the request in flight."""

    def __init__(self, channel, gate, capture, log, session_name):
        self.channel = channel
        self.gate = gate
        self.capture = capture
        self.log = log
        self.session_name = session_name
        self.shell = None
        self.comms = None
        self.streams = ()
        self.saved_fds = ()         # fds 1/2 as they were before capture
        self.ipython_dir = None     # private, temporary: HOME may be read-only
        self.parent_id = 0          # current request, or the last one once it is done
        self.quiet = False          # a silent execute is running: publish nothing
        self.allow_stdin = False
        self.backlog = collections.deque()  # messages read while waiting for input
        self._main_thread = threading.get_ident()

    # -- main loop --
    def serve(self):
        while True:
            msg = self.backlog.popleft() if self.backlog else self._wait_request()
            if msg is None:
                return 1 if self.channel.broken else 0
            op = msg.get("op")
            if op == "request":
                self.handle_request(msg)
            elif op == "shutdown":
                return 0
            elif op in cellblock_checkpoint.OPS:    # checkpoint, restore: docs/CHECKPOINTS.md
                cellblock_checkpoint.serve_op(self, msg)
            elif op == "configure":     # env, kernel arguments: before any request
                self.set_env(msg.get("env"))
                if "kernel_args" in msg:
                    self.configure(msg.get("kernel_args"))
            elif op == "claim":         # a warm-pool member gets its session
                self.claim(msg.get("session"))
            elif op == "warm":          # a warm-pool member, before its claim
                self.warm()
            # Anything else is a stale input_reply (its input() was
            # interrupted) or an op from a newer daemon: ignored.

    def _wait_request(self):
        """The wait between requests, where an idle interpreter spends its
        time, so where a user's signal handler (signal.signal in a cell)
        most often runs. One that raises must not end the session: ipykernel
        dies of it, and its state with it. The exception goes to stderr,
        shown under the last cell as a background thread's output would
        be, and the wait goes on; the channel keeps a half-read frame
        whole. SystemExit from a handler still exits, as asked."""
        while True:
            try:
                return self.channel.receive()
            except SystemExit:
                raise
            except BaseException as e:  # a KeyboardInterrupt too: the user's own handler
                self._idle_exception(e)

    def _idle_exception(self, e):
        self.log("exception while idle (a signal handler?), the session goes on: %s: %s"
                 % (type(e).__name__, e))
        try:
            print("Exception raised while the interpreter was idle (by a signal "
                  "handler?); the session goes on:", file=sys.stderr)
            tb = e.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename.startswith(RUNNER_DIR):
                tb = tb.tb_next     # the runner's own frames (the wait) say nothing
            traceback.print_exception(type(e), e, tb, file=sys.stderr)
            sys.stderr.flush()
        except Exception:
            pass    # a replaced or broken sys.stderr: the log has it

    def claim(self, name):
        """Born in the warm pool (docs/ZYGOTE.md): the session's name
        arrives before any request, where a fresh one has it from birth."""
        if not isinstance(name, str) or not name:
            return
        self.session_name = name
        self.log.prefix = "cellblock-runner[%d] %s: " % (os.getpid(), name)
        os.environ["CELLBLOCK_SESSION"] = name

    def warm(self):
        """A warm-pool member, waiting (docs/ZYGOTE.md): the pages an
        execute writes (reference counts of the shell's objects, shared
        with the zygote until written) are copied now, in the background,
        not on the claimer's first request (~420 faults, 2-3 ms). A silent
        `pass`: no iopub, no reply, no history, no execution count; the
        display path, which a silent execute skips, by formatting a
        constant."""
        try:
            cellblock_requests.request_execute(self, {"code": "pass", "silent": True}, {})
            self.shell.display_formatter.format(2)
            # the encoder's path; no "op": nothing is sent
            channel_encode({"text": ""})
        except Exception as e:
            self.log("warm-up failed: %s" % e)
        finally:
            self.quiet = self.allow_stdin = False
            # What a fresh session shows before its first cell.
            self.shell.last_execution_result = None
            self.shell.last_execution_succeeded = True

    def handle_request(self, msg):
        rid = msg.get("id")
        if type(rid) is not int or rid <= 0:
            self.log("request without a valid id ignored: %r" % (rid,))
            return
        self.flush_streams()        # leftovers belong to the previous request
        self.parent_id = rid
        self.gate.pending = False
        self.gate.primed = True     # the daemon may interrupt from now on
        try:
            reply = self._dispatch(msg)
        finally:
            self.gate.armed = self.gate.primed = self.gate.pending = False
            if not self.gate.is_installed():
                self.gate.install()     # user code replaced it; a stray SIGINT must not kill us
            try:
                self.flush_streams()
            finally:
                self.quiet = self.allow_stdin = False
        self.send_reply(rid, reply)

    def set_env(self, env):
        """The session's environment (the daemon checked the names): set
        before kernel arguments and any request, in every incarnation.
        Values are never logged: they may be secrets."""
        if env is None:
            return
        if not isinstance(env, dict):
            self.log("configure: env that is not an object ignored")
            return
        for name, value in env.items():
            if isinstance(name, str) and isinstance(value, str):
                os.environ[name] = value
            else:
                self.log("configure: env entry %r ignored" % (name,))

    def configure(self, argv):
        """Apply the session's kernel arguments (cellblock_kernelargs). Code
        they run (exec_lines...) is user code: an interrupt stops it. Nothing
        they do ends the session."""
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            self.log("configure without a list of strings ignored")
            return
        applied, notes = [], []
        try:
            with self.user_code():
                applied, notes = cellblock_kernelargs.kernelargs_apply(
                    self.shell, argv, self.log)
        except BaseException as e:
            self.log("kernel arguments failed:\n%s" % traceback.format_exc())
            notes = ["stopped by %s: %s" % (type(e).__name__, e)]
        finally:
            self.gate.armed = False
            if not self.gate.is_installed():
                self.gate.install()
            self.flush_streams()
        # The daemon logs it: a sandboxed runner's own log goes nowhere.
        self.channel.send({"op": "configured", "applied": applied, "notes": notes})

    def _dispatch(self, msg):
        msg_type, content = msg.get("msg_type"), msg.get("content", {})
        handler = cellblock_requests.REQUESTS.get(msg_type)
        if handler is None:
            return cellblock_requests.bad_request("unknown request type %r" % (msg_type,))
        if not isinstance(content, dict):
            return cellblock_requests.bad_request("content must be an object")
        try:
            return handler(self, content, msg)
        except BaseException as e:  # an interrupt outside user code, or a bug
            self.gate.armed = False
            if not isinstance(e, KeyboardInterrupt):
                self.log("%s failed:\n%s" % (msg_type, traceback.format_exc()))
            return {"status": "error", "ename": type(e).__name__, "evalue": str(e),
                    "traceback": traceback.format_exception_only(type(e), e)}

    def user_code(self):
        """SIGINT raises KeyboardInterrupt inside this block only. One that
        came since the request was read is raised as the block starts."""
        return UserCode(self.gate)

    # -- output --
    def publish(self, msg_type, content, metadata=None, buffers=None):
        """Send one iopub message for the current request, after the streams."""
        if self.quiet and msg_type not in COMM_TYPES:
            return
        self.flush_streams()
        self._send_iopub(msg_type, content, metadata, buffers)

    def flush_streams(self):
        self.capture.drain_if_pending()
        for stream in self.streams:
            stream.flush()

    def emit_stream(self, name, text):
        if not self.quiet:
            self._send_iopub("stream", {"name": name, "text": text})

    def _send_iopub(self, msg_type, content, metadata=None, buffers=None):
        msg = {"op": "iopub", "id": self.parent_id, "msg_type": msg_type, "content": content}
        if metadata:
            msg["metadata"] = metadata
        if buffers:
            msg["buffers"] = [channel_b64(b) for b in buffers]
        try:
            self.channel.send(msg)
        except FrameTooLarge as e:
            note = "cellblock: a %s message was not sent: %s\n" % (msg_type, e)
            self.channel.send({"op": "iopub", "id": self.parent_id, "msg_type": "stream",
                               "content": {"name": "stderr", "text": note}})

    def send_reply(self, rid, content):
        msg = {"op": "reply", "id": rid, "content": content}
        if isinstance(content, dict) and "_cellblock" in content:
            msg["cellblock"] = content.pop("_cellblock")    # for the daemon alone
        try:
            self.channel.send(msg)
        except FrameTooLarge as e:
            self.channel.send({"op": "reply", "id": rid, "content": {
                "status": "error", "ename": "ReplyTooLarge", "evalue": str(e), "traceback": []}})

    def exit_hint(self):
        name = self.session_name or "NAME"
        return ("cellblock: exit() and quit() do not end this session; it keeps running. "
                "To end it, run `cellblock kill %s` or shut the kernel down from your client."
                % name)

    # -- stdin --
    def request_input(self, prompt, password):
        """input()/getpass() for user code: ask the client through the daemon."""
        if threading.get_ident() != self._main_thread:
            raise StdinNotImplementedError("input() is only available in the cell's own thread")
        if not self.allow_stdin:
            raise StdinNotImplementedError(
                "input() is not available: the client that sent this request "
                "does not accept input (allow_stdin is false)")
        self.flush_streams()
        rid = self.parent_id
        __tracebackhide__ = True    # an interrupted input() shows the cell's line
        # The send is inside the try: the client interrupts as soon as it
        # sees the prompt, which can be before send() itself has returned.
        try:
            self.channel.send({"op": "input_request", "id": rid, "prompt": str(prompt),
                               "password": bool(password)})
            return self._wait_input_reply(rid)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(cellblock_debugger.INTERRUPTED) from None

    def _wait_input_reply(self, rid):
        while True:
            msg = self.channel.receive(interruptible=True)  # SIGINT interrupts this wait
            op = None if msg is None else msg.get("op")
            if op == "input_reply" and msg.get("id") == rid:
                value = msg.get("value", "")
                value = value if isinstance(value, str) else str(value)
                if value == "\x04":         # ^D from a console client
                    raise EOFError("EOF when reading a line")
                return value
            if msg is None or op in ("shutdown", "request"):
                self.backlog.append(msg)    # the main loop handles it after the cell
                if op != "request":
                    raise EOFError("the session is shutting down")
            # other input_reply: stale answer to an interrupted prompt; dropped


class UserCode:
    """Runner.user_code()'s block: a class, not a generator context
    manager, as it is entered on every request."""
    __slots__ = ("gate",)

    def __init__(self, gate):
        self.gate = gate

    def __enter__(self):
        gate = self.gate
        gate.armed = True
        if gate.pending:
            gate.pending = False
            gate.armed = False
            raise KeyboardInterrupt

    def __exit__(self, etype, value, tb):
        self.gate.armed = False
        return False


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="cellblock_runner")
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--history", default=":memory:")
    parser.add_argument("--session", default="")
    return parser.parse_args(argv)


def _claim_fds(channel_fd):
    """Keep the channel off fds 0-2 and out of child processes; make sure
    0-2 are open so pipes and files never land on them by accident."""
    os.fstat(channel_fd)
    if channel_fd < 3:
        moved = fcntl.fcntl(channel_fd, fcntl.F_DUPFD_CLOEXEC, 3)
        os.close(channel_fd)
        channel_fd = moved
    else:
        os.set_inheritable(channel_fd, False)
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    return channel_fd


class Logger:
    """One line per event to the shim's stderr (the daemon logs it). Made
    before its fd exists (a zygote's template); open() once it does."""

    def __init__(self):
        self.fd = None
        self.prefix = ""

    def open(self, session_name):
        self.fd = os.dup(2)     # the shim's stderr (kept open: fd 2 gets captured)
        self.prefix = "cellblock-runner[%d]%s: " % (
            os.getpid(), " " + session_name if session_name else "")

    def __call__(self, text):
        if self.fd is None:
            return
        try:
            os.write(self.fd, (self.prefix + text.rstrip("\n") + "\n").encode("utf-8", "replace"))
        except OSError:
            pass


def _make_shell(runner, history, ipython_dir):
    from IPython.core.profiledir import ProfileDir
    from traitlets.config import Config
    config = Config()
    config.HistoryManager.hist_file = history
    profile = ProfileDir.create_profile_dir(os.path.join(ipython_dir, "profile_default"),
                                            config)
    shell = CellblockShell.instance(config=config, ipython_dir=ipython_dir,
                                    profile_dir=profile, publisher=runner)
    _set_jedi_cache(ipython_dir)
    return shell


def _set_jedi_cache(ipython_dir):
    try:
        import jedi
        jedi.settings.cache_directory = os.path.join(ipython_dir, "jedi")
    except ImportError:
        pass


def _install_stdin(runner):
    def input(prompt=""):
        """Read a line from the client's stdin (needs allow_stdin)."""
        __tracebackhide__ = True
        return runner.request_input(prompt, False)

    def getpass_(prompt="Password: ", stream=None):
        """Read a password from the client's stdin without echo (needs allow_stdin)."""
        return runner.request_input(prompt, True)

    builtins.input = input
    getpass.getpass = getpass_


def _install_comms(runner):
    runner.comms = cellblock_comm.CommManager(runner.publish, runner.log)
    cellblock_comm.comm_install(runner.comms)
    runner.shell.kernel = KernelFacade(runner.comms, runner.shell)


class KernelFacade:
    """What session code finds at get_ipython().kernel (ipykernel's names)."""

    def __init__(self, comm_manager, shell):
        self.comm_manager = comm_manager
        self.Comm = cellblock_comm.Comm
        self.shell = shell


def build(history=":memory:", ipython_dir=None):
    """Everything of a session that needs no channel, no fd of its own and
    no thread: the shell and its hooks. A zygote builds this once, before it
    forks, so every session shares it (docs/ZYGOTE.md); attach() does the
    rest in the session's own process."""
    _default_environment()
    cellblock_fastpath.fastpath_install()
    runner = Runner(None, InterruptGate(), FdCapture(), Logger(), "")
    runner.ipython_dir = ipython_dir or tempfile.mkdtemp(prefix="cellblock-ipython-")
    runner.shell = _make_shell(runner, history, runner.ipython_dir)
    cellblock_fastpath.fastpath_transform_cache(runner.shell.input_transformer_manager)
    _install_stdin(runner)
    _install_comms(runner)
    cellblock_debugger.debugger_install(runner.shell)
    _load_default_extensions(runner.shell)
    _enable_preloaded_matplotlib(runner.shell)
    _warm(runner.shell)
    return runner


def _warm(shell):
    """What IPython builds lazily on a session's first execute (the
    tokenizer's regular expressions, the display formatters): built here,
    so a zygote's sessions share it and none pays it (4-5 ms) on its first
    request. Runs no code in the user namespace and leaves no history."""
    try:
        shell.transform_cell("1+1\n")
        shell.display_formatter.format(2)
    except Exception as e:
        print("cellblock: warm-up skipped: %s" % e, file=sys.stderr)


def _load_default_extensions(shell):
    # ipykernel's (InteractiveShellApp.default_extensions): %store. Its
    # database is the private profile's, so it lasts as long as the process.
    try:
        shell.extension_manager.load_extension("storemagic")
    except Exception as e:
        print("cellblock: %%store unavailable: %s" % e, file=sys.stderr)


def _relocate_ipython_dir(runner):
    """A built shell's private dir was made where it was built (the zygote's
    home, not reachable from a sandbox): a fresh one for this process."""
    from IPython.core.profiledir import ProfileDir
    from pickleshare import PickleShareDB
    shell = runner.shell
    runner.ipython_dir = tempfile.mkdtemp(prefix="cellblock-ipython-")
    shell.ipython_dir = runner.ipython_dir
    shell.profile_dir = ProfileDir.create_profile_dir(
        os.path.join(runner.ipython_dir, "profile_default"), shell.config)
    shell.db = PickleShareDB(os.path.join(shell.profile_dir.location, "db"))
    _set_jedi_cache(runner.ipython_dir)


def attach(runner, channel_fd, session_name, relocate=False):
    """The per-process rest, in order: the log, the SIGINT handler, the
    channel, the fd capture and its threads. Returns the runner."""
    runner.session_name = session_name
    runner.log.open(session_name)
    runner.gate.install()
    runner.channel = Channel(channel_fd, runner.gate, runner.log)
    if relocate:
        _relocate_ipython_dir(runner)
    gate, capture = runner.gate, runner.capture
    streams = [ChannelStream(name, fd, runner.emit_stream, gate, capture)
               for name, fd in (("stdout", 1), ("stderr", 2))]
    runner.streams = streams
    runner.saved_fds = (os.dup(1), os.dup(2))
    # Every helper thread (ours and IPython's history saver) inherits a mask
    # with SIGINT blocked, so an interrupt always lands on the main thread.
    with sigint_blocked():
        for stream in streams:
            capture.capture(stream.fileno(), stream)
        capture.start()
        Flusher(streams).start()
        cellblock_egress.start()
    sys.stdout, sys.stderr = streams
    return runner


def _setup(args, channel_fd):
    """Everything between exec and `hello`, in order. Returns the runner."""
    with sigint_blocked():
        runner = build(args.history)
    return attach(runner, channel_fd, args.session)


def _enable_preloaded_matplotlib(shell):
    # When matplotlib_inline was imported before the shell existed (preload),
    # its import-time hook found no shell; do what `%matplotlib inline` does.
    if "matplotlib_inline.backend_inline" in sys.modules and \
            os.environ.get("MPLBACKEND") == INLINE_BACKEND:
        try:
            shell.enable_matplotlib("inline")
        except Exception as e:
            print("cellblock: inline matplotlib unavailable: %s" % e, file=sys.stderr)


def _teardown(runner):
    """Undo the fd capture so interpreter exit never writes into dead pipes."""
    with contextlib.suppress(Exception):
        runner.flush_streams()
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    for fd, saved in zip((1, 2), runner.saved_fds):
        os.dup2(saved, fd)
    shutil.rmtree(runner.ipython_dir, ignore_errors=True)


# Packages whose versions identify a runtime in the audit log, when loaded.
RUNTIME_PACKAGES = ("IPython", "numpy", "pandas", "matplotlib", "dill")


def runtime_identity():
    """Python and the loaded (preloaded) packages' versions, for the
    daemon's audit log; read from sys.modules, so nothing is imported."""
    packages = {}
    for name in RUNTIME_PACKAGES:
        version = getattr(sys.modules.get(name), "__version__", None)
        if isinstance(version, str):
            packages[name] = version
    return {"python": platform.python_version(),
            "implementation": sys.implementation.name, "packages": packages}


def main(argv=None, *, channel_fd=None, history=None, session=None, built=None):
    """Run one session until shutdown or EOF on the channel; returns the exit
    code. `built`: a runner from build() made before a fork (a zygote's)."""
    args = _parse_args(argv if argv is not None or channel_fd is None
                       else ["--channel-fd", str(channel_fd)])
    if history is not None:
        args.history = history
    if session is not None:
        args.session = session
    try:
        channel_fd = _claim_fds(args.channel_fd)
    except OSError as e:
        print("cellblock_runner: bad --channel-fd %d: %s" % (args.channel_fd, e), file=sys.stderr)
        return 2
    if built is not None:
        runner = attach(built, channel_fd, args.session, relocate=True)
    else:
        runner = _setup(args, channel_fd)
    sys.argv = [""]
    if "" not in sys.path:
        sys.path.insert(0, "")      # user code imports modules from the work dir
    try:
        runner.channel.send({"op": "hello", "pid": os.getpid(),
                             "protocol_version": PROTOCOL_VERSION,
                             "implementation_version": __version__,
                             "language_info": LANGUAGE_INFO,
                             "banner": runner.shell.banner,
                             "runtime": runtime_identity()})
        return runner.serve()
    except Exception as e:      # the channel died under us
        runner.log("leaving: %s" % e)
        return 1
    finally:
        _teardown(runner)


if __name__ == "__main__":
    # Run as a script (__main__), but serve from the importable module so
    # that `import cellblock_runner` in user code finds the same objects.
    import cellblock_runner
    sys.exit(cellblock_runner.main())
