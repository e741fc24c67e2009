"""realkafka: real Apache Kafka brokers for the tests (Python 3 stdlib only).

``RealKafka`` has the interface of ``bwtest.MockKafka`` that the scenario
tests use (``bootstrap``, ``produce``, ``consume``, ``down``, ``up``,
``create_topic``, ``stop``), backed by Apache Kafka in KRaft mode on
loopback: one node, or three that are each broker and controller (a quorum
of three), started from the jars Maven fetches for ``tests/kafka/pom.xml``
(cached; a second run fetches nothing). Topics are created the way an
operator would, with kafka-topics from the same jars; the state topic is
log-compacted.

    with realkafka.RealKafka(partitions=4, brokers=3) as k:
        ...  k.bootstrap, k.kill(2), k.start_node(2), k.offsets(topic)

``secure=True``: a secured cluster as an operator runs one. Clients
connect to ``secure_bootstrap``, a SASL_SSL listener (SCRAM-SHA-512,
certificates from a test CA in ``ca_file``), and the broker's
StandardAuthorizer enforces ACLs (``allow.everyone.if.no.acl.found``
false): a principal may do only what ``acl_add`` allowed. ``bootstrap``
stays a PLAINTEXT listener for the harness itself (kcat, the tools and
the brokers among themselves), whose principal, ANONYMOUS, is a super
user: the product never uses it.

``bwtest.Kafka(...)`` gives a RealKafka when ``BWTEST_KAFKA=real`` is set
(CTest label ``kafka``) and a MockKafka otherwise, so one scenario runs on
both. Where Maven Central cannot be reached, ``start()`` raises
HarnessError saying so: the tests fail, they are never skipped silently.
"""
import base64
import hashlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import bwtest

HERE = os.path.dirname(os.path.abspath(__file__))
POM = os.path.join(HERE, "..", "kafka", "pom.xml")
#: The broker version the tests use (the newest 4.x that resolves; see the
#: README for 3.9). BWTEST_KAFKA_VERSION overrides it.
DEFAULT_VERSION = "4.4.0"
#: JVM heap per broker: three brokers and the daemons share 2 cores and
#: a few GiB with CI.
HEAP_MB = 320
#: What the brokers write into their node<N>.log (BWTEST_KAFKA_LOG_LEVEL).
BROKER_LOG_LEVEL = os.environ.get("BWTEST_KAFKA_LOG_LEVEL", "WARN")
#: The SASL mechanism of the secured listener.
SCRAM = "SCRAM-SHA-512"


def cache_dir(version):
    """Where the jars of ``version`` are kept between runs."""
    base = os.environ.get("BWPROVD_KAFKA_CACHE")
    if not base:
        base = "/var/cache/bwprovd-test" if os.geteuid() == 0 else \
            os.path.join(os.path.expanduser("~"), ".cache", "bwprovd-test")
    return os.path.join(base, "kafka-%s" % version)


def jars(version):
    """The classpath directory of Apache Kafka ``version``, fetched through
    Maven the first time (mvn dependency:copy-dependencies on
    tests/kafka/pom.xml); HarnessError when that fails."""
    d = cache_dir(version)
    os.makedirs(d, exist_ok=True)
    # CTest runs two tests at a time: the first fetches, the other waits.
    with open(os.path.join(d, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch(version, d)


def _pom_digest():
    with open(POM, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _fetch(version, d):
    """The jars of ``version`` in d/lib, fetched unless d/complete says
    they were, for this very pom.xml."""
    lib = os.path.join(d, "lib")
    done = os.path.join(d, "complete")
    want = "%s %s\n" % (version, _pom_digest())
    try:
        with open(done) as f:
            if f.read() == want:
                return lib
    except OSError:
        pass
    mvn = shutil.which("mvn")
    java = shutil.which("java")
    if not mvn or not java:
        raise bwtest.HarnessError("the real-broker tests need java and mvn (scripts/deps.sh "
                                  "installs default-jre-headless and maven)")
    shutil.rmtree(lib, ignore_errors=True)
    argv = [mvn, "-q", "-B", "-f", POM, "dependency:copy-dependencies",
            "-Dkafka.version=%s" % version, "-DoutputDirectory=%s" % lib,
            "-Dmaven.repo.local=%s" % os.path.join(d, "m2")]
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise bwtest.HarnessError("fetching Apache Kafka %s from Maven Central took more than "
                                  "15 minutes; is Maven Central reachable?" % version)
    if r.returncode != 0 or not os.path.isdir(lib):
        tail = (r.stdout + r.stderr).decode("utf-8", "replace").strip().splitlines()[-15:]
        raise bwtest.HarnessError(
            "cannot fetch Apache Kafka %s from Maven Central (mvn exit %d); the real-broker "
            "tests (ctest -L kafka) need it:\n  %s" % (version, r.returncode, "\n  ".join(tail)))
    with open(done, "w") as f:
        f.write(want)
    return lib


def librdkafka_version():
    """The system librdkafka's version as a tuple (kcat -V says which it
    runs on; bwprovd links the same library)."""
    r = subprocess.run([bwtest._kcat(), "-V"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10)
    m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", r.stdout + r.stderr)
    if not m:
        raise bwtest.HarnessError("kcat -V names no librdkafka version: %r" % r.stdout)
    return tuple(int(x) for x in m.groups())


#: The newest broker version a SCRAM login works with: librdkafka before
#: 2.6.1 sends its nonce twice in the SCRAM exchange, which Kafka 4.0 and
#: later refuse ("invalid credentials"; librdkafka issue 4895).
SCRAM_OLD_CLIENT_BROKER = "3.9.1"


def scram_broker_version():
    """The broker version for a SCRAM test with the system's librdkafka."""
    if librdkafka_version() < (2, 6, 1):
        return SCRAM_OLD_CLIENT_BROKER
    return os.environ.get("BWTEST_KAFKA_VERSION") or DEFAULT_VERSION


def free_ports(n):
    """n TCP ports free on 127.0.0.1 right now."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def cluster_id():
    """A KRaft cluster id: a random UUID, base64url without padding (what
    kafka-storage random-uuid prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class RealKafka:
    """Apache Kafka on loopback. ``brokers``: 1 or 3 (KRaft, every node both
    broker and controller). Topics: the four SPEC topics with
    ``partitions`` each (``topics``: more, ``{name: partitions}``), the
    state topic ``cleanup.policy=compact`` plus ``state_config``;
    replication factor 3 with three brokers, with ``min.insync.replicas``
    from ``topic_config``. ``broker_config``: more server.properties lines."""

    def __init__(self, partitions=4, brokers=1, topics=None, version=None,
                 state_config=None, topic_config=None, broker_config=None,
                 heap_mb=HEAP_MB, start_timeout=90, secure=False):
        self.version = version or os.environ.get("BWTEST_KAFKA_VERSION") or DEFAULT_VERSION
        self.brokers = int(brokers)
        self.partitions = int(partitions)
        self.topics = {t: self.partitions for t in bwtest.TOPICS}
        for name, n in (topics or {}).items():
            self.topics[name] = int(n if n is not None else partitions)
        self.state_config = dict(state_config or {})
        self.topic_config = dict(topic_config or {})
        self.broker_config = dict(broker_config or {})
        self.heap_mb = heap_mb
        self.start_timeout = start_timeout
        self.lib = None
        self.dir = None
        self.ports = {}
        self.procs = {}
        self.bootstrap = None
        self.secure = bool(secure)
        self.secure_bootstrap = None
        self.ca_file = None

    # -- nodes --------------------------------------------------------------

    def _java(self, main, *args, timeout=120):
        argv = ["java", "-Xms64m", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp",
                os.path.join(self.lib, "*"), main] + list(args)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        if r.returncode != 0:
            raise bwtest.HarnessError("%s %s failed (exit %d):\n%s"
                                      % (main, " ".join(args), r.returncode, out[-2000:]))
        return out

    def _properties(self, node):
        port, cport = self.ports[node][:2]
        voters = ",".join("%d@127.0.0.1:%d" % (n, self.ports[n][1]) for n in self.ports)
        rf = min(3, self.brokers)
        props = {
            "process.roles": "broker,controller",
            "node.id": node,
            "controller.quorum.voters": voters,
            "listeners": "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d" % (port, cport),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % port,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": os.path.join(self.dir, "node%d" % node),
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 8,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min(2, rf),
            # a test's first consumer need not wait 3 s for company
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
            "num.partitions": self.partitions,
        }
        if self.secure:
            props.update(self._secure_properties(node))
        props.update(self.broker_config)
        path = os.path.join(self.dir, "node%d.properties" % node)
        with open(path, "w") as f:
            f.writelines("%s=%s\n" % kv for kv in props.items())
        return path

    def _secure_properties(self, node):
        """The SASL_SSL listener (named SECURE), SCRAM and the authorizer."""
        port, cport, sport = self.ports[node]
        return {
            "listeners": "PLAINTEXT://127.0.0.1:%d,SECURE://127.0.0.1:%d,"
                         "CONTROLLER://127.0.0.1:%d" % (port, sport, cport),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d,SECURE://127.0.0.1:%d"
                                    % (port, sport),
            "listener.security.protocol.map":
                "PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": SCRAM,
            "listener.name.secure.sasl.enabled.mechanisms": SCRAM,
            "listener.name.secure.%s.sasl.jaas.config" % SCRAM.lower():
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            # PEM: the unencrypted PKCS#8 key and the certificate in one file
            "listener.name.secure.ssl.keystore.type": "PEM",
            "listener.name.secure.ssl.keystore.location": self._keystore,
            "authorizer.class.name":
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": "User:ANONYMOUS",
        }

    def _make_tls(self):
        """A test CA and one certificate for 127.0.0.1 that every node
        presents on its SECURE listener."""
        d = os.path.join(self.dir, "tls")
        os.makedirs(d)
        ca = bwtest.make_ca(d, "bwprovd-test-kafka-ca")
        cert, key = bwtest.make_cert(d, ca, "broker", "DNS:localhost,IP:127.0.0.1")
        self.ca_file = ca[1]
        self._keystore = os.path.join(d, "broker-keystore.pem")
        with open(self._keystore, "w") as out:
            for path in (key, cert):
                with open(path) as f:
                    out.write(f.read())

    def start_node(self, node, wait=True):
        """Start (or restart, same data) node ``node`` (1-based)."""
        p = self.procs.get(node)
        if p is not None and p.poll() is None:
            raise bwtest.HarnessError("broker %d is running" % node)
        log = open(os.path.join(self.dir, "node%d.log" % node), "ab")
        heap = "-Xmx%dm" % self.heap_mb
        argv = ["java", "-Xms%dm" % self.heap_mb, heap, "-XX:+UseSerialGC",
                "-Djava.awt.headless=true",
                # Log4j 2 without a configuration file: the console (the
                # node's log file) at this level
                "-Dorg.apache.logging.log4j.level=%s" % BROKER_LOG_LEVEL, "-cp", os.path.join(self.lib, "*"), "kafka.Kafka",
                os.path.join(self.dir, "node%d.properties" % node)]
        self.procs[node] = bwtest._spawn(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if wait:
            self.wait_brokers({node})

    def kill(self, node, sig=signal.SIGKILL):
        """Stop node ``node`` at once (SIGKILL: a crash, no controlled
        shutdown). Returns its exit status."""
        p = self.procs.get(node)
        if p is None or p.poll() is not None:
            return p.poll() if p else None
        p.send_signal(sig)
        return bwtest._reap(p, 30)

    def running(self, node=None):
        nodes = [node] if node else list(self.procs)
        return all(self.procs.get(n) is not None and self.procs[n].poll() is None
                   for n in nodes)

    def brokers_up(self):
        """Node ids the cluster lists in a metadata answer (empty when none
        answers)."""
        up = set()
        r = subprocess.run([bwtest._kcat(), "-L", "-J", "-b", self.bootstrap, "-m", "3"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        if r.returncode != 0:
            return up
        try:
            md = json.loads(r.stdout.decode("utf-8", "replace"))
        except ValueError:
            return up
        for b in md.get("brokers", []):
            up.add(int(b["id"]))
        return up

    def wait_brokers(self, nodes, timeout=None):
        timeout = timeout or self.start_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in nodes:
                if self.procs[n].poll() is not None:
                    raise bwtest.HarnessError("broker %d exited (%s):\n%s" % (
                        n, self.procs[n].returncode,
                        bwtest._tail(os.path.join(self.dir, "node%d.log" % n))))
            if set(nodes) <= self.brokers_up():
                return
            time.sleep(0.3)
        raise bwtest.Timeout("brokers %s not up within %ss:\n%s" % (
            sorted(nodes), timeout,
            bwtest._tail(os.path.join(self.dir, "node%d.log" % min(nodes)))))

    # -- the cluster --------------------------------------------------------

    def start(self):
        self.lib = jars(self.version)
        self.dir = bwtest._mkdtemp("bwt-kafka-")
        per = 3 if self.secure else 2  # plaintext, controller, SASL_SSL
        ports = free_ports(per * self.brokers)
        self.ports = {n: tuple(ports[per * (n - 1):per * n]) for n in range(1, self.brokers + 1)}
        self.bootstrap = ",".join("127.0.0.1:%d" % self.ports[n][0] for n in self.ports)
        if self.secure:
            self.secure_bootstrap = ",".join("127.0.0.1:%d" % self.ports[n][2]
                                             for n in self.ports)
            self._make_tls()
        cid = cluster_id()
        for n in self.ports:
            # "--cluster-id=": an id that starts with '-' (one in 64) would
            # otherwise be taken for an option
            self._java("kafka.tools.StorageTool", "format", "--cluster-id=" + cid, "-c",
                       self._properties(n))
        for n in self.ports:
            self.start_node(n, wait=False)
        self.wait_brokers(set(self.ports))
        for name, parts in self.topics.items():
            cfg = dict(self.topic_config)
            if name == bwtest.TOPIC_STATE:
                cfg.update({"cleanup.policy": "compact"}, **self.state_config)
            self.create_topic(name, parts, cfg, record=False)
        sys.stderr.write("realkafka: Apache Kafka %s, %d broker(s) at %s\n"
                         % (self.version, self.brokers, self.bootstrap))
        return self

    def _tool_class(self, name):
        """The main class of a tool: kafka-configs and kafka-acls moved from
        the broker's kafka.admin to org.apache.kafka.tools in 4.0."""
        if name in ("ConfigCommand", "AclCommand") and int(self.version.split(".")[0]) < 4:
            return "kafka.admin." + name
        return "org.apache.kafka.tools." + name

    def tool(self, main, *args, timeout=120):
        """Run one of Kafka's tools (e.g. org.apache.kafka.tools.TopicCommand)
        against the cluster; returns its output."""
        return self._java(main, "--bootstrap-server", self.bootstrap, *args, timeout=timeout)

    def create_topic(self, name, partitions, config=None, record=True):
        """Create a topic as an operator would (kafka-topics)."""
        args = ["--create", "--topic", name, "--partitions", str(int(partitions)),
                "--replication-factor", str(min(3, self.brokers))]
        for k, v in (config or {}).items():
            args += ["--config", "%s=%s" % (k, v)]
        self.tool("org.apache.kafka.tools.TopicCommand", *args)
        if record:
            self.topics[name] = int(partitions)

    def alter_topic(self, name, config):
        """kafka-configs --alter for a topic."""
        self.tool(self._tool_class("ConfigCommand"), "--alter", "--entity-type", "topics",
                  "--entity-name", name, "--add-config",
                  ",".join("%s=%s" % kv for kv in config.items()))

    def add_scram_user(self, name, password):
        """Create (or change) SCRAM credentials for ``name`` (kafka-configs)."""
        self.tool(self._tool_class("ConfigCommand"), "--alter", "--entity-type", "users",
                  "--entity-name", name, "--add-config",
                  "%s=[iterations=4096,password=%s]" % (SCRAM, password))

    def _acl(self, action, acl):
        """``acl``: (principal, resource type "topic"/"group"/"cluster",
        resource name, operation, pattern type "literal"/"prefixed")."""
        principal, rtype, name, op, pattern = acl
        args = [action, "--allow-principal", principal, "--operation", op,
                "--resource-pattern-type", pattern]
        args += ["--cluster"] if rtype == "cluster" else ["--" + rtype, name]
        if action == "--remove":
            args.append("--force")
        self.tool(self._tool_class("AclCommand"), *args)

    def acl_add(self, acl):
        """Allow one operation (see _acl); kafka-acls --add."""
        self._acl("--add", acl)

    def acl_remove(self, acl):
        """Take one allowed operation back; kafka-acls --remove."""
        self._acl("--remove", acl)

    def offsets(self, topic, time_spec=-2):
        """``{partition: offset}``: the log start (-2, after compaction or
        retention) or end (-1) offsets of ``topic``."""
        out = self.tool("org.apache.kafka.tools.GetOffsetShell", "--topic", topic, "--time",
                        str(time_spec))
        res = {}
        for line in out.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] == topic:
                res[int(parts[1])] = int(parts[2])
        return res

    def metadata(self):
        """The cluster's metadata as kcat -L -J prints it (a dict)."""
        r = subprocess.run([bwtest._kcat(), "-L", "-J", "-b", self.bootstrap, "-m", "10"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if r.returncode != 0:
            raise bwtest.HarnessError("kcat -L failed: %s" % r.stderr.decode("utf-8", "replace"))
        return json.loads(r.stdout.decode("utf-8", "replace"))

    def leader_of(self, topic, partition):
        """The node id leading ``topic`` [``partition``] (-1: none now)."""
        for t in self.metadata().get("topics", []):
            if t.get("topic") == topic:
                for p in t.get("partitions", []):
                    if int(p["partition"]) == int(partition):
                        return int(p.get("leader", -1))
        raise bwtest.HarnessError("%s [%s] not in the metadata" % (topic, partition))

    def down(self, broker="all"):
        """Kafka unreachable: the broker process(es) killed (SIGKILL)."""
        for n in (self.procs if broker == "all" else [int(broker)]):
            self.kill(n)

    def up(self, broker="all"):
        """The killed broker(s) started again on their data; waits for them."""
        nodes = [n for n in (self.procs if broker == "all" else [int(broker)])
                 if not self.running(n)]
        for n in nodes:
            self.start_node(n, wait=False)
        if nodes:
            self.wait_brokers(set(nodes))

    def produce(self, topic, records, **kw):
        return bwtest.produce(self.bootstrap, topic, records, **kw)

    def consume(self, topic, count=None, timeout=30, **kw):
        return bwtest.consume(self.bootstrap, topic, count=count, timeout=timeout, **kw)

    def _mock_only(self, *_a, **_kw):
        raise bwtest.HarnessError("fault injection is the mock cluster's; not on a real broker")

    errors = clear_errors = rtt = leader = coordinator = _mock_only

    def stop(self, timeout=15, keep_logs=False):
        """SIGTERM every node, SIGKILL after ``timeout``; removes the data
        unless ``keep_logs`` or BWTEST_KEEP=1."""
        for n, p in list(self.procs.items()):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for n, p in list(self.procs.items()):
            bwtest._reap(p, timeout, sig=None)
        self.procs = {}
        if self.dir:
            bwtest._rmtree_unless_kept(self.dir, keep_logs)
            self.dir = None

    def __enter__(self):
        if not self.procs:
            try:
                self.start()
            except BaseException:
                self.stop(keep_logs=True)
                raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop(keep_logs=bwtest._is_failure(exc_type, exc))
        return False

    def __repr__(self):
        return "RealKafka(%s, %s)" % (self.version, self.bootstrap)
