/*
 * timer_: resumes suspended connections when their injected latency is over.
 *
 * One thread sleeps on a condition variable (CLOCK_MONOTONIC) until the
 * earliest entry of a binary min-heap is due, then resumes the due
 * connections outside the lock. MHD then calls the access handler again,
 * which answers the request (sim_api.c). MHD threads never sleep.
 */
#include "websim.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct tmr_entry {
    uint64_t due_us;
    uint64_t order; /* FIFO among equal deadlines */
    struct MHD_Connection *conn;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
    bool stopping;
    struct tmr_entry *heap;
    size_t len;
    size_t cap;
    uint64_t order;
} tmr;

/* Batch of connections resumed per lock round trip. */
#define TMR_BATCH 256

static bool tmr_less(const struct tmr_entry *a, const struct tmr_entry *b)
{
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->order < b->order);
}

static void tmr_swap(size_t i, size_t j)
{
    struct tmr_entry t = tmr.heap[i];
    tmr.heap[i] = tmr.heap[j];
    tmr.heap[j] = t;
}

static void tmr_sift_up(size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!tmr_less(&tmr.heap[i], &tmr.heap[parent]))
            break;
        tmr_swap(i, parent);
        i = parent;
    }
}

static void tmr_sift_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < tmr.len && tmr_less(&tmr.heap[l], &tmr.heap[m]))
            m = l;
        if (r < tmr.len && tmr_less(&tmr.heap[r], &tmr.heap[m]))
            m = r;
        if (m == i)
            return;
        tmr_swap(i, m);
        i = m;
    }
}

static struct MHD_Connection *tmr_pop(void)
{
    struct MHD_Connection *c = tmr.heap[0].conn;

    tmr.heap[0] = tmr.heap[--tmr.len];
    tmr_sift_down(0);
    return c;
}

/* Absolute CLOCK_MONOTONIC timespec for due_us. */
static struct timespec tmr_abs(uint64_t due_us)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(due_us / 1000000u);
    ts.tv_nsec = (long)(due_us % 1000000u) * 1000L;
    return ts;
}

static void *tmr_main(void *arg)
{
    struct MHD_Connection *batch[TMR_BATCH];
    size_t n;

    (void)arg;
    pthread_mutex_lock(&tmr.mu);
    for (;;) {
        uint64_t now = clk_mono_us();
        n = 0;
        while (tmr.len > 0 && n < TMR_BATCH && (tmr.stopping || tmr.heap[0].due_us <= now))
            batch[n++] = tmr_pop();
        if (n > 0) {
            pthread_mutex_unlock(&tmr.mu);
            for (size_t i = 0; i < n; i++)
                MHD_resume_connection(batch[i]);
            pthread_mutex_lock(&tmr.mu);
            continue;
        }
        if (tmr.stopping)
            break;
        if (tmr.len == 0) {
            pthread_cond_wait(&tmr.cv, &tmr.mu);
        } else {
            struct timespec ts = tmr_abs(tmr.heap[0].due_us);
            int rc = pthread_cond_timedwait(&tmr.cv, &tmr.mu, &ts);
            (void)rc; /* ETIMEDOUT or a wake-up: either way, look again */
        }
    }
    pthread_mutex_unlock(&tmr.mu);
    return NULL;
}

int timer_start(void)
{
    pthread_condattr_t attr;
    int rc;

    tmr.heap = NULL;
    tmr.len = tmr.cap = 0;
    tmr.stopping = false;
    if (pthread_mutex_init(&tmr.mu, NULL) != 0)
        return -1;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&tmr.cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return -1;
    if (pthread_create(&tmr.thread, NULL, tmr_main, NULL) != 0)
        return -1;
    tmr.started = true;
    return 0;
}

bool timer_add(uint64_t due_us, struct MHD_Connection *conn)
{
    bool ok = false, wake = false;

    pthread_mutex_lock(&tmr.mu);
    if (!tmr.stopping) {
        void *heap = tmr.heap;
        bool room = arr_reserve(&heap, &tmr.cap, tmr.len, sizeof *tmr.heap, 1024);
        tmr.heap = heap;
        if (room) {
            tmr.heap[tmr.len].due_us = due_us;
            tmr.heap[tmr.len].order = tmr.order++;
            tmr.heap[tmr.len].conn = conn;
            tmr_sift_up(tmr.len++);
            wake = tmr.heap[0].conn == conn; /* new earliest deadline */
            ok = true;
        }
    }
    pthread_mutex_unlock(&tmr.mu);
    if (wake)
        pthread_cond_signal(&tmr.cv);
    return ok;
}

void timer_stop(void)
{
    if (!tmr.started)
        return;
    pthread_mutex_lock(&tmr.mu);
    tmr.stopping = true;
    pthread_mutex_unlock(&tmr.mu);
    pthread_cond_signal(&tmr.cv);
    (void)pthread_join(tmr.thread, NULL);
    tmr.started = false;
}

void timer_fini(void)
{
    free(tmr.heap);
    tmr.heap = NULL;
    tmr.len = tmr.cap = 0;
    pthread_cond_destroy(&tmr.cv);
    pthread_mutex_destroy(&tmr.mu);
}
