/* ratelimit: the shared request limiter (SPEC §3 "Rate"). A token bucket
 * at webex.rate_limit requests/s (0 = unlimited) that a 429 slows down and
 * that recovers gradually:
 *
 *  - on a 429 the allowed rate halves (multiplicative decrease), starting
 *    from the configured rate or, when unlimited, from the rate actually
 *    observed over the last second; never below RL_MIN_RATE;
 *  - every second without a 429 it grows by a tenth of its ceiling
 *    (additive increase), so full speed comes back after ~10 quiet seconds,
 *    not at once (which would trigger the next 429 storm);
 *  - when unlimited, the limit is lifted after a quiet second back at the
 *    rate that drew the 429 (a further 429 halves it again).
 *
 * The bucket's burst (a tenth of a second's worth) smooths the start of a
 * run; the start times of the last second's requests (up to 100,000 a
 * second) keep any one-second window at or under the allowed rate, which
 * the burst alone would exceed by a tenth.
 *
 * Time is passed in (µs, monotonic) so the policy is unit-testable.
 * Thread-safe (a mutex; calls are O(1)). */
#ifndef BWPROVD_RATELIMIT_H
#define BWPROVD_RATELIMIT_H

#include <stdint.h>

#define RL_MIN_RATE 1.0

struct rl;

struct rl *rl_new(double rate, int64_t now_us);
void rl_free(struct rl *r);

/* SIGHUP: a new configured rate; any 429 slow-down is kept. */
void rl_set_rate(struct rl *r, double rate, int64_t now_us);

/* Takes one token. Returns 0 when the request may start now, else the
 * microseconds to wait before asking again. */
int64_t rl_acquire(struct rl *r, int64_t now_us);

/* A 429 (or 423) was answered. */
void rl_penalize(struct rl *r, int64_t now_us);

/* The rate currently allowed; 0 = unlimited. */
double rl_current(struct rl *r, int64_t now_us);

#endif
