/*
 * subs_: the simulated BroadWorks subscribers.
 *
 * Indexed by id and by userId, kept in creation order (the list's order and
 * its cursor), and with a min-heap of the pending transitions (provisioning
 * or updating -> the final status) ordered by when they are due. There is no
 * thread for the transitions: every operation first applies those that are
 * due (subs_advance), so a client or a test sees them as if they had happened
 * on time, and lastStatusChange says when they were due.
 *
 * A PUT's changes wait in the record (pend[]) until its transition; a rename's
 * new userId is indexed from the PUT on, so no other subscriber can take it
 * meanwhile, and is released again when the update ends in error.
 *
 * One mutex guards everything. Records are built and freed outside it. The
 * final status is drawn from faults_ under it (lock order: subs, then
 * faults), so a refused request does not use up an injected outcome.
 */
#include "websim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SUBS_NO_HEAP SIZE_MAX
/* Below this many creation-order slots, deleted ones are never compacted. */
#define SUBS_COMPACT_MIN 64u

struct sub_rec {
    char *id;
    char *person;     /* personId: NULL until first provisioned */
    char *f[SF_N];    /* NULL: not set */
    char *pend[SF_N]; /* a PUT's changes: NULL unchanged, "" cleared */
    char *errors;     /* errors[] JSON while in status error */
    char *fin_errors; /* errors[] of the pending final status */
    enum sub_status status;
    enum sub_status fin; /* final status of the pending transition */
    int64_t created_ms;
    int64_t changed_ms;
    int64_t due_ms;  /* wall-clock time the transition is due */
    uint64_t due_us; /* the same on the monotonic clock */
    uint64_t seq;    /* creation order, from 1 */
    size_t heap_idx; /* SUBS_NO_HEAP: no transition pending */
};

/* A creation-order slot; r NULL once the subscriber is gone. */
struct sub_slot {
    uint64_t seq;
    struct sub_rec *r;
};

static struct {
    pthread_mutex_t mu;
    struct smap by_id;   /* id -> rec (key: rec->id) */
    struct smap by_user; /* userId -> rec (key: rec->f[SF_USER] or rec->pend[SF_USER]) */
    struct sub_slot *ord;
    size_t ord_len, ord_cap, ord_dead;
    struct sub_rec **heap;
    size_t heap_len, heap_cap;
    uint64_t next_seq;
    uint64_t created_total;
    uint64_t by_status[SUB_NSTATUS];
} subs;

static const char *const subs_status_names[SUB_NSTATUS] = {
    "pending_email_input",
    "pending_email_validation",
    "pending_user_migration",
    "provisioning",
    "provisioned",
    "updating",
    "error",
};

static const char *const subs_field_names[SF_N] = {
    "userId",  "spEnterpriseId",     "firstName",         "lastName",
    "email",   "primaryPhoneNumber", "mobilePhoneNumber", "extension",
    "package", "language",           "timezone",          "provisioningId",
};

const char *subs_status_name(enum sub_status st)
{
    return (unsigned)st < SUB_NSTATUS ? subs_status_names[st] : NULL;
}

bool subs_status_parse(const char *s, size_t n, enum sub_status *out)
{
    for (unsigned i = 0; i < SUB_NSTATUS; i++) {
        if (strlen(subs_status_names[i]) == n && strncmp(subs_status_names[i], s, n) == 0) {
            *out = (enum sub_status)i;
            return true;
        }
    }
    return false;
}

const char *subs_field_name(enum sub_field f)
{
    return (unsigned)f < SF_N ? subs_field_names[f] : NULL;
}

/* ------------------------------------------------------------------------ */
/* records                                                                   */

/* A Webex id: base64url (no padding) of ciscospark://us/<kind>/<uuid v4>. */
static char *subs_new_id(const char *kind)
{
    char uuid[40], uri[96], id[160];

    rng_uuid4(uuid, sizeof uuid);
    snprintf(uri, sizeof uri, "ciscospark://us/%s/%s", kind, uuid);
    if (b64url_encode(uri, strlen(uri), id, sizeof id) == 0)
        return NULL;
    return strdup(id);
}

static void subs_free_fields(char **f)
{
    for (int i = 0; i < SF_N; i++) {
        free(f[i]);
        f[i] = NULL;
    }
}

static void subs_rec_free(struct sub_rec *r)
{
    if (r == NULL)
        return;
    free(r->id);
    free(r->person);
    subs_free_fields(r->f);
    subs_free_fields(r->pend);
    free(r->errors);
    free(r->fin_errors);
    free(r);
}

/* Copy the given fields of in into f (NULL stays NULL). */
static bool subs_dup_fields(const struct sub_input *in, char **f)
{
    bool ok = true;

    for (int i = 0; i < SF_N; i++) {
        f[i] = NULL;
        if (in->f[i] != NULL && (f[i] = strdup(in->f[i])) == NULL)
            ok = false;
    }
    return ok;
}

static struct sub_rec *subs_rec_new(const struct sub_input *in)
{
    struct sub_rec *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->heap_idx = SUBS_NO_HEAP;
    r->id = subs_new_id("SUBSCRIBER");
    if (!subs_dup_fields(in, r->f) || r->id == NULL || r->f[SF_USER] == NULL) {
        subs_rec_free(r);
        return NULL;
    }
    return r;
}

/* Subscriber JSON, members in the order of the OpenAPI examples. */
static void subs_rec_json_members(struct sbuf *out, const struct sub_rec *r)
{
    char created[32], changed[32];

    clk_iso_of_ms(r->created_ms, created, sizeof created);
    clk_iso_of_ms(r->changed_ms, changed, sizeof changed);
    sbuf_puts(out, "{\"id\":");
    sbuf_json_str(out, r->id);
    if (r->person != NULL) {
        sbuf_puts(out, ",\"personId\":");
        sbuf_json_str(out, r->person);
    }
    for (int i = 0; i < SF_PROV; i++) {
        if (r->f[i] != NULL) {
            sbuf_printf(out, ",\"%s\":", subs_field_names[i]);
            sbuf_json_str(out, r->f[i]);
        }
    }
    sbuf_printf(out, ",\"status\":\"%s\"", subs_status_names[r->status]);
    if (r->status == SUB_ERROR)
        sbuf_printf(out, ",\"errors\":%s", r->errors != NULL ? r->errors : "[]");
    sbuf_printf(out, ",\"created\":\"%s\",\"lastStatusChange\":\"%s\",\"provisioningId\":", created,
                changed);
    sbuf_json_str(out, r->f[SF_PROV]);
    /* A string, as in every example of the OpenAPI (its schema says boolean). */
    sbuf_puts(out, ",\"selfActivated\":\"false\"");
}

static void subs_rec_json(struct sbuf *out, const struct sub_rec *r)
{
    subs_rec_json_members(out, r);
    sbuf_puts(out, "}");
}

/* The admin form: the API object plus the pending transition, if any. */
static void subs_rec_admin_json(struct sbuf *out, const struct sub_rec *r, uint64_t now_us)
{
    bool first = true;

    subs_rec_json_members(out, r);
    if (r->heap_idx != SUBS_NO_HEAP) {
        sbuf_printf(out, ",\"pending\":{\"status\":\"%s\",\"dueInMs\":%llu,\"changes\":{",
                    subs_status_names[r->fin],
                    (unsigned long long)(r->due_us > now_us ? (r->due_us - now_us) / 1000u : 0));
        for (int i = 0; i < SF_N; i++) {
            if (r->pend[i] == NULL)
                continue;
            sbuf_printf(out, "%s\"%s\":", first ? "" : ",", subs_field_names[i]);
            sbuf_json_str(out, r->pend[i]);
            first = false;
        }
        sbuf_puts(out, "}}");
    }
    sbuf_puts(out, "}");
}

/* ------------------------------------------------------------------------ */
/* the heap of pending transitions (under subs.mu)                           */

static bool subs_heap_less(size_t a, size_t b)
{
    return subs.heap[a]->due_us < subs.heap[b]->due_us;
}

static void subs_heap_swap(size_t a, size_t b)
{
    struct sub_rec *t = subs.heap[a];

    subs.heap[a] = subs.heap[b];
    subs.heap[b] = t;
    subs.heap[a]->heap_idx = a;
    subs.heap[b]->heap_idx = b;
}

static void subs_heap_up(size_t i)
{
    while (i > 0 && subs_heap_less(i, (i - 1) / 2)) {
        subs_heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void subs_heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < subs.heap_len && subs_heap_less(l, m))
            m = l;
        if (l + 1 < subs.heap_len && subs_heap_less(l + 1, m))
            m = l + 1;
        if (m == i)
            return;
        subs_heap_swap(i, m);
        i = m;
    }
}

/* Make room for one more entry, so that a push cannot fail. */
static bool subs_heap_reserve(void)
{
    void *heap = subs.heap;
    bool ok = arr_reserve(&heap, &subs.heap_cap, subs.heap_len, sizeof *subs.heap, 64);

    subs.heap = heap;
    return ok;
}

static void subs_heap_push(struct sub_rec *r)
{
    subs.heap[subs.heap_len] = r;
    r->heap_idx = subs.heap_len++;
    subs_heap_up(r->heap_idx);
}

static void subs_heap_remove(struct sub_rec *r)
{
    size_t i = r->heap_idx, last;

    if (i == SUBS_NO_HEAP)
        return;
    last = --subs.heap_len;
    if (i != last) {
        subs.heap[i] = subs.heap[last];
        subs.heap[i]->heap_idx = i;
        if (i > 0 && subs_heap_less(i, (i - 1) / 2))
            subs_heap_up(i);
        else
            subs_heap_down(i);
    }
    r->heap_idx = SUBS_NO_HEAP;
}

/* ------------------------------------------------------------------------ */
/* creation order (under subs.mu)                                            */

static bool subs_ord_reserve(void)
{
    void *ord = subs.ord;
    bool ok = arr_reserve(&ord, &subs.ord_cap, subs.ord_len, sizeof *subs.ord, 1024);

    subs.ord = ord;
    return ok;
}

/* Index of the first slot with seq > after (slots are sorted by seq). */
static size_t subs_ord_after(uint64_t after)
{
    size_t lo = 0, hi = subs.ord_len;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (subs.ord[mid].seq <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Squeeze out the slots of deleted subscribers once they are the majority,
 * so the list scans and the memory follow the live count, not the churn. */
static void subs_ord_compact(void)
{
    size_t o = 0;

    if (subs.ord_len < SUBS_COMPACT_MIN || subs.ord_dead * 2 <= subs.ord_len)
        return;
    for (size_t i = 0; i < subs.ord_len; i++) {
        if (subs.ord[i].r != NULL)
            subs.ord[o++] = subs.ord[i];
    }
    subs.ord_len = o;
    subs.ord_dead = 0;
}

static void subs_ord_remove(const struct sub_rec *r)
{
    size_t i = subs_ord_after(r->seq - 1);

    if (i < subs.ord_len && subs.ord[i].r == r) {
        subs.ord[i].r = NULL;
        subs.ord_dead++;
        subs_ord_compact();
    }
}

/* ------------------------------------------------------------------------ */
/* transitions (under subs.mu)                                               */

static void subs_set_status(struct sub_rec *r, enum sub_status st, int64_t when_ms)
{
    subs.by_status[r->status]--;
    subs.by_status[st]++;
    r->status = st;
    r->changed_ms = when_ms;
}

/* The update succeeded: its changes take effect (a rename's new userId has
 * been indexed since the PUT; the old one goes now). */
static void subs_apply_pending(struct sub_rec *r)
{
    if (r->pend[SF_USER] != NULL) {
        if (smap_get(&subs.by_user, r->f[SF_USER]) == r)
            (void)smap_del(&subs.by_user, r->f[SF_USER]);
        free(r->f[SF_USER]);
        r->f[SF_USER] = r->pend[SF_USER];
        r->pend[SF_USER] = NULL;
    }
    for (int i = 0; i < SF_N; i++) {
        if (r->pend[i] == NULL)
            continue;
        free(r->f[i]);
        r->f[i] = r->pend[i][0] != '\0' ? r->pend[i] : NULL;
        if (r->f[i] == NULL)
            free(r->pend[i]);
        r->pend[i] = NULL;
    }
}

/* The update failed: its changes are dropped and a reserved userId freed. */
static void subs_drop_pending(struct sub_rec *r)
{
    if (r->pend[SF_USER] != NULL && smap_get(&subs.by_user, r->pend[SF_USER]) == r)
        (void)smap_del(&subs.by_user, r->pend[SF_USER]);
    subs_free_fields(r->pend);
}

static void subs_finish(struct sub_rec *r)
{
    if (r->fin == SUB_ERROR)
        subs_drop_pending(r);
    else
        subs_apply_pending(r);
    if (r->fin == SUB_PROVISIONED && r->person == NULL)
        r->person = subs_new_id("PEOPLE"); /* stays absent if out of memory */
    free(r->errors);
    r->errors = r->fin_errors;
    r->fin_errors = NULL;
    subs_set_status(r, r->fin, r->due_ms);
}

/* Apply every transition due by now. */
static void subs_advance(uint64_t now_us)
{
    while (subs.heap_len > 0 && subs.heap[0]->due_us <= now_us) {
        struct sub_rec *r = subs.heap[0];
        subs_heap_remove(r);
        subs_finish(r);
    }
}

/* Start r's transition to the final status drawn for user (its current
 * userId). With cfg->sync it is over at once. The heap has room. */
static void subs_plan(struct sub_rec *r, const char *user, const struct sub_config *cfg,
                      uint64_t now_us, int64_t now_ms)
{
    r->fin = faults_sub_outcome(user, &r->fin_errors);
    r->due_us = now_us + cfg->delay_us;
    r->due_ms = now_ms + (int64_t)(cfg->delay_us / 1000u);
    if (cfg->sync) {
        r->due_ms = now_ms;
        subs_finish(r);
    } else {
        subs_heap_push(r);
    }
}

/* Take r out of every index; the caller frees it. */
static void subs_unindex(struct sub_rec *r)
{
    (void)smap_del(&subs.by_id, r->id);
    if (smap_get(&subs.by_user, r->f[SF_USER]) == r)
        (void)smap_del(&subs.by_user, r->f[SF_USER]);
    if (r->pend[SF_USER] != NULL && smap_get(&subs.by_user, r->pend[SF_USER]) == r)
        (void)smap_del(&subs.by_user, r->pend[SF_USER]);
    subs_heap_remove(r);
    subs_ord_remove(r);
    subs.by_status[r->status]--;
}

/* ------------------------------------------------------------------------ */
/* operations                                                                */

/* An empty store (what it held is the caller's to free); the creation
 * sequence goes on. */
static void subs_empty(void)
{
    smap_init(&subs.by_id);
    smap_init(&subs.by_user);
    subs.ord = NULL;
    subs.ord_len = subs.ord_cap = subs.ord_dead = 0;
    subs.heap = NULL;
    subs.heap_len = subs.heap_cap = 0;
    subs.created_total = 0;
    memset(subs.by_status, 0, sizeof subs.by_status);
}

int subs_init(void)
{
    if (pthread_mutex_init(&subs.mu, NULL) != 0)
        return -1;
    subs_empty();
    subs.next_seq = 1;
    return 0;
}

/* Free every record of a creation-order array detached from the store. */
static void subs_free_all(struct sub_slot *ord, size_t len)
{
    for (size_t i = 0; i < len; i++)
        subs_rec_free(ord[i].r);
    free(ord);
}

void subs_fini(void)
{
    subs_free_all(subs.ord, subs.ord_len);
    smap_free(&subs.by_id);
    smap_free(&subs.by_user);
    free(subs.heap);
    pthread_mutex_destroy(&subs.mu);
}

/* Store r (status provisioning) unless its userId is taken or the store is
 * full. A subscriber in error holding the userId is replaced: unindexed into
 * *old for the caller to free. */
static int subs_admit(struct sub_rec *r, const struct sub_config *cfg, struct sub_rec **old)
{
    struct sub_rec *o = smap_get(&subs.by_user, r->f[SF_USER]);

    if (o != NULL && o->status != SUB_ERROR)
        return 409;
    if (o == NULL && subs.by_id.count >= cfg->max)
        return 507;
    if (!subs_ord_reserve() || !subs_heap_reserve())
        return 500;
    /* A uuid v4 collision is next to impossible, but cheap to rule out. */
    while (smap_get(&subs.by_id, r->id) != NULL) {
        char *id = subs_new_id("SUBSCRIBER");
        if (id == NULL)
            return 500;
        free(r->id);
        r->id = id;
    }
    if (!smap_put(&subs.by_id, r->id, r))
        return 500;
    if (!smap_put(&subs.by_user, r->f[SF_USER], r)) { /* replaces o's entry */
        (void)smap_del(&subs.by_id, r->id);
        return 500;
    }
    if (o != NULL) {
        subs_unindex(o);
        *old = o;
    }
    r->seq = subs.next_seq++;
    subs.ord[subs.ord_len++] = (struct sub_slot){r->seq, r};
    r->status = SUB_PROVISIONING;
    subs.by_status[SUB_PROVISIONING]++;
    subs.created_total++;
    return 200;
}

int subs_create(const struct sub_input *in, const struct sub_config *cfg, struct sbuf *out,
                char *id_out, size_t id_outsz)
{
    struct sub_rec *r = subs_rec_new(in), *old = NULL;
    uint64_t now_us = clk_mono_us();
    int64_t now_ms = clk_wall_ms();
    int status;

    if (r == NULL)
        return 500;
    r->created_ms = r->changed_ms = now_ms;
    pthread_mutex_lock(&subs.mu);
    subs_advance(now_us);
    status = subs_admit(r, cfg, &old);
    if (status == 200) {
        subs_plan(r, r->f[SF_USER], cfg, now_us, now_ms);
        subs_rec_json(out, r);
        snprintf(id_out, id_outsz, "%s", r->id);
    }
    pthread_mutex_unlock(&subs.mu);
    if (status != 200)
        subs_rec_free(r);
    subs_rec_free(old);
    return status;
}

/* Would the update leave neither primaryPhoneNumber nor extension? Only
 * checked when it clears one of them: the OpenAPI says a user must keep one,
 * and a POST may create a subscriber with neither. */
static bool subs_loses_number(const struct sub_rec *r, char *const *nv)
{
    bool clears = (nv[SF_PHONE] != NULL && nv[SF_PHONE][0] == '\0') ||
                  (nv[SF_EXT] != NULL && nv[SF_EXT][0] == '\0');
    const char *phone = nv[SF_PHONE] != NULL ? nv[SF_PHONE] : r->f[SF_PHONE];
    const char *ext = nv[SF_EXT] != NULL ? nv[SF_EXT] : r->f[SF_EXT];

    return clears && (phone == NULL || phone[0] == '\0') && (ext == NULL || ext[0] == '\0');
}

/* May r take the update nv now? A userId equal to the current one is no
 * rename (dropped from nv). */
static int subs_check_update(const struct sub_rec *r, char **nv, uint64_t now_us,
                             unsigned *retry_after)
{
    struct sub_rec *other;

    if (r->heap_idx != SUBS_NO_HEAP) {
        uint64_t left = r->due_us > now_us ? r->due_us - now_us : 0;
        *retry_after = (unsigned)((left + 999999u) / 1000000u);
        if (*retry_after == 0)
            *retry_after = 1;
        if (*retry_after > SIM_MAX_RETRY_AFTER)
            *retry_after = SIM_MAX_RETRY_AFTER;
        return 423;
    }
    if (subs_loses_number(r, nv))
        return 400;
    if (nv[SF_USER] != NULL && strcmp(nv[SF_USER], r->f[SF_USER]) == 0) {
        free(nv[SF_USER]);
        nv[SF_USER] = NULL;
    }
    if (nv[SF_USER] != NULL) {
        other = smap_get(&subs.by_user, nv[SF_USER]);
        if (other != NULL && other != r)
            return 409;
    }
    return 200;
}

/* Put r in status updating with the changes nv waiting (taken from nv). */
static int subs_start_update(struct sub_rec *r, char **nv, int64_t now_ms)
{
    if (!subs_heap_reserve())
        return 500;
    if (nv[SF_USER] != NULL && !smap_put(&subs.by_user, nv[SF_USER], r))
        return 500;
    for (int i = 0; i < SF_N; i++) {
        r->pend[i] = nv[i];
        nv[i] = NULL;
    }
    free(r->errors);
    r->errors = NULL;
    subs_set_status(r, SUB_UPDATING, now_ms);
    return 200;
}

int subs_update(const char *id, const struct sub_input *in, const struct sub_config *cfg,
                struct sbuf *out, unsigned *retry_after)
{
    char *nv[SF_N];
    bool ok = subs_dup_fields(in, nv);
    uint64_t now_us = clk_mono_us();
    int64_t now_ms = clk_wall_ms();
    struct sub_rec *r;
    int status = 500;

    pthread_mutex_lock(&subs.mu);
    subs_advance(now_us);
    r = smap_get(&subs.by_id, id);
    if (r == NULL)
        status = 404;
    else if (ok)
        status = subs_check_update(r, nv, now_us, retry_after);
    if (status == 200)
        status = subs_start_update(r, nv, now_ms);
    if (status == 200) {
        subs_plan(r, r->f[SF_USER], cfg, now_us, now_ms);
        subs_rec_json(out, r); /* the changes show only once final */
    }
    pthread_mutex_unlock(&subs.mu);
    subs_free_fields(nv);
    return status;
}

int subs_delete(const char *id)
{
    struct sub_rec *r;

    pthread_mutex_lock(&subs.mu);
    subs_advance(clk_mono_us());
    r = smap_get(&subs.by_id, id);
    if (r != NULL)
        subs_unindex(r);
    pthread_mutex_unlock(&subs.mu);
    if (r == NULL)
        return 404;
    subs_rec_free(r);
    return 204;
}

int subs_get(const char *id, struct sbuf *out)
{
    struct sub_rec *r;

    pthread_mutex_lock(&subs.mu);
    subs_advance(clk_mono_us());
    r = smap_get(&subs.by_id, id);
    if (r != NULL)
        subs_rec_json(out, r);
    pthread_mutex_unlock(&subs.mu);
    return r != NULL ? 200 : 404;
}

char *subs_user_of(const char *id)
{
    struct sub_rec *r;
    char *user = NULL;

    pthread_mutex_lock(&subs.mu);
    subs_advance(clk_mono_us());
    r = smap_get(&subs.by_id, id);
    if (r != NULL)
        user = strdup(r->f[SF_USER]);
    pthread_mutex_unlock(&subs.mu);
    return user;
}

/* Optional string field f of r equal to want (absent never matches)? */
static bool subs_eq(const char *f, const char *want, bool nocase)
{
    return f != NULL && (nocase ? strcasecmp(f, want) : strcmp(f, want)) == 0;
}

static bool subs_match(const struct sub_rec *r, const struct sub_query *q)
{
    const char *const *v = (const char *const *)q->v;

    if ((v[SQ_USER] && !subs_eq(r->f[SF_USER], v[SQ_USER], false)) ||
        (v[SQ_PERSON] && !subs_eq(r->person, v[SQ_PERSON], false)) ||
        (v[SQ_EMAIL] && !subs_eq(r->f[SF_EMAIL], v[SQ_EMAIL], true)) ||
        (v[SQ_PROV] && !subs_eq(r->f[SF_PROV], v[SQ_PROV], false)) ||
        (v[SQ_SP] && !subs_eq(r->f[SF_SP], v[SQ_SP], false)))
        return false;
    if (q->status_mask != 0 && !(q->status_mask & (1u << r->status)))
        return false;
    if (v[SQ_CHANGED] && r->changed_ms <= q->changed_after_ms)
        return false;
    if (v[SQ_AFTER] && r->created_ms <= q->created_after_ms)
        return false;
    /* Every subscriber here came through the API: none is self-activated. */
    return !(v[SQ_SELF] && q->self_activated);
}

/* One page of matches after q->cursor; returns the next page's cursor, 0
 * when there are no more matches. */
static uint64_t subs_list_scan(const struct sub_query *q, struct sbuf *out)
{
    unsigned n = 0;
    uint64_t last = 0;

    if (q->v[SQ_USER] != NULL) { /* at most one: the userId index says which */
        struct sub_rec *r = smap_get(&subs.by_user, q->v[SQ_USER]);
        if (r != NULL && r->seq > q->cursor && subs_match(r, q))
            subs_rec_json(out, r);
        return 0;
    }
    for (size_t i = subs_ord_after(q->cursor); i < subs.ord_len; i++) {
        struct sub_rec *r = subs.ord[i].r;
        if (r == NULL || !subs_match(r, q))
            continue;
        if (n == q->max)
            return last;
        if (n++ > 0)
            sbuf_puts(out, ",");
        subs_rec_json(out, r);
        last = r->seq;
    }
    return 0;
}

void subs_list(const struct sub_query *q, struct sbuf *out, uint64_t *next_cursor)
{
    sbuf_puts(out, "{\"items\":[");
    pthread_mutex_lock(&subs.mu);
    subs_advance(clk_mono_us());
    *next_cursor = subs_list_scan(q, out);
    pthread_mutex_unlock(&subs.mu);
    sbuf_puts(out, "]}");
}

void subs_dump(struct sbuf *out)
{
    uint64_t now_us = clk_mono_us();
    bool first = true;

    sbuf_puts(out, "{\"subscribers\":[");
    pthread_mutex_lock(&subs.mu);
    subs_advance(now_us);
    for (size_t i = 0; i < subs.ord_len; i++) {
        if (subs.ord[i].r == NULL)
            continue;
        if (!first)
            sbuf_puts(out, ",");
        first = false;
        subs_rec_admin_json(out, subs.ord[i].r, now_us);
    }
    sbuf_printf(out, "],\"count\":%zu,\"created_total\":%llu}", subs.by_id.count,
                (unsigned long long)subs.created_total);
    pthread_mutex_unlock(&subs.mu);
}

void subs_stats(struct sbuf *out)
{
    pthread_mutex_lock(&subs.mu);
    subs_advance(clk_mono_us());
    sbuf_printf(out,
                ",\"subscribers\":%zu,\"subscribersCreatedTotal\":%llu,\"subscribersByStatus\":{",
                subs.by_id.count, (unsigned long long)subs.created_total);
    for (unsigned i = 0; i < SUB_NSTATUS; i++)
        sbuf_printf(out, "%s\"%s\":%llu", i ? "," : "", subs_status_names[i],
                    (unsigned long long)subs.by_status[i]);
    pthread_mutex_unlock(&subs.mu);
    sbuf_puts(out, "}");
}

void subs_reset(void)
{
    struct smap by_id, by_user;
    struct sub_slot *ord;
    size_t ord_len;
    struct sub_rec **heap;

    pthread_mutex_lock(&subs.mu);
    by_id = subs.by_id;
    by_user = subs.by_user;
    ord = subs.ord;
    ord_len = subs.ord_len;
    heap = subs.heap;
    subs_empty();
    pthread_mutex_unlock(&subs.mu);
    subs_free_all(ord, ord_len);
    smap_free(&by_id);
    smap_free(&by_user);
    free(heap);
}
