#!/usr/bin/python3
"""Rebalance with three instances: A, B and C share one consumer group on a
mock cluster with 12 partitions. While 2,200 events over 400 users are
processed, C is stopped (SIGTERM, exit 0), a fourth instance D joins, and
then B is stopped: every membership change moves partitions.

Asserted (the reasoning is test_rebalance.py's): every event has a result
and its last one succeeded; one user's requests, across all instances,
never go back to an earlier event; an event is applied twice only if its
first answer came after the first membership change (work handed back
with its answer on the way); `replayed` only for events the simulator had
applied; no concurrentUser or retryAfter violations; exactly one workspace
created per user; the simulator and the state topic end as the workload
says, so whichever instance took a partition had the right state table;
the instances still running stop with exit 0."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402
from test_rebalance import consuming, expectation, reapplied  # noqa: E402

USERS = 400
STEPS = ((500, "stop", "C"), (1000, "start", "D"), (1500, "stop", "B"))


def main():
    t0 = time.monotonic()
    wl = scenario.Workload("r3", USERS, seed=333, updates=4, keep_every=2)
    config = dict(scenario.group_settings(departs=True), **{"webex.max_in_flight": 8, "shutdown.grace_ms": 1000})
    # 100 ms per request, 8 at a time per instance: the changes are seconds
    # apart, each one landing while work is in flight.
    with bwtest.Kafka(partitions=12) as mk, \
            bwtest.WebSim(faults={"latencyMs": 100}) as sim:
        inst = {n: bwtest.Daemon(mk.bootstrap, sim, config=config) for n in "ABCD"}
        try:
            for n in "ABC":
                inst[n].start()
                inst[n].wait_ready(60)
                bwtest.wait_until(lambda: consuming(inst[n]), 60, 0.2, "%s consuming" % n)
            wl.produce(mk)
            changes = []
            for at, what, n in STEPS:
                scenario.wait_requests(sim, at, timeout=90)
                changes.append(scenario.now_us())
                if what == "stop":
                    rc = inst[n].stop(timeout=30)
                    assert rc == 0, "%s exited %s on SIGTERM:\n%s" % (n, rc, inst[n].log_tail())
                else:
                    inst[n].start()
                    inst[n].wait_ready(60)
                log("%s %s after %d requests", what, n, at)
            results = scenario.wait_all_results(mk, wl, timeout=120)
            reqs = scenario.api_requests(sim)
            per_event = scenario.requests_by_event(wl, reqs)
            late = reapplied(per_event, changes[0])
            grouped = scenario.check_results(wl, results, expect=expectation(late),
                                             exactly_one=False)
            scenario.check_replayed_applied(wl, grouped, per_event)
            scenario.check_order(wl, reqs)
            st = scenario.check_no_violations(sim, reqs)
            scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
            for n in "AD":
                assert inst[n].running(), "%s exited:\n%s" % (n, inst[n].log_tail())
                assert inst[n].stop() == 0, "%s did not stop with 0" % n
        finally:
            for d in inst.values():
                d.close()
    dups = scenario.duplicates(grouped)
    print("DUPLICATES: %d duplicate results over %d events, %d applied again after a "
          "hand-over" % (dups, len(wl), len(late)), flush=True)
    scenario.report("rebalance3", t0, events=len(wl), requests=st["requests"], duplicates=dups,
                    reapplied=len(late))


if __name__ == "__main__":
    main()
