"""Debian's jupyter_kernel_test (0.4.5) against the `cellblock` kernelspec.

jupyter_kernel_test skips every test whose code sample is unset, so a
kernel can "pass" it by testing nothing.  Here every sample is set and a
skipped test, or a skipped subtest (test_history skips each access type
the kernel does not claim), is a failure.

Each KernelTests method runs as its own pytest test (so a failure names
the feature) but all share one kernel, started once through the
kernelspec exactly as Jupyter would: `cellblock attach {connection_file}`
against a private daemon.
"""
import json
import os
import subprocess
import unittest

import pytest

import jupyter_kernel_test as jkt

from cbtest import CELLBLOCK, Daemon, poll


class CellblockKernelTests(jkt.KernelTests):
    """The samples, one per feature of jupyter_kernel_test 0.4.5."""

    __test__ = False        # run by the tests below, not collected as is

    kernel_name = "cellblock"
    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import collec", "matches": {"collections"}},
    ]

    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q", "x = )"]

    code_page_something = "print?"

    code_generate_error = "raise ValueError('cellblock test error')"

    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
        {"code": "from IPython.display import HTML; HTML('<b>x</b>')", "mime": "text/html",
         "result": "<b>x</b>"},
    ]

    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
         "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
         "mime": "text/latex"},
    ]

    # matches "1+2+3" only; the history tests run the samples many times
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "zip"

    code_clear_output = "from IPython.display import clear_output; clear_output()"


TEST_NAMES = unittest.TestLoader().getTestCaseNames(CellblockKernelTests)


def sessions(daemon):
    p = daemon.cli("ls", "--json")
    assert p.returncode == 0, p.stderr
    return {s["name"]: s for s in json.loads(p.stdout)}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A private daemon, a private kernelspec pointing at it, and the
    KernelTests class set up (one kernel started through the kernelspec)."""
    daemon = Daemon()
    prefix = str(tmp_path_factory.mktemp("kernelspec"))
    old_path = os.environ.get("JUPYTER_PATH")
    try:
        p = subprocess.run([CELLBLOCK, "--state-dir", daemon.state, "kernelspec", "install",
                            "--prefix", prefix], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        with open(os.path.join(prefix, "share/jupyter/kernels/cellblock/kernel.json")) as f:
            spec = json.load(f)
        assert daemon.state in spec["argv"], spec
        os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share", "jupyter")
        CellblockKernelTests.setUpClass()
        try:
            yield daemon
        finally:
            km = CellblockKernelTests.km
            launcher = km.provisioner.process if km.provisioner else None
            CellblockKernelTests.tearDownClass()
            if launcher is not None:
                assert launcher.poll() is not None, "attach process left running"
        poll(lambda: not sessions(daemon), 15, "the kernel's session to end")
        assert daemon.alive(), daemon.log_text()[-5000:]
    finally:
        if old_path is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old_path
        daemon.stop()


def describe(result):
    lines = []
    for case, reason in result.skipped:
        lines.append("SKIPPED %s: %s" % (case, reason or "(no reason)"))
    for case, tb in result.failures + result.errors:
        lines.append("FAILED %s:\n%s" % (case, tb))
    for case in getattr(result, "unexpectedSuccesses", []):
        lines.append("UNEXPECTED SUCCESS %s" % case)
    return "\n".join(lines)


def test_every_sample_is_set():
    """A KernelTests attribute named code_*/..._samples that is empty would
    make its test skip; catch a new one appearing in a newer version."""
    for attr in dir(jkt.KernelTests):
        if attr.startswith("code_") or attr.endswith("_samples"):
            assert getattr(CellblockKernelTests, attr), "no sample for %s" % attr
    expected = {"test_clear_output", "test_completion", "test_display_data", "test_error",
                "test_execute_result", "test_execute_stderr", "test_execute_stdout",
                "test_history", "test_inspect", "test_is_complete", "test_kernel_info",
                "test_pager"}
    assert set(CellblockKernelTests.supported_history_operations) == {"tail", "range", "search"}
    assert expected <= set(TEST_NAMES), sorted(expected - set(TEST_NAMES))


@pytest.mark.parametrize("name", TEST_NAMES)
def test_jupyter_kernel_test(kernel, name):
    result = unittest.TestResult()
    case = CellblockKernelTests(name)
    case.run(result)
    assert result.testsRun == 1
    assert not result.skipped and result.wasSuccessful(), describe(result)
    assert kernel.alive(), kernel.log_text()[-5000:]
