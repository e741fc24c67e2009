/* pipeline: the key scheduler and the ready queue between the consumer and
 * the HTTP workers. Only a key's head job is ever in the ready queue, so any
 * worker may run it without breaking per-user order. */
#include "app.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t app_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void app_name_thread(const char *name)
{
    /* best effort: only diagnostics depend on it */
    (void)pthread_setname_np(pthread_self(), name);
}

int64_t app_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void job_free(struct job *j)
{
    if (!j)
        return;
    ev_clear(&j->ev);
    free(j->ws);
    free(j->conflict_msg);
    free(j->key);
    free(j->value);
    if (j->replay_hdrs)
        rd_kafka_headers_destroy(j->replay_hdrs);
    free(j);
}

bool job_may_start(struct app *a, const struct job *j)
{
    return !atomic_load(&a->stopping) && atomic_load(&a->part_gen[j->partition]) == j->gen;
}

bool job_owned(struct app *a, const struct job *j)
{
    return atomic_load(&a->part_gen[j->partition]) - j->gen <= 1u;
}

bool job_changes_map(const struct job *j)
{
    const struct ev_event *ev = &j->ev;
    return ev->type != EV_UPDATE || (ev->new_user_id && strcmp(ev->new_user_id, ev->user_id));
}

static bool is_rename(const struct job *j)
{
    return j->ev.type == EV_UPDATE && j->ev.new_user_id &&
           strcmp(j->ev.new_user_id, j->ev.user_id) != 0;
}

void jobq_push(struct jobq *q, struct job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->n++;
}

struct job *jobq_pop(struct jobq *q)
{
    struct job *j = q->head;
    if (j) {
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        j->next = NULL;
        q->n--;
    }
    return j;
}

void jobq_prepend(struct jobq *q, struct jobq *from)
{
    if (!from->head)
        return;
    from->tail->next = q->head;
    if (!q->head)
        q->tail = from->tail;
    q->head = from->head;
    q->n += from->n;
    *from = (struct jobq){NULL, NULL, 0};
}

void jobq_filter(struct jobq *q, bool (*drop_it)(struct job *j, void *arg), void *arg)
{
    struct job *j = q->head;
    *q = (struct jobq){NULL, NULL, 0};
    while (j) {
        struct job *next = j->next;
        if (!drop_it(j, arg))
            jobq_push(q, j);
        j = next;
    }
}

/* Called with a->lock held. */
static void ready_push(struct app *a, struct job *j)
{
    jobq_push(&a->ready, j);
}

static struct job *job_of(struct ks_job *kj)
{
    return (struct job *)((char *)kj - offsetof(struct job, ks));
}

int pipe_submit(struct app *a, struct job *j)
{
    pthread_mutex_lock(&a->lock);
    int r = ks_push(a->ks, j->key, j->keylen, &j->ks);
    /* A rename A -> N takes N's turn behind N's earlier events: N's later
     * events wait until the rename is done, so they find its workspace. */
    if (r >= 0 && is_rename(j)) {
        j->barrier = ks_barrier_push(a->ks, j->ev.new_user_id, strlen(j->ev.new_user_id));
        if (!j->barrier)
            log_warn("out of memory ordering a rename; %s may race it", j->ev.new_user_id);
    }
    if (r == 1)
        ready_push(a, j);
    pthread_mutex_unlock(&a->lock);
    if (r == 1)
        engines_wake(a);
    return r < 0 ? -1 : 0;
}

void pipe_key_done(struct app *a, const char *key, size_t keylen, struct ks_barrier *barrier)
{
    pthread_mutex_lock(&a->lock);
    struct ks_job *next = ks_done(a->ks, key, keylen);
    struct ks_job *after = barrier ? ks_barrier_release(a->ks, barrier) : NULL;
    if (next)
        ready_push(a, job_of(next));
    if (after)
        ready_push(a, job_of(after));
    pthread_mutex_unlock(&a->lock);
    if (next || after)
        engines_wake(a);
}

void pipe_drop(struct app *a, struct job *j)
{
    char key[EV_MAX_USER_ID + 1];
    size_t keylen = j->keylen;
    struct ks_barrier *barrier = j->barrier;
    memcpy(key, j->key, keylen);
    atomic_fetch_sub(&a->pending, 1);
    job_free(j);
    pipe_key_done(a, key, keylen, barrier);
}

struct job *pipe_take(struct app *a, int max)
{
    struct jobq got = {NULL, NULL, 0};

    pthread_mutex_lock(&a->lock);
    while (max-- > 0 && a->ready.head)
        jobq_push(&got, jobq_pop(&a->ready));
    pthread_mutex_unlock(&a->lock);
    return got.head;
}

bool pipe_has_ready(struct app *a)
{
    pthread_mutex_lock(&a->lock);
    bool r = a->ready.head != NULL;
    pthread_mutex_unlock(&a->lock);
    return r;
}
