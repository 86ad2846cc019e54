/* Opening a bundle: its kind, layout and parsed Info.plist. */
#include "util/common.h"
#include "bundle/bundle.h"
#include "sysext/bundle.h"
#include "util/fs.h"
#include "util/reader.h"

#include <sys/stat.h>

static const struct {
    sx_bundle_kind kind;
    const char *name, *ext, *package_type;
} kinds[] = {
    {SX_BUNDLE_APP, "app", ".app", "APPL"},
    {SX_BUNDLE_DEXT, "dext", ".dext", "DEXT"},
    {SX_BUNDLE_SYSEXT, "sysext", ".systemextension", "SYSX"},
};

sx_bundle_kind sx_bundle_kind_from_path(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++) {
        size_t e = strlen(kinds[i].ext);
        if (n > e && !memcmp(path + n - e, kinds[i].ext, e) && path[n - e - 1] != '/')
            return kinds[i].kind;
    }
    return SX_BUNDLE_UNKNOWN;
}

sx_bundle_kind sx_bundle_kind_parse(const char *name)
{
    if (!name)
        return SX_BUNDLE_UNKNOWN;
    if (!strcmp(name, "systemextension"))
        return SX_BUNDLE_SYSEXT;
    for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++)
        if (!strcmp(name, kinds[i].name))
            return kinds[i].kind;
    return SX_BUNDLE_UNKNOWN;
}

const char *sx_bundle_kind_name(sx_bundle_kind kind)
{
    for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++)
        if (kinds[i].kind == kind)
            return kinds[i].name;
    return "unknown";
}

const char *sx_bundle_kind_extension(sx_bundle_kind kind)
{
    for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++)
        if (kinds[i].kind == kind)
            return kinds[i].ext;
    return "";
}

const char *sx_bundle_kind_package_type(sx_bundle_kind kind)
{
    for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++)
        if (kinds[i].kind == kind)
            return kinds[i].package_type;
    return "";
}

bool sx_bundle_safe_name(const char *name)
{
    return name && *name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

void sx_bundle_free(sx_bundle *b)
{
    if (!b)
        return;
    free(b->path);
    free(b->contents);
    free(b->info_path);
    if (b->info)
        plist_free(b->info);
    free(b->exe_path);
    free(b->exe_relpath);
    free(b);
}

int sx_bundle_layout(const char *path, sx_bundle_kind kind, bool *flat, char **contents)
{
    /* .dext is flat; accept the Contents/ form too (seen in third-party builds). Any other
     * signed bundle (a framework, a plug-in) is flat unless it has a Contents/ folder. */
    _sx_cleanup_free_ char *c = sx_path_join(path, "Contents");
    if (!c)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    bool f = kind == SX_BUNDLE_DEXT || (kind == SX_BUNDLE_UNKNOWN && !sx_is_dir(c));
    if (f) {
        _sx_cleanup_free_ char *flat_info = sx_path_join(path, "Info.plist");
        _sx_cleanup_free_ char *deep_info = sx_path_join(c, "Info.plist");
        if (!flat_info || !deep_info)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        if (!sx_path_exists(flat_info) && sx_path_exists(deep_info))
            f = false;
    }
    char *res = f ? strdup(path) : SX_TAKE_PTR(c);
    if (!res)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    *flat = f;
    *contents = res;
    return 0;
}

static int open_bundle(const char *path, bool any_kind, sx_bundle **out)
{
    if (!path || !*path)
        return sx_err(SYSEXT_EINVAL, "no bundle path given");
    sx_bundle *b = calloc(1, sizeof(*b));
    int r;
    if (!b)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    b->path = strdup(path);
    if (!b->path) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t n = strlen(b->path); n > 1 && b->path[n - 1] == '/'; n--)
        b->path[n - 1] = '\0';
    b->kind = sx_bundle_kind_from_path(b->path);
    if (b->kind == SX_BUNDLE_UNKNOWN && !any_kind) {
        r = sx_err(SYSEXT_EINVAL, "%s: not a bundle: expected a name ending in .app, .dext or "
                   ".systemextension", path);
        goto fail;
    }
    struct stat st;
    if (stat(b->path, &st) < 0) {
        r = sx_err_errno(sx_errno_code(errno), errno, "%s", b->path);
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        r = sx_err(SYSEXT_EFORMAT, "%s: a bundle must be a directory", b->path);
        goto fail;
    }
    r = sx_bundle_layout(b->path, b->kind, &b->flat, &b->contents);
    if (r < 0)
        goto fail;
    b->info_path = sx_path_join(b->contents, "Info.plist");
    if (!b->info_path) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto fail;
    }
    r = sx_plist_read_file(b->info_path, SX_INFO_PLIST_MAX, &b->info);
    if (r < 0)
        goto fail;
    if (plist_get_node_type(b->info) != PLIST_DICT) {
        r = sx_err(SYSEXT_EFORMAT, "%s: expected a dictionary at the top level, got %s",
                   b->info_path, sx_plist_type_name(b->info));
        goto fail;
    }
    b->identifier = sx_plist_string(b->info, "CFBundleIdentifier");
    b->executable = sx_plist_string(b->info, "CFBundleExecutable");
    b->version = sx_plist_string(b->info, "CFBundleVersion");
    b->short_version = sx_plist_string(b->info, "CFBundleShortVersionString");
    /* An executable name that could leave the bundle gets no path; validate reports it. */
    if (sx_bundle_safe_name(b->executable)) {
        const char *rel = b->flat ? "" : "Contents/MacOS/";
        if (asprintf(&b->exe_relpath, "%s%s", rel, b->executable) < 0) {
            b->exe_relpath = NULL;
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto fail;
        }
        b->exe_path = sx_path_join(b->path, b->exe_relpath);
        if (!b->exe_path) {
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto fail;
        }
    }
    *out = b;
    return 0;
fail:
    sx_bundle_free(b);
    return r;
}

int sx_bundle_open(const char *path, sx_bundle **out)
{
    return open_bundle(path, false, out);
}

int sx_bundle_open_any(const char *path, sx_bundle **out)
{
    return open_bundle(path, true, out);
}

int sx_bundle_parse_entitlements_blob(const uint8_t *data, size_t len, const char *what,
                                      plist_t *out)
{
    sx_reader rd;
    uint32_t magic = 0, blen = 0;
    const uint8_t *xml = NULL;
    plist_t p = NULL;
    int r;
    sx_reader_init(&rd, data, len, what);
    if ((r = sx_rd_u32be(&rd, &magic)) < 0 || (r = sx_rd_u32be(&rd, &blen)) < 0)
        return r;
    if (magic != SX_ENTITLEMENTS_MAGIC)
        return sx_err(SYSEXT_EFORMAT, "%s: magic 0x%08x at offset 0, expected 0x%08x", what,
                      magic, SX_ENTITLEMENTS_MAGIC);
    if (blen < 8 || blen > len)
        return sx_err(SYSEXT_EFORMAT, "%s: blob length %u at offset 4 is outside 8..%zu", what,
                      blen, len);
    if ((r = sx_rd_bytes(&rd, blen - 8, &xml)) < 0)
        return r;
    if ((r = sx_plist_parse(xml, blen - 8, what, &p)) < 0)
        return r;
    if (plist_get_node_type(p) != PLIST_DICT) {
        r = sx_err(SYSEXT_EFORMAT, "%s: expected a dictionary, got %s", what,
                   sx_plist_type_name(p));
        plist_free(p);
        return r;
    }
    *out = p;
    return 0;
}

int sx_bundle_read_entitlements(const char *contents, plist_t *out)
{
    _sx_cleanup_free_ char *file = sx_path_join(contents, "_CodeSignature/CodeEntitlements");
    if (!file)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    *out = NULL;
    if (!sx_path_exists(file))
        return 0;
    uint8_t *data = NULL;
    size_t len = 0;
    int r = sx_read_file(file, SX_ENTITLEMENTS_MAX, &data, &len);
    if (r < 0)
        return r;
    r = sx_bundle_parse_entitlements_blob(data, len, file, out);
    free(data);
    return r;
}

/* --- the public handle --------------------------------------------------------------------- */

_Static_assert((int)SYSEXT_BUNDLE_APP == (int)SX_BUNDLE_APP &&
                   (int)SYSEXT_BUNDLE_DEXT == (int)SX_BUNDLE_DEXT &&
                   (int)SYSEXT_BUNDLE_SYSEXT == (int)SX_BUNDLE_SYSEXT,
               "public and internal bundle kinds agree");

struct sysext_bundle {
    sx_bundle *b;
};

const char *sysext_bundle_kind_name(sysext_bundle_kind kind)
{
    return sx_bundle_kind_name((sx_bundle_kind)kind);
}

sysext_bundle_kind sysext_bundle_kind_parse(const char *name)
{
    return (sysext_bundle_kind)sx_bundle_kind_parse(name);
}

int sysext_bundle_open(sysext_bundle **out, const char *path)
{
    SX_ASSERT_ARG(out);
    SX_ASSERT_ARG(path);
    sysext_bundle *h = calloc(1, sizeof(*h));
    if (!h)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int r = sx_bundle_open(path, &h->b);
    if (r < 0) {
        free(h);
        return r;
    }
    *out = h;
    return 0;
}

void sysext_bundle_free(sysext_bundle *h)
{
    if (!h)
        return;
    sx_bundle_free(h->b);
    free(h);
}

sysext_bundle_kind sysext_bundle_get_kind(const sysext_bundle *h)
{
    return h ? (sysext_bundle_kind)h->b->kind : SYSEXT_BUNDLE_UNKNOWN;
}

const char *sysext_bundle_path(const sysext_bundle *h)
{
    return h ? h->b->path : NULL;
}

const char *sysext_bundle_identifier(const sysext_bundle *h)
{
    return h ? h->b->identifier : NULL;
}

const char *sysext_bundle_version(const sysext_bundle *h)
{
    return h ? h->b->version : NULL;
}

const char *sysext_bundle_short_version(const sysext_bundle *h)
{
    return h ? h->b->short_version : NULL;
}

const char *sysext_bundle_executable_path(const sysext_bundle *h)
{
    return h ? h->b->exe_path : NULL;
}
