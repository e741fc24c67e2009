/* event: see event.h. */
#include "event.h"

#include "jstrict.h"
#include "wsid.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define JSON_MAX_DEPTH 16

static const char *const type_names[EV_CODES] = {
    NULL,
    "workspace.provision",
    "workspace.update",
    "workspace.remove",
    "subscriber.provision",
    "subscriber.update",
    "subscriber.remove",
};

int ev_code(enum ev_kind k, enum ev_type t)
{
    if (t == EV_NONE)
        return 0;
    return (k == EV_SUBSCRIBER ? 3 : 0) + (int)t;
}

const char *ev_code_name(int code)
{
    return code > 0 && code < EV_CODES ? type_names[code] : NULL;
}

const char *ev_type_name(enum ev_kind k, enum ev_type t)
{
    return ev_code_name(ev_code(k, t));
}

static int type_from_name(const char *s, enum ev_kind *k)
{
    for (int code = 1; code < EV_CODES; code++) {
        if (strcmp(s, type_names[code]) == 0) {
            *k = code > 3 ? EV_SUBSCRIBER : EV_WORKSPACE;
            return code > 3 ? code - 3 : code;
        }
    }
    return EV_NONE;
}

void ev_clear(struct ev_event *ev)
{
    free(ev->strings);
    memset(ev, 0, sizeof(*ev));
}

/* A copy of s in the event's string block. */
static char *keep(struct ev_event *ev, const char *s, size_t len)
{
    if (len + 1 > ev->cap - ev->used)
        return NULL;
    char *out = ev->strings + ev->used;
    memcpy(out, s, len);
    out[len] = '\0';
    ev->used += len + 1;
    return out;
}

struct ctx {
    char *why;
    size_t whylen;
    struct ev_event *ev;
};

static int reject(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int reject(struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, c->whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. json-c's own check lets some of those through. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min, cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        if (n >= len - i) /* truncated sequence */
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* The string value of member name (NULL when absent or null), validated. */
static int get_raw(struct ctx *c, json_object *obj, const char *name, const char *path, size_t max,
                   bool required, const char **out, size_t *outlen)
{
    *out = NULL;
    json_object *v;

    if (!json_object_object_get_ex(obj, name, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            return reject(c, "missing required field %s", path);
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return reject(c, "field %s must be a string", path);
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (strlen(s) != len)
        return reject(c, "field %s contains a NUL character", path);
    if (!utf8_valid((const unsigned char *)s, len))
        return reject(c, "field %s is not valid UTF-8", path);
    if (required && len == 0)
        return reject(c, "field %s must not be empty", path);
    if (len > max)
        return reject(c, "field %s is longer than %zu bytes", path, max);
    *out = s;
    *outlen = len;
    return 0;
}

/* Reads an optional string member into *out. Absent or null leaves it NULL;
 * a wrong type, an embedded NUL, an empty required value or an oversize
 * value is an error naming the field. */
static int get_str(struct ctx *c, json_object *obj, const char *name, const char *path, size_t max,
                   bool required, char **out)
{
    const char *s;
    size_t len;
    int rc = get_raw(c, obj, name, path, max, required, &s, &len);
    if (rc != 0 || !s)
        return rc;
    *out = keep(c->ev, s, len);
    if (!*out)
        return reject(c, "out of memory reading %s", path);
    return 0;
}

static json_object *parse_json(struct ctx *c, const void *value, size_t len)
{
    enum json_tokener_error jerr;
    size_t used;
    /* jstrict: json-c 0.18's strict mode refuses any non-ASCII text. */
    json_object *obj = jstrict_parse(value, len, JSON_MAX_DEPTH, &jerr, &used);
    if (!obj || jerr != json_tokener_success) {
        if (jerr == json_tokener_continue)
            reject(c, "%s", "invalid JSON: truncated");
        else
            reject(c, "invalid JSON: %s", json_tokener_error_desc(jerr));
        json_object_put(obj);
        obj = NULL;
    } else if (used != len && strspn((const char *)value + used, " \t\r\n") != len - used) {
        reject(c, "%s", "invalid JSON: trailing data after the object");
        json_object_put(obj);
        obj = NULL;
    }
    return obj;
}

/* Names the fixed fields an update carries: PUT cannot change them. */
static void note_ignored(struct ev_event *ev, json_object *obj, const char *const *fixed,
                         size_t nfixed)
{
    size_t n = 0;
    ev->ignored[0] = '\0';
    for (size_t i = 0; i < nfixed; i++) {
        if (!json_object_object_get_ex(obj, fixed[i], NULL))
            continue;
        int w = snprintf(ev->ignored + n, sizeof(ev->ignored) - n, "%s%s", n ? "," : "", fixed[i]);
        if (w > 0)
            n += (size_t)w;
    }
}

static int parse_workspace(struct ctx *c, json_object *ws, struct ev_event *ev)
{
    bool prov = ev->type == EV_PROVISION;

    if (get_str(c, ws, "userId", "workspace.userId", EV_MAX_USER_ID, true, &ev->user_id) ||
        get_str(c, ws, "provisioningId", "workspace.provisioningId", EV_MAX_PROVISIONING_ID, prov,
                &ev->provisioning_id) ||
        get_str(c, ws, "spEnterpriseId", "workspace.spEnterpriseId", EV_MAX_ENTERPRISE_ID, prov,
                &ev->sp_enterprise_id) ||
        get_str(c, ws, "displayName", "workspace.displayName", EV_MAX_DISPLAY_NAME, prov,
                &ev->display_name) ||
        get_str(c, ws, "primaryPhoneNumber", "workspace.primaryPhoneNumber", EV_MAX_PHONE, false,
                &ev->phone) ||
        get_str(c, ws, "extension", "workspace.extension", EV_MAX_EXTENSION, false, &ev->extension))
        return -1;
    /* An empty optional string asks for "no value": a provision simply
     * leaves the field out; an update sends "" so Webex clears it. */
    if (prov && ev->phone && !*ev->phone)
        ev->phone = NULL;
    if (prov && ev->extension && !*ev->extension)
        ev->extension = NULL;
    if (ev->type == EV_UPDATE) {
        if (get_str(c, ws, "newUserId", "workspace.newUserId", EV_MAX_USER_ID, false,
                    &ev->new_user_id))
            return -1;
        if (ev->new_user_id && ev->new_user_id[0] == '\0')
            return reject(c, "field %s must not be empty", "workspace.newUserId");
        static const char *const fixed[] = {"displayName", "spEnterpriseId", "provisioningId"};
        note_ignored(ev, ws, fixed, 3);
    }
    return 0;
}

/* The packages of Cisco's OpenAPI (Subscriber.package). */
static bool package_known(const char *p)
{
    static const char *const known[] = {"softphone", "basic", "standard", "premium"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(p, known[i]) == 0)
            return true;
    return false;
}

/* SPEC §2b: the fields of the subscriber object. A provision needs
 * provisioningId, userId, spEnterpriseId, firstName, lastName and package
 * (Cisco's OpenAPI); an update carries any of the fields PUT can change;
 * a remove only the userId. */
static int parse_subscriber(struct ctx *c, json_object *s, struct ev_event *ev)
{
    bool prov = ev->type == EV_PROVISION;

    if (get_str(c, s, "userId", "subscriber.userId", EV_MAX_USER_ID, true, &ev->user_id) ||
        get_str(c, s, "provisioningId", "subscriber.provisioningId", EV_MAX_PROVISIONING_ID, prov,
                &ev->provisioning_id) ||
        get_str(c, s, "spEnterpriseId", "subscriber.spEnterpriseId", EV_MAX_ENTERPRISE_ID, prov,
                &ev->sp_enterprise_id) ||
        get_str(c, s, "firstName", "subscriber.firstName", EV_MAX_NAME, prov, &ev->first_name) ||
        get_str(c, s, "lastName", "subscriber.lastName", EV_MAX_NAME, prov, &ev->last_name) ||
        get_str(c, s, "package", "subscriber.package", EV_MAX_PACKAGE, prov, &ev->package) ||
        get_str(c, s, "primaryPhoneNumber", "subscriber.primaryPhoneNumber", EV_MAX_PHONE, false,
                &ev->phone) ||
        get_str(c, s, "mobilePhoneNumber", "subscriber.mobilePhoneNumber", EV_MAX_PHONE, false,
                &ev->mobile) ||
        get_str(c, s, "extension", "subscriber.extension", EV_MAX_EXTENSION, false,
                &ev->extension) ||
        get_str(c, s, "email", "subscriber.email", EV_MAX_EMAIL, false, &ev->email) ||
        get_str(c, s, "language", "subscriber.language", EV_MAX_LANGUAGE, false, &ev->language) ||
        get_str(c, s, "timezone", "subscriber.timezone", EV_MAX_TIMEZONE, false, &ev->timezone))
        return -1;
    if (ev->package && !package_known(ev->package))
        return reject(c, "field %s must be softphone, basic, standard or premium",
                      "subscriber.package");
    /* PUT cannot clear a name or the package: an empty one is an error. */
    if (ev->type == EV_UPDATE) {
        const char *const must[] = {"firstName", "lastName"};
        char *const vals[] = {ev->first_name, ev->last_name};
        for (size_t i = 0; i < 2; i++)
            if (vals[i] && !*vals[i])
                return reject(c, "field subscriber.%s must not be empty", must[i]);
    }
    /* As for workspaces: an empty optional string is "no value"; a
     * provision leaves it out, an update sends "" and Webex clears it. */
    if (prov) {
        char **opt[] = {&ev->phone, &ev->mobile,   &ev->extension,
                        &ev->email, &ev->language, &ev->timezone};
        for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
            if (*opt[i] && !**opt[i])
                *opt[i] = NULL;
    }
    if (ev->type == EV_UPDATE) {
        if (get_str(c, s, "newUserId", "subscriber.newUserId", EV_MAX_USER_ID, false,
                    &ev->new_user_id))
            return -1;
        if (ev->new_user_id && ev->new_user_id[0] == '\0')
            return reject(c, "field %s must not be empty", "subscriber.newUserId");
        static const char *const fixed[] = {"provisioningId", "spEnterpriseId", "email",
                                            "language"};
        note_ignored(ev, s, fixed, 4);
    }
    return 0;
}

static int parse_object(struct ctx *c, json_object *root, struct ev_event *ev)
{
    json_object *ws;
    const char *type;
    size_t typelen;

    if (!json_object_is_type(root, json_type_object))
        return reject(c, "%s", "event is not a JSON object");
    /* eventId first, so even a rejection can name the event. */
    if (get_str(c, root, "eventId", "eventId", EV_MAX_EVENT_ID, true, &ev->event_id))
        return -1;
    if (get_raw(c, root, "type", "type", 64, true, &type, &typelen))
        return -1;
    ev->type = (enum ev_type)type_from_name(type, &ev->kind);
    if (ev->type == EV_NONE)
        return reject(c, "%s", "unknown event type");
    bool sub = ev->kind == EV_SUBSCRIBER;
    const char *member = sub ? "subscriber" : "workspace";
    if (!json_object_object_get_ex(root, member, &ws))
        return reject(c, "missing required field %s", member);
    if (!json_object_is_type(ws, json_type_object))
        return reject(c, "field %s must be an object", member);
    if (sub ? parse_subscriber(c, ws, ev) : parse_workspace(c, ws, ev))
        return -1;
    const char *id_name = sub ? "subscriberId" : "workspaceId";
    char **id = sub ? &ev->subscriber_id : &ev->workspace_id;
    if (ev->type != EV_PROVISION &&
        get_str(c, root, id_name, id_name, sub ? EV_MAX_SUBSCRIBER_ID : EV_MAX_WORKSPACE_ID, false,
                id))
        return -1;
    /* It becomes a path segment: it must name one resource and nothing
     * else (no "..", no "/"). */
    const char *bad = *id ? wsid_check(*id, strlen(*id)) : NULL;
    if (bad)
        return reject(c, "field %s %s", id_name, bad);
    return 0;
}

int ev_parse(const void *key, size_t keylen, const void *value, size_t len, struct ev_event *ev,
             char *why, size_t whylen)
{
    struct ctx c = {why, whylen, ev};

    memset(ev, 0, sizeof(*ev));
    why[0] = '\0';
    if (!value || len == 0)
        return reject(&c, "%s", "empty message");
    if (len > EV_MAX_BYTES)
        return reject(&c, "%s", "message larger than 64 KiB");
    /* Decoded strings are never longer than their quoted JSON form, so the
     * block never needs more than the document's length. */
    ev->strings = malloc(len + 1);
    if (!ev->strings)
        return reject(&c, "%s", "out of memory");
    ev->cap = len + 1;
    if (!utf8_valid(value, len))
        return reject(&c, "%s", "invalid JSON: not valid UTF-8");
    json_object *root = parse_json(&c, value, len);
    if (!root)
        return -1;
    int rc = parse_object(&c, root, ev);
    json_object_put(root);
    if (rc != 0)
        return -1;
    /* The key routes a user's events to one partition; a key that is not the
     * userId would break per-user order, so it is not guessed at. */
    const char *member = ev->kind == EV_SUBSCRIBER ? "subscriber" : "workspace";
    if (!key)
        return reject(&c, "null key (the key must be %s.userId)", member);
    if (keylen != strlen(ev->user_id) || memcmp(key, ev->user_id, keylen) != 0)
        return reject(&c, "key does not match %s.userId", member);
    return 0;
}

bool ev_utf8_valid(const void *s, size_t len)
{
    return utf8_valid(s, len);
}
