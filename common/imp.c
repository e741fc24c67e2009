/* imp: see imp.h. */
#include "imp.h"

#include "event.h"
#include "hmap.h"
#include "jsonw.h"
#include "jstrict.h"
#include "result.h"
#include "wsid.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const imp_col_names[IMP_NCOLS] = {
    "userId",         "workspaceId",        "spEnterpriseId", "displayName",
    "provisioningId", "primaryPhoneNumber", "extension",
};

/* Bytes a field may have (the bounds of an event's fields, SPEC §2). */
static const size_t col_max[IMP_NCOLS] = {
    EV_MAX_USER_ID,         EV_MAX_WORKSPACE_ID, EV_MAX_ENTERPRISE_ID, EV_MAX_DISPLAY_NAME,
    EV_MAX_PROVISIONING_ID, EV_MAX_PHONE,        EV_MAX_EXTENSION,
};

void imp_init(struct imp_parser *p)
{
    memset(p, 0, sizeof(*p));
}

/* --- fields of a row --- */

struct field {
    const char *p;
    size_t len;
};

/* One allocation for the row and copies of its fields. */
static struct imp_row *row_new(unsigned line, const struct field *f)
{
    size_t size = sizeof(struct imp_row);
    for (int c = 0; c < IMP_NCOLS; c++)
        size += f[c].p ? f[c].len + 1 : 0;
    struct imp_row *r = calloc(1, size);
    if (!r)
        return NULL;
    char *at = (char *)(r + 1);
    r->line = line;
    for (int c = 0; c < IMP_NCOLS; c++) {
        if (!f[c].p || f[c].len == 0)
            continue;
        memcpy(at, f[c].p, f[c].len);
        at[f[c].len] = '\0';
        r->f[c] = at;
        at += f[c].len + 1;
    }
    return r;
}

static int col_by_name(const char *name, size_t len)
{
    for (int c = 0; c < IMP_NCOLS; c++)
        if (strlen(imp_col_names[c]) == len && strncasecmp(imp_col_names[c], name, len) == 0)
            return c;
    return -1;
}

/* --- JSON Lines --- */

/* A member of o as a field: absent, null or "" -> no field. */
static bool json_field(json_object *o, const char *name, struct field *f, char *why, size_t cap)
{
    json_object *v;
    f->p = NULL;
    f->len = 0;
    if (!json_object_object_get_ex(o, name, &v) || json_object_is_type(v, json_type_null))
        return true;
    if (!json_object_is_type(v, json_type_string)) {
        snprintf(why, cap, "%s is not a string", name);
        return false;
    }
    f->p = json_object_get_string(v);
    f->len = (size_t)json_object_get_string_len(v);
    if (strlen(f->p) != f->len) {
        snprintf(why, cap, "%s contains a NUL character", name);
        return false;
    }
    return true;
}

/* Whether o is a live subscriber's state record (a line of an export). */
static bool json_is_subscriber(json_object *o)
{
    json_object *v;
    return json_object_object_get_ex(o, "kind", &v) && json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), "subscriber") == 0 &&
           !(json_object_object_get_ex(o, "removed", &v) && json_object_get_boolean(v));
}

/* A line of an export is an import line: state records are accepted, but
 * not a removed marker or another kind's record. */
static bool json_kind_ok(json_object *o, char *why, size_t cap)
{
    json_object *v;
    if (json_object_object_get_ex(o, "removed", &v) && json_object_get_boolean(v)) {
        snprintf(why, cap, "a removed marker, not a workspace");
        return false;
    }
    if (json_object_object_get_ex(o, "kind", &v) &&
        (!json_object_is_type(v, json_type_string) ||
         strcmp(json_object_get_string(v), "workspace") != 0)) {
        snprintf(why, cap, "\"kind\" is not \"workspace\"");
        return false;
    }
    return true;
}

static json_object *json_line(const char *line, size_t len, char *why, size_t cap)
{
    enum json_tokener_error err;
    size_t end = 0;
    json_object *o = jstrict_parse(line, len, 16, &err, &end);
    while (end < len && (line[end] == ' ' || line[end] == '\t'))
        end++;
    if (!o || err != json_tokener_success || end != len ||
        !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        snprintf(why, cap,
                 err == json_tokener_error_size ? "out of memory or too long"
                                                : "not one JSON object");
        return NULL;
    }
    return o;
}

static enum imp_parsed parse_json(struct imp_parser *p, const char *line, size_t len,
                                  struct imp_row **row, char *why, size_t cap)
{
    struct field f[IMP_NCOLS];
    json_object *o = json_line(line, len, why, cap);
    if (!o)
        return IMP_BAD;
    if (json_is_subscriber(o)) {
        json_object_put(o);
        return IMP_SUBSCRIBER;
    }
    bool ok = json_kind_ok(o, why, cap);
    for (int c = 0; ok && c < IMP_NCOLS; c++)
        ok = json_field(o, imp_col_names[c], &f[c], why, cap);
    if (ok && !(*row = row_new(p->line, f))) {
        snprintf(why, cap, "out of memory");
        ok = false;
    }
    json_object_put(o);
    return ok ? IMP_ROW : IMP_BAD;
}

/* --- CSV (RFC 4180 within one line) --- */

/* A quoted field starting at line[*i] (the opening quote); its unescaped
 * text goes to out at *o. */
static bool csv_quoted(const char *line, size_t len, size_t *i, char *out, size_t *o, char *why,
                       size_t cap)
{
    for ((*i)++; *i < len; (*i)++) {
        if (line[*i] != '"') {
            out[(*o)++] = line[*i];
        } else if (*i + 1 < len && line[*i + 1] == '"') {
            out[(*o)++] = '"';
            (*i)++;
        } else {
            (*i)++;
            while (*i < len && (line[*i] == ' ' || line[*i] == '\t'))
                (*i)++;
            if (*i < len && line[*i] != ',') {
                snprintf(why, cap, "text after a closing quote");
                return false;
            }
            return true;
        }
    }
    snprintf(why, cap, "a quote is not closed (fields cannot span lines)");
    return false;
}

/* Splits line into fields (unescaped into buf, which has len bytes). */
static int csv_split(const char *line, size_t len, char *buf, struct field *f, char *why,
                     size_t cap)
{
    size_t i = 0, o = 0;
    int n = 0;
    for (;;) {
        if (n == IMP_MAX_FIELDS) {
            snprintf(why, cap, "more than %d fields", IMP_MAX_FIELDS);
            return -1;
        }
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        f[n].p = buf + o;
        if (i < len && line[i] == '"') {
            if (!csv_quoted(line, len, &i, buf, &o, why, cap))
                return -1;
        } else {
            size_t start = o;
            while (i < len && line[i] != ',')
                buf[o++] = line[i++];
            while (o > start && (buf[o - 1] == ' ' || buf[o - 1] == '\t'))
                o--; /* unquoted fields are trimmed */
        }
        f[n].len = (size_t)(buf + o - f[n].p);
        n++;
        if (i >= len)
            return n;
        i++; /* the comma */
    }
}

static bool csv_header(struct imp_parser *p, const struct field *f, int n, char *why, size_t cap)
{
    bool seen[IMP_NCOLS] = {false};
    for (int k = 0; k < n; k++) {
        int c = col_by_name(f[k].p, f[k].len);
        if (c >= 0 && seen[c]) {
            snprintf(why, cap, "column %s twice in the header", imp_col_names[c]);
            return false;
        }
        if (c >= 0)
            seen[c] = true;
        p->map[k] = c;
    }
    p->nmap = n;
    p->header = true;
    if (!seen[IMP_USER] || !seen[IMP_WS]) {
        snprintf(why, cap, "the header has no userId or no workspaceId column");
        return false;
    }
    return true;
}

static enum imp_parsed csv_row(struct imp_parser *p, const struct field *in, int n,
                               struct imp_row **row, char *why, size_t cap)
{
    struct field f[IMP_NCOLS] = {{NULL, 0}};
    int limit = p->header ? p->nmap : IMP_NCOLS;
    if (n > limit) {
        snprintf(why, cap, "%d fields, more than the %d %s", n, limit,
                 p->header ? "columns of the header"
                           : "columns userId,workspaceId,spEnterpriseId,displayName,"
                             "provisioningId,primaryPhoneNumber,extension");
        return IMP_BAD;
    }
    for (int k = 0; k < n; k++) {
        int c = p->header ? p->map[k] : k;
        if (c >= 0)
            f[c] = in[k];
    }
    if (!(*row = row_new(p->line, f))) {
        snprintf(why, cap, "out of memory");
        return IMP_BAD;
    }
    return IMP_ROW;
}

static enum imp_parsed parse_csv(struct imp_parser *p, const char *line, size_t len,
                                 struct imp_row **row, char *why, size_t cap)
{
    struct field f[IMP_MAX_FIELDS];
    char *buf = malloc(len + 1);
    enum imp_parsed rc = IMP_BAD;
    if (!buf) {
        snprintf(why, cap, "out of memory");
        return IMP_BAD;
    }
    int n = csv_split(line, len, buf, f, why, cap);
    bool first = p->fmt == IMP_FMT_UNKNOWN;
    if (n > 0 && first && col_by_name(f[0].p, f[0].len) == IMP_USER) {
        p->fmt = IMP_FMT_CSV;
        rc = csv_header(p, f, n, why, cap) ? IMP_SKIP : IMP_BAD;
        p->header_bad = rc == IMP_BAD;
    } else if (n > 0 && p->header_bad) {
        snprintf(why, cap, "the header line was refused");
    } else if (n > 0) {
        p->fmt = IMP_FMT_CSV;
        rc = csv_row(p, f, n, row, why, cap);
    }
    free(buf);
    return rc;
}

/* --- lines --- */

static bool blank_or_comment(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return i == len || line[i] == '#';
}

enum imp_parsed imp_parse_line(struct imp_parser *p, const char *line, size_t len,
                               struct imp_row **row, char *why, size_t cap)
{
    *row = NULL;
    why[0] = '\0';
    p->line++;
    if (p->line == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
        line += 3;
        len -= 3;
    }
    if (len && line[len - 1] == '\r')
        len--;
    if (len > IMP_MAX_LINE) {
        snprintf(why, cap, "longer than %d bytes", IMP_MAX_LINE);
        return IMP_BAD;
    }
    if (blank_or_comment(line, len))
        return IMP_SKIP;
    if (memchr(line, '\0', len)) {
        snprintf(why, cap, "contains a NUL byte");
        return IMP_BAD;
    }
    size_t lead = 0; /* the line is not terminated: no strspn */
    while (lead < len && (line[lead] == ' ' || line[lead] == '\t'))
        lead++;
    bool json = line[lead] == '{';
    if (p->fmt == IMP_FMT_UNKNOWN && json)
        p->fmt = IMP_FMT_JSONL;
    if (p->fmt == IMP_FMT_JSONL && !json) {
        snprintf(why, cap, "not a JSON object (the file is JSON Lines)");
        return IMP_BAD;
    }
    if (p->fmt == IMP_FMT_CSV && json) {
        snprintf(why, cap, "a JSON object in a CSV file");
        return IMP_BAD;
    }
    return json ? parse_json(p, line, len, row, why, cap) : parse_csv(p, line, len, row, why, cap);
}

/* --- checks --- */

static const char *text_ok(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len > max)
        return "is too long";
    if (!ev_utf8_valid(s, len))
        return "is not valid UTF-8";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "contains a control character";
    return NULL;
}

bool imp_check(const struct imp_row *r, char *why, size_t cap)
{
    if (!r->f[IMP_USER] || !r->f[IMP_WS]) {
        snprintf(why, cap, "no %s", r->f[IMP_USER] ? "workspaceId" : "userId");
        return false;
    }
    for (int c = 0; c < IMP_NCOLS; c++) {
        const char *bad = r->f[c] ? text_ok(r->f[c], col_max[c]) : NULL;
        if (bad) {
            snprintf(why, cap, "%s %s (at most %zu bytes of text)", imp_col_names[c], bad,
                     col_max[c]);
            return false;
        }
    }
    const char *bad = wsid_check_place(r->f[IMP_WS], strlen(r->f[IMP_WS]));
    if (bad) {
        snprintf(why, cap, "workspaceId %s", bad);
        return false;
    }
    return true;
}

/* --- rows that contradict each other --- */

struct seen {
    struct hmap_node node;
    struct imp_row *row; /* the first row with this key */
    int col;             /* the key's column */
};

static bool seen_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct seen *s = (const struct seen *)n;
    const char *v = s->row->f[s->col];
    return strlen(v) == len && memcmp(v, key, len) == 0;
}

static void conflict(struct imp_row *r, const struct imp_row *other, const char *what)
{
    if (r->conflict)
        return;
    r->conflict = true;
    snprintf(r->why, sizeof(r->why), "%s line %u", what, other->line);
}

/* Compares r with the first row that has the same key in column col (m
 * holds that column's keys). */
static void check_key(struct hmap *m, struct seen *slot, struct imp_row *r, int col)
{
    const char *key = r->f[col];
    size_t len = strlen(key);
    uint64_t h = hmap_hash(key, len);
    struct seen *first = (struct seen *)hmap_find(m, h, key, len, seen_eq);
    if (!first) {
        *slot = (struct seen){.row = r, .col = col};
        hmap_insert(m, &slot->node, h);
        return;
    }
    int other = col == IMP_USER ? IMP_WS : IMP_USER;
    if (strcmp(first->row->f[other], r->f[other]) == 0) {
        r->dup_of = first->row; /* the same workspace for the same user */
        return;
    }
    const char *what = col == IMP_USER ? "userId with another workspaceId on"
                                       : "workspaceId for another userId on";
    conflict(r, first->row, what);
    conflict(first->row, r, what);
}

int imp_mark_conflicts(struct imp_row **rows, size_t n)
{
    struct hmap users, ids;
    struct seen *slots = calloc(n ? 2 * n : 1, sizeof(*slots));
    bool ok = slots && hmap_init(&users, n < 16 ? 16 : n) == 0;
    if (ok && hmap_init(&ids, n < 16 ? 16 : n) != 0) {
        hmap_destroy(&users);
        ok = false;
    }
    if (!ok) {
        free(slots);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        check_key(&users, &slots[2 * i], rows[i], IMP_USER);
        check_key(&ids, &slots[2 * i + 1], rows[i], IMP_WS);
    }
    for (size_t i = 0; i < n; i++) /* a repeat of a refused line is refused */
        if (rows[i]->dup_of && rows[i]->dup_of->conflict)
            conflict(rows[i], rows[i]->dup_of, "repeats the contradicted");
    hmap_destroy(&users);
    hmap_destroy(&ids);
    free(slots);
    return 0;
}

/* --- against the map --- */

enum imp_action imp_decide(const struct imp_row *r, const struct imp_existing *e, bool force,
                           char *why, size_t cap)
{
    const char *user = r->f[IMP_USER], *ws = r->f[IMP_WS];
    why[0] = '\0';
    if (e->holder && strcmp(e->holder, user) != 0) {
        snprintf(why, cap, "workspaceId already belongs to userId %s", e->holder);
        return IMP_REFUSE;
    }
    if (e->status == ST_PRESENT && e->subscriber) { /* one userId, one kind of thing */
        snprintf(why, cap,
                 "the map has a subscriber for it (a workspace import cannot replace it)");
        return IMP_REFUSE;
    }
    if (e->status == ST_PRESENT && e->ws && strcmp(e->ws, ws) == 0)
        return IMP_UNCHANGED;
    if (e->status == ST_ABSENT)
        return IMP_NEW;
    if (force)
        return IMP_REPLACE;
    if (e->status == ST_PRESENT)
        snprintf(why, cap, "the map has workspace %s for it (--force replaces it)",
                 e->ws ? e->ws : "?");
    else
        snprintf(why, cap, "the map has a removed marker for it (--force imports over it)");
    return IMP_REFUSE;
}

void imp_source(const struct st_src *entry, struct st_src *out)
{
    if (entry && entry->topic)
        *out = *entry;
    else
        *out = (struct st_src){IMP_SOURCE_TOPIC, -1, -1};
}

char *imp_record_json(const struct imp_row *r, const struct st_src *src, int64_t now_ms,
                      const char *origin, size_t *len)
{
    char when[40];
    struct jw w;
    jw_begin(&w);
    jw_str(&w, "kind", "workspace");
    jw_str(&w, "workspaceId", r->f[IMP_WS]);
    jw_str(&w, "userId", r->f[IMP_USER]);
    jw_str(&w, "spEnterpriseId", r->f[IMP_ENTERPRISE]);
    jw_str(&w, "provisioningId", r->f[IMP_PROVISIONING]);
    jw_str(&w, "displayName", r->f[IMP_DISPLAY]);
    jw_str(&w, "primaryPhoneNumber", r->f[IMP_PHONE]);
    jw_str(&w, "extension", r->f[IMP_EXTENSION]);
    jw_null(&w, "eventId");
    jw_obj_begin(&w, "source");
    jw_str(&w, "topic", src->topic);
    jw_int(&w, "partition", src->partition);
    jw_int(&w, "offset", src->offset);
    jw_obj_end(&w);
    res_format_time(now_ms, when, sizeof(when));
    jw_str(&w, "updatedAt", when);
    jw_str(&w, "importedFrom", origin);
    return jw_finish(&w, len);
}
