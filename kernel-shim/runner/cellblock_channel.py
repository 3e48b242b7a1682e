# Session channel framing: 4-byte big-endian length + strict UTF-8 JSON object (docs/CHANNEL.md).

import base64
import datetime
import json
import math
import numbers
import os
import queue
import struct
import threading

from cellblock_sigint import sigint_blocked

MAX_FRAME = 64 * 1024 * 1024    # the daemon ends the interpreter above this
_HEADER = struct.Struct(">I")
_dumps = json.JSONEncoder(allow_nan=False, ensure_ascii=False,
                          separators=(",", ":")).encode


class ChannelClosed(Exception):
    """The daemon's end is gone; nothing more can be sent."""


class FrameTooLarge(ValueError):
    """A message would exceed MAX_FRAME; the caller sends something smaller."""


def channel_b64(data):
    """Bytes-like → base64 text, the channel's form for binary data."""
    return base64.b64encode(bytes(data)).decode("ascii")


def channel_clean(obj):
    """Return obj made strictly JSON-able: non-finite floats → None,
    bytes → base64, lone surrogates → U+FFFD, tuples/sets → lists,
    unknown objects → str(). Only used when the fast path failed."""
    if isinstance(obj, str):
        return obj.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, dict):
        return {_clean_key(k): channel_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [channel_clean(v) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return channel_b64(obj)
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    return channel_clean(str(obj))


def _clean_key(key):
    return channel_clean(key if isinstance(key, str) else str(key))


def channel_encode(msg):
    """Serialise one message to a complete frame (header + body)."""
    try:
        body = _dumps(msg).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError):
        # Slow path only for NaN, bytes, numpy scalars, lone surrogates...
        body = _dumps(channel_clean(msg)).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise FrameTooLarge("message of %d bytes exceeds the channel limit" % len(body))
    return _HEADER.pack(len(body)) + body


def channel_decode(body):
    """Parse one frame body; raise ValueError unless it is a JSON object."""
    try:
        msg = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        # Deeper than Python's parser goes. A ValueError ends the channel;
        # anything else would be retried on the same frame, which stays
        # buffered until decoded (Channel._read_message), by the idle wait
        # that outlives exceptions (Runner._wait_request): a busy loop.
        raise ValueError("frame nested too deeply to decode") from None
    if not isinstance(msg, dict):
        raise ValueError("frame is not a JSON object")
    return msg


def _reject_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


class Channel:
    """One end of the daemon socketpair.

    Writes come from any thread under one lock. Reads: the main thread
    reads frames itself while it waits between requests (a SIGINT then is
    swallowed by the gate, so nothing breaks a read; one thread and no
    hand-over per request). The first wait that an interrupt must be able
    to break (input()) starts a reader thread that queues whole messages
    from then on: the main thread then waits on a queue, which a
    KeyboardInterrupt can break without ever losing half a frame. Bytes
    read ahead of a frame stay in one buffer that both readers use, never
    at the same time.
    """

    def __init__(self, fd, gate, log):
        self.fd = fd
        self.gate = gate              # defers SIGINT while a frame is half written
        self.log = log
        self.broken = None            # reason the inbound side failed, if it did
        self._lock = threading.Lock()
        self._inbox = None            # the reader thread's queue, once it runs
        self._ended = False           # the inbound side is done (direct reads)
        self._rbuf = bytearray()      # read, not yet part of a returned frame
        self._closed = False

    def send(self, msg):
        frame = channel_encode(msg)
        with self._lock:
            if self._closed:
                raise ChannelClosed("channel closed")
            with self.gate.deferred():
                self._write_all(frame)

    def _write_all(self, frame):
        view = memoryview(frame)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as e:
            self._closed = True
            raise ChannelClosed("channel write failed: %s" % e) from e

    def start_reader(self):
        """Hand reading to a thread for good (idempotent; main thread only).
        It inherits a mask with SIGINT blocked, so interrupts stay ours."""
        if self._inbox is not None:
            return
        self._inbox = queue.SimpleQueue()
        if self._ended:
            self._inbox.put(None)
            return
        with sigint_blocked():
            threading.Thread(target=self._read_loop, name="cellblock-channel",
                             daemon=True).start()

    def receive(self, interruptible=False):
        """Next message from the daemon, or None once the channel ended.
        interruptible: a KeyboardInterrupt may break this wait."""
        if interruptible:
            self.start_reader()
        if self._inbox is not None:
            return self._inbox.get()
        if self._ended:
            return None
        msg = self._next()
        if msg is None:
            self._ended = True
        return msg

    def _next(self):
        """One message read here, or None (EOF, or broken: logged)."""
        try:
            return self._read_message()
        except EOFError:
            pass
        except (OSError, ValueError) as e:
            self.broken = str(e)
            self.log("broken channel: %s" % e)
        return None

    def _read_loop(self):
        while True:
            msg = self._next()
            self._inbox.put(msg)
            if msg is None:
                return

    def _read_message(self):
        # Nothing leaves the buffer before the whole frame is in it and
        # decoded: an exception that a signal handler raises meanwhile
        # (in os.read, or where the loop below jumps back: the idle wait,
        # cellblock_runner.Runner._wait_request) leaves the frame whole
        # for the next read.
        self._fill(_HEADER.size, at_boundary=True)
        (length,) = _HEADER.unpack_from(self._rbuf)
        if length > MAX_FRAME:
            raise ValueError("frame length %d exceeds the limit" % length)
        end = _HEADER.size + length
        self._fill(end, at_boundary=False)
        msg = channel_decode(bytes(self._rbuf[_HEADER.size:end]))
        del self._rbuf[:end]
        return msg

    def _fill(self, count, at_boundary):
        buf = self._rbuf
        while len(buf) < count:
            # Whatever is there, up to 1 MiB: a frame and its length
            # usually come in one read; the rest waits in the buffer.
            chunk = os.read(self.fd, min(max(count - len(buf), 65536), 1 << 20))
            if not chunk:
                if at_boundary and not buf:
                    raise EOFError
                raise ValueError("short read: channel closed inside a frame")
            buf += chunk
