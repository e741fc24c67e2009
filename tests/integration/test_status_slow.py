#!/usr/bin/python3
"""STATUS= and /metrics name an event that has not finished for a while.

The simulator answers after 14 s (webex.timeout_ms is 60 s, so the request
is simply slow). One provision is produced. While it waits, STATUS= must
say "; oldest event unfinished for Ns (partition P offset O)" with N >= 10
(the threshold) naming the event's own partition and offset, not before
10 s, and bwprovd_oldest_unfinished_event_age_seconds must agree. Once
the answer is in, the reason goes and the gauge is 0 again."""
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402
from scrape import free_port, sample  # noqa: E402

LATENCY_MS = 14000
AGE = "bwprovd_oldest_unfinished_event_age_seconds"
REASON = re.compile(r"; oldest event unfinished for (\d+)s \(partition (\d+) offset (\d+)\)")


def main():
    url = "http://127.0.0.1:%d/metrics" % free_port()
    with bwtest.MockKafka(partitions=2) as mk, \
            bwtest.WebSim(faults={"latencyMs": LATENCY_MS}) as sim:
        d = bwtest.Daemon(mk.bootstrap, sim, config={
            "webex.timeout_ms": 60000, "metrics.listen": url[7:-8]})
        with d:
            d.wait_ready(60)
            bwtest.wait_until(lambda: any(re.search(r"lag \d+,", s) for s in d.statuses()),
                              timeout=30, desc="partitions assigned")
            ev = bwtest.provision("slow1@sp.com")
            mk.produce(bwtest.TOPIC_EVENTS, [ev])
            t0 = time.monotonic()
            rec = mk.consume(bwtest.TOPIC_EVENTS, count=1, timeout=10)[0]
            n = d.wait_notification("STATUS", lambda s: REASON.search(s), timeout=20, after=t0)
            age, part, off = (int(x) for x in REASON.search(n.value).groups())
            log("after %.1f s: %r", n.t - t0, n.value)
            assert n.t - t0 >= 9.5, "named after %.1f s, before the 10 s threshold" % (n.t - t0)
            assert 10 <= age <= n.t - t0 + 1.5, "age %d s after %.1f s" % (age, n.t - t0)
            assert (part, off) == (rec["partition"], rec["offset"]), (part, off, rec)
            g = sample(url, AGE)
            assert 9 <= g <= time.monotonic() - t0 + 1.5, g
            res = scenario.wait_results(mk, [ev["eventId"]], 30)
            assert res[-1]["outcome"] == "succeeded", res
            t1 = time.monotonic()
            n = d.wait_notification("STATUS", lambda s: True, timeout=5, after=t1 + 1.2)
            assert not REASON.search(n.value), n.value
            bwtest.wait_until(lambda: sample(url, AGE) == 0, timeout=5,
                              desc="the gauge back at 0")
            log("done: %r", n.value)
            assert d.stop() == 0, d.log_tail()
    print("status_slow: the oldest unfinished event named after 10 s, with its partition and "
          "offset; gone once it finished")


if __name__ == "__main__":
    main()
