#!/usr/bin/python3
"""Scenario: no idempotent producer, no start (issue "Real Apache Kafka",
point 7; mock cluster).

bwprovd's records must never be duplicated or reordered by a retry, which
the idempotent producer gives; librdkafka raises a fatal error when Kafka
cannot give it one (no broker supports it, or the cluster refuses the
producer id, as a Kafka before 2.8 without IdempotentWrite does). The mock
cluster answers the producer's InitProducerId with
CLUSTER_AUTHORIZATION_FAILED:

* bwprovd never says READY=1 and takes no event (Webex sees no request);
* it exits 78 (RestartPreventExitStatus: systemd does not loop), with a
  log line that names the idempotent producer and what Kafka it needs, and
  a last STATUS= that says it stopped;
* with the errors gone, a new start on the same cluster processes events
  (the refusal was the cause).

The producer id is waited for before the first event in every start
(STATUS "Waiting for Kafka to give the idempotent producer its id");
test_notify checks that STATUS.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

EXIT_CONFIG = 78


def refused_start(mk, sim):
    ev = bwtest.provision("idem-0@sp.example.com")
    mk.produce(bwtest.TOPIC_EVENTS, [ev])
    # more than librdkafka asks for before it gives up (it asks once)
    mk.errors("InitProducerId", 20, "CLUSTER_AUTHORIZATION_FAILED")
    seq = sim.requests()["next"]
    d = bwtest.Daemon(mk.bootstrap, sim)
    with d:
        t0 = time.monotonic()
        rc = d.wait(timeout=60)
        took = time.monotonic() - t0
        assert rc == EXIT_CONFIG, "exit %s, expected %d\n%s" % (rc, EXIT_CONFIG, d.log_tail())
        line = d.wait_log("idempotent producer", timeout=5)
        assert "Kafka 0.11" in line and "IdempotentWrite" in line, line
        keys = [n.key for n in d.notifications]
        assert "READY" not in keys, "READY=1 without a producer id: %s" % keys
        last = d.statuses()[-1]
        assert last.startswith("Stopped"), d.statuses()
        assert not list(sim.all_requests(seq)), "Webex was called without a producer id"
    log("InitProducerId refused: exit %d after %.1f s, no READY, no request; %s", rc, took,
        line[:200])
    return ev


def normal_start(mk, sim, ev):
    mk.clear_errors("InitProducerId")
    with bwtest.Daemon(mk.bootstrap, sim) as d:
        d.wait_ready(60)
        res = scenario.wait_results(mk, [ev["eventId"]], 60)
        outcomes = [r["outcome"] for r in res if r.get("eventId") == ev["eventId"]]
        assert outcomes == ["succeeded"], res
        assert d.stop() == 0, d.log_tail()
    log("errors gone: the event held back meanwhile succeeded")


def main():
    t0 = time.monotonic()
    with bwtest.MockKafka(partitions=2) as mk, bwtest.WebSim() as sim:
        ev = refused_start(mk, sim)
        normal_start(mk, sim, ev)
    scenario.report("idempotence", t0)


if __name__ == "__main__":
    main()
