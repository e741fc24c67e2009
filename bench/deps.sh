#!/bin/sh
# Debian packages the benchmark needs on top of scripts/deps.sh: gnuplot
# (the plot) and wrk (the simulator's own capacity). As root it installs
# them; otherwise it prints the exact command and fails.
set -eu
here=$(dirname "$0")
"$here/../scripts/deps.sh"
PKGS="gnuplot-nox wrk"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "bwprovd bench: missing packages; run as root:" >&2
    echo "  apt-get install -y$missing" >&2
    exit 1
fi
echo "bwprovd bench: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
