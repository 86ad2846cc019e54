/* The user client of the sample driver: ExternalMethod's dispatch table (the runtime checks the
 * argument counts against it before a selector runs) and the data queue memory for the app.
 * It runs on its own queue; the driver is its provider (NewUserClient creates it with the
 * driver as provider), kept by the runtime from Start to the end of Stop. */
#include "MyUserUSBInterfaceDriverUserClient.h"
#include "MyUserUSBInterfaceDriver.h"
#include "usbsample_internal.h"
#include "usbsample_protocol.h"

static MyUserUSBInterfaceDriver *driver_of(OSObject *target)
{
    IOService *p = IOService_GetProvider((IOService *)target);
    return p ? OSDynamicCast(MyUserUSBInterfaceDriver, p) : NULL;
}

static kern_return_t sel_set_rate(OSObject *target, void *reference, IOUserClientMethodArguments *args)
{
    (void)reference;
    MyUserUSBInterfaceDriver *drv = driver_of(target);
    if (!drv)
        return kIOReturnNotAttached;
    uint64_t hz = args->scalarInput[0];
    if (hz < USBSAMPLE_RATE_MIN || hz > USBSAMPLE_RATE_MAX) {
        usbsample_log("SetRate: %llu Hz is outside %u..%u", (unsigned long long)hz, USBSAMPLE_RATE_MIN,
                      USBSAMPLE_RATE_MAX);
        return kIOReturnBadArgument;
    }
    return MyUserUSBInterfaceDriver_SetSampleRate(drv, (uint32_t)hz);
}

static kern_return_t sel_get_stats(OSObject *target, void *reference, IOUserClientMethodArguments *args)
{
    (void)reference;
    MyUserUSBInterfaceDriver *drv = driver_of(target);
    if (!drv)
        return kIOReturnNotAttached;
    uint32_t rate = 0;
    uint64_t delivered = 0, dropped = 0;
    MyUserUSBInterfaceDriver_GetStatistics(drv, &rate, &delivered, &dropped);
    args->scalarOutput[0] = rate;
    args->scalarOutput[1] = delivered;
    args->scalarOutput[2] = dropped;
    args->scalarOutput[3] = USBSAMPLE_VERSION;
    args->scalarOutputCount = USBSAMPLE_STATS_COUNT;
    return kIOReturnSuccess;
}

/* function, completion (0: none), scalar in, struct in, scalar out, struct out */
static const IOUserClientMethodDispatch usbsample_methods[kUSBSampleSelectorCount] = {
    [kUSBSampleSelectorSetRate] = { sel_set_rate, 0, 1, 0, 0, 0 },
    [kUSBSampleSelectorGetStats] = { sel_get_stats, 0, 0, 0, USBSAMPLE_STATS_COUNT, 0 },
};

kern_return_t MyUserUSBInterfaceDriverUserClient_ExternalMethod_Impl(MyUserUSBInterfaceDriverUserClient *self,
                                                                     uint64_t selector,
                                                                     IOUserClientMethodArguments *arguments,
                                                                     const IOUserClientMethodDispatch *dispatch,
                                                                     OSObject *target, void *reference)
{
    (void)dispatch;
    (void)target;
    if (selector >= kUSBSampleSelectorCount)
        return kIOReturnBadArgument;
    return IOUserClient_ExternalMethod_Super(&MyUserUSBInterfaceDriverUserClient_Class, (IOUserClient *)self, selector,
                                             arguments, &usbsample_methods[selector], (OSObject *)self, reference);
}

kern_return_t MyUserUSBInterfaceDriverUserClient_CopyClientMemoryForType_Impl(MyUserUSBInterfaceDriverUserClient *self,
                                                                              uint64_t type, uint64_t *options,
                                                                              IOMemoryDescriptor **memory)
{
    if (type != USBSAMPLE_MEMORY_DATA_QUEUE)
        return kIOReturnBadArgument;
    MyUserUSBInterfaceDriver *drv = driver_of((OSObject *)self);
    if (!drv)
        return kIOReturnNotAttached;
    /* The app consumes the ring, so it writes the consumer offset: mapped read/write. */
    (void)options;
    return MyUserUSBInterfaceDriver_CopyDataQueueMemory(drv, memory);
}
