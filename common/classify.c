/* classify: see classify.h. */
#include "classify.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_AFTER_MAX_S 3600

const char *cls_kind_name(enum cls_kind k)
{
    static const char *const names[] = {
        [KIND_PERMANENT] = "permanent",
        [KIND_EXHAUSTED] = "exhausted",
        [KIND_AUTH] = "auth",
        [KIND_CONFLICT] = "conflict",
        [KIND_UNKNOWN_WORKSPACE] = "unknown_workspace",
        [KIND_INVALID] = "invalid",
        [KIND_PROVISIONING] = "provisioning",
        [KIND_TIMEOUT] = "timeout",
    };
    if (k <= KIND_NONE || k >= KIND_COUNT)
        return NULL;
    return names[k];
}

static struct cls_verdict verdict(enum cls_action a, enum cls_kind k, const char *note)
{
    return (struct cls_verdict){a, k, note};
}

static bool transient(long status)
{
    return status == 0 || status == 500 || status == 502 || status == 503 || status == 504;
}

bool cls_success(long status)
{
    return status == 200 || status == 201 || status == 202 || status == 204;
}

struct cls_verdict cls_classify(const struct cls_input *in)
{
    long s = in->status;

    if (cls_success(s))
        return verdict(CLS_SUCCEEDED, KIND_NONE, NULL);
    if (s == 401)
        return in->auth_retried ? verdict(CLS_FAILED, KIND_AUTH, NULL)
                                : verdict(CLS_REAUTH, KIND_NONE, NULL);
    if (s == 429 || s == 423)
        return verdict(CLS_WAIT, KIND_NONE, NULL);
    if (transient(s))
        return in->attempts < in->max_attempts ? verdict(CLS_RETRY, KIND_NONE, NULL)
                                               : verdict(CLS_FAILED, KIND_EXHAUSTED, NULL);
    if (s == 404 && in->type == EV_REMOVE)
        return verdict(CLS_SUCCEEDED, KIND_NONE, "already_removed");
    if (s == 409 && in->type == EV_PROVISION)
        return in->have_state ? verdict(CLS_SUCCEEDED, KIND_NONE, "already_provisioned")
                              : verdict(CLS_FAILED, KIND_CONFLICT, NULL);
    return verdict(CLS_FAILED, KIND_PERMANENT, NULL);
}

int64_t cls_backoff_ms(int attempt, long initial_ms, long max_ms, uint64_t rnd)
{
    int64_t cap = initial_ms;
    for (int i = 1; i < attempt && cap < max_ms; i++)
        cap *= 2;
    if (cap > max_ms)
        cap = max_ms;
    if (cap <= 0)
        return 0;
    return (int64_t)(rnd % (uint64_t)(cap + 1));
}

static int64_t clamp_s(int64_t s)
{
    if (s < 0)
        return 0;
    return s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : s;
}

int cls_retry_after(const char *value, int64_t now_epoch, int64_t *seconds)
{
    if (!value)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (*end != '\0')
            return -1;
        *seconds = errno == ERANGE ? RETRY_AFTER_MAX_S : clamp_s((int64_t)v);
        return 0;
    }
    /* IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT". */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0')
        return -1;
    *seconds = clamp_s((int64_t)timegm(&tm) - now_epoch);
    return 0;
}
