# stdout/stderr for the session: Python-level text streams plus capture of OS fds 1 and 2.

import codecs
import fcntl
import io
import os
import select
import threading
import time

FLUSH_SIZE = 8192           # send once this much text is buffered
FLUSH_INTERVAL = 0.05       # ...or this long after the first unsent write
CHUNK_CHARS = 1 << 20       # one stream message never carries more than this


class ChannelStream(io.TextIOBase):
    """sys.stdout / sys.stderr replacement whose text becomes iopub `stream`
    messages. Buffered; flushed on size, on the flusher's timer, and by the
    runner before every other iopub message and before each reply."""

    def __init__(self, stream_name, fd, emit, gate, capture=None):
        super().__init__()
        self.stream_name = stream_name  # "stdout" or "stderr" on the wire
        self._fd = fd                   # the captured OS fd behind this stream
        self._emit = emit               # emit(stream_name, text) sends one message
        self._gate = gate
        self._capture = capture         # drained before each write, for ordering
        self._lock = threading.Lock()       # guards _buf/_size
        self._flush_lock = threading.Lock() # keeps chunks in order across threads
        self._buf = []
        self._size = 0
        self.wake = None                # set by the flusher: call on first write

    # -- the file-like surface user code relies on --
    @property
    def name(self):
        return "<%s>" % self.stream_name

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "strict"

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        # Fd 1/2 are captured pipes, so writing to them still reaches us.
        return self._fd

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        if not text:
            return 0
        if self._capture is not None:
            # Child output already in the pipe comes first: `!echo a; print(b)`.
            self._capture.drain_if_pending()
        self.append(text)
        return len(text)

    def append(self, text):
        """Buffer text without draining the fd pipes (used by the fd readers)."""
        with self._lock:
            self._buf.append(text)
            self._size += len(text)
            first, full = len(self._buf) == 1, self._size >= FLUSH_SIZE
        if full:
            self.flush()
        elif first and self.wake is not None:
            self.wake()

    def flush(self):
        if not self._buf:
            return
        with self._flush_lock, self._gate.deferred():
            with self._lock:
                text, self._buf, self._size = "".join(self._buf), [], 0
            for start in range(0, len(text), CHUNK_CHARS):
                self._emit(self.stream_name, text[start:start + CHUNK_CHARS])


class FdCapture:
    """dup2 a pipe over fds 1 and 2 so output of C code and child processes
    (os.system, subprocess) becomes stream output too. One reader thread per
    pipe; the main thread can also drain the pipes itself so that output a
    child wrote before it exited is sent before the reply."""

    def __init__(self):
        self._pipes = {}        # captured fd → (read end, stream, decoder, lock)
        self._locks = []        # held by a reader while its text is not yet buffered
        self._poll = select.poll()
        self._poll_lock = threading.Lock()

    def capture(self, fd, stream):
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)          # fd stays inheritable for children
        os.close(write_end)
        flags = fcntl.fcntl(read_end, fcntl.F_GETFL)
        fcntl.fcntl(read_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        lock = threading.Lock()
        self._pipes[fd] = (read_end, stream, decoder, lock)
        self._locks.append(lock)
        self._poll.register(read_end, select.POLLIN)

    def start(self):
        for fd in self._pipes:
            threading.Thread(target=self._reader, args=(fd,), daemon=True,
                             name="cellblock-fd%d" % fd).start()

    def drain_if_pending(self):
        """Cheap check (one poll(0)) before the main thread writes or replies."""
        # A poll object may not be used by two threads at once, and user
        # threads print concurrently: one guard around the shared poller.
        with self._poll_lock:
            ready = self._poll.poll(0)
        if ready or any(lock.locked() for lock in self._locks):
            self.drain()

    def drain(self):
        for fd in self._pipes:
            self._read_available(fd)

    def _read_available(self, fd):
        read_end, stream, decoder, lock = self._pipes[fd]
        with lock:
            while True:
                try:
                    data = os.read(read_end, 65536)
                except BlockingIOError:
                    return True
                if not data:
                    return False        # every writer is gone
                text = decoder.decode(data)
                if text:
                    stream.append(text)

    def _reader(self, fd):
        poller = select.poll()
        poller.register(self._pipes[fd][0], select.POLLIN)
        while True:
            poller.poll()
            try:
                if not self._read_available(fd):
                    return
            except Exception:
                pass    # channel gone: keep emptying the pipe so writers never block


class Flusher:
    """Background thread that flushes streams FLUSH_INTERVAL after the first
    unsent write, so output of a long cell shows up while it runs."""

    def __init__(self, streams, interval=FLUSH_INTERVAL):
        self._streams = streams
        self._interval = interval
        self._event = threading.Event()
        for stream in streams:
            stream.wake = self._event.set

    def start(self):
        threading.Thread(target=self._run, name="cellblock-flusher", daemon=True).start()

    def _run(self):
        while True:
            self._event.wait()
            time.sleep(self._interval)  # a batching delay, not synchronisation
            self._event.clear()         # before flushing: later writes re-arm it
            for stream in self._streams:
                try:
                    stream.flush()
                except Exception:
                    pass                # channel gone; the main loop will notice EOF
