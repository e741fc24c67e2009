"""Shared helpers of the workspace-map scenarios (test_compaction.py,
test_hostile_ids.py, test_rename_order.py, test_locked.py): the contract of
issue "The workspace map is never lost or corrupted" (points 4-7).

Import it from a test next to scenario.py::

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mapcheck
    scenario, bwtest, log = mapcheck.scenario, mapcheck.bwtest, mapcheck.log
"""
import json
import os
import random
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402
from scenario import bwtest, log  # noqa: E402

WS_PATH = scenario.WS_PATH
#: What a request to the workspace API may look like: the collection, or
#: the collection plus exactly one non-empty segment (no '/', no query, no
#: fragment). Anything else means an id escaped its path segment.
_PATH_RE = re.compile(r"^/v1/broadworks/workspaces(/[^/?#]+)?$")


def path_ok(path):
    """True when a raw request path is the collection or one item of it."""
    return bool(_PATH_RE.match(path or ""))


def interleave(chains, seed):
    """One list of every event of ``chains`` (lists of events), in order
    per chain, chains interleaved at random (fixed seed)."""
    rng = random.Random(seed)
    heads = [0] * len(chains)
    live = [i for i, c in enumerate(chains) if c]
    out = []
    while live:
        j = rng.randrange(len(live))
        i = live[j]
        out.append(chains[i][heads[i]])
        heads[i] += 1
        if heads[i] == len(chains[i]):
            live[j] = live[-1]
            live.pop()
    return out


def empty_workload(tag):
    """A scenario.Workload without generated users, for chains the test
    builds itself (Workload.add_chain)."""
    return scenario.Workload(tag, 0, seed=0)


_CAUGHT_UP = re.compile(r"state table caught up; consuming (\d+) partition\(s\); "
                        r"(\d+) workspaces known")


def caught_up_counts(d):
    """``[(partitions, workspaces known), ...]`` from the daemon's "state
    table caught up" log lines of its current run, in order."""
    out = []
    for line in d.log_lines():
        m = _CAUGHT_UP.search(line)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return out


def wait_caught_up(d, timeout):
    """Wait (bounded) for the first "state table caught up" line of this run;
    returns its workspace count."""
    bwtest.wait_until(lambda: caught_up_counts(d), timeout, 0.2,
                      "bwprovd logs 'state table caught up'")
    return caught_up_counts(d)[0][1]


def last_seq(sim):
    """The simulator's latest request seq (pass as ``since`` later)."""
    reqs = sim.all_requests()
    return max((r["seq"] for r in reqs), default=0)


def sim_by_id(sim):
    """``{workspace id: workspace}`` at the simulator."""
    return {w["id"]: w for w in sim.workspaces()["workspaces"]}


def sim_by_user(sim):
    """``{userId: workspace}`` at the simulator (AssertionError if a userId
    has two)."""
    out = {}
    for w in sim.workspaces()["workspaces"]:
        assert w["userId"] not in out, "two workspaces for %s" % w["userId"]
        out[w["userId"]] = w
    return out


def latest_per_key(records):
    """``{key: record}``: the last record of each key (consume() records,
    sorted by partition and offset; one key lives in one partition)."""
    last = {}
    for m in records:
        last[m["key"]] = m
    return last


def compact(records):
    """What Kafka's log compaction leaves of a topic once the tombstones'
    retention has passed: per key only the latest record, and no key whose
    latest record is a bare tombstone (NULL value). Returns the survivors,
    sorted by (partition, offset)."""
    keep = [m for m in latest_per_key(records).values() if m["value"] is not None]
    return sorted(keep, key=lambda m: (m["partition"], m["offset"]))


def copy_records(mk, topic, records, threads=2, timeout=60):
    """Write ``records`` (consume() dicts) into ``topic`` with kcat: same key,
    value, partition and headers (one kcat run per record, since kcat's -H
    gives every record of a run the same headers; header names are unique
    in bwprovd's state records, so the dict form loses nothing). The order
    between different keys is not kept (two threads), which compaction
    does not keep either; each key appears once. Returns how many."""
    todo = list(records)
    errors = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def work():
        while True:
            with lock:
                if not todo or errors:
                    return
                m = todo.pop()
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise bwtest.Timeout("copy to %s: out of time" % topic)
                hdrs = dict(m["header_list"]) if m["header_list"] else None
                bwtest.produce(mk.bootstrap, topic, [(m["key"], m["value"])], timeout=left,
                               headers=hdrs, partition=m["partition"])
            except Exception as e:  # reported by the caller's thread
                with lock:
                    errors.append(e)
                return

    ts = [threading.Thread(target=work, name="copy-%d" % i) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 10)
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in ts):
        raise bwtest.Timeout("copy to %s did not finish" % topic)
    return len(records)


def parse_value(m):
    """The JSON of a state record's value, None for a tombstone, the raw
    string if it is not JSON."""
    if m["value"] is None:
        return None
    try:
        return json.loads(m["value"])
    except ValueError:
        return m["value"]


def result_of(grouped, eid):
    """The last result of ``eid`` (grouped: scenario.by_event), or None."""
    rs = grouped.get(eid) or []
    return rs[-1] if rs else None


def fmt_result(r):
    if r is None:
        return "no result"
    err = r.get("error") or {}
    return "%s/%s note %r http %s%s" % (r.get("outcome"), err.get("kind"), r.get("note"),
                                        r.get("httpStatus"),
                                        (": " + err["message"]) if err.get("message") else "")


def fail_if(problems, what):
    """AssertionError listing ``problems`` (list of str) if there are any."""
    assert not problems, "%s (%d):\n  %s" % (what, len(problems), "\n  ".join(problems[:40]))
