/* USBDriverKit: IOUSBHostPipe, a bulk or interrupt endpoint of an open interface.
 *
 * AsyncIO completes exactly once per accepted request, through an OSAction of
 * TYPE(IOUSBHostPipe::CompleteAsyncIO) (an action of another type is refused with
 * kIOReturnBadArgument before anything is queued), on the action target's queue, with:
 *   kIOReturnSuccess, kIOUSBPipeStalled (then ClearStall), kIOReturnTimeout,
 *   the Abort error (kIOReturnAborted normally; also for requests cancelled by Close or
 *   SelectAlternateSetting), kIOReturnNoDevice (device gone), kIOReturnOverrun (babble),
 *   kIOReturnIOError.
 * completionTimestamp is CLOCK_MONOTONIC in nanoseconds when the transport completed it. */
#ifndef SYSEXT_DRIVERKIT_USB_IOUSBHOSTPIPE_H
#define SYSEXT_DRIVERKIT_USB_IOUSBHOSTPIPE_H

#include <sysext/driverkit/OSAction.h>
#include <sysext/driverkit/usb/IOUSBHostDevice.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct IOUSBHostPipe IOUSBHostPipe;
DK_API extern const OSClass IOUSBHostPipe_Class;

#define IOUSBHostPipe_CompleteAsyncIO_ID 0xdd93860a8ff8c780ULL /* FNV-1a of "IOUSBHostPipe::CompleteAsyncIO" */

/** Handler of TYPE(IOUSBHostPipe::CompleteAsyncIO). */
typedef void (*IOUSBHostPipe_CompleteAsyncIO_Handler)(OSObject *target, OSAction *action, IOReturn status,
                                                      uint32_t actualByteCount, uint64_t completionTimestamp);

#define kIOUSBAbortAsynchronous 0u
#define kIOUSBAbortSynchronous 1u

#define kIOUSBGetEndpointDescriptorOriginal 0u
#define kIOUSBGetEndpointDescriptorCurrentPolicy 1u
typedef uint32_t IOUSBGetEndpointDescriptorOptions;

typedef struct IOUSBStandardEndpointDescriptors {
    uint16_t bcdUSB;
    IOUSBEndpointDescriptor descriptor;
} IOUSBStandardEndpointDescriptors;

/**
 * Synchronous transfer of `length` bytes of `buffer` (IN: into it). timeoutMs must be 0 on an
 * interrupt endpoint. Not from the family's completion path.
 * @return kIOReturnSuccess and *bytesTransferred; kIOReturnBadArgument (length above the buffer,
 *         a timeout on an interrupt pipe); kIOReturnNotOpen (interface closed / pipe replaced);
 *         the completion statuses listed above
 */
DK_API kern_return_t IOUSBHostPipe_IO(IOUSBHostPipe *self, IOMemoryDescriptor *buffer, uint32_t length,
                                      uint32_t *bytesTransferred, uint32_t timeoutMs);
/**
 * Queue a transfer; `completion` runs later (exactly once) unless this returns an error.
 * @return kIOReturnSuccess; kIOReturnBadArgument (NULL/wrong-type completion, bad length, a
 *         timeout on an interrupt pipe); kIOReturnNotOpen; kIOReturnNoDevice; kIOReturnNoResources
 *         (too many in flight)
 */
DK_API kern_return_t IOUSBHostPipe_AsyncIO(IOUSBHostPipe *self, IOMemoryDescriptor *buffer, uint32_t length,
                                           OSAction *completion, uint32_t timeoutMs);
/**
 * Cancel every pending request of the pipe (or only forClient's when not NULL: requests carry
 * no client here, so forClient is accepted and ignored); they complete with `withError`
 * (kIOReturnAborted when 0). kIOUSBAbortSynchronous returns after their transport completions
 * (their OSActions may still be queued on the driver's queue).
 */
DK_API kern_return_t IOUSBHostPipe_Abort(IOUSBHostPipe *self, IOOptionBits options, kern_return_t withError,
                                         IOService *forClient);
/** Clear the halt; withRequest also sends CLEAR_FEATURE(ENDPOINT_HALT). Pending I/O is aborted first. */
DK_API kern_return_t IOUSBHostPipe_ClearStall(IOUSBHostPipe *self, bool withRequest);
DK_API kern_return_t IOUSBHostPipe_GetSpeed(IOUSBHostPipe *self, uint8_t *speed);
DK_API kern_return_t IOUSBHostPipe_GetDescriptors(IOUSBHostPipe *self, IOUSBStandardEndpointDescriptors *descriptors,
                                                  IOUSBGetEndpointDescriptorOptions type);
/** Requests accepted and not yet completed by the transport (diagnostics, tests). */
DK_API uint32_t IOUSBHostPipe_GetPendingCount(IOUSBHostPipe *self);

#ifdef __cplusplus
}
#endif

#endif
