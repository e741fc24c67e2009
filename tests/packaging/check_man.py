#!/usr/bin/env python3
"""Checks the man pages: groff formats them without a single warning
(`groff -man -ww -z`), `mandoc -Tlint -Wstyle` has nothing to say when
mandoc is installed, and bwprovd(8) documents every option that
`bwprovd --help` lists."""

import argparse
import os
import re
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, need_tool, run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bwprovd", required=True)
    ap.add_argument("pages", nargs="+")
    a = ap.parse_args()
    groff = need_tool("groff")
    mandoc = shutil.which("mandoc")
    c = Checker("packaging_man")

    for page in a.pages:
        name = os.path.basename(page)
        rc, out, err = run([groff, "-man", "-ww", "-z", "-Tutf8", page])
        if c.check(rc == 0 and not err.strip(), f"groff on {name} (exit {rc}):\n{err}"):
            c.ok(f"groff -man -ww: {name}")
        if mandoc:
            rc, out, err = run([mandoc, "-Tlint", "-Wstyle", page])
            msgs = (out + err).strip()
            if c.check(rc == 0 and not msgs, f"mandoc -Tlint on {name} (exit {rc}):\n{msgs}"):
                c.ok(f"mandoc -Tlint -Wstyle: {name}")
    if not mandoc:
        print("note: mandoc is not installed (Debian package mandoc): lint skipped, "
              "groff checked only")

    page8 = next((p for p in a.pages if p.endswith(".8")), None)
    if c.check(page8, "no section 8 page given"):
        with open(page8) as f:
            src = f.read()
        rc, out, err = run([a.bwprovd, "--help"])
        opts = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", out))
        opts.discard("-")
        for opt in sorted(opts):
            roff = opt.replace("-", r"\-")
            c.check(roff in src, f"bwprovd(8) does not document {opt} (from --help)")
        c.ok(f"bwprovd(8) documents {' '.join(sorted(opts))}")
    c.finish()


if __name__ == "__main__":
    main()
