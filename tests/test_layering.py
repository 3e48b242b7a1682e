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


# The observers (audit log, metrics) hear the rooms through hooks
# (server/hook.c, docs/OPERATIONS.md "Hook points"): these files, the core
# and the rooms beside it, call none of their functions by name.
OBSERVED = ["kernel.c", "incarnation.c", "factory.c", "lifecycle.c", "record.c",
            "transport.c", "egress.c", "hook.c"]
OBSERVER_CALL = re.compile(r"\b((?:audit|metrics)_\w+)\s*\(")


def observer_calls(paths):
    found = []
    for path in paths:
        code = re.sub(r"/\*.*?\*/", " ", open(path).read(), flags=re.S)
        for name in OBSERVER_CALL.findall(code):
            found.append(f"{os.path.basename(path)} calls {name}")
    return found


def test_the_core_calls_no_observer_by_name():
    paths = [os.path.join(ROOT, "server", n) for n in OBSERVED]
    assert all(os.path.exists(p) for p in paths), paths
    assert observer_calls(paths) == []


def test_the_observer_check_sees_a_call(tmp_path):
    bad = tmp_path / "kernel.c"
    bad.write_text("/* audit_lifecycle(s) in a comment is fine */\n"
                   "static void f(void) { metrics_spawn(s); }\n")
    assert observer_calls([str(bad)]) == ["kernel.c calls metrics_spawn"]


# A session's lifecycle state (struct session_lifecycle, sessions.h) has
# one writer, server/lifecycle.c; the others only read it. sessions/session.c
# is its constructor and destructor.
LC_WRITE = re.compile(
    r"->lc\.\w+(?:\[[^\]]*\])*\s*(?:[-+*/|&]?=(?!=)|\+\+|--)"    # assigned
    r"|(?:\+\+|--)\s*\w+->lc\."                                   # ++s->lc.x
    r"|(?:^|[(,=])\s*&\s*\w+->lc\."                               # handed out
    r"|(?:snprintf|memcpy|memset|strlcpy)\(\s*\w+->lc\.")         # filled


def lifecycle_writes(paths):
    found = []
    for path in paths:
        code = re.sub(r"/\*.*?\*/", " ", open(path).read(), flags=re.S)
        for line in code.splitlines():
            if LC_WRITE.search(line):
                found.append(f"{os.path.basename(path)}: {line.strip()}")
    return found


def test_the_lifecycle_state_has_one_writer():
    paths = [p for folder, p in _c_files() if p.endswith(".c") and
             os.path.basename(p) not in ("lifecycle.c", "session.c")]
    assert len(paths) > 40
    assert lifecycle_writes(paths) == []
    # The check sees lifecycle.c's own writes, or it proves nothing.
    assert len(lifecycle_writes([os.path.join(ROOT, "server", "lifecycle.c")])) > 20


def test_the_lifecycle_check_sees_a_write(tmp_path):
    bad = tmp_path / "kernel.c"
    bad.write_text("if (s->lc.ckpt_op != 0 && s->lc.ckpt_op == 1)\n"
                   "\ts->lc.dirty = 1;\n"
                   "loop_timer_cancel(&s->lc.lifecycle_timer);\n"
                   "snprintf(s->lc.fork_to, 3, \"x\");\n")
    assert len(lifecycle_writes([str(bad)])) == 3


# The rooms of server/, top to bottom, as docs/ARCHITECTURE.md ("The rooms
# of server/") draws them: a file calls only the functions of files below
# it; what a lower room tells a higher one goes through a hook or a table.
ROOMS = ["cellblockd.c", "control.c", "lifecycle.c", "factory.c", "kernel.c",
         "incarnation.c", "egress.c", "endpoint.c", "heartbeat.c", "wire.c", "metrics.c",
         "audit.c", "redact.c", "child.c", "notify.c", "transport.c", "hook.c",
         "record.c", "config.c", "connfile.c", "loop.c"]
_DEF = re.compile(r"^([a-z_][a-z0-9_]*)\(", re.M)
_WORD = re.compile(r"\b([a-z_][a-z0-9_]*)\b")


def _server_files():
    d = os.path.join(ROOT, "server")
    return sorted(os.path.join(d, n) for n in os.listdir(d)
                  if n.endswith(".c") and not n.startswith("test-"))


def call_graph(paths):
    """{file: {files whose exported functions it names}}."""
    owner, codes = {}, {}
    for path in paths:
        text = open(path).read()
        name = os.path.basename(path)
        for m in _DEF.finditer(text):
            prev = text[text.rfind("\n", 0, m.start() - 1) + 1:m.start()]
            if "static" not in prev:
                owner[m.group(1)] = name
        code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        codes[name] = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', code)
    return {f: {owner[w] for w in _WORD.findall(c) if owner.get(w, f) != f}
            for f, c in codes.items()}


def graph_problems(graph, rooms):
    problems = []
    rank = {f: i for i, f in enumerate(rooms)}
    for f, callees in sorted(graph.items()):
        for g in sorted(callees):
            if f in rank and g in rank and rank[g] < rank[f]:
                problems.append(f"{f} calls up into {g}")
    # No circle, whether or not a file has its row yet.
    state = {}

    def visit(f, path):
        state[f] = 1
        for g in sorted(graph.get(f, ())):
            if state.get(g) == 1:
                problems.append("circle: " + " -> ".join(path[path.index(g):] + [g]))
            elif g not in state:
                visit(g, path + [g])
        state[f] = 2
    for f in sorted(graph):
        if f not in state:
            visit(f, [f])
    return problems


def test_the_rooms_of_server_call_one_way():
    graph = call_graph(_server_files())
    assert {"incarnation.c", "transport.c"} <= graph["kernel.c"], graph["kernel.c"]
    assert set(ROOMS) <= set(graph), set(ROOMS) - set(graph)
    assert graph_problems(graph, ROOMS) == []


def test_the_room_check_sees_an_arrow_up_and_a_circle(tmp_path):
    (tmp_path / "kernel.c").write_text("void\nkernel_pump(void)\n{\n\tlifecycle_restore();\n}\n")
    (tmp_path / "lifecycle.c").write_text("void\nlifecycle_restore(void)\n{\n\tkernel_pump();\n}\n")
    (tmp_path / "new.c").write_text("void\nnew_a(void)\n{\n\tnew_b();\n}\n"
                                    "void\nnew_b(void)\n{\n}\n")
    graph = call_graph(sorted(str(p) for p in tmp_path.iterdir()))
    problems = graph_problems(graph, ROOMS)
    assert "kernel.c calls up into lifecycle.c" in problems
    assert any(p.startswith("circle: ") for p in problems), problems
    assert len(problems) == 2, problems
