/* submap: the subscriber mapping's decisions (SPEC §2b), as pure
 * functions beside the workspace one's (classify.h).
 *
 * A subscriber event is done in up to three kinds of request: the main one
 * (POST, PUT or DELETE), polls of the subscriber (GET by id) while Webex
 * provisions it asynchronously, and a lookup (GET by userId) when its id is
 * not known or a provision finds the userId taken. sm_decide() says what an
 * answer means and which request comes next; the statuses that mean the
 * same for every request (401, 429, 423, 5xx, no answer) are left to the
 * status table (SM_GENERIC). Thread-safe. */
#ifndef BWPROVD_SUBMAP_H
#define BWPROVD_SUBMAP_H

#include "classify.h"
#include "event.h"
#include "resp.h"

#include <stdbool.h>
#include <stdint.h>

/* Which request an answer is for. */
enum sm_step { SM_STEP_MAIN, SM_STEP_POLL, SM_STEP_LOOKUP };

enum sm_action {
    SM_SUCCEED, /* done: succeeded with note; the subscriber as answered */
    SM_FAIL,    /* done: failed with kind and message */
    SM_SEND,    /* send the main request, with the id the lookup found */
    SM_POLL,    /* poll the subscriber in poll_ms */
    SM_LOOKUP,  /* look the subscriber up by userId */
    SM_GENERIC, /* the status table decides (cls_classify): retry, wait, auth */
};

/* The poll schedule (subscriber.* settings), in ms. */
struct sm_poll {
    long initial_ms; /* the first poll comes this long after the answer */
    long max_ms;     /* the interval doubles up to this */
    long limit_ms;   /* no final status this long after the answer: timeout */
};

struct sm_in {
    enum ev_type type;
    enum sm_step step;
    long status;            /* HTTP status, 0 when no answer came */
    const struct resp *r;   /* the parsed answer; for a lookup the item found */
    int matches;            /* lookup: items with the userId, -1 when no list came */
    bool looked_up;         /* a lookup was made for this event already */
    bool conflict;          /* a provision found its userId taken: lookup and polls follow */
    const char *enterprise; /* the event's spEnterpriseId, NULL when it has none */
    int polls;              /* polls made so far */
    int64_t polling_ms;     /* since the answer that started the polls */
    struct sm_poll poll;
};

struct sm_verdict {
    enum sm_action action;
    enum cls_kind kind;  /* SM_FAIL */
    const char *note;    /* SM_SUCCEED: NULL, "already_provisioned", "already_removed",
                          * "not_provisioned" or a pending status (r's) */
    const char *message; /* SM_FAIL: static text; NULL: Webex's own (r->errors) */
    int64_t poll_ms;     /* SM_POLL */
    /* The answer names the subscriber (r->id): the state table keeps it now,
     * even before a final status (and after a final error), so no id Webex
     * gave is lost. */
    bool record;
};

struct sm_verdict sm_decide(const struct sm_in *in);

/* The n-th poll's delay (n from 0): initial doubling to max. */
int64_t sm_poll_delay(int n, const struct sm_poll *p);

#endif
