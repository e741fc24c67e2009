/* Unit tests for common/health.c: each STATUS reason and its threshold,
 * the lag field without partitions, durations and dates, truncation, and
 * the daily schedule of the refresh token warning. */
#include "check.h"
#include "health.h"

#include <string.h>

#define DAY_MS (86400LL * 1000)
/* 2026-11-26 10:00:05 UTC */
#define NOW_MS 1795687205000LL

static struct hl_view healthy(void)
{
    return (struct hl_view){
        .now_ms = NOW_MS,
        .group = "bwprovd",
        .topic = "broadworks.provisioning.events",
        .assignment = true,
        .partitions = 4,
    };
}

static void reasons(const struct hl_view *v, char *buf, size_t cap)
{
    buf[0] = '\0';
    hl_reasons(v, buf, 0, cap);
}

static void test_healthy(void)
{
    struct hl_view v = healthy();
    char s[512], lag[16];
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "");
    hl_lag(&v, 120, lag, sizeof(lag));
    CHECK_EQ_STR(lag, "120");
    v.partitions = 0;
    hl_lag(&v, 0, lag, sizeof(lag));
    CHECK_WHY(strcmp(lag, "-") == 0, "lag 0 shown with nothing assigned");
}

static void test_group(void)
{
    struct hl_view v = healthy();
    char s[512];
    v.assignment = false;
    v.partitions = 0;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "; waiting for a partition assignment from group bwprovd");
    v.assignment = true;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "; no partitions assigned: group bwprovd gave every partition of "
                    "broadworks.provisioning.events to other members");
    v.stopping = true; /* the stop revokes everything: not news */
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "");
}

static void test_load(void)
{
    struct hl_view v = healthy();
    char s[512];
    v.load_done = 450000;
    v.load_total = 1000000;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "; loading the state table: 45% (450000 of 1000000 records)");
    v.load_done = v.load_total;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "");
    v.load_done = -1; /* nothing read yet */
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "; loading the state table: 0% (0 of 1000000 records)");
}

static void test_oldest(void)
{
    struct hl_view v = healthy();
    char s[512];
    v.oldest_age_ms = HL_OLDEST_AFTER_MS - 1;
    v.oldest_partition = 3;
    v.oldest_offset = 1842;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "");
    v.oldest_age_ms = 42500;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "; oldest event unfinished for 42s (partition 3 offset 1842)");
}

static void test_auth(void)
{
    struct hl_view v = healthy();
    char s[512];
    v.auth_since_ms = NOW_MS - 180000;
    v.auth_why = "Webex refused the renewed access token (401)";
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "; cannot authenticate to Webex since 2026-11-26 09:57:05 UTC (3 min): "
                    "Webex refused the renewed access token (401)");
}

static void test_refresh(void)
{
    struct hl_view v = healthy();
    char s[512];
    v.refresh_expires_ms = NOW_MS + 15 * DAY_MS;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "");
    v.refresh_expires_ms = NOW_MS + 9 * DAY_MS + 3600000;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "; Webex refresh token expires in 9 days (2026-12-05 11:00:05 UTC)");
    v.refresh_expires_ms = NOW_MS - 1000;
    reasons(&v, s, sizeof(s));
    CHECK_EQ_STR(s, "; Webex refresh token expired at 2026-11-26 10:00:04 UTC");
}

/* All of them at once, in a buffer too small: cut, still a string. */
static void test_all_and_truncation(void)
{
    struct hl_view v = healthy();
    char s[1024], small[40];
    v.assignment = false;
    v.partitions = 0;
    v.load_done = 1;
    v.load_total = 4;
    v.oldest_age_ms = 3 * 3600 * 1000LL;
    v.auth_since_ms = NOW_MS - 1000;
    v.refresh_expires_ms = NOW_MS + DAY_MS;
    reasons(&v, s, sizeof(s));
    CHECK_CONTAINS(s, "; waiting for a partition assignment");
    CHECK_CONTAINS(s, "; loading the state table: 25% (1 of 4 records)");
    CHECK_CONTAINS(s, "; oldest event unfinished for 3 h");
    CHECK_CONTAINS(s, "(1s): token refused");
    CHECK_CONTAINS(s, "; Webex refresh token expires in 24 h");
    memset(small, 'x', sizeof(small));
    size_t n = hl_reasons(&v, small, 5, sizeof(small));
    CHECK_EQ_INT(n, sizeof(small) - 1);
    CHECK_EQ_INT(strlen(small + 5), sizeof(small) - 6);
    /* a full buffer stays as it is */
    CHECK_EQ_INT(hl_reasons(&v, small, sizeof(small) - 1, sizeof(small)), sizeof(small) - 1);
}

static void test_duration(void)
{
    static const struct {
        long long ms;
        const char *text;
    } cases[] = {
        {-5, "0s"},
        {999, "0s"},
        {119999, "119s"},
        {120000, "2 min"},
        {7199999, "119 min"},
        {7200000, "2 h"},
        {2 * DAY_MS - 1, "47 h"},
        {2 * DAY_MS, "2 days"},
        {14 * DAY_MS, "14 days"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hl_duration(cases[i].ms, buf, sizeof(buf));
        CHECK_EQ_STR(buf, cases[i].text);
    }
    hl_utc(0, buf, sizeof(buf));
    CHECK_EQ_STR(buf, "1970-01-01 00:00:00 UTC");
}

/* The warning: within 14 days, once a day, whatever the STATUS cadence. */
static void test_warn_schedule(void)
{
    int64_t exp = NOW_MS + 13 * DAY_MS;
    CHECK(!hl_refresh_warn_due(0, NOW_MS, 0));                    /* not known */
    CHECK(!hl_refresh_warn_due(NOW_MS + 14 * DAY_MS, NOW_MS, 0)); /* 14 days: not yet */
    CHECK(hl_refresh_warn_due(NOW_MS + 14 * DAY_MS - 1, NOW_MS, 0));
    CHECK(hl_refresh_warn_due(exp, NOW_MS, 0));              /* never warned */
    CHECK(!hl_refresh_warn_due(exp, NOW_MS + 2000, NOW_MS)); /* 2 s later: no */
    CHECK(!hl_refresh_warn_due(exp, NOW_MS + DAY_MS - 1, NOW_MS));
    CHECK_WHY(hl_refresh_warn_due(exp, NOW_MS + DAY_MS, NOW_MS), "not repeated daily");
    CHECK(hl_refresh_warn_due(NOW_MS - DAY_MS, NOW_MS + DAY_MS, NOW_MS)); /* expired: still */
    /* simulated: 14 days of STATUS ticks every 2 s warn 14 times */
    int warned = 0;
    int64_t last = 0;
    for (int64_t t = NOW_MS; t < NOW_MS + 14 * DAY_MS; t += 2000) {
        if (hl_refresh_warn_due(NOW_MS + 13 * DAY_MS, t, last)) {
            warned++;
            last = t;
        }
    }
    CHECK_EQ_INT(warned, 14);
}

int main(void)
{
    test_healthy();
    test_group();
    test_load();
    test_oldest();
    test_auth();
    test_refresh();
    test_all_and_truncation();
    test_duration();
    test_warn_schedule();
    return check_done();
}
