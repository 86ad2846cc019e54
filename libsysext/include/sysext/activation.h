/**
 * The app-side activation API (Apple's OSSystemExtensionRequest) and the administration calls
 * behind `sysextctl list / approve / uninstall / developer / reset / gc / policy show`.
 *
 * An app opens a client (a connection to sysextd), submits requests for extension
 * identifiers with a delegate of callbacks, and then either polls sysext_client_fd() and calls
 * sysext_client_dispatch() from its event loop, or blocks in sysext_client_wait(). Callbacks
 * run inside dispatch/wait, on the caller's thread.
 *
 * Socket: the `socket_path` argument, else the environment variable SYSEXT_SOCKET, else
 * /run/sysextd.sock.
 */
#ifndef SYSEXT_ACTIVATION_H
#define SYSEXT_ACTIVATION_H

#include <stddef.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

/** OSSystemExtensionErrorCode: the numbers of Apple's SystemExtensions.h. */
typedef enum sysext_os_error {
    SYSEXT_OSERR_UNKNOWN = 1,
    SYSEXT_OSERR_MISSING_ENTITLEMENT = 2,
    SYSEXT_OSERR_UNSUPPORTED_PARENT_BUNDLE_LOCATION = 3,
    SYSEXT_OSERR_EXTENSION_NOT_FOUND = 4,
    SYSEXT_OSERR_EXTENSION_MISSING_IDENTIFIER = 5,
    SYSEXT_OSERR_DUPLICATE_EXTENSION_IDENTIFER = 6,
    SYSEXT_OSERR_UNKNOWN_EXTENSION_CATEGORY = 7,
    SYSEXT_OSERR_CODE_SIGNATURE_INVALID = 8,
    SYSEXT_OSERR_VALIDATION_FAILED = 9,
    SYSEXT_OSERR_FORBIDDEN_BY_SYSTEM_POLICY = 10,
    SYSEXT_OSERR_REQUEST_CANCELED = 11,
    SYSEXT_OSERR_REQUEST_SUPERSEDED = 12,
    SYSEXT_OSERR_AUTHORIZATION_REQUIRED = 13,
} sysext_os_error;

/** "OSSystemExtensionErrorCodeSignatureInvalid" etc.; "OSSystemExtensionErrorUnknown" for
 * numbers outside 1..13. Never NULL. */
SYSEXT_API const char *sysext_os_error_name(int code);

typedef enum sysext_request_kind {
    SYSEXT_REQUEST_ACTIVATE = 0,
    SYSEXT_REQUEST_DEACTIVATE = 1,
    SYSEXT_REQUEST_PROPERTIES = 2,
} sysext_request_kind;

/** OSSystemExtensionReplacementAction. */
typedef enum sysext_replacement_action {
    SYSEXT_REPLACEMENT_CANCEL = 0,
    SYSEXT_REPLACEMENT_REPLACE = 1,
} sysext_replacement_action;

/** OSSystemExtensionRequestResult. sysext's daemon finishes every request with COMPLETED: an old
 * version's drivers always end (Stop, then SIGKILL after the host's reply timeout) and its copy is
 * removed at once, so nothing waits for a reboot. WILL_COMPLETE_AFTER_REBOOT is kept so code written
 * for Apple's API handles it. */
typedef enum sysext_request_result {
    SYSEXT_REQUEST_COMPLETED = 0,
    SYSEXT_REQUEST_WILL_COMPLETE_AFTER_REBOOT = 1,
} sysext_request_result;

/** OSSystemExtensionProperties (strings borrowed, valid during the callback only). */
typedef struct sysext_extension_properties {
    const char *identifier;    /**< CFBundleIdentifier */
    const char *version;       /**< CFBundleVersion */
    const char *short_version; /**< CFBundleShortVersionString */
    const char *path;          /**< the staged copy the daemon runs */
    const char *team_id;
    const char *state;         /**< e.g. "activated_enabled" */
    int enabled;
    int awaiting_user_approval;
    int uninstalling;
} sysext_extension_properties;

typedef struct sysext_request sysext_request;
typedef struct sysext_client sysext_client;

/** The delegate. Any callback may be NULL (action_for_replacing NULL means Replace). */
typedef struct sysext_request_delegate {
    void *ctx;
    void (*needs_user_approval)(sysext_request *req, void *ctx);
    sysext_replacement_action (*action_for_replacing)(sysext_request *req,
                                                      const sysext_extension_properties *existing,
                                                      const sysext_extension_properties *ext,
                                                      void *ctx);
    void (*finished)(sysext_request *req, sysext_request_result result, void *ctx);
    /** code: sysext_os_error; name: its ObjC name; message: the daemon's reason. */
    void (*failed)(sysext_request *req, int code, const char *name, const char *message,
                   void *ctx);
    void (*found_properties)(sysext_request *req, const sysext_extension_properties *props,
                             size_t count, void *ctx);
} sysext_request_delegate;

/**
 * Connect to sysextd. @param socket_path NULL: $SYSEXT_SOCKET, else /run/sysextd.sock.
 * @param[out] out free with sysext_client_free().
 */
SYSEXT_API int sysext_client_open(const char *socket_path, sysext_client **out);
/** Close the connection; pending requests are dropped without callbacks. NULL is fine. */
SYSEXT_API void sysext_client_free(sysext_client *c);
/** The descriptor to poll for input (POLLIN) from an event loop. */
SYSEXT_API int sysext_client_fd(const sysext_client *c);

/**
 * Submit a request for extension `identifier`. The delegate is copied.
 * @param[out] out_req optional; the request stays owned by the client and is valid until
 *             its finished or failed callback returns.
 */
SYSEXT_API int sysext_client_submit(sysext_client *c, sysext_request_kind kind,
                                    const char *identifier, const sysext_request_delegate *delegate,
                                    sysext_request **out_req);
/** Read what the daemon sent, without blocking, and run the callbacks.
 * @return 0; SYSEXT_EPROTO / SYSEXT_EIO when the connection broke (pending requests then
 * fail with code 1 through their delegates). */
SYSEXT_API int sysext_client_dispatch(sysext_client *c);
/** Block until no request is pending, or `timeout_ms` (-1: no limit) passes
 * (SYSEXT_ETIMEOUT). */
SYSEXT_API int sysext_client_wait(sysext_client *c, int timeout_ms);
/** Number of requests that have not finished or failed yet. */
SYSEXT_API size_t sysext_client_pending(const sysext_client *c);

SYSEXT_API const char *sysext_request_identifier(const sysext_request *r);
SYSEXT_API sysext_request_kind sysext_request_get_kind(const sysext_request *r);

/* ---- administration (root or the daemon's own user) ---- */

#ifndef SYSEXT_OUTPUT_JSON
#define SYSEXT_OUTPUT_JSON 0x1u
#endif

/** `systemextensionsctl list` format, or JSON. @param[out] out_text free(). */
SYSEXT_API int sysext_admin_list(const char *socket_path, unsigned flags, char **out_text);
/** Approve the extension with bundle id `identifier` that waits for approval. */
SYSEXT_API int sysext_admin_approve(const char *socket_path, const char *identifier);
/** Uninstall (team "-" means no team). */
SYSEXT_API int sysext_admin_uninstall(const char *socket_path, const char *team_id,
                                      const char *identifier);
/** mode: -1 query, 0 off, 1 on. *out_enabled (optional) receives the mode in force. */
SYSEXT_API int sysext_admin_developer(const char *socket_path, int mode, int *out_enabled);
/** Remove every extension. @param[out] out_text one line per removed record (free()). */
SYSEXT_API int sysext_admin_reset(const char *socket_path, char **out_text);
/** Remove records whose app is gone. @param[out] out_text as for reset. */
SYSEXT_API int sysext_admin_gc(const char *socket_path, char **out_text);
/** The merged policy in force (XML plist, or JSON). @param[out] out_text free(). */
SYSEXT_API int sysext_admin_policy_show(const char *socket_path, unsigned flags, char **out_text);

SYSEXT_END_DECLS

#endif
