#!/usr/bin/python3
"""Scenario: 429 storms. The simulator rate-limits authenticated requests to
150/s (token bucket, burst 150) and answers the excess 429 with
Retry-After: 1; bwprovd starts unlimited with 64 requests in flight.

900 events (300 users x provision, update, remove). Asserts: exactly one
result per event, all succeeded, with retry.max_attempts=2 (429 retries
must not use up attempts, SPEC section 1); attempts equal the simulator's
count (429 answers included); some 429s happened (byStatus); zero
retryAfter (and concurrentUser) violations; per-user order; end state;
and a STATUS= notification mentioned the 429 wait at some point.

STATUS= goes out every 2 s and shows the wait only while it lasts, so a
1-second Retry-After is seen by chance (the daemon's limiter soon stays
under 150/s and the storms stop). A second, short phase therefore scripts
one 429 with Retry-After: 3 in the middle of 60 more events: at least one
STATUS must fall inside that wait, and no request may reach the simulator
before it is over.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 300


def main():
    t0 = time.monotonic()
    wl = scenario.Workload("rl", USERS, seed=429)
    faults = {"rateLimit": {"perSecond": 150, "retryAfter": 1}}
    config = {"retry.max_attempts": 2, "retry.backoff_initial_ms": 50,
              "retry.backoff_max_ms": 500}
    with bwtest.MockKafka(partitions=4) as mk, bwtest.WebSim(faults=faults) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
        d.wait_ready(60)
        wl.produce(mk)
        log("produced %d events for %d users", len(wl), USERS)
        results = scenario.wait_all_results(mk, wl, timeout=90)
        grouped = scenario.check_results(wl, results)
        reqs = scenario.api_requests(sim)
        scenario.check_attempts(grouped, scenario.requests_by_event(wl, reqs))
        scenario.check_order(wl, reqs)
        st = scenario.check_no_violations(sim, reqs)
        n429 = st["byStatus"].get("429", 0)
        assert n429 > 0, "no 429 at all: the test did not test anything (%s)" % st
        assert scenario.peak_concurrency(reqs) <= 64, "more than max_in_flight requests at once"
        scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
        n, span, rate = scenario.throughput(results)
        log("phase 1: %d events, %d requests, %d answered 429, %.0f events/s", n,
            st["requests"], n429, rate)

        # Phase 2: one long Retry-After, so a STATUS must see it.
        wl2 = scenario.Workload("rl2", 20, seed=4292, base=50000000)
        seq0 = sim.requests(0)["next"]
        sim.faults({"rateLimit": None,
                    "script": [{"status": 429, "retryAfter": 3, "count": 1}]})
        wl2.produce(mk)
        results2 = [r for r in scenario.wait_results(mk, wl2.by_id, timeout=60)
                    if r.get("eventId") in wl2.by_id]
        grouped2 = scenario.check_results(wl2, results2)
        reqs2 = [r for r in sim.all_requests(seq0) if r["path"].startswith(scenario.WS_PATH)]
        scenario.check_attempts(grouped2, scenario.requests_by_event(wl2, reqs2))
        scenario.check_order(wl2, reqs2)
        scenario.check_no_violations(sim, reqs2)
        first429 = [r for r in reqs2 if r["status"] == 429]
        assert len(first429) == 1, first429
        # Requests already on their way when the 429 went out may arrive
        # just after it; anything later must wait the 3 s out.
        t429 = first429[0]["doneUs"]
        early = [r for r in reqs2 if t429 + 250000 < r["recvUs"] < t429 + 2950000]
        assert not early, "requests during the Retry-After: 3 pause: %s" % early[:3]
        statuses = d.statuses()
        assert any("429" in s for s in statuses), \
            "no STATUS= mentioned the 429 wait: %s" % statuses
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
    scenario.report("429", t0, events=n, requests=st["requests"], got_429=n429,
                    ev_per_s="%.0f" % rate, attempts=scenario.attempts_histogram(grouped),
                    status_429=[s for s in statuses if "429" in s][:2])


if __name__ == "__main__":
    main()
