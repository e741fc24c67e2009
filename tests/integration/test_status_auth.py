#!/usr/bin/python3
"""STATUS= and the journal when Webex authentication fails or is about to.

1. A token file the simulator refuses (401, also after the re-read): the
   events fail with kind auth and STATUS= says "; cannot authenticate to
   Webex since <UTC time> (<how long>): Webex refused the renewed access
   token (401)", the time being that of the first failure. A good token
   and SIGHUP: the next event succeeds, the log says Webex accepts the
   token again, the reason goes.
2. The refresh flow, with a token endpoint that gives refresh tokens 10
   days (refresh_token_expires_in): the journal (logfmt here) warns once,
   with its MESSAGE_ID, that the refresh token expires in 9 days (it is a
   few seconds less than 10), and not again over several STATUS periods
   (the warning repeats daily: unit_health checks the schedule); STATUS=
   says "; Webex refresh token expires in 9 days (<date>)". Then the token
   endpoint refuses (401) and SIGHUP forces a refresh: STATUS= says since
   when the refresh fails, and why."""
import datetime
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

AUTH = re.compile(r"; cannot authenticate to Webex since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC "
                  r"\((\d+)s\): (.*)$")
EXPIRES = re.compile(r"; Webex refresh token expires in (\d+) days "
                     r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\)")
MID_EXPIRING = "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c06"
REFRESH = "refresh-A-77a0c1"
CLIENT_ID = "bwprovd-client-A"
SECRET = "client-secret-A-1b2c"


def utc(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def status_after(d, t, pred, timeout):
    return d.wait_notification("STATUS", lambda s: pred(s), timeout=timeout, after=t).value


def refused_token(mk, sim):
    d = bwtest.Daemon(mk.bootstrap, sim, token="not-the-token")
    with d:
        d.wait_ready(60)
        t_wall = time.time()
        events = [bwtest.provision("auth%d@sp.com" % i) for i in range(3)]
        mk.produce(bwtest.TOPIC_EVENTS, events)
        res = scenario.wait_results(mk, [e["eventId"] for e in events], 60)
        kinds = {r["eventId"]: (r["outcome"], (r.get("error") or {}).get("kind")) for r in res}
        assert set(kinds.values()) == {("failed", "auth")}, kinds
        s = status_after(d, time.monotonic(), AUTH.search, 10)
        since, secs, why = AUTH.search(s).groups()
        log("refused token: %r", s)
        assert t_wall - 2 <= utc(since) <= time.time(), (since, t_wall)
        assert why == "Webex refused the renewed access token (401)", why
        d.set_token(sim.token)
        d.reload()
        ev = bwtest.provision("auth-ok@sp.com")
        mk.produce(bwtest.TOPIC_EVENTS, [ev])
        res = scenario.wait_results(mk, [ev["eventId"]], 60)
        assert [r["outcome"] for r in res if r["eventId"] == ev["eventId"]] == ["succeeded"]
        d.wait_log("Webex accepts the access token again", timeout=5)
        s = status_after(d, time.monotonic() + 0.5, lambda s: True, 5)
        assert "cannot authenticate" not in s, s
        assert d.stop() == 0, d.log_tail()


def refresh_expiring(mk, sim):
    d = bwtest.Daemon(mk.bootstrap, sim)
    secret = scenario.write_secret(d.dir, "client_secret", SECRET)
    refresh = scenario.write_secret(d.dir, "refresh_token", REFRESH)
    d.config.update({"webex.client_id": CLIENT_ID, "webex.client_secret_file": secret,
                     "webex.refresh_token_file": refresh})
    with d:
        d.wait_ready(60)
        line = d.wait_log(lambda ln: MID_EXPIRING in ln, timeout=20)
        rec = bwtest.parse_logfmt(line)
        log("warning: %s", line)
        assert rec.get("level") == "warning", rec
        assert "refresh token expires in 9 days" in rec.get("msg", ""), rec
        s = status_after(d, time.monotonic(), EXPIRES.search, 10)
        days, at = EXPIRES.search(s).groups()
        log("STATUS: %r", s)
        assert abs(utc(at) - (time.time() + 10 * 86400)) < 30, at
        time.sleep(6)  # three STATUS periods: no second warning the same day
        warned = [ln for ln in d.log_lines() if MID_EXPIRING in ln]
        assert len(warned) == 1, warned
        # The refresh breaks: since when, and why.
        sim.faults({"script": [{"endpoint": "token", "status": 401, "count": 1000}]})
        t0 = time.monotonic()
        d.reload()
        s = status_after(d, t0, AUTH.search, 10)
        why = AUTH.search(s).group(3)
        log("refresh refused: %r", s)
        assert why.startswith("token refresh failing: HTTP 401 from "), why
        assert REFRESH not in s and SECRET not in s
        assert d.stop() == 0, d.log_tail()


def main():
    args = ["--refresh-token", REFRESH, "--client-id", CLIENT_ID, "--client-secret", SECRET]
    with bwtest.MockKafka(partitions=2) as mk, \
            bwtest.WebSim(faults={"refreshTokenLifetimeS": 10 * 86400}, args=args) as sim:
        refused_token(mk, sim)
        refresh_expiring(mk, sim)
    print("status_auth: authentication failing since when, and the refresh token's expiry, "
          "in STATUS and the journal")


if __name__ == "__main__":
    main()
