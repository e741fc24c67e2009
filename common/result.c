/* result: see result.h. */
#include "result.h"

#include "jsonw.h"

#include <stdio.h>
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
    jw_str(&w, "workspaceId", r->workspace_id);
    jw_str(&w, "trackingId", r->tracking_id);
    jw_int(&w, "attempts", r->attempts);
    jw_str(&w, "note", r->note);
    put_error(&w, r);
    put_source(&w, &r->source);
    put_time(&w, "completedAt", r->completed_ms);
    jw_int(&w, "latencyMs", r->latency_ms);
    return jw_finish(&w, len);
}

char *res_state_to_json(const struct res_state *s, size_t *len)
{
    struct jw w;
    jw_begin(&w);
    jw_str(&w, "workspaceId", s->workspace_id);
    jw_str(&w, "userId", s->user_id);
    jw_str(&w, "spEnterpriseId", s->sp_enterprise_id);
    jw_str(&w, "provisioningId", s->provisioning_id);
    jw_str(&w, "displayName", s->display_name);
    jw_str(&w, "primaryPhoneNumber", s->phone);
    jw_str(&w, "extension", s->extension);
    jw_str(&w, "eventId", s->event_id);
    put_source(&w, &s->source);
    put_time(&w, "updatedAt", s->updated_ms);
    return jw_finish(&w, len);
}
