/* Unit tests for common/strec.c: the rules by which every reader of the
 * state topic (the daemon's loader, the operator subcommands) takes a
 * record into its table: keys, source coordinates, markers, tombstones,
 * late writers, records it ignores. */
#include "check.h"
#include "event.h"
#include "strec.h"

#include <stdlib.h>
#include <string.h>

#define EV "broadworks.provisioning.events"
#define WS1 "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw"

static void test_key(void)
{
    char user[EV_MAX_USER_ID + 1];
    char long_key[EV_MAX_USER_ID + 2];
    memset(long_key, 'u', sizeof(long_key));

    CHECK(sr_key("u1@sp", 5, user));
    CHECK_EQ_STR(user, "u1@sp");
    CHECK(!sr_key(NULL, 0, user));
    CHECK(!sr_key("", 0, user));
    CHECK(!sr_key("a\0b", 3, user));
    CHECK(sr_key(long_key, EV_MAX_USER_ID, user));
    CHECK_EQ_INT(strlen(user), EV_MAX_USER_ID);
    CHECK_WHY(!sr_key(long_key, EV_MAX_USER_ID + 1, user), "a key longer than a userId");
}

static void test_coords(void)
{
    char topic[256];
    struct st_src src = {NULL, -1, -1};
    const char *v = EV "/3/1842";

    CHECK(sr_parse_coords(v, strlen(v), topic, sizeof(topic), &src));
    CHECK_EQ_STR(src.topic, EV);
    CHECK_EQ_INT(src.partition, 3);
    CHECK_EQ_INT(src.offset, 1842);
    /* the topic is everything before the last two slashes */
    v = "a/b/7/9";
    CHECK(sr_parse_coords(v, strlen(v), topic, sizeof(topic), &src));
    CHECK_EQ_STR(src.topic, "a/b");
    CHECK_EQ_INT(src.offset, 9);

    struct st_src untouched = {NULL, -7, -7};
    v = "bwprovd:import/-1/-1";
    CHECK(sr_parse_coords(v, strlen(v), topic, sizeof(topic), &src));
    CHECK(src.partition == -1 && src.offset == -1);
    /* whole numbers in range only: no trailing text, no overflow */
    static const char *const bad[] = {"",
                                      "x",
                                      "x/1",
                                      "x/y/z",
                                      "x/1/z",
                                      "x/3x/5",
                                      "x/3/5 ",
                                      "x/ 3/5",
                                      "x/2147483648/5",
                                      "x/1/+-1",
                                      "x/1/99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!sr_parse_coords(bad[i], strlen(bad[i]), topic, sizeof(topic), &untouched));
        CHECK(untouched.topic == NULL && untouched.partition == -7);
    }
    char huge[600];
    memset(huge, 'a', sizeof(huge));
    memcpy(huge + sizeof(huge) - 4, "/1/2", 4);
    CHECK_WHY(!sr_parse_coords(huge, sizeof(huge), topic, sizeof(topic), &untouched),
              "a header longer than the buffer is refused, not truncated");
    CHECK(!sr_parse_coords(NULL, 0, topic, sizeof(topic), &untouched));
}

static char *record(const char *ws, int32_t partition, int64_t offset, const char *extra)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"kind\":\"workspace\",\"workspaceId\":\"%s\",\"userId\":\"u1\","
             "\"source\":{\"topic\":\"" EV "\",\"partition\":%d,\"offset\":%lld}%s}",
             ws, (int)partition, (long long)offset, extra ? extra : "");
    return buf;
}

static void test_apply(void)
{
    struct st_table *t = st_new();
    char ws[128];
    const char *why = NULL;
    if (!t)
        exit(2);
    char *r = record(WS1, 2, 10, NULL);
    CHECK_EQ_INT(sr_apply(t, "u1", r, strlen(r), NULL, NULL), SR_APPLIED);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, WS1);

    /* a late writer: same partition, lower offset */
    r = record("OTHER", 2, 9, NULL);
    CHECK_EQ_INT(sr_apply(t, "u1", r, strlen(r), NULL, NULL), SR_OLDER);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, WS1);

    /* another partition applies in log order (a rename) */
    r = record("OTHER", 1, 0, NULL);
    CHECK_EQ_INT(sr_apply(t, "u1", r, strlen(r), NULL, NULL), SR_APPLIED);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, "OTHER");

    r = record(WS1, 1, 5, ",\"removed\":true");
    CHECK_EQ_INT(sr_apply(t, "u1", r, strlen(r), NULL, NULL), SR_APPLIED);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_REMOVED);

    struct st_src tomb = {NULL, -1, -1};
    r = record(WS1, 0, 1, NULL);
    CHECK_EQ_INT(sr_apply(t, "u2", r, strlen(r), NULL, NULL), SR_APPLIED);
    CHECK_EQ_INT(sr_apply(t, "u2", NULL, 0, &tomb, NULL), SR_APPLIED);
    CHECK_EQ_INT(st_get(t, "u2", ws, sizeof(ws)), ST_REMOVED);

    CHECK_EQ_INT(sr_apply(t, "u3", "[1]", 3, NULL, NULL), SR_NOT_JSON);
    CHECK_EQ_INT(sr_apply(t, "u3", "{", 1, NULL, NULL), SR_NOT_JSON);
    const char *dev = "{\"kind\":\"device\",\"deviceId\":\"D\"}";
    CHECK_EQ_INT(sr_apply(t, "u3", dev, strlen(dev), NULL, NULL), SR_OTHER_KIND);
    /* A subscriber's record (SPEC §2b): its id, and where it stands. */
    const char *sub = "{\"kind\":\"subscriber\",\"subscriberId\":\"S\",\"status\":\"updating\","
                      "\"source\":{\"topic\":\"t\",\"partition\":0,\"offset\":1}}";
    CHECK_EQ_INT(sr_apply(t, "s1", sub, strlen(sub), NULL, NULL), SR_APPLIED);
    struct st_kind k;
    CHECK_EQ_INT(st_get_kind(t, "s1", ws, sizeof(ws), &k, NULL, NULL, 0), ST_PRESENT);
    CHECK(k.subscriber && k.pending);
    CHECK_EQ_STR(ws, "S");
    const char *subbad = "{\"kind\":\"subscriber\",\"subscriberId\":\"..\"}";
    CHECK_EQ_INT(sr_apply(t, "s2", subbad, strlen(subbad), NULL, &why), SR_BAD_ID);
    CHECK_CONTAINS(why, "subscriberId");
    r = record("a/b", 0, 1, NULL);
    CHECK_EQ_INT(sr_apply(t, "u3", r, strlen(r), NULL, &why), SR_BAD_ID);
    CHECK_CONTAINS(why, "workspaceId");
    const char *none = "{\"kind\":\"workspace\",\"userId\":\"u3\"}";
    CHECK_EQ_INT(sr_apply(t, "u3", none, strlen(none), NULL, &why), SR_BAD_ID);
    CHECK_CONTAINS(why, "missing");
    CHECK_EQ_INT(st_get(t, "u3", ws, sizeof(ws)), ST_ABSENT);
    st_free(t);
}

int main(void)
{
    test_key();
    test_coords();
    test_apply();
    return check_done();
}
