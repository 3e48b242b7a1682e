# IPython's per-execute machinery made cheaper where the result is provably the same.
#
# Every cut here keeps what IPython (and so ipykernel) does, in the same
# order, with the same arguments, and only removes work whose result is
# known: docs/BENCHMARKS.md, "runner_bench", lists what each one saved.
#
#   what                          why it was costly            how it stays the same
#   formatter __call__ wrappers   `decorator` binds a          the same caller, called with
#                                 Signature per call (12 per   the arguments bind() would
#                                 displayed value)             have produced; anything else
#                                                              goes through the original
#   static input transforms       tokenising the cell again    a cell's result remembered
#   (%magic, !cmd, ?, prompts)    (twice per call: 90 us of    only while the manager holds
#                                 a trivial execute)           exactly IPython's own (pure)
#                                                              transforms; a raise is never
#                                                              remembered
#
# A cut whose preconditions do not hold on the installed IPython is not
# made (fastpath_install returns the names of those it made).

import inspect

from IPython.core import formatters, inputtransformer2 as it2

_UNSET = object()
TRANSFORM_CACHE_CELLS = 256     # cells remembered (oldest forgotten first)
TRANSFORM_CACHE_CHARS = 4096    # longer cells are transformed every time


def _closure(fn):
    """A function's free variables by name, or {} when it has none."""
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
    if code is None or not cells:
        return {}
    try:
        return {name: cell.cell_contents for name, cell in zip(code.co_freevars, cells)}
    except ValueError:      # a cell not filled yet
        return {}


def _fast_caller(decorated):
    """For a method wrapped by `decorator` (its generated `fun`), a wrapper
    calling the same caller with what decorator's fix() would have passed,
    without building a BoundArguments. None if it cannot be proved equal."""
    free = _closure(decorated)
    caller, func, sig = free.get("caller"), free.get("func"), free.get("sig")
    if caller is None or func is None or free.get("kwsyntax") is not False \
            or free.get("extras") != () or not isinstance(sig, inspect.Signature):
        return None
    params = list(sig.parameters.values())
    if not params or any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params):
        return None
    defaults = tuple(p.default for p in params if p.default is not p.empty)
    total, required = len(params), len(params) - len(defaults)
    if any(p.default is p.empty for p in params[required:]):
        return None

    names = {p.name: i for i, p in enumerate(params)}

    def fast(*args, **kwargs):
        # What bind() + apply_defaults() give when every parameter is
        # positional-or-keyword: all of them, positionally, in order.
        n = len(args)
        if n > total:
            return decorated(*args, **kwargs)
        if not kwargs:
            if n < required:
                return decorated(*args)
            return caller(func, *args, *defaults[n - required:]) if n < total \
                else caller(func, *args)
        full = list(args) + [_UNSET] * (total - n)
        for name, value in kwargs.items():
            i = names.get(name, -1)
            if i < n:       # unknown or given twice: bind() says what is wrong
                return decorated(*args, **kwargs)
            full[i] = value
        for i in range(n, total):
            if full[i] is _UNSET:
                if i < required:
                    return decorated(*args, **kwargs)
                full[i] = defaults[i - required]
        return caller(func, *full)

    for attr in ("__name__", "__qualname__", "__doc__", "__module__", "__wrapped__",
                 "__signature__"):
        if hasattr(decorated, attr):
            setattr(fast, attr, getattr(decorated, attr))
    fast.__cellblock_fast__ = True
    return fast


def _install_formatter_calls():
    made = []
    for cls in vars(formatters).values():
        if not (isinstance(cls, type) and issubclass(cls, formatters.BaseFormatter)):
            continue
        method = cls.__dict__.get("__call__")
        if method is None or getattr(method, "__cellblock_fast__", False):
            continue
        fast = _fast_caller(method)
        if fast is not None:
            cls.__call__ = fast
            made.append(cls.__name__)
    return made


# IPython's default static transforms: functions of the text alone.
_PURE_CLEANUP = (it2.leading_empty_lines, it2.leading_indent, it2.classic_prompt,
                 it2.ipython_prompt)
_PURE_LINE = (it2.cell_magic,)
_PURE_TOKEN = (it2.MagicAssign, it2.SystemAssign, it2.EscapedCommand, it2.HelpEnd)


def _pure(manager):
    return (tuple(manager.cleanup_transforms) == _PURE_CLEANUP
            and tuple(manager.line_transforms) == _PURE_LINE
            and tuple(manager.token_transformers) == _PURE_TOKEN
            and it2.TRANSFORM_LOOP_LIMIT == 500)


def fastpath_transform_cache(manager):
    """Remember manager.transform_cell's results per cell text while its
    transforms are IPython's own; a user's transform (or a changed list)
    turns the memory off, and it is emptied so nothing stale comes back."""
    if getattr(manager, "_cellblock_cache", None) is not None:
        return
    if not _pure(manager):
        return
    transform = type(manager).transform_cell.__get__(manager)
    memory = {}
    manager._cellblock_cache = memory

    def transform_cell(cell):
        if not _pure(manager):
            memory.clear()
            return transform(cell)
        if type(cell) is not str or len(cell) > TRANSFORM_CACHE_CHARS:
            return transform(cell)
        found = memory.get(cell)
        if found is None:
            found = transform(cell)         # a raise is not remembered
            if len(memory) >= TRANSFORM_CACHE_CELLS:
                del memory[next(iter(memory))]
            memory[cell] = found
        return found

    transform_cell.__doc__ = transform.__doc__
    manager.transform_cell = transform_cell


def fastpath_install():
    """Make every cut whose preconditions hold; idempotent. Returns what it did."""
    made = []
    if _install_formatter_calls():
        made.append("formatter-calls")
    return made
