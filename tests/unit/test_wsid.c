/* wsid: workspace ids packed to 16 bytes and back, exactly. */
#include "check.h"
#include "wsid.h"

#include <string.h>

static void test_seed_id(void)
{
    /* The id of the API page's example answer. */
    const char *id =
        "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw";
    uint8_t u[16];
    char back[WSID_MAX];
    CHECK(wsid_pack(id, u));
    CHECK_EQ_INT(u[0], 0xdd);
    CHECK_EQ_INT(u[15], 0x0c);
    wsid_unpack(u, back, sizeof(back));
    CHECK_EQ_STR(back, id);
}

static void test_other_shapes_stay_strings(void)
{
    static const char *const ids[] = {
        "",
        "not base64 at all!",
        /* base64url of "ciscospark://us/PEOPLE/<uuid>": another resource */
        "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9kZDIyZWRmZS05ZmVmLTQ3ZjktOTgxZC1mMWIwNzFhZjA3MGM",
        /* the seed id with padding: not the canonical form */
        "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw==",
        /* upper-case hex in the uuid ("DD22EDFE-..."): would not round-trip */
        "Y2lzY29zcGFyazovL3VzL1BMQUNFL0REMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw",
    };
    uint8_t u[16];
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        CHECK(!wsid_pack(ids[i], u));
}

static void test_round_trip_many(void)
{
    uint8_t u[16], v[16];
    char id[WSID_MAX];
    unsigned x = 12345;
    for (int n = 0; n < 10000; n++) {
        for (int i = 0; i < 16; i++) {
            x = x * 1103515245u + 12345u;
            u[i] = (uint8_t)(x >> 16);
        }
        wsid_unpack(u, id, sizeof(id));
        if (!CHECK(wsid_pack(id, v)) || !CHECK(memcmp(u, v, 16) == 0))
            break;
    }
}

/* The import check: real workspace ids pass, anything else says why. */
static void test_check_place(void)
{
    static const struct {
        const char *id;
        const char *why; /* NULL: accepted; else a part of the reason */
    } cases[] = {
        {"Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw", NULL},
        /* another cluster, upper-case uuid: a workspace id all the same */
        {"Y2lzY29zcGFyazovL3VybjpURUFNOnVzLWVhc3QtMl9hL1BMQUNFL0REMjJFREZFLTlGRUYtNDdGOS05ODFE"
         "LUYxQjA3MUFGMDcwQw",
         NULL},
        {"Y2lzY29zcGFyazovL3VzL1BFT1BMRS9kZDIyZWRmZS05ZmVmLTQ3ZjktOTgxZC1mMWIwNzFhZjA3MGM",
         "not PLACE"},
        {"aHR0cHM6Ly91cy9QTEFDRS9kZDIyZWRmZS05ZmVmLTQ3ZjktOTgxZC1mMWIwNzFhZjA3MGM",
         "ciscospark://"},
        {"Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcw", "uuid"},
        {"Y2lzY29zcGFyazovLy9QTEFDRS9kZDIyZWRmZS05ZmVmLTQ3ZjktOTgxZC1mMWIwNzFhZjA3MGM",
         "<cluster>"},
        /* padded, standard base64 characters, one character too many */
        {"Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw==",
         "base64url"},
        {"Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw+",
         "base64url"},
        /* stray bits in the last character: "Yx" decodes as "Yw" does */
        {"Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYx",
         "canonical"},
        {"", "empty"},
        {"..", "dot segment"},
        {"a/b", "'/'"},
        {"not base64 at all!", "base64url"},
        {"AAAA", "text"},
        {"YWJj", "ciscospark://"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = wsid_check_place(cases[i].id, strlen(cases[i].id));
        if (!cases[i].why)
            CHECK_NULL(why);
        else
            CHECK_CONTAINS(why, cases[i].why);
    }
    char huge[300];
    memset(huge, 'A', sizeof(huge));
    CHECK_CONTAINS(wsid_check_place(huge, sizeof(huge)), "longer than 256");
}

int main(void)
{
    test_check_place();
    test_seed_id();
    test_other_shapes_stay_strings();
    test_round_trip_many();
    return check_done();
}
