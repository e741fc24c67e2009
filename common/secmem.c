/* secmem: see secmem.h.
 *
 * Every mapping (a shared chunk or one large allocation) starts at a
 * multiple of the chunk size with a small header, so the header of any
 * pointer is found by rounding it down: no lookup table, no per-block
 * header. A chunk serves one size class; its blocks are carved from the
 * front as needed and, once freed, kept on the class's free list (LIFO),
 * linked through their first bytes. One mutex guards the lists. */
#include "secmem.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Under ASan the blocks that are free, and the slack of a live one, are
 * poisoned, so an overflow or a use after free of a secret buffer is
 * reported as it would be with malloc. */
#if defined(__SANITIZE_ADDRESS__)
#define SECMEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECMEM_ASAN 1
#endif
#endif
#ifdef SECMEM_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK_MIN 65536 /* the chunk size unless pages are larger */
#define HDR 64          /* the region header's room: blocks stay 16-aligned */
#define MIN_SHIFT 4     /* the smallest class: 16 bytes */
#define NCLASS 9        /* 16, 32, ... 4096 = SECMEM_SMALL_MAX */
#define MAGIC 0x5ec3e3a9u
#define LARGE (-1)

struct region {
    uint32_t magic;
    int cls;    /* size class, or LARGE */
    size_t len; /* bytes mapped */
};
_Static_assert(sizeof(struct region) <= HDR, "the header fits");
_Static_assert(((size_t)1 << (MIN_SHIFT + NCLASS - 1)) == SECMEM_SMALL_MAX, "classes");

struct free_block {
    struct free_block *next;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static size_t page_size, chunk_size; /* powers of two, set once */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    struct free_block *free;
    char *next;  /* the uncarved rest of the class's newest chunk */
    size_t left; /* its size in bytes */
} classes[NCLASS];
static struct secmem_stats stats;

static atomic_int dontdump_err;

static void init(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    page_size = pg > 0 ? (size_t)pg : 4096;
    chunk_size = page_size > CHUNK_MIN ? page_size : CHUNK_MIN;
}

static size_t class_size(int c)
{
    return (size_t)1 << (c + MIN_SHIFT);
}

static int class_of(size_t n)
{
    for (int c = 0; c < NCLASS; c++)
        if (n <= class_size(c))
            return c;
    return LARGE;
}

static void note_dontdump_error(int err)
{
    int none = 0;
    atomic_compare_exchange_strong(&dontdump_err, &none, err ? err : EINVAL);
}

/* A chunk-aligned mapping of len bytes (a multiple of the page size)
 * excluded from core dumps, with its header filled in. */
static struct region *map_region(size_t len, int cls)
{
    if (len > SIZE_MAX - chunk_size)
        return NULL;
    /* Over-allocate by one chunk, then give back the unaligned ends. */
    char *raw =
        mmap(NULL, len + chunk_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    size_t head = (chunk_size - (uintptr_t)raw % chunk_size) % chunk_size;
    char *base = raw + head;
    /* These can fail only with ENOMEM (the map count limit); the pages then
     * stay mapped, untouched and empty: address space is lost, no data. */
    if (head)
        (void)munmap(raw, head);
    if (chunk_size - head)
        (void)munmap(base + len, chunk_size - head);
#ifdef MADV_DONTDUMP
    if (madvise(base, len, MADV_DONTDUMP) != 0)
        note_dontdump_error(errno);
#else
    note_dontdump_error(ENOSYS);
#endif
    struct region *r = (struct region *)(void *)base;
    r->magic = MAGIC;
    r->cls = cls;
    r->len = len;
    return r;
}

/* The region of a pointer secmem returned; aborts on anything else, since
 * going on would corrupt the lists. */
static struct region *region_of(const void *p)
{
    if (pthread_once(&once, init) != 0) /* cannot fail once an allocation was made */
        abort();
    uintptr_t u = (uintptr_t)p;
    struct region *r = (struct region *)(u - u % chunk_size);
    size_t off = (size_t)(u - (uintptr_t)r);
    if (r->magic != MAGIC || off < HDR ||
        (r->cls == LARGE ? off != HDR : (off - HDR) % class_size(r->cls) != 0))
        abort();
    return r;
}

/* With the lock held: a block of class c, unpoisoned. */
static char *take(int c)
{
    size_t sz = class_size(c);
    struct free_block *b = classes[c].free;
    if (b) {
        UNPOISON(b, sz);
        classes[c].free = b->next;
        return (char *)b;
    }
    if (classes[c].left < sz) {
        struct region *r = map_region(chunk_size, c);
        if (!r)
            return NULL;
        stats.chunks++;
        stats.mapped += chunk_size;
        classes[c].next = (char *)r + HDR;
        classes[c].left = chunk_size - HDR;
        POISON(classes[c].next, classes[c].left);
    }
    char *p = classes[c].next;
    classes[c].next += sz;
    classes[c].left -= sz;
    UNPOISON(p, sz);
    return p;
}

static void *alloc_large(size_t n)
{
    if (n > SIZE_MAX - HDR - page_size) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = (HDR + n + page_size - 1) & ~(page_size - 1);
    struct region *r = map_region(len, LARGE);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&lock);
    stats.live++;
    stats.large++;
    stats.mapped += len;
    pthread_mutex_unlock(&lock);
    char *p = (char *)r + HDR; /* fresh pages are zero */
    POISON(p + n, len - HDR - n);
    return p;
}

void *secmem_alloc(size_t n)
{
    if (pthread_once(&once, init) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    n = n ? n : 1;
    int c = class_of(n);
    if (c == LARGE)
        return alloc_large(n);
    pthread_mutex_lock(&lock);
    char *p = take(c);
    if (p)
        stats.live++;
    pthread_mutex_unlock(&lock);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    /* A free block is all zero but for its link; clear it all anyway. */
    memset(p, 0, class_size(c));
    POISON(p + n, class_size(c) - n);
    return p;
}

void secmem_free(void *p)
{
    if (!p)
        return;
    struct region *r = region_of(p);
    if (r->cls == LARGE) {
        size_t len = r->len;
        UNPOISON(r, len); /* a later mapping at this address starts clean */
        explicit_bzero(p, len - HDR);
        /* Fails only with ENOMEM (splitting a mapping past the map count
         * limit): the wiped pages stay mapped, excluded from dumps. */
        (void)munmap(r, len);
        pthread_mutex_lock(&lock);
        stats.live--;
        stats.large--;
        stats.mapped -= len;
        pthread_mutex_unlock(&lock);
        return;
    }
    int c = r->cls;
    size_t sz = class_size(c);
    UNPOISON(p, sz);
    explicit_bzero(p, sz);
    pthread_mutex_lock(&lock);
    struct free_block *b = p;
    b->next = classes[c].free;
    POISON(b, sz); /* before it is on the list: another thread may take it */
    classes[c].free = b;
    stats.live--;
    pthread_mutex_unlock(&lock);
}

void *secmem_realloc(void *p, size_t n)
{
    if (!p)
        return secmem_alloc(n);
    n = n ? n : 1;
    struct region *r = region_of(p);
    size_t cap = r->cls == LARGE ? r->len - HDR : class_size(r->cls);
    if (n <= cap) {
        /* In place. Wiping what a shrink gives up keeps the bytes past the
         * size zero, which is what makes a later growth read as zero. */
        UNPOISON(p, cap);
        explicit_bzero((char *)p + n, cap - n);
        POISON((char *)p + n, cap - n);
        return p;
    }
    char *q = secmem_alloc(n);
    if (!q)
        return NULL;
    UNPOISON(p, cap); /* the bytes past the old size are zero: copy them all */
    memcpy(q, p, cap);
    secmem_free(p);
    return q;
}

char *secmem_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    if (len == SIZE_MAX) { /* no room for the NUL */
        errno = ENOMEM;
        return NULL;
    }
    char *d = secmem_alloc(len + 1);
    if (d)
        memcpy(d, s, len); /* d[len] is already 0 */
    return d;
}

char *secmem_strdup(const char *s)
{
    return secmem_strndup(s, SIZE_MAX);
}

int secmem_dontdump_error(void)
{
    return atomic_load(&dontdump_err);
}

void secmem_stats(struct secmem_stats *st)
{
    pthread_mutex_lock(&lock);
    *st = stats;
    pthread_mutex_unlock(&lock);
}
