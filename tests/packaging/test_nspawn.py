#!/usr/bin/python3
"""The Debian package under a real systemd: a Debian release (--suite:
bookworm, systemd 252, or trixie, systemd 257; default the running one)
booted with systemd as PID 1 in a systemd-nspawn container (sharing the
host's network), the mock Kafka cluster and the Webex API simulator on the
host's loopback. The package must be the one built for that release
(build-deb.sh --dist).

Steps (each wait bounded):

 1. A cached root of the release (debootstrap minbase + systemd,
    systemd-sysv, dbus and the package's run-time libraries, installed with
    apt in the root: packaging/debroot.py), kept in $BWPROVD_TEST_CACHE
    (default /var/cache/bwprovd-test) under a hash of the recipe; built
    once, under a lock.
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
    bwprovd, a dynamic (non-root) user, no_new_privs, seccomp. The unit's
    Type= fits the container's systemd (notify-reload from 253 on, without
    ExecReload=; notify with it before), and `systemd-analyze security`
    there rates it 2.0 or lower.
 6. Events produced on the host get results; `journalctl -u bwprovd
    BWPROVD_USER_ID=<user> -o json` returns the outcome entry with the
    structured fields; the catalog is installed; bwprovd chose the assignor
    for the release's librdkafka (cooperative-sticky from 2.6.1 on); a
    scrape of metrics.listen (host network) counts the 3 provisions and
    the service stays up (the packaged binary is built with
    _FORTIFY_SOURCE, which the test builds are not).
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
package is built with packaging/build-deb.sh --dist SUITE when none is
there),
MOCKKAFKA, WEBSIM, KCAT as for the integration tests,
BWPROVD_TEST_CACHE, BWPROVD_TEST_MIRROR (default: the host's Debian
mirror), BWTEST_KEEP=1 to keep the run directory."""

import argparse
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
sys.path.insert(0, os.path.join(HERE, "..", "..", "packaging"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import bwtest  # noqa: E402
import debroot  # noqa: E402
import scrape  # noqa: E402

UNIT = "bwprovd.service"
MAX_EXPOSURE = 2.0
FIELDS = ("BWPROVD_EVENT_ID", "BWPROVD_EVENT_TYPE", "BWPROVD_USER_ID", "BWPROVD_OUTCOME",
          "BWPROVD_HTTP_STATUS", "BWPROVD_TRACKING_ID", "BWPROVD_ATTEMPT", "BWPROVD_TOPIC",
          "BWPROVD_PARTITION", "BWPROVD_OFFSET")
MID_STARTED = "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c01"
MID_STOPPED = "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c02"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log = debroot.log
run = debroot.run
Skip = debroot.Unavailable  # the machine cannot: skip (77)
Failure = debroot.Failure


def check(cond, msg):
    if not cond:
        raise Failure(msg)
    return cond


# ---------------------------------------------------------------------------
# The package


def find_deb(source, deb_dir, suite):
    """The .deb to test: $BWPROVD_DEB, else bwprovd_<version>_<arch>.deb of
    suite's version in deb_dir, else one built now with
    packaging/build-deb.sh --dist suite."""
    env_deb = os.environ.get("BWPROVD_DEB")
    if env_deb:
        check(os.path.isfile(env_deb), "BWPROVD_DEB=%s does not exist" % env_deb)
        return env_deb
    build_deb = os.path.join(source, "packaging", "build-deb.sh")
    version = run([build_deb, "--dist", suite, "--print-version"], 30).stdout.strip()
    arch = run(["dpkg", "--print-architecture"], 30).stdout.strip()
    deb = os.path.join(deb_dir, "bwprovd_%s_%s.deb" % (version, arch))
    if os.path.isfile(deb):
        return deb
    log("no %s: building it with packaging/build-deb.sh --dist %s" % (deb, suite))
    os.makedirs(deb_dir, exist_ok=True)
    p = run([build_deb, "-o", deb_dir, "--dist", suite], 1800, check_rc=False)
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
            self.init = debroot.find_init(self.nspawn.pid)
            time.sleep(0.2)
        self.guard = subprocess.Popen(
            ["sh", "-c", GUARD, "guard", str(os.getpid()), str(self.init), str(self.nspawn.pid),
             self.root if self.overlay else "", self.workdir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        log("container booting: nspawn pid %d, init pid %d (host)" % (self.nspawn.pid, self.init))

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


def config_text(mk, sim, metrics):
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
        "metrics.listen = %s" % metrics,
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


def systemd_version(c):
    out = c.sh(["systemctl", "--version"]).stdout
    m = re.match(r"systemd (\d+)", out)
    check(m, "systemctl --version: %r" % out[:200])
    return int(m.group(1))


def check_unit_type(c, typ):
    """Type=notify-reload (no ExecReload=) where systemd has it (253 and
    later), Type=notify with ExecReload= sending SIGHUP before."""
    version = systemd_version(c)
    want = "notify-reload" if version >= 253 else "notify"
    reload = c.show("ExecReload").get("ExecReload", "")  # 257 prints nothing when unset
    check(typ == want, "systemd %d: the unit is Type=%s, not %s" % (version, typ, want))
    if want == "notify":
        check("kill -HUP" in reload, "Type=notify without the SIGHUP ExecReload=: %r" % reload)
    else:
        check(not reload, "Type=notify-reload with an ExecReload=: %r" % reload)
    log("systemd %d: Type=%s, %s" % (version, typ,
                                     "ExecReload= sends SIGHUP" if reload else "no ExecReload="))


def check_security(c):
    """The installed unit's exposure as this release's systemd rates it."""
    p = c.sh(["systemd-analyze", "security", "--no-pager", UNIT], timeout=60, check_rc=False)
    m = re.search(r"Overall exposure level for %s:\s*([0-9.]+)" % re.escape(UNIT), p.stdout)
    check(m, "systemd-analyze security gave no exposure level (exit %d):\n%s%s"
          % (p.returncode, p.stdout[-1500:], p.stderr[-500:]))
    level = float(m.group(1))
    check(level <= MAX_EXPOSURE, "systemd-analyze security: exposure %s > %s:\n%s" % (
        level, MAX_EXPOSURE, "\n".join(ln for ln in p.stdout.splitlines() if "✗" in ln)))
    log("systemd-analyze security %s: exposure %s <= %s" % (UNIT, level, MAX_EXPOSURE))


def check_assignor(c):
    """bwprovd chose the assignor by the release's librdkafka: cooperative-
    sticky from 2.6.1 on (Debian 13's 2.8.0), range,roundrobin before
    (Debian 12's 2.0.2)."""
    pkg = c.sh(["dpkg-query", "-W", "-f=${Version}", "librdkafka1"]).stdout.strip()
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", pkg)
    check(m, "librdkafka1's version: %r" % pkg)
    version = tuple(int(x) for x in m.groups())
    want = "cooperative-sticky" if version >= (2, 6, 1) else "range,roundrobin"
    said = [e.get("MESSAGE", "") for e in c.journal("-u", UNIT)
            if e.get("MESSAGE", "").startswith("consumer: partition.assignment.strategy ")]
    check(said, "bwprovd did not log its assignor")
    check(said[-1].startswith("consumer: partition.assignment.strategy %s (librdkafka %d.%d.%d"
                              % ((want,) + version)),
          "librdkafka %s: %r, want %s" % (pkg, said[-1], want))
    log("librdkafka %s: %r" % (pkg, said[-1]))


def check_metrics(c, metrics):
    """The packaged (hardened, fortified) binary serves a scrape with the
    per-partition samples and stays up."""
    url = "http://%s/metrics" % metrics
    text = wait_for("a scrape with the consumer lag of each partition",
                    lambda: (lambda r: r[1] if r[0] == 200 and
                             "bwprovd_kafka_consumer_lag_messages{" in r[1] else None)(
                        scrape.http("GET", url)), 20)
    check(re.search(r'^bwprovd_events_total\{type="workspace.provision",outcome="succeeded"\} 3$',
                    text, re.M), "the scrape does not count 3 provisions:\n" + text)
    s = c.show("ActiveState", "NRestarts")
    check(s["ActiveState"] == "active" and s["NRestarts"] == "0", "after the scrape: %s" % s)
    log("GET %s: %d bytes, 3 provisions counted, service still active" % (url, len(text)))


def test(c, deb, mk, sim):
    metrics = "127.0.0.1:%d" % scrape.free_port()
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
    c.write("/etc/bwprovd/bwprovd.conf", config_text(mk, sim, metrics), 0o644)
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
    check_unit_type(c, s["Type"])
    check_security(c)
    shared = [e.get("MESSAGE") for e in c.journal("-u", UNIT)
              if "accessible by group or others" in e.get("MESSAGE", "")]
    check(not shared, "bwprovd warns about the credential's mode: %s" % shared)

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
    check_assignor(c)
    check_metrics(c, metrics)

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

    # With Type=notify-reload systemd sent the SIGHUP and ended the job only
    # at bwprovd's READY=1 (after RELOADING=1 with MONOTONIC_USEC=): a done
    # job means the handshake worked.
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
        check(f.read() == config_text(mk, sim, metrics), "the reinstall replaced the edited configuration")
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
    ap.add_argument("--suite", default=debroot.host_codename(), choices=sorted(debroot.RELEASES),
                    help="the Debian release to boot (default: the running one)")
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

    c = None
    failed = True
    deb_tmp = None if a.deb_dir else tempfile.mkdtemp(prefix="bwprovd-deb-out.")
    try:
        deb = find_deb(a.source, a.deb_dir or deb_tmp, a.suite)
        log("package: %s (Debian %s, %s)" % (deb, debroot.RELEASES[a.suite], a.suite))
        t = time.monotonic()
        base, created = debroot.cached_root(a.suite, deb_depends(deb))
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
