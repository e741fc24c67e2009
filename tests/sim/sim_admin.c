/*
 * admin_: the test-facing admin API under /_sim/ (no authentication, no
 * faults, not recorded in the request log).
 *
 *   GET  /_sim/workspaces             all workspaces
 *   GET  /_sim/subscribers            all subscribers, with their pending transitions
 *   GET  /_sim/requests?since=N&limit=M   request log records with seq > N
 *   GET  /_sim/stats                  counters
 *   POST /_sim/reset                  clear workspaces, subscribers, request log, stats,
 *                                     faults
 *   GET  /_sim/faults                 current fault settings
 *   POST /_sim/faults                 merge fault settings (JSON object)
 */
#include "websim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_PREFIX "/_sim/"

/* Unsigned integer query argument; def when absent; false when malformed. */
static bool admin_query_u64(struct MHD_Connection *conn, const char *key, uint64_t def,
                            uint64_t *out)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
    char *end;
    unsigned long long n;

    *out = def;
    if (v == NULL || v[0] == '\0')
        return true;
    if (v[0] < '0' || v[0] > '9')
        return false;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = n;
    return true;
}

static enum MHD_Result admin_error(struct sim_req *req, unsigned status, const char *msg,
                                   const char *allow)
{
    struct sbuf out;
    char tracking[SIM_TRACKING_LEN];
    char *body;
    size_t len;

    sbuf_init(&out);
    http_tracking_id(tracking, sizeof tracking);
    http_error_body(&out, msg, (int)status * 100, tracking);
    body = sbuf_take(&out, &len);
    if (body == NULL)
        return MHD_NO;
    return http_send(req->conn, status, body, len, tracking, 0, allow);
}

static enum MHD_Result admin_ok(struct sim_req *req, struct sbuf *out)
{
    char tracking[SIM_TRACKING_LEN];
    size_t len;
    char *body = sbuf_take(out, &len);

    if (body == NULL)
        return admin_error(req, 500, "Out of memory.", NULL);
    http_tracking_id(tracking, sizeof tracking);
    return http_send(req->conn, 200, body, len, tracking, 0, NULL);
}

static enum MHD_Result admin_requests(struct sim_req *req, struct sbuf *out)
{
    uint64_t since, limit;

    if (!admin_query_u64(req->conn, "since", 0, &since) ||
        !admin_query_u64(req->conn, "limit", UINT64_MAX, &limit))
        return admin_error(req, 400, "since and limit must be unsigned integers.", NULL);
    reqlog_dump(out, since, limit);
    return admin_ok(req, out);
}

static enum MHD_Result admin_faults_post(struct sim_req *req, struct sbuf *out)
{
    char err[256];

    if (req->too_large)
        return admin_error(req, 413, "Request body too large.", NULL);
    if (faults_apply_json(req->body.p ? req->body.p : "", req->body.len, err, sizeof err) != 0)
        return admin_error(req, 400, err, NULL);
    fprintf(stderr, "websim: faults updated: %.*s\n",
            (int)(req->body.len > 400 ? 400 : req->body.len), req->body.p ? req->body.p : "");
    faults_dump(out);
    return admin_ok(req, out);
}

static void admin_reset(struct sbuf *out)
{
    store_reset();
    subs_reset();
    reqlog_reset();
    stats_reset();
    guard_reset();
    faults_reset();
    sbuf_puts(out, "{\"ok\":true}");
}

enum MHD_Result admin_handle(struct sim_req *req)
{
    const char *what = req->path + strlen(ADMIN_PREFIX);
    bool get = strcmp(req->method, "GET") == 0;
    bool post = strcmp(req->method, "POST") == 0;
    struct sbuf out;
    enum MHD_Result ret;

    sbuf_init(&out);
    req->phase = PH_DONE;
    if (strcmp(what, "workspaces") == 0 && get) {
        store_dump(&out);
        ret = admin_ok(req, &out);
    } else if (strcmp(what, "subscribers") == 0 && get) {
        subs_dump(&out);
        ret = admin_ok(req, &out);
    } else if (strcmp(what, "requests") == 0 && get) {
        ret = admin_requests(req, &out);
    } else if (strcmp(what, "stats") == 0 && get) {
        stats_dump(&out);
        ret = admin_ok(req, &out);
    } else if (strcmp(what, "reset") == 0 && post) {
        admin_reset(&out);
        ret = admin_ok(req, &out);
    } else if (strcmp(what, "faults") == 0 && (get || post)) {
        if (post) {
            ret = admin_faults_post(req, &out);
        } else {
            faults_dump(&out);
            ret = admin_ok(req, &out);
        }
    } else if (strcmp(what, "workspaces") == 0 || strcmp(what, "subscribers") == 0 ||
               strcmp(what, "requests") == 0 || strcmp(what, "stats") == 0) {
        ret = admin_error(req, 405, "Method not allowed.", "GET");
    } else if (strcmp(what, "reset") == 0) {
        ret = admin_error(req, 405, "Method not allowed.", "POST");
    } else if (strcmp(what, "faults") == 0) {
        ret = admin_error(req, 405, "Method not allowed.", "GET, POST");
    } else {
        ret = admin_error(req, 404, "No such admin endpoint.", NULL);
    }
    sbuf_free(&out);
    return ret;
}
