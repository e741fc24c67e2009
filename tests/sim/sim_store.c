/*
 * store_: the simulated workspaces, indexed by id and by BroadWorks userId.
 *
 * One mutex guards both indexes; every operation under it is O(1) apart from
 * the admin dump. Records are allocated and freed outside the lock.
 */
#include "websim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ws_rec {
    char *id;
    char *prov;
    char *user;
    char *sp;
    char *name;
    char *phone; /* may be NULL */
    char *ext;   /* may be NULL */
    char created[32];
};

static struct {
    pthread_mutex_t mu;
    struct smap by_id;   /* id -> ws_rec (key: rec->id) */
    struct smap by_user; /* userId -> ws_rec (key: rec->user) */
    uint64_t created_total;
} store;

/* strdup() that keeps NULL as NULL and reports failure through *ok. */
static char *store_dup(const char *s, bool *ok)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        *ok = false;
    return d;
}

static void store_rec_free(struct ws_rec *r)
{
    if (r == NULL)
        return;
    free(r->id);
    free(r->prov);
    free(r->user);
    free(r->sp);
    free(r->name);
    free(r->phone);
    free(r->ext);
    free(r);
}

/* A workspace id: base64url (no padding) of ciscospark://us/PLACE/<uuid>. */
static char *store_new_id(void)
{
    char uuid[40], uri[80], id[128];

    rng_uuid4(uuid, sizeof uuid);
    snprintf(uri, sizeof uri, "ciscospark://us/PLACE/%s", uuid);
    if (b64url_encode(uri, strlen(uri), id, sizeof id) == 0)
        return NULL;
    return strdup(id);
}

static struct ws_rec *store_rec_new(const struct ws_input *in)
{
    struct ws_rec *r = calloc(1, sizeof *r);
    bool ok = true;

    if (r == NULL)
        return NULL;
    r->id = store_new_id();
    r->prov = store_dup(in->prov, &ok);
    r->user = store_dup(in->user, &ok);
    r->sp = store_dup(in->sp, &ok);
    r->name = store_dup(in->name, &ok);
    r->phone = store_dup(in->phone, &ok);
    r->ext = store_dup(in->ext, &ok);
    clk_utc_iso(r->created, sizeof r->created);
    if (!ok || r->id == NULL || r->user == NULL) {
        store_rec_free(r);
        return NULL;
    }
    return r;
}

/* Workspace JSON, field order as in the API documentation. */
static void store_rec_json(struct sbuf *out, const struct ws_rec *r)
{
    sbuf_puts(out, "{\"id\":");
    sbuf_json_str(out, r->id);
    sbuf_puts(out, ",\"provisioningId\":");
    sbuf_json_str(out, r->prov);
    sbuf_puts(out, ",\"userId\":");
    sbuf_json_str(out, r->user);
    sbuf_puts(out, ",\"spEnterpriseId\":");
    sbuf_json_str(out, r->sp);
    sbuf_puts(out, ",\"displayName\":");
    sbuf_json_str(out, r->name);
    if (r->phone != NULL) {
        sbuf_puts(out, ",\"primaryPhoneNumber\":");
        sbuf_json_str(out, r->phone);
    }
    if (r->ext != NULL) {
        sbuf_puts(out, ",\"extension\":");
        sbuf_json_str(out, r->ext);
    }
    sbuf_puts(out, ",\"created\":");
    sbuf_json_str(out, r->created);
    sbuf_puts(out, "}");
}

int store_init(void)
{
    if (pthread_mutex_init(&store.mu, NULL) != 0)
        return -1;
    smap_init(&store.by_id);
    smap_init(&store.by_user);
    store.created_total = 0;
    return 0;
}

/* Free every record of an index detached from the store. */
static void store_free_all(struct smap *by_id, struct smap *by_user)
{
    size_t pos = 0;
    const char *key;
    void *val;

    while (smap_next(by_id, &pos, &key, &val))
        store_rec_free(val);
    smap_free(by_id);
    smap_free(by_user);
}

void store_fini(void)
{
    store_free_all(&store.by_id, &store.by_user);
    pthread_mutex_destroy(&store.mu);
}

int store_create(const struct ws_input *in, struct sbuf *out, char *id_out, size_t id_outsz)
{
    struct ws_rec *r = store_rec_new(in);
    int status = 200;

    if (r == NULL)
        return 500;
    pthread_mutex_lock(&store.mu);
    if (smap_get(&store.by_user, r->user) != NULL) {
        status = 409;
    } else {
        /* A uuid v4 collision is next to impossible, but cheap to rule out. */
        while (smap_get(&store.by_id, r->id) != NULL) {
            char *id = store_new_id();
            if (id == NULL)
                break;
            free(r->id);
            r->id = id;
        }
        if (!smap_put(&store.by_id, r->id, r)) {
            status = 500;
        } else if (!smap_put(&store.by_user, r->user, r)) {
            (void)smap_del(&store.by_id, r->id);
            status = 500;
        } else {
            store.created_total++;
            store_rec_json(out, r);
            snprintf(id_out, id_outsz, "%s", r->id);
        }
    }
    pthread_mutex_unlock(&store.mu);
    if (status != 200)
        store_rec_free(r);
    return status;
}

/* Update an optional field from *nval: NULL leaves it unchanged, "" clears
 * it, anything else replaces it (and is consumed: *nval set to NULL). */
static void store_set_optional(char **field, char **nval)
{
    if (*nval == NULL)
        return;
    free(*field);
    *field = NULL;
    if ((*nval)[0] != '\0') {
        *field = *nval;
        *nval = NULL;
    }
}

/* Under store.mu: apply an update whose new strings are already allocated
 * (NULL: unchanged; phone/ext "": cleared). Consumes *nuser, *nphone and
 * *next when it stores them (sets them to NULL). */
static int store_apply_update(struct ws_rec *r, char **nuser, char **nphone, char **next)
{
    if (*nuser != NULL && strcmp(r->user, *nuser) != 0) {
        struct ws_rec *other = smap_get(&store.by_user, *nuser);
        if (other != NULL && other != r)
            return 409;
        /* Rename: move the userId index entry. Deleting first keeps the
         * count unchanged, so the put cannot need to grow and fail. */
        if (smap_get(&store.by_user, r->user) == r)
            (void)smap_del(&store.by_user, r->user);
        free(r->user);
        r->user = *nuser;
        *nuser = NULL;
        if (!smap_put(&store.by_user, r->user, r))
            return 500;
    }
    store_set_optional(&r->phone, nphone);
    store_set_optional(&r->ext, next);
    return 200;
}

int store_update(const char *id, const char *user, const char *phone, const char *ext,
                 struct sbuf *out)
{
    bool ok = true;
    char *nuser = store_dup(user, &ok);
    char *nphone = store_dup(phone, &ok);
    char *next = store_dup(ext, &ok);
    struct ws_rec *r;
    int status = 500;

    if (ok) {
        pthread_mutex_lock(&store.mu);
        r = smap_get(&store.by_id, id);
        if (r == NULL) {
            status = 404;
        } else {
            status = store_apply_update(r, &nuser, &nphone, &next);
            if (status == 200)
                store_rec_json(out, r);
        }
        pthread_mutex_unlock(&store.mu);
    }
    free(nuser);
    free(nphone);
    free(next);
    return status;
}

int store_delete(const char *id)
{
    struct ws_rec *r;

    pthread_mutex_lock(&store.mu);
    r = smap_del(&store.by_id, id);
    if (r != NULL && smap_get(&store.by_user, r->user) == r)
        (void)smap_del(&store.by_user, r->user);
    pthread_mutex_unlock(&store.mu);
    if (r == NULL)
        return 404;
    store_rec_free(r);
    return 204;
}

char *store_user_of(const char *id)
{
    struct ws_rec *r;
    char *user = NULL;

    pthread_mutex_lock(&store.mu);
    r = smap_get(&store.by_id, id);
    if (r != NULL)
        user = strdup(r->user);
    pthread_mutex_unlock(&store.mu);
    return user;
}

void store_dump(struct sbuf *out)
{
    size_t pos = 0;
    const char *key;
    void *val;
    bool first = true;

    sbuf_puts(out, "{\"workspaces\":[");
    pthread_mutex_lock(&store.mu);
    while (smap_next(&store.by_id, &pos, &key, &val)) {
        if (!first)
            sbuf_puts(out, ",");
        first = false;
        store_rec_json(out, val);
    }
    sbuf_printf(out, "],\"count\":%zu,\"created_total\":%llu}", store.by_id.count,
                (unsigned long long)store.created_total);
    pthread_mutex_unlock(&store.mu);
}

void store_counts(uint64_t *count, uint64_t *created_total)
{
    pthread_mutex_lock(&store.mu);
    *count = store.by_id.count;
    *created_total = store.created_total;
    pthread_mutex_unlock(&store.mu);
}

void store_reset(void)
{
    struct smap by_id, by_user;

    pthread_mutex_lock(&store.mu);
    by_id = store.by_id;
    by_user = store.by_user;
    smap_init(&store.by_id);
    smap_init(&store.by_user);
    store.created_total = 0;
    pthread_mutex_unlock(&store.mu);
    store_free_all(&by_id, &by_user);
}
