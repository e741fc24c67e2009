#!/usr/bin/env python3
"""Checks of websim's PUT/POST body rules, of its retryAfter detector
(429: a pause for the whole client; 423: a pause for that userId only), and
of its BroadWorks subscribers (validation, the 10022 conflict, asynchronous
transitions, injected final states, list filters and paging, violations).

    tests/sim/check_websim.py build/tests/sim/websim [--stress]

Starts its own websim on loopback, prints one line per check and exits 1 on
the first failure. --stress also sends 423s for 65 536 and then 70 000
userIds (about a minute), to see the per-user pause table stay bounded (its
sweep, its cap) and the process RSS.
"""
import base64
import datetime
import http.client
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

AUTH = {"Authorization": "Bearer t", "Content-Type": "application/json"}


class Sim:
    def __init__(self, exe):
        # stderr to a file: a pipe read only at the end could fill up and
        # block websim's VIOLATION lines.
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([exe, "--seed", "1"], stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "LISTENING":
            raise SystemExit("websim did not start: %r" % line)
        hostport = line[1].split("//", 1)[1]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)

    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def call(self, method, path, body=None, conn=None, headers=None):
        st, body, hdrs = self.call_h(method, path, body, conn, headers)
        return st, body, hdrs.get("Retry-After")

    def call_h(self, method, path, body=None, conn=None, headers=None):
        """Like call(), with all the response headers as a dict."""
        c = conn or self.conn()
        data = None if body is None else (
            body if isinstance(body, (str, bytes)) else json.dumps(body))
        c.request(method, path, body=data, headers=headers if headers is not None else AUTH)
        r = c.getresponse()
        raw = r.read()
        if conn is None:
            c.close()
        return r.status, (json.loads(raw) if raw else None), dict(r.getheaders())

    def admin(self, method, what, body=None):
        return self.call(method, "/_sim/" + what, body, headers={})[1]

    def stop(self):
        self.proc.terminate()
        self.proc.communicate(timeout=10)
        self.err.seek(0)
        return self.proc.returncode, self.err.read()


FAILED = False


def check(cond, what):
    global FAILED
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        FAILED = True


def ws(user, **extra):
    d = {"provisioningId": "p-" + user, "userId": user, "spEnterpriseId": "sp",
         "displayName": "D " + user}
    d.update(extra)
    return d


def create(sim, user, **extra):
    st, body, _ = sim.call("POST", "/v1/broadworks/workspaces", ws(user, **extra))
    assert st == 200, (st, body)
    return body["id"]


def stored(sim, wid):
    for w in sim.admin("GET", "workspaces")["workspaces"]:
        if w["id"] == wid:
            return w
    return None


def records(sim):
    return sim.admin("GET", "requests")["requests"]


def viol(sim):
    return sim.admin("GET", "stats")["violations"]["retryAfter"]


def item(wid):
    return "/v1/broadworks/workspaces/" + wid


def check_bodies(sim):
    sim.admin("POST", "reset")
    wid = create(sim, "u1@sp.com", primaryPhoneNumber="+15550001", extension="11")
    st, body, _ = sim.call("PUT", item(wid), {"extension": "12"})
    check(st == 200 and body["userId"] == "u1@sp.com" and body["extension"] == "12",
          "PUT without userId: 200, userId kept")
    st, body, _ = sim.call("PUT", item(wid), {})
    check(st == 200 and body["primaryPhoneNumber"] == "+15550001", "PUT {}: 200, unchanged")
    st, _, _ = sim.call("PUT", item(wid), {"userId": None, "extension": None})
    check(st == 200 and stored(sim, wid)["extension"] == "12", "PUT nulls: 200, unchanged")
    st, _, _ = sim.call("PUT", item(wid), {"userId": ""})
    check(st == 400, "PUT userId \"\": 400")
    st, _, _ = sim.call("PUT", item(wid), {"userId": 5})
    check(st == 400, "PUT userId 5: 400")
    for bad in ("[]", "\"x\"", "", "{} {}"):
        st, _, _ = sim.call("PUT", item(wid), bad)
        check(st == 400, "PUT body %r: 400" % bad)
    recs = [r for r in records(sim) if r["method"] == "PUT"]
    check(all(r["userId"] == "u1@sp.com" for r in recs), "PUT records: userId is the workspace's")
    check(recs[0]["bodyUserId"] is None, "PUT without userId: bodyUserId null")

    st, body, _ = sim.call("PUT", item(wid), {"primaryPhoneNumber": ""})
    w = stored(sim, wid)
    check(st == 200 and "primaryPhoneNumber" not in body and "primaryPhoneNumber" not in w
          and w["extension"] == "12", "PUT primaryPhoneNumber \"\": cleared, extension kept")
    st, body, _ = sim.call("PUT", item(wid), {"extension": ""})
    w = stored(sim, wid)
    check(st == 200 and "extension" not in body and "extension" not in w,
          "PUT extension \"\": cleared")
    st, body, _ = sim.call("PUT", item(wid), {"extension": "13", "userId": "u1b@sp.com"})
    check(st == 200 and body["extension"] == "13" and body["userId"] == "u1b@sp.com",
          "PUT sets extension again and renames")
    other = create(sim, "u2@sp.com")
    st, _, _ = sim.call("PUT", item(other), {"userId": "u1b@sp.com", "extension": ""})
    check(st == 409 and "extension" not in stored(sim, other), "PUT rename to a taken userId: 409")
    st, _, _ = sim.call("PUT", item(wid), {"extension": ""})
    check(st == 200 and "extension" not in stored(sim, wid), "409 left the other one alone")

    st, body, _ = sim.call("POST", "/v1/broadworks/workspaces",
                           ws("u3@sp.com", primaryPhoneNumber="", extension=""))
    check(st == 200 and "primaryPhoneNumber" not in body and "extension" not in body
          and "extension" not in stored(sim, body["id"]), "POST with \"\" optionals: absent")
    for key in ("provisioningId", "userId", "spEnterpriseId", "displayName"):
        d = ws("u4@sp.com")
        d[key] = ""
        st, _, _ = sim.call("POST", "/v1/broadworks/workspaces", d)
        check(st == 400, "POST %s \"\": 400" % key)
    # Raw UTF-8 (json.dumps escapes it by default): json-c 0.18's strict
    # mode refused every non-ASCII byte (common/jstrict.h).
    name = "J\u00fcrgen \u20ac \U0001F600"
    st, body, _ = sim.call("POST", "/v1/broadworks/workspaces",
                           json.dumps(ws("u5@sp.com", displayName=name),
                                      ensure_ascii=False).encode())
    check(st == 200 and stored(sim, body["id"])["displayName"] == name,
          "POST with raw UTF-8 text: 200, kept")
    st, _, _ = sim.call("PUT", item(wid), b'{"extension":"\xc3"}')
    check(st == 400, "PUT with invalid UTF-8: 400")
    st, _, _ = sim.call("PUT", item("nope"), {})
    check(st == 404, "PUT {} for an unknown id: 404")


def check_locked(sim):
    # 423 on connection A for u1; the same connection asks about u1 at once:
    # it had read the 423, so even inside the grace period it is a violation.
    sim.admin("POST", "reset")
    w1, w2 = create(sim, "u1@sp.com"), create(sim, "u2@sp.com")
    sim.admin("POST", "faults", {"retryAfterGraceMs": 2000,
                                 "script": [{"status": 423, "retryAfter": 3,
                                             "userId": "u1@sp.com"}]})
    a, b = sim.conn(), sim.conn()
    st, _, ra = sim.call("PUT", item(w1), {"extension": "1"}, conn=a)
    check(st == 423 and ra == "3", "scripted 423 with Retry-After 3")
    st, _, _ = sim.call("PUT", item(w2), {"extension": "2"}, conn=a)
    check(st == 200 and viol(sim) == 0, "other user, same connection, in u1's pause: fine")
    st, _, _ = sim.call("PUT", item(w1), {"extension": "1"}, conn=b)
    check(st == 200 and viol(sim) == 0, "u1 on another connection within the grace: fine")
    st, _, _ = sim.call("PUT", item(w1), {"extension": "1"}, conn=a)
    check(viol(sim) == 1 and records(sim)[-1]["violations"] == ["retryAfter"],
          "u1 on the connection that got the 423: retryAfter")
    a.close()
    b.close()

    # Past the grace, any connection; other users never; after the end, fine.
    sim.admin("POST", "reset")
    w1, w2 = create(sim, "u1@sp.com"), create(sim, "u2@sp.com")
    sim.admin("POST", "faults", {"script": [{"status": 423, "retryAfter": 1,
                                             "userId": "u1@sp.com"}]})
    sim.call("PUT", item(w1), {"extension": "1"})
    time.sleep(0.2)
    sim.call("PUT", item(w2), {"extension": "2"})
    sim.call("POST", "/v1/broadworks/workspaces", ws("u5@sp.com"))
    check(viol(sim) == 0, "other users inside u1's 423 pause: no violation")
    sim.call("DELETE", item(w1))
    check(viol(sim) == 1, "u1 after the grace on a new connection: retryAfter")
    time.sleep(0.85)
    w1 = create(sim, "u1@sp.com")
    check(viol(sim) == 1, "u1 after the pause: fine")

    # 429 stays a pause for everyone.
    sim.admin("POST", "reset")
    w1, w2 = create(sim, "u1@sp.com"), create(sim, "u2@sp.com")
    sim.admin("POST", "faults", {"script": [{"status": 429, "retryAfter": 1,
                                             "userId": "u1@sp.com"}]})
    st, _, _ = sim.call("PUT", item(w1), {"extension": "1"})
    time.sleep(0.2)
    sim.call("PUT", item(w2), {"extension": "2"})
    check(st == 429 and viol(sim) == 1, "429 for u1, then u2 inside it: retryAfter")
    time.sleep(0.85)

    # lockedShare: many users locked; each one paused, others not.
    sim.admin("POST", "reset")
    sim.admin("POST", "faults", {"lockedShare": 1, "retryAfter": 2})
    users = ["l%d@sp.com" % i for i in range(200)]
    sts = [sim.call("POST", "/v1/broadworks/workspaces", ws(u))[0] for u in users]
    check(all(s == 423 for s in sts) and viol(sim) == 0, "lockedShare 1: 200 users get 423")
    sim.admin("POST", "faults", {"lockedShare": 0})
    time.sleep(0.1)
    create(sim, "fresh@sp.com")
    check(viol(sim) == 0, "a user without a 423: fine")
    sim.call("POST", "/v1/broadworks/workspaces", ws(users[7]))
    sim.call("POST", "/v1/broadworks/workspaces", ws(users[150]))
    check(viol(sim) == 2, "two locked users asked again inside their pauses: 2 violations")
    time.sleep(2)
    sim.call("POST", "/v1/broadworks/workspaces", ws(users[8]))
    check(viol(sim) == 2, "a locked user after the pause: fine")

    # A 423 about no userId pauses nothing; a reset forgets the pauses.
    sim.admin("POST", "reset")
    w2 = create(sim, "u2@sp.com")
    sim.admin("POST", "faults", {"script": [{"status": 423, "retryAfter": 2, "count": 2}]})
    st, _, _ = sim.call("PUT", item("unknown"), {"extension": "1"})
    st2, _, _ = sim.call("PUT", item(w2), {"extension": "1"})
    time.sleep(0.2)
    sim.call("PUT", item(w2), {"extension": "2"})
    check(st == 423 and st2 == 423 and viol(sim) == 1,
          "423 for an unknown id pauses nothing; u2's own 423 does")
    sim.admin("POST", "reset")
    w2 = create(sim, "u2@sp.com")
    check(viol(sim) == 0, "reset forgets the 423 pauses")


# ---------------------------------------------------------------------------
# BroadWorks subscribers

SUBS = "/v1/broadworks/subscribers"
GET_AUTH = {"Authorization": "Bearer t"}
REQUIRED = ("provisioningId", "userId", "spEnterpriseId", "firstName", "lastName", "package")
DESC_10022 = "The BroadWorks UserID is already associated with an existing user"


def sub(user, **extra):
    d = {"provisioningId": "prov-1", "userId": user, "spEnterpriseId": "SP1+acme",
         "firstName": "F " + user, "lastName": "L", "package": "standard"}
    d.update(extra)
    return d


def sub_item(sid):
    return SUBS + "/" + sid


def sub_create(sim, user, conn=None, **extra):
    st, body, _ = sim.call("POST", SUBS, sub(user, **extra), conn=conn)
    assert st == 200, (st, body)
    return body


def sub_get(sim, sid, conn=None):
    st, body, _ = sim.call("GET", sub_item(sid), conn=conn, headers=GET_AUTH)
    return st, body


def sub_wait(sim, sid, timeout=3.0):
    """GET until the subscriber leaves provisioning/updating (at most timeout s)."""
    deadline = time.monotonic() + timeout
    while True:
        st, body = sub_get(sim, sid)
        if st != 200 or body["status"] not in ("provisioning", "updating") \
                or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def sub_list(sim, query, conn=None):
    """GET the list; returns (status, [ids] or the error body, headers)."""
    st, body, hdrs = sim.call_h("GET", SUBS + ("?" + query if query else ""), conn=conn,
                                headers=GET_AUTH)
    return st, ([i["id"] for i in body["items"]] if st == 200 else body), hdrs


def err_code(body):
    return body["errors"][0]["errorCode"] if body and body.get("errors") else None


def b64_uri(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode()


def iso_ms(s):
    """Epoch ms of websim's "YYYY-MM-DDTHH:MM:SS.mmmZ"."""
    dt = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
    return round(dt.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def faults_status(sim, body):
    return sim.call("POST", "/_sim/faults", body, headers={})[0]


def check_subs_validation(sim):
    sim.admin("POST", "reset")
    st, body, _ = sim.call("POST", SUBS, sub("v1@sp", email="", extension="", language=None,
                                             timezone="Europe/Paris"))
    check(st == 200 and body["status"] == "provisioning" and "email" not in body
          and "extension" not in body and "language" not in body
          and body["timezone"] == "Europe/Paris", "sub POST: 200 provisioning, \"\" and null "
          "optionals left out")
    check(body["selfActivated"] == "false" and "personId" not in body and "errors" not in body
          and body["created"] == body["lastStatusChange"], "sub POST answer: selfActivated "
          "\"false\", no personId yet, lastStatusChange = created")
    check(re.fullmatch(r"ciscospark://us/SUBSCRIBER/[0-9a-f-]{36}", b64_uri(body["id"]))
          is not None and "=" not in body["id"], "sub id: base64url of "
          "ciscospark://us/SUBSCRIBER/<uuid>")
    sid = body["id"]
    bad = []
    for key in REQUIRED:
        for v in ("", None, 5, "absent"):
            d = sub("v2@sp")
            if v == "absent":
                del d[key]
            else:
                d[key] = v
            st, body, _ = sim.call("POST", SUBS, d)
            if st != 400 or err_code(body) != 40001:
                bad.append((key, v, st))
    check(not bad, "sub POST with a required field missing, null, \"\" or 5: 400 40001 %s" % bad)
    for d, what in ((sub("v2@sp", package="gold"), "package gold"),
                    (sub("v2@sp", email=5), "email 5"), (sub("v2@sp", timezone=[]), "timezone []")):
        st, body, _ = sim.call("POST", SUBS, d)
        check(st == 400 and err_code(body) == 40001, "sub POST %s: 400" % what)
    for raw in ("[]", "", "{} {}", "\"x\""):
        st, _, _ = sim.call("POST", SUBS, raw)
        check(st == 400, "sub POST body %r: 400" % raw)
    st, _, _ = sim.call("POST", SUBS, sub("v2@sp"),
                        headers={"Authorization": "Bearer t", "Content-Type": "text/plain"})
    check(st == 415, "sub POST as text/plain: 415")
    st, _, _ = sim.call("GET", SUBS, headers={})
    st2, _, _ = sim.call("GET", sub_item(sid), headers={"Authorization": "Basic x"})
    check(st == 401 and st2 == 401, "sub GET list / item without a bearer token: 401")
    st, _, _ = sim.call("GET", sub_item(sid), headers=GET_AUTH)
    check(st == 200, "sub GET item without Content-Type: 200")
    bad = []
    for k, v in (("userId", ""), ("firstName", ""), ("lastName", ""), ("package", ""),
                 ("package", "gold"), ("extension", 5), ("timezone", 1)):
        st, body, _ = sim.call("PUT", sub_item(sid), {k: v})
        if st != 400 or err_code(body) != 40001:
            bad.append((k, v, st))
    check(not bad, "sub PUT userId/firstName/lastName/package \"\", bad package, non-strings: "
          "400 %s" % bad)
    st, body, _ = sim.call("PUT", sub_item(sid), {"spEnterpriseId": "ignored", "userId": None})
    check(st == 200 and body["status"] == "updating" and body["spEnterpriseId"] == "SP1+acme",
          "sub PUT with null userId and a field a PUT does not take: 200 updating")
    st, body, _ = sim.call("PUT", sub_item(sid), {})
    check(st == 200, "sub PUT {}: 200")
    st, body, _ = sim.call("GET", SUBS + "/nope", headers=GET_AUTH)
    st2, _, _ = sim.call("PUT", SUBS + "/nope", {})
    st3, _, _ = sim.call("DELETE", SUBS + "/nope")
    check(st == 404 and err_code(body) == 40402 and st2 == 404 and st3 == 404,
          "sub GET/PUT/DELETE of an unknown id: 404 40402")
    st, body, _ = sim.call("DELETE", sub_item(sid))
    st2, _ = sub_get(sim, sid)
    st3, _, _ = sim.call("DELETE", sub_item(sid))
    check(st == 204 and body is None and st2 == 404 and st3 == 404,
          "sub DELETE: 204 without a body, then 404")
    allow = []
    for method, path in (("PATCH", SUBS), ("DELETE", SUBS), ("POST", sub_item("x")),
                         ("PATCH", sub_item("x"))):
        st, _, h = sim.call_h(method, path, headers=GET_AUTH)
        allow.append((st, h.get("Allow")))
    check(allow == [(405, "GET, POST")] * 2 + [(405, "GET, PUT, DELETE")] * 2,
          "sub wrong methods: 405 with Allow %s" % allow)
    st, _, _ = sim.call("GET", SUBS + "/a/b", headers=GET_AUTH)
    st2, _, _ = sim.call("GET", SUBS + "x", headers=GET_AUTH)
    check(st == 404 and st2 == 404, "sub unknown paths: 404")
    stats = sim.admin("GET", "stats")
    check(stats["subscribers"] == 0 and stats["subscribersCreatedTotal"] == 1,
          "stats: subscribers 0, subscribersCreatedTotal 1 (refused POSTs create nothing)")


def check_subs_conflict(sim):
    sim.admin("POST", "reset")
    a = sub_create(sim, "c1@sp")
    st, body, _ = sim.call("POST", SUBS, sub("c1@sp"))
    check(st == 409 and body["errors"] == [{"description": DESC_10022, "errorCode": 10022}]
          and body["message"] == DESC_10022 and body["trackingId"].startswith("ROUTER_"),
          "sub POST for a userId in use: 409 with errors [{errorCode 10022}]")
    sim.admin("POST", "faults", {"subscriberOutcome": {"c2@sp": {"status": "error"}}})
    b = sub_create(sim, "c2@sp")
    got = sub_wait(sim, b["id"])
    check(got["status"] == "error" and got["errors"][0]["errorCode"] == 10000
          and "personId" not in got, "an injected error without errors[]: the default one")
    c = sub_create(sim, "c2@sp")
    st, _ = sub_get(sim, b["id"])
    dump = sim.admin("GET", "subscribers")
    check(c["id"] != b["id"] and st == 404 and dump["count"] == 2 and dump["created_total"] == 3,
          "sub POST for the userId of one in error: 200, a new id replaces it")
    recs = [r for r in records(sim) if r["path"].startswith(SUBS)]
    check(recs[0]["method"] == "POST" and recs[0]["userId"] == "c1@sp"
          and recs[0]["bodyUserId"] == "c1@sp" and recs[0]["subscriberId"] == a["id"]
          and recs[0]["workspaceId"] is None and recs[1]["status"] == 409,
          "records of sub POSTs: userId, bodyUserId, subscriberId")
    get = [r for r in recs if r["method"] == "GET"]
    check(get and get[0]["userId"] == "c2@sp" and get[0]["subscriberId"] == b["id"]
          and get[0]["bodyUserId"] is None, "record of a sub GET: the subscriber's userId and id")


def check_subs_async(sim):
    sim.admin("POST", "reset")
    sim.admin("POST", "faults", {"subscriberDelayMs": 300})
    t0 = time.monotonic()
    a = sub_create(sim, "a1@sp")
    st, now = sub_get(sim, a["id"])
    check(a["status"] == "provisioning" and now["status"] == "provisioning",
          "sub within the delay: provisioning")
    stats = sim.admin("GET", "stats")["subscribersByStatus"]
    check(stats["provisioning"] == 1 and stats["provisioned"] == 0, "stats by status: 1 "
          "provisioning")
    dump = sim.admin("GET", "subscribers")["subscribers"][0]
    check(dump["pending"]["status"] == "provisioned" and 0 < dump["pending"]["dueInMs"] <= 300,
          "/_sim/subscribers shows the pending transition")
    final = sub_wait(sim, a["id"])
    took = time.monotonic() - t0
    check(final["status"] == "provisioned" and 0.25 <= took < 2.0,
          "sub provisioned after the delay (%.2f s)" % took)
    check(re.fullmatch(r"ciscospark://us/PEOPLE/[0-9a-f-]{36}", b64_uri(final.get("personId", "")))
          is not None and "errors" not in final, "provisioned: a personId, no errors")
    check(iso_ms(final["lastStatusChange"]) - iso_ms(final["created"]) == 300,
          "lastStatusChange = created + 300 ms (when the transition was due)")

    sim.admin("POST", "faults", {"subscriberDelayMs": 0})
    b = sub_create(sim, "a2@sp")
    st, now = sub_get(sim, b["id"])
    check(b["status"] == "provisioning" and now["status"] == "provisioned",
          "subscriberDelayMs 0: the answer says provisioning, the next GET provisioned")
    sim.admin("POST", "faults", {"subscriberSync": True})
    c = sub_create(sim, "a3@sp")
    check(c["status"] == "provisioned" and "personId" in c, "subscriberSync: the POST answers "
          "provisioned")
    st, body, _ = sim.call("PUT", sub_item(c["id"]), {"extension": "7"})
    check(st == 200 and body["status"] == "provisioned" and body["extension"] == "7",
          "subscriberSync: the PUT answers with its changes applied")

    sim.admin("POST", "faults", {"subscriberSync": False, "subscriberDelayMs": 2000})
    d = sub_create(sim, "busy@sp")
    st, body, ra = sim.call("PUT", sub_item(d["id"]), {"extension": "1"})
    check(st == 423 and ra == "2" and err_code(body) == 42301,
          "sub PUT while provisioning: 423 with Retry-After 2 (the time left)")
    check(records(sim)[-1]["userId"] == "busy@sp", "the 423 is about the subscriber's userId")
    sim.admin("POST", "reset")  # forget busy@sp's 423 pause


def check_subs_outcomes(sim):
    sim.admin("POST", "reset")
    errs = [{"errorCode": 1001, "description": "No such provisioning id"},
            {"errorCode": 1002, "description": "\u00e9 \"quoted\""}]
    sim.admin("POST", "faults", {"subscriberDelayMs": 100, "subscriberOutcome": {
        "e1@sp": {"status": "error", "errors": errs},
        "m1@sp": {"status": "pending_user_migration"},
        "i1@sp": {"status": "pending_email_input"},
        "v1@sp": {"status": "pending_email_validation", "count": 2}}})
    made = {u: sub_create(sim, u)["id"] for u in ("e1@sp", "m1@sp", "i1@sp", "v1@sp", "p1@sp")}
    got = {u: sub_wait(sim, sid) for u, sid in made.items()}
    check(got["e1@sp"]["status"] == "error" and got["e1@sp"]["errors"] == errs,
          "subscriberOutcome error: status error with the given errors[]")
    check([got[u]["status"] for u in ("m1@sp", "i1@sp", "v1@sp", "p1@sp")]
          == ["pending_user_migration", "pending_email_input", "pending_email_validation",
              "provisioned"], "subscriberOutcome pending states; others provisioned")
    check(all("personId" not in got[u] and "errors" not in got[u]
              for u in ("m1@sp", "i1@sp", "v1@sp")), "pending states: no personId, no errors")
    left = sim.admin("GET", "faults")["subscriberOutcome"]
    check(left == {"v1@sp": {"status": "pending_email_validation", "count": 1}},
          "an outcome is used up by its count: %s" % left)
    # An update draws an outcome too; then a successful one clears errors[].
    sim.admin("POST", "faults", {"subscriberOutcome": {"p1@sp": {"status": "error"}}})
    sim.call("PUT", sub_item(made["p1@sp"]), {"extension": "5"})
    g1 = sub_wait(sim, made["p1@sp"])
    sim.call("PUT", sub_item(made["p1@sp"]), {"extension": "6"})
    g2 = sub_wait(sim, made["p1@sp"])
    check(g1["status"] == "error" and "extension" not in g1 and "personId" in g1
          and g2["status"] == "provisioned" and g2["extension"] == "6" and "errors" not in g2,
          "an update ending in error keeps the old fields; the next one succeeds")

    sim.admin("POST", "faults", {"subscriberErrorShare": 1})
    r = sub_wait(sim, sub_create(sim, "r1@sp")["id"])
    check(r["status"] == "error" and err_code(r) == 10000, "subscriberErrorShare 1: error")
    sim.admin("POST", "faults", {"subscriberErrorShare": 0})

    before = sim.admin("GET", "faults")
    bad = [{"subscriberOutcome": {"x": {"status": "provisioning"}}},
           {"subscriberOutcome": {"x": {"status": "provisioned", "errors": errs}}},
           {"subscriberOutcome": {"x": {"status": "error", "errors": errs * 9}}},
           {"subscriberOutcome": {"x": {"status": "error", "errors": [{"errorCode": 1}]}}},
           {"subscriberOutcome": {"x": {"status": "error", "count": 0}}},
           {"subscriberOutcome": {"": {"status": "error"}}},
           {"subscriberOutcome": {"x": {"status": "error", "errors": [
               {"errorCode": 1, "description": "d" * 1025}]}}},
           {"subscriberOutcome": []}, {"subscriberMax": 0}, {"subscriberDelayMs": -1},
           {"subscriberSync": 1}, {"subscriberErrorShare": 2},
           {"subscriberDelayMs": 5, "subscriberOutcome": {"x": {}}}]
    sts = [faults_status(sim, b) for b in bad]
    check(sts == [400] * len(bad) and sim.admin("GET", "faults") == before,
          "bad subscriber settings: 400, nothing changed %s" % sts)
    many = {"u%d" % i: {"status": "pending_email_input"} for i in range(1500)}
    st = faults_status(sim, {"subscriberOutcome": many})
    check(st == 200 and len(sim.admin("GET", "faults")["subscriberOutcome"]) == 1500,
          "subscriberOutcome for 1 500 userIds")
    sim.admin("POST", "faults", {"subscriberOutcome": None})

    n = sim.admin("GET", "subscribers")["count"]
    sim.admin("POST", "faults", {"subscriberMax": n + 1})
    st1, _, _ = sim.call("POST", SUBS, sub("cap1@sp"))
    st2, body, _ = sim.call("POST", SUBS, sub("cap2@sp"))
    check(st1 == 200 and st2 == 507 and err_code(body) == 50701,
          "subscriberMax: the POST beyond it gets 507")
    st, _, _ = sim.call("POST", SUBS, sub("e1@sp"))
    check(st == 200, "at the cap, replacing one in error still works")
    sim.admin("POST", "reset")
    f = sim.admin("GET", "faults")
    s = sim.admin("GET", "stats")
    check(f["subscriberMax"] == 1000000 and f["subscriberOutcome"] == {} and s["subscribers"] == 0
          and s["subscribersCreatedTotal"] == 0, "reset: subscribers and their settings cleared")


def check_subs_update(sim):
    sim.admin("POST", "reset")
    sim.admin("POST", "faults", {"subscriberSync": True})
    a = sub_create(sim, "p1@sp", primaryPhoneNumber="+1555", extension="11",
                   mobilePhoneNumber="+1666", timezone="Europe/Paris")
    b = sub_create(sim, "p2@sp", extension="22")
    sim.admin("POST", "faults", {"subscriberSync": False, "subscriberDelayMs": 300})
    st, body, _ = sim.call("PUT", sub_item(a["id"]), {
        "userId": "p1b@sp", "extension": "12", "mobilePhoneNumber": "", "firstName": "New",
        "package": "premium"})
    check(st == 200 and body["status"] == "updating" and body["userId"] == "p1@sp"
          and body["extension"] == "11" and body["package"] == "standard"
          and body["mobilePhoneNumber"] == "+1666", "sub PUT: 200 updating, the subscriber as "
          "it was")
    st, now = sub_get(sim, a["id"])
    check(now["status"] == "updating" and now["firstName"] == "F p1@sp" and "personId" in now,
          "sub GET within the delay: updating, old values")
    pend = sim.admin("GET", "subscribers")["subscribers"][0]["pending"]
    check(pend["changes"] == {"userId": "p1b@sp", "firstName": "New", "mobilePhoneNumber": "",
                              "extension": "12", "package": "premium"},
          "/_sim/subscribers shows the waiting changes")
    st, body, _ = sim.call("POST", SUBS, sub("p1b@sp"))
    check(st == 409 and err_code(body) == 10022, "a rename's new userId is taken from the PUT on")
    final = sub_wait(sim, a["id"])
    check(final["status"] == "provisioned" and final["userId"] == "p1b@sp"
          and final["extension"] == "12" and "mobilePhoneNumber" not in final
          and final["firstName"] == "New" and final["package"] == "premium"
          and final["timezone"] == "Europe/Paris" and final["primaryPhoneNumber"] == "+1555",
          "after the delay the PUT's changes apply (rename, set, clear, kept)")
    st, found, _ = sub_list(sim, "userId=p1b%40sp")
    st2, old, _ = sub_list(sim, "userId=p1%40sp")
    check(found == [a["id"]] and old == [], "the rename moved the userId index")
    st, _, _ = sim.call("POST", SUBS, sub("p1@sp"))
    check(st == 200, "the old userId is free again")
    st, body, _ = sim.call("PUT", sub_item(b["id"]), {"userId": "p1b@sp"})
    check(st == 409 and err_code(body) == 10022, "sub PUT to another one's userId: 409 10022")
    st, body, _ = sim.call("PUT", sub_item(b["id"]), {"extension": ""})
    check(st == 400 and err_code(body) == 40003, "sub PUT leaving neither phone nor extension: "
          "400 40003")
    sim.admin("POST", "faults", {"subscriberDelayMs": 0,
                                 "subscriberOutcome": {"p2@sp": {"status": "error"}}})
    st, _, _ = sim.call("PUT", sub_item(b["id"]), {"userId": "p2b@sp", "extension": "23"})
    g = sub_wait(sim, b["id"])
    check(st == 200 and g["status"] == "error" and g["userId"] == "p2@sp"
          and g["extension"] == "22", "an update ending in error: nothing applied")
    st, _, _ = sim.call("POST", SUBS, sub("p2b@sp"))
    check(st == 200, "a failed rename frees the new userId")


def check_subs_list(sim):
    sim.admin("POST", "reset")
    sim.admin("POST", "faults", {"subscriberSync": True})
    s1 = sub_create(sim, "l1@sp", email="One@Example.com", provisioningId="pa")
    time.sleep(0.005)
    s2 = sub_create(sim, "l2@sp", spEnterpriseId="SP2", provisioningId="pb")
    time.sleep(0.005)
    sim.admin("POST", "faults", {"subscriberOutcome": {"l3@sp": {"status": "error"}}})
    s3 = sub_create(sim, "l3@sp", spEnterpriseId="SP2", provisioningId="pa")
    time.sleep(0.005)
    sim.admin("POST", "faults", {"subscriberSync": False, "subscriberDelayMs": 5000})
    s4 = sub_create(sim, "l4@sp", spEnterpriseId="SP 2")
    i1, i2, i3, i4 = (x["id"] for x in (s1, s2, s3, s4))
    t3 = iso_ms(s3["created"])
    t2 = iso_ms(s2["lastStatusChange"])
    plus1 = datetime.timezone(datetime.timedelta(hours=1))
    iso3 = datetime.datetime.fromtimestamp(t3 / 1000, plus1).isoformat(timespec="milliseconds")
    q = urllib.parse.quote
    cases = [
        ("", [i1, i2, i3, i4]),
        ("userId=l2%40sp", [i2]),
        ("userId=l2@sp", [i2]),
        ("personId=" + s1["personId"], [i1]),
        ("email=one%40example.COM", [i1]),
        ("provisioningId=pa", [i1, i3]),
        ("spEnterpriseId=SP1%2Bacme", [i1]),
        ("spEnterpriseId=SP1+acme", []),
        ("spEnterpriseId=SP+2", [i4]),
        ("spEnterpriseId=SP2&status=provisioned", [i2]),
        ("status=error,provisioning", [i3, i4]),
        ("status=error%2Cprovisioned", [i1, i2, i3]),
        ("selfActivated=false", [i1, i2, i3, i4]),
        ("selfActivated=true", []),
        ("after=%d" % t3, [i4]),
        ("after=" + q(iso3), [i4]),
        ("after=" + q(s3["created"]), [i4]),
        ("after=2000-01-01", [i1, i2, i3, i4]),
        ("lastStatusChange=%d" % t2, [i3, i4]),
        ("provisioningId=pa&status=error", [i3]),
        ("userId=l1%40sp&status=error", []),
        ("unknown=1&email=", [i1, i2, i3, i4]),
    ]
    wrong = []
    for query, want in cases:
        st, got, _ = sub_list(sim, query)
        if st != 200 or got != want:
            wrong.append((query, st, got if st != 200 else len(got)))
    check(not wrong, "sub list filters, alone and combined (%d queries) %s" % (len(cases), wrong))
    bad = ["max=0", "max=101", "max=x", "max=-1", "status=bogus", "status=error,", "after=yesterday",
           "after=2020-13-01", "after=2021-02-30", "lastStatusChange=2020-01-01T25:00",
           "selfActivated=maybe", "cursor=x", "userId=%zz", "userId=a&userId=b",
           "userId=" + "x" * 1025, "&".join("k%d=1" % i for i in range(33))]
    wrong = []
    for query in bad:
        st, body, _ = sub_list(sim, query)
        if st != 400 or err_code(body) != 40002:
            wrong.append((query[:30], st))
    check(not wrong, "sub list with bad parameters: 400 40002 %s" % wrong)
    st, _, _ = sub_list(sim, "max=100&userId=" + "x" * 1024)
    check(st == 200, "sub list: a 1024-byte value is fine")
    recs = [r for r in records(sim) if r["path"] == SUBS and r["method"] == "GET"]
    check(recs[1]["userId"] == "l2@sp" and recs[1]["query"] == "userId=l2%40sp"
          and recs[0]["userId"] is None and recs[0]["query"] is None,
          "list records: userId from the userId filter, the query as sent")


def follow_pages(sim, first, conn):
    """GET first and every Link rel=next after it; returns (page sizes, ids, links)."""
    url, sizes, ids, links = first, [], [], []
    for _ in range(20):
        st, body, h = sim.call_h("GET", url, conn=conn, headers=GET_AUTH)
        if st != 200:
            return sizes + [st], ids, links
        sizes.append(len(body["items"]))
        ids += [i["id"] for i in body["items"]]
        link = h.get("Link")
        if link is None:
            break
        links.append(link)
        m = re.fullmatch(r'<(http://[^>]+)>; rel="next"', link)
        if m is None:
            return sizes + ["bad Link %r" % link], ids, links
        u = urllib.parse.urlsplit(m.group(1))
        if u.netloc != "%s:%d" % (sim.host, sim.port):
            return sizes + ["bad host %r" % link], ids, links
        url = u.path + "?" + u.query
    return sizes, ids, links


def check_subs_paging(sim):
    sim.admin("POST", "reset")
    sim.admin("POST", "faults", {"subscriberSync": True})
    c = sim.conn()
    made = [sub_create(sim, "pg%03d@sp" % i, conn=c)["id"] for i in range(250)]
    sizes, ids, links = follow_pages(sim, SUBS + "?max=100&spEnterpriseId=SP1%2Bacme", c)
    check(sizes == [100, 100, 50] and ids == made, "250 subscribers, max=100: pages %s through "
          "Link, in creation order" % sizes)
    check(links and "spEnterpriseId=SP1%2Bacme&max=100&cursor=" in links[0],
          "the Link keeps the filters and max: %s" % (links[:1],))
    sizes, ids, _ = follow_pages(sim, SUBS, c)
    check(sizes == [50] * 5 and ids == made, "default page size 50: %s" % sizes)
    st, first, h = sub_list(sim, "max=100", conn=c)
    nxt = re.fullmatch(r'<http://[^/]+([^>]+)>; rel="next"', h["Link"]).group(1)
    for sid in (made[99], made[150]):
        sim.call("DELETE", sub_item(sid), conn=c)
    sizes, ids, _ = follow_pages(sim, nxt, c)
    check(sizes == [100, 49] and ids == made[100:150] + made[151:],
          "deleting during paging (the cursor's own item too): nothing skipped or repeated")
    for sid in made[:200]:
        if sid not in (made[99], made[150]):
            sim.call("DELETE", sub_item(sid), conn=c)
    sizes, ids, _ = follow_pages(sim, SUBS + "?max=20", c)
    check(sizes == [20, 20, 10] and ids == made[200:], "after deleting 200: the rest in order")
    st, got, h = sub_list(sim, "max=50", conn=c)
    check(st == 200 and len(got) == 50 and "Link" not in h, "a page that ends the list has no "
          "Link")
    c.close()


def check_subs_violations(sim):
    sim.admin("POST", "reset")
    sim.admin("POST", "faults", {"subscriberSync": True})
    s = sub_create(sim, "cu@sp")
    sim.admin("POST", "faults", {"latencyMs": 300})
    cu = lambda: sim.admin("GET", "stats")["violations"]["concurrentUser"]  # noqa: E731

    def in_background(method, path, body=None):
        t = threading.Thread(target=sim.call, args=(method, path, body),
                             kwargs={"headers": AUTH if body is not None else GET_AUTH})
        t.start()
        time.sleep(0.1)
        return t

    t = in_background("GET", sub_item(s["id"]))
    sub_list(sim, "userId=cu%40sp")
    t.join()
    check(cu() == 1 and records(sim)[-1]["violations"] == ["concurrentUser"],
          "sub GET item, then a list for its userId while it is delayed: concurrentUser")
    t = in_background("PUT", sub_item(s["id"]), {})
    sub_list(sim, "")
    t.join()
    t = in_background("DELETE", sub_item(s["id"]))
    sim.call("POST", SUBS, sub("cu@sp"))
    t.join()
    check(cu() == 2, "an unfiltered list is about no user; a POST during a DELETE of its "
          "userId: concurrentUser")
    sim.admin("POST", "faults", {"latencyMs": 0})

    sim.admin("POST", "reset")
    s = sub_create(sim, "ra@sp")
    sim.admin("POST", "faults", {"script": [{"status": 429, "retryAfter": 1, "method": "GET"}]})
    c = sim.conn()
    st, _, ra = sim.call("GET", sub_item(s["id"]), conn=c, headers=GET_AUTH)
    st2, _ = sub_get(sim, s["id"], conn=c)
    c.close()
    check(st == 429 and ra == "1" and st2 == 200 and viol(sim) == 1
          and records(sim)[-1]["violations"] == ["retryAfter"],
          "a scripted 429 for GET, then a GET at once: retryAfter")
    sim.admin("POST", "reset")
    s = sub_create(sim, "ra@sp")
    sim.admin("POST", "faults", {"script": [{"status": 503, "method": "GET", "userId": "ra@sp"}]})
    st, _ = sub_get(sim, s["id"])
    st2, _ = sub_get(sim, s["id"])
    check(st == 503 and st2 == 200, "a script entry with method GET and a userId matches a sub GET")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def check_stress(sim):
    # Fill the table with 1 s pauses; 10 s after they end a sweep makes room.
    sim.admin("POST", "reset")
    sim.admin("POST", "faults", {"lockedShare": 1, "retryAfter": 1})
    c = sim.conn()
    for i in range(65536):
        sim.call("POST", "/v1/broadworks/workspaces", ws("e%d@sp.com" % i), conn=c)
    time.sleep(11.2)
    sim.call("POST", "/v1/broadworks/workspaces", ws("late@sp.com"), conn=c)
    sim.admin("POST", "faults", {"lockedShare": 0})
    sim.call("POST", "/v1/broadworks/workspaces", ws("late@sp.com"), conn=c)
    check(viol(sim) == 1, "after 65 536 pauses of 1 s and 11 s: a new user's 423 is tracked")

    sim.admin("POST", "reset")
    sim.admin("POST", "faults", {"lockedShare": 1, "retryAfter": 3600})
    before = rss_kb(sim.proc.pid)
    n = 70000
    t0 = time.monotonic()
    for i in range(n):
        sim.call("POST", "/v1/broadworks/workspaces", ws("s%d@sp.com" % i), conn=c)
    after = rss_kb(sim.proc.pid)
    print("     %d users locked for 1 h in %.1f s, RSS %d -> %d KiB"
          % (n, time.monotonic() - t0, before, after))
    sim.admin("POST", "faults", {"lockedShare": 0})
    sim.call("POST", "/v1/broadworks/workspaces", ws("s10@sp.com"), conn=c)
    sim.call("POST", "/v1/broadworks/workspaces", ws("s69999@sp.com"), conn=c)
    check(viol(sim) == 1, "table full: first users still paused, the last one untracked")
    c.close()
    sim.admin("POST", "reset")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    sim = Sim(sys.argv[1])
    try:
        check_bodies(sim)
        check_locked(sim)
        t0 = time.monotonic()
        check_subs_validation(sim)
        check_subs_conflict(sim)
        check_subs_async(sim)
        check_subs_outcomes(sim)
        check_subs_update(sim)
        check_subs_list(sim)
        check_subs_paging(sim)
        check_subs_violations(sim)
        print("     subscriber checks took %.1f s" % (time.monotonic() - t0))
        if "--stress" in sys.argv[2:]:
            check_stress(sim)
    finally:
        rc, err = sim.stop()
    check(rc == 0, "websim exit status 0")
    check("Sanitizer" not in err and "runtime error" not in err, "no sanitizer report")
    if "Sanitizer" in err or "runtime error" in err:
        print(err)
    if "--stress" in sys.argv[2:]:
        check("not tracked" in err, "the full table was logged")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
