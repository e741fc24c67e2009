#!/usr/bin/python3
"""STATUS= while the consumer group has not assigned this instance anything,
and when it assigned it nothing.

Topics of one partition. The first bwprovd takes partition 0; its STATUS=
shows a lag number and no assignment reason. A second one (same group)
then joins: before the group's answer its STATUS= says "waiting for a
partition assignment from group bwprovd" with "lag -"; once the
rebalance is done it gets no partition and says "no partitions assigned:
group bwprovd gave every partition of <topic> to other members", still
"lag -" (never "lag 0": nothing is caught up when there is nothing to
read). An event produced meanwhile is handled by the first. Both stop
with exit 0."""
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

WAITING = "; waiting for a partition assignment from group bwprovd"
NONE = ("; no partitions assigned: group bwprovd gave every partition of %s to other members"
        % bwtest.TOPIC_EVENTS)
COUNTERS = re.compile(r"^\d+ ok, \d+ failed, \d+ rejected, \d+ in flight, lag (\d+|-), \d+ ev/s")


def wait_status(d, pred, timeout, desc, after=None):
    try:
        return d.wait_notification("STATUS", lambda s: pred(s), timeout=timeout,
                                   after=after).value
    except bwtest.Timeout as e:
        raise AssertionError("no STATUS= showed %s within %s s: %s" % (desc, timeout, e))


def check_second(mk, d1, d2):
    d2.wait_ready(60)
    s = wait_status(d2, lambda s: NONE in s, 45, "no partitions")
    waiting = [x for x in d2.statuses() if WAITING in x]
    log("second instance, waiting: %r", waiting[:1])
    log("second instance, assigned nothing: %r", s)
    assert waiting, "no STATUS said %r before the assignment: %s" % (WAITING, d2.statuses())
    assert all(", lag -," in x for x in waiting), waiting
    assert ", lag -," in s, "lag shown with no partition: %r" % s
    bad = [x for x in d2.statuses() if not COUNTERS.match(x) and not x.startswith("Waiting for Kafka")]
    assert not bad, "STATUS= without the counters: %s" % bad
    # The first instance has the partition back and works.
    s1 = wait_status(d1, lambda s: re.search(r"lag \d+,", s) and "; waiting" not in s
                     and "; no partitions" not in s, 30, "the first instance assigned",
                     after=time.monotonic())
    ev = bwtest.provision("grp1@sp.com")
    mk.produce(bwtest.TOPIC_EVENTS, [ev])
    res = scenario.wait_results(mk, [ev["eventId"]], 60)
    assert res[-1]["outcome"] == "succeeded", res
    s2 = wait_status(d2, lambda s: True, 5, "a STATUS", after=time.monotonic())
    assert NONE in s2, s2
    log("first: %r; second: %r", s1, s2)
    assert d2.stop() == 0, d2.log_tail()


def main():
    with bwtest.MockKafka(partitions=1) as mk, bwtest.WebSim() as sim:
        d1 = bwtest.Daemon(mk.bootstrap, sim)
        d2 = bwtest.Daemon(mk.bootstrap, sim)
        with d1:
            d1.wait_ready(60)
            s = wait_status(d1, lambda s: re.search(r"lag \d+,", s) and "; waiting" not in s,
                            30, "the first instance assigned")
            log("first instance: %r", s)
            with d2:
                check_second(mk, d1, d2)
            assert d1.stop() == 0, d1.log_tail()
    print("status_group: waiting for an assignment, then no partitions, lag '-' throughout")


if __name__ == "__main__":
    main()
