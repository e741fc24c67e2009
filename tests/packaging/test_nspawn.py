#!/usr/bin/python3
"""The Debian package under a real systemd: Debian 12 booted with systemd
as PID 1 in a systemd-nspawn container (sharing the host's network), the
mock Kafka cluster and the Webex API simulator on the host's loopback.

Steps (each wait bounded):

 1. A cached Debian 12 root (debootstrap minbase + systemd, systemd-sysv,
    dbus and the package's run-time libraries, installed with apt in the
    root), kept in $BWPROVD_TEST_CACHE (default /var/cache/bwprovd-test)
    under a hash of the recipe; built once, under a lock.
 2. A per-run copy (overlayfs over the cache, or a copy where overlayfs
    cannot be mounted): the cache itself is never written after creation.
 3. `dpkg -i` of the .deb in the root before the boot (no systemd running):
    it must succeed and leave the unit enabled.
 4. Boot. The enabled but unconfigured service starts at boot and must fail
    with exit status 78 (configuration error) and not be restarted
    (RestartPreventExitStatus=).
 5. The configuration (host mock Kafka, simulator base_url, session timeout
    6 s for the mock cluster) and the token as a credential in
    /etc/credstore; `systemctl start`: active (running), a StatusText from
    bwprovd, a dynamic (non-root) user, no_new_privs, seccomp.
 6. Events produced on the host get results; `journalctl -u bwprovd
    BWPROVD_USER_ID=<user> -o json` returns the outcome entry with the
    structured fields; the catalog is installed.
 7. `systemctl reload`: succeeds, the job is logged as done, bwprovd logs
    the reload, the main PID stays and the unit stays active.
 8. Watchdog: a drop-in with WatchdogSec=3s; a healthy daemon keeps its
    PID; after `kill -STOP` of the main PID systemd logs a watchdog timeout
    and restarts it (NRestarts grows, a new MainPID), and it processes
    events again.
 9. Re-installing the package (an upgrade as dpkg sees it) with systemd
    running keeps the edited conffile and try-restarts the running service.
10. `systemctl stop`: inactive, ExecMainStatus=0, Result=success, the
    "stopped" message logged.

Every container and process is torn down at the end, on failure, on
SIGTERM, and (through a detached guard process) even when this test is
killed. Needs root, debootstrap, systemd-nspawn, nsenter and kcat; skips
(77) with the reason where they are missing or cannot work.

Environment: BWPROVD_DEB (the .deb; else --deb-dir is searched, and the
package is built with packaging/build-deb.sh when none is there),
MOCKKAFKA, WEBSIM, KCAT as for the integration tests,
BWPROVD_TEST_CACHE, BWPROVD_TEST_MIRROR (default: the host's Debian
mirror), BWTEST_KEEP=1 to keep the run directory."""

import argparse
import fcntl
import glob
import hashlib
import json
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
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import bwtest  # noqa: E402

SUITE = "bookworm"
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus")
# Bump when the recipe below changes, so that old caches are not reused.
CACHE_RECIPE = 1
UNIT = "bwprovd.service"
FIELDS = ("BWPROVD_EVENT_ID", "BWPROVD_EVENT_TYPE", "BWPROVD_USER_ID", "BWPROVD_OUTCOME",
          "BWPROVD_HTTP_STATUS", "BWPROVD_TRACKING_ID", "BWPROVD_ATTEMPT", "BWPROVD_TOPIC",
          "BWPROVD_PARTITION", "BWPROVD_OFFSET")
MID_STARTED = "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c01"
MID_STOPPED = "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c02"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

T0 = time.monotonic()


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


class Skip(Exception):
    pass


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)
    return cond


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


# ---------------------------------------------------------------------------
# The package


def find_deb(source, deb_dir):
    """The .deb to test: $BWPROVD_DEB, else bwprovd_<VERSION>_<arch>.deb in
    deb_dir, else one built now with packaging/build-deb.sh."""
    env_deb = os.environ.get("BWPROVD_DEB")
    if env_deb:
        check(os.path.isfile(env_deb), "BWPROVD_DEB=%s does not exist" % env_deb)
        return env_deb
    with open(os.path.join(source, "VERSION")) as f:
        version = f.readline().strip()
    arch = run(["dpkg", "--print-architecture"], 30).stdout.strip()
    deb = os.path.join(deb_dir, "bwprovd_%s_%s.deb" % (version, arch))
    if os.path.isfile(deb):
        return deb
    log("no %s: building it with packaging/build-deb.sh" % deb)
    os.makedirs(deb_dir, exist_ok=True)
    p = run([os.path.join(source, "packaging", "build-deb.sh"), "-o", deb_dir], 1200,
            check_rc=False)
    if p.returncode != 0:
        raise Skip("no .deb to test and build-deb.sh could not make one:\n%s" %
                   (p.stdout + p.stderr)[-2000:])
    return deb


def deb_depends(deb):
    """Package names of the .deb's Depends (first alternative of each)."""
    text = run(["dpkg-deb", "-f", deb, "Depends"], 30).stdout
    names = []
    for dep in text.split(","):
        first = dep.split("|")[0].strip()
        m = re.match(r"[a-z0-9][a-z0-9+.-]*", first)
        if m:
            names.append(m.group(0))
    return names


# ---------------------------------------------------------------------------
# The cached root


def host_mirror():
    """The host's Debian mirror (apt sources), or deb.debian.org."""
    if os.environ.get("BWPROVD_TEST_MIRROR"):
        return os.environ["BWPROVD_TEST_MIRROR"]
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) + \
        sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
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
                if uris and suites and SUITE in suites.group(1).split():
                    for uri in uris.group(1).split():
                        if "security" not in uri and "/debian" in uri:
                            return uri.rstrip("/")
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m and m.group(2) == SUITE and "security" not in m.group(1) \
                        and "/debian" in m.group(1):
                    return m.group(1).rstrip("/")
    return "http://deb.debian.org/debian"


def cache_root(cache_dir, packages, mirror):
    """Path of the cached root for this package list, creating it if needed.
    Returns (root, created)."""
    recipe = "%d\n%s\n%s\n%s\n" % (CACHE_RECIPE, SUITE, mirror, "\n".join(packages))
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    entry = os.path.join(cache_dir, "%s-%s" % (SUITE, key))
    root = os.path.join(entry, "root")
    stamp = os.path.join(entry, "complete")
    if os.path.exists(stamp):
        touch(os.path.join(entry, "last-used"))
        return root, False
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as e:
        raise Skip("cannot create the cache directory %s: %s" % (cache_dir, e))
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
            touch(os.path.join(entry, "last-used"))
            return root, False
        prune_cache(cache_dir, entry)
        build_cache(entry, root, stamp, recipe, packages, mirror)
        touch(os.path.join(entry, "last-used"))
        return root, True
    finally:
        lock.close()


def touch(path):
    with open(path, "a"):
        pass
    os.utime(path)


def prune_cache(cache_dir, keep):
    """Remove cached roots of other recipes unused for two days (called
    under the lock, before a new one is made)."""
    for entry in glob.glob(os.path.join(cache_dir, SUITE + "-*")):
        if entry == keep:
            continue
        try:
            used = os.path.getmtime(os.path.join(entry, "last-used"))
        except OSError:
            used = os.path.getmtime(entry)
        if time.time() - used > 2 * 86400:
            log("removing the unused cached root %s" % entry)
            shutil.rmtree(entry, ignore_errors=True)


def build_cache(entry, root, stamp, recipe, packages, mirror):
    tmp = root + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(entry, exist_ok=True)
    log("creating the cached root %s (debootstrap %s from %s; a few minutes, once)"
        % (root, SUITE, mirror))
    p = run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
             SUITE, tmp, mirror], 1800, check_rc=False)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Skip("debootstrap %s failed (no network or mirror?):\n%s" %
                   (SUITE, (p.stdout + p.stderr)[-1500:]))
    log("debootstrap done; probing systemd-nspawn")
    nspawn = ["systemd-nspawn", "-D", tmp, "--register=no", "--keep-unit", "--quiet", "--pipe"]
    p = run(nspawn + ["/bin/true"], 120, check_rc=False)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Skip("systemd-nspawn cannot run a container here:\n%s" % (p.stdout + p.stderr)[-1500:])
    extra = [pk for pk in packages if pk not in BASE_PACKAGES]
    log("installing in the root with apt: %s" % " ".join(extra))
    script = ("set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
              "apt-get install -y -q --no-install-recommends %s; apt-get clean; "
              "rm -rf /var/lib/apt/lists/*" % " ".join(extra))
    p = run(nspawn + ["/bin/sh", "-c", script], 900, check_rc=False)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Failure("apt-get install in the cached root failed:\n%s" %
                      (p.stdout + p.stderr)[-3000:])
    # No periodic apt runs in the test containers.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        path = os.path.join(tmp, "etc/systemd/system", timer)
        if not os.path.lexists(path):
            os.symlink("/dev/null", path)
    os.rename(tmp, root)
    with open(stamp, "w") as f:
        f.write(recipe)
    log("cached root ready")


# ---------------------------------------------------------------------------
# The container

GUARD = r"""
# Stops the container if the test process dies without cleaning up.
while kill -0 "$1" 2>/dev/null; do sleep 1; done
kill -KILL "$2" "$3" 2>/dev/null
sleep 2
umount -l "$4" 2>/dev/null
rm -rf "$5"
"""


class Container:
    def __init__(self, base, workdir):
        self.base = base
        self.workdir = workdir
        self.root = None
        self.overlay = False
        self.nspawn = None
        self.init = None
        self.guard = None
        self.log_path = os.path.join(workdir, "nspawn.log")
        self.name = "bwprovd-test-%d" % os.getpid()

    # -- the root -------------------------------------------------------------

    def prepare(self):
        upper, work, merged = (os.path.join(self.workdir, d) for d in ("upper", "work", "root"))
        for d in (upper, work, merged):
            os.makedirs(d)
        p = run(["mount", "-t", "overlay", "overlay", "-o",
                 "lowerdir=%s,upperdir=%s,workdir=%s" % (self.base, upper, work), merged],
                30, check_rc=False)
        if p.returncode == 0:
            self.overlay = True
            log("run root: overlay over the cache at %s" % merged)
        else:
            log("overlayfs unavailable (%s): copying the cached root" % p.stderr.strip())
            os.rmdir(merged)
            run(["cp", "-a", "--reflink=auto", self.base, merged], 600)
        self.root = merged

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def write(self, p, text, mode=0o644):
        full = self.path(p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)

    def chroot(self, argv, timeout=300, check_rc=True):
        env = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        return run(["chroot", self.root] + argv, timeout, check_rc=check_rc, env=env)

    # -- boot and commands --------------------------------------------------

    def boot(self):
        argv = ["systemd-nspawn", "-D", self.root, "--register=no", "--keep-unit", "--boot",
                "--console=pipe", "--machine=" + self.name]
        with open(self.log_path, "ab") as out:
            self.nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while self.init is None:
            if self.nspawn.poll() is not None:
                raise Failure("systemd-nspawn exited %s during boot:\n%s"
                              % (self.nspawn.returncode, bwtest._tail(self.log_path)))
            if time.monotonic() > deadline:
                raise Failure("no container init under systemd-nspawn within 60 s:\n%s"
                              % bwtest._tail(self.log_path))
            self.init = self._find_init(self.nspawn.pid)
            time.sleep(0.2)
        self.guard = subprocess.Popen(
            ["sh", "-c", GUARD, "guard", str(os.getpid()), str(self.init), str(self.nspawn.pid),
             self.root if self.overlay else "", self.workdir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        log("container booting: nspawn pid %d, init pid %d (host)" % (self.nspawn.pid, self.init))

    @staticmethod
    def _find_init(pid):
        """The descendant of pid that is PID 1 of its own PID namespace."""
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

    def sh(self, argv, timeout=60, check_rc=True):
        """Run argv inside the container (all its namespaces), clean env."""
        if self.init is None:
            raise Failure("the container is not running")
        cmd = ["nsenter", "-t", str(self.init), "-a", "--", "/usr/bin/env", "-i",
               "PATH=" + CONTAINER_PATH, "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0",
               "DEBIAN_FRONTEND=noninteractive"] + list(argv)
        return run(cmd, timeout, check_rc=check_rc)

    def systemctl(self, *args, timeout=60, check_rc=True):
        return self.sh(["systemctl", "--no-pager"] + list(args), timeout=timeout,
                       check_rc=check_rc)

    def show(self, *props, unit=UNIT):
        out = self.systemctl("show", unit, "-p", ",".join(props)).stdout
        vals = {}
        for line in out.splitlines():
            k, _, v = line.partition("=")
            vals[k] = v
        return vals

    def journal(self, *args, timeout=30):
        out = self.sh(["journalctl", "--no-pager", "-o", "json"] + list(args),
                      timeout=timeout).stdout
        entries = []
        for line in out.splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                pass
        return entries

    def cursor(self):
        last = self.journal("-n", "1")
        return last[-1]["__CURSOR"] if last else None

    def journal_after(self, cursor, *args):
        return self.journal(*((["--after-cursor=" + cursor] if cursor else []) + list(args)))

    # -- teardown -------------------------------------------------------------

    def diagnostics(self):
        if self.init is None or self.nspawn is None or self.nspawn.poll() is not None:
            print("--- nspawn log ---\n" + bwtest._tail(self.log_path, 60))
            return
        for title, argv in (
                ("systemctl status", ["systemctl", "--no-pager", "-l", "status", UNIT]),
                ("journal of the unit", ["journalctl", "--no-pager", "-u", UNIT, "-n", "80"]),
                ("failed units", ["systemctl", "--no-pager", "--failed"]),
                ("warnings this boot", ["journalctl", "--no-pager", "-b", "-p", "warning",
                                        "-n", "40"])):
            try:
                p = self.sh(argv, timeout=30, check_rc=False)
                print("--- %s ---\n%s%s" % (title, p.stdout, p.stderr))
            except Failure as e:
                print("--- %s: %s" % (title, e))

    def shutdown(self):
        """Power the container off (bounded), then kill what is left."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            if self.init is not None:
                try:
                    self.sh(["systemctl", "poweroff", "--no-block"], timeout=20, check_rc=False)
                except Failure:
                    pass
            try:
                self.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log("the container did not power off within 60 s: killing it")
                self.nspawn.terminate()
                try:
                    self.nspawn.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
        for pid in (self.init, self.nspawn.pid if self.nspawn else None):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self.nspawn is not None:
            try:
                self.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log("systemd-nspawn (pid %d) did not exit after SIGKILL" % self.nspawn.pid)
        if self.init:
            deadline = time.monotonic() + 30
            while os.path.exists("/proc/%d" % self.init) and time.monotonic() < deadline:
                time.sleep(0.2)
        if self.guard is not None:
            self.guard.kill()
            self.guard.wait(timeout=10)

    def cleanup(self, keep=False):
        if self.overlay and self.root:
            for _ in range(10):
                if run(["umount", self.root], 30, check_rc=False).returncode == 0:
                    break
                time.sleep(1)
            else:
                run(["umount", "-l", self.root], 30, check_rc=False)
        if keep:
            log("kept %s" % self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------
# The test


def config_text(mk, sim):
    return "\n".join([
        "# written by tests/packaging/test_nspawn.py",
        "kafka.bootstrap.servers = %s" % mk.bootstrap,
        # The mock cluster keeps a member that left until its session
        # times out: keep that short so a restarted daemon joins at once.
        "kafka.consumer.session.timeout.ms = 6000",
        "kafka.consumer.heartbeat.interval.ms = 500",
        "webex.base_url = %s" % sim.base_url,
        "webex.access_token_file = cred:webex-access-token",
        "startup.timeout_ms = 60000",
        "log.level = info",
        "",
    ])


def wait_for(desc, pred, timeout, interval=0.5):
    try:
        return bwtest.wait_until(pred, timeout=timeout, interval=interval, desc=desc)
    except bwtest.Timeout as e:
        raise Failure(str(e))


def produce_and_check(mk, users, timeout=90):
    """Provision events for users; wait for their results; returns the
    events by user."""
    events = {u: bwtest.provision(u) for u in users}
    mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(ev) for ev in events.values()])
    want = {ev["eventId"] for ev in events.values()}

    def done():
        res = bwtest.consume(mk.bootstrap, bwtest.TOPIC_RESULTS, timeout=10)
        by = bwtest.results_by_event(res)
        return by if want <= set(by) else None

    by = wait_for("results for %s" % ", ".join(users), done, timeout, interval=1)
    for u, ev in events.items():
        outcomes = [r.get("outcome") for r in by[ev["eventId"]]]
        check("succeeded" in outcomes, "event for %s: outcomes %s" % (u, outcomes))
    return events


def state(c):
    s = c.show("ActiveState", "SubState")
    return "%s/%s" % (s.get("ActiveState"), s.get("SubState"))


def test(c, deb, mk, sim):
    # -- 3. install without systemd running ----------------------------------
    check(not os.path.exists(c.path("/run/systemd/system")),
          "the root has /run/systemd/system before boot")
    shutil.copy(deb, c.path("/root/bwprovd.deb"))
    p = c.chroot(["dpkg", "-i", "/root/bwprovd.deb"])
    log("dpkg -i without systemd running:\n" + p.stdout.strip())
    status = c.chroot(["dpkg-query", "-W", "-f=${Status} ${Version}", "bwprovd"]).stdout
    check(status.startswith("install ok installed"), "dpkg status: %s" % status)
    enabled = c.chroot(["systemctl", "is-enabled", UNIT], check_rc=False).stdout.strip()
    check(enabled == "enabled", "after dpkg -i the unit is %r, not enabled" % enabled)
    log("installed (%s), unit %s" % (status, enabled))

    # -- 4. boot: the unconfigured service fails with 78, no restart loop ---
    c.boot()
    deadline = time.monotonic() + 180
    while True:  # until PID 1 answers on its bus, then until the boot is done
        left = deadline - time.monotonic()
        check(left > 0, "the container did not finish booting within 180 s")
        p = c.systemctl("is-system-running", "--wait", timeout=max(1, left), check_rc=False)
        if p.stdout.strip() not in ("", "offline", "initializing", "starting"):
            break
        time.sleep(0.5)
    log("boot finished: system %s" % p.stdout.strip())
    check(p.stdout.strip() in ("running", "degraded"), "system state %r" % p.stdout.strip())
    s = c.show("ActiveState", "Result", "ExecMainStatus", "NRestarts")
    log("unconfigured service after boot: %s" % s)
    check(s["ActiveState"] == "failed" and s["ExecMainStatus"] == "78",
          "the unconfigured service did not fail with 78 at boot: %s" % s)
    time.sleep(6)  # RestartSec=5s: a restart would show now
    s = c.show("ActiveState", "NRestarts")
    check(s["NRestarts"] == "0" and s["ActiveState"] == "failed",
          "exit 78 was restarted: %s" % s)

    # -- 5. configure, token credential, start ----------------------------
    c.write("/etc/bwprovd/bwprovd.conf", config_text(mk, sim), 0o644)
    os.makedirs(c.path("/etc/credstore"), mode=0o700, exist_ok=True)
    os.chmod(c.path("/etc/credstore"), 0o700)
    c.write("/etc/credstore/bwprovd.webex-access-token", sim.token + "\n", 0o600)
    t = time.monotonic()
    c.systemctl("start", UNIT, timeout=150)
    s = c.show("ActiveState", "SubState", "MainPID", "Type", "NotifyAccess", "WatchdogUSec")
    log("systemctl start returned after %.1fs: %s" % (time.monotonic() - t, s))
    check(s["ActiveState"] == "active" and s["SubState"] == "running", "after start: %s" % s)
    pid = s["MainPID"]
    # Right after READY=1 the text may still be the start-up one ("Waiting
    # for Kafka ..."); the counters follow within STATUS='s 2 s period.
    first = c.show("StatusText")["StatusText"]
    status_text = wait_for("a StatusText with bwprovd's counters",
                           lambda: (lambda t: t if re.search(r"\d+ ok", t) else None)(
                               c.show("StatusText")["StatusText"]), 20)
    log("StatusText: %r, then %r" % (first, status_text))
    proc = c.sh(["cat", "/proc/%s/status" % pid]).stdout
    uid = re.search(r"^Uid:\s+(\d+)", proc, re.M).group(1)
    check(uid != "0", "bwprovd runs as root (DynamicUser= not in effect)")
    check(re.search(r"^NoNewPrivs:\s+1", proc, re.M), "no_new_privs is not set")
    check(re.search(r"^Seccomp:\s+2", proc, re.M), "no seccomp filter")
    check(re.search(r"^CapEff:\s+0+$", proc, re.M), "bwprovd has capabilities")
    log("main PID %s: uid %s, no_new_privs, seccomp filter, no capabilities" % (pid, uid))

    # -- 6. events, results, structured journal entries ----------------------
    users = ["7100%02d@nspawn.example" % i for i in range(3)]
    events = produce_and_check(mk, users)
    log("3 events produced on the host: 3 results, all succeeded")
    user = users[0]

    def user_entries():
        es = c.journal("-u", UNIT, "BWPROVD_USER_ID=" + user)
        return [e for e in es if e.get("BWPROVD_EVENT_ID") == events[user]["eventId"]]

    entries = wait_for("journal entries for %s" % user, user_entries, 20)
    e = entries[-1]
    missing = [f for f in FIELDS if f not in e]
    check(not missing, "journal entry lacks %s: %s" % (missing, e))
    check(e["BWPROVD_OUTCOME"] == "succeeded", "BWPROVD_OUTCOME=%s" % e["BWPROVD_OUTCOME"])
    check(e.get("SYSLOG_IDENTIFIER") == "bwprovd" and e.get("_SYSTEMD_UNIT") == UNIT,
          "entry identifier/unit: %s %s" % (e.get("SYSLOG_IDENTIFIER"), e.get("_SYSTEMD_UNIT")))
    check(e["BWPROVD_EVENT_TYPE"] == "workspace.provision", "event type %s" % e["BWPROVD_EVENT_TYPE"])
    log("journalctl -u %s BWPROVD_USER_ID=%s: %s" % (
        UNIT, user, " ".join("%s=%s" % (f, e[f]) for f in FIELDS)))
    others = c.journal("-u", UNIT, "BWPROVD_USER_ID=" + users[1])
    check(all(x.get("BWPROVD_USER_ID") == users[1] for x in others), "field match is not exact")
    check(c.journal("-u", UNIT, "MESSAGE_ID=" + MID_STARTED), "no 'started' message with MESSAGE_ID")
    p = c.sh(["journalctl", "--no-pager", "--list-catalog", MID_STARTED], check_rc=False)
    check(MID_STARTED in p.stdout, "the journal catalog does not know %s" % MID_STARTED)
    log("catalog entry installed: %s" % p.stdout.strip().splitlines()[0])

    # -- 7. reload --------------------------------------------------------
    cur = c.cursor()
    seen, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            try:
                st = state(c)
            except Failure:
                continue
            if not seen or seen[-1] != st:
                seen.append(st)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(0.3)
    c.systemctl("reload", UNIT, timeout=60)
    time.sleep(1.5)
    stop.set()
    sampler.join(timeout=30)
    s = c.show("ActiveState", "SubState", "MainPID")
    log("reload: states sampled %s; now %s" % (" -> ".join(seen), s))
    check(s["ActiveState"] == "active" and s["SubState"] == "running", "after reload: %s" % s)
    check(s["MainPID"] == pid, "reload changed the main PID (%s -> %s)" % (pid, s["MainPID"]))

    def reload_logged():
        es = c.journal_after(cur, "-u", UNIT)
        job = [x for x in es if x.get("JOB_TYPE") == "reload" and x.get("JOB_RESULT") == "done"]
        own = [x for x in es if x.get("SYSLOG_IDENTIFIER") == "bwprovd"
               and x.get("MESSAGE", "").startswith("reloading ")]
        return (job, own) if job and own else None

    job, own = wait_for("the reload in the journal", reload_logged, 20)
    log("journal: %r (JOB_TYPE=reload JOB_RESULT=done), bwprovd: %r"
        % (job[-1].get("MESSAGE"), own[-1].get("MESSAGE")))

    # -- 8. watchdog --------------------------------------------------------
    c.write("/etc/systemd/system/bwprovd.service.d/test.conf",
            "# tests/packaging/test_nspawn.py: a short watchdog, no core file\n"
            "[Service]\nWatchdogSec=3s\nLimitCORE=0\n")
    c.systemctl("daemon-reload")
    c.systemctl("restart", UNIT, timeout=150)
    s = c.show("ActiveState", "SubState", "MainPID", "NRestarts", "WatchdogUSec")
    check(s["WatchdogUSec"] == "3s", "the drop-in did not apply: WatchdogUSec=%s" % s["WatchdogUSec"])
    check(s["ActiveState"] == "active", "after restart: %s" % s)
    pid, n0 = s["MainPID"], int(s["NRestarts"])
    log("restarted with WatchdogSec=3s: main PID %s, NRestarts %d" % (pid, n0))
    time.sleep(8)
    s = c.show("ActiveState", "MainPID", "NRestarts")
    check(s["MainPID"] == pid and int(s["NRestarts"]) == n0 and s["ActiveState"] == "active",
          "a healthy daemon did not keep the watchdog happy for 8 s: %s" % s)
    log("healthy for 8 s under a 3 s watchdog (same PID, no restart)")
    cur = c.cursor()
    c.sh(["/bin/sh", "-c", "kill -STOP %s" % pid])  # the shell's kill: no procps here
    t = time.monotonic()
    log("kill -STOP %s" % pid)

    def restarted():
        s = c.show("ActiveState", "SubState", "MainPID", "NRestarts")
        ok = int(s["NRestarts"]) > n0 and s["MainPID"] not in ("0", pid) and \
            s["ActiveState"] == "active" and s["SubState"] == "running"
        return s if ok else None

    s = wait_for("a watchdog restart", restarted, 90, interval=1)
    log("restarted by the watchdog after %.1fs: %s" % (time.monotonic() - t, s))
    wd = [x for x in c.journal_after(cur, "-u", UNIT) if "atchdog" in x.get("MESSAGE", "")]
    check(wd, "no watchdog message in the journal")
    log("journal: %r" % wd[0]["MESSAGE"])
    produce_and_check(mk, ["7101%02d@nspawn.example" % i for i in range(2)])
    log("events processed after the watchdog restart")

    # -- 9. reinstall with systemd running: conffile kept, try-restart -------
    pid = c.show("MainPID")["MainPID"]
    p = c.sh(["dpkg", "-i", "/root/bwprovd.deb"], timeout=180)
    log("dpkg -i again with systemd running:\n" + p.stdout.strip())
    with open(c.path("/etc/bwprovd/bwprovd.conf")) as f:
        check(f.read() == config_text(mk, sim), "the reinstall replaced the edited configuration")
    s = wait_for("the service running again after try-restart",
                 lambda: (lambda s: s if s["ActiveState"] == "active" and s["SubState"] == "running"
                          and s["MainPID"] not in ("0", pid) else None)(
                     c.show("ActiveState", "SubState", "MainPID")), 60)
    log("configuration kept; running service restarted (PID %s -> %s)" % (pid, s["MainPID"]))

    # -- 10. stop -----------------------------------------------------------
    cur = c.cursor()
    t = time.monotonic()
    c.systemctl("stop", UNIT, timeout=90)
    s = c.show("ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    log("systemctl stop took %.1fs: %s" % (time.monotonic() - t, s))
    check(s["ActiveState"] == "inactive" and s["Result"] == "success"
          and s["ExecMainStatus"] == "0" and s["ExecMainCode"] == "1",
          "not a clean stop: %s" % s)
    stopped = wait_for("the 'stopped' message",
                       lambda: [x for x in c.journal_after(cur, "-u", UNIT)
                                if x.get("MESSAGE_ID") == MID_STOPPED], 20)
    log("journal: %r" % stopped[-1].get("MESSAGE"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=os.path.normpath(os.path.join(HERE, "..", "..")))
    ap.add_argument("--deb-dir", default=None,
                    help="where packaging_deb put the .deb (default: build one)")
    a = ap.parse_args()

    if os.geteuid() != 0:
        bwtest.skip("needs root (debootstrap, systemd-nspawn, mount, nsenter)")
    for tool, pkg in (("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container"),
                      ("nsenter", "util-linux"), ("chroot", "coreutils"),
                      ("dpkg-deb", "dpkg"), (os.environ.get("KCAT") or "kcat", "kcat")):
        if not shutil.which(tool):
            bwtest.skip("%s is missing (Debian package %s)" % (tool, pkg))
    for var in ("MOCKKAFKA", "WEBSIM"):
        if not os.environ.get(var):
            bwtest.skip("%s is not set (run through ctest)" % var)

    cache_dir = os.environ.get("BWPROVD_TEST_CACHE", "/var/cache/bwprovd-test")
    c = None
    failed = True
    deb_tmp = None if a.deb_dir else tempfile.mkdtemp(prefix="bwprovd-deb-out.")
    try:
        deb = find_deb(a.source, a.deb_dir or deb_tmp)
        log("package: %s" % deb)
        packages = sorted(set(BASE_PACKAGES) | set(deb_depends(deb)))
        mirror = host_mirror()
        t = time.monotonic()
        base, created = cache_root(cache_dir, packages, mirror)
        log("%s root %s (%.0fs)" % ("created" if created else "cached", base, time.monotonic() - t))
        workdir = tempfile.mkdtemp(prefix="bwprovd-nspawn.", dir="/var/tmp")
        c = Container(base, workdir)
        c.prepare()
        with bwtest.MockKafka() as mk, bwtest.WebSim() as sim:
            log("mock Kafka at %s, simulator at %s" % (mk.bootstrap, sim.base_url))
            try:
                test(c, deb, mk, sim)
                failed = False
            except Exception:
                c.diagnostics()
                print("--- mockkafka log ---\n" + bwtest._tail(mk.log_path, 30))
                print("--- websim log ---\n" + bwtest._tail(sim.log_path, 30))
                raise
            finally:
                t = time.monotonic()
                c.shutdown()
                log("container shut down (%.1fs)" % (time.monotonic() - t))
    except Skip as e:
        failed = False
        bwtest.skip(str(e))
    except Failure as e:
        print("FAIL: %s" % e, flush=True)
        sys.exit(1)
    finally:
        if c is not None:
            if c.nspawn is not None and c.nspawn.poll() is None:
                c.shutdown()
            c.cleanup(keep=failed and bwtest._keep_tmp())
        if deb_tmp:
            shutil.rmtree(deb_tmp, ignore_errors=True)
    log("system test passed")


if __name__ == "__main__":
    main()
