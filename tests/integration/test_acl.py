#!/usr/bin/python3
"""Scenario (real Apache Kafka only): a secured cluster and the minimal ACLs.

One broker with a SASL_SSL listener (SCRAM-SHA-512, a certificate from a
test CA) and the StandardAuthorizer enforcing ACLs
(allow.everyone.if.no.acl.found=false). bwprovd connects as the SCRAM user
"bwprovd", its password read from a systemd-style credential
(kafka.sasl.password = cred:kafka-password), trusting the test CA, also
a credential (kafka.ssl.ca.location = cred:kafka-ca: librdkafka gets the
credential's path); it never uses the harness's own listener.

The ACLs are the README's minimal set ("Kafka ACLs"), MINIMAL below.

1. With the whole set: 40 provisions all succeed, and bwprovd never logs
   that Kafka refuses it (the set suffices).
2. For each ACL of the set in turn: the ACL is removed, bwprovd started
   and a few events produced. Within REFUSAL_LIMIT_S bwprovd must say so:
   a log line "Kafka refuses bwprovd: ..." naming the topic or group, and
   a STATUS= with "Kafka refuses" (a refused write ends the process with
   exit 1 after that STATUS: the event is replayed after the restart).
   Then bwprovd is stopped and the ACL added back.
3. With the whole set again, every event produced in this test ends with
   a succeeded result (nothing was lost while an ACL was missing), and the
   password appears in none of bwprovd's logs.

The broker: Apache Kafka 3.9.1 when the system's librdkafka is older than
2.6.1 (Debian 12 has 2.0.2), else the default 4.x. Such a librdkafka sends
its SCRAM nonce twice, which Kafka 4.0 and later refuse as invalid
credentials (librdkafka issue 4895). With such a librdkafka the test also
starts a 4.x broker and checks that bwprovd says so: the refusal in the
log and in STATUS carries the note about librdkafka before 2.6.1.
"""
import os
import re
import shutil
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402
import realkafka  # noqa: E402  (tests/lib, on the path since bwtest)

USER = "bwprovd"
PRINCIPAL = "User:" + USER
PASSWORD = "scram-Secret-4-bwprovd"
GROUP = "bwprovd"  # kafka.group.id's default
# (principal, resource type, name, operation, pattern type): the README's
# minimal set.
MINIMAL = [
    (PRINCIPAL, "topic", bwtest.TOPIC_EVENTS, "Read", "literal"),
    (PRINCIPAL, "group", GROUP, "Read", "literal"),
    (PRINCIPAL, "topic", bwtest.TOPIC_RESULTS, "Write", "literal"),
    (PRINCIPAL, "topic", bwtest.TOPIC_DLQ, "Write", "literal"),
    (PRINCIPAL, "topic", bwtest.TOPIC_STATE, "Write", "literal"),
    (PRINCIPAL, "topic", bwtest.TOPIC_STATE, "Read", "literal"),
]
REFUSAL_LIMIT_S = 30
REFUSED_RX = re.compile(r"Kafka refuses bwprovd")


def daemon(mk, sim, creds):
    shutil.copyfile(mk.ca_file, os.path.join(creds, "kafka-ca"))
    config = {
        "kafka.bootstrap.servers": mk.secure_bootstrap,
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanisms": "SCRAM-SHA-512",
        "kafka.sasl.username": USER,
        "kafka.sasl.password": "cred:kafka-password",
        "kafka.ssl.ca.location": "cred:kafka-ca",
    }
    # One static group member, as one host's bwprovd.service restarted
    # again and again: each run takes over the last one's membership.
    return bwtest.Daemon(mk.secure_bootstrap, sim, config=config,
                         env={"CREDENTIALS_DIRECTORY": creds, "BWPROVD_INSTANCE": "acl"})


def provisions(tag, n):
    return [bwtest.provision("%04d@%s.acl.example.com" % (i, tag), event_id="acl-%s-%d" % (tag, i))
            for i in range(n)]


def refusals(d):
    return [line for line in d.log_lines() if REFUSED_RX.search(line)]


def refused_status(d):
    return [s for s in d.statuses(run=d.run) if "Kafka refuses" in s]


def without(mk, sim, creds, acl, events):
    """bwprovd without ``acl``: returns (seconds to the refusal, the log
    line, the STATUS, exit status)."""
    _, rtype, name, op, _ = acl
    with daemon(mk, sim, creds) as d:
        t0 = time.monotonic()
        mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for e in events])
        what = ("group " + name) if rtype == "group" else name
        named = lambda: [line for line in refusals(d) if what in line]  # noqa: E731
        try:
            bwtest.wait_until(lambda: named() and refused_status(d), REFUSAL_LIMIT_S, 0.2,
                              "a refusal of %s %s %s in the log and STATUS" % (op, rtype, name))
        except bwtest.Timeout:
            raise AssertionError("without %s on %s %s: no refusal naming it in the log and "
                                 "STATUS within %d s; statuses %s; log:\n%s" % (
                                     op, rtype, name, REFUSAL_LIMIT_S, d.statuses()[-3:],
                                     d.log_tail(15)))
        took = time.monotonic() - t0
        line, status = named()[0], refused_status(d)[-1]
        rc = d.stop(timeout=60) if d.running() else d.returncode
        return took, line, status, rc


def old_scram_client(ck, sim, creds):
    """librdkafka before 2.6.1 against Kafka 4.x: bwprovd names the cause."""
    with bwtest.Kafka(partitions=1, secure=True) as mk:
        mk.add_scram_user(USER, PASSWORD)
        for acl in MINIMAL:
            mk.acl_add(acl)
        with daemon(mk, sim, creds) as d:
            hint = "librdkafka before 2.6.1"
            try:
                bwtest.wait_until(lambda: [s for s in d.statuses() if hint in s] and
                                  [line for line in refusals(d) if hint in line], 30, 0.2,
                                  "the SCRAM note in the log and STATUS")
                ok, detail = True, [s for s in d.statuses() if hint in s][-1]
            except bwtest.Timeout:
                ok, detail = False, "%s\n%s" % (d.statuses()[-2:], d.log_tail(8))
            ck.check("Kafka %s refusing librdkafka %s's SCRAM: said why" % (
                mk.version, ".".join(map(str, realkafka.librdkafka_version()))), ok, detail)
            ck.check("... and stopped cleanly", d.stop() == 0, d.log_tail(5))


def main():
    if not bwtest.real_kafka():
        bwtest.skip("a secured cluster needs a real broker (BWTEST_KAFKA=real)")
    t0 = time.monotonic()
    ck = scenario.Checks("acl")
    creds = bwtest._mkdtemp("bwt-creds-")
    scenario.write_secret(creds, "kafka-password", PASSWORD)
    version = realkafka.scram_broker_version()
    with bwtest.Kafka(partitions=4, secure=True, version=version) as mk, bwtest.WebSim() as sim:
        log("broker: Apache Kafka %s, SASL_SSL with %s", mk.version, realkafka.SCRAM)
        mk.add_scram_user(USER, PASSWORD)
        for acl in MINIMAL:
            mk.acl_add(acl)
        produced = []

        # 1. the minimal set suffices
        first = provisions("all", 40)
        with daemon(mk, sim, creds) as d:
            d.wait_ready(60)
            mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for e in first])
            produced += first
            res = scenario.wait_results(mk, [e["eventId"] for e in first], 60)
            bad = [r for r in scenario.final_results(res).values() if r["outcome"] != "succeeded"]
            ck.check("the minimal ACLs suffice: 40 provisions succeeded", not bad, bad[:2])
            ck.check("... and bwprovd never said Kafka refuses it", not refusals(d),
                     refusals(d)[:2])
            ck.check("clean stop", d.stop() == 0, d.log_tail(5))
            logs = d.log_lines(all_runs=True)

        # 2. each ACL missing in turn
        for i, acl in enumerate(MINIMAL):
            _, rtype, name, op, _ = acl
            mk.acl_remove(acl)
            time.sleep(1)  # the broker's authorizer applies it from its metadata log
            evs = provisions("no%d" % i, 4)
            produced += evs
            try:
                took, line, status, rc = without(mk, sim, creds, acl, evs)
                log("without %s on %s %s: refused after %.1f s, exit %s\n    log: %s\n    "
                    "STATUS: %s", op, rtype, name, took, rc,
                    line[line.find("msg="):][:220], status[:220])
                ck.check("without %s on %s %s: said so in the log and STATUS" % (op, rtype, name),
                         True, "%.1f s" % took)
                ck.check("... and stopped cleanly or exited 1 (a refused write)", rc in (0, 1),
                         "exit %s" % rc)
            except AssertionError as e:
                ck.check("without %s on %s %s: said so in the log and STATUS" % (op, rtype, name),
                         False, str(e))
            mk.acl_add(acl)
            time.sleep(1)

        # 3. whole set again: nothing lost
        with daemon(mk, sim, creds) as d:
            d.wait_ready(60)
            res = scenario.wait_results(mk, [e["eventId"] for e in produced], 90)
            bad = [r for r in scenario.final_results(res).values() if r["outcome"] != "succeeded"]
            ck.check("every event produced while ACLs were missing succeeded in the end",
                     not bad, bad[:2])
            ck.check("clean stop", d.stop() == 0, d.log_tail(5))
            logs += d.log_lines(all_runs=True)
        leaked = [line for line in logs if PASSWORD in line]
        ck.check("the SASL password is in no log line", not leaked, leaked[:1])
        if version != realkafka.DEFAULT_VERSION:
            old_scram_client(ck, sim, creds)
    scenario.report("acl", t0, acls=len(MINIMAL), events=len(produced))
    ck.done()


if __name__ == "__main__":
    main()
