#!/usr/bin/python3
"""`bwprovd state get | export | import` against a running daemon (the mock
cluster, the simulator):

* get: a provisioned user's record (workspace id = the simulator's, the
  event's source, removed false), a removed user's marker (exit 0, removed
  true), an unknown user (exit 1, one line on stderr);
* export: every live record, one JSON line each (a subscriber's too), the
  removed left out;
* import of workspaces made before bwprovd (at the simulator directly):
  --dry-run writes nothing and says what would change; ids are checked
  (another resource's id, not base64url, a path, contradicting lines),
  each refusal with its file:line and reason; a file with a refused line
  writes nothing, --skip-bad writes its other rows; an entry is never replaced
  without --force, and with --force it is, keeping the entry's source;
  a second run changes nothing; an export imports as all unchanged, its
  subscriber records skipped and counted (exit 0);
* the running daemon takes the imported records: an update and a remove
  for imported users reach their imported workspaces and succeed (not
  "replayed": the import makes no event look applied);
* exit statuses 64 (usage), 78 (configuration), 69 (Kafka unreachable);
* the daemon kept its partitions throughout (no rebalance): the commands
  never joined its group.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opscli import (bwtest, log, wsid, people_id, cli, sim_create, state_last,  # noqa: E402
                    summary, check, no_rebalance)

USERS = ["%08d@ops.sp.example.com" % (70000000 + i) for i in range(12)]
OLD = ["%08d@old.sp.example.com" % (80000000 + i) for i in range(5)]
SUB = "90000000@sub.sp.example.com"


def provision_all(mk, sim):
    """The workspaces of USERS (the last one removed again) and SUB's
    subscriber: {userId: id} as the simulator has them."""
    evs = [bwtest.provision(u) for u in USERS] + [bwtest.sub_provision(SUB)]
    mk.produce(bwtest.TOPIC_EVENTS, evs)
    mk.consume(bwtest.TOPIC_RESULTS, count=len(evs), timeout=60)
    gone = bwtest.remove(USERS[-1])
    mk.produce(bwtest.TOPIC_EVENTS, [gone])
    mk.consume(bwtest.TOPIC_RESULTS, count=len(evs) + 1, timeout=60)
    ids = {w["userId"]: w["id"] for w in sim.workspaces()["workspaces"]}
    ids.update({x["userId"]: x["id"] for x in sim.subscribers()["subscribers"]})
    return ids


def check_tombstone(mk, d):
    """A bare tombstone (earlier versions' remove) reads as a removal, its
    source from its header."""
    mk.produce(bwtest.TOPIC_STATE, [("tomb@sp.example.com", None)],
               headers={"bwprovd-source": "%s/1/5" % bwtest.TOPIC_EVENTS})
    r = cli(d, "state", "get", "tomb@sp.example.com")
    rec = json.loads(r.stdout)
    check(r.returncode == 0 and rec["removed"] is True and rec["tombstone"] is True and
          rec["source"] == {"topic": bwtest.TOPIC_EVENTS, "partition": 1, "offset": 5},
          "state get: a legacy tombstone is a removal with its header's source", r.stdout)


def check_get(d, ids):
    r = cli(d, "state", "get", USERS[0])
    rec = json.loads(r.stdout)
    check(r.returncode == 0 and rec["workspaceId"] == ids[USERS[0]] and
          rec["removed"] is False and rec["source"]["topic"] == bwtest.TOPIC_EVENTS and
          rec["userId"] == USERS[0] and rec["updatedAt"],
          "state get: the user's record, as the simulator knows it", (r.returncode, r.stdout))
    r = cli(d, "state", "get", USERS[-1])
    rec = json.loads(r.stdout)
    check(r.returncode == 0 and rec["removed"] is True and rec["source"]["offset"] >= 0,
          "state get: a removed user's marker, exit 0", r.stdout)
    r = cli(d, "state", "get", "nobody@sp.example.com")
    check(r.returncode == 1 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1 and
          "nobody@sp.example.com" in r.stderr,
          "state get: an unknown user exits 1 with one line", (r.returncode, r.stderr))


def check_export(d, ids, path):
    r = cli(d, "state", "export")
    recs = [json.loads(ln) for ln in r.stdout.splitlines()]
    got = {x["userId"]: x.get("workspaceId") or x.get("subscriberId") for x in recs}
    want = {u: ids[u] for u in USERS[:-1] + [SUB]}
    check(r.returncode == 0 and got == want and len(recs) == len(want) and
          [x["kind"] for x in recs if x["userId"] == SUB] == ["subscriber"],
          "state export: every live record once, the removed one left out",
          (r.returncode, sorted(got), r.stderr))
    with open(path, "w") as f:
        f.write(r.stdout)
    return recs


def import_file(d, sim, ids):
    """Old workspaces, plus lines that must be refused."""
    old = {u: sim_create(sim, u) for u in OLD}
    other = wsid()
    lines = ["# made before bwprovd", "userId,workspaceId,displayName,extension"]
    lines += ["%s,%s,\"Old room, %d\",5%04d" % (u, old[u], i, i) for i, u in enumerate(OLD)]
    bad = {
        USERS[0]: ("%s,%s" % (USERS[0], other), "--force replaces it"),
        "p@sp": ("p@sp,%s" % people_id(), "not PLACE"),
        "b64@sp": ("b64@sp,not/an-id", "'/'"),
        "twice@sp": ("twice@sp,%s" % wsid(), "another workspaceId on line"),
        "twice@sp ": ("twice@sp,%s" % wsid(), "another workspaceId on line"),
        "quote@sp": ("quote@sp,\"%s" % wsid(), "not closed"),
        "nul@sp": ("nul@sp,%s\0x" % wsid(), "NUL byte"),
        "taken@sp": ("taken@sp,%s" % ids[USERS[1]], "already belongs to userId " + USERS[1]),
    }
    lines += [v[0] for v in bad.values()]
    path = os.path.join(d.dir, "old-workspaces.csv")
    lines.append("long@sp," + "A" * 70000)
    bad["long@sp"] = (None, "longer than 65536 bytes")
    with open(path, "w") as f:
        f.write("\r\n".join(lines) + "\r\n")
    return path, old, other, bad


def check_dry_run(mk, d, path, old, bad):
    before = mk.consume(bwtest.TOPIC_STATE)
    r = cli(d, "state", "import", path, "--dry-run")
    held = cli(d, "state", "import", path, "--dry-run", "--skip-bad")
    after = mk.consume(bwtest.TOPIC_STATE)
    would = [ln for ln in held.stdout.splitlines()
             if ln.startswith("would import ") and "(line" in ln]
    check(r.returncode == 1 and "(line" not in r.stdout and
          summary(r.stdout) == "would import 0, unchanged 0, refused %d, held back 5 (dry run: "
          "nothing written)" % len(bad) and "--skip-bad" in r.stderr,
          "import --dry-run: a file with refused lines would write nothing (all or nothing)",
          (r.returncode, r.stdout, r.stderr[-500:]))
    check(held.returncode == 1 and len(would) == len(old) and len(after) == len(before) and
          summary(held.stdout) == "would import 5, unchanged 0, refused %d (dry run: nothing "
          "written)" % len(bad),
          "import --dry-run --skip-bad: says what would change, writes nothing, exits 1",
          (held.returncode, held.stdout, len(before), len(after)))
    return r


def check_refusals(r, path, bad):
    """One line per refused line, naming file:line, in line order."""
    prefix = "refused %s:" % path
    refused = [ln for ln in r.stderr.splitlines() if prefix in ln]
    check(len(refused) == len(bad), "one refusal line per refused line", r.stderr)
    for _, (_, why) in bad.items():
        check(any(why in ln for ln in refused), "a refusal says: %s" % why, r.stderr)
    nums = [int(ln.split(prefix)[1].split()[0].rstrip(":")) for ln in refused]
    check(nums == sorted(nums), "refusals in line order", nums)


def check_import(mk, d, path, old, bad):
    before = len(mk.consume(bwtest.TOPIC_STATE))
    r = cli(d, "state", "import", path)
    check(r.returncode == 1 and summary(r.stdout) == "imported 0, unchanged 0, refused %d, "
          "held back 5" % len(bad) and len(mk.consume(bwtest.TOPIC_STATE)) == before,
          "import of a file with refused lines: nothing written, exit 1", (r.stdout, r.stderr))
    check_refusals(r, path, bad)
    r = cli(d, "state", "import", path, "--skip-bad")
    check(r.returncode == 1 and summary(r.stdout) == "imported 5, unchanged 0, refused %d"
          % len(bad), "import --skip-bad: 5 imported, the rest refused, exit 1",
          (r.stdout, r.stderr))
    check_refusals(r, path, bad)
    last = state_last(mk)
    for u in OLD:
        rec = last.get(u)
        check(rec and rec["workspaceId"] == old[u] and rec["source"] == {
            "topic": "bwprovd:import", "partition": -1, "offset": -1} and
            rec["importedFrom"].startswith("old-workspaces.csv:"),
            "the imported record of %s: its id, the import's own source" % u, rec)
    r = cli(d, "state", "get", OLD[2])
    rec = json.loads(r.stdout)
    check(rec["displayName"] == "Old room, 2" and rec["extension"] == "50002" and
          rec["eventId"] is None, "state get shows the imported record", r.stdout)
    r = cli(d, "state", "import", path, "--skip-bad")
    check(summary(r.stdout) == "imported 0, unchanged 5, refused %d" % len(bad),
          "the same import again changes nothing", r.stdout)


def check_force(mk, d, other):
    before = json.loads(cli(d, "state", "get", USERS[0]).stdout)
    path = os.path.join(d.dir, "force.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps({"userId": USERS[0], "workspaceId": other}) + "\n")
    r = cli(d, "state", "import", path)
    check(r.returncode == 1 and "--force" in r.stderr, "without --force an entry stays", r.stderr)
    r = cli(d, "state", "import", path, "--force")
    rec = json.loads(cli(d, "state", "get", USERS[0]).stdout)
    check(r.returncode == 0 and summary(r.stdout) == "imported 1, unchanged 0, refused 0" and
          "replaced %s %s" % (USERS[0], other) in r.stdout and rec["workspaceId"] == other and
          rec["source"] == before["source"],
          "--force replaces it, keeping the entry's source (nothing new looks applied)",
          (r.returncode, r.stdout, r.stderr[-3000:], rec, before))
    # put the right id back, for the daemon checks below
    with open(path, "w") as f:
        f.write(json.dumps({"userId": USERS[0], "workspaceId": before["workspaceId"]}) + "\n")
    check(cli(d, "state", "import", path, "--force").returncode == 0, "and back again")


def check_round_trip(d, export_path):
    r = cli(d, "state", "import", export_path)
    check(r.returncode == 0 and summary(r.stdout) == "imported 0, unchanged %d, refused 0, "
          "subscribers skipped 1" % (len(USERS) - 1) and
          "1 subscriber record(s) not imported" in r.stderr,
          "an export imports back as all unchanged, the subscriber skipped", (r.stdout, r.stderr))


def check_daemon_takes_it(mk, sim, d, old):
    """The loader tails the state topic: updates and removes for imported
    users reach their workspaces."""
    up = bwtest.update(OLD[0], extension="777")
    rm = bwtest.remove(OLD[1])
    seq = sim.requests()["next"]
    mk.produce(bwtest.TOPIC_EVENTS, [up, rm])
    results = mk.consume(bwtest.TOPIC_RESULTS, count=len(USERS) + 3, timeout=60)
    res = {k: v[-1] for k, v in bwtest.results_by_event(results).items()}
    reqs = [q for q in sim.all_requests(seq) if q["userId"] in (OLD[0], OLD[1])]
    check(res.get(up["eventId"], {}).get("outcome") == "succeeded" and
          res[up["eventId"]]["note"] is None and res[up["eventId"]]["workspaceId"] == old[OLD[0]],
          "an update for an imported user succeeds on its workspace (not 'replayed')", res)
    check(res.get(rm["eventId"], {}).get("outcome") == "succeeded" and
          res[rm["eventId"]]["note"] is None, "a remove for an imported user succeeds", res)
    check(sorted((q["method"], q["workspaceId"]) for q in reqs) ==
          sorted([("PUT", old[OLD[0]]), ("DELETE", old[OLD[1]])]),
          "the simulator saw the PUT and the DELETE on the imported ids", reqs)


def check_exits(d):
    r = cli(d, "state", "import")
    check(r.returncode == 64 and "FILE" in r.stderr, "import without FILE: 64", r.stderr)
    r = cli(d, "state", "frobnicate")
    check(r.returncode == 64 and "unknown command" in r.stderr, "unknown command: 64", r.stderr)
    r = cli(d, "state", "export", "--force")
    check(r.returncode == 64, "an option the command does not take: 64", r.stderr)
    r = cli(d, "-X", "log.level=chatty", "state", "export")
    check(r.returncode == 78 and "log.level" in r.stderr, "a configuration error: 78", r.stderr)
    r = cli(d, "state", "get", "x", "-X", "kafka.bootstrap.servers=127.0.0.1:1",
            "-X", "startup.timeout_ms=2000", timeout=30)
    check(r.returncode == 69 and r.seconds < 15 and len(r.stderr.strip().splitlines()) == 1,
          "Kafka unreachable: 69 after startup.timeout_ms, one line",
          (r.returncode, r.seconds, r.stderr))
    r = cli(d, "state", "import", "/nonexistent/file.csv")
    check(r.returncode == 1 and "/nonexistent/file.csv" in r.stderr, "a missing file: 1",
          r.stderr)


def main():
    with bwtest.Kafka(partitions=4) as mk, bwtest.WebSim() as sim, \
            bwtest.Daemon(mk.bootstrap, sim) as d:
        d.wait_ready(60)
        ids = provision_all(mk, sim)
        log("provisioned %d users", len(ids))
        check_get(d, ids)
        check_tombstone(mk, d)
        export_path = os.path.join(d.dir, "export.jsonl")
        check_export(d, ids, export_path)
        path, old, other, bad = import_file(d, sim, ids)
        r = check_dry_run(mk, d, path, old, bad)
        check_refusals(r, path, bad)
        check_import(mk, d, path, old, bad)
        check_force(mk, d, other)
        check_round_trip(d, export_path)
        check_daemon_takes_it(mk, sim, d, old)
        check_exits(d)
        ok, detail = no_rebalance(d)
        check(ok, "the daemon kept its partitions: no rebalance", detail)
        check(d.stop() == 0, "the daemon stops cleanly")
    log("PASS")


if __name__ == "__main__":
    main()
