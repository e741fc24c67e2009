#!/usr/bin/python3
"""Scenario: events for a renamed user's new userId right behind the rename
(contract point 6).

One daemon (product defaults). For 200 users, produced in one kcat run, one
user's events back to back so they are consumed together:

    provision A            (keyed A)
    update A, newUserId N  (keyed A: the rename)
    update N, new phone    (keyed N, so in another partition than A's)
    remove N               (keyed N; every third user)

A and N are different keys, usually in different partitions, so the N
events are consumed while A's provision and rename are still queued or on
the wire. Within one instance an event for N consumed after the rename
must wait until the rename has finished; one consumed before it (another
partition fetched first) is covered by state.lookup_wait_ms (default
10 s: the whole run takes a few seconds, so the default suffices).

Asserted:

* every event has exactly one result and it is `succeeded` with no note
  (the update for N found N's workspace: not `unknown_workspace`; the
  remove of N removed it: not `not_provisioned`);
* the simulator's workspaces: exactly the N's that were not removed, each
  the workspace A's provision created, with the new phone number; no A
  left; createdTotal 200;
* per-chain order at the simulator (scenario.check_order over the chain
  A, rename, N, remove N), and no overlap: a chain's request arrives only
  after the previous one of the chain was answered;
* zero simulator violations.

Runtime ~10 s.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mapcheck  # noqa: E402
from mapcheck import bwtest, log, scenario  # noqa: E402

USERS = 200
REMOVE_EVERY = 3


def main():
    t0 = time.monotonic()
    wl = mapcheck.empty_workload("rn")
    events = []
    new_of, phone_of, removed = {}, {}, set()
    for i in range(USERS):
        a = "%08d@rn-old.sp.example.com" % (60000000 + i)
        n = "%08d@rn-new.sp.example.com" % (60000000 + i)
        new_of[a] = n
        phone_of[n] = "+1-302-555-%04d" % i
        chain = [bwtest.provision(a, event_id="rn-%03d-prov" % i,
                                  primaryPhoneNumber="+1-240-555-%04d" % i,
                                  extension="5%04d" % i),
                 bwtest.update(a, event_id="rn-%03d-rename" % i, newUserId=n),
                 bwtest.update(n, event_id="rn-%03d-upd" % i, primaryPhoneNumber=phone_of[n])]
        if i % REMOVE_EVERY == 0:
            chain.append(bwtest.remove(n, event_id="rn-%03d-rm" % i))
            removed.add(n)
        wl.add_chain(a, chain, final=None)
        events += chain
    with bwtest.Kafka() as mk, bwtest.WebSim() as sim, \
            bwtest.Daemon(mk.bootstrap, sim) as d:
        d.wait_ready(60)
        mk.produce(bwtest.TOPIC_EVENTS, events, timeout=60)
        log("produced %d events for %d renames", len(events), USERS)
        # Bounded: a few seconds of work, plus state.lookup_wait_ms (10 s)
        # for an N event that was consumed before its rename.
        results = scenario.wait_all_results(mk, wl, 60)
        time.sleep(0.5)  # a duplicate result would show by now
        results = scenario.parse_results(mk.consume(bwtest.TOPIC_RESULTS))
        reqs = scenario.api_requests(sim)
        st = sim.stats()
        sw = sim.workspaces()
        assert d.stop() == 0, "SIGTERM did not exit 0:\n" + d.log_tail()

    problems = []
    grouped = scenario.by_event(results)
    kinds = {}
    for eid in wl.by_id:
        r = mapcheck.result_of(grouped, eid)
        k = mapcheck.fmt_result(r).split(":")[0] if r else "no result"
        kinds.setdefault((eid.rsplit("-", 1)[1], k), []).append(eid)
    log("results by event kind: %s", {"%s %s" % k: len(v) for k, v in sorted(kinds.items())})
    try:
        scenario.check_results(wl, results)
    except AssertionError as e:
        problems.append("results: %s" % str(e)[:1500])
    # the simulator's end state
    prov_ws = {eid: (mapcheck.result_of(grouped, eid) or {}).get("workspaceId")
               for eid in wl.by_id if eid.endswith("-prov")}
    by_user = {}
    for w in sw["workspaces"]:
        by_user.setdefault(w["userId"], []).append(w)
    wrong = []
    for a, n in new_of.items():
        ws = prov_ws.get(wl.chains[a][0]["eventId"])
        if a in by_user:
            wrong.append("%s: still has a workspace under its old userId" % a)
        have = by_user.get(n, [])
        if n in removed:
            if have:
                wrong.append("%s: removed, but the simulator still has %s (phone %s)"
                             % (n, have[0]["id"][-8:], have[0].get("primaryPhoneNumber")))
        elif len(have) != 1 or have[0]["id"] != ws or \
                have[0].get("primaryPhoneNumber") != phone_of[n]:
            wrong.append("%s: simulator has %s, expected workspace %s with phone %s"
                         % (n, [(w["id"][-8:], w.get("primaryPhoneNumber")) for w in have],
                            (ws or "?")[-8:], phone_of[n]))
    if wrong:
        problems.append("end state differs for %d user(s), e.g.\n    %s"
                        % (len(wrong), "\n    ".join(wrong[:6])))
    if sw["created_total"] != USERS:
        problems.append("createdTotal %d, expected %d" % (sw["created_total"], USERS))
    # order per chain, and one request at a time per chain
    try:
        scenario.check_order(wl, reqs)
    except AssertionError as e:
        problems.append(str(e)[:2000])
    per_chain = {}
    for r in sorted(reqs, key=lambda r: (r["recvUs"], r["seq"])):
        eid = scenario.event_of(wl, r)
        if eid is None:
            problems.append("request without a workload TrackingID: %s" % r)
            continue
        per_chain.setdefault(wl.where[eid][0], []).append((eid, r))
    overlap = []
    for a, rs in per_chain.items():
        for (e1, r1), (e2, r2) in zip(rs, rs[1:]):
            if r2["recvUs"] < r1["doneUs"]:
                overlap.append("%s (%s %s) arrived %.1f ms before %s (%s) was answered"
                               % (e2, r2["method"], r2["status"],
                                  (r1["doneUs"] - r2["recvUs"]) / 1e3, e1, r1["method"]))
    if overlap:
        problems.append("%d chain request(s) overlapping the previous one, e.g. %s"
                        % (len(overlap), overlap[:4]))
    v = st.get("violations") or {}
    if v.get("retryAfter") or v.get("concurrentUser"):
        problems.append("simulator violations: %s" % v)
    mapcheck.fail_if(problems, "events behind a rename were not ordered")
    scenario.report("rename_order", t0, events=len(events), requests=st["requests"])


if __name__ == "__main__":
    main()
