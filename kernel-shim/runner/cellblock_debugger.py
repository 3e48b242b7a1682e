# pdb in a session: IPython's debugger, prompting on the client's stdin, ended by an interrupt.
#
# ipykernel replaces pdb's Pdb and set_trace with IPython's interruptible
# debugger (`ipdb> `), whose prompt reads with input(), which here is the
# runner's input_request. Where ipykernel lets the cell run on after an
# interrupt at that prompt, a session ends the cell with KeyboardInterrupt:
# an interrupt is how clients, `cellblock run --timeout` and exec-timeout
# stop a cell (docs/PROTOCOL.md, "Decisions and deviations").

import pdb

from IPython.core import debugger

INTERRUPTED = "Interrupted by user"     # ipykernel's text for an interrupted prompt


class SessionPdb(debugger.InterruptiblePdb):
    """IPython's debugger where an interrupt ends debugging and the cell.

    Its own SIGINT handler is off (nosigint): after `continue`, an
    interrupt stops the cell instead of breaking into the debugger again."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("nosigint", True)
        super().__init__(*args, **kwargs)

    def trace_dispatch(self, frame, event, arg):
        __tracebackhide__ = True    # the traceback shows the cell, not bdb
        try:
            return super().trace_dispatch(frame, event, arg)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(INTERRUPTED) from None

    def interaction(self, frame, traceback):
        # IPython's interaction() prints the interrupt and returns; the
        # plain one lets it leave the tracer, into the cell.
        debugger.OldPdb.interaction(self, frame, traceback)


def debugger_install(shell):
    """pdb.set_trace(), breakpoint(), %debug and %pdb use SessionPdb."""
    debugger.Pdb = SessionPdb
    pdb.Pdb = SessionPdb
    pdb.set_trace = debugger.set_trace
    shell.debugger_cls = SessionPdb
    shell.InteractiveTB.debugger_cls = SessionPdb     # made with the shell
