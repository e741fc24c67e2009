/* result: the result record of SPEC §6 and the state record of SPEC §4,
 * as JSON. Pure functions; thread-safe. */
#ifndef BWPROVD_RESULT_H
#define BWPROVD_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum res_outcome { RES_SUCCEEDED, RES_FAILED, RES_REJECTED };

struct res_source {
    const char *topic;
    int32_t partition;
    int64_t offset;
};

/* Strings are borrowed and may be NULL (written as JSON null). */
struct res_record {
    const char *event_id;
    const char *type;
    const char *user_id;
    enum res_outcome outcome;
    int http_status; /* < 0: null (no response) */
    const char *workspace_id;
    /* A subscriber event's result carries these instead of workspaceId. */
    bool subscriber;
    const char *subscriber_id;
    const char *status; /* the final provisioning status */
    const char *person_id;
    const char *tracking_id;
    int attempts;
    const char *note;
    const char *error_kind; /* NULL: "error": null */
    const char *error_message;
    struct res_source source;
    int64_t completed_ms; /* Unix epoch, milliseconds */
    int64_t latency_ms;
};

const char *res_outcome_name(enum res_outcome o);

/* Returns a malloc'd JSON document (*len set), or NULL when out of memory. */
char *res_to_json(const struct res_record *r, size_t *len);

/* The state record value of SPEC §4: a workspace or a subscriber
 * ("kind"), or a removed marker (removed: the user no longer has the id;
 * a rename also names the userId it went to). Markers are records, not
 * tombstones, so compaction keeps them. */
struct res_state {
    bool removed;
    bool subscriber;        /* "kind": "subscriber", the id is subscriber_id */
    const char *renamed_to; /* marker of a rename, else NULL */
    const char *workspace_id;
    const char *subscriber_id;
    const char *user_id;
    const char *sp_enterprise_id;
    const char *provisioning_id;
    const char *display_name;
    const char *phone;
    const char *extension;
    /* Subscribers only. */
    const char *first_name, *last_name, *package, *mobile, *email, *language, *timezone;
    const char *status; /* provisioning status; "provisioning"/"updating": not final */
    const char *person_id;
    const char *event_id;
    struct res_source source;
    int64_t updated_ms;
};
char *res_state_to_json(const struct res_state *s, size_t *len);

/* What a reader needs of a state record value (the loader, the journal's
 * replay). Strings are copies; workspace_id is NULL when absent, not a
 * string or longer than the API allows, source.topic NULL when the record
 * has no usable source. */
struct res_state_in {
    bool removed;
    bool other_kind; /* "kind" names something else than a workspace or a subscriber */
    bool subscriber; /* "kind": "subscriber": workspace_id holds its subscriberId */
    bool pending;    /* a subscriber whose status is not final (provisioning, updating) */
    bool failed;     /* a subscriber whose provisioning ended in status error */
    const char *workspace_id;
    struct res_source source;
    char ws_buf[257];
    char topic_buf[256];
};
/* Parses value (not NUL-terminated). Returns 0, or -1 when it is not a JSON
 * object. */
int res_state_parse(const char *value, size_t len, struct res_state_in *out);
/* Where a subscriber record's provisioning stands, for the state table. */
#define sub_state(in) ((in)->pending ? ST_SUB_PENDING : (in)->failed ? ST_SUB_FAILED : ST_SUB_DONE)

/* Formats epoch milliseconds as "2026-11-26T10:00:00.412Z". */
void res_format_time(int64_t epoch_ms, char *out, size_t outlen);

#endif
