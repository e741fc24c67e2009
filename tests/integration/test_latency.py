#!/usr/bin/python3
"""Scenario: a slow API (50 ms + up to 50 ms jitter per request) and many
users at once.

1500 events (500 users x provision, update, remove) with
webex.max_in_flight 512. Asserts: exactly one result per event, all
succeeded, attempts equal the simulator's count, per-user order as the
simulator saw it, zero simulator violations, every workspace removed and
created once, and, from the request log's recvUs/doneUs, that more than 100
requests were in the simulator at once at some point (so the test proves
concurrency rather than assuming it).

Then the smoke check of the performance target (printed, never asserted):
latency 50 ms, max_in_flight 256, 3000 events; events/s from the results'
consumption/completion times and from the simulator's log.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 500
PERF_USERS = 1000


def latency_run():
    t0 = time.monotonic()
    wl = scenario.Workload("lat", USERS, seed=1501)
    faults = {"latencyMs": 50, "latencyJitterMs": 50}
    with bwtest.MockKafka(partitions=4) as mk, bwtest.WebSim(faults=faults) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config={"webex.max_in_flight": 512}) as d:
        d.wait_ready(60)
        wl.produce(mk)
        log("produced %d events for %d users", len(wl), USERS)
        results = scenario.wait_all_results(mk, wl, timeout=60)
        grouped = scenario.check_results(wl, results)
        reqs = scenario.api_requests(sim)
        scenario.check_attempts(grouped, scenario.requests_by_event(wl, reqs))
        scenario.check_order(wl, reqs)
        st = scenario.check_no_violations(sim, reqs)
        peak = scenario.peak_concurrency(reqs)
        assert peak > 100, "peak concurrency at the simulator was only %d" % peak
        scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
        assert st["unauthorized"] == 0, st
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
        n, span, rate = scenario.throughput(results)
    scenario.report("latency", t0, events=n, peak_concurrency=peak,
                    ev_per_s="%.0f" % rate, requests=st["requests"])


def perf_smoke():
    """Not a timed assertion: prints the rate at latency 50 ms, 256 in flight."""
    t0 = time.monotonic()
    wl = scenario.Workload("perf", PERF_USERS, seed=2561)
    with bwtest.MockKafka(partitions=4) as mk, bwtest.WebSim(faults={"latencyMs": 50}) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config={"webex.max_in_flight": 256}) as d:
        d.wait_ready(60)
        wl.produce(mk)
        results = scenario.wait_all_results(mk, wl, timeout=60)
        scenario.check_results(wl, results)
        reqs = scenario.api_requests(sim)
        scenario.check_no_violations(sim, reqs)
        n, span, rate = scenario.throughput(results)
        first = min(r["recvUs"] for r in reqs)
        last = max(r["doneUs"] for r in reqs)
        sim_rate = len(reqs) / ((last - first) / 1e6)
        peak = scenario.peak_concurrency(reqs)
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
    print("PERFORMANCE (latency 50 ms, max_in_flight 256): %d events in %.2f s = %.0f events/s "
          "(simulator: %d requests at %.0f/s, peak %d in flight; ideal %d/s)"
          % (n, span, rate, len(reqs), sim_rate, peak, 256 * 1000 // 50), flush=True)
    scenario.report("perf smoke", t0, ev_per_s="%.0f" % rate)


def main():
    latency_run()
    perf_smoke()


if __name__ == "__main__":
    main()
