/* ratelimit: see ratelimit.h. */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define US 1000000.0
#define RECOVER_PER_S 0.10 /* of the ceiling, per second without a 429 */
/* Start times kept for the one-second window; above this rate only the
 * bucket limits (its burst adds at most a tenth). */
#define WINDOW_MAX 100000

struct rl {
    pthread_mutex_t lock;
    double configured; /* 0 = unlimited */
    double allowed;    /* current limit; 0 = none */
    double ceiling;    /* what recovery climbs back to */
    double tokens;
    int64_t last_us;    /* last refill */
    int64_t recover_us; /* last recovery step */
    /* demand over the current and previous one-second windows */
    int64_t win_start_us;
    double win_count, prev_count;
    /* start times of the last `cap` requests granted, oldest overwritten
     * first: no second may hold more than the allowed rate, which the
     * bucket's burst alone would let pass by a tenth */
    int64_t *starts;
    size_t cap, head, count;
};

/* Room for the start times of a second at `rate`; 0 on success. On
 * failure the old room is kept and the window checks what it can. */
static int window_reserve(struct rl *r, double rate)
{
    if (!(rate > 0))
        return 0;
    size_t need = rate > WINDOW_MAX ? WINDOW_MAX : (size_t)ceil(rate);
    if (need <= r->cap)
        return 0;
    int64_t *v = malloc(need * sizeof(*v));
    if (!v)
        return -1;
    for (size_t i = 0; i < r->count; i++) /* oldest first */
        v[i] = r->starts[(r->head + r->cap - r->count + i) % r->cap];
    free(r->starts);
    r->starts = v;
    r->head = r->count % need;
    r->cap = need;
    return 0;
}

struct rl *rl_new(double rate, int64_t now_us)
{
    struct rl *r = calloc(1, sizeof(*r));
    if (!r || pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->configured = r->allowed = r->ceiling = rate;
    r->tokens = rate > 0 ? 1 : 0;
    r->last_us = r->recover_us = r->win_start_us = now_us;
    if (window_reserve(r, rate) != 0) {
        rl_free(r);
        return NULL;
    }
    return r;
}

void rl_free(struct rl *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->starts);
    free(r);
}

/* Burst: a tenth of a second's worth, at least one request. */
static double burst(double rate)
{
    return rate / 10 > 1 ? rate / 10 : 1;
}

static void observe(struct rl *r, int64_t now)
{
    while (now - r->win_start_us >= (int64_t)US) {
        r->prev_count = r->win_count;
        r->win_count = 0;
        r->win_start_us += (int64_t)US;
        if (now - r->win_start_us >= (int64_t)US) { /* idle for longer */
            r->prev_count = 0;
            r->win_start_us = now;
        }
    }
}

static double demand(const struct rl *r)
{
    return r->prev_count > r->win_count ? r->prev_count : r->win_count;
}

/* Additive increase, one step a quiet second, up to the ceiling. When
 * unlimited, a second at the ceiling (the rate that drew the 429) without a
 * new 429 lifts the limit: demand cannot show more, as the limiter itself
 * holds it there, and a further 429 halves it again. (Waiting for demand
 * to fall below the ceiling pinned a backlog at 1/s after a 429 that came
 * while almost nothing was being sent: ceiling and floor were both 1/s.) */
static void recover(struct rl *r, int64_t now)
{
    if (r->allowed <= 0)
        return;
    double secs = (double)(now - r->recover_us) / US;
    if (secs < 1)
        return;
    r->recover_us = now;
    if (r->allowed >= r->ceiling) {
        if (r->configured == 0)
            r->allowed = r->ceiling = 0; /* back to unlimited */
        return;
    }
    r->allowed += r->ceiling * RECOVER_PER_S * secs;
    if (r->allowed > r->ceiling)
        r->allowed = r->ceiling;
}

static void refill(struct rl *r, int64_t now)
{
    if (r->allowed > 0) {
        r->tokens += r->allowed * (double)(now - r->last_us) / US;
        if (r->tokens > burst(r->allowed))
            r->tokens = burst(r->allowed);
    }
    r->last_us = now;
}

/* How long until the last second holds fewer than ceil(allowed) starts;
 * 0 when it does now (or when the window has no room for that rate). */
static int64_t window_wait(const struct rl *r, int64_t now)
{
    if (r->allowed <= 0 || r->allowed > (double)r->cap)
        return 0;
    size_t n = (size_t)ceil(r->allowed);
    if (r->count < n)
        return 0;
    int64_t nth = r->starts[(r->head + r->cap - n) % r->cap]; /* n-th latest */
    int64_t free_at = nth + (int64_t)US;
    return free_at > now ? free_at - now : 0;
}

static void window_add(struct rl *r, int64_t now)
{
    if (r->cap == 0)
        return;
    r->starts[r->head] = now;
    r->head = (r->head + 1) % r->cap;
    if (r->count < r->cap)
        r->count++;
}

int64_t rl_acquire(struct rl *r, int64_t now_us)
{
    int64_t wait = 0;
    pthread_mutex_lock(&r->lock);
    observe(r, now_us);
    recover(r, now_us);
    refill(r, now_us);
    if (r->allowed > 0 && r->tokens < 1)
        wait = (int64_t)((1 - r->tokens) / r->allowed * US) + 1;
    int64_t w = window_wait(r, now_us);
    if (w > wait)
        wait = w;
    if (wait == 0) {
        if (r->allowed > 0)
            r->tokens -= 1;
        r->win_count += 1;
        window_add(r, now_us);
    }
    pthread_mutex_unlock(&r->lock);
    return wait;
}

void rl_penalize(struct rl *r, int64_t now_us)
{
    pthread_mutex_lock(&r->lock);
    observe(r, now_us);
    refill(r, now_us);
    double base = r->allowed > 0 ? r->allowed : demand(r);
    if (r->allowed <= 0) /* unlimited: recovery climbs back to what was asked */
        r->ceiling = base > RL_MIN_RATE ? base : RL_MIN_RATE;
    r->allowed = base / 2 > RL_MIN_RATE ? base / 2 : RL_MIN_RATE;
    if (r->tokens > burst(r->allowed))
        r->tokens = burst(r->allowed);
    r->recover_us = now_us;
    pthread_mutex_unlock(&r->lock);
}

void rl_set_rate(struct rl *r, double rate, int64_t now_us)
{
    pthread_mutex_lock(&r->lock);
    refill(r, now_us);
    bool slowed = r->allowed > 0 && r->allowed < r->ceiling;
    (void)window_reserve(r, rate); /* no room: the bucket alone limits */
    r->configured = rate;
    r->ceiling = rate;
    if (!slowed || rate == 0 || r->allowed > rate)
        r->allowed = slowed && rate == 0 ? r->allowed : rate;
    if (rate == 0 && slowed)
        r->ceiling = r->allowed * 2; /* keep recovering from the slow-down */
    if (r->allowed > 0 && r->tokens > burst(r->allowed))
        r->tokens = burst(r->allowed);
    pthread_mutex_unlock(&r->lock);
}

double rl_current(struct rl *r, int64_t now_us)
{
    pthread_mutex_lock(&r->lock);
    observe(r, now_us);
    recover(r, now_us);
    double v = r->allowed;
    pthread_mutex_unlock(&r->lock);
    return v;
}
