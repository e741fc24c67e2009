/* Unit tests for common/imp.c (`bwprovd state import`): CSV and JSON Lines
 * parsing, the checks of every row, rows of one file that contradict each
 * other, the decision against the map (never overwrite without --force),
 * and that the imported record is one the loader takes and that makes no
 * real event look already applied. */
#include "check.h"
#include "imp.h"
#include "jsonutil.h"
#include "strec.h"

#include <stdlib.h>
#include <string.h>

#define EV "broadworks.provisioning.events"
#define WS1 "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw"
#define WS2 "Y2lzY29zcGFyazovL3VzL1BMQUNFLzAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMQ"
#define PEOPLE "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9kZDIyZWRmZS05ZmVmLTQ3ZjktOTgxZC1mMWIwNzFhZjA3MGM"

static char why[256];

/* Parses s as the next line of p. */
static enum imp_parsed line(struct imp_parser *p, const char *s, struct imp_row **r)
{
    return imp_parse_line(p, s, strlen(s), r, why, sizeof(why));
}

static void test_csv_positional(void)
{
    struct imp_parser p;
    struct imp_row *r = NULL;
    imp_init(&p);
    CHECK_EQ_INT(line(&p, "\xef\xbb\xbf# exported from the old tool", &r), IMP_SKIP);
    CHECK_EQ_INT(line(&p, "   ", &r), IMP_SKIP);
    CHECK_EQ_INT(line(&p, "u1@sp, " WS1 " ,Reseller1+acme,\"Room, \"\"big\"\"\"\r", &r), IMP_ROW);
    CHECK_EQ_INT(p.fmt, IMP_FMT_CSV);
    CHECK_EQ_INT(r->line, 3);
    CHECK_EQ_STR(r->f[IMP_USER], "u1@sp");
    CHECK_EQ_STR(r->f[IMP_WS], WS1);
    CHECK_EQ_STR(r->f[IMP_ENTERPRISE], "Reseller1+acme");
    CHECK_EQ_STR(r->f[IMP_DISPLAY], "Room, \"big\"");
    CHECK_NULL(r->f[IMP_PHONE]);
    CHECK(imp_check(r, why, sizeof(why)));
    free(r);

    CHECK_EQ_INT(line(&p, "u2,,,,,,", &r), IMP_ROW);
    CHECK_NULL(r->f[IMP_WS]);
    CHECK(!imp_check(r, why, sizeof(why)));
    CHECK_EQ_STR(why, "no workspaceId");
    free(r);
    CHECK_EQ_INT(line(&p, "u3," WS1 ",a,b,c,d,e,f", &r), IMP_BAD);
    CHECK_CONTAINS(why, "8 fields");
    CHECK_EQ_INT(line(&p, "u3,\"" WS1, &r), IMP_BAD);
    CHECK_CONTAINS(why, "not closed");
    CHECK_EQ_INT(line(&p, "u3,\"a\"b", &r), IMP_BAD);
    CHECK_CONTAINS(why, "after a closing quote");
    CHECK_EQ_INT(line(&p, "{\"userId\":\"u4\"}", &r), IMP_BAD);
    CHECK_CONTAINS(why, "JSON object in a CSV");
    CHECK_EQ_INT(imp_parse_line(&p, "u5\0x", 4, &r, why, sizeof(why)), IMP_BAD);
    CHECK_CONTAINS(why, "NUL");
    CHECK_NULL(r);
}

static void test_csv_header(void)
{
    struct imp_parser p;
    struct imp_row *r = NULL;
    imp_init(&p);
    CHECK_EQ_INT(line(&p, "workspaceID, Notes ,USERID,extension", &r), IMP_ROW);
    free(r); /* "workspaceID" first: not a header, a row */
    imp_init(&p);
    CHECK_EQ_INT(line(&p, "UserId,notes,workspaceId,extension", &r), IMP_SKIP);
    CHECK(p.header);
    CHECK_EQ_INT(line(&p, "u1,whatever,  " WS1 "  ,51212", &r), IMP_ROW);
    CHECK_EQ_STR(r->f[IMP_USER], "u1");
    CHECK_EQ_STR(r->f[IMP_WS], WS1);
    CHECK_EQ_STR(r->f[IMP_EXTENSION], "51212");
    CHECK_NULL(r->f[IMP_DISPLAY]);
    free(r);
    CHECK_EQ_INT(line(&p, "u1,x," WS1 ",1,extra", &r), IMP_BAD);
    CHECK_CONTAINS(why, "columns of the header");

    imp_init(&p);
    CHECK_EQ_INT(line(&p, "userId,displayName", &r), IMP_BAD);
    CHECK_CONTAINS(why, "no userId or no workspaceId");
    imp_init(&p);
    CHECK_EQ_INT(line(&p, "userId,workspaceId,userid", &r), IMP_BAD);
    CHECK_CONTAINS(why, "twice");
    /* after a refused header no row is read by position */
    CHECK_EQ_INT(line(&p, "u1," WS1 ",x", &r), IMP_BAD);
    CHECK_CONTAINS(why, "header line was refused");
    CHECK_NULL(r);
}

static void test_jsonl(void)
{
    struct imp_parser p;
    struct imp_row *r = NULL;
    imp_init(&p);
    /* a line of `state export` is an import line */
    CHECK_EQ_INT(line(&p,
                      "{\"kind\":\"workspace\",\"workspaceId\":\"" WS1 "\",\"userId\":\"u1\","
                      "\"spEnterpriseId\":\"E\",\"provisioningId\":null,\"displayName\":\"Room\","
                      "\"primaryPhoneNumber\":\"\",\"extension\":null,\"eventId\":\"e1\","
                      "\"source\":{\"topic\":\"" EV "\",\"partition\":3,\"offset\":10},"
                      "\"updatedAt\":\"2026-11-26T10:00:00.412Z\"}  ",
                      &r),
                 IMP_ROW);
    CHECK_EQ_INT(p.fmt, IMP_FMT_JSONL);
    CHECK_EQ_STR(r->f[IMP_USER], "u1");
    CHECK_EQ_STR(r->f[IMP_DISPLAY], "Room");
    CHECK_NULL(r->f[IMP_PHONE]);
    CHECK_NULL(r->f[IMP_PROVISIONING]);
    CHECK(imp_check(r, why, sizeof(why)));
    free(r);
    CHECK_EQ_INT(line(&p, "u2," WS1, &r), IMP_BAD);
    CHECK_CONTAINS(why, "JSON Lines");
    CHECK_EQ_INT(line(&p, "{\"userId\":\"u2\",\"workspaceId\":\"" WS1 "\",\"removed\":true}", &r),
                 IMP_BAD);
    CHECK_CONTAINS(why, "removed marker");
    /* a subscriber's record (of an export) is not imported, nor refused */
    CHECK_EQ_INT(line(&p, "{\"kind\":\"subscriber\",\"userId\":\"u2\"}", &r), IMP_SUBSCRIBER);
    CHECK_NULL(r);
    CHECK_EQ_INT(line(&p, "{\"kind\":\"subscriber\",\"userId\":\"u2\",\"removed\":true}", &r),
                 IMP_BAD);
    CHECK_CONTAINS(why, "removed marker");
    CHECK_EQ_INT(line(&p, "{\"kind\":\"device\",\"userId\":\"u2\"}", &r), IMP_BAD);
    CHECK_CONTAINS(why, "kind");
    /* text beyond ASCII (json-c 0.18's strict mode refused it: jstrict) */
    CHECK_EQ_INT(line(&p,
                      "{\"userId\":\"caf\xc3\xa9@sp\",\"workspaceId\":\"" WS1
                      "\",\"displayName\":\"Salle \xc3\xa9t\xc3\xa9\"}",
                      &r),
                 IMP_ROW);
    CHECK_EQ_STR(r->f[IMP_DISPLAY], "Salle \xc3\xa9t\xc3\xa9");
    free(r);
    r = NULL;
    CHECK_EQ_INT(line(&p, "{\"userId\":42,\"workspaceId\":\"" WS1 "\"}", &r), IMP_BAD);
    CHECK_CONTAINS(why, "userId is not a string");
    CHECK_EQ_INT(line(&p, "{\"userId\":\"u\\u0000x\",\"workspaceId\":\"" WS1 "\"}", &r), IMP_BAD);
    CHECK_CONTAINS(why, "NUL");
    CHECK_EQ_INT(line(&p, "{\"userId\":\"u2\"} {}", &r), IMP_BAD);
    CHECK_EQ_INT(line(&p, "{\"userId\":\"u2\"", &r), IMP_BAD);
    CHECK_EQ_INT(line(&p, "{\"userId\":\"\xff\"}", &r), IMP_BAD);
    CHECK_NULL(r);
}

static void test_line_bound(void)
{
    struct imp_parser p;
    struct imp_row *r = NULL;
    size_t n = IMP_MAX_LINE + 1;
    char *big = malloc(n);
    if (!big)
        exit(2);
    memset(big, 'a', n);
    imp_init(&p);
    CHECK_EQ_INT(imp_parse_line(&p, big, n, &r, why, sizeof(why)), IMP_BAD);
    CHECK_CONTAINS(why, "longer than");
    free(big);
}

static struct imp_row *row(unsigned n, const char *user, const char *ws)
{
    struct imp_parser p;
    struct imp_row *r = NULL;
    char buf[600];
    imp_init(&p);
    snprintf(buf, sizeof(buf), "%s,%s", user, ws);
    if (line(&p, buf, &r) != IMP_ROW)
        exit(2);
    r->line = n;
    return r;
}

static void test_check(void)
{
    struct imp_row *r = row(1, "u1", PEOPLE);
    CHECK(!imp_check(r, why, sizeof(why)));
    CHECK_CONTAINS(why, "not PLACE");
    free(r);
    r = row(1, "u1", "..");
    CHECK(!imp_check(r, why, sizeof(why)));
    CHECK_CONTAINS(why, "dot segment");
    free(r);
    r = row(1, "u\x01", WS1);
    CHECK(!imp_check(r, why, sizeof(why)));
    CHECK_CONTAINS(why, "userId contains a control character");
    free(r);
    r = row(1, "u\xc3", WS1);
    CHECK(!imp_check(r, why, sizeof(why)));
    CHECK_CONTAINS(why, "UTF-8");
    free(r);
    char longuser[300];
    memset(longuser, 'u', sizeof(longuser) - 1);
    longuser[sizeof(longuser) - 1] = '\0';
    r = row(1, longuser, WS1);
    CHECK(!imp_check(r, why, sizeof(why)));
    CHECK_CONTAINS(why, "userId is too long");
    free(r);
}

static void test_conflicts(void)
{
    struct imp_row *rows[] = {
        row(1, "u1", WS1), row(2, "u1", WS1), /* the same line twice: fine */
        row(3, "u2", WS2), row(4, "u2", WS1), /* u2 twice, WS1 for u1 and u2 */
        row(5, "u3", "x"), row(6, "u4", "y"), row(7, "u2", WS2),
    };
    size_t n = sizeof(rows) / sizeof(rows[0]);
    CHECK_EQ_INT(imp_mark_conflicts(rows, n), 0);
    CHECK(rows[0]->conflict); /* WS1 is u2's on line 4 too */
    CHECK_CONTAINS(rows[0]->why, "workspaceId for another userId on line 4");
    CHECK(rows[1]->dup_of == rows[0] && rows[1]->conflict);
    CHECK(rows[2]->conflict);
    CHECK_CONTAINS(rows[2]->why, "line 4");
    CHECK(rows[3]->conflict);
    CHECK(!rows[4]->conflict && !rows[5]->conflict);
    CHECK_WHY(rows[6]->conflict, "a repeat of a contradicted line is refused too");
    for (size_t i = 0; i < n; i++)
        free(rows[i]);
    /* WS1 for u1 (line 1) and u9 (line 2): both refused, and line 1's repeat */
    struct imp_row *two[] = {row(1, "u1", WS1), row(2, "u9", WS1), row(3, "u1", WS1)};
    CHECK_EQ_INT(imp_mark_conflicts(two, 3), 0);
    CHECK(two[0]->conflict && two[1]->conflict && two[2]->conflict);
    CHECK_CONTAINS(two[0]->why, "workspaceId for another userId on line 2");
    CHECK_CONTAINS(two[2]->why, "repeats the contradicted line 1");
    for (size_t i = 0; i < 3; i++)
        free(two[i]);
    /* only identical repeats: nothing is refused */
    struct imp_row *same[] = {row(1, "u1", WS1), row(2, "u1", WS1), row(3, "u2", WS2)};
    CHECK_EQ_INT(imp_mark_conflicts(same, 3), 0);
    CHECK(!same[0]->conflict && !same[1]->conflict && !same[2]->conflict);
    CHECK(same[1]->dup_of == same[0] && !same[2]->dup_of);
    for (size_t i = 0; i < 3; i++)
        free(same[i]);
    CHECK_EQ_INT(imp_mark_conflicts(NULL, 0), 0);
}

static void test_decide(void)
{
    struct imp_row *r = row(1, "u1", WS1);
    struct imp_existing none = {ST_ABSENT, NULL, NULL, false};
    struct imp_existing same = {ST_PRESENT, WS1, "u1", false};
    struct imp_existing other = {ST_PRESENT, WS2, NULL, false};
    struct imp_existing removed = {ST_REMOVED, NULL, NULL, false};
    struct imp_existing taken = {ST_ABSENT, NULL, "u7", false};
    struct imp_existing sub = {ST_PRESENT, "SUB", NULL, true};

    CHECK_EQ_INT(imp_decide(r, &none, false, why, sizeof(why)), IMP_NEW);
    CHECK_EQ_INT(imp_decide(r, &same, false, why, sizeof(why)), IMP_UNCHANGED);
    CHECK_EQ_INT(imp_decide(r, &same, true, why, sizeof(why)), IMP_UNCHANGED);
    CHECK_EQ_INT(imp_decide(r, &other, false, why, sizeof(why)), IMP_REFUSE);
    CHECK_CONTAINS(why, "--force");
    CHECK_CONTAINS(why, WS2);
    CHECK_EQ_INT(imp_decide(r, &other, true, why, sizeof(why)), IMP_REPLACE);
    CHECK_EQ_INT(imp_decide(r, &removed, false, why, sizeof(why)), IMP_REFUSE);
    CHECK_CONTAINS(why, "removed marker");
    CHECK_EQ_INT(imp_decide(r, &removed, true, why, sizeof(why)), IMP_REPLACE);
    CHECK_WHY(imp_decide(r, &taken, true, why, sizeof(why)) == IMP_REFUSE,
              "--force never gives one workspace to two users");
    CHECK_CONTAINS(why, "u7");
    CHECK_WHY(imp_decide(r, &sub, true, why, sizeof(why)) == IMP_REFUSE,
              "--force never turns a subscriber's userId into a workspace's");
    CHECK_CONTAINS(why, "subscriber");
    free(r);
}

/* The record goes through the loader's own rules (strec) and makes no
 * event look applied; a replacement keeps the entry's source. */
static void test_record(void)
{
    struct imp_row *r = row(9, "u1", WS1);
    struct st_src src, entry = {EV, 2, 40};
    size_t len = 0;
    char ws[128];

    imp_source(NULL, &src);
    CHECK_EQ_STR(src.topic, IMP_SOURCE_TOPIC);
    CHECK_EQ_INT(src.partition, -1);
    char *v = imp_record_json(r, &src, 1795651200000LL, "ws.csv:9", &len);
    CHECK_NOT_NULL(v);
    json_object *o = ju_parse(v, len), *x;
    CHECK(ju_get(o, "importedFrom", &x) && strcmp(json_object_get_string(x), "ws.csv:9") == 0);
    CHECK(ju_get(o, "updatedAt", &x) &&
          strcmp(json_object_get_string(x), "2026-11-26T00:00:00.000Z") == 0);
    CHECK(ju_get(o, "eventId", &x) && x == NULL);
    json_object_put(o);

    struct st_table *t = st_new();
    if (!t)
        exit(2);
    CHECK_EQ_INT(sr_apply(t, "u1", v, len, NULL, NULL), SR_APPLIED);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, WS1);
    for (int32_t p = -1; p < 8; p++) {
        struct st_src ev = {EV, p, 0};
        CHECK_WHY(!st_applied(t, "u1", &ev), "an imported user's events are never 'replayed'");
        ev.offset = -1;
        CHECK(!st_applied(t, "u1", &ev));
    }
    /* a daemon's record after it applies; the import never undoes one */
    struct st_src real = {EV, 2, 5};
    CHECK_EQ_INT(st_put(t, "u1", WS2, &real), 0);
    free(v);

    imp_source(&entry, &src);
    CHECK_EQ_STR(src.topic, EV);
    CHECK_EQ_INT(src.offset, 40);
    v = imp_record_json(r, &src, 0, "ws.csv:9", &len);
    CHECK_EQ_INT(sr_apply(t, "u1", v, len, NULL, NULL), SR_APPLIED);
    struct st_src newer = {EV, 2, 41};
    CHECK_EQ_INT(st_put(t, "u1", WS2, &newer), 0);
    CHECK_WHY(sr_apply(t, "u1", v, len, NULL, NULL) == SR_OLDER,
              "a forced import landing after a newer daemon record is older");
    free(v);
    st_free(t);
    free(r);
}

int main(void)
{
    test_csv_positional();
    test_csv_header();
    test_jsonl();
    test_line_bound();
    test_check();
    test_conflicts();
    test_decide();
    test_record();
    return check_done();
}
