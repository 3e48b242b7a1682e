"""The folders' includes run one way, as the table in docs/ARCHITECTURE.md
("Folders and the base layer") says: every #include "x.h" of a C file is
resolved to the folder that holds x.h and checked against what its own
folder may use."""
import os
import re

from cbtest import ROOT

# folder -> the folders whose headers it may include (its own always).
MAY_USE = {
    "kernel-shim/base": set(),
    "protocol": {"kernel-shim/base"},
    "kernel-shim": {"kernel-shim/base"},
    "sessions": {"kernel-shim/base", "protocol", "kernel-shim"},
    "server": {"kernel-shim/base", "protocol", "sessions", "server/egress"},
    "server/egress": {"kernel-shim/base"},
    "server/cli": {"kernel-shim/base", "protocol", "server"},
}
# Of those, only these headers (the rest of that folder stays private).
ONLY = {
    ("sessions", "kernel-shim"): {"sandbox.h"},     # the user facility's parent half
    ("server/cli", "server"): {"shared.h"},         # what the two programs share
    ("server", "server/egress"): {"egress/egress.h"},   # the egress policy parser
}


def _c_files():
    for folder in MAY_USE:
        path = os.path.join(ROOT, folder)
        for name in sorted(os.listdir(path)):
            if name.endswith((".c", ".h")):
                yield folder, os.path.join(path, name)


def _header_homes():
    homes = {}
    for folder, path in _c_files():
        if path.endswith(".h"):
            name = os.path.basename(path)
            assert name not in homes, f"{name} in both {homes[name]} and {folder}"
            homes[name] = folder
    return homes


def layering_problems(files, homes):
    problems = []
    for folder, path in files:
        rel = os.path.relpath(path, ROOT)
        for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', open(path).read(), re.M):
            home = homes.get(os.path.basename(inc))
            if home is None:
                problems.append(f"{rel}: \"{inc}\" is no header of the tree")
            elif home == folder:
                continue
            elif home not in MAY_USE[folder]:
                problems.append(f"{rel} includes {home}/{inc}: {folder}/ may not use {home}/")
            elif (folder, home) in ONLY and inc not in ONLY[folder, home]:
                problems.append(f"{rel} includes {home}/{inc}: of {home}/ only "
                                f"{', '.join(sorted(ONLY[folder, home]))}")
    return problems


def test_includes_run_one_way():
    files = list(_c_files())
    assert len(files) > 40
    assert layering_problems(files, _header_homes()) == []


def test_the_layering_check_sees_an_arrow_running_up(tmp_path):
    homes = _header_homes()
    bad = [("protocol", tmp_path / "up.c"), ("server/cli", tmp_path / "cmd-x.c"),
           ("kernel-shim", tmp_path / "shim-x.c")]
    bad[0][1].write_text('#include "base.h"\n#include "sessions.h"\n')
    bad[1][1].write_text('#include "cli.h"\n#include "server.h"\n')
    bad[2][1].write_text('#include "protocol.h"\n')
    problems = layering_problems([(f, str(p)) for f, p in bad], homes)
    assert len(problems) == 3, problems
    assert "protocol/ may not use sessions/" in problems[0]
    assert "of server/ only shared.h" in problems[1]
    assert "kernel-shim/ may not use protocol/" in problems[2]
