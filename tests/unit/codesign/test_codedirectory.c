#include <criterion/criterion.h>

#include "util/common.h"
#include "codesign/codedirectory.h"
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
    cr_assert_leq(n, SX_HASH_MAX_SIZE);
    sx_hex_encode(p, n, got);
    cr_assert_str_eq(got, want);
}

static void assert_cdhash(const sx_cd *cd, const char *want)
{
    uint8_t h[SX_CDHASH_LEN];
    cr_assert_eq(sx_cd_cdhash(cd, h), 0);
    assert_hex(h, SX_CDHASH_LEN, want);
}

/* The hash of `f` with the CD's type equals special slot n. */
static bool special_matches(const sx_cd *cd, unsigned n, const file *f)
{
    uint8_t h[SX_HASH_MAX_SIZE];
    cr_assert_eq(sx_hash(cd->hash_type, f->data, f->len, h), 0);
    const uint8_t *s = sx_cd_special(cd, n);
    return s && memcmp(s, h, cd->hash_size) == 0;
}

static bool code_matches(const sx_cd *cd, uint32_t i, const file *f)
{
    uint8_t h[SX_HASH_MAX_SIZE];
    uint64_t start = cd->page_size_log2 ? (uint64_t)i << cd->page_size_log2 : 0;
    uint64_t end = cd->page_size_log2 ? start + (1ull << cd->page_size_log2) : cd->code_limit;
    if (end > cd->code_limit)
        end = cd->code_limit;
    cr_assert_leq(end, f->len);
    cr_assert_eq(sx_hash(cd->hash_type, f->data + start, end - start, h), 0);
    return memcmp(sx_cd_code_slot(cd, i), h, cd->hash_size) == 0;
}

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
    cr_assert_eq(b.len, cd->len);
    cr_assert_eq(memcmp(b.data, cd->blob, cd->len), 0, "rebuilt CD differs");
    sx_buf_free(&b);
}

Test(codesign_codedirectory, sstest_primary_and_alternate)
{
    file cd1 = load("sstest.app/Contents/_CodeSignature/CodeDirectory");
    file cd2 = load("sstest.app/Contents/_CodeSignature/CodeRequirements-1");
    file info = load("sstest.app/Contents/Info.plist");
    file reqs = load("sstest.app/Contents/_CodeSignature/CodeRequirements");
    file res = load("sstest.app/Contents/_CodeSignature/CodeResources");
    file exe = load("sstest.app/Contents/MacOS/MyApp");
    file mod = load("sstest.MyApp.modified");
    sx_cd cd;
    cr_assert_eq(sx_cd_parse(cd1.data, cd1.len, "CodeDirectory", &cd), 0, "%s", sx_errmsg());
    cr_assert_eq(cd.version, 0x20100);
    cr_assert_eq(cd.flags, 0);
    cr_assert_eq(cd.hash_type, SX_HASH_SHA1);
    cr_assert_eq(cd.hash_size, 20);
    cr_assert_eq(cd.n_special, 3);
    cr_assert_eq(cd.n_code, 1);
    cr_assert_eq(cd.code_limit, 33);
    cr_assert_eq(cd.page_size_log2, 0);
    cr_assert_eq(cd.hash_offset, 126);
    cr_assert_str_eq(cd.identifier, "com.example.myapp");
    cr_assert_null(cd.team_id);
    assert_cdhash(&cd, "ece6fd5bd4b96238f8db9ad9dcbe2866070220ff");
    assert_hex(sx_cd_special(&cd, 1), 20, "60aa92607c8b21e4918abd944efb16a2952390df");
    assert_hex(sx_cd_special(&cd, 2), 20, "e5d98c5002bd0f6874fac6c477b20cf374b3e786");
    assert_hex(sx_cd_special(&cd, 3), 20, "630a08873072069616cdcc31f55e6d7423086d78");
    assert_hex(sx_cd_code_slot(&cd, 0), 20, "1b85622a06deee0f7c5e9e6026031e51f92fc023");
    cr_assert_null(sx_cd_special(&cd, 4));
    cr_assert_null(sx_cd_special(&cd, 0));
    cr_assert_null(sx_cd_code_slot(&cd, 1));
    cr_assert(special_matches(&cd, 1, &info));
    cr_assert(special_matches(&cd, 2, &reqs));
    cr_assert(special_matches(&cd, 3, &res));
    cr_assert(code_matches(&cd, 0, &exe));
    cr_assert_not(code_matches(&cd, 0, &(file){mod.data, 33}), "modified executable must mismatch");

    sx_cd alt;
    cr_assert_eq(sx_cd_parse(cd2.data, cd2.len, "CodeRequirements-1", &alt), 0, "%s", sx_errmsg());
    cr_assert_eq(alt.hash_type, SX_HASH_SHA256);
    cr_assert_eq(alt.hash_size, 32);
    cr_assert_eq(alt.hash_offset, 0xa2);
    cr_assert_str_eq(alt.identifier, "com.example.myapp");
    uint8_t full[SX_HASH_MAX_SIZE];
    size_t n = 0;
    cr_assert_eq(sx_cd_full_hash(&alt, full, &n), 0);
    cr_assert_eq(n, 32);
    assert_hex(full, 32, "9def50e6fd3b263b093809813d2f11c86e8990152e5176f08b740728563897ee");
    assert_cdhash(&alt, "9def50e6fd3b263b093809813d2f11c86e899015");
    cr_assert(special_matches(&alt, 1, &info));
    cr_assert(special_matches(&alt, 2, &reqs));
    cr_assert(special_matches(&alt, 3, &res));
    cr_assert(code_matches(&alt, 0, &exe));
    cr_assert_gt(sx_hash_type_rank(alt.hash_type), sx_hash_type_rank(cd.hash_type));
}

/* The strongest golden test: from the script bundle's inputs, build both CDs and get
 * Apple's bytes exactly. */
Test(codesign_codedirectory, sstest_build_is_byte_identical)
{
    file info = load("sstest.app/Contents/Info.plist");
    file reqs = load("sstest.app/Contents/_CodeSignature/CodeRequirements");
    file res = load("sstest.app/Contents/_CodeSignature/CodeResources");
    file exe = load("sstest.app/Contents/MacOS/MyApp");
    const char *apple[] = {"sstest.app/Contents/_CodeSignature/CodeDirectory",
                           "sstest.app/Contents/_CodeSignature/CodeRequirements-1"};
    uint8_t types[] = {SX_HASH_SHA1, SX_HASH_SHA256};
    for (int k = 0; k < 2; k++) {
        uint8_t hi[SX_HASH_MAX_SIZE], hr[SX_HASH_MAX_SIZE], hs[SX_HASH_MAX_SIZE],
            hc[SX_HASH_MAX_SIZE];
        sx_hash(types[k], info.data, info.len, hi);
        sx_hash(types[k], reqs.data, reqs.len, hr);
        sx_hash(types[k], res.data, res.len, hs);
        sx_hash(types[k], exe.data, exe.len, hc);
        sx_cd_params p = {.identifier = "com.example.myapp",
                          .hash_type = types[k],
                          .code_limit = exe.len,
                          .code_hashes = hc,
                          .n_code_slots = 1};
        p.special[SX_SLOT_INFO] = hi;
        p.special[SX_SLOT_REQUIREMENTS] = hr;
        p.special[SX_SLOT_RESOURCES] = hs;
        sx_buf b = SX_BUF_INIT;
        cr_assert_eq(sx_cd_build(&p, &b), 0, "%s", sx_errmsg());
        file want = load(apple[k]);
        cr_assert_eq(b.len, want.len);
        cr_assert_eq(memcmp(b.data, want.data, want.len), 0, "%s differs", apple[k]);
        sx_buf_free(&b);
    }
}

Test(codesign_codedirectory, install_apk_adhoc_info_plist_mismatch)
{
    file cd1 = load("install-apk-adhoc.app/Contents/_CodeSignature/CodeDirectory");
    file cd2 = load("install-apk-adhoc.app/Contents/_CodeSignature/CodeRequirements-1");
    file info = load("install-apk-adhoc.app/Contents/Info.plist");
    file reqs = load("install-apk-adhoc.app/Contents/_CodeSignature/CodeRequirements");
    file res = load("install-apk-adhoc.app/Contents/_CodeSignature/CodeResources");
    file exe = load("install-apk-adhoc.app/Contents/MacOS/InstallAPKs");
    sx_cd cd, alt;
    cr_assert_eq(sx_cd_parse(cd1.data, cd1.len, NULL, &cd), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_cd_parse(cd2.data, cd2.len, NULL, &alt), 0, "%s", sx_errmsg());
    cr_assert_eq(cd.version, 0x20100);
    cr_assert_eq(cd.flags, SX_CS_ADHOC);
    cr_assert_eq(alt.flags, SX_CS_ADHOC);
    cr_assert_eq(cd.n_special, 3);
    cr_assert_eq(cd.n_code, 1);
    cr_assert_eq(cd.code_limit, 91);
    cr_assert_str_eq(cd.identifier, "com.example.InstallAPKs");
    assert_cdhash(&cd, "0c810928dca9279dfdce75907235504c1418eb90");
    assert_cdhash(&alt, "6762a807174618b7eccfc1a2f55245df55e1a496");
    assert_hex(sx_cd_special(&cd, 1), 20, "835a9c84d5ecdd1b9384767c1080b7be05f37055");
    assert_hex(sx_cd_special(&alt, 1), 32,
               "284a97109b18d34199347a0056bc3c8fb3c71e155fb2331ac205ea23623ce37a");
    const sx_cd *both[] = {&cd, &alt};
    for (int i = 0; i < 2; i++) {
        cr_assert_not(special_matches(both[i], 1, &info), "Info.plist was edited after signing");
        cr_assert(special_matches(both[i], 2, &reqs));
        cr_assert(special_matches(both[i], 3, &res));
        cr_assert(code_matches(both[i], 0, &exe));
        assert_rebuilds(both[i]);
    }
}

Test(codesign_codedirectory, wzc_framework)
{
    file cd1 = load("wzccustombutton.framework/_CodeSignature/CodeDirectory");
    file cd2 = load("wzccustombutton.framework/_CodeSignature/CodeRequirements-1");
    file info = load("wzccustombutton.framework/Info.plist");
    file reqs = load("wzccustombutton.framework/_CodeSignature/CodeRequirements");
    file res = load("wzccustombutton.framework/_CodeSignature/CodeResources");
    file exe = load("wzccustombutton.framework/WZCCustomButton");
    sx_cd cd, alt;
    cr_assert_eq(sx_cd_parse(cd1.data, cd1.len, NULL, &cd), 0, "%s", sx_errmsg());
    cr_assert_eq(sx_cd_parse(cd2.data, cd2.len, NULL, &alt), 0, "%s", sx_errmsg());
    cr_assert_eq(cd.version, 0x20100);
    cr_assert_eq(cd.flags, SX_CS_ADHOC);
    cr_assert_eq(cd.hash_type, SX_HASH_SHA1);
    cr_assert_eq(alt.hash_type, SX_HASH_SHA256);
    cr_assert_eq(cd.n_special, 3);
    cr_assert_eq(cd.n_code, 1);
    cr_assert_eq(cd.code_limit, 43728);
    cr_assert_str_eq(cd.identifier, "--------.WZCCustomButton");
    assert_cdhash(&cd, "a835b13ea882e7abe10d5e4d2f083dae255dfbd9");
    const sx_cd *both[] = {&cd, &alt};
    for (int i = 0; i < 2; i++) {
        cr_assert(special_matches(both[i], 1, &info));
        cr_assert(special_matches(both[i], 2, &reqs));
        cr_assert(special_matches(both[i], 3, &res));
        cr_assert(code_matches(both[i], 0, &exe));
        assert_rebuilds(both[i]);
    }
}

Test(codesign_codedirectory, version_choice)
{
    uint8_t h[32] = {1};
    sx_cd_params p = {.identifier = "a.b",
                      .hash_type = SX_HASH_SHA256,
                      .page_size_log2 = 12,
                      .code_limit = 4097,
                      .code_hashes = (const uint8_t[64]){0},
                      .n_code_slots = 2};
    struct {
        const char *team;
        uint64_t seg_limit;
        uint32_t runtime;
        uint32_t version;
        size_t ident_off;
    } cases[] = {
        {NULL, 0, 0, 0x20100, 48},
        {"ABCDE12345", 0, 0, 0x20200, 52},
        {"ABCDE12345", 16384, 0, 0x20400, 88},
        {NULL, 16384, 0x000c0000, 0x20500, 96},
    };
    for (size_t i = 0; i < SX_ARRAY_SIZE(cases); i++) {
        p.team_id = cases[i].team;
        p.exec_seg_limit = cases[i].seg_limit;
        p.runtime_version = cases[i].runtime;
        p.special[SX_SLOT_ENTITLEMENTS] = h;
        sx_buf b = SX_BUF_INIT;
        sx_cd cd;
        cr_assert_eq(sx_cd_build(&p, &b), 0, "%s", sx_errmsg());
        cr_assert_eq(sx_cd_parse(b.data, b.len, "built", &cd), 0, "%s", sx_errmsg());
        cr_assert_eq(cd.version, cases[i].version, "case %zu", i);
        cr_assert_eq(cd.ident_offset, cases[i].ident_off);
        cr_assert_eq(cd.n_special, 5, "nSpecialSlots = highest filled slot");
        cr_assert(sx_cd_special_is_zero(&cd, 1));
        cr_assert_not(sx_cd_special_is_zero(&cd, 5));
        cr_assert_eq(cd.n_code, 2);
        cr_assert_eq(cd.hash_offset + 2 * 32, b.len, "code hashes end the blob");
        cr_assert_eq(cd.exec_seg_limit, cases[i].seg_limit);
        cr_assert_eq(cd.runtime_version, cases[i].runtime);
        if (cases[i].team)
            cr_assert_str_eq(cd.team_id, cases[i].team);
        else
            cr_assert_null(cd.team_id);
        sx_buf_free(&b);
    }
    p.n_code_slots = 1; /* 4097 bytes in 4 KiB pages need 2 */
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_cd_build(&p, &b), SYSEXT_EINVAL);
    cr_assert_eq(b.len, 0);
    sx_buf_free(&b);
}

/* ---- malformed blobs: each a precise SYSEXT_EFORMAT naming the offset ---- */

static sx_buf good_cd(void)
{
    uint8_t code[20] = {0}, s2[20] = {2};
    sx_cd_params p = {.identifier = "com.example.app",
                      .team_id = "ABCDE12345",
                      .hash_type = SX_HASH_SHA1,
                      .code_limit = 10,
                      .code_hashes = code,
                      .n_code_slots = 1};
    p.special[2] = s2;
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_cd_build(&p, &b), 0);
    cr_assert_eq(b.len, 52 + 16 + 11 + 40 + 20);
    return b;
}

static void put32(sx_buf *b, size_t off, uint32_t v)
{
    sx_buf_set_u32be(b, off, v);
}

static void expect_bad(const sx_buf *b, size_t len, int code, const char *needle)
{
    sx_cd cd;
    cr_assert_eq(sx_cd_parse(b->data, len, "CD", &cd), code, "got '%s'", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), needle), "message '%s' lacks '%s'", sx_errmsg(), needle);
}

Test(codesign_codedirectory, rejects_truncated_and_lying_lengths)
{
    sx_buf b = good_cd();
    expect_bad(&b, 5, SYSEXT_EFORMAT, "CD: truncated at offset 4");
    expect_bad(&b, b.len - 1, SYSEXT_EFORMAT, "length 139 at offset 4 exceeds the 138 bytes");
    put32(&b, 4, 40);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "length 40 at offset 4 is shorter than the 44-byte");
    put32(&b, 4, 50);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "shorter than the 52-byte header of version 0x20200");
    put32(&b, 4, (uint32_t)b.len);
    put32(&b, 0, 0xfade0c01);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "magic 0xfade0c01 at offset 0");
    sx_buf_free(&b);
}

Test(codesign_codedirectory, rejects_bad_version_and_hash_fields)
{
    sx_buf b = good_cd();
    put32(&b, 8, 0x20000);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "version 0x20000 at offset 8 is outside");
    put32(&b, 8, 0x2F001);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "version 0x2f001 at offset 8");
    put32(&b, 8, 0x20200);
    b.data[0x24] = 32;
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "hash size 32 at offset 0x24 does not match sha1");
    b.data[0x24] = 20;
    b.data[0x25] = 9;
    expect_bad(&b, b.len, SYSEXT_EUNSUPPORTED, "hash type 9 at offset 0x25 is unknown");
    sx_buf_free(&b);
}

Test(codesign_codedirectory, rejects_bad_strings)
{
    sx_buf b = good_cd();
    put32(&b, 0x14, (uint32_t)b.len);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "identifier offset 139 is outside the 139-byte blob");
    /* identifier pointing at the last code hash byte, which is not NUL-terminated */
    b.data[b.len - 1] = 'x';
    put32(&b, 0x14, (uint32_t)b.len - 1);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "identifier at offset 138 is not NUL-terminated");
    put32(&b, 0x14, 52);
    put32(&b, 0x30, 0xffffff00);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "team ID offset 4294967040 is outside");
    sx_buf_free(&b);
}

Test(codesign_codedirectory, rejects_hash_arrays_outside)
{
    sx_buf b = good_cd();
    put32(&b, 0x1C, 2); /* one more code slot than the blob holds (and the page rule) */
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "2 code slots at hashOffset 119 run past the blob end");
    put32(&b, 0x1C, 0xffffffff);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "4294967295 code slots");
    put32(&b, 0x1C, 1);
    put32(&b, 0x18, 0x7fffffff);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "2147483647 special slots of 20 bytes do not fit");
    put32(&b, 0x18, 2);
    put32(&b, 0x10, 20);
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "do not fit below hashOffset 20");
    sx_buf_free(&b);
}

Test(codesign_codedirectory, rejects_page_count_mismatch)
{
    sx_buf b = good_cd();
    put32(&b, 0x20, 0); /* codeLimit 0 but one code slot */
    expect_bad(&b, b.len, SYSEXT_EFORMAT,
               "has 1 code slots but codeLimit 0 with page size 2^0 "
               "needs 0");
    put32(&b, 0x20, 5000);
    b.data[0x27] = 12;
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "codeLimit 5000 with page size 2^12 needs 2");
    b.data[0x27] = 64;
    expect_bad(&b, b.len, SYSEXT_EFORMAT, "page size 2^64 at offset 0x27 is invalid");
    sx_buf_free(&b);
}
