# The runner's IPython fast paths (cellblock_fastpath.py) give exactly what IPython's own code gives.

import sys
import warnings

import pytest

from runner_harness import RUNNER_DIR, of_type

sys.path.insert(0, RUNNER_DIR)
import cellblock_fastpath  # noqa: E402
from IPython.core import formatters  # noqa: E402
from IPython.core.inputtransformer2 import TransformerManager  # noqa: E402


class Odd:
    """An object whose formatters do every kind of thing."""

    def _repr_html_(self):
        raise ValueError("html is broken")

    def _repr_markdown_(self):
        raise NotImplementedError

    def _repr_latex_(self):
        return 42               # wrong type: IPython warns and drops it

    def _repr_json_(self):
        return {"a": 1}, {"expanded": True}

    def __repr__(self):
        return "Odd()"


def _original(cls):
    """The decorator-made __call__ a class had before the fast path."""
    method = next(c.__dict__["__call__"] for c in cls.__mro__ if "__call__" in c.__dict__)
    free = cellblock_fastpath._closure(method)
    return free.get("decorated", method) if getattr(method, "__cellblock_fast__", False) \
        else method


def _run(call):
    """call() → (result or exception text, warnings as text)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            out = ("ok", call())
        except Exception as e:
            out = ("raise", type(e).__name__, str(e))
    return out, [str(w.message) for w in seen]


def test_formatter_calls_are_made_fast():
    cellblock_fastpath.fastpath_install()
    for cls in (formatters.BaseFormatter, formatters.PlainTextFormatter,
                formatters.IPythonDisplayFormatter, formatters.MimeBundleFormatter):
        assert getattr(cls.__dict__["__call__"], "__cellblock_fast__", False), cls


@pytest.mark.parametrize("shape", [
    ((), {}), ((1,), {}), ((1, 2, 3, 4), {}), ((), {"obj": 1}), ((1,), {"obj": 1}),
    ((1,), {"include": ["text/plain"]}), ((1,), {"exclude": ["text/plain"], "include": None}),
    ((), {"obj": Odd(), "exclude": ["text/html"]}), ((1,), {"nonsense": 1}),
])
def test_every_call_shape_matches_decorator(shape):
    # The mime-bundle formatter has optional parameters; the plain ones do not.
    cellblock_fastpath.fastpath_install()
    args, kwargs = shape
    for cls in (formatters.MimeBundleFormatter, formatters.HTMLFormatter,
                formatters.PlainTextFormatter):
        fast, slow = cls.__call__, _original(cls)
        f = cls()
        assert _run(lambda: fast(f, *args, **kwargs)) == _run(lambda: slow(f, *args, **kwargs))


def test_format_results_and_errors_match_decorator():
    # Raising, NotImplementedError, a wrong type, (data, metadata): the
    # whole display formatter, fast against the original wrappers.
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    cellblock_fastpath.fastpath_install()
    fast = _run(lambda: shell.display_formatter.format(Odd()))
    classes = [c for c in vars(formatters).values()
               if isinstance(c, type) and "__call__" in c.__dict__ and
               getattr(c.__dict__["__call__"], "__cellblock_fast__", False)]
    saved = {c: c.__dict__["__call__"] for c in classes}
    try:
        for c in classes:
            c.__call__ = _original(c)
        slow = _run(lambda: shell.display_formatter.format(Odd()))
    finally:
        for c, m in saved.items():
            c.__call__ = m
    assert fast == slow
    assert fast[0][1][0]["application/json"] == {"a": 1}


CELLS = ["1+1", "%time 1", "!echo hi", "x = !ls", "a?", "  indented = 1",
         ">>> 5", "In [1]: 6", "%%bash\necho a\n", "\n\nprint(1)", "def f(:",
         "x = %who_ls", "", "pass\n" * 3]


def test_transform_cache_gives_the_same_text():
    cached, plain = TransformerManager(), TransformerManager()
    cellblock_fastpath.fastpath_transform_cache(cached)
    for _ in range(2):          # the second round comes from the memory
        for cell in CELLS:
            assert _run(lambda: cached.transform_cell(cell)) == \
                _run(lambda: plain.transform_cell(cell)), cell


def test_transform_cache_remembers_and_forgets():
    manager = TransformerManager()
    cellblock_fastpath.fastpath_transform_cache(manager)
    calls = []
    original = type(manager).do_token_transforms

    def counting(self, lines):
        calls.append(1)
        return original(self, lines)
    manager.do_token_transforms = counting.__get__(manager)
    manager.transform_cell("1+1")
    manager.transform_cell("1+1")
    assert len(calls) == 1                  # remembered
    manager.cleanup_transforms.append(lambda lines: [l.replace("1", "2") for l in lines])
    assert manager.transform_cell("1+1") == "2+2\n"     # a user transform: not remembered
    manager.cleanup_transforms.pop()
    assert manager.transform_cell("1+1") == "1+1\n"
    assert manager.transform_cell("x" * (cellblock_fastpath.TRANSFORM_CACHE_CHARS + 1)) \
        == "x" * (cellblock_fastpath.TRANSFORM_CACHE_CHARS + 1) + "\n"


def test_user_transform_runs_every_time_in_the_runner(session):
    # Through the real runner: a cleanup transform added by user code runs
    # on each execution of the same text, as under ipykernel.
    session.execute("seen = []\n"
                    "def t(lines):\n    seen.append(1)\n    return lines\n"
                    "get_ipython().input_transformers_cleanup.append(t)")
    for _ in range(3):
        session.execute("len(seen)")
    iopub, reply = session.execute("len(seen)")
    assert reply["status"] == "ok"
    assert of_type(iopub, "execute_result")[0]["content"]["data"]["text/plain"] == "4"


def test_runner_formatter_error_is_shown_once(session):
    # A broken _repr_html_ shows its traceback (IPython's catch_format_error)
    # and the text form is still the result.
    iopub, reply = session.execute(
        "class B:\n    def _repr_html_(self):\n        raise ValueError('boom')\n"
        "    def __repr__(self):\n        return 'B!'\nB()")
    assert reply["status"] == "ok"
    result = of_type(iopub, "execute_result")[0]["content"]["data"]
    assert result == {"text/plain": "B!"}
    errors = of_type(iopub, "error") + [m for m in iopub if m["msg_type"] == "stream"]
    assert any("boom" in "".join(m["content"].get("traceback", [])) + m["content"].get("text", "")
               for m in errors)


def test_cell_hash_is_ipykernels():
    # Cell file names: the word-at-a-time hash against ipykernel 6.17's own.
    import random
    from ipykernel.compiler import get_tmp_hash_seed, murmur2_x86
    from cellblock_shell import CELL_SEED, shell_cell_hash
    assert get_tmp_hash_seed() == CELL_SEED
    rand = random.Random(7)
    for n in list(range(0, 40)) + [1001, 4099]:
        text = "".join(chr(rand.randrange(32, 0x2FFF)) for _ in range(n))
        assert shell_cell_hash(text.encode("utf-8", "surrogatepass")) == \
            murmur2_x86(text, CELL_SEED), n
