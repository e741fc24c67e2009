/* Unit tests for common/cfg.c: defaults (SPEC §7), the file syntax, errors
 * that name the key and file:line, -X overrides, kafka.* pass-through, URL
 * policy, the credential requirement, --check-config redaction and the
 * reload table. Config files live in a mkdtemp() directory. */
#include "cfg.h"
#include "check.h"
#include "log.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[PATH_MAX - 64];
static char conf[PATH_MAX];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* Writes text to conf, then cfg_init + cfg_load. The caller frees c. */
static int load(struct cfg *c, const char *text, char *const *ov, size_t n_ov, char *err,
                size_t errlen)
{
    write_file(conf, text);
    cfg_init(c);
    err[0] = '\0';
    return cfg_load(c, conf, ov, n_ov, err, errlen);
}

/* "conf:line" as the error must name it. */
static const char *where(long line)
{
    static char buf[PATH_MAX + 32];
    snprintf(buf, sizeof(buf), "%s:%ld", conf, line);
    return buf;
}

static const struct cfg_kafka_prop *kprop(const struct cfg *c, enum cfg_kafka_scope scope,
                                          const char *name)
{
    for (size_t i = 0; i < c->n_kafka; i++)
        if (c->kafka[i].scope == scope && strcmp(c->kafka[i].name, name) == 0)
            return &c->kafka[i];
    return NULL;
}

static char *dump_to_string(const struct cfg *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        exit(2);
    cfg_dump(c, f);
    fclose(f);
    return buf;
}

#define TOKEN_LINE "webex.access_token_file = /run/bwprovd/token\n"

static void check_defaults(const struct cfg *c)
{
    CHECK_EQ_STR(c->topic_events, "broadworks.provisioning.events");
    CHECK_EQ_STR(c->topic_results, "broadworks.provisioning.results");
    CHECK_EQ_STR(c->topic_dlq, "broadworks.provisioning.dlq");
    CHECK_EQ_STR(c->topic_state, "broadworks.provisioning.state");
    CHECK_EQ_STR(c->webex_base_url, "https://webexapis.com/v1");
    CHECK_EQ_INT(c->webex_max_in_flight, 64);
    CHECK_EQ_INT(c->retry_max_attempts, 10);
    CHECK_EQ_INT(c->retry_backoff_initial_ms, 500);
    CHECK_EQ_INT(c->retry_backoff_max_ms, 60000);
    CHECK_EQ_INT(c->pipeline_max_pending, 10000);
    CHECK_EQ_INT(c->pipeline_workers, 0); /* resolved later to the CPU count */
    CHECK_EQ_INT(c->shutdown_grace_ms, 10000);
    CHECK_EQ_INT(c->log_level, LOG_LVL_INFO);
    CHECK(c->webex_rate_limit == 0.0);
    CHECK_NULL(c->webex_client_id);
    CHECK_NULL(c->webex_client_secret_file);
    CHECK_NULL(c->webex_refresh_token_file);
    CHECK_NULL(c->webex_ca_file);
    const struct cfg_kafka_prop *g = kprop(c, CFG_KAFKA_CONSUMER, "group.id");
    if (CHECK_NOT_NULL(g))
        CHECK_EQ_STR(g->value, "bwprovd");
}

static void test_defaults(void)
{
    struct cfg c;
    char err[512];

    cfg_init(&c);
    check_defaults(&c);
    CHECK_NULL(c.webex_access_token_file);
    CHECK_EQ_INT(c.n_kafka, 1);
    cfg_free(&c);

    /* A file that sets only the token keeps every default. */
    CHECK_EQ_INT(load(&c, TOKEN_LINE, NULL, 0, err, sizeof(err)), 0);
    check_defaults(&c);
    CHECK_EQ_STR(c.webex_access_token_file, "/run/bwprovd/token");
    cfg_free(&c);
}

static void test_syntax(void)
{
    struct cfg c;
    char err[512];
    const char *text = "# a comment at the start of a line\n"
                       "   # an indented comment\n"
                       "\n"
                       "   \t \n"
                       "topic.events=ev.in\n"
                       "topic.results   =   res.out    # a comment after whitespace\n"
                       "\ttopic.dlq\t=\tdlq.out\t\n"
                       "kafka.client.id = bw#1\n" /* '#' inside a value is kept */
                       "retry.max_attempts = 7 #comment\n"
                       "log.level = debug\n"
                       "webex.rate_limit = 2.5\n"
                       "webex.access_token_file = /run/token\r\n"
                       "# last line without a newline\n"
                       "shutdown.grace_ms = 0";
    CHECK_EQ_INT(load(&c, text, NULL, 0, err, sizeof(err)), 0);
    CHECK_EQ_STR(err, "");
    CHECK_EQ_STR(c.topic_events, "ev.in");
    CHECK_EQ_STR(c.topic_results, "res.out");
    CHECK_EQ_STR(c.topic_dlq, "dlq.out");
    CHECK_EQ_STR(c.topic_state, "broadworks.provisioning.state");
    CHECK_EQ_INT(c.retry_max_attempts, 7);
    CHECK_EQ_INT(c.log_level, LOG_LVL_DEBUG);
    CHECK(c.webex_rate_limit == 2.5);
    CHECK_EQ_STR(c.webex_access_token_file, "/run/token");
    CHECK_EQ_INT(c.shutdown_grace_ms, 0);
    const struct cfg_kafka_prop *p = kprop(&c, CFG_KAFKA_BOTH, "client.id");
    if (CHECK_NOT_NULL(p)) {
        CHECK_EQ_STR(p->value, "bw#1");
        CHECK_EQ_STR(p->where, where(8));
    }
    cfg_free(&c);

    /* An empty file is fine as far as syntax goes; validation then asks for
     * a token. */
    CHECK_EQ_INT(load(&c, "", NULL, 0, err, sizeof(err)), -1);
    CHECK_CONTAINS(err, "webex.access_token_file");
    cfg_free(&c);
}

/* A file whose line `line` is bad: the error names file:line and the key. */
struct bad_file {
    const char *text;
    long line;
    const char *key;  /* must appear in the error (NULL: none to name) */
    const char *also; /* another substring the error must contain, or NULL */
};

static void test_errors(void)
{
    static const struct bad_file cases[] = {
        {TOKEN_LINE "# c\nno.such.key = 1\n", 3, "no.such.key", "unknown key"},
        {"topic.eventz = x\n" TOKEN_LINE, 1, "topic.eventz", "unknown key"},
        {TOKEN_LINE "retry.max_attempts = ten\n", 2, "retry.max_attempts", "ten"},
        {TOKEN_LINE "retry.max_attempts = 5x\n", 2, "retry.max_attempts", "5x"},
        {TOKEN_LINE "retry.max_attempts = 5.0\n", 2, "retry.max_attempts", NULL},
        {TOKEN_LINE "retry.max_attempts =\n", 2, "retry.max_attempts", NULL},
        {TOKEN_LINE "retry.max_attempts = 99999999999999999999999\n", 2, "retry.max_attempts",
         NULL},
        {TOKEN_LINE "retry.max_attempts = 0\n", 2, "retry.max_attempts", "range"},
        {TOKEN_LINE "retry.max_attempts = 1001\n", 2, "retry.max_attempts", "range"},
        {TOKEN_LINE "webex.max_in_flight = 0\n", 2, "webex.max_in_flight", "range"},
        {TOKEN_LINE "pipeline.max_pending = -5\n", 2, "pipeline.max_pending", "range"},
        {TOKEN_LINE "pipeline.workers = 257\n", 2, "pipeline.workers", "range"},
        {TOKEN_LINE "shutdown.grace_ms = -1\n", 2, "shutdown.grace_ms", "range"},
        {TOKEN_LINE "webex.rate_limit = -1\n", 2, "webex.rate_limit", NULL},
        {TOKEN_LINE "webex.rate_limit = nan\n", 2, "webex.rate_limit", NULL},
        {TOKEN_LINE "webex.rate_limit = inf\n", 2, "webex.rate_limit", NULL},
        {TOKEN_LINE "webex.rate_limit = fast\n", 2, "webex.rate_limit", NULL},
        {TOKEN_LINE "log.level = verbose\n", 2, "log.level", "verbose"},
        {TOKEN_LINE "log.level = INFO\n", 2, "log.level", NULL},
        {TOKEN_LINE "log.level =\n", 2, "log.level", NULL},
        {TOKEN_LINE "topic.events =\n", 2, "topic.events", "empty"},
        {TOKEN_LINE "\ntopic.events ev.in\n", 3, NULL, "topic.events ev.in"},
        {TOKEN_LINE " = value\n", 2, NULL, NULL},
        {TOKEN_LINE "kafka.no.such.property = 1\n", 2, "kafka.no.such.property", NULL},
        {TOKEN_LINE "kafka.consumer.no.such.property = 1\n", 2, "kafka.consumer.no.such.property",
         NULL},
        {TOKEN_LINE "kafka.session.timeout.ms = soon\n", 2, "kafka.session.timeout.ms", NULL},
        {TOKEN_LINE "kafka. = 1\n", 2, "kafka.", NULL},
        {TOKEN_LINE "kafka.producer. = 1\n", 2, "kafka.producer.", NULL},
        {TOKEN_LINE "webex.base_url = http://example.com/v1\n", 2, "webex.base_url", "http"},
        {TOKEN_LINE "webex.base_url = ftp://example.com/v1\n", 2, "webex.base_url", NULL},
        {TOKEN_LINE "webex.base_url = not a url\n", 2, "webex.base_url", NULL},
        {TOKEN_LINE "webex.base_url =\n", 2, "webex.base_url", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg c;
        char err[512];
        int rc = load(&c, cases[i].text, NULL, 0, err, sizeof(err));
        if (!CHECK_EQ_INT(rc, -1))
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].text);
        CHECK_CONTAINS(err, where(cases[i].line));
        if (cases[i].key)
            CHECK_CONTAINS(err, cases[i].key);
        if (cases[i].also)
            CHECK_CONTAINS(err, cases[i].also);
        cfg_free(&c);
    }
}

static void test_duplicate(void)
{
    struct cfg c;
    char err[512];

    CHECK_EQ_INT(load(&c,
                      "# one\n"
                      "log.level = info\n" TOKEN_LINE "\n"
                      "log.level = debug\n",
                      NULL, 0, err, sizeof(err)),
                 -1);
    CHECK_CONTAINS(err, where(5));
    CHECK_CONTAINS(err, "log.level");
    CHECK_CONTAINS(err, "line 2");
    cfg_free(&c);

    /* kafka.* keys too, and whitespace does not make a different key. */
    CHECK_EQ_INT(load(&c,
                      TOKEN_LINE "kafka.client.id = a\n"
                                 "  kafka.client.id=b\n",
                      NULL, 0, err, sizeof(err)),
                 -1);
    CHECK_CONTAINS(err, where(3));
    CHECK_CONTAINS(err, "kafka.client.id");
    CHECK_CONTAINS(err, "line 2");
    cfg_free(&c);
}

static void test_missing_file(void)
{
    struct cfg c;
    char err[512], path[PATH_MAX + 16];

    snprintf(path, sizeof(path), "%s/nope.conf", tmpdir);
    cfg_init(&c);
    CHECK_EQ_INT(cfg_load(&c, path, NULL, 0, err, sizeof(err)), -1);
    CHECK_CONTAINS(err, path);
    cfg_free(&c);
}

static void test_long_line(void)
{
    struct cfg c;
    char err[512];
    size_t n = 9000;
    char *text = malloc(n + 64);
    if (!text)
        exit(2);
    strcpy(text, TOKEN_LINE "topic.events = ");
    size_t l = strlen(text);
    memset(text + l, 'a', n);
    strcpy(text + l + n, "\n");
    CHECK_EQ_INT(load(&c, text, NULL, 0, err, sizeof(err)), -1);
    CHECK_CONTAINS(err, where(2));
    cfg_free(&c);
    free(text);
}

static void test_overrides(void)
{
    struct cfg c;
    char err[512];
    char o1[] = "log.level=debug", o2[] = "retry.max_attempts=3", o3[] = "topic.events=from.cli",
         o4[] = "kafka.client.id=cli";
    char *ov[] = {o1, o2, o3, o4};

    CHECK_EQ_INT(load(&c,
                      TOKEN_LINE "log.level = warning\n"
                                 "retry.max_attempts = 20\n"
                                 "kafka.client.id = file\n",
                      ov, 4, err, sizeof(err)),
                 0);
    CHECK_EQ_INT(c.log_level, LOG_LVL_DEBUG);
    CHECK_EQ_INT(c.retry_max_attempts, 3);
    CHECK_EQ_STR(c.topic_events, "from.cli");
    const struct cfg_kafka_prop *p = kprop(&c, CFG_KAFKA_BOTH, "client.id");
    if (CHECK_NOT_NULL(p)) {
        CHECK_EQ_STR(p->value, "cli");
        CHECK_EQ_STR(p->where, "-X");
    }
    CHECK_EQ_INT(c.n_kafka, 2); /* group.id + client.id, not a second client.id */
    cfg_free(&c);

    /* -X can supply the one required key. */
    char t1[] = "webex.access_token_file=/x";
    char *tok[] = {t1};
    CHECK_EQ_INT(load(&c, "", tok, 1, err, sizeof(err)), 0);
    CHECK_EQ_STR(c.webex_access_token_file, "/x");
    cfg_free(&c);

    static const struct {
        const char *ov;
        const char *want1, *want2;
    } bad[] = {
        {"no.such.key=1", "-X", "no.such.key"},
        {"retry.max_attempts=many", "-X", "retry.max_attempts"},
        {"log.level=loud", "-X", "log.level"},
        {"kafka.no.such.property=1", "-X", "kafka.no.such.property"},
        {"novalue", "-X", "novalue"},
        {"=x", "-X", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "%s", bad[i].ov);
        char *one[] = {buf};
        CHECK_EQ_INT(load(&c, TOKEN_LINE, one, 1, err, sizeof(err)), -1);
        CHECK_CONTAINS(err, bad[i].want1);
        if (bad[i].want2)
            CHECK_CONTAINS(err, bad[i].want2);
        cfg_free(&c);
    }
}

static void test_kafka(void)
{
    struct cfg c;
    char err[512];

    CHECK_EQ_INT(load(&c,
                      TOKEN_LINE "kafka.bootstrap.servers = 127.0.0.1:9092,127.0.0.1:9093\n"
                                 "kafka.consumer.session.timeout.ms = 10000\n"
                                 "kafka.producer.linger.ms = 5\n"
                                 "kafka.group.id = my-group\n",
                      NULL, 0, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(err, "");
    const struct cfg_kafka_prop *p = kprop(&c, CFG_KAFKA_BOTH, "bootstrap.servers");
    if (CHECK_NOT_NULL(p)) {
        CHECK_EQ_STR(p->value, "127.0.0.1:9092,127.0.0.1:9093");
        CHECK_EQ_STR(p->where, where(2));
    }
    p = kprop(&c, CFG_KAFKA_CONSUMER, "session.timeout.ms");
    if (CHECK_NOT_NULL(p))
        CHECK_EQ_STR(p->value, "10000");
    p = kprop(&c, CFG_KAFKA_PRODUCER, "linger.ms");
    if (CHECK_NOT_NULL(p))
        CHECK_EQ_STR(p->value, "5");
    /* Not misfiled on the other side. */
    CHECK_NULL(kprop(&c, CFG_KAFKA_PRODUCER, "session.timeout.ms"));
    CHECK_NULL(kprop(&c, CFG_KAFKA_BOTH, "session.timeout.ms"));
    CHECK_NULL(kprop(&c, CFG_KAFKA_CONSUMER, "linger.ms"));
    /* kafka.group.id replaced the default instead of adding a second one. */
    size_t groups = 0;
    for (size_t i = 0; i < c.n_kafka; i++)
        if (strcmp(c.kafka[i].name, "group.id") == 0) {
            groups++;
            CHECK_EQ_STR(c.kafka[i].value, "my-group");
        }
    CHECK_EQ_INT(groups, 1);
    CHECK_EQ_INT(c.n_kafka, 4);
    /* What each client gets: its own scope's value or the shared one. */
    CHECK_EQ_STR(cfg_kafka_value(&c, CFG_KAFKA_CONSUMER, "group.id"), "my-group");
    CHECK_NULL(cfg_kafka_value(&c, CFG_KAFKA_PRODUCER, "group.id"));
    CHECK_EQ_STR(cfg_kafka_value(&c, CFG_KAFKA_PRODUCER, "bootstrap.servers"),
                 "127.0.0.1:9092,127.0.0.1:9093");
    CHECK_EQ_STR(cfg_kafka_value(&c, CFG_KAFKA_CONSUMER, "session.timeout.ms"), "10000");
    CHECK_NULL(cfg_kafka_value(&c, CFG_KAFKA_PRODUCER, "session.timeout.ms"));
    CHECK_NULL(cfg_kafka_value(&c, CFG_KAFKA_CONSUMER, "no.such.property"));
    cfg_free(&c);
}

static void test_base_url(void)
{
    static const struct {
        const char *url;
        bool ok;
    } cases[] = {
        {"https://webexapis.com/v1", true},
        {"https://api.example.net:8443/v1", true},
        {"http://127.0.0.1:8080/v1", true},
        {"http://127.0.0.1/v1", true},
        {"http://localhost:8080/v1", true},
        {"http://localhost/v1", true},
        {"http://[::1]:8080/v1", true},
        {"http://example.com/v1", false},
        {"http://10.0.0.1:8080/v1", false},
        {"http://192.168.1.1/v1", false},
        {"http://webexapis.com/v1", false},
        {"http://127.0.0.1@evil.example/v1", false}, /* userinfo, not the host */
        {"http://localhost.evil.example/v1", false},
        {"http://evil.example/#@127.0.0.1", false},
        {"http://evil.example/?h=127.0.0.1", false},
        {"http://localhost:99999/v1", false}, /* bad port */
        {"ftp://127.0.0.1/v1", false},
        {"file:///etc/passwd", false},
        {"127.0.0.1:8080", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg c;
        char err[512] = "";
        cfg_init(&c);
        int rc = cfg_set(&c, "webex.base_url", cases[i].url, "t.conf:9", err, sizeof(err));
        if (!CHECK_EQ_INT(rc, cases[i].ok ? 0 : -1))
            fprintf(stderr, "  url %s: %s\n", cases[i].url, err);
        if (cases[i].ok) {
            CHECK_EQ_STR(c.webex_base_url, cases[i].url);
        } else {
            CHECK_CONTAINS(err, "t.conf:9");
            CHECK_CONTAINS(err, "webex.base_url");
            CHECK_EQ_STR(c.webex_base_url, "https://webexapis.com/v1"); /* unchanged */
        }
        cfg_free(&c);
    }

    /* A host name that merely starts with "127." is a DNS name that can
     * resolve anywhere: plain http to it is not loopback. */
    static const char *const not_loopback[] = {
        "http://127.attacker.example/v1",
        "http://127.0.0.1.attacker.example/v1",
    };
    for (size_t i = 0; i < sizeof(not_loopback) / sizeof(not_loopback[0]); i++) {
        struct cfg c;
        char err[512] = "";
        cfg_init(&c);
        int rc = cfg_set(&c, "webex.base_url", not_loopback[i], "t.conf:9", err, sizeof(err));
        if (!CHECK_WHY(rc == -1,
                       "cfg.c host_is_loopback() accepts any host starting with \"127.\""))
            fprintf(stderr, "  accepted %s\n", not_loopback[i]);
        cfg_free(&c);
    }
}

/* metrics.listen: a literal address and a port, never a name to resolve;
 * off (NULL) by default; empty turns it off again. */
static void test_metrics_listen(void)
{
    static const struct {
        const char *value;
        int family; /* 0: refused */
        int port;
    } cases[] = {
        {"127.0.0.1:9740", AF_INET, 9740},
        {"0.0.0.0:1", AF_INET, 1},
        {"10.1.2.3:65535", AF_INET, 65535},
        {"[::1]:9740", AF_INET6, 9740},
        {"[::]:9740", AF_INET6, 9740},
        {"[fe80::1]:80", AF_INET6, 80},
        {"localhost:9740", 0, 0},
        {"metrics.example.net:9740", 0, 0},
        {"127.0.0.1", 0, 0},
        {"127.0.0.1:", 0, 0},
        {":9740", 0, 0},
        {"127.0.0.1:0", 0, 0},
        {"127.0.0.1:65536", 0, 0},
        {"127.0.0.1:-1", 0, 0},
        {"127.0.0.1:+80", 0, 0},
        {"127.0.0.1:80x", 0, 0},
        {"::1:9740", 0, 0},
        {"[::1:9740", 0, 0},
        {"[127.0.0.1]:9740", 0, 0},
        {"127.0.0.256:9740", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg c;
        struct sockaddr_storage ss;
        socklen_t len;
        char err[512] = "";
        cfg_init(&c);
        CHECK_NULL(c.metrics_listen);
        int rc = cfg_set(&c, "metrics.listen", cases[i].value, "t.conf:4", err, sizeof(err));
        int prc = cfg_parse_listen(cases[i].value, &ss, &len, err + 256, 256);
        if (!CHECK_EQ_INT(rc, cases[i].family ? 0 : -1) || !CHECK_EQ_INT(prc, rc))
            fprintf(stderr, "  value %s: %s\n", cases[i].value, err);
        if (cases[i].family) {
            CHECK_EQ_STR(c.metrics_listen, cases[i].value);
            CHECK_EQ_INT(ss.ss_family, cases[i].family);
            CHECK_EQ_INT(len, cases[i].family == AF_INET ? sizeof(struct sockaddr_in)
                                                         : sizeof(struct sockaddr_in6));
            int port = ntohs(cases[i].family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
            CHECK_EQ_INT(port, cases[i].port);
            CHECK_EQ_INT(cfg_set(&c, "metrics.listen", "", "t.conf:5", err, sizeof(err)), 0);
            CHECK_NULL(c.metrics_listen);
        } else {
            CHECK_CONTAINS(err, "t.conf:4: metrics.listen: ");
            CHECK_CONTAINS(err, "127.0.0.1:9740");
            CHECK_NULL(c.metrics_listen);
        }
        cfg_free(&c);
    }
    CHECK(!cfg_key_reloadable("metrics.listen"));
}

static void test_credentials_required(void)
{
    struct cfg c;
    char err[512];

    CHECK_EQ_INT(load(&c, "topic.events = x\n", NULL, 0, err, sizeof(err)), -1);
    CHECK_CONTAINS(err, "webex.access_token_file");
    cfg_free(&c);

    /* Part of the refresh trio is an error naming the trio. */
    CHECK_EQ_INT(load(&c, TOKEN_LINE "webex.client_id = C1\n", NULL, 0, err, sizeof(err)), -1);
    CHECK_CONTAINS(err, "webex.client_secret_file");
    cfg_free(&c);

    /* The full trio stands in for the access token file. */
    CHECK_EQ_INT(load(&c,
                      "webex.client_id = C1\n"
                      "webex.client_secret_file = cred:secret\n"
                      "webex.refresh_token_file = /var/lib/bwprovd/refresh\n",
                      NULL, 0, err, sizeof(err)),
                 0);
    CHECK_EQ_STR(c.webex_client_id, "C1");
    CHECK_EQ_STR(c.webex_client_secret_file, "cred:secret");
    CHECK_NULL(c.webex_access_token_file);
    cfg_free(&c);

    /* Backoff bounds are checked against each other. */
    CHECK_EQ_INT(load(&c,
                      TOKEN_LINE "retry.backoff_initial_ms = 5000\n"
                                 "retry.backoff_max_ms = 1000\n",
                      NULL, 0, err, sizeof(err)),
                 -1);
    CHECK_CONTAINS(err, "retry.backoff_initial_ms");
    cfg_free(&c);

    /* So are the subscriber polls: the first poll within both bounds. */
    CHECK_EQ_INT(load(&c,
                      TOKEN_LINE "subscriber.poll_interval_ms = 5000\n"
                                 "subscriber.poll_max_interval_ms = 1000\n",
                      NULL, 0, err, sizeof(err)),
                 -1);
    CHECK_CONTAINS(err,
                   "subscriber.poll_interval_ms: 5000 is above subscriber.poll_max_interval_ms");
    cfg_free(&c);
    CHECK_EQ_INT(
        load(&c, TOKEN_LINE "subscriber.poll_limit_ms = 1000\n", NULL, 0, err, sizeof(err)), -1);
    CHECK_CONTAINS(err, "subscriber.poll_interval_ms: 2000 is above subscriber.poll_limit_ms 1000");
    cfg_free(&c);
}

static void test_dump(void)
{
    struct cfg c;
    char err[512];

    CHECK_EQ_INT(load(&c,
                      TOKEN_LINE "kafka.sasl.username = alice\n"
                                 "kafka.sasl.password = hunter2-secret-value\n"
                                 "kafka.bootstrap.servers = broker1:9092\n"
                                 "kafka.consumer.session.timeout.ms = 12000\n"
                                 "kafka.producer.linger.ms = 7\n"
                                 "topic.events = ev.in\n"
                                 "webex.rate_limit = 2.5\n"
                                 "log.level = notice\n",
                      NULL, 0, err, sizeof(err)),
                 0);
    char *d = dump_to_string(&c);
    CHECK(d && strstr(d, "hunter2") == NULL);
    CHECK_CONTAINS(d, "kafka.sasl.password = (redacted)");
    CHECK_CONTAINS(d, "kafka.sasl.username = alice\n");
    CHECK_CONTAINS(d, "kafka.bootstrap.servers = broker1:9092\n");
    CHECK_CONTAINS(d, "kafka.consumer.session.timeout.ms = 12000\n");
    CHECK_CONTAINS(d, "kafka.producer.linger.ms = 7\n");
    CHECK_CONTAINS(d, "kafka.group.id = bwprovd\n");
    CHECK_CONTAINS(d, "topic.events = ev.in\n");
    CHECK_CONTAINS(d, "topic.results = broadworks.provisioning.results\n");
    CHECK_CONTAINS(d, "topic.dlq = broadworks.provisioning.dlq\n");
    CHECK_CONTAINS(d, "topic.state = broadworks.provisioning.state\n");
    CHECK_CONTAINS(d, "webex.base_url = https://webexapis.com/v1\n");
    CHECK_CONTAINS(d, "webex.access_token_file = /run/bwprovd/token\n");
    CHECK_CONTAINS(d, "webex.max_in_flight = 64\n");
    CHECK_CONTAINS(d, "webex.rate_limit = 2.5\n");
    CHECK_CONTAINS(d, "retry.max_attempts = 10\n");
    CHECK_CONTAINS(d, "retry.backoff_initial_ms = 500\n");
    CHECK_CONTAINS(d, "retry.backoff_max_ms = 60000\n");
    CHECK_CONTAINS(d, "pipeline.max_pending = 10000\n");
    CHECK_CONTAINS(d, "pipeline.workers = 0\n");
    CHECK_CONTAINS(d, "shutdown.grace_ms = 10000\n");
    CHECK_CONTAINS(d, "log.level = notice\n");
    CHECK_CONTAINS(d, "webex.client_id"); /* unset keys still appear (commented) */

    /* The dump is itself a valid config file that loads to the same dump
     * (apart from the redacted secret, which is left out here). */
    char *copy = NULL;
    if (d) {
        copy = strdup(d);
        char *pw = copy ? strstr(copy, "kafka.sasl.password") : NULL;
        if (pw)
            *pw = '#';
    }
    struct cfg c2;
    if (CHECK_NOT_NULL(copy) && CHECK_EQ_INT(load(&c2, copy, NULL, 0, err, sizeof(err)), 0)) {
        char *d2 = dump_to_string(&c2);
        char *pw = d ? strstr(d, "kafka.sasl.password") : NULL;
        char *nl = pw ? strchr(pw, '\n') : NULL;
        if (pw && nl) /* d without the password line, to compare */
            memmove(pw, nl + 1, strlen(nl + 1) + 1);
        CHECK_EQ_STR(d2, d);
        free(d2);
    } else {
        fprintf(stderr, "  reloading the dump: %s\n", err);
    }
    cfg_free(&c2);
    free(copy);
    free(d);
    cfg_free(&c);

    /* Which kafka property names hold secrets. */
    static const struct {
        const char *name;
        bool secret;
    } names[] = {
        {"sasl.password", true},
        {"ssl.key.password", true},
        {"ssl.keystore.password", true},
        {"ssl.key.pem", true},
        {"sasl.oauthbearer.client.secret", true},
        {"sasl.oauthbearer.config", true},
        {"sasl.username", false},
        {"bootstrap.servers", false},
        {"security.protocol", false},
        {"sasl.mechanisms", false},
        {"ssl.ca.location", false},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!CHECK_EQ_INT(cfg_kafka_secret(names[i].name), names[i].secret))
            fprintf(stderr, "  name %s\n", names[i].name);
}

static void test_reloadable(void)
{
    static const struct {
        const char *key;
        bool reload;
    } cases[] = {
        {"log.level", true},
        {"webex.rate_limit", true},
        {"retry.max_attempts", true},
        {"retry.backoff_initial_ms", true},
        {"retry.backoff_max_ms", true},
        {"webex.access_token_file", true},
        {"retry.max_wait_ms", true},
        {"state.lookup_wait_ms", true},
        {"state.max_unacknowledged", false},
        {"state.journal_dir", false},
        {"topic.events", false},
        {"topic.results", false},
        {"webex.base_url", false},
        {"pipeline.max_pending", false},
        {"kafka.bootstrap.servers", false},
        {"no.such.key", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (!CHECK_EQ_INT(cfg_key_reloadable(cases[i].key), cases[i].reload))
            fprintf(stderr, "  key %s\n", cases[i].key);

    /* cfg_restart_needed counts the non-reloadable differences only. */
    struct cfg a, b;
    char err[256];
    cfg_init(&a);
    cfg_init(&b);
    CHECK_EQ_INT(cfg_restart_needed(&a, &b), 0);
    CHECK_EQ_INT(cfg_set(&b, "log.level", "debug", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_set(&b, "retry.max_attempts", "4", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_restart_needed(&a, &b), 0);
    CHECK_EQ_INT(cfg_set(&b, "topic.events", "other", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_restart_needed(&a, &b), 1);
    CHECK_EQ_INT(cfg_set(&b, "kafka.client.id", "x", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_restart_needed(&a, &b), 2);

    /* SIGHUP takes every reloadable key from the new file, and no other. */
    CHECK_EQ_INT(cfg_set(&b, "retry.max_wait_ms", "5000", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_set(&b, "state.lookup_wait_ms", "0", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_set(&b, "webex.rate_limit", "12.5", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_set(&b, "webex.access_token_file", "/new/token", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_set(&b, "state.max_unacknowledged", "7", "t", err, sizeof(err)), 0);
    CHECK_EQ_INT(cfg_copy_reloadable(&a, &b), 0);
    CHECK_EQ_INT(a.log_level, LOG_LVL_DEBUG);
    CHECK_EQ_INT(a.retry_max_attempts, 4);
    CHECK_EQ_INT(a.retry_max_wait_ms, 5000);
    CHECK_EQ_INT(a.state_lookup_wait_ms, 0);
    CHECK(a.webex_rate_limit == 12.5);
    CHECK_EQ_STR(a.webex_access_token_file, "/new/token");
    CHECK_EQ_STR(a.topic_events, "broadworks.provisioning.events"); /* restart only */
    CHECK_EQ_INT(a.state_max_unacknowledged, 5000);
    cfg_free(&a);
    cfg_free(&b);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s/bwprovd-cfg-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(conf, sizeof(conf), "%s/bwprovd.conf", tmpdir);
    log_set_level(LOG_LVL_ERR); /* cfg_restart_needed warns; keep the output short */

    test_defaults();
    test_syntax();
    test_errors();
    test_duplicate();
    test_missing_file();
    test_long_line();
    test_overrides();
    test_kafka();
    test_base_url();
    test_metrics_listen();
    test_credentials_required();
    test_dump();
    test_reloadable();

    unlink(conf);
    if (rmdir(tmpdir) != 0)
        perror(tmpdir);
    return check_done();
}
