/*
 * websim: Webex for BroadWorks workspace and subscriber API simulator (test program).
 *
 * main(): parse options, bind the listen socket, start the libmicrohttpd
 * daemon (thread pool, epoll, suspend/resume), print "LISTENING <url>", then
 * wait in sigwait() for SIGTERM/SIGINT and shut down in order: timer (which
 * resumes every delayed connection), daemon, modules.
 *
 * This file also owns the per-request context (MHD con_cls) and the
 * per-connection context (MHD socket context), and the response helpers.
 */
#include "websim.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define EXIT_USAGE 64
#define SIM_MAX_TOKENS 64
#define SIM_MAX_PEM (1u << 20)

struct sim_opts {
    const char *listen;
    const char *tokens[SIM_MAX_TOKENS];
    size_t n_tokens;
    unsigned threads;
    unsigned idle_timeout_s; /* idle keep-alive connections closed after this */
    const char *tls_cert;
    const char *tls_key;
    const char *faults;
    bool seeded;
    uint64_t seed;
    const char *refresh_token;
    const char *client_id;
    const char *client_secret;
};

/* The listen socket's URL, "http://127.0.0.1:PORT": written once by main()
 * before the daemon starts, read-only afterwards. */
static char sim_url[NI_MAXHOST + NI_MAXSERV + 16];
static bool sim_tls;

/* ------------------------------------------------------------------------ */
/* response helpers                                                          */

void http_self_url(struct MHD_Connection *conn, struct sbuf *out)
{
    static const char host_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789-._:[]";
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    size_t n = host != NULL ? strlen(host) : 0;

    /* The Host header as sent, unless it could break out of the Link's <>. */
    if (n > 0 && n <= 255 && strspn(host, host_chars) == n)
        sbuf_printf(out, "%s://%s", sim_tls ? "https" : "http", host);
    else
        sbuf_puts(out, sim_url);
}

void http_tracking_id(char *out, size_t outsz)
{
    char uuid[40];

    rng_uuid4(uuid, sizeof uuid);
    snprintf(out, outsz, "ROUTER_%s", uuid);
}

void http_error_body(struct sbuf *out, const char *msg, int code, const char *tracking)
{
    sbuf_puts(out, "{\"message\":");
    sbuf_json_str(out, msg);
    sbuf_puts(out, ",\"errors\":[{\"description\":");
    sbuf_json_str(out, msg);
    sbuf_printf(out, ",\"errorCode\":%d}],\"trackingId\":", code);
    sbuf_json_str(out, tracking);
    sbuf_puts(out, "}");
}

bool http_content_type_is(struct MHD_Connection *conn, const char *type)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    size_t n = strlen(type);

    if (h == NULL)
        return false;
    while (*h == ' ' || *h == '\t')
        h++;
    return strncasecmp(h, type, n) == 0 &&
           (h[n] == '\0' || h[n] == ';' || h[n] == ' ' || h[n] == '\t');
}

enum MHD_Result http_send(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                          const char *tracking, unsigned retry_after, const char *allow)
{
    return http_send_link(conn, status, body, len, tracking, retry_after, allow, NULL);
}

enum MHD_Result http_send_link(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                               const char *tracking, unsigned retry_after, const char *allow,
                               const char *link)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char ra[16];
    bool ok = true;

    if (body != NULL)
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    if (len > 0)
        ok = MHD_add_response_header(resp, "Content-Type", "application/json;charset=UTF-8") ==
             MHD_YES;
    if (ok && tracking != NULL)
        ok = MHD_add_response_header(resp, "TrackingID", tracking) == MHD_YES;
    if (ok && retry_after > 0) {
        snprintf(ra, sizeof ra, "%u", retry_after);
        ok = MHD_add_response_header(resp, "Retry-After", ra) == MHD_YES;
    }
    if (ok && allow != NULL)
        ok = MHD_add_response_header(resp, "Allow", allow) == MHD_YES;
    if (ok && link != NULL)
        ok = MHD_add_response_header(resp, "Link", link) == MHD_YES;
    ret = ok ? MHD_queue_response(conn, status, resp) : MHD_NO;
    MHD_destroy_response(resp);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* MHD callbacks                                                             */

static struct sim_req *req_new(struct MHD_Connection *conn, const char *url, const char *method)
{
    struct sim_req *req = calloc(1, sizeof *req);
    const union MHD_ConnectionInfo *ci;

    if (req == NULL)
        return NULL;
    req->conn = conn;
    req->recv_us = clk_mono_us();
    req->phase = PH_RECEIVING;
    snprintf(req->method, sizeof req->method, "%s", method);
    sbuf_init(&req->body);
    req->path = strdup(url);
    if (req->path == NULL) {
        free(req);
        return NULL;
    }
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    req->sconn = ci != NULL ? ci->socket_context : NULL;
    return req;
}

static void req_free(struct sim_req *req)
{
    api_release(req);
    sbuf_free(&req->body);
    free(req->path);
    free(req);
}

/* Take a piece of the body. Returns false when the connection must go. */
static bool req_body_append(struct sim_req *req, const char *data, size_t n)
{
    req->body_seen += n;
    if (req->body_seen > SIM_MAX_DRAIN)
        return false;
    if (req->too_large)
        return true;
    if (req->body.len + n > SIM_MAX_BODY) {
        req->too_large = true;
        sbuf_free(&req->body);
        return true;
    }
    sbuf_put(&req->body, data, n);
    return !req->body.oom;
}

/* A Content-Length above the cap can be refused before the body arrives. */
static bool req_declared_too_large(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    char *end;
    unsigned long long n;

    if (cl == NULL)
        return false;
    errno = 0;
    n = strtoull(cl, &end, 10);
    return errno == 0 && end != cl && n > SIM_MAX_BODY;
}

static enum MHD_Result req_dispatch(struct sim_req *req)
{
    if (strncmp(req->path, "/_sim/", 6) == 0)
        return admin_handle(req);
    return api_begin(req);
}

static enum MHD_Result sim_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **con_cls)
{
    struct sim_req *req = *con_cls;

    (void)cls;
    (void)version;
    if (req == NULL) {
        req = req_new(conn, url, method);
        if (req == NULL)
            return MHD_NO;
        *con_cls = req;
        if (req_declared_too_large(conn)) {
            req->too_large = true;
            return req_dispatch(req); /* answers 413; MHD drops the body */
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        bool ok = req_body_append(req, upload_data, *upload_size);
        *upload_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    switch (req->phase) {
    case PH_RECEIVING:
        return req_dispatch(req);
    case PH_DELAYED:
        return api_finish(req, true);
    case PH_DONE:
        break;
    }
    return MHD_NO;
}

static void sim_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    struct sim_req *req = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (req == NULL)
        return;
    if (req->phase == PH_DELAYED) /* the client left while we waited */
        (void)api_finish(req, false);
    req_free(req);
    *con_cls = NULL;
}

/* Source of sim_conn ids. */
static _Atomic uint64_t sim_conn_ids;

static void sim_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct sim_conn *sc = calloc(1, sizeof *sc); /* NULL is tolerated */

        if (sc != NULL)
            sc->id = atomic_fetch_add_explicit(&sim_conn_ids, 1, memory_order_relaxed) + 1;
        *socket_context = sc;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        free(*socket_context);
        *socket_context = NULL;
    }
}

/* libmicrohttpd's error log, minus the line it prints whenever the access
 * handler returns MHD_NO: that is how resetShare drops connections. */
SIM_PRINTF(2, 0)
static void sim_mhd_log(void *cls, const char *fmt, va_list ap)
{
    static const char dropped[] = "Application reported internal error";
    char msg[512];

    (void)cls;
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0 || strncmp(msg, dropped, sizeof dropped - 1) == 0)
        return;
    fprintf(stderr, "websim: mhd: %s", msg);
}

/* Keep the path raw: sim_api.c splits it into segments and decodes each, so
 * an encoded '/' inside a workspace id cannot change the route. */
static size_t sim_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

/* ------------------------------------------------------------------------ */
/* listen socket                                                             */

/* Split "HOST:PORT" / "[V6]:PORT" into host and port buffers. */
static bool sim_split_addr(const char *addr, char *host, size_t hostsz, char *port, size_t portsz)
{
    const char *colon;
    size_t hlen;

    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (rb == NULL || rb[1] != ':')
            return false;
        addr++;
        hlen = (size_t)(rb - addr);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return false;
        hlen = (size_t)(colon - addr);
    }
    if (hlen == 0 || hlen >= hostsz || strlen(colon + 1) == 0 || strlen(colon + 1) >= portsz ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || atol(colon + 1) > 65535)
        return false;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    snprintf(port, portsz, "%s", colon + 1);
    return true;
}

/* Bind and listen on addr; returns the socket, or -1 with a message. */
static int sim_listen(const char *addr)
{
    char host[256], port[16];
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, rc, one = 1;

    if (!sim_split_addr(addr, host, sizeof host, port, sizeof port)) {
        fprintf(stderr, "websim: bad --listen address %s (want HOST:PORT or [V6]:PORT)\n", addr);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "websim: %s: %s\n", addr, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, "websim: cannot listen on %s: %s\n", addr, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

/* Work out sim_url for the bound socket. */
static bool sim_describe(int fd, bool tls)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return false;
    sim_tls = tls;
    snprintf(sim_url, sizeof sim_url, ss.ss_family == AF_INET6 ? "%s://[%s]:%s" : "%s://%s:%s",
             tls ? "https" : "http", host, serv);
    return true;
}

/* Print the LISTENING line. */
static bool sim_announce(void)
{
    printf("LISTENING %s\n", sim_url);
    return fflush(stdout) == 0;
}

/* ------------------------------------------------------------------------ */
/* options                                                                   */

static void sim_usage(FILE *f)
{
    fprintf(
        f,
        "usage: websim [--listen ADDR:PORT] [--token TOKEN]... [--threads N]\n"
        "              [--idle-timeout SECONDS]\n"
        "              [--tls-cert FILE --tls-key FILE] [--faults JSON] [--seed N]\n"
        "              [--refresh-token T] [--client-id ID] [--client-secret S]\n"
        "Webex for BroadWorks workspace and subscriber API simulator; see tests/sim/README.md.\n");
}

static bool sim_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long n;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || n > max)
        return false;
    *out = n;
    return true;
}

/* Returns 0, or the exit status for main(). */
static int sim_parse_opts(int argc, char **argv, struct sim_opts *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"token", required_argument, NULL, 't'},
        {"threads", required_argument, NULL, 'n'},
        {"idle-timeout", required_argument, NULL, 'I'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"faults", required_argument, NULL, 'f'},
        {"seed", required_argument, NULL, 's'},
        {"refresh-token", required_argument, NULL, 'r'},
        {"client-id", required_argument, NULL, 'i'},
        {"client-secret", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    uint64_t v;

    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:0";
    o->threads = 2;
    o->idle_timeout_s = 120;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen = optarg;
            break;
        case 't':
            if (o->n_tokens == SIM_MAX_TOKENS || optarg[0] == '\0' || strlen(optarg) > 255) {
                fprintf(stderr, "websim: --token: empty, too long, or more than %d\n",
                        SIM_MAX_TOKENS);
                return EXIT_USAGE;
            }
            o->tokens[o->n_tokens++] = optarg;
            break;
        case 'n':
            if (!sim_parse_uint(optarg, 256, &v) || v == 0) {
                fprintf(stderr, "websim: --threads must be 1..256\n");
                return EXIT_USAGE;
            }
            o->threads = (unsigned)v;
            break;
        case 'I':
            if (!sim_parse_uint(optarg, 86400, &v) || v == 0) {
                fprintf(stderr, "websim: --idle-timeout must be 1..86400 seconds\n");
                return EXIT_USAGE;
            }
            o->idle_timeout_s = (unsigned)v;
            break;
        case 'c':
            o->tls_cert = optarg;
            break;
        case 'k':
            o->tls_key = optarg;
            break;
        case 'f':
            o->faults = optarg;
            break;
        case 's':
            if (!sim_parse_uint(optarg, UINT64_MAX, &o->seed)) {
                fprintf(stderr, "websim: --seed must be an unsigned integer\n");
                return EXIT_USAGE;
            }
            o->seeded = true;
            break;
        case 'r':
            o->refresh_token = optarg;
            break;
        case 'i':
            o->client_id = optarg;
            break;
        case 'S':
            o->client_secret = optarg;
            break;
        case 'h':
            sim_usage(stdout);
            return -1;
        default:
            sim_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || (o->tls_cert == NULL) != (o->tls_key == NULL)) {
        sim_usage(stderr);
        return EXIT_USAGE;
    }
    return 0;
}

/* Read a whole (small) file into a NUL-terminated malloc'd buffer. */
static char *sim_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "websim: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(SIM_MAX_PEM + 1);
    n = buf ? fread(buf, 1, SIM_MAX_PEM + 1, f) : 0;
    if (buf == NULL || ferror(f) || n > SIM_MAX_PEM) {
        fprintf(stderr, "websim: %s: unreadable or larger than 1 MiB\n", path);
        free(buf);
        buf = NULL;
    } else {
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */

/* Up to 4096 connections plus the delayed ones need more than 1024 fds. */
static void sim_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int sim_init_modules(const struct sim_opts *o)
{
    struct auth_config ac = {
        .tokens = o->tokens,
        .n_tokens = o->n_tokens,
        .refresh_token = o->refresh_token,
        .client_id = o->client_id,
        .client_secret = o->client_secret,
    };
    char err[256];

    if (store_init() != 0 || subs_init() != 0 || reqlog_init() != 0 || guard_init() != 0 ||
        auth_init(&ac) != 0 || faults_init() != 0) {
        fprintf(stderr, "websim: initialisation failed\n");
        return -1;
    }
    if (o->faults != NULL &&
        faults_apply_json(o->faults, strlen(o->faults), err, sizeof err) != 0) {
        fprintf(stderr, "websim: --faults: %s\n", err);
        return -1;
    }
    if (timer_start() != 0) {
        fprintf(stderr, "websim: cannot start the timer thread\n");
        return -1;
    }
    return 0;
}

static void sim_fini_modules(void)
{
    timer_fini();
    faults_fini();
    auth_fini();
    guard_fini();
    reqlog_fini();
    subs_fini();
    store_fini();
}

static struct MHD_Daemon *sim_start_daemon(const struct sim_opts *o, int fd, char *cert, char *key)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    struct MHD_OptionItem extra[4];
    size_t n = 0;

    /* MHD warns about a pool of 0 or 1: then its one internal thread serves. */
    if (o->threads > 1)
        extra[n++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)o->threads, NULL};
    if (cert != NULL) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            fprintf(stderr, "websim: libmicrohttpd was built without TLS\n");
            return NULL;
        }
        flags |= MHD_USE_TLS;
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
        extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
    }
    extra[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return MHD_start_daemon(
        flags, 0, NULL, NULL, sim_handler, NULL, MHD_OPTION_EXTERNAL_LOGGER, sim_mhd_log,
        NULL, /* must be first */
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)4096,
        MHD_OPTION_CONNECTION_TIMEOUT, o->idle_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
        sim_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, sim_conn_notify, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, sim_unescape, NULL, MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
}

/* Block until SIGTERM or SIGINT. */
static void sim_wait_signal(const sigset_t *set)
{
    int sig = 0;

    while (sigwait(set, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
        ;
    fprintf(stderr, "websim: got signal %d, stopping\n", sig);
}

int main(int argc, char **argv)
{
    struct sim_opts o;
    struct MHD_Daemon *d = NULL;
    char *cert = NULL, *key = NULL;
    sigset_t set;
    struct sigaction sa;
    int rc, fd = -1, status = 1;

    rc = sim_parse_opts(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    /* Signals: SIGTERM/SIGINT are taken by sigwait() in this thread only
     * (blocked before any thread starts, so every thread inherits the mask). */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return 1;

    sim_raise_nofile();
    rng_configure(o.seed, o.seeded);
    if (o.tls_cert != NULL &&
        ((cert = sim_read_file(o.tls_cert)) == NULL || (key = sim_read_file(o.tls_key)) == NULL))
        goto out;
    if (sim_init_modules(&o) != 0)
        goto out;
    fd = sim_listen(o.listen);
    if (fd < 0)
        goto stop;
    if (!sim_describe(fd, cert != NULL)) {
        close(fd);
        goto stop;
    }
    d = sim_start_daemon(&o, fd, cert, key);
    if (d == NULL) {
        fprintf(stderr, "websim: cannot start the HTTP daemon\n");
        close(fd);
        goto stop;
    }
    if (!sim_announce())
        goto stop;
    sim_wait_signal(&set);
    status = 0;
stop:
    timer_stop(); /* resumes every delayed connection: MHD must have none suspended */
    if (d != NULL)
        MHD_stop_daemon(d); /* also closes fd */
    sim_fini_modules();
out:
    free(cert);
    free(key);
    return status;
}
