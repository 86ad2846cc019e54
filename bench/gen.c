#include "util/common.h"

#include <fcntl.h>
#include <plist/plist.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/gen.h"
#include "util/buf.h"
#include "util/fs.h"

/* Files per leaf directory of the payload tree. */
#define FILES_PER_DIR 32u

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int sx_gen_kind_parse(const char *s, sx_gen_kind *out)
{
    if (!strcmp(s, "app"))
        *out = SX_GEN_APP;
    else if (!strcmp(s, "dext"))
        *out = SX_GEN_DEXT;
    else if (!strcmp(s, "sysext"))
        *out = SX_GEN_SYSEXT;
    else
        return sx_err(SYSEXT_EINVAL, "unknown kind '%s' (expected app, dext or sysext)", s);
    return 0;
}

static int write_all(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    const uint8_t *p = data;
    while (len) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            return sx_err_errno(SYSEXT_EIO, e, "%s", path);
        }
        p += k;
        len -= (size_t)k;
    }
    if (fchmod(fd, mode) < 0 || close(fd) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    return 0;
}

static const char *const words[] = {
    "driver", "kit", "system", "extension", "bundle", "signature", "interface", "endpoint",
    "device", "queue", "memory", "descriptor", "service", "property", "matching", "class",
};

/* About half random bytes, half words: deflate gets roughly 2:1, like real resources. */
static void fill(uint8_t *p, size_t n, uint64_t *rng)
{
    size_t i = 0;
    while (i < n) {
        uint64_t r = splitmix(rng);
        size_t run = 512 + (size_t)(r % 3584);
        if (run > n - i)
            run = n - i;
        if (r & (1ull << 40)) {
            for (size_t j = 0; j < run; j += 8) {
                uint64_t v = splitmix(rng);
                size_t k = run - j < 8 ? run - j : 8;
                memcpy(p + i + j, &v, k);
            }
        } else {
            size_t j = 0;
            while (j < run) {
                const char *w = words[splitmix(rng) % SX_ARRAY_SIZE(words)];
                size_t wl = strlen(w);
                for (size_t k = 0; k < wl && j < run; k++)
                    p[i + j++] = (uint8_t)w[k];
                if (j < run)
                    p[i + j++] = ' ';
            }
        }
        i += run;
    }
}

static int write_payload(const char *path, uint64_t size, uint64_t seed, uint64_t index)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    uint64_t rng = seed ^ (index * 0xd1342543de82ef95ull);
    static __thread uint8_t buf[1u << 16];
    int r = 0;
    while (size && r == 0) {
        size_t n = size < sizeof(buf) ? (size_t)size : sizeof(buf);
        fill(buf, n, &rng);
        size_t off = 0;
        while (off < n) {
            ssize_t k = write(fd, buf + off, n - off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                r = sx_err_errno(SYSEXT_EIO, errno, "%s", path);
                break;
            }
            off += (size_t)k;
        }
        size -= n;
    }
    if (fchmod(fd, 0644) < 0 && r == 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    if (close(fd) < 0 && r == 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "%s", path);
    return r;
}

/* Leaf directory `k` of the payload tree, relative to the resources folder ("" at depth 0). */
static int leaf_path(uint64_t k, unsigned depth, uint64_t fan, sx_buf *out)
{
    out->len = 0;
    int r = sx_buf_puts(out, "");
    uint64_t div = 1;
    for (unsigned j = 1; j < depth; j++)
        div *= fan;
    for (unsigned j = 0; j < depth && r == 0; j++) {
        r = sx_buf_printf(out, "%sd%llu", j ? "/" : "", (unsigned long long)((k / div) % fan));
        div = div / fan ? div / fan : 1;
    }
    return r;
}

static const char *const exts[] = {".dat", ".txt", ".strings", ".png"};

static int payload_name(uint64_t i, uint64_t leaves, unsigned depth, uint64_t fan, sx_buf *out)
{
    int r = leaf_path(i % leaves, depth, fan, out);
    if (r == 0)
        r = sx_buf_printf(out, "%sfile%06llu%s", depth ? "/" : "", (unsigned long long)i,
                          exts[i % SX_ARRAY_SIZE(exts)]);
    return r;
}

static plist_t make_info(const sx_gen_opts *o, const char *id, const char *exe, const char *name)
{
    static const char *const types[] = {"APPL", "DEXT", "SYSX"};
    plist_t d = plist_new_dict();
    plist_dict_set_item(d, "CFBundleDevelopmentRegion", plist_new_string("en"));
    plist_dict_set_item(d, "CFBundleExecutable", plist_new_string(exe));
    plist_dict_set_item(d, "CFBundleIdentifier", plist_new_string(id));
    plist_dict_set_item(d, "CFBundleInfoDictionaryVersion", plist_new_string("6.0"));
    plist_dict_set_item(d, "CFBundleName", plist_new_string(name));
    plist_dict_set_item(d, "CFBundlePackageType", plist_new_string(types[o->kind]));
    plist_dict_set_item(d, "CFBundleShortVersionString", plist_new_string("1.0"));
    plist_dict_set_item(d, "CFBundleVersion", plist_new_string("1"));
    if (o->kind == SX_GEN_APP) {
        plist_dict_set_item(d, "CFBundleDisplayName", plist_new_string(name));
        plist_dict_set_item(d, "CFBundleIconFile", plist_new_string("AppIcon"));
    } else if (o->kind == SX_GEN_DEXT) {
        plist_dict_set_item(d, "OSBundleUsageDescription",
                            plist_new_string("Synthetic driver for benchmarks"));
        plist_t p = plist_new_dict();
        plist_dict_set_item(p, "CFBundleIdentifier", plist_new_string(id));
        plist_dict_set_item(p, "CFBundleIdentifierKernel", plist_new_string("com.apple.kpi.iokit"));
        plist_dict_set_item(p, "IOClass", plist_new_string("IOUserService"));
        plist_dict_set_item(p, "IOMatchCategory", plist_new_string(id));
        plist_dict_set_item(p, "IOProviderClass", plist_new_string("IOUSBHostInterface"));
        plist_dict_set_item(p, "IOUserClass", plist_new_string(exe));
        plist_dict_set_item(p, "IOUserServerName", plist_new_string(id));
        plist_dict_set_item(p, "bInterfaceNumber", plist_new_uint(0));
        plist_dict_set_item(p, "idProduct", plist_new_uint(0x5678 + (o->seed & 0xff)));
        plist_dict_set_item(p, "idVendor", plist_new_uint(0x1234));
        plist_t ps = plist_new_dict();
        plist_dict_set_item(ps, exe, p);
        plist_dict_set_item(d, "IOKitPersonalities", ps);
    } else {
        plist_dict_set_item(d, "NSSystemExtensionUsageDescription",
                            plist_new_string("Synthetic network extension for benchmarks"));
        plist_t ne = plist_new_dict(), classes = plist_new_dict();
        _sx_cleanup_free_ char *mach = NULL;
        if (asprintf(&mach, "%s.xpc", id) < 0) {
            plist_free(d);
            plist_free(ne);
            plist_free(classes);
            return NULL;
        }
        plist_dict_set_item(classes, "com.apple.networkextension.filter-data",
                            plist_new_string("FilterDataProvider"));
        plist_dict_set_item(ne, "NEMachServiceName", plist_new_string(mach));
        plist_dict_set_item(ne, "NEProviderClasses", classes);
        plist_dict_set_item(d, "NetworkExtension", ne);
    }
    return d;
}

/* The bundle's name without extension, its identifier and executable name. */
static int names(const sx_gen_opts *o, const char *out, char **name, char **id, char **exe)
{
    const char *base = sx_path_basename(out);
    const char *dot = strrchr(base, '.');
    *name = strndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
    if (!*name)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    const char *last = strrchr(*name, '.');
    const char *e = last ? last + 1 : *name;
    *exe = malloc(strlen(e) + 4);
    if (!*exe)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    size_t n = 0;
    for (const char *s = e; *s; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
            (*exe)[n++] = *s;
    if (!n)
        (*exe)[n++] = 'X';
    (*exe)[n] = '\0';
    if (o->id)
        *id = strdup(o->id);
    else if (last)
        *id = strdup(*name);
    else if (asprintf(id, "com.example.%s", *exe) < 0)
        *id = NULL;
    return *id ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
}

static int generate(const sx_gen_opts *o, const char *root, const char *id, const char *exe,
                    const char *name)
{
    bool flat = o->kind == SX_GEN_DEXT;
    _sx_cleanup_free_ char *contents = flat ? strdup(root) : sx_path_join(root, "Contents");
    _sx_cleanup_free_ char *res = contents ? sx_path_join(contents, "Resources") : NULL;
    _sx_cleanup_free_ char *exedir = contents ? (flat ? strdup(contents) : sx_path_join(contents, "MacOS")) : NULL;
    _sx_cleanup_free_ char *exepath = exedir ? sx_path_join(exedir, exe) : NULL;
    _sx_cleanup_free_ char *infopath = contents ? sx_path_join(contents, "Info.plist") : NULL;
    if (!res || !exepath || !infopath)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int r;
    if ((r = sx_mkdir_p(res, 0755)) < 0 || (r = sx_mkdir_p(exedir, 0755)) < 0)
        return r;

    plist_t info = make_info(o, id, exe, name);
    if (!info)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    char *xml = NULL;
    uint32_t xlen = 0;
    plist_to_xml(info, &xml, &xlen);
    plist_free(info);
    if (!xml)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    r = write_all(infopath, xml, xlen, 0644);
    free(xml);
    if (r < 0)
        return r;
    char script[160];
    int k = snprintf(script, sizeof(script),
                     "#!/bin/sh\n# generated by sysext-gen-bundle, seed %llu\nexit 0\n",
                     (unsigned long long)o->seed);
    if ((r = write_all(exepath, script, (size_t)k, 0755)) < 0)
        return r;
    if (o->kind == SX_GEN_APP) {
        _sx_cleanup_free_ char *icon = sx_path_join(res, "AppIcon.icns");
        static const uint8_t icns[8] = {'i', 'c', 'n', 's', 0, 0, 0, 8};
        if (!icon)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        if ((r = write_all(icon, icns, sizeof(icns), 0644)) < 0)
            return r;
    }

    if (!o->files)
        return o->symlinks ? sx_err(SYSEXT_EINVAL, "--symlinks needs at least one file") : 0;
    uint64_t leaves = (o->files + FILES_PER_DIR - 1) / FILES_PER_DIR, fan = 1;
    if (o->depth) {
        /* the smallest fan-out with fan^depth >= leaves */
        for (fan = 2;; fan++) {
            uint64_t cap = 1;
            unsigned j;
            for (j = 0; j < o->depth && cap < leaves; j++)
                cap *= fan;
            if (cap >= leaves)
                break;
        }
    } else {
        leaves = 1;
    }
    /* Sizes: pseudo-random weights scaled to exactly o->bytes in all. */
    uint64_t rng = o->seed ^ 0x5eed5eed5eed5eedull, wsum = 0;
    uint32_t *w = malloc(o->files * sizeof(*w));
    if (!w)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < o->files; i++) {
        w[i] = 1 + (uint32_t)(splitmix(&rng) % 1000);
        wsum += w[i];
    }
    sx_buf rel = SX_BUF_INIT;
    uint64_t given = 0, wacc = 0;
    for (uint64_t i = 0; i < o->files && r == 0; i++) {
        wacc += w[i];
        uint64_t upto = (uint64_t)((unsigned __int128)o->bytes * wacc / wsum);
        uint64_t size = upto - given;
        given = upto;
        if ((r = payload_name(i, leaves, o->depth, fan, &rel)) < 0)
            break;
        char *p = sx_path_join(res, (char *)rel.data);
        char *d = p ? sx_path_dirname(p) : NULL;
        if (!d)
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
        else if ((r = sx_mkdir_p(d, 0755)) == 0)
            r = write_payload(p, size, o->seed, i);
        free(p);
        free(d);
    }
    free(w);
    sx_buf target = SX_BUF_INIT;
    for (uint64_t j = 0; j < o->symlinks && r == 0; j++) {
        uint64_t leaf = (j * 7919u) % leaves, t = (j * 104729u + o->seed) % o->files;
        if ((r = leaf_path(leaf, o->depth, fan, &rel)) < 0)
            break;
        r = sx_buf_printf(&rel, "%slink%05llu", o->depth ? "/" : "", (unsigned long long)j);
        target.len = 0;
        for (unsigned k2 = 0; k2 < o->depth && r == 0; k2++)
            r = sx_buf_puts(&target, "../");
        if (r == 0)
            r = sx_buf_puts(&target, "");
        sx_buf tb = SX_BUF_INIT;
        if (r == 0 && (r = payload_name(t, leaves, o->depth, fan, &tb)) == 0)
            r = sx_buf_puts(&target, (char *)tb.data);
        sx_buf_free(&tb);
        if (r < 0)
            break;
        char *p = sx_path_join(res, (char *)rel.data);
        char *d = p ? sx_path_dirname(p) : NULL;
        if (!d)
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
        else if ((r = sx_mkdir_p(d, 0755)) == 0 && symlink((char *)target.data, p) < 0)
            r = sx_err_errno(sx_errno_code(errno), errno, "symlink %s", p);
        free(p);
        free(d);
    }
    sx_buf_free(&target);
    sx_buf_free(&rel);
    return r;
}

int sx_gen_bundle(const sx_gen_opts *o, const char *out)
{
    if (sx_path_exists(out))
        return sx_err(SYSEXT_EEXISTS, "%s already exists", out);
    _sx_cleanup_free_ char *name = NULL, *id = NULL, *exe = NULL, *tmp = NULL, *root = NULL;
    int r = names(o, out, &name, &id, &exe);
    if (r < 0)
        return r;
    if ((r = sx_mkdtemp_beside(out, &tmp)) < 0)
        return r;
    root = sx_path_join(tmp, sx_path_basename(out));
    if (!root)
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
    else if (mkdir(root, 0755) < 0 || chmod(root, 0755) < 0)
        r = sx_err_errno(SYSEXT_EIO, errno, "mkdir %s", root);
    if (r == 0)
        r = generate(o, root, id, exe, name);
    if (r == 0 && rename(root, out) < 0)
        r = sx_err_errno(sx_errno_code(errno), errno, "rename to %s", out);
    sx_rm_rf(tmp);
    return r;
}
