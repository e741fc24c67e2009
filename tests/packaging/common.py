"""Helpers shared by the packaging checks (standard library only).

Each check is a script that exits 0 when it passes, 1 when it fails and 77
when a tool it needs is missing (CTest's SKIP_RETURN_CODE)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


class Checker:
    """Collects failures so that one run reports all of them."""

    def __init__(self, name):
        self.name = name
        self.failures = []

    def fail(self, msg):
        self.failures.append(msg)
        print(f"FAIL: {msg}")

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)
        return cond

    def ok(self, msg):
        print(f"ok: {msg}")

    def finish(self):
        if self.failures:
            print(f"{self.name}: {len(self.failures)} failure(s)")
            sys.exit(1)
        print(f"{self.name}: passed")
        sys.exit(0)


def need_tool(name):
    path = shutil.which(name)
    if not path:
        print(f"SKIP: {name} is not installed")
        sys.exit(SKIP)
    return path


def run(cmd, **kw):
    """Runs cmd and returns (returncode, stdout, stderr) as text."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return p.returncode, p.stdout, p.stderr


def effective_config(bwprovd, extra_lines=()):
    """The defaults as `bwprovd --check-config` prints them, from a config
    that sets only the one key validation requires (reported as unset: it
    has no default).

    Returns a list of (key, value) in output order; value is None for a key
    printed as "# key is not set"."""
    required = "webex.access_token_file"
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "min.conf")
        with open(conf, "w") as f:
            f.write(f"{required} = /nonexistent/token\n")
            for line in extra_lines:
                f.write(line + "\n")
        rc, out, err = run([bwprovd, "--check-config", "-c", conf])
    if rc != 0:
        raise SystemExit(f"FAIL: bwprovd --check-config exited {rc}: {err.strip()}")
    keys = []
    for line in out.splitlines():
        m = re.fullmatch(r"# (\S+) is not set", line)
        if m:
            keys.append((m.group(1), None))
            continue
        m = re.fullmatch(r"(\S+) = (.*)", line)
        if m:
            keys.append((m.group(1), None if m.group(1) == required else m.group(2)))
    if not keys:
        raise SystemExit("FAIL: bwprovd --check-config printed no keys")
    return keys


def cfg_table(cfg_c):
    """The key table of common/cfg.c: name -> dict(type, default, min, max,
    reload)."""
    with open(cfg_c) as f:
        src = f.read()
    rx = re.compile(
        r'\{"([a-z0-9_.]+)",\s*(K_[A-Z]+),\s*F\(\w+\),\s*("(?:[^"\\]|\\.)*"|NULL),\s*'
        r"(-?\d+),\s*(-?\d+),\s*(true|false)\}"
    )
    table = {}
    for m in rx.finditer(src):
        name, ktype, default, lo, hi, reload = m.groups()
        table[name] = {
            "type": ktype,
            "default": None if default == "NULL" else default[1:-1],
            "min": int(lo),
            "max": int(hi),
            "reload": reload == "true",
        }
    return table


def unit_settings(path):
    """[(section, key, value)] of a unit file, continuation lines joined."""
    out, section, pending = [], None, ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if pending:
                line = pending + line
                pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("[") and s.endswith("]"):
                section = s[1:-1]
                continue
            if "=" in s:
                k, v = s.split("=", 1)
                out.append((section, k.strip(), v.strip()))
    return out


def unit_seconds(value):
    """systemd time span ("45s", "2min", "1min 30s", "500ms", "90") in s."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    if not parts:
        raise ValueError(value)
    for num, unit in parts:
        total += float(num) * units[unit or "s"]
    return total
