/* OSAction: a typed asynchronous callback, "call method M of object T later", with private state.
 *
 * An action is created with its target, the implementation to call, and a TYPE: the message ID
 * of the method whose signature it has (e.g. IOTimerDispatchSource_TimerOccurred_ID). Whoever
 * invokes it names the type it expects; a mismatch is refused with kIOReturnBadArgument before
 * anything runs, which is the check DriverKit's TYPE(...) attribute makes.
 *
 * Invocation is asynchronous: the arguments are copied and the implementation runs later on the
 * target's queue for that method (its QUEUENAME queue or the default queue).
 *
 * Cancel: after OSAction_Cancel returns, no invocation starts any more (queued ones are dropped).
 * The cancel handler runs exactly once, after the invocation in flight (if any) has returned:
 * on the target's queue thread when one was in flight or queued, else synchronously inside
 * OSAction_Cancel. Then the action drops its reference on the target (breaking the usual
 * driver -> action -> driver cycle). An action cannot be re-armed. */
#ifndef SYSEXT_DRIVERKIT_OSACTION_H
#define SYSEXT_DRIVERKIT_OSACTION_H

#include <sysext/driverkit/OSObject.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OSAction OSAction;
DK_API extern const OSClass OSAction_Class;

typedef void (*OSActionCancelHandler)(void *context);

/** Calls `function` (cast to its real type) with the unpacked `args`; emitted per action type. */
typedef void (*OSActionInvoker)(OSAction *action, OSObject *target, OSMethodFunction function, void *args);

/**
 * Create an action.
 *
 * @param target        the object whose method runs; retained until the action is freed or cancelled
 * @param targetMsgID   the target's method ID: picks the queue (QUEUENAME) and, when `function`
 *                      is NULL, the implementation from the target's method table
 * @param msgID         the action's TYPE: the ID of the method whose signature it has
 * @param function      the implementation, or NULL to look targetMsgID up in the target's class
 * @param referenceSize bytes of zero-filled private storage (OSAction_GetReference), may be 0
 * @param[out] action   the new action, +1; untouched on failure
 * @return kIOReturnSuccess; kIOReturnBadArgument for NULL target/action or a method ID the
 *         target's class does not implement; kIOReturnNoMemory
 */
DK_API kern_return_t OSAction_Create(OSObject *target, uint64_t targetMsgID, uint64_t msgID,
                                     OSMethodFunction function, size_t referenceSize, OSAction **action);

/**
 * Invoke the action as type `typeID`: copy `args` (argsSize bytes) and queue
 * `invoker(action, target, function, args)` on the target's queue.
 *
 * @return kIOReturnSuccess (queued); kIOReturnBadArgument when `typeID` is not the action's type;
 *         kIOReturnAborted after Cancel; kIOReturnNotReady when the target has no queue;
 *         kIOReturnNoMemory
 */
DK_API kern_return_t OSAction_Invoke(OSAction *action, uint64_t typeID, OSActionInvoker invoker,
                                     const void *args, size_t argsSize);

/** Stop future invocations; `handler(context)` runs once afterwards (see the header comment).
 *  @return kIOReturnSuccess; kIOReturnAborted if already cancelled */
DK_API kern_return_t OSAction_Cancel(OSAction *action, OSActionCancelHandler handler, void *context);
DK_API bool OSAction_IsCancelled(OSAction *action);

/** The zero-filled private storage, or NULL when referenceSize was 0. Lives with the action. */
DK_API void *OSAction_GetReference(OSAction *action);
DK_API size_t OSAction_GetReferenceSize(OSAction *action);
/** The action's TYPE message ID. */
DK_API uint64_t OSAction_GetTypeID(OSAction *action);
/** The target, +0; NULL once cancellation has completed. */
DK_API OSObject *OSAction_GetTarget(OSAction *action);

#ifdef __cplusplus
}
#endif

#endif
