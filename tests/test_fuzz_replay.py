"""The fuzz harnesses' inputs as regression tests: every seed in
tests/fuzz/corpus/TARGET/ and every crash the fuzzer ever found, kept in
tests/fuzz/crashes/TARGET/, replayed through the harness (its oracles
included) by bin/fuzz-replay-TARGET. `make fuzz` is the fuzzing itself."""
import os
import re
import subprocess

import pytest

from cbtest import BIN, ROOT

FUZZ = os.path.join(ROOT, "tests", "fuzz")
TARGETS = ["jmsg", "control", "channel", "config", "zmtp", "rest", "http", "ws"]


def inputs(target):
    """The corpus and crash files of a target."""
    found = []
    for kind in ("corpus", "crashes"):
        d = os.path.join(FUZZ, kind, target)
        if os.path.isdir(d):
            found += [os.path.join(d, n) for n in sorted(os.listdir(d))
                      if not n.startswith(".")]
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_replay(target):
    prog = os.path.join(BIN, "fuzz-replay-" + target)
    if not os.path.exists(prog):
        pytest.fail(f"{prog} was not built")
    files = inputs(target)
    assert len(files) >= 5, f"{target}: too few seeds"
    p = subprocess.run([prog] + files, capture_output=True, text=True,
                       timeout=300)
    out = p.stdout + p.stderr
    # The driver names each input before running it: the last named crashed.
    assert p.returncode == 0, out[-5000:]
    m = re.search(r"^replayed (\d+) inputs$", p.stdout, re.M)
    assert m and int(m.group(1)) == len(files), out[-3000:]


def test_every_target_has_a_dictionary_and_harness():
    for target in TARGETS:
        assert os.path.exists(os.path.join(FUZZ, target + ".dict"))
        assert os.path.exists(os.path.join(FUZZ, "fuzz-" + target + ".c"))
