#!/usr/bin/python3
"""Scenario: a clean leave with a slow API (contract point 3).

Two instances A and B in one consumer group (same bootstrap, same
simulator), 8 partitions, 16 requests in flight each; the simulator answers
every request after 2 s. 300 users x (provision, update, update), produced
once both instances consume. When the simulator has answered 64 requests
(two rounds of both instances: work in flight everywhere, ~800 events
left), B gets SIGTERM: a clean leave, and A takes B's partitions over. Once
B has exited and A consumes every partition, the latency drops to 100 ms so
the rest finishes within the time budget (requests already waiting keep
their 2 s).

Contract point 3: no new request is started for the revoked partitions;
requests on the wire get up to webex.timeout_ms, then their records up to
shutdown.grace_ms; only then is the partition released. So a clean leave
never leads to two requests in flight for one user and never to
`conflict`. Asserted (every check runs; the failures are listed at the end):

* B exits 0 within webex.timeout_ms + shutdown.grace_ms + 10 s;
* no result is `conflict`; every event has a result and its last one
  succeeded, note none or `replayed` (scenario.check_results, as
  test_rebalance.py accepts), and an event is applied twice only if its
  first answer came after the SIGTERM (test_rebalance.reapplied);
* zero simulator violations (concurrentUser: never two requests in flight
  for one user; retryAfter);
* per-user order across both instances (scenario.check_order);
* createdTotal == users; the simulator's workspaces and the state topic
  end as the workload says (scenario.check_final_state).

Why today's main fails it: on SIGTERM B keeps its partitions for its whole
10 s drain and its workers keep starting queued events of those partitions
all along (a new 2 s request whenever one finishes); when the drain ends it
closes the consumer and tears its HTTP workers down with 16 requests still
on the wire. The simulator still performs them (a delayed request takes
effect when its answer goes out), but B never sees the answers: no state
record, no commit. A, which gets B's partitions after the group's session
timeout, replays those events: the cut provisions get 409 with no id to
recover (`conflict`), the user's updates then fail `unknown_workspace`, and
the state topic misses those workspaces.

Observed on main 104b6bf: B took 10.2 s to exit and logged 80 outcomes
after its SIGTERM (16 were on the wire at the signal: it started 64 more);
A consumed all partitions 21.4 s after the SIGTERM; 16 provisions ended
`conflict`, their 32 updates `unknown_workspace`, and the 16 users are
missing from the state topic with the simulator holding their first
version. No concurrentUser violation: on the mock cluster A gets the
partitions only after B's session timed out, long after B's cut requests
were answered, so the failure shows as lost answers rather than overlap;
~46 s.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402
from test_rebalance import consuming, expectation, reapplied  # noqa: E402

USERS = 300
PARTITIONS = 8
IN_FLIGHT = 16        # per instance
LATENCY_MS = 2000     # slow API around the leave (< webex.timeout_ms: no client timeouts)
FAST_LATENCY_MS = 100  # once the hand-over is over, to finish in time
STOP_AT = 64          # answers before B's SIGTERM: two rounds of both instances


def caught_up_lines(d):
    return sum(1 for line in d.log_lines() if "state table caught up; consuming" in line)


def after_signal_outcomes(d):
    """Event outcomes the daemon logged after it logged the stop signal."""
    n, seen = 0, False
    for rec in d.log_records():
        if rec.get("msg", "").startswith("signal ") and "stopping" in rec.get("msg", ""):
            seen = True
        elif seen and "outcome" in rec:
            n += 1
    return n


def main():
    t0 = time.monotonic()
    ck = scenario.Checks("leave_slow")
    wl = scenario.Workload("ls", USERS, seed=44, updates=2, keep_every=1)
    # webex.max_in_flight 16 per instance: a backlog far larger than what is
    # in flight, on both instances. Everything else is the product default
    # (webex.timeout_ms 30 s, shutdown.grace_ms 10 s); the harness's session
    # timeout (6 s) lets A take B's partitions over within seconds.
    config = {"webex.max_in_flight": IN_FLIGHT}
    with bwtest.Kafka(partitions=PARTITIONS) as mk, \
            bwtest.WebSim(faults={"latencyMs": LATENCY_MS}) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config=config) as a:
        a.wait_ready(60)
        bwtest.wait_until(lambda: consuming(a), 60, 0.2, "instance A consuming")
        with bwtest.Daemon(mk.bootstrap, sim, config=config) as b:
            limit = scenario.stop_limit_s(b)
            b.wait_ready(60)
            bwtest.wait_until(lambda: consuming(b), 60, 0.2, "instance B consuming")
            bwtest.wait_until(lambda: 0 < consuming(a) < PARTITIONS, 30, 0.2,
                              "instance A giving partitions up")
            log("group settled; A reports %d partitions, B %d", consuming(a), consuming(b))
            wl.produce(mk)
            log("produced %d events for %d users", len(wl), USERS)
            scenario.wait_requests(sim, STOP_AT, timeout=60)
            st = sim.stats()
            a_lines = caught_up_lines(a)
            t_term, rc, took = scenario.timed_stop(b, limit)
            log("B: SIGTERM with %d requests at the simulator: exit %s after %.2f s (limit "
                "%.0f s)", st["inFlight"], rc, took, limit)
            done = len({r["eventId"] for r in
                        scenario.parse_results(mk.consume(bwtest.TOPIC_RESULTS))})
            log("%d of %d events have a result", done, len(wl))
            assert done < len(wl), "the run was over before B stopped"
            b_after = after_signal_outcomes(b)
            log("B logged %d event outcome(s) after its SIGTERM (at most what was on the wire, "
                "%d, if it starts nothing new)", b_after, IN_FLIGHT)
            ck.check("B: exit 0 within webex.timeout_ms + shutdown.grace_ms + 10 s",
                     rc == 0 and took <= limit,
                     "exit %s after %.2f s, limit %.0f s" % (rc, took, limit))
        # A takes B's partitions over (after the session timeout on the mock
        # cluster); then the rest may go fast.
        bwtest.wait_until(lambda: caught_up_lines(a) > a_lines and consuming(a) == PARTITIONS,
                          60, 0.2, "instance A consuming every partition")
        t_over = scenario.now_us()
        log("A consumes all %d partitions %.2f s after B's SIGTERM", PARTITIONS,
            (t_over - t_term) / 1e6)
        time.sleep(LATENCY_MS / 1000.0)  # A's first replays still meet B's leftovers, if any
        sim.faults({"latencyMs": FAST_LATENCY_MS})
        results = scenario.wait_settled(mk, sim, wl.by_id, timeout=120)
        reqs = scenario.api_requests(sim)
        per_event = scenario.requests_by_event(wl, reqs)

        counts = scenario.outcome_counts(results)
        log("results by (outcome, kind, note): %s", dict(counts))
        conflicts = sum(n for (o, k, _), n in counts.items() if k == "conflict")
        ck.check("no result is conflict", conflicts == 0, "%d conflict result(s)" % conflicts)
        late = ck.run("an event is applied twice only if its first answer came after the SIGTERM",
                      reapplied, per_event, t_term)
        ck.run("every event's final result as expected", scenario.check_results, wl, results,
               expect=expectation(late or set()), exactly_one=False)
        v = sim.stats().get("violations") or {}
        ck.check("simulator violations concurrentUser == 0", v.get("concurrentUser") == 0,
                 "%s; %s" % (v, "; ".join(scenario.describe_violation(reqs, r)
                                           for r in reqs if r.get("violations"))[:1500]))
        ck.check("simulator violations retryAfter == 0", v.get("retryAfter") == 0, str(v))
        ck.run("per-user order across both instances", scenario.check_order, wl, reqs)
        ck.run("createdTotal == users; simulator and state topic end as the workload says",
               scenario.check_final_state, wl, sim, mk.consume(bwtest.TOPIC_STATE))
        created = sim.stats()["createdTotal"]
        assert a.running(), "instance A exited:\n" + a.log_tail()
        assert a.stop() == 0, "SIGTERM did not exit A with 0:\n" + a.log_tail()
    scenario.report("leave_slow", t0, events=len(wl), b_stop_s="%.2f" % took,
                    b_outcomes_after_signal=b_after, conflicts=conflicts,
                    concurrent_user=v.get("concurrentUser"), created=created)
    ck.done()


if __name__ == "__main__":
    main()
