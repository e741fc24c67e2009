#!/usr/bin/python3
"""Scenario: subscribers across two SIGKILLs (SPEC §2b: "Subscriber ids
are never lost").

300 users, each a chain: provision, update (package premium), and for
every third a remove. The simulator provisions asynchronously (1.5 s) and
answers in 20 ms; bwprovd runs with its defaults but a commit every 200 ms
(so the replays start mid-run, as test_crash does). It is SIGKILLed after
KILL_AT requests and started again at once, twice: each time some POSTs
and PUTs are on the wire or answered but not yet recorded, and some
subscribers are being polled.

Asserted afterwards: every event has a result and its last one succeeded
(notes: none, replayed, already_provisioned: a POST answered after the
kill is found by the lookup its replay's 409 starts; already_removed,
not_provisioned: a DELETE answered after the kill); no subscriber twice
for one userId (subscribersCreatedTotal == users): no POST went out for a
userId Webex had; 0 ids lost: the state topic's live subscribers are
exactly the simulator's; the simulator's subscribers have the package the
last update set; no concurrentUser or retryAfter violation.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import subcheck  # noqa: E402
from subcheck import bwtest, log, scenario  # noqa: E402

USERS = 300
KILL_AT = (250, 600)
OK_NOTES = {None, "replayed", "already_provisioned", "already_removed", "not_provisioned"}


def plan():
    wl = subcheck.workload("sc")
    chains = []
    for i in range(USERS):
        u = "%04d@crash.subs.example.com" % i
        chain = [bwtest.sub_provision(u, event_id="sc-%04d-0" % i),
                 bwtest.sub_update(u, event_id="sc-%04d-1" % i, package="premium")]
        if i % 3 == 0:
            chain.append(bwtest.sub_remove(u, event_id="sc-%04d-2" % i))
        wl.add_chain(u, chain, final=None)
        chains.append(chain)
    return wl, subcheck.interleave(chains, seed=12)


def main():
    t0 = time.monotonic()
    ck = scenario.Checks("subscribers_crash")
    wl, events = plan()
    config = {"kafka.consumer.auto.commit.interval.ms": 200}
    with bwtest.Kafka(partitions=4) as mk, \
            bwtest.WebSim(faults={"latencyMs": 20}) as sim:
        sim.subscriber_settings(delay_ms=1500)
        with bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
            d.wait_ready(60)
            mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for e in events], timeout=60)
            for n in KILL_AT:
                bwtest.wait_until(lambda: sim.stats()["requests"] >= n, 60, 0.01,
                                  "%d requests" % n)
                assert d.kill() == -9
                st = sim.stats()
                log("SIGKILL after %d requests (%d subscribers provisioning, %d updating)",
                    st["requests"], st["subscribersByStatus"].get("provisioning", 0),
                    st["subscribersByStatus"].get("updating", 0))
                d.start()
                d.wait_ready(60)
            results = scenario.wait_results(mk, list(wl.by_id), 180)
            time.sleep(2)  # transitions still due settle
            ck.check("clean stop", d.stop() == 0, d.log_tail(5))
        finals = scenario.final_results(results)
        bad = [r for e, r in finals.items() if e in wl.by_id and
               (r["outcome"] != "succeeded" or r.get("note") not in OK_NOTES)]
        ck.check("every event's last result succeeded", not bad,
                 ["%s %s %s %s" % (r["eventId"], r["outcome"], r.get("note"), r.get("error"))
                  for r in bad[:5]])
        notes = {}
        for e, r in finals.items():
            notes[r.get("note")] = notes.get(r.get("note"), 0) + 1
        st = sim.stats()
        ck.check("one subscriber per userId ever made (no second POST for a known userId)",
                 st["subscribersCreatedTotal"] == USERS,
                 "subscribersCreatedTotal %d, %d users" % (st["subscribersCreatedTotal"], USERS))
        probs = subcheck.map_problems(mk, sim)
        ck.check("0 ids lost: state topic == simulator", not probs, probs[:4])
        subs = subcheck.sim_by_user(sim)
        keep = [u for i, u in enumerate(wl.users) if i % 3 != 0]
        wrong = [u for u in keep if (subs.get(u) or {}).get("package") != "premium"]
        ck.check("the updates applied", not wrong, wrong[:4])
        gone = [u for i, u in enumerate(wl.users) if i % 3 == 0 and u in subs]
        ck.check("the removes applied", not gone, gone[:4])
        ck.run("no simulator violations", scenario.check_no_violations, sim,
               subcheck.sub_requests(sim))
    log("final notes: %s", notes)
    scenario.report("subscribers_crash", t0, events=len(events), kills=len(KILL_AT))
    ck.done()


if __name__ == "__main__":
    main()
