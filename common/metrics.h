/* metrics: bwprovd's Prometheus metrics (bwprovd(8), METRICS).
 *
 * Counting. The hot path (an event finished, a request answered, a
 * Retry-After wait) adds to counters kept in shards of their own cache
 * lines. Each of the first MX_SHARDS threads that count gets a shard of its
 * own for good, and adds to it with a plain load and store: no lock, no
 * locked instruction, no line shared with another writer. Threads past
 * those share one more shard with atomic adds (correct, a little dearer).
 * A scrape sums the shards (mx_read).
 *
 * Rendering. mx_render() writes the Prometheus text exposition format
 * (version 0.0.4) of a snapshot, struct mx_snap, which the daemon fills
 * from the counters and its gauges. Label values are escaped as the format
 * says; the latency histogram's buckets are cumulative.
 *
 * Pure: no thread or socket of its own. mx_event(), mx_request() and
 * mx_wait() may be called from any thread, also with m NULL (metrics off:
 * nothing is counted). */
#ifndef BWPROVD_METRICS_H
#define BWPROVD_METRICS_H

#include "classify.h"
#include "event.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MX_SHARDS 16
/* Indexes: an HTTP status 100-599 at its own index, 0 for no HTTP answer
 * (a connect or read timeout, a reset). */
#define MX_CODES 600
#define MX_TYPES EV_CODES   /* ev_code(); 0: an event too broken to have a type */
#define MX_OUTCOMES 3       /* enum res_outcome */
#define MX_KINDS KIND_COUNT /* enum cls_kind */
/* Request duration buckets: MX_BUCKETS - 1 upper bounds, then +Inf. */
#define MX_BUCKETS 13

enum mx_method { MX_POST, MX_PUT, MX_DELETE, MX_GET, MX_METHODS };

/* The counters, summed over the shards. */
struct mx_totals {
    uint64_t events[MX_TYPES][MX_OUTCOMES];
    uint64_t errors[MX_KINDS]; /* failed and rejected events by error kind */
    uint64_t requests[MX_METHODS][MX_CODES];
    uint64_t buckets[MX_METHODS][MX_BUCKETS]; /* per bucket, not cumulative */
    uint64_t duration_us[MX_METHODS];         /* sum of the durations */
    uint64_t waits[2];                        /* Retry-After waits: [0] 429, [1] 423 */
    uint64_t waited_ms[2];
};

struct mx;

/* NULL when out of memory. */
struct mx *mx_new(void);
void mx_free(struct mx *m);

/* An event finished with outcome (enum res_outcome) and, when it failed
 * or was rejected, error kind (enum cls_kind). */
void mx_event(struct mx *m, int type, int outcome, int kind);
/* An API request ended: its HTTP status (0: no answer) and how long it
 * took. */
void mx_request(struct mx *m, enum mx_method method, long status, int64_t duration_us);
/* A 429 or 423 answer made an event wait ms. */
void mx_wait(struct mx *m, int status, int64_t ms);
/* "POST" -> MX_POST ...; MX_METHODS for another method. */
enum mx_method mx_method_of(const char *method);
/* Sums the shards. The adds are not frozen meanwhile: each counter is
 * read once, so a scrape never sees one go backwards. */
void mx_read(const struct mx *m, struct mx_totals *t);

/* The upper bound (µs) of bucket i < MX_BUCKETS - 1. */
int64_t mx_bucket_bound_us(int i);

/* One assigned partition of topic.events and its lag (messages). */
struct mx_part {
    int32_t partition;
    int64_t lag;
};

/* Everything a scrape shows. A NAN (an expiry that is not known) leaves
 * its metric out. */
struct mx_snap {
    struct mx_totals t;
    const char *version;
    const char *topic; /* topic.events, for the lag's label */
    long pending;      /* events consumed and not finished */
    long in_flight;    /* events an HTTP worker holds */
    long on_wire;      /* API requests sent and not answered */
    int assigned;      /* partitions of topic.events assigned */
    const struct mx_part *parts;
    size_t n_parts;          /* the assigned ones whose lag is known */
    double rate;             /* requests/s the limiter allows now; INFINITY: no limit */
    long workspaces;         /* in the state table */
    long subscribers;        /* in the state table */
    double load_ratio;       /* of the state topic read, to the last catch-up target */
    double access_expiry_s;  /* seconds until the access token expires; NAN: unknown */
    double refresh_expiry_s; /* the same for the refresh token */
    bool kafka_up, webex_up, auth_ok;
    double oldest_s; /* age of the oldest unfinished event; 0: none */
};

/* The text exposition of s, malloc'd and NUL-terminated (its length in
 * *len); NULL when out of memory or longer than max bytes. The caller
 * frees it. */
char *mx_render(const struct mx_snap *s, size_t max, size_t *len);

#endif
