#!/usr/bin/python3
"""Scenario: one poison user. Every request about one provisioned user is
answered 503 after 400 ms (a simulator script entry for its userId with a
large count); retry.max_attempts=3.

Setup: the poison user is provisioned while the API is healthy. Then the
script is armed and 453 events are produced: 150 healthy users x
(provision, update, remove) with the poison user's update, update, remove
interleaved early among them.

Asserts: the poison user's three events end `failed`, error kind
`exhausted`, httpStatus 503, attempts 3, exactly three requests each at the
simulator, and each is copied to the DLQ (original key and bytes,
`bwprovd-error: exhausted: ...`, `bwprovd-source` = the event's
topic/partition/offset); every other event succeeded exactly once and is
not held up by the poison user: all their results are there while the
poison user is still being retried (it has not got all its results yet),
and the simulator answered the last healthy request before the poison
user's last attempt arrived. Plus per-user order, zero violations, the
healthy users' end state, and the poison user's workspace untouched.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 150
POISON = "99999999@poison.sp.example.com"


def main():
    t0 = time.monotonic()
    wl = scenario.Workload("ps", USERS, seed=3)
    prov = bwtest.provision(POISON, event_id="poison-0", extension="9999",
                            displayName="Poison room", provisioningId="prov-poison")
    poison = [bwtest.update(POISON, event_id="poison-1", extension="1111"),
              bwtest.update(POISON, event_id="poison-2", extension="2222"),
              bwtest.remove(POISON, event_id="poison-3")]
    poison_ids = [ev["eventId"] for ev in poison]
    wl.add_chain(POISON, [prov] + poison, final={
        "extension": "9999", "displayName": "Poison room", "provisioningId": "prov-poison"})
    # Poison events early in the stream, among the first healthy ones.
    events = list(wl.events)
    for i, ev in zip((3, 5, 8), poison):
        events.insert(i, ev)
    config = {"retry.max_attempts": 3, "retry.backoff_initial_ms": 100,
              "retry.backoff_max_ms": 400}
    with bwtest.MockKafka(partitions=4) as mk, bwtest.WebSim() as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
        d.wait_ready(60)
        mk.produce(bwtest.TOPIC_EVENTS, [prov])
        first = scenario.wait_results(mk, ["poison-0"], timeout=30, what="setup")
        assert first[0]["outcome"] == "succeeded", first
        ws_id = first[0]["workspaceId"]
        sim.faults({"script": [{"status": 503, "count": 100000, "userId": POISON,
                                "latencyMs": 400}]})
        wl.produce(mk, events)
        log("produced %d events (3 for the poison user)", len(events))

        # The healthy users finish while the poison user is still retrying.
        healthy_ids = [e for e in wl.by_id if not e.startswith("poison-")]
        results = scenario.wait_results(mk, healthy_ids, timeout=60, what="healthy events")
        healthy_done_at = time.monotonic()
        done_poison = [r for r in results if r["eventId"] in poison_ids]
        log("healthy events all done; the poison user has %d of 3 results", len(done_poison))
        assert len(done_poison) < 3, \
            "the poison user had finished before the healthy users: they were held up"

        results = scenario.wait_results(mk, poison_ids, timeout=60, what="poison events")
        poison_done_at = time.monotonic()
        def expect(ev):
            return scenario.failed("exhausted") if ev in poison else scenario.succeeded()
        grouped = scenario.check_results(wl, results, expect=expect)
        for eid in poison_ids:
            r = grouped[eid][-1]
            assert r["httpStatus"] == 503 and r["attempts"] == 3 and r["workspaceId"] == ws_id, r
        reqs = scenario.api_requests(sim)
        per_event = scenario.requests_by_event(wl, reqs)
        scenario.check_attempts(grouped, per_event)
        for eid in poison_ids:
            assert [r["status"] for r in per_event[eid]] == [503] * 3, (eid, per_event[eid])
        last_poison = max(r["recvUs"] for eid in poison_ids for r in per_event[eid])
        last_healthy = max(r["doneUs"] for eid in healthy_ids for r in per_event[eid])
        assert last_healthy < last_poison, \
            "healthy requests went on after the poison user's last attempt"
        scenario.check_order(wl, reqs)
        st = scenario.check_no_violations(sim, reqs)
        scenario.check_dlq(mk, wl, grouped, poison_ids, "exhausted")
        scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
    scenario.report("poison", t0, events=len(events) + 1, requests=st["requests"],
                    healthy_done_s="%.1f" % (healthy_done_at - t0),
                    poison_done_s="%.1f" % (poison_done_at - t0),
                    attempts=scenario.attempts_histogram(grouped))


if __name__ == "__main__":
    main()
