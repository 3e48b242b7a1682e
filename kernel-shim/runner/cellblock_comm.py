# Jupyter comms inside the session, with the API of ipykernel's Comm and CommManager.

import sys
import traceback
import uuid

from traitlets.utils.importstring import import_item

# The runner's CommManager once main() has set one up. Module state (not the
# runner module's) because the entry script also runs as __main__, and user
# code importing `cellblock_runner` must reach the same manager.
_manager = None


def comm_manager():
    if _manager is None:
        raise RuntimeError("comms need a running cellblock session")
    return _manager


class Comm:
    """One end of a comm. Created by kernel code (primary: sends comm_open)
    or by the manager when the client opens one (not primary)."""

    def __init__(self, target_name="comm", data=None, metadata=None, buffers=None,
                 comm_id=None, primary=True, target_module=None, **kwargs):
        self.comm_id = comm_id or uuid.uuid4().hex
        self.target_name = target_name
        self.target_module = target_module
        self.primary = primary
        self._msg_callback = None
        self._close_callback = None
        self._closed = True
        self.manager = comm_manager()
        if primary:
            self.open(data=data, metadata=metadata, buffers=buffers)
        else:
            self.manager.register_comm(self)
            self._closed = False

    def open(self, data=None, metadata=None, buffers=None):
        """Tell the client about this comm (iopub comm_open)."""
        self.manager.register_comm(self)
        try:
            self._publish("comm_open", data, metadata, buffers,
                          target_name=self.target_name, target_module=self.target_module)
        except Exception:
            self.manager.unregister_comm(self)
            raise
        self._closed = False

    def send(self, data=None, metadata=None, buffers=None):
        self._publish("comm_msg", data, metadata, buffers)

    def close(self, data=None, metadata=None, buffers=None):
        if self._closed:
            return
        self._closed = True
        self.manager.unregister_comm(self)
        self._publish("comm_close", data, metadata, buffers)

    def on_msg(self, callback):
        """callback(msg) for each comm_msg from the client; msg["content"]["data"]."""
        self._msg_callback = callback

    def on_close(self, callback):
        """callback(msg) when the client closes the comm."""
        self._close_callback = callback

    def handle_msg(self, msg):
        if self._msg_callback is not None:
            self._msg_callback(msg)

    def handle_close(self, msg):
        self._closed = True
        if self._close_callback is not None:
            self._close_callback(msg)

    def _publish(self, msg_type, data, metadata, buffers, **fields):
        content = dict(fields, comm_id=self.comm_id, data={} if data is None else data)
        self.manager.publish(msg_type, content, metadata or {}, buffers)


class CommManager:
    """Targets registered by session code and the comms that are open."""

    def __init__(self, publish, log):
        self.publish = publish      # publish(msg_type, content, metadata, buffers)
        self.log = log
        self.targets = {}
        self.comms = {}

    def register_target(self, target_name, f):
        """f(comm, open_msg) is called when the client opens a comm to target_name.
        f may be an import string."""
        self.targets[target_name] = import_item(f) if isinstance(f, str) else f

    def unregister_target(self, target_name, f=None):
        return self.targets.pop(target_name, None)

    def register_comm(self, comm):
        self.comms[comm.comm_id] = comm
        return comm.comm_id

    def unregister_comm(self, comm):
        self.comms.pop(comm.comm_id, None)

    def get_comm(self, comm_id):
        return self.comms.get(comm_id)

    # -- messages from the client (msg is ipykernel-shaped: header, content, buffers) --
    def comm_open(self, msg):
        content = msg["content"]
        comm = Comm(comm_id=content.get("comm_id"), primary=False,
                    target_name=content.get("target_name", ""))
        target = self.targets.get(comm.target_name)
        if target is None:
            self.log("comm_open for unknown target %r" % comm.target_name)
        elif self._call(target, comm, msg):
            return
        comm.close()    # the client learns at once that nobody is listening

    def comm_msg(self, msg):
        comm = self.get_comm(msg["content"].get("comm_id"))
        if comm is not None:
            self._call(comm.handle_msg, msg)

    def comm_close(self, msg):
        comm = self.comms.pop(msg["content"].get("comm_id"), None)
        if comm is not None:
            self._call(comm.handle_close, msg)

    def _call(self, callback, *args):
        """Run a session callback; a failure is shown on stderr, never fatal."""
        try:
            callback(*args)
            return True
        except Exception:
            text = traceback.format_exc()
            self.log("comm callback failed:\n" + text)
            print("Exception in comm callback:\n" + text, file=sys.stderr)
            return False

    def info(self, target_name=None):
        return {cid: {"target_name": c.target_name} for cid, c in self.comms.items()
                if target_name is None or c.target_name == target_name}


def comm_install(manager):
    global _manager
    _manager = manager
