"""Under make asan (tests/asan.sh): no sanitizer report from any program the
suite ran. Collected last (conftest.py), after every module's daemon has
been stopped with SIGTERM and so has checked itself for leaks."""
import os

import pytest

REPORTS = os.environ.get("CELLBLOCK_SANITIZER_REPORTS")


@pytest.mark.skipif(not REPORTS, reason="not a sanitizer run (make asan)")
def test_no_sanitizer_reports():
    found = []
    for name in sorted(os.listdir(REPORTS)):
        path = os.path.join(REPORTS, name)
        if name.endswith(".seen") or not os.path.isfile(path):
            continue
        with open(path, errors="replace") as f:
            found.append("==== %s\n%s" % (name, f.read()))
        os.rename(path, path + ".seen")   # tests/asan.sh reports only new ones
    assert not found, "%d sanitizer report(s):\n%s" % (len(found), "\n".join(found))
