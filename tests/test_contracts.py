"""Contracts between the C and the Python halves, checked by code: the
zygote's struct zygote_request against its ctypes Request, and every
channel op against the one list in docs/CHANNEL.md."""
import ast
import ctypes
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

from cbtest import BIN, PYTHON, ROOT

RUNNER_DIR = os.path.join(ROOT, "kernel-shim", "runner")
ZYGOTE_LIB = os.path.join(BIN, "cellblock-zygote.so")
ZYGOTE_PY = os.path.join(RUNNER_DIR, "cellblock_zygote.py")
CHANNEL_MD = os.path.join(ROOT, "docs", "CHANNEL.md")
TABLE_HEADING = "## Every op, in one list"


def _zygote_module():
    sys.path.insert(0, RUNNER_DIR)
    try:
        import cellblock_zygote
    finally:
        sys.path.remove(RUNNER_DIR)
    return cellblock_zygote


# ---- the zygote's request struct -----------------------------------------

def test_zygote_request_layout_matches_the_shared_object():
    z = _zygote_module()
    lib = ctypes.CDLL(ZYGOTE_LIB)
    z.check_layout(lib)     # raises on any difference
    # And it is a real comparison: the C half reports every field.
    lib.zygote_child_layout.restype = ctypes.c_char_p
    import json
    c = json.loads(lib.zygote_child_layout())
    size, fields = z.request_layout()
    assert (c["size"], [tuple(f) for f in c["fields"]]) == (size, fields)
    assert [f[0] for f in fields] == [n for n, _ in z.Request._fields_]


@pytest.mark.parametrize("change", ["swap", "drop", "narrow"])
def test_zygote_check_refuses_each_kind_of_mismatch(change):
    z = _zygote_module()
    fields = list(z.Request._fields_)
    names = [n for n, _ in fields]
    if change == "swap":        # same sizes, other order: the silent kind
        i, j = names.index("tmp"), names.index("nofile")
        fields[i], fields[j] = fields[j], fields[i]
    elif change == "drop":
        del fields[names.index("rootfs")]
    else:
        fields[names.index("threads")] = ("threads", ctypes.c_int16)
    bad = type("Request", (ctypes.Structure,), {"_fields_": fields})
    with pytest.raises(z.LayoutMismatch) as e:
        z.check_layout(ctypes.CDLL(ZYGOTE_LIB), bad)
    assert "struct zygote_request" in str(e.value)


@pytest.mark.parametrize("name, value", [("CHANNEL_FD", 4), ("SANDBOX_RUNNER_DIR", "/opt/x"),
                                         ("INIT_WAIT_FD", 5)])
def test_zygote_check_refuses_other_shared_constants(monkeypatch, name, value):
    """The channel's fd in the clone, where the runner shows inside and the
    fd of pid 1's exec wait are the C half's too: a difference is refused
    like a layout's."""
    z = _zygote_module()
    lib = ctypes.CDLL(ZYGOTE_LIB)
    z.check_layout(lib)
    monkeypatch.setattr(z, name, value)
    with pytest.raises(z.LayoutMismatch) as e:
        z.check_layout(lib)
    assert "the shared object puts the channel at fd 3, the runner at " \
        "/opt/cellblock/runner and the wait for pid 1 at fd 4" in str(e.value)


def test_zygote_refuses_to_start_with_a_mismatched_request(tmp_path):
    """The real start path (main → _load) with the real shared object and
    a copy of cellblock_zygote.py whose Request has two same-sized fields
    swapped: it must say why and exit before sending "ready"."""
    text = open(ZYGOTE_PY).read()
    a = '                ("tmp", ctypes.c_uint64),\n'
    b = '                ("nofile", ctypes.c_uint64),\n'
    assert a + b in text
    bad = tmp_path / "cellblock_zygote.py"
    bad.write_text(text.replace(a + b, b + a))
    # The copy's siblings (cellblock_channel, ...) are the real ones.
    for name in os.listdir(RUNNER_DIR):
        if name.endswith(".py") and name != "cellblock_zygote.py":
            shutil.copy(os.path.join(RUNNER_DIR, name), tmp_path / name)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        p = subprocess.run([PYTHON, "-I", str(bad), "--control-fd", str(theirs.fileno()),
                            "--lib", ZYGOTE_LIB], pass_fds=[theirs.fileno()],
                           capture_output=True, text=True, timeout=60)
        theirs.close()
        ours.settimeout(5)
        said = ours.recv(65536)
    finally:
        ours.close()
        theirs.close()
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "refusing to start" in p.stderr and "struct zygote_request" in p.stderr, p.stderr
    assert "('tmp', 48, 8), Python ('nofile', 48, 8)" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert said == b"", said


# ---- channel ops ------------------------------------------------------------

# Which files are which side (docs/CHANNEL.md, "Every op, in one list").
SIDES = {
    "daemon": ("c", ["server", "sessions"]),
    "shim": ("c", ["kernel-shim"]),
    "runner": ("py", ["kernel-shim/runner"]),
    "zygote": ("py", ["kernel-shim/runner/cellblock_zygote.py"]),
}
# Not the session channel: the daemon and cellblock-egress speak their own
# four ops (add, del, ready, log) over the proxy's control socket
# (docs/SECURITY.md, "Egress").
OTHER_CHANNELS = {"server/egress.c", "server/egress"}


def _side_files(side):
    lang, places = SIDES[side]
    out = []
    for place in places:
        path = os.path.join(ROOT, place)
        if os.path.isfile(path):
            out.append(path)
            continue
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if not name.endswith("." + lang) or name.startswith("test-"):
                continue
            if side == "runner" and name == "cellblock_zygote.py":
                continue
            if os.path.relpath(full, ROOT) in OTHER_CHANNELS:
                continue
            out.append(full)
        if lang == "c" and place == "server":   # server/*/*.c, but not the CLI
            for sub in sorted(os.listdir(path)):
                subdir = os.path.join(path, sub)
                if (os.path.isdir(subdir) and sub != "cli" and
                        os.path.relpath(subdir, ROOT) not in OTHER_CHANNELS):
                    out += [os.path.join(subdir, n) for n in sorted(os.listdir(subdir))
                            if n.endswith(".c") and not n.startswith("test-")]
    return out


def parse_op_table(text):
    """The rows of the op table: {op: (from, to, sent)}."""
    part = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in part.splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|([^|]*)\|([^|]*)\|", line)
        if m:
            op, frm, to = m.group(1), m.group(2).strip(), m.group(3).strip()
            assert op not in rows, f"{op} listed twice"
            rows[op] = (frm.split()[0], to.split()[0], "not sent" not in frm)
    return rows


_C_TOKEN = re.compile(r'("(?:\\.|[^"\\\n])*")|/\*.*?\*/|//[^\n]*', re.S)


def _c_code(path):
    """The file with comments blanked, strings kept."""
    return _C_TOKEN.sub(lambda m: m.group(1) or " ", open(path).read())


def c_ops(path):
    """(sent, handled) op names of a C file: json_pack("{s:s...}", "op",
    "X", ...) sends; strcmp(op, "X") and rows of a table named *_ops[]
    handle."""
    code = _c_code(path)
    sent = set(re.findall(r'"op"\s*,\s*"(\w+)"', code))
    handled = set(re.findall(r'strcmp\(\s*op\s*,\s*"(\w+)"\s*\)', code))
    # The supervisor's table is filled at start: incarnation_handle("X", fn).
    handled |= set(re.findall(r'incarnation_handle\(\s*"(\w+)"\s*,', code))
    for table in re.findall(r'\w+_ops\[\w*\]\s*=\s*\{(.*?)\};', code, re.S):
        handled |= set(re.findall(r'\{\s*"(\w+)"\s*,', table))
    return sent, handled


def _is_op_expr(node):
    """op, x.get("op"), x["op"]."""
    if isinstance(node, ast.Name):
        return node.id == "op"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return (node.func.attr == "get" and node.args and
                isinstance(node.args[0], ast.Constant) and node.args[0].value == "op")
    if isinstance(node, ast.Subscript):
        s = node.slice
        return isinstance(s, ast.Constant) and s.value == "op"
    return False


def _strings(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(_strings(e) for e in node.elts)) if node.elts else set()
    return set()


def py_ops(path):
    """(sent, handled) op names of a Python file: {"op": "X"} sends; a
    comparison of op / .get("op") / ["op"] with "X" or ("X", ...) handles."""
    tree = ast.parse(open(path).read(), path)
    sent, handled = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == "op":
                    sent |= _strings(v)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_op_expr(s) for s in sides):
                for s in sides:
                    handled |= _strings(s)
    return sent, handled


def py_table_ops():
    """Ops the runner dispatches through a table rather than spelling them
    in a comparison: cellblock_checkpoint.OPS, op → (function, reply op)."""
    sys.path.insert(0, RUNNER_DIR)
    try:
        import cellblock_checkpoint
    finally:
        sys.path.remove(RUNNER_DIR)
    ops = cellblock_checkpoint.OPS
    return {done for _, done in ops.values()}, set(ops)


def tree_ops():
    """{side: (sent, handled)} as the code of each side spells them."""
    out = {}
    for side, (lang, _) in SIDES.items():
        sent, handled = set(), set()
        for path in _side_files(side):
            s, h = (c_ops if lang == "c" else py_ops)(path)
            sent |= s
            handled |= h
        out[side] = [sent, handled]
    s, h = py_table_ops()
    out["runner"][0] |= s
    out["runner"][1] |= h
    return out


def op_problems(rows, used):
    """Every disagreement between the table and the code, as sentences."""
    problems = []
    for side, (sent, handled) in used.items():
        for op in sorted(sent):
            if op not in rows:
                problems.append(f"{side} sends '{op}', which docs/CHANNEL.md does not list")
            elif rows[op][0] != side:
                problems.append(f"{side} sends '{op}', listed as sent by {rows[op][0]}")
        for op in sorted(handled - sent):
            if op not in rows:
                problems.append(f"{side} handles '{op}', which docs/CHANNEL.md does not list")
            elif side not in rows[op][:2]:
                problems.append(f"{side} handles '{op}', listed between "
                                f"{rows[op][0]} and {rows[op][1]}")
    for op, (frm, to, is_sent) in sorted(rows.items()):
        if frm not in used or to not in used:
            problems.append(f"'{op}': unknown side {frm if frm not in used else to}")
            continue
        if is_sent and op not in used[frm][0]:
            problems.append(f"'{op}' is listed as sent by {frm}, whose code never sends it")
        if not is_sent and op in used[frm][0]:
            problems.append(f"'{op}' is listed as not sent, but {frm} sends it")
        if op not in used[to][1]:
            problems.append(f"'{op}' is listed as handled by {to}, whose code never handles it")
    return problems


def test_every_channel_op_is_in_the_one_list_and_the_list_is_all_used():
    rows = parse_op_table(open(CHANNEL_MD).read())
    assert len(rows) >= 14, rows
    used = tree_ops()
    # The scan found the ops both languages really use, or this proves nothing.
    assert {"request", "contain_go", "spawn"} <= used["daemon"][0], used["daemon"]
    assert {"hello", "iopub", "reply", "contain", "checkpoint_done"} <= used["daemon"][1]
    assert {"hello", "iopub", "reply", "input_request"} <= used["runner"][0]
    assert {"request", "input_reply", "checkpoint"} <= used["runner"][1]
    assert {"contain_go", "contain_fail"} <= used["shim"][1]
    assert op_problems(rows, used) == []


def test_the_op_check_fails_on_a_missing_row_and_on_an_unused_one():
    text = open(CHANNEL_MD).read()
    used = tree_ops()
    # A row taken out: the code still sends and handles it.
    without = re.sub(r"^\| `input_request` \|.*\n", "", text, flags=re.M)
    assert "input_request" not in parse_op_table(without)
    problems = op_problems(parse_op_table(without), used)
    assert "runner sends 'input_request', which docs/CHANNEL.md does not list" in problems
    assert "daemon handles 'input_request', which docs/CHANNEL.md does not list" in problems
    # A row no side uses.
    extra = text.replace("| `spawned` |", "| `respawned` | zygote | daemon | docs/ZYGOTE.md |\n"
                         "| `spawned` |", 1)
    problems = op_problems(parse_op_table(extra), used)
    assert problems == [
        "'respawned' is listed as sent by zygote, whose code never sends it",
        "'respawned' is listed as handled by daemon, whose code never handles it"]
    # A row with the wrong direction.
    flipped = re.sub(r"^\| `hello` \| runner \| daemon \|", "| `hello` | daemon | runner |",
                     text, flags=re.M)
    problems = op_problems(parse_op_table(flipped), used)
    assert "runner sends 'hello', listed as sent by daemon" in problems
