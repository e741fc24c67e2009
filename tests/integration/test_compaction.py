#!/usr/bin/python3
"""Scenario: the state topic after log compaction rebuilds the same map, and
a replay of the whole events topic against it changes nothing (contract
point 4: removed markers instead of bare tombstones).

One daemon (product defaults) runs a workload of 130 users:

* 40 "keep": provision, update (end provisioned);
* 40 "gone": provision, update, remove;
* 10 "again": provision, remove, provision (end with a second workspace);
* 15 "ren": provision A, update A, rename A->N (update keyed A with
  newUserId N), then update N (keyed N);
* 15 "renrm": as "ren", then remove N (keyed N);
* 10 "renonly": provision A, rename A->N, nothing later.

Events keyed by a renamed user's new userId N are produced only once every
other event has its result (phase 2), so this test does not depend on
contract point 6 (test_rename_order.py covers that). Every event of the
first run must succeed with no note.

Then:

1. the full state topic: the latest record of every key is what point 4
   asks for: a removed marker (``"removed": true``, userId, the removed
   workspaceId, the remove's eventId and source, updatedAt,
   ``"kind": "workspace"``) for "gone" users, renamed-away A's and removed
   N's; a live record with ``"kind": "workspace"`` and the user's
   workspace id for everybody else;
2. the first daemon is restarted (same object: same group, same state
   directory) to log how many workspaces a loader rebuilds from the full
   topic ("state table caught up; ... N workspaces known"), then stopped;
3. the state topic is compacted:
   * on the mock cluster (which never compacts) as Kafka would do it once
     the tombstone retention has passed: per key only the latest record;
     keys whose latest record is a bare tombstone are dropped. The
     survivors go into a fresh topic (mk.create_topic, same partition
     count and partition per record) with kcat, keys, values and headers
     unchanged (see mapcheck.copy_records; kcat cannot keep the original
     timestamps, which bwprovd does not read);
   * on a real broker (ctest -L kafka) by Kafka itself: the state topic is
     created compacting aggressively (STATE_COMPACT_FAST: segments roll
     every 500 ms, any dirt is cleanable, tombstones kept 1 s; the broker's
     cleaner looks every 500 ms). A third phase, 40 more users produced a
     second after the rest, appends to every state partition so that the
     first two phases' records all lie in closed segments, which Kafka
     compacts (the active segment never is). The test waits until no key
     has two records below that point, prints the log start and end
     offsets and the records left, and checks that the latest record per
     key is unchanged;
4. a FRESH daemon (new Daemon object: new STATE_DIRECTORY, so no journal)
   with topic.state = the compacted topic and a new kafka.group.id
   replays the events topic from the earliest offset (auto.offset.reset
   is earliest).

Asserted about the replay: the simulator sees no POST (createdTotal
unchanged), no removed user is recreated, the simulator's workspaces are
exactly what they were before, every replayed event has exactly one result
and it is `succeeded`, and the new daemon's "workspaces known" at catch-up
equals the restarted first daemon's and the simulator's workspace count.

Which replays the table can recognise (SPEC §4 rule: the user's latest
record, live or marker, comes from the same events partition at an offset
not below the event's), and so which notes are accepted:

* "keep", "again", "gone": every event of the user is in the user's own
  partition at or below its latest record (the last update, the second
  provision, the remove marker): `replayed` only. Without the marker a
  "gone" user is unknown after compaction and its provision is re-sent:
  that is the failure today's main shows.
* A (renamed away): A's marker comes from the rename, keyed A, at or above
  all of A's events: `replayed` only.
* N (events keyed N): N's latest record is the last N-keyed event (update
  or remove marker) in N's own partition, so they are recognisable too and
  `replayed` is expected; but the contract lets "a renamed user's later
  events" be re-sent as idempotent PUTs (an implementation may know a
  renamed user's record only by the rename's source, in A's partition).
  Accepted for them: note None for an update (a PUT answered 200 that
  changes nothing: the workspace comparison below would catch a change)
  and `already_removed` for a remove (a DELETE of the gone workspace
  answered 404). Any request of the replay must be such a PUT/DELETE of
  an N-keyed event; a POST is never acceptable.

Runtime ~35 s (the restart waits out the mock cluster's 6 s session of
the first run's member).
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mapcheck  # noqa: E402
from mapcheck import bwtest, log, scenario  # noqa: E402

TAG = "cp"
PARTITIONS = 4  # the harness's default for every topic
COMPACTED = "broadworks.provisioning.state.compacted"
# The replay writes its results and dead letters to topics of its own, so
# its results can be counted apart from the first run's (the product's
# topic names are settings; nothing else differs).
REPLAY_RESULTS = "broadworks.provisioning.results.replay"
REPLAY_DLQ = "broadworks.provisioning.dlq.replay"
REPLAY_GROUP = "bwprovd-replay"
GROUPS = (("keep", 40), ("gone", 40), ("again", 10), ("ren", 15), ("renrm", 15),
          ("renonly", 10), ("tail", 40))
# Real brokers: compact the state topic within seconds (see above).
STATE_COMPACT_FAST = {"segment.ms": 500, "min.cleanable.dirty.ratio": 0.01,
                      "delete.retention.ms": 1000, "min.compaction.lag.ms": 0}
BROKER_CLEANER_FAST = {"log.cleaner.backoff.ms": 500}
TAIL_AFTER_S = 1.0  # > segment.ms: the tail's records open new segments
MARKER_FIELDS = ("removed", "userId", "workspaceId", "eventId", "source", "updatedAt", "kind")


class Plan:
    """The workload: chains, phases and what each key must end as."""

    def __init__(self):
        self.wl = mapcheck.empty_workload(TAG)
        self.kind = {}         # chain owner (first userId) -> group
        self.new_user = {}     # A -> N
        self.phase1, self.phase2, self.phase3 = [], [], []
        self.n_keyed = set()   # eventIds keyed by a renamed user's new userId
        chains1, chains2, chains3 = [], [], []
        n = 0
        for group, count in GROUPS:
            for _ in range(count):
                i = n
                n += 1
                u = "%08d@%s.sp.example.com" % (50000000 + i, TAG)
                eid = lambda k: "%s-%s-%03d-%d" % (TAG, group, i, k)  # noqa: E731
                prov = dict(primaryPhoneNumber="+1-240-555-%04d" % i, extension="5%04d" % i,
                            displayName="Room %d" % i, provisioningId="prov-%s-%d" % (TAG, i))
                c1 = [bwtest.provision(u, event_id=eid(0), **prov)]
                c2 = []
                if group in ("keep", "gone", "ren", "renrm"):
                    c1.append(bwtest.update(u, event_id=eid(1), extension="6%04d" % i))
                if group == "gone":
                    c1.append(bwtest.remove(u, event_id=eid(2)))
                if group == "again":
                    c1.append(bwtest.remove(u, event_id=eid(1)))
                    c1.append(bwtest.provision(u, event_id=eid(2), **dict(
                        prov, displayName="Room %d again" % i)))
                if group.startswith("ren"):
                    nu = "%08d@%s-new.sp.example.com" % (50000000 + i, TAG)
                    self.new_user[u] = nu
                    c1.append(bwtest.update(u, event_id=eid(5), newUserId=nu))
                    if group in ("ren", "renrm"):
                        c2.append(bwtest.update(nu, event_id=eid(6),
                                                primaryPhoneNumber="+1-301-555-%04d" % i))
                    if group == "renrm":
                        c2.append(bwtest.remove(nu, event_id=eid(7)))
                self.kind[u] = group
                self.wl.add_chain(u, c1 + c2, final=None)
                if group == "tail":
                    chains3.append(c1)
                else:
                    chains1.append(c1)
                    chains2.append(c2)
                self.n_keyed.update(ev["eventId"] for ev in c2)
        self.phase1 = mapcheck.interleave(chains1, seed=41)
        self.phase2 = mapcheck.interleave(chains2, seed=42)
        self.phase3 = mapcheck.interleave(chains3, seed=43)

    def expected_live(self, ws_of):
        """``{userId: (workspace id, {field: value})}`` after the first run;
        ``ws_of``: {eventId: workspaceId from its result}."""
        live = {}
        for u, chain in self.wl.chains.items():
            g = self.kind[u]
            prov = [ev for ev in chain if ev["type"] == "workspace.provision"][-1]
            ws = ws_of[prov["eventId"]]
            fields = dict(prov["workspace"])
            for ev in chain[1:]:
                if ev["type"] == "workspace.update":
                    fields.update({k: v for k, v in ev["workspace"].items()
                                   if k in ("primaryPhoneNumber", "extension")})
            fields.pop("newUserId", None)
            if g in ("keep", "again", "tail"):
                live[u] = (ws, fields)
            elif g in ("ren", "renonly"):
                fields["userId"] = self.new_user[u]
                live[self.new_user[u]] = (ws, fields)
        return live

    def expected_markers(self, ws_of, grouped):
        """``{userId: (removed workspace id, eventId, source)}`` of every
        key whose latest state record must be a removed marker."""
        out = {}
        for u, chain in self.wl.chains.items():
            g = self.kind[u]
            prov = [ev for ev in chain if ev["type"] == "workspace.provision"][-1]
            ws = ws_of[prov["eventId"]]
            if g == "gone":
                rm = chain[-1]
                out[u] = (ws, rm["eventId"], grouped[rm["eventId"]][-1]["source"])
            if g.startswith("ren"):
                ren = [ev for ev in chain if ev["workspace"].get("newUserId")][0]
                out[u] = (ws, ren["eventId"], grouped[ren["eventId"]][-1]["source"])
            if g == "renrm":
                rm = chain[-1]
                out[self.new_user[u]] = (ws, rm["eventId"], grouped[rm["eventId"]][-1]["source"])
        return out


def check_state_topic(records, live, markers):
    """Point 4 on the full state topic: latest record per key. Returns one
    summary line per kind of problem (with a few examples)."""
    out = []
    kindless = [m for m in records if isinstance(mapcheck.parse_value(m), dict)
                and mapcheck.parse_value(m).get("kind") != "workspace"]
    if kindless:
        m = kindless[0]
        out.append("%d of %d state records lack \"kind\": \"workspace\", e.g. %s/%d "
                   "(key %s): %s" % (len(kindless), len(records), m["partition"], m["offset"],
                                     m["key"], m["value"][:160]))
    last = mapcheck.latest_per_key(records)
    wrong_live = []
    for u, (ws, _fields) in sorted(live.items()):
        m = last.get(u)
        v = mapcheck.parse_value(m) if m else "(no record)"
        if not isinstance(v, dict) or v.get("removed") or v.get("workspaceId") != ws:
            wrong_live.append("%s: %r (expected the live record of %s)" % (u, v, ws))
    if wrong_live:
        out.append("%d live user(s) whose latest state record is not their live record, e.g. "
                   "%s" % (len(wrong_live), "; ".join(wrong_live[:3])))
    tomb, wrong = [], []
    for u, (ws, eid, src) in sorted(markers.items()):
        m = last.get(u)
        v = mapcheck.parse_value(m) if m else "(no record)"
        if m is not None and v is None:
            tomb.append("%s (%s/%d)" % (u, m["partition"], m["offset"]))
            continue
        if not isinstance(v, dict):
            wrong.append("%s: %r" % (u, v))
            continue
        missing = [f for f in MARKER_FIELDS if f not in v]
        if missing or v.get("removed") is not True or v.get("userId") != u \
                or v.get("workspaceId") != ws or v.get("eventId") != eid \
                or v.get("kind") != "workspace" \
                or (v.get("source") or {}).get("partition") != src["partition"] \
                or (v.get("source") or {}).get("offset") != src["offset"]:
            wrong.append("%s: %r; expected removed=true, workspaceId %s, eventId %s, source %s, "
                         "kind workspace%s" % (u, v, ws, eid, src,
                                               ", missing %s" % missing if missing else ""))
    if tomb:
        out.append("%d of %d removed/renamed-away user(s) end with a bare tombstone instead of "
                   "a removed marker (compaction deletes them), e.g. %s"
                   % (len(tomb), len(markers), ", ".join(tomb[:3])))
    if wrong:
        out.append("%d removed marker(s) wrong, e.g. %s" % (len(wrong), "; ".join(wrong[:3])))
    return out


def end_offsets(mk, topic):
    """``{partition: end offset}`` (-1: the high watermark), real brokers
    only; {} on the mock."""
    return mk.offsets(topic, -1) if bwtest.real_kafka() else {}


def copy_compacted(mk, full):
    """The mock cluster never compacts: copy what compaction would keep
    into a fresh topic. Returns the survivors."""
    survivors = mapcheck.compact(full)
    mk.create_topic(COMPACTED, mk.topics[bwtest.TOPIC_STATE])
    mapcheck.copy_records(mk, COMPACTED, survivors)
    copied = mk.consume(COMPACTED, count=len(survivors), timeout=30)
    assert sorted((m["key"], m["value"]) for m in copied) == \
        sorted((m["key"], m["value"]) for m in survivors), "compacted copy differs"
    return survivors


def duplicated_below(records, tail_from):
    """Keys with more than one record below ``tail_from`` (the offsets
    where the tail began: everything below lies in closed segments)."""
    seen, dup = set(), set()
    for m in records:
        if m["offset"] < tail_from.get(m["partition"], 0):
            k = (m["partition"], m["key"])
            (dup if k in seen else seen).add(k)
    return dup


def real_compaction(mk, full, tail_from):
    """Waits until Kafka compacted the state topic's closed segments (no
    key twice below the tail, fewer records there than were written),
    checks that compaction kept the latest record of every key, prints the
    offsets. Returns (topic, records). With segments this short the
    cleaner also works during the run, so ``full`` may already lack some
    records."""
    ends = end_offsets(mk, bwtest.TOPIC_STATE)
    grew = [p for p in tail_from if ends.get(p, 0) <= tail_from[p]]
    assert not grew, "the tail appended nothing to state partition(s) %s: their records " \
        "stay in the active segment, which Kafka never compacts" % grew
    starts = mk.offsets(bwtest.TOPIC_STATE, -2)
    written = sum(tail_from[p] - starts.get(p, 0) for p in tail_from)

    def compacted():
        recs = mk.consume(bwtest.TOPIC_STATE)
        below = [m for m in recs if m["offset"] < tail_from.get(m["partition"], 0)]
        return recs if len(below) < written and not duplicated_below(recs, tail_from) else None

    left = bwtest.wait_until(compacted, 90, 1.0, "the state topic compacted by Kafka")
    below = sum(1 for m in left if m["offset"] < tail_from.get(m["partition"], 0))
    log("real compaction: below the tail %d records written, %d left (log start offsets %s, "
        "tail from %s, end offsets %s); %d records in all", written, below, starts, tail_from,
        ends, len(left))
    latest = lambda recs: {k: (m["value"], m["headers"]) for k, m in  # noqa: E731
                           mapcheck.latest_per_key(recs).items()}
    assert latest(left) == latest(full), "compaction changed a key's latest record"
    return bwtest.TOPIC_STATE, left


def main():
    t0 = time.monotonic()
    plan = Plan()
    wl = plan.wl
    n_events = len(wl.by_id)
    log("workload: %d users, %d events (%d in phase 2, keyed by renamed users' new ids)",
        len(wl.users), n_events, len(plan.phase2))
    problems = []
    with bwtest.Kafka(partitions=PARTITIONS, state_config=STATE_COMPACT_FAST,
                      broker_config=BROKER_CLEANER_FAST) as mk, bwtest.WebSim() as sim:
        # -- the first run: product defaults ------------------------------
        with bwtest.Daemon(mk.bootstrap, sim) as d1:
            d1.wait_ready(60)
            mk.produce(bwtest.TOPIC_EVENTS, plan.phase1, timeout=60)
            scenario.wait_results(mk, [e["eventId"] for e in plan.phase1], 60, what="phase 1")
            mk.produce(bwtest.TOPIC_EVENTS, plan.phase2, timeout=60)
            scenario.wait_results(mk, [e["eventId"] for e in plan.phase2], 60, what="phase 2")
            tail_from = end_offsets(mk, bwtest.TOPIC_STATE)
            time.sleep(TAIL_AFTER_S)
            mk.produce(bwtest.TOPIC_EVENTS, plan.phase3, timeout=60)
            results = scenario.wait_all_results(mk, wl, 60)
            grouped = scenario.check_results(wl, results)  # all succeeded, no note
            ws_of = {eid: rs[-1].get("workspaceId") for eid, rs in grouped.items()}
            st1 = sim.stats()
            by_id_before = mapcheck.sim_by_id(sim)
            live = plan.expected_live(ws_of)
            markers = plan.expected_markers(ws_of, grouped)
            have = {w["userId"]: w for w in by_id_before.values()}
            assert set(have) == set(live) and all(
                have[u]["id"] == ws and all(have[u].get(f) == v for f, v in fl.items())
                for u, (ws, fl) in live.items()), \
                "first run: simulator workspaces differ from the workload: %s vs %s" % (
                    sorted(have), sorted(live))
            log("first run done: %d workspaces, createdTotal %d", len(by_id_before),
                st1["createdTotal"])
            full = mk.consume(bwtest.TOPIC_STATE)
            problems += check_state_topic(full, live, markers)
            # The first daemon's map, as its loader rebuilds it from the
            # full topic: restart it (its group's old member is kept by the
            # mock cluster until the 6 s session timeout, hence 60 s).
            assert d1.stop() == 0, "first daemon: SIGTERM did not exit 0:\n" + d1.log_tail()
            d1.start()
            d1.wait_ready(60)
            known_full = mapcheck.wait_caught_up(d1, 60)
            assert d1.stop() == 0, "first daemon (restart): exit not 0:\n" + d1.log_tail()
        full = mk.consume(bwtest.TOPIC_STATE)
        if bwtest.real_kafka():
            compacted_topic, survivors = real_compaction(mk, full, tail_from)
        else:
            compacted_topic, survivors = COMPACTED, copy_compacted(mk, full)
        mk.create_topic(REPLAY_RESULTS, PARTITIONS)
        mk.create_topic(REPLAY_DLQ, PARTITIONS)
        log("state topic: %d records, %d keys, %d survive compaction (%d bare tombstones "
            "dropped as latest)", len(full), len(mapcheck.latest_per_key(full)), len(survivors),
            sum(1 for m in mapcheck.latest_per_key(full).values() if m["value"] is None))

        # -- the replay: fresh daemon on the compacted topic ---------------
        seq0 = mapcheck.last_seq(sim)
        cfg = {"topic.state": compacted_topic,    # the point of the test
               "kafka.group.id": REPLAY_GROUP,    # no committed offsets: replay from earliest
               "topic.results": REPLAY_RESULTS,   # count the replay's results apart
               "topic.dlq": REPLAY_DLQ}
        with bwtest.Daemon(mk.bootstrap, sim, config=cfg) as d2:
            d2.wait_ready(60)
            known_compacted = mapcheck.wait_caught_up(d2, 60)
            # Bounded: a correct daemon answers from its table at once; 90 s
            # also covers state.lookup_wait_ms (10 s) for any provision
            # answered 409 while the table knows nothing.
            deadline = time.monotonic() + 90
            while True:
                rep = scenario.parse_results(mk.consume(REPLAY_RESULTS, timeout=30))
                if {r.get("eventId") for r in rep} >= set(wl.by_id) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            time.sleep(1.0)  # a second result for an event would show by now
            rep = scenario.parse_results(mk.consume(REPLAY_RESULTS, timeout=30))
            replay_dlq = mk.consume(REPLAY_DLQ)
            assert d2.stop() == 0, "replay daemon: SIGTERM did not exit 0:\n" + d2.log_tail()
        reqs = [r for r in sim.all_requests(since=seq0) if r["path"].startswith("/v1/broad")]
        st2 = sim.stats()
        by_id_after = mapcheck.sim_by_id(sim)

    # -- what the replay did ---------------------------------------------
    removed_users = set(markers)
    posts = [r for r in reqs if r["method"] == "POST"]
    if posts:
        problems.append("%d POST(s) during the replay, e.g. %s" % (
            len(posts), ["%s %s" % (r["userId"], r["status"]) for r in posts[:6]]))
    if st2["createdTotal"] != st1["createdTotal"]:
        problems.append("createdTotal %d before the replay, %d after: the replay created %d "
                        "workspace(s)" % (st1["createdTotal"], st2["createdTotal"],
                                          st2["createdTotal"] - st1["createdTotal"]))
    recreated = sorted({r["userId"] for r in posts if r["status"] == 200
                        and r["userId"] in removed_users})
    if recreated:
        problems.append("%d removed user(s) recreated during the replay, e.g. %s"
                        % (len(recreated), recreated[:5]))
    gone_ws = sorted(set(by_id_before) - set(by_id_after))
    new_ws = sorted(set(by_id_after) - set(by_id_before))
    changed = sorted(i for i in set(by_id_before) & set(by_id_after)
                     if by_id_before[i] != by_id_after[i])
    if gone_ws or new_ws or changed:
        problems.append("simulator workspaces changed by the replay: %d removed, %d new "
                        "(users %s), %d changed" % (len(gone_ws), len(new_ws),
                                        sorted(by_id_after[i]["userId"] for i in new_ws)[:5],
                                        len(changed)))
    rgrouped = scenario.by_event(rep)
    bad = []
    bad_kinds = {}  # (group, event type) -> first eventId: diverse examples
    notes = {}
    for eid, ev in wl.by_id.items():
        rs = rgrouped.get(eid, [])
        if len(rs) != 1:
            bad.append("%s: %d results in the replay" % (eid, len(rs)))
            if not rs:
                continue
        r = rs[-1]
        ok = {"replayed"}
        if eid in plan.n_keyed:
            ok.add(None if ev["type"] == "workspace.update" else "already_removed")
        notes[r.get("note")] = notes.get(r.get("note"), 0) + 1
        if r.get("outcome") != "succeeded" or r.get("note") not in ok:
            owner = wl.where[eid][0]
            bad_kinds.setdefault((plan.kind[owner], ev["type"]), eid)
            bad.append("%s (%s %s): %s, expected succeeded with note in %s"
                       % (eid, ev["type"], ev["workspace"]["userId"], mapcheck.fmt_result(r),
                          sorted(map(str, ok))))
    if bad:
        firsts = set(bad_kinds.values())
        examples = [b for b in bad if b.split(" ", 1)[0] in firsts]
        problems.append("%d of %d replayed event(s) with a wrong result; first of each group "
                        "and type:\n    %s" % (len(bad), n_events, "\n    ".join(examples)))
    stray = [r for r in reqs if scenario.event_of(wl, r) not in plan.n_keyed
             or r["method"] not in ("PUT", "DELETE")]
    if stray:
        problems.append("%d request(s) during the replay other than a re-sent PUT/DELETE of a "
                        "renamed user's later event, e.g. %s" % (
                            len(stray), ["%s %s %s %d" % (r["method"], r["path"][:40], r["userId"],
                                                          r["status"]) for r in stray[:5]]))
    if replay_dlq:
        reasons = sorted({(m["headers"].get("bwprovd-error") or "")[:60] for m in replay_dlq})
        problems.append("%d record(s) in the replay's DLQ: %s" % (len(replay_dlq), reasons[:4]))
    if not (known_compacted == known_full == len(by_id_before)):
        problems.append("workspaces known at catch-up: %d from the compacted topic, %d from the "
                        "full topic (first daemon restarted), simulator has %d"
                        % (known_compacted, known_full, len(by_id_before)))
    log("replay: %d results, notes %s, %d request(s) (%d POST), createdTotal %d -> %d; "
        "workspaces known: full %d, compacted %d, simulator %d", len(rep), notes, len(reqs),
        len(posts), st1["createdTotal"], st2["createdTotal"], known_full, known_compacted,
        len(by_id_before))
    mapcheck.fail_if(problems, "the map did not survive compaction")
    scenario.report("compaction", t0, events=n_events, survivors=len(survivors),
                    replay_requests=len(reqs))


if __name__ == "__main__":
    main()
