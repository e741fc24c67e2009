/* cli: see cli.h. */
#include "cli.h"

#include "app.h"
#include "log.h"
#include "progress.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define CLI_POLL_MS 100
/* Records queued and not yet acknowledged at most: memory stays small, and
 * an interruption stops the run within one window of records. */
#define CLI_MAX_UNACKED 1000

static volatile sig_atomic_t stop_requested;

bool cli_interrupted(void)
{
    return stop_requested != 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The first SIGINT or SIGTERM asks the command to stop where it is safe
 * (records on their way are still waited for); a second one kills it
 * (SA_RESETHAND). SIGPIPE is ignored: a closed stdout shows as a write
 * error, which ends the command like any other. Returns 0 or -1. */
static int catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    return sigaction(SIGPIPE, &sa, NULL);
}

void cli_say(const struct cli *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%sbwprovd %s %s: %s\n", c->prog_drawn ? "\n" : "", c->args.noun,
            c->args.verb ? c->args.verb : "", msg);
}

int64_t cli_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cli_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- the command line --- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: bwprovd [-c FILE] [-X key=value]... state get USERID\n"
            "       bwprovd [-c FILE] [-X key=value]... state export\n"
            "       bwprovd [-c FILE] [-X key=value]... state import FILE [--dry-run] [--force] "
            "[--skip-bad]\n"
            "       bwprovd [-c FILE] [-X key=value]... dlq list [FILTER]...\n"
            "       bwprovd [-c FILE] [-X key=value]... dlq replay [FILTER]... [--dry-run] "
            "[--force]\n"
            "FILTER: --user USERID, --kind KIND, --since TIME, --until TIME\n"
            "TIME: now, 30s, 15m, 2h, 7d, 1w (ago), 2026-11-26, 2026-11-26T10:00:00Z, "
            "...+01:00\n"
            "Exit status: 0 done, 1 not found or not all done (refused, interrupted),\n"
            "64 usage, 69 Kafka unreachable, 78 configuration error. See bwprovd(8).\n");
}

enum {
    O_DRY = 256,
    O_FORCE,
    O_USER,
    O_KIND,
    O_SINCE,
    O_UNTIL,
    O_SKIP_BAD,
};
#define ALLOW_DRY (1u << 0)
#define ALLOW_FORCE (1u << 1)
#define ALLOW_FILTER (1u << 2)
#define ALLOW_SKIP_BAD (1u << 3)

struct verb {
    const char *noun, *verb;
    const char *operand; /* NULL: none */
    unsigned allow;
    int (*run)(struct cli *c);
    bool writes; /* needs a producer, unless a dry run */
};

static const struct verb verbs[] = {
    {"state", "get", "USERID", 0, cli_state_get, false},
    {"state", "export", NULL, 0, cli_state_export, false},
    {"state", "import", "FILE", ALLOW_DRY | ALLOW_FORCE | ALLOW_SKIP_BAD, cli_state_import, true},
    {"dlq", "list", NULL, ALLOW_FILTER, cli_dlq_list, false},
    {"dlq", "replay", NULL, ALLOW_FILTER | ALLOW_DRY | ALLOW_FORCE, cli_dlq_replay, true},
};

static const struct verb *find_verb(const char *noun, const char *verb)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].noun, noun) == 0 && verb && strcmp(verbs[i].verb, verb) == 0)
            return &verbs[i];
    return NULL;
}

/* What main() parsed before the noun, plus the command's own -c and -X. */
struct cli_config {
    const char *path;
    char **overrides;
    size_t n_overrides;
};

static int add_override(struct cli_config *cc, char *kv)
{
    char **n = realloc(cc->overrides, (cc->n_overrides + 1) * sizeof(*n));
    if (!n)
        return -1;
    cc->overrides = n;
    cc->overrides[cc->n_overrides++] = kv;
    return 0;
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bwprovd: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    usage(stderr);
    return EXIT_USAGE;
}

static int time_opt(const char *opt, const char *value, int64_t *ms, bool *has)
{
    if (dq_parse_time(value, cli_epoch_ms(), ms) != 0) {
        fprintf(stderr, "bwprovd: %s: cannot read the time '%s'\n", opt, value);
        usage(stderr);
        return EXIT_USAGE;
    }
    *has = true;
    return -1;
}

/* One option of the command; returns -1 to go on, else an exit status. */
static int one_option(int o, struct cli_args *a, unsigned *seen, struct cli_config *cc)
{
    switch (o) {
    case 'c':
        cc->path = optarg;
        return -1;
    case 'X':
        return add_override(cc, optarg) == 0 ? -1 : CLI_INCOMPLETE;
    case 'h':
        usage(stdout);
        return CLI_OK;
    case O_DRY:
        *seen |= ALLOW_DRY;
        a->dry_run = true;
        return -1;
    case O_FORCE:
        *seen |= ALLOW_FORCE;
        a->force = true;
        return -1;
    case O_SKIP_BAD:
        *seen |= ALLOW_SKIP_BAD;
        a->skip_bad = true;
        return -1;
    case O_USER:
        *seen |= ALLOW_FILTER;
        a->filter.user = optarg;
        return *optarg ? -1 : bad_usage("--user needs a userId");
    case O_KIND:
        *seen |= ALLOW_FILTER;
        a->filter.kind = optarg;
        return dq_kind_known(optarg) ? -1 : bad_usage("--kind: one of %s", dq_kind_list);
    case O_SINCE:
        *seen |= ALLOW_FILTER;
        return time_opt("--since", optarg, &a->filter.since_ms, &a->filter.has_since);
    case O_UNTIL:
        *seen |= ALLOW_FILTER;
        return time_opt("--until", optarg, &a->filter.until_ms, &a->filter.has_until);
    default:
        usage(stderr);
        return EXIT_USAGE;
    }
}

static int check_operands(const struct verb *v, struct cli_args *a, int argc, char **argv,
                          unsigned seen)
{
    int want = v->operand ? 1 : 0;
    if (seen & ~v->allow)
        return bad_usage("an option that %s does not take", v->verb);
    if (argc - optind != want) {
        fprintf(stderr, "bwprovd: %s %s takes %s\n", v->noun, v->verb,
                v->operand ? v->operand : "no operand");
        usage(stderr);
        return EXIT_USAGE;
    }
    a->arg = want ? argv[optind] : NULL;
    if (a->arg && !*a->arg)
        return bad_usage("%s must not be empty", v->operand);
    return -1;
}

/* argv: "bwprovd", the verb, options and operands (the noun was taken). */
static int parse(int argc, char **argv, struct cli_args *a, struct cli_config *cc,
                 const struct verb **v)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},    {"help", no_argument, NULL, 'h'},
        {"dry-run", no_argument, NULL, O_DRY},       {"force", no_argument, NULL, O_FORCE},
        {"skip-bad", no_argument, NULL, O_SKIP_BAD}, {"user", required_argument, NULL, O_USER},
        {"kind", required_argument, NULL, O_KIND},   {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL}, {NULL, 0, NULL, 0},
    };
    unsigned seen = 0;
    int o, rc;
    optind = 0; /* glibc: start afresh (main() used getopt already) */
    while ((o = getopt_long(argc, argv, "c:X:h", longopts, NULL)) != -1)
        if ((rc = one_option(o, a, &seen, cc)) >= 0)
            return rc;
    /* the verb is the first operand (options may come before it) */
    a->verb = optind < argc ? argv[optind] : NULL;
    *v = find_verb(a->noun, a->verb);
    if (!*v)
        return a->verb ? bad_usage("unknown command '%s %s'", a->noun, a->verb)
                       : bad_usage("%s: which command?", a->noun);
    optind++;
    if (a->filter.has_since && a->filter.has_until && a->filter.until_ms <= a->filter.since_ms)
        return bad_usage("--until is not after --since");
    return check_operands(*v, a, argc, argv, seen);
}

/* --- Kafka handles --- */

static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    /* Connection failures are said once, by the command, in its words. */
    if (log_get_level() >= LOG_LVL_DEBUG)
        fprintf(stderr, "bwprovd: librdkafka %s: %s\n", fac, buf);
}

static void kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct cli *c = opaque;
    (void)rk;
    snprintf(c->kafka_err, sizeof(c->kafka_err), "%s: %s",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct cli *c = opaque;
    (void)rk;
    if (m->err) {
        c->failed++;
        c->produce_err = m->err;
    } else {
        c->acked++;
    }
    if (c->on_ack)
        c->on_ack(c, m);
}

static rd_kafka_t *make_handle(struct cli *c, bool producer)
{
    char err[512], group[64];
    snprintf(group, sizeof(group), "bwprovd-cli-%.16s", c->writer);
    rd_kafka_conf_t *conf = kafka_cli_conf(&c->cfg, producer, group, err, sizeof(err));
    if (!conf) {
        cli_say(c, "configuration error: %s", err);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    rd_kafka_conf_set_error_cb(conf, kafka_error);
    if (producer)
        rd_kafka_conf_set_dr_msg_cb(conf, delivered);
    rd_kafka_t *rk =
        rd_kafka_new(producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        cli_say(c, "configuration error: kafka: %s", err);
        return NULL;
    }
    if (!producer) /* errors and logs come through the consumer's poll */
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void make_writer_id(struct cli *c)
{
    unsigned char r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = (uint64_t)cli_now_us() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &t, sizeof(t));
        memcpy(r + 8, &t, sizeof(t));
    }
    for (int i = 0; i < 16; i++)
        snprintf(c->writer + 2 * i, 3, "%02x", r[i]);
}

static int setup(struct cli *c, const struct verb *v, const struct cli_config *cc)
{
    char err[1024];
    cfg_init(&c->cfg);
    if (cfg_load(&c->cfg, cc->path, cc->overrides, cc->n_overrides, err, sizeof(err)) != 0) {
        fprintf(stderr, "bwprovd: configuration error: %s\n", err);
        return EXIT_CONFIG;
    }
    log_init();
    log_set_level(c->cfg.log_level);
    make_writer_id(c);
    c->tty = isatty(STDERR_FILENO) == 1;
    if (catch_signals() != 0) /* then a signal ends the command at once: still safe */
        cli_say(c, "cannot catch SIGINT/SIGTERM: %s", strerror(errno));
    c->consumer = make_handle(c, false);
    if (!c->consumer)
        return EXIT_CONFIG;
    if (v->writes && !c->args.dry_run && !(c->producer = make_handle(c, true)))
        return EXIT_CONFIG;
    return CLI_OK;
}

static int teardown(struct cli *c, int rc)
{
    /* Everything produced was waited for (cli_flush): a record left now is
     * one an early end (an error) gave up on, and was said then. */
    if (c->producer && rd_kafka_flush(c->producer, 1000) != RD_KAFKA_RESP_ERR_NO_ERROR &&
        rc == CLI_OK)
        rc = CLI_INCOMPLETE;
    if (c->producer)
        rd_kafka_destroy(c->producer);
    /* A consumer without a group has no offsets to commit and no group to
     * leave: its close cannot fail in a way that matters here. */
    if (c->consumer && rd_kafka_consumer_close(c->consumer) != RD_KAFKA_RESP_ERR_NO_ERROR &&
        log_get_level() >= LOG_LVL_DEBUG)
        cli_say(c, "closing the consumer: %s", c->kafka_err);
    if (c->consumer)
        rd_kafka_destroy(c->consumer);
    cfg_free(&c->cfg);
    if (fflush(stdout) != 0 && rc == CLI_OK) {
        cli_say(c, "writing the output failed");
        rc = CLI_INCOMPLETE;
    }
    return rc;
}

int cli_main(const char *config, char *const *overrides, size_t n_overrides, int argc, char **argv)
{
    struct cli cli;
    struct cli_config cc = {config, NULL, 0};
    const struct verb *v = NULL;
    int rc = -1;

    memset(&cli, 0, sizeof(cli));
    char *noun = argv[0];
    cli.args.noun = noun;
    for (size_t i = 0; i < n_overrides && rc < 0; i++)
        if (add_override(&cc, overrides[i]) != 0)
            rc = CLI_INCOMPLETE;
    static char prog[] = "bwprovd";
    argv[0] = prog; /* getopt's messages name the program */
    if (rc < 0)
        rc = parse(argc, argv, &cli.args, &cc, &v);
    argv[0] = noun;
    if (rc < 0) {
        rc = setup(&cli, v, &cc);
        if (rc == CLI_OK)
            rc = v->run(&cli);
        rc = teardown(&cli, rc);
    }
    free(cc.overrides);
    return rc;
}

/* --- reading a topic to its end --- */

struct tr *cli_topic(struct cli *c, const char *topic, int *status)
{
    char err[512];
    int timeout = (int)c->cfg.startup_timeout_ms;
    struct tr *t = tr_new(c->consumer, topic, timeout, err, sizeof(err));
    *status = EXIT_UNAVAILABLE;
    if (!t) {
        cli_say(c, "%s%s%s", err, c->kafka_err[0] ? "; " : "", c->kafka_err);
        return NULL;
    }
    rd_kafka_resp_err_t e = tr_set_target(t, c->consumer, timeout);
    if (e) {
        cli_say(c, "Kafka did not say where %s ends: %s", topic, rd_kafka_err2str(e));
        tr_free(t);
        return NULL;
    }
    *status = CLI_OK;
    return t;
}

static int read_error(struct cli *c, const rd_kafka_message_t *m)
{
    /* librdkafka looks for the coordinator of the private group although
     * the command never joins or commits: it needs no ACL on that group,
     * so a refusal there refuses nothing it does (as for the loader). */
    if (!kafka_access_error(m->err) || m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        snprintf(c->kafka_err, sizeof(c->kafka_err), "%s", rd_kafka_message_errstr(m));
        return CLI_OK;
    }
    cli_say(c, "Kafka refuses to let bwprovd read %s: %s",
            m->rkt ? rd_kafka_topic_name(m->rkt) : "a topic", rd_kafka_message_errstr(m));
    return EXIT_UNAVAILABLE;
}

static int one_record(struct cli *c, struct tr *t, const rd_kafka_message_t *m, cli_record_fn fn,
                      void *arg)
{
    int rc = CLI_OK;
    if (m->err)
        return read_error(c, m);
    if (tr_below_target(t, m)) /* later records are not part of this reading */
        rc = fn(c, m, arg);
    tr_done(t, m);
    return rc;
}

int cli_read(struct cli *c, struct tr *t, const int64_t *start, const char *what, cli_record_fn fn,
             void *arg)
{
    uint64_t done, total, last = UINT64_MAX;
    int64_t moved_us = cli_now_us(), limit_us = c->cfg.startup_timeout_ms * 1000;
    int rc = CLI_OK;
    rd_kafka_resp_err_t e = tr_assign(t, start);
    if (e) {
        cli_say(c, "cannot read %s: %s", tr_topic(t), rd_kafka_err2str(e));
        return EXIT_UNAVAILABLE;
    }
    tr_progress(t, &done, &total);
    cli_prog_begin(c, what, total);
    while (rc == CLI_OK && !tr_caught_up(t)) {
        rd_kafka_message_t *m = tr_poll(t, CLI_POLL_MS);
        if (m) {
            rc = one_record(c, t, m, fn, arg);
            rd_kafka_message_destroy(m);
        }
        tr_progress(t, &done, &total);
        if (done != last) {
            last = done;
            moved_us = cli_now_us();
            cli_prog_tick(c, done);
        } else if (rc == CLI_OK && cli_now_us() - moved_us > limit_us) {
            cli_say(c, "Kafka stopped answering while %s was read (startup.timeout_ms)%s%s",
                    tr_topic(t), c->kafka_err[0] ? ": " : "", c->kafka_err);
            rc = EXIT_UNAVAILABLE;
        }
        if (rc == CLI_OK && cli_interrupted())
            rc = CLI_INCOMPLETE;
    }
    cli_prog_end(c, done);
    e = rd_kafka_assign(c->consumer, NULL); /* the next reading assigns its own */
    if (e && rc == CLI_OK) {
        cli_say(c, "cannot stop reading %s: %s", tr_topic(t), rd_kafka_err2str(e));
        rc = EXIT_UNAVAILABLE;
    }
    return rc;
}

/* --- producing --- */

int cli_produce(struct cli *c, const char *topic, int32_t partition, void *key, size_t keylen,
                void *value, size_t len, rd_kafka_headers_t *hdrs, void *opaque)
{
    while (!cli_interrupted() && c->produced - c->acked - c->failed >= CLI_MAX_UNACKED) {
        rd_kafka_poll(c->producer, CLI_POLL_MS);
        cli_prog_tick(c, c->acked);
    }
    if (cli_interrupted()) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        cli_say(c, "interrupted: the records already queued are still waited for; the same "
                   "command run again goes on from there");
        return CLI_INCOMPLETE;
    }
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(c->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE(value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                              RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            c->produced++;
            rd_kafka_poll(c->producer, 0); /* delivery reports as they come */
            return CLI_OK;
        }
        /* A full local queue drains as Kafka acknowledges (or, Kafka
         * gone, as message.timeout.ms fails the records). */
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !cli_interrupted()) {
            rd_kafka_poll(c->producer, CLI_POLL_MS);
            continue;
        }
        if (hdrs) /* not taken over when producev fails */
            rd_kafka_headers_destroy(hdrs);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            cli_say(c, "cannot produce to %s: %s", topic, rd_kafka_err2str(e));
        return CLI_INCOMPLETE;
    }
}

static bool kafka_gone(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT ||
           e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           kafka_access_error(e);
}

int cli_flush(struct cli *c)
{
    while (c->acked + c->failed < c->produced) {
        rd_kafka_poll(c->producer, CLI_POLL_MS);
        cli_prog_tick(c, c->acked);
    }
    cli_prog_end(c, c->acked);
    if (!c->failed)
        return CLI_OK;
    cli_say(c, "%" PRIu64 " of %" PRIu64 " record(s) not acknowledged by Kafka: %s%s%s", c->failed,
            c->produced, rd_kafka_err2str(c->produce_err), c->kafka_err[0] ? "; " : "",
            c->kafka_err);
    return kafka_gone(c->produce_err) ? EXIT_UNAVAILABLE : CLI_INCOMPLETE;
}

/* --- progress --- */

void cli_prog_begin(struct cli *c, const char *what, uint64_t total)
{
    c->prog_what = what;
    c->prog_total = total;
    c->prog_start_us = c->prog_last_us = cli_now_us();
    c->prog_drawn = false;
}

static void draw(struct cli *c, uint64_t done, int64_t now, bool last)
{
    char line[256];
    prog_format(line, sizeof(line), c->prog_what, done, c->prog_total,
                (double)(now - c->prog_start_us) / 1e6);
    /* \r and "erase to the end of the line": the line is redrawn in place */
    fprintf(stderr, "\r%s\033[K%s", line, last ? "\n" : "");
    fflush(stderr);
    c->prog_drawn = !last;
    c->prog_last_us = now;
}

void cli_prog_tick(struct cli *c, uint64_t done)
{
    int64_t now;
    if (!c->tty || (now = cli_now_us()) - c->prog_last_us < PROG_INTERVAL_US)
        return;
    draw(c, done, now, false);
}

void cli_prog_end(struct cli *c, uint64_t done)
{
    if (c->tty && (c->prog_drawn || c->prog_total >= PROG_MIN_RECORDS))
        draw(c, done, cli_now_us(), true);
    c->prog_drawn = false;
}
