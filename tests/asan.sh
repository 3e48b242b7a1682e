#!/bin/sh
# asan.sh: the whole suite against bin-asan/ (make asan builds it), every
# sanitizer report written to a file; any report fails the run. Arguments,
# if any, replace the whole suite: `sh tests/asan.sh tests/test_cli.py -x`.
cd "$(dirname "$0")/.." || exit 1
top=$(pwd)
reports=$top/build-asan/reports
rm -rf "$reports"
mkdir -p "$reports" || exit 1
# Programs run as nobody by the tests write their reports here too.
chmod 1777 "$reports"

export CELLBLOCK_BIN="$top/bin-asan"
export CELLBLOCK_SANITIZER_REPORTS="$reports"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:quarantine_size_mb=16:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"

if [ $# -eq 0 ]; then
	sh tests/run.sh
else
	/usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"
fi
rc=$?

# tests/test_sanitizers.py runs last and fails on each report it finds,
# marking it .seen; a report it did not see (a process that outlived it, or
# a run of a few files) is printed here, and the last line is a summary.
late=$(find "$reports" -type f ! -name '*.seen' | sort)
[ -z "$late" ] && exit $rc
for f in $late; do
	echo "==== $f"
	cat "$f"
done
echo "0 passed, $(echo "$late" | wc -l) failed (sanitizer reports in $reports)"
exit 1
