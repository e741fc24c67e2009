/* Unit tests for common/secmem.c: zeroed allocation, wiping on free and on
 * a shrinking realloc, reuse of freed blocks, the string copies, many
 * threads at once, the memory cost of header-sized buffers, and the
 * property itself: a secmem mapping carries the "dd" flag (do not dump) in
 * /proc/self/smaps, ordinary malloc memory does not. */
#include "check.h"
#include "secmem.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return false;
    return true;
}

/* Counts the non-zero bytes of [from, n) of a block, also of a freed one
 * (still mapped: secmem keeps chunks) or of its slack past the size asked
 * for, which ASan builds poison, hence the attribute. */
__attribute__((no_sanitize_address)) static size_t nonzero_after(const void *p, size_t from,
                                                                 size_t n)
{
    const volatile unsigned char *c = p;
    size_t k = 0;
    for (size_t i = from; i < n; i++)
        k += c[i] != 0;
    return k;
}

/* 1: the mapping holding p has "dd" in its VmFlags, 0: it has not,
 * -1: no mapping found or /proc/self/smaps unreadable. */
static int dontdump_flag(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool inside = false;
    int found = -1;
    uintptr_t a = (uintptr_t)p;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char c;
        /* A mapping's first line: "lo-hi perms ...", hex addresses. */
        if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3)
            inside = a >= lo && a < hi;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            found = 0;
            for (char *tok = strtok(line + 8, " \n"); tok; tok = strtok(NULL, " \n"))
                if (strcmp(tok, "dd") == 0)
                    found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static void test_basic(void)
{
    static const size_t sizes[] = {0,    1,    15,   16,   17,   100,   511,   512,
                                   513,  1000, 4095, 4096, 4097, 16416, 65536, 100000,
                                   3000, 64,   65,   2048, 24,   8,     31,    1 << 20};
    void *p[sizeof(sizes) / sizeof(sizes[0])];
    struct secmem_stats st0, st;

    secmem_stats(&st0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i] ? sizes[i] : 1;
        p[i] = secmem_alloc(sizes[i]);
        if (!CHECK_NOT_NULL(p[i]))
            exit(1);
        CHECK_EQ_INT((uintptr_t)p[i] % 16, 0);
        if (!CHECK(all_zero(p[i], n)))
            fprintf(stderr, "  size %zu not zeroed\n", sizes[i]);
        memset(p[i], (int)(0x41 + i), n);
    }
    secmem_stats(&st);
    CHECK_EQ_INT(st.live, st0.live + sizeof(sizes) / sizeof(sizes[0]));
    CHECK(st.large > st0.large); /* 4097 and up */
    /* Nothing overlaps: every block still holds its own pattern. */
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i] ? sizes[i] : 1;
        const unsigned char *c = p[i];
        size_t bad = 0;
        for (size_t k = 0; k < n; k++)
            bad += c[k] != (unsigned char)(0x41 + i);
        if (!CHECK_EQ_INT(bad, 0))
            fprintf(stderr, "  size %zu overwritten\n", sizes[i]);
        secmem_free(p[i]);
    }
    secmem_stats(&st);
    CHECK_EQ_INT(st.live, st0.live);
    CHECK_EQ_INT(st.large, st0.large); /* large ones are unmapped */
    secmem_free(NULL);
}

static void test_reuse_and_wipe(void)
{
    /* A freed block is wiped at once, and the next allocation of its
     * class gets it back (LIFO), zeroed. */
    char *p = secmem_alloc(100); /* class 128 */
    CHECK_NOT_NULL(p);
    memset(p, 'S', 100);
    secmem_free(p);
    /* the first word links the free list; the rest must be zero */
    CHECK_WHY(nonzero_after(p, sizeof(void *), 128) == 0, "free did not wipe");
    char *q = secmem_alloc(120);
    CHECK(q == p);
    CHECK(all_zero(q, 120));
    CHECK(nonzero_after(q, 0, 128) == 0); /* the slack and the link too */

    /* Shrinking in place wipes the tail, so growing again reads zero. */
    memset(q, 'T', 120);
    CHECK(secmem_realloc(q, 10) == q);
    CHECK(secmem_realloc(q, 128) == q);
    CHECK(all_zero(q + 10, 118));
    CHECK_EQ_INT(q[9], 'T');

    /* Growing past the class moves and wipes the old block. */
    char *r = secmem_realloc(q, 3000);
    CHECK_NOT_NULL(r);
    CHECK(r != q);
    CHECK_EQ_INT(r[0], 'T');
    CHECK_EQ_INT(r[9], 'T');
    CHECK(all_zero(r + 10, 3000 - 10));
    CHECK_WHY(nonzero_after(q, sizeof(void *), 128) == 0, "realloc left the old block");
    /* Small to large and back within the large mapping. */
    r = secmem_realloc(r, 20000);
    CHECK_NOT_NULL(r);
    CHECK_EQ_INT(r[9], 'T');
    CHECK(all_zero(r + 10, 20000 - 10));
    memset(r, 'L', 20000);
    CHECK(secmem_realloc(r, 50) == r);
    CHECK(secmem_realloc(r, 20000) == r);
    CHECK(all_zero(r + 50, 20000 - 50));
    secmem_free(r);

    /* realloc(NULL) allocates. */
    char *n = secmem_realloc(NULL, 33);
    CHECK(n && all_zero(n, 33));
    secmem_free(n);
}

static void test_strings(void)
{
    char *s = secmem_strdup("Bearer abc");
    CHECK_EQ_STR(s, "Bearer abc");
    secmem_free(s);
    s = secmem_strdup("");
    CHECK_EQ_STR(s, "");
    secmem_free(s);
    s = secmem_strndup("secret-value", 6);
    CHECK_EQ_STR(s, "secret");
    secmem_free(s);
    s = secmem_strndup("ab", 100);
    CHECK_EQ_STR(s, "ab");
    secmem_free(s);
    const char raw[4] = {'w', 'x', 'y', 'z'}; /* not NUL-terminated */
    s = secmem_strndup(raw, sizeof(raw));
    CHECK_EQ_STR(s, "wxyz");
    secmem_free(s);
    /* One of CRED_MAX_BYTES (a large allocation). */
    char *big = malloc(16385);
    if (!big)
        exit(2);
    memset(big, 'k', 16384);
    big[16384] = '\0';
    s = secmem_strdup(big);
    CHECK(s && strlen(s) == 16384 && memcmp(s, big, 16384) == 0);
    secmem_free(s);
    free(big);
}

static void test_dontdump(void)
{
    CHECK_EQ_INT(secmem_dontdump_error(), 0);
    char *small = secmem_alloc(64), *large = secmem_alloc(100000);
    char *heap = malloc(64), *heap_big = malloc(1 << 20); /* brk and mmap'd heap */
    if (!small || !large || !heap || !heap_big)
        exit(2);
    memset(heap, 1, 64);
    memset(heap_big, 1, 1 << 20);
    if (dontdump_flag(small) < 0) {
        fprintf(stderr, "  /proc/self/smaps unreadable: the dd flag is not checked\n");
    } else {
        CHECK_WHY(dontdump_flag(small) == 1, "a small secmem block can be in a core dump");
        CHECK_WHY(dontdump_flag(large) == 1, "a large secmem block can be in a core dump");
        CHECK_EQ_INT(dontdump_flag(heap), 0);
        CHECK_EQ_INT(dontdump_flag(heap_big), 0);
    }
    free(heap);
    free(heap_big);
    secmem_free(small);
    secmem_free(large);
}

/* The engine's use: one "Authorization: Bearer ..." buffer per transfer,
 * 512 bytes, up to webex.max_in_flight (65536) of them. */
static void test_cost(void)
{
    enum { N = 65536, SZ = 512 };
    struct secmem_stats st0, st;
    char **v = calloc(N, sizeof(*v));
    if (!v)
        exit(2);
    secmem_stats(&st0);
    for (size_t i = 0; i < N; i++) {
        if (!(v[i] = secmem_alloc(SZ)))
            break;
        v[i][0] = 'A'; /* touch it */
        v[i][SZ - 1] = 'Z';
    }
    secmem_stats(&st);
    size_t grown = st.mapped - st0.mapped;
    fprintf(stderr,
            "  %d buffers of %d bytes: %zu KiB mapped (%.3f of the bytes asked for), "
            "%zu chunks\n",
            N, SZ, grown / 1024, (double)grown / ((double)N * SZ), st.chunks - st0.chunks);
    CHECK_WHY(grown <= (size_t)N * SZ / 100 * 102 + 65536, "header buffers cost too much");
    for (size_t i = 0; i < N; i++)
        secmem_free(v[i]);
    /* Freed blocks are reused: the same again maps nothing new. */
    for (size_t i = 0; i < N; i++)
        v[i] = secmem_alloc(SZ);
    secmem_stats(&st0);
    CHECK_EQ_INT(st0.mapped, st.mapped);
    for (size_t i = 0; i < N; i++)
        secmem_free(v[i]);
    free(v);
}

/* Threads allocating and freeing at once, each holding up to HELD blocks
 * of mixed sizes filled with its own pattern, checked before the free. */
enum { THREADS = 8, ROUNDS = 20000, HELD = 32 };

struct worker {
    unsigned id;
    unsigned long bad;
    unsigned long failed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned char *held[HELD] = {0};
    size_t len[HELD] = {0};
    uint32_t x = 2463534242u + w->id * 7919u; /* xorshift32 */
    for (int r = 0; r < ROUNDS; r++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t slot = x % HELD;
        if (held[slot]) {
            for (size_t k = 0; k < len[slot]; k++)
                w->bad += held[slot][k] != (unsigned char)(w->id + slot);
            secmem_free(held[slot]);
            held[slot] = NULL;
            continue;
        }
        /* mostly header-sized, sometimes large */
        len[slot] = (x >> 8) % 8 == 0 ? 4096 + (x >> 12) % 20000 : 1 + (x >> 12) % 700;
        held[slot] = secmem_alloc(len[slot]);
        if (!held[slot]) {
            w->failed++;
            continue;
        }
        w->bad += !all_zero(held[slot], len[slot]);
        memset(held[slot], (int)(w->id + slot), len[slot]);
        if ((x >> 4) % 16 == 0) { /* grow some, as a response buffer does */
            unsigned char *g = secmem_realloc(held[slot], len[slot] * 2);
            if (g) {
                w->bad += !all_zero(g + len[slot], len[slot]);
                memset(g + len[slot], (int)(w->id + slot), len[slot]);
                held[slot] = g;
                len[slot] *= 2;
            }
        }
    }
    for (size_t s = 0; s < HELD; s++)
        secmem_free(held[s]);
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[THREADS];
    struct worker w[THREADS];
    struct secmem_stats st0, st;
    secmem_stats(&st0);
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.id = i};
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    }
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        if (!CHECK_EQ_INT(w[i].bad, 0))
            fprintf(stderr, "  thread %u saw foreign or unzeroed bytes\n", i);
        CHECK_EQ_INT(w[i].failed, 0);
    }
    secmem_stats(&st);
    CHECK_EQ_INT(st.live, st0.live);
    CHECK_EQ_INT(st.large, st0.large);
}

int main(void)
{
    test_basic();
    test_reuse_and_wipe();
    test_strings();
    test_dontdump();
    test_cost();
    test_threads();
    struct secmem_stats st;
    secmem_stats(&st);
    CHECK_EQ_INT(st.live, 0);
    return check_done();
}
