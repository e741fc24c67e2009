/* Unit tests for common/progress.c: the progress line of long operator
 * commands: counts, percentages, rate, time left, unknown totals, bounds. */
#include "check.h"
#include "progress.h"

#include <string.h>

static void test_count(void)
{
    char b[32];
    prog_count(b, sizeof(b), 0);
    CHECK_EQ_STR(b, "0");
    prog_count(b, sizeof(b), 999);
    CHECK_EQ_STR(b, "999");
    prog_count(b, sizeof(b), 1000);
    CHECK_EQ_STR(b, "1,000");
    prog_count(b, sizeof(b), 1234567);
    CHECK_EQ_STR(b, "1,234,567");
    prog_count(b, sizeof(b), UINT64_MAX);
    CHECK_EQ_STR(b, "18,446,744,073,709,551,615");
    prog_count(b, 4, 1234567); /* truncated, still terminated */
    CHECK_EQ_INT(strlen(b), 3);
}

static void test_duration(void)
{
    char b[32];
    prog_duration(b, sizeof(b), 0);
    CHECK_EQ_STR(b, "0:00");
    prog_duration(b, sizeof(b), 11.4);
    CHECK_EQ_STR(b, "0:11");
    prog_duration(b, sizeof(b), 3599.6);
    CHECK_EQ_STR(b, "1:00:00");
    prog_duration(b, sizeof(b), 3725);
    CHECK_EQ_STR(b, "1:02:05");
    prog_duration(b, sizeof(b), -5);
    CHECK_EQ_STR(b, "0:00");
}

static void test_format(void)
{
    char b[200];
    prog_format(b, sizeof(b), "importing", 12345, 100000, 1.5);
    CHECK_EQ_STR(b, "importing: 12,345 of 100,000 (12%), 8,230/s, 0:11 left");
    prog_format(b, sizeof(b), "importing", 100000, 100000, 10);
    CHECK_EQ_STR(b, "importing: 100,000 of 100,000 (100%), 10,000/s");
    prog_format(b, sizeof(b), "reading", 500, 0, 2);
    CHECK_EQ_STR(b, "reading: 500, 250/s");
    /* too early for a rate, or nothing done yet */
    prog_format(b, sizeof(b), "reading", 5, 10, 0.01);
    CHECK_EQ_STR(b, "reading: 5 of 10 (50%)");
    prog_format(b, sizeof(b), "reading", 0, 10, 5);
    CHECK_EQ_STR(b, "reading: 0 of 10 (0%)");
    /* a phase over in no time still says its rate */
    prog_format(b, sizeof(b), "reading", 3000, 3000, 0.05);
    CHECK_EQ_STR(b, "reading: 3,000 of 3,000 (100%), 60,000/s");
    prog_format(b, sizeof(b), "reading", 3000, 3000, 0);
    CHECK_EQ_STR(b, "reading: 3,000 of 3,000 (100%)");
    /* done beyond total (compaction gaps, late records) counts as total */
    prog_format(b, sizeof(b), "x", 12, 10, 1);
    CHECK_EQ_STR(b, "x: 10 of 10 (100%), 10/s");
    CHECK_EQ_INT(prog_format(b, 10, "a long phase name", 123456, 1000000, 3), 9);
    CHECK_EQ_INT(strlen(b), 9);
    CHECK_EQ_INT(prog_format(b, 0, "x", 1, 1, 1), 0);
}

int main(void)
{
    test_count();
    test_duration();
    test_format();
    return check_done();
}
