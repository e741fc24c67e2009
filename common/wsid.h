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

#endif
