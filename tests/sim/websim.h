/*
 * websim: a Webex for BroadWorks workspace and subscriber API simulator for bwprovd's tests.
 *
 * Shared declarations of the simulator's modules. Each module keeps its state
 * in file-static variables behind its own mutex (or atomics), with an
 * xxx_init()/xxx_fini() pair called from main() before the HTTP threads start
 * and after they stop. Unless a comment says otherwise, every function here is
 * thread-safe.
 *
 *   sim_util.c    clk_ (clocks), rng_ (per-thread RNG), b64url/pct codecs,
 *                 sbuf_ (growable string buffer with JSON escaping), smap_
 *                 (string-keyed open-addressing hash map, not thread-safe)
 *   sim_store.c   store_  workspaces, indexed by id and by userId
 *   sim_subs.c    subs_   subscribers: indexes, creation order, the pending
 *                         asynchronous transitions (applied lazily)
 *   sim_subapi.c  subapi_ the subscriber routes: bodies, list query, Link
 *   sim_log.c     reqlog_ request log, stats_ counters
 *   sim_guard.c   guard_  protocol-violation detectors (Retry-After: 429 for
 *                         all, 423 per user; concurrent requests per user)
 *   sim_auth.c    auth_   bearer tokens, token expiry, /v1/access_token
 *   sim_faults.c  faults_ fault-injection settings and per-request decisions
 *   sim_timer.c   timer_  delayed responses: resumes suspended connections
 *   sim_api.c     api_    the /v1 API (routing, validation, responses)
 *   sim_admin.c   admin_  the /_sim/ admin API
 *   websim.c      main(): options, listen socket, MHD daemon, signals
 */
#ifndef WEBSIM_H
#define WEBSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

/* The subscriber collection's path. */
#define API_SUB_PATH "/v1/broadworks/subscribers"

/* Largest request body accepted; larger ones get 413. */
#define SIM_MAX_BODY (64u * 1024u)
/* Bodies beyond this are not even drained: the connection is dropped. */
#define SIM_MAX_DRAIN (16u * 1024u * 1024u)
/* Longest Retry-After (seconds) the simulator will ever send. */
#define SIM_MAX_RETRY_AFTER 3600u
/* Size of a response tracking id buffer: "ROUTER_" + uuid + NUL. */
#define SIM_TRACKING_LEN 48

#if defined(__GNUC__)
#define SIM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SIM_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------------ */
/* clk_: clocks                                                              */

/* Monotonic time in microseconds (CLOCK_MONOTONIC). */
uint64_t clk_mono_us(void);
/* Current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (>= 32 bytes). */
void clk_utc_iso(char *out, size_t outsz);
/* Wall-clock time (CLOCK_REALTIME) in milliseconds since the epoch. */
int64_t clk_wall_ms(void);
/* Epoch milliseconds ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (>= 32 bytes). */
void clk_iso_of_ms(int64_t ms, char *out, size_t outsz);

/* ------------------------------------------------------------------------ */
/* rng_: fast per-thread pseudo-random numbers (xoshiro256**)                */

/* Call once from main() before any thread starts. fixed=true makes every
 * thread's sequence derive from seed (thread n gets stream n). */
void rng_configure(uint64_t seed, bool fixed);
uint64_t rng_next(void);
/* Uniform double in [0, 1). */
double rng_unit(void);
/* Uniform integer in [0, n); n == 0 gives 0. */
uint64_t rng_below(uint64_t n);
/* Random UUID v4, lowercase, into out (>= 37 bytes). */
void rng_uuid4(char *out, size_t outsz);
/* Random opaque token of nbytes random bytes, base64url, into out. */
void rng_token(char *out, size_t outsz, size_t nbytes);

/* ------------------------------------------------------------------------ */
/* codecs                                                                    */

/* base64url without padding. Returns the length written (NUL-terminated),
 * or 0 when out is too small. */
size_t b64url_encode(const void *in, size_t n, char *out, size_t outsz);
/* Append s percent-encoded for a URL query value (all but ALPHA, DIGIT and
 * "-._~" escaped). */
struct sbuf;
void pct_encode(struct sbuf *out, const char *s);
/* Percent-decode in[0..n) into out (NUL-terminated). plus_is_space for
 * application/x-www-form-urlencoded. Fails on a malformed escape, on %00 and
 * when out is too small. */
bool pct_decode(const char *in, size_t n, bool plus_is_space, char *out, size_t outsz);

/* Parse exactly one strict JSON object (UTF-8 checked, nothing but white
 * space after it) from s[0..len). Returns a new json_object the caller must
 * json_object_put(), or NULL with a reason in *why. */
struct json_object;
struct json_object *sim_json_parse_object(const char *s, size_t len, const char **why);

/* ------------------------------------------------------------------------ */
/* sbuf_: growable NUL-terminated string buffer. Allocation failures are
 * sticky: after one, appends are ignored and sb->oom stays true. Not
 * thread-safe (one owner).                                                 */

struct sbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
};

void sbuf_init(struct sbuf *sb);
void sbuf_free(struct sbuf *sb);
void sbuf_put(struct sbuf *sb, const char *s, size_t n);
void sbuf_puts(struct sbuf *sb, const char *s);
void sbuf_printf(struct sbuf *sb, const char *fmt, ...) SIM_PRINTF(2, 3);
/* Append s as a JSON string literal (quotes, escapes, invalid UTF-8 becomes
 * U+FFFD), or the literal null when s is NULL. */
void sbuf_json_str(struct sbuf *sb, const char *s);
/* Hand the buffer to the caller (free() it); NULL after an allocation
 * failure. The sbuf is left empty. */
char *sbuf_take(struct sbuf *sb, size_t *len);

/* Make room in a growable array *arr (*cap elements of elem bytes, len in
 * use) for one more element: doubles the capacity, `first` when empty.
 * False (the array unchanged) when the memory is not there.            */
bool arr_reserve(void **arr, size_t *cap, size_t len, size_t elem, size_t first);

/* ------------------------------------------------------------------------ */
/* smap_: string -> pointer hash map (linear probing, backward-shift delete).
 * Keys are borrowed: the caller keeps each key alive (usually the value owns
 * it) until the entry is deleted. Not thread-safe.                         */

struct smap_slot {
    const char *key; /* NULL: empty slot */
    void *val;
    uint64_t hash;
};

struct smap {
    struct smap_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t count;
};

void smap_init(struct smap *m);
void smap_free(struct smap *m);
void *smap_get(const struct smap *m, const char *key);
/* Insert or replace. Returns false on allocation failure (map unchanged). */
bool smap_put(struct smap *m, const char *key, void *val);
/* Remove key; returns its value, or NULL when absent. */
void *smap_del(struct smap *m, const char *key);
/* Iterate: start with *pos = 0; returns false at the end. */
bool smap_next(const struct smap *m, size_t *pos, const char **key, void **val);

/* ------------------------------------------------------------------------ */
/* store_: the workspaces                                                    */

/* Fields of a new workspace, borrowed from the caller. phone/ext may be NULL
 * (not stored). store_update() takes phone/ext "" as "clear it". */
struct ws_input {
    const char *prov;
    const char *user;
    const char *sp;
    const char *name;
    const char *phone;
    const char *ext;
};

int store_init(void);
void store_fini(void);
/* Create a workspace. Returns 200 (workspace JSON appended to out, its id
 * copied to id_out), 409 when the userId is taken, 500 when out of memory. */
int store_create(const struct ws_input *in, struct sbuf *out, char *id_out, size_t id_outsz);
/* Update userId, phone and ext: each one NULL leaves it unchanged; phone or
 * ext "" removes it from the workspace (user must not be ""). Returns 200
 * (workspace JSON appended to out), 404, 409 or 500. */
int store_update(const char *id, const char *user, const char *phone, const char *ext,
                 struct sbuf *out);
/* Returns 204 or 404. */
int store_delete(const char *id);
/* userId of workspace id as a malloc'd copy, or NULL when unknown. */
char *store_user_of(const char *id);
/* Append {"workspaces":[...],"count":N,"created_total":N}. */
void store_dump(struct sbuf *out);
void store_counts(uint64_t *count, uint64_t *created_total);
void store_reset(void);

/* ------------------------------------------------------------------------ */
/* subs_: the BroadWorks subscribers                                         */

/* Provisioning status, in the order of Cisco's OpenAPI enum. */
enum sub_status {
    SUB_PENDING_EMAIL_INPUT,
    SUB_PENDING_EMAIL_VALIDATION,
    SUB_PENDING_USER_MIGRATION,
    SUB_PROVISIONING,
    SUB_PROVISIONED,
    SUB_UPDATING,
    SUB_ERROR,
    SUB_NSTATUS
};

/* The string fields of a subscriber, in the order of its JSON. */
enum sub_field {
    SF_USER,     /* userId */
    SF_SP,       /* spEnterpriseId */
    SF_FIRST,    /* firstName */
    SF_LAST,     /* lastName */
    SF_EMAIL,    /* email */
    SF_PHONE,    /* primaryPhoneNumber */
    SF_MOBILE,   /* mobilePhoneNumber */
    SF_EXT,      /* extension */
    SF_PACKAGE,  /* package */
    SF_LANGUAGE, /* language */
    SF_TIMEZONE, /* timezone */
    SF_PROV,     /* provisioningId (last in the JSON, as in the OpenAPI examples) */
    SF_N
};

/* Fields of a POST or PUT, borrowed from the caller. NULL: not given (a
 * POST: absent; a PUT: unchanged). In a PUT, "" clears the field. */
struct sub_input {
    const char *f[SF_N];
};

/* Settings of the subscriber transitions, from faults_. */
struct sub_config {
    uint64_t delay_us; /* from the request to the final status */
    bool sync;         /* the POST/PUT answer shows the final status already */
    uint64_t max;      /* most subscribers stored at once */
};

/* List filters, parsed and validated by subapi_. Strings are decoded
 * copies (NULL: filter not given). */
enum sub_qkey {
    SQ_USER,
    SQ_PERSON,
    SQ_EMAIL,
    SQ_PROV,
    SQ_SP,
    SQ_STATUS,
    SQ_CHANGED, /* lastStatusChange */
    SQ_AFTER,
    SQ_SELF, /* selfActivated */
    SQ_MAX,
    SQ_CURSOR,
    SQ_N
};

struct sub_query {
    char *v[SQ_N];
    unsigned status_mask;     /* bit per sub_status; 0: any */
    int64_t changed_after_ms; /* with v[SQ_CHANGED] */
    int64_t created_after_ms; /* with v[SQ_AFTER] */
    bool self_activated;      /* with v[SQ_SELF] */
    unsigned max;             /* page size, 1..100 */
    uint64_t cursor;          /* creation seq of the last item already seen */
};

/* "provisioned" etc.; NULL for an out-of-range value. */
const char *subs_status_name(enum sub_status st);
/* Parse s[0..n) as a status name. */
bool subs_status_parse(const char *s, size_t n, enum sub_status *out);
/* "userId" etc.; NULL for an out-of-range value. */
const char *subs_field_name(enum sub_field f);

int subs_init(void);
void subs_fini(void);
/* Create a subscriber in status provisioning (final at once with cfg->sync).
 * Returns 200 (JSON appended to out, id copied to id_out), 409 when the
 * userId belongs to a subscriber not in status error (one in error is
 * replaced), 507 when cfg->max are stored, 500 when out of memory. */
int subs_create(const struct sub_input *in, const struct sub_config *cfg, struct sbuf *out,
                char *id_out, size_t id_outsz);
/* Start an update: status updating, the changes applied at the transition.
 * Returns 200 (the subscriber as it was appended to out), 400 when it would
 * leave neither primaryPhoneNumber nor extension, 404, 409 when the new
 * userId belongs to another subscriber, 423 while a transition is pending
 * (*retry_after: seconds until it is due), 500. */
int subs_update(const char *id, const struct sub_input *in, const struct sub_config *cfg,
                struct sbuf *out, unsigned *retry_after);
/* Returns 204 or 404. */
int subs_delete(const char *id);
/* Returns 200 (JSON appended to out) or 404. */
int subs_get(const char *id, struct sbuf *out);
/* Append {"items":[...]} for one page of q; *next_cursor is the cursor of
 * the next page, 0 when this one is the last. */
void subs_list(const struct sub_query *q, struct sbuf *out, uint64_t *next_cursor);
/* userId of subscriber id as a malloc'd copy, or NULL when unknown. */
char *subs_user_of(const char *id);
/* Append {"subscribers":[...],"count":N,"created_total":N}. */
void subs_dump(struct sbuf *out);
/* Append ,"subscribers":N,"subscribersCreatedTotal":N,"subscribersByStatus":{...}. */
void subs_stats(struct sbuf *out);
void subs_reset(void);

/* ------------------------------------------------------------------------ */
/* reqlog_ / stats_: what the simulator saw                                  */

/* Violation bits of a request. */
enum {
    VIOL_RETRY_AFTER = 1u << 0,
    VIOL_CONCURRENT_USER = 1u << 1,
};

/* One finished API request, all strings borrowed (may be NULL). status 0
 * means the connection was dropped without a response. */
struct reqrec_in {
    const char *method;
    const char *path;
    const char *user;
    const char *body_user;
    const char *ws_id;
    const char *sub_id;
    const char *query;
    const char *tracking;
    const char *resp_tracking;
    int status;
    bool auth;
    unsigned violations;
    uint64_t recv_us;
    uint64_t done_us;
};

int reqlog_init(void);
void reqlog_fini(void);
/* Append a record and count it in the stats. Returns its seq (0 when out of
 * memory: then the request is only counted). */
uint64_t reqlog_add(const struct reqrec_in *in);
/* Append {"requests":[records with seq > since, at most limit],"next":N}. */
void reqlog_dump(struct sbuf *out, uint64_t since, uint64_t limit);
void reqlog_reset(void);

void stats_violation(unsigned viol_bit);
void stats_inflight(int delta);
void stats_delayed(int delta);
/* Append the /_sim/stats object. */
void stats_dump(struct sbuf *out);
/* Clear the counters (not the live in-flight/delayed gauges). */
void stats_reset(void);

/* ------------------------------------------------------------------------ */
/* guard_: protocol-violation detectors                                      */

/* Per-TCP-connection state, owned by websim.c (MHD socket context). */
struct sim_conn {
    uint64_t id;              /* unique since start, from 1 */
    uint64_t last_ra_sent_us; /* when this connection last got a 429 with Retry-After */
};

int guard_init(void);
void guard_fini(void);
/* A request for user starts; true when another one for user is still being
 * processed (a concurrentUser violation). Pair with guard_user_leave(). */
bool guard_user_enter(const char *user);
void guard_user_leave(const char *user);
/* A 429 with Retry-After secs is being sent now on conn (may be NULL): a
 * pause for every request. */
void guard_retry_after_sent(struct sim_conn *conn, uint64_t now_us, unsigned secs);
/* A 423 with Retry-After secs is being sent now on conn (may be NULL) for a
 * request about user: a pause for the requests about user only. No pause
 * when user is NULL or secs 0. */
void guard_locked_sent(const char *user, struct sim_conn *conn, uint64_t now_us, unsigned secs);
/* Is a request about user (may be NULL) received at recv_us on conn a
 * Retry-After violation, of the 429 pause or of user's 423 pause? Returns how
 * many ms too early it came (the larger of the two), or 0 when it is fine;
 * *user_pause tells whether that figure is from user's 423 pause. */
uint64_t guard_retry_after_check(const struct sim_conn *conn, const char *user, uint64_t recv_us,
                                 unsigned grace_ms, unsigned tol_ms, bool *user_pause);
/* Forget the Retry-After deadlines (the 429 one and every user's 423 one). */
void guard_reset(void);

/* ------------------------------------------------------------------------ */
/* auth_: bearer tokens and the token endpoint                               */

struct auth_config {
    const char *const *tokens; /* accepted bearer tokens; none: any */
    size_t n_tokens;
    const char *refresh_token; /* NULL: any non-empty one */
    const char *client_id;     /* NULL: any non-empty one */
    const char *client_secret; /* NULL: any non-empty one */
};

int auth_init(const struct auth_config *cfg);
void auth_fini(void);
/* Validate an Authorization header value (may be NULL). Counts toward a
 * pending tokenExpiry {"afterRequests": N}. */
bool auth_check(const char *authorization);
/* Handle a POST /v1/access_token form body. Returns the status; on 200 the
 * token JSON is appended to out, else *errmsg names the problem. */
int auth_refresh(const char *body, size_t len, struct sbuf *out, const char **errmsg);
/* Apply the token-related fault keys of a /_sim/faults object (already
 * validated by faults_). */
void auth_expire_now(void);
void auth_expire_after(int64_t n); /* -1 cancels */
void auth_set_lifetimes(int64_t access_s, int64_t refresh_s);
void auth_set_rotate(bool rotate);
void auth_defaults(void);
/* Append the token-related members (leading comma included) of the faults
 * object. */
void auth_dump(struct sbuf *out);

/* ------------------------------------------------------------------------ */
/* faults_: fault injection                                                  */

enum flt_kind {
    FLT_NONE,   /* no fault: handle the request normally */
    FLT_STATUS, /* answer status (and Retry-After when retry_after > 0) */
    FLT_RESET,  /* drop the connection without an answer */
};

struct flt_decision {
    enum flt_kind kind;
    int status;
    unsigned retry_after; /* seconds; 0: no header */
    const char *why;      /* static text for the error message */
    uint64_t delay_us;    /* added latency */
};

int faults_init(void);
void faults_fini(void);
/* Merge a JSON settings object; on error returns -1 with a message in err
 * and changes nothing. */
int faults_apply_json(const char *json, size_t len, char *err, size_t errsz);
/* Back to the defaults, as {"clear": true} does. */
void faults_reset(void);
/* Append the current settings object. */
void faults_dump(struct sbuf *out);
/* Faults decided before authentication: script entries, resets, outage, and
 * the latency. token: the request is for /v1/access_token. */
void faults_pre(const char *method, const char *user, bool token, struct flt_decision *d);
/* Faults decided after authentication: rate limit, locked, random errors. */
void faults_post(struct flt_decision *d);
/* Slack of the Retry-After detector, in ms. */
void faults_retry_after_slack(unsigned *grace_ms, unsigned *tol_ms);
/* The subscriber settings: subscriberDelayMs, subscriberSync, subscriberMax. */
void faults_sub_config(struct sub_config *c);
/* Final status of the next provisioning or update about user (NULL: none):
 * its subscriberOutcome entry (one of its uses taken), else error with the
 * probability subscriberErrorShare, else provisioned. For error, *errors gets
 * the errors[] JSON array (malloc'd; NULL when out of memory). */
enum sub_status faults_sub_outcome(const char *user, char **errors);

/* ------------------------------------------------------------------------ */
/* timer_: delayed responses                                                 */

int timer_start(void);
/* Resume conn at monotonic time due_us. Returns false when the timer is
 * stopping (the caller must resume conn itself) or out of memory. */
bool timer_add(uint64_t due_us, struct MHD_Connection *conn);
/* Resume everything still pending, refuse new entries, join the thread.
 * timer_add() keeps working (refusing) until timer_fini(). */
void timer_stop(void);
/* Free the timer; only after the MHD daemon has stopped. */
void timer_fini(void);

/* ------------------------------------------------------------------------ */
/* Per-request context (MHD's con_cls), owned by websim.c                    */

enum req_phase {
    PH_RECEIVING, /* headers and body arriving */
    PH_DELAYED,   /* API request decided, connection suspended */
    PH_DONE,      /* response queued (or connection dropped) */
};

enum api_route {
    RT_NONE,
    RT_WS_COLLECTION,  /* /v1/broadworks/workspaces */
    RT_WS_ITEM,        /* /v1/broadworks/workspaces/{id} */
    RT_SUB_COLLECTION, /* /v1/broadworks/subscribers */
    RT_SUB_ITEM,       /* /v1/broadworks/subscribers/{id} */
    RT_TOKEN,          /* /v1/access_token */
};

struct sim_req {
    struct MHD_Connection *conn;
    struct sim_conn *sconn; /* may be NULL */
    enum req_phase phase;
    uint64_t recv_us;
    char method[16];
    char *path;       /* raw request path, as sent (without the query) */
    char *qstring;    /* the query string, NULL when none (api_begin) */
    struct sbuf body; /* up to SIM_MAX_BODY bytes */
    size_t body_seen; /* bytes received, including dropped ones */
    bool too_large;

    /* Filled by api_begin() for api_finish(). */
    enum api_route route;
    char *item_id;            /* decoded {id} of an item route */
    char *user;               /* userId the request is about (concurrency key) */
    char *body_user;          /* userId in the body (POST/PUT), NULL when none */
    struct json_object *json; /* parsed body */
    struct ws_input in;       /* validated POST/PUT fields, borrowed from json;
                                 a PUT's user may be NULL (unchanged) */
    struct sub_input sub;     /* the same for a subscriber */
    struct sub_query *query;  /* a subscriber list's filters */
    char *link;               /* Link header of the answer (a list page) */
    bool user_entered;        /* guard_user_enter() called */
    bool auth;                /* bearer token valid */
    unsigned violations;      /* VIOL_* */
    char *tracking_in;        /* the request's TrackingID header */
    int status;               /* decided error status, 0: perform the operation */
    int err_code;             /* errorCode of the error body */
    unsigned retry_after;
    const char *msg; /* error message: static text or msgbuf */
    char msgbuf[192];
};

/* sim_api.c: the /v1 API. Both run on MHD threads and return what the access
 * handler must return. */
enum MHD_Result api_begin(struct sim_req *req);
/* Perform and answer a decided request; send=false when the connection went
 * away (bookkeeping only). */
enum MHD_Result api_finish(struct sim_req *req, bool send);
/* Release what api_begin() allocated. */
void api_release(struct sim_req *req);

/* sim_api.c, shared with sim_subapi.c. What a body member must be. */
enum api_need {
    FIELD_OPTIONAL, /* absent, null or a string */
    FIELD_NONEMPTY, /* absent, null or a non-empty string */
    FIELD_REQUIRED, /* a non-empty string */
};
/* Read string member key of req->json into *out (NULL when absent or null).
 * Returns false, with the message in req->msgbuf, when it is not what need
 * says. */
bool api_field(struct sim_req *req, const char *key, enum api_need need, const char **out);
/* Set the decided error answer of req. */
void api_set_error(struct sim_req *req, int status, int code, const char *msg);

/* sim_subapi.c: the subscriber routes. */
/* Validate a POST/PUT body (req->json already parsed) into req->sub; false
 * with the message in req->msgbuf. */
bool subapi_parse_body(struct sim_req *req);
/* Validate a list GET's query into req->query; false with the message in
 * req->msgbuf. */
bool subapi_parse_query(struct sim_req *req);
/* Perform a decided subscriber request; returns the status, with the answer
 * in out, new_id set for a created subscriber, and req's error fields (and
 * req->link) set as needed. */
int subapi_perform(struct sim_req *req, struct sbuf *out, char *new_id, size_t new_idsz);
void subapi_query_free(struct sub_query *q);

/* sim_admin.c: the /_sim/ admin API. */
enum MHD_Result admin_handle(struct sim_req *req);

/* websim.c: response helpers shared by the API modules. */
/* New response tracking id "ROUTER_<uuid>" into out (SIM_TRACKING_LEN). */
void http_tracking_id(char *out, size_t outsz);
/* Queue a response; takes ownership of body (malloc'd, may be NULL when
 * len == 0). retry_after > 0 adds Retry-After, allow adds Allow. */
enum MHD_Result http_send(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                          const char *tracking, unsigned retry_after, const char *allow);
/* http_send() plus a Link header when link is not NULL. */
enum MHD_Result http_send_link(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                               const char *tracking, unsigned retry_after, const char *allow,
                               const char *link);
/* Append "http://HOST:PORT" (https with TLS) as the client reached us: its
 * Host header when that is a plain host[:port], else the listen address. */
void http_self_url(struct MHD_Connection *conn, struct sbuf *out);
/* Append a Webex-style error body. */
void http_error_body(struct sbuf *out, const char *msg, int code, const char *tracking);
/* Is the request's Content-Type media type `type` (parameters ignored)? */
bool http_content_type_is(struct MHD_Connection *conn, const char *type);

#endif /* WEBSIM_H */
