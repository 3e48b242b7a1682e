"""Debian's Notebook 6.4 with --gateway-url in front of the daemon, its own
page driven in headless Chromium (tests/js/notebook.mjs): a notebook
prints, renders a DataFrame as an HTML table and a matplotlib PNG, is
interrupted in a long cell, restarted, left idle with the page open until
cellblock hibernates the session, and its next cell sees its variables.
A screenshot is saved in $CELLBLOCK_ARTIFACTS (default tests/artifacts/)."""
import json
import os
import subprocess

from gwnode import JS, NODE, JupyterApp
from gwtest import Api, Gateway

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.environ.get("CELLBLOCK_ARTIFACTS") or os.path.join(ROOT, "tests", "artifacts")

EMPTY = {"cells": [], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                  "language": "python"}},
         "nbformat": 4, "nbformat_minor": 5}


def test_notebook_in_chromium_through_the_gateway():
    gw = Gateway(config="idle-timeout = 3\n")
    api = nb = None
    try:
        api = Api(gw, gw.token("notebook"))
        nb = JupyterApp("notebook", gw.url, api.token)
        r = nb.call("PUT", "/api/contents/cells.ipynb",
                    json={"type": "notebook", "format": "json", "content": EMPTY})
        assert r.status_code in (200, 201), r.text
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "gw_notebook.png")
        if os.path.exists(shot):
            os.unlink(shot)
        p = subprocess.run([NODE, os.path.join(JS, "notebook.mjs"), nb.url, nb.token,
                            "cells.ipynb", gw.url, api.token, shot], cwd=JS,
                           capture_output=True, text=True, timeout=600)
        lines = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
        steps = {s["step"]: s for s in lines if "step" in s}
        where = "node:\n%s\n%s\nnotebook:\n%s" % (p.stdout, p.stderr[-3000:], nb.log_text()[-3000:])
        assert p.returncode == 0 and lines[-1] == {"done": True}, where
        kid = steps["open"]["kernel"]
        assert [m["id"] for m in api.call("GET", "/api/kernels").json()] == [kid], where

        assert steps["print"]["text"].strip() == "hello from cellblock 42", where
        df = steps["dataframe"]
        assert df["tables"] == 1 and df["cells"] == ["1", "1", "2", "4", "3", "9"], where
        png = steps["png"]
        assert png["png"] and png["png"]["src"] == "data:image/png;base64," and \
            png["png"]["width"] > 100, where
        assert steps["interrupt"]["ename"] == ["KeyboardInterrupt"], where
        assert steps["restart"]["kernel"] == kid, where
        assert steps["restart"]["text"].strip() == "False", where
        assert steps["set"]["text"].strip() == "set", where
        assert steps["hibernate"]["model"]["cellblock"]["state"] == "hibernated", where
        assert steps["hibernate"]["model"]["id"] == kid, where
        assert steps["resume"]["text"].strip() == "survives 7 14", where
        assert steps["model"]["model"]["cellblock"]["state"] != "hibernated", where
        assert os.path.getsize(shot) > 10000, where
    finally:
        if nb:
            nb.stop()
        if api:
            api.close()
        gw.stop()
