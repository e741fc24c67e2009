"""Shared helpers of the subscriber scenarios (test_subscribers*.py): the
issue "BroadWorks subscribers" (SPEC §2b).

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import subcheck
    scenario, bwtest, log = subcheck.scenario, subcheck.bwtest, subcheck.log
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mapcheck  # noqa: E402
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

SUB_PATH = "/v1/broadworks/subscribers"
#: Statuses that end a subscriber's provisioning (SPEC §2b).
FINAL = {"provisioned", "error", "pending_email_input", "pending_email_validation",
         "pending_user_migration"}


def sub_requests(sim):
    """Every recorded request to the subscribers API, in completion order."""
    return [r for r in sim.all_requests() if r.get("path", "").startswith(SUB_PATH)]


def run_daemon(ck, mk, sim, events, ids, timeout):
    """One daemon with the defaults takes ``events``; returns every result
    (read a second after each of ``ids`` had one, so a duplicate would
    show) and every request the simulator received meanwhile. Checks a
    clean stop."""
    seq0 = mapcheck.last_seq(sim)
    with bwtest.Daemon(mk.bootstrap, sim) as d:
        d.wait_ready(60)
        mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for e in events], timeout=60)
        scenario.wait_results(mk, ids, timeout)
        time.sleep(1.0)  # a duplicate result would show by now
        results = scenario.parse_results(mk.consume(bwtest.TOPIC_RESULTS))
        ck.check("clean stop", d.stop() == 0, d.log_tail(5))
    return results, sim.all_requests(since=seq0)


def sim_by_user(sim):
    """``{userId: subscriber}`` of the simulator (transitions due applied)."""
    return {s["userId"]: s for s in sim.subscribers()["subscribers"]}


def state_subscribers(mk):
    """``{userId: latest state record value}`` of the state topic's
    subscriber records (removed markers included)."""
    out = {}
    for m in mk.consume(bwtest.TOPIC_STATE):
        try:
            v = json.loads(m["value"]) if m["value"] else None
        except ValueError:
            continue
        if isinstance(v, dict) and v.get("kind") == "subscriber":
            out[m["key"]] = v
        elif m["key"] in out:
            out[m["key"]] = v
    return out


def map_problems(mk, sim):
    """Differences between the state topic's live subscribers and the
    simulator's (userId -> id; one in status error too: bwprovd keeps its
    id), as lines; removed markers stand for none."""
    state = {u: v.get("subscriberId") for u, v in state_subscribers(mk).items()
             if isinstance(v, dict) and not v.get("removed")}
    have = {u: s["id"] for u, s in sim_by_user(sim).items()}
    probs = []
    for u in sorted(set(state) | set(have)):
        if state.get(u) != have.get(u):
            probs.append("%s: state topic %s, simulator %s" % (u, state.get(u), have.get(u)))
    return probs


def workload(tag):
    """An empty scenario.Workload for chains built by the test."""
    return mapcheck.empty_workload(tag)


def interleave(chains, seed):
    return mapcheck.interleave(chains, seed)
