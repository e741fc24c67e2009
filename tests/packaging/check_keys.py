#!/usr/bin/env python3
"""Checks that the documentation lists every configuration key, truthfully.

The keys are those `bwprovd --check-config` prints; their type, range,
default and SIGHUP behaviour come from the table in common/cfg.c (which
must list the same keys). Then:

* bwprovd.conf(5) has an entry per key whose first line reads, e.g.,
  "Integer 1\\(en65536, default 64; needs a restart." and documents no key
  that does not exist;
* the example configuration has one "#key = value" line per key, at the
  default where there is one, and nothing else but kafka.* examples; with
  every such line uncommented it passes --check-config;
* the README's configuration table has a row per key, and its default and
  SIGHUP columns agree.
"""

import argparse
import os
import re
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, cfg_table, effective_config, run  # noqa: E402

TYPE_WORD = {
    "K_STR": r"String",
    "K_FILE": r"File name(?: or cred:NAME)?",
    "K_URL": r"URL",
    "K_ADDR": r"Address",
    "K_INT": r"Integer",
    "K_DOUBLE": r"Number",
    "K_LEVEL": r"Level",
}


def man_summary(info):
    """The regex the man page's first line for a key must match."""
    rx = TYPE_WORD[info["type"]]
    if info["type"] in ("K_INT", "K_DOUBLE"):
        rx += rf" {info['min']}\\\(en{info['max']}"
    rx += ","
    rx += (rf" default {re.escape(info['default'])}" if info["default"] is not None
           else r" no default")
    rx += r"; reloaded by SIGHUP\." if info["reload"] else r"; needs a restart\."
    return rx


def man_entries(path):
    """{key: first body line} for each `.TP` / `.B key` entry."""
    with open(path) as f:
        lines = f.read().splitlines()
    entries = {}
    for i in range(len(lines) - 2):
        if lines[i] == ".TP":
            m = re.fullmatch(r"\.B ([a-z][a-z0-9_]*\.[a-z0-9_.]+)", lines[i + 1])
            if m:
                entries[m.group(1)] = lines[i + 2]
    return entries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bwprovd", required=True)
    ap.add_argument("--cfg-c", required=True)
    ap.add_argument("--man", required=True, help="docs/man/bwprovd.conf.5")
    ap.add_argument("--example", required=True, help="systemd/bwprovd.conf")
    ap.add_argument("--readme", required=True)
    a = ap.parse_args()
    c = Checker("packaging_keys")

    eff = effective_config(a.bwprovd)
    keys = [k for k, _ in eff]
    values = dict(eff)
    table = cfg_table(a.cfg_c)
    print(f"{len(keys)} keys from --check-config: {' '.join(keys)}")
    # kafka.group.id is a kafka.* passthrough with a default, not a table key.
    extra = {"kafka.group.id", "kafka.group.instance.id"}
    c.check(set(table) == set(keys) - extra,
            "common/cfg.c's table (as this script reads it) and --check-config disagree: "
            f"only in the table {sorted(set(table) - set(keys))}, only in the output "
            f"{sorted(set(keys) - set(table) - extra)}")
    for k, info in table.items():
        if info["default"] is not None and k in values:
            c.check(values[k] == info["default"],
                    f"{k}: --check-config prints {values[k]!r}, the table says "
                    f"{info['default']!r}")
    table["kafka.group.id"] = {"type": "K_STR", "default": values.get("kafka.group.id"),
                               "min": 0, "max": 0, "reload": False}
    # kafka.group.instance.id too; --check-config prints its computed
    # default as a comment.
    keys.append("kafka.group.instance.id")
    values["kafka.group.instance.id"] = None
    table["kafka.group.instance.id"] = {"type": "K_STR", "default": None, "min": 0, "max": 0,
                                        "reload": False}

    # bwprovd.conf(5)
    entries = man_entries(a.man)
    for k in keys:
        if not c.check(k in entries, f"bwprovd.conf(5) has no entry for {k}"):
            continue
        rx = man_summary(table[k])
        c.check(re.fullmatch(rx, entries[k]),
                f"bwprovd.conf(5), {k}: first line {entries[k]!r} does not match "
                f"the table: /{rx}/")
    for k in entries:
        c.check(k in table, f"bwprovd.conf(5) documents {k}, which is not a key")
    c.ok(f"bwprovd.conf(5): {len(entries)} entries")

    # The example configuration.
    example = {}
    with open(a.example) as f:
        for n, line in enumerate(f, 1):
            m = re.fullmatch(r"#([a-z][a-z0-9_.-]*) = (.*)\n?", line)
            if not m:
                continue
            k, v = m.groups()
            c.check(k not in example, f"{a.example}:{n}: {k} appears twice")
            example[k] = v
            c.check(k in table or k.startswith("kafka."),
                    f"{a.example}:{n}: {k} is not a key")
    for k in keys:
        if not c.check(k in example, f"the example configuration lacks #{k} = ..."):
            continue
        if values[k] is not None:
            c.check(example[k] == values[k],
                    f"example configuration: #{k} = {example[k]}, but the default "
                    f"is {values[k]}")
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "example.conf")
        with open(conf, "w") as f:
            f.writelines(f"{k} = {v}\n" for k, v in example.items())
        rc, out, err = run([a.bwprovd, "--check-config", "-c", conf])
        c.check(rc == 0, f"the example configuration, uncommented, fails --check-config "
                f"(exit {rc}): {err.strip()}")
    c.ok(f"example configuration: {len(example)} commented settings")

    # The README's configuration table.
    with open(a.readme) as f:
        rows = {}
        for line in f:
            cells = [x.strip() for x in line.strip().strip("|").split("|")]
            if line.startswith("| `") and len(cells) >= 4:
                rows[cells[0].strip("`")] = cells
    for k in keys:
        if not c.check(k in rows, f"README.md's configuration table has no row for {k}"):
            continue
        _, default, sighup = rows[k][:3]
        want = "yes" if table[k]["reload"] else "restart"
        c.check(sighup == want, f"README.md, {k}: SIGHUP column says {sighup!r}, "
                f"cfg.c says {want!r}")
        m = re.fullmatch(r"`([^`]*)`", default)
        if m and values[k] is not None:
            c.check(m.group(1) == values[k], f"README.md, {k}: default `{m.group(1)}`, "
                    f"cfg.c says {values[k]}")
        elif not default:
            c.check(values[k] is None, f"README.md, {k}: no default given, "
                    f"cfg.c says {values[k]}")
    c.ok(f"README.md: {len(rows)} rows")
    c.finish()


if __name__ == "__main__":
    main()
