#!/usr/bin/python3
"""Debian roots for another release than the host's: made once with
debootstrap from Debian's archive, cached, and used through a throw-away
overlay, so that a cached root is never written after it was made.

Two kinds, both in $BWPROVD_TEST_CACHE (default /var/cache/bwprovd-test),
each under a hash of its recipe (release, mirror, package list):

* a build root, DIST-build-HASH: the build dependencies of bwprovd, its
  tests and its package (compilers, the -dev packages, kcat, lintian ...);
  `make deb DIST=trixie` and the trixie tests build and test in it;
* a run-time root, DIST-HASH: debootstrap minbase with systemd and the
  package's run-time dependencies, booted by the system test
  (tests/packaging/test_nspawn.py imports this module for it).

Usage:

  debroot.py build-root DIST
      make the build root of DIST if it is not cached; print its path
  debroot.py run DIST [--src DIR] [--out DIR] [--timeout S] [--setenv K=V]... -- CMD [ARG]...
      run CMD in a throw-away overlay of DIST's build root under
      systemd-nspawn (host network, no boot): an export of the source tree
      (DIR, default this one: packaging/export-source.sh) read-only at
      /src, --out DIR writable at /out; exits with CMD's status, 124 when
      it ran out of time (default 1800 s; the container is killed)

DIST is a Debian release this project supports: bookworm (12) or trixie
(13). Needs root, debootstrap, systemd-nspawn (systemd-container) and
unshare; exits 77 naming what is missing, or when Debian's archive cannot
be reached to make a root. Making a root takes about a minute with a near
mirror, once; later uses find it cached. Environment: BWPROVD_TEST_CACHE,
BWPROVD_TEST_MIRROR (default: the host's Debian mirror)."""

import argparse
import fcntl
import glob
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)

#: The releases bwprovd supports, by codename: their version number.
RELEASES = {"bookworm": "12", "trixie": "13"}

#: In every root: debootstrap --include (systemd as PID 1 for a booted one).
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus")

#: A build root: packaging/debian/control's Build-Depends (with the test
#: profile), what the tests run (kcat, python3, openssl, groff, journald
#: and systemd-analyze from systemd), clang for the second compiler (with
#: compiler-rt for the fuzz targets it builds) and the package tools.
BUILD_PACKAGES = (
    "build-essential", "cmake", "make", "gcc", "clang", "libclang-rt-dev", "pkg-config", "librdkafka-dev",
    "libcurl4-openssl-dev", "libjson-c-dev", "libsystemd-dev", "zlib1g-dev",
    "libmicrohttpd-dev", "kcat", "python3", "openssl", "ca-certificates", "groff-base",
    "dpkg-dev", "debhelper", "fakeroot", "lintian", "util-linux")
#: Per release: systemd.pc moved from systemd to systemd-dev in Debian 13.
BUILD_EXTRA = {"bookworm": (), "trixie": ("systemd-dev",)}

#: Bump when the way a root is made changes, so that old caches are not
#: reused. (1: the recipe of the system test's Debian 12 root since it was
#: first cached; kept, so that root stays valid.)
CACHE_RECIPE = 1

T0 = time.monotonic()


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


class Unavailable(Exception):
    """This machine cannot make or run the root (not root, a tool missing,
    no archive): a test skips (77)."""


class Failure(Exception):
    pass


def run(argv, timeout, check_rc=True, **kw):
    """subprocess.run with text output and a bound; raises Failure when
    check_rc and the exit status is not 0."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not finish within %ss" % (" ".join(argv[:6]), timeout))
    if check_rc and p.returncode != 0:
        raise Failure("%s exited %d:\n%s%s" % (" ".join(argv), p.returncode,
                                               p.stdout[-3000:], p.stderr[-3000:]))
    return p


def check_release(dist):
    if dist not in RELEASES:
        raise Failure("unknown release %r: bwprovd supports %s" % (dist, ", ".join(RELEASES)))


def require(tools):
    """Raises Unavailable unless root and every (program, package) is there."""
    if os.geteuid() != 0:
        raise Unavailable("needs root (debootstrap, mount, systemd-nspawn)")
    for tool, pkg in tools:
        if not shutil.which(tool):
            raise Unavailable("%s is missing (Debian package %s)" % (tool, pkg))


ROOT_TOOLS = (("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container"))
RUN_TOOLS = ROOT_TOOLS + (("unshare", "util-linux"), ("mount", "mount"))


def host_codename():
    """VERSION_CODENAME of the running system ('' if unknown)."""
    try:
        with open("/etc/os-release") as f:
            m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", f.read(), re.M)
        return m.group(1) if m else ""
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# The cached roots


def host_mirror(suite):
    """The host's Debian mirror (apt sources): one that serves suite, else
    any of its main-archive mirrors (one mirror serves every release), else
    deb.debian.org."""
    if os.environ.get("BWPROVD_TEST_MIRROR"):
        return os.environ["BWPROVD_TEST_MIRROR"]
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) + \
        sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    found = []  # (serves suite, uri)
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                if re.search(r"^Enabled:\s*no", stanza, re.M | re.I):
                    continue
                uris = re.search(r"^URIs:\s*(.+)$", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites:
                    for uri in uris.group(1).split():
                        found.append((suite in suites.group(1).split(), uri))
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    found.append((m.group(2) == suite, m.group(1)))
    archive = [(serves, uri.rstrip("/")) for serves, uri in found
               if "security" not in uri and "/debian" in uri]
    for serves, uri in archive:
        if serves:
            return uri
    return archive[0][1] if archive else "http://deb.debian.org/debian"


def _touch(path):
    with open(path, "a"):
        pass
    os.utime(path)


def cached_root(suite, packages, name=None, cache_dir=None, mirror=None):
    """Path of the cached root of suite with packages (debootstrap minbase
    with BASE_PACKAGES, the rest installed with apt), made if needed under
    the cache's lock. name: the entry's prefix (default: suite). Returns
    (root, created)."""
    check_release(suite)
    require(ROOT_TOOLS)
    cache_dir = cache_dir or os.environ.get("BWPROVD_TEST_CACHE", "/var/cache/bwprovd-test")
    mirror = mirror or host_mirror(suite)
    name = name or suite
    packages = sorted(set(BASE_PACKAGES) | set(packages))
    recipe = "%d\n%s\n%s\n%s\n" % (CACHE_RECIPE, suite, mirror, "\n".join(packages))
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    entry = os.path.join(cache_dir, "%s-%s" % (name, key))
    root = os.path.join(entry, "root")
    stamp = os.path.join(entry, "complete")
    if os.path.exists(stamp):
        _touch(os.path.join(entry, "last-used"))
        return root, False
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as e:
        raise Unavailable("cannot create the cache directory %s: %s" % (cache_dir, e))
    lock = open(os.path.join(cache_dir, ".lock"), "a")
    try:
        deadline = time.monotonic() + 1800
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Failure("another run has held %s/.lock for 30 min" % cache_dir)
                time.sleep(2)
        if os.path.exists(stamp):  # made by the run we waited for
            _touch(os.path.join(entry, "last-used"))
            return root, False
        _prune(cache_dir, name, entry)
        _make(entry, root, stamp, recipe, suite, packages, mirror)
        _touch(os.path.join(entry, "last-used"))
        return root, True
    finally:
        lock.close()


def _prune(cache_dir, name, keep):
    """Remove cached roots of other recipes of the same kind unused for two
    days (called under the lock, before a new one is made)."""
    for entry in glob.glob(os.path.join(cache_dir, name + "-*")):
        if entry == keep or not re.fullmatch(re.escape(name) + r"-[0-9a-f]{16}",
                                             os.path.basename(entry)):
            continue
        try:
            used = os.path.getmtime(os.path.join(entry, "last-used"))
        except OSError:
            used = os.path.getmtime(entry)
        if time.time() - used > 2 * 86400:
            log("removing the unused cached root %s" % entry)
            shutil.rmtree(entry, ignore_errors=True)


def _make(entry, root, stamp, recipe, suite, packages, mirror):
    tmp = root + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(entry, exist_ok=True)
    log("creating the cached root %s (debootstrap %s from %s; a minute or more, once)"
        % (root, suite, mirror))
    p = run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
             suite, tmp, mirror], 1800, check_rc=False)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Unavailable("debootstrap %s failed (no network or mirror?):\n%s" %
                          (suite, (p.stdout + p.stderr)[-1500:]))
    log("debootstrap done; probing systemd-nspawn")
    nspawn = ["systemd-nspawn", "-D", tmp, "--register=no", "--keep-unit", "--quiet", "--pipe",
              "--machine=bwprovd-make-%d" % os.getpid()]
    p = run(nspawn + ["/bin/true"], 120, check_rc=False)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Unavailable("systemd-nspawn cannot run a container here:\n%s" %
                          (p.stdout + p.stderr)[-1500:])
    extra = [pk for pk in packages if pk not in BASE_PACKAGES]
    log("installing in the root with apt: %s" % " ".join(extra))
    script = ("set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
              "apt-get install -y -q --no-install-recommends %s; apt-get clean; "
              "rm -rf /var/lib/apt/lists/*" % " ".join(extra))
    p = run(nspawn + ["/bin/sh", "-c", script], 1200, check_rc=False)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Failure("apt-get install in the cached root failed:\n%s" %
                      (p.stdout + p.stderr)[-3000:])
    # No periodic apt runs in the containers.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        path = os.path.join(tmp, "etc/systemd/system", timer)
        if not os.path.lexists(path):
            os.symlink("/dev/null", path)
    os.rename(tmp, root)
    with open(stamp, "w") as f:
        f.write(recipe)
    log("cached root ready")


def build_root(dist, cache_dir=None):
    """(path, created) of dist's build root."""
    check_release(dist)
    return cached_root(dist, BUILD_PACKAGES + BUILD_EXTRA[dist], name=dist + "-build",
                       cache_dir=cache_dir)


# ---------------------------------------------------------------------------
# Running a command in a throw-away overlay of a root

WORK_PREFIX = "bwprovd-root."


def _prune_work():
    """Remove the work directories of runs whose process is gone (killed
    before it could clean up)."""
    for d in glob.glob(os.path.join("/var/tmp", WORK_PREFIX + "*")):
        try:
            with open(os.path.join(d, "owner")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pid = None
        gone = not os.path.exists("/proc/%d" % pid) if pid else \
            time.time() - os.path.getmtime(d) > 60  # no owner written yet: a minute
        if gone:
            shutil.rmtree(d, ignore_errors=True)


def _pdeathsig():
    """setpriv --pdeathsig KILL where it works: the container goes when the
    process that started it dies, even by SIGKILL."""
    setpriv = shutil.which("setpriv")
    if setpriv and subprocess.run([setpriv, "--pdeathsig", "KILL", "true"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=10).returncode == 0:
        return [setpriv, "--pdeathsig", "KILL"]
    return []


# Kills the container and removes the work directory when the process that
# ran it is gone ($1: its pid, $2: the container's init, $3: nspawn).
_GUARD = r"""
while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -KILL "$2" "$3" 2>/dev/null
sleep 2
rm -rf "$4"
"""


def find_init(pid):
    """The descendant of pid that is PID 1 of its own PID namespace (a
    container's init, seen from the host), or None."""
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/status" % p) as f:
                m = re.search(r"^NSpid:\s*(.*)$", f.read(), re.M)
            ns = m.group(1).split() if m else []
            if p != pid and len(ns) > 1 and ns[-1] == "1":
                return p
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return None


# Mounts the overlay in the private mount namespace unshare made (it goes
# with the namespace, however the run ends), then becomes systemd-nspawn.
_OVERLAY = 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && shift 4 && ' \
           'exec "$@"'


def run_in_root(root, argv, machine, binds_ro=(), binds=(), setenv=(), timeout=1800):
    """Run argv in a throw-away overlay of root under systemd-nspawn with
    the host's network, binds as (host, container) pairs, its output on
    ours. Returns its exit status; 124 when it ran out of time (the
    container is killed first)."""
    require(RUN_TOOLS)
    _prune_work()
    work = tempfile.mkdtemp(prefix=WORK_PREFIX, dir="/var/tmp")
    try:
        with open(os.path.join(work, "owner"), "w") as f:
            f.write("%d\n" % os.getpid())
        dirs = [os.path.join(work, d) for d in ("upper", "work", "root")]
        for d in dirs:
            os.mkdir(d)
        nspawn = ["systemd-nspawn", "-D", dirs[2], "--register=no", "--keep-unit", "--quiet",
                  "--pipe", "--machine=" + machine, "--setenv=LANG=C.UTF-8",
                  "--setenv=DEBIAN_FRONTEND=noninteractive"]
        nspawn += ["--bind-ro=%s:%s" % b for b in binds_ro]
        nspawn += ["--bind=%s:%s" % b for b in binds]
        nspawn += ["--setenv=%s" % e for e in setenv]
        cmd = _pdeathsig() + ["unshare", "--mount", "--propagation", "private", "--",
                              "/bin/sh", "-c", _OVERLAY, "sh", root] + dirs + nspawn + \
            ["--"] + list(argv)
        sys.stdout.flush()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        copier = threading.Thread(target=_copy_stderr, args=(p.stderr,), daemon=True)
        copier.start()
        guard = None
        try:
            # The container's init is no child of ours: should this process
            # be killed outright, nspawn goes (parent-death signal) but the
            # container would stay. A detached guard kills it then.
            init, deadline = None, time.monotonic() + 30
            while init is None and p.poll() is None and time.monotonic() < deadline:
                init = find_init(p.pid)
                if init is None:
                    time.sleep(0.1)
            if init is not None:
                guard = subprocess.Popen(
                    ["sh", "-c", _GUARD, "guard", str(os.getpid()), str(init), str(p.pid), work],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
            left = max(1.0, timeout - (time.monotonic() - deadline + 30))
            return p.wait(timeout=left)
        except subprocess.TimeoutExpired:
            log("%s did not finish within %d s: killing the container" % (" ".join(argv), timeout))
            return 124
        finally:
            if p.poll() is None:
                # nspawn kills a container that is not booted with SIGKILL
                # when it gets SIGTERM.
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=20)
            if guard is not None:
                guard.kill()
                guard.wait(timeout=10)
            copier.join(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# systemd-nspawn says this at exit where /run is no tmpfs (it leaves nothing
# behind): noise.
_NOISE = re.compile(rb'^Attempted to remove disk file system under "/run/systemd/nspawn/')


def _copy_stderr(pipe):
    """The container's standard error, but for nspawn's noise, on ours."""
    for line in iter(pipe.readline, b""):
        if not _NOISE.match(line):
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()
    pipe.close()


def export_source(src, dest):
    """The source tree src copied to dest (packaging/export-source.sh: the
    tracked and not ignored files, no build trees)."""
    run([os.path.join(src, "packaging", "export-source.sh"), dest], 300)


def cmd_run(a):
    root, created = build_root(a.dist)
    if created:
        log("made the %s build root %s" % (a.dist, root))
    # Named like run_in_root's work directories, with an owner: removed by
    # the next run if this process is killed before it can.
    tmp = tempfile.mkdtemp(prefix=WORK_PREFIX, dir="/var/tmp")
    try:
        with open(os.path.join(tmp, "owner"), "w") as f:
            f.write("%d\n" % os.getpid())
        src = os.path.join(tmp, "src")
        export_source(os.path.abspath(a.src), src)
        binds_ro = [(src, "/src")]
        binds = []
        if a.out:
            os.makedirs(a.out, exist_ok=True)
            binds.append((os.path.abspath(a.out), "/out"))
        return run_in_root(root, a.cmd, "bwprovd-%s-%d" % (a.dist, os.getpid()),
                           binds_ro=binds_ro, binds=binds, setenv=a.setenv, timeout=a.timeout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("build-root", help="make the build root if needed, print its path")
    p.add_argument("dist")
    p = sub.add_parser("run", help="run a command in a throw-away overlay of the build root")
    p.add_argument("dist")
    p.add_argument("--src", default=SOURCE, help="source tree to export to /src")
    p.add_argument("--out", help="host directory bound writable at /out")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--setenv", action="append", default=[], metavar="K=V")
    argv = sys.argv[1:]
    cmd = argv[argv.index("--") + 1:] if "--" in argv else []
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.cmd = cmd
    # SIGTERM (a CTest time-out, an operator) runs the clean-up too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if a.verb == "build-root":
            t = time.monotonic()
            root, created = build_root(a.dist)
            log("%s build root %s (%s, %.0f s)" % (a.dist, root, "made" if created else "cached",
                                                   time.monotonic() - t))
            print(root)
            return 0
        if not a.cmd:
            ap.error("run: no command after --")
        return cmd_run(a)
    except Unavailable as e:
        print("SKIP: %s" % e, flush=True)
        return 77
    except Failure as e:
        print("FAIL: %s" % e, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
