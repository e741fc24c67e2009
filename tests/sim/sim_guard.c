/*
 * guard_: detectors for client behaviour the SPEC forbids.
 *
 * concurrentUser: a request for a userId arrives while another one for the
 * same userId is still being processed (a userId -> count map).
 *
 * retryAfter: after a 429/423 with Retry-After: N went out at time S, the
 * client must send nothing before S + N. The simulator cannot see when a
 * request was sent, only when it arrived, and requests the client sent before
 * it read the 429 may arrive just after S. So a request received at R during
 * a pause (R < deadline - tolerance) is a violation when
 *   - it came on a connection that itself got a 429/423 in this pause (HTTP/1.1
 *     without pipelining: the client had read that answer), or
 *   - R >= start of the pause + grace (then it cannot have been in flight).
 * A pause starts with the first 429/423 sent while no deadline is pending;
 * later ones only push the deadline out.
 */
#include "websim.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct guard_user {
    unsigned n;  /* requests in progress */
    char user[]; /* the map key */
};

static struct {
    pthread_mutex_t mu;
    struct smap users; /* userId -> guard_user */
} gu;

static struct {
    pthread_mutex_t mu;
    uint64_t pause_start_us; /* first 429/423 of the current pause */
    uint64_t deadline_us;    /* latest sent instant + Retry-After */
} gra;

int guard_init(void)
{
    if (pthread_mutex_init(&gu.mu, NULL) != 0)
        return -1;
    if (pthread_mutex_init(&gra.mu, NULL) != 0) {
        pthread_mutex_destroy(&gu.mu);
        return -1;
    }
    smap_init(&gu.users);
    gra.pause_start_us = 0;
    gra.deadline_us = 0;
    return 0;
}

void guard_fini(void)
{
    size_t pos = 0;
    const char *key;
    void *val;

    while (smap_next(&gu.users, &pos, &key, &val))
        free(val);
    smap_free(&gu.users);
    pthread_mutex_destroy(&gu.mu);
    pthread_mutex_destroy(&gra.mu);
}

bool guard_user_enter(const char *user)
{
    struct guard_user *e;
    bool busy = false;
    size_t n = strlen(user);
    struct guard_user *fresh = malloc(sizeof *fresh + n + 1);

    /* Allocated up front so nothing allocates under the lock. */
    if (fresh != NULL) {
        fresh->n = 1;
        memcpy(fresh->user, user, n + 1);
    }
    pthread_mutex_lock(&gu.mu);
    e = smap_get(&gu.users, user);
    if (e != NULL) {
        e->n++;
        busy = true;
    } else if (fresh != NULL && smap_put(&gu.users, fresh->user, fresh)) {
        fresh = NULL; /* now owned by the map */
    }
    pthread_mutex_unlock(&gu.mu);
    free(fresh);
    return busy;
}

void guard_user_leave(const char *user)
{
    struct guard_user *e, *gone = NULL;

    pthread_mutex_lock(&gu.mu);
    e = smap_get(&gu.users, user);
    if (e != NULL && --e->n == 0)
        gone = smap_del(&gu.users, user);
    pthread_mutex_unlock(&gu.mu);
    free(gone);
}

void guard_retry_after_sent(struct sim_conn *conn, uint64_t now_us, unsigned secs)
{
    uint64_t until = now_us + (uint64_t)secs * 1000000u;

    pthread_mutex_lock(&gra.mu);
    if (now_us >= gra.deadline_us)
        gra.pause_start_us = now_us;
    if (until > gra.deadline_us)
        gra.deadline_us = until;
    pthread_mutex_unlock(&gra.mu);
    if (conn != NULL)
        conn->last_ra_sent_us = now_us;
}

uint64_t guard_retry_after_check(const struct sim_conn *conn, uint64_t recv_us, unsigned grace_ms,
                                 unsigned tol_ms)
{
    uint64_t start, deadline;
    bool same_conn;

    pthread_mutex_lock(&gra.mu);
    start = gra.pause_start_us;
    deadline = gra.deadline_us;
    pthread_mutex_unlock(&gra.mu);

    if (deadline == 0 || recv_us < start || recv_us + (uint64_t)tol_ms * 1000u >= deadline)
        return 0;
    same_conn = conn != NULL && conn->last_ra_sent_us >= start && conn->last_ra_sent_us != 0 &&
                recv_us > conn->last_ra_sent_us;
    if (!same_conn && recv_us < start + (uint64_t)grace_ms * 1000u)
        return 0;
    return (deadline - recv_us + 999u) / 1000u;
}

void guard_reset(void)
{
    pthread_mutex_lock(&gra.mu);
    gra.pause_start_us = 0;
    gra.deadline_us = 0;
    pthread_mutex_unlock(&gra.mu);
}
