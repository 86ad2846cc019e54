/* Info.plist bytes (XML or binary) through the parser and the whole Info.plist validator, for
 * each bundle kind, then through both report renderers; the same bytes as an entitlements
 * dictionary through the catalogue check, and wrapped as a CodeEntitlements blob. */
#include "util/common.h"
#include "bundle/schema.h"
#include "bundle/validate.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const sx_bundle_kind kinds[] = {SX_BUNDLE_DEXT, SX_BUNDLE_SYSEXT, SX_BUNDLE_APP};
    static sx_ent_catalog *cat;
    if (size > SX_INFO_PLIST_MAX)
        return 0;
    if (!cat && sx_ent_catalog_load(&cat) < 0)
        abort(); /* the compiled-in catalogue must load */
    for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++) {
        sx_report r;
        sx_report_init(&r);
        sx_validate_info_mem(data, size, kinds[i], &r);
        char *text = NULL;
        if (sx_validate_render(&r, "fuzz", kinds[i], i == 1, &text) == 0)
            free(text);
        sx_report_free(&r);
    }

    /* As a blob: magic, the length, then the bytes (the length taken from the input when it
     * has at least 4 bytes, to reach the bounds checks). */
    sx_buf b = SX_BUF_INIT;
    uint32_t blen = (uint32_t)(size + 8);
    if (size >= 4)
        blen = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 |
               data[3];
    if (sx_buf_put_u32be(&b, SX_ENTITLEMENTS_MAGIC) == 0 && sx_buf_put_u32be(&b, blen) == 0 &&
        sx_buf_append(&b, size >= 4 ? data + 4 : data, size >= 4 ? size - 4 : size) == 0) {
        plist_t ents = NULL;
        if (sx_bundle_parse_entitlements_blob(b.data, b.len, "CodeEntitlements", &ents) == 0) {
            for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++) {
                sx_report r;
                sx_report_init(&r);
                sx_ent_check(cat, ents, kinds[i], i == 2, "CodeEntitlements", &r);
                sx_report_free(&r);
            }
            plist_free(ents);
        }
    }
    sx_buf_free(&b);
    return 0;
}
