/* check.h: a tiny assertion kit for bwprovd's unit tests (no framework).
 *
 * Every CHECK* macro counts one check; a failing one prints file:line, the
 * expression and the values, and counts a failure. main() ends with
 * `return check_done();`, which prints a summary and returns the exit
 * status (1 if anything failed).
 *
 * CHECK_WHY(cond, "text") is a CHECK that also names the defect it guards
 * against (these caught real bugs in common/ once). */
#ifndef BWPROVD_TEST_CHECK_H
#define BWPROVD_TEST_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned long check_n_total;
static unsigned long check_n_failed;

/* Prints s (or "NULL") quoted, with control and non-ASCII bytes escaped,
 * at most 200 bytes. */
static inline void check_print_str_(const char *s)
{
    if (!s) {
        fputs("NULL", stderr);
        return;
    }
    fputc('"', stderr);
    size_t i = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, i++) {
        if (i == 200) {
            fputs("...", stderr);
            break;
        }
        if (*p == '"' || *p == '\\')
            fprintf(stderr, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputc('"', stderr);
}

static inline bool check_true_(bool ok, const char *expr, const char *file, int line)
{
    check_n_total++;
    if (!ok) {
        check_n_failed++;
        fprintf(stderr, "%s:%d: FAIL: %s\n", file, line, expr);
    }
    return ok;
}

static inline bool check_why_(bool ok, const char *expr, const char *what, const char *file,
                              int line)
{
    check_n_total++;
    if (!ok) {
        check_n_failed++;
        fprintf(stderr, "%s:%d: FAIL (%s): %s\n", file, line, what, expr);
    }
    return ok;
}

static inline bool check_int_(intmax_t a, intmax_t b, const char *ea, const char *eb,
                              const char *file, int line)
{
    check_n_total++;
    if (a != b) {
        check_n_failed++;
        fprintf(stderr, "%s:%d: FAIL: %s == %s: %jd != %jd\n", file, line, ea, eb, a, b);
        return false;
    }
    return true;
}

static inline bool check_str_(const char *a, const char *b, const char *ea, const char *eb,
                              const char *file, int line)
{
    bool ok = (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
    check_n_total++;
    if (!ok) {
        check_n_failed++;
        fprintf(stderr, "%s:%d: FAIL: %s == %s: ", file, line, ea, eb);
        check_print_str_(a);
        fputs(" != ", stderr);
        check_print_str_(b);
        fputc('\n', stderr);
    }
    return ok;
}

static inline bool check_contains_(const char *hay, const char *needle, const char *eh,
                                   const char *file, int line)
{
    bool ok = hay && needle && strstr(hay, needle) != NULL;
    check_n_total++;
    if (!ok) {
        check_n_failed++;
        fprintf(stderr, "%s:%d: FAIL: %s contains ", file, line, eh);
        check_print_str_(needle);
        fputs(": it is ", stderr);
        check_print_str_(hay);
        fputc('\n', stderr);
    }
    return ok;
}

#define CHECK(cond) check_true_((cond) ? true : false, #cond, __FILE__, __LINE__)
#define CHECK_EQ_INT(a, b) check_int_((intmax_t)(a), (intmax_t)(b), #a, #b, __FILE__, __LINE__)
#define CHECK_EQ_STR(a, b) check_str_((a), (b), #a, #b, __FILE__, __LINE__)
#define CHECK_CONTAINS(hay, needle) check_contains_((hay), (needle), #hay, __FILE__, __LINE__)
#define CHECK_NULL(p) check_true_((p) == NULL, #p " is NULL", __FILE__, __LINE__)
#define CHECK_NOT_NULL(p) check_true_((p) != NULL, #p " is not NULL", __FILE__, __LINE__)
#define CHECK_WHY(cond, what) check_why_((cond) ? true : false, #cond, (what), __FILE__, __LINE__)

/* Prints the summary; returns the process exit status. */
static inline int check_done(void)
{
    fprintf(stderr, "%lu checks, %lu failed", check_n_total, check_n_failed);
    fputc('\n', stderr);
    return check_n_failed ? 1 : 0;
}

#endif
