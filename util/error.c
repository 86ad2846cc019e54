#include "util/common.h"

/* One message per thread, so concurrent callers never see each other's errors. */
static _Thread_local char errbuf[2048];

int sx_verr(int code, const char *fmt, va_list ap)
{
    int n = vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
    if (n < 0)
        errbuf[0] = '\0';
    return code;
}

int sx_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sx_verr(code, fmt, ap);
    va_end(ap);
    return code;
}

int sx_err_errno(int code, int errnum, const char *fmt, ...)
{
    char head[1536];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (n < 0)
        head[0] = '\0';
    return sx_err(code, "%s: %s", head, strerror(errnum));
}

int sx_err_prefix(int code, const char *fmt, ...)
{
    char head[1024], old[sizeof(errbuf)];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (n < 0)
        head[0] = '\0';
    memcpy(old, errbuf, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    return sx_err(code, "%s: %s", head, old);
}

int sx_errno_code(int errnum)
{
    switch (errnum) {
    case ENOENT:
    case ENOTDIR:
        return SYSEXT_ENOTFOUND;
    case EEXIST:
    case ENOTEMPTY:
        return SYSEXT_EEXISTS;
    case ENOMEM:
        return SYSEXT_ENOMEM;
    case EACCES:
    case EPERM:
        return SYSEXT_EPERM;
    case ETIMEDOUT:
        return SYSEXT_ETIMEOUT;
    case EINVAL:
        return SYSEXT_EINVAL;
    default:
        return SYSEXT_EIO;
    }
}

const char *sx_errmsg(void)
{
    return errbuf;
}

void sx_err_clear(void)
{
    errbuf[0] = '\0';
}
