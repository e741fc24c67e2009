/* topicread: reads every partition of one topic with a consumer that has no
 * group (assign(), never a commit), keeping each partition's position, and
 * says when those positions have reached a target: the topic's end offsets
 * as of some moment. The state loader tails topic.state with it (its
 * catch-up barrier); the operator subcommands read a topic to its end with
 * it. "Reached" counts partition EOF events, so a partition whose last
 * offsets were compacted away, or an empty one, is caught up too.
 *
 * One thread polls (tr_poll, tr_done); tr_set_target, tr_caught_up and
 * tr_progress may be called from another (positions and targets are
 * atomic); tr_assign only before polling starts. The consumer handle stays
 * the caller's. */
#ifndef BWPROVD_TOPICREAD_H
#define BWPROVD_TOPICREAD_H

#include "strec.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

struct tr;

/* Asks Kafka (through rk, up to timeout_ms) how many partitions topic has.
 * Returns the reader, or NULL with the reason in err: Kafka did not answer,
 * the topic does not exist, or out of memory. */
struct tr *tr_new(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen);
void tr_free(struct tr *t);

int tr_partitions(const struct tr *t);
const char *tr_topic(const struct tr *t);

/* Assigns every partition, each from start[p] (an offset), or from the
 * beginning when start is NULL. Returns 0 or a librdkafka error. */
rd_kafka_resp_err_t tr_assign(struct tr *t, const int64_t *start);

/* Records the partitions' end offsets (asked through via, which may be
 * another handle whose connections are up already) as the target. Returns
 * 0, or the first error (targets of the partitions asked before it are
 * updated). */
rd_kafka_resp_err_t tr_set_target(struct tr *t, rd_kafka_t *via, int timeout_ms);
/* The target of partition p (after tr_set_target). */
int64_t tr_target(const struct tr *t, int32_t p);

/* The next message, or NULL after timeout_ms. A partition EOF event moves
 * that partition's position to the end and is not returned. A message
 * with m->err set is returned as it is. The caller destroys what it gets
 * and calls tr_done() once it has dealt with a message. */
rd_kafka_message_t *tr_poll(struct tr *t, int timeout_ms);
/* The caller is done with m: its partition's position moves past it
 * (nothing for an error). */
void tr_done(struct tr *t, const rd_kafka_message_t *m);
/* Whether m lies below its partition's target (part of what is to be
 * read, not something written since the target was taken). */
bool tr_below_target(const struct tr *t, const rd_kafka_message_t *m);

/* Whether every partition's position has reached its target. */
bool tr_caught_up(const struct tr *t);

/* Progress towards the target, in offsets: *done of *total, counted from
 * where each partition started (its low watermark when it was assigned
 * from the beginning). After tr_set_target. */
void tr_progress(const struct tr *t, uint64_t *done, uint64_t *total);

/* --- records of topic.state, as every reader applies them --- */

/* The source of a tombstone m (a remove of versions before removed
 * markers) from its bwprovd-source header, into topic (cap bytes) and
 * *src; false (src untouched) when it has none that parses. */
bool tr_tombstone_source(const rd_kafka_message_t *m, char *topic, size_t cap, struct st_src *src);

/* The headers of a state record written by writer (an instance id) for
 * the event at topic/partition/offset: bwprovd-writer, bwprovd-source.
 * The caller hands them to the producer (or destroys them). */
rd_kafka_headers_t *tr_state_headers(const char *writer, const char *topic, int32_t partition,
                                     int64_t offset);

/* Applies the state record m to t with strec.c's rules: user (room for
 * EV_MAX_USER_ID + 1 bytes) gets its key, a tombstone its source from
 * its header. SR_BAD_KEY when the key cannot be a userId (nothing
 * applied); otherwise sr_apply's result and *why (why may be NULL). */
enum sr_result tr_apply_state(struct st_table *t, const rd_kafka_message_t *m, char *user,
                              const char **why);

#endif
