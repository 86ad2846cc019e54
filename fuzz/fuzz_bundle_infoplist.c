/* Info.plist bytes (XML or binary) through the parser and the whole Info.plist validator, for
 * each bundle kind, then through both report renderers. */
#include "util/common.h"
#include "bundle/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const sx_bundle_kind kinds[] = {SX_BUNDLE_DEXT, SX_BUNDLE_SYSEXT, SX_BUNDLE_APP};
    if (size > SX_INFO_PLIST_MAX)
        return 0;
    for (size_t i = 0; i < SX_ARRAY_SIZE(kinds); i++) {
        sx_report r;
        sx_report_init(&r);
        sx_validate_info_mem(data, size, kinds[i], &r);
        char *text = NULL;
        if (sx_validate_render(&r, "fuzz", kinds[i], i == 1, &text) == 0)
            free(text);
        sx_report_free(&r);
    }
    return 0;
}
