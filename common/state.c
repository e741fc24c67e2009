/* state: see state.h. */
#include "state.h"

#include "hmap.h"
#include "wsid.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_TOPICS 16
#define ARENA_BLOCK (1u << 20)

enum { WS_NONE, WS_PACKED, WS_STRING }; /* WS_NONE: removed marker */
enum { F_SUBSCRIBER = 1, F_PENDING = 2, F_FAILED = 4 };

/* 80 bytes for a typical user (15-character userId) plus 16 for its two
 * hash buckets: the id packed to 16 bytes (wsid.h), the userId inline, no
 * allocator header (entries come from the arena below). */
struct st_entry {
    struct hmap_node node;  /* first: by userId */
    struct hmap_node wnode; /* by workspace id, while the user has one */
    int64_t offset;
    int32_t partition;
    int16_t topic; /* index into topics[], -1 unknown */
    uint8_t ws_kind;
    uint8_t flags; /* F_* of the id */
    union {
        uint8_t packed[16];
        char *str;
    } ws;
    char user[];
};

/* Entries live as long as the table (a removed user keeps a marker), so
 * they are carved out of large private mappings: no per-entry malloc
 * header, and they never pin pages of the malloc heap, whose transient use
 * while the table loads (fetch buffers, parsed records) can then go back to
 * the system (malloc_trim). */
struct arena_block {
    struct arena_block *next;
    size_t size;
};

struct st_table {
    pthread_rwlock_t lock;
    struct hmap map;
    struct hmap by_ws;
    struct arena_block *blocks; /* newest first */
    size_t used;                /* bytes used in blocks, header included */
    size_t present;             /* live entries: workspaces and subscribers */
    size_t subscribers;         /* of which subscribers */
    char *topics[MAX_TOPICS];   /* interned source topic names */
    int n_topics;
};

static bool entry_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct st_entry *e = (const struct st_entry *)n;
    return strncmp(e->user, key, len) == 0 && e->user[len] == '\0';
}

/* The workspace index is keyed by a kind byte and the packed uuid, or the
 * kind byte and the id string, so the two forms can never be confused. */
#define WSKEY_MAX (1 + WSID_MAX_LEN)
static size_t ws_key(const char *id, char *key)
{
    uint8_t packed[16];
    if (wsid_pack(id, packed)) {
        key[0] = WS_PACKED;
        memcpy(key + 1, packed, sizeof(packed));
        return 1 + sizeof(packed);
    }
    size_t len = strnlen(id, WSID_MAX_LEN);
    key[0] = WS_STRING;
    memcpy(key + 1, id, len);
    return 1 + len;
}

static const struct st_entry *of_wnode(const struct hmap_node *n)
{
    return (const struct st_entry *)((const char *)n - offsetof(struct st_entry, wnode));
}

static bool ws_eq(const struct hmap_node *n, const char *key, size_t len)
{
    const struct st_entry *e = of_wnode(n);
    if ((unsigned char)key[0] != e->ws_kind)
        return false;
    if (e->ws_kind == WS_PACKED)
        return len == 17 && memcmp(e->ws.packed, key + 1, 16) == 0;
    return strlen(e->ws.str) == len - 1 && memcmp(e->ws.str, key + 1, len - 1) == 0;
}

struct st_table *st_new(void)
{
    struct st_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (hmap_init(&t->map, 4096) != 0 || hmap_init(&t->by_ws, 4096) != 0 ||
        pthread_rwlock_init(&t->lock, NULL) != 0) {
        hmap_destroy(&t->map);
        hmap_destroy(&t->by_ws);
        free(t);
        return NULL;
    }
    return t;
}

/* n bytes, 8-aligned, from the newest block or a new one; NULL when out of
 * memory. */
static void *arena_alloc(struct st_table *t, size_t n)
{
    const size_t head = (sizeof(struct arena_block) + 7) & ~(size_t)7;
    n = (n + 7) & ~(size_t)7;
    if (!t->blocks || t->used + n > t->blocks->size) {
        size_t size = n + head > ARENA_BLOCK ? n + head : ARENA_BLOCK;
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        struct arena_block *b = p;
        b->next = t->blocks;
        b->size = size;
        t->blocks = b;
        t->used = head;
    }
    void *p = (unsigned char *)t->blocks + t->used;
    t->used += n;
    return p; /* fresh mappings are zero-filled */
}

static void free_ws_string(struct hmap_node *n, void *arg)
{
    (void)arg;
    struct st_entry *e = (struct st_entry *)n;
    if (e->ws_kind == WS_STRING)
        free(e->ws.str);
}

void st_free(struct st_table *t)
{
    if (!t)
        return;
    hmap_foreach(&t->map, free_ws_string, NULL);
    hmap_destroy(&t->map);
    hmap_destroy(&t->by_ws);
    while (t->blocks) {
        struct arena_block *b = t->blocks;
        t->blocks = b->next;
        munmap(b, b->size);
    }
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
    return st_get_src(t, user, ws, wscap, NULL, NULL, 0);
}

enum st_status st_get_src(struct st_table *t, const char *user, char *ws, size_t wscap,
                          struct st_src *src, char *topic, size_t cap)
{
    return st_get_kind(t, user, ws, wscap, NULL, src, topic, cap);
}

enum st_status st_get_kind(struct st_table *t, const char *user, char *ws, size_t wscap,
                           struct st_kind *kind, struct st_src *src, char *topic, size_t cap)
{
    enum st_status s = ST_ABSENT;

    if (kind)
        *kind = (struct st_kind){false, false, false};
    pthread_rwlock_rdlock(&t->lock);
    struct st_entry *e = lookup(t, user);
    if (e && src) {
        src->topic = NULL;
        if (e->topic >= 0 && cap) {
            snprintf(topic, cap, "%s", t->topics[e->topic]);
            src->topic = topic;
        }
        src->partition = e->partition;
        src->offset = e->offset;
    }
    if (e && e->ws_kind != WS_NONE) {
        s = ST_PRESENT;
        if (kind)
            *kind = (struct st_kind){e->flags & F_SUBSCRIBER, e->flags & F_PENDING,
                                     e->flags & F_FAILED};
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

/* Whether e's source is src's topic and partition at an offset of at
 * least min_offset; called with the lock held. */
static bool same_at_least(struct st_table *t, const struct st_entry *e, const struct st_src *src,
                          int64_t min_offset)
{
    if (!e || !src || e->topic < 0 || e->topic != topic_index(t, src->topic, false))
        return false;
    return e->partition == src->partition && e->offset >= min_offset;
}

bool st_applied(struct st_table *t, const char *user, const struct st_src *src)
{
    pthread_rwlock_rdlock(&t->lock);
    bool applied = same_at_least(t, lookup(t, user), src, src->offset);
    pthread_rwlock_unlock(&t->lock);
    return applied;
}

bool st_older(struct st_table *t, const char *user, const struct st_src *src)
{
    pthread_rwlock_rdlock(&t->lock);
    bool older = src && same_at_least(t, lookup(t, user), src, src->offset + 1);
    pthread_rwlock_unlock(&t->lock);
    return older;
}

bool st_holder(struct st_table *t, const char *workspace_id, char *user, size_t cap)
{
    char key[WSKEY_MAX];
    size_t len = ws_key(workspace_id, key);

    pthread_rwlock_rdlock(&t->lock);
    struct hmap_node *n = hmap_find(&t->by_ws, hmap_hash(key, len), key, len, ws_eq);
    if (n && cap)
        snprintf(user, cap, "%s", of_wnode(n)->user);
    pthread_rwlock_unlock(&t->lock);
    return n != NULL;
}

/* Finds or creates user's entry; called with the write lock held. */
static struct st_entry *upsert(struct st_table *t, const char *user)
{
    struct st_entry *e = lookup(t, user);
    if (e)
        return e;
    size_t len = strlen(user);
    e = arena_alloc(t, sizeof(*e) + len + 1);
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
    if (e->ws_kind == WS_NONE)
        return;
    hmap_remove(&t->by_ws, &e->wnode);
    if (e->ws_kind == WS_STRING)
        free(e->ws.str);
    t->present--;
    if (e->flags & F_SUBSCRIBER)
        t->subscribers--;
    e->ws_kind = WS_NONE;
    e->flags = 0;
}

static void index_ws(struct st_table *t, struct st_entry *e)
{
    char key[WSKEY_MAX];
    size_t len = 1 + sizeof(e->ws.packed);
    key[0] = (char)e->ws_kind;
    if (e->ws_kind == WS_PACKED)
        memcpy(key + 1, e->ws.packed, sizeof(e->ws.packed)); /* as ws_key() makes it */
    else
        len = ws_key(e->ws.str, key);
    hmap_insert(&t->by_ws, &e->wnode, hmap_hash(key, len));
}

/* Finds or creates user's entry for a change from src; NULL with *rc set
 * when the change is older (1) or memory ran out (-1). Write lock held. */
static struct st_entry *entry_for(struct st_table *t, const char *user, const struct st_src *src,
                                  int *rc)
{
    struct st_entry *e = lookup(t, user);
    if (e && src && same_at_least(t, e, src, src->offset + 1)) {
        *rc = 1;
        return NULL;
    }
    e = e ? e : upsert(t, user);
    *rc = e ? 0 : -1;
    return e;
}

/* Sets user's id (a workspace's or, with F_SUBSCRIBER, a subscriber's). */
static int put(struct st_table *t, const char *user, const char *workspace_id, uint8_t flags,
               const struct st_src *src)
{
    uint8_t packed[16];
    bool is_packed = !(flags & F_SUBSCRIBER) && wsid_pack(workspace_id, packed);
    char *str = is_packed ? NULL : strdup(workspace_id);
    int rc;
    if (!is_packed && !str)
        return -1;
    pthread_rwlock_wrlock(&t->lock);
    struct st_entry *e = entry_for(t, user, src, &rc);
    if (e) {
        clear_ws(t, e);
        if (is_packed)
            memcpy(e->ws.packed, packed, sizeof(packed));
        else
            e->ws.str = str;
        e->ws_kind = is_packed ? WS_PACKED : WS_STRING;
        e->flags = flags;
        t->present++;
        if (flags & F_SUBSCRIBER)
            t->subscribers++;
        index_ws(t, e);
        set_src(t, e, src);
    }
    pthread_rwlock_unlock(&t->lock);
    if (!e)
        free(str);
    return rc;
}

int st_put(struct st_table *t, const char *user, const char *workspace_id, const struct st_src *src)
{
    return put(t, user, workspace_id, 0, src);
}

int st_put_subscriber(struct st_table *t, const char *user, const char *subscriber_id,
                      enum st_sub sub, const struct st_src *src)
{
    uint8_t f = sub == ST_SUB_PENDING ? F_PENDING : sub == ST_SUB_FAILED ? F_FAILED : 0;
    return put(t, user, subscriber_id, F_SUBSCRIBER | f, src);
}

int st_remove(struct st_table *t, const char *user, const struct st_src *src)
{
    int rc;
    pthread_rwlock_wrlock(&t->lock);
    struct st_entry *e = entry_for(t, user, src, &rc);
    if (e) {
        clear_ws(t, e);
        set_src(t, e, src);
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

size_t st_count(struct st_table *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->present - t->subscribers;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

size_t st_count_subscribers(struct st_table *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->subscribers;
    pthread_rwlock_unlock(&t->lock);
    return n;
}
