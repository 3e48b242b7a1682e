#!/bin/sh
# run.sh: run each libFuzzer harness for a bounded time (make fuzz).
# Usage: tests/fuzz/run.sh SECONDS TARGET...
#
# Each target starts from its checked-in corpus and crashes and writes what
# it finds to a scratch corpus under tests/fuzz/.build/, never to the
# checked-in one. A crash, leak, timeout or blown memory limit fails the
# run and names the input to keep in tests/fuzz/crashes/TARGET/.
cd "$(dirname "$0")/../.." || exit 1
secs=$1
shift
build=tests/fuzz/.build
failed=""
n=0
for t in "$@"; do
	n=$((n + 1))
done
echo "fuzz: $n targets, ${secs}s each"
for t in "$@"; do
	scratch=$build/corpus/$t
	art=$build/artifacts/$t
	log=$build/fuzz-$t.log
	mkdir -p "$scratch" "$art" "tests/fuzz/crashes/$t"
	rm -f "$art"/*
	echo "fuzz: $t: ${secs}s, log in $log"
	start=$(date +%s)
	if "$build/fuzz-$t" -max_total_time="$secs" -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -dict="tests/fuzz/$t.dict" -artifact_prefix="$art/" \
	    "$scratch" "tests/fuzz/corpus/$t" "tests/fuzz/crashes/$t" \
	    >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
		echo "fuzz: $t: clean, $runs runs, $cov," \
		    "$(($(date +%s) - start))s"
	else
		echo "fuzz: $t: FAILED after $(($(date +%s) - start))s;" \
		    "the end of $log:"
		tail -n 30 "$log" | sed 's/^/    /'
		for a in "$art"/*; do
			[ -e "$a" ] && echo "fuzz: $t: input: $a (fix the bug," \
			    "then keep it in tests/fuzz/crashes/$t/)"
		done
		failed="$failed $t"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed"
	exit 1
fi
echo "fuzz: all clean"
