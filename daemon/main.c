/* bwprovd: keeps Cisco Webex in step with BroadWorks. main() wires the
 * modules together and runs the main thread: signals (signalfd), STATUS,
 * sd_notify, reload and orderly shutdown. */
#include "app.h"

#include "cfg.h"
#include "cli.h"
#include "journal.h"
#include "classify.h"
#include "cred.h"
#include "log.h"
#include "notify.h"
#include "ratelimit.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define STATUS_EVERY_US 2000000
#define TICK_MS 250

struct opts {
    const char *config;
    char **overrides;
    size_t n_overrides;
    bool check;
    int cli; /* argv index of an operator subcommand's noun, 0: none */
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: bwprovd [-c FILE] [-X key=value]... [--check-config] [--version] "
                 "[--help]\n"
                 "  -c, --config FILE   configuration file (default " CFG_DEFAULT_PATH ")\n"
                 "  -X key=value        override one configuration key\n"
                 "      --check-config  validate, print the effective configuration, exit\n"
                 "      --version       print the version and exit\n"
                 "Operator subcommands (same configuration, safe while daemons run):\n"
                 "  bwprovd [-c FILE] [-X key=value]... state get USERID | state export |\n"
                 "          state import FILE [--dry-run] [--force]\n"
                 "  bwprovd [-c FILE] [-X key=value]... dlq list [FILTER]... |\n"
                 "          dlq replay [FILTER]... [--dry-run] [--force]\n"
                 "  (bwprovd state --help, bwprovd dlq --help)\n"
                 "See bwprovd(8) and bwprovd.conf(5).\n");
}

/* Returns -1 to continue, else an exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    o->config = CFG_DEFAULT_PATH;
    /* '+': stop at the first operand, which may be a subcommand with
     * options of its own (cli.c parses those). */
    while ((c = getopt_long(argc, argv, "+c:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 'X': {
            char **n = realloc(o->overrides, (o->n_overrides + 1) * sizeof(*n));
            if (!n)
                return 1;
            o->overrides = n;
            o->overrides[o->n_overrides++] = optarg;
            break;
        }
        case 'C':
            o->check = true;
            break;
        case 'V':
            printf("bwprovd %s\n", BWPROVD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc && !o->check &&
        (strcmp(argv[optind], "state") == 0 || strcmp(argv[optind], "dlq") == 0)) {
        o->cli = optind;
        return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "bwprovd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    return -1;
}

static long ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

static int load_config(const struct opts *o, struct cfg *c)
{
    char err[1024];
    cfg_init(c);
    if (cfg_load(c, o->config, o->overrides, o->n_overrides, err, sizeof(err)) != 0) {
        fprintf(stderr, "bwprovd: configuration error: %s\n", err);
        return -1;
    }
    return 0;
}

static void apply_reloadable(struct app *a)
{
    log_set_level(a->cfg.log_level);
    atomic_store(&a->max_attempts, a->cfg.retry_max_attempts);
    atomic_store(&a->backoff_initial_ms, a->cfg.retry_backoff_initial_ms);
    atomic_store(&a->backoff_max_ms, a->cfg.retry_backoff_max_ms);
    atomic_store(&a->max_wait_ms, a->cfg.retry_max_wait_ms);
    atomic_store(&a->lookup_wait_ms, a->cfg.state_lookup_wait_ms);
}

static void make_instance_id(struct app *a)
{
    unsigned char r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = (uint64_t)app_now_us() ^ (uint64_t)getpid();
        memcpy(r, &t, sizeof(t));
        memcpy(r + 8, &t, sizeof(t));
    }
    for (int i = 0; i < 16; i++)
        snprintf(a->instance_id + 2 * i, 3, "%02x", r[i]);
}

/* --- STATUS --- */

/* "Kafka unreachable" ends when Kafka answers again, with or without
 * traffic to prove it. */
static void check_kafka_back(struct app *a)
{
    char why[256];
    if (atomic_load(&a->kafka_down) && kafka_probe(a, why, sizeof(why)) == 0 &&
        atomic_exchange(&a->kafka_down, false))
        log_write(LOG_LVL_NOTICE, LOG_MID_KAFKA_BACK, "Kafka reachable again");
}

static void send_status(struct app *a, uint64_t *last_done, int64_t *last_us)
{
    char s[1024];
    int64_t now = app_now_us();
    uint64_t done = atomic_load(&a->n_done_total);
    double secs = (double)(now - *last_us) / 1e6;
    double rate = secs > 0 ? (double)(done - *last_done) / secs : 0;
    *last_done = done;
    *last_us = now;

    struct health h;
    char lag[24];
    health_read(a, &h);
    hl_lag(&h.v, atomic_load(&a->lag), lag, sizeof(lag));
    int n = snprintf(s, sizeof(s),
                     "%lu ok, %lu failed, %lu rejected, %lu in flight, lag %s, "
                     "%.0f ev/s",
                     atomic_load(&a->n_ok), atomic_load(&a->n_failed), atomic_load(&a->n_rejected),
                     atomic_load(&a->n_inflight), lag, rate);
    int64_t gate = atomic_load(&a->not_before_us);
    if (atomic_load(&a->kafka_down) && n > 0 && (size_t)n < sizeof(s))
        n += snprintf(s + n, sizeof(s) - (size_t)n, "; Kafka unreachable");
    if (gate > now && n > 0 && (size_t)n < sizeof(s))
        n += snprintf(s + n, sizeof(s) - (size_t)n, "; Webex 429: waiting %llds",
                      (long long)((gate - now + 999999) / 1000000));
    double allowed = rl_current(a->rl, now);
    if (allowed > 0 && (a->cfg.webex_rate_limit == 0 || allowed < a->cfg.webex_rate_limit) &&
        n > 0 && (size_t)n < sizeof(s)) /* slowed down after 429s */
        n += snprintf(s + n, sizeof(s) - (size_t)n, "; rate limited to %.0f/s", allowed);
    char why[400];
    if (n > 0 && (size_t)n < sizeof(s) && kafka_refusal(a, now, why, sizeof(why)))
        n += snprintf(s + n, sizeof(s) - (size_t)n, "; Kafka refuses: %s", why);
    long unacked = journal_unacked(a->journal);
    if (n > 0 && (size_t)n < sizeof(s) && journal_failing(a->journal, why, sizeof(why)))
        n += snprintf(s + n, sizeof(s) - (size_t)n,
                      "; holding state-changing requests: state journal failing (%s)", why);
    else if (n > 0 && (size_t)n < sizeof(s) && unacked >= a->cfg.state_max_unacknowledged)
        n += snprintf(s + n, sizeof(s) - (size_t)n,
                      "; holding state-changing requests: %ld state records not acknowledged "
                      "by Kafka",
                      unacked);
    if (n > 0 && (size_t)n < sizeof(s))
        hl_reasons(&h.v, s, (size_t)n, sizeof(s));
    ntf_status(s);
}

/* The last STATUS before a fatal error ends the process: why, where it
 * is known (Kafka refused something), else where to look. */
static void fatal_status(struct app *a)
{
    char why[400], s[500];
    if (kafka_refusal(a, app_now_us(), why, sizeof(why)))
        snprintf(s, sizeof(s), "Stopped: Kafka refuses: %s", why);
    else
        snprintf(s, sizeof(s), "Stopped after a fatal error (see the journal)");
    ntf_status(s);
}

/* --- watchdog --- */

/* A thread counts as hung when its counter has not moved for a whole
 * watchdog interval (the producer's moves five times a second). */
struct watchdog {
    uint64_t usec; /* WATCHDOG_USEC; 0: off */
    int64_t next_us;
    int n;
    unsigned long last[APP_MAX_WORKERS + 3];
    int64_t moved_us[APP_MAX_WORKERS + 3];
    bool reported;
};

static unsigned long beat(struct app *a, int i)
{
    if (i == 0)
        return atomic_load(&a->beat_consumer);
    if (i == 1)
        return atomic_load(&a->beat_loader);
    if (i == 2)
        return atomic_load(&a->beat_producer);
    return atomic_load(&a->beat_worker[i - 3]);
}

static const char *beat_name(int i)
{
    static const char *const names[] = {"consumer", "state loader", "producer"};
    return i < 3 ? names[i] : "HTTP worker";
}

static void watchdog_init(struct app *a, struct watchdog *w)
{
    memset(w, 0, sizeof(*w));
    w->usec = ntf_watchdog_usec();
    w->n = 3 + a->n_engines;
    int64_t now = app_now_us();
    for (int i = 0; i < w->n; i++) {
        w->last[i] = beat(a, i);
        w->moved_us[i] = now;
    }
    if (w->usec)
        log_info("watchdog: pinging every %llu ms while all threads make progress",
                 (unsigned long long)(w->usec / 2000));
}

static void watchdog_tick(struct app *a, struct watchdog *w, int64_t now)
{
    if (!w->usec || now < w->next_us)
        return;
    w->next_us = now + (int64_t)(w->usec / 2);
    int stalled = -1;
    for (int i = 0; i < w->n; i++) {
        unsigned long b = beat(a, i);
        int64_t limit = (int64_t)w->usec < 3000000 && i == 2 ? 3000000 : (int64_t)w->usec;
        if (b != w->last[i]) {
            w->last[i] = b;
            w->moved_us[i] = now;
        } else if (now - w->moved_us[i] >= limit && stalled < 0) {
            stalled = i;
        }
    }
    if (stalled < 0) {
        ntf_watchdog();
        w->reported = false;
    } else if (!w->reported) {
        log_err("watchdog: the %s thread made no progress for %lld ms; not pinging systemd",
                beat_name(stalled), (long long)(now - w->moved_us[stalled]) / 1000);
        w->reported = true;
    }
}

/* --- reload --- */

static void reload(struct app *a, const struct opts *o)
{
    struct cfg next;
    char err[1024];

    ntf_reloading();
    log_notice("reloading %s", o->config);
    cfg_init(&next);
    if (cfg_load(&next, o->config, o->overrides, o->n_overrides, err, sizeof(err)) != 0) {
        log_err("reload failed, keeping the current configuration: %s", err);
        cfg_free(&next);
        ntf_ready();
        return;
    }
    next.pipeline_workers = next.pipeline_workers ? next.pipeline_workers : ncpus();
    cfg_restart_needed(&a->cfg, &next);
    if (cfg_copy_reloadable(&a->cfg, &next) != 0)
        log_err("reload: out of memory; some settings keep their old value");
    apply_reloadable(a);
    rl_set_rate(a->rl, a->cfg.webex_rate_limit, app_now_us());
    token_reload(a->token, &next);
    cfg_free(&next);
    ntf_ready();
}

/* --- main loop --- */

static int signals_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    sigaddset(&set, SIGUSR1);
    /* Blocked before any thread starts, so every thread inherits the mask
     * and only signalfd sees them. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    sigdelset(&set, SIGPIPE);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void handle_signals(struct app *a, int sfd, const struct opts *o)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            reload(a, o);
        } else if (si.ssi_signo == SIGUSR1) {
#ifdef BWPROVD_DEBUG_HOOKS
            /* test hook, off unless $BWPROVD_DEBUG_HANG was set at start */
            if (getenv("BWPROVD_DEBUG_HANG"))
                atomic_store(&a->debug_hang, true);
#endif
        } else if (!atomic_load(&a->stopping)) {
            ntf_stopping();
            log_notice("signal %u: stopping", si.ssi_signo);
            atomic_store(&a->stopping, true);
        }
    }
}

static void run(struct app *a, int sfd, const struct opts *o)
{
    uint64_t last_done = 0;
    int64_t last_us = app_now_us(), next_status = 0;
    /* a stop may take webex.timeout_ms for the requests on the wire and
     * shutdown.grace_ms for their records */
    int64_t stop_us = (a->cfg.webex_timeout_ms + a->cfg.shutdown_grace_ms) * 1000;
    struct watchdog w;

    watchdog_init(a, &w);
    send_status(a, &last_done, &last_us); /* right away: not the start-up text */
    next_status = app_now_us() + STATUS_EVERY_US;
    while (!atomic_load(&a->consumer_done)) {
        struct pollfd p = {sfd, POLLIN, 0};
        if (poll(&p, 1, TICK_MS) > 0)
            handle_signals(a, sfd, o);
        int64_t now = app_now_us();
        watchdog_tick(a, &w, now);
        if (atomic_load(&a->stopping) && now >= next_status) {
            /* keep systemd's stop timeout ahead of the drain */
            ntf_extend_timeout((uint64_t)stop_us + 5000000);
        }
        if (now >= next_status) {
            check_kafka_back(a);
            health_tick(a);
            send_status(a, &last_done, &last_us);
            next_status = now + STATUS_EVERY_US;
        }
    }
}

/* --- start and stop --- */

/* Waits up to startup.timeout_ms for Kafka, saying why in STATUS=, while
 * still answering SIGTERM. */
static int wait_kafka(struct app *a, int sfd, const struct opts *o)
{
    int64_t deadline = app_now_us() + a->cfg.startup_timeout_ms * 1000;
    char why[512], last[512] = "";

    ntf_status("Waiting for Kafka to answer a metadata request");
    while (!atomic_load(&a->stopping)) {
        /* the error callback (a refused authentication) runs in this poll;
         * later the consumer thread serves the producer's callbacks */
        rd_kafka_poll(a->producer, 0);
        if (kafka_probe(a, why, sizeof(why)) == 0) {
            atomic_store(&a->kafka_seen, true);
            return 0;
        }
        /* let systemd's start timeout follow startup.timeout_ms */
        ntf_extend_timeout((uint64_t)(deadline - app_now_us()) + 10000000);
        if (strcmp(why, last) != 0) {
            ntf_status(why);
            log_warn("%s", why);
            snprintf(last, sizeof(last), "%s", why);
        }
        if (app_now_us() >= deadline) {
            log_err("Kafka not ready within startup.timeout_ms (%ld ms): %s",
                    a->cfg.startup_timeout_ms, why);
            char s[600];
            snprintf(s, sizeof(s), "Kafka not ready at start-up: %s", why);
            ntf_status(s);
            return -1;
        }
        struct pollfd p = {sfd, POLLIN, 0};
        if (poll(&p, 1, 500) > 0)
            handle_signals(a, sfd, o);
    }
    return -1;
}

/* What a previous run journaled and Kafka never acknowledged goes to the
 * state topic before any event runs: the table first catches up with the
 * topic, so only what the topic lacks is published. Bounded by
 * startup.timeout_ms; answers SIGTERM. */
static int replay_journal(struct app *a, int sfd, const struct opts *o)
{
    size_t left = journal_left(a->journal);
    if (!left)
        return 0;
    int64_t deadline = app_now_us() + a->cfg.startup_timeout_ms * 1000;
    bool barrier = false;
    ntf_status("Reading the state topic before publishing the state journal");
    /* systemd's start timeout covers this wait too (as in wait_kafka) */
    ntf_extend_timeout((uint64_t)a->cfg.startup_timeout_ms * 1000 + 10000000);
    while (!atomic_load(&a->stopping) && app_now_us() < deadline) {
        if (!barrier)
            barrier = loader_set_barrier(a) == 0;
        if (barrier && loader_caught_up(a)) {
            size_t n = outcome_replay_journal(a);
            log_notice("state journal: %zu entr%s left by the previous run; %zu record(s) the "
                       "state topic lacked published again",
                       left, left == 1 ? "y" : "ies", n);
            return 0;
        }
        struct pollfd p = {sfd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0)
            handle_signals(a, sfd, o);
    }
    if (atomic_load(&a->stopping))
        return 0;
    log_err("the state topic could not be read within startup.timeout_ms; the state journal "
            "is kept for the next start");
    ntf_status("The state topic could not be read within startup.timeout_ms (see the journal)");
    return -1;
}

/* No event is taken before the idempotent producer has its producer id:
 * without it bwprovd's records could be duplicated or reordered on a
 * retry, and a broker that cannot give one (too old, or the cluster
 * refuses it) is a fatal error (kafka_fatal: exit 78). The id comes
 * soon after Kafka answers; the next statistics (every 200 ms) say so.
 * Returns 0, or the exit status. */
static int wait_producer_id(struct app *a, int sfd, const struct opts *o)
{
    int64_t deadline = app_now_us() + a->cfg.startup_timeout_ms * 1000;
    ntf_status("Waiting for Kafka to give the idempotent producer its id");
    while (!atomic_load(&a->stopping) && !atomic_load(&a->fatal)) {
        rd_kafka_poll(a->producer, 0); /* its error and statistics callbacks */
        if (atomic_load(&a->producer_id))
            return 0;
        if (app_now_us() >= deadline) {
            log_err("Kafka gave the idempotent producer no producer id within "
                    "startup.timeout_ms (%ld ms)",
                    a->cfg.startup_timeout_ms);
            ntf_status("Kafka gave the idempotent producer no id at start-up (see the journal)");
            return EXIT_UNAVAILABLE;
        }
        struct pollfd p = {sfd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0)
            handle_signals(a, sfd, o);
    }
    if (atomic_load(&a->stopping) && !atomic_load(&a->fatal))
        return 0;
    fatal_status(a);
    return atomic_load(&a->fatal_status) ? atomic_load(&a->fatal_status) : EXIT_FATAL;
}

static int start(struct app *a, rd_kafka_t *loader_rk, int sfd, const struct opts *o)
{
    int rc;
    if (wait_kafka(a, sfd, o) != 0) {
        rd_kafka_destroy(loader_rk);
        return atomic_load(&a->stopping) ? 0 : EXIT_UNAVAILABLE;
    }
    if (loader_start(a, loader_rk) != 0)
        return EXIT_UNAVAILABLE;
    if ((rc = wait_producer_id(a, sfd, o)) != 0) /* while the state table loads */
        return rc;
    if (replay_journal(a, sfd, o) != 0)
        return EXIT_UNAVAILABLE;
    if (atomic_load(&a->stopping))
        return 0;
    if (engines_start(a) != 0 || consumer_start(a) != 0)
        return 1;
    return 0;
}

static void free_scheduled(struct ks_job *kj)
{
    job_free((struct job *)kj);
}

static void log_journal_stats(struct app *a)
{
    uint64_t entries, syncs, us;
    if (!a->journal)
        return;
    journal_stats(a->journal, &entries, &syncs, &us);
    log_notice("state journal: %" PRIu64 " entries in %" PRIu64 " fdatasync calls (%" PRIu64
               " us each on average)",
               entries, syncs, syncs ? us / syncs : 0);
}

static void shutdown_all(struct app *a)
{
    consumer_join(a);
    if (a->engines)
        engines_stop(a);
    /* what waits for the disk is handed on; then Kafka gets a last moment
     * (the stop already waited shutdown.grace_ms: the journal keeps what
     * Kafka did not take) */
    journal_stop(a->journal);
    if (a->producer) {
        if (rd_kafka_flush(a->producer, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_warn("records not acknowledged at exit; their events are replayed, and the state "
                     "journal publishes their state changes at the next start");
            rd_kafka_purge(a->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(a->producer, 100);
        }
    }
    log_journal_stats(a);
    loader_stop(a);
    if (a->ks) { /* what the workers never took */
        for (struct job *j = pipe_take(a, INT32_MAX); j;) {
            struct job *next = j->next;
            job_free(j);
            j = next;
        }
        ks_clear(a->ks, free_scheduled);
    }
    /* A consumer whose close Kafka never confirmed is left to the process's
     * exit: librdkafka 2.0's destroy then waits for the group coordinator
     * without a limit (its main thread spinning), however it is asked. */
    if (a->consumer && (!a->cons || consumer_closed(a)))
        rd_kafka_destroy(a->consumer);
    if (a->producer)
        rd_kafka_destroy(a->producer);
    journal_close(a->journal); /* no delivery report can come any more */
    a->journal = NULL;
    consumer_free(a);
}

static void app_free(struct app *a)
{
    metrics_free(a); /* the HTTP workers counted until shutdown_all */
    ks_free(a->ks);
    st_free(a->state);
    token_free(a->token);
    rl_free(a->rl);
    pthread_mutex_destroy(&a->lock);
    cfg_free(&a->cfg);
}

/* state.journal_dir, else systemd's $STATE_DIRECTORY (the first, when it
 * lists several), else CFG_STATE_DIR. */
static int open_journal(struct app *a, char *err, size_t errlen)
{
    char dir[4096];
    const char *env = getenv("STATE_DIRECTORY");
    if (a->cfg.state_journal_dir)
        snprintf(dir, sizeof(dir), "%s", a->cfg.state_journal_dir);
    else if (env && *env)
        snprintf(dir, sizeof(dir), "%.*s", (int)strcspn(env, ":"), env);
    else
        snprintf(dir, sizeof(dir), "%s", CFG_STATE_DIR);
    a->journal = journal_open(dir, err, errlen);
    if (!a->journal)
        return -1;
    size_t left = journal_left(a->journal);
    if (left)
        log_notice("state journal in %s/journal: %zu state change(s) of a previous run not yet "
                   "acknowledged by Kafka",
                   dir, left);
    return 0;
}

static int app_init(struct app *a, char *err, size_t errlen)
{
    make_instance_id(a);
    if (pthread_mutex_init(&a->lock, NULL) != 0 || !(a->ks = ks_new()) || !(a->state = st_new()) ||
        !(a->rl = rl_new(a->cfg.webex_rate_limit, app_now_us()))) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    if (!a->cfg.pipeline_workers)
        a->cfg.pipeline_workers = ncpus();
    a->https = strncmp(a->cfg.webex_base_url, "https://", 8) == 0;
    if (a->cfg.webex_ca_file) { /* cred:NAME works here too */
        char path[4096];
        if (cred_path(a->cfg.webex_ca_file, path, sizeof(path), err, errlen) != 0)
            return EXIT_CONFIG;
        char *p = strdup(path);
        if (!p)
            return 1;
        free(a->cfg.webex_ca_file);
        a->cfg.webex_ca_file = p;
    }
    apply_reloadable(a);
    if (open_journal(a, err, errlen) != 0)
        return EXIT_CONFIG;
    a->token = token_new(&a->cfg, err, errlen);
    return a->token ? 0 : EXIT_CONFIG;
}

/* glibc raises its mmap threshold each time a large block is freed (up to
 * 32 MiB), after which librdkafka's fetch buffers come from per-thread
 * arenas that keep the pages when they are freed: a 200,000-event backlog
 * left ~35 MiB of free heap resident. A fixed threshold keeps blocks of
 * 128 KiB and more in their own mappings, returned on free. */
static void tune_malloc(void)
{
#ifdef __GLIBC__
    if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) != 1)
        log_warn("mallopt(M_MMAP_THRESHOLD) failed; memory use may be higher");
#endif
}

static int daemon_main(const struct opts *o)
{
    static struct app app; /* large (per-partition arrays): not on the stack */
    struct app *a = &app;
    char err[1024];
    rd_kafka_t *loader_rk = NULL;
    int rc;

    if (load_config(o, &a->cfg) != 0)
        return EXIT_CONFIG;
    log_init();
    log_set_level(a->cfg.log_level);
    tune_malloc();
    int sfd = signals_fd();
    if (sfd < 0) {
        fprintf(stderr, "bwprovd: signalfd: %s\n", strerror(errno));
        return 1;
    }
    rc = app_init(a, err, sizeof(err));
    if (rc == 0)
        rc = metrics_start(a, err, sizeof(err));
    if (rc == 0 && kafka_create(a, &loader_rk, err, sizeof(err)) != 0)
        rc = EXIT_CONFIG;
    if (rc != 0) {
        log_err("%s", err);
        goto out;
    }
    rc = start(a, loader_rk, sfd, o);
    if (rc == 0 && atomic_load(&a->stopping)) {
        log_notice("stopped before start-up completed");
    } else if (rc == 0) {
        log_write(LOG_LVL_NOTICE, LOG_MID_STARTED, "bwprovd %s started: %s -> %s, %ld workers",
                  BWPROVD_VERSION, a->cfg.topic_events, a->cfg.webex_base_url,
                  a->cfg.pipeline_workers);
        ntf_ready();
        run(a, sfd, o);
        if (atomic_load(&a->fatal)) {
            rc = atomic_load(&a->fatal_status) ? atomic_load(&a->fatal_status) : EXIT_FATAL;
            fatal_status(a);
        }
    }
    atomic_store(&a->stopping, true);
out:
    metrics_stop(a); /* before what a scrape reads goes */
    shutdown_all(a);
    app_free(a);
    close(sfd);
    log_write(LOG_LVL_NOTICE, LOG_MID_STOPPED, "bwprovd stopped (exit status %d)", rc);
    return rc;
}

/* --check-config: the effective configuration, with the static group
 * membership id bwprovd would choose when the file leaves it unset. */
static void dump_config(const struct cfg *c)
{
    cfg_dump(c, stdout);
    if (cfg_kafka_value(c, CFG_KAFKA_CONSUMER, "group.instance.id"))
        return;
    char id[256];
    kafka_default_instance_id(id, sizeof(id));
    printf("# kafka.group.instance.id is not set: %s (static membership)\n", id);
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) {
        free(o.overrides);
        return rc;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(o.overrides);
        return 1;
    }
    if (o.cli) {
        rc = cli_main(o.config, o.overrides, o.n_overrides, argc - o.cli, argv + o.cli);
    } else if (o.check) {
        struct cfg c;
        rc = load_config(&o, &c) == 0 ? 0 : EXIT_CONFIG;
        if (rc == 0)
            dump_config(&c);
        cfg_free(&c);
    } else {
        rc = daemon_main(&o);
    }
    curl_global_cleanup();
    free(o.overrides);
    return rc;
}
