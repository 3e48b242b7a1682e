# IPython InteractiveShell wired to the channel: results, displays, errors and payloads.

import os
import sys

from IPython.core import page, payloadpage
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell, InteractiveShellABC
from traitlets import Any, Bool, Type


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

    # `!cmd` runs through the plain shell; its output reaches fds 1/2, which
    # are captured. The default (pexpect on a pty) needs ptys and ioctls the
    # sandbox does not allow.
    system = InteractiveShell.system_raw

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
