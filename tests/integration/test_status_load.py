#!/usr/bin/python3
"""STATUS= says how far the state table has loaded.

The state topic (2 partitions) is filled with 12,000 records before
bwprovd starts, in batches of 16 KiB; then the mock brokers answer every
request 150 ms late and the consumer side fetches at most 64 KiB per
partition, so reading them takes about 10 s (~1,000 records a second)
instead of a fraction of one.
While it reads, STATUS= must say "; loading the state table: P% (D of T
records)" with T the 12,000 records and D growing from one STATUS to a
later one; /metrics' bwprovd_state_table_load_ratio is between 0 and 1.
Once loaded the reason goes, the table holds the 12,000 users, and an
event for one of them is applied with the workspace the topic gave it
(an update: PUT to that id), which shows the events waited for the load.

The slow fetches only stretch the load so that a STATUS every 2 s can see
it; they are test settings, not a product default."""
import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402
from scrape import free_port, sample  # noqa: E402

RECORDS = 12000
RTT_MS = 150
LOADING = re.compile(r"; loading the state table: (\d+)% \((\d+) of (\d+) records\)")


def fill_state(mk):
    """RECORDS state records, produced in batches of 16 KiB at most: a fetch
    returns at least one whole batch whatever its size limit, so large
    batches would make the limit moot. (The mock also keeps only ~5 MB a
    partition: the records stay well below.)"""
    lines = []
    for i in range(RECORDS):
        user = "load%05d@sp.com" % i
        lines.append("%s\t%s" % (user, json.dumps({
            "kind": "workspace", "workspaceId": "ws-load-%05d" % i, "userId": user,
            "source": {"topic": "elsewhere", "partition": 0, "offset": i},
            "updatedAt": "2026-11-26T10:00:00.000Z"}, separators=(",", ":"))))
    argv = [os.environ.get("KCAT") or "kcat", "-P", "-b", mk.bootstrap, "-t", bwtest.TOPIC_STATE,
            "-K", "\t", "-X", "batch.size=16384", "-X", "linger.ms=5"]
    subprocess.run(argv, input="\n".join(lines) + "\n", text=True, check=True, timeout=120)


def main():
    url = "http://127.0.0.1:%d/metrics" % free_port()
    with bwtest.MockKafka(partitions=2) as mk, bwtest.WebSim() as sim:
        t0 = time.monotonic()
        fill_state(mk)
        log("%d state records produced in %.1f s", RECORDS, time.monotonic() - t0)
        mk.rtt("all", RTT_MS)
        d = bwtest.Daemon(mk.bootstrap, sim, config={
            "metrics.listen": url[7:-8],
            "kafka.consumer.max.partition.fetch.bytes": 65536})
        with d:
            d.wait_ready(60)
            first = d.wait_notification("STATUS", lambda s: LOADING.search(s), timeout=30)
            ratio = sample(url, "bwprovd_state_table_load_ratio")
            later = d.wait_notification("STATUS", lambda s: LOADING.search(s), timeout=10,
                                        after=first.t + 0.5)
            p1, d1, t1 = (int(x) for x in LOADING.search(first.value).groups())
            p2, d2, t2 = (int(x) for x in LOADING.search(later.value).groups())
            log("loading: %r, then %r; load ratio %s", first.value, later.value, ratio)
            assert t1 == t2 == RECORDS, (t1, t2)
            assert d1 < d2 < RECORDS and p1 <= p2 < 100, (first.value, later.value)
            assert ratio is not None and 0 <= ratio < 1, ratio
            done = d.wait_notification("STATUS", lambda s: not LOADING.search(s) and
                                       re.search(r"lag \d+,", s), timeout=60, after=later.t)
            log("loaded after %.1f s: %r", done.t - t0, done.value)
            assert sample(url, "bwprovd_state_table_load_ratio") == 1
            user = "load%05d@sp.com" % 123
            ev = bwtest.update(user, extension="5123")
            mk.produce(bwtest.TOPIC_EVENTS, [ev])
            res = scenario.wait_results(mk, [ev["eventId"]], 60)
            mine = [r for r in res if r["eventId"] == ev["eventId"]]
            assert [r["outcome"] for r in mine] == ["failed"] and \
                mine[0]["workspaceId"] == "ws-load-00123" and mine[0]["httpStatus"] == 404, mine
            assert d.stop() == 0, d.log_tail()
    print("status_load: the state table's load shown with its progress, then gone")


if __name__ == "__main__":
    main()
