/* cfg: bwprovd's configuration: one table of keys, a `key = value` file
 * parser, -X overrides, validation and the --check-config dump.
 *
 * Not thread-safe: the main thread loads a struct cfg, then hands read-only
 * copies (or the reloadable values) to other threads. */
#ifndef BWPROVD_CFG_H
#define BWPROVD_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#define CFG_DEFAULT_PATH "/etc/bwprovd/bwprovd.conf"
/* The journal's home when neither state.journal_dir nor $STATE_DIRECTORY
 * (systemd's StateDirectory=) names one. */
#define CFG_STATE_DIR "/var/lib/bwprovd"
/* Bounds: a dumped "key = value" line always fits the line limit. */
#define CFG_KEY_MAX 256
#define CFG_VALUE_MAX 4096
#define CFG_LINE_MAX 8192

/* Where a kafka.* property goes. */
enum cfg_kafka_scope { CFG_KAFKA_BOTH, CFG_KAFKA_CONSUMER, CFG_KAFKA_PRODUCER };

struct cfg_kafka_prop {
    enum cfg_kafka_scope scope;
    char *name; /* librdkafka property name, without the kafka.* prefix */
    char *value;
    char *where; /* "file:line" or "-X", for error messages */
};

struct cfg {
    char *topic_events, *topic_results, *topic_dlq, *topic_state;
    char *webex_base_url;
    char *webex_access_token_file;
    char *webex_client_id;
    char *webex_client_secret_file;
    char *webex_refresh_token_file;
    char *webex_ca_file;
    long webex_max_in_flight;
    long webex_timeout_ms;
    double webex_rate_limit;
    long retry_max_attempts;
    long retry_backoff_initial_ms;
    long retry_backoff_max_ms;
    long retry_max_wait_ms;  /* 429/423 waits per event, in total */
    char *state_journal_dir; /* NULL: $STATE_DIRECTORY, else CFG_STATE_DIR */
    long state_max_unacknowledged;
    long state_lookup_wait_ms;
    /* Following a subscriber's asynchronous provisioning (SPEC §2b). */
    long subscriber_poll_interval_ms;     /* the first poll, after the answer */
    long subscriber_poll_max_interval_ms; /* polls back off, doubling, up to this */
    long subscriber_poll_limit_ms;        /* not final this long after the answer: timeout */
    long pipeline_max_pending;
    long pipeline_workers; /* 0 until resolved: the number of CPUs */
    long shutdown_grace_ms;
    long startup_timeout_ms;
    int log_level;
    char *metrics_listen; /* ADDR:PORT of /metrics; NULL: no metrics listener */

    struct cfg_kafka_prop *kafka;
    size_t n_kafka;

    char **where; /* per key of the table: "file:line", "-X" or NULL (default) */
    char *path;   /* the file loaded */
};

/* Fills c with the defaults. */
void cfg_init(struct cfg *c);
void cfg_free(struct cfg *c);

/* Applies the file at path, then each "key=value" of overrides (-X), then
 * validates. On error returns -1 with a message naming the key and
 * "file:line" in err. A missing file is an error. */
int cfg_load(struct cfg *c, const char *path, char *const *overrides, size_t n_overrides, char *err,
             size_t errlen);

/* Applies one "key = value" (exposed for tests). where names its origin. */
int cfg_set(struct cfg *c, const char *key, const char *value, const char *where, char *err,
            size_t errlen);

/* Prints the effective configuration as a config file, secrets redacted. */
void cfg_dump(const struct cfg *c, FILE *out);

/* Whether SIGHUP can change key (false for unknown keys). */
bool cfg_key_reloadable(const char *key);

/* Copies every key SIGHUP may change from src to dst (from the one table,
 * so a new reloadable key cannot be forgotten). Returns 0, or -1 when out
 * of memory (dst then has some of them). */
int cfg_copy_reloadable(struct cfg *dst, const struct cfg *src);

/* Reports (to log) keys whose value differs between old and new but need a
 * restart; returns how many. */
int cfg_restart_needed(const struct cfg *old_cfg, const struct cfg *new_cfg);

/* Parses a metrics.listen value, "ADDR:PORT" with a literal IPv4 address or
 * a bracketed IPv6 one and a port 1-65535, into ss/len. Returns 0, or -1
 * with the reason in why. */
int cfg_parse_listen(const char *value, struct sockaddr_storage *ss, socklen_t *len, char *why,
                     size_t whylen);

/* The value of the librdkafka property name as a client of scope
 * (CFG_KAFKA_CONSUMER or CFG_KAFKA_PRODUCER) gets it: the last one set
 * for that scope or for both, as the clients apply them in order; NULL
 * when unset. kafka.group.id always has one (cfg_init's default). */
const char *cfg_kafka_value(const struct cfg *c, enum cfg_kafka_scope scope, const char *name);

/* Whether a kafka property holds a secret (password, secret, key material). */
bool cfg_kafka_secret(const char *name);

#endif
