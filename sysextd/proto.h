/* The sysextd wire protocol, shared by the daemon and the client library.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of a binary plist
 * ("bplist00"), whose root is a dictionary with at least:
 *   "v"    unsigned integer, SXD_PROTO_VERSION
 *   "type" string, the message type
 * and for requests/events an "id" (unsigned, chosen by the client, echoed by the daemon).
 * Frames larger than SXD_PROTO_MAX are refused before anything is allocated for them.
 *
 * Client -> daemon: activate / deactivate / properties {ext}, replace-answer {action},
 *   admin: list, approve {ext}, uninstall {team, ext}, developer {mode}, reset, gc, policy-show.
 * Daemon -> client: event {event, ...} for requests; reply {code, message, ...} for admin
 *   calls; error {code, message} for a malformed frame (the connection is then closed).
 *
 * User clients (sysextd/ioservice.c, client: libsysext's sysext/ioconnect.h), any caller:
 *   ioservice-match {matching: dict}        -> reply {err, message | ids: [uint registry ids]}
 *   ioservice-open {service: uint, uctype: uint} -> reply {err, message}; on success the app's
 *     end of a SOCK_SEQPACKET connection to the driver rides with SCM_RIGHTS on the FIRST BYTE
 *     of the reply frame (the only frame that carries a descriptor). The daemon sends it only
 *     when nothing else is queued on the connection, so the descriptor cannot attach to another
 *     frame; a client reads with recvmsg and takes the descriptor that arrives with the bytes
 *     of that reply (one request per connection, as libsysext does, keeps this simple).
 */
#ifndef SXD_PROTO_H
#define SXD_PROTO_H

#include <plist/plist.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define SXD_PROTO_VERSION 1u
#define SXD_PROTO_MAX (256u * 1024u)
#define SXD_DEFAULT_SOCKET "/run/sysextd.sock"

/* Encode `msg` (a dict) as one frame appended to `out`. SYSEXT_ELIMIT when too large. */
int sxd_msg_encode(plist_t msg, sx_buf *out);

/* Take one frame from the front of data[0..len).
 * Returns 1 with *msg (owned by the caller) and *consumed set when a whole frame is there,
 * 0 when more bytes are needed, SYSEXT_ELIMIT for a frame above `max`, SYSEXT_EFORMAT for a
 * body that is not a binary plist dictionary with a string "type", SYSEXT_EUNSUPPORTED for a
 * wrong "v" (then *consumed is still set, so a server can reply and go on or close). */
int sxd_msg_decode(const uint8_t *data, size_t len, size_t max, plist_t *msg, size_t *consumed);

/* A new message dict {"v": SXD_PROTO_VERSION, "type": type}. NULL on allocation failure. */
plist_t sxd_msg_new(const char *type);

/* Typed getters: NULL / fallback when the key is missing or of another type. */
const char *sxd_dict_str(plist_t dict, const char *key);
uint64_t sxd_dict_uint(plist_t dict, const char *key, uint64_t fallback);
int sxd_dict_bool(plist_t dict, const char *key, int fallback);
/* Setters; a NULL string value sets nothing. */
void sxd_dict_set_str(plist_t dict, const char *key, const char *val);
void sxd_dict_set_uint(plist_t dict, const char *key, uint64_t val);
void sxd_dict_set_bool(plist_t dict, const char *key, int val);

#endif
