/*
 * auth_: bearer-token checks, token-expiry faults and POST /v1/access_token.
 *
 * Valid access tokens are the --token ones (or any non-empty token when none
 * was given) plus the ones this simulator issued, until a tokenExpiry fault
 * fires: then only tokens issued after it are valid. Issued tokens also expire
 * after their expires_in. All state is behind one mutex; checks are a few
 * strcmp() of a small table.
 */
#include "websim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_MAX_CONFIGURED 64         /* --token */
#define AUTH_MAX_ISSUED 64             /* ring of issued access tokens */
#define AUTH_MAX_REFRESH 16            /* ring of valid refresh tokens */
#define AUTH_TOKEN_SIZE 256            /* longest token + 1 */
#define AUTH_FIELD_SIZE 512            /* longest decoded form field + 1 */
#define AUTH_DEFAULT_ACCESS_S 1209600  /* 14 days, like Webex */
#define AUTH_DEFAULT_REFRESH_S 7776000 /* 90 days */

struct auth_tok {
    char tok[AUTH_TOKEN_SIZE]; /* "" : unused slot */
    uint64_t exp_us;           /* monotonic; 0: never */
};

static struct {
    pthread_mutex_t mu;
    /* from the command line */
    char configured[AUTH_MAX_CONFIGURED][AUTH_TOKEN_SIZE];
    size_t n_configured;
    bool any_refresh;
    char client_id[AUTH_FIELD_SIZE];     /* "": any */
    char client_secret[AUTH_FIELD_SIZE]; /* "": any */
    /* live state */
    bool configured_valid; /* cleared by a tokenExpiry */
    struct auth_tok issued[AUTH_MAX_ISSUED];
    size_t issued_next;
    struct auth_tok refresh[AUTH_MAX_REFRESH];
    size_t refresh_next;
    int64_t expire_after; /* tokenExpiry afterRequests countdown, -1: none */
    int64_t access_life_s;
    int64_t refresh_life_s;
    bool rotate; /* a refresh invalidates the refresh token it used */
} au;

int auth_init(const struct auth_config *cfg)
{
    if (cfg->n_tokens > AUTH_MAX_CONFIGURED)
        return -1;
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        if (strlen(cfg->tokens[i]) >= AUTH_TOKEN_SIZE || cfg->tokens[i][0] == '\0')
            return -1;
        snprintf(au.configured[i], AUTH_TOKEN_SIZE, "%s", cfg->tokens[i]);
    }
    au.n_configured = cfg->n_tokens;
    au.configured_valid = true;
    au.any_refresh = cfg->refresh_token == NULL;
    if (cfg->refresh_token != NULL) {
        if (strlen(cfg->refresh_token) >= AUTH_TOKEN_SIZE || cfg->refresh_token[0] == '\0')
            return -1;
        snprintf(au.refresh[0].tok, AUTH_TOKEN_SIZE, "%s", cfg->refresh_token);
        au.refresh_next = 1;
    }
    if ((cfg->client_id && strlen(cfg->client_id) >= AUTH_FIELD_SIZE) ||
        (cfg->client_secret && strlen(cfg->client_secret) >= AUTH_FIELD_SIZE))
        return -1;
    snprintf(au.client_id, sizeof au.client_id, "%s", cfg->client_id ? cfg->client_id : "");
    snprintf(au.client_secret, sizeof au.client_secret, "%s",
             cfg->client_secret ? cfg->client_secret : "");
    au.expire_after = -1;
    au.access_life_s = AUTH_DEFAULT_ACCESS_S;
    au.refresh_life_s = AUTH_DEFAULT_REFRESH_S;
    au.rotate = false;
    return pthread_mutex_init(&au.mu, NULL) == 0 ? 0 : -1;
}

void auth_fini(void)
{
    pthread_mutex_destroy(&au.mu);
}

/* Under au.mu: is tok in table[0..n) and not expired? */
static bool auth_in_table(const struct auth_tok *table, size_t n, const char *tok, uint64_t now)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].tok[0] != '\0' && strcmp(table[i].tok, tok) == 0)
            return table[i].exp_us == 0 || now < table[i].exp_us;
    }
    return false;
}

/* Under au.mu: is this bearer token currently valid? */
static bool auth_token_valid(const char *tok, uint64_t now)
{
    if (au.configured_valid) {
        if (au.n_configured == 0)
            return true;
        for (size_t i = 0; i < au.n_configured; i++) {
            if (strcmp(au.configured[i], tok) == 0)
                return true;
        }
    }
    return auth_in_table(au.issued, AUTH_MAX_ISSUED, tok, now);
}

/* Under au.mu: every token known so far stops working. */
static void auth_expire_locked(void)
{
    au.configured_valid = false;
    memset(au.issued, 0, sizeof au.issued);
    au.issued_next = 0;
    au.expire_after = -1;
}

/* Extract the token of "Bearer <token>" into tok; false when malformed. */
static bool auth_parse_bearer(const char *h, char *tok, size_t toksz)
{
    size_t n;

    if (h == NULL)
        return false;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return false;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0)
        return false;
    if (n >= toksz) /* longer than any token we know: keep a prefix */
        n = toksz - 1;
    memcpy(tok, h, n);
    tok[n] = '\0';
    return true;
}

bool auth_check(const char *authorization)
{
    char tok[AUTH_TOKEN_SIZE + 1];
    bool ok;

    /* A prefix one byte longer than any valid token can never match one. */
    if (!auth_parse_bearer(authorization, tok, sizeof tok))
        return false;
    pthread_mutex_lock(&au.mu);
    ok = auth_token_valid(tok, clk_mono_us());
    if (ok && au.expire_after >= 0) {
        if (au.expire_after == 0) {
            auth_expire_locked();
            ok = false;
        } else {
            au.expire_after--;
        }
    }
    pthread_mutex_unlock(&au.mu);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* POST /v1/access_token                                                     */

struct auth_form {
    char grant_type[AUTH_FIELD_SIZE];
    char client_id[AUTH_FIELD_SIZE];
    char client_secret[AUTH_FIELD_SIZE];
    char refresh_token[AUTH_FIELD_SIZE];
};

/* Parse an application/x-www-form-urlencoded body into the four fields we
 * know (others are ignored). */
static bool auth_parse_form(const char *body, size_t len, struct auth_form *f)
{
    const char *p = body, *end = body + len;

    memset(f, 0, sizeof *f);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        char key[64], *dst = NULL;

        if (eq != NULL && pct_decode(p, (size_t)(eq - p), true, key, sizeof key)) {
            if (strcmp(key, "grant_type") == 0)
                dst = f->grant_type;
            else if (strcmp(key, "client_id") == 0)
                dst = f->client_id;
            else if (strcmp(key, "client_secret") == 0)
                dst = f->client_secret;
            else if (strcmp(key, "refresh_token") == 0)
                dst = f->refresh_token;
        }
        if (dst != NULL && !pct_decode(eq + 1, (size_t)(pe - eq - 1), true, dst, AUTH_FIELD_SIZE))
            return false;
        p = pe + 1;
    }
    return true;
}

/* Under au.mu: add tok to a ring table. */
static void auth_ring_add(struct auth_tok *table, size_t n, size_t *next, const char *tok,
                          uint64_t exp_us)
{
    struct auth_tok *t = &table[*next % n];

    snprintf(t->tok, sizeof t->tok, "%s", tok);
    t->exp_us = exp_us;
    *next = (*next + 1) % n;
}

/* Check the form; returns 0 when it is acceptable, else the status. */
static int auth_check_form(const struct auth_form *f, const char **errmsg)
{
    if (strcmp(f->grant_type, "refresh_token") != 0) {
        *errmsg = "grant_type must be refresh_token";
        return 400;
    }
    if (f->client_id[0] == '\0' || f->client_secret[0] == '\0' || f->refresh_token[0] == '\0') {
        *errmsg = "client_id, client_secret and refresh_token are required";
        return 400;
    }
    if ((au.client_id[0] != '\0' && strcmp(au.client_id, f->client_id) != 0) ||
        (au.client_secret[0] != '\0' && strcmp(au.client_secret, f->client_secret) != 0)) {
        *errmsg = "invalid client credentials";
        return 401;
    }
    return 0;
}

int auth_refresh(const char *body, size_t len, struct sbuf *out, const char **errmsg)
{
    struct auth_form f;
    char access[96], refresh[96];
    int64_t access_s, refresh_s;
    uint64_t now = clk_mono_us();
    int status;

    if (!auth_parse_form(body, len, &f)) {
        *errmsg = "malformed form body";
        return 400;
    }
    rng_token(access, sizeof access, 48);
    rng_token(refresh, sizeof refresh, 48);
    pthread_mutex_lock(&au.mu);
    status = auth_check_form(&f, errmsg);
    if (status == 0 && !au.any_refresh &&
        !auth_in_table(au.refresh, AUTH_MAX_REFRESH, f.refresh_token, now)) {
        *errmsg = "invalid refresh token";
        status = 401;
    }
    access_s = au.access_life_s;
    refresh_s = au.refresh_life_s;
    if (status == 0) {
        auth_ring_add(au.issued, AUTH_MAX_ISSUED, &au.issued_next, access,
                      now + (uint64_t)access_s * 1000000u);
        if (au.rotate) {
            memset(au.refresh, 0, sizeof au.refresh);
            au.refresh_next = 0;
            au.any_refresh = false;
        }
        auth_ring_add(au.refresh, AUTH_MAX_REFRESH, &au.refresh_next, refresh,
                      now + (uint64_t)refresh_s * 1000000u);
        status = 200;
    }
    pthread_mutex_unlock(&au.mu);
    if (status != 200)
        return status;
    sbuf_printf(out,
                "{\"access_token\":\"%s\",\"expires_in\":%lld,\"refresh_token\":\"%s\","
                "\"refresh_token_expires_in\":%lld,\"token_type\":\"Bearer\"}",
                access, (long long)access_s, refresh, (long long)refresh_s);
    return 200;
}

/* ------------------------------------------------------------------------ */
/* fault settings                                                            */

void auth_expire_now(void)
{
    pthread_mutex_lock(&au.mu);
    auth_expire_locked();
    pthread_mutex_unlock(&au.mu);
}

void auth_expire_after(int64_t n)
{
    pthread_mutex_lock(&au.mu);
    au.expire_after = n;
    pthread_mutex_unlock(&au.mu);
}

void auth_set_lifetimes(int64_t access_s, int64_t refresh_s)
{
    pthread_mutex_lock(&au.mu);
    if (access_s > 0)
        au.access_life_s = access_s;
    if (refresh_s > 0)
        au.refresh_life_s = refresh_s;
    pthread_mutex_unlock(&au.mu);
}

void auth_set_rotate(bool rotate)
{
    pthread_mutex_lock(&au.mu);
    au.rotate = rotate;
    pthread_mutex_unlock(&au.mu);
}

void auth_defaults(void)
{
    pthread_mutex_lock(&au.mu);
    au.configured_valid = true;
    au.expire_after = -1;
    au.access_life_s = AUTH_DEFAULT_ACCESS_S;
    au.refresh_life_s = AUTH_DEFAULT_REFRESH_S;
    au.rotate = false;
    pthread_mutex_unlock(&au.mu);
}

void auth_dump(struct sbuf *out)
{
    pthread_mutex_lock(&au.mu);
    if (au.expire_after >= 0)
        sbuf_printf(out, ",\"tokenExpiry\":{\"afterRequests\":%lld}", (long long)au.expire_after);
    else
        sbuf_puts(out, ",\"tokenExpiry\":null");
    sbuf_printf(out,
                ",\"tokensExpired\":%s,\"tokenLifetimeS\":%lld,\"refreshTokenLifetimeS\":%lld,"
                "\"refreshRotate\":%s",
                au.configured_valid ? "false" : "true", (long long)au.access_life_s,
                (long long)au.refresh_life_s, au.rotate ? "true" : "false");
    pthread_mutex_unlock(&au.mu);
}
