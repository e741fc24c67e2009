/* jstrict: see jstrict.h. */
#include "jstrict.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* One pass of json-c with the given flags. */
static json_object *pass(const char *text, size_t len, int depth, int flags,
                         enum json_tokener_error *err, size_t *end)
{
    *end = 0;
    if (len > INT_MAX) { /* json_tokener_parse_ex() takes an int */
        *err = json_tokener_error_size;
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(depth);
    if (!tok) {
        *err = json_tokener_error_size; /* json-c 0.16 has no error_memory */
        return NULL;
    }
    json_tokener_set_flags(tok, flags);
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    *err = json_tokener_get_error(tok);
    *end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (*err != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

#define STRICT (JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8)

bool jstrict_needs_two_passes(void)
{
    /* 0: not probed yet, 1: sound, 2: rejects non-ASCII. Two threads may
     * both probe the first time; they find the same. */
    static atomic_int state;
    int s = atomic_load_explicit(&state, memory_order_relaxed);
    if (s == 0) {
        static const char probe[] = "\"\xc3\xa9\""; /* "é" */
        enum json_tokener_error err;
        size_t end;
        json_object *o = pass(probe, sizeof(probe) - 1, 2, STRICT, &err, &end);
        s = o && err == json_tokener_success ? 1 : 2;
        json_object_put(o);
        atomic_store_explicit(&state, s, memory_order_relaxed);
    }
    return s == 2;
}

json_object *jstrict_parse_two_passes(const char *text, size_t len, int depth,
                                      enum json_tokener_error *err, size_t *end)
{
    char *ascii = malloc(len ? len : 1);
    if (!ascii) {
        *err = json_tokener_error_size;
        *end = 0;
        return NULL;
    }
    for (size_t i = 0; i < len; i++)
        ascii[i] = (unsigned char)text[i] >= 0x80 ? 'x' : text[i];
    json_object *o = pass(ascii, len, depth, JSON_TOKENER_STRICT, err, end);
    free(ascii);
    json_object_put(o);
    if (*err != json_tokener_success)
        return NULL;

    /* The grammar is strict JSON, so the lenient pass reads the same
     * value and stops at the same place. */
    size_t strict_end = *end;
    o = pass(text, len, depth, JSON_TOKENER_VALIDATE_UTF8, err, end);
    if (*err == json_tokener_success && *end != strict_end) {
        json_object_put(o);
        *err = json_tokener_error_parse_unexpected;
        return NULL;
    }
    return o;
}

json_object *jstrict_parse(const char *text, size_t len, int depth, enum json_tokener_error *err,
                           size_t *end)
{
    if (jstrict_needs_two_passes()) {
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)text[i] >= 0x80)
                return jstrict_parse_two_passes(text, len, depth, err, end);
    }
    return pass(text, len, depth, STRICT, err, end);
}
