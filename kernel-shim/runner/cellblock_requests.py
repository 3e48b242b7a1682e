# Shell request handlers: one function per msg_type, all listed in REQUESTS at the bottom.

import base64

from IPython.core.completer import provisionalcompleter, rectify_completions
from IPython.utils.tokenutil import token_at_cursor


def request_execute(runner, content, request):
    shell = runner.shell
    code = content.get("code", "")
    if not isinstance(code, str):
        return bad_request("execute_request: code must be a string")
    silent = bool(content.get("silent", False))
    store_history = not silent and bool(content.get("store_history", True))
    expressions = content.get("user_expressions") or {}
    if not isinstance(expressions, dict):
        expressions = {}
    count = shell.execution_count       # the number execute_input shows
    runner.quiet = silent               # silent: no iopub at all (comms excepted)
    runner.allow_stdin = bool(content.get("allow_stdin", False))
    if not silent:
        runner.publish("execute_input", {"code": code, "execution_count": count})

    result, values = None, {}
    try:
        with runner.user_code():
            result = shell.run_cell(code, store_history=store_history, silent=silent)
            if result.success:
                values = shell.user_expressions(expressions)
    except KeyboardInterrupt:
        # Landed outside IPython's own handling. Before run_cell returned:
        # report it like IPython would; after: the cell is done, ignore it.
        runner.gate.armed = False
        if result is None:
            shell.showtraceback()

    runner.flush_streams()              # child output before the reply (ordering)
    payload = shell.payload_manager.read_payload()
    shell.payload_manager.clear_payload()
    reply = {"status": "ok", "execution_count": count, "payload": payload,
             "user_expressions": values}
    if result is None or not result.success:
        reply.update(_error_fields(shell, result), status="error", user_expressions={})
    return reply


def _error_fields(shell, result):
    err = KeyboardInterrupt()
    if result is not None:
        err = result.error_before_exec or result.error_in_exec or err
    fields = {"ename": type(err).__name__, "evalue": str(err),
              "traceback": shell._last_traceback or []}
    # Where a SyntaxError is, for the daemon's metadata.cellblock (the
    # runner's send_reply takes it out of the content, which stays ipykernel's).
    if isinstance(err, SyntaxError) and isinstance(err.lineno, int):
        fields["_cellblock"] = {"line": err.lineno}
        if isinstance(err.offset, int):
            fields["_cellblock"]["column"] = err.offset
    return fields


def request_complete(runner, content, request):
    code = content.get("code", "")
    cursor = content.get("cursor_pos")
    cursor = len(code) if cursor is None else int(cursor)
    with runner.user_code(), provisionalcompleter():
        found = list(rectify_completions(code, runner.shell.Completer.completions(code, cursor)))
    # rectify_completions gives every completion the same start/end.
    start, end = (found[0].start, found[0].end) if found else (cursor, cursor)
    return {"status": "ok", "matches": [c.text for c in found],
            "cursor_start": start, "cursor_end": end, "metadata": {}}


def request_inspect(runner, content, request):
    shell = runner.shell
    code = content.get("code", "")
    cursor = content.get("cursor_pos")
    cursor = len(code) if cursor is None else int(cursor)
    level = 1 if content.get("detail_level") == 1 else 0
    reply = {"status": "ok", "found": False, "data": {}, "metadata": {}}
    with runner.user_code():
        try:
            bundle = shell.object_inspect_mime(token_at_cursor(code, cursor), detail_level=level)
        except KeyError:
            return reply
    if not shell.enable_html_pager:
        bundle.pop("text/html", None)
    reply.update(found=True, data=bundle)
    return reply


def request_is_complete(runner, content, request):
    code = content.get("code", "")
    status, indent = runner.shell.input_transformer_manager.check_complete(code)
    reply = {"status": status}
    if status == "incomplete":
        reply["indent"] = " " * (indent or 0)
    return reply


def request_history(runner, content, request):
    history = runner.shell.history_manager
    kind = content.get("hist_access_type", "tail")
    raw, output = bool(content.get("raw", True)), bool(content.get("output", False))
    if kind == "tail":
        n = _int(content.get("n"), 10)
        found = history.get_tail(n, raw=raw, output=output, include_latest=True)
    elif kind == "range":
        found = history.get_range(_int(content.get("session"), 0), _int(content.get("start"), 0),
                                  content.get("stop"), raw=raw, output=output)
    elif kind == "search":
        found = history.search(content.get("pattern") or "*", raw=raw, output=output,
                               n=content.get("n"), unique=bool(content.get("unique", False)))
    else:
        found = []
    # IPython numbers the current session 0 in ranges but by its real
    # number in tails; clients match the two, so report the real one.
    current = history.session_number
    return {"status": "ok",
            "history": [[entry[0] or current, *entry[1:]] for entry in found]}


def _int(value, default):
    return default if value is None else int(value)


def request_comm_info(runner, content, request):
    return {"status": "ok", "comms": runner.comms.info(content.get("target_name"))}


def _comm_handler(method):
    """Client comm messages go to the session's CommManager; the daemon sends
    no shell reply for them, the empty reply only marks the request done."""
    def handle(runner, content, request):
        msg = {"header": {"msg_type": request.get("msg_type"),
                          "username": request.get("username", ""),
                          "session": request.get("session", "")},
               "parent_header": {}, "metadata": {}, "content": content,
               "buffers": [base64.b64decode(b) for b in request.get("buffers") or []]}
        with runner.user_code():
            getattr(runner.comms, method)(msg)
        return {}
    return handle


def bad_request(text):
    return {"status": "error", "ename": "BadRequest", "evalue": text, "traceback": []}


# msg_type → handler(runner, content, request) returning the reply content.
# Handlers that run user code wrap it in runner.user_code() so SIGINT can
# interrupt exactly that part.
REQUESTS = {
    "execute_request": request_execute,
    "complete_request": request_complete,
    "inspect_request": request_inspect,
    "is_complete_request": request_is_complete,
    "history_request": request_history,
    "comm_info_request": request_comm_info,
    "comm_open": _comm_handler("comm_open"),
    "comm_msg": _comm_handler("comm_msg"),
    "comm_close": _comm_handler("comm_close"),
}
