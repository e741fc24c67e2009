/* journal: the local, durable copy of every state change (SPEC §4: an id
 * answered by Webex "is recorded durably before the event counts as done,
 * and published to this topic once Kafka takes it").
 *
 * Each outcome that changes the state table appends one entry holding its
 * state records; a writer thread puts what has accumulated on disk with
 * one write and one fdatasync (group commit) and then hands each entry on
 * (done callback), so the records are produced to Kafka only once they are
 * safe on disk. When Kafka acknowledges them the entry is acked; a segment
 * file whose entries are all acked is deleted. Entries a previous run left
 * unacked (Kafka down at a stop, a crash) are read back at start and
 * published again (journal_foreach_left).
 *
 * Files: <dir>/journal/<16 hex digits>.seg, framed by common/jframe.h.
 * Thread-safe, unless said otherwise. */
#ifndef BWPROVD_JOURNAL_H
#define BWPROVD_JOURNAL_H

#include "jframe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;

/* Called on the journal thread once the entry is on disk (or could not be
 * written: the journal is failing and Kafka is then its only copy). */
typedef void (*journal_done_fn)(void *arg);

/* Opens or creates <dir>/journal (mode 0700), reads what a previous run
 * left, and starts the writer thread. NULL with a reason in err. */
struct journal *journal_open(const char *dir, char *err, size_t errlen);

/* Writes what is pending, runs its done callbacks and stops the writer
 * thread: afterwards nothing is handed on any more (acks still count). */
void journal_stop(struct journal *jl);

/* Stops (if needed), removes the segments if every entry is acknowledged
 * (else they wait for the next start) and frees the journal. Call when no
 * other thread uses it any more. */
void journal_close(struct journal *jl);

/* Appends one outcome's state records (copied). The entry's sequence
 * number (> 0) is stored in *seq under the journal's lock, before done can
 * run on the writer thread: afterwards the caller must not touch what done
 * may free. Returns 0, or -1 when the entry cannot be journaled (too large,
 * out of memory): done is then not called and *seq is not set. */
int journal_append(struct journal *jl, const struct jf_rec *recs, int n, journal_done_fn done,
                   void *arg, uint64_t *seq);

/* Kafka acknowledged every record of entry seq. */
void journal_ack(struct journal *jl, uint64_t seq);

/* Entries not yet acknowledged, including those a previous run left. */
long journal_unacked(struct journal *jl);

/* True while the journal cannot write; the reason is copied to why. */
bool journal_failing(struct journal *jl, char *why, size_t cap);

/* The entries a previous run left unacknowledged, oldest first. fn must ack
 * each (journal_ack) when it is in Kafka or needs no publishing. Call once
 * at start, from one thread; the records point into memory that stays
 * valid until journal_close. */
typedef void (*journal_left_fn)(void *arg, uint64_t seq, const struct jf_rec *recs, int n);
size_t journal_left(struct journal *jl);
void journal_foreach_left(struct journal *jl, journal_left_fn fn, void *arg);

/* Totals since open: entries appended, fdatasync calls, time spent in
 * them (µs). */
void journal_stats(struct journal *jl, uint64_t *entries, uint64_t *syncs, uint64_t *sync_us);

#endif
