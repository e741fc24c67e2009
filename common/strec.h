/* strec: how a reader of the state topic takes one record into a state
 * table (SPEC §4). The daemon's state loader and the operator subcommands
 * (`bwprovd state`, `bwprovd dlq replay`) apply records with this one
 * function, so what an operator is shown is exactly what every daemon
 * believes. Pure; thread-safe as far as the state table is. */
#ifndef BWPROVD_STREC_H
#define BWPROVD_STREC_H

#include "state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What sr_apply() did with a record. */
enum sr_result {
    SR_APPLIED,    /* the table took it */
    SR_OLDER,      /* older than the table's entry (a late writer): ignored */
    SR_NOMEM,      /* out of memory: the table is unchanged */
    SR_NOT_JSON,   /* the value is not a JSON object: ignored */
    SR_OTHER_KIND, /* a record of a kind this version does not know: not this table's */
    SR_BAD_ID,     /* its workspaceId/subscriberId is missing or cannot be one: ignored */
    SR_BAD_KEY,    /* its key cannot be a userId (tr_apply_state): ignored */
};

/* Whether a Kafka key can be a state record's userId (1..EV_MAX_USER_ID
 * bytes, no NUL); if so it is copied, terminated, to user, which has room
 * for EV_MAX_USER_ID + 1 bytes. key may be NULL (a null key). */
bool sr_key(const void *key, size_t len, char *user);

/* Parses "topic/partition/offset" (the bwprovd-source header: the topic is
 * everything before the last two slashes). The topic is copied to topic
 * (cap bytes) and src->topic points there. Returns false, src untouched,
 * when it has not that shape or is 512 bytes or longer. */
bool sr_parse_coords(const void *value, size_t len, char *topic, size_t cap, struct st_src *src);

/* Applies one state record of user to t: a removed marker or a tombstone
 * (value NULL; tomb_src is then its source, from its header, or a source
 * with a NULL topic) removes the user, a workspace or subscriber record
 * puts its id (a subscriber's with where its provisioning stands). A
 * record older than the user's entry is refused by the table (see st_put).
 * *why, when why is not NULL, is set to a static reason for SR_BAD_ID. */
enum sr_result sr_apply(struct st_table *t, const char *user, const void *value, size_t len,
                        const struct st_src *tomb_src, const char **why);

#endif
