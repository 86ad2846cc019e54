/* SuperBlobs (reference 1.3) and the Mach-O signature locator (reference 1.5). */
#include "util/common.h"
#include "codesign/superblob.h"

#include "codesign/codedirectory.h"
#include "util/reader.h"

static int cmp_type(const void *a, const void *b)
{
    uint32_t x = ((const sx_blob_ref *)a)->type, y = ((const sx_blob_ref *)b)->type;
    return x < y ? -1 : x > y;
}

int sx_superblob_parse(const uint8_t *data, size_t len, const char *what, sx_superblob *out)
{
    SX_ASSERT_ARG(data || len == 0);
    SX_ASSERT_ARG(out);
    if (!what)
        what = "SuperBlob";
    sx_reader r;
    sx_reader_init(&r, data, len, what);
    uint32_t magic, length, count;
    int e;
    if ((e = sx_rd_u32be(&r, &magic)) < 0 || (e = sx_rd_u32be(&r, &length)) < 0 ||
        (e = sx_rd_u32be(&r, &count)) < 0)
        return e;
    if (magic != SX_CSMAGIC_EMBEDDED_SIGNATURE && magic != SX_CSMAGIC_DETACHED_SIGNATURE &&
        magic != SX_CSMAGIC_REQUIREMENTS)
        return sx_err(SYSEXT_EFORMAT, "%s: magic 0x%08x at offset 0 is not a SuperBlob", what,
                      magic);
    if (length > len)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: SuperBlob length %u at offset 4 exceeds the %zu bytes "
                      "available",
                      what, length, len);
    if (length < 12)
        return sx_err(SYSEXT_EFORMAT, "%s: SuperBlob length %u at offset 4 is below 12", what,
                      length);
    uint64_t index_end = 12 + (uint64_t)count * 8;
    if (index_end > length)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: SuperBlob index of %u entries at offset 8 runs past its length %u", what,
                      count, length);
    r.len = length;
    sx_blob_ref *blobs = count ? calloc(count, sizeof(*blobs)) : NULL;
    if (count && !blobs)
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", what);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t type, off, sub_magic, sub_len;
        size_t at = 12 + (size_t)i * 8;
        sx_rd_u32be(&r, &type);
        sx_rd_u32be(&r, &off);
        if (off < index_end || (uint64_t)off + 8 > length) {
            e = sx_err(SYSEXT_EFORMAT,
                       "%s: SuperBlob entry %u (type 0x%x) at offset %zu points to offset %u, "
                       "outside %llu..%u",
                       what, i, type, at, off, (unsigned long long)index_end, length);
            goto fail;
        }
        sx_reader sub;
        sx_rd_window(&r, off, 8, &sub, what);
        sx_rd_u32be(&sub, &sub_magic);
        sx_rd_u32be(&sub, &sub_len);
        if (sub_len < 8 || (uint64_t)off + sub_len > length) {
            e = sx_err(SYSEXT_EFORMAT,
                       "%s: SuperBlob entry %u (type 0x%x): blob at offset %u has length %u, "
                       "outside the SuperBlob (length %u)",
                       what, i, type, off, sub_len, length);
            goto fail;
        }
        blobs[i] =
            (sx_blob_ref){.type = type, .magic = sub_magic, .data = data + off, .len = sub_len};
    }
    if (count > 1) {
        sx_blob_ref *sorted = malloc(count * sizeof(*sorted));
        if (!sorted) {
            e = sx_err(SYSEXT_ENOMEM, "%s: out of memory", what);
            goto fail;
        }
        memcpy(sorted, blobs, count * sizeof(*sorted));
        qsort(sorted, count, sizeof(*sorted), cmp_type);
        for (uint32_t i = 1; i < count; i++)
            if (sorted[i].type == sorted[i - 1].type) {
                uint32_t t = sorted[i].type;
                free(sorted);
                e = sx_err(SYSEXT_EFORMAT, "%s: SuperBlob index type 0x%x appears more than once",
                           what, t);
                goto fail;
            }
        free(sorted);
    }
    out->magic = magic;
    out->count = count;
    out->blobs = blobs;
    out->base = data;
    out->len = length;
    return 0;
fail:
    free(blobs);
    return e;
}

void sx_superblob_free(sx_superblob *sb)
{
    if (!sb)
        return;
    free(sb->blobs);
    sb->blobs = NULL;
    sb->count = 0;
}

int sx_superblob_check_strict(const sx_superblob *sb, const char *what)
{
    SX_ASSERT_ARG(sb);
    if (!what)
        what = "SuperBlob";
    size_t expect = 12 + sb->count * 8;
    for (size_t i = 0; i < sb->count; i++) {
        const sx_blob_ref *b = &sb->blobs[i];
        size_t off = (size_t)(b->data - sb->base);
        if (i > 0 && b->type <= sb->blobs[i - 1].type)
            return sx_err(SYSEXT_EFORMAT,
                          "%s: index entry %zu (type 0x%x) is not in ascending "
                          "type order",
                          what, i, b->type);
        if (off != expect)
            return sx_err(SYSEXT_EFORMAT,
                          "%s: blob of type 0x%x starts at offset %zu, expected "
                          "%zu (blobs must be packed in index order)",
                          what, b->type, off, expect);
        expect = off + b->len;
    }
    if (expect != sb->len)
        return sx_err(SYSEXT_EFORMAT, "%s: blobs end at offset %zu but the SuperBlob length is %zu",
                      what, expect, sb->len);
    return 0;
}

const sx_blob_ref *sx_superblob_find(const sx_superblob *sb, uint32_t type)
{
    if (!sb)
        return NULL;
    for (size_t i = 0; i < sb->count; i++)
        if (sb->blobs[i].type == type)
            return &sb->blobs[i];
    return NULL;
}

int sx_superblob_build_magic(uint32_t magic, const sx_blob_ref *blobs, size_t n, sx_buf *out)
{
    SX_ASSERT_ARG(blobs || n == 0);
    SX_ASSERT_ARG(out);
    if (n > (UINT32_MAX - 12) / 8)
        return sx_err(SYSEXT_ELIMIT, "SuperBlob: %zu entries are too many", n);
    sx_blob_ref *sorted = NULL;
    if (n) {
        sorted = malloc(n * sizeof(*sorted));
        if (!sorted)
            return sx_err(SYSEXT_ENOMEM, "SuperBlob: out of memory");
        memcpy(sorted, blobs, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_type);
    }
    int e = 0;
    size_t total = 12 + 8 * n;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && sorted[i].type == sorted[i - 1].type) {
            e = sx_err(SYSEXT_EINVAL, "SuperBlob: type 0x%x given twice", sorted[i].type);
            goto done;
        }
        if (!sorted[i].data || sorted[i].len < 8) {
            e = sx_err(SYSEXT_EINVAL, "SuperBlob: blob of type 0x%x is shorter than a blob header",
                       sorted[i].type);
            goto done;
        }
        if (SX_ADD_OVERFLOW(total, sorted[i].len, &total) || total > UINT32_MAX) {
            e = sx_err(SYSEXT_ELIMIT, "SuperBlob: total size exceeds 4 GiB");
            goto done;
        }
    }
    size_t base = out->len;
    if ((e = sx_buf_reserve(out, total)) < 0)
        goto done;
    sx_buf_put_u32be(out, magic);
    sx_buf_put_u32be(out, (uint32_t)total);
    sx_buf_put_u32be(out, (uint32_t)n);
    size_t off = 12 + 8 * n;
    for (size_t i = 0; i < n; i++) {
        sx_buf_put_u32be(out, sorted[i].type);
        sx_buf_put_u32be(out, (uint32_t)off);
        off += sorted[i].len;
    }
    for (size_t i = 0; i < n; i++)
        sx_buf_append(out, sorted[i].data, sorted[i].len);
    if (out->len - base != total) { /* reserve guaranteed room; this cannot happen */
        out->len = base;
        e = sx_err(SYSEXT_ERROR, "SuperBlob: short write");
    }
done:
    free(sorted);
    return e;
}

int sx_superblob_build(const sx_blob_ref *blobs, size_t n, sx_buf *out)
{
    return sx_superblob_build_magic(SX_CSMAGIC_EMBEDDED_SIGNATURE, blobs, n, out);
}

int sx_superblob_cds(const sx_superblob *sb, const char *what, sx_cd *cds, size_t *n, size_t *best)
{
    SX_ASSERT_ARG(sb);
    SX_ASSERT_ARG(cds);
    SX_ASSERT_ARG(n);
    SX_ASSERT_ARG(best);
    if (!what)
        what = "signature";
    const sx_blob_ref *primary = sx_superblob_find(sb, SX_CSSLOT_CODEDIRECTORY);
    if (!primary)
        return sx_err(SYSEXT_ENOTFOUND,
                      "%s: no CodeDirectory in slot 0: code object is not "
                      "signed at all",
                      what);
    size_t count = 0, pick = 0;
    for (uint32_t slot = 0; slot <= 5; slot++) {
        uint32_t type = slot == 0 ? SX_CSSLOT_CODEDIRECTORY : SX_CSSLOT_ALTERNATE_CD + slot - 1;
        const sx_blob_ref *b = sx_superblob_find(sb, type);
        if (!b)
            continue;
        char name[64];
        snprintf(name, sizeof(name), "%s: CodeDirectory slot 0x%x", what, type);
        if (b->magic != SX_CSMAGIC_CODEDIRECTORY)
            return sx_err(SYSEXT_EFORMAT, "%s: magic 0x%08x is not a CodeDirectory", name,
                          b->magic);
        sx_cd cd;
        int e = sx_cd_parse(b->data, b->len, name, &cd);
        if (e == SYSEXT_EUNSUPPORTED && sx_hash_size(b->len > 0x25 ? b->data[0x25] : 0) == 0)
            continue; /* an unknown digest: fine as long as another CD is usable */
        if (e < 0)
            return e;
        for (size_t i = 0; i < count; i++)
            if (cds[i].hash_type == cd.hash_type)
                return sx_err(SYSEXT_EFORMAT, "%s: a second CodeDirectory with hash type %s", name,
                              sx_hash_name(cd.hash_type));
        if (count == 0 || sx_hash_type_rank(cd.hash_type) > sx_hash_type_rank(cds[pick].hash_type))
            pick = count;
        cds[count++] = cd;
    }
    if (count == 0)
        return sx_err(SYSEXT_EUNSUPPORTED, "%s: no CodeDirectory uses a supported hash type", what);
    *n = count;
    *best = pick;
    return 0;
}

/* ---- Mach-O ---- */

#define MH_MAGIC 0xfeedfaceu
#define MH_MAGIC_64 0xfeedfacfu
#define FAT_MAGIC 0xcafebabeu
#define FAT_MAGIC_64 0xcafebabfu
#define LC_SEGMENT 0x1u
#define LC_SEGMENT_64 0x19u
#define LC_CODE_SIGNATURE 0x1du
#define FAT_MAX_ARCHS 32u /* Java class files share 0xcafebabe; their "count" is >= 45 */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int sx_macho_is_macho(const uint8_t *data, size_t len)
{
    if (!data || len < 8)
        return 0;
    uint32_t m = be32(data);
    if (m == FAT_MAGIC || m == FAT_MAGIC_64) {
        uint32_t n = be32(data + 4);
        return n >= 1 && n <= FAT_MAX_ARCHS;
    }
    uint32_t le =
        (uint32_t)data[3] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[1] << 8 | data[0];
    return m == MH_MAGIC || m == MH_MAGIC_64 || le == MH_MAGIC || le == MH_MAGIC_64;
}

typedef struct endian_rd {
    sx_reader r;
    bool big;
} endian_rd;

static int rd32(endian_rd *e, uint32_t *v)
{
    return e->big ? sx_rd_u32be(&e->r, v) : sx_rd_u32le(&e->r, v);
}

static int rd64(endian_rd *e, uint64_t *v)
{
    return e->big ? sx_rd_u64be(&e->r, v) : sx_rd_u64le(&e->r, v);
}

/* Parse one thin Mach-O occupying [s->offset, s->offset + s->size) of the file. */
static int parse_thin(const uint8_t *file, const char *what, sx_macho_slice *s)
{
    endian_rd e;
    sx_reader whole;
    sx_reader_init(&whole, file, s->offset + s->size, what);
    int r = sx_rd_window(&whole, s->offset, s->size, &e.r, what);
    if (r < 0)
        return r;
    uint32_t magic_be;
    if ((r = sx_rd_u32be(&e.r, &magic_be)) < 0)
        return r;
    bool is64;
    if (magic_be == MH_MAGIC || magic_be == MH_MAGIC_64) {
        e.big = true;
        is64 = magic_be == MH_MAGIC_64;
    } else {
        uint32_t le = __builtin_bswap32(magic_be);
        if (le != MH_MAGIC && le != MH_MAGIC_64)
            return sx_err(SYSEXT_EFORMAT, "%s: no Mach-O magic at offset %llu (found 0x%08x)", what,
                          (unsigned long long)s->offset, magic_be);
        e.big = false;
        is64 = le == MH_MAGIC_64;
    }
    uint32_t cputype, cpusubtype, filetype, ncmds, sizeofcmds, flags;
    if ((r = rd32(&e, &cputype)) < 0 || (r = rd32(&e, &cpusubtype)) < 0 ||
        (r = rd32(&e, &filetype)) < 0 || (r = rd32(&e, &ncmds)) < 0 ||
        (r = rd32(&e, &sizeofcmds)) < 0 || (r = rd32(&e, &flags)) < 0)
        return r;
    if (is64 && (r = sx_rd_skip(&e.r, 4)) < 0)
        return r;
    s->cputype = cputype;
    s->cpusubtype = cpusubtype;
    s->filetype = filetype;
    size_t cmds_start = e.r.pos;
    if (sizeofcmds > sx_reader_left(&e.r))
        return sx_err(SYSEXT_EFORMAT,
                      "%s: Mach-O load commands (%u bytes) at offset %zu run past the slice end",
                      what, sizeofcmds, sx_reader_offset(&e.r));
    if (ncmds > sizeofcmds / 8)
        return sx_err(SYSEXT_EFORMAT, "%s: Mach-O claims %u load commands in %u bytes", what, ncmds,
                      sizeofcmds);
    sx_reader cmds;
    sx_rd_window(&e.r, cmds_start, sizeofcmds, &cmds, what);
    bool sig_seen = false, text_seen = false;
    for (uint32_t i = 0; i < ncmds; i++) {
        endian_rd c = {.big = e.big};
        size_t at = cmds.pos;
        uint32_t cmd, cmdsize;
        c.r = cmds;
        if ((r = rd32(&c, &cmd)) < 0 || (r = rd32(&c, &cmdsize)) < 0)
            return r;
        if (cmdsize < 8 || cmdsize > sx_reader_left(&cmds))
            return sx_err(SYSEXT_EFORMAT,
                          "%s: load command %u at offset %zu has size %u (%zu bytes left)", what, i,
                          sx_reader_offset(&cmds), cmdsize, sx_reader_left(&cmds));
        sx_rd_window(&cmds, at, cmdsize, &c.r, what);
        sx_rd_skip(&c.r, 8);
        if (cmd == LC_CODE_SIGNATURE) {
            uint32_t dataoff, datasize;
            if ((r = rd32(&c, &dataoff)) < 0 || (r = rd32(&c, &datasize)) < 0)
                return r;
            if (sig_seen)
                return sx_err(SYSEXT_EFORMAT, "%s: second LC_CODE_SIGNATURE at offset %zu", what,
                              sx_reader_offset(&cmds));
            if ((uint64_t)dataoff + datasize > s->size)
                return sx_err(SYSEXT_EFORMAT,
                              "%s: LC_CODE_SIGNATURE at offset %zu: signature %u+%u lies outside "
                              "the %llu-byte slice",
                              what, sx_reader_offset(&cmds), dataoff, datasize,
                              (unsigned long long)s->size);
            sig_seen = true;
            s->has_signature = 1;
            s->sig_offset = dataoff;
            s->sig_size = datasize;
        } else if (cmd == LC_SEGMENT || cmd == LC_SEGMENT_64) {
            const uint8_t *name;
            uint64_t fileoff, filesize;
            if ((r = sx_rd_bytes(&c.r, 16, &name)) < 0)
                return r;
            if (cmd == LC_SEGMENT_64) {
                uint64_t vmaddr, vmsize;
                if ((r = rd64(&c, &vmaddr)) < 0 || (r = rd64(&c, &vmsize)) < 0 ||
                    (r = rd64(&c, &fileoff)) < 0 || (r = rd64(&c, &filesize)) < 0)
                    return r;
            } else {
                uint32_t vmaddr, vmsize, fo, fs;
                if ((r = rd32(&c, &vmaddr)) < 0 || (r = rd32(&c, &vmsize)) < 0 ||
                    (r = rd32(&c, &fo)) < 0 || (r = rd32(&c, &fs)) < 0)
                    return r;
                fileoff = fo;
                filesize = fs;
            }
            if (!text_seen && memcmp(name, "__TEXT\0", 7) == 0) {
                if (fileoff > s->size || filesize > s->size - fileoff)
                    return sx_err(SYSEXT_EFORMAT,
                                  "%s: __TEXT segment at offset %zu: file range %llu+%llu lies "
                                  "outside the %llu-byte slice",
                                  what, sx_reader_offset(&cmds), (unsigned long long)fileoff,
                                  (unsigned long long)filesize, (unsigned long long)s->size);
                text_seen = true;
                s->text_offset = fileoff;
                s->text_size = filesize;
            }
        }
        sx_rd_skip(&cmds, cmdsize);
    }
    return 0;
}

int sx_macho_slices(const uint8_t *data, size_t len, const char *what, sx_macho_slice **slices,
                    size_t *n)
{
    SX_ASSERT_ARG(data || len == 0);
    SX_ASSERT_ARG(slices);
    SX_ASSERT_ARG(n);
    if (!what)
        what = "Mach-O";
    if (!sx_macho_is_macho(data, len))
        return sx_err(SYSEXT_EFORMAT, "%s: not a Mach-O or universal binary", what);
    uint32_t magic = be32(data);
    int r;
    if (magic != FAT_MAGIC && magic != FAT_MAGIC_64) {
        sx_macho_slice *s = calloc(1, sizeof(*s));
        if (!s)
            return sx_err(SYSEXT_ENOMEM, "%s: out of memory", what);
        s->offset = 0;
        s->size = len;
        if ((r = parse_thin(data, what, s)) < 0) {
            free(s);
            return r;
        }
        *slices = s;
        *n = 1;
        return 0;
    }
    bool wide = magic == FAT_MAGIC_64;
    sx_reader rd;
    sx_reader_init(&rd, data, len, what);
    uint32_t count;
    sx_rd_skip(&rd, 4);
    sx_rd_u32be(&rd, &count);
    size_t entry = wide ? 32 : 20;
    if ((uint64_t)count * entry > sx_reader_left(&rd))
        return sx_err(SYSEXT_EFORMAT, "%s: fat header lists %u architectures past the file end",
                      what, count);
    sx_macho_slice *s = calloc(count, sizeof(*s));
    if (!s)
        return sx_err(SYSEXT_ENOMEM, "%s: out of memory", what);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t cputype, cpusubtype, align, off32, size32;
        uint64_t off, size;
        size_t at = sx_reader_offset(&rd);
        sx_rd_u32be(&rd, &cputype);
        sx_rd_u32be(&rd, &cpusubtype);
        if (wide) {
            uint32_t reserved;
            sx_rd_u64be(&rd, &off);
            sx_rd_u64be(&rd, &size);
            sx_rd_u32be(&rd, &align);
            sx_rd_u32be(&rd, &reserved);
        } else {
            sx_rd_u32be(&rd, &off32);
            sx_rd_u32be(&rd, &size32);
            sx_rd_u32be(&rd, &align);
            off = off32;
            size = size32;
        }
        if (off > len || size > len - off || off < 8 + (uint64_t)count * entry) {
            r = sx_err(SYSEXT_EFORMAT,
                       "%s: fat_arch %u at offset %zu: slice %llu+%llu lies outside the file "
                       "(%zu bytes) or over the fat header",
                       what, i, at, (unsigned long long)off, (unsigned long long)size, len);
            goto fail;
        }
        for (uint32_t j = 0; j < i; j++)
            if (off < s[j].offset + s[j].size && s[j].offset < off + size) {
                r = sx_err(SYSEXT_EFORMAT, "%s: fat_arch %u at offset %zu overlaps slice %u", what,
                           i, at, j);
                goto fail;
            }
        s[i].offset = off;
        s[i].size = size;
        if ((r = parse_thin(data, what, &s[i])) < 0)
            goto fail;
        if (s[i].cputype != cputype) {
            r = sx_err(SYSEXT_EFORMAT,
                       "%s: fat_arch %u says CPU type 0x%x but the slice at offset %llu is 0x%x",
                       what, i, cputype, (unsigned long long)off, s[i].cputype);
            goto fail;
        }
        SX_UNUSED(cpusubtype);
    }
    *slices = s;
    *n = count;
    return 0;
fail:
    free(s);
    return r;
}
