#!/usr/bin/python3
"""Structured logging into a real journald: inside a private mount
namespace (tmpfs over /run/systemd, /run/log and /var/log/journal) this
starts /lib/systemd/systemd-journald, runs bwprovd with its stderr on a
journal stream and $JOURNAL_STREAM naming it (as systemd does), and reads
the entries back with journalctl: one entry per event outcome with the
SPEC §8 fields, findable by BWPROVD_USER_ID, and MESSAGE_ID on the
start/stop messages. Skips (77) where mount namespaces are unavailable."""
import json
import os
import shutil
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

JOURNALD = "/lib/systemd/systemd-journald"
INNER = "BWTEST_JOURNAL_INNER"
FIELDS = ["BWPROVD_EVENT_ID", "BWPROVD_EVENT_TYPE", "BWPROVD_USER_ID", "BWPROVD_OUTCOME",
          "BWPROVD_HTTP_STATUS", "BWPROVD_TRACKING_ID", "BWPROVD_ATTEMPT", "BWPROVD_TOPIC",
          "BWPROVD_PARTITION", "BWPROVD_OFFSET", "BWPROVD_WORKSPACE_ID"]
MID_STARTED = "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c01"


def outer():
    """Re-runs this file inside a new mount namespace, or skips."""
    for tool in ("unshare", "systemd-cat", "journalctl"):
        if not shutil.which(tool):
            bwtest.skip("%s not installed" % tool)
    if not os.path.exists(JOURNALD):
        bwtest.skip("%s not installed" % JOURNALD)
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        bwtest.skip("mount namespaces unavailable: %s" % probe.stderr.strip())
    env = dict(os.environ, **{INNER: "1"})
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                        os.path.abspath(__file__)], env=env, timeout=300)
    sys.exit(p.returncode)


def mount_private_journal():
    for d in ("/run/systemd", "/run/log", "/var/log/journal"):
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True)
    os.makedirs("/run/systemd/journal", exist_ok=True)
    jd = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bwtest.wait_until(lambda: os.path.exists("/run/systemd/journal/stdout"), timeout=15,
                      desc="journald's stdout socket")
    return jd


def wrapper(d):
    """systemd-cat puts the daemon's stdout/stderr on a journal stream; like
    systemd, the wrapper names that stream in $JOURNAL_STREAM."""
    path = os.path.join(d.dir, "under-journald")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec systemd-cat -t bwprovd sh -c '
                '\'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" "$@"\' '
                '"$BWPROVD_REAL" "$@"\n')
    os.chmod(path, stat.S_IRWXU)
    return path


def journal(*match):
    out = subprocess.run(["journalctl", "--no-pager", "-o", "json"] + list(match),
                         capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def inner():
    jd = mount_private_journal()
    try:
        with bwtest.MockKafka(partitions=2) as mk, bwtest.WebSim() as sim:
            d = bwtest.Daemon(mk.bootstrap, sim)
            d.extra_env["BWPROVD_REAL"] = d.binary
            d.binary = wrapper(d)
            with d:
                d.wait_ready(60)
                user = "journal-user@sp.example.com"
                evs = [bwtest.provision(user), bwtest.update(user, extension="42"),
                       bwtest.remove(user), bwtest.provision("other@sp.example.com")]
                mk.produce(bwtest.TOPIC_EVENTS, evs)
                mk.consume(bwtest.TOPIC_RESULTS, count=len(evs), timeout=60)
                assert d.stop() == 0
            check(user, evs)
    finally:
        jd.terminate()
        jd.wait(10)
    print("journal: one structured entry per outcome, found by BWPROVD_USER_ID")


def check(user, evs):
    entries = bwtest.wait_until(lambda: len(journal("BWPROVD_USER_ID=" + user)) >= 3 and
                                journal("BWPROVD_USER_ID=" + user), timeout=10,
                                desc="journal entries for the user")
    assert len(entries) == 3, "expected 3 entries for %s, got %d" % (user, len(entries))
    want = {ev["eventId"]: ev for ev in evs[:3]}
    for e in entries:
        missing = [f for f in FIELDS if f not in e]
        assert not missing, "entry lacks %s: %s" % (missing, e)
        # a new workspace id is logged at notice (the audit trail of ids
        # survives log.level=notice), other successes at info
        prio = "5" if e["BWPROVD_EVENT_TYPE"] == "workspace.provision" else "6"
        assert e["SYSLOG_IDENTIFIER"] == "bwprovd" and e["PRIORITY"] == prio, e
        assert e["BWPROVD_OUTCOME"] == "succeeded" and e["BWPROVD_TOPIC"] == bwtest.TOPIC_EVENTS
        ev = want.pop(e["BWPROVD_EVENT_ID"])
        assert e["BWPROVD_EVENT_TYPE"] == ev["type"], e
        assert e["BWPROVD_TRACKING_ID"] == "bwprovd_" + ev["eventId"], e
        assert e["BWPROVD_HTTP_STATUS"] in ("200", "204") and e["BWPROVD_ATTEMPT"] == "1", e
        assert e["_TRANSPORT"] == "journal", "not sent with sd_journal_send: %s" % e["_TRANSPORT"]
    # The workspace id is the audit trail outside Kafka: every outcome names
    # it, and the journal finds a workspace's whole history by it.
    ids = {e["BWPROVD_WORKSPACE_ID"] for e in entries}
    assert len(ids) == 1, "one workspace, several ids in the journal: %s" % ids
    by_id = journal("BWPROVD_WORKSPACE_ID=" + ids.pop())
    assert len(by_id) == 3, "journalctl BWPROVD_WORKSPACE_ID= found %d entries" % len(by_id)
    started = journal("MESSAGE_ID=" + MID_STARTED)
    assert started and started[0]["SYSLOG_IDENTIFIER"] == "bwprovd", started
    # Nothing of the daemon went through the plain stream as logfmt.
    stream = [e for e in journal("_TRANSPORT=stdout") if "level=" in e.get("MESSAGE", "")]
    assert not stream, "logfmt lines reached the journal stream: %s" % stream[:2]


if __name__ == "__main__":
    if os.environ.get(INNER):
        inner()
    else:
        outer()
