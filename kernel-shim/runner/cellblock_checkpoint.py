# Session checkpoints: the user's namespace to one file, variable by variable, and back.
#
# Format and behaviour: docs/CHECKPOINTS.md.
#
# The runner calls serve_op() for the channel ops `checkpoint` and `restore`.
# Nothing here runs at import time; dill is imported only when a value needs it.

import ast
import datetime
import hashlib
import hmac
import importlib
import io
import json
import os
import pickle
import platform
import secrets
import struct
import subprocess
import sys
import threading
import time
import traceback
import types
import warnings

from cellblock_channel import FrameTooLarge

MAGIC = b"CELLBLOCK-CKPT"
FORMAT = 1
HEADER = struct.Struct(">14sHI")    # magic, format version, manifest length
PROTOCOL = 5                        # out-of-band-capable; numpy/pandas pickle their buffers fast
REASON_MAX = 200
SHELL_REF = ":shell"                # persistent id of the IPython shell (no variable name has ':')

# Values too small for identity to matter: never shared between variables by reference.
_ATOMIC = frozenset((type(None), bool, int, float, complex, str, bytes))
# Names IPython or the module machinery own; everything else in user_ns is the user's.
_MODULE_DUNDERS = frozenset(("__name__", "__doc__", "__package__", "__loader__", "__spec__",
                             "__builtin__", "__builtins__", "__file__", "__cached__",
                             "__annotations__"))
_DISPLAY_UNDERS = ("_", "__", "___")


class CheckpointError(Exception):
    """The op failed as a whole; str() is the reply's `error`."""


class _Unsaveable(TypeError):
    """A value dill would 'pickle' into a lie (an open file, a running thread)."""


class _NeedsDill(Exception):
    """The fast pickler met a class or function defined in a cell."""


class _Missing(Exception):
    """A variable another one refers to could not be restored."""


# ------------------------------------------------------------------ channel ops

def serve_op(runner, msg):
    """Answer one `checkpoint` or `restore` op on the runner's channel."""
    rid = msg.get("id")
    if type(rid) is not int or rid <= 0:
        runner.log("%s without a valid id ignored: %r" % (msg.get("op"), rid))
        return
    reply = handle_op(runner, msg)
    try:
        runner.channel.send(reply)
    except FrameTooLarge as e:
        runner.channel.send({"op": reply["op"], "id": rid, "ok": False,
                             "error": "reply too large for the channel: %s" % e})


def handle_op(runner, msg):
    """Run one op and return its reply message. Never raises."""
    op = msg["op"]
    work, done = OPS[op]
    reply = {"op": done, "id": msg["id"]}
    started = time.monotonic()
    runner.flush_streams()
    runner.quiet = True     # output of __reduce__ or import hooks belongs to no request
    try:
        reply.update(work(runner.shell, msg), ok=True)
    except CheckpointError as e:
        reply.update(ok=False, error=str(e))
    except BaseException as e:  # a bug, MemoryError, SystemExit in user code: report, go on
        runner.log("%s failed:\n%s" % (op, traceback.format_exc()))
        reply.update(ok=False, error="%s failed: %s" % (op, _describe(e)))
    finally:
        runner.flush_streams()
        runner.quiet = False
    runner.log(_summary(reply, time.monotonic() - started))
    return reply


def _summary(reply, seconds):
    if not reply["ok"]:
        return "%s: %s" % (reply["op"], reply["error"])
    if reply["op"] == "checkpoint_done":
        m = reply["manifest"]
        return "checkpoint_done: %d saved, %d skipped, %d bytes in %.2fs" % (
            len(m["saved"]), len(m["skipped"]), reply["bytes"], seconds)
    return "restore_done: %d restored, %d lost in %.2fs" % (
        len(reply["restored"]), len(reply["lost"]), seconds)


def op_checkpoint(shell, msg):
    path = _path_field(msg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # dill's PicklingWarnings: failures are in the manifest
        manifest, payload = collect(shell)
    digest, size = write_atomically(path, manifest, payload)
    return {"path": path, "sha256": digest, "bytes": size, "manifest": manifest}


def op_restore(shell, msg):
    path = _path_field(msg)
    expected = msg.get("sha256")
    if not isinstance(expected, str) or len(expected) != 64 or \
            any(c not in "0123456789abcdefABCDEF" for c in expected):
        raise CheckpointError("bad request: sha256 must be 64 hex digits")
    manifest, payload = read_verified(path, expected.lower())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for noise in (DeprecationWarning, PendingDeprecationWarning, ImportWarning):
            warnings.simplefilter("ignore", noise)
        reply = restore(shell, manifest, payload)    # the first change to the session
    # e.g. "InconsistentVersionWarning: Trying to unpickle estimator ... from version X"
    reply["warnings"] += sorted({_describe(w.message) for w in caught})[:20]
    return reply


def _path_field(msg):
    path = msg.get("path")
    if not isinstance(path, str) or not os.path.isabs(path) or path.endswith("/") or "\0" in path:
        raise CheckpointError("bad request: path must be an absolute file path")
    return path


# ------------------------------------------------------------ what is saved

def user_variables(shell):
    """The user's names in user_ns, in definition order: IPython's own
    entries (In, Out, _i3, _5, exit, get_ipython ...) are left out."""
    hidden = shell.user_ns_hidden
    found = {}
    for name, value in list(shell.user_ns.items()):
        if not isinstance(name, str) or name in _MODULE_DUNDERS or name in _DISPLAY_UNDERS:
            continue
        if name in hidden and hidden[name] is value:
            continue
        found[name] = value
    return found


def collect(shell):
    """Pickle the session → (manifest, payload). One bad value never sinks the rest."""
    variables = user_variables(shell)
    modules, skipped_modules = _module_bindings(variables)
    values = {n: v for n, v in variables.items() if not isinstance(v, types.ModuleType)}
    saver = _Saver(shell, variables)
    saver.skipped.update(skipped_modules)
    records = saver.save_all(values)
    output_hist = dict(shell.history_manager.output_hist)
    outputs = saver.save_outputs(output_hist)
    payload = {"variables": records, "rings": saver.rings, "outputs": outputs, "modules": modules,
               "submodules": _submodules(shell, modules),
               "history": _input_history(shell), "execution_count": shell.execution_count,
               "cwd": _getcwd()}
    named = dict(variables, **{"Out[%d]" % n: value for n, value in output_hist.items()})
    return _manifest(named, records, saver, payload), payload


def _module_bindings(variables):
    """Names bound to modules → (name → module name to re-import, name → reason)."""
    found, skipped = {}, {}
    for name, value in variables.items():
        if isinstance(value, types.ModuleType):
            modname = getattr(value, "__name__", None)
            if isinstance(modname, str) and sys.modules.get(modname) is value:
                found[name] = modname
            else:
                skipped[name] = "module %r was made at run time, not imported" % (modname,)
    return found, skipped


def _submodules(shell, modules):
    """`import a.b.c` binds only `a`; re-importing `a` alone would not load
    a.b.c, so find such statements in the session's inputs."""
    found = set()
    for source in shell.history_manager.input_hist_parsed:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.asname is None and "." in a.name)
    return sorted(n for n in found if modules.get(n.split(".")[0]) == n.split(".")[0])


def _input_history(shell):
    hm = shell.history_manager
    return {"parsed": list(hm.input_hist_parsed), "raw": list(hm.input_hist_raw),
            "unders": [hm._i00, hm._i, hm._ii, hm._iii]}


def _getcwd():
    try:
        return os.getcwd()
    except OSError:     # the directory was removed under us
        return None


def _manifest(named, records, saver, payload):
    saved = []
    for name, record in records.items():
        entry = {"name": name, "type": _type_name(named[name]),
                 "bytes": len(record.get("blob", b""))}
        if "alias" in record:
            entry["alias_of"] = record["alias"]
        elif "ring" in record:      # the ring's size is counted on its first member
            ring = payload["rings"][record["ring"]]
            entry.update(bytes=0 if record["index"] else len(ring["blob"]), ring=record["ring"])
        saved.append(entry)
    skipped = [{"name": n, "type": _type_name(named[n]), "reason": r}
               for n, r in saver.skipped.items() if n[0] != ":"]
    return {"format": FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "saved": saved, "skipped": skipped,
            "modules": payload["modules"], "execution_count": payload["execution_count"],
            "cwd": payload["cwd"]}


def _type_name(value):
    cls = type(value)
    module = getattr(cls, "__module__", None)
    if module in (None, "builtins"):
        return cls.__qualname__
    return "%s.%s" % (module, cls.__qualname__)


def _describe(exc):
    kind = "TypeError" if isinstance(exc, _Unsaveable) else type(exc).__name__
    text = "%s: %s" % (kind, exc) if str(exc) else kind
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 3] + "..."


# ------------------------------------------------------------------ pickling

def _refusal(obj):
    """Why obj must not be saved although dill would manage, or None.
    dill 'pickles' open files and threads by reopening or recreating them:
    the restored object would pretend to be something it is not."""
    if isinstance(obj, io.IOBase) and not isinstance(obj, (io.BytesIO, io.StringIO)):
        return "cannot checkpoint an open file %r (reopen it after resume)" % (
            getattr(obj, "name", "?"),)
    if isinstance(obj, threading.Thread):
        return "cannot checkpoint a thread (%s)" % obj.name
    if isinstance(obj, subprocess.Popen):
        return "cannot checkpoint a child process (pid %s)" % obj.pid
    return None


def _named_in_cell(obj):
    """A class, function or wrapper defined in a cell: pickle would save it
    as `__main__.name`, a name that does not exist yet when loading."""
    return getattr(obj, "__module__", None) == "__main__" and hasattr(obj, "__qualname__")


class _Policy:
    """What both picklers ask about each object. An object that is another
    variable's value is saved as that variable's name (a persistent id), so
    identity survives a restore: isinstance(p, Point), two names for one
    DataFrame. Records the names used."""

    def __init__(self, refs, root, exclude, fast):
        self.refs, self.root, self.exclude, self.fast = refs, root, exclude, fast
        self.used = set()

    def persistent_id(self, obj):
        # Called for every object pickled, so it does as little as it can.
        # refs holds ids of live objects only, so a matching id is that object.
        name = self.refs.get(id(obj))
        if name is None or obj is self.root or name in self.exclude:
            return None
        self.used.add(name)
        return name

    def reducer_override(self, obj):
        # The C pickler asks only for objects that are not plain containers.
        reason = _refusal(obj)
        if reason is not None:
            raise _Unsaveable(reason)
        if self.fast and _named_in_cell(obj):
            raise _NeedsDill()
        return NotImplemented


class _FastPickler(pickle.Pickler):
    """The C pickler: tens of times faster than dill on big containers."""

    def __init__(self, file, policy):
        self.policy = policy
        super().__init__(file, protocol=PROTOCOL)
        self.persistent_id = policy.persistent_id   # one Python call per object, not two

    def reducer_override(self, obj):
        return self.policy.reducer_override(obj)


_dill_pickler = None


def _dill_pickler_class():
    global _dill_pickler
    if _dill_pickler is None:
        import dill

        class DillPickler(dill.Pickler):
            """dill saves cell-defined classes, functions, lambdas and closures by value."""

            def __init__(self, file, policy, main):
                # recurse=False: a function's globals are saved as "the session
                # namespace", so after restore it sees live variables, not copies.
                super().__init__(file, protocol=PROTOCOL, byref=False, recurse=False)
                self._main = main   # dill bound __main__ when first imported; use the shell's
                self.policy = policy

            def persistent_id(self, obj):
                return self.policy.persistent_id(obj)

            def reducer_override(self, obj):
                return self.policy.reducer_override(obj)

            def save(self, obj, save_persistent_id=True):
                if type(obj) is str and obj == "__main__" and \
                        sys._getframe(1).f_code is _SAVE_GLOBAL_CODE:
                    raise _Unsaveable(_by_name_reason(sys._getframe(1).f_locals))
                super().save(obj, save_persistent_id)
        _dill_pickler = DillPickler
    return _dill_pickler


# What dill cannot copy (an Enum class, an lru_cache wrapper, a class whose
# body holds its own instances) it saves by name through this function; a
# name in __main__ would not exist when loading, so such values are skipped.
_SAVE_GLOBAL_CODE = pickle._Pickler.save_global.__code__


def _by_name_reason(frame_locals):
    obj = frame_locals.get("obj")
    return "%s %r is defined in a cell and dill can only save it by name (re-run its " \
        "definition after resume)" % (type(obj).__name__, frame_locals.get("name"))


class _Saver:
    """Pickles values one at a time, keeping what failed and why."""

    def __init__(self, shell, variables):
        self.shell = shell
        self.refs = {id(shell): SHELL_REF}
        for name, value in variables.items():   # the first name of an object wins
            if type(value) not in _ATOMIC:
                self.refs.setdefault(id(value), name)
        self.skipped = {}       # name → reason

    def dump(self, value, exclude=()):
        """value → (record, names it refers to). Fast pickle first, then dill."""
        policy = _Policy(self.refs, value, exclude, fast=True)
        try:
            return _pickled(_FastPickler, value, policy, "pickle"), policy.used
        except _Unsaveable:
            raise
        except Exception:
            pass    # a cell-defined class or function, a module, a lambda inside a value ...
        policy = _Policy(self.refs, value, exclude, fast=False)
        return _pickled(self._dill, value, policy, "dill"), policy.used

    def _dill(self, file, policy):
        return _dill_pickler_class()(file, policy, self.shell.user_module)

    def save_all(self, values):
        records, deps = {}, {}
        for name, value in values.items():
            alias = self.refs.get(id(value))
            if alias is not None and alias != name:
                records[name], deps[name] = {"alias": alias}, {alias}
                continue
            try:
                records[name], deps[name] = self.dump(value)
            except Exception as e:
                self.skipped[name] = _describe(e)
        self._bundle_rings(values, records, deps)
        self._drop_dependents(records, deps)
        self.rings = {key: records.pop(key) for key in list(records) if key.startswith(":")}
        return records

    def _bundle_rings(self, values, records, deps):
        """Variables referring to each other in a ring cannot be loaded one
        after the other: pickle each ring as one tuple (so identity within
        it is kept) under a key of its own, which the members point into."""
        for number, ring in enumerate(_rings(deps)):
            key, members = ":ring%d" % number, [n for n in values if n in ring]
            try:
                records[key], deps[key] = self.dump(tuple(values[n] for n in members),
                                                    exclude=ring)
            except Exception as e:
                for name in members:
                    del records[name], deps[name]
                    self.skipped[name] = _describe(e)
                continue
            for index, name in enumerate(members):
                records[name], deps[name] = {"ring": key, "index": index}, {key}

    def _drop_dependents(self, records, deps):
        """A value that refers to a variable that was not saved cannot be restored."""
        changed = True
        while changed:
            changed = False
            for name in list(records):
                reason = self._unsaved_dependency(deps[name])
                if reason is not None:
                    del records[name], deps[name]
                    self.skipped[name] = reason
                    changed = True

    def _unsaved_dependency(self, names):
        missing = sorted(n for n in names if n in self.skipped)
        if not missing:
            return None
        if missing[0][0] == ":":
            return self.skipped[missing[0]]     # a ring that failed: its members' reason
        return "refers to %r, which could not be saved" % missing[0]

    def save_outputs(self, output_hist):
        """Out[n] entries: by reference when they are a variable's value
        (no second copy of a displayed DataFrame), else pickled if possible."""
        saved = {}
        for n, value in output_hist.items():
            name = self.refs.get(id(value)) if type(value) not in _ATOMIC else None
            try:
                record, deps = ({"alias": name}, {name}) if name else self.dump(value)
            except Exception as e:
                self.skipped["Out[%d]" % n] = _describe(e)
                continue
            reason = self._unsaved_dependency(deps)
            if reason is None:
                saved[n] = record
            else:
                self.skipped["Out[%d]" % n] = reason
        return saved


def _rings(deps):
    """The sets of names that refer to each other in a cycle."""
    reach = {name: _reachable(name, deps) for name in deps}
    rings = []
    for name, reached in reach.items():
        if name in reached and not any(name in ring for ring in rings):
            rings.append({name} | {m for m in reached if name in reach.get(m, ())})
    return rings


def _reachable(start, deps):
    seen, todo = set(), list(deps.get(start, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(deps.get(name, ()))
    return seen


def _pickled(make_pickler, value, policy, codec):
    out = io.BytesIO()
    make_pickler(out, policy).dump(value)
    return {"codec": codec, "blob": out.getvalue()}


# ------------------------------------------------------------------ the file

class _HashingWriter:
    """Passes writes to a file, hashing and counting them on the way."""

    def __init__(self, file):
        self.file = file
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha256.update(data)
        self.size += memoryview(data).nbytes
        return self.file.write(data)


def write_atomically(path, manifest, payload):
    """Write the checkpoint to path.tmp-RANDOM (0600), fsync, rename over
    path, fsync the directory → (sha256 hex, size). On any failure the
    previous file at path is untouched and the temporary file is removed."""
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        tmp = "%s.tmp-%s" % (path, secrets.token_hex(8))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise CheckpointError("checkpoint failed: %s" % _describe(e)) from e
    try:
        os.fchmod(fd, 0o600)    # exactly owner-only, whatever the umask
        with open(fd, "wb") as file:
            out = _HashingWriter(file)
            _write_contents(out, manifest, payload)
            file.flush()
            os.fsync(file.fileno())
        os.rename(tmp, path)
    except BaseException as e:
        _remove_quietly(tmp)
        if isinstance(e, OSError):  # ENOSPC, EDQUOT, EFBIG, EIO ...
            raise CheckpointError("checkpoint failed: %s" % _describe(e)) from e
        raise
    _fsync_directory(parent)
    return out.sha256.hexdigest(), out.size


def _write_contents(out, manifest, payload):
    manifest_json = json.dumps(manifest).encode("ascii")    # \u-escapes any odd path
    out.write(HEADER.pack(MAGIC, FORMAT, len(manifest_json)))
    out.write(manifest_json)
    # Large blobs go straight to the file (pickle frames bypass its buffer).
    pickle.dump(payload, out, protocol=PROTOCOL)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_directory(path):
    # The rename is durable only once the directory entry is on disk. The
    # file is complete either way, so a failure here is not an error.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_verified(path, expected):
    """Read the whole file, check its sha256, then parse it → (manifest,
    payload). Nothing is unpickled before the checksum matched, and the
    outer layer holds only plain data (no class may be loaded)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError as e:
        raise CheckpointError("checkpoint missing: %s" % path) from e
    except OSError as e:
        raise CheckpointError("checkpoint unreadable: %s" % _describe(e)) from e
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, expected):
        raise CheckpointError("checkpoint corrupted: sha256 mismatch (expected %s, file has %s, "
                              "%d bytes)" % (expected, actual, len(data)))
    return _parse(data)


def _parse(data):
    if len(data) < HEADER.size:
        raise CheckpointError("checkpoint unusable: shorter than its header")
    magic, version, manifest_len = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError("checkpoint unusable: not a cellblock checkpoint")
    if version != FORMAT:
        raise CheckpointError("checkpoint unsupported: format %d (this runner reads %d)"
                              % (version, FORMAT))
    body = HEADER.size + manifest_len
    try:
        manifest = json.loads(data[HEADER.size:body].decode("utf-8"))
        stream = io.BytesIO(data)   # shares the bytes: no copy of a large file
        stream.seek(body)
        payload = _PlainUnpickler(stream).load()
    except Exception as e:
        raise CheckpointError("checkpoint unusable: %s" % _describe(e)) from e
    if not isinstance(manifest, dict) or not isinstance(payload, dict) or \
            not _PAYLOAD_KEYS <= payload.keys():
        raise CheckpointError("checkpoint unusable: unexpected layout")
    return manifest, payload


_PAYLOAD_KEYS = frozenset(("variables", "rings", "outputs", "modules", "submodules", "history",
                           "execution_count", "cwd"))


class _PlainUnpickler(pickle.Unpickler):
    """The outer layer is dicts, lists, strings and bytes: refuse any class."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("checkpoint payload refers to %s.%s" % (module, name))


# ------------------------------------------------------------------ restore

def restore(shell, manifest, payload):
    """Load a verified checkpoint into the shell → the restore_done fields."""
    notes = _restore_cwd(payload["cwd"])
    if manifest.get("python", "").split(".")[:2] != platform.python_version().split(".")[:2]:
        notes.append("checkpoint written by Python %s; functions and classes saved by "
                     "value may not load" % manifest.get("python"))
    loader = _Loader(shell, dict(payload["variables"], **payload["rings"]))
    modules = loader.import_modules(payload["modules"])
    notes += _import_submodules(payload["submodules"])
    for name in payload["variables"]:
        try:
            loader.load(name)
        except _Missing:
            pass    # recorded in loader.lost
    notes += _restore_history(shell, loader, payload)
    return {"restored": [n for n in payload["variables"] if n in loader.loaded],
            "lost": [{"name": n, "reason": r} for n, r in loader.lost.items() if n[0] != ":"],
            "modules": modules, "skipped": manifest.get("skipped", []),
            "execution_count": shell.execution_count, "warnings": notes}


def _restore_cwd(cwd):
    if cwd is None:
        return []
    try:
        os.chdir(cwd)   # before imports: modules in the work directory import from there
        return []
    except OSError as e:
        return ["working directory %s not restored: %s" % (cwd, _describe(e))]


def _import_submodules(names):
    notes = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:
            notes.append("import %s failed: %s" % (name, _describe(e)))
    return notes


class _Loader:
    """Unpickles variables on demand: a value that refers to another
    variable (by persistent id) loads that one first."""

    def __init__(self, shell, records):
        self.shell = shell
        self.records = records
        self.loaded = {SHELL_REF: shell}    # name → value, also bound in user_ns
        self.lost = {}                      # name → reason
        self.loading = set()

    def import_modules(self, modules):
        done = []
        for name, modname in modules.items():
            try:
                self._bind(name, importlib.import_module(modname))
                done.append(name)
            except Exception as e:
                self.lost[name] = "import %s failed: %s" % (modname, _describe(e))
        return done

    def load(self, name):
        if name in self.loaded:
            return self.loaded[name]
        if name in self.lost or name not in self.records or name in self.loading:
            raise _Missing(name)
        self.loading.add(name)
        try:
            value = self.materialise(self.records[name])
        except _Missing as e:
            self.lost[name] = self._why_missing(e.args[0])
            raise _Missing(name) from None
        except Exception as e:
            self.lost[name] = _describe(e)
            raise _Missing(name) from None
        finally:
            self.loading.discard(name)
        self._bind(name, value)
        return value

    def _why_missing(self, missing):
        if missing[0] == ":" and missing in self.lost:
            return self.lost[missing]       # a ring that failed: its members' reason
        return "refers to %r, which was not restored" % missing

    def materialise(self, record):
        if "alias" in record:
            return self.load(record["alias"])
        if "ring" in record:
            return self.load(record["ring"])[record["index"]]
        blob = io.BytesIO(record.pop("blob"))   # loaded once; free it as soon as possible
        if record["codec"] == "pickle":
            unpickler = _RefUnpickler(blob, self.load)
        else:
            unpickler = _dill_unpickler_class()(blob, self.load, self.shell.user_module)
        return unpickler.load()

    def _bind(self, name, value):
        self.loaded[name] = value
        if name[0] == ":":
            return      # a ring's tuple, not a variable
        self.shell.user_ns[name] = value
        self.shell.user_ns_hidden.pop(name, None)


class _RefUnpickler(pickle.Unpickler):
    def __init__(self, file, load):
        super().__init__(file)
        self.persistent_load = load


_dill_unpickler = None


def _dill_unpickler_class():
    global _dill_unpickler
    if _dill_unpickler is None:
        import dill

        class DillUnpickler(dill.Unpickler):
            def __init__(self, file, load, main):
                # ignore=True: do not re-point a loaded instance at whatever
                # class now has its class's name; persistent ids keep identity.
                super().__init__(file, ignore=True)
                self._main = main   # functions' globals become the shell's namespace
                self.load_reference = load

            def persistent_load(self, pid):
                return self.load_reference(pid)
        _dill_unpickler = DillUnpickler
    return _dill_unpickler


def _restore_history(shell, loader, payload):
    """In, Out, _iN, _N, _/__/___ and the execution count, as IPython keeps them."""
    hm = shell.history_manager
    history = payload["history"]
    hm.input_hist_parsed[:] = history["parsed"]
    hm.input_hist_raw[:] = history["raw"]
    hm._i00, hm._i, hm._ii, hm._iii = history["unders"]
    inputs = {"_i%d" % n: line for n, line in enumerate(history["raw"]) if n}
    inputs.update(_i=hm._i, _ii=hm._ii, _iii=hm._iii)
    shell.push(inputs, interactive=False)
    notes = _restore_outputs(shell, loader, payload["outputs"])
    shell.execution_count = payload["execution_count"]
    return notes


def _restore_outputs(shell, loader, outputs):
    notes, restored = [], {}
    for n, record in outputs.items():
        try:
            restored[n] = loader.materialise(record)
        except _Missing as e:
            notes.append("Out[%d] not restored: %r was not restored" % (n, e.args[0]))
        except Exception as e:
            notes.append("Out[%d] not restored: %s" % (n, _describe(e)))
    shell.history_manager.output_hist.update(restored)
    hook = shell.displayhook
    last = [restored[n] for n in sorted(restored)[-3:]][::-1] + ["", "", ""]
    hook._, hook.__, hook.___ = last[:3]
    unders = {"_%d" % n: value for n, value in restored.items()}
    if "_" not in sys.modules["builtins"].__dict__:
        unders.update({"_": hook._, "__": hook.__, "___": hook.___})
    shell.push(unders, interactive=False)
    return notes


# op → (handler(shell, msg) returning the reply fields, reply op)
OPS = {
    "checkpoint": (op_checkpoint, "checkpoint_done"),
    "restore": (op_restore, "restore_done"),
}
