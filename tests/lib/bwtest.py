"""bwtest: harness for bwprovd integration tests (Python 3 stdlib only).

Integration tests run as ``/usr/bin/python3 tests/integration/test_x.py`` with
these environment variables (set by CTest):

    BWPROVD    path to the bwprovd binary under test
    MOCKKAFKA  path to tests/kafka/mockkafka (librdkafka mock cluster)
    WEBSIM     path to the Webex for BroadWorks API simulator
    KCAT       kcat binary (name or path; default: "kcat" on PATH)

and import this module with::

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
    import bwtest

Typical test::

    with bwtest.MockKafka() as mk, bwtest.WebSim() as sim, \\
            bwtest.Daemon(mk.bootstrap, sim) as d:
        d.wait_ready(60)
        ev = bwtest.provision("100@sp.com")
        mk.produce(bwtest.TOPIC_EVENTS, [bwtest.event_record(ev)])
        res = mk.consume(bwtest.TOPIC_RESULTS, count=1, timeout=30)
        assert bwtest.results_by_event(res)[ev["eventId"]][0]["outcome"] == "succeeded"
        assert d.stop() == 0

Every process the harness starts is stopped and reaped when its context
manager exits, at interpreter exit (atexit), on SIGTERM to the test (turned
into SystemExit so the same clean-up runs), and, as a last resort, by the
kernel when the test process dies (parent-death signal via setpriv(1), when
available). Every wait is bounded by a timeout; a timeout raises
``bwtest.Timeout``.

kcat 1.7.1 behaviour the helpers rely on (checked against the mock cluster):

* producing with ``-K <delim>``: a record without the key delimiter gets a
  NULL key; a delimiter at the start gives an empty (non-NULL) key; the key
  ends at the first delimiter, so a value may contain it.
* ``-Z`` turns an empty value into NULL, and an empty key into NULL too, so
  one kcat run cannot send both an empty value and a NULL value;
  ``produce()`` splits the records into consecutive runs instead. A NULL
  key with a NULL value is sent as a lone key delimiter under ``-Z``.
* kcat skips an empty input chunk (and an empty file), so a NULL key with
  an empty value cannot be sent at all, nor an empty key with a NULL value.
* the last chunk needs no trailing delimiter; with a delivery failure
  (e.g. every broker down) kcat exits 1.
* ``-D`` may be any byte; values keep ``\\n``, ``\\r``, ``\\t`` and NUL.
* ``-H name=value`` adds the header to every record of the run; ``-H name``
  (no ``=``) gives a NULL header value.
* consuming with ``-J``: one JSON object per line with topic, partition,
  offset, tstype, ts, broker, key, payload, and ``headers`` as a flat list
  ``[name, value, name, value, ...]`` (absent when a record has none). NULL
  keys/payloads are JSON null. Bytes that are not valid UTF-8 are copied raw
  (the line is then not valid UTF-8); they are decoded here with
  "surrogateescape", so ``s.encode("utf-8", "surrogateescape")`` gives the
  original bytes back.
* keyed records are partitioned by librdkafka's default partitioner
  (consistent_random: CRC32 of the key); NULL-key records go to a random
  partition.
"""

import atexit
import collections
import datetime
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

__all__ = [
    "TOPIC_EVENTS", "TOPIC_RESULTS", "TOPIC_DLQ", "TOPIC_STATE", "TOPICS",
    "HarnessError", "Timeout", "SKIP", "skip", "require_env",
    "MockKafka", "WebSim", "Daemon", "Notification",
    "provision", "update", "remove", "event_record",
    "produce", "consume", "wait_until", "results_by_event", "parse_logfmt",
]

TOPIC_EVENTS = "broadworks.provisioning.events"
TOPIC_RESULTS = "broadworks.provisioning.results"
TOPIC_DLQ = "broadworks.provisioning.dlq"
TOPIC_STATE = "broadworks.provisioning.state"
#: The four topics of SPEC section 7, in events/results/dlq/state order.
TOPICS = (TOPIC_EVENTS, TOPIC_RESULTS, TOPIC_DLQ, TOPIC_STATE)

#: Exit status a test uses to tell CTest it was skipped (set the test's
#: SKIP_RETURN_CODE property to 77).
SKIP = 77

DEFAULT_TOKEN = "test-token-0123456789"


class HarnessError(Exception):
    """A harness operation failed (a helper process misbehaved, a command
    was refused, kcat failed ...)."""


class Timeout(HarnessError, TimeoutError):
    """A bounded wait ran out of time."""


def skip(reason):
    """Print why and exit with status SKIP (77)."""
    print("SKIP: %s" % reason, flush=True)
    sys.exit(SKIP)


def require_env(name, default=None):
    """Return environment variable ``name`` (or ``default``); raise
    HarnessError when neither is set."""
    val = os.environ.get(name) or default
    if not val:
        raise HarnessError("environment variable %s is not set" % name)
    return val


def _which(name_or_path):
    if os.sep in name_or_path:
        return name_or_path
    found = shutil.which(name_or_path)
    if not found:
        raise HarnessError("%s not found on PATH" % name_or_path)
    return found


def _kcat():
    return _which(os.environ.get("KCAT") or "kcat")


# ---------------------------------------------------------------------------
# Child processes: registry and clean-up

_live_lock = threading.Lock()
_live = set()  # Popen objects not yet reaped
_SETPRIV = shutil.which("setpriv")
_SETPRIV_OK = None


def _setpriv_prefix():
    """["setpriv", "--pdeathsig", "KILL"] when that works here, else [].

    The kernel then kills the child if the test process dies without running
    its clean-up (e.g. SIGKILL from a CTest timeout). setpriv execs the
    command, so the child keeps its pid. The parent-death signal fires when
    the *thread* that started the child exits, so start children from the
    main thread (or a thread that outlives them)."""
    global _SETPRIV_OK
    if _SETPRIV is None:
        return []
    if _SETPRIV_OK is None:
        try:
            r = subprocess.run([_SETPRIV, "--pdeathsig", "KILL", "true"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10)
            _SETPRIV_OK = r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _SETPRIV_OK = False
    return [_SETPRIV, "--pdeathsig", "KILL"] if _SETPRIV_OK else []


def _spawn(argv, **kw):
    """Popen argv in its own session (so terminal signals reach only the
    test), registered for clean-up."""
    kw.setdefault("start_new_session", True)
    kw.setdefault("close_fds", True)
    proc = subprocess.Popen(_setpriv_prefix() + list(argv), **kw)
    with _live_lock:
        _live.add(proc)
    return proc


def _reap(proc, timeout, sig=signal.SIGTERM):
    """Wait up to ``timeout`` s for proc; then send ``sig``, wait 5 s more,
    then SIGKILL. Always reaps. Returns the exit status (negative: signal)."""
    try:
        try:
            return proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            pass
        if sig is not None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                return proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        return proc.wait(timeout=30)
    finally:
        with _live_lock:
            _live.discard(proc)


def _cleanup_all():
    with _live_lock:
        procs = list(_live)
    for p in procs:
        if p.poll() is None:
            try:
                p.terminate()
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            _reap(p, 5, sig=None)
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _sigterm_to_exit(signum, _frame):
    # Runs the context managers' __exit__ and atexit on the way out.
    raise SystemExit(128 + signum)


try:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_exit)
except ValueError:  # imported outside the main thread
    pass


class _LineReader:
    """Bounded-time line reads from a pipe (no blocking readline())."""

    def __init__(self, fileobj):
        self._fd = fileobj.fileno()
        self._buf = b""
        self.eof = False

    def readline(self, timeout):
        """Next line without its newline, or None at EOF; Timeout if no
        full line arrives within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line, self._buf = self._buf[:i], self._buf[i + 1:]
                return line.decode("utf-8", "replace").rstrip("\r")
            if self.eof:
                if self._buf:
                    line, self._buf = self._buf, b""
                    return line.decode("utf-8", "replace")
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no line within %.1fs" % timeout)
            r, _, _ = select.select([self._fd], [], [], left)
            if r:
                chunk = os.read(self._fd, 65536)
                if chunk:
                    self._buf += chunk
                else:
                    self.eof = True


def _tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# MockKafka


class MockKafka:
    """A librdkafka mock cluster on loopback (tests/kafka/mockkafka).

    ``MockKafka(partitions=4, brokers=1, topics=None, binary=None)``

    * ``partitions``: partition count of each of the four SPEC topics.
    * ``topics``: optional ``{name: partitions}`` of extra topics (a value of
      None means ``partitions``).
    * ``binary``: mockkafka path, default ``$MOCKKAFKA``.

    Use as a context manager (or ``start()`` / ``stop()``). Attributes:
    ``bootstrap`` ("127.0.0.1:port[,...]"), ``brokers``, ``topics``
    (``{name: partitions}``), ``log_path`` (its stderr).

    ``command(line)`` sends one control line and returns the reply line
    ("OK" or "ERR ..."); the convenience methods below raise HarnessError on
    "ERR". Topics a client auto-creates get 4 partitions.
    """

    def __init__(self, partitions=4, brokers=1, topics=None, binary=None,
                 start_timeout=30, debug=None):
        self.binary = binary or require_env("MOCKKAFKA")
        self.brokers = int(brokers)
        self.topics = {t: int(partitions) for t in TOPICS}
        for name, n in (topics or {}).items():
            self.topics[name] = int(n if n is not None else partitions)
        self.start_timeout = start_timeout
        self.debug = debug
        self.bootstrap = None
        self.proc = None
        self._dir = None
        self.log_path = None
        self._reader = None
        self._cmd_lock = threading.Lock()

    def start(self):
        """Start the cluster and wait for its BOOTSTRAP line."""
        if self.proc is not None:
            raise HarnessError("MockKafka already started")
        self._dir = _mkdtemp("bwt-mk-")
        self.log_path = os.path.join(self._dir, "mockkafka.log")
        argv = [self.binary, "--brokers", str(self.brokers)]
        for name, n in self.topics.items():
            argv += ["--topic", "%s:%d" % (name, n)]
        if self.debug:
            argv += ["--debug", self.debug]
        with open(self.log_path, "ab") as log:
            self.proc = _spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=log)
        self._reader = _LineReader(self.proc.stdout)
        try:
            line = self._reader.readline(self.start_timeout)
        except Timeout:
            self.stop(timeout=0, keep_logs=True)
            raise Timeout("mockkafka printed no BOOTSTRAP line in %ss:\n%s"
                          % (self.start_timeout, _tail(self.log_path)))
        if line is None or not line.startswith("BOOTSTRAP "):
            rc = self.stop(timeout=5, keep_logs=True)
            raise HarnessError("mockkafka failed (exit %s, said %r):\n%s"
                               % (rc, line, _tail(self.log_path)))
        self.bootstrap = line.split(None, 1)[1].strip()
        return self

    def command(self, line, timeout=10):
        """Send one control command; return its reply line ("OK" or
        "ERR <reason>"). See ``mockkafka --help`` for the commands."""
        if self.proc is None or self.proc.poll() is not None:
            raise HarnessError("mockkafka is not running")
        if "\n" in line:
            raise ValueError("one command per call")
        with self._cmd_lock:
            try:
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                raise HarnessError("mockkafka is gone")
            reply = self._reader.readline(timeout)
        if reply is None:
            raise HarnessError("mockkafka exited (command %r)" % line)
        return reply

    def check(self, line, timeout=10):
        """command(), raising HarnessError unless the reply is OK."""
        reply = self.command(line, timeout)
        if reply != "OK":
            raise HarnessError("mockkafka %r: %s" % (line, reply))
        return reply

    def down(self, broker="all"):
        """Disconnect broker ``broker`` (1-based id, or "all") and refuse new
        connections. Does not move partition leaders."""
        return self.check("down %s" % broker)

    def up(self, broker="all"):
        """Let broker ``broker`` (id or "all") accept connections again."""
        return self.check("up %s" % broker)

    def errors(self, apikey, count, *codes):
        """Fail the next ``count`` requests of ``apikey`` (name such as
        "Produce", "OffsetCommit", or number) with error ``codes`` (one code
        repeated, or ``count`` codes; numbers or librdkafka names such as
        "REQUEST_TIMED_OUT", "_TRANSPORT" = disconnect)."""
        if not codes:
            raise ValueError("errors() needs at least one error code")
        return self.check("errors %s %d %s" % (apikey, count, " ".join(str(c) for c in codes)))

    def clear_errors(self, apikey):
        """Forget errors queued by errors() for ``apikey``."""
        return self.check("clear %s" % apikey)

    def rtt(self, broker, ms):
        """Delay every response of ``broker`` (id or "all") by ``ms``."""
        return self.check("rtt %s %d" % (broker, ms))

    def leader(self, topic, partition, broker):
        """Move the leader of ``topic``/``partition`` to ``broker`` (-1: no
        leader)."""
        return self.check("leader %s %d %d" % (topic, partition, broker))

    def coordinator(self, group, broker):
        """Make ``broker`` the coordinator of consumer group ``group``."""
        return self.check("coordinator group %s %d" % (group, broker))

    def create_topic(self, name, partitions):
        """Create one more topic."""
        self.check("create %s %d" % (name, partitions))
        self.topics[name] = int(partitions)

    def produce(self, topic, records, **kw):
        """``produce(self.bootstrap, topic, records, **kw)``."""
        return produce(self.bootstrap, topic, records, **kw)

    def consume(self, topic, count=None, timeout=30, **kw):
        """``consume(self.bootstrap, topic, count, timeout, **kw)``."""
        return consume(self.bootstrap, topic, count=count, timeout=timeout, **kw)

    def running(self):
        """True while the mockkafka process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10, keep_logs=False):
        """Close its stdin (it exits 0 on EOF), wait up to ``timeout`` s, then
        SIGTERM / SIGKILL. Returns the exit status; idempotent. Its temp dir
        (stderr log) is removed unless ``keep_logs`` or BWTEST_KEEP=1."""
        if self.proc is None:
            return None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        rc = _reap(self.proc, timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        _rmtree_unless_kept(self._dir, keep_logs)
        self._dir = None
        return rc

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop(keep_logs=_is_failure(exc_type, exc))
        return False

    def __repr__(self):
        return "MockKafka(%s)" % (self.bootstrap,)


def real_kafka():
    """True when the tests run on real Apache Kafka brokers
    (``BWTEST_KAFKA=real``, set by CTest for the label ``kafka``)."""
    return os.environ.get("BWTEST_KAFKA") == "real"


#: The group settings Daemon gives bwprovd on the mock cluster (see
#: Daemon.config_items).
MOCK_GROUP = {
    "kafka.consumer.session.timeout.ms": 6000,
    "kafka.consumer.heartbeat.interval.ms": 500,
}


def Kafka(partitions=4, brokers=1, topics=None, **kw):
    """The cluster a scenario runs on: real Apache Kafka
    (``realkafka.RealKafka``) when real_kafka(), else the mock
    (``MockKafka``). Keyword arguments the other kind does not take are
    dropped (``debug`` is the mock's; ``state_config`` and the like the
    real one's)."""
    if real_kafka():
        import realkafka
        kw.pop("debug", None)
        return realkafka.RealKafka(partitions=partitions, brokers=brokers, topics=topics, **kw)
    for k in ("state_config", "topic_config", "broker_config", "version", "heap_mb"):
        kw.pop(k, None)
    return MockKafka(partitions=partitions, brokers=brokers, topics=topics, **kw)


# ---------------------------------------------------------------------------
# WebSim


class WebSim:
    """The Webex for BroadWorks API simulator (``$WEBSIM``).

    ``WebSim(token=DEFAULT_TOKEN, faults=None, args=(), binary=None)`` runs
    ``websim --listen 127.0.0.1:0 --token TOKEN [--faults JSON] ARGS...``
    and parses its ``LISTENING http://127.0.0.1:PORT`` line.

    Attributes: ``token``, ``url`` ("http://127.0.0.1:PORT"), ``base_url``
    (``url + "/v1"``, what bwprovd's ``webex.base_url`` gets), ``log_path``
    (its stderr), ``stdout_lines`` (its later stdout lines).

    Admin calls (JSON over urllib, no proxy, ``timeout`` s each):
    ``workspaces()``, ``subscribers()``, ``requests(since=0, limit=None)``,
    ``all_requests()``, ``stats()``, ``faults(dict)``, ``get_faults()``, ``reset()``,
    and for the subscribers ``subscriber_settings(...)``, ``subscriber_outcomes(dict)``.
    Request records look like ``{"seq","method","path","query","userId","workspaceId",
    "subscriberId","status","auth","trackingId","recvUs","doneUs"}``.
    """

    def __init__(self, token=DEFAULT_TOKEN, faults=None, args=(), binary=None,
                 start_timeout=30, timeout=10, tls=None):
        """``tls``: ``(cert, key, cafile)`` to serve HTTPS; the admin calls
        then trust ``cafile``."""
        self.binary = binary or require_env("WEBSIM")
        self.token = token
        self.initial_faults = faults
        self.args = list(args)
        self.start_timeout = start_timeout
        self.timeout = timeout
        self.url = None
        self.base_url = None
        self.proc = None
        self._dir = None
        self.log_path = None
        self.stdout_lines = []
        self._drain = None
        handlers = [urllib.request.ProxyHandler({})]
        if tls:
            import ssl
            self.args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
            handlers.append(urllib.request.HTTPSHandler(
                context=ssl.create_default_context(cafile=tls[2])))
        self._opener = urllib.request.build_opener(*handlers)

    def start(self):
        """Start the simulator and wait for its LISTENING line."""
        if self.proc is not None:
            raise HarnessError("WebSim already started")
        self._dir = _mkdtemp("bwt-sim-")
        self.log_path = os.path.join(self._dir, "websim.log")
        argv = [self.binary, "--listen", "127.0.0.1:0", "--token", self.token]
        if self.initial_faults is not None:
            f = self.initial_faults
            argv += ["--faults", f if isinstance(f, str) else json.dumps(f)]
        argv += self.args
        with open(self.log_path, "ab") as log:
            self.proc = _spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=log)
        reader = _LineReader(self.proc.stdout)
        deadline = time.monotonic() + self.start_timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = reader.readline(max(0.0, left))
            except Timeout:
                self.stop(timeout=0, keep_logs=True)
                raise Timeout("websim printed no LISTENING line in %ss:\n%s"
                              % (self.start_timeout, _tail(self.log_path)))
            if line is None:
                rc = self.stop(timeout=5, keep_logs=True)
                raise HarnessError("websim exited (status %s) before LISTENING:\n%s"
                                   % (rc, _tail(self.log_path)))
            m = re.match(r"\s*LISTENING\s+(https?://\S+?)/?\s*$", line)
            if m:
                self.url = re.sub(r"/v1$", "", m.group(1))
                break
            self.stdout_lines.append(line)
        self.base_url = self.url + "/v1"
        # Keep reading stdout so the simulator never blocks on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, args=(reader,),
                                       name="websim-stdout", daemon=True)
        self._drain.start()
        return self

    def _drain_stdout(self, reader):
        while True:
            try:
                line = reader.readline(1.0)
            except Timeout:
                if self.proc.poll() is not None:
                    return
                continue
            except (OSError, ValueError):
                return
            if line is None:
                return
            self.stdout_lines.append(line)

    def _admin(self, method, path, body=None):
        if self.url is None:
            raise HarnessError("WebSim not started")
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            raise HarnessError("websim %s %s: HTTP %d %s" % (method, path, e.code, detail))
        except (urllib.error.URLError, OSError) as e:
            raise HarnessError("websim %s %s: %s" % (method, path, e))
        if not raw.strip():
            return None
        return json.loads(raw.decode("utf-8"))

    def workspaces(self):
        """GET /_sim/workspaces: the simulator's workspaces (parsed JSON)."""
        return self._admin("GET", "/_sim/workspaces")

    def subscribers(self):
        """GET /_sim/subscribers: ``{"subscribers": [...], "count", "created_total"}``,
        each subscriber as the API shows it plus ``pending`` while a transition
        is due (transitions due are applied first)."""
        return self._admin("GET", "/_sim/subscribers")

    def subscriber_settings(self, delay_ms=None, sync=None, error_share=None, max_count=None,
                            delay_jitter_ms=None):
        """Set the subscriber fault settings that are given (None: unchanged):
        ``subscriberDelayMs``, ``subscriberSync``, ``subscriberErrorShare``,
        ``subscriberMax``, ``subscriberDelayJitterMs``. Returns the new
        settings."""
        keys = {"subscriberDelayMs": delay_ms, "subscriberSync": sync,
                "subscriberErrorShare": error_share, "subscriberMax": max_count,
                "subscriberDelayJitterMs": delay_jitter_ms}
        return self.faults({k: v for k, v in keys.items() if v is not None})

    def subscriber_outcomes(self, outcomes):
        """Replace the injected final statuses by userId, e.g.
        ``{"u1@sp": {"status": "error", "errors": [{"errorCode": 1001,
        "description": "..."}]}, "u2@sp": {"status": "pending_user_migration",
        "count": 2}}``; ``{}`` or None removes them all."""
        return self.faults({"subscriberOutcome": outcomes})

    def requests(self, since=0, limit=None):
        """GET /_sim/requests?since=N[&limit=M]: records with seq > N, as
        ``{"requests": [...], "next": N}`` (pass ``next`` as the next
        ``since``)."""
        q = "since=%d" % int(since)
        if limit is not None:
            q += "&limit=%d" % int(limit)
        return self._admin("GET", "/_sim/requests?" + q)

    def all_requests(self, since=0, max_pages=1000):
        """Every request record from ``since`` on, following ``next``."""
        out = []
        for _ in range(max_pages):
            page = self.requests(since)
            reqs = page.get("requests") or []
            out.extend(reqs)
            nxt = page.get("next", since)
            if not reqs or nxt == since:
                return out
            since = nxt
        return out

    def stats(self):
        """GET /_sim/stats (parsed JSON)."""
        return self._admin("GET", "/_sim/stats")

    def faults(self, faults):
        """POST /_sim/faults: merge ``faults`` (a dict) into the simulator's
        fault settings; returns the reply."""
        return self._admin("POST", "/_sim/faults", faults)

    def get_faults(self):
        """GET /_sim/faults: the current fault settings."""
        return self._admin("GET", "/_sim/faults")

    def reset(self):
        """POST /_sim/reset: forget workspaces, subscribers, requests and faults."""
        return self._admin("POST", "/_sim/reset", {})

    def running(self):
        """True while the simulator process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10, keep_logs=False):
        """SIGTERM, wait up to ``timeout`` s, SIGKILL. Returns the exit
        status; idempotent. Its temp dir (stderr log) is removed unless
        ``keep_logs`` or BWTEST_KEEP=1."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
            except ProcessLookupError:
                pass
        rc = _reap(self.proc, timeout, sig=None)
        if self._drain is not None:
            self._drain.join(timeout=5)
        if self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        _rmtree_unless_kept(self._dir, keep_logs)
        self._dir = None
        return rc

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop(keep_logs=_is_failure(exc_type, exc))
        return False

    def __repr__(self):
        return "WebSim(%s)" % (self.url,)


# ---------------------------------------------------------------------------
# Temporary directories


def _keep_tmp():
    return os.environ.get("BWTEST_KEEP", "") not in ("", "0")


def _is_failure(exc_type, exc):
    """True when a context manager exits because the test failed (not for
    a clean sys.exit(0) or a skip)."""
    if exc_type is None:
        return False
    if issubclass(exc_type, SystemExit):
        return exc is not None and exc.code not in (0, None, SKIP)
    return True


_tmpdirs = set()          # harness temp dirs not yet removed or kept
_uncaught = [False]       # set by the excepthook: keep temp dirs at exit


def _mkdtemp(prefix):
    path = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.add(path)
    return path


def _rmtree_unless_kept(path, failed):
    """Remove a harness temp dir, unless the test failed or BWTEST_KEEP=1
    (then say where it is)."""
    _tmpdirs.discard(path)
    if not path or not os.path.isdir(path):
        return
    if failed or _keep_tmp():
        sys.stderr.write("bwtest: kept %s\n" % path)
        return
    shutil.rmtree(path, ignore_errors=True)


def _cleanup_tmpdirs():
    for path in list(_tmpdirs):
        _rmtree_unless_kept(path, _uncaught[0])


_prev_excepthook = sys.excepthook


def _excepthook(exc_type, exc, tb):
    _uncaught[0] = True
    _prev_excepthook(exc_type, exc, tb)


sys.excepthook = _excepthook
# atexit runs in reverse order: processes are stopped first, then dirs go.
atexit.register(_cleanup_tmpdirs)
atexit.register(_cleanup_all)


# ---------------------------------------------------------------------------
# sd_notify listener

#: One sd_notify assignment: ``t`` (time.monotonic() when received), ``key``
#: ("READY", "STATUS", ...), ``value`` (str), ``run`` (Daemon start count,
#: 1 for the first start).
Notification = collections.namedtuple("Notification", "t key value run")


class _NotifyListener:
    """A unix datagram socket for NOTIFY_SOCKET plus a thread collecting
    every newline-separated KEY=VALUE assignment it receives."""

    def __init__(self, directory, on_message):
        self._on_message = on_message
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        path = os.path.join(directory, "notify.sock")
        if len(path.encode()) < 100:
            self.sock.bind(path)
            self.address = path
        else:  # too long for sun_path: use the abstract namespace
            name = "bwtest-notify-%s" % uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.address = "@" + name
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sd-notify", daemon=True)
        self._thread.start()

    def _loop(self):
        fds_space = socket.CMSG_SPACE(64 * 4)
        while not self._stop.is_set():
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(65536, fds_space)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            for level, ctype, cdata in anc:  # FDSTORE=1 / BARRIER=1 pass fds
                if level == socket.SOL_SOCKET and ctype == socket.SCM_RIGHTS:
                    n = len(cdata) - len(cdata) % 4
                    for i in range(0, n, 4):
                        try:
                            os.close(int.from_bytes(cdata[i:i + 4], sys.byteorder))
                        except OSError:
                            pass
            text = data.decode("utf-8", "replace")
            for line in text.split("\n"):
                if not line:
                    continue
                key, sep, value = line.partition("=")
                self._on_message(t, key, value if sep else "")

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


# ---------------------------------------------------------------------------
# Daemon


def _cfg_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Daemon:
    """The real bwprovd binary (``$BWPROVD``) against a mock cluster and the
    simulator.

    ``Daemon(bootstrap, webex, token=None, config=None, overrides=None,
    args=(), env=None, binary=None, watchdog_usec=None)``

    * ``bootstrap``: Kafka bootstrap servers (``MockKafka.bootstrap``).
    * ``webex``: a ``WebSim`` (its ``base_url`` and ``token`` are used) or a
      base URL string.
    * ``token``: access token written to the token file (mode 0600);
      default the WebSim's token or DEFAULT_TOKEN.
    * ``config``: ``{key: value}`` extra config-file lines (a key given here
      replaces a default one; a value of None drops the key). Values must
      not contain "#" (comment) or newlines.
    * ``overrides``: ``{key: value}`` passed as ``-X key=value``.
    * ``args``: extra command-line arguments; ``env``: extra environment
      (a value of None removes a variable).
    * ``watchdog_usec``: sets WATCHDOG_USEC (no WATCHDOG_PID, so the daemon
      accepts it).

    The config file, token file, stderr log and notify socket live in a
    temp dir (``dir``). The child gets NOTIFY_SOCKET pointing at the
    harness's socket; JOURNAL_STREAM, WATCHDOG_*, LISTEN_* and
    CREDENTIALS_DIRECTORY are removed from its environment (unless given in
    ``env``), so it logs logfmt to stderr.

    Attributes: ``config_path``, ``token_path``, ``log_path``,
    ``state_dir`` (its $STATE_DIRECTORY), ``proc``,
    ``pid``, ``returncode``, ``run`` (number of starts), ``started_at``
    (monotonic), ``notifications`` (list of Notification, all runs).

    Methods: ``start()``, ``stop(sig, timeout)``, ``kill()``,
    ``send_signal(sig)``, ``reload()``, ``wait(timeout)``,
    ``wait_ready(timeout)``, ``wait_notification(...)``, ``statuses()``,
    ``log_lines()``, ``log_records()``, ``wait_log(...)``,
    ``set_token(token)``, ``check_config()``, ``run_cli(*args)``,
    ``close()``. Can be restarted (``start()`` again after it exited).
    """

    def __init__(self, bootstrap, webex, token=None, config=None, overrides=None,
                 args=(), env=None, binary=None, watchdog_usec=None):
        self.binary = binary or require_env("BWPROVD")
        self.bootstrap = bootstrap
        if isinstance(webex, WebSim):
            self.base_url = webex.base_url
            default_token = webex.token
        else:
            self.base_url = str(webex)
            default_token = DEFAULT_TOKEN
        self.dir = _mkdtemp("bwt-d-")
        self.config_path = os.path.join(self.dir, "bwprovd.conf")
        self.token_path = os.path.join(self.dir, "token")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.state_dir = os.path.join(self.dir, "state")
        self.instance = os.path.basename(self.dir)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.config = dict(config or {})
        self.overrides = dict(overrides or {})
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.watchdog_usec = watchdog_usec
        self.proc = None
        self.run = 0
        self.started_at = None
        self.notifications = []
        self._cond = threading.Condition()
        self._log_start = 0
        self._failed = False
        self.set_token(token if token is not None else default_token)
        self._notify = _NotifyListener(self.dir, self._on_notify)

    # -- files --------------------------------------------------------------

    def set_token(self, token):
        """(Re)write the access token file atomically, mode 0600. Send
        ``reload()`` (SIGHUP) for a running daemon to re-read it."""
        tmp = self.token_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.token_path)
        self.token = token

    def config_items(self):
        """The effective config-file ``{key: value}`` (defaults + config)."""
        items = {
            "kafka.bootstrap.servers": self.bootstrap,
            "webex.base_url": self.base_url,
            "webex.access_token_file": self.token_path,
        }
        if not real_kafka():
            # The mock cluster (librdkafka 2.0) keeps a member that sent
            # LeaveGroup until its session times out, and it knows no
            # static membership: keep that short so a restarted or second
            # daemon joins within seconds. A real broker gets the defaults.
            items.update(MOCK_GROUP)
        for k, v in self.config.items():
            if v is None:
                items.pop(k, None)
            else:
                items[k] = v
        return items

    def write_config(self):
        """Write ``config_path`` from config_items(); returns its path."""
        lines = ["# written by tests/lib/bwtest.py"]
        for k, v in self.config_items().items():
            v = _cfg_value(v)
            if "\n" in v or "#" in v:
                raise ValueError("config value for %s contains '#' or a newline" % k)
            lines.append("%s = %s" % (k, v))
        # Replaced whole, never truncated in place: check_config() writes it
        # again while the daemon may be reading it at start (a daemon once
        # read a half-written file and exited 78 on CI).
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.config_path)
        return self.config_path

    def argv(self, *extra):
        """The command line start() uses (plus ``extra``)."""
        argv = [self.binary, "-c", self.config_path]
        for k, v in self.overrides.items():
            argv += ["-X", "%s=%s" % (k, _cfg_value(v))]
        return argv + self.args + list(extra)

    def environment(self):
        """The environment start() gives the daemon."""
        env = dict(os.environ)
        for k in list(env):
            if k in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY") or \
                    k.startswith("WATCHDOG_") or k.startswith("LISTEN_"):
                del env[k]
        env["NOTIFY_SOCKET"] = self._notify.address
        # As systemd's StateDirectory= does: the daemon keeps its journal
        # of state records there (one directory per Daemon, kept across
        # its restarts, as on a real host).
        env["STATE_DIRECTORY"] = self.state_dir
        # As a template unit's %i does: one static group member per Daemon
        # (kafka.group.instance.id defaults to bwprovd-<host>-<instance>),
        # the same across its restarts, so that two Daemons on this host do
        # not fence each other.
        env["BWPROVD_INSTANCE"] = self.instance
        if self.watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(int(self.watchdog_usec))
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    # -- process ------------------------------------------------------------

    def start(self):
        """Write the config and start bwprovd (stderr appended to
        ``log_path``). Returns self."""
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("bwprovd already running (pid %d)" % self.proc.pid)
        if self.proc is not None:
            _reap(self.proc, 0)
        self.write_config()
        try:
            self._log_start = os.path.getsize(self.log_path)
        except OSError:
            self._log_start = 0
        with self._cond:
            self.run += 1
            self.started_at = time.monotonic()
        with open(self.log_path, "ab") as err, open(self.stdout_path, "ab") as out:
            self.proc = _spawn(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                               stderr=err, env=self.environment())
        return self

    @property
    def pid(self):
        """pid of the current process (None before start())."""
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self):
        """Exit status once it has exited (negative: killed by that
        signal), else None."""
        return self.proc.poll() if self.proc is not None else None

    def running(self):
        """True while the daemon process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        """Send ``sig`` to the running daemon."""
        if not self.running():
            raise HarnessError("bwprovd is not running")
        self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP (re-read config and token)."""
        self.send_signal(signal.SIGHUP)

    def wait(self, timeout=30):
        """Wait for the daemon to exit by itself; return its status. Raises
        Timeout (leaving it running) after ``timeout`` s."""
        if self.proc is None:
            raise HarnessError("bwprovd was never started")
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Timeout("bwprovd still running after %ss" % timeout)
        _reap(self.proc, 0)
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Send ``sig`` and wait up to ``timeout`` s; return the exit status
        (0 = clean stop). If it does not exit in time it is SIGKILLed,
        reaped, and Timeout is raised. Returns the old status if it had
        already exited; None if never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _reap(self.proc, 0, sig=None)
                raise Timeout("bwprovd did not exit within %ss of signal %s; killed\n%s"
                              % (timeout, sig, self.log_tail()))
        return _reap(self.proc, 0)

    def kill(self):
        """SIGKILL (a crash); returns the exit status (-9)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        return _reap(self.proc, 30, sig=None)

    # -- sd_notify ----------------------------------------------------------

    def _on_notify(self, t, key, value):
        with self._cond:
            self.notifications.append(Notification(t, key, value, self.run))
            self._cond.notify_all()

    def notifications_for(self, key=None, run=None):
        """Notifications of run ``run`` (default the current one), only
        ``key`` if given."""
        run = self.run if run is None else run
        with self._cond:
            return [n for n in self.notifications
                    if n.run == run and (key is None or n.key == key)]

    def statuses(self, run=None):
        """STATUS= values of the current run, in order."""
        return [n.value for n in self.notifications_for("STATUS", run)]

    def wait_notification(self, key, value=None, timeout=30, after=None):
        """Wait for a ``key`` (=``value``, or a callable ``value(str)``)
        notification received at or after monotonic time ``after`` (default
        this run's start) and return it. Raises HarnessError if the daemon
        exits first, Timeout after ``timeout`` s."""
        if after is None:
            after = self.started_at if self.started_at is not None else 0.0
        deadline = time.monotonic() + timeout
        exited_at = None

        def match(n):
            if n.key != key or n.t < after:
                return False
            if value is None:
                return True
            return value(n.value) if callable(value) else n.value == value

        with self._cond:
            while True:
                for n in self.notifications:
                    if match(n):
                        return n
                now = time.monotonic()
                if self.proc is not None and self.proc.poll() is not None:
                    # A datagram sent just before exit may still be queued.
                    if exited_at is None:
                        exited_at = now
                    elif now - exited_at > 0.5:
                        raise HarnessError(
                            "bwprovd exited (status %s) before %s%s\n%s"
                            % (self.proc.returncode, key,
                               "" if value is None or callable(value) else "=" + value,
                               self.log_tail()))
                if now >= deadline:
                    raise Timeout("no %s notification within %ss (got %s)\n%s"
                                  % (key, timeout,
                                     [n.key + "=" + n.value for n in self.notifications[-10:]],
                                     self.log_tail()))
                self._cond.wait(min(0.1, deadline - now))

    def wait_ready(self, timeout=60):
        """Wait for READY=1 from the current run; returns its Notification.
        Raises HarnessError (with the log tail) if the daemon exits first,
        Timeout after ``timeout`` s."""
        return self.wait_notification("READY", "1", timeout)

    # -- logs ---------------------------------------------------------------

    def log_lines(self, all_runs=False):
        """Captured stderr lines of the current run (or of every run)."""
        try:
            with open(self.log_path, "rb") as f:
                if not all_runs:
                    f.seek(self._log_start)
                data = f.read()
        except OSError:
            return []
        return data.decode("utf-8", "replace").splitlines()

    def log_records(self, all_runs=False):
        """log_lines() parsed as logfmt dicts (see parse_logfmt)."""
        return [parse_logfmt(line) for line in self.log_lines(all_runs)]

    def log_tail(self, n=40):
        """The last ``n`` stderr lines as one string (for messages)."""
        return "\n".join(self.log_lines(all_runs=True)[-n:])

    def wait_log(self, match, timeout=30, interval=0.1):
        """Wait until a stderr line of this run contains ``match`` (a str),
        or satisfies ``match(line)``, or its logfmt record is a superset of
        ``match`` (a dict); return that line."""
        if isinstance(match, str):
            pred = lambda line: match in line  # noqa: E731
        elif isinstance(match, dict):
            want = {k: str(v) for k, v in match.items()}
            pred = lambda line: want.items() <= parse_logfmt(line).items()  # noqa: E731
        else:
            pred = match

        def find():
            for line in self.log_lines():
                if pred(line):
                    return line
            return None
        return wait_until(find, timeout, interval, desc="log line %r" % (match,))

    # -- one-shot runs ------------------------------------------------------

    def check_config(self, timeout=30):
        """Run ``bwprovd -c FILE [-X ...] --check-config``; returns the
        CompletedProcess (text stdout/stderr)."""
        self.write_config()
        return self.run_cli(*self.argv("--check-config")[1:], timeout=timeout)

    def run_cli(self, *args, timeout=30, env=None):
        """Run the binary with exactly ``args`` (nothing added) and this
        daemon's environment; returns the CompletedProcess (text)."""
        e = self.environment()
        e.pop("NOTIFY_SOCKET", None)
        e.update(env or {})
        return subprocess.run([self.binary] + list(args), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=e)

    # -- context ------------------------------------------------------------

    def close(self, failed=False):
        """Stop it if running (SIGTERM, then SIGKILL after 30 s), close the
        notify socket, remove the temp dir (kept if ``failed`` or
        BWTEST_KEEP=1)."""
        try:
            if self.running():
                try:
                    self.stop(timeout=30)
                except Timeout:
                    failed = True
        finally:
            self._notify.close()
            _rmtree_unless_kept(self.dir, failed or self._failed)

    def __enter__(self):
        if not self.running():
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = _is_failure(exc_type, exc)
        if failed:
            sys.stderr.write("bwtest: bwprovd stderr (last lines):\n%s\n" % self.log_tail())
        self.close(failed)
        return False

    def __repr__(self):
        return "Daemon(pid=%s, run=%d)" % (self.pid, self.run)


# ---------------------------------------------------------------------------
# Events (SPEC section 2)

_WORKSPACE_FIELDS = frozenset((
    "provisioningId", "userId", "spEnterpriseId", "displayName",
    "primaryPhoneNumber", "extension", "newUserId",
))


def _now_iso():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


def _event(etype, user, event_id, defaults, fields, member="workspace",
           member_fields=None):
    """An event dict: ``member`` ("workspace" or "subscriber") holds the
    userId, ``defaults`` and the keyword ``fields`` named in
    ``member_fields``; the other fields go to the top level; a field None
    is removed; ``member={...}`` merges into the member object."""
    inner = {"userId": user}
    inner.update(defaults)
    ev = {
        "eventId": event_id if event_id is not None else str(uuid.uuid4()),
        "type": etype,
        "occurredAt": _now_iso(),
        member: inner,
    }
    names = _WORKSPACE_FIELDS if member_fields is None else member_fields
    for k, v in fields.items():
        if k == member and isinstance(v, dict):
            for wk, wv in v.items():
                if wv is None:
                    inner.pop(wk, None)
                else:
                    inner[wk] = wv
            continue
        target = inner if k in names else ev
        if v is None:
            target.pop(k, None)
        else:
            target[k] = v
    return ev


def provision(user, event_id=None, **fields):
    """A ``workspace.provision`` event dict for BroadWorks userId ``user``.

    Defaults: eventId a new uuid4, occurredAt now, provisioningId "prov-1",
    spEnterpriseId "Reseller1+acme", displayName "Room <user>". Keyword
    fields named like workspace fields (provisioningId, userId,
    spEnterpriseId, displayName, primaryPhoneNumber, extension, newUserId)
    go into ``workspace``, others (workspaceId, occurredAt, type, ...) to
    the top level; ``workspace={...}`` merges into workspace. A value of
    None removes the field (to build invalid events)."""
    return _event("workspace.provision", user, event_id, {
        "provisioningId": "prov-1",
        "spEnterpriseId": "Reseller1+acme",
        "displayName": "Room %s" % user,
    }, fields)


def update(user, event_id=None, **fields):
    """A ``workspace.update`` event: workspace {userId} plus the given
    fields (e.g. primaryPhoneNumber=..., extension=..., newUserId=...,
    workspaceId=... at the top level). Same field rules as provision()."""
    return _event("workspace.update", user, event_id, {}, fields)


def remove(user, event_id=None, **fields):
    """A ``workspace.remove`` event: workspace {userId} (plus fields, e.g.
    workspaceId=...). Same field rules as provision()."""
    return _event("workspace.remove", user, event_id, {}, fields)


_SUBSCRIBER_FIELDS = frozenset((
    "provisioningId", "userId", "spEnterpriseId", "firstName", "lastName", "package",
    "primaryPhoneNumber", "mobilePhoneNumber", "extension", "email", "language", "timezone",
    "newUserId"))


def _sub_event(etype, user, event_id, defaults, fields):
    return _event(etype, user, event_id, defaults, fields, "subscriber", _SUBSCRIBER_FIELDS)


def sub_provision(user, event_id=None, **fields):
    """A ``subscriber.provision`` event (SPEC §2b) for ``user``. Defaults:
    provisioningId "prov-1", spEnterpriseId "Reseller1+acme", firstName
    "First", lastName "<user>", package "basic". Keyword fields named like
    subscriber fields go into ``subscriber``, others (subscriberId, ...) to
    the top level; None removes a field."""
    return _sub_event("subscriber.provision", user, event_id, {
        "provisioningId": "prov-1",
        "spEnterpriseId": "Reseller1+acme",
        "firstName": "First",
        "lastName": user,
        "package": "basic",
    }, fields)


def sub_update(user, event_id=None, **fields):
    """A ``subscriber.update`` event: subscriber {userId} plus the fields."""
    return _sub_event("subscriber.update", user, event_id, {}, fields)


def sub_remove(user, event_id=None, **fields):
    """A ``subscriber.remove`` event: subscriber {userId} plus the fields."""
    return _sub_event("subscriber.remove", user, event_id, {}, fields)


def event_record(event, key=Ellipsis):
    """``(key, value)`` for produce(): the compact JSON of ``event``, keyed
    by its workspace.userId (subscriber.userId) unless ``key`` is given
    (None = NULL key)."""
    if key is Ellipsis:
        key = (event.get("workspace") or event.get("subscriber") or {}).get("userId")
    return key, json.dumps(event, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------
# kcat produce / consume


def _to_bytes(x):
    if x is None or isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return x.encode("utf-8", "surrogateescape")
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    return str(x).encode("utf-8")


def _pick_byte(exclude, preferred):
    for b in [preferred] + list(range(1, 256)):
        if b not in exclude:
            return b
    return None


def _kcat_run(argv, data, timeout, what):
    try:
        r = subprocess.run(argv, input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Timeout("%s: kcat did not finish within %.1fs" % (what, timeout))
    if r.returncode != 0:
        raise HarnessError("%s: kcat exit %d: %s" % (
            what, r.returncode, r.stderr.decode("utf-8", "replace").strip()[-2000:]))
    return r


def produce(bootstrap, topic, records, timeout=30, headers=None, partition=None):
    """Write ``records`` to ``topic`` with kcat, in order; return how many.

    ``records``: iterable of ``(key, value)``, key and value each str,
    bytes or None (NULL); an event dict is taken as ``event_record(ev)``.
    ``headers``: optional ``{name: value}`` added to every record (value
    None = NULL header). ``partition``: force a partition (default: the
    partitioner, CRC32 of the key).

    Records go through one kcat process per run of compatible records
    (a NULL value needs kcat -Z, which also turns empty keys/values into
    NULL, so those go in separate runs); every run is acknowledged before
    the next starts, so the order is kept. Delimiters are bytes that occur
    in no record of the run, so any content (newlines, tabs, NUL) survives.

    kcat cannot send a NULL key with an empty value, nor an empty key with
    a NULL value: those raise ValueError. Raises HarnessError if kcat fails
    (e.g. every broker down), Timeout after ``timeout`` s."""
    recs = []
    for r in records:
        if isinstance(r, dict):
            r = event_record(r)
        k, v = r
        recs.append((_to_bytes(k), _to_bytes(v)))

    runs = []
    cur, mode = [], None  # mode: True = needs -Z, False = must not use -Z
    for k, v in recs:
        if k is None and v == b"":
            # An empty chunk is skipped by kcat, and with -Z it would be NULL.
            raise ValueError("kcat cannot produce a NULL key with an empty value")
        if k == b"" and v is None:
            raise ValueError("kcat cannot produce an empty key with a NULL value")
        need_z = v is None
        forbid_z = v == b"" or k == b""
        want = True if need_z else (False if forbid_z else None)
        if want is not None and mode is not None and want != mode:
            runs.append((mode, cur))
            cur, mode = [], None
        if want is not None:
            mode = want
        cur.append((k, v))
    if cur:
        runs.append((bool(mode), cur))

    deadline = time.monotonic() + timeout
    common = ["-b", bootstrap, "-t", topic, "-m", "10"]
    if partition is not None:
        common += ["-p", str(int(partition))]
    for name, val in (headers or {}).items():
        common += ["-H", name if val is None else "%s=%s" % (name, val)]
    for use_z, run in runs:
        _produce_run(topic, run, use_z, common, deadline)
    return len(recs)


def _produce_run(topic, run, use_z, common, deadline):
    """One kcat -P process for ``run`` (or one per record if no delimiter
    byte is free, or a whole-file record as the last resort)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout("produce to %s: out of time" % topic)
    argv = [_kcat(), "-P"] + common + [
        "-X", "message.timeout.ms=%d" % max(1000, int((left - 1) * 1000))]
    everything, key_bad = set(), set()
    for k, v in run:
        everything.update(k or b"")
        everything.update(v or b"")
        key_bad.update(k or b"")
        if k is None:
            key_bad.update(v or b"")
    d = _pick_byte(everything, 0x1E)
    kd = _pick_byte(key_bad | ({d} if d is not None else set()), 0x1F)
    if d is not None and kd is not None:
        chunks = []
        for k, v in run:
            if k is None and v is None:
                chunks.append(bytes([kd]))  # empty key + empty value, both NULL by -Z
            else:
                chunks.append((b"" if k is None else k + bytes([kd])) + (v or b""))
            chunks.append(bytes([d]))
        argv += ["-D", "\\x%02x" % d, "-K", "\\x%02x" % kd] + (["-Z"] if use_z else [])
        _kcat_run(argv, b"".join(chunks), left, "produce to %s" % topic)
        return
    if len(run) > 1:
        for rec in run:
            _produce_run(topic, [rec], use_z, common, deadline)
        return
    # One record using every byte value: send its value as a whole file
    # (so it is not empty, which kcat would skip).
    k, v = run[0]
    if k is not None and b"\0" in k:
        raise ValueError("cannot produce a key containing NUL together with every byte value")
    with tempfile.NamedTemporaryFile(prefix="bwt-rec-") as f:
        f.write(v)
        f.flush()
        if k is not None:
            argv += ["-k", k.decode("utf-8", "surrogateescape")]
        _kcat_run(argv + [f.name], None, left, "produce to %s" % topic)


def _message(obj):
    flat = obj.get("headers") or []
    pairs = list(zip(flat[0::2], flat[1::2]))
    return {
        "topic": obj.get("topic"),
        "partition": obj.get("partition"),
        "offset": obj.get("offset"),
        "key": obj.get("key"),
        "value": obj.get("payload"),
        "headers": dict(pairs),
        "header_list": pairs,
        "timestamp": obj.get("ts"),
    }


def _consume_once(bootstrap, topic, timeout, partition, offset):
    # kcat -e stops a partition at its first end-of-partition event, and
    # librdkafka reports that only for a fetch that came back empty. With
    # the default fetch.wait.max.ms (500) the broker holds each fetch until
    # new data arrives, so a partition written to more often than every
    # 500 ms never reports its end and kcat never exits (seen on CI with
    # results flowing at 200 a second). A 10 ms wait needs only a 10 ms gap.
    argv = [_kcat(), "-C", "-b", bootstrap, "-t", topic, "-o", str(offset), "-e", "-J",
            "-q", "-m", "5", "-X", "fetch.wait.max.ms=10"]
    if partition is not None:
        argv += ["-p", str(int(partition))]
    r = _kcat_run(argv, None, timeout, "consume %s" % topic)
    msgs = []
    for line in r.stdout.decode("utf-8", "surrogateescape").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            msgs.append(_message(json.loads(line)))
        except ValueError:
            raise HarnessError("consume %s: unparsable kcat line %r" % (topic, line[:200]))
    msgs.sort(key=lambda m: (m["partition"], m["offset"]))
    return msgs


def consume(bootstrap, topic, count=None, timeout=30, partition=None,
            offset="beginning", interval=0.3):
    """Read ``topic`` (one partition if given) from ``offset`` to its end
    with kcat -C -e -J and return the records, sorted by (partition,
    offset), as dicts::

        {"topic", "partition", "offset", "key", "value", "headers",
         "header_list", "timestamp"}

    key/value: str or None (NULL); bytes that are not UTF-8 come back as
    surrogateescape characters. headers: ``{name: value}`` (last one wins;
    value None = NULL header); header_list keeps every (name, value).

    Without ``count``: one pass. With ``count``: read again every
    ``interval`` s until at least ``count`` records are there (kcat
    failures, e.g. a topic not yet created, are retried); raises Timeout
    after ``timeout`` s, with the last records read in ``exc.partial``."""
    deadline = time.monotonic() + timeout
    if count is None:
        return _consume_once(bootstrap, topic, max(1.0, timeout), partition, offset)
    msgs, last_err = [], None
    while True:
        left = deadline - time.monotonic()
        try:
            msgs = _consume_once(bootstrap, topic, max(1.0, left), partition, offset)
            last_err = None
            if len(msgs) >= count:
                return msgs
        except HarnessError as e:
            last_err = e
        left = deadline - time.monotonic()
        if left <= 0:
            exc = Timeout("%d of %d records on %s after %ss%s" % (
                len(msgs), count, topic, timeout,
                "" if last_err is None else " (last error: %s)" % last_err))
            exc.partial = msgs
            raise exc
        time.sleep(min(interval, left))


# ---------------------------------------------------------------------------
# Small helpers


def openssl(*args):
    """Run openssl with ``args``; CalledProcessError when it fails."""
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


def make_ca(d, name):
    """A self-signed test CA in directory ``d``: (key path, cert path).
    With the extensions a strict verifier wants (Python 3.13 sets
    VERIFY_X509_STRICT by default: a CA without keyUsage is refused)."""
    key, pem = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash")
    return key, pem


def make_cert(d, ca, name, san):
    """A certificate for ``san`` (e.g. "DNS:localhost,IP:127.0.0.1")
    signed by ``ca`` (make_ca's pair): (cert path, key path); the key is
    unencrypted PKCS#8. Strict verifiers want the authority key id."""
    key, csr, pem = (os.path.join(d, name + x) for x in (".key", ".csr", ".pem"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid:always\n" % san)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    openssl("x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
            "-out", pem, "-days", "2", "-extfile", ext)
    return pem, key


def wait_until(pred, timeout=30, interval=0.1, desc=None):
    """Call ``pred()`` every ``interval`` s until it returns something truthy
    and return that; raise Timeout (message ``desc``) after ``timeout`` s.
    ``pred`` is always called at least once and once more at the end."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("%s not met within %ss" % (desc or getattr(pred, "__name__", "condition"),
                                                    timeout))
        time.sleep(min(interval, left))


def results_by_event(results):
    """Group result records by eventId.

    ``results``: records from consume() (their ``value`` is parsed as
    JSON), or JSON strings/bytes, or already parsed dicts. Returns
    ``{eventId: [result dict, ...]}`` in input order; values that are not
    JSON objects with an eventId are listed under None."""
    out = {}
    for r in results:
        val = r["value"] if isinstance(r, dict) and "value" in r and "offset" in r else r
        parsed = None
        if isinstance(val, (str, bytes)):
            try:
                parsed = json.loads(val)
            except ValueError:
                parsed = None
        elif isinstance(val, dict):
            parsed = val
        eid = parsed.get("eventId") if isinstance(parsed, dict) else None
        out.setdefault(eid, []).append(parsed if isinstance(parsed, dict) else val)
    return out


_LOGFMT_ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def parse_logfmt(line):
    """Parse one logfmt line (``key=value key="quoted \\"value\\"" flag``)
    into a dict of str; a bare key maps to "" (use ``in``)."""
    out = {}
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and line[j] not in " \t=":
            j += 1
        key = line[i:j]
        if j < n and line[j] == "=":
            j += 1
            if j < n and line[j] == '"':
                j += 1
                buf = []
                while j < n and line[j] != '"':
                    if line[j] == "\\" and j + 1 < n:
                        buf.append(_LOGFMT_ESC.get(line[j + 1], "\\" + line[j + 1]))
                        j += 2
                    else:
                        buf.append(line[j])
                        j += 1
                j += 1  # closing quote
                val = "".join(buf)
            else:
                k = j
                while j < n and line[j] not in " \t":
                    j += 1
                val = line[k:j]
        else:
            val = ""
        if key:
            out[key] = val
        i = j
    return out
