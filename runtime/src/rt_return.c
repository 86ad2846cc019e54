#include "rt_internal.h"

#include <sysext/driverkit/usb/IOUSBHostDevice.h>

#define E(n) { n, #n }
static const struct {
    kern_return_t code;
    const char *name;
} names[] = {
    E(kIOReturnSuccess), E(kIOReturnError), E(kIOReturnNoMemory), E(kIOReturnNoResources),
    E(kIOReturnIPCError), E(kIOReturnNoDevice), E(kIOReturnNotPrivileged), E(kIOReturnBadArgument),
    E(kIOReturnLockedRead), E(kIOReturnLockedWrite), E(kIOReturnExclusiveAccess),
    E(kIOReturnBadMessageID), E(kIOReturnUnsupported), E(kIOReturnVMError),
    E(kIOReturnInternalError), E(kIOReturnIOError), E(kIOReturnCannotLock), E(kIOReturnNotOpen),
    E(kIOReturnNotReadable), E(kIOReturnNotWritable), E(kIOReturnNotAligned), E(kIOReturnBadMedia),
    E(kIOReturnStillOpen), E(kIOReturnRLDError), E(kIOReturnDMAError), E(kIOReturnBusy),
    E(kIOReturnTimeout), E(kIOReturnOffline), E(kIOReturnNotReady), E(kIOReturnNotAttached),
    E(kIOReturnNoChannels), E(kIOReturnNoSpace), E(kIOReturnPortExists), E(kIOReturnCannotWire),
    E(kIOReturnNoInterrupt), E(kIOReturnNoFrames), E(kIOReturnMessageTooLarge),
    E(kIOReturnNotPermitted), E(kIOReturnNoPower), E(kIOReturnNoMedia),
    E(kIOReturnUnformattedMedia), E(kIOReturnUnsupportedMode), E(kIOReturnUnderrun),
    E(kIOReturnOverrun), E(kIOReturnDeviceError), E(kIOReturnNoCompletion), E(kIOReturnAborted),
    E(kIOReturnNoBandwidth), E(kIOReturnNotResponding), E(kIOReturnIsoTooOld),
    E(kIOReturnIsoTooNew), E(kIOReturnNotFound), E(kIOReturnInvalid),
    /* the USB family's (sub_iokit_usb) */
    E(kIOUSBPipeStalled), E(kIOUSBTransactionTimeout),
};
#undef E

const char *IOReturn_Name(kern_return_t r)
{
    for (size_t i = 0; i < DK_ARRAY_SIZE(names); i++)
        if (names[i].code == r)
            return names[i].name;
    return "kIOReturnUnknown";
}
