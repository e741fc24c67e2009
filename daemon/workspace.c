/* workspace: the workspace mapping (SPEC §1, §4): what the state table
 * already answers before a request (a replay, a missing or foreign id, an
 * id another instance is about to record), and what an answer to a POST,
 * PUT or DELETE of a workspace means. The HTTP workers (engine.c) call it;
 * see mapping.h. */
#include "mapping.h"

#include "log.h"
#include "resp.h"
#include "result.h"
#include "wsid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An update or remove for a user the table has no workspace for. */
static void no_workspace(struct engine *e, struct job *j)
{
    if (eng_lookup_wait(e, j))
        return;
    if (j->ev.type == EV_REMOVE)
        eng_finish_simple(e, j, RES_SUCCEEDED, KIND_NONE, "not_provisioned", NULL, NULL);
    else
        eng_finish_simple(e, j, RES_FAILED, KIND_UNKNOWN_WORKSPACE, NULL,
                          "no workspace is known for this userId", NULL);
}

/* A provision answered 409 while the table had no workspace for the user:
 * it ends already_provisioned as soon as the table learns the id. */
static void conflict_recheck(struct engine *e, struct job *j)
{
    char ws[EV_MAX_WORKSPACE_ID + 1];
    if (st_get(eng_app(e)->state, j->ev.user_id, ws, sizeof(ws)) == ST_PRESENT) {
        struct outcome o = {.outcome = RES_SUCCEEDED,
                            .http_status = 409,
                            .note = "already_provisioned",
                            .workspace_id = ws};
        eng_finish(e, j, &o);
    } else if (!eng_lookup_wait(e, j)) {
        struct outcome o = {.outcome = RES_FAILED,
                            .http_status = 409,
                            .error_kind = KIND_CONFLICT,
                            .error_message = j->conflict_msg};
        eng_finish(e, j, &o);
    }
}

/* Decides, before any request, what the state table already answers.
 * Returns true when the job needs a request (its workspace id, if any, is
 * then in j->ws); otherwise the job is finished, dropped or waiting. */
static bool prepare(struct engine *e, struct job *j)
{
    struct app *a = eng_app(e);
    const struct ev_event *ev = &j->ev;
    struct st_src src = {a->cfg.topic_events, j->partition, j->offset};
    char ws[EV_MAX_WORKSPACE_ID + 1] = "";

    if (st_applied(a->state, ev->user_id, &src)) {
        eng_finish_simple(e, j, RES_SUCCEEDED, KIND_NONE, "replayed", NULL, NULL);
        return false;
    }
    struct st_kind kind;
    enum st_status st = st_get_kind(a->state, ev->user_id, ws, sizeof(ws), &kind, NULL, NULL, 0);
    if (st == ST_PRESENT && kind.subscriber) { /* one userId, one kind of thing */
        eng_finish_simple(e, j, RES_REJECTED, KIND_INVALID, NULL,
                          "the state table holds a subscriber for this userId", NULL);
        return false;
    }
    if (ev->type == EV_PROVISION) {
        if (!j->conflict_msg)
            return true;
        conflict_recheck(e, j);
        return false;
    }
    if (ev->workspace_id && !eng_id_allowed(e, j, st, ws, ev->workspace_id, "workspace"))
        return false;
    if (ev->workspace_id)
        snprintf(ws, sizeof(ws), "%s", ev->workspace_id);
    else if (st != ST_PRESENT)
        ws[0] = '\0';
    if (!ws[0]) {
        no_workspace(e, j);
        return false;
    }
    free(j->ws);
    j->ws = strdup(ws);
    if (!j->ws) {
        eng_finish_simple(e, j, RES_FAILED, KIND_PERMANENT, NULL, "out of memory", NULL);
        return false;
    }
    return true;
}

static void succeed(struct engine *e, struct job *j, long status, const char *note,
                    const struct resp *r, const char *ws_used)
{
    const struct ev_event *ev = &j->ev;
    char ws[EV_MAX_WORKSPACE_ID + 1] = "";
    struct outcome o = {
        .outcome = RES_SUCCEEDED, .http_status = (int)status, .note = note, .resp = r};

    if (ev->type == EV_PROVISION && !note) {
        if (!r->id || !*r->id) {
            o.outcome = RES_FAILED;
            o.error_kind = KIND_PERMANENT;
            o.error_message = "success response without a workspace id";
        } else if (wsid_check(r->id, strlen(r->id))) { /* it could never name one path */
            o.outcome = RES_FAILED;
            o.error_kind = KIND_PERMANENT;
            o.error_message = "success response with an unusable workspace id";
            o.workspace_id = r->id; /* logged: the audit trail keeps it */
        } else {
            o.workspace_id = r->id;
            o.state_put = true;
        }
    } else if (ev->type == EV_PROVISION) { /* already_provisioned: keep the known id */
        if (st_get(eng_app(e)->state, ev->user_id, ws, sizeof(ws)) == ST_PRESENT)
            o.workspace_id = ws;
    } else if (ev->type == EV_UPDATE) {
        o.workspace_id = ws_used;
        o.state_put = true;
        if (ev->ignored[0]) {
            snprintf(ws, sizeof(ws), "ignored: %s", ev->ignored);
            o.note = ws;
        }
    } else {
        o.workspace_id = ws_used;
        o.state_remove = true;
    }
    eng_finish(e, j, &o);
}

static int build(const struct job *j, struct req *r)
{
    return req_build(&j->ev, j->ws ? j->ws : "", r);
}

static void complete(struct engine *e, struct xfer *x, struct job *j, long status, const char *body,
                     size_t len)
{
    struct app *a = eng_app(e);
    struct resp r;
    char msg[RESP_MSG_MAX + 160];

    resp_parse(body, len, &r);
    struct cls_input in = {
        .type = j->ev.type,
        .status = status,
        .attempts = j->attempts - j->waits,
        .max_attempts = (int)atomic_load(&a->max_attempts),
        .auth_retried = j->auth_retried,
        .have_state = status == 409 && st_get(a->state, j->ev.user_id, NULL, 0) == ST_PRESENT,
    };
    struct cls_verdict v = cls_classify(&in);
    if (v.action == CLS_SUCCEEDED) {
        succeed(e, j, status, v.note, &r, j->ws);
    } else if (v.action == CLS_FAILED && v.kind == KIND_CONFLICT &&
               atomic_load(&a->lookup_wait_ms) > 0) {
        /* 409 and no id known: the id may still be on its way (another
         * instance's journal, a record not yet read); wait for it. */
        eng_answer_message(x, &r, status, msg, sizeof(msg));
        if ((j->conflict_msg = strdup(msg))) {
            j->lookup_since_us = 0;
            conflict_recheck(e, j);
        } else {
            eng_verdict(e, x, j, status, &r, &v);
        }
    } else {
        eng_verdict(e, x, j, status, &r, &v);
    }
    resp_clear(&r);
}

const struct map_ops workspace_map = {prepare, build, complete};
