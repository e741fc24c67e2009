#!/usr/bin/python3
"""make demo: a mock Kafka cluster and the Webex API simulator on loopback,
the real bwprovd between them, a handful of events (the seed's example
workspace among them), and the outcomes as a table. Everything is shut down
at the end, whatever happens."""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import bwtest  # noqa: E402

SEED_USER = "95547321@sp.com"
SEED_PROVISIONING_ID = ("ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVmNTk0LTViNTEtNDdi"
                        "ZS05Mzk2LTZjMzZlMmFkODNhNQ")


ERROR_USER = "eve@acme.sp.com"
EMAIL_USER = "val@acme.sp.com"


def events():
    seed = bwtest.provision(SEED_USER, provisioningId=SEED_PROVISIONING_ID,
                            displayName="Conference Room", primaryPhoneNumber="+1-240-555-1212",
                            extension="51212")
    lobby = "lobby@acme.sp.com"
    recs = [
        seed,
        bwtest.provision(lobby, displayName="Lobby Phone", extension="1000"),
        bwtest.provision("boardroom@acme.sp.com", displayName="Boardroom"),
        bwtest.update(SEED_USER, extension="51213"),
        bwtest.update(lobby, newUserId="reception@acme.sp.com"),
        bwtest.remove("boardroom@acme.sp.com"),
        bwtest.remove("never-provisioned@acme.sp.com"),
        bwtest.update("unknown@acme.sp.com", extension="1"),
        # subscribers: provisioned asynchronously (polled), then updated
        bwtest.sub_provision("95547322@sp.com", firstName="John", lastName="Andersen",
                             package="basic", email="john@acme.example"),
        bwtest.sub_update("95547322@sp.com", package="premium"),
        bwtest.sub_provision("jane@acme.sp.com", firstName="Jane", lastName="Doe",
                             package="standard"),
        # Webex ends these two elsewhere: in error, and waiting for the person
        bwtest.sub_provision(ERROR_USER, firstName="Eve", lastName="Error", package="basic"),
        bwtest.sub_provision(EMAIL_USER, firstName="Val", lastName="Idate", package="basic",
                             email="val@acme.example"),
    ]
    out = [bwtest.event_record(e) for e in recs]
    out.append(("broken@acme.sp.com", '{"eventId": "demo-broken", "type": "workspace.provision"'))
    return out


def table(results):
    rows = [("OUTCOME", "HTTP", "TYPE", "USER", "NOTE / ERROR")]
    for m in results:
        r = json.loads(m["value"])
        err = r["error"]
        detail = r["note"] or ("%s: %s" % (err["kind"], err["message"]) if err else "")
        rows.append((r["outcome"], str(r["httpStatus"] or "-"), (r["type"] or "-"),
                     r["userId"] or m["key"] or "-", detail[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    os.environ.setdefault("BWPROVD", os.path.join(build, "daemon", "bwprovd"))
    os.environ.setdefault("MOCKKAFKA", os.path.join(build, "tests", "kafka", "mockkafka"))
    os.environ.setdefault("WEBSIM", os.path.join(build, "tests", "sim", "websim"))
    with bwtest.MockKafka(partitions=4) as mk, bwtest.WebSim() as sim, \
            bwtest.Daemon(mk.bootstrap, sim) as d:
        print("Kafka (librdkafka mock cluster): %s" % mk.bootstrap)
        print("Webex API simulator:             %s" % sim.base_url)
        d.wait_ready(60)
        sim.subscriber_settings(delay_ms=1000)  # Webex takes a second per subscriber
        sim.subscriber_outcomes({
            ERROR_USER: {"status": "error", "errors": [
                {"errorCode": 1001, "description": "License assignment failed"}]},
            EMAIL_USER: {"status": "pending_email_validation"}})
        print("bwprovd is READY (pid %d); producing events ..." % d.pid)
        recs = events()
        t0 = time.monotonic()
        mk.produce(bwtest.TOPIC_EVENTS, recs)
        results = mk.consume(bwtest.TOPIC_RESULTS, count=len(recs), timeout=60)
        results.sort(key=lambda m: json.loads(m["value"])["completedAt"])
        print("\n%d events, %d results in %.1f s:\n" % (len(recs), len(results),
                                                       time.monotonic() - t0))
        table(results)
        print("\nbwprovd's log for the subscriber 95547322@sp.com (asynchronous: polled):")
        for line in d.log_lines():
            rec = bwtest.parse_logfmt(line)
            if rec.get("msg", "").startswith("subscriber.provision 95547322@sp.com"):
                msg = re.sub(r"(Y2lz[A-Za-z0-9_-]{12})[A-Za-z0-9_-]+", r"\1…", rec["msg"])
                print("  %s  %s" % (rec.get("ts", "")[11:23], msg))
        dlq = mk.consume(bwtest.TOPIC_DLQ)
        print("\nDead-letter topic: %d record(s)" % len(dlq))
        for m in dlq:
            print("  %s  bwprovd-error=%s" % (m["key"], m["headers"].get("bwprovd-error")))
        ws = sim.workspaces()
        print("\nWorkspaces now in (simulated) Webex: %d" % ws["count"])
        for w in ws["workspaces"]:
            print("  %-24s ext %-6s %s" % (w["userId"], w.get("extension") or "-", w["id"][:40]))
        subs = sim.subscribers()
        print("\nSubscribers now in (simulated) Webex: %d" % subs["count"])
        for sb in subs["subscribers"]:
            print("  %-24s %-8s %-12s %s" % (sb["userId"], sb.get("package"), sb.get("status"),
                                            sb["id"][:40]))
        statuses = d.statuses()
        if statuses:
            print("\nLast STATUS= sent to systemd: %s" % statuses[-1])
        rc = d.stop()
        print("\nbwprovd stopped on SIGTERM with exit status %d" % rc)
        return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
