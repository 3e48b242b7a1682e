# How the runner reads its channel: by its main thread between requests, by a thread once input() waits.

import json
import os
import signal
import struct
import time

from runner_harness import of_type

THREADS = "import threading; sorted(t.name for t in threading.enumerate())"


def _threads(session):
    iopub, reply = session.execute(THREADS)
    assert reply["status"] == "ok", reply
    return of_type(iopub, "execute_result")[0]["content"]["data"]["text/plain"]


def _frame(msg):
    body = json.dumps(msg).encode()
    return struct.pack(">I", len(body)) + body


def _request(rid, code):
    return {"op": "request", "id": rid, "msg_type": "execute_request",
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False}}


def _sigint_blocked(pid, tid):
    with open("/proc/%d/task/%d/status" % (pid, tid)) as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return bool(int(fields["SigBlk"].strip(), 16) & (1 << (signal.SIGINT - 1)))


def test_no_reader_thread_until_input_waits(session):
    # One thread serves requests: no hand-over from a reader per request.
    assert "cellblock-channel" not in _threads(session)
    rid = session.start("execute_request", {"code": "input('? ')", "silent": False,
                                            "allow_stdin": True})

    def answer(msg):
        if msg["op"] == "input_request":
            session.send({"op": "input_reply", "id": rid, "value": "yes"})
    iopub, reply = session.collect(rid, on_message=answer)
    assert reply["status"] == "ok"
    assert of_type(iopub, "execute_result")[0]["content"]["data"]["text/plain"] == "'yes'"
    # From then on a thread reads (an interrupt must break input() waits),
    # with SIGINT blocked like every helper thread; requests still work.
    assert "cellblock-channel" in _threads(session)
    for tid in map(int, os.listdir("/proc/%d/task" % session.pid)):
        if tid != session.pid:
            assert _sigint_blocked(session.pid, tid), tid
    assert session.execute("21*2")[1]["status"] == "ok"


def test_frames_split_and_joined_are_read_whole(session):
    # A frame in pieces (its length split too), then two frames in one
    # write: each request answered once, in order.
    data = _frame(_request(1, "a = 40"))
    for piece in (data[:2], data[2:7], data[7:]):
        session.sock.sendall(piece)
        time.sleep(0.05)        # separate reads on the runner's side
    iopub, reply = session.collect(1)
    assert reply["status"] == "ok"
    session.sock.sendall(_frame(_request(2, "a + 1")) + _frame(_request(3, "a + 2")))
    iopub2, reply2 = session.collect(2)
    iopub3, reply3 = session.collect(3)
    results = [of_type(i, "execute_result")[0]["content"]["data"]["text/plain"]
               for i in (iopub2, iopub3)]
    assert results == ["41", "42"]


def test_idle_interrupts_while_main_thread_reads(session):
    # The main thread blocks in read() between requests: SIGINT there is
    # swallowed and the read goes on, losing nothing of the next frame.
    session.execute("x = 1")
    data = _frame(_request(1, "x + 1"))
    session.sock.sendall(data[:5])
    for _ in range(5):
        session.interrupt()
        time.sleep(0.02)
    session.sock.sendall(data[5:])
    iopub, reply = session.collect(1)
    assert reply["status"] == "ok"
    assert of_type(iopub, "execute_result")[0]["content"]["data"]["text/plain"] == "2"
    assert session.proc.poll() is None


def test_broken_frame_ends_runner_with_reason(session):
    session.sock.sendall(struct.pack(">I", 5) + b"[1,2]")
    assert session.proc.wait(timeout=20) == 1
    assert "broken channel" in session.stderr_text()


def test_eof_inside_a_frame_is_broken(session):
    session.sock.sendall(struct.pack(">I", 100) + b"{\"op\"")
    session.sock.shutdown(1)
    assert session.proc.wait(timeout=20) == 1
    assert "short read" in session.stderr_text()


HANDLER = """
import os, signal
def boom(signum, frame):
    raise RuntimeError('raised by boom')
signal.signal(signal.SIGUSR1, boom)
"""


def test_raising_signal_handler_while_idle_keeps_the_session(session):
    # A user's handler that raises between requests (ipykernel's process
    # dies of it) is shown on stderr under the last cell; the interpreter
    # and its state live on, and a frame half read meanwhile stays whole.
    iopub, reply = session.execute("x = 41\n" + HANDLER)
    assert reply["status"] == "ok"
    last = session.next_id - 1
    data = _frame(_request(100, "x + 1"))
    for piece in (data[:2], data[2:9]):     # inside the length, then the body
        session.sock.sendall(piece)
        time.sleep(0.05)
        os.kill(session.pid, signal.SIGUSR1)
        time.sleep(0.1)
    session.sock.sendall(data[9:])
    stderr, result = "", None
    while True:
        msg = session.recv()
        if msg["op"] == "reply":
            assert msg["id"] == 100 and msg["content"]["status"] == "ok", msg
            break
        assert msg["op"] == "iopub", msg
        if msg["msg_type"] == "stream":
            assert msg["id"] == last and msg["content"]["name"] == "stderr", msg
            stderr += msg["content"]["text"]
        elif msg["msg_type"] == "execute_result":
            result = msg["content"]["data"]["text/plain"]
    assert result == "42"
    assert stderr.count("RuntimeError: raised by boom") == 2, stderr
    assert "the session goes on" in stderr
    assert "exception while idle" in session.stderr_text()
    assert session.proc.poll() is None


def test_signal_handler_exiting_while_idle_ends_the_runner(session):
    # sys.exit() in a handler is a request to exit, kept as one.
    iopub, reply = session.execute(
        "import signal, sys\nsignal.signal(signal.SIGUSR1, lambda s, f: sys.exit(3))")
    assert reply["status"] == "ok"
    os.kill(session.pid, signal.SIGUSR1)
    assert session.proc.wait(timeout=20) == 3


def test_frame_nested_deeper_than_python_parses_is_broken(session):
    # Nesting Python's json cannot parse: the channel ends with a reason
    # (the frame is never retried in a loop, never skipped).
    body = b'{"op": "request", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    session.sock.sendall(struct.pack(">I", len(body)) + body)
    assert session.proc.wait(timeout=20) == 1
    assert "nested too deeply" in session.stderr_text()
