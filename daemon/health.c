/* health: reads what STATUS= and /metrics show beyond the counters (the
 * group assignment, the state table's loading, the oldest unfinished
 * event, Webex authentication, the refresh token's expiry) from the
 * atomics the other threads keep, and warns daily in the journal of a
 * refresh token about to expire. The wording is common/health.c's. */
#include "app.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

/* kafka.group.id (cfg_init gives it a default). */
static const char *group_id(const struct app *a)
{
    const char *g = cfg_kafka_value(&a->cfg, CFG_KAFKA_CONSUMER, "group.id");
    return g ? g : "bwprovd";
}

/* Assigned partitions, and the oldest unfinished event among them (the
 * consumer publishes each partition's once a second). */
static void partitions(struct app *a, int64_t now_us, struct hl_view *v)
{
    int64_t oldest = 0;
    for (int32_t p = 0; p < APP_MAX_PARTITIONS; p++) {
        if (!atomic_load(&a->part_owned[p]))
            continue;
        v->partitions++;
        int64_t t = atomic_load(&a->part_oldest_us[p]);
        if (t && (!oldest || t < oldest)) {
            oldest = t;
            v->oldest_partition = p;
            v->oldest_offset = atomic_load(&a->part_oldest_off[p]);
        }
    }
    v->oldest_age_ms = oldest && now_us > oldest ? (now_us - oldest) / 1000 : 0;
}

/* Failing since the earlier of: Webex refusing the token, the refresh
 * failing. */
static void auth(struct app *a, struct health *h)
{
    int64_t api = atomic_load(&a->auth_failed_ms), refresh = h->token.failing_since_ms;
    if (api && (!refresh || api <= refresh)) {
        pthread_mutex_lock(&a->lock);
        snprintf(h->auth_why, sizeof(h->auth_why), "%s", a->auth_why);
        pthread_mutex_unlock(&a->lock);
        h->v.auth_since_ms = api;
    } else if (refresh) {
        snprintf(h->auth_why, sizeof(h->auth_why), "token refresh failing: %s", h->token.why);
        h->v.auth_since_ms = refresh;
    }
    h->v.auth_why = h->auth_why;
}

void health_read(struct app *a, struct health *h)
{
    memset(h, 0, sizeof(*h));
    h->v.now_ms = app_epoch_ms();
    h->v.group = group_id(a);
    h->v.topic = a->cfg.topic_events;
    h->v.assignment = atomic_load(&a->assignment);
    h->v.stopping = atomic_load(&a->stopping);
    partitions(a, app_now_us(), &h->v);
    h->v.load_done = atomic_load(&a->load_done);
    h->v.load_total = atomic_load(&a->load_total);
    if (a->token)
        token_info(a->token, &h->token);
    h->v.refresh_expires_ms = h->token.refresh_expires_ms;
    auth(a, h);
}

void health_tick(struct app *a)
{
    struct token_info t;
    if (!a->token)
        return;
    token_info(a->token, &t);
    int64_t now = app_epoch_ms();
    if (!hl_refresh_warn_due(t.refresh_expires_ms, now, a->refresh_warned_ms))
        return;
    a->refresh_warned_ms = now;
    char at[40], left[32], when[96];
    hl_utc(t.refresh_expires_ms, at, sizeof(at));
    hl_duration(t.refresh_expires_ms - now, left, sizeof(left));
    if (t.refresh_expires_ms > now)
        snprintf(when, sizeof(when), "expires in %s (%s)", left, at);
    else
        snprintf(when, sizeof(when), "expired at %s", at);
    log_write(LOG_LVL_WARNING, LOG_MID_REFRESH_EXPIRING,
              "the Webex refresh token %s: authorize the integration again and install the new "
              "refresh token (the credential bwprovd.webex-refresh-token), then restart bwprovd; "
              "this warning repeats daily",
              when);
}

void health_auth_failed(struct app *a, const char *why)
{
    long long none = 0;
    if (!atomic_compare_exchange_strong(&a->auth_failed_ms, &none, app_epoch_ms()))
        return; /* failing already: the first failure says since when and why */
    pthread_mutex_lock(&a->lock);
    snprintf(a->auth_why, sizeof(a->auth_why), "%s", why);
    pthread_mutex_unlock(&a->lock);
}

void health_auth_ok(struct app *a)
{
    if (atomic_load_explicit(&a->auth_failed_ms, memory_order_relaxed) &&
        atomic_exchange(&a->auth_failed_ms, 0))
        log_notice("Webex accepts the access token again");
}
