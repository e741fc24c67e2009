/* fuzz_resp: resp_parse() on an arbitrary Webex API response body.
 *
 * The body is passed as libFuzzer's buffer, which is not NUL-terminated, so
 * ASan catches any read past len. Invariants:
 *  - failure (-1) leaves every field NULL;
 *  - success: every string within its bound (RESP_ID_MAX, provisioningId
 *    2 * RESP_ID_MAX, message RESP_MSG_MAX);
 *  - when the body is strict UTF-8 without escapes, every string is strict
 *    UTF-8 too: truncation to the bound never cuts a character in half;
 *  - success, against json-c read independently here: each field is NULL
 *    exactly when its member is absent or not a string (message falls back
 *    to errors[0].description), else a prefix of the member: all of it up
 *    to its bound or an embedded NUL, and when cut at the bound, cut at a
 *    character boundary (within 3 bytes of the bound for valid UTF-8);
 *  - parsing is deterministic; resp_clear() empties the struct and is
 *    idempotent, and LeakSanitizer checks it frees everything. */
#include "fuzz.h"
#include "resp.h"

#include <string.h>

#include <json-c/json.h>

static bool streq_opt(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

#define FIELDS(r)                                                                                  \
    {                                                                                              \
        (r).id, (r).user_id, (r).sp_enterprise_id, (r).provisioning_id, (r).display_name,          \
            (r).phone, (r).extension, (r).message, (r).tracking_id                                 \
    }
static const char *const names[] = {
    "id",        "userId",  "spEnterpriseId", "provisioningId", "displayName", "primaryPhoneNumber",
    "extension", "message", "trackingId"};
static const size_t bounds[] = {RESP_ID_MAX,     RESP_ID_MAX,  RESP_ID_MAX,
                                2 * RESP_ID_MAX, RESP_ID_MAX,  RESP_ID_MAX,
                                RESP_ID_MAX,     RESP_MSG_MAX, RESP_ID_MAX};
#define N_FIELDS (sizeof(names) / sizeof(names[0]))

static const char *member(json_object *o, const char *name, size_t *len)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    *len = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

static void check_prefix(const char *name, const char *got, const char *src, size_t srclen,
                         size_t bound)
{
    if (!src) {
        FUZZ_CHECK(!got, "%s: '%s' without a string member", name, got);
        return;
    }
    FUZZ_CHECK(got != NULL, "%s: NULL for a string member", name);
    size_t n = strlen(got), nul = strnlen(src, srclen);
    FUZZ_CHECK(n <= srclen && memcmp(got, src, n) == 0, "%s: not a prefix of the member", name);
    if (nul <= bound) {
        FUZZ_CHECK(n == nul, "%s: %zu bytes kept of %zu (bound %zu)", name, n, nul, bound);
    } else {
        FUZZ_CHECK(n == nul || ((unsigned char)src[n] & 0xc0) != 0x80,
                   "%s: cut inside a character at %zu", name, n);
        FUZZ_CHECK(n == nul || !fuzz_utf8_valid((const unsigned char *)src, nul) || n + 3 >= bound,
                   "%s: cut at %zu, far below the bound %zu", name, n, bound);
    }
}

static void check_against_json(const struct resp *r, const char *body, size_t size)
{
    json_tokener *tok = json_tokener_new_ex(16);
    FUZZ_CHECK(tok != NULL, "out of memory");
    json_object *o = json_tokener_parse_ex(tok, body, (int)size);
    FUZZ_CHECK(o && json_object_is_type(o, json_type_object), "accepted a non-object");
    const char *const got[] = FIELDS(*r);
    for (size_t i = 0; i < N_FIELDS; i++) {
        size_t len = 0;
        const char *src = member(o, names[i], &len);
        json_object *errs, *e;
        if (!src && strcmp(names[i], "message") == 0 &&
            json_object_object_get_ex(o, "errors", &errs) &&
            json_object_is_type(errs, json_type_array) && json_object_array_length(errs) > 0 &&
            (e = json_object_array_get_idx(errs, 0)) && json_object_is_type(e, json_type_object))
            src = member(e, "description", &len);
        check_prefix(names[i], got[i], src, len, bounds[i]);
    }
    json_object_put(o);
    json_tokener_free(tok);
}

static bool all_null(const struct resp *r)
{
    const char *f[] = FIELDS(*r);
    for (size_t i = 0; i < N_FIELDS; i++)
        if (f[i])
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct resp r, again;
    const char *body = (const char *)data;

    int rc = resp_parse(body, size, &r);
    FUZZ_CHECK(rc == 0 || rc == -1, "resp_parse returned %d", rc);
    if (rc != 0) {
        FUZZ_CHECK(all_null(&r), "failed parse left fields set");
    } else {
        /* Escapes (\u0000, lone surrogates) may decode to anything; raw
         * valid UTF-8 must stay valid after truncation. */
        check_against_json(&r, body, size);
        bool clean_utf8 = memchr(data, '\\', size) == NULL && fuzz_utf8_valid(data, size);
        const char *f[] = FIELDS(r);
        for (size_t i = 0; i < N_FIELDS; i++) {
            if (!f[i])
                continue;
            FUZZ_CHECK(strlen(f[i]) <= bounds[i], "%s: %zu bytes > %zu", names[i], strlen(f[i]),
                       bounds[i]);
            if (clean_utf8)
                FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)f[i], strlen(f[i])),
                           "%s: invalid UTF-8 from a valid body", names[i]);
        }
        FUZZ_CHECK(resp_parse(body, size, &again) == 0, "second parse failed");
        const char *g[] = FIELDS(again);
        for (size_t i = 0; i < N_FIELDS; i++)
            FUZZ_CHECK(streq_opt(f[i], g[i]), "%s differs on a second parse", names[i]);
        resp_clear(&again);
    }
    resp_clear(&r);
    FUZZ_CHECK(all_null(&r), "resp_clear left fields set");
    resp_clear(&r);
    return 0;
}
