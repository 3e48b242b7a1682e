#!/bin/sh
# agent_rest.sh: a multi-turn data analysis over REST v1 with curl alone.
#
# The plan of examples/agent_sdk.py, one HTTP request per step, holding
# one session across turns: create it, upload a CSV, load it with pandas,
# hit a KeyError and fix the cell from the structured error, plot into a
# PNG, download the PNG. jq only reads the JSON replies.
#
# Run it against `make run` (the daemon prints the URL and a token):
#
#   CELLBLOCK_URL=http://127.0.0.1:8765 CELLBLOCK_TOKEN=... \
#       sh examples/agent_rest.sh [OUT.png]
#
# Exit status 0 when every turn went as planned.
set -eu

URL=${CELLBLOCK_URL:-http://127.0.0.1:8765}
TOKEN=${CELLBLOCK_TOKEN:?set CELLBLOCK_TOKEN (make run prints one)}
OUT=${1:-plot.png}
TMP=$(mktemp -d)
NAME=
trap 'rm -rf "$TMP"; [ -n "$NAME" ] && api DELETE "/v1/sessions/$NAME" >/dev/null 2>&1; true' EXIT

# api METHOD PATH [curl args...]: the reply body; fails on HTTP >= 400.
api() {
	m=$1 p=$2
	shift 2
	curl -sS --fail-with-body -X "$m" -H "Authorization: Bearer $TOKEN" \
	    "$@" "$URL$p"
}

# run CODE: the execution contract of one cell, as JSON.
run() {
	jq -n --arg code "$1" '{code: $code}' |
	    api POST "/v1/sessions/$NAME/execute" \
	    -H 'Content-Type: application/json' --data-binary @-
}

fail() {
	echo "agent_rest: $*" >&2
	exit 1
}

# 1. A session: its name is how every later turn finds it.
NAME=$(api POST /v1/sessions -H 'Content-Type: application/json' \
    -d '{"memory": "1G"}' | jq -r .name)
echo "turn 1: session $NAME"

# 2. Upload the data (streamed to the session's working directory).
{
	echo "region,month,revenue"
	for r in north south east west; do
		for m in 1 2 3 4 5 6 7 8 9 10 11 12; do
			echo "$r,$m,$((100 * m))"
		done
	done
} >"$TMP/sales.csv"
api PUT "/v1/sessions/$NAME/files/sales.csv" --data-binary @"$TMP/sales.csv" \
    -H 'Content-Type: text/csv' >/dev/null
echo "turn 2: uploaded sales.csv"

# 3. Load it; the DataFrame stays in the session.
shape=$(run "import pandas as pd
df = pd.read_csv('sales.csv')
df.shape" | jq -r '.results[] | select(.is_main_result) | .data["text/plain"]')
[ "$shape" = "(48, 3)" ] || fail "shape $shape"
echo "turn 3: loaded, shape $shape"

# 4. A wrong column: the error is data (ename, evalue); correct from it.
run "df.groupby('region')['Revenue'].sum()" >"$TMP/c.json"
[ "$(jq -r .status "$TMP/c.json")" = error ] || fail "expected an error"
echo "turn 4: $(jq -r '.error.ename + ": " + .error.evalue' "$TMP/c.json")"
total=$(run "totals = df.groupby('region')['revenue'].sum()
int(totals.sum())" | jq -r '.results[] | select(.is_main_result) | .data["text/plain"]')
[ "$total" = 31200 ] || fail "total $total"
echo "turn 4: fixed, total revenue $total"

# 5. Plot into a file of the session.
run "import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
totals.plot.bar(title='revenue by region')
plt.tight_layout()
plt.savefig('plot.png')" >"$TMP/c.json"
[ "$(jq -r .status "$TMP/c.json")" = ok ] || fail "plot: $(cat "$TMP/c.json")"
echo "turn 5: plotted ($(jq -r '[.artifacts[].path] | join(" ")' "$TMP/c.json"))"

# 6. Download it.
api GET "/v1/sessions/$NAME/files/plot.png" -o "$OUT"
[ "$(head -c 4 "$OUT" | od -An -c | tr -d ' ')" = "211PNG" ] ||
    fail "$OUT is not a PNG"
echo "turn 6: downloaded $OUT ($(wc -c <"$OUT") bytes)"
echo ok
