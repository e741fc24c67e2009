/* cred: see cred.h. */
#include "cred.h"

#include "log.h"
#include "secmem.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cred_path(const char *value, char *out, size_t cap, char *err, size_t errlen)
{
    int n;
    if (strncmp(value, "cred:", 5) == 0) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        const char *name = value + 5;
        if (!dir || !*dir) {
            snprintf(err, errlen, "%s: $CREDENTIALS_DIRECTORY is not set", value);
            return -1;
        }
        if (!*name || strchr(name, '/') || strcmp(name, "..") == 0) {
            snprintf(err, errlen, "%s: invalid credential name", value);
            return -1;
        }
        n = snprintf(out, cap, "%s/%s", dir, name);
    } else {
        n = snprintf(out, cap, "%s", value);
    }
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    return 0;
}

static void warn_if_shared(const char *path, const struct stat *st)
{
    if (st->st_mode & (S_IRWXG | S_IRWXO))
        log_warn("secret file %s is accessible by group or others (mode %04o); use mode 0600", path,
                 (unsigned)(st->st_mode & 07777));
}

/* Reads into a secmem buffer of the largest size allowed (the file may be
 * growing, so its size is not asked first), then keeps a secmem copy of the
 * right size: a token held for hours costs its length, not 16 KiB. */
static char *read_fd(int fd, const char *path, char *err, size_t errlen)
{
    char *buf = secmem_alloc(CRED_MAX_BYTES + 1);
    size_t len = 0;
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, CRED_MAX_BYTES + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: read: %s", path, strerror(errno));
            secmem_free(buf);
            return NULL;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > CRED_MAX_BYTES) {
            snprintf(err, errlen, "%s: larger than %d bytes", path, CRED_MAX_BYTES);
            secmem_free(buf);
            return NULL;
        }
    }
    while (len && isspace((unsigned char)buf[len - 1]))
        len--;
    buf[len] = '\0';
    if (len == 0 || strlen(buf) != len) {
        snprintf(err, errlen, "%s: empty or not text", path);
        secmem_free(buf);
        return NULL;
    }
    char *s = secmem_strndup(buf, len);
    secmem_free(buf); /* wiped */
    if (!s)
        snprintf(err, errlen, "%s: out of memory", path);
    return s;
}

char *cred_read(const char *value, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct stat st;

    if (cred_path(value, path, sizeof(path), err, errlen) != 0)
        return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* A file named by path: the operator set its mode. Not a systemd
     * credential: $CREDENTIALS_DIRECTORY is a private read-only mount that
     * only the service sees, and systemd picks the mode (0400 in 252, 0440
     * with the unit's group in Debian 13's 257). */
    if (strncmp(value, "cred:", 5) != 0 && fstat(fd, &st) == 0)
        warn_if_shared(path, &st);
    char *s = read_fd(fd, path, err, errlen);
    close(fd);
    return s;
}

static int write_all(int fd, const char *s, size_t len)
{
    while (len) {
        ssize_t w = write(fd, s, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        s += w;
        len -= (size_t)w;
    }
    return 0;
}

static void fsync_dir(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", path);
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
}

int cred_write_atomic(const char *value, const char *secret, char *err, size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX + 16];

    if (cred_path(value, path, sizeof(path), err, errlen) != 0)
        return -1;
    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC); /* created 0600 */
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    int rc = write_all(fd, secret, strlen(secret));
    rc = rc == 0 ? write_all(fd, "\n", 1) : rc;
    rc = rc == 0 ? fsync(fd) : rc;
    if (close(fd) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    fsync_dir(path);
    return 0;
}
