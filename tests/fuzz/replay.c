/* replay: a main() for the fuzz targets when the compiler has no libFuzzer
 * (gcc, the default CI build). Feeds every regular file of each argument (a
 * file, or a directory whose entries are taken in name order, dot files
 * skipped) to LLVMFuzzerTestOneInput, each in a buffer of its exact size.
 * A failed invariant aborts (non-zero exit); a sanitizer build reports
 * memory errors as usual. A missing argument is an error, so a renamed
 * corpus directory cannot turn the test into a no-op.
 *
 *     fuzz_event_replay tests/fuzz/corpus/event tests/fuzz/regressions/event
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rbe");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return -1;
    }
    /* An exact-size copy, so ASan sees a read past the input's end. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int run_dir(const char *path, unsigned *count)
{
    struct dirent **ents;
    int n = scandir(path, &ents, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        struct stat st;
        if (ents[i]->d_name[0] != '.' &&
            snprintf(file, sizeof(file), "%s/%s", path, ents[i]->d_name) < (int)sizeof(file) &&
            stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(file) != 0)
                rc = -1;
            else
                (*count)++;
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int rc = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 64;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &count) != 0)
                rc = 1;
        } else if (run_file(argv[i]) != 0) {
            rc = 1;
        } else {
            count++;
        }
    }
    fprintf(stderr, "replay: %u inputs, %s\n", count, rc ? "with errors" : "all passed");
    return rc;
}
