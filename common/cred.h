/* cred: secret files. Resolves "cred:NAME" against $CREDENTIALS_DIRECTORY
 * (systemd LoadCredential=), reads a secret with bounds, warns when the file
 * is readable by group or others, and writes a rotated secret atomically.
 * Thread-safe (no shared state). Secret values are never logged, and the
 * only copies made here are in secmem memory. */
#ifndef BWPROVD_CRED_H
#define BWPROVD_CRED_H

#include "secmem.h"

#include <stddef.h>

#define CRED_MAX_BYTES 16384

/* Resolves value to a path in out. Returns 0, or -1 with a reason in err
 * ("cred:" without $CREDENTIALS_DIRECTORY, a NAME with '/', too long). */
int cred_path(const char *value, char *out, size_t cap, char *err, size_t errlen);

/* Reads the secret at path (resolving cred:), trailing whitespace removed.
 * Returns a string in secmem memory (secmem.h: kept out of core dumps; the
 * caller frees it with secmem_free(), which wipes it), or NULL with a
 * reason in err (missing, unreadable, empty, larger than CRED_MAX_BYTES,
 * out of memory). */
char *cred_read(const char *value, char *err, size_t errlen);

/* Replaces the file with secret: temporary file in the same directory,
 * mode 0600, fsync, rename, fsync of the directory. Returns 0 or -1. */
int cred_write_atomic(const char *value, const char *secret, char *err, size_t errlen);

#endif
