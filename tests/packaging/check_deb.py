#!/usr/bin/env python3
"""Builds the Debian package with packaging/build-deb.sh (in a temporary
copy of the tree, DEB_BUILD_OPTIONS=nocheck: no tests inside the package
build) and checks it:

* dpkg-deb -c: the binary, the unit, the journal catalog, the
  configuration and both man pages are in it;
* dpkg-deb -I: name, version (= VERSION), architecture, the shared library
  dependencies, /etc/bwprovd/bwprovd.conf listed in conffiles, the
  maintainer scripts enable the unit but do not start it on installation;
* the packaged unit runs the packaged binary with the packaged
  configuration; the binary is PIE with BIND_NOW and full RELRO;
* lintian (when installed) reports no error.

The .deb goes to --out (the build tree; the system test picks it up from
there). Skips (77) when the Debian build tools or the build dependencies
are missing, naming the packages to install."""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SKIP, Checker, run  # noqa: E402

TOOLS = {  # program: Debian package
    "dpkg-buildpackage": "dpkg-dev",
    "dpkg-checkbuilddeps": "dpkg-dev",
    "dpkg-deb": "dpkg",
    "dh": "debhelper",
    "fakeroot": "fakeroot",
    "readelf": "binutils",
}
RUNTIME_DEPS = ("libcurl4", "libjson-c5", "librdkafka1", "libsystemd0")


def skip(msg):
    print(f"SKIP: {msg}", flush=True)
    sys.exit(SKIP)


def missing_build_deps(source):
    """Packages dpkg-checkbuilddeps misses for a nocheck build ([] if none)."""
    control = os.path.join(source, "packaging", "debian", "control")
    rc, out, err = run(["dpkg-checkbuilddeps", "-Pnocheck", control])
    if rc == 0:
        return []
    m = re.search(r"Unmet build dependencies: (.*)", out + err)
    if not m:
        return [f"(dpkg-checkbuilddeps: {(out + err).strip()})"]
    text = re.sub(r"\s*\|\s*", "|", re.sub(r"\([^)]*\)|<[^>]*>", "", m.group(1)))
    return [dep.split("|")[0] for dep in text.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="top of the source tree")
    ap.add_argument("--out", required=True, help="where the .deb goes (not the source tree)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    c = Checker("packaging_deb")

    out = os.path.realpath(a.out)
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, "bwprovd*.deb")):
        os.unlink(old)  # never check (or let the system test install) a stale package

    missing = sorted({pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)})
    if missing:
        skip("Debian build tools missing; as root: apt-get install -y " + " ".join(missing))
    deps = missing_build_deps(a.source)
    if deps:
        skip("build dependencies missing; as root: apt-get install -y " + " ".join(deps))

    source = os.path.realpath(a.source)
    with open(os.path.join(source, "VERSION")) as f:
        version = f.readline().strip()
    _, arch, _ = run(["dpkg", "--print-architecture"])
    arch = arch.strip()
    deb_name = f"bwprovd_{version}_{arch}.deb"


    t0 = time.monotonic()
    p = subprocess.run([os.path.join(source, "packaging", "build-deb.sh"), "-o", out,
                        "-j", str(max(1, a.jobs))],
                       capture_output=True, text=True, timeout=900)
    print(p.stdout + p.stderr, end="")
    if not c.check(p.returncode == 0, f"build-deb.sh exited {p.returncode}"):
        c.finish()
    deb = os.path.join(out, deb_name)
    c.check(p.stdout.strip().splitlines()[-1] == deb,
            f"build-deb.sh's last line is not {deb}")
    if not c.check(os.path.isfile(deb), f"{deb_name} was not made"):
        c.finish()
    c.ok(f"built {deb_name} in {time.monotonic() - t0:.0f}s")

    # -- contents -----------------------------------------------------------
    rc, listing, err = run(["dpkg-deb", "-c", deb])
    c.check(rc == 0, f"dpkg-deb -c: {err}")
    files = {}
    for line in listing.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6:
            name = parts[5].split(" -> ")[0]
            files[name[2:] if name.startswith("./") else name] = parts[0]
    want = {
        "usr/sbin/bwprovd": "-rwxr-xr-x",
        "etc/bwprovd/bwprovd.conf": "-rw-r--r--",
        "usr/share/man/man8/bwprovd.8.gz": "-rw-r--r--",
        "usr/share/man/man5/bwprovd.conf.5.gz": "-rw-r--r--",
        "usr/lib/systemd/catalog/bwprovd.catalog": "-rw-r--r--",
        "usr/share/doc/bwprovd/copyright": "-rw-r--r--",
    }
    for path, mode in want.items():
        if c.check(path in files, f"{path} is not in the package"):
            c.check(files[path] == mode, f"{path} has mode {files[path]}, not {mode}")
    units = [f for f in files if re.fullmatch(r"(usr/)?lib/systemd/system/bwprovd\.service", f)]
    c.check(len(units) == 1, f"the unit is not in the package once: {units}")
    c.check(not any(f.startswith("usr/local/") for f in files), "files under /usr/local")
    if not c.failures:
        c.ok("contents: " + ", ".join(sorted(want) + units))

    # -- control ------------------------------------------------------------
    def field(name):
        return run(["dpkg-deb", "-f", deb, name])[1].strip()

    c.check(field("Package") == "bwprovd", "Package is not bwprovd")
    c.check(field("Version") == version, f"Version is {field('Version')}, not {version}")
    c.check(field("Architecture") == arch, f"Architecture is {field('Architecture')}")
    depends = field("Depends")
    for lib in RUNTIME_DEPS:
        c.check(re.search(rf"(^|[ ,]){re.escape(lib)}\b", depends),
                f"Depends lacks {lib}: {depends}")
    rc, info, _ = run(["dpkg-deb", "-I", deb])
    print(info)
    with tempfile.TemporaryDirectory() as ctl:
        rc, _, err = run(["dpkg-deb", "-e", deb, ctl])
        c.check(rc == 0, f"dpkg-deb -e: {err}")

        def ctl_file(name):
            try:
                with open(os.path.join(ctl, name)) as f:
                    return f.read()
            except OSError:
                return ""

        conffiles = ctl_file("conffiles").split()
        c.check(conffiles == ["/etc/bwprovd/bwprovd.conf"],
                f"conffiles is {conffiles}, not [/etc/bwprovd/bwprovd.conf]")
        postinst = ctl_file("postinst")
        c.check("deb-systemd-helper enable 'bwprovd.service'" in postinst,
                "postinst does not enable bwprovd.service")
        c.check("deb-systemd-invoke start" not in postinst,
                "postinst starts the service on installation")
        c.check("try-restart 'bwprovd.service'" in postinst,
                "postinst does not try-restart the service after an upgrade")
        c.check("deb-systemd-helper purge 'bwprovd.service'" in ctl_file("postrm"),
                "postrm does not purge the unit's enablement state")

    # -- unit and binary ------------------------------------------------------
    with tempfile.TemporaryDirectory() as x:
        rc, _, err = run(["dpkg-deb", "-x", deb, x])
        c.check(rc == 0, f"dpkg-deb -x: {err}")
        if units:
            with open(os.path.join(x, units[0])) as f:
                unit = f.read()
            c.check(re.search(r"^ExecStart=/usr/sbin/bwprovd -c /etc/bwprovd/bwprovd.conf$",
                              unit, re.M),
                    "the packaged unit does not run /usr/sbin/bwprovd -c /etc/bwprovd/bwprovd.conf")
        binary = os.path.join(x, "usr/sbin/bwprovd")
        rc, hdr, _ = run(["readelf", "-hdlW", binary])
        c.check("DYN (Position-Independent Executable" in hdr or re.search(r"Type:\s+DYN", hdr),
                "bwprovd is not PIE")
        c.check(re.search(r"\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW", hdr), "bwprovd lacks BIND_NOW")
        c.check("GNU_RELRO" in hdr, "bwprovd lacks RELRO")
        rc, syms, _ = run(["readelf", "--dyn-syms", "-W", binary])
        c.check(re.search(r"__\w+_chk@", syms), "bwprovd calls no _FORTIFY_SOURCE (_chk) function")
        c.check(re.search(r"__stack_chk_fail@", syms), "bwprovd has no stack protector")
        c.ok("binary: PIE, BIND_NOW, RELRO, fortified, stack protector")

    # -- lintian ------------------------------------------------------------
    lintian = shutil.which("lintian")
    if lintian:
        # --fail-on error: warnings are reported but do not fail the test.
        p = subprocess.run([lintian, "--fail-on", "error", "--display-info",
                            "--show-overrides", deb],
                           capture_output=True, text=True, timeout=600)
        report = (p.stdout + p.stderr).strip()
        print("lintian:\n" + (report or "(nothing to report)"))
        errors = [ln for ln in p.stdout.splitlines() if ln.startswith("E: ")]
        c.check(p.returncode == 0 and not errors,
                f"lintian exited {p.returncode} with {len(errors)} error(s)")
    else:
        print("note: lintian is not installed (apt-get install lintian): not run")

    c.finish()


if __name__ == "__main__":
    main()
