/* log: see log.h. */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#define LOG_LINE_MAX 4096

static atomic_int log_level = LOG_LVL_INFO;
static bool log_to_journal;

static const char *const level_names[8] = {
    [LOG_LVL_ERR] = "err",   [LOG_LVL_WARNING] = "warning", [LOG_LVL_NOTICE] = "notice",
    [LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug",
};

/* $JOURNAL_STREAM is "device:inode" of the stream journald gave us; it only
 * counts if stderr is still that stream (not redirected by a wrapper). */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return false;
    if (fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(void)
{
    log_to_journal = stderr_is_journal();
}

void log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int log_get_level(void)
{
    return atomic_load_explicit(&log_level, memory_order_relaxed);
}

int log_level_parse(const char *name, int *level)
{
    for (int i = 0; i < 8; i++) {
        if (level_names[i] && strcmp(level_names[i], name) == 0) {
            *level = i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(int level)
{
    if (level < 0 || level > 7 || !level_names[level])
        return "info";
    return level_names[level];
}

/* Bytes a logfmt value can carry as they are; anything else makes it
 * quoted, and inside quotes '"', '\\' and controls are escaped. */
static bool plain_char(unsigned char c)
{
    return c > ' ' && c != '"' && c != '=' && c != '\\' && c != 0x7f;
}

static bool needs_quotes(const char *v)
{
    if (*v == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (!plain_char(*p))
            return true;
    return false;
}

/* Appends n bytes (as many as fit, always terminated). One call per run of
 * bytes, not per byte: a log line is built for every event. */
static size_t put_bytes(char *buf, size_t len, size_t cap, const char *s, size_t n)
{
    if (len + 1 < cap) {
        size_t room = cap - 1 - len;
        if (n > room)
            n = room;
        memcpy(buf + len, s, n);
        len += n;
    }
    buf[len < cap ? len : cap - 1] = '\0';
    return len;
}

static size_t put_char(char *buf, size_t len, size_t cap, char c)
{
    return put_bytes(buf, len, cap, &c, 1);
}

static size_t put_str(char *buf, size_t len, size_t cap, const char *s)
{
    return put_bytes(buf, len, cap, s, strlen(s));
}

/* Quoted logfmt value: control characters escaped so one record stays one line. */
static size_t put_quoted(char *buf, size_t len, size_t cap, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)v;

    len = put_char(buf, len, cap, '"');
    while (*p) {
        const unsigned char *run = p;
        while (*p >= ' ' && *p != '"' && *p != '\\' && *p != 0x7f)
            p++;
        len = put_bytes(buf, len, cap, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            len = put_bytes(buf, len, cap, esc, 2);
        } else if (*p == '\n') {
            len = put_bytes(buf, len, cap, "\\n", 2);
        } else {
            char esc[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
            len = put_bytes(buf, len, cap, esc, 4);
        }
        p++;
    }
    return put_char(buf, len, cap, '"');
}

size_t log_fmt_pair(char *buf, size_t len, size_t cap, const char *key, const char *value)
{
    if (cap == 0)
        return 0;
    if (len > 0)
        len = put_char(buf, len, cap, ' ');
    len = put_str(buf, len, cap, key);
    len = put_char(buf, len, cap, '=');
    if (needs_quotes(value))
        return put_quoted(buf, len, cap, value);
    return put_str(buf, len, cap, value);
}

/* "2026-11-26T10:00:00.412Z"; the date and time part is formatted once a
 * second per thread (gmtime_r and strftime cost more than the rest of a
 * line's prefix). */
static void timestamp(char *ts, size_t cap)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[32];
    static _Thread_local size_t cached_len;
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = now.tv_sec;
    }
    long ms = now.tv_nsec / 1000000;
    if (cap < cached_len + 6)
        return;
    memcpy(ts, cached, cached_len);
    char *t = ts + cached_len;
    *t++ = '.';
    *t++ = (char)('0' + ms / 100);
    *t++ = (char)('0' + ms / 10 % 10);
    *t++ = (char)('0' + ms % 10);
    *t++ = 'Z';
    *t = '\0';
}

static size_t put_prefix(char *buf, size_t cap, int level)
{
    char ts[40] = "";

    timestamp(ts, sizeof(ts));
    buf[0] = '\0';
    size_t len = log_fmt_pair(buf, 0, cap, "ts", ts);
    return log_fmt_pair(buf, len, cap, "level", log_level_name(level));
}

static void emit_line(char *buf, size_t len, size_t cap)
{
    if (len + 1 >= cap)
        len = cap - 2;
    buf[len++] = '\n';
    /* One write per record so concurrent threads never interleave a line. */
    ssize_t w;
    do {
        w = write(STDERR_FILENO, buf, len);
    } while (w < 0 && errno == EINTR);
}

void log_write(int level, const char *msgid, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (log_to_journal) {
        if (msgid)
            sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "MESSAGE_ID=%s", msgid,
                            "SYSLOG_IDENTIFIER=bwprovd", NULL);
        else
            sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "SYSLOG_IDENTIFIER=bwprovd",
                            NULL);
        return;
    }
    char line[LOG_LINE_MAX + 256];
    size_t len = put_prefix(line, sizeof(line), level);
    len = log_fmt_pair(line, len, sizeof(line), "msg", msg);
    if (msgid)
        len = log_fmt_pair(line, len, sizeof(line), "message_id", msgid);
    emit_line(line, len, sizeof(line));
}

/* The fields of one outcome as (journal name, logfmt name, value) triples. */
struct field {
    const char *jname;
    const char *kname;
    char value[LOG_LINE_MAX / 4];
};

static void add_str(struct field *f, int *n, const char *j, const char *k, const char *v)
{
    size_t len = strnlen(v, sizeof(f->value) - 1);
    f[*n].jname = j;
    f[*n].kname = k;
    memcpy(f[*n].value, v, len);
    f[*n].value[len] = '\0';
    (*n)++;
}

static void add_int(struct field *f, int *n, const char *j, const char *k, int64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    digits[--i] = '\0';
    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[--i] = '-';
    add_str(f, n, j, k, digits + i);
}

/* Filled with copies, not snprintf: this runs for every event. */
static int collect_fields(const struct log_outcome *o, struct field *f)
{
    int n = 0;
    if (o->event_id)
        add_str(f, &n, "BWPROVD_EVENT_ID", "event_id", o->event_id);
    if (o->event_type)
        add_str(f, &n, "BWPROVD_EVENT_TYPE", "event_type", o->event_type);
    if (o->user_id)
        add_str(f, &n, "BWPROVD_USER_ID", "user_id", o->user_id);
    if (o->outcome)
        add_str(f, &n, "BWPROVD_OUTCOME", "outcome", o->outcome);
    if (o->http_status >= 0)
        add_int(f, &n, "BWPROVD_HTTP_STATUS", "http_status", o->http_status);
    if (o->tracking_id)
        add_str(f, &n, "BWPROVD_TRACKING_ID", "tracking_id", o->tracking_id);
    add_int(f, &n, "BWPROVD_ATTEMPT", "attempt", o->attempt);
    if (o->topic)
        add_str(f, &n, "BWPROVD_TOPIC", "topic", o->topic);
    if (o->partition >= 0) {
        add_int(f, &n, "BWPROVD_PARTITION", "partition", o->partition);
        add_int(f, &n, "BWPROVD_OFFSET", "offset", o->offset);
    }
    /* the audit trail of ids outside Kafka: found even if the state topic
     * and the journal were lost */
    if (o->workspace_id)
        add_str(f, &n, "BWPROVD_WORKSPACE_ID", "workspace_id", o->workspace_id);
    if (o->subscriber_id)
        add_str(f, &n, "BWPROVD_SUBSCRIBER_ID", "subscriber_id", o->subscriber_id);
    return n;
}

static void outcome_message(const struct log_outcome *o, char *msg, size_t cap)
{
    int n = snprintf(msg, cap, "%s %s: %s", o->event_type ? o->event_type : "event",
                     o->user_id ? o->user_id : "(no user)", o->outcome ? o->outcome : "?");
    if (n < 0 || (size_t)n >= cap)
        return;
    if (o->http_status >= 0)
        n += snprintf(msg + n, cap - (size_t)n, " (HTTP %d)", o->http_status);
    if (o->detail && (size_t)n < cap)
        snprintf(msg + n, cap - (size_t)n, ": %s", o->detail);
}

static void outcome_to_journal(const struct log_outcome *o, const struct field *f, int n,
                               const char *msg)
{
    enum { MAXF = 16 };
    char mline[LOG_LINE_MAX / 2 + 16];
    char lines[MAXF][LOG_LINE_MAX / 4 + 32];
    struct iovec iov[MAXF + 1];
    int k = 0;

    snprintf(mline, sizeof(mline), "MESSAGE=%s", msg);
    snprintf(lines[k++], sizeof(lines[0]), "PRIORITY=%d", o->level);
    snprintf(lines[k++], sizeof(lines[0]), "SYSLOG_IDENTIFIER=bwprovd");
    for (int i = 0; i < n && k < MAXF; i++, k++)
        snprintf(lines[k], sizeof(lines[k]), "%s=%s", f[i].jname, f[i].value);
    iov[0].iov_base = mline;
    iov[0].iov_len = strlen(mline);
    for (int i = 0; i < k; i++) {
        iov[i + 1].iov_base = lines[i];
        iov[i + 1].iov_len = strlen(lines[i]);
    }
    sd_journal_sendv(iov, k + 1);
}

void log_outcome(const struct log_outcome *o)
{
    struct field f[12];
    char msg[LOG_LINE_MAX / 2];

    if (o->level > log_get_level())
        return;
    int n = collect_fields(o, f);
    outcome_message(o, msg, sizeof(msg));
    if (log_to_journal) {
        outcome_to_journal(o, f, n, msg);
        return;
    }
    char line[LOG_LINE_MAX * 2];
    size_t len = put_prefix(line, sizeof(line), o->level);
    len = log_fmt_pair(line, len, sizeof(line), "msg", msg);
    for (int i = 0; i < n; i++)
        len = log_fmt_pair(line, len, sizeof(line), f[i].kname, f[i].value);
    emit_line(line, len, sizeof(line));
}
