/* Verifying signed code the way `codesign --verify [--strict] [--deep]` decides (reference
 * section 9), reporting every failure with its path and codesign's wording, plus the
 * system-extension rules: team IDs of embedded extensions and entitlements per kind. */
#include "util/common.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/bundle.h"
#include "bundle/schema.h"
#include "codesign/cms.h"
#include "codesign/codedirectory.h"
#include "codesign/entitlements.h"
#include "codesign/nested.h"
#include "codesign/requirement.h"
#include "codesign/seal.h"
#include "codesign/sigfiles.h"
#include "codesign/superblob.h"
#include "codesign/verify_internal.h"
#include "sysext/codesign.h"
#include "util/fs.h"
#include "util/hex.h"

#define SX_MACHO_MAX (1u << 30)
#define SX_MAX_DEPTH 8

#define MSG_UNSIGNED "code object is not signed at all"
#define MSG_SIG_FAILED "invalid signature (code or signature have been modified)"
#define MSG_SIG_FORMAT "invalid or unsupported format for signature"
#define MSG_INFO_FAILED "invalid Info.plist (plist or signature have been modified)"
#define MSG_RESDIR_FAILED "invalid resource directory (directory or signature have been modified)"
#define MSG_NO_RESOURCES "code has no resources but signature indicates they must be present"
#define MSG_BAD_TEAM "a Team Identifier is wrong or inappropriate"
#define MSG_REQ_FAILED "code failed to satisfy specified code requirement(s)"
#define MSG_UNSEALED_ROOT "unsealed contents present in the bundle root"
#define MSG_REGULAR_FILE "the main executable or Info.plist must be a regular file (no symlinks, etc.)"
#define MSG_NESTED_BAD "nested code is modified or invalid"

typedef struct vctx {
    const sysext_verify_options *o;
    sx_trust *trust;
    sx_ent_catalog *catalog;
    sx_report *report;
    unsigned depth;
} vctx;

/* Everything a caller may want to know about one verified piece of code. */
void sx_vresult_free(sx_vresult *v)
{
    free(v->identifier);
    free(v->team_id);
    free(v->format);
    if (v->chain)
        sk_X509_pop_free(v->chain, X509_free);
    plist_free(v->entitlements);
    if (v->nested)
        json_object_put(v->nested);
    memset(v, 0, sizeof(*v));
}

static void problem(vctx *c, const char *code, const char *shown, const char *key, const char *fmt,
                    ...) SX_PRINTF(5, 6);
static void problem(vctx *c, const char *code, const char *shown, const char *key, const char *fmt,
                    ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    sx_report_add(c->report, SX_SEV_ERROR, code, shown, key, "%s", msg);
}

/* Hash [off, off+len) of an open file with the CD's page size and compare every code slot. */
static void check_code_pages(vctx *c, const sx_cd *cd, const uint8_t *data, uint64_t len,
                             const char *shown)
{
    if (cd->code_limit > len) {
        problem(c, "code-modified", shown, NULL, "%s: code limit %llu is past the end (%llu bytes)",
                MSG_SIG_FAILED, (unsigned long long)cd->code_limit, (unsigned long long)len);
        return;
    }
    uint64_t page = cd->page_size_log2 ? (uint64_t)1 << cd->page_size_log2 : cd->code_limit;
    for (uint32_t i = 0; i < cd->n_code; i++) {
        uint64_t off = (uint64_t)i * page;
        uint64_t n = cd->code_limit - off < page ? cd->code_limit - off : page;
        uint8_t h[SX_HASH_MAX_SIZE];
        if (sx_hash(cd->hash_type, data + off, (size_t)n, h) < 0 ||
            memcmp(h, sx_cd_code_slot(cd, i), cd->hash_size) != 0) {
            char key[48];
            snprintf(key, sizeof(key), "page %u", i);
            problem(c, "code-modified", shown, key, "%s: %s code slot %u does not match",
                    MSG_SIG_FAILED, sx_hash_name(cd->hash_type), i);
        }
    }
}

/* One special slot against the bytes of its component (NULL = component absent). */
static void check_special(vctx *c, const sx_cd *cd, unsigned slot, const uint8_t *data, size_t len,
                          bool present, const char *shown, const char *name, const char *code,
                          const char *msg)
{
    const uint8_t *want = sx_cd_special(cd, slot);
    bool bound = want && !sx_cd_special_is_zero(cd, slot);
    if (!bound) {
        if (present && slot != SX_SLOT_INFO)
            problem(c, code, shown, name, "%s: %s is present but not bound by the signature", msg,
                    name);
        else if (present && slot == SX_SLOT_INFO)
            problem(c, code, shown, name, "%s: Info.plist is not bound by the signature", msg);
        return;
    }
    if (!present) {
        problem(c, code, shown, name, "%s: %s is missing", msg, name);
        return;
    }
    uint8_t h[SX_HASH_MAX_SIZE];
    if (sx_hash(cd->hash_type, data, len, h) < 0 || memcmp(h, want, cd->hash_size) != 0)
        problem(c, code, shown, name, "%s: %s hash of %s does not match", msg,
                sx_hash_name(cd->hash_type), name);
}

/* CMS: the signature over the slot-0 CD, Apple's cdhash attributes against the CDs actually
 * present, the chain to a trusted anchor, and the team ID of an Apple-style leaf. */
static void check_cms(vctx *c, const sx_sigfiles *s, const char *shown, sx_vresult *v)
{
    const sx_cd *cd0 = &s->cd[0];
    bool adhoc = cd0->flags & SX_CS_ADHOC;
    v->adhoc = adhoc;
    if (adhoc) {
        if (s->cms.present && s->cms.len > 0)
            problem(c, "signature-invalid", shown, SX_SIGFILE_CMS,
                    "%s: an ad-hoc signature carries a CMS blob", MSG_SIG_FORMAT);
        return;
    }
    if (!s->cms.present || s->cms.len == 0) {
        problem(c, "signature-invalid", shown, SX_SIGFILE_CMS,
                "%s: the CodeDirectory is not ad-hoc but there is no CMS signature", MSG_SIG_FAILED);
        return;
    }
    sx_cms_info info;
    memset(&info, 0, sizeof(info));
    int r = sx_cms_verify(s->cms.data, s->cms.len, s->cd_blob[0].data, s->cd[0].len, c->trust,
                          &info);
    if (r < 0) {
        problem(c, "cms-invalid", shown, SX_SIGFILE_CMS, "%s: %s", MSG_SIG_FAILED,
                sysext_last_error());
        sx_cms_info_free(&info);
        return;
    }
    /* Apple's cdhash attributes must describe exactly the CDs present, in ascending type. */
    sx_cms_cd cds[SX_MAX_CDS];
    uint8_t full[SX_MAX_CDS][SX_HASH_MAX_SIZE];
    size_t n = 0;
    for (unsigned t = 1; t <= 4; t++)
        for (size_t j = 0; j < SX_MAX_CDS; j++) {
            size_t fl = 0;
            if (s->cd_blob[j].present && s->cd[j].hash_type == t &&
                sx_cd_full_hash(&s->cd[j], full[n], &fl) == 0) {
                cds[n] = (sx_cms_cd){(uint8_t)t, full[n], fl};
                n++;
            }
        }
    if (sx_cms_check_cdhashes(&info, cds, n) < 0)
        problem(c, "cms-cdhashes", shown, SX_SIGFILE_CMS, "%s: %s", MSG_SIG_FAILED,
                sysext_last_error());
    if (!info.chain_trusted)
        problem(c, "untrusted", shown, SX_SIGFILE_CMS,
                "the signing certificate chain is not trusted: %s",
                info.trust_error ? info.trust_error
                                 : (c->o->n_trust ? "no trusted anchor" : "no trust anchors given"));
    char *leaf_team = info.leaf ? sx_cert_team_id(info.leaf) : NULL;
    if (cd0->team_id && leaf_team && strcmp(cd0->team_id, leaf_team) != 0)
        problem(c, "team-mismatch", shown, NULL,
                "%s: the CodeDirectory says team '%s', the signing certificate '%s'", MSG_BAD_TEAM,
                cd0->team_id, leaf_team);
    free(leaf_team);
    v->signing_time = info.signing_time;
    v->chain = info.chain;
    info.chain = NULL;
    v->anchor_is_apple = info.anchor_is_apple;
    v->chain_trusted = info.chain_trusted;
    sx_cms_info_free(&info);
}

/* The designated requirement (stored, or the implicit cdhash one for ad-hoc code). */
static void check_designated(vctx *c, const sx_sigfiles *s, const char *shown, sx_vresult *v,
                             plist_t info_plist)
{
    const uint8_t *dr = NULL;
    size_t dr_len = 0;
    if (!s->reqs.present)
        return;
    int r = sx_reqset_find(s->reqs.data, s->reqs.len, SX_REQ_DESIGNATED, &dr, &dr_len);
    if (r == SYSEXT_ENOTFOUND)
        return;
    if (r < 0) {
        problem(c, "requirements-invalid", shown, SX_SIGFILE_REQS,
                "invalid or corrupted code requirement(s): %s", sysext_last_error());
        return;
    }
    uint8_t hashes[SX_MAX_CDS][SX_CDHASH_LEN], types[SX_MAX_CDS];
    const uint8_t *ptrs[SX_MAX_CDS];
    size_t n = sx_sigfiles_cdhashes(s, hashes, types);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = hashes[i];
    sx_req_context ctx = {
        .identifier = s->cd[0].identifier,
        .cdhashes = ptrs,
        .n_cdhashes = n,
        .chain = v->chain,
        .anchor_is_apple = v->anchor_is_apple,
        .anchor_trusted = v->chain_trusted,
        .developer_anchor = v->chain_trusted,
        .info_plist = info_plist,
        .entitlements = v->entitlements,
    };
    r = sx_req_evaluate(dr, dr_len, &ctx);
    if (r < 0)
        problem(c, "requirement-failed", shown, SX_SIGFILE_REQS, "%s: %s", MSG_REQ_FAILED,
                sysext_last_error());
    else
        v->satisfies_dr = true;
}

static const char *const components[] = {
    SX_SIGFILE_CD,      SX_SIGFILE_REQS,     SX_SIGFILE_RESOURCES, SX_SIGFILE_ENTS,
    SX_SIGFILE_ENTS_DER, SX_SIGFILE_CMS,     "CodeRequirements-1", "CodeRequirements-2",
    "CodeRequirements-3", "CodeRequirements-4", "CodeRequirements-5",
};

/* --strict structure: the deep bundle root holds only Contents (and Finder's dotfiles), and
 * _CodeSignature holds only components. */
static void check_strict_structure(vctx *c, const sx_bundle *b, const char *sigdir,
                                   const char *shown)
{
    DIR *d;
    struct dirent *e;
    if (!b->flat && (d = opendir(b->path))) {
        while ((e = readdir(d))) {
            const char *n = e->d_name;
            if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "Contents") ||
                !strcmp(n, ".DS_Store") || !strcmp(n, ".LSOverride") || !strcmp(n, "Icon\r") ||
                !strcmp(n, ".SoftwareDepot.tracking"))
                continue;
            problem(c, "unsealed-root", shown, n, "%s", MSG_UNSEALED_ROOT);
        }
        closedir(d);
    }
    if ((d = opendir(sigdir))) {
        while ((e = readdir(d))) {
            bool known = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
            for (size_t i = 0; !known && i < SX_ARRAY_SIZE(components); i++)
                known = !strcmp(e->d_name, components[i]);
            if (!known)
                problem(c, "unsealed-root", shown, e->d_name, "%s: in _CodeSignature",
                        MSG_UNSEALED_ROOT);
        }
        closedir(d);
    }
    struct stat st;
    if (b->exe_path && lstat(b->exe_path, &st) == 0 && !S_ISREG(st.st_mode))
        problem(c, "not-regular-file", shown, b->executable, "%s", MSG_REGULAR_FILE);
    if (lstat(b->info_path, &st) == 0 && !S_ISREG(st.st_mode))
        problem(c, "not-regular-file", shown, "Info.plist", "%s", MSG_REGULAR_FILE);
}

static int verify_code(vctx *c, const char *path, const char *shown, sx_vresult *v);

typedef struct nested_payload {
    vctx *c;
    const char *bundle_path;
    const char *shown;
    json_object *nested;
} nested_payload;

/* Nested code recorded in the seal: it must verify on its own (fully with --deep) and satisfy
 * the requirement the seal recorded for it. */
static int check_nested(const char *path, const uint8_t cdhash[20], const char *requirement,
                        void *payload)
{
    nested_payload *np = payload;
    vctx *c = np->c;
    const char *rel = path;
    size_t bl = strlen(np->bundle_path);
    if (!strncmp(path, np->bundle_path, bl) && path[bl] == '/')
        rel = path + bl + 1;
    _sx_cleanup_free_ char *shown = NULL;
    if (asprintf(&shown, "%s/%s", np->shown, rel) < 0)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    sx_vresult v;
    memset(&v, 0, sizeof(v));
    int r = verify_code(c, path, shown, &v);
    if (r < 0 && r != SYSEXT_EINVALID) {
        sx_vresult_free(&v);
        return r;
    }
    bool ok = v.valid;
    /* Where the seal recorded a cdhash, the nested code must still be that code. */
    if (ok && cdhash && c->o->deep) {
        sx_sigfiles s;
        bool same = false;
        if (sx_nested_load(path, &s) == 0) {
            uint8_t hashes[SX_MAX_CDS][SX_CDHASH_LEN], types[SX_MAX_CDS];
            size_t n = sx_sigfiles_cdhashes(&s, hashes, types);
            for (size_t i = 0; i < n && !same; i++)
                same = !memcmp(hashes[i], cdhash, SX_CDHASH_LEN);
            sx_sigfiles_free(&s);
        }
        if (!same) {
            problem(c, "nested-invalid", shown, NULL,
                    "%s: its cdhash is not the one the seal recorded", MSG_NESTED_BAD);
            ok = false;
        }
    }
    if (ok && requirement) {
        sx_buf blob = SX_BUF_INIT;
        sx_sigfiles s;
        r = sx_req_compile(requirement, &blob);
        if (r == 0 && (r = sx_nested_load(path, &s)) == 0) {
            uint8_t hashes[SX_MAX_CDS][SX_CDHASH_LEN], types[SX_MAX_CDS];
            const uint8_t *ptrs[SX_MAX_CDS];
            size_t n = sx_sigfiles_cdhashes(&s, hashes, types);
            for (size_t i = 0; i < n; i++)
                ptrs[i] = hashes[i];
            sx_req_context ctx = {.identifier = s.cd[0].identifier,
                                  .cdhashes = ptrs,
                                  .n_cdhashes = n,
                                  .chain = v.chain,
                                  .anchor_is_apple = v.anchor_is_apple,
                                  .anchor_trusted = v.chain_trusted,
                                  .developer_anchor = v.chain_trusted,
                                  .entitlements = v.entitlements};
            r = sx_req_evaluate(blob.data, blob.len, &ctx);
            sx_sigfiles_free(&s);
        }
        sx_buf_free(&blob);
        if (r < 0) {
            problem(c, "nested-invalid", shown, NULL, "%s: the sealed requirement fails: %s",
                    MSG_NESTED_BAD, sysext_last_error());
            ok = false;
        }
    } else if (!ok) {
        problem(c, "nested-invalid", shown, NULL, "%s", MSG_NESTED_BAD);
    }
    sx_vresult_free(&v);
    return 0;
}

/* Entitlements a kind must carry, and which ones it may carry (schemas/entitlements.json).
 * Only the kinds the catalogue knows; a framework or plug-in has no rules there. */
static void check_entitlements(vctx *c, const sx_bundle *b, const sx_vresult *v, bool embeds,
                               const char *shown)
{
    if (b->kind == SX_BUNDLE_UNKNOWN)
        return;
    plist_t empty = v->entitlements ? NULL : plist_new_dict();
    sx_ent_check(c->catalog, v->entitlements ? v->entitlements : empty, b->kind, embeds, shown,
                 c->report);
    plist_free(empty);
}

/* The bundle's embedded system extensions, each a signed bundle of its own, with the team
 * rule: the app's team unless the extension is marked redistributable. */
static int verify_embedded(vctx *c, const sx_bundle *b, const char *shown, sx_vresult *v,
                           bool *embeds)
{
    _sx_cleanup_free_ char *dir = sx_path_join(b->contents, "Library/SystemExtensions");
    if (!dir)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        *embeds = true;
        if (!c->o->deep)
            continue;
        _sx_cleanup_free_ char *p = sx_path_join(dir, e->d_name);
        _sx_cleanup_free_ char *s = NULL;
        if (!p || asprintf(&s, "%s/%s/Library/SystemExtensions/%s", shown,
                           b->flat ? "" : "Contents", e->d_name) < 0) {
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        sx_vresult ev;
        memset(&ev, 0, sizeof(ev));
        r = verify_code(c, p, s, &ev);
        if (r == SYSEXT_EINVALID)
            r = 0;
        if (r == 0 && ev.is_signed && !ev.adhoc) {
            plist_t red = ev.entitlements
                              ? plist_dict_get_item(ev.entitlements,
                                                    "com.apple.developer.system-extension.redistributable")
                              : NULL;
            uint8_t redistributable = 0;
            if (red && plist_get_node_type(red) == PLIST_BOOLEAN)
                plist_get_bool_val(red, &redistributable);
            if (!redistributable && (!ev.team_id || !v->team_id || strcmp(ev.team_id, v->team_id)))
                problem(c, "team-mismatch", s, NULL,
                        "%s: the embedded system extension's team ID '%s' differs from the app's "
                        "'%s' and it is not marked com.apple.developer.system-extension."
                        "redistributable",
                        MSG_BAD_TEAM, ev.team_id ? ev.team_id : "(none)",
                        v->team_id ? v->team_id : "(none)");
        }
        if (r == 0 && v->nested)
            json_object_array_add(v->nested, sx_vresult_to_json(&ev, s));
        sx_vresult_free(&ev);
    }
    closedir(d);
    return r;
}

static int verify_bundle(vctx *c, const char *path, const char *shown, sx_vresult *v)
{
    sx_bundle *b = NULL;
    sx_sigfiles s;
    memset(&s, 0, sizeof(s));
    _sx_cleanup_free_ char *sigdir = NULL;
    _sx_cleanup_free_ uint8_t *info = NULL, *exe = NULL;
    size_t info_len = 0, exe_len = 0;
    int r = sx_bundle_open_any(path, &b);
    if (r < 0) {
        if (r == SYSEXT_ENOMEM)
            return r;
        problem(c, "bundle-format", shown, NULL,
                "bundle format unrecognized, invalid, or unsuitable: %s", sysext_last_error());
        return 0;
    }
    v->format = strdup(b->kind == SX_BUNDLE_APP ? "app bundle with generic" : "bundle with generic");
    sigdir = sx_path_join(b->contents, "_CodeSignature");
    if (!sigdir || !v->format) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    r = sx_sigfiles_load(sigdir, &s);
    if (r == SYSEXT_ENOTFOUND) {
        problem(c, "unsigned", shown, NULL, MSG_UNSIGNED);
        r = 0;
        goto out;
    }
    if (r < 0) {
        if (r == SYSEXT_ENOMEM)
            goto out;
        problem(c, "signature-invalid", shown, NULL, "%s: %s", MSG_SIG_FORMAT, sysext_last_error());
        r = 0;
        goto out;
    }
    v->is_signed = true;
    v->identifier = strdup(s.cd[0].identifier);
    v->team_id = s.cd[0].team_id ? strdup(s.cd[0].team_id) : NULL;
    const sx_cd *best = sx_sigfiles_best_cd(&s);
    if (best && sx_cd_cdhash(best, v->cdhash) == 0)
        v->has_cdhash = true;
    if (s.ents.present && s.ents.len > 8 &&
        sx_ent_parse_xml_blob(s.ents.data, s.ents.len, &v->entitlements) < 0)
        problem(c, "entitlements-invalid", shown, SX_SIGFILE_ENTS, "invalid entitlement plist: %s",
                sysext_last_error());

    check_cms(c, &s, shown, v);

    /* Special slots, every CD. */
    if ((r = sx_read_file(b->info_path, SX_INFO_PLIST_MAX, &info, &info_len)) < 0) {
        problem(c, "info-plist", shown, "Info.plist", "%s: %s", MSG_INFO_FAILED, sysext_last_error());
        r = 0;
    }
    for (size_t i = 0; i < SX_MAX_CDS; i++) {
        if (!s.cd_blob[i].present)
            continue;
        const sx_cd *cd = &s.cd[i];
        check_special(c, cd, SX_SLOT_INFO, info, info_len, info != NULL, shown, "Info.plist",
                      "info-plist-modified", MSG_INFO_FAILED);
        check_special(c, cd, SX_SLOT_REQUIREMENTS, s.reqs.data, s.reqs.len, s.reqs.present, shown,
                      SX_SIGFILE_REQS, "signature-modified", MSG_SIG_FAILED);
        check_special(c, cd, SX_SLOT_RESOURCES, s.resources.data, s.resources.len,
                      s.resources.present, shown, SX_SIGFILE_RESOURCES, "resources-modified",
                      MSG_RESDIR_FAILED);
        check_special(c, cd, SX_SLOT_ENTITLEMENTS, s.ents.data, s.ents.len, s.ents.present, shown,
                      SX_SIGFILE_ENTS, "signature-modified", MSG_SIG_FAILED);
        check_special(c, cd, SX_SLOT_ENTITLEMENTS_DER, s.ents_der.data, s.ents_der.len,
                      s.ents_der.present, shown, SX_SIGFILE_ENTS_DER, "signature-modified",
                      MSG_SIG_FAILED);
    }

    /* The main executable: every code slot of every CD. */
    if (!b->exe_path) {
        problem(c, "bundle-format", shown, "CFBundleExecutable",
                "bundle format unrecognized, invalid, or unsuitable: no CFBundleExecutable");
    } else if ((r = sx_read_file(b->exe_path, SX_MACHO_MAX, &exe, &exe_len)) < 0) {
        if (r == SYSEXT_ENOMEM)
            goto out;
        problem(c, "code-modified", shown, b->exe_relpath, "%s: %s", MSG_SIG_FAILED,
                sysext_last_error());
        r = 0;
    } else {
        for (size_t i = 0; i < SX_MAX_CDS; i++) {
            if (!s.cd_blob[i].present)
                continue;
            check_code_pages(c, &s.cd[i], exe, exe_len, shown);
            if (c->o->strict && s.cd[i].code_limit != exe_len)
                problem(c, "signature-format", shown, b->exe_relpath,
                        "%s: the code limit %llu does not cover the whole executable (%zu bytes)",
                        MSG_SIG_FORMAT, (unsigned long long)s.cd[i].code_limit, exe_len);
        }
    }

    /* Resources. */
    const char *exe_rel = b->exe_path ? b->exe_path + strlen(b->contents) : NULL;
    while (exe_rel && *exe_rel == '/')
        exe_rel++;
    if (!s.resources.present) {
        problem(c, "resources-missing", shown, NULL, "%s", MSG_NO_RESOURCES);
    } else {
        sx_seal_options so = {.bundle_path = b->path, .flat = b->flat, .main_exe_rel = exe_rel};
        nested_payload np = {c, b->path, shown, v->nested};
        sx_report sub;
        sx_report_init(&sub);
        sx_report *outer = c->report;
        c->report = &sub;
        c->depth++;
        r = sx_seal_verify(&so, s.resources.data, s.resources.len, c->o->strict, check_nested, &np,
                           &sub);
        c->depth--;
        c->report = outer;
        for (size_t i = 0; i < sub.n; i++) {
            _sx_cleanup_free_ char *p = NULL;
            const sx_diag *d = &sub.v[i];
            /* Seal paths are relative to the resource base; nested reports are already full. */
            bool full = d->path && !strncmp(d->path, shown, strlen(shown));
            if (d->path && !full &&
                asprintf(&p, "%s/%s%s", shown, b->flat ? "" : "Contents/", d->path) < 0)
                p = NULL;
            sx_report_add(c->report, d->sev, d->code, full ? d->path : (p ? p : shown), d->key,
                          "%s", d->message);
        }
        sx_report_free(&sub);
        if (r == SYSEXT_EFORMAT) {
            problem(c, "seal-malformed", shown, SX_SIGFILE_RESOURCES,
                    "the sealed resource directory is invalid: %s", sysext_last_error());
            r = 0;
        } else if (r == SYSEXT_ESIGNATURE || r == 0) {
            r = 0;
        } else {
            goto out;
        }
    }

    if (c->o->strict)
        check_strict_structure(c, b, sigdir, shown);

    plist_t info_plist = b->info;
    check_designated(c, &s, shown, v, info_plist);

    bool embeds = false;
    if (b->kind == SX_BUNDLE_APP && (r = verify_embedded(c, b, shown, v, &embeds)) < 0)
        goto out;
    check_entitlements(c, b, v, embeds, shown);
    r = 0;
out:
    sx_sigfiles_free(&s);
    sx_bundle_free(b);
    return r;
}

/* A Mach-O file with an embedded signature: structural checks per slice. */
static int verify_macho(vctx *c, const char *path, const char *shown, sx_vresult *v)
{
    _sx_cleanup_free_ uint8_t *data = NULL;
    size_t len;
    sx_macho_slice *slices = NULL;
    size_t n = 0;
    int r = sx_read_file(path, SX_MACHO_MAX, &data, &len);
    if (r < 0)
        return r;
    if (!sx_macho_is_macho(data, len)) {
        problem(c, "bundle-format", shown, NULL,
                "bundle format unrecognized, invalid, or unsuitable: not a bundle or Mach-O file");
        return 0;
    }
    if ((r = sx_macho_slices(data, len, shown, &slices, &n)) < 0) {
        problem(c, "signature-invalid", shown, NULL, "%s: %s", MSG_SIG_FORMAT, sysext_last_error());
        return 0;
    }
    v->format = strdup(n > 1 ? "Mach-O universal" : "Mach-O thin");
    for (size_t i = 0; i < n; i++) {
        if (!slices[i].has_signature) {
            problem(c, "unsigned", shown, NULL, MSG_UNSIGNED);
            continue;
        }
        sx_sigfiles s;
        const uint8_t *slice = data + slices[i].offset;
        r = sx_sigfiles_from_superblob(slice + slices[i].sig_offset, (size_t)slices[i].sig_size,
                                       shown, &s);
        if (r < 0) {
            problem(c, "signature-invalid", shown, NULL, "%s: %s", MSG_SIG_FORMAT,
                    sysext_last_error());
            continue;
        }
        v->is_signed = true;
        if (!v->identifier) {
            v->identifier = strdup(s.cd[0].identifier);
            v->team_id = s.cd[0].team_id ? strdup(s.cd[0].team_id) : NULL;
            const sx_cd *best = sx_sigfiles_best_cd(&s);
            v->has_cdhash = best && sx_cd_cdhash(best, v->cdhash) == 0;
        }
        check_cms(c, &s, shown, v);
        for (size_t k = 0; k < SX_MAX_CDS; k++) {
            if (!s.cd_blob[k].present)
                continue;
            check_special(c, &s.cd[k], SX_SLOT_REQUIREMENTS, s.reqs.data, s.reqs.len,
                          s.reqs.present, shown, "requirements", "signature-modified",
                          MSG_SIG_FAILED);
            check_special(c, &s.cd[k], SX_SLOT_ENTITLEMENTS, s.ents.data, s.ents.len,
                          s.ents.present, shown, "entitlements", "signature-modified",
                          MSG_SIG_FAILED);
            check_special(c, &s.cd[k], SX_SLOT_ENTITLEMENTS_DER, s.ents_der.data, s.ents_der.len,
                          s.ents_der.present, shown, "DER entitlements", "signature-modified",
                          MSG_SIG_FAILED);
            check_code_pages(c, &s.cd[k], slice, slices[i].size, shown);
            if (c->o->strict && s.cd[k].code_limit != slices[i].sig_offset)
                problem(c, "signature-format", shown, NULL,
                        "%s: the code limit does not reach the signature", MSG_SIG_FORMAT);
        }
        check_designated(c, &s, shown, v, NULL);
        sx_sigfiles_free(&s);
    }
    free(slices);
    return 0;
}

static int verify_code(vctx *c, const char *path, const char *shown, sx_vresult *v)
{
    if (c->depth >= SX_MAX_DEPTH)
        return sx_err(SYSEXT_ELIMIT, "%s: nested code deeper than %d levels", shown, SX_MAX_DEPTH);
    v->nested = json_object_new_array();
    size_t before = sx_report_count(c->report, SX_SEV_ERROR);
    c->depth++;
    int r = sx_is_dir(path) ? verify_bundle(c, path, shown, v) : verify_macho(c, path, shown, v);
    c->depth--;
    if (r < 0)
        return r;
    /* Warnings (a deprecated entitlement, ...) do not make code invalid. */
    v->valid = sx_report_count(c->report, SX_SEV_ERROR) == before;
    return v->valid ? 0 : SYSEXT_EINVALID;
}

json_object *sx_vresult_to_json(const sx_vresult *v, const char *shown)
{
    json_object *o = json_object_new_object();
    char hex[2 * SX_CDHASH_LEN + 1];
    json_object_object_add(o, "path", json_object_new_string(shown));
    json_object_object_add(o, "valid", json_object_new_boolean(v->valid));
    json_object_object_add(o, "signed", json_object_new_boolean(v->is_signed));
    json_object_object_add(o, "adhoc", json_object_new_boolean(v->adhoc));
    json_object_object_add(o, "identifier", v->identifier ? json_object_new_string(v->identifier) : NULL);
    json_object_object_add(o, "team_id", v->team_id ? json_object_new_string(v->team_id) : NULL);
    if (v->has_cdhash) {
        sx_hex_encode(v->cdhash, SX_CDHASH_LEN, hex);
        json_object_object_add(o, "cdhash", json_object_new_string(hex));
    } else {
        json_object_object_add(o, "cdhash", NULL);
    }
    if (v->nested)
        json_object_object_add(o, "nested", json_object_get(v->nested));
    return o;
}

int sx_verify_path(const char *path, const sysext_verify_options *o, sx_report *report,
                   sx_vresult *v)
{
    vctx c = {.o = o, .report = report};
    int r = sx_trust_new(&c.trust);
    if (r == 0)
        r = sx_ent_catalog_load(&c.catalog);
    for (size_t i = 0; r == 0 && i < o->n_trust; i++)
        r = sx_trust_add_path(c.trust, o->trust[i]);
    if (r == 0) {
        size_t n = strlen(path);
        _sx_cleanup_free_ char *shown = strndup(path, n);
        while (shown && n > 1 && shown[n - 1] == '/')
            shown[--n] = '\0';
        r = shown ? verify_code(&c, path, shown, v) : sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    sx_trust_free(c.trust);
    sx_ent_catalog_free(c.catalog);
    return r;
}

static const sx_diag *first_error(const sx_report *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].sev == SX_SEV_ERROR)
            return &r->v[i];
    return &r->v[0];
}

int sysext_verify(const char *path, const sysext_verify_options *opts, char **out_text)
{
    SX_ASSERT_ARG(path);
    SX_ASSERT_ARG(opts);
    SX_ASSERT_ARG(out_text);
    if (opts->version != SYSEXT_VERIFY_OPTIONS_VERSION)
        return sx_err(SYSEXT_EINVAL, "sysext_verify: unsupported options version %u", opts->version);
    if (!sx_path_exists(path))
        return sx_err(SYSEXT_ENOTFOUND, "%s: no such file or directory", path);
    sx_report report;
    sx_vresult v;
    memset(&v, 0, sizeof(v));
    sx_report_init(&report);
    int r = sx_verify_path(path, opts, &report, &v);
    if (r < 0 && r != SYSEXT_EINVALID)
        goto out;
    sx_buf out = SX_BUF_INIT;
    int e = 0;
    if (opts->flags & SYSEXT_OUTPUT_JSON) {
        json_object *o = sx_vresult_to_json(&v, path);
        json_object_object_add(o, "strict", json_object_new_boolean(opts->strict));
        json_object_object_add(o, "deep", json_object_new_boolean(opts->deep));
        json_object_object_add(o, "problems", sx_report_to_json(&report));
        e = sx_buf_puts(&out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                    JSON_C_TO_STRING_SPACED));
        json_object_put(o);
    } else if (sx_report_count(&report, SX_SEV_ERROR) == 0) {
        e = sx_buf_printf(&out, "%s: valid on disk\n%s: satisfies its Designated Requirement\n",
                          path, path);
    } else {
        e = sx_buf_printf(&out, "%s: %s\n", path, first_error(&report)->message);
        if (e == 0)
            e = sx_report_render_text(&report, &out);
    }
    if (e == 0 && !(opts->flags & SYSEXT_OUTPUT_JSON) && sx_report_count(&report, SX_SEV_ERROR) == 0 &&
        report.n)
        e = sx_report_render_text(&report, &out);
    if (e < 0) {
        sx_buf_free(&out);
        r = e;
        goto out;
    }
    *out_text = sx_buf_steal_str(&out);
    r = sx_report_count(&report, SX_SEV_ERROR) ? SYSEXT_EINVALID : 0;
    if (r)
        sx_err(r, "%s: %s", path, first_error(&report)->message);
out:
    sx_vresult_free(&v);
    sx_report_free(&report);
    return r;
}
