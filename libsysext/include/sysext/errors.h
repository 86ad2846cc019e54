/**
 * Error codes and the thread-local last-error message.
 *
 * Every fallible sysext function returns 0 on success or one of the negative codes below,
 * and sets a one-line message, readable with sysext_last_error(), that names the file, the
 * key path or byte offset, and what was expected. Read it only right after a failure.
 */
#ifndef SYSEXT_ERRORS_H
#define SYSEXT_ERRORS_H

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

typedef enum sysext_error_code {
    SYSEXT_OK = 0,
    SYSEXT_ERROR = -1,        /**< generic failure */
    SYSEXT_EINVAL = -2,       /**< invalid argument or usage */
    SYSEXT_ENOMEM = -3,       /**< out of memory */
    SYSEXT_EIO = -4,          /**< an I/O operation failed */
    SYSEXT_ENOTFOUND = -5,    /**< the file, key or object does not exist */
    SYSEXT_EEXISTS = -6,      /**< the target already exists */
    SYSEXT_EFORMAT = -7,      /**< malformed input (plist, blob, archive, message) */
    SYSEXT_EINVALID = -8,     /**< the checked thing is well-formed but invalid */
    SYSEXT_ELIMIT = -9,       /**< a size, count or ratio limit was exceeded */
    SYSEXT_EUNSAFE = -10,     /**< a path or link would leave its root */
    SYSEXT_ESIGNATURE = -11,  /**< a signature or seal does not match */
    SYSEXT_EUNTRUSTED = -12,  /**< a certificate chain is not trusted */
    SYSEXT_EPERM = -13,       /**< not permitted */
    SYSEXT_EPROTO = -14,      /**< a peer broke the protocol */
    SYSEXT_ETIMEOUT = -15,    /**< timed out */
    SYSEXT_ECANCELED = -16,   /**< canceled */
    SYSEXT_EBUSY = -17,       /**< busy; try again */
    SYSEXT_EUNSUPPORTED = -18,/**< not supported */
    SYSEXT_ENETWORK = -19,    /**< a network operation failed */
    SYSEXT_EREJECTED = -20,   /**< a policy or assessment rejected the thing */
} sysext_error_code;

/**
 * The message of the last failure on this thread. Never NULL (empty when there is none);
 * owned by the library and valid until the next sysext call on this thread.
 */
SYSEXT_API const char *sysext_last_error(void);

/** Clear this thread's last-error message. */
SYSEXT_API void sysext_clear_error(void);

/** A short constant name for a code, e.g. "SYSEXT_EFORMAT". Never NULL. */
SYSEXT_API const char *sysext_error_name(int code);

SYSEXT_END_DECLS

#endif
