/* app: the daemon's shared state and the interfaces between its threads.
 *
 *  Kafka ─► consumer thread ─► key scheduler ─► ready queue ─► HTTP workers
 *   ▲        (parse, pause,     (per-key FIFO)                 (curl multi)
 *   │         rebalance)                                            │
 *   └─ offsets_store ◄─ offset trackers ◄─ delivery reports ◄─ producer ◄┘
 *  state loader thread: tails topic.state into the state table
 *  main thread: signals, STATUS, watchdog, sd_notify
 */
#ifndef BWPROVD_APP_H
#define BWPROVD_APP_H

#include "cfg.h"
#include "event.h"
#include "health.h"
#include "keysched.h"
#include "request.h"
#include "state.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define APP_MAX_PARTITIONS 4096
#define APP_MAX_WORKERS 256

/* One consumed event, from consumption until its records are acknowledged. */
struct job {
    struct ks_job ks; /* key scheduler link */
    struct job *next; /* ready queue / retry list link */
    char *key;        /* NULL for a null Kafka key */
    size_t keylen;
    char *value;
    size_t len;
    /* The event's bwprovd-replay-* headers (`bwprovd dlq replay`), NULL
     * when it has none: its DLQ copy carries them on, so the replay count
     * survives a second failure. */
    rd_kafka_headers_t *replay_hdrs;
    int32_t partition;
    int64_t offset;
    uint32_t gen;    /* partition generation when consumed (see part_gen) */
    int64_t recv_us; /* monotonic, when consumed */
    struct ev_event ev;
    bool valid;
    int attempts;      /* requests sent */
    int waits;         /* of which answered 429/423 (not counted) */
    int64_t waited_ms; /* time spent waiting on 429/423 (retry.max_wait_ms) */
    bool auth_retried;
    int64_t due_us;             /* retry not before (monotonic) */
    uint64_t auth_gen;          /* token generation that got the 401 */
    char *ws;                   /* workspace id the request is about (update/remove) */
    int64_t lookup_since_us;    /* waiting for the state table to learn the id */
    char *conflict_msg;         /* a 409 waiting for the id to show up (provision) */
    struct ks_barrier *barrier; /* rename: holds the new userId's turn */
    /* A subscriber event's progress (subscriber.c). */
    uint8_t sub_step;      /* enum sm_step: the request to send next */
    bool sub_begun;        /* its first decision is made: replays, ids */
    bool looked_up;        /* a lookup by userId was made */
    bool conflict;         /* a provision found its userId taken */
    bool lookup_new;       /* the lookup is by newUserId (a rename already applied) */
    int polls;             /* polls sent so far */
    int step_base;         /* attempts (not waits) before the current request's first */
    int64_t poll_since_us; /* the answer that started the polls */
    bool wire;             /* a request is on the wire (part_wire) */
    bool busy;             /* records on their way (part_busy) */
    bool replay;           /* not an event: journal entries published again */
    uint64_t jseq;         /* its journal entry, 0 when none */
    char tracking_id[REQ_TRACKING_MAX];
    atomic_int acks;  /* produced records not yet acknowledged */
    atomic_bool lost; /* a record could not be produced: never commit */
};

/* A FIFO of jobs linked through job.next (the ready queue, a worker's
 * blocked and held jobs). pipeline.c; not thread-safe. */
struct jobq {
    struct job *head, *tail;
    int n;
};
void jobq_push(struct jobq *q, struct job *j);
struct job *jobq_pop(struct jobq *q);
/* Moves every job of from to the front of q, in order. */
void jobq_prepend(struct jobq *q, struct jobq *from);
/* Unlinks the jobs for which drop_it() says true, handing each to it. */
void jobq_filter(struct jobq *q, bool (*drop_it)(struct job *j, void *arg), void *arg);

struct token;
struct journal;
struct engine;
struct loader;
/* Exit statuses (bwprovd(8)). */
#define EXIT_FATAL 1
#define EXIT_USAGE 64
#define EXIT_UNAVAILABLE 69
#define EXIT_CONFIG 78
/* Fenced by a static group member with the same group.instance.id: a
 * configuration error as far as systemd is concerned (not restarted). */
#define EXIT_FENCED EXIT_CONFIG

struct consumer;

struct app {
    struct cfg cfg;
    char instance_id[33]; /* random per process: marks our own state records */

    rd_kafka_t *consumer, *producer;
    struct loader *loader;
    struct consumer *cons;
    struct st_table *state;
    struct token *token;
    struct rl *rl; /* shared rate limiter */
    bool https;    /* webex.base_url is https:// (HTTP/2 possible) */

    /* Key scheduler and ready queue, under lock. */
    pthread_mutex_t lock;
    struct ks *ks;
    struct jobq ready;

    struct engine **engines;
    int n_engines;

    /* Partition generations, bumped twice per revoke: when it begins (no
     * job of the partition may start a request any more) and when the
     * partition is let go (its late answers are not ours to record). A
     * lost assignment bumps both at once. See job_may_start/job_owned. */
    atomic_uint part_gen[APP_MAX_PARTITIONS];
    /* Per partition: requests on the wire, and finished jobs whose
     * records are on their way to Kafka (a revoke waits for both). */
    atomic_int part_wire[APP_MAX_PARTITIONS];
    atomic_int part_busy[APP_MAX_PARTITIONS];
    /* Per partition of topic.events: assigned to this instance (the state
     * loader re-asserts the records of users it owns, outcome_reassert). */
    atomic_bool part_owned[APP_MAX_PARTITIONS];
    /* Bumped when jobs must be dropped (revoke, stop): workers sweep their
     * waiting lists. */
    atomic_uint sweep_epoch;

    struct journal *journal;
    atomic_long n_held; /* state-changing requests held (journal bound) */

    /* Settings SIGHUP may change. */
    atomic_long max_attempts, backoff_initial_ms, backoff_max_ms;
    atomic_long max_wait_ms, lookup_wait_ms;

    /* Global "no request before" instant (Retry-After), monotonic µs. */
    atomic_llong not_before_us;

    atomic_long pending; /* events held: consumed and not yet finished */
    atomic_ulong n_ok, n_failed, n_rejected, n_inflight, n_done_total;
    atomic_llong lag;
    atomic_bool kafka_down;
    /* The last time Kafka refused bwprovd (authentication or an ACL), and
     * what it refused: STATUS shows it while it is recent. Under lock. */
    char kafka_refused[400];
    int64_t kafka_refused_us, kafka_refused_logged_us;

    /* Watchdog: every thread's loop bumps its counter; WATCHDOG=1 goes out
     * only while all of them move. The producer's counter moves with
     * librdkafka's statistics callback, which its own main thread drives. */
    atomic_ulong beat_consumer, beat_loader, beat_producer;
    atomic_ulong beat_worker[APP_MAX_WORKERS];
    atomic_bool debug_hang; /* test hook: a worker stops (BWPROVD_DEBUG_HANG) */

    atomic_bool stopping;    /* SIGTERM: stop intake, drain */
    atomic_bool fatal;       /* unrecoverable error: exit 1 */
    atomic_int fatal_status; /* when set, the exit status of the fatal error */
    atomic_bool consumer_done;

    /* What /metrics and STATUS= show beyond the counters above (metrics.c,
     * health.c). Written where it happens, read by the main thread and the
     * metrics thread. */
    struct mx *mx;           /* counters; NULL while metrics.listen is unset */
    struct metrics *metrics; /* the /metrics listener */
    atomic_bool kafka_seen;  /* Kafka answered at start-up */
    atomic_bool producer_id; /* the idempotent producer has its producer id */
    atomic_bool assignment;  /* the group assigned this member (perhaps no partition) */
    atomic_llong part_lag[APP_MAX_PARTITIONS];        /* messages; -1: not known */
    atomic_llong part_oldest_us[APP_MAX_PARTITIONS];  /* lowest unfinished event consumed */
    atomic_llong part_oldest_off[APP_MAX_PARTITIONS]; /* and its offset */
    atomic_llong load_done, load_total; /* state topic records read, of those to read */
    atomic_bool webex_down;             /* the last request got no HTTP answer */
    atomic_llong auth_failed_ms; /* Webex refuses the token since (epoch ms); 0: it does not */
    char auth_why[160];          /* why, under lock */
    int64_t refresh_warned_ms;   /* main thread: the last refresh token warning */
};

/* Monotonic and wall clocks. */
int64_t app_now_us(void);

/* Names the calling thread (top -H, perf, gdb show it); at most 15 bytes. */
void app_name_thread(const char *name);
int64_t app_epoch_ms(void);

/* --- pipeline.c: scheduler and ready queue (any thread) --- */
/* A valid event enters its key's FIFO; runnable ones go to the workers. A
 * rename also holds the new userId's turn until it is done. */
int pipe_submit(struct app *a, struct job *j);
/* The key's running job is done (call before its records are produced is
 * wrong: call after, with a copy of the key and of j->barrier); starts the
 * key's next job, and the new userId's after a rename. */
void pipe_key_done(struct app *a, const char *key, size_t keylen, struct ks_barrier *barrier);
/* Drops a job that will not run (revoked partition, stop): its offset stays
 * unfinished, the next owner or the next run replays it. */
void pipe_drop(struct app *a, struct job *j);
/* Whether j may start a request: its partition is still ours and is not
 * being revoked, and bwprovd is not stopping. */
bool job_may_start(struct app *a, const struct job *j);
/* Whether j's partition is still ours (perhaps being revoked). */
bool job_owned(struct app *a, const struct job *j);
/* Whether a successful request of j changes the userId -> workspace map
 * (provision, rename, remove): such requests wait while the journal bound
 * is reached. */
bool job_changes_map(const struct job *j);
/* Takes up to max runnable jobs for a worker. */
struct job *pipe_take(struct app *a, int max);
void job_free(struct job *j);
/* Whether runnable jobs are waiting for a worker. */
bool pipe_has_ready(struct app *a);

/* --- outcome.c: results, DLQ and state records (any thread) --- */
struct outcome {
    int outcome;              /* enum res_outcome */
    int http_status;          /* -1: none */
    const char *workspace_id; /* the workspace's id, or the subscriber's */
    const char *note;
    int error_kind; /* enum cls_kind */
    const char *error_message;
    /* State change to write (through to the table and to topic.state). */
    bool state_put;
    bool state_remove;
    const struct resp *resp; /* response workspace or subscriber, for the state record */
    const char *status;      /* a subscriber's provisioning status */
    const char *person_id;   /* a subscriber's personId, once provisioned */
};
/* Emits the result (and DLQ copy, state records) for j. For a valid job
 * this also ends the key's turn. State changes are journaled first and
 * produced once on disk. An answer that comes after j's partition moved
 * is not recorded, except a new workspace id (a provision), which must
 * not be lost. j must not be touched afterwards: the delivery reports
 * free it. */
void outcome_emit(struct app *a, struct job *j, const struct outcome *o);
/* A subscriber event's answer named a subscriber whose provisioning is not
 * finished: the table keeps its id now, and the state topic (through the
 * journal) too, so no id Webex gave is lost while it is polled. The job
 * goes on (the result comes with its final status). Worker thread. */
void outcome_note_pending(struct app *a, struct job *j, const char *id, const struct resp *r);
/* The state loader read a record for user older than the table's entry
 * (a late writer: an instance that had not yet learnt it lost the
 * partition). If this instance owns the partition the entry came from, it
 * publishes the entry again, so the topic's last record for the user, the
 * one compaction keeps, is the newest. State loader thread. */
void outcome_reassert(struct app *a, const char *user);
/* At start, after the state table caught up: publishes what the journal
 * of a previous run holds and the state topic lacks. Returns how many
 * records it produced. */
size_t outcome_replay_journal(struct app *a);

/* --- consumer.c --- */
int consumer_start(struct app *a);
void consumer_join(struct app *a);
/* After consumer_join: whether librdkafka finished the consumer's close
 * (else the handle is destroyed without it). */
bool consumer_closed(struct app *a);
/* Delivery report path: a job's records are all acknowledged. Consumer
 * thread only. */
void consumer_job_finished(struct app *a, struct job *j);
void consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque);
void consumer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
/* After consumer_join and the producer's last delivery report. */
void consumer_free(struct app *a);

/* --- engine.c: HTTP workers --- */
int engines_start(struct app *a);
/* TLS trust for a request: webex.ca_file in addition to the system CAs. */
void http_set_ca(void *curl_easy, const char *ca_file);
void engines_wake(struct app *a);
void engines_stop(struct app *a);

/* --- loader.c: state topic tailer --- */
/* Takes ownership of rk, a consumer handle without a group. */
int loader_start(struct app *a, rd_kafka_t *rk);
void loader_stop(struct app *a);
/* Records the state topic's end offsets as a catch-up target. Returns 0, or
 * -1 if Kafka did not answer (try again later). */
int loader_set_barrier(struct app *a);
/* Whether the loader has read up to the last barrier. */
bool loader_caught_up(struct app *a);

/* --- kafka.c: client handles --- */
/* Creates the producer, the group consumer and the state loader's consumer
 * from the kafka.* settings. Returns 0, or -1 with a reason in err. */
int kafka_create(struct app *a, rd_kafka_t **loader_rk, char *err, size_t errlen);
/* The configuration of an operator subcommand's handle (cli.c): the
 * daemon's producer settings, or its state loader's (a consumer that only
 * assign()s, with private_group as group.id: never kafka.group.id, never a
 * group.instance.id), from the kafka.* keys of c; the producer's
 * message.timeout.ms defaults to startup.timeout_ms. No callbacks are set.
 * Returns NULL with the reason in err. */
rd_kafka_conf_t *kafka_cli_conf(const struct cfg *c, bool producer, const char *private_group,
                                char *err, size_t errlen);
/* One metadata request (up to 1 s): 0 when Kafka answered and all four
 * topics exist, else -1 with the reason in why. */
int kafka_probe(struct app *a, char *why, size_t whylen);
/* A fatal error of handle rk (librdkafka's error callback, or the
 * consumer's poll): logged, a->fatal set, and for a fenced static member
 * a->fatal_status EXIT_FENCED. Any thread. */
void kafka_fatal(struct app *a, rd_kafka_t *rk);
/* Whether e means Kafka refused bwprovd's principal: a failed SASL
 * authentication, or an ACL that does not allow an operation. */
bool kafka_access_error(rd_kafka_resp_err_t e);
/* Kafka refused what (e.g. "reading topic X: Broker: Topic authorization
 * failed"): logged (once a minute while it repeats) and shown in STATUS
 * for a while (kafka_refusal). Any thread. */
void kafka_refused(struct app *a, const char *what);
/* The refusal of the last KAFKA_REFUSED_SHOW_US, copied into buf, or
 * false when there was none. */
bool kafka_refusal(struct app *a, int64_t now_us, char *buf, size_t cap);
/* The group.instance.id bwprovd uses when kafka.group.instance.id is not
 * set (static membership): stable per host and unit instance. */
void kafka_default_instance_id(char *out, size_t cap);

/* --- token.c --- */
struct token *token_new(const struct cfg *c, char *err, size_t errlen);
void token_free(struct token *t);
/* Writes "Authorization: Bearer ..." into buf; *gen identifies the token.
 * Returns 0, -1 when there is no token, or the size buf needs when cap is
 * too small. */
int token_header(struct token *t, char *buf, size_t cap, uint64_t *gen);
/* After a 401 with token gen: re-reads the file unless another thread
 * already did (single flight). Returns 0 if a (possibly) new token is there. */
int token_renew(struct token *t, uint64_t gen);
/* After token_renew(gen): 1 when a newer token is there, 0 while the
 * renewal is under way, -1 when it failed. */
int token_state(struct token *t, uint64_t gen);
/* SIGHUP: re-read now. */
int token_reload(struct token *t, const struct cfg *c);
/* What the refresh flow knows about the tokens' lifetimes (wall clock, epoch
 * ms; 0: not known, as always with a token file), and since when the
 * refresh fails (0: it does not) and why. Any thread. */
struct token_info {
    int64_t access_expires_ms;
    int64_t refresh_expires_ms;
    int64_t failing_since_ms;
    char why[160];
};
void token_info(struct token *t, struct token_info *out);

/* --- metrics.c: the /metrics listener --- */
/* With metrics.listen set: counts from now on (a->mx), binds the address
 * and serves GET /metrics from libmicrohttpd's thread. An address that
 * cannot be bound returns EXIT_CONFIG with the reason in err; out of
 * memory EXIT_FATAL; 0 also when metrics.listen is unset. Main thread,
 * after app_init (a scrape reads the state table, limiter and token). */
int metrics_start(struct app *a, char *err, size_t errlen);
/* Stops serving (waits for a scrape under way): before anything a scrape
 * reads is freed. Main thread. */
void metrics_stop(struct app *a);
/* Frees the counters: after every thread that counts has stopped. */
void metrics_free(struct app *a);

/* --- health.c: what STATUS= says, and the state it keeps --- */
/* What STATUS= and /metrics both show, read once. */
struct health {
    struct hl_view v;
    char auth_why[200];
    struct token_info token;
};
/* Fills h; hl_lag() and hl_reasons() then say it. Main and metrics
 * threads. */
void health_read(struct app *a, struct health *h);
/* Every STATUS period: warns in the journal, once a day, of a refresh
 * token that expires within 14 days. Main thread. */
void health_tick(struct app *a);
/* Webex refused the token (a 401 after a renewal, or no token to send):
 * STATUS says since when until health_auth_ok. HTTP workers. */
void health_auth_failed(struct app *a, const char *why);
/* A request got an answer other than 401: the token works. Cheap (one
 * relaxed load) unless authentication was failing. HTTP workers. */
void health_auth_ok(struct app *a);

#endif
