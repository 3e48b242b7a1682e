"""Abuse of the HTTP + WebSocket front: 10,000 bad tokens, oversized
bodies, slowloris drips, 1,000 idle connections, garbage WebSocket frames.
After each the daemon is alive, another user's kernel answers (from its
own peer address, as a second machine would) with its state intact, and
the daemon's memory after a second full round is within a bound of the
first (flat: what is freed is freed; not timed). Loops are bounded."""
import base64
import os
import random
import socket
import struct

import pytest
import requests

from gwtest import Api, Channels, Gateway, stdout_of

NOBODY = 65534
TIMEOUT = 5                          # the daemon's http-timeout here, s
ATTACKER = "127.0.0.1"               # loopback peers: one machine each
VICTIM = "127.0.0.2"
FLAT_KB = 24 * 1024                  # round 2 may not grow RSS past round 1 by this


@pytest.fixture(scope="module")
def gw():
    g = Gateway(config="http-timeout = %d\n" % TIMEOUT)
    yield g
    g.stop()


class VictimChannels(Channels):
    """gwtest's WebSocket client, connected from VICTIM's address."""

    def __init__(self, gw, token, kid):
        import websocket
        self.session = "victim"
        s = conn(gw, source=VICTIM, timeout=30)
        self.ws = websocket.create_connection(
            "%s/api/kernels/%s/channels" % (gw.ws_url, kid), socket=s, timeout=30,
            header=["Authorization: token " + token])


class Victim:
    """Another user's kernel, used between attacks from its own address."""

    def __init__(self, gw):
        self.gw = gw
        self.token = gw.token("victim", uid=NOBODY)
        self.kid = self.request("POST", "/api/kernels", {"name": "python3"}).json()["id"]
        ch = VictimChannels(gw, self.token, self.kid)
        ch.execute("n = 0")
        ch.close()
        self.n = 0

    def request(self, method, path, body=None):
        """One HTTP/1.1 request from VICTIM's address, Connection: close."""
        port = int(self.gw.url.rsplit(":", 1)[1])
        data = b"" if body is None else requests.compat.json.dumps(body).encode()
        head = ("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: token %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n"
                "Connection: close\r\n\r\n" % (method, path, self.token, len(data)))
        with socket.create_connection(("127.0.0.1", port), timeout=60,
                                      source_address=(VICTIM, 0)) as s:
            s.sendall(head.encode() + data)
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        r = requests.models.Response()
        r.status_code = int(head.split(b" ", 2)[1])
        r._content = body
        return r

    def served(self):
        """The victim's kernel answers and kept its state."""
        assert self.gw.proc.poll() is None, self.gw.log_text()[-3000:]
        r = self.request("GET", "/api/kernels")
        assert r.status_code == 200 and [m["id"] for m in r.json()] == [self.kid], r.text
        ch = VictimChannels(self.gw, self.token, self.kid)
        self.n += 1
        got = stdout_of(ch.execute("n += 1\nprint(n)"))
        ch.close()
        assert got == "%d\n" % self.n, got


def conn(gw, source=ATTACKER, timeout=10):
    port = int(gw.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))


def closed_by_peer(s, timeout):
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def bad_tokens(gw, n):
    s = requests.Session()
    forms = (lambda i: ({"Authorization": "token bad%d" % i}, ""),
             lambda i: ({"Authorization": "Bearer cb_%032d" % i}, ""),
             lambda i: ({}, "?token=x%d" % i),
             lambda i: ({"Authorization": "token " + "A" * (i % 300)}, ""))
    try:
        for i in range(n):
            hdr, q = forms[i % len(forms)](i)
            r = s.get(gw.url + "/api/kernels" + q, headers=hdr, timeout=10)
            assert r.status_code == 401 and r.json()["reason"] == "Unauthorized", r.text
    finally:
        s.close()


def refused(fn):
    """A 413 JSON error, or (past the daemon's discard bound, 16 MiB) the
    connection closed on an upload that would not stop: never accepted."""
    try:
        r = fn()
    except requests.ConnectionError:
        return True
    assert r.status_code == 413 and r.json()["reason"], r.text
    return True


def oversized_bodies(gw, token):
    """Bodies over the route's cap are refused, never held in memory."""
    hdr = {"Authorization": "token " + token, "Content-Type": "application/json"}
    url = gw.url + "/api/kernels"
    # Over the cap, under the discard bound: a clean 413 the client reads.
    r = requests.post(url, data=b'{"name": "python3", "env": {"X": "' + b"a" * (4 << 20) +
                      b'"}}', headers=hdr, timeout=60)
    assert r.status_code == 413 and r.json()["reason"] == "Payload Too Large", r.text
    assert refused(lambda: requests.post(url, data=b"{" + b"a" * (40 << 20), headers=hdr,
                                         timeout=60))

    def chunks():
        for _ in range(64):
            yield b"b" * (1 << 20)
    assert refused(lambda: requests.post(url, data=chunks(), headers=hdr, timeout=60))
    # A length far beyond the cap, announced and never sent.
    s = conn(gw)
    s.sendall(b"POST /api/kernels HTTP/1.1\r\nHost: x\r\nAuthorization: token " +
              token.encode() + b"\r\nContent-Length: 1000000000000\r\n\r\n{")
    s.settimeout(TIMEOUT * 3)
    try:
        head = s.recv(4096)
    except OSError:
        head = b""
    s.close()
    assert head == b"" or b" 413 " in head.split(b"\r\n")[0], head


def slowloris(gw, victim, n=300, rounds=6):
    """Drip header bytes on more sockets than one peer may hold: the rest
    are refused; others are served meanwhile; once the drip stops the
    daemon drops them after its timeout."""
    socks = []
    for _ in range(n):
        try:
            s = conn(gw, timeout=2)
            s.sendall(b"GET /api/kernels HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            pass
    try:
        for r in range(rounds):
            for s in socks:
                try:
                    s.sendall(b"X-%d: y\r\n" % r)
                except OSError:
                    pass
            if r == rounds // 2:
                victim.served()
        alive = [s for s in socks if not closed_by_peer(s, 0.01)]
        assert len(alive) <= 256, len(alive)      # http-max-connections-per-peer
        victim.served()
        # Stopped dripping: every one is closed by the daemon's timeout.
        assert all(closed_by_peer(s, TIMEOUT * 4) for s in alive[:50])
    finally:
        for s in socks:
            s.close()


def idle_connections(gw, victim, n=1000):
    """n idle TCP connections from four peers (under the per-peer cap, so
    all are held): the victim is served, a sample still answers."""
    socks = []
    try:
        for i in range(n):
            socks.append(conn(gw, source="127.0.0.%d" % (10 + i % 4)))
        victim.served()
        for s in socks[::100]:
            s.sendall(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(10)
            assert s.recv(4096).startswith(b"HTTP/1.1 200"), "an idle connection was not held"
    finally:
        for s in socks:
            s.close()


def ws_upgrade(gw, token, kid):
    """A raw socket after a real 101: frames are ours to forge."""
    s = conn(gw)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /api/kernels/%s/channels HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Authorization: token %s\r\n\r\n" % (kid, key, token)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def frame(opcode, payload, fin=True, mask=True, length=None):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        h = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, m | 126, n)
    else:
        h = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return h + payload
    key = os.urandom(4)
    return h + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def garbage_frames(gw, token, kid):
    rnd = random.Random(12)
    cases = [
        os.urandom(65536),                                  # not frames at all
        frame(0x1, b'{"channel": "shell"}', mask=False),    # unmasked client frame
        frame(0x3, b"reserved opcode"),
        frame(0x9, b"p" * 200),                             # control frame > 125
        frame(0x0, b"continuation with no start"),
        frame(0x1, b"start", fin=False) + frame(0x2, b"interleaved"),
        frame(0x2, b"x" * 100, length=(1 << 62)),           # a length no one could send
        frame(0x8, b"\x03\xe7bad close code"),
        b"".join(frame(0x9, b"ping") for _ in range(1000)),
        b"".join(frame(0x1, bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300))))
                 for _ in range(200)),
        frame(0x2, b"\x00\x00\x00\x09" + b"\xff" * 64),      # legacy binary, bad offsets
        frame(0x1, b"a" * (12 << 20), fin=True),            # over the message cap
    ]
    for data in cases:
        s = ws_upgrade(gw, token, kid)
        try:
            s.sendall(data)
        except OSError:
            pass
        closed_by_peer(s, 0.2)
        s.close()


def test_abuse_leaves_the_daemon_healthy_and_flat(gw):
    victim = Victim(gw)
    attacker = Api(gw, gw.token("attacker"))
    akid = attacker.new_kernel()["id"]
    rss = []
    for rnd in range(2):
        bad_tokens(gw, 5000)            # 10,000 over the two rounds
        victim.served()
        oversized_bodies(gw, attacker.token)
        victim.served()
        slowloris(gw, victim)
        idle_connections(gw, victim)
        garbage_frames(gw, attacker.token, akid)
        victim.served()
        # The attacker's own kernel is still usable too.
        ch = Channels(gw, attacker.token, akid)
        assert stdout_of(ch.execute("print('ok')")) == "ok\n"
        ch.close()
        rss.append(gw.rss_kb())
    print("daemon RSS after round 1, 2 (kB):", rss)
    assert rss[1] - rss[0] < FLAT_KB, rss
    # Bad tokens are logged rate-limited, not once each.
    assert gw.log_text().count("bad token") < 1000
    attacker.close()
