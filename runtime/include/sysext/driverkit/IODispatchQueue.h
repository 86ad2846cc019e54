/* IODispatchQueue: a serial FIFO queue served by one thread of its own.
 *
 * Work runs in submission order, one item at a time, on the queue's thread. Every driver method
 * of an object runs on the object's default queue (or its QUEUENAME queue), so a driver's state
 * touched only from its methods needs no lock.
 *
 * DispatchSync and deadlocks. DispatchSync(q) runs the function on q's thread and waits. It runs
 * the function INLINE on the calling thread instead, when the caller already "holds" q:
 *  - the caller is running on q (a queue syncing to itself), or
 *  - q's thread is blocked, directly or through a chain of other queues' threads, in a
 *    DispatchSync waiting for a queue the caller is running on.
 * Example: A's work does DispatchSync(B) while B's work does DispatchSync(A). Whichever call comes
 * second sees that the target is (transitively) waiting for the caller's own queue, and runs the
 * function inline: the target's thread is parked in DispatchSync, so serial execution on the
 * target still holds (as with any reentrant call), and nothing waits forever. The check and the
 * "I am now waiting for X" record happen under one lock, so two racing calls cannot both block.
 *
 * Lifetime: a queue is an OSObject. DispatchAsync retains the queue until the work has run.
 * Cancel is asynchronous: work already queued still runs, new work is refused with
 * kIOReturnAborted, then the cancel handler runs once on the queue's thread and the thread ends.
 * Releasing the last reference without Cancel drops nothing that was queued (queued work holds a
 * reference) and stops the thread. Work functions must not block forever: they hold the queue. */
#ifndef SYSEXT_DRIVERKIT_IODISPATCHQUEUE_H
#define SYSEXT_DRIVERKIT_IODISPATCHQUEUE_H

#include <sysext/driverkit/OSObject.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Work function: runs on the queue's thread (or inline, see above) with `context`. */
typedef void (*IODispatchFunction)(void *context);

#define kIODispatchQueueReentrant 1ull
#define kIODispatchQueueMethodsNotSynchronized 2ull

DK_API extern const OSClass IODispatchQueue_Class;

/**
 * Create a serial queue and start its thread.
 *
 * @param name     queue name (< 256 bytes), used for the thread name and GetName
 * @param options  0 (the Apple flags are accepted and ignored: queues are always serial)
 * @param priority pass 0
 * @param[out] queue the new queue, +1; untouched on failure
 * @return kIOReturnSuccess; kIOReturnBadArgument for a NULL/empty/too long name;
 *         kIOReturnNoMemory; kIOReturnNoResources if the thread could not start
 */
DK_API kern_return_t IODispatchQueue_Create(const char *name, uint64_t options, uint64_t priority,
                                            IODispatchQueue **queue);

/**
 * Queue `fn(context)` to run later on the queue's thread, after everything queued before it.
 *
 * @return kIOReturnSuccess; kIOReturnAborted after Cancel; kIOReturnNoMemory;
 *         kIOReturnBadArgument for a NULL queue or fn
 */
DK_API kern_return_t IODispatchQueue_DispatchAsync(IODispatchQueue *queue, IODispatchFunction fn,
                                                   void *context);

/**
 * Run `fn(context)` on the queue and wait for it to finish (inline when the caller holds the
 * queue, see the header comment).
 *
 * @return kIOReturnSuccess once fn has run; kIOReturnAborted after Cancel (fn did not run)
 */
DK_API kern_return_t IODispatchQueue_DispatchSync(IODispatchQueue *queue, IODispatchFunction fn,
                                                  void *context);

/** true when the calling thread is running work of `queue` (including inline work). */
DK_API bool IODispatchQueue_OnQueue(IODispatchQueue *queue);

/** The queue's name, borrowed for the queue's lifetime. */
DK_API const char *IODispatchQueue_GetName(IODispatchQueue *queue);

/**
 * Stop the queue: refuse new work, let queued work finish, then call `handler(context)` exactly
 * once on the queue's thread (handler may be NULL). Cannot be undone.
 *
 * @return kIOReturnSuccess; kIOReturnAborted if the queue was already cancelled
 */
DK_API kern_return_t IODispatchQueue_Cancel(IODispatchQueue *queue, IODispatchFunction handler,
                                            void *context);

#ifdef __cplusplus
}
#endif

#endif
