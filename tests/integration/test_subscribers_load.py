#!/usr/bin/python3
"""Scenario: thousands of subscribers pending at once, polls that hold no
HTTP slot and obey Retry-After, and the poll limit (SPEC §2b).

1. Product defaults (webex.max_in_flight 64, polls after 2 s doubling).
   The simulator takes SIM_DELAY_MS to provision each subscriber. 2,000
   provisions are produced at once: all are answered `provisioning` within
   a second or two and then wait for their polls. A 429 with Retry-After
   (RETRY_AFTER_S) is scripted for the first poll. Asserted:
   at some moment at least MIN_PENDING subscribers were pending at the
   simulator at once, while no more than webex.max_in_flight requests were
   ever in flight there (the waits hold no slot); every provision
   succeeded; at most 3 polls per subscriber; no request inside the
   Retry-After window (the simulator's detector) and no concurrentUser.
2. subscriber.poll_limit_ms = 3000 (the bound under test) and a
   simulator that takes 20 s: 5 provisions end failed, kind timeout, in
   the DLQ, each about 2 s after it was consumed (the next poll would
   come past the limit).
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import subcheck  # noqa: E402
from subcheck import bwtest, log, scenario  # noqa: E402

USERS = 2000
SIM_DELAY_MS = 5000
MIN_PENDING = 1500
RETRY_AFTER_S = 2
MAX_POLLS = 3
IN_FLIGHT = 64  # webex.max_in_flight's default


def pending_at_sim(sim):
    return sim.stats()["subscribersByStatus"].get("provisioning", 0)


def phase_many(mk, sim, ck):
    events = [bwtest.sub_provision("%05d@load.sp.example.com" % i, event_id="ld-%05d" % i)
              for i in range(USERS)]
    sim.subscriber_settings(delay_ms=SIM_DELAY_MS)
    # 50 ms an answer: the 64 slots are what limits the requests in flight
    sim.faults({"latencyMs": 50})
    sim.faults({"script": [{"method": "GET", "status": 429, "retryAfter": RETRY_AFTER_S,
                            "count": 1}]})
    with bwtest.Daemon(mk.bootstrap, sim) as d:
        d.wait_ready(60)
        mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for e in events], timeout=60)
        peak = bwtest.wait_until(lambda: (lambda n: n if n >= MIN_PENDING else None)(
            pending_at_sim(sim)), 30, 0.1, "%d subscribers pending at once" % MIN_PENDING)
        log("%d subscribers pending at the simulator at once", peak)
        results = scenario.wait_results(mk, [e["eventId"] for e in events], 120)
        ck.check("clean stop", d.stop() == 0, d.log_tail(5))
    finals = scenario.final_results(results)
    bad = [r for e, r in finals.items() if e.startswith("ld-") and r["outcome"] != "succeeded"]
    ck.check("every provision succeeded", not bad, bad[:2])
    reqs = subcheck.sub_requests(sim)
    top = scenario.peak_concurrency(reqs)
    ck.check("requests in flight never above webex.max_in_flight while %d were pending" % peak,
             top <= IN_FLIGHT, "peak %d" % top)
    polls = {}
    for r in reqs:
        if r["method"] == "GET":
            polls[r["trackingId"]] = polls.get(r["trackingId"], 0) + 1
    most = max(polls.values()) if polls else 0
    ck.check("at most %d polls per subscriber" % MAX_POLLS, most <= MAX_POLLS, "most %d" % most)
    got429 = [r for r in reqs if r["status"] == 429]
    ck.check("the scripted 429 came", len(got429) == 1, len(got429))
    ck.run("no request inside the Retry-After window, no concurrentUser",
           scenario.check_no_violations, sim, reqs)
    log("%d requests: %d POST, %d polls; peak %d in flight", len(reqs),
        sum(1 for r in reqs if r["method"] == "POST"), sum(polls.values()), top)
    return peak, top, sum(polls.values())


def phase_limit(mk, sim, ck):
    events = [bwtest.sub_provision("slow%d@load.sp.example.com" % i, event_id="sl-%d" % i)
              for i in range(5)]
    sim.faults({"clear": True})
    sim.subscriber_settings(delay_ms=20000)
    config = {"subscriber.poll_limit_ms": 3000}
    with bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
        d.wait_ready(60)
        mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for e in events])
        results = scenario.wait_results(mk, [e["eventId"] for e in events], 60)
        ck.check("clean stop", d.stop() == 0, d.log_tail(5))
    finals = scenario.final_results(results)
    kinds = {(r["outcome"], (r.get("error") or {}).get("kind")) for e, r in finals.items()
             if e.startswith("sl-")}
    ck.check("past subscriber.poll_limit_ms: failed, kind timeout",
             kinds == {("failed", "timeout")}, kinds)
    took = max(r["latencyMs"] for e, r in finals.items() if e.startswith("sl-")) / 1000.0
    ck.check("... not later than the limit allows", took <= 3.0 + 2.0, "%.1f s" % took)
    dlq = [m for m in mk.consume(bwtest.TOPIC_DLQ) if m["key"].startswith("slow")]
    ck.check("... and in the DLQ", len(dlq) == 5, len(dlq))
    return took


def main():
    t0 = time.monotonic()
    ck = scenario.Checks("subscribers_load")
    with bwtest.MockKafka(partitions=8) as mk, bwtest.WebSim() as sim:
        peak, top, polls = phase_many(mk, sim, ck)
        took = phase_limit(mk, sim, ck)
    print("SUBSCRIBERS PENDING: %d at once with at most %d requests in flight; %d polls for "
          "%d subscribers; timeout after %.1f s" % (peak, top, polls, USERS, took), flush=True)
    scenario.report("subscribers_load", t0, pending=peak, in_flight=top, polls=polls)
    ck.done()


if __name__ == "__main__":
    main()
