/* kern_return_t / IOReturn: DriverKit's status codes, with Apple's names and numbers.
 *
 * Every fallible runtime call returns one of these. kIOReturnSuccess is 0; every IOKit error is
 * sys_iokit (0x38 << 26 = 0xE0000000) | subsystem | code, so it is negative as an int.
 * IOReturn_Name() gives the symbolic name for logs ("kIOReturnAborted"). */
#ifndef SYSEXT_DRIVERKIT_IORETURN_H
#define SYSEXT_DRIVERKIT_IORETURN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DK_BUILDING_RUNTIME)
#define DK_API __attribute__((visibility("default")))
#else
#define DK_API
#endif

typedef int kern_return_t;
typedef kern_return_t IOReturn;

#define KERN_SUCCESS 0

#define sys_iokit 0xE0000000u
#define sub_iokit_common 0u
#define sub_iokit_usb 0x4000u
#define iokit_common_err(code) ((IOReturn)(sys_iokit | sub_iokit_common | (code)))
#define iokit_usb_err(code) ((IOReturn)(sys_iokit | sub_iokit_usb | (code)))

#define kIOReturnSuccess          KERN_SUCCESS
#define kIOReturnError            iokit_common_err(0x2bc) /* general error */
#define kIOReturnNoMemory         iokit_common_err(0x2bd) /* can't allocate memory */
#define kIOReturnNoResources      iokit_common_err(0x2be) /* resource shortage */
#define kIOReturnIPCError         iokit_common_err(0x2bf) /* error during IPC */
#define kIOReturnNoDevice         iokit_common_err(0x2c0) /* no such device */
#define kIOReturnNotPrivileged    iokit_common_err(0x2c1) /* privilege violation */
#define kIOReturnBadArgument      iokit_common_err(0x2c2) /* invalid argument */
#define kIOReturnLockedRead       iokit_common_err(0x2c3) /* device read locked */
#define kIOReturnLockedWrite      iokit_common_err(0x2c4) /* device write locked */
#define kIOReturnExclusiveAccess  iokit_common_err(0x2c5) /* exclusive access and device already open */
#define kIOReturnBadMessageID     iokit_common_err(0x2c6) /* sent/received messages had different msg_id */
#define kIOReturnUnsupported      iokit_common_err(0x2c7) /* unsupported function */
#define kIOReturnVMError          iokit_common_err(0x2c8) /* misc. VM failure */
#define kIOReturnInternalError    iokit_common_err(0x2c9) /* internal error */
#define kIOReturnIOError          iokit_common_err(0x2ca) /* general I/O error */
#define kIOReturnCannotLock       iokit_common_err(0x2cc) /* can't acquire lock */
#define kIOReturnNotOpen          iokit_common_err(0x2cd) /* device not open */
#define kIOReturnNotReadable      iokit_common_err(0x2ce) /* read not supported */
#define kIOReturnNotWritable      iokit_common_err(0x2cf) /* write not supported */
#define kIOReturnNotAligned       iokit_common_err(0x2d0) /* alignment error */
#define kIOReturnBadMedia         iokit_common_err(0x2d1) /* media error */
#define kIOReturnStillOpen        iokit_common_err(0x2d2) /* device(s) still open */
#define kIOReturnRLDError         iokit_common_err(0x2d3) /* rld failure */
#define kIOReturnDMAError         iokit_common_err(0x2d4) /* DMA failure */
#define kIOReturnBusy             iokit_common_err(0x2d5) /* device busy */
#define kIOReturnTimeout          iokit_common_err(0x2d6) /* I/O timeout */
#define kIOReturnOffline          iokit_common_err(0x2d7) /* device offline */
#define kIOReturnNotReady         iokit_common_err(0x2d8) /* not ready */
#define kIOReturnNotAttached      iokit_common_err(0x2d9) /* device not attached */
#define kIOReturnNoChannels       iokit_common_err(0x2da) /* no DMA channels left */
#define kIOReturnNoSpace          iokit_common_err(0x2db) /* no space for data */
#define kIOReturnPortExists       iokit_common_err(0x2dd) /* port already exists */
#define kIOReturnCannotWire       iokit_common_err(0x2de) /* can't wire down physical memory */
#define kIOReturnNoInterrupt      iokit_common_err(0x2df) /* no interrupt attached */
#define kIOReturnNoFrames         iokit_common_err(0x2e0) /* no DMA frames enqueued */
#define kIOReturnMessageTooLarge  iokit_common_err(0x2e1) /* oversized msg received on interrupt port */
#define kIOReturnNotPermitted     iokit_common_err(0x2e2) /* not permitted */
#define kIOReturnNoPower          iokit_common_err(0x2e3) /* no power to device */
#define kIOReturnNoMedia          iokit_common_err(0x2e4) /* media not present */
#define kIOReturnUnformattedMedia iokit_common_err(0x2e5) /* media not formatted */
#define kIOReturnUnsupportedMode  iokit_common_err(0x2e6) /* no such mode */
#define kIOReturnUnderrun         iokit_common_err(0x2e7) /* data underrun / queue empty */
#define kIOReturnOverrun          iokit_common_err(0x2e8) /* data overrun / queue full */
#define kIOReturnDeviceError      iokit_common_err(0x2e9) /* the device is not working properly */
#define kIOReturnNoCompletion     iokit_common_err(0x2ea) /* a completion routine is required */
#define kIOReturnAborted          iokit_common_err(0x2eb) /* operation aborted */
#define kIOReturnNoBandwidth      iokit_common_err(0x2ec) /* bus bandwidth would be exceeded */
#define kIOReturnNotResponding    iokit_common_err(0x2ed) /* device not responding */
#define kIOReturnIsoTooOld        iokit_common_err(0x2ee) /* isochronous I/O request for distant past */
#define kIOReturnIsoTooNew        iokit_common_err(0x2ef) /* isochronous I/O request for distant future */
#define kIOReturnNotFound         iokit_common_err(0x2f0) /* data was not found */
#define kIOReturnInvalid          iokit_common_err(0x1)   /* should never be seen */

/**
 * The symbolic name of `r` ("kIOReturnAborted"), for logs.
 *
 * @return a static string; "kIOReturnUnknown" for a value that is not in the table. Never NULL.
 */
DK_API const char *IOReturn_Name(kern_return_t r);

#ifdef __cplusplus
}
#endif

#endif
