/* Arbitrary bytes as a registry snapshot (what sysextd returns, or a --snapshot file): the
 * plist parse, the structure checks and both renderings.
 * Seeds (corpus/fuzz_registry_snapshot/): binary and XML snapshots written by
 * sx_registry_snapshot_bin / by hand. */
#include "util/common.h"

#include "sysext/ioreg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = NULL;
    if (sysext_ioreg_render(data, size, 0, &text) == 0)
        free(text);
    text = NULL;
    if (sysext_ioreg_render(data, size, SYSEXT_IOREG_NO_PROPERTIES, &text) == 0)
        free(text);
    text = NULL;
    if (sysext_ioreg_render(data, size, SYSEXT_OUTPUT_JSON, &text) == 0)
        free(text);
    return 0;
}
