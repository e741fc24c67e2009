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
 *
 * Two resources share this: the workspaces (here, on store_) and the
 * subscribers (sim_subapi.c, on subs_). Each has a collection route and an
 * item route; the subscribers' also answer GET.
 */
#include "websim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define API_WS_PATH "/v1/broadworks/workspaces"
#define API_TOKEN_PATH "/v1/access_token"
#define API_MAX_ID 1024      /* longest decoded workspace or subscriber id */
#define API_MAX_TRACKING 256 /* longest recorded request TrackingID */
#define API_MAX_QUERY 4096   /* longest recorded query string */

/* ------------------------------------------------------------------------ */
/* routing                                                                   */

/* Route of a raw path under a resource's collection path coll; for an item,
 * *id gets the decoded id (malloc'd), or stays NULL when the segment is not a
 * valid percent-encoding. */
static enum api_route api_route_under(const char *path, const char *coll, enum api_route collection,
                                      enum api_route item, char **id)
{
    size_t plen = strlen(coll);
    const char *seg;
    char buf[API_MAX_ID];

    if (strncmp(path, coll, plen) != 0)
        return RT_NONE;
    if (path[plen] == '\0')
        return collection;
    if (path[plen] != '/')
        return RT_NONE;
    seg = path + plen + 1;
    if (seg[0] == '\0' || strchr(seg, '/') != NULL)
        return RT_NONE;
    if (pct_decode(seg, strlen(seg), false, buf, sizeof buf))
        *id = strdup(buf);
    return item;
}

static enum api_route api_route_of(const char *path, char **id)
{
    enum api_route rt;

    *id = NULL;
    if (strcmp(path, API_TOKEN_PATH) == 0)
        return RT_TOKEN;
    rt = api_route_under(path, API_WS_PATH, RT_WS_COLLECTION, RT_WS_ITEM, id);
    if (rt == RT_NONE)
        rt = api_route_under(path, API_SUB_PATH, RT_SUB_COLLECTION, RT_SUB_ITEM, id);
    return rt;
}

static const char *api_allowed(enum api_route route)
{
    switch (route) {
    case RT_WS_COLLECTION:
    case RT_TOKEN:
        return "POST";
    case RT_WS_ITEM:
        return "PUT, DELETE";
    case RT_SUB_COLLECTION:
        return "GET, POST";
    case RT_SUB_ITEM:
        return "GET, PUT, DELETE";
    case RT_NONE:
        break;
    }
    return NULL;
}

static bool api_method_ok(enum api_route route, const char *method)
{
    bool get = strcmp(method, "GET") == 0;
    bool post = strcmp(method, "POST") == 0;
    bool put_or_delete = strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;

    switch (route) {
    case RT_WS_COLLECTION:
    case RT_TOKEN:
        return post;
    case RT_WS_ITEM:
        return put_or_delete;
    case RT_SUB_COLLECTION:
        return get || post;
    case RT_SUB_ITEM:
        return get || put_or_delete;
    case RT_NONE:
        break;
    }
    return false;
}

static bool api_is_sub(const struct sim_req *req)
{
    return req->route == RT_SUB_COLLECTION || req->route == RT_SUB_ITEM;
}

static bool api_is_item(const struct sim_req *req)
{
    return req->route == RT_WS_ITEM || req->route == RT_SUB_ITEM;
}

/* Does this (valid) request carry a JSON body: a POST on a collection or a
 * PUT on an item? */
static bool api_has_body(const struct sim_req *req)
{
    return ((req->route == RT_WS_COLLECTION || req->route == RT_SUB_COLLECTION) &&
            strcmp(req->method, "POST") == 0) ||
           (api_is_item(req) && strcmp(req->method, "PUT") == 0);
}

/* Is it a subscriber list (GET with query parameters to check)? */
static bool api_is_list(const struct sim_req *req)
{
    return req->route == RT_SUB_COLLECTION && strcmp(req->method, "GET") == 0;
}

/* ------------------------------------------------------------------------ */
/* body validation                                                           */

void api_set_error(struct sim_req *req, int status, int code, const char *msg)
{
    req->status = status;
    req->err_code = code;
    req->msg = msg;
}

bool api_field(struct sim_req *req, const char *key, enum api_need need, const char **out)
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

/* Validate a workspace POST/PUT body into req->in. POST needs userId,
 * provisioningId, spEnterpriseId and displayName; a PUT needs nothing, as in
 * Cisco's OpenAPI, but a userId it sends must not be empty. An empty
 * primaryPhoneNumber or extension is left out of a POST (in->phone/ext NULL)
 * and kept as "" for a PUT, where it clears the field. On failure the message
 * is in req->msgbuf. */
static bool api_parse_ws_body(struct sim_req *req)
{
    bool post = strcmp(req->method, "POST") == 0;
    struct ws_input *in = &req->in;

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

/* Parse a POST/PUT body as one JSON object and validate it for its resource. */
static bool api_parse_body(struct sim_req *req)
{
    const char *why;

    req->json = sim_json_parse_object(req->body.p ? req->body.p : "", req->body.len, &why);
    if (req->json == NULL) {
        snprintf(req->msgbuf, sizeof req->msgbuf, "Invalid request body: %s", why);
        return false;
    }
    return api_is_sub(req) ? subapi_parse_body(req) : api_parse_ws_body(req);
}

/* Parse what the request carries (a body, a list's query); true when it is
 * valid or carries nothing. Only for a routed request with the right method,
 * and a body only when it is in time and JSON (else 413/415 come first). */
static bool api_parse_input(struct sim_req *req)
{
    if (!api_method_ok(req->route, req->method))
        return false;
    if (api_is_list(req))
        return subapi_parse_query(req);
    if (!api_has_body(req))
        return true;
    if (req->too_large || !http_content_type_is(req->conn, "application/json"))
        return false;
    return api_parse_body(req);
}

/* ------------------------------------------------------------------------ */
/* begin                                                                     */

/* Work out the userId the request is about: the body's for POST, the
 * workspace's or subscriber's current one on an item route, the userId
 * filter of a subscriber list (none without one). */
static void api_pick_user(struct sim_req *req)
{
    if (api_is_list(req)) {
        if (req->query != NULL && req->query->v[SQ_USER] != NULL)
            req->user = strdup(req->query->v[SQ_USER]);
    } else if ((req->route == RT_WS_COLLECTION || req->route == RT_SUB_COLLECTION) &&
               req->body_user != NULL) {
        req->user = strdup(req->body_user);
    } else if (req->route == RT_WS_ITEM && req->item_id != NULL) {
        req->user = store_user_of(req->item_id);
    } else if (req->route == RT_SUB_ITEM && req->item_id != NULL) {
        req->user = subs_user_of(req->item_id);
    }
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

/* Decide the answer (req->status, 0: perform), after faults_pre(). input_ok:
 * what api_parse_input() said. */
static void api_decide(struct sim_req *req, struct flt_decision *d, bool input_ok)
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
    } else if (api_has_body(req) && !http_content_type_is(req->conn, "application/json")) {
        api_set_error(req, 415, 41500, "Content-Type must be application/json.");
    } else {
        faults_post(d);
        if (d->kind == FLT_STATUS) {
            api_set_error(req, d->status, d->status * 100, d->why);
            req->retry_after = d->retry_after;
        } else if (api_has_body(req) && !input_ok) {
            api_set_error(req, 400, 40001, req->msgbuf);
        } else if (api_is_list(req) && !input_ok) {
            api_set_error(req, 400, 40002, req->msgbuf);
        } else if (req->route == RT_WS_ITEM && req->item_id == NULL) {
            api_set_error(req, 404, 40401, "Workspace not found.");
        } else if (req->route == RT_SUB_ITEM && req->item_id == NULL) {
            api_set_error(req, 404, 40402, "Subscriber not found.");
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

/* id: the created or the addressed workspace or subscriber (may be NULL). */
static void api_record(struct sim_req *req, int status, const char *id, const char *tracking)
{
    bool sub = api_is_sub(req);
    struct reqrec_in r = {
        .method = req->method,
        .path = req->path,
        .user = req->user,
        .body_user = req->body_user,
        .ws_id = sub ? NULL : id,
        .sub_id = sub ? id : NULL,
        .query = req->qstring,
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
    api_record(req, 0, req->item_id, NULL);
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

/* MHD_get_connection_values() iterator: append "&key=value" as it came
 * (MHD has turned a '+' into a space: turned back here). */
static enum MHD_Result api_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct sbuf *sb = cls;

    (void)kind;
    sbuf_puts(sb, sb->len > 0 ? "&" : "");
    for (const char *s = key; *s; s++)
        sbuf_put(sb, *s == ' ' ? "+" : s, 1);
    if (value != NULL) {
        sbuf_puts(sb, "=");
        for (const char *s = value; *s; s++)
            sbuf_put(sb, *s == ' ' ? "+" : s, 1);
    }
    return sb->len > API_MAX_QUERY ? MHD_NO : MHD_YES;
}

/* Keep the query string for the request log (cut at API_MAX_QUERY). */
static void api_copy_query(struct sim_req *req)
{
    struct sbuf sb;
    size_t len;

    sbuf_init(&sb);
    (void)MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, api_query_arg, &sb);
    if (sb.len > API_MAX_QUERY) {
        sb.len = API_MAX_QUERY;
        sb.p[sb.len] = '\0';
    }
    if (sb.len > 0)
        req->qstring = sbuf_take(&sb, &len);
    sbuf_free(&sb);
}

enum MHD_Result api_begin(struct sim_req *req)
{
    struct flt_decision d;
    bool token, input_ok;

    req->route = api_route_of(req->path, &req->item_id);
    token = req->route == RT_TOKEN;
    api_copy_tracking(req);
    api_copy_query(req);
    input_ok = api_parse_input(req);
    api_pick_user(req);
    api_check_violations(req);
    stats_inflight(1);
    if (req->route != RT_NONE && !token && api_method_ok(req->route, req->method))
        req->auth =
            auth_check(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization"));

    faults_pre(req->method, req->user, token, &d);
    if (d.kind == FLT_RESET)
        return api_drop(req);
    api_decide(req, &d, input_ok);
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
            st = store_update(req->item_id, req->in.user, req->in.phone, req->in.ext, out);
        else
            st = store_delete(req->item_id);
        if (st == 404)
            api_set_error(req, 404, 40401, "Workspace not found.");
        else if (st == 409)
            api_set_error(req, 409, 40902, "User ID is already used by another workspace.");
        break;
    case RT_SUB_COLLECTION:
    case RT_SUB_ITEM:
        st = subapi_perform(req, out, new_id, new_idsz);
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
    api_record(req, status, new_id[0] ? new_id : req->item_id, tracking);
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
    return http_send_link(req->conn, (unsigned)status, body, len, tracking, ra,
                          status == 405 ? api_allowed(req->route) : NULL,
                          status == 200 ? req->link : NULL);
}

void api_release(struct sim_req *req)
{
    if (req->json != NULL)
        json_object_put(req->json);
    req->json = NULL;
    subapi_query_free(req->query);
    req->query = NULL;
    free(req->item_id);
    free(req->user);
    free(req->body_user);
    free(req->tracking_in);
    free(req->link);
    free(req->qstring);
    req->item_id = req->user = req->body_user = req->tracking_in = req->link = req->qstring = NULL;
}
