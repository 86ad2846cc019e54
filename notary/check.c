/* The notary's checks on one submitted zip (notary/check.h). */
#include "util/common.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "bundle/zip.h"
#include "codesign/nested.h"
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

/* Walk a verified bundle: every folder carrying a signature is code the ticket covers. */
static int walk_code(sx_notary_result *r, const char *dir, unsigned depth)
{
    if (depth > WALK_MAX_DEPTH)
        return 0;
    int rc;
    if (has_signature(dir) && (rc = collect_code(r, dir)) < 0)
        return rc;
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
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rc = walk_code(r, p, depth + 1);
    }
    closedir(d);
    return rc;
}

/* Move the verifier's findings into the log, paths prefixed with the item name. */
static void take_report(sx_notary_result *r, const char *item, const sx_report *vr)
{
    for (size_t i = 0; i < vr->n; i++) {
        const sx_diag *d = &vr->v[i];
        char path[2048];
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
    if (lstat(path, &st) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    if (S_ISREG(st.st_mode) && !(st.st_mode & 0111)) {
        sx_report_add(&r->log, SX_SEV_WARNING, "not-code", item, NULL,
                      "not code (no executable bit); not covered by the ticket");
        return 0;
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        sx_report_add(&r->log, SX_SEV_ERROR, "unsupported-item", item, NULL,
                      "only bundles and executables can be notarized");
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
    int rc = sx_verify_path(path, &vo, &vr, &v);
    bool file_unsigned = S_ISREG(st.st_mode) && (rc == SYSEXT_ENOTFOUND || rc == SYSEXT_EFORMAT);
    if (rc < 0 && rc != SYSEXT_EINVALID && !file_unsigned)
        goto out;
    if (file_unsigned)
        sx_report_add(&r->log, SX_SEV_ERROR, "unsigned-code", item, NULL, "%s", sx_errmsg());
    rc = 0;
    take_report(r, item, &vr);
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
    rc = S_ISDIR(st.st_mode) ? walk_code(r, path, 0) : collect_code(r, path);
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
