# SIGINT policy: interrupt running user code, swallow it when idle, never tear a channel frame.

import contextlib
import signal
import threading


class InterruptGate:
    """Decides what a SIGINT does at the moment Python runs its handler.

    - not armed (no user code running): swallowed, a stray interrupt never
      ends the session; but while a request is primed (read, its user code
      not started yet: execute_input already published) it is remembered
      and raised as soon as the user code starts, or it would be lost;
    - armed, main thread inside a deferred() section (writing a frame,
      moving stream buffers): remembered and raised when the section ends;
    - armed otherwise: KeyboardInterrupt, as in a terminal.

    `armed` is a plain attribute on purpose: storing it is a single bytecode
    with no call, so no handler can run half way through disarming.
    """

    def __init__(self):
        self.armed = False
        self.primed = False
        self.pending = False
        self._depth = 0
        self._main = threading.main_thread().ident

    def handler(self, signum, frame):
        if not self.armed:
            if self.primed:
                self.pending = True
            return
        if self._depth:
            self.pending = True
            return
        raise KeyboardInterrupt

    def install(self):
        signal.signal(signal.SIGINT, self.handler)

    def is_installed(self):
        return signal.getsignal(signal.SIGINT) == self.handler

    def deferred(self):
        """A block in which SIGINT waits (writing a frame, moving stream
        buffers); one that came meanwhile is raised as the block ends.
        Only the main thread runs signal handlers, so only it counts."""
        if threading.get_ident() != self._main:
            return _NOTHING
        return _Deferred(self)


class _Deferred:
    # A class, not a generator context manager: entered for every frame
    # sent and every stream flush, where contextlib's machinery cost more
    # than the work it guarded.
    __slots__ = ("gate",)

    def __init__(self, gate):
        self.gate = gate

    def __enter__(self):
        self.gate._depth += 1

    def __exit__(self, etype, value, tb):
        gate = self.gate
        gate._depth -= 1
        if etype is None and not gate._depth and gate.pending and gate.armed:
            gate.pending = False
            raise KeyboardInterrupt
        return False


_NOTHING = contextlib.nullcontext()


@contextlib.contextmanager
def sigint_blocked():
    """Block SIGINT in this thread for the block. Threads started inside
    inherit the mask and keep it, so the kernel delivers SIGINT to the main
    thread and interrupts its blocking call (time.sleep, input wait)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
