"""cellblock_sdk: a Python client for cellblock's REST v1 (docs/AGENTS.md).

Shaped like E2B's code-interpreter SDK so that an agent ports by changing
the import and the constructor::

    from cellblock_sdk import Session

    with Session.create(url="http://127.0.0.1:8765", token=TOKEN,
                        memory="1G") as s:
        s.files.write("data.csv", open("data.csv", "rb"))
        ex = s.run_code("import pandas as pd; df = pd.read_csv('data.csv'); df.shape")
        print(ex.text)

Standard library only (http.client, json): it runs on Debian's python3
with nothing from PyPI. Every call is one HTTP request to the daemon; a
session keeps its variables between calls (and across the daemon's
hibernation and restarts), which is the point.
"""

import base64
import http.client
import io
import json
import os
import time
import urllib.parse

__all__ = [
    "Session", "Execution", "Result", "Logs", "ExecutionError", "EntryInfo",
    "CellblockError", "AuthenticationError", "InvalidArgumentError",
    "NotFoundError", "ForbiddenError", "ConflictError", "QuotaError", "FileTooLargeError",
    "ServerError", "ExecutionFailure", "TimeoutException", "OutOfMemoryError",
    "KilledError", "AbortedError", "QueueFullError",
]

DEFAULT_URL = "http://127.0.0.1:8765"
# Seconds one HTTP request may take (not the cell's own `timeout`): E2B's
# request_timeout. None: wait as long as the cell runs.
DEFAULT_REQUEST_TIMEOUT = 60.0
_CHUNK = 1 << 20


# --- Errors ----------------------------------------------------------------

class CellblockError(Exception):
    """Base of every error this SDK raises. status: HTTP status or None;
    type: the daemon's error type ("not_found", "bad_request", ...)."""

    def __init__(self, message, status=None, type=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type


class AuthenticationError(CellblockError):
    """401: no token, or one the daemon does not know."""


class InvalidArgumentError(CellblockError):
    """400: a malformed body, an unknown field, a bad path."""


class NotFoundError(CellblockError):
    """404: no such session, file or execution (or not yours)."""


class ForbiddenError(CellblockError):
    """403: a path the daemon will not follow (a symlink, not a file)."""


class ConflictError(CellblockError):
    """409: a name taken, a session busy checkpointing or ending."""


class QuotaError(CellblockError):
    """429 or 507: too many sessions, or over the files quota."""


class FileTooLargeError(CellblockError):
    """413: a body or upload over the daemon's cap."""


class ServerError(CellblockError):
    """5xx: the daemon could not do it (try again later)."""


class ExecutionFailure(CellblockError):
    """The cell did not finish by itself (the contract's status is not
    ok or error). execution: the Execution, with whatever output there
    was. A Python exception raised by the code is NOT one of these: it is
    execution.error, as in E2B."""

    def __init__(self, message, execution):
        super().__init__(message, type=execution.status)
        self.execution = execution


class TimeoutException(ExecutionFailure):
    """status timeout: the cell ran past its timeout and was interrupted."""


class OutOfMemoryError(ExecutionFailure):
    """status out_of_memory: the session hit its memory limit."""


class KilledError(ExecutionFailure):
    """status killed: the interpreter died (a signal, a crash)."""


class AbortedError(ExecutionFailure):
    """status aborted: an earlier cell failed and the queue was aborted."""


class QueueFullError(ExecutionFailure):
    """status queue_full: the session's queue was full; nothing ran."""


_HTTP_ERRORS = {
    400: InvalidArgumentError, 401: AuthenticationError, 403: ForbiddenError,
    404: NotFoundError, 409: ConflictError, 413: FileTooLargeError,
    429: QuotaError, 507: QuotaError,
}

_STATUS_ERRORS = {
    "timeout": TimeoutException, "out_of_memory": OutOfMemoryError,
    "killed": KilledError, "aborted": AbortedError,
    "queue_full": QueueFullError,
}


# --- Results ---------------------------------------------------------------

class Result:
    """One output of a cell (a display or the cell's value): a MIME bundle.
    The attributes are E2B's; each is None when the bundle lacks it.
    png/jpeg/pdf are base64 strings, as Jupyter sends them."""

    _MIME = {
        "text": "text/plain", "html": "text/html",
        "markdown": "text/markdown", "svg": "image/svg+xml",
        "png": "image/png", "jpeg": "image/jpeg", "pdf": "application/pdf",
        "latex": "text/latex", "json": "application/json",
        "javascript": "application/javascript",
    }

    def __init__(self, raw):
        self.raw = raw
        self.data = raw.get("data") or {}
        self.metadata = raw.get("metadata") or {}
        self.is_main_result = bool(raw.get("is_main_result"))
        for attr, mime in self._MIME.items():
            setattr(self, attr, self.data.get(mime))
        known = set(self._MIME.values())
        self.extra = {k: v for k, v in self.data.items() if k not in known}

    def formats(self):
        """The formats this result has, by E2B's names."""
        return [a for a in self._MIME if getattr(self, a) is not None] + \
            list(self.extra)

    def png_bytes(self):
        """The PNG, decoded (None without one)."""
        return base64.b64decode(self.png) if self.png else None

    def __repr__(self):
        return "Result(%s)" % ", ".join(self.formats())


class Logs:
    """stdout and stderr of a cell as the chunks they arrived in."""

    def __init__(self, stdout=None, stderr=None):
        self.stdout = list(stdout or [])
        self.stderr = list(stderr or [])

    def __repr__(self):
        return "Logs(stdout=%r, stderr=%r)" % (self.stdout, self.stderr)


class ExecutionError:
    """A Python exception the cell raised: E2B's name, value, traceback,
    plus line and column for a SyntaxError (None otherwise)."""

    def __init__(self, raw):
        self.raw = raw
        self.name = raw.get("ename")
        self.value = raw.get("evalue")
        self.traceback = raw.get("traceback")
        if isinstance(self.traceback, list):
            self.traceback = "\n".join(self.traceback)
        self.line = raw.get("line")
        self.column = raw.get("column")

    def __repr__(self):
        return "ExecutionError(%s: %s)" % (self.name, self.value)


class Execution:
    """One call's result: the execution contract (docs/AGENTS.md)."""

    def __init__(self, contract, logs=None):
        self.raw = contract
        self.id = contract.get("id")
        self.status = contract.get("status")
        self.execution_count = contract.get("execution_count")
        self.results = [Result(r) for r in contract.get("results") or []]
        if logs is None:
            logs = Logs([contract["stdout"]] if contract.get("stdout") else [],
                        [contract["stderr"]] if contract.get("stderr") else [])
        self.logs = logs
        err = contract.get("error")
        self.error = ExecutionError(err) if err else None
        self.metrics = contract.get("metrics") or {}
        self.artifacts = contract.get("artifacts") or []
        self.stdout_truncated = bool(contract.get("stdout_truncated"))
        self.stderr_truncated = bool(contract.get("stderr_truncated"))
        self.state_preserved = contract.get("state_preserved")
        self.resumed = contract.get("resumed")

    @property
    def stdout(self):
        """The whole stdout the daemon kept (head + tail when truncated)."""
        return self.raw.get("stdout") or ""

    @property
    def stderr(self):
        return self.raw.get("stderr") or ""

    @property
    def text(self):
        """The main result's text/plain (the cell's value), or None."""
        for r in self.results:
            if r.is_main_result:
                return r.text
        return None

    def __repr__(self):
        return "Execution(status=%r, text=%r, error=%r)" % (
            self.status, self.text, self.error)


class EntryInfo:
    """One entry of files.list: name, path, type (file, dir, ...), size,
    mtime (seconds since the epoch)."""

    def __init__(self, raw):
        self.raw = raw
        self.name = raw.get("name")
        self.path = raw.get("path")
        self.type = raw.get("type")
        self.size = raw.get("size")
        self.mtime = raw.get("mtime")

    def __repr__(self):
        return "EntryInfo(%r, %s, %s)" % (self.path, self.type, self.size)


# --- HTTP ------------------------------------------------------------------

class _Client:
    """One daemon: its URL and token; a connection per request."""

    def __init__(self, url=None, token=None, request_timeout=None):
        self.url = url or os.environ.get("CELLBLOCK_URL") or DEFAULT_URL
        self.token = token if token is not None else \
            os.environ.get("CELLBLOCK_TOKEN")
        self.request_timeout = DEFAULT_REQUEST_TIMEOUT \
            if request_timeout is None else request_timeout
        u = urllib.parse.urlsplit(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise InvalidArgumentError("url: not an http(s) URL: %r" % url)
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._base = u.path.rstrip("/")

    def connection(self, timeout):
        cls = http.client.HTTPSConnection if self._https else \
            http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def headers(self, extra=None):
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return h

    def open(self, method, path, body=None, headers=None, timeout=-1):
        """Send a request; the response (read it, then close conn)."""
        if timeout == -1:
            timeout = self.request_timeout
        conn = self.connection(timeout)
        try:
            conn.request(method, self._base + path, body=body,
                         headers=self.headers(headers))
            resp = conn.getresponse()
        except OSError as e:
            conn.close()
            raise ServerError("cannot reach cellblockd at %s: %s" %
                              (self.url, e)) from None
        resp._cb_conn = conn
        return resp

    @staticmethod
    def close(resp):
        resp.close()
        resp._cb_conn.close()

    @staticmethod
    def fail(resp, body):
        """The typed error for a failed response."""
        msg, typ = body.decode("utf-8", "replace"), None
        try:
            j = json.loads(body)
            err = j.get("error") if isinstance(j, dict) else None
            if isinstance(err, dict):
                msg, typ = err.get("message", msg), err.get("type")
            elif isinstance(j, dict) and "message" in j:
                msg, typ = j["message"], j.get("reason")
        except ValueError:
            pass
        cls = _HTTP_ERRORS.get(resp.status,
                               ServerError if resp.status >= 500
                               else CellblockError)
        return cls("%d: %s" % (resp.status, msg), resp.status, typ)

    def json(self, method, path, obj=None, ok=(200, 201), timeout=-1):
        body = None if obj is None else json.dumps(obj).encode()
        h = {"Content-Type": "application/json"} if body is not None else {}
        resp = self.open(method, path, body, h, timeout)
        try:
            data = resp.read()
        finally:
            self.close(resp)
        if resp.status not in ok:
            raise self.fail(resp, data)
        return json.loads(data) if data else None


def _quote(s):
    return urllib.parse.quote(s, safe="")


def _quote_path(p):
    return urllib.parse.quote(p.lstrip("/"), safe="/")


# --- Files -----------------------------------------------------------------

class Files:
    """A session's working directory: E2B's sandbox.files. Paths are
    relative to it (a leading "/" is the working directory itself); a
    hibernated session's files are served without waking it."""

    def __init__(self, session):
        self._s = session

    def _path(self, path):
        return "/v1/sessions/%s/files/%s" % (_quote(self._s.name),
                                             _quote_path(path))

    def write(self, path, data, request_timeout=None):
        """Upload str, bytes or a binary file object, streamed (a file is
        never read into memory whole). Returns the EntryInfo written."""
        c = self._s._client
        if isinstance(data, str):
            data = data.encode("utf-8")
        if isinstance(data, (bytes, bytearray, memoryview)):
            size, body = len(data), bytes(data)
        else:
            try:
                size = os.fstat(data.fileno()).st_size - data.tell()
            except (AttributeError, OSError, io.UnsupportedOperation):
                size = None
            body = data
        h = {"Content-Type": "application/octet-stream"}
        if size is not None:
            h["Content-Length"] = str(size)
        timeout = request_timeout if request_timeout is not None else \
            max(c.request_timeout or 0, 600)
        conn = c.connection(timeout)
        try:
            conn.putrequest("PUT", c._base + self._path(path))
            for k, v in c.headers(h).items():
                conn.putheader(k, v)
            if size is None:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            self._send_body(conn, body, size is None)
            resp = conn.getresponse()
            out = resp.read()
        except OSError as e:
            raise ServerError("upload of %s failed: %s" % (path, e)) from None
        finally:
            conn.close()
        if resp.status not in (200, 201):
            raise _Client.fail(resp, out)
        j = json.loads(out)
        return EntryInfo({"name": os.path.basename(j.get("path", path)),
                          "path": j.get("path", path), "type": "file",
                          "size": j.get("size")})

    @staticmethod
    def _send_body(conn, body, chunked):
        if isinstance(body, bytes):
            for i in range(0, len(body), _CHUNK):
                conn.send(body[i:i + _CHUNK])
            return
        while True:
            b = body.read(_CHUNK)
            if not b:
                break
            conn.send(b"%x\r\n%s\r\n" % (len(b), b) if chunked else b)
        if chunked:
            conn.send(b"0\r\n\r\n")

    def read(self, path, format="text", request_timeout=None):
        """The file as str ("text"), bytes ("bytes") or an iterator of
        byte chunks ("stream", read as you go)."""
        if format not in ("text", "bytes", "stream"):
            raise InvalidArgumentError("format: text, bytes or stream")
        c = self._s._client
        timeout = request_timeout if request_timeout is not None else \
            max(c.request_timeout or 0, 600)
        resp = c.open("GET", self._path(path), timeout=timeout)
        if resp.status != 200:
            data = resp.read()
            c.close(resp)
            raise c.fail(resp, data)
        if format == "stream":
            return self._stream(resp)
        try:
            data = resp.read()
        finally:
            c.close(resp)
        return data.decode("utf-8") if format == "text" else data

    @staticmethod
    def _stream(resp):
        try:
            while True:
                b = resp.read(_CHUNK)
                if not b:
                    return
                yield b
        finally:
            _Client.close(resp)

    def list(self, path="", depth=1):
        """The entries of a directory (depth 1: only its own)."""
        c = self._s._client
        q = "?dir=" + _quote(path.lstrip("/")) if path.strip("/") else ""
        j = c.json("GET", "/v1/sessions/%s/files%s" % (_quote(self._s.name),
                                                       q))
        out = [EntryInfo(e) for e in j.get("entries", [])]
        if depth > 1:
            for e in list(out):
                if e.type == "dir":
                    out.extend(self.list(e.path, depth - 1))
        return out

    def exists(self, path):
        """Whether path names a file or directory."""
        head, _, name = path.strip("/").rpartition("/")
        try:
            return any(e.name == name for e in self.list(head))
        except NotFoundError:
            return False

    def remove(self, path):
        """Remove a file or an empty directory."""
        self._s._client.json("DELETE", self._path(path))


# --- Sessions --------------------------------------------------------------

class Session:
    """A long-lived, sandboxed Python interpreter: E2B's Sandbox. Its
    variables live between run_code calls; its id never changes."""

    def __init__(self, info, client, owned=False):
        self._client = client
        self._info = info
        self._owned = owned
        self.name = info["name"]
        self.session_id = info.get("id")
        self.files = Files(self)

    # E2B calls it sandbox_id.
    @property
    def sandbox_id(self):
        return self.session_id

    @property
    def id(self):
        return self.session_id

    @classmethod
    def create(cls, url=None, token=None, name=None, request_timeout=None,
               **limits):
        """A new session. limits: memory ("1G" or bytes), cpus, pids, tmp,
        exec_timeout, idle_timeout (seconds), allow_net, mounts
        ([{"source", "target"}]), env ({NAME: value}: the interpreter's
        environment, in every incarnation). E2B's timeout= maps to
        idle_timeout, its envs= to env."""
        if "timeout" in limits:
            limits.setdefault("idle_timeout", limits.pop("timeout"))
        if "envs" in limits:
            limits.setdefault("env", limits.pop("envs"))
        client = _Client(url, token, request_timeout)
        body = {k: v for k, v in limits.items() if v is not None}
        if name is not None:
            body["name"] = name
        return cls(client.json("POST", "/v1/sessions", body), client,
                   owned=True)

    @classmethod
    def connect(cls, name, url=None, token=None, request_timeout=None):
        """An existing session, by name or id (hibernated ones included:
        the next call resumes it, same name, same id)."""
        client = _Client(url, token, request_timeout)
        try:
            info = client.json("GET", "/v1/sessions/%s" % _quote(name))
        except NotFoundError:
            info = None
            for s in client.json("GET", "/v1/sessions")["sessions"]:
                if s.get("id") == name:
                    info = s
            if info is None:
                raise
        return cls(info, client)

    @classmethod
    def list(cls, url=None, token=None):
        """The caller's sessions, as dicts (GET /v1/sessions)."""
        return _Client(url, token).json("GET", "/v1/sessions")["sessions"]

    def _op(self, op, body=None, ok=(200,)):
        return self._client.json(
            "POST", "/v1/sessions/%s/%s" % (_quote(self.name), op),
            body if body is not None else {}, ok=ok)

    def info(self):
        """The session now: state, limits, memory, checkpoint, ..."""
        self._info = self._client.json("GET", "/v1/sessions/%s" %
                                       _quote(self.name))
        return self._info

    def is_running(self):
        try:
            return self.info().get("state") not in ("ended", None)
        except NotFoundError:
            return False

    def interrupt(self):
        """Interrupt the running cell (SIGINT: KeyboardInterrupt)."""
        return self._op("interrupt")

    def restart(self):
        """A fresh interpreter: the variables go, the files stay."""
        return self._op("restart")

    def checkpoint(self):
        """Write a checkpoint of the interpreter's state now."""
        return self._op("checkpoint")

    def fork(self, name=None):
        """A new session starting from this one's state."""
        body = {"name": name} if name else {}
        return Session(self._op("fork", body, ok=(200, 201)), self._client,
                       owned=True)

    def kill(self):
        """End the session: interpreter, state and files go."""
        try:
            self._client.json("DELETE", "/v1/sessions/%s" % _quote(self.name))
        except NotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # As E2B: a session this object created ends with the block; one
        # it connected to is left as it was.
        if self._owned:
            self.kill()
        return False

    # The call itself.

    def run_code(self, code, timeout=None, on_stdout=None, on_stderr=None,
                 on_result=None, on_error=None, stdin=None,
                 store_history=None, request_timeout=None, raise_on=True,
                 language=None, envs=None):
        """Run code in the session; the Execution. Output callbacks get
        each chunk (str) or Result as it happens. timeout: seconds the
        cell may run (then TimeoutException); request_timeout: seconds the
        HTTP request may wait with no event (None: forever). A cell that
        raises returns normally, with execution.error set (as E2B); a cell
        that times out, runs out of memory, is killed or aborted raises
        the matching ExecutionFailure (raise_on=False: return it).
        language and envs are E2B's: only Python is run here, and a
        session's environment is fixed at its start (both refused
        otherwise, rather than ignored)."""
        if language not in (None, "python", "python3"):
            raise InvalidArgumentError("language: only python runs here")
        if envs:
            raise InvalidArgumentError("envs: a session's environment is "
                                       "fixed; not supported per call")
        body = {"code": code}
        if timeout is not None:
            body["timeout"] = timeout
        if stdin is not None:
            body["stdin"] = list(stdin)
        if store_history is not None:
            body["store_history"] = bool(store_history)
        logs = Logs()
        handlers = {"stdout": (on_stdout, logs.stdout),
                    "stderr": (on_stderr, logs.stderr)}
        contract = self._stream_execute(body, handlers, on_result, on_error,
                                        request_timeout)
        ex = Execution(contract, logs if contract.get("_streamed") else None)
        cls = _STATUS_ERRORS.get(ex.status)
        if cls is not None and raise_on:
            raise cls("the cell ended with status %s" % ex.status, ex)
        return ex

    def _stream_execute(self, body, handlers, on_result, on_error,
                        request_timeout):
        c = self._client
        resp = c.open("POST", "/v1/sessions/%s/execute" % _quote(self.name),
                      json.dumps(body).encode(),
                      {"Content-Type": "application/json",
                       "Accept": "application/x-ndjson"},
                      timeout=request_timeout)
        if resp.status not in (200, 429):
            data = resp.read()
            c.close(resp)
            raise c.fail(resp, data)
        exec_id = None
        try:
            if not resp.getheader("Content-Type", "").startswith(
                    "application/x-ndjson"):
                return json.loads(resp.read())   # queue_full, at once
            for line in resp:
                ev = json.loads(line)
                typ = ev.get("type")
                if typ == "accepted":
                    exec_id = ev.get("id")
                elif typ in handlers:
                    cb, chunks = handlers[typ]
                    chunks.append(ev.get("text", ""))
                    if cb:
                        cb(ev.get("text", ""))
                elif typ == "result" and on_result:
                    on_result(Result(ev))
                elif typ == "error" and on_error:
                    on_error(ExecutionError(ev))
                elif typ == "contract":
                    contract = ev["contract"]
                    contract["_streamed"] = True
                    return contract
        except (OSError, ValueError, http.client.HTTPException):
            if exec_id is None:
                raise ServerError("the execute stream broke before it "
                                  "started") from None
        finally:
            c.close(resp)
        if exec_id is None:
            raise ServerError("the execute stream ended without a result")
        # The stream broke mid-call: the cell runs on; fetch its result
        # (bounded by the cell's own timeout, not by the read that broke).
        return self.wait_execution(exec_id, None)

    def wait_execution(self, exec_id, timeout=None):
        """The contract of a call by id (GET /v1/executions/{id}), waiting
        while it runs: how a caller whose connection broke gets its
        result. timeout: seconds to wait (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            j = self._client.json("GET", "/v1/executions/%s" % _quote(exec_id))
            if j.get("status") != "running":
                return j
            if deadline is not None and time.monotonic() > deadline:
                raise ServerError("execution %s still running" % exec_id)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def __repr__(self):
        return "Session(%r, id=%r)" % (self.name, self.session_id)


# E2B's names, for agents that port by changing the import.
Sandbox = Session
