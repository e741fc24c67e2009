/*
 * api_: the simulated Webex API under /v1.
 *
 * api_begin() runs once the whole request has arrived. It works out what the
 * request is about (route, userId), runs the violation detectors, asks the
 * fault injector, and decides the answer: an error status, or "perform the
 * operation". With injected latency it suspends the connection and hands it
 * to the timer; api_finish() then performs the operation (so a delayed
 * request takes effect when its answer goes out), records the request and
 * queues the answer.
 *
 * Order of checks: scripted fault / connection reset / outage, 404, 405,
 * 401, 413, 415, rate limit / locked / random error, 400, then the operation
 * (which may give 404 or 409).
 */
#include "websim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define API_WS_PATH "/v1/broadworks/workspaces"
#define API_TOKEN_PATH "/v1/access_token"
#define API_MAX_ID 1024      /* longest decoded workspace id */
#define API_MAX_TRACKING 256 /* longest recorded request TrackingID */

/* ------------------------------------------------------------------------ */
/* routing                                                                   */

/* Route of a raw path; for an item, *id gets the decoded id (malloc'd), or
 * stays NULL when the segment is not a valid percent-encoding. */
static enum api_route api_route_of(const char *path, char **id)
{
    size_t plen = strlen(API_WS_PATH);
    const char *seg;
    char buf[API_MAX_ID];

    *id = NULL;
    if (strcmp(path, API_TOKEN_PATH) == 0)
        return RT_TOKEN;
    if (strncmp(path, API_WS_PATH, plen) != 0)
        return RT_NONE;
    if (path[plen] == '\0')
        return RT_WS_COLLECTION;
    if (path[plen] != '/')
        return RT_NONE;
    seg = path + plen + 1;
    if (seg[0] == '\0' || strchr(seg, '/') != NULL)
        return RT_NONE;
    if (pct_decode(seg, strlen(seg), false, buf, sizeof buf))
        *id = strdup(buf);
    return RT_WS_ITEM;
}

static const char *api_allowed(enum api_route route)
{
    switch (route) {
    case RT_WS_COLLECTION:
    case RT_TOKEN:
        return "POST";
    case RT_WS_ITEM:
        return "PUT, DELETE";
    case RT_NONE:
        break;
    }
    return NULL;
}

static bool api_method_ok(enum api_route route, const char *method)
{
    switch (route) {
    case RT_WS_COLLECTION:
    case RT_TOKEN:
        return strcmp(method, "POST") == 0;
    case RT_WS_ITEM:
        return strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
    case RT_NONE:
        break;
    }
    return false;
}

/* Does this (valid) request carry a JSON workspace body? */
static bool api_has_ws_body(const struct sim_req *req)
{
    return req->route == RT_WS_COLLECTION ||
           (req->route == RT_WS_ITEM && strcmp(req->method, "PUT") == 0);
}

/* ------------------------------------------------------------------------ */
/* body validation                                                           */

static void api_set_error(struct sim_req *req, int status, int code, const char *msg)
{
    req->status = status;
    req->err_code = code;
    req->msg = msg;
}

/* What a body member must be. */
enum api_need {
    FIELD_OPTIONAL, /* absent, null or a string */
    FIELD_NONEMPTY, /* absent, null or a non-empty string */
    FIELD_REQUIRED, /* a non-empty string */
};

/* Read string member key of the body into *out (NULL when absent or null).
 * Returns false (with the error message in req->msgbuf) when it is not what
 * need says. */
static bool api_field(struct sim_req *req, const char *key, enum api_need need, const char **out)
{
    json_object *v;

    *out = NULL;
    if (!json_object_object_get_ex(req->json, key, &v) || json_object_is_type(v, json_type_null)) {
        if (need != FIELD_REQUIRED)
            return true;
        snprintf(req->msgbuf, sizeof req->msgbuf, "Missing required field: %s", key);
        return false;
    }
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(req->msgbuf, sizeof req->msgbuf, "Field %s must be a string", key);
        return false;
    }
    *out = json_object_get_string(v);
    if (need != FIELD_OPTIONAL && (*out)[0] == '\0') {
        snprintf(req->msgbuf, sizeof req->msgbuf, "Field %s must not be empty", key);
        return false;
    }
    return true;
}

/* Parse and validate a POST/PUT body into req->in. POST needs userId,
 * provisioningId, spEnterpriseId and displayName; a PUT needs nothing, as in
 * Cisco's OpenAPI, but a userId it sends must not be empty. An empty
 * primaryPhoneNumber or extension is left out of a POST (in->phone/ext NULL)
 * and kept as "" for a PUT, where it clears the field. On failure the message
 * is in req->msgbuf. */
static bool api_parse_body(struct sim_req *req)
{
    const char *why;
    bool post = strcmp(req->method, "POST") == 0;
    struct ws_input *in = &req->in;

    req->json = sim_json_parse_object(req->body.p ? req->body.p : "", req->body.len, &why);
    if (req->json == NULL) {
        snprintf(req->msgbuf, sizeof req->msgbuf, "Invalid request body: %s", why);
        return false;
    }
    if (!api_field(req, "userId", post ? FIELD_REQUIRED : FIELD_NONEMPTY, &in->user))
        return false;
    if (in->user != NULL) {
        req->body_user = strdup(in->user);
        if (req->body_user == NULL) {
            snprintf(req->msgbuf, sizeof req->msgbuf, "Out of memory");
            return false;
        }
    }
    if (post && (!api_field(req, "provisioningId", FIELD_REQUIRED, &in->prov) ||
                 !api_field(req, "spEnterpriseId", FIELD_REQUIRED, &in->sp) ||
                 !api_field(req, "displayName", FIELD_REQUIRED, &in->name)))
        return false;
    if (!api_field(req, "primaryPhoneNumber", FIELD_OPTIONAL, &in->phone) ||
        !api_field(req, "extension", FIELD_OPTIONAL, &in->ext))
        return false;
    /* An empty optional string: absent in a POST, "clear it" in a PUT. */
    if (post && in->phone != NULL && in->phone[0] == '\0')
        in->phone = NULL;
    if (post && in->ext != NULL && in->ext[0] == '\0')
        in->ext = NULL;
    return true;
}

/* ------------------------------------------------------------------------ */
/* begin                                                                     */

/* Work out the userId the request is about: the body's for POST, the
 * workspace's current one for PUT and DELETE. */
static void api_pick_user(struct sim_req *req)
{
    if (req->route == RT_WS_COLLECTION && req->body_user != NULL)
        req->user = strdup(req->body_user);
    else if (req->route == RT_WS_ITEM && req->ws_id != NULL)
        req->user = store_user_of(req->ws_id);
}

static void api_check_violations(struct sim_req *req)
{
    unsigned grace, tol;
    uint64_t early;
    bool user_pause = false;

    if (req->route != RT_TOKEN) {
        faults_retry_after_slack(&grace, &tol);
        early =
            guard_retry_after_check(req->sconn, req->user, req->recv_us, grace, tol, &user_pause);
        if (early > 0) {
            req->violations |= VIOL_RETRY_AFTER;
            stats_violation(VIOL_RETRY_AFTER);
            fprintf(stderr,
                    "websim: VIOLATION retryAfter: %s %s (userId %s) arrived %llu ms before "
                    "the Retry-After deadline of %s\n",
                    req->method, req->path, req->user ? req->user : "-", (unsigned long long)early,
                    user_pause ? "this userId's 423" : "a 429");
        }
    }
    if (req->user != NULL) {
        req->user_entered = true;
        if (guard_user_enter(req->user)) {
            req->violations |= VIOL_CONCURRENT_USER;
            stats_violation(VIOL_CONCURRENT_USER);
            fprintf(stderr,
                    "websim: VIOLATION concurrentUser: %s %s for userId %s while another "
                    "request for it is in progress\n",
                    req->method, req->path, req->user);
        }
    }
}

/* Decide the answer (req->status, 0: perform), after faults_pre(). */
static void api_decide(struct sim_req *req, struct flt_decision *d, bool body_ok)
{
    bool method_ok = api_method_ok(req->route, req->method);

    if (d->kind == FLT_STATUS) {
        api_set_error(req, d->status, d->status * 100, d->why);
        req->retry_after = d->retry_after;
    } else if (req->route == RT_NONE) {
        api_set_error(req, 404, 40400, "The requested resource could not be found.");
    } else if (!method_ok) {
        api_set_error(req, 405, 40500, "Method not allowed.");
    } else if (req->route == RT_TOKEN) {
        if (req->too_large)
            api_set_error(req, 413, 41300, "Request body too large.");
        else if (!http_content_type_is(req->conn, "application/x-www-form-urlencoded"))
            api_set_error(req, 415, 41500,
                          "Content-Type must be application/x-www-form-urlencoded.");
    } else if (!req->auth) {
        api_set_error(
            req, 401, 40100,
            "The request requires a valid access token set in the Authorization request header.");
    } else if (req->too_large) {
        api_set_error(req, 413, 41300, "Request body too large.");
    } else if (api_has_ws_body(req) && !http_content_type_is(req->conn, "application/json")) {
        api_set_error(req, 415, 41500, "Content-Type must be application/json.");
    } else {
        faults_post(d);
        if (d->kind == FLT_STATUS) {
            api_set_error(req, d->status, d->status * 100, d->why);
            req->retry_after = d->retry_after;
        } else if (api_has_ws_body(req) && !body_ok) {
            api_set_error(req, 400, 40001, req->msgbuf);
        } else if (req->route == RT_WS_ITEM && req->ws_id == NULL) {
            api_set_error(req, 404, 40401, "Workspace not found.");
        }
    }
}

static void api_leave(struct sim_req *req)
{
    if (req->user_entered) {
        guard_user_leave(req->user);
        req->user_entered = false;
    }
    stats_inflight(-1);
}

static void api_record(struct sim_req *req, int status, const char *ws_id, const char *tracking)
{
    struct reqrec_in r = {
        .method = req->method,
        .path = req->path,
        .user = req->user,
        .body_user = req->body_user,
        .ws_id = ws_id,
        .tracking = req->tracking_in,
        .resp_tracking = tracking,
        .status = status,
        .auth = req->auth,
        .violations = req->violations,
        .recv_us = req->recv_us,
        .done_us = clk_mono_us(),
    };
    (void)reqlog_add(&r);
}

/* resetShare / scripted reset: close the connection without an answer. */
static enum MHD_Result api_drop(struct sim_req *req)
{
    api_leave(req);
    api_record(req, 0, req->ws_id, NULL);
    req->phase = PH_DONE;
    return MHD_NO;
}

/* Hand the connection to the timer for delay_us. */
static enum MHD_Result api_delay(struct sim_req *req, uint64_t delay_us)
{
    req->phase = PH_DELAYED;
    stats_delayed(1);
    MHD_suspend_connection(req->conn);
    if (!timer_add(clk_mono_us() + delay_us, req->conn))
        MHD_resume_connection(req->conn); /* stopping: answer at once */
    return MHD_YES;
}

static void api_copy_tracking(struct sim_req *req)
{
    const char *t = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "TrackingID");

    if (t != NULL)
        req->tracking_in = strndup(t, API_MAX_TRACKING);
}

enum MHD_Result api_begin(struct sim_req *req)
{
    struct flt_decision d;
    bool token, body_ok = false;

    req->route = api_route_of(req->path, &req->ws_id);
    token = req->route == RT_TOKEN;
    api_copy_tracking(req);
    if (api_method_ok(req->route, req->method) && api_has_ws_body(req) && !req->too_large &&
        http_content_type_is(req->conn, "application/json"))
        body_ok = api_parse_body(req);
    api_pick_user(req);
    api_check_violations(req);
    stats_inflight(1);
    if (req->route != RT_NONE && !token && api_method_ok(req->route, req->method))
        req->auth =
            auth_check(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization"));

    faults_pre(req->method, req->user, token, &d);
    if (d.kind == FLT_RESET)
        return api_drop(req);
    api_decide(req, &d, body_ok);
    if (d.delay_us > 0 && !req->too_large)
        return api_delay(req, d.delay_us);
    return api_finish(req, true);
}

/* ------------------------------------------------------------------------ */
/* finish                                                                    */

/* Perform the operation; returns the status, with the success body in out
 * and new_id set for a created workspace. */
static int api_perform(struct sim_req *req, struct sbuf *out, char *new_id, size_t new_idsz)
{
    const char *msg = NULL;
    int st;

    switch (req->route) {
    case RT_WS_COLLECTION:
        st = store_create(&req->in, out, new_id, new_idsz);
        if (st == 409)
            api_set_error(req, 409, 40901, "User ID is already provisioned.");
        break;
    case RT_WS_ITEM:
        if (strcmp(req->method, "PUT") == 0)
            st = store_update(req->ws_id, req->in.user, req->in.phone, req->in.ext, out);
        else
            st = store_delete(req->ws_id);
        if (st == 404)
            api_set_error(req, 404, 40401, "Workspace not found.");
        else if (st == 409)
            api_set_error(req, 409, 40902, "User ID is already used by another workspace.");
        break;
    case RT_TOKEN:
        st = auth_refresh(req->body.p ? req->body.p : "", req->body.len, out, &msg);
        req->auth = st == 200;
        if (st != 200)
            api_set_error(req, st, st * 100 + 1, msg);
        break;
    case RT_NONE:
    default:
        st = 404;
        break;
    }
    if (st == 500)
        api_set_error(req, 500, 50000, "Internal server error (simulator out of memory).");
    return st;
}

enum MHD_Result api_finish(struct sim_req *req, bool send)
{
    struct sbuf out;
    char tracking[SIM_TRACKING_LEN];
    char new_id[128] = "";
    int status = req->status;
    unsigned ra = 0;
    char *body;
    size_t len;

    if (req->phase == PH_DELAYED)
        stats_delayed(-1);
    req->phase = PH_DONE;
    sbuf_init(&out);
    if (status == 0)
        status = api_perform(req, &out, new_id, sizeof new_id);
    http_tracking_id(tracking, sizeof tracking);
    if (status >= 400) {
        sbuf_free(&out);
        http_error_body(&out, req->msg ? req->msg : "Error", req->err_code, tracking);
        ra = req->retry_after;
    }
    /* A pause starts only when the client gets to see the Retry-After: for
     * every request after a 429, for this userId's after a 423. */
    if (status == 429 && ra > 0 && send)
        guard_retry_after_sent(req->sconn, clk_mono_us(), ra);
    else if (status == 423 && ra > 0 && send)
        guard_locked_sent(req->user, req->sconn, clk_mono_us(), ra);
    api_leave(req);
    api_record(req, status, new_id[0] ? new_id : req->ws_id, tracking);
    if (!send) {
        sbuf_free(&out);
        return MHD_YES;
    }
    if (status == 204) { /* no body */
        sbuf_free(&out);
        body = NULL;
        len = 0;
    } else if ((body = sbuf_take(&out, &len)) == NULL) {
        return MHD_NO; /* out of memory: drop the connection */
    }
    return http_send(req->conn, (unsigned)status, body, len, tracking, ra,
                     status == 405 ? api_allowed(req->route) : NULL);
}

void api_release(struct sim_req *req)
{
    if (req->json != NULL)
        json_object_put(req->json);
    req->json = NULL;
    free(req->ws_id);
    free(req->user);
    free(req->body_user);
    free(req->tracking_in);
    req->ws_id = req->user = req->body_user = req->tracking_in = NULL;
}
