/*
 * guard_: detectors for client behaviour the SPEC forbids.
 *
 * concurrentUser: a request for a userId arrives while another one for the
 * same userId is still being processed (a userId -> count map).
 *
 * retryAfter: after a 429 with Retry-After: N went out at time S, the client
 * must send nothing before S + N; after a 423 with Retry-After: N for a userId
 * (the user the request was about), it must send nothing for that userId
 * before S + N (other users are not paused). The simulator cannot see when a
 * request was sent, only when it arrived, and requests the client sent before
 * it read the 429/423 may arrive just after S. So a request received at R
 * during a pause (R < deadline - tolerance) is a violation when
 *   - it came on a connection that itself got a 429 (for a 423: that user's
 *     423) in this pause (HTTP/1.1 without pipelining: the client had read
 *     that answer), or
 *   - R >= start of the pause + grace (then it cannot have been in flight).
 * A pause starts with the first 429 (for a user: 423 for that user) sent while
 * no deadline of its kind is pending; later ones only push the deadline out.
 *
 * The 429 pause is one pair of instants. The 423 pauses are a userId ->
 * guard_pause map: an entry is swept once its pause has been over for
 * GUARD_PAUSE_KEEP_US (sweeps run when the map has doubled since the last
 * one, so they cost O(1) per new entry; at most every GUARD_FULL_SWEEP_US
 * while it is full), and the map never holds more than GUARD_MAX_PAUSES
 * entries (a 423 for a further user then starts no pause, and the first such
 * one is logged). Each entry remembers only the connection of the latest 423
 * for its user, so the same-connection rule sees that connection only.
 */
#include "websim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A 423 pause is kept this long after its deadline, for requests whose
 * headers arrived before it but whose body came in later. */
#define GUARD_PAUSE_KEEP_US (10u * 1000000u)
/* Smallest map size at which a sweep runs. */
#define GUARD_SWEEP_MIN 1024u
/* Most 423 pauses (userIds) tracked at once. */
#define GUARD_MAX_PAUSES 65536u
/* When the map is full, sweeps run at most this often. */
#define GUARD_FULL_SWEEP_US 100000u

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
    uint64_t pause_start_us; /* first 429 of the current pause */
    uint64_t deadline_us;    /* latest sent instant + Retry-After */
} gra;

/* One user's 423 pause. */
struct guard_pause {
    uint64_t start_us;        /* first 423 of the current pause */
    uint64_t deadline_us;     /* latest sent instant + Retry-After */
    uint64_t conn_id;         /* connection of the latest 423 (0: unknown) */
    uint64_t conn_sent_us;    /* when that 423 was sent */
    struct guard_pause *next; /* list of swept entries */
    char user[];              /* the map key */
};

static struct {
    pthread_mutex_t mu;
    struct smap users;  /* userId -> guard_pause */
    size_t sweep_at;    /* sweep when users.count reaches this */
    uint64_t swept_us;  /* when the last sweep ran */
    uint64_t untracked; /* 423 pauses not tracked since start or reset */
} glk;

int guard_init(void)
{
    if (pthread_mutex_init(&gu.mu, NULL) != 0)
        return -1;
    if (pthread_mutex_init(&gra.mu, NULL) != 0) {
        pthread_mutex_destroy(&gu.mu);
        return -1;
    }
    if (pthread_mutex_init(&glk.mu, NULL) != 0) {
        pthread_mutex_destroy(&gra.mu);
        pthread_mutex_destroy(&gu.mu);
        return -1;
    }
    smap_init(&gu.users);
    gra.pause_start_us = 0;
    gra.deadline_us = 0;
    smap_init(&glk.users);
    glk.sweep_at = GUARD_SWEEP_MIN;
    glk.swept_us = 0;
    glk.untracked = 0;
    return 0;
}

/* Free every value of a map detached from the guard, and the map. */
static void guard_free_map(struct smap *m)
{
    size_t pos = 0;
    const char *key;
    void *val;

    while (smap_next(m, &pos, &key, &val))
        free(val);
    smap_free(m);
}

void guard_fini(void)
{
    guard_free_map(&gu.users);
    guard_free_map(&glk.users);
    pthread_mutex_destroy(&gu.mu);
    pthread_mutex_destroy(&gra.mu);
    pthread_mutex_destroy(&glk.mu);
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

/* Under glk.mu: unlink the 423 pauses over for GUARD_PAUSE_KEEP_US at now_us
 * and return them as a list, to be freed outside the lock. */
static struct guard_pause *guard_sweep(uint64_t now_us)
{
    struct guard_pause *gone = NULL;
    size_t pos = 0;
    const char *key;
    void *val;

    while (smap_next(&glk.users, &pos, &key, &val)) {
        struct guard_pause *e = val;

        if (e->deadline_us + GUARD_PAUSE_KEEP_US > now_us)
            continue;
        (void)smap_del(&glk.users, key);
        e->next = gone;
        gone = e;
        /* Backward-shift deletion may have moved a later entry into the
         * slot just read: look at it again. */
        pos--;
    }
    return gone;
}

void guard_locked_sent(const char *user, struct sim_conn *conn, uint64_t now_us, unsigned secs)
{
    uint64_t until = now_us + (uint64_t)secs * 1000000u;
    struct guard_pause *e, *gone = NULL, *fresh;
    uint64_t untracked = 0;
    size_t n;

    if (user == NULL || secs == 0)
        return;
    /* Allocated up front so no record is allocated under the lock. */
    n = strlen(user);
    fresh = malloc(sizeof *fresh + n + 1);
    if (fresh != NULL) {
        memset(fresh, 0, sizeof *fresh);
        memcpy(fresh->user, user, n + 1);
    }
    pthread_mutex_lock(&glk.mu);
    e = smap_get(&glk.users, user);
    if (e == NULL && glk.users.count >= glk.sweep_at &&
        (glk.users.count < GUARD_MAX_PAUSES || now_us >= glk.swept_us + GUARD_FULL_SWEEP_US)) {
        gone = guard_sweep(now_us);
        glk.swept_us = now_us;
        glk.sweep_at = glk.users.count * 2;
        if (glk.sweep_at < GUARD_SWEEP_MIN)
            glk.sweep_at = GUARD_SWEEP_MIN;
        if (glk.sweep_at > GUARD_MAX_PAUSES)
            glk.sweep_at = GUARD_MAX_PAUSES;
    }
    if (e == NULL) {
        if (fresh != NULL && glk.users.count < GUARD_MAX_PAUSES &&
            smap_put(&glk.users, fresh->user, fresh)) {
            e = fresh;
            fresh = NULL; /* now owned by the map */
        } else {
            untracked = ++glk.untracked;
        }
    }
    if (e != NULL) {
        if (now_us >= e->deadline_us)
            e->start_us = now_us;
        if (until > e->deadline_us)
            e->deadline_us = until;
        e->conn_id = conn != NULL ? conn->id : 0;
        e->conn_sent_us = now_us;
    }
    pthread_mutex_unlock(&glk.mu);
    free(fresh);
    while (gone != NULL) {
        e = gone->next;
        free(gone);
        gone = e;
    }
    if (untracked == 1)
        fprintf(
            stderr,
            "websim: warning: 423 pause of userId %.200s not tracked (%u userIds paused, or out "
            "of memory); further ones are not logged\n",
            user, GUARD_MAX_PAUSES);
}

/* The rule for one pause [start_us, deadline_us): how many ms too early a
 * request received at recv_us is, or 0 when it is fine. conn_sent_us: when
 * the request's connection got an answer that started or extended this pause
 * (0: never). */
static uint64_t guard_early(uint64_t start_us, uint64_t deadline_us, uint64_t conn_sent_us,
                            uint64_t recv_us, unsigned grace_ms, unsigned tol_ms)
{
    bool same_conn;

    if (deadline_us == 0 || recv_us < start_us || recv_us + (uint64_t)tol_ms * 1000u >= deadline_us)
        return 0;
    same_conn = conn_sent_us >= start_us && conn_sent_us != 0 && recv_us > conn_sent_us;
    if (!same_conn && recv_us < start_us + (uint64_t)grace_ms * 1000u)
        return 0;
    return (deadline_us - recv_us + 999u) / 1000u;
}

uint64_t guard_retry_after_check(const struct sim_conn *conn, const char *user, uint64_t recv_us,
                                 unsigned grace_ms, unsigned tol_ms, bool *user_pause)
{
    uint64_t start, deadline, conn_sent, early, early_user = 0;
    const struct guard_pause *e;

    pthread_mutex_lock(&gra.mu);
    start = gra.pause_start_us;
    deadline = gra.deadline_us;
    pthread_mutex_unlock(&gra.mu);
    early = guard_early(start, deadline, conn != NULL ? conn->last_ra_sent_us : 0, recv_us,
                        grace_ms, tol_ms);

    if (user != NULL) {
        start = deadline = conn_sent = 0;
        pthread_mutex_lock(&glk.mu);
        e = smap_get(&glk.users, user);
        if (e != NULL) {
            start = e->start_us;
            deadline = e->deadline_us;
            if (conn != NULL && conn->id != 0 && conn->id == e->conn_id)
                conn_sent = e->conn_sent_us;
        }
        pthread_mutex_unlock(&glk.mu);
        early_user = guard_early(start, deadline, conn_sent, recv_us, grace_ms, tol_ms);
    }
    *user_pause = early_user > early;
    return early_user > early ? early_user : early;
}

void guard_reset(void)
{
    struct smap users;

    pthread_mutex_lock(&gra.mu);
    gra.pause_start_us = 0;
    gra.deadline_us = 0;
    pthread_mutex_unlock(&gra.mu);

    pthread_mutex_lock(&glk.mu);
    users = glk.users;
    smap_init(&glk.users);
    glk.sweep_at = GUARD_SWEEP_MIN;
    glk.swept_us = 0;
    glk.untracked = 0;
    pthread_mutex_unlock(&glk.mu);
    guard_free_map(&users);
}
