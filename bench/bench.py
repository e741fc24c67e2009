#!/usr/bin/python3
"""bwprovd benchmark: throughput, latency, memory and CPU cost per event.

    /usr/bin/python3 bench/bench.py [--smoke] [--out DIR] [--build DIR]
                                    [--reps N] [--only a,b] [--no-profile]

Runs the real bwprovd binary on loopback against the librdkafka mock cluster
(tests/kafka/mockkafka) and the Webex API simulator (tests/sim/websim),
through the integration-test harness (tests/lib/bwtest.py), and writes
DIR/results.json, DIR/throughput.png (or .svg) and DIR/sweep.dat. `make
bench` builds build-release (CMAKE_BUILD_TYPE=Release) and runs this.
`--smoke` is the CTest version (label "bench"): every scenario, tiny, end to
end, then a check that results.json has every field.

Scenarios (each repeated --reps times, default 3; median, min and max):

* simulator_capacity: wrk (one thread) POSTing new workspaces to websim at
  every latency x connection count of the sweep, so a daemon result near the
  simulator's ceiling is flagged ("sim_limited") instead of being reported
  as the daemon's.
* latency_sweep: simulator latency x webex.max_in_flight. Throughput is end
  to end: N provision events with distinct userIds are produced to a running
  daemon in one go (kcat); the time runs from the first event's Kafka
  timestamp to the last result's Kafka timestamp (the daemon's producer sets
  it when it hands the record to librdkafka, about a millisecond before the
  broker acknowledges it). Completion is detected by polling the simulator's
  stats and the results topic's end offsets; the results of the run are then
  read back and counted. Ratio to the bound min(max_in_flight / latency,
  zero-latency capacity), the capacity being the best median at latency 0.
* cpu_cost: user+sys CPU of the bwprovd process (from /proc/PID/stat)
  between the first produce and the last result, per event, at latency 0,
  over HTTP and HTTPS (a CA and certificate made with openssl at run time).
  Connections the daemon opened to the simulator are counted by sampling its
  sockets (and, with perf, its connect() calls) to show connection reuse.
  With perf (full mode, unless --no-profile) one extra run per protocol is
  profiled (perf record -g) and the top symbols are kept. bench/curlfloor
  then makes the same requests with libcurl alone (same options, same
  in-flight limit, same simulator): the floor of the daemon's cost.
* memory.backlog: a backlog of events produced before the daemon starts
  (drained from READY on); peak RSS = VmHWM of the process at the end.
* memory.state_table: state records in bwprovd's format produced straight
  to a state topic, then a daemon started on it and one on an empty state
  topic at the same time; load time = start until "state table caught up"
  (includes the consumer-group join), bytes per workspace = (VmRSS with -
  VmRSS without) / records, a second after both caught up.
* memory.state_table_real_kafka: the same load from one Apache Kafka
  broker (tests/lib/realkafka.py, the state topic compacted, 12
  partitions): load time and peak RSS (VmHWM) with the table and without.
* memory.subscribers_pending: 10,000 subscriber provisions pending at once
  (the simulator provisions each 20 s after its POST), polled through
  webex.rate_limit 1,000/s: the daemon's peak RSS while all are pending,
  and the most requests in any second.
* event_latency: a paced producer at 50% of the measured capacity at the
  latency point (50 ms x 256); per event: result timestamp - event
  timestamp - time the simulator held the request (doneUs - recvUs from its
  request log, matched by TrackingID), i.e. the daemon's own overhead
  including Kafka consumption and result publication.
* rate_limit: webex.rate_limit 50 and 500/s against a backlog; request rate
  measured from the simulator's recvUs; then the simulator's rateLimit fault
  below the configured rate to provoke 429s: violations.retryAfter must be 0.
* head_of_line: throughput of the other users while 5% of users get 503
  for every request (simulator script entries per userId), against a
  baseline run without stuck users on the same daemon.

Every scenario records the machine (cores, CPU model) and, per run, the CPU
used by the daemon, the simulator, the mock cluster, the harness itself (this
process and the kcat/wrk runs it waited for) and everything else on the
machine (other users' jobs: "other_cpu_s").

The librdkafka mock cluster keeps only about 5 MB per partition (older
records are dropped), so the topics here have 16 partitions, the backlog
topic 32 and the big state topic 256.
"""

import argparse
import base64
import collections
import datetime
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import bwtest  # noqa: E402
import realkafka  # noqa: E402

EVENTS, RESULTS, STATE = bwtest.TOPIC_EVENTS, bwtest.TOPIC_RESULTS, bwtest.TOPIC_STATE
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: kafka.consumer.fetch.wait.max.ms of every daemon here. The librdkafka mock
#: cluster answers a Fetch that finds no data only after the whole wait, even
#: when records arrive meanwhile (a real broker answers as soon as they do), so
#: the default 500 ms would add up to half a second to the start of every
#: run. The event-latency scenario uses 1 ms (LATENCY_FETCH_WAIT_MS).
FETCH_WAIT_MS = 10
LATENCY_FETCH_WAIT_MS = 1

#: The issue's targets: (key, description, unit, comparison, limit).
TARGETS = [
    ("ratio_50ms_256", "throughput / bound at 50 ms x 256 in flight", "ratio", ">=", 0.90),
    ("ratio_200ms_1024", "throughput / bound at 200 ms x 1024 in flight", "ratio", ">=", 0.90),
    ("cpu_us_per_event_http", "CPU per event, HTTP, latency 0", "us", "<=", 40.0),
    ("cpu_us_per_event_https", "CPU per event, HTTPS, latency 0", "us", "<=", 40.0),
    ("backlog_peak_rss_mib", "peak RSS with the event backlog", "MiB", "<=", 64.0),
    ("state_bytes_per_workspace", "state table bytes per workspace", "B", "<=", 150.0),
    ("latency_p99_overhead_ms", "p99 own overhead per event", "ms", "<=", 5.0),
    ("rate_limit_retry_after_violations", "requests inside Retry-After windows", "count", "<=", 0),
]

FULL = dict(
    reps=3,
    latencies=[0, 10, 50, 200],
    mifs=[16, 64, 256, 1024],
    run_s=6.0,            # aimed length of one throughput run
    min_events=300,
    max_events=100000,
    cap_guess=4000.0,     # events/s before the first zero-latency run
    simcap_s=(2, 2),      # wrk seconds at latency 0 / other latencies
    simcap_reps0=3,       # wrk repetitions at latency 0
    simcap_latencies=None,  # None: the sweep's
    cpu_mif=256,
    cpu_s=8.0,
    backlog_events=200000,
    backlog_mif=None,     # None: the default webex.max_in_flight (64)
    state_records=1000000,
    state_partitions=256,
    state_partitions_real=12,
    subscriber_pending=10000,
    subscriber_rate=1000,
    # Long enough for all POSTs to go out while the first ones are still
    # pending: 10,000 POSTs and their polls (2, 6, 14, 30 s after each)
    # share the 1,000/s limit, about 40 s in all. At 20 s the first
    # subscribers were final before the last POST.
    subscriber_delay_ms=120000,
    latency_point=(50, 256),
    latency_s=10.0,
    latency_warmup_s=1.0,
    rate_limits=[50, 500],
    rate_s=5.0,
    rate429=dict(configured=500, sim_per_s=200, events=1500),
    hol_point=(50, 256),
    hol_s=6.0,
    hol_stuck_share=0.05,
)

SMOKE = dict(
    reps=1,
    latencies=[0, 10],
    mifs=[64],
    run_s=0.5,
    min_events=60,
    max_events=400,
    cap_guess=400.0,
    simcap_s=(1, 1),
    simcap_reps0=1,
    simcap_latencies=[0],
    cpu_mif=64,
    cpu_s=0.5,
    backlog_events=2000,
    backlog_mif=None,
    state_records=5000,
    state_partitions=16,
    state_partitions_real=4,
    subscriber_pending=300,
    subscriber_rate=200,
    subscriber_delay_ms=3000,
    latency_point=(10, 64),
    latency_s=1.5,
    latency_warmup_s=0.2,
    rate_limits=[50, 200],
    rate_s=0.6,
    rate429=dict(configured=100, sim_per_s=40, events=60),
    hol_point=(10, 64),
    hol_s=0.5,
    hol_stuck_share=0.05,
)


# ---------------------------------------------------------------------------
# Small helpers

_T0 = time.monotonic()


def say(msg, *args):
    print("[%7.1fs] %s" % (time.monotonic() - _T0, msg % args if args else msg), flush=True)


def spread(values):
    """{"median", "min", "max", "n"} of the numbers in values (None when
    there are none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals)}


def pctl(sorted_vals, p):
    """p-th percentile (nearest rank) of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def rnd(x, nd=3):
    if isinstance(x, float):
        return round(x, nd)
    if isinstance(x, dict):
        return {k: rnd(v, nd) for k, v in x.items()}
    if isinstance(x, list):
        return [rnd(v, nd) for v in x]
    return x


def run_cmd(argv, timeout=60, input=None, check=True):
    try:
        r = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise bwtest.Timeout("%s did not finish within %ss" % (argv[0], timeout))
    if check and r.returncode != 0:
        raise bwtest.HarnessError("%s exit %d: %s" % (
            " ".join(argv[:3]), r.returncode, r.stderr.decode("utf-8", "replace")[-1500:]))
    return r


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def wait_for(pred, timeout, interval, desc):
    return bwtest.wait_until(pred, timeout=timeout, interval=interval, desc=desc)


def raise_nofile():
    """Children inherit it: 1024 connections in flight need more than the
    usual soft limit of 1024 descriptors."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass


# ---------------------------------------------------------------------------
# The machine and CPU accounting


def machine_info():
    model, mhz = None, None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k = k.strip()
                if k == "model name" and model is None:
                    model = v.strip()
                elif k == "cpu MHz" and mhz is None:
                    mhz = float(v.strip())
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    u = os.uname()
    return {"cores": os.cpu_count(), "cpu_model": model, "cpu_mhz": mhz,
            "memory_gib": round(mem / 2 ** 30, 1) if mem else None,
            "kernel": u.release, "arch": u.machine, "hostname": u.nodename}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_cpu(pid):
    """user+sys CPU seconds of pid (every thread), None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except (OSError, TypeError):
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem(pid):
    """{"rss": bytes, "hwm": bytes} from /proc/PID/status."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    out["hwm"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def system_busy():
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class CpuMeter:
    """CPU seconds of named processes and of the whole machine between
    start() and stop()."""

    def __init__(self, pids):
        self.pids = {k: v for k, v in pids.items() if v}

    @staticmethod
    def _harness():
        """CPU of this process (every thread) and of the children it reaped
        (kcat, wrk, perf, gdb): the harness's own share."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = {k: proc_cpu(p) for k, p in self.pids.items()}
        self.h0 = self._harness()
        self.s0 = system_busy()
        return self

    def stop(self):
        wall = time.monotonic() - self.t0
        c1 = {k: proc_cpu(p) for k, p in self.pids.items()}
        s1 = system_busy()
        out = {"wall_s": wall}
        ours = 0.0
        for k in self.pids:
            if self.c0[k] is not None and c1[k] is not None:
                out[k + "_cpu_s"] = c1[k] - self.c0[k]
                ours += c1[k] - self.c0[k]
        harness = self._harness() - self.h0
        out["harness_cpu_s"] = harness
        busy = s1[0] - self.s0[0]
        out["machine_busy_cpu_s"] = busy
        # everything else: other users' jobs (and kcat runs still going)
        out["other_cpu_s"] = max(0.0, busy - ours - harness)
        out["machine_idle_share"] = max(0.0, 1 - busy / (wall * (os.cpu_count() or 1))) \
            if wall > 0 else None
        return out


class RssSampler(threading.Thread):
    """VmRSS of pid every interval s (for the time series and the peak)."""

    def __init__(self, pid, interval=0.25):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples = []
        self._halt = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self._halt.is_set():
            m = proc_mem(self.pid)
            if "rss" in m:
                self.samples.append((round(time.monotonic() - t0, 2), m["rss"]))
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)
        return self.samples


class ConnSampler(threading.Thread):
    """Distinct TCP connections from pid to port, seen by sampling the
    process's sockets every interval s (a connection that lives shorter
    than that can be missed; with reuse they live for the whole run)."""

    def __init__(self, pid, port, interval=0.1):
        super().__init__(daemon=True)
        self.pid, self.port, self.interval = pid, port, interval
        self.seen = set()
        self.initial = None
        self.max_open = 0
        self._halt = threading.Event()

    def _tcp_inodes(self):
        out = {}
        for name in ("tcp", "tcp6"):
            try:
                with open("/proc/%d/net/%s" % (self.pid, name)) as f:
                    next(f)
                    for line in f:
                        parts = line.split()
                        if len(parts) > 9:
                            rport = int(parts[2].rsplit(":", 1)[1], 16)
                            if rport == self.port:
                                out[parts[9]] = True
            except (OSError, StopIteration, ValueError):
                pass
        return out

    def run(self):
        fd_dir = "/proc/%d/fd" % self.pid
        while not self._halt.is_set():
            socks = set()
            try:
                for fd in os.listdir(fd_dir):
                    try:
                        link = os.readlink(os.path.join(fd_dir, fd))
                    except OSError:
                        continue
                    if link.startswith("socket:["):
                        socks.add(link[8:-1])
            except OSError:
                return
            tcp = self._tcp_inodes()
            mine = {s for s in socks if s in tcp}
            if self.initial is None:
                self.initial = set(mine)
            self.max_open = max(self.max_open, len(mine))
            self.seen |= mine
            self._halt.wait(self.interval)

    def stop(self):
        """Connections opened while it ran (not open at its first sample)."""
        self._halt.set()
        self.join(5)
        return len(self.seen - (self.initial or set()))


class PerfStat:
    """perf stat counting the connect() calls of pid, when perf works."""

    def __init__(self, ctx, pid):
        self.proc = None
        self.path = None
        if not ctx.perf:
            return
        fd, self.path = tempfile.mkstemp(prefix="bench-perfstat-")
        os.close(fd)
        self.proc = subprocess.Popen(
            [ctx.perf, "stat", "-x", ",", "-e", "syscalls:sys_enter_connect", "-p", str(pid),
             "-o", self.path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if not self.proc:
            return None
        try:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            self.proc.kill()
            self.proc.wait()
        try:
            with open(self.path) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) > 2 and "sys_enter_connect" in parts[2]:
                        return int(parts[0]) if parts[0].isdigit() else None
        except OSError:
            pass
        finally:
            os.unlink(self.path)
        return None


# ---------------------------------------------------------------------------
# Kafka through kcat


class Kafka:
    def __init__(self, ctx, bootstrap, topics):
        self.ctx, self.bootstrap, self.topics = ctx, bootstrap, dict(topics)

    def end_offsets(self, topic):
        n = self.topics[topic]
        argv = [self.ctx.kcat, "-Q", "-b", self.bootstrap]
        for p in range(n):
            argv += ["-t", "%s:%d:-1" % (topic, p)]
        out = run_cmd(argv, timeout=30).stdout.decode()
        offs = [None] * n
        for line in out.splitlines():
            m = re.match(r"\S+ \[(\d+)\] offset (-?\d+)", line.strip())
            if m and int(m.group(1)) < n:
                offs[int(m.group(1))] = int(m.group(2))
        if None in offs:
            raise bwtest.HarnessError("kcat -Q %s: %r" % (topic, out[-500:]))
        return offs

    def low_offsets(self, topic):
        n = self.topics[topic]
        argv = [self.ctx.kcat, "-Q", "-b", self.bootstrap]
        for p in range(n):
            argv += ["-t", "%s:%d:-2" % (topic, p)]
        out = run_cmd(argv, timeout=30).stdout.decode()
        return [int(m.group(1)) for m in re.finditer(r"offset (-?\d+)", out)]

    def count_since(self, topic, base):
        return sum(self.end_offsets(topic)) - sum(base)

    def read_since(self, topic, base, fmt, timeout=120):
        """(partition, offset, fields...) of the records of topic at or after
        base[partition], fmt being kcat -f fields joined by tabs."""
        end = self.end_offsets(topic)
        k = max(e - b for e, b in zip(end, base))
        if k <= 0:
            return []
        argv = [self.ctx.kcat, "-C", "-b", self.bootstrap, "-t", topic, "-o", str(-k), "-e",
                "-q", "-X", "fetch.wait.max.ms=%d" % FETCH_WAIT_MS,
                "-f", "%p\t%o\t" + fmt + "\n"]
        out = run_cmd(argv, timeout=timeout).stdout.decode("utf-8", "replace")
        recs = []
        for line in out.split("\n"):
            if not line:
                continue
            parts = line.split("\t")
            p, o = int(parts[0]), int(parts[1])
            if base[p] <= o < end[p]:
                recs.append([p, o] + parts[2:])
        return recs

    def produce(self, topic, data, headers=None, timeout=300, extra=()):
        """data: bytes of "key\\x1fvalue\\n" records, or an iterable of such
        chunks. Waits until kcat delivered every record."""
        argv = [self.ctx.kcat, "-P", "-b", self.bootstrap, "-t", topic, "-K", "\\x1f",
                "-X", "queue.buffering.max.messages=1000000"] + list(extra)
        for k, v in (headers or {}).items():
            argv += ["-H", "%s=%s" % (k, v)]
        with tempfile.TemporaryFile() as errf:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=errf)
            try:
                chunks = [data] if isinstance(data, (bytes, bytearray)) else data
                for c in chunks:
                    write_all(p.stdin.fileno(), c)
                p.stdin.close()
                p.wait(timeout)
            except BaseException:
                p.kill()
                p.wait()
                raise
            errf.seek(0)
            err = errf.read()
        if p.returncode != 0:
            raise bwtest.HarnessError("kcat produce to %s: exit %d: %s" % (
                topic, p.returncode, err.decode("utf-8", "replace")[-1000:]))

    def produce_paced(self, topic, lines, rate, timeout=300):
        """One kcat fed through a pipe, one record every 1/rate s (in 1 ms
        ticks), linger 0: each record's Kafka timestamp is when it was
        due."""
        argv = [self.ctx.kcat, "-P", "-b", self.bootstrap, "-t", topic, "-K", "\\x1f",
                "-X", "linger.ms=0"]
        errf = tempfile.TemporaryFile()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=errf)
        fd = p.stdin.fileno()
        n, i = len(lines), 0
        t0 = time.monotonic()
        try:
            while i < n:
                due = min(n, int((time.monotonic() - t0) * rate) + 1)
                if due > i:
                    write_all(fd, b"".join(lines[i:due]))
                    i = due
                if time.monotonic() - t0 > timeout:
                    raise bwtest.Timeout("paced produce ran out of time")
                time.sleep(0.001)
            p.stdin.close()
            p.wait(60)
        except BaseException:
            p.kill()
            p.wait()
            raise
        finally:
            errf.seek(0)
            err = errf.read()
            errf.close()
        if p.returncode != 0:
            raise bwtest.HarnessError("kcat paced produce: exit %d: %s" % (
                p.returncode, err.decode("utf-8", "replace")[-1000:]))
        return time.monotonic() - t0


# ---------------------------------------------------------------------------
# Records

_PROV = ('{"eventId":"%s","type":"workspace.provision","occurredAt":"%s",'
         '"workspace":{"provisioningId":"ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVm%s",'
         '"userId":"%s","spEnterpriseId":"Reseller1+acme","displayName":"Room %d",'
         '"primaryPhoneNumber":"+1-240-555-%04d","extension":"5%04d"}}')


def user_id(tag, i):
    return "%08d.%s@sp.com" % (i, tag)


def event_id(tag, i):
    return "%s-%08d" % (tag, i)


def provision_lines(tag, n, start=0):
    """Kafka records (key\\x1fvalue\\n, bytes) of n provision events with
    distinct userIds, about 330 bytes each."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for i in range(start, start + n):
        u = user_id(tag, i)
        out.append(("%s\x1f" % u + _PROV % (event_id(tag, i), now, "%s%08d" % (tag, i), u, i,
                                             i % 10000, i % 10000) + "\n").encode())
    return out


_WS_ID = "ciscospark://us/PLACE/6f1c2a9e-3b7d-4c1e-9a2b-%012d"
_STATE = ('{"workspaceId":"%s","userId":"%s","spEnterpriseId":"Reseller1+acme",'
          '"provisioningId":"ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVmNTk0LTViNTEtNDdi%08d",'
          '"displayName":"Room %d","primaryPhoneNumber":"+1-240-555-%04d","extension":"5%04d",'
          '"eventId":"b6d7e0c2-1f7a-4c35-9d38-%012d","source":{"topic":"%s","partition":%d,'
          '"offset":%d},"updatedAt":"2026-11-26T10:00:00.412Z"}')


def state_user(i):
    return "%08d@sp.com" % (10000000 + i)


def state_chunk(i0, i1):
    """State records (SPEC section 4, the daemon's own layout) for users
    i0..i1-1: key userId, workspaceId shaped like Webex's (base64url of
    ciscospark://us/PLACE/<uuid>, 78 characters)."""
    out = []
    for i in range(i0, i1):
        u = state_user(i)
        ws = base64.urlsafe_b64encode((_WS_ID % i).encode()).decode().rstrip("=")
        out.append("%s\x1f%s\n" % (u, _STATE % (ws, u, i, i, i % 10000, i % 10000,
                                                   i, EVENTS, i % 16, i // 16)))
    return "".join(out).encode()


# ---------------------------------------------------------------------------
# A rig: mock cluster + simulator (+ daemons)


class Rig:
    """MockKafka + WebSim, and bwprovd daemons started on them."""

    def __init__(self, ctx, name, mif=None, tls=False, partitions=16, topics=None,
                 config=None, real=False):
        self.ctx, self.name, self.mif, self.tls = ctx, name, mif, tls
        if real:  # Apache Kafka (tests/lib/realkafka.py), one broker
            self.mk = realkafka.RealKafka(partitions=partitions, topics=topics)
        else:
            self.mk = bwtest.MockKafka(partitions=partitions, topics=topics,
                                       binary=ctx.mockkafka)
        self.sim = bwtest.WebSim(binary=ctx.websim, tls=ctx.tls_files() if tls else None,
                                 args=["--seed", "1"])
        self.config = dict(config or {})
        self.daemons = []
        self.d = None
        self.kafka = None
        self.shared = False

    def start(self, daemon=True, wait=True):
        """Start the cluster and the simulator, and (daemon) bwprovd; with
        wait, also wait until it consumes and warm it up (else call
        finish_start() later: processes are started here, in the main
        thread, as bwtest requires)."""
        try:
            self.mk.start()
            self.sim.start()
            self.kafka = Kafka(self.ctx, self.mk.bootstrap, self.mk.topics)
            if daemon:
                self.d = self.spawn()
                if wait:
                    self.finish_start()
        except BaseException:
            self.stop()
            raise
        return self

    def finish_start(self):
        try:
            self.wait_consuming(self.d)
            self.warm_up()
        except BaseException:
            self.stop()
            raise
        return self

    def daemon_config(self, extra=None):
        cfg = {"shutdown.grace_ms": 500, "log.level": "info",
               "kafka.consumer.fetch.wait.max.ms": FETCH_WAIT_MS}
        if self.mif:
            cfg["webex.max_in_flight"] = self.mif
        if self.tls:
            cfg["webex.ca_file"] = self.ctx.tls_files()[2]
        cfg.update(self.config)
        cfg.update(extra or {})
        return cfg

    def spawn(self, extra=None):
        d = bwtest.Daemon(self.mk.bootstrap, self.sim, config=self.daemon_config(extra),
                          binary=self.ctx.bwprovd)
        d.start()
        d.started_wall = time.time()
        self.daemons.append(d)
        return d

    def wait_consuming(self, d, timeout=180):
        """Seconds from start to "state table caught up; consuming" (from
        the log line's own ts=, so a late look does not count)."""
        d.wait_ready(timeout)
        line = d.wait_log("state table caught up", timeout=timeout, interval=0.05)
        ts = bwtest.parse_logfmt(line).get("ts")
        try:
            t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            return t - d.started_wall
        except (TypeError, ValueError):
            return time.monotonic() - d.started_at

    def warm_up(self):
        """A few events so connections exist before anything is measured."""
        n = max(20, min(2000, 2 * (self.mif or 64)))
        self.sim.faults({"clear": True})
        tag = self.ctx.tag("warm")
        ok0 = ok_count(self.sim)
        self.kafka.produce(EVENTS, provision_lines(tag, n))
        wait_for(lambda: ok_count(self.sim) - ok0 >= n, 120, 0.1, "warm-up requests")

    def pids(self, d=None):
        d = d or self.d
        return {"bwprovd": d.pid if d else None, "websim": self.sim.proc.pid,
                "mockkafka": getattr(getattr(self.mk, "proc", None), "pid", None)}

    def stop(self):
        for d in self.daemons:
            try:
                if d.running():
                    d.stop(timeout=30)
            except Exception as e:  # a benchmark keeps going
                say("%s: stopping bwprovd: %s", self.name, e)
            d.close()
        self.sim.stop()
        self.mk.stop()

    def stop_daemons(self):
        """Stop the daemons spawned so far (the cluster and simulator stay)."""
        for d in self.daemons:
            d.stop(timeout=30)
            d.close()
        self.daemons = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.shared:
            self.stop()
        return False


def ok_count(stats):
    if not isinstance(stats, dict):  # a simulator
        stats = sim_call(stats.stats)
    by = stats.get("byStatus") or {}
    return sum(int(v) for k, v in by.items() if k in ("200", "201", "202", "204"))


def sim_call(fn, *args, tries=4):
    """A simulator admin call, retried: under full load a call can time out."""
    for i in range(tries):
        try:
            return fn(*args)
        except bwtest.HarnessError as e:
            if i == tries - 1 or "HTTP 4" in str(e):
                raise
            say("simulator admin call failed (%s); retrying", str(e)[:120])
            time.sleep(0.5 * (i + 1))


def requests_since(sim, seq):
    """Simulator request records after seq (API requests only), fetched in
    pages of 5000."""
    out = []
    for _ in range(100000):
        page = sim_call(sim.requests, seq, 5000)
        reqs = page.get("requests") or []
        out.extend(r for r in reqs if r.get("path", "").startswith("/v1/broadworks"))
        nxt = page.get("next", seq)
        if not reqs or nxt == seq:
            break
        seq = nxt
    return out


def last_seq(sim):
    """The newest request record's seq (nothing is in flight when this is
    called). The rigs never reset their simulator, so seq numbers run with
    the request count; the page asked for holds the last few records."""
    s = int(sim_call(sim.stats)["requests"])
    reqs = sim_call(sim.requests, max(0, s - 1)).get("requests") or []
    return max([s] + [r["seq"] for r in reqs])


# ---------------------------------------------------------------------------
# One throughput run


def throughput_run(ctx, rig, n, tag, n_expected=None, lines=None, timeout=None):
    """Produce n provision events (distinct users) to rig's running daemon in
    one go and wait until n_expected (default n) of them succeeded. Returns
    the run's measurements."""
    kafka, sim, d = rig.kafka, rig.sim, rig.d
    n_expected = n if n_expected is None else n_expected
    lines = lines if lines is not None else provision_lines(tag, n)
    base_ev = kafka.end_offsets(EVENTS)
    base_res = kafka.end_offsets(RESULTS)
    ok0 = ok_count(sim)
    conns = ConnSampler(d.pid, int(sim.url.rsplit(":", 1)[1]))
    conns.start()
    wait_for(lambda: conns.initial is not None, 10, 0.01, "first socket sample")
    perf = PerfStat(ctx, d.pid)
    cpu = CpuMeter(rig.pids()).start()
    expect_s = n / max(1.0, ctx.cap_est)
    timeout = timeout or max(60.0, 6 * expect_s)
    kafka.produce(EVENTS, b"".join(lines))
    wait_for(lambda: ok_count(sim) - ok0 >= n_expected, timeout, 0.1,
             "%d successful requests" % n_expected)
    wait_for(lambda: kafka.count_since(RESULTS, base_res) >= n_expected, 60, 0.1,
             "%d results" % n_expected)
    usage = cpu.stop()
    connects = perf.stop()
    new_conns = conns.stop()
    ev = kafka.read_since(EVENTS, base_ev, "%T")
    res = kafka.read_since(RESULTS, base_res, "%T\t%s")
    first_ev = min(int(r[2]) for r in ev)
    ok_ts = [int(r[2]) for r in res if '"outcome":"succeeded"' in r[3]]
    span = (max(ok_ts) - first_ev) / 1000.0 if ok_ts else None
    out = {
        "events": n,
        "results": len(res),
        "succeeded": len(ok_ts),
        "e2e_s": span,
        "events_per_s": len(ok_ts) / span if span else None,
        "cpu": usage,
        "daemon_cpu_us_per_event": usage.get("bwprovd_cpu_s", 0) / len(ok_ts) * 1e6
        if ok_ts else None,
        "sim_connections_new": new_conns,
        "sim_connections_max_open": conns.max_open,
        "connect_calls": connects,
    }
    if len(ok_ts) < n_expected:
        out["error"] = "only %d of %d events succeeded" % (len(ok_ts), n_expected)
    return out


# ---------------------------------------------------------------------------
# Scenarios


def scenario_simcap(ctx):
    """The simulator's own capacity: wrk at every sweep point."""
    p = ctx.p
    out = {"machine": ctx.machine, "tool": None, "method":
           "wrk -t1 -c CONNECTIONS, every request a POST creating a new workspace "
           "(bench/wrk_post.lua), against websim with the same options as in the "
           "daemon runs; wrk_requests_per_s counts 2xx answers over the whole run; "
           "requests_per_s (the capacity used for flagging) is that count at latency 0 "
           "and, with latency, the steady state (connections / mean latency, at most 1.25 x "
           "wrk's count: wrk's count includes the ramp-up of the first round trip)", "points": []}
    if not ctx.wrk:
        out["skipped"] = "wrk is not installed (apt-get install wrk)"
        return out
    out["tool"] = run_cmd([ctx.wrk, "-v"], check=False).stdout.decode().split("\n")[0].strip() \
        or "wrk"
    targets = [(lat, c, False) for lat in (p["simcap_latencies"] or p["latencies"])
               for c in p["mifs"]]
    targets.append((0, p["cpu_mif"], True))
    sims = {}
    try:
        for lat, conns, tls in targets:
            if tls not in sims:
                sims[tls] = bwtest.WebSim(binary=ctx.websim, tls=ctx.tls_files() if tls else None,
                                          args=["--seed", "1"]).start()
            sim = sims[tls]
            secs = p["simcap_s"][0] if lat == 0 else max(p["simcap_s"][1],
                                                          int(round(lat * 20 / 1000.0)))
            reps = p["simcap_reps0"] if lat == 0 else 1
            runs = []
            for _ in range(reps):
                sim.reset()
                sim.faults({"latencyMs": lat})
                r = run_cmd([ctx.wrk, "-t1", "-c", str(conns), "-d", "%ds" % secs,
                             "--timeout", "10s", "-s", os.path.join(HERE, "wrk_post.lua"),
                             sim.url + "/v1/broadworks/workspaces", "--", sim.token,
                             ctx.tag("w")], timeout=secs + 60).stdout.decode()
                m = re.search(r"WRKRESULT (.*)", r)
                if not m:
                    raise bwtest.HarnessError("wrk printed no result: %s" % r[-500:])
                f = {k: int(float(v)) for k, v in (kv.split("=") for kv in m.group(1).split())}
                good = f["requests"] - f["status_errors"]
                # wrk's count includes the ramp-up (no answer before the first
                # latency has passed); the steady state is connections / mean
                # latency (Little's law, every connection always busy)
                steady = conns / (f["mean_us"] / 1e6) if f["mean_us"] else None
                runs.append({"requests_per_s": good / (f["duration_us"] / 1e6),
                             "steady_requests_per_s": steady, "mean_ms": f["mean_us"] / 1000.0,
                             "non_2xx": f["status_errors"],
                             "socket_errors": f["connect_errors"] + f["read_errors"] +
                             f["write_errors"] + f["timeouts"],
                             "p50_ms": f["p50_us"] / 1000.0, "p99_ms": f["p99_us"] / 1000.0})
            pt = {"latency_ms": lat, "connections": conns, "tls": tls, "runs": runs,
                  "wrk_requests_per_s": spread([r["requests_per_s"] for r in runs]),
                  "requests_per_s": spread([r["requests_per_s"] if lat == 0 else
                                            min(r["steady_requests_per_s"] or 1e12,
                                                r["requests_per_s"] * 1.25)
                                            for r in runs])}
            out["points"].append(pt)
            say("simulator %s latency %3d ms, %4d connections: %.0f requests/s",
                "HTTPS" if tls else "HTTP ", lat, conns, pt["requests_per_s"]["median"])
    finally:
        for s in sims.values():
            s.stop()
    return out


def sim_capacity(ctx, lat, conns, tls=False):
    for pt in (ctx.results.get("simulator_capacity") or {}).get("points", []):
        if pt["latency_ms"] == lat and pt["connections"] == conns and pt["tls"] == tls:
            return pt["requests_per_s"]["median"]
    return None


def choose_n(ctx, lat, mif, secs=None):
    p = ctx.p
    rate = ctx.cap_est
    if lat:
        rate = min(rate, mif * 1000.0 / lat)
    n = int(rate * (secs or p["run_s"]))
    return max(p["min_events"], min(p["max_events"], n))


def scenario_sweep(ctx):
    p = ctx.p
    out = {"machine": ctx.machine, "throughput_definition":
           "events/s end to end: from the first event's Kafka timestamp (produced to a "
           "running, caught-up daemon, all N at once) to the last result's Kafka "
           "timestamp; every run's results are read back and counted",
           "points": []}
    for mif in p["mifs"]:
        with ctx.rig("sweep-%d" % mif, mif=mif, share=True) as rig:
            for lat in p["latencies"]:
                rig.sim.faults({"clear": True, "latencyMs": lat})
                runs = []
                for rep in range(p["reps"]):
                    n = choose_n(ctx, lat, mif)
                    r = throughput_run(ctx, rig, n, ctx.tag("s%d-%d-%d" % (mif, lat, rep)))
                    runs.append(r)
                    say("sweep latency %3d ms x in flight %4d, run %d: %d events, %.0f events/s "
                        "(daemon CPU %.0f%% of a core)", lat, mif, rep + 1, n,
                        r["events_per_s"] or 0,
                        100 * r["cpu"].get("bwprovd_cpu_s", 0) / r["cpu"]["wall_s"])
                pt = {"latency_ms": lat, "max_in_flight": mif, "runs": runs,
                      "events": [r["events"] for r in runs],
                      "events_per_s": spread([r["events_per_s"] for r in runs])}
                out["points"].append(pt)
                if lat == 0 and pt["events_per_s"]["median"]:
                    ctx.cap_est = max(ctx.cap_est if ctx.cap_measured else 0,
                                      pt["events_per_s"]["median"])
                    ctx.cap_measured = True
                ctx.save_partial("latency_sweep", out)
    zero = [pt["events_per_s"]["median"] for pt in out["points"]
            if pt["latency_ms"] == 0 and pt["events_per_s"]["median"]]
    cap0 = max(zero) if zero else None
    out["zero_latency_capacity"] = cap0
    for pt in out["points"]:
        lat, mif = pt["latency_ms"], pt["max_in_flight"]
        bound = cap0 if lat == 0 else min(mif * 1000.0 / lat, cap0 or float("inf"))
        pt["bound"] = bound
        pt["bound_kind"] = "capacity" if lat == 0 or bound == cap0 else "in_flight/latency"
        pt["ratio"] = spread([r["events_per_s"] / bound if r["events_per_s"] and bound else None
                              for r in pt["runs"]])
        simcap = sim_capacity(ctx, lat, mif)
        pt["sim_capacity"] = simcap
        med = pt["events_per_s"]["median"]
        pt["ratio_to_sim_capacity"] = med / simcap if simcap and med else None
        # the simulator limits a point when it cannot itself reach the bound
        # and the daemon gets within 10% of what it can do
        pt["sim_limited"] = bool(simcap and med and simcap < 0.97 * bound
                                 and med >= 0.9 * simcap)
        cpu = [r["daemon_cpu_us_per_event"] for r in pt["runs"]]
        pt["daemon_cpu_us_per_event"] = spread(cpu)
        pt["machine_idle_share"] = spread([r["cpu"].get("machine_idle_share")
                                           for r in pt["runs"]])
    return out


def cpu_runs(ctx, rig, label):
    p = ctx.p
    rig.sim.faults({"clear": True, "latencyMs": 0})
    runs = []
    for rep in range(p["reps"]):
        n = choose_n(ctx, 0, p["cpu_mif"], p["cpu_s"])
        r = throughput_run(ctx, rig, n, ctx.tag("c%s%d" % (label, rep)))
        runs.append(r)
        say("CPU %s run %d: %d events, %.1f us CPU per event, %.0f events/s, "
            "%d connections to the simulator open, %d of them new", label, rep + 1, n,
            r["daemon_cpu_us_per_event"] or 0, r["events_per_s"] or 0,
            r["sim_connections_max_open"], r["sim_connections_new"])
    total_events = sum(r["succeeded"] for r in runs)
    res = {
        "runs": runs,
        "us_per_event": spread([r["daemon_cpu_us_per_event"] for r in runs]),
        "cpu_s_per_1000_events": spread([r["daemon_cpu_us_per_event"] / 1000.0
                                         if r["daemon_cpu_us_per_event"] else None
                                         for r in runs]),
        "events_per_s": spread([r["events_per_s"] for r in runs]),
        "max_in_flight": p["cpu_mif"],
        "connections_open": max(r["sim_connections_max_open"] for r in runs),
        "connections_opened_during_runs": sum(r["sim_connections_new"] for r in runs),
        "connections_per_1000_events": 1000.0 * sum(r["sim_connections_new"] for r in runs)
        / max(1, total_events),
        "connect_calls": (sum(r["connect_calls"] for r in runs)
                          if all(r["connect_calls"] is not None for r in runs) else None),
    }
    res["curl_floor"] = curl_floor(ctx, rig)
    if ctx.profile:
        res["profile"] = profile_run(ctx, rig, label)
    return res


def curl_floor(ctx, rig):
    """libcurl alone (bench/curlfloor): the daemon's requests, same options,
    same in-flight limit, against the same simulator, nothing else; the
    daemon cannot spend less CPU per event than this."""
    if not os.access(ctx.curlfloor, os.X_OK):
        return {"skipped": "%s is not built" % ctx.curlfloor}
    n = choose_n(ctx, 0, ctx.p["cpu_mif"], ctx.p["cpu_s"])
    argv = [ctx.curlfloor, "--url", rig.sim.base_url, "--requests", str(n),
            "--in-flight", str(ctx.p["cpu_mif"]), "--token", rig.sim.token]
    if rig.tls:
        argv += ["--ca", ctx.tls_files()[2]]
    runs = []
    for rep in range(ctx.p["reps"]):
        r = run_cmd(argv + ["--tag", ctx.tag("f%d" % rep)], timeout=300, check=False)
        try:
            runs.append(json.loads(r.stdout.decode()))
        except ValueError:
            return {"error": "curlfloor: %s" % r.stderr.decode("utf-8", "replace")[-300:]}
    us = spread([x["us_per_request"] for x in runs])
    say("curl floor %s: %.1f us CPU per request (libcurl alone)",
        "https" if rig.tls else "http", us["median"] or 0)
    return {"us_per_request": us, "requests_per_s": spread([x["requests_per_s"] for x in runs]),
            "runs": runs}


def profile_run(ctx, rig, label):
    """One more run under perf record -g; the top symbols by self time."""
    data = os.path.join(ctx.out, "perf-%s.data" % label)
    for old in (data, data + ".old"):
        if os.path.exists(old):
            os.unlink(old)
    # BENCH_PERF_G="--call-graph=dwarf" gives whole stacks through libraries
    # built without frame pointers (bigger data files)
    graph = os.environ.get("BENCH_PERF_G", "-g").split()
    rec = subprocess.Popen([ctx.perf, "record"] + graph + ["-F", "999", "-p", str(rig.d.pid),
                                                           "-o", data],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        r = throughput_run(ctx, rig, choose_n(ctx, 0, ctx.p["cpu_mif"], ctx.p["cpu_s"]),
                           ctx.tag("p" + label))
    finally:
        rec.send_signal(signal.SIGINT)
        try:
            rec.wait(60)
        except subprocess.TimeoutExpired:
            rec.kill()
            rec.wait()
    rep = run_cmd([ctx.perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                   "--sort", "dso,sym", "--percent-limit", "0.7"], timeout=300,
                  check=False).stdout.decode("utf-8", "replace")
    txt = os.path.join(ctx.out, "perf-%s.txt" % label)
    with open(txt, "w") as f:
        f.write(rep)
    top = []
    for line in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.kH]\]\s+(.*)$", line)
        if m:
            top.append({"self_pct": float(m.group(1)), "dso": m.group(2),
                        "symbol": m.group(3).strip()})
    by_dso = {}
    rep2 = run_cmd([ctx.perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                    "--sort", "dso"], timeout=300, check=False).stdout.decode("utf-8", "replace")
    for line in rep2.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s*$", line)
        if m:
            by_dso[m.group(2)] = float(m.group(1))
    with open(txt, "a") as f:
        f.write("\n" + rep2)
    say("profile %s: %s", label, ", ".join("%s %.1f%%" % (t["symbol"][:40], t["self_pct"])
                                           for t in top[:6]))
    return {"report": txt, "events_per_s_under_perf": r["events_per_s"], "top": top[:25],
            "by_dso_pct": by_dso}


def scenario_cpu(ctx):
    out = {"machine": ctx.machine, "method":
           "daemon user+sys CPU (/proc/PID/stat) from the first produce to the last result, "
           "divided by the events; latency 0, webex.max_in_flight %d; connections (so TLS "
           "handshakes): daemon sockets to the simulator that appeared during the measured "
           "runs (sampled every 100 ms; the warm-up run before opened the pool; with perf, "
           "connect_calls counts every connect() of the daemon, Kafka included)"
           % ctx.p["cpu_mif"]}
    with ctx.rig("cpu-http", mif=ctx.p["cpu_mif"], share=True) as rig:
        out["http"] = cpu_runs(ctx, rig, "http")
    ctx.save_partial("cpu_cost", out)
    with ctx.rig("cpu-https", mif=ctx.p["cpu_mif"], tls=True) as rig:
        out["https"] = cpu_runs(ctx, rig, "https")
    if not ctx.smoke:
        # Diagnosis, one run: the same without the per-event log line
        # (log.level is reloadable: start at info, which says when it
        # consumes, then SIGHUP to notice).
        ctx.save_partial("cpu_cost", out)
        try:
            with ctx.rig("cpu-http-notice", mif=ctx.p["cpu_mif"]) as rig:
                set_config(rig, "log.level", "notice")
                rig.sim.faults({"clear": True})
                r = throughput_run(ctx, rig, choose_n(ctx, 0, ctx.p["cpu_mif"], ctx.p["cpu_s"]),
                                   ctx.tag("cn"))
            out["http_log_notice"] = {"config": {"log.level": "notice"}, "runs": 1,
                                      "us_per_event": r["daemon_cpu_us_per_event"],
                                      "events_per_s": r["events_per_s"]}
            say("CPU http with log.level=notice: %.1f us per event",
                r["daemon_cpu_us_per_event"] or 0)
        except bwtest.HarnessError as e:
            out["http_log_notice"] = {"error": str(e)[:500]}
    return out


def backlog_prepare(ctx):
    """A rig without a daemon, the backlog produced, then bwprovd started."""
    p = ctx.p
    n = p["backlog_events"]
    rig = Rig(ctx, "backlog", mif=p["backlog_mif"], partitions=32)
    try:
        rig.start(daemon=False)
        tag = ctx.tag("b")
        t = time.monotonic()
        step = 20000
        rig.kafka.produce(EVENTS, (b"".join(provision_lines(tag, min(step, n - s), s))
                                   for s in range(0, n, step)))
        produce_s = time.monotonic() - t
        d = rig.d = rig.spawn()
        rss = RssSampler(d.pid)
        rss.start()
        cpu = CpuMeter(rig.pids()).start()
    except BaseException:
        rig.stop()
        raise
    return {"rig": rig, "n": n, "produce_s": produce_s, "rss": rss, "cpu": cpu}


def backlog_measure(ctx, pre):
    rig, n, d, rss, cpu = pre["rig"], pre["n"], pre["rig"].d, pre["rss"], pre["cpu"]
    try:
        ready = d.wait_ready(120)
        ready_wall = time.time() - (time.monotonic() - ready.t)
        d.wait_log("state table caught up", timeout=120, interval=0.05)
        consuming_wall = time.time()
        wait_for(lambda: ok_count(rig.sim) >= n, max(120, 10 * n / ctx.cap_est), 0.25,
                 "backlog drained")
        wait_for(lambda: sum(rig.kafka.end_offsets(RESULTS)) >= n, 60, 0.2, "results")
        mem = proc_mem(d.pid)
        usage = cpu.stop()
        samples = rss.stop()
        res = rig.kafka.read_since(RESULTS, [0] * rig.mk.topics[RESULTS], "%T")
    finally:
        rss.stop()
        rig.stop()
    last = max(int(r[2]) for r in res)
    drain_s = last / 1000.0 - ready_wall
    return {"events": n, "produce_s": pre["produce_s"], "results": len(res),
            "peak_rss_mib": mem.get("hwm", 0) / MIB,
            "rss_at_end_mib": mem.get("rss", 0) / MIB,
            "rss_first_2s_max_mib": max([s_[1] for s_ in samples if s_[0] <= 2.0] or [0]) / MIB,
            "drain_s_from_ready": drain_s, "drain_events_per_s": n / drain_s,
            "drain_events_per_s_from_consuming": n / max(1e-3, last / 1000.0 - consuming_wall),
            "cpu": usage,
            "rss_series_mib": [(s_[0], round(s_[1] / MIB, 1)) for s_ in samples[::4]]}


def scenario_backlog(ctx):
    p = ctx.p
    runs = []
    for rep in range(p["reps"]):
        pre = ctx.prepared.pop("backlog", None) or backlog_prepare(ctx)
        r = backlog_measure(ctx, pre)
        runs.append(r)
        say("backlog run %d: %d events, peak RSS %.1f MiB, drained at %.0f events/s from READY",
            rep + 1, r["events"], r["peak_rss_mib"], r["drain_events_per_s"])
    return {"machine": ctx.machine, "events": p["backlog_events"], "runs": runs,
            "config": {"webex.max_in_flight": p["backlog_mif"] or "default (64)",
                       "pipeline.max_pending": "default (10000)",
                       "events_partitions": 32},
            "method": "backlog produced first, then the daemon started (latency 0); peak RSS = "
                      "VmHWM after the whole backlog was processed (the state table then holds "
                      "an entry per event); drain rate from READY (includes the ~3 s group "
                      "join of the mock cluster) and from 'consuming'",
            "peak_rss_mib": spread([r["peak_rss_mib"] for r in runs]),
            "drain_events_per_s": spread([r["drain_events_per_s"] for r in runs])}


BIG_STATE, EMPTY_STATE = "bench.state.full", "bench.state.empty"
#: Events topic of the daemon without a table: only the one with the table
#: must see the lookup check's events.
EMPTY_EVENTS = "bench.events.none"


def state_prepare(ctx):
    """The cluster with the state records produced (and, in smoke mode,
    the first pair of daemons started)."""
    p = ctx.p
    n = p["state_records"]
    parts = p["state_partitions"]
    rig = Rig(ctx, "state", topics={BIG_STATE: parts, EMPTY_STATE: parts, EMPTY_EVENTS: 16})
    try:
        rig.start(daemon=False)
        t = time.monotonic()
        chunk = 50000
        rig.kafka.produce(BIG_STATE, (state_chunk(i, min(n, i + chunk))
                                      for i in range(0, n, chunk)),
                          headers={"bwprovd-writer": "bench-preload"}, timeout=900)
        produce_s = time.monotonic() - t
        stored = sum(rig.kafka.end_offsets(BIG_STATE)) - sum(rig.kafka.low_offsets(BIG_STATE))
        if stored != n:
            raise bwtest.HarnessError("the mock cluster kept %d of %d state records" % (stored, n))
        pre = {"rig": rig, "n": n, "produce_s": produce_s}
        if ctx.smoke:
            pre["pair"] = state_spawn_pair(rig, 0)
    except BaseException:
        rig.stop()
        raise
    return pre


def state_spawn_pair(rig, rep):
    dw = rig.spawn({"topic.state": BIG_STATE, "kafka.group.id": "bench-with-%d" % rep})
    do = rig.spawn({"topic.state": EMPTY_STATE, "topic.events": EMPTY_EVENTS,
                    "kafka.group.id": "bench-without-%d" % rep})
    return dw, do, CpuMeter({"bwprovd": dw.pid}).start()


def scenario_state(ctx):
    p = ctx.p
    pre = ctx.prepared.pop("state", None) or state_prepare(ctx)
    rig, n = pre["rig"], pre["n"]
    say("state: %d records produced in %.1f s, all kept by the mock cluster", n,
        pre["produce_s"])
    runs = []
    try:
        for rep in range(p["reps"]):
            dw, do, cw = pre.pop("pair", None) or state_spawn_pair(rig, rep)
            load_with = rig.wait_consuming(dw)
            usage = cw.stop()
            load_without = rig.wait_consuming(do)
            time.sleep(1.0)
            mw, mo = proc_mem(dw.pid), proc_mem(do.pid)
            r = {"load_s": load_with, "start_s_empty_table": load_without,
                 "daemon_cpu_s_until_loaded": usage.get("bwprovd_cpu_s"),
                 "rss_with_mib": mw["rss"] / MIB, "rss_without_mib": mo["rss"] / MIB,
                 "hwm_with_mib": mw["hwm"] / MIB, "hwm_without_mib": mo["hwm"] / MIB,
                 "bytes_per_workspace": (mw["rss"] - mo["rss"]) / n}
            if rep == 0:
                r["lookup_check"] = state_lookup_check(rig, dw, n)
                if r["lookup_check"] != "ok":
                    r["error"] = "state lookup check " + r["lookup_check"]
            if ctx.gdb and not ctx.smoke:
                r.update(after_malloc_trim(ctx, dw, do, n))
            runs.append(r)
            say("state run %d: %d workspaces loaded in %.1f s (empty table: %.1f s), "
                "RSS %.1f vs %.1f MiB: %.0f bytes per workspace", rep + 1, n, load_with,
                load_without, r["rss_with_mib"], r["rss_without_mib"], r["bytes_per_workspace"])
            rig.stop_daemons()
    finally:
        rig.stop()
    return {"machine": ctx.machine, "records": n, "state_partitions": p["state_partitions"],
            "record_bytes": len(state_chunk(0, 1)),
            "produce_s": pre["produce_s"], "runs": runs,
            "method": "state records (the daemon's format, 78-character workspaceId, "
                      "15-character userId) produced to the state topic before start; a "
                      "daemon on it and one on an empty state topic started together; load_s "
                      "= start to 'state table caught up' (includes the ~3 s consumer-group "
                      "join of the mock cluster, see start_s_empty_table); bytes per "
                      "workspace = (VmRSS with - VmRSS without) / records, 1 s after both "
                      "caught up; lookup_check: updates for the first and last user found "
                      "their workspace id",
            "load_s": spread([r["load_s"] for r in runs]),
            "loader_s_beyond_empty_start": spread([r["load_s"] - r["start_s_empty_table"]
                                                   for r in runs]),
            "bytes_per_workspace": spread([r["bytes_per_workspace"] for r in runs]),
            "lookup_check": runs[0].get("lookup_check") if runs else None,
            "bytes_per_workspace_after_malloc_trim": spread([
                r.get("bytes_per_workspace_after_malloc_trim") for r in runs]),
            "rss_with_mib": spread([r["rss_with_mib"] for r in runs]),
            "rss_without_mib": spread([r["rss_without_mib"] for r in runs])}


def scenario_state_real(ctx):
    """The state table's load from Apache Kafka: state_records records on
    the compacted state topic of one real broker (the mock cluster's limit
    of ~5 MB a partition does not apply, so the SPEC's 12 partitions),
    produced with kcat; a daemon on it and one on an empty state topic
    started together."""
    p = ctx.p
    n, parts = p["state_records"], p["state_partitions_real"]
    rig = Rig(ctx, "state-real", partitions=parts, real=True,
              topics={EMPTY_STATE: parts, EMPTY_EVENTS: parts})
    runs = []
    try:
        rig.start(daemon=False)
        t = time.monotonic()
        rig.kafka.produce(bwtest.TOPIC_STATE, (state_chunk(i, min(n, i + 50000))
                                               for i in range(0, n, 50000)),
                          headers={"bwprovd-writer": "bench-preload"}, timeout=900)
        produce_s = time.monotonic() - t
        stored = (sum(rig.kafka.end_offsets(bwtest.TOPIC_STATE)) -
                  sum(rig.kafka.low_offsets(bwtest.TOPIC_STATE)))
        if stored != n:
            raise bwtest.HarnessError("the broker kept %d of %d state records" % (stored, n))
        say("state-real: %d records produced to Apache Kafka %s in %.1f s", n,
            rig.mk.version, produce_s)
        for rep in range(p["reps"]):
            dw = rig.spawn({"kafka.group.id": "bench-real-with-%d" % rep})
            do = rig.spawn({"topic.state": EMPTY_STATE, "topic.events": EMPTY_EVENTS,
                            "kafka.group.id": "bench-real-without-%d" % rep})
            load_with, load_without = rig.wait_consuming(dw), rig.wait_consuming(do)
            time.sleep(1.0)
            mw, mo = proc_mem(dw.pid), proc_mem(do.pid)
            runs.append({"load_s": load_with, "start_s_empty_table": load_without,
                         "hwm_with_mib": mw["hwm"] / MIB, "hwm_without_mib": mo["hwm"] / MIB,
                         "rss_with_mib": mw["rss"] / MIB, "rss_without_mib": mo["rss"] / MIB})
            say("state-real run %d: %d loaded in %.1f s (empty table: %.1f s), peak RSS "
                "%.1f MiB (empty table %.1f MiB)", rep + 1, n, load_with, load_without,
                mw["hwm"] / MIB, mo["hwm"] / MIB)
            rig.stop_daemons()
    finally:
        rig.stop()
    return {"machine": ctx.machine, "records": n, "state_partitions": parts,
            "kafka_version": rig.mk.version, "produce_s": produce_s, "runs": runs,
            "method": "as memory.state_table, on one Apache Kafka broker (KRaft, loopback) "
                      "with the state topic cleanup.policy=compact; load_s = start to 'state "
                      "table caught up'; peak RSS = VmHWM a second after both caught up",
            "load_s": spread([r["load_s"] for r in runs]),
            "start_s_empty_table": spread([r["start_s_empty_table"] for r in runs]),
            "hwm_with_mib": spread([r["hwm_with_mib"] for r in runs]),
            "hwm_without_mib": spread([r["hwm_without_mib"] for r in runs])}


def subscriber_lines(tag, n):
    return b"".join(("%s\x1f%s\n" % bwtest.event_record(bwtest.sub_provision(
        "%s-%06d@subs.bench" % (tag, i), event_id="%s-%06d" % (tag, i)))).encode()
        for i in range(n))


def scenario_subscribers(ctx):
    """subscriber_pending provisions at once, each provisioned by the
    simulator subscriber_delay_ms after its POST: all pending together
    (pipeline.max_pending 10,000 is the default bound), polled on the
    default schedule (2 s doubling) through webex.rate_limit."""
    p = ctx.p
    n, rate, delay = p["subscriber_pending"], p["subscriber_rate"], p["subscriber_delay_ms"]
    rig = Rig(ctx, "subscribers", config={"webex.rate_limit": rate})
    try:
        rig.start()
        rig.sim.subscriber_settings(delay_ms=delay)
        seq0, base = last_seq(rig.sim), rig.kafka.end_offsets(RESULTS)
        t0 = time.monotonic()
        rig.kafka.produce(EVENTS, subscriber_lines(ctx.tag("sub"), n))
        peak = {"pending": 0, "hwm": 0}

        def all_pending():
            pending = sim_call(rig.sim.stats)["subscribersByStatus"].get("provisioning", 0)
            peak["pending"] = max(peak["pending"], pending)
            return pending >= n
        wait_for(all_pending, 300, 0.2, "%d subscribers pending at once" % n)
        t_pending = time.monotonic() - t0
        peak["hwm"] = proc_mem(rig.d.pid).get("hwm", 0)
        wait_for(lambda: rig.kafka.count_since(RESULTS, base) >= n, 900, 0.5,
                 "%d subscriber results" % n)
        took = time.monotonic() - t0
        mem = proc_mem(rig.d.pid)
        reqs = requests_since(rig.sim, seq0)
        times = sorted(r["recvUs"] for r in reqs)
        polls = sum(1 for r in reqs if r["method"] == "GET")
        violations = (sim_call(rig.sim.stats).get("violations") or {}).get("retryAfter")
    finally:
        rig.stop()
    per_s = window_max(times, 1000000) if times else 0
    say("subscribers: %d pending at once after %.1f s (peak RSS then %.1f MiB, %.1f MiB at "
        "the end); %d requests (%d polls) in %.1f s, at most %d in a second (rate limit %d/s)",
        peak["pending"], t_pending, peak["hwm"] / MIB, mem.get("hwm", 0) / MIB, len(reqs),
        polls, took, per_s, rate)
    return {"machine": ctx.machine, "subscribers": n, "rate_limit_per_s": rate,
            "simulator_delay_ms": delay, "pending_peak": peak["pending"],
            "all_pending_after_s": t_pending, "hwm_all_pending_mib": peak["hwm"] / MIB,
            "hwm_end_mib": mem.get("hwm", 0) / MIB, "requests": len(reqs), "polls": polls,
            "polls_per_subscriber": polls / n, "max_requests_in_a_second": per_s,
            "retry_after_violations": violations, "duration_s": took,
            "method": "subscriber.provision events produced at once; the simulator answers "
                      "'provisioning' and provisions each simulator_delay_ms after its POST; "
                      "pending = the simulator's subscribers in status provisioning; peak RSS "
                      "= the daemon's VmHWM when all were pending and at the end; request "
                      "rate = the most requests the simulator received in any 1 s window"}


def after_malloc_trim(ctx, dw, do, n):
    """Diagnosis: VmRSS after gdb makes both daemons call malloc_trim(0),
    i.e. without the heap glibc keeps after the load (freed fetch buffers)."""
    out = {}
    for name, d in (("with", dw), ("without", do)):
        run_cmd([ctx.gdb, "-batch", "-p", str(d.pid), "-ex", "call (int)malloc_trim(0)"],
                timeout=60, check=False)
        out["rss_%s_after_malloc_trim_mib" % name] = proc_mem(d.pid).get("rss", 0) / MIB
    out["bytes_per_workspace_after_malloc_trim"] = (
        out["rss_with_after_malloc_trim_mib"] - out["rss_without_after_malloc_trim_mib"]) * MIB / n
    say("state: after malloc_trim(0): %.0f bytes per workspace",
        out["bytes_per_workspace_after_malloc_trim"])
    return out


def state_lookup_check(rig, d, n):
    """Updates for the first and last preloaded users: the daemon must send
    a PUT (the simulator answers 404, it does not know them) rather than fail
    with unknown_workspace, proving the records are in the table."""
    base = rig.kafka.end_offsets(RESULTS)
    lines = []
    for i in (0, n - 1):
        ev = bwtest.update(state_user(i), event_id="lookup-%d" % i, primaryPhoneNumber="+1")
        k, v = bwtest.event_record(ev)
        lines.append(("%s\x1f%s\n" % (k, v)).encode())
    rig.kafka.produce(EVENTS, b"".join(lines))
    wait_for(lambda: rig.kafka.count_since(RESULTS, base) >= 2, 60, 0.2, "lookup results")
    res = rig.kafka.read_since(RESULTS, base, "%s")
    kinds = [((json.loads(r[2]).get("error") or {}).get("kind")) for r in res]
    return "ok" if "unknown_workspace" not in kinds and len(kinds) == 2 else \
        "FAILED: %s" % kinds


def scenario_latency(ctx):
    p = ctx.p
    lat, mif = p["latency_point"]
    capacity, src = None, None
    for pt in (ctx.results.get("latency_sweep") or {}).get("points", []):
        if pt["latency_ms"] == lat and pt["max_in_flight"] == mif:
            capacity, src = pt["events_per_s"]["median"], "latency_sweep"
    if not capacity:
        capacity, src = min(ctx.cap_est, mif * 1000.0 / lat), "estimate"
    rate = 0.5 * capacity
    runs = []
    # A fresh cluster per run: the mock cluster looks up a fetch offset by
    # walking every message set of the partition, and the paced producer
    # makes one set per record, so a used cluster gets slower run by run.
    floor = None
    for rep in range(p["reps"]):
        with ctx.rig("latency-%d" % rep, mif=mif, share=True,
                     config={"kafka.consumer.fetch.wait.max.ms": LATENCY_FETCH_WAIT_MS}) as rig:
            rig.sim.faults({"clear": True, "latencyMs": lat})
            n = max(20, int(rate * p["latency_s"]))
            tag = ctx.tag("l%d" % rep)
            lines = provision_lines(tag, n)
            base_ev = rig.kafka.end_offsets(EVENTS)
            base_res = rig.kafka.end_offsets(RESULTS)
            seq0 = last_seq(rig.sim)
            cpu = CpuMeter(rig.pids()).start()
            log_at = os.path.getsize(rig.d.log_path)
            took = rig.kafka.produce_paced(EVENTS, lines, rate)
            wait_for(lambda: rig.kafka.count_since(RESULTS, base_res) >= n, 120, 0.2,
                     "latency results")
            usage = cpu.stop()
            rebalances = count_rebalances(rig.d.log_path, log_at)
            ev = {(r[0], r[1]): int(r[2]) for r in rig.kafka.read_since(EVENTS, base_ev, "%T")}
            res = rig.kafka.read_since(RESULTS, base_res, "%T\t%s")
            sim_us = collections.defaultdict(int)
            for q in requests_since(rig.sim, seq0):
                if q.get("trackingId"):
                    sim_us[q["trackingId"]] += q["doneUs"] - q["recvUs"]
            t_first = min(ev.values())
            over, e2e, consume, inside = [], [], [], []
            for r in res:
                v = json.loads(r[3])
                src_ = v.get("source") or {}
                t_ev = ev.get((src_.get("partition"), src_.get("offset")))
                if t_ev is None or v.get("outcome") != "succeeded":
                    continue
                if t_ev - t_first < p["latency_warmup_s"] * 1000:
                    continue
                held = sim_us.get("bwprovd_" + v["eventId"])
                if held is None:
                    continue
                total = int(r[2]) - t_ev
                e2e.append(total)
                over.append(total - held / 1000.0)
                consume.append(int(r[2]) - v["latencyMs"] - t_ev)
                inside.append(v["latencyMs"] - held / 1000.0)
            for lst in (over, e2e, consume, inside):
                lst.sort()
            r = {"events": n, "measured_events": len(over), "rate_per_s": rate,
                 "produce_s": took, "cpu": usage,
                 "overhead_ms": {"p50": pctl(over, 50), "p90": pctl(over, 90),
                                 "p99": pctl(over, 99), "max": over[-1] if over else None},
                 "e2e_ms": {"p50": pctl(e2e, 50), "p99": pctl(e2e, 99)},
                 "kafka_in_ms": {"p50": pctl(consume, 50), "p99": pctl(consume, 99)},
                 "in_daemon_minus_sim_ms": {"p50": pctl(inside, 50), "p99": pctl(inside, 99)},
                 "rebalances_during_run": rebalances}
            if len(over) < 0.8 * n * (1 - p["latency_warmup_s"] / p["latency_s"]):
                r["error"] = "only %d of %d events matched" % (len(over), n)
            runs.append(r)
            say("latency run %d: %d events at %.0f/s, own overhead p50 %.1f ms, p99 %.1f ms "
                "(Kafka in p99 %s ms, inside the daemon p99 %s ms, %d rebalance log lines)",
                rep + 1, n, rate, r["overhead_ms"]["p50"] or -1, r["overhead_ms"]["p99"] or -1,
                r["kafka_in_ms"]["p99"], rnd(r["in_daemon_minus_sim_ms"]["p99"]), rebalances)
            if rep == p["reps"] - 1:
                floor = kafka_floor(ctx, rig, rate, min(5.0, p["latency_s"]))
                say("Kafka alone (kcat to kcat through the mock cluster, same rate): p50 %.1f "
                    "ms, p99 %.1f ms", floor["p50_ms"] or -1, floor["p99_ms"] or -1)
    return {"machine": ctx.machine, "latency_ms": lat, "max_in_flight": mif,
            "rate_per_s": rate, "capacity_per_s": capacity, "capacity_from": src,
            "kafka_alone_ms": floor,
            "fetch_wait_max_ms": LATENCY_FETCH_WAIT_MS if not ctx.smoke else FETCH_WAIT_MS,
            "method": "kcat fed one record every 1/rate s (linger 0); per event: result "
                      "Kafka timestamp - event Kafka timestamp - (doneUs - recvUs) of its "
                      "request(s) at the simulator (matched by TrackingID); first %.1f s "
                      "left out as warm-up; timestamps have 1 ms resolution. kafka_in_ms: "
                      "event timestamp to consumption by the daemon (result timestamp - "
                      "latencyMs)" % p["latency_warmup_s"],
            "runs": runs,
            "overhead_ms": {k: spread([r["overhead_ms"][k] for r in runs])
                            for k in ("p50", "p90", "p99", "max")}}


def count_rebalances(log_path, offset):
    """Partition assignments and revocations the daemon logged after offset
    (a rebalance stops consumption for a while: it explains a tail)."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    return len(re.findall(r'msg="(?:assigned|revoked|lost) \d+ partition', text))


def kafka_floor(ctx, rig, rate, secs):
    """Produce-to-consume latency of the mock cluster alone: the same paced
    producer into a topic of its own, read by kcat (fetch.wait.max.ms 1,
    unbuffered), each line timestamped when Python reads it. The daemon is
    idle meanwhile."""
    topic = "bench.floor.%d" % ctx._n
    rig.mk.create_topic(topic, 16)
    rig.kafka.topics[topic] = 16
    n = max(20, int(rate * secs))
    got = []
    cons = subprocess.Popen([ctx.kcat, "-C", "-b", rig.mk.bootstrap, "-t", topic, "-o", "end",
                             "-u", "-q", "-X", "fetch.wait.max.ms=%d" % LATENCY_FETCH_WAIT_MS,
                             "-f", "%T\n"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def reader():
        for line in iter(cons.stdout.readline, b""):
            now = time.time() * 1000.0
            try:
                got.append(now - int(line))
            except ValueError:
                pass
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    try:
        time.sleep(2.0)  # kcat assigned and at the end
        rig.kafka.produce_paced(topic, provision_lines(ctx.tag("f"), n), rate)
        wait_for(lambda: len(got) >= n, 30, 0.1, "floor records")
    finally:
        cons.kill()
        cons.wait()
        th.join(5)
    vals = sorted(got[int(len(got) * 0.1):])
    return {"events": n, "received": len(got), "p50_ms": pctl(vals, 50), "p90_ms": pctl(vals, 90),
            "p99_ms": pctl(vals, 99), "max_ms": vals[-1] if vals else None}


def window_max(times_us, width_us):
    """Most requests whose recvUs fall in any half-open window of width_us
    (a request exactly width_us after another is in the next window)."""
    best, j = 0, 0
    for i, t in enumerate(times_us):
        while times_us[j] <= t - width_us:
            j += 1
        best = max(best, i - j + 1)
    return best


def set_config(rig, key, value):
    """Change one reloadable key of rig's daemon: rewrite its config, SIGHUP,
    wait for READY=1 again."""
    d = rig.d
    d.config[key] = value
    d.write_config()
    t = time.monotonic()
    d.reload()
    d.wait_notification("READY", "1", timeout=30, after=t)


def set_rate_limit(rig, rate):
    set_config(rig, "webex.rate_limit", rate)


def scenario_rate(ctx):
    p = ctx.p
    out = {"machine": ctx.machine, "method":
           "backlog of rate x %.1f s events produced at once, latency 0; measured rate = "
           "(requests - 1) / (last recvUs - first recvUs) at the simulator, leaving out the "
           "first rate/10 requests (the token bucket's burst); max_in_1s / max_in_100ms = most "
           "requests in any window of that width" % p["rate_s"], "limits": []}
    with ctx.rig("rate", mif=64, share=True) as rig:
        rig.sim.faults({"clear": True})
        for limit in p["rate_limits"]:
            set_rate_limit(rig, limit)
            runs = []
            for rep in range(p["reps"]):
                n = int(limit * p["rate_s"])
                seq0 = last_seq(rig.sim)
                st0 = sim_call(rig.sim.stats)
                throughput_run(ctx, rig, n, ctx.tag("r%d-%d" % (limit, rep)),
                               timeout=p["rate_s"] * 4 + 60)
                st1 = sim_call(rig.sim.stats)
                recv = sorted(q["recvUs"] for q in requests_since(rig.sim, seq0))
                # the token bucket's burst (a tenth of a second's worth) goes
                # out at once; the rate is measured over what follows it
                rest = recv[max(1, limit // 10):]
                rate = (len(rest) - 1) / ((rest[-1] - rest[0]) / 1e6) if len(rest) > 1 else None
                overall = (len(recv) - 1) / ((recv[-1] - recv[0]) / 1e6) if len(recv) > 1 else None
                runs.append({"requests": len(recv), "measured_per_s": rate,
                             "overall_per_s_with_burst": overall,
                             "max_in_1s": window_max(recv, 1000000),
                             "max_in_100ms": window_max(recv, 100000),
                             "violations_retry_after": st1["violations"]["retryAfter"] -
                             st0["violations"]["retryAfter"]})
                say("rate limit %d/s run %d: %d requests at %.1f/s (max %d in 1 s)", limit,
                    rep + 1, len(recv), rate or 0, runs[-1]["max_in_1s"])
            out["limits"].append({"configured_per_s": limit, "runs": runs,
                                  "measured_per_s": spread([r["measured_per_s"] for r in runs]),
                                  "max_in_1s": spread([r["max_in_1s"] for r in runs])})
        out["retry_after"] = rate429_run(ctx, rig)
        rig.sim.faults({"clear": True})
        set_rate_limit(rig, 0)
    return out


def rate429_run(ctx, rig):
    """The simulator's rateLimit below the configured rate: 429s with
    Retry-After 1; no request may arrive inside the pause."""
    cfg = ctx.p["rate429"]
    set_rate_limit(rig, cfg["configured"])
    rig.sim.faults({"clear": True, "rateLimit": {
        "perSecond": cfg["sim_per_s"], "burst": max(1, cfg["sim_per_s"] // 10), "retryAfter": 1}})
    n = cfg["events"]
    seq0 = last_seq(rig.sim)
    st0 = sim_call(rig.sim.stats)
    r = throughput_run(ctx, rig, n, ctx.tag("r429"), timeout=180)
    st1 = sim_call(rig.sim.stats)
    reqs = requests_since(rig.sim, seq0)
    rig.sim.faults({"clear": True})
    got429 = sorted(q["doneUs"] for q in reqs if q["status"] == 429)
    # Own count, stricter than the simulator's connection-aware rule: a
    # request arriving between 50 ms after a 429 went out and 50 ms before
    # its Retry-After (1 s) ended.
    inside = 0
    for q in reqs:
        t = q["recvUs"]
        for s in got429:
            if s + 50000 < t < s + 1000000 - 50000:
                inside += 1
                break
            if s > t:
                break
    ok = sorted(q["recvUs"] for q in reqs if q["status"] in (200, 201))
    out = {"configured_per_s": cfg["configured"], "simulator_rate_limit_per_s": cfg["sim_per_s"],
           "retry_after_s": 1, "events": n, "requests": len(reqs),
           "responses_429": len(got429),
           "violations_retry_after": st1["violations"]["retryAfter"] - st0["violations"]["retryAfter"],
           "requests_inside_windows_strict": inside,
           "succeeded_per_s": (len(ok) - 1) / ((ok[-1] - ok[0]) / 1e6) if len(ok) > 1 else None,
           "e2e_s": r["e2e_s"]}
    if not got429:
        out["error"] = "no 429 was provoked"
    say("429 run: %d requests, %d answered 429, violations.retryAfter %d, %d inside windows "
        "(strict), %.0f succeeded/s", len(reqs), len(got429), out["violations_retry_after"],
        inside, out["succeeded_per_s"] or 0)
    return out


def scenario_hol(ctx):
    p = ctx.p
    lat, mif = p["hol_point"]
    runs = []
    for rep in range(p["reps"]):
        with ctx.rig("hol-%d" % rep, mif=mif, share=True) as rig:
            rig.sim.faults({"clear": True, "latencyMs": lat})
            # the simulator takes at most 64 KiB of faults JSON: ~900 script entries
            n = min(choose_n(ctx, lat, mif, p["hol_s"]), int(800 / p["hol_stuck_share"]))
            base = throughput_run(ctx, rig, n, ctx.tag("h%db" % rep))
            tag = ctx.tag("h%ds" % rep)
            stuck = set(range(0, n, int(round(1 / p["hol_stuck_share"]))))
            rig.sim.faults({"clear": True, "latencyMs": lat, "script": [
                {"status": 503, "count": 1000000, "userId": user_id(tag, i)} for i in sorted(stuck)]})
            r = throughput_run(ctx, rig, n, tag, n_expected=n - len(stuck))
            st = sim_call(rig.sim.stats)
            rig.sim.faults({"clear": True, "latencyMs": lat})
            runs.append({"events": n, "stuck_users": len(stuck),
                         "baseline_events_per_s": base["events_per_s"],
                         "others_events_per_s": r["events_per_s"],
                         "ratio": r["events_per_s"] / base["events_per_s"]
                         if r["events_per_s"] and base["events_per_s"] else None,
                         "responses_503": (st.get("byStatus") or {}).get("503"),
                         "baseline": base, "stuck": r})
            say("head-of-line run %d: %d users, %d stuck in 503: others %.0f events/s vs "
                "%.0f without stuck users", rep + 1, n, len(stuck), r["events_per_s"] or 0,
                base["events_per_s"] or 0)
    return {"machine": ctx.machine, "latency_ms": lat, "max_in_flight": mif,
            "stuck_share": p["hol_stuck_share"],
            "method": "same daemon: a baseline run, then a run where every %dth user gets 503 "
                      "for every request (simulator script, retried with backoff); "
                      "throughput of the others end to end" % int(round(1 / p["hol_stuck_share"])),
            "runs": runs, "ratio": spread([r["ratio"] for r in runs]),
            "others_events_per_s": spread([r["others_events_per_s"] for r in runs]),
            "baseline_events_per_s": spread([r["baseline_events_per_s"] for r in runs])}


# ---------------------------------------------------------------------------
# Targets, plot, field check


def measured_targets(res):
    def get(*path):
        x = res
        for k in path:
            if isinstance(x, dict):
                x = x.get(k)
            elif isinstance(x, list) and isinstance(k, int) and k < len(x):
                x = x[k]
            else:
                return None
        return x

    def sweep_ratio(lat, mif):
        for pt in get("latency_sweep", "points") or []:
            if pt["latency_ms"] == lat and pt["max_in_flight"] == mif:
                return pt["ratio"]
        return None

    def ra_violations():
        ra = get("rate_limit", "retry_after")
        lims = get("rate_limit", "limits") or []
        if not ra:
            return None
        total = ra["violations_retry_after"] + sum(
            r["violations_retry_after"] for lim in lims for r in lim["runs"])
        return {"median": total, "min": total, "max": total, "n": 1}

    vals = {
        "ratio_50ms_256": sweep_ratio(50, 256),
        "ratio_200ms_1024": sweep_ratio(200, 1024),
        "cpu_us_per_event_http": get("cpu_cost", "http", "us_per_event"),
        "cpu_us_per_event_https": get("cpu_cost", "https", "us_per_event"),
        "backlog_peak_rss_mib": get("memory", "backlog", "peak_rss_mib"),
        "state_bytes_per_workspace": get("memory", "state_table", "bytes_per_workspace"),
        "latency_p99_overhead_ms": get("event_latency", "overhead_ms", "p99"),
        "rate_limit_retry_after_violations": ra_violations(),
    }
    # what the daemon cannot beat on this machine, next to its figure
    floors = {
        "cpu_us_per_event_http": ("libcurl alone (bench/curlfloor)",
                                  get("cpu_cost", "http", "curl_floor", "us_per_request")),
        "cpu_us_per_event_https": ("libcurl alone (bench/curlfloor)",
                                   get("cpu_cost", "https", "curl_floor", "us_per_request")),
        "latency_p99_overhead_ms": ("Kafka alone, kcat to kcat (p99)",
                                    get("event_latency", "kafka_alone_ms", "p99_ms")),
    }
    out = []
    for key, desc, unit, op, limit in TARGETS:
        v = vals.get(key)
        med = v.get("median") if isinstance(v, dict) else None
        met = None if med is None else (med >= limit if op == ">=" else med <= limit)
        t = {"key": key, "what": desc, "unit": unit, "target": "%s %s" % (op, limit),
             "measured": v, "met": met}
        floor = floors.get(key)
        if floor and floor[1] is not None:
            f = floor[1]
            t["floor"] = {"what": floor[0], "value": f.get("median") if isinstance(f, dict) else f}
        out.append(t)
    return out


def write_plot(ctx, res):
    pts = (res.get("latency_sweep") or {}).get("points") or []
    if not pts:
        return {"skipped": "no sweep points"}
    lats = sorted({pt["latency_ms"] for pt in pts})
    mifs = sorted({pt["max_in_flight"] for pt in pts})
    dat = os.path.join(ctx.out, "sweep.dat")
    with open(dat, "w") as f:
        f.write("# bwprovd latency sweep (bench/bench.py): one block per max_in_flight\n"
                "# xpos latency_ms median_ev_s min_ev_s max_ev_s bound_ev_s ratio ratio_min "
                "ratio_max sim_capacity\n")
        for mif in mifs:
            f.write("# max_in_flight %d\n" % mif)
            for pt in sorted((q for q in pts if q["max_in_flight"] == mif),
                             key=lambda q: q["latency_ms"]):
                e, r = pt["events_per_s"], pt["ratio"]
                f.write("%d %d %s %s %s %s %s %s %s %s\n" % (
                    lats.index(pt["latency_ms"]), pt["latency_ms"], e["median"] or "NaN",
                    e["min"] or "NaN", e["max"] or "NaN", pt["bound"] or "NaN",
                    r["median"] or "NaN", r["min"] or "NaN", r["max"] or "NaN",
                    pt.get("sim_capacity") or "NaN"))
            f.write("\n\n")
    if not ctx.gnuplot:
        return {"data": dat, "skipped": "gnuplot is not installed (apt-get install gnuplot-nox)"}
    terms = run_cmd([ctx.gnuplot, "-e", "set terminal"], check=False)
    terms = (terms.stdout + terms.stderr).decode("utf-8", "replace")
    if re.search(r"^\s*pngcairo\s", terms, re.M):
        term, ext = "pngcairo", "png"
    elif re.search(r"^\s*png\s", terms, re.M):
        term, ext = "png", "png"
    else:
        term, ext = "svg", "svg"
    img = os.path.join(ctx.out, "throughput." + ext)
    m = ctx.machine
    title = "bwprovd throughput vs API latency (%s, %s cores%s)" % (
        m["cpu_model"] or "?", m["cores"], ", smoke" if ctx.smoke else "")
    args = ["-e", "datafile='%s'" % dat, "-e", "outfile='%s'" % img, "-e", "term='%s'" % term,
            "-e", "nblocks=%d" % len(mifs),
            "-e", "mifs='%s'" % " ".join(str(x) for x in mifs),
            "-e", "ptitle='%s'" % title.replace("'", "")]
    r = run_cmd([ctx.gnuplot] + args + [os.path.join(HERE, "plot.gp")], check=False, timeout=60)
    if r.returncode != 0 or not os.path.exists(img):
        return {"data": dat, "error": r.stderr.decode("utf-8", "replace")[-800:]}
    return {"data": dat, "image": img}


REQUIRED = [
    "machine.cores", "machine.cpu_model", "mode", "duration_s",
    "simulator_capacity.machine", "simulator_capacity.points",
    "latency_sweep.machine", "latency_sweep.zero_latency_capacity", "latency_sweep.points",
    "latency_sweep.points[].latency_ms", "latency_sweep.points[].max_in_flight",
    "latency_sweep.points[].events_per_s.median", "latency_sweep.points[].events_per_s.min",
    "latency_sweep.points[].events_per_s.max", "latency_sweep.points[].bound",
    "latency_sweep.points[].ratio.median", "latency_sweep.points[].sim_limited",
    "cpu_cost.machine", "cpu_cost.http.us_per_event.median",
    "cpu_cost.http.cpu_s_per_1000_events.median", "cpu_cost.http.connections_per_1000_events",
    "cpu_cost.http.connections_open",
    "cpu_cost.https.us_per_event.median", "cpu_cost.https.cpu_s_per_1000_events.median",
    "cpu_cost.https.connections_per_1000_events",
    "memory.backlog.machine", "memory.backlog.peak_rss_mib.median",
    "memory.backlog.peak_rss_mib.min", "memory.backlog.peak_rss_mib.max",
    "memory.state_table.machine", "memory.state_table.load_s.median",
    "memory.state_table.bytes_per_workspace.median", "memory.state_table.lookup_check",
    "memory.state_table_real_kafka.load_s.median",
    "memory.state_table_real_kafka.hwm_with_mib.median",
    "memory.subscribers_pending.pending_peak", "memory.subscribers_pending.hwm_all_pending_mib",
    "memory.subscribers_pending.max_requests_in_a_second",
    "event_latency.machine", "event_latency.overhead_ms.p50.median",
    "event_latency.overhead_ms.p99.median", "event_latency.rate_per_s",
    "rate_limit.machine", "rate_limit.limits[].configured_per_s",
    "rate_limit.limits[].measured_per_s.median", "rate_limit.retry_after.responses_429",
    "rate_limit.retry_after.violations_retry_after",
    "head_of_line.machine", "head_of_line.ratio.median",
    "head_of_line.others_events_per_s.median", "targets[].measured.median", "plot",
]
#: Fields that may be null/absent when an optional tool is missing.
NEEDS_TOOL = {"simulator_capacity.points": "wrk"}


def check_fields(res, ctx):
    """Missing or null required fields (a list of messages)."""
    missing = []

    def walk(x, parts, path):
        if not parts:
            if x is None:
                missing.append(path + " is null")
            return
        k, rest = parts[0], parts[1:]
        if k.endswith("[]"):
            k = k[:-2]
            lst = x.get(k) if isinstance(x, dict) else None
            if not isinstance(lst, list) or not lst:
                missing.append("%s.%s is missing or empty" % (path, k))
                return
            for i, item in enumerate(lst):
                walk(item, rest, "%s.%s[%d]" % (path, k, i))
            return
        if not isinstance(x, dict) or k not in x:
            missing.append("%s.%s is missing" % (path, k))
            return
        walk(x[k], rest, path + "." + k)

    for f in REQUIRED:
        tool = NEEDS_TOOL.get(f)
        if tool and not getattr(ctx, tool):
            continue
        if f.startswith("targets[]") and ctx.smoke:
            # the smoke sweep has neither 50 ms x 256 nor 200 ms x 1024
            for i, t in enumerate(res.get("targets") or []):
                if not t["key"].startswith("ratio_"):
                    walk(t, f.split(".")[1:], "$.targets[%d]" % i)
            continue
        walk(res, f.split("."), "$")
    def errors(x, path):
        if isinstance(x, dict):
            if x.get("error"):
                missing.append("%s failed: %s" % (path, str(x["error"]).splitlines()[0][:300]))
            for k, v in x.items():
                errors(v, path + "." + k)
        elif isinstance(x, list):
            for i, v in enumerate(x):
                errors(v, "%s[%d]" % (path, i))

    errors(res, "$")
    return [m.replace("$.", "", 1) for m in missing]


# ---------------------------------------------------------------------------
# Context and main


class Ctx:
    def __init__(self, args):
        self.smoke = args.smoke
        self.p = dict(SMOKE if args.smoke else FULL)
        if args.reps:
            self.p["reps"] = args.reps
        for kv in args.set or []:
            k, _, v = kv.partition("=")
            if k not in self.p:
                raise SystemExit("bench: --set %s: no such parameter (%s)"
                                 % (k, ", ".join(sorted(self.p))))
            self.p[k] = json.loads(v)
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        build = os.path.abspath(args.build) if args.build else os.path.join(ROOT, "build-release")
        self.bwprovd = os.environ.get("BWPROVD") or os.path.join(build, "daemon", "bwprovd")
        self.mockkafka = os.environ.get("MOCKKAFKA") or os.path.join(build, "tests", "kafka",
                                                                     "mockkafka")
        self.websim = os.environ.get("WEBSIM") or os.path.join(build, "tests", "sim", "websim")
        self.curlfloor = os.environ.get("CURLFLOOR") or os.path.join(build, "bench", "curlfloor")
        for path in (self.bwprovd, self.mockkafka, self.websim):
            if not os.access(path, os.X_OK):
                raise SystemExit("bench: %s is missing; build first (make bench)" % path)
        for k, v in (("BWPROVD", self.bwprovd), ("MOCKKAFKA", self.mockkafka),
                     ("WEBSIM", self.websim)):
            os.environ[k] = v
        self.kcat = shutil.which(os.environ.get("KCAT") or "kcat")
        if not self.kcat:
            raise SystemExit("bench: kcat is missing (scripts/deps.sh installs it)")
        self.wrk = shutil.which("wrk")
        self.gnuplot = shutil.which("gnuplot")
        self.perf = self._perf_ok()
        self.gdb = shutil.which("gdb")
        self.profile = bool(self.perf) and not self.smoke and not args.no_profile
        self.only = set(args.only.split(",")) if args.only else None
        self.machine = machine_info()
        self.cap_est = self.p["cap_guess"]
        self.cap_measured = False
        self.results = {}
        self.partial_path = os.path.join(self.out, "results.partial.json")
        self._tls = None
        self._tmp = tempfile.mkdtemp(prefix="bwbench-")
        self._n = 0
        self.shared = None
        self.prepared = {}

    def _perf_ok(self):
        perf = shutil.which("perf")
        if not perf:
            return None
        try:
            r = subprocess.run([perf, "stat", "-x", ",", "-e", "syscalls:sys_enter_connect",
                                "true"], capture_output=True, timeout=20)
            return perf if r.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            return None

    def tag(self, what):
        self._n += 1
        return "%s%d" % (what, self._n)

    def tls_files(self):
        """(cert, key, cafile): a CA and a certificate for 127.0.0.1 and
        localhost, made here with openssl."""
        if self._tls is None:
            d = self._tmp

            def ossl(*a):
                run_cmd(["openssl"] + list(a), timeout=60)
            ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
            ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
                 "-subj", "/CN=bwprovd-bench-ca")
            key, csr, pem = (os.path.join(d, "sim" + x) for x in (".key", ".csr", ".pem"))
            ext = os.path.join(d, "sim.ext")
            with open(ext, "w") as f:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
            ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
            ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                 "-out", pem, "-days", "2", "-extfile", ext)
            self._tls = (pem, key, ca)
        return self._tls

    def rig(self, name, mif=None, tls=False, share=False, config=None):
        """A started Rig; in smoke mode, scenarios that may share one use
        the same daemon (one consumer-group join of ~3 s instead of five),
        whatever their mif and config."""
        if self.smoke and share and not tls:
            if self.shared is None:
                self.shared = Rig(self, "shared", mif=self.p["mifs"][0]).start()
                self.shared.shared = True
            return self.shared
        pre = self.prepared.pop(name, None)
        if pre is not None:
            return pre.finish_start()
        return Rig(self, name, mif=mif, tls=tls, config=config).start()

    def prestart(self):
        """Smoke mode: start the rigs that need a daemon of their own now,
        so their consumer-group joins (~3 s each in the mock cluster) run
        while the shared rig is busy. Only the smoke run does this: its
        numbers are not measurements."""
        want = lambda k: not self.only or k in self.only  # noqa: E731
        if want("cpu"):
            self.prepared["cpu-https"] = Rig(self, "cpu-https", mif=self.p["cpu_mif"],
                                             tls=True).start(wait=False)
        if want("backlog"):
            self.prepared["backlog"] = backlog_prepare(self)
        if want("state"):
            self.prepared["state"] = state_prepare(self)

    def release_shared(self):
        if self.shared is not None:
            self.shared.stop()
            self.shared = None

    def save_partial(self, key, value):
        self.results[key] = value
        with open(self.partial_path, "w") as f:
            json.dump(rnd(self.results), f, indent=1)

    def cleanup(self):
        if self.shared is not None:
            self.shared.stop()
            self.shared = None
        for v in self.prepared.values():
            (v if isinstance(v, Rig) else v["rig"]).stop()
        self.prepared = {}
        shutil.rmtree(self._tmp, ignore_errors=True)


SCENARIOS = [
    ("simcap", "simulator_capacity", scenario_simcap),
    ("sweep", "latency_sweep", scenario_sweep),
    ("cpu", "cpu_cost", scenario_cpu),
    ("latency", "event_latency", scenario_latency),
    ("hol", "head_of_line", scenario_hol),
    ("rate", "rate_limit", scenario_rate),
    ("backlog", "memory.backlog", scenario_backlog),
    ("state", "memory.state_table", scenario_state),
    ("state-real", "memory.state_table_real_kafka", scenario_state_real),
    ("subscribers", "memory.subscribers_pending", scenario_subscribers),
]


def git_state():
    """The commit and the files changed in the work tree (the binary is
    built from the work tree, which others may be editing)."""
    try:
        head = run_cmd(["git", "-C", ROOT, "rev-parse", "HEAD"], timeout=20).stdout.decode().strip()
        dirty = run_cmd(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                        timeout=20).stdout.decode().split("\n")
        return {"commit": head, "modified": [ln[3:] for ln in dirty if ln.strip()]}
    except (OSError, bwtest.HarnessError):
        return None


def print_report(res, path):
    print("\n==== bwprovd benchmark (%s, %s) ====" % (res["mode"], path))
    m = res["machine"]
    print("machine: %s cores, %s; load average %s at start, %s at end" % (
        m["cores"], m["cpu_model"], res.get("loadavg_start"), res.get("loadavg_end")))
    sw = res.get("latency_sweep") or {}
    if sw.get("points"):
        print("\nthroughput, events/s end to end (median [min-max]), ratio to bound, simulator "
              "capacity, daemon CPU per event, machine idle, CPU of other processes (other "
              "users' jobs, not the harness; % of one core):")
        for pt in sw["points"]:
            e, r = pt["events_per_s"], pt["ratio"]
            c = (pt.get("daemon_cpu_us_per_event") or {}).get("median")
            idle = (pt.get("machine_idle_share") or {}).get("median")
            oth = statistics.median([r["cpu"]["other_cpu_s"] / r["cpu"]["wall_s"]
                                     for r in pt["runs"]]) if pt["runs"] else 0
            print("  %3d ms x %4d: %6.0f [%.0f-%.0f]  bound %6.0f  ratio %.2f [%.2f-%.2f]  "
                  "sim %s  %s us/ev  idle %s  others %.0f%%%s" % (
                      pt["latency_ms"], pt["max_in_flight"], e["median"] or 0, e["min"] or 0,
                      e["max"] or 0, pt["bound"] or 0, r["median"] or 0, r["min"] or 0,
                      r["max"] or 0, "%.0f" % pt["sim_capacity"] if pt.get("sim_capacity")
                      else "n/a", "%.0f" % c if c else "n/a",
                      "%.0f%%" % (100 * idle) if idle is not None else "n/a", 100 * oth,
                      "  SIMULATOR-LIMITED" if pt.get("sim_limited") else ""))
    print("\n%-48s %-10s %-28s %s" % ("target", "goal", "measured median [min-max]", "met"))
    for t in res.get("targets", []):
        v = t["measured"] or {}
        meas = "n/a" if v.get("median") is None else "%.4g [%.4g-%.4g] %s" % (
            v["median"], v["min"], v["max"], t["unit"])
        print("%-48s %-10s %-28s %s" % (t["what"], t["target"], meas,
                                        {True: "yes", False: "NO", None: "?"}[t["met"]]))
        if t.get("floor") and t["floor"]["value"] is not None:
            print("  %-46s %-10s %.4g %s" % (t["floor"]["what"], "", t["floor"]["value"],
                                             t["unit"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny version of every scenario")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="output directory")
    ap.add_argument("--build", help="build tree with the binaries (default build-release)")
    ap.add_argument("--reps", type=int, help="repetitions per measurement")
    ap.add_argument("--only", help="comma-separated scenarios: " +
                    ",".join(s[0] for s in SCENARIOS))
    ap.add_argument("--no-profile", action="store_true", help="no perf profile of the CPU runs")
    ap.add_argument("--set", action="append", metavar="KEY=JSON",
                    help="override a parameter, e.g. --set mifs=[1024] --set latencies=[200]")
    args = ap.parse_args(argv)
    raise_nofile()
    ctx = Ctx(args)
    started = time.monotonic()
    res = ctx.results
    res.update({"mode": "smoke" if ctx.smoke else "full", "machine": ctx.machine,
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "loadavg_start": loadavg(), "binary": ctx.bwprovd,
                "version": run_cmd([ctx.bwprovd, "--version"], check=False).stdout.decode().strip(),
                "git": git_state(),
                "tools": {"wrk": ctx.wrk, "gnuplot": ctx.gnuplot, "perf": ctx.perf,
                          "kcat": ctx.kcat},
                "parameters": ctx.p})
    say("bwprovd benchmark (%s) on %s cores, %s; output in %s", res["mode"],
        ctx.machine["cores"], ctx.machine["cpu_model"], ctx.out)
    if not ctx.wrk:
        say("wrk is not installed: the simulator's capacity is not measured (bench/deps.sh)")
    try:
        if ctx.smoke:
            ctx.prestart()
        for key, field, fn in SCENARIOS:
            if ctx.only and key not in ctx.only:
                continue
            t = time.monotonic()
            say("== %s", key)
            try:
                val = fn(ctx)
            except (bwtest.HarnessError, AssertionError, OSError, ValueError, KeyError,
                    TypeError, ZeroDivisionError) as e:
                import traceback
                traceback.print_exc()
                # keep what the scenario saved before it failed
                top, _, sub = field.partition(".")
                part = res.get(top) if not sub else (res.get(top) or {}).get(sub)
                val = dict(part) if isinstance(part, dict) and not sub else \
                    {"machine": ctx.machine}
                val["error"] = "%s: %s" % (type(e).__name__, e)
            val["duration_s"] = time.monotonic() - t
            val["loadavg_after"] = loadavg()
            if "." in field:
                top, sub = field.split(".")
                res.setdefault(top, {})[sub] = val
                ctx.save_partial(top, res[top])
            else:
                ctx.save_partial(field, val)
            say("%s done in %.0f s", key, val["duration_s"])
            if key == "rate":
                ctx.release_shared()  # the last scenario that shares it
    finally:
        ctx.cleanup()
    res["loadavg_end"] = loadavg()
    res["targets"] = measured_targets(res)
    res["plot"] = write_plot(ctx, res)
    res["duration_s"] = time.monotonic() - started
    problems = check_fields(res, ctx) if not ctx.only else []
    res["missing_fields"] = problems
    path = os.path.join(ctx.out, "results.json")
    with open(path, "w") as f:
        json.dump(rnd(res), f, indent=1)
    try:
        os.unlink(ctx.partial_path)
    except OSError:
        pass
    print_report(res, path)
    print("\nresults: %s" % path)
    if isinstance(res["plot"], dict) and res["plot"].get("image"):
        print("plot:    %s" % res["plot"]["image"])
    print("total:   %.0f s" % res["duration_s"])
    if problems:
        print("\nMISSING OR FAILED:\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
