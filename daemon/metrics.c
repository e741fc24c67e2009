/* metrics: the /metrics listener (metrics.listen). libmicrohttpd serves it
 * from one internal thread polling its connections: bwprovd holds no HTTP
 * code of its own. Only GET /metrics is served (404 for anything else);
 * each scrape reads the counters and gauges (health_read for what STATUS=
 * shows too) and renders the text with common/metrics.c, bounded in size;
 * connections are bounded in number, memory and idle time.
 *
 * The socket is bound here, at start, before Kafka is asked anything: an
 * address that cannot be bound is a configuration error (exit 78) that
 * says so at once, rather than a daemon that runs unobserved. */
#include "app.h"

#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CONNECTIONS 16            /* scrapers at once */
#define CONNECTION_TIMEOUT_S 10       /* an idle or stalled connection goes */
#define CONNECTION_MEMORY (16 * 1024) /* per connection, for the request headers */
/* A scrape's text: ~10 KiB plus ~80 bytes a partition and a status seen,
 * far below this even with APP_MAX_PARTITIONS partitions. */
#define MAX_SCRAPE (4 * 1024 * 1024)
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
    struct MHD_Daemon *mhd;
    struct mx_part parts[APP_MAX_PARTITIONS];
};

/* The assigned partitions whose lag the consumer knows. */
static size_t lags(struct app *a, struct mx_part *parts)
{
    size_t n = 0;
    for (int32_t p = 0; p < APP_MAX_PARTITIONS; p++) {
        if (!atomic_load(&a->part_owned[p]))
            continue;
        long long lag = atomic_load(&a->part_lag[p]);
        if (lag >= 0)
            parts[n++] = (struct mx_part){p, lag};
    }
    return n;
}

static long on_wire(struct app *a)
{
    long n = 0;
    for (int p = 0; p < APP_MAX_PARTITIONS; p++)
        n += atomic_load(&a->part_wire[p]);
    return n;
}

static double seconds_until(int64_t epoch_ms, int64_t now_ms)
{
    return epoch_ms ? (double)(epoch_ms - now_ms) / 1000.0 : NAN;
}

/* Reads everything a scrape shows into s (parts: room for its lags). */
static void collect(struct app *a, struct mx_snap *s, struct mx_part *parts)
{
    struct health h;
    health_read(a, &h);
    mx_read(a->mx, &s->t);
    s->version = BWPROVD_VERSION;
    s->topic = a->cfg.topic_events;
    s->pending = atomic_load(&a->pending);
    s->in_flight = (long)atomic_load(&a->n_inflight);
    s->on_wire = on_wire(a);
    s->assigned = h.v.partitions;
    s->parts = parts;
    s->n_parts = lags(a, parts);
    double rate = rl_current(a->rl, app_now_us());
    s->rate = rate > 0 ? rate : INFINITY;
    s->workspaces = (long)st_count(a->state);
    s->subscribers = (long)st_count_subscribers(a->state);
    s->load_ratio = h.v.load_total > 0 && h.v.load_done < h.v.load_total
                        ? (double)h.v.load_done / (double)h.v.load_total
                        : 1.0;
    s->access_expiry_s = seconds_until(h.token.access_expires_ms, h.v.now_ms);
    s->refresh_expiry_s = seconds_until(h.token.refresh_expires_ms, h.v.now_ms);
    s->kafka_up = atomic_load(&a->kafka_seen) && !atomic_load(&a->kafka_down);
    s->webex_up = !atomic_load(&a->webex_down);
    s->auth_ok = h.v.auth_since_ms == 0;
    s->oldest_s = (double)h.v.oldest_age_ms / 1000.0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                             enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            status == MHD_HTTP_OK ? CONTENT_TYPE : "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return reply(c, status, (char *)(uintptr_t)msg, strlen(msg), MHD_RESPMEM_PERSISTENT);
}

/* Serialised by libmicrohttpd's single thread: parts is this listener's. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    struct app *a = cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 || strcmp(url, "/metrics") != 0)
        return text(c, MHD_HTTP_NOT_FOUND, "Not found: bwprovd serves GET /metrics only.\n");
    struct mx_snap s = {0};
    size_t len = 0;
    collect(a, &s, a->metrics->parts);
    char *body = mx_render(&s, MAX_SCRAPE, &len);
    if (!body) {
        log_warn("metrics: a scrape could not be rendered (out of memory)");
        return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "Out of memory.\n");
    }
    return reply(c, MHD_HTTP_OK, body, len, MHD_RESPMEM_MUST_FREE);
}

/* fmt is libmicrohttpd's printf format (the attribute lets the compiler
 * know, so -Wformat-nonliteral accepts it) */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_debug("metrics: libmicrohttpd: %s", msg);
}

/* The listening socket, or -1 with why: EADDRINUSE, EADDRNOTAVAIL (not an
 * address of this host), EACCES (a port below 1024: the unit grants no
 * CAP_NET_BIND_SERVICE). */
static int listen_on(const char *addr, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int one = 1;
    if (cfg_parse_listen(addr, &ss, &sl, err, errlen) != 0)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
        bind(fd, (struct sockaddr *)&ss, sl) == 0 && listen(fd, 64) == 0)
        return fd;
    int e = errno;
    snprintf(err, errlen, "metrics.listen: cannot listen on %s: %s%s", addr, strerror(e),
             e == EACCES ? " (ports below 1024 need CAP_NET_BIND_SERVICE)" : "");
    if (fd >= 0)
        close(fd);
    return -1;
}

int metrics_start(struct app *a, char *err, size_t errlen)
{
    if (!a->cfg.metrics_listen)
        return 0;
    int fd = listen_on(a->cfg.metrics_listen, err, errlen);
    if (fd < 0)
        return EXIT_CONFIG;
    a->metrics = calloc(1, sizeof(*a->metrics));
    a->mx = mx_new();
    if (!a->metrics || !a->mx) {
        close(fd);
        snprintf(err, errlen, "metrics: out of memory");
        return EXIT_FATAL;
    }
    a->metrics->mhd = MHD_start_daemon(
        MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request,
        a, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY, MHD_OPTION_END);
    if (!a->metrics->mhd) {
        close(fd);
        snprintf(err, errlen, "metrics.listen: libmicrohttpd could not start on %s",
                 a->cfg.metrics_listen);
        return EXIT_FATAL;
    }
    log_info("metrics: serving GET /metrics on %s", a->cfg.metrics_listen);
    return 0;
}

void metrics_stop(struct app *a)
{
    if (a->metrics && a->metrics->mhd)
        MHD_stop_daemon(a->metrics->mhd); /* joins its thread, closes the socket */
    if (a->metrics)
        a->metrics->mhd = NULL;
}

void metrics_free(struct app *a)
{
    metrics_stop(a);
    free(a->metrics);
    a->metrics = NULL;
    mx_free(a->mx);
    a->mx = NULL;
}
