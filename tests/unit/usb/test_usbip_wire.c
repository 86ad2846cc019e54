#include <criterion/criterion.h>

#include "util/common.h"
#include "usb/usbip_wire.h"

static sx_usbip_device sample_device(const char *busid, uint16_t pid, uint8_t nif)
{
    sx_usbip_device d;
    memset(&d, 0, sizeof(d));
    snprintf(d.path, sizeof(d.path), "/sys/devices/x/usb1/%s", busid);
    snprintf(d.busid, sizeof(d.busid), "%s", busid);
    d.busnum = 1;
    d.devnum = 7;
    d.speed = 3;
    d.id_vendor = 0x1209;
    d.id_product = pid;
    d.bcd_device = 0x0100;
    d.configuration_value = 1;
    d.num_configurations = 1;
    d.num_interfaces = nif;
    for (uint8_t i = 0; i < nif; i++)
        d.interfaces[i] = (sx_usbip_interface){0xff, i, (uint8_t)(i + 1)};
    return d;
}

Test(usb_usbip_wire, devlist_round_trip_and_layout)
{
    sx_usbip_device devs[2] = {sample_device("1-1", 1, 1), sample_device("1-2", 2, 3)};
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_usbip_rep_devlist_encode(&b, devs, 2), 0);
    cr_assert_eq(b.len, 12 + 312 + 4 + 312 + 12);
    /* absolute offsets from the reference: busid 0x10C, idVendor 0x138, bNumInterfaces 0x143 */
    cr_assert_eq(b.data[0], 0x01);
    cr_assert_eq(b.data[1], 0x11);
    cr_assert_eq(b.data[3], 0x05);
    cr_assert_str_eq((char *)b.data + 0x10c, "1-1");
    cr_assert_eq(b.data[0x138], 0x12);
    cr_assert_eq(b.data[0x139], 0x09);
    cr_assert_eq(b.data[0x143], 1);
    cr_assert_eq(b.data[0x144], 0xff);

    size_t need;
    for (size_t cut = 0; cut < b.len; cut += 37) {
        cr_assert_eq(sx_usbip_devlist_need(b.data, cut, &need), 0);
        cr_assert_gt(need, cut, "a prefix of %zu bytes must ask for more", cut);
    }
    cr_assert_eq(sx_usbip_devlist_need(b.data, b.len, &need), 0);
    cr_assert_eq(need, b.len);

    sx_usbip_devlist l;
    size_t used;
    cr_assert_eq(sx_usbip_rep_devlist_decode(b.data, b.len, &l, &used), 0);
    cr_assert_eq(used, b.len);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.devices[1].busid, "1-2");
    cr_assert_str_eq(l.devices[1].path, "/sys/devices/x/usb1/1-2");
    cr_assert_eq(l.devices[1].id_product, 2);
    cr_assert_eq(l.devices[1].num_interfaces, 3);
    cr_assert_eq(l.devices[1].interfaces[2].subclass, 2);
    cr_assert_eq(l.devices[1].interfaces[2].protocol, 3);
    cr_assert_eq(l.devices[0].devnum, 7);
    sx_usbip_devlist_free(&l);
    sx_buf_free(&b);
}

Test(usb_usbip_wire, devlist_rejects_bad_input_with_offsets)
{
    sx_usbip_device d = sample_device("1-1", 1, 2);
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_usbip_rep_devlist_encode(&b, &d, 1), 0);
    sx_usbip_devlist l;

    /* truncated inside the interface entries */
    cr_assert_eq(sx_usbip_rep_devlist_decode(b.data, b.len - 3, &l, NULL), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "truncated at offset 329"), "%s", sx_errmsg());

    /* wrong version */
    b.data[1] = 0x10;
    cr_assert_eq(sx_usbip_rep_devlist_decode(b.data, b.len, &l, NULL), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 0: protocol version 0x0110"), "%s", sx_errmsg());
    size_t need;
    cr_assert_eq(sx_usbip_devlist_need(b.data, 4, &need), SYSEXT_EFORMAT);
    b.data[1] = 0x11;

    /* a device count beyond the limit, and one beyond what the message holds */
    sx_buf_set_u32be(&b, 8, 100000);
    cr_assert_eq(sx_usbip_rep_devlist_decode(b.data, b.len, &l, NULL), SYSEXT_ELIMIT);
    cr_assert(strstr(sx_errmsg(), "offset 8: 100000 devices"), "%s", sx_errmsg());
    sx_buf_set_u32be(&b, 8, 3);
    cr_assert_eq(sx_usbip_rep_devlist_decode(b.data, b.len, &l, NULL), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 8: 3 devices do not fit"), "%s", sx_errmsg());
    sx_buf_set_u32be(&b, 8, 1);

    /* an error status is a refusal, not a format error */
    sx_buf_set_u32be(&b, 4, SX_USBIP_ST_ERROR);
    cr_assert_eq(sx_usbip_rep_devlist_decode(b.data, b.len, &l, NULL), SYSEXT_EREJECTED);
    cr_assert(strstr(sx_errmsg(), "ST_ERROR"), "%s", sx_errmsg());
    sx_buf_set_u32be(&b, 4, 0);

    /* reply code of another message */
    b.data[3] = 0x03;
    cr_assert_eq(sx_usbip_rep_devlist_decode(b.data, b.len, &l, NULL), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 2: code 0x0003"), "%s", sx_errmsg());
    sx_buf_free(&b);
}

Test(usb_usbip_wire, devlist_of_zero_devices)
{
    const uint8_t msg[12] = {0x01, 0x11, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0, 0};
    sx_usbip_devlist l;
    size_t need;
    cr_assert_eq(sx_usbip_devlist_need(msg, sizeof(msg), &need), 0);
    cr_assert_eq(need, 12);
    cr_assert_eq(sx_usbip_rep_devlist_decode(msg, sizeof(msg), &l, NULL), 0);
    cr_assert_eq(l.n, 0);
    sx_usbip_devlist_free(&l);
}

Test(usb_usbip_wire, import_round_trip_and_refusal)
{
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_usbip_req_import_encode(&b, "3-2"), 0);
    cr_assert_eq(b.len, 40);
    cr_assert_eq(b.data[2], 0x80);
    cr_assert_eq(b.data[3], 0x03);
    char busid[33];
    cr_assert_eq(sx_usbip_req_import_decode(b.data, b.len, busid), 0);
    cr_assert_str_eq(busid, "3-2");
    cr_assert_eq(sx_usbip_req_import_encode(&b, "0123456789012345678901234567890123"),
                 SYSEXT_EINVAL);
    b.len = 0;

    sx_usbip_device d = sample_device("3-2", 0x0002, 1), got;
    cr_assert_eq(sx_usbip_rep_import_encode(&b, 0, &d), 0);
    cr_assert_eq(b.len, 320);
    cr_assert_eq(b.data[0x134], 0x12, "idVendor at 0x134");
    cr_assert_eq(b.data[0x13f], 1, "bNumInterfaces at 0x13f");
    size_t need;
    cr_assert_eq(sx_usbip_import_need(b.data, 8, &need), 0);
    cr_assert_eq(need, 320);
    uint32_t st = 99;
    cr_assert_eq(sx_usbip_rep_import_decode(b.data, b.len, &got, &st), 0);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(got.busid, "3-2");
    cr_assert_eq(got.devnum, 7);
    cr_assert_eq(got.speed, 3);
    cr_assert_eq(sx_usbip_rep_import_decode(b.data, 319, &got, &st), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "truncated at offset 319"), "%s", sx_errmsg());

    b.len = 0;
    cr_assert_eq(sx_usbip_rep_import_encode(&b, SX_USBIP_ST_NODEV, NULL), 0);
    cr_assert_eq(b.len, 8);
    cr_assert_eq(sx_usbip_import_need(b.data, 8, &need), 0);
    cr_assert_eq(need, 8);
    cr_assert_eq(sx_usbip_rep_import_decode(b.data, b.len, &got, &st), SYSEXT_EREJECTED);
    cr_assert_eq(st, SX_USBIP_ST_NODEV);
    cr_assert(strstr(sx_errmsg(), "ST_NODEV"), "%s", sx_errmsg());
    sx_buf_free(&b);
}

Test(usb_usbip_wire, cmd_submit_matches_reference_capture)
{
    /* GET_DESCRIPTOR(DEVICE), 18 bytes: setup 80 06 00 01 00 00 12 00, dir 1, flags 0x200 */
    sx_usbip_urb u = {.command = SX_USBIP_CMD_SUBMIT, .seqnum = 5, .devid = 0x10002,
                      .direction = 1, .ep = 0, .transfer_flags = 0x200, .length = 18,
                      .setup = {0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00}};
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_usbip_urb_encode(&b, &u, NULL, 0, NULL, false), 0);
    const uint8_t want[48] = {0, 0, 0, 1, 0, 0, 0, 5, 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0,
                              0, 0, 2, 0, 0, 0, 0, 18, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                              0, 0, 0, 0, 0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00};
    cr_assert_eq(b.len, 48);
    cr_assert_arr_eq(b.data, want, 48);
    sx_usbip_urb h;
    size_t plen;
    cr_assert_eq(sx_usbip_urb_header_decode(b.data, b.len, &h), 0);
    cr_assert_eq(h.command, SX_USBIP_CMD_SUBMIT);
    cr_assert_eq(h.seqnum, 5);
    cr_assert_eq(h.devid, 0x10002);
    cr_assert_eq(h.number_of_packets, 0, "0xffffffff means not ISO");
    cr_assert_arr_eq(h.setup, u.setup, 8);
    cr_assert_eq(sx_usbip_urb_payload_len(&h, false, &plen), 0);
    cr_assert_eq(plen, 0);
    sx_buf_free(&b);
}

Test(usb_usbip_wire, out_submit_and_in_reply_carry_data)
{
    uint8_t data[5] = {1, 2, 3, 4, 5};
    sx_usbip_urb u = {.command = SX_USBIP_CMD_SUBMIT, .seqnum = 9, .direction = 0, .ep = 2,
                      .length = 5};
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_usbip_urb_encode(&b, &u, data, 4, NULL, false), SYSEXT_EINVAL);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(sx_usbip_urb_encode(&b, &u, data, 5, NULL, false), 0);
    cr_assert_eq(b.len, 53);
    cr_assert_arr_eq(b.data + 48, data, 5);
    sx_usbip_urb h;
    size_t plen;
    cr_assert_eq(sx_usbip_urb_header_decode(b.data, b.len, &h), 0);
    cr_assert_eq(sx_usbip_urb_payload_len(&h, false, &plen), 0);
    cr_assert_eq(plen, 5);

    b.len = 0;
    sx_usbip_urb r = {.command = SX_USBIP_RET_SUBMIT, .seqnum = 9, .status = -32, .length = 3,
                      .devid = 77, .ep = 3};
    cr_assert_eq(sx_usbip_urb_encode(&b, &r, data, 3, NULL, true), 0);
    cr_assert_eq(b.len, 51);
    cr_assert_eq(b.data[11], 0, "servers send devid 0");
    cr_assert_eq(sx_usbip_urb_header_decode(b.data, b.len, &h), 0);
    cr_assert_eq(h.status, -32);
    cr_assert_eq(h.length, 3);
    cr_assert_eq(sx_usbip_urb_payload_len(&h, true, &plen), 0);
    cr_assert_eq(plen, 3);
    cr_assert_eq(sx_usbip_urb_payload_len(&h, false, &plen), 0);
    cr_assert_eq(plen, 0, "an OUT request's reply carries no data");
    sx_buf_free(&b);
}

Test(usb_usbip_wire, unlink_round_trip)
{
    sx_buf b = SX_BUF_INIT;
    sx_usbip_urb u = {.command = SX_USBIP_CMD_UNLINK, .seqnum = 12, .devid = 1, .unlink_seqnum = 10};
    cr_assert_eq(sx_usbip_urb_encode(&b, &u, NULL, 0, NULL, false), 0);
    sx_usbip_urb r = {.command = SX_USBIP_RET_UNLINK, .seqnum = 12, .status = -104};
    cr_assert_eq(sx_usbip_urb_encode(&b, &r, NULL, 0, NULL, false), 0);
    cr_assert_eq(b.len, 96);
    sx_usbip_urb h;
    cr_assert_eq(sx_usbip_urb_header_decode(b.data, 48, &h), 0);
    cr_assert_eq(h.unlink_seqnum, 10);
    cr_assert_eq(sx_usbip_urb_header_decode(b.data + 48, 48, &h), 0);
    cr_assert_eq(h.command, SX_USBIP_RET_UNLINK);
    cr_assert_eq(h.status, -104);
    sx_buf_free(&b);
}

Test(usb_usbip_wire, iso_descriptors_round_trip)
{
    sx_usbip_iso_desc iso[2] = {{0, 8, 8, 0}, {8, 8, 3, 0}};
    uint8_t data[11] = {0};
    sx_usbip_urb r = {.command = SX_USBIP_RET_SUBMIT, .seqnum = 1, .length = 11,
                      .number_of_packets = 2, .error_count = 0};
    sx_buf b = SX_BUF_INIT;
    cr_assert_eq(sx_usbip_urb_encode(&b, &r, data, 11, iso, true), 0);
    cr_assert_eq(b.len, 48 + 11 + 32);
    sx_usbip_urb h;
    size_t plen;
    cr_assert_eq(sx_usbip_urb_header_decode(b.data, b.len, &h), 0);
    cr_assert_eq(h.number_of_packets, 2);
    cr_assert_eq(sx_usbip_urb_payload_len(&h, true, &plen), 0);
    cr_assert_eq(plen, 11 + 32);
    sx_usbip_iso_desc got[2];
    cr_assert_eq(sx_usbip_iso_decode(b.data + 59, 32, 59, 2, 16, 11, got), 0);
    cr_assert_eq(got[1].offset, 8);
    cr_assert_eq(got[1].actual_length, 3);
    /* a packet past the buffer, and lengths that do not add up */
    cr_assert_eq(sx_usbip_iso_decode(b.data + 59, 32, 59, 2, 12, 11, got), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "ISO descriptor 1 at offset 75"), "%s", sx_errmsg());
    cr_assert_eq(sx_usbip_iso_decode(b.data + 59, 32, 59, 2, 16, 10, got), SYSEXT_EFORMAT);
    cr_assert_eq(sx_usbip_iso_decode(b.data + 59, 31, 59, 2, 16, 11, got), SYSEXT_EFORMAT);
    sx_buf_free(&b);
}

static void header_with(uint8_t *h, uint32_t command, size_t off, uint32_t v)
{
    memset(h, 0, 48);
    h[3] = (uint8_t)command;
    h[off] = (uint8_t)(v >> 24);
    h[off + 1] = (uint8_t)(v >> 16);
    h[off + 2] = (uint8_t)(v >> 8);
    h[off + 3] = (uint8_t)v;
}

Test(usb_usbip_wire, urb_header_rejects_malformed_fields)
{
    uint8_t h[48] = {0};
    sx_usbip_urb u;

    cr_assert_eq(sx_usbip_urb_header_decode(h, 47, &u), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "truncated at offset 47"), "%s", sx_errmsg());

    header_with(h, 7, 4, 1);
    cr_assert_eq(sx_usbip_urb_header_decode(h, 48, &u), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 0: unknown command 0x00000007"), "%s", sx_errmsg());

    header_with(h, SX_USBIP_RET_SUBMIT, 0x18, SX_USBIP_MAX_TRANSFER + 1);
    cr_assert_eq(sx_usbip_urb_header_decode(h, 48, &u), SYSEXT_ELIMIT);
    cr_assert(strstr(sx_errmsg(), "offset 0x18: actual_length"), "%s", sx_errmsg());

    header_with(h, SX_USBIP_CMD_SUBMIT, 0x18, 0x80000000u);
    cr_assert_eq(sx_usbip_urb_header_decode(h, 48, &u), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "transfer_buffer_length -2147483648 is negative"), "%s",
              sx_errmsg());

    header_with(h, SX_USBIP_RET_SUBMIT, 0x20, 5000);
    cr_assert_eq(sx_usbip_urb_header_decode(h, 48, &u), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 0x20: number_of_packets 5000"), "%s", sx_errmsg());

    header_with(h, SX_USBIP_CMD_SUBMIT, 0x0c, 2);
    cr_assert_eq(sx_usbip_urb_header_decode(h, 48, &u), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 0x0c: direction 2"), "%s", sx_errmsg());

    header_with(h, SX_USBIP_CMD_SUBMIT, 0x10, 16);
    cr_assert_eq(sx_usbip_urb_header_decode(h, 48, &u), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 0x10: endpoint 16"), "%s", sx_errmsg());

    /* tolerated deviations: 0xffffffff and 0 for non-ISO, in both fields */
    header_with(h, SX_USBIP_RET_SUBMIT, 0x1c, 0xffffffffu);
    memset(h + 0x20, 0xff, 4);
    cr_assert_eq(sx_usbip_urb_header_decode(h, 48, &u), 0);
    cr_assert_eq(u.number_of_packets, 0);
    header_with(h, SX_USBIP_RET_SUBMIT, 0x20, 0);
    cr_assert_eq(sx_usbip_urb_header_decode(h, 48, &u), 0);
}
