/* Linked only into ThreadSanitizer builds (BWPROVD_TSAN).
 *
 * librdkafka starts its threads with C11 thrd_create(), which glibc 2.34+
 * implements without going through pthread_create(); the TSan runtimes of
 * gcc 12 and clang 14 intercept only pthread_create(), so librdkafka's
 * threads run without TSan state and crash in their first malloc. Defining
 * thrd_create() here interposes on glibc's for the whole process and routes
 * it through pthread_create(), which TSan does see; thrd_join() and
 * thrd_detach() likewise, or every librdkafka thread looks leaked. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

struct start {
    thrd_start_t fn;
    void *arg;
};

static void *trampoline(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    struct start *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    pthread_t t;
    if (pthread_create(&t, NULL, trampoline, s) != 0) {
        free(s);
        return thrd_error;
    }
    *thr = (thrd_t)t;
    return thrd_success;
}

int thrd_join(thrd_t thr, int *res)
{
    void *ret;
    if (pthread_join((pthread_t)thr, &ret) != 0)
        return thrd_error;
    if (res)
        *res = (int)(intptr_t)ret;
    return thrd_success;
}

int thrd_detach(thrd_t thr)
{
    return pthread_detach((pthread_t)thr) == 0 ? thrd_success : thrd_error;
}
