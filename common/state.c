/* state: see state.h. */
#include "state.h"

#include "hmap.h"
#include "wsid.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOPICS 16

enum { WS_NONE, WS_PACKED, WS_STRING }; /* WS_NONE: removed marker */

/* About 100 bytes a user with a typical id: the id packed to 16 bytes
 * (wsid.h), the userId inline. */
struct st_entry {
    struct hmap_node node; /* first */
    int64_t offset;
    int32_t partition;
    int16_t topic; /* index into topics[], -1 unknown */
    uint8_t ws_kind;
    union {
        uint8_t packed[16];
        char *str;
    } ws;
    char user[];
};

struct st_table {
    pthread_rwlock_t lock;
    struct hmap map;
    size_t present;
    char *topics[MAX_TOPICS]; /* interned source topic names */
    int n_topics;
};

static bool entry_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct st_entry *e = (const struct st_entry *)n;
    return strncmp(e->user, key, len) == 0 && e->user[len] == '\0';
}

struct st_table *st_new(void)
{
    struct st_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (hmap_init(&t->map, 4096) != 0 || pthread_rwlock_init(&t->lock, NULL) != 0) {
        hmap_destroy(&t->map);
        free(t);
        return NULL;
    }
    return t;
}

static void free_entry(struct hmap_node *n, void *arg)
{
    (void)arg;
    struct st_entry *e = (struct st_entry *)n;
    if (e->ws_kind == WS_STRING)
        free(e->ws.str);
    free(n);
}

void st_free(struct st_table *t)
{
    if (!t)
        return;
    hmap_foreach(&t->map, free_entry, NULL);
    hmap_destroy(&t->map);
    for (int i = 0; i < t->n_topics; i++)
        free(t->topics[i]);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

static struct st_entry *lookup(struct st_table *t, const char *user)
{
    size_t len = strlen(user);
    return (struct st_entry *)hmap_find(&t->map, hmap_hash(user, len), user, len, entry_eq);
}

enum st_status st_get(struct st_table *t, const char *user, char *ws, size_t wscap)
{
    enum st_status s = ST_ABSENT;

    pthread_rwlock_rdlock(&t->lock);
    struct st_entry *e = lookup(t, user);
    if (e && e->ws_kind != WS_NONE) {
        s = ST_PRESENT;
        if (wscap && e->ws_kind == WS_PACKED) {
            char id[WSID_MAX];
            wsid_unpack(e->ws.packed, id, sizeof(id));
            snprintf(ws, wscap, "%s", id);
        } else if (wscap) {
            snprintf(ws, wscap, "%s", e->ws.str);
        }
    } else if (e) {
        s = ST_REMOVED;
    }
    pthread_rwlock_unlock(&t->lock);
    return s;
}

/* Called with the lock held. -1 when the topic is unknown or the intern
 * table is full (then replay detection is simply not available for it). */
static int topic_index(struct st_table *t, const char *topic, bool add)
{
    if (!topic)
        return -1;
    for (int i = 0; i < t->n_topics; i++)
        if (strcmp(t->topics[i], topic) == 0)
            return i;
    if (!add || t->n_topics == MAX_TOPICS)
        return -1;
    t->topics[t->n_topics] = strdup(topic);
    return t->topics[t->n_topics] ? t->n_topics++ : -1;
}

bool st_applied(struct st_table *t, const char *user, const struct st_src *src)
{
    bool applied = false;

    pthread_rwlock_rdlock(&t->lock);
    struct st_entry *e = lookup(t, user);
    if (e && e->topic >= 0 && e->topic == topic_index(t, src->topic, false))
        applied = e->partition == src->partition && e->offset >= src->offset;
    pthread_rwlock_unlock(&t->lock);
    return applied;
}

/* Finds or creates user's entry; called with the write lock held. */
static struct st_entry *upsert(struct st_table *t, const char *user)
{
    struct st_entry *e = lookup(t, user);
    if (e)
        return e;
    size_t len = strlen(user);
    e = calloc(1, sizeof(*e) + len + 1);
    if (!e)
        return NULL;
    memcpy(e->user, user, len + 1);
    hmap_insert(&t->map, &e->node, hmap_hash(user, len));
    return e;
}

static void set_src(struct st_table *t, struct st_entry *e, const struct st_src *src)
{
    e->topic = (int16_t)topic_index(t, src ? src->topic : NULL, true);
    e->partition = src ? src->partition : -1;
    e->offset = src ? src->offset : -1;
}

static void clear_ws(struct st_table *t, struct st_entry *e)
{
    if (e->ws_kind == WS_STRING)
        free(e->ws.str);
    if (e->ws_kind != WS_NONE)
        t->present--;
    e->ws_kind = WS_NONE;
}

int st_put(struct st_table *t, const char *user, const char *workspace_id, const struct st_src *src)
{
    uint8_t packed[16];
    bool is_packed = wsid_pack(workspace_id, packed);
    char *str = is_packed ? NULL : strdup(workspace_id);
    if (!is_packed && !str)
        return -1;
    pthread_rwlock_wrlock(&t->lock);
    struct st_entry *e = upsert(t, user);
    if (e) {
        clear_ws(t, e);
        if (is_packed)
            memcpy(e->ws.packed, packed, sizeof(packed));
        else
            e->ws.str = str;
        e->ws_kind = is_packed ? WS_PACKED : WS_STRING;
        t->present++;
        set_src(t, e, src);
    }
    pthread_rwlock_unlock(&t->lock);
    if (!e)
        free(str);
    return e ? 0 : -1;
}

int st_remove(struct st_table *t, const char *user, const struct st_src *src)
{
    pthread_rwlock_wrlock(&t->lock);
    struct st_entry *e = upsert(t, user);
    if (e) {
        clear_ws(t, e);
        set_src(t, e, src);
    }
    pthread_rwlock_unlock(&t->lock);
    return e ? 0 : -1;
}

size_t st_count(struct st_table *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->present;
    pthread_rwlock_unlock(&t->lock);
    return n;
}
