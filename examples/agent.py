#!/usr/bin/python3
"""agent.py: how an LLM data-analysis agent uses cellblock.

An agent keeps one session per conversation and sends it one cell per
turn; variables made in one turn are there in the next.  This script plays
such an agent with a fixed plan instead of a language model:

  1. get a session: `cellblock new --name NAME` (reused if it exists),
     then a plain jupyter_client BlockingKernelClient on its connection file;
  2. write a small CSV into the session's working directory;
  3. load it with pandas and keep the DataFrame;
  4. compute per-region totals from the DataFrame of turn 3;
  5. ask about a column that does not exist, and read the error it gets
     (ename, evalue) like an agent would, then correct itself;
  6. run a cell that ends the interpreter (`os._exit`), and read cellblock's
     typed failure reason from the reply's metadata;
  7. notice the state is gone, rebuild it, and answer.

Each turn's result is printed; the exit status is 0 when the plan went
as expected.

Run it by hand (a daemon is started if none answers):

    /usr/bin/python3 examples/agent.py [--name NAME] [--keep]

The state directory is the CLI's: CELLBLOCK_STATE_DIR, or --state-dir DIR.
--keep leaves the session running, so a second run reuses it (and finds
the DataFrame the first run left).  Needs jupyter_client and, in the
session, pandas.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

from jupyter_client import BlockingKernelClient

HERE = os.path.dirname(os.path.abspath(__file__))
TURN_TIMEOUT = 60       # seconds a turn may take

SALES_CSV = """\
region,product,units,revenue
north,widget,12,240.0
north,gadget,3,150.0
south,widget,7,140.0
south,gizmo,10,420.0
east,gadget,5,250.0
west,widget,1,20.0
"""


def cellblock_binary():
    """cellblock in $CELLBLOCK_BIN (the tests' choice of build), else
    bin/cellblock of this checkout, else the one on PATH."""
    bindir = os.environ.get("CELLBLOCK_BIN") or os.path.join(os.path.dirname(HERE), "bin")
    local = os.path.join(bindir, "cellblock")
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("cellblock")
    if found is None:
        sys.exit("agent: no cellblock binary (build with `make`, or put it on PATH)")
    return found


class Cellblock:
    """The few CLI calls an agent needs."""

    def __init__(self, state_dir=None):
        self.argv = [cellblock_binary()] + (["--state-dir", state_dir] if state_dir else [])

    def call(self, *args):
        p = subprocess.run(self.argv + list(args), capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stdout, p.stderr

    def session_file(self, name):
        """The connection file of session NAME, creating the session if needed.
        Returns (path, reused)."""
        rc, out, err = self.call("new", "--name", name)
        if rc == 0:
            return out.strip(), False
        rc2, out2, err2 = self.call("ls", "--json")
        if rc2 == 0:
            for s in json.loads(out2):
                if s["name"] == name and s.get("connection_file"):
                    return s["connection_file"], True
        sys.exit("agent: cannot get session %s: %s" % (name, (err or err2).strip()))

    def kill(self, name):
        self.call("kill", name)


class Turn:
    """What one cell produced, as an agent would summarise it."""

    def __init__(self):
        self.stdout, self.stderr, self.results = [], [], []
        self.error = None       # (ename, evalue)
        self.reason = None      # cellblock's typed failure reason, if any
        self.status = None


def run_turn(kc, code):
    turn = Turn()

    def on_output(msg):
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            (turn.stdout if content["name"] == "stdout" else turn.stderr).append(content["text"])
        elif kind in ("execute_result", "display_data"):
            turn.results.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            turn.error = (content["ename"], content["evalue"])

    reply = kc.execute_interactive(code, timeout=TURN_TIMEOUT, output_hook=on_output,
                                   allow_stdin=False)
    turn.status = reply["content"]["status"]
    if turn.status == "error":
        turn.error = (reply["content"]["ename"], reply["content"]["evalue"])
        turn.reason = reply["metadata"].get("cellblock", {}).get("reason")
    return turn


def show(number, title, code, turn):
    print("[turn %d] %s" % (number, title))
    for line in code.strip().splitlines():
        print("    >>> " + line)
    for text in turn.stdout:
        print("    " + text.rstrip("\n").replace("\n", "\n    "))
    for text in turn.results:
        print("    => " + text.replace("\n", "\n       "))
    if turn.error:
        print("    error: %s: %s" % turn.error)
    if turn.reason:
        print("    cellblock reason: %s" % turn.reason)
    sys.stdout.flush()


def conversation(kc):
    """The agent's plan; returns the number of turns that went wrong."""
    problems = 0
    n = 0

    def step(title, code, expect_ok=True):
        nonlocal n, problems
        n += 1
        turn = run_turn(kc, code)
        show(n, title, code, turn)
        if (turn.status == "ok") != expect_ok:
            print("    (unexpected status %s)" % turn.status)
            problems += 1
        return turn

    t = step("look for state left by an earlier conversation",
             "'df' in globals() and len(df)")
    if t.results and t.results[0] != "False":
        print("    found a DataFrame from an earlier run: %s rows" % t.results[0])

    step("write the data file into the session's working directory",
         "import os\n"
         "with open('sales.csv', 'w') as f:\n"
         "    f.write(%r)\n"
         "print('wrote', os.path.abspath('sales.csv'))" % SALES_CSV)

    t = step("load it with pandas",
             "import pandas as pd\n"
             "df = pd.read_csv('sales.csv')\n"
             "print(df.shape)")

    t = step("revenue per region, from the DataFrame of the last turn",
             "totals = df.groupby('region')['revenue'].sum().sort_values(ascending=False)\n"
             "print(totals.to_string())\n"
             "totals.idxmax()")

    t = step("a mistaken column name", "df['profit'].sum()", expect_ok=False)
    if t.error and t.error[0] == "KeyError":
        print("    the agent reads the KeyError and corrects itself")
    else:
        problems += 1

    t = step("the corrected question",
             "float(df['revenue'].sum())")

    t = step("a cell that ends the interpreter",
             "import os\nos._exit(3)", expect_ok=False)
    if t.reason:
        print("    typed failure: %s (the session lives on; its variables do not)" % t.reason)
    else:
        print("    (no typed failure reason in the reply metadata)")
        problems += 1

    t = step("is the DataFrame still there?", "'df' in globals()")
    if t.results == ["False"]:
        print("    state was lost with the interpreter: rebuilding it")
        step("rebuild",
             "import pandas as pd\n"
             "df = pd.read_csv('sales.csv')\n"
             "totals = df.groupby('region')['revenue'].sum()\n"
             "print('rows', len(df))")

    t = step("final answer",
             "best = totals.idxmax()\n"
             "f'best region: {best} with revenue {totals[best]:.1f}'")
    if t.results:
        print("ANSWER: " + t.results[0].strip("'"))
    else:
        problems += 1
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="agent-demo", help="session name (default agent-demo)")
    ap.add_argument("--state-dir", help="cellblock state directory")
    ap.add_argument("--keep", action="store_true", help="leave the session running")
    args = ap.parse_args()

    cb = Cellblock(args.state_dir)
    path, reused = cb.session_file(args.name)
    print("session %s (%s): %s" % (args.name, "reused" if reused else "new", path))
    kc = BlockingKernelClient(connection_file=path)
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        problems = conversation(kc)
    finally:
        kc.stop_channels()
        if not args.keep:
            cb.kill(args.name)
    print("done: %s" % ("ok" if problems == 0 else "%d problem(s)" % problems))
    return 0 if problems == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
