"""Sandboxed sessions end to end: the data workload runs unchanged, the
policy prints, and a host that cannot give every protection is refused
unless --allow-weaker-sandbox, which then says what is off everywhere."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from cbtest import BIN, CELLBLOCK, CELLBLOCKD, run_cell

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

WORKLOAD = r'''
import multiprocessing, sqlite3, subprocess, io, os
import numpy as np, pandas as pd
import matplotlib
import matplotlib.pyplot as plt
a = np.arange(12.0).reshape(3, 4)
df = pd.DataFrame(a, columns=list("wxyz"))
db = sqlite3.connect("work.db")
db.execute("create table t (x)")
db.executemany("insert into t values (?)", [(i,) for i in range(5)])
db.commit()
total = db.execute("select sum(x) from t").fetchone()[0]
with multiprocessing.Pool(2) as pool:
    squares = pool.map(abs, [-1, -2, -3])
echo = subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout
fig, ax = plt.subplots()
ax.plot(df.w, df.z)
buf = io.BytesIO(); fig.savefig(buf, format="png")
print(int(a.sum()), total, squares, echo.strip(), buf.getvalue()[:4] == b"\x89PNG", os.getuid())
'''


def test_data_workload_runs_unchanged(session):
    reply, out = run_cell(session, WORKLOAD, timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream"
                   and m["content"]["name"] == "stdout")
    assert text.strip() == "66 10 [1, 2, 3] hi True 1000", text
    # the figure was also shown inline at the end of the cell
    assert any(m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]
               for m in out)


def test_shim_prints_its_seccomp_policy():
    p = subprocess.run([os.path.join(BIN, "cellblock-shim"), "--print-policy"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    for word in ("ptrace", "bpf", "io_uring_setup", "clone3", "ENOSYS", "EPERM"):
        assert word in p.stdout, word


@pytest.fixture
def nobody_state():
    d = tempfile.mkdtemp(prefix="cb-weak-")
    os.chown(d, 65534, 65534)
    os.chmod(d, 0o755)
    yield d
    subprocess.run(["pkill", "-f", f"state-dir {d}"], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def test_weaker_host_is_refused_without_the_flag(nobody_state):
    p = subprocess.run(NOBODY + [CELLBLOCKD, "--foreground", "--state-dir", nobody_state],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "--allow-weaker-sandbox" in p.stderr
    assert "cgroups" in p.stderr and "uid" in p.stderr


def test_weaker_host_says_what_is_off(nobody_state):
    log = open(os.path.join(nobody_state, "test.log"), "w")
    d = subprocess.Popen(NOBODY + [CELLBLOCKD, "--foreground", "--allow-weaker-sandbox",
                                   "--state-dir", nobody_state],
                         stdout=log, stderr=subprocess.STDOUT)
    env = dict(os.environ, CELLBLOCK_STATE_DIR=nobody_state)
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(os.path.join(nobody_state, "control.sock")):
            assert d.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        path = subprocess.run(NOBODY + [CELLBLOCK, "new", "--name", "weak"], env=env,
                              capture_output=True, text=True, timeout=30).stdout.strip()
        ls = subprocess.run(NOBODY + [CELLBLOCK, "ls"], env=env, capture_output=True,
                            text=True, timeout=30)
        assert "WARNING: weaker sandbox" in ls.stdout and "cgroups" in ls.stdout
        with open(os.path.join(nobody_state, "test.log")) as f:
            assert "WEAKER SANDBOX" in f.read()
        from jupyter_client import BlockingKernelClient
        kc = BlockingKernelClient(connection_file=path)
        kc.load_connection_file()
        kc.start_channels()
        try:
            info = kc.kernel_info(reply=True, timeout=30)
            assert "WEAKER SANDBOX" in info["content"]["banner"]
        finally:
            kc.stop_channels()
    finally:
        d.terminate()
        d.wait(timeout=15)
        log.close()
