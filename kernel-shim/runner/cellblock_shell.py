# IPython InteractiveShell wired to the channel: results, displays, errors and payloads.

import codecs
import os
import select
import shutil
import signal
import subprocess
import sys
import time

from IPython.core import page, payloadpage
from IPython.core.compilerop import CachingCompiler
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell, InteractiveShellABC
from traitlets import Any, Bool, Type

RUNNER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
CELL_DIR = "/tmp"           # the sandbox's own /tmp; never a host path
CELL_SEED = 0xC70F6907      # the seed ipykernel 6 names cells with
SYSTEM_GRACE = 2.0          # s an interrupted `!cmd` has to exit before SIGKILL
SYSTEM_POLL = 0.02          # s between looks at whether it has exited


def shell_cell_hash(data, seed=CELL_SEED):
    """MurmurHash2 (32-bit) of bytes: the number in a cell's file name."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    n = len(data)
    h = (seed ^ n) & mask
    end = n & ~3
    # The 4-byte blocks as little-endian words, read in one go (a cell is
    # hashed on every execute: slicing each block cost 1 us per 4 bytes).
    if sys.byteorder == "little":
        words = memoryview(data[:end]).cast("I") if end else ()
    else:
        words = [int.from_bytes(data[i:i + 4], "little") for i in range(0, end, 4)]
    for k in words:
        k = (k * m) & mask
        k = ((k ^ (k >> 24)) * m) & mask
        h = ((h * m) & mask) ^ k
    if n & 3:
        h = ((h ^ int.from_bytes(data[end:], "little")) * m) & mask
    h = ((h ^ (h >> 13)) * m) & mask
    return h ^ (h >> 15)


class CellCompiler(CachingCompiler):
    """Names cell code as ipykernel 6 does (`/tmp/ipykernel_PID/HASH.py`),
    not IPython's `<ipython-input-N-HASH>`: warnings that libraries
    attribute to the calling cell, tracebacks and inspect show what they
    show under ipykernel. The file is never written; IPython's linecache
    entry for the name is what tracebacks and inspect read."""

    def get_code_name(self, raw_code, transformed_code, number):
        name = os.environ.get("IPYKERNEL_CELL_NAME")   # ipykernel honours it too
        if name:
            return name
        return "%s/ipykernel_%d/%d.py" % (CELL_DIR, os.getpid(),
                                          shell_cell_hash(raw_code.encode("utf-8", "surrogatepass")))


class ChannelDisplayHook(DisplayHook):
    """The value of a cell's last expression → iopub `execute_result`."""

    def start_displayhook(self):
        self._content = {"execution_count": None, "data": {}, "metadata": {}}

    def write_output_prompt(self):
        self._content["execution_count"] = self.prompt_count

    def write_format_data(self, format_dict, md_dict=None):
        self._content["data"] = format_dict
        self._content["metadata"] = md_dict or {}

    def finish_displayhook(self):
        content, self._content = self._content, None
        if content and content["data"]:
            self.shell.publisher.publish("execute_result", content)


class ChannelDisplayPublisher(DisplayPublisher):
    """display(), update_display(), clear_output() → iopub messages."""

    def publish(self, data, metadata=None, source=None, *, transient=None,
                update=False, **kwargs):
        metadata = {} if metadata is None else metadata
        self._validate_data(data, metadata)
        content = {"data": data, "metadata": metadata, "transient": transient or {}}
        msg_type = "update_display_data" if update else "display_data"
        self.shell.publisher.publish(msg_type, content)

    def clear_output(self, wait=False):
        self.shell.publisher.publish("clear_output", {"wait": bool(wait)})


class CellblockShell(InteractiveShell):
    """InteractiveShell whose output goes to `publisher` (the runner), which
    turns it into channel messages."""

    displayhook_class = Type(ChannelDisplayHook)
    display_pub_class = Type(ChannelDisplayPublisher)
    compiler_class = Type(CellCompiler)
    publisher = Any(None, help="object with publish(), flush_streams(), exit_hint()")
    kernel = Any(None, help="ipykernel-like facade: .comm_manager, .Comm")
    readline_use = Bool(False)
    autoindent = Bool(False)

    def init_virtualenv(self):
        pass    # the sandbox decides the interpreter; no venv guessing

    def init_environment(self):
        # No terminal exists: pagers in child processes would hang or garble.
        os.environ.setdefault("PAGER", "cat")
        os.environ.setdefault("GIT_PAGER", "cat")

    def init_hooks(self):
        super().init_hooks()
        # `print?`, %page, %pinfo: text goes into the execute_reply payload.
        self.set_hook("show_in_pager", page.as_hook(payloadpage.page), 99)

    def system(self, cmd):
        """`!cmd`: as ipykernel's (IPython's pexpect system on a pty), whose
        output is one stream, stdout, with the terminal's \\r\\n line ends.
        The sandbox has no ptys, so a pipe stands in for the terminal: the
        child writes both its stdout and stderr into it, and the runner
        adds the \\r a terminal would. An interrupt stops the command, not
        the cell (as under ipykernel); `_exit_code` is set as IPython does."""
        if cmd.rstrip().endswith("&"):
            raise OSError("Background processes not supported.")
        self.user_ns["_exit_code"] = shell_system(self.var_expand(cmd, depth=1))

    def enable_gui(self, gui=None):
        if gui not in (None, "inline"):
            raise UsageError("GUI event loops are not available in a cellblock "
                             "session; use %matplotlib inline")

    def _showtraceback(self, etype, evalue, stb):
        # Exactly one iopub `error`, never traceback text on stderr.
        self._last_traceback = stb
        self.publisher.publish("error", {"ename": etype.__name__ if etype else "Error",
                                         "evalue": str(evalue),
                                         "traceback": stb})

    def _get_exc_info(self, exc_tuple=None):
        etype, value, tb = super()._get_exc_info(exc_tuple)
        return etype, value, shell_trim_traceback(tb)

    def run_cell(self, *args, **kwargs):
        self._last_traceback = None
        return super().run_cell(*args, **kwargs)

    def set_next_input(self, text, replace=False):
        self.payload_manager.write_payload(
            {"source": "set_next_input", "text": text, "replace": replace})

    def ask_exit(self):
        # exit()/quit() must not end the interpreter: the session is a durable
        # thing owned by the daemon. Say how to really end it instead, and
        # let a front end that asked (jupyter console) leave, keeping the
        # session: the ask_exit payload with keepkernel.
        print(self.publisher.exit_hint(), file=sys.stderr)
        self.payload_manager.write_payload({"source": "ask_exit", "keepkernel": True})


InteractiveShellABC.register(CellblockShell)


def shell_trim_traceback(tb):
    """Cut the runner's own frames off the end of a traceback (an input()
    or a debugger prompt that was interrupted): what the user sees ends in
    their code, and names no path of the host's or the sandbox's."""
    last_user = None
    entry = tb
    while entry is not None:
        if not entry.tb_frame.f_code.co_filename.startswith(RUNNER_DIR):
            last_user = entry
        entry = entry.tb_next
    if last_user is not None:
        last_user.tb_next = None
    return tb


def shell_system(cmd):
    """Run cmd under sh with stdout and stderr merged, printing its output
    to sys.stdout as it comes; the exit status, or -signal (IPython's
    convention, where sh's 128+n also counts as signal n)."""
    sh = shutil.which("sh") or "/bin/sh"
    child = subprocess.Popen([sh, "-c", cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, process_group=0)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        _shell_copy(child.stdout.fileno(), decoder)
    except KeyboardInterrupt:
        # What ^C on a terminal does: SIGINT to the command's group; then
        # what it still writes on its way out, briefly; then it is gone.
        _shell_signal(child, signal.SIGINT)
        try:
            _shell_copy(child.stdout.fileno(), decoder, SYSTEM_GRACE, child.pid)
        except KeyboardInterrupt:
            pass
        finally:
            _shell_signal(child, signal.SIGKILL)
    finally:
        child.stdout.close()
    code = child.wait()
    return -(code - 128) if code > 128 else code


def _shell_copy(fd, decoder, timeout=None, pid=None):
    """Copy the command's output until EOF; with a timeout, until it passes
    or sh (pid) has exited with nothing more to read. Its exit, not a fixed
    wait, ends the grace after ^C: with the cores busy, sh took longer than
    0.2 s to die of SIGINT and was SIGKILLed mid-exit (_exit_code -9)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not select.select([fd], [], [], min(left, SYSTEM_POLL))[0]:
                if pid is not None and _shell_exited(pid):
                    return
                continue
        data = os.read(fd, 65536)
        text = decoder.decode(data, final=not data)
        if text:
            sys.stdout.write(text.replace("\n", "\r\n"))
            sys.stdout.flush()
        if not data:
            return


def _shell_exited(pid):
    # WNOWAIT: sh stays a zombie, so its pid (and the group's id, which
    # _shell_signal uses next) cannot be reused before child.wait().
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _shell_signal(child, signum):
    try:
        os.killpg(child.pid, signum)
    except OSError:
        pass    # already gone
