#!/usr/bin/python3
"""End to end: the real bwprovd against the mock Kafka cluster and the Webex
API simulator, with a mixed workload of 120 users (provision -> update ->
remove, interleaved across users) and malformed events.

Asserts: one result per event; every valid event succeeded; every malformed
one rejected and copied byte-for-byte to the DLQ with its reason; the
simulator saw each user's calls in order (POST, PUT, DELETE) and none
without the token; the state topic ends with a removed marker per user; READY,
STATUS and STOPPING reached systemd's socket; SIGTERM exits 0.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

USERS = 120


def workload(rng):
    """Per-user sequences, interleaved at random but in order per user."""
    seqs = []
    for i in range(USERS):
        user = "%08d@sp.example.com" % (40000000 + i)
        seqs.append([
            bwtest.provision(user, primaryPhoneNumber="+1-240-555-%04d" % i,
                             extension="5%04d" % i),
            bwtest.update(user, extension="7%04d" % i, displayName="ignored"),
            bwtest.remove(user),
        ])
    events = []
    while any(seqs):
        s = rng.choice([s for s in seqs if s])
        events.append(s.pop(0))
    return events


def malformed():
    """(key, value, expected reason fragment): each must be rejected."""
    ok = bwtest.provision("bad0@sp.example.com")
    wrong_type = dict(ok, eventId="bad-type")
    wrong_type["workspace"] = dict(ok["workspace"], displayName=42)
    missing = bwtest.provision("bad1@sp.example.com", displayName=None, event_id="bad-missing")
    unknown = dict(bwtest.remove("bad2@sp.example.com"), type="workspace.explode",
                   eventId="bad-unknown")
    long_user = "u" * 300
    return [
        ("bad0@sp.example.com", '{"eventId": "x", "type": ', "invalid JSON"),
        ("bad0@sp.example.com", json.dumps(wrong_type), "displayName"),
        ("bad1@sp.example.com", json.dumps(missing), "displayName"),
        ("bad2@sp.example.com", json.dumps(unknown), "unknown event type"),
        (long_user, json.dumps(bwtest.provision(long_user, event_id="bad-long")), "longer than"),
        ("bad3@sp.example.com", "", "empty message"),
        (None, json.dumps(bwtest.provision("bad4@sp.example.com", event_id="bad-nullkey")),
         "null key"),
        ("someone-else", json.dumps(bwtest.provision("bad5@sp.example.com", event_id="bad-key")),
         "key does not match"),
        ("bad6@sp.example.com", "[1,2,3]", "not a JSON object"),
    ]


def check_results(results, events, bad):
    by_event = bwtest.results_by_event(results)
    for ev in events:
        got = by_event.get(ev["eventId"], [])
        assert len(got) == 1, "event %s has %d results" % (ev["eventId"], len(got))
        r = got[0]
        assert r["outcome"] == "succeeded", r
        assert r["userId"] == ev["workspace"]["userId"], r
        assert r["trackingId"] == "bwprovd_" + ev["eventId"], r
        assert r["workspaceId"], r
        assert r["error"] is None and r["source"]["topic"] == bwtest.TOPIC_EVENTS, r
    rejected = [r for rs in by_event.values() for r in rs
                if isinstance(r, dict) and r.get("outcome") == "rejected"]
    assert len(rejected) == len(bad), "%d rejected, expected %d" % (len(rejected), len(bad))
    for r in rejected:
        assert r["error"]["kind"] == "invalid" and r["httpStatus"] is None, r
    reasons = sorted(r["error"]["message"] for r in rejected)
    for _, _, frag in bad:
        assert any(frag in m for m in reasons), "no rejection mentions %r: %s" % (frag, reasons)


def check_dlq(dlq, bad):
    assert len(dlq) == len(bad), "%d DLQ records, expected %d" % (len(dlq), len(bad))
    values = sorted((m["value"] or "") for m in dlq)
    assert values == sorted(v for _, v, _ in bad), "DLQ values differ from the originals"
    for m in dlq:
        assert m["headers"].get("bwprovd-error", "").startswith("invalid: "), m
        topic, part, off = m["headers"]["bwprovd-source"].rsplit("/", 2)
        assert topic == bwtest.TOPIC_EVENTS and int(part) >= 0 and int(off) >= 0, m


def check_simulator(sim, events):
    reqs = sim.all_requests()
    assert all(r["auth"] for r in reqs), "a request reached the API without the token"
    st = sim.stats()
    assert st["unauthorized"] == 0, st
    assert st["violations"]["concurrentUser"] == 0, st
    per_user = {}
    for r in sorted(reqs, key=lambda r: r["seq"]):
        per_user.setdefault(r["userId"], []).append((r["method"], r["status"]))
    users = {ev["workspace"]["userId"] for ev in events}
    for u in users:
        assert per_user.get(u) == [("POST", 200), ("PUT", 200), ("DELETE", 204)], \
            "%s: %s" % (u, per_user.get(u))
    assert sim.workspaces()["count"] == 0
    assert st["createdTotal"] == USERS, st


def check_state(state):
    """Every user ends with a removed marker: a record compaction keeps,
    never a bare tombstone (SPEC §4), naming the removed workspace."""
    last = {}
    for m in state:
        last[m["key"]] = m["value"]
    assert len(last) == USERS, len(last)
    for user, v in last.items():
        assert v is not None, "%s: a bare tombstone" % user
        rec = json.loads(v)
        assert rec.get("removed") is True and rec.get("kind") == "workspace" and \
            rec.get("userId") == user and rec.get("workspaceId") and rec.get("source"), \
            "%s: last state record is not a removed marker: %s" % (user, v)


def main():
    rng = random.Random(20261127)
    events = workload(rng)
    bad = malformed()
    fixed = [bwtest.event_record(ev) for ev in events]
    for k, v, _ in bad:  # malformed ones land between valid ones
        fixed.insert(rng.randrange(len(fixed) + 1), (k, v))

    with bwtest.Kafka(partitions=4) as mk, bwtest.WebSim() as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config={"webex.max_in_flight": 32}) as d:
        d.wait_ready(60)
        mk.produce(bwtest.TOPIC_EVENTS, fixed)
        total = len(fixed)
        results = mk.consume(bwtest.TOPIC_RESULTS, count=total, timeout=120)
        assert len(results) == total, "%d results for %d events" % (len(results), total)
        check_results(results, events, bad)
        check_dlq(mk.consume(bwtest.TOPIC_DLQ), bad)
        check_simulator(sim, events)
        check_state(mk.consume(bwtest.TOPIC_STATE))
        statuses = d.statuses()
        assert statuses, "no STATUS= notification"
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
        keys = [n.key for n in d.notifications]
        assert "READY" in keys and "STOPPING" in keys, keys
        assert keys.index("READY") < keys.index("STOPPING"), keys
    print("mixed workload: %d events (%d malformed), all results correct" % (total, len(bad)))


if __name__ == "__main__":
    main()
