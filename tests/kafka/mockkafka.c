/*
 * mockkafka: serve a librdkafka mock cluster on loopback for tests.
 *
 *   mockkafka [--brokers N] [--partitions N] [--topic NAME[:PARTITIONS]]...
 *             [--debug CONTEXTS]
 *
 * Creates the cluster and the topics, prints one line
 *   BOOTSTRAP host:port[,host:port...]
 * on stdout, then reads control commands from stdin, one per line, and
 * answers each with one line, "OK" or "ERR <reason>" (see usage() for the
 * command list). Exits 0 on stdin EOF, "quit", SIGTERM or SIGINT, after
 * destroying the cluster.
 *
 * This is a test program, not product code. rdkafka_mock.h is an
 * experimental librdkafka API, hence the version guard below.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

/* The mock API calls used here (broker up/down, push_request_errors_array,
 * partition leader, coordinator) all exist from librdkafka 1.9 on, the
 * minimum the build requires. */
#if !defined(RD_KAFKA_VERSION) || RD_KAFKA_VERSION < 0x010900ff
#error "mockkafka needs librdkafka >= 1.9 (rdkafka_mock.h)"
#endif
#include <librdkafka/rdkafka_mock.h>

#define MK_MAX_TOPICS 64
#define MK_MAX_BROKERS 64
#define MK_MAX_PARTITIONS 1024
#define MK_MAX_LINE 4096
#define MK_MAX_ARGS 64
#define MK_MAX_ERRORS 4096

#define MK_MAX_TOPIC_NAME 249 /* Kafka's limit */

struct mk_topic {
    char name[MK_MAX_TOPIC_NAME + 1];
    int partitions; /* 0: use the --partitions default */
};

struct mk_state {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mcluster;
    int brokers;
    int quit;
};

struct mk_apikey {
    const char *name;
    int16_t key;
};

/* Kafka protocol ApiKeys a test may want to fail. */
static const struct mk_apikey mk_apikeys[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"DescribeGroups", 15},
    {"ListGroups", 16},
    {"ApiVersions", 18},
    {"InitProducerId", 22},
    {"OffsetForLeaderEpoch", 23},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

static void usage(FILE *out)
{
    fputs("usage: mockkafka [--brokers N] [--partitions N] "
          "[--topic NAME[:PARTITIONS]]... [--debug CONTEXTS]\n"
          "\n"
          "Prints \"BOOTSTRAP <servers>\" once the cluster is up, then reads\n"
          "commands on stdin, answering \"OK\" or \"ERR <reason>\" to each:\n"
          "  down <broker_id>|all          disconnect broker(s), refuse connections\n"
          "  up <broker_id>|all            accept connections again\n"
          "  errors <ApiKey> <count> <err>...\n"
          "                                fail the next <count> requests of ApiKey\n"
          "                                (name or number) with the given error\n"
          "                                code(s) (number or name, e.g. 7 or\n"
          "                                REQUEST_TIMED_OUT); one code is repeated\n"
          "  clear <ApiKey>                drop queued errors for ApiKey\n"
          "  rtt <broker_id>|all <ms>      add round-trip delay\n"
          "  leader <topic> <partition> <broker_id>\n"
          "                                move a partition's leader (-1: none)\n"
          "  coordinator group|transaction <id> <broker_id>\n"
          "                                pin a group/transaction coordinator\n"
          "  create <topic> <partitions>   create a topic\n"
          "  ping                          answer OK\n"
          "  quit                          exit 0\n"
          "Defaults: 1 broker, 4 partitions. Exits 0 on stdin EOF, SIGTERM, SIGINT.\n",
          out);
}

/* Parse a whole decimal integer in [lo, hi]. Returns 0 on success. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_apikey(const char *s, int16_t *out)
{
    long v;
    size_t i;

    if (parse_long(s, 0, INT16_MAX, &v) == 0) {
        *out = (int16_t)v;
        return 0;
    }
    for (i = 0; i < sizeof(mk_apikeys) / sizeof(mk_apikeys[0]); i++) {
        if (strcasecmp(s, mk_apikeys[i].name) == 0) {
            *out = mk_apikeys[i].key;
            return 0;
        }
    }
    return -1;
}

/* An error code by number, or by librdkafka name with or without the
 * RD_KAFKA_RESP_ERR_ prefix ("REQUEST_TIMED_OUT", "_TRANSPORT"). */
static int parse_errcode(const char *s, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *descs = NULL;
    size_t cnt = 0;
    size_t i;
    long v;
    static const char prefix[] = "RD_KAFKA_RESP_ERR_";

    if (parse_long(s, INT_MIN, INT_MAX, &v) == 0) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    if (strncasecmp(s, prefix, sizeof(prefix) - 1) == 0)
        s += sizeof(prefix) - 1;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (i = 0; i < cnt; i++) {
        if (descs[i].name != NULL && strcasecmp(s, descs[i].name) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    return -1;
}

/* Broker id 1..brokers, or "all" (returned as -1). */
static int parse_broker(const struct mk_state *st, const char *s, int32_t *out)
{
    long v;

    if (strcasecmp(s, "all") == 0) {
        *out = -1;
        return 0;
    }
    if (parse_long(s, 1, st->brokers, &v) != 0)
        return -1;
    *out = (int32_t)v;
    return 0;
}

static int reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int reply(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
}

static int reply_err(rd_kafka_resp_err_t err)
{
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return reply("OK");
    return reply("ERR %s", rd_kafka_err2str(err));
}

/* down/up/rtt on one broker or on every broker (ids 1..brokers). */
static rd_kafka_resp_err_t broker_op(struct mk_state *st, const char *op, int32_t id, int rtt)
{
    int32_t first = id < 0 ? 1 : id;
    int32_t last = id < 0 ? st->brokers : id;
    int32_t b;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    for (b = first; b <= last && !err; b++) {
        if (strcmp(op, "down") == 0)
            err = rd_kafka_mock_broker_set_down(st->mcluster, b);
        else if (strcmp(op, "up") == 0)
            err = rd_kafka_mock_broker_set_up(st->mcluster, b);
        else
            err = rd_kafka_mock_broker_set_rtt(st->mcluster, b, rtt);
    }
    return err;
}

static int cmd_errors(struct mk_state *st, int argc, char **argv)
{
    int16_t apikey;
    long count;
    rd_kafka_resp_err_t *codes;
    int ncodes = argc - 3;
    long i;

    if (argc < 4)
        return reply("ERR usage: errors <ApiKey> <count> <error_code>...");
    if (parse_apikey(argv[1], &apikey) != 0)
        return reply("ERR unknown ApiKey '%s'", argv[1]);
    if (parse_long(argv[2], 1, MK_MAX_ERRORS, &count) != 0)
        return reply("ERR bad count '%s' (1..%d)", argv[2], MK_MAX_ERRORS);
    if (ncodes != 1 && ncodes != count)
        return reply("ERR give one error code or exactly <count> codes");

    codes = calloc((size_t)count, sizeof(*codes));
    if (codes == NULL)
        return reply("ERR out of memory");
    for (i = 0; i < count; i++) {
        const char *s = argv[3 + (ncodes == 1 ? 0 : i)];
        if (parse_errcode(s, &codes[i]) != 0) {
            free(codes);
            return reply("ERR unknown error code '%s'", s);
        }
    }
    rd_kafka_mock_push_request_errors_array(st->mcluster, apikey, (size_t)count, codes);
    free(codes);
    return reply("OK");
}

static int cmd_leader(struct mk_state *st, int argc, char **argv)
{
    long part;
    long broker;

    if (argc != 4)
        return reply("ERR usage: leader <topic> <partition> <broker_id>");
    if (parse_long(argv[2], 0, MK_MAX_PARTITIONS - 1, &part) != 0)
        return reply("ERR bad partition '%s'", argv[2]);
    if (parse_long(argv[3], -1, st->brokers, &broker) != 0 || broker == 0)
        return reply("ERR bad broker id '%s'", argv[3]);
    return reply_err(
        rd_kafka_mock_partition_set_leader(st->mcluster, argv[1], (int32_t)part, (int32_t)broker));
}

/* Split line in place on blanks. Returns argc, or -1 on too many words. */
static int split_words(char *line, char **argv, int max)
{
    int argc = 0;
    char *p = line;

    for (;;) {
        while (*p != '\0' && isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            return argc;
        if (argc == max)
            return -1;
        argv[argc++] = p;
        while (*p != '\0' && !isspace((unsigned char)*p))
            p++;
        if (*p != '\0')
            *p++ = '\0';
    }
}

/* Run one command line. Returns -1 when stdout is gone. */
static int run_command(struct mk_state *st, char *line)
{
    char *argv[MK_MAX_ARGS];
    int argc = split_words(line, argv, MK_MAX_ARGS);
    const char *cmd;
    int32_t id;
    long v;

    if (argc < 0)
        return reply("ERR too many words");
    if (argc == 0)
        return reply("ERR empty command");
    cmd = argv[0];

    if (strcasecmp(cmd, "down") == 0 || strcasecmp(cmd, "up") == 0) {
        if (argc != 2 || parse_broker(st, argv[1], &id) != 0)
            return reply("ERR usage: %s <broker_id 1..%d>|all", cmd, st->brokers);
        return reply_err(broker_op(st, strcasecmp(cmd, "down") == 0 ? "down" : "up", id, 0));
    }
    if (strcasecmp(cmd, "rtt") == 0) {
        if (argc != 3 || parse_broker(st, argv[1], &id) != 0 ||
            parse_long(argv[2], 0, 3600 * 1000, &v) != 0)
            return reply("ERR usage: rtt <broker_id 1..%d>|all <ms>", st->brokers);
        return reply_err(broker_op(st, "rtt", id, (int)v));
    }
    if (strcasecmp(cmd, "errors") == 0)
        return cmd_errors(st, argc, argv);
    if (strcasecmp(cmd, "clear") == 0) {
        int16_t apikey;
        if (argc != 2 || parse_apikey(argv[1], &apikey) != 0)
            return reply("ERR usage: clear <ApiKey>");
        rd_kafka_mock_clear_request_errors(st->mcluster, apikey);
        return reply("OK");
    }
    if (strcasecmp(cmd, "leader") == 0)
        return cmd_leader(st, argc, argv);
    if (strcasecmp(cmd, "coordinator") == 0) {
        long broker;
        if (argc != 4 || (strcmp(argv[1], "group") != 0 && strcmp(argv[1], "transaction") != 0) ||
            parse_long(argv[3], 1, st->brokers, &broker) != 0)
            return reply("ERR usage: coordinator group|transaction <id> <broker_id>");
        return reply_err(
            rd_kafka_mock_coordinator_set(st->mcluster, argv[1], argv[2], (int32_t)broker));
    }
    if (strcasecmp(cmd, "create") == 0) {
        if (argc != 3 || parse_long(argv[2], 1, MK_MAX_PARTITIONS, &v) != 0)
            return reply("ERR usage: create <topic> <partitions>");
        return reply_err(rd_kafka_mock_topic_create(st->mcluster, argv[1], (int)v, 1));
    }
    if (strcasecmp(cmd, "ping") == 0)
        return reply("OK");
    if (strcasecmp(cmd, "quit") == 0 || strcasecmp(cmd, "exit") == 0) {
        st->quit = 1;
        return reply("OK");
    }
    if (strcasecmp(cmd, "help") == 0) {
        /* One-line answer like every other command. */
        return reply("OK down up errors clear rtt leader coordinator create ping quit");
    }
    return reply("ERR unknown command '%s'", cmd);
}

/* Buffered stdin lines. Lines longer than MK_MAX_LINE are answered with an
 * error and skipped. */
struct mk_input {
    char buf[MK_MAX_LINE + 1];
    size_t len;
    int overflow; /* discarding the rest of an over-long line */
};

/* Handle every complete line in in->buf; keep the partial rest. */
static int drain_lines(struct mk_state *st, struct mk_input *in, int at_eof)
{
    size_t start = 0;
    size_t i;

    for (i = 0; i < in->len && !st->quit; i++) {
        if (in->buf[i] != '\n')
            continue;
        in->buf[i] = '\0';
        if (i > start && in->buf[i - 1] == '\r')
            in->buf[i - 1] = '\0';
        if (in->overflow) {
            in->overflow = 0;
            if (reply("ERR line too long") != 0)
                return -1;
        } else if (run_command(st, in->buf + start) != 0) {
            return -1;
        }
        start = i + 1;
    }
    if (st->quit)
        return 0;
    memmove(in->buf, in->buf + start, in->len - start);
    in->len -= start;
    if (at_eof && (in->len > 0 || in->overflow)) {
        /* A last line without its newline still counts. */
        in->buf[in->len] = '\0';
        in->len = 0;
        if (in->overflow)
            return reply("ERR line too long");
        return run_command(st, in->buf);
    }
    if (in->len == MK_MAX_LINE) {
        in->len = 0;
        in->overflow = 1;
    }
    return 0;
}

/* Returns 0 to go on, 1 after --help, -1 on a usage error. */
static int parse_args(int argc, char **argv, int *brokers, int *partitions, const char **debug,
                      struct mk_topic *topics, int *ntopics)
{
    int i;
    long v;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (val == NULL) {
            fprintf(stderr, "mockkafka: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--brokers") == 0) {
            if (parse_long(val, 1, MK_MAX_BROKERS, &v) != 0) {
                fprintf(stderr, "mockkafka: bad --brokers '%s' (1..%d)\n", val, MK_MAX_BROKERS);
                return -1;
            }
            *brokers = (int)v;
        } else if (strcmp(a, "--partitions") == 0) {
            if (parse_long(val, 1, MK_MAX_PARTITIONS, &v) != 0) {
                fprintf(stderr, "mockkafka: bad --partitions '%s' (1..%d)\n", val,
                        MK_MAX_PARTITIONS);
                return -1;
            }
            *partitions = (int)v;
        } else if (strcmp(a, "--debug") == 0) {
            *debug = val;
        } else if (strcmp(a, "--topic") == 0) {
            struct mk_topic *t;
            const char *colon = strrchr(val, ':');
            size_t len = colon != NULL ? (size_t)(colon - val) : strlen(val);

            if (*ntopics == MK_MAX_TOPICS) {
                fprintf(stderr, "mockkafka: too many topics (max %d)\n", MK_MAX_TOPICS);
                return -1;
            }
            t = &topics[(*ntopics)++];
            if (colon != NULL) {
                if (parse_long(colon + 1, 1, MK_MAX_PARTITIONS, &v) != 0) {
                    fprintf(stderr, "mockkafka: bad partition count in --topic '%s'\n", val);
                    return -1;
                }
                t->partitions = (int)v;
            }
            if (len == 0 || len > MK_MAX_TOPIC_NAME) {
                fprintf(stderr, "mockkafka: bad topic name in --topic '%s'\n", val);
                return -1;
            }
            memcpy(t->name, val, len);
            t->name[len] = '\0';
        } else {
            fprintf(stderr, "mockkafka: unknown option '%s'\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* Wait for stdin lines and signals until told to stop. */
static int serve(struct mk_state *st, int sfd)
{
    static struct mk_input in;
    struct pollfd pfd[2];
    int stdin_open = 1;

    while (!st->quit) {
        int n;

        pfd[0].fd = sfd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        pfd[1].fd = stdin_open ? STDIN_FILENO : -1;
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        n = poll(pfd, 2, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("mockkafka: poll");
            return -1;
        }
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                fprintf(stderr, "mockkafka: signal %u, stopping\n", si.ssi_signo);
                return 0;
            }
        }
        if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(STDIN_FILENO, in.buf + in.len, MK_MAX_LINE - in.len);
            if (r < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                perror("mockkafka: read stdin");
                return -1;
            }
            in.len += (size_t)r;
            if (drain_lines(st, &in, r == 0) != 0)
                return -1; /* stdout is gone: nobody to answer */
            if (r == 0)
                return 0; /* EOF */
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct mk_topic topics[MK_MAX_TOPICS];
    int ntopics = 0;
    int brokers = 1;
    int partitions = 4;
    const char *debug = NULL;
    struct mk_state st;
    rd_kafka_conf_t *conf;
    char errstr[512];
    sigset_t mask;
    struct sigaction sa;
    int sfd = -1;
    int rc = 1;
    int i;

    memset(topics, 0, sizeof(topics));
    memset(&st, 0, sizeof(st));

    i = parse_args(argc, argv, &brokers, &partitions, &debug, topics, &ntopics);
    if (i != 0) {
        rc = i > 0 ? 0 : 64; /* --help, or a usage error */
        goto out;
    }

    /* Block the stop signals before librdkafka starts threads, so they
     * inherit the mask and only the signalfd sees them. A vanished stdout
     * reader shows up as a write error, not as SIGPIPE. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0) {
        fprintf(stderr, "mockkafka: cannot block signals\n");
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        perror("mockkafka: sigaction");
        goto out;
    }
    sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        perror("mockkafka: signalfd");
        goto out;
    }

    /* log_level 4 hides the notice that this handle has no
     * bootstrap.servers: it never connects anywhere, it only hosts the
     * cluster. --debug (e.g. "mock,protocol") turns librdkafka debug on. */
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "client.id", "mockkafka", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", debug != NULL ? "7" : "4", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        (debug != NULL &&
         rd_kafka_conf_set(conf, "debug", debug, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)) {
        fprintf(stderr, "mockkafka: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    st.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (st.rk == NULL) {
        fprintf(stderr, "mockkafka: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    st.brokers = brokers;
    st.mcluster = rd_kafka_mock_cluster_new(st.rk, brokers);
    if (st.mcluster == NULL) {
        fprintf(stderr, "mockkafka: cannot create mock cluster\n");
        goto out;
    }
    for (i = 0; i < ntopics; i++) {
        int n = topics[i].partitions > 0 ? topics[i].partitions : partitions;
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(st.mcluster, topics[i].name, n, 1);
        if (err) {
            fprintf(stderr, "mockkafka: topic %s: %s\n", topics[i].name, rd_kafka_err2str(err));
            goto out;
        }
    }

    if (reply("BOOTSTRAP %s", rd_kafka_mock_cluster_bootstraps(st.mcluster)) != 0)
        goto out;
    if (serve(&st, sfd) == 0)
        rc = 0;

out:
    if (st.mcluster != NULL)
        rd_kafka_mock_cluster_destroy(st.mcluster);
    if (st.rk != NULL)
        rd_kafka_destroy(st.rk);
    if (sfd >= 0)
        close(sfd);
    return rc;
}
