/* loader: the state loader thread. A consumer without a group assign()s
 * every partition of topic.state from the beginning and tails it into the
 * state table, so each instance knows every userId -> workspace mapping the
 * group has written (removed markers included). A record older than the
 * table's entry for its user (same partition, lower offset: a late writer)
 * is ignored, so a late write can never undo a newer one here. Our own records are already in the
 * table (workers write through), so records carrying our instance id are skipped: applying them
 * late could otherwise undo a newer local change. */
#include "app.h"

#include "dlq.h"
#include "log.h"
#include "strec.h"
#include "topicread.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOADER_POLL_MS 100
#define PROGRESS_EVERY_US 100000 /* how often STATUS=/metrics learn how far it read */

struct loader {
    rd_kafka_t *rk;
    struct tr *tr; /* positions and the catch-up barrier (topicread.h) */
    pthread_t thread;
    atomic_bool stop;
    bool started;
    int64_t progress_us; /* loader thread: when progress was last published */
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

static void table_write(struct app *a, enum sr_result rc, const char *user,
                        const rd_kafka_message_t *m)
{
    if (rc == SR_NOMEM) {
        log_err("state table: out of memory");
    } else if (rc == SR_OLDER) { /* a late writer: the table keeps the newer change */
        log_info("state record for %s at partition %" PRId32 " offset %" PRId64
                 " is older than what the table has; ignored",
                 user, m->partition, m->offset);
        outcome_reassert(a, user);
    }
}

/* The rules every reader shares are strec.c's; what is the loader's own is
 * what it says about records it ignores, and the late writer's answer. */
static void apply(struct app *a, const rd_kafka_message_t *m)
{
    char user[EV_MAX_USER_ID + 1];
    const char *why = NULL;

    if (header_is(m, DQ_HDR_WRITER, a->instance_id))
        return;
    enum sr_result rc = tr_apply_state(a->state, m, user, &why);
    if (rc == SR_BAD_KEY)
        log_warn("state record without a valid key at %s/%" PRId32 "/%" PRId64 "; ignored",
                 a->cfg.topic_state, m->partition, m->offset);
    else if (rc == SR_NOT_JSON)
        log_warn("state record for %s at %s/%" PRId32 "/%" PRId64 " is not a JSON object; ignored",
                 user, a->cfg.topic_state, m->partition, m->offset);
    else if (rc == SR_BAD_ID)
        log_warn("state record for %s at %s/%" PRId32 "/%" PRId64 ": %s; ignored", user,
                 a->cfg.topic_state, m->partition, m->offset, why);
    else if (rc != SR_OTHER_KIND) /* a kind this version does not know */
        table_write(a, rc, user, m);
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
    uint64_t done = 0, total = 0;
    tr_progress(l->tr, &done, &total);
    atomic_store(&a->load_total, (int64_t)total);
    atomic_store(&a->load_done, (int64_t)done);
}

static void *loader_main(void *arg)
{
    struct app *a = arg;
    app_name_thread("bw-state");
    struct loader *l = a->loader;

    while (!atomic_load(&l->stop)) {
        atomic_fetch_add(&a->beat_loader, 1);
        rd_kafka_message_t *m = tr_poll(l->tr, LOADER_POLL_MS);
        publish_progress(a, l);
        if (!m) /* nothing, or a partition's end (tr_poll took it) */
            continue;
        if (m->err)
            loader_error(a, m);
        else
            apply(a, m);
        tr_done(l->tr, m); /* applied first: caught up means in the table */
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

int loader_start(struct app *a, rd_kafka_t *rk)
{
    char err[512];
    struct loader *l = calloc(1, sizeof(*l));
    if (!l)
        return -1;
    a->loader = l;
    l->rk = rk;
    l->tr = tr_new(rk, a->cfg.topic_state, 10000, err, sizeof(err));
    if (!l->tr) {
        log_err("state loader: %s (the state topic must exist, log-compacted)", err);
        return -1;
    }
    rd_kafka_resp_err_t e = tr_assign(l->tr, NULL);
    if (e) {
        log_err("state loader: assign %s: %s", a->cfg.topic_state, rd_kafka_err2str(e));
        return -1;
    }
    /* A first target, so that STATUS= shows how far the load at start has
     * come before any assignment asks for one (best effort). */
    (void)loader_set_barrier(a);
    if (pthread_create(&l->thread, NULL, loader_main, a) != 0)
        return -1;
    l->started = true;
    log_info("state loader reading %s (%d partitions)", a->cfg.topic_state, tr_partitions(l->tr));
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
    tr_free(l->tr);
    free(l);
    a->loader = NULL;
}

int loader_set_barrier(struct app *a)
{
    struct loader *l = a->loader;
    /* Asked through the producer: its broker connections are up already,
     * where the loader's own handle answers ListOffsets only after seconds. */
    rd_kafka_resp_err_t e = tr_set_target(l->tr, a->producer, 2000);
    if (e) {
        log_warn("state topic end offsets: %s (retrying)", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

bool loader_caught_up(struct app *a)
{
    return tr_caught_up(a->loader->tr);
}
