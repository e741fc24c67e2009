/* resp: see resp.h. */
#include "resp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define RESP_MAX_BYTES (1024 * 1024)
#define RESP_MAX_DEPTH 16

void resp_clear(struct resp *r)
{
    free(r->id);
    free(r->user_id);
    free(r->sp_enterprise_id);
    free(r->provisioning_id);
    free(r->display_name);
    free(r->phone);
    free(r->extension);
    free(r->message);
    free(r->tracking_id);
    free(r->status);
    free(r->person_id);
    free(r->errors);
    memset(r, 0, sizeof(*r));
}

/* A bounded copy of a string member; anything else is ignored. */
static char *get(json_object *o, const char *name, size_t max)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (len > max) { /* cut at a character boundary, never inside UTF-8 */
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            len--;
    }
    return strndup(s, len);
}

/* The first errors[].description stands in when there is no message. */
static char *first_error_description(json_object *o)
{
    json_object *errs;
    if (!json_object_object_get_ex(o, "errors", &errs) ||
        !json_object_is_type(errs, json_type_array) || json_object_array_length(errs) == 0)
        return NULL;
    json_object *e = json_object_array_get_idx(errs, 0);
    return json_object_is_type(e, json_type_object) ? get(e, "description", RESP_MSG_MAX) : NULL;
}

/* errors[] of a subscriber as one line, "code: description; ...", of the
 * entries that fit whole in RESP_MSG_MAX bytes; *first gets the first
 * errorCode. */
static char *errors_text(json_object *o, long *first)
{
    json_object *errs;
    char buf[RESP_MSG_MAX + 1] = "";
    size_t n = 0;
    *first = 0;
    if (!json_object_object_get_ex(o, "errors", &errs) ||
        !json_object_is_type(errs, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(errs); i++) {
        json_object *e = json_object_array_get_idx(errs, i), *code;
        if (!json_object_is_type(e, json_type_object))
            continue;
        long c = json_object_object_get_ex(e, "errorCode", &code) &&
                         json_object_is_type(code, json_type_int)
                     ? (long)json_object_get_int64(code)
                     : 0;
        if (!*first)
            *first = c;
        char *d = get(e, "description", RESP_MSG_MAX);
        if (c || d) { /* "code: description", "code" or "description" */
            char cs[24] = "";
            if (c)
                snprintf(cs, sizeof(cs), "%ld%s", c, d ? ": " : "");
            const char *sep = n ? "; " : "";
            int need = snprintf(NULL, 0, "%s%s%s", sep, cs, d ? d : "");
            if (need > 0 && (size_t)need < sizeof(buf) - n)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s%s", sep, cs, d ? d : "");
        }
        free(d);
    }
    return n ? strdup(buf) : NULL;
}

static json_object *parse_object(const char *body, size_t len)
{
    if (!body || len == 0 || len > RESP_MAX_BYTES)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(RESP_MAX_DEPTH);
    if (!tok)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static void fill(json_object *o, struct resp *out)
{
    out->id = get(o, "id", RESP_ID_MAX);
    out->user_id = get(o, "userId", RESP_ID_MAX);
    out->sp_enterprise_id = get(o, "spEnterpriseId", RESP_ID_MAX);
    out->provisioning_id = get(o, "provisioningId", 2 * RESP_ID_MAX);
    out->display_name = get(o, "displayName", RESP_ID_MAX);
    out->phone = get(o, "primaryPhoneNumber", RESP_ID_MAX);
    out->extension = get(o, "extension", RESP_ID_MAX);
    out->message = get(o, "message", RESP_MSG_MAX);
    if (!out->message)
        out->message = first_error_description(o);
    out->tracking_id = get(o, "trackingId", RESP_ID_MAX);
    out->status = get(o, "status", 64);
    out->person_id = get(o, "personId", RESP_ID_MAX);
    out->errors = errors_text(o, &out->error_code);
}

int resp_parse(const char *body, size_t len, struct resp *out)
{
    memset(out, 0, sizeof(*out));
    json_object *o = parse_object(body, len);
    if (!o)
        return -1;
    fill(o, out);
    json_object_put(o);
    return 0;
}

static bool has_string(json_object *o, const char *name, const char *value)
{
    json_object *v;
    return json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), value) == 0;
}

int resp_parse_list(const char *body, size_t len, const char *user_id, struct resp *out)
{
    memset(out, 0, sizeof(*out));
    json_object *o = parse_object(body, len), *items;
    if (!o)
        return -1;
    if (!json_object_object_get_ex(o, "items", &items) ||
        !json_object_is_type(items, json_type_array)) {
        json_object_put(o);
        return -1;
    }
    int matches = 0;
    json_object *pick = NULL;
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object *it = json_object_array_get_idx(items, i);
        if (!json_object_is_type(it, json_type_object) || !has_string(it, "userId", user_id))
            continue;
        matches++;
        if (!pick || has_string(pick, "status", "error"))
            pick = it;
    }
    if (pick)
        fill(pick, out);
    json_object_put(o);
    return matches;
}
