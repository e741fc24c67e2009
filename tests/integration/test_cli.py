#!/usr/bin/python3
"""The command line contract (SPEC §7): --version, --help, usage errors (64),
configuration errors naming key and file:line (78), --check-config with
secrets redacted, and exit 69 when Kafka never answers at start-up."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import bwtest  # noqa: E402

BIN = bwtest.require_env("BWPROVD")


STATE = tempfile.mkdtemp(prefix="bwt-cli-")  # as systemd's StateDirectory= would give


def run(*args, timeout=30):
    env = dict(os.environ, STATE_DIRECTORY=STATE)
    p = subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=env)
    return p.returncode, p.stdout, p.stderr


def write(d, name, text, mode=0o600):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def main():
    rc, out, _ = run("--version")
    assert rc == 0 and out.startswith("bwprovd "), (rc, out)
    rc, out, _ = run("--help")
    assert rc == 0 and "--check-config" in out
    rc, _, err = run("--no-such-option")
    assert rc == 64, rc
    rc, _, err = run("-c", "/nonexistent/bwprovd.conf")
    assert rc == 78 and "/nonexistent/bwprovd.conf" in err, (rc, err)

    with tempfile.TemporaryDirectory() as d:
        tok = write(d, "token", "s3cr3t-access-token\n")
        good = ("# comment\nkafka.bootstrap.servers = 127.0.0.1:1\n"
                "webex.base_url = http://127.0.0.1:9/v1\n"
                "webex.access_token_file = %s\nkafka.sasl.password = hunter2-secret\n" % tok)
        conf = write(d, "ok.conf", good)
        rc, out, err = run("-c", conf, "--check-config")
        assert rc == 0, (rc, err)
        assert "webex.max_in_flight = 64" in out and "kafka.group.id = bwprovd" in out, out
        assert "hunter2-secret" not in out and "s3cr3t-access-token" not in out, out
        assert "kafka.sasl.password = (redacted)" in out, out

        rc, out, err = run("-c", conf, "-X", "webex.max_in_flight=1024", "--check-config")
        assert rc == 0 and "webex.max_in_flight = 1024" in out, (rc, out, err)

        cases = [
            ("webex.max_in_flight = lots\n", "webex.max_in_flight", 6),
            ("retry.max_attempts = 0\n", "retry.max_attempts", 6),
            ("log.level = chatty\n", "log.level", 6),
            ("no.such.key = 1\n", "no.such.key", 6),
            ("kafka.no.such.property = 1\n", "kafka.no.such.property", 6),
            ("webex.base_url = http://webexapis.com/v1\n", "webex.base_url", 6),
            ("just some words\n", "expected 'key = value'", 6),
        ]
        for extra, key, line in cases:
            bad = write(d, "bad.conf", good + extra)
            rc, out, err = run("-c", bad, "--check-config")
            assert rc == 78, (extra, rc)
            assert key in err and "%s:%d" % (bad, line) in err, (extra, err)
            assert "hunter2-secret" not in err + out
            rc, _, err = run("-c", bad)  # the daemon itself, not only --check-config
            assert rc == 78 and "%s:%d" % (bad, line) in err, (extra, rc, err)

        rc, _, err = run("-c", conf, "-X", "pipeline.max_pending=-5")
        assert rc == 78 and "pipeline.max_pending" in err and "-X" in err, (rc, err)

        # A journal directory that cannot be made: a clear message, 78.
        rc, _, err = run("-c", conf, "-X", "state.journal_dir=/nonexistent/dir")
        assert rc == 78 and "/nonexistent/dir/journal" in err, (rc, err)

        # Nothing listens on 127.0.0.1:1: Kafka never answers -> 69.
        rc, _, err = run("-c", conf, "-X", "startup.timeout_ms=1500", timeout=60)
        assert rc == 69, (rc, err)
        assert "s3cr3t-access-token" not in err
    shutil.rmtree(STATE, ignore_errors=True)
    print("cli: all exit codes and messages as specified")


if __name__ == "__main__":
    main()
