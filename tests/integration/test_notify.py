#!/usr/bin/python3
"""systemd notification protocol, end to end on a real NOTIFY_SOCKET:
READY after Kafka answered; STATUS= with live counters; WATCHDOG=1 at half
of WATCHDOG_USEC (with WATCHDOG_PID naming the daemon) that stops when a
worker hangs (test hook) and goes on while the API is down; RELOADING=1 with
MONOTONIC_USEC then READY=1 on SIGHUP, also for an invalid file (old
settings kept); STOPPING=1 and exit 0 on SIGTERM."""
import os
import re
import signal
import stat
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

WATCHDOG_USEC = 1000000
# "lag -" until the group assigns partitions (0 would claim nothing is left)
STATUS_RE = re.compile(r"^\d+ ok, \d+ failed, \d+ rejected, \d+ in flight, lag (\d+|-), \d+ ev/s")


def wrapper(d):
    """bwprovd started through sh so WATCHDOG_PID can name the final pid."""
    path = os.path.join(d.dir, "with-watchdog-pid")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexport WATCHDOG_PID=$$\nexec "$BWPROVD_REAL" "$@"\n')
    os.chmod(path, stat.S_IRWXU)
    return path


def pings(d, t0, t1):
    return [n.t for n in d.notifications_for("WATCHDOG") if t0 <= n.t <= t1]


def check_cadence(d):
    t0 = time.monotonic()
    time.sleep(3.2)
    ts = pings(d, t0, time.monotonic())
    assert 4 <= len(ts) <= 9, "expected ~6 WATCHDOG=1 in 3 s, got %d" % len(ts)
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    assert all(0.2 <= g <= 0.8 for g in gaps), "watchdog gaps %s" % gaps


def check_reload(d, good_config):
    t0 = time.monotonic()
    d.reload()
    n = d.wait_notification("RELOADING", after=t0, timeout=10)
    mono = [x for x in d.notifications_for("MONOTONIC_USEC") if x.t >= t0]
    assert mono and abs(int(mono[0].value) / 1e6 - time.monotonic()) < 5, mono
    d.wait_notification("READY", after=n.t, timeout=10)

    # An invalid file: RELOADING, the error is logged, READY again, still running.
    with open(d.config_path, "a") as f:
        f.write("webex.max_in_flight = many\n")
    t1 = time.monotonic()
    d.send_signal(signal.SIGHUP)
    n = d.wait_notification("RELOADING", after=t1, timeout=10)
    d.wait_notification("READY", after=n.t, timeout=10)
    d.wait_log("reload failed", timeout=10)
    assert d.running()
    with open(d.config_path, "w") as f:
        f.write(good_config)


def main():
    with bwtest.MockKafka(partitions=2) as mk, bwtest.WebSim() as sim:
        d = bwtest.Daemon(mk.bootstrap, sim, watchdog_usec=WATCHDOG_USEC,
                          env={"BWPROVD_DEBUG_HANG": "1"})
        d.extra_env["BWPROVD_REAL"] = d.binary
        d.binary = wrapper(d)
        with d:
            ready = d.wait_ready(60)
            first_status = d.notifications_for("STATUS")[0]
            assert first_status.t <= ready.t, "no STATUS while waiting for Kafka"

            events = [bwtest.provision("n%03d@sp.com" % i) for i in range(20)]
            mk.produce(bwtest.TOPIC_EVENTS, events)
            mk.consume(bwtest.TOPIC_RESULTS, count=20, timeout=60)
            bwtest.wait_until(lambda: any(s.startswith("20 ok") for s in d.statuses()),
                              timeout=10, desc="STATUS counting 20 ok")
            # start-up (Kafka, the producer id, the state journal), then counters
            starting = ("Waiting for Kafka", "Reading the state topic")
            running = [s for s in d.statuses() if not s.startswith(starting)]
            assert all(STATUS_RE.match(s) for s in running), d.statuses()
            assert "Waiting for Kafka to give the idempotent producer its id" in d.statuses(), \
                d.statuses()

            check_cadence(d)
            # An API outage is not a hang: pings go on, STATUS shows the work.
            sim.faults({"outage": {"forMs": 4000}})
            mk.produce(bwtest.TOPIC_EVENTS, [bwtest.provision("outage@sp.com")])
            check_cadence(d)

            with open(d.config_path) as f:
                good = f.read()
            check_reload(d, good)

            # A hung worker (test hook): the pings stop.
            d.send_signal(signal.SIGUSR1)
            d.wait_log("debug hook: worker 0 hangs", timeout=10)
            time.sleep(1.5)
            t0 = time.monotonic()
            time.sleep(2.5)
            late = pings(d, t0, time.monotonic())
            assert not late, "watchdog still pinging with a hung worker: %s" % late
            d.wait_log("watchdog: the HTTP worker thread made no progress", timeout=5)

            t_stop = time.monotonic()
            rc = d.stop()
            assert rc == 0, "exit %s\n%s" % (rc, d.log_tail())
            stopping = [n for n in d.notifications_for("STOPPING") if n.t >= t_stop]
            assert stopping, "no STOPPING=1"
    print("notify: READY, STATUS, WATCHDOG cadence and hang, RELOADING, STOPPING as specified")


if __name__ == "__main__":
    main()
