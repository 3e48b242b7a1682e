# Session checkpoints end to end: checkpoint in one runner, restore in a fresh one.

import hashlib
import os
import resource
import stat
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner_harness import of_type, streams

OP_TIMEOUT = 60.0   # a first checkpoint imports dill; a restore imports numpy and pandas

# A small data analysis, with two things no checkpoint can hold: an open
# file and a generator.
ANALYSIS = [
    """\
import os
import numpy as np
import pandas as pd
import xml.etree.ElementTree
from os import path as osp
rng = np.random.default_rng(7)
""",
    """\
sales = pd.DataFrame({"region": ["north", "south", "east", "west"] * 250,
                      "units": rng.integers(1, 100, 1000),
                      "price": rng.random(1000) * 20})
matrix = rng.random((50, 40))
ids = np.arange(1000, dtype=np.int64)
threshold = 0.75
label = "Q3 report"
counts = {"north": 3, "south": 5}
history = [1.5, 2.5, None]
""",
    """\
def revenue(frame):
    return float((frame.units * frame.price).sum())

scale = lambda v: v * threshold

def make_scaler(k):
    def scaler(v):
        return v * k
    return scaler
triple = make_scaler(3)

class Region:
    def __init__(self, name, frame):
        self.name, self.frame = name, frame
    def total(self):
        return revenue(self.frame[self.frame.region == self.name])

north = Region("north", sales)
regions = [north, Region("south", sales)]
""",
    "log = open('analysis.log', 'w')\n"
    "batches = (sales.iloc[i:i + 100] for i in range(0, 1000, 100))",
    "sales.groupby('region').units.sum()",
    "os.makedirs('results', exist_ok=True)\nos.chdir('results')",
    "revenue(sales)",
]
SAVED = ["rng", "sales", "matrix", "ids", "threshold", "label", "counts", "history",
         "revenue", "scale", "make_scaler", "triple", "Region", "north", "regions"]
MODULES = {"os": "os", "np": "numpy", "pd": "pandas", "xml": "xml", "osp": "posixpath"}

# Evaluated before the checkpoint and after each restore: the two reprs must match.
# In[:K] is In[0] ('') and the ANALYSIS cells, the same in every incarnation.
PROBE = """(
    round(revenue(sales), 6), round(north.total(), 6), scale(2), triple(5),
    threshold, label, counts, history, sales.shape, matrix.shape, int(ids.sum()),
    isinstance(north, Region), regions[0] is north, regions[1].frame is sales,
    osp.join("a", "b"), xml.etree.ElementTree.fromstring("<a><b/></a>")[0].tag,
    os.getcwd(), hashlib_digest(repr(In[:K])), sorted(k for k in Out if k < K),
    _i1 == In[1],
)"""
PROBE_HELPERS = "import hashlib as _h\nhashlib_digest = lambda s: _h.sha256(s.encode()).hexdigest()"


# ------------------------------------------------------------------ helpers

def run(session, code):
    """Execute code that must succeed → (iopub, reply)."""
    iopub, reply = session.execute(code, timeout=OP_TIMEOUT)
    assert reply["status"] == "ok", (code, reply, streams(iopub))
    return iopub, reply


def result(session, code):
    """text/plain of a successful expression."""
    return counted_result(session, code)[0]


def counted_result(session, code):
    """(text/plain of a successful expression, the cell's execution count)."""
    iopub, _ = run(session, code)
    return (of_type(iopub, "execute_result")[0]["content"]["data"]["text/plain"],
            iopub[0]["content"]["execution_count"])


def next_count(session):
    """Run a `pass` cell → the execution count it got."""
    iopub, _ = run(session, "pass")
    return iopub[0]["content"]["execution_count"]


def op(session, msg):
    session.send(msg)
    reply = session.recv(timeout=OP_TIMEOUT)
    assert reply["op"] == msg["op"] + "_done" and reply["id"] == msg["id"], reply
    return reply


def checkpoint(session, path, rid=1):
    return op(session, {"op": "checkpoint", "id": rid, "path": str(path)})


def restore(session, path, sha256, rid=2):
    return op(session, {"op": "restore", "id": rid, "path": str(path), "sha256": sha256})


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def analysis_session(make_session):
    """A session that ran ANALYSIS → (session, probe repr, K, count of its last cell)."""
    session = make_session()
    for cell in ANALYSIS:
        run(session, cell)
    k = next_count(session)         # = len(ANALYSIS) + 1
    run(session, PROBE_HELPERS)
    expected, count = counted_result(session, "K = %d\n%s" % (k, PROBE))
    return session, expected, k, count


def probe(session, k):
    return result(session, "K = %d\n%s" % (k, PROBE))


def user_names(session):
    return result(session, "sorted(n for n in globals() if not n.startswith('_') "
                           "and n not in get_ipython().user_ns_hidden)")


# ------------------------------------------------------------------ round trips

def test_analysis_survives_checkpoint_and_restore(make_session, tmp_path):
    first, expected, k, count = analysis_session(make_session)
    path = tmp_path / "state" / ".cellblock" / "checkpoint"
    done = checkpoint(first, path)
    assert done["ok"] is True, done

    manifest = done["manifest"]
    saved = {e["name"]: e for e in manifest["saved"]}
    assert set(SAVED) | {"K", "hashlib_digest"} <= set(saved)
    assert saved["sales"]["type"] == "pandas.core.frame.DataFrame" and saved["sales"]["bytes"] > 0
    assert saved["Region"]["type"] == "type" and saved["north"]["type"] == "__main__.Region"
    skipped = {e["name"]: e for e in manifest["skipped"]}
    assert set(skipped) == {"log", "batches"}
    assert "open file 'analysis.log'" in skipped["log"]["reason"]
    assert skipped["batches"]["reason"] == "TypeError: cannot pickle 'generator' object"
    assert skipped["batches"]["type"] == "generator"
    assert {n: manifest["modules"][n] for n in MODULES} == MODULES
    assert manifest["format"] == 1 and manifest["python"].startswith("3.")
    assert manifest["cwd"] == str(first.workdir / "results")

    assert done["bytes"] == path.stat().st_size and done["sha256"] == sha256_of(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["checkpoint"]     # no temporary file left behind

    second = make_session()
    back = restore(second, path, done["sha256"])
    assert back["ok"] is True, back
    assert set(SAVED) <= set(back["restored"])
    assert sorted(back["modules"]) == sorted(list(MODULES) + ["_h"])
    assert back["lost"] == [] and back["warnings"] == []
    assert {e["name"] for e in back["skipped"]} == {"log", "batches"}
    assert back["execution_count"] == manifest["execution_count"] == count + 1

    assert next_count(second) == count + 1      # numbering continues
    assert probe(second, k) == expected
    assert "log" not in user_names(second) and "batches" not in user_names(second)


def test_values_are_equal_after_restore(make_session, tmp_path):
    first = analysis_session(make_session)[0]
    reference = tmp_path / "reference.pkl"   # plain pickle of the data, to compare against
    run(first, "import pickle\npickle.dump({'sales': sales, 'matrix': matrix, 'ids': ids}, "
               "open(%r, 'wb'))" % str(reference))
    path = tmp_path / "ckpt"
    done = checkpoint(first, path)
    second = make_session()
    assert restore(second, path, done["sha256"])["ok"]
    run(second, """\
import pickle
ref = pickle.load(open(%r, 'rb'))
assert sales.equals(ref['sales'])
assert np.array_equal(matrix, ref['matrix']) and np.array_equal(ids, ref['ids'])
assert ids.dtype == np.int64 and matrix.flags.writeable
assert scale(4) == 3.0 and triple(2) == 6 and make_scaler(2)(5) == 10
assert north.total() == revenue(sales[sales.region == 'north'])
threshold = 2.0
assert scale(4) == 8.0      # functions see the live namespace, not a copy of it
sales.loc[0, 'units'] = 10**6
assert regions[1].frame.loc[0, 'units'] == 10**6    # still one DataFrame
""" % str(reference))


def test_three_cycles_keep_everything(make_session, tmp_path):
    session, expected, k, _ = analysis_session(make_session)
    run(session, "runs = []")
    for cycle in range(3):
        run(session, "runs.append(%d)" % cycle)
        count = next_count(session)
        path = tmp_path / "ckpt"
        done = checkpoint(session, path, rid=10 + cycle)
        assert done["ok"], done
        session = make_session()
        back = restore(session, path, done["sha256"], rid=20 + cycle)
        assert back["ok"] and back["lost"] == [], back
        # In holds In[0] and cells 1..count, then this cell.
        assert counted_result(session, "len(In)") == (str(count + 2), count + 1)
        assert probe(session, k) == expected
        assert result(session, "runs") == repr(list(range(cycle + 1)))


def test_identity_between_variables_is_kept(make_session, tmp_path):
    first = make_session()
    run(first, """\
import dataclasses, functools
class Node:
    def __init__(self, name, parent=None):
        self.name, self.parent, self.children = name, parent, []
        if parent is not None:
            parent.children.append(self)
root = Node("root")
leaf = Node("leaf", root)          # root and leaf refer to each other
config = {"lr": 0.1}
class Model:
    def __init__(self, cfg):
        self.cfg = cfg
model = Model(config)
alias = model
@dataclasses.dataclass
class Point:
    x: int
    y: int
    def norm(self):
        return (self.x ** 2 + self.y ** 2) ** 0.5
points = {"a": Point(3, 4)}
@functools.lru_cache
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
class Base:
    def __init__(self):
        self.tag = "base"
class Child(Base):
    def __init__(self):
        super().__init__()
        self.tag += "+child"
child = Child()
ip = get_ipython()
""")
    run(first, "model")     # Out[2] is the same object as `model`
    path = tmp_path / "ckpt"
    done = checkpoint(first, path)
    saved = {e["name"]: e for e in done["manifest"]["saved"]}
    assert saved["alias"]["alias_of"] == "model" and saved["alias"]["bytes"] == 0
    assert saved["root"]["ring"] == saved["leaf"]["ring"]
    second = make_session()
    back = restore(second, path, done["sha256"])
    assert back["ok"] and back["lost"] == [], back
    run(second, """\
assert leaf.parent is root and root.children[0] is leaf
assert model.cfg is config and alias is model and Out[2] is model
assert isinstance(model, Model) and isinstance(points["a"], Point)
assert points["a"] == Point(3, 4) and points["a"].norm() == 5.0
assert fib(30) == 832040
assert child.tag == "base+child" and isinstance(child, Base)
assert ip is get_ipython()
""")


def test_unsaveable_values_are_skipped_with_reasons(make_session, tmp_path):
    first = make_session()
    run(first, """\
import enum, socket, sqlite3, sys, threading, types
sock = socket.socket()
db = sqlite3.connect(":memory:")
worker = threading.Thread(target=print)
frame = sys._getframe()
gen = (i for i in range(3))
handles = {"db": db}                 # holds an unsaveable value itself
class Color(enum.Enum):
    RED = 1
favourite = Color.RED                # in a ring with its class, which cannot be saved
dynamic = types.ModuleType("dynamic")
kept = [1, 2, 3]
""")
    done = checkpoint(first, tmp_path / "ckpt")
    assert done["ok"], done
    reasons = {e["name"]: e["reason"] for e in done["manifest"]["skipped"]}
    assert reasons["sock"] == "TypeError: cannot pickle 'socket' object"
    assert reasons["db"] == "TypeError: cannot pickle 'sqlite3.Connection' object"
    assert "cannot checkpoint a thread" in reasons["worker"]
    assert reasons["frame"] == "TypeError: cannot pickle 'frame' object"
    assert reasons["gen"] == "TypeError: cannot pickle 'generator' object"
    assert reasons["handles"] == "refers to 'db', which could not be saved"
    assert "Color" in reasons["Color"] and "re-run its definition" in reasons["Color"]
    assert reasons["favourite"] == reasons["Color"]
    assert "made at run time" in reasons["dynamic"]
    assert all(len(r) <= 200 for r in reasons.values())
    assert [e["name"] for e in done["manifest"]["saved"]] == ["kept"]


def test_names_lost_on_restore_are_reported(make_session, tmp_path):
    first = make_session()
    helper = first.workdir / "helper_mod.py"
    helper.write_text("class Thing:\n    pass\n")
    run(first, "import helper_mod\nthing = helper_mod.Thing()\nother = 5")
    done = checkpoint(first, tmp_path / "ckpt")
    helper.unlink()                 # the next incarnation cannot import it
    second = make_session()
    back = restore(second, tmp_path / "ckpt", done["sha256"])
    assert back["ok"], back
    lost = {e["name"]: e["reason"] for e in back["lost"]}
    assert lost["helper_mod"].startswith("import helper_mod failed: ModuleNotFoundError")
    assert lost["thing"].startswith("ModuleNotFoundError")
    assert back["restored"] == ["other"] and back["modules"] == []
    assert result(second, "other") == "5"


def test_checkpoint_sends_no_output(make_session, tmp_path):
    session = make_session()
    run(session, "class Noisy:\n"
                 "    def __getstate__(self):\n"
                 "        print('pickling!'); import os; os.write(2, b'fd output\\n')\n"
                 "        return {}\n"
                 "noisy = Noisy()")
    session.send({"op": "checkpoint", "id": 5, "path": str(tmp_path / "ckpt")})
    first_message = session.recv(timeout=OP_TIMEOUT)
    assert first_message["op"] == "checkpoint_done" and first_message["ok"], first_message
    iopub, _ = run(session, "'next'")
    assert streams(iopub) == ""     # nothing of the checkpoint leaks into the next cell


# ------------------------------------------------------------------ refused restores

def _assert_clean(session):
    """Only the cells run since: `pass`, then the two below."""
    assert user_names(session) == "[]"
    assert result(session, "len(In), sorted(Out)") == "(4, [2])"


@pytest.mark.parametrize("damage", ["truncate", "flip", "wrong-sha", "missing"])
def test_damaged_checkpoint_is_refused(make_session, tmp_path, damage):
    first = make_session()
    run(first, "import numpy as np\nsecret = np.arange(10)\nvalue = 1")
    path = tmp_path / "ckpt"
    done = checkpoint(first, path)
    sha = done["sha256"]
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "flip":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:])
    elif damage == "wrong-sha":
        sha = hashlib.sha256(b"something else").hexdigest()
    else:
        path.unlink()
    second = make_session()
    back = restore(second, path, sha)
    assert back["ok"] is False
    expected = "checkpoint missing: " if damage == "missing" else \
        "checkpoint corrupted: sha256 mismatch"
    assert back["error"].startswith(expected), back
    assert next_count(second) == 1
    _assert_clean(second)


def test_bad_requests_are_refused(session, tmp_path):
    for msg, error in [
        ({"op": "checkpoint", "id": 1, "path": "relative/ckpt"}, "bad request: path"),
        ({"op": "checkpoint", "id": 2}, "bad request: path"),
        ({"op": "restore", "id": 3, "path": str(tmp_path / "x"), "sha256": "abc"},
         "bad request: sha256"),
    ]:
        reply = op(session, msg)
        assert reply["ok"] is False and reply["error"].startswith(error), reply
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    reply = checkpoint(session, blocker / "ckpt", rid=4)
    assert reply["ok"] is False and "Errno" in reply["error"], reply
    session.send({"op": "checkpoint", "id": 0, "path": str(tmp_path / "ignored")})
    assert result(session, "'alive'") == "'alive'"   # no reply to an op without a valid id
    assert not (tmp_path / "ignored").exists()


# ------------------------------------------------------------------ failing writes

def _checkpoint_fails_keeping_old(session, path):
    """Checkpoint once (small), grow the session, checkpoint again and
    expect the write to fail: the old file must survive byte for byte."""
    run(session, "small = list(range(10))")
    done = checkpoint(session, path, rid=1)
    assert done["ok"], done
    before = path.read_bytes()
    run(session, "import os\nbig = os.urandom(4 * 2**20)")
    failed = checkpoint(session, path, rid=2)
    assert failed["ok"] is False, failed
    assert path.read_bytes() == before and sha256_of(path) == done["sha256"]
    assert os.listdir(path.parent) == [path.name]    # the temporary file was removed
    assert result(session, "len(big), small[-1]") == "(4194304, 9)"    # still usable
    return failed["error"]


def test_disk_full_keeps_previous_checkpoint(session, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs",
                              str(mnt)], capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip("cannot mount tmpfs here: %s" % mounted.stderr.strip())
    try:
        error = _checkpoint_fails_keeping_old(session, mnt / "ckpt")
        assert "No space left on device" in error and error.startswith("checkpoint failed: ")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=30)


def test_file_size_limit_keeps_previous_checkpoint(session, tmp_path):
    # A write error on any machine, root or not: the runner's RLIMIT_FSIZE.
    old = resource.prlimit(session.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(session.pid, resource.RLIMIT_FSIZE, (2**20, old[1]))
    try:
        error = _checkpoint_fails_keeping_old(session, tmp_path / "dir" / "ckpt")
        assert "File too large" in error
    finally:
        resource.prlimit(session.pid, resource.RLIMIT_FSIZE, old)


# ------------------------------------------------------------------ speed

def test_100mb_dataframe_is_fast(make_session, tmp_path):
    first = make_session()
    run(first, "import numpy as np, pandas as pd\n"
               "n = 100 * 2**20 // 32\n"
               "big = pd.DataFrame({c: np.random.rand(n) for c in 'abcd'})\n"
               "fingerprint = float(big.values.sum())")
    path = tmp_path / "ckpt"
    started = time.perf_counter()
    done = checkpoint(first, path)
    checkpoint_seconds = time.perf_counter() - started
    assert done["ok"] and done["bytes"] > 100 * 2**20, done
    second = make_session()
    run(second, "import numpy, pandas")     # a zygote has them preloaded
    started = time.perf_counter()
    back = restore(second, path, done["sha256"])
    restore_seconds = time.perf_counter() - started
    assert back["ok"] and back["lost"] == [], back
    assert result(second, "float(big.values.sum()) == fingerprint") == "True"
    print("100 MB DataFrame: checkpoint %.2fs, restore %.2fs" % (checkpoint_seconds,
                                                                  restore_seconds))
    # ~0.2 s each here; the bound leaves room for a loaded CI machine.
    assert checkpoint_seconds < 3 and restore_seconds < 3
