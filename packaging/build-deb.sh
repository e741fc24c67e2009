#!/bin/sh
# Builds the Debian binary package bwprovd_<VERSION>_<arch>.deb (and its
# -dbgsym companion) from this source tree without writing into it:
#
#   packaging/build-deb.sh [-o OUTDIR] [-j JOBS] [--dist RELEASE] [--unit-tests] [--keep]
#   packaging/build-deb.sh [--dist RELEASE] --print-version
#
# The tree (tracked and untracked files git does not ignore; without git,
# everything but build directories) is copied to a temporary directory,
# packaging/debian becomes debian/ there, and `dpkg-buildpackage -us -uc -b`
# runs in it. The .deb files land in OUTDIR (default: the current
# directory); the last line printed is the path of
# bwprovd_<version>_<arch>.deb.
#
# --dist names the Debian release the package is for: bookworm (12) or
# trixie (13); the default is the running system's. The package is built
# on that release, against its libraries, so its Depends name that
# release's packages (trixie's 64-bit time_t names such as libcurl4t64).
# On another release the build runs in that release's cached build root
# (packaging/debroot.py: root, debootstrap, systemd-container); the source
# is exported into it and OUTDIR is bound into it. The version is VERSION
# for bookworm and VERSION+deb13u1 for trixie, so both packages can live in
# one repository and an upgrade from bookworm to trixie replaces the
# bookworm build (--print-version prints it).
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
dist=
print_version=no
while [ $# -gt 0 ]; do
    case $1 in
    -o) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    -o*) out=${1#-o}; shift ;;
    -j) [ $# -ge 2 ] || usage; jobs=$2; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    --dist) [ $# -ge 2 ] || usage; dist=$2; shift 2 ;;
    --dist=*) dist=${1#--dist=}; shift ;;
    --print-version) print_version=yes; shift ;;
    --unit-tests) check=yes; shift ;;
    --keep) keep=yes; shift ;;
    -h | --help) usage ;;
    *) echo "build-deb.sh: unknown argument: $1" >&2; usage ;;
    esac
done
case $jobs in '' | *[!0-9]* | 0) echo "build-deb.sh: -j needs a positive number" >&2; exit 2 ;; esac

# The release: its version suffix. The running one by default.
here=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
[ -n "$dist" ] || dist=$here
case $dist in
bookworm) suffix= ;;
trixie) suffix=+deb13u1 ;;
*) echo "build-deb.sh: no package for the release \"$dist\": bookworm or trixie (--dist)" >&2; exit 2 ;;
esac
version=$(head -n 1 "$src/VERSION" | tr -d '[:space:]')
if [ "$print_version" = yes ]; then
    echo "$version$suffix"
    exit 0
fi

# Another release: the same command in its build root.
if [ "$dist" != "$here" ]; then
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    set -- -o /out -j "$jobs" --dist "$dist"
    [ "$check" = no ] || set -- "$@" --unit-tests
    log=$(mktemp "${TMPDIR:-/tmp}/bwprovd-deb-$dist.XXXXXX")
    trap 'rm -f "$log"' EXIT
    echo "build-deb.sh: building the $dist package in its build root (packaging/debroot.py)"
    rc=0
    python3 "$src/packaging/debroot.py" run "$dist" --src "$src" --out "$out" --timeout 1800 \
        -- /src/packaging/build-deb.sh "$@" >"$log" 2>&1 || rc=$?
    # The inner build's last line names the package (as /out/...).
    inner=$(grep '^/out/bwprovd_.*\.deb$' "$log" | tail -n 1) || true
    grep -v '^/out/bwprovd_.*\.deb$' "$log" || true
    deb="$out/${inner#/out/}"
    if [ "$rc" -ne 0 ] || [ -z "$inner" ] || [ ! -f "$deb" ]; then
        echo "build-deb.sh: the $dist build failed (exit $rc)" >&2
        exit 1
    fi
    echo "$deb"
    exit 0
fi

for tool in dpkg-buildpackage dpkg-checkbuilddeps dpkg-parsechangelog dh fakeroot; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build-deb.sh: $tool is missing; as root: apt-get install -y dpkg-dev debhelper fakeroot" >&2
        exit 1
    fi
done

# One version: VERSION. The changelog's top entry must say the same.
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
if [ -n "$suffix" ]; then
    # The release's version: an entry on top of the changelog's, by its
    # maintainer, dated one second after it (lintian wants a newer date;
    # the build stays reproducible).
    changelog=$src/packaging/debian/changelog
    when=$(dpkg-parsechangelog -l "$changelog" -S Timestamp)
    {
        printf 'bwprovd (%s%s) %s; urgency=medium\n\n' "$version" "$suffix" "$dist"
        printf '  * Build for Debian %s (%s).\n\n' "$(echo "$suffix" | sed 's/^+deb\([0-9]*\)u.*/\1/')" "$dist"
        printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l "$changelog" -S Maintainer)" \
            "$(LC_ALL=C TZ=UTC date -R -d "@$((when + 1))")"
        cat "$changelog"
    } >"$tree/debian/changelog"
    version=$version$suffix
fi
case $dist in
trixie)
    # lintian 2.122 no longer has the tag this overrides (no init.d script),
    # and an override of an unknown tag is an error there.
    rm -f "$tree/debian/bwprovd.lintian-overrides" ;;
esac

echo "build-deb.sh: building bwprovd $version for $arch ($dist) in $tree (DEB_BUILD_OPTIONS=\"$options\")"
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
