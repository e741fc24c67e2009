/* curlfloor: the CPU libcurl alone spends per request, the floor of
 * bwprovd's CPU cost per event.
 *
 * The benchmark's target is 40 us of CPU per event at zero API latency, and
 * a profile of the daemon gives about half of its cost to libcurl and the
 * kernel's loopback TCP work. This program makes the daemon's requests and
 * nothing else, so the closing note can say how much of the target libcurl
 * leaves: POST BASE/broadworks/workspaces with the daemon's body and
 * headers, the options daemon/engine.c sets, curl's multi socket interface
 * on epoll as engine.c drives it, easy handles reused with their fixed
 * options (--reset adds a curl_easy_reset and sets them again per
 * request, as bwprovd did before), K transfers in flight on kept-alive
 * connections. No Kafka, no JSON library, no state table: the daemon
 * cannot spend much less than this per event while it makes its requests
 * with libcurl. One difference, on the daemon's side: its workers keep an
 * idle pooled connection in the epoll set between requests, saving the two
 * epoll_ctl calls a request that this plain socket callback makes.
 *
 *   curlfloor --url BASE --requests N [--in-flight K] [--token TOKEN]
 *             [--ca FILE] [--threads T] [--tag TAG] [--reset]
 *
 * A warm-up of K requests first opens the connections (and makes the TLS
 * handshakes). The N measured requests then give one JSON line on stdout:
 * wall time, the user+sys CPU of the whole process (getrusage, every
 * thread) and the CPU per request. Exit status: 0 when every request got
 * 200 or 201, 1 otherwise (or after the 120 s deadline), 64 for usage.
 *
 * Built by the `curlfloor` target of bench/CMakeLists.txt; run it against
 * tests/sim/websim on loopback (websim --token test-token-0123456789).
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 64
#define DEADLINE_US (120 * 1000000LL) /* the whole run, warm-up included */
#define TIMEOUT_MS 30000L             /* webex.timeout_ms's default */
#define CONNECT_TIMEOUT_MS 10000L     /* engine.c: min(webex.timeout_ms, 10 s) */
#define MAX_POLL_MS 200
#define MAX_EVENTS 64
#define MAX_ERRORS_SHOWN 5
#define MAX_REQUESTS 99999999L                /* keeps the userIds' "%08ld" at 8 digits */
#define DEFAULT_TOKEN "test-token-0123456789" /* tests/lib/bwtest.py's */

struct config {
    char *url;  /* BASE/broadworks/workspaces */
    char *auth; /* "Authorization: Bearer TOKEN", shared read-only by every transfer */
    const char *ca;
    char tag[32]; /* makes this run's userIds new to a simulator that saw earlier runs */
    char capath[512];
    long requests, in_flight, threads;
    bool https, reset;
    int64_t deadline_us;
};

struct worker;

struct xfer {
    CURL *easy;
    struct worker *w;
    bool busy;                       /* added to the multi handle */
    struct curl_slist n_auth, n_tid; /* head of the header list, as engine.c builds it */
    char tid[96];
    char body[512];
    long body_len;
    char errbuf[CURL_ERROR_SIZE];
};

/* One curl multi handle on its own epoll set and thread, like one of the
 * daemon's HTTP workers. */
struct worker {
    const struct config *cfg;
    pthread_t thread;
    CURLM *multi;
    int epfd;
    int64_t due_us; /* curl's timer (CURLMOPT_TIMERFUNCTION); INT64_MAX: none */
    struct xfer *xfers;
    long nx;
    long next, end; /* the phase's request indexes not started yet: [next, end) */
    long running;
    long ok, failed, connects, http2, shown;
    uint64_t bytes;
    bool fatal;
};

static int64_t now_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0; /* cannot fail for CLOCK_MONOTONIC on Linux */
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- one transfer --- */

/* The response is counted and dropped: keeping it is the daemon's cost. */
static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    (void)ptr;
    x->w->bytes += size * n;
    return size * n;
}

/* Set because the daemon sets one (curl hands it every header line); the
 * daemon's parsing of them is its own cost, not curl's. */
static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    (void)line;
    (void)arg;
    return size * n;
}

/* engine.c's Retry-After gate lives here; curl's side is the call. */
static int on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port)
{
    (void)arg;
    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    return CURL_PREREQFUNC_OK;
}

/* Static header nodes, as engine.c has them: a request allocates nothing
 * for its headers. */
static char h_accept[] = "Accept: application/json";
static char h_expect[] = "Expect:";
static char h_ctype[] = "Content-Type: application/json";
static struct curl_slist n_ctype = {h_ctype, NULL};
static struct curl_slist n_expect = {h_expect, &n_ctype};
static struct curl_slist n_with_body = {h_accept, &n_expect};

/* The body of bench.py's provision events, in request.c's field order. */
static int set_request(struct xfer *x, long i)
{
    const char *tag = x->w->cfg->tag;
    int tl = snprintf(x->tid, sizeof(x->tid), "TrackingID: curlfloor_%s-%08ld", tag, i);
    int bl = snprintf(x->body, sizeof(x->body),
                      "{\"provisioningId\":\"ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2O"
                      "jQyODVm%s%08ld\",\"userId\":\"%08ld.floor%s@sp.com\",\"spEnterpriseId\":"
                      "\"Reseller1+acme\",\"displayName\":\"Room %ld\",\"primaryPhoneNumber\":"
                      "\"+1-240-555-%04ld\",\"extension\":\"5%04ld\"}",
                      tag, i, i, tag, i, i % 10000, i % 10000);
    if (tl < 0 || tl >= (int)sizeof(x->tid) || bl < 0 || bl >= (int)sizeof(x->body))
        return -1;
    x->body_len = bl;
    x->n_auth = (struct curl_slist){x->w->cfg->auth, &x->n_tid};
    x->n_tid = (struct curl_slist){x->tid, &n_with_body};
    return 0;
}

static bool set_callbacks(struct xfer *x)
{
    CURL *h = x->easy;
    return curl_easy_setopt(h, CURLOPT_PRIVATE, x) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_WRITEDATA, x) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_HEADERDATA, x) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_PREREQDATA, x) == CURLE_OK;
}

/* engine.c's set_fixed_options() and http_set_ca(), option for option:
 * set once per handle (and again after --reset). */
static bool set_fixed_options(struct xfer *x)
{
    const struct config *c = x->w->cfg;
    CURL *h = x->easy;
    bool ok = curl_easy_setopt(h, CURLOPT_USERAGENT, "curlfloor/" BWPROVD_VERSION) == CURLE_OK &&
              set_callbacks(x) && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_PIPEWAIT, c->https ? 1L : 0L) == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
    if (ok && c->ca)
        ok = curl_easy_setopt(h, CURLOPT_CAINFO, c->ca) == CURLE_OK &&
             (!c->capath[0] || curl_easy_setopt(h, CURLOPT_CAPATH, c->capath) == CURLE_OK);
    return ok;
}

/* engine.c's set_request_options(): what changes per request. */
static bool set_request_options(struct xfer *x)
{
    const struct config *c = x->w->cfg;
    CURL *h = x->easy;
    return curl_easy_setopt(h, CURLOPT_URL, c->url) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_HTTPHEADER, &x->n_auth) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TIMEOUT_MS) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, x->body_len) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL) == CURLE_OK;
}

static int start_request(struct xfer *x, long i)
{
    bool fixed = true;
    if (x->w->cfg->reset) {
        curl_easy_reset(x->easy);
        fixed = set_fixed_options(x);
    }
    x->errbuf[0] = '\0';
    if (!fixed || set_request(x, i) != 0 || !set_request_options(x)) {
        fprintf(stderr, "curlfloor: cannot set up request %ld\n", i);
        return -1;
    }
    CURLMcode mc = curl_multi_add_handle(x->w->multi, x->easy);
    if (mc != CURLM_OK) {
        fprintf(stderr, "curlfloor: curl_multi_add_handle: %s\n", curl_multi_strerror(mc));
        return -1;
    }
    x->busy = true;
    x->w->running++;
    return 0;
}

static void count_result(struct worker *w, struct xfer *x, CURLcode rc)
{
    long status = 0, conns = 0, version = 0;
    if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
        curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &conns) != CURLE_OK ||
        curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version) != CURLE_OK)
        status = -1;
    w->connects += conns;
    w->http2 += version == CURL_HTTP_VERSION_2_0;
    if (rc == CURLE_OK && (status == 200 || status == 201)) {
        w->ok++;
        return;
    }
    w->failed++;
    if (w->shown++ < MAX_ERRORS_SHOWN)
        fprintf(stderr, "curlfloor: %s: status %ld, %s%s%s\n", x->tid + sizeof("TrackingID:"),
                status, curl_easy_strerror(rc), x->errbuf[0] ? ": " : "", x->errbuf);
}

/* Finished transfers are counted and their handles start the next request
 * at once, so K stay in flight until the phase runs out of requests. */
static int reap(struct worker *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL; /* CURLINFO_PRIVATE hands back a char * */
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result; /* m is invalid after the removal */
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv)
            return -1;
        struct xfer *x = (struct xfer *)(void *)priv;
        count_result(w, x, rc);
        CURLMcode mc = curl_multi_remove_handle(w->multi, easy);
        if (mc != CURLM_OK) {
            fprintf(stderr, "curlfloor: curl_multi_remove_handle: %s\n", curl_multi_strerror(mc));
            return -1;
        }
        x->busy = false;
        w->running--;
        if (w->next < w->end && start_request(x, w->next++) != 0)
            return -1;
    }
    return 0;
}

/* --- curl's socket interface on epoll, as engine.c drives it --- */

static int on_socket(CURL *h, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct worker *w = arg;
    struct epoll_event ev = {0};
    (void)h;
    ev.data.fd = fd;
    if (what == CURL_POLL_REMOVE) {
        /* curl forgets its sockp for fd itself after a REMOVE */
        if (sockp && epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL) != 0) {
            fprintf(stderr, "curlfloor: epoll_ctl DEL: %s\n", strerror(errno));
            w->fatal = true;
        }
        return 0;
    }
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    if (epoll_ctl(w->epfd, sockp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
        fprintf(stderr, "curlfloor: epoll_ctl: %s\n", strerror(errno));
        w->fatal = true;
    } else if (!sockp && curl_multi_assign(w->multi, fd, w) != CURLM_OK) {
        w->fatal = true; /* any non-NULL sockp marks "registered" */
    }
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *arg)
{
    struct worker *w = arg;
    (void)m;
    w->due_us = timeout_ms < 0 ? INT64_MAX : now_us() + (int64_t)timeout_ms * 1000;
    return 0;
}

static int wait_ms(const struct worker *w)
{
    if (w->due_us == INT64_MAX)
        return MAX_POLL_MS;
    int64_t left = w->due_us - now_us();
    if (left <= 0)
        return 0;
    return left >= MAX_POLL_MS * 1000LL ? MAX_POLL_MS : (int)((left + 999) / 1000);
}

static bool socket_action(struct worker *w, curl_socket_t fd, int flags)
{
    int running;
    CURLMcode mc = curl_multi_socket_action(w->multi, fd, flags, &running);
    if (mc == CURLM_OK)
        return true;
    fprintf(stderr, "curlfloor: curl_multi_socket_action: %s\n", curl_multi_strerror(mc));
    return false;
}

static int dispatch(struct worker *w)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(w->epfd, evs, MAX_EVENTS, wait_ms(w));
    if (n < 0 && errno != EINTR) {
        fprintf(stderr, "curlfloor: epoll_wait: %s\n", strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                    (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        if (!socket_action(w, evs[i].data.fd, flags))
            return -1;
    }
    if (now_us() >= w->due_us) {
        w->due_us = INT64_MAX;
        if (!socket_action(w, CURL_SOCKET_TIMEOUT, 0))
            return -1;
    }
    return 0;
}

/* --- a phase: requests [next, end) on one worker --- */

static int run_phase(struct worker *w)
{
    for (long s = 0; s < w->nx && w->next < w->end; s++)
        if (start_request(&w->xfers[s], w->next++) != 0)
            return -1;
    while (w->running > 0) {
        if (now_us() > w->cfg->deadline_us) {
            fprintf(stderr, "curlfloor: the %lld s deadline passed with %ld transfers running\n",
                    DEADLINE_US / 1000000, w->running);
            return -1;
        }
        if (dispatch(w) != 0 || reap(w) != 0 || w->fatal)
            return -1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (run_phase(w) != 0)
        w->fatal = true;
    return NULL;
}

static int worker_init(struct worker *w, const struct config *cfg, long slots)
{
    w->cfg = cfg;
    w->due_us = INT64_MAX;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->multi = curl_multi_init();
    w->xfers = calloc((size_t)slots, sizeof(*w->xfers));
    if (w->epfd < 0 || !w->multi || !w->xfers)
        return -1;
    for (w->nx = 0; w->nx < slots; w->nx++) {
        w->xfers[w->nx].w = w;
        if (!(w->xfers[w->nx].easy = curl_easy_init()) || !set_fixed_options(&w->xfers[w->nx]))
            return -1;
    }
    /* engine_new(): multiplexing only over TLS (HTTP/2 via ALPN); no host
     * connection limit, the in-flight count bounds the connections. */
    return curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_socket) == CURLM_OK &&
                   curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w) == CURLM_OK &&
                   curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_timer) == CURLM_OK &&
                   curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w) == CURLM_OK &&
                   curl_multi_setopt(w->multi, CURLMOPT_PIPELINING,
                                     cfg->https ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING) ==
                       CURLM_OK &&
                   curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, slots) == CURLM_OK
               ? 0
               : -1;
}

static void worker_free(struct worker *w)
{
    for (long s = 0; s < w->nx; s++) {
        struct xfer *x = &w->xfers[s];
        if (x->busy && curl_multi_remove_handle(w->multi, x->easy) != CURLM_OK)
            fprintf(stderr, "curlfloor: curl_multi_remove_handle failed at exit\n");
    }
    /* the multi handle closes the connections: the epoll set must outlive it */
    if (w->multi && curl_multi_cleanup(w->multi) != CURLM_OK)
        fprintf(stderr, "curlfloor: curl_multi_cleanup failed\n");
    for (long s = 0; s < w->nx; s++)
        curl_easy_cleanup(w->xfers[s].easy);
    free(w->xfers);
    if (w->epfd >= 0)
        close(w->epfd);
}

/* Runs requests [first, first + count) split over the workers; count 0:
 * the warm-up, one request per transfer slot. Returns 0 unless a worker
 * hit an error other than a failed request. */
static int run_all(struct worker *ws, long nw, long first, long count)
{
    for (long i = 0; i < nw; i++) {
        long n = count ? count / nw + (i < count % nw) : ws[i].nx;
        ws[i].next = first;
        ws[i].end = first += n;
    }
    if (nw == 1) { /* no thread: a single worker costs what one daemon worker does */
        worker_main(&ws[0]);
        return ws[0].fatal ? -1 : 0;
    }
    long started = 0;
    for (; started < nw; started++) {
        int e = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);
        if (e != 0) {
            fprintf(stderr, "curlfloor: pthread_create: %s\n", strerror(e));
            break;
        }
    }
    int rc = started == nw ? 0 : -1;
    for (long i = 0; i < started; i++) {
        int e = pthread_join(ws[i].thread, NULL);
        if (e != 0 || ws[i].fatal)
            rc = -1;
    }
    return rc;
}

/* --- set-up and report --- */

static void usage(FILE *out)
{
    fprintf(out, "usage: curlfloor --url BASE --requests N [--in-flight K (256)]\n"
                 "                 [--token TOKEN (" DEFAULT_TOKEN ")] [--ca FILE]\n"
                 "                 [--threads T (1)] [--tag TAG] [--reset]\n"
                 "POSTs N workspaces to BASE/broadworks/workspaces as bwprovd does, after a\n"
                 "warm-up of K, and prints the CPU libcurl spent per request as JSON.\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

static int set_strings(struct config *c, const char *base, const char *token, const char *tag)
{
    size_t bl = strlen(base);
    bool slash = bl > 0 && base[bl - 1] == '/';
    c->https = strncasecmp(base, "https://", 8) == 0;
    if (!c->https && strncasecmp(base, "http://", 7) != 0) {
        fprintf(stderr, "curlfloor: --url must be http:// or https://\n");
        return -1;
    }
    /* the tag goes into JSON strings and a header unescaped */
    bool tag_ok = !tag || (*tag && strlen(tag) < sizeof(c->tag));
    for (const char *p = tag; tag_ok && p && *p; p++)
        tag_ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');
    if (!tag_ok) {
        fprintf(stderr, "curlfloor: --tag takes 1 to %zu letters and digits\n", sizeof(c->tag) - 1);
        return -1;
    }
    c->url = join(base, slash ? "broadworks/workspaces" : "/broadworks/workspaces");
    c->auth = join("Authorization: Bearer ", token);
    if (!c->url || !c->auth)
        return -1;
    /* a tag new to the simulator: its workspaces answer 409 to a userId seen before */
    int n = tag ? snprintf(c->tag, sizeof(c->tag), "%s", tag)
                : snprintf(c->tag, sizeof(c->tag), "%lx%lx", (long)getpid(),
                           (long)(now_us() / 1000 % 0x100000));
    return n > 0 && n < (int)sizeof(c->tag) ? 0 : -1;
}

/* http_set_ca(): the --ca file plus libcurl's built-in CA directory. */
static void find_capath(struct config *c)
{
    CURL *h = curl_easy_init();
    char *dir = NULL;
    if (h && curl_easy_getinfo(h, CURLINFO_CAPATH, &dir) == CURLE_OK && dir)
        snprintf(c->capath, sizeof(c->capath), "%s", dir);
    if (h)
        curl_easy_cleanup(h);
}

static int parse_args(int argc, char **argv, struct config *c)
{
    static const struct option longopts[] = {{"url", required_argument, NULL, 'u'},
                                             {"requests", required_argument, NULL, 'n'},
                                             {"in-flight", required_argument, NULL, 'k'},
                                             {"token", required_argument, NULL, 't'},
                                             {"ca", required_argument, NULL, 'c'},
                                             {"threads", required_argument, NULL, 'T'},
                                             {"tag", required_argument, NULL, 'g'},
                                             {"reset", no_argument, NULL, 'R'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *base = NULL, *token = DEFAULT_TOKEN, *tag = NULL;
    int o;
    bool ok = true;
    c->in_flight = 256;
    c->threads = 1;
    c->reset = false;
    while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (o) {
        case 'u':
            base = optarg;
            break;
        case 'n':
            ok = ok && parse_long(optarg, 1, MAX_REQUESTS, &c->requests);
            break;
        case 'k':
            ok = ok && parse_long(optarg, 1, 65536, &c->in_flight);
            break;
        case 't':
            token = optarg;
            break;
        case 'c':
            c->ca = optarg;
            break;
        case 'T':
            ok = ok && parse_long(optarg, 1, 64, &c->threads);
            break;
        case 'g':
            tag = optarg;
            break;
        case 'R':
            c->reset = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            ok = false;
        }
    }
    if (!ok || optind != argc || !base || !c->requests || c->threads > c->in_flight ||
        c->requests + c->in_flight > MAX_REQUESTS) {
        usage(stderr);
        return -1;
    }
    return set_strings(c, base, token, tag);
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double cpu_s(const struct rusage *ru, bool sys)
{
    return tv_s(sys ? ru->ru_stime : ru->ru_utime);
}

/* curl_version() as a JSON string (it has no quotes today; be safe). */
static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++)
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s >= 0x20)
            putchar(*s);
    putchar('"');
}

struct totals {
    long ok, failed, connects, http2;
    uint64_t bytes;
};

static struct totals sum_and_clear(struct worker *ws, long nw)
{
    struct totals t = {0};
    for (long i = 0; i < nw; i++) {
        t.ok += ws[i].ok;
        t.failed += ws[i].failed;
        t.connects += ws[i].connects;
        t.http2 += ws[i].http2;
        t.bytes += ws[i].bytes;
        ws[i].ok = ws[i].failed = ws[i].connects = ws[i].http2 = 0;
        ws[i].bytes = 0;
    }
    return t;
}

static void report(const struct config *c, const struct totals *warm, const struct totals *t,
                   double wall, const struct rusage *r0, const struct rusage *r1)
{
    double user = cpu_s(r1, false) - cpu_s(r0, false), sys = cpu_s(r1, true) - cpu_s(r0, true);
    printf("{\"requests\":%ld,\"ok\":%ld,\"failed\":%ld,\"wall_s\":%.3f,\"cpu_s\":%.3f,"
           "\"user_s\":%.3f,\"sys_s\":%.3f,\"us_per_request\":%.2f,\"requests_per_s\":%.0f,"
           "\"in_flight\":%ld,\"threads\":%ld,\"https\":%s,\"easy_reset\":%s,"
           "\"warmup_new_connections\":%ld,\"new_connections\":%ld,\"http2_transfers\":%ld,"
           "\"response_bytes\":%" PRIu64 ",\"curl\":",
           c->requests, t->ok, t->failed, wall, user + sys, user, sys,
           (user + sys) * 1e6 / (double)c->requests, (double)c->requests / wall, c->in_flight,
           c->threads, c->https ? "true" : "false", c->reset ? "true" : "false", warm->connects,
           t->connects, t->http2, t->bytes);
    print_json_string(curl_version());
    printf("}\n");
}

/* The warm-up, then the measured run and its report; 0 when every
 * measured request succeeded. */
static int measure(const struct config *c, struct worker *ws)
{
    if (run_all(ws, c->threads, 0, 0) != 0)
        return -1;
    struct totals warm = sum_and_clear(ws, c->threads);
    if (warm.failed) {
        fprintf(stderr, "curlfloor: %ld of the %ld warm-up requests failed\n", warm.failed,
                warm.ok + warm.failed);
        return -1;
    }
    struct rusage r0, r1;
    if (getrusage(RUSAGE_SELF, &r0) != 0)
        return -1;
    int64_t t0 = now_us();
    int rc = run_all(ws, c->threads, warm.ok, c->requests);
    int64_t t1 = now_us();
    if (getrusage(RUSAGE_SELF, &r1) != 0 || rc != 0)
        return -1;
    struct totals t = sum_and_clear(ws, c->threads);
    report(c, &warm, &t, (double)(t1 - t0) / 1e6, &r0, &r1);
    return t.ok == c->requests ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct config c = {0};
    c.deadline_us = now_us() + DEADLINE_US;
    if (parse_args(argc, argv, &c) != 0) {
        free(c.url);
        free(c.auth);
        return EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curlfloor: curl_global_init failed\n");
        return 1;
    }
    if (c.ca)
        find_capath(&c);
    long per = (c.in_flight + c.threads - 1) / c.threads; /* engines_start()'s split */
    struct worker *ws = calloc((size_t)c.threads, sizeof(*ws));
    int rc = ws ? 0 : -1;
    for (long i = 0; ws && i < c.threads; i++)
        ws[i].epfd = -1;
    for (long i = 0; rc == 0 && i < c.threads; i++)
        if (worker_init(&ws[i], &c, per) != 0) {
            fprintf(stderr, "curlfloor: cannot set up worker %ld\n", i);
            rc = -1;
        }
    if (rc == 0)
        rc = measure(&c, ws);
    for (long i = 0; ws && i < c.threads; i++)
        worker_free(&ws[i]);
    free(ws);
    free(c.url);
    free(c.auth);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}
