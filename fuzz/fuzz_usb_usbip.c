/* Arbitrary bytes as what a USB/IP server sends: every management and URB decoder, then the
 * client state machine reading them from a socketpair with transfers and an unlink pending.
 * Seeds (corpus/fuzz_usb_usbip/) are valid replies for the transfers submitted below:
 * seqnum 1 control IN 18, 2 bulk IN 512 on 0x81, 3 bulk OUT 16 on 0x02, 4 interrupt IN 16 on
 * 0x83 (cancelled: unlink seqnum 5). */
#include "util/common.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "usb/usbip_client.h"
#include "usb/usbip_wire.h"

static void decoders(const uint8_t *data, size_t size)
{
    size_t need, used;
    sx_usbip_devlist l;
    if (sx_usbip_devlist_need(data, size, &need) == 0 && need <= size &&
        sx_usbip_rep_devlist_decode(data, size, &l, &used) == 0)
        sx_usbip_devlist_free(&l);
    sx_usbip_device d;
    uint32_t st;
    if (sx_usbip_import_need(data, size, &need) == 0 && need <= size)
        sx_usbip_rep_import_decode(data, size, &d, &st);
    char busid[SX_USBIP_BUSID_LEN + 1];
    sx_usbip_req_import_decode(data, size, busid);

    /* a stream of URB messages, as a server would parse commands */
    size_t off = 0;
    while (size - off >= SX_USBIP_URB_HDR_LEN) {
        sx_usbip_urb u;
        size_t plen;
        if (sx_usbip_urb_header_decode(data + off, size - off, &u) < 0 ||
            sx_usbip_urb_payload_len(&u, true, &plen) < 0)
            break;
        off += SX_USBIP_URB_HDR_LEN;
        if (size - off < plen)
            break;
        if (u.number_of_packets) {
            size_t iso = (size_t)u.number_of_packets * SX_USBIP_ISO_DESC_LEN;
            sx_usbip_iso_desc *descs = calloc(u.number_of_packets, sizeof(*descs));
            if (descs) {
                sx_usbip_iso_decode(data + off + plen - iso, iso, off + plen - iso,
                                    u.number_of_packets, u.length, plen - iso, descs);
                free(descs);
            }
        }
        off += plen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_done(sx_usb_transfer *t)
{
    (void)t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    decoders(data, size);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    sx_usbip_device dev;
    memset(&dev, 0, sizeof(dev));
    snprintf(dev.busid, sizeof(dev.busid), "1-1");
    dev.busnum = 1;
    dev.devnum = 2;
    sx_usbip_client *c;
    if (sx_usbip_client_new(&c, sv[1], &dev) < 0) {
        close(sv[0]);
        return 0;
    }
    static uint8_t b0[18], b1[512], b2[16], b3[16];
    sx_usb_transfer t[4];
    sx_usb_fill_control(&t[0], 0x80, 6, 0x0100, 0, b0, sizeof(b0), on_done, NULL);
    sx_usb_fill_pipe(&t[1], SX_USB_XFER_BULK, 0x81, b1, sizeof(b1), on_done, NULL);
    sx_usb_fill_pipe(&t[2], SX_USB_XFER_BULK, 0x02, b2, sizeof(b2), on_done, NULL);
    sx_usb_fill_pipe(&t[3], SX_USB_XFER_INTERRUPT, 0x83, b3, sizeof(b3), on_done, NULL);
    for (int i = 0; i < 4; i++)
        sx_usbip_client_submit(c, &t[i]);
    sx_usbip_client_cancel(c, &t[3]);

    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
    size_t off = 0;
    while (off < size && !sx_usbip_client_gone(c)) {
        ssize_t k = write(sv[0], data + off, size - off);
        if (k > 0)
            off += (size_t)k;
        else if (k < 0 && errno != EAGAIN)
            break;
        sx_usbip_client_dispatch(c);
    }
    shutdown(sv[0], SHUT_WR);
    for (int i = 0; i < 1000 && !sx_usbip_client_gone(c); i++)
        sx_usbip_client_dispatch(c);
    sx_usbip_client_free(c);
    close(sv[0]);
    return 0;
}
