/* USBDriverKit: IOUSBHostDevice, the USB descriptor types and the family's status codes.
 *
 * The family objects (IOUSBHostDevice, IOUSBHostInterface, IOUSBHostPipe) are created by the
 * host (the driver host, standing in for the kernel) over a USB transport (USB/IP client or
 * libusb on a handed-over device fd); a driver gets an IOUSBHostDevice or IOUSBHostInterface
 * as the provider in Start. Transfers run on a family event thread; asynchronous completions
 * are delivered on the driver's queue through an OSAction (see IOUSBHostPipe.h).
 *
 * Descriptors are the bytes as on the bus: multi-byte fields are little-endian (this runtime
 * only runs on little-endian hosts, so they read directly). Ownership follows runtime/README.md:
 * Copy* returns memory the caller frees with IOUSBHostFreeDescriptor (or objects at +1). */
#ifndef SYSEXT_DRIVERKIT_USB_IOUSBHOSTDEVICE_H
#define SYSEXT_DRIVERKIT_USB_IOUSBHOSTDEVICE_H

#include <sysext/driverkit/IOMemoryDescriptor.h>
#include <sysext/driverkit/IOService.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t IOOptionBits;

/* USB family status codes (sub_iokit_usb). */
#define kIOUSBPipeStalled iokit_usb_err(0x4f)        /* the endpoint is halted (STALL) */
#define kIOUSBTransactionTimeout iokit_usb_err(0x51) /* reserved; timeouts report kIOReturnTimeout */

/* Descriptor types and standard requests. */
#define kIOUSBDescriptorTypeDevice 1
#define kIOUSBDescriptorTypeConfiguration 2
#define kIOUSBDescriptorTypeString 3
#define kIOUSBDescriptorTypeInterface 4
#define kIOUSBDescriptorTypeEndpoint 5

#define kIOUSBDeviceRequestDirectionOut 0x00
#define kIOUSBDeviceRequestDirectionIn 0x80
#define kIOUSBDeviceRequestTypeStandard 0x00
#define kIOUSBDeviceRequestTypeClass 0x20
#define kIOUSBDeviceRequestTypeVendor 0x40
#define kIOUSBDeviceRequestRecipientDevice 0
#define kIOUSBDeviceRequestRecipientInterface 1
#define kIOUSBDeviceRequestRecipientEndpoint 2

#define kIOUSBDeviceRequestGetStatus 0
#define kIOUSBDeviceRequestClearFeature 1
#define kIOUSBDeviceRequestSetFeature 3
#define kIOUSBDeviceRequestGetDescriptor 6
#define kIOUSBDeviceRequestGetConfiguration 8
#define kIOUSBDeviceRequestSetConfiguration 9
#define kIOUSBDeviceRequestSetInterface 11
#define kIOUSBDeviceFeatureSelectorEndpointHalt 0

/* Endpoint types (bmAttributes & 3) and directions. */
#define kIOUSBEndpointTypeControl 0
#define kIOUSBEndpointTypeIsochronous 1
#define kIOUSBEndpointTypeBulk 2
#define kIOUSBEndpointTypeInterrupt 3
#define kIOUSBEndpointDirectionOut 0
#define kIOUSBEndpointDirectionIn 1

/* Speeds (GetSpeed). */
#define kIOUSBHostConnectionSpeedNone 0
#define kIOUSBHostConnectionSpeedFull 1
#define kIOUSBHostConnectionSpeedLow 2
#define kIOUSBHostConnectionSpeedHigh 3
#define kIOUSBHostConnectionSpeedSuper 4
#define kIOUSBHostConnectionSpeedSuperPlus 5

typedef struct __attribute__((packed)) IOUSBDescriptorHeader {
    uint8_t bLength;
    uint8_t bDescriptorType;
} IOUSBDescriptorHeader;
typedef IOUSBDescriptorHeader IOUSBDescriptor;

typedef struct __attribute__((packed)) IOUSBDeviceDescriptor {
    uint8_t bLength;
    uint8_t bDescriptorType;
    uint16_t bcdUSB;
    uint8_t bDeviceClass;
    uint8_t bDeviceSubClass;
    uint8_t bDeviceProtocol;
    uint8_t bMaxPacketSize0;
    uint16_t idVendor;
    uint16_t idProduct;
    uint16_t bcdDevice;
    uint8_t iManufacturer;
    uint8_t iProduct;
    uint8_t iSerialNumber;
    uint8_t bNumConfigurations;
} IOUSBDeviceDescriptor;

typedef struct __attribute__((packed)) IOUSBConfigurationDescriptor {
    uint8_t bLength;
    uint8_t bDescriptorType;
    uint16_t wTotalLength;
    uint8_t bNumInterfaces;
    uint8_t bConfigurationValue;
    uint8_t iConfiguration;
    uint8_t bmAttributes;
    uint8_t MaxPower;
} IOUSBConfigurationDescriptor;

typedef struct __attribute__((packed)) IOUSBInterfaceDescriptor {
    uint8_t bLength;
    uint8_t bDescriptorType;
    uint8_t bInterfaceNumber;
    uint8_t bAlternateSetting;
    uint8_t bNumEndpoints;
    uint8_t bInterfaceClass;
    uint8_t bInterfaceSubClass;
    uint8_t bInterfaceProtocol;
    uint8_t iInterface;
} IOUSBInterfaceDescriptor;

typedef struct __attribute__((packed)) IOUSBEndpointDescriptor {
    uint8_t bLength;
    uint8_t bDescriptorType;
    uint8_t bEndpointAddress;
    uint8_t bmAttributes;
    uint16_t wMaxPacketSize;
    uint8_t bInterval;
} IOUSBEndpointDescriptor;

/* ---- descriptor helpers (bounded by cfg->wTotalLength; NULL at the end or on a malformed
 *      descriptor: a bLength below 2 or running past wTotalLength) ---- */
DK_API const IOUSBDescriptorHeader *IOUSBGetNextDescriptor(const IOUSBConfigurationDescriptor *cfg,
                                                           const IOUSBDescriptorHeader *current);
/** Iterate interface descriptors: current = NULL first, then the previous result. */
DK_API const IOUSBInterfaceDescriptor *IOUSBGetNextInterfaceDescriptor(const IOUSBConfigurationDescriptor *cfg,
                                                                       const IOUSBDescriptorHeader *current);
/** Iterate the endpoint descriptors that follow `intf` (up to the next interface descriptor). */
DK_API const IOUSBEndpointDescriptor *IOUSBGetNextEndpointDescriptor(const IOUSBConfigurationDescriptor *cfg,
                                                                     const IOUSBInterfaceDescriptor *intf,
                                                                     const IOUSBDescriptorHeader *current);
DK_API uint8_t IOUSBGetEndpointAddress(const IOUSBEndpointDescriptor *d);
DK_API uint8_t IOUSBGetEndpointNumber(const IOUSBEndpointDescriptor *d);
DK_API uint8_t IOUSBGetEndpointDirection(const IOUSBEndpointDescriptor *d); /* kIOUSBEndpointDirection* */
DK_API uint8_t IOUSBGetEndpointType(const IOUSBEndpointDescriptor *d);      /* kIOUSBEndpointType* */
DK_API uint16_t IOUSBGetEndpointMaxPacketSize(const IOUSBEndpointDescriptor *d);
/** Free a descriptor returned by a Copy* call. NULL is a no-op. */
DK_API void IOUSBHostFreeDescriptor(const void *descriptor);

/* ---- IOUSBHostDevice ---- */

typedef struct IOUSBHostDevice IOUSBHostDevice;
typedef struct IOUSBHostInterface IOUSBHostInterface;
DK_API extern const OSClass IOUSBHostDevice_Class;

/**
 * Open a session for `forClient` (one client at a time; interfaces open separately).
 * @return kIOReturnSuccess (also when forClient already holds it); kIOReturnBadArgument for NULL;
 *         kIOReturnExclusiveAccess when another client holds it; kIOReturnNoDevice when gone
 */
DK_API kern_return_t IOUSBHostDevice_Open(IOUSBHostDevice *self, IOService *forClient, IOOptionBits options,
                                          uintptr_t arg);
/** End forClient's session. kIOReturnNotOpen when forClient does not hold it. */
DK_API kern_return_t IOUSBHostDevice_Close(IOUSBHostDevice *self, IOService *forClient, IOOptionBits options);

/**
 * Synchronous control transfer on the default pipe. `data` (may be NULL when wLength is 0)
 * must hold wLength bytes. timeoutMs 0 = none.
 * @return kIOReturnSuccess; kIOReturnNotOpen when forClient has not opened the device;
 *         kIOReturnBadArgument (data shorter than wLength); kIOUSBPipeStalled (the device
 *         refused); kIOReturnTimeout; kIOReturnNoDevice; kIOReturnIOError
 */
DK_API kern_return_t IOUSBHostDevice_DeviceRequest(IOUSBHostDevice *self, IOService *forClient,
                                                   uint8_t bmRequestType, uint8_t bRequest, uint16_t wValue,
                                                   uint16_t wIndex, uint16_t wLength, IOMemoryDescriptor *data,
                                                   uint16_t *bytesTransferred, uint32_t timeoutMs);

/**
 * Copy a descriptor into `descriptor` (capacity *length; on return *length = bytes copied).
 * Device and configuration descriptors come from the cache, others through GET_DESCRIPTOR.
 * @return kIOReturnSuccess; kIOReturnBadArgument; kIOReturnNotFound (no such descriptor /
 *         the device stalled the request); kIOReturnNoDevice
 */
DK_API kern_return_t IOUSBHostDevice_CopyDescriptor(IOUSBHostDevice *self, uint8_t type, uint16_t *length,
                                                    uint8_t index, uint16_t languageID, uint8_t requestType,
                                                    uint8_t requestRecipient, uint8_t *descriptor);
/** A new copy of the device descriptor (IOUSBHostFreeDescriptor), NULL without memory. */
DK_API const IOUSBDeviceDescriptor *IOUSBHostDevice_CopyDeviceDescriptor(IOUSBHostDevice *self);
/** A new copy of configuration `index` (only the active one is cached: index 0), or NULL. */
DK_API const IOUSBConfigurationDescriptor *IOUSBHostDevice_CopyConfigurationDescriptor(IOUSBHostDevice *self,
                                                                                       uint8_t index);
/**
 * SET_CONFIGURATION(bConfigurationValue). The device must be open. `matchInterfaces` is
 * recorded for the host (interface nubs are published by the host, not here).
 * @return kIOReturnSuccess; kIOReturnNotOpen; kIOReturnNotFound (no configuration with that
 *         value); kIOUSBPipeStalled; kIOReturnNoDevice
 */
DK_API kern_return_t IOUSBHostDevice_SetConfiguration(IOUSBHostDevice *self, uint8_t bConfigurationValue,
                                                      bool matchInterfaces);
DK_API kern_return_t IOUSBHostDevice_GetSpeed(IOUSBHostDevice *self, uint8_t *speed);
/** A buffer for transfers (memfd-backed IOBufferMemoryDescriptor), +1. */
DK_API kern_return_t IOUSBHostDevice_CreateIOBuffer(IOUSBHostDevice *self, IOOptionBits options, uint64_t capacity,
                                                    IOBufferMemoryDescriptor **buffer);
/** true once the device has gone (transport ended or host detached). */
DK_API bool IOUSBHostDevice_IsGone(IOUSBHostDevice *self);

#ifdef __cplusplus
}
#endif

#endif
