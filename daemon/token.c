/* token: the bearer token (SPEC §5).
 *
 * File mode: webex.access_token_file (cred:NAME resolved) is read at start,
 * on SIGHUP and after a 401 (single flight: one re-read however many
 * requests saw the 401).
 *
 * Refresh mode (webex.client_id + client_secret_file + refresh_token_file):
 * a small thread obtains access tokens from POST {base}/access_token before
 * they expire (at 80% of expires_in) and whenever a 401 asks for one; one
 * refresh at a time, whatever the number of workers that saw the 401. A
 * failed refresh is retried after a backoff (1 s doubling to 5 min); until
 * it has passed a 401 does not ask for another one (a broken refresh would
 * otherwise be retried on every 401): token_state() reports the failure, so
 * the jobs fail as `auth` at once. SIGHUP still forces an attempt. A
 * rotated refresh token is written back atomically (temp file + rename,
 * 0600). The token never leaves this module except inside the
 * Authorization header.
 *
 * Every secret here (the token, the client secret and refresh token read
 * per refresh, the form body, the token answer, the parsed grant) is in
 * secmem memory: out of core dumps, wiped when freed. libcurl and json-c
 * keep copies of their own in ordinary heap memory (secmem.h). */
#include "app.h"

#include "cred.h"
#include "log.h"
#include "secmem.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFRESH_AT 0.8 /* of expires_in */
/* Lifetimes above this (ten years) are taken as this: the arithmetic on
 * them (milliseconds, microseconds since the epoch) stays in range. */
#define MAX_LIFETIME_S (10LL * 365 * 86400)
#define RETRY_MIN_US 1000000 /* refresh failure backoff: 1 s .. 5 min */
#define RETRY_MAX_US 300000000
#define RESPONSE_MAX 65536

struct token {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *file;          /* access token file, may be NULL in refresh mode */
    char *value;         /* secmem */
    uint64_t gen;        /* bumped on every new token */
    uint64_t failed_gen; /* renewal from this generation failed */

    /* refresh mode */
    bool refresh;
    char *client_id, *secret_file, *refresh_file, *url, *ca_file;
    long timeout_ms;
    int64_t renew_at_us; /* next planned refresh; after a failure, the end of its backoff */
    int64_t backoff_us;  /* the wait after the next failure */
    bool wanted;         /* a 401 or SIGHUP asked for one */
    bool forced;         /* SIGHUP asked since the current attempt began */
    bool stop;
    bool thread_started;
    pthread_t thread;

    /* What STATUS= and /metrics say (token_info): wall clock, epoch ms. */
    int64_t access_expires_ms, refresh_expires_ms; /* 0: not known */
    int64_t failing_since_ms;                      /* 0: the refresh works */
    char why[160];                                 /* why it fails (no secret in it) */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Logs once that secrets may reach a core dump (secmem could not mark its
 * memory; an old kernel). Checked whenever a token is installed. */
static void report_secmem(void)
{
    static atomic_bool told;
    int e = secmem_dontdump_error();
    if (e && !atomic_exchange(&told, true))
        log_warn("secrets may appear in core dumps: madvise(MADV_DONTDUMP) failed: %s",
                 strerror(e));
}

/* Takes v (secmem). */
static int set_value(struct token *t, char *v, char *err, size_t errlen)
{
    report_secmem();
    if (strpbrk(v, "\r\n")) { /* it goes into a header line */
        snprintf(err, errlen, "token contains a line break");
        secmem_free(v);
        return -1;
    }
    secmem_free(t->value);
    t->value = v;
    t->gen++;
    return 0;
}

static int load_file(struct token *t, char *err, size_t errlen)
{
    char *v = cred_read(t->file, err, errlen);
    return v ? set_value(t, v, err, errlen) : -1;
}

/* --- refresh --- */

/* The token answer holds the new tokens: secmem. */
struct buf {
    char *p;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t len = size * n;
    if (b->len + len > RESPONSE_MAX)
        return 0;
    char *np = secmem_realloc(b->p, b->len + len + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, ptr, len);
    b->p = np;
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

/* Writes s percent-encoded at out as curl_easy_escape() would (all but
 * RFC 3986's unreserved characters); done here because curl_easy_escape()
 * returns its copies in libcurl's heap. out needs 3 * strlen(s) bytes.
 * Returns the end. */
static char *put_escaped(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    return out;
}

/* The form body, in secmem. */
static char *form(const struct token *t, const char *secret, const char *refresh)
{
    static const char f_id[] = "grant_type=refresh_token&client_id=", f_sec[] = "&client_secret=",
                      f_ref[] = "&refresh_token=";
    /* Every byte escaped is the worst case; the sizeofs count a NUL each. */
    size_t n = sizeof(f_id) + sizeof(f_sec) + sizeof(f_ref) +
               3 * (strlen(t->client_id) + strlen(secret) + strlen(refresh));
    char *out = secmem_alloc(n);
    if (!out)
        return NULL;
    char *p = stpcpy(out, f_id);
    p = put_escaped(p, t->client_id);
    p = stpcpy(p, f_sec);
    p = put_escaped(p, secret);
    p = stpcpy(p, f_ref);
    p = put_escaped(p, refresh);
    *p = '\0';
    return out;
}

/* POSTs the form; returns the HTTP status (0: no response) and the body. */
static long post(const struct token *t, const char *body, struct buf *resp, char *err,
                 size_t errlen)
{
    CURL *h = curl_easy_init();
    long status = 0;
    char ebuf[CURL_ERROR_SIZE] = "";
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    curl_easy_setopt(h, CURLOPT_URL, t->url);
    /* Not copied by this option, but libcurl builds the request (body
     * included) in a send buffer of its own, and TLS adds OpenSSL's. */
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, t->timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "bwprovd/" BWPROVD_VERSION);
    http_set_ca(h, t->ca_file);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, errlen, "%s", ebuf[0] ? ebuf : "request failed");
    curl_easy_cleanup(h);
    return status;
}

struct grant {
    char *access;
    char *refresh;
    int64_t expires_in;
    int64_t refresh_expires_in; /* 0: not in the answer */
};

/* g's strings are secmem copies. json-c's parse tree (and the tokenizer's
 * buffer) hold copies of the tokens in its own heap, which cannot be
 * wiped: the tree is released as soon as the strings are copied out. */
static int parse_grant(const struct buf *b, struct grant *g, char *err, size_t errlen)
{
    json_object *o = b->p ? json_tokener_parse(b->p) : NULL, *v;
    memset(g, 0, sizeof(*g));
    if (o && json_object_object_get_ex(o, "access_token", &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
        g->access = secmem_strdup(json_object_get_string(v));
    if (o && json_object_object_get_ex(o, "refresh_token", &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
        g->refresh = secmem_strdup(json_object_get_string(v));
    if (o && json_object_object_get_ex(o, "expires_in", &v))
        g->expires_in = json_object_get_int64(v);
    if (o && json_object_object_get_ex(o, "refresh_token_expires_in", &v))
        g->refresh_expires_in = json_object_get_int64(v);
    json_object_put(o);
    if (g->expires_in > MAX_LIFETIME_S)
        g->expires_in = MAX_LIFETIME_S;
    if (g->refresh_expires_in > MAX_LIFETIME_S)
        g->refresh_expires_in = MAX_LIFETIME_S;
    if (!g->access || g->expires_in <= 0) {
        snprintf(err, errlen, "answer without access_token/expires_in");
        secmem_free(g->access);
        secmem_free(g->refresh);
        return -1;
    }
    return 0;
}

/* With the lock held: a refresh worked; the lifetimes it gave. */
static void note_lifetimes(struct token *t, const struct grant *g)
{
    int64_t now = app_epoch_ms();
    t->access_expires_ms = now + g->expires_in * 1000;
    t->refresh_expires_ms = g->refresh_expires_in > 0 ? now + g->refresh_expires_in * 1000 : 0;
    t->failing_since_ms = 0;
}

/* With the lock held: a refresh failed (STATUS= says since when). */
static void note_failing(struct token *t, const char *why)
{
    if (!t->failing_since_ms)
        t->failing_since_ms = app_epoch_ms();
    snprintf(t->why, sizeof(t->why), "%s", why);
}

/* One refresh; called without the lock. On success installs the token. */
static int refresh_once(struct token *t, char *err, size_t errlen)
{
    char *secret = cred_read(t->secret_file, err, errlen);
    char *refresh = secret ? cred_read(t->refresh_file, err, errlen) : NULL;
    struct buf resp = {0};
    struct grant g;
    int rc = -1;

    char *body = refresh ? form(t, secret, refresh) : NULL;
    if (refresh && !body)
        snprintf(err, errlen, "out of memory");
    if (body) {
        long status = post(t, body, &resp, err, errlen);
        secmem_free(body);
        if (status == 200)
            rc = parse_grant(&resp, &g, err, errlen);
        else if (status)
            snprintf(err, errlen, "HTTP %ld from %s", status, t->url);
    }
    if (rc == 0 && g.refresh && strcmp(g.refresh, refresh) != 0 &&
        cred_write_atomic(t->refresh_file, g.refresh, err, errlen) != 0)
        log_err("could not store the rotated refresh token: %s", err); /* keep going */
    if (rc == 0) {
        pthread_mutex_lock(&t->lock);
        rc = set_value(t, g.access, err, errlen);
        int64_t life = (int64_t)((double)g.expires_in * REFRESH_AT * 1e6);
        t->renew_at_us = now_us() + (life > 1000000 ? life : 1000000);
        if (rc == 0)
            note_lifetimes(t, &g);
        pthread_mutex_unlock(&t->lock);
        if (rc == 0) /* a token with a line break was refused */
            log_info("access token renewed; valid for %lld s", (long long)g.expires_in);
        secmem_free(g.refresh);
    }
    secmem_free(resp.p);
    secmem_free(secret);
    secmem_free(refresh);
    return rc;
}

/* With the lock held: the attempt made with token generation gen failed.
 * The next one comes when the backoff has passed (token_renew() does not
 * ask for one earlier), or on SIGHUP. */
static void note_failure(struct token *t, uint64_t gen)
{
    t->failed_gen = gen;
    t->renew_at_us = now_us() + t->backoff_us;
    t->backoff_us = t->backoff_us * 2 > RETRY_MAX_US ? RETRY_MAX_US : t->backoff_us * 2;
}

static void *refresh_main(void *arg)
{
    struct token *t = arg;
    app_name_thread("bw-token");

    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        int64_t now = now_us();
        if (!t->wanted && now < t->renew_at_us) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t wait = t->renew_at_us - now;
            ts.tv_sec += (time_t)(wait / 1000000);
            ts.tv_nsec += (long)(wait % 1000000) * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&t->cond, &t->lock, &ts);
            continue;
        }
        uint64_t gen = t->gen;
        t->forced = false;
        pthread_mutex_unlock(&t->lock);
        char err[512] = "";
        int rc = refresh_once(t, err, sizeof(err));
        pthread_mutex_lock(&t->lock);
        /* A 401 that came meanwhile is answered by this attempt; a SIGHUP
         * (the secret file may have changed after it was read) is not. */
        t->wanted = t->forced;
        if (rc == 0) {
            t->backoff_us = RETRY_MIN_US;
            continue;
        }
        int64_t wait_us = t->backoff_us;
        note_failure(t, gen);
        note_failing(t, err);
        pthread_mutex_unlock(&t->lock);
        log_write(LOG_LVL_ERR, LOG_MID_AUTH_FAILED,
                  "Webex token refresh failed: %s; next attempt in %lld s", err,
                  (long long)(wait_us / 1000000));
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* --- public --- */

static int init_refresh(struct token *t, const struct cfg *c, char *err, size_t errlen)
{
    size_t n = strlen(c->webex_base_url) + sizeof("/access_token");
    t->refresh = true;
    t->client_id = strdup(c->webex_client_id);
    t->secret_file = strdup(c->webex_client_secret_file);
    t->refresh_file = strdup(c->webex_refresh_token_file);
    t->ca_file = c->webex_ca_file ? strdup(c->webex_ca_file) : NULL;
    t->timeout_ms = c->webex_timeout_ms;
    t->backoff_us = RETRY_MIN_US;
    t->url = malloc(n);
    if (!t->client_id || !t->secret_file || !t->refresh_file || !t->url) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(t->url, n, "%s/access_token", c->webex_base_url);
    /* The secrets must at least be readable now: a typo is a config error. */
    char *s = cred_read(t->secret_file, err, errlen);
    if (!s)
        return -1;
    secmem_free(s);
    if (!(s = cred_read(t->refresh_file, err, errlen)))
        return -1;
    secmem_free(s);
    /* An access token file, when given, serves until the first refresh. */
    if (!t->file || load_file(t, err, errlen) != 0) {
        if (refresh_once(t, err, errlen) != 0) {
            note_failure(t, t->gen); /* no thread yet: no lock needed */
            note_failing(t, err);
            log_write(LOG_LVL_ERR, LOG_MID_AUTH_FAILED,
                      "Webex token refresh failed at start: %s; next attempt in %lld s", err,
                      (long long)(RETRY_MIN_US / 1000000));
        }
    }
    if (pthread_create(&t->thread, NULL, refresh_main, t) != 0) {
        snprintf(err, errlen, "cannot start the token thread");
        return -1;
    }
    t->thread_started = true;
    return 0;
}

struct token *token_new(const struct cfg *c, char *err, size_t errlen)
{
    struct token *t = calloc(1, sizeof(*t));
    if (!t || pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    t->file = c->webex_access_token_file ? strdup(c->webex_access_token_file) : NULL;
    int rc = c->webex_client_id ? init_refresh(t, c, err, errlen) : load_file(t, err, errlen);
    if (rc != 0) {
        token_free(t);
        return NULL;
    }
    report_secmem(); /* cred_read() made secmem's first mappings */
    return t;
}

void token_free(struct token *t)
{
    if (!t)
        return;
    if (t->thread_started) {
        pthread_mutex_lock(&t->lock);
        t->stop = true;
        pthread_cond_signal(&t->cond);
        pthread_mutex_unlock(&t->lock);
        pthread_join(t->thread, NULL);
    }
    secmem_free(t->value);
    free(t->file);
    free(t->client_id);
    free(t->secret_file);
    free(t->refresh_file);
    free(t->url);
    free(t->ca_file);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int token_header(struct token *t, char *buf, size_t cap, uint64_t *gen)
{
    /* gen is set even without a token, for token_renew()/token_state() */
    pthread_mutex_lock(&t->lock);
    int n = t->value ? snprintf(buf, cap, "Authorization: Bearer %s", t->value) : -1;
    *gen = t->gen;
    pthread_mutex_unlock(&t->lock);
    if (n < 0)
        return -1;
    return (size_t)n < cap ? 0 : n + 1;
}

int token_renew(struct token *t, uint64_t gen)
{
    char err[512];
    int rc = 0;

    pthread_mutex_lock(&t->lock);
    if (t->gen == gen && t->refresh) {
        /* After a failed refresh from this generation, no new attempt
         * before its backoff has passed: token_state() reports the
         * failure meanwhile, so the caller's job fails instead of waiting
         * (and the token thread retries by itself when the backoff ends). */
        if (t->failed_gen != gen || now_us() >= t->renew_at_us) {
            t->wanted = true;
            pthread_cond_signal(&t->cond);
        }
    } else if (t->gen == gen) { /* nobody re-read it since this request was sent */
        rc = load_file(t, err, sizeof(err));
        if (rc != 0) {
            t->failed_gen = gen;
            log_err("re-reading the access token after 401: %s", err);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int token_state(struct token *t, uint64_t gen)
{
    pthread_mutex_lock(&t->lock);
    int st = t->gen > gen ? 1 : t->failed_gen == gen && !t->wanted ? -1 : 0;
    pthread_mutex_unlock(&t->lock);
    return st;
}

int token_reload(struct token *t, const struct cfg *c)
{
    char err[512];
    int rc = 0;

    pthread_mutex_lock(&t->lock);
    if (t->refresh) {
        /* SIGHUP: fetch a fresh token now, backoff or not (an operator may
         * just have fixed the secret), or right after an attempt under way */
        t->wanted = t->forced = true;
        pthread_cond_signal(&t->cond);
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    if (c->webex_access_token_file && strcmp(c->webex_access_token_file, t->file) != 0) {
        char *f = strdup(c->webex_access_token_file);
        if (f) {
            free(t->file);
            t->file = f;
        }
    }
    rc = load_file(t, err, sizeof(err));
    if (rc != 0)
        log_err("reload: access token: %s (keeping the current token)", err);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void token_info(struct token *t, struct token_info *out)
{
    pthread_mutex_lock(&t->lock);
    out->access_expires_ms = t->access_expires_ms;
    out->refresh_expires_ms = t->refresh_expires_ms;
    out->failing_since_ms = t->failing_since_ms;
    snprintf(out->why, sizeof(out->why), "%s", t->why);
    pthread_mutex_unlock(&t->lock);
}
