/* Unit tests for common/state.c: the SPEC §4 state table: put/get/remove,
 * removal markers, replay detection (st_applied), counts, 100k users and
 * concurrent use from several threads. */
#include "check.h"
#include "state.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EV "broadworks.provisioning.events"

static struct st_table *must_new(void)
{
    struct st_table *t = st_new();
    if (!t) {
        fprintf(stderr, "st_new failed\n");
        exit(2);
    }
    return t;
}

static void test_basics(void)
{
    struct st_table *t = must_new();
    char ws[64];
    struct st_src src = {EV, 3, 10};

    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_ABSENT);
    CHECK_EQ_INT(st_count(t), 0);

    CHECK_EQ_INT(st_put(t, "u1", "W1", &src), 0);
    memset(ws, 0, sizeof(ws));
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, "W1");
    CHECK_EQ_INT(st_count(t), 1);

    /* Replacing keeps one entry. */
    src.offset = 11;
    CHECK_EQ_INT(st_put(t, "u1", "W1-new", &src), 0);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, "W1-new");
    CHECK_EQ_INT(st_count(t), 1);

    /* Distinct users, including prefixes of each other. */
    CHECK_EQ_INT(st_put(t, "u", "Wshort", &src), 0);
    CHECK_EQ_INT(st_put(t, "u10", "Wlong", &src), 0);
    CHECK_EQ_INT(st_count(t), 3);
    CHECK_EQ_INT(st_get(t, "u", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, "Wshort");
    CHECK_EQ_INT(st_get(t, "u10", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, "Wlong");
    CHECK_EQ_INT(st_get(t, "u100", ws, sizeof(ws)), ST_ABSENT);
    CHECK_EQ_INT(st_get(t, "", ws, sizeof(ws)), ST_ABSENT);

    /* Remove leaves a marker. */
    src.offset = 12;
    CHECK_EQ_INT(st_remove(t, "u1", &src), 0);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_REMOVED);
    CHECK_EQ_INT(st_count(t), 2);
    /* Removing again, or removing a user never seen, is fine. */
    CHECK_EQ_INT(st_remove(t, "u1", &src), 0);
    CHECK_EQ_INT(st_remove(t, "ghost", &src), 0);
    CHECK_EQ_INT(st_get(t, "ghost", ws, sizeof(ws)), ST_REMOVED);
    CHECK_EQ_INT(st_count(t), 2);
    /* Provisioned again after removal. */
    CHECK_EQ_INT(st_put(t, "u1", "W1-again", &src), 0);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, "W1-again");
    CHECK_EQ_INT(st_count(t), 3);
    /* A NULL source (unknown origin) is allowed. */
    CHECK_EQ_INT(st_put(t, "u2", "W2", NULL), 0);
    CHECK_EQ_INT(st_remove(t, "u2", NULL), 0);
    CHECK_EQ_INT(st_get(t, "u2", ws, sizeof(ws)), ST_REMOVED);
    CHECK_EQ_INT(st_count(t), 3);

    /* Truncation of the copied workspace id. */
    CHECK_EQ_INT(st_put(t, "u3", "ABCDEFG", &src), 0);
    char small[4];
    CHECK_EQ_INT(st_get(t, "u3", small, sizeof(small)), ST_PRESENT);
    CHECK_EQ_STR(small, "ABC");
    char guard = '#';
    CHECK_EQ_INT(st_get(t, "u3", &guard, 0), ST_PRESENT); /* cap 0: nothing written */
    CHECK(guard == '#');
    char one[1] = {'#'};
    CHECK_EQ_INT(st_get(t, "u3", one, 1), ST_PRESENT);
    CHECK(one[0] == '\0');
    st_free(t);
    st_free(NULL);
}

static void test_applied(void)
{
    struct st_table *t = must_new();
    struct st_src rec = {EV, 3, 100};

    CHECK(!st_applied(t, "u1", &rec)); /* unknown user */
    CHECK_EQ_INT(st_put(t, "u1", "W1", &rec), 0);

    static const struct {
        const char *topic;
        int32_t partition;
        int64_t offset;
        bool applied;
    } cases[] = {
        {EV, 3, 100, true}, /* the very event that wrote the record */
        {EV, 3, 99, true},  /* an earlier one */
        {EV, 3, 0, true},
        {EV, 3, 101, false}, /* a later one: not applied yet */
        {EV, 3, 1000000, false},
        {EV, 4, 50, false}, /* other partition */
        {EV, 2, 100, false},
        {"other.topic", 3, 50, false},
        {"broadworks.provisioning.event", 3, 50, false},
        {NULL, 3, 50, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct st_src s = {cases[i].topic, cases[i].partition, cases[i].offset};
        if (!CHECK_EQ_INT(st_applied(t, "u1", &s), cases[i].applied))
            fprintf(stderr, "  case %zu: %s/%d/%" PRId64 "\n", i,
                    cases[i].topic ? cases[i].topic : "(null)", (int)cases[i].partition,
                    cases[i].offset);
    }
    /* The other topic is known to the table now, still not a match. */
    struct st_src other = {"other.topic", 3, 7};
    CHECK_EQ_INT(st_put(t, "u2", "W2", &other), 0);
    struct st_src probe = {"other.topic", 3, 50};
    CHECK(!st_applied(t, "u1", &probe));
    CHECK(st_applied(t, "u2", &(struct st_src){"other.topic", 3, 7}));
    CHECK(!st_applied(t, "u2", &(struct st_src){EV, 3, 7}));

    /* A removal marker remembers its source too (a replayed provision
     * that a later remove undid). */
    struct st_src rm = {EV, 3, 200};
    CHECK_EQ_INT(st_remove(t, "u1", &rm), 0);
    CHECK(st_applied(t, "u1", &(struct st_src){EV, 3, 100}));
    CHECK(st_applied(t, "u1", &(struct st_src){EV, 3, 200}));
    CHECK(!st_applied(t, "u1", &(struct st_src){EV, 3, 201}));

    /* An unknown source never matches. */
    CHECK_EQ_INT(st_remove(t, "u1", &(struct st_src){NULL, 3, 500}), 0);
    CHECK(!st_applied(t, "u1", &(struct st_src){EV, 3, 100}));
    CHECK(!st_applied(t, "u1", &(struct st_src){NULL, 3, 100}));
    CHECK_EQ_INT(st_put(t, "u3", "W3", NULL), 0);
    CHECK(!st_applied(t, "u3", &(struct st_src){EV, -1, -1}));

    /* Many source topics: lookups still work. */
    for (int i = 0; i < 40; i++) {
        char topic[32], user[32];
        snprintf(topic, sizeof(topic), "topic%d", i);
        snprintf(user, sizeof(user), "tu%d", i);
        CHECK_EQ_INT(st_put(t, user, topic, &(struct st_src){topic, 0, 5}), 0);
    }
    int bad = 0;
    for (int i = 0; i < 40; i++) {
        char topic[32], user[32], ws[32];
        snprintf(topic, sizeof(topic), "topic%d", i);
        snprintf(user, sizeof(user), "tu%d", i);
        bad += st_get(t, user, ws, sizeof(ws)) != ST_PRESENT || strcmp(ws, topic) != 0;
        /* Never a false "applied" for a later offset or other partition. */
        bad += st_applied(t, user, &(struct st_src){topic, 0, 6});
        bad += st_applied(t, user, &(struct st_src){topic, 1, 5});
    }
    CHECK_EQ_INT(bad, 0);
    st_free(t);
}

static void test_many(void)
{
    enum { N = 100000 };
    struct st_table *t = must_new();
    char user[48], want[48], ws[48];
    int bad = 0;

    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof(user), "%08d@sp.example.com", i);
        snprintf(want, sizeof(want), "WS-%d", i);
        bad += st_put(t, user, want, &(struct st_src){EV, i % 12, i}) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(st_count(t), N);
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof(user), "%08d@sp.example.com", i);
        snprintf(want, sizeof(want), "WS-%d", i);
        bad += st_get(t, user, ws, sizeof(ws)) != ST_PRESENT || strcmp(ws, want) != 0;
        bad += !st_applied(t, user, &(struct st_src){EV, i % 12, i});
    }
    CHECK_EQ_INT(bad, 0);
    /* Remove the even half. */
    for (int i = 0; i < N; i += 2) {
        snprintf(user, sizeof(user), "%08d@sp.example.com", i);
        bad += st_remove(t, user, &(struct st_src){EV, i % 12, N + i}) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(st_count(t), N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof(user), "%08d@sp.example.com", i);
        snprintf(want, sizeof(want), "WS-%d", i);
        enum st_status s = st_get(t, user, ws, sizeof(ws));
        if (i % 2 == 0)
            bad += s != ST_REMOVED;
        else
            bad += s != ST_PRESENT || strcmp(ws, want) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(st_get(t, "not-there", ws, sizeof(ws)), ST_ABSENT);
    st_free(t);
}

struct worker {
    struct st_table *t;
    int id;
    int bad;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char user[32], want[32], ws[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(user, sizeof(user), "w%d-u%d", w->id, i);
        snprintf(want, sizeof(want), "W%d-%d", w->id, i);
        w->bad += st_put(w->t, user, want, &(struct st_src){EV, w->id, i}) != 0;
        w->bad += st_get(w->t, user, ws, sizeof(ws)) != ST_PRESENT || strcmp(ws, want) != 0;
        /* everybody reads a shared user that one thread keeps rewriting */
        enum st_status s = st_get(w->t, "shared", ws, sizeof(ws));
        w->bad += s != ST_PRESENT || strncmp(ws, "S", 1) != 0;
        if (w->id == 0)
            w->bad += st_put(w->t, "shared", i % 2 ? "S-odd" : "S-even", NULL) != 0;
        if (i % 3 == 0)
            w->bad += st_remove(w->t, user, &(struct st_src){EV, w->id, i}) != 0;
        (void)st_count(w->t);
    }
    return NULL;
}

static void test_threads(void)
{
    enum { T = 4 };
    struct st_table *t = must_new();
    CHECK_EQ_INT(st_put(t, "shared", "S-start", NULL), 0);
    pthread_t th[T];
    struct worker w[T];
    for (int i = 0; i < T; i++) {
        w[i] = (struct worker){t, i, 0};
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
            exit(2);
    }
    int bad = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
    }
    CHECK_EQ_INT(bad, 0);
    /* 5000 per thread minus the removed third (i % 3 == 0: 1667), plus shared. */
    CHECK_EQ_INT(st_count(t), T * (5000 - 1667) + 1);
    st_free(t);
}

/* A late writer (an old owner of the partition, a stale journal entry)
 * cannot undo a newer change: same partition, lower offset is refused. */
static void test_fence(void)
{
    struct st_table *t = must_new();
    char ws[64];

    CHECK_EQ_INT(st_put(t, "u1", "W1", &(struct st_src){EV, 3, 100}), 0);
    CHECK_EQ_INT(st_remove(t, "u1", &(struct st_src){EV, 3, 120}), 0);
    CHECK(st_older(t, "u1", &(struct st_src){EV, 3, 110}));
    CHECK(!st_older(t, "u1", &(struct st_src){EV, 3, 120})); /* the same change again */
    CHECK(!st_older(t, "u1", &(struct st_src){EV, 3, 121}));
    CHECK(!st_older(t, "u1", &(struct st_src){EV, 4, 1})); /* a rename from elsewhere */
    CHECK(!st_older(t, "nobody", &(struct st_src){EV, 3, 1}));

    /* The late put of the provision at 110 is ignored: the user stays removed. */
    CHECK_EQ_INT(st_put(t, "u1", "W1", &(struct st_src){EV, 3, 110}), 1);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_REMOVED);
    CHECK(!st_holder(t, "W1", NULL, 0));
    /* As is a late remove under a newer put. */
    CHECK_EQ_INT(st_put(t, "u1", "W9", &(struct st_src){EV, 3, 130}), 0);
    CHECK_EQ_INT(st_remove(t, "u1", &(struct st_src){EV, 3, 125}), 1);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, "W9");
    /* The same change applied twice is fine (a replay writes it again). */
    CHECK_EQ_INT(st_put(t, "u1", "W9", &(struct st_src){EV, 3, 130}), 0);
    /* Another partition (a rename into u1) and an unknown source apply. */
    CHECK_EQ_INT(st_put(t, "u1", "W10", &(struct st_src){EV, 7, 5}), 0);
    CHECK_EQ_INT(st_put(t, "u1", "W11", NULL), 0);
    CHECK_EQ_INT(st_get(t, "u1", ws, sizeof(ws)), ST_PRESENT);
    CHECK_EQ_STR(ws, "W11");
    CHECK_EQ_INT(st_count(t), 1);

    /* The entry's source, for re-asserting it over a late writer's. */
    char topic[64];
    struct st_src got;
    CHECK_EQ_INT(st_put(t, "u2", "W2", &(struct st_src){EV, 5, 77}), 0);
    CHECK_EQ_INT(st_get_src(t, "u2", ws, sizeof(ws), &got, topic, sizeof(topic)), ST_PRESENT);
    CHECK_EQ_STR(got.topic, EV);
    CHECK_EQ_INT(got.partition, 5);
    CHECK_EQ_INT(got.offset, 77);
    CHECK_EQ_INT(st_remove(t, "u2", &(struct st_src){EV, 5, 78}), 0);
    CHECK_EQ_INT(st_get_src(t, "u2", ws, sizeof(ws), &got, topic, sizeof(topic)), ST_REMOVED);
    CHECK_EQ_INT(got.offset, 78);
    CHECK_EQ_INT(st_get_src(t, "u1", ws, sizeof(ws), &got, topic, sizeof(topic)), ST_PRESENT);
    CHECK_NULL(got.topic); /* put with an unknown source */
    st_free(t);
}

/* Which user holds a workspace id, for packed and string ids, across
 * replacement, removal and renames. */
static void test_holder(void)
{
    struct st_table *t = must_new();
    const char *packed =
        "Y2lzY29zcGFyazovL3VzL1BMQUNFL2RkMjJlZGZlLTlmZWYtNDdmOS05ODFkLWYxYjA3MWFmMDcwYw";
    char user[64];

    CHECK(!st_holder(t, packed, user, sizeof(user)));
    CHECK_EQ_INT(st_put(t, "a", packed, &(struct st_src){EV, 1, 1}), 0);
    CHECK_EQ_INT(st_put(t, "b", "plain-id", &(struct st_src){EV, 2, 1}), 0);
    CHECK(st_holder(t, packed, user, sizeof(user)));
    CHECK_EQ_STR(user, "a");
    CHECK(st_holder(t, "plain-id", user, sizeof(user)));
    CHECK_EQ_STR(user, "b");
    CHECK(!st_holder(t, "plain-i", user, sizeof(user)));
    CHECK(!st_holder(t, "plain-idx", user, sizeof(user)));
    /* a rename a -> n: a's marker, n's record */
    CHECK_EQ_INT(st_remove(t, "a", &(struct st_src){EV, 1, 2}), 0);
    CHECK(!st_holder(t, packed, user, sizeof(user)));
    CHECK_EQ_INT(st_put(t, "n", packed, &(struct st_src){EV, 1, 2}), 0);
    CHECK(st_holder(t, packed, user, sizeof(user)));
    CHECK_EQ_STR(user, "n");
    /* replacing b's id releases the old one */
    CHECK_EQ_INT(st_put(t, "b", "other-id", &(struct st_src){EV, 2, 2}), 0);
    CHECK(!st_holder(t, "plain-id", user, sizeof(user)));
    CHECK(st_holder(t, "other-id", user, sizeof(user)));
    CHECK_EQ_STR(user, "b");
    st_free(t);
}

/* Subscribers share the table (one entry per userId) with their kind and
 * whether their provisioning is still pending. */
static void test_subscribers(void)
{
    struct st_table *t = must_new();
    struct st_src src = {"events", 1, 10};
    struct st_kind k;
    char id[128];

    CHECK_EQ_INT(
        st_put_subscriber(t, "u1", "Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvYQ", ST_SUB_PENDING, &src),
        0);
    CHECK_EQ_INT(st_get_kind(t, "u1", id, sizeof(id), &k, NULL, NULL, 0), ST_PRESENT);
    CHECK_EQ_STR(id, "Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvYQ");
    CHECK(k.subscriber && k.pending);
    CHECK_EQ_INT(st_count(t), 0); /* workspaces only */
    CHECK_EQ_INT(st_count_subscribers(t), 1);
    CHECK(st_applied(t, "u1", &src));

    /* The same event's final answer: no longer pending (same offset: not older). */
    CHECK_EQ_INT(
        st_put_subscriber(t, "u1", "Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvYQ", ST_SUB_DONE, &src), 0);
    CHECK_EQ_INT(st_get_kind(t, "u1", id, sizeof(id), &k, NULL, NULL, 0), ST_PRESENT);
    CHECK(k.subscriber && !k.pending);

    /* A workspace: not a subscriber; a packed PLACE id stays packed. */
    struct st_src s2 = {"events", 2, 5};
    CHECK_EQ_INT(
        st_put(t, "w1",
               "Y2lzY29zcGFyazovL3VzL1BMQUNFLzEyMzQ1Njc4LTEyMzQtMTIzNC0xMjM0LTEyMzQ1Njc4OTAxMg",
               &s2),
        0);
    CHECK_EQ_INT(st_get_kind(t, "w1", id, sizeof(id), &k, NULL, NULL, 0), ST_PRESENT);
    CHECK(!k.subscriber && !k.pending);
    CHECK_EQ_INT(st_count(t), 1);

    /* Removal clears the kind; the index finds the subscriber's holder. */
    char who[32];
    CHECK(st_holder(t, "Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvYQ", who, sizeof(who)));
    CHECK_EQ_STR(who, "u1");
    struct st_src later = {"events", 1, 11};
    CHECK_EQ_INT(st_remove(t, "u1", &later), 0);
    CHECK_EQ_INT(st_get_kind(t, "u1", id, sizeof(id), &k, NULL, NULL, 0), ST_REMOVED);
    CHECK(!k.subscriber && !k.pending);
    CHECK_EQ_INT(st_count_subscribers(t), 0);
    CHECK(!st_holder(t, "Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvYQ", who, sizeof(who)));
    /* An older answer cannot bring it back. */
    CHECK_EQ_INT(st_put_subscriber(t, "u1", "X", ST_SUB_DONE, &src), 1);
    CHECK_EQ_INT(st_get(t, "u1", NULL, 0), ST_REMOVED);
    st_free(t);
}

int main(void)
{
    test_subscribers();
    test_basics();
    test_applied();
    test_fence();
    test_holder();
    test_many();
    test_threads();
    return check_done();
}
