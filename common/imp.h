/* imp: `bwprovd state import`: reading the file of workspaces provisioned
 * before bwprovd (CSV or JSON Lines, one workspace a line), checking every
 * row, finding rows of one file that contradict each other, deciding what
 * a row does to the map, and the state record it becomes. Pure; not
 * thread-safe per parser (one per file).
 *
 * The imported record must never make a real event look already applied
 * (SPEC §4: an event whose topic and partition match the user's record and
 * whose offset is not above it gets no API call). So a new user's record
 * names the source IMP_SOURCE_TOPIC, partition -1, offset -1: ':' cannot
 * be in a Kafka topic name, so no event ever shares it, and readers never
 * compare its offset with an event's. A record that replaces an entry
 * (--force) keeps that entry's source: it asserts nothing about events that
 * the map did not assert already, and a daemon's newer record for the user
 * (same partition, higher offset) still wins over it wherever the two land
 * in the topic. See docs/formats.md. */
#ifndef BWPROVD_IMP_H
#define BWPROVD_IMP_H

#include "state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The source of an imported record for a user the map did not have. */
#define IMP_SOURCE_TOPIC "bwprovd:import"
/* Lines are at most this long (a longer one is refused, not read). */
#define IMP_MAX_LINE 65536
/* CSV fields per line at most. */
#define IMP_MAX_FIELDS 32

/* The columns (CSV header names and JSON members), in the positional
 * order of a CSV file without a header line. */
enum imp_col {
    IMP_USER,
    IMP_WS,
    IMP_ENTERPRISE,
    IMP_DISPLAY,
    IMP_PROVISIONING,
    IMP_PHONE,
    IMP_EXTENSION,
    IMP_NCOLS
};
extern const char *const imp_col_names[IMP_NCOLS];

/* What a row does to the map (imp_decide). */
enum imp_action { IMP_NEW, IMP_REPLACE, IMP_UNCHANGED, IMP_REFUSE };

/* One workspace of the file: its fields (NULL when absent or empty) point
 * into the same allocation; free() frees the row. */
struct imp_row {
    unsigned line;
    char *f[IMP_NCOLS];
    const struct imp_row *dup_of; /* an earlier line with the same userId and id */
    bool conflict;                /* contradicts another line (why says which) */
    char why[64];                 /* the refusal reason, when conflict */
    enum imp_action action;       /* the caller's record of what it decided */
};

enum imp_format { IMP_FMT_UNKNOWN, IMP_FMT_CSV, IMP_FMT_JSONL };

struct imp_parser {
    enum imp_format fmt;     /* decided by the first line with data */
    bool header;             /* a CSV header line was read */
    int map[IMP_MAX_FIELDS]; /* CSV column -> enum imp_col, -1: ignored */
    int nmap;
    bool header_bad; /* the CSV header was refused: so is every row */
    unsigned line;   /* lines read so far */
};

void imp_init(struct imp_parser *p);

enum imp_parsed { IMP_ROW, IMP_SKIP, IMP_SUBSCRIBER, IMP_BAD };

/* Parses the next line (len bytes, without its newline; a trailing CR and,
 * on the first line, a UTF-8 byte order mark are dropped). IMP_ROW: *row is
 * a new row (the caller frees it); IMP_SKIP: a blank line, a '#' comment or
 * the CSV header; IMP_SUBSCRIBER: a subscriber's state record (a line of an
 * export: not imported, bwprovd finds a subscriber's id again by lookup);
 * IMP_BAD: the reason is in why (the line is refused). The
 * first line with data decides the format: '{' JSON Lines, else CSV (with
 * a header when its first field is "userId"). */
enum imp_parsed imp_parse_line(struct imp_parser *p, const char *line, size_t len,
                               struct imp_row **row, char *why, size_t cap);

/* Checks a row's fields: userId (1-256 bytes of UTF-8 without control
 * characters), workspaceId (wsid_check_place), the bounds of the others.
 * Returns true, or false with the reason in why. */
bool imp_check(const struct imp_row *r, char *why, size_t cap);

/* Marks rows that contradict each other: a userId on several lines with
 * different workspace ids, or one workspace id for several users (every
 * such row: conflict, why names another line); a line with the userId and
 * workspace id of an earlier one: dup_of that one (a conflict only when
 * that one is). rows are checked ones, in file order. Returns 0, or -1
 * when out of memory (nothing marked). */
int imp_mark_conflicts(struct imp_row **rows, size_t n);

/* What the map holds that matters for a row. */
struct imp_existing {
    enum st_status status; /* the row's user's entry */
    const char *ws;        /* its workspace id (ST_PRESENT) */
    const char *holder;    /* the user holding the row's workspace id, NULL: none */
    bool subscriber;       /* the entry is a subscriber's (ST_PRESENT) */
};

/* What the row does: NEW (the map has no entry), UNCHANGED (the same id),
 * REPLACE (another id, or a removed marker, only with force), or REFUSE
 * (why says why: the entry without force, or the id is another user's,
 * force or not). */
enum imp_action imp_decide(const struct imp_row *r, const struct imp_existing *e, bool force,
                           char *why, size_t cap);

/* The source an imported record gets: entry's (the source of the entry it
 * replaces) when it has a topic, else IMP_SOURCE_TOPIC/-1/-1. */
void imp_source(const struct st_src *entry, struct st_src *out);

/* The state record value for r (SPEC §4's layout, "kind": "workspace",
 * "eventId": null, plus "importedFrom": origin), malloc'd with its length
 * in *len, or NULL when out of memory. */
char *imp_record_json(const struct imp_row *r, const struct st_src *src, int64_t now_ms,
                      const char *origin, size_t *len);

#endif
