#!/usr/bin/python3
"""Backpressure (SPEC: at most pipeline.max_pending events held). With a
small limit and a slow API the consumer only holds back: no partition is
paused, nothing is lost, and STATUS never shows more events held than the
limit. When the API stops answering for longer than a second, the
partitions are paused (their prefetched records dropped) and resumed when
half the limit has drained; every event still gets its result."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

LIMIT = 40


def held(statuses):
    """Events held per STATUS= ("..., 17 in flight, ...")."""
    out = []
    for s in statuses:
        m = re.search(r"(\d+) in flight", s)
        if m:
            out.append(int(m.group(1)))
    return out


def run_batch(mk, tag, n, before):
    evs = [bwtest.provision("%s-%03d@sp.com" % (tag, i)) for i in range(n)]
    mk.produce(bwtest.TOPIC_EVENTS, evs)
    res = mk.consume(bwtest.TOPIC_RESULTS, count=before + n, timeout=90)
    by = bwtest.results_by_event(res)
    for ev in evs:
        assert by[ev["eventId"]][0]["outcome"] == "succeeded", by[ev["eventId"]]
    return len(res)


def main():
    config = {"pipeline.max_pending": LIMIT, "webex.max_in_flight": 8, "log.level": "debug",
              "retry.backoff_initial_ms": 50, "retry.backoff_max_ms": 200,
              "retry.max_attempts": 50}
    with bwtest.MockKafka(partitions=2) as mk, bwtest.WebSim() as sim:
        with bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
            d.wait_ready(60)
            sim.faults({"latencyMs": 20})
            seen = run_batch(mk, "slow", 300, 0)
            logs = "\n".join(d.log_lines())
            assert "paused:" not in logs, "a slow API alone must not pause partitions"
            # The API answers 503 for 3 s: the pipeline stays full past a second.
            sim.faults({"latencyMs": 0, "outage": {"forMs": 3000}})
            run_batch(mk, "outage", 200, seen)
            logs = "\n".join(d.log_lines())
            assert re.search(r'msg="paused: \d+ events pending', logs), "no pause in an outage"
            assert 'msg="resumed:' in logs, "partitions never resumed"
            time.sleep(2.5)  # one more STATUS after the last event
            counts = held(d.statuses())
            print("events held per STATUS: max %d of limit %d (%d samples)"
                  % (max(counts), LIMIT, len(counts)))
            assert counts and max(counts) <= LIMIT, counts
            assert d.stop() == 0
    print("ok")


if __name__ == "__main__":
    main()
