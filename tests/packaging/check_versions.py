#!/usr/bin/env python3
"""One version: the top-level VERSION file. The top entry of
packaging/debian/changelog and the spec's Version: must say the same, and
the spec's newest %changelog entry must name it (as VERSION-RELEASE).
Standard library only; dpkg-parsechangelog, when installed, double-checks
that the Debian changelog parses."""

import argparse
import os
import re
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="top of the source tree")
    a = ap.parse_args()
    c = Checker("packaging_versions")

    with open(os.path.join(a.source, "VERSION")) as f:
        version = f.readline().strip()
    c.check(re.fullmatch(r"[0-9][0-9A-Za-z.+~]*", version),
            f"VERSION is {version!r}: not usable as a Debian and RPM upstream version")
    c.ok(f"VERSION is {version}")

    changelog = os.path.join(a.source, "packaging", "debian", "changelog")
    with open(changelog) as f:
        first = f.readline()
    m = re.match(r"bwprovd \(([^)\s]+)\) \S+; urgency=\w+$", first.rstrip("\n"))
    if c.check(m, f"debian/changelog's first line is not an entry header: {first!r}"):
        deb_version = m.group(1)
        c.check(deb_version == version,
                f"debian/changelog's top entry is {deb_version}, VERSION is {version}: "
                f"add an entry (dch -c packaging/debian/changelog -v {version})")
    if shutil.which("dpkg-parsechangelog"):
        rc, out, err = run(["dpkg-parsechangelog", "-l", changelog, "-S", "Version"])
        c.check(rc == 0 and out.strip() == version,
                f"dpkg-parsechangelog says {out.strip()!r} (exit {rc}) {err.strip()}")

    spec = os.path.join(a.source, "packaging", "rpm", "bwprovd.spec")
    with open(spec) as f:
        text = f.read()
    m = re.search(r"^Version:\s*(\S+)\s*$", text, re.M)
    if c.check(m, "bwprovd.spec has no Version: line"):
        c.check(m.group(1) == version,
                f"bwprovd.spec says Version: {m.group(1)}, VERSION is {version}")
    rel = re.search(r"^Release:\s*(\d+)", text, re.M)
    log = text.split("\n%changelog\n", 1)
    if c.check(rel and len(log) == 2, "bwprovd.spec has no Release: or no %changelog"):
        top = next((ln for ln in log[1].splitlines() if ln.startswith("*")), "")
        want = f"- {version}-{rel.group(1)}"
        c.check(top.rstrip().endswith(want),
                f"bwprovd.spec's newest %changelog entry {top!r} does not end in {want!r}")
    c.finish()


if __name__ == "__main__":
    main()
