/* Building a bundle from an Info.plist template and an executable, atomically. */
#include "util/common.h"
#include "bundle/bundle.h"
#include "sysext/bundle.h"
#include "util/fs.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int set_string(plist_t dict, const char *key, const char *value)
{
    plist_t v = plist_new_string(value);
    if (!v)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    plist_dict_set_item(dict, key, v);
    return 0;
}

/* A regular file to copy in: `what` names the option in messages. */
static int check_input_file(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s %s", what, path);
    if (!S_ISREG(st.st_mode))
        return sx_err(SYSEXT_EINVAL, "%s %s: not a regular file", what, path);
    return 0;
}

/* Copy a file, following a symlink given as input (the bundle gets the file, not the link),
 * keeping its mode. */
static int copy_in(const char *src, const char *dst)
{
    char real[PATH_MAX];
    if (!realpath(src, real))
        return sx_err_errno(sx_errno_code(errno), errno, "%s", src);
    return sx_copy_tree(real, dst);
}

static int write_plist(plist_t info, const char *file, bool binary)
{
    char *data = NULL;
    uint32_t len = 0;
    if (binary)
        plist_to_bin(info, &data, &len);
    else
        plist_to_xml(info, &data, &len);
    if (!data)
        return sx_err(SYSEXT_ERROR, "%s: cannot serialize the property list", file);
    int r = sx_write_file_atomic(file, data, len, 0644);
    if (binary)
        plist_to_bin_free(data);
    else
        plist_to_xml_free(data);
    return r;
}

static int mkdir_in(const char *root, const char *rel)
{
    _sx_cleanup_free_ char *p = sx_path_join(root, rel);
    if (!p)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    return sx_mkdir_p(p, 0755);
}

static int copy_to(const char *src, const char *root, const char *reldir, const char *name,
                   bool follow)
{
    _sx_cleanup_free_ char *dir = sx_path_join(root, reldir);
    _sx_cleanup_free_ char *dst = dir ? sx_path_join(dir, name) : NULL;
    if (!dst)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    return follow ? copy_in(src, dst) : sx_copy_tree(src, dst);
}

static char *trimmed_copy(const char *path)
{
    char *s = strdup(path);
    for (size_t n = s ? strlen(s) : 0; n > 1 && s[n - 1] == '/'; n--)
        s[n - 1] = '\0';
    return s;
}

/* Put `tmp` at `output`: never over an existing output unless `force`. */
static int install(const char *tmp, const char *output, bool force)
{
    if (!force) {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, output, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            return sx_err(SYSEXT_EEXISTS, "%s already exists (use --force to replace it)", output);
        if (errno != EINVAL && errno != ENOSYS)
            return sx_err_errno(sx_errno_code(errno), errno, "rename %s to %s", tmp, output);
        /* A file system without RENAME_NOREPLACE: check, then rename. */
        if (sx_path_exists(output))
            return sx_err(SYSEXT_EEXISTS, "%s already exists (use --force to replace it)", output);
        if (rename(tmp, output) < 0)
            return sx_err_errno(sx_errno_code(errno), errno, "rename %s to %s", tmp, output);
        return 0;
    }
    if (!sx_path_exists(output)) {
        if (rename(tmp, output) < 0)
            return sx_err_errno(sx_errno_code(errno), errno, "rename %s to %s", tmp, output);
        return 0;
    }
    _sx_cleanup_free_ char *old = NULL;
    if (asprintf(&old, "%s.old", tmp) < 0)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    if (rename(output, old) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "rename %s to %s", output, old);
    if (rename(tmp, output) < 0) {
        int e = errno;
        (void)rename(old, output);
        return sx_err_errno(sx_errno_code(e), e, "rename %s to %s", tmp, output);
    }
    return sx_rm_rf(old);
}

int sysext_bundle_build(const sysext_build_options *o)
{
    SX_ASSERT_ARG(o);
    if (o->version != SYSEXT_BUILD_OPTIONS_VERSION)
        return sx_err(SYSEXT_EINVAL, "build options version %d, expected %d", o->version,
                      SYSEXT_BUILD_OPTIONS_VERSION);
    sx_bundle_kind kind = (sx_bundle_kind)o->type;
    if (kind != SX_BUNDLE_APP && kind != SX_BUNDLE_DEXT && kind != SX_BUNDLE_SYSEXT)
        return sx_err(SYSEXT_EINVAL, "no bundle type: expected dext, sysext or app");
    if (!o->info || !o->executable || !o->output)
        return sx_err(SYSEXT_EINVAL, "an Info.plist template, an executable and an output are "
                                     "all required");
    if (sx_bundle_kind_from_path(o->output) != kind)
        return sx_err(SYSEXT_EINVAL, "output %s: a %s bundle must be named *%s", o->output,
                      sx_bundle_kind_name(kind), sx_bundle_kind_extension(kind));
    if (o->n_embeds && kind != SX_BUNDLE_APP)
        return sx_err(SYSEXT_EINVAL, "only an app can embed extensions");
    if (o->n_embeds && !o->embeds)
        return sx_err(SYSEXT_EINVAL, "%zu embeds announced but none given", o->n_embeds);

    _sx_cleanup_free_ char *output = trimmed_copy(o->output);
    if (!output)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int r = check_input_file(o->executable, "executable");
    if (r < 0)
        return r;
    if (o->icon && (r = check_input_file(o->icon, "icon")) < 0)
        return r;
    if (o->icon && !sx_bundle_safe_name(sx_path_basename(o->icon)))
        return sx_err(SYSEXT_EINVAL, "icon %s: not a file name", o->icon);
    for (size_t i = 0; i < o->n_embeds; i++) {
        const char *e = o->embeds[i];
        sx_bundle_kind k = e ? sx_bundle_kind_from_path(e) : SX_BUNDLE_UNKNOWN;
        if (k != SX_BUNDLE_DEXT && k != SX_BUNDLE_SYSEXT)
            return sx_err(SYSEXT_EINVAL, "embed %s: expected a .dext or .systemextension bundle",
                          e ? e : "(null)");
        if (!sx_is_dir(e))
            return sx_err(SYSEXT_ENOTFOUND, "embed %s: no such bundle directory", e);
    }
    if (!o->force && sx_path_exists(output))
        return sx_err(SYSEXT_EEXISTS, "%s already exists (use --force to replace it)", output);

    plist_t info = NULL;
    if ((r = sx_plist_read_file(o->info, SX_INFO_PLIST_MAX, &info)) < 0)
        return r;
    char *tmp = NULL;
    if (plist_get_node_type(info) != PLIST_DICT) {
        r = sx_err(SYSEXT_EFORMAT, "%s: expected a dictionary at the top level, got %s", o->info,
                   sx_plist_type_name(info));
        goto out;
    }

    /* Flags override the template; the template may name the executable itself. */
    if (o->identifier && (r = set_string(info, "CFBundleIdentifier", o->identifier)) < 0)
        goto out;
    if (o->bundle_version && (r = set_string(info, "CFBundleVersion", o->bundle_version)) < 0)
        goto out;
    if (o->short_version &&
        (r = set_string(info, "CFBundleShortVersionString", o->short_version)) < 0)
        goto out;
    if (o->display_name && (r = set_string(info, "CFBundleDisplayName", o->display_name)) < 0)
        goto out;
    if (o->icon && (r = set_string(info, "CFBundleIconFile", sx_path_basename(o->icon))) < 0)
        goto out;
    if ((r = set_string(info, "CFBundlePackageType", sx_bundle_kind_package_type(kind))) < 0)
        goto out;
    plist_t exe_node = plist_dict_get_item(info, "CFBundleExecutable");
    if (exe_node && plist_get_node_type(exe_node) != PLIST_STRING) {
        r = sx_err(SYSEXT_EFORMAT, "%s: CFBundleExecutable: expected string, got %s", o->info,
                   sx_plist_type_name(exe_node));
        goto out;
    }
    if (!exe_node &&
        (r = set_string(info, "CFBundleExecutable", sx_path_basename(o->executable))) < 0)
        goto out;
    const char *exe_name = sx_plist_string(info, "CFBundleExecutable");
    if (!sx_bundle_safe_name(exe_name)) {
        r = sx_err(SYSEXT_EINVAL, "CFBundleExecutable '%s' is not a plain file name",
                   exe_name ? exe_name : "");
        goto out;
    }

    if ((r = sx_mkdtemp_beside(output, &tmp)) < 0)
        goto out;
    bool flat = kind == SX_BUNDLE_DEXT;
    const char *contents = flat ? "" : "Contents";
    const char *exe_dir = flat ? "" : "Contents/MacOS";
    const char *res_dir = flat ? "" : "Contents/Resources";
    if (!flat && ((r = mkdir_in(tmp, exe_dir)) < 0 || (r = mkdir_in(tmp, res_dir)) < 0))
        goto out;
    {
        _sx_cleanup_free_ char *cdir = sx_path_join(tmp, contents);
        _sx_cleanup_free_ char *info_file = cdir ? sx_path_join(cdir, "Info.plist") : NULL;
        if (!info_file) {
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto out;
        }
        if ((r = write_plist(info, info_file, o->binary_plist != 0)) < 0)
            goto out;
    }
    if ((r = copy_to(o->executable, tmp, exe_dir, exe_name, true)) < 0)
        goto out;
    if (o->icon && (r = copy_to(o->icon, tmp, res_dir, sx_path_basename(o->icon), true)) < 0)
        goto out;
    if (o->n_embeds && (r = mkdir_in(tmp, "Contents/Library/SystemExtensions")) < 0)
        goto out;
    for (size_t i = 0; i < o->n_embeds; i++) {
        _sx_cleanup_free_ char *e = trimmed_copy(o->embeds[i]);
        if (!e) {
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto out;
        }
        _sx_cleanup_free_ char *dst = NULL;
        if (asprintf(&dst, "%s/Contents/Library/SystemExtensions/%s", tmp,
                     sx_path_basename(e)) < 0) {
            dst = NULL;
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto out;
        }
        if (sx_path_exists(dst)) {
            r = sx_err(SYSEXT_EINVAL, "embed %s: another embedded extension has the name '%s'", e,
                       sx_path_basename(e));
            goto out;
        }
        if ((r = sx_copy_tree(e, dst)) < 0)
            goto out;
    }
    if (chmod(tmp, 0755) < 0) {
        r = sx_err_errno(SYSEXT_EIO, errno, "chmod %s", tmp);
        goto out;
    }
    if ((r = sx_fsync_tree(tmp)) < 0)
        goto out;
    if ((r = install(tmp, output, o->force != 0)) < 0)
        goto out;
    free(tmp);
    tmp = NULL;
    {
        _sx_cleanup_free_ char *parent = sx_path_dirname(output);
        r = parent ? sx_fsync_dir(parent) : sx_err(SYSEXT_ENOMEM, "out of memory");
    }
out:
    if (tmp) {
        /* Keep the build's own message; the clean-up is best effort. */
        char saved[1024];
        snprintf(saved, sizeof(saved), "%s", sx_errmsg());
        (void)sx_rm_rf(tmp);
        sx_err(r, "%s", saved);
        free(tmp);
    }
    plist_free(info);
    return r;
}
