#!/usr/bin/env python3
"""Installs the build tree into a scratch DESTDIR and checks the result:
the unit, the catalog, both man pages and the example configuration (mode
0644) are where the build said; the installed unit runs the installed
binary; a second install keeps an existing configuration file."""

import argparse
import os
import stat
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Checker, run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cmake", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--sbindir", required=True)
    ap.add_argument("--unitdir", required=True)
    ap.add_argument("--catalogdir", required=True)
    ap.add_argument("--mandir", required=True)
    ap.add_argument("--conf", required=True)
    a = ap.parse_args()
    c = Checker("packaging_install")

    with tempfile.TemporaryDirectory() as dest:
        env = dict(os.environ, DESTDIR=dest)
        rc, out, err = run([a.cmake, "--install", a.build], env=env)
        if not c.check(rc == 0, f"cmake --install exited {rc}:\n{out}{err}"):
            c.finish()
        files = sorted(os.path.join(d, f)[len(dest):]
                       for d, _, fs in os.walk(dest) for f in fs)
        print("installed:\n  " + "\n  ".join(files))
        want = {
            "binary": os.path.join(a.sbindir, "bwprovd"),
            "unit": os.path.join(a.unitdir, "bwprovd.service"),
            "catalog": os.path.join(a.catalogdir, "bwprovd.catalog"),
            "bwprovd(8)": os.path.join(a.mandir, "man8", "bwprovd.8"),
            "bwprovd.conf(5)": os.path.join(a.mandir, "man5", "bwprovd.conf.5"),
            "configuration": a.conf,
        }
        for what, path in want.items():
            c.check(path in files, f"the {what} is not installed as {path}")
        unit = dest + want["unit"]
        if os.path.exists(unit):
            with open(unit) as f:
                exec_start = [ln for ln in f if ln.startswith("ExecStart=")]
            c.check(exec_start and exec_start[0].split()[0] == "ExecStart=" + want["binary"],
                    f"the installed unit's ExecStart= is {exec_start}")
            c.check(exec_start and f"-c {a.conf}" in exec_start[0],
                    f"the installed unit does not pass -c {a.conf}")
        conf = dest + a.conf
        if os.path.exists(conf):
            mode = stat.S_IMODE(os.stat(conf).st_mode)
            c.check(mode == 0o644, f"the configuration is mode {mode:04o}, not 0644")
            with open(conf, "w") as f:
                f.write("# edited by the operator\n")
            rc, out, err = run([a.cmake, "--install", a.build], env=env)
            with open(conf) as f:
                c.check(f.read() == "# edited by the operator\n",
                        "a second install overwrote the configuration file")
            c.check("Keeping:" in out, "a second install did not say it kept the file")
    c.finish()


if __name__ == "__main__":
    main()
