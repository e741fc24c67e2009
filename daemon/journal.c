/* journal: see journal.h. One mutex guards the pending batch, the segment
 * table and the counters; the writer thread does the file I/O outside it,
 * so appends never wait for a disk. */
#include "journal.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEGMENT_MAX (4u << 20) /* a new segment after this many bytes */
#define LEFT_MAX (256u << 20)  /* what a previous run may leave, at most */
#define ACK_DELAY_US 100000    /* acks alone are written this late at most */
#ifndef LINGER_US
#define LINGER_US 1000 /* group commit: records wait this long for company */
#endif
#define LINGER_BATCH 256 /* ... unless this many are waiting */
#define TICK_MS 100
#define NAME_LEN 21 /* 16 hex digits, ".seg", NUL */

struct seg {
    uint64_t id;        /* file number */
    uint64_t first_seq; /* entries from here to the next segment's first_seq */
    long unacked;       /* RECORDS entries in it not yet acked */
    bool active;
};

struct left {
    uint64_t seq;
    uint8_t *payload;
    size_t plen;
};

struct pending_cb {
    journal_done_fn fn;
    void *arg;
};

struct batch {
    uint8_t *p;
    size_t len, cap;
    struct pending_cb *cbs;
    size_t ncbs, capcbs;
    size_t records; /* RECORDS entries in it */
};

struct journal {
    char path[4096]; /* <dir>/journal */
    int dirfd;
    int fd; /* the active segment; -1 while failing */
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    uint64_t next_seq;
    uint64_t next_id;
    uint64_t swapped_seq; /* entries below it have been taken for writing */
    struct seg *segs;     /* by first_seq; the last one is the active one */
    size_t nsegs, capsegs;
    size_t active_size;
    struct batch pending;
    int64_t first_ack_us; /* when the oldest unwritten ack came; 0: none */
    int64_t first_rec_us; /* when the oldest unwritten record came; 0: none */
    bool idle;            /* the writer waits for work (a record must wake it) */
    atomic_long unacked;  /* read without the lock on hot paths */
    atomic_bool failing;
    char why[256];
    struct left *left;
    size_t nleft;
    uint64_t n_entries, n_syncs, sync_us;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- the pending batch --- */

static int reserve(struct batch *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int add_cb(struct batch *b, journal_done_fn fn, void *arg)
{
    if (b->ncbs == b->capcbs) {
        size_t cap = b->capcbs ? 2 * b->capcbs : 256;
        struct pending_cb *c = realloc(b->cbs, cap * sizeof(*c));
        if (!c)
            return -1;
        b->cbs = c;
        b->capcbs = cap;
    }
    b->cbs[b->ncbs++] = (struct pending_cb){fn, arg};
    return 0;
}

static void batch_swap(struct batch *a, struct batch *b)
{
    struct batch t = *a;
    *a = *b;
    *b = t;
}

static void batch_reset(struct batch *b)
{
    b->len = 0;
    b->ncbs = 0;
    b->records = 0;
}

static void batch_free(struct batch *b)
{
    free(b->p);
    free(b->cbs);
    memset(b, 0, sizeof(*b));
}

/* --- segments --- */

static void seg_name(uint64_t id, char *out)
{
    snprintf(out, NAME_LEN, "%016" PRIx64 ".seg", id);
}

/* The segment holding seq; lock held. */
static struct seg *seg_of(struct journal *jl, uint64_t seq)
{
    size_t lo = 0, hi = jl->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (jl->segs[mid].first_seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return jl->nsegs && jl->segs[lo].first_seq <= seq ? &jl->segs[lo] : NULL;
}

static int seg_push(struct journal *jl, struct seg s)
{
    if (jl->nsegs == jl->capsegs) {
        size_t cap = jl->capsegs ? 2 * jl->capsegs : 16;
        struct seg *n = realloc(jl->segs, cap * sizeof(*n));
        if (!n)
            return -1;
        jl->segs = n;
        jl->capsegs = cap;
    }
    jl->segs[jl->nsegs++] = s;
    return 0;
}

static void set_failing(struct journal *jl, const char *what, int err)
{
    pthread_mutex_lock(&jl->lock);
    bool was = jl->failing;
    jl->failing = true;
    snprintf(jl->why, sizeof(jl->why), "%s: %s", what, strerror(err));
    pthread_mutex_unlock(&jl->lock);
    if (!was)
        log_err("state journal in %s: %s: %s; state-changing requests are held until it "
                "works again",
                jl->path, what, strerror(err));
}

/* A segment is written full of zeros once and then overwritten in place:
 * an fdatasync after an append would also have to write the inode (the
 * size changed), one more disk write per group commit (measured here: 191
 * against 133 us per fdatasync, and less CPU). Readers stop at the zeros. */
static int prefill(int fd)
{
    static const uint8_t zeros[64 * 1024];
    for (size_t off = 0; off < SEGMENT_MAX; off += sizeof(zeros)) {
        ssize_t n = pwrite(fd, zeros, sizeof(zeros), (off_t)off);
        if (n != (ssize_t)sizeof(zeros))
            return -1;
    }
    return fdatasync(fd);
}

/* Starts a new active segment (the old one, if any, is closed). Entries
 * from first_seq on go there. Writer thread (or open) only. */
static int new_segment(struct journal *jl, uint64_t first_seq)
{
    char name[NAME_LEN];
    pthread_mutex_lock(&jl->lock);
    uint64_t id = jl->next_id++;
    pthread_mutex_unlock(&jl->lock);
    seg_name(id, name);
    int fd = openat(jl->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        set_failing(jl, "cannot create a segment", errno);
        return -1;
    }
    if (prefill(fd) != 0) {
        set_failing(jl, "cannot fill a new segment", errno);
        close(fd);
        (void)unlinkat(jl->dirfd, name, 0);
        return -1;
    }
    if (fsync(jl->dirfd) != 0) { /* the new name must survive a crash too */
        set_failing(jl, "fsync of the journal directory", errno);
        close(fd);
        return -1;
    }
    pthread_mutex_lock(&jl->lock);
    if (jl->nsegs)
        jl->segs[jl->nsegs - 1].active = false;
    int rc = seg_push(jl, (struct seg){id, first_seq, 0, true});
    if (rc == 0) {
        if (jl->fd >= 0)
            close(jl->fd);
        jl->fd = fd;
        jl->active_size = 0;
    }
    pthread_mutex_unlock(&jl->lock);
    if (rc != 0) {
        close(fd);
        set_failing(jl, "segment table", ENOMEM);
    }
    return rc;
}

/* Deletes closed segments whose entries are all acked. Writer thread. */
static void collect(struct journal *jl)
{
    uint64_t dead[64];
    size_t ndead = 0;

    pthread_mutex_lock(&jl->lock);
    size_t w = 0;
    for (size_t i = 0; i < jl->nsegs; i++) {
        struct seg *s = &jl->segs[i];
        if (!s->active && s->unacked <= 0 && ndead < 64) {
            dead[ndead++] = s->id;
            continue;
        }
        jl->segs[w++] = *s;
    }
    jl->nsegs = w;
    pthread_mutex_unlock(&jl->lock);
    for (size_t i = 0; i < ndead; i++) {
        char name[NAME_LEN];
        seg_name(dead[i], name);
        if (unlinkat(jl->dirfd, name, 0) != 0 && errno != ENOENT)
            log_warn("state journal: cannot remove %s/%s: %s", jl->path, name, strerror(errno));
    }
}

/* --- the writer thread --- */

static int write_at(int fd, const uint8_t *p, size_t len, size_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        off += (size_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* Puts the batch on disk. A segment that failed once is never written
 * again (after a failed fsync the kernel may have dropped the data): the
 * next attempt goes to a fresh segment. */
static void write_batch(struct journal *jl, struct batch *b, uint64_t first_seq)
{
    if (jl->fd < 0 && new_segment(jl, first_seq) != 0)
        return;
    if (write_at(jl->fd, b->p, b->len, jl->active_size) != 0) {
        set_failing(jl, "write", errno);
    } else if (b->records) {
        int64_t t0 = mono_us();
        int rc = fdatasync(jl->fd);
        int64_t took = mono_us() - t0;
        pthread_mutex_lock(&jl->lock);
        jl->n_syncs++;
        jl->sync_us += (uint64_t)took;
        pthread_mutex_unlock(&jl->lock);
        if (rc != 0)
            set_failing(jl, "fdatasync", errno);
        else
            goto written;
    } else {
        goto written;
    }
    pthread_mutex_lock(&jl->lock);
    close(jl->fd);
    jl->fd = -1;
    pthread_mutex_unlock(&jl->lock);
    return;
written:
    pthread_mutex_lock(&jl->lock);
    jl->active_size += b->len;
    bool was = jl->failing;
    jl->failing = false;
    pthread_mutex_unlock(&jl->lock);
    if (was)
        log_notice("state journal in %s works again", jl->path);
}

/* Entries between batches are counted into the segment they went to. */
static void count_into_active(struct journal *jl, size_t records)
{
    pthread_mutex_lock(&jl->lock);
    if (jl->nsegs)
        jl->segs[jl->nsegs - 1].unacked += (long)records;
    pthread_mutex_unlock(&jl->lock);
}

static bool due(struct journal *jl, int64_t now)
{
    if (jl->pending.records)
        return now - jl->first_rec_us >= LINGER_US || jl->pending.records >= LINGER_BATCH ||
               jl->stop;
    return (jl->pending.len && now - jl->first_ack_us >= ACK_DELAY_US) ||
           (jl->stop && jl->pending.len);
}

/* Sleeps until work may be due: the end of the records' linger, or a tick
 * (acks, segments to delete). */
static void wait_work(struct journal *jl, int64_t now)
{
    int64_t until = now + TICK_MS * 1000;
    if (jl->pending.records && jl->first_rec_us + LINGER_US < until)
        until = jl->first_rec_us + LINGER_US;
    struct timespec ts = {(time_t)(until / 1000000), (long)(until % 1000000) * 1000};
    jl->idle = !jl->pending.records;
    pthread_cond_timedwait(&jl->cond, &jl->lock, &ts);
    jl->idle = false;
}

static void *writer_main(void *arg)
{
    struct journal *jl = arg;
    struct batch b = {0};
    (void)pthread_setname_np(pthread_self(), "bw-journal");

    pthread_mutex_lock(&jl->lock);
    for (;;) {
        int64_t now = mono_us();
        if (!due(jl, now)) {
            if (jl->stop)
                break;
            wait_work(jl, now);
            pthread_mutex_unlock(&jl->lock);
            collect(jl);
            pthread_mutex_lock(&jl->lock);
            continue;
        }
        batch_swap(&b, &jl->pending);
        uint64_t first_seq = jl->swapped_seq;
        jl->swapped_seq = jl->next_seq;
        jl->first_ack_us = jl->first_rec_us = 0;
        bool rotate = jl->active_size + b.len > SEGMENT_MAX && jl->active_size > 0;
        pthread_mutex_unlock(&jl->lock);

        if (rotate)
            (void)new_segment(jl, first_seq); /* failing: write_batch retries */
        write_batch(jl, &b, first_seq);
        count_into_active(jl, b.records);
        /* Written or not, the records go on to Kafka now: while the
         * journal fails, Kafka is their only copy, and no new
         * state-changing request starts (journal_failing). */
        for (size_t i = 0; i < b.ncbs; i++)
            b.cbs[i].fn(b.cbs[i].arg);
        batch_reset(&b);
        collect(jl);
        pthread_mutex_lock(&jl->lock);
    }
    pthread_mutex_unlock(&jl->lock);
    batch_free(&b);
    return NULL;
}

/* --- public --- */

int journal_append(struct journal *jl, const struct jf_rec *recs, int n, journal_done_fn done,
                   void *arg, uint64_t *seq_out)
{
    size_t size = jf_records_size(recs, n);
    if (!size)
        return -1;
    pthread_mutex_lock(&jl->lock);
    int rc = -1;
    if (reserve(&jl->pending, size) == 0 && add_cb(&jl->pending, done, arg) == 0) {
        uint64_t seq = jl->next_seq++;
        *seq_out = seq; /* before the writer can see the entry and run done */
        rc = 0;
        jl->pending.len += jf_put_records(jl->pending.p + jl->pending.len, seq, recs, n);
        if (!jl->pending.records++)
            jl->first_rec_us = mono_us();
        jl->unacked++;
        jl->n_entries++;
        /* The writer needs a wake-up only from its idle sleep, or when a
         * lingering batch is full; else it comes back by itself. */
        if (jl->idle || jl->pending.records == LINGER_BATCH)
            pthread_cond_signal(&jl->cond);
    }
    pthread_mutex_unlock(&jl->lock);
    return rc;
}

void journal_ack(struct journal *jl, uint64_t seq)
{
    pthread_mutex_lock(&jl->lock);
    struct seg *s = seg_of(jl, seq);
    if (s)
        s->unacked--;
    jl->unacked--;
    /* An ack that never reaches the disk only makes the next start publish
     * the entry again, which the state table recognises: no fsync. */
    if (reserve(&jl->pending, JF_ACK_SIZE) == 0) {
        jl->pending.len += jf_put_ack(jl->pending.p + jl->pending.len, jl->next_seq++, seq);
        if (!jl->first_ack_us)
            jl->first_ack_us = mono_us();
    }
    pthread_mutex_unlock(&jl->lock);
}

long journal_unacked(struct journal *jl)
{
    return atomic_load(&jl->unacked);
}

bool journal_failing(struct journal *jl, char *why, size_t cap)
{
    if (!atomic_load(&jl->failing))
        return false;
    pthread_mutex_lock(&jl->lock);
    bool f = jl->failing;
    if (f && cap)
        snprintf(why, cap, "%s", jl->why);
    pthread_mutex_unlock(&jl->lock);
    return f;
}

void journal_stats(struct journal *jl, uint64_t *entries, uint64_t *syncs, uint64_t *sync_us)
{
    pthread_mutex_lock(&jl->lock);
    *entries = jl->n_entries;
    *syncs = jl->n_syncs;
    *sync_us = jl->sync_us;
    pthread_mutex_unlock(&jl->lock);
}

size_t journal_left(struct journal *jl)
{
    return jl->nleft;
}

void journal_foreach_left(struct journal *jl, journal_left_fn fn, void *arg)
{
    for (size_t i = 0; i < jl->nleft; i++) {
        struct jf_entry e = {JF_RECORDS, jl->left[i].seq, jl->left[i].payload, jl->left[i].plen};
        struct jf_rec recs[JF_MAX_RECS];
        int n = 0;
        size_t pos = 0;
        while (n < JF_MAX_RECS && jf_next_rec(&e, &pos, &recs[n]) == 1)
            n++;
        fn(arg, e.seq, recs, n);
    }
}

/* --- open: what a previous run left --- */

struct loaded {
    uint64_t *acked; /* seqs named by ACK entries */
    size_t nacked, capacked;
    size_t bytes;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 1024;
        uint64_t *p = realloc(*v, c * sizeof(*p));
        if (!p)
            return -1;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return 0;
}

static int keep_left(struct journal *jl, const struct jf_entry *e)
{
    struct left *l = realloc(jl->left, (jl->nleft + 1) * sizeof(*l));
    if (!l)
        return -1;
    jl->left = l;
    uint8_t *copy = malloc(e->plen ? e->plen : 1);
    if (!copy)
        return -1;
    memcpy(copy, e->payload, e->plen);
    jl->left[jl->nleft++] = (struct left){e->seq, copy, e->plen};
    return 0;
}

static uint8_t *read_file(int dirfd, const char *name, size_t *len, char *err, size_t errlen)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf = NULL;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", name, strerror(errno));
    } else if ((uint64_t)st.st_size > LEFT_MAX) {
        snprintf(err, errlen, "%s: larger than %u MiB", name, LEFT_MAX >> 20);
    } else if ((buf = malloc((size_t)st.st_size + 1))) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        *len = got;
    } else {
        snprintf(err, errlen, "%s: out of memory", name);
    }
    if (fd >= 0)
        close(fd);
    return buf;
}

/* Reads one segment: RECORDS entries are kept, ACKs noted. A torn or
 * corrupt tail (a crash mid-write) ends it. */
static int load_segment(struct journal *jl, struct loaded *ld, uint64_t id, char *err,
                        size_t errlen)
{
    char name[NAME_LEN];
    size_t len = 0;
    seg_name(id, name);
    uint8_t *buf = read_file(jl->dirfd, name, &len, err, errlen);
    if (!buf)
        return -1;
    ld->bytes += len;
    size_t pos = 0, first = jl->nleft;
    struct jf_entry e;
    int rc = 0;
    while (rc == 0 && pos < len) {
        size_t used = jf_decode(buf + pos, len - pos, &e);
        if (!used)
            break;
        pos += used;
        if (e.seq >= jl->next_seq)
            jl->next_seq = e.seq + 1;
        if (e.type == JF_ACK)
            rc = push_u64(&ld->acked, &ld->nacked, &ld->capacked, jf_ack_of(&e));
        else
            rc = keep_left(jl, &e);
    }
    size_t tail = pos;
    while (tail < len && buf[tail] == 0) /* the unwritten rest of the segment */
        tail++;
    free(buf);
    if (rc != 0) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    if (tail < len)
        log_warn("state journal %s/%s: %zu byte(s) after offset %zu are no whole entry (a write "
                 "cut off by a crash); ignored",
                 jl->path, name, len - pos, pos);
    uint64_t first_seq = first < jl->nleft ? jl->left[first].seq : jl->next_seq;
    return seg_push(jl, (struct seg){id, first_seq, 0, false}) == 0 ? 0 : -1;
}

static int list_segments(struct journal *jl, uint64_t **ids, size_t *n, char *err, size_t errlen)
{
    size_t cap = 0;
    int fd = dup(jl->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "listing it: %s", strerror(errno));
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        uint64_t id;
        char tail[8];
        if (strlen(de->d_name) != NAME_LEN - 1 ||
            sscanf(de->d_name, "%16" SCNx64 "%7s", &id, tail) != 2 || strcmp(tail, ".seg") != 0)
            continue;
        rc = push_u64(ids, n, &cap, id);
    }
    closedir(d);
    if (rc == 0 && *n > 1)
        qsort(*ids, *n, sizeof(**ids), cmp_u64);
    return rc;
}

/* Drops the left entries an ACK names, counts the rest into their
 * segments, and deletes segments with nothing left. */
static void settle_left(struct journal *jl, struct loaded *ld)
{
    if (ld->nacked > 1)
        qsort(ld->acked, ld->nacked, sizeof(*ld->acked), cmp_u64);
    size_t w = 0;
    for (size_t i = 0; i < jl->nleft; i++) {
        if (ld->nacked &&
            bsearch(&jl->left[i].seq, ld->acked, ld->nacked, sizeof(uint64_t), cmp_u64)) {
            free(jl->left[i].payload);
            continue;
        }
        jl->left[w++] = jl->left[i];
        struct seg *s = seg_of(jl, jl->left[i].seq);
        if (s)
            s->unacked++;
    }
    jl->nleft = w;
    jl->unacked = (long)w;
    collect(jl);
}

static int load(struct journal *jl, char *err, size_t errlen)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    struct loaded ld = {0};
    int rc = list_segments(jl, &ids, &n, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = load_segment(jl, &ld, ids[i], err, errlen);
        if (ids[i] >= jl->next_id)
            jl->next_id = ids[i] + 1;
        if (rc == 0 && ld.bytes > LEFT_MAX) {
            snprintf(err, errlen, "more than %u MiB of segments", LEFT_MAX >> 20);
            rc = -1;
        }
    }
    if (rc == 0)
        settle_left(jl, &ld);
    free(ids);
    free(ld.acked);
    return rc;
}

static void free_all(struct journal *jl)
{
    for (size_t i = 0; i < jl->nleft; i++)
        free(jl->left[i].payload);
    free(jl->left);
    free(jl->segs);
    batch_free(&jl->pending);
    if (jl->fd >= 0)
        close(jl->fd);
    if (jl->dirfd >= 0)
        close(jl->dirfd);
    pthread_cond_destroy(&jl->cond);
    pthread_mutex_destroy(&jl->lock);
    free(jl);
}

static int init_sync(struct journal *jl)
{
    pthread_condattr_t ca;
    if (pthread_mutex_init(&jl->lock, NULL) != 0)
        return -1;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&jl->cond, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

struct journal *journal_open(const char *dir, char *err, size_t errlen)
{
    struct journal *jl = calloc(1, sizeof(*jl));
    if (!jl || init_sync(jl) != 0) {
        free(jl);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    jl->fd = jl->dirfd = -1;
    jl->next_seq = jl->next_id = 1;
    if (snprintf(jl->path, sizeof(jl->path), "%s/journal", dir) >= (int)sizeof(jl->path)) {
        snprintf(err, errlen, "state.journal_dir is too long");
        free_all(jl);
        return NULL;
    }
    if (mkdir(jl->path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", jl->path, strerror(errno));
        free_all(jl);
        return NULL;
    }
    jl->dirfd = open(jl->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (jl->dirfd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", jl->path, strerror(errno));
        free_all(jl);
        return NULL;
    }
    char why[512];
    if (load(jl, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "cannot read the state journal in %s: %s", jl->path, why);
        free_all(jl);
        return NULL;
    }
    jl->swapped_seq = jl->next_seq;
    if (new_segment(jl, jl->next_seq) != 0) {
        journal_failing(jl, why, sizeof(why));
        snprintf(err, errlen, "state journal in %s: %s", jl->path, why);
        free_all(jl);
        return NULL;
    }
    if (pthread_create(&jl->thread, NULL, writer_main, jl) != 0) {
        snprintf(err, errlen, "cannot start the journal thread");
        free_all(jl);
        return NULL;
    }
    jl->started = true;
    return jl;
}

/* After a clean stop with everything in Kafka, nothing is left to read. */
static void remove_all(struct journal *jl)
{
    for (size_t i = 0; i < jl->nsegs; i++) {
        char name[NAME_LEN];
        seg_name(jl->segs[i].id, name);
        if (unlinkat(jl->dirfd, name, 0) != 0 && errno != ENOENT)
            log_warn("state journal: cannot remove %s/%s: %s", jl->path, name, strerror(errno));
    }
    jl->nsegs = 0;
}

void journal_stop(struct journal *jl)
{
    if (!jl || !jl->started)
        return;
    pthread_mutex_lock(&jl->lock);
    jl->stop = true;
    pthread_cond_signal(&jl->cond);
    pthread_mutex_unlock(&jl->lock);
    pthread_join(jl->thread, NULL);
    jl->started = false;
}

void journal_close(struct journal *jl)
{
    if (!jl)
        return;
    journal_stop(jl);
    if (jl->unacked <= 0) {
        remove_all(jl);
    } else {
        /* acks that came after the writer stopped: best effort, no fsync */
        if (jl->fd >= 0 && jl->pending.len &&
            write_at(jl->fd, jl->pending.p, jl->pending.len, jl->active_size))
            log_warn("state journal: %s", strerror(errno));
        log_notice("state journal: %ld state change(s) not yet in Kafka are kept in %s and "
                   "published at the next start",
                   jl->unacked, jl->path);
    }
    free_all(jl);
}
