/* Unit tests for common/request.c: the SPEC §1 request mapping (method,
 * path, exact body fields), path percent-encoding and the TrackingID. */
#include "check.h"
#include "jsonutil.h"
#include "request.h"

#include <stdlib.h>
#include <string.h>

static void must_parse(const char *key, const char *json, struct ev_event *ev)
{
    char why[256];
    if (ev_parse(key, strlen(key), json, strlen(json), ev, why, sizeof(why)) != 0) {
        fprintf(stderr, "test event did not parse: %s\n%s\n", why, json);
        exit(2);
    }
}

/* Parses r's body; checks it is exactly one JSON object of n members. */
static json_object *body_of(const struct req *r, size_t n)
{
    if (!CHECK_NOT_NULL(r->body))
        return NULL;
    CHECK_EQ_INT(r->body_len, strlen(r->body));
    json_object *o = ju_parse(r->body, r->body_len);
    if (!CHECK_NOT_NULL(o))
        return NULL;
    CHECK(json_object_is_type(o, json_type_object));
    CHECK_EQ_INT(ju_count(o), n);
    return o;
}

static void test_provision(void)
{
    struct ev_event ev;
    struct req r;

    must_parse("u1",
               "{\"eventId\":\"e1\",\"type\":\"workspace.provision\",\"occurredAt\":\"x\","
               "\"workspace\":{\"provisioningId\":\"P1\",\"userId\":\"u1\",\"spEnterpriseId\":"
               "\"Reseller1+acme\",\"displayName\":\"Conference Room\",\"primaryPhoneNumber\":"
               "\"+1-240-555-1212\",\"extension\":\"51212\",\"colour\":\"red\"},"
               "\"workspaceId\":\"ignored\"}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, NULL, &r), 0);
    CHECK_EQ_STR(r.method, "POST");
    CHECK_EQ_STR(r.path, "/broadworks/workspaces");
    json_object *o = body_of(&r, 6);
    CHECK_JSTR(o, "provisioningId", "P1");
    CHECK_JSTR(o, "userId", "u1");
    CHECK_JSTR(o, "spEnterpriseId", "Reseller1+acme");
    CHECK_JSTR(o, "displayName", "Conference Room");
    CHECK_JSTR(o, "primaryPhoneNumber", "+1-240-555-1212");
    CHECK_JSTR(o, "extension", "51212");
    CHECK_JLACKS(o, "colour");
    CHECK_JLACKS(o, "workspaceId");
    json_object_put(o);
    req_clear(&r);
    CHECK_NULL(r.body);
    /* A workspace id given for a provision changes nothing. */
    CHECK_EQ_INT(req_build(&ev, "WS9", &r), 0);
    CHECK_EQ_STR(r.path, "/broadworks/workspaces");
    req_clear(&r);
    ev_clear(&ev);

    /* Without phone and extension: exactly the four required fields. */
    must_parse("u1",
               "{\"eventId\":\"e1\",\"type\":\"workspace.provision\",\"workspace\":{"
               "\"provisioningId\":\"P1\",\"userId\":\"u1\",\"spEnterpriseId\":\"S\","
               "\"displayName\":\"D\",\"extension\":null}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, NULL, &r), 0);
    o = body_of(&r, 4);
    CHECK_JLACKS(o, "primaryPhoneNumber");
    CHECK_JLACKS(o, "extension");
    json_object_put(o);
    req_clear(&r);
    ev_clear(&ev);

    /* Five: only an extension. */
    must_parse("u1",
               "{\"eventId\":\"e1\",\"type\":\"workspace.provision\",\"workspace\":{"
               "\"provisioningId\":\"P1\",\"userId\":\"u1\",\"spEnterpriseId\":\"S\","
               "\"displayName\":\"D\",\"extension\":\"7\"}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, NULL, &r), 0);
    o = body_of(&r, 5);
    CHECK_JSTR(o, "extension", "7");
    json_object_put(o);
    req_clear(&r);
    ev_clear(&ev);

    /* Values needing JSON escapes survive the round trip. */
    must_parse("u1",
               "{\"eventId\":\"e1\",\"type\":\"workspace.provision\",\"workspace\":{"
               "\"provisioningId\":\"a/b\",\"userId\":\"u1\",\"spEnterpriseId\":\"q\\\"q\","
               "\"displayName\":\"line1\\nline2\\t\\\\ \\u00e9\\u0001\"}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, NULL, &r), 0);
    o = body_of(&r, 4);
    CHECK_JSTR(o, "provisioningId", "a/b");
    CHECK_JSTR(o, "spEnterpriseId", "q\"q");
    CHECK_JSTR(o, "displayName", "line1\nline2\t\\ \xc3\xa9\x01");
    json_object_put(o);
    req_clear(&r);
    ev_clear(&ev);
}

static void test_update(void)
{
    struct ev_event ev;
    struct req r;

    must_parse("u1",
               "{\"eventId\":\"e2\",\"type\":\"workspace.update\",\"workspace\":{"
               "\"userId\":\"u1\",\"primaryPhoneNumber\":\"+1\",\"extension\":\"12\","
               "\"displayName\":\"cannot change\",\"spEnterpriseId\":\"nor this\"}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, "WS1", &r), 0);
    CHECK_EQ_STR(r.method, "PUT");
    CHECK_EQ_STR(r.path, "/broadworks/workspaces/WS1");
    json_object *o = body_of(&r, 3);
    CHECK_JSTR(o, "userId", "u1");
    CHECK_JSTR(o, "primaryPhoneNumber", "+1");
    CHECK_JSTR(o, "extension", "12");
    CHECK_JLACKS(o, "displayName");
    CHECK_JLACKS(o, "spEnterpriseId");
    CHECK_JLACKS(o, "newUserId");
    json_object_put(o);
    req_clear(&r);

    /* The workspace id is required (from the event or the state table). */
    CHECK_EQ_INT(req_build(&ev, NULL, &r), -1);
    req_clear(&r);
    CHECK_EQ_INT(req_build(&ev, "", &r), -1);
    req_clear(&r);
    ev_clear(&ev);

    /* A rename sends the new userId, and only userId. */
    must_parse("old@sp.com",
               "{\"eventId\":\"e3\",\"type\":\"workspace.update\",\"workspace\":{"
               "\"userId\":\"old@sp.com\",\"newUserId\":\"new@sp.com\"},\"workspaceId\":\"W\"}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, ev.workspace_id, &r), 0);
    CHECK_EQ_STR(r.path, "/broadworks/workspaces/W");
    o = body_of(&r, 1);
    CHECK_JSTR(o, "userId", "new@sp.com");
    json_object_put(o);
    req_clear(&r);
    ev_clear(&ev);
}

static void test_remove(void)
{
    struct ev_event ev;
    struct req r;

    must_parse("u1",
               "{\"eventId\":\"e4\",\"type\":\"workspace.remove\",\"workspace\":{"
               "\"userId\":\"u1\",\"extension\":\"5\"}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJl==", &r), 0);
    CHECK_EQ_STR(r.method, "DELETE");
    CHECK_EQ_STR(r.path, "/broadworks/workspaces/Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJl%3D%3D");
    CHECK_NULL(r.body);
    CHECK_EQ_INT(r.body_len, 0);
    req_clear(&r);
    CHECK_EQ_INT(req_build(&ev, NULL, &r), -1);
    req_clear(&r);
    ev_clear(&ev);

    /* EV_NONE maps to nothing. */
    struct ev_event none;
    memset(&none, 0, sizeof(none));
    CHECK_EQ_INT(req_build(&none, "W", &r), -1);
    req_clear(&r);
}

static void test_escape(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"abcXYZ019", "abcXYZ019"},
        {"-._~", "-._~"},
        {"a/b", "a%2Fb"},
        {"a b", "a%20b"},
        {"100%", "100%25"},
        {"%2F", "%252F"},
        {"\xc3\xa9", "%C3%A9"},
        {"\xff\x80\x01\x7f", "%FF%80%01%7F"},
        {"?#[]@!$&'()*+,;=:", "%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A"},
        {"..", "%2E%2E"}, /* a dot segment: never left for anyone to normalise */
        {".", "%2E"},
        {"a..", "a.."},
        {"\r\n", "%0D%0A"},
        {"\"<>\\^`{|}", "%22%3C%3E%5C%5E%60%7B%7C%7D"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[256];
        memset(out, 'Z', sizeof(out));
        CHECK_EQ_INT(req_escape_segment(cases[i].in, out, sizeof(out)), 0);
        CHECK_EQ_STR(out, cases[i].out);
        /* The exact size fits, one byte less does not (and says so). */
        size_t need = strlen(cases[i].out) + 1;
        CHECK_EQ_INT(req_escape_segment(cases[i].in, out, need), 0);
        CHECK_EQ_STR(out, cases[i].out);
        CHECK_EQ_INT(req_escape_segment(cases[i].in, out, need - 1), -1);
    }
    char one[1];
    CHECK_EQ_INT(req_escape_segment("", one, 1), 0);
    CHECK_EQ_STR(one, "");

    /* The path through req_build uses the same encoding. */
    struct ev_event ev;
    struct req r;
    must_parse("u1",
               "{\"eventId\":\"e4\",\"type\":\"workspace.remove\",\"workspace\":{"
               "\"userId\":\"u1\"}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, "a b c%d\xc3\xa9+:.", &r), 0);
    CHECK_EQ_STR(r.path, "/broadworks/workspaces/a%20b%20c%25d%C3%A9%2B%3A.");
    req_clear(&r);
    /* "%2e%2e" stays one segment: its '%' is encoded, nothing decodes it. */
    CHECK_EQ_INT(req_build(&ev, "%2e%2e", &r), 0);
    CHECK_EQ_STR(r.path, "/broadworks/workspaces/%252e%252e");
    req_clear(&r);

    /* An id that cannot be one path segment is never sent, whatever its
     * origin (a corrupt state record, say). */
    static const char *const hostile[] = {"",    ".",   "..",    "a/b",   "/",
                                          "x?y", "x#y", "a\x01", "a\x7f", "\t"};
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        CHECK_EQ_INT(req_build(&ev, hostile[i], &r), -1);
        req_clear(&r);
    }

    /* The longest workspace id an event can carry, all escaped, fits. */
    char ws[EV_MAX_WORKSPACE_ID + 1];
    memset(ws, ' ', EV_MAX_WORKSPACE_ID);
    ws[EV_MAX_WORKSPACE_ID] = '\0';
    CHECK_EQ_INT(req_build(&ev, ws, &r), 0);
    CHECK_EQ_INT(strlen(r.path), strlen("/broadworks/workspaces/") + 3 * EV_MAX_WORKSPACE_ID);
    CHECK(strncmp(r.path + strlen(r.path) - 6, "%20%20", 6) == 0);
    req_clear(&r);
    /* A longer one is refused, not cut. */
    char big[EV_MAX_WORKSPACE_ID + 2];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_EQ_INT(req_build(&ev, big, &r), -1);
    req_clear(&r);

    /* Dot segments are encoded where escaping alone is asked for. */
    char seg[16];
    CHECK_EQ_INT(req_escape_segment("..", seg, sizeof(seg)), 0);
    CHECK_EQ_STR(seg, "%2E%2E");
    CHECK_EQ_INT(req_escape_segment("a.b", seg, sizeof(seg)), 0);
    CHECK_EQ_STR(seg, "a.b");
    ev_clear(&ev);
}

static bool tracking_ok(const char *s)
{
    if (strncmp(s, "bwprovd_", 8) != 0)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.' || *p == '_' || *p == ':'))
            return false;
    return true;
}

static void test_tracking(void)
{
    static const struct {
        const char *id, *want;
    } cases[] = {
        {"b6d7e0c2-1f7a-4c35-9d38-5b8f0a7c1e11", "bwprovd_b6d7e0c2-1f7a-4c35-9d38-5b8f0a7c1e11"},
        {"keep-._:AZaz09", "bwprovd_keep-._:AZaz09"},
        {"a\r\nTrackingID: x", "bwprovd_a__TrackingID:_x"},
        {"sp ace\ttab", "bwprovd_sp_ace_tab"},
        {"caf\xc3\xa9", "bwprovd_caf__"},
        {"\xff", "bwprovd__"},
        {"a/b\\c\"d;e,f=g", "bwprovd_a_b_c_d_e_f_g"},
        {"", "bwprovd_"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[REQ_TRACKING_MAX];
        req_tracking_id(cases[i].id, out, sizeof(out));
        CHECK_EQ_STR(out, cases[i].want);
    }
    char out[REQ_TRACKING_MAX];
    req_tracking_id(NULL, out, sizeof(out));
    CHECK_EQ_STR(out, "bwprovd_");

    /* The longest eventId fits whole. */
    char id[EV_MAX_EVENT_ID + 1];
    memset(id, 'x', EV_MAX_EVENT_ID);
    id[EV_MAX_EVENT_ID] = '\0';
    req_tracking_id(id, out, sizeof(out));
    CHECK_EQ_INT(strlen(out), 8 + EV_MAX_EVENT_ID);
    CHECK_EQ_STR(out + 8, id);

    /* Longer input and small buffers are bounded and terminated. */
    char longid[1000];
    memset(longid, 'y', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    char guard[REQ_TRACKING_MAX + 8];
    memset(guard, '#', sizeof(guard));
    req_tracking_id(longid, guard, REQ_TRACKING_MAX);
    CHECK_EQ_INT(strlen(guard), REQ_TRACKING_MAX - 1);
    CHECK(guard[REQ_TRACKING_MAX] == '#');
    for (size_t cap = 1; cap < 16; cap++) {
        memset(guard, '#', sizeof(guard));
        req_tracking_id("abc\n", guard, cap);
        CHECK_EQ_INT(strlen(guard), cap - 1 < 12 ? cap - 1 : 12);
        CHECK(guard[cap] == '#');
    }

    /* Random bytes: the result is always a safe header value. */
    srand(7);
    int bad = 0;
    for (int n = 0; n < 2000 && !bad; n++) {
        char in[64];
        size_t len = (size_t)(rand() % 63);
        for (size_t k = 0; k < len; k++)
            in[k] = (char)(1 + rand() % 255);
        in[len] = '\0';
        req_tracking_id(in, out, sizeof(out));
        if (!tracking_ok(out) || strlen(out) != 8 + len) {
            bad = 1;
            fprintf(stderr, "  random input %d gave %s\n", n, out);
        }
    }
    CHECK(!bad);
}

/* SPEC §2b: the subscriber requests, and the two reads. */
static void test_subscribers(void)
{
    struct ev_event ev;
    struct req r;

    must_parse("u1",
               "{\"eventId\":\"e1\",\"type\":\"subscriber.provision\",\"subscriber\":{"
               "\"provisioningId\":\"P\",\"userId\":\"u1\",\"spEnterpriseId\":\"S\","
               "\"firstName\":\"John\",\"lastName\":\"Andersen\",\"package\":\"basic\","
               "\"mobilePhoneNumber\":\"+1-9\",\"email\":\"j@a\",\"language\":\"en\","
               "\"timezone\":\"America/Chicago\",\"colour\":\"red\"}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, NULL, &r), 0);
    CHECK_EQ_STR(r.method, "POST");
    CHECK_EQ_STR(r.path, "/broadworks/subscribers");
    json_object *o = body_of(&r, 10);
    CHECK_JSTR(o, "provisioningId", "P");
    CHECK_JSTR(o, "userId", "u1");
    CHECK_JSTR(o, "spEnterpriseId", "S");
    CHECK_JSTR(o, "firstName", "John");
    CHECK_JSTR(o, "lastName", "Andersen");
    CHECK_JSTR(o, "package", "basic");
    CHECK_JSTR(o, "mobilePhoneNumber", "+1-9");
    CHECK_JSTR(o, "email", "j@a");
    CHECK_JSTR(o, "language", "en");
    CHECK_JSTR(o, "timezone", "America/Chicago");
    CHECK_JLACKS(o, "colour");
    CHECK_JLACKS(o, "primaryPhoneNumber");
    json_object_put(o);
    req_clear(&r);
    ev_clear(&ev);

    /* PUT: only what it can change; a rename sends the new userId; "" is
     * sent as "" (it clears the field); email and language are not sent. */
    must_parse("u1",
               "{\"eventId\":\"e2\",\"type\":\"subscriber.update\",\"subscriber\":{"
               "\"userId\":\"u1\",\"newUserId\":\"u2\",\"extension\":\"\","
               "\"package\":\"premium\",\"email\":\"j@a\",\"language\":\"fr\"}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, "SUB1", &r), 0);
    CHECK_EQ_STR(r.method, "PUT");
    CHECK_EQ_STR(r.path, "/broadworks/subscribers/SUB1");
    o = body_of(&r, 3);
    CHECK_JSTR(o, "userId", "u2");
    CHECK_JSTR(o, "extension", "");
    CHECK_JSTR(o, "package", "premium");
    CHECK_JLACKS(o, "email");
    json_object_put(o);
    req_clear(&r);
    CHECK_EQ_INT(req_build(&ev, NULL, &r), -1); /* no id, no request */
    CHECK_EQ_INT(req_build(&ev, "..", &r), -1);
    CHECK_EQ_INT(req_build(&ev, "a/b", &r), -1);
    ev_clear(&ev);

    must_parse("u1",
               "{\"eventId\":\"e3\",\"type\":\"subscriber.remove\",\"subscriber\":{"
               "\"userId\":\"u1\"}}",
               &ev);
    CHECK_EQ_INT(req_build(&ev, "S 1", &r), 0);
    CHECK_EQ_STR(r.method, "DELETE");
    CHECK_EQ_STR(r.path, "/broadworks/subscribers/S%201");
    CHECK_NULL(r.body);
    req_clear(&r);
    ev_clear(&ev);

    CHECK_EQ_INT(req_build_poll("Y2lz", &r), 0);
    CHECK_EQ_STR(r.method, "GET");
    CHECK_EQ_STR(r.path, "/broadworks/subscribers/Y2lz");
    CHECK_NULL(r.body);
    CHECK_EQ_INT(req_build_poll("..", &r), -1);
    CHECK_EQ_INT(req_build_poll(NULL, &r), -1);

    /* The lookup's query values are percent-encoded: no '&', '=' or '#'
     * of a userId can add a parameter. */
    CHECK_EQ_INT(req_build_lookup("95547321@sp.com", "Reseller1+acme", &r), 0);
    CHECK_EQ_STR(r.method, "GET");
    CHECK_EQ_STR(r.path, "/broadworks/subscribers?userId=95547321%40sp.com"
                         "&spEnterpriseId=Reseller1%2Bacme&max=100");
    CHECK_EQ_INT(req_build_lookup("a&max=1#x", NULL, &r), 0);
    CHECK_EQ_STR(r.path, "/broadworks/subscribers?userId=a%26max%3D1%23x&max=100");
    CHECK_EQ_INT(req_build_lookup("", NULL, &r), -1);
    char big[EV_MAX_USER_ID + 1];
    memset(big, '%', EV_MAX_USER_ID);
    big[EV_MAX_USER_ID] = '\0';
    char bigsp[EV_MAX_ENTERPRISE_ID + 1];
    memset(bigsp, '/', EV_MAX_ENTERPRISE_ID);
    bigsp[EV_MAX_ENTERPRISE_ID] = '\0';
    CHECK_EQ_INT(req_build_lookup(big, bigsp, &r), 0); /* the largest still fits */
    CHECK_EQ_INT(strlen(r.path), strlen("/broadworks/subscribers?userId=&spEnterpriseId=&max=100") +
                                     3 * (EV_MAX_USER_ID + EV_MAX_ENTERPRISE_ID));
}

int main(void)
{
    test_provision();
    test_subscribers();
    test_update();
    test_remove();
    test_escape();
    test_tracking();
    return check_done();
}
