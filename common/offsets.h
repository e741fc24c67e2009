/* offsets: per-partition tracker of which consumed offsets are finished, so
 * the consumer stores only the lowest unfinished offset: work completing out
 * of order is never skipped after a crash. Not thread-safe: owned by the
 * consumer thread. */
#ifndef BWPROVD_OFFSETS_H
#define BWPROVD_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

struct off_tracker;

struct off_tracker *off_new(void);
void off_free(struct off_tracker *t);

/* Records a consumed offset; offsets must strictly increase (gaps are fine:
 * compaction). Returns 0, -1 when it does not increase (a duplicate), or -2
 * when out of memory: the offset is then not tracked, so the caller must
 * never store a commit point for the partition again. */
int off_add(struct off_tracker *t, int64_t offset);

/* off_add() with a stamp of the caller's (e.g. when the offset was
 * consumed; not 0), which off_oldest() gives back while it is unfinished. */
int off_add_at(struct off_tracker *t, int64_t offset, int64_t stamp);

/* The stamp of the lowest unfinished offset (*offset set to it), or 0 when
 * none is unfinished (*offset untouched). */
int64_t off_oldest(const struct off_tracker *t, int64_t *offset);

/* Marks a tracked offset finished. Returns 0, or -1 if it is not tracked. */
int off_done(struct off_tracker *t, int64_t offset);

/* The offset to commit: the lowest unfinished one, or one past the highest
 * finished when nothing is pending; -1 before any offset was added. */
int64_t off_commit_point(const struct off_tracker *t);

/* Offsets added and not yet finished. */
size_t off_pending(const struct off_tracker *t);

#endif
