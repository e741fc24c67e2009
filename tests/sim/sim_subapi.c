/*
 * subapi_: the BroadWorks subscriber routes of the /v1 API.
 *
 * sim_api.c routes a request, runs the detectors and the faults, and decides
 * the order of the checks; this file knows what a subscriber request must
 * look like (the POST and PUT bodies, the list's query parameters), performs
 * it on subs_, and turns the store's answer into the API's error codes and
 * the list's Link header.
 */
#include "websim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest decoded query parameter value, and most parameters in one query:
 * beyond them the list is 400, so a query costs bounded memory. */
#define SUBAPI_MAX_QVALUE 1024u
#define SUBAPI_MAX_QARGS 32u
/* Page size of the list: the OpenAPI's default and its maximum. */
#define SUBAPI_MAX_DEFAULT 50u
#define SUBAPI_MAX_MAX 100u

/* What each field must be in a POST and in a PUT (Cisco's OpenAPI); a PUT
 * ignores the fields it does not take. */
static const struct {
    enum api_need post;
    bool in_put;
    enum api_need put;
} subapi_rules[SF_N] = {
    [SF_USER] = {FIELD_REQUIRED, true, FIELD_NONEMPTY},
    [SF_SP] = {FIELD_REQUIRED, false, FIELD_OPTIONAL},
    [SF_FIRST] = {FIELD_REQUIRED, true, FIELD_NONEMPTY},
    [SF_LAST] = {FIELD_REQUIRED, true, FIELD_NONEMPTY},
    [SF_EMAIL] = {FIELD_OPTIONAL, false, FIELD_OPTIONAL},
    [SF_PHONE] = {FIELD_OPTIONAL, true, FIELD_OPTIONAL},
    [SF_MOBILE] = {FIELD_OPTIONAL, true, FIELD_OPTIONAL},
    [SF_EXT] = {FIELD_OPTIONAL, true, FIELD_OPTIONAL},
    [SF_PACKAGE] = {FIELD_REQUIRED, true, FIELD_NONEMPTY},
    [SF_LANGUAGE] = {FIELD_OPTIONAL, false, FIELD_OPTIONAL},
    [SF_TIMEZONE] = {FIELD_OPTIONAL, true, FIELD_OPTIONAL},
    [SF_PROV] = {FIELD_REQUIRED, false, FIELD_OPTIONAL},
};

static const char *const subapi_qkeys[SQ_N] = {
    [SQ_USER] = "userId",
    [SQ_PERSON] = "personId",
    [SQ_EMAIL] = "email",
    [SQ_PROV] = "provisioningId",
    [SQ_SP] = "spEnterpriseId",
    [SQ_STATUS] = "status",
    [SQ_CHANGED] = "lastStatusChange",
    [SQ_AFTER] = "after",
    [SQ_SELF] = "selfActivated",
    [SQ_MAX] = "max",
    [SQ_CURSOR] = "cursor",
};

/* ------------------------------------------------------------------------ */
/* bodies                                                                    */

static bool subapi_package_ok(const char *p)
{
    return strcmp(p, "softphone") == 0 || strcmp(p, "basic") == 0 || strcmp(p, "standard") == 0 ||
           strcmp(p, "premium") == 0;
}

bool subapi_parse_body(struct sim_req *req)
{
    bool post = strcmp(req->method, "POST") == 0;
    const char **f = req->sub.f;

    for (int i = 0; i < SF_N; i++) {
        enum api_need need = post ? subapi_rules[i].post : subapi_rules[i].put;
        f[i] = NULL;
        if (!post && !subapi_rules[i].in_put)
            continue;
        if (!api_field(req, subs_field_name((enum sub_field)i), need, &f[i]))
            return false;
        /* An empty optional string: absent in a POST, "clear it" in a PUT. */
        if (post && f[i] != NULL && f[i][0] == '\0')
            f[i] = NULL;
    }
    if (f[SF_PACKAGE] != NULL && !subapi_package_ok(f[SF_PACKAGE])) {
        snprintf(req->msgbuf, sizeof req->msgbuf,
                 "Field package must be one of softphone, basic, standard, premium");
        return false;
    }
    if (f[SF_USER] != NULL && (req->body_user = strdup(f[SF_USER])) == NULL) {
        snprintf(req->msgbuf, sizeof req->msgbuf, "Out of memory");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* the list's query                                                          */

void subapi_query_free(struct sub_query *q)
{
    if (q == NULL)
        return;
    for (int i = 0; i < SQ_N; i++)
        free(q->v[i]);
    free(q);
}

struct subapi_qctx {
    struct sim_req *req;
    struct sub_query *q;
    unsigned nargs;
    bool ok;
};

/* Record why the query is refused; returns false. */
static bool subapi_bad(struct subapi_qctx *c, const char *key, const char *what)
{
    snprintf(c->req->msgbuf, sizeof c->req->msgbuf, "Query parameter %s: %s", key, what);
    c->ok = false;
    return false;
}

static enum MHD_Result subapi_qfail(struct subapi_qctx *c, const char *key, const char *what)
{
    (void)subapi_bad(c, key, what);
    return MHD_NO;
}

/* MHD_get_connection_values() iterator: keep the known parameters, decoded
 * (MHD has already turned '+' into a space; %2B is a '+'). Unknown ones are
 * ignored, an empty value counts as absent. */
static enum MHD_Result subapi_qarg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct subapi_qctx *c = cls;
    char buf[SUBAPI_MAX_QVALUE + 1];
    int i;

    (void)kind;
    if (++c->nargs > SUBAPI_MAX_QARGS)
        return subapi_qfail(c, "(all)", "more than 32 parameters");
    for (i = 0; i < SQ_N && strcmp(subapi_qkeys[i], key) != 0; i++)
        ;
    if (i == SQ_N || value == NULL || value[0] == '\0')
        return MHD_YES;
    if (c->q->v[i] != NULL)
        return subapi_qfail(c, key, "given more than once");
    if (!pct_decode(value, strlen(value), false, buf, sizeof buf))
        return subapi_qfail(c, key, "malformed percent-encoding or longer than 1024 bytes");
    if ((c->q->v[i] = strdup(buf)) == NULL)
        return subapi_qfail(c, key, "out of memory");
    return MHD_YES;
}

/* Exactly n decimal digits at *p, into *out; advances *p. */
static bool subapi_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* Optional ".fff" (1 to 9 digits, ',' too): milliseconds into *ms. */
static bool subapi_fraction(const char **p, int *ms)
{
    int n = 0;

    *ms = 0;
    if (**p != '.' && **p != ',')
        return true;
    for ((*p)++; **p >= '0' && **p <= '9'; (*p)++, n++) {
        if (n < 3)
            *ms = *ms * 10 + (**p - '0');
    }
    for (int i = n; i < 3; i++)
        *ms *= 10;
    return n >= 1 && n <= 9;
}

/* Optional zone "Z", "+HH:MM", "+HHMM", "-..."; none is UTC. Seconds east. */
static bool subapi_zone(const char **p, long *east)
{
    int sign, h, m;

    *east = 0;
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        return true;
    }
    if (**p != '+' && **p != '-')
        return true;
    sign = **p == '-' ? -1 : 1;
    (*p)++;
    if (!subapi_digits(p, 2, &h))
        return false;
    if (**p == ':')
        (*p)++;
    if (!subapi_digits(p, 2, &m) || h > 23 || m > 59)
        return false;
    *east = sign * (h * 3600L + m * 60L);
    return true;
}

/* ISO 8601: YYYY-MM-DD, optionally THH:MM[:SS[.fff]] and a zone. */
static bool subapi_parse_iso(const char *s, int64_t *ms)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    long east = 0;
    time_t t;

    if (!subapi_digits(&s, 4, &y) || *s++ != '-' || !subapi_digits(&s, 2, &mo) || *s++ != '-' ||
        !subapi_digits(&s, 2, &d))
        return false;
    if (*s == 'T' || *s == 't') {
        s++;
        if (!subapi_digits(&s, 2, &h) || *s++ != ':' || !subapi_digits(&s, 2, &mi))
            return false;
        if (*s == ':' && (s++, !subapi_digits(&s, 2, &sec) || !subapi_fraction(&s, &frac)))
            return false;
        if (!subapi_zone(&s, &east))
            return false;
    }
    if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d) /* timegm() moved 2021-02-30 to March */
        return false;
    *ms = ((int64_t)t - east) * 1000 + frac;
    return true;
}

/* Epoch milliseconds (the OpenAPI's preferred form) or ISO 8601. */
static bool subapi_parse_time(const char *s, int64_t *ms)
{
    char *end;
    long long v;

    if (s[0] >= '0' && s[0] <= '9' && strspn(s, "0123456789") == strlen(s)) {
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || strlen(s) > 15)
            return false;
        *ms = v;
        return true;
    }
    return subapi_parse_iso(s, ms);
}

/* Comma-separated status names into a bit mask. */
static bool subapi_parse_status(const char *s, unsigned *mask)
{
    *mask = 0;
    for (;;) {
        size_t n = strcspn(s, ",");
        enum sub_status st;
        if (!subs_status_parse(s, n, &st))
            return false;
        *mask |= 1u << st;
        if (s[n] == '\0')
            return true;
        s += n + 1;
    }
}

static bool subapi_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* Check and convert the kept values of q. */
static bool subapi_query_values(struct subapi_qctx *c)
{
    struct sub_query *q = c->q;
    char *const *v = q->v;
    uint64_t n = SUBAPI_MAX_DEFAULT;

    if (v[SQ_STATUS] && !subapi_parse_status(v[SQ_STATUS], &q->status_mask))
        return subapi_bad(c, "status", "unknown status");
    if (v[SQ_CHANGED] && !subapi_parse_time(v[SQ_CHANGED], &q->changed_after_ms))
        return subapi_bad(c, "lastStatusChange", "want epoch ms or ISO 8601");
    if (v[SQ_AFTER] && !subapi_parse_time(v[SQ_AFTER], &q->created_after_ms))
        return subapi_bad(c, "after", "want epoch ms or ISO 8601");
    if (v[SQ_SELF] && strcmp(v[SQ_SELF], "true") != 0 && strcmp(v[SQ_SELF], "false") != 0)
        return subapi_bad(c, "selfActivated", "want true or false");
    q->self_activated = v[SQ_SELF] && strcmp(v[SQ_SELF], "true") == 0;
    if (v[SQ_MAX] && (!subapi_parse_uint(v[SQ_MAX], SUBAPI_MAX_MAX, &n) || n == 0))
        return subapi_bad(c, "max", "want 1 to 100");
    q->max = (unsigned)n;
    if (v[SQ_CURSOR] && !subapi_parse_uint(v[SQ_CURSOR], UINT64_MAX, &q->cursor))
        return subapi_bad(c, "cursor", "want the value of a Link header");
    return true;
}

bool subapi_parse_query(struct sim_req *req)
{
    struct subapi_qctx c = {req, calloc(1, sizeof *c.q), 0, true};

    if (c.q == NULL) {
        snprintf(req->msgbuf, sizeof req->msgbuf, "Out of memory");
        return false;
    }
    req->query = c.q; /* freed by api_release() */
    (void)MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, subapi_qarg, &c);
    return c.ok && subapi_query_values(&c);
}

/* ------------------------------------------------------------------------ */
/* perform                                                                   */

/* The next page's URL as a Link header value (RFC 8288, as Webex sends it):
 * the filters of this request, its page size and the new cursor. NULL when
 * out of memory (the page itself is still right). */
static char *subapi_link(struct sim_req *req, uint64_t cursor)
{
    const struct sub_query *q = req->query;
    struct sbuf sb;
    size_t len;

    sbuf_init(&sb);
    sbuf_puts(&sb, "<");
    http_self_url(req->conn, &sb);
    sbuf_puts(&sb, API_SUB_PATH "?");
    for (int i = 0; i < SQ_MAX; i++) {
        if (q->v[i] == NULL)
            continue;
        sbuf_printf(&sb, "%s=", subapi_qkeys[i]);
        pct_encode(&sb, q->v[i]);
        sbuf_puts(&sb, "&");
    }
    sbuf_printf(&sb, "max=%u&cursor=%llu>; rel=\"next\"", q->max, (unsigned long long)cursor);
    return sbuf_take(&sb, &len);
}

static int subapi_list(struct sim_req *req, struct sbuf *out)
{
    uint64_t next;

    subs_list(req->query, out, &next);
    if (next != 0)
        req->link = subapi_link(req, next);
    return 200;
}

/* The error answer for a status of subs_. */
static void subapi_error(struct sim_req *req, int st, unsigned retry_after)
{
    switch (st) {
    case 400:
        api_set_error(req, 400, 40003,
                      "The user must have either a primary phone number or an extension "
                      "configured.");
        break;
    case 404:
        api_set_error(req, 404, 40402, "Subscriber not found.");
        break;
    case 409:
        api_set_error(req, 409, 10022,
                      "The BroadWorks UserID is already associated with an existing user");
        break;
    case 423:
        api_set_error(req, 423, 42301,
                      "The subscriber is being provisioned or updated; retry after it.");
        req->retry_after = retry_after;
        break;
    case 507:
        api_set_error(req, 507, 50701, "Subscriber limit of the simulator reached.");
        break;
    default:
        break;
    }
}

int subapi_perform(struct sim_req *req, struct sbuf *out, char *new_id, size_t new_idsz)
{
    struct sub_config cfg;
    unsigned ra = 0;
    int st;

    faults_sub_config(&cfg);
    if (req->route == RT_SUB_COLLECTION && strcmp(req->method, "GET") == 0)
        st = subapi_list(req, out);
    else if (req->route == RT_SUB_COLLECTION)
        st = subs_create(&req->sub, &cfg, out, new_id, new_idsz);
    else if (strcmp(req->method, "GET") == 0)
        st = subs_get(req->item_id, out);
    else if (strcmp(req->method, "PUT") == 0)
        st = subs_update(req->item_id, &req->sub, &cfg, out, &ra);
    else
        st = subs_delete(req->item_id);
    subapi_error(req, st, ra);
    return st;
}
