/* Unit tests for common/jstrict.c: strict JSON with UTF-8 text accepted
 * whatever the json-c (0.18 refuses every non-ASCII byte in strict mode),
 * the grammar as strict as before, invalid UTF-8 refused, and the two
 * passes used for json-c 0.18 agreeing with one strict pass on any
 * library. */
#include "check.h"
#include "jstrict.h"

#include <stdio.h>
#include <string.h>

#define DEPTH 32

/* A whole document: a value that ends where the text (but for trailing
 * whitespace) ends. */
static bool whole(json_object *o, enum json_tokener_error err, size_t end, const char *s,
                  size_t len)
{
    (void)o;
    return err == json_tokener_success && strspn(s + end, " \t\r\n") == len - end;
}

struct doc {
    const char *text;
    bool ok;
};

/* Verdicts that hold for every json-c. Not here: what json-c's strict mode
 * lets through in some versions (control characters before 0.18; single
 * quotes around a key, NaN and overlong UTF-8 forms in 0.16): jstrict is as
 * strict as json-c, no more. */
static const struct doc docs[] = {
    {"{\"a\":\"\xc3\xa9\"}", true}, /* é, 2 bytes */
    {"\"\xe2\x82\xac\"", true},     /* €, 3 bytes */
    {"\"\xf0\x9f\x98\x80\"", true}, /* U+1F600, 4 bytes */
    {"{\"\xc3\xbc\":1}", true},     /* non-ASCII key */
    {"[\"a\",\"J\xc3\xbcrgen\",{\"k\":\"\xe6\xbc\xa2\"}]", true},
    {"{\"a\":\"x\\u00e9\"}", true},     /* escaped: ASCII text */
    {"{\"a\":\"\xc3\xa9\"}  \n", true}, /* trailing whitespace */
    {"{\"a\":\"\xc3\xa9\",\"b\":[1,2.5,-3e2,true,false,null]}", true},
    {"\"\x80\"", false},                 /* lone continuation byte */
    {"\"\xc3\"", false},                 /* truncated sequence */
    {"\"\xf8\x88\x80\x80\x80\"", false}, /* 5-byte form */
    {"{\"a\":\"\xc3\xa9\",}", false},    /* trailing comma */
    {"[\"\xc3\xa9\",]", false},
    {"{\"a\":'\xc3\xa9'}", false},
    {"{\"a\":\"\xc3\xa9\" /* c */}", false}, /* comment */
    {"{\"a\":\"\xc3\xa9\"} x", false},       /* trailing garbage */
    {"{\"a\":\"\xc3\xa9\"", false},          /* truncated document */
    {"[f\x80lse]", false},                   /* 'x' must not make it valid */
    {"[tru\xc3\xa9]", false},
    {"{\"a\":\xc3\xa9}", false}, /* non-ASCII outside a string */
    {"\xc3\xa9{\"a\":1}", false},
    {"{\"a\":1}\xc3\xa9", false},
    {"{\"a\":\"\\\xc3\xa9\"}", false}, /* escape of a non-ASCII byte */
    {"{\"a\":\"\\u00\xc3\xa9\"}", false},
    {"{\"a\":01,\"b\":\"\xc3\xa9\"}", false}, /* leading zero */
    {"{\"a\":True,\"b\":\"\xc3\xa9\"}", false},
};

static void test_docs(void)
{
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        const char *s = docs[i].text;
        size_t len = strlen(s);
        enum json_tokener_error e1, e2;
        size_t end1, end2;
        json_object *o1 = jstrict_parse(s, len, DEPTH, &e1, &end1);
        json_object *o2 = jstrict_parse_two_passes(s, len, DEPTH, &e2, &end2);
        bool ok1 = whole(o1, e1, end1, s, len), ok2 = whole(o2, e2, end2, s, len);
        if (!CHECK(ok1 == docs[i].ok) || !CHECK(ok2 == docs[i].ok)) {
            fprintf(stderr, "  doc %zu: ", i);
            check_print_str_(s);
            fprintf(stderr, " want %s; one call: %s (%s, end %zu), two passes: %s (%s, end %zu)\n",
                    docs[i].ok ? "valid" : "invalid", ok1 ? "valid" : "invalid",
                    json_tokener_error_desc(e1), end1, ok2 ? "valid" : "invalid",
                    json_tokener_error_desc(e2), end2);
        }
        if (docs[i].ok && ok1 && ok2)
            CHECK(json_object_equal(o1, o2));
        json_object_put(o1);
        json_object_put(o2);
    }
}

/* The text comes out byte for byte. */
static void test_value(void)
{
    const char *s = "{\"displayName\":\"J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80\"}";
    enum json_tokener_error err;
    size_t end;
    json_object *o = jstrict_parse(s, strlen(s), DEPTH, &err, &end);
    json_object *v = NULL;
    CHECK_WHY(o && json_object_object_get_ex(o, "displayName", &v),
              "json-c 0.18's strict mode refused UTF-8 text (json-c #875)");
    CHECK_EQ_STR(v ? json_object_get_string(v) : NULL,
                 "J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80");
    CHECK_EQ_INT(end, strlen(s));
    json_object_put(o);

    /* The literal null: no object, no error, as json-c says it. */
    o = jstrict_parse("null ", 5, DEPTH, &err, &end);
    CHECK_NULL(o);
    CHECK_EQ_INT(err, json_tokener_success);
    o = jstrict_parse_two_passes("null ", 5, DEPTH, &err, &end);
    CHECK_NULL(o);
    CHECK_EQ_INT(err, json_tokener_success);

    /* Depth bound kept by both paths. */
    const char *deep = "[[[\"\xc3\xa9\"]]]";
    o = jstrict_parse(deep, strlen(deep), 2, &err, &end);
    CHECK_NULL(o);
    CHECK_EQ_INT(err, json_tokener_error_depth);
    o = jstrict_parse_two_passes(deep, strlen(deep), 2, &err, &end);
    CHECK_NULL(o);
    CHECK_EQ_INT(err, json_tokener_error_depth);
}

/* On ASCII text the two passes give what one strict pass of this json-c
 * gives, including what differs between json-c versions (control
 * characters) and truncation. */
static void test_ascii_agrees(void)
{
    static const char *const ascii[] = {
        "{\"a\":\"b\"}",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\t\"}",
        "[1,]",
        "{\"a\":1",
        "\"abc",
        "[1e5,-0.5,0]",
        "{} {}",
        "nul",
        "[\"\\ud83d\\ude00\"]",
        "{\"a\":\"\\x41\"}",
    };
    for (size_t i = 0; i < sizeof(ascii) / sizeof(ascii[0]); i++) {
        const char *s = ascii[i];
        size_t len = strlen(s);
        enum json_tokener_error e1, e2;
        size_t end1, end2;
        json_object *o1 = jstrict_parse(s, len, DEPTH, &e1, &end1);
        json_object *o2 = jstrict_parse_two_passes(s, len, DEPTH, &e2, &end2);
        if (!CHECK(e1 == e2 && end1 == end2)) {
            fprintf(stderr, "  ascii %zu: ", i);
            check_print_str_(s);
            fprintf(stderr, " one call %s end %zu, two passes %s end %zu\n",
                    json_tokener_error_desc(e1), end1, json_tokener_error_desc(e2), end2);
        }
        CHECK((o1 == NULL) == (o2 == NULL));
        json_object_put(o1);
        json_object_put(o2);
    }
}

int main(void)
{
    fprintf(stderr, "json-c %s: %s\n", json_c_version(),
            jstrict_needs_two_passes() ? "strict mode refuses UTF-8 text: two passes"
                                       : "strict mode sound: one pass");
    test_docs();
    test_value();
    test_ascii_agrees();
    return check_done();
}
