/* Host side of the USB family: what the driver host (standing in for the kernel) calls to
 * publish a device to a driver. Not installed: it names the project's transport interface
 * (usb/transport.h), which the runtime uses header-only (it does not link libsysext).
 *
 * The device owns one event thread that is the only caller of the transport's dispatch; driver
 * calls (submit, cancel) reach the transport under the family lock and wake that thread, so a
 * single-threaded transport (USB/IP client, libusb wrapper) is never used concurrently. */
#ifndef SYSEXT_RUNTIME_USB_HOST_H
#define SYSEXT_RUNTIME_USB_HOST_H

#include <sysext/driverkit/DriverKit.h>

#include "usb/transport.h"

/**
 * Create the device nub over `transport` (copied; the transport object itself stays the
 * caller's and must outlive IOUSBHostDevice_HostDetach). Starts the event thread, then reads
 * the device descriptor and configuration 0 (validated: every descriptor inside wTotalLength).
 *
 * @param speed   kIOUSBHostConnectionSpeed*
 * @param[out] device +1
 * @return kIOReturnSuccess; kIOReturnBadArgument; kIOReturnNoDevice / kIOReturnTimeout /
 *         kIOUSBPipeStalled when the descriptors cannot be read; kIOReturnDeviceError for
 *         malformed descriptors; kIOReturnNoMemory / kIOReturnNoResources
 */
DK_API kern_return_t IOUSBHostDevice_HostCreate(const sx_usb_transport *transport, uint8_t speed,
                                                IOUSBHostDevice **device);
/**
 * An interface nub for bInterfaceNumber `number` of the active configuration, +1.
 * @return kIOReturnSuccess; kIOReturnNotFound; kIOReturnNoMemory
 */
DK_API kern_return_t IOUSBHostDevice_HostCreateInterface(IOUSBHostDevice *device, uint8_t number,
                                                         IOUSBHostInterface **interface);
/**
 * Take the device away: pending requests are cancelled (they complete with kIOReturnNoDevice),
 * the event thread waits up to 2 s for their completions and stops, and every later call
 * answers kIOReturnNoDevice. After it returns, the caller may free the transport (which
 * completes whatever was still pending). Idempotent. Not from a family completion.
 */
DK_API void IOUSBHostDevice_HostDetach(IOUSBHostDevice *device);
/** A configuration descriptor as the device sent it (`len` bytes) is safe for the descriptor
 *  helpers: type 2, wTotalLength == len, every descriptor at least 2 bytes and inside it. */
bool rt_usb_config_valid(const uint8_t *cfg, size_t len);

/**
 * The provider factory for "IOUSBHostDevice" and "IOUSBHostInterface" Create messages
 * (usb_provider.c; registered with DKIPC_RegisterProviderFactory at load): builds the USB/IP
 * client over the message's FD argument, the device over it and, for an interface, the
 * interface numbered by its bInterfaceNumber property. *out +1.
 * @return kIOReturnSuccess; kIOReturnBadArgument (no FD, no USBIPBusNum / USBIPDevNum, no
 *         bInterfaceNumber); kIOReturnUnsupported for another class; the HostCreate errors
 */
struct DKIPCMessage;
kern_return_t rt_usb_provider_create(const char *className, struct DKIPCMessage *create,
                                     IOService **out);
/** Detach and free every session the factory made (tests; a driver process just exits). */
void rt_usb_provider_reset(void);

/** Requests in the transport (all pipes and control), for tests. */
DK_API uint32_t IOUSBHostDevice_HostPendingCount(IOUSBHostDevice *device);

#endif
