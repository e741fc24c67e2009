/* submap: see submap.h. */
#include "submap.h"

#include "wsid.h"

#include <string.h>

/* Cisco's errorCode for "The BroadWorks UserID is already associated with
 * an existing user": the provision's userId is taken. */
#define ERR_USER_ASSOCIATED 10022

static bool is(const char *status, const char *name)
{
    return status && strcmp(status, name) == 0;
}

static bool pending_person(const char *status)
{
    return is(status, "pending_email_input") || is(status, "pending_email_validation") ||
           is(status, "pending_user_migration");
}

int64_t sm_poll_delay(int n, const struct sm_poll *p)
{
    int64_t d = p->initial_ms > 0 ? p->initial_ms : 1;
    for (int i = 0; i < n && d < p->max_ms; i++)
        d *= 2;
    return d < p->max_ms ? d : p->max_ms;
}

static struct sm_verdict done(const char *note, bool record)
{
    return (struct sm_verdict){.action = SM_SUCCEED, .note = note, .record = record};
}

static struct sm_verdict fail(enum cls_kind kind, const char *message)
{
    return (struct sm_verdict){.action = SM_FAIL, .kind = kind, .message = message};
}

static struct sm_verdict next(enum sm_action action)
{
    return (struct sm_verdict){.action = action};
}

/* The subscriber is not final yet: poll it, within the overall limit. */
static struct sm_verdict keep_polling(const struct sm_in *in)
{
    int n = in->step == SM_STEP_POLL ? in->polls : 0;
    int64_t delay = sm_poll_delay(n, &in->poll);
    int64_t spent = in->step == SM_STEP_POLL ? in->polling_ms : 0;
    if (spent + delay > in->poll.limit_ms)
        return fail(KIND_TIMEOUT, "provisioning not finished within subscriber.poll_limit_ms");
    /* A new subscriber's id is kept from its first answer on. */
    bool record = in->type == EV_PROVISION && in->step != SM_STEP_POLL;
    return (struct sm_verdict){.action = SM_POLL, .poll_ms = delay, .record = record};
}

/* A 2xx that describes the subscriber (the main request's, a poll's, or
 * the item a lookup found): its provisioning status says what follows. */
static struct sm_verdict by_status(const struct sm_in *in)
{
    const struct resp *r = in->r;
    const char *st = r ? r->status : NULL;
    bool named = in->step == SM_STEP_POLL || in->type != EV_PROVISION; /* the id is known */

    if (!named && (!r || !r->id || !*r->id))
        return fail(KIND_PERMANENT, "success response without a subscriber id");
    if (!named && wsid_check(r->id, strlen(r->id)))
        return fail(KIND_PERMANENT, "success response with an unusable subscriber id");
    if (is(st, "provisioned"))
        return done(in->conflict ? "already_provisioned" : NULL, true);
    if (pending_person(st)) /* Webex now waits for the person, not for us */
        return done(st, true);
    if (is(st, "error")) {
        if (r->error_code == ERR_USER_ASSOCIATED && in->type == EV_PROVISION && !in->looked_up)
            return next(SM_LOOKUP);
        struct sm_verdict v =
            fail(KIND_PROVISIONING, r->errors ? NULL : "Webex reports provisioning status error");
        /* A provision's subscriber exists in Webex, in error: its id is kept
         * (an update or remove can reach it; a replay provisions again). */
        v.record = in->type == EV_PROVISION;
        return v;
    }
    return keep_polling(in); /* provisioning, updating, or nothing said yet */
}

static struct sm_verdict main_answer(const struct sm_in *in)
{
    long s = in->status;
    const struct resp *r = in->r;
    bool taken = (s == 409 || s == 400) && r && r->error_code == ERR_USER_ASSOCIATED;

    switch (in->type) {
    case EV_PROVISION:
        if (cls_success(s))
            return by_status(in);
        if ((s == 409 || taken) && !in->looked_up)
            return next(SM_LOOKUP);
        break;
    case EV_UPDATE:
        if (cls_success(s))
            return by_status(in);
        if (s == 404 && !in->looked_up) /* the id went stale: find the current one */
            return next(SM_LOOKUP);
        if (s == 404)
            return fail(KIND_UNKNOWN_WORKSPACE, "Webex knows no subscriber with this id");
        break;
    case EV_REMOVE:
        if (cls_success(s))
            return done(NULL, false);
        if (s == 404)
            return done("already_removed", false);
        break;
    case EV_NONE:
        break;
    }
    return next(SM_GENERIC);
}

static struct sm_verdict lookup_answer(const struct sm_in *in)
{
    const struct resp *r = in->r;
    if (!cls_success(in->status))
        return next(SM_GENERIC);
    if (in->matches < 0)
        return fail(KIND_PERMANENT, "the lookup's answer is not a subscriber list");
    if (in->matches == 0) {
        if (in->type == EV_REMOVE)
            return done("not_provisioned", false);
        if (in->type == EV_UPDATE)
            return fail(KIND_UNKNOWN_WORKSPACE, "Webex lists no subscriber with this userId");
        return fail(KIND_CONFLICT, "Webex refused the provision (userId already associated) but "
                                   "lists no subscriber with this userId");
    }
    if (!r->id || wsid_check(r->id, strlen(r->id)))
        return fail(KIND_PERMANENT, "the lookup found a subscriber without a usable id");
    if (in->type != EV_PROVISION)
        return next(SM_SEND);
    if (in->enterprise && r->sp_enterprise_id && strcmp(in->enterprise, r->sp_enterprise_id) != 0)
        return fail(KIND_CONFLICT,
                    "the userId belongs to a subscriber of another spEnterpriseId in Webex");
    struct sm_in found = *in;
    found.conflict = true;
    found.looked_up = true;
    return by_status(&found);
}

struct sm_verdict sm_decide(const struct sm_in *in)
{
    switch (in->step) {
    case SM_STEP_MAIN:
        return main_answer(in);
    case SM_STEP_LOOKUP:
        return lookup_answer(in);
    case SM_STEP_POLL:
        if (cls_success(in->status))
            return by_status(in);
        if (in->status == 404)
            return fail(KIND_PERMANENT, "the subscriber is gone from Webex while its "
                                        "provisioning was being followed");
        break;
    }
    return next(SM_GENERIC);
}
