#!/usr/bin/python3
"""Scenario: a mixed workload of workspaces and subscribers (issue
"BroadWorks subscribers", tests), product defaults.

500 users, one chain of events each, interleaved at random: 250 workspace
users (provision, update, and every fifth removed) and 250 subscriber
users (provision, update of the package, and every fifth removed). The
simulator completes each subscriber's provisioning or update 0.1 to 3 s
after the answer (subscriberDelayMs 100 + a random 0..2,900), ends about
10% of them in status error (subscriberErrorShare 0.1, with Webex's
errors[]), and rate-limits the whole API (a 429 storm during the polls:
rateLimit 150/s, Retry-After 1 s). Whether the storm's 429s fall on polls
depends on the machine's timing (on CI they fell on POSTs and PUTs only),
so the first three GETs are answered 429 by a script as well. Asserted:

* every event has exactly one final result, none left unfinished;
* workspace events all succeeded; a subscriber provision or update
  succeeded, or (the errored ~10%) failed with kind provisioning and the
  simulator's errorCode in the message; between 4% and 18% of them errored
  (0.1 of a few hundred draws); removes succeeded;
* 429s happened during the polls and no request came inside a
  Retry-After window, no two requests of one user at once (the
  simulator's detectors); per-user order at the simulator;
* the state topic's live subscribers are the simulator's (the errored
  ones too: bwprovd keeps their ids).
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import subcheck  # noqa: E402
from subcheck import bwtest, log, scenario  # noqa: E402

USERS = 500
ERROR_SHARE = 0.1
RATE = {"perSecond": 150, "burst": 150, "retryAfter": 1}
POLLS_429 = {"status": 429, "retryAfter": 1, "count": 3, "method": "GET"}


def plan():
    wl = subcheck.workload("sx")
    chains, kind_of = [], {}
    for i in range(USERS):
        sub = i % 2 == 1
        u = "%s%04d@mixed.sp.example.com" % ("s" if sub else "w", i)
        eid = lambda k: "sx-%04d-%d" % (i, k)  # noqa: E731
        if sub:
            chain = [bwtest.sub_provision(u, event_id=eid(0)),
                     bwtest.sub_update(u, event_id=eid(1), package="premium")]
            if i % 5 == 1:
                chain.append(bwtest.sub_remove(u, event_id=eid(2)))
        else:
            chain = [bwtest.provision(u, event_id=eid(0)),
                     bwtest.update(u, event_id=eid(1), extension="6%04d" % i)]
            if i % 5 == 0:
                chain.append(bwtest.remove(u, event_id=eid(2)))
        for ev in chain:
            kind_of[ev["eventId"]] = ev["type"]
        wl.add_chain(u, chain, final=None)
        chains.append(chain)
    return wl, subcheck.interleave(chains, seed=11), kind_of


def check_outcomes(ck, finals, kind_of):
    problems, errored, changes = [], 0, 0
    for eid, r in finals.items():
        typ, err = kind_of[eid], r.get("error") or {}
        if typ.startswith("workspace.") or typ.endswith(".remove"):
            if r["outcome"] != "succeeded":
                problems.append("%s %s: %s %s" % (eid, typ, r["outcome"], err))
            continue
        changes += 1
        if r["outcome"] == "failed" and err.get("kind") == "provisioning" and \
                "10000" in (err.get("message") or ""):
            errored += 1
        elif r["outcome"] != "succeeded":
            problems.append("%s %s: %s %s" % (eid, typ, r["outcome"], err))
    ck.check("every outcome as the simulator decided", not problems, problems[:8])
    share = errored / changes if changes else 0
    ck.check("about %d%% in status error, reported failed/provisioning with Webex's errors[]"
             % (100 * ERROR_SHARE), 0.04 <= share <= 0.18,
             "%d of %d (%.1f%%)" % (errored, changes, 100 * share))
    return errored, changes


def main():
    t0 = time.monotonic()
    ck = scenario.Checks("subscribers_mixed")
    wl, events, kind_of = plan()
    log("%d users, %d events", USERS, len(events))
    with bwtest.Kafka(partitions=4) as mk, bwtest.WebSim() as sim:
        sim.subscriber_settings(delay_ms=100, delay_jitter_ms=2900, error_share=ERROR_SHARE)
        sim.faults({"rateLimit": RATE, "script": [POLLS_429]})
        results, reqs = subcheck.run_daemon(ck, mk, sim, events, list(kind_of), 240)
        grouped = scenario.by_event(results)
        dup = [eid for eid, rs in grouped.items() if len(rs) != 1]
        ck.check("exactly one result per event", not dup, dup[:5])
        errored, changes = check_outcomes(ck, scenario.final_results(results), kind_of)
        polls = [r for r in reqs if r["method"] == "GET" and
                 r["path"].startswith(subcheck.SUB_PATH + "/")]
        limited = [r for r in reqs if r["status"] == 429]
        polls_429 = sum(1 for r in polls if r["status"] == 429)
        ck.check("429s during the polls", polls_429 >= POLLS_429["count"],
                 "%d of %d polls, %d answers 429 in all" % (polls_429, len(polls), len(limited)))
        ck.run("no simulator violations", scenario.check_no_violations, sim, reqs)
        changes_at_sim = [r for r in reqs if not r.get("query") and
                          (r["path"].startswith(subcheck.SUB_PATH) or
                           r["path"].startswith(scenario.WS_PATH))]
        ck.run("per-user order at the simulator", scenario.check_order, wl, changes_at_sim)
        probs = subcheck.map_problems(mk, sim)
        ck.check("state topic == simulator (live subscribers)", not probs, probs[:4])
    scenario.report("subscribers_mixed", t0, events=len(events), requests=len(reqs),
                    polls=len(polls), got_429=len(limited), errored="%d/%d" % (errored, changes))
    ck.done()


if __name__ == "__main__":
    main()
