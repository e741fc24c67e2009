/* Unit tests for ratelimit: the rate a configured limiter grants, the
 * halving on a 429 and the recovery, with simulated time. */
#include "ratelimit.h"

#include "check.h"

#define S 1000000LL

/* Requests granted in [t0, t0 + secs) to a client that asks as fast as the
 * limiter lets it (and at most every millisecond). */
static long granted(struct rl *r, int64_t t0, double secs)
{
    long n = 0;
    int64_t end = t0 + (int64_t)(secs * S);
    for (int64_t t = t0; t < end;) {
        int64_t wait = rl_acquire(r, t);
        if (wait == 0) {
            n++;
            t += 1000;
        } else {
            t += wait;
        }
    }
    return n;
}

static void configured_rate(void)
{
    struct rl *r = rl_new(50, 0);
    long n = granted(r, 0, 10);
    CHECK(n >= 495 && n <= 506); /* 50/s plus one burst of 5 */
    CHECK(rl_current(r, 10 * S) == 50);
    rl_free(r);
}

/* A client that waits until the bucket is full, then asks as fast as the
 * limiter lets it (every 100 µs at most): no one-second window may hold
 * more than the rate, though the bucket alone would grant its burst on top,
 * and over three seconds the rate is still reached. */
static void no_second_above_the_rate(void)
{
    enum { RATE = 1000, SECS = 3 };
    static int64_t at[RATE * SECS + 200];
    struct rl *r = rl_new(RATE, 0);
    long n = 0;
    for (int64_t t = S / 2; t < S / 2 + SECS * S && n < (long)(sizeof(at) / sizeof(at[0]));) {
        int64_t wait = rl_acquire(r, t);
        if (wait == 0)
            at[n++] = t;
        t += wait == 0 ? 100 : wait;
    }
    long worst = 0;
    for (long i = 0, j = 0; i < n; i++) {
        while (at[i] - at[j] >= S)
            j++;
        if (i - j + 1 > worst)
            worst = i - j + 1;
    }
    CHECK_WHY(worst <= RATE, "most requests started in one second");
    CHECK(n >= RATE * SECS - 5);
    /* a lower rate on SIGHUP, then a 429: the window follows */
    rl_set_rate(r, 100, 10 * S);
    CHECK(granted(r, 10 * S, 1) <= 100);
    rl_penalize(r, 12 * S);
    CHECK(granted(r, 12 * S, 1) <= 50);
    rl_free(r);
}

static void halves_and_recovers(void)
{
    struct rl *r = rl_new(100, 0);
    rl_penalize(r, S);
    CHECK(rl_current(r, S) == 50);
    rl_penalize(r, S);
    CHECK(rl_current(r, S) == 25);
    /* a tenth of the ceiling (100) per quiet second */
    CHECK(rl_current(r, 2 * S) >= 34 && rl_current(r, 2 * S) <= 36);
    CHECK(rl_current(r, 20 * S) == 100);
    for (int i = 0; i < 20; i++)
        rl_penalize(r, 30 * S);
    CHECK_WHY(rl_current(r, 30 * S) == RL_MIN_RATE, "never below the floor");
    rl_free(r);
}

static void unlimited_comes_back(void)
{
    struct rl *r = rl_new(0, 0);
    CHECK(granted(r, 0, 1) == 1000); /* unlimited: every millisecond */
    CHECK(rl_current(r, S) == 0);
    /* A 429 to the only request of an otherwise idle second: the ceiling
     * and the floor are both 1/s. */
    CHECK(granted(r, 5 * S, 1) == 1000);
    CHECK(rl_acquire(r, 60 * S) == 0);
    rl_penalize(r, 60 * S + 500000);
    CHECK(rl_current(r, 60 * S + 500000) == RL_MIN_RATE);
    /* A backlog now asks for far more than the slowed rate grants. It must
     * not stay pinned there: once recovery reaches the rate that drew the
     * 429, the limit is lifted (another 429 would halve it again). */
    long n = granted(r, 61 * S, 30);
    CHECK_WHY(rl_current(r, 91 * S) == 0, "pinned at 1/s after a 429 at low demand");
    CHECK(n > 20000);
    /* Unlimited again after a 429 at high demand: about ten quiet seconds. */
    rl_penalize(r, 100 * S);
    CHECK(rl_current(r, 100 * S) > 0);
    (void)granted(r, 100 * S, 15);
    CHECK(rl_current(r, 115 * S) == 0);
    rl_free(r);
}

int main(void)
{
    configured_rate();
    no_second_above_the_rate();
    halves_and_recovers();
    unlimited_comes_back();
    return check_done();
}
