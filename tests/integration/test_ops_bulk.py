#!/usr/bin/python3
"""The operator subcommands over thousands of records (the mock cluster, no
daemon: the records are written as a daemon would):

* progress: on a terminal (a pty), `state export`, `state import` and `dlq
  replay` draw a progress line on stderr (records done of the total, the
  rate, time left); with stderr on a pipe they print nothing but their
  summary;
* an interrupted replay resumes: SIGINT part-way (the queued records are
  still waited for, exit 1 with a summary), then SIGKILL part-way, then a
  run to the end: every DLQ record ends up replayed exactly once;
* export and import rates are logged (and export/import round-trip 3,000
  workspaces).
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opscli import (bwtest, log, wsid, cli, cli_on_tty, state_record, copies, summary,  # noqa: E402
                    check, interrupt_when, signal)

N = 3000


def bulk_state(mk):
    recs = [("bulk%05d@sp" % i, state_record("bulk%05d@sp" % i, wsid(), i % 4, i)) for i in
            range(N)]
    mk.produce(bwtest.TOPIC_STATE, recs, timeout=120)


def bulk_dlq(mk):
    """N failed events of users the map does not know, as the daemon copies
    them to the DLQ."""
    for p in range(4):
        recs = [("dlq%05d@sp" % i, '{"eventId":"e%d","type":"workspace.update"}' % i)
                for i in range(p, N, 4)]
        mk.produce(bwtest.TOPIC_DLQ, recs, timeout=120, headers={
            "bwprovd-error": "exhausted: HTTP 503",
            "bwprovd-source": "%s/%d/0" % (bwtest.TOPIC_EVENTS, p)})


def progress_shown(text, what, total):
    """A progress line for `what` that reached total, with a rate."""
    done = re.findall(r"\r%s: ([\d,]+) of ([\d,]+) \((\d+)%%\)(, [\d,]+/s)?" % re.escape(what),
                      text)
    return bool(done) and done[-1][0] == done[-1][1] == "{:,}".format(total) and \
        done[-1][3] != "", done[-2:] if done else text[-300:]


def no_progress(stderr):
    return "\r" not in stderr and " of " not in stderr.replace("workspace(s)", ""), stderr


def check_export(d):
    out = os.path.join(d.dir, "export.jsonl")
    rc, tty = cli_on_tty(d, "state", "export", stdout_path=out)
    with open(out) as f:
        n = sum(1 for _ in f)
    check(rc == 0 and n == N, "export of %d workspaces on a terminal" % N, (rc, n, tty[-500:]))
    for what in ("reading the map", "exporting"):
        ok, detail = progress_shown(tty, what, N)
        check(ok, "progress on the terminal: %s" % what, detail)
    r = cli(d, "state", "export")
    check(r.returncode == 0 and len(r.stdout.splitlines()) == N and
          r.stderr.strip() == "bwprovd state export: %d workspace(s) and 0 subscriber(s) exported from %s"
          % (N, bwtest.TOPIC_STATE), "export on pipes: its summary, no progress", r.stderr)
    log("export of %d: %.2f s (%.0f records/s, two readings)", N, r.seconds, N / r.seconds)
    return out


def check_import(d):
    path = os.path.join(d.dir, "new.csv")
    with open(path, "w") as f:
        f.writelines("new%05d@sp,%s,Room %d\n" % (i, wsid(), i) for i in range(N))
    out = os.path.join(d.dir, "import.out")
    t0 = time.monotonic()
    rc, tty = cli_on_tty(d, "state", "import", path, stdout_path=out)
    secs = time.monotonic() - t0
    ok, detail = progress_shown(tty, "importing", N)
    with open(out) as f:
        said = f.read()
    check(rc == 0 and ok and summary(said) == "imported %d, unchanged 0, refused 0" % N,
          "import of %d on a terminal: progress, then the summary" % N, (rc, detail, said[-200:]))
    log("import of %d: %.2f s (%.0f records/s, reading the map included)", N, secs, N / secs)
    r = cli(d, "state", "import", path)
    ok, detail = no_progress(r.stderr)
    check(r.returncode == 0 and summary(r.stdout) == "imported 0, unchanged %d, refused 0" % N
          and r.stderr == "" and ok, "again on pipes: all unchanged, nothing on stderr",
          (r.stdout[-200:], detail))


def replays_once(mk):
    got = copies(mk)
    dup = {k: len(v) for k, v in got.items() if len(v) > 1}
    return len(got), dup


def tty_run(d, *args, on_stderr=None):
    """cli_on_tty, with its stdout read back: (status, terminal, stdout)."""
    out = os.path.join(d.dir, "tty.out")
    rc, tty = cli_on_tty(d, *args, stdout_path=out, on_stderr=on_stderr)
    with open(out) as f:
        return rc, tty, f.read()


def check_interrupted_replay(mk, d):
    # Slow Kafka down so that the replay takes seconds (small batches, one
    # in flight, 20 ms a request): there is time to interrupt it.
    mk.rtt("all", 20)
    slow = ("-X", "kafka.producer.batch.num.messages=10", "-X",
            "kafka.producer.max.in.flight.requests.per.connection=1")
    act = interrupt_when(lambda t: re.search(r"\rreplaying: [1-9]", t), signal.SIGINT)
    rc, tty, out = tty_run(d, *slow, "dlq", "replay", on_stderr=act)
    n1, dup = replays_once(mk)
    check(act.sent and rc == 1 and "interrupted" in tty and 0 < n1 < N and not dup,
          "SIGINT part-way: exit 1, %d of %d replayed, none twice" % (n1, N), (rc, tty[-600:]))
    m = re.search(r"replayed (\d+), .*, not replayed (\d+)", summary(out))
    check(m and int(m.group(1)) == n1 and int(m.group(2)) == N - n1,
          "its summary counts what Kafka took", summary(out))
    act = interrupt_when(lambda t: re.search(r"\rreplaying: [1-9]", t), signal.SIGKILL)
    rc, tty, out = tty_run(d, *slow, "dlq", "replay", on_stderr=act)
    n2, dup = replays_once(mk)
    check(rc == -9 and n1 < n2 <= N and not dup,
          "SIGKILL part-way: %d replayed in all, none twice" % n2, (rc, n2, dup, tty[-300:]))
    mk.rtt("all", 0)
    r = cli(d, "dlq", "replay", timeout=120)
    n3, dup = replays_once(mk)
    ok, detail = no_progress(r.stderr)
    check(r.returncode == 0 and n3 == N and not dup and summary(r.stdout) ==
          "replayed %d, skipped stale 0, skipped by the loop guard 0, already replayed %d, "
          "refused 0" % (N - n2, n2) and ok,
          "the same command again: the rest, every record replayed exactly once, no progress "
          "on a pipe", (r.stdout[-300:], n3, dup, detail))


def check_replay_progress(d):
    rc, tty, out = tty_run(d, "dlq", "replay", "--dry-run")
    ok, detail = progress_shown(tty, "reading the DLQ", N)
    check(ok, "dlq replay on a terminal: progress reading the DLQ", detail)
    check(re.search(r"\rlooking for earlier replays: [\d,]+ of [\d,]+ \(100%\)", tty),
          "and looking for earlier replays", tty[-300:])
    check(rc == 0 and "already replayed %d" % N in summary(out), "all %d were replayed" % N,
          summary(out))


def main():
    with bwtest.Kafka(partitions=4) as mk:
        d = bwtest.Daemon(mk.bootstrap, "http://127.0.0.1:9/v1")
        try:
            bulk_state(mk)
            bulk_dlq(mk)
            log("%d state records and %d DLQ records written", N, N)
            export = check_export(d)
            check_import(d)
            r = cli(d, "state", "import", export)
            check(r.returncode == 0 and summary(r.stdout) ==
                  "imported 0, unchanged %d, refused 0" % N, "the export imports as unchanged",
                  r.stdout[-200:])
            check_interrupted_replay(mk, d)
            check_replay_progress(d)
        finally:
            d.close()
    log("PASS")


if __name__ == "__main__":
    main()
