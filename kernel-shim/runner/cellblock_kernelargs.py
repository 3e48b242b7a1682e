# Kernel arguments (a kernelspec argv's tail): parsed as ipykernel parses them, applied to the session's shell.
#
# jupyter_client appends a client's `extra_arguments` to the kernelspec's
# argv; `cellblock attach` passes them to the daemon, which sends them to
# each interpreter of the session right after its `hello` (op `configure`,
# docs/CHANNEL.md). Here they are parsed with the aliases and flags
# ipykernel 6.17 accepts, into a traitlets Config, and applied to the shell
# that already exists (a zygote's is built before the session is known):
#
#   section                                 applied by
#   InteractiveShell, ZMQInteractiveShell   the shell's update_config (the
#                                             latter read as CellblockShell)
#   the shell's parts (HistoryManager,      their update_config; a new
#     IPCompleter, PlainTextFormatter,        history database when
#     magics such as ScriptMagics, ...)       hist_file or enabled changes
#   InteractiveShellApp, IPKernelApp's      IPython's own start-up steps:
#     start-up traits                         --ext, --gui/--matplotlib/
#                                             --pylab, exec_lines,
#                                             exec_files, -c, -m
#   InlineBackend                           the inline backend, re-enabled
#   anything else (ports, connection file,  logged as ignored: the daemon
#     Session, ProfileDir, Kernel, ...)       owns sockets, keys and the
#                                             profile is the sandbox's own
#
# Nothing here can end the session: an argument that does not parse, an
# unknown option, code that raises is logged (to the daemon's log) and
# skipped.

import contextlib
import io
import logging
import sys
import warnings

from IPython.core.application import base_aliases, base_flags
from IPython.core.history import HistoryManager
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.profiledir import ProfileDir
from IPython.core.shellapp import InteractiveShellApp, shell_aliases, shell_flags
from traitlets import Any
from traitlets.config import Config
from traitlets.config.loader import KVArgParseConfigLoader
from traitlets.log import get_logger

from cellblock_shell import CellblockShell
from cellblock_sigint import sigint_blocked

# ipykernel's own options (kernelapp.py, jupyter_client's Session): they
# concern a process that owns the sockets, and here the daemon does.
# Accepted, so that they do not stop the rest from parsing, and ignored.
KERNEL_ALIASES = {
    "ip": "IPKernelApp.ip", "hb": "IPKernelApp.hb_port",
    "shell": "IPKernelApp.shell_port", "iopub": "IPKernelApp.iopub_port",
    "stdin": "IPKernelApp.stdin_port", "control": "IPKernelApp.control_port",
    "f": "IPKernelApp.connection_file", "transport": "IPKernelApp.transport",
    "ident": "Session.session", "user": "Session.username", "keyfile": "Session.keyfile",
}
KERNEL_FLAGS = {
    "no-stdout": ({"IPKernelApp": {"no_stdout": True}}, "ignored"),
    "no-stderr": ({"IPKernelApp": {"no_stderr": True}}, "ignored"),
    "trio-loop": ({"IPKernelApp": {"trio_loop": True}}, "ignored"),
    "secure": ({"Session": {"secure": True}}, "ignored"),
    "no-secure": ({"Session": {"secure": False}}, "ignored"),
}
SHELL_APP = "InteractiveShellApp"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
KERNEL_APP = "IPKernelApp"      # an InteractiveShellApp in ipykernel


def _tables():
    aliases, flags = dict(base_aliases), dict(base_flags)
    aliases.update(KERNEL_ALIASES)
    flags.update(KERNEL_FLAGS)
    aliases.update(shell_aliases)   # ipykernel's order: the shell's win
    flags.update(shell_flags)
    return aliases, flags


def _load(argv, log):
    """One parse of argv: (Config, positional args); raises on a bad one."""
    aliases, flags = _tables()
    # argparse prints usage to stderr and exits; traitlets warns of
    # deprecated forms. Neither may reach the user's output.
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = KVArgParseConfigLoader(
            argv, aliases=aliases, flags=flags, log=log,
            classes=[InteractiveShell, CellblockShell, HistoryManager, InteractiveShellApp,
                     SessionShellApp, ProfileDir])
        config = loader.load_config()
    return config, list(loader.extra_args)


def _items(argv):
    """argv in pieces that parse alone: an option and, unless it has `=`,
    the value after it."""
    items, i = [], 0
    while i < len(argv):
        item = [argv[i]]
        if argv[i].startswith("-") and "=" not in argv[i] and i + 1 < len(argv) \
                and not argv[i + 1].startswith("-"):
            item.append(argv[i + 1])
        items.append(item)
        i += len(item)
    return items


def kernelargs_parse(argv, log):
    """argv → (Config, [ignored argument, ...]). When argv does not parse
    as a whole, the pieces that do not parse alone are left out, and the
    rest parsed together (so repeated list options still add up)."""
    ignored = []
    try:
        config, positional = _load(argv, log)
    except (Exception, SystemExit):
        good = []
        for item in _items(argv):
            try:
                _load(item, log)
                good.extend(item)
            except (Exception, SystemExit):
                ignored.append(" ".join(item) + " (not an option ipykernel accepts)")
        try:
            config, positional = _load(good, log)
        except (Exception, SystemExit):     # only together: give up on all
            ignored.append(" ".join(good) + " (do not parse together)")
            config, positional = Config(), []
    ignored.extend("positional argument %r" % a for a in positional)
    return config, ignored


class _RunnerLog(logging.Handler):
    """Log records → the runner's log (the daemon's log), one line each."""

    def __init__(self, log):
        super().__init__(logging.WARNING)
        self._log = log
        self.lines = []         # for the daemon's log too

    def emit(self, record):
        text = record.getMessage().strip().replace("\n", " ")
        self.lines.append(text)
        self._log("kernel arguments: " + text)


@contextlib.contextmanager
def _traitlets_logged(handler):
    # Configurables warn of unknown options through traitlets' logger.
    logger = get_logger()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class SessionShellApp(InteractiveShellApp):
    """IPython's start-up steps, run on the session's existing shell."""
    log = Any()

    @property
    def profile_dir(self):
        return self.shell.profile_dir


def _configurables(shell):
    """The shell and its parts that read config."""
    found = list(shell.configurables)
    found.extend(shell.display_formatter.formatters.values())
    found.extend(shell.magics_manager.registry.values())
    seen, unique = set(), []
    for obj in found:
        if id(obj) not in seen and hasattr(obj, "update_config"):
            seen.add(id(obj))
            unique.append(obj)
    return unique


def _renamed(arg):
    """ipykernel's subclasses' names → this session's: `--IPKernelApp.X`
    (an InteractiveShellApp there) → `--SessionShellApp.X`, and
    `--ZMQInteractiveShell.X` → `--CellblockShell.X`. Subclasses still,
    so their values win over their base's as under ipykernel; renamed
    before parsing, so that values parse by the trait's type."""
    if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
        return arg
    section, _, rest = arg[2:].partition(".")
    trait = rest.split("=", 1)[0]
    if section == KERNEL_APP and trait in InteractiveShellApp.class_traits(config=True):
        section = SessionShellApp.__name__
    elif section == "ZMQInteractiveShell":
        section = CellblockShell.__name__
    return "--%s.%s" % (section, rest)


def _apply_history(shell, section):
    # The database is opened when the manager is made: a new one for a
    # new file (IPython's save thread must not take SIGINT: sigint_blocked).
    old = shell.history_manager
    if not any(k in section and section[k] != getattr(old, k) for k in ("hist_file", "enabled")):
        return
    old.end_session()
    with sigint_blocked():
        new = HistoryManager(shell=shell, parent=shell)
    shell.history_manager = new
    shell.configurables[:] = [new if c is old else c for c in shell.configurables]


def _apply_tracebacks(shell, config):
    # Read when the shell was made; %xmode and %colors do the same.
    section = Config()
    for name in ("InteractiveShell", type(shell).__name__):
        if name in config:
            section.merge(config[name])
    if "xmode" in section:
        shell.InteractiveTB.set_mode(mode=shell.xmode)
    if "colors" in section:
        shell.InteractiveTB.set_colors(shell.colors)
        shell.SyntaxTB.set_colors(shell.colors)


def _apply_inline(shell, config):
    try:
        from matplotlib_inline.backend_inline import InlineBackend
    except ImportError:
        return False
    InlineBackend.instance(parent=shell).update_config(config)
    mpl = sys.modules.get("matplotlib")
    if mpl is not None and mpl.get_backend() == INLINE_BACKEND:
        shell.enable_matplotlib("inline")   # reads the figure settings anew
    return True


def _run_startup(shell, config, logger):
    app = SessionShellApp(config=config, shell=shell, log=logger)
    app.default_extensions = []     # what a session loads is not an argument's business
    if app.ignore_cwd and "" in sys.path:
        sys.path.remove("")
    app.init_extensions()
    app.init_gui_pylab()
    app.init_code()


def kernelargs_apply(shell, argv, log):
    """Apply argv to shell; log what was ignored. Returns (sections
    applied, notes: a line per argument ignored or warning given)."""
    handler = _RunnerLog(log)
    logger = logging.Logger("cellblock.kernel_args")
    logger.addHandler(handler)
    config, ignored = kernelargs_parse([_renamed(a) for a in argv], logger)
    shell_app = Config({name: config.pop(name) for name in (SHELL_APP, SessionShellApp.__name__)
                        if name in config})
    inline = config.pop("InlineBackend", None)
    applied = []
    with _traitlets_logged(handler):
        shell.update_config(config)
        names = set()
        for obj in _configurables(shell):
            obj.update_config(config)
            names.update(c.__name__ for c in type(obj).__mro__)
        if "HistoryManager" in config:
            _apply_history(shell, config["HistoryManager"])
        _apply_tracebacks(shell, config)
        for section in config:
            if section in names:
                applied.append(section)
            else:
                ignored.extend("%s.%s (no part of the session's shell reads it)" % (section, key)
                               for key in config[section])
        if inline is not None:
            if _apply_inline(shell, Config({"InlineBackend": inline})):
                applied.append("InlineBackend")
            else:
                ignored.append("InlineBackend (matplotlib_inline is not installed)")
        if shell_app:
            _run_startup(shell, shell_app, logger)
            applied.append(SHELL_APP)
    log("kernel arguments applied: %s" % (", ".join(applied) or "none"))
    notes = ["ignored " + what for what in ignored]
    for note in notes:
        log("kernel arguments: " + note)
    return applied, notes + handler.lines
