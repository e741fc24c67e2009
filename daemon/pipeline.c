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
    free(j->key);
    free(j->value);
    free(j);
}

/* Called with a->lock held. */
static void ready_push(struct app *a, struct job *j)
{
    j->next = NULL;
    if (a->ready_tail)
        a->ready_tail->next = j;
    else
        a->ready_head = j;
    a->ready_tail = j;
}

int pipe_submit(struct app *a, struct job *j)
{
    pthread_mutex_lock(&a->lock);
    int r = ks_push(a->ks, j->key, j->keylen, &j->ks);
    if (r == 1)
        ready_push(a, j);
    pthread_mutex_unlock(&a->lock);
    if (r == 1)
        engines_wake(a);
    return r < 0 ? -1 : 0;
}

void pipe_key_done(struct app *a, const char *key, size_t keylen)
{
    pthread_mutex_lock(&a->lock);
    struct ks_job *next = ks_done(a->ks, key, keylen);
    if (next)
        ready_push(a, (struct job *)((char *)next - offsetof(struct job, ks)));
    pthread_mutex_unlock(&a->lock);
    if (next)
        engines_wake(a);
}

struct job *pipe_take(struct app *a, int max)
{
    struct job *head = NULL, **tail = &head;

    pthread_mutex_lock(&a->lock);
    while (max-- > 0 && a->ready_head) {
        struct job *j = a->ready_head;
        a->ready_head = j->next;
        if (!a->ready_head)
            a->ready_tail = NULL;
        j->next = NULL;
        *tail = j;
        tail = &j->next;
    }
    pthread_mutex_unlock(&a->lock);
    return head;
}

bool pipe_has_ready(struct app *a)
{
    pthread_mutex_lock(&a->lock);
    bool r = a->ready_head != NULL;
    pthread_mutex_unlock(&a->lock);
    return r;
}
