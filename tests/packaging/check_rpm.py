#!/usr/bin/env python3
"""Parses packaging/rpm/bwprovd.spec with rpmspec and builds the binary RPM
with packaging/build-rpm.sh (a temporary rpmbuild tree; %check runs the
unit tests), then checks the package: version, files, the configuration as
%config(noreplace), the systemd scriptlets and the library requirements.

Where rpm lacks the distribution macros (Debian's rpm package: no %cmake,
%ctest, %systemd_post ...), the spec is parsed and built with the stand-ins
of packaging/rpm/macros.shim and --nodeps (the build dependencies are
Debian packages there): that proves the spec is complete and consistent
with the install rules, not that it builds on Fedora or EL. The test says
which mode it ran in. Skips (77) without rpmbuild."""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SKIP, Checker, run  # noqa: E402

DISTRO_MACROS = ("cmake", "cmake_build", "cmake_install", "ctest", "systemd_post",
                 "systemd_preun", "systemd_postun_with_restart", "_unitdir",
                 "_journalcatalogdir")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="top of the source tree")
    a = ap.parse_args()
    c = Checker("packaging_rpm")

    for tool in ("rpmbuild", "rpmspec", "rpm"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is not installed (Debian: apt-get install rpm; "
                  "Fedora: dnf install rpm-build)", flush=True)
            sys.exit(SKIP)

    source = os.path.realpath(a.source)
    spec = os.path.join(source, "packaging", "rpm", "bwprovd.spec")
    shim_file = os.path.join(source, "packaging", "rpm", "macros.shim")
    with open(os.path.join(source, "VERSION")) as f:
        version = f.readline().strip()

    absent = [m for m in DISTRO_MACROS if run(["rpm", "--eval", "%{?" + m + ":yes}"])[1].strip() != "yes"]
    shim = bool(absent)
    if shim:
        print("mode: SHIM. rpm here lacks the distribution macros (%s); parsing and building "
              "with packaging/rpm/macros.shim and --nodeps. This checks the spec and the "
              "install layout, not a Fedora/EL build." % ", ".join("%" + m for m in absent))
    else:
        print("mode: distribution macros (a real rpmbuild of the spec)")
    load = ["--load", shim_file] if shim else []

    # -- the spec parses, and says what it must -----------------------------
    rc, parsed, err = run(["rpmspec", "-P"] + load + [spec])
    if not c.check(rc == 0, f"rpmspec -P failed: {err.strip()}"):
        c.finish()
    for req in ("pkgconfig(rdkafka)", "pkgconfig(libcurl)", "pkgconfig(json-c)",
                "pkgconfig(libsystemd)", "systemd-rpm-macros"):
        c.check(re.search(rf"^BuildRequires:\s*{re.escape(req)}", parsed, re.M),
                f"no BuildRequires: {req}")
    c.check(re.search(r"^%config\(noreplace\) /etc/bwprovd/bwprovd\.conf$", parsed, re.M),
            "the configuration is not %config(noreplace)")
    c.check(re.search(r"ctest .*-L unit", parsed), "%check does not run ctest -L unit")
    rc, qv, err = run(["rpmspec", "-q", "--srpm", "--qf", "%{VERSION}\n"] + load + [spec])
    c.check(qv.strip() == version, f"the spec's version is {qv.strip()!r}, VERSION is {version}")
    c.ok("rpmspec -P parses the spec")

    # -- build ----------------------------------------------------------------
    with tempfile.TemporaryDirectory(prefix="bwprovd-rpm-test.") as out:
        argv = [os.path.join(source, "packaging", "build-rpm.sh"), "-o", out]
        if shim:
            argv += ["--shim", "--nodeps"]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
        print(p.stdout + p.stderr, end="")
        if not c.check(p.returncode == 0, f"build-rpm.sh exited {p.returncode}"):
            c.finish()
        rpm = p.stdout.strip().splitlines()[-1]
        if not c.check(os.path.isfile(rpm), f"no package at {rpm}"):
            c.finish()

        def q(*args):
            rc, o, e = run(["rpm", "-qp"] + list(args) + [rpm])
            c.check(rc == 0, f"rpm -qp {' '.join(args)}: {e.strip()}")
            return o

        c.check(q("--qf", "%{NAME} %{VERSION}").strip() == f"bwprovd {version}",
                "name/version of the built package")
        files = set(q("-l").split())
        sbindir = run(["rpm", "--eval", "%{_sbindir}"])[1].strip()
        for path in (f"{sbindir}/bwprovd", "/usr/lib/systemd/system/bwprovd.service",
                     "/usr/lib/systemd/catalog/bwprovd.catalog", "/etc/bwprovd/bwprovd.conf"):
            c.check(path in files, f"{path} is not in the package")
        for man in ("/usr/share/man/man8/bwprovd.8", "/usr/share/man/man5/bwprovd.conf.5"):
            c.check(any(f == man or f.startswith(man + ".") for f in files),
                    f"{man}[.gz] is not in the package")
        configs = q("-c").split()
        c.check(configs == ["/etc/bwprovd/bwprovd.conf"], f"config files: {configs}")
        # %config(noreplace): the file's flags have RPMFILE_CONFIG (1) and
        # RPMFILE_NOREPLACE (16).
        flags = q("--qf", "[%{FILENAMES} %{FILEFLAGS}\n]")
        m = re.search(r"^/etc/bwprovd/bwprovd\.conf (\d+)$", flags, re.M)
        c.check(m and int(m.group(1)) & 17 == 17,
                "bwprovd.conf is not flagged config + noreplace")
        scripts = q("--scripts")
        for what in ("postinstall", "preuninstall", "postuninstall"):
            c.check(f"{what} scriptlet" in scripts, f"no {what} scriptlet")
        c.check("bwprovd.service" in scripts, "the scriptlets do not name bwprovd.service")
        reqs = q("-R")
        for lib in ("librdkafka.so.1", "libcurl.so.4", "libjson-c.so.5", "libsystemd.so.0"):
            c.check(lib in reqs, f"no automatic requirement on {lib}")
        with tempfile.TemporaryDirectory() as x:
            # rpm2archive (rpm >= 4.15) gives a tar; rpm2cpio would need cpio.
            unpack = "rpm2archive - <\"$0\" | tar -xzf -" if shutil.which("rpm2archive") \
                else "rpm2cpio \"$0\" | cpio -idm --quiet"
            ok = subprocess.run(["sh", "-c", unpack, rpm], cwd=x, capture_output=True, text=True)
            unit = os.path.join(x, "usr/lib/systemd/system/bwprovd.service")
            if c.check(ok.returncode == 0 and os.path.exists(unit), "could not unpack the rpm"):
                with open(unit) as f:
                    c.check(f"ExecStart={sbindir}/bwprovd -c /etc/bwprovd/bwprovd.conf" in f.read(),
                            "the packaged unit does not run the packaged binary")
        print(scripts)
        c.ok(f"built {os.path.basename(rpm)} ({'shim macros' if shim else 'distribution macros'})")
    c.finish()


if __name__ == "__main__":
    main()
