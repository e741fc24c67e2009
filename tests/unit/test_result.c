/* Unit tests for common/result.c: the SPEC §6 result record and the SPEC §4
 * state record, parsed back with json-c: every key in its order, nulls,
 * the error object, the source object, the timestamp format and escaped
 * free text. */
#include "check.h"
#include "jsonutil.h"
#include "result.h"

#include <stdlib.h>
#include <string.h>

#define T0 1795687200412LL /* 2026-11-26T10:00:00.412Z */

static const char *const result_keys[] = {
    "eventId",  "type", "userId", "outcome", "httpStatus",  "workspaceId", "trackingId",
    "attempts", "note", "error",  "source",  "completedAt", "latencyMs",
};
#define N_RESULT_KEYS (sizeof(result_keys) / sizeof(result_keys[0]))

static json_object *to_json(const struct res_record *r)
{
    size_t len = 0;
    char *s = res_to_json(r, &len);
    if (!CHECK_NOT_NULL(s))
        return NULL;
    CHECK_EQ_INT(len, strlen(s));
    CHECK(strchr(s, '\n') == NULL); /* one record, one line */
    json_object *o = ju_parse(s, len);
    if (!CHECK_NOT_NULL(o))
        fprintf(stderr, "  not JSON: %s\n", s);
    free(s);
    if (o) {
        CHECK_EQ_INT(ju_count(o), N_RESULT_KEYS);
        for (size_t i = 0; i < N_RESULT_KEYS; i++)
            if (!CHECK(ju_get(o, result_keys[i], &(json_object *){NULL})))
                fprintf(stderr, "  missing key %s\n", result_keys[i]);
        CHECK(ju_key_order(o, result_keys, N_RESULT_KEYS)); /* the SPEC §6 order */
    }
    return o;
}

static void check_source(json_object *o, const char *topic, int32_t partition, int64_t offset)
{
    json_object *src;
    if (!CHECK(ju_get(o, "source", &src) && json_object_is_type(src, json_type_object)))
        return;
    CHECK_EQ_INT(ju_count(src), 3);
    if (topic)
        CHECK_JSTR(src, "topic", topic);
    else
        CHECK_JNULL(src, "topic");
    CHECK_JINT(src, "partition", partition);
    CHECK_JINT(src, "offset", offset);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static bool time_format_ok(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != sizeof(pat) - 1)
        return false;
    for (size_t i = 0; pat[i]; i++)
        if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pat[i])
            return false;
    return true;
}

static void test_succeeded(void)
{
    struct res_record r = {
        .event_id = "b6d7e0c2-1f7a-4c35-9d38-5b8f0a7c1e11",
        .type = "workspace.provision",
        .user_id = "95547321@sp.com",
        .outcome = RES_SUCCEEDED,
        .http_status = 200,
        .workspace_id = "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJl",
        .tracking_id = "bwprovd_b6d7e0c2-1f7a-4c35-9d38-5b8f0a7c1e11",
        .attempts = 1,
        .note = NULL,
        .error_kind = NULL,
        .source = {"broadworks.provisioning.events", 3, 1842},
        .completed_ms = T0,
        .latency_ms = 412,
    };
    json_object *o = to_json(&r);
    CHECK_JSTR(o, "eventId", "b6d7e0c2-1f7a-4c35-9d38-5b8f0a7c1e11");
    CHECK_JSTR(o, "type", "workspace.provision");
    CHECK_JSTR(o, "userId", "95547321@sp.com");
    CHECK_JSTR(o, "outcome", "succeeded");
    CHECK_JINT(o, "httpStatus", 200);
    CHECK_JSTR(o, "workspaceId", "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJl");
    CHECK_JSTR(o, "trackingId", "bwprovd_b6d7e0c2-1f7a-4c35-9d38-5b8f0a7c1e11");
    CHECK_JINT(o, "attempts", 1);
    CHECK_JNULL(o, "note");
    CHECK_JNULL(o, "error");
    check_source(o, "broadworks.provisioning.events", 3, 1842);
    CHECK_JSTR(o, "completedAt", "2026-11-26T10:00:00.412Z");
    CHECK_JINT(o, "latencyMs", 412);
    json_object_put(o);

    /* A succeeded with a note (replayed, already_removed, ...). */
    r.note = "already_removed";
    r.http_status = 404;
    r.workspace_id = NULL;
    r.type = "workspace.remove";
    o = to_json(&r);
    CHECK_JSTR(o, "note", "already_removed");
    CHECK_JINT(o, "httpStatus", 404);
    CHECK_JNULL(o, "workspaceId");
    CHECK_JNULL(o, "error");
    json_object_put(o);

    /* A replay answered from the state table: no response, so null status. */
    r.note = "replayed";
    r.http_status = -1;
    r.attempts = 0;
    o = to_json(&r);
    CHECK_JNULL(o, "httpStatus");
    CHECK_JINT(o, "attempts", 0);
    json_object_put(o);
}

static void test_failed(void)
{
    struct res_record r = {
        .event_id = "e2",
        .type = "workspace.update",
        .user_id = "u1",
        .outcome = RES_FAILED,
        .http_status = 503,
        .workspace_id = "W1",
        .tracking_id = "bwprovd_e2",
        .attempts = 10,
        .error_kind = "exhausted",
        .error_message = "Service \"Unavailable\"\nline two \xc3\xa9",
        .source = {"t", 0, 0},
        .completed_ms = 0,
        .latency_ms = 123456789012LL,
    };
    json_object *o = to_json(&r);
    CHECK_JSTR(o, "outcome", "failed");
    CHECK_JINT(o, "httpStatus", 503);
    CHECK_JINT(o, "attempts", 10);
    CHECK_JNULL(o, "note");
    json_object *e;
    if (CHECK(ju_get(o, "error", &e) && json_object_is_type(e, json_type_object))) {
        CHECK_EQ_INT(ju_count(e), 2);
        CHECK_JSTR(e, "kind", "exhausted");
        CHECK_JSTR(e, "message", "Service \"Unavailable\"\nline two \xc3\xa9");
    }
    check_source(o, "t", 0, 0);
    CHECK_JSTR(o, "completedAt", "1970-01-01T00:00:00.000Z");
    CHECK_JINT(o, "latencyMs", 123456789012LL);
    json_object_put(o);

    /* Transport failure: no response at all. */
    r.http_status = -1;
    r.error_message = NULL;
    o = to_json(&r);
    CHECK_JNULL(o, "httpStatus");
    if (CHECK(ju_get(o, "error", &e) && json_object_is_type(e, json_type_object))) {
        CHECK_JSTR(e, "kind", "exhausted");
        CHECK_JNULL(e, "message");
    }
    json_object_put(o);

    /* Each error kind of SPEC §6 passes through. */
    static const char *const kinds[] = {"permanent", "exhausted",         "auth",
                                        "conflict",  "unknown_workspace", "invalid"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        r.error_kind = kinds[i];
        o = to_json(&r);
        CHECK(ju_get(o, "error", &e));
        CHECK_JSTR(e, "kind", kinds[i]);
        json_object_put(o);
    }
}

static void test_rejected(void)
{
    /* A rejected event may have no readable eventId, type or userId. */
    struct res_record r = {
        .outcome = RES_REJECTED,
        .http_status = -1,
        .attempts = 0,
        .error_kind = "invalid",
        .error_message = "invalid JSON: truncated",
        .source = {"broadworks.provisioning.events", 11, 9007199254740993LL},
        .completed_ms = T0 + 588,
        .latency_ms = 0,
    };
    json_object *o = to_json(&r);
    CHECK_JNULL(o, "eventId");
    CHECK_JNULL(o, "type");
    CHECK_JNULL(o, "userId");
    CHECK_JSTR(o, "outcome", "rejected");
    CHECK_JNULL(o, "httpStatus");
    CHECK_JNULL(o, "workspaceId");
    CHECK_JNULL(o, "trackingId");
    CHECK_JNULL(o, "note");
    CHECK_JINT(o, "attempts", 0);
    json_object *e;
    if (CHECK(ju_get(o, "error", &e) && e)) {
        CHECK_JSTR(e, "kind", "invalid");
        CHECK_JSTR(e, "message", "invalid JSON: truncated");
    }
    /* offsets above 2^53 are exact integers in the text */
    check_source(o, "broadworks.provisioning.events", 11, 9007199254740993LL);
    CHECK_JSTR(o, "completedAt", "2026-11-26T10:00:01.000Z");
    json_object_put(o);

    /* ... or a readable eventId with a NULL topic. */
    r.event_id = "e9";
    r.source.topic = NULL;
    o = to_json(&r);
    CHECK_JSTR(o, "eventId", "e9");
    check_source(o, NULL, 11, 9007199254740993LL);
    json_object_put(o);
}

static void test_names_and_time(void)
{
    CHECK_EQ_STR(res_outcome_name(RES_SUCCEEDED), "succeeded");
    CHECK_EQ_STR(res_outcome_name(RES_FAILED), "failed");
    CHECK_EQ_STR(res_outcome_name(RES_REJECTED), "rejected");

    static const struct {
        int64_t ms;
        const char *want;
    } times[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {999, "1970-01-01T00:00:00.999Z"},
        {1000, "1970-01-01T00:00:01.000Z"},
        {T0, "2026-11-26T10:00:00.412Z"},
        {951782400005LL, "2000-02-29T00:00:00.005Z"},
        {4102444799999LL, "2099-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char buf[40];
        res_format_time(times[i].ms, buf, sizeof(buf));
        CHECK_EQ_STR(buf, times[i].want);
        CHECK(time_format_ok(buf));
    }
    /* An exactly sized buffer holds it all. */
    char exact[25];
    res_format_time(T0, exact, sizeof(exact));
    CHECK_EQ_STR(exact, "2026-11-26T10:00:00.412Z");
    /* A short buffer is never overrun, and always holds a C string (like
     * snprintf). Below 20 bytes strftime() returns 0 and leaves the
     * buffer's contents indeterminate. */
    int overrun = 0, unterminated = 0;
    for (size_t cap = 1; cap <= 25; cap++) {
        char guard[32];
        memset(guard, '#', sizeof(guard));
        res_format_time(T0, guard, cap);
        overrun += guard[cap] != '#';
        if (memchr(guard, '\0', cap) == NULL) {
            if (unterminated++ == 0)
                fprintf(stderr, "  res_format_time(.., %zu) left \"%.*s\" unterminated\n", cap,
                        (int)cap, guard);
        } else if (strncmp(guard, "2026-11-26T10:00:00.412Z", strlen(guard)) != 0) {
            unterminated++;
        }
    }
    CHECK_EQ_INT(overrun, 0);
    CHECK_WHY(unterminated == 0,
              "result.c res_format_time() leaves out unterminated when outlen < 20");
}

/* Free text (an API error message, a display name) with every control
 * byte, quotes, backslashes, '/', DEL and UTF-8 comes back byte for byte;
 * a long one grows the record past its first buffer. */
static void test_escaping(void)
{
    char msg[128];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        msg[n++] = (char)c;
    const char *rest = " \"quoted\" back\\slash a/b \x7f caf\xc3\xa9 \xe2\x82\xac";
    memcpy(msg + n, rest, strlen(rest) + 1);

    struct res_record r = {
        .event_id = "e\"1\"",
        .outcome = RES_FAILED,
        .http_status = 400,
        .error_kind = "permanent",
        .error_message = msg,
        .note = "a\\b",
        .source = {"t/x", 1, 2},
    };
    json_object *o = to_json(&r), *e;
    CHECK_JSTR(o, "eventId", "e\"1\"");
    CHECK_JSTR(o, "note", "a\\b");
    if (CHECK(ju_get(o, "error", &e)))
        CHECK_JSTR(e, "message", msg);
    check_source(o, "t/x", 1, 2);
    json_object_put(o);

    static char long_msg[8 * 1024];
    for (size_t i = 0; i < sizeof(long_msg) - 1; i++)
        long_msg[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
    long_msg[sizeof(long_msg) - 1] = '\0';
    r.error_message = long_msg;
    o = to_json(&r);
    if (CHECK(ju_get(o, "error", &e)))
        CHECK_JSTR(e, "message", long_msg);
    json_object_put(o);

    struct res_state s = {.workspace_id = "W1", .user_id = "u\\1", .display_name = msg};
    size_t len = 0;
    char *txt = res_state_to_json(&s, &len);
    o = txt ? ju_parse(txt, len) : NULL;
    if (CHECK_NOT_NULL(o)) {
        CHECK_EQ_INT(len, strlen(txt));
        CHECK_JSTR(o, "userId", "u\\1");
        CHECK_JSTR(o, "displayName", msg);
    }
    json_object_put(o);
    free(txt);
}

static void test_state(void)
{
    static const char *const keys[] = {
        "kind",        "workspaceId",        "userId",    "spEnterpriseId", "provisioningId",
        "displayName", "primaryPhoneNumber", "extension", "eventId",        "source",
        "updatedAt"};
    struct res_state s = {
        .workspace_id = "W1",
        .user_id = "95547321@sp.com",
        .sp_enterprise_id = "Reseller1+acme",
        .provisioning_id = "P1",
        .display_name = "Conference Room",
        .phone = "+1-240-555-1212",
        .extension = "51212",
        .event_id = "e1",
        .source = {"broadworks.provisioning.events", 3, 1842},
        .updated_ms = T0,
    };
    size_t len = 0;
    char *txt = res_state_to_json(&s, &len);
    json_object *o = txt ? ju_parse(txt, len) : NULL;
    if (CHECK_NOT_NULL(o)) {
        CHECK_EQ_INT(ju_count(o), sizeof(keys) / sizeof(keys[0]));
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (!CHECK(ju_get(o, keys[i], &(json_object *){NULL})))
                fprintf(stderr, "  missing key %s\n", keys[i]);
        CHECK(ju_key_order(o, keys, sizeof(keys) / sizeof(keys[0])));
        CHECK_JSTR(o, "kind", "workspace");
        CHECK_JLACKS(o, "removed");
        CHECK_JSTR(o, "workspaceId", "W1");
        CHECK_JSTR(o, "userId", "95547321@sp.com");
        CHECK_JSTR(o, "spEnterpriseId", "Reseller1+acme");
        CHECK_JSTR(o, "provisioningId", "P1");
        CHECK_JSTR(o, "displayName", "Conference Room");
        CHECK_JSTR(o, "primaryPhoneNumber", "+1-240-555-1212");
        CHECK_JSTR(o, "extension", "51212");
        CHECK_JSTR(o, "eventId", "e1");
        check_source(o, "broadworks.provisioning.events", 3, 1842);
        CHECK_JSTR(o, "updatedAt", "2026-11-26T10:00:00.412Z");
    }
    json_object_put(o);
    free(txt);

    /* Absent optional fields are null, not missing. */
    struct res_state m = {.workspace_id = "W2", .user_id = "u2", .source = {"t", 0, 5}};
    txt = res_state_to_json(&m, &len);
    o = txt ? ju_parse(txt, len) : NULL;
    if (CHECK_NOT_NULL(o)) {
        CHECK_EQ_INT(ju_count(o), sizeof(keys) / sizeof(keys[0]));
        CHECK_JSTR(o, "workspaceId", "W2");
        CHECK_JNULL(o, "spEnterpriseId");
        CHECK_JNULL(o, "provisioningId");
        CHECK_JNULL(o, "displayName");
        CHECK_JNULL(o, "primaryPhoneNumber");
        CHECK_JNULL(o, "extension");
        CHECK_JNULL(o, "eventId");
        check_source(o, "t", 0, 5);
        CHECK_JSTR(o, "updatedAt", "1970-01-01T00:00:00.000Z");
    }
    json_object_put(o);
    free(txt);

    /* A removed marker: a record compaction keeps, with its source. */
    static const char *const mkeys[] = {"kind",      "removed", "workspaceId", "userId",
                                        "renamedTo", "eventId", "source",      "updatedAt"};
    struct res_state rm = {.removed = true,
                           .renamed_to = "n2",
                           .workspace_id = "W2",
                           .user_id = "u2",
                           .display_name = "ignored in a marker",
                           .event_id = "e9",
                           .source = {"t", 1, 9},
                           .updated_ms = T0};
    txt = res_state_to_json(&rm, &len);
    o = txt ? ju_parse(txt, len) : NULL;
    if (CHECK_NOT_NULL(o)) {
        CHECK_EQ_INT(ju_count(o), sizeof(mkeys) / sizeof(mkeys[0]));
        CHECK(ju_key_order(o, mkeys, sizeof(mkeys) / sizeof(mkeys[0])));
        json_object *v = NULL;
        CHECK(ju_get(o, "removed", &v) && json_object_is_type(v, json_type_boolean) &&
              json_object_get_boolean(v));
        CHECK_JSTR(o, "workspaceId", "W2");
        CHECK_JSTR(o, "renamedTo", "n2");
        check_source(o, "t", 1, 9);
    }
    json_object_put(o);
    free(txt);
    rm.renamed_to = NULL; /* a plain remove names no new user */
    txt = res_state_to_json(&rm, &len);
    o = txt ? ju_parse(txt, len) : NULL;
    if (CHECK_NOT_NULL(o))
        CHECK_JLACKS(o, "renamedTo");
    json_object_put(o);
    free(txt);
}

/* What the loader and the journal replay read back: the writer's output
 * parses to what went in; bad input is refused or left empty. */
static void test_state_parse(void)
{
    struct res_state s = {.workspace_id = "W1",
                          .user_id = "u1",
                          .event_id = "e1",
                          .source = {"events", 3, 1842},
                          .updated_ms = T0};
    struct res_state_in in;
    size_t len;
    char *txt = res_state_to_json(&s, &len);
    CHECK_EQ_INT(res_state_parse(txt, len, &in), 0);
    CHECK(!in.removed && !in.other_kind);
    CHECK_EQ_STR(in.workspace_id, "W1");
    CHECK_EQ_STR(in.source.topic, "events");
    CHECK_EQ_INT(in.source.partition, 3);
    CHECK_EQ_INT(in.source.offset, 1842);
    free(txt);

    s.removed = true;
    s.renamed_to = "n1";
    txt = res_state_to_json(&s, &len);
    CHECK_EQ_INT(res_state_parse(txt, len, &in), 0);
    CHECK(in.removed);
    CHECK_EQ_STR(in.workspace_id, "W1");
    free(txt);

    /* Records of older versions: no kind, no removed. */
    const char *old = "{\"workspaceId\":\"W2\",\"userId\":\"u\"}";
    CHECK_EQ_INT(res_state_parse(old, strlen(old), &in), 0);
    CHECK(!in.removed && !in.other_kind);
    CHECK_EQ_STR(in.workspace_id, "W2");
    CHECK_NULL(in.source.topic);
    CHECK_EQ_INT(in.source.offset, -1);

    /* A subscriber's record (SPEC §2b): its id, and whether its
     * provisioning is still pending. */
    const char *sub =
        "{\"kind\":\"subscriber\",\"subscriberId\":\"S\",\"status\":\"provisioning\"}";
    CHECK_EQ_INT(res_state_parse(sub, strlen(sub), &in), 0);
    CHECK(in.subscriber && in.pending && !in.other_kind);
    CHECK_EQ_STR(in.workspace_id, "S");
    const char *subdone = "{\"kind\":\"subscriber\",\"subscriberId\":\"S\","
                          "\"status\":\"pending_email_input\"}";
    CHECK_EQ_INT(res_state_parse(subdone, strlen(subdone), &in), 0);
    CHECK(in.subscriber && !in.pending);
    const char *subgone = "{\"kind\":\"subscriber\",\"removed\":true,\"subscriberId\":\"S\","
                          "\"status\":\"provisioning\"}";
    CHECK_EQ_INT(res_state_parse(subgone, strlen(subgone), &in), 0);
    CHECK(in.subscriber && in.removed && !in.pending);
    const char *future = "{\"kind\":\"device\",\"deviceId\":\"D\"}";
    CHECK_EQ_INT(res_state_parse(future, strlen(future), &in), 0);
    CHECK(in.other_kind && !in.subscriber);
    const char *odd = "{\"kind\":7,\"workspaceId\":5,\"removed\":\"yes\","
                      "\"source\":{\"topic\":\"t\",\"partition\":\"3\",\"offset\":1}}";
    CHECK_EQ_INT(res_state_parse(odd, strlen(odd), &in), 0);
    CHECK(in.other_kind && !in.removed);
    CHECK_NULL(in.workspace_id);
    CHECK_NULL(in.source.topic);

    char big[600];
    int n = snprintf(big, sizeof(big), "{\"workspaceId\":\"%0300d\"}", 1);
    CHECK_EQ_INT(res_state_parse(big, (size_t)n, &in), 0);
    CHECK_NULL(in.workspace_id); /* longer than any id the API gives */

    static const char *const bad[] = {"", "[]", "null", "{", "{\"a\":1}x", "\"s\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(res_state_parse(bad[i], strlen(bad[i]), &in), -1);
}

/* SPEC §6: a subscriber event's result carries subscriberId, status and
 * personId instead of workspaceId; its state record (SPEC §4) says
 * "kind": "subscriber". */
static void test_subscriber(void)
{
    struct res_record r = {
        .event_id = "e9",
        .type = "subscriber.provision",
        .user_id = "u",
        .outcome = RES_SUCCEEDED,
        .http_status = 200,
        .subscriber = true,
        .subscriber_id = "SUB",
        .status = "provisioned",
        .person_id = "PERSON",
        .workspace_id = "never written for a subscriber",
        .attempts = 3,
        .source = {"t", 0, 1},
        .completed_ms = T0,
    };
    size_t len = 0;
    char *txt = res_to_json(&r, &len);
    json_object *o = txt ? ju_parse(txt, len) : NULL;
    if (CHECK_NOT_NULL(o)) {
        CHECK_JSTR(o, "subscriberId", "SUB");
        CHECK_JSTR(o, "status", "provisioned");
        CHECK_JSTR(o, "personId", "PERSON");
        CHECK(!ju_get(o, "workspaceId", &(json_object *){NULL}));
        CHECK_JSTR(o, "type", "subscriber.provision");
    }
    json_object_put(o);
    free(txt);
    r.person_id = NULL; /* not known (yet): null */
    txt = res_to_json(&r, &len);
    o = txt ? ju_parse(txt, len) : NULL;
    if (CHECK_NOT_NULL(o))
        CHECK_JNULL(o, "personId");
    json_object_put(o);
    free(txt);

    struct res_state st = {
        .subscriber = true,
        .subscriber_id = "SUB",
        .user_id = "u",
        .sp_enterprise_id = "E",
        .provisioning_id = "P",
        .display_name = "not a subscriber's",
        .first_name = "John",
        .last_name = "Andersen",
        .package = "basic",
        .mobile = "+1-9",
        .status = "provisioning",
        .event_id = "e9",
        .source = {"t", 2, 7},
        .updated_ms = T0,
    };
    txt = res_state_to_json(&st, &len);
    o = txt ? ju_parse(txt, len) : NULL;
    if (CHECK_NOT_NULL(o)) {
        CHECK_JSTR(o, "kind", "subscriber");
        CHECK_JSTR(o, "subscriberId", "SUB");
        CHECK_JSTR(o, "firstName", "John");
        CHECK_JSTR(o, "lastName", "Andersen");
        CHECK_JSTR(o, "package", "basic");
        CHECK_JSTR(o, "mobilePhoneNumber", "+1-9");
        CHECK_JSTR(o, "status", "provisioning");
        CHECK(!ju_get(o, "workspaceId", &(json_object *){NULL}));
        CHECK(!ju_get(o, "displayName", &(json_object *){NULL}));
        CHECK(!ju_get(o, "email", &(json_object *){NULL})); /* left out when unknown */
    }
    json_object_put(o);
    struct res_state_in in;
    CHECK_EQ_INT(res_state_parse(txt, len, &in), 0); /* round trip */
    CHECK(in.subscriber && in.pending && !in.removed && !in.other_kind);
    CHECK_EQ_STR(in.workspace_id, "SUB");
    CHECK_EQ_INT(in.source.offset, 7);
    free(txt);

    struct res_state gone = {.subscriber = true,
                             .removed = true,
                             .subscriber_id = "SUB",
                             .user_id = "u",
                             .renamed_to = "n",
                             .event_id = "e10",
                             .source = {"t", 2, 8},
                             .updated_ms = T0};
    txt = res_state_to_json(&gone, &len);
    CHECK_EQ_INT(res_state_parse(txt, len, &in), 0);
    CHECK(in.subscriber && in.removed && !in.pending);
    CHECK_EQ_STR(in.workspace_id, "SUB");
    CHECK_CONTAINS(txt, "\"renamedTo\":\"n\"");
    free(txt);
}

int main(void)
{
    test_subscriber();
    test_succeeded();
    test_failed();
    test_rejected();
    test_names_and_time();
    test_state();
    test_state_parse();
    test_escaping();
    return check_done();
}
