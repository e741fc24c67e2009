/* hmap: an intrusive chained hash map keyed by byte strings. The caller
 * embeds struct hmap_node in its own records and supplies the equality test,
 * so one map serves the key scheduler and the state table without extra
 * allocations per entry. Not thread-safe: callers lock. */
#ifndef BWPROVD_HMAP_H
#define BWPROVD_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hmap_node {
    struct hmap_node *next;
    uint64_t hash;
};

/* Does node n hold key (key, len)? */
typedef bool (*hmap_eq_fn)(const struct hmap_node *n, const char *key, size_t len);

struct hmap {
    struct hmap_node **buckets;
    size_t mask; /* bucket count - 1 (a power of two) */
    size_t count;
};

int hmap_init(struct hmap *m, size_t initial_buckets);
/* Frees the bucket array only; the nodes belong to the caller. */
void hmap_destroy(struct hmap *m);

/* Seeded hash (the seed is random per process, so crafted keys cannot
 * force collisions). */
uint64_t hmap_hash(const char *key, size_t len);

struct hmap_node *hmap_find(const struct hmap *m, uint64_t hash, const char *key, size_t len,
                            hmap_eq_fn eq);
/* Inserts n (not already present) with its hash; grows the table when the
 * load passes 1. Growth failure is not an error: chains just get longer. */
void hmap_insert(struct hmap *m, struct hmap_node *n, uint64_t hash);
/* Unlinks n, which must be in the map. */
void hmap_remove(struct hmap *m, struct hmap_node *n);

/* Calls fn for each node; fn may not modify the map. */
void hmap_foreach(const struct hmap *m, void (*fn)(struct hmap_node *n, void *arg), void *arg);

#endif
