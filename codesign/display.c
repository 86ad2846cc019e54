/* `sysextctl display`: what `codesign -dvvv` shows, as text or JSON. */
#include "util/common.h"

#include <openssl/x509.h>
#include <sys/stat.h>
#include <time.h>

#include "bundle/bundle.h"
#include "codesign/cms.h"
#include "codesign/codedirectory.h"
#include "codesign/entitlements.h"
#include "codesign/nested.h"
#include "codesign/requirement.h"
#include "codesign/sigfiles.h"
#include "codesign/superblob.h"
#include "sysext/codesign.h"
#include "util/fs.h"
#include "util/hex.h"
#include "util/plist_json.h"

#define SX_MACHO_MAX (1u << 30)

static void flag_names(uint32_t flags, sx_buf *out)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{0x1, "host"},         {0x2, "adhoc"},       {0x100, "hard"},
                 {0x200, "kill"},       {0x400, "expires"},   {0x800, "restrict"},
                 {0x1000, "enforcement"}, {0x2000, "library-validation"}, {0x10000, "runtime"},
                 {0x20000, "linker-signed"}};
    bool any = false;
    for (size_t i = 0; i < SX_ARRAY_SIZE(names); i++)
        if (flags & names[i].bit) {
            sx_buf_printf(out, "%s%s", any ? "," : "", names[i].name);
            any = true;
        }
    if (!any)
        sx_buf_puts(out, "none");
}

/* codesign prints an authority as the certificate's common name. */
static char *authority_name(X509 *cert)
{
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    return n >= 0 ? strdup(cn) : sx_cert_subject_line(cert);
}

static json_object *hexobj(const uint8_t *p, size_t n)
{
    char hex[2 * SX_HASH_MAX_SIZE + 1];
    sx_hex_encode(p, n, hex);
    return json_object_new_string(hex);
}

/* Counts from the seal (rules2 and files2 entries), for the "Sealed Resources" line. */
static void seal_counts(const sx_blob *res, int *rules, int *files)
{
    *rules = *files = -1;
    plist_t p = NULL;
    if (!res->present || sx_plist_parse(res->data, res->len, "CodeResources", &p) < 0)
        return;
    plist_t r2 = plist_dict_get_item(p, "rules2"), f2 = plist_dict_get_item(p, "files2");
    if (r2 && plist_get_node_type(r2) == PLIST_DICT)
        *rules = (int)plist_dict_get_size(r2);
    if (f2 && plist_get_node_type(f2) == PLIST_DICT)
        *files = (int)plist_dict_get_size(f2);
    plist_free(p);
}

typedef struct dinfo {
    const char *path;
    const char *executable;
    const char *format;
    const char *location;
    int info_entries;
} dinfo;

static int render(const dinfo *d, const sx_sigfiles *s, unsigned flags, sx_buf *out)
{
    int r = 0;
    const sx_cd *best = sx_sigfiles_best_cd(s);
    const sx_cd *cd0 = &s->cd[0];
    uint8_t cdh[SX_CDHASH_LEN];
    sx_cd_cdhash(best, cdh);
    char cdhex[2 * SX_CDHASH_LEN + 1];
    sx_hex_encode(cdh, SX_CDHASH_LEN, cdhex);

    sx_cms_info cms;
    memset(&cms, 0, sizeof(cms));
    bool have_cms = s->cms.present && s->cms.len > 0 &&
                    sx_cms_verify(s->cms.data, s->cms.len, s->cd_blob[0].data, cd0->len, NULL,
                                  &cms) >= 0;
    sx_err_clear();
    int rules, files;
    seal_counts(&s->resources, &rules, &files);
    sx_buf dr = SX_BUF_INIT, flagbuf = SX_BUF_INIT;
    bool have_dr = sx_designated_text(s, &dr) == 0 && dr.len > 0;
    sx_err_clear();
    plist_t ents = NULL;
    if (s->ents.present && s->ents.len > 8)
        sx_ent_parse_xml_blob(s->ents.data, s->ents.len, &ents);
    sx_err_clear();

    if (flags & SYSEXT_OUTPUT_JSON) {
        json_object *o = json_object_new_object(), *cds = json_object_new_array();
        json_object_object_add(o, "path", json_object_new_string(d->path));
        json_object_object_add(o, "executable",
                               d->executable ? json_object_new_string(d->executable) : NULL);
        json_object_object_add(o, "format", json_object_new_string(d->format));
        json_object_object_add(o, "identifier", json_object_new_string(cd0->identifier));
        json_object_object_add(o, "team_id",
                               cd0->team_id ? json_object_new_string(cd0->team_id) : NULL);
        json_object_object_add(o, "cdhash", json_object_new_string(cdhex));
        for (size_t i = 0; i < SX_MAX_CDS; i++) {
            if (!s->cd_blob[i].present)
                continue;
            const sx_cd *cd = &s->cd[i];
            json_object *c = json_object_new_object();
            uint8_t full[SX_HASH_MAX_SIZE];
            size_t fl = 0;
            sx_cd_full_hash(cd, full, &fl);
            sx_buf_free(&flagbuf);
            flag_names(cd->flags, &flagbuf);
            json_object_object_add(c, "slot", json_object_new_int(i ? (int)(0x1000 + i - 1) : 0));
            json_object_object_add(c, "version", json_object_new_int64(cd->version));
            json_object_object_add(c, "size", json_object_new_int64((int64_t)cd->len));
            json_object_object_add(c, "flags", json_object_new_int64(cd->flags));
            json_object_object_add(c, "flag_names", json_object_new_string((char *)flagbuf.data));
            json_object_object_add(c, "hash_type", json_object_new_string(sx_hash_name(cd->hash_type)));
            json_object_object_add(c, "hash_size", json_object_new_int(cd->hash_size));
            json_object_object_add(c, "page_size",
                                   json_object_new_int64(cd->page_size_log2 ? (int64_t)1 << cd->page_size_log2 : 0));
            json_object_object_add(c, "code_slots", json_object_new_int64(cd->n_code));
            json_object_object_add(c, "special_slots", json_object_new_int64(cd->n_special));
            json_object_object_add(c, "code_limit", json_object_new_int64((int64_t)cd->code_limit));
            json_object_object_add(c, "cdhash", hexobj(full, SX_CDHASH_LEN));
            json_object_object_add(c, "cdhash_full", hexobj(full, fl));
            json_object_array_add(cds, c);
        }
        json_object_object_add(o, "code_directories", cds);
        json_object_object_add(o, "signature_size", json_object_new_int64((int64_t)s->cms.len));
        json_object *auth = json_object_new_array();
        for (int i = 0; have_cms && cms.chain && i < sk_X509_num(cms.chain); i++) {
            char *subj = sx_cert_subject_line(sk_X509_value(cms.chain, i));
            json_object_array_add(auth, json_object_new_string(subj ? subj : "?"));
            free(subj);
        }
        json_object_object_add(o, "authority", auth);
        if (have_cms && cms.signing_time) {
            char t[64];
            struct tm tm;
            gmtime_r(&cms.signing_time, &tm);
            strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
            json_object_object_add(o, "signing_time", json_object_new_string(t));
        } else {
            json_object_object_add(o, "signing_time", NULL);
        }
        json_object_object_add(o, "info_plist_entries",
                               d->info_entries >= 0 ? json_object_new_int(d->info_entries) : NULL);
        if (rules >= 0) {
            json_object *sr = json_object_new_object();
            json_object_object_add(sr, "version", json_object_new_int(2));
            json_object_object_add(sr, "rules", json_object_new_int(rules));
            json_object_object_add(sr, "files", json_object_new_int(files < 0 ? 0 : files));
            json_object_object_add(o, "sealed_resources", sr);
        } else {
            json_object_object_add(o, "sealed_resources", NULL);
        }
        json_object_object_add(o, "designated_requirement",
                               have_dr ? json_object_new_string((char *)dr.data) : NULL);
        if (flags & SYSEXT_DISPLAY_ENTITLEMENTS)
            json_object_object_add(o, "entitlements", ents ? sx_plist_to_json(ents) : NULL);
        r = sx_buf_puts(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                   JSON_C_TO_STRING_SPACED));
        json_object_put(o);
        goto out;
    }

    sx_buf_printf(out, "Executable=%s\n", d->executable ? d->executable : d->path);
    sx_buf_printf(out, "Identifier=%s\n", cd0->identifier);
    sx_buf_printf(out, "Format=%s\n", d->format);
    for (size_t i = 0; i < SX_MAX_CDS; i++) {
        if (!s->cd_blob[i].present)
            continue;
        const sx_cd *cd = &s->cd[i];
        sx_buf_free(&flagbuf);
        flag_names(cd->flags, &flagbuf);
        sx_buf_printf(out, "CodeDirectory v=%x size=%zu flags=0x%x(%s) hashes=%u+%u location=%s\n",
                      cd->version, cd->len, cd->flags, (char *)flagbuf.data, cd->n_code,
                      cd->n_special, d->location);
    }
    sx_buf_printf(out, "Hash type=%s size=%u\n", sx_hash_name(best->hash_type), best->hash_size);
    for (size_t i = 0; i < SX_MAX_CDS; i++) {
        if (!s->cd_blob[i].present)
            continue;
        uint8_t full[SX_HASH_MAX_SIZE];
        size_t fl = 0;
        char hex[2 * SX_HASH_MAX_SIZE + 1];
        sx_cd_full_hash(&s->cd[i], full, &fl);
        sx_hex_encode(full, SX_CDHASH_LEN, hex);
        sx_buf_printf(out, "CandidateCDHash %s=%s\n", sx_hash_name(s->cd[i].hash_type), hex);
        sx_hex_encode(full, fl, hex);
        sx_buf_printf(out, "CandidateCDHashFull %s=%s\n", sx_hash_name(s->cd[i].hash_type), hex);
    }
    if (best->page_size_log2)
        sx_buf_printf(out, "Page size=%llu\n", 1ULL << best->page_size_log2);
    else
        sx_buf_puts(out, "Page size=none\n");
    sx_buf_printf(out, "CDHash=%s\n", cdhex);
    if (cd0->flags & SX_CS_ADHOC || !s->cms.len) {
        sx_buf_puts(out, "Signature=adhoc\n");
    } else {
        sx_buf_printf(out, "Signature size=%zu\n", s->cms.len);
        for (int i = 0; have_cms && cms.chain && i < sk_X509_num(cms.chain); i++) {
            char *subj = authority_name(sk_X509_value(cms.chain, i));
            sx_buf_printf(out, "Authority=%s\n", subj ? subj : "?");
            free(subj);
        }
        if (have_cms && cms.signing_time) {
            char t[64];
            struct tm tm;
            gmtime_r(&cms.signing_time, &tm);
            strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S +0000", &tm);
            sx_buf_printf(out, "Signed Time=%s\n", t);
        }
        if (have_cms && cms.has_timestamp)
            sx_buf_puts(out, "Timestamp=present\n");
    }
    if (d->info_entries >= 0)
        sx_buf_printf(out, "Info.plist entries=%d\n", d->info_entries);
    else
        sx_buf_puts(out, "Info.plist=not bound\n");
    sx_buf_printf(out, "TeamIdentifier=%s\n", cd0->team_id ? cd0->team_id : "not set");
    if (rules >= 0)
        sx_buf_printf(out, "Sealed Resources version=2 rules=%d files=%d\n", rules,
                      files < 0 ? 0 : files);
    else
        sx_buf_puts(out, "Sealed Resources=none\n");
    if (s->reqs.present)
        sx_buf_printf(out, "Internal requirements count=%d size=%zu\n", s->reqs.len > 12 ? 1 : 0,
                      s->reqs.len);
    if (flags & SYSEXT_DISPLAY_REQUIREMENTS) {
        if (have_dr)
            sx_buf_printf(out, "designated => %s\n", (char *)dr.data);
        else
            sx_buf_puts(out, "# no designated requirement\n");
    }
    if (flags & SYSEXT_DISPLAY_ENTITLEMENTS) {
        if (s->ents.present && s->ents.len > 8) {
            sx_buf_puts(out, "[Dict]\n");
            sx_buf_append(out, s->ents.data + 8, s->ents.len - 8);
            if (out->len && out->data[out->len - 1] != '\n')
                sx_buf_putc(out, '\n');
        } else {
            sx_buf_puts(out, "# no entitlements\n");
        }
    }
out:
    plist_free(ents);
    sx_buf_free(&dr);
    sx_buf_free(&flagbuf);
    sx_cms_info_free(&cms);
    return r;
}

int sysext_display(const char *path, unsigned flags, char **out_text)
{
    SX_ASSERT_ARG(path);
    SX_ASSERT_ARG(out_text);
    sx_sigfiles s;
    sx_buf out = SX_BUF_INIT;
    int r;
    dinfo d = {.path = path, .info_entries = -1};
    if (sx_is_dir(path)) {
        sx_bundle *b = NULL;
        if ((r = sx_bundle_open_any(path, &b)) < 0)
            return r;
        _sx_cleanup_free_ char *sigdir = sx_path_join(b->contents, "_CodeSignature");
        r = sigdir ? sx_sigfiles_load(sigdir, &s) : sx_err(SYSEXT_ENOMEM, "out of memory");
        if (r < 0) {
            sx_bundle_free(b);
            return r == SYSEXT_ENOTFOUND ? sx_err(SYSEXT_EINVALID, "%s: code object is not signed at all", path) : r;
        }
        d.executable = b->exe_path;
        d.format = b->kind == SX_BUNDLE_APP ? "app bundle with generic" : "bundle with generic";
        d.location = "detached";
        d.info_entries = b->info && plist_get_node_type(b->info) == PLIST_DICT
                             ? (int)plist_dict_get_size(b->info)
                             : -1;
        r = render(&d, &s, flags, &out);
        sx_sigfiles_free(&s);
        sx_bundle_free(b);
    } else {
        _sx_cleanup_free_ uint8_t *data = NULL;
        size_t len;
        sx_macho_slice *slices = NULL;
        size_t n = 0;
        if ((r = sx_read_file(path, SX_MACHO_MAX, &data, &len)) < 0)
            return r;
        if (!sx_macho_is_macho(data, len))
            return sx_err(SYSEXT_EINVALID, "%s: bundle format unrecognized, invalid, or unsuitable",
                          path);
        if ((r = sx_macho_slices(data, len, path, &slices, &n)) < 0)
            return r;
        d.executable = path;
        d.format = n > 1 ? "Mach-O universal" : "Mach-O thin";
        d.location = "embedded";
        r = 0;
        for (size_t i = 0; r == 0 && i < n; i++) {
            if (!slices[i].has_signature) {
                r = sx_err(SYSEXT_EINVALID, "%s: code object is not signed at all", path);
                break;
            }
            r = sx_sigfiles_from_superblob(data + slices[i].offset + slices[i].sig_offset,
                                           (size_t)slices[i].sig_size, path, &s);
            if (r == 0) {
                if (n > 1 && !(flags & SYSEXT_OUTPUT_JSON))
                    sx_buf_printf(&out, "# slice %zu: cputype %u\n", i, slices[i].cputype);
                r = render(&d, &s, flags, &out);
                sx_sigfiles_free(&s);
                if (n > 1 && (flags & SYSEXT_OUTPUT_JSON))
                    break; /* one JSON document: the first slice */
            }
        }
        free(slices);
    }
    if (r < 0) {
        sx_buf_free(&out);
        return r;
    }
    *out_text = sx_buf_steal_str(&out);
    return 0;
}
