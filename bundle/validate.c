/* Validating a bundle: layout, Info.plist against schemas/, executable, embedded extensions,
 * sysext category, entitlements when signed. */
#include "util/common.h"
#include "bundle/validate.h"
#include "bundle/schema.h"
#include "sysext/bundle.h"
#include "util/fs.h"

#include <dirent.h>
#include <sys/stat.h>

/* An app's extensions are bundles themselves; nothing legitimate nests deeper than that. */
#define SX_VALIDATE_MAX_DEPTH 4

static char *relpath(const char *prefix, const char *name)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s", prefix, name) < 0)
        return NULL;
    return s;
}

static void check_package_type(plist_t info, sx_bundle_kind kind, const char *rel, sx_report *r)
{
    plist_t v = plist_dict_get_item(info, "CFBundlePackageType");
    if (!v || plist_get_node_type(v) != PLIST_STRING)
        return; /* missing-key / wrong-type come from the schema */
    const char *got = plist_get_string_ptr(v, NULL);
    const char *want = sx_bundle_kind_package_type(kind);
    if (!got || strcmp(got, want))
        sx_report_add(r, SX_SEV_ERROR, "wrong-package-type", rel, "CFBundlePackageType",
                      "'%s' does not match the bundle kind (%s needs '%s')", got ? got : "",
                      sx_bundle_kind_extension(kind), want);
}

/* A system extension's category follows from Info.plist keys or, once signed, from its
 * entitlements (schemas/sysext.json "categories"). */
static void check_category(json_object *schema, plist_t info, plist_t ents, const char *rel,
                           sx_report *r)
{
    json_object *cats;
    if (!json_object_object_get_ex(schema, "categories", &cats) ||
        !json_object_is_type(cats, json_type_object))
        return;
    json_object_object_foreach(cats, name, cat)
    {
        (void)name;
        json_object *keys, *ent;
        size_t n;
        if (json_object_object_get_ex(cat, "info_keys", &keys) &&
            json_object_is_type(keys, json_type_array)) {
            n = json_object_array_length(keys);
            for (size_t i = 0; i < n; i++)
                if (plist_dict_get_item(info,
                                        json_object_get_string(json_object_array_get_idx(keys, i))))
                    return;
        }
        if (ents && json_object_object_get_ex(cat, "entitlements", &ent) &&
            json_object_is_type(ent, json_type_array)) {
            n = json_object_array_length(ent);
            for (size_t i = 0; i < n; i++)
                if (plist_dict_get_item(ents,
                                        json_object_get_string(json_object_array_get_idx(ent, i))))
                    return;
        }
    }
    sx_report_add(r, SX_SEV_ERROR, "missing-category", rel, NULL,
                  "the system extension's category (network, endpoint security, driver) follows "
                  "neither from its Info.plist keys (NetworkExtension, "
                  "NSEndpointSecurityMachServiceName, IOKitPersonalities) nor from its "
                  "entitlements");
}

static void validate_info(plist_t info, sx_bundle_kind kind, plist_t ents, bool check_cat,
                          const char *rel, sx_report *r)
{
    json_object *schema = NULL;
    if (sx_schema_load(sx_bundle_kind_name(kind), &schema) < 0) {
        sx_report_add(r, SX_SEV_ERROR, "schema-error", rel, NULL, "%s", sx_errmsg());
        return;
    }
    sx_schema_check_dict(schema, info, NULL, sx_plist_string(info, "CFBundleIdentifier"), rel,
                         r);
    check_package_type(info, kind, rel, r);
    if (kind == SX_BUNDLE_SYSEXT && check_cat)
        check_category(schema, info, ents, rel, r);
    json_object_put(schema);
}

void sx_validate_info(plist_t info, sx_bundle_kind kind, const char *info_rel, sx_report *r)
{
    if (!info || plist_get_node_type(info) != PLIST_DICT) {
        sx_report_add(r, SX_SEV_ERROR, "wrong-type", info_rel, NULL,
                      "expected a dictionary at the top level, got %s", sx_plist_type_name(info));
        return;
    }
    validate_info(info, kind, NULL, true, info_rel, r);
}

void sx_validate_info_mem(const void *data, size_t len, sx_bundle_kind kind, sx_report *r)
{
    plist_t info = NULL;
    if (sx_plist_parse(data, len, "Info.plist", &info) < 0) {
        sx_report_add(r, SX_SEV_ERROR, "malformed-plist", "Info.plist", NULL, "%s", sx_errmsg());
        return;
    }
    sx_validate_info(info, kind, "Info.plist", r);
    plist_free(info);
}

static void check_executable(const char *path, const char *exe_rel, sx_report *r,
                             const char *info_rel)
{
    _sx_cleanup_free_ char *full = sx_path_join(path, exe_rel);
    struct stat st;
    if (!full) {
        r->oom = true;
        return;
    }
    if (lstat(full, &st) < 0) {
        sx_report_add(r, SX_SEV_ERROR, "missing-executable", info_rel, "CFBundleExecutable",
                      "the executable '%s' does not exist", exe_rel);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        sx_report_add(r, SX_SEV_ERROR, "executable-not-regular", info_rel, "CFBundleExecutable",
                      "'%s' is not a regular file", exe_rel);
        return;
    }
    if (!(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
        sx_report_add(r, SX_SEV_ERROR, "executable-not-executable", info_rel,
                      "CFBundleExecutable", "'%s' has no execute permission (mode %04o)", exe_rel,
                      (unsigned)(st.st_mode & 07777));
}

static void check_icon(plist_t info, const char *path, bool flat, const char *prefix,
                       const char *info_rel, sx_report *r)
{
    const char *icon = sx_plist_string(info, "CFBundleIconFile");
    if (!icon || !sx_bundle_safe_name(icon))
        return;
    const char *dir = flat ? "" : "Contents/Resources/";
    _sx_cleanup_free_ char *rel = NULL, *rel2 = NULL;
    if (asprintf(&rel, "%s%s", dir, icon) < 0 || asprintf(&rel2, "%s%s.icns", dir, icon) < 0) {
        r->oom = true;
        return;
    }
    _sx_cleanup_free_ char *a = sx_path_join(path, rel), *b = sx_path_join(path, rel2);
    if (!a || !b) {
        r->oom = true;
        return;
    }
    if (!sx_path_exists(a) && !sx_path_exists(b))
        sx_report_add(r, SX_SEV_WARNING, "missing-icon-file", info_rel, "CFBundleIconFile",
                      "the icon '%s%s' does not exist", prefix, rel);
}

static int validate_at(const char *path, sx_bundle_kind kind, const char *prefix, int depth,
                       sx_report *r, char **id_out);

static int embedded_filter(const struct dirent *e)
{
    return strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
}

static void validate_embedded(const char *contents, const char *prefix, bool flat, int depth,
                              sx_report *r, bool *any)
{
    _sx_cleanup_free_ char *dir = sx_path_join(contents, "Library/SystemExtensions");
    if (!dir) {
        r->oom = true;
        return;
    }
    struct dirent **list = NULL;
    int n = scandir(dir, &list, embedded_filter, alphasort);
    if (n < 0)
        return; /* no extensions embedded */
    const char *sub = flat ? "Library/SystemExtensions/" : "Contents/Library/SystemExtensions/";
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        _sx_cleanup_free_ char *full = sx_path_join(dir, name);
        _sx_cleanup_free_ char *rel = NULL;
        if (!full || asprintf(&rel, "%s%s%s", prefix, sub, name) < 0) {
            rel = NULL;
            r->oom = true;
            continue;
        }
        sx_bundle_kind k = sx_bundle_kind_from_path(name);
        if (k != SX_BUNDLE_DEXT && k != SX_BUNDLE_SYSEXT) {
            sx_report_add(r, SX_SEV_ERROR, "embedded-unknown-kind", rel, NULL,
                          "only .dext and .systemextension bundles belong in "
                          "Library/SystemExtensions");
            continue;
        }
        struct stat st;
        if (lstat(full, &st) < 0 || !S_ISDIR(st.st_mode)) {
            /* A symlink could point anywhere outside the app: not followed. */
            sx_report_add(r, SX_SEV_ERROR, "embedded-not-a-bundle", rel, NULL,
                          "an embedded extension must be a directory (not a symlink or file)");
            continue;
        }
        *any = true;
        _sx_cleanup_free_ char *inner = NULL, *id = NULL;
        if (asprintf(&inner, "%s/", rel) < 0) {
            inner = NULL;
            r->oom = true;
            continue;
        }
        if (validate_at(full, k, inner, depth + 1, r, &id) < 0) {
            sx_report_add(r, SX_SEV_ERROR, "embedded-unreadable", rel, NULL, "%s", sx_errmsg());
            continue;
        }
        if (id) {
            _sx_cleanup_free_ char *want = NULL;
            if (asprintf(&want, "%s%s", id, sx_bundle_kind_extension(k)) < 0) {
                want = NULL;
                r->oom = true;
            } else if (strcmp(want, name)) {
                sx_report_add(r, SX_SEV_ERROR, "embedded-misnamed", rel, NULL,
                              "an embedded extension must be named after its "
                              "CFBundleIdentifier: expected '%s'",
                              want);
            }
        }
    }
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static int validate_at(const char *path, sx_bundle_kind kind, const char *prefix, int depth,
                       sx_report *r, char **id_out)
{
    bool flat = false;
    _sx_cleanup_free_ char *contents = NULL, *info_file = NULL, *info_rel = NULL;
    plist_t info = NULL, ents = NULL;
    int ret = sx_bundle_layout(path, kind, &flat, &contents);
    if (ret < 0)
        return ret;
    info_file = sx_path_join(contents, "Info.plist");
    info_rel = relpath(prefix, flat ? "Info.plist" : "Contents/Info.plist");
    if (!info_file || !info_rel)
        return sx_err(SYSEXT_ENOMEM, "out of memory");

    if (!sx_path_exists(info_file)) {
        sx_report_add(r, SX_SEV_ERROR, "missing-info-plist", info_rel, NULL,
                      "the bundle has no Info.plist");
        return 0;
    }
    if (sx_plist_read_file(info_file, SX_INFO_PLIST_MAX, &info) < 0) {
        sx_report_add(r, SX_SEV_ERROR, "malformed-plist", info_rel, NULL, "%s", sx_errmsg());
        return 0;
    }
    if (plist_get_node_type(info) != PLIST_DICT) {
        sx_report_add(r, SX_SEV_ERROR, "wrong-type", info_rel, NULL,
                      "expected a dictionary at the top level, got %s", sx_plist_type_name(info));
        plist_free(info);
        return 0;
    }

    if (sx_bundle_read_entitlements(contents, &ents) < 0) {
        _sx_cleanup_free_ char *erel =
            relpath(prefix, flat ? "_CodeSignature/CodeEntitlements"
                                 : "Contents/_CodeSignature/CodeEntitlements");
        sx_report_add(r, SX_SEV_ERROR, "malformed-entitlements", erel, NULL, "%s", sx_errmsg());
        ents = NULL;
    }

    validate_info(info, kind, ents, true, info_rel, r);

    const char *exe = sx_plist_string(info, "CFBundleExecutable");
    if (exe && sx_bundle_safe_name(exe)) {
        _sx_cleanup_free_ char *exe_rel = relpath(flat ? "" : "Contents/MacOS/", exe);
        if (!exe_rel)
            r->oom = true;
        else
            check_executable(path, exe_rel, r, info_rel);
    }
    check_icon(info, path, flat, prefix, info_rel, r);

    bool embeds = false;
    if (kind == SX_BUNDLE_APP) {
        if (depth < SX_VALIDATE_MAX_DEPTH)
            validate_embedded(contents, prefix, flat, depth, r, &embeds);
        else
            sx_report_add(r, SX_SEV_ERROR, "nested-too-deep", prefix, NULL,
                          "bundles nested deeper than %d levels", SX_VALIDATE_MAX_DEPTH);
    }

    if (ents) {
        sx_ent_catalog *cat = NULL;
        _sx_cleanup_free_ char *erel =
            relpath(prefix, flat ? "_CodeSignature/CodeEntitlements"
                                 : "Contents/_CodeSignature/CodeEntitlements");
        if (sx_ent_catalog_load(&cat) < 0)
            sx_report_add(r, SX_SEV_ERROR, "schema-error", erel, NULL, "%s", sx_errmsg());
        else
            sx_ent_check(cat, ents, kind, embeds, erel, r);
        sx_ent_catalog_free(cat);
        plist_free(ents);
    }

    if (id_out) {
        const char *id = sx_plist_string(info, "CFBundleIdentifier");
        *id_out = id ? strdup(id) : NULL;
    }
    plist_free(info);
    return 0;
}

int sx_validate_bundle(const char *path, sx_report *r)
{
    if (!path || !*path)
        return sx_err(SYSEXT_EINVAL, "no bundle path given");
    sx_bundle_kind kind = sx_bundle_kind_from_path(path);
    if (kind == SX_BUNDLE_UNKNOWN)
        return sx_err(SYSEXT_EINVAL,
                      "%s: not a bundle: expected a name ending in .app, .dext or "
                      ".systemextension",
                      path);
    struct stat st;
    if (stat(path, &st) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    if (!S_ISDIR(st.st_mode))
        return sx_err(SYSEXT_EINVAL, "%s: a bundle must be a directory", path);
    _sx_cleanup_free_ char *id = NULL;
    int ret = validate_at(path, kind, "", 0, r, &id);
    if (ret < 0)
        return ret;
    /* Standalone extensions are renamed when embedded, so a mismatch here is only a warning. */
    if (id && kind != SX_BUNDLE_APP) {
        _sx_cleanup_free_ char *want = NULL;
        _sx_cleanup_free_ char *trimmed = strdup(path);
        if (!trimmed || asprintf(&want, "%s%s", id, sx_bundle_kind_extension(kind)) < 0) {
            want = NULL;
            r->oom = true;
        } else {
            for (size_t n = strlen(trimmed); n > 1 && trimmed[n - 1] == '/'; n--)
                trimmed[n - 1] = '\0';
            if (strcmp(sx_path_basename(trimmed), want))
                sx_report_add(r, SX_SEV_WARNING, "bundle-name-mismatch", NULL, NULL,
                              "'%s' is not named after its CFBundleIdentifier ('%s'); it must "
                              "be when embedded in an app",
                              sx_path_basename(trimmed), want);
        }
    }
    return 0;
}

int sx_validate_render(const sx_report *r, const char *path, sx_bundle_kind kind, bool as_json,
                       char **out)
{
    size_t errors = sx_report_count(r, SX_SEV_ERROR), warnings = sx_report_count(r, SX_SEV_WARNING);
    bool valid = errors == 0 && !r->oom;
    if (as_json) {
        json_object *o = json_object_new_object();
        if (!o)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        json_object_object_add(o, "path", json_object_new_string(path));
        json_object_object_add(o, "kind", json_object_new_string(sx_bundle_kind_name(kind)));
        json_object_object_add(o, "valid", json_object_new_boolean(valid));
        json_object_object_add(o, "errors", json_object_new_int64((int64_t)errors));
        json_object_object_add(o, "warnings", json_object_new_int64((int64_t)warnings));
        json_object_object_add(o, "complete", json_object_new_boolean(!r->oom));
        json_object_object_add(o, "diagnostics", sx_report_to_json(r));
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);
        char *dup = s ? strdup(s) : NULL;
        json_object_put(o);
        if (!dup)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        *out = dup;
        return 0;
    }
    sx_buf b = SX_BUF_INIT;
    int e = sx_report_render_text(r, &b);
    if (e == 0)
        e = sx_buf_printf(&b, "%s: %s (%zu error%s, %zu warning%s)\n", path,
                          valid ? "valid" : "invalid", errors, errors == 1 ? "" : "s", warnings,
                          warnings == 1 ? "" : "s");
    if (e < 0) {
        sx_buf_free(&b);
        return e;
    }
    *out = sx_buf_steal_str(&b);
    return *out ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
}

int sysext_bundle_validate(const char *path, unsigned flags, char **out_text)
{
    SX_ASSERT_ARG(path);
    sx_report r;
    sx_report_init(&r);
    int ret = sx_validate_bundle(path, &r);
    if (ret < 0) {
        sx_report_free(&r);
        return ret;
    }
    if (out_text) {
        char *text = NULL;
        ret = sx_validate_render(&r, path, sx_bundle_kind_from_path(path),
                                 (flags & SYSEXT_OUTPUT_JSON) != 0, &text);
        if (ret < 0) {
            sx_report_free(&r);
            return ret;
        }
        *out_text = text;
    }
    size_t errors = sx_report_count(&r, SX_SEV_ERROR);
    if (errors || r.oom)
        ret = sx_err(SYSEXT_EINVALID, "%s: %zu error%s found", path, errors,
                     errors == 1 ? "" : "s");
    sx_report_free(&r);
    return ret;
}
