/* request: see request.h. */
#include "request.h"

#include "jsonw.h"
#include "wsid.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool tracking_char_ok(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':';
}

void req_tracking_id(const char *event_id, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "bwprovd_");
    if (n >= outlen)
        return;
    for (const unsigned char *p = (const unsigned char *)(event_id ? event_id : "");
         *p && n + 1 < outlen; p++)
        out[n++] = tracking_char_ok(*p) && *p < 0x80 ? (char)*p : '_';
    out[n] = '\0';
}

int req_escape_segment(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    /* A segment of nothing but dots would be a dot segment ("." or "..")
     * to anything that normalises paths: its dots are encoded too. */
    bool dots_only = in[strspn(in, ".")] == '\0';

    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool keep = isalnum(*p) && *p < 0x80;
        keep = keep || *p == '-' || (*p == '.' && !dots_only) || *p == '_' || *p == '~';
        if (n + (keep ? 1 : 3) >= outlen)
            return -1;
        if (keep) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    if (n >= outlen)
        return -1;
    out[n] = '\0';
    return 0;
}

/* Bodies are written with jsonw (one allocation) rather than json-c
 * objects (one per member and more): this is per request. Absent fields
 * are left out, not sent as null. */
static void add_str(struct jw *w, const char *name, const char *value)
{
    if (value)
        jw_str(w, name, value);
}

static int provision_body(const struct ev_event *ev, struct req *r)
{
    struct jw w;
    jw_begin(&w);
    add_str(&w, "provisioningId", ev->provisioning_id);
    add_str(&w, "userId", ev->user_id);
    add_str(&w, "spEnterpriseId", ev->sp_enterprise_id);
    add_str(&w, "displayName", ev->display_name);
    add_str(&w, "primaryPhoneNumber", ev->phone);
    add_str(&w, "extension", ev->extension);
    r->body = jw_finish(&w, &r->body_len);
    return r->body ? 0 : -1;
}

/* PUT can change only userId, primaryPhoneNumber and extension. */
static int update_body(const struct ev_event *ev, struct req *r)
{
    struct jw w;
    jw_begin(&w);
    add_str(&w, "userId", ev->new_user_id ? ev->new_user_id : ev->user_id);
    add_str(&w, "primaryPhoneNumber", ev->phone);
    add_str(&w, "extension", ev->extension);
    r->body = jw_finish(&w, &r->body_len);
    return r->body ? 0 : -1;
}

static int set_item_path(struct req *r, const char *base, const char *id)
{
    size_t blen = strlen(base);
    /* Whatever its origin (event, state table, an answer), an id that
     * cannot be one segment is never sent. */
    if (!id || wsid_check(id, strlen(id)) || blen >= sizeof(r->path))
        return -1;
    memcpy(r->path, base, blen + 1);
    return req_escape_segment(id, r->path + blen, sizeof(r->path) - blen);
}

#define WS_BASE "/broadworks/workspaces"
#define SUB_BASE "/broadworks/subscribers"

static int workspace_request(const struct ev_event *ev, const char *id, struct req *out)
{
    switch (ev->type) {
    case EV_PROVISION:
        out->method = "POST";
        snprintf(out->path, sizeof(out->path), WS_BASE);
        return provision_body(ev, out);
    case EV_UPDATE:
        out->method = "PUT";
        if (set_item_path(out, WS_BASE "/", id) != 0)
            return -1;
        return update_body(ev, out);
    case EV_REMOVE:
        out->method = "DELETE";
        return set_item_path(out, WS_BASE "/", id);
    case EV_NONE:
        break;
    }
    return -1;
}

/* POST: the fields of Cisco's OpenAPI, the optional ones when present. */
static int sub_provision_body(const struct ev_event *ev, struct req *r)
{
    struct jw w;
    jw_begin(&w);
    add_str(&w, "provisioningId", ev->provisioning_id);
    add_str(&w, "userId", ev->user_id);
    add_str(&w, "spEnterpriseId", ev->sp_enterprise_id);
    add_str(&w, "firstName", ev->first_name);
    add_str(&w, "lastName", ev->last_name);
    add_str(&w, "package", ev->package);
    add_str(&w, "primaryPhoneNumber", ev->phone);
    add_str(&w, "mobilePhoneNumber", ev->mobile);
    add_str(&w, "extension", ev->extension);
    add_str(&w, "email", ev->email);
    add_str(&w, "language", ev->language);
    add_str(&w, "timezone", ev->timezone);
    r->body = jw_finish(&w, &r->body_len);
    return r->body ? 0 : -1;
}

/* PUT can change userId, the names, the three numbers, the time zone and
 * the package; userId always goes (newUserId when renaming). */
static int sub_update_body(const struct ev_event *ev, struct req *r)
{
    struct jw w;
    jw_begin(&w);
    add_str(&w, "userId", ev->new_user_id ? ev->new_user_id : ev->user_id);
    add_str(&w, "firstName", ev->first_name);
    add_str(&w, "lastName", ev->last_name);
    add_str(&w, "primaryPhoneNumber", ev->phone);
    add_str(&w, "mobilePhoneNumber", ev->mobile);
    add_str(&w, "extension", ev->extension);
    add_str(&w, "timezone", ev->timezone);
    add_str(&w, "package", ev->package);
    r->body = jw_finish(&w, &r->body_len);
    return r->body ? 0 : -1;
}

static int subscriber_request(const struct ev_event *ev, const char *id, struct req *out)
{
    switch (ev->type) {
    case EV_PROVISION:
        out->method = "POST";
        snprintf(out->path, sizeof(out->path), SUB_BASE);
        return sub_provision_body(ev, out);
    case EV_UPDATE:
        out->method = "PUT";
        if (set_item_path(out, SUB_BASE "/", id) != 0)
            return -1;
        return sub_update_body(ev, out);
    case EV_REMOVE:
        out->method = "DELETE";
        return set_item_path(out, SUB_BASE "/", id);
    case EV_NONE:
        break;
    }
    return -1;
}

int req_build(const struct ev_event *ev, const char *id, struct req *out)
{
    memset(out, 0, sizeof(*out));
    if (ev->kind == EV_SUBSCRIBER)
        return subscriber_request(ev, id, out);
    return workspace_request(ev, id, out);
}

int req_build_poll(const char *subscriber_id, struct req *out)
{
    memset(out, 0, sizeof(*out));
    out->method = "GET";
    return set_item_path(out, SUB_BASE "/", subscriber_id);
}

/* Appends "name=value" (value percent-encoded) to the path's query. */
static int add_query(struct req *r, const char *sep, const char *name, const char *value)
{
    size_t n = strlen(r->path);
    int w = snprintf(r->path + n, sizeof(r->path) - n, "%s%s=", sep, name);
    if (w < 0 || (size_t)w >= sizeof(r->path) - n)
        return -1;
    n += (size_t)w;
    return req_escape_segment(value, r->path + n, sizeof(r->path) - n);
}

int req_build_lookup(const char *user_id, const char *sp_enterprise_id, struct req *out)
{
    memset(out, 0, sizeof(*out));
    out->method = "GET";
    snprintf(out->path, sizeof(out->path), SUB_BASE);
    if (!user_id || !*user_id || add_query(out, "?", "userId", user_id) != 0)
        return -1;
    if (sp_enterprise_id && *sp_enterprise_id &&
        add_query(out, "&", "spEnterpriseId", sp_enterprise_id) != 0)
        return -1;
    return add_query(out, "&", "max", "100");
}

void req_clear(struct req *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}
