/* Unit tests for common/metrics.c: sharded counting (exact under
 * concurrency, own and shared shards), the histogram's buckets, the exposition text (HELP and
 * TYPE for every family, label escaping, values, left-out metrics, the
 * size bound), and what counting costs per event (printed). */
#include "check.h"
#include "classify.h"
#include "event.h"
#include "metrics.h"
#include "result.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* More threads than shards of their own: the last ones share a shard. */
#define THREADS (MX_SHARDS + 8)
#define PER_THREAD 50000

static struct mx *shared;

static void *count_some(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        mx_event(shared, EV_PROVISION, i % 2 ? RES_SUCCEEDED : RES_FAILED, KIND_EXHAUSTED);
        mx_request(shared, MX_POST, 200, 1000);
    }
    mx_wait(shared, 429, 1500);
    return NULL;
}

static void test_concurrent_counts(void)
{
    pthread_t t[THREADS];
    shared = mx_new();
    CHECK_NOT_NULL(shared);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, count_some, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    struct mx_totals tot;
    mx_read(shared, &tot);
    CHECK_EQ_INT(tot.events[EV_PROVISION][RES_SUCCEEDED], THREADS * PER_THREAD / 2);
    CHECK_EQ_INT(tot.events[EV_PROVISION][RES_FAILED], THREADS * PER_THREAD / 2);
    CHECK_WHY(tot.errors[KIND_EXHAUSTED] == THREADS * PER_THREAD / 2,
              "a succeeded event counted as an error");
    CHECK_EQ_INT(tot.requests[MX_POST][200], THREADS * PER_THREAD);
    CHECK_EQ_INT(tot.buckets[MX_POST][0], THREADS * PER_THREAD);
    CHECK_EQ_INT(tot.duration_us[MX_POST], (uint64_t)THREADS * PER_THREAD * 1000);
    CHECK_EQ_INT(tot.waits[0], THREADS);
    CHECK_EQ_INT(tot.waited_ms[0], THREADS * 1500);
    CHECK_EQ_INT(tot.waits[1], 0);
    mx_free(shared);
}

static void test_edges(void)
{
    struct mx *m = mx_new();
    struct mx_totals t;
    mx_event(NULL, EV_UPDATE, RES_SUCCEEDED, KIND_NONE); /* metrics off: nothing, no crash */
    mx_request(NULL, MX_PUT, 200, 1);
    mx_wait(NULL, 429, 1);
    mx_event(m, 99, RES_SUCCEEDED, KIND_NONE); /* out of range: ignored */
    mx_event(m, EV_NONE, RES_REJECTED, KIND_INVALID);
    mx_request(m, MX_DELETE, 0, 30000001); /* no answer, past the last bound */
    mx_request(m, MX_DELETE, 700, 5000);   /* not a status: as no answer */
    mx_request(m, MX_METHODS, 200, 5000);  /* unknown method: ignored */
    mx_request(m, MX_PUT, 204, -5);        /* a clock step back: 0 */
    mx_wait(m, 423, 2000);
    mx_wait(m, 503, 2000); /* not a Retry-After wait */
    mx_read(m, &t);
    CHECK_EQ_INT(t.events[EV_NONE][RES_REJECTED], 1);
    CHECK_EQ_INT(t.errors[KIND_INVALID], 1);
    CHECK_EQ_INT(t.requests[MX_DELETE][0], 2);
    CHECK_EQ_INT(t.buckets[MX_DELETE][MX_BUCKETS - 1], 1);
    CHECK_EQ_INT(t.buckets[MX_DELETE][0], 1);
    CHECK_EQ_INT(t.requests[MX_PUT][204], 1);
    CHECK_EQ_INT(t.duration_us[MX_PUT], 0);
    CHECK_EQ_INT(t.waits[1], 1);
    CHECK_EQ_INT(t.waits[0], 0);
    CHECK_EQ_INT(mx_method_of("POST"), MX_POST);
    CHECK_EQ_INT(mx_method_of("DELETE"), MX_DELETE);
    CHECK_EQ_INT(mx_method_of("PATCH"), MX_METHODS);
    mx_free(m);
}

/* A duration on a bound counts in that bucket (le is "<="), one µs more in
 * the next; the rendered buckets are cumulative. */
static void test_buckets(void)
{
    struct mx *m = mx_new();
    struct mx_totals t;
    for (int i = 0; i < MX_BUCKETS - 1; i++) {
        mx_request(m, MX_GET, 200, mx_bucket_bound_us(i));
        mx_request(m, MX_GET, 200, mx_bucket_bound_us(i) + 1);
    }
    mx_read(m, &t);
    CHECK_EQ_INT(t.buckets[MX_GET][0], 1);   /* the first bound */
    for (int i = 1; i < MX_BUCKETS - 1; i++) /* bound i - 1 plus 1 µs, and bound i */
        if (!CHECK_EQ_INT(t.buckets[MX_GET][i], 2))
            fprintf(stderr, "  bucket %d\n", i);
    CHECK_EQ_INT(t.buckets[MX_GET][MX_BUCKETS - 1], 1); /* the last bound plus 1 µs */
    struct mx_snap s = {.t = t, .rate = 1, .access_expiry_s = NAN, .refresh_expiry_s = NAN};
    size_t len;
    char *text = mx_render(&s, 1 << 20, &len);
    CHECK_NOT_NULL(text);
    CHECK_CONTAINS(text, "bwprovd_webex_request_duration_seconds_bucket{method=\"GET\","
                         "le=\"0.005\"} 1\n");
    CHECK_CONTAINS(text, "bwprovd_webex_request_duration_seconds_bucket{method=\"GET\","
                         "le=\"0.01\"} 3\n");
    CHECK_CONTAINS(text, "bwprovd_webex_request_duration_seconds_bucket{method=\"GET\","
                         "le=\"30\"} 23\n");
    CHECK_CONTAINS(text, "bwprovd_webex_request_duration_seconds_bucket{method=\"GET\","
                         "le=\"+Inf\"} 24\n");
    CHECK_CONTAINS(text, "bwprovd_webex_request_duration_seconds_count{method=\"GET\"} 24\n");
    /* the sum: every bound twice, plus 12 µs */
    uint64_t us = 12;
    for (int i = 0; i < MX_BUCKETS - 1; i++)
        us += 2 * (uint64_t)mx_bucket_bound_us(i);
    char want[128];
    snprintf(want, sizeof(want),
             "bwprovd_webex_request_duration_seconds_sum{method=\"GET\"} %llu.%06llu\n",
             (unsigned long long)(us / 1000000), (unsigned long long)(us % 1000000));
    CHECK_CONTAINS(text, want);
    /* methods never used but the workspace API's are left out */
    CHECK(strstr(text, "_count{method=\"POST\"} 0\n") != NULL);
    free(text);
    mx_free(m);
}

/* Every sample line's metric belongs to a family announced with HELP and
 * TYPE before it. */
static void check_families(const char *text)
{
    char fam[128] = "";
    int lines = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if (!CHECK(nl != NULL))
            return;
        char line[512];
        size_t n = (size_t)(nl - p) < sizeof(line) - 1 ? (size_t)(nl - p) : sizeof(line) - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            sscanf(line + 7, "%127s", fam);
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128];
            sscanf(line + 7, "%127s", name);
            CHECK_EQ_STR(name, fam);
        } else {
            lines++;
            if (!CHECK(fam[0] && strncmp(line, fam, strlen(fam)) == 0 &&
                       strchr("{ _", line[strlen(fam)])))
                fprintf(stderr, "  line %s (family %s)\n", line, fam);
        }
        p = nl + 1;
    }
    CHECK(lines > 20);
}

static void test_render(void)
{
    struct mx *m = mx_new();
    struct mx_part parts[] = {{0, 12}, {7, 0}};
    struct mx_snap s = {
        .version = "1.2.3",
        .topic = "odd\"topic\\with\nnewline",
        .pending = 17,
        .in_flight = 5,
        .on_wire = 3,
        .assigned = 2,
        .parts = parts,
        .n_parts = 2,
        .rate = INFINITY,
        .workspaces = 1000,
        .subscribers = 7,
        .load_ratio = 0.25,
        .access_expiry_s = 3599.5,
        .refresh_expiry_s = NAN,
        .kafka_up = true,
        .webex_up = false,
        .auth_ok = true,
        .oldest_s = 12.5,
    };
    mx_event(m, EV_PROVISION, RES_SUCCEEDED, KIND_NONE);
    mx_event(m, EV_REMOVE, RES_FAILED, KIND_AUTH);
    mx_request(m, MX_POST, 429, 2000);
    mx_request(m, MX_PUT, 0, 2000);
    mx_wait(m, 429, 1000);
    mx_read(m, &s.t);
    size_t len = 0;
    char *text = mx_render(&s, 1 << 20, &len);
    if (!CHECK_NOT_NULL(text))
        return;
    CHECK_EQ_INT(len, strlen(text));
    check_families(text);
    CHECK_CONTAINS(text, "bwprovd_build_info{version=\"1.2.3\"} 1\n");
    CHECK_CONTAINS(text, "# TYPE bwprovd_events_total counter\n");
    CHECK_CONTAINS(text,
                   "bwprovd_events_total{type=\"workspace.provision\",outcome=\"succeeded\"} 1\n");
    CHECK_CONTAINS(text, "bwprovd_events_total{type=\"workspace.remove\",outcome=\"failed\"} 1\n");
    CHECK_CONTAINS(text,
                   "bwprovd_events_total{type=\"workspace.update\",outcome=\"rejected\"} 0\n");
    CHECK_WHY(!strstr(text, "type=\"unknown\""), "an untyped series shown before it counted");
    CHECK_CONTAINS(text, "bwprovd_event_errors_total{kind=\"auth\"} 1\n");
    CHECK_CONTAINS(text, "bwprovd_event_errors_total{kind=\"exhausted\"} 0\n");
    CHECK_CONTAINS(text, "bwprovd_webex_requests_total{method=\"POST\",code=\"429\"} 1\n");
    CHECK_CONTAINS(text, "bwprovd_webex_requests_total{method=\"PUT\",code=\"none\"} 1\n");
    CHECK_CONTAINS(text, "# TYPE bwprovd_webex_request_duration_seconds histogram\n");
    CHECK_CONTAINS(text, "bwprovd_webex_retry_after_waits_total{code=\"429\"} 1\n");
    CHECK_CONTAINS(text, "bwprovd_webex_retry_after_wait_seconds_total{code=\"429\"} 1.000000\n");
    CHECK_CONTAINS(text, "bwprovd_webex_retry_after_waits_total{code=\"423\"} 0\n");
    CHECK_CONTAINS(text, "bwprovd_events_pending 17\n");
    CHECK_CONTAINS(text, "bwprovd_events_in_flight 5\n");
    CHECK_CONTAINS(text, "bwprovd_webex_requests_in_flight 3\n");
    CHECK_CONTAINS(text, "bwprovd_oldest_unfinished_event_age_seconds 12.5\n");
    CHECK_CONTAINS(text, "bwprovd_webex_rate_limit_requests_per_second +Inf\n");
    CHECK_CONTAINS(text, "bwprovd_kafka_partitions_assigned 2\n");
    CHECK_CONTAINS(text, "bwprovd_state_table_workspaces 1000\n");
    CHECK_CONTAINS(text, "bwprovd_state_table_subscribers 7\n");
    CHECK_CONTAINS(text, "bwprovd_state_table_load_ratio 0.25\n");
    CHECK_CONTAINS(text, "bwprovd_kafka_up 1\n");
    CHECK_CONTAINS(text, "bwprovd_webex_up 0\n");
    CHECK_CONTAINS(text, "bwprovd_webex_auth_ok 1\n");
    CHECK_CONTAINS(text, "bwprovd_webex_access_token_expires_in_seconds 3599.5\n");
    CHECK_WHY(!strstr(text, "refresh_token_expires_in"), "an unknown expiry shown");
    /* escaping: backslash, double quote and line feed, nothing else */
    CHECK_CONTAINS(text,
                   "bwprovd_kafka_consumer_lag_messages{topic=\"odd\\\"topic\\\\with\\nnewline\","
                   "partition=\"0\"} 12\n");
    CHECK_CONTAINS(text, "partition=\"7\"} 0\n");
    CHECK_WHY(!strstr(text, "partition=\"1\""), "lag shown for a partition not assigned");
    free(text);

    /* the bound: past max, no text */
    CHECK_NULL(mx_render(&s, 100, &len));
    mx_free(m);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define COST_N 5000000

static void *cost_loop(void *arg)
{
    double *ns = arg;
    double t0 = now_s();
    for (int i = 0; i < COST_N; i++) {
        mx_event(shared, EV_PROVISION, RES_SUCCEEDED, KIND_NONE);
        mx_request(shared, MX_POST, 200, 40000 + i % 1000);
    }
    *ns = (now_s() - t0) * 1e9 / COST_N;
    return NULL;
}

/* What counting adds per event: one event and one request counted (an
 * event's usual share), in one thread and in two at once. Run first, the
 * threads have shards of their own; run after test_concurrent_counts (which
 * used up the shards), new threads share one. */
static void test_cost(const char *what)
{
    double one, two[2];
    pthread_t t[2];
    shared = mx_new();
    pthread_create(&t[0], NULL, cost_loop, &one);
    pthread_join(t[0], NULL);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, cost_loop, &two[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    fprintf(stderr,
            "cost per event (mx_event + mx_request), %s: %.1f ns in one thread, %.1f and %.1f "
            "ns in two threads counting at once\n",
            what, one, two[0], two[1]);
    CHECK(one < 1000); /* a sanity bound only: the figure is what matters */
    mx_free(shared);
}

int main(void)
{
    test_cost("shards of their own");
    test_concurrent_counts();
    test_edges();
    test_buckets();
    test_render();
    test_cost("a shared shard");
    return check_done();
}
