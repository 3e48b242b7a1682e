#!/bin/sh
# run.sh: every test in one pytest run, so the output ends with its summary.
# C unit tests run inside pytest too (tests/test_units.py).
cd "$(dirname "$0")/.." || exit 1
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider tests "$@"
