/* health: what STATUS= says beyond the counters (bwprovd(8), SYSTEMD
 * INTEGRATION), and when the refresh token's expiry is warned about, as
 * pure functions of what the daemon observed. Thread-safe (no state). */
#ifndef BWPROVD_HEALTH_H
#define BWPROVD_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An event unfinished this long is named in STATUS=: longer than an API
 * answer, a few retries or a Retry-After second normally take. */
#define HL_OLDEST_AFTER_MS 10000
/* A refresh token that expires within this long is warned about, again
 * every HL_WARN_EVERY_MS. */
#define HL_REFRESH_WARN_MS (14LL * 86400 * 1000)
#define HL_WARN_EVERY_MS (86400LL * 1000)

/* What the daemon observed. Times are wall-clock milliseconds since the
 * epoch; 0 means "none" / "not known". */
struct hl_view {
    int64_t now_ms;
    const char *group; /* kafka.group.id */
    const char *topic; /* topic.events */
    bool assignment;   /* the group assigned this instance its partitions (maybe none) */
    bool stopping;     /* leaving the group: its state is no news */
    int partitions;    /* partitions assigned */
    int64_t load_done, load_total; /* state topic records read, of those to read */
    int64_t oldest_age_ms;         /* since the oldest unfinished event was consumed */
    int32_t oldest_partition;
    int64_t oldest_offset;
    int64_t auth_since_ms; /* Webex authentication failing since */
    const char *auth_why;
    int64_t refresh_expires_ms; /* when the refresh token expires */
};

/* The lag field of STATUS=: the number, or "-" while no partition is
 * assigned (0 would claim an instance with nothing to read is caught up). */
void hl_lag(const struct hl_view *v, long long lag, char *buf, size_t cap);

/* Appends "; reason" for each of: waiting for a partition assignment, no
 * partitions, loading the state table (how far), the oldest unfinished
 * event past HL_OLDEST_AFTER_MS, Webex authentication failing (since
 * when), a refresh token that expires within HL_REFRESH_WARN_MS. Writes at
 * buf + len, never past cap - 1; returns the new length. */
size_t hl_reasons(const struct hl_view *v, char *buf, size_t len, size_t cap);

/* Whether the refresh token's expiry is due a warning: it is known and
 * within HL_REFRESH_WARN_MS (or past), and none was given within
 * HL_WARN_EVERY_MS (warned_ms 0: never). */
bool hl_refresh_warn_due(int64_t expires_ms, int64_t now_ms, int64_t warned_ms);

/* "42s", "12 min", "5 h", "9 days": a duration in its largest whole unit
 * (seconds below 2 min, minutes below 2 h, hours below 2 days). */
void hl_duration(int64_t ms, char *buf, size_t cap);

/* "2026-11-26 10:00:05 UTC". */
void hl_utc(int64_t epoch_ms, char *buf, size_t cap);

#endif
