/* result: see result.h. */
#include "result.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

const char *res_outcome_name(enum res_outcome o)
{
    switch (o) {
    case RES_SUCCEEDED:
        return "succeeded";
    case RES_FAILED:
        return "failed";
    case RES_REJECTED:
        return "rejected";
    }
    return "failed";
}

void res_format_time(int64_t epoch_ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0 && outlen > 0)
        out[0] = '\0';
    if (n > 0 && n < outlen)
        snprintf(out + n, outlen - n, ".%03dZ", (int)(epoch_ms % 1000));
}

static json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static json_object *source_json(const struct res_source *s)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "topic", str_or_null(s->topic));
    json_object_object_add(o, "partition", json_object_new_int(s->partition));
    json_object_object_add(o, "offset", json_object_new_int64(s->offset));
    return o;
}

static json_object *time_json(int64_t epoch_ms)
{
    char buf[40];
    res_format_time(epoch_ms, buf, sizeof(buf));
    return json_object_new_string(buf);
}

static char *finish(json_object *o, size_t *len)
{
    size_t n = 0;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
    char *out = s ? strndup(s, n) : NULL;
    *len = out ? n : 0;
    json_object_put(o);
    return out;
}

static json_object *error_json(const struct res_record *r)
{
    if (!r->error_kind)
        return NULL;
    json_object *e = json_object_new_object();
    if (!e)
        return NULL;
    json_object_object_add(e, "kind", json_object_new_string(r->error_kind));
    json_object_object_add(e, "message", str_or_null(r->error_message));
    return e;
}

char *res_to_json(const struct res_record *r, size_t *len)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "eventId", str_or_null(r->event_id));
    json_object_object_add(o, "type", str_or_null(r->type));
    json_object_object_add(o, "userId", str_or_null(r->user_id));
    json_object_object_add(o, "outcome", json_object_new_string(res_outcome_name(r->outcome)));
    json_object_object_add(o, "httpStatus",
                           r->http_status >= 0 ? json_object_new_int(r->http_status) : NULL);
    json_object_object_add(o, "workspaceId", str_or_null(r->workspace_id));
    json_object_object_add(o, "trackingId", str_or_null(r->tracking_id));
    json_object_object_add(o, "attempts", json_object_new_int(r->attempts));
    json_object_object_add(o, "note", str_or_null(r->note));
    json_object_object_add(o, "error", error_json(r));
    json_object_object_add(o, "source", source_json(&r->source));
    json_object_object_add(o, "completedAt", time_json(r->completed_ms));
    json_object_object_add(o, "latencyMs", json_object_new_int64(r->latency_ms));
    return finish(o, len);
}

char *res_state_to_json(const struct res_state *s, size_t *len)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "workspaceId", str_or_null(s->workspace_id));
    json_object_object_add(o, "userId", str_or_null(s->user_id));
    json_object_object_add(o, "spEnterpriseId", str_or_null(s->sp_enterprise_id));
    json_object_object_add(o, "provisioningId", str_or_null(s->provisioning_id));
    json_object_object_add(o, "displayName", str_or_null(s->display_name));
    json_object_object_add(o, "primaryPhoneNumber", str_or_null(s->phone));
    json_object_object_add(o, "extension", str_or_null(s->extension));
    json_object_object_add(o, "eventId", str_or_null(s->event_id));
    json_object_object_add(o, "source", source_json(&s->source));
    json_object_object_add(o, "updatedAt", time_json(s->updated_ms));
    return finish(o, len);
}
