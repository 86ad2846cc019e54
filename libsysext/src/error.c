#include "util/common.h"
#include "sysext/version.h"

const char *sysext_last_error(void)
{
    return sx_errmsg();
}

void sysext_clear_error(void)
{
    sx_err_clear();
}

const char *sysext_error_name(int code)
{
    static const char *const names[] = {
        "SYSEXT_OK",        "SYSEXT_ERROR",      "SYSEXT_EINVAL",    "SYSEXT_ENOMEM",
        "SYSEXT_EIO",       "SYSEXT_ENOTFOUND",  "SYSEXT_EEXISTS",   "SYSEXT_EFORMAT",
        "SYSEXT_EINVALID",  "SYSEXT_ELIMIT",     "SYSEXT_EUNSAFE",   "SYSEXT_ESIGNATURE",
        "SYSEXT_EUNTRUSTED", "SYSEXT_EPERM",     "SYSEXT_EPROTO",    "SYSEXT_ETIMEOUT",
        "SYSEXT_ECANCELED", "SYSEXT_EBUSY",      "SYSEXT_EUNSUPPORTED", "SYSEXT_ENETWORK",
        "SYSEXT_EREJECTED",
    };
    if (code > 0 || (size_t)-code >= SX_ARRAY_SIZE(names))
        return "SYSEXT_UNKNOWN";
    return names[-code];
}

const char *sysext_version(void)
{
    return SYSEXT_VERSION;
}
