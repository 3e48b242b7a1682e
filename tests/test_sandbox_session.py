"""Sandboxed sessions end to end: the data workload runs unchanged, the
policy prints, and a host that cannot give every protection is refused
unless --allow-weaker-sandbox, which then says what is off everywhere."""
import os
import socket
import shutil
import subprocess
import tempfile
import time

import pytest

from cbtest import BIN, CELLBLOCK, CELLBLOCKD, host_connect_read, run_cell

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
                                   "--state-dir", nobody_state, "--http-listen", "127.0.0.1:0"],
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


LOOPBACK = r'''
import asyncio, socket, threading
from multiprocessing.managers import BaseManager

def echo_once(srv):
    c, _ = srv.accept()
    with c:
        c.sendall(c.recv(64).upper())

got = []
for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.bind((addr, 0))
    srv.listen(1)
    t = threading.Thread(target=echo_once, args=(srv,))
    t.start()
    with socket.create_connection((addr, srv.getsockname()[1]), timeout=10) as c:
        c.sendall(b"ping " + addr.encode())
        got.append(c.recv(64).decode())
    t.join(10)
    srv.close()

async def pair():
    async def handle(r, w):
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()
    server = await asyncio.start_server(handle, "localhost", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("localhost", port)
    w.write(b"asyncio\n")
    line = await r.readline()
    w.close()
    server.close()
    await server.wait_closed()
    return line.decode().strip()
got.append(asyncio.run(pair()))

class M(BaseManager):
    pass
M.register("answer", callable=lambda: 42)
m = M(address=("127.0.0.1", 0), authkey=b"k")
m.start()
got.append(m.answer()._getvalue())
m.shutdown()
print(got)
'''


def test_loopback_sockets_inside_one_session(session):
    """TCP on the session's own lo (issue 10 item 9): an echo server and a
    client over 127.0.0.1 and ::1, an asyncio pair over "localhost", and a
    multiprocessing manager over TCP."""
    reply, out = run_cell(session, LOOPBACK, timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream"
                   and m["content"]["name"] == "stdout")
    assert text.strip() == "['PING 127.0.0.1', 'PING ::1', 'ASYNCIO', 42]", text


def test_host_cannot_reach_a_session_server(session):
    """The session's listener is on its own namespace's loopback: from the
    host its port is closed (or, by chance, someone else's), never it."""
    token = os.urandom(8).hex()
    code = ("import socket, threading\n"
            "srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
            "srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
            "srv.bind(('::', 0)); srv.listen(4)\n"
            "hits = []\n"
            "def serve():\n"
            "    while True:\n"
            "        try: c, p = srv.accept()\n"
            "        except OSError: return\n"
            f"        hits.append(p); c.sendall(b'{token}'); c.close()\n"
            "threading.Thread(target=serve, daemon=True).start()\n"
            "print(srv.getsockname()[1])\n")
    reply, out = run_cell(session, code, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    port = int("".join(m["content"]["text"] for m in out if m["msg_type"] == "stream"))
    for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        assert token.encode() not in (host_connect_read(fam, addr, port) or b"")
    reply, out = run_cell(session, "print(len(hits)); srv.close()", timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert "".join(m["content"]["text"] for m in out
                   if m["msg_type"] == "stream").strip() == "0"
