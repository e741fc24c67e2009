/* classify: the SPEC §1 status table as a pure function, and the retry
 * policy (exponential backoff with full jitter, Retry-After). Thread-safe. */
#ifndef BWPROVD_CLASSIFY_H
#define BWPROVD_CLASSIFY_H

#include "event.h"

#include <stdbool.h>
#include <stdint.h>

enum cls_action {
    CLS_SUCCEEDED, /* outcome succeeded (note may say why) */
    CLS_FAILED,    /* outcome failed with kind */
    CLS_RETRY,     /* transient: retry after backoff; counts against max_attempts */
    CLS_WAIT,      /* 429/423: wait Retry-After, slow down; does not count */
    CLS_REAUTH,    /* 401: reload/refresh the token and retry once */
};

enum cls_kind {
    KIND_NONE = 0,
    KIND_PERMANENT,
    KIND_EXHAUSTED,
    KIND_AUTH,
    KIND_CONFLICT,
    KIND_UNKNOWN_WORKSPACE,
    KIND_INVALID,
    KIND_PROVISIONING, /* a subscriber ended in status error */
    KIND_TIMEOUT,      /* a subscriber's provisioning did not finish in time */
};
#define KIND_COUNT (KIND_TIMEOUT + 1)

struct cls_input {
    enum ev_type type;
    long status;       /* HTTP status; 0 when no response was received */
    int attempts;      /* attempts made so far, including this one */
    int max_attempts;  /* retry.max_attempts */
    bool auth_retried; /* a 401 was already retried once */
    bool have_state;   /* the state table holds a workspace for this user */
};

struct cls_verdict {
    enum cls_action action;
    enum cls_kind kind; /* for CLS_FAILED */
    const char *note;   /* static, for CLS_SUCCEEDED; NULL if none */
};

struct cls_verdict cls_classify(const struct cls_input *in);

/* The statuses Webex answers a request that did what it asked: 200, 201,
 * 202, 204 (every mapping's success, the one list). */
bool cls_success(long status);

/* "permanent", "exhausted", ...; NULL for KIND_NONE. */
const char *cls_kind_name(enum cls_kind k);

/* Full-jitter backoff for the given attempt (1 = after the first failure):
 * uniform in [0, min(max_ms, initial_ms * 2^(attempt-1))]. rnd is a uniform
 * 64-bit random number supplied by the caller (keeps this pure). */
int64_t cls_backoff_ms(int attempt, long initial_ms, long max_ms, uint64_t rnd);

/* Parses a Retry-After value: delta-seconds or an HTTP-date (relative to
 * now_epoch). Result is clamped to [0, 3600]. Returns 0, or -1 if absent
 * or unparseable (the caller then uses the backoff schedule). */
int cls_retry_after(const char *value, int64_t now_epoch, int64_t *seconds);

#endif
