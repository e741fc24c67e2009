/* Unit tests for common/classify.c: every row of the SPEC §1 status table,
 * full-jitter backoff bounds, and Retry-After parsing. */
#include "check.h"
#include "classify.h"

#include <stdlib.h>

#define NOW 1795687200 /* Thu, 26 Nov 2026 10:00:00 GMT */

struct row {
    enum ev_type type;
    long status;
    int attempts, max_attempts;
    bool auth_retried, have_state;
    enum cls_action action;
    enum cls_kind kind;
    const char *note;
};

static const char *type_s(enum ev_type t)
{
    return t == EV_PROVISION ? "provision" : t == EV_UPDATE ? "update" : "remove";
}

static void check_row(const struct row *r)
{
    struct cls_input in = {r->type,         r->status,       r->attempts,
                           r->max_attempts, r->auth_retried, r->have_state};
    struct cls_verdict v = cls_classify(&in);
    bool ok = CHECK_EQ_INT(v.action, r->action);
    ok = CHECK_EQ_INT(v.kind, r->kind) && ok;
    ok = CHECK_EQ_STR(v.note, r->note) && ok;
    if (!ok)
        fprintf(stderr, "  %s status %ld attempts %d/%d auth_retried %d have_state %d\n",
                type_s(r->type), r->status, r->attempts, r->max_attempts, r->auth_retried,
                r->have_state);
}

static void test_table(void)
{
    static const enum ev_type types[] = {EV_PROVISION, EV_UPDATE, EV_REMOVE};

    for (size_t t = 0; t < 3; t++) {
        enum ev_type ty = types[t];
        /* 200 201 202 204: done, whatever the attempt. */
        static const long ok[] = {200, 201, 202, 204};
        for (size_t i = 0; i < 4; i++) {
            check_row(
                &(struct row){ty, ok[i], 1, 10, false, false, CLS_SUCCEEDED, KIND_NONE, NULL});
            check_row(&(struct row){ty, ok[i], 10, 10, true, true, CLS_SUCCEEDED, KIND_NONE, NULL});
        }
        /* 401: re-auth once, then failed/auth. */
        check_row(&(struct row){ty, 401, 1, 10, false, false, CLS_REAUTH, KIND_NONE, NULL});
        check_row(&(struct row){ty, 401, 2, 10, true, false, CLS_FAILED, KIND_AUTH, NULL});
        check_row(&(struct row){ty, 401, 10, 10, false, false, CLS_REAUTH, KIND_NONE, NULL});
        /* 429, 423: wait; never counts against max_attempts. */
        static const long wait[] = {429, 423};
        for (size_t i = 0; i < 2; i++) {
            check_row(&(struct row){ty, wait[i], 1, 10, false, false, CLS_WAIT, KIND_NONE, NULL});
            check_row(&(struct row){ty, wait[i], 10, 10, false, false, CLS_WAIT, KIND_NONE, NULL});
            check_row(&(struct row){ty, wait[i], 50, 10, true, true, CLS_WAIT, KIND_NONE, NULL});
        }
        /* 500 502 503 504 and no response: retry below max_attempts, then
         * failed/exhausted. */
        static const long transient[] = {500, 502, 503, 504, 0};
        for (size_t i = 0; i < 5; i++) {
            long s = transient[i];
            check_row(&(struct row){ty, s, 1, 10, false, false, CLS_RETRY, KIND_NONE, NULL});
            check_row(&(struct row){ty, s, 9, 10, false, false, CLS_RETRY, KIND_NONE, NULL});
            check_row(&(struct row){ty, s, 10, 10, false, false, CLS_FAILED, KIND_EXHAUSTED, NULL});
            check_row(&(struct row){ty, s, 11, 10, false, false, CLS_FAILED, KIND_EXHAUSTED, NULL});
            check_row(&(struct row){ty, s, 1, 1, false, false, CLS_FAILED, KIND_EXHAUSTED, NULL});
            check_row(&(struct row){ty, s, 1, 2, false, true, CLS_RETRY, KIND_NONE, NULL});
        }
        /* Other 4xx: permanent, no retry, even on the first attempt. */
        static const long perm[] = {400, 403, 405, 410, 415, 428};
        for (size_t i = 0; i < 6; i++) {
            check_row(
                &(struct row){ty, perm[i], 1, 10, false, false, CLS_FAILED, KIND_PERMANENT, NULL});
            check_row(
                &(struct row){ty, perm[i], 1, 10, false, true, CLS_FAILED, KIND_PERMANENT, NULL});
        }
    }

    /* 404: already gone on remove; permanent otherwise. */
    check_row(&(struct row){EV_REMOVE, 404, 1, 10, false, false, CLS_SUCCEEDED, KIND_NONE,
                            "already_removed"});
    check_row(&(struct row){EV_REMOVE, 404, 3, 10, false, true, CLS_SUCCEEDED, KIND_NONE,
                            "already_removed"});
    check_row(&(struct row){EV_UPDATE, 404, 1, 10, false, true, CLS_FAILED, KIND_PERMANENT, NULL});
    check_row(
        &(struct row){EV_PROVISION, 404, 1, 10, false, false, CLS_FAILED, KIND_PERMANENT, NULL});

    /* 409: on provision, succeeded when the state table knows the user,
     * else conflict; permanent for the other types. */
    check_row(&(struct row){EV_PROVISION, 409, 1, 10, false, true, CLS_SUCCEEDED, KIND_NONE,
                            "already_provisioned"});
    check_row(
        &(struct row){EV_PROVISION, 409, 1, 10, false, false, CLS_FAILED, KIND_CONFLICT, NULL});
    check_row(&(struct row){EV_UPDATE, 409, 1, 10, false, true, CLS_FAILED, KIND_PERMANENT, NULL});
    check_row(&(struct row){EV_REMOVE, 409, 1, 10, false, true, CLS_FAILED, KIND_PERMANENT, NULL});
}

static void test_kind_names(void)
{
    CHECK_EQ_STR(cls_kind_name(KIND_PERMANENT), "permanent");
    CHECK_EQ_STR(cls_kind_name(KIND_EXHAUSTED), "exhausted");
    CHECK_EQ_STR(cls_kind_name(KIND_AUTH), "auth");
    CHECK_EQ_STR(cls_kind_name(KIND_CONFLICT), "conflict");
    CHECK_EQ_STR(cls_kind_name(KIND_UNKNOWN_WORKSPACE), "unknown_workspace");
    CHECK_EQ_STR(cls_kind_name(KIND_INVALID), "invalid");
    CHECK_EQ_STR(cls_kind_name(KIND_PROVISIONING), "provisioning");
    CHECK_EQ_STR(cls_kind_name(KIND_TIMEOUT), "timeout");
    CHECK_NULL(cls_kind_name(KIND_NONE));
    CHECK_NULL(cls_kind_name((enum cls_kind)KIND_COUNT));
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* min(max, initial * 2^(attempt-1)) without overflow. */
static int64_t ref_cap(int attempt, long initial, long max)
{
    int64_t cap = initial;
    for (int i = 1; i < attempt && cap < max; i++)
        cap *= 2;
    return cap < max ? cap : max;
}

static void test_backoff(void)
{
    static const long initials[] = {1, 100, 500, 1000, 60000};
    static const long maxes[] = {1, 500, 60000, 3600000};
    uint64_t seed = 42;
    int bad = 0;

    /* Random draws stay in [0, cap]. */
    for (size_t a = 0; a < sizeof(initials) / sizeof(initials[0]); a++) {
        for (size_t b = 0; b < sizeof(maxes) / sizeof(maxes[0]); b++) {
            long ini = initials[a], mx = maxes[b];
            if (ini > mx) /* the config refuses it */
                continue;
            for (int attempt = 1; attempt <= 64; attempt++) {
                int64_t cap = ref_cap(attempt, ini, mx);
                for (int k = 0; k < 200; k++) {
                    int64_t v = cls_backoff_ms(attempt, ini, mx, splitmix(&seed));
                    if (v < 0 || v > cap) {
                        if (bad++ < 5)
                            fprintf(stderr,
                                    "  attempt %d initial %ld max %ld: %" PRId64
                                    " outside [0, %" PRId64 "]\n",
                                    attempt, ini, mx, v, cap);
                    }
                }
                /* The bounds are reachable: rnd picks the value. */
                if (cls_backoff_ms(attempt, ini, mx, (uint64_t)cap) != cap ||
                    cls_backoff_ms(attempt, ini, mx, 0) != 0) {
                    if (bad++ < 5)
                        fprintf(stderr, "  attempt %d initial %ld max %ld: bounds not reached\n",
                                attempt, ini, mx);
                }
            }
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* The cap doubles from initial to max: 500, 1000, 2000, ... 60000. */
    static const int64_t caps[] = {500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    /* rnd = cap gives cap and rnd = cap + 1 wraps to 0: the range is
     * exactly [0, cap]. */
    for (int attempt = 1; attempt <= 9; attempt++) {
        uint64_t cap = (uint64_t)caps[attempt - 1];
        CHECK_EQ_INT(cls_backoff_ms(attempt, 500, 60000, cap), caps[attempt - 1]);
        CHECK_EQ_INT(cls_backoff_ms(attempt, 500, 60000, cap + 1), 0);
    }
    CHECK_EQ_INT(cls_backoff_ms(1000000, 500, 60000, 60000), 60000);
    CHECK_EQ_INT(cls_backoff_ms(1000000, 500, 60000, UINT64_MAX) <= 60000, 1);

    /* Full jitter: the draws spread over the whole range (mean ~ cap/2). */
    double sum = 0;
    int64_t lo = INT64_MAX, hi = 0;
    for (int k = 0; k < 20000; k++) {
        int64_t v = cls_backoff_ms(8, 500, 60000, splitmix(&seed));
        sum += (double)v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double mean = sum / 20000;
    CHECK(mean > 28500 && mean < 31500);
    CHECK(lo < 600);
    CHECK(hi > 59400);

    /* Degenerate inputs never go negative. */
    CHECK_EQ_INT(cls_backoff_ms(1, 0, 0, 12345), 0);
    CHECK(cls_backoff_ms(0, 500, 60000, UINT64_MAX) <= 500);
    CHECK(cls_backoff_ms(-3, 500, 60000, UINT64_MAX) <= 500);
}

static void test_retry_after(void)
{
    static const struct {
        const char *v;
        int rc;
        int64_t s;
    } cases[] = {
        {"120", 0, 120},
        {" 5 ", 0, 5},
        {"\t7\r\n", 0, 7},
        {"0", 0, 0},
        {"3600", 0, 3600},
        {"3601", 0, 3600},
        {"99999", 0, 3600},
        {"99999999999999999999999999", 0, 3600},
        {"Thu, 26 Nov 2026 10:02:00 GMT", 0, 120},
        {"Thu, 26 Nov 2026 10:00:01 GMT", 0, 1},
        {"Thu, 26 Nov 2026 10:00:00 GMT", 0, 0},
        {"Thu, 26 Nov 2026 09:00:00 GMT", 0, 0},    /* in the past: no wait */
        {"Sun, 06 Nov 1994 08:49:37 GMT", 0, 0},    /* RFC 9110's example */
        {"Fri, 27 Nov 2026 10:00:00 GMT", 0, 3600}, /* clamped */
        {"Thu, 26 Nov 2026 10:59:59 GMT", 0, 3599},
        {"", -1, 0},
        {"   ", -1, 0},
        {"soon", -1, 0},
        {"-5", -1, 0},
        {"5s", -1, 0},
        {"1.5", -1, 0},
        {"12 34", -1, 0},
        {"0x10", -1, 0},
        {"2026-11-26T10:02:00Z", -1, 0},
        {"Thu, 26 Nov 2026 10:02:00 UTC", -1, 0},
        {"Thu, 26 Nov 2026 10:02:00 GMT trailing", -1, 0},
        {"Thu, 26 Nov 2026", -1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t s = -77;
        int rc = cls_retry_after(cases[i].v, NOW, &s);
        bool ok = CHECK_EQ_INT(rc, cases[i].rc);
        if (cases[i].rc == 0)
            ok = CHECK_EQ_INT(s, cases[i].s) && ok;
        if (!ok)
            fprintf(stderr, "  Retry-After: \"%s\"\n", cases[i].v);
    }
    int64_t s = -77;
    CHECK_EQ_INT(cls_retry_after(NULL, NOW, &s), -1);
}

int main(void)
{
    test_table();
    test_kind_names();
    test_backoff();
    test_retry_after();
    return check_done();
}
