#!/usr/bin/python3
"""Kafka outages: every broker of the mock cluster down for 15 s mid-run,
then injected errors on Produce and OffsetCommit. Nothing is lost (every
event gets its result, each workspace is created once), the daemon stays
up, STATUS= says Kafka is unreachable during the outage, and results flow
again within 5 s of the brokers' return."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

USERS = 300


def results(mk):
    try:
        return len(mk.consume(bwtest.TOPIC_RESULTS, timeout=5))
    except bwtest.HarnessError:
        return 0


def main():
    evs = [bwtest.provision("ko%04d@sp.example.com" % i) for i in range(USERS)]
    first, second = evs[:200], evs[200:]
    # 200 ms per request, 8 at a time: the first batch takes ~5 s of API
    # work, so results pile up in the producer while Kafka is away.
    with bwtest.MockKafka(partitions=4, brokers=1) as mk, \
            bwtest.WebSim(faults={"latencyMs": 200}) as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config={"webex.max_in_flight": 8}) as d:
        d.wait_ready(60)
        mk.produce(bwtest.TOPIC_EVENTS, first)
        bwtest.wait_until(lambda: results(mk) >= 10, timeout=60, desc="first results")

        before = results(mk)  # nothing can be added while the brokers are down
        assert before < len(first), "nothing was left for after the outage"
        mk.down("all")
        t_down = time.monotonic()
        bwtest.wait_until(lambda: any("Kafka unreachable" in n.value
                                      for n in d.notifications_for("STATUS") if n.t > t_down),
                          timeout=15, desc="STATUS saying Kafka is unreachable")
        time.sleep(max(0.0, 15 - (time.monotonic() - t_down)))
        assert d.running(), "daemon exited during the outage:\n" + d.log_tail()
        mk.up("all")
        t_up = time.monotonic()
        resumed = bwtest.wait_until(lambda: results(mk) > before and time.monotonic(),
                                    timeout=30, interval=0.2, desc="results after recovery")
        assert resumed - t_up <= 5, "results resumed %.1f s after recovery" % (resumed - t_up)
        d.wait_log("Kafka reachable again", timeout=10)

        # Injected errors on produce and on offset commit.
        mk.errors("Produce", 6, "NOT_LEADER_FOR_PARTITION")
        mk.errors("OffsetCommit", 4, "REQUEST_TIMED_OUT")
        sim.faults({"latencyMs": 5})
        mk.produce(bwtest.TOPIC_EVENTS, second)
        # Replays after the outage add duplicates: wait for every event, not
        # for a number of records.
        want = {e["eventId"] for e in evs}

        def all_there():
            got = mk.consume(bwtest.TOPIC_RESULTS, timeout=10)
            return want <= set(bwtest.results_by_event(got)) and got
        try:
            res = bwtest.wait_until(all_there, timeout=120, interval=1, desc="every result")
        except bwtest.Timeout:
            got = bwtest.results_by_event(mk.consume(bwtest.TOPIC_RESULTS, timeout=10))
            raise AssertionError("%d events without a result" % len(want - set(got)))
        by = bwtest.results_by_event(res)
        bad = [r for rs in by.values() for r in rs if r["outcome"] != "succeeded"]
        assert not bad, bad[:3]
        st = sim.stats()
        assert st["createdTotal"] == USERS, st
        assert st["violations"] == {"retryAfter": 0, "concurrentUser": 0}, st
        assert d.stop() == 0, d.log_tail()
        dups = len(res) - USERS
    print("kafka outage: 15 s down, results again %.1f s after recovery, %d duplicate results"
          % (resumed - t_up, dups))


if __name__ == "__main__":
    main()
