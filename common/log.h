/* log: leveled logging to journald (structured) or stderr (logfmt).
 *
 * Under journald ($JOURNAL_STREAM names our stderr) records go through
 * sd_journal_send() with bwprovd's own fields; elsewhere each record is one
 * logfmt line on stderr. All functions are thread-safe. */
#ifndef BWPROVD_LOG_H
#define BWPROVD_LOG_H

#include <stddef.h>
#include <stdint.h>

/* syslog priorities, so they map 1:1 to journald's PRIORITY=. */
enum log_level {
    LOG_LVL_ERR = 3,
    LOG_LVL_WARNING = 4,
    LOG_LVL_NOTICE = 5,
    LOG_LVL_INFO = 6,
    LOG_LVL_DEBUG = 7,
};

/* MESSAGE_ID values for the few messages an operator alerts on. They match
 * systemd/bwprovd.catalog. */
#define LOG_MID_STARTED "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c01"
#define LOG_MID_STOPPED "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c02"
#define LOG_MID_KAFKA_LOST "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c03"
#define LOG_MID_KAFKA_BACK "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c04"
#define LOG_MID_AUTH_FAILED "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c05"
#define LOG_MID_REFRESH_EXPIRING "5b7e2a8cf1d14a4b9e0c1f6a3d2b7c06"

/* Decides journald vs stderr once, from $JOURNAL_STREAM. */
void log_init(void);
void log_set_level(int level);
int log_get_level(void);
/* Parses "debug|info|notice|warning|err"; returns 0, or -1 if unknown. */
int log_level_parse(const char *name, int *level);
const char *log_level_name(int level);

void log_write(int level, const char *msgid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The level check comes before any formatting work. */
#define LOG(level, ...)                                                                            \
    do {                                                                                           \
        if ((level) <= log_get_level())                                                            \
            log_write((level), NULL, __VA_ARGS__);                                                 \
    } while (0)
#define log_err(...) LOG(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) LOG(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...) LOG(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) LOG(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) LOG(LOG_LVL_DEBUG, __VA_ARGS__)

/* One event outcome, logged with the SPEC §8 fields. Strings may be NULL;
 * http_status < 0 and partition < 0 mean "none". */
struct log_outcome {
    int level;
    const char *event_id;
    const char *event_type;
    const char *user_id;
    const char *outcome;
    int http_status;
    const char *tracking_id;
    int attempt;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *workspace_id;  /* the workspace the event concerns, if known */
    const char *subscriber_id; /* or the subscriber (BWPROVD_SUBSCRIBER_ID) */
    const char *detail;        /* note or error message */
};
void log_outcome(const struct log_outcome *o);

/* Appends `key=value` in logfmt to buf (quoting and escaping as needed);
 * returns the new length, never more than cap - 1. Exposed for tests. */
size_t log_fmt_pair(char *buf, size_t len, size_t cap, const char *key, const char *value);

#endif
