#include "util/common.h"
#include "codesign/sigfiles.h"
#include "codesign/superblob.h"
#include "util/fs.h"

#include <sys/stat.h>

/* Far above any real component; a hostile folder cannot make us read gigabytes. */
#define SX_COMPONENT_MAX (16u << 20)

static int load_one(const char *dir, const char *name, sx_blob *b)
{
    _sx_cleanup_free_ char *p = sx_path_join(dir, name);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    struct stat st;
    if (lstat(p, &st) < 0)
        return errno == ENOENT ? 0 : sx_err_errno(SYSEXT_EIO, errno, "%s", p);
    int r = sx_read_file(p, SX_COMPONENT_MAX, &b->data, &b->len);
    if (r < 0)
        return r;
    b->present = true;
    return 0;
}

static int parse_cds(sx_sigfiles *s, const char *where)
{
    s->n_cds = 0;
    for (size_t i = 0; i < SX_MAX_CDS; i++) {
        if (!s->cd_blob[i].present)
            continue;
        char what[512];
        int n = snprintf(what, sizeof(what), "%s%s%s", where,
                         i == 0 ? "CodeDirectory" : "CodeRequirements-",
                         i == 0 ? "" : (const char[]){(char)('0' + i), 0});
        if (n < 0 || (size_t)n >= sizeof(what))
            what[sizeof(what) - 1] = '\0';
        int r = sx_cd_parse(s->cd_blob[i].data, s->cd_blob[i].len, what, &s->cd[i]);
        if (r < 0)
            return r;
        for (size_t j = 0; j < i; j++)
            if (s->cd_blob[j].present && s->cd[j].hash_type == s->cd[i].hash_type)
                return sx_err(SYSEXT_EFORMAT,
                              "%s: two CodeDirectories with hash type %u: invalid or unsupported "
                              "format for signature",
                              what, s->cd[i].hash_type);
        s->n_cds++;
    }
    return 0;
}

int sx_sigfiles_load(const char *sigdir, sx_sigfiles *out)
{
    sx_sigfiles s;
    memset(&s, 0, sizeof(s));
    int r = 0;
    s.dir = strdup(sigdir);
    if (!s.dir)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    r = load_one(sigdir, SX_SIGFILE_CD, &s.cd_blob[0]);
    if (r == 0 && !s.cd_blob[0].present)
        r = sx_err(SYSEXT_ENOTFOUND, "%s: code object is not signed at all", sigdir);
    for (int i = 1; r == 0 && i < SX_MAX_CDS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "CodeRequirements-%d", i);
        r = load_one(sigdir, name, &s.cd_blob[i]);
    }
    if (r == 0)
        r = load_one(sigdir, SX_SIGFILE_REQS, &s.reqs);
    if (r == 0)
        r = load_one(sigdir, SX_SIGFILE_RESOURCES, &s.resources);
    if (r == 0)
        r = load_one(sigdir, SX_SIGFILE_ENTS, &s.ents);
    if (r == 0)
        r = load_one(sigdir, SX_SIGFILE_ENTS_DER, &s.ents_der);
    if (r == 0)
        r = load_one(sigdir, SX_SIGFILE_CMS, &s.cms);
    if (r == 0) {
        _sx_cleanup_free_ char *where = NULL;
        if (asprintf(&where, "%s/", sigdir) < 0)
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
        else
            r = parse_cds(&s, where);
    }
    if (r < 0) {
        sx_sigfiles_free(&s);
        return r;
    }
    *out = s;
    return 0;
}

static int dup_blob(sx_blob *b, const sx_blob_ref *ref)
{
    if (!ref)
        return 0;
    b->data = malloc(ref->len ? ref->len : 1);
    if (!b->data)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    memcpy(b->data, ref->data, ref->len);
    b->len = ref->len;
    b->present = true;
    return 0;
}

int sx_sigfiles_from_superblob(const uint8_t *data, size_t len, const char *what, sx_sigfiles *out)
{
    sx_superblob sb;
    sx_sigfiles s;
    memset(&s, 0, sizeof(s));
    int r = sx_superblob_parse(data, len, what, &sb);
    if (r < 0)
        return r;
    const sx_blob_ref *cd0 = sx_superblob_find(&sb, SX_CSSLOT_CODEDIRECTORY);
    if (!cd0)
        r = sx_err(SYSEXT_ENOTFOUND, "%s: code object is not signed at all", what);
    if (r == 0)
        r = dup_blob(&s.cd_blob[0], cd0);
    for (uint32_t i = 1; r == 0 && i < SX_MAX_CDS; i++)
        r = dup_blob(&s.cd_blob[i], sx_superblob_find(&sb, SX_CSSLOT_ALTERNATE_CD + i - 1));
    if (r == 0)
        r = dup_blob(&s.reqs, sx_superblob_find(&sb, SX_SLOT_REQUIREMENTS));
    if (r == 0)
        r = dup_blob(&s.ents, sx_superblob_find(&sb, SX_SLOT_ENTITLEMENTS));
    if (r == 0)
        r = dup_blob(&s.ents_der, sx_superblob_find(&sb, SX_SLOT_ENTITLEMENTS_DER));
    const sx_blob_ref *sig = r == 0 ? sx_superblob_find(&sb, SX_CSSLOT_SIGNATURE) : NULL;
    if (sig) {
        /* The embedded CMS sits in a BlobWrapper; an 8-byte wrapper is the ad-hoc marker. */
        sx_blob_ref inner = *sig;
        if (inner.len >= 8 && inner.magic == SX_CSMAGIC_BLOBWRAPPER) {
            inner.data += 8;
            inner.len -= 8;
        }
        r = dup_blob(&s.cms, &inner);
    }
    if (r == 0)
        r = parse_cds(&s, "");
    sx_superblob_free(&sb);
    if (r < 0) {
        sx_sigfiles_free(&s);
        return r;
    }
    *out = s;
    return 0;
}

void sx_sigfiles_free(sx_sigfiles *s)
{
    free(s->dir);
    for (size_t i = 0; i < SX_MAX_CDS; i++)
        free(s->cd_blob[i].data);
    free(s->reqs.data);
    free(s->resources.data);
    free(s->ents.data);
    free(s->ents_der.data);
    free(s->cms.data);
    memset(s, 0, sizeof(*s));
}

const sx_cd *sx_sigfiles_best_cd(const sx_sigfiles *s)
{
    const sx_cd *best = NULL;
    for (size_t i = 0; i < SX_MAX_CDS; i++)
        if (s->cd_blob[i].present &&
            (!best || sx_hash_type_rank(s->cd[i].hash_type) > sx_hash_type_rank(best->hash_type)))
            best = &s->cd[i];
    return best;
}

size_t sx_sigfiles_cdhashes(const sx_sigfiles *s, uint8_t out[SX_MAX_CDS][SX_CDHASH_LEN],
                            uint8_t types[SX_MAX_CDS])
{
    size_t n = 0;
    /* Ascending hash type, as codesign lists them in the CMS attribute. */
    for (unsigned t = 1; t <= 4; t++)
        for (size_t i = 0; i < SX_MAX_CDS; i++)
            if (s->cd_blob[i].present && s->cd[i].hash_type == t &&
                sx_cd_cdhash(&s->cd[i], out[n]) == 0) {
                types[n] = (uint8_t)t;
                n++;
            }
    return n;
}
