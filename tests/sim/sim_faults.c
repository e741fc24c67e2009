/*
 * faults_: fault-injection settings and the per-request decisions.
 *
 * Settings change through POST /_sim/faults (or --faults) with a JSON object
 * whose keys are merged into the current settings; a bad object changes
 * nothing. Decisions for a request take the mutex once or twice for a few
 * arithmetic operations; random draws use the calling thread's RNG.
 */
#include "websim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#define FLT_MAX_CODES 16
#define FLT_MAX_SCRIPT 4096
#define FLT_MAX_MS 3600000 /* one hour */
/* Bounds of the subscriber settings, so that a settings object costs bounded
 * memory: userIds in subscriberOutcome, errors[] entries of one outcome, the
 * length of an error description or a userId, and the subscriber cap. */
#define FLT_MAX_OUTCOMES 65536
#define FLT_MAX_SUB_ERRORS 16
#define FLT_MAX_DESCRIPTION 1024
#define FLT_MAX_OUTCOME_USER 1024
#define FLT_SUB_MAX 1000000
/* errors[] of an injected error that names none, and of subscriberErrorShare.
 * The code is this simulator's own: Cisco publishes no list. */
#define FLT_SUB_DEFAULT_ERRORS                                                                     \
    "[{\"errorCode\":10000,\"description\":\"Simulated provisioning failure\"}]"

/* A scripted fault: the next matching request(s) get this answer. */
struct flt_script {
    int status; /* 400..599, or 0 with reset */
    bool reset; /* drop the connection instead */
    bool token; /* matches /v1/access_token instead of the API */
    unsigned retry_after;
    unsigned latency_ms;
    unsigned count;  /* uses left */
    char method[16]; /* "": any */
    char *user;      /* NULL: any */
};

/* The final status chosen for a userId's next provisionings or updates. */
struct flt_outcome {
    enum sub_status status;
    unsigned count; /* uses left */
    char *errors;   /* errors[] JSON, status error only */
    char user[];    /* the map key */
};

struct flt_settings {
    unsigned latency_ms;
    unsigned jitter_ms;
    double rl_per_sec; /* 0: no rate limit */
    double rl_burst;
    unsigned rl_retry_after;
    double locked_share;
    unsigned locked_retry_after;
    double error_share;
    int error_codes[FLT_MAX_CODES];
    size_t n_error_codes;
    uint64_t outage_until_us;
    int outage_status;
    unsigned outage_retry_after;
    double reset_share;
    unsigned ra_grace_ms;
    unsigned ra_tol_ms;
    struct flt_script *script;
    size_t n_script;
    unsigned sub_delay_ms;
    unsigned sub_delay_jitter_ms; /* each subscriber's delay: + 0..this, at random */
    bool sub_sync;
    double sub_error_share;
    unsigned sub_max;
    struct smap *outcomes; /* userId -> flt_outcome; NULL: none */
};

/* Token-related keys, handed to auth_ after the settings are committed. */
struct flt_auth_ops {
    bool clear;
    bool expire_now;
    bool set_after;
    int64_t after;               /* -1: cancel */
    int64_t access_s, refresh_s; /* 0: unchanged */
    bool set_rotate;
    bool rotate;
};

static struct {
    pthread_mutex_t mu;
    struct flt_settings set;
    double rl_tokens; /* token bucket */
    uint64_t rl_last_us;
} flt;

static void faults_defaults(struct flt_settings *s)
{
    static const int codes[] = {500, 502, 503, 504};

    memset(s, 0, sizeof *s);
    s->rl_retry_after = 1;
    s->locked_retry_after = 1;
    memcpy(s->error_codes, codes, sizeof codes);
    s->n_error_codes = sizeof codes / sizeof codes[0];
    s->outage_status = 503;
    s->ra_grace_ms = 50;
    s->ra_tol_ms = 50;
    s->sub_max = FLT_SUB_MAX;
}

static void faults_script_free(struct flt_script *script, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(script[i].user);
    free(script);
}

static void faults_outcomes_free(struct smap *m)
{
    size_t pos = 0;
    const char *key;
    void *val;

    if (m == NULL)
        return;
    while (smap_next(m, &pos, &key, &val)) {
        struct flt_outcome *o = val;
        free(o->errors);
        free(o);
    }
    smap_free(m);
    free(m);
}

int faults_init(void)
{
    if (pthread_mutex_init(&flt.mu, NULL) != 0)
        return -1;
    faults_defaults(&flt.set);
    flt.rl_tokens = 0;
    flt.rl_last_us = 0;
    return 0;
}

void faults_fini(void)
{
    faults_script_free(flt.set.script, flt.set.n_script);
    flt.set.script = NULL;
    flt.set.n_script = 0;
    faults_outcomes_free(flt.set.outcomes);
    flt.set.outcomes = NULL;
    pthread_mutex_destroy(&flt.mu);
}

/* ------------------------------------------------------------------------ */
/* JSON settings parser. Each helper returns false with a message in err.    */

struct flt_parse {
    char *err;
    size_t errsz;
};

static bool flt_fail(struct flt_parse *p, const char *key, const char *what)
{
    snprintf(p->err, p->errsz, "%s: %s", key, what);
    return false;
}

static bool flt_get_uint(struct flt_parse *p, const char *key, json_object *v, int64_t max,
                         unsigned *out)
{
    int64_t n;

    if (!json_object_is_type(v, json_type_int))
        return flt_fail(p, key, "must be an integer");
    n = json_object_get_int64(v);
    if (n < 0 || n > max)
        return flt_fail(p, key, "out of range");
    *out = (unsigned)n;
    return true;
}

static bool flt_get_number(struct flt_parse *p, const char *key, json_object *v, double max,
                           double *out)
{
    double d;

    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return flt_fail(p, key, "must be a number");
    d = json_object_get_double(v);
    if (!(d >= 0.0 && d <= max))
        return flt_fail(p, key, "out of range");
    *out = d;
    return true;
}

static bool flt_get_share(struct flt_parse *p, const char *key, json_object *v, double *out)
{
    return flt_get_number(p, key, v, 1.0, out);
}

static bool flt_get_bool(struct flt_parse *p, const char *key, json_object *v, bool *out)
{
    if (!json_object_is_type(v, json_type_boolean))
        return flt_fail(p, key, "must be true or false");
    *out = json_object_get_boolean(v);
    return true;
}

/* Check that obj is an object with only the given keys. */
static bool flt_only_keys(struct flt_parse *p, const char *key, json_object *obj,
                          const char *const *keys)
{
    if (!json_object_is_type(obj, json_type_object))
        return flt_fail(p, key, "must be an object");
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);

    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *k = json_object_iter_peek_name(&it);
        size_t i;
        for (i = 0; keys[i] != NULL && strcmp(keys[i], k) != 0; i++)
            ;
        if (keys[i] == NULL)
            return flt_fail(p, k, "unknown key");
    }
    return true;
}

static bool flt_parse_rate(struct flt_parse *p, json_object *v, struct flt_settings *s)
{
    static const char *const keys[] = {"perSecond", "burst", "retryAfter", NULL};
    json_object *x;

    if (json_object_is_type(v, json_type_null)) {
        s->rl_per_sec = 0;
        return true;
    }
    if (!flt_only_keys(p, "rateLimit", v, keys))
        return false;
    if (!json_object_object_get_ex(v, "perSecond", &x))
        return flt_fail(p, "rateLimit", "perSecond is required");
    if (!flt_get_number(p, "rateLimit.perSecond", x, 1e9, &s->rl_per_sec))
        return false;
    s->rl_burst = s->rl_per_sec < 1.0 ? 1.0 : s->rl_per_sec;
    if (json_object_object_get_ex(v, "burst", &x) &&
        !flt_get_number(p, "rateLimit.burst", x, 1e9, &s->rl_burst))
        return false;
    if (s->rl_burst < 1.0)
        s->rl_burst = 1.0;
    if (json_object_object_get_ex(v, "retryAfter", &x) &&
        !flt_get_uint(p, "rateLimit.retryAfter", x, SIM_MAX_RETRY_AFTER, &s->rl_retry_after))
        return false;
    return true;
}

static bool flt_parse_codes(struct flt_parse *p, json_object *v, struct flt_settings *s)
{
    size_t n;

    if (!json_object_is_type(v, json_type_array))
        return flt_fail(p, "errorCodes", "must be an array");
    n = json_object_array_length(v);
    if (n == 0 || n > FLT_MAX_CODES)
        return flt_fail(p, "errorCodes", "needs 1 to 16 codes");
    for (size_t i = 0; i < n; i++) {
        unsigned code;
        if (!flt_get_uint(p, "errorCodes[]", json_object_array_get_idx(v, i), 599, &code))
            return false;
        if (code < 400)
            return flt_fail(p, "errorCodes[]", "must be 400..599");
        s->error_codes[i] = (int)code;
    }
    s->n_error_codes = n;
    return true;
}

static bool flt_parse_outage(struct flt_parse *p, json_object *v, struct flt_settings *s)
{
    static const char *const keys[] = {"forMs", "status", "retryAfter", NULL};
    json_object *x;
    unsigned ms, status;

    if (!flt_only_keys(p, "outage", v, keys))
        return false;
    if (!json_object_object_get_ex(v, "forMs", &x))
        return flt_fail(p, "outage", "forMs is required");
    if (!flt_get_uint(p, "outage.forMs", x, FLT_MAX_MS, &ms))
        return false;
    s->outage_until_us = ms ? clk_mono_us() + (uint64_t)ms * 1000u : 0;
    s->outage_status = 503;
    s->outage_retry_after = 0;
    if (json_object_object_get_ex(v, "status", &x)) {
        if (!flt_get_uint(p, "outage.status", x, 599, &status))
            return false;
        if (status < 400)
            return flt_fail(p, "outage.status", "must be 400..599");
        s->outage_status = (int)status;
    }
    if (json_object_object_get_ex(v, "retryAfter", &x) &&
        !flt_get_uint(p, "outage.retryAfter", x, SIM_MAX_RETRY_AFTER, &s->outage_retry_after))
        return false;
    return true;
}

static bool flt_parse_token_expiry(struct flt_parse *p, json_object *v, struct flt_auth_ops *a)
{
    static const char *const keys[] = {"afterRequests", "now", NULL};
    json_object *x;
    unsigned n;
    bool now = false;

    if (json_object_is_type(v, json_type_null)) {
        a->set_after = true;
        a->after = -1;
        return true;
    }
    if (!flt_only_keys(p, "tokenExpiry", v, keys))
        return false;
    if (json_object_object_get_ex(v, "now", &x)) {
        if (!flt_get_bool(p, "tokenExpiry.now", x, &now))
            return false;
        a->expire_now = now;
    }
    if (json_object_object_get_ex(v, "afterRequests", &x)) {
        if (!flt_get_uint(p, "tokenExpiry.afterRequests", x, INT32_MAX, &n))
            return false;
        a->set_after = true;
        a->after = n;
    }
    if (!a->expire_now && !a->set_after)
        return flt_fail(p, "tokenExpiry", "needs afterRequests or now");
    return true;
}

/* One script entry. */
static bool flt_parse_entry(struct flt_parse *p, json_object *v, struct flt_script *e)
{
    static const char *const keys[] = {"status", "reset",  "retryAfter", "latencyMs", "count",
                                       "method", "userId", "endpoint",   NULL};
    json_object *x;
    unsigned status = 0;

    memset(e, 0, sizeof *e);
    e->count = 1;
    if (!flt_only_keys(p, "script[]", v, keys))
        return false;
    if (json_object_object_get_ex(v, "reset", &x) &&
        !flt_get_bool(p, "script[].reset", x, &e->reset))
        return false;
    if (json_object_object_get_ex(v, "status", &x) &&
        !flt_get_uint(p, "script[].status", x, 599, &status))
        return false;
    if (!e->reset && status < 400)
        return flt_fail(p, "script[]", "needs a status 400..599 or reset:true");
    e->status = (int)status;
    if (json_object_object_get_ex(v, "retryAfter", &x) &&
        !flt_get_uint(p, "script[].retryAfter", x, SIM_MAX_RETRY_AFTER, &e->retry_after))
        return false;
    if ((e->status == 429 || e->status == 423) && !json_object_object_get_ex(v, "retryAfter", &x))
        e->retry_after = 1;
    if (json_object_object_get_ex(v, "latencyMs", &x) &&
        !flt_get_uint(p, "script[].latencyMs", x, FLT_MAX_MS, &e->latency_ms))
        return false;
    if (json_object_object_get_ex(v, "count", &x) &&
        !flt_get_uint(p, "script[].count", x, 1000000, &e->count))
        return false;
    if (json_object_object_get_ex(v, "method", &x)) {
        if (!json_object_is_type(x, json_type_string) ||
            json_object_get_string_len(x) >= (int)sizeof e->method)
            return flt_fail(p, "script[].method", "must be a method name");
        snprintf(e->method, sizeof e->method, "%s", json_object_get_string(x));
    }
    if (json_object_object_get_ex(v, "endpoint", &x)) {
        const char *ep = json_object_get_string(x);
        if (!json_object_is_type(x, json_type_string) ||
            (strcmp(ep, "api") != 0 && strcmp(ep, "token") != 0))
            return flt_fail(p, "script[].endpoint", "must be \"api\" or \"token\"");
        e->token = strcmp(ep, "token") == 0;
    }
    if (json_object_object_get_ex(v, "userId", &x)) {
        if (!json_object_is_type(x, json_type_string))
            return flt_fail(p, "script[].userId", "must be a string");
        e->user = strdup(json_object_get_string(x));
        if (e->user == NULL)
            return flt_fail(p, "script[].userId", "out of memory");
    }
    return true;
}

/* Parse a new script (it replaces the old one) into *out and *n. */
static bool flt_parse_script(struct flt_parse *p, json_object *v, struct flt_script **out,
                             size_t *n)
{
    size_t len;
    struct flt_script *s;

    if (!json_object_is_type(v, json_type_array))
        return flt_fail(p, "script", "must be an array");
    len = json_object_array_length(v);
    if (len > FLT_MAX_SCRIPT)
        return flt_fail(p, "script", "too many entries");
    s = calloc(len ? len : 1, sizeof *s);
    if (s == NULL)
        return flt_fail(p, "script", "out of memory");
    for (size_t i = 0; i < len; i++) {
        if (!flt_parse_entry(p, json_object_array_get_idx(v, i), &s[i])) {
            faults_script_free(s, i + 1);
            return false;
        }
    }
    *out = s;
    *n = len;
    return true;
}

/* One outcome's errors[]: 1 to 16 {"errorCode": N, "description": "..."},
 * rendered as the JSON the subscriber will show. */
static bool flt_parse_sub_errors(struct flt_parse *p, json_object *v, char **out)
{
    static const char *const keys[] = {"errorCode", "description", NULL};
    struct sbuf sb;
    size_t n;
    bool ok = true;

    if (!json_object_is_type(v, json_type_array))
        return flt_fail(p, "subscriberOutcome.errors", "must be an array");
    n = json_object_array_length(v);
    if (n == 0 || n > FLT_MAX_SUB_ERRORS)
        return flt_fail(p, "subscriberOutcome.errors", "needs 1 to 16 entries");
    sbuf_init(&sb);
    sbuf_puts(&sb, "[");
    for (size_t i = 0; ok && i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i), *code, *desc;
        unsigned c;
        ok = flt_only_keys(p, "subscriberOutcome.errors[]", e, keys);
        if (ok && (!json_object_object_get_ex(e, "errorCode", &code) ||
                   !json_object_object_get_ex(e, "description", &desc)))
            ok = flt_fail(p, "subscriberOutcome.errors[]", "needs errorCode and description");
        if (ok)
            ok = flt_get_uint(p, "subscriberOutcome.errors[].errorCode", code, INT32_MAX, &c);
        if (ok && (!json_object_is_type(desc, json_type_string) ||
                   json_object_get_string_len(desc) > FLT_MAX_DESCRIPTION))
            ok = flt_fail(p, "subscriberOutcome.errors[].description",
                          "must be a string of at most 1024 bytes");
        if (ok) {
            sbuf_printf(&sb, "%s{\"errorCode\":%u,\"description\":", i ? "," : "", c);
            sbuf_json_str(&sb, json_object_get_string(desc));
            sbuf_puts(&sb, "}");
        }
    }
    sbuf_puts(&sb, "]");
    if (ok && (*out = sbuf_take(&sb, &n)) == NULL)
        ok = flt_fail(p, "subscriberOutcome", "out of memory");
    sbuf_free(&sb);
    return ok;
}

/* The status of one outcome: a final one (not provisioning or updating). */
static bool flt_parse_sub_status(struct flt_parse *p, json_object *v, enum sub_status *st)
{
    if (!json_object_is_type(v, json_type_string) ||
        !subs_status_parse(json_object_get_string(v), (size_t)json_object_get_string_len(v), st) ||
        *st == SUB_PROVISIONING || *st == SUB_UPDATING)
        return flt_fail(p, "subscriberOutcome.status",
                        "must be provisioned, error, pending_email_input, "
                        "pending_email_validation or pending_user_migration");
    return true;
}

/* One userId's outcome {"status": S, "errors": [...], "count": N}. */
static bool flt_parse_outcome(struct flt_parse *p, const char *user, json_object *v,
                              struct flt_outcome **out)
{
    static const char *const keys[] = {"status", "errors", "count", NULL};
    size_t n = strlen(user);
    struct flt_outcome *o;
    json_object *x;

    if (n == 0 || n > FLT_MAX_OUTCOME_USER)
        return flt_fail(p, "subscriberOutcome", "a userId must have 1 to 1024 bytes");
    if (!flt_only_keys(p, "subscriberOutcome{}", v, keys))
        return false;
    if ((o = calloc(1, sizeof *o + n + 1)) == NULL)
        return flt_fail(p, "subscriberOutcome", "out of memory");
    memcpy(o->user, user, n + 1);
    o->count = 1;
    *out = o; /* freed by the caller, also on failure */
    if (!json_object_object_get_ex(v, "status", &x))
        return flt_fail(p, "subscriberOutcome", "status is required");
    if (!flt_parse_sub_status(p, x, &o->status))
        return false;
    if (json_object_object_get_ex(v, "count", &x) &&
        (!flt_get_uint(p, "subscriberOutcome.count", x, 1000000, &o->count) || o->count == 0))
        return flt_fail(p, "subscriberOutcome.count", "must be 1..1000000");
    if (json_object_object_get_ex(v, "errors", &x)) {
        if (o->status != SUB_ERROR)
            return flt_fail(p, "subscriberOutcome.errors", "only with status error");
        return flt_parse_sub_errors(p, x, &o->errors);
    }
    if (o->status == SUB_ERROR && (o->errors = strdup(FLT_SUB_DEFAULT_ERRORS)) == NULL)
        return flt_fail(p, "subscriberOutcome", "out of memory");
    return true;
}

/* A new subscriberOutcome table (it replaces the old one); null: none. */
static bool flt_parse_outcomes(struct flt_parse *p, json_object *v, struct smap **out)
{
    struct json_object_iterator it, end;
    struct smap *m;

    *out = NULL;
    if (json_object_is_type(v, json_type_null))
        return true;
    if (!json_object_is_type(v, json_type_object))
        return flt_fail(p, "subscriberOutcome", "must be an object or null");
    if (json_object_object_length(v) > FLT_MAX_OUTCOMES)
        return flt_fail(p, "subscriberOutcome", "more than 65536 userIds");
    if ((m = calloc(1, sizeof *m)) == NULL)
        return flt_fail(p, "subscriberOutcome", "out of memory");
    *out = m; /* freed by the caller on failure */
    it = json_object_iter_begin(v);
    end = json_object_iter_end(v);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        struct flt_outcome *o = NULL;
        bool ok = flt_parse_outcome(p, json_object_iter_peek_name(&it),
                                    json_object_iter_peek_value(&it), &o);
        if (ok && !smap_put(m, o->user, o))
            ok = flt_fail(p, "subscriberOutcome", "out of memory");
        if (!ok) {
            if (o != NULL)
                free(o->errors);
            free(o);
            return false;
        }
    }
    return true;
}

/* The scalar subscriber keys; false when k is none of them. */
static bool flt_parse_sub_key(struct flt_parse *p, const char *k, json_object *v,
                              struct flt_settings *s, bool *ok)
{
    if (strcmp(k, "subscriberDelayMs") == 0) {
        *ok = flt_get_uint(p, k, v, FLT_MAX_MS, &s->sub_delay_ms);
    } else if (strcmp(k, "subscriberDelayJitterMs") == 0) {
        *ok = flt_get_uint(p, k, v, FLT_MAX_MS, &s->sub_delay_jitter_ms);
    } else if (strcmp(k, "subscriberSync") == 0) {
        *ok = flt_get_bool(p, k, v, &s->sub_sync);
    } else if (strcmp(k, "subscriberErrorShare") == 0) {
        *ok = flt_get_share(p, k, v, &s->sub_error_share);
    } else if (strcmp(k, "subscriberMax") == 0) {
        *ok = flt_get_uint(p, k, v, FLT_SUB_MAX, &s->sub_max);
        if (*ok && s->sub_max == 0)
            *ok = flt_fail(p, k, "must be 1..1000000");
    } else if (strcmp(k, "subscriberOutcome") == 0) {
        *ok = true; /* parsed separately: it allocates */
    } else {
        return false;
    }
    return true;
}

/* Parse one top-level key into s / a. */
static bool flt_parse_key(struct flt_parse *p, const char *k, json_object *v,
                          struct flt_settings *s, struct flt_auth_ops *a)
{
    unsigned u;
    bool ok;

    if (strcmp(k, "clear") == 0)
        return true; /* handled first */
    if (flt_parse_sub_key(p, k, v, s, &ok))
        return ok;
    if (strcmp(k, "latencyMs") == 0)
        return flt_get_uint(p, k, v, FLT_MAX_MS, &s->latency_ms);
    if (strcmp(k, "latencyJitterMs") == 0)
        return flt_get_uint(p, k, v, FLT_MAX_MS, &s->jitter_ms);
    if (strcmp(k, "rateLimit") == 0)
        return flt_parse_rate(p, v, s);
    if (strcmp(k, "lockedShare") == 0)
        return flt_get_share(p, k, v, &s->locked_share);
    if (strcmp(k, "retryAfter") == 0)
        return flt_get_uint(p, k, v, SIM_MAX_RETRY_AFTER, &s->locked_retry_after);
    if (strcmp(k, "errorShare") == 0)
        return flt_get_share(p, k, v, &s->error_share);
    if (strcmp(k, "errorCodes") == 0)
        return flt_parse_codes(p, v, s);
    if (strcmp(k, "outage") == 0)
        return flt_parse_outage(p, v, s);
    if (strcmp(k, "resetShare") == 0)
        return flt_get_share(p, k, v, &s->reset_share);
    if (strcmp(k, "retryAfterGraceMs") == 0)
        return flt_get_uint(p, k, v, 60000, &s->ra_grace_ms);
    if (strcmp(k, "retryAfterToleranceMs") == 0)
        return flt_get_uint(p, k, v, 60000, &s->ra_tol_ms);
    if (strcmp(k, "tokenExpiry") == 0)
        return flt_parse_token_expiry(p, v, a);
    if (strcmp(k, "tokenLifetimeS") == 0 || strcmp(k, "refreshTokenLifetimeS") == 0) {
        if (!flt_get_uint(p, k, v, INT32_MAX, &u))
            return false;
        if (u == 0)
            return flt_fail(p, k, "must be positive");
        if (strcmp(k, "tokenLifetimeS") == 0)
            a->access_s = u;
        else
            a->refresh_s = u;
        return true;
    }
    if (strcmp(k, "refreshRotate") == 0) {
        a->set_rotate = true;
        return flt_get_bool(p, k, v, &a->rotate);
    }
    if (strcmp(k, "script") == 0)
        return true; /* parsed separately: it allocates */
    return flt_fail(p, k, "unknown key");
}

static void faults_apply_auth(const struct flt_auth_ops *a)
{
    if (a->clear)
        auth_defaults();
    if (a->set_after)
        auth_expire_after(a->after);
    if (a->expire_now)
        auth_expire_now();
    if (a->access_s > 0 || a->refresh_s > 0)
        auth_set_lifetimes(a->access_s, a->refresh_s);
    if (a->set_rotate)
        auth_set_rotate(a->rotate);
}

int faults_apply_json(const char *json, size_t len, char *err, size_t errsz)
{
    struct flt_parse p = {err, errsz};
    struct flt_settings next, old_script_owner;
    struct flt_auth_ops a;
    struct flt_script *script = NULL;
    size_t n_script = 0;
    struct smap *outcomes = NULL, *old_outcomes = NULL;
    bool new_script = false, new_outcomes = false, ok = true, clear = false;
    json_object *root, *v;
    struct json_object_iterator it, end;
    const char *why;

    root = sim_json_parse_object(json, len, &why);
    if (root == NULL) {
        snprintf(err, errsz, "%s", why);
        return -1;
    }
    memset(&a, 0, sizeof a);
    if (json_object_object_get_ex(root, "clear", &v))
        ok = flt_get_bool(&p, "clear", v, &clear);
    if (ok && json_object_object_get_ex(root, "script", &v)) {
        ok = flt_parse_script(&p, v, &script, &n_script);
        new_script = ok;
    }
    if (ok && json_object_object_get_ex(root, "subscriberOutcome", &v)) {
        ok = flt_parse_outcomes(&p, v, &outcomes);
        new_outcomes = ok;
    }

    pthread_mutex_lock(&flt.mu);
    next = flt.set;
    if (clear) {
        faults_defaults(&next);
        next.script = flt.set.script; /* freed below unless kept */
        next.n_script = flt.set.n_script;
        next.outcomes = flt.set.outcomes;
        a.clear = true;
    }
    it = json_object_iter_begin(root);
    end = json_object_iter_end(root);
    for (; ok && !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
        ok = flt_parse_key(&p, json_object_iter_peek_name(&it), json_object_iter_peek_value(&it),
                           &next, &a);
    memset(&old_script_owner, 0, sizeof old_script_owner);
    if (ok) {
        if (new_script || clear) {
            old_script_owner.script = flt.set.script;
            old_script_owner.n_script = flt.set.n_script;
            next.script = new_script ? script : NULL;
            next.n_script = new_script ? n_script : 0;
            script = NULL; /* now owned by the settings */
            n_script = 0;
        }
        if (new_outcomes || clear) {
            old_outcomes = flt.set.outcomes;
            next.outcomes = outcomes;
            outcomes = NULL; /* now owned by the settings */
        }
        if (json_object_object_get_ex(root, "rateLimit", &v) || clear) {
            flt.rl_tokens = next.rl_burst;
            flt.rl_last_us = clk_mono_us();
        }
        flt.set = next;
    }
    pthread_mutex_unlock(&flt.mu);

    faults_script_free(old_script_owner.script, old_script_owner.n_script);
    faults_script_free(script, n_script);
    faults_outcomes_free(old_outcomes);
    faults_outcomes_free(outcomes);
    json_object_put(root);
    if (!ok)
        return -1;
    faults_apply_auth(&a);
    return 0;
}

void faults_reset(void)
{
    struct flt_script *old;
    size_t n;
    struct smap *old_outcomes;

    pthread_mutex_lock(&flt.mu);
    old = flt.set.script;
    n = flt.set.n_script;
    old_outcomes = flt.set.outcomes;
    faults_defaults(&flt.set);
    pthread_mutex_unlock(&flt.mu);
    faults_script_free(old, n);
    faults_outcomes_free(old_outcomes);
    auth_defaults();
}

/* ------------------------------------------------------------------------ */
/* dump                                                                      */

static void faults_dump_script(struct sbuf *out, const struct flt_script *s, size_t n)
{
    sbuf_puts(out, ",\"script\":[");
    for (size_t i = 0; i < n; i++) {
        const struct flt_script *e = &s[i];
        sbuf_printf(out,
                    "%s{\"status\":%d,\"reset\":%s,\"retryAfter\":%u,\"latencyMs\":%u,"
                    "\"count\":%u,\"endpoint\":\"%s\",\"method\":",
                    i ? "," : "", e->status, e->reset ? "true" : "false", e->retry_after,
                    e->latency_ms, e->count, e->token ? "token" : "api");
        sbuf_json_str(out, e->method[0] ? e->method : NULL);
        sbuf_puts(out, ",\"userId\":");
        sbuf_json_str(out, e->user);
        sbuf_puts(out, "}");
    }
    sbuf_puts(out, "]");
}

static void faults_dump_subs(struct sbuf *out, const struct flt_settings *s)
{
    size_t pos = 0;
    const char *key;
    void *val;
    bool first = true;

    sbuf_printf(out,
                ",\"subscriberDelayMs\":%u,\"subscriberDelayJitterMs\":%u,\"subscriberSync\":%s,"
                "\"subscriberErrorShare\":%g,\"subscriberMax\":%u,\"subscriberOutcome\":{",
                s->sub_delay_ms, s->sub_delay_jitter_ms, s->sub_sync ? "true" : "false",
                s->sub_error_share, s->sub_max);
    while (s->outcomes != NULL && smap_next(s->outcomes, &pos, &key, &val)) {
        const struct flt_outcome *o = val;
        if (!first)
            sbuf_puts(out, ",");
        first = false;
        sbuf_json_str(out, o->user);
        sbuf_printf(out, ":{\"status\":\"%s\",\"count\":%u", subs_status_name(o->status), o->count);
        if (o->errors != NULL)
            sbuf_printf(out, ",\"errors\":%s", o->errors);
        sbuf_puts(out, "}");
    }
    sbuf_puts(out, "}");
}

void faults_dump(struct sbuf *out)
{
    const struct flt_settings *s = &flt.set;
    uint64_t now = clk_mono_us();

    pthread_mutex_lock(&flt.mu);
    sbuf_printf(out,
                "{\"latencyMs\":%u,\"latencyJitterMs\":%u,"
                "\"rateLimit\":{\"perSecond\":%g,\"burst\":%g,\"retryAfter\":%u},"
                "\"lockedShare\":%g,\"retryAfter\":%u,\"errorShare\":%g,\"errorCodes\":[",
                s->latency_ms, s->jitter_ms, s->rl_per_sec, s->rl_burst, s->rl_retry_after,
                s->locked_share, s->locked_retry_after, s->error_share);
    for (size_t i = 0; i < s->n_error_codes; i++)
        sbuf_printf(out, "%s%d", i ? "," : "", s->error_codes[i]);
    sbuf_printf(
        out,
        "],\"outage\":{\"remainingMs\":%llu,\"status\":%d,\"retryAfter\":%u},"
        "\"resetShare\":%g,\"retryAfterGraceMs\":%u,\"retryAfterToleranceMs\":%u",
        (unsigned long long)(s->outage_until_us > now ? (s->outage_until_us - now) / 1000u : 0),
        s->outage_status, s->outage_retry_after, s->reset_share, s->ra_grace_ms, s->ra_tol_ms);
    faults_dump_script(out, s->script, s->n_script);
    faults_dump_subs(out, s);
    pthread_mutex_unlock(&flt.mu);
    auth_dump(out);
    sbuf_puts(out, "}");
}

/* ------------------------------------------------------------------------ */
/* decisions                                                                 */

/* Under flt.mu: consume the first script entry matching the request. */
static const struct flt_script *flt_script_take(const char *method, const char *user, bool token,
                                                struct flt_script *copy)
{
    struct flt_settings *s = &flt.set;

    for (size_t i = 0; i < s->n_script; i++) {
        struct flt_script *e = &s->script[i];
        if (e->token != token || (e->method[0] && strcasecmp(e->method, method) != 0) ||
            (e->user && (user == NULL || strcmp(e->user, user) != 0)))
            continue;
        *copy = *e;
        copy->user = NULL;
        if (--e->count == 0) {
            free(e->user);
            memmove(e, e + 1, (s->n_script - i - 1) * sizeof *e);
            s->n_script--;
        }
        return copy;
    }
    return NULL;
}

void faults_pre(const char *method, const char *user, bool token, struct flt_decision *d)
{
    struct flt_settings *s = &flt.set;
    struct flt_script copy;
    const struct flt_script *e;
    uint64_t now = clk_mono_us();

    memset(d, 0, sizeof *d);
    pthread_mutex_lock(&flt.mu);
    d->delay_us = (uint64_t)s->latency_ms * 1000u + rng_below((uint64_t)s->jitter_ms * 1000u + 1);
    e = flt_script_take(method, user, token, &copy);
    if (e != NULL) {
        d->kind = e->reset ? FLT_RESET : FLT_STATUS;
        d->status = e->status;
        d->retry_after = e->retry_after;
        d->delay_us += (uint64_t)e->latency_ms * 1000u;
        d->why = "Simulated failure (scripted)";
    } else if (s->reset_share > 0 && rng_unit() < s->reset_share) {
        d->kind = FLT_RESET;
    } else if (now < s->outage_until_us) {
        d->kind = FLT_STATUS;
        d->status = s->outage_status;
        d->retry_after = s->outage_retry_after;
        d->why = "Service unavailable (simulated outage)";
    }
    pthread_mutex_unlock(&flt.mu);
}

/* Under flt.mu: take one token from the bucket; false when empty. */
static bool flt_rate_take(uint64_t now)
{
    struct flt_settings *s = &flt.set;
    double elapsed = (double)(now - flt.rl_last_us) / 1e6;

    flt.rl_last_us = now;
    flt.rl_tokens += elapsed * s->rl_per_sec;
    if (flt.rl_tokens > s->rl_burst)
        flt.rl_tokens = s->rl_burst;
    if (flt.rl_tokens < 1.0)
        return false;
    flt.rl_tokens -= 1.0;
    return true;
}

void faults_post(struct flt_decision *d)
{
    struct flt_settings *s = &flt.set;
    uint64_t now = clk_mono_us();

    pthread_mutex_lock(&flt.mu);
    if (s->rl_per_sec > 0 && !flt_rate_take(now)) {
        d->kind = FLT_STATUS;
        d->status = 429;
        d->retry_after = s->rl_retry_after;
        d->why = "Too many requests (simulated rate limit)";
    } else if (s->locked_share > 0 && rng_unit() < s->locked_share) {
        d->kind = FLT_STATUS;
        d->status = 423;
        d->retry_after = s->locked_retry_after;
        d->why = "Resource locked (simulated)";
    } else if (s->error_share > 0 && rng_unit() < s->error_share) {
        d->kind = FLT_STATUS;
        d->status = s->error_codes[rng_below(s->n_error_codes)];
        d->retry_after = 0;
        d->why = "Simulated transient error";
    }
    pthread_mutex_unlock(&flt.mu);
}

void faults_retry_after_slack(unsigned *grace_ms, unsigned *tol_ms)
{
    pthread_mutex_lock(&flt.mu);
    *grace_ms = flt.set.ra_grace_ms;
    *tol_ms = flt.set.ra_tol_ms;
    pthread_mutex_unlock(&flt.mu);
}

void faults_sub_config(struct sub_config *c)
{
    pthread_mutex_lock(&flt.mu);
    c->delay_us = (uint64_t)flt.set.sub_delay_ms * 1000u +
                  rng_below((uint64_t)flt.set.sub_delay_jitter_ms * 1000u + 1);
    c->sync = flt.set.sub_sync;
    c->max = flt.set.sub_max;
    pthread_mutex_unlock(&flt.mu);
}

enum sub_status faults_sub_outcome(const char *user, char **errors)
{
    struct flt_settings *s = &flt.set;
    struct flt_outcome *o = NULL, *used_up = NULL;
    enum sub_status st = SUB_PROVISIONED;

    *errors = NULL;
    pthread_mutex_lock(&flt.mu);
    if (user != NULL && s->outcomes != NULL)
        o = smap_get(s->outcomes, user);
    if (o != NULL) {
        st = o->status;
        if (st == SUB_ERROR)
            *errors = strdup(o->errors);
        if (--o->count == 0)
            used_up = smap_del(s->outcomes, user);
    } else if (s->sub_error_share > 0 && rng_unit() < s->sub_error_share) {
        st = SUB_ERROR;
        *errors = strdup(FLT_SUB_DEFAULT_ERRORS);
    }
    pthread_mutex_unlock(&flt.mu);
    if (used_up != NULL) {
        free(used_up->errors);
        free(used_up);
    }
    return st;
}
