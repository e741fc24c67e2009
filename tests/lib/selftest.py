#!/usr/bin/python3
"""Self-test of the Kafka side of tests/lib/bwtest.py.

Needs MOCKKAFKA (path to tests/kafka/mockkafka) and kcat (KCAT, default on
PATH). Starts a mock cluster, produces records that stress kcat's framing
(NULL key, empty value, NULL value, newline/CR/tab, the default delimiter
bytes, non-UTF-8 bytes, headers), consumes them back and checks they
round-trip exactly, in order, with keyed records partitioned consistently.
Also checks the control channel (ping, broker down/up, injected errors).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bwtest  # noqa: E402


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def records_of(msgs):
    return [(m["key"], m["value"]) for m in msgs]


def test_roundtrip(mk):
    topic = bwtest.TOPIC_EVENTS
    sent = [
        (None, "value with a null key"),
        ("user-empty@sp.com", ""),
        ("k\tey@sp.com", "line one\nline two\r\n\tindented"),
    ]
    bwtest.produce(mk.bootstrap, topic, sent)
    got = bwtest.consume(mk.bootstrap, topic, count=3, timeout=30)
    check(len(got) == 3, "expected 3 records, got %r" % (got,))
    check(sorted(records_of(got), key=repr) == sorted(sent, key=repr),
          "round trip mismatch:\nsent %r\ngot  %r" % (sent, records_of(got)))
    by_key = {m["key"]: m for m in got}
    check(by_key[None]["value"] == "value with a null key", "null key lost")
    check(by_key["user-empty@sp.com"]["value"] == "", "empty value not empty")
    check(all(m["headers"] == {} for m in got), "unexpected headers")
    for m in got:
        check(m["topic"] == topic and 0 <= m["partition"] < 4, "bad envelope %r" % m)


def test_key_partitioning(mk):
    """Same key → same partition, in produce order; several runs of kcat."""
    topic = bwtest.TOPIC_RESULTS
    keys = ["user%d@sp.com" % i for i in range(12)]
    first = [(k, "a-" + k) for k in keys]
    second = [(k, "b-" + k) for k in keys]
    bwtest.produce(mk.bootstrap, topic, first)
    bwtest.produce(mk.bootstrap, topic, second)
    got = bwtest.consume(mk.bootstrap, topic, count=24, timeout=30)
    check(len(got) == 24, "expected 24, got %d" % len(got))
    parts = {}
    for m in got:
        parts.setdefault(m["key"], set()).add(m["partition"])
    check(all(len(p) == 1 for p in parts.values()), "a key spans partitions: %r" % parts)
    check(len({next(iter(p)) for p in parts.values()}) > 1, "all keys in one partition")
    for k in keys:
        vals = [m["value"] for m in got if m["key"] == k]
        check(vals == ["a-" + k, "b-" + k], "order for %s: %r" % (k, vals))


def test_tricky_values(mk):
    """NULL value next to empty ones (split into kcat runs), delimiter bytes
    in data, non-UTF-8 bytes, empty key, headers on every record."""
    topic = bwtest.TOPIC_DLQ
    sent = [
        ("u1", None),                       # tombstone
        ("u1", ""),                         # empty, not NULL
        ("u1", "has \x1e and \x1f inside"),  # the default delimiters
        ("", "empty key"),
        ("u1", b"\xff\xfe raw \x00 bytes"),
        ("u1", '{"eventId":"e1","type":"workspace.provision"}'),
        (None, None),
    ]
    bwtest.produce(mk.bootstrap, topic, sent,
                   headers={"bwprovd-error": "invalid JSON", "bwprovd-source": "t/1/2",
                            "nullh": None})
    got = bwtest.consume(mk.bootstrap, topic, count=len(sent), timeout=30)
    check(len(got) == len(sent), "expected %d, got %d" % (len(sent), len(got)))
    u1 = [m for m in got if m["key"] == "u1"]
    want_u1 = [None, "", "has \x1e and \x1f inside",
               b"\xff\xfe raw \x00 bytes".decode("utf-8", "surrogateescape"),
               '{"eventId":"e1","type":"workspace.provision"}']
    check([m["value"] for m in u1] == want_u1,
          "u1 values: %r" % [m["value"] for m in u1])
    check(u1[3]["value"].encode("utf-8", "surrogateescape") == b"\xff\xfe raw \x00 bytes",
          "raw bytes do not round-trip")
    check([m["value"] for m in got if m["key"] == ""] == ["empty key"], "empty key")
    check([m["value"] for m in got if m["key"] is None] == [None], "null key + null value")
    for m in got:
        check(m["headers"] == {"bwprovd-error": "invalid JSON", "bwprovd-source": "t/1/2",
                               "nullh": None}, "headers: %r" % m["headers"])
    res = bwtest.results_by_event(u1)
    check(list(res.get("e1", [{}]))[0].get("type") == "workspace.provision",
          "results_by_event: %r" % res)


def test_events(mk):
    ev = bwtest.provision("95547321@sp.com", primaryPhoneNumber="+1-240-555-1212")
    check(ev["workspace"]["displayName"] == "Room 95547321@sp.com", "displayName default")
    check(ev["workspace"]["primaryPhoneNumber"] == "+1-240-555-1212", "workspace field")
    up = bwtest.update("95547321@sp.com", extension="51212", workspaceId="W1")
    check(up["workspaceId"] == "W1" and up["workspace"] == {"userId": "95547321@sp.com",
                                                             "extension": "51212"}, repr(up))
    rm = bwtest.remove("95547321@sp.com", event_id="fixed-id")
    check(rm["eventId"] == "fixed-id" and rm["type"] == "workspace.remove", repr(rm))
    bad = bwtest.provision("x@sp.com", displayName=None)
    check("displayName" not in bad["workspace"], "None must remove a field")
    bwtest.produce(mk.bootstrap, bwtest.TOPIC_STATE, [ev, up, rm])
    got = bwtest.consume(mk.bootstrap, bwtest.TOPIC_STATE, count=3, timeout=30)
    check({m["partition"] for m in got} and len({m["partition"] for m in got}) == 1,
          "one user's events must share a partition")
    by = bwtest.results_by_event(got)
    check(set(by) == {ev["eventId"], up["eventId"], "fixed-id"}, repr(by.keys()))


def test_control(mk):
    check(mk.command("ping") == "OK", "ping")
    check(mk.command("bogus").startswith("ERR "), "bogus command accepted")
    mk.errors("Produce", 2, "NOT_LEADER_FOR_PARTITION")  # retriable: producer retries
    bwtest.produce(mk.bootstrap, "selftest.retry", [("k", "v")])
    got = bwtest.consume(mk.bootstrap, "selftest.retry", count=1, timeout=30)
    check(records_of(got) == [("k", "v")], "after injected errors: %r" % got)
    mk.down("all")
    try:
        bwtest.produce(mk.bootstrap, "selftest.retry", [("k", "v2")], timeout=5)
        raise AssertionError("produce succeeded with every broker down")
    except bwtest.HarnessError:
        pass
    mk.up("all")
    bwtest.produce(mk.bootstrap, "selftest.retry", [("k", "v3")])
    got = bwtest.consume(mk.bootstrap, "selftest.retry", count=2, timeout=30)
    check([m["value"] for m in got] == ["v", "v3"], "after up: %r" % got)


def main():
    with bwtest.MockKafka(partitions=4) as mk:
        check(mk.bootstrap.startswith("127.0.0.1:"), "bootstrap %r" % mk.bootstrap)
        for t in (test_roundtrip, test_key_partitioning, test_tricky_values, test_events,
                  test_control):
            t(mk)
            print("ok  %s" % t.__name__, flush=True)
        rc = mk.stop()
        check(rc == 0, "mockkafka exit status %r" % rc)
    print("selftest passed")


if __name__ == "__main__":
    main()
