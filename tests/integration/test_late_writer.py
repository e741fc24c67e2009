#!/usr/bin/python3
"""A late writer cannot leave an old record as a user's last (contract point
3): an instance that had not yet learnt it lost a partition may still write
a state record for an event the new owner has since overtaken. Readers
ignore such a record (it is older: same partition, lower source offset),
but compaction keeps the log's *last* record per key, whatever its source.
So the owner of the partition, reading the old record, publishes its newer
one again.

Here the late writer is played by kcat: 40 users are provisioned and
updated through the daemon; then, for each, a record is produced with the
source of the user's provision (an older offset), another workspace id and
another writer id, as a previous owner finishing late would. Asserted:

* the daemon logs that it re-published each user's current record;
* in the state topic, every user's last record is again the current one
  (the source offset of the update, the right workspace id), so a topic
  compacted to the last record per key is right;
* a fresh daemon reading the topic compacted that way (a new topic with
  the last record per key) holds the right workspace for every user: an
  update through it reaches the user's own workspace and no other.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mapcheck  # noqa: E402

scenario, bwtest, log = mapcheck.scenario, mapcheck.bwtest, mapcheck.log
USERS = 40


def user(i):
    return "%08d@lw.sp.example.com" % (50000000 + i)


def stale_record(m, wrong_id):
    """The user's record as a late previous owner would write it: the
    provision's source (one offset below the update's), another id."""
    v = json.loads(m["value"])
    src = dict(v["source"], offset=v["source"]["offset"] - 1)
    v.update(workspaceId=wrong_id, source=src, eventId="late-" + v["userId"])
    hdr = "%s/%d/%d" % (src["topic"], src["partition"], src["offset"])
    return v, hdr


def main():
    chains = [[bwtest.provision(user(i), event_id="lw-%d-0" % i),
               bwtest.update(user(i), event_id="lw-%d-1" % i, extension="7%04d" % i)]
              for i in range(USERS)]
    with bwtest.Kafka(partitions=4, topics={"lw.compacted": 4}) as mk, \
            bwtest.WebSim() as sim, bwtest.Daemon(mk.bootstrap, sim) as d:
        d.wait_ready(60)
        mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for c in chains for e in c])
        want = {c[-1]["eventId"] for c in chains}
        res = scenario.wait_results(mk, want, timeout=60)
        assert all(r["outcome"] == "succeeded" for r in res), res[:3]
        ids = mapcheck.sim_by_user(sim)
        assert len(ids) == USERS, ids
        before = mapcheck.latest_per_key(mk.consume(bwtest.TOPIC_STATE))
        # A wrong id for each user: another user's workspace.
        late = []
        for i in range(USERS):
            m = before[user(i)]
            v, hdr = stale_record(m, ids[user((i + 1) % USERS)]["id"])
            late.append((m["partition"], user(i), json.dumps(v), hdr))
        for part in sorted({p for p, _, _, _ in late}):
            for _, key, value, hdr in [x for x in late if x[0] == part]:
                mk.produce(bwtest.TOPIC_STATE, [(key, value)], partition=part,
                           headers={"bwprovd-source": hdr, "bwprovd-writer": "late-writer"})
        bwtest.wait_until(lambda: sum("published the current one again" in x
                                      for x in d.log_lines()) >= USERS,
                          timeout=30, desc="the daemon re-publishing every user's record")
        after = mapcheck.latest_per_key(mk.consume(bwtest.TOPIC_STATE))
        problems = []
        for i in range(USERS):
            b, a = json.loads(before[user(i)]["value"]), json.loads(after[user(i)]["value"])
            if a.get("workspaceId") != ids[user(i)]["id"] or \
                    a["source"]["offset"] != b["source"]["offset"]:
                problems.append("%s: last state record %s, expected workspace %s from offset %d"
                                % (user(i), a, ids[user(i)]["id"], b["source"]["offset"]))
        mapcheck.fail_if(problems, "a late writer's record stayed the last")
        # Compact as Kafka would and read it with a fresh daemon.
        mapcheck.copy_records(mk, "lw.compacted", mapcheck.compact(
            mk.consume(bwtest.TOPIC_STATE)))
        assert d.stop() == 0
        fresh = bwtest.Daemon(mk.bootstrap, sim, config={"topic.state": "lw.compacted",
                                                         "kafka.group.id": "lw-fresh"})
        with fresh:
            fresh.wait_ready(60)
            probe = [bwtest.update(user(i), event_id="lw-%d-2" % i, extension="8%04d" % i)
                     for i in range(USERS)]
            mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for e in probe])
            res = scenario.wait_results(mk, {e["eventId"] for e in probe}, timeout=90)
            assert fresh.stop() == 0
    final = {r["eventId"]: r for r in res if r["eventId"].endswith("-2")}
    bad = [r for r in final.values() if r["outcome"] != "succeeded"
           or r["workspaceId"] != ids[r["userId"]]["id"]]
    assert not bad, "updates after compaction reached the wrong workspace: %s" % bad[:3]
    print("late writer: %d stale records re-asserted over; compacted topic right" % USERS)


if __name__ == "__main__":
    main()
