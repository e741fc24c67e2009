/* Unit tests for common/hmap.c: growth with 100k nodes, removal, forced
 * collisions (one long chain), foreach coverage and hash sanity. */
#include "check.h"
#include "hmap.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct item {
    struct hmap_node node;
    int visits;
    size_t len;
    char key[24];
};

static struct item *item_of(struct hmap_node *n)
{
    return n ? (struct item *)(void *)((char *)n - offsetof(struct item, node)) : NULL;
}

static bool item_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct item *it =
        (const struct item *)(const void *)((const char *)n - offsetof(struct item, node));
    return it->len == len && memcmp(it->key, key, len) == 0;
}

static void set_key(struct item *it, int i)
{
    it->len = (size_t)snprintf(it->key, sizeof(it->key), "user-%d", i);
}

static struct item *find(const struct hmap *m, uint64_t h, const char *key, size_t len)
{
    return item_of(hmap_find(m, h, key, len, item_eq));
}

static void visit(struct hmap_node *n, void *arg)
{
    item_of(n)->visits++;
    (*(size_t *)arg)++;
}

static void test_init(void)
{
    static const struct {
        size_t ask, min;
    } cases[] = {{0, 1}, {1, 1}, {16, 16}, {17, 17}, {100, 100}, {1024, 1024}, {4097, 4097}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hmap m;
        CHECK_EQ_INT(hmap_init(&m, cases[i].ask), 0);
        size_t n = m.mask + 1;
        CHECK(n >= cases[i].min);
        CHECK_EQ_INT(n & (n - 1), 0); /* a power of two */
        CHECK_EQ_INT(m.count, 0);
        CHECK_NULL(hmap_find(&m, hmap_hash("x", 1), "x", 1, item_eq));
        hmap_destroy(&m);
    }
}

static void test_hash(void)
{
    CHECK_EQ_INT(hmap_hash("abc", 3), hmap_hash("abc", 3));
    CHECK(hmap_hash("abc", 3) != hmap_hash("abd", 3));
    CHECK(hmap_hash("ab", 2) != hmap_hash("ab\0", 3)); /* the length counts */
    CHECK(hmap_hash("", 0) != hmap_hash("\0", 1));
    /* Only len bytes are read. */
    CHECK_EQ_INT(hmap_hash("abcXYZ", 3), hmap_hash("abc", 3));
}

static void test_growth(void)
{
    enum { N = 100000 };
    struct hmap m;
    struct item *items = calloc(N, sizeof(*items));
    if (!items || hmap_init(&m, 16) != 0)
        exit(2);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        set_key(&items[i], i);
        hmap_insert(&m, &items[i].node, hmap_hash(items[i].key, items[i].len));
        bad += m.count != (size_t)i + 1;
        bad += m.count > m.mask + 1; /* load stays at most 1 */
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(m.count, N);
    CHECK(m.mask + 1 >= N);
    for (int i = 0; i < N; i++) {
        char key[24];
        size_t len = (size_t)snprintf(key, sizeof(key), "user-%d", i);
        bad += find(&m, hmap_hash(key, len), key, len) != &items[i];
    }
    CHECK_EQ_INT(bad, 0);

    /* Chains stay short with the real hash. */
    size_t longest = 0;
    for (size_t b = 0; b <= m.mask; b++) {
        size_t len = 0;
        for (struct hmap_node *n = m.buckets[b]; n; n = n->next)
            len++;
        longest = len > longest ? len : longest;
    }
    CHECK(longest <= 16);

    /* foreach visits every node once. */
    size_t seen = 0;
    hmap_foreach(&m, visit, &seen);
    CHECK_EQ_INT(seen, N);
    for (int i = 0; i < N; i++)
        bad += items[i].visits != 1;
    CHECK_EQ_INT(bad, 0);

    /* Remove the odd half. */
    for (int i = 1; i < N; i += 2)
        hmap_remove(&m, &items[i].node);
    CHECK_EQ_INT(m.count, N / 2);
    for (int i = 0; i < N; i++) {
        struct item *f =
            find(&m, hmap_hash(items[i].key, items[i].len), items[i].key, items[i].len);
        bad += i % 2 ? f != NULL : f != &items[i];
    }
    CHECK_EQ_INT(bad, 0);
    /* Missing keys, and a key that only shares a prefix. */
    CHECK_NULL(find(&m, hmap_hash("user-", 5), "user-", 5));
    CHECK_NULL(find(&m, hmap_hash("user-1000000", 12), "user-1000000", 12));
    /* Re-insert the removed ones. */
    for (int i = 1; i < N; i += 2)
        hmap_insert(&m, &items[i].node, hmap_hash(items[i].key, items[i].len));
    CHECK_EQ_INT(m.count, N);
    for (int i = 0; i < N; i++)
        bad += find(&m, hmap_hash(items[i].key, items[i].len), items[i].key, items[i].len) !=
               &items[i];
    CHECK_EQ_INT(bad, 0);
    hmap_destroy(&m);
    free(items);
}

static void test_collisions(void)
{
    /* Every node with one hash: one chain (and growth keeps it one chain). */
    enum { N = 2000 };
    const uint64_t h = 0x5eedULL;
    struct hmap m;
    struct item *items = calloc(N, sizeof(*items));
    if (!items || hmap_init(&m, 16) != 0)
        exit(2);
    for (int i = 0; i < N; i++) {
        set_key(&items[i], i);
        hmap_insert(&m, &items[i].node, h);
    }
    CHECK_EQ_INT(m.count, N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += find(&m, h, items[i].key, items[i].len) != &items[i];
    CHECK_EQ_INT(bad, 0);
    /* Same hash, absent key. */
    CHECK_NULL(find(&m, h, "user-x", 6));
    /* Same key, other hash: not found (the hash is part of the identity). */
    CHECK_NULL(find(&m, h + 1, items[5].key, items[5].len));

    /* Remove from the chain's head, tail and middle, in a scattered order. */
    for (int i = 0; i < N; i += 3)
        hmap_remove(&m, &items[i].node);
    hmap_remove(&m, &items[N - 1].node);
    hmap_remove(&m, &items[1].node);
    size_t removed = (N + 2) / 3 + ((N - 1) % 3 != 0) + 1;
    CHECK_EQ_INT(m.count, N - removed);
    for (int i = 0; i < N; i++) {
        bool gone = i % 3 == 0 || i == N - 1 || i == 1;
        struct item *f = find(&m, h, items[i].key, items[i].len);
        bad += gone ? f != NULL : f != &items[i];
    }
    CHECK_EQ_INT(bad, 0);

    /* Low bits colliding, high bits not: spreads after growth. */
    struct hmap m2;
    struct item *more = calloc(N, sizeof(*more));
    if (!more || hmap_init(&m2, 16) != 0)
        exit(2);
    for (int i = 0; i < N; i++) {
        set_key(&more[i], i);
        hmap_insert(&m2, &more[i].node, (uint64_t)i << 4);
    }
    for (int i = 0; i < N; i++)
        bad += find(&m2, (uint64_t)i << 4, more[i].key, more[i].len) != &more[i];
    CHECK_EQ_INT(bad, 0);
    hmap_destroy(&m2);
    free(more);
    hmap_destroy(&m);
    free(items);
}

int main(void)
{
    test_init();
    test_hash();
    test_growth();
    test_collisions();
    return check_done();
}
