/* resp: parses Webex API response bodies: the workspace of a 200 and the
 * error body of a 4xx/5xx. Input is untrusted; pure and thread-safe. */
#ifndef BWPROVD_RESP_H
#define BWPROVD_RESP_H

#include <stddef.h>

#define RESP_MSG_MAX 512
#define RESP_ID_MAX 512

/* What bwprovd keeps of a response. Strings are owned, NULL when absent. */
struct resp {
    char *id; /* workspace id */
    char *user_id;
    char *sp_enterprise_id;
    char *provisioning_id;
    char *display_name;
    char *phone;
    char *extension;
    char *message;     /* error message */
    char *tracking_id; /* error body trackingId */
};

/* Parses body (may be NULL/empty). Returns 0 when it was a JSON object (the
 * fields it has are filled), -1 otherwise (resp stays empty). Strings longer
 * than their bound are truncated. Free with resp_clear(). */
int resp_parse(const char *body, size_t len, struct resp *out);
void resp_clear(struct resp *r);

#endif
