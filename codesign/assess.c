/* Stapled-ticket validation and Gatekeeper-like assessment (sysext/notary.h). */
#include "util/common.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <time.h>

#include "codesign/identity.h"
#include "codesign/nested.h"
#include "codesign/ticket.h"
#include "codesign/verify_internal.h"
#include "libsysext/src/notary_client.h"
#include "sysext/notary.h"
#include "util/fs.h"
#include "util/hex.h"

int sx_ticket_code_cdhash(const char *path, sx_ticket_entry *out)
{
    SX_ASSERT_ARG(path && out);
    sx_sigfiles s;
    memset(&s, 0, sizeof s);
    int rc = sx_nested_load(path, &s);
    if (rc < 0)
        return rc;
    const sx_cd *best = sx_sigfiles_best_cd(&s);
    if (!best)
        rc = sx_err(SYSEXT_ENOTFOUND, "%s: code object is not signed at all", path);
    else if ((rc = sx_cd_cdhash(best, out->cdhash)) == 0)
        out->hash_type = best->hash_type;
    sx_sigfiles_free(&s);
    return rc;
}

static json_object *ticket_json(const sx_ticket *t)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int(t->version));
    json_object_object_add(o, "team_id", json_object_new_string(t->team_id));
    json_object_object_add(o, "issued", json_object_new_int64(t->issued));
    char kid[2 * SX_TICKET_KEY_ID_LEN + 1];
    sx_hex_encode(t->key_id, sizeof t->key_id, kid);
    json_object_object_add(o, "notary_key_id", json_object_new_string(kid));
    json_object *ids = json_object_new_array();
    for (size_t i = 0; i < t->n_bundle_ids; i++)
        json_object_array_add(ids, json_object_new_string(t->bundle_ids[i]));
    json_object_object_add(o, "bundle_ids", ids);
    json_object *hs = json_object_new_array();
    for (size_t i = 0; i < t->n_entries; i++) {
        char h[2 * SX_CDHASH_LEN + 1];
        sx_hex_encode(t->entries[i].cdhash, SX_CDHASH_LEN, h);
        json_object *e = json_object_new_object();
        json_object_object_add(e, "hash_type", json_object_new_int(t->entries[i].hash_type));
        json_object_object_add(e, "cdhash", json_object_new_string(h));
        json_object_array_add(hs, e);
    }
    json_object_object_add(o, "cdhashes", hs);
    return o;
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)t);
}

/* What checking a bundle's stapled ticket found. */
typedef struct staple_check {
    bool present, valid;
    char reason[1024];
    sx_ticket t;
} staple_check;

static void set_reason(staple_check *c, const char *fmt, ...) SX_PRINTF(2, 3);
static void set_reason(staple_check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
}

/* Check the stapled ticket of `path` against `cert` and `code`. Returns < 0 only for hard
 * errors (I/O, memory); an absent or bad ticket is reported in `c`. */
static int check_staple(const char *path, X509 *cert, const sx_ticket_entry *code, staple_check *c)
{
    memset(c, 0, sizeof *c);
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sx_is_dir(path) ? sx_ticket_staple_read(path, &data, &len) : SYSEXT_ENOTFOUND;
    if (rc == SYSEXT_ENOTFOUND) {
        set_reason(c, "no stapled ticket");
        return 0;
    }
    if (rc == SYSEXT_ELIMIT || rc == SYSEXT_EFORMAT) {
        c->present = true;
        set_reason(c, "stapled ticket unreadable: %s", sx_errmsg());
        return 0;
    }
    if (rc < 0)
        return rc;
    c->present = true;
    _sx_cleanup_free_ char *where = sx_ticket_staple_path(path);
    rc = sx_ticket_verify(data, len, where ? where : "ticket", cert, &c->t);
    free(data);
    if (rc == SYSEXT_EFORMAT || rc == SYSEXT_EUNSUPPORTED || rc == SYSEXT_ESIGNATURE) {
        set_reason(c, "stapled ticket rejected: %s", sx_errmsg());
        return 0;
    }
    if (rc < 0)
        return rc;
    char hex[2 * SX_CDHASH_LEN + 1];
    sx_hex_encode(code->cdhash, SX_CDHASH_LEN, hex);
    if (!sx_ticket_covers(&c->t, code->hash_type, code->cdhash)) {
        set_reason(c, "stapled ticket does not cover this code (cdhash %s; code modified after "
                   "notarization?)", hex);
        return 0;
    }
    char when[32];
    iso_time(c->t.issued, when);
    set_reason(c, "ticket for team %s issued %s covers cdhash %s", c->t.team_id, when, hex);
    c->valid = true;
    return 0;
}

static int render(json_object *o, const char *path, bool ok, const char *yes, const char *no,
                  const char *source, const char *reason, unsigned flags, char **out_text)
{
    sx_buf b = SX_BUF_INIT;
    int rc;
    if (flags & SYSEXT_OUTPUT_JSON)
        rc = sx_buf_puts(&b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                  JSON_C_TO_STRING_SPACED));
    else
        rc = sx_buf_printf(&b, "%s: %s\n%s%s%sreason: %s\n", path, ok ? yes : no,
                           source ? "source=" : "", source ? source : "", source ? "\n" : "",
                           reason);
    if (rc < 0) {
        sx_buf_free(&b);
        return rc;
    }
    *out_text = sx_buf_steal_str(&b);
    return 0;
}

int sysext_staple_validate(const char *path, const char *notary_cert, unsigned flags,
                           char **out_text)
{
    SX_ASSERT_ARG(path && notary_cert && out_text);
    *out_text = NULL;
    if (!sx_path_exists(path))
        return sx_err(SYSEXT_ENOTFOUND, "%s: no such file or directory", path);
    X509 *cert = NULL;
    int rc = sx_ticket_load_cert(notary_cert, &cert);
    if (rc < 0)
        return rc;
    staple_check c;
    memset(&c, 0, sizeof c);
    sx_ticket_entry code;
    rc = sx_ticket_code_cdhash(path, &code);
    if (rc == SYSEXT_ENOTFOUND || rc == SYSEXT_EFORMAT) {
        set_reason(&c, "%s", sx_errmsg());
        rc = 0;
    } else if (rc == 0) {
        rc = check_staple(path, cert, &code, &c);
    }
    X509_free(cert);
    if (rc < 0) {
        sx_ticket_free(&c.t);
        return rc;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "valid", json_object_new_boolean(c.valid));
    json_object_object_add(o, "reason", json_object_new_string(c.reason));
    if (c.t.team_id)
        json_object_object_add(o, "ticket", ticket_json(&c.t));
    rc = render(o, path, c.valid, "the stapled ticket is valid", "the stapled ticket is not valid",
                NULL, c.reason, flags, out_text);
    json_object_put(o);
    sx_ticket_free(&c.t);
    if (rc < 0)
        return rc;
    return c.valid ? 0 : sx_err(SYSEXT_EINVALID, "%s: %s", path, c.reason);
}

int sysext_staple_ticket(const char *path, const uint8_t *ticket, size_t len)
{
    SX_ASSERT_ARG(path && ticket);
    sx_ticket t;
    int rc = sx_ticket_parse(ticket, len, "ticket", &t);
    sx_ticket_free(&t);
    return rc < 0 ? rc : sx_ticket_staple_write(path, ticket, len);
}

int sysext_assess(const char *path, const sysext_assess_options *opts, char **out_text)
{
    SX_ASSERT_ARG(path && opts && out_text);
    *out_text = NULL;
    if (opts->version != SYSEXT_ASSESS_OPTIONS_VERSION)
        return sx_err(SYSEXT_EINVAL, "sysext_assess: unsupported options version %u", opts->version);
    if (!sx_path_exists(path))
        return sx_err(SYSEXT_ENOTFOUND, "%s: no such file or directory", path);
    X509 *cert = NULL;
    int rc;
    if (opts->notary_cert && (rc = sx_ticket_load_cert(opts->notary_cert, &cert)) < 0)
        return rc;

    sysext_verify_options vo = SYSEXT_VERIFY_OPTIONS_INIT;
    vo.strict = 1;
    vo.deep = 1;
    vo.trust = opts->trust;
    vo.n_trust = opts->n_trust;
    sx_report report;
    sx_vresult v;
    memset(&v, 0, sizeof v);
    sx_report_init(&report);
    staple_check c;
    memset(&c, 0, sizeof c);
    char reason[1200] = "";
    const char *source = "no usable signature";
    bool ok = false, devid = false;
    char hex[2 * SX_CDHASH_LEN + 1] = "";

    rc = sx_verify_path(path, &vo, &report, &v);
    if (rc < 0 && rc != SYSEXT_EINVALID)
        goto out;
    rc = 0;
    if (v.has_cdhash)
        sx_hex_encode(v.cdhash, SX_CDHASH_LEN, hex);
    if (sx_report_count(&report, SX_SEV_ERROR) || !v.valid) {
        const sx_diag *d = NULL;
        for (size_t i = 0; i < report.n && !d; i++)
            if (report.v[i].sev == SX_SEV_ERROR)
                d = &report.v[i];
        snprintf(reason, sizeof reason, "signature not valid: %s%s%s",
                 d && d->path ? d->path : "", d && d->path ? ": " : "",
                 d ? d->message : "verification failed");
        goto verdict;
    }
    if (v.adhoc || !v.is_signed) {
        snprintf(reason, sizeof reason, "not signed by a developer identity (ad hoc signature)");
        goto verdict;
    }
    if (!v.chain_trusted) {
        snprintf(reason, sizeof reason, "the signing certificate does not chain to a trusted root");
        goto verdict;
    }
    X509 *leaf = v.chain && sk_X509_num(v.chain) > 0 ? sk_X509_value(v.chain, 0) : NULL;
    devid = leaf && sx_cert_has_ext(leaf, SX_OID_APPLE_DEVID_APP);
    if (!devid) {
        source = "Developer";
        ok = true;
        snprintf(reason, sizeof reason, "valid signature by a trusted developer identity (team "
                 "%s); not Developer ID, so no notarization is required", v.team_id ? v.team_id : "-");
        goto verdict;
    }
    source = "Unnotarized Developer ID";
    if (!cert) {
        snprintf(reason, sizeof reason, "Developer ID code needs a notarization ticket, and no "
                 "notary certificate was given");
        goto verdict;
    }
    sx_ticket_entry code;
    if ((rc = sx_ticket_code_cdhash(path, &code)) < 0)
        goto out;
    if ((rc = check_staple(path, cert, &code, &c)) < 0)
        goto out;
    if (opts->online_url) {
        uint8_t *t = NULL;
        size_t tl = 0;
        bool revoked = false;
        rc = sx_notary_fetch_ticket(opts->online_url, code.cdhash, 0, &t, &tl, &revoked);
        if (rc < 0 && rc != SYSEXT_ENOTFOUND)
            goto out;
        if (rc == 0 && revoked) {
            free(t);
            rc = 0;
            source = "Revoked Developer ID";
            snprintf(reason, sizeof reason, "the notary at %s revoked the ticket for this code "
                     "(cdhash %s)", opts->online_url, hex);
            goto verdict;
        }
        if (rc == 0 && !c.valid) {
            /* No usable stapled ticket: the online one counts if it is valid and covers. */
            staple_check on;
            memset(&on, 0, sizeof on);
            int vr = sx_ticket_verify(t, tl, "online ticket", cert, &on.t);
            if (vr == 0 && sx_ticket_covers(&on.t, code.hash_type, code.cdhash)) {
                char when[32];
                iso_time(on.t.issued, when);
                sx_ticket_free(&c.t);
                c = on;
                c.valid = true;
                snprintf(c.reason, sizeof c.reason, "online ticket for team %s issued %s covers "
                         "cdhash %s", c.t.team_id, when, hex);
            } else {
                snprintf(c.reason, sizeof c.reason, "the online ticket is not valid for this code: %s",
                         vr < 0 ? sx_errmsg() : "it does not cover the cdhash");
                sx_ticket_free(&on.t);
            }
        } else if (rc == SYSEXT_ENOTFOUND && !c.valid) {
            snprintf(c.reason, sizeof c.reason, "no stapled ticket and the notary at %s has none "
                     "for cdhash %s", opts->online_url, hex);
        }
        free(t);
        rc = 0;
    }
    if (c.valid) {
        source = "Notarized Developer ID";
        ok = true;
        snprintf(reason, sizeof reason, "Developer ID signature of team %s is valid and "
                 "notarized: %s", v.team_id ? v.team_id : "-", c.reason);
    } else {
        snprintf(reason, sizeof reason, "Developer ID code is not notarized: %s", c.reason);
    }

verdict:;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    json_object_object_add(o, "accepted", json_object_new_boolean(ok));
    json_object_object_add(o, "source", json_object_new_string(source));
    json_object_object_add(o, "reason", json_object_new_string(reason));
    json_object_object_add(o, "developer_id", json_object_new_boolean(devid));
    if (v.team_id)
        json_object_object_add(o, "team_id", json_object_new_string(v.team_id));
    if (*hex)
        json_object_object_add(o, "cdhash", json_object_new_string(hex));
    if (c.t.team_id)
        json_object_object_add(o, "ticket", ticket_json(&c.t));
    rc = render(o, path, ok, "accepted", "rejected", source, reason, opts->flags, out_text);
    json_object_put(o);
    if (rc == 0 && !ok)
        rc = sx_err(SYSEXT_EREJECTED, "%s: rejected: %s", path, reason);
out:
    X509_free(cert);
    sx_ticket_free(&c.t);
    sx_vresult_free(&v);
    sx_report_free(&report);
    return rc;
}
