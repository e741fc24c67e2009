/* keysched: per-key FIFOs with at most one runnable job per key, so one
 * user's events run strictly in order while different users run in
 * parallel. Jobs embed struct ks_job. Not thread-safe: the pipeline holds
 * its lock around these calls (they are O(1) and never block). */
#ifndef BWPROVD_KEYSCHED_H
#define BWPROVD_KEYSCHED_H

#include <stdbool.h>
#include <stddef.h>

struct ks_job {
    struct ks_job *next;
    bool barrier; /* set by ks_barrier_push() only */
};

/* A barrier takes a key's turn without running anything: jobs pushed for
 * the key after it wait until it is released. (A rename A -> N holds N's
 * turn this way, so the next event for N waits for the rename.) */
struct ks_barrier;

struct ks;

struct ks *ks_new(void);
/* The scheduler must be empty (every pushed job done). */
void ks_free(struct ks *ks);

/* Queues j behind the key's earlier jobs. Returns 1 when j is runnable now
 * (the key was idle), 0 when it waits, -1 when out of memory. */
int ks_push(struct ks *ks, const char *key, size_t keylen, struct ks_job *j);

/* The key's running job is finished; returns the key's next job, which is
 * now runnable, or NULL when the key has no more work or a barrier now
 * holds its turn. The scheduler never
 * touches a job once it was handed out as runnable, so the finished job
 * may already be freed. */
struct ks_job *ks_done(struct ks *ks, const char *key, size_t keylen);

/* Queues a barrier on key behind the key's earlier jobs. Returns it (the
 * scheduler owns it), or NULL when out of memory. */
struct ks_barrier *ks_barrier_push(struct ks *ks, const char *key, size_t keylen);

/* The barrier's work is over. Returns the key's next job if the barrier
 * held the key's turn and a job was waiting (now runnable), else NULL. b is
 * gone afterwards (a queued barrier passes the turn on when it comes). */
struct ks_job *ks_barrier_release(struct ks *ks, struct ks_barrier *b);

/* Empties the scheduler, handing every queued job to free_job (running
 * jobs belong to whoever runs them) and freeing every barrier. For
 * shutdown, after the workers have stopped. */
void ks_clear(struct ks *ks, void (*free_job)(struct ks_job *j));

/* Number of keys with queued or running work. */
size_t ks_keys(const struct ks *ks);

#endif
