#!/usr/bin/python3
"""Scenario: one locked workspace does not slow anybody else down, and its
event ends after retry.max_wait_ms (contract point 7).

The same workload runs twice, each time on a fresh cluster, simulator and
daemon: 667 users x (provision, update, remove) = 2001 events, interleaved
(scenario.Workload), all produced before the daemon starts so that both
runs consume the same backlog from the start. Settings (the rest are the
product's defaults):

* simulator latency 20 ms, webex.max_in_flight 32: the daemon is limited
  by its own slots (32 / 20 ms = 1600 requests/s), so a pause or a halved
  rate for everybody shows at once in the throughput;
* retry.max_wait_ms 5000: the bound is what ends the locked event (the
  default, 15 minutes, would outlast the test).

Run "baseline": the workload only. Run "locked": the workload plus, at the
head of the stream, the locked user L's provision and an update; the
simulator answers every PUT for L with 423, Retry-After 1, forever (a
script entry for L's userId, method PUT, count 100000: L's provision goes
through, so it is "one user's workspace" that is locked).

Asserted:

* the other users' throughput (scenario.throughput over their results,
  first consumption to last completion) in the locked run is at least 90%
  of the baseline's;
* in both runs every other event succeeded exactly once, per-user order,
  zero simulator violations (retryAfter counted per user for a 423 by the
  simulator being changed with point 7: with today's simulator a 423
  pauses everybody, so a correct daemon would trip it);
* L's update ends `failed`, kind `exhausted`, httpStatus 423, with a
  message naming retry.max_wait_ms, and it ends (completedAt) within
  [max_wait - one Retry-After - 200 ms, max_wait + 2 s] of its first 423
  answer (doneUs at the simulator; not latencyMs, which also counts the
  time the update queued behind the backlog before its first PUT). The
  contract says "past it the event ends"; an implementation may refuse to
  start a wait it cannot finish (ends up to one Retry-After early) or
  notice the bound only after the next 423 (up to a Retry-After plus a
  request late).

Today's daemon does not know retry.max_wait_ms (exit 78 at start). To see
today's throughput effect anyway, run with BWTEST_LOCKED_NO_MAX_WAIT=1:
the key is left out, the ratio is measured and asserted, and the test then
fails because L's event never ends.

Runtime ~35 s.
"""
import datetime
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mapcheck  # noqa: E402
from mapcheck import bwtest, log, scenario  # noqa: E402

USERS = 667            # x 3 events = 2001 events
LATENCY_MS = 20
IN_FLIGHT = 32
MAX_WAIT_MS = 5000
RETRY_AFTER_S = 1
MIN_RATIO = 0.90
#: A first pair of runs whose ratio falls short of MIN_RATIO by less than
#: this is measured once more (both runs again; the best throughput of each
#: kind counts): on a 2-core machine shared with other work one run in a
#: few can lose 10% to a busy neighbour. Far below it there is nothing to
#: re-measure.
NOISE_BAND = 0.25
OTHERS_TIMEOUT = 45
LOCKED = "99999999@locked.sp.example.com"
#: time.time() - time.monotonic(), to put a result's completedAt (wall clock,
#: ms) on the simulator's clock.
CLOCK_OFFSET = time.time() - time.monotonic()
NO_MAX_WAIT = os.environ.get("BWTEST_LOCKED_NO_MAX_WAIT", "") not in ("", "0")


def run(tag, locked):
    """One run on fresh processes; returns a dict of what it measured."""
    wl = scenario.Workload(tag, USERS, seed=7, updates=1)
    events = list(wl.events)
    lk = []
    if locked:
        lk = [bwtest.provision(LOCKED, event_id="%s-locked-prov" % tag),
              bwtest.update(LOCKED, event_id="%s-locked-upd" % tag, extension="4242")]
        events = lk + events
    config = {"webex.max_in_flight": IN_FLIGHT,        # see the docstring
              "retry.max_wait_ms": MAX_WAIT_MS}        # the bound ends L's event
    if NO_MAX_WAIT:
        config["retry.max_wait_ms"] = None             # today's daemon rejects the key
    faults = {"latencyMs": LATENCY_MS}
    if locked:
        faults["script"] = [{"status": 423, "userId": LOCKED, "method": "PUT",
                             "count": 100000, "retryAfter": RETRY_AFTER_S}]
    out = {"tag": tag}
    with bwtest.Kafka() as mk, bwtest.WebSim(faults=faults) as sim:
        mk.produce(bwtest.TOPIC_EVENTS, events, timeout=60)
        with bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
            try:
                d.wait_ready(60)
            except bwtest.HarnessError as e:
                raise AssertionError("bwprovd did not start with retry.max_wait_ms = %d "
                                     "(exit %s); the key is part of the contract:\n%s"
                                     % (MAX_WAIT_MS, d.returncode, str(e)[-1500:]))
            # 2001 requests take ~1.5 s here (1.3-1.5 s measured, also with
            # two busy loops on the two cores); OTHERS_TIMEOUT bounds a run
            # that a 423 slows down, whose throughput is then measured over
            # the events done by then.
            try:
                scenario.wait_results(mk, list(wl.by_id), OTHERS_TIMEOUT,
                                      what="%s: other users" % tag)
            except AssertionError as e:
                out["others_error"] = str(e)[:300]
            if locked:
                # L's update: MAX_WAIT_MS from its consumption, plus slack.
                try:
                    res = scenario.wait_results(mk, [ev["eventId"] for ev in lk],
                                                MAX_WAIT_MS / 1000.0 + 10,
                                                what="%s: locked user" % tag)
                except AssertionError as e:
                    out["locked_error"] = str(e)
            time.sleep(0.5)  # a duplicate result would show by now
            res = scenario.parse_results(mk.consume(bwtest.TOPIC_RESULTS))
            out["reqs"] = scenario.api_requests(sim)
            out["stats"] = sim.stats()
            out["stop"] = d.stop()
    others = [r for r in res if r.get("eventId") in wl.by_id]
    out["throughput"] = scenario.throughput(others)
    out["grouped"] = scenario.by_event(res)
    out["wl"] = wl
    out["lk"] = lk
    n, span, rate = out["throughput"]
    log("%s: %d other events in %.2f s = %.0f events/s; simulator %s requests, byStatus %s",
        tag, n, span, rate, out["stats"]["requests"], out["stats"]["byStatus"])
    return out


def check_run(out, problems):
    wl, tag = out["wl"], out["tag"]
    reqs = [r for r in out["reqs"] if r["userId"] != LOCKED]
    try:
        scenario.check_results(wl, [r for rs in out["grouped"].values() for r in rs
                                    if r.get("eventId") in wl.by_id])
    except AssertionError as e:
        problems.append("%s: %s" % (tag, str(e)[:1500]))
    try:
        scenario.check_order(wl, reqs)
    except AssertionError as e:
        problems.append("%s: %s" % (tag, str(e)[:1500]))
    v = out["stats"].get("violations") or {}
    if v.get("retryAfter") or v.get("concurrentUser"):
        marked = [r for r in out["reqs"] if r.get("violations")]
        problems.append("%s: simulator violations %s, e.g. %s" % (
            tag, v, [scenario.describe_violation(out["reqs"], r) for r in marked[:3]]))
    if out["stop"] != 0:
        problems.append("%s: SIGTERM exit status %s" % (tag, out["stop"]))


def check_locked(out, problems):
    """L's provision succeeded; its update ended failed/exhausted in time."""
    tag = out["tag"]
    prov, upd = out["lk"]
    r = mapcheck.result_of(out["grouped"], prov["eventId"])
    if r is None or r.get("outcome") != "succeeded":
        problems.append("%s: locked user's provision: %s, expected succeeded"
                        % (tag, mapcheck.fmt_result(r)))
    r = mapcheck.result_of(out["grouped"], upd["eventId"])
    if r is None:
        problems.append("%s: locked user's update has no result %.1f s after the other users' "
                        "(retry.max_wait_ms %d): %s" % (tag, MAX_WAIT_MS / 1000.0 + 10,
                                                         MAX_WAIT_MS, out.get("locked_error")))
        return
    err = r.get("error") or {}
    # Waiting starts with the first 423 answer (the simulator's doneUs,
    # CLOCK_MONOTONIC) and ends at the result's completedAt (wall clock,
    # moved to the monotonic clock): latencyMs would also count the time
    # the update queued behind the 2001 other events before its first PUT.
    first = min((q["doneUs"] for q in out["reqs"] if q["userId"] == LOCKED
                 and q["status"] == 423), default=None)
    end_us = (scenario.parse_time(r["completedAt"]).replace(
        tzinfo=datetime.timezone.utc).timestamp() - CLOCK_OFFSET) * 1e6
    lat = (end_us - first) / 1000 if first is not None else -1
    lo, hi = MAX_WAIT_MS - RETRY_AFTER_S * 1000 - 200, MAX_WAIT_MS + 2000
    if r.get("outcome") != "failed" or err.get("kind") != "exhausted" or \
            r.get("httpStatus") != 423 or "retry.max_wait_ms" not in (err.get("message") or ""):
        problems.append("%s: locked user's update: %s; expected failed/exhausted, http 423, a "
                        "message naming retry.max_wait_ms" % (tag, mapcheck.fmt_result(r)))
    if not lo <= lat <= hi:
        problems.append("%s: locked user's update ended %d ms after its first 423 (latencyMs "
                        "%s), expected %d..%d ms (retry.max_wait_ms %d)"
                        % (tag, lat, r.get("latencyMs"), lo, hi, MAX_WAIT_MS))
    else:
        log("%s: locked user's update ended %d ms after its first 423 (latencyMs %s)", tag, lat,
            r.get("latencyMs"))


def main():
    t0 = time.monotonic()
    if NO_MAX_WAIT:
        log("BWTEST_LOCKED_NO_MAX_WAIT: retry.max_wait_ms left out of the config")
    bases = [run("lb", locked=False)]
    locks = [run("lk", locked=True)]
    ratio = locks[0]["throughput"][2] / bases[0]["throughput"][2]
    if MIN_RATIO - NOISE_BAND <= ratio < MIN_RATIO:
        log("ratio %.3f just below %.2f: measuring both runs once more", ratio, MIN_RATIO)
        bases.append(run("lb2", locked=False))
        locks.append(run("lk2", locked=True))
    base = max(bases, key=lambda o: o["throughput"][2])
    lock = max(locks, key=lambda o: o["throughput"][2])
    ratio = lock["throughput"][2] / base["throughput"][2]
    problems = []
    log("throughput with a locked user / without: %.0f / %.0f events/s = %.3f (minimum %.2f)",
        lock["throughput"][2], base["throughput"][2], ratio, MIN_RATIO)
    l423 = [r for r in lock["reqs"] if r["userId"] == LOCKED and r["status"] == 423]
    log("locked user: %d 423 answers", len(l423))
    if ratio < MIN_RATIO:
        problems.append("other users' throughput with one locked workspace is %.1f%% of the run "
                        "without it (%d events in %.2f s = %.0f/s vs %d in %.2f s = %.0f/s): a "
                        "423 slowed everybody down"
                        % (100 * ratio, lock["throughput"][0], lock["throughput"][1],
                           lock["throughput"][2], base["throughput"][0], base["throughput"][1],
                           base["throughput"][2]))
    for o in bases + locks:
        if o.get("others_error"):
            problems.append("%s: %s" % (o["tag"], o["others_error"]))
        check_run(o, problems)
    for o in locks:
        check_locked(o, problems)
    mapcheck.fail_if(problems, "a locked workspace held others up or never ended")
    scenario.report("locked", t0, ratio="%.3f" % ratio, locked_423s=len(l423),
                    runs=len(bases) + len(locks))


if __name__ == "__main__":
    main()
