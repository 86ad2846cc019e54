/* The incremental hash cache parser (a local file, but parsed boundedly all the same); the
 * checksum is skipped so the records are reached. */
#include "util/common.h"
#include "codesign/seal_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    (void)sx_hash_cache_parse_check(data, size, false, &n);
    (void)sx_hash_cache_parse_check(data, size, true, &n);
    return 0;
}
