/* consumer: the consumer thread. It owns the group consumer, the offset
 * trackers and the delivery reports (it polls the producer), so offsets are
 * only ever touched here and need no lock. */
#include "app.h"

#include "dlq.h"
#include "journal.h"
#include "log.h"
#include "notify.h"
#include "offsets.h"
#include "result.h"
#include "classify.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define POLL_MS 50
/* Backpressure: a full pipeline first only stops taking messages (hold);
 * partitions are paused when that lasts PAUSE_AFTER_US. */
#define HOLD_POLL_MS 5
#define PAUSE_AFTER_US 1000000
#define LAG_EVERY_US 1000000
/* How long a commit on revoke, and the consumer's close, may wait for
 * Kafka's answer: an unreachable group coordinator must not hold a
 * rebalance or a stop (librdkafka waits for it without a limit). What
 * is not committed is replayed, and replays are recognised. */
#define COMMIT_WAIT_US 5000000
#define CLOSE_WAIT_US 5000000

struct cpart {
    struct off_tracker *t; /* non-NULL while assigned */
    bool dirty;            /* commit point moved: store it */
    bool catchup;          /* paused until the state loader caught up */
    bool frozen;           /* an offset could not be tracked: never store again */
};

struct consumer {
    pthread_t thread;
    struct cpart parts[APP_MAX_PARTITIONS];
    int32_t owned[APP_MAX_PARTITIONS]; /* assigned partitions, unordered */
    int n_owned;
    bool any_dirty;
    bool bp_paused;        /* paused for backpressure */
    int64_t full_since_us; /* pending reached max_pending (0: it is below) */
    bool need_barrier;     /* a new assignment waits for state catch-up */
    bool barrier_set;
    bool load_released; /* release_load_memory() ran */
    int stop_phase;     /* 1: requests on the wire, 2: their records, 3: drained */
    int64_t stop_phase_until_us;
    int64_t next_lag_us;
};

static rd_kafka_topic_partition_list_t *assigned_list(struct app *a, bool only_catchup)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int i = 0; i < a->cons->n_owned; i++) {
        int32_t p = a->cons->owned[i];
        if (!only_catchup || a->cons->parts[p].catchup)
            rd_kafka_topic_partition_list_add(l, a->cfg.topic_events, p);
    }
    return l;
}

static void set_paused(struct app *a, rd_kafka_topic_partition_list_t *l, bool pause)
{
    if (l->cnt == 0)
        return;
    rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(a->consumer, l)
                                  : rd_kafka_resume_partitions(a->consumer, l);
    if (e)
        log_warn("%s partitions: %s", pause ? "pause" : "resume", rd_kafka_err2str(e));
}

/* Stores the commit point of every partition whose point moved. Auto-commit
 * then commits what was stored. */
static void store_offsets(struct app *a)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (!a->cons->any_dirty)
        return;
    a->cons->any_dirty = false;
    for (int i = 0; i < a->cons->n_owned; i++) {
        int32_t p = a->cons->owned[i];
        struct cpart *cp = &a->cons->parts[p];
        if (!cp->dirty || cp->frozen)
            continue;
        cp->dirty = false;
        int64_t at = off_commit_point(cp->t);
        if (at < 0)
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, a->cfg.topic_events, p)->offset = at;
    }
    if (!l)
        return;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(a->consumer, l);
    if (e && e != RD_KAFKA_RESP_ERR__STATE)
        log_warn("offsets_store: %s", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

void consumer_job_finished(struct app *a, struct job *j)
{
    bool lost = atomic_load(&j->lost);
    if (j->jseq && !lost) /* Kafka has the state records: the journal may let go */
        journal_ack(a->journal, j->jseq);
    if (j->replay) { /* the journal of a previous run, not an event */
        job_free(j);
        return;
    }
    struct cpart *cp = &a->cons->parts[j->partition];
    if (!lost && job_owned(a, j) && cp->t) {
        if (off_done(cp->t, j->offset) == 0)
            cp->dirty = a->cons->any_dirty = true;
    }
    if (j->busy)
        atomic_fetch_sub(&a->part_busy[j->partition], 1);
    if (atomic_load(&a->kafka_down) && atomic_exchange(&a->kafka_down, false))
        log_write(LOG_LVL_NOTICE, LOG_MID_KAFKA_BACK, "Kafka reachable again");
    atomic_fetch_sub(&a->pending, 1);
    job_free(j);
}

/* --- rebalance --- */

/* "0,1,5" for a log line (cut short with "..." past the buffer). */
static const char *part_numbers(const rd_kafka_topic_partition_list_t *parts, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < parts->cnt && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%" PRId32, i ? "," : "", parts->elems[i].partition);
        if (w < 0 || (size_t)w >= cap - n) {
            snprintf(buf + (n < cap - 4 ? n : cap - 4), 4, "...");
            break;
        }
        n += (size_t)w;
    }
    return buf;
}

static void assign(struct app *a, rd_kafka_topic_partition_list_t *parts, bool coop)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p < 0 || p >= APP_MAX_PARTITIONS) {
            log_err("partition %" PRId32 " of %s is above the supported %d", p,
                    parts->elems[i].topic, APP_MAX_PARTITIONS);
            atomic_store(&a->fatal, true);
            continue;
        }
        struct cpart *cp = &a->cons->parts[p];
        if (!cp->t)
            a->cons->owned[a->cons->n_owned++] = p;
        atomic_store(&a->part_lag[p], -1); /* not known until update_lag */
        atomic_store(&a->part_oldest_us[p], 0);
        atomic_store(&a->part_owned[p], true);
        off_free(cp->t);
        cp->t = off_new();
        if (!cp->t) {
            log_err("out of memory tracking partition %" PRId32 "; stopping", p);
            atomic_store(&a->fatal, true);
        }
        cp->catchup = true;
        cp->dirty = false;
    }
    rd_kafka_error_t *err = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (coop)
        err = rd_kafka_incremental_assign(a->consumer, parts);
    else
        e = rd_kafka_assign(a->consumer, parts);
    if (err) {
        log_err("incremental_assign: %s", rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
    } else if (e) {
        log_err("assign: %s", rd_kafka_err2str(e));
    }
    /* The events of a new partition wait until the state table has every
     * record the partition's previous owner wrote (SPEC §4). */
    set_paused(a, parts, true);
    a->cons->need_barrier = true;
    char nums[256];
    log_info("assigned %d partition(s) of %s: %s", parts->cnt, a->cfg.topic_events,
             part_numbers(parts, nums, sizeof(nums)));
}

/* Requests on the wire (wire) or finished jobs with records on their way
 * (busy), over the given partitions (NULL: all). */
static long count_in(atomic_int *counts, rd_kafka_topic_partition_list_t *parts)
{
    long n = 0;
    if (!parts) {
        for (int p = 0; p < APP_MAX_PARTITIONS; p++)
            n += atomic_load(&counts[p]);
        return n;
    }
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p >= 0 && p < APP_MAX_PARTITIONS)
            n += atomic_load(&counts[p]);
    }
    return n;
}

static void wait_for(struct app *a, atomic_int *counts, rd_kafka_topic_partition_list_t *parts,
                     int64_t until_us)
{
    while (count_in(counts, parts) > 0 && app_now_us() < until_us) {
        atomic_fetch_add(&a->beat_consumer, 1);
        rd_kafka_poll(a->producer, 10);
    }
}

/* Revoked partitions start no new request (their generation moved); the
 * requests on the wire get up to webex.timeout_ms, which curl enforces,
 * then their records up to shutdown.grace_ms to be acknowledged, serving
 * delivery reports meanwhile. Only then is the partition let go, so its
 * next owner never runs a user's event while this one still has a request
 * of that user on the wire. */
static void drain(struct app *a, rd_kafka_topic_partition_list_t *parts)
{
    int64_t t0 = app_now_us();
    wait_for(a, a->part_wire, parts, t0 + (a->cfg.webex_timeout_ms + 1000) * 1000);
    long wire = count_in(a->part_wire, parts);
    wait_for(a, a->part_busy, parts, app_now_us() + a->cfg.shutdown_grace_ms * 1000);
    long busy = count_in(a->part_busy, parts);
    if (wire || busy)
        log_warn("revoke: %ld request(s) still unanswered after webex.timeout_ms, %ld event(s) "
                 "not acknowledged within shutdown.grace_ms; the next owner replays them",
                 wire, busy);
    log_debug("revoke drained in %lld ms", (long long)(app_now_us() - t0) / 1000);
}

/* Commits l and waits for the answer until until_us at most. */
static rd_kafka_resp_err_t commit_bounded(struct app *a, rd_kafka_topic_partition_list_t *l,
                                          int64_t until_us)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(a->consumer);
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(a->consumer, l, q, NULL, NULL);
    if (!e) {
        rd_kafka_event_t *ev = NULL;
        while (!ev && app_now_us() < until_us) {
            atomic_fetch_add(&a->beat_consumer, 1);
            ev = rd_kafka_queue_poll(q, 100);
        }
        e = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (ev)
            rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q); /* a late answer finds the queue gone: dropped */
    return e;
}

static void commit_revoked(struct app *a, rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p < 0 || p >= APP_MAX_PARTITIONS || !a->cons->parts[p].t || a->cons->parts[p].frozen)
            continue;
        int64_t at = off_commit_point(a->cons->parts[p].t);
        if (at >= 0)
            rd_kafka_topic_partition_list_add(l, parts->elems[i].topic, p)->offset = at;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t e = commit_bounded(a, l, app_now_us() + COMMIT_WAIT_US);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            log_warn("commit on revoke: %s; the next owner replays from the last commit",
                     rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void disown(struct consumer *c, int32_t p)
{
    for (int i = 0; i < c->n_owned; i++) {
        if (c->owned[i] == p) {
            c->owned[i] = c->owned[--c->n_owned];
            return;
        }
    }
}

static void bump(struct app *a, rd_kafka_topic_partition_list_t *parts, unsigned by)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p >= 0 && p < APP_MAX_PARTITIONS)
            atomic_fetch_add(&a->part_gen[p], by);
    }
}

static void revoke(struct app *a, rd_kafka_topic_partition_list_t *parts, bool coop)
{
    bool lost = rd_kafka_assignment_lost(a->consumer);
    /* No new request for these partitions from now on; workers drop their
     * waiting jobs. A lost assignment is someone else's already. */
    bump(a, parts, lost ? 2 : 1);
    atomic_fetch_add(&a->sweep_epoch, 1);
    engines_wake(a);
    if (!lost) {
        if (a->cons->stop_phase != 3) /* a stop has drained everything already */
            drain(a, parts);
        commit_revoked(a, parts);
        bump(a, parts, 1); /* let go: late answers are not ours to record */
    }
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p < 0 || p >= APP_MAX_PARTITIONS)
            continue;
        atomic_store(&a->part_owned[p], false);
        if (a->cons->parts[p].t)
            disown(a->cons, p);
        off_free(a->cons->parts[p].t);
        a->cons->parts[p] = (struct cpart){0};
    }
    if (coop) {
        rd_kafka_error_t *err = rd_kafka_incremental_unassign(a->consumer, parts);
        if (err) {
            log_warn("incremental_unassign: %s", rd_kafka_error_string(err));
            rd_kafka_error_destroy(err);
        }
    } else {
        rd_kafka_assign(a->consumer, NULL);
    }
    char nums[256];
    log_info("%s %d partition(s) of %s: %s", lost ? "lost" : "revoked", parts->cnt,
             a->cfg.topic_events, part_numbers(parts, nums, sizeof(nums)));
}

void consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct app *a = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

    /* STATUS= tells "waiting for an assignment" from "assigned nothing":
     * an eager revoke takes everything until the next assignment. */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign(a, parts, coop);
        atomic_store(&a->assignment, true);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        revoke(a, parts, coop);
        if (!coop)
            atomic_store(&a->assignment, false);
    } else {
        log_err("rebalance error: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
        atomic_store(&a->assignment, false);
    }
}

void consumer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct app *a = opaque;
    struct job *j = m->_private;
    (void)rk;

    if (m->err) {
        bool purged =
            m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
        if (!purged) {
            if (kafka_access_error(m->err)) {
                char what[300];
                snprintf(what, sizeof(what), "writing %s: %s", rd_kafka_topic_name(m->rkt),
                         rd_kafka_err2str(m->err));
                kafka_refused(a, what);
            }
            log_err("delivery to %s failed: %s; stopping so the event is replayed",
                    rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
            atomic_store(&a->fatal, true);
        }
        atomic_store(&j->lost, true);
    }
    if (atomic_fetch_sub(&j->acks, 1) == 1)
        consumer_job_finished(a, j);
}

/* --- intake --- */

/* The bwprovd-replay-* headers of m (a replayed event), copied; NULL when
 * it has none. Most events have no header at all, which librdkafka says
 * without parsing anything. */
static rd_kafka_headers_t *replay_headers(const rd_kafka_message_t *m)
{
    static const char prefix[] = DQ_HDR_REPLAY_PREFIX;
    rd_kafka_headers_t *h = NULL, *out = NULL;
    const char *name;
    const void *v;
    size_t len;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
        if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
            continue;
        if (!out)
            out = rd_kafka_headers_new(3);
        rd_kafka_header_add(out, name, -1, v, v ? (ssize_t)len : 0);
    }
    return out;
}

static struct job *job_from(struct app *a, const rd_kafka_message_t *m)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    if (m->key) {
        j->key = malloc(m->key_len ? m->key_len : 1);
        if (!j->key)
            goto oom;
        memcpy(j->key, m->key, m->key_len);
        j->keylen = m->key_len;
    }
    if (m->payload && m->len) {
        j->value = malloc(m->len);
        if (!j->value)
            goto oom;
        memcpy(j->value, m->payload, m->len);
        j->len = m->len;
    }
    j->replay_hdrs = replay_headers(m);
    j->partition = m->partition;
    j->offset = m->offset;
    j->gen = atomic_load(&a->part_gen[m->partition]);
    j->recv_us = app_now_us();
    return j;
oom:
    job_free(j);
    return NULL;
}

static void reject(struct app *a, struct job *j, const char *why)
{
    struct outcome o = {
        .outcome = RES_REJECTED,
        .http_status = -1,
        .error_kind = KIND_INVALID,
        .error_message = why,
    };
    outcome_emit(a, j, &o);
}

static void on_message(struct app *a, const rd_kafka_message_t *m)
{
    int32_t p = m->partition;
    struct cpart *cp = p >= 0 && p < APP_MAX_PARTITIONS ? &a->cons->parts[p] : NULL;

    if (!cp || !cp->t) {
        log_warn("message from unassigned partition %" PRId32 " ignored", p);
        return;
    }
    int added = off_add_at(cp->t, m->offset, app_now_us());
    if (added == -2) { /* untracked, a later commit point could pass it: stop */
        log_err("out of memory tracking partition %" PRId32 " offset %" PRId64 "; stopping", p,
                m->offset);
        cp->frozen = true;
        atomic_store(&a->fatal, true);
        return;
    }
    if (added != 0) {
        log_warn("partition %" PRId32 " offset %" PRId64 " delivered twice; ignored", p, m->offset);
        return;
    }
    struct job *j = job_from(a, m);
    if (!j) { /* the offset stays unfinished: nothing is committed past it */
        log_err("out of memory holding an event; stopping");
        atomic_store(&a->fatal, true);
        return;
    }
    atomic_fetch_add(&a->pending, 1);
    char why[256]; /* used only while the rejection is emitted */
    j->valid = ev_parse(j->key, j->keylen, j->value, j->len, &j->ev, why, sizeof(why)) == 0;
    if (!j->valid) {
        reject(a, j, why);
        return;
    }
    req_tracking_id(j->ev.event_id, j->tracking_id, sizeof(j->tracking_id));
    if (pipe_submit(a, j) != 0) {
        log_err("out of memory scheduling an event; stopping");
        atomic_store(&a->fatal, true);
        job_free(j);
    }
}

static const char *group_id(const struct app *a)
{
    const char *g = cfg_kafka_value(&a->cfg, CFG_KAFKA_CONSUMER, "group.id");
    return g ? g : "?";
}

static void on_consumer_error(struct app *a, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) { /* the consumer reports its own here */
        kafka_fatal(a, a->consumer);
    } else if (kafka_access_error(m->err)) {
        char what[300];
        if (m->rkt)
            snprintf(what, sizeof(what), "reading %s: %s", rd_kafka_topic_name(m->rkt),
                     rd_kafka_message_errstr(m));
        else
            snprintf(what, sizeof(what), "consumer group %s: %s", group_id(a),
                     rd_kafka_message_errstr(m));
        kafka_refused(a, what);
    } else {
        log_warn("consumer: %s", rd_kafka_message_errstr(m));
    }
}

/* --- loop --- */

/* Backpressure in two steps. While the pipeline is full the loop only
 * stops taking messages: librdkafka's own queue (bounded by
 * queued.max.messages.kbytes) keeps what it fetched, and taking resumes
 * the moment an event finishes. Pausing the partitions would throw that
 * queue away, and librdkafka 2.0 fetches a resumed partition only when its
 * broker thread next looks, up to a second later (measured: 0.7 s a cycle,
 * the pipeline running dry meanwhile). So partitions are paused only when
 * the pipeline stays full for PAUSE_AFTER_US (the API is slow or down),
 * where polling has to go on for rebalances; resumed below half. */
/* The pipeline is full: pipeline.max_pending events held, or
 * state.max_unacknowledged state records Kafka has not acknowledged (taking
 * more would only pile up answered but unrecorded work). */
static bool full(struct app *a)
{
    return atomic_load(&a->pending) >= a->cfg.pipeline_max_pending ||
           journal_unacked(a->journal) >= a->cfg.state_max_unacknowledged;
}

static bool below_half(struct app *a)
{
    return atomic_load(&a->pending) < a->cfg.pipeline_max_pending / 2 &&
           journal_unacked(a->journal) < (a->cfg.state_max_unacknowledged + 1) / 2;
}

static bool holding(struct app *a)
{
    struct consumer *c = a->cons;
    if (c->bp_paused || !full(a)) {
        c->full_since_us = 0;
        return false;
    }
    if (!c->full_since_us)
        c->full_since_us = app_now_us();
    return true;
}

static void backpressure(struct app *a)
{
    struct consumer *c = a->cons;
    long pending = atomic_load(&a->pending);

    if (!c->bp_paused && c->full_since_us && app_now_us() - c->full_since_us >= PAUSE_AFTER_US) {
        rd_kafka_topic_partition_list_t *l = assigned_list(a, false);
        set_paused(a, l, true);
        rd_kafka_topic_partition_list_destroy(l);
        c->bp_paused = true;
        c->full_since_us = 0;
        log_debug("paused: %ld events pending for %d ms", pending, PAUSE_AFTER_US / 1000);
    } else if (c->bp_paused && below_half(a) && !atomic_load(&a->stopping)) {
        rd_kafka_topic_partition_list_t *l = assigned_list(a, false);
        /* partitions still catching up stay paused */
        for (int i = l->cnt - 1; i >= 0; i--)
            if (c->parts[l->elems[i].partition].catchup)
                rd_kafka_topic_partition_list_del_by_idx(l, i);
        set_paused(a, l, false);
        rd_kafka_topic_partition_list_destroy(l);
        c->bp_paused = false;
        log_debug("resumed: %ld events pending", pending);
    }
}

/* Once, after the first full load of the state table: that load's transient
 * memory (fetch buffers, parsed records) is free but glibc keeps the pages;
 * the table itself is not in the malloc heap (state.c), so hand them back. */
static void release_load_memory(struct consumer *c)
{
    if (c->load_released)
        return;
    c->load_released = true;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void catch_up(struct app *a)
{
    struct consumer *c = a->cons;

    if (c->need_barrier) {
        int64_t t0 = app_now_us();
        if (loader_set_barrier(a) == 0) {
            c->need_barrier = false;
            c->barrier_set = true;
        }
        log_debug("state topic end offsets queried in %lld ms",
                  (long long)(app_now_us() - t0) / 1000);
    }
    if (!c->barrier_set || !loader_caught_up(a))
        return;
    c->barrier_set = false;
    rd_kafka_topic_partition_list_t *l = assigned_list(a, true);
    if (!c->bp_paused && !atomic_load(&a->stopping))
        set_paused(a, l, false);
    for (int i = 0; i < l->cnt; i++)
        c->parts[l->elems[i].partition].catchup = false;
    release_load_memory(c);
    if (l->cnt)
        log_info("state table caught up; consuming %d partition(s); %zu workspaces known", l->cnt,
                 st_count(a->state));
    rd_kafka_topic_partition_list_destroy(l);
}

/* A partition's lag from its position and the high watermark librdkafka
 * last saw (published; -1 while the watermark is not known). */
static long long partition_lag(struct app *a, const rd_kafka_topic_partition_t *tp)
{
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(a->consumer, tp->topic, tp->partition, &lo, &hi) != 0) {
        atomic_store(&a->part_lag[tp->partition], -1);
        return 0;
    }
    int64_t pos = tp->offset >= 0 ? tp->offset : lo;
    long long lag = hi > pos ? hi - pos : 0;
    atomic_store(&a->part_lag[tp->partition], lag);
    return lag;
}

static void publish_oldest(struct app *a, int32_t p)
{
    const struct off_tracker *t = a->cons->parts[p].t;
    int64_t off = 0, at = t ? off_oldest(t, &off) : 0;
    atomic_store(&a->part_oldest_off[p], off);
    atomic_store(&a->part_oldest_us[p], at);
}

/* Once a second: each assigned partition's lag and oldest unfinished
 * event, for STATUS= and /metrics, and the total lag. */
static void update_lag(struct app *a)
{
    int64_t now = app_now_us();
    if (now < a->cons->next_lag_us)
        return;
    a->cons->next_lag_us = now + LAG_EVERY_US;
    rd_kafka_topic_partition_list_t *l = assigned_list(a, false);
    long long lag = 0;
    if (l->cnt && rd_kafka_position(a->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++)
            lag += partition_lag(a, &l->elems[i]);
    }
    for (int i = 0; i < l->cnt; i++)
        publish_oldest(a, l->elems[i].partition);
    rd_kafka_topic_partition_list_destroy(l);
    atomic_store(&a->lag, lag);
}

/* Stop as revoke does for every partition: no new request (workers drop
 * what has not started), the requests on the wire get webex.timeout_ms,
 * their records shutdown.grace_ms. */
static void begin_stop(struct app *a)
{
    struct consumer *c = a->cons;
    atomic_fetch_add(&a->sweep_epoch, 1);
    engines_wake(a);
    c->stop_phase = 1;
    c->stop_phase_until_us = app_now_us() + (a->cfg.webex_timeout_ms + 1000) * 1000;
    rd_kafka_topic_partition_list_t *l = assigned_list(a, false);
    set_paused(a, l, true);
    rd_kafka_topic_partition_list_destroy(l);
    log_info("stopping: %ld request(s) on the wire get up to webex.timeout_ms (%ld ms), their "
             "records up to shutdown.grace_ms (%ld ms); %ld event(s) held",
             count_in(a->part_wire, NULL), a->cfg.webex_timeout_ms, a->cfg.shutdown_grace_ms,
             atomic_load(&a->pending));
}

static bool drained(struct app *a)
{
    struct consumer *c = a->cons;
    int64_t now = app_now_us();
    if (atomic_load(&a->fatal))
        return true;
    if (c->stop_phase == 1 &&
        (count_in(a->part_wire, NULL) == 0 || now >= c->stop_phase_until_us)) {
        c->stop_phase = 2;
        c->stop_phase_until_us = now + a->cfg.shutdown_grace_ms * 1000;
    }
    return c->stop_phase == 2 &&
           (count_in(a->part_busy, NULL) == 0 || now >= c->stop_phase_until_us);
}

/* The consumer's close (the last revoke, the final commit, leaving the
 * group) within CLOSE_WAIT_US; past that the handle is destroyed without
 * it (consumer_closed() tells shutdown_all). */
static void close_bounded(struct app *a)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(a->consumer);
    rd_kafka_error_t *err = rd_kafka_consumer_close_queue(a->consumer, q);
    if (err) {
        log_warn("consumer close: %s", rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
    } else {
        int64_t until = app_now_us() + CLOSE_WAIT_US;
        while (!rd_kafka_consumer_closed(a->consumer) && app_now_us() < until) {
            atomic_fetch_add(&a->beat_consumer, 1);
            rd_kafka_queue_poll_callback(q, 100);
        }
        if (!rd_kafka_consumer_closed(a->consumer))
            log_warn("Kafka did not confirm the consumer's close within %d s (group "
                     "coordinator unreachable?); what was not committed is replayed",
                     CLOSE_WAIT_US / 1000000);
    }
    rd_kafka_queue_destroy(q);
}

bool consumer_closed(struct app *a)
{
    return rd_kafka_consumer_closed(a->consumer) != 0;
}

static void *consumer_main(void *arg)
{
    struct app *a = arg;
    app_name_thread("bw-consumer");
    bool stopping = false;

    for (;;) {
        atomic_fetch_add(&a->beat_consumer, 1);
        if (!stopping && (atomic_load(&a->stopping) || atomic_load(&a->fatal))) {
            stopping = true;
            begin_stop(a);
        }
        if (stopping && drained(a))
            break;
        if (!stopping && holding(a)) {
            /* delivery reports finish events: wait for them instead */
            rd_kafka_poll(a->producer, HOLD_POLL_MS);
        } else {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(a->consumer, POLL_MS);
            if (m) {
                if (m->err)
                    on_consumer_error(a, m);
                else
                    on_message(a, m);
                rd_kafka_message_destroy(m);
            }
            rd_kafka_poll(a->producer, 0);
        }
        store_offsets(a);
        if (!stopping) {
            backpressure(a);
            catch_up(a);
        }
        update_lag(a);
    }
    a->cons->stop_phase = 3;
    store_offsets(a);
    if (atomic_load(&a->pending))
        log_warn("stopping with %ld event(s) unfinished; they are replayed after restart",
                 atomic_load(&a->pending));
    close_bounded(a);
    atomic_store(&a->consumer_done, true);
    return NULL;
}

int consumer_start(struct app *a)
{
    a->cons = calloc(1, sizeof(*a->cons));
    if (!a->cons)
        return -1;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, a->cfg.topic_events, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(a->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        log_err("subscribe to %s: %s", a->cfg.topic_events, rd_kafka_err2str(e));
        return -1;
    }
    if (pthread_create(&a->cons->thread, NULL, consumer_main, a) != 0) {
        log_err("cannot start the consumer thread");
        return -1;
    }
    return 0;
}

void consumer_join(struct app *a)
{
    if (!a->cons)
        return;
    pthread_join(a->cons->thread, NULL);
}

void consumer_free(struct app *a)
{
    if (!a->cons)
        return;
    for (int p = 0; p < APP_MAX_PARTITIONS; p++)
        off_free(a->cons->parts[p].t);
    free(a->cons);
    a->cons = NULL;
}
