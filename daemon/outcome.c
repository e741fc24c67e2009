/* outcome: turns a finished job into its records: the result (always), a
 * DLQ copy (failed and rejected), and state records (SPEC §4), written
 * through to the in-memory state table first so the user's next event sees
 * them. A job with state records is journaled, and its records are
 * produced only once the journal has them on disk: an id Webex answered is
 * then safe from a Kafka outage and a restart. The offset is finished from
 * the delivery reports (consumer.c). */
#include "app.h"

#include "classify.h"
#include "dlq.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "resp.h"
#include "result.h"
#include "topicread.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RECS 5

struct rec {
    const char *topic;
    char *key; /* borrowed from the job */
    size_t keylen;
    char *value; /* NULL: tombstone */
    size_t len;
    bool value_owned; /* malloc'd here: librdkafka frees it */
    rd_kafka_headers_t *hdrs;
};

/* A job's records waiting for the journal. */
struct emission {
    struct app *a;
    struct job *j;
    int n;
    struct rec recs[MAX_RECS];
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

static void release_rec(struct rec *r)
{
    if (r->value_owned)
        free(r->value);
    if (r->hdrs)
        rd_kafka_headers_destroy(r->hdrs);
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
        release_rec(r);
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
    rd_kafka_header_add(h, DQ_HDR_SOURCE, -1, src, n);
}

static struct rec result_rec(struct app *a, struct job *j, const struct outcome *o)
{
    const char *user = j->ev.user_id;
    struct res_record r = {
        .event_id = j->ev.event_id,
        .type = ev_type_name(j->ev.kind, j->ev.type),
        .user_id = user,
        .outcome = (enum res_outcome)o->outcome,
        .http_status = o->http_status,
        .workspace_id = o->workspace_id,
        .subscriber = j->ev.kind == EV_SUBSCRIBER,
        .subscriber_id = o->workspace_id,
        .status = o->status,
        .person_id = o->person_id,
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

/* A replayed event that fails again: its DLQ copy keeps the replay
 * headers (count, origin, the DLQ record it came from), so `bwprovd dlq
 * replay` counts on from there (loop guard) and judges staleness by the
 * first failure. */
static void copy_replay_headers(rd_kafka_headers_t *h, const struct job *j)
{
    const char *name;
    const void *v;
    size_t len;
    for (size_t i = 0;
         j->replay_hdrs && rd_kafka_header_get_all(j->replay_hdrs, i, &name, &v, &len) == 0; i++)
        rd_kafka_header_add(h, name, -1, v, v ? (ssize_t)len : 0);
}

static struct rec dlq_rec(struct app *a, struct job *j, const struct outcome *o)
{
    struct rec rec = {a->cfg.topic_dlq, j->key, j->keylen, j->value, j->len, false, NULL};
    char reason[640];
    const char *kind = cls_kind_name((enum cls_kind)o->error_kind);

    snprintf(reason, sizeof(reason), "%s: %s", kind ? kind : "failed",
             o->error_message ? o->error_message : "");
    rec.hdrs = rd_kafka_headers_new(2);
    rd_kafka_header_add(rec.hdrs, DQ_HDR_ERROR, -1, reason, -1);
    source_header(rec.hdrs, a, j);
    copy_replay_headers(rec.hdrs, j);
    static char empty[1];
    if (!j->value) /* an empty message stays an empty value, not a null one */
        rec.value = empty;
    return rec;
}

static rd_kafka_headers_t *state_headers(struct app *a, struct job *j)
{
    return tr_state_headers(a->instance_id, a->cfg.topic_events, j->partition, j->offset);
}

/* The removed marker of SPEC §4: a record, not a tombstone, so compaction
 * keeps it and a replay still finds the user removed. */
static struct rec state_marker(struct app *a, struct job *j, char *user, const char *ws,
                               const char *renamed_to)
{
    struct res_state s = {
        .removed = true,
        .subscriber = j->ev.kind == EV_SUBSCRIBER,
        .renamed_to = renamed_to,
        .workspace_id = ws,
        .subscriber_id = ws,
        .user_id = user,
        .event_id = j->ev.event_id,
        .source = {a->cfg.topic_events, j->partition, j->offset},
        .updated_ms = app_epoch_ms(),
    };
    struct rec rec = {a->cfg.topic_state, user, strlen(user), NULL, 0, true, state_headers(a, j)};
    rec.value = res_state_to_json(&s, &rec.len);
    return rec;
}

static struct rec state_record(struct app *a, struct job *j, char *user, const char *ws,
                               const struct resp *rs, const char *status)
{
    const struct ev_event *ev = &j->ev;
    struct res_state s = {
        .subscriber = ev->kind == EV_SUBSCRIBER,
        .workspace_id = ws,
        .subscriber_id = ws,
        .first_name = ev->first_name,
        .last_name = ev->last_name,
        .package = ev->package,
        .mobile = ev->mobile,
        .email = ev->email,
        .language = ev->language,
        .timezone = ev->timezone,
        .status = status,
        .person_id = rs ? rs->person_id : NULL,
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

static void table_write(int rc, const char *user)
{
    if (rc < 0)
        log_err("state table: out of memory");
    else if (rc > 0)
        log_debug("state table: a newer change for %s is already there", user);
}

/* Writes the change into the table now and returns its records. A rename
 * is a removed marker for the old userId and a record for the new one. */
static int state_change(struct app *a, struct job *j, const struct outcome *o, struct rec *out)
{
    const struct ev_event *ev = &j->ev;
    struct st_src src = {a->cfg.topic_events, j->partition, j->offset};
    int n = 0;

    if (o->state_remove) {
        table_write(st_remove(a->state, ev->user_id, &src), ev->user_id);
        out[n++] = state_marker(a, j, ev->user_id, o->workspace_id, NULL);
    }
    if (o->state_put) {
        char *user = ev->new_user_id ? ev->new_user_id : ev->user_id;
        if (ev->new_user_id && strcmp(ev->new_user_id, ev->user_id) != 0) {
            table_write(st_remove(a->state, ev->user_id, &src), ev->user_id);
            out[n++] = state_marker(a, j, ev->user_id, o->workspace_id, user);
        }
        if (ev->kind == EV_SUBSCRIBER)
            table_write(st_put_subscriber(a->state, user, o->workspace_id,
                                          o->outcome == RES_SUCCEEDED ? ST_SUB_DONE : ST_SUB_FAILED,
                                          &src),
                        user);
        else
            table_write(st_put(a->state, user, o->workspace_id, &src), user);
        out[n++] = state_record(a, j, user, o->workspace_id, o->resp, o->status);
    }
    return n;
}

static void log_it(struct app *a, const struct job *j, const struct outcome *o)
{
    int level = o->outcome == RES_SUCCEEDED ? LOG_LVL_INFO : LOG_LVL_WARNING;
    /* A new workspace id is logged at notice: the journal keeps an audit
     * trail of ids even where outcomes are not logged (log.level=notice). */
    if (o->outcome == RES_SUCCEEDED && o->state_put && j->ev.type == EV_PROVISION)
        level = LOG_LVL_NOTICE;
    struct log_outcome l = {
        .level = level,
        .event_id = j->ev.event_id,
        .event_type = ev_type_name(j->ev.kind, j->ev.type),
        .user_id = j->ev.user_id,
        .outcome = res_outcome_name((enum res_outcome)o->outcome),
        .http_status = o->http_status,
        .tracking_id = j->valid ? j->tracking_id : NULL,
        .attempt = j->attempts,
        .topic = a->cfg.topic_events,
        .partition = j->partition,
        .offset = j->offset,
        .workspace_id = j->ev.kind == EV_SUBSCRIBER ? NULL : o->workspace_id,
        .subscriber_id = j->ev.kind == EV_SUBSCRIBER ? o->workspace_id : NULL,
        .detail = o->note ? o->note : o->error_message,
    };
    log_outcome(&l);
}

static void count(struct app *a, const struct job *j, const struct outcome *o)
{
    atomic_ulong *c = o->outcome == RES_SUCCEEDED ? &a->n_ok
                      : o->outcome == RES_FAILED  ? &a->n_failed
                                                  : &a->n_rejected;
    atomic_fetch_add(c, 1);
    atomic_fetch_add(&a->n_done_total, 1);
    mx_event(a->mx, ev_code(j->ev.kind, j->ev.type), o->outcome, o->error_kind);
}

static void send_one(struct app *a, struct job *j, struct rec *r)
{
    if (r->value_owned && !r->value) { /* building it ran out of memory */
        release_rec(r);
        produce_lost(a, j, r->topic, RD_KAFKA_RESP_ERR__FAIL);
        if (atomic_fetch_sub(&j->acks, 1) == 1)
            job_free(j);
        return;
    }
    produce(a, j, r);
}

/* Produces the records, then ends the key's turn (after: the delivery
 * reports may free j as soon as the first record is queued). */
static void send_all(struct app *a, struct job *j, struct rec *recs, int n)
{
    char key[EV_MAX_USER_ID + 1];
    size_t keylen = 0;
    bool release = j->valid;
    struct ks_barrier *barrier = j->barrier;

    if (release) {
        keylen = j->keylen;
        memcpy(key, j->key, keylen);
    }
    atomic_store(&j->acks, n);
    for (int i = 0; i < n; i++)
        send_one(a, j, &recs[i]);
    /* j may be gone now. */
    if (release)
        pipe_key_done(a, key, keylen, barrier);
}

/* The journal has the job's state records on disk: now to Kafka. */
static void journaled(void *arg)
{
    struct emission em = *(struct emission *)arg;
    free(arg);
    send_all(em.a, em.j, em.recs, em.n);
}

/* Journals the state records recs[first..n) and sends all n once they are
 * on disk; without a journal entry (too large, out of memory) at once. */
static void journal_then_send(struct app *a, struct job *j, struct rec *recs, int n, int first)
{
    struct jf_rec jr[MAX_RECS];
    struct emission *em = malloc(sizeof(*em));
    for (int i = first; i < n; i++)
        jr[i - first] = (struct jf_rec){recs[i].key, recs[i].keylen, recs[i].value,
                                        recs[i].value ? recs[i].len : 0};
    if (em) {
        *em = (struct emission){a, j, n, {{0}}};
        memcpy(em->recs, recs, (size_t)n * sizeof(*recs));
        /* Once appended, the writer may run journaled() at any moment, and
         * the delivery reports free j: j is not touched after this call. */
        if (journal_append(a->journal, jr, n - first, journaled, em, &j->jseq) == 0)
            return;
    }
    log_err("cannot journal the state change of %s (out of memory); it goes to Kafka only",
            j->ev.user_id);
    free(em);
    send_all(a, j, recs, n);
}

static void busy(struct app *a, struct job *j)
{
    if (!j->busy) {
        j->busy = true;
        atomic_fetch_add(&a->part_busy[j->partition], 1);
    }
}

/* An answer that arrived after j's partition was let go (a lost
 * assignment, a revoke that outlasted webex.timeout_ms): the partition's
 * new owner replays the event, so nothing is recorded, except a workspace
 * id that only this answer carries (a provision), unless the table already
 * has something newer for the user. */
static void late(struct app *a, struct job *j, const struct outcome *o)
{
    struct st_src src = {a->cfg.topic_events, j->partition, j->offset};
    bool keep = o->outcome == RES_SUCCEEDED && o->state_put && j->ev.type == EV_PROVISION &&
                !st_older(a->state, j->ev.user_id, &src);
    if (!keep) {
        log_info("late answer for %s (partition %" PRId32 " offset %" PRId64 " was revoked): "
                 "not recorded; the partition's owner replays the event",
                 j->ev.user_id, j->partition, j->offset);
        pipe_drop(a, j);
        return;
    }
    log_notice("late answer for %s (partition %" PRId32 " offset %" PRId64 " was revoked): "
               "keeping %s id %s in the state table",
               j->ev.user_id, j->partition, j->offset,
               j->ev.kind == EV_SUBSCRIBER ? "subscriber" : "workspace", o->workspace_id);
    struct rec recs[MAX_RECS];
    int n = state_change(a, j, o, recs);
    busy(a, j);
    journal_then_send(a, j, recs, n, 0);
}

void outcome_emit(struct app *a, struct job *j, const struct outcome *o)
{
    struct rec recs[MAX_RECS];
    int n = 0;

    log_it(a, j, o);
    if (j->valid && !job_owned(a, j)) {
        late(a, j, o);
        return;
    }
    count(a, j, o);
    recs[n++] = result_rec(a, j, o);
    if (o->outcome != RES_SUCCEEDED)
        recs[n++] = dlq_rec(a, j, o);
    int first_state = n;
    /* A failed event changes nothing, but for a subscriber whose
     * provisioning ended in error: Webex has it, with an id (submap.h). */
    if (o->outcome == RES_SUCCEEDED || o->state_put)
        n += state_change(a, j, o, recs + n);
    busy(a, j);
    if (n > first_state)
        journal_then_send(a, j, recs, n, first_state);
    else
        send_all(a, j, recs, n);
}

/* --- a subscriber still being provisioned --- */

void outcome_note_pending(struct app *a, struct job *j, const char *id, const struct resp *r)
{
    struct st_src src = {a->cfg.topic_events, j->partition, j->offset};
    char *user = j->ev.user_id;
    int rc = st_put_subscriber(a->state, user, id, ST_SUB_PENDING, &src);
    table_write(rc, user);
    if (rc != 0)
        return; /* the table has something newer, or no memory: nothing to add */
    /* Not the event's own records (those end it): a carrier, freed when
     * Kafka has its one record; the journal keeps it until then. */
    struct job *c = calloc(1, sizeof(*c));
    char *key = strdup(user);
    if (!c || !key) {
        log_err("out of memory recording subscriber %s of %s; a lookup finds it again", id, user);
        free(c);
        free(key);
        return;
    }
    c->replay = true;
    c->key = key;
    c->keylen = strlen(key);
    c->partition = j->partition;
    c->offset = j->offset;
    c->ev.kind = EV_SUBSCRIBER;
    c->ev.event_id = j->ev.event_id; /* borrowed while the record is built */
    c->ev.provisioning_id = j->ev.provisioning_id;
    c->ev.sp_enterprise_id = j->ev.sp_enterprise_id;
    c->ev.phone = j->ev.phone;
    c->ev.extension = j->ev.extension;
    c->ev.first_name = j->ev.first_name;
    c->ev.last_name = j->ev.last_name;
    c->ev.package = j->ev.package;
    c->ev.mobile = j->ev.mobile;
    c->ev.email = j->ev.email;
    c->ev.language = j->ev.language;
    c->ev.timezone = j->ev.timezone;
    struct rec rec = state_record(a, c, key, id, r, r && r->status ? r->status : "provisioning");
    c->ev = (struct ev_event){0}; /* nothing of j's is kept */
    log_notice("subscriber %s of %s is being provisioned; its id is kept while it is polled", id,
               user);
    journal_then_send(a, c, &rec, 1, 0);
}

/* --- a late writer's record --- */

void outcome_reassert(struct app *a, const char *user)
{
    char ws[EV_MAX_WORKSPACE_ID + 1] = "", topic[256];
    struct st_src src;
    enum st_status st = st_get_src(a->state, user, ws, sizeof(ws), &src, topic, sizeof(topic));
    if (st == ST_ABSENT || !src.topic || strcmp(src.topic, a->cfg.topic_events) != 0 ||
        src.partition < 0 || src.partition >= APP_MAX_PARTITIONS ||
        !atomic_load(&a->part_owned[src.partition]))
        return; /* not ours to say: the partition's owner does it */
    struct res_state s = {
        .removed = st == ST_REMOVED,
        .workspace_id = st == ST_PRESENT ? ws : NULL,
        .user_id = user,
        .source = {src.topic, src.partition, src.offset},
        .updated_ms = app_epoch_ms(),
    };
    struct job *j = calloc(1, sizeof(*j));
    char *key = strdup(user);
    size_t len = 0;
    char *value = j && key ? res_state_to_json(&s, &len) : NULL;
    if (!value) {
        log_err("out of memory re-asserting the state record of %s", user);
        free(j);
        free(key);
        return;
    }
    rd_kafka_headers_t *h = tr_state_headers(a->instance_id, src.topic, src.partition, src.offset);
    j->replay = true; /* not an event: its record only */
    j->key = key;
    atomic_store(&j->acks, 1);
    struct rec rec = {a->cfg.topic_state, key, strlen(key), value, len, true, h};
    log_notice("state record for %s older than the table's: published the current one again "
               "(from partition %" PRId32 " offset %" PRId64 ")",
               user, src.partition, src.offset);
    send_one(a, j, &rec);
}

/* --- the journal of a previous run --- */

struct replay {
    struct app *a;
    size_t produced;
};

/* A record the state topic lacks: the table had nothing as new for the
 * user (same partition, offset at least as high). */
static bool missing(struct app *a, const struct jf_rec *r, char *user, struct res_state_in *in)
{
    if (r->keylen == 0 || r->keylen > EV_MAX_USER_ID || memchr(r->key, '\0', r->keylen) ||
        res_state_parse(r->value, r->len, in) != 0 || in->other_kind || !in->source.topic)
        return false;
    memcpy(user, r->key, r->keylen);
    user[r->keylen] = '\0';
    struct st_src src = {in->source.topic, in->source.partition, in->source.offset};
    return !st_applied(a->state, user, &src);
}

static void replay_entry(void *arg, uint64_t seq, const struct jf_rec *recs, int n)
{
    struct replay *rp = arg;
    struct app *a = rp->a;
    int keep[JF_MAX_RECS], k = 0;
    struct res_state_in ins[JF_MAX_RECS];

    for (int i = 0; i < n; i++) {
        char user[EV_MAX_USER_ID + 1];
        struct res_state_in in;
        if (!missing(a, &recs[i], user, &in))
            continue;
        ins[k] = in;
        ins[k].source.topic = ins[k].topic_buf; /* it pointed into in */
        struct st_src src = {in.source.topic, in.source.partition, in.source.offset};
        if (in.removed)
            table_write(st_remove(a->state, user, &src), user);
        else if (in.workspace_id && in.subscriber)
            table_write(st_put_subscriber(a->state, user, in.workspace_id, sub_state(&in), &src),
                        user);
        else if (in.workspace_id)
            table_write(st_put(a->state, user, in.workspace_id, &src), user);
        keep[k++] = i;
    }
    struct job *j = k ? calloc(1, sizeof(*j)) : NULL;
    if (!j) {
        if (k)
            log_err("out of memory publishing the journal; it is kept for the next start");
        else
            journal_ack(a->journal, seq); /* the topic has it, or it is unusable */
        return;
    }
    /* Not an event: its records only, acked in the journal when Kafka has
     * them (consumer_job_finished). Our writer id: the loader skips them,
     * the table has them already. */
    j->replay = true;
    j->jseq = seq;
    atomic_store(&j->acks, k);
    for (int m = 0; m < k; m++) {
        const struct jf_rec *r = &recs[keep[m]];
        const struct res_source *src = &ins[m].source;
        rd_kafka_headers_t *h =
            tr_state_headers(a->instance_id, src->topic, src->partition, src->offset);
        /* librdkafka copies the key; the value is handed over */
        struct rec rec = {a->cfg.topic_state, NULL, r->keylen, malloc(r->len + 1), r->len, true, h};
        char kbuf[EV_MAX_USER_ID + 1];
        memcpy(kbuf, r->key, r->keylen);
        rec.key = kbuf;
        if (rec.value)
            memcpy(rec.value, r->value, r->len);
        send_one(a, j, &rec);
        rp->produced++;
    }
}

size_t outcome_replay_journal(struct app *a)
{
    struct replay rp = {a, 0};
    journal_foreach_left(a->journal, replay_entry, &rp);
    return rp.produced;
}
