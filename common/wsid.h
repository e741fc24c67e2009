/* wsid: compact Webex workspace ids. An id is base64url (no padding) of
 * "ciscospark://us/PLACE/<uuid>"; kept as the 16 bytes of the uuid, a
 * million workspaces fit in a third of the memory. Ids of any other shape
 * are kept as strings by the caller. Pure; thread-safe. */
#ifndef BWPROVD_WSID_H
#define BWPROVD_WSID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSID_MAX 96 /* the unpacked id, with its NUL */

/* True when id packs to uuid and unpacks to exactly id again. */
bool wsid_pack(const char *id, uint8_t uuid[16]);

/* The id of a packed uuid; cap >= WSID_MAX. */
void wsid_unpack(const uint8_t uuid[16], char *out, size_t cap);

/* The API's own bound on {workspaceId} (maxLength in Cisco's OpenAPI). */
#define WSID_MAX_LEN 256

/* Whether id can name one workspace as one path segment: 1..WSID_MAX_LEN
 * bytes, not "." or "..", no '/', '?', '#' or control character (C0, DEL).
 * Returns NULL when it can, else a static reason. Any other byte is
 * percent-encoded in the path (req_escape_segment). */
const char *wsid_check(const char *id, size_t len);

/* Whether id is a Webex workspace id: unpadded base64url (canonical: it
 * encodes back to exactly id) of "ciscospark://<cluster>/PLACE/<uuid>",
 * the cluster 1-64 printable characters without '/', the uuid 8-4-4-4-12
 * hex digits. Returns NULL when it is, else a static reason. Stricter than
 * wsid_check(), which only keeps an id one path segment: this one is for
 * ids people bring (`bwprovd state import`), where a typo or another
 * resource's id (a PEOPLE id) must not reach the map. */
const char *wsid_check_place(const char *id, size_t len);

#endif
