#!/usr/bin/env python3
"""Checks of websim's PUT/POST body rules and of its retryAfter detector
(429: a pause for the whole client; 423: a pause for that userId only).

    tests/sim/check_websim.py build/tests/sim/websim [--stress]

Starts its own websim on loopback, prints one line per check and exits 1 on
the first failure. --stress also sends 423s for 65 536 and then 70 000
userIds (about a minute), to see the per-user pause table stay bounded (its
sweep, its cap) and the process RSS.
"""
import http.client
import json
import subprocess
import sys
import tempfile
import time

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
        c = conn or self.conn()
        data = None if body is None else (
            body if isinstance(body, (str, bytes)) else json.dumps(body))
        c.request(method, path, body=data, headers=headers if headers is not None else AUTH)
        r = c.getresponse()
        raw = r.read()
        if conn is None:
            c.close()
        return r.status, (json.loads(raw) if raw else None), r.getheader("Retry-After")

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
