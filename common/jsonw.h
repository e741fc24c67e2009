/* jsonw: a small JSON writer for the records bwprovd publishes (the result
 * and state records of SPEC §6 and §4): objects of strings, integers, nulls
 * and nested objects, appended in order to one growable buffer.
 *
 * It exists instead of building json-c objects because those records are
 * written for every event: json-c spent about 50 allocations a record (an
 * object per member, a hash table, key and value copies, the print buffer,
 * the final strdup) and ~10% of the daemon's CPU. This writer makes one
 * malloc (512 bytes, doubled while a record outgrows it) and hands that
 * buffer to the caller.
 *
 * Bounded: the buffer never exceeds JW_MAX_CAP bytes. Any failure (out of
 * memory, the bound, unbalanced objects) is sticky: later calls do nothing
 * and jw_finish() returns NULL. Not thread-safe per struct jw; keep one on
 * the stack per record.
 *
 *     struct jw w;
 *     jw_begin(&w);
 *     jw_str(&w, "eventId", id);    // NULL is written as null
 *     jw_obj_begin(&w, "source");
 *     jw_int(&w, "offset", off);
 *     jw_obj_end(&w);
 *     char *json = jw_finish(&w, &len);   // malloc'd, or NULL; caller frees
 */
#ifndef BWPROVD_JSONW_H
#define BWPROVD_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JW_INIT_CAP 512u
/* The largest buffer, its NUL included: documents are < 1 MiB. */
#define JW_MAX_CAP (1024u * 1024u)

/* Fields are the writer's own; read none of them. */
struct jw {
    char *buf;
    size_t len, cap; /* len < cap: room for the NUL is always kept */
    unsigned depth;  /* objects open, the outermost included */
    bool failed;
    bool first; /* no member yet in the innermost open object */
};

/* Starts the outermost object. Always pair with jw_finish(). */
void jw_begin(struct jw *w);

/* Members of the innermost open object. Keys are NUL-terminated and
 * escaped like values. String values are NUL-terminated bytes, escaped per
 * RFC 8259 (controls, '"', '\\'); other bytes, UTF-8 included, are copied
 * as is. A NULL value is written as null. */
void jw_str(struct jw *w, const char *key, const char *value);
void jw_int(struct jw *w, const char *key, int64_t value);
void jw_null(struct jw *w, const char *key);
void jw_bool(struct jw *w, const char *key, bool value);

/* A member whose value is an object; its members follow until jw_obj_end. */
void jw_obj_begin(struct jw *w, const char *key);
void jw_obj_end(struct jw *w);

/* Closes the outermost object and returns the document: malloc'd,
 * NUL-terminated, *len (if len) set to its length; the caller frees it.
 * NULL (and *len = 0) after any failure or with a nested object still
 * open. Either way w holds nothing afterwards. */
char *jw_finish(struct jw *w, size_t *len);

#endif
