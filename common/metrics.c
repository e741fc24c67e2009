/* metrics: see metrics.h. */
#include "metrics.h"

#include "classify.h"
#include "event.h"
#include "result.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Upper bounds of the request duration buckets, µs: Prometheus' default
 * buckets from 5 ms to 10 s, and 30 s (webex.timeout_ms's default). */
static const int64_t bounds_us[MX_BUCKETS - 1] = {
    5000,   10000,   25000,   50000,   100000,   250000,
    500000, 1000000, 2500000, 5000000, 10000000, 30000000,
};
static const char *const bound_text[MX_BUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf",
};
static const char *const method_text[MX_METHODS] = {"POST", "PUT", "DELETE", "GET"};

/* One thread's counters, or those of every thread past the first
 * MX_SHARDS. Aligned so that no two shards share a cache line. */
struct shard {
    _Alignas(64) atomic_ullong events[MX_TYPES][MX_OUTCOMES];
    atomic_ullong errors[MX_KINDS];
    atomic_ullong waits[2], waited_ms[2];
    atomic_ullong buckets[MX_METHODS][MX_BUCKETS];
    atomic_ullong duration_us[MX_METHODS];
    atomic_ullong requests[MX_METHODS][MX_CODES];
};

/* shard[MX_SHARDS] is shared by the threads that came too late for one of
 * their own. */
struct mx {
    struct shard shard[MX_SHARDS + 1];
};

/* Where the calling thread counts: its number plus one (0 until it first
 * counts); numbers from MX_SHARDS on share the last shard. */
static _Thread_local unsigned my_number;
static atomic_uint next_number;

struct slot {
    struct shard *s;
    bool own; /* no other thread writes s */
};

static struct slot slot_of(struct mx *m)
{
    if (!my_number)
        my_number = atomic_fetch_add_explicit(&next_number, 1, memory_order_relaxed) + 1;
    unsigned n = my_number - 1;
    return n < MX_SHARDS ? (struct slot){&m->shard[n], true}
                         : (struct slot){&m->shard[MX_SHARDS], false};
}

/* A shard's only writer adds with a plain load and store (no locked
 * instruction: that is most of what counting would cost); readers still
 * see whole values, as the counters are atomic. A shared shard needs the
 * atomic add. */
static void add(struct slot at, atomic_ullong *c, uint64_t n)
{
    if (at.own)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(const atomic_ullong *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* A private anonymous mapping: zeroed, page-aligned (so the shards are
 * line-aligned) and backed only where counters are touched: most of the
 * status table stays unbacked. */
struct mx *mx_new(void)
{
    void *p =
        mmap(NULL, sizeof(struct mx), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void mx_free(struct mx *m)
{
    if (m)
        munmap(m, sizeof(*m));
}

void mx_event(struct mx *m, int type, int outcome, int kind)
{
    if (!m || type < 0 || type >= MX_TYPES || outcome < 0 || outcome >= MX_OUTCOMES)
        return;
    struct slot at = slot_of(m);
    add(at, &at.s->events[type][outcome], 1);
    if (outcome != RES_SUCCEEDED && kind > KIND_NONE && kind < MX_KINDS)
        add(at, &at.s->errors[kind], 1);
}

static int bucket_of(int64_t us)
{
    int i = 0;
    while (i < MX_BUCKETS - 1 && us > bounds_us[i])
        i++;
    return i;
}

void mx_request(struct mx *m, enum mx_method method, long status, int64_t duration_us)
{
    if (!m || method >= MX_METHODS)
        return;
    struct slot at = slot_of(m);
    long code = status >= 100 && status < MX_CODES ? status : 0;
    if (duration_us < 0)
        duration_us = 0;
    add(at, &at.s->requests[method][code], 1);
    add(at, &at.s->buckets[method][bucket_of(duration_us)], 1);
    add(at, &at.s->duration_us[method], (uint64_t)duration_us);
}

void mx_wait(struct mx *m, int status, int64_t ms)
{
    if (!m || (status != 429 && status != 423))
        return;
    struct slot at = slot_of(m);
    int i = status == 429 ? 0 : 1;
    add(at, &at.s->waits[i], 1);
    add(at, &at.s->waited_ms[i], ms > 0 ? (uint64_t)ms : 0);
}

enum mx_method mx_method_of(const char *method)
{
    for (int i = 0; i < MX_METHODS; i++)
        if (strcmp(method, method_text[i]) == 0)
            return (enum mx_method)i;
    return MX_METHODS;
}

int64_t mx_bucket_bound_us(int i)
{
    return i >= 0 && i < MX_BUCKETS - 1 ? bounds_us[i] : INT64_MAX;
}

/* n counters of one shard, added to out. */
static void add_to(const atomic_ullong *c, size_t n, uint64_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] += get(&c[i]);
}

void mx_read(const struct mx *m, struct mx_totals *t)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i <= MX_SHARDS; i++) {
        const struct shard *s = &m->shard[i];
        add_to(&s->events[0][0], MX_TYPES * MX_OUTCOMES, &t->events[0][0]);
        add_to(s->errors, MX_KINDS, t->errors);
        add_to(&s->requests[0][0], MX_METHODS * MX_CODES, &t->requests[0][0]);
        add_to(&s->buckets[0][0], MX_METHODS * MX_BUCKETS, &t->buckets[0][0]);
        add_to(s->duration_us, MX_METHODS, t->duration_us);
        add_to(s->waits, 2, t->waits);
        add_to(s->waited_ms, 2, t->waited_ms);
    }
}

/* --- rendering --- */

/* The text being rendered; bad once out of memory or past max. */
struct buf {
    char *p;
    size_t len, cap, max;
    bool bad;
};

static bool reserve(struct buf *b, size_t n)
{
    if (b->bad || b->len + n + 1 > b->max) {
        b->bad = true;
        return false;
    }
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->bad = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void put(struct buf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A label value: backslash, double quote and line feed escaped (the
 * format's only escapes); anything else goes as it is (UTF-8). */
static void put_label_value(struct buf *b, const char *v)
{
    for (const char *run = v;; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (!esc && *v)
            continue;
        put(b, run, (size_t)(v - run));
        if (!*v)
            return;
        puts_(b, esc);
        run = v + 1;
    }
}

struct label {
    const char *name, *value;
};

/* name{l1="v1",...} value */
static void sample(struct buf *b, const char *name, const struct label *l, int n, const char *value)
{
    puts_(b, name);
    for (int i = 0; i < n; i++) {
        puts_(b, i ? "," : "{");
        puts_(b, l[i].name);
        puts_(b, "=\"");
        put_label_value(b, l[i].value);
        puts_(b, "\"");
    }
    puts_(b, n ? "} " : " ");
    puts_(b, value);
    puts_(b, "\n");
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    puts_(b, "# HELP ");
    puts_(b, name);
    puts_(b, " ");
    puts_(b, help); /* constant text: nothing to escape */
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    puts_(b, " ");
    puts_(b, type);
    puts_(b, "\n");
}

/* Room for any number these render, as a type so that no caller can hand
 * a shorter buffer (a fortified snprintf aborts when told a larger size). */
struct numtext {
    char s[32];
};

static const char *u64(struct numtext *out, uint64_t v)
{
    snprintf(out->s, sizeof(out->s), "%llu", (unsigned long long)v);
    return out->s;
}

/* A float the way the format spells it: +Inf, -Inf, NaN, or decimal. */
static const char *num(struct numtext *out, double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    snprintf(out->s, sizeof(out->s), "%.17g", v);
    return out->s;
}

static const char *secs(struct numtext *out, uint64_t us)
{
    snprintf(out->s, sizeof(out->s), "%llu.%06llu", (unsigned long long)(us / 1000000),
             (unsigned long long)(us % 1000000));
    return out->s;
}

static void gauge(struct buf *b, const char *name, const char *help, double v)
{
    struct numtext n;
    family(b, name, "gauge", help);
    sample(b, name, NULL, 0, num(&n, v));
}

static const char *type_label(int type)
{
    return type == 0 ? "unknown" : ev_code_name(type);
}

static void render_events(struct buf *b, const struct mx_totals *t)
{
    struct numtext n;
    family(b, "bwprovd_events_total", "counter",
           "Events finished (result acknowledged by Kafka or on its way), by type and outcome.");
    for (int ty = 0; ty < MX_TYPES; ty++) {
        for (int o = 0; o < MX_OUTCOMES; o++) {
            if (ty == EV_NONE && !t->events[ty][o])
                continue; /* only rejections have no type, and only sometimes */
            struct label l[] = {{"type", type_label(ty)},
                                {"outcome", res_outcome_name((enum res_outcome)o)}};
            sample(b, "bwprovd_events_total", l, 2, u64(&n, t->events[ty][o]));
        }
    }
    family(b, "bwprovd_event_errors_total", "counter",
           "Failed and rejected events, by error kind (the result's error.kind).");
    for (int k = KIND_NONE + 1; k < MX_KINDS; k++) {
        struct label l[] = {{"kind", cls_kind_name((enum cls_kind)k)}};
        sample(b, "bwprovd_event_errors_total", l, 1, u64(&n, t->errors[k]));
    }
}

static void render_requests(struct buf *b, const struct mx_totals *t)
{
    struct numtext n;
    char code[8];
    family(b, "bwprovd_webex_requests_total", "counter",
           "Webex API requests answered or failed, by method and HTTP status (code \"none\": no "
           "HTTP answer: a timeout or a reset connection).");
    for (int m = 0; m < MX_METHODS; m++) {
        for (int c = 0; c < MX_CODES; c++) {
            if (!t->requests[m][c])
                continue;
            snprintf(code, sizeof(code), "%d", c);
            struct label l[] = {{"method", method_text[m]}, {"code", c ? code : "none"}};
            sample(b, "bwprovd_webex_requests_total", l, 2, u64(&n, t->requests[m][c]));
        }
    }
}

static bool method_used(const struct mx_totals *t, int m)
{
    uint64_t n = 0;
    for (int i = 0; i < MX_BUCKETS; i++)
        n += t->buckets[m][i];
    return n > 0 || m != MX_GET; /* the workspace API's three, always */
}

static void render_histogram(struct buf *b, const struct mx_totals *t)
{
    static const char name[] = "bwprovd_webex_request_duration_seconds";
    struct numtext n;
    family(b, name, "histogram",
           "Duration of Webex API requests, from the start of the request to its answer (or "
           "failure), by method.");
    for (int m = 0; m < MX_METHODS; m++) {
        if (!method_used(t, m))
            continue;
        uint64_t cum = 0;
        for (int i = 0; i < MX_BUCKETS; i++) {
            cum += t->buckets[m][i];
            struct label l[] = {{"method", method_text[m]}, {"le", bound_text[i]}};
            sample(b, "bwprovd_webex_request_duration_seconds_bucket", l, 2, u64(&n, cum));
        }
        struct label l[] = {{"method", method_text[m]}};
        sample(b, "bwprovd_webex_request_duration_seconds_sum", l, 1, secs(&n, t->duration_us[m]));
        sample(b, "bwprovd_webex_request_duration_seconds_count", l, 1, u64(&n, cum));
    }
}

static void render_waits(struct buf *b, const struct mx_totals *t)
{
    static const char *const codes[2] = {"429", "423"};
    struct numtext n;
    family(b, "bwprovd_webex_retry_after_waits_total", "counter",
           "Waits an event made because Webex answered 429 (every request waits) or 423 (the "
           "user's requests wait), by that status.");
    for (int i = 0; i < 2; i++) {
        struct label l[] = {{"code", codes[i]}};
        sample(b, "bwprovd_webex_retry_after_waits_total", l, 1, u64(&n, t->waits[i]));
    }
    family(b, "bwprovd_webex_retry_after_wait_seconds_total", "counter",
           "Time those waits lasted (Retry-After, or the backoff schedule without it).");
    for (int i = 0; i < 2; i++) {
        struct label l[] = {{"code", codes[i]}};
        sample(b, "bwprovd_webex_retry_after_wait_seconds_total", l, 1,
               secs(&n, t->waited_ms[i] * 1000));
    }
}

static void render_pipeline(struct buf *b, const struct mx_snap *s)
{
    gauge(b, "bwprovd_events_pending",
          "Events consumed and not finished (at most pipeline.max_pending).", (double)s->pending);
    gauge(b, "bwprovd_events_in_flight",
          "Events an HTTP worker holds: a request on the wire, or waiting to retry.",
          (double)s->in_flight);
    gauge(b, "bwprovd_webex_requests_in_flight", "Webex API requests sent and not yet answered.",
          (double)s->on_wire);
    gauge(b, "bwprovd_oldest_unfinished_event_age_seconds",
          "Time since the oldest unfinished event was consumed; 0 when none is.", s->oldest_s);
    gauge(b, "bwprovd_webex_rate_limit_requests_per_second",
          "Requests per second the rate limiter allows now (+Inf: no limit); below "
          "webex.rate_limit after 429 answers.",
          s->rate);
}

static void render_kafka(struct buf *b, const struct mx_snap *s)
{
    struct numtext n;
    char p[16];
    gauge(b, "bwprovd_kafka_up",
          "1 when Kafka answers (after start-up), 0 while every broker is unreachable.",
          s->kafka_up);
    gauge(b, "bwprovd_kafka_partitions_assigned",
          "Partitions of topic.events the consumer group assigned to this instance.",
          (double)s->assigned);
    family(b, "bwprovd_kafka_consumer_lag_messages", "gauge",
           "Messages of an assigned partition of topic.events not yet consumed (high watermark "
           "minus position); assigned partitions only.");
    for (size_t i = 0; i < s->n_parts; i++) {
        snprintf(p, sizeof(p), "%d", (int)s->parts[i].partition);
        struct label l[] = {{"topic", s->topic ? s->topic : ""}, {"partition", p}};
        sample(b, "bwprovd_kafka_consumer_lag_messages", l, 2, num(&n, (double)s->parts[i].lag));
    }
    gauge(b, "bwprovd_state_table_workspaces",
          "Users with a workspace in the state table (userId to workspace id).",
          (double)s->workspaces);
    gauge(b, "bwprovd_state_table_subscribers", "Subscribers in the state table.",
          (double)s->subscribers);
    gauge(b, "bwprovd_state_table_load_ratio",
          "Share of the state topic read up to the end offsets of the last catch-up (1: "
          "caught up).",
          s->load_ratio);
}

static void render_webex(struct buf *b, const struct mx_snap *s)
{
    gauge(b, "bwprovd_webex_up",
          "0 while the last Webex request got no HTTP answer (connection refused, timeout, "
          "reset), else 1.",
          s->webex_up);
    gauge(b, "bwprovd_webex_auth_ok",
          "0 while Webex refuses the access token (after a renewal) or the token refresh "
          "fails, else 1.",
          s->auth_ok);
    if (!isnan(s->access_expiry_s))
        gauge(b, "bwprovd_webex_access_token_expires_in_seconds",
              "Seconds until the access token expires (refresh flow only: expires_in).",
              s->access_expiry_s);
    if (!isnan(s->refresh_expiry_s))
        gauge(b, "bwprovd_webex_refresh_token_expires_in_seconds",
              "Seconds until the refresh token expires (refresh_token_expires_in of the last "
              "refresh).",
              s->refresh_expiry_s);
}

char *mx_render(const struct mx_snap *s, size_t max, size_t *len)
{
    struct buf b = {.max = max};
    struct label v[] = {{"version", s->version ? s->version : ""}};
    family(&b, "bwprovd_build_info", "gauge", "Always 1; the version in a label.");
    sample(&b, "bwprovd_build_info", v, 1, "1");
    render_events(&b, &s->t);
    render_requests(&b, &s->t);
    render_histogram(&b, &s->t);
    render_waits(&b, &s->t);
    render_pipeline(&b, s);
    render_kafka(&b, s);
    render_webex(&b, s);
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
