/* Internal: the client library's one-shot admin request to sysextd (activation.c). */
#ifndef SX_LIBSYSEXT_CLIENT_H
#define SX_LIBSYSEXT_CLIENT_H

#include <plist/plist.h>

/* Send `msg` (consumed; "id" is set) to the daemon at `socket_path` (NULL: $SYSEXT_SOCKET or
 * the default) and wait for its reply: 0 with *reply_out (owned by the caller, may be NULL
 * to drop it), or the daemon's error code with its message. */
int sx_client_admin_call(const char *socket_path, plist_t msg, plist_t *reply_out);
/* The same with a reply timeout, and the descriptor the daemon attaches to its reply
 * (SCM_RIGHTS; -1 when none) in *fd_out when fd_out is not NULL (closed otherwise). */
int sx_client_call(const char *socket_path, plist_t msg, plist_t *reply_out, int *fd_out,
                   int timeout_ms);

#endif
