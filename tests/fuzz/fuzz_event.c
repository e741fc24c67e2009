/* fuzz_event: ev_parse() on an arbitrary Kafka key and value.
 *
 * Input layout: byte 0 chooses the key. 0xff: a NULL key (a Kafka message
 * without key); otherwise the next min(byte0, rest) bytes are the key and
 * everything after them is the value. The key is copied to a buffer of its
 * exact size and the value stays at the end of libFuzzer's buffer, so ASan
 * catches a read past either.
 *
 * Invariants checked after every parse:
 *  - failure: a non-empty, NUL-terminated reason;
 *  - success: a known type, user_id set and equal to the key, every string
 *    within its EV_MAX_* bound and strict UTF-8, the required fields of the
 *    type present and non-empty, fields foreign to the type absent;
 *  - success is deterministic, and the same value with a NULL key or a
 *    different key is rejected for that reason;
 *  - success, against json-c read independently here: every field the type
 *    reads equals the JSON member byte for byte (nothing cut at an embedded
 *    NUL, nothing dropped), absent or null members stay NULL;
 *  - a rejection only for the key ("null key", "key does not match") keeps
 *    the userId it read, and the same value keyed by that userId parses.
 * ev_clear() after every call; LeakSanitizer checks that it frees all. */
#include "event.h"
#include "fuzz.h"

#include <string.h>

#include <json-c/json.h>

#define WHY_LEN 256

static bool streq_opt(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool ev_equal(const struct ev_event *a, const struct ev_event *b)
{
    return a->type == b->type && a->kind == b->kind && streq_opt(a->event_id, b->event_id) &&
           streq_opt(a->user_id, b->user_id) && streq_opt(a->new_user_id, b->new_user_id) &&
           streq_opt(a->provisioning_id, b->provisioning_id) &&
           streq_opt(a->sp_enterprise_id, b->sp_enterprise_id) &&
           streq_opt(a->display_name, b->display_name) && streq_opt(a->phone, b->phone) &&
           streq_opt(a->extension, b->extension) && streq_opt(a->workspace_id, b->workspace_id) &&
           streq_opt(a->subscriber_id, b->subscriber_id) &&
           streq_opt(a->first_name, b->first_name) && streq_opt(a->last_name, b->last_name) &&
           streq_opt(a->package, b->package) && streq_opt(a->mobile, b->mobile) &&
           streq_opt(a->email, b->email) && streq_opt(a->language, b->language) &&
           streq_opt(a->timezone, b->timezone) && strcmp(a->ignored, b->ignored) == 0;
}

static bool opt_ok(const char *s, size_t max)
{
    return !s || fuzz_str_ok(s, max);
}

static bool req_ok(const char *s, size_t max)
{
    return s && s[0] && fuzz_str_ok(s, max);
}

static void check_reason(int rc, const char *why)
{
    FUZZ_CHECK(rc == -1, "ev_parse returned %d", rc);
    FUZZ_CHECK(memchr(why, '\0', WHY_LEN) != NULL, "reason not NUL-terminated");
    FUZZ_CHECK(why[0] != '\0', "rejected without a reason");
}

static void check_event(const struct ev_event *ev, const void *key, size_t keylen)
{
    FUZZ_CHECK(ev->type == EV_PROVISION || ev->type == EV_UPDATE || ev->type == EV_REMOVE,
               "type %d", (int)ev->type);
    FUZZ_CHECK(ev_type_name(ev->kind, ev->type) != NULL, "type without a name");
    FUZZ_CHECK(key != NULL, "accepted with a NULL key");
    FUZZ_CHECK(req_ok(ev->event_id, EV_MAX_EVENT_ID), "eventId");
    FUZZ_CHECK(req_ok(ev->user_id, EV_MAX_USER_ID), "userId");
    FUZZ_CHECK(strlen(ev->user_id) == keylen && memcmp(ev->user_id, key, keylen) == 0,
               "key differs from userId '%s'", ev->user_id);
    FUZZ_CHECK(opt_ok(ev->phone, EV_MAX_PHONE), "primaryPhoneNumber");
    FUZZ_CHECK(opt_ok(ev->extension, EV_MAX_EXTENSION), "extension");
    FUZZ_CHECK(opt_ok(ev->provisioning_id, EV_MAX_PROVISIONING_ID), "provisioningId");
    FUZZ_CHECK(opt_ok(ev->sp_enterprise_id, EV_MAX_ENTERPRISE_ID), "spEnterpriseId");
    FUZZ_CHECK(opt_ok(ev->display_name, EV_MAX_DISPLAY_NAME), "displayName");
    FUZZ_CHECK(memchr(ev->ignored, '\0', sizeof(ev->ignored)) != NULL, "ignored not terminated");
    bool sub = ev->kind == EV_SUBSCRIBER;
    FUZZ_CHECK(ev->kind == EV_WORKSPACE || sub, "kind %d", (int)ev->kind);
    FUZZ_CHECK(opt_ok(ev->first_name, EV_MAX_NAME), "firstName");
    FUZZ_CHECK(opt_ok(ev->last_name, EV_MAX_NAME), "lastName");
    FUZZ_CHECK(opt_ok(ev->mobile, EV_MAX_PHONE), "mobilePhoneNumber");
    FUZZ_CHECK(opt_ok(ev->email, EV_MAX_EMAIL), "email");
    FUZZ_CHECK(opt_ok(ev->language, EV_MAX_LANGUAGE), "language");
    FUZZ_CHECK(opt_ok(ev->timezone, EV_MAX_TIMEZONE), "timezone");
    FUZZ_CHECK(!ev->package || strcmp(ev->package, "softphone") == 0 ||
                   strcmp(ev->package, "basic") == 0 || strcmp(ev->package, "standard") == 0 ||
                   strcmp(ev->package, "premium") == 0,
               "package '%s'", ev->package);
    FUZZ_CHECK(sub ? !ev->display_name && !ev->workspace_id
                   : !ev->first_name && !ev->package && !ev->subscriber_id,
               "a field of the other kind");
    FUZZ_CHECK(!ev->subscriber_id || req_ok(ev->subscriber_id, EV_MAX_SUBSCRIBER_ID),
               "subscriberId");
    switch (ev->type) {
    case EV_PROVISION:
        FUZZ_CHECK(req_ok(ev->provisioning_id, EV_MAX_PROVISIONING_ID), "provisioningId");
        FUZZ_CHECK(req_ok(ev->sp_enterprise_id, EV_MAX_ENTERPRISE_ID), "spEnterpriseId");
        if (sub) {
            FUZZ_CHECK(req_ok(ev->first_name, EV_MAX_NAME) && req_ok(ev->last_name, EV_MAX_NAME) &&
                           req_ok(ev->package, EV_MAX_PACKAGE),
                       "a subscriber's required field");
        } else {
            FUZZ_CHECK(req_ok(ev->display_name, EV_MAX_DISPLAY_NAME), "displayName");
        }
        FUZZ_CHECK(!ev->new_user_id && !ev->workspace_id && !ev->subscriber_id && !ev->ignored[0],
                   "update/remove field in a provision");
        break;
    case EV_UPDATE:
        FUZZ_CHECK(!ev->new_user_id || req_ok(ev->new_user_id, EV_MAX_USER_ID), "newUserId");
        FUZZ_CHECK(!ev->workspace_id || req_ok(ev->workspace_id, EV_MAX_WORKSPACE_ID),
                   "workspaceId");
        break;
    case EV_REMOVE:
        FUZZ_CHECK(!ev->new_user_id && !ev->ignored[0], "update field in a remove");
        FUZZ_CHECK(!ev->workspace_id || req_ok(ev->workspace_id, EV_MAX_WORKSPACE_ID),
                   "workspaceId");
        break;
    case EV_NONE:
        break;
    }
}

/* got must be exactly obj.name (NULL when absent or null), or NULL when the
 * event type does not read that member. With empty_absent, "" also reads as
 * absent (a provision leaves an empty optional field out). */
static void check_member_ex(json_object *obj, const char *name, const char *got, bool read,
                            bool empty_absent)
{
    json_object *v = NULL;
    if (!read || !obj || !json_object_object_get_ex(obj, name, &v) ||
        json_object_is_type(v, json_type_null) ||
        (empty_absent && json_object_is_type(v, json_type_string) &&
         json_object_get_string_len(v) == 0)) {
        FUZZ_CHECK(got == NULL, "%s: '%s' but the JSON has none (or it is not read)", name, got);
        return;
    }
    FUZZ_CHECK(json_object_is_type(v, json_type_string), "%s accepted as a non-string", name);
    const char *want = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    FUZZ_CHECK(got && strlen(got) == len && memcmp(got, want, len) == 0,
               "%s: parsed '%s', JSON has %zu bytes '%s'", name, got ? got : "(null)", len, want);
}

static void check_member(json_object *obj, const char *name, const char *got, bool read)
{
    check_member_ex(obj, name, got, read, false);
}

static void check_against_json(const struct ev_event *ev, const void *value, size_t len)
{
    json_tokener *tok = json_tokener_new();
    FUZZ_CHECK(tok != NULL, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, value, (int)len);
    FUZZ_CHECK(root && json_object_is_type(root, json_type_object), "accepted a non-object");
    json_object *ws = NULL, *type = NULL;
    bool sub = ev->kind == EV_SUBSCRIBER;
    FUZZ_CHECK(json_object_object_get_ex(root, sub ? "subscriber" : "workspace", &ws) &&
                   json_object_is_type(ws, json_type_object),
               "accepted without a %s object", sub ? "subscriber" : "workspace");
    FUZZ_CHECK(json_object_object_get_ex(root, "type", &type) &&
                   json_object_is_type(type, json_type_string) &&
                   strcmp(json_object_get_string(type), ev_type_name(ev->kind, ev->type)) == 0,
               "type %s", ev_type_name(ev->kind, ev->type));
    bool prov = ev->type == EV_PROVISION;
    check_member(root, "eventId", ev->event_id, true);
    check_member(ws, "userId", ev->user_id, true);
    check_member(ws, "provisioningId", ev->provisioning_id, true);
    check_member(ws, "spEnterpriseId", ev->sp_enterprise_id, true);
    check_member(ws, "displayName", ev->display_name, !sub);
    check_member_ex(ws, "primaryPhoneNumber", ev->phone, true, prov);
    check_member_ex(ws, "extension", ev->extension, true, prov);
    check_member(ws, "newUserId", ev->new_user_id, ev->type == EV_UPDATE);
    check_member(root, "workspaceId", ev->workspace_id, !sub && !prov);
    check_member(root, "subscriberId", ev->subscriber_id, sub && !prov);
    check_member(ws, "firstName", ev->first_name, sub);
    check_member(ws, "lastName", ev->last_name, sub);
    check_member(ws, "package", ev->package, sub);
    check_member_ex(ws, "mobilePhoneNumber", ev->mobile, sub, prov);
    check_member_ex(ws, "email", ev->email, sub, prov);
    check_member_ex(ws, "language", ev->language, sub, prov);
    check_member_ex(ws, "timezone", ev->timezone, sub, prov);
    json_object_put(root);
    json_tokener_free(tok);
}

static bool key_rejection(const char *why)
{
    return strstr(why, "null key") != NULL || strstr(why, "key does not match") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ev_event ev, again;
    char why[WHY_LEN], why2[WHY_LEN];

    if (size == 0)
        return 0;
    size_t keylen = data[0] == 0xff ? 0 : data[0];
    if (keylen > size - 1)
        keylen = size - 1;
    const uint8_t *value = data + 1 + keylen;
    size_t len = size - 1 - keylen;
    char *key = NULL;
    if (data[0] != 0xff) {
        key = malloc(keylen ? keylen : 1);
        if (!key)
            return 0;
        memcpy(key, data + 1, keylen);
    }

    int rc = ev_parse(key, keylen, value, len, &ev, why, sizeof(why));
    if (rc == 0) {
        check_event(&ev, key, keylen);
        check_against_json(&ev, value, len);

        FUZZ_CHECK(ev_parse(key, keylen, value, len, &again, why2, sizeof(why2)) == 0,
                   "second parse failed: %s", why2);
        FUZZ_CHECK(ev_equal(&ev, &again), "second parse differs");
        ev_clear(&again);

        check_reason(ev_parse(NULL, 0, value, len, &again, why2, sizeof(why2)), why2);
        FUZZ_CHECK(strstr(why2, "null key"), "NULL key rejected as '%s'", why2);
        ev_clear(&again);

        char *other = malloc(keylen + 1);
        if (other) {
            memcpy(other, key, keylen);
            other[keylen] = 'x';
            check_reason(ev_parse(other, keylen + 1, value, len, &again, why2, sizeof(why2)), why2);
            FUZZ_CHECK(strstr(why2, "key does not match"), "wrong key rejected as '%s'", why2);
            ev_clear(&again);
            free(other);
        }
    } else {
        check_reason(rc, why);
        if (key_rejection(why)) {
            FUZZ_CHECK(ev.user_id != NULL, "key rejection without a userId");
            const char *uid = ev.user_id;
            int rc2 = ev_parse(uid, strlen(uid), value, len, &again, why2, sizeof(why2));
            FUZZ_CHECK(rc2 == 0, "keyed by its userId '%s' still rejected: %s", uid, why2);
            check_event(&again, uid, strlen(uid));
            check_against_json(&again, value, len);
            ev_clear(&again);
        }
    }
    ev_clear(&ev);
    FUZZ_CHECK(!ev.event_id && !ev.user_id && ev.type == EV_NONE, "ev_clear left fields");
    free(key);
    return 0;
}
