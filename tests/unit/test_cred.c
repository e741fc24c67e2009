/* Unit tests for common/cred.c: cred:NAME resolution against
 * $CREDENTIALS_DIRECTORY, secret file reading with its bounds, and the
 * atomic, mode-0600 rewrite of a rotated secret. Values come back in
 * secmem memory and every error path frees its buffer. Files live in a
 * mkdtemp() directory. */
#include "check.h"
#include "cred.h"
#include "log.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[PATH_MAX - 64];

static const char *in_tmp(const char *name)
{
    static char buf[4][PATH_MAX];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, PATH_MAX, "%s/%s", tmpdir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "w");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
    chmod(path, mode);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text), 0600);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    if (buf)
        (void)!fread(buf, 1, 65535, f);
    fclose(f);
    return buf;
}

static size_t dir_entries(void)
{
    DIR *d = opendir(tmpdir);
    size_t n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_path(void)
{
    char out[PATH_MAX], err[256];

    unsetenv("CREDENTIALS_DIRECTORY");
    CHECK_EQ_INT(cred_path("/etc/bwprovd/token", out, sizeof(out), err, sizeof(err)), 0);
    CHECK_EQ_STR(out, "/etc/bwprovd/token");
    CHECK_EQ_INT(cred_path("relative/token", out, sizeof(out), err, sizeof(err)), 0);
    CHECK_EQ_STR(out, "relative/token");
    /* "cred:" needs the directory systemd provides. */
    err[0] = '\0';
    CHECK_EQ_INT(cred_path("cred:token", out, sizeof(out), err, sizeof(err)), -1);
    CHECK_CONTAINS(err, "CREDENTIALS_DIRECTORY");
    CHECK_CONTAINS(err, "cred:token");
    setenv("CREDENTIALS_DIRECTORY", "", 1);
    CHECK_EQ_INT(cred_path("cred:token", out, sizeof(out), err, sizeof(err)), -1);

    setenv("CREDENTIALS_DIRECTORY", "/run/credentials/bwprovd.service", 1);
    CHECK_EQ_INT(cred_path("cred:token", out, sizeof(out), err, sizeof(err)), 0);
    CHECK_EQ_STR(out, "/run/credentials/bwprovd.service/token");
    CHECK_EQ_INT(cred_path("cred:webex.refresh", out, sizeof(out), err, sizeof(err)), 0);
    CHECK_EQ_STR(out, "/run/credentials/bwprovd.service/webex.refresh");

    static const char *const bad[] = {"cred:../x", "cred:a/b",         "cred:..",
                                      "cred:",     "cred:/etc/shadow", "cred:x/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (!CHECK_EQ_INT(cred_path(bad[i], out, sizeof(out), err, sizeof(err)), -1))
            fprintf(stderr, "  accepted %s as %s\n", bad[i], out);
        CHECK_CONTAINS(err, bad[i]);
    }

    /* Too long for the caller's buffer. */
    char small[8];
    CHECK_EQ_INT(cred_path("/a/much/longer/path", small, sizeof(small), err, sizeof(err)), -1);
    CHECK_EQ_INT(cred_path("cred:token", small, sizeof(small), err, sizeof(err)), -1);
    CHECK_EQ_INT(cred_path("/abcdef", small, sizeof(small), err, sizeof(err)), 0); /* 7 + NUL */
    CHECK_EQ_STR(small, "/abcdef");
    unsetenv("CREDENTIALS_DIRECTORY");
}

/* What cred_read() logged at warning level (standard error, outside
 * journald), in logged. */
static char logged[4096];

static char *read_logged(const char *value, char *err, size_t errlen)
{
    const char *path = in_tmp("stderr");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
    log_set_level(LOG_LVL_WARNING);
    char *s = cred_read(value, err, errlen);
    log_set_level(LOG_LVL_ERR);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char *text = slurp(path);
    snprintf(logged, sizeof(logged), "%s", text ? text : "");
    free(text);
    unlink(path);
    return s;
}

static void test_read(void)
{
    char err[512];
    char *s;

    static const struct {
        const char *content, *want;
    } ok[] = {
        {"secret", "secret"},
        {"secret\n", "secret"},
        {"secret\r\n", "secret"},
        {"secret \t\n\n\n", "secret"},
        {"  lead stays", "  lead stays"},
        {"two\nlines\n", "two\nlines"},
        {"x", "x"},
    };
    const char *p = in_tmp("token");
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        write_text(p, ok[i].content);
        s = cred_read(p, err, sizeof(err));
        CHECK_EQ_STR(s, ok[i].want);
        secmem_free(s);
    }

    /* Empty, blank, binary. */
    static const struct {
        const char *content;
        size_t len;
    } bad[] = {{"", 0}, {"\n", 1}, {" \t\r\n", 4}, {"ab\0cd", 5}, {"\0", 1}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_bytes(p, bad[i].content, bad[i].len, 0600);
        err[0] = '\0';
        s = cred_read(p, err, sizeof(err));
        if (!CHECK_NULL(s))
            fprintf(stderr, "  case %zu read as \"%s\"\n", i, s);
        CHECK_CONTAINS(err, p);
        secmem_free(s);
    }

    /* The value is secmem memory, right-sized; the 16 KiB scratch buffer
     * it was read into is gone. */
    struct secmem_stats st0, st;
    write_text(p, "in-secmem\n");
    secmem_stats(&st0);
    s = cred_read(p, err, sizeof(err));
    secmem_stats(&st);
    CHECK_EQ_STR(s, "in-secmem");
    CHECK_EQ_INT(st.live, st0.live + 1);
    CHECK_EQ_INT(st.large, st0.large);
    secmem_free(s);

    /* Size bound: CRED_MAX_BYTES is fine, one more byte is not. */
    char *big = malloc(CRED_MAX_BYTES + 2);
    if (!big)
        exit(2);
    memset(big, 'k', CRED_MAX_BYTES + 1);
    write_bytes(p, big, CRED_MAX_BYTES, 0600);
    s = cred_read(p, err, sizeof(err));
    CHECK(s && strlen(s) == CRED_MAX_BYTES);
    secmem_free(s);
    write_bytes(p, big, CRED_MAX_BYTES + 1, 0600);
    err[0] = '\0';
    s = cred_read(p, err, sizeof(err));
    CHECK_NULL(s);
    CHECK_CONTAINS(err, "larger");
    secmem_free(s);
    /* Much larger (not read whole). */
    char *huge = calloc(1, 1 << 20);
    if (!huge)
        exit(2);
    memset(huge, 'h', 1 << 20);
    write_bytes(p, huge, 1 << 20, 0600);
    s = cred_read(p, err, sizeof(err));
    CHECK_NULL(s);
    secmem_free(s);
    free(huge);
    free(big);

    /* Missing file, a directory. */
    err[0] = '\0';
    s = cred_read(in_tmp("missing"), err, sizeof(err));
    CHECK_NULL(s);
    CHECK_CONTAINS(err, "missing");
    secmem_free(s);
    s = cred_read(tmpdir, err, sizeof(err));
    CHECK_NULL(s);
    secmem_free(s);

    /* A group-readable file is still read (with a warning in the log). */
    write_bytes(p, "shared", 6, 0644);
    s = read_logged(p, err, sizeof(err));
    CHECK_EQ_STR(s, "shared");
    CHECK_CONTAINS(logged, "accessible by group or others (mode 0644)");
    secmem_free(s);
    unlink(p);

    /* A systemd credential: systemd sets its mode (0440 in systemd 257),
     * no warning. */
    write_bytes(in_tmp("shared-cred"), "from-systemd", 12, 0440);
    setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
    s = read_logged("cred:shared-cred", err, sizeof(err));
    unsetenv("CREDENTIALS_DIRECTORY");
    CHECK_EQ_STR(s, "from-systemd");
    CHECK_WHY(!strstr(logged, "accessible by group"),
              "a systemd credential (mode 0440 in systemd 257) warned at every start");
    secmem_free(s);
    unlink(in_tmp("shared-cred"));

    /* Through cred:NAME. */
    write_text(in_tmp("webex-token"), "from-credentials-dir\n");
    setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
    s = cred_read("cred:webex-token", err, sizeof(err));
    CHECK_EQ_STR(s, "from-credentials-dir");
    secmem_free(s);
    err[0] = '\0';
    s = cred_read("cred:../webex-token", err, sizeof(err));
    CHECK_NULL(s);
    CHECK_CONTAINS(err, "invalid credential name");
    secmem_free(s);
    unsetenv("CREDENTIALS_DIRECTORY");
    s = cred_read("cred:webex-token", err, sizeof(err));
    CHECK_NULL(s);
    secmem_free(s);
    unlink(in_tmp("webex-token"));
}

static void test_write(void)
{
    char err[512];
    struct stat st0, st;
    const char *p = in_tmp("refresh");

    umask(0); /* the 0600 must come from cred.c, not from our umask */
    write_bytes(p, "old-token\n", 10, 0644);
    CHECK_EQ_INT(stat(p, &st0), 0);
    size_t before = dir_entries();

    CHECK_EQ_INT(cred_write_atomic(p, "new-token", err, sizeof(err)), 0);
    CHECK_EQ_INT(stat(p, &st), 0);
    CHECK_EQ_INT(st.st_mode & 07777, 0600);
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_ino != st0.st_ino); /* replaced by rename, not rewritten in place */
    char *c = slurp(p);
    CHECK_EQ_STR(c, "new-token\n");
    free(c);
    char *s = cred_read(p, err, sizeof(err));
    CHECK_EQ_STR(s, "new-token");
    secmem_free(s);
    CHECK_EQ_INT(dir_entries(), before); /* no temporary file left behind */

    /* A shorter secret replaces the whole content. */
    CHECK_EQ_INT(cred_write_atomic(p, "x", err, sizeof(err)), 0);
    c = slurp(p);
    CHECK_EQ_STR(c, "x\n");
    free(c);

    /* Creating a new file. */
    const char *fresh = in_tmp("fresh");
    CHECK_EQ_INT(cred_write_atomic(fresh, "first", err, sizeof(err)), 0);
    CHECK_EQ_INT(stat(fresh, &st), 0);
    CHECK_EQ_INT(st.st_mode & 07777, 0600);
    s = cred_read(fresh, err, sizeof(err));
    CHECK_EQ_STR(s, "first");
    secmem_free(s);
    unlink(fresh);

    /* Through cred:NAME. */
    setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
    CHECK_EQ_INT(cred_write_atomic("cred:refresh", "via-cred", err, sizeof(err)), 0);
    s = cred_read(p, err, sizeof(err));
    CHECK_EQ_STR(s, "via-cred");
    secmem_free(s);
    CHECK_EQ_INT(cred_write_atomic("cred:../refresh", "no", err, sizeof(err)), -1);
    unsetenv("CREDENTIALS_DIRECTORY");

    /* A directory that does not exist: an error, nothing created. */
    before = dir_entries();
    err[0] = '\0';
    CHECK_EQ_INT(cred_write_atomic(in_tmp("nodir/refresh"), "s", err, sizeof(err)), -1);
    CHECK(err[0] != '\0');
    CHECK_EQ_INT(dir_entries(), before);

    /* Many rewrites leave exactly one file. */
    for (int i = 0; i < 50; i++) {
        char v[32];
        snprintf(v, sizeof(v), "rot-%d", i);
        if (cred_write_atomic(p, v, err, sizeof(err)) != 0)
            break;
    }
    s = cred_read(p, err, sizeof(err));
    CHECK_EQ_STR(s, "rot-49");
    secmem_free(s);
    CHECK_EQ_INT(dir_entries(), before);
    unlink(p);
    umask(022);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s/bwprovd-cred-XXXXXX",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    log_set_level(LOG_LVL_ERR); /* the group-readable warning is expected */

    test_path();
    test_read();
    test_write();

    struct secmem_stats st;
    secmem_stats(&st);
    if (!CHECK_EQ_INT(st.live, 0))
        fprintf(stderr, "  %zu secmem blocks not freed (cred_read's scratch buffer?)\n", st.live);
    if (!CHECK_EQ_INT(dir_entries(), 0))
        fprintf(stderr, "  files left in %s\n", tmpdir);
    if (rmdir(tmpdir) != 0)
        perror(tmpdir);
    return check_done();
}
