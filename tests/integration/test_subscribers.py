#!/usr/bin/python3
"""Scenario: BroadWorks subscribers end to end (SPEC §2b), product defaults.

The simulator provisions asynchronously: a POST or PUT answers 200 with
status provisioning/updating and the final status comes SIM_DELAY_MS
later, seen only by polling. Groups of users, each one chain of events,
interleaved at random, with a few workspace events among them:

* ok (40): provision -> provisioned: succeeded, no note, personId given;
* mig (8), email (8): provision -> pending_user_migration /
  pending_email_input (Webex now waits for the person): succeeded with the
  status as note;
* err (8): provision -> error with errors[]: failed, kind provisioning,
  Webex's errorCode and description in the message, a DLQ copy;
* upd (16): provision, update (package premium, mobile number cleared),
  rename (newUserId), then an update keyed by the new userId: every one
  succeeded; the simulator has the subscriber under the new userId with
  the new package;
* rm (16): provision, remove: succeeded; gone from the simulator;
* taken (8): the userId already has a subscriber in Webex (made by the
  test before bwprovd runs): the provision gets 409 (errorCode 10022),
  bwprovd looks the subscriber up and ends succeeded, note
  already_provisioned, with that subscriber's id; no second subscriber;
* noid (8): a subscriber Webex has but bwprovd never saw: an update finds
  it by a lookup and succeeds;
* ghost (8): a remove for a userId nobody has: succeeded, not_provisioned;
* other (4): the userId belongs to a subscriber of another spEnterpriseId:
  the provision fails, kind conflict;
* ws (8): workspace provision + update, in the same run;
* mix (4): a subscriber, then a workspace provision and update for the
  same userId: both rejected (kind invalid: one userId, one kind of
  thing); Webex never sees a workspace for it.

Asserted besides: exactly one result per event; results of subscriber
events carry subscriberId (the simulator's), the final status and
personId (when provisioned), never workspaceId; state records of kind
subscriber; the state topic's live subscribers == the simulator's (the
other enterprise's aside); per-user order at the simulator (polls and
lookups of an event count as its requests); no concurrentUser or
retryAfter violation; polls paced by the schedule (at most
MAX_POLLS_PER_EVENT GETs of a subscriber per event); no POST while a
subscriber for the user existed (subscribersCreatedTotal as planned).
"""
import json
import os
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import subcheck  # noqa: E402
from subcheck import bwtest, log, scenario  # noqa: E402

SIM_DELAY_MS = 1000
ENTERPRISE = "Reseller1+acme"
# The default schedule (2 s, doubling) sees a 1 s transition at the first
# poll; a second poll is allowed for a slow machine.
MAX_POLLS_PER_EVENT = 2
GROUPS = (("ok", 40), ("mig", 8), ("email", 8), ("err", 8), ("upd", 16), ("rm", 16),
          ("taken", 8), ("noid", 8), ("ghost", 8), ("other", 4), ("ws", 8), ("mix", 4))
OUTCOMES = {"mig": {"status": "pending_user_migration"},
            "email": {"status": "pending_email_input"},
            "err": {"status": "error", "errors": [{"errorCode": 1001,
                                                   "description": "License assignment failed"}]}}


def user(group, i):
    return "%s%03d@subs.sp.example.com" % (group, i)


def direct_post(sim, body):
    """A subscriber made in Webex without bwprovd (another tool, before
    bwprovd existed)."""
    req = urllib.request.Request(sim.base_url + "/broadworks/subscribers",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + sim.token,
                                          "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as r:
        return json.loads(r.read())


def plan():
    wl = subcheck.workload("sb")
    chains, expect, group_of, outcomes, before = [], {}, {}, {}, []
    for group, count in GROUPS:
        for i in range(count):
            u = user(group, i)
            eid = lambda k: "sb-%s-%03d-%d" % (group, i, k)  # noqa: E731
            prov = bwtest.sub_provision(u, event_id=eid(0), provisioningId="prov-sb",
                                        spEnterpriseId=ENTERPRISE, firstName="F%d" % i,
                                        mobilePhoneNumber="+1-301-555-%04d" % i)
            chain = [prov]
            exp = {eid(0): ("succeeded", None, None)}
            if group in OUTCOMES:
                outcomes[u] = OUTCOMES[group]
                if group == "err":
                    exp[eid(0)] = ("failed", "provisioning", None)
                else:
                    exp[eid(0)] = ("succeeded", None, OUTCOMES[group]["status"])
            if group == "upd":
                new = "n" + u
                chain += [bwtest.sub_update(u, event_id=eid(1), package="premium",
                                            mobilePhoneNumber=""),
                          bwtest.sub_update(u, event_id=eid(2), newUserId=new),
                          bwtest.sub_update(new, event_id=eid(3), lastName="Renamed")]
                exp.update({eid(k): ("succeeded", None, None) for k in (1, 2, 3)})
            if group == "rm":
                chain.append(bwtest.sub_remove(u, event_id=eid(1)))
                exp[eid(1)] = ("succeeded", None, None)
            if group in ("taken", "noid", "other"):
                before.append({"provisioningId": "prov-before", "userId": u,
                               "spEnterpriseId": "Other+corp" if group == "other" else ENTERPRISE,
                               "firstName": "Pre", "lastName": u, "package": "standard"})
            if group == "taken":
                exp[eid(0)] = ("succeeded", None, "already_provisioned")
            if group == "other":
                exp[eid(0)] = ("failed", "conflict", None)
            if group == "noid":
                chain = [bwtest.sub_update(u, event_id=eid(0), timezone="Europe/Paris")]
            if group == "ghost":
                chain = [bwtest.sub_remove(u, event_id=eid(0))]
                exp[eid(0)] = ("succeeded", None, "not_provisioned")
            if group == "ws":
                chain = [bwtest.provision(u, event_id=eid(0)),
                         bwtest.update(u, event_id=eid(1), extension="7%03d" % i)]
                exp[eid(1)] = ("succeeded", None, None)
            if group == "mix":
                chain += [bwtest.provision(u, event_id=eid(1)),
                          bwtest.update(u, event_id=eid(2), extension="8%03d" % i)]
                exp.update({eid(k): ("rejected", "invalid", None) for k in (1, 2)})
            for ev in chain:
                group_of[ev["eventId"]] = group
            wl.add_chain(u, chain, final=None)
            chains.append(chain)
            expect.update(exp)
    return wl, subcheck.interleave(chains, seed=5), expect, group_of, outcomes, before


def check_result(r, expect, group_of, sim_ids, problems):
    eid = r["eventId"]
    outcome, kind, note = expect[eid]
    got_kind = (r.get("error") or {}).get("kind")
    if (r["outcome"], got_kind, r.get("note")) != (outcome, kind, note):
        problems.append("%s: %s/%s/%s, expected %s/%s/%s (%s)" % (
            eid, r["outcome"], got_kind, r.get("note"), outcome, kind, note, r.get("error")))
    if r["type"].startswith("workspace."):
        if group_of[eid] == "mix" and r.get("workspaceId") is not None:
            problems.append("%s: a rejected workspace event names %s" % (eid, r["workspaceId"]))
        return
    if "workspaceId" in r:
        problems.append("%s: a subscriber's result with workspaceId" % eid)
    if r["type"].endswith("provision") and r["outcome"] == "succeeded" and \
            group_of[eid] not in ("upd", "rm"):  # renamed or removed since
        want = sim_ids.get(r["userId"])
        if r.get("subscriberId") != want:
            problems.append("%s: subscriberId %s, the simulator's %s" % (
                eid, r.get("subscriberId"), want))
        if r.get("status") not in subcheck.FINAL:
            problems.append("%s: status %r is not final" % (eid, r.get("status")))
        if r.get("status") == "provisioned" and not r.get("personId"):
            problems.append("%s: provisioned without personId" % eid)
    if group_of[eid] == "err" and "1001" not in ((r.get("error") or {}).get("message") or ""):
        problems.append("%s: the error message lacks Webex's errors[]: %s" % (eid, r.get("error")))


def main():
    t0 = time.monotonic()
    ck = scenario.Checks("subscribers")
    wl, events, expect, group_of, outcomes, before = plan()
    log("%d users, %d events", len(wl.users), len(events))
    with bwtest.Kafka(partitions=4) as mk, bwtest.WebSim() as sim:
        sim.subscriber_settings(sync=True)
        pre = {b["userId"]: direct_post(sim, b)["id"] for b in before}
        sim.subscriber_settings(sync=False, delay_ms=SIM_DELAY_MS)
        sim.subscriber_outcomes(outcomes)
        results, reqs = subcheck.run_daemon(ck, mk, sim, events, list(expect), 120)
        subs = subcheck.sim_by_user(sim)
        st = sim.stats()

        grouped = scenario.by_event(results)
        dup = [eid for eid, rs in grouped.items() if len(rs) != 1]
        ck.check("exactly one result per event", not dup, dup[:5])
        problems = []
        sim_ids = {u: s["id"] for u, s in subs.items()}
        for eid, rs in grouped.items():
            if eid in expect:
                check_result(rs[-1], expect, group_of, sim_ids, problems)
        ck.check("every result as expected", not problems, "\n  ".join(problems[:12]))
        taken = [u for u in pre if group_of.get("sb-%s-0" % u) == "taken"]
        moved = [u for u in pre if u.startswith("taken") and subs.get(u, {}).get("id") != pre[u]]
        ck.check("a taken userId keeps its subscriber (no second one)", not moved, moved[:3])
        renamed = [s for u, s in subs.items() if u.startswith("nupd")]
        ck.check("renamed subscribers under the new userId, package premium, no mobile",
                 len(renamed) == 16 and all(s.get("package") == "premium" and
                                            "mobilePhoneNumber" not in s and
                                            s.get("lastName") == "Renamed" for s in renamed),
                 [json.dumps(s)[:200] for s in renamed[:2]])
        gone = [u for u in subs if u.startswith("rm")]
        ck.check("removed subscribers are gone", not gone, gone[:3])
        planned = sum(n for g, n in GROUPS if g not in ("noid", "ghost", "ws")) - 8 - 4 + len(pre)
        ck.check("no POST made a second subscriber",
                 st["subscribersCreatedTotal"] == planned,
                 "subscribersCreatedTotal %d, planned %d" % (st["subscribersCreatedTotal"],
                                                             planned))
        probs = [p for p in subcheck.map_problems(mk, sim) if not p.startswith("other")]
        ck.check("state topic == simulator (live subscribers)", not probs, probs[:4])
        kinds = {v.get("kind") for v in subcheck.state_subscribers(mk).values() if v}
        ck.check("subscriber state records say kind subscriber", kinds == {"subscriber"}, kinds)
        sub_reqs = [r for r in reqs if r["path"].startswith(subcheck.SUB_PATH)]
        ws_reqs = [r for r in reqs if r["path"].startswith(scenario.WS_PATH)]
        # Lookups only read: an update keyed by a rename's new userId may
        # look before the rename is done (then it waits for the table).
        changes = [r for r in sub_reqs if not r.get("query")]
        ck.run("per-user order at the simulator", scenario.check_order, wl, changes + ws_reqs)
        ck.run("no simulator violations", scenario.check_no_violations, sim, reqs)
        polls = {}
        for r in sub_reqs:
            if r["method"] == "GET" and not r.get("query"):
                eid = scenario.event_of(wl, r)
                polls[eid] = polls.get(eid, 0) + 1
        busy = {e: n for e, n in polls.items() if n > MAX_POLLS_PER_EVENT}
        ck.check("polls paced by the schedule (<= %d per event)" % MAX_POLLS_PER_EVENT, not busy,
                 busy)
        lookups = sum(1 for r in sub_reqs if r["method"] == "GET" and r.get("query"))
        log("requests: %d to subscribers (%d polls, %d lookups), %d to workspaces",
            len(sub_reqs), sum(polls.values()), lookups, len(ws_reqs))
        mixed = [r for r in ws_reqs if (r.get("userId") or "").startswith("mix")]
        ck.check("no workspace request for a subscriber's userId", not mixed, mixed[:2])
        dlq = [m for m in mk.consume(bwtest.TOPIC_DLQ)]
        failed = sum(1 for rs in grouped.values() if rs[-1]["outcome"] in ("failed", "rejected"))
        ck.check("failed and rejected events copied to the DLQ", len(dlq) == failed,
                 "%d DLQ records, %d failed or rejected" % (len(dlq), failed))
    scenario.report("subscribers", t0, events=len(events), polls=sum(polls.values()),
                    lookups=lookups)
    ck.done()


if __name__ == "__main__":
    main()
