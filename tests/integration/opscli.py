"""opscli: helpers for the tests of the operator subcommands (`bwprovd state
...`, `bwprovd dlq ...`): running them with a Daemon's configuration (on a
pipe or on a pseudo-terminal), workspace ids, workspaces made at the
simulator directly (as if provisioned before bwprovd), synthetic state and
DLQ records, and reading the topics back."""
import base64
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402


def log(msg, *args):
    print(("[%7.2f] " % time.monotonic()) + (msg % args if args else msg), flush=True)


def wsid(u=None):
    """A workspace id as Webex makes them: base64url (no padding) of
    ciscospark://us/PLACE/<uuid>."""
    raw = "ciscospark://us/PLACE/%s" % (u or uuid.uuid4())
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def people_id():
    """Another resource's id (a person): not a workspace."""
    raw = "ciscospark://us/PEOPLE/%s" % uuid.uuid4()
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cli(d, *args, timeout=60, env=None):
    """`bwprovd -c <d's config> ARGS` with stdin, stdout and stderr on
    pipes; returns the CompletedProcess (text)."""
    d.write_config()
    t0 = time.monotonic()
    r = d.run_cli("-c", d.config_path, *args, timeout=timeout, env=env)
    r.seconds = time.monotonic() - t0
    return r


def cli_on_tty(d, *args, timeout=120, stdout_path=os.devnull, on_stderr=None):
    """The same with stderr on a pseudo-terminal (stdout to stdout_path).
    on_stderr(text_so_far, proc) may act (e.g. send a signal) while it runs.
    Returns (exit status, everything written to the terminal)."""
    d.write_config()
    master, slave = pty.openpty()
    env = d.environment()
    env.pop("NOTIFY_SOCKET", None)
    with open(stdout_path, "wb") as out:
        p = subprocess.Popen([d.binary, "-c", d.config_path] + list(args), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    chunk = b""
                if not chunk and p.poll() is not None:
                    break
                buf += chunk
                if on_stderr:
                    on_stderr(buf.decode("utf-8", "replace"), p)
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        os.close(master)
    return rc, buf.decode("utf-8", "replace")


def sim_create(sim, user, display=None):
    """POST a workspace at the simulator directly (as bwprovd's predecessor
    did); returns its id."""
    body = json.dumps({"provisioningId": "old-" + user, "userId": user,
                       "spEnterpriseId": "Reseller1+acme",
                       "displayName": display or "Room " + user}).encode()
    req = urllib.request.Request(sim.base_url + "/broadworks/workspaces", data=body, method="POST",
                                 headers={"Authorization": "Bearer " + sim.token,
                                          "Content-Type": "application/json",
                                          "Accept": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        return json.loads(resp.read())["id"]


def state_record(user, ws, partition, offset, removed=False):
    """A state record value as a daemon writes it."""
    v = {"kind": "workspace", "workspaceId": ws, "userId": user, "spEnterpriseId": "E",
         "provisioningId": "p", "displayName": "Room", "primaryPhoneNumber": None,
         "extension": None, "eventId": "e-" + user,
         "source": {"topic": bwtest.TOPIC_EVENTS, "partition": partition, "offset": offset},
         "updatedAt": "2026-11-26T10:00:00.000Z"}
    if removed:
        v["removed"] = True
    return json.dumps(v, separators=(",", ":"))


def state_last(mk):
    """{userId: parsed value of the last state record} (None: a tombstone)."""
    last = {}
    for m in mk.consume(bwtest.TOPIC_STATE):
        last[m["key"]] = json.loads(m["value"]) if m["value"] is not None else None
    return last


def copies(mk):
    """The replays in the events topic: {bwprovd-replay-of value: [record]}."""
    out = {}
    for m in mk.consume(bwtest.TOPIC_EVENTS):
        of = m["headers"].get("bwprovd-replay-of")
        if of:
            out.setdefault(of, []).append(m)
    return out


def dlq_id(m):
    return "%s/%d/%d" % (m["topic"], m["partition"], m["offset"])


def summary(stdout):
    """The last line of a run's stdout (its summary)."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def check(cond, what, detail=""):
    if not cond:
        raise AssertionError("%s%s" % (what, ("\n" + str(detail)) if detail != "" else ""))
    log("ok: %s", what)


def no_rebalance(d):
    """The daemon kept its partitions all along: one assignment, no revoke
    (the subcommands never joined or disturbed its group)."""
    lines = d.log_lines(all_runs=True)
    assigned = [ln for ln in lines if "assigned" in ln and "partition(s)" in ln]
    revoked = [ln for ln in lines if ("revoked" in ln or "lost" in ln) and "partition(s)" in ln]
    return len(assigned) == 1 and not revoked, (assigned, revoked)


def interrupt_when(text_predicate, sig):
    """An on_stderr for cli_on_tty: sends sig once text_predicate(text)."""
    sent = []

    def act(text, proc):
        if not sent and text_predicate(text):
            sent.append(time.monotonic())
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
    act.sent = sent
    return act


__all__ = ["bwtest", "log", "wsid", "people_id", "cli", "cli_on_tty", "sim_create",
           "state_record", "state_last", "copies", "dlq_id", "summary", "check", "no_rebalance",
           "interrupt_when", "signal"]
