/* USBDriverKit: IOUSBHostInterface, the provider of a driver matched on an interface. */
#ifndef SYSEXT_DRIVERKIT_USB_IOUSBHOSTINTERFACE_H
#define SYSEXT_DRIVERKIT_USB_IOUSBHOSTINTERFACE_H

#include <sysext/driverkit/usb/IOUSBHostDevice.h>
#include <sysext/driverkit/usb/IOUSBHostPipe.h>

#ifdef __cplusplus
extern "C" {
#endif

DK_API extern const OSClass IOUSBHostInterface_Class;

#define kIOUSBHostInterfaceOpenOptionSelectAlternateInterface 0x10000u

/**
 * Open the interface for `forClient` (exclusive). With
 * kIOUSBHostInterfaceOpenOptionSelectAlternateInterface, *arg is the alternate setting to select.
 * @return kIOReturnSuccess; kIOReturnExclusiveAccess (another client); kIOReturnNoDevice
 */
DK_API kern_return_t IOUSBHostInterface_Open(IOUSBHostInterface *self, IOService *forClient, IOOptionBits options,
                                             uint8_t *arg);
/** Close: aborts all I/O on the interface's pipes (kIOReturnAborted) and invalidates them. */
DK_API kern_return_t IOUSBHostInterface_Close(IOUSBHostInterface *self, IOService *forClient, IOOptionBits options);
/** A new copy of the active configuration descriptor (IOUSBHostFreeDescriptor), NULL without memory. */
DK_API const IOUSBConfigurationDescriptor *IOUSBHostInterface_CopyConfigurationDescriptor(IOUSBHostInterface *self);
/** This interface's descriptor for its current alternate setting: a pointer into `cfg`, or NULL. */
DK_API const IOUSBInterfaceDescriptor *IOUSBHostInterface_GetInterfaceDescriptor(IOUSBHostInterface *self,
                                                                                 const IOUSBConfigurationDescriptor *cfg);
/**
 * The pipe for bEndpointAddress `address` of the current alternate setting, +1 (the same object
 * while the setting stays).
 * @return kIOReturnSuccess; kIOReturnNotOpen; kIOReturnNotFound (no such endpoint); kIOReturnNoDevice
 */
DK_API kern_return_t IOUSBHostInterface_CopyPipe(IOUSBHostInterface *self, uint8_t address, IOUSBHostPipe **pipe);
/**
 * Abort and invalidate the pipes, then SET_INTERFACE(alt).
 * @return kIOReturnSuccess; kIOReturnNotOpen; kIOReturnNotFound (no such setting);
 *         kIOUSBPipeStalled (device refused); kIOReturnNoDevice
 */
DK_API kern_return_t IOUSBHostInterface_SelectAlternateSetting(IOUSBHostInterface *self, uint8_t alt);
DK_API kern_return_t IOUSBHostInterface_CreateIOBuffer(IOUSBHostInterface *self, IOOptionBits options,
                                                       uint64_t capacity, IOBufferMemoryDescriptor **buffer);
/** Control transfer on the default pipe; the interface must be open (see IOUSBHostDevice_DeviceRequest). */
DK_API kern_return_t IOUSBHostInterface_DeviceRequest(IOUSBHostInterface *self, uint8_t bmRequestType,
                                                      uint8_t bRequest, uint16_t wValue, uint16_t wIndex,
                                                      uint16_t wLength, IOMemoryDescriptor *data,
                                                      uint16_t *bytesTransferred, uint32_t timeoutMs);
/** The device, +1. */
DK_API kern_return_t IOUSBHostInterface_CopyDevice(IOUSBHostInterface *self, IOUSBHostDevice **device);
DK_API uint8_t IOUSBHostInterface_GetInterfaceNumber(IOUSBHostInterface *self);
DK_API uint8_t IOUSBHostInterface_GetAlternateSetting(IOUSBHostInterface *self);

#ifdef __cplusplus
}
#endif

#endif
