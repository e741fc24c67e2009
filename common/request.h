/* request: maps an event to its Webex API call (SPEC §1, §2b): method,
 * path, JSON body and TrackingID; and for subscribers the two reads that
 * complete one: polling a subscriber, looking one up by userId. Pure
 * functions; thread-safe. */
#ifndef BWPROVD_REQUEST_H
#define BWPROVD_REQUEST_H

#include "event.h"

#include <stddef.h>

#define REQ_TRACKING_MAX (8 + EV_MAX_EVENT_ID + 1)
/* The longest path: a lookup's query, every byte of both values escaped. */
#define REQ_PATH_MAX (96 + 3 * (EV_MAX_USER_ID + EV_MAX_ENTERPRISE_ID) + 1)

struct req {
    const char *method;      /* "POST", "PUT", "DELETE", "GET" (static) */
    char path[REQ_PATH_MAX]; /* relative to webex.base_url, e.g. "/broadworks/workspaces" */
    char *body;              /* owned JSON, NULL for DELETE and GET */
    size_t body_len;
};

/* Builds the request for ev: POST, PUT or DELETE of a workspace or a
 * subscriber. id (the workspace's or the subscriber's) is required for
 * update/remove (from the event, the state table or a lookup). Returns 0,
 * or -1 (out of memory or a missing or unusable id). Free with req_clear(). */
int req_build(const struct ev_event *ev, const char *id, struct req *out);

/* GET /broadworks/subscribers/{id}: how a subscriber's asynchronous
 * provisioning is followed. Returns 0 or -1 (an unusable id). */
int req_build_poll(const char *subscriber_id, struct req *out);

/* GET /broadworks/subscribers?userId=U[&spEnterpriseId=E]&max=100: finds a
 * subscriber whose id bwprovd does not have. sp may be NULL. Returns 0 or
 * -1 (a value too long). */
int req_build_lookup(const char *user_id, const char *sp_enterprise_id, struct req *out);
void req_clear(struct req *r);

/* "bwprovd_<eventId>" with every character other than letters, digits and
 * "-._:" replaced by '_', so an event can never inject a header. */
void req_tracking_id(const char *event_id, char *out, size_t outlen);

/* Percent-encodes one path segment (RFC 3986 unreserved kept, except the
 * dots of a segment made only of dots). Returns 0, or -1 if out is too
 * small. */
int req_escape_segment(const char *in, char *out, size_t outlen);

#endif
