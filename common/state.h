/* state: the in-memory state table of SPEC §4: BroadWorks userId -> Webex
 * workspace id plus the event (topic/partition/offset) that last changed it.
 * A removed user keeps a small marker with that source, so a replayed
 * provision that was already undone by a later remove is still recognised.
 * Thread-safe (an internal rwlock): the state loader writes, workers read and
 * write through. */
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

struct st_table *st_new(void);
void st_free(struct st_table *t);

/* Looks user up. For ST_PRESENT the workspace id is copied to ws (truncated
 * to wscap, always terminated). */
enum st_status st_get(struct st_table *t, const char *user, char *ws, size_t wscap);

/* Whether the event at src was already applied to user: the user's record
 * (present or removed) comes from the same topic and partition at an offset
 * not below src's. */
bool st_applied(struct st_table *t, const char *user, const struct st_src *src);

/* Sets user's workspace. Returns 0, or -1 when out of memory. */
int st_put(struct st_table *t, const char *user, const char *workspace_id,
           const struct st_src *src);

/* Marks user removed (src may have a NULL topic when unknown). */
int st_remove(struct st_table *t, const char *user, const struct st_src *src);

/* Users with a workspace (not counting removal markers). */
size_t st_count(struct st_table *t);

#endif
