/* resp: parses Webex API response bodies: the workspace or subscriber of a
 * 200, the error body of a 4xx/5xx, and a subscriber list (a lookup).
 * Input is untrusted; pure and thread-safe. */
#ifndef BWPROVD_RESP_H
#define BWPROVD_RESP_H

#include <stddef.h>

#define RESP_MSG_MAX 512
#define RESP_ID_MAX 512

/* What bwprovd keeps of a response. Strings are owned, NULL when absent. */
struct resp {
    char *id; /* workspace or subscriber id */
    char *user_id;
    char *sp_enterprise_id;
    char *provisioning_id;
    char *display_name;
    char *phone;
    char *extension;
    char *message;     /* error message */
    char *tracking_id; /* error body trackingId */
    /* A subscriber's: */
    char *status;    /* provisioning status ("provisioning", "error", ...) */
    char *person_id; /* once provisioned */
    char *errors;    /* errors[] as "10022: description; ..." */
    long error_code; /* the first errors[].errorCode, 0 when none */
};

/* Parses body (may be NULL/empty). Returns 0 when it was a JSON object (the
 * fields it has are filled), -1 otherwise (resp stays empty). Strings longer
 * than their bound are truncated. Free with resp_clear(). */
int resp_parse(const char *body, size_t len, struct resp *out);
void resp_clear(struct resp *r);

/* A subscriber list ({"items": [...]}, the answer to a lookup): fills out
 * with the item whose userId is user_id (the one not in "error" when there
 * are several) and returns how many items have that userId (0: out stays
 * empty), or -1 when body is not such a list. */
int resp_parse_list(const char *body, size_t len, const char *user_id, struct resp *out);

#endif
