#!/bin/sh
# Debian packages the benchmark needs on top of scripts/deps.sh: gnuplot
# (the plot) and wrk (the simulator's own capacity). As root it installs
# them; otherwise it prints the exact command and fails.
set -eu
here=$(dirname "$0")
"$here/../scripts/deps.sh"
"$here/../scripts/deps.sh" gnuplot-nox wrk
