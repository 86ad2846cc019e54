/**
 * The app side of DriverKit user clients, IOKit-style (IOServiceGetMatchingServices,
 * IOServiceOpen, IOConnectCallMethod, IOConnectCallAsyncMethod, IOConnectMapMemory64,
 * IOServiceClose).
 *
 * Finding and opening go through sysextd (`socket_path`, else $SYSEXT_SOCKET, else
 * /run/sysextd.sock): on open the daemon identifies the calling app as activation does and
 * checks its `com.apple.developer.driverkit.userclient-access` entitlement. After that the app
 * talks straight to the driver process over a socket the daemon handed it; the daemon is not on
 * the data path (protocol: runtime/include/sysext/driverkit/DKUserClientProtocol.h).
 *
 * No hidden threads: synchronous calls block the caller; completions of asynchronous calls run
 * only inside sysext_ioconnect_dispatch() (poll sysext_ioconnect_fd() for input to know when;
 * completions that arrive while a synchronous call waits are queued for the next dispatch). A
 * connection is not thread-safe: use it from one thread at a time.
 *
 * Errors: functions return 0 or a negative SYSEXT_E* code with the message in
 * sysext_last_error(). A driver that answers with an error gives the code for its IOReturn
 * (kIOReturnBadArgument: SYSEXT_EINVAL, kIOReturnNotPermitted / NotPrivileged: SYSEXT_EPERM,
 * kIOReturnUnsupported: SYSEXT_EUNSUPPORTED, kIOReturnNoMemory: SYSEXT_ENOMEM, kIOReturnBusy:
 * SYSEXT_EBUSY, kIOReturnTimeout: SYSEXT_ETIMEOUT, others SYSEXT_ERROR) and a message naming the
 * IOReturn; sysext_ioconnect_last_return() has the exact value. When the driver's end is gone
 * (driver exited or crashed) every call fails with SYSEXT_EIO, "driver connection closed";
 * nothing raises SIGPIPE.
 */
#ifndef SYSEXT_IOCONNECT_H
#define SYSEXT_IOCONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "sysext/common.h"

SYSEXT_BEGIN_DECLS

typedef struct sysext_ioconnect sysext_ioconnect;

/** kIOReturnSuccess and the IOReturn of a connection the driver closed (kIOReturnAborted). */
#define SYSEXT_IORETURN_SUCCESS 0
#define SYSEXT_IORETURN_ABORTED ((int32_t)0xe00002eb)

/** A completion of sysext_ioconnect_call_async: `result` is the IOReturn the driver gave
 * AsyncCompletion (SYSEXT_IORETURN_ABORTED when the connection closed first), `args` its up to
 * 16 values (borrowed, valid during the callback). */
typedef void (*sysext_ioconnect_async_fn)(void *ctx, int32_t result, const uint64_t *args, uint32_t nargs);

/**
 * Registry ids of the started driver services matching `matching_json`, a JSON object with
 * IOKit matching keys (IOProviderClass, IOClass / IOUserClass, IONameMatch, IOPropertyMatch,
 * CFBundleIdentifier, IORegistryEntryID), e.g. `{"IOUserClass": "MyDriver"}`.
 * *ids is malloc'd (caller frees; NULL when *n is 0).
 */
SYSEXT_API int sysext_ioservice_get_matching(const char *socket_path, const char *matching_json, uint64_t **ids,
                                             size_t *n);

/**
 * IOServiceOpen: open a user client of `type` on driver service `service_id`. SYSEXT_EPERM
 * when the app lacks the entitlements (the message names the missing one), SYSEXT_ENOTFOUND for
 * no such service. *out is owned by the caller (sysext_ioconnect_close).
 */
SYSEXT_API int sysext_ioservice_open(const char *socket_path, uint64_t service_id, uint32_t type,
                                     sysext_ioconnect **out);

/** Wrap an already-connected SOCK_SEQPACKET socket to a driver's user client (consumed, also on
 * failure). For tests and benchmarks, or an fd obtained elsewhere. */
SYSEXT_API int sysext_ioconnect_open_fd(int fd, sysext_ioconnect **out);

/**
 * IOConnectCallMethod. `in`/`nin`: scalar inputs (at most 16); `instruct`/`inlen`: structure
 * input (at most 32768 bytes; NULL/0 for none); `out`/`*nout`: room for scalar outputs on
 * input, count written on output (NULL for none); `outstruct`/`*outlen`: likewise for the
 * structure output (the driver sees *outlen as structureOutputMaximumSize).
 */
SYSEXT_API int sysext_ioconnect_call_method(sysext_ioconnect *c, uint64_t selector, const uint64_t *in,
                                            uint32_t nin, const void *instruct, size_t inlen, uint64_t *out,
                                            uint32_t *nout, void *outstruct, size_t *outlen);

/**
 * IOConnectCallAsyncMethod: as call_method, and the driver gets a completion action; `cb(ctx,
 * ...)` runs once from sysext_ioconnect_dispatch when it completes (or with
 * SYSEXT_IORETURN_ABORTED when the connection closes first). When the call itself fails the
 * callback never runs.
 */
SYSEXT_API int sysext_ioconnect_call_async(sysext_ioconnect *c, uint64_t selector, const uint64_t *in,
                                           uint32_t nin, const void *instruct, size_t inlen,
                                           sysext_ioconnect_async_fn cb, void *ctx, uint64_t *out, uint32_t *nout,
                                           void *outstruct, size_t *outlen);

/** The descriptor to poll for input (completions). Borrowed; -1 for NULL. */
SYSEXT_API int sysext_ioconnect_fd(const sysext_ioconnect *c);

/**
 * Run the callbacks of completions that arrived, waiting up to `timeout_ms` (0: don't wait,
 * -1: forever) for the first one when none is queued. Returns how many ran (0 on timeout), or a
 * negative code (SYSEXT_EIO once the driver is gone and every pending callback has run).
 */
SYSEXT_API int sysext_ioconnect_dispatch(sysext_ioconnect *c, int timeout_ms);

/** IOConnectMapMemory64: map the memory the driver's CopyClientMemoryForType(type) returns,
 * shared (read-only when the driver set kIOUserClientMemoryReadOnly). *addr / *len are valid
 * until unmap or close. */
SYSEXT_API int sysext_ioconnect_map_memory(sysext_ioconnect *c, uint64_t type, void **addr, size_t *len);
/** IOConnectUnmapMemory64: SYSEXT_ENOTFOUND for an address this connection did not map. */
SYSEXT_API int sysext_ioconnect_unmap_memory(sysext_ioconnect *c, void *addr);

/** The IOReturn of the last call on `c` (0 = kIOReturnSuccess). */
SYSEXT_API int32_t sysext_ioconnect_last_return(const sysext_ioconnect *c);

/** IOServiceClose: unmap everything and close the socket (the driver terminates the user
 * client). Callbacks of pending async calls are dropped without running. NULL is fine. */
SYSEXT_API void sysext_ioconnect_close(sysext_ioconnect *c);

SYSEXT_END_DECLS

#endif
