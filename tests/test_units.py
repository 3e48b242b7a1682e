"""C unit-test programs (base layer, protocol codec, redaction, cgroup layer, seccomp
policy, egress policy), run
as part of the pytest session; each must end with `N passed, N failed`."""
import os
import re
import subprocess

import pytest

from cbtest import BIN
UNITS = ["test-base", "test-protocol", "test-zmtp", "test-redact", "test-egress", "test-child",
         "test-cgroup", "seccomp-check", "sandbox-check"]


@pytest.mark.parametrize("name", UNITS)
def test_unit_program(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} was not built")
    p = subprocess.run([path], capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    last = [l for l in out.splitlines() if re.fullmatch(r"\d+ passed, \d+ failed.*", l)]
    assert last, f"{name} printed no summary:\n{out[-3000:]}"
    m = re.match(r"(\d+) passed, (\d+) failed", last[-1])
    assert int(m.group(2)) == 0 and p.returncode == 0, out[-5000:]
    assert int(m.group(1)) > 0
