#!/bin/sh
# Builds the binary RPM from this source tree without writing into it:
#
#   packaging/build-rpm.sh [-o OUTDIR] [--shim] [--nodeps] [--nocheck] [--keep]
#
# Makes bwprovd-<VERSION>.tar.gz from the tree (packaging/export-source.sh)
# in a temporary rpmbuild top directory, runs `rpmbuild -bb` on
# packaging/rpm/bwprovd.spec and copies the .rpm files to OUTDIR (default:
# the current directory); the last line printed is the path of the
# bwprovd-<VERSION>-<release>.<arch>.rpm.
#
# On Fedora/EL (with rpm-build, cmake-rpm-macros via cmake, and
# systemd-rpm-macros installed) no option is needed. Elsewhere:
#   --shim     load packaging/rpm/macros.shim for the missing distribution
#              macros (%cmake, %ctest, %systemd_post ...); a check of the
#              spec, not a distribution build
#   --nodeps   do not check BuildRequires against the rpm database (on a
#              Debian host the build dependencies are Debian packages)
#   --nocheck  skip %check (the unit tests)
#   --keep     keep the temporary rpmbuild directory (and build.log there)
# Exits 1 on failure, 2 on a usage error.
set -eu

usage() {
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

src=$(cd "$(dirname "$0")/.." && pwd)
spec="$src/packaging/rpm/bwprovd.spec"
out=.
shim=no
nodeps=
nocheck=
keep=no
while [ $# -gt 0 ]; do
    case $1 in
    -o) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    -o*) out=${1#-o}; shift ;;
    --shim) shim=yes; shift ;;
    --nodeps) nodeps=--nodeps; shift ;;
    --nocheck) nocheck=--nocheck; shift ;;
    --keep) keep=yes; shift ;;
    -h | --help) usage ;;
    *) echo "build-rpm.sh: unknown argument: $1" >&2; usage ;;
    esac
done

command -v rpmbuild >/dev/null 2>&1 || {
    echo "build-rpm.sh: rpmbuild is missing (Fedora/EL: dnf install rpm-build; Debian: apt-get install rpm)" >&2
    exit 1
}

version=$(head -n 1 "$src/VERSION" | tr -d '[:space:]')
specversion=$(sed -n 's/^Version:[[:space:]]*//p' "$spec" | head -n 1)
if [ "$version" != "$specversion" ]; then
    echo "build-rpm.sh: VERSION says $version but bwprovd.spec says Version: $specversion" >&2
    exit 1
fi

set --
if [ "$shim" = yes ]; then
    set -- --load "$src/packaging/rpm/macros.shim"
else
    for m in cmake cmake_build cmake_install ctest systemd_post systemd_preun \
        systemd_postun_with_restart _unitdir _journalcatalogdir; do
        if [ "$(rpm --eval "%{?$m:yes}")" != yes ]; then
            echo "build-rpm.sh: rpm has no %$m macro: install cmake-rpm-macros and" >&2
            echo "  systemd-rpm-macros, or pass --shim to check the spec with stand-ins" >&2
            exit 1
        fi
    done
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bwprovd-rpm.XXXXXX")
if [ "$keep" = yes ]; then
    echo "build-rpm.sh: keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 130' INT TERM HUP
fi
mkdir -p "$tmp/SOURCES" "$tmp/SPECS" "$tmp/BUILD" "$tmp/RPMS" "$tmp/SRPMS" "$tmp/stage"
"$src/packaging/export-source.sh" "$tmp/stage/bwprovd-$version"
tar -C "$tmp/stage" -czf "$tmp/SOURCES/bwprovd-$version.tar.gz" "bwprovd-$version"
rm -rf "$tmp/stage"
cp "$spec" "$tmp/SPECS/"

echo "build-rpm.sh: rpmbuild -bb bwprovd.spec ($version${shim:+, shim macros: $shim}${nodeps:+, $nodeps}${nocheck:+, $nocheck})"
rpmbuild -bb "$@" --define "_topdir $tmp" $nodeps $nocheck "$tmp/SPECS/bwprovd.spec" \
    >"$tmp/build.log" 2>&1 || {
    tail -n 60 "$tmp/build.log" >&2
    echo "build-rpm.sh: rpmbuild failed (the last 60 lines of its output are above)" >&2
    exit 1
}
main=
for f in "$tmp"/RPMS/*/*.rpm; do
    [ -e "$f" ] || continue
    cp "$f" "$out/"
    case ${f##*/} in bwprovd-"$version"-*) main="$out/${f##*/}" ;; esac
done
if [ -z "$main" ]; then
    echo "build-rpm.sh: rpmbuild made no bwprovd-$version package" >&2
    exit 1
fi
echo "$main"
