#include "util/common.h"

#include <openssl/x509.h>

#include "sysextd/verify.h"
#include "util/fs.h"
#include "util/hex.h"
#include "util/report.h"

#ifdef SXD_HAVE_VERIFY
#include "bundle/bundle.h"
#include "codesign/identity.h"
#include "codesign/ticket.h"
#include "codesign/verify_internal.h"
#endif

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void sxd_code_clear(sxd_code *c)
{
    free(c->path);
    free(c->identifier);
    free(c->executable);
    free(c->version);
    free(c->short_version);
    free(c->name);
    free(c->exe_path);
    free(c->team_id);
    free(c->problems);
    if (c->info)
        plist_free(c->info);
    if (c->entitlements)
        plist_free(c->entitlements);
    memset(c, 0, sizeof(*c));
}

const char *sxd_info_str(const sxd_code *c, const char *key)
{
    plist_t n = c->info ? plist_dict_get_item(c->info, key) : NULL;
    if (!n || plist_get_node_type(n) != PLIST_STRING)
        return NULL;
    return plist_get_string_ptr(n, NULL);
}

bool sxd_ent_true(plist_t ents, const char *key)
{
    plist_t n = ents && plist_get_node_type(ents) == PLIST_DICT ? plist_dict_get_item(ents, key)
                                                                 : NULL;
    uint8_t b = 0;
    if (n && plist_get_node_type(n) == PLIST_BOOLEAN)
        plist_get_bool_val(n, &b);
    return b != 0;
}

static sxd_kind kind_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    struct {
        const char *ext;
        sxd_kind k;
    } m[] = {{".app", SXD_KIND_APP}, {".dext", SXD_KIND_DEXT}, {".systemextension", SXD_KIND_SYSEXT}};
    for (size_t i = 0; i < SX_ARRAY_SIZE(m); i++) {
        size_t e = strlen(m[i].ext);
        if (n > e && !strncmp(path + n - e, m[i].ext, e))
            return m[i].k;
    }
    return SXD_KIND_UNKNOWN;
}

int sxd_code_open(const char *path, sxd_code *c)
{
    memset(c, 0, sizeof(*c));
    c->kind = kind_of(path);
#ifdef SXD_HAVE_VERIFY
    sx_bundle *b = NULL;
    int rc = sx_bundle_open(path, &b);
    if (rc < 0)
        return rc;
    c->path = strdup(b->path);
    c->identifier = dup_or_null(b->identifier);
    c->executable = dup_or_null(b->executable);
    c->version = dup_or_null(b->version);
    c->short_version = dup_or_null(b->short_version);
    c->exe_path = dup_or_null(b->exe_path);
    c->info = plist_copy(b->info);
    sx_bundle_free(b);
#else
    /* Built without the bundle subsystem: read the Info.plist ourselves. */
    bool flat = c->kind == SXD_KIND_DEXT;
    _sx_cleanup_free_ char *contents = flat ? strdup(path) : sx_path_join(path, "Contents");
    _sx_cleanup_free_ char *ip = contents ? sx_path_join(contents, "Info.plist") : NULL;
    if (!ip)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (flat && !sx_path_exists(ip)) {
        free(contents);
        contents = sx_path_join(path, "Contents");
        free(ip);
        ip = contents ? sx_path_join(contents, "Info.plist") : NULL;
        if (!ip)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        flat = false;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sx_read_file(ip, 4u << 20, &data, &len);
    if (rc < 0)
        return rc;
    plist_from_memory((const char *)data, (uint32_t)len, &c->info);
    free(data);
    if (!c->info || plist_get_node_type(c->info) != PLIST_DICT) {
        sxd_code_clear(c);
        return sx_err(SYSEXT_EFORMAT, "%s: not a property list dictionary", ip);
    }
    c->path = strdup(path);
    c->identifier = dup_or_null(sxd_info_str(c, "CFBundleIdentifier"));
    c->executable = dup_or_null(sxd_info_str(c, "CFBundleExecutable"));
    c->version = dup_or_null(sxd_info_str(c, "CFBundleVersion"));
    c->short_version = dup_or_null(sxd_info_str(c, "CFBundleShortVersionString"));
    if (c->executable) {
        _sx_cleanup_free_ char *dir = flat ? strdup(contents) : sx_path_join(contents, "MacOS");
        c->exe_path = dir ? sx_path_join(dir, c->executable) : NULL;
    }
#endif
    const char *name = sxd_info_str(c, "CFBundleDisplayName");
    if (!name)
        name = sxd_info_str(c, "CFBundleName");
    if (!name)
        name = c->identifier;
    c->name = dup_or_null(name);
    if (!c->path) {
        sxd_code_clear(c);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    return 0;
}

int sxd_code_verify(sxd_code *c, const char *const *trust, size_t n_trust, bool deep)
{
#ifdef SXD_HAVE_VERIFY
    sysext_verify_options o = SYSEXT_VERIFY_OPTIONS_INIT;
    o.strict = 1;
    o.deep = deep;
    o.trust = trust;
    o.n_trust = n_trust;
    sx_report rep;
    sx_vresult v;
    memset(&v, 0, sizeof(v));
    sx_report_init(&rep);
    int rc = sx_verify_path(c->path, &o, &rep, &v);
    if (rc < 0 && rc != SYSEXT_EINVALID) {
        sx_vresult_free(&v);
        sx_report_free(&rep);
        return rc;
    }
    size_t sig_problems = 0, ent_problems = 0;
    for (size_t i = 0; i < rep.n; i++) {
        if (rep.v[i].sev != SX_SEV_ERROR)
            continue;
        const char *code = rep.v[i].code ? rep.v[i].code : "";
        if (!strcmp(code, "missing-entitlement") || !strcmp(code, "entitlement-missing") ||
            !strcmp(code, "entitlement-wrong-type") || !strcmp(code, "entitlement-not-allowed"))
            ent_problems++;
        else
            sig_problems++;
    }
    c->sig_checked = true;
    c->sig_valid = sig_problems == 0 && v.is_signed;
    c->ents_ok = ent_problems == 0;
    c->adhoc = v.adhoc;
    c->team_id = dup_or_null(v.team_id);
    if (v.has_cdhash)
        sx_hex_encode(v.cdhash, SX_CDHASH_LEN, c->cdhash);
    if (v.entitlements)
        c->entitlements = plist_copy(v.entitlements);
    if (v.chain && sk_X509_num(v.chain) > 0)
        c->developer_id = sx_signer_kind_of(sk_X509_value(v.chain, 0), v.chain) ==
                          SX_SIGNER_DEVELOPER_ID;
    if (rep.n || !v.is_signed) {
        sx_buf t = SX_BUF_INIT;
        if (!v.is_signed && rep.n == 0)
            sx_buf_puts(&t, "code object is not signed at all");
        else
            sx_report_render_text(&rep, &t);
        c->problems = sx_buf_steal_str(&t);
        /* One line is enough in a protocol reply. */
        char *nl = c->problems ? strchr(c->problems, '\n') : NULL;
        if (nl)
            *nl = '\0';
    }
    sx_vresult_free(&v);
    sx_report_free(&rep);
    return 0;
#else
    SX_UNUSED(trust);
    SX_UNUSED(n_trust);
    SX_UNUSED(deep);
    c->sig_checked = true;
    c->sig_valid = false;
    c->ents_ok = false;
    c->problems = strdup("signature verification is not built into this sysextd");
    return 0;
#endif
}

/* A ticket from this notary that lists the code's cdhash, stapled to the code itself or to
 * the app that carries it (the app's ticket covers every cdhash of its submission, embedded
 * extensions included). The ticket is signed, so reading it from the app's live folder is as
 * good as from our copy: it can only vouch for the cdhash we computed from the copy. */
static bool staple_covers(const char *bundle, X509 *cert, const sx_ticket_entry *e)
{
    uint8_t *data = NULL;
    size_t len = 0;
    sx_ticket t;
    memset(&t, 0, sizeof(t));
    bool ok = bundle && sx_ticket_staple_read(bundle, &data, &len) == 0 &&
              sx_ticket_verify(data, len, bundle, cert, &t) == 0 &&
              sx_ticket_covers(&t, e->hash_type, e->cdhash);
    sx_ticket_free(&t);
    free(data);
    return ok;
}

bool sxd_ticket_valid(const sxd_code *c, const sxd_code *app, const char *notary_cert)
{
    X509 *cert = NULL;
    sx_ticket_entry e;
    if (!notary_cert || sx_ticket_load_cert(notary_cert, &cert) < 0)
        return false;
    bool ok = sx_ticket_code_cdhash(c->path, &e) == 0 &&
              (staple_covers(c->path, cert, &e) || (app && staple_covers(app->path, cert, &e)));
    X509_free(cert);
    return ok;
}
