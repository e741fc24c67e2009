/* fuzz_import: `bwprovd state import`'s file (common/imp.c) on arbitrary
 * bytes: the input is split at '\n' into lines, each passed to
 * imp_parse_line() as a slice of libFuzzer's buffer (not NUL-terminated:
 * ASan catches any read past a line). Invariants:
 *  - IMP_BAD says why and makes no row; IMP_SKIP makes no row;
 *  - IMP_ROW: every field is NULL or non-empty text without NUL, within the
 *    line's bytes, and the row knows its line number;
 *  - imp_check() accepts only a userId of 1..256 bytes of strict UTF-8
 *    without control characters and a workspace id that both wsid checks
 *    accept; when it refuses, it says why;
 *  - imp_mark_conflicts(): a conflict says why; dup_of is an earlier row
 *    with the same userId and workspace id;
 *  - the record of every accepted row is one the loader's rules take
 *    (sr_apply: SR_APPLIED), giving the row's id, and it makes no event of
 *    the user look applied (st_applied false on any partition);
 *  - LeakSanitizer: every row is freed. */
#include "fuzz.h"
#include "imp.h"
#include "strec.h"
#include "wsid.h"

#define MAX_ROWS 256
#define EV "broadworks.provisioning.events"

static void check_row(const struct imp_row *r, unsigned line, size_t len)
{
    FUZZ_CHECK(r->line == line, "row line %u, parser line %u", r->line, line);
    for (int c = 0; c < IMP_NCOLS; c++) {
        size_t n = r->f[c] ? strlen(r->f[c]) : 0;
        FUZZ_CHECK(!r->f[c] || (n > 0 && n <= len), "field %d of %zu bytes in a %zu-byte line", c,
                   n, len);
    }
}

static void check_accepted(const struct imp_row *r)
{
    const char *u = r->f[IMP_USER], *w = r->f[IMP_WS];
    FUZZ_CHECK(u && w, "accepted without userId or workspaceId");
    size_t n = strlen(u);
    FUZZ_CHECK(n >= 1 && n <= 256 && fuzz_utf8_valid((const unsigned char *)u, n),
               "accepted userId of %zu bytes or not UTF-8", n);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)u[i] >= 0x20 && u[i] != 0x7f, "control character in userId");
    FUZZ_CHECK(!wsid_check(w, strlen(w)) && !wsid_check_place(w, strlen(w)),
               "accepted workspace id %s", w);
}

/* The record goes through the loader's rules and asserts no event. */
static void check_record(const struct imp_row *r)
{
    struct st_src src;
    size_t len = 0;
    char ws[300];
    imp_source(NULL, &src);
    char *v = imp_record_json(r, &src, 0, "fuzz:1", &len);
    struct st_table *t = st_new();
    if (v && t) {
        FUZZ_CHECK(sr_apply(t, r->f[IMP_USER], v, len, NULL, NULL) == SR_APPLIED,
                   "the loader refuses an imported record: %s", v);
        FUZZ_CHECK(st_get(t, r->f[IMP_USER], ws, sizeof(ws)) == ST_PRESENT &&
                       strcmp(ws, r->f[IMP_WS]) == 0,
                   "the imported record gives another id");
        for (int32_t p = 0; p < 4; p++) {
            struct st_src ev = {EV, p, 0};
            FUZZ_CHECK(!st_applied(t, r->f[IMP_USER], &ev), "an import makes an event applied");
        }
    }
    st_free(t);
    free(v);
}

static void check_conflicts(struct imp_row **rows, size_t n)
{
    if (imp_mark_conflicts(rows, n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct imp_row *r = rows[i], *d = r->dup_of;
        FUZZ_CHECK(!r->conflict || r->why[0], "a conflict without a reason");
        FUZZ_CHECK(!d || (d->line < r->line && strcmp(d->f[IMP_USER], r->f[IMP_USER]) == 0 &&
                          strcmp(d->f[IMP_WS], r->f[IMP_WS]) == 0),
                   "dup_of is not an earlier equal row");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imp_parser p;
    struct imp_row *rows[MAX_ROWS];
    size_t n = 0;
    const char *s = (const char *)data, *end = s + size;
    imp_init(&p);
    while (s < end && n < MAX_ROWS) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
        struct imp_row *r = NULL;
        char why[256];
        enum imp_parsed k = imp_parse_line(&p, s, len, &r, why, sizeof(why));
        FUZZ_CHECK(k == IMP_ROW ? r != NULL : r == NULL, "row %p for result %d", (void *)r, k);
        FUZZ_CHECK(k != IMP_BAD || why[0], "IMP_BAD without a reason");
        if (r) {
            check_row(r, p.line, len);
            why[0] = '\0';
            if (imp_check(r, why, sizeof(why))) {
                check_accepted(r);
                check_record(r);
                rows[n++] = r;
            } else {
                FUZZ_CHECK(why[0], "imp_check refuses without a reason");
                free(r);
            }
        }
        s += len + 1;
    }
    check_conflicts(rows, n);
    for (size_t i = 0; i < n; i++)
        free(rows[i]);
    return 0;
}
