/* Dispatch sources: IOTimerDispatchSource and IOInterruptDispatchSource.
 *
 * A source delivers an event by invoking its handler OSAction on the action target's queue.
 * Sources start DISABLED (as in DriverKit): call SetEnable(true). Cancel is asynchronous: after
 * it returns no handler invocation starts; the cancel handler then runs once on the source's
 * queue, after any invocation already running there. A source must be cancelled before its last
 * release to guarantee its handler's target is no longer called (free cancels implicitly, without
 * a handler). */
#ifndef SYSEXT_DRIVERKIT_IODISPATCHSOURCE_H
#define SYSEXT_DRIVERKIT_IODISPATCHSOURCE_H

#include <sysext/driverkit/IODispatchQueue.h>
#include <sysext/driverkit/OSAction.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct IOTimerDispatchSource IOTimerDispatchSource;
typedef struct IOInterruptDispatchSource IOInterruptDispatchSource;
DK_API extern const OSClass IOTimerDispatchSource_Class, IOInterruptDispatchSource_Class;

/* Clocks for WakeAtTime (Apple's values). Linux: UptimeRaw and MachAbsoluteTime ->
 * CLOCK_MONOTONIC (ns), MonotonicRaw and MachContinuousTime -> CLOCK_BOOTTIME, RealTime ->
 * CLOCK_REALTIME. */
#define kIOTimerClockRealTime 0x80ull
#define kIOTimerClockWallTime 0x80ull
#define kIOTimerClockMonotonicRaw 0x84ull
#define kIOTimerClockUptimeRaw 0x88ull
#define kIOTimerClockMachContinuousTime 0xC4ull
#define kIOTimerClockMachAbsoluteTime 0xC8ull

#define IOTimerDispatchSource_TimerOccurred_ID 0x19be7dba9ab9fa3dULL
#define IOInterruptDispatchSource_InterruptOccurred_ID 0xd21fffac49a24b21ULL

/** Handler of TYPE(IOTimerDispatchSource::TimerOccurred); `time` is now on the deadline's clock. */
typedef void (*IOTimerDispatchSource_TimerOccurred_Handler)(OSObject *target, OSAction *action, uint64_t time);
/** Handler of TYPE(IOInterruptDispatchSource::InterruptOccurred): interrupts since the last
 *  delivery, and the CLOCK_MONOTONIC time (ns) they were read. */
typedef void (*IOInterruptDispatchSource_InterruptOccurred_Handler)(OSObject *target, OSAction *action,
                                                                    uint64_t count, uint64_t time);

typedef void (*IODispatchSourceCancelHandler)(void *context);

/** Create a timer delivering on `queue` (disabled, not armed). `*source` is +1. */
DK_API kern_return_t IOTimerDispatchSource_Create(IODispatchQueue *queue, IOTimerDispatchSource **source);
/** Set the handler (retained until the next SetHandler or Cancel); it must be of TYPE
 *  TimerOccurred, else kIOReturnBadArgument. */
DK_API kern_return_t IOTimerDispatchSource_SetHandler(IOTimerDispatchSource *source, OSAction *action);
/**
 * Arm the one-shot timer: fire once when `options`'s clock reaches `deadline` (ns). Replaces any
 * pending deadline. `leeway` is accepted (the runtime may fire up to it late; it does not batch).
 * @return kIOReturnSuccess; kIOReturnBadArgument for an unknown clock; kIOReturnAborted after Cancel
 */
DK_API kern_return_t IOTimerDispatchSource_WakeAtTime(IOTimerDispatchSource *source, uint64_t options,
                                                      uint64_t deadline, uint64_t leeway);
DK_API kern_return_t IOTimerDispatchSource_SetEnable(IOTimerDispatchSource *source, bool enable);
/** kIOReturnAborted if already cancelled. */
DK_API kern_return_t IOTimerDispatchSource_Cancel(IOTimerDispatchSource *source,
                                                  IODispatchSourceCancelHandler handler, void *context);

/**
 * Create an interrupt source fed by `eventFD`: the host writes the number of interrupts to it.
 * The fd is duplicated (the caller keeps its own). `*source` is +1.
 * @return kIOReturnSuccess; kIOReturnBadArgument for a bad fd or queue; kIOReturnNoResources
 */
DK_API kern_return_t IOInterruptDispatchSource_CreateWithEventFD(int eventFD, IODispatchQueue *queue,
                                                                 IOInterruptDispatchSource **source);
/** Handler of TYPE InterruptOccurred, else kIOReturnBadArgument. */
DK_API kern_return_t IOInterruptDispatchSource_SetHandler(IOInterruptDispatchSource *source, OSAction *action);
/** While disabled, interrupts accumulate in the eventfd and are delivered after enabling. */
DK_API kern_return_t IOInterruptDispatchSource_SetEnable(IOInterruptDispatchSource *source, bool enable);
/** The count and time of the last delivery read from the eventfd. */
DK_API kern_return_t IOInterruptDispatchSource_GetLastInterrupt(IOInterruptDispatchSource *source,
                                                                uint64_t *count, uint64_t *time);
DK_API kern_return_t IOInterruptDispatchSource_Cancel(IOInterruptDispatchSource *source,
                                                      IODispatchSourceCancelHandler handler, void *context);

#ifdef __cplusplus
}
#endif

#endif
