/* offsets: see offsets.h. A ring of (offset, done) in consumption order;
 * finished entries at the front are popped, so the ring holds only the
 * window between the commit point and the newest offset. */
#include "offsets.h"

#include <stdbool.h>
#include <stdlib.h>

struct slot {
    int64_t offset;
    int64_t stamp; /* the caller's (off_add_at): when it was consumed */
    bool done;
};

struct off_tracker {
    struct slot *ring;
    size_t cap, head, len; /* cap is a power of two */
    size_t pending;
    int64_t next_commit; /* valid when len == 0 */
};

struct off_tracker *off_new(void)
{
    struct off_tracker *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = 64;
    t->ring = calloc(t->cap, sizeof(*t->ring));
    if (!t->ring) {
        free(t);
        return NULL;
    }
    t->next_commit = -1;
    return t;
}

void off_free(struct off_tracker *t)
{
    if (t)
        free(t->ring);
    free(t);
}

static struct slot *at(const struct off_tracker *t, size_t i)
{
    return &t->ring[(t->head + i) & (t->cap - 1)];
}

static int grow(struct off_tracker *t)
{
    struct slot *r = malloc(2 * t->cap * sizeof(*r));
    if (!r)
        return -1;
    for (size_t i = 0; i < t->len; i++)
        r[i] = *at(t, i);
    free(t->ring);
    t->ring = r;
    t->cap *= 2;
    t->head = 0;
    return 0;
}

int off_add(struct off_tracker *t, int64_t offset)
{
    return off_add_at(t, offset, 0);
}

int off_add_at(struct off_tracker *t, int64_t offset, int64_t stamp)
{
    int64_t last = t->len ? at(t, t->len - 1)->offset : t->next_commit - 1;
    if ((t->len || t->next_commit >= 0) && offset <= last)
        return -1;
    if (t->len == t->cap && grow(t) != 0)
        return -2;
    *at(t, t->len) = (struct slot){offset, stamp, false};
    t->len++;
    t->pending++;
    return 0;
}

int off_done(struct off_tracker *t, int64_t offset)
{
    size_t lo = 0, hi = t->len;
    while (lo < hi) { /* binary search: offsets increase along the ring */
        size_t mid = lo + (hi - lo) / 2;
        if (at(t, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->len || at(t, lo)->offset != offset || at(t, lo)->done)
        return -1;
    at(t, lo)->done = true;
    t->pending--;
    while (t->len && at(t, 0)->done) {
        t->next_commit = at(t, 0)->offset + 1;
        t->head = (t->head + 1) & (t->cap - 1);
        t->len--;
    }
    return 0;
}

int64_t off_commit_point(const struct off_tracker *t)
{
    return t->len ? at(t, 0)->offset : t->next_commit;
}

int64_t off_oldest(const struct off_tracker *t, int64_t *offset)
{
    if (!t->len) /* finished entries at the front are popped: the front is unfinished */
        return 0;
    *offset = at(t, 0)->offset;
    return at(t, 0)->stamp;
}

size_t off_pending(const struct off_tracker *t)
{
    return t->pending;
}
