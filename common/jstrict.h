/* jstrict: strict JSON parsing with json-c (RFC 8259 grammar, UTF-8
 * validated), also with a json-c whose strict mode is broken.
 *
 * json-c 0.18 (Debian 13's) rejects every byte >= 0x80 inside a string in
 * strict mode (JSON_TOKENER_STRICT): its new test for control characters
 * compares a signed char with 0x1f (json-c issues #875 and #892), so any
 * text that is not ASCII (an "é" in a display name) fails as "invalid
 * string sequence". json-c 0.16 (Debian 12's) is not affected. Whether the
 * json-c in use has the defect is found out at the first call by parsing a
 * probe, not from its version number (a distribution may patch it). Where
 * it has, a text holding such bytes is parsed twice: strictly, for its
 * grammar, as a copy with every byte >= 0x80 replaced by 'x' (allowed in
 * a string, never valid outside one), then as it is with UTF-8 validation
 * only, which makes the object. A text without such bytes, or a sound
 * json-c, takes one strict pass as before.
 *
 * Pure functions; thread-safe. */
#ifndef BWPROVD_JSTRICT_H
#define BWPROVD_JSTRICT_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* Parses text[0..len) as one JSON value as json_tokener_parse_ex() does
 * with JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8, nesting at most
 * depth levels. Returns the value (the caller owns it: json_object_put)
 * or NULL (also for the literal null). *err gets json-c's verdict
 * (json_tokener_continue: the text ended inside the value;
 * json_tokener_error_size: longer than INT_MAX, or no memory) and *end the
 * offset where parsing stopped: whether bytes after it (whitespace) are
 * allowed is the caller's decision. */
json_object *jstrict_parse(const char *text, size_t len, int depth, enum json_tokener_error *err,
                           size_t *end);

/* Whether the json-c in use needs the two passes (the probe above). */
bool jstrict_needs_two_passes(void);

/* The two passes themselves, whatever the json-c: the unit tests check
 * that they accept and reject exactly what one strict pass does. */
json_object *jstrict_parse_two_passes(const char *text, size_t len, int depth,
                                      enum json_tokener_error *err, size_t *end);

#endif
