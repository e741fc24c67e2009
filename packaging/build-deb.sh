#!/bin/sh
# Builds the Debian binary package bwprovd_<VERSION>_<arch>.deb (and its
# -dbgsym companion) from this source tree without writing into it:
#
#   packaging/build-deb.sh [-o OUTDIR] [-j JOBS] [--unit-tests] [--keep]
#
# The tree (tracked and untracked files git does not ignore; without git,
# everything but build directories) is copied to a temporary directory,
# packaging/debian becomes debian/ there, and `dpkg-buildpackage -us -uc -b`
# runs in it. The .deb files land in OUTDIR (default: the current
# directory); the last line printed is the path of bwprovd_<VERSION>_<arch>.deb.
#
# By default the build runs with DEB_BUILD_OPTIONS=nocheck and the nocheck
# build profile (no test tree: faster, fewer build dependencies);
# --unit-tests builds the tests too and runs `ctest -L unit` inside the
# package build. --keep leaves the temporary directory for inspection.
#
# Needs: dpkg-dev, debhelper, fakeroot and the Build-Depends of
# packaging/debian/control. Exits 1 with the missing packages named when a
# build dependency is not installed, 2 on a usage error.
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

src=$(cd "$(dirname "$0")/.." && pwd)
out=.
jobs=$(nproc 2>/dev/null || echo 1)
check=no
keep=no
while [ $# -gt 0 ]; do
    case $1 in
    -o) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    -o*) out=${1#-o}; shift ;;
    -j) [ $# -ge 2 ] || usage; jobs=$2; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    --unit-tests) check=yes; shift ;;
    --keep) keep=yes; shift ;;
    -h | --help) usage ;;
    *) echo "build-deb.sh: unknown argument: $1" >&2; usage ;;
    esac
done
case $jobs in '' | *[!0-9]* | 0) echo "build-deb.sh: -j needs a positive number" >&2; exit 2 ;; esac

for tool in dpkg-buildpackage dpkg-checkbuilddeps dpkg-parsechangelog dh fakeroot; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build-deb.sh: $tool is missing; as root: apt-get install -y dpkg-dev debhelper fakeroot" >&2
        exit 1
    fi
done

# One version: VERSION. The changelog's top entry must say the same.
version=$(head -n 1 "$src/VERSION" | tr -d '[:space:]')
chversion=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
if [ "$version" != "$chversion" ]; then
    echo "build-deb.sh: VERSION says $version but packaging/debian/changelog says $chversion;" >&2
    echo "  add a changelog entry for $version (dch -c packaging/debian/changelog -v $version)" >&2
    exit 1
fi

if [ "$check" = yes ]; then
    profiles=
    options="parallel=$jobs"
else
    profiles=nocheck
    options="nocheck parallel=$jobs"
fi

# Missing build dependencies, named as an apt-get line.
if ! missing=$(dpkg-checkbuilddeps ${profiles:+-P$profiles} "$src/packaging/debian/control" 2>&1); then
    deps=$(printf '%s\n' "$missing" | sed -n 's/.*Unmet build dependencies: //p' |
        sed 's/([^)]*)//g; s/<[^>]*>//g; s/ *| */|/g; s/|[^ ]*//g; s/  */ /g')
    echo "build-deb.sh: missing build dependencies; as root:" >&2
    echo "  apt-get install -y --no-install-recommends $deps" >&2
    [ -n "$deps" ] || printf '%s\n' "$missing" >&2
    exit 1
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bwprovd-deb.XXXXXX")
if [ "$keep" = yes ]; then
    echo "build-deb.sh: keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT TERM HUP
fi
tree="$tmp/bwprovd-$version"

"$src/packaging/export-source.sh" "$tree"
rm -rf "$tree/debian"
cp -R "$src/packaging/debian" "$tree/debian"

echo "build-deb.sh: building bwprovd $version for $arch in $tree (DEB_BUILD_OPTIONS=\"$options\")"
(
    cd "$tree"
    DEB_BUILD_OPTIONS="$options" DEB_BUILD_PROFILES="$profiles" \
        dpkg-buildpackage -us -uc -b ${profiles:+-P$profiles}
) >"$tmp/build.log" 2>&1 || {
    tail -n 60 "$tmp/build.log" >&2
    echo "build-deb.sh: dpkg-buildpackage failed (the last 60 lines of its output are above)" >&2
    exit 1
}

deb="bwprovd_${version}_${arch}.deb"
if [ ! -f "$tmp/$deb" ]; then
    echo "build-deb.sh: dpkg-buildpackage made no $deb:" >&2
    ls "$tmp" >&2
    exit 1
fi
for f in "$tmp"/*.deb; do
    cp "$f" "$out/"
done
echo "$out/$deb"
