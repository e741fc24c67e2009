/*
 * websim utilities: clocks, per-thread RNG, codecs, string buffer, hash map.
 */
#include "websim.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "jstrict.h"

/* ------------------------------------------------------------------------ */
/* clk_                                                                      */

uint64_t clk_mono_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void clk_utc_iso(char *out, size_t outsz)
{
    clk_iso_of_ms(clk_wall_ms(), out, outsz);
}

int64_t clk_wall_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000L;
}

void clk_iso_of_ms(int64_t ms, char *out, size_t outsz)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char date[24];

    if (outsz == 0)
        return;
    out[0] = '\0';
    if (ms < 0 || gmtime_r(&secs, &tm) == NULL)
        return;
    if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return;
    snprintf(out, outsz, "%s.%03dZ", date, (int)(ms % 1000));
}

/* ------------------------------------------------------------------------ */
/* rng_: xoshiro256** with one state per thread, seeded by splitmix64        */

static uint64_t rng_base_seed;       /* written once by main() */
static bool rng_fixed_seed;          /* written once by main() */
static atomic_uint rng_thread_count; /* numbers the threads' streams */

static _Thread_local uint64_t rng_state[4];
static _Thread_local bool rng_ready;

static uint64_t rng_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_configure(uint64_t seed, bool fixed)
{
    struct timespec ts;

    if (fixed) {
        rng_base_seed = seed;
    } else {
        (void)clock_gettime(CLOCK_REALTIME, &ts);
        rng_base_seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        rng_base_seed ^= (uint64_t)getpid() << 32;
    }
    rng_fixed_seed = fixed;
}

static void rng_seed_thread(void)
{
    unsigned n = atomic_fetch_add(&rng_thread_count, 1u);
    uint64_t x = rng_base_seed ^ ((uint64_t)n * 0xd1b54a32d192ed03ull);

    if (!rng_fixed_seed) {
        struct timespec ts;
        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        x ^= (uint64_t)ts.tv_nsec ^ (uint64_t)pthread_self();
    }
    for (int i = 0; i < 4; i++)
        rng_state[i] = rng_splitmix(&x);
    rng_ready = true;
}

uint64_t rng_next(void)
{
    uint64_t *s = rng_state;
    uint64_t result, t;

    if (!rng_ready)
        rng_seed_thread();
    result = rng_rotl(s[1] * 5, 7) * 9;
    t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}

double rng_unit(void)
{
    return (double)(rng_next() >> 11) * 0x1.0p-53;
}

uint64_t rng_below(uint64_t n)
{
    /* The modulo bias is below 2^-40 for the small n used here. */
    return n == 0 ? 0 : rng_next() % n;
}

void rng_uuid4(char *out, size_t outsz)
{
    uint8_t b[16];
    uint64_t hi = rng_next(), lo = rng_next();

    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(hi >> (8 * i));
        b[8 + i] = (uint8_t)(lo >> (8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, outsz, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void rng_token(char *out, size_t outsz, size_t nbytes)
{
    uint8_t b[64];

    if (nbytes > sizeof b)
        nbytes = sizeof b;
    for (size_t i = 0; i < nbytes; i++)
        b[i] = (uint8_t)rng_next();
    if (b64url_encode(b, nbytes, out, outsz) == 0 && outsz > 0)
        out[0] = '\0';
}

/* ------------------------------------------------------------------------ */
/* codecs                                                                    */

size_t b64url_encode(const void *in, size_t n, char *out, size_t outsz)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const uint8_t *p = in;
    size_t need = (n / 3) * 4 + (n % 3 ? n % 3 + 1 : 0);
    size_t o = 0;

    if (need + 1 > outsz)
        return 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t left = n - i;
        if (left > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        if (left > 1)
            out[o++] = tbl[(v >> 6) & 63];
        if (left > 2)
            out[o++] = tbl[v & 63];
    }
    out[o] = '\0';
    return o;
}

void pct_encode(struct sbuf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            sbuf_put(out, s, 1);
        else
            sbuf_put(out, esc, 3);
    }
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool pct_decode(const char *in, size_t n, bool plus_is_space, char *out, size_t outsz)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            int hi, lo;
            if (n - i < 3) /* needs two hex digits after the % */
                return false;
            hi = hex_val(in[i + 1]);
            lo = hex_val(in[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '\0') {
            return false;
        }
        if (o + 1 >= outsz)
            return false;
        out[o++] = c;
    }
    if (outsz == 0)
        return false;
    out[o] = '\0';
    return true;
}

struct json_object *sim_json_parse_object(const char *s, size_t len, const char **why)
{
    struct json_object *obj;
    enum json_tokener_error err;
    size_t end;

    *why = "invalid JSON";
    if (len > INT32_MAX || memchr(s, '\0', len) != NULL)
        return NULL;
    /* common/jstrict: json-c 0.18's strict mode refuses any non-ASCII text. */
    obj = jstrict_parse(s, len, 32, &err, &end);
    if (obj != NULL && err == json_tokener_success) {
        while (end < len && (s[end] == ' ' || s[end] == '\t' || s[end] == '\r' || s[end] == '\n'))
            end++;
        if (end != len) {
            json_object_put(obj);
            obj = NULL;
        }
    } else {
        json_object_put(obj);
        obj = NULL;
    }
    if (obj != NULL && !json_object_is_type(obj, json_type_object)) {
        *why = "the body must be a JSON object";
        json_object_put(obj);
        obj = NULL;
    }
    return obj;
}

/* ------------------------------------------------------------------------ */
/* sbuf_                                                                     */

void sbuf_init(struct sbuf *sb)
{
    sb->p = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->oom = false;
}

void sbuf_free(struct sbuf *sb)
{
    free(sb->p);
    sbuf_init(sb);
}

bool arr_reserve(void **arr, size_t *cap, size_t len, size_t elem, size_t first)
{
    size_t ncap = *cap ? *cap * 2 : first;
    void *n;

    if (len < *cap)
        return true;
    if (ncap > SIZE_MAX / elem)
        return false;
    n = realloc(*arr, ncap * elem);
    if (n == NULL)
        return false;
    *arr = n;
    *cap = ncap;
    return true;
}

/* Make room for `more` bytes plus the terminating NUL. */
static bool sbuf_reserve(struct sbuf *sb, size_t more)
{
    size_t need, cap;
    char *np;

    if (sb->oom)
        return false;
    if (more > SIZE_MAX / 2 - sb->len) {
        sb->oom = true;
        return false;
    }
    need = sb->len + more + 1;
    if (need <= sb->cap)
        return true;
    cap = sb->cap ? sb->cap : 256;
    while (cap < need)
        cap *= 2;
    np = realloc(sb->p, cap);
    if (np == NULL) {
        sb->oom = true;
        return false;
    }
    sb->p = np;
    sb->cap = cap;
    return true;
}

void sbuf_put(struct sbuf *sb, const char *s, size_t n)
{
    if (!sbuf_reserve(sb, n))
        return;
    if (n > 0)
        memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

void sbuf_puts(struct sbuf *sb, const char *s)
{
    sbuf_put(sb, s, strlen(s));
}

void sbuf_printf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        sb->oom = true;
        return;
    }
    if (!sbuf_reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    (void)vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void sbuf_json_str(struct sbuf *sb, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *run;

    if (s == NULL) {
        sbuf_put(sb, "null", 4);
        return;
    }
    sbuf_put(sb, "\"", 1);
    run = p;
    while (*p) {
        size_t n = utf8_seq_len(p);
        if (n != 0 && *p >= 0x20 && *p != '"' && *p != '\\') {
            p += n;
            continue;
        }
        sbuf_put(sb, (const char *)run, (size_t)(p - run));
        if (n == 0)
            sbuf_put(sb, "\\ufffd", 6);
        else if (*p == '"')
            sbuf_put(sb, "\\\"", 2);
        else if (*p == '\\')
            sbuf_put(sb, "\\\\", 2);
        else if (*p == '\n')
            sbuf_put(sb, "\\n", 2);
        else if (*p == '\r')
            sbuf_put(sb, "\\r", 2);
        else if (*p == '\t')
            sbuf_put(sb, "\\t", 2);
        else
            sbuf_printf(sb, "\\u%04x", *p);
        p++;
        run = p;
    }
    sbuf_put(sb, (const char *)run, (size_t)(p - run));
    sbuf_put(sb, "\"", 1);
}

char *sbuf_take(struct sbuf *sb, size_t *len)
{
    char *p = sb->p;

    if (sb->oom) {
        sbuf_free(sb);
        *len = 0;
        return NULL;
    }
    if (p == NULL) {
        p = malloc(1);
        if (p == NULL) {
            *len = 0;
            return NULL;
        }
        p[0] = '\0';
    }
    *len = sb->len;
    sbuf_init(sb);
    return p;
}

/* ------------------------------------------------------------------------ */
/* smap_                                                                     */

static uint64_t smap_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

void smap_init(struct smap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void smap_free(struct smap *m)
{
    free(m->slots);
    smap_init(m);
}

/* Slot holding key, or the empty slot where it would go. cap must be > 0. */
static size_t smap_slot(const struct smap *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;

    while (m->slots[i].key != NULL) {
        if (m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0)
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

static bool smap_grow(struct smap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct smap_slot *old = m->slots;
    size_t ocap = m->cap;

    if (ncap > SIZE_MAX / sizeof *old)
        return false;
    m->slots = calloc(ncap, sizeof *old);
    if (m->slots == NULL) {
        m->slots = old;
        return false;
    }
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].key != NULL)
            m->slots[smap_slot(m, old[i].key, old[i].hash)] = old[i];
    }
    free(old);
    return true;
}

void *smap_get(const struct smap *m, const char *key)
{
    size_t i;

    if (m->count == 0)
        return NULL;
    i = smap_slot(m, key, smap_hash(key));
    return m->slots[i].key ? m->slots[i].val : NULL;
}

bool smap_put(struct smap *m, const char *key, void *val)
{
    uint64_t h = smap_hash(key);
    size_t i;

    if ((m->count + 1) * 4 > m->cap * 3 && !smap_grow(m))
        return false;
    i = smap_slot(m, key, h);
    if (m->slots[i].key == NULL)
        m->count++;
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->slots[i].hash = h;
    return true;
}

void *smap_del(struct smap *m, const char *key)
{
    size_t mask, i, j;
    void *val;

    if (m->count == 0)
        return NULL;
    mask = m->cap - 1;
    i = smap_slot(m, key, smap_hash(key));
    if (m->slots[i].key == NULL)
        return NULL;
    val = m->slots[i].val;
    /* Backward-shift deletion: pull later entries of the probe run into the
     * hole when their home slot does not lie cyclically in (i, j]. */
    j = i;
    for (;;) {
        size_t k;
        j = (j + 1) & mask;
        if (m->slots[j].key == NULL)
            break;
        k = (size_t)m->slots[j].hash & mask;
        if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->slots[i].val = NULL;
    m->count--;
    return val;
}

bool smap_next(const struct smap *m, size_t *pos, const char **key, void **val)
{
    while (*pos < m->cap) {
        size_t i = (*pos)++;
        if (m->slots[i].key != NULL) {
            *key = m->slots[i].key;
            *val = m->slots[i].val;
            return true;
        }
    }
    return false;
}
