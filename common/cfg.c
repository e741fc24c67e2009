/* cfg: see cfg.h. Every key lives in one table: name, type, default,
 * bounds and whether SIGHUP reloads it. Parsing, --check-config and the
 * documentation all follow the table. */
#include "cfg.h"

#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

enum ktype { K_STR, K_FILE, K_URL, K_ADDR, K_INT, K_DOUBLE, K_LEVEL };

struct key {
    const char *name;
    enum ktype type;
    size_t off;
    const char *def; /* NULL: unset */
    long min, max;
    bool reload;
};

#define F(field) offsetof(struct cfg, field)
static const struct key keys[] = {
    {"topic.events", K_STR, F(topic_events), "broadworks.provisioning.events", 0, 0, false},
    {"topic.results", K_STR, F(topic_results), "broadworks.provisioning.results", 0, 0, false},
    {"topic.dlq", K_STR, F(topic_dlq), "broadworks.provisioning.dlq", 0, 0, false},
    {"topic.state", K_STR, F(topic_state), "broadworks.provisioning.state", 0, 0, false},
    {"webex.base_url", K_URL, F(webex_base_url), "https://webexapis.com/v1", 0, 0, false},
    {"webex.access_token_file", K_FILE, F(webex_access_token_file), NULL, 0, 0, true},
    {"webex.client_id", K_STR, F(webex_client_id), NULL, 0, 0, false},
    {"webex.client_secret_file", K_FILE, F(webex_client_secret_file), NULL, 0, 0, false},
    {"webex.refresh_token_file", K_FILE, F(webex_refresh_token_file), NULL, 0, 0, false},
    {"webex.ca_file", K_FILE, F(webex_ca_file), NULL, 0, 0, false},
    {"webex.max_in_flight", K_INT, F(webex_max_in_flight), "64", 1, 65536, false},
    {"webex.timeout_ms", K_INT, F(webex_timeout_ms), "30000", 100, 3600000, false},
    {"webex.rate_limit", K_DOUBLE, F(webex_rate_limit), "0", 0, 1000000, true},
    {"retry.max_attempts", K_INT, F(retry_max_attempts), "10", 1, 1000, true},
    {"retry.backoff_initial_ms", K_INT, F(retry_backoff_initial_ms), "500", 1, 3600000, true},
    {"retry.backoff_max_ms", K_INT, F(retry_backoff_max_ms), "60000", 1, 3600000, true},
    {"retry.max_wait_ms", K_INT, F(retry_max_wait_ms), "900000", 1000, 86400000, true},
    {"state.journal_dir", K_STR, F(state_journal_dir), NULL, 0, 0, false},
    {"state.max_unacknowledged", K_INT, F(state_max_unacknowledged), "5000", 1, 1000000, false},
    {"state.lookup_wait_ms", K_INT, F(state_lookup_wait_ms), "10000", 0, 3600000, true},
    {"subscriber.poll_interval_ms", K_INT, F(subscriber_poll_interval_ms), "2000", 100, 3600000,
     false},
    {"subscriber.poll_max_interval_ms", K_INT, F(subscriber_poll_max_interval_ms), "60000", 100,
     3600000, false},
    {"subscriber.poll_limit_ms", K_INT, F(subscriber_poll_limit_ms), "1800000", 1000, 86400000,
     false},
    {"pipeline.max_pending", K_INT, F(pipeline_max_pending), "10000", 1, 10000000, false},
    {"pipeline.workers", K_INT, F(pipeline_workers), "0", 0, 256, false},
    {"shutdown.grace_ms", K_INT, F(shutdown_grace_ms), "10000", 0, 3600000, false},
    {"startup.timeout_ms", K_INT, F(startup_timeout_ms), "60000", 100, 3600000, false},
    {"log.level", K_LEVEL, F(log_level), "info", 0, 0, true},
    {"metrics.listen", K_ADDR, F(metrics_listen), NULL, 0, 0, false},
};
#undef F
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key *key_find(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static char **str_field(struct cfg *c, const struct key *k)
{
    return (char **)((char *)c + k->off);
}

static const char *const *cstr_field(const struct cfg *c, const struct key *k)
{
    return (const char *const *)((const char *)c + k->off);
}

static int fail(char *err, size_t errlen, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t errlen, const char *where, const char *key, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s: %s", where, key, why);
    return -1;
}

/* Only a literal loopback address or "localhost": a name such as
 * "127.example.com" resolves anywhere. */
static bool host_is_loopback(const char *host)
{
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    return strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/* https anywhere; plain http only to loopback, where nothing can listen in. */
static const char *check_url(const char *value)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    const char *why = NULL;

    if (!u)
        return "out of memory";
    if (curl_url_set(u, CURLUPART_URL, value, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        why = "not a valid URL";
    else if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)
        why = "scheme must be https";
    else if (strcmp(scheme, "http") == 0 && !host_is_loopback(host))
        why = "plain http:// is only allowed to a loopback host; use https://";
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return why;
}

static int parse_long(const char *value, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* "ADDR:PORT": a literal IPv4 address or a bracketed IPv6 one (no name
 * lookup: the address must not depend on DNS at start), port 1-65535. */
int cfg_parse_listen(const char *value, struct sockaddr_storage *ss, socklen_t *len, char *why,
                     size_t whylen)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(value, ':');
    size_t hl = colon ? (size_t)(colon - value) : 0;
    long port;

    memset(ss, 0, sizeof(*ss));
    if (!colon || hl == 0 || hl >= sizeof(host) || parse_long(colon + 1, &port) != 0 ||
        colon[1] == '+' || colon[1] == '-' || port < 1 || port > 65535) {
        snprintf(why, whylen, "'%s' is not ADDR:PORT (e.g. 127.0.0.1:9740 or [::1]:9740)", value);
        return -1;
    }
    memcpy(host, value, hl);
    host[hl] = '\0';
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons((uint16_t)port);
            *len = sizeof(*v6);
            return 0;
        }
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    snprintf(why, whylen,
             "'%s': the address must be a literal IPv4 address or an IPv6 address in brackets "
             "(e.g. 127.0.0.1:9740 or [::1]:9740)",
             value);
    return -1;
}

static int set_typed_value(struct cfg *c, const struct key *k, const char *value, const char *where,
                           char *err, size_t errlen);

/* Sets a key and remembers where, so cross-key checks can name a line. */
static int set_typed(struct cfg *c, const struct key *k, const char *value, const char *where,
                     char *err, size_t errlen)
{
    if (set_typed_value(c, k, value, where, err, errlen) != 0)
        return -1;
    if (c->where && strcmp(where, "default") != 0) {
        char *w = strdup(where);
        if (!w)
            return fail(err, errlen, where, k->name, "%s", "out of memory");
        free(c->where[k - keys]);
        c->where[k - keys] = w;
    }
    return 0;
}

/* The checks of the string types that have a syntax (URL, address). */
static int check_string(enum ktype type, const char *value, char *why, size_t whylen)
{
    if (type == K_ADDR) {
        struct sockaddr_storage ss;
        socklen_t len;
        return cfg_parse_listen(value, &ss, &len, why, whylen);
    }
    const char *bad = check_url(value);
    if (bad)
        snprintf(why, whylen, "%s", bad);
    return bad ? -1 : 0;
}

static int set_typed_value(struct cfg *c, const struct key *k, const char *value, const char *where,
                           char *err, size_t errlen)
{
    void *field = (char *)c + k->off;
    long lv;
    double dv;
    char *end;

    switch (k->type) {
    case K_URL:
    case K_ADDR: {
        char why[256];
        if (*value && check_string(k->type, value, why, sizeof(why)) != 0)
            return fail(err, errlen, where, k->name, "%s", why);
    }
    /* fall through */
    case K_STR:
    case K_FILE:
        /* Empty unsets an optional key; a key with a default needs a value. */
        if (*value == '\0' && k->def)
            return fail(err, errlen, where, k->name, "%s", "must not be empty");
        free(*str_field(c, k));
        *str_field(c, k) = *value ? strdup(value) : NULL;
        return 0;
    case K_INT:
        if (parse_long(value, &lv) != 0)
            return fail(err, errlen, where, k->name, "'%s' is not an integer", value);
        if (lv < k->min || lv > k->max)
            return fail(err, errlen, where, k->name, "%s is out of range %ld..%ld", value, k->min,
                        k->max);
        *(long *)field = lv;
        return 0;
    case K_DOUBLE:
        errno = 0;
        dv = strtod(value, &end);
        if (errno || end == value || *end != '\0' || !isfinite(dv) || dv < (double)k->min ||
            dv > (double)k->max)
            return fail(err, errlen, where, k->name, "'%s' is not a number >= 0", value);
        *(double *)field = dv;
        return 0;
    case K_LEVEL:
        if (log_level_parse(value, (int *)field) != 0)
            return fail(err, errlen, where, k->name,
                        "'%s' is not one of debug|info|notice|warning|err", value);
        return 0;
    }
    return fail(err, errlen, where, k->name, "%s", "internal error");
}

/* Validates a librdkafka property on a scratch configuration, so a typo is
 * reported with its file:line at load time rather than at client creation. */
static int check_kafka_prop(const char *name, const char *value, char *why, size_t whylen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, name, value, why, whylen);
    rd_kafka_conf_destroy(conf);
    return r == RD_KAFKA_CONF_OK ? 0 : -1;
}

/* kafka.group.id and kafka.group.instance.id concern the group consumer
 * only: they are stored with the consumer's scope, and dumped without it. */
static bool group_prop(const char *name)
{
    return strcmp(name, "group.id") == 0 || strcmp(name, "group.instance.id") == 0;
}

static int set_kafka(struct cfg *c, const char *key, const char *value, const char *where,
                     char *err, size_t errlen)
{
    enum cfg_kafka_scope scope = CFG_KAFKA_BOTH;
    const char *name = key + strlen("kafka.");
    char why[256];

    if (strncmp(name, "consumer.", 9) == 0) {
        scope = CFG_KAFKA_CONSUMER;
        name += 9;
    } else if (strncmp(name, "producer.", 9) == 0) {
        scope = CFG_KAFKA_PRODUCER;
        name += 9;
    } else if (group_prop(name)) {
        scope = CFG_KAFKA_CONSUMER;
    }
    if (*name == '\0')
        return fail(err, errlen, where, key, "%s", "missing librdkafka property name");
    if (check_kafka_prop(name, value, why, sizeof(why)) != 0)
        return fail(err, errlen, where, key, "%s", why);

    for (size_t i = 0; i < c->n_kafka; i++) {
        struct cfg_kafka_prop *p = &c->kafka[i];
        if (p->scope == scope && strcmp(p->name, name) == 0) {
            char *v = strdup(value), *w = strdup(where);
            if (!v || !w) {
                free(v);
                free(w);
                return fail(err, errlen, where, key, "%s", "out of memory");
            }
            free(p->value);
            free(p->where);
            p->value = v;
            p->where = w;
            return 0;
        }
    }
    struct cfg_kafka_prop *n = realloc(c->kafka, (c->n_kafka + 1) * sizeof(*n));
    if (!n)
        return fail(err, errlen, where, key, "%s", "out of memory");
    c->kafka = n;
    n[c->n_kafka] = (struct cfg_kafka_prop){scope, strdup(name), strdup(value), strdup(where)};
    c->n_kafka++;
    return 0;
}

int cfg_set(struct cfg *c, const char *key, const char *value, const char *where, char *err,
            size_t errlen)
{
    /* Bounds keep --check-config's "key = value" lines loadable again. */
    if (strlen(key) > CFG_KEY_MAX)
        return fail(err, errlen, where, "key", "longer than %d bytes", CFG_KEY_MAX);
    if (strlen(value) > CFG_VALUE_MAX)
        return fail(err, errlen, where, key, "value longer than %d bytes", CFG_VALUE_MAX);
    if (value[0] == '#') /* it would read back as a comment */
        return fail(err, errlen, where, key, "%s", "a value cannot start with '#'");
    if (strncmp(key, "kafka.", 6) == 0)
        return set_kafka(c, key, value, where, err, errlen);
    const struct key *k = key_find(key);
    if (!k)
        return fail(err, errlen, where, key, "%s", "unknown key");
    return set_typed(c, k, value, where, err, errlen);
}

void cfg_init(struct cfg *c)
{
    char err[256];

    memset(c, 0, sizeof(*c));
    c->where = calloc(N_KEYS, sizeof(*c->where)); /* NULL: locations are not named */
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].def)
            (void)set_typed(c, &keys[i], keys[i].def, "default", err, sizeof(err));
    (void)set_kafka(c, "kafka.group.id", "bwprovd", "default", err, sizeof(err));
}

void cfg_free(struct cfg *c)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].type == K_STR || keys[i].type == K_FILE || keys[i].type == K_URL ||
            keys[i].type == K_ADDR)
            free(*str_field(c, &keys[i]));
    for (size_t i = 0; i < c->n_kafka; i++) {
        free(c->kafka[i].name);
        free(c->kafka[i].value);
        free(c->kafka[i].where);
    }
    free(c->kafka);
    for (size_t i = 0; c->where && i < N_KEYS; i++)
        free(c->where[i]);
    free(c->where);
    free(c->path);
    memset(c, 0, sizeof(*c));
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* '#' starts a comment at the start of a line or after whitespace, so a
 * value such as a SASL mechanism list may still contain '#'. */
static void strip_comment(char *line)
{
    for (char *p = line; *p; p++) {
        if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
    }
}

struct seen {
    char **keys;
    long *lines;
    size_t n;
};

static long seen_before(struct seen *s, const char *key, long line)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->keys[i], key) == 0)
            return s->lines[i];
    char **k = realloc(s->keys, (s->n + 1) * sizeof(*k));
    if (k)
        s->keys = k;
    long *l = realloc(s->lines, (s->n + 1) * sizeof(*l));
    if (l)
        s->lines = l;
    if (k && l && (s->keys[s->n] = strdup(key)) != NULL)
        s->lines[s->n++] = line;
    return 0;
}

static void seen_free(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->keys[i]);
    free(s->keys);
    free(s->lines);
}

static int parse_line(struct cfg *c, char *line, const char *path, long lineno, struct seen *seen,
                      char *err, size_t errlen)
{
    char where[PATH_MAX + 32];
    snprintf(where, sizeof(where), "%s:%ld", path, lineno);

    strip_comment(line);
    char *s = trim(line);
    if (*s == '\0')
        return 0;
    char *eq = strchr(s, '=');
    if (!eq) {
        snprintf(err, errlen, "%s: expected 'key = value', got '%.64s'", where, s);
        return -1;
    }
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    if (*key == '\0') {
        snprintf(err, errlen, "%s: missing key before '='", where);
        return -1;
    }
    long first = seen_before(seen, key, lineno);
    if (first) {
        snprintf(err, errlen, "%s: %s: set twice (first at line %ld)", where, key, first);
        return -1;
    }
    return cfg_set(c, key, value, where, err, errlen);
}

static int load_file(struct cfg *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct seen seen = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n > CFG_LINE_MAX) {
            snprintf(err, errlen, "%s:%ld: line longer than %d bytes", path, lineno, CFG_LINE_MAX);
            rc = -1;
        } else if (strlen(line) != (size_t)n) {
            snprintf(err, errlen, "%s:%ld: line contains a NUL byte", path, lineno);
            rc = -1;
        } else {
            rc = parse_line(c, line, path, lineno, &seen, err, errlen);
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = -1;
    }
    free(line);
    seen_free(&seen);
    fclose(f);
    return rc;
}

static int apply_override(struct cfg *c, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        snprintf(err, errlen, "-X %s: expected key=value", kv);
        return -1;
    }
    char key[256];
    size_t klen = (size_t)(eq - kv);
    if (klen >= sizeof(key)) {
        snprintf(err, errlen, "-X: key too long");
        return -1;
    }
    memcpy(key, kv, klen);
    key[klen] = '\0';
    return cfg_set(c, key, eq + 1, "-X", err, errlen);
}

/* Where key was set: "file:line", "-X", or the file for a key left unset. */
static const char *where_of(const struct cfg *c, const char *key)
{
    const struct key *k = key_find(key);
    if (k && c->where && c->where[k - keys])
        return c->where[k - keys];
    return c->path ? c->path : "configuration";
}

/* An interval that must not be above a limit: "where: key: v is above
 * limit_key limit". */
static int not_above(const struct cfg *c, const char *key, long v, const char *limit_key,
                     long limit, char *err, size_t errlen)
{
    if (v <= limit)
        return 0;
    snprintf(err, errlen, "%s: %s: %ld is above %s %ld", where_of(c, key), key, v, limit_key,
             limit);
    return -1;
}

static int validate(const struct cfg *c, char *err, size_t errlen)
{
    if (not_above(c, "retry.backoff_initial_ms", c->retry_backoff_initial_ms,
                  "retry.backoff_max_ms", c->retry_backoff_max_ms, err, errlen) ||
        not_above(c, "subscriber.poll_interval_ms", c->subscriber_poll_interval_ms,
                  "subscriber.poll_max_interval_ms", c->subscriber_poll_max_interval_ms, err,
                  errlen) ||
        not_above(c, "subscriber.poll_interval_ms", c->subscriber_poll_interval_ms,
                  "subscriber.poll_limit_ms", c->subscriber_poll_limit_ms, err, errlen))
        return -1;
    static const char *const trio[] = {"webex.client_id", "webex.client_secret_file",
                                       "webex.refresh_token_file"};
    const char *set[3] = {c->webex_client_id, c->webex_client_secret_file,
                          c->webex_refresh_token_file};
    int n = !!set[0] + !!set[1] + !!set[2];
    for (int i = 0; n > 0 && n < 3 && i < 3; i++) {
        if (!set[i]) {
            snprintf(err, errlen, "%s: %s: required together with %s (set at %s)",
                     where_of(c, trio[i]), trio[i],
                     set[0]   ? trio[0]
                     : set[1] ? trio[1]
                              : trio[2],
                     where_of(c, set[0]   ? trio[0]
                                 : set[1] ? trio[1]
                                          : trio[2]));
            return -1;
        }
    }
    if (!c->webex_access_token_file && n != 3) {
        snprintf(err, errlen,
                 "%s: webex.access_token_file: required (or the webex.client_id / "
                 "webex.client_secret_file / webex.refresh_token_file trio)",
                 where_of(c, "webex.access_token_file"));
        return -1;
    }
    return 0;
}

int cfg_load(struct cfg *c, const char *path, char *const *overrides, size_t n_overrides, char *err,
             size_t errlen)
{
    free(c->path);
    c->path = strdup(path);
    if (load_file(c, path, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n_overrides; i++)
        if (apply_override(c, overrides[i], err, errlen) != 0)
            return -1;
    return validate(c, err, errlen);
}

const char *cfg_kafka_value(const struct cfg *c, enum cfg_kafka_scope scope, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < c->n_kafka; i++)
        if ((c->kafka[i].scope == scope || c->kafka[i].scope == CFG_KAFKA_BOTH) &&
            strcmp(c->kafka[i].name, name) == 0)
            v = c->kafka[i].value;
    return v;
}

bool cfg_kafka_secret(const char *name)
{
    static const char *const words[] = {
        "password", "secret", "key.pem", "keystore", "token", "sasl.oauthbearer.config", "ssl.key"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(name, words[i]))
            return true;
    return false;
}

static void dump_key(const struct cfg *c, const struct key *k, FILE *out)
{
    const void *field = (const char *)c + k->off;
    switch (k->type) {
    case K_STR:
    case K_FILE:
    case K_URL:
    case K_ADDR: {
        const char *v = *cstr_field(c, k);
        if (v)
            fprintf(out, "%s = %s\n", k->name, v);
        else
            fprintf(out, "# %s is not set\n", k->name);
        break;
    }
    case K_INT:
        fprintf(out, "%s = %ld\n", k->name, *(const long *)field);
        break;
    case K_DOUBLE:
        fprintf(out, "%s = %g\n", k->name, *(const double *)field);
        break;
    case K_LEVEL:
        fprintf(out, "%s = %s\n", k->name, log_level_name(*(const int *)field));
        break;
    }
}

void cfg_dump(const struct cfg *c, FILE *out)
{
    static const char *const prefix[] = {"kafka.", "kafka.consumer.", "kafka.producer."};

    for (size_t i = 0; i < N_KEYS; i++)
        dump_key(c, &keys[i], out);
    for (size_t i = 0; i < c->n_kafka; i++) {
        const struct cfg_kafka_prop *p = &c->kafka[i];
        const char *pre =
            p->scope == CFG_KAFKA_CONSUMER && group_prop(p->name) ? "kafka." : prefix[p->scope];
        fprintf(out, "%s%s = %s\n", pre, p->name,
                cfg_kafka_secret(p->name) ? "(redacted)" : p->value);
    }
}

bool cfg_key_reloadable(const char *key)
{
    const struct key *k = key_find(key);
    return k && k->reload;
}

static bool key_differs(const struct cfg *a, const struct cfg *b, const struct key *k)
{
    switch (k->type) {
    case K_STR:
    case K_FILE:
    case K_URL:
    case K_ADDR: {
        const char *x = *cstr_field(a, k), *y = *cstr_field(b, k);
        return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
    }
    case K_INT:
        return *(const long *)((const char *)a + k->off) !=
               *(const long *)((const char *)b + k->off);
    case K_DOUBLE:
        return *(const double *)((const char *)a + k->off) !=
               *(const double *)((const char *)b + k->off);
    case K_LEVEL:
        return *(const int *)((const char *)a + k->off) != *(const int *)((const char *)b + k->off);
    }
    return false;
}

static bool kafka_differs(const struct cfg *a, const struct cfg *b)
{
    if (a->n_kafka != b->n_kafka)
        return true;
    for (size_t i = 0; i < a->n_kafka; i++)
        if (a->kafka[i].scope != b->kafka[i].scope || strcmp(a->kafka[i].name, b->kafka[i].name) ||
            strcmp(a->kafka[i].value, b->kafka[i].value))
            return true;
    return false;
}

int cfg_restart_needed(const struct cfg *old_cfg, const struct cfg *new_cfg)
{
    int n = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!keys[i].reload && key_differs(old_cfg, new_cfg, &keys[i])) {
            log_warn("reload: %s changed; it takes effect only after a restart", keys[i].name);
            n++;
        }
    }
    if (kafka_differs(old_cfg, new_cfg)) {
        log_warn("reload: kafka.* settings changed; they take effect only after a restart");
        n++;
    }
    return n;
}

int cfg_copy_reloadable(struct cfg *dst, const struct cfg *src)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        if (!k->reload)
            continue;
        switch (k->type) {
        case K_STR:
        case K_FILE:
        case K_URL:
        case K_ADDR: {
            const char *v = *cstr_field(src, k);
            char *copy = v ? strdup(v) : NULL;
            if (v && !copy)
                return -1;
            free(*str_field(dst, k));
            *str_field(dst, k) = copy;
            break;
        }
        case K_INT:
            *(long *)((char *)dst + k->off) = *(const long *)((const char *)src + k->off);
            break;
        case K_DOUBLE:
            *(double *)((char *)dst + k->off) = *(const double *)((const char *)src + k->off);
            break;
        case K_LEVEL:
            *(int *)((char *)dst + k->off) = *(const int *)((const char *)src + k->off);
            break;
        }
    }
    return 0;
}
