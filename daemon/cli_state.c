/* cli_state: `bwprovd state get | export | import` (cli.h).
 *
 * Each reads topic.state to its end (as of its start) into a state table
 * with the loader's own rules (common/strec.c), so it sees the map exactly
 * as a daemon that read the same records does. `get` keeps the record that
 * last changed one user; `export` reads twice (first which record is each
 * user's, then those records), so its memory is the table plus one small
 * entry per user rather than every record; `import` writes records a
 * daemon's loader takes (common/imp.h says which source they carry). */
#include "cli.h"

#include "event.h"
#include "hmap.h"
#include "imp.h"
#include "jsonw.h"
#include "strec.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int out_of_memory(struct cli *c)
{
    cli_say(c, "out of memory");
    return CLI_INCOMPLETE;
}

/* One record as one line of JSON (a record written with line breaks
 * inside is still one line), with "removed" always said. */
static int print_record(json_object *o)
{
    json_object *no = NULL;
    if (!json_object_object_get_ex(o, "removed", NULL) &&
        (!(no = json_object_new_boolean(0)) || json_object_object_add(o, "removed", no) != 0)) {
        json_object_put(no);
        return -1;
    }
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return s && puts(s) >= 0 ? 0 : -1;
}

static json_object *parse_value(const char *value, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(16);
    json_object *o = tok ? json_tokener_parse_ex(tok, value, (int)len) : NULL;
    if (tok)
        json_tokener_free(tok);
    return o;
}

/* --- get --- */

struct get {
    struct st_table *t;
    const char *user;
    bool found;  /* a record of the user was applied */
    char *value; /* the last one applied (NULL: a tombstone) */
    size_t len;
    struct st_src tomb; /* a tombstone's source */
    char tomb_topic[512];
};

static int get_record(struct cli *c, const rd_kafka_message_t *m, void *arg)
{
    struct get *g = arg;
    char user[EV_MAX_USER_ID + 1];
    if (!sr_key(m->key, m->key_len, user) || strcmp(user, g->user) != 0)
        return CLI_OK; /* the rules are per user: others do not matter */
    enum sr_result r = tr_apply_state(g->t, m, user, NULL);
    if (r == SR_NOMEM)
        return out_of_memory(c);
    if (r != SR_APPLIED)
        return CLI_OK;
    free(g->value);
    g->value = NULL;
    g->len = m->len;
    if (m->payload && !(g->value = malloc(m->len)))
        return out_of_memory(c);
    if (m->payload)
        memcpy(g->value, m->payload, m->len);
    else if (!tr_tombstone_source(m, g->tomb_topic, sizeof(g->tomb_topic), &g->tomb))
        g->tomb = (struct st_src){NULL, -1, -1}; /* an older tombstone's is not this one's */
    g->found = true;
    return CLI_OK;
}

/* A tombstone (earlier versions' remove) has no JSON: say what it means. */
static int print_tombstone(const struct get *g)
{
    struct jw w;
    size_t len;
    jw_begin(&w);
    jw_str(&w, "kind", "workspace");
    jw_str(&w, "userId", g->user);
    jw_bool(&w, "removed", true);
    jw_bool(&w, "tombstone", true);
    if (g->tomb.topic) {
        jw_obj_begin(&w, "source");
        jw_str(&w, "topic", g->tomb.topic);
        jw_int(&w, "partition", g->tomb.partition);
        jw_int(&w, "offset", g->tomb.offset);
        jw_obj_end(&w);
    } else {
        jw_null(&w, "source");
    }
    char *s = jw_finish(&w, &len);
    int rc = s && puts(s) >= 0 ? 0 : -1;
    free(s);
    return rc;
}

static int print_get(const struct get *g)
{
    if (!g->value)
        return print_tombstone(g);
    json_object *o = parse_value(g->value, g->len);
    int rc = o ? print_record(o) : -1;
    json_object_put(o);
    return rc;
}

int cli_state_get(struct cli *c)
{
    struct get g = {.t = st_new(), .user = c->args.arg};
    int rc;
    struct tr *t = g.t ? cli_topic(c, c->cfg.topic_state, &rc) : NULL;
    if (!g.t)
        rc = out_of_memory(c);
    if (t)
        rc = cli_read(c, t, NULL, "reading the map", get_record, &g);
    if (t && rc == CLI_OK && !g.found) {
        cli_say(c, "no entry for %s in the map (%s)", g.user, c->cfg.topic_state);
        rc = CLI_INCOMPLETE;
    } else if (t && rc == CLI_OK && print_get(&g) != 0) {
        cli_say(c, "out of memory, or writing the output failed");
        rc = CLI_INCOMPLETE;
    }
    tr_free(t);
    free(g.value);
    st_free(g.t);
    return rc;
}

/* --- export --- */

/* Which record is a user's: where the last one applied sits in the topic. */
struct winner {
    struct hmap_node node;
    int32_t partition;
    int64_t offset;
    char user[];
};

struct export
{
    struct st_table *t;
    struct hmap winners;
    uint64_t printed;
};

static bool winner_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct winner *w = (const struct winner *)n;
    return strncmp(w->user, key, len) == 0 && w->user[len] == '\0';
}

static struct winner *winner_of(struct hmap *m, const char *user)
{
    size_t len = strlen(user);
    return (struct winner *)hmap_find(m, hmap_hash(user, len), user, len, winner_eq);
}

static int export_pass1(struct cli *c, const rd_kafka_message_t *m, void *arg)
{
    struct export *x = arg;
    char user[EV_MAX_USER_ID + 1];
    enum sr_result r = tr_apply_state(x->t, m, user, NULL);
    if (r == SR_NOMEM)
        return out_of_memory(c);
    if (r != SR_APPLIED)
        return CLI_OK;
    struct winner *w = winner_of(&x->winners, user);
    if (!w) {
        size_t len = strlen(user);
        if (!(w = malloc(sizeof(*w) + len + 1)))
            return out_of_memory(c);
        memcpy(w->user, user, len + 1);
        hmap_insert(&x->winners, &w->node, hmap_hash(user, len));
    }
    w->partition = m->partition;
    w->offset = m->offset;
    return CLI_OK;
}

static int export_pass2(struct cli *c, const rd_kafka_message_t *m, void *arg)
{
    struct export *x = arg;
    char user[EV_MAX_USER_ID + 1];
    if (!m->payload || !sr_key(m->key, m->key_len, user))
        return CLI_OK;
    struct winner *w = winner_of(&x->winners, user);
    if (!w || w->partition != m->partition || w->offset != m->offset ||
        st_get(x->t, user, NULL, 0) != ST_PRESENT)
        return CLI_OK; /* not the user's record, or the user was removed */
    json_object *o = parse_value(m->payload, m->len);
    int bad = !o ? -1 : print_record(o) != 0 ? 1 : 0;
    json_object_put(o);
    if (bad) { /* the first reading took it: only memory can fail here */
        cli_say(c, bad < 0 ? "out of memory" : "writing the output failed");
        return CLI_INCOMPLETE;
    }
    x->printed++;
    return CLI_OK;
}

static void free_winner(struct hmap_node *n, void *arg)
{
    (void)arg;
    free(n);
}

static int export_check(struct cli *c, const struct export *x)
{
    uint64_t live = st_count(x->t) + st_count_subscribers(x->t);
    if (x->printed != live) { /* compaction ran between the two readings */
        cli_say(c,
                "the state topic changed while it was read (%" PRIu64 " of %" PRIu64
                " records found again); run the export again",
                x->printed, live);
        return CLI_INCOMPLETE;
    }
    cli_say(c, "%zu workspace(s) and %zu subscriber(s) exported from %s", st_count(x->t),
            st_count_subscribers(x->t), c->cfg.topic_state);
    return CLI_OK;
}

int cli_state_export(struct cli *c)
{
    struct export x = {.t = st_new()};
    int rc;
    if (!x.t || hmap_init(&x.winners, 4096) != 0) {
        st_free(x.t);
        return out_of_memory(c);
    }
    struct tr *t = cli_topic(c, c->cfg.topic_state, &rc);
    if (t)
        rc = cli_read(c, t, NULL, "reading the map", export_pass1, &x);
    /* the same records again: the target stays where it was */
    if (t && rc == CLI_OK)
        rc = cli_read(c, t, NULL, "exporting", export_pass2, &x);
    if (t && rc == CLI_OK)
        rc = export_check(c, &x);
    tr_free(t);
    hmap_foreach(&x.winners, free_winner, NULL);
    hmap_destroy(&x.winners);
    st_free(x.t);
    return rc;
}

/* --- import --- */

/* A refused line, said at the end in line order. */
struct refusal {
    unsigned line;
    char *text; /* " (user): reason" */
};

struct import {
    struct imp_row **rows; /* rows that parsed, in file order */
    size_t n, cap;
    struct refusal *refusals;
    size_t n_refusals, cap_refusals;
    bool refusals_said;
    bool *done;       /* per row: Kafka acknowledged its record */
    uint64_t refused; /* lines refused (parse, checks, conflicts, map) */
    uint64_t unchanged;
    uint64_t held;        /* changes not written: refused lines and no --skip-bad */
    uint64_t subscribers; /* subscriber records skipped (lines of an export) */
    const char *origin;   /* the file's name for "importedFrom" */
};

static int refuse_line(struct cli *c, struct import *im, unsigned line, const char *user,
                       const char *why)
{
    char text[800];
    im->refused++;
    if (im->n_refusals == im->cap_refusals) {
        size_t cap = im->cap_refusals ? 2 * im->cap_refusals : 64;
        struct refusal *n = realloc(im->refusals, cap * sizeof(*n));
        if (!n)
            return out_of_memory(c);
        im->refusals = n;
        im->cap_refusals = cap;
    }
    snprintf(text, sizeof(text), "%s%s%s: %s", user ? " (" : "", user ? user : "", user ? ")" : "",
             why);
    struct refusal *r = &im->refusals[im->n_refusals];
    if (!(r->text = strdup(text)))
        return out_of_memory(c);
    r->line = line;
    im->n_refusals++;
    return CLI_OK;
}

static int by_line(const void *x, const void *y)
{
    const struct refusal *a = x, *b = y;
    return a->line < b->line ? -1 : a->line > b->line;
}

static void say_refusals(struct cli *c, struct import *im)
{
    im->refusals_said = true;
    if (im->n_refusals) /* qsort's array must not be NULL, even empty */
        qsort(im->refusals, im->n_refusals, sizeof(*im->refusals), by_line);
    for (size_t i = 0; i < im->n_refusals; i++)
        cli_say(c, "refused %s:%u%s", strcmp(c->args.arg, "-") == 0 ? "stdin" : c->args.arg,
                im->refusals[i].line, im->refusals[i].text);
}

static int keep_row(struct import *im, struct imp_row *r)
{
    if (im->n == im->cap) {
        size_t cap = im->cap ? 2 * im->cap : 1024;
        struct imp_row **rows = realloc(im->rows, cap * sizeof(*rows));
        if (!rows)
            return -1;
        im->rows = rows;
        im->cap = cap;
    }
    im->rows[im->n++] = r;
    return 0;
}

/* The next line of f into buf (cap bytes: IMP_MAX_LINE, a CR, one more):
 * *len is its length without the newline, NUL bytes counted (imp refuses
 * them); a longer line is read to its end, its first cap bytes kept and
 * *len set to cap (imp refuses it as too long). Returns false at the end
 * of the file. */
static bool read_line(FILE *f, char *buf, size_t cap, size_t *len)
{
    int ch;
    size_t n = 0;
    bool any = false;
    while ((ch = getc_unlocked(f)) != EOF) {
        any = true;
        if (ch == '\n')
            break;
        if (n < cap)
            buf[n] = (char)ch;
        n++;
    }
    *len = n < cap ? n : cap;
    return any;
}

static int parse_one(struct cli *c, struct import *im, struct imp_parser *p, const char *buf,
                     size_t len)
{
    struct imp_row *r = NULL;
    char why[256];
    enum imp_parsed k = imp_parse_line(p, buf, len, &r, why, sizeof(why));
    int rc = CLI_OK;
    if (k == IMP_SUBSCRIBER)
        im->subscribers++;
    else if (k == IMP_BAD)
        rc = refuse_line(c, im, p->line, NULL, why);
    else if (k == IMP_ROW && !imp_check(r, why, sizeof(why)))
        rc = refuse_line(c, im, p->line, r->f[IMP_USER], why);
    else if (k == IMP_ROW && keep_row(im, r) == 0)
        return CLI_OK; /* the row is kept */
    else if (k == IMP_ROW)
        rc = out_of_memory(c);
    free(r);
    return rc;
}

static int read_file(struct cli *c, struct import *im)
{
    const char *path = c->args.arg;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    size_t cap = IMP_MAX_LINE + 2, len; /* a CR and the line */
    char *buf = malloc(cap);
    struct imp_parser p;
    int rc = CLI_OK;
    if (!f || !buf) {
        if (!f)
            cli_say(c, "cannot read %s: %s", path, strerror(errno));
        free(buf);
        return buf ? CLI_INCOMPLETE : out_of_memory(c);
    }
    imp_init(&p);
    while (rc == CLI_OK && read_line(f, buf, cap, &len))
        rc = parse_one(c, im, &p, buf, len);
    if (rc == CLI_OK && ferror(f)) {
        cli_say(c, "reading %s failed", path);
        rc = CLI_INCOMPLETE;
    }
    if (f != stdin && fclose(f) != 0 && rc == CLI_OK) {
        cli_say(c, "reading %s failed: %s", path, strerror(errno));
        rc = CLI_INCOMPLETE;
    }
    free(buf);
    return rc;
}

static int read_map(struct cli *c, const rd_kafka_message_t *m, void *arg)
{
    char user[EV_MAX_USER_ID + 1];
    return tr_apply_state(arg, m, user, NULL) == SR_NOMEM ? out_of_memory(c) : CLI_OK;
}

/* What row r does to the map t. A repeat of an earlier line does what
 * that line does, once: unchanged, or refused with it. */
static enum imp_action decide_row(struct cli *c, const struct imp_row *r, struct st_table *t,
                                  char *why, size_t cap)
{
    char ws[EV_MAX_WORKSPACE_ID + 1] = "", holder[EV_MAX_USER_ID + 1];
    if (r->conflict) {
        snprintf(why, cap, "%s", r->why);
        return IMP_REFUSE;
    }
    if (r->dup_of && r->dup_of->action == IMP_REFUSE) {
        snprintf(why, cap, "repeats the refused line %u", r->dup_of->line);
        return IMP_REFUSE;
    }
    if (r->dup_of)
        return IMP_UNCHANGED;
    struct st_kind kind;
    struct imp_existing e = {st_get_kind(t, r->f[IMP_USER], ws, sizeof(ws), &kind, NULL, NULL, 0),
                             ws, NULL, false};
    e.subscriber = kind.subscriber;
    if (st_holder(t, r->f[IMP_WS], holder, sizeof(holder)))
        e.holder = holder;
    return imp_decide(r, &e, c->args.force, why, cap);
}

/* Decides every row, noting the refusals. */
static int decide_rows(struct cli *c, struct import *im, struct st_table *t)
{
    int rc = CLI_OK;
    for (size_t i = 0; i < im->n && rc == CLI_OK; i++) {
        struct imp_row *r = im->rows[i];
        char why[300];
        r->action = decide_row(c, r, t, why, sizeof(why));
        if (r->action == IMP_REFUSE)
            rc = refuse_line(c, im, r->line, r->f[IMP_USER], why);
        else if (r->action == IMP_UNCHANGED)
            im->unchanged++;
    }
    return rc;
}

/* Produces row i's record; its source per imp_source(). */
static int write_row(struct cli *c, struct import *im, struct st_table *t, size_t i)
{
    const struct imp_row *r = im->rows[i];
    char topic[256], origin[600];
    struct st_src entry, src;
    size_t len;
    bool has = st_get_src(t, r->f[IMP_USER], NULL, 0, &entry, topic, sizeof(topic)) != ST_ABSENT;
    imp_source(has ? &entry : NULL, &src);
    snprintf(origin, sizeof(origin), "%s:%u", im->origin, r->line);
    char *v = imp_record_json(r, &src, cli_epoch_ms(), origin, &len);
    if (!v)
        return out_of_memory(c);
    char *user = r->f[IMP_USER];
    int rc = cli_produce(c, c->cfg.topic_state, RD_KAFKA_PARTITION_UA, user, strlen(user), v, len,
                         tr_state_headers(c->writer, src.topic, src.partition, src.offset),
                         &im->done[i]);
    free(v);
    return rc;
}

static void import_acked(struct cli *c, const rd_kafka_message_t *m)
{
    (void)c;
    if (!m->err && m->_private)
        *(bool *)m->_private = true;
}

/* One line per change: what would change (--dry-run) or what did. */
static void report_changes(const struct cli *c, const struct import *im)
{
    for (size_t i = 0; i < im->n; i++) {
        const struct imp_row *r = im->rows[i];
        enum imp_action a = r->action;
        if (a != IMP_NEW && a != IMP_REPLACE)
            continue;
        if (!c->args.dry_run && !im->done[i])
            continue;
        printf("%s%s %s %s (line %u)\n", c->args.dry_run ? "would " : "",
               a == IMP_NEW ? (c->args.dry_run ? "import" : "imported")
                            : (c->args.dry_run ? "replace" : "replaced"),
               r->f[IMP_USER], r->f[IMP_WS], r->line);
    }
}

static int write_rows(struct cli *c, struct import *im, struct st_table *t)
{
    int rc = CLI_OK;
    uint64_t todo = 0;
    for (size_t i = 0; i < im->n; i++)
        todo += im->rows[i]->action == IMP_NEW || im->rows[i]->action == IMP_REPLACE;
    c->on_ack = import_acked;
    cli_prog_begin(c, "importing", todo);
    for (size_t i = 0; i < im->n && rc == CLI_OK; i++) {
        if (im->rows[i]->action == IMP_NEW || im->rows[i]->action == IMP_REPLACE)
            rc = write_row(c, im, t, i);
    }
    int flushed = cli_flush(c); /* what is queued, in any case */
    return rc != CLI_OK ? rc : flushed;
}

/* A file with a refused line writes nothing (unless --skip-bad): its
 * other changes are held back, counted, and left as they are (as if
 * unchanged, but not counted so). */
static void hold_back(struct import *im)
{
    for (size_t i = 0; i < im->n; i++) {
        struct imp_row *r = im->rows[i];
        if (r->action == IMP_NEW || r->action == IMP_REPLACE) {
            r->action = IMP_UNCHANGED;
            im->held++;
        }
    }
}

static int summary(struct cli *c, const struct import *im, int rc)
{
    uint64_t todo = 0, done = 0;
    for (size_t i = 0; i < im->n; i++) {
        todo += im->rows[i]->action == IMP_NEW || im->rows[i]->action == IMP_REPLACE;
        done += im->done[i];
    }
    printf("%s %" PRIu64 ", unchanged %" PRIu64 ", refused %" PRIu64,
           c->args.dry_run ? "would import" : "imported", c->args.dry_run ? todo : done,
           im->unchanged, im->refused);
    if (!c->args.dry_run && done < todo)
        printf(", not written %" PRIu64, todo - done);
    if (im->held)
        printf(", held back %" PRIu64, im->held);
    if (im->subscribers)
        printf(", subscribers skipped %" PRIu64, im->subscribers);
    printf("%s\n", c->args.dry_run ? " (dry run: nothing written)" : "");
    if (im->held)
        cli_say(c,
                "nothing %s: %" PRIu64
                " line(s) refused; correct them, or import the other %" PRIu64 " with --skip-bad",
                c->args.dry_run ? "would be written" : "written", im->refused, im->held);
    if (im->subscribers)
        cli_say(c,
                "%" PRIu64 " subscriber record(s) not imported: bwprovd finds a subscriber's id "
                "again by lookup",
                im->subscribers);
    if (rc == CLI_OK && im->refused)
        rc = CLI_INCOMPLETE;
    return rc;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return strcmp(path, "-") == 0 ? "stdin" : slash ? slash + 1 : path;
}

static int import_into(struct cli *c, struct import *im, struct st_table *t)
{
    int rc;
    struct tr *tp = cli_topic(c, c->cfg.topic_state, &rc);
    if (tp)
        rc = cli_read(c, tp, NULL, "reading the map", read_map, t);
    tr_free(tp);
    if (rc != CLI_OK)
        return rc;
    if (imp_mark_conflicts(im->rows, im->n) != 0)
        return out_of_memory(c);
    if ((rc = decide_rows(c, im, t)) != CLI_OK)
        return rc;
    if (im->refused && !c->args.skip_bad)
        hold_back(im); /* all or nothing */
    else if (!c->args.dry_run)
        rc = write_rows(c, im, t);
    report_changes(c, im);
    say_refusals(c, im);
    return summary(c, im, rc);
}

int cli_state_import(struct cli *c)
{
    struct import im = {.origin = base_name(c->args.arg)};
    struct st_table *t = st_new();
    int rc = t ? read_file(c, &im) : out_of_memory(c);
    if (rc == CLI_OK) {
        im.done = calloc(im.n ? im.n : 1, sizeof(*im.done));
        rc = im.done ? import_into(c, &im, t) : out_of_memory(c);
    }
    if (!im.refusals_said) /* the run ended early (Kafka unreachable ...) */
        say_refusals(c, &im);
    for (size_t i = 0; i < im.n; i++)
        free(im.rows[i]);
    for (size_t i = 0; i < im.n_refusals; i++)
        free(im.refusals[i].text);
    free(im.refusals);
    free(im.rows);
    free(im.done);
    st_free(t);
    return rc;
}
