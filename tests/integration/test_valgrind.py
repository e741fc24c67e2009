#!/usr/bin/python3
"""A full daemon run under valgrind's memcheck: start, provision / update /
remove for 30 users plus malformed events, a SIGHUP reload, then SIGTERM.
Fails on any memcheck error and on any definitely or indirectly lost block
(possibly-lost and still-reachable blocks belong to the libraries' own
process-lifetime caches and are not counted). Skips when valgrind is not
installed."""
import os
import re
import shutil
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402


def wrapper(d, log):
    path = os.path.join(d.dir, "under-valgrind")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec valgrind --leak-check=full '
                '--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect '
                '--error-exitcode=99 --log-file=%s "$BWPROVD_REAL" "$@"\n' % log)
    os.chmod(path, stat.S_IRWXU)
    return path


def main():
    if not shutil.which("valgrind"):
        bwtest.skip("valgrind not installed")
    with bwtest.MockKafka(partitions=2) as mk, bwtest.WebSim() as sim:
        d = bwtest.Daemon(mk.bootstrap, sim)
        log = os.path.join(d.dir, "memcheck.log")
        d.extra_env["BWPROVD_REAL"] = d.binary
        d.binary = wrapper(d, log)
        with d:
            d.wait_ready(120)
            evs = []
            for i in range(30):
                u = "vg%02d@sp.com" % i
                evs += [bwtest.provision(u), bwtest.update(u, extension="9%02d" % i),
                        bwtest.remove(u)]
            recs = [bwtest.event_record(e) for e in evs]
            recs += [("vgbad@sp.com", "{broken"), (None, '{"eventId":"x"}')]
            mk.produce(bwtest.TOPIC_EVENTS, recs)
            res = mk.consume(bwtest.TOPIC_RESULTS, count=len(recs), timeout=180)
            assert len(res) == len(recs), len(res)
            d.reload()
            d.wait_log("reloading", timeout=30)
            rc = d.stop(timeout=120)
            with open(log) as f:
                report = f.read()
        assert rc == 0, "exit %s under valgrind:\n%s" % (rc, report[-4000:])
        assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
        bad = re.findall(r"(definitely|indirectly) lost: [1-9]", report)
        assert not bad, report[-4000:]
        summary = [l.split("== ", 1)[-1] for l in report.splitlines()
                   if "lost:" in l or "in use at exit" in l or "ERROR SUMMARY" in l]
    print("valgrind: %d events, no memcheck errors, no definite or indirect leaks\n  %s"
          % (len(recs), "\n  ".join(summary)))


if __name__ == "__main__":
    main()
