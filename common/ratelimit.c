/* ratelimit: see ratelimit.h. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define US 1000000.0
#define RECOVER_PER_S 0.10 /* of the ceiling, per second without a 429 */

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
};

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
    return r;
}

void rl_free(struct rl *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
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

int64_t rl_acquire(struct rl *r, int64_t now_us)
{
    int64_t wait = 0;
    pthread_mutex_lock(&r->lock);
    observe(r, now_us);
    recover(r, now_us);
    refill(r, now_us);
    if (r->allowed <= 0 || r->tokens >= 1) {
        if (r->allowed > 0)
            r->tokens -= 1;
        r->win_count += 1;
    } else {
        wait = (int64_t)((1 - r->tokens) / r->allowed * US) + 1;
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
