/* Unit tests for common/dlq.c: what `bwprovd dlq list/replay` read from a
 * DLQ record, the filters and TIME syntax, and the replay decision
 * (refused, loop guard, stale, --force). */
#include "check.h"
#include "dlq.h"

#include <string.h>

#define EV "broadworks.provisioning.events"
#define NOW 1796000000000LL /* 2026-11-30T00:53:20Z */

static int64_t t(const char *s)
{
    int64_t ms = -42;
    return dq_parse_time(s, NOW, &ms) == 0 ? ms : -42;
}

static void test_time(void)
{
    CHECK_EQ_INT(t("now"), NOW);
    CHECK_EQ_INT(t("30s"), NOW - 30000);
    CHECK_EQ_INT(t("15m"), NOW - 900000);
    CHECK_EQ_INT(t("2h"), NOW - 7200000);
    CHECK_EQ_INT(t("7d"), NOW - 7 * 86400000LL);
    CHECK_EQ_INT(t("1w"), NOW - 7 * 86400000LL);
    CHECK_EQ_INT(t("2026-11-26"), 1795651200000LL);
    CHECK_EQ_INT(t("2026-11-26T10:00"), 1795651200000LL + 36000000);
    CHECK_EQ_INT(t("2026-11-26T10:00:00Z"), 1795651200000LL + 36000000);
    CHECK_EQ_INT(t("2026-11-26 10:00:05.25Z"), 1795651200000LL + 36005250);
    CHECK_EQ_INT(t("2026-11-26T10:00:00.412Z"), 1795651200000LL + 36000412);
    CHECK_EQ_INT(t("2026-11-26T11:00:00+01:00"), 1795651200000LL + 36000000);
    CHECK_EQ_INT(t("2026-11-26T04:30:00-0530"), 1795651200000LL + 36000000);
    CHECK_EQ_INT(t("2024-02-29"), 1709164800000LL);
    static const char *const bad[] = {
        "",
        "yesterday",
        "5",
        "5x",
        "-5m",
        "2026-02-30",
        "2025-02-29",
        "2026-13-01",
        "2026-11-26T25:00",
        "2026-11-26T10:60",
        "2026-11-26T10",
        "2026-11-26T10:00:00+24:00",
        "2026-11-26T10:00:00.Z",
        "2026-11-26T10:00:00 Z",
        "1969-12-31",
        "2026-1-2",
        "9999999999w",
        "26-11-2026",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_WHY(t(bad[i]) == -42, bad[i]);
    CHECK_EQ_INT(dq_parse_time(NULL, NOW, &(int64_t){0}), -1);
}

static void test_kinds(void)
{
    CHECK(dq_kind_known("exhausted"));
    CHECK(dq_kind_known("unknown_workspace"));
    CHECK(dq_kind_known("invalid"));
    CHECK(!dq_kind_known("Exhausted"));
    CHECK(!dq_kind_known(""));
    CHECK_CONTAINS(dq_kind_list, "permanent");
}

static struct dq_bytes hdr(const char *s)
{
    return (struct dq_bytes){s, s ? strlen(s) : 0, s != NULL};
}

static void info(struct dq_info *i, const char *key, const char *value, const char *error,
                 const char *source, const char *count, const char *origin)
{
    struct dq_raw raw = {
        .key = key,
        .keylen = key ? strlen(key) : 0,
        .value = value,
        .len = value ? strlen(value) : 0,
        .ts_ms = NOW,
        .error = hdr(error),
        .source = hdr(source),
        .replay_count = hdr(count),
        .replay_source = hdr(origin),
    };
    dq_info_from(&raw, i);
}

static void test_info(void)
{
    struct dq_info i;
    info(&i, "u1", "{\"type\":\"workspace.update\",\"eventId\":\"e\"}",
         "exhausted: HTTP 503: down (Webex trackingId X)", EV "/3/42", NULL, NULL);
    CHECK(i.has_user);
    CHECK_EQ_STR(i.user, "u1");
    CHECK_EQ_STR(i.kind, "exhausted");
    CHECK_EQ_INT(i.reason_len, strlen("HTTP 503: down (Webex trackingId X)"));
    CHECK(memcmp(i.reason, "HTTP 503: down", 14) == 0);
    CHECK_EQ_STR(i.type, "workspace.update");
    CHECK(i.has_source && i.has_origin);
    CHECK_EQ_STR(i.source.topic, EV);
    CHECK_EQ_INT(i.source.partition, 3);
    CHECK_EQ_INT(i.source.offset, 42);
    CHECK_EQ_STR(i.origin.topic, EV);
    CHECK_EQ_INT(i.origin.offset, 42);
    CHECK_EQ_INT(i.replays, 0);

    /* a replayed event that failed again: the first failure is the origin */
    info(&i, "u1", "not json", "permanent: nope", EV "/3/90", "2", EV "/3/42");
    CHECK_EQ_STR(i.type, "");
    CHECK_EQ_INT(i.replays, 2);
    CHECK_EQ_INT(i.source.offset, 90);
    CHECK_EQ_INT(i.origin.offset, 42);

    info(&i, NULL, "", NULL, NULL, "x", NULL);
    CHECK(!i.has_user && !i.has_source && !i.has_origin);
    CHECK_EQ_STR(i.kind, "");
    CHECK(i.reason == NULL);
    CHECK_EQ_INT(i.replays, -1);
    info(&i, "u", "{}", "no colon here", "garbage", "99999999999", NULL);
    CHECK_EQ_STR(i.kind, "");
    CHECK_EQ_INT(i.reason_len, strlen("no colon here"));
    CHECK_EQ_INT(i.replays, -1);
    CHECK(!i.has_source);
}

static void test_match(void)
{
    struct dq_info i;
    info(&i, "u1", "{}", "exhausted: x", EV "/0/1", NULL, NULL);
    struct dq_filter f = {0};
    CHECK(dq_match(&f, &i));
    f.user = "u1";
    f.kind = "exhausted";
    CHECK(dq_match(&f, &i));
    f.user = "u2";
    CHECK(!dq_match(&f, &i));
    f.user = NULL;
    f.kind = "permanent";
    CHECK(!dq_match(&f, &i));
    f.kind = NULL;
    f.has_since = true;
    f.since_ms = NOW; /* since is inclusive */
    CHECK(dq_match(&f, &i));
    f.since_ms = NOW + 1;
    CHECK(!dq_match(&f, &i));
    f.has_since = false;
    f.has_until = true;
    f.until_ms = NOW; /* until is exclusive */
    CHECK(!dq_match(&f, &i));
    f.until_ms = NOW + 1;
    CHECK(dq_match(&f, &i));
    i.ts_ms = -1;
    CHECK_WHY(!dq_match(&f, &i), "a record without a timestamp matches no time filter");
}

static enum dq_verdict decide(const struct dq_info *i, const struct st_src *entry, bool force,
                              char *why)
{
    return dq_decide(i, EV, 4, entry, force, why, 200);
}

static void test_decide(void)
{
    struct dq_info i;
    char why[200];
    struct st_src newer = {EV, 3, 50}, older = {EV, 3, 40}, other = {EV, 1, 99};
    struct st_src imported = {"bwprovd:import", -1, -1};

    info(&i, "u1", "{}", "exhausted: x", EV "/3/42", NULL, NULL);
    CHECK_EQ_INT(decide(&i, NULL, false, why), DQ_REPLAY);
    CHECK_EQ_STR(why, "");
    CHECK_EQ_INT(decide(&i, &older, false, why), DQ_REPLAY);
    CHECK_EQ_INT(decide(&i, &other, false, why), DQ_REPLAY);
    CHECK_EQ_INT(decide(&i, &imported, false, why), DQ_REPLAY);
    CHECK_EQ_INT(decide(&i, &newer, false, why), DQ_STALE);
    CHECK_CONTAINS(why, "offset 50");
    CHECK_EQ_INT(decide(&i, &newer, true, why), DQ_REPLAY);
    struct st_src same = {EV, 3, 42};
    CHECK_EQ_INT(decide(&i, &same, false, why), DQ_REPLAY);

    /* a replay that failed again is judged by its first failure (42), not
     * by its own offset (90): the change at 50 came after the event */
    info(&i, "u1", "{}", "exhausted: x", EV "/3/90", "1", EV "/3/42");
    CHECK_EQ_INT(decide(&i, &newer, false, why), DQ_STALE);

    info(&i, "u1", "{}", "exhausted: x", EV "/3/90", "2", EV "/3/42");
    CHECK_EQ_INT(decide(&i, NULL, false, why), DQ_REPLAY);
    info(&i, "u1", "{}", "exhausted: x", EV "/3/90", "3", EV "/3/42");
    CHECK_EQ_INT(decide(&i, NULL, false, why), DQ_LOOP_GUARD);
    CHECK_WHY(decide(&i, NULL, true, why) == DQ_LOOP_GUARD, "--force does not lift the loop guard");

    info(&i, NULL, "{}", "exhausted: x", EV "/3/42", NULL, NULL);
    CHECK_EQ_INT(decide(&i, NULL, true, why), DQ_REFUSED);
    CHECK_CONTAINS(why, "key");
    info(&i, "u1", "{}", "exhausted: x", NULL, NULL, NULL);
    CHECK_EQ_INT(decide(&i, NULL, true, why), DQ_REFUSED);
    CHECK_CONTAINS(why, "bwprovd-source");
    info(&i, "u1", "{}", "exhausted: x", "other.topic/3/42", NULL, NULL);
    CHECK_EQ_INT(decide(&i, NULL, true, why), DQ_REFUSED);
    CHECK_CONTAINS(why, "other.topic");
    info(&i, "u1", "{}", "exhausted: x", EV "/4/42", NULL, NULL);
    CHECK_EQ_INT(decide(&i, NULL, true, why), DQ_REFUSED);
    CHECK_CONTAINS(why, "partition 4");
    info(&i, "u1", "{}", "exhausted: x", EV "/3/42", "two", NULL);
    CHECK_EQ_INT(decide(&i, NULL, true, why), DQ_REFUSED);
    info(&i, "u1", "{", "invalid: invalid JSON", EV "/3/42", NULL, NULL);
    CHECK_EQ_INT(decide(&i, NULL, false, why), DQ_REFUSED);
    CHECK_CONTAINS(why, "rejected again");
    CHECK_EQ_INT(decide(&i, NULL, true, why), DQ_REPLAY);
}

static void test_headers(void)
{
    struct dq_info i;
    char of[300], count[16], origin[300];
    info(&i, "u1", "{}", "exhausted: x", EV "/3/42", NULL, NULL);
    dq_replay_headers(&i, "dlq", 1, 7, of, sizeof(of), count, sizeof(count), origin,
                      sizeof(origin));
    CHECK_EQ_STR(of, "dlq/1/7");
    CHECK_EQ_STR(count, "1");
    CHECK_EQ_STR(origin, EV "/3/42");
    info(&i, "u1", "{}", "exhausted: x", EV "/3/90", "2", EV "/3/42");
    dq_replay_headers(&i, "dlq", 0, 9, of, sizeof(of), count, sizeof(count), origin,
                      sizeof(origin));
    CHECK_EQ_STR(count, "3");
    CHECK_EQ_STR(origin, EV "/3/42");
}

static void test_escape(void)
{
    char out[32];
    const char in[] = "a\tb\nc\\d\x01";
    dq_escape(in, sizeof(in) - 1, out, sizeof(out));
    CHECK_EQ_STR(out, "a\\tb\\nc\\\\d\\x01");
    dq_escape("0123456789abcdef", 16, out, 10);
    CHECK_EQ_STR(out, "012345...");
    dq_escape(NULL, 5, out, sizeof(out));
    CHECK_EQ_STR(out, "");
}

int main(void)
{
    test_time();
    test_kinds();
    test_info();
    test_match();
    test_decide();
    test_headers();
    test_escape();
    return check_done();
}
