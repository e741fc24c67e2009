#!/usr/bin/python3
"""No secret leaks: a full run with the refresh-token flow (tokens expire
mid-run and the refresh token rotates), an inline librdkafka password, debug
logging, failed and rejected events; then every log line, STATUS= string,
result, DLQ and state record and the --check-config output is searched for
the access tokens, the client secret, the refresh tokens and the password."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

CLIENT_ID = "bwprovd-test-client"
CLIENT_SECRET = "S3cr3t-client-secret-4f1c9e"
REFRESH = "R3fresh-token-initial-77ab01"
ACCESS = "Acc3ss-token-initial-5d2e88"
KAFKA_PASSWORD = "Kafka-sasl-password-90ce12"


def write_secret(d, name, value):
    path = os.path.join(d.dir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return path


def main():
    args = ["--refresh-token", REFRESH, "--client-id", CLIENT_ID, "--client-secret",
            CLIENT_SECRET, "--token", ACCESS]
    faults = {"refreshRotate": True, "tokenLifetimeS": 3600}
    with bwtest.MockKafka(partitions=2) as mk, \
            bwtest.WebSim(token=ACCESS, args=args, faults=faults) as sim:
        d = bwtest.Daemon(mk.bootstrap, sim, token=ACCESS)
        d.config.update({
            "webex.client_id": CLIENT_ID,
            "webex.client_secret_file": write_secret(d, "client-secret", CLIENT_SECRET),
            "webex.refresh_token_file": write_secret(d, "refresh-token", REFRESH),
            "kafka.sasl.password": KAFKA_PASSWORD,
            "log.level": "debug",
        })
        with d:
            d.wait_ready(60)
            evs = [bwtest.provision("sec%03d@sp.com" % i) for i in range(60)]
            evs.append(bwtest.update("nobody@sp.com", extension="1"))  # fails: unknown
            mk.produce(bwtest.TOPIC_EVENTS, evs[:30] + [("bad@sp.com", "{not json")])
            mk.consume(bwtest.TOPIC_RESULTS, count=31, timeout=60)
            sim.faults({"tokenExpiry": {"now": True}})  # forces a refresh and a rotation
            mk.produce(bwtest.TOPIC_EVENTS, evs[30:])
            res = mk.consume(bwtest.TOPIC_RESULTS, count=len(evs) + 1, timeout=60)
            d.reload()  # re-reads the token and the file: more log lines
            d.wait_notification("READY", timeout=10, after=d.notifications[-1].t)
            assert d.stop() == 0, d.log_tail()
            check = d.check_config()
            assert check.returncode == 0, check.stderr
            tokens = [r for r in sim.all_requests() if r["path"].endswith("/access_token")]
            assert tokens and all(r["auth"] for r in tokens), tokens
            with open(os.path.join(d.dir, "refresh-token")) as f:
                rotated = f.read().strip()
            assert rotated != REFRESH, "the refresh token was not rotated"
            secrets = {"access token": ACCESS, "client secret": CLIENT_SECRET,
                       "refresh token": REFRESH, "rotated refresh token": rotated,
                       "kafka password": KAFKA_PASSWORD}
            # The access tokens the simulator issued during the run are not
            # exposed by it; the rotated refresh token (read back from the
            # file bwprovd wrote) stands for the secrets that came over the wire.
            haystacks = {
                "log": "\n".join(d.log_lines(all_runs=True)),
                "STATUS": "\n".join(d.statuses()),
                "results": "\n".join(m["value"] or "" for m in res),
                "DLQ": "\n".join((m["value"] or "") + str(m["headers"])
                                 for m in mk.consume(bwtest.TOPIC_DLQ)),
                "state": "\n".join((m["value"] or "") + str(m["headers"])
                                   for m in mk.consume(bwtest.TOPIC_STATE)),
                "--check-config": check.stdout + check.stderr,
            }
            assert len(haystacks["log"]) > 10000, "suspiciously little logging"
            for where, text in haystacks.items():
                for what, secret in secrets.items():
                    assert secret not in text, "%s found in %s" % (what, where)
            assert "kafka.sasl.password = (redacted)" in check.stdout
    print("secrets: none of %d secrets in %d bytes of logs, STATUS, records, --check-config"
          % (len(secrets), sum(len(t) for t in haystacks.values())))


if __name__ == "__main__":
    main()
