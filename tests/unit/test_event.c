/* Unit tests for common/event.c: the SPEC §2 events, every rejection rule
 * (the reason names the field), bounds, encodings and hostile JSON. */
#include "check.h"
#include "event.h"

#include <stdlib.h>
#include <string.h>

#define SPEC_EXAMPLE                                                                               \
    "{\n"                                                                                          \
    "  \"eventId\": \"b6d7e0c2-1f7a-4c35-9d38-5b8f0a7c1e11\",\n"                                   \
    "  \"type\": \"workspace.provision\",\n"                                                       \
    "  \"occurredAt\": \"2026-11-26T10:00:00Z\",\n"                                                \
    "  \"workspace\": {\n"                                                                         \
    "    \"provisioningId\": "                                                                     \
    "\"ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVmNTk0LTViNTEtNDdiZS05Mzk2LTZjMzZlMm" \
    "FkODNhNQ\",\n"                                                                                \
    "    \"userId\": \"95547321@sp.com\",\n"                                                       \
    "    \"spEnterpriseId\": \"Reseller1+acme\",\n"                                                \
    "    \"displayName\": \"Conference Room\",\n"                                                  \
    "    \"primaryPhoneNumber\": \"+1-240-555-1212\",\n"                                           \
    "    \"extension\": \"51212\"\n"                                                               \
    "  },\n"                                                                                       \
    "  \"workspaceId\": \"optional: Webex workspace id, for update/remove\"\n"                     \
    "}\n"

#define USER "95547321@sp.com"

static int parse_n(const char *key, const char *json, size_t len, struct ev_event *ev, char *why,
                   size_t whylen)
{
    return ev_parse(key, key ? strlen(key) : 0, json, len, ev, why, whylen);
}

static int parse(const char *key, const char *json, struct ev_event *ev, char *why, size_t whylen)
{
    return parse_n(key, json, strlen(json), ev, why, whylen);
}

static void test_spec_example(void)
{
    struct ev_event ev;
    char why[256];

    CHECK_EQ_INT(parse(USER, SPEC_EXAMPLE, &ev, why, sizeof(why)), 0);
    CHECK_EQ_STR(why, "");
    CHECK_EQ_INT(ev.type, EV_PROVISION);
    CHECK_EQ_STR(ev.event_id, "b6d7e0c2-1f7a-4c35-9d38-5b8f0a7c1e11");
    CHECK_EQ_STR(ev.user_id, USER);
    CHECK_EQ_STR(ev.provisioning_id,
                 "ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVmNTk0LT"
                 "ViNTEtNDdiZS05Mzk2LTZjMzZlMmFkODNhNQ");
    CHECK_EQ_STR(ev.sp_enterprise_id, "Reseller1+acme");
    CHECK_EQ_STR(ev.display_name, "Conference Room");
    CHECK_EQ_STR(ev.phone, "+1-240-555-1212");
    CHECK_EQ_STR(ev.extension, "51212");
    CHECK_NULL(ev.new_user_id);
    CHECK_EQ_STR(ev.ignored, "");
    ev_clear(&ev);
    CHECK_NULL(ev.event_id); /* ev_clear leaves it empty */

    /* Optional fields absent or null. */
    const char *minimal = "{\"eventId\":\"e1\",\"type\":\"workspace.provision\",\"workspace\":{"
                          "\"provisioningId\":\"p\",\"userId\":\"u1\",\"spEnterpriseId\":\"s\","
                          "\"displayName\":\"d\",\"primaryPhoneNumber\":null}}";
    CHECK_EQ_INT(parse("u1", minimal, &ev, why, sizeof(why)), 0);
    CHECK_NULL(ev.phone);
    CHECK_NULL(ev.extension);
    CHECK_NULL(ev.workspace_id);
    ev_clear(&ev);

    CHECK_EQ_STR(ev_type_name(EV_WORKSPACE, EV_PROVISION), "workspace.provision");
    CHECK_EQ_STR(ev_type_name(EV_WORKSPACE, EV_UPDATE), "workspace.update");
    CHECK_EQ_STR(ev_type_name(EV_WORKSPACE, EV_REMOVE), "workspace.remove");
    CHECK_EQ_STR(ev_type_name(EV_SUBSCRIBER, EV_PROVISION), "subscriber.provision");
    CHECK_EQ_STR(ev_type_name(EV_SUBSCRIBER, EV_UPDATE), "subscriber.update");
    CHECK_EQ_STR(ev_type_name(EV_SUBSCRIBER, EV_REMOVE), "subscriber.remove");
    CHECK_NULL(ev_type_name(EV_WORKSPACE, EV_NONE));
    CHECK_NULL(ev_type_name(EV_SUBSCRIBER, EV_NONE));
    for (int code = 1; code < EV_CODES; code++)
        CHECK(ev_code_name(code) != NULL);
    CHECK_NULL(ev_code_name(0));
    CHECK_NULL(ev_code_name(EV_CODES));
}

static void test_update_remove(void)
{
    struct ev_event ev;
    char why[256];

    const char *upd = "{\"eventId\":\"e2\",\"type\":\"workspace.update\",\"workspace\":{"
                      "\"userId\":\"u1\",\"newUserId\":\"u2\",\"primaryPhoneNumber\":\"+1\","
                      "\"extension\":\"12\"},\"workspaceId\":\"WS1\"}";
    CHECK_EQ_INT(parse("u1", upd, &ev, why, sizeof(why)), 0);
    CHECK_EQ_INT(ev.type, EV_UPDATE);
    CHECK_EQ_STR(ev.user_id, "u1");
    CHECK_EQ_STR(ev.new_user_id, "u2");
    CHECK_EQ_STR(ev.phone, "+1");
    CHECK_EQ_STR(ev.extension, "12");
    CHECK_EQ_STR(ev.workspace_id, "WS1");
    CHECK_EQ_STR(ev.ignored, "");
    ev_clear(&ev);

    /* Fields PUT cannot change are accepted and named in `ignored`. */
    const char *upd2 = "{\"eventId\":\"e3\",\"type\":\"workspace.update\",\"workspace\":{"
                       "\"userId\":\"u1\",\"displayName\":\"New Name\"}}";
    CHECK_EQ_INT(parse("u1", upd2, &ev, why, sizeof(why)), 0);
    CHECK_NULL(ev.new_user_id);
    CHECK_NULL(ev.workspace_id);
    CHECK_EQ_STR(ev.ignored, "displayName");
    ev_clear(&ev);

    const char *upd3 = "{\"eventId\":\"e3\",\"type\":\"workspace.update\",\"workspace\":{"
                       "\"userId\":\"u1\",\"displayName\":\"N\",\"spEnterpriseId\":\"S\","
                       "\"provisioningId\":\"P\",\"extension\":\"9\"}}";
    CHECK_EQ_INT(parse("u1", upd3, &ev, why, sizeof(why)), 0);
    CHECK_CONTAINS(ev.ignored, "displayName");
    CHECK_CONTAINS(ev.ignored, "spEnterpriseId");
    CHECK_CONTAINS(ev.ignored, "provisioningId");
    CHECK(strstr(ev.ignored, "extension") == NULL);
    ev_clear(&ev);

    const char *rem = "{\"eventId\":\"e4\",\"type\":\"workspace.remove\",\"workspace\":{"
                      "\"userId\":\"u1\"},\"workspaceId\":\"WS 1%x\"}";
    CHECK_EQ_INT(parse("u1", rem, &ev, why, sizeof(why)), 0);
    CHECK_EQ_INT(ev.type, EV_REMOVE);
    CHECK_EQ_STR(ev.workspace_id, "WS 1%x");
    CHECK_NULL(ev.provisioning_id);
    ev_clear(&ev);

    /* An empty optional string: left out of a provision, kept ("clear it")
     * in an update. */
    const char *pe = "{\"eventId\":\"e6\",\"type\":\"workspace.provision\",\"workspace\":{"
                     "\"userId\":\"u1\",\"provisioningId\":\"P\",\"spEnterpriseId\":\"S\","
                     "\"displayName\":\"D\",\"primaryPhoneNumber\":\"\",\"extension\":\"\"}}";
    CHECK_EQ_INT(parse("u1", pe, &ev, why, sizeof(why)), 0);
    CHECK_NULL(ev.phone);
    CHECK_NULL(ev.extension);
    ev_clear(&ev);
    const char *ue = "{\"eventId\":\"e7\",\"type\":\"workspace.update\",\"workspace\":{"
                     "\"userId\":\"u1\",\"extension\":\"\"}}";
    CHECK_EQ_INT(parse("u1", ue, &ev, why, sizeof(why)), 0);
    CHECK_NULL(ev.phone);
    CHECK_EQ_STR(ev.extension, "");
    ev_clear(&ev);

    /* A remove with only the required fields. */
    const char *rem2 = "{\"eventId\":\"e5\",\"type\":\"workspace.remove\",\"workspace\":{"
                       "\"userId\":\"u1\"}}";
    CHECK_EQ_INT(parse("u1", rem2, &ev, why, sizeof(why)), 0);
    CHECK_NULL(ev.workspace_id);
    ev_clear(&ev);

    /* Unknown fields anywhere are ignored, including nested ones. */
    const char *extra = "{\"eventId\":\"e6\",\"type\":\"workspace.remove\",\"future\":{\"a\":[1,"
                        "2,{\"b\":null}]},\"version\":2,\"workspace\":{\"userId\":\"u1\","
                        "\"colour\":\"blue\",\"n\":1.5}}";
    CHECK_EQ_INT(parse("u1", extra, &ev, why, sizeof(why)), 0);
    ev_clear(&ev);
}

struct reject_case {
    const char *key; /* NULL: a null Kafka key */
    const char *json;
    const char *why; /* substring the reason must contain */
};

static void run_rejects(const struct reject_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ev_event ev;
        char why[256];
        int rc = parse(cases[i].key, cases[i].json, &ev, why, sizeof(why));
        bool rejected = CHECK_EQ_INT(rc, -1); /* both checks run, each counts */
        bool named = CHECK_CONTAINS(why, cases[i].why);
        if (!rejected || !named)
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].json);
        ev_clear(&ev);
    }
}

#define P_HEAD "{\"eventId\":\"e1\",\"type\":\"workspace.provision\","
#define P_WS                                                                                       \
    "\"provisioningId\":\"p\",\"userId\":\"u1\",\"spEnterpriseId\":\"s\",\"displayName\":\"d\""
#define U_HEAD "{\"eventId\":\"e1\",\"type\":\"workspace.update\","

static void test_rejects(void)
{
    static const struct reject_case cases[] = {
        /* missing required fields */
        {"u1", "{\"type\":\"workspace.provision\",\"workspace\":{" P_WS "}}", "eventId"},
        {"u1", "{\"eventId\":\"e1\",\"workspace\":{" P_WS "}}", "type"},
        {"u1", P_HEAD "\"nope\":1}", "workspace"},
        {"u1",
         P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"spEnterpriseId\":\"s\","
                "\"displayName\":\"d\"}}",
         "workspace.userId"},
        {"u1",
         P_HEAD "\"workspace\":{\"userId\":\"u1\",\"spEnterpriseId\":\"s\","
                "\"displayName\":\"d\"}}",
         "workspace.provisioningId"},
        {"u1",
         P_HEAD "\"workspace\":{\"userId\":\"u1\",\"provisioningId\":\"p\","
                "\"displayName\":\"d\"}}",
         "workspace.spEnterpriseId"},
        {"u1",
         P_HEAD "\"workspace\":{\"userId\":\"u1\",\"provisioningId\":\"p\","
                "\"spEnterpriseId\":\"s\"}}",
         "workspace.displayName"},
        {"u1", U_HEAD "\"workspace\":{\"primaryPhoneNumber\":\"1\"}}", "workspace.userId"},
        {"u1", "{\"eventId\":\"e1\",\"type\":\"workspace.remove\",\"workspace\":{}}",
         "workspace.userId"},
        /* null counts as missing for a required field */
        {"u1", "{\"eventId\":null,\"type\":\"workspace.provision\",\"workspace\":{" P_WS "}}",
         "eventId"},
        {"u1", P_HEAD "\"workspace\":{\"userId\":null}}", "workspace.userId"},
        {"u1", P_HEAD "\"workspace\":null}", "workspace"},
        /* empty required strings */
        {"u1", "{\"eventId\":\"\",\"type\":\"workspace.provision\",\"workspace\":{" P_WS "}}",
         "eventId"},
        {"",
         P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"\",\"spEnterpriseId\":"
                "\"s\",\"displayName\":\"d\"}}",
         "workspace.userId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\",\"newUserId\":\"\"}}",
         "workspace.newUserId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":\"\"}", "workspaceId"},
        /* a workspaceId is one path segment, never a way out of it */
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":\".\"}", "workspaceId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":\"..\"}", "workspaceId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":\"a/b\"}", "workspaceId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":\"a?b\"}", "workspaceId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":\"a#b\"}", "workspaceId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":\"a\\u0001\"}",
         "workspaceId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":\"a\\u007f\"}",
         "workspaceId"},
        {"u1",
         "{\"eventId\":\"e1\",\"type\":\"workspace.remove\",\"workspace\":{\"userId\":"
         "\"u1\"},\"workspaceId\":\"/\"}",
         "workspaceId"},
        /* wrong types */
        {"u1", "{\"eventId\":42,\"type\":\"workspace.provision\",\"workspace\":{" P_WS "}}",
         "eventId"},
        {"u1", "{\"eventId\":\"e1\",\"type\":true,\"workspace\":{" P_WS "}}", "type"},
        {"u1", P_HEAD "\"workspace\":\"u1\"}", "workspace"},
        {"u1", P_HEAD "\"workspace\":[{" P_WS "}]}", "workspace"},
        {"u1",
         P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":123,"
                "\"spEnterpriseId\":\"s\",\"displayName\":\"d\"}}",
         "workspace.userId"},
        {"u1", P_HEAD "\"workspace\":{" P_WS ",\"primaryPhoneNumber\":2405551212}}",
         "workspace.primaryPhoneNumber"},
        {"u1", P_HEAD "\"workspace\":{" P_WS ",\"extension\":51212}}", "workspace.extension"},
        {"u1",
         P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"u1\","
                "\"spEnterpriseId\":\"s\",\"displayName\":{\"x\":1}}}",
         "workspace.displayName"},
        {"u1",
         P_HEAD "\"workspace\":{\"provisioningId\":[\"p\"],\"userId\":\"u1\","
                "\"spEnterpriseId\":\"s\",\"displayName\":\"d\"}}",
         "workspace.provisioningId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\",\"newUserId\":7}}", "workspace.newUserId"},
        {"u1", U_HEAD "\"workspace\":{\"userId\":\"u1\"},\"workspaceId\":7}", "workspaceId"},
        {"u1",
         "{\"eventId\":\"e1\",\"type\":\"workspace.remove\",\"workspace\":{\"userId\":"
         "\"u1\"},\"workspaceId\":{}}",
         "workspaceId"},
        /* unknown type */
        {"u1", "{\"eventId\":\"e1\",\"type\":\"workspace.delete\",\"workspace\":{" P_WS "}}",
         "unknown event type"},
        {"u1", "{\"eventId\":\"e1\",\"type\":\"WORKSPACE.PROVISION\",\"workspace\":{" P_WS "}}",
         "unknown event type"},
        {"u1", "{\"eventId\":\"e1\",\"type\":\"\",\"workspace\":{" P_WS "}}", "type"},
        /* not JSON, or not one object */
        {"u1", "{eventId: \"e1\"}", "invalid JSON"},
        {"u1", "{'eventId': 'e1'}", "invalid JSON"},
        {"u1", P_HEAD "\"workspace\":{" P_WS ",}}", "invalid JSON"}, /* trailing comma */
        {"u1", P_HEAD "\"workspace\":{" P_WS "}", "truncated"},
        {"u1", P_HEAD "\"workspace\":{\"provisioningId\":\"p", "truncated"},
        {"u1", "{", "truncated"},
        {"u1", P_HEAD "\"workspace\":{" P_WS "}}x", "invalid JSON"},
        {"u1", P_HEAD "\"workspace\":{" P_WS "}}{}", "invalid JSON"},
        {"u1", P_HEAD "\"workspace\":{" P_WS "}} 1", "invalid JSON"},
        {"u1", "[1,2,3]", "not a JSON object"},
        {"u1", "[" P_HEAD "\"workspace\":{" P_WS "}}]", "not a JSON object"},
        {"u1", "\"workspace.provision\"", "not a JSON object"},
        {"u1", "null", "JSON"}, /* json-c: a bare literal may continue */
        {"u1", "true", "JSON"},
        {"u1", "12", "invalid JSON"},
        {"u1", "   \n", "invalid JSON"},
        {"u1", "hello", "invalid JSON"},
        {"u1", P_HEAD "\"workspace\":{" P_WS "},/* c */\"x\":1}", "invalid JSON"},
        /* invalid UTF-8 */
        {"u1",
         P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"u1\","
                "\"spEnterpriseId\":\"s\",\"displayName\":\"Room \xff\xfe\"}}",
         "invalid JSON"},
        {"u1",
         P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"u1\","
                "\"spEnterpriseId\":\"s\",\"displayName\":\"Caf\xc3\"}}",
         "invalid JSON"},
        {"u1", P_HEAD "\"workspace\":{" P_WS "},\"x\":\"\x80\"}", "invalid JSON"},
        /* embedded NUL (escaped) */
        {"u1",
         P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"u1\","
                "\"spEnterpriseId\":\"s\",\"displayName\":\"a\\u0000b\"}}",
         "workspace.displayName"},
        {"u1",
         "{\"eventId\":\"e\\u00001\",\"type\":\"workspace.provision\",\"workspace\":{" P_WS "}}",
         "eventId"},
        {"u1",
         P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"u1\\u0000\","
                "\"spEnterpriseId\":\"s\",\"displayName\":\"d\"}}",
         "workspace.userId"},
        /* keys */
        {NULL, P_HEAD "\"workspace\":{" P_WS "}}", "null key"},
        {"u2", P_HEAD "\"workspace\":{" P_WS "}}", "key does not match"},
        {"u", P_HEAD "\"workspace\":{" P_WS "}}", "key does not match"},
        {"u11", P_HEAD "\"workspace\":{" P_WS "}}", "key does not match"},
        {"", P_HEAD "\"workspace\":{" P_WS "}}", "key does not match"},
        {"U1", P_HEAD "\"workspace\":{" P_WS "}}", "key does not match"},
        /* a rename is keyed by the old userId, not the new one */
        {"u2", U_HEAD "\"workspace\":{\"userId\":\"u1\",\"newUserId\":\"u2\"}}",
         "key does not match"},
    };
    run_rejects(cases, sizeof(cases) / sizeof(cases[0]));

    /* Byte sequences that are structurally lead+continuation bytes but not
     * UTF-8 (RFC 3629): an overlong '/', a UTF-16 surrogate, a code point
     * above U+10FFFF. The value must be UTF-8 (SPEC §2), so they are
     * rejected like any other invalid byte; json-c's VALIDATE_UTF8 flag
     * alone lets them through into the API request body. */
    static const char *const not_utf8[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                           "\xf8\x88\x80\x80\x80"};
    for (size_t i = 0; i < sizeof(not_utf8) / sizeof(not_utf8[0]); i++) {
        char json[512];
        struct ev_event e;
        char w[256];
        snprintf(json, sizeof(json),
                 P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"u1\","
                        "\"spEnterpriseId\":\"s\",\"displayName\":\"Room %s\"}}",
                 not_utf8[i]);
        int rc = parse("u1", json, &e, w, sizeof(w));
        static const char *const what[] = {"overlong C0 AF", "surrogate ED A0 80",
                                           "F4 90 80 80 (> U+10FFFF)", "5-byte F8"};
        if (i < 3) {
            if (!CHECK_WHY(rc == -1, "event.c parse_json() accepts non-UTF-8 sequences"))
                fprintf(stderr, "  accepted displayName bytes: %s\n", what[i]);
        } else
            CHECK_EQ_INT(rc, -1);
        ev_clear(&e);
    }
    /* Escaped code points are fine, including a pair for U+1F600. */
    {
        struct ev_event e;
        char w[256];
        CHECK_EQ_INT(parse("u1",
                           P_HEAD
                           "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"u1\","
                           "\"spEnterpriseId\":\"s\",\"displayName\":\"\\u00e9\\ud83d\\ude00\"}}",
                           &e, w, sizeof(w)),
                     0);
        CHECK_EQ_STR(e.display_name, "\xc3\xa9\xf0\x9f\x98\x80");
        ev_clear(&e);
    }

    /* A rejection still names the event when its eventId was readable. */
    struct ev_event ev;
    char why[256];
    CHECK_EQ_INT(parse("u1", P_HEAD "\"workspace\":{\"userId\":\"u1\"}}", &ev, why, sizeof(why)),
                 -1);
    CHECK_EQ_STR(ev.event_id, "e1");
    ev_clear(&ev);

    /* An empty message, and a NULL value. */
    CHECK_EQ_INT(parse_n("u1", "", 0, &ev, why, sizeof(why)), -1);
    CHECK_CONTAINS(why, "empty");
    ev_clear(&ev);
    CHECK_EQ_INT(ev_parse("u1", 2, NULL, 0, &ev, why, sizeof(why)), -1);
    CHECK_CONTAINS(why, "empty");
    ev_clear(&ev);

    /* The length is what counts, not a terminating NUL: a NUL byte inside
     * the message is not valid JSON text. */
    static const char with_nul[] = P_HEAD "\"workspace\":{" P_WS "}}\0garbage";
    CHECK_EQ_INT(parse_n("u1", with_nul, sizeof(with_nul) - 1, &ev, why, sizeof(why)), -1);
    ev_clear(&ev);
    /* ... while a shorter len that ends at the object is fine. */
    CHECK_EQ_INT(parse_n("u1", with_nul, strlen(with_nul), &ev, why, sizeof(why)), 0);
    ev_clear(&ev);

    /* Trailing whitespace after the object is fine. */
    CHECK_EQ_INT(parse("u1", P_HEAD "\"workspace\":{" P_WS "}} \r\n\t\n", &ev, why, sizeof(why)),
                 0);
    ev_clear(&ev);

    /* A small why buffer is respected (no overflow, terminated). */
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    CHECK_EQ_INT(parse(NULL, P_HEAD "\"workspace\":{" P_WS "}}", &ev, tiny, sizeof(tiny)), -1);
    CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL);
    ev_clear(&ev);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        exit(2);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* A provision event with one workspace field of n bytes. */
static int bound_case(const char *field, size_t n, const char *why_want)
{
    char *v = repeat('7', n);
    const char *user = strcmp(field, "userId") == 0 ? v : "u1";
    size_t cap = 2 * n + 512;
    char *json = malloc(cap);
    if (!json)
        exit(2);
    snprintf(json, cap,
             "{\"eventId\":\"e1\",\"type\":\"workspace.provision\",\"workspace\":{"
             "\"provisioningId\":\"%s\",\"userId\":\"%s\",\"spEnterpriseId\":\"%s\","
             "\"displayName\":\"%s\",\"primaryPhoneNumber\":\"%s\",\"extension\":\"%s\"}}",
             strcmp(field, "provisioningId") == 0 ? v : "p", user,
             strcmp(field, "spEnterpriseId") == 0 ? v : "s",
             strcmp(field, "displayName") == 0 ? v : "d",
             strcmp(field, "primaryPhoneNumber") == 0 ? v : "1",
             strcmp(field, "extension") == 0 ? v : "2");
    struct ev_event ev;
    char why[256];
    int rc = parse(user, json, &ev, why, sizeof(why));
    if (rc != 0 && why_want)
        CHECK_CONTAINS(why, why_want);
    ev_clear(&ev);
    free(json);
    free(v);
    return rc;
}

static void test_bounds(void)
{
    static const struct {
        const char *field;
        size_t max;
    } fields[] = {
        {"userId", EV_MAX_USER_ID},
        {"displayName", EV_MAX_DISPLAY_NAME},
        {"primaryPhoneNumber", EV_MAX_PHONE},
        {"extension", EV_MAX_EXTENSION},
        {"provisioningId", EV_MAX_PROVISIONING_ID},
        {"spEnterpriseId", EV_MAX_ENTERPRISE_ID},
    };
    /* SPEC §2 numbers. */
    CHECK_EQ_INT(EV_MAX_USER_ID, 256);
    CHECK_EQ_INT(EV_MAX_DISPLAY_NAME, 256);
    CHECK_EQ_INT(EV_MAX_PHONE, 64);
    CHECK_EQ_INT(EV_MAX_EXTENSION, 32);
    CHECK_EQ_INT(EV_MAX_EVENT_ID, 128);
    CHECK_EQ_INT(EV_MAX_WORKSPACE_ID, 256); /* Cisco's OpenAPI: maxLength 256 */

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "workspace.%s", fields[i].field);
        if (!CHECK_EQ_INT(bound_case(fields[i].field, fields[i].max, NULL), 0) ||
            !CHECK_EQ_INT(bound_case(fields[i].field, fields[i].max + 1, want), -1))
            fprintf(stderr, "  field %s\n", fields[i].field);
    }

    /* eventId: 1..128 bytes. */
    for (size_t n = 0; n <= 130; n++) {
        char *id = repeat('e', n);
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"eventId\":\"%s\",\"type\":\"workspace.remove\",\"workspace\":{\"userId\":"
                 "\"u1\"}}",
                 id);
        struct ev_event ev;
        char why[256];
        int rc = parse("u1", json, &ev, why, sizeof(why));
        bool ok = n >= 1 && n <= 128;
        if (!CHECK_EQ_INT(rc, ok ? 0 : -1))
            fprintf(stderr, "  eventId of %zu bytes\n", n);
        if (!ok)
            CHECK_CONTAINS(why, "eventId");
        else
            CHECK_EQ_STR(ev.event_id, id);
        ev_clear(&ev);
        free(id);
    }

    /* workspaceId: 1..256 bytes, the API's own limit. */
    for (size_t n = 255; n <= 257; n++) {
        char *id = repeat('W', n);
        char json[1024];
        snprintf(json, sizeof(json),
                 "{\"eventId\":\"e\",\"type\":\"workspace.remove\",\"workspace\":{\"userId\":"
                 "\"u1\"},\"workspaceId\":\"%s\"}",
                 id);
        struct ev_event ev;
        char why[256];
        bool ok = n <= 256;
        if (!CHECK_EQ_INT(parse("u1", json, &ev, why, sizeof(why)), ok ? 0 : -1))
            fprintf(stderr, "  workspaceId of %zu bytes\n", n);
        if (!ok)
            CHECK_CONTAINS(why, "workspaceId");
        ev_clear(&ev);
        free(id);
    }

    /* Bounds are bytes: 128 two-byte characters are 256 bytes (ok), 129
     * are 258 (too long for displayName). */
    for (size_t chars = 128; chars <= 129; chars++) {
        char name[600] = "";
        for (size_t i = 0; i < chars; i++)
            strcat(name, "\xc3\xa9");
        char json[1024];
        snprintf(json, sizeof(json),
                 P_HEAD "\"workspace\":{\"provisioningId\":\"p\",\"userId\":\"u1\","
                        "\"spEnterpriseId\":\"s\",\"displayName\":\"%s\"}}",
                 name);
        struct ev_event ev;
        char why[256];
        int rc = parse("u1", json, &ev, why, sizeof(why));
        CHECK_EQ_INT(rc, chars == 128 ? 0 : -1);
        if (rc == 0)
            CHECK_EQ_STR(ev.display_name, name);
        ev_clear(&ev);
    }

    /* An escaped non-ASCII userId round-trips as UTF-8 and must equal the key. */
    struct ev_event ev;
    char why[256];
    CHECK_EQ_INT(parse("J\xc3\xbcrgen@sp.com",
                       "{\"eventId\":\"e1\",\"type\":\"workspace.remove\",\"workspace\":{"
                       "\"userId\":\"J\\u00fcrgen@sp.com\"}}",
                       &ev, why, sizeof(why)),
                 0);
    CHECK_EQ_STR(ev.user_id, "J\xc3\xbcrgen@sp.com");
    ev_clear(&ev);

    /* The whole message is bounded (64 KiB) before parsing. */
    size_t big = EV_MAX_BYTES + 100;
    char *pad = repeat('x', big);
    char *json = malloc(big + 256);
    if (!json)
        exit(2);
    snprintf(json, big + 256,
             "{\"eventId\":\"e1\",\"type\":\"workspace.remove\",\"workspace\":{\"userId\":\"u1\"},"
             "\"padding\":\"%s\"}",
             pad);
    CHECK_EQ_INT(parse("u1", json, &ev, why, sizeof(why)), -1);
    CHECK_CONTAINS(why, "64 KiB");
    ev_clear(&ev);
    /* ... while a large event under the limit is fine. */
    pad[EV_MAX_BYTES - 200] = '\0';
    snprintf(json, big + 256,
             "{\"eventId\":\"e1\",\"type\":\"workspace.remove\",\"workspace\":{\"userId\":\"u1\"},"
             "\"padding\":\"%s\"}",
             pad);
    CHECK_EQ_INT(parse("u1", json, &ev, why, sizeof(why)), 0);
    ev_clear(&ev);
    free(json);
    free(pad);
}

/* A valid remove event whose unknown member "deep" nests so that the
 * document is `depth` levels deep (json-c counts the root object as 1):
 * arrays [[[]]] or objects {"a":{"a":{}}}. */
static char *nested(size_t depth, bool objects)
{
    static const char head[] = "{\"eventId\":\"e1\",\"type\":\"workspace.remove\","
                               "\"workspace\":{\"userId\":\"u1\"},\"deep\":";
    size_t levels = depth - 1, cap = sizeof(head) + 6 * levels + 8;
    char *s = malloc(cap);
    if (!s)
        exit(2);
    char *p = s + sprintf(s, "%s", head);
    for (size_t k = 0; k < levels; k++)
        p += sprintf(p, "%s", objects && k + 1 < levels ? "{\"a\":" : objects ? "{" : "[");
    for (size_t k = 0; k < levels; k++)
        *p++ = objects ? '}' : ']';
    strcpy(p, "}");
    return s;
}

static void test_depth(void)
{
    static const size_t depths[] = {2, 8, 15, 16, 17, 18, 64, 1000, 10000};
    for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
        for (int objects = 0; objects < 2; objects++) {
            char *s = nested(depths[i], objects);
            struct ev_event ev;
            char why[256];
            int rc = parse("u1", s, &ev, why, sizeof(why));
            if (!CHECK_EQ_INT(rc, depths[i] <= 16 ? 0 : -1))
                fprintf(stderr, "  depth %zu objects %d: %s\n", depths[i], objects, why);
            if (rc != 0)
                CHECK_CONTAINS(why, "invalid JSON");
            ev_clear(&ev);
            free(s);
        }
    }
}

#define SUB_EXAMPLE                                                                                \
    "{\"eventId\":\"0c9e\",\"type\":\"subscriber.provision\","                                     \
    "\"occurredAt\":\"2026-11-26T10:00:00Z\",\"subscriber\":{"                                     \
    "\"provisioningId\":\"prov\",\"userId\":\"95547322@sp.com\","                                  \
    "\"spEnterpriseId\":\"Reseller1+acme\",\"firstName\":\"John\",\"lastName\":\"Andersen\","      \
    "\"package\":\"basic\",\"primaryPhoneNumber\":\"+1-240-555-1213\","                            \
    "\"mobilePhoneNumber\":\"+1-240-555-9999\",\"extension\":\"51213\","                           \
    "\"email\":\"john@acme.example\",\"language\":\"en\",\"timezone\":\"America/Chicago\"},"       \
    "\"subscriberId\":\"ignored on a provision\"}"
#define SUSER "95547322@sp.com"

/* SPEC §2b: the subscriber events. */
static void test_subscribers(void)
{
    struct ev_event ev;
    char why[256];

    CHECK_EQ_INT(parse(SUSER, SUB_EXAMPLE, &ev, why, sizeof(why)), 0);
    CHECK_EQ_STR(why, "");
    CHECK_EQ_INT(ev.kind, EV_SUBSCRIBER);
    CHECK_EQ_INT(ev.type, EV_PROVISION);
    CHECK_EQ_STR(ev.user_id, SUSER);
    CHECK_EQ_STR(ev.provisioning_id, "prov");
    CHECK_EQ_STR(ev.sp_enterprise_id, "Reseller1+acme");
    CHECK_EQ_STR(ev.first_name, "John");
    CHECK_EQ_STR(ev.last_name, "Andersen");
    CHECK_EQ_STR(ev.package, "basic");
    CHECK_EQ_STR(ev.phone, "+1-240-555-1213");
    CHECK_EQ_STR(ev.mobile, "+1-240-555-9999");
    CHECK_EQ_STR(ev.extension, "51213");
    CHECK_EQ_STR(ev.email, "john@acme.example");
    CHECK_EQ_STR(ev.language, "en");
    CHECK_EQ_STR(ev.timezone, "America/Chicago");
    CHECK_NULL(ev.subscriber_id); /* a provision has no id yet */
    CHECK_NULL(ev.display_name);
    ev_clear(&ev);

    /* A provision's empty optional strings are absent. */
    const char *empty = "{\"eventId\":\"e\",\"type\":\"subscriber.provision\",\"subscriber\":{"
                        "\"provisioningId\":\"p\",\"userId\":\"u\",\"spEnterpriseId\":\"s\","
                        "\"firstName\":\"f\",\"lastName\":\"l\",\"package\":\"premium\","
                        "\"mobilePhoneNumber\":\"\",\"email\":\"\",\"timezone\":null}}";
    CHECK_EQ_INT(parse("u", empty, &ev, why, sizeof(why)), 0);
    CHECK_NULL(ev.mobile);
    CHECK_NULL(ev.email);
    CHECK_NULL(ev.timezone);
    ev_clear(&ev);

    /* An update: a rename, a cleared mobile number, the fields PUT cannot
     * change named; the id from the event. */
    const char *upd = "{\"eventId\":\"e2\",\"type\":\"subscriber.update\",\"subscriber\":{"
                      "\"userId\":\"u\",\"newUserId\":\"n\",\"mobilePhoneNumber\":\"\","
                      "\"package\":\"standard\",\"email\":\"x@y\",\"spEnterpriseId\":\"s\"},"
                      "\"subscriberId\":\"Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvMQ\"}";
    CHECK_EQ_INT(parse("u", upd, &ev, why, sizeof(why)), 0);
    CHECK_EQ_INT(ev.kind, EV_SUBSCRIBER);
    CHECK_EQ_INT(ev.type, EV_UPDATE);
    CHECK_EQ_STR(ev.new_user_id, "n");
    CHECK_EQ_STR(ev.mobile, "");
    CHECK_EQ_STR(ev.package, "standard");
    CHECK_EQ_STR(ev.subscriber_id, "Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvMQ");
    CHECK_NULL(ev.workspace_id);
    CHECK_EQ_STR(ev.ignored, "spEnterpriseId,email");
    ev_clear(&ev);

    const char *rm = "{\"eventId\":\"e3\",\"type\":\"subscriber.remove\",\"subscriber\":{"
                     "\"userId\":\"u\"}}";
    CHECK_EQ_INT(parse("u", rm, &ev, why, sizeof(why)), 0);
    CHECK_EQ_INT(ev.type, EV_REMOVE);
    CHECK_NULL(ev.subscriber_id);
    ev_clear(&ev);

#define S_HEAD "{\"eventId\":\"e1\",\"type\":\"subscriber.provision\","
#define S_SUB "\"provisioningId\":\"p\",\"userId\":\"u\",\"spEnterpriseId\":\"s\""
    static const struct reject_case cases[] = {
        {"u",
         S_HEAD "\"workspace\":{" S_SUB ",\"firstName\":\"f\",\"lastName\":\"l\","
                "\"package\":\"basic\"}}",
         "subscriber"},
        {"u", S_HEAD "\"subscriber\":{" S_SUB ",\"lastName\":\"l\",\"package\":\"basic\"}}",
         "subscriber.firstName"},
        {"u", S_HEAD "\"subscriber\":{" S_SUB ",\"firstName\":\"f\",\"package\":\"basic\"}}",
         "subscriber.lastName"},
        {"u", S_HEAD "\"subscriber\":{" S_SUB ",\"firstName\":\"f\",\"lastName\":\"l\"}}",
         "subscriber.package"},
        {"u",
         S_HEAD "\"subscriber\":{" S_SUB ",\"firstName\":\"f\",\"lastName\":\"l\","
                "\"package\":\"gold\"}}",
         "softphone, basic, standard or premium"},
        {"u",
         S_HEAD "\"subscriber\":{\"userId\":\"u\",\"spEnterpriseId\":\"s\","
                "\"firstName\":\"f\",\"lastName\":\"l\",\"package\":\"basic\"}}",
         "subscriber.provisioningId"},
        {"u",
         S_HEAD "\"subscriber\":{" S_SUB ",\"firstName\":\"\",\"lastName\":\"l\","
                "\"package\":\"basic\"}}",
         "subscriber.firstName must not be empty"},
        {"u",
         S_HEAD "\"subscriber\":{" S_SUB ",\"firstName\":1,\"lastName\":\"l\","
                "\"package\":\"basic\"}}",
         "subscriber.firstName must be a string"},
        {"x",
         S_HEAD "\"subscriber\":{" S_SUB ",\"firstName\":\"f\",\"lastName\":\"l\","
                "\"package\":\"basic\"}}",
         "key does not match subscriber.userId"},
        {NULL,
         S_HEAD "\"subscriber\":{" S_SUB ",\"firstName\":\"f\",\"lastName\":\"l\","
                "\"package\":\"basic\"}}",
         "null key (the key must be subscriber.userId)"},
        {"u",
         "{\"eventId\":\"e\",\"type\":\"subscriber.update\",\"subscriber\":{"
         "\"userId\":\"u\",\"lastName\":\"\"}}",
         "subscriber.lastName must not be empty"},
        {"u",
         "{\"eventId\":\"e\",\"type\":\"subscriber.update\",\"subscriber\":{"
         "\"userId\":\"u\",\"newUserId\":\"\"}}",
         "subscriber.newUserId"},
        {"u",
         "{\"eventId\":\"e\",\"type\":\"subscriber.update\",\"subscriber\":{"
         "\"userId\":\"u\",\"package\":\"\"}}",
         "softphone, basic, standard or premium"},
        {"u",
         "{\"eventId\":\"e\",\"type\":\"subscriber.remove\",\"subscriber\":{"
         "\"userId\":\"u\"},\"subscriberId\":\"..\"}",
         "subscriberId"},
        {"u",
         "{\"eventId\":\"e\",\"type\":\"subscriber.remove\",\"subscriber\":{"
         "\"userId\":\"u\"},\"subscriberId\":\"a/b\"}",
         "subscriberId"},
        {"u",
         "{\"eventId\":\"e\",\"type\":\"subscriber.remove\",\"subscriber\":{"
         "\"userId\":\"u\"},\"subscriberId\":\"\"}",
         "subscriberId"},
        {"u",
         "{\"eventId\":\"e\",\"type\":\"subscriber.delete\",\"subscriber\":{"
         "\"userId\":\"u\"}}",
         "unknown event type"},
    };
    run_rejects(cases, sizeof(cases) / sizeof(cases[0]));
}

int main(void)
{
    test_spec_example();
    test_subscribers();
    test_update_remove();
    test_rejects();
    test_bounds();
    test_depth();
    return check_done();
}
