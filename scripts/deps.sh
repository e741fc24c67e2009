#!/bin/sh
# Installs the Debian packages that building and testing bwprovd need, or
# the packages named as arguments (bench/deps.sh). As root it runs apt-get;
# otherwise it prints the exact command and fails.
set -eu
PKGS="cmake make gcc pkg-config librdkafka-dev libcurl4-openssl-dev libjson-c-dev \
libsystemd-dev zlib1g-dev libmicrohttpd-dev kcat python3 openssl systemd mandoc groff-base \
dpkg-dev debhelper fakeroot lintian rpm debootstrap systemd-container valgrind \
clang libclang-rt-dev default-jre-headless maven prometheus"
[ $# -gt 0 ] && PKGS="$*"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "bwprovd: missing packages; run as root:" >&2
    echo "  apt-get install -y$missing" >&2
    exit 1
fi
echo "bwprovd: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
