#!/usr/bin/python3
"""Scenario: events carrying hostile workspaceIds (contract point 5).

One daemon (product defaults). Setup: users A, B and six others are
provisioned while nothing is wrong; A's and B's workspace ids are read from
their results.

Then, keyed A, for every hostile id h an update (new extension) and a
remove, each with ``"workspaceId": h``, for h in: ``..``, ``.``, ``a/b``,
``%2e%2e``, ``x?y``, ``x#y``, a 300-character id (over the API's maxLength
256), ``x\\u0001y`` (a control character), the empty string, and B's real
id (another user's). After them, as a positive control, an update for A
with A's own id (must succeed: the check is not over-broad). For user D,
never provisioned, an update and a remove with B's id (the table holds it
for another user: rejected too). For user C,
never provisioned, an update and a remove with workspaceId ``%2e%2e``: a
legal id nobody holds, which must go out inside ONE path segment,
percent-encoded (``/v1/broadworks/workspaces/%252e%252e``); the simulator
decodes it to ``%2e%2e``, knows no such workspace and answers 404: the
update fails `permanent`, the remove succeeds `already_removed`.

Asserted:

* every hostile event for A and D is `rejected`, kind `invalid`, with a message
  naming workspaceId (case-insensitive "workspaceId" or "workspace id":
  the contract only says "naming `workspaceId`" / "says which"), and the
  simulator saw no request with its TrackingID ``bwprovd_<eventId>``;
* every request's raw path is ``/v1/broadworks/workspaces`` or that plus
  one non-empty segment with no ``/``, ``?`` or ``#``;
* C's two requests have exactly the path above, the simulator's decoded
  workspaceId ``%2e%2e``, status 404, and the results above;
* B's workspace is untouched (same fields, userId still B), A's workspace
  is still A's with only the control update's extension; the state
  topic's latest records for A and B still name their own workspaces;
* the DLQ holds exactly the rejected events (original key and bytes,
  ``bwprovd-error: invalid: ...``) plus C's failed update
  (``permanent: ...``).

Runtime ~10 s (plus up to state.lookup_wait_ms per C event, should an
implementation wait for C's table entry before sending).
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mapcheck  # noqa: E402
from mapcheck import bwtest, log, scenario  # noqa: E402

A = "10000001@hostile.sp.example.com"
B = "10000002@hostile.sp.example.com"
C = "10000003@hostile.sp.example.com"  # never provisioned
D = "10000004@hostile.sp.example.com"  # never provisioned either
OTHERS = ["%08d@hostile.sp.example.com" % (10000010 + i) for i in range(6)]
C_PATH = "/v1/broadworks/workspaces/%252e%252e"


def hostile_ids(b_ws):
    """(label, workspaceId) pairs: every one must be rejected for A."""
    return [
        ("dotdot", ".."),
        ("dot", "."),
        ("slash", "a/b"),
        ("pct-dotdot", "%2e%2e"),   # legal syntax, but not A's id
        ("query", "x?y"),
        ("fragment", "x#y"),
        ("long300", "w" * 300),
        ("control", "x\u0001y"),
        ("empty", ""),
        ("other-user", b_ws),       # B's real id
    ]


def main():
    t0 = time.monotonic()
    with bwtest.Kafka() as mk, bwtest.WebSim() as sim, \
            bwtest.Daemon(mk.bootstrap, sim) as d:
        d.wait_ready(60)
        setup = [bwtest.provision(u, event_id="hx-prov-%d" % i, extension="4%04d" % i)
                 for i, u in enumerate([A, B] + OTHERS)]
        mk.produce(bwtest.TOPIC_EVENTS, setup)
        res = scenario.wait_results(mk, [e["eventId"] for e in setup], 60, what="setup")
        g = scenario.by_event(res)
        assert all(g[e["eventId"]][-1]["outcome"] == "succeeded" for e in setup), res
        a_ws = g["hx-prov-0"][-1]["workspaceId"]
        b_ws = g["hx-prov-1"][-1]["workspaceId"]
        before = mapcheck.sim_by_user(sim)
        assert before[A]["id"] == a_ws and before[B]["id"] == b_ws, before
        seq0 = mapcheck.last_seq(sim)

        hostile = []  # (label, event)
        for label, h in hostile_ids(b_ws):
            hostile.append((label, bwtest.update(A, event_id="hx-upd-" + label,
                                                 workspaceId=h, extension="77777")))
        for label, h in hostile_ids(b_ws):
            hostile.append((label, bwtest.remove(A, event_id="hx-rm-" + label, workspaceId=h)))
        control = bwtest.update(A, event_id="hx-upd-own", workspaceId=a_ws, extension="88888")
        c_upd = bwtest.update(C, event_id="hx-c-upd", workspaceId="%2e%2e", extension="1")
        c_rm = bwtest.remove(C, event_id="hx-c-rm", workspaceId="%2e%2e")
        # D has no workspace; B's id is held by B: rejected too.
        hostile.append(("d-other-user", bwtest.update(D, event_id="hx-d-upd", workspaceId=b_ws,
                                                      extension="66666")))
        hostile.append(("d-other-user", bwtest.remove(D, event_id="hx-d-rm", workspaceId=b_ws)))
        events = [ev for _, ev in hostile] + [control, c_upd, c_rm]
        records = [bwtest.event_record(ev) for ev in events]
        mk.produce(bwtest.TOPIC_EVENTS, records)
        log("produced %d hostile events (A, D), the control update, 2 events for C", len(hostile))
        # Bounded: parse-time rejections are immediate; C's events may wait
        # state.lookup_wait_ms (10 s) each.
        res = scenario.wait_results(mk, [e["eventId"] for e in events], 60, what="hostile")
        time.sleep(0.5)  # let a stray late request land in the log
        g = scenario.by_event(scenario.parse_results(mk.consume(bwtest.TOPIC_RESULTS)))
        reqs = sim.all_requests(since=seq0)
        by_tid = {}
        for r in reqs:
            by_tid.setdefault(r.get("trackingId"), []).append(r)
        after = mapcheck.sim_by_user(sim)
        state = mk.consume(bwtest.TOPIC_STATE)
        dlq = mk.consume(bwtest.TOPIC_DLQ)
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()

    per_event, problems = [], []
    # 1. every hostile event rejected at parse time, no request
    for label, ev in hostile:
        eid = ev["eventId"]
        r = mapcheck.result_of(g, eid)
        err = (r or {}).get("error") or {}
        msg = err.get("message") or ""
        sent = by_tid.get(scenario.TRACKING_PREFIX + eid, [])
        ok = r is not None and r.get("outcome") == "rejected" and err.get("kind") == "invalid" \
            and ("workspaceid" in msg.lower() or "workspace id" in msg.lower())
        if not ok or sent:
            per_event.append("%s (workspaceId %r): %s%s" % (
                eid, ev["workspaceId"][:24], mapcheck.fmt_result(r)[:90],
                "; sent %s" % ["%s %s -> %d" % (q["method"], q["path"][:60], q["status"])
                               for q in sent] if sent else ""))
    if per_event:
        per_event.insert(0, "%d of %d hostile event(s) not rejected/invalid naming "
                         "workspaceId with no request:" % (len(per_event), len(hostile)))
    # 2. paths
    bad_paths = [r for r in reqs if not mapcheck.path_ok(r["path"])]
    if bad_paths:
        problems.append("%d request(s) whose path is not the collection or one item of it: %s"
                        % (len(bad_paths), ["%s %s (%s) -> %d" % (
                            q["method"], q["path"][:70], q.get("trackingId"), q["status"])
                            for q in bad_paths[:8]]))
    # 3. C: one segment, percent-encoded
    for ev, method, want in ((c_upd, "PUT", ("failed", "permanent", None)),
                             (c_rm, "DELETE", ("succeeded", None, "already_removed"))):
        sent = by_tid.get(scenario.TRACKING_PREFIX + ev["eventId"], [])
        shape = [(q["method"], q["path"], q.get("workspaceId"), q["status"]) for q in sent]
        if shape != [(method, C_PATH, "%2e%2e", 404)]:
            problems.append("%s: requests %s, expected one %s %s (decoded %%2e%%2e) -> 404"
                            % (ev["eventId"], shape, method, C_PATH))
        r = mapcheck.result_of(g, ev["eventId"])
        got = (r or {}).get("outcome"), ((r or {}).get("error") or {}).get("kind"), \
            (r or {}).get("note")
        if got != want:
            problems.append("%s: %s, expected %s" % (ev["eventId"], mapcheck.fmt_result(r), want))
    # 4. the control update, and A's and B's workspaces
    r = mapcheck.result_of(g, "hx-upd-own")
    if r is None or r.get("outcome") != "succeeded" or r.get("workspaceId") != a_ws:
        problems.append("control update of A with its own id: %s" % mapcheck.fmt_result(r))
    if after.get(B) != before[B]:
        problems.append("B's workspace changed: before %s, after %s" % (before[B], after.get(B)))
    want_a = dict(before[A], extension="88888")
    if after.get(A) != want_a:
        problems.append("A's workspace: %s, expected %s" % (after.get(A), want_a))
    if set(after) != set(before):
        problems.append("simulator users changed: %s -> %s" % (sorted(before), sorted(after)))
    for u, ws in ((A, a_ws), (B, b_ws)):
        # Nothing but the setup and the control update may write u's state.
        recs = [m for m in state if m["key"] == u]
        wrong = [m for m in recs if not isinstance(mapcheck.parse_value(m), dict)
                 or mapcheck.parse_value(m).get("removed")
                 or mapcheck.parse_value(m).get("workspaceId") != ws]
        if not recs or wrong:
            problems.append("state topic: %d of %d record(s) for %s do not name its workspace "
                            "%s (removed or tombstoned by a hostile event?), e.g. %s"
                            % (len(wrong), len(recs), u, ws,
                               [(m["offset"], (m["value"] or "null")[:60],
                                 m["headers"].get("bwprovd-source")) for m in wrong[:3]]))
    # 5. the DLQ
    want = {ev["eventId"]: (bwtest.event_record(ev), "invalid: ") for _, ev in hostile}
    want[c_upd["eventId"]] = (bwtest.event_record(c_upd), "permanent: ")
    seen = set()
    wrong_reason = []
    for m in dlq:
        try:
            eid = json.loads(m["value"]).get("eventId")
        except (TypeError, ValueError):
            eid = None
        if eid not in want or eid in seen:
            problems.append("unexpected DLQ record %s: %s" % (eid, m["headers"]))
            continue
        seen.add(eid)
        rec, prefix = want[eid]
        if (m["key"], m["value"]) != rec:
            problems.append("DLQ record of %s is not the original bytes" % eid)
        if not (m["headers"].get("bwprovd-error") or "").startswith(prefix):
            wrong_reason.append("%s: %r" % (eid, (m["headers"].get("bwprovd-error") or "")[:50]))
    if wrong_reason:
        problems.append("%d DLQ record(s) with the wrong bwprovd-error kind: %s"
                        % (len(wrong_reason), "; ".join(wrong_reason[:4])))
    missing = sorted(set(want) - seen)
    if missing:
        problems.append("%d event(s) missing from the DLQ: %s" % (len(missing), missing))

    log("%d API request(s) after the setup, %d with a bad path; %d hostile event(s) rejected",
        len(reqs), len(bad_paths),
        sum(1 for _, ev in hostile
            if (mapcheck.result_of(g, ev["eventId"]) or {}).get("outcome") == "rejected"))
    problems += per_event
    mapcheck.fail_if(problems, "hostile workspaceIds were not contained")
    scenario.report("hostile_ids", t0, hostile=len(hostile), requests=len(reqs))


if __name__ == "__main__":
    main()
