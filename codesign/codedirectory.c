/* CodeDirectory blobs: building them the way codesign lays them out (reference 2.1-2.3) and
 * parsing hostile ones with the integrity checks of reference 2.12. */
#include "util/common.h"
#include "codesign/codedirectory.h"

#include "util/reader.h"

#define CD_V_EARLIEST 0x20001u
#define CD_V_SCATTER 0x20100u
#define CD_V_TEAM 0x20200u
#define CD_V_CODELIMIT64 0x20300u
#define CD_V_EXECSEG 0x20400u
#define CD_V_RUNTIME 0x20500u
#define CD_V_MAX 0x2F000u

/* Bytes of fixed header a CD of `version` carries (reference 2.1 table). */
static size_t header_size(uint32_t version)
{
    if (version >= 0x20600u)
        return 108;
    if (version >= CD_V_RUNTIME)
        return 96;
    if (version >= CD_V_EXECSEG)
        return 88;
    if (version >= CD_V_CODELIMIT64)
        return 64;
    if (version >= CD_V_TEAM)
        return 52;
    if (version >= CD_V_SCATTER)
        return 48;
    return 44;
}

static void put_u8(sx_buf *b, size_t off, uint8_t v)
{
    b->data[off] = v;
}

static void put_u64(sx_buf *b, size_t off, uint64_t v)
{
    sx_buf_set_u32be(b, off, (uint32_t)(v >> 32));
    sx_buf_set_u32be(b, off + 4, (uint32_t)v);
}

int sx_cd_build(const sx_cd_params *p, sx_buf *out)
{
    SX_ASSERT_ARG(p);
    SX_ASSERT_ARG(out);
    SX_ASSERT_ARG(p->identifier);
    size_t hs = sx_hash_size(p->hash_type);
    if (hs == 0)
        return sx_err(SYSEXT_EINVAL, "CodeDirectory: unknown hash type %u", p->hash_type);
    if (p->page_size_log2 > 31)
        return sx_err(SYSEXT_EINVAL, "CodeDirectory: page size 2^%u is too large",
                      p->page_size_log2);
    uint64_t want_slots;
    if (p->page_size_log2 == 0)
        want_slots = p->code_limit > 0 ? 1 : 0;
    else
        want_slots = p->code_limit == 0 ? 0 : ((p->code_limit - 1) >> p->page_size_log2) + 1;
    if (want_slots != p->n_code_slots)
        return sx_err(SYSEXT_EINVAL,
                      "CodeDirectory: %u code slots given, code limit %llu with page size 2^%u "
                      "needs %llu",
                      p->n_code_slots, (unsigned long long)p->code_limit, p->page_size_log2,
                      (unsigned long long)want_slots);
    if (p->n_code_slots > 0 && !p->code_hashes)
        return sx_err(SYSEXT_EINVAL, "CodeDirectory: code hashes missing");
    if (p->identifier[0] == '\0')
        return sx_err(SYSEXT_EINVAL, "CodeDirectory: empty identifier");
    bool has_team = p->team_id && p->team_id[0];

    uint32_t version;
    if (p->runtime_version)
        version = CD_V_RUNTIME;
    else if (p->exec_seg_limit > 0)
        version = CD_V_EXECSEG;
    else if (p->code_limit > UINT32_MAX)
        version = CD_V_CODELIMIT64;
    else if (has_team)
        version = CD_V_TEAM;
    else
        version = CD_V_SCATTER;
    size_t hdr = header_size(version);

    unsigned n_special = 0;
    for (unsigned n = 1; n <= SX_SLOT_MAX_SPECIAL; n++)
        if (p->special[n])
            n_special = n;

    size_t id_len = strlen(p->identifier) + 1;
    size_t team_len = has_team ? strlen(p->team_id) + 1 : 0;
    size_t hash_off, total, code_bytes;
    if (SX_ADD_OVERFLOW(hdr, id_len, &hash_off) || SX_ADD_OVERFLOW(hash_off, team_len, &hash_off) ||
        SX_ADD_OVERFLOW(hash_off, (size_t)n_special * hs, &hash_off) ||
        SX_MUL_OVERFLOW((size_t)p->n_code_slots, hs, &code_bytes) ||
        SX_ADD_OVERFLOW(hash_off, code_bytes, &total) || total > UINT32_MAX)
        return sx_err(SYSEXT_ELIMIT, "CodeDirectory: %u code slots make the blob too large",
                      p->n_code_slots);

    size_t base = out->len;
    int r = sx_buf_reserve(out, total);
    if (r < 0)
        return r;
    static const uint8_t zero[128];
    for (size_t left = hdr; left > 0;) {
        size_t n = left < sizeof(zero) ? left : sizeof(zero);
        if ((r = sx_buf_append(out, zero, n)) < 0)
            goto fail;
        left -= n;
    }
    sx_buf_set_u32be(out, base + 0x00, SX_CSMAGIC_CODEDIRECTORY);
    sx_buf_set_u32be(out, base + 0x04, (uint32_t)total);
    sx_buf_set_u32be(out, base + 0x08, version);
    sx_buf_set_u32be(out, base + 0x0C, p->flags);
    sx_buf_set_u32be(out, base + 0x10, (uint32_t)hash_off);
    sx_buf_set_u32be(out, base + 0x14, (uint32_t)hdr);
    sx_buf_set_u32be(out, base + 0x18, n_special);
    sx_buf_set_u32be(out, base + 0x1C, p->n_code_slots);
    sx_buf_set_u32be(out, base + 0x20,
                     p->code_limit > UINT32_MAX ? UINT32_MAX : (uint32_t)p->code_limit);
    put_u8(out, base + 0x24, (uint8_t)hs);
    put_u8(out, base + 0x25, p->hash_type);
    put_u8(out, base + 0x26, p->platform);
    put_u8(out, base + 0x27, p->page_size_log2);
    if (version >= CD_V_TEAM && has_team)
        sx_buf_set_u32be(out, base + 0x30, (uint32_t)(hdr + id_len));
    if (version >= CD_V_CODELIMIT64 && p->code_limit > UINT32_MAX)
        put_u64(out, base + 0x38, p->code_limit);
    if (version >= CD_V_EXECSEG) {
        put_u64(out, base + 0x40, p->exec_seg_base);
        put_u64(out, base + 0x48, p->exec_seg_limit);
        put_u64(out, base + 0x50, p->exec_seg_flags);
    }
    if (version >= CD_V_RUNTIME)
        sx_buf_set_u32be(out, base + 0x58, p->runtime_version);

    if ((r = sx_buf_append(out, p->identifier, id_len)) < 0)
        goto fail;
    if (has_team && (r = sx_buf_append(out, p->team_id, team_len)) < 0)
        goto fail;
    for (unsigned n = n_special; n >= 1; n--) {
        if (p->special[n])
            r = sx_buf_append(out, p->special[n], hs);
        else
            for (size_t i = 0; i < hs && r >= 0; i++)
                r = sx_buf_putc(out, 0);
        if (r < 0)
            goto fail;
    }
    if (code_bytes && (r = sx_buf_append(out, p->code_hashes, code_bytes)) < 0)
        goto fail;
    return 0;
fail:
    out->len = base;
    return r;
}

/* A NUL-terminated string at `off` inside the blob. */
static int cd_string(const uint8_t *blob, size_t len, uint32_t off, const char *what,
                     const char *field, const char **out)
{
    if (off >= len)
        return sx_err(SYSEXT_EFORMAT, "%s: CodeDirectory %s offset %u is outside the %zu-byte blob",
                      what, field, off, len);
    if (!memchr(blob + off, 0, len - off))
        return sx_err(SYSEXT_EFORMAT,
                      "%s: CodeDirectory %s at offset %u is not NUL-terminated inside the blob",
                      what, field, off);
    *out = (const char *)blob + off;
    return 0;
}

int sx_cd_parse(const uint8_t *data, size_t len, const char *what, sx_cd *out)
{
    SX_ASSERT_ARG(data || len == 0);
    SX_ASSERT_ARG(out);
    if (!what)
        what = "CodeDirectory";
    sx_reader r;
    sx_reader_init(&r, data, len, what);
    uint32_t magic, length, version, flags, hash_off, ident_off, n_special, n_code, limit32;
    uint32_t spare2, scatter = 0, team_off = 0;
    uint8_t hash_size, hash_type, platform, page;
    int e;
    if ((e = sx_rd_u32be(&r, &magic)) < 0 || (e = sx_rd_u32be(&r, &length)) < 0)
        return e;
    if (magic != SX_CSMAGIC_CODEDIRECTORY)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: magic 0x%08x at offset 0, expected 0x%08x (CodeDirectory)", what, magic,
                      SX_CSMAGIC_CODEDIRECTORY);
    if (length > len)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: CodeDirectory length %u at offset 4 exceeds the %zu bytes available",
                      what, length, len);
    if (length < 44)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: CodeDirectory length %u at offset 4 is shorter than the 44-byte header",
                      what, length);
    r.len = length;
    if ((e = sx_rd_u32be(&r, &version)) < 0)
        return e;
    if (version < CD_V_EARLIEST || version > CD_V_MAX)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: CodeDirectory version 0x%x at offset 8 is outside 0x20001..0x2f000",
                      what, version);
    size_t hdr = header_size(version);
    if (length < hdr)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: CodeDirectory length %u is shorter than the %zu-byte header of version "
                      "0x%x",
                      what, length, hdr, version);
    sx_rd_u32be(&r, &flags);
    sx_rd_u32be(&r, &hash_off);
    sx_rd_u32be(&r, &ident_off);
    sx_rd_u32be(&r, &n_special);
    sx_rd_u32be(&r, &n_code);
    sx_rd_u32be(&r, &limit32);
    sx_rd_u8(&r, &hash_size);
    sx_rd_u8(&r, &hash_type);
    sx_rd_u8(&r, &platform);
    sx_rd_u8(&r, &page);
    sx_rd_u32be(&r, &spare2);
    if (version >= CD_V_SCATTER)
        sx_rd_u32be(&r, &scatter);
    if (version >= CD_V_TEAM)
        sx_rd_u32be(&r, &team_off);

    sx_cd cd = {0};
    cd.blob = data;
    cd.len = length;
    cd.version = version;
    cd.flags = flags;
    cd.hash_offset = hash_off;
    cd.ident_offset = ident_off;
    cd.team_offset = team_off;
    cd.n_special = n_special;
    cd.n_code = n_code;
    cd.code_limit = limit32;
    cd.hash_size = hash_size;
    cd.hash_type = hash_type;
    cd.platform = platform;
    cd.page_size_log2 = page;
    if (version >= CD_V_CODELIMIT64) {
        uint64_t limit64;
        sx_rd_seek(&r, 0x38);
        sx_rd_u64be(&r, &limit64);
        if (limit64 != 0)
            cd.code_limit = limit64;
    }
    if (version >= CD_V_EXECSEG) {
        sx_rd_seek(&r, 0x40);
        sx_rd_u64be(&r, &cd.exec_seg_base);
        sx_rd_u64be(&r, &cd.exec_seg_limit);
        sx_rd_u64be(&r, &cd.exec_seg_flags);
    }
    if (version >= CD_V_RUNTIME) {
        sx_rd_seek(&r, 0x58);
        sx_rd_u32be(&r, &cd.runtime_version);
    }

    size_t want = sx_hash_size(hash_type);
    if (want == 0)
        return sx_err(SYSEXT_EUNSUPPORTED,
                      "%s: CodeDirectory hash type %u at offset 0x25 is unknown", what, hash_type);
    if (hash_size != want)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: CodeDirectory hash size %u at offset 0x24 does not match %s (%zu bytes)",
                      what, hash_size, sx_hash_name(hash_type), want);
    if (scatter != 0)
        return sx_err(SYSEXT_EUNSUPPORTED,
                      "%s: CodeDirectory scatter vector at offset %u is not supported", what,
                      scatter);
    if ((e = cd_string(data, length, ident_off, what, "identifier", &cd.identifier)) < 0)
        return e;
    if (team_off != 0 && (e = cd_string(data, length, team_off, what, "team ID", &cd.team_id)) < 0)
        return e;

    /* [hashOffset - nSpecial*hashSize, hashOffset + nCode*hashSize) must lie inside. */
    uint64_t special_bytes = (uint64_t)n_special * hash_size;
    uint64_t code_bytes = (uint64_t)n_code * hash_size;
    if (special_bytes > hash_off || hash_off - special_bytes < hdr)
        return sx_err(
            SYSEXT_EFORMAT,
            "%s: CodeDirectory %u special slots of %u bytes do not fit below hashOffset %u "
            "(header ends at %zu)",
            what, n_special, hash_size, hash_off, hdr);
    if ((uint64_t)hash_off + code_bytes > length)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: CodeDirectory %u code slots at hashOffset %u run past the blob end %u",
                      what, n_code, hash_off, length);

    if (page > 63)
        return sx_err(SYSEXT_EFORMAT, "%s: CodeDirectory page size 2^%u at offset 0x27 is invalid",
                      what, page);
    uint64_t want_slots;
    if (page == 0)
        want_slots = cd.code_limit > 0 ? 1 : 0;
    else
        want_slots = cd.code_limit == 0 ? 0 : ((cd.code_limit - 1) >> page) + 1;
    if (want_slots != n_code)
        return sx_err(SYSEXT_EFORMAT,
                      "%s: CodeDirectory has %u code slots but codeLimit %llu with page size 2^%u "
                      "needs %llu",
                      what, n_code, (unsigned long long)cd.code_limit, page,
                      (unsigned long long)want_slots);
    *out = cd;
    return 0;
}

const uint8_t *sx_cd_special(const sx_cd *cd, unsigned n)
{
    if (!cd || n == 0 || n > cd->n_special)
        return NULL;
    return cd->blob + cd->hash_offset - (size_t)n * cd->hash_size;
}

bool sx_cd_special_is_zero(const sx_cd *cd, unsigned n)
{
    const uint8_t *h = sx_cd_special(cd, n);
    if (!h)
        return true;
    for (size_t i = 0; i < cd->hash_size; i++)
        if (h[i])
            return false;
    return true;
}

const uint8_t *sx_cd_code_slot(const sx_cd *cd, uint32_t i)
{
    if (!cd || i >= cd->n_code)
        return NULL;
    return cd->blob + cd->hash_offset + (size_t)i * cd->hash_size;
}

int sx_cd_full_hash(const sx_cd *cd, uint8_t out[SX_HASH_MAX_SIZE], size_t *n)
{
    SX_ASSERT_ARG(cd);
    SX_ASSERT_ARG(out);
    int e = sx_hash(cd->hash_type, cd->blob, cd->len, out);
    if (e < 0)
        return e;
    if (n)
        *n = sx_hash_size(cd->hash_type);
    return 0;
}

int sx_cd_cdhash(const sx_cd *cd, uint8_t out[SX_CDHASH_LEN])
{
    uint8_t full[SX_HASH_MAX_SIZE];
    int e = sx_cd_full_hash(cd, full, NULL);
    if (e < 0)
        return e;
    memcpy(out, full, SX_CDHASH_LEN);
    return 0;
}

int sx_hash_type_rank(uint8_t hash_type)
{
    switch (hash_type) {
    case SX_HASH_SHA384:
        return 4;
    case SX_HASH_SHA256:
        return 3;
    case SX_HASH_SHA256_TRUNCATED:
        return 2;
    case SX_HASH_SHA1:
        return 1;
    default:
        return 0;
    }
}
