#!/usr/bin/python3
"""Scenario: two instances in one consumer group; one is stopped mid-run.

Mock cluster with 8 partitions; instances A and B with the same
kafka.group.id, session timeout 6 s, heartbeat 500 ms, 8 requests in
flight each, shutdown.grace_ms 1000 (so B hands unfinished work back instead
of draining all of it); simulator latency 20 ms. The events are produced
once both instances consume (B's log says its state table caught up for
its partitions): 2200 events over 400 users (provision, four updates, and a
remove for every other user; the rest end provisioned). When the simulator
has answered 700 requests, B gets SIGTERM and must exit 0; A takes its
partitions over.

What must hold: at-least-once lets A replay B's partitions from B's last
commit, so results may be duplicated, but B commits only what it finished
and A catches up with the state topic before it consumes them, so every
replayed event that B applied is `replayed` without an API call. Hence,
asserted: every event has a result (duplicates printed) and its last one
succeeded (note none, `replayed`, or `already_removed` for a remove whose
DELETE B had sent before stopping); one user's requests, across both
instances, never go back to an earlier event (the order is global, not per
instance: a graceful hand-over must keep it); an event gets a second 2xx
only if its first was answered after B was told to stop (work B handed
back with the answer still on the way); a `replayed` result only for an
event the simulator had applied; no concurrentUser (or retryAfter)
violations; created_total equals the number of users; the simulator's
workspaces and the last state record of every user match the workload;
A is still running and stops with exit 0.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 400
IN_FLIGHT = 8
STOP_AT = 700


_MOVED = re.compile(r"(assigned|revoked|lost) \d+ partition\(s\) of \S+: ?([0-9,]*)$")


def consuming(d):
    """Partitions the instance consumes: those it was assigned and still
    holds (its "assigned" / "revoked" / "lost" lines) once the state table
    caught up for them (its last "caught up" line; until then they are
    paused). Either rebalance protocol: eager (librdkafka < 2.6.1: all
    revoked, then the new set assigned) or cooperative (cooperative-sticky:
    only the partitions that move), where a revocation alone is followed
    by no "caught up" line."""
    owned, ready = set(), set()
    for rec in d.log_records():
        msg = rec.get("msg", "")
        m = _MOVED.match(msg)
        if m:
            parts = {int(p) for p in m.group(2).split(",") if p}
            if m.group(1) == "assigned":
                owned |= parts
            else:
                owned -= parts
                ready -= parts
        elif msg.startswith("state table caught up; consuming"):
            ready = set(owned)
    return len(ready)


_ASSIGNOR = re.compile(r"consumer: partition.assignment.strategy (\S+) \(librdkafka (\d+)\.(\d+)\.(\d+)")


def check_assignor(a, total):
    """The assignor bwprovd chose by the librdkafka it runs on (cooperative-
    sticky from 2.6.1 on, the eager range,roundrobin before: Debian 12 has
    2.0.2, Debian 13 2.8.0), and the protocol the group ran: when the second
    instance joined, A (alone with all ``total`` partitions until then)
    gave up only the partitions that moved (cooperative) or all of them,
    to get its share back (eager)."""
    said = [m for m in (_ASSIGNOR.match(r.get("msg", "")) for r in a.log_records()) if m]
    assert said, "bwprovd did not say which assignor it uses:\n" + a.log_tail()
    strategy, version = said[0].group(1), tuple(int(x) for x in said[0].group(2, 3, 4))
    want = "cooperative-sticky" if version >= (2, 6, 1) else "range,roundrobin"
    assert strategy == want, "librdkafka %s: assignor %s, want %s" % (version, strategy, want)
    revoked = [m for m in (_MOVED.match(r.get("msg", "")) for r in a.log_records())
               if m and m.group(1) == "revoked"]
    gave = len([p for p in revoked[0].group(2).split(",") if p])
    log("librdkafka %s: assignor %s; A gave up %d of its %d partitions when B joined",
        ".".join(map(str, version)), strategy, gave, total)
    if strategy == "cooperative-sticky":
        assert 0 < gave < total, "cooperative: A gave up %d of %d partitions" % (gave, total)
    else:
        assert gave == total, "eager: A gave up %d of %d partitions" % (gave, total)


def reapplied(per_event, t_change):
    """Events applied twice (two 2xx, or a 404 for a remove): allowed only
    when the first answer came after t_change, the first membership change
    (work handed back with its answer still on the way). Returns their ids."""
    late = set()
    for eid, rs in per_event.items():
        ok = [r for r in rs if 200 <= r["status"] < 300]
        if len(ok) > 1 or any(r["status"] == 404 for r in rs):
            assert ok and ok[0]["doneUs"] >= t_change, \
                "%s applied twice, the first time before the group changed: %s" % (
                    eid, [(r["method"], r["status"], r["recvUs"]) for r in rs])
            late.add(eid)
    return late


def expectation(late):
    """Every event's last result succeeded; a remove applied again after a
    hand-over may find the workspace already gone."""
    def expect(ev):
        if ev["type"] == "workspace.remove" and ev["eventId"] in late:
            return scenario.succeeded((None, "replayed", "already_removed"))
        return scenario.succeeded((None, "replayed"))
    return expect


def main():
    t0 = time.monotonic()
    wl = scenario.Workload("rb", USERS, seed=88, updates=4, keep_every=2)
    config = dict(scenario.group_settings(departs=True), **{"webex.max_in_flight": IN_FLIGHT,
                                          "shutdown.grace_ms": 1000})
    with bwtest.Kafka(partitions=8) as mk, bwtest.WebSim(faults={"latencyMs": 20}) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config=config) as a:
        a.wait_ready(60)
        bwtest.wait_until(lambda: consuming(a), 60, 0.2, "instance A consuming")
        with bwtest.Daemon(mk.bootstrap, sim, config=config) as b:
            b.wait_ready(60)
            bwtest.wait_until(lambda: consuming(b), 60, 0.2, "instance B consuming")
            bwtest.wait_until(lambda: any("revoked" in line for line in a.log_lines()), 30, 0.2,
                              "instance A giving partitions up")
            log("group settled; A reports %d partitions, B %d", consuming(a), consuming(b))
            check_assignor(a, 8)
            wl.produce(mk)
            scenario.wait_requests(sim, STOP_AT, timeout=60)
            t_term = scenario.now_us()
            rc = b.stop(timeout=30)
            t_gone = scenario.now_us()
            assert rc == 0, "instance B exited %s on SIGTERM:\n%s" % (rc, b.log_tail())
            done = len({r["eventId"] for r in
                        scenario.parse_results(mk.consume(bwtest.TOPIC_RESULTS))})
            log("B stopped in %.2f s; %d of %d events have a result", (t_gone - t_term) / 1e6,
                done, len(wl))
            assert done < len(wl), "the run was over before B stopped"
            b_log = b.log_lines()
        results = scenario.wait_all_results(mk, wl, timeout=90)
        reqs = scenario.api_requests(sim)
        per_event = scenario.requests_by_event(wl, reqs)
        late = reapplied(per_event, t_term)
        grouped = scenario.check_results(wl, results, expect=expectation(late),
                                         exactly_one=False)
        scenario.check_replayed_applied(wl, grouped, per_event)
        scenario.check_order(wl, reqs)
        st = scenario.check_no_violations(sim, reqs)
        scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
        assert a.running(), "instance A exited:\n" + a.log_tail()
        assert a.stop() == 0, "SIGTERM did not exit A with 0:\n" + a.log_tail()
    dups = scenario.duplicates(grouped)
    handed = [line for line in b_log if "replayed after restart" in line or "revoke:" in line]
    print("DUPLICATES: %d duplicate results over %d events; %d event(s) applied again after "
          "the hand-over" % (dups, len(wl), len(late)), flush=True)
    scenario.report("rebalance", t0, events=len(wl), requests=st["requests"], duplicates=dups,
                    reapplied=len(late), b_said=[h.split("msg=")[-1][:90] for h in handed])


if __name__ == "__main__":
    main()
