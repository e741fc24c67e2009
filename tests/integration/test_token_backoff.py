#!/usr/bin/python3
"""Scenario: the token refresh fails for good while events keep arriving.

Refresh-token flow (SPEC section 5) as in test_token.py: websim checks
--refresh-token/--client-id/--client-secret; bwprovd gets webex.client_id,
webex.client_secret_file and webex.refresh_token_file and starts with the
harness token from webex.access_token_file. Once 20 warm-up events
succeeded and its first refresh is done, the token endpoint is scripted
to answer 401 to every request and every token is expired (tokenExpiry
now). Then 400 provision events (one per user) are
produced in 16 batches, one every 0.5 s, so 401s keep arriving for about
8 s, 8 requests in flight, latency 20 ms.

Asserts, for the failing phase:
* the refresh backs off however many 401s arrive: at most 6 POST
  /v1/access_token in the 8 s after the first 401 (the schedule is an
  attempt at the first 401, then after 1, 2, 4 s: 4), no two of them less
  than 0.9 s apart, and at least 3 (the timed retries go on);
* one "token refresh failed" log line per attempt, not one per 401;
* every event ends failed/auth (exactly one result, nothing hangs waiting
  for a token) with one API request each, and is in the DLQ with
  ``bwprovd-error: auth: ...``.
Then the operator fixes it: the script is cleared and SIGHUP sent during
a backoff of 8 s; the daemon must refresh at once (within 2 s), and 50 new
events succeed. Finally SIGTERM exits 0 and no secret is in the log.

Before the backoff change every 401 wave started a refresh: 38 token
requests in those 8 s."""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 400
BATCHES = 16
BATCH_GAP_S = 0.5
LATE_USERS = 50
WARM_USERS = 20
IN_FLIGHT = 8
WINDOW_US = 8000000
MAX_IN_WINDOW = 6
REFRESH = "refresh-R-b4c0ff"
CLIENT_ID = "bwprovd-client-B"
SECRET = "client-secret-S-0ba1"


def main():
    t0 = time.monotonic()
    wl = scenario.Workload("tokb", USERS, seed=4011, updates=0, keep_every=1)
    warm = scenario.Workload("tokw", WARM_USERS, seed=4010, updates=0, keep_every=1,
                             base=39000000)
    late = scenario.Workload("tokl", LATE_USERS, seed=4012, updates=0, keep_every=1,
                             base=41000000)
    args = ["--refresh-token", REFRESH, "--client-id", CLIENT_ID, "--client-secret", SECRET]
    with bwtest.MockKafka(partitions=4) as mk, \
            bwtest.WebSim(faults={"latencyMs": 20}, args=args) as sim:
        d = bwtest.Daemon(mk.bootstrap, sim, config={"webex.max_in_flight": IN_FLIGHT})
        secret_path = scenario.write_secret(d.dir, "client_secret", SECRET)
        refresh_path = scenario.write_secret(d.dir, "refresh_token", REFRESH)
        d.config.update({"webex.client_id": CLIENT_ID, "webex.client_secret_file": secret_path,
                         "webex.refresh_token_file": refresh_path})
        with d:
            d.wait_ready(60)
            # Warm up: partitions assigned, and the token thread's first
            # refresh (it runs at start, beside READY) done, or it could
            # fetch a token after the expiry.
            warm.produce(mk)
            scenario.wait_all_results(mk, warm, timeout=60)
            bwtest.wait_until(lambda: [r for r in scenario.token_requests(sim)
                                       if r["status"] == 200],
                              timeout=30, interval=0.05, desc="the first refresh")
            t_fault = scenario.now_us()
            sim.faults({"script": [{"endpoint": "token", "status": 401, "count": 1000000}],
                        "tokenExpiry": {"now": True}})
            log("token endpoint answers 401 for good; tokens expired")
            per = USERS // BATCHES
            for b in range(BATCHES):
                wl.produce(mk, wl.events[b * per:(b + 1) * per])
                time.sleep(BATCH_GAP_S)
            results = [r for r in scenario.wait_all_results(mk, wl, timeout=60)
                       if r.get("eventId") in wl.by_id]
            grouped = scenario.check_results(wl, results, expect=lambda ev: scenario.failed("auth"))
            scenario.check_dlq(mk, wl, grouped, list(wl.by_id), "auth")
            reqs = [r for r in scenario.api_requests(sim) if scenario.event_of(wl, r)]
            per_event = scenario.requests_by_event(wl, reqs)
            scenario.check_attempts(grouped, per_event)
            n401 = sum(1 for r in reqs if r["status"] == 401)
            assert n401 == len(wl), "%d 401s for %d events" % (n401, len(wl))
            toks = sorted((r for r in scenario.token_requests(sim) if r["recvUs"] >= t_fault),
                          key=lambda r: r["recvUs"])
            first401 = min(r["recvUs"] for r in reqs)
            span_us = max(r["recvUs"] for r in reqs) - first401
            assert span_us >= WINDOW_US - 1000000, \
                "401s arrived over %.1f s only; the scenario needs about 8" % (span_us / 1e6)
            win = [r for r in toks if first401 <= r["recvUs"] < first401 + WINDOW_US]
            log("failing phase: %d 401s over %.1f s, %d token requests in the first 8 s "
                "(at %s s)", n401, span_us / 1e6, len(win),
                ["%.2f" % ((r["recvUs"] - first401) / 1e6) for r in win])
            assert len(win) <= MAX_IN_WINDOW, \
                "%d token requests in 8 s for %d 401s: the refresh does not back off " \
                "(at most %d expected)" % (len(win), n401, MAX_IN_WINDOW)
            assert len(win) >= 3, "only %d token requests in 8 s: the timed retries stopped" \
                % len(win)
            assert all(r["status"] == 401 and not r["auth"] for r in toks), toks
            gaps = [(b["recvUs"] - a["recvUs"]) / 1e6 for a, b in zip(toks, toks[1:])]
            assert all(g >= 0.9 for g in gaps), "token requests closer than the backoff: %s" % gaps
            deadline = time.monotonic() + 2  # an attempt's line follows its answer
            while True:
                failures = [x for x in d.log_lines() if "token refresh failed" in x]
                if len(failures) == len(toks) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert len(failures) == len(toks), \
                "%d 'token refresh failed' lines for %d attempts" % (len(failures), len(toks))
            assert d.running(), "bwprovd exited:\n" + d.log_tail()

            # The operator fixes the refresh and sends SIGHUP: an attempt at
            # once, not after the backoff (8 s by now).
            last = toks[-1]["recvUs"]
            sim.faults({"script": []})
            t_hup = time.monotonic()
            d.send_signal(signal.SIGHUP)
            d.wait_notification("READY", "1", timeout=10, after=t_hup)
            ok = bwtest.wait_until(
                lambda: [r for r in scenario.token_requests(sim)
                         if r["recvUs"] > last and r["status"] == 200],
                timeout=10, interval=0.05, desc="a token request after SIGHUP")
            delay = ok[0]["recvUs"] / 1e6 - t_hup
            log("refresh %.2f s after SIGHUP (the backoff had %.1f s left)", delay,
                (last / 1e6 + 8.0) - t_hup)
            assert delay < 2.0, "the refresh came %.2f s after SIGHUP" % delay
            late.produce(mk)
            late_results = [r for r in scenario.wait_all_results(mk, late, timeout=60)
                            if r.get("eventId") in late.by_id]
            scenario.check_results(late, late_results)
            assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
            text = "\n".join(d.log_lines(all_runs=True) + d.statuses())
            assert SECRET not in text and REFRESH not in text, "a secret appears in the log"
    scenario.report("token backoff", t0, events=len(warm) + len(wl) + len(late), unauthorized=n401,
                    token_requests_8s=len(win), token_requests=len(toks),
                    refresh_after_sighup_s="%.2f" % delay)


if __name__ == "__main__":
    main()
