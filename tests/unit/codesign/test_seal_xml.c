/* The direct CodeResources XML writer against libplist 2.2's plist_to_xml (the layout the
 * seal must keep byte for byte): every byte value in keys and strings, data of each digest
 * size at the seal's depths, booleans, empty dicts; and a whole seal over a tree with awkward
 * names re-serialises through libplist to the same bytes. */
#include <criterion/criterion.h>
#include <plist/plist.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/common.h"
#include "codesign/hash.h"
#include "codesign/seal.h"
#include "codesign/seal_internal.h"
#include "util/fs.h"

static char dir[] = "/tmp/sx-test-sealxml-XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    sx_rm_rf(dir);
}

TestSuite(codesign_seal_xml, .init = setup, .fini = teardown);

static void expect_same(plist_t root, const sx_buf *body)
{
    char *xml = NULL;
    uint32_t len = 0;
    plist_to_xml(root, &xml, &len);
    cr_assert_not_null(xml);
    static const char open[] = "<plist version=\"1.0\">\n<dict>\n";
    const char *p = strstr(xml, open);
    cr_assert_not_null(p);
    p += sizeof(open) - 1;
    const char *end = xml + len - strlen("</dict>\n</plist>\n");
    cr_assert_eq(strcmp(end, "</dict>\n</plist>\n"), 0);
    cr_assert_eq((size_t)(end - p), body->len, "libplist:\n%.*s\nours:\n%.*s", (int)(end - p), p,
                 (int)body->len, (const char *)body->data);
    cr_assert_eq(memcmp(p, body->data, body->len), 0, "libplist:\n%.*s\nours:\n%.*s",
                 (int)(end - p), p, (int)body->len, (const char *)body->data);
    plist_to_xml_free(xml);
}

Test(codesign_seal_xml, every_byte_in_keys_and_strings)
{
    for (int c = 1; c < 256; c++) {
        char key[8], val[8];
        snprintf(key, sizeof(key), "a%cb", c);
        snprintf(val, sizeof(val), "%c%cz", c, c);
        plist_t root = plist_new_dict(), d = plist_new_dict();
        plist_dict_set_item(d, "symlink", plist_new_string(val));
        plist_dict_set_item(root, key, d);
        sx_buf b = SX_BUF_INIT;
        cr_assert_eq(sx_xml_key(&b, 1, key), 0);
        cr_assert_eq(sx_xml_tag(&b, 1, "<dict>"), 0);
        cr_assert_eq(sx_xml_key(&b, 2, "symlink"), 0);
        cr_assert_eq(sx_xml_string(&b, 2, val), 0);
        cr_assert_eq(sx_xml_tag(&b, 1, "</dict>"), 0);
        expect_same(root, &b);
        sx_buf_free(&b);
        plist_free(root);
    }
}

Test(codesign_seal_xml, data_bool_and_empty_dict)
{
    uint8_t d[32];
    for (int i = 0; i < 32; i++)
        d[i] = (uint8_t)(i * 37 + 250);
    for (size_t n = 0; n <= 32; n++) {
        plist_t root = plist_new_dict(), files = plist_new_dict(), f2 = plist_new_dict(),
                e = plist_new_dict();
        plist_dict_set_item(files, "x", plist_new_data((const char *)d, n));
        plist_dict_set_item(f2, "hash", plist_new_data((const char *)d, n));
        plist_dict_set_item(f2, "optional", plist_new_bool(1));
        plist_dict_set_item(f2, "other", plist_new_bool(0));
        plist_dict_set_item(files, "y", f2);
        plist_dict_set_item(files, "z", e);
        plist_dict_set_item(root, "files", files);
        plist_dict_set_item(root, "files2", plist_new_dict());
        sx_buf b = SX_BUF_INIT;
        cr_assert_eq(sx_xml_key(&b, 1, "files"), 0);
        cr_assert_eq(sx_xml_tag(&b, 1, "<dict>"), 0);
        cr_assert_eq(sx_xml_key(&b, 2, "x"), 0);
        cr_assert_eq(sx_xml_data(&b, 2, d, n), 0);
        cr_assert_eq(sx_xml_key(&b, 2, "y"), 0);
        cr_assert_eq(sx_xml_tag(&b, 2, "<dict>"), 0);
        cr_assert_eq(sx_xml_key(&b, 3, "hash"), 0);
        cr_assert_eq(sx_xml_data(&b, 3, d, n), 0);
        cr_assert_eq(sx_xml_key(&b, 3, "optional"), 0);
        cr_assert_eq(sx_xml_bool(&b, 3, true), 0);
        cr_assert_eq(sx_xml_key(&b, 3, "other"), 0);
        cr_assert_eq(sx_xml_bool(&b, 3, false), 0);
        cr_assert_eq(sx_xml_tag(&b, 2, "</dict>"), 0);
        cr_assert_eq(sx_xml_key(&b, 2, "z"), 0);
        cr_assert_eq(sx_xml_tag(&b, 2, "<dict/>"), 0);
        cr_assert_eq(sx_xml_tag(&b, 1, "</dict>"), 0);
        cr_assert_eq(sx_xml_key(&b, 1, "files2"), 0);
        cr_assert_eq(sx_xml_tag(&b, 1, "<dict/>"), 0);
        expect_same(root, &b);
        sx_buf_free(&b);
        plist_free(root);
    }
}

Test(codesign_seal_xml, data_over_32_bytes_refused)
{
    uint8_t d[33] = {0};
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_xml_data(&b, 2, d, 33), SYSEXT_EINVAL);
    sx_buf_free(&b);
}

static void put(const char *rel, const char *content)
{
    char *p = sx_path_join(dir, rel), *d = sx_path_dirname(p);
    cr_assert_eq(sx_mkdir_p(d, 0755), 0);
    cr_assert_eq(sx_write_file_atomic(p, content, strlen(content), 0644), 0, "%s", sx_errmsg());
    free(d);
    free(p);
}

/* A whole seal (files, files2 with hash + hash2, optional .lproj entries, symlinks, an empty
 * V1 dict) round-trips through libplist's reader and writer unchanged. */
Test(codesign_seal_xml, seal_reserializes_identically)
{
    put("A.app/Contents/Info.plist", "<plist/>");
    put("A.app/Contents/MacOS/A", "#!/bin/sh\n");
    put("A.app/Contents/Resources/a&b <c> \"q\" 'p'.txt", "1");
    put("A.app/Contents/Resources/en.lproj/Localizable.strings", "2");
    put("A.app/Contents/Resources/\xc3\xa9t\xc3\xa9/x=y;z", "3");
    put("A.app/Contents/Library/Data/plain.bin", "4");
    put("A.app/Contents/Resources/b", "5");
    char *lnk = sx_path_join(dir, "A.app/Contents/Resources/l&<>");
    cr_assert_eq(symlink("a&b <c> \"q\" 'p'.txt", lnk), 0);
    free(lnk);
    char *app = sx_path_join(dir, "A.app");
    for (int both = 0; both < 2; both++) {
        sx_seal_options o = {.bundle_path = app, .main_exe_rel = "MacOS/A"};
        o.digests = both ? SX_SEAL_DIGEST(SX_HASH_SHA1) | SX_SEAL_DIGEST(SX_HASH_SHA256) : 0;
        sx_buf xml = SX_BUF_INIT;
        cr_assert_eq(sx_seal_build(&o, &xml), 0, "%s", sx_errmsg());
        cr_assert_not_null(strstr((const char *)xml.data, "a&amp;b &lt;c&gt; \"q\" 'p'.txt"));
        cr_assert_not_null(strstr((const char *)xml.data, "<key>optional</key>"));
        plist_t root = NULL;
        plist_from_xml((const char *)xml.data, (uint32_t)xml.len, &root);
        cr_assert_not_null(root);
        char *again = NULL;
        uint32_t len = 0;
        plist_to_xml(root, &again, &len);
        cr_assert_eq(len, xml.len);
        cr_assert_eq(memcmp(again, xml.data, len), 0, "libplist:\n%s\nours:\n%s", again,
                     (const char *)xml.data);
        plist_to_xml_free(again);
        plist_free(root);
        sx_buf_free(&xml);
    }
    free(app);
}
