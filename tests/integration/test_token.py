#!/usr/bin/python3
"""Scenario: the access token stops working in the middle of a run.

Part 1, refresh-token flow (SPEC section 5). websim checks
--refresh-token/--client-id/--client-secret and rotates refresh tokens
(refreshRotate: each refresh invalidates the earlier refresh tokens);
bwprovd gets webex.client_id, webex.client_secret_file and
webex.refresh_token_file (mode 0600 files in its temp dir) and keeps
webex.access_token_file (the harness token) for start-up. 750 events
(250 users x provision, update, remove), latency 50 ms, 8 in flight; after
200 and again after 450 answered requests every token is expired
(tokenExpiry now). Asserts: every event succeeded exactly once (no `auth`
failure), no event got two 401s in a row, attempts equal the simulator's
count; the simulator saw exactly one POST /v1/access_token per expiry,
although up to 8 requests in flight got a 401 each time (single flight;
a scheduled renewal cannot add one: expires_in is 14 days); the refresh
token file is still mode 0600 and holds the newest refresh token, which
the simulator accepts while the original one is refused; no secret in the
log or STATUS; per-user order, zero violations, end state.

Part 2, file mode (no refresh configuration). A file token cannot be
expired with tokenExpiry without also expiring whatever replaces it, so
the test uses token lifetimes instead: once requests flow, it obtains
token A valid for 2 s and token B valid for 14 days from the simulator
(as an operator's tool would), writes A to the token file and sends
SIGHUP (waiting for READY=1), then writes B to the file without a signal.
When A expires mid-run the daemon gets 401s, re-reads the file (SPEC:
after a 401) and carries on with B. Asserts: every event succeeded exactly
once, some requests got a 401 and each such event's next request
succeeded, at most two 401s per slot in flight (the re-read happens once,
when the first 401 is handled), and requests succeeded after the expiry.
"""
import os
import signal
import stat
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

USERS = 250
IN_FLIGHT = 8
REFRESH = "refresh-R-5c1d9e0a"
CLIENT_ID = "bwprovd-client-C"
SECRET = "client-secret-S-77f3"


def check_401_retries(wl, reqs):
    """No event got a 401 after a 401 (the retry after a renewal works)."""
    per_event = scenario.requests_by_event(wl, reqs)
    for eid, rs in per_event.items():
        st = [r["status"] for r in rs]
        for a, b in zip(st, st[1:]):
            assert not (a == 401 and b == 401), "%s: %s" % (eid, st)
    return per_event


def refresh_mode():
    t0 = time.monotonic()
    wl = scenario.Workload("tok", USERS, seed=401)
    args = ["--refresh-token", REFRESH, "--client-id", CLIENT_ID, "--client-secret", SECRET]
    with bwtest.MockKafka(partitions=4) as mk, \
            bwtest.WebSim(faults={"latencyMs": 50, "refreshRotate": True}, args=args) as sim:
        d = bwtest.Daemon(mk.bootstrap, sim, config={"webex.max_in_flight": IN_FLIGHT})
        secret_path = scenario.write_secret(d.dir, "client_secret", SECRET)
        refresh_path = scenario.write_secret(d.dir, "refresh_token", REFRESH)
        d.config.update({"webex.client_id": CLIENT_ID, "webex.client_secret_file": secret_path,
                         "webex.refresh_token_file": refresh_path})
        with d:
            d.wait_ready(60)
            wl.produce(mk)
            expiries = []
            for n in (200, 450):
                scenario.wait_requests(sim, n, timeout=60)
                sim.faults({"tokenExpiry": {"now": True}})
                expiries.append(scenario.now_us())
                log("tokens expired after %d requests", n)
            results = scenario.wait_all_results(mk, wl, timeout=60)
            grouped = scenario.check_results(wl, results)
            reqs = scenario.api_requests(sim)
            per_event = check_401_retries(wl, reqs)
            scenario.check_attempts(grouped, per_event)
            scenario.check_order(wl, reqs)
            st = scenario.check_no_violations(sim, reqs)
            assert st["unauthorized"] > 0, "no 401 at all: the expiry did not bite (%s)" % st
            toks = scenario.token_requests(sim)
            bounds = expiries + [float("inf")]
            for i in range(len(expiries)):
                win = [r for r in toks if bounds[i] <= r["recvUs"] < bounds[i + 1]]
                n401 = sum(1 for r in reqs if r["status"] == 401
                           and bounds[i] <= r["recvUs"] < bounds[i + 1])
                assert len(win) == 1 and win[0]["status"] == 200, \
                    "expiry %d: %d token requests (statuses %s) for %d 401s; expected one" % (
                        i + 1, len(win), [r["status"] for r in win], n401)
            scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
            assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
            mode = stat.S_IMODE(os.stat(refresh_path).st_mode)
            with open(refresh_path) as f:
                newest = f.read().strip()
            assert mode == 0o600, "refresh token file mode %o" % mode
            assert newest and newest != REFRESH, "the refresh token file was not rotated"
            text = "\n".join(d.log_lines(all_runs=True) + d.statuses())
            for secret in (SECRET, REFRESH, newest):
                assert secret not in text, "a secret appears in the log or STATUS"
            # The original refresh token was rotated away; the stored one works.
            old, _ = scenario.fetch_token(sim, REFRESH, CLIENT_ID, SECRET)
            assert old == 401, "the original refresh token still works (%s)" % old
            new, body = scenario.fetch_token(sim, newest, CLIENT_ID, SECRET)
            assert new == 200 and body.get("access_token"), \
                "the stored refresh token is refused (%s)" % new
    scenario.report("token refresh", t0, events=len(wl), requests=st["requests"],
                    unauthorized=st["unauthorized"], token_requests=len(toks),
                    before_first_expiry=len([r for r in toks if r["recvUs"] < expiries[0]]))


def file_mode():
    t0 = time.monotonic()
    wl = scenario.Workload("tokf", USERS, seed=402)
    with bwtest.MockKafka(partitions=4) as mk, bwtest.WebSim(faults={"latencyMs": 50}) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config={"webex.max_in_flight": IN_FLIGHT}) as d:
        d.wait_ready(60)
        wl.produce(mk)
        scenario.wait_requests(sim, 100, timeout=60)
        sim.faults({"tokenLifetimeS": 2})
        sa, a = scenario.fetch_token(sim, "any-refresh-token")
        a_until = scenario.now_us() + 2000000
        sim.faults({"tokenLifetimeS": 1209600})
        sb, b = scenario.fetch_token(sim, "any-refresh-token")
        assert sa == 200 and sb == 200, (sa, sb)
        d.set_token(a["access_token"])
        t_hup = time.monotonic()
        d.send_signal(signal.SIGHUP)
        d.wait_notification("READY", "1", timeout=10, after=t_hup)
        d.set_token(b["access_token"])  # no signal: the 401 makes it read this
        log("token A (2 s) loaded by SIGHUP, token B written to the file")
        left = len(wl) - sim.stats()["requests"]
        assert left > 150, "only %d events left before token A expires" % left
        results = scenario.wait_all_results(mk, wl, timeout=60)
        grouped = scenario.check_results(wl, results)
        reqs = scenario.api_requests(sim)
        per_event = check_401_retries(wl, reqs)
        scenario.check_attempts(grouped, per_event)
        n401 = [r for r in reqs if r["status"] == 401]
        assert n401, "no 401: token A did not expire during the run"
        assert len(n401) <= 2 * IN_FLIGHT, "%d 401s for %d in flight: the file was not re-read " \
            "once for all" % (len(n401), IN_FLIGHT)
        assert min(r["recvUs"] for r in n401) >= a_until - 100000, "401 before A expired"
        after = [r for r in reqs if r["recvUs"] > max(x["doneUs"] for x in n401) and r["auth"]]
        assert len(after) > 50, "only %d requests after the 401s" % len(after)
        scenario.check_order(wl, reqs)
        st = scenario.check_no_violations(sim, reqs)
        scenario.check_final_state(wl, sim, mk.consume(bwtest.TOPIC_STATE))
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()
        text = "\n".join(d.log_lines(all_runs=True) + d.statuses())
        assert a["access_token"] not in text and b["access_token"] not in text, \
            "a token appears in the log or STATUS"
    scenario.report("token file", t0, events=len(wl), requests=st["requests"],
                    unauthorized=len(n401), after_401=len(after))


def main():
    refresh_mode()
    file_mode()


if __name__ == "__main__":
    main()
