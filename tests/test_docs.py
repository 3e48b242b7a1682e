"""Docs that must match the code: man pages lint clean and their SYNOPSIS
names exactly the options and commands usage() prints; README's first two
commands are make run and make test."""
import os
import re
import subprocess

from cbtest import BIN, ROOT


def usage_of(binary, *args):
    p = subprocess.run([os.path.join(BIN, binary), *args],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2, p
    return p.stderr


def man_synopsis(page):
    text = open(os.path.join(ROOT, "docs", page)).read()
    syn = text.split(".Sh SYNOPSIS", 1)[1].split(".Sh DESCRIPTION", 1)[0]
    return syn


def long_options(text):
    return set(re.findall(r"--([a-z][a-z-]*)", text))


def test_man_pages_lint_clean():
    for page in ("cellblockd.8", "cellblock.1"):
        p = subprocess.run(["mandoc", "-Tlint", "-Wwarning",
                            os.path.join(ROOT, "docs", page)],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr


def test_cellblockd_synopsis_matches_usage():
    usage = usage_of("cellblockd", "-Z")
    syn = man_synopsis("cellblockd.8").replace("Fl -", "--")
    assert long_options(usage) == long_options(syn)


def test_cellblock_synopsis_matches_usage():
    usage = usage_of("cellblock")
    syn = man_synopsis("cellblock.1").replace("Fl -", "--")
    assert long_options(usage) == long_options(syn)
    commands = re.findall(r"^  (\w+)", usage, re.M)
    man_cmds = set()
    for line in re.findall(r"^\.Cm (.*)$", syn, re.M):
        man_cmds.update(w for w in line.split() if w.isalpha())
    man_cmds.discard("install")
    assert set(commands) == man_cmds


def test_readme_starts_with_make_run_and_make_test():
    text = open(os.path.join(ROOT, "README.md")).read()
    cmds = re.findall(r"^make \w+", text, re.M)
    assert cmds[:2] == ["make run", "make test"]


def test_every_benchmark_section_has_its_script_in_make_bench():
    """Each section of docs/BENCHMARKS.md between NAME:begin/end markers is
    written by tests/bench/NAME.py, and `make bench` runs that script (a
    figure nobody can reproduce with `make bench` goes stale); each
    tests/bench/*_bench.py that `make bench` runs has its section."""
    doc = open(os.path.join(ROOT, "docs", "BENCHMARKS.md")).read()
    begins = re.findall(r"^<!-- (\w+):begin -->$", doc, re.M)
    ends = re.findall(r"^<!-- (\w+):end -->$", doc, re.M)
    assert begins == ends, "unpaired section markers: %s / %s" % (begins, ends)
    make = open(os.path.join(ROOT, "Makefile")).read()
    recipe = re.search(r"^bench:.*\n((?:\t.*\n)+)", make, re.M).group(1)
    run = set(re.findall(r"tests/bench/(\w+_bench)\.py", recipe))
    for name in begins:
        assert os.path.exists(os.path.join(ROOT, "tests", "bench", name + ".py")), name
        assert name in run, "make bench does not run tests/bench/%s.py" % name
    assert run <= set(begins), "no section for %s" % sorted(run - set(begins))
