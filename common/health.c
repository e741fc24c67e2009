/* health: see health.h. */
#include "health.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* snprintf at buf + len, clamped: the result stays a string within cap. */
static size_t append(char *buf, size_t len, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t append(char *buf, size_t len, size_t cap, const char *fmt, ...)
{
    if (len + 1 >= cap)
        return len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return len;
    return len + (size_t)n < cap ? len + (size_t)n : cap - 1;
}

void hl_lag(const struct hl_view *v, long long lag, char *buf, size_t cap)
{
    if (v->partitions > 0)
        snprintf(buf, cap, "%lld", lag);
    else
        snprintf(buf, cap, "-");
}

void hl_duration(int64_t ms, char *buf, size_t cap)
{
    int64_t s = ms > 0 ? ms / 1000 : 0;
    if (s < 120)
        snprintf(buf, cap, "%" PRId64 "s", s);
    else if (s < 2 * 3600)
        snprintf(buf, cap, "%" PRId64 " min", s / 60);
    else if (s < 2 * 86400)
        snprintf(buf, cap, "%" PRId64 " h", s / 3600);
    else
        snprintf(buf, cap, "%" PRId64 " days", s / 86400);
}

void hl_utc(int64_t epoch_ms, char *buf, size_t cap)
{
    time_t t = (time_t)(epoch_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, cap, "?");
}

static size_t group_reason(const struct hl_view *v, char *buf, size_t len, size_t cap)
{
    if (v->stopping)
        return len;
    if (!v->assignment)
        return append(buf, len, cap, "; waiting for a partition assignment from group %s",
                      v->group);
    if (v->partitions == 0)
        return append(buf, len, cap,
                      "; no partitions assigned: group %s gave every partition of %s to other "
                      "members",
                      v->group, v->topic);
    return len;
}

static size_t load_reason(const struct hl_view *v, char *buf, size_t len, size_t cap)
{
    if (v->load_total <= 0 || v->load_done >= v->load_total)
        return len;
    int64_t done = v->load_done > 0 ? v->load_done : 0;
    return append(buf, len, cap,
                  "; loading the state table: %d%% (%" PRId64 " of %" PRId64 " records)",
                  (int)(done * 100 / v->load_total), done, v->load_total);
}

static size_t oldest_reason(const struct hl_view *v, char *buf, size_t len, size_t cap)
{
    if (v->oldest_age_ms < HL_OLDEST_AFTER_MS)
        return len;
    char d[32];
    hl_duration(v->oldest_age_ms, d, sizeof(d));
    return append(buf, len, cap,
                  "; oldest event unfinished for %s (partition %" PRId32 " offset %" PRId64 ")", d,
                  v->oldest_partition, v->oldest_offset);
}

static size_t auth_reason(const struct hl_view *v, char *buf, size_t len, size_t cap)
{
    if (!v->auth_since_ms)
        return len;
    char since[40], d[32];
    hl_utc(v->auth_since_ms, since, sizeof(since));
    hl_duration(v->now_ms - v->auth_since_ms, d, sizeof(d));
    return append(buf, len, cap, "; cannot authenticate to Webex since %s (%s): %s", since, d,
                  v->auth_why && *v->auth_why ? v->auth_why : "token refused");
}

static size_t refresh_reason(const struct hl_view *v, char *buf, size_t len, size_t cap)
{
    int64_t left = v->refresh_expires_ms - v->now_ms;
    if (!v->refresh_expires_ms || left >= HL_REFRESH_WARN_MS)
        return len;
    char at[40], d[32];
    hl_utc(v->refresh_expires_ms, at, sizeof(at));
    if (left <= 0)
        return append(buf, len, cap, "; Webex refresh token expired at %s", at);
    hl_duration(left, d, sizeof(d));
    return append(buf, len, cap, "; Webex refresh token expires in %s (%s)", d, at);
}

size_t hl_reasons(const struct hl_view *v, char *buf, size_t len, size_t cap)
{
    len = group_reason(v, buf, len, cap);
    len = load_reason(v, buf, len, cap);
    len = oldest_reason(v, buf, len, cap);
    len = auth_reason(v, buf, len, cap);
    return refresh_reason(v, buf, len, cap);
}

bool hl_refresh_warn_due(int64_t expires_ms, int64_t now_ms, int64_t warned_ms)
{
    if (!expires_ms || expires_ms - now_ms >= HL_REFRESH_WARN_MS)
        return false;
    return !warned_ms || now_ms - warned_ms >= HL_WARN_EVERY_MS;
}
