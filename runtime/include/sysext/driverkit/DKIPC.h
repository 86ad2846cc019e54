/* The host <-> driver IPC message format (the IOUserServer protocol between sysextd and a
 * driver process) over a SOCK_SEQPACKET socketpair: one datagram = one message, file
 * descriptors ride along with SCM_RIGHTS.
 *
 * Wire format (all integers little-endian), version 1:
 *
 *   offset size field
 *        0    4 magic      'D','K','I','P' (0x50494b44)
 *        4    2 version    DK_IPC_VERSION
 *        6    2 type       DKIPCMessageType
 *        8    4 length     total bytes of the message, header included
 *       12    2 fdCount    descriptors attached with SCM_RIGHTS (exactly that many must arrive)
 *       14    2 argCount   arguments that follow the header
 *       16    8 objectID   the object the message is about (OSObject_GetID on its owner's side)
 *       24    8 methodID   Class_Method_ID (FNV-1a 64 of "Class::Method") for calls, 0 otherwise
 *       32    8 sequence   chosen by the sender of a call; a reply/completion repeats it
 *       40    4 status     kern_return_t of a reply / completion, 0 otherwise
 *       44    4 reserved   must be 0
 *       48      arguments: each { u32 type, u32 length, length bytes, zero padding to 8 }
 *
 * Argument types: U64 (length 8), BYTES (any length), STRING (length includes exactly one
 * NUL, the last byte), OBJECT (length 8: an object id the receiver must know), FD (length 4:
 * index < fdCount into the attached descriptors). Every field is checked on decode; a decode
 * error names the byte offset. A peer may name only objects in the receiver's object table
 * (DKIPCObjectTable): the ids it was given. An unknown id is an error (kIOReturnNotFound). */
#ifndef SYSEXT_DRIVERKIT_DKIPC_H
#define SYSEXT_DRIVERKIT_DKIPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sysext/driverkit/IOService.h>
#include <sysext/driverkit/OSObject.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DK_IPC_MAGIC        0x50494b44u
#define DK_IPC_VERSION      1u
#define DK_IPC_HEADER_SIZE  48u
#define DK_IPC_MAX_MESSAGE  65536u /* bytes, header included */
#define DK_IPC_MAX_ARGS     32u
#define DK_IPC_MAX_FDS      16u

typedef enum DKIPCMessageType {
    kDKIPCCreate = 1,     /* host -> driver: a new object (args: class name STRING, provider OBJECT...) */
    kDKIPCStart = 2,      /* host -> driver: IOService::Start on objectID (arg: provider OBJECT) */
    kDKIPCStop = 3,       /* host -> driver: IOService::Stop */
    kDKIPCTerminate = 4,  /* host -> driver: terminate objectID */
    kDKIPCFree = 5,       /* either way: the sender drops its reference to objectID */
    kDKIPCCall = 6,       /* method call: objectID.methodID(args) */
    kDKIPCReply = 7,      /* reply to the call with the same sequence: status + out args */
    kDKIPCCompletion = 8, /* async completion of OSAction objectID: status + args */
} DKIPCMessageType;

typedef enum DKIPCArgType {
    kDKIPCArgU64 = 1,
    kDKIPCArgBytes = 2,
    kDKIPCArgString = 3,
    kDKIPCArgObject = 4,
    kDKIPCArgFD = 5,
} DKIPCArgType;

typedef struct DKIPCArg {
    uint32_t type;       /* DKIPCArgType */
    uint32_t length;     /* payload bytes */
    const uint8_t *data; /* BYTES / STRING payload (inside the message's buffer) */
    uint64_t value;      /* U64 value, OBJECT id, or FD index */
    OSObject *object;    /* OBJECT on decode: the table's object (borrowed), else NULL */
} DKIPCArg;

/* A message being built or one decoded. Initialise with DKIPCMessage_Init (build) or
 * DKIPCMessage_Decode / DKIPC_Recv (receive); always end with DKIPCMessage_Clear. */
typedef struct DKIPCMessage {
    uint16_t type; /* DKIPCMessageType */
    uint64_t objectID;
    uint64_t methodID;
    uint64_t sequence;
    int32_t status;
    uint32_t argCount;
    DKIPCArg args[DK_IPC_MAX_ARGS];
    uint32_t fdCount;
    int fds[DK_IPC_MAX_FDS]; /* received: owned (closed by Clear unless taken); built: borrowed */
    bool ownsFDs;
    uint8_t *buf;            /* owned storage of the payloads */
    size_t bufLen, bufCap;
} DKIPCMessage;

/* Why a decode or receive failed. */
typedef struct DKIPCError {
    kern_return_t code;
    size_t offset; /* byte offset in the message of the offending field */
    char message[192];
} DKIPCError;

/* --- Object table: the ids a peer may name -------------------------------------------- */
typedef struct DKIPCObjectTable DKIPCObjectTable;

/* A new empty table (caller frees with DKIPCObjectTable_Free); NULL when out of memory. */
DK_API DKIPCObjectTable *DKIPCObjectTable_Create(void);
/* Releases every object still in the table. */
DK_API void DKIPCObjectTable_Free(DKIPCObjectTable *table);
/* Let the peer name `obj` by `id` (retains it). kIOReturnBadArgument for id 0 or NULL,
 * kIOReturnPortExists if the id is already present. */
DK_API kern_return_t DKIPCObjectTable_Add(DKIPCObjectTable *table, uint64_t id, OSObject *obj);
/* Forget `id` (releases its object); kIOReturnNotFound if absent. */
DK_API kern_return_t DKIPCObjectTable_Remove(DKIPCObjectTable *table, uint64_t id);
/* The object named `id`, borrowed (+0); NULL if the peer may not name it. */
DK_API OSObject *DKIPCObjectTable_Lookup(DKIPCObjectTable *table, uint64_t id);
DK_API size_t DKIPCObjectTable_GetCount(DKIPCObjectTable *table);

/* --- Building ----------------------------------------------------------------------- */
DK_API void DKIPCMessage_Init(DKIPCMessage *msg, DKIPCMessageType type, uint64_t objectID, uint64_t methodID,
                              uint64_t sequence);
/* Append an argument. kIOReturnNoSpace past DK_IPC_MAX_ARGS / DK_IPC_MAX_FDS /
 * DK_IPC_MAX_MESSAGE, kIOReturnNoMemory, kIOReturnBadArgument (fd < 0, NULL string). */
DK_API kern_return_t DKIPCMessage_AddU64(DKIPCMessage *msg, uint64_t value);
DK_API kern_return_t DKIPCMessage_AddBytes(DKIPCMessage *msg, const void *data, size_t length);
DK_API kern_return_t DKIPCMessage_AddString(DKIPCMessage *msg, const char *s);
DK_API kern_return_t DKIPCMessage_AddObject(DKIPCMessage *msg, uint64_t objectID);
/* The fd is borrowed: it must stay open until the message is sent. */
DK_API kern_return_t DKIPCMessage_AddFD(DKIPCMessage *msg, int fd);
/* Serialise to a malloc'd buffer (*out, *outLen; caller frees). */
DK_API kern_return_t DKIPCMessage_Encode(const DKIPCMessage *msg, uint8_t **out, size_t *outLen);

/* --- Decoding ----------------------------------------------------------------------- */
/* Decode `len` bytes received with `fdCount` descriptors (ownership of the fds passes to
 * `out` even on failure, where they are closed). With a table, the header's objectID
 * (except for kDKIPCCreate, which announces a new id) and every OBJECT argument must be in
 * it. On failure returns the code, fills `err` (if not NULL) and leaves `out` cleared. */
DK_API kern_return_t DKIPCMessage_Decode(const uint8_t *data, size_t len, const int *fds, size_t fdCount,
                                         DKIPCObjectTable *table, DKIPCMessage *out, DKIPCError *err);
/* Argument `index` as a given type; kIOReturnBadArgument if absent or of another type. */
DK_API kern_return_t DKIPCMessage_GetU64(const DKIPCMessage *msg, uint32_t index, uint64_t *out);
DK_API kern_return_t DKIPCMessage_GetBytes(const DKIPCMessage *msg, uint32_t index, const void **data,
                                           size_t *length);
DK_API kern_return_t DKIPCMessage_GetString(const DKIPCMessage *msg, uint32_t index, const char **out);
DK_API kern_return_t DKIPCMessage_GetObject(const DKIPCMessage *msg, uint32_t index, OSObject **out);
/* Take ownership of a received descriptor (the message no longer closes it). */
DK_API kern_return_t DKIPCMessage_TakeFD(DKIPCMessage *msg, uint32_t index, int *out);
/* Free the storage and close the received descriptors not taken. Idempotent. */
DK_API void DKIPCMessage_Clear(DKIPCMessage *msg);

/* --- Socket helpers ------------------------------------------------------------------ */
/* Send one message on a SOCK_SEQPACKET socket (fds with SCM_RIGHTS). kIOReturnIPCError on I/O
 * failure (errno kept). */
DK_API kern_return_t DKIPC_Send(int sock, const DKIPCMessage *msg);
/* Receive and decode one message. kIOReturnNotReady at end of stream (peer closed),
 * kIOReturnIPCError on I/O error, a decode error otherwise (message truncated by the kernel,
 * control data truncated, ... are decode errors too). */
DK_API kern_return_t DKIPC_Recv(int sock, DKIPCObjectTable *table, DKIPCMessage *out, DKIPCError *err);

/* --- The driver's host connection (used by generated KERNEL method stubs) ----------- */
/* Use `sock` (a SOCK_SEQPACKET to the host; not owned) for DKIPC_HostCall; -1 to unset. */
DK_API void DKIPC_SetHostConnection(int sock);
/* Send `call` (its sequence is assigned here) and wait for the Reply with that sequence.
 * On success `reply` holds it (reply->status is the method's result; caller clears it).
 * kIOReturnNotReady without a connection, kIOReturnIPCError for a reply that does not match,
 * else DKIPC_Send / DKIPC_Recv's code. Calls are serialised. */
DK_API kern_return_t DKIPC_HostCall(DKIPCMessage *call, DKIPCMessage *reply, DKIPCError *err);

/* --- The driver side: per-class dispatch and the host-message handler ----------------- */
/* A generated Class_Dispatch: decode a Call on obj, run it, fill `reply` (always initialised). */
typedef kern_return_t (*DKIPCDispatchFunction)(OSObject *obj, const DKIPCMessage *msg, DKIPCMessage *reply);
/* Register the dispatch of a class (generated code does this at load time, DKIPC_DISPATCH_REGISTER).
 * kIOReturnPortExists if the class already has another one, kIOReturnNoResources past 256 classes. */
DK_API kern_return_t DKIPC_RegisterDispatch(const OSClass *cls, DKIPCDispatchFunction fn);
#define DKIPC_DISPATCH_REGISTER(cls, fn)                                                           \
    __attribute__((constructor)) static void cls##_dispatch_register_ctor(void)                    \
    {                                                                                              \
        (void)DKIPC_RegisterDispatch(&cls, fn);                                                    \
    }
/* Run a Call on obj through the registered dispatch of its class, falling back to the
 * superclasses' for methods a class does not declare; kIOReturnUnsupported if none has it. */
DK_API kern_return_t DKIPC_DispatchCall(OSObject *obj, const DKIPCMessage *msg, DKIPCMessage *reply);
/* Handle one decoded host message and build the Reply to send back (always initialised; the
 * caller clears it). Create (arg: class name STRING; objectID = the id the host names it by)
 * instantiates the IOService subclass and adds it to `table`; Start (arg: provider OBJECT,
 * optional) runs IOService_HostStart; Stop / Terminate run IOService_Terminate; Free removes
 * the id from the table; Call goes to DKIPC_DispatchCall (except IOService::Start/Stop:
 * kIOReturnNotPermitted, they are lifecycle messages). Returns the reply's status. */
DK_API kern_return_t DKIPC_HandleMessage(DKIPCObjectTable *table, const DKIPCMessage *msg, DKIPCMessage *reply);

/* --- Providers: the host's nubs recreated in the driver process ------------------------ */
/* A Create whose class name is not a driver class (one registered with OS_CLASS_REGISTER that
 * the personality names in IOUserClass) builds the provider the host announces: the factory
 * registered for that class name gets the Create message (args: [0] STRING class name, then
 * the nub's properties as pairs STRING key + U64|STRING|BYTES value, then FD arguments, e.g.
 * the device transport) and returns a new IOService (+1) or an error. A key "Parent/Key" is Key
 * of the nested dictionary Parent (one level: how a personality's UserClientProperties cross).
 * A Create of a driver class carries its personality the same way (no FDs) and the runtime
 * instantiates the class with it as its properties. */
typedef kern_return_t (*DKIPCProviderFactory)(const char *className, DKIPCMessage *create, IOService **out);
/* kIOReturnPortExists if the class already has another factory, kIOReturnNoResources when full. */
DK_API kern_return_t DKIPC_RegisterProviderFactory(const char *className, DKIPCProviderFactory fn);
/* The factory registered for `className` (built-ins: "IOService", "IOUserResources": a plain
 * IOService with the nub's properties), NULL if none. */
DK_API DKIPCProviderFactory DKIPC_FindProviderFactory(const char *className);
/* The properties of a provider Create (the STRING key + value pairs after the class name) as a
 * new dictionary (+1): U64 -> OSNumber (64 bits), STRING -> OSString, BYTES -> OSData.
 * kIOReturnBadArgument for a key that is not a STRING, a missing value, another value type or
 * a non-FD argument after the first FD. For factories. */
DK_API kern_return_t DKIPC_CopyProviderProperties(const DKIPCMessage *create, OSDictionary **out);

/* --- The driver process ------------------------------------------------------------------ */
/* The main loop of a driver process started by sysextd: host messages on fd 3, calls to the
 * host on fd 4 (see sysextd/host.h). Returns the process exit status when the host closes the
 * connection or terminates the last service. Driver executables link sysext_runtime_main,
 * whose main() is just `return DKDriverMain(argc, argv);`. */
DK_API int DKDriverMain(int argc, char **argv);
/* DKDriverMain's fds and options (tests, tools): serve `hostFD` (host -> driver messages) and
 * use `callFD` for DKIPC_HostCall; `sandbox` installs the second seccomp stage (no open,
 * openat, creat, execve, execveat, socket from then on) before the first message. Returns 0
 * when the host closes hostFD, 2 on a protocol error (message on stderr naming the offset). */
DK_API int DKDriverServe(int hostFD, int callFD, bool sandbox);
/* The second seccomp stage alone (PR_SET_NO_NEW_PRIVS + a BPF filter answering EPERM to
 * open, openat, openat2, creat, execve, execveat and socket). kIOReturnUnsupported on an
 * architecture the filter does not know, kIOReturnNotPermitted if the kernel refuses. */
DK_API kern_return_t DKDriverSandboxStage2(void);

/* Name of a message type for logs ("Call"), "?" if unknown. */
DK_API const char *DKIPCMessageType_Name(unsigned type);

#ifdef __cplusplus
}
#endif
#endif
