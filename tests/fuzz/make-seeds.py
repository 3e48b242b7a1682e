#!/usr/bin/python3
"""make-seeds.py: (re)write the fuzz seed corpus in tests/fuzz/corpus/.

The seeds are real traffic where it can be had: Jupyter messages
serialized by jupyter_client's Session, what the real runner writes on its
channel, what the real CLI (bin/cellblock) sends to a control socket.
Run from anywhere after `make all`; the files are checked in, so this is
needed only to refresh them. Input formats: see each tests/fuzz/fuzz-*.c.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading

from jupyter_client.session import Session

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
FUZZ_KEY = b"5c1f8e0a-cellblock-fuzz-key"      # fuzz-jmsg.c's FUZZ_KEY
SEP = b"\x1f"
RUNNER = os.path.join(ROOT, "kernel-shim", "runner", "cellblock_runner.py")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- jmsg: flags byte, then frames joined by 0x1f ---------------------------

def jmsg_input(flags, frames):
    return bytes([flags]) + SEP.join(frames)


def jmsg_seeds():
    signed = Session(key=FUZZ_KEY, username="user", session="demo")
    plain = Session(key=b"", username="user", session="demo")
    ident = [b"c0ffee00-routing-id"]

    def frames(sess, msg_type, content, parent=None, ids=ident, buffers=None):
        msg = sess.msg(msg_type, content, parent=parent)
        if buffers:
            msg["buffers"] = buffers
        return sess.serialize(msg, ident=ids)

    execute = {"code": "x = 1\nprint(x)", "silent": False, "store_history": True,
               "user_expressions": {}, "allow_stdin": True, "stop_on_error": True}
    write("jmsg", "kernel-info-unsigned", jmsg_input(0x00, frames(plain, "kernel_info_request", {})))
    write("jmsg", "execute-signed", jmsg_input(0x01, frames(signed, "execute_request", execute)))
    write("jmsg", "execute-resigned-replayed",
          jmsg_input(0x07, frames(signed, "execute_request", execute)))
    comm = {"comm_id": "a1b2", "data": {"method": "update", "state": {"value": 3}}}
    write("jmsg", "comm-msg-buffers-signed",
          jmsg_input(0x03, frames(signed, "comm_msg", comm, buffers=[b"\x00\x01\x02", b"buf"])))
    write("jmsg", "complete-two-ids",
          jmsg_input(0x03, frames(signed, "complete_request", {"code": "import o", "cursor_pos": 8},
                                  ids=[b"router-a", b"router-b"])))
    reply_parent = signed.msg_header("execute_request")
    write("jmsg", "shutdown-with-parent",
          jmsg_input(0x03, frames(signed, "shutdown_request", {"restart": False},
                                  parent={"header": reply_parent})))
    write("jmsg", "history-no-ids",
          jmsg_input(0x02, frames(plain, "history_request",
                                  {"hist_access_type": "tail", "n": 10, "output": False,
                                   "raw": True}, ids=[])))
    f = frames(signed, "execute_request", execute)
    f[2] = b"0" * 64
    write("jmsg", "bad-signature", jmsg_input(0x01, f))
    write("jmsg", "over-limit", jmsg_input(0x08, frames(plain, "is_complete_request",
                                                       {"code": "for i in x:"})))
    write("jmsg", "no-delimiter", jmsg_input(0x00, [b"id", b"", b"{}", b"{}", b"{}", b"{}"]))
    write("jmsg", "too-few-frames", jmsg_input(0x00, [b"<IDS|MSG>", b"", b"{}", b"{}"]))
    write("jmsg", "header-not-object",
          jmsg_input(0x02, [b"<IDS|MSG>", b"", b"[1]", b"{}", b"{}", b"{}"]))


# --- channel: chunk byte, then the runner's bytes ---------------------------

def frame(msg):
    body = json.dumps(msg).encode()
    return struct.pack(">I", len(body)) + body


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("runner closed the channel")
        data += chunk
    return data


def recv_frame(sock, raw):
    head = recv_exact(sock, 4)
    body = recv_exact(sock, struct.unpack(">I", head)[0])
    raw.append(head + body)
    return json.loads(body)


def runner_traffic():
    """What the real runner writes for a hello and a few requests."""
    tmp = tempfile.mkdtemp()
    ours, theirs = socket.socketpair()
    env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "LANG": "C.UTF-8", "MPLCONFIGDIR": tmp}
    proc = subprocess.Popen(["/usr/bin/python3", "-I", RUNNER, "--channel-fd",
                             str(theirs.fileno()), "--session", "seed"],
                            pass_fds=[theirs.fileno()], env=env, cwd=tmp,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    theirs.close()
    ours.settimeout(60)
    raw = []
    runs = {}
    try:
        recv_frame(ours, raw)               # hello
        runs["hello"] = raw[:]
        requests = [
            ("execute-print", "execute_request", {"code": "print('hi'); 6 * 7"}),
            ("execute-error", "execute_request", {"code": "1/0"}),
            ("execute-display", "execute_request",
             {"code": "from IPython.display import HTML; display(HTML('<b>x</b>'))"}),
            ("complete", "complete_request", {"code": "impo", "cursor_pos": 4}),
            ("inspect", "inspect_request", {"code": "len", "cursor_pos": 3,
                                            "detail_level": 0}),
        ]
        for i, (name, msg_type, content) in enumerate(requests, 1):
            if msg_type == "execute_request":
                content = dict({"silent": False, "store_history": True,
                                "user_expressions": {}, "allow_stdin": False,
                                "stop_on_error": True}, **content)
            ours.sendall(frame({"op": "request", "id": i, "msg_type": msg_type,
                                "content": content, "username": "u", "session": "seed"}))
            raw.clear()
            while recv_frame(ours, raw)["op"] != "reply":
                pass
            runs[name] = raw[:]
        ours.sendall(frame({"op": "shutdown"}))
    finally:
        ours.close()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return runs


def channel_seeds():
    runs = runner_traffic()
    for name, frames in runs.items():
        write("channel", "runner-" + name, b"\x00" + b"".join(frames))
    write("channel", "runner-execute-print-split-7", b"\x07" + b"".join(runs["execute-print"]))
    write("channel", "runner-hello-split-1", b"\x01" + b"".join(runs["hello"]))
    write("channel", "contain", b"\x00" + frame({"op": "contain"}))
    write("channel", "checkpoint-done", b"\x00" + frame(
        {"op": "checkpoint_done", "id": 3, "ok": True, "slot": "a", "sha256": "0" * 64,
         "bytes": 1234, "saved": ["x", "df"], "skipped": {"f": "cannot pickle"}}))
    write("channel", "input-request", b"\x00" + frame(
        {"op": "input_request", "id": 2, "prompt": "name? ", "password": False}))
    write("channel", "too-long", b"\x00" + struct.pack(">I", 64 * 1024 * 1024 + 1) + b"{}")
    write("channel", "not-an-object", b"\x00" + frame([1, 2]) + frame({"op": "hello"}))
    write("channel", "truncated", b"\x03" + frame({"op": "iopub", "id": 1})[:-3])


# --- control: JSON lines as bin/cellblock sends them ------------------------

def cli_requests(commands):
    """Runs the CLI against a fake daemon; returns each command's line."""
    state = tempfile.mkdtemp()
    path = os.path.join(state, "control.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    lines = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            data = b""
            while not data.endswith(b"\n"):
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
            lines.append(data)
            c.sendall(b'{"ok":false,"error":"seed","code":1}\n')
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    out = {}
    env = dict(os.environ, CELLBLOCK_STATE_DIR=state)
    for name, argv in commands:
        n = len(lines)
        subprocess.run([os.path.join(ROOT, "bin", "cellblock")] + argv, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if len(lines) > n:
            out[name] = lines[n]
    srv.close()
    shutil.rmtree(state, ignore_errors=True)
    return out


def control_seeds():
    conn = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003,
               "control_port": 50004, "hb_port": 50005, "ip": "127.0.0.1",
               "key": "a0436f6c-1916-498b-8eb9-e81ab9368e84", "transport": "tcp",
               "signature_scheme": "hmac-sha256", "kernel_name": "cellblock"}, conn)
    conn.close()
    reqs = cli_requests([
        ("new", ["new"]),
        ("new-limits", ["new", "--name", "demo", "--memory", "2G", "--cpus", "0.5",
                        "--pids", "128", "--tmp", "64M", "--exec-timeout", "30"]),
        ("ls", ["ls"]),
        ("run-connect", ["run", "demo", "1+1"]),
        ("interrupt", ["interrupt", "demo"]),
        ("restart", ["restart", "demo"]),
        ("kill", ["kill", "demo"]),
        ("checkpoint", ["checkpoint", "demo"]),
        ("fork", ["fork", "demo", "demo2"]),
        ("attach", ["attach", conn.name, "--name", "nb1"]),
    ])
    os.unlink(conn.name)
    if len(reqs) < 10:
        sys.exit("make-seeds: the CLI sent only %s" % sorted(reqs))
    for name, line in reqs.items():
        write("control", "cli-" + name, line)
    write("control", "ping", b'{"cmd":"ping"}\n')
    write("control", "pipelined", reqs["ls"] + reqs["interrupt"] + b'{"cmd":"ping"}\n')
    write("control", "bad-limits", b'{"cmd":"new","memory":"lots","cpus":2}\n')
    write("control", "attach-ipc", b'{"cmd":"attach","connection":{"transport":"ipc",'
          b'"ip":"/tmp/k","shell_port":1,"key":""}}\n')
    write("control", "not-json", b"new demo\n{\"cmd\":\n")


# --- config: config files ---------------------------------------------------

CONFIG_FULL = b"""\
# cellblockd.conf: every setting, at its default
address = 127.0.0.1
transport = tcp
max-message = 64M
log-level = info
python = /usr/bin/python3
rootfs =
uid-base = 200000
uid-count = 10000
allow-weaker-sandbox = no
max-stream = 8M
max-display = 16M
idle-timeout = 1800
checkpoint-interval = 600
max-sessions = 1000
max-sessions-per-user = 200
max-checkpoint-bytes-per-user = 20G
min-free-memory = 512M
restart-from-checkpoint = yes

# what a new session gets unless `cellblock new` says otherwise
memory = 1G
cpus = 1
pids = 256
tmp = 256M
exec-timeout = 0
nofile = 1024
fsize = 1G
"""

CONFIG_SERVER = b"""\
# A shared teaching server: small sessions, reaped early.
transport = ipc
log-level = debug
memory = 512M          # per session
cpus = 0.25
max-sessions-per-user = 3
idle-timeout = 600
allow-weaker-sandbox = true
"""


def config_seeds():
    write("config", "full-defaults.conf", CONFIG_FULL)
    write("config", "teaching-server.conf", CONFIG_SERVER)
    write("config", "tabs-crlf-no-final-newline.conf",
          b"\taddress\t=\t0.0.0.0\r\nmax-message = 1g\r\nfsize = 10kB")
    write("config", "unknown-key.conf", b"colour = blue\n")
    write("config", "bad-value.conf", b"cpus = 0.001\n")
    write("config", "size", b"1536K")



# --- zmtp: flags byte, then a peer's bytes as pyzmq sends them --------------

def zmtp_capture(sock_type, our_type, act):
    """What a pyzmq socket of sock_type sends to a raw listener that
    answers as our_type (greeting and READY), while act(socket) runs."""
    import zmq
    lis = socket.socket()
    lis.bind(("127.0.0.1", 0))
    lis.listen(1)
    port = lis.getsockname()[1]
    ctx = zmq.Context()
    s = ctx.socket(sock_type)
    s.linger = 0
    s.connect("tcp://127.0.0.1:%d" % port)
    conn, _ = lis.accept()
    body = b"\x05READY\x0bSocket-Type" + struct.pack(">I", len(our_type)) + our_type
    if our_type == b"ROUTER":
        body += b"\x08Identity" + struct.pack(">I", 0)
    conn.sendall(b"\xff" + b"\0" * 8 + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\0")
                 + b"\0" * 32 + bytes([0x04, len(body)]) + body)
    act(s)
    conn.settimeout(0.5)
    got = b""
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    s.close(0)
    ctx.term()
    conn.close()
    lis.close()
    return got


def zmtp_seeds():
    import zmq
    sess = Session(key=FUZZ_KEY, username="user", session="demo")

    def kernel_info(s):
        sess.send(s, "kernel_info_request", {})

    def execute(s):
        sess.send(s, "execute_request", {"code": "x = 1", "silent": False},
                  buffers=[b"\0" * 300])

    def subscribe(s):
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.setsockopt(zmq.SUBSCRIBE, b"kernel.demo.")
        s.setsockopt(zmq.UNSUBSCRIBE, b"kernel.demo.")

    def ping(s):
        s.send_multipart([b"ping"])

    dealer = zmtp_capture(zmq.DEALER, b"ROUTER", kernel_info)
    write("zmtp", "dealer-kernel-info", b"\x06" + dealer)
    write("zmtp", "dealer-kernel-info-bytewise", b"\x00" + dealer)
    write("zmtp", "dealer-execute-long-frame",
          b"\x04" + zmtp_capture(zmq.DEALER, b"ROUTER", execute))
    write("zmtp", "sub-subscriptions", b"\x01" + zmtp_capture(zmq.SUB, b"PUB", subscribe))
    write("zmtp", "sub-subscriptions-split", b"\x05" + zmtp_capture(zmq.SUB, b"PUB", subscribe))
    write("zmtp", "req-heartbeat", b"\x06" + zmtp_capture(zmq.REQ, b"ROUTER", ping))
    # Hand-made: what pyzmq never sends.
    write("zmtp", "many-empty-frames", b"\x00" + dealer[:dealer.index(b"\x05READY") + dealer[65]]
          + b"\x01\x00" * 5000)
    write("zmtp", "ping-pong", b"\x02" + dealer[:64] + b"\x04\x29\x05READY\x0bSocket-Type"
          + struct.pack(">I", 6) + b"DEALER\x08Identity" + struct.pack(">I", 0)
          + b"\x04\x08\x04PING\x00\x0a" * 20)
    write("zmtp", "zmtp1-peer", b"\x00\x05\x00hello")

def http_seeds():
    """fuzz-http.c's lines: METHOD, PATH, AUTHORIZATION, ?token=, body; what
    jupyter_server's GatewayClient and @jupyterlab/services send, and the
    traversals the kernelspec route must refuse."""
    env = {"KERNEL_USERNAME": "ann", "KERNEL_LAUNCH_TIMEOUT": "40",
           "KERNEL_WORKING_DIR": "/home/ann", "PATH": "/usr/bin"}
    kid = "3f2b8c1e-5d4a-8b7c-9e0f-112233445566"
    reqs = {
        "list-kernels": ("GET", "/api/kernels", "token cb_abc", "", b""),
        "create-kernel": ("POST", "/api/kernels", "token cb_abc", "",
                          json.dumps({"name": "python3", "env": env}).encode()),
        "channels-query-token": ("GET", "/api/kernels/%s/channels" % kid, "", "cb_abc", b""),
        "restart": ("POST", "/api/kernels/%s/restart" % kid, "Bearer cb_abc", "", b"{}"),
        "spec-resource": ("GET", "/kernelspecs/python3/kernel.json", "token cb_abc", "", b""),
        "traversal": ("GET", "/kernelspecs/python3/../../etc/passwd", "token ", "", b""),
        "traversal-rest": ("GET", "/kernelspecs/python3/a/./../b", "token x", "", b""),
        "metrics": ("GET", "/metrics", "token cb_abc", "", b""),
        "bad-json": ("POST", "/api/kernels", "token cb_abc", "", b'{"name": "python3",'),
        "method": ("PUT", "/api/kernels/%s" % kid, "Basic eA==", "", b"[1,2]"),
    }
    for name, (method, path, auth, token, body) in reqs.items():
        write("http", name, ("%s\n%s\n%s\n%s\n" % (method, path, auth, token)).encode() + body)


def ws_seeds():
    """fuzz-ws.c: a flags byte (1: v1, 2: binary frame), then a message as
    Notebook 6.4's proxy (legacy, jupyter_server's own serializer for
    buffers) or @jupyterlab/services (v1) sends it."""
    from jupyter_server.base.zmqhandlers import serialize_binary_message
    sess = Session(key=b"", username="ann")

    def msg(channel, msg_type, content, buffers=()):
        m = sess.msg(msg_type, content)
        m["channel"] = channel
        m["header"]["date"] = m["header"]["date"].isoformat()
        m["buffers"] = list(buffers)
        return m

    def v1(m, buffers=()):
        parts = [m["channel"].encode()] + [json.dumps(m[k]).encode() for k in
                 ("header", "parent_header", "metadata", "content")] + list(buffers)
        offs, off = [], 8 * (len(parts) + 2)
        for p in parts:
            offs.append(off)
            off += len(p)
        offs.append(off)
        return struct.pack("<%dQ" % (len(offs) + 1), len(offs), *offs) + b"".join(parts)

    ex = msg("shell", "execute_request", {"code": "print(1)", "silent": False})
    write("ws", "legacy-execute", b"\x00" + json.dumps(ex).encode())
    comm = msg("shell", "comm_msg", {"comm_id": "c1", "data": {}}, [b"\x00\xffbuf", b""])
    write("ws", "legacy-binary-comm", b"\x02" + serialize_binary_message(dict(comm)))
    # tornado forwards a browser's binary message as a text frame
    write("ws", "legacy-binary-as-text", b"\x00" + serialize_binary_message(dict(comm)))
    write("ws", "v1-execute", b"\x03" + v1(ex))
    write("ws", "v1-comm-buffers", b"\x03" + v1(comm, [b"\x01\x02\x03", b"x" * 100]))
    inp = msg("stdin", "input_reply", {"value": "42"})
    write("ws", "legacy-input-reply", b"\x00" + json.dumps(inp).encode())
    iop = msg("iopub", "status", {"execution_state": "idle"})
    write("ws", "client-on-iopub", b"\x00" + json.dumps(iop).encode())
    write("ws", "garbage", b"\x02\xff\xff\xff\xff\x00\x00\x00\x08")


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    http_seeds()
    ws_seeds()
    jmsg_seeds()
    zmtp_seeds()
    config_seeds()
    control_seeds()
    channel_seeds()
    for target in sorted(os.listdir(CORPUS)):
        print("%s: %d seeds" % (target, len(os.listdir(os.path.join(CORPUS, target)))))


if __name__ == "__main__":
    main()
