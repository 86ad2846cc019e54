/* The user-client wire protocol: what runs between an app (libsysext's sysext/ioconnect.h) and
 * a driver process once sysextd has handed both ends of a SOCK_SEQPACKET pair out. The daemon
 * is not on this path.
 *
 * Opening. The host sends the driver a kDKIPCCall on its host connection with
 *   objectID = the driver service's id, methodID = IOService_NewUserClient_ID,
 *   args [0] U64 type (<= UINT32_MAX), [1] FD = the driver's end of the pair.
 * The driver runs IOService::NewUserClient(type) on the service's queue and, on success, serves
 * the connection on that socket (one thread per connection); the Reply's status is
 * NewUserClient's result (the socket is closed on failure, so the app sees end of stream).
 *
 * Messages are DKIPC messages (DKIPC.h: same header, argument encoding and limits, one
 * datagram each). objectID of every app -> driver Call is DK_UC_CONNECTION_ID; the reply repeats
 * the call's sequence (the app picks it, nonzero). Calls are answered in order.
 *
 * App -> driver, kDKIPCCall, methodID = IOUserClient_ExternalMethod_ID (IOConnectCallMethod):
 *   [0] U64   selector
 *   [1] U64   scalar output capacity (<= 16): IOUserClientMethodArguments.scalarOutputCount
 *   [2] U64   structure output maximum size (<= DK_UC_MAX_STRUCT): structureOutputMaximumSize
 *   [3] U64   async reference: 0 = synchronous call; else the app's nonzero id for the
 *             completion (the driver then gets an OSAction of TYPE IOUserClient::AsyncCompletion
 *             as arguments->completion)
 *   [4] BYTES structure input (length <= DK_UC_MAX_STRUCT; 0 bytes = no structure input)
 *   [5..] U64 scalar inputs, at most 16
 * Reply (kDKIPCReply, same sequence): status = ExternalMethod's kern_return_t (the dispatch
 * table's count / size checks give kIOReturnBadArgument before the driver's function runs);
 *   [0] BYTES structure output (at most the maximum asked for; 0 bytes when none)
 *   [1..] U64 scalar outputs (scalarOutputCount as the driver left it, <= the capacity)
 * A malformed call is answered with kIOReturnBadArgument and no arguments.
 *
 * App -> driver, kDKIPCCall, methodID = IOUserClient_CopyClientMemoryForType_ID
 * (IOConnectMapMemory64): [0] U64 type. Reply: status; on success
 *   [0] U64 options (kIOUserClientMemoryReadOnly: map it read-only), [1] U64 length in bytes,
 *   [2] FD the descriptor's memfd (sealed against shrinking).
 *
 * Driver -> app, kDKIPCCompletion (IOUserClient_AsyncCompletion on the call's action):
 *   objectID = the async reference of the call, methodID = IOUserClient_AsyncCompletion_ID,
 *   sequence = the call's sequence, status = the IOReturn given to AsyncCompletion,
 *   args: up to 16 U64 (the asyncData). A completion may arrive before or after the call's Reply.
 *
 * Closing. Either side closes its socket. When the app's end goes, the driver terminates the
 * user client (IOService::Stop, then free) and cancels nothing else: an action the driver
 * still holds completes into the void (AsyncCompletion after close returns success and sends
 * nothing). When the driver's end goes (driver exited or crashed), every pending and later app
 * call fails with "driver connection closed". */
#ifndef SYSEXT_DRIVERKIT_DKUSERCLIENTPROTOCOL_H
#define SYSEXT_DRIVERKIT_DKUSERCLIENTPROTOCOL_H

#include <stdint.h>

/* Standalone (only <stdint.h>): libsysext includes it without the runtime. The method IDs
 * equal IOUserClient_ExternalMethod_ID, IOUserClient_CopyClientMemoryForType_ID and
 * IOUserClient_AsyncCompletion_ID (checked at compile time in rt_userclient_conn.c). */
#define DK_UC_CONNECTION_ID 1u
#define DK_UC_METHOD_EXTERNAL 0x84312db121c1679fULL
#define DK_UC_METHOD_MEMORY 0x1e35fa1823cc6883ULL
#define DK_UC_METHOD_COMPLETION 0x076346509d413ee9ULL
#define DK_UC_MAX_STRUCT 32768u
#define DK_UC_MAX_SCALARS 16u
#define DK_UC_MAX_ASYNC_ARGS 16u

/* Argument positions of an ExternalMethod call. */
#define DK_UC_ARG_SELECTOR 0u
#define DK_UC_ARG_SCALAR_OUT_CAP 1u
#define DK_UC_ARG_STRUCT_OUT_MAX 2u
#define DK_UC_ARG_ASYNC_REF 3u
#define DK_UC_ARG_STRUCT_IN 4u
#define DK_UC_ARG_SCALARS_IN 5u

#endif
