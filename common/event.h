/* event: the change events of SPEC §2 (workspaces) and §2b (subscribers):
 * parsing and validation. Pure functions; thread-safe. */
#ifndef BWPROVD_EVENT_H
#define BWPROVD_EVENT_H

#include <stdbool.h>
#include <stddef.h>

/* What changes (the verb) and what it changes (the resource): an event's
 * "type" is "<kind>.<verb>", e.g. "subscriber.update". */
enum ev_type { EV_NONE = 0, EV_PROVISION, EV_UPDATE, EV_REMOVE };
enum ev_kind { EV_WORKSPACE = 0, EV_SUBSCRIBER };

/* Field bounds (bytes). */
#define EV_MAX_EVENT_ID 128
#define EV_MAX_USER_ID 256
#define EV_MAX_DISPLAY_NAME 256
#define EV_MAX_PHONE 64
#define EV_MAX_EXTENSION 32
#define EV_MAX_PROVISIONING_ID 1024
#define EV_MAX_ENTERPRISE_ID 256
#define EV_MAX_WORKSPACE_ID 256 /* the API's maxLength for {workspaceId} */
#define EV_MAX_NAME 256         /* firstName, lastName */
#define EV_MAX_EMAIL 320
#define EV_MAX_LANGUAGE 35 /* a BCP 47 tag such as "en_US" or "zh-Hant-TW" */
#define EV_MAX_TIMEZONE 64 /* an IANA zone name such as "America/Los_Angeles" */
#define EV_MAX_PACKAGE 16
#define EV_MAX_SUBSCRIBER_ID 256 /* one path segment, as a workspace id */
/* Largest event accepted at all, before parsing. */
#define EV_MAX_BYTES (64 * 1024)

/* A parsed event. Strings are NUL-terminated, without embedded NUL, and
 * live in one block owned by the event (one allocation per event, not one
 * per field); optional ones are NULL when absent. */
struct ev_event {
    enum ev_type type;
    enum ev_kind kind;
    char *strings; /* the block the fields point into */
    size_t used, cap;
    char *event_id;
    char *user_id;
    char *new_user_id;      /* update only */
    char *provisioning_id;  /* provision only */
    char *sp_enterprise_id; /* provision (optional for a subscriber's update/remove) */
    char *display_name;     /* workspace provision only */
    char *phone;            /* primaryPhoneNumber */
    char *extension;
    char *workspace_id; /* optional, workspace update/remove */
    /* Subscribers only. */
    char *first_name, *last_name; /* required by a provision */
    char *package;                /* required by a provision; softphone|basic|standard|premium */
    char *mobile;                 /* mobilePhoneNumber */
    char *email, *language;       /* provision only */
    char *timezone;
    char *subscriber_id; /* optional, update/remove */
    char ignored[96];    /* update: fields present that PUT cannot change */
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

/* "workspace.provision", "subscriber.remove" etc.; NULL for EV_NONE. */
const char *ev_type_name(enum ev_kind k, enum ev_type t);

/* A small number naming kind and verb together, 0 (EV_NONE) to
 * EV_CODES - 1, for tables indexed by event type; ev_code_name() its name. */
#define EV_CODES 7
int ev_code(enum ev_kind k, enum ev_type t);
const char *ev_code_name(int code);

#endif
