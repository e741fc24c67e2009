#!/usr/bin/python3
"""Scenario (real Apache Kafka only): static group membership.

Two instances, A and B, with the product's defaults (group.instance.id
chosen by bwprovd, session.timeout.ms 45 s) share 8 partitions while
events keep arriving (~200 a second, fresh users). A is SIGKILLed and
started again at once, as systemd's Restart= or an operator would.

Asserted:

* after the restart, the first new result from one of A's partitions
  arrives within 5 s (RESTART_LIMIT_S; the figure is printed), and A owns
  the same partitions as before;
* B sees no rebalance: no "assigned", "revoked" or "lost" line in its log
  after the kill;
* every event has a result, and every result succeeded (no event lost),
  but provisions whose POST was on the wire at the SIGKILL or answered in
  the 50 ms before it (SPEC §4's bounded loss; the window README
  documents): those may end `conflict`;
* a third process started with B's group.instance.id: one of the two is
  fenced by the broker and exits 78 (so systemd's
  RestartPreventExitStatus=78 does not restart it in a loop) with a log
  line that names kafka.group.instance.id; the other keeps running.

The librdkafka mock cluster knows no static membership: this runs only
on a real broker (ctest -L kafka).
"""
import datetime
import os
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

PARTITIONS = 8
RATE = 200              # events a second, in batches
BATCH = 20
RESTART_LIMIT_S = 5.0
LOSS_WINDOW_MS = 50     # the SIGKILL window README documents (test_kafka_down_kill)
REBALANCE_RX = re.compile(r'msg="(assigned|revoked|lost) \d+ partition\(s\) of [^:]+: ([0-9,.]*)"')


def assignment(d):
    """The partitions the daemon's log says it owns (its last assign)."""
    owned = set()
    for line in d.log_lines():
        m = REBALANCE_RX.search(line)
        if not m:
            continue
        parts = {int(p) for p in m.group(2).split(",") if p.isdigit()}
        if m.group(1) == "assigned":
            owned |= parts
        else:
            owned -= parts
    return owned


def rebalance_lines(d):
    return [line for line in d.log_lines() if REBALANCE_RX.search(line)]


class Stream(threading.Thread):
    """Provisions for fresh users at RATE a second until stopped."""

    def __init__(self, mk):
        super().__init__(daemon=True)
        self.mk = mk
        self.events = []
        self.halt = threading.Event()
        self.error = None

    def run(self):
        n = 0
        try:
            while not self.halt.is_set():
                t = time.monotonic()
                batch = [bwtest.provision("%08d@st.sp.example.com" % (n + i),
                                          event_id="st-%06d" % (n + i)) for i in range(BATCH)]
                n += BATCH
                self.mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(e) for e in batch])
                self.events += batch
                self.halt.wait(max(0.0, BATCH / RATE - (time.monotonic() - t)))
        except Exception as e:  # reported by the main thread
            self.error = e


def first_result_after(mk, parts, t_wall):
    """The completedAt (epoch s) of the earliest result from ``parts``
    completed at or after ``t_wall``; None when there is none yet."""
    best = None
    for r in scenario.parse_results(mk.consume(bwtest.TOPIC_RESULTS)):
        t = scenario.parse_time(r["completedAt"]).replace(
            tzinfo=datetime.timezone.utc).timestamp()
        if r["source"]["partition"] in parts and t >= t_wall and (best is None or t < best):
            best = t
    return best


def main():
    if not bwtest.real_kafka():
        bwtest.skip("static membership needs a real broker (BWTEST_KAFKA=real)")
    t0 = time.monotonic()
    ck = scenario.Checks("static")
    with bwtest.Kafka(partitions=PARTITIONS) as mk, \
            bwtest.WebSim(faults={"latencyMs": 20}) as sim, \
            bwtest.Daemon(mk.bootstrap, sim) as a:
        a.wait_ready(60)
        bwtest.wait_until(lambda: assignment(a), 60, 0.2, "A assigned")
        b = bwtest.Daemon(mk.bootstrap, sim).start()
        b.wait_ready(60)
        bwtest.wait_until(lambda: assignment(b) and not assignment(a) & assignment(b) and
                          len(assignment(a) | assignment(b)) == PARTITIONS, 90, 0.2,
                          "A and B sharing every partition")
        a_parts, b_parts = assignment(a), assignment(b)
        log("A owns %s, B owns %s", sorted(a_parts), sorted(b_parts))
        stream = Stream(mk)
        stream.start()
        bwtest.wait_until(lambda: sim.stats()["requests"] >= 400, 60, 0.2, "events flowing")
        b_before = len(rebalance_lines(b))

        assert a.kill() == -9
        kill_us = scenario.now_us()
        t_restart = time.time()
        a.start()
        first = bwtest.wait_until(lambda: first_result_after(mk, a_parts, t_restart), 60, 0.2,
                                  "a result from A's partitions after the restart")
        took = first - t_restart
        log("first result from A's partitions %.2f s after the restart", took)
        ck.check("first new result within %.0f s of the restart" % RESTART_LIMIT_S,
                 took <= RESTART_LIMIT_S, "%.2f s" % took)
        time.sleep(3)
        stream.halt.set()
        stream.join(30)
        assert stream.error is None, "producing failed: %s" % stream.error
        ck.check("A owns the same partitions after the restart", assignment(a) == a_parts,
                 "before %s, after %s" % (sorted(a_parts), sorted(assignment(a))))
        b_after = rebalance_lines(b)[b_before:]
        ck.check("B saw no rebalance", not b_after, "; ".join(b_after[:4]))

        ids = [e["eventId"] for e in stream.events]
        results = scenario.wait_results(mk, ids, timeout=90)
        finals = scenario.final_results(results)
        # SPEC §4: a POST on the wire at the SIGKILL is answered after the
        # process died, and one answered in the last LOSS_WINDOW_MS before
        # it may not have reached the journal's disk; their replays get
        # 409 with no id to recover.
        cut = {r["trackingId"]: (r["doneUs"] - kill_us) / 1000.0
               for r in scenario.api_requests(sim) if r["method"] == "POST"
               and r["recvUs"] < kill_us <= r["doneUs"] + LOSS_WINDOW_MS * 1000}
        bad = [r for r in finals.values() if r["outcome"] != "succeeded" and not (
            (r["error"] or {}).get("kind") == "conflict" and r["trackingId"] in cut)]
        lost = sorted(cut[r["trackingId"]] for r in finals.values()
                      if r["outcome"] != "succeeded" and r["trackingId"] in cut)
        log("%d POST(s) on the wire at the SIGKILL or answered in the %d ms before it; %d of "
            "them ended conflict, answered at %s ms from the kill", len(cut), LOSS_WINDOW_MS,
            len(lost), ["%+.1f" % x for x in lost])
        ck.check("every event succeeded, but POSTs cut off by the SIGKILL", not bad,
                 "%d did not, e.g. %s" % (len(bad), bad[:2]))
        log("%d events, %d results", len(ids), len(results))

        # The same group.instance.id twice: the broker fences one of them.
        c = bwtest.Daemon(mk.bootstrap, sim, env={"BWPROVD_INSTANCE": b.instance})
        try:
            c.start()
            bwtest.wait_until(lambda: not b.running() or not c.running(), 60, 0.2,
                              "B or C fenced")
            gone, kept = (b, c) if not b.running() else (c, b)
            rc = gone.wait(5)
            fenced = [line for line in gone.log_lines() if "kafka.group.instance.id" in line
                      and "fenced" in line]
            log("fenced: %s, exit %s: %s", "B" if gone is b else "C", rc, fenced[:1])
            ck.check("the fenced instance exits 78", rc == 78, "exit %s" % rc)
            ck.check("its log says why", fenced, gone.log_tail(10))
            time.sleep(2)
            ck.check("the other one keeps running", kept.running(), kept.log_tail(10))
        finally:
            c.close()
        for d in (a, b):
            if d.running():
                ck.check("clean stop", d.stop(timeout=60) == 0, d.log_tail(10))
        b.close()
    print("STATIC MEMBERSHIP: first result %.2f s after SIGKILL and restart; B rebalanced %d "
          "time(s)" % (took, len(b_after)), flush=True)
    scenario.report("static", t0, restart_s="%.2f" % took, events=len(ids))
    ck.done()


if __name__ == "__main__":
    main()
