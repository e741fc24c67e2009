/* keysched: see keysched.h. */
#include "keysched.h"

#include "hmap.h"

#include <stdlib.h>
#include <string.h>

/* A key with work. Its running job is not kept here (whoever runs it owns
 * it, and may free it before or after ks_done), only the jobs queued
 * behind it. */
struct ks_key {
    struct hmap_node node; /* first: the map hands back this pointer */
    struct ks_job *head;   /* first queued job, NULL when none */
    struct ks_job *tail;
    size_t keylen;
    char key[];
};

struct ks {
    struct hmap map;
    struct ks_barrier *barriers; /* every live barrier, for ks_clear() */
};

struct ks_barrier {
    struct ks_job job; /* first: it sits in the key's FIFO as a job */
    struct ks_barrier *prev, *next;
    bool holding;  /* it has the key's turn */
    bool released; /* its work is over: pass the turn on when it comes */
    size_t keylen;
    char key[];
};

static bool key_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct ks_key *k = (const struct ks_key *)n;
    return k->keylen == len && memcmp(k->key, key, len) == 0;
}

struct ks *ks_new(void)
{
    struct ks *ks = calloc(1, sizeof(*ks));
    if (ks && hmap_init(&ks->map, 1024) != 0) {
        free(ks);
        return NULL;
    }
    return ks;
}

static void barrier_unlink(struct ks *ks, struct ks_barrier *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        ks->barriers = b->next;
    if (b->next)
        b->next->prev = b->prev;
    free(b);
}

static void free_key(struct hmap_node *n, void *arg)
{
    (void)arg;
    free(n);
}

void ks_free(struct ks *ks)
{
    if (!ks)
        return;
    while (ks->barriers)
        barrier_unlink(ks, ks->barriers);
    hmap_foreach(&ks->map, free_key, NULL);
    hmap_destroy(&ks->map);
    free(ks);
}

int ks_push(struct ks *ks, const char *key, size_t keylen, struct ks_job *j)
{
    uint64_t h = hmap_hash(key, keylen);
    struct ks_key *k = (struct ks_key *)hmap_find(&ks->map, h, key, keylen, key_eq);

    j->next = NULL;
    if (k) {
        if (k->tail)
            k->tail->next = j;
        else
            k->head = j;
        k->tail = j;
        return 0;
    }
    k = malloc(sizeof(*k) + keylen);
    if (!k)
        return -1;
    k->head = k->tail = NULL; /* j runs now; nothing queued yet */
    k->keylen = keylen;
    memcpy(k->key, key, keylen);
    hmap_insert(&ks->map, &k->node, h);
    return 1;
}

struct ks_job *ks_done(struct ks *ks, const char *key, size_t keylen)
{
    uint64_t h = hmap_hash(key, keylen);
    struct ks_key *k = (struct ks_key *)hmap_find(&ks->map, h, key, keylen, key_eq);

    while (k) {
        struct ks_job *next = k->head;
        if (!next) {
            hmap_remove(&ks->map, &k->node);
            free(k);
            return NULL;
        }
        k->head = next->next;
        if (!k->head)
            k->tail = NULL;
        next->next = NULL;
        if (!next->barrier)
            return next;
        struct ks_barrier *b = (struct ks_barrier *)next;
        if (!b->released) {
            b->holding = true;
            return NULL;
        }
        barrier_unlink(ks, b); /* over before its turn came: the next one's turn */
    }
    return NULL;
}

struct ks_barrier *ks_barrier_push(struct ks *ks, const char *key, size_t keylen)
{
    struct ks_barrier *b = calloc(1, sizeof(*b) + keylen);
    if (!b)
        return NULL;
    b->job.barrier = true;
    b->keylen = keylen;
    memcpy(b->key, key, keylen);
    int r = ks_push(ks, key, keylen, &b->job);
    if (r < 0) {
        free(b);
        return NULL;
    }
    b->holding = r == 1;
    b->next = ks->barriers;
    if (b->next)
        b->next->prev = b;
    ks->barriers = b;
    return b;
}

struct ks_job *ks_barrier_release(struct ks *ks, struct ks_barrier *b)
{
    if (!b->holding) {
        b->released = true;
        return NULL;
    }
    struct ks_job *next = ks_done(ks, b->key, b->keylen);
    barrier_unlink(ks, b);
    return next;
}

struct clear_ctx {
    void (*free_job)(struct ks_job *j);
};

static void clear_key(struct hmap_node *n, void *arg)
{
    struct clear_ctx *c = arg;
    struct ks_key *k = (struct ks_key *)n;
    struct ks_job *j = k->head;
    while (j) {
        struct ks_job *next = j->next;
        if (!j->barrier) /* barriers are freed from their own list */
            c->free_job(j);
        j = next;
    }
    free(k);
}

void ks_clear(struct ks *ks, void (*free_job)(struct ks_job *j))
{
    struct clear_ctx c = {free_job};
    hmap_foreach(&ks->map, clear_key, &c);
    while (ks->barriers)
        barrier_unlink(ks, ks->barriers);
    memset(ks->map.buckets, 0, (ks->map.mask + 1) * sizeof(*ks->map.buckets));
    ks->map.count = 0;
}

size_t ks_keys(const struct ks *ks)
{
    return ks->map.count;
}
