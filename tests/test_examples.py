"""examples/agent.py against a private daemon, as a user would run it."""
import json
import os
import re
import subprocess

from cbtest import PYTHON, ROOT

AGENT = os.path.join(ROOT, "examples", "agent.py")


def run_agent(daemon, *args):
    p = subprocess.run([PYTHON, AGENT, *args], capture_output=True, text=True,
                       env=daemon.env(), timeout=180)
    return p.returncode, p.stdout, p.stderr


def sessions(daemon):
    p = daemon.cli("ls", "--json")
    assert p.returncode == 0, p.stderr
    return {s["name"]: s for s in json.loads(p.stdout)}


def test_agent_example(daemon):
    rc, out, err = run_agent(daemon, "--name", "agent-test", "--keep")
    assert rc == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, out, err)
    assert "session agent-test (new): " + daemon.state in out, out
    assert re.search(r"wrote /\S*sales\.csv", out), out
    assert "(6, 4)" in out, out                                     # read_csv shape
    assert re.search(r"south\s+560\.0", out), out                   # per-region totals
    assert "=> 'south'" in out, out
    assert "error: KeyError: 'profit'" in out, out
    assert "=> 1220.0" in out, out
    assert "cellblock reason: InterpreterExited" in out, out
    assert "ANSWER: best region: south with revenue 560.0" in out, out
    assert out.rstrip().endswith("done: ok"), out
    assert "Traceback" not in err, err
    assert "agent-test" in sessions(daemon)

    # a second conversation reuses the session and finds the state left in it
    rc, out, err = run_agent(daemon, "--name", "agent-test")
    assert rc == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, out, err)
    assert "session agent-test (reused): " in out, out
    assert "found a DataFrame from an earlier run: 6 rows" in out, out
    assert "ANSWER: best region: south with revenue 560.0" in out, out
    assert out.rstrip().endswith("done: ok"), out
    assert "agent-test" not in sessions(daemon), "the agent without --keep left its session"


def test_agent_example_is_documented():
    with open(AGENT) as f:
        source = f.read()
    assert source.startswith("#!/usr/bin/python3\n")
    doc = source.split('"""')[1]
    assert "/usr/bin/python3 examples/agent.py" in doc and "CELLBLOCK_STATE_DIR" in doc
