/* cli_dlq: `bwprovd dlq list | replay` (cli.h).
 *
 * list reads topic.dlq to its end and prints the records the filters
 * select, one line each. replay does, in turn:
 *
 *  1. read topic.dlq: the selected records (held in memory), and every
 *     bwprovd-replay-of header there (a replay that failed again);
 *  2. read topic.state into a table with the loader's rules (strec.c);
 *  3. decide each record (common/dlq.c: refused, loop guard, stale);
 *  4. scan topic.events, from each record's failed event on, for
 *     bwprovd-replay-of headers naming a selected record: those were
 *     replayed already (by an interrupted or an earlier run), so a run
 *     repeated with the same filters produces nothing twice. This comes
 *     before "stale": a replay that was applied makes its own record look
 *     stale, and is reported as replayed;
 *  5. produce the rest to topic.events, key and bytes unchanged, to the
 *     partition of the event they came from (one user's events stay in one
 *     partition whatever partitioner wrote them), with the replay headers.
 *
 * Nothing is committed anywhere: what was replayed is read back from the
 * topics themselves, whatever the filters of the run that did it. */
#include "cli.h"

#include "hmap.h"
#include "result.h"
#include "strec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last value of header name of m (present false when absent). */
static void header(const rd_kafka_message_t *m, const char *name, struct dq_bytes *b)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    b->present = rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                 rd_kafka_header_get_last(h, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR;
    b->p = v;
    b->len = b->present ? len : 0;
}

static void info_of(const rd_kafka_message_t *m, struct dq_info *i)
{
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    struct dq_raw raw = {m->key, m->key_len, m->payload, m->len, -1, {0}, {0}, {0}, {0}};
    if (tt != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
        raw.ts_ms = ts;
    header(m, DQ_HDR_ERROR, &raw.error);
    header(m, DQ_HDR_SOURCE, &raw.source);
    header(m, DQ_HDR_REPLAY_COUNT, &raw.replay_count);
    header(m, DQ_HDR_REPLAY_SOURCE, &raw.replay_source);
    dq_info_from(&raw, i);
}

/* "topic/partition/offset" of m: what bwprovd-replay-of names. */
static void position(const rd_kafka_message_t *m, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%" PRId32 "/%" PRId64, rd_kafka_topic_name(m->rkt), m->partition,
             m->offset);
}

/* --- list --- */

struct list {
    uint64_t shown, read;
};

static void print_source(const struct dq_info *i)
{
    if (i->has_source)
        printf("%s/%" PRId32 "/%" PRId64 "\t", i->source.topic, i->source.partition,
               i->source.offset);
    else
        printf("-\t");
}

/* time, user, type, kind, reason, source, the record's own position,
 * replays: tab-separated, each field escaped (dq_escape). */
static void list_line(const rd_kafka_message_t *m, const struct dq_info *i)
{
    char when[40] = "-", user[600] = "-", reason[1200] = "-", pos[300];
    if (i->ts_ms >= 0)
        res_format_time(i->ts_ms, when, sizeof(when));
    if (m->key)
        dq_escape(m->key, m->key_len, user, sizeof(user));
    if (i->reason)
        dq_escape(i->reason, i->reason_len, reason, sizeof(reason));
    position(m, pos, sizeof(pos));
    printf("%s\t%s\t%s\t%s\t%s\t", when, user, i->type[0] ? i->type : "-",
           i->kind[0] ? i->kind : "-", reason);
    print_source(i);
    printf("%s\t%d\n", pos, i->replays > 0 ? i->replays : 0);
}

static int list_record(struct cli *c, const rd_kafka_message_t *m, void *arg)
{
    struct list *l = arg;
    struct dq_info i;
    l->read++;
    info_of(m, &i);
    if (!dq_match(&c->args.filter, &i))
        return CLI_OK;
    list_line(m, &i);
    l->shown++;
    if (ferror(stdout)) {
        cli_say(c, "writing the output failed");
        return CLI_INCOMPLETE;
    }
    return CLI_OK;
}

int cli_dlq_list(struct cli *c)
{
    struct list l = {0, 0};
    int rc;
    struct tr *t = cli_topic(c, c->cfg.topic_dlq, &rc);
    if (t)
        rc = cli_read(c, t, NULL, "reading the DLQ", list_record, &l);
    if (t && rc == CLI_OK)
        cli_say(c, "%" PRIu64 " of %" PRIu64 " record(s) in %s", l.shown, l.read, c->cfg.topic_dlq);
    tr_free(t);
    return rc;
}

/* --- replay --- */

/* A selected DLQ record: about 1.2 KB plus its key and value. */
struct cand {
    struct hmap_node node; /* by id, in replay.ids */
    struct dq_info info;   /* its reason is not kept */
    char *id;              /* dlq topic/partition/offset */
    int32_t dlq_partition;
    int64_t dlq_offset;
    char *key, *value;
    size_t keylen, len;
    enum dq_verdict verdict;
    bool was_stale;     /* stale, replayed because of --force */
    char *why;          /* why it is not replayed; NULL: it is */
    char *seen_as;      /* a replay of it is there; NULL: none */
    int64_t new_offset; /* where Kafka put the replay, -1 until acknowledged */
};

/* An id named by a bwprovd-replay-of header in the DLQ. */
struct seen {
    struct hmap_node node;
    char where[300];
    char id[];
};

struct replay {
    struct cand **cands;
    size_t n, cap;
    struct hmap ids;  /* struct cand by id */
    struct hmap seen; /* struct seen: replays that failed again */
    struct st_table *t;
    uint64_t counts[5]; /* by enum outcome below */
};

enum outcome { REPLAYED, STALE, LOOP, ALREADY, REFUSED };

static bool cand_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct cand *k = (const struct cand *)n;
    return strlen(k->id) == len && memcmp(k->id, key, len) == 0;
}

static bool seen_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct seen *s = (const struct seen *)n;
    return strlen(s->id) == len && memcmp(s->id, key, len) == 0;
}

static void *memdup(const void *p, size_t len)
{
    char *d = malloc(len ? len : 1);
    if (d && len)
        memcpy(d, p, len);
    return d;
}

static int add_cand(struct cli *c, struct replay *rp, const rd_kafka_message_t *m,
                    const struct dq_info *i)
{
    if (rp->n == rp->cap) {
        size_t cap = rp->cap ? 2 * rp->cap : 256;
        struct cand **n = realloc(rp->cands, cap * sizeof(*n));
        if (!n)
            goto oom;
        rp->cands = n;
        rp->cap = cap;
    }
    struct cand *k = calloc(1, sizeof(*k));
    if (!k)
        goto oom;
    rp->cands[rp->n++] = k;
    k->info = *i;
    k->info.reason = NULL; /* it pointed into the message */
    k->info.source.topic = k->info.source_topic;
    k->info.origin.topic = k->info.origin_topic;
    k->new_offset = -1;
    char id[300];
    position(m, id, sizeof(id));
    if (!(k->id = strdup(id)))
        goto oom;
    k->dlq_partition = m->partition;
    k->dlq_offset = m->offset;
    k->keylen = m->key_len;
    k->len = m->len;
    if (!(k->key = memdup(m->key, m->key_len)) || !(k->value = memdup(m->payload, m->len)))
        goto oom;
    hmap_insert(&rp->ids, &k->node, hmap_hash(k->id, strlen(k->id)));
    return CLI_OK;
oom:
    cli_say(c, "out of memory");
    return CLI_INCOMPLETE;
}

/* A bwprovd-replay-of header in the DLQ: that record was replayed. */
static int add_seen(struct cli *c, struct replay *rp, const rd_kafka_message_t *m,
                    const struct dq_bytes *of)
{
    if (!of->p || of->len == 0 || of->len > 512 ||
        hmap_find(&rp->seen, hmap_hash(of->p, of->len), of->p, of->len, seen_eq))
        return CLI_OK;
    struct seen *s = calloc(1, sizeof(*s) + of->len + 1);
    if (!s) {
        cli_say(c, "out of memory");
        return CLI_INCOMPLETE;
    }
    memcpy(s->id, of->p, of->len);
    snprintf(s->where, sizeof(s->where), "a DLQ record (it failed again): ");
    position(m, s->where + strlen(s->where), sizeof(s->where) - strlen(s->where));
    hmap_insert(&rp->seen, &s->node, hmap_hash(s->id, of->len));
    return CLI_OK;
}

static int dlq_record(struct cli *c, const rd_kafka_message_t *m, void *arg)
{
    struct replay *rp = arg;
    struct dq_bytes of;
    struct dq_info i;
    header(m, DQ_HDR_REPLAY_OF, &of);
    if (of.present && add_seen(c, rp, m, &of) != CLI_OK)
        return CLI_INCOMPLETE;
    info_of(m, &i);
    if (!dq_match(&c->args.filter, &i))
        return CLI_OK;
    return add_cand(c, rp, m, &i);
}

static int state_record(struct cli *c, const rd_kafka_message_t *m, void *arg)
{
    struct replay *rp = arg;
    char user[EV_MAX_USER_ID + 1];
    if (tr_apply_state(rp->t, m, user, NULL) == SR_NOMEM) {
        cli_say(c, "out of memory");
        return CLI_INCOMPLETE;
    }
    return CLI_OK;
}

/* Whether a replay of k is looked for: one that is to be replayed, and a
 * stale one too, since a replay already applied is what makes its record
 * look stale (reported as replayed, not as stale). */
static bool looked_for(const struct cand *k)
{
    return (k->verdict == DQ_REPLAY || k->verdict == DQ_STALE) && !k->seen_as;
}

/* Step 3: each record's verdict, against the user's state entry. */
static int decide_one(struct cli *c, struct replay *rp, struct cand *k, int partitions)
{
    char topic[256], why[400];
    struct st_src entry;
    bool has = k->info.has_user &&
               st_get_src(rp->t, k->info.user, NULL, 0, &entry, topic, sizeof(topic)) != ST_ABSENT;
    k->verdict = dq_decide(&k->info, c->cfg.topic_events, partitions, has ? &entry : NULL,
                           c->args.force, why, sizeof(why));
    if (k->verdict != DQ_REPLAY && !(k->why = strdup(why)))
        return CLI_INCOMPLETE;
    if (k->verdict == DQ_REPLAY && c->args.force)
        k->was_stale = dq_decide(&k->info, c->cfg.topic_events, partitions, has ? &entry : NULL,
                                 false, why, sizeof(why)) == DQ_STALE;
    struct seen *s = (struct seen *)hmap_find(&rp->seen, hmap_hash(k->id, strlen(k->id)), k->id,
                                              strlen(k->id), seen_eq);
    if (s && looked_for(k) && !(k->seen_as = strdup(s->where)))
        return CLI_INCOMPLETE;
    return CLI_OK;
}

static int decide(struct cli *c, struct replay *rp, int partitions)
{
    for (size_t n = 0; n < rp->n; n++) {
        if (decide_one(c, rp, rp->cands[n], partitions) != CLI_OK) {
            cli_say(c, "out of memory");
            return CLI_INCOMPLETE;
        }
    }
    return CLI_OK;
}

static bool to_replay(const struct cand *k)
{
    return k->verdict == DQ_REPLAY && !k->seen_as;
}

static int events_record(struct cli *c, const rd_kafka_message_t *m, void *arg)
{
    struct replay *rp = arg;
    struct dq_bytes of;
    header(m, DQ_HDR_REPLAY_OF, &of);
    if (!of.present || !of.p || of.len == 0)
        return CLI_OK;
    struct cand *k =
        (struct cand *)hmap_find(&rp->ids, hmap_hash(of.p, of.len), of.p, of.len, cand_eq);
    if (k && looked_for(k)) {
        char where[320] = "the event ";
        position(m, where + strlen(where), sizeof(where) - strlen(where));
        if (!(k->seen_as = strdup(where))) {
            cli_say(c, "out of memory");
            return CLI_INCOMPLETE;
        }
    }
    return CLI_OK;
}

/* Step 4: from each record's failed event on (a replay of it is later,
 * unless the topic lost its records since: then a replay can sit at that
 * very offset, so it is read too), in the partitions that have one;
 * elsewhere nothing. */
static int scan_events(struct cli *c, struct replay *rp, struct tr *ev)
{
    int np = tr_partitions(ev);
    int64_t *start = malloc((size_t)np * sizeof(*start));
    if (!start) {
        cli_say(c, "out of memory");
        return CLI_INCOMPLETE;
    }
    for (int p = 0; p < np; p++)
        start[p] = tr_target(ev, p);
    for (size_t n = 0; n < rp->n; n++) {
        const struct cand *k = rp->cands[n];
        int32_t p = k->info.source.partition;
        if (looked_for(k) && k->info.source.offset < start[p])
            start[p] = k->info.source.offset >= 0 ? k->info.source.offset : 0;
    }
    int rc = cli_read(c, ev, start, "looking for earlier replays", events_record, rp);
    free(start);
    return rc;
}

static rd_kafka_headers_t *replay_headers(const struct cli *c, const struct cand *k)
{
    char of[300], count[16], origin[300];
    dq_replay_headers(&k->info, c->cfg.topic_dlq, k->dlq_partition, k->dlq_offset, of, sizeof(of),
                      count, sizeof(count), origin, sizeof(origin));
    /* rd_kafka_header_add fails only on a list already produced */
    rd_kafka_headers_t *h = rd_kafka_headers_new(3);
    rd_kafka_header_add(h, DQ_HDR_REPLAY_OF, -1, of, -1);
    rd_kafka_header_add(h, DQ_HDR_REPLAY_COUNT, -1, count, -1);
    if (origin[0])
        rd_kafka_header_add(h, DQ_HDR_REPLAY_SOURCE, -1, origin, -1);
    return h;
}

static void replay_acked(struct cli *c, const rd_kafka_message_t *m)
{
    (void)c;
    struct cand *k = m->_private;
    if (k && !m->err)
        k->new_offset = m->offset;
}

/* Step 5. */
static int produce_all(struct cli *c, struct replay *rp)
{
    int rc = CLI_OK;
    uint64_t todo = 0;
    for (size_t n = 0; n < rp->n; n++)
        todo += to_replay(rp->cands[n]);
    c->on_ack = replay_acked;
    cli_prog_begin(c, "replaying", todo);
    for (size_t n = 0; n < rp->n && rc == CLI_OK; n++) {
        struct cand *k = rp->cands[n];
        if (!to_replay(k))
            continue;
        rc = cli_produce(c, c->cfg.topic_events, k->info.source.partition, k->key, k->keylen,
                         k->value, k->len, replay_headers(c, k), k);
    }
    int flushed = cli_flush(c);
    return rc != CLI_OK ? rc : flushed;
}

/* One line per selected record, and the counts. */
static void report_one(struct cli *c, struct replay *rp, const struct cand *k)
{
    const char *user = k->info.has_user ? k->info.user : "-";
    if (k->verdict == DQ_REFUSED) {
        rp->counts[REFUSED]++;
        cli_say(c, "refused %s (%s): %s", k->id, user, k->why);
    } else if (k->seen_as) {
        rp->counts[ALREADY]++;
        printf("already replayed\t%s\t%s\tas %s\n", k->id, user, k->seen_as);
    } else if (k->verdict == DQ_STALE || k->verdict == DQ_LOOP_GUARD) {
        rp->counts[k->verdict == DQ_STALE ? STALE : LOOP]++;
        printf("skipped %s\t%s\t%s\t%s\n", k->verdict == DQ_STALE ? "stale" : "by the loop guard",
               k->id, user, k->why);
    } else if (c->args.dry_run || k->new_offset >= 0) {
        rp->counts[REPLAYED]++;
        printf("%s\t%s\t%s\t%s %s/%" PRId32, c->args.dry_run ? "would replay" : "replayed", k->id,
               user, c->args.dry_run ? "to" : "as", c->cfg.topic_events, k->info.source.partition);
        if (!c->args.dry_run)
            printf("/%" PRId64, k->new_offset);
        printf("\treplay %d%s\n", (k->info.replays > 0 ? k->info.replays : 0) + 1,
               k->was_stale ? " (stale: --force)" : "");
    }
}

static int report(struct cli *c, struct replay *rp, int rc)
{
    uint64_t todo = 0;
    for (size_t n = 0; n < rp->n; n++) {
        report_one(c, rp, rp->cands[n]);
        todo += to_replay(rp->cands[n]);
    }
    printf("%s %" PRIu64 ", skipped stale %" PRIu64 ", skipped by the loop guard %" PRIu64
           ", already replayed %" PRIu64 ", refused %" PRIu64,
           c->args.dry_run ? "would replay" : "replayed", rp->counts[REPLAYED], rp->counts[STALE],
           rp->counts[LOOP], rp->counts[ALREADY], rp->counts[REFUSED]);
    if (!c->args.dry_run && rp->counts[REPLAYED] < todo)
        printf(", not replayed %" PRIu64, todo - rp->counts[REPLAYED]);
    printf("%s\n", c->args.dry_run ? " (dry run: nothing produced)" : "");
    return rc == CLI_OK && rp->counts[REFUSED] ? CLI_INCOMPLETE : rc;
}

static int replay_run(struct cli *c, struct replay *rp)
{
    int rc;
    struct tr *dlq = cli_topic(c, c->cfg.topic_dlq, &rc);
    struct tr *state = dlq ? cli_topic(c, c->cfg.topic_state, &rc) : NULL;
    struct tr *ev = state ? cli_topic(c, c->cfg.topic_events, &rc) : NULL;
    if (ev)
        rc = cli_read(c, dlq, NULL, "reading the DLQ", dlq_record, rp);
    if (ev && rc == CLI_OK && rp->n)
        rc = cli_read(c, state, NULL, "reading the map", state_record, rp);
    if (ev && rc == CLI_OK)
        rc = decide(c, rp, tr_partitions(ev));
    if (ev && rc == CLI_OK)
        rc = scan_events(c, rp, ev);
    if (ev && rc == CLI_OK && !c->args.dry_run)
        rc = produce_all(c, rp);
    if (ev && (rc == CLI_OK || c->produced))
        rc = report(c, rp, rc);
    tr_free(dlq);
    tr_free(state);
    tr_free(ev);
    return rc;
}

static void free_seen(struct hmap_node *n, void *arg)
{
    (void)arg;
    free(n);
}

int cli_dlq_replay(struct cli *c)
{
    struct replay rp;
    memset(&rp, 0, sizeof(rp));
    rp.t = st_new();
    bool ok = rp.t && hmap_init(&rp.ids, 1024) == 0 && hmap_init(&rp.seen, 1024) == 0;
    int rc = ok ? replay_run(c, &rp) : CLI_INCOMPLETE;
    if (!ok)
        cli_say(c, "out of memory");
    for (size_t n = 0; n < rp.n; n++) {
        struct cand *k = rp.cands[n];
        free(k->id);
        free(k->key);
        free(k->value);
        free(k->why);
        free(k->seen_as);
        free(k);
    }
    free(rp.cands);
    if (rp.seen.buckets) /* initialised */
        hmap_foreach(&rp.seen, free_seen, NULL);
    hmap_destroy(&rp.seen);
    hmap_destroy(&rp.ids);
    st_free(rp.t);
    return rc;
}
