/* subscriber: the subscriber mapping (SPEC §2b) in the HTTP workers.
 *
 * A subscriber event makes up to three kinds of request (submap.h): the
 * main one, polls of the subscriber while Webex provisions it, and a
 * lookup by userId when its id is not known or a provision finds the userId
 * taken. Between requests the job waits in its worker's due-time list like
 * a retry: a poll holds no HTTP slot, and it goes through the Retry-After
 * gate and the rate limiter like every request. The user's later events
 * wait for it (one key, one job at a time); pipeline.max_pending bounds how
 * many are pending at once.
 *
 * An id is kept from the first answer that names it (outcome_note_pending),
 * and where the table lacks one (a crash before the record, a map imported
 * without it) the lookup finds it: no id Webex gave is lost. A replayed
 * event whose subscriber the table has as still pending goes on polling it
 * rather than ending "replayed". */
#include "mapping.h"

#include "log.h"
#include "result.h"
#include "submap.h"
#include "wsid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct sm_poll schedule(const struct app *a)
{
    return (struct sm_poll){a->cfg.subscriber_poll_interval_ms,
                            a->cfg.subscriber_poll_max_interval_ms,
                            a->cfg.subscriber_poll_limit_ms};
}

static bool set_id(struct job *j, const char *id)
{
    if (j->ws && strcmp(j->ws, id) == 0)
        return true;
    char *copy = strdup(id);
    if (!copy)
        return false;
    free(j->ws);
    j->ws = copy;
    return true;
}

/* The next request is step, the first of its kind (its transient failures
 * count from here against retry.max_attempts). */
static void go(struct engine *e, struct job *j, enum sm_step step, int64_t due_us)
{
    j->sub_step = (uint8_t)step;
    j->step_base = j->attempts - j->waits;
    eng_wait_until(e, j, due_us);
}

/* A lookup found no subscriber for an update or remove: the id may be on
 * its way to the state table (a rename to this userId still running here
 * or on another instance, a restarted instance's journal). Within
 * state.lookup_wait_ms the job waits and begin() asks the table again;
 * true while that window is open. */
static bool wait_for_table(struct engine *e, struct job *j)
{
    bool begun = j->sub_begun;
    j->sub_begun = false; /* before: a job that may no longer wait is freed */
    if (eng_lookup_wait(e, j))
        return true;
    j->sub_begun = begun;
    return false;
}

/* The first decision: a replay, or which id (event, table, or a lookup). */
static bool begin(struct engine *e, struct job *j)
{
    struct app *a = eng_app(e);
    const struct ev_event *ev = &j->ev;
    struct st_src src = {a->cfg.topic_events, j->partition, j->offset};
    struct st_kind kind;
    char id[EV_MAX_SUBSCRIBER_ID + 1] = "";
    enum st_status st = st_get_kind(a->state, ev->user_id, id, sizeof(id), &kind, NULL, NULL, 0);

    j->sub_begun = true;
    if (st == ST_PRESENT && !kind.subscriber) {
        eng_finish_simple(e, j, RES_REJECTED, KIND_INVALID, NULL,
                          "the state table holds a workspace for this userId", id);
        return false;
    }
    /* A provision that ended in error is not done: it is tried again. */
    bool failed_here = st == ST_PRESENT && kind.failed && ev->type == EV_PROVISION;
    if (!failed_here && st_applied(a->state, ev->user_id, &src)) {
        if (st == ST_PRESENT && kind.pending && set_id(j, id)) { /* follow it on */
            j->poll_since_us = app_now_us();
            j->sub_step = SM_STEP_POLL;
            return true;
        }
        eng_finish_simple(e, j, RES_SUCCEEDED, KIND_NONE, "replayed", NULL,
                          st == ST_PRESENT ? id : NULL);
        return false;
    }
    j->sub_step = SM_STEP_MAIN;
    if (ev->type == EV_PROVISION)
        return true;
    if (ev->subscriber_id && !eng_id_allowed(e, j, st, id, ev->subscriber_id, "subscriber"))
        return false;
    const char *use = ev->subscriber_id ? ev->subscriber_id : st == ST_PRESENT ? id : NULL;
    if (!use) { /* no id here: Webex knows it by userId */
        if (j->looked_up && wait_for_table(e, j))
            return false;
        j->sub_step = SM_STEP_LOOKUP; /* the first lookup, or the last after the wait */
        return true;
    }
    if (!set_id(j, use)) {
        eng_finish_simple(e, j, RES_FAILED, KIND_PERMANENT, NULL, "out of memory", NULL);
        return false;
    }
    return true;
}

static bool prepare(struct engine *e, struct job *j)
{
    /* A poll, a retry or the request after a lookup: already decided. */
    return j->sub_begun ? true : begin(e, j);
}

/* Whose lookup: the userId, or after a rename Webex already applied (a
 * replay), the new one. */
static const char *lookup_user(const struct job *j)
{
    return j->lookup_new ? j->ev.new_user_id : j->ev.user_id;
}

static int build(const struct job *j, struct req *r)
{
    switch ((enum sm_step)j->sub_step) {
    case SM_STEP_MAIN:
        return req_build(&j->ev, j->ws, r);
    case SM_STEP_POLL:
        return req_build_poll(j->ws, r);
    case SM_STEP_LOOKUP:
        return req_build_lookup(lookup_user(j), j->ev.sp_enterprise_id, r);
    }
    return -1;
}

/* The subscriber as the last answer gave it: its state change and result. */
static void succeed(struct engine *e, struct job *j, long status, const struct sm_verdict *v,
                    const struct resp *r)
{
    const struct ev_event *ev = &j->ev;
    char note[160];
    struct outcome o = {
        .outcome = RES_SUCCEEDED,
        .http_status = (int)status,
        .note = v->note,
        .workspace_id = r->id && *r->id ? r->id : j->ws,
        .resp = r,
        .status = r->status,
        .person_id = r->person_id,
    };
    if (ev->type == EV_REMOVE) {
        o.state_remove = v->note == NULL || strcmp(v->note, "already_removed") == 0;
    } else if (v->record && o.workspace_id) {
        o.state_put = true;
    }
    if (ev->type == EV_UPDATE && ev->ignored[0] && !v->note) {
        snprintf(note, sizeof(note), "ignored: %s", ev->ignored);
        o.note = note;
    }
    eng_finish(e, j, &o);
}

static void fail(struct engine *e, struct xfer *x, struct job *j, long status,
                 const struct sm_verdict *v, const struct resp *r)
{
    char msg[RESP_MSG_MAX + 160];
    if (v->message)
        snprintf(msg, sizeof(msg), "%s", v->message);
    else if (r->errors)
        snprintf(msg, sizeof(msg), "Webex reports status %s: %s", r->status ? r->status : "error",
                 r->errors);
    else
        eng_answer_message(x, r, status, msg, sizeof(msg));
    struct outcome o = {.outcome = RES_FAILED,
                        .http_status = status ? (int)status : -1,
                        .error_kind = v->kind,
                        .error_message = msg,
                        .workspace_id = r->id && *r->id ? r->id : j->ws,
                        .resp = r,
                        .status = r->status,
                        .person_id = r->person_id};
    o.state_put = v->record && o.workspace_id;
    eng_finish(e, j, &o);
}

/* Not final yet: the next poll in v->poll_ms; the first answer that names
 * a new subscriber has its id kept now. */
static void poll_later(struct engine *e, struct job *j, const struct sm_verdict *v,
                       const struct resp *r)
{
    int64_t now = app_now_us();
    if (r->id && *r->id && !wsid_check(r->id, strlen(r->id)) && !set_id(j, r->id)) {
        eng_finish_simple(e, j, RES_FAILED, KIND_PERMANENT, NULL, "out of memory", NULL);
        return;
    }
    if (v->record && job_owned(eng_app(e), j))
        outcome_note_pending(eng_app(e), j, j->ws, r);
    if (j->sub_step != SM_STEP_POLL) { /* the first poll of the event: say what it waits for */
        j->poll_since_us = now;
        j->polls = 0;
        log_info("%s %s: subscriber %s is %s; polling it", ev_type_name(j->ev.kind, j->ev.type),
                 j->ev.user_id, j->ws ? j->ws : "?", r->status ? r->status : "not final");
    }
    j->polls++;
    go(e, j, SM_STEP_POLL, now + v->poll_ms * 1000);
}

static void statuses(struct engine *e, struct xfer *x, struct job *j, long status,
                     const struct resp *r)
{
    struct app *a = eng_app(e);
    /* EV_NONE: the status table's workspace rules (404 on a remove, 409
     * on a provision) are not a subscriber's; submap has its own. */
    struct cls_input in = {
        .type = EV_NONE,
        .status = status,
        .attempts = j->attempts - j->waits - j->step_base,
        .max_attempts = (int)atomic_load(&a->max_attempts),
        .auth_retried = j->auth_retried,
    };
    struct cls_verdict v = cls_classify(&in);
    eng_verdict(e, x, j, status, r, &v);
}

static struct sm_in situation(struct engine *e, const struct job *j, long status,
                              const struct resp *r, int matches)
{
    return (struct sm_in){
        .type = j->ev.type,
        .step = (enum sm_step)j->sub_step,
        .status = status,
        .r = r,
        .matches = matches,
        .looked_up = j->looked_up,
        .conflict = j->conflict,
        .enterprise = j->ev.sp_enterprise_id,
        .polls = j->polls,
        .polling_ms = (app_now_us() - j->poll_since_us) / 1000,
        .poll = schedule(eng_app(e)),
    };
}

static void complete(struct engine *e, struct xfer *x, struct job *j, long status, const char *body,
                     size_t len)
{
    struct resp r;
    int matches = -1;
    if (j->sub_step == SM_STEP_LOOKUP)
        matches = resp_parse_list(body, len, lookup_user(j), &r);
    else
        resp_parse(body, len, &r);
    if (matches < 0 && j->sub_step == SM_STEP_LOOKUP) /* not a list: its error body */
        resp_parse(body, len, &r);

    struct sm_in in = situation(e, j, status, &r, matches);
    struct sm_verdict v = sm_decide(&in);
    if (in.step == SM_STEP_LOOKUP && matches == 0 && j->ev.type != EV_PROVISION) {
        j->looked_up = true;
        /* A rename Webex already applied (the event is a replay): the
         * subscriber goes by its new userId now. */
        if (j->ev.type == EV_UPDATE && j->ev.new_user_id && !j->lookup_new) {
            j->lookup_new = true;
            go(e, j, SM_STEP_LOOKUP, app_now_us());
            resp_clear(&r);
            return;
        }
        if (wait_for_table(e, j)) {
            resp_clear(&r);
            return;
        }
    }
    switch (v.action) {
    case SM_SUCCEED:
        succeed(e, j, status, &v, &r);
        break;
    case SM_FAIL:
        fail(e, x, j, status, &v, &r);
        break;
    case SM_SEND: /* the lookup found the id */
        j->looked_up = true;
        if (set_id(j, r.id))
            go(e, j, SM_STEP_MAIN, app_now_us());
        else
            eng_finish_simple(e, j, RES_FAILED, KIND_PERMANENT, NULL, "out of memory", NULL);
        break;
    case SM_POLL:
        if (in.step == SM_STEP_LOOKUP) {
            j->looked_up = true;
            j->conflict = true;
        }
        poll_later(e, j, &v, &r);
        break;
    case SM_LOOKUP:
        j->looked_up = true;
        j->conflict = j->ev.type == EV_PROVISION;
        go(e, j, SM_STEP_LOOKUP, app_now_us());
        break;
    case SM_GENERIC:
        statuses(e, x, j, status, &r);
        break;
    }
    resp_clear(&r);
}

const struct map_ops subscriber_map = {prepare, build, complete};
