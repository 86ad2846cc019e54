#include "util/common.h"
#include "codesign/nested.h"
#include "codesign/requirement.h"
#include "codesign/superblob.h"
#include "util/fs.h"
#include "util/hex.h"

#include <sys/stat.h>

/* Nested Mach-O files are small next to this; a hostile bundle cannot make us read more. */
#define SX_NESTED_MACHO_MAX (512u << 20)

char *sx_sigdir_of(const char *bundle_path)
{
    _sx_cleanup_free_ char *contents = sx_path_join(bundle_path, "Contents");
    if (!contents)
        return NULL;
    return sx_path_join(sx_is_dir(contents) ? contents : bundle_path, "_CodeSignature");
}

int sx_nested_load(const char *path, sx_sigfiles *out)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    if (S_ISDIR(st.st_mode)) {
        _sx_cleanup_free_ char *dir = sx_sigdir_of(path);
        if (!dir)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        int r = sx_sigfiles_load(dir, out);
        if (r == SYSEXT_ENOTFOUND)
            return sx_err(SYSEXT_ENOTFOUND, "%s: nested code is unsigned", path);
        return r;
    }
    _sx_cleanup_free_ uint8_t *data = NULL;
    size_t len;
    int r = sx_read_file(path, SX_NESTED_MACHO_MAX, &data, &len);
    if (r < 0)
        return r;
    sx_macho_slice *slices = NULL;
    size_t n = 0;
    if (!sx_macho_is_macho(data, len))
        return sx_err(SYSEXT_ENOTFOUND, "%s: nested code is unsigned", path);
    r = sx_macho_slices(data, len, path, &slices, &n);
    if (r < 0)
        return r;
    if (n == 0 || !slices[0].has_signature) {
        free(slices);
        return sx_err(SYSEXT_ENOTFOUND, "%s: nested code is unsigned", path);
    }
    uint64_t off = slices[0].offset + slices[0].sig_offset;
    r = sx_sigfiles_from_superblob(data + off, (size_t)slices[0].sig_size, path, out);
    free(slices);
    return r;
}

int sx_designated_text(const sx_sigfiles *s, sx_buf *out)
{
    if (s->reqs.present) {
        const uint8_t *dr;
        size_t dr_len;
        int r = sx_reqset_find(s->reqs.data, s->reqs.len, SX_REQ_DESIGNATED, &dr, &dr_len);
        if (r == 0)
            return sx_req_to_text(dr, dr_len, out);
        if (r != SYSEXT_ENOTFOUND)
            return r;
    }
    uint8_t hashes[SX_MAX_CDS][SX_CDHASH_LEN], types[SX_MAX_CDS];
    size_t n = sx_sigfiles_cdhashes(s, hashes, types);
    for (size_t i = 0; i < n; i++) {
        char hex[2 * SX_CDHASH_LEN + 1];
        sx_hex_encode(hashes[i], SX_CDHASH_LEN, hex);
        int r = sx_buf_printf(out, "%scdhash H\"%s\"", i ? " or " : "", hex);
        if (r < 0)
            return r;
    }
    return 0;
}

int sx_nested_info_of(const char *path, sx_nested_info *out, void *payload)
{
    SX_UNUSED(payload);
    sx_sigfiles s;
    int r = sx_nested_load(path, &s);
    if (r < 0)
        return r;
    const sx_cd *best = sx_sigfiles_best_cd(&s);
    sx_buf dr = SX_BUF_INIT;
    r = best ? sx_cd_cdhash(best, out->cdhash) : sx_err(SYSEXT_EFORMAT, "%s: no CodeDirectory", path);
    if (r == 0)
        r = sx_designated_text(&s, &dr);
    sx_sigfiles_free(&s);
    if (r < 0) {
        sx_buf_free(&dr);
        return r;
    }
    out->requirement = sx_buf_steal_str(&dr);
    return out->requirement ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
}
