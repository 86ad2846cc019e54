/* sysextd's managed-policy parser (one payload, or a profile with PayloadContent) on hostile
 * bytes, then every query the daemon makes of a parsed policy. */
#include "util/common.h"

#include "sysextd/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sxd_policy p;
    if (sxd_policy_parse(data, size, "policy.plist", &p) < 0)
        return 0;
    (void)sxd_policy_allows(&p, "ABCDE12345", "com.example.driver");
    (void)sxd_policy_type_allowed(&p, "ABCDE12345", "DriverExtension");
    (void)sxd_policy_removable(&p, "ABCDE12345", "com.example.driver");
    (void)sxd_policy_non_removable(&p, "ABCDE12345", "com.example.driver");
    plist_t out = sxd_policy_to_plist(&p);
    if (out)
        plist_free(out);
    sxd_policy_free(&p);
    return 0;
}
