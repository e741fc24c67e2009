#!/usr/bin/python3
"""Scenario: a flaky API. 30% of the requests are answered 500, 502, 503 or
504 at random; retry.backoff_initial_ms=20, backoff_max_ms=200,
max_attempts=20 (a 0.3^20 chance per event of running out).

600 events (200 users x provision, update, remove). Asserts: exactly one
result per event, all succeeded; some needed more than one attempt, and
every result's attempts equal the requests the simulator saw for it; each
event got exactly one 2xx (a retry never repeats a request that worked);
per-user order (retries of one event in a row, never interleaved with the
next event); zero violations; end state and created_total.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 200


def main():
    t0 = time.monotonic()
    wl = scenario.Workload("e5", USERS, seed=503)
    faults = {"errorShare": 0.3, "errorCodes": [500, 502, 503, 504]}
    config = {"retry.backoff_initial_ms": 20, "retry.backoff_max_ms": 200,
              "retry.max_attempts": 20}
    with bwtest.MockKafka(partitions=4) as mk, bwtest.WebSim(faults=faults, args=["--seed", "5"]) \
            as sim, bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
        d.wait_ready(60)
        wl.produce(mk)
        log("produced %d events for %d users", len(wl), USERS)
        results = scenario.wait_all_results(mk, wl, timeout=60)
        grouped = scenario.check_results(wl, results)
        reqs = scenario.api_requests(sim)
        per_event = scenario.requests_by_event(wl, reqs)
        scenario.check_attempts(grouped, per_event)
        retried = [e for e, rs in grouped.items() if rs[-1]["attempts"] > 1]
        assert retried, "no event needed a second attempt: %s" % sim.stats()
        for eid, rs in per_event.items():
            ok = [r for r in rs if 200 <= r["status"] < 300]
            assert len(ok) == 1 and rs[-1] is ok[0], \
                "%s: requests %s (one 2xx, last)" % (eid, [r["status"] for r in rs])
            assert all(r["status"] in (500, 502, 503, 504) for r in rs[:-1]), \
                "%s: %s" % (eid, [r["status"] for r in rs])
        scenario.check_order(wl, reqs)
        st = scenario.check_no_violations(sim, reqs)
        errors = {k: v for k, v in st["byStatus"].items() if k.startswith("5")}
        assert set(errors) == {"500", "502", "503", "504"}, st["byStatus"]
        scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
    scenario.report("5xx", t0, events=len(wl), requests=st["requests"], errors=errors,
                    retried=len(retried), attempts=scenario.attempts_histogram(grouped))


if __name__ == "__main__":
    main()
