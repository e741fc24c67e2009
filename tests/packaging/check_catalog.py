#!/usr/bin/env python3
"""Checks the generated journal catalog the way journald will read it.

The catalog goes into a scratch root's /usr/lib/systemd/catalog, where
`journalctl --root=ROOT --update-catalog` must build the database without a
word, and `--list-catalog` must then list exactly the MESSAGE_IDs that
common/log.h defines, each with Subject, Defined-By, Documentation, Support
and a body."""

import argparse
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, need_tool, run  # noqa: E402

HEADERS = ("Subject", "Defined-By", "Documentation", "Support")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", required=True, help="generated bwprovd.catalog")
    ap.add_argument("--log-h", required=True, help="common/log.h")
    a = ap.parse_args()
    journalctl = need_tool("journalctl")
    c = Checker("packaging_catalog")

    with open(a.log_h) as f:
        ids = dict(re.findall(r'#define\s+(LOG_MID_\w+)\s+"([0-9a-f]{32})"', f.read()))
    if not c.check(ids, f"no LOG_MID_* MESSAGE_IDs found in {a.log_h}"):
        c.finish()
    with open(a.catalog) as f:
        text = f.read()
    left = re.findall(r"@[A-Za-z_]+@", text)
    c.check(not left, f"placeholders left in {a.catalog}: {left}")

    with tempfile.TemporaryDirectory() as root:
        catdir = os.path.join(root, "usr", "lib", "systemd", "catalog")
        os.makedirs(catdir)
        shutil.copy(a.catalog, os.path.join(catdir, "bwprovd.catalog"))
        rc, out, err = run([journalctl, f"--root={root}", "--update-catalog"])
        msgs = (out + err).strip()
        if not c.check(rc == 0 and not msgs,
                       f"journalctl --update-catalog exited {rc}: {msgs}"):
            c.finish()
        c.ok("journalctl --update-catalog: database built without messages")

        rc, out, err = run([journalctl, f"--root={root}", "--list-catalog"])
        c.check(rc == 0, f"journalctl --list-catalog exited {rc}: {err.strip()}")
        print(out.rstrip())
        listed = {}
        for line in out.splitlines():
            m = re.match(r"([0-9a-f]{32}) (.*)", line)
            if m:
                listed[m.group(1)] = m.group(2)
        for name, mid in sorted(ids.items()):
            if not c.check(mid in listed, f"{name} ({mid}) has no catalog entry"):
                continue
            rc, out, err = run([journalctl, f"--root={root}", "--dump-catalog", mid])
            head, _, body = out.partition("\n\n")
            fields = dict(re.findall(r"^([A-Za-z-]+): (.+)$", head, re.M))
            for h in HEADERS:
                c.check(fields.get(h, "").strip(), f"{name} ({mid}): no {h}: header")
            c.check(len(body.split()) >= 30, f"{name} ({mid}): the body says too little")
            c.ok(f"{name}: {listed[mid]}")
        extra = set(listed) - set(ids.values())
        c.check(not extra, f"catalog entries for MESSAGE_IDs that common/log.h does not "
                f"define: {sorted(extra)}")
    c.finish()


if __name__ == "__main__":
    main()
