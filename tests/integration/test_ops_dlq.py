#!/usr/bin/python3
"""`bwprovd dlq list | replay` against a running daemon (the mock cluster,
the simulator with scripted failures). Five users' updates end in the DLQ:

  A  400, then a later update succeeds: replaying A's would undo it (stale)
  B  400 once: replayed, it succeeds
  C  400 every time: replayed three times, then the loop guard stops it
  D  not JSON (rejected, kind invalid): refused unless --force
  E  503 until retries are exhausted: replayed, it succeeds

Asserted: list shows one tab-separated line per record and its filters
(--user, --kind, --since, --until) select; --dry-run produces nothing; a
replay is the record's key and bytes, to the partition of the event it
came from, with bwprovd-replay-of/-count/-source; the daemon's DLQ copy of
a replay that fails again carries the count on (1, 2, 3), and the fourth
run skips it; the same replay run twice produces nothing twice (reported
"already replayed"); stale is skipped and reported, and --force replays
it; every DLQ record was replayed at most once; exit statuses (1 with a
refusal, 64 for bad filters); the daemon never rebalanced.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opscli import (bwtest, log, cli, copies, dlq_id, summary, check,  # noqa: E402
                    no_rebalance)

A, B, C, D, E = ("%s@dlq.sp.example.com" % x for x in "abcde")


class Run:
    """The daemon's results and DLQ as they grow."""

    def __init__(self, mk):
        self.mk = mk
        self.results = 0
        self.dlq = 0

    def events(self, evs, results=None, dlq=0):
        self.mk.produce(bwtest.TOPIC_EVENTS, evs)
        self.wait(len(evs) if results is None else results, dlq)

    def wait(self, results, dlq=0):
        self.results += results
        self.dlq += dlq
        got = self.mk.consume(bwtest.TOPIC_RESULTS, count=self.results, timeout=60)
        if dlq:
            self.mk.consume(bwtest.TOPIC_DLQ, count=self.dlq, timeout=60)
        return got


def setup_failures(mk, sim, run):
    run.events([bwtest.provision(u) for u in (A, B, C, E)])
    sim.faults({"script": [
        {"status": 400, "method": "PUT", "userId": A, "count": 1},
        {"status": 400, "method": "PUT", "userId": B, "count": 1},
        {"status": 400, "method": "PUT", "userId": C, "count": 100},
        {"status": 503, "method": "PUT", "userId": E, "count": 2},
    ]})
    ups = [bwtest.update(u, extension="1111") for u in (A, B, C, E)]
    run.events(ups + [(D, '{"eventId": "d-1", "type": ')], dlq=5)
    run.events([bwtest.update(A, extension="2222")])  # A's newer change
    return {u: ev for u, ev in zip((A, B, C, E), ups)}


def lines(r):
    return [ln.split("\t") for ln in r.stdout.splitlines() if ln]


def check_list(d, ups):
    r = cli(d, "dlq", "list")
    rows = lines(r)
    check(r.returncode == 0 and len(rows) == 5 and all(len(x) == 8 for x in rows),
          "dlq list: one line of 8 tab-separated fields per record", r.stdout)
    by_user = {x[1]: x for x in rows}
    a = by_user[A]
    check(a[2] == "workspace.update" and a[3] == "permanent" and "Simulated failure" in a[4] and
          a[5].startswith(bwtest.TOPIC_EVENTS + "/") and a[6].startswith(bwtest.TOPIC_DLQ + "/")
          and a[7] == "0" and a[0].endswith("Z"),
          "a line: time, user, type, kind, reason, source, DLQ position, replays", a)
    check(by_user[D][2] == "-" and by_user[D][3] == "invalid" and by_user[E][3] == "exhausted",
          "an unparsable event has no type; kinds as the daemon wrote them", rows)
    cases = [
        (("--user", A), {A}),
        (("--kind", "permanent"), {A, B, C}),
        (("--kind", "invalid"), {D}),
        (("--kind", "exhausted", "--user", E), {E}),
        (("--since", "1h"), {A, B, C, D, E}),
        (("--since", "2099-01-01"), set()),
        (("--until", "2000-01-01T00:00:00Z"), set()),
        (("--since", "2000-01-01", "--until", "now"), {A, B, C, D, E}),
    ]
    for args, want in cases:
        r = cli(d, "dlq", "list", *args)
        got = {x[1] for x in lines(r)}
        check(r.returncode == 0 and got == want, "dlq list %s" % " ".join(args), (got, r.stderr))
    for bad in (("--kind", "bogus"), ("--since", "yesterday"), ("--since", "1h", "--until", "2h")):
        r = cli(d, "dlq", "list", *bad)
        check(r.returncode == 64, "dlq list %s: usage error (64)" % " ".join(bad), r.stderr)


def check_dry_run(mk, d):
    before = len(mk.consume(bwtest.TOPIC_EVENTS))
    r = cli(d, "dlq", "replay", "--dry-run")
    after = len(mk.consume(bwtest.TOPIC_EVENTS))
    check(r.returncode == 1 and after == before and summary(r.stdout) ==
          "would replay 3, skipped stale 1, skipped by the loop guard 0, already replayed 0, "
          "refused 1 (dry run: nothing produced)" and "refused" in r.stderr and
          "rejected again" in r.stderr,
          "replay --dry-run: B C E would be, A stale, D refused; nothing produced",
          (r.returncode, r.stdout, r.stderr, before, after))
    stale = [x for x in lines(r) if x[0] == "skipped stale"]
    check(len(stale) == 1 and stale[0][2] == A and "after the event's offset" in stale[0][3],
          "the stale record is reported with its reason", stale)


def check_copy(mk, dlq_rec, count, origin):
    got = copies(mk).get(dlq_id(dlq_rec), [])
    check(len(got) == 1, "one replay of %s" % dlq_id(dlq_rec), got)
    m = got[0]
    src = dlq_rec["headers"]["bwprovd-source"].rsplit("/", 2)
    check(m["key"] == dlq_rec["key"] and m["value"] == dlq_rec["value"] and
          m["partition"] == int(src[1]) and m["headers"].get("bwprovd-replay-count") == str(count)
          and m["headers"].get("bwprovd-replay-source") == origin,
          "the replay: same key and bytes, the event's partition, count %d, origin %s"
          % (count, origin), m)
    return m


def dlq_of(mk, user):
    return [m for m in mk.consume(bwtest.TOPIC_DLQ) if m["key"] == user]


def ext_of(sim, user):
    return [w.get("extension") for w in sim.workspaces()["workspaces"] if w["userId"] == user]


def check_twice(mk, sim, d, run):
    r = cli(d, "dlq", "replay", "--user", B)
    check(r.returncode == 0 and summary(r.stdout).startswith("replayed 1, "), "replay B", r.stdout)
    b0 = dlq_of(mk, B)[0]
    check_copy(mk, b0, 1, b0["headers"]["bwprovd-source"])
    r = cli(d, "dlq", "replay", "--user", B)
    check(r.returncode == 0 and summary(r.stdout) == "replayed 0, skipped stale 0, skipped by the "
          "loop guard 0, already replayed 1, refused 0", "the same run again produces nothing",
          r.stdout)
    run.wait(1)
    check(ext_of(sim, B) == ["1111"], "B's replayed update reached Webex", ext_of(sim, B))


def check_loop_guard(mk, d, run):
    origin = None
    for n in (1, 2, 3):
        r = cli(d, "dlq", "replay", "--user", C)
        check(r.returncode == 0 and summary(r.stdout).startswith("replayed 1, ") and
              "already replayed %d" % (n - 1) in summary(r.stdout),
              "replay C, round %d" % n, r.stdout)
        run.wait(1, dlq=1)  # it fails again: one more DLQ record
        recs = dlq_of(mk, C)
        origin = origin or recs[0]["headers"]["bwprovd-source"]
        check_copy(mk, recs[n - 1], n, origin)
        last = recs[n]
        check(last["headers"].get("bwprovd-replay-count") == str(n) and
              last["headers"].get("bwprovd-replay-of") == dlq_id(recs[n - 1]) and
              last["headers"].get("bwprovd-replay-source") == origin,
              "the daemon's DLQ copy of the failed replay carries count %d on" % n, last["headers"])
    r = cli(d, "dlq", "replay", "--user", C)
    check(r.returncode == 0 and summary(r.stdout) == "replayed 0, skipped stale 0, skipped by the "
          "loop guard 1, already replayed 3, refused 0", "the fourth run: the loop guard", r.stdout)
    r = cli(d, "dlq", "list", "--user", C)
    check([x[7] for x in lines(r)] == ["0", "1", "2", "3"], "list shows the replay counts",
          r.stdout)


def check_stale_force(mk, sim, d, run):
    r = cli(d, "dlq", "replay", "--user", A)
    check(r.returncode == 0 and summary(r.stdout).startswith("replayed 0, skipped stale 1,") and
          not copies(mk).get(dlq_id(dlq_of(mk, A)[0])), "A is stale: skipped, nothing produced",
          r.stdout)
    r = cli(d, "dlq", "replay", "--user", A, "--force")
    check(r.returncode == 0 and summary(r.stdout).startswith("replayed 1, ") and
          "(stale: --force)" in r.stdout, "--force replays the stale record", r.stdout)
    run.wait(1)
    check(ext_of(sim, A) == ["1111"], "and it did undo the newer change, as asked", ext_of(sim, A))


def check_invalid_and_exhausted(mk, sim, d, run):
    r = cli(d, "dlq", "replay", "--kind", "invalid")
    check(r.returncode == 1 and summary(r.stdout).endswith("refused 1") and D in r.stderr,
          "a rejected event is refused (exit 1)", (r.stdout, r.stderr))
    r = cli(d, "dlq", "replay", "--kind", "invalid", "--force")
    check(r.returncode == 0 and summary(r.stdout).startswith("replayed 1, "),
          "with --force it is replayed", r.stdout)
    run.wait(1, dlq=1)
    again = dlq_of(mk, D)[-1]
    check(again["headers"].get("bwprovd-replay-count") == "1" and
          again["value"] == '{"eventId": "d-1", "type": ',
          "rejected again, its DLQ copy counts the replay", again)
    r = cli(d, "dlq", "replay", "--kind", "exhausted")
    check(r.returncode == 0 and summary(r.stdout).startswith("replayed 1, "), "replay E", r.stdout)
    run.wait(1)
    check(ext_of(sim, E) == ["1111"], "E's replayed update reached Webex", ext_of(sim, E))


def main():
    config = {"retry.max_attempts": 2, "retry.backoff_initial_ms": 50,
              "retry.backoff_max_ms": 100}
    with bwtest.Kafka(partitions=4) as mk, bwtest.WebSim() as sim, \
            bwtest.Daemon(mk.bootstrap, sim, config=config) as d:
        d.wait_ready(60)
        run = Run(mk)
        ups = setup_failures(mk, sim, run)
        log("5 records in the DLQ")
        check_list(d, ups)
        check_dry_run(mk, d)
        check_twice(mk, sim, d, run)
        check_loop_guard(mk, d, run)
        check_stale_force(mk, sim, d, run)
        check_invalid_and_exhausted(mk, sim, d, run)
        dup = {k: len(v) for k, v in copies(mk).items() if len(v) != 1}
        check(not dup and len(copies(mk)) == 7,
          "every DLQ record was replayed at most once (B, C x3, A, D, E)",
              (dup, len(copies(mk))))
        ok, detail = no_rebalance(d)
        check(ok, "the daemon kept its partitions: no rebalance", detail)
        check(d.stop() == 0, "the daemon stops cleanly")
    log("PASS")


if __name__ == "__main__":
    main()
