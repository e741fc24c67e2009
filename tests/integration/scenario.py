"""Shared workload and checks of the production-pipeline scenario tests
(tests/integration/test_latency.py, test_429.py, test_5xx.py,
test_poison.py, test_outage.py, test_token.py, test_crash.py,
test_rebalance.py).

A scenario builds a Workload (N users, each with a short chain of events
that must be applied in order: provision, some updates, and a remove unless
the user is one of the "keepers" that end provisioned), interleaves the
users' chains at random with a fixed seed, produces it, injects its fault,
waits for the results with a bounded timeout and then checks:

* no lost event: every event has at least one result (exactly one unless a
  crash or a rebalance is involved), and the last one is the expected
  outcome (check_results);
* per-user order as the simulator saw it: every request is mapped to its
  event through ``TrackingID: bwprovd_<eventId>`` and, per userId, the
  event indices of the requests (in arrival order) never go backwards;
  retries of the same event are fine (check_order; see its docstring for
  what is asserted across a crash);
* zero violations detected by the simulator (retryAfter, concurrentUser);
* the end state: the simulator's workspaces and the state topic match what
  the workload leaves behind, and no user got a second workspace
  (check_final_state).

Every check raises AssertionError with a message that names the event,
user or request at fault. Import it from a test with::

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import scenario
    bwtest = scenario.bwtest
"""
import collections
import datetime
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

TRACKING_PREFIX = "bwprovd_"
WS_PATH = "/v1/broadworks/workspaces"
TOKEN_PATH = "/v1/access_token"

def group_settings(departs=False):
    """Consumer-group settings for a scenario's daemons. The mock cluster
    (librdkafka 2.0) knows no static membership and keeps a member that
    left until its session times out: 6 s there (bwtest.MOCK_GROUP). On a
    real broker a restarted bwprovd rejoins at once as the same static
    member, with the product's defaults; but a static member that stops for
    good sends no LeaveGroup and is replaced only when its session expires
    (45 s by default), so a scenario in which an instance leaves
    (``departs``) shortens the session there too."""
    if departs or not bwtest.real_kafka():
        return dict(bwtest.MOCK_GROUP)
    return {}


def log(msg, *args):
    """One progress line on stdout (CTest shows it with --output-on-failure
    or -V)."""
    print(("[%7.2fs] " % (time.monotonic() - _T0)) + (msg % args if args else msg), flush=True)


_T0 = time.monotonic()


def now_us():
    """time.monotonic() in microseconds: the clock of the simulator's
    recvUs/doneUs."""
    return int(time.monotonic() * 1e6)


# ---------------------------------------------------------------------------
# The workload


class Workload:
    """Users with a chain of events each, interleaved at random.

    Attributes:

    * ``users``: the userIds, in creation order.
    * ``chains``: ``{userId: [event, ...]}`` in the order they must be applied.
    * ``events``: every event, interleaved across users (in order per user):
      the order they are produced in.
    * ``where``: ``{eventId: (userId, index in the user's chain)}``.
    * ``by_id``: ``{eventId: event}``.
    * ``final``: ``{userId: None}`` for a user whose chain ends with a
      remove, else ``{"primaryPhoneNumber", "extension", "displayName",
      "provisioningId", "spEnterpriseId"}`` the workspace must end with.
    * ``first``: ``{userId: the workspace fields of the provision}``.
    """

    def __init__(self, tag, n_users, seed, updates=1, keep_every=0, base=40000000):
        rng = random.Random(seed)
        self.tag = tag
        self.users = []
        self.chains = {}
        self.final = {}
        self.first = {}
        for i in range(n_users):
            user = "%08d@%s.sp.example.com" % (base + i, tag)
            keep = keep_every > 0 and i % keep_every == 0
            eid = lambda k: "%s-%05d-%d" % (tag, i, k)  # noqa: E731
            prov = dict(primaryPhoneNumber="+1-240-555-%04d" % (i % 10000),
                        extension="5%04d" % (i % 10000),
                        displayName="Room %d %s" % (i, tag),
                        provisioningId="prov-%s-%d" % (tag, i))
            chain = [bwtest.provision(user, event_id=eid(0), **prov)]
            cur = dict(prov, spEnterpriseId="Reseller1+acme")
            self.first[user] = dict(cur)
            for k in range(1, updates + 1):
                upd = dict(primaryPhoneNumber="+1-301-%03d-%04d" % (k, i % 10000),
                           extension="%d%05d" % (k, i % 100000))
                chain.append(bwtest.update(user, event_id=eid(k), **upd))
                cur.update(upd)
            if keep:
                self.final[user] = cur
            else:
                chain.append(bwtest.remove(user, event_id=eid(updates + 1)))
                self.final[user] = None
            self.users.append(user)
            self.chains[user] = chain
        # Interleave: pick a random user with events left, take its next.
        heads = {u: 0 for u in self.users}
        live = list(self.users)
        self.events = []
        while live:
            j = rng.randrange(len(live))
            u = live[j]
            self.events.append(self.chains[u][heads[u]])
            heads[u] += 1
            if heads[u] == len(self.chains[u]):
                live[j] = live[-1]
                live.pop()
        self.where = {}
        self.by_id = {}
        for u, chain in self.chains.items():
            for k, ev in enumerate(chain):
                self.where[ev["eventId"]] = (u, k)
                self.by_id[ev["eventId"]] = ev
        assert len(self.by_id) == len(self.events)

    def add_chain(self, user, chain, final):
        """Register one more user whose events the test produces itself
        (they are not added to ``events``); ``final`` as in ``final``."""
        self.users.append(user)
        self.chains[user] = list(chain)
        self.final[user] = final
        for k, ev in enumerate(chain):
            self.where[ev["eventId"]] = (user, k)
            self.by_id[ev["eventId"]] = ev

    def __len__(self):
        return len(self.events)

    def records(self, events=None):
        """(key, value) records for produce()."""
        return [bwtest.event_record(ev) for ev in (self.events if events is None else events)]

    def produce(self, mk, events=None, timeout=60):
        """Produce ``events`` (default all, in interleaved order) to the
        events topic; returns how many."""
        return mk.produce(bwtest.TOPIC_EVENTS, self.records(events), timeout=timeout)


# ---------------------------------------------------------------------------
# Results


def parse_results(records):
    """Parsed result values of consume() records, in topic order (sorted by
    partition and offset, so one user's results, which share a partition,
    are in the order they were published)."""
    out = []
    for m in records:
        try:
            v = json.loads(m["value"])
        except (TypeError, ValueError):
            raise AssertionError("result record at %s/%s is not JSON: %r"
                                 % (m["partition"], m["offset"], m["value"]))
        out.append(v)
    return out


def wait_results(mk, event_ids, timeout, interval=0.5, what="results"):
    """Poll the results topic until every eventId of ``event_ids`` has at
    least one result; returns every parsed result read (all events, not
    only these). Raises AssertionError naming the events that have none
    after ``timeout`` s (lost events)."""
    want = set(event_ids)
    deadline = time.monotonic() + timeout
    while True:
        res = parse_results(mk.consume(bwtest.TOPIC_RESULTS, timeout=30))
        missing = want - {r.get("eventId") for r in res}
        if not missing:
            return res
        if time.monotonic() >= deadline:
            raise AssertionError(
                "lost events: %d of %d %s have no result after %ss (%d results read), e.g. %s"
                % (len(missing), len(want), what, timeout, len(res), sorted(missing)[:8]))
        time.sleep(interval)


def wait_all_results(mk, wl, timeout):
    """wait_results() for every event of the workload."""
    return wait_results(mk, wl.by_id, timeout)


def by_event(results):
    """``{eventId: [result, ...]}`` in publication order."""
    out = collections.defaultdict(list)
    for r in results:
        out[r.get("eventId")].append(r)
    return out


def succeeded(notes=(None,)):
    """An expectation: outcome succeeded with a note in ``notes``."""
    return {"outcome": "succeeded", "kind": None, "notes": set(notes)}


def failed(kind):
    """An expectation: outcome failed with error kind ``kind``."""
    return {"outcome": "failed", "kind": kind, "notes": {None}}


def check_results(wl, results, expect=None, exactly_one=True, ok_earlier=None):
    """Every event of ``wl`` has a result (exactly one if ``exactly_one``)
    and its last one matches ``expect(event)`` (default: succeeded with no
    note); every result is well formed (userId, type, trackingId, source).
    ``ok_earlier(event, result)``: with duplicates, whether an earlier
    (not final) result is acceptable (default: succeeded, or the same
    outcome as the final). Returns ``{eventId: [result, ...]}``."""
    expect = expect or (lambda ev: succeeded())
    grouped = by_event(results)
    unknown = [e for e in grouped if e not in wl.by_id]
    assert not unknown, "results for events that were never produced: %s" % unknown[:5]
    problems = []
    for eid, ev in wl.by_id.items():
        got = grouped.get(eid, [])
        if not got:
            problems.append("%s: no result (lost)" % eid)
            continue
        if exactly_one and len(got) != 1:
            problems.append("%s: %d results, expected exactly one: %s"
                            % (eid, len(got), [(r["outcome"], r["note"]) for r in got]))
        user = ev["workspace"]["userId"]
        for r in got:
            if (r.get("userId") != user or r.get("type") != ev["type"]
                    or r.get("trackingId") != TRACKING_PREFIX + eid
                    or (r.get("source") or {}).get("topic") != bwtest.TOPIC_EVENTS):
                problems.append("%s: malformed result %s" % (eid, r))
        final = got[-1]
        want = expect(ev)
        kind = (final.get("error") or {}).get("kind")
        if (final.get("outcome") != want["outcome"] or kind != want["kind"]
                or final.get("note") not in want["notes"]):
            problems.append(
                "%s (%s #%d of %s): final result %s/%s note %r, expected %s/%s note in %s; "
                "error %s" % (eid, ev["type"], wl.where[eid][1], user, final.get("outcome"), kind,
                              final.get("note"), want["outcome"], want["kind"],
                              sorted(map(str, want["notes"])), final.get("error")))
        # A replayed or not_provisioned result made no call; the SPEC does
        # not say it must name the workspace.
        if final.get("outcome") == "succeeded" and \
                final.get("note") not in ("not_provisioned", "replayed") and \
                not final.get("workspaceId"):
            problems.append("%s: succeeded without a workspaceId: %s" % (eid, final))
        for r in got[:-1]:
            ok = ok_earlier(ev, r) if ok_earlier else \
                r.get("outcome") in ("succeeded", final.get("outcome"))
            if not ok:
                problems.append("%s: unacceptable earlier result %s" % (eid, r))
    assert not problems, "%d result problem(s):\n  %s" % (len(problems), "\n  ".join(problems[:25]))
    return grouped


def duplicates(grouped):
    """Number of results beyond the first, over all events."""
    return sum(len(v) - 1 for k, v in grouped.items() if k is not None)


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


def throughput(results):
    """(events, seconds, events/s): from the first consumption (completedAt
    minus latencyMs) to the last completion, over the given results."""
    if not results:
        return 0, 0.0, 0.0
    ends = [parse_time(r["completedAt"]) for r in results]
    starts = [e - datetime.timedelta(milliseconds=r.get("latencyMs") or 0)
              for e, r in zip(ends, results)]
    span = (max(ends) - min(starts)).total_seconds()
    return len(results), span, (len(results) / span if span > 0 else float("inf"))


def attempts_histogram(grouped):
    h = collections.Counter(rs[-1].get("attempts") for k, rs in grouped.items() if k is not None)
    return dict(sorted(h.items(), key=lambda kv: (kv[0] is None, kv[0])))


# ---------------------------------------------------------------------------
# The simulator's view


def api_requests(sim):
    """Every recorded request to the workspace API (the token endpoint
    excluded), in completion order."""
    return [r for r in sim.all_requests() if r.get("path", "").startswith(WS_PATH)]


def token_requests(sim):
    """Every recorded POST /v1/access_token."""
    return [r for r in sim.all_requests() if r.get("path") == TOKEN_PATH]


def event_of(wl, req):
    """eventId of a simulator request record (from its TrackingID), or None."""
    tid = req.get("trackingId") or ""
    if tid.startswith(TRACKING_PREFIX) and tid[len(TRACKING_PREFIX):] in wl.by_id:
        return tid[len(TRACKING_PREFIX):]
    return None


def requests_by_event(wl, reqs):
    """``{eventId: [request, ...]}`` in arrival order; AssertionError if a
    request cannot be attributed to an event of the workload."""
    out = collections.defaultdict(list)
    stray = []
    for r in sorted(reqs, key=lambda r: (r["recvUs"], r["seq"])):
        eid = event_of(wl, r)
        if eid is None:
            stray.append(r)
        else:
            out[eid].append(r)
    assert not stray, "%d request(s) with no workload TrackingID, e.g. %s" % (len(stray), stray[:3])
    return out


def check_order(wl, reqs, runs=None):
    """Per-user order as the simulator saw it.

    Requests are sorted by arrival (recvUs) and mapped to (userId, index of
    the event in the user's chain). ``runs`` splits them into daemon runs:
    a list of ``{"start": us, "end": us, "floor": {userId: index}}``
    (default: one run covering everything, no floor). Within a run, per
    user, the indices never go backwards (a retry of the same event is
    fine): one request in flight per key, offset order. A request in no run
    is an error.

    Across a crash at-least-once lets the next run replay from the last
    committed offset, i.e. restart a user at an event it had already
    requested, so the indices may go back between runs. What must still
    hold is the state-table rule of SPEC §4: an event at or below the
    offset of the user's latest state record is "replayed" without an API
    call. A state record the earlier run wrote is in the topic when the
    next run starts (that process is dead), and the next run catches up to
    the topic's end before consuming; so a run may not send a request for
    an event whose index is <= ``floor[user]``, the highest index with a
    state record (record or tombstone) from an earlier run. See
    state_floor()."""
    runs = runs or [{"start": 0, "end": float("inf"), "floor": {}}]
    last = [dict() for _ in runs]
    problems = []
    for r in sorted(reqs, key=lambda r: (r["recvUs"], r["seq"])):
        eid = event_of(wl, r)
        if eid is None:
            problems.append("request without a workload TrackingID: %s" % r)
            continue
        user, idx = wl.where[eid]
        run = next((i for i, ru in enumerate(runs) if ru["start"] <= r["recvUs"] < ru["end"]), None)
        if run is None:
            problems.append("request outside every daemon run: %s" % r)
            continue
        prev = last[run].get(user)
        if prev is not None and idx < prev[0]:
            problems.append("%s, run %d: %s (#%d) arrived at %d after %s (#%d) arrived at %d"
                            % (user, run + 1, eid, idx, r["recvUs"], prev[1], prev[0], prev[2]))
        floor = runs[run]["floor"].get(user)
        if floor is not None and idx <= floor:
            problems.append("%s, run %d: %s (#%d) requested although the state topic already held "
                            "the result of #%d from an earlier run (must be 'replayed')"
                            % (user, run + 1, eid, idx, floor))
        if prev is None or idx >= prev[0]:
            last[run][user] = (idx, eid, r["recvUs"])
    assert not problems, "per-user order broken (%d):\n  %s" % (len(problems),
                                                                "\n  ".join(problems[:20]))


def check_replayed_applied(wl, grouped, per_event, skip_users=()):
    """A result with note ``replayed`` claims the event was applied before:
    the simulator must have answered a request for it with a 2xx (or 404
    for a remove, which counts as applied). Catches a replay that skips an
    event nobody applied. ``per_event``: requests_by_event()."""
    skip = set(skip_users)
    bad = []
    for eid, rs in grouped.items():
        if eid not in wl.where or wl.where[eid][0] in skip:
            continue
        if any(r.get("note") == "replayed" for r in rs):
            ok = [q for q in per_event.get(eid, []) if 200 <= q["status"] < 300
                  or (q["status"] == 404 and q["method"] == "DELETE")]
            if not ok:
                bad.append("%s: 'replayed' but the simulator never applied it (requests: %s)"
                           % (eid, [q["status"] for q in per_event.get(eid, [])]))
    assert not bad, "replayed events that were never applied:\n  " + "\n  ".join(bad[:10])


def state_floor(wl, state_records, results):
    """``{userId: highest chain index with a record in state_records}``: the
    state records (consume() records of the state topic, tombstones
    included) are mapped to events through their ``bwprovd-source`` header
    and the results' ``source`` (partition, offset)."""
    src = {}
    for r in results:
        s = r.get("source") or {}
        if r.get("eventId") in wl.where:
            src[(s.get("partition"), s.get("offset"))] = r["eventId"]
    floor = {}
    for m in state_records:
        h = m["headers"].get("bwprovd-source") or ""
        try:
            topic, part, off = h.rsplit("/", 2)
            key = (int(part), int(off))
        except ValueError:
            raise AssertionError("state record without a valid bwprovd-source header: %s" % m)
        eid = src.get(key)
        if eid is None:
            continue  # not one of ours (cannot happen in these tests)
        user, idx = wl.where[eid]
        if m["key"] != user:
            continue  # a rename's other half; none in these workloads
        floor[user] = max(floor.get(user, -1), idx)
    return floor


def peak_concurrency(reqs):
    """Most requests being processed by the simulator at once, from the
    records' recvUs/doneUs."""
    edges = []
    for r in reqs:
        edges.append((r["recvUs"], 1))
        edges.append((r["doneUs"], -1))
    edges.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same µs
    cur = peak = 0
    for _, d in edges:
        cur += d
        peak = max(peak, cur)
    return peak


def describe_violation(reqs, r):
    """One line on a request the simulator flagged: for retryAfter, how long
    after the latest 429 (any user's) or 423 (the same user's: a lock pauses
    only its user) before it, and after the first one of that burst, it
    arrived."""
    line = "seq %d %s %s %s status %d, %s" % (r["seq"], r["method"], r["userId"],
                                              r.get("trackingId"), r["status"], r["violations"])
    if "retryAfter" in r["violations"]:
        waits = sorted(x["doneUs"] for x in reqs
                       if (x["status"] == 429 or (x["status"] == 423 and
                                                  x["userId"] == r["userId"]))
                       and x["doneUs"] < r["recvUs"])
        if waits:
            first = waits[-1]
            for t in reversed(waits):  # back to the start of this burst
                if first - t > 1100000:
                    break
                first = t
            line += ": arrived %.2f ms after the last 429/423 sent before it, %.2f ms after " \
                    "the first of that burst" % ((r["recvUs"] - waits[-1]) / 1e3,
                                                 (r["recvUs"] - first) / 1e3)
    return line


def check_no_violations(sim, reqs=None):
    """Zero retryAfter and concurrentUser violations (stats and records);
    returns the stats."""
    st = sim.stats()
    v = st.get("violations") or {}
    reqs = reqs if reqs is not None else []
    marked = [r for r in reqs if r.get("violations")]
    assert v.get("retryAfter") == 0 and v.get("concurrentUser") == 0 and not marked, \
        "simulator violations %s:\n  %s" % (v, "\n  ".join(describe_violation(reqs, r)
                                                          for r in marked[:8]))
    return st


def check_attempts(grouped, req_by_event):
    """For a single run without crash: the result's ``attempts`` equals the
    number of requests the simulator recorded for the event."""
    bad = []
    for eid, rs in grouped.items():
        if eid is None:
            continue
        n = len(req_by_event.get(eid, []))
        if rs[-1].get("attempts") != n:
            bad.append("%s: attempts %s, simulator saw %d" % (eid, rs[-1].get("attempts"), n))
    assert not bad, "attempts differ from the simulator's count:\n  " + "\n  ".join(bad[:10])


def check_final_state(wl, sim, state_records=None, skip_users=(), created_total=True):
    """The simulator's workspaces (and, when given, the last state record per
    user) match what the workload leaves behind; createdTotal equals the
    number of users (nobody got a second workspace). ``skip_users``: users
    whose end state is checked by the caller."""
    skip = set(skip_users)
    sw = sim.workspaces()
    by_user = {}
    for w in sw["workspaces"]:
        assert w["userId"] not in by_user, "two workspaces for %s" % w["userId"]
        by_user[w["userId"]] = w
    stray = set(by_user) - set(wl.users)
    assert not stray, "workspaces for users outside the workload: %s" % sorted(stray)[:5]
    if created_total:
        assert sw["created_total"] == len(wl.users), \
            "simulator created %d workspaces for %d users (a second workspace)" % (
                sw["created_total"], len(wl.users))
    last = {}
    if state_records is not None:
        for m in state_records:
            last[m["key"]] = m["value"]
    problems = []
    for u in wl.users:
        if u in skip:
            continue
        want = wl.final[u]
        have = by_user.get(u)
        if want is None:
            if have is not None:
                problems.append("%s: should be removed, simulator has %s" % (u, have))
            # SPEC §4: a removed marker, a record compaction keeps; a
            # user that never got a workspace may have no record at all
            st = json.loads(last[u]) if last.get(u) else None
            if state_records is not None and u in last and not (st and st.get("removed")):
                problems.append("%s: removed, but its last state record is %s" % (u, last[u]))
            continue
        if have is None:
            problems.append("%s: should be provisioned, simulator has no workspace" % u)
            continue
        for f, v in want.items():
            if have.get(f) != v:
                problems.append("%s: simulator %s=%r, expected %r" % (u, f, have.get(f), v))
        if state_records is not None:
            st = json.loads(last[u]) if last.get(u) else None
            if st is None or st.get("removed"):
                problems.append("%s: provisioned, but no state record (last: %r)"
                                % (u, last.get(u)))
            elif (st.get("workspaceId") != have["id"]
                  or st.get("extension") != want.get("extension")
                  or st.get("primaryPhoneNumber") != want.get("primaryPhoneNumber")):
                problems.append("%s: state %s does not match the simulator's %s" % (u, st, have))
    assert not problems, "end state differs (%d):\n  %s" % (len(problems),
                                                            "\n  ".join(problems[:20]))
    return by_user


def check_dlq(mk, wl, grouped, event_ids, kind):
    """The DLQ holds exactly one record per event of ``event_ids`` (the
    original key and bytes) with ``bwprovd-error: <kind>: ...`` and
    ``bwprovd-source`` naming the event's offset; returns the records."""
    dlq = mk.consume(bwtest.TOPIC_DLQ, count=len(event_ids), timeout=30) if event_ids else \
        mk.consume(bwtest.TOPIC_DLQ)
    assert len(dlq) == len(event_ids), "%d DLQ records, expected %d" % (len(dlq), len(event_ids))
    want = {eid: bwtest.event_record(wl.by_id[eid]) for eid in event_ids}
    seen = set()
    for m in dlq:
        ev = json.loads(m["value"])
        eid = ev.get("eventId")
        assert eid in want and eid not in seen, "unexpected DLQ record %s" % m
        seen.add(eid)
        assert (m["key"], m["value"]) == want[eid], "DLQ record of %s is not the original" % eid
        assert m["headers"].get("bwprovd-error", "").startswith(kind + ": "), m["headers"]
        s = grouped[eid][-1]["source"]
        assert m["headers"].get("bwprovd-source") == "%s/%d/%d" % (s["topic"], s["partition"],
                                                                 s["offset"]), (m["headers"], s)
    return dlq


# ---------------------------------------------------------------------------
# Waiting


def wait_requests(sim, n, timeout, interval=0.02):
    """Wait until the simulator has finished at least ``n`` requests;
    returns the stats."""
    return bwtest.wait_until(lambda: (lambda st: st if st["requests"] >= n else None)(sim.stats()),
                             timeout, interval, desc="simulator saw %d requests" % n)


def write_secret(directory, name, value):
    """A file holding ``value``, mode 0600; returns its path."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)
    return path


def fetch_token(sim, refresh_token, client_id="client", client_secret="secret"):
    """POST /v1/access_token to the simulator as an operator's tool would;
    returns (status, parsed body or None). Recorded by the simulator like
    the daemon's own token requests."""
    body = urllib.parse.urlencode({"grant_type": "refresh_token", "client_id": client_id,
                                   "client_secret": client_secret,
                                   "refresh_token": refresh_token}).encode()
    req = urllib.request.Request(sim.base_url + "/access_token", data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read().decode())
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, None


def report(name, t0, **kv):
    log("%s: done in %.1fs; %s", name, time.monotonic() - t0,
        ", ".join("%s=%s" % kv_ for kv_ in kv.items()))


# --- durability scenarios (tests-kafka) ---
# Helpers of test_kafka_down_stop.py, test_kafka_down_kill.py,
# test_stop_backlog.py and test_leave_slow.py: the contract that the
# userId -> workspace id map is never lost (Kafka outages, SIGTERM, SIGKILL,
# clean leave). Each scenario runs every check, prints each verdict with its
# numbers, and fails at the end naming all the checks that failed (Checks).
import signal  # noqa: E402

#: Product defaults, used when `bwprovd --check-config` does not print the key.
DEFAULT_TIMEOUT_MS = 30000     # webex.timeout_ms
DEFAULT_GRACE_MS = 10000       # shutdown.grace_ms
DEFAULT_MAX_UNACKED = 5000     # state.max_unacknowledged (contract; no such key before it)
#: What STATUS= says while state-changing requests are held (contract).
HOLD_TEXT = "holding state-changing requests"
#: "No new request after the signal": a request the daemon put on the wire
#: just before it read the signal can still reach the simulator a moment after
#: the test sent it (signal delivery, the worker's current loop turn). 50 ms
#: is far above that and far below one request of these scenarios.
SIGNAL_SLACK_US = 50000
#: Result notes a provision may end with after a restart or a hand-over.
PROVISION_OK_NOTES = (None, "replayed", "already_provisioned")


class Checks:
    """Collects a scenario's verdicts: ``check(what, ok, detail)`` prints
    PASS/FAIL with the numbers; ``run(what, fn, ...)`` takes an
    AssertionError of ``fn`` as a failed check; ``done()`` raises one
    AssertionError listing every failed check."""

    def __init__(self, name):
        self.name = name
        self.failed = []

    def check(self, what, ok, detail=""):
        log("%s: %s%s", "PASS" if ok else "FAIL", what, " -- %s" % detail if detail else "")
        if not ok:
            self.failed.append("%s -- %s" % (what, detail) if detail else what)
        return bool(ok)

    def run(self, what, fn, *args, **kw):
        try:
            value = fn(*args, **kw)
        except AssertionError as e:
            lines = str(e).splitlines()
            more = len(lines) - 7
            self.check(what, False, "\n    ".join(lines[:7]) +
                       ("\n    (%d more line(s))" % more if more > 0 else ""))
            return None
        self.check(what, True)
        return value

    def done(self):
        assert not self.failed, "%s: %d check(s) failed:\n  %s" % (
            self.name, len(self.failed), "\n  ".join(self.failed))


def effective_config(d):
    """The daemon's effective configuration ``{key: str}`` as
    ``bwprovd --check-config`` prints it (defaults included)."""
    r = d.check_config()
    if r.returncode != 0:
        raise bwtest.HarnessError("--check-config exit %d: %s" % (r.returncode, r.stderr[-2000:]))
    out = {}
    for line in r.stdout.splitlines():
        k, sep, v = line.partition(" = ")
        if sep:
            out[k.strip()] = v.strip()
    return out


def config_int(cfg, key, default):
    """``int(cfg[key])``, or ``default`` when absent or not a number."""
    try:
        return int(cfg[key])
    except (KeyError, ValueError):
        return default


def stop_limit_s(d):
    """The contract's bound on a stop: webex.timeout_ms (answers of the
    requests on the wire) + shutdown.grace_ms (their acknowledgements) +
    10 s (process start-up/clean-up slack), from the daemon's effective
    configuration."""
    cfg = effective_config(d)
    return (config_int(cfg, "webex.timeout_ms", DEFAULT_TIMEOUT_MS)
            + config_int(cfg, "shutdown.grace_ms", DEFAULT_GRACE_MS)) / 1000.0 + 10


def timed_stop(d, limit_s, sig=None):
    """Send ``sig`` (default SIGTERM) and wait up to ``limit_s`` for the
    exit. Returns ``(t_sent_us, rc, seconds)``; rc is None when it did not
    exit in time (the harness has SIGKILLed it then)."""
    sig = signal.SIGTERM if sig is None else sig
    t_sent = now_us()
    try:
        rc = d.stop(sig, timeout=limit_s)
    except bwtest.Timeout as e:
        log("bwprovd did not exit within %.1f s of signal %s: %s", limit_s, sig,
            str(e).splitlines()[0])
        rc = None
    return t_sent, rc, (now_us() - t_sent) / 1e6


def requests_arrived_after(reqs, t_us):
    """API requests whose headers reached the simulator at or after t_us."""
    return [r for r in reqs if r["recvUs"] >= t_us]


def describe_requests(reqs, t_ref_us, n=6):
    """The first ``n`` requests (by arrival) as 'METHOD userId status recv +x ms
    done +y ms', times relative to t_ref_us."""
    return ", ".join("%s %s %d recv %+.0f ms done %+.0f ms" % (
        r["method"], r.get("userId"), r["status"], (r["recvUs"] - t_ref_us) / 1e3,
        (r["doneUs"] - t_ref_us) / 1e3) for r in sorted(reqs, key=lambda r: r["recvUs"])[:n])


def statuses_between(d, t0, t1=float("inf"), run=None):
    """STATUS= values of run ``run`` received within [t0, t1] (monotonic s)."""
    return [n.value for n in d.notifications_for("STATUS", run) if t0 <= n.t <= t1]


def outcome_counts(results):
    """Counter of (outcome, error kind, note) over result dicts."""
    return collections.Counter((r.get("outcome"), (r.get("error") or {}).get("kind"),
                                r.get("note")) for r in results)


def final_results(results):
    """``{eventId: last result}`` (results in topic order)."""
    return {eid: rs[-1] for eid, rs in by_event(results).items() if eid is not None}


def wait_settled(mk, sim, event_ids, timeout, quiet_s=2.0):
    """wait_results() for ``event_ids``, then until the results topic stops
    growing for ``quiet_s`` with no request at the simulator (so a replay
    still under way adds its result before the final ones are judged);
    bounded by ``timeout`` in all. Returns the parsed results."""
    deadline = time.monotonic() + timeout
    res = wait_results(mk, event_ids, timeout)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        again = parse_results(mk.consume(bwtest.TOPIC_RESULTS, timeout=30))
        if len(again) == len(res) and sim.stats().get("inFlight", 0) == 0:
            return again
        res = again
    return res


def state_latest(records):
    """``{key: parsed value or None}``: the latest state record per key
    (what a compacted topic keeps); a tombstone or a removed marker
    (``"removed": true``) gives None."""
    last = {}
    for m in records:
        last[m["key"]] = m["value"]
    out = {}
    for k, v in last.items():
        if v is None:
            out[k] = None
            continue
        try:
            j = json.loads(v)
        except ValueError:
            raise AssertionError("state record for %s is not JSON: %r" % (k, v[:200]))
        out[k] = None if isinstance(j, dict) and j.get("removed") else j
    return out


def state_ids(records):
    """``{userId: workspaceId}`` of the live entries of the state topic."""
    return {k: (v or {}).get("workspaceId") for k, v in state_latest(records).items() if v}


def sim_ids(sim):
    """``{userId: id}`` of the simulator's workspaces."""
    return {w["userId"]: w["id"] for w in sim.workspaces()["workspaces"]}


def map_problems(state, simmap, skip=()):
    """Differences between the state topic's and the simulator's userId ->
    workspace id maps (users in ``skip`` left out), as lines."""
    skip = set(skip)
    out = []
    for u in sorted((set(state) | set(simmap)) - skip):
        s, w = state.get(u), simmap.get(u)
        if s != w:
            out.append("%s: state topic %s, simulator %s" % (u, s, w))
    return out


def wait_state_matches(mk, sim, skip=(), timeout=10, interval=1.0):
    """Poll until the state topic (latest record per key) equals the
    simulator's workspaces (``skip`` users left out), at most ``timeout``
    s: a record may be acknowledged a moment after its result. Returns
    ``(state map, simulator map, problems)``; problems empty when equal."""
    deadline = time.monotonic() + timeout
    while True:
        st = state_ids(mk.consume(bwtest.TOPIC_STATE, timeout=30))
        sm = sim_ids(sim)
        probs = map_problems(st, sm, skip)
        if not probs or time.monotonic() >= deadline:
            return st, sm, probs
        time.sleep(interval)


def outage_after_answers(mk, sim, n_answers, timeout=60):
    """The first phase of the Kafka-down scenarios: wait until the simulator
    has answered ``n_answers`` requests (so the daemon is consuming, and
    librdkafka has fetched the backlog: on the mock cluster one fetch takes
    a partition's whole backlog; their results follow within milliseconds,
    while polling the results topic with kcat would overshoot by hundreds),
    then disconnect every broker. Returns the monotonic time of the
    disconnection."""
    wait_requests(sim, n_answers, timeout)
    mk.down("all")
    return time.monotonic()


def posts_answered_between(reqs, t0_us, t1_us):
    """POSTs the simulator answered (doneUs) within [t0_us, t1_us)."""
    return [r for r in reqs if r["method"] == "POST" and t0_us <= r["doneUs"] < t1_us]
