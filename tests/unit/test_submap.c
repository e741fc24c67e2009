/* Unit tests for common/submap.c: what each answer to a subscriber
 * event's requests means (SPEC §2b), and the poll schedule. */
#include "check.h"
#include "submap.h"

#include <string.h>

static char S___[] = "..";
static char S____X[] = "../x";
static char S_7__BOOM[] = "7: boom";
static char S_E[] = "E";
static char S_SUB1[] = "SUB1";
static char S_SUB9[] = "SUB9";
static char S_ERROR[] = "error";
static char S_PENDING_USER_MIGRATION[] = "pending_user_migration";
static char S_UNKNOWN_STATUS[] = "pending_something_new";
static char S_PROVISIONED[] = "provisioned";
static char S_PROVISIONING[] = "provisioning";
static char S_UPDATING[] = "updating";

static const struct sm_poll POLL = {.initial_ms = 2000, .max_ms = 60000, .limit_ms = 1800000};

static struct sm_in in_for(enum ev_type type, enum sm_step step, long status, const struct resp *r)
{
    return (struct sm_in){.type = type, .step = step, .status = status, .r = r, .poll = POLL};
}

static struct resp sub(char *id, char *status)
{
    return (struct resp){.id = id, .status = status};
}

static void test_schedule(void)
{
    CHECK_EQ_INT(sm_poll_delay(0, &POLL), 2000);
    CHECK_EQ_INT(sm_poll_delay(1, &POLL), 4000);
    CHECK_EQ_INT(sm_poll_delay(4, &POLL), 32000);
    CHECK_EQ_INT(sm_poll_delay(5, &POLL), 60000); /* capped */
    CHECK_EQ_INT(sm_poll_delay(1000, &POLL), 60000);
    struct sm_poll zero = {0, 0, 0};
    CHECK_EQ_INT(sm_poll_delay(3, &zero), 0);
}

static void test_provision(void)
{
    struct resp r = sub(S_SUB1, S_PROVISIONING);
    struct sm_in in = in_for(EV_PROVISION, SM_STEP_MAIN, 200, &r);
    struct sm_verdict v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_POLL); /* asynchronous: poll, keep the id now */
    CHECK_EQ_INT(v.poll_ms, 2000);
    CHECK(v.record);

    r = sub(S_SUB1, S_PROVISIONED);
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_SUCCEED);
    CHECK_NULL(v.note);
    CHECK(v.record);

    r = sub(S_SUB1, S_PENDING_USER_MIGRATION);
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_SUCCEED);
    CHECK_EQ_STR(v.note, "pending_user_migration");
    CHECK(v.record);

    r = sub(S_SUB1, NULL); /* no status said: follow it */
    CHECK_EQ_INT(sm_decide(&in).action, SM_POLL);
    r = sub(S_SUB1, S_UNKNOWN_STATUS); /* a status this version does not know: not final */
    CHECK_EQ_INT(sm_decide(&in).action, SM_POLL);

    r = sub(NULL, S_PROVISIONED); /* never succeeded without an id */
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_FAIL);
    CHECK_EQ_INT(v.kind, KIND_PERMANENT);
    CHECK_CONTAINS(v.message, "without a subscriber id");
    r = sub(S____X, S_PROVISIONED);
    CHECK_EQ_INT(sm_decide(&in).kind, KIND_PERMANENT);

    r = sub(S_SUB1, S_ERROR);
    r.errors = S_7__BOOM;
    r.error_code = 7;
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_FAIL);
    CHECK_EQ_INT(v.kind, KIND_PROVISIONING);
    CHECK_NULL(v.message); /* Webex's errors[] say it */
    CHECK(v.record);       /* Webex has it, in error: its id is kept */

    /* The userId is taken (10022 in the status, or a 409): look it up. */
    r.error_code = 10022;
    CHECK_EQ_INT(sm_decide(&in).action, SM_LOOKUP);
    in.looked_up = true;
    CHECK_EQ_INT(sm_decide(&in).action, SM_FAIL); /* only once */
    struct resp e = {.error_code = 10022};
    in = in_for(EV_PROVISION, SM_STEP_MAIN, 409, &e);
    CHECK_EQ_INT(sm_decide(&in).action, SM_LOOKUP);
    in = in_for(EV_PROVISION, SM_STEP_MAIN, 400, &e);
    CHECK_EQ_INT(sm_decide(&in).action, SM_LOOKUP);
    struct resp other = {.error_code = 1};
    in = in_for(EV_PROVISION, SM_STEP_MAIN, 409, &other);
    CHECK_EQ_INT(sm_decide(&in).action, SM_LOOKUP);
    in = in_for(EV_PROVISION, SM_STEP_MAIN, 400, &other);
    CHECK_EQ_INT(sm_decide(&in).action, SM_GENERIC); /* the status table: permanent */

    /* Statuses that mean the same everywhere go to the status table. */
    static const long generic[] = {0, 401, 403, 423, 429, 500, 503};
    for (size_t i = 0; i < sizeof(generic) / sizeof(generic[0]); i++) {
        in = in_for(EV_PROVISION, SM_STEP_MAIN, generic[i], &r);
        CHECK_EQ_INT(sm_decide(&in).action, SM_GENERIC);
        in.step = SM_STEP_POLL;
        CHECK_EQ_INT(sm_decide(&in).action, SM_GENERIC);
        in.step = SM_STEP_LOOKUP;
        CHECK_EQ_INT(sm_decide(&in).action, SM_GENERIC);
    }
}

static void test_polls(void)
{
    struct resp r = sub(S_SUB1, S_PROVISIONING);
    struct sm_in in = in_for(EV_PROVISION, SM_STEP_POLL, 200, &r);
    in.polls = 3;
    in.polling_ms = 20000;
    struct sm_verdict v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_POLL);
    CHECK_EQ_INT(v.poll_ms, 16000);
    CHECK(!v.record); /* the first answer kept it */
    /* The next poll would come after the limit: timeout. */
    in.polling_ms = POLL.limit_ms - 1000;
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_FAIL);
    CHECK_EQ_INT(v.kind, KIND_TIMEOUT);
    CHECK_CONTAINS(v.message, "subscriber.poll_limit_ms");

    /* A poll's answer need not repeat the id. */
    r = sub(NULL, S_PROVISIONED);
    in.polling_ms = 1000;
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_SUCCEED);
    CHECK(v.record);
    in.conflict = true; /* it was the existing one a lookup found */
    CHECK_EQ_STR(sm_decide(&in).note, "already_provisioned");

    r = sub(NULL, S_ERROR);
    v = sm_decide(&in);
    CHECK_EQ_INT(v.kind, KIND_PROVISIONING);
    CHECK_CONTAINS(v.message, "status error"); /* no errors[]: says so */

    in.status = 404;
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_FAIL);
    CHECK_EQ_INT(v.kind, KIND_PERMANENT);

    /* An update being applied: polled, recorded only when final. */
    r = sub(S_SUB1, S_UPDATING);
    in = in_for(EV_UPDATE, SM_STEP_MAIN, 200, &r);
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_POLL);
    CHECK(!v.record);
    r = sub(NULL, S_PROVISIONED);
    in.step = SM_STEP_POLL;
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_SUCCEED);
    CHECK(v.record);
}

static void test_update_remove(void)
{
    struct resp none = {0};
    struct sm_in in = in_for(EV_UPDATE, SM_STEP_MAIN, 404, &none);
    CHECK_EQ_INT(sm_decide(&in).action, SM_LOOKUP); /* a stale id */
    in.looked_up = true;
    struct sm_verdict v = sm_decide(&in);
    CHECK_EQ_INT(v.kind, KIND_UNKNOWN_WORKSPACE);

    in = in_for(EV_REMOVE, SM_STEP_MAIN, 204, &none);
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_SUCCEED);
    CHECK_NULL(v.note);
    in.status = 404;
    CHECK_EQ_STR(sm_decide(&in).note, "already_removed");
    in.status = 409;
    CHECK_EQ_INT(sm_decide(&in).action, SM_GENERIC);
}

static void test_lookup(void)
{
    struct resp found = {.id = S_SUB9, .status = S_PROVISIONED, .sp_enterprise_id = S_E};
    struct sm_in in = in_for(EV_UPDATE, SM_STEP_LOOKUP, 200, &found);
    in.matches = 1;
    CHECK_EQ_INT(sm_decide(&in).action, SM_SEND);
    in.type = EV_REMOVE;
    CHECK_EQ_INT(sm_decide(&in).action, SM_SEND);

    in.matches = 0;
    struct sm_verdict v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_SUCCEED);
    CHECK_EQ_STR(v.note, "not_provisioned");
    in.type = EV_UPDATE;
    CHECK_EQ_INT(sm_decide(&in).kind, KIND_UNKNOWN_WORKSPACE);
    in.type = EV_PROVISION;
    in.conflict = true;
    v = sm_decide(&in);
    CHECK_EQ_INT(v.kind, KIND_CONFLICT);
    in.matches = -1;
    CHECK_EQ_INT(sm_decide(&in).kind, KIND_PERMANENT);

    /* A provision whose userId is taken: the existing subscriber ends it. */
    in.matches = 1;
    in.enterprise = "E";
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_SUCCEED);
    CHECK_EQ_STR(v.note, "already_provisioned");
    CHECK(v.record);
    in.enterprise = "F"; /* another enterprise's user: a real conflict */
    v = sm_decide(&in);
    CHECK_EQ_INT(v.kind, KIND_CONFLICT);
    CHECK_CONTAINS(v.message, "spEnterpriseId");
    in.enterprise = NULL;
    found.status = S_PROVISIONING; /* ours, from before a crash: follow it */
    v = sm_decide(&in);
    CHECK_EQ_INT(v.action, SM_POLL);
    CHECK(v.record);
    found.status = S_ERROR;
    CHECK_EQ_INT(sm_decide(&in).kind, KIND_PROVISIONING);
    found.id = S___;
    CHECK_EQ_INT(sm_decide(&in).kind, KIND_PERMANENT);
}

int main(void)
{
    test_schedule();
    test_provision();
    test_polls();
    test_update_remove();
    test_lookup();
    return check_done();
}
