/* jsonw: see jsonw.h. */
#include "jsonw.h"

#include <stdlib.h>
#include <string.h>

/* How each byte is written inside a string: 0 copies it as is, 'u' writes
 * \u00XX, any other value c writes \c. RFC 8259 §7 requires an escape only
 * for the controls below 0x20, '"' and '\\'; DEL and bytes >= 0x80 (UTF-8)
 * go through as is, and so does '/'. NUL is marked too, so that the scan
 * for the end of a run stops at the terminator with the same one lookup. */
/* clang-format off */
static const unsigned char esc[256] = {
    /* 0x00 */ 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    /* 0x10 */ 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    ['"'] = '"',
    ['\\'] = '\\',
};
/* clang-format on */

static void fail(struct jw *w)
{
    w->failed = true;
}

/* Makes room for n more bytes plus the NUL, doubling the buffer up to
 * JW_MAX_CAP. False (and w failed) when that is impossible. */
static bool reserve(struct jw *w, size_t n)
{
    if (w->failed)
        return false;
    if (n < w->cap - w->len)
        return true;
    /* len < cap <= JW_MAX_CAP, so neither side can wrap. */
    if (n >= JW_MAX_CAP - w->len) {
        fail(w);
        return false;
    }
    /* Ends at JW_MAX_CAP at the latest, which has room (checked above). */
    size_t cap = w->cap;
    while (n >= cap - w->len)
        cap = cap < JW_MAX_CAP / 2 ? cap * 2 : JW_MAX_CAP;
    char *p = realloc(w->buf, cap);
    if (!p) {
        fail(w); /* jw_finish() frees the old buffer */
        return false;
    }
    w->buf = p;
    w->cap = cap;
    return true;
}

static void put_bytes(struct jw *w, const void *p, size_t n)
{
    if (n > 0 && reserve(w, n)) {
        memcpy(w->buf + w->len, p, n);
        w->len += n;
    }
}

static void put_char(struct jw *w, char c)
{
    if (reserve(w, 1))
        w->buf[w->len++] = c;
}

/* The escape of byte c, for which esc[c] != 0. */
static void put_escape(struct jw *w, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\', (char)esc[c], '0', '0', hex[c >> 4], hex[c & 0xf]};
    put_bytes(w, e, esc[c] == 'u' ? 6 : 2);
}

/* s quoted and escaped. Most bytes need no escape: each run of them is
 * found with one table lookup a byte and copied with one memcpy. */
static void put_string(struct jw *w, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    put_char(w, '"');
    while (!w->failed) {
        size_t run = 0;
        while (!esc[p[run]])
            run++;
        put_bytes(w, p, run);
        p += run;
        if (*p == '\0')
            break;
        put_escape(w, *p++);
    }
    put_char(w, '"');
}

/* The separator and "key": of the next member. */
static void put_key(struct jw *w, const char *key)
{
    if (!key) {
        fail(w);
        return;
    }
    if (!w->first)
        put_char(w, ',');
    w->first = false;
    put_string(w, key);
    put_char(w, ':');
}

void jw_begin(struct jw *w)
{
    *w = (struct jw){.buf = malloc(JW_INIT_CAP), .cap = JW_INIT_CAP, .depth = 1, .first = true};
    if (!w->buf) {
        w->cap = 0;
        fail(w);
    }
    put_char(w, '{');
}

void jw_str(struct jw *w, const char *key, const char *value)
{
    if (!value) {
        jw_null(w, key);
        return;
    }
    put_key(w, key);
    put_string(w, value);
}

void jw_int(struct jw *w, const char *key, int64_t value)
{
    char digits[24]; /* 20 digits of UINT64_MAX, the sign */
    size_t i = sizeof(digits);
    /* The magnitude in unsigned arithmetic: -INT64_MIN does not fit. */
    uint64_t u = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (value < 0)
        digits[--i] = '-';
    put_key(w, key);
    put_bytes(w, digits + i, sizeof(digits) - i);
}

void jw_null(struct jw *w, const char *key)
{
    put_key(w, key);
    put_bytes(w, "null", 4);
}

void jw_bool(struct jw *w, const char *key, bool value)
{
    put_key(w, key);
    put_bytes(w, value ? "true" : "false", value ? 4 : 5);
}

void jw_obj_begin(struct jw *w, const char *key)
{
    put_key(w, key);
    put_char(w, '{');
    w->depth++;
    w->first = true;
}

void jw_obj_end(struct jw *w)
{
    if (w->depth < 2) { /* would close the outermost object */
        fail(w);
        return;
    }
    put_char(w, '}');
    w->depth--;
    w->first = false; /* the object just closed was a member */
}

char *jw_finish(struct jw *w, size_t *len)
{
    if (w->depth != 1)
        fail(w);
    put_char(w, '}');
    char *out = NULL;
    if (w->failed) {
        free(w->buf);
    } else {
        out = w->buf;
        out[w->len] = '\0'; /* reserve() kept room for it */
    }
    if (len)
        *len = out ? w->len : 0;
    *w = (struct jw){.failed = true};
    return out;
}
