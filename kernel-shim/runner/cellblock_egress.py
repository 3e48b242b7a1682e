"""cellblock_egress: the session's end of egress: relays from 127.0.0.1 to the proxy.

The daemon binds a directory at /run/cellblock holding egress.sock (the
egress proxy's socket for this session) and policy.json (the session's
allowlist, numbered). This module listens on the session's loopback and
forwards each TCP connection, bytes untouched, to that socket:

- one HTTP proxy port, set as HTTP_PROXY / HTTPS_PROXY / ALL_PROXY (and
  lowercase), PIP_PROXY and git's http.proxy, so urllib, requests, pip and
  git go through it;
- one port per raw `host:port` destination (a database), whose relay first
  sends `CELLBLOCK-TCP n` naming the destination's index; on the same port
  number as the destination when that is free and >= 1024, else any. The
  map is in CELLBLOCK_EGRESS_TCP ("dest=127.0.0.1:port,...") and forwards().

The relay is untrusted like everything in the session: the proxy decides
every connection, and knows the session by its socket, not by what is sent.
"""
import json
import os
import selectors
import socket
import threading

EGRESS_DIR = "/run/cellblock"                  # sandbox.h: SANDBOX_EGRESS_DIR
SOCK = os.path.join(EGRESS_DIR, "egress.sock")
POLICY = os.path.join(EGRESS_DIR, "policy.json")
BUF = 65536
HEAD_MAX = 16384

_forwards = {}


def forwards():
    """{destination: (host, port)} of the raw TCP forwards on loopback."""
    return dict(_forwards)


def _splice(a, b):
    """Copy both ways until both sides are done, then close both."""
    sel = selectors.DefaultSelector()
    open_ = {a: b, b: a}
    try:
        for s in open_:
            sel.register(s, selectors.EVENT_READ)
        while open_:
            for key, _ in sel.select():
                src = key.fileobj
                dst = open_.get(src)
                try:
                    data = src.recv(BUF)
                except OSError:
                    data = b""
                if data:
                    try:
                        dst.sendall(data)
                        continue
                    except OSError:
                        return
                sel.unregister(src)
                del open_[src]
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    finally:
        sel.close()
        a.close()
        b.close()


def _upstream():
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.connect(SOCK)
    return u


def _relay_http(client):
    try:
        up = _upstream()
    except OSError:
        client.close()
        return
    _splice(client, up)


def _read_status(up):
    """The proxy's answer to CELLBLOCK-TCP: True on 200; the rest is data."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < HEAD_MAX:
        data = up.recv(4096)
        if not data:
            return False, b""
        head += data
    line, _, rest = head.partition(b"\r\n\r\n")
    return line.split(b" ", 2)[1:2] == [b"200"], rest


def _relay_tcp(client, index):
    try:
        up = _upstream()
        up.sendall(b"CELLBLOCK-TCP %d\r\n" % index)
        ok, rest = _read_status(up)
    except OSError:
        client.close()
        return
    if not ok:
        # Refused (the proxy logged why): a reset, not a silent success.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        client.close()
        up.close()
        return
    if rest:
        try:
            client.sendall(rest)
        except OSError:
            # The client left before its first bytes: close both ends, not
            # a traceback in the session's stderr and a leaked socket.
            client.close()
            up.close()
            return
    _splice(client, up)


def _serve(listener, handler, *args):
    while True:
        try:
            c, _ = listener.accept()
        except OSError:
            continue
        threading.Thread(target=handler, args=(c,) + args, daemon=True,
                         name="cellblock-egress-conn").start()


def _listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        if port == 0:
            raise
        s.close()
        return _listen(0)
    s.listen(128)
    return s


def _environment(port):
    url = "http://127.0.0.1:%d" % port
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        os.environ[name] = url
        os.environ[name.lower()] = url
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "localhost,127.0.0.1,::1"
    os.environ["PIP_PROXY"] = url
    # git reads http.proxy from these without a config file being written.
    os.environ["GIT_CONFIG_COUNT"] = "1"
    os.environ["GIT_CONFIG_KEY_0"] = "http.proxy"
    os.environ["GIT_CONFIG_VALUE_0"] = url


def start():
    """Start the relays if this session has egress; returns the proxy port."""
    if not os.path.exists(SOCK):
        return None
    try:
        with open(POLICY) as f:
            policy = json.load(f)
    except (OSError, ValueError):
        policy = {"dests": []}
    http = _listen(0)
    port = http.getsockname()[1]
    threading.Thread(target=_serve, args=(http, _relay_http), daemon=True,
                     name="cellblock-egress").start()
    pairs = []
    for d in policy.get("dests", []):
        if not d.get("forward"):
            continue
        want = d.get("port", 0)
        s = _listen(want if isinstance(want, int) and 1024 <= want < 65536 else 0)
        local = s.getsockname()[1]
        _forwards[d["dest"]] = ("127.0.0.1", local)
        pairs.append("%s=127.0.0.1:%d" % (d["dest"], local))
        threading.Thread(target=_serve, args=(s, _relay_tcp, int(d["index"])),
                         daemon=True, name="cellblock-egress-tcp").start()
    _environment(port)
    os.environ["CELLBLOCK_EGRESS_TCP"] = ",".join(pairs)
    return port
