/* state: the in-memory state table of SPEC §4: BroadWorks userId -> Webex
 * workspace id, or subscriber id (SPEC §2b), plus the event
 * (topic/partition/offset) that last changed it.
 * A removed user keeps a small marker with that source, so a replayed
 * provision that was already undone by a later remove is still recognised.
 * Every change records its source, so a change older than the entry (same
 * partition, lower offset) is refused: a late writer cannot undo a newer
 * state. Workspace ids are indexed too, so an event naming another user's
 * workspace can be refused. Thread-safe (an internal rwlock): the state
 * loader writes, workers read and write through. */
#ifndef BWPROVD_STATE_H
#define BWPROVD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct st_table;

struct st_src {
    const char *topic;
    int32_t partition;
    int64_t offset;
};

enum st_status { ST_ABSENT, ST_PRESENT, ST_REMOVED };

/* Where a subscriber's asynchronous provisioning stands. */
enum st_sub {
    ST_SUB_DONE,    /* final: provisioned, or Webex waits for the person */
    ST_SUB_PENDING, /* provisioning or updating: bwprovd follows it */
    ST_SUB_FAILED,  /* its provisioning ended in status error */
};

/* What a present entry is: a workspace, or a subscriber and its status. */
struct st_kind {
    bool subscriber;
    bool pending; /* ST_SUB_PENDING */
    bool failed;  /* ST_SUB_FAILED */
};

struct st_table *st_new(void);
void st_free(struct st_table *t);

/* Looks user up. For ST_PRESENT the workspace id is copied to ws (truncated
 * to wscap, always terminated). */
enum st_status st_get(struct st_table *t, const char *user, char *ws, size_t wscap);

/* As st_get, and the source of the user's entry: its topic is copied to
 * topic (cap bytes) and src->topic points there (NULL when unknown). */
enum st_status st_get_src(struct st_table *t, const char *user, char *ws, size_t wscap,
                          struct st_src *src, char *topic, size_t cap);

/* Whether the event at src was already applied to user: the user's record
 * (present or removed) comes from the same topic and partition at an offset
 * not below src's. */
bool st_applied(struct st_table *t, const char *user, const struct st_src *src);

/* Whether a change from src would be older than what the table has for
 * user: the user's entry comes from the same topic and partition at a
 * higher offset. One user's events share a partition, so only a late
 * writer (a previous owner of the partition, a stale journal entry) can
 * bring such a change; it must not undo the newer one. Changes from
 * another partition (a rename) are never taken for older. */
bool st_older(struct st_table *t, const char *user, const struct st_src *src);

/* Sets user's workspace, unless the change is older (st_older): then the
 * table is left as it is. Returns 0 (applied), 1 (older, ignored), or -1
 * when out of memory. */
int st_put(struct st_table *t, const char *user, const char *workspace_id,
           const struct st_src *src);

/* Sets user's subscriber and where its provisioning stands, as st_put does
 * a workspace. */
int st_put_subscriber(struct st_table *t, const char *user, const char *subscriber_id,
                      enum st_sub sub, const struct st_src *src);

/* As st_get_src (src may be NULL), and what the entry is. */
enum st_status st_get_kind(struct st_table *t, const char *user, char *id, size_t cap,
                           struct st_kind *kind, struct st_src *src, char *topic, size_t tcap);

/* Marks user removed (src may have a NULL topic when unknown); returns as
 * st_put. */
int st_remove(struct st_table *t, const char *user, const struct st_src *src);

/* Which user holds workspace_id: copies that userId to user (truncated to
 * cap, always terminated) and returns true, or false when no user has it. */
bool st_holder(struct st_table *t, const char *workspace_id, char *user, size_t cap);

/* Users with a workspace (not counting removal markers or subscribers). */
size_t st_count(struct st_table *t);
/* Users with a subscriber. */
size_t st_count_subscribers(struct st_table *t);

#endif
