#!/usr/bin/python3
"""Kept-alive connections the API closes while idle. The workers leave an
idle pooled connection registered in their epoll set between requests
(daemon/engine.c, on_socket); when the server closes it, the socket turns
readable for good. This checks that bwprovd neither spins on it (CPU while
idle stays near zero) nor loses the next events (curl finds the connection
dead and opens a new one)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

USERS = ["idle-%02d@sp.com" % i for i in range(40)]
IDLE_S = 3.0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch(mk, evs, before):
    mk.produce(bwtest.TOPIC_EVENTS, evs)
    res = mk.consume(bwtest.TOPIC_RESULTS, count=before + len(evs), timeout=60)
    by = bwtest.results_by_event(res)
    for ev in evs:
        r = by[ev["eventId"]][0]
        assert r["outcome"] == "succeeded", r
    return len(res)


def main():
    with bwtest.MockKafka(partitions=2) as mk, \
            bwtest.WebSim(args=["--idle-timeout", "1"]) as sim:
        with bwtest.Daemon(mk.bootstrap, sim, config={"webex.max_in_flight": 32}) as d:
            d.wait_ready(60)
            seen = batch(mk, [bwtest.provision(u) for u in USERS], 0)
            opened = sim.stats().get("connections")
            cpu0 = cpu_seconds(d.pid)
            time.sleep(IDLE_S)  # the simulator closes every idle connection after 1 s
            idle_cpu = cpu_seconds(d.pid) - cpu0
            print("CPU while idle with closed pooled connections: %.2f s in %.0f s"
                  % (idle_cpu, IDLE_S))
            assert idle_cpu < 0.5, "bwprovd spins on closed idle connections"
            batch(mk, [bwtest.update(u, displayName="Room after idle") for u in USERS], seen)
            print("connections at the simulator: %s after the first batch, %s now"
                  % (opened, sim.stats().get("connections")))
            assert d.stop() == 0
        assert sim.stats()["createdTotal"] == len(USERS)
    print("ok")


if __name__ == "__main__":
    main()
