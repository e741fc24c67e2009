/* hmap: see hmap.h. */
#include "hmap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static uint64_t hash_seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
        s = (uint64_t)(uintptr_t)&s ^ 0x9e3779b97f4a7c15ULL;
    hash_seed = s;
}

uint64_t hmap_hash(const char *key, size_t len)
{
    pthread_once(&seed_once, seed_init);
    /* FNV-1a over the seed-mixed basis, then a final avalanche (splitmix64
     * finaliser) so the low bits used for buckets are well mixed. */
    uint64_t h = 0xcbf29ce484222325ULL ^ hash_seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static size_t round_pow2(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

int hmap_init(struct hmap *m, size_t initial_buckets)
{
    size_t n = round_pow2(initial_buckets);
    m->buckets = calloc(n, sizeof(*m->buckets));
    m->mask = n - 1;
    m->count = 0;
    return m->buckets ? 0 : -1;
}

void hmap_destroy(struct hmap *m)
{
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

struct hmap_node *hmap_find(const struct hmap *m, uint64_t hash, const char *key, size_t len,
                            hmap_eq_fn eq)
{
    for (struct hmap_node *n = m->buckets[hash & m->mask]; n; n = n->next)
        if (n->hash == hash && eq(n, key, len))
            return n;
    return NULL;
}

static void grow(struct hmap *m)
{
    size_t n = (m->mask + 1) * 2;
    struct hmap_node **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i <= m->mask; i++) {
        struct hmap_node *node = m->buckets[i];
        while (node) {
            struct hmap_node *next = node->next;
            node->next = b[node->hash & (n - 1)];
            b[node->hash & (n - 1)] = node;
            node = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->mask = n - 1;
}

void hmap_insert(struct hmap *m, struct hmap_node *n, uint64_t hash)
{
    if (m->count >= m->mask + 1)
        grow(m);
    n->hash = hash;
    n->next = m->buckets[hash & m->mask];
    m->buckets[hash & m->mask] = n;
    m->count++;
}

void hmap_remove(struct hmap *m, struct hmap_node *n)
{
    struct hmap_node **pp = &m->buckets[n->hash & m->mask];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = n->next;
        m->count--;
    }
}

void hmap_foreach(const struct hmap *m, void (*fn)(struct hmap_node *n, void *arg), void *arg)
{
    for (size_t i = 0; i <= m->mask; i++) {
        struct hmap_node *n = m->buckets[i];
        while (n) {
            struct hmap_node *next = n->next;
            fn(n, arg);
            n = next;
        }
    }
}
