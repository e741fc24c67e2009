/* resp: see resp.h. */
#include "resp.h"

#include <stdbool.h>
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

int resp_parse(const char *body, size_t len, struct resp *out)
{
    memset(out, 0, sizeof(*out));
    if (!body || len == 0 || len > RESP_MAX_BYTES)
        return -1;
    json_tokener *tok = json_tokener_new_ex(RESP_MAX_DEPTH);
    if (!tok)
        return -1;
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        return -1;
    }
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
    json_object_put(o);
    return 0;
}
