#!/bin/sh
# run.sh [SECONDS] [TARGET...]: the longer fuzzing run.
#
# Configures a clang build in build-fuzz/ (CC=clang, -DBWPROVD_TESTS=ON),
# builds the fuzzers and runs each TARGET (default: event config resp) for
# SECONDS (default 600), one after the other. Work files (new corpus inputs,
# artifacts, logs) go to build-fuzz/tests/fuzz/<target>/ and are kept between
# runs, so a second run continues from the first one's corpus. Prints the
# executions, coverage and crashes of each; exits non-zero if any crashed.
# A crash input worth keeping goes to tests/fuzz/regressions/<target>/.
#
# Environment: BUILD_DIR (default build-fuzz), CC (default clang),
# FUZZ_FLAGS (extra libFuzzer flags, e.g. "-max_len=16384 -jobs=2").
set -u
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-event config resp}

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac

mkdir -p "$build" || exit 1
CC=${CC:-clang} cmake -S "$root" -B "$build" -DBWPROVD_TESTS=ON >"$build/fuzz-configure.log" 2>&1 ||
    { cat "$build/fuzz-configure.log"; exit 1; }
if ! grep -q '^CMAKE_C_COMPILER:FILEPATH=.*clang' "$build/CMakeCache.txt"; then
    echo "$build is not a clang build (remove it, or set BUILD_DIR)" >&2
    exit 1
fi
fuzzers=
for t in $targets; do fuzzers="$fuzzers fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $fuzzers || exit 1

status=0
summary=
for t in $targets; do
    echo "== fuzz_$t for $seconds s"
    # shellcheck disable=SC2086
    line=$(sh "$root/tests/fuzz/run_one.sh" "$build/tests/fuzz/fuzz_$t" "$t" "$seconds" \
        "$build/tests/fuzz/$t" "$root/tests/fuzz" ${FUZZ_FLAGS:-}) || status=1
    echo "$line"
    summary="$summary$(echo "$line" | head -n 1)
"
done
echo "== summary"
printf '%s' "$summary"
exit $status
