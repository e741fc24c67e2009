/* cli: the operator subcommands of bwprovd(8), run by the same binary with
 * the same configuration (-c, -X), talking to Kafka directly and safe while
 * daemons run:
 *
 *   bwprovd state get USERID | export | import FILE [--dry-run] [--force]
 *   bwprovd dlq list [filters] | replay [filters] [--dry-run] [--force]
 *
 * cli.c parses the command line, loads the configuration, makes the Kafka
 * handles and holds what the commands share: reading a topic to its end
 * (daemon/topicread.c, the state loader's reader), producing with
 * acknowledgements, the progress line on a terminal, interruption.
 * cli_state.c and cli_dlq.c are the commands. Their pure logic lives in
 * common/ (strec, imp, dlq, progress).
 *
 * Kafka: one consumer that only assign()s, with a private group.id that it
 * never joins or commits to (never kafka.group.id, never a
 * group.instance.id), so the daemons' group is not touched; a producer
 * only for a command that writes and is not a dry run. Single-threaded. */
#ifndef BWPROVD_CLI_H
#define BWPROVD_CLI_H

#include "cfg.h"
#include "dlq.h"
#include "topicread.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

/* Exit statuses (bwprovd(8)): the daemon's (EXIT_USAGE, EXIT_UNAVAILABLE,
 * EXIT_CONFIG in app.h), plus 1 for a run that did not do all it was
 * asked (a user not found, records refused, records Kafka did not take,
 * an interruption). */
#define CLI_OK 0
#define CLI_INCOMPLETE 1

/* The command line of one subcommand. */
struct cli_args {
    const char *noun; /* "state" or "dlq" */
    const char *verb; /* "get", "export", "import", "list", "replay" */
    const char *arg;  /* USERID or FILE */
    bool dry_run, force;
    bool skip_bad; /* state import: write the valid rows although some were refused */
    struct dq_filter filter;
};

struct cli {
    struct cfg cfg;
    struct cli_args args;
    char writer[33];      /* bwprovd-writer of the records it writes */
    rd_kafka_t *consumer; /* assign() only */
    rd_kafka_t *producer; /* NULL: the command writes nothing */
    bool tty;             /* stderr is a terminal: progress lines */
    char kafka_err[256];  /* the last error librdkafka reported */
    /* Delivery reports: counts, the last error, and a hook per record. */
    uint64_t produced, acked, failed;
    rd_kafka_resp_err_t produce_err;
    void (*on_ack)(struct cli *c, const rd_kafka_message_t *m);
    /* The progress line being drawn. */
    const char *prog_what;
    uint64_t prog_total;
    int64_t prog_start_us, prog_last_us;
    bool prog_drawn;
};

/* Runs `bwprovd [-c FILE] [-X k=v]... NOUN VERB ...`: argv[0] is the noun.
 * config and overrides are what main() parsed before it. Returns the exit
 * status. */
int cli_main(const char *config, char *const *overrides, size_t n_overrides, int argc, char **argv);

/* Whether the user asked to stop (SIGINT, SIGTERM). */
bool cli_interrupted(void);

/* Prints "bwprovd NOUN VERB: <message>" on stderr. */
void cli_say(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Milliseconds since the epoch, and a monotonic clock in microseconds. */
int64_t cli_epoch_ms(void);
int64_t cli_now_us(void);

/* --- reading a topic to its end --- */

/* Opens topic and takes its end offsets now as the target. Returns NULL
 * with the exit status in *status (69: Kafka did not answer, or no such
 * topic) after saying why. */
struct tr *cli_topic(struct cli *c, const char *topic, int *status);

/* Called for each record below the target; returns 0 to go on, or an
 * exit status to stop reading. */
typedef int (*cli_record_fn)(struct cli *c, const rd_kafka_message_t *m, void *arg);

/* Reads t from start (per partition; NULL: the beginning) to its target,
 * handing each record to fn, with a progress line named what. Returns 0,
 * fn's status, 69 when Kafka refuses or stops answering for
 * startup.timeout_ms, or 1 when interrupted. */
int cli_read(struct cli *c, struct tr *t, const int64_t *start, const char *what, cli_record_fn fn,
             void *arg);

/* --- producing --- */

/* Queues one record (partition RD_KAFKA_PARTITION_UA: the partitioner's
 * choice, the same as the daemon's for the same key); hdrs is handed over.
 * opaque comes back in on_ack's m->_private. While 1,000 records wait for
 * Kafka it waits (ticking the progress line the caller began with the
 * number of records to write). Returns 0, or an exit status when Kafka
 * refuses it at once or the user interrupted. */
int cli_produce(struct cli *c, const char *topic, int32_t partition, void *key, size_t keylen,
                void *value, size_t len, rd_kafka_headers_t *hdrs, void *opaque);

/* Waits until every queued record is acknowledged or has failed (each
 * within message.timeout.ms), then ends the progress line. Returns 0 when
 * all were acknowledged, else 69 (Kafka unreachable) or 1, after saying
 * why. */
int cli_flush(struct cli *c);

/* --- progress (only on a terminal; see common/progress.h) --- */

void cli_prog_begin(struct cli *c, const char *what, uint64_t total);
void cli_prog_tick(struct cli *c, uint64_t done);
void cli_prog_end(struct cli *c, uint64_t done);

/* --- the commands --- */

int cli_state_get(struct cli *c);
int cli_state_export(struct cli *c);
int cli_state_import(struct cli *c);
int cli_dlq_list(struct cli *c);
int cli_dlq_replay(struct cli *c);

#endif
