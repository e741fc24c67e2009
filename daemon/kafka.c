/* kafka: builds the librdkafka handles from the kafka.* settings (passed
 * through unchanged, as kcat's -X does) plus the few properties bwprovd's
 * guarantees depend on, and waits for Kafka at start-up. */
#include "app.h"

#include "cred.h"
#include "log.h"

#include <systemd/sd-login.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum role { ROLE_PRODUCER, ROLE_CONSUMER, ROLE_LOADER };

static int set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(err, errlen, "kafka %s: %s", name, why);
    return -1;
}

static bool names_a_file(const char *name)
{
    size_t n = strlen(name);
    return n > 9 && strcmp(name + n - 9, ".location") == 0;
}

/* A secret property (sasl.password, ssl.key.password ...) may be given as
 * cred:NAME so it need not sit in the readable configuration file; a
 * property naming a file (ssl.key.location ...) as cred:NAME gets the
 * credential's path, since librdkafka reads that file itself. */
static int set_prop(rd_kafka_conf_t *conf, const struct cfg_kafka_prop *p, char *err, size_t errlen)
{
    bool cred = strncmp(p->value, "cred:", 5) == 0;
    if (cred && names_a_file(p->name)) {
        char path[4096];
        if (cred_path(p->value, path, sizeof(path), err, errlen) != 0)
            return -1;
        return set(conf, p->name, path, err, errlen);
    }
    if (!cfg_kafka_secret(p->name) || !cred)
        return set(conf, p->name, p->value, err, errlen);
    char *secret = cred_read(p->value, err, errlen);
    if (!secret)
        return -1;
    /* librdkafka keeps its own copy, in ordinary heap memory. */
    int rc = set(conf, p->name, secret, err, errlen);
    secmem_free(secret);
    return rc;
}

static bool user_set(const struct cfg *c, enum cfg_kafka_scope scope, const char *name)
{
    return cfg_kafka_value(c, scope, name) != NULL;
}

bool kafka_access_error(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        return true;
    default:
        return false;
    }
}

/* A refusal stays in STATUS this long after it was last seen: librdkafka
 * reports a lasting one again every few seconds. */
#define KAFKA_REFUSED_SHOW_US 30000000
#define KAFKA_REFUSED_LOG_US 60000000

void kafka_refused(struct app *a, const char *what)
{
    int64_t now = app_now_us();
    pthread_mutex_lock(&a->lock);
    bool again = strncmp(a->kafka_refused, what, sizeof(a->kafka_refused) - 1) == 0;
    bool log = !again || now - a->kafka_refused_logged_us >= KAFKA_REFUSED_LOG_US;
    snprintf(a->kafka_refused, sizeof(a->kafka_refused), "%s", what);
    a->kafka_refused_us = now;
    if (log)
        a->kafka_refused_logged_us = now;
    pthread_mutex_unlock(&a->lock);
    if (log)
        log_err("Kafka refuses bwprovd: %s (check the principal's credentials and ACLs: "
                "README \"Kafka ACLs\")",
                what);
}

bool kafka_refusal(struct app *a, int64_t now_us, char *buf, size_t cap)
{
    pthread_mutex_lock(&a->lock);
    bool recent = a->kafka_refused[0] && now_us - a->kafka_refused_us < KAFKA_REFUSED_SHOW_US;
    if (recent)
        snprintf(buf, cap, "%s", a->kafka_refused);
    pthread_mutex_unlock(&a->lock);
    return recent;
}

/* The fatal errors that mean Kafka cannot give the idempotent producer
 * (librdkafka: no broker supports it, or the cluster refuses the producer
 * id): bwprovd cannot keep its ordering and no-duplicate guarantees. */
static bool no_idempotence(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
           err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}

void kafka_fatal(struct app *a, rd_kafka_t *rk)
{
    char why[256];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(rk, why, sizeof(why));

    if (err == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID) {
        /* Another process joined with our group.instance.id: restarting
         * would only fence one of the two again, so systemd must not
         * (exit 78, RestartPreventExitStatus). */
        if (atomic_exchange(&a->fatal_status, EXIT_FENCED) != EXIT_FENCED)
            log_err("Kafka fenced this instance: another process uses the same "
                    "kafka.group.instance.id; give each instance its own (or stop the other "
                    "one), then start this one again (exit %d): %s",
                    EXIT_FENCED, why);
    } else if (rk == a->producer && no_idempotence(err)) {
        /* a restart cannot help either: exit 78, as for a configuration */
        if (atomic_exchange(&a->fatal_status, EXIT_CONFIG) != EXIT_CONFIG)
            log_err("Kafka cannot give bwprovd the idempotent producer its guarantees need (no "
                    "duplicate or reordered record on a retry): %s; it needs Apache Kafka 0.11 or "
                    "later and, before Kafka 2.8, IdempotentWrite on the cluster (README: Kafka "
                    "ACLs); bwprovd stops (exit %d)",
                    why, EXIT_CONFIG);
    } else if (!atomic_load(&a->fatal)) {
        log_err("Kafka fatal error: %s", why);
    }
    atomic_store(&a->fatal, true);
}

/* librdkafka before 2.6.1 sends its SCRAM nonce twice in the client's
 * final message; Kafka 4.0 and later check it as RFC 5802 says and answer
 * "invalid credentials" (librdkafka #4895). Debian 12 has 2.0.2: say so
 * beside a failed SCRAM authentication, the password is likely right. */
static const char *scram_hint(const struct app *a, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (rd_kafka_version() >= 0x020601ff)
        return buf;
    for (size_t i = 0; i < a->cfg.n_kafka; i++) {
        const struct cfg_kafka_prop *p = &a->cfg.kafka[i];
        if (strncmp(p->name, "sasl.mechanism", 14) == 0 && strncmp(p->value, "SCRAM", 5) == 0)
            snprintf(buf, cap,
                     "; note: librdkafka before 2.6.1 (this is %s) cannot authenticate with "
                     "SCRAM to Kafka 4.0 or later, whatever the password (librdkafka issue 4895)",
                     rd_kafka_version_str());
    }
    return buf;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct app *a = opaque;

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        kafka_fatal(a, rk);
        return;
    }
    if (kafka_access_error(err)) {
        char what[400], hint[200] = "";
        snprintf(what, sizeof(what), "%s: %s%s", rd_kafka_name(rk), reason,
                 err == RD_KAFKA_RESP_ERR__AUTHENTICATION ? scram_hint(a, hint, sizeof(hint)) : "");
        kafka_refused(a, what);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        if (!atomic_exchange(&a->kafka_down, true))
            log_write(LOG_LVL_ERR, LOG_MID_KAFKA_LOST, "Kafka unreachable: %s", reason);
        return;
    }
    log_debug("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* Whether librdkafka's statistics say the idempotent producer has its
 * producer id ("idemp_state": "Assigned"). */
static bool id_assigned(const char *json, size_t len)
{
    static const char key[] = "\"idemp_state\":";
    const char *p = memmem(json, len, key, sizeof(key) - 1);
    if (!p)
        return false;
    p += sizeof(key) - 1;
    while (p < json + len && *p == ' ')
        p++;
    return (size_t)(json + len - p) >= 10 && memcmp(p, "\"Assigned\"", 10) == 0;
}

/* Statistics arrive from librdkafka's main thread through the producer's
 * poll: they prove both are alive (watchdog), and say when the idempotent
 * producer has its id (start-up waits for it). */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct app *a = opaque;
    (void)rk;
    atomic_fetch_add(&a->beat_producer, 1);
    if (!atomic_load(&a->producer_id) && id_assigned(json, len))
        atomic_store(&a->producer_id, true);
    return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    LOG(level < LOG_LVL_ERR ? LOG_LVL_ERR : level, "librdkafka %s: %s", fac, buf);
}

/* What bwprovd's guarantees need (forced: the operator cannot override it)
 * and what it runs best with (a default the operator may change). */
struct kdefault {
    unsigned roles; /* 1 << enum role */
    bool forced;
    const char *name;
    const char *value;
};

#define P (1u << ROLE_PRODUCER)
#define C (1u << ROLE_CONSUMER)
#define L (1u << ROLE_LOADER)
static const struct kdefault kdefaults[] = {
    /* after an outage, be back within seconds (librdkafka: up to 10 s) */
    {P | C | L, false, "reconnect.backoff.max.ms", "2000"},
    {P, true, "enable.idempotence", "true"}, /* no duplicates or reordering on retry */
    {P, false, "message.timeout.ms", "0"},   /* a Kafka outage is waited out, not a loss */
    {P, false, "linger.ms", "5"},
    {P, false, "queue.buffering.max.messages", "1000000"},
    {C, false, "enable.auto.commit", "true"},
    {C, true, "enable.auto.offset.store", "false"}, /* only finished offsets are stored */
    {C, false, "auto.offset.reset", "earliest"},
    /* librdkafka prefetches up to 64 MiB per consumer by default: with a
     * backlog that is most of the daemon's memory. 2 MiB hold about 6,000
     * typical events; the pipeline's own pipeline.max_pending events cover
     * the time librdkafka takes to fetch again (consumer.c, backpressure).
     * The loader keeps more: the state table loads at start-up, as fast as
     * possible, and its buffers are given back afterwards (consumer.c). */
    {C, false, "queued.max.messages.kbytes", "2048"},
    {L, false, "queued.max.messages.kbytes", "65536"},
    {L, true, "enable.auto.commit", "false"},
    {L, true, "enable.partition.eof", "true"},
    {L, true, "auto.offset.reset", "earliest"},
};
#undef P
#undef C
#undef L

/* The default group.instance.id: stable per host and unit instance, so a
 * restarted bwprovd takes its partitions back at once, without a rebalance
 * (static membership, SPEC §3). "bwprovd-<hostname>", plus "-<name>" where
 * $BWPROVD_INSTANCE names one, or else where systemd runs bwprovd as a
 * service other than bwprovd.service (a template's bwprovd@east.service
 * gives "-bwprovd_east"): two instances on one host must not share it, or
 * the broker fences one of them. Kafka allows [A-Za-z0-9._-] and 249
 * characters; anything else becomes '_'. */
void kafka_default_instance_id(char *out, size_t cap)
{
    char host[256] = "", name[256] = "";
    const char *inst = getenv("BWPROVD_INSTANCE");
    char *unit = NULL;

    if (gethostname(host, sizeof(host)) != 0 || !host[0])
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    if (inst && *inst) {
        snprintf(name, sizeof(name), "%s", inst);
    } else if (getenv("INVOCATION_ID") && sd_pid_get_unit(0, &unit) >= 0) {
        size_t n = strlen(unit);
        if (n > 8 && strcmp(unit + n - 8, ".service") == 0)
            unit[n - 8] = '\0';
        if (strcmp(unit, "bwprovd") != 0)
            snprintf(name, sizeof(name), "%s", unit);
        free(unit);
    }
    /* 8 + 120 + 1 + 120 bytes: within Kafka's 249 whatever the names */
    snprintf(out, cap < 250 ? cap : 250, "bwprovd-%.120s%s%.120s", host, name[0] ? "-" : "", name);
    for (char *c = out; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-')
            *c = '_';
}

static int defaults(const struct cfg *c, rd_kafka_conf_t *conf, enum role role, char *err,
                    size_t errlen)
{
    enum cfg_kafka_scope scope = role == ROLE_PRODUCER ? CFG_KAFKA_PRODUCER : CFG_KAFKA_CONSUMER;
    for (size_t i = 0; i < sizeof(kdefaults) / sizeof(kdefaults[0]); i++) {
        const struct kdefault *d = &kdefaults[i];
        if (!(d->roles & (1u << role)) || (!d->forced && user_set(c, scope, d->name)))
            continue;
        if (set(conf, d->name, d->value, err, errlen) != 0)
            return -1;
    }
    if (role == ROLE_CONSUMER && !user_set(c, scope, "group.instance.id")) {
        char id[256];
        kafka_default_instance_id(id, sizeof(id));
        if (set(conf, "group.instance.id", id, err, errlen) != 0)
            return -1;
        log_info("static group membership: group.instance.id %s", id);
    }
    /* Incremental rebalances only where librdkafka's sticky assignor is
     * sound, decided by the librdkafka loaded at run time: before 2.3.0 it
     * aborts when a consumer closes before its first assignment (librdkafka
     * #4312), and before 2.6.1 it can loop forever on the main thread with
     * some orders of members and partitions (#4800). Older versions (Debian
     * 12 has 2.0.2) keep the eager default, range,roundrobin; Debian 13's
     * 2.8.0 gets cooperative-sticky. */
    const char *strategy = "partition.assignment.strategy";
    if (role == ROLE_CONSUMER && !user_set(c, scope, strategy)) {
        const char *v =
            rd_kafka_version() >= 0x020601ff ? "cooperative-sticky" : "range,roundrobin";
        if (set(conf, strategy, v, err, errlen) != 0)
            return -1;
        log_info("consumer: partition.assignment.strategy %s (librdkafka %s)", v,
                 rd_kafka_version_str());
    }
    return 0;
}

/* The kafka.* settings of role plus bwprovd's defaults. A loader (a
 * consumer that only assign()s) gets private_group as its group.id. */
static rd_kafka_conf_t *base_conf(const struct cfg *c, enum role role, const char *private_group,
                                  char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    enum cfg_kafka_scope scope = role == ROLE_PRODUCER ? CFG_KAFKA_PRODUCER : CFG_KAFKA_CONSUMER;

    for (size_t i = 0; i < c->n_kafka; i++) {
        const struct cfg_kafka_prop *p = &c->kafka[i];
        if (p->scope != CFG_KAFKA_BOTH && p->scope != scope)
            continue;
        if (role == ROLE_LOADER &&
            (strcmp(p->name, "group.id") == 0 || strcmp(p->name, "group.instance.id") == 0))
            continue; /* the loader reads every partition itself */
        if (strcmp(p->name, "group.instance.id") == 0 && !*p->value)
            continue; /* empty: static membership off */
        if (set_prop(conf, p, err, errlen) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (%s)", p->where);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    /* librdkafka wants a group.id even for assign(); the loader never joins
     * or commits, so a private name keeps it out of the real group. */
    if ((role == ROLE_LOADER && set(conf, "group.id", private_group, err, errlen) != 0) ||
        defaults(c, conf, role, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static rd_kafka_conf_t *make_conf(struct app *a, enum role role, char *err, size_t errlen)
{
    char group[64];
    snprintf(group, sizeof(group), "bwprovd-state-%.16s", a->instance_id);
    rd_kafka_conf_t *conf = base_conf(&a->cfg, role, group, err, errlen);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_opaque(conf, a);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (role == ROLE_PRODUCER) {
        rd_kafka_conf_set_dr_msg_cb(conf, consumer_dr_cb);
        rd_kafka_conf_set_stats_cb(conf, stats_cb);
        /* 200 ms: start-up waits for the first statistics that show the
         * producer id; building them costs about 0.1 ms (a few KB of JSON) */
        if (set(conf, "statistics.interval.ms", "200", err, errlen) != 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (role == ROLE_CONSUMER)
        rd_kafka_conf_set_rebalance_cb(conf, consumer_rebalance_cb);
    return conf;
}

rd_kafka_conf_t *kafka_cli_conf(const struct cfg *c, bool producer, const char *private_group,
                                char *err, size_t errlen)
{
    rd_kafka_conf_t *conf =
        base_conf(c, producer ? ROLE_PRODUCER : ROLE_LOADER, private_group, err, errlen);
    /* The daemon waits a Kafka outage out; a command gives up after
     * startup.timeout_ms, as the daemon's start does, and says so. */
    char ms[24];
    snprintf(ms, sizeof(ms), "%ld", c->startup_timeout_ms);
    if (conf && producer && !user_set(c, CFG_KAFKA_PRODUCER, "message.timeout.ms") &&
        set(conf, "message.timeout.ms", ms, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static rd_kafka_t *make(struct app *a, enum role role, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = make_conf(a, role, err, errlen);
    if (!conf)
        return NULL;
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(role == ROLE_PRODUCER ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER,
                                  conf, why, sizeof(why));
    if (!rk) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (role == ROLE_CONSUMER)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

int kafka_create(struct app *a, rd_kafka_t **loader_rk, char *err, size_t errlen)
{
    a->producer = make(a, ROLE_PRODUCER, err, errlen);
    if (!a->producer)
        return -1;
    a->consumer = make(a, ROLE_CONSUMER, err, errlen);
    if (!a->consumer)
        return -1;
    *loader_rk = make(a, ROLE_LOADER, err, errlen);
    return *loader_rk ? 0 : -1;
}

static bool topic_known(const struct rd_kafka_metadata *md, const char *name)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0 &&
            md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return true;
    return false;
}

/* A topic missing from the cluster's list of topics may exist but be
 * hidden from bwprovd's principal: ask for it alone, through the
 * consumer, whose requests never create a topic (allow.auto.create.topics
 * is false there). The broker answers TOPIC_AUTHORIZATION_FAILED then. */
static bool topic_refused(struct app *a, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(a->consumer, topic, NULL);
    if (!rkt)
        return false;
    bool refused = rd_kafka_metadata(a->consumer, 0, rkt, &md, 1000) == 0 && md->topic_cnt == 1 &&
                   md->topics[0].err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return refused;
}

int kafka_probe(struct app *a, char *why, size_t whylen)
{
    const char *topics[] = {a->cfg.topic_events, a->cfg.topic_results, a->cfg.topic_dlq,
                            a->cfg.topic_state};
    const struct rd_kafka_metadata *md = NULL;

    rd_kafka_resp_err_t e = rd_kafka_metadata(a->producer, 1, NULL, &md, 1000);
    char refused[400];
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR &&
        kafka_refusal(a, app_now_us(), refused, sizeof(refused))) {
        snprintf(why, whylen, "Kafka refuses bwprovd: %s", refused);
        return -1;
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, whylen, "Kafka unreachable: no metadata answer (%s)", rd_kafka_err2str(e));
        return -1;
    }
    const char *missing = NULL;
    for (size_t i = 0; i < 4 && !missing; i++)
        if (!topic_known(md, topics[i]))
            missing = topics[i];
    rd_kafka_metadata_destroy(md);
    if (!missing)
        return 0;
    if (topic_refused(a, missing)) {
        snprintf(why, whylen,
                 "Kafka refuses bwprovd: not authorized to describe topic %s (check the "
                 "principal's ACLs: README \"Kafka ACLs\")",
                 missing);
        return -1;
    }
    snprintf(why, whylen, "Waiting for topic %s to exist", missing);
    return -1;
}
