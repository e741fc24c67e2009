/* jsonutil.h: reading back the JSON that common/ produces, for assertions.
 * Needs check.h first. */
#ifndef BWPROVD_TEST_JSONUTIL_H
#define BWPROVD_TEST_JSONUTIL_H

#include <json-c/json.h>

#include "jstrict.h"

/* Parses a whole document strictly; NULL if it is not exactly one JSON value.
 * (jstrict: json-c 0.18's strict mode refuses any non-ASCII text.) */
static inline json_object *ju_parse(const char *s, size_t len)
{
    enum json_tokener_error err;
    size_t end;
    if (!s)
        return NULL;
    json_object *o = jstrict_parse(s, len, JSON_TOKENER_DEFAULT_DEPTH, &err, &end);
    if (err != json_tokener_success || end != len) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* Member key of o: present (possibly null) -> true and *v set. */
static inline bool ju_get(json_object *o, const char *key, json_object **v)
{
    *v = NULL;
    return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, v);
}

/* The string value of member key, or NULL when absent, null or not a string. */
static inline const char *ju_str(json_object *o, const char *key)
{
    json_object *v;
    if (!ju_get(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static inline bool ju_is_null(json_object *o, const char *key)
{
    json_object *v;
    return ju_get(o, key, &v) && v == NULL;
}

static inline bool ju_is_int(json_object *o, const char *key, int64_t want)
{
    json_object *v;
    return ju_get(o, key, &v) && json_object_is_type(v, json_type_int) &&
           json_object_get_int64(v) == want;
}

static inline size_t ju_count(json_object *o)
{
    return o && json_object_is_type(o, json_type_object) ? (size_t)json_object_object_length(o) : 0;
}

/* The members of o are exactly keys[0..n), in that order (json-c keeps the order
 * of the text). */
static inline bool ju_key_order(json_object *o, const char *const *keys, size_t n)
{
    if (ju_count(o) != n)
        return false;
    struct json_object_iterator it = json_object_iter_begin(o);
    struct json_object_iterator end = json_object_iter_end(o);
    for (size_t i = 0; i < n; i++, json_object_iter_next(&it))
        if (json_object_iter_equal(&it, &end) || strcmp(json_object_iter_peek_name(&it), keys[i]))
            return false;
    return json_object_iter_equal(&it, &end);
}

#define CHECK_JSTR(o, key, want) CHECK_EQ_STR(ju_str((o), (key)), (want))
#define CHECK_JNULL(o, key)                                                                        \
    check_true_(ju_is_null((o), (key)), #o "." key " is null", __FILE__, __LINE__)
#define CHECK_JINT(o, key, want)                                                                   \
    check_true_(ju_is_int((o), (key), (want)), #o "." key " == " #want, __FILE__, __LINE__)
#define CHECK_JHAS(o, key)                                                                         \
    check_true_(ju_get((o), (key), &(json_object *){NULL}), #o " has " key, __FILE__, __LINE__)
#define CHECK_JLACKS(o, key)                                                                       \
    check_true_(!ju_get((o), (key), &(json_object *){NULL}), #o " lacks " key, __FILE__, __LINE__)

#endif
