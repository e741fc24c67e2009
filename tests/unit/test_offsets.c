/* Unit tests for common/offsets.c: the per-partition commit point, checked
 * by hand for small cases and against a simple reference model for large
 * shuffled ones (ring growth far beyond the initial 64 entries). */
#include "check.h"
#include "offsets.h"

#include <stdlib.h>

static struct off_tracker *must_new(void)
{
    struct off_tracker *t = off_new();
    if (!t) {
        fprintf(stderr, "off_new failed\n");
        exit(2);
    }
    return t;
}

static void test_basics(void)
{
    struct off_tracker *t = must_new();
    CHECK_EQ_INT(off_commit_point(t), -1);
    CHECK_EQ_INT(off_pending(t), 0);
    CHECK_EQ_INT(off_done(t, 0), -1); /* nothing tracked yet */

    /* In order: the commit point follows one past each finished offset. */
    for (int64_t o = 0; o < 10; o++)
        CHECK_EQ_INT(off_add(t, o), 0);
    CHECK_EQ_INT(off_pending(t), 10);
    CHECK_EQ_INT(off_commit_point(t), 0);
    for (int64_t o = 0; o < 10; o++) {
        CHECK_EQ_INT(off_done(t, o), 0);
        CHECK_EQ_INT(off_commit_point(t), o + 1);
        CHECK_EQ_INT(off_pending(t), 9 - o);
    }
    /* Finished twice, or never added. */
    CHECK_EQ_INT(off_done(t, 9), -1);
    CHECK_EQ_INT(off_done(t, 0), -1);
    CHECK_EQ_INT(off_done(t, 10), -1);
    CHECK_EQ_INT(off_done(t, -1), -1);
    CHECK_EQ_INT(off_commit_point(t), 10);
    /* Offsets must keep increasing, even when nothing is pending. */
    CHECK_EQ_INT(off_add(t, 9), -1);
    CHECK_EQ_INT(off_add(t, 5), -1);
    CHECK_EQ_INT(off_commit_point(t), 10);
    CHECK_EQ_INT(off_pending(t), 0);
    off_free(t);
    off_free(NULL);
}

static void test_out_of_order(void)
{
    struct off_tracker *t = must_new();
    CHECK_EQ_INT(off_add(t, 100), 0); /* the first offset can be anything */
    CHECK_EQ_INT(off_add(t, 101), 0);
    CHECK_EQ_INT(off_add(t, 102), 0);
    CHECK_EQ_INT(off_commit_point(t), 100);

    CHECK_EQ_INT(off_done(t, 102), 0);
    CHECK_EQ_INT(off_commit_point(t), 100); /* 100 and 101 still running */
    CHECK_EQ_INT(off_done(t, 102), -1);     /* finished, still in the window */
    CHECK_EQ_INT(off_done(t, 100), 0);
    CHECK_EQ_INT(off_commit_point(t), 101);
    CHECK_EQ_INT(off_pending(t), 1);
    CHECK_EQ_INT(off_done(t, 101), 0);
    CHECK_EQ_INT(off_commit_point(t), 103);
    CHECK_EQ_INT(off_pending(t), 0);

    /* Equal and lower offsets are refused while work is pending too. */
    CHECK_EQ_INT(off_add(t, 103), 0);
    CHECK_EQ_INT(off_add(t, 103), -1);
    CHECK_EQ_INT(off_add(t, 50), -1);
    CHECK_EQ_INT(off_pending(t), 1);
    off_free(t);
}

static void test_gaps(void)
{
    /* Compaction leaves gaps between consumed offsets. */
    struct off_tracker *t = must_new();
    CHECK_EQ_INT(off_add(t, 5), 0);
    CHECK_EQ_INT(off_add(t, 9), 0);
    CHECK_EQ_INT(off_add(t, 20), 0);
    CHECK_EQ_INT(off_done(t, 7), -1); /* inside a gap: never consumed */
    CHECK_EQ_INT(off_done(t, 9), 0);
    CHECK_EQ_INT(off_commit_point(t), 5);
    CHECK_EQ_INT(off_done(t, 5), 0);
    CHECK_EQ_INT(off_commit_point(t), 20); /* the lowest unfinished, not 10 */
    CHECK_EQ_INT(off_done(t, 20), 0);
    CHECK_EQ_INT(off_commit_point(t), 21);
    CHECK_EQ_INT(off_add(t, 20), -1);
    CHECK_EQ_INT(off_add(t, 1000), 0);
    CHECK_EQ_INT(off_commit_point(t), 1000);
    CHECK_EQ_INT(off_done(t, 1000), 0);
    CHECK_EQ_INT(off_commit_point(t), 1001);
    off_free(t);
}

/* The reference: all offsets in an array, finished flags, and the commit
 * point computed the slow, obvious way. */
struct ref {
    int64_t *off;
    bool *done;
    size_t n, first_undone;
};

static int64_t ref_commit(struct ref *r)
{
    while (r->first_undone < r->n && r->done[r->first_undone])
        r->first_undone++;
    if (r->first_undone < r->n)
        return r->off[r->first_undone];
    return r->n ? r->off[r->n - 1] + 1 : -1;
}

static void shuffle(size_t *a, size_t n, unsigned *seed)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rand_r(seed) % i;
        size_t x = a[i - 1];
        a[i - 1] = a[j];
        a[j] = x;
    }
}

/* n offsets with random gaps, completed in shuffled order once all are
 * added (window = n) or while adding (window slots in flight). */
static void model_run(size_t n, size_t window, unsigned seed)
{
    struct off_tracker *t = must_new();
    struct ref r = {calloc(n, sizeof(int64_t)), calloc(n, sizeof(bool)), 0, 0};
    size_t *order = calloc(n, sizeof(size_t));
    if (!r.off || !r.done || !order)
        exit(2);
    int64_t o = (int64_t)(rand_r(&seed) % 1000);
    for (size_t i = 0; i < n; i++) {
        r.off[i] = o;
        o += 1 + (rand_r(&seed) % 4 == 0 ? rand_r(&seed) % 50 : 0);
        order[i] = i;
    }
    int bad = 0;
    size_t added = 0, finished = 0;
    /* Completion order: shuffle within blocks of `window`. */
    for (size_t b = 0; b < n; b += window)
        shuffle(order + b, (n - b < window ? n - b : window), &seed);
    while (finished < n && bad < 5) {
        /* Add up to the end of the block the next completion belongs to. */
        size_t need = (finished / window + 1) * window;
        while (added < n && added < need) {
            if (off_add(t, r.off[added]) != 0) {
                fprintf(stderr, "  off_add(%" PRId64 ") failed\n", r.off[added]);
                bad++;
            }
            r.n = ++added;
        }
        size_t i = order[finished++];
        if (off_done(t, r.off[i]) != 0) {
            fprintf(stderr, "  off_done(%" PRId64 ") failed\n", r.off[i]);
            bad++;
        }
        r.done[i] = true;
        int64_t want = ref_commit(&r), got = off_commit_point(t);
        if (got != want) {
            fprintf(stderr,
                    "  n %zu window %zu: after done(%" PRId64 ") commit %" PRId64 ", want %" PRId64
                    "\n",
                    n, window, r.off[i], got, want);
            bad++;
        }
        /* Never past an unfinished offset. */
        for (size_t k = r.first_undone; k < r.n && r.off[k] < got; k++)
            if (!r.done[k]) {
                fprintf(stderr, "  commit %" PRId64 " passes unfinished %" PRId64 "\n", got,
                        r.off[k]);
                bad++;
                break;
            }
        if (off_pending(t) != added - finished) {
            fprintf(stderr, "  pending %zu, want %zu\n", off_pending(t), added - finished);
            bad++;
        }
        /* A second completion of the same offset is refused. */
        if (finished % 97 == 0 && off_done(t, r.off[i]) != -1) {
            fprintf(stderr, "  second off_done(%" PRId64 ") accepted\n", r.off[i]);
            bad++;
        }
    }
    if (!CHECK_EQ_INT(bad, 0))
        fprintf(stderr, "  model run n %zu window %zu seed %u\n", n, window, seed);
    CHECK_EQ_INT(off_commit_point(t), r.off[n - 1] + 1);
    CHECK_EQ_INT(off_pending(t), 0);
    off_free(t);
    free(r.off);
    free(r.done);
    free(order);
}

static void test_model(void)
{
    model_run(10000, 10000, 1); /* all in flight at once: the ring grows to 16384 */
    model_run(10000, 65, 2);    /* just over the initial ring */
    model_run(10000, 64, 3);
    model_run(10000, 7, 4);
    model_run(200, 1, 5); /* strictly in order */
    model_run(5000, 1000, 6);
    for (unsigned s = 10; s < 30; s++)
        model_run(300, 1 + s * 7 % 300, s);
}

/* Reverse completion after growth, and growth with a wrapped ring. */
static void test_growth_wrapped(void)
{
    struct off_tracker *t = must_new();
    int bad = 0;
    /* Wrap the ring: add/finish 40 so head sits mid-array. */
    for (int64_t o = 0; o < 40; o++)
        bad += off_add(t, o) != 0 || off_done(t, o) != 0;
    /* Now 1000 pending, forcing several grows from a wrapped state. */
    for (int64_t o = 40; o < 1040; o++)
        bad += off_add(t, o) != 0;
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(off_commit_point(t), 40);
    for (int64_t o = 1039; o > 40; o--) {
        bad += off_done(t, o) != 0;
        bad += off_commit_point(t) != 40;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(off_pending(t), 1);
    CHECK_EQ_INT(off_done(t, 40), 0);
    CHECK_EQ_INT(off_commit_point(t), 1040);
    CHECK_EQ_INT(off_pending(t), 0);
    off_free(t);
}

/* The stamp of the lowest unfinished offset: what STATUS= ages the oldest
 * unfinished event by. Finishing out of order leaves it; finishing the
 * lowest moves it to the next unfinished one, across growth and gaps. */
static void test_oldest(void)
{
    struct off_tracker *t = must_new();
    int64_t off = -7;
    CHECK_EQ_INT(off_oldest(t, &off), 0);
    CHECK_EQ_INT(off, -7);
    for (int64_t o = 0; o < 200; o++)
        CHECK_EQ_INT(off_add_at(t, 10 + 2 * o, 1000 + o), 0); /* gaps: even offsets */
    CHECK_EQ_INT(off_oldest(t, &off), 1000);
    CHECK_EQ_INT(off, 10);
    CHECK_EQ_INT(off_done(t, 12), 0); /* not the lowest: unchanged */
    CHECK_EQ_INT(off_oldest(t, &off), 1000);
    CHECK_EQ_INT(off_done(t, 10), 0); /* 12 is done too: 14 is next */
    CHECK_EQ_INT(off_oldest(t, &off), 1002);
    CHECK_EQ_INT(off, 14);
    for (int64_t o = 2; o < 200; o++)
        CHECK_EQ_INT(off_done(t, 10 + 2 * o), 0);
    CHECK_EQ_INT(off_oldest(t, &off), 0);
    CHECK_EQ_INT(off_add(t, 1000), 0); /* off_add: stamp 0 */
    CHECK_EQ_INT(off_oldest(t, &off), 0);
    off_free(t);
}

int main(void)
{
    test_oldest();
    test_basics();
    test_out_of_order();
    test_gaps();
    test_model();
    test_growth_wrapped();
    return check_done();
}
