#!/bin/bash
# Runs inside a Debian build root (packaging/debroot.py run RELEASE), with
# the exported source at /src: builds bwprovd with -Werror on that release's
# compilers and libraries and runs the tests named (tests/dist/CMakeLists.txt
# says which and why).
#
#   in_root.sh CC TEST...   CC: gcc or clang; TEST: a CTest name or an
#                           anchored pattern (unit_.*)
#
# Fails when the build warns, a test fails, or a named test did not run or
# was skipped (a skip would hide what the release breaks).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 CC TEST..." >&2; exit 2; }
cc=$1
shift

. /etc/os-release
echo "in_root: Debian $VERSION_ID ($VERSION_CODENAME), $($cc --version | head -n 1)"
for m in rdkafka libcurl json-c libsystemd libmicrohttpd; do
    printf '  %s %s' "$m" "$(pkg-config --modversion "$m")"
done
printf '  systemd %s\n' "$(pkg-config --modversion systemd)"

build=/tmp/build-$cc
CC=$cc cmake -S /src -B "$build" -DBWPROVD_WERROR=ON >/tmp/configure.log ||
    { cat /tmp/configure.log; exit 1; }
grep -E "bwprovd.service: Type" /tmp/configure.log || true
cmake --build "$build" -j "$(nproc)" >/tmp/build.log 2>&1 || { cat /tmp/build.log; exit 1; }
echo "in_root: built with $cc -Werror"

regex="^($(IFS='|'; echo "$*"))\$"
cd "$build"
rc=0
ctest -j 2 --output-on-failure --no-tests=error -R "$regex" 2>&1 | tee /tmp/ctest.log || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"

# Every name and pattern ran and passed; nothing was skipped.
bad=0
for t in "$@"; do
    if ! grep -Eq "Test +#[0-9]+: ($t) \.+ +Passed" /tmp/ctest.log; then
        echo "in_root: no test $t passed" >&2
        bad=1
    fi
done
if grep -q "did not run" /tmp/ctest.log; then
    echo "in_root: tests were skipped (above): their tools are missing from the root" >&2
    bad=1
fi
exit "$bad"
