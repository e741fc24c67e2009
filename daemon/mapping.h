/* mapping: what the HTTP workers (engine.c) do for a resource, and what
 * they offer it. The engine owns the transfers, the Retry-After gate, the
 * rate limiter, the due-time list and the statuses that mean the same for
 * every request (401, 429, 423, 5xx, no answer); a mapping knows its
 * resource: what the state table already answers, which request comes
 * next, and what an answer means. workspace.c maps workspaces (SPEC §1),
 * subscriber.c subscribers (SPEC §2b). Every function here runs on the
 * job's HTTP worker thread. */
#ifndef BWPROVD_MAPPING_H
#define BWPROVD_MAPPING_H

#include "app.h"
#include "classify.h"
#include "resp.h"

struct engine;
struct xfer;

struct map_ops {
    /* Before each request: what the state table already answers. Returns
     * true when the job needs a request; otherwise it was finished,
     * dropped or set to wait (eng_wait_until). */
    bool (*prepare)(struct engine *e, struct job *j);
    /* The job's next request. Returns 0, or -1 (it cannot be built). */
    int (*build)(const struct job *j, struct req *r);
    /* An answer (status 0: none) to the job's request, body parsed in r:
     * finish the job, or set it up for its next request. */
    void (*complete)(struct engine *e, struct xfer *x, struct job *j, long status, const char *body,
                     size_t len);
};

extern const struct map_ops workspace_map;
extern const struct map_ops subscriber_map;

/* --- what engine.c offers a mapping --- */

struct app *eng_app(struct engine *e);
/* Emits the job's outcome (outcome_emit): the job is gone afterwards. */
void eng_finish(struct engine *e, struct job *j, const struct outcome *o);
void eng_finish_simple(struct engine *e, struct job *j, int outcome, int kind, const char *note,
                       const char *msg, const char *id);
/* The job comes back (prepare, then a request) at due_us, holding no slot;
 * dropped instead when it may no longer start. */
void eng_wait_until(struct engine *e, struct job *j, int64_t due_us);
/* The job waits (no request, no slot) for the state table to learn what it
 * does not know yet: another instance's rename, a restarted instance's
 * journal. It comes back (prepare) every 200 ms while the window of
 * state.lookup_wait_ms, counted from the first call for the job, is open;
 * returns false (nothing done) once it has closed. */
bool eng_lookup_wait(struct engine *e, struct job *j);
/* An event that names its resource's id (id: a workspace's or a
 * subscriber's, noun says which) must name the user's own: the table's
 * entry for the user (st, known), or, with none, an id no other user
 * holds. Otherwise the job is rejected (kind invalid) and false returned. */
bool eng_id_allowed(struct engine *e, struct job *j, enum st_status st, const char *known,
                    const char *id, const char *noun);
/* The message of a failed answer: Webex's (and its trackingId), curl's, or
 * "HTTP n". */
void eng_answer_message(const struct xfer *x, const struct resp *r, long status, char *out,
                        size_t cap);
/* Acts on the status table's verdict for what is not the mapping's own:
 * CLS_FAILED (the job fails with the answer's message), CLS_RETRY,
 * CLS_WAIT (Retry-After; 429 for the whole client, 423 for the user) and
 * CLS_REAUTH. */
void eng_verdict(struct engine *e, struct xfer *x, struct job *j, long status, const struct resp *r,
                 const struct cls_verdict *v);

#endif
