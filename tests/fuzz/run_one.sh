#!/bin/sh
# run_one.sh FUZZER TARGET SECONDS WORKDIR SRCDIR [libFuzzer flags...]
#
# One bounded libFuzzer run of tests/fuzz's TARGET (event, config, resp),
# seeded from SRCDIR/corpus/TARGET and SRCDIR/regressions/TARGET. New inputs
# go to WORKDIR/corpus, crash/leak/timeout inputs to WORKDIR/artifacts, the
# full output to WORKDIR/log; the source tree is never written. Prints one
# summary line (executions, exec/s, coverage, crashes) and, after a crash,
# the end of the log. Exit status: libFuzzer's (0 = nothing found).
# Used by the CTest tests fuzz_<target> and by run.sh.
set -u
if [ $# -lt 5 ]; then
    echo "usage: $0 FUZZER TARGET SECONDS WORKDIR SRCDIR [libFuzzer flags...]" >&2
    exit 64
fi
fuzzer=$1 target=$2 seconds=$3 work=$4 src=$5
shift 5

# The open defects to tolerate (see known_issues), unless the caller chose.
if [ -z "${BWPROVD_FUZZ_KNOWN+set}" ]; then
    BWPROVD_FUZZ_KNOWN=$(sed 's/#.*//' "$src/known_issues" | awk 'NF { print $1 }' | paste -sd, -)
fi
export BWPROVD_FUZZ_KNOWN

mkdir -p "$work/corpus" "$work/artifacts" || exit 1
dict=
[ -f "$src/$target.dict" ] && dict="-dict=$src/$target.dict"

UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$fuzzer" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=5 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" $dict "$@" \
    "$work/corpus" "$src/corpus/$target" "$src/regressions/$target" >"$work/log" 2>&1
rc=$?

stat() { sed -n "s/^stat::$1: *//p" "$work/log" | tail -n 1; }
cov=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [0-9]*\/[0-9a-zA-Z]*\).*/\1 \2 \3/p')
crashes=$(ls "$work/artifacts" | grep -cE '^(crash|leak|timeout|oom|slow-unit)-')
printf 'fuzz_%s: %s s, %s executions, %s exec/s, %s, %s new inputs, %s artifact(s), exit %s\n' \
    "$target" "$seconds" "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
    "${cov:-cov: ?}" "$(stat new_units_added)" "$crashes" "$rc"
if [ "$rc" -ne 0 ]; then
    echo "--- end of $work/log:"
    tail -n 60 "$work/log"
    echo "--- artifacts in $work/artifacts:"
    ls -l "$work/artifacts"
fi
exit "$rc"
