/* The USB/IP wire protocol (Linux usbip_protocol.rst, version 1.1.1): encoders and bounded
 * decoders for every message. All integers are big-endian except the 8-byte USB SETUP packet,
 * which is carried as-is (little-endian fields).
 *
 * The stream has no framing, so decoding is two-step: first learn how many bytes a message
 * needs (sx_usbip_devlist_need, sx_usbip_import_need, sx_usbip_urb_payload_len), read them,
 * then decode. Every decoder validates each field and length and fails with SYSEXT_EFORMAT
 * (malformed) or SYSEXT_ELIMIT (a length above our maxima), naming the message and the byte
 * offset inside it.
 *
 * Known server deviations we accept: devid/direction/ep are 0 in replies; number_of_packets
 * and start_frame are 0 or 0xFFFFFFFF for non-ISO URBs; RET_SUBMIT may arrive before the
 * RET_UNLINK of the same URB; OP_REP status carries the ST_* code, not just 0/1. */
#ifndef SX_USBIP_WIRE_H
#define SX_USBIP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define SX_USBIP_VERSION 0x0111
#define SX_USBIP_DEFAULT_PORT 3240

/* Management phase (op_common.code). */
#define SX_USBIP_OP_REQ_DEVLIST 0x8005
#define SX_USBIP_OP_REP_DEVLIST 0x0005
#define SX_USBIP_OP_REQ_IMPORT 0x8003
#define SX_USBIP_OP_REP_IMPORT 0x0003

/* op_common.status */
#define SX_USBIP_ST_OK 0
#define SX_USBIP_ST_NA 1
#define SX_USBIP_ST_DEV_BUSY 2
#define SX_USBIP_ST_DEV_ERR 3
#define SX_USBIP_ST_NODEV 4
#define SX_USBIP_ST_ERROR 5

/* URB phase (usbip_header_basic.command). */
#define SX_USBIP_CMD_SUBMIT 1u
#define SX_USBIP_CMD_UNLINK 2u
#define SX_USBIP_RET_SUBMIT 3u
#define SX_USBIP_RET_UNLINK 4u

#define SX_USBIP_DIR_OUT 0u
#define SX_USBIP_DIR_IN 1u

/* transfer_flags on the wire */
#define SX_USBIP_URB_SHORT_NOT_OK 0x0001u
#define SX_USBIP_URB_ISO_ASAP 0x0002u
#define SX_USBIP_URB_ZERO_PACKET 0x0040u
#define SX_USBIP_URB_DIR_IN 0x0200u

/* Sizes */
#define SX_USBIP_OP_HDR_LEN 8u
#define SX_USBIP_PATH_LEN 256u
#define SX_USBIP_BUSID_LEN 32u
#define SX_USBIP_DEVICE_LEN 312u
#define SX_USBIP_INTF_LEN 4u
#define SX_USBIP_REQ_IMPORT_LEN (SX_USBIP_OP_HDR_LEN + SX_USBIP_BUSID_LEN)
#define SX_USBIP_REP_IMPORT_LEN (SX_USBIP_OP_HDR_LEN + SX_USBIP_DEVICE_LEN)
#define SX_USBIP_URB_HDR_LEN 48u
#define SX_USBIP_ISO_DESC_LEN 16u

/* Our limits on what a peer may make us allocate. */
#define SX_USBIP_MAX_TRANSFER (16u * 1024 * 1024) /* the usbfs default ceiling */
#define SX_USBIP_MAX_ISO_PACKETS 1024u            /* USBIP_MAX_ISO_PACKETS in Linux */
#define SX_USBIP_MAX_DEVICES 4096u
#define SX_USBIP_MAX_INTERFACES 255u

/* Linux errnos as they appear in URB status fields (the same numbers on every server). */
#define SX_USBIP_ENOENT (-2)
#define SX_USBIP_EXDEV (-18)
#define SX_USBIP_ENODEV (-19)
#define SX_USBIP_EPIPE (-32)
#define SX_USBIP_EOVERFLOW (-75)
#define SX_USBIP_ECONNRESET (-104)
#define SX_USBIP_ESHUTDOWN (-108)
#define SX_USBIP_ETIMEDOUT (-110)
#define SX_USBIP_EREMOTEIO (-121)

typedef struct sx_usbip_op_header {
    uint16_t version;
    uint16_t code;
    uint32_t status;
} sx_usbip_op_header;

typedef struct sx_usbip_interface {
    uint8_t cls, subclass, protocol;
} sx_usbip_interface;

/* usbip_usb_device, plus the interface entries that follow it in OP_REP_DEVLIST
 * (num_interfaces of them; none in OP_REP_IMPORT). Strings are NUL-terminated. */
typedef struct sx_usbip_device {
    char path[SX_USBIP_PATH_LEN + 1];
    char busid[SX_USBIP_BUSID_LEN + 1];
    uint32_t busnum, devnum, speed;
    uint16_t id_vendor, id_product, bcd_device;
    uint8_t device_class, device_subclass, device_protocol;
    uint8_t configuration_value, num_configurations, num_interfaces;
    sx_usbip_interface interfaces[SX_USBIP_MAX_INTERFACES];
} sx_usbip_device;

typedef struct sx_usbip_devlist {
    size_t n;
    sx_usbip_device *devices; /* n of them */
} sx_usbip_devlist;

void sx_usbip_devlist_free(sx_usbip_devlist *l);

/* One URB-phase header, all four commands in one flat struct: only the fields of
 * `command` are meaningful. */
typedef struct sx_usbip_urb {
    uint32_t command, seqnum, devid, direction, ep;
    /* CMD_SUBMIT */
    uint32_t transfer_flags;
    uint32_t interval;
    uint8_t setup[8];
    /* CMD_SUBMIT: transfer_buffer_length; RET_SUBMIT: actual_length */
    uint32_t length;
    /* CMD_SUBMIT, RET_SUBMIT. number_of_packets is 0 for a non-ISO URB whatever the wire
     * said (0 or 0xFFFFFFFF); the encoder writes 0xFFFFFFFF in CMD_SUBMIT and 0 in
     * RET_SUBMIT for it, as Linux does. */
    uint32_t start_frame;
    uint32_t number_of_packets;
    /* RET_SUBMIT, RET_UNLINK */
    int32_t status;
    uint32_t error_count; /* RET_SUBMIT */
    uint32_t unlink_seqnum; /* CMD_UNLINK */
} sx_usbip_urb;

typedef struct sx_usbip_iso_desc {
    uint32_t offset, length, actual_length;
    int32_t status;
} sx_usbip_iso_desc;

const char *sx_usbip_command_name(uint32_t command);
const char *sx_usbip_op_name(uint16_t code);
const char *sx_usbip_status_name(uint32_t st);

/* ---- management phase ---- */

/* 8-byte op_common header. */
int sx_usbip_op_header_encode(sx_buf *out, uint16_t code, uint32_t status);
/* Decodes and checks the version; `what` names the message in errors. */
int sx_usbip_op_header_decode(const uint8_t *p, size_t len, sx_usbip_op_header *out,
                              const char *what);

int sx_usbip_req_devlist_encode(sx_buf *out);
/* `busid` must be shorter than 32 bytes. */
int sx_usbip_req_import_encode(sx_buf *out, const char *busid);
/* A whole OP_REQ_IMPORT (40 bytes): busid copied out NUL-terminated. */
int sx_usbip_req_import_decode(const uint8_t *p, size_t len,
                               char busid[SX_USBIP_BUSID_LEN + 1]);

/* One usbip_usb_device block (312 bytes) and, if `with_interfaces`, its entries. */
int sx_usbip_device_encode(sx_buf *out, const sx_usbip_device *d, bool with_interfaces);

int sx_usbip_rep_devlist_encode(sx_buf *out, const sx_usbip_device *devs, size_t n);
/* How many bytes of OP_REP_DEVLIST are needed: with the first `len` bytes in hand, sets
 * *need to the total length if it is known (<= len means complete) or to a lower bound
 * that is > len (read more, then ask again). Fails on a bad header or device count. */
int sx_usbip_devlist_need(const uint8_t *p, size_t len, size_t *need);
/* A complete OP_REP_DEVLIST. A non-zero status is SYSEXT_EREJECTED. *out is filled on
 * success (free with sx_usbip_devlist_free); *consumed = its length. */
int sx_usbip_rep_devlist_decode(const uint8_t *p, size_t len, sx_usbip_devlist *out,
                                size_t *consumed);

/* status != 0: the 8-byte header alone; else the header and the device block. */
int sx_usbip_rep_import_encode(sx_buf *out, uint32_t status, const sx_usbip_device *d);
/* Bytes needed for the OP_REP_IMPORT whose first `len` bytes are at p (8, then 320). */
int sx_usbip_import_need(const uint8_t *p, size_t len, size_t *need);
/* A complete OP_REP_IMPORT: a non-zero status is SYSEXT_EREJECTED (the message names it)
 * and *status is set to it; on success *out is the device (no interface entries). */
int sx_usbip_rep_import_decode(const uint8_t *p, size_t len, sx_usbip_device *out,
                               uint32_t *status);

/* ---- URB phase ---- */

/* The 48-byte header, then `data_len` bytes of `data`, then the ISO descriptors
 * (number_of_packets of them, or none). Checks that data_len fits the command:
 * CMD_SUBMIT OUT: == length; RET_SUBMIT with in_data: == length (or, for ISO, the sum of
 * the descriptors' actual_length); otherwise 0. `in_data` says the reply carries IN data
 * (RET_SUBMIT only: the header does not carry the direction). */
int sx_usbip_urb_encode(sx_buf *out, const sx_usbip_urb *u, const void *data, size_t data_len,
                        const sx_usbip_iso_desc *iso, bool in_data);
/* The 48-byte header at p (len >= 48). Validates the command, direction, ep, lengths
 * (<= SX_USBIP_MAX_TRANSFER, not negative) and the packet count. */
int sx_usbip_urb_header_decode(const uint8_t *p, size_t len, sx_usbip_urb *out);
/* Bytes following the header: data (CMD_SUBMIT OUT, or RET_SUBMIT when `ret_dir_in`) plus
 * ISO descriptors. `ret_dir_in` is the remembered direction of the request a RET_SUBMIT
 * answers; ignored for other commands. */
int sx_usbip_urb_payload_len(const sx_usbip_urb *u, bool ret_dir_in, size_t *out);
/* `n` ISO descriptors at p. `buffer_len` is the transfer buffer size every descriptor must
 * fit in; `data_len` is the data that came with them (packed, for IN replies: the sum of
 * actual_length must equal it; pass SIZE_MAX to skip that check). `origin` is the offset of
 * p inside the message, for errors. */
int sx_usbip_iso_decode(const uint8_t *p, size_t len, size_t origin, uint32_t n,
                        uint32_t buffer_len, size_t data_len, sx_usbip_iso_desc *out);

#endif
