/*
 * reqlog_: the log of every finished API request, for the tests to inspect.
 * stats_: counters, as atomics so the hot path takes no lock for them.
 *
 * Records are appended in completion order under one mutex; sequence numbers
 * increase monotonically and are never reused, not even across a reset. A
 * record's strings live in one allocation next to it.
 */
#include "websim.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    REC_PATH,
    REC_USER,
    REC_BODY_USER,
    REC_WS_ID,
    REC_SUB_ID,
    REC_QUERY,
    REC_TRACKING,
    REC_RESP_TRACKING,
    REC_NSTR
};

struct reqrec {
    uint64_t seq;
    uint64_t recv_us;
    uint64_t done_us;
    int status;
    bool auth;
    unsigned violations;
    char method[16];
    const char *s[REC_NSTR]; /* into blk, NULL for JSON null */
    char *blk;
};

static struct {
    pthread_mutex_t mu;
    struct reqrec *recs;
    size_t len;
    size_t cap;
    uint64_t next_seq;
} rlog;

/* Highest status counted per code; others land in byStatus "other". */
#define STATS_MAX_STATUS 600

static _Atomic uint64_t st_requests;
static _Atomic uint64_t st_by_status[STATS_MAX_STATUS];
static _Atomic uint64_t st_resets;
static _Atomic uint64_t st_viol_ra;
static _Atomic uint64_t st_viol_cu;
static _Atomic int64_t st_inflight;
static _Atomic int64_t st_delayed;

int reqlog_init(void)
{
    if (pthread_mutex_init(&rlog.mu, NULL) != 0)
        return -1;
    rlog.recs = NULL;
    rlog.len = 0;
    rlog.cap = 0;
    rlog.next_seq = 1;
    return 0;
}

static void reqlog_free_recs(struct reqrec *recs, size_t len)
{
    for (size_t i = 0; i < len; i++)
        free(recs[i].blk);
    free(recs);
}

void reqlog_fini(void)
{
    reqlog_free_recs(rlog.recs, rlog.len);
    rlog.recs = NULL;
    rlog.len = rlog.cap = 0;
    pthread_mutex_destroy(&rlog.mu);
}

/* Fill rec (all but seq) from in, copying the strings into one block. */
static bool reqlog_fill(struct reqrec *rec, const struct reqrec_in *in)
{
    const char *src[REC_NSTR] = {in->path,   in->user,  in->body_user, in->ws_id,
                                 in->sub_id, in->query, in->tracking,  in->resp_tracking};
    size_t total = 1, off = 0;

    for (int i = 0; i < REC_NSTR; i++)
        total += src[i] ? strlen(src[i]) + 1 : 0;
    rec->blk = malloc(total);
    if (rec->blk == NULL)
        return false;
    for (int i = 0; i < REC_NSTR; i++) {
        rec->s[i] = NULL;
        if (src[i] != NULL) {
            size_t n = strlen(src[i]) + 1;
            memcpy(rec->blk + off, src[i], n);
            rec->s[i] = rec->blk + off;
            off += n;
        }
    }
    rec->recv_us = in->recv_us;
    rec->done_us = in->done_us;
    rec->status = in->status;
    rec->auth = in->auth;
    rec->violations = in->violations;
    snprintf(rec->method, sizeof rec->method, "%s", in->method ? in->method : "");
    return true;
}

static void stats_count(int status)
{
    atomic_fetch_add_explicit(&st_requests, 1, memory_order_relaxed);
    if (status == 0)
        atomic_fetch_add_explicit(&st_resets, 1, memory_order_relaxed);
    else if (status > 0 && status < STATS_MAX_STATUS)
        atomic_fetch_add_explicit(&st_by_status[status], 1, memory_order_relaxed);
}

uint64_t reqlog_add(const struct reqrec_in *in)
{
    struct reqrec rec;
    uint64_t seq = 0;
    void *recs;
    bool room;

    stats_count(in->status);
    if (!reqlog_fill(&rec, in))
        return 0;
    pthread_mutex_lock(&rlog.mu);
    recs = rlog.recs;
    room = arr_reserve(&recs, &rlog.cap, rlog.len, sizeof *rlog.recs, 4096);
    rlog.recs = recs;
    if (room) {
        rec.seq = seq = rlog.next_seq++;
        rlog.recs[rlog.len++] = rec;
    }
    pthread_mutex_unlock(&rlog.mu);
    if (seq == 0)
        free(rec.blk);
    return seq;
}

static void reqlog_rec_json(struct sbuf *out, const struct reqrec *r)
{
    sbuf_printf(out, "{\"seq\":%llu,\"method\":", (unsigned long long)r->seq);
    sbuf_json_str(out, r->method);
    sbuf_puts(out, ",\"path\":");
    sbuf_json_str(out, r->s[REC_PATH]);
    sbuf_puts(out, ",\"query\":");
    sbuf_json_str(out, r->s[REC_QUERY]);
    sbuf_puts(out, ",\"userId\":");
    sbuf_json_str(out, r->s[REC_USER]);
    sbuf_puts(out, ",\"bodyUserId\":");
    sbuf_json_str(out, r->s[REC_BODY_USER]);
    sbuf_puts(out, ",\"workspaceId\":");
    sbuf_json_str(out, r->s[REC_WS_ID]);
    sbuf_puts(out, ",\"subscriberId\":");
    sbuf_json_str(out, r->s[REC_SUB_ID]);
    sbuf_printf(out, ",\"status\":%d,\"auth\":%s,\"trackingId\":", r->status,
                r->auth ? "true" : "false");
    sbuf_json_str(out, r->s[REC_TRACKING]);
    sbuf_puts(out, ",\"responseTrackingId\":");
    sbuf_json_str(out, r->s[REC_RESP_TRACKING]);
    sbuf_printf(out, ",\"recvUs\":%llu,\"doneUs\":%llu,\"violations\":[",
                (unsigned long long)r->recv_us, (unsigned long long)r->done_us);
    if (r->violations & VIOL_RETRY_AFTER)
        sbuf_puts(out,
                  (r->violations & VIOL_CONCURRENT_USER) ? "\"retryAfter\"," : "\"retryAfter\"");
    if (r->violations & VIOL_CONCURRENT_USER)
        sbuf_puts(out, "\"concurrentUser\"");
    sbuf_puts(out, "]}");
}

/* Index of the first record with seq > since (records are sorted by seq). */
static size_t reqlog_lower_bound(uint64_t since)
{
    size_t lo = 0, hi = rlog.len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rlog.recs[mid].seq <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void reqlog_dump(struct sbuf *out, uint64_t since, uint64_t limit)
{
    uint64_t next = since;
    size_t i;

    sbuf_puts(out, "{\"requests\":[");
    pthread_mutex_lock(&rlog.mu);
    for (i = reqlog_lower_bound(since); i < rlog.len && limit > 0; i++, limit--) {
        if (next != since)
            sbuf_puts(out, ",");
        reqlog_rec_json(out, &rlog.recs[i]);
        next = rlog.recs[i].seq;
    }
    pthread_mutex_unlock(&rlog.mu);
    sbuf_printf(out, "],\"next\":%llu}", (unsigned long long)next);
}

void reqlog_reset(void)
{
    struct reqrec *recs;
    size_t len;

    pthread_mutex_lock(&rlog.mu);
    recs = rlog.recs;
    len = rlog.len;
    rlog.recs = NULL;
    rlog.len = rlog.cap = 0;
    pthread_mutex_unlock(&rlog.mu);
    reqlog_free_recs(recs, len);
}

/* ------------------------------------------------------------------------ */
/* stats_                                                                    */

void stats_violation(unsigned viol_bit)
{
    if (viol_bit & VIOL_RETRY_AFTER)
        atomic_fetch_add_explicit(&st_viol_ra, 1, memory_order_relaxed);
    if (viol_bit & VIOL_CONCURRENT_USER)
        atomic_fetch_add_explicit(&st_viol_cu, 1, memory_order_relaxed);
}

void stats_inflight(int delta)
{
    atomic_fetch_add_explicit(&st_inflight, delta, memory_order_relaxed);
}

void stats_delayed(int delta)
{
    atomic_fetch_add_explicit(&st_delayed, delta, memory_order_relaxed);
}

static uint64_t stats_load(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void stats_dump(struct sbuf *out)
{
    uint64_t count, created, n;
    bool first = true;

    store_counts(&count, &created);
    sbuf_printf(out, "{\"requests\":%llu,\"byStatus\":{",
                (unsigned long long)stats_load(&st_requests));
    for (int s = 1; s < STATS_MAX_STATUS; s++) {
        n = stats_load(&st_by_status[s]);
        if (n == 0)
            continue;
        sbuf_printf(out, "%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)n);
        first = false;
    }
    sbuf_printf(out,
                "},\"unauthorized\":%llu,\"resets\":%llu,\"workspaces\":%llu,"
                "\"createdTotal\":%llu,\"violations\":{\"retryAfter\":%llu,"
                "\"concurrentUser\":%llu},\"inFlight\":%lld,\"delayed\":%lld",
                (unsigned long long)stats_load(&st_by_status[401]),
                (unsigned long long)stats_load(&st_resets), (unsigned long long)count,
                (unsigned long long)created, (unsigned long long)stats_load(&st_viol_ra),
                (unsigned long long)stats_load(&st_viol_cu),
                (long long)atomic_load_explicit(&st_inflight, memory_order_relaxed),
                (long long)atomic_load_explicit(&st_delayed, memory_order_relaxed));
    subs_stats(out);
    sbuf_puts(out, "}");
}

void stats_reset(void)
{
    atomic_store(&st_requests, 0);
    for (int s = 0; s < STATS_MAX_STATUS; s++)
        atomic_store(&st_by_status[s], 0);
    atomic_store(&st_resets, 0);
    atomic_store(&st_viol_ra, 0);
    atomic_store(&st_viol_cu, 0);
}
