"""Test hosts for egress: network namespaces this test run creates and removes.

Each host is `ip netns add` + a veth pair: the namespace's end has
198.18.N.2/30, the host's end 198.18.N.1/30 (the benchmarking range, never
routed anywhere). Inside, one Python process serves HTTP on 80 (a file
tree: a simple package index, a 100 MB file made on demand, a redirect),
HTTPS on 443 (a self-signed certificate made with openssl) and a TCP echo
on 7000. Nothing but these addresses and loopback is ever contacted.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

SERVER = r'''
import http.server, os, socket, socketserver, ssl, sys, threading
root, addr, cert, key = sys.argv[1:5]
os.chdir(root)

class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/bytes/"):
            n = int(self.path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = b"x" * 65536
            while n > 0:
                self.wfile.write(chunk[:min(n, 65536)])
                n -= 65536
            return
        if self.path == "/whoami":
            body = ("host %s saw %s\n" % (addr, self.client_address[0])).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        return super().do_GET()

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

def echo():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 7000))
    s.listen(64)
    while True:
        c, _ = s.accept()
        def one(c=c):
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
            c.close()
        threading.Thread(target=one, daemon=True).start()

threading.Thread(target=echo, daemon=True).start()
https = S((addr, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
https.socket = ctx.wrap_socket(https.socket, server_side=True)
threading.Thread(target=https.serve_forever, daemon=True).start()
print("ready", flush=True)
S((addr, 80), H).serve_forever()
'''

WHEEL_NAME = "cbdemo-1.0-py3-none-any.whl"
# The bounds EgressEnv's daemon runs with (egress-max-conns, egress-rate).
MAX_CONNS = 6
RATE = 40


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _wheel(path):
    """A minimal valid wheel: what pip download fetches from the index."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cbdemo/__init__.py", "VALUE = 42\n")
        z.writestr("cbdemo-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: cbdemo\nVersion: 1.0\n")
        z.writestr("cbdemo-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: cellblock-test\n"
                   "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("cbdemo-1.0.dist-info/RECORD", "")


class NetnsHost:
    """One host in its own namespace; `addr` is its address."""

    def __init__(self, index, tag, base):
        self.ns = f"cbeg{tag}h{index}"
        self.veth = f"cbeg{tag}{index}"
        net = 200 + index
        self.addr = f"198.18.{net}.2"
        self.gw = f"198.18.{net}.1"
        self.root = os.path.join(base, f"h{index}")
        self.proc = None
        os.makedirs(os.path.join(self.root, "simple", "cbdemo"))
        _wheel(os.path.join(self.root, WHEEL_NAME))
        with open(os.path.join(self.root, "simple", "cbdemo", "index.html"), "w") as f:
            f.write(f'<html><body><a href="/{WHEEL_NAME}">{WHEEL_NAME}</a></body></html>\n')
        with open(os.path.join(self.root, "hello.txt"), "w") as f:
            f.write(f"hello from {self.addr}\n")
        self.cert = os.path.join(base, f"h{index}.crt")
        self.key = os.path.join(base, f"h{index}.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "2",
                        "-subj", "/CN=web.test", "-addext",
                        f"subjectAltName=DNS:web.test,DNS:other.test,IP:{self.addr}"],
                       check=True, capture_output=True)

    def up(self):
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        _ip("addr", "add", f"{self.gw}/30", "dev", self.veth)
        _ip("link", "set", self.veth, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.addr}/30", "dev", "eth0")
        _ip("-n", self.ns, "link", "set", "eth0", "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        script = os.path.join(self.root, "..", "server.py")
        with open(script, "w") as f:
            f.write(SERVER)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, script, self.root,
             self.addr, self.cert, self.key],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"test host {self.ns} did not start")

    def down(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
        _ip("link", "del", self.veth, check=False)
        _ip("netns", "del", self.ns, check=False)


class NetnsHosts:
    """n hosts plus an /etc/hosts-style file for the proxy (egress-hosts):
    web.test -> host 0, other.test -> host 1, evil.test -> 127.0.0.1 (a
    rebinding), both.test -> host 0 and 127.0.0.1."""

    def __init__(self, n=2):
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise RuntimeError("egress test hosts need root and iproute2")
        self.base = tempfile.mkdtemp(prefix="cb-egress-")
        tag = "%04x" % (os.getpid() & 0xffff)
        self.hosts = [NetnsHost(i, tag, self.base) for i in range(n)]
        self.hosts_file = os.path.join(self.base, "hosts")
        try:
            for h in self.hosts:
                h.up()
        except Exception:
            self.down()
            raise
        lines = [f"{self.hosts[0].addr} web.test", "127.0.0.1 evil.test",
                 f"{self.hosts[0].addr} both.test", "127.0.0.1 both.test"]
        if n > 1:
            lines.append(f"{self.hosts[1].addr} other.test")
        with open(self.hosts_file, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def web(self):
        return self.hosts[0]

    @property
    def other(self):
        return self.hosts[1]

    def down(self):
        for h in self.hosts:
            h.down()
        shutil.rmtree(self.base, ignore_errors=True)


def wait_port(host, port, timeout=10):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{host}:{port} never answered")


def _stdout(outputs):
    return "".join(m["content"]["text"] for m in outputs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def _error(outputs):
    for m in outputs:
        if m["msg_type"] == "error":
            return m["content"]["ename"] + ": " + m["content"]["evalue"]
    return None


class EgressEnv:
    """A sandboxed daemon with an egress ceiling and test resolver, the test
    hosts, and sessions made with --allow-net (by name, on first use)."""

    def __init__(self):
        from cbtest import Daemon
        self.hosts = NetnsHosts(2)
        web = self.hosts.web.addr
        self.config = os.path.join(self.hosts.base, "cellblockd.conf")
        with open(self.config, "w") as f:
            f.write("# egress tests: the ceiling and a test resolver\n"
                    "egress-allow = *.test:*,198.18.0.0/15:*\n"
                    f"egress-hosts = {self.hosts.hosts_file}\n"
                    f"egress-max-conns = {MAX_CONNS}\n"
                    f"egress-rate = {RATE}\n"
                    "memory = 512M\n")
        self.allow = (f"web.test:80,web.test:443,web.test:7000,evil.test:80,"
                      f"both.test:80,{web}:80,{web}:443,{web}:7000")
        try:
            self.daemon = Daemon(["--config", self.config])
        except Exception:
            self.hosts.down()
            raise
        self.kcs = {}

    def session(self, name, allow=None, extra=()):
        if name not in self.kcs:
            p = self.daemon.cli("new", "--name", name, "--allow-net",
                                self.allow if allow is None else allow, *extra,
                                check=True)
            self.kcs[name] = self.daemon.client(p.stdout.strip())
            cert = open(self.hosts.web.cert).read()
            from cbtest import run_cell
            run_cell(self.kcs[name], f"open('/tmp/web.crt', 'w').write({cert!r})")
        return self.kcs[name]

    def cell(self, name, code, timeout=60):
        from cbtest import run_cell
        reply, outputs = run_cell(self.session(name), code, timeout=timeout)
        return _stdout(outputs), _error(outputs)

    def records(self):
        out = []
        for line in self.daemon.log_text().splitlines():
            m = re.search(r" egress (\{.*\})$", line)
            if m:
                out.append(json.loads(m.group(1)))
        return out

    def record(self, session, asked, verdict):
        """The proxy's record of one attempt (waits for it: it is logged when
        the connection ends)."""
        def find():
            for r in self.records():
                if (r["session"] == session and r["asked"] == asked and
                        r["verdict"] == verdict):
                    return r
            return None
        from cbtest import poll
        return poll(find, 20, f"a {verdict} record for {asked}")

    def close(self):
        for kc in self.kcs.values():
            kc.stop_channels()
        self.daemon.stop()
        self.hosts.down()
