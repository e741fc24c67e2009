/* jframe: see jframe.h. */
#include "jframe.h"

#include <string.h>
#include <zlib.h>

#define MAGIC 0x314a5742u /* "BWJ1" read as little-endian */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t crc(const uint8_t *p, size_t len)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

/* Writes the head and the type and seq of the body; returns the body. */
static uint8_t *begin(uint8_t *out, enum jf_type type, uint64_t seq, size_t body_len)
{
    put32(out, MAGIC);
    put32(out + 4, (uint32_t)body_len);
    out[JF_HEAD] = (uint8_t)type;
    put64(out + JF_HEAD + 1, seq);
    return out + JF_HEAD;
}

static size_t finish(uint8_t *out, size_t body_len)
{
    put32(out + 8, crc(out + JF_HEAD, body_len));
    return JF_HEAD + body_len;
}

size_t jf_records_size(const struct jf_rec *recs, int n)
{
    size_t body = JF_BODY_MIN;
    if (n < 1 || n > JF_MAX_RECS)
        return 0;
    for (int i = 0; i < n; i++) {
        if (recs[i].keylen > JF_BODY_MAX || recs[i].len > JF_BODY_MAX)
            return 0;
        body += 8 + recs[i].keylen + recs[i].len;
    }
    return body > JF_BODY_MAX ? 0 : JF_HEAD + body;
}

size_t jf_put_records(uint8_t *out, uint64_t seq, const struct jf_rec *recs, int n)
{
    size_t body_len = jf_records_size(recs, n) - JF_HEAD;
    uint8_t *p = begin(out, JF_RECORDS, seq, body_len) + JF_BODY_MIN;
    for (int i = 0; i < n; i++) {
        put32(p, (uint32_t)recs[i].keylen);
        memcpy(p + 4, recs[i].key, recs[i].keylen);
        p += 4 + recs[i].keylen;
        put32(p, (uint32_t)recs[i].len);
        if (recs[i].len)
            memcpy(p + 4, recs[i].value, recs[i].len);
        p += 4 + recs[i].len;
    }
    return finish(out, body_len);
}

size_t jf_put_ack(uint8_t *out, uint64_t seq, uint64_t acked)
{
    uint8_t *body = begin(out, JF_ACK, seq, JF_BODY_MIN + 8);
    put64(body + JF_BODY_MIN, acked);
    return finish(out, JF_BODY_MIN + 8);
}

size_t jf_decode(const uint8_t *buf, size_t len, struct jf_entry *e)
{
    if (len < JF_HEAD + JF_BODY_MIN || get32(buf) != MAGIC)
        return 0;
    size_t body_len = get32(buf + 4);
    if (body_len < JF_BODY_MIN || body_len > JF_BODY_MAX || body_len > len - JF_HEAD ||
        crc(buf + JF_HEAD, body_len) != get32(buf + 8))
        return 0;
    const uint8_t *body = buf + JF_HEAD;
    e->type = (enum jf_type)body[0];
    e->seq = get64(body + 1);
    e->payload = body + JF_BODY_MIN;
    e->plen = body_len - JF_BODY_MIN;
    if ((e->type != JF_RECORDS && e->type != JF_ACK) || (e->type == JF_ACK && e->plen != 8))
        return 0;
    return JF_HEAD + body_len;
}

uint64_t jf_ack_of(const struct jf_entry *e)
{
    return e->type == JF_ACK && e->plen == 8 ? get64(e->payload) : 0;
}

/* A length-prefixed field at *pos; false when it does not fit. */
static bool field(const struct jf_entry *e, size_t *pos, const char **out, size_t *len)
{
    if (e->plen - *pos < 4)
        return false;
    size_t n = get32(e->payload + *pos);
    if (n > e->plen - *pos - 4)
        return false;
    *out = (const char *)e->payload + *pos + 4;
    *len = n;
    *pos += 4 + n;
    return true;
}

int jf_next_rec(const struct jf_entry *e, size_t *pos, struct jf_rec *r)
{
    if (e->type != JF_RECORDS || *pos > e->plen)
        return -1;
    if (*pos == e->plen)
        return 0;
    if (!field(e, pos, &r->key, &r->keylen) || !field(e, pos, &r->value, &r->len))
        return -1;
    return 1;
}
