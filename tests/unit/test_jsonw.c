/* Unit tests for common/jsonw.c: the exact text of every member kind and of
 * nested objects, RFC 8259 escaping of every control byte, '"' and '\\',
 * bytes >= 0x7f copied as is, growth past the first 512 bytes, the 1 MiB
 * bound and misuse turning into NULL, and random documents checked against
 * a reference escaper here and parsed back with json-c. */
#include "check.h"
#include "jsonutil.h"
#include "jsonw.h"

#include <stdlib.h>
#include <string.h>

/* {"k":value} as written by jsonw; NULL on failure. */
static char *doc1(const char *value, size_t *len)
{
    struct jw w;
    jw_begin(&w);
    jw_str(&w, "k", value);
    return jw_finish(&w, len);
}

/* Independent of jsonw: the two-character escape of byte c, or NULL. */
static const char *ref_short(unsigned char c)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    }
    return NULL;
}

/* The escaped text of s into out (always NUL-terminated); its length. */
static size_t ref_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (ref_short(*p))
            snprintf(e, sizeof(e), "%s", ref_short(*p));
        else if (*p < 0x20)
            snprintf(e, sizeof(e), "\\u%04x", *p);
        else
            snprintf(e, sizeof(e), "%c", *p);
        size_t el = strlen(e);
        if (n + el < cap) {
            memcpy(out + n, e, el);
            n += el;
        }
    }
    if (cap > 0)
        out[n] = '\0';
    return n;
}

/* value (valid UTF-8) written, checked against the reference text and
 * parsed back strictly to the same bytes. */
static void check_value(const char *value)
{
    static char want[64 * 1024];
    size_t len = 0;
    char *s = doc1(value, &len);
    if (!CHECK_NOT_NULL(s))
        return;
    CHECK_EQ_INT(len, strlen(s));
    size_t n = strlen("{\"k\":\"");
    memcpy(want, "{\"k\":\"", n);
    n += ref_escape(value, want + n, sizeof(want) - n - 3);
    memcpy(want + n, "\"}", 3);
    CHECK_EQ_STR(s, want);
    json_object *o = ju_parse(s, len);
    if (CHECK_NOT_NULL(o))
        CHECK_JSTR(o, "k", value);
    json_object_put(o);
    free(s);
}

static void test_members(void)
{
    struct jw w;
    size_t len = 99;
    jw_begin(&w);
    jw_str(&w, "s", "x");
    jw_int(&w, "n", 42);
    jw_null(&w, "z");
    jw_str(&w, "e", "");
    jw_str(&w, "absent", NULL);
    char *s = jw_finish(&w, &len);
    CHECK_EQ_STR(s, "{\"s\":\"x\",\"n\":42,\"z\":null,\"e\":\"\",\"absent\":null}");
    CHECK_EQ_INT(len, s ? strlen(s) : 0);
    json_object *o = ju_parse(s, len);
    static const char *const keys[] = {"s", "n", "z", "e", "absent"};
    CHECK(ju_key_order(o, keys, 5));
    CHECK_JSTR(o, "s", "x");
    CHECK_JINT(o, "n", 42);
    CHECK_JNULL(o, "z");
    CHECK_JSTR(o, "e", "");
    CHECK_JNULL(o, "absent");
    json_object_put(o);
    free(s);

    /* An empty object; len may be NULL. */
    jw_begin(&w);
    s = jw_finish(&w, NULL);
    CHECK_EQ_STR(s, "{}");
    free(s);
}

static void test_ints(void)
{
    static const int64_t v[] = {
        0,         1,         -1,           9, 10, -10, INT32_MAX, INT32_MIN, 9007199254740993LL,
        INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct jw w;
        size_t len;
        jw_begin(&w);
        jw_int(&w, "i", v[i]);
        char *s = jw_finish(&w, &len);
        char want[48];
        snprintf(want, sizeof(want), "{\"i\":%" PRId64 "}", v[i]);
        CHECK_EQ_STR(s, want);
        json_object *o = ju_parse(s, len);
        CHECK(ju_is_int(o, "i", v[i]));
        json_object_put(o);
        free(s);
    }
}

static void test_controls(void)
{
    /* Every control byte but NUL (the terminator of a C string), alone and
     * between other bytes, in its short form or as \u00XX. */
    static const char *const short_forms[32] = {
        ['\b'] = "\\b", ['\t'] = "\\t", ['\n'] = "\\n", ['\f'] = "\\f", ['\r'] = "\\r"};
    char all[32];
    for (int c = 1; c < 0x20; c++) {
        char in[4] = {'a', (char)c, 'b', '\0'};
        char want[32];
        if (short_forms[c])
            snprintf(want, sizeof(want), "{\"k\":\"a%sb\"}", short_forms[c]);
        else
            snprintf(want, sizeof(want), "{\"k\":\"a\\u%04xb\"}", c);
        size_t len;
        char *s = doc1(in, &len);
        if (!CHECK_EQ_STR(s, want))
            fprintf(stderr, "  byte 0x%02x\n", c);
        free(s);
        check_value(in + 1); /* at the start of a string */
        in[2] = '\0';
        check_value(in); /* at the end */
        all[c - 1] = (char)c;
    }
    all[31] = '\0';
    check_value(all); /* back to back */
    size_t len;
    char *s = doc1("\x01\x1f\x7f", &len);
    CHECK_EQ_STR(s, "{\"k\":\"\\u0001\\u001f\x7f\"}");
    free(s);
}

static void test_quotes(void)
{
    size_t len;
    char *s = doc1("say \"hi\" \\ back/slash", &len);
    CHECK_EQ_STR(s, "{\"k\":\"say \\\"hi\\\" \\\\ back/slash\"}");
    free(s);
    check_value("\"");
    check_value("\\");
    check_value("\\\"\\\"");
    check_value("\\u0041"); /* text that looks like an escape */
    check_value("/");
    check_value("");

    /* Keys are escaped the same way. */
    struct jw w;
    jw_begin(&w);
    jw_int(&w, "a\"b\\c\n", 1);
    s = jw_finish(&w, &len);
    CHECK_EQ_STR(s, "{\"a\\\"b\\\\c\\n\":1}");
    json_object *o = ju_parse(s, len);
    CHECK(ju_is_int(o, "a\"b\\c\n", 1));
    json_object_put(o);
    free(s);
}

static void test_utf8(void)
{
    /* UTF-8 of 2, 3 and 4 bytes and DEL go through as is. */
    const char *u = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e \xe6\x97\xa5\xe6\x9c\xac\x7f";
    size_t len;
    char *s = doc1(u, &len);
    char want[64];
    snprintf(want, sizeof(want), "{\"k\":\"%s\"}", u);
    CHECK_EQ_STR(s, want);
    free(s);
    check_value(u);

    /* So do bytes that are not UTF-8: jsonw trusts its input (validated
     * upstream), like json-c did. */
    char high[129];
    for (int i = 0; i < 128; i++)
        high[i] = (char)(0x80 + i);
    high[128] = '\0';
    s = doc1(high, &len);
    CHECK(s && len == 6 + 128 + 2 && memcmp(s + 6, high, 128) == 0);
    free(s);
}

static void test_nested(void)
{
    struct jw w;
    size_t len;
    jw_begin(&w);
    jw_int(&w, "a", 1);
    jw_obj_begin(&w, "o");
    jw_str(&w, "x", "y");
    jw_obj_begin(&w, "e");
    jw_obj_end(&w);
    jw_null(&w, "n");
    jw_obj_end(&w);
    jw_obj_begin(&w, "p");
    jw_int(&w, "z", 0);
    jw_obj_end(&w);
    jw_str(&w, "last", NULL);
    char *s = jw_finish(&w, &len);
    CHECK_EQ_STR(s,
                 "{\"a\":1,\"o\":{\"x\":\"y\",\"e\":{},\"n\":null},\"p\":{\"z\":0},\"last\":null}");
    json_object *o = ju_parse(s, len), *in;
    static const char *const keys[] = {"a", "o", "p", "last"};
    CHECK(ju_key_order(o, keys, 4));
    if (CHECK(ju_get(o, "o", &in))) {
        static const char *const inner[] = {"x", "e", "n"};
        CHECK(ju_key_order(in, inner, 3));
        CHECK_JSTR(in, "x", "y");
        CHECK_JNULL(in, "n");
    }
    json_object_put(o);
    free(s);

    /* A nested object as the first member. */
    jw_begin(&w);
    jw_obj_begin(&w, "o");
    jw_obj_end(&w);
    s = jw_finish(&w, &len);
    CHECK_EQ_STR(s, "{\"o\":{}}");
    free(s);
}

static void test_misuse(void)
{
    struct jw w;
    size_t len = 99;
    jw_begin(&w);
    jw_obj_end(&w); /* would close the outermost object */
    CHECK_NULL(jw_finish(&w, &len));
    CHECK_EQ_INT(len, 0);

    len = 99;
    jw_begin(&w);
    jw_obj_begin(&w, "o");
    jw_int(&w, "i", 1);
    CHECK_NULL(jw_finish(&w, &len)); /* "o" still open */
    CHECK_EQ_INT(len, 0);

    jw_begin(&w);
    jw_int(&w, NULL, 1);
    CHECK_NULL(jw_finish(&w, &len));
}

static void test_growth(void)
{
    /* A 10 KB value, escapes spread through it, grows the buffer several
     * times over; so do many small members. */
    static char big[10 * 1024 + 1];
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = i % 97 == 0 ? '"' : i % 131 == 0 ? '\n' : i % 173 == 0 ? '\x01' : 'a' + i % 26;
    big[sizeof(big) - 1] = '\0';
    check_value(big);

    static char want[16 * 1024];
    size_t n = 0;
    struct jw w;
    size_t len;
    jw_begin(&w);
    for (int i = 0; i < 1000; i++) {
        jw_int(&w, "member", i);
        n += (size_t)snprintf(want + n, sizeof(want) - n, "%c\"member\":%d", i ? ',' : '{', i);
    }
    snprintf(want + n, sizeof(want) - n, "}");
    char *s = jw_finish(&w, &len);
    CHECK(len > 10 * JW_INIT_CAP);
    CHECK_EQ_INT(len, strlen(want));
    CHECK_EQ_STR(s, want);
    free(s);
}

static void test_bound(void)
{
    /* {"k":"...."} is the value + 8 bytes; the buffer holds JW_MAX_CAP
     * bytes with the NUL. */
    size_t fits = JW_MAX_CAP - 1 - 8;
    char *v = malloc(JW_MAX_CAP + 1);
    if (!CHECK_NOT_NULL(v))
        return;
    memset(v, 'a', JW_MAX_CAP);
    v[fits] = '\0';
    size_t len = 0;
    char *s = doc1(v, &len);
    CHECK_NOT_NULL(s);
    CHECK_EQ_INT(len, JW_MAX_CAP - 1);
    CHECK(s && s[len] == '\0' && s[len - 1] == '}');
    free(s);

    v[fits] = 'a';
    v[fits + 1] = '\0';
    len = 99;
    CHECK_NULL(doc1(v, &len)); /* one byte over */
    CHECK_EQ_INT(len, 0);

    v[fits + 1] = 'a';
    v[JW_MAX_CAP] = '\0';
    CHECK_NULL(doc1(v, &len)); /* the whole bound in one run */

    /* Escapes multiply the size: a sixth of the bound in \u0001 is over. */
    memset(v, '\x01', JW_MAX_CAP / 6 + 1);
    v[JW_MAX_CAP / 6 + 1] = '\0';
    CHECK_NULL(doc1(v, &len));

    /* Writing on after the failure is harmless and still NULL. */
    struct jw w;
    jw_begin(&w);
    jw_str(&w, "big", v);
    jw_str(&w, "more", "x");
    jw_obj_begin(&w, "o");
    jw_int(&w, "i", 1);
    jw_obj_end(&w);
    CHECK_NULL(jw_finish(&w, &len));
    free(v);
}

/* Random documents: members of every kind with values drawn from the
 * bytes that matter (controls, '"', '\\', '/', DEL, UTF-8), compared with
 * the reference text and read back through json_tokener_parse(). */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define R_MAXSTR 80
struct rmember {
    char key[16];
    int kind; /* 0 string, 1 integer, 2 null, 3 object of strings */
    char str[4 * R_MAXSTR + 1];
    int64_t num;
    size_t nkids;
    char kids[3][4 * R_MAXSTR + 1];
};

static void rand_string(char *out)
{
    static const char utf8[][5] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", "\xdf\xbf"};
    size_t n = 0, want = next_rand() % (R_MAXSTR + 1);
    for (size_t i = 0; i < want; i++) {
        unsigned r = (unsigned)(next_rand() % 10);
        if (r < 4)
            out[n++] = (char)(' ' + next_rand() % 95);
        else if (r < 6)
            out[n++] = (char)(1 + next_rand() % 31);
        else if (r == 6)
            out[n++] = "\"\\/"[next_rand() % 3];
        else if (r == 7)
            out[n++] = '\x7f';
        else {
            const char *u = utf8[next_rand() % 4];
            memcpy(out + n, u, strlen(u));
            n += strlen(u);
        }
    }
    out[n] = '\0';
}

static void rand_member(struct rmember *m, size_t i)
{
    snprintf(m->key, sizeof(m->key), "m%zu", i);
    m->kind = (int)(next_rand() % 4);
    rand_string(m->str);
    uint64_t r = next_rand();
    m->num = r % 4 == 0 ? INT64_MIN : (int64_t)(r >> 1) * (r & 2 ? -1 : 1);
    m->nkids = next_rand() % 4;
    for (size_t k = 0; k < m->nkids; k++)
        rand_string(m->kids[k]);
}

static void write_member(struct jw *w, const struct rmember *m)
{
    static const char *const kid_keys[] = {"a", "b", "c"};
    if (m->kind == 0)
        jw_str(w, m->key, m->str);
    else if (m->kind == 1)
        jw_int(w, m->key, m->num);
    else if (m->kind == 2)
        jw_null(w, m->key);
    else {
        jw_obj_begin(w, m->key);
        for (size_t k = 0; k < m->nkids; k++)
            jw_str(w, kid_keys[k], m->kids[k]);
        jw_obj_end(w);
    }
}

static size_t ref_append(char *out, size_t n, size_t cap, const char *text)
{
    size_t tl = strlen(text);
    if (n + tl < cap) {
        memcpy(out + n, text, tl + 1);
        n += tl;
    }
    return n;
}

static size_t ref_string(char *out, size_t n, size_t cap, const char *s)
{
    n = ref_append(out, n, cap, "\"");
    n += ref_escape(s, out + n, cap - n);
    return ref_append(out, n, cap, "\"");
}

static size_t ref_member(char *out, size_t n, size_t cap, const struct rmember *m)
{
    static const char *const kid_keys[] = {"\"a\":", "\"b\":", "\"c\":"};
    char num[32];
    n = ref_string(out, n, cap, m->key);
    n = ref_append(out, n, cap, ":");
    if (m->kind == 0)
        return ref_string(out, n, cap, m->str);
    if (m->kind == 2)
        return ref_append(out, n, cap, "null");
    if (m->kind == 1) {
        snprintf(num, sizeof(num), "%" PRId64, m->num);
        return ref_append(out, n, cap, num);
    }
    n = ref_append(out, n, cap, "{");
    for (size_t k = 0; k < m->nkids; k++) {
        n = ref_append(out, n, cap, k ? "," : "");
        n = ref_append(out, n, cap, kid_keys[k]);
        n = ref_string(out, n, cap, m->kids[k]);
    }
    return ref_append(out, n, cap, "}");
}

static bool parsed_member_ok(json_object *v, const struct rmember *m)
{
    static const char *const kid_keys[] = {"a", "b", "c"};
    switch (m->kind) {
    case 0:
        return json_object_is_type(v, json_type_string) &&
               strcmp(json_object_get_string(v), m->str) == 0;
    case 1:
        return json_object_is_type(v, json_type_int) && json_object_get_int64(v) == m->num;
    case 2:
        return v == NULL;
    }
    if (!ju_key_order(v, kid_keys, m->nkids))
        return false;
    for (size_t k = 0; k < m->nkids; k++)
        if (!ju_str(v, kid_keys[k]) || strcmp(ju_str(v, kid_keys[k]), m->kids[k]) != 0)
            return false;
    return true;
}

static void check_random_doc(size_t nmembers)
{
    static struct rmember m[12];
    static char want[64 * 1024];
    const char *keys[12];
    struct jw w;
    jw_begin(&w);
    size_t n = ref_append(want, 0, sizeof(want), "{");
    for (size_t i = 0; i < nmembers; i++) {
        rand_member(&m[i], i);
        keys[i] = m[i].key;
        write_member(&w, &m[i]);
        n = ref_append(want, n, sizeof(want), i ? "," : "");
        n = ref_member(want, n, sizeof(want), &m[i]);
    }
    ref_append(want, n, sizeof(want), "}");
    size_t len;
    char *s = jw_finish(&w, &len);
    if (!CHECK_EQ_STR(s, want)) {
        free(s);
        return;
    }
    json_object *o = json_tokener_parse(s);
    json_object *strict = ju_parse(s, len);
    CHECK_NOT_NULL(strict);
    json_object_put(strict);
    if (CHECK(ju_key_order(o, keys, nmembers)))
        for (size_t i = 0; i < nmembers; i++) {
            json_object *v;
            if (!CHECK(ju_get(o, m[i].key, &v) && parsed_member_ok(v, &m[i])))
                fprintf(stderr, "  member %zu of %s\n", i, s);
        }
    json_object_put(o);
    free(s);
}

static void test_random(void)
{
    for (int i = 0; i < 3000; i++)
        check_random_doc((size_t)(next_rand() % 13));
}

int main(void)
{
    test_members();
    test_ints();
    test_controls();
    test_quotes();
    test_utf8();
    test_nested();
    test_misuse();
    test_growth();
    test_bound();
    test_random();
    return check_done();
}
