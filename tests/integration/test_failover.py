#!/usr/bin/python3
"""Scenario (real Apache Kafka only): broker failover.

Three brokers (KRaft, each broker and controller), every topic with
replication factor 3 and min.insync.replicas=2; one bwprovd with the
product's defaults. While a workload runs (800 users: provision, two
updates, and a remove for every other user; simulator latency 50 ms, 16
requests in flight, so about 35 s of work), the test SIGKILLs, one after
the other, the broker leading an events partition, then the one leading
a results partition, then the one leading a state partition (each chosen
when its turn comes: leadership moves after every kill), and starts each
again 5 s later, before the next kill. One broker down at a time leaves
two in sync, so acks=all writes go on.

Asserted: every event has a result and the last one succeeded (a replay
after a coordinator move may add `replayed` duplicates); per-user order at
the simulator, also across replays; no concurrentUser violation; one
workspace per user (createdTotal == users); the simulator's workspaces ==
the workload == the state topic's latest record per user; the daemon kept
running and stops with exit 0.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 800
IN_FLIGHT = 8
DOWN_S = 5.0
# (topic, partition, answered requests before the kill)
KILLS = ((bwtest.TOPIC_EVENTS, 0, 300), (bwtest.TOPIC_RESULTS, 1, 1100),
         (bwtest.TOPIC_STATE, 2, 1900))


def expectation(ev):
    if ev["type"] == "workspace.remove":
        return scenario.succeeded((None, "replayed", "already_removed"))
    return scenario.succeeded((None, "replayed"))


def main():
    if not bwtest.real_kafka():
        bwtest.skip("broker failover needs real brokers (BWTEST_KAFKA=real)")
    t0 = time.monotonic()
    wl = scenario.Workload("fo", USERS, seed=77, updates=2, keep_every=2)
    config = {"webex.max_in_flight": IN_FLIGHT}
    with bwtest.Kafka(partitions=4, brokers=3, topic_config={"min.insync.replicas": 2}) as mk, \
            bwtest.WebSim(faults={"latencyMs": 100}) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
        d.wait_ready(90)
        wl.produce(mk)
        log("produced %d events for %d users", len(wl), USERS)
        killed = []
        for topic, part, at in KILLS:
            scenario.wait_requests(sim, at, timeout=120)
            node = mk.leader_of(topic, part)
            assert node > 0, "%s [%d] has no leader" % (topic, part)
            mk.kill(node)
            killed.append((topic, part, node, sim.stats()["requests"]))
            log("SIGKILL broker %d (leader of %s [%d]) after %d requests", node, topic, part,
                killed[-1][3])
            time.sleep(DOWN_S)
            assert d.running(), "bwprovd exited with a broker down:\n" + d.log_tail()
            mk.start_node(node)
            log("broker %d back", node)
        assert killed[-1][3] < len(wl), "the run was over before the last kill"
        results = scenario.wait_all_results(mk, wl, timeout=180)
        reqs = scenario.api_requests(sim)
        grouped = scenario.check_results(wl, results, expect=expectation, exactly_one=False)
        scenario.check_order(wl, reqs)
        st = scenario.check_no_violations(sim, reqs)
        scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
        assert st["createdTotal"] == USERS, "createdTotal %d, %d users" % (
            st["createdTotal"], USERS)
        assert d.stop(timeout=60) == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
    dups = scenario.duplicates(grouped)
    print("FAILOVER: leaders of %s killed one at a time; %d events, %d duplicate results, "
          "createdTotal %d" % (", ".join("%s[%d]=%d" % k[:3] for k in killed), len(wl), dups,
                               st["createdTotal"]), flush=True)
    scenario.report("failover", t0, events=len(wl), duplicates=dups,
                    created=st["createdTotal"])


if __name__ == "__main__":
    main()
