/* engine: the HTTP workers. Each worker thread drives many transfers with
 * its own curl multi handle (connection reuse, HTTP/2 multiplexing when the
 * server offers it). Jobs waiting to retry sit in the worker's due-time list
 * instead of blocking anything; a global "not before" instant (Retry-After)
 * gates every request start. */
#include "app.h"

#include "classify.h"
#include "mapping.h"
#include "journal.h"
#include "ratelimit.h"
#include "log.h"
#include "metrics.h"
#include "secmem.h"
#include "wsid.h"
#include "resp.h"
#include "result.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RESP_BODY_MAX (1024 * 1024)
#define MAX_POLL_MS 200
#define AUTH_POLL_US 20000

struct xfer {
    CURL *easy;
    struct curl_slist n_auth, n_tid; /* head of the header list (set_headers) */
    char *auth;                      /* "Authorization: Bearer ..." */
    size_t auth_cap;
    char tid[REQ_TRACKING_MAX + 16];
    struct job *job;
    struct req req;
    char url[1024 + REQ_PATH_MAX];
    char *body;
    size_t len, cap;
    char retry_after[64];
    char webex_tracking[128];
    char errbuf[CURL_ERROR_SIZE];
    uint64_t token_gen;
    bool busy;
    bool gated; /* stopped by the Retry-After gate before anything was sent */
    int status; /* from the status line, as the headers arrive */
    struct engine *e;
    struct xfer *next_free;
    struct xfer *next_all; /* every transfer of the engine, for teardown */
};

struct engine {
    struct app *a;
    int index;
    pthread_t thread;
    CURLM *multi;
    int inflight, capacity;
    struct job *waiting;   /* retries, ordered by due_us */
    struct jobq blocked;   /* ready to send, waiting for a slot, the gate, the limiter */
    struct jobq held;      /* map-changing, waiting for the journal bound */
    unsigned swept;        /* the sweep epoch last acted on */
    struct job *auth_wait; /* 401: waiting for a renewed token */
    struct xfer *free_xfers;
    struct xfer *all;
    atomic_bool stop;
    atomic_bool asleep; /* in epoll_wait: a wake-up is needed */
    int epfd, wakefd;
    uint32_t *reg; /* per fd: what epoll watches (REG_*), see on_socket() */
    size_t nreg;
    int64_t curl_due_us; /* curl's timer (CURLMOPT_TIMERFUNCTION) */
    uint64_t rng;
};

static uint64_t rnd(struct engine *e)
{
    /* xorshift64*: fast and good enough for jitter */
    e->rng ^= e->rng >> 12;
    e->rng ^= e->rng << 25;
    e->rng ^= e->rng >> 27;
    return e->rng * 0x2545F4914F6CDD1DULL;
}

/* What the job's resource needs (mapping.h). */
static const struct map_ops *map_of(const struct job *j)
{
    return j->ev.kind == EV_SUBSCRIBER ? &subscriber_map : &workspace_map;
}

/* --- the due-time list --- */

static void drop(struct engine *e, struct job *j);

/* A job that may no longer start is dropped here rather than left to wait
 * (a backoff can be a minute, and it holds its user's turn). */
static void wait_until(struct engine *e, struct job *j, int64_t due_us)
{
    if (!job_may_start(e->a, j)) {
        drop(e, j);
        return;
    }
    struct job **pp = &e->waiting;
    j->due_us = due_us;
    while (*pp && (*pp)->due_us <= due_us)
        pp = &(*pp)->next;
    j->next = *pp;
    *pp = j;
}

static int64_t gate_us(struct engine *e)
{
    return atomic_load(&e->a->not_before_us);
}

/* Retry-After applies to the whole client: no request of any key before it. */
static void close_gate(struct engine *e, int64_t until_us)
{
    long long cur = atomic_load(&e->a->not_before_us);
    while (cur < until_us && !atomic_compare_exchange_weak(&e->a->not_before_us, &cur, until_us))
        ;
}

/* --- finishing a job --- */

static void finish(struct engine *e, struct job *j, const struct outcome *o)
{
    atomic_fetch_sub(&e->a->n_inflight, 1);
    outcome_emit(e->a, j, o);
}

static void finish_simple(struct engine *e, struct job *j, int outcome, int kind, const char *note,
                          const char *msg, const char *ws)
{
    struct outcome o = {.outcome = outcome,
                        .http_status = -1,
                        .note = note,
                        .error_kind = kind,
                        .error_message = msg,
                        .workspace_id = ws};
    finish(e, j, &o);
}

struct app *eng_app(struct engine *e)
{
    return e->a;
}

void eng_finish(struct engine *e, struct job *j, const struct outcome *o)
{
    finish(e, j, o);
}

void eng_finish_simple(struct engine *e, struct job *j, int outcome, int kind, const char *note,
                       const char *msg, const char *id)
{
    finish_simple(e, j, outcome, kind, note, msg, id);
}

void eng_wait_until(struct engine *e, struct job *j, int64_t due_us)
{
    wait_until(e, j, due_us);
}

#define LOOKUP_RECHECK_US 200000 /* state.lookup_wait_ms: how often the table is asked */

bool eng_lookup_wait(struct engine *e, struct job *j)
{
    int64_t now = app_now_us(), window = atomic_load(&e->a->lookup_wait_ms) * 1000;
    if (!j->lookup_since_us)
        j->lookup_since_us = now;
    int64_t end = j->lookup_since_us + window;
    if (now >= end)
        return false;
    wait_until(e, j, now + LOOKUP_RECHECK_US < end ? now + LOOKUP_RECHECK_US : end);
    return true;
}

bool eng_id_allowed(struct engine *e, struct job *j, enum st_status st, const char *known,
                    const char *id, const char *noun)
{
    char holder[EV_MAX_USER_ID + 1], why[160];

    if (st == ST_PRESENT && strcmp(known, id) != 0)
        snprintf(why, sizeof(why),
                 "%sId does not match the %s the state table holds for this userId", noun, noun);
    else if (st != ST_PRESENT && st_holder(e->a->state, id, holder, sizeof(holder)) &&
             strcmp(holder, j->ev.user_id) != 0)
        snprintf(why, sizeof(why), "%sId belongs to another userId in the state table", noun);
    else
        return true;
    finish_simple(e, j, RES_REJECTED, KIND_INVALID, NULL, why, NULL);
    return false;
}

static void log_auth_failed(const char *why)
{
    log_write(LOG_LVL_ERR, LOG_MID_AUTH_FAILED, "Webex authentication failed: %s", why);
}

static void fail_auth(struct engine *e, struct job *j, const char *why)
{
    log_auth_failed(why);
    health_auth_failed(e->a, why);
    struct outcome o = {.outcome = RES_FAILED,
                        .http_status = 401,
                        .error_kind = KIND_AUTH,
                        .error_message = why,
                        .workspace_id = j->ws};
    finish(e, j, &o);
}

/* A job of a revoked partition, or any at stop: it starts no request; its
 * partition's next owner (or the next run) replays it. */
static void drop(struct engine *e, struct job *j)
{
    atomic_fetch_sub(&e->a->n_inflight, 1);
    pipe_drop(e->a, j);
}

/* --- starting a request --- */

static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    if (x->len + len > RESP_BODY_MAX) /* keep what fits; the rest is dropped */
        return len;
    if (x->len + len + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + len + 1)
            cap *= 2;
        char *b = realloc(x->body, cap);
        if (!b)
            return 0;
        x->body = b;
        x->cap = cap;
    }
    memcpy(x->body + x->len, ptr, len);
    x->len += len;
    x->body[x->len] = '\0';
    return len;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= cap)
        vl = cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static void close_gate(struct engine *e, int64_t until_us);

/* A 429 closes the Retry-After gate as soon as its headers are read,
 * inside curl: curl may hand the connection to the next transfer before
 * this one is reaped, and that transfer's prerequest check must see it.
 * (A 423 locks one resource: only its user waits, see retry_later.) */
static void gate_from_headers(struct xfer *x)
{
    int64_t secs, ms = atomic_load(&x->e->a->backoff_initial_ms);
    if (cls_retry_after(x->retry_after, app_epoch_ms() / 1000, &secs) == 0)
        ms = secs * 1000;
    close_gate(x->e, app_now_us() + ms * 1000);
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    int code;
    if (len > 5 && memcmp(line, "HTTP/", 5) == 0 && sscanf(line, "HTTP/%*s %d", &code) == 1)
        x->status = code;                  /* the last status line wins (100 Continue, redirects) */
    else if (len <= 2 && x->status == 429) /* end of headers */
        gate_from_headers(x);
    header_value(line, len, "Retry-After", x->retry_after, sizeof(x->retry_after));
    header_value(line, len, "TrackingID", x->webex_tracking, sizeof(x->webex_tracking));
    return len;
}

static void set_fixed_options(struct engine *e, struct xfer *x);

/* A transfer whose easy handle (options, connection pool membership) is
 * reused from request to request, or a new one. */
static struct xfer *xfer_get(struct engine *e)
{
    struct xfer *x = e->free_xfers;
    if (x) {
        e->free_xfers = x->next_free;
        x->busy = true;
        return x;
    }
    x = calloc(1, sizeof(*x));
    if (x && !(x->easy = curl_easy_init())) {
        free(x);
        return NULL;
    }
    if (x) {
        set_fixed_options(e, x);
        x->busy = true;
        x->next_all = e->all;
        e->all = x;
    }
    return x;
}

static void xfer_put(struct engine *e, struct xfer *x)
{
    req_clear(&x->req);
    x->len = 0;
    x->job = NULL;
    x->busy = false;
    x->next_free = e->free_xfers;
    e->free_xfers = x;
}

static char system_ca_dir[512];
static pthread_once_t ca_once = PTHREAD_ONCE_INIT;

/* libcurl's built-in CA directory (Debian: /etc/ssl/certs). */
static void find_system_ca_dir(void)
{
    CURL *h = curl_easy_init();
    char *dir = NULL;
    if (h && curl_easy_getinfo(h, CURLINFO_CAPATH, &dir) == CURLE_OK && dir)
        snprintf(system_ca_dir, sizeof(system_ca_dir), "%s", dir);
    if (h)
        curl_easy_cleanup(h);
}

void http_set_ca(void *curl_easy, const char *ca_file)
{
    CURL *h = curl_easy;
    if (!ca_file)
        return;
    /* webex.ca_file adds a CA: the file, plus the system's directory, so
     * the public CAs stay trusted too. */
    pthread_once(&ca_once, find_system_ca_dir);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    if (system_ca_dir[0])
        curl_easy_setopt(h, CURLOPT_CAPATH, system_ca_dir);
}

/* The header list is built from nodes owned by the transfer and static
 * ones, so a request allocates nothing for its headers. */
static char h_accept_b[] = "Accept: application/json", h_accept_n[] = "Accept: application/json";
static char h_expect_b[] = "Expect:", h_expect_n[] = "Expect:";
static char h_ctype[] = "Content-Type: application/json";
static struct curl_slist n_ctype = {h_ctype, NULL};
static struct curl_slist n_expect_b = {h_expect_b, &n_ctype};
static struct curl_slist n_with_body = {h_accept_b, &n_expect_b};
static struct curl_slist n_expect_n = {h_expect_n, NULL};
static struct curl_slist n_without_body = {h_accept_n, &n_expect_n};

/* The Authorization header lives in memory kept out of core dumps (the
 * unit keeps cores of watchdog aborts), sized to the token. */
static int set_headers(struct engine *e, struct xfer *x)
{
    if (!x->auth && !(x->auth = secmem_alloc(x->auth_cap = 512)))
        return -3;
    int need = token_header(e->a->token, x->auth, x->auth_cap, &x->token_gen);
    if (need > 0) { /* a longer token than the last */
        char *big = secmem_realloc(x->auth, (size_t)need);
        if (!big)
            return -3;
        x->auth = big;
        x->auth_cap = (size_t)need;
        need = token_header(e->a->token, x->auth, x->auth_cap, &x->token_gen);
    }
    if (need != 0) /* no token (or it grew again meanwhile: the next try) */
        return -1;
    snprintf(x->tid, sizeof(x->tid), "TrackingID: %s", x->job->tracking_id);
    x->n_auth = (struct curl_slist){x->auth, &x->n_tid};
    x->n_tid = (struct curl_slist){x->tid, x->req.body ? &n_with_body : &n_without_body};
    return 0;
}

/* The last moment before a request goes on the wire (a connection is made
 * or reused): a Retry-After gate that closed after the request was handed
 * to curl still stops it here, unsent. */
static int on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port)
{
    struct xfer *x = arg;
    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    if (app_now_us() < gate_us(x->e)) {
        x->gated = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static curl_socket_t on_open(void *arg, curlsocktype purpose, struct curl_sockaddr *addr);
static int on_close(void *arg, curl_socket_t fd);

/* Options that stay with the handle from one request to the next (string
 * options are copied by curl: setting them once saves allocations). */
static void set_fixed_options(struct engine *e, struct xfer *x)
{
    CURL *h = x->easy;

    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "bwprovd/" BWPROVD_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, x);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, e);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, e);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Waiting for a connection to learn whether it multiplexes only pays
     * off where HTTP/2 can be negotiated (TLS); over plain HTTP/1.1 a
     * waiting transfer would take whichever connection frees up next. */
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, e->a->https ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* The path is built segment by segment (request.c): curl must not
     * squash anything in it, dot segments included. */
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    http_set_ca(h, e->a->cfg.webex_ca_file);
}

/* What changes per request. Every request sets all of them, so nothing of
 * the previous one (a body, a method) carries over. */
static void set_request_options(struct engine *e, struct xfer *x)
{
    const struct cfg *c = &e->a->cfg;
    CURL *h = x->easy;

    curl_easy_setopt(h, CURLOPT_URL, x->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, &x->n_auth);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->webex_timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->webex_timeout_ms < 10000 ? c->webex_timeout_ms : 10000L);
    if (x->req.body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->req.body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)x->req.body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L); /* forgets a previous body */
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                     strcmp(x->req.method, "POST") != 0 ? x->req.method : NULL);
}

static int send_request(struct engine *e, struct job *j)
{
    struct xfer *x = xfer_get(e);
    if (!x)
        return -1;
    x->job = j;
    x->e = e;
    x->gated = false;
    x->status = 0;
    x->retry_after[0] = x->webex_tracking[0] = x->errbuf[0] = '\0';
    if (map_of(j)->build(j, &x->req) != 0 ||
        snprintf(x->url, sizeof(x->url), "%s%s", e->a->cfg.webex_base_url, x->req.path) >=
            (int)sizeof(x->url)) {
        xfer_put(e, x);
        return -1;
    }
    int hr = set_headers(e, x);
    if (hr != 0) { /* -1: no access token (yet) */
        j->auth_gen = x->token_gen;
        xfer_put(e, x);
        return hr == -1 ? -2 : -1;
    }
    set_request_options(e, x);
    if (curl_multi_add_handle(e->multi, x->easy) != CURLM_OK) {
        xfer_put(e, x);
        return -1;
    }
    j->attempts++;
    e->inflight++;
    atomic_fetch_add(&e->a->part_wire[j->partition], 1);
    return 0;
}

/* Before each request: nothing may start for a partition being let go;
 * then the job's mapping decides what the state table already answers. */
static bool prepare(struct engine *e, struct job *j)
{
    if (!job_may_start(e->a, j)) {
        drop(e, j);
        return false;
    }
    return map_of(j)->prepare(e, j);
}

static void send_or_fail(struct engine *e, struct job *j)
{
    int rc = send_request(e, j);
    if (rc == -2 && !j->auth_retried) { /* wait for a token, as after a 401 */
        j->auth_retried = true;
        token_renew(e->a->token, j->auth_gen);
        j->next = e->auth_wait;
        e->auth_wait = j;
    } else if (rc == -2) {
        fail_auth(e, j, "no access token is available");
    } else if (rc != 0) {
        finish_simple(e, j, RES_FAILED, KIND_PERMANENT, NULL, "cannot build the request", j->ws);
    }
}

/* Jobs ready to send, waiting only for a free slot, the Retry-After gate
 * or the rate limiter (FIFO). */
static void block(struct engine *e, struct job *j)
{
    jobq_push(&e->blocked, j);
}

/* --- completing a request --- */

void eng_answer_message(const struct xfer *x, const struct resp *r, long status, char *out,
                        size_t cap)
{
    const char *tid = r->tracking_id ? r->tracking_id : x->webex_tracking;
    if (status == 0)
        snprintf(out, cap, "%s", x->errbuf[0] ? x->errbuf : "no response");
    else if (r->message && *tid)
        snprintf(out, cap, "%s (Webex trackingId %s)", r->message, tid);
    else if (r->message)
        snprintf(out, cap, "%s", r->message);
    else
        snprintf(out, cap, "HTTP %ld%s%s", status, *tid ? ", Webex trackingId " : "", tid);
}

/* Counts a wait that is not an attempt (429, 423, the Retry-After gate)
 * against retry.max_wait_ms; past it the job fails and false is returned,
 * so that no event pins its partition's commit point for ever. */
static bool may_wait(struct engine *e, struct job *j, int64_t ms, int status)
{
    long limit = atomic_load(&e->a->max_wait_ms);
    if (j->waited_ms + ms <= limit) {
        j->waited_ms += ms;
        return true;
    }
    char msg[200];
    snprintf(msg, sizeof(msg),
             "%s: waited %" PRId64 " s in total, the next wait (%" PRId64
             " s) would pass retry.max_wait_ms (%ld s)",
             status == 423 ? "workspace locked (HTTP 423)" : "rate limited (HTTP 429)",
             j->waited_ms / 1000, ms / 1000, limit / 1000);
    struct outcome o = {.outcome = RES_FAILED,
                        .http_status = status ? status : -1,
                        .error_kind = KIND_EXHAUSTED,
                        .error_message = msg,
                        .workspace_id = j->ws};
    finish(e, j, &o);
    return false;
}

static void retry_later(struct engine *e, struct job *j, const struct xfer *x, bool wait,
                        int status)
{
    struct app *a = e->a;
    int64_t now = app_now_us(), secs;
    int64_t ms = cls_backoff_ms(wait ? 1 + j->waits : j->attempts - j->waits,
                                atomic_load(&a->backoff_initial_ms),
                                atomic_load(&a->backoff_max_ms), rnd(e));
    if (wait) {
        if (cls_retry_after(x->retry_after, app_epoch_ms() / 1000, &secs) == 0)
            ms = secs * 1000;
        if (!may_wait(e, j, ms, status))
            return;
        j->waits++;
        mx_wait(a->mx, status, ms);
        if (status == 429) { /* the whole client waits, and slows down */
            close_gate(e, now + ms * 1000);
            rl_penalize(a->rl, now);
            log_notice("Webex %s: waiting %" PRId64 " ms before any request",
                       x->retry_after[0] ? "rate limit (Retry-After)" : "rate limit", ms);
        } else { /* 423: this resource is locked; only its user waits */
            log_info("Webex 423 (locked) for %s: this user waits %" PRId64 " ms", j->ev.user_id,
                     ms);
        }
    }
    wait_until(e, j, now + ms * 1000);
}

/* What a request's end tells /metrics and STATUS=: its status and
 * duration (curl's own clock: no extra clock read), whether Webex answered
 * at all, and whether it took the token. */
static void observe(struct engine *e, struct xfer *x, long status)
{
    struct app *a = e->a;
    bool down = status == 0;
    if (a->mx) {
        curl_off_t us = 0;
        curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &us);
        mx_request(a->mx, mx_method_of(x->req.method), status, (int64_t)us);
    }
    if (atomic_load_explicit(&a->webex_down, memory_order_relaxed) != down)
        atomic_store(&a->webex_down, down);
    if (status && status != 401)
        health_auth_ok(a);
}

static void complete(struct engine *e, struct xfer *x, CURLcode rc)
{
    if (log_get_level() >= LOG_LVL_DEBUG) {
        long port = 0, st = 0;
        curl_easy_getinfo(x->easy, CURLINFO_LOCAL_PORT, &port);
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
        log_debug("worker %d: %s %s done: HTTP %ld on local port %ld (%s)", e->index, x->req.method,
                  x->job->tracking_id, st, port, curl_easy_strerror(rc));
    }
    struct job *j = x->job;
    long status = 0;

    if (rc == CURLE_ABORTED_BY_CALLBACK && x->gated) { /* never sent: wait, uncounted */
        j->attempts--;
        int64_t gate = gate_us(e), left = gate - app_now_us();
        if (may_wait(e, j, left > 0 ? left / 1000 : 0, 429))
            wait_until(e, j, gate);
        return;
    }
    if (rc == CURLE_OK)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    observe(e, x, status);
    map_of(j)->complete(e, x, j, status, x->body, x->len);
}

void eng_verdict(struct engine *e, struct xfer *x, struct job *j, long status, const struct resp *r,
                 const struct cls_verdict *v)
{
    char msg[RESP_MSG_MAX + 160];
    enum cls_kind kind = v->kind;
    switch (v->action) {
    case CLS_SUCCEEDED:
        /* A mapping finishes its successes itself; one it hands on would
         * otherwise hold its userId and its partition's commit point. */
        log_err("worker %d: %s: HTTP %ld was not handled; the event fails", e->index,
                j->tracking_id, status);
        kind = KIND_PERMANENT;
        /* fall through */
    case CLS_FAILED: {
        if (kind == KIND_AUTH) {
            log_auth_failed("Webex rejected the renewed access token (401)");
            health_auth_failed(e->a, "Webex refused the renewed access token (401)");
        }
        eng_answer_message(x, r, status, msg, sizeof(msg));
        struct outcome o = {.outcome = RES_FAILED,
                            .http_status = status ? (int)status : -1,
                            .error_kind = kind,
                            .error_message = msg,
                            .workspace_id = j->ws};
        finish(e, j, &o);
        break;
    }
    case CLS_RETRY:
        retry_later(e, j, x, false, (int)status);
        break;
    case CLS_WAIT:
        retry_later(e, j, x, true, (int)status);
        break;
    case CLS_REAUTH:
        j->auth_retried = true;
        j->auth_gen = x->token_gen;
        token_renew(e->a->token, x->token_gen);
        j->next = e->auth_wait;
        e->auth_wait = j;
        break;
    }
}

static void reap(struct engine *e)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(e->multi, m->easy_handle);
        e->inflight--;
        /* off the wire only once its outcome is on its way (part_busy), so
         * a drain never sees neither */
        int32_t p = x->job->partition;
        complete(e, x, rc);
        atomic_fetch_sub(&e->a->part_wire[p], 1);
        xfer_put(e, x);
    }
}

/* --- the loop --- */

/* Retries whose time has come, and 401s whose token was renewed. */
static void move_due(struct engine *e, int64_t now)
{
    while (e->waiting && e->waiting->due_us <= now) {
        struct job *j = e->waiting;
        e->waiting = j->next;
        if (prepare(e, j))
            block(e, j);
    }
    struct job **pp = &e->auth_wait;
    while (*pp) {
        struct job *j = *pp;
        int st = token_state(e->a->token, j->auth_gen);
        if (st == 0) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        if (st > 0 && prepare(e, j))
            block(e, j);
        else if (st < 0)
            fail_auth(e, j, "the access token could not be renewed after a 401");
    }
}

static void take_ready(struct engine *e)
{
    int room = e->capacity - e->inflight - e->blocked.n;
    if (room <= 0)
        return;
    struct job *j = pipe_take(e->a, room);
    while (j) {
        struct job *next = j->next;
        atomic_fetch_add(&e->a->n_inflight, 1);
        if (prepare(e, j))
            block(e, j);
        j = next;
    }
}

/* While this many state records are not in Kafka, or the journal cannot
 * write, no request that changes the userId -> workspace map starts: the
 * answers would only pile up unrecorded (state.max_unacknowledged). */
static bool hold_map_changes(struct engine *e)
{
    return journal_unacked(e->a->journal) >= e->a->cfg.state_max_unacknowledged ||
           journal_failing(e->a->journal, NULL, 0);
}

static void hold(struct engine *e, struct job *j)
{
    jobq_push(&e->held, j);
    atomic_fetch_add(&e->a->n_held, 1);
}

/* The held jobs go back to the front of the blocked queue, in order. */
static void unhold(struct engine *e)
{
    if (!e->held.head || hold_map_changes(e))
        return;
    atomic_fetch_sub(&e->a->n_held, e->held.n);
    jobq_prepend(&e->blocked, &e->held);
}

/* Starts blocked jobs while a slot, the gate and the limiter allow;
 * returns when the next one may be tried (INT64_MAX: when woken). */
static int64_t send_blocked(struct engine *e, int64_t now)
{
    bool holding = e->blocked.head && hold_map_changes(e);
    while (e->blocked.head && e->inflight < e->capacity) {
        struct job *j = e->blocked.head;
        if (!job_may_start(e->a, j)) {
            drop(e, jobq_pop(&e->blocked));
            continue;
        }
        if (holding && job_changes_map(j)) {
            hold(e, jobq_pop(&e->blocked));
            continue;
        }
        int64_t gate = gate_us(e);
        if (gate > now)
            return gate;
        /* the time of this very send: the limiter keeps start times, and
         * the loop's `now` may be late by the work done since */
        int64_t t = app_now_us();
        int64_t wait = rl_acquire(e->a->rl, t);
        if (wait > 0)
            return t + wait;
        send_or_fail(e, jobq_pop(&e->blocked));
    }
    return INT64_MAX;
}

/* Drops every waiting job that may no longer start (its partition is
 * being revoked, or bwprovd stops), so a revoke or a stop need not wait for
 * a backoff to run out. */
static bool stale_dropped(struct job *j, void *arg)
{
    struct engine *e = arg;
    if (job_may_start(e->a, j))
        return false;
    drop(e, j);
    return true;
}

/* The waiting and 401 lists are ordered singly linked lists. */
static struct job *sweep_list(struct engine *e, struct job *head)
{
    struct job **pp = &head;
    while (*pp) {
        struct job *j = *pp, *next = j->next; /* j may be freed */
        if (stale_dropped(j, e))
            *pp = next;
        else
            pp = &j->next;
    }
    return head;
}

static void sweep(struct engine *e)
{
    unsigned epoch = atomic_load(&e->a->sweep_epoch);
    if (epoch == e->swept)
        return;
    e->swept = epoch;
    e->waiting = sweep_list(e, e->waiting);
    e->auth_wait = sweep_list(e, e->auth_wait);
    int held = e->held.n;
    jobq_filter(&e->held, stale_dropped, e);
    atomic_fetch_sub(&e->a->n_held, held - e->held.n);
    jobq_filter(&e->blocked, stale_dropped, e);
}

static void engine_free(struct engine *e);

static void free_list(struct job *j)
{
    while (j) {
        struct job *next = j->next;
        job_free(j);
        j = next;
    }
}

/* --- the event loop: curl's socket interface on epoll, so each wake-up
 * costs O(ready sockets), not O(connections) as poll() would --- */

/* Registrations in the epoll set, per fd. */
#define REG_ON 0x80000000u     /* in the epoll set */
#define REG_PARKED 0x40000000u /* curl dropped it: an idle pooled connection */
#define REG_OURS 0x20000000u   /* opened by on_open(): its close is seen too */
#define REG_EVENTS (EPOLLIN | EPOLLOUT)

static bool reg_reserve(struct engine *e, curl_socket_t fd)
{
    if (fd < 0)
        return false;
    if ((size_t)fd < e->nreg)
        return true;
    size_t n = e->nreg ? e->nreg : 256;
    while (n <= (size_t)fd)
        n *= 2;
    uint32_t *r = realloc(e->reg, n * sizeof(*r));
    if (!r)
        return false;
    memset(r + e->nreg, 0, (n - e->nreg) * sizeof(*r));
    e->reg = r;
    e->nreg = n;
    return true;
}

static int epoll_set(struct engine *e, curl_socket_t fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    int op = e->reg[fd] & REG_ON ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(e->epfd, op, fd, &ev);
    if (rc != 0 && (errno == ENOENT || errno == EEXIST)) /* a resolver fd closed and reused */
        rc = epoll_ctl(e->epfd, op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
    e->reg[fd] = (e->reg[fd] & REG_OURS) | (rc == 0 ? REG_ON | events : 0);
    return rc;
}

static void epoll_drop(struct engine *e, curl_socket_t fd)
{
    if (e->reg[fd] & REG_ON)
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL); /* ENOENT: closed already */
    e->reg[fd] &= REG_OURS;
}

/* curl's socket opener (CURLOPT_OPENSOCKETFUNCTION): the same socket curl
 * would make, marked as a connection whose close on_close() will see. */
static curl_socket_t on_open(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct engine *e = arg;
    (void)purpose;
    curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    if (!reg_reserve(e, fd)) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    e->reg[fd] = REG_OURS; /* a number reused from a closed resolver fd: fresh */
    return fd;
}

/* Closing removes the fd from the epoll set (no other descriptor shares its
 * file), so only the table needs to forget it. */
static int on_close(void *arg, curl_socket_t fd)
{
    struct engine *e = arg;
    if (fd >= 0 && (size_t)fd < e->nreg)
        e->reg[fd] = 0;
    return close(fd);
}

/* curl's socket callback. A kept-alive connection goes back to curl's pool
 * after every request (CURL_POLL_REMOVE) and is asked for again with the
 * same interest for the next one: removing and re-adding it would cost two
 * epoll_ctl calls a request. So a dropped connection that only waited for
 * input stays in the set, parked; an event on it (the server closed the
 * idle connection) removes it then (wait_events). Only connections opened
 * by on_open() are parked: on_close() sees them closed, so a reused fd
 * number never inherits a stale registration. Other sockets (the
 * resolver's) are removed as curl asks. */
static int on_socket(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct engine *e = arg;
    (void)h;
    (void)sockp;
    if (!reg_reserve(e, fd)) {
        log_err("socket %d: out of memory tracking it", (int)fd);
        return -1;
    }
    if (what == CURL_POLL_REMOVE) {
        /* EPOLLOUT would report "writable" forever */
        if ((e->reg[fd] & (REG_OURS | REG_ON | EPOLLOUT)) == (REG_OURS | REG_ON))
            e->reg[fd] |= REG_PARKED;
        else
            epoll_drop(e, fd);
        return 0;
    }
    uint32_t want = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    if ((e->reg[fd] & REG_ON) && (e->reg[fd] & REG_EVENTS) == want) {
        e->reg[fd] &= ~REG_PARKED;
        return 0;
    }
    if (epoll_set(e, fd, want) != 0)
        log_err("epoll_ctl: %s", strerror(errno));
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *arg)
{
    struct engine *e = arg;
    (void)m;
    e->curl_due_us = timeout_ms < 0 ? INT64_MAX : app_now_us() + timeout_ms * 1000;
    return 0;
}

static int timeout_ms(struct engine *e, int64_t now, int64_t wake)
{
    if (e->curl_due_us < wake)
        wake = e->curl_due_us;
    if (e->waiting && e->waiting->due_us < wake)
        wake = e->waiting->due_us;
    if (e->auth_wait && now + AUTH_POLL_US < wake)
        wake = now + AUTH_POLL_US;
    int64_t ms = wake == INT64_MAX ? MAX_POLL_MS : wake > now ? (wake - now + 999) / 1000 : 0;
    return (int)(ms < MAX_POLL_MS ? ms : MAX_POLL_MS);
}

static void drain_wakeups(struct engine *e)
{
    uint64_t n;
    while (read(e->wakefd, &n, sizeof(n)) == (ssize_t)sizeof(n))
        ;
}

static void wait_events(struct engine *e, int ms)
{
    struct epoll_event evs[64];
    int running;
    int n = epoll_wait(e->epfd, evs, 64, ms);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == e->wakefd) {
            drain_wakeups(e);
            continue;
        }
        if ((size_t)fd < e->nreg && (e->reg[fd] & REG_PARKED)) {
            epoll_drop(e, fd); /* curl will find the connection dead when it reuses it */
            continue;
        }
        int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                    (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(e->multi, fd, flags, &running);
    }
    if (app_now_us() >= e->curl_due_us) {
        e->curl_due_us = INT64_MAX;
        curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
}

/* Test hook (enabled only by $BWPROVD_DEBUG_HANG at start): the first
 * worker stops making progress, as a deadlocked thread would, until stop. */
static void hang(struct engine *e)
{
    log_warn("debug hook: worker %d hangs", e->index);
    while (!atomic_load(&e->stop)) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
}

static void *engine_main(void *arg)
{
    struct engine *e = arg;
    char name[16];
    snprintf(name, sizeof(name), "bw-http%d", e->index);
    app_name_thread(name);

    while (!atomic_load(&e->stop)) {
        atomic_fetch_add(&e->a->beat_worker[e->index], 1);
        if (atomic_load(&e->a->debug_hang) && e->index == 0)
            hang(e);
        int64_t now = app_now_us();
        sweep(e);
        unhold(e);
        move_due(e, now);
        take_ready(e);
        int64_t wake = send_blocked(e, now);
        reap(e);
        now = app_now_us();
        atomic_store(&e->asleep, true);
        /* work queued since take_ready must not wait for the next event */
        bool more = pipe_has_ready(e->a) && e->inflight + e->blocked.n < e->capacity;
        wait_events(e, more ? 0 : timeout_ms(e, now, wake));
        atomic_store(&e->asleep, false);
        reap(e);
    }
    return NULL;
}

static struct engine *engine_new(struct app *a, int capacity)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->a = a;
    e->capacity = capacity;
    e->curl_due_us = INT64_MAX;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (getrandom(&e->rng, sizeof(e->rng), 0) != (ssize_t)sizeof(e->rng) || e->rng == 0)
        e->rng = (uint64_t)app_now_us() | 1;
    e->multi = curl_multi_init();
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = e->wakefd};
    if (!e->multi || e->epfd < 0 || e->wakefd < 0 ||
        epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) != 0) {
        engine_free(e);
        return NULL;
    }
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    /* Multiplexing only where HTTP/2 can be negotiated (TLS): over plain
     * HTTP/1.1 curl would otherwise line transfers up behind a busy
     * connection and send each the moment the previous answer arrives,
     * even when that answer was a 429. */
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING,
                      a->https ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
    /* No host connection limit: the worker's own capacity bounds the
     * transfers. With a limit, curl queues a transfer inside itself and
     * starts it the moment a connection frees, in the same call that
     * delivers that connection's 429, before the Retry-After gate closes. */
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)capacity);
    return e;
}

static void engine_free(struct engine *e)
{
    /* Work still held is abandoned: its offsets were never stored, so it is
     * replayed after the restart (or by the partition's next owner). */
    while (e->all) {
        struct xfer *x = e->all;
        e->all = x->next_all;
        if (x->busy) {
            curl_multi_remove_handle(e->multi, x->easy);
            job_free(x->job);
        }
        req_clear(&x->req);
        secmem_free(x->auth); /* wiped */
        curl_easy_cleanup(x->easy);
        free(x->body);
        free(x);
    }
    free_list(e->waiting);
    free_list(e->blocked.head);
    free_list(e->held.head);
    free_list(e->auth_wait);
    if (e->multi)
        curl_multi_cleanup(e->multi); /* closes pooled connections: on_close() */
    free(e->reg);
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->wakefd >= 0)
        close(e->wakefd);
    free(e);
}

int engines_start(struct app *a)
{
    int n = (int)a->cfg.pipeline_workers;
    a->engines = calloc((size_t)n, sizeof(*a->engines));
    if (!a->engines)
        return -1;
    int per = (int)((a->cfg.webex_max_in_flight + n - 1) / n);
    for (int i = 0; i < n; i++) {
        a->engines[i] = engine_new(a, per);
        if (a->engines[i])
            a->engines[i]->index = i;
        if (!a->engines[i] ||
            pthread_create(&a->engines[i]->thread, NULL, engine_main, a->engines[i]) != 0) {
            log_err("cannot start HTTP worker %d", i);
            if (a->engines[i])
                engine_free(a->engines[i]);
            a->engines[i] = NULL;
            return -1;
        }
        a->n_engines = i + 1;
    }
    return 0;
}

static void wake(struct engine *e)
{
    uint64_t one = 1;
    if (write(e->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_err("worker wake-up: %s", strerror(errno));
}

void engines_wake(struct app *a)
{
    /* Only sleeping workers need the (system call) wake-up; a busy one
     * looks at the ready queue before it sleeps again. */
    for (int i = 0; i < a->n_engines; i++)
        if (a->engines[i] && atomic_exchange(&a->engines[i]->asleep, false))
            wake(a->engines[i]);
}

void engines_stop(struct app *a)
{
    for (int i = 0; i < a->n_engines; i++) {
        atomic_store(&a->engines[i]->stop, true);
        wake(a->engines[i]);
    }
    for (int i = 0; i < a->n_engines; i++) {
        pthread_join(a->engines[i]->thread, NULL);
        engine_free(a->engines[i]);
    }
    free(a->engines);
    a->engines = NULL;
    a->n_engines = 0;
}
