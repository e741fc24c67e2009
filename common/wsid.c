/* wsid: see wsid.h. */
#include "wsid.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define PREFIX "ciscospark://us/PLACE/"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define UUID_LEN 36
#define RAW_LEN (PREFIX_LEN + UUID_LEN)

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* base64url without padding; returns the decoded length or -1. */
static int decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (int)n;
}

static void encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6 && n + 1 < cap) {
            bits -= 6;
            out[n++] = b64[(acc >> bits) & 63];
        }
    }
    if (bits > 0 && n + 1 < cap)
        out[n++] = b64[(acc << (6 - bits)) & 63];
    out[n] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

void wsid_unpack(const uint8_t uuid[16], char *out, size_t cap)
{
    char raw[RAW_LEN + 1];
    int n = snprintf(raw, sizeof(raw), PREFIX);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            raw[n++] = '-';
        n += snprintf(raw + n, sizeof(raw) - (size_t)n, "%02x", uuid[i]);
    }
    encode((const unsigned char *)raw, RAW_LEN, out, cap);
}

bool wsid_pack(const char *id, uint8_t uuid[16])
{
    unsigned char raw[RAW_LEN + 4];
    size_t len = strlen(id);
    if (len >= WSID_MAX || decode(id, len, raw, sizeof(raw)) != (int)RAW_LEN ||
        memcmp(raw, PREFIX, PREFIX_LEN) != 0)
        return false;
    const unsigned char *u = raw + PREFIX_LEN;
    int k = 0;
    for (int i = 0; i < UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-')
                return false;
            continue;
        }
        int hi = hexval(u[i]), lo = hexval(u[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        uuid[k++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    char back[WSID_MAX];
    wsid_unpack(uuid, back, sizeof(back));
    return strcmp(back, id) == 0; /* only exact round trips are packed */
}

const char *wsid_check(const char *id, size_t len)
{
    if (len == 0)
        return "is empty";
    if (len > WSID_MAX_LEN)
        return "is longer than 256 bytes";
    if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
        return "is a dot segment ('.' or '..')";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c == '/' || c == '?' || c == '#')
            return "contains '/', '?' or '#'";
        if (c < 0x20 || c == 0x7f)
            return "contains a control character";
    }
    return NULL;
}

/* Whether s (len bytes) is 8-4-4-4-12 hex digits of either case. */
static bool is_uuid(const unsigned char *s, size_t len)
{
    if (len != UUID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit(s[i]))
            return false;
    }
    return true;
}

/* The decoded id: "<cluster>/<TYPE>/<uuid>" after the scheme. */
static const char *check_decoded(const unsigned char *raw, size_t n)
{
    static const char scheme[] = "ciscospark://";
    const size_t sl = sizeof(scheme) - 1;
    for (size_t i = 0; i < n; i++)
        if (raw[i] < 0x20 || raw[i] > 0x7e)
            return "does not decode to text (not a Webex id)";
    if (n < sl || memcmp(raw, scheme, sl) != 0)
        return "does not decode to a ciscospark:// id";
    const unsigned char *cluster = raw + sl, *end = raw + n;
    const unsigned char *s1 = memchr(cluster, '/', (size_t)(end - cluster));
    const unsigned char *s2 = s1 ? memchr(s1 + 1, '/', (size_t)(end - s1 - 1)) : NULL;
    if (!s2 || s1 == cluster || s1 - cluster > 64)
        return "does not decode to ciscospark://<cluster>/<type>/<id>";
    if ((size_t)(s2 - s1 - 1) != 5 || memcmp(s1 + 1, "PLACE", 5) != 0)
        return "is not a workspace id (its type is not PLACE)";
    if (!is_uuid(s2 + 1, (size_t)(end - s2 - 1)))
        return "does not end in a uuid after PLACE/";
    return NULL;
}

const char *wsid_check_place(const char *id, size_t len)
{
    unsigned char raw[WSID_MAX_LEN];
    char back[WSID_MAX_LEN + 1];
    const char *bad = wsid_check(id, len);
    if (bad)
        return bad;
    int n = decode(id, len, raw, sizeof(raw));
    if (n < 0)
        return "is not unpadded base64url (A-Z a-z 0-9 - _)";
    encode(raw, (size_t)n, back, sizeof(back));
    if (strlen(back) != len || memcmp(back, id, len) != 0)
        return "is not canonical base64url (it does not encode back to itself)";
    return check_decoded(raw, (size_t)n);
}
