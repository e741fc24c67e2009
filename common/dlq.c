/* dlq: see dlq.h. */
#include "dlq.h"

#include "strec.h"

#include <ctype.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* SPEC §6's error kinds; the daemon writes "failed" when it has none. */
static const char *const kinds[] = {"permanent",    "exhausted",         "auth",
                                    "conflict",     "unknown_workspace", "invalid",
                                    "provisioning", "timeout",           "failed"};
const char dq_kind_list[] = "permanent, exhausted, auth, conflict, unknown_workspace, invalid, "
                            "provisioning, timeout, failed";

bool dq_kind_known(const char *kind)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i], kind) == 0)
            return true;
    return false;
}

/* --- TIME --- */

/* n digits at *s as a number; advances *s. -1 when they are not digits. */
static int digits(const char **s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + (*s)[i] - '0';
    }
    *s += n;
    return v;
}

/* "30s", "15m", "2h", "7d", "1w" ago. */
static int parse_ago(const char *s, int64_t now_ms, int64_t *ms)
{
    char *end;
    if (!isdigit((unsigned char)s[0]) || strlen(s) > 10) /* no overflow below */
        return -1;
    long long n = strtoll(s, &end, 10);
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}, {'w', 604800000}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (end[0] == units[i].unit && end[1] == '\0') {
            *ms = now_ms - (int64_t)n * units[i].ms;
            return 0;
        }
    }
    return -1;
}

/* "Z", "+01:00", "-0530" or nothing (UTC): the offset in seconds. */
static int parse_zone(const char *s, long *off)
{
    *off = 0;
    if (*s == '\0' || (s[0] == 'Z' && s[1] == '\0'))
        return 0;
    if (*s != '+' && *s != '-')
        return -1;
    int sign = *s++ == '-' ? -1 : 1;
    int hh = digits(&s, 2);
    if (*s == ':')
        s++;
    int mm = digits(&s, 2);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || *s)
        return -1;
    *off = sign * (hh * 3600L + mm * 60L);
    return 0;
}

/* "HH:MM[:SS[.fff]]" after the date; *frac_ms gets the fraction. */
static int parse_clock(const char **s, struct tm *tm, int *frac_ms)
{
    tm->tm_hour = digits(s, 2);
    if (tm->tm_hour < 0 || *(*s)++ != ':' || (tm->tm_min = digits(s, 2)) < 0)
        return -1;
    if (**s == ':') {
        (*s)++;
        if ((tm->tm_sec = digits(s, 2)) < 0)
            return -1;
    }
    if (**s == '.') {
        int scale = 100;
        (*s)++;
        if (!isdigit((unsigned char)**s))
            return -1;
        for (; isdigit((unsigned char)**s); (*s)++, scale /= 10)
            *frac_ms += (**s - '0') * scale;
    }
    return 0;
}

static int parse_date_time(const char *s, int64_t *ms)
{
    struct tm tm = {0}, back;
    int frac_ms = 0;
    long off = 0;
    tm.tm_year = digits(&s, 4) - 1900;
    if (tm.tm_year < 70 || *s++ != '-' || (tm.tm_mon = digits(&s, 2) - 1) < 0 || *s++ != '-' ||
        (tm.tm_mday = digits(&s, 2)) < 0)
        return -1;
    if ((*s == 'T' || *s == ' ') && (s++, parse_clock(&s, &tm, &frac_ms) != 0))
        return -1;
    if (parse_zone(s, &off) != 0)
        return -1;
    struct tm want = tm;
    time_t t = timegm(&tm);
    /* timegm normalises Feb 30 or 25:00 into another day: refuse those */
    if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != want.tm_mday ||
        back.tm_mon != want.tm_mon || back.tm_hour != want.tm_hour || back.tm_min != want.tm_min ||
        back.tm_sec != want.tm_sec)
        return -1;
    *ms = ((int64_t)t - off) * 1000 + frac_ms;
    return 0;
}

int dq_parse_time(const char *s, int64_t now_ms, int64_t *ms)
{
    if (!s || !*s)
        return -1;
    if (strcmp(s, "now") == 0) {
        *ms = now_ms;
        return 0;
    }
    if (strlen(s) >= 10 && s[4] == '-')
        return parse_date_time(s, ms);
    return parse_ago(s, now_ms, ms);
}

/* --- what a record says --- */

/* "kind: message" of bwprovd-error. */
static void split_error(const struct dq_bytes *e, struct dq_info *out)
{
    const char *colon = e->present && e->p ? memchr(e->p, ':', e->len) : NULL;
    size_t klen = colon ? (size_t)(colon - e->p) : 0;
    if (!colon || klen == 0 || klen >= sizeof(out->kind)) {
        out->reason = e->present ? e->p : NULL;
        out->reason_len = e->present ? e->len : 0;
        return;
    }
    memcpy(out->kind, e->p, klen);
    out->kind[klen] = '\0';
    const char *r = colon + 1;
    if (r < e->p + e->len && *r == ' ')
        r++;
    out->reason = r;
    out->reason_len = e->len - (size_t)(r - e->p);
}

/* The event's "type", when its value is a JSON object with one. */
static void event_type(const void *value, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    if (!value || len == 0 || len > EV_MAX_BYTES)
        return;
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok)
        return;
    json_object *o = json_tokener_parse_ex(tok, value, (int)len), *t;
    if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "type", &t) &&
        json_object_is_type(t, json_type_string) && (size_t)json_object_get_string_len(t) < cap)
        snprintf(out, cap, "%s", json_object_get_string(t));
    json_object_put(o);
    json_tokener_free(tok);
}

static int parse_count(const struct dq_bytes *b)
{
    char buf[12];
    if (!b->present)
        return 0;
    if (!b->p || b->len == 0 || b->len >= sizeof(buf))
        return -1;
    memcpy(buf, b->p, b->len);
    buf[b->len] = '\0';
    for (size_t i = 0; i < b->len; i++)
        if (!isdigit((unsigned char)buf[i]))
            return -1;
    long n = strtol(buf, NULL, 10);
    return n > 1000000 ? -1 : (int)n;
}

void dq_info_from(const struct dq_raw *raw, struct dq_info *out)
{
    memset(out, 0, sizeof(*out));
    out->has_user = sr_key(raw->key, raw->keylen, out->user);
    out->ts_ms = raw->ts_ms;
    split_error(&raw->error, out);
    event_type(raw->value, raw->len, out->type, sizeof(out->type));
    out->has_source =
        raw->source.present && sr_parse_coords(raw->source.p, raw->source.len, out->source_topic,
                                               sizeof(out->source_topic), &out->source);
    out->has_origin = raw->replay_source.present &&
                      sr_parse_coords(raw->replay_source.p, raw->replay_source.len,
                                      out->origin_topic, sizeof(out->origin_topic), &out->origin);
    if (!out->has_origin && out->has_source) {
        memcpy(out->origin_topic, out->source_topic, sizeof(out->origin_topic));
        out->origin = out->source;
        out->has_origin = true;
    }
    if (out->has_origin)
        out->origin.topic = out->origin_topic;
    if (out->has_source)
        out->source.topic = out->source_topic;
    out->replays = parse_count(&raw->replay_count);
}

bool dq_match(const struct dq_filter *f, const struct dq_info *i)
{
    if (f->user && (!i->has_user || strcmp(f->user, i->user) != 0))
        return false;
    if (f->kind && strcmp(f->kind, i->kind) != 0)
        return false;
    if ((f->has_since || f->has_until) && i->ts_ms < 0)
        return false;
    if (f->has_since && i->ts_ms < f->since_ms)
        return false;
    return !f->has_until || i->ts_ms < f->until_ms;
}

/* --- replay --- */

static enum dq_verdict refuse(const struct dq_info *i, const char *events_topic, int partitions,
                              bool force, char *why, size_t cap)
{
    if (!i->has_user)
        snprintf(why, cap, "its key is not a userId");
    else if (!i->has_source)
        snprintf(why, cap, "no readable %s header (not a record of bwprovd)", DQ_HDR_SOURCE);
    else if (strcmp(i->source.topic, events_topic) != 0)
        snprintf(why, cap, "it came from topic %s, not topic.events (%s)", i->source.topic,
                 events_topic);
    else if (i->source.partition < 0 || i->source.partition >= partitions)
        snprintf(why, cap, "partition %" PRId32 " of %s does not exist", i->source.partition,
                 events_topic);
    else if (i->replays < 0)
        snprintf(why, cap, "its %s header is not a number", DQ_HDR_REPLAY_COUNT);
    else if (!force && strcmp(i->kind, "invalid") == 0)
        snprintf(why, cap,
                 "it was rejected as invalid: the same bytes would be rejected again "
                 "(--force replays it, e.g. after an upgrade)");
    else
        return DQ_REPLAY;
    return DQ_REFUSED;
}

enum dq_verdict dq_decide(const struct dq_info *i, const char *events_topic, int partitions,
                          const struct st_src *entry, bool force, char *why, size_t cap)
{
    why[0] = '\0';
    if (refuse(i, events_topic, partitions, force, why, cap) == DQ_REFUSED)
        return DQ_REFUSED;
    if (i->replays >= DQ_MAX_REPLAYS) {
        snprintf(why, cap, "replayed %d times already", i->replays);
        return DQ_LOOP_GUARD;
    }
    if (!force && entry && entry->topic && i->has_origin &&
        strcmp(entry->topic, i->origin.topic) == 0 && entry->partition == i->origin.partition &&
        entry->offset > i->origin.offset) {
        snprintf(why, cap,
                 "the state record of %s was written from offset %" PRId64
                 ", after the event's offset %" PRId64 " (--force replays it)",
                 i->user, entry->offset, i->origin.offset);
        return DQ_STALE;
    }
    return DQ_REPLAY;
}

void dq_replay_headers(const struct dq_info *i, const char *dlq_topic, int32_t partition,
                       int64_t offset, char *of, size_t of_cap, char *count, size_t count_cap,
                       char *origin, size_t origin_cap)
{
    snprintf(of, of_cap, "%s/%" PRId32 "/%" PRId64, dlq_topic, partition, offset);
    snprintf(count, count_cap, "%d", (i->replays > 0 ? i->replays : 0) + 1);
    if (i->has_origin)
        snprintf(origin, origin_cap, "%s/%" PRId32 "/%" PRId64, i->origin.topic,
                 i->origin.partition, i->origin.offset);
    else if (origin_cap)
        origin[0] = '\0';
}

void dq_escape(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap)
        return;
    for (size_t k = 0; s && k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        char esc[8];
        if (c == '\t' || c == '\n' || c == '\r' || c == '\\')
            snprintf(esc, sizeof(esc), "\\%c",
                     c == '\t'   ? 't'
                     : c == '\n' ? 'n'
                     : c == '\r' ? 'r'
                                 : '\\');
        else if (c < 0x20 || c == 0x7f)
            snprintf(esc, sizeof(esc), "\\x%02x", c);
        else
            esc[0] = (char)c, esc[1] = '\0';
        size_t n = strlen(esc);
        if (o + n + 4 > cap) { /* room for "..." and the NUL */
            snprintf(out + o, cap - o, "%s", cap - o > 3 ? "..." : "");
            return;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
}
