#!/bin/sh
# Copies the bwprovd sources to DEST (created, must not exist) without
# build trees or VCS metadata: in a git checkout, the tracked files plus the
# untracked ones git does not ignore; otherwise everything but .git and the
# directories holding a CMakeCache.txt. Used by build-deb.sh and
# build-rpm.sh, so that no package build writes into the source tree.
#
#   packaging/export-source.sh DEST
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)
dest=$1
mkdir "$dest"

if top=$(git -C "$src" rev-parse --show-toplevel 2>/dev/null) && [ "$top" = "$src" ]; then
    # Tracked files deleted in the working tree are listed too: skip them.
    # shellcheck disable=SC2016 # $f is for the inner shell
    (cd "$src" && git ls-files -z --cached --others --exclude-standard) |
        (cd "$src" && xargs -0 -r sh -c 'for f; do if [ -e "$f" ] || [ -L "$f" ]; then printf "%s\0" "$f"; fi; done' sh) |
        (cd "$src" && tar --null --no-recursion -T - -cf -) | (cd "$dest" && tar -xf -)
else
    excl=$(mktemp)
    trap 'rm -f "$excl"' EXIT
    (cd "$src" && find . -name CMakeCache.txt -exec dirname {} \;) >"$excl"
    printf '%s\n' ./.git >>"$excl"
    (cd "$src" && tar --exclude-from="$excl" -cf - .) | (cd "$dest" && tar -xf -)
fi
