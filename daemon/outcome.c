/* outcome: turns a finished job into its records: the result (always), a
 * DLQ copy (failed and rejected), and state records (SPEC §4), written
 * through to the in-memory state table first so the user's next event sees
 * them. The offset is finished from the delivery reports (consumer.c). */
#include "app.h"

#include "classify.h"
#include "log.h"
#include "resp.h"
#include "result.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rec {
    const char *topic;
    char *key; /* borrowed from the job */
    size_t keylen;
    char *value; /* NULL: tombstone */
    size_t len;
    bool value_owned; /* malloc'd here: librdkafka frees it */
    rd_kafka_headers_t *hdrs;
};

/* A record that cannot even be queued would be lost: the job is marked so
 * its offset is never stored, and the daemon stops (a restart replays it). */
static void produce_lost(struct app *a, struct job *j, const char *topic, rd_kafka_resp_err_t e)
{
    log_err("cannot produce to %s: %s; stopping so the event is replayed after a restart", topic,
            rd_kafka_err2str(e));
    atomic_store(&a->fatal, true);
    atomic_store(&j->lost, true);
}

static void produce(struct app *a, struct job *j, struct rec *r)
{
    for (int tries = 0;; tries++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            a->producer, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_KEY(r->key, r->keylen),
            RD_KAFKA_V_VALUE(r->value, r->value ? r->len : 0),
            RD_KAFKA_V_MSGFLAGS(r->value_owned ? RD_KAFKA_MSG_F_FREE : 0),
            RD_KAFKA_V_HEADERS(r->hdrs), RD_KAFKA_V_OPAQUE(j), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return;
        /* A full local queue drains as the consumer thread serves delivery
         * reports; wait briefly rather than drop the record. */
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 30000 && !atomic_load(&a->fatal)) {
            usleep(1000);
            continue;
        }
        if (r->value_owned)
            free(r->value);
        if (r->hdrs)
            rd_kafka_headers_destroy(r->hdrs);
        produce_lost(a, j, r->topic, e);
        if (atomic_fetch_sub(&j->acks, 1) == 1)
            job_free(j); /* no report will come for it */
        return;
    }
}

static void source_header(rd_kafka_headers_t *h, const struct app *a, const struct job *j)
{
    char src[512];
    int n = snprintf(src, sizeof(src), "%s/%" PRId32 "/%" PRId64, a->cfg.topic_events, j->partition,
                     j->offset);
    rd_kafka_header_add(h, "bwprovd-source", -1, src, n);
}

static struct rec result_rec(struct app *a, struct job *j, const struct outcome *o)
{
    const char *user = j->ev.user_id;
    struct res_record r = {
        .event_id = j->ev.event_id,
        .type = ev_type_name(j->ev.type),
        .user_id = user,
        .outcome = (enum res_outcome)o->outcome,
        .http_status = o->http_status,
        .workspace_id = o->workspace_id,
        .tracking_id = j->valid ? j->tracking_id : NULL,
        .attempts = j->attempts,
        .note = o->note,
        .error_kind = cls_kind_name((enum cls_kind)o->error_kind),
        .error_message = o->error_message,
        .source = {a->cfg.topic_events, j->partition, j->offset},
        .completed_ms = app_epoch_ms(),
        .latency_ms = (app_now_us() - j->recv_us) / 1000,
    };
    struct rec rec = {a->cfg.topic_results, j->key, j->keylen, NULL, 0, true, NULL};
    rec.value = res_to_json(&r, &rec.len);
    return rec;
}

static struct rec dlq_rec(struct app *a, struct job *j, const struct outcome *o)
{
    struct rec rec = {a->cfg.topic_dlq, j->key, j->keylen, j->value, j->len, false, NULL};
    char reason[640];
    const char *kind = cls_kind_name((enum cls_kind)o->error_kind);

    snprintf(reason, sizeof(reason), "%s: %s", kind ? kind : "failed",
             o->error_message ? o->error_message : "");
    rec.hdrs = rd_kafka_headers_new(2);
    rd_kafka_header_add(rec.hdrs, "bwprovd-error", -1, reason, -1);
    source_header(rec.hdrs, a, j);
    static char empty[1];
    if (!j->value) /* an empty message stays an empty value, not a null one */
        rec.value = empty;
    return rec;
}

static rd_kafka_headers_t *state_headers(struct app *a, struct job *j)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "bwprovd-writer", -1, a->instance_id, -1);
    source_header(h, a, j);
    return h;
}

static struct rec state_tombstone(struct app *a, struct job *j, char *user)
{
    return (struct rec){a->cfg.topic_state, user, strlen(user), NULL, 0, false,
                        state_headers(a, j)};
}

static struct rec state_record(struct app *a, struct job *j, char *user, const char *ws,
                               const struct resp *rs)
{
    const struct ev_event *ev = &j->ev;
    struct res_state s = {
        .workspace_id = ws,
        .user_id = user,
        .sp_enterprise_id =
            rs && rs->sp_enterprise_id ? rs->sp_enterprise_id : ev->sp_enterprise_id,
        .provisioning_id = rs && rs->provisioning_id ? rs->provisioning_id : ev->provisioning_id,
        .display_name = rs && rs->display_name ? rs->display_name : ev->display_name,
        .phone = rs && rs->phone ? rs->phone : ev->phone,
        .extension = rs && rs->extension ? rs->extension : ev->extension,
        .event_id = ev->event_id,
        .source = {a->cfg.topic_events, j->partition, j->offset},
        .updated_ms = app_epoch_ms(),
    };
    struct rec rec = {a->cfg.topic_state, user, strlen(user), NULL, 0, true, state_headers(a, j)};
    rec.value = res_state_to_json(&s, &rec.len);
    return rec;
}

/* Writes the change into the table now and returns its records. A rename is
 * a tombstone for the old userId and a record for the new one. */
static int state_change(struct app *a, struct job *j, const struct outcome *o, struct rec *out)
{
    const struct ev_event *ev = &j->ev;
    struct st_src src = {a->cfg.topic_events, j->partition, j->offset};
    int n = 0;

    if (o->state_remove) {
        if (st_remove(a->state, ev->user_id, &src) != 0)
            log_err("state table: out of memory");
        out[n++] = state_tombstone(a, j, ev->user_id);
    }
    if (o->state_put) {
        char *user = ev->new_user_id ? ev->new_user_id : ev->user_id;
        if (ev->new_user_id && strcmp(ev->new_user_id, ev->user_id) != 0) {
            if (st_remove(a->state, ev->user_id, &src) != 0)
                log_err("state table: out of memory");
            out[n++] = state_tombstone(a, j, ev->user_id);
        }
        if (st_put(a->state, user, o->workspace_id, &src) != 0)
            log_err("state table: out of memory");
        out[n++] = state_record(a, j, user, o->workspace_id, o->resp);
    }
    return n;
}

static void log_it(struct app *a, const struct job *j, const struct outcome *o)
{
    struct log_outcome l = {
        .level = o->outcome == RES_SUCCEEDED ? LOG_LVL_INFO : LOG_LVL_WARNING,
        .event_id = j->ev.event_id,
        .event_type = ev_type_name(j->ev.type),
        .user_id = j->ev.user_id,
        .outcome = res_outcome_name((enum res_outcome)o->outcome),
        .http_status = o->http_status,
        .tracking_id = j->valid ? j->tracking_id : NULL,
        .attempt = j->attempts,
        .topic = a->cfg.topic_events,
        .partition = j->partition,
        .offset = j->offset,
        .detail = o->note ? o->note : o->error_message,
    };
    log_outcome(&l);
}

static void count(struct app *a, int outcome)
{
    atomic_ulong *c = outcome == RES_SUCCEEDED ? &a->n_ok
                      : outcome == RES_FAILED  ? &a->n_failed
                                               : &a->n_rejected;
    atomic_fetch_add(c, 1);
    atomic_fetch_add(&a->n_done_total, 1);
}

void outcome_emit(struct app *a, struct job *j, const struct outcome *o)
{
    struct rec recs[5];
    int n = 0;
    char key[EV_MAX_USER_ID + 1];
    size_t keylen = 0;
    bool release = j->valid;

    log_it(a, j, o);
    count(a, o->outcome);
    if (release) { /* the key is released only after its records are queued */
        keylen = j->keylen;
        memcpy(key, j->key, keylen);
    }
    recs[n++] = result_rec(a, j, o);
    if (o->outcome != RES_SUCCEEDED)
        recs[n++] = dlq_rec(a, j, o);
    if (o->outcome == RES_SUCCEEDED)
        n += state_change(a, j, o, recs + n);

    atomic_store(&j->acks, n);
    for (int i = 0; i < n; i++) {
        if (recs[i].value_owned && !recs[i].value) { /* JSON building ran out of memory */
            if (recs[i].hdrs)
                rd_kafka_headers_destroy(recs[i].hdrs);
            produce_lost(a, j, recs[i].topic, RD_KAFKA_RESP_ERR__FAIL);
            if (atomic_fetch_sub(&j->acks, 1) == 1)
                job_free(j);
            continue;
        }
        produce(a, j, &recs[i]);
    }
    /* j may be gone now. */
    if (release)
        pipe_key_done(a, key, keylen);
}
