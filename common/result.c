/* result: see result.h. */
#include "result.h"

#include "jsonw.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* The records are written with jsonw rather than json-c objects: they are
 * produced for every event, and one buffer costs far less than an object
 * per member (see jsonw.h). */
static void put_source(struct jw *w, const struct res_source *s)
{
    jw_obj_begin(w, "source");
    jw_str(w, "topic", s->topic);
    jw_int(w, "partition", s->partition);
    jw_int(w, "offset", s->offset);
    jw_obj_end(w);
}

static void put_time(struct jw *w, const char *key, int64_t epoch_ms)
{
    char buf[40];
    res_format_time(epoch_ms, buf, sizeof(buf));
    jw_str(w, key, buf);
}

static void put_error(struct jw *w, const struct res_record *r)
{
    if (!r->error_kind) {
        jw_null(w, "error");
        return;
    }
    jw_obj_begin(w, "error");
    jw_str(w, "kind", r->error_kind);
    jw_str(w, "message", r->error_message);
    jw_obj_end(w);
}

char *res_to_json(const struct res_record *r, size_t *len)
{
    struct jw w;
    jw_begin(&w);
    jw_str(&w, "eventId", r->event_id);
    jw_str(&w, "type", r->type);
    jw_str(&w, "userId", r->user_id);
    jw_str(&w, "outcome", res_outcome_name(r->outcome));
    if (r->http_status >= 0)
        jw_int(&w, "httpStatus", r->http_status);
    else
        jw_null(&w, "httpStatus");
    if (r->subscriber) {
        jw_str(&w, "subscriberId", r->subscriber_id);
        jw_str(&w, "status", r->status);
        jw_str(&w, "personId", r->person_id);
    } else {
        jw_str(&w, "workspaceId", r->workspace_id);
    }
    jw_str(&w, "trackingId", r->tracking_id);
    jw_int(&w, "attempts", r->attempts);
    jw_str(&w, "note", r->note);
    put_error(&w, r);
    put_source(&w, &r->source);
    put_time(&w, "completedAt", r->completed_ms);
    jw_int(&w, "latencyMs", r->latency_ms);
    return jw_finish(&w, len);
}

/* A subscriber's fields beyond the workspace's, the ones it has. */
static void put_subscriber(struct jw *w, const struct res_state *s)
{
    static const char *const names[] = {"firstName",         "lastName", "package",
                                        "mobilePhoneNumber", "email",    "language",
                                        "timezone",          "status",   "personId"};
    const char *const vals[] = {s->first_name, s->last_name, s->package, s->mobile,   s->email,
                                s->language,   s->timezone,  s->status,  s->person_id};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (vals[i])
            jw_str(w, names[i], vals[i]);
}

char *res_state_to_json(const struct res_state *s, size_t *len)
{
    struct jw w;
    const char *id_name = s->subscriber ? "subscriberId" : "workspaceId";
    const char *id = s->subscriber ? s->subscriber_id : s->workspace_id;
    jw_begin(&w);
    jw_str(&w, "kind", s->subscriber ? "subscriber" : "workspace");
    if (s->removed) {
        jw_bool(&w, "removed", true);
        jw_str(&w, id_name, id);
        jw_str(&w, "userId", s->user_id);
        if (s->renamed_to)
            jw_str(&w, "renamedTo", s->renamed_to);
        jw_str(&w, "eventId", s->event_id);
        put_source(&w, &s->source);
        put_time(&w, "updatedAt", s->updated_ms);
        return jw_finish(&w, len);
    }
    jw_str(&w, id_name, id);
    jw_str(&w, "userId", s->user_id);
    jw_str(&w, "spEnterpriseId", s->sp_enterprise_id);
    jw_str(&w, "provisioningId", s->provisioning_id);
    if (!s->subscriber)
        jw_str(&w, "displayName", s->display_name);
    jw_str(&w, "primaryPhoneNumber", s->phone);
    jw_str(&w, "extension", s->extension);
    if (s->subscriber)
        put_subscriber(&w, s);
    jw_str(&w, "eventId", s->event_id);
    put_source(&w, &s->source);
    put_time(&w, "updatedAt", s->updated_ms);
    return jw_finish(&w, len);
}

/* A string member copied into out (cap bytes); NULL when absent, not a
 * string or too long. */
static const char *copy_str(json_object *o, const char *name, char *out, size_t cap)
{
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    size_t len = (size_t)json_object_get_string_len(v);
    if (len >= cap || strlen(json_object_get_string(v)) != len)
        return NULL;
    memcpy(out, json_object_get_string(v), len + 1);
    return out;
}

static void parse_source(json_object *o, struct res_state_in *out)
{
    json_object *src, *p, *off;
    out->source = (struct res_source){NULL, -1, -1};
    if (!json_object_object_get_ex(o, "source", &src) ||
        !json_object_is_type(src, json_type_object) ||
        !json_object_object_get_ex(src, "partition", &p) ||
        !json_object_object_get_ex(src, "offset", &off) || !json_object_is_type(p, json_type_int) ||
        !json_object_is_type(off, json_type_int))
        return;
    out->source.topic = copy_str(src, "topic", out->topic_buf, sizeof(out->topic_buf));
    out->source.partition = json_object_get_int(p);
    out->source.offset = json_object_get_int64(off);
}

int res_state_parse(const char *value, size_t len, struct res_state_in *out)
{
    char kind[32];
    memset(out, 0, sizeof(*out));
    out->source = (struct res_source){NULL, -1, -1};
    json_tokener *tok = json_tokener_new_ex(8);
    if (!tok)
        return -1;
    json_object *o = json_tokener_parse_ex(tok, value, (int)len);
    size_t end = json_tokener_get_parse_end(tok);
    while (end < len && strchr(" \t\r\n", value[end]) && value[end])
        end++; /* value is not terminated: no strspn */
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(o, json_type_object) && end == len;
    json_tokener_free(tok);
    if (ok) {
        json_object *v;
        out->removed = json_object_object_get_ex(o, "removed", &v) &&
                       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
        const char *k = copy_str(o, "kind", kind, sizeof(kind));
        out->subscriber = k && strcmp(k, "subscriber") == 0;
        out->other_kind = json_object_object_get_ex(o, "kind", NULL) && !out->subscriber &&
                          (!k || strcmp(k, "workspace") != 0);
        out->workspace_id = copy_str(o, out->subscriber ? "subscriberId" : "workspaceId",
                                     out->ws_buf, sizeof(out->ws_buf));
        if (out->subscriber && !out->removed) {
            char status[32];
            const char *st = copy_str(o, "status", status, sizeof(status));
            out->pending = st && (strcmp(st, "provisioning") == 0 || strcmp(st, "updating") == 0);
            out->failed = st && strcmp(st, "error") == 0;
        }
        parse_source(o, out);
    }
    json_object_put(o);
    return ok ? 0 : -1;
}
