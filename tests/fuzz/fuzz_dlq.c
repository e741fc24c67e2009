/* fuzz_dlq: what `bwprovd dlq list/replay` read from a DLQ record
 * (common/dlq.c) on arbitrary bytes. The input is cut at 0x1e bytes into
 * up to seven parts: a TIME string, the key, the value, and the headers
 * bwprovd-error, bwprovd-source, bwprovd-replay-count and
 * bwprovd-replay-source (a missing part is an absent header; each part is
 * a slice of libFuzzer's buffer, so ASan catches reads past it).
 * Invariants:
 *  - dq_parse_time() is deterministic, and a time it accepts at one "now"
 *    moves with "now" only for relative times;
 *  - dq_info_from(): the kind is a terminated string without ':'; the
 *    reason lies within the error header; a source or origin it reads has
 *    a terminated topic in its own buffer; replays is -1 or 0..1000000;
 *    has_user exactly when the key can be a userId;
 *  - dq_decide() returns one of its verdicts, says why unless it replays,
 *    never replays what it must refuse (no userId, no source), and
 *    --force never lifts the loop guard;
 *  - dq_escape() writes a terminated line of printable bytes within cap. */
#include "dlq.h"
#include "fuzz.h"
#include "strec.h"

#define PARTS 7
#define EV "broadworks.provisioning.events"

static void check_time(const char *s, size_t len)
{
    char buf[64];
    int64_t a = 0, b = 0, c = 0;
    if (len >= sizeof(buf))
        return;
    memcpy(buf, s, len);
    buf[len] = '\0';
    int ra = dq_parse_time(buf, 1796000000000LL, &a);
    int rb = dq_parse_time(buf, 1796000000000LL, &b);
    FUZZ_CHECK(ra == rb && (ra != 0 || a == b), "dq_parse_time is not deterministic on %s", buf);
    if (ra == 0 && dq_parse_time(buf, 1796000001000LL, &c) == 0) {
        bool absolute = strlen(buf) >= 10 && buf[4] == '-'; /* a NUL ends the string */
        FUZZ_CHECK(absolute ? c == a : c == a + 1000, "%s: %lld then %lld", buf, (long long)a,
                   (long long)c);
    }
}

static void check_info(const struct dq_raw *raw, const struct dq_info *i)
{
    char user[EV_MAX_USER_ID + 1];
    FUZZ_CHECK(i->has_user == sr_key(raw->key, raw->keylen, user), "has_user wrong");
    FUZZ_CHECK(strlen(i->kind) < sizeof(i->kind) && !strchr(i->kind, ':'), "kind %s", i->kind);
    FUZZ_CHECK(!i->reason || (raw->error.present && i->reason >= raw->error.p &&
                              i->reason + i->reason_len <= raw->error.p + raw->error.len),
               "reason outside the error header");
    FUZZ_CHECK(!i->has_source || (i->source.topic == i->source_topic &&
                                  strlen(i->source_topic) < sizeof(i->source_topic)),
               "source topic");
    FUZZ_CHECK(!i->has_origin || (i->origin.topic == i->origin_topic &&
                                  strlen(i->origin_topic) < sizeof(i->origin_topic)),
               "origin topic");
    FUZZ_CHECK(i->replays >= -1 && i->replays <= 1000000, "replays %d", i->replays);
}

static void check_decide(const struct dq_info *i)
{
    char why[200];
    struct st_src entry = {EV, 1, 5};
    for (int force = 0; force < 2; force++) {
        enum dq_verdict v = dq_decide(i, EV, 4, force ? &entry : NULL, force, why, sizeof(why));
        FUZZ_CHECK(v == DQ_REPLAY || v == DQ_REFUSED || v == DQ_LOOP_GUARD || v == DQ_STALE,
                   "verdict %d", v);
        FUZZ_CHECK(v == DQ_REPLAY ? why[0] == '\0' : why[0] != '\0', "reason for verdict %d", v);
        FUZZ_CHECK(v != DQ_REPLAY || (i->has_user && i->has_source && i->replays >= 0 &&
                                      i->replays < DQ_MAX_REPLAYS),
                   "replays what it must not");
        FUZZ_CHECK(!force || i->replays < DQ_MAX_REPLAYS || v != DQ_REPLAY,
                   "--force lifts the loop guard");
    }
}

static void check_escape(const char *s, size_t len)
{
    char out[64];
    dq_escape(s, len, out, sizeof(out));
    size_t n = strlen(out);
    FUZZ_CHECK(n < sizeof(out), "escape overflows");
    for (size_t k = 0; k < n; k++)
        FUZZ_CHECK((unsigned char)out[k] >= 0x20 && out[k] != 0x7f, "escape leaves a control");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dq_bytes part[PARTS] = {{NULL, 0, false}};
    const char *s = (const char *)data, *end = s + size;
    for (int k = 0; k < PARTS && s <= end; k++) {
        const char *sep = memchr(s, 0x1e, (size_t)(end - s));
        size_t len = sep ? (size_t)(sep - s) : (size_t)(end - s);
        part[k] = (struct dq_bytes){s, len, true};
        s += len + 1;
        if (!sep)
            break;
    }
    if (part[0].present)
        check_time(part[0].p, part[0].len);
    struct dq_raw raw = {part[1].present ? part[1].p : NULL,
                         part[1].len,
                         part[2].p,
                         part[2].len,
                         1796000000000LL,
                         part[3],
                         part[4],
                         part[5],
                         part[6]};
    struct dq_info i;
    dq_info_from(&raw, &i);
    check_info(&raw, &i);
    check_decide(&i);
    check_escape(raw.value, raw.len);
    return 0;
}
