/* Unit tests for common/resp.c: Webex response bodies (the seed's 200 body,
 * error bodies, the errors[].description fallback) and hostile input. */
#include "check.h"
#include "resp.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *body, struct resp *r)
{
    return resp_parse(body, body ? strlen(body) : 0, r);
}

static bool all_null(const struct resp *r)
{
    return !r->id && !r->user_id && !r->sp_enterprise_id && !r->provisioning_id &&
           !r->display_name && !r->phone && !r->extension && !r->message && !r->tracking_id &&
           !r->status && !r->person_id && !r->errors && !r->error_code;
}

/* Whether s is well-formed UTF-8 (RFC 3629). */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n;
        uint32_t cp;
        if (*p < 0x80) {
            p++;
            continue;
        } else if ((*p & 0xe0) == 0xc0) {
            n = 1, cp = *p & 0x1f;
        } else if ((*p & 0xf0) == 0xe0) {
            n = 2, cp = *p & 0x0f;
        } else if ((*p & 0xf8) == 0xf0) {
            n = 3, cp = *p & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

static void test_seed_200(void)
{
    /* The 200 body from seed/provision-broadworks-workspace.txt. */
    static const char body[] =
        "{\n"
        "    \"id\": \"Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFm"
        "MDcwYw\",\n"
        "    \"provisioningId\": \"ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVmNTk0"
        "LTViNTEtNDdiZS05Mzk2LTZjMzZlMmFkODNhNQ\",\n"
        "    \"userId\": \"95547321@sp.com\",\n"
        "    \"spEnterpriseId\": \"Reseller1+acme\",\n"
        "    \"displayName\": \"Conference Room\",\n"
        "    \"primaryPhoneNumber\": \"+1-240-555-1212\",\n"
        "    \"extension\": \"51212\",\n"
        "    \"created\": \"2019-10-18T14:26:16.000Z\"\n"
        "}\n";
    struct resp r;
    CHECK_EQ_INT(parse(body, &r), 0);
    CHECK_EQ_STR(r.id, "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFm"
                       "MDcwYw");
    CHECK_EQ_STR(r.provisioning_id, "ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVmNTk0"
                                    "LTViNTEtNDdiZS05Mzk2LTZjMzZlMmFkODNhNQ");
    CHECK_EQ_STR(r.user_id, "95547321@sp.com");
    CHECK_EQ_STR(r.sp_enterprise_id, "Reseller1+acme");
    CHECK_EQ_STR(r.display_name, "Conference Room");
    CHECK_EQ_STR(r.phone, "+1-240-555-1212");
    CHECK_EQ_STR(r.extension, "51212");
    CHECK_NULL(r.message);
    CHECK_NULL(r.tracking_id);
    resp_clear(&r);
    CHECK(all_null(&r));
}

static void test_errors(void)
{
    struct resp r;

    /* SPEC §1's error body. */
    CHECK_EQ_INT(parse("{\"message\": \"The request was invalid\", \"errors\": [{\"description\": "
                       "\"userId is malformed\", \"errorCode\": 1001}], \"trackingId\": "
                       "\"ROUTER_5F3A0C1E-0000-0000-0000-000000000000\"}",
                       &r),
                 0);
    CHECK_EQ_STR(r.message, "The request was invalid");
    CHECK_EQ_STR(r.tracking_id, "ROUTER_5F3A0C1E-0000-0000-0000-000000000000");
    CHECK_NULL(r.id);
    resp_clear(&r);

    /* No message: the first errors[].description stands in. */
    CHECK_EQ_INT(parse("{\"errors\":[{\"description\":\"first\"},{\"description\":\"second\"}],"
                       "\"trackingId\":\"T\"}",
                       &r),
                 0);
    CHECK_EQ_STR(r.message, "first");
    CHECK_EQ_STR(r.tracking_id, "T");
    resp_clear(&r);

    /* A null or non-string message also falls back. */
    CHECK_EQ_INT(parse("{\"message\":null,\"errors\":[{\"description\":\"d\"}]}", &r), 0);
    CHECK_EQ_STR(r.message, "d");
    resp_clear(&r);
    CHECK_EQ_INT(parse("{\"message\":42,\"errors\":[{\"description\":\"d\"}]}", &r), 0);
    CHECK_EQ_STR(r.message, "d");
    resp_clear(&r);

    /* Fallback cases that yield nothing, without failing the parse. */
    static const char *const none[] = {
        "{\"errors\":[]}",
        "{\"errors\":{}}",
        "{\"errors\":\"oops\"}",
        "{\"errors\":[\"a string\"]}",
        "{\"errors\":[{\"description\":7}]}",
        "{\"errors\":[null]}",
        "{}",
        "{\"id\":5,\"userId\":[],\"trackingId\":{},\"message\":true}",
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        bool parsed = CHECK_EQ_INT(parse(none[i], &r), 0); /* both checks count */
        if (!CHECK(all_null(&r)) || !parsed)
            fprintf(stderr, "  body %s\n", none[i]);
        resp_clear(&r);
    }
}

static void test_not_objects(void)
{
    static const char *const bad[] = {
        "[]",
        "[{\"id\":\"x\"}]",
        "\"id\"",
        "42",
        "null",
        "true",
        "<html><body>502 Bad Gateway</body></html>",
        "{\"id\": \"x\"",
        "{\"id\": x}",
        "   ",
        "\xff\xfe{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct resp r;
        bool refused = CHECK_EQ_INT(parse(bad[i], &r), -1); /* both checks count */
        if (!CHECK(all_null(&r)) || !refused)
            fprintf(stderr, "  body %s\n", bad[i]);
        resp_clear(&r);
    }
    struct resp r;
    CHECK_EQ_INT(resp_parse(NULL, 0, &r), -1);
    CHECK(all_null(&r));
    CHECK_EQ_INT(resp_parse("{}", 0, &r), -1); /* empty */
    CHECK(all_null(&r));
    resp_clear(&r);

    /* Only len bytes are read: no NUL needed, and what follows is ignored. */
    static const char buf[] = "{\"id\":\"W1\"}{\"id\":\"W2\"}";
    CHECK_EQ_INT(resp_parse(buf, 11, &r), 0);
    CHECK_EQ_STR(r.id, "W1");
    resp_clear(&r);
    CHECK_EQ_INT(resp_parse(buf, 10, &r), -1); /* cut inside the object */
    resp_clear(&r);

    /* Deep nesting is refused without recursion trouble. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 16);
    if (!deep)
        exit(2);
    char *p = deep + sprintf(deep, "{\"a\":");
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    strcpy(p + 2 * depth, "}");
    CHECK_EQ_INT(parse(deep, &r), -1);
    resp_clear(&r);
    free(deep);

    /* An embedded NUL cannot smuggle bytes past the C string. */
    CHECK_EQ_INT(parse("{\"message\":\"visible\\u0000hidden\"}", &r), 0);
    CHECK_EQ_STR(r.message, "visible");
    resp_clear(&r);
}

static char *body_with(const char *field, const char *value)
{
    size_t n = strlen(value) + strlen(field) + 16;
    char *b = malloc(n);
    if (!b)
        exit(2);
    snprintf(b, n, "{\"%s\":\"%s\"}", field, value);
    return b;
}

static void test_truncation(void)
{
    static const struct {
        const char *field;
        size_t max;
        size_t off; /* offsetof the member in struct resp */
    } fields[] = {
        {"message", RESP_MSG_MAX, offsetof(struct resp, message)},
        {"trackingId", RESP_ID_MAX, offsetof(struct resp, tracking_id)},
        {"id", RESP_ID_MAX, offsetof(struct resp, id)},
        {"userId", RESP_ID_MAX, offsetof(struct resp, user_id)},
        {"displayName", RESP_ID_MAX, offsetof(struct resp, display_name)},
        {"primaryPhoneNumber", RESP_ID_MAX, offsetof(struct resp, phone)},
        {"extension", RESP_ID_MAX, offsetof(struct resp, extension)},
        {"spEnterpriseId", RESP_ID_MAX, offsetof(struct resp, sp_enterprise_id)},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        for (size_t len = fields[i].max - 1; len <= fields[i].max + 1; len++) {
            char *v = malloc(len + 1);
            if (!v)
                exit(2);
            memset(v, 'm', len);
            v[len] = '\0';
            char *b = body_with(fields[i].field, v);
            struct resp r;
            CHECK_EQ_INT(parse(b, &r), 0);
            const char *got = *(char *const *)((const char *)&r + fields[i].off);
            if (CHECK_NOT_NULL(got)) {
                size_t want = len < fields[i].max ? len : fields[i].max;
                if (!CHECK_EQ_INT(strlen(got), want))
                    fprintf(stderr, "  field %s of %zu bytes\n", fields[i].field, len);
                CHECK(strncmp(got, v, want) == 0);
            }
            resp_clear(&r);
            free(b);
            free(v);
        }
    }

    /* A very long message (100 KB) is cut to RESP_MSG_MAX. */
    size_t big = 100000;
    char *v = malloc(big + 1);
    if (!v)
        exit(2);
    memset(v, 'x', big);
    v[big] = '\0';
    char *b = body_with("message", v);
    struct resp r;
    CHECK_EQ_INT(parse(b, &r), 0);
    CHECK(r.message && strlen(r.message) == RESP_MSG_MAX);
    resp_clear(&r);
    free(b);

    /* Truncation keeps the text valid UTF-8: a message of 511 ASCII bytes
     * and then "é" (2 bytes) must not end in half a character, since it
     * goes on into the JSON result record's error.message. */
    memset(v, 'a', RESP_MSG_MAX - 1);
    strcpy(v + RESP_MSG_MAX - 1, "\xc3\xa9 and more");
    b = body_with("message", v);
    CHECK_EQ_INT(parse(b, &r), 0);
    if (CHECK_NOT_NULL(r.message)) {
        CHECK(strlen(r.message) <= RESP_MSG_MAX);
        if (!CHECK_WHY(utf8_ok(r.message),
                       "resp.c get() truncates in the middle of a UTF-8 character"))
            fprintf(stderr, "  message ends in byte 0x%02x\n",
                    (unsigned char)r.message[strlen(r.message) - 1]);
    }
    resp_clear(&r);
    free(b);
    free(v);

    /* Bodies over 1 MiB are not parsed at all. */
    size_t huge = 1024 * 1024 + 10;
    char *h = malloc(huge + 1);
    if (!h)
        exit(2);
    memset(h, ' ', huge);
    memcpy(h, "{\"id\":\"W\"}", 10);
    h[huge] = '\0';
    CHECK_EQ_INT(resp_parse(h, huge, &r), -1);
    resp_clear(&r);
    free(h);
}

/* Cisco's OpenAPI examples for subscribers: a 200 with a status, an
 * error state with errors[], and a list. */
static void test_subscribers(void)
{
    struct resp r;
    CHECK_EQ_INT(parse("{\"id\":\"Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvNjk3MGU2YmI\","
                       "\"userId\":\"95547321@sp.com\",\"status\":\"provisioning\","
                       "\"created\":\"2019-10-18T14:26:16.000Z\"}",
                       &r),
                 0);
    CHECK_EQ_STR(r.id, "Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvNjk3MGU2YmI");
    CHECK_EQ_STR(r.status, "provisioning");
    CHECK_NULL(r.person_id);
    CHECK_NULL(r.errors);
    CHECK_EQ_INT(r.error_code, 0);
    resp_clear(&r);

    CHECK_EQ_INT(parse("{\"id\":\"S\",\"status\":\"error\",\"errors\":[{\"errorCode\":10022,"
                       "\"description\":\"The BroadWorks UserID is already associated\"},"
                       "{\"errorCode\":7,\"description\":\"second\"},3,{\"description\":\"x\"}]}",
                       &r),
                 0);
    CHECK_EQ_STR(r.status, "error");
    CHECK_EQ_INT(r.error_code, 10022);
    CHECK_EQ_STR(r.errors, "10022: The BroadWorks UserID is already associated; 7: second; x");
    CHECK_EQ_STR(r.message, "The BroadWorks UserID is already associated"); /* the fallback */
    resp_clear(&r);

    CHECK_EQ_INT(parse("{\"errors\":[{\"errorCode\":1}]}", &r), 0);
    CHECK_EQ_STR(r.errors, "1");
    CHECK_EQ_INT(r.error_code, 1);
    CHECK_NULL(r.message); /* no description to stand in for one */
    resp_clear(&r);

    /* errors[] never overflows: entries that do not fit whole are left out */
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof(big), "{\"errors\":[");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n,
                              "%s{\"errorCode\":%d,\"description\":\"%s\"}", i ? "," : "", i + 1,
                              "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    snprintf(big + n, sizeof(big) - n, "]}");
    CHECK_EQ_INT(parse(big, &r), 0);
    CHECK(r.errors && strlen(r.errors) <= RESP_MSG_MAX && utf8_ok(r.errors));
    resp_clear(&r);

    const char *list = "{\"items\":[{\"id\":\"A\",\"userId\":\"other\",\"status\":\"provisioned\"},"
                       "{\"id\":\"B\",\"userId\":\"u1\",\"status\":\"error\"},"
                       "{\"id\":\"C\",\"userId\":\"u1\",\"status\":\"provisioned\","
                       "\"personId\":\"P\"},7]}";
    CHECK_EQ_INT(resp_parse_list(list, strlen(list), "u1", &r), 2);
    CHECK_EQ_STR(r.id, "C"); /* the one not in error */
    CHECK_EQ_STR(r.person_id, "P");
    resp_clear(&r);
    CHECK_EQ_INT(resp_parse_list(list, strlen(list), "nobody", &r), 0);
    CHECK(all_null(&r));
    CHECK_EQ_INT(resp_parse_list("{\"items\":[]}", 12, "u1", &r), 0);
    CHECK_EQ_INT(resp_parse_list("{\"id\":\"x\"}", 10, "u1", &r), -1);
    CHECK_EQ_INT(resp_parse_list("[1]", 3, "u1", &r), -1);
    CHECK_EQ_INT(resp_parse_list(NULL, 0, "u1", &r), -1);
    CHECK(all_null(&r));
}

int main(void)
{
    test_subscribers();
    test_seed_200();
    test_errors();
    test_not_objects();
    test_truncation();
    return check_done();
}
