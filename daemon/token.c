/* token: the bearer token, read from webex.access_token_file (cred:NAME
 * resolved), re-read after a 401 (single flight: one re-read however many
 * requests saw the 401) and on SIGHUP. The token never leaves this module
 * except inside the Authorization header. */
#include "app.h"

#include "cred.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct token {
    pthread_mutex_t lock;
    char *file;     /* as configured */
    char *value;
    uint64_t gen;   /* bumped on every (re)load */
};

static int load(struct token *t, char *err, size_t errlen)
{
    char *v = cred_read(t->file, err, errlen);
    if (!v)
        return -1;
    if (strpbrk(v, "\r\n")) { /* it goes into a header line */
        snprintf(err, errlen, "%s: token contains a line break", t->file);
        free(v);
        return -1;
    }
    free(t->value);
    t->value = v;
    t->gen++;
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
    t->file = c->webex_access_token_file ? strdup(c->webex_access_token_file) : NULL;
    if (!t->file) {
        snprintf(err, errlen, "webex.access_token_file is not set");
        token_free(t);
        return NULL;
    }
    if (load(t, err, errlen) != 0) {
        token_free(t);
        return NULL;
    }
    return t;
}

void token_free(struct token *t)
{
    if (!t)
        return;
    if (t->value) /* do not leave the secret in freed memory */
        memset(t->value, 0, strlen(t->value));
    free(t->value);
    free(t->file);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int token_header(struct token *t, char *buf, size_t cap, uint64_t *gen)
{
    pthread_mutex_lock(&t->lock);
    int n = snprintf(buf, cap, "Authorization: Bearer %s", t->value ? t->value : "");
    *gen = t->gen;
    pthread_mutex_unlock(&t->lock);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int token_renew(struct token *t, uint64_t gen)
{
    char err[512];
    int rc = 0;

    pthread_mutex_lock(&t->lock);
    if (t->gen == gen) { /* nobody re-read it since this request was sent */
        rc = load(t, err, sizeof(err));
        if (rc != 0)
            log_err("re-reading the access token after 401: %s", err);
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int token_reload(struct token *t, const struct cfg *c)
{
    char err[512];
    int rc = 0;

    pthread_mutex_lock(&t->lock);
    if (c->webex_access_token_file && strcmp(c->webex_access_token_file, t->file) != 0) {
        char *f = strdup(c->webex_access_token_file);
        if (f) {
            free(t->file);
            t->file = f;
        }
    }
    rc = load(t, err, sizeof(err));
    if (rc != 0)
        log_err("reload: access token: %s (keeping the current token)", err);
    pthread_mutex_unlock(&t->lock);
    return rc;
}
