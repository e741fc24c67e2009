/* loader: the state loader thread. A consumer without a group assign()s
 * every partition of topic.state from the beginning and tails it into the
 * state table, so each instance knows every userId -> workspace mapping the
 * group has written (removed markers included). A record older than the
 * table's entry for its user (same partition, lower offset: a late writer)
 * is ignored, so a late write can never undo a newer one here. Our own records are already in the
 * table (workers write through), so records carrying our instance id are skipped: applying them
 * late could otherwise undo a newer local change. */
#include "app.h"

#include "log.h"
#include "result.h"
#include "wsid.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOADER_POLL_MS 100
#define PROGRESS_EVERY_US 100000 /* how often STATUS=/metrics learn how far it read */

struct loader {
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_bool stop;
    int nparts;
    atomic_llong *pos;    /* next offset to read, per partition */
    atomic_llong *target; /* catch-up barrier: end offsets, per partition */
    atomic_llong *base;   /* start offsets when the barrier was set, per partition */
    int64_t progress_us;  /* loader thread: when progress was last published */
    bool started;
};

static bool header_is(const rd_kafka_message_t *m, const char *name, const char *value)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    return len == strlen(value) && memcmp(v, value, len) == 0;
}

/* "topic/partition/offset" from the bwprovd-source header of a tombstone
 * (written by versions before removed markers). */
static bool source_of(const rd_kafka_message_t *m, char *topic, size_t cap, struct st_src *src)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    char buf[512];
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "bwprovd-source", &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        len >= sizeof(buf))
        return false;
    memcpy(buf, v, len);
    buf[len] = '\0';
    char *slash2 = strrchr(buf, '/');
    if (!slash2)
        return false;
    *slash2 = '\0';
    char *slash1 = strrchr(buf, '/');
    if (!slash1 || sscanf(slash1 + 1, "%" SCNd32, &src->partition) != 1 ||
        sscanf(slash2 + 1, "%" SCNd64, &src->offset) != 1)
        return false;
    *slash1 = '\0';
    snprintf(topic, cap, "%s", buf);
    src->topic = topic;
    return true;
}

static void table_write(struct app *a, int rc, const char *user, const rd_kafka_message_t *m)
{
    if (rc < 0) {
        log_err("state table: out of memory");
    } else if (rc > 0) { /* a late writer: the table keeps the newer change */
        log_info("state record for %s at partition %" PRId32 " offset %" PRId64
                 " is older than what the table has; ignored",
                 user, m->partition, m->offset);
        outcome_reassert(a, user);
    }
}

static void apply_record(struct app *a, const rd_kafka_message_t *m, const char *user)
{
    struct res_state_in in;
    if (res_state_parse(m->payload, m->len, &in) != 0) {
        log_warn("state record for %s at %s/%" PRId32 "/%" PRId64 " is not a JSON object; ignored",
                 user, a->cfg.topic_state, m->partition, m->offset);
        return;
    }
    if (in.other_kind) /* a kind this version does not know: not this table's */
        return;
    struct st_src src = {in.source.topic, in.source.partition, in.source.offset};
    if (in.removed) {
        table_write(a, st_remove(a->state, user, &src), user, m);
        return;
    }
    const char *bad =
        in.workspace_id ? wsid_check(in.workspace_id, strlen(in.workspace_id)) : "is missing";
    if (bad) {
        log_warn("state record for %s at %s/%" PRId32 "/%" PRId64 ": %s %s; ignored", user,
                 a->cfg.topic_state, m->partition, m->offset,
                 in.subscriber ? "subscriberId" : "workspaceId", bad);
        return;
    }
    if (in.subscriber)
        table_write(a, st_put_subscriber(a->state, user, in.workspace_id, sub_state(&in), &src),
                    user, m);
    else
        table_write(a, st_put(a->state, user, in.workspace_id, &src), user, m);
}

static void apply(struct app *a, const rd_kafka_message_t *m)
{
    char user[EV_MAX_USER_ID + 1], topic[512];
    struct st_src src = {NULL, -1, -1};

    if (!m->key || m->key_len == 0 || m->key_len > EV_MAX_USER_ID ||
        memchr(m->key, '\0', m->key_len)) {
        log_warn("state record without a valid key at %s/%" PRId32 "/%" PRId64 "; ignored",
                 a->cfg.topic_state, m->partition, m->offset);
        return;
    }
    if (header_is(m, "bwprovd-writer", a->instance_id))
        return;
    memcpy(user, m->key, m->key_len);
    user[m->key_len] = '\0';
    if (!m->payload) { /* a tombstone: earlier versions' remove */
        source_of(m, topic, sizeof(topic), &src);
        table_write(a, st_remove(a->state, user, &src), user, m);
        return;
    }
    apply_record(a, m, user);
}

static void advance(struct loader *l, int32_t p, int64_t next)
{
    if (p < 0 || p >= l->nparts)
        return;
    int64_t cur = atomic_load(&l->pos[p]);
    if (next > cur)
        atomic_store(&l->pos[p], next);
}

static void loader_error(struct app *a, const rd_kafka_message_t *m)
{
    char what[300];
    if (m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        /* librdkafka looks for the coordinator of the loader's private
         * group although the loader never commits or joins: it needs no
         * ACL on that group, so this is not a refusal of anything it does */
        log_debug("state loader: %s", rd_kafka_message_errstr(m));
        return;
    }
    if (!kafka_access_error(m->err)) {
        log_warn("state loader: %s", rd_kafka_message_errstr(m));
        return;
    }
    snprintf(what, sizeof(what), "the state loader reading %s: %s",
             m->rkt ? rd_kafka_topic_name(m->rkt) : a->cfg.topic_state, rd_kafka_message_errstr(m));
    kafka_refused(a, what);
}

/* How far the loader has read towards its target, for STATUS= and
 * /metrics (a->load_done of a->load_total records), at most every
 * PROGRESS_EVERY_US. Loader thread. */
static void publish_progress(struct app *a, struct loader *l)
{
    int64_t now = app_now_us();
    if (now - l->progress_us < PROGRESS_EVERY_US)
        return;
    l->progress_us = now;
    int64_t done = 0, total = 0;
    for (int p = 0; p < l->nparts; p++) {
        int64_t base = atomic_load(&l->base[p]), target = atomic_load(&l->target[p]);
        int64_t pos = atomic_load(&l->pos[p]);
        if (target <= base)
            continue;
        total += target - base;
        done += pos <= base ? 0 : pos >= target ? target - base : pos - base;
    }
    atomic_store(&a->load_total, total);
    atomic_store(&a->load_done, done);
}

static void *loader_main(void *arg)
{
    struct app *a = arg;
    app_name_thread("bw-state");
    struct loader *l = a->loader;

    while (!atomic_load(&l->stop)) {
        atomic_fetch_add(&a->beat_loader, 1);
        publish_progress(a, l);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(l->rk, LOADER_POLL_MS);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            advance(l, m->partition, m->offset);
        else if (m->err)
            loader_error(a, m);
        else {
            apply(a, m);
            advance(l, m->partition, m->offset + 1);
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static int partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (t && rd_kafka_metadata(rk, 0, t, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return n;
}

static int assign_all(struct app *a, struct loader *l)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(l->nparts);
    for (int p = 0; p < l->nparts; p++)
        rd_kafka_topic_partition_list_add(parts, a->cfg.topic_state, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(l->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (e)
        log_err("state loader: assign %s: %s", a->cfg.topic_state, rd_kafka_err2str(e));
    return e ? -1 : 0;
}

int loader_start(struct app *a, rd_kafka_t *rk)
{
    struct loader *l = calloc(1, sizeof(*l));
    if (!l)
        return -1;
    a->loader = l;
    l->rk = rk;
    l->nparts = partition_count(rk, a->cfg.topic_state, 10000);
    if (l->nparts <= 0) {
        log_err("state topic %s not found (create it log-compacted)", a->cfg.topic_state);
        return -1;
    }
    l->pos = calloc((size_t)l->nparts, sizeof(*l->pos));
    l->target = calloc((size_t)l->nparts, sizeof(*l->target));
    l->base = calloc((size_t)l->nparts, sizeof(*l->base));
    if (!l->pos || !l->target || !l->base || assign_all(a, l) != 0)
        return -1;
    /* A first target, so that STATUS= shows how far the load at start has
     * come before any assignment asks for one (best effort). */
    (void)loader_set_barrier(a);
    if (pthread_create(&l->thread, NULL, loader_main, a) != 0)
        return -1;
    l->started = true;
    log_info("state loader reading %s (%d partitions)", a->cfg.topic_state, l->nparts);
    return 0;
}

void loader_stop(struct app *a)
{
    struct loader *l = a->loader;
    if (!l)
        return;
    if (l->started) {
        atomic_store(&l->stop, true);
        pthread_join(l->thread, NULL);
    }
    if (l->rk) {
        rd_kafka_consumer_close(l->rk);
        rd_kafka_destroy(l->rk);
    }
    free(l->pos);
    free(l->target);
    free(l->base);
    free(l);
    a->loader = NULL;
}

int loader_set_barrier(struct app *a)
{
    struct loader *l = a->loader;
    /* Asked through the producer: its broker connections are up already,
     * where the loader's own handle answers ListOffsets only after seconds. */
    for (int p = 0; p < l->nparts; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(a->producer, a->cfg.topic_state, p, &lo, &hi, 2000);
        if (e) {
            log_warn("state topic end offsets: %s (retrying)", rd_kafka_err2str(e));
            return -1;
        }
        atomic_store(&l->base[p], lo);
        atomic_store(&l->target[p], hi);
    }
    return 0;
}

bool loader_caught_up(struct app *a)
{
    struct loader *l = a->loader;
    for (int p = 0; p < l->nparts; p++)
        if (atomic_load(&l->pos[p]) < atomic_load(&l->target[p]))
            return false;
    return true;
}
