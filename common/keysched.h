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
};

struct ks;

struct ks *ks_new(void);
/* The scheduler must be empty (every pushed job done). */
void ks_free(struct ks *ks);

/* Queues j behind the key's earlier jobs. Returns 1 when j is runnable now
 * (the key was idle), 0 when it waits, -1 when out of memory. */
int ks_push(struct ks *ks, const char *key, size_t keylen, struct ks_job *j);

/* The key's running job is finished; returns the key's next job, which is
 * now runnable, or NULL when the key has no more work. The scheduler never
 * touches a job once it was handed out as runnable, so the finished job
 * may already be freed. */
struct ks_job *ks_done(struct ks *ks, const char *key, size_t keylen);

/* Empties the scheduler, handing every queued job to free_job (running
 * jobs belong to whoever runs them). For shutdown, after the workers have
 * stopped. */
void ks_clear(struct ks *ks, void (*free_job)(struct ks_job *j));

/* Number of keys with queued or running work. */
size_t ks_keys(const struct ks *ks);

#endif
