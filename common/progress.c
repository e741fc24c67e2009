/* progress: see progress.h. */
#include "progress.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void prog_count(char *buf, size_t cap, uint64_t n)
{
    char digits[24];
    int len = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 2 < cap)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    if (cap)
        buf[o < cap ? o : cap - 1] = '\0';
}

void prog_duration(char *buf, size_t cap, double seconds)
{
    unsigned long long s = seconds > 0 ? (unsigned long long)(seconds + 0.5) : 0;
    if (s >= 3600)
        snprintf(buf, cap, "%llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, cap, "%llu:%02llu", s / 60, s % 60);
}

/* Appends to buf at *len, keeping it terminated and within cap. */
static void append(char *buf, size_t cap, size_t *len, const char *s)
{
    int n = snprintf(buf + *len, cap - *len, "%s", s);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

size_t prog_format(char *buf, size_t cap, const char *what, uint64_t done, uint64_t total,
                   double elapsed_s)
{
    char n[32], t[32], tmp[96];
    size_t len = 0;
    if (!cap)
        return 0;
    buf[0] = '\0';
    if (total && done > total)
        done = total;
    prog_count(n, sizeof(n), done);
    snprintf(tmp, sizeof(tmp), "%s: %s", what ? what : "", n);
    append(buf, cap, &len, tmp);
    if (total) {
        prog_count(t, sizeof(t), total);
        snprintf(tmp, sizeof(tmp), " of %s (%d%%)", t, (int)(done * 100 / total));
        append(buf, cap, &len, tmp);
    }
    /* a rate from the first instants says little, unless the phase is over */
    bool over = total && done == total;
    if (done == 0 || elapsed_s <= 0 || (elapsed_s < 0.1 && !over))
        return len;
    double rate = (double)done / elapsed_s;
    prog_count(n, sizeof(n), (uint64_t)(rate + 0.5));
    snprintf(tmp, sizeof(tmp), ", %s/s", n);
    append(buf, cap, &len, tmp);
    if (total && done < total) {
        prog_duration(t, sizeof(t), (double)(total - done) / rate);
        snprintf(tmp, sizeof(tmp), ", %s left", t);
        append(buf, cap, &len, tmp);
    }
    return len;
}
