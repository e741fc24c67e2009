/* jframe: the on-disk framing of the state journal (daemon/journal.c).
 *
 * A journal segment is a sequence of entries, each
 *
 *   u32 magic "BWJ1" | u32 body length | u32 CRC-32 of the body | body
 *   body = u8 type | u64 seq | payload
 *
 * little-endian. A RECORDS entry carries the state records of one outcome
 * (a rename has two, so both are on disk or neither): per record u32 key
 * length, key, u32 value length, value, filling the payload. An ACK entry says
 * that Kafka acknowledged the records of entry seq. A torn write at the end
 * of a segment (a crash mid-write) fails its length or CRC check and ends
 * the segment's valid part. Pure functions; thread-safe. */
#ifndef BWPROVD_JFRAME_H
#define BWPROVD_JFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JF_HEAD 12                /* magic, length, CRC */
#define JF_BODY_MIN 9             /* type, seq */
#define JF_BODY_MAX (1024 * 1024) /* far above two state records */
#define JF_MAX_RECS 8

enum jf_type { JF_RECORDS = 1, JF_ACK = 2 };

struct jf_rec {
    const char *key;
    size_t keylen;
    const char *value;
    size_t len;
};

struct jf_entry {
    enum jf_type type;
    uint64_t seq;
    const uint8_t *payload; /* points into the decoded buffer */
    size_t plen;
};

/* Bytes jf_put_records() writes for these records; 0 when they cannot be
 * one entry (too many, too large). */
size_t jf_records_size(const struct jf_rec *recs, int n);

/* Writes a RECORDS entry into out (room for jf_records_size() bytes) and
 * returns its size. */
size_t jf_put_records(uint8_t *out, uint64_t seq, const struct jf_rec *recs, int n);

/* Writes an ACK entry (JF_HEAD + JF_BODY_MIN + 8 bytes) into out and
 * returns its size. */
#define JF_ACK_SIZE (JF_HEAD + JF_BODY_MIN + 8)
size_t jf_put_ack(uint8_t *out, uint64_t seq, uint64_t acked);

/* Decodes the entry at the start of buf. Returns its total size, or 0 when
 * buf does not start with a whole, intact entry (the end of the valid part
 * of a segment: torn, corrupt or empty). */
size_t jf_decode(const uint8_t *buf, size_t len, struct jf_entry *e);

/* The acknowledged seq of an ACK entry. */
uint64_t jf_ack_of(const struct jf_entry *e);

/* Iterates the records of a RECORDS entry: *pos starts at 0. Returns 1 with
 * a record (pointing into the entry), 0 at the end, -1 when malformed. */
int jf_next_rec(const struct jf_entry *e, size_t *pos, struct jf_rec *r);

#endif
