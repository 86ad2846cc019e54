/* IOUserClient: the driver side of an app's connection.
 *
 * The host calls IOUserClient_HostExternalMethod for an app's IOConnectCall*Method; it runs
 * ExternalMethod on the queue named kIOUserClientQueueNameExternalMethod if the user client set
 * one, else on its default queue. The driver's override usually range-checks the selector and
 * calls IOUserClient_ExternalMethod_Super with its table entry; the base implementation checks
 * the completion and the four argument counts/sizes against the entry BEFORE calling the entry's
 * function, and returns kIOReturnBadArgument on any mismatch. */
#ifndef SYSEXT_DRIVERKIT_IOUSERCLIENT_H
#define SYSEXT_DRIVERKIT_IOUSERCLIENT_H

#include <sysext/driverkit/IOMemoryDescriptor.h>
#include <sysext/driverkit/IOService.h>
#include <sysext/driverkit/OSAction.h>

#ifdef __cplusplus
extern "C" {
#endif

struct IOUserClient {
    IOService service;
    void *_ucpriv; /* runtime-private */
};

DK_API extern const OSClass IOUserClient_Class;

#define kIOUserClientScalarArrayCountMax 16
#define kIOUserClientAsyncReferenceCountMax 16
#define kIOUserClientAsyncArgumentsCountMax 16
#define kIOUserClientMemoryReadOnly 1ull
#define kIOUserClientVariableStructureSize 0xffffffffu
#define kIOUserClientMethodArgumentsCurrentVersion 2
#define kIOUserClientQueueNameExternalMethod "IOUserClientQueueExternalMethod"

typedef struct IOUserClientMethodArguments {
    uint64_t version; /* kIOUserClientMethodArgumentsCurrentVersion */
    uint64_t selector;
    OSAction *completion; /* retained only for the call; retain it to complete later */
    const uint64_t *scalarInput;
    uint32_t scalarInputCount;
    OSData *structureInput;
    IOMemoryDescriptor *structureInputDescriptor;
    uint64_t *scalarOutput;
    uint32_t scalarOutputCount; /* in: capacity of scalarOutput; out: count written */
    OSData *structureOutput;    /* set by the driver (+1, released by the caller) */
    IOMemoryDescriptor *structureOutputDescriptor;
    uint64_t structureOutputMaximumSize;
    uint64_t __reserved[30];
} IOUserClientMethodArguments;

typedef kern_return_t (*IOUserClientMethodFunction)(OSObject *target, void *reference,
                                                    IOUserClientMethodArguments *arguments);

typedef struct IOUserClientMethodDispatch {
    IOUserClientMethodFunction function;
    uint32_t checkCompletionExists; /* 0: must be absent; other: present; 0xffffffff: either */
    uint32_t checkScalarInputCount;
    uint32_t checkStructureInputSize;
    uint32_t checkScalarOutputCount;
    uint32_t checkStructureOutputSize;
} IOUserClientMethodDispatch;

#define IOUserClient_ExternalMethod_ID 0x84312db121c1679fULL
#define IOUserClient_CopyClientMemoryForType_ID 0x1e35fa1823cc6883ULL
#define IOUserClient_AsyncCompletion_ID 0x076346509d413ee9ULL

typedef kern_return_t (*IOUserClient_ExternalMethod_Fn)(IOUserClient *self, uint64_t selector,
                                                        IOUserClientMethodArguments *arguments,
                                                        const IOUserClientMethodDispatch *dispatch,
                                                        OSObject *target, void *reference);
typedef kern_return_t (*IOUserClient_CopyClientMemoryForType_Fn)(IOUserClient *self, uint64_t type,
                                                                 uint64_t *options, IOMemoryDescriptor **memory);
/** The handler type of a completion action (TYPE(IOUserClient::AsyncCompletion)). */
typedef void (*IOUserClient_AsyncCompletion_Handler)(OSObject *target, OSAction *action, IOReturn status,
                                                     const uint64_t *asyncData, uint32_t asyncDataCount);

/**
 * Virtual. Base: with `dispatch` NULL, kIOReturnUnsupported. Otherwise check, in order, the
 * completion, scalar input count, structure input size (structureInput's length, else the input
 * descriptor's), scalar output count and structure output size (structureOutputMaximumSize)
 * against the entry (kIOUserClientVariableStructureSize = any) and return kIOReturnBadArgument
 * on the first mismatch; kIOReturnNoCompletion when all pass but `function` is NULL; else the
 * function's result, called as function(target, reference, arguments).
 */
DK_API kern_return_t IOUserClient_ExternalMethod(IOUserClient *self, uint64_t selector,
                                                 IOUserClientMethodArguments *arguments,
                                                 const IOUserClientMethodDispatch *dispatch,
                                                 OSObject *target, void *reference);
DK_API kern_return_t IOUserClient_ExternalMethod_Super(const OSClass *cls, IOUserClient *self, uint64_t selector,
                                                       IOUserClientMethodArguments *arguments,
                                                       const IOUserClientMethodDispatch *dispatch,
                                                       OSObject *target, void *reference);
/** Virtual. Base: kIOReturnUnsupported. `*memory` is +1 (consumed by the caller). */
DK_API kern_return_t IOUserClient_CopyClientMemoryForType(IOUserClient *self, uint64_t type, uint64_t *options,
                                                          IOMemoryDescriptor **memory);
DK_API kern_return_t IOUserClient_CopyClientMemoryForType_Super(const OSClass *cls, IOUserClient *self,
                                                                uint64_t type, uint64_t *options,
                                                                IOMemoryDescriptor **memory);
/**
 * Complete an asynchronous call: invoke `action` (TYPE AsyncCompletion) with the status and up
 * to kIOUserClientAsyncArgumentsCountMax values (copied).
 * @return kIOReturnSuccess; kIOReturnBadArgument for a count above 16 or an action of another
 *         type; kIOReturnAborted when the action was cancelled
 */
DK_API kern_return_t IOUserClient_AsyncCompletion(IOUserClient *self, OSAction *action, IOReturn status,
                                                  const uint64_t *asyncData, uint32_t asyncDataCount);

/* ---- host side ---- */

/**
 * Deliver an app's call: validate the argument block (version, scalar counts <= 16, output
 * arrays present), then run ExternalMethod(selector, args, dispatch = NULL) on the user client's
 * external-method queue (or default queue) and wait.
 */
DK_API kern_return_t IOUserClient_HostExternalMethod(IOUserClient *client, uint64_t selector,
                                                     IOUserClientMethodArguments *arguments);
/** Run CopyClientMemoryForType on the user client's default queue and wait. */
DK_API kern_return_t IOUserClient_HostCopyClientMemoryForType(IOUserClient *client, uint64_t type,
                                                              uint64_t *options, IOMemoryDescriptor **memory);

#ifdef __cplusplus
}
#endif

#endif
