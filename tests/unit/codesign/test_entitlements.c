#include <criterion/criterion.h>

#include "util/common.h"
#include "codesign/codedirectory.h"
#include "codesign/entitlements.h"
#include "codesign/superblob.h"
#include "util/fs.h"

#define APPLE SYSEXT_SHARED_DIR "/samples/apple/"

/* The XML and DER entitlement blobs of TestMacOS-arm64e, cut out of its signature. */
static uint8_t *macho;
static const uint8_t *xml_blob, *der_blob;
static size_t xml_len, der_len;

static void setup(void)
{
    size_t len, n;
    sx_macho_slice *s = NULL;
    sx_superblob sb;
    cr_assert_eq(sx_read_file(APPLE "macho/TestMacOS-arm64e", 1 << 20, &macho, &len), 0);
    cr_assert_eq(sx_macho_slices(macho, len, "TestMacOS", &s, &n), 0);
    cr_assert_eq(sx_superblob_parse(macho + s[0].sig_offset, s[0].sig_size, "sig", &sb), 0);
    const sx_blob_ref *x = sx_superblob_find(&sb, 5), *d = sx_superblob_find(&sb, 7);
    xml_blob = x->data;
    xml_len = x->len;
    der_blob = d->data;
    der_len = d->len;
    sx_superblob_free(&sb);
    free(s);
}

static void teardown(void)
{
    free(macho);
}

TestSuite(codesign_entitlements, .init = setup, .fini = teardown);

/* Golden: our DER encoder applied to Apple's XML gives Apple's DER blob byte for byte. */
Test(codesign_entitlements, der_of_apple_xml_is_byte_identical)
{
    cr_assert_eq(der_len, 149);
    plist_t dict = NULL;
    cr_assert_eq(sx_ent_parse_xml_blob(xml_blob, xml_len, &dict), 0, "%s", sx_errmsg());
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_ent_der_blob(dict, &b), 0, "%s", sx_errmsg());
    cr_assert_eq(b.len, der_len);
    cr_assert_eq(memcmp(b.data, der_blob, der_len), 0);
    sx_buf_free(&b);

    /* and the XML blob keeps the bytes */
    cr_assert_eq(sx_ent_xml_blob(xml_blob + 8, xml_len - 8, &b), 0);
    cr_assert_eq(b.len, xml_len);
    cr_assert_eq(memcmp(b.data, xml_blob, xml_len), 0);
    sx_buf_free(&b);

    /* DER parsed back encodes to the same bytes and holds the same three booleans */
    plist_t back = NULL;
    cr_assert_eq(sx_ent_parse_der_blob(der_blob, der_len, &back), 0, "%s", sx_errmsg());
    cr_assert_eq(plist_dict_get_size(back), 3);
    uint8_t v = 0;
    plist_get_bool_val(plist_dict_get_item(back, "com.apple.security.get-task-allow"), &v);
    cr_assert_eq(v, 1);
    cr_assert_eq(sx_ent_der_blob(back, &b), 0);
    cr_assert_eq(memcmp(b.data, der_blob, der_len), 0);
    sx_buf_free(&b);
    plist_free(back);
    plist_free(dict);
}

static void assert_der(plist_t dict, const uint8_t *want, size_t n)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_ent_der_blob(dict, &b), 0, "%s", sx_errmsg());
    cr_assert_eq(b.len, n + 8);
    cr_assert_eq(memcmp(b.data + 8, want, n), 0);
    plist_t back = NULL;
    cr_assert_eq(sx_ent_parse_der_blob(b.data, b.len, &back), 0, "%s", sx_errmsg());
    sx_buf b2 = SX_BUF_INIT;
    cr_assert_eq(sx_ent_der_blob(back, &b2), 0);
    cr_assert_eq(b2.len, b.len);
    cr_assert_eq(memcmp(b2.data, b.data, b.len), 0, "parse + encode round trip");
    plist_free(back);
    sx_buf_free(&b);
    sx_buf_free(&b2);
}

Test(codesign_entitlements, reference_examples)
{
    plist_t d = plist_new_dict();
    assert_der(d, (const uint8_t[]){0x70, 0x05, 0x02, 0x01, 0x01, 0xb0, 0x00}, 7);
    plist_dict_set_item(d, "key", plist_new_bool(1));
    assert_der(d,
               (const uint8_t[]){0x70, 0x0f, 0x02, 0x01, 0x01, 0xb0, 0x0a, 0x30, 0x08, 0x0c, 0x03,
                                 0x6b, 0x65, 0x79, 0x01, 0x01, 0xff},
               17);
    plist_free(d);
}

Test(codesign_entitlements, values_sorting_and_integers)
{
    plist_t d = plist_new_dict();
    plist_dict_set_item(d, "b", plist_new_uint(128));
    plist_dict_set_item(d, "a", plist_new_uint((uint64_t)-1));
    plist_t arr = plist_new_array();
    plist_array_append_item(arr, plist_new_string("x"));
    plist_array_append_item(arr, plist_new_bool(0));
    plist_dict_set_item(d, "B", arr);
    /* clang-format off */
    static const uint8_t want[] = {
        0x70, 0x23, 0x02, 0x01, 0x01, 0xb0, 0x1e,
        0x30, 0x0b, 0x0c, 0x01, 'B', 0x30, 0x06, 0x0c, 0x01, 'x', 0x01, 0x01, 0x00, /* "B" < "a" */
        0x30, 0x06, 0x0c, 0x01, 'a', 0x02, 0x01, 0xff,                            /* -1 */
        0x30, 0x07, 0x0c, 0x01, 'b', 0x02, 0x02, 0x00, 0x80,                      /* 128 */
    };
    /* clang-format on */
    assert_der(d, want, sizeof(want));
    plist_dict_set_item(d, "data", plist_new_data("x", 1));
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_ent_der_blob(d, &b), SYSEXT_EINVALID);
    cr_assert_str_eq(sx_errmsg(),
                     "entitlements: data: data, date and real values cannot be encoded as DER");
    cr_assert_eq(b.len, 0);
    plist_free(d);
}

Test(codesign_entitlements, long_lengths)
{
    plist_t d = plist_new_dict();
    char big[300];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    plist_dict_set_item(d, big, plist_new_string("v"));
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_ent_der_blob(d, &b), 0);
    /* 70 82 01 3d | 02 01 01 | b0 82 01 36 | 30 82 01 32 | 0c 82 01 2b ... */
    static const uint8_t hdr[] = {0x70, 0x82, 0x01, 0x3d, 0x02, 0x01, 0x01, 0xb0, 0x82, 0x01,
                                  0x36, 0x30, 0x82, 0x01, 0x32, 0x0c, 0x82, 0x01, 0x2b};
    cr_assert_eq(memcmp(b.data + 8, hdr, sizeof(hdr)), 0);
    plist_t back = NULL;
    cr_assert_eq(sx_ent_parse_der_blob(b.data, b.len, &back), 0, "%s", sx_errmsg());
    cr_assert_not_null(plist_dict_get_item(back, big));
    plist_free(back);
    sx_buf_free(&b);
    plist_free(d);
}

static void expect_bad_der(const uint8_t *der, size_t n, int code, const char *needle)
{
    sx_buf b = SX_BUF_INIT;
    sx_buf_put_u32be(&b, SX_CSMAGIC_EMBEDDED_DER_ENTITLEMENTS);
    sx_buf_put_u32be(&b, (uint32_t)n + 8);
    sx_buf_append(&b, der, n);
    plist_t out = NULL;
    cr_assert_eq(sx_ent_parse_der_blob(b.data, b.len, &out), code, "%s", sx_errmsg());
    cr_assert(strstr(sx_errmsg(), needle), "message '%s' lacks '%s'", sx_errmsg(), needle);
    cr_assert_null(out);
    sx_buf_free(&b);
}

Test(codesign_entitlements, malformed_der)
{
    expect_bad_der((const uint8_t[]){0x70, 0x05, 0x02, 0x01, 0x01, 0xb0}, 6, SYSEXT_EFORMAT,
                   "DER element at offset 8 claims 5 bytes, 4 left");
    expect_bad_der((const uint8_t[]){0x70, 0x80, 0x02, 0x01, 0x01, 0xb0, 0x00, 0, 0}, 9,
                   SYSEXT_EFORMAT, "DER length form 0x80 at offset 9");
    expect_bad_der((const uint8_t[]){0x70, 0x05, 0x02, 0x01, 0x02, 0xb0, 0x00}, 7, SYSEXT_EFORMAT,
                   "version at offset 10 is not INTEGER 1");
    expect_bad_der(
        (const uint8_t[]){0x70, 0x09, 0x02, 0x01, 0x01, 0xb0, 0x04, 0x04, 0x02, 'a', 'b'}, 11,
        SYSEXT_EFORMAT, "dictionary entry at offset 15: tag 0x04, expected SEQUENCE");
    /* {"a": true, "a": true} */
    expect_bad_der((const uint8_t[]){0x70, 0x15, 0x02, 0x01, 0x01, 0xb0, 0x10, 0x30,
                                     0x06, 0x0c, 0x01, 'a',  0x01, 0x01, 0xff, 0x30,
                                     0x06, 0x0c, 0x01, 'a',  0x01, 0x01, 0xff},
                   23, SYSEXT_EFORMAT, "dictionary key 'a' at offset 25 appears twice");
    expect_bad_der((const uint8_t[]){0x70, 0x0c, 0x02, 0x01, 0x01, 0xb0, 0x07, 0x30, 0x05, 0x0c,
                                     0x01, 'a', 0x01, 0x00},
                   14, SYSEXT_EFORMAT, "BOOLEAN at offset 20 is not 00 or ff");
    expect_bad_der((const uint8_t[]){0x70, 0x05, 0x02, 0x01, 0x01, 0xb0, 0x00, 0x00}, 8,
                   SYSEXT_EFORMAT, "1 trailing bytes after the DER at offset 15");
    /* 40 nested arrays under one key */
    uint8_t deep[7 + 5 + 80];
    size_t n = 0, depth = 40;
    deep[n++] = 0x70;
    deep[n++] = (uint8_t)(3 + 2 + 5 + 2 * depth - 2);
    deep[n++] = 0x02, deep[n++] = 0x01, deep[n++] = 0x01;
    deep[n++] = 0xb0;
    deep[n++] = (uint8_t)(5 + 2 * depth - 2);
    deep[n++] = 0x30;
    deep[n++] = (uint8_t)(3 + 2 * depth - 2);
    deep[n++] = 0x0c, deep[n++] = 0x01, deep[n++] = 'a';
    for (size_t i = 0; i < depth - 1; i++) {
        deep[n++] = 0x30;
        deep[n++] = (uint8_t)(2 * (depth - 2 - i));
    }
    expect_bad_der(deep, n, SYSEXT_ELIMIT, "nested deeper than 32 levels");

    plist_t out = NULL;
    cr_assert_eq(sx_ent_parse_der_blob(xml_blob, xml_len, &out), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "magic 0xfade7171 at offset 0, expected 0xfade7172"));
    cr_assert_eq(sx_ent_parse_der_blob(der_blob, der_len - 1, &out), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "blob length 149 at offset 4 does not fit the 148 bytes"));
}

Test(codesign_entitlements, xml_blobs)
{
    plist_t out = NULL;
    cr_assert_eq(sx_ent_parse_xml_blob(xml_blob, xml_len, &out), 0);
    cr_assert_eq(plist_dict_get_size(out), 3);
    plist_free(out);
    out = NULL;
    static const char notdict[] = "<plist version=\"1.0\"><array/></plist>";
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_ent_xml_blob((const uint8_t *)notdict, strlen(notdict), &b), 0);
    cr_assert_eq(sx_ent_parse_xml_blob(b.data, b.len, &out), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "is not a dictionary"), "%s", sx_errmsg());
    b.len = 0;
    cr_assert_eq(sx_ent_xml_blob((const uint8_t *)"<plist><dict>", 13, &b), 0);
    cr_assert_eq(sx_ent_parse_xml_blob(b.data, b.len, &out), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "does not parse"), "%s", sx_errmsg());
    cr_assert_null(out);
    sx_buf_free(&b);
}
