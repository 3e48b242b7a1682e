#!/usr/bin/python3
"""agent_sdk.py: a multi-turn data analysis through the Python SDK.

The same plan as examples/agent_rest.sh (curl), written the way an agent
built on E2B's code-interpreter SDK would write it, holding one session
across turns:

  1. create a session (or connect to --name's, if it exists);
  2. upload a CSV into its working directory;
  3. load it with pandas (the DataFrame stays for the next turns);
  4. ask for a column that does not exist, read the structured error
     (ename, evalue) and correct the next cell from it;
  5. plot the totals with matplotlib into a PNG file in the session;
  6. download the PNG and check it is one.

Run it against `make run` (the daemon prints the URL and a token):

    CELLBLOCK_URL=http://127.0.0.1:8765 CELLBLOCK_TOKEN=... \\
        /usr/bin/python3 examples/agent_sdk.py [--name NAME] [--keep] [--out plot.png]

Exit status 0 when every turn went as planned. The SDK is imported from
the checkout (server/sdk/python) or, installed, from dist-packages.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server", "sdk", "python"))

from cellblock_sdk import NotFoundError, Session  # noqa: E402

CSV = "region,month,revenue\n" + "".join(
    "%s,%d,%d\n" % (r, m, 100 * m + 7 * i)
    for i, r in enumerate(["north", "south", "east", "west"])
    for m in range(1, 13))


def say(turn, text):
    print("turn %s: %s" % (turn, text), flush=True)


def session(args):
    if args.name:
        try:
            return Session.connect(args.name), False
        except NotFoundError:
            pass
    return Session.create(name=args.name, memory="1G"), True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", help="session to create or reuse")
    ap.add_argument("--keep", action="store_true",
                    help="leave the session running")
    ap.add_argument("--out", default="plot.png", help="where the PNG goes")
    args = ap.parse_args()

    s, created = session(args)
    say(1, "session %s (id %s)%s" % (s.name, s.id,
                                     "" if created else ", reused"))
    try:
        s.files.write("sales.csv", CSV)
        say(2, "uploaded sales.csv (%d bytes)" % len(CSV))

        ex = s.run_code("import pandas as pd\n"
                        "df = pd.read_csv('sales.csv')\n"
                        "df.shape")
        say(3, "loaded: shape %s" % ex.text)
        if ex.error or ex.text != "(48, 3)":
            return fail("the CSV did not load: %r" % ex)

        ex = s.run_code("df.groupby('region')['Revenue'].sum()")
        if ex.error is None:
            return fail("expected a KeyError for 'Revenue'")
        say(4, "error %s: %s; the column is 'revenue'" %
            (ex.error.name, ex.error.value))
        ex = s.run_code("totals = df.groupby('region')['revenue'].sum()\n"
                        "int(totals.sum())")
        say(4, "fixed: total revenue %s" % ex.text)
        if ex.error or int(ex.text) != sum(
                int(line.split(",")[2]) for line in CSV.splitlines()[1:]):
            return fail("wrong total: %r" % ex)

        ex = s.run_code("import matplotlib\n"
                        "matplotlib.use('Agg')\n"
                        "import matplotlib.pyplot as plt\n"
                        "ax = totals.plot.bar(title='revenue by region')\n"
                        "plt.tight_layout()\n"
                        "plt.savefig('plot.png')\n"
                        "print('saved')")
        if ex.error or ex.logs.stdout != ["saved\n"]:
            return fail("the plot failed: %r %r" % (ex, ex.logs))
        say(5, "plotted; artifacts %s" %
            [a.get("path") for a in ex.artifacts])

        png = s.files.read("plot.png", format="bytes")
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            return fail("plot.png is not a PNG")
        with open(args.out, "wb") as f:
            f.write(png)
        say(6, "downloaded %s (%d bytes)" % (args.out, len(png)))
    finally:
        if not args.keep:
            s.kill()
    print("ok")
    return 0


def fail(why):
    print("agent_sdk: %s" % why, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
