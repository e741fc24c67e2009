#!/usr/bin/python3
"""/metrics scraped by a real Prometheus (Debian's prometheus package).

bwprovd runs with metrics.listen on a free loopback port and the refresh
flow (websim's token endpoint gives tokens an hour and a refresh token 90
days). A Prometheus server (its own loopback port, storage in a temp dir)
scrapes it every second. The workload: 20 provisions that succeed, one
answered 429 with Retry-After: 1 (it waits, then succeeds), one answered 503
once (retried, succeeds), one answered 400 (failed, permanent), 2 updates
and a remove of provisioned users, and 2 events that are rejected (not JSON;
a provision without displayName). Once every result is on the results
topic and Prometheus has scraped it, its HTTP API (/api/v1/query) must give:

* up == 1 for the job; bwprovd_kafka_up, bwprovd_webex_up, auth_ok 1;
* events by outcome 25 succeeded, 1 failed, 2 rejected; errors by kind
  permanent 1, invalid 2; both the same as the results topic counts them;
* requests by method and code: POST 200 x22, 429, 503, 400 once each,
  PUT 200 x2, DELETE 204 x1; the duration histogram counts the same;
* one 429 Retry-After wait of about a second;
* two partitions assigned, a lag series for each;
* access and refresh token lifetimes as the simulator gave them.

A raw scrape passes `promtool check metrics` with nothing to say; anything
but GET /metrics is 404. Finally a second bwprovd whose metrics.listen is
taken exits 78 at once, naming the address. Every wait is bounded; every
process is stopped, also on failure."""
import collections
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402
from scrape import free_port, http  # noqa: E402

REFRESH = "refresh-M-5e7a11"
CLIENT_ID = "bwprovd-client-M"
SECRET = "client-secret-M-90d1"
TOKEN_LIFE_S = 3600
REFRESH_LIFE_S = 90 * 86400
OK_USERS = 20


class Prometheus:
    """A prometheus server scraping one target every second; its storage
    and log in a temp dir, its web API on a free loopback port."""

    def __init__(self, target):
        self.binary = shutil.which("prometheus")
        self.dir = bwtest._mkdtemp("bwt-prom-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: bwprovd\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        self.proc = None

    def __enter__(self):
        argv = [self.binary, "--config.file=" + self.config,
                "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"]
        with open(self.log_path, "ab") as logf:
            self.proc = bwtest._spawn(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        bwtest.wait_until(lambda: self._ready(), timeout=30, interval=0.2,
                          desc="prometheus ready on %s" % self.url)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("prometheus exited %s:\n%s" % (self.proc.returncode, self.tail()))
        try:
            return http("GET", self.url + "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def tail(self):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-20:])

    def query(self, q):
        """The instant vector of PromQL q: [(labels, float)]."""
        query = urllib.parse.urlencode({"query": q})
        status, body = http("GET", self.url + "/api/v1/query?" + query)
        assert status == 200, "query %r: HTTP %d %s" % (q, status, body)
        data = json.loads(body)["data"]["result"]
        return [(r["metric"], float(r["value"][1])) for r in data]

    def value(self, q):
        """The single value of q, or None when it has no sample."""
        res = self.query(q)
        assert len(res) <= 1, "query %r gave %d series: %s" % (q, len(res), res)
        return res[0][1] if res else None

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            bwtest._reap(self.proc, 15)
        bwtest._rmtree_unless_kept(self.dir, exc[0] is not None)
        return False


def workload():
    ok = [bwtest.provision("mx%03d@sp.com" % i) for i in range(OK_USERS)]
    special = [bwtest.provision(u) for u in ("mx-429@sp.com", "mx-503@sp.com", "mx-400@sp.com")]
    later = [bwtest.update(ok[0]["workspace"]["userId"], extension="4711"),
             bwtest.update(ok[1]["workspace"]["userId"], extension="4712"),
             bwtest.remove(ok[2]["workspace"]["userId"])]
    bad = [("mx-bad1@sp.com", "{not json"),
           bwtest.event_record(bwtest.provision("mx-bad2@sp.com", displayName=None))]
    return ok + special + later, bad


FAULTS = {
    "tokenLifetimeS": TOKEN_LIFE_S,
    "refreshTokenLifetimeS": REFRESH_LIFE_S,
    "script": [
        {"status": 429, "retryAfter": 1, "count": 1, "userId": "mx-429@sp.com"},
        {"status": 503, "count": 1, "userId": "mx-503@sp.com"},
        {"status": 400, "count": 1, "userId": "mx-400@sp.com"},
    ],
}


def topic_counts(mk):
    """Outcomes and error kinds as the results topic counts them."""
    outcomes, kinds = collections.Counter(), collections.Counter()
    for r in scenario.parse_results(mk.consume(bwtest.TOPIC_RESULTS)):
        outcomes[r["outcome"]] += 1
        if r.get("error"):
            kinds[r["error"]["kind"]] += 1
    return dict(outcomes), dict(kinds)


def check_scraped(prom, mk):
    """What Prometheus scraped matches what the workload did, and the
    results topic's counts."""
    v = prom.value
    assert v('up{job="bwprovd"}') == 1
    for name in ("bwprovd_kafka_up", "bwprovd_webex_up", "bwprovd_webex_auth_ok"):
        assert v(name) == 1, "%s = %s" % (name, v(name))
    outcomes = {m["outcome"]: x for m, x in prom.query("sum by (outcome) (bwprovd_events_total)")}
    assert outcomes == {"succeeded": 25, "failed": 1, "rejected": 2}, outcomes
    kinds = {m["kind"]: x for m, x in prom.query("bwprovd_event_errors_total > 0")}
    assert kinds == {"permanent": 1, "invalid": 2}, kinds
    on_topic = topic_counts(mk)
    assert on_topic == (outcomes, kinds), "results topic %s, Prometheus %s" % (
        on_topic, (outcomes, kinds))
    reqs = {(m["method"], m["code"]): x for m, x in prom.query("bwprovd_webex_requests_total")}
    want = {("POST", "200"): 22, ("POST", "429"): 1, ("POST", "503"): 1, ("POST", "400"): 1,
            ("PUT", "200"): 2, ("DELETE", "204"): 1}
    assert reqs == want, "requests by method and code: %s, expected %s" % (reqs, want)
    counts = {m["method"]: x for m, x in
              prom.query("bwprovd_webex_request_duration_seconds_count > 0")}
    assert counts == {"POST": 25, "PUT": 2, "DELETE": 1}, counts
    assert v('bwprovd_webex_request_duration_seconds_bucket{method="POST",le="+Inf"}') == 25
    assert v('bwprovd_webex_retry_after_waits_total{code="429"}') == 1
    waited = v('bwprovd_webex_retry_after_wait_seconds_total{code="429"}')
    assert 0.9 <= waited <= 1.1, "429 wait counted as %s s" % waited
    assert v("bwprovd_kafka_partitions_assigned") == 2
    lags = prom.query("bwprovd_kafka_consumer_lag_messages")
    assert sorted(m["partition"] for m, _ in lags) == ["0", "1"], lags
    assert all(x == 0 for _, x in lags), lags
    assert v("bwprovd_events_pending") == 0 and v("bwprovd_events_in_flight") == 0
    assert v("bwprovd_state_table_workspaces") == OK_USERS + 2 - 1
    access = v("bwprovd_webex_access_token_expires_in_seconds")
    refresh = v("bwprovd_webex_refresh_token_expires_in_seconds")
    assert access is not None and TOKEN_LIFE_S - 120 < access <= TOKEN_LIFE_S, access
    assert refresh is not None and REFRESH_LIFE_S - 120 < refresh <= REFRESH_LIFE_S, refresh
    log("Prometheus saw: %s; requests %s; 429 wait %.3f s; tokens %.0f s / %.0f s", outcomes,
        reqs, waited, access, refresh)


def check_raw(url):
    """promtool check metrics on a raw scrape; 404 for anything else."""
    status, text = http("GET", url + "/metrics")
    assert status == 200, status
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), \
        "promtool check metrics (exit %d):\n%s%s" % (r.returncode, r.stdout, r.stderr)
    for method, path in (("GET", "/"), ("GET", "/metrics/x"), ("POST", "/metrics"),
                         ("HEAD", "/metrics"), ("GET", "/debug")):
        got = http(method, url + path)[0]
        assert got == 404, "%s %s: HTTP %d, expected 404" % (method, path, got)
    log("raw scrape: %d bytes, promtool check metrics: no problems; others 404", len(text))


def check_taken(mk, sim, port):
    """A second daemon whose metrics.listen is in use: exit 78 at once."""
    d = bwtest.Daemon(mk.bootstrap, sim, config={"metrics.listen": "127.0.0.1:%d" % port})
    with d:
        t0 = time.monotonic()
        rc = d.wait(timeout=20)
        took = time.monotonic() - t0
        assert rc == 78, "exit %s with metrics.listen taken\n%s" % (rc, d.log_tail())
        line = d.wait_log("cannot listen on 127.0.0.1:%d" % port, timeout=5)
        assert "Address already in use" in line, line
    log("metrics.listen taken: exit 78 after %.1f s: %s", took, line)


def main():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        bwtest.skip("prometheus and promtool are not installed (Debian package prometheus)")
    events, bad = workload()
    port = free_port()
    target = "127.0.0.1:%d" % port
    args = ["--refresh-token", REFRESH, "--client-id", CLIENT_ID, "--client-secret", SECRET]
    with bwtest.MockKafka(partitions=2) as mk, bwtest.WebSim(faults=FAULTS, args=args) as sim:
        d = bwtest.Daemon(mk.bootstrap, sim, config={"metrics.listen": target})
        secret = scenario.write_secret(d.dir, "client_secret", SECRET)
        refresh = scenario.write_secret(d.dir, "refresh_token", REFRESH)
        d.config.update({"webex.client_id": CLIENT_ID, "webex.client_secret_file": secret,
                         "webex.refresh_token_file": refresh})
        with d, Prometheus(target) as prom:
            d.wait_ready(60)
            mk.produce(bwtest.TOPIC_EVENTS, events[:OK_USERS + 3])
            scenario.wait_results(mk, [e["eventId"] for e in events[:OK_USERS + 3]], 60)
            # the counters move with the run: the first batch alone first
            bwtest.wait_until(lambda: prom.value("sum(bwprovd_events_total)") == OK_USERS + 3,
                              timeout=30, interval=0.5, desc="Prometheus scraping the first batch")
            mk.produce(bwtest.TOPIC_EVENTS, events[OK_USERS + 3:] + bad)
            scenario.wait_results(mk, [e["eventId"] for e in events], 60)
            bwtest.wait_until(lambda: len(mk.consume(bwtest.TOPIC_RESULTS)) >= 28, timeout=30,
                              desc="the results of the rejected events")
            # The lag gauge is sampled once a second, so the scrape that
            # first shows all 28 outcomes may still show the last batch as lag.
            bwtest.wait_until(lambda: prom.value("sum(bwprovd_events_total)") == 28 and
                              prom.value("bwprovd_webex_refresh_token_expires_in_seconds") and
                              prom.value("sum(bwprovd_kafka_consumer_lag_messages)") == 0,
                              timeout=30, interval=0.5, desc="Prometheus scraping the outcome")
            check_scraped(prom, mk)
            check_raw("http://" + target)
            check_taken(mk, sim, port)
            rc = d.stop()
            assert rc == 0, "exit %s\n%s" % (rc, d.log_tail())
    print("metrics: Prometheus scraped what the workload did; promtool has nothing to say")


if __name__ == "__main__":
    main()
