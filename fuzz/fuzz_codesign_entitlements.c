/* Entitlement blobs: DER (0xfade7172) and XML (0xfade7171). The first byte picks how the rest
 * is fed: 0 = as a whole blob to both parsers, 1 = wrapped as a DER blob, 2 = as an XML blob.
 * A DER blob that parses must re-encode, and its encoding must parse and encode identically. */
#include "util/common.h"
#include "codesign/codedirectory.h"
#include "codesign/entitlements.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_der(const uint8_t *blob, size_t n)
{
    plist_t d = NULL, d2 = NULL;
    if (sx_ent_parse_der_blob(blob, n, &d) < 0)
        return;
    sx_buf b1 = SX_BUF_INIT, b2 = SX_BUF_INIT;
    if (sx_ent_der_blob(d, &b1) < 0)
        __builtin_trap();
    if (sx_ent_parse_der_blob(b1.data, b1.len, &d2) < 0 || sx_ent_der_blob(d2, &b2) < 0 ||
        b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
        __builtin_trap();
    plist_free(d);
    plist_free(d2);
    sx_buf_free(&b1);
    sx_buf_free(&b2);
}

static void check_xml(const uint8_t *blob, size_t n)
{
    plist_t d = NULL;
    if (sx_ent_parse_xml_blob(blob, n, &d) < 0)
        return;
    sx_buf b = SX_BUF_INIT;
    sx_ent_der_blob(d, &b); /* may refuse data/date/real values */
    sx_buf_free(&b);
    plist_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 20))
        return 0;
    uint8_t mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        check_der(data, size);
        check_xml(data, size);
        return 0;
    }
    sx_buf b = SX_BUF_INIT;
    sx_buf_put_u32be(&b, mode == 1 ? SX_CSMAGIC_EMBEDDED_DER_ENTITLEMENTS
                                   : SX_CSMAGIC_EMBEDDED_ENTITLEMENTS);
    sx_buf_put_u32be(&b, (uint32_t)size + 8);
    sx_buf_append(&b, data, size);
    if (mode == 1)
        check_der(b.data, b.len);
    else
        check_xml(b.data, b.len);
    sx_buf_free(&b);
    return 0;
}
