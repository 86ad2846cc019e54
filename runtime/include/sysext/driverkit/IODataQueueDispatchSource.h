/* IODataQueueDispatchSource: a single-producer single-consumer ring in shared memory.
 *
 * The ring lives in a sealed memfd: a header (magic, version, data size, head and tail byte
 * offsets, waiter flags) followed by the data area. Each entry is a 4-byte length followed by
 * the bytes, padded to 4; an entry that does not fit before the end of the area is preceded by a
 * wrap marker and placed at offset 0. Notifications go through two eventfds: DataAvailable (the
 * producer made the queue non-empty while the consumer waited) and DataServiced (the consumer
 * made room after the producer found the queue full).
 *
 * The two sides may be different processes: the creator hands the memfd and both eventfds to the
 * other side (GetMemoryFD, GetDataAvailableFD, GetDataServicedFD), which attaches with
 * CreateWithFDs. Each side trusts nothing the other writes: the data size is fixed at attach time
 * against the memfd's (sealed) size, each side keeps its own copy of the offset it owns, and the
 * consumer bounds-checks every offset and length it reads; a corrupt ring gives kIOReturnError
 * and never a read or write outside the mapping.
 *
 * Exactly one thread may enqueue and one may dequeue at a time. Handlers (SetDataAvailableHandler
 * / SetDataServicedHandler) are run by a watcher thread through the action's target queue; a
 * process that is not a driver may instead block in WaitForData / WaitForSpace (Linux extension).
 * Use one style per side, not both. */
#ifndef SYSEXT_DRIVERKIT_IODATAQUEUEDISPATCHSOURCE_H
#define SYSEXT_DRIVERKIT_IODATAQUEUEDISPATCHSOURCE_H

#include <sysext/driverkit/IODispatchQueue.h>
#include <sysext/driverkit/IODispatchSource.h>
#include <sysext/driverkit/OSAction.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct IODataQueueDispatchSource IODataQueueDispatchSource;
DK_API extern const OSClass IODataQueueDispatchSource_Class;

#define IODataQueueDispatchSource_DataAvailable_ID 0x5fadd58f7a51f1b2ULL
#define IODataQueueDispatchSource_DataServiced_ID 0xb5df5c78693a500eULL

typedef void (*IODataQueueDispatchSource_DataAvailable_Handler)(OSObject *target, OSAction *action);
typedef void (*IODataQueueDispatchSource_DataServiced_Handler)(OSObject *target, OSAction *action);

/** Fill `size` bytes at `data` (the entry being enqueued; the memory is shared). */
typedef void (*IODataQueueEnqueueFunction)(void *data, size_t size, void *context);
/** Read the entry; `data` points into shared memory, valid only during the call. */
typedef void (*IODataQueueDequeueFunction)(const void *data, size_t size, void *context);

/** Largest queueByteCount accepted (the data area, not counting the header). */
#define kIODataQueueMaxByteCount (1ull << 30)

/**
 * Create a ring with a data area of `queueByteCount` bytes (rounded up to 4; at least 32).
 * @param queue where the source's own work runs; handlers run on their targets' queues
 * @param[out] source +1
 * @return kIOReturnSuccess; kIOReturnBadArgument for a size out of range; kIOReturnNoMemory /
 *         kIOReturnNoResources when the memfd, mapping or eventfds fail
 */
DK_API kern_return_t IODataQueueDispatchSource_Create(uint64_t queueByteCount, IODispatchQueue *queue,
                                                      IODataQueueDispatchSource **source);
/**
 * Attach to a ring created elsewhere. The fds are duplicated. The header is validated (magic,
 * version, data size against the sealed memfd size); `queue` may be NULL when no handler is used.
 * @return kIOReturnSuccess; kIOReturnBadArgument for bad fds; kIOReturnError for a corrupt
 *         header; kIOReturnNotPermitted for a memfd that can shrink
 */
DK_API kern_return_t IODataQueueDispatchSource_CreateWithFDs(int memoryFD, int dataAvailableFD,
                                                             int dataServicedFD, IODispatchQueue *queue,
                                                             IODataQueueDispatchSource **source);
/* The fds to hand to the other side, borrowed. */
DK_API int IODataQueueDispatchSource_GetMemoryFD(IODataQueueDispatchSource *source);
DK_API int IODataQueueDispatchSource_GetDataAvailableFD(IODataQueueDispatchSource *source);
DK_API int IODataQueueDispatchSource_GetDataServicedFD(IODataQueueDispatchSource *source);

/** The largest entry payload: (queueByteCount / 2 - 8) rounded down to 4, so an entry that fits
 *  an empty ring always fits, wherever the ring's offsets are. */
DK_API uint32_t IODataQueueDispatchSource_GetMaxEntrySize(IODataQueueDispatchSource *source);
/** Per-entry overhead in bytes (the length prefix). */
DK_API size_t IODataQueueDispatchSource_GetDataQueueEntryHeaderSize(void);

/**
 * Producer: reserve `size` bytes, let `fn` fill them, publish the entry, and signal DataAvailable
 * if the consumer waits.
 * @return kIOReturnSuccess; kIOReturnOverrun when full (DataServiced will follow);
 *         kIOReturnBadArgument for size 0 or an entry larger than the ring can always hold
 *         (IODataQueueDispatchSource_GetMaxEntrySize: about half the data area);
 *         kIOReturnError when the ring is corrupt
 */
DK_API kern_return_t IODataQueueDispatchSource_Enqueue(IODataQueueDispatchSource *source, uint32_t size,
                                                       IODataQueueEnqueueFunction fn, void *context);
/**
 * Consumer: pass the oldest entry to `fn` and remove it; signal DataServiced if the producer waits.
 * @return kIOReturnSuccess; kIOReturnUnderrun when empty; kIOReturnError when the ring is corrupt
 */
DK_API kern_return_t IODataQueueDispatchSource_Dequeue(IODataQueueDispatchSource *source,
                                                       IODataQueueDequeueFunction fn, void *context);
/** Consumer: like Dequeue without removing the entry. */
DK_API kern_return_t IODataQueueDispatchSource_Peek(IODataQueueDispatchSource *source,
                                                    IODataQueueDequeueFunction fn, void *context);
DK_API bool IODataQueueDispatchSource_IsDataAvailable(IODataQueueDispatchSource *source);
DK_API bool IODataQueueDispatchSource_CanEnqueueData(IODataQueueDispatchSource *source, uint32_t size);

/**
 * Batching: like Enqueue / Dequeue, but instead of signalling the peer they OR into
 * `*sendDataAvailable` / `*sendDataServiced` whether it must be told; after a batch, call
 * SendDataAvailable / SendDataServiced once if the flag is set.
 */
DK_API kern_return_t IODataQueueDispatchSource_EnqueueWithCoalesce(IODataQueueDispatchSource *source, uint32_t size,
                                                                   bool *sendDataAvailable,
                                                                   IODataQueueEnqueueFunction fn, void *context);
DK_API kern_return_t IODataQueueDispatchSource_DequeueWithCoalesce(IODataQueueDispatchSource *source,
                                                                   bool *sendDataServiced,
                                                                   IODataQueueDequeueFunction fn, void *context);

/** Handlers (TYPE DataAvailable / DataServiced, else kIOReturnBadArgument); NULL removes. */
DK_API kern_return_t IODataQueueDispatchSource_SetDataAvailableHandler(IODataQueueDispatchSource *source,
                                                                       OSAction *action);
DK_API kern_return_t IODataQueueDispatchSource_SetDataServicedHandler(IODataQueueDispatchSource *source,
                                                                      OSAction *action);
/** Signal the other side unconditionally. */
DK_API kern_return_t IODataQueueDispatchSource_SendDataAvailable(IODataQueueDispatchSource *source);
DK_API kern_return_t IODataQueueDispatchSource_SendDataServiced(IODataQueueDispatchSource *source);

/**
 * Linux extension for processes without handlers: block until the ring holds an entry
 * (kIOReturnSuccess) / has room for `size` bytes, or until `timeoutNs` passes (kIOReturnTimeout).
 * A corrupt ring gives kIOReturnError.
 */
DK_API kern_return_t IODataQueueDispatchSource_WaitForData(IODataQueueDispatchSource *source, uint64_t timeoutNs);
DK_API kern_return_t IODataQueueDispatchSource_WaitForSpace(IODataQueueDispatchSource *source, uint32_t size,
                                                            uint64_t timeoutNs);

/** Stop the watcher; `handler` runs once on the source's queue afterwards (or inline if none).
 *  @return kIOReturnAborted if already cancelled */
DK_API kern_return_t IODataQueueDispatchSource_Cancel(IODataQueueDispatchSource *source,
                                                      IODispatchSourceCancelHandler handler, void *context);

#ifdef __cplusplus
}
#endif

#endif
