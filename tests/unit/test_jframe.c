/* Unit tests for common/jframe.c: the state journal's framing: round trips,
 * every torn tail and every flipped bit detected, malformed payloads. */
#include "check.h"
#include "jframe.h"

#include <stdlib.h>
#include <string.h>

static const struct jf_rec recs[] = {
    {"alice@sp", 8, "{\"kind\":\"workspace\",\"removed\":true}", 35},
    {"bob@sp", 6, "{\"kind\":\"workspace\",\"workspaceId\":\"W\"}", 39},
};

static void test_round_trip(void)
{
    uint8_t buf[512];
    size_t need = jf_records_size(recs, 2);
    CHECK(need > 0 && need < sizeof(buf));
    size_t n = jf_put_records(buf, 42, recs, 2);
    CHECK_EQ_INT(n, need);
    n += jf_put_ack(buf + n, 43, 42);
    CHECK_EQ_INT(n, need + JF_ACK_SIZE);

    struct jf_entry e;
    size_t used = jf_decode(buf, n, &e);
    CHECK_EQ_INT(used, need);
    CHECK_EQ_INT(e.type, JF_RECORDS);
    CHECK_EQ_INT(e.seq, 42);
    size_t pos = 0;
    struct jf_rec r;
    for (int i = 0; i < 2; i++) {
        if (!CHECK_EQ_INT(jf_next_rec(&e, &pos, &r), 1))
            break;
        CHECK(r.keylen == recs[i].keylen && memcmp(r.key, recs[i].key, r.keylen) == 0);
        CHECK(r.len == recs[i].len && memcmp(r.value, recs[i].value, r.len) == 0);
    }
    CHECK_EQ_INT(jf_next_rec(&e, &pos, &r), 0);

    CHECK_EQ_INT(jf_decode(buf + used, n - used, &e), JF_ACK_SIZE);
    CHECK_EQ_INT(e.type, JF_ACK);
    CHECK_EQ_INT(e.seq, 43);
    CHECK_EQ_INT(jf_ack_of(&e), 42);
    CHECK_EQ_INT(jf_next_rec(&e, &pos, &r), -1); /* not a RECORDS entry */

    /* An empty value (none is written today) survives too. */
    struct jf_rec empty = {"k", 1, "", 0};
    n = jf_put_records(buf, 7, &empty, 1);
    CHECK_EQ_INT(jf_decode(buf, n, &e), n);
    pos = 0;
    CHECK_EQ_INT(jf_next_rec(&e, &pos, &r), 1);
    CHECK_EQ_INT(r.len, 0);
}

/* A crash mid-write leaves a prefix of an entry: none of them decodes. */
static void test_torn(void)
{
    uint8_t buf[512];
    size_t n = jf_put_records(buf, 1, recs, 2);
    struct jf_entry e;
    int bad = 0;
    for (size_t len = 0; len < n; len++)
        bad += jf_decode(buf, len, &e) != 0;
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(jf_decode(buf, n, &e), n);
}

/* Every single flipped bit is caught (by the magic, length or CRC). */
static void test_corrupt(void)
{
    uint8_t buf[512], copy[512];
    size_t n = jf_put_records(buf, 9, recs, 1);
    int missed = 0;
    struct jf_entry e;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf, n);
            copy[i] ^= (uint8_t)(1u << bit);
            missed += jf_decode(copy, n, &e) == n;
        }
    }
    CHECK_EQ_INT(missed, 0);
    /* Zeroes (a preallocated or truncated file) are not an entry. */
    memset(copy, 0, sizeof(copy));
    CHECK_EQ_INT(jf_decode(copy, sizeof(copy), &e), 0);
}

static void test_bounds(void)
{
    CHECK_EQ_INT(jf_records_size(recs, 0), 0);
    struct jf_rec many[JF_MAX_RECS + 1];
    for (int i = 0; i <= JF_MAX_RECS; i++)
        many[i] = recs[0];
    CHECK(jf_records_size(many, JF_MAX_RECS) > 0);
    CHECK_EQ_INT(jf_records_size(many, JF_MAX_RECS + 1), 0);
    struct jf_rec big = {"k", 1, "", JF_BODY_MAX};
    CHECK_EQ_INT(jf_records_size(&big, 1), 0);

    /* A payload whose lengths point past its end is malformed. */
    uint8_t buf[512];
    size_t n = jf_put_records(buf, 3, recs, 1);
    struct jf_entry e;
    CHECK_EQ_INT(jf_decode(buf, n, &e), n);
    struct jf_entry cut = e;
    cut.plen -= 1;
    size_t pos = 0;
    struct jf_rec r;
    CHECK_EQ_INT(jf_next_rec(&cut, &pos, &r), -1);
    cut.plen = 3; /* not even a length */
    pos = 0;
    CHECK_EQ_INT(jf_next_rec(&cut, &pos, &r), -1);
}

int main(void)
{
    test_round_trip();
    test_torn();
    test_corrupt();
    test_bounds();
    return check_done();
}
