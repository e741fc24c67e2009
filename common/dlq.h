/* dlq: what the operator subcommands `bwprovd dlq list` and `bwprovd dlq
 * replay` decide about dead-letter records: what bwprovd's headers on a
 * record say, the filters (--user, --kind, --since, --until) and their
 * TIME syntax, and whether a record may be replayed (refused, the loop
 * guard, stale). Pure; thread-safe. The headers are in docs/formats.md. */
#ifndef BWPROVD_DLQ_H
#define BWPROVD_DLQ_H

#include "event.h"
#include "state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Headers bwprovd writes on its state and DLQ records (the source event's
 * coordinates, the writing instance), and on a replayed event (which the
 * daemon copies to the DLQ record when the event fails again, so the count
 * survives a second failure). */
#define DQ_HDR_ERROR "bwprovd-error"
#define DQ_HDR_SOURCE "bwprovd-source"
#define DQ_HDR_WRITER "bwprovd-writer"
#define DQ_HDR_REPLAY_PREFIX "bwprovd-replay-"
#define DQ_HDR_REPLAY_OF "bwprovd-replay-of"         /* dlq topic/partition/offset */
#define DQ_HDR_REPLAY_COUNT "bwprovd-replay-count"   /* 1, 2, ... */
#define DQ_HDR_REPLAY_SOURCE "bwprovd-replay-source" /* the first failure's coordinates */

/* A record replayed this many times is not replayed again (the loop guard). */
#define DQ_MAX_REPLAYS 3

/* Parses TIME: "now", a duration ago ("30s", "15m", "2h", "7d", "1w"), a
 * date ("2026-11-26", midnight UTC) or a date and time
 * ("2026-11-26T10:00", "2026-11-26 10:00:05.250Z", "...+01:00"; without a
 * zone it is UTC). Returns 0 with *ms (epoch milliseconds), or -1. */
int dq_parse_time(const char *s, int64_t now_ms, int64_t *ms);

/* Whether kind is an error kind of SPEC §6 (the --kind values). */
bool dq_kind_known(const char *kind);
/* Those kinds, for messages: "permanent, exhausted, ...". */
extern const char dq_kind_list[];

/* A header's value as Kafka gave it; present false when absent. */
struct dq_bytes {
    const char *p;
    size_t len;
    bool present;
};

/* The parts of one DLQ record that matter here. Pointers are borrowed. */
struct dq_raw {
    const void *key; /* NULL: a null key */
    size_t keylen;
    const void *value;
    size_t len;
    int64_t ts_ms; /* the record's Kafka timestamp, -1 when it has none */
    struct dq_bytes error, source, replay_count, replay_source;
};

/* What a DLQ record says, read from its key, value and headers. */
struct dq_info {
    bool has_user;
    char user[EV_MAX_USER_ID + 1]; /* the key, when it can be a userId */
    int64_t ts_ms;
    char kind[32];      /* bwprovd-error before ": "; "" without one */
    const char *reason; /* after ": " (borrowed from raw, not terminated) */
    size_t reason_len;
    char type[32];   /* the event's "type", "" when its value has none */
    bool has_source; /* bwprovd-source: the event that failed */
    struct st_src source;
    char source_topic[256];
    bool has_origin; /* the first failure of a replayed event, else source */
    struct st_src origin;
    char origin_topic[256];
    int replays; /* bwprovd-replay-count: 0 when absent, -1 when unreadable */
};
void dq_info_from(const struct dq_raw *raw, struct dq_info *out);

/* The filters; NULL strings and has_* false match everything. */
struct dq_filter {
    const char *user;
    const char *kind;
    bool has_since, has_until;
    int64_t since_ms; /* records at or after */
    int64_t until_ms; /* records before */
};
bool dq_match(const struct dq_filter *f, const struct dq_info *i);

enum dq_verdict { DQ_REPLAY, DQ_REFUSED, DQ_LOOP_GUARD, DQ_STALE };

/* Whether the record may go back to topic events_topic (partitions
 * partitions): refused when it cannot be replayed as it is (no userId
 * key, no bwprovd-source, another topic, no such partition, an unreadable
 * count; a rejected ("invalid") event unless force: its bytes would be
 * rejected again), the loop guard once it was replayed DQ_MAX_REPLAYS
 * times (force or not), stale unless force when entry (the source of the
 * user's state record, NULL when the map has none) is from the same
 * topic and partition as the first failure at a later offset: replaying
 * it would undo a newer change. why gets the reason (for DQ_REPLAY "").
 */
enum dq_verdict dq_decide(const struct dq_info *i, const char *events_topic, int partitions,
                          const struct st_src *entry, bool force, char *why, size_t cap);

/* The replay headers for a record at dlq_topic/partition/offset: the
 * values of bwprovd-replay-of, -count and -source, each terminated. */
void dq_replay_headers(const struct dq_info *i, const char *dlq_topic, int32_t partition,
                       int64_t offset, char *of, size_t of_cap, char *count, size_t count_cap,
                       char *origin, size_t origin_cap);

/* One field for a line of `dlq list`: bytes copied with tabs, newlines,
 * other controls and backslashes escaped (\t \n \r \\ \xNN), so a record is
 * always one line of tab-separated columns. Truncated (with "...") to cap.
 */
void dq_escape(const char *s, size_t len, char *out, size_t cap);

#endif
