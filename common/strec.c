/* strec: see strec.h. */
#include "strec.h"

#include "event.h"
#include "result.h"
#include "wsid.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sr_key(const void *key, size_t len, char *user)
{
    if (!key || len == 0 || len > EV_MAX_USER_ID || memchr(key, '\0', len))
        return false;
    memcpy(user, key, len);
    user[len] = '\0';
    return true;
}

/* A whole decimal number s (a sign allowed, nothing else) in [lo, hi]. */
static bool whole_number(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)s[0]) || errno == ERANGE || v < lo ||
        v > hi)
        return false;
    *out = v;
    return true;
}

bool sr_parse_coords(const void *value, size_t len, char *topic, size_t cap, struct st_src *src)
{
    char buf[512];
    long long partition, offset;
    if (!value || len >= sizeof(buf))
        return false;
    memcpy(buf, value, len);
    buf[len] = '\0';
    char *slash2 = strrchr(buf, '/');
    if (!slash2)
        return false;
    *slash2 = '\0';
    char *slash1 = strrchr(buf, '/');
    if (!slash1 || !whole_number(slash1 + 1, INT32_MIN, INT32_MAX, &partition) ||
        !whole_number(slash2 + 1, INT64_MIN, INT64_MAX, &offset))
        return false;
    *slash1 = '\0';
    snprintf(topic, cap, "%s", buf);
    src->topic = topic;
    src->partition = (int32_t)partition;
    src->offset = (int64_t)offset;
    return true;
}

static enum sr_result table_rc(int rc)
{
    return rc < 0 ? SR_NOMEM : rc > 0 ? SR_OLDER : SR_APPLIED;
}

enum sr_result sr_apply(struct st_table *t, const char *user, const void *value, size_t len,
                        const struct st_src *tomb_src, const char **why)
{
    struct res_state_in in;
    if (!value) /* a tombstone: earlier versions' remove */
        return table_rc(st_remove(t, user, tomb_src));
    if (res_state_parse(value, len, &in) != 0)
        return SR_NOT_JSON;
    if (in.other_kind)
        return SR_OTHER_KIND;
    struct st_src src = {in.source.topic, in.source.partition, in.source.offset};
    if (in.removed)
        return table_rc(st_remove(t, user, &src));
    if (!in.workspace_id || wsid_check(in.workspace_id, strlen(in.workspace_id))) {
        if (why)
            *why = in.subscriber ? "subscriberId missing or not one path segment"
                                 : "workspaceId missing or not one path segment";
        return SR_BAD_ID;
    }
    if (in.subscriber)
        return table_rc(st_put_subscriber(t, user, in.workspace_id, sub_state(&in), &src));
    return table_rc(st_put(t, user, in.workspace_id, &src));
}
