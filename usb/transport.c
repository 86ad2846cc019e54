#include "util/common.h"
#include "usb/transport.h"
#include "usb/usbip_wire.h"

void sx_usb_fill_control(sx_usb_transfer *t, uint8_t bm_request_type, uint8_t b_request,
                         uint16_t w_value, uint16_t w_index, uint8_t *data, uint16_t w_length,
                         sx_usb_transfer_cb cb, void *user_data)
{
    memset(t, 0, sizeof(*t));
    t->type = SX_USB_XFER_CONTROL;
    t->endpoint = bm_request_type & 0x80;
    t->setup[0] = bm_request_type;
    t->setup[1] = b_request;
    t->setup[2] = (uint8_t)w_value;
    t->setup[3] = (uint8_t)(w_value >> 8);
    t->setup[4] = (uint8_t)w_index;
    t->setup[5] = (uint8_t)(w_index >> 8);
    t->setup[6] = (uint8_t)w_length;
    t->setup[7] = (uint8_t)(w_length >> 8);
    t->buffer = data;
    t->length = w_length;
    t->callback = cb;
    t->user_data = user_data;
}

void sx_usb_fill_pipe(sx_usb_transfer *t, sx_usb_xfer_type type, uint8_t endpoint,
                      uint8_t *data, uint32_t length, sx_usb_transfer_cb cb, void *user_data)
{
    memset(t, 0, sizeof(*t));
    t->type = (uint8_t)type;
    t->endpoint = endpoint;
    t->buffer = data;
    t->length = length;
    t->callback = cb;
    t->user_data = user_data;
}

sx_usb_status sx_usb_status_from_errno(int32_t wire)
{
    switch (wire) {
    case 0:
        return SX_USB_COMPLETED;
    case SX_USBIP_EPIPE:
        return SX_USB_STALL;
    case SX_USBIP_ECONNRESET:
    case SX_USBIP_ENOENT:
        return SX_USB_CANCELLED;
    case SX_USBIP_ESHUTDOWN:
    case SX_USBIP_ENODEV:
        return SX_USB_NO_DEVICE;
    case SX_USBIP_EOVERFLOW:
        return SX_USB_OVERFLOW;
    case SX_USBIP_ETIMEDOUT:
        return SX_USB_TIMED_OUT;
    default:
        return SX_USB_ERROR;
    }
}

const char *sx_usb_status_name(sx_usb_status s)
{
    static const char *const names[] = {"completed", "error",     "timed out", "cancelled",
                                        "stall",     "no device", "overflow"};
    return (unsigned)s < SX_ARRAY_SIZE(names) ? names[s] : "unknown";
}
