/* Unit tests for common/keysched.c: per-key FIFO order, one runnable job per
 * key, independent keys, key lifetime, ks_clear (run under ASan too), and a
 * randomised comparison with a reference model. */
#include "check.h"
#include "keysched.h"

#include <stddef.h>
#include <stdlib.h>

struct job {
    int tag; /* before the link, so a cast would be wrong: use job_of() */
    struct ks_job link;
    int key, seq;
};

static struct job *job_of(struct ks_job *j)
{
    return j ? (struct job *)(void *)((char *)j - offsetof(struct job, link)) : NULL;
}

static struct ks *must_new(void)
{
    struct ks *ks = ks_new();
    if (!ks) {
        fprintf(stderr, "ks_new failed\n");
        exit(2);
    }
    return ks;
}

static void test_one_key(void)
{
    struct ks *ks = must_new();
    struct job j[5];
    for (int i = 0; i < 5; i++)
        j[i] = (struct job){.tag = 7, .seq = i};

    CHECK_EQ_INT(ks_keys(ks), 0);
    CHECK_EQ_INT(ks_push(ks, "u1", 2, &j[0].link), 1); /* idle key: runnable now */
    CHECK_EQ_INT(ks_keys(ks), 1);
    for (int i = 1; i < 5; i++)
        CHECK_EQ_INT(ks_push(ks, "u1", 2, &j[i].link), 0); /* wait behind it */
    CHECK_EQ_INT(ks_keys(ks), 1);
    for (int i = 1; i < 5; i++) {
        struct job *n = job_of(ks_done(ks, "u1", 2));
        if (CHECK_NOT_NULL(n))
            CHECK_EQ_INT(n->seq, i);
        /* more work for the key arriving while it runs queues at the end */
        CHECK_EQ_INT(ks_keys(ks), 1);
    }
    CHECK_NULL(ks_done(ks, "u1", 2));
    CHECK_EQ_INT(ks_keys(ks), 0); /* the key is gone once empty */
    /* ... so the next push is runnable at once. */
    CHECK_EQ_INT(ks_push(ks, "u1", 2, &j[0].link), 1);
    CHECK_NULL(ks_done(ks, "u1", 2));
    CHECK_EQ_INT(ks_keys(ks), 0);

    /* Unknown keys: nothing to hand out. */
    CHECK_NULL(ks_done(ks, "nobody", 6));
    CHECK_EQ_INT(ks_keys(ks), 0);
    ks_free(ks);
    ks_free(NULL);
}

static void test_interleaved_push(void)
{
    /* A job pushed while the key runs, after the queue drained, is next. */
    struct ks *ks = must_new();
    struct job a = {.seq = 1}, b = {.seq = 2}, c = {.seq = 3};
    CHECK_EQ_INT(ks_push(ks, "k", 1, &a.link), 1);
    CHECK_EQ_INT(ks_push(ks, "k", 1, &b.link), 0);
    struct job *n = job_of(ks_done(ks, "k", 1)); /* a done: b runs */
    CHECK(n == &b);
    CHECK_EQ_INT(ks_push(ks, "k", 1, &c.link), 0); /* b still running */
    n = job_of(ks_done(ks, "k", 1));
    CHECK(n == &c);
    CHECK_NULL(ks_done(ks, "k", 1));
    CHECK_EQ_INT(ks_keys(ks), 0);
    ks_free(ks);
}

static void test_many_keys(void)
{
    enum { N = 5000 };
    struct ks *ks = must_new();
    struct job *jobs = calloc(2 * N, sizeof(*jobs));
    if (!jobs)
        exit(2);
    char key[32];
    int bad = 0;
    /* One job per key: all runnable at once. */
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "user%d@sp.com", i);
        jobs[i].key = i;
        bad += ks_push(ks, key, (size_t)n, &jobs[i].link) != 1;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ks_keys(ks), N);
    /* A second job per key waits. */
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "user%d@sp.com", i);
        jobs[N + i].key = i;
        bad += ks_push(ks, key, (size_t)n, &jobs[N + i].link) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ks_keys(ks), N);
    /* Finishing the first hands out exactly that key's second. */
    for (int i = N - 1; i >= 0; i--) {
        int n = snprintf(key, sizeof(key), "user%d@sp.com", i);
        bad += job_of(ks_done(ks, key, (size_t)n)) != &jobs[N + i];
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ks_keys(ks), N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "user%d@sp.com", i);
        bad += ks_done(ks, key, (size_t)n) != NULL;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ks_keys(ks), 0);
    ks_free(ks);
    free(jobs);
}

static void test_key_bytes(void)
{
    /* Keys are byte strings with a length: prefixes, embedded NULs and
     * the empty key are all distinct keys. */
    static const struct {
        const char *k;
        size_t len;
    } keys[] = {
        {"a", 1}, {"ab", 2}, {"ab\0c", 4}, {"ab\0d", 4}, {"", 0}, {"\xff\xfe", 2}, {"A", 1},
    };
    enum { NK = sizeof(keys) / sizeof(keys[0]) };
    struct ks *ks = must_new();
    struct job j[NK], w[NK];
    for (size_t i = 0; i < NK; i++) {
        j[i] = (struct job){.seq = (int)i};
        w[i] = (struct job){.seq = 100 + (int)i};
        CHECK_EQ_INT(ks_push(ks, keys[i].k, keys[i].len, &j[i].link), 1);
    }
    CHECK_EQ_INT(ks_keys(ks), NK);
    for (size_t i = 0; i < NK; i++)
        CHECK_EQ_INT(ks_push(ks, keys[i].k, keys[i].len, &w[i].link), 0);
    for (size_t i = 0; i < NK; i++) {
        CHECK(job_of(ks_done(ks, keys[i].k, keys[i].len)) == &w[i]);
        CHECK_NULL(ks_done(ks, keys[i].k, keys[i].len));
    }
    CHECK_EQ_INT(ks_keys(ks), 0);
    ks_free(ks);
}

static int freed;

static void free_job(struct ks_job *j)
{
    freed++;
    free(job_of(j));
}

static void test_clear(void)
{
    struct ks *ks = must_new();
    int pushed = 0, nrunning = 0;
    static struct job *running[3000];
    char key[32];
    /* 3000 keys with 1..5 jobs each: running and queued ones, malloc'd so
     * ASan/LSan sees any job ks_clear forgets or frees twice. */
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        for (int q = 0; q <= i % 5; q++) {
            struct job *jb = calloc(1, sizeof(*jb));
            if (!jb)
                exit(2);
            jb->key = i;
            jb->seq = q;
            int rc = ks_push(ks, key, (size_t)n, &jb->link);
            if (rc < 0)
                exit(2);
            if (rc == 1) /* running jobs belong to the caller, not to ks_clear */
                running[nrunning++] = jb;
            else
                pushed++;
        }
    }
    CHECK_EQ_INT(ks_keys(ks), 3000);
    freed = 0;
    ks_clear(ks, free_job);
    CHECK_EQ_INT(freed, pushed);
    CHECK_EQ_INT(nrunning, 3000);
    for (int i = 0; i < nrunning; i++)
        free(running[i]);
    CHECK_EQ_INT(ks_keys(ks), 0);
    CHECK_NULL(ks_done(ks, "k1", 2));

    /* Usable again afterwards. */
    struct job a = {.seq = 1};
    CHECK_EQ_INT(ks_push(ks, "k1", 2, &a.link), 1);
    CHECK_EQ_INT(ks_keys(ks), 1);
    CHECK_NULL(ks_done(ks, "k1", 2));
    /* Clearing an empty scheduler is fine. */
    freed = 0;
    ks_clear(ks, free_job);
    CHECK_EQ_INT(freed, 0);
    ks_free(ks);
}

/* Random pushes and completions against a reference: per key, a FIFO of
 * sequence numbers whose head is the running job. */
static void test_model(void)
{
    enum { KEYS = 64, OPS = 40000, MAXQ = 4096 };
    struct ks *ks = must_new();
    static struct job pool[OPS];
    static int q[KEYS][MAXQ]; /* pool indexes */
    static int qh[KEYS], qt[KEYS];
    unsigned seed = 99;
    int bad = 0, used = 0;
    char key[16];

    for (int op = 0; op < OPS && bad < 5; op++) {
        int k = rand_r(&seed) % KEYS;
        int n = snprintf(key, sizeof(key), "u%d", k);
        bool push = used < OPS && (qh[k] == qt[k] || rand_r(&seed) % 2 == 0);
        if (push && qt[k] < MAXQ) {
            struct job *jb = &pool[used];
            *jb = (struct job){.key = k, .seq = used};
            int rc = ks_push(ks, key, (size_t)n, &jb->link);
            int want = qh[k] == qt[k] ? 1 : 0;
            if (rc != want) {
                fprintf(stderr, "  push to key %d: %d, want %d\n", k, rc, want);
                bad++;
            }
            q[k][qt[k]++] = used++;
        } else if (qh[k] != qt[k]) {
            qh[k]++; /* the running job finished */
            struct job *got = job_of(ks_done(ks, key, (size_t)n));
            struct job *want = qh[k] == qt[k] ? NULL : &pool[q[k][qh[k]]];
            if (got != want) {
                fprintf(stderr, "  done on key %d: seq %d, want %d\n", k, got ? got->seq : -1,
                        want ? want->seq : -1);
                bad++;
            }
            if (qh[k] == qt[k])
                qh[k] = qt[k] = 0;
        }
        size_t active = 0;
        for (int i = 0; i < KEYS; i++)
            active += qh[i] != qt[i];
        if (ks_keys(ks) != active) {
            fprintf(stderr, "  ks_keys %zu, want %zu\n", ks_keys(ks), active);
            bad++;
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* Drain. */
    for (int k = 0; k < KEYS; k++) {
        int n = snprintf(key, sizeof(key), "u%d", k);
        while (qh[k] != qt[k]) {
            qh[k]++;
            struct job *want = qh[k] == qt[k] ? NULL : &pool[q[k][qh[k]]];
            bad += job_of(ks_done(ks, key, (size_t)n)) != want;
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ks_keys(ks), 0);
    ks_free(ks);
}

/* A barrier holds a key's turn: a rename A -> N takes N's turn so the next
 * event for N waits for the rename. */
static void test_barrier(void)
{
    struct ks *ks = must_new();
    struct job n1 = {.seq = 1}, n2 = {.seq = 2}, n3 = {.seq = 3};

    /* N idle: the barrier holds N at once; N's next event waits for it. */
    struct ks_barrier *b = ks_barrier_push(ks, "N", 1);
    CHECK_NOT_NULL(b);
    CHECK_EQ_INT(ks_push(ks, "N", 1, &n1.link), 0);
    CHECK_EQ_INT(ks_keys(ks), 1);
    struct job *got = job_of(ks_barrier_release(ks, b)); /* the rename is done */
    if (CHECK_NOT_NULL(got))
        CHECK_EQ_INT(got->seq, 1);
    CHECK_NULL(ks_done(ks, "N", 1));
    CHECK_EQ_INT(ks_keys(ks), 0);

    /* N busy: the barrier queues behind the running job, then holds N
     * until it is released; jobs behind it wait. */
    CHECK_EQ_INT(ks_push(ks, "N", 1, &n1.link), 1);
    b = ks_barrier_push(ks, "N", 1);
    CHECK_EQ_INT(ks_push(ks, "N", 1, &n2.link), 0);
    CHECK_NULL(ks_done(ks, "N", 1)); /* n1 done: the barrier's turn, nothing runs */
    CHECK_EQ_INT(ks_keys(ks), 1);
    got = job_of(ks_barrier_release(ks, b));
    if (CHECK_NOT_NULL(got))
        CHECK_EQ_INT(got->seq, 2);
    CHECK_NULL(ks_done(ks, "N", 1));

    /* Released before its turn came: it passes the turn straight on. */
    CHECK_EQ_INT(ks_push(ks, "N", 1, &n1.link), 1);
    b = ks_barrier_push(ks, "N", 1);
    CHECK_EQ_INT(ks_push(ks, "N", 1, &n3.link), 0);
    CHECK_NULL(ks_barrier_release(ks, b)); /* still queued: nothing runnable yet */
    got = job_of(ks_done(ks, "N", 1));
    if (CHECK_NOT_NULL(got))
        CHECK_EQ_INT(got->seq, 3);
    CHECK_NULL(ks_done(ks, "N", 1));
    CHECK_EQ_INT(ks_keys(ks), 0);

    /* Two barriers in a row, the second released first. */
    CHECK_EQ_INT(ks_push(ks, "N", 1, &n1.link), 1);
    struct ks_barrier *b1 = ks_barrier_push(ks, "N", 1), *b2 = ks_barrier_push(ks, "N", 1);
    CHECK_EQ_INT(ks_push(ks, "N", 1, &n2.link), 0);
    CHECK_NULL(ks_barrier_release(ks, b2));
    CHECK_NULL(ks_done(ks, "N", 1)); /* b1 holds */
    got = job_of(ks_barrier_release(ks, b1));
    if (CHECK_NOT_NULL(got))
        CHECK_EQ_INT(got->seq, 2);
    CHECK_NULL(ks_done(ks, "N", 1));
    CHECK_EQ_INT(ks_keys(ks), 0);

    /* Barriers left at shutdown, holding or queued, are freed (ASan). */
    CHECK_NOT_NULL(ks_barrier_push(ks, "X", 1));
    CHECK_NOT_NULL(ks_barrier_push(ks, "X", 1));
    ks_clear(ks, free_job);
    CHECK_NOT_NULL(ks_barrier_push(ks, "Y", 1));
    ks_free(ks);
}

int main(void)
{
    test_one_key();
    test_interleaved_push();
    test_many_keys();
    test_key_bytes();
    test_clear();
    test_barrier();
    test_model();
    return check_done();
}
