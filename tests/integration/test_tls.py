#!/usr/bin/python3
"""TLS to the API: the simulator serves HTTPS with a CA generated here.
bwprovd trusts it through webex.ca_file and provisions over it; with
another CA, or with a certificate for a different host name, it fails closed
(no request reaches the API, the events fail after their retries and go to
the DLQ); plain http:// to a non-loopback host is refused at start."""
import os
import ssl
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402


def run(mk, sim, ca_file, users, expect_ok):
    config = {"webex.ca_file": ca_file, "retry.max_attempts": 2,
              "retry.backoff_initial_ms": 10, "retry.backoff_max_ms": 20}
    evs = [bwtest.provision(u) for u in users]
    before = len(mk.consume(bwtest.TOPIC_RESULTS))
    t0 = time.monotonic()
    with bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
        d.wait_ready(60)
        print("ready after %.1f s" % (time.monotonic() - t0))
        mk.produce(bwtest.TOPIC_EVENTS, evs)
        res = mk.consume(bwtest.TOPIC_RESULTS, count=before + len(evs), timeout=60)
        print("results after %.1f s" % (time.monotonic() - t0))
        assert d.stop() == 0
    by = bwtest.results_by_event(res)
    for ev in evs:
        r = by[ev["eventId"]][0]
        if expect_ok:
            assert r["outcome"] == "succeeded", r
        else:
            assert r["outcome"] == "failed" and r["error"]["kind"] == "exhausted", r
            assert r["httpStatus"] is None and "certificate" in r["error"]["message"].lower() \
                or "SSL" in r["error"]["message"], r


def main():
    with tempfile.TemporaryDirectory() as d:
        ca = bwtest.make_ca(d, "bwprovd-test-ca")
        other = bwtest.make_ca(d, "some-other-ca")
        good = bwtest.make_cert(d, ca, "sim", "DNS:localhost,IP:127.0.0.1")
        wrong_host = bwtest.make_cert(d, ca, "wronghost", "DNS:api.example.net")
        with bwtest.MockKafka(partitions=2) as mk:
            with bwtest.WebSim(tls=(good[0], good[1], ca[1])) as sim:
                assert sim.base_url.startswith("https://127.0.0.1:"), sim.base_url
                run(mk, sim, ca[1], ["tls-ok-%d@sp.com" % i for i in range(5)], True)
                assert sim.stats()["createdTotal"] == 5
                run(mk, sim, other[1], ["tls-wrongca@sp.com"], False)
                assert sim.stats()["requests"] == 5, "a request passed an untrusted certificate"
            with bwtest.WebSim(tls=(wrong_host[0], wrong_host[1], ca[1])) as sim:
                lax = ssl.create_default_context(cafile=ca[1])
                lax.check_hostname = False  # the admin calls only; bwprovd must refuse
                sim._opener = urllib.request.build_opener(
                    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=lax))
                run(mk, sim, ca[1], ["tls-wronghost@sp.com"], False)
                assert sim.stats()["requests"] == 0, "a request went to the wrong host name"
            # Waits for both: one pass of kcat -e once missed the record in
            # the other partition (1 run in 6 on trixie's librdkafka 2.8
            # mock; both were there when read again).
            dlq = mk.consume(bwtest.TOPIC_DLQ, count=2, timeout=30)
            assert len(dlq) == 2, dlq
        with bwtest.MockKafka(partitions=1) as mk:
            d = bwtest.Daemon(mk.bootstrap, "http://api.example.net/v1")
            p = d.check_config()
            assert p.returncode == 78 and "webex.base_url" in p.stderr and \
                "loopback" in p.stderr, (p.returncode, p.stderr)
            d.close()
    print("tls: verified, trusted via webex.ca_file, fails closed on wrong CA and host name")


if __name__ == "__main__":
    main()
