/* The USB family's configuration descriptor check (what a device sends in GET_DESCRIPTOR) and
 * the descriptor walkers a driver runs over a validated copy (IOUSBGetNext*Descriptor). The
 * walkers are also run over unvalidated bytes whose wTotalLength fits the buffer: they must
 * stay inside wTotalLength and terminate on any bLength. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/src/usb/usb_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned walk(const IOUSBConfigurationDescriptor *cfg)
{
    unsigned sum = 0;
    const IOUSBInterfaceDescriptor *i = NULL;
    while ((i = IOUSBGetNextInterfaceDescriptor(cfg, (const IOUSBDescriptorHeader *)i)) != NULL) {
        sum += i->bInterfaceNumber + i->bNumEndpoints;
        const IOUSBEndpointDescriptor *e = NULL;
        while ((e = IOUSBGetNextEndpointDescriptor(cfg, i, (const IOUSBDescriptorHeader *)e)) != NULL)
            sum += IOUSBGetEndpointAddress(e) + IOUSBGetEndpointType(e) + IOUSBGetEndpointMaxPacketSize(e);
    }
    const IOUSBDescriptorHeader *h = NULL;
    while ((h = IOUSBGetNextDescriptor(cfg, h)) != NULL)
        sum += h->bDescriptorType;
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4 || size > 0xffff)
        return 0;
    /* an exact-size heap copy so ASan sees any read past the end */
    uint8_t *buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    volatile unsigned sink = 0;
    if (rt_usb_config_valid(buf, size))
        sink += walk((const IOUSBConfigurationDescriptor *)buf);
    else if (size >= sizeof(IOUSBConfigurationDescriptor) && (size_t)(buf[2] | buf[3] << 8) <= size)
        sink += walk((const IOUSBConfigurationDescriptor *)buf);
    (void)sink;
    free(buf);
    return 0;
}
