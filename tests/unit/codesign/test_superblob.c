#include <criterion/criterion.h>

#include "util/common.h"
#include "codesign/codedirectory.h"
#include "codesign/superblob.h"
#include "util/fs.h"
#include "util/hex.h"

#define APPLE SYSEXT_SHARED_DIR "/samples/apple/"

typedef struct file {
    uint8_t *data;
    size_t len;
} file;

static file load(const char *rel)
{
    file f = {0};
    char path[512];
    cr_assert_lt(snprintf(path, sizeof(path), "%s%s", APPLE, rel), (int)sizeof(path));
    cr_assert_eq(sx_read_file(path, 1 << 22, &f.data, &f.len), 0, "%s: %s", path, sx_errmsg());
    return f;
}

static void assert_hex(const uint8_t *p, size_t n, const char *want)
{
    char got[2 * SX_HASH_MAX_SIZE + 1];
    sx_hex_encode(p, n, got);
    cr_assert_str_eq(got, want);
}

/* Everything about one signed slice, for assertions. */
typedef struct signed_slice {
    sx_macho_slice s;
    const uint8_t *slice; /* slice bytes */
    sx_superblob sb;
    sx_cd cd;  /* slot 0 */
    sx_cd alt; /* slot 0x1000 when present */
    bool has_alt;
} signed_slice;

/* Rebuild a parsed CD from its own fields: the bytes must come out identical. */
static void assert_rebuilds(const sx_cd *cd)
{
    sx_cd_params p = {0};
    p.identifier = cd->identifier;
    p.team_id = cd->team_id;
    p.hash_type = cd->hash_type;
    p.flags = cd->flags;
    p.page_size_log2 = cd->page_size_log2;
    p.code_limit = cd->code_limit;
    p.code_hashes = sx_cd_code_slot(cd, 0);
    p.n_code_slots = cd->n_code;
    for (unsigned n = 1; n <= cd->n_special; n++)
        p.special[n] = sx_cd_special_is_zero(cd, n) ? NULL : sx_cd_special(cd, n);
    p.exec_seg_base = cd->exec_seg_base;
    p.exec_seg_limit = cd->exec_seg_limit;
    p.exec_seg_flags = cd->exec_seg_flags;
    p.runtime_version = cd->runtime_version;
    p.platform = cd->platform;
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_cd_build(&p, &b), 0, "%s", sx_errmsg());
    cr_assert_eq(b.len, cd->len, "%s", cd->identifier);
    cr_assert_eq(memcmp(b.data, cd->blob, cd->len), 0, "rebuilt CD of %s differs", cd->identifier);
    sx_buf_free(&b);
}

static void open_slice(const file *f, const sx_macho_slice *s, signed_slice *out)
{
    memset(out, 0, sizeof(*out));
    out->s = *s;
    out->slice = f->data + s->offset;
    cr_assert(s->has_signature);
    cr_assert_eq(sx_superblob_parse(out->slice + s->sig_offset, s->sig_size, "signature", &out->sb),
                 0, "%s", sx_errmsg());
    cr_assert_eq(out->sb.magic, SX_CSMAGIC_EMBEDDED_SIGNATURE);
    const sx_blob_ref *b = sx_superblob_find(&out->sb, SX_CSSLOT_CODEDIRECTORY);
    cr_assert_not_null(b);
    cr_assert_eq(sx_cd_parse(b->data, b->len, "CD", &out->cd), 0, "%s", sx_errmsg());
    assert_rebuilds(&out->cd);
    b = sx_superblob_find(&out->sb, SX_CSSLOT_ALTERNATE_CD);
    if (b) {
        cr_assert_eq(sx_cd_parse(b->data, b->len, "alt CD", &out->alt), 0, "%s", sx_errmsg());
        assert_rebuilds(&out->alt);
        out->has_alt = true;
    }
    cr_assert_eq(sx_superblob_check_strict(&out->sb, "sig"), 0, "%s", sx_errmsg());
    /* Re-packing the parsed sub-blobs gives Apple's SuperBlob back byte for byte. */
    sx_buf re = SX_BUF_INIT;
    cr_assert_eq(sx_superblob_build(out->sb.blobs, out->sb.count, &re), 0);
    uint32_t len = (uint32_t)out->slice[s->sig_offset + 4] << 24 |
                   (uint32_t)out->slice[s->sig_offset + 5] << 16 |
                   (uint32_t)out->slice[s->sig_offset + 6] << 8 | out->slice[s->sig_offset + 7];
    cr_assert_eq(re.len, len);
    cr_assert_eq(memcmp(re.data, out->slice + s->sig_offset, len), 0);
    sx_buf_free(&re);
}

/* Indices of code slots whose hash does not match the file, as a string "0,12,13". */
static void mismatches(const signed_slice *ss, const sx_cd *cd, char *out, size_t cap)
{
    out[0] = '\0';
    size_t used = 0;
    for (uint32_t i = 0; i < cd->n_code; i++) {
        uint64_t start = (uint64_t)i << cd->page_size_log2;
        uint64_t end = start + (1ull << cd->page_size_log2);
        if (end > cd->code_limit)
            end = cd->code_limit;
        cr_assert_leq(end, ss->s.size);
        uint8_t h[SX_HASH_MAX_SIZE];
        cr_assert_eq(sx_hash(cd->hash_type, ss->slice + start, end - start, h), 0);
        if (memcmp(h, sx_cd_code_slot(cd, i), cd->hash_size) != 0) {
            int n = snprintf(out + used, cap - used, "%s%u", used ? "," : "", i);
            cr_assert(n > 0 && (size_t)n < cap - used);
            used += (size_t)n;
        }
    }
}

static bool special_blob_matches(const signed_slice *ss, const sx_cd *cd, unsigned slot)
{
    const sx_blob_ref *b = sx_superblob_find(&ss->sb, slot);
    uint8_t h[SX_HASH_MAX_SIZE];
    cr_assert_not_null(b);
    cr_assert_eq(sx_hash(cd->hash_type, b->data, b->len, h), 0);
    return memcmp(h, sx_cd_special(cd, slot), cd->hash_size) == 0;
}

static sx_macho_slice *slices_of(const file *f, size_t *n)
{
    sx_macho_slice *s = NULL;
    cr_assert(sx_macho_is_macho(f->data, f->len));
    cr_assert_eq(sx_macho_slices(f->data, f->len, "macho", &s, n), 0, "%s", sx_errmsg());
    return s;
}

Test(codesign_superblob, ls_valid)
{
    file f = load("macho/ls-osx-x86_64");
    size_t n;
    sx_macho_slice *s = slices_of(&f, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].filetype, 2);
    cr_assert_eq(s[0].cputype, 0x01000007);
    cr_assert_eq(s[0].sig_offset, 29248);
    cr_assert_eq(s[0].sig_size, 5488);
    cr_assert_eq(s[0].text_offset, 0);
    signed_slice ss;
    open_slice(&f, &s[0], &ss);
    cr_assert_eq(ss.sb.count, 3);
    cr_assert_eq(ss.sb.blobs[0].type, 0);
    cr_assert_eq(ss.sb.blobs[1].type, 2);
    cr_assert_eq(ss.sb.blobs[2].type, SX_CSSLOT_SIGNATURE);
    cr_assert_eq(ss.sb.blobs[2].magic, SX_CSMAGIC_BLOBWRAPPER);
    cr_assert_not(ss.has_alt);
    sx_cd *cd = &ss.cd;
    cr_assert_eq(cd->version, 0x20100);
    cr_assert_eq(cd->flags, 0);
    cr_assert_eq(cd->hash_type, SX_HASH_SHA1);
    cr_assert_eq(cd->page_size_log2, 12);
    cr_assert_eq(cd->n_special, 2);
    cr_assert_eq(cd->n_code, 8);
    cr_assert_eq(cd->code_limit, 29248);
    cr_assert_eq(cd->code_limit, s[0].sig_offset);
    cr_assert_str_eq(cd->identifier, "com.apple.ls");
    cr_assert_null(cd->team_id);
    uint8_t h[SX_CDHASH_LEN];
    sx_cd_cdhash(cd, h);
    assert_hex(h, 20, "515901e3f11e55b861ec9a0905979bfbabc8b343");
    char mm[128];
    mismatches(&ss, cd, mm, sizeof(mm));
    cr_assert_str_eq(mm, "");
    cr_assert(special_blob_matches(&ss, cd, SX_SLOT_REQUIREMENTS));
    cr_assert(sx_cd_special_is_zero(cd, SX_SLOT_INFO));
    sx_superblob_free(&ss.sb);
    free(s);
}

Test(codesign_superblob, libexpat_fat_both_slices)
{
    file f = load("macho/libexpat.1.dylib");
    size_t n;
    sx_macho_slice *s = slices_of(&f, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(s[0].offset, 4096);
    cr_assert_eq(s[0].size, 185360);
    cr_assert_eq(s[1].offset, 192512);
    cr_assert_eq(s[1].size, 223056);
    const char *want[2][2] = {
        {"23c61d92cddfd21dffe0cb05dedf76fe73c1b66e", "f6551ef3dcd5ac5f8272054b30a43d42d877c66d"},
        {"564dd8f7d15eb6ab7c019d5f481d55cf20804cf9", "8555104ff386eaf0e316f4e2d73aae9991de2fdc"}};
    uint32_t pages[2] = {43, 52};
    for (size_t i = 0; i < 2; i++) {
        signed_slice ss;
        open_slice(&f, &s[i], &ss);
        cr_assert_eq(s[i].filetype, 6, "MH_DYLIB");
        cr_assert(ss.has_alt);
        cr_assert_eq(ss.sb.count, 4);
        const sx_cd *cds[2] = {&ss.cd, &ss.alt};
        for (int k = 0; k < 2; k++) {
            const sx_cd *cd = cds[k];
            cr_assert_eq(cd->version, 0x20200);
            cr_assert_eq(cd->hash_type, k == 0 ? SX_HASH_SHA1 : SX_HASH_SHA256);
            cr_assert_str_eq(cd->identifier, "libexpat.1");
            cr_assert_str_eq(cd->team_id, "EG7KH642X6");
            cr_assert_eq(cd->n_code, pages[i]);
            cr_assert_eq(cd->code_limit, s[i].sig_offset);
            uint8_t h[SX_CDHASH_LEN];
            sx_cd_cdhash(cd, h);
            assert_hex(h, 20, want[i][k]);
            char mm[128];
            mismatches(&ss, cd, mm, sizeof(mm));
            cr_assert_str_eq(mm, "", "slice %zu CD %d", i, k);
            cr_assert(special_blob_matches(&ss, cd, SX_SLOT_REQUIREMENTS));
        }
        sx_superblob_free(&ss.sb);
    }
    free(s);
}

Test(codesign_superblob, testmacos_pages_0_12_13_mismatch)
{
    file f = load("macho/TestMacOS-arm64e");
    size_t n;
    sx_macho_slice *s = slices_of(&f, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].filetype, 2);
    cr_assert_eq(s[0].sig_offset, 50240);
    cr_assert_eq(s[0].text_offset, 0);
    cr_assert_eq(s[0].text_size, 16384);
    signed_slice ss;
    open_slice(&f, &s[0], &ss);
    const sx_cd *cd = &ss.cd;
    cr_assert_eq(ss.sb.count, 5);
    cr_assert_eq(cd->version, 0x20500);
    cr_assert_eq(cd->flags, SX_CS_RUNTIME);
    cr_assert_eq(cd->runtime_version, 0xc0000);
    cr_assert_eq(cd->exec_seg_base, 0);
    cr_assert_eq(cd->exec_seg_limit, 16384);
    cr_assert_eq(cd->exec_seg_flags, 1);
    cr_assert_eq(cd->hash_type, SX_HASH_SHA256);
    cr_assert_eq(cd->n_special, 7);
    cr_assert_eq(cd->n_code, 14);
    cr_assert_eq(cd->code_limit, 54320);
    cr_assert_neq(cd->code_limit, s[0].sig_offset, "edited after signing");
    cr_assert_str_eq(cd->team_id, "7JJ26R4EJS");
    char mm[128];
    mismatches(&ss, cd, mm, sizeof(mm));
    cr_assert_str_eq(mm, "0,12,13");
    cr_assert(special_blob_matches(&ss, cd, SX_SLOT_REQUIREMENTS));
    cr_assert(special_blob_matches(&ss, cd, SX_SLOT_ENTITLEMENTS));
    cr_assert(special_blob_matches(&ss, cd, SX_SLOT_ENTITLEMENTS_DER));
    cr_assert(sx_cd_special_is_zero(cd, 4));
    cr_assert(sx_cd_special_is_zero(cd, 6));
    cr_assert_not(sx_cd_special_is_zero(cd, 1));
    cr_assert_not(sx_cd_special_is_zero(cd, 3));
    uint8_t full[SX_HASH_MAX_SIZE];
    sx_cd_full_hash(cd, full, NULL);
    assert_hex(full, 32, "68baf03acb76982553fdad878cf4666cfbbb8df82193006820b8284b12c72f4d");
    sx_superblob_free(&ss.sb);
    free(s);
}

Test(codesign_superblob, hello_linker_signed)
{
    file f = load("macho/hello-macos-arm64-chained");
    size_t n;
    sx_macho_slice *s = slices_of(&f, &n);
    signed_slice ss;
    open_slice(&f, &s[0], &ss);
    cr_assert_eq(s[0].sig_size, 550);
    cr_assert_eq(ss.sb.count, 1, "linker signature: CD only");
    const sx_cd *cd = &ss.cd;
    cr_assert_eq(cd->flags, SX_CS_ADHOC | SX_CS_LINKER_SIGNED);
    cr_assert_eq(cd->version, 0x20400);
    cr_assert_eq(cd->n_special, 0);
    cr_assert_eq(cd->n_code, 13);
    cr_assert_eq(cd->code_limit, 51888);
    cr_assert_eq(cd->code_limit, s[0].sig_offset);
    cr_assert_eq(cd->exec_seg_limit, 16384);
    cr_assert_eq(cd->exec_seg_flags, 1);
    uint8_t full[SX_HASH_MAX_SIZE];
    sx_cd_full_hash(cd, full, NULL);
    assert_hex(full, 32, "70a02273c59d6804293690c0d90063014a366a7834d190537836de2d215bf884");
    char mm[128];
    mismatches(&ss, cd, mm, sizeof(mm));
    cr_assert_str_eq(mm, "");
    sx_superblob_free(&ss.sb);
    free(s);
}

Test(codesign_superblob, r2_hang_test_page_2_mismatch)
{
    file f = load("macho/r2_hang_test");
    size_t n;
    sx_macho_slice *s = slices_of(&f, &n);
    signed_slice ss;
    open_slice(&f, &s[0], &ss);
    const sx_cd *cd = &ss.cd;
    cr_assert_eq(ss.sb.count, 4);
    const sx_blob_ref *req = sx_superblob_find(&ss.sb, 2);
    const sx_blob_ref *cms = sx_superblob_find(&ss.sb, SX_CSSLOT_SIGNATURE);
    cr_assert_eq(req->len, 12);
    cr_assert_eq(cms->len, 8);
    cr_assert_eq(cms->magic, SX_CSMAGIC_BLOBWRAPPER);
    cr_assert_eq(sx_superblob_find(&ss.sb, 5)->magic, SX_CSMAGIC_EMBEDDED_ENTITLEMENTS);
    cr_assert_eq(cd->flags, SX_CS_ADHOC);
    cr_assert_eq(cd->version, 0x20100);
    cr_assert_eq(cd->hash_type, SX_HASH_SHA256);
    cr_assert_eq(cd->n_special, 5);
    cr_assert_eq(cd->n_code, 4);
    cr_assert_eq(cd->code_limit, 13408);
    cr_assert_str_eq(cd->identifier, "r2_hang_test-55554944054645894ce33f2f92270b21227f3949");
    char mm[128];
    mismatches(&ss, cd, mm, sizeof(mm));
    cr_assert_str_eq(mm, "2");
    cr_assert(special_blob_matches(&ss, cd, SX_SLOT_REQUIREMENTS));
    cr_assert(special_blob_matches(&ss, cd, SX_SLOT_ENTITLEMENTS));
    cr_assert(sx_cd_special_is_zero(cd, 1));
    cr_assert(sx_cd_special_is_zero(cd, 3));
    cr_assert(sx_cd_special_is_zero(cd, 4));
    sx_superblob_free(&ss.sb);
    free(s);
}

/* ---- synthetic Mach-O: big-endian thin, fat64 ---- */

static void be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A 32-bit big-endian MH_EXECUTE (PowerPC) with __TEXT and a code signature at 0x200. */
static void make_thin_be(uint8_t *m, size_t len)
{
    memset(m, 0, len);
    be(m + 0, 0xfeedface);
    be(m + 4, 18); /* CPU_TYPE_POWERPC */
    be(m + 12, 2);
    be(m + 16, 2);       /* ncmds */
    be(m + 20, 56 + 16); /* sizeofcmds */
    uint8_t *c = m + 28;
    be(c, 1); /* LC_SEGMENT */
    be(c + 4, 56);
    memcpy(c + 8, "__TEXT", 6);
    be(c + 32, 0);     /* fileoff */
    be(c + 36, 0x100); /* filesize */
    c += 56;
    be(c, 0x1d);
    be(c + 4, 16);
    be(c + 8, 0x200);
    be(c + 12, 0x40);
}

Test(codesign_superblob, thin_big_endian_and_fat64)
{
    uint8_t thin[0x240];
    make_thin_be(thin, sizeof(thin));
    sx_macho_slice *s = NULL;
    size_t n = 0;
    cr_assert_eq(sx_macho_slices(thin, sizeof(thin), "ppc", &s, &n), 0, "%s", sx_errmsg());
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].cputype, 18);
    cr_assert_eq(s[0].sig_offset, 0x200);
    cr_assert_eq(s[0].sig_size, 0x40);
    cr_assert_eq(s[0].text_size, 0x100);
    free(s);

    uint8_t fat[0x1000 + sizeof(thin)];
    memset(fat, 0, sizeof(fat));
    be(fat, 0xcafebabf);
    be(fat + 4, 1);
    be(fat + 8, 18);
    be(fat + 20, 0x1000); /* u64 offset, low half */
    be(fat + 28, sizeof(thin));
    memcpy(fat + 0x1000, thin, sizeof(thin));
    cr_assert_eq(sx_macho_slices(fat, sizeof(fat), "fat64", &s, &n), 0, "%s", sx_errmsg());
    cr_assert_eq(n, 1);
    cr_assert_eq(s[0].offset, 0x1000);
    cr_assert_eq(s[0].sig_offset, 0x200);
    free(s);

    /* signature past the slice end */
    be(thin + 28 + 56 + 12, 0x41);
    s = NULL;
    cr_assert_eq(sx_macho_slices(thin, sizeof(thin), "ppc", &s, &n), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "LC_CODE_SIGNATURE at offset 84: signature 512+65 lies outside "
                                  "the 576-byte slice"),
              "%s", sx_errmsg());
    cr_assert_null(s);
    /* slice past the file end */
    be(fat + 28, sizeof(thin) + 1);
    cr_assert_eq(sx_macho_slices(fat, sizeof(fat), "fat64", &s, &n), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "fat_arch 0 at offset 8"), "%s", sx_errmsg());
    /* a Java class file shares 0xcafebabe but is not a universal binary */
    uint8_t java[16] = {0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52};
    cr_assert_not(sx_macho_is_macho(java, sizeof(java)));
}

Test(codesign_superblob, truncated_load_commands)
{
    uint8_t thin[0x240];
    make_thin_be(thin, sizeof(thin));
    sx_macho_slice *s = NULL;
    size_t n = 0;
    be(thin + 20, 0x1000);
    cr_assert_eq(sx_macho_slices(thin, sizeof(thin), "ppc", &s, &n), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "load commands (4096 bytes) at offset 28 run past"), "%s",
              sx_errmsg());
    make_thin_be(thin, sizeof(thin));
    be(thin + 28 + 4, 0x2000); /* cmdsize lies */
    cr_assert_eq(sx_macho_slices(thin, sizeof(thin), "ppc", &s, &n), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "load command 0 at offset 28 has size 8192"), "%s", sx_errmsg());
    cr_assert_eq(sx_macho_slices(thin, 20, "ppc", &s, &n), SYSEXT_EFORMAT);
}

/* ---- malformed SuperBlobs ---- */

static sx_buf good_sb(void)
{
    static const uint8_t a[] = {0xfa, 0xde, 0x0c, 0x02, 0, 0, 0, 12, 1, 2, 3, 4};
    static const uint8_t b[] = {0xfa, 0xde, 0x0c, 0x01, 0, 0, 0, 12, 0, 0, 0, 0};
    sx_blob_ref refs[] = {{.type = 2, .data = b, .len = sizeof(b)},
                          {.type = 0, .data = a, .len = sizeof(a)}};
    sx_buf o = SX_BUF_INIT;
    cr_assert_eq(sx_superblob_build(refs, 2, &o), 0);
    cr_assert_eq(o.len, 12 + 16 + 24);
    /* sorted by type: CD first, at offset 28 */
    cr_assert_eq(o.data[15], 0);
    cr_assert_eq(o.data[19], 28);
    cr_assert_eq(o.data[23], 2);
    cr_assert_eq(o.data[27], 40);
    return o;
}

static void expect_bad(const sx_buf *b, size_t len, const char *needle)
{
    sx_superblob sb = {0};
    cr_assert_eq(sx_superblob_parse(b->data, len, "sig", &sb), SYSEXT_EFORMAT, "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), needle), "message '%s' lacks '%s'", sx_errmsg(), needle);
    cr_assert_null(sb.blobs);
}

Test(codesign_superblob, malformed)
{
    sx_buf b = good_sb();
    sx_superblob sb;
    cr_assert_eq(sx_superblob_parse(b.data, b.len, "sig", &sb), 0);
    cr_assert_eq(sb.count, 2);
    cr_assert_eq(sx_superblob_find(&sb, 2)->magic, SX_CSMAGIC_REQUIREMENTS);
    cr_assert_null(sx_superblob_find(&sb, 5));
    sx_superblob_free(&sb);

    cr_assert_eq(sx_superblob_parse(b.data, b.len, "sig", &sb), 0);
    cr_assert_eq(sx_superblob_check_strict(&sb, "sig"), 0);
    sx_superblob_free(&sb);
    /* swap the two index entries: still valid, but not codesign's layout */
    sx_buf sw = SX_BUF_INIT;
    sx_buf_append(&sw, b.data, b.len);
    memcpy(sw.data + 12, b.data + 20, 8);
    memcpy(sw.data + 20, b.data + 12, 8);
    cr_assert_eq(sx_superblob_parse(sw.data, sw.len, "sig", &sb), 0);
    cr_assert_eq(sx_superblob_check_strict(&sb, "sig"), SYSEXT_EFORMAT);
    cr_assert_str_eq(sx_errmsg(), "sig: blob of type 0x2 starts at offset 40, expected 28 (blobs "
                                  "must be packed in index order)");
    sx_superblob_free(&sb);
    /* a gap: the length field claims 4 more bytes than the blobs use */
    sx_buf_put_u32be(&sw, 0);
    memcpy(sw.data, b.data, b.len);
    sx_buf_set_u32be(&sw, 4, (uint32_t)sw.len);
    cr_assert_eq(sx_superblob_parse(sw.data, sw.len, "sig", &sb), 0);
    cr_assert_eq(sx_superblob_check_strict(&sb, "sig"), SYSEXT_EFORMAT);
    cr_assert_str_eq(sx_errmsg(), "sig: blobs end at offset 52 but the SuperBlob length is 56");
    sx_superblob_free(&sb);
    sx_buf_free(&sw);

    expect_bad(&b, 10, "sig: truncated at offset 8");
    expect_bad(&b, b.len - 1, "length 52 at offset 4 exceeds the 51 bytes");
    sx_buf_set_u32be(&b, 8, 0x20000000); /* huge count */
    expect_bad(&b, b.len, "index of 536870912 entries at offset 8 runs past its length 52");
    sx_buf_set_u32be(&b, 8, 2);
    sx_buf_set_u32be(&b, 16, 20); /* points inside the index */
    expect_bad(&b, b.len, "entry 0 (type 0x0) at offset 12 points to offset 20, outside 28..52");
    sx_buf_set_u32be(&b, 16, 28);
    sx_buf_set_u32be(&b, 32, 100); /* sub-blob length lies */
    expect_bad(&b, b.len, "entry 0 (type 0x0): blob at offset 28 has length 100");
    sx_buf_set_u32be(&b, 32, 12);
    sx_buf_set_u32be(&b, 20, 0); /* duplicate type */
    expect_bad(&b, b.len, "index type 0x0 appears more than once");
    sx_buf_set_u32be(&b, 0, 0xfade0c02);
    expect_bad(&b, b.len, "magic 0xfade0c02 at offset 0 is not a SuperBlob");
    sx_buf_free(&b);

    sx_blob_ref dup[] = {{.type = 1, .data = (const uint8_t *)"12345678", .len = 8},
                         {.type = 1, .data = (const uint8_t *)"12345678", .len = 8}};
    sx_buf o = SX_BUF_INIT;
    cr_assert_eq(sx_superblob_build(dup, 2, &o), SYSEXT_EINVAL);
    cr_assert_eq(o.len, 0);
}

Test(codesign_superblob, collects_cds_and_picks_best)
{
    file f = load("macho/libexpat.1.dylib");
    size_t n;
    sx_macho_slice *s = slices_of(&f, &n);
    sx_superblob sb;
    cr_assert_eq(
        sx_superblob_parse(f.data + s[0].offset + s[0].sig_offset, s[0].sig_size, "sig", &sb), 0);
    sx_cd cds[SX_MAX_CDS];
    size_t count, best;
    cr_assert_eq(sx_superblob_cds(&sb, "i386", cds, &count, &best), 0, "%s", sx_errmsg());
    cr_assert_eq(count, 2);
    cr_assert_eq(cds[0].hash_type, SX_HASH_SHA1);
    cr_assert_eq(best, 1, "SHA-256 is preferred");
    uint8_t h[SX_CDHASH_LEN];
    sx_cd_cdhash(&cds[best], h);
    assert_hex(h, 20, "f6551ef3dcd5ac5f8272054b30a43d42d877c66d");

    /* the same CD twice (slots 0 and 0x1001): duplicate hash type */
    const sx_blob_ref *cd0 = sx_superblob_find(&sb, 0);
    sx_blob_ref two[] = {*cd0, *cd0};
    two[1].type = 0x1001;
    sx_buf b = SX_BUF_INIT;
    sx_superblob sb2;
    cr_assert_eq(sx_superblob_build(two, 2, &b), 0);
    cr_assert_eq(sx_superblob_parse(b.data, b.len, "dup", &sb2), 0);
    cr_assert_eq(sx_superblob_cds(&sb2, "dup", cds, &count, &best), SYSEXT_EFORMAT);
    cr_assert_str_eq(sx_errmsg(), "dup: CodeDirectory slot 0x1001: a second CodeDirectory with "
                                  "hash type sha1");
    sx_superblob_free(&sb2);
    /* no slot 0 */
    b.len = 0;
    cr_assert_eq(sx_superblob_build(&two[1], 1, &b), 0);
    cr_assert_eq(sx_superblob_parse(b.data, b.len, "alt only", &sb2), 0);
    cr_assert_eq(sx_superblob_cds(&sb2, "alt only", cds, &count, &best), SYSEXT_ENOTFOUND);
    cr_assert(strstr(sx_errmsg(), "not signed at all"));
    sx_superblob_free(&sb2);
    /* an alternate with an unknown digest is skipped; only unknown digests: unsupported */
    uint8_t *odd = malloc(cd0->len);
    memcpy(odd, cd0->data, cd0->len);
    odd[0x25] = 9;
    sx_blob_ref mixed[] = {*cd0, {.type = 0x1000, .data = odd, .len = cd0->len}};
    b.len = 0;
    cr_assert_eq(sx_superblob_build(mixed, 2, &b), 0);
    cr_assert_eq(sx_superblob_parse(b.data, b.len, "mixed", &sb2), 0);
    cr_assert_eq(sx_superblob_cds(&sb2, "mixed", cds, &count, &best), 0, "%s", sx_errmsg());
    cr_assert_eq(count, 1);
    cr_assert_eq(best, 0);
    sx_superblob_free(&sb2);
    mixed[1].type = 0;
    b.len = 0;
    cr_assert_eq(sx_superblob_build(&mixed[1], 1, &b), 0);
    cr_assert_eq(sx_superblob_parse(b.data, b.len, "odd", &sb2), 0);
    cr_assert_eq(sx_superblob_cds(&sb2, "odd", cds, &count, &best), SYSEXT_EUNSUPPORTED);
    cr_assert_str_eq(sx_errmsg(), "odd: no CodeDirectory uses a supported hash type");
    sx_superblob_free(&sb2);
    free(odd);
    sx_buf_free(&b);
    sx_superblob_free(&sb);
    free(s);
}
