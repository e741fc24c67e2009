/* fuzz.h: shared by the fuzz targets (fuzz_*.c) and the replay driver.
 *
 * Each target defines LLVMFuzzerTestOneInput. With clang it is linked with
 * libFuzzer (-fsanitize=fuzzer); with gcc, replay.c supplies main() and feeds
 * it the seed corpus and the regression inputs. FUZZ_CHECK is not assert():
 * it stays on under NDEBUG (RelWithDebInfo), and a failed invariant aborts,
 * which libFuzzer reports as a crash and saves the input. */
#ifndef BWPROVD_FUZZ_H
#define BWPROVD_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Open defects the fuzz targets know about, each with a short id (listed
 * in README.md with its reproducer in regressions/). An invariant that such
 * a defect breaks is skipped only while its id is in the comma-separated
 * environment variable BWPROVD_FUZZ_KNOWN, which CMake sets for the tests
 * and run.sh for its runs (default: the ids still open). Unset, every
 * invariant holds strictly. */
static inline bool fuzz_known(const char *id)
{
    const char *list = getenv("BWPROVD_FUZZ_KNOWN");
    size_t n = strlen(id);
    for (const char *p = list; p && *p; p += strcspn(p, ",")) {
        p += *p == ',';
        if (strncmp(p, id, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    }
    return false;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. Written independently of event.c's checker on purpose. */
static inline bool fuzz_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i], need, cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (len - i <= need)
            return false;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

/* A C string is within max bytes and strict UTF-8. */
static inline bool fuzz_str_ok(const char *s, size_t max)
{
    size_t n = 0;
    while (n <= max && s[n])
        n++;
    return n <= max && fuzz_utf8_valid((const unsigned char *)s, n);
}

#endif
