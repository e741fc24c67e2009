/* Unit tests for common/log.c: log_fmt_pair's logfmt quoting and bounds,
 * level names, and the stderr (non-journald) records of log_write and
 * log_outcome: one line each, with the SPEC §8 fields. */
#include "check.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *pair(const char *key, const char *value)
{
    static char buf[512];
    size_t n = log_fmt_pair(buf, 0, sizeof(buf), key, value);
    CHECK_EQ_INT(n, strlen(buf));
    return buf;
}

static void test_quoting(void)
{
    static const struct {
        const char *value, *want;
    } cases[] = {
        {"plain", "k=plain"},
        {"with-dash_and.dot:colon/slash", "k=with-dash_and.dot:colon/slash"},
        {"", "k=\"\""},
        {"a b", "k=\"a b\""},
        {"say \"hi\"", "k=\"say \\\"hi\\\"\""},
        {"a=b", "k=\"a=b\""},
        {"back\\slash", "k=\"back\\\\slash\""},
        {"line1\nline2", "k=\"line1\\nline2\""},
        {"cr\rhere", "k=\"cr\\x0dhere\""},
        {"tab\there", "k=\"tab\\x09here\""},
        {"bell\x07", "k=\"bell\\x07\""},
        {"esc\x1b[31m", "k=\"esc\\x1b[31m\""},
        {"del\x7f", "k=\"del\\x7f\""},
        {"caf\xc3\xa9", "k=caf\xc3\xa9"}, /* UTF-8 needs no quoting */
        {"\"", "k=\"\\\"\""},
        {"=", "k=\"=\""},
        {" ", "k=\" \""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_EQ_STR(pair("k", cases[i].value), cases[i].want);

    /* Appending separates pairs with one space. */
    char buf[128];
    size_t n = log_fmt_pair(buf, 0, sizeof(buf), "a", "1");
    n = log_fmt_pair(buf, n, sizeof(buf), "b", "two words");
    n = log_fmt_pair(buf, n, sizeof(buf), "c", "");
    CHECK_EQ_STR(buf, "a=1 b=\"two words\" c=\"\"");
    CHECK_EQ_INT(n, strlen(buf));
}

static bool one_line_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static void test_bounds(void)
{
    static const char *const values[] = {
        "",
        "x",
        "plain-value",
        "needs quoting",
        "\n\n\n\n",
        "\"\"\"\"\"",
        "\x01\x02\x03",
        "a long value with spaces and \"quotes\" and \\ and \n and \x7f in it",
    };
    int bad = 0;
    for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
        for (size_t cap = 1; cap <= 100; cap++) {
            for (size_t start = 0; start < cap; start += 1 + cap / 4) {
                char buf[128];
                memset(buf, '#', sizeof(buf));
                memset(buf, 'p', start);
                buf[start] = '\0';
                size_t n = log_fmt_pair(buf, start, cap, "key", values[v]);
                if (n > cap - 1 || strlen(buf) != n || buf[cap] != '#' ||
                    memcmp(buf, "pppppppp", start < 8 ? start : 8) != 0 || !one_line_safe(buf)) {
                    if (bad++ < 5)
                        fprintf(stderr, "  value %zu cap %zu start %zu: returned %zu\n", v, cap,
                                start, n);
                }
            }
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* Full output when it fits exactly. */
    char buf[16];
    CHECK_EQ_INT(log_fmt_pair(buf, 0, 6, "k", "1234"), 5); /* "k=1234" is 6 chars: cut */
    CHECK_EQ_INT(log_fmt_pair(buf, 0, 7, "k", "1234"), 6);
    CHECK_EQ_STR(buf, "k=1234");

    /* cap 0 writes nothing. */
    char untouched = '#';
    CHECK_EQ_INT(log_fmt_pair(&untouched, 0, 0, "k", "v"), 0);
    CHECK(untouched == '#');

    /* A value far longer than the buffer. */
    char *big = malloc(100000);
    if (!big)
        exit(2);
    memset(big, '"', 99999);
    big[99999] = '\0';
    char out[1000];
    memset(out, '#', sizeof(out));
    size_t n = log_fmt_pair(out, 0, 999, "k", big);
    CHECK_EQ_INT(n, 998);
    CHECK_EQ_INT(strlen(out), 998);
    CHECK(out[999] == '#');
    free(big);
}

static void test_levels(void)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"err", LOG_LVL_ERR},   {"warning", LOG_LVL_WARNING}, {"notice", LOG_LVL_NOTICE},
        {"info", LOG_LVL_INFO}, {"debug", LOG_LVL_DEBUG},
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        int l = -1;
        CHECK_EQ_INT(log_level_parse(levels[i].name, &l), 0);
        CHECK_EQ_INT(l, levels[i].level);
        CHECK_EQ_STR(log_level_name(levels[i].level), levels[i].name);
    }
    static const char *const bad[] = {"", "INFO", "warn", "error", "crit", "trace", "info "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int l = 12345;
        CHECK_EQ_INT(log_level_parse(bad[i], &l), -1);
        CHECK_EQ_INT(l, 12345); /* untouched on error */
    }
    CHECK_EQ_STR(log_level_name(-1), "info");
    CHECK_EQ_STR(log_level_name(0), "info");
    CHECK_EQ_STR(log_level_name(99), "info");

    log_set_level(LOG_LVL_NOTICE);
    CHECK_EQ_INT(log_get_level(), LOG_LVL_NOTICE);
    log_set_level(LOG_LVL_INFO);
}

/* Runs fn with stderr sent to a temporary file; returns what was written. */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/bwprovd-log-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        exit(2);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    if (saved < 0 || dup2(fd, STDERR_FILENO) < 0)
        exit(2);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)size + 1);
    if (!out || pread(fd, out, (size_t)size, 0) != size)
        exit(2);
    close(fd);
    return out;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static void emit_outcome(void)
{
    struct log_outcome o = {
        .level = LOG_LVL_WARNING,
        .event_id = "e1",
        .event_type = "workspace.update",
        .user_id = "95547321@sp.com",
        .outcome = "failed",
        .http_status = 503,
        .tracking_id = "bwprovd_e1",
        .attempt = 10,
        .topic = "broadworks.provisioning.events",
        .partition = 3,
        .offset = 1842,
        .workspace_id = "Y2lzY29zcGFyazovL3VzL1BMQUNFL2Rk",
        .detail = "Service Unavailable\ninjected=line",
    };
    log_outcome(&o);
}

static void emit_outcome_minimal(void)
{
    struct log_outcome o = {.level = LOG_LVL_ERR, .http_status = -1, .partition = -1};
    log_outcome(&o);
}

static void emit_filtered(void)
{
    log_set_level(LOG_LVL_WARNING);
    log_info("this is below the level");
    log_debug("and so is this");
    struct log_outcome o = {.level = LOG_LVL_INFO, .http_status = 200, .partition = 1};
    log_outcome(&o);
    log_set_level(LOG_LVL_INFO);
}

static void emit_write(void)
{
    log_write(LOG_LVL_NOTICE, LOG_MID_STARTED, "started with %d workers\nsecond line", 4);
    log_warn("plain %s", "warning");
}

static void emit_long(void)
{
    char *big = malloc(20000);
    if (!big)
        exit(2);
    memset(big, 'z', 19999);
    big[19999] = '\0';
    log_err("%s", big);
    struct log_outcome o = {
        .level = LOG_LVL_ERR, .detail = big, .user_id = big, .http_status = -1, .partition = -1};
    log_outcome(&o);
    free(big);
}

static void test_stderr_records(void)
{
    unsetenv("JOURNAL_STREAM");
    log_init();
    log_set_level(LOG_LVL_INFO);

    char *out = capture_stderr(emit_outcome);
    CHECK_EQ_INT(count_char(out, '\n'), 1);
    CHECK(strncmp(out, "ts=", 3) == 0);
    CHECK_CONTAINS(out, " level=warning ");
    CHECK_CONTAINS(out, " event_id=e1");
    CHECK_CONTAINS(out, " event_type=workspace.update");
    CHECK_CONTAINS(out, " user_id=95547321@sp.com");
    CHECK_CONTAINS(out, " outcome=failed");
    CHECK_CONTAINS(out, " http_status=503");
    CHECK_CONTAINS(out, " tracking_id=bwprovd_e1");
    CHECK_CONTAINS(out, " attempt=10");
    CHECK_CONTAINS(out, " topic=broadworks.provisioning.events");
    CHECK_CONTAINS(out, " partition=3");
    CHECK_CONTAINS(out, " offset=1842");
    CHECK_CONTAINS(out, " workspace_id=Y2lzY29zcGFyazovL3VzL1BMQUNFL2Rk");
    /* The detail's newline is escaped: it cannot forge a record. */
    CHECK_CONTAINS(out, "Service Unavailable\\ninjected=line");
    CHECK(strstr(out, "\ninjected") == NULL);
    free(out);

    /* Absent values are left out, not printed as empty or -1. */
    out = capture_stderr(emit_outcome_minimal);
    CHECK_EQ_INT(count_char(out, '\n'), 1);
    CHECK(strstr(out, "http_status") == NULL);
    CHECK(strstr(out, "partition") == NULL);
    CHECK(strstr(out, "offset") == NULL);
    CHECK(strstr(out, "event_id") == NULL);
    CHECK(strstr(out, "workspace_id") == NULL);
    CHECK_CONTAINS(out, " level=err");
    free(out);

    /* Below the level: nothing at all. */
    out = capture_stderr(emit_filtered);
    CHECK_EQ_STR(out, "");
    free(out);

    out = capture_stderr(emit_write);
    CHECK_EQ_INT(count_char(out, '\n'), 2);
    CHECK_CONTAINS(out, "msg=\"started with 4 workers\\nsecond line\"");
    CHECK_CONTAINS(out, "message_id=" LOG_MID_STARTED);
    CHECK_CONTAINS(out, " level=notice ");
    CHECK_CONTAINS(out, " level=warning msg=\"plain warning\"\n");
    free(out);

    /* Huge messages are cut, still one line per record. */
    out = capture_stderr(emit_long);
    CHECK_EQ_INT(count_char(out, '\n'), 2);
    char *second = strchr(out, '\n');
    CHECK(second && (size_t)(second - out) < 8192);
    CHECK(second && strlen(second + 1) < 16384);
    free(out);
}

int main(void)
{
    test_quoting();
    test_bounds();
    test_levels();
    test_stderr_records();
    return check_done();
}
