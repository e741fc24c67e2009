/* request: maps an event to its Webex API call (SPEC §1): method, path,
 * JSON body and TrackingID. Pure functions; thread-safe. */
#ifndef BWPROVD_REQUEST_H
#define BWPROVD_REQUEST_H

#include "event.h"

#include <stddef.h>

#define REQ_TRACKING_MAX (8 + EV_MAX_EVENT_ID + 1)
#define REQ_PATH_MAX (32 + 3 * EV_MAX_WORKSPACE_ID + 1)

struct req {
    const char *method;      /* "POST", "PUT", "DELETE" (static) */
    char path[REQ_PATH_MAX]; /* relative to webex.base_url, e.g. "/broadworks/workspaces" */
    char *body;              /* owned JSON, NULL for DELETE */
    size_t body_len;
};

/* Builds the request for ev. workspace_id is required for update/remove
 * (from the event or the state table). Returns 0, or -1 (out of memory or
 * a missing workspace id). Free with req_clear(). */
int req_build(const struct ev_event *ev, const char *workspace_id, struct req *out);
void req_clear(struct req *r);

/* "bwprovd_<eventId>" with every character other than letters, digits and
 * "-._:" replaced by '_', so an event can never inject a header. */
void req_tracking_id(const char *event_id, char *out, size_t outlen);

/* Percent-encodes one path segment (RFC 3986 unreserved kept, except the
 * dots of a segment made only of dots). Returns 0, or -1 if out is too
 * small. */
int req_escape_segment(const char *in, char *out, size_t outlen);

#endif
