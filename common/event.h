/* event: the workspace change events of SPEC §2: parsing and validation.
 * Pure functions; thread-safe. */
#ifndef BWPROVD_EVENT_H
#define BWPROVD_EVENT_H

#include <stdbool.h>
#include <stddef.h>

enum ev_type { EV_NONE = 0, EV_PROVISION, EV_UPDATE, EV_REMOVE };

/* Field bounds (bytes). */
#define EV_MAX_EVENT_ID 128
#define EV_MAX_USER_ID 256
#define EV_MAX_DISPLAY_NAME 256
#define EV_MAX_PHONE 64
#define EV_MAX_EXTENSION 32
#define EV_MAX_PROVISIONING_ID 1024
#define EV_MAX_ENTERPRISE_ID 256
#define EV_MAX_WORKSPACE_ID 256 /* the API's maxLength for {workspaceId} */
/* Largest event accepted at all, before parsing. */
#define EV_MAX_BYTES (64 * 1024)

/* A parsed event. Strings are NUL-terminated, without embedded NUL, and
 * live in one block owned by the event (one allocation per event, not one
 * per field); optional ones are NULL when absent. */
struct ev_event {
    enum ev_type type;
    char *strings; /* the block the fields point into */
    size_t used, cap;
    char *event_id;
    char *user_id;
    char *new_user_id;      /* update only */
    char *provisioning_id;  /* provision only */
    char *sp_enterprise_id; /* provision only */
    char *display_name;     /* provision only */
    char *phone;            /* primaryPhoneNumber */
    char *extension;
    char *workspace_id; /* optional, update/remove */
    char ignored[96];   /* update: fields present that PUT cannot change */
};

/* Parses and validates one event. key may be NULL (a null Kafka key).
 * Returns 0 and fills ev, or -1 with a reason in why (and as many fields of
 * ev as could be read, e.g. eventId, so the rejection can name them).
 * Either way the caller must ev_clear(ev). */
int ev_parse(const void *key, size_t keylen, const void *value, size_t len, struct ev_event *ev,
             char *why, size_t whylen);

void ev_clear(struct ev_event *ev);

/* Whether s is strict UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), the check every event string passes. */
bool ev_utf8_valid(const void *s, size_t len);

/* "workspace.provision" etc.; NULL for EV_NONE. */
const char *ev_type_name(enum ev_type t);

#endif
