/* topicread: see topicread.h. */
#include "topicread.h"

#include "dlq.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tr {
    rd_kafka_t *rk;
    char *topic;
    int nparts;
    atomic_llong *pos;    /* next offset to read, per partition */
    atomic_llong *target; /* end offsets to reach, per partition */
    int64_t *start;       /* where reading started (0: the beginning) */
    atomic_llong *low;    /* low watermarks seen with the target */
};

/* The partition count from one metadata request; -1 when Kafka did not
 * answer, -2 when it says the topic does not exist. */
static int partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms,
                           rd_kafka_resp_err_t *e)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    *e = t ? rd_kafka_metadata(rk, 0, t, &md, timeout_ms) : RD_KAFKA_RESP_ERR__NOENT;
    if (*e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
        *e = md->topics[0].err;
        n = *e == RD_KAFKA_RESP_ERR_NO_ERROR ? md->topics[0].partition_cnt : -2;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return n;
}

struct tr *tr_new(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e;
    int n = partition_count(rk, topic, timeout_ms, &e);
    if (n <= 0 && e == RD_KAFKA_RESP_ERR_NO_ERROR) { /* an answer without the topic in it */
        snprintf(err, errlen, "Kafka's metadata for %s names %s", topic,
                 n == 0 ? "no partition" : "no such topic");
        return NULL;
    }
    if (n <= 0) {
        snprintf(err, errlen,
                 n == -1 ? "Kafka did not answer a metadata request for %s: %s"
                         : "topic %s not found: %s",
                 topic, rd_kafka_err2str(e));
        return NULL;
    }
    struct tr *t = calloc(1, sizeof(*t));
    if (t) {
        t->rk = rk;
        t->nparts = n;
        t->topic = strdup(topic);
        t->pos = calloc((size_t)n, sizeof(*t->pos));
        t->target = calloc((size_t)n, sizeof(*t->target));
        t->start = calloc((size_t)n, sizeof(*t->start));
        t->low = calloc((size_t)n, sizeof(*t->low));
    }
    if (!t || !t->topic || !t->pos || !t->target || !t->start || !t->low) {
        snprintf(err, errlen, "out of memory");
        tr_free(t);
        return NULL;
    }
    return t;
}

void tr_free(struct tr *t)
{
    if (!t)
        return;
    free(t->topic);
    free(t->pos);
    free(t->target);
    free(t->start);
    free(t->low);
    free(t);
}

int tr_partitions(const struct tr *t)
{
    return t->nparts;
}

const char *tr_topic(const struct tr *t)
{
    return t->topic;
}

rd_kafka_resp_err_t tr_assign(struct tr *t, const int64_t *start)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(t->nparts);
    for (int p = 0; p < t->nparts; p++) {
        t->start[p] = start ? start[p] : 0;
        atomic_store(&t->pos[p], t->start[p]);
        rd_kafka_topic_partition_list_add(parts, t->topic, p)->offset =
            start ? start[p] : RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(t->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return e;
}

rd_kafka_resp_err_t tr_set_target(struct tr *t, rd_kafka_t *via, int timeout_ms)
{
    for (int p = 0; p < t->nparts; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(via, t->topic, p, &lo, &hi, timeout_ms);
        if (e)
            return e;
        atomic_store(&t->low[p], lo);
        atomic_store(&t->target[p], hi);
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

int64_t tr_target(const struct tr *t, int32_t p)
{
    return p >= 0 && p < t->nparts ? atomic_load(&t->target[p]) : -1;
}

static void advance(struct tr *t, int32_t p, int64_t next)
{
    if (p < 0 || p >= t->nparts)
        return;
    int64_t cur = atomic_load(&t->pos[p]);
    if (next > cur)
        atomic_store(&t->pos[p], next);
}

rd_kafka_message_t *tr_poll(struct tr *t, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(t->rk, timeout_ms);
    if (m && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        advance(t, m->partition, m->offset);
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return m;
}

void tr_done(struct tr *t, const rd_kafka_message_t *m)
{
    if (!m->err)
        advance(t, m->partition, m->offset + 1);
}

bool tr_below_target(const struct tr *t, const rd_kafka_message_t *m)
{
    return m->partition >= 0 && m->partition < t->nparts &&
           m->offset < atomic_load(&t->target[m->partition]);
}

bool tr_caught_up(const struct tr *t)
{
    for (int p = 0; p < t->nparts; p++)
        if (atomic_load(&t->pos[p]) < atomic_load(&t->target[p]))
            return false;
    return true;
}

void tr_progress(const struct tr *t, uint64_t *done, uint64_t *total)
{
    *done = *total = 0;
    for (int p = 0; p < t->nparts; p++) {
        int64_t low = atomic_load(&t->low[p]), target = atomic_load(&t->target[p]);
        int64_t base = t->start[p] > low ? t->start[p] : low;
        int64_t pos = atomic_load(&t->pos[p]);
        if (target > base)
            *total += (uint64_t)(target - base);
        if (pos > base)
            *done += (uint64_t)((pos < target ? pos : target) - base);
    }
}

bool tr_tombstone_source(const rd_kafka_message_t *m, char *topic, size_t cap, struct st_src *src)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    return rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
           rd_kafka_header_get_last(h, DQ_HDR_SOURCE, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
           sr_parse_coords(v, len, topic, cap, src);
}

rd_kafka_headers_t *tr_state_headers(const char *writer, const char *topic, int32_t partition,
                                     int64_t offset)
{
    char src[600]; /* a topic name has at most 249 bytes */
    int n = snprintf(src, sizeof(src), "%s/%" PRId32 "/%" PRId64, topic, partition, offset);
    /* rd_kafka_header_add fails only on a list already produced */
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, DQ_HDR_WRITER, -1, writer, -1);
    rd_kafka_header_add(h, DQ_HDR_SOURCE, -1, src, n < (int)sizeof(src) ? n : -1);
    return h;
}

enum sr_result tr_apply_state(struct st_table *t, const rd_kafka_message_t *m, char *user,
                              const char **why)
{
    char topic[512];
    struct st_src src = {NULL, -1, -1};
    if (!sr_key(m->key, m->key_len, user)) {
        user[0] = '\0';
        return SR_BAD_KEY;
    }
    if (!m->payload)
        tr_tombstone_source(m, topic, sizeof(topic), &src);
    return sr_apply(t, user, m->payload, m->len, &src, why);
}
