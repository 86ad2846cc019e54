/* The notary's checks on one submitted zip (notary/check.h). */
#include "util/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/zip.h"
#include "bundle/bundle.h"
#include "codesign/nested.h"
#include "codesign/superblob.h"
#include "codesign/verify_internal.h"
#include "notary/check.h"
#include "util/fs.h"
#include "util/hex.h"

#define WALK_MAX_DEPTH 32

const char *sx_notary_status_name(sx_notary_status s)
{
    switch (s) {
    case SX_NOTARY_IN_PROGRESS: return "In Progress";
    case SX_NOTARY_ACCEPTED: return "Accepted";
    case SX_NOTARY_INVALID: return "Invalid";
    case SX_NOTARY_REJECTED: return "Rejected";
    }
    return "Unknown";
}

void sx_notary_result_free(sx_notary_result *r)
{
    if (!r)
        return;
    sx_report_free(&r->log);
    free(r->entries);
    for (size_t i = 0; i < r->n_bundle_ids; i++)
        free(r->bundle_ids[i]);
    free(r->bundle_ids);
    memset(r, 0, sizeof *r);
}

static int add_entry(sx_notary_result *r, uint8_t type, const uint8_t *h)
{
    for (size_t i = 0; i < r->n_entries; i++)
        if (r->entries[i].hash_type == type && !memcmp(r->entries[i].cdhash, h, SX_CDHASH_LEN))
            return 0;
    if (r->n_entries >= SX_TICKET_MAX_ENTRIES)
        return sx_err(SYSEXT_ELIMIT, "submission: more than %d pieces of code", SX_TICKET_MAX_ENTRIES);
    sx_ticket_entry *n = realloc(r->entries, (r->n_entries + 1) * sizeof *n);
    if (!n)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    r->entries = n;
    n[r->n_entries].hash_type = type;
    memcpy(n[r->n_entries].cdhash, h, SX_CDHASH_LEN);
    r->n_entries++;
    return 0;
}

static int add_bundle_id(sx_notary_result *r, const char *id)
{
    for (size_t i = 0; i < r->n_bundle_ids; i++)
        if (!strcmp(r->bundle_ids[i], id))
            return 0;
    if (r->n_bundle_ids >= SX_TICKET_MAX_BUNDLE_IDS || strlen(id) > SX_TICKET_MAX_STRING)
        return 0; /* the ticket records what fits; coverage is by cdhash */
    char **n = realloc(r->bundle_ids, (r->n_bundle_ids + 1) * sizeof *n);
    if (!n)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    r->bundle_ids = n;
    if (!(n[r->n_bundle_ids] = strdup(id)))
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    r->n_bundle_ids++;
    return 0;
}

/* Every CodeDirectory of the code at `path` (a signed bundle). */
static int collect_code(sx_notary_result *r, const char *path)
{
    sx_sigfiles s;
    memset(&s, 0, sizeof s);
    int rc = sx_nested_load(path, &s);
    if (rc < 0)
        return rc;
    uint8_t h[SX_MAX_CDS][SX_CDHASH_LEN];
    uint8_t t[SX_MAX_CDS];
    size_t n = sx_sigfiles_cdhashes(&s, h, t);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_entry(r, t[i], h[i]);
    sx_sigfiles_free(&s);
    return rc;
}

static bool has_signature(const char *dir)
{
    _sx_cleanup_free_ char *sig = sx_sigdir_of(dir);
    _sx_cleanup_free_ char *cd = sig ? sx_path_join(sig, "CodeDirectory") : NULL;
    return cd && sx_path_exists(cd);
}

/* What a file is to the "every executable signed" rule. Binary code (ELF or Mach-O, with or
 * without the exec bit: shared libraries are mapped, not executed) must be covered by a
 * signature of its own. Scripts and any other file are content: inside a bundle they are
 * sealed (hashed) by the enclosing bundle's CodeResources, as codesign seals them. */
typedef enum file_kind { FILE_DATA = 0, FILE_ELF, FILE_MACHO } file_kind;

static int classify_file(const char *path, file_kind *out)
{
    *out = FILE_DATA;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    uint8_t m[8];
    size_t got = 0;
    while (got < sizeof m) {
        ssize_t n = read(fd, m + got, sizeof m - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return sx_err_errno(SYSEXT_EIO, e, "%s: read", path);
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got >= 4 && !memcmp(m, "\x7f" "ELF", 4))
        *out = FILE_ELF;
    else if (sx_macho_is_macho(m, got))
        *out = FILE_MACHO;
    return 0;
}

/* The main executables of the signed bundles met so far (absolute paths). */
typedef struct walk_ctx {
    sx_notary_result *r;
    const sx_notary_check_opts *o;
    const char *root;  /* the unpack folder: log paths are relative to it */
    char **mains;
    size_t n_mains;
} walk_ctx;

static const char *rel_of(const walk_ctx *w, const char *abs)
{
    size_t n = strlen(w->root);
    return !strncmp(abs, w->root, n) && abs[n] == '/' ? abs + n + 1 : abs;
}

static bool is_main(const walk_ctx *w, const char *path)
{
    for (size_t i = 0; i < w->n_mains; i++)
        if (!strcmp(w->mains[i], path))
            return true;
    return false;
}

static int add_main(walk_ctx *w, const char *dir)
{
    sx_bundle *b = NULL;
    int rc = sx_bundle_open_any(dir, &b);
    if (rc < 0)
        return rc == SYSEXT_ENOMEM || rc == SYSEXT_EIO ? rc : 0; /* verify reported it */
    if (b->exe_path) {
        char **n = realloc(w->mains, (w->n_mains + 1) * sizeof *n);
        if (!n || !(n[w->n_mains] = strdup(b->exe_path))) {
            if (n)
                w->mains = n;
            sx_bundle_free(b);
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
        w->mains = n;
        w->n_mains++;
    }
    sx_bundle_free(b);
    return 0;
}

/* Verify code found inside a verified item on its own (strict, against the trusted roots):
 * a bundle that carries a signature, or a Mach-O file with an embedded one. Adds issues at
 * its path; *ok tells whether it is valid, trusted and not ad hoc. */
static int verify_inner(walk_ctx *w, const char *path, bool *ok)
{
    *ok = false;
    const char *rel = rel_of(w, path);
    sysext_verify_options vo = SYSEXT_VERIFY_OPTIONS_INIT;
    vo.strict = 1;
    vo.trust = w->o->trust;
    vo.n_trust = w->o->n_trust;
    sx_report vr;
    sx_vresult v;
    sx_report_init(&vr);
    memset(&v, 0, sizeof v);
    int rc = sx_verify_path(path, &vo, &vr, &v);
    if (rc < 0 && rc != SYSEXT_EINVALID)
        goto out;
    rc = 0;
    if (!v.valid) {
        if (vr.n == 0)
            sx_report_add(&w->r->log, SX_SEV_ERROR, "nested-code-invalid", rel, NULL,
                          "the nested code's signature is invalid");
        for (size_t i = 0; i < vr.n; i++) {
            const sx_diag *d = &vr.v[i];
            char p[2048];
            if (d->path && d->path[0] == '/')
                snprintf(p, sizeof p, "%s", rel_of(w, d->path));
            else
                snprintf(p, sizeof p, "%s%s%s", rel, d->path && *d->path ? "/" : "",
                         d->path ? d->path : "");
            sx_report_add(&w->r->log, d->sev, d->code, p, d->key, "%s", d->message);
        }
    } else if (v.adhoc || !v.chain_trusted) {
        sx_report_add(&w->r->log, SX_SEV_ERROR, "untrusted-signature", rel, NULL,
                      "nested code: the signature is %s; notarization needs a Developer ID "
                      "signature from a trusted developer root",
                      v.adhoc ? "ad hoc" : "not from a trusted root");
    } else {
        *ok = true;
    }
out:
    sx_vresult_free(&v);
    sx_report_free(&vr);
    return rc;
}

static int check_file(walk_ctx *w, const char *path)
{
    file_kind k;
    int rc = classify_file(path, &k);
    if (rc < 0 || k == FILE_DATA || is_main(w, path))
        return rc;
    const char *rel = rel_of(w, path);
    if (k == FILE_MACHO) {
        /* A Mach-O may carry its own signature (codesign's nested code). */
        sx_sigfiles s;
        memset(&s, 0, sizeof s);
        rc = sx_nested_load(path, &s);
        sx_sigfiles_free(&s);
        if (rc == 0) {
            bool ok;
            if ((rc = verify_inner(w, path, &ok)) < 0 || !ok)
                return rc;
            return collect_code(w->r, path);
        }
        if (rc == SYSEXT_ENOMEM || rc == SYSEXT_EIO)
            return rc;
    }
    sx_report_add(&w->r->log, SX_SEV_ERROR, "unsigned-executable", rel, NULL,
                  "the binary is not signed: %s code must be the main executable of a signed "
                  "bundle%s", k == FILE_ELF ? "ELF" : "Mach-O",
                  k == FILE_MACHO ? " or carry its own valid signature" : "");
    return 0;
}

/* Walk a verified item: every folder carrying a signature is code the ticket covers (verified
 * on its own below the top level), and every ELF or Mach-O file must be covered by a
 * signature: the main executable of a signed bundle, or a signed Mach-O. */
static int walk_code(walk_ctx *w, const char *dir, unsigned depth, bool bundle_contents)
{
    if (depth > WALK_MAX_DEPTH)
        return sx_err(SYSEXT_ELIMIT, "%s: folders nested deeper than %d levels", rel_of(w, dir),
                      WALK_MAX_DEPTH);
    int rc;
    /* X.app/Contents holds X.app's signature, it is not a (flat) bundle of its own. */
    bool is_bundle = !bundle_contents && has_signature(dir);
    if (is_bundle) {
        bool ok = true;
        if (depth > 0 && (rc = verify_inner(w, dir, &ok)) < 0)
            return rc;
        if (ok && ((rc = add_main(w, dir)) < 0 || (rc = collect_code(w->r, dir)) < 0))
            return rc;
    }
    DIR *d = opendir(dir);
    if (!d)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", dir);
    struct dirent *e;
    rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, "_CodeSignature"))
            continue;
        _sx_cleanup_free_ char *p = sx_path_join(dir, e->d_name);
        struct stat st;
        if (!p) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            break;
        }
        if (lstat(p, &st) < 0)
            rc = sx_err_errno(SYSEXT_EIO, errno, "%s", p);
        else if (S_ISDIR(st.st_mode))
            rc = walk_code(w, p, depth + 1, is_bundle && !strcmp(e->d_name, "Contents"));
        else if (S_ISREG(st.st_mode))
            rc = check_file(w, p);
    }
    closedir(d);
    return rc;
}

/* Move the verifier's findings into the log, paths prefixed with the item name. */
static void take_report(sx_notary_result *r, const char *root, const char *item,
                        const sx_report *vr)
{
    size_t rn = strlen(root);
    for (size_t i = 0; i < vr->n; i++) {
        const sx_diag *d = &vr->v[i];
        char path[2048];
        if (d->path && !strncmp(d->path, root, rn) && d->path[rn] == '/')
            snprintf(path, sizeof path, "%s", d->path + rn + 1);
        else
            snprintf(path, sizeof path, "%s%s%s", item, d->path && *d->path ? "/" : "",
                     d->path ? d->path : "");
        sx_report_add(&r->log, d->sev, d->code, path, d->key, "%s", d->message);
    }
}

static int check_item(sx_notary_result *r, const sx_notary_check_opts *o, const char *root,
                      const char *item)
{
    _sx_cleanup_free_ char *path = sx_path_join(root, item);
    if (!path)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    struct stat st;
    int rc;
    if (lstat(path, &st) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    file_kind k = FILE_DATA;
    if (S_ISREG(st.st_mode) && (rc = classify_file(path, &k)) < 0)
        return rc;
    if (S_ISREG(st.st_mode) && !(st.st_mode & 0111) && k == FILE_DATA) {
        sx_report_add(&r->log, SX_SEV_WARNING, "not-code", item, NULL,
                      "not code (no executable bit); not covered by the ticket");
        return 0;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        sx_report_add(&r->log, SX_SEV_ERROR, "unsupported-item", item, NULL,
                      "only bundles and executables can be notarized");
        return 0;
    }
    if (S_ISREG(st.st_mode) && k != FILE_MACHO) {
        sx_report_add(&r->log, SX_SEV_ERROR, "unsigned-code", item, NULL,
                      "the code object is not signed at all: only a Mach-O file carries a "
                      "signature of its own; put %s code in a signed bundle",
                      k == FILE_ELF ? "ELF" : "script");
        return 0;
    }
    if (S_ISDIR(st.st_mode) ? !has_signature(path) : !sx_path_exists(path)) {
        sx_report_add(&r->log, SX_SEV_ERROR, "unsigned-code", item, NULL,
                      "the code object is not signed at all");
        return 0;
    }
    sysext_verify_options vo = SYSEXT_VERIFY_OPTIONS_INIT;
    vo.strict = 1;
    vo.deep = 1;
    vo.trust = o->trust;
    vo.n_trust = o->n_trust;
    sx_report vr;
    sx_vresult v;
    sx_report_init(&vr);
    memset(&v, 0, sizeof v);
    rc = sx_verify_path(path, &vo, &vr, &v);
    bool file_unsigned = S_ISREG(st.st_mode) && (rc == SYSEXT_ENOTFOUND || rc == SYSEXT_EFORMAT);
    if (rc < 0 && rc != SYSEXT_EINVALID && !file_unsigned)
        goto out;
    if (file_unsigned)
        sx_report_add(&r->log, SX_SEV_ERROR, "unsigned-code", item, NULL, "%s", sx_errmsg());
    rc = 0;
    take_report(r, root, item, &vr);
    if (!v.valid)
        goto out;
    if (v.adhoc || !v.chain_trusted) {
        sx_report_add(&r->log, SX_SEV_ERROR, "untrusted-signature", item, NULL,
                      "the signature is %s; notarization needs a Developer ID signature from a "
                      "trusted developer root", v.adhoc ? "ad hoc" : "not from a trusted root");
        goto out;
    }
    if (!v.team_id || !o->team_id || strcmp(v.team_id, o->team_id)) {
        sx_report_add(&r->log, SX_SEV_ERROR, "team-mismatch", item, NULL,
                      "signed by team '%s', but the submission was made with a key of team '%s'",
                      v.team_id ? v.team_id : "(none)", o->team_id ? o->team_id : "(none)");
        goto out;
    }
    if (v.identifier && (rc = add_bundle_id(r, v.identifier)) < 0)
        goto out;
    if (S_ISDIR(st.st_mode)) {
        walk_ctx w = {.r = r, .o = o, .root = root};
        rc = walk_code(&w, path, 0, false);
        for (size_t i = 0; i < w.n_mains; i++)
            free(w.mains[i]);
        free(w.mains);
    } else {
        rc = collect_code(r, path);
    }
out:
    sx_vresult_free(&v);
    sx_report_free(&vr);
    return rc;
}

int sx_notary_check_zip(const char *zip_path, const sx_notary_check_opts *o, sx_notary_result *out)
{
    SX_ASSERT_ARG(out);
    memset(out, 0, sizeof *out);
    sx_report_init(&out->log);
    SX_ASSERT_ARG(zip_path && o);
    out->status = SX_NOTARY_IN_PROGRESS;
    char tmpl[4096];
    if (snprintf(tmpl, sizeof tmpl, "%s/sx-notary-XXXXXX", o->scratch_dir ? o->scratch_dir : "/tmp") >=
        (int)sizeof tmpl)
        return sx_err(SYSEXT_EINVAL, "scratch directory path too long");
    if (!mkdtemp(tmpl))
        return sx_err_errno(SYSEXT_EIO, errno, "%s: cannot create a scratch directory", tmpl);
    sx_zip_items items = {0};
    const char *name = sx_path_basename(zip_path);
    int rc = sx_zip_unpack_file(zip_path, tmpl, o->limits, &items);
    if (rc == SYSEXT_ENOMEM || rc == SYSEXT_EIO) {
        goto out;
    } else if (rc < 0) {
        sx_report_add(&out->log, SX_SEV_ERROR,
                      rc == SYSEXT_EUNSAFE ? "archive-unsafe"
                      : rc == SYSEXT_ELIMIT ? "archive-limit" : "archive-invalid",
                      name, NULL, "%s", sx_errmsg());
        out->status = SX_NOTARY_REJECTED;
        rc = 0;
        goto out;
    }
    if (items.n == 0) {
        sx_report_add(&out->log, SX_SEV_ERROR, "archive-empty", name, NULL,
                      "the archive holds nothing to notarize");
        out->status = SX_NOTARY_REJECTED;
        goto out;
    }
    for (size_t i = 0; i < items.n && rc == 0; i++)
        rc = check_item(out, o, tmpl, items.v[i]);
    if (rc < 0)
        goto out;
    if (sx_report_count(&out->log, SX_SEV_ERROR) == 0 && out->n_entries == 0)
        sx_report_add(&out->log, SX_SEV_ERROR, "no-code", name, NULL,
                      "the archive holds no signed code");
    out->status = sx_report_count(&out->log, SX_SEV_ERROR) ? SX_NOTARY_INVALID : SX_NOTARY_ACCEPTED;
    if (out->status != SX_NOTARY_ACCEPTED) { /* nothing to put in a ticket */
        free(out->entries);
        out->entries = NULL;
        out->n_entries = 0;
    }
out:
    sx_zip_items_free(&items);
    int e = sx_rm_rf(tmpl);
    return rc < 0 ? rc : e;
}

json_object *sx_notary_log_json(const sx_notary_result *r, const char *job_id,
                                const char *archive_name, const char *team_id)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "jobId", json_object_new_string(job_id ? job_id : ""));
    json_object_object_add(o, "status", json_object_new_string(sx_notary_status_name(r->status)));
    json_object_object_add(o, "statusSummary",
                           json_object_new_string(r->status == SX_NOTARY_ACCEPTED ? "Ready for distribution"
                                                  : r->status == SX_NOTARY_IN_PROGRESS ? "In progress"
                                                  : "Archive contains critical validation errors"));
    json_object_object_add(o, "archiveFilename", json_object_new_string(archive_name ? archive_name : ""));
    json_object_object_add(o, "teamId", json_object_new_string(team_id ? team_id : ""));
    json_object *tc = json_object_new_array();
    for (size_t i = 0; r->status == SX_NOTARY_ACCEPTED && i < r->n_entries; i++) {
        char hex[2 * SX_CDHASH_LEN + 1];
        sx_hex_encode(r->entries[i].cdhash, SX_CDHASH_LEN, hex);
        json_object *e = json_object_new_object();
        json_object_object_add(e, "cdhash", json_object_new_string(hex));
        json_object_object_add(e, "digestAlgorithm",
                               json_object_new_string(sx_hash_name(r->entries[i].hash_type)));
        json_object_array_add(tc, e);
    }
    json_object_object_add(o, "ticketContents", tc);
    json_object *is = json_object_new_array();
    for (size_t i = 0; i < r->log.n; i++) {
        const sx_diag *d = &r->log.v[i];
        json_object *e = json_object_new_object();
        json_object_object_add(e, "severity", json_object_new_string(
            d->sev == SX_SEV_ERROR ? "error" : d->sev == SX_SEV_WARNING ? "warning" : "note"));
        json_object_object_add(e, "code", json_object_new_string(d->code));
        json_object_object_add(e, "path", json_object_new_string(d->path ? d->path : ""));
        if (d->key)
            json_object_object_add(e, "key", json_object_new_string(d->key));
        json_object_object_add(e, "message", json_object_new_string(d->message));
        json_object_array_add(is, e);
    }
    json_object_object_add(o, "issues", is);
    return o;
}
