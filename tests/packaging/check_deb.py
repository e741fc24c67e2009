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
* lintian (when installed) reports no error and no warning.

--dist names the Debian release the package is for (default: the running
one; the package must be built on that release, e.g. in its root with
packaging/debroot.py): its version (VERSION, VERSION+deb13u1 for trixie),
the run-time packages it must depend on (trixie's 64-bit time_t names such
as libcurl4t64) and the unit's Type= (notify-reload where systemd >= 253).

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
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(_HERE, "..", "..", "packaging"))
from common import SKIP, Checker, run  # noqa: E402
from debroot import host_codename as host_release  # noqa: E402

TOOLS = {  # program: Debian package
    "dpkg-buildpackage": "dpkg-dev",
    "dpkg-checkbuilddeps": "dpkg-dev",
    "dpkg-deb": "dpkg",
    "dh": "debhelper",
    "fakeroot": "fakeroot",
    "readelf": "binutils",
}
# Per release: the run-time packages the binary links (dpkg-shlibdeps
# names them from the build root's libraries; Debian 13 renamed libcurl4
# for the 64-bit time_t transition), and the unit's Type=.
RUNTIME_DEPS = {
    "bookworm": ("libcurl4", "libjson-c5", "librdkafka1", "libsystemd0", "zlib1g"),
    "trixie": ("libcurl4t64", "libjson-c5", "librdkafka1", "libsystemd0", "zlib1g"),
}
NOT_DEPS = {"bookworm": ("libcurl4t64",), "trixie": ("libcurl4",)}
UNIT_TYPE = {"bookworm": "notify", "trixie": "notify-reload"}


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
    ap.add_argument("--dist", default=host_release(), choices=sorted(RUNTIME_DEPS),
                    help="the Debian release (default: the running one)")
    a = ap.parse_args()
    c = Checker("packaging_deb" if a.dist == host_release() else a.dist + "_deb")
    if a.dist != host_release():
        skip("the %s package is built and checked on %s (in its root: packaging/debroot.py "
             "run %s); this is %s" % (a.dist, a.dist, a.dist, host_release() or "unknown"))

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
    build_deb = os.path.join(source, "packaging", "build-deb.sh")
    with open(os.path.join(source, "VERSION")) as f:
        upstream = f.readline().strip()
    rc, version, err = run([build_deb, "--dist", a.dist, "--print-version"])
    version = version.strip()
    if not c.check(rc == 0 and version.startswith(upstream),
                   f"build-deb.sh --print-version: {version!r} {err.strip()}"):
        c.finish()
    _, arch, _ = run(["dpkg", "--print-architecture"])
    arch = arch.strip()
    deb_name = f"bwprovd_{version}_{arch}.deb"

    t0 = time.monotonic()
    p = subprocess.run([build_deb, "-o", out, "-j", str(max(1, a.jobs)), "--dist", a.dist],
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
    names = {d.split("|")[0].split("(")[0].strip() for d in depends.split(",")}
    for lib in RUNTIME_DEPS[a.dist]:
        c.check(lib in names, f"{a.dist}: Depends lacks {lib}: {depends}")
    for lib in NOT_DEPS[a.dist]:
        c.check(lib not in names, f"{a.dist}: Depends names {lib}, a package of another "
                f"release: {depends}")
    if not c.failures:
        c.ok(f"{a.dist}: Depends: {depends}")
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
            typ = re.findall(r"^Type=(\S+)$", unit, re.M)
            if c.check(typ == [UNIT_TYPE[a.dist]],
                       f"{a.dist}: the unit has Type={typ}, not {UNIT_TYPE[a.dist]}"):
                c.ok(f"{a.dist}: the unit is Type={typ[0]}")
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
        # Errors and warnings fail the test; informational tags do not.
        p = subprocess.run([lintian, "--fail-on", "error,warning", "--display-info",
                            "--show-overrides", deb],
                           capture_output=True, text=True, timeout=600)
        report = (p.stdout + p.stderr).strip()
        print("lintian:\n" + (report or "(nothing to report)"))
        bad = [ln for ln in p.stdout.splitlines() if ln.startswith(("E: ", "W: "))]
        if c.check(p.returncode == 0 and not bad,
                   f"lintian exited {p.returncode} with {len(bad)} error(s) and warning(s)"):
            c.ok(f"lintian ({a.dist}): no errors, no warnings")
    else:
        print("note: lintian is not installed (apt-get install lintian): not run")

    c.finish()


if __name__ == "__main__":
    main()
