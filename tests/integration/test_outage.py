#!/usr/bin/python3
"""Scenario: a 20-second API outage (every /v1 request answered 503)
starting once results are flowing; retry.max_attempts=50,
retry.backoff_initial_ms=200, retry.backoff_max_ms=2000 (enough to
outlast it: ~20 attempts at most).

600 events (200 users x provision, update, remove), simulator latency
20 ms, webex.max_in_flight 8 (about 400 requests/s): the first 200 events
are produced, the outage starts once the simulator has answered 100 of
them (so some are in flight and more are queued), and the other 400 are
produced during it. Asserts: the daemon stays up through the
outage (checked every second) and nothing succeeds while it lasts; every
event then gets exactly one result, succeeded; many were retried through the
outage (attempts > 5) and the simulator answered 503s; attempts equal the
simulator's count; per-user order; zero violations; end state; and SIGTERM
still exits 0.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 200
OUTAGE_MS = 20000


def main():
    t0 = time.monotonic()
    wl = scenario.Workload("out", USERS, seed=20)
    first, rest = wl.events[:200], wl.events[200:]
    config = {"webex.max_in_flight": 8, "retry.max_attempts": 50, "retry.backoff_initial_ms": 200,
              "retry.backoff_max_ms": 2000}
    with bwtest.MockKafka(partitions=4) as mk, bwtest.WebSim(faults={"latencyMs": 20}) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
        d.wait_ready(60)
        wl.produce(mk, first)
        scenario.wait_requests(sim, 100, timeout=30)
        sim.faults({"outage": {"forMs": OUTAGE_MS}})
        out_start = scenario.now_us()
        before = sim.stats()
        log("outage started after %d requests", before["requests"])
        assert before["requests"] < len(first), "the first events were all done already"
        assert mk.consume(bwtest.TOPIC_RESULTS, count=1, timeout=30), "no result before the outage"
        wl.produce(mk, rest)
        # Through the outage: the daemon stays up and nothing gets a 2xx.
        while sim.get_faults().get("outage", {}).get("remainingMs", 0) > 1000:
            assert d.running(), "bwprovd exited during the outage:\n" + d.log_tail()
            time.sleep(1)
        out_end = out_start + OUTAGE_MS * 1000  # the simulator's clock started a bit earlier
        during = [r for r in sim.all_requests(before["requests"])
                  if out_start + 100000 < r["recvUs"] < out_end - 200000 and r["status"] != 503]
        assert not during, "answers other than 503 during the outage: %s" % during[:3]
        log("outage ending; %d requests so far", sim.stats()["requests"])

        results = scenario.wait_all_results(mk, wl, timeout=60)
        grouped = scenario.check_results(wl, results)
        reqs = scenario.api_requests(sim)
        scenario.check_attempts(grouped, scenario.requests_by_event(wl, reqs))
        through = [e for e, rs in grouped.items() if rs[-1]["attempts"] > 5]
        assert through, "no event was retried through the outage"
        scenario.check_order(wl, reqs)
        st = scenario.check_no_violations(sim, reqs)
        assert st["byStatus"].get("503", 0) > 0, st
        scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
        assert d.running(), "bwprovd exited:\n" + d.log_tail()
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
    scenario.report("outage", t0, events=len(wl), requests=st["requests"],
                    got_503=st["byStatus"].get("503"), retried_through=len(through),
                    attempts=scenario.attempts_histogram(grouped))


if __name__ == "__main__":
    main()
