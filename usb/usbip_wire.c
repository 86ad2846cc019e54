#include "util/common.h"
#include "util/reader.h"
#include "usb/usbip_wire.h"

const char *sx_usbip_command_name(uint32_t command)
{
    switch (command) {
    case SX_USBIP_CMD_SUBMIT:
        return "USBIP_CMD_SUBMIT";
    case SX_USBIP_CMD_UNLINK:
        return "USBIP_CMD_UNLINK";
    case SX_USBIP_RET_SUBMIT:
        return "USBIP_RET_SUBMIT";
    case SX_USBIP_RET_UNLINK:
        return "USBIP_RET_UNLINK";
    default:
        return "unknown command";
    }
}

const char *sx_usbip_op_name(uint16_t code)
{
    switch (code) {
    case SX_USBIP_OP_REQ_DEVLIST:
        return "OP_REQ_DEVLIST";
    case SX_USBIP_OP_REP_DEVLIST:
        return "OP_REP_DEVLIST";
    case SX_USBIP_OP_REQ_IMPORT:
        return "OP_REQ_IMPORT";
    case SX_USBIP_OP_REP_IMPORT:
        return "OP_REP_IMPORT";
    default:
        return "unknown operation";
    }
}

const char *sx_usbip_status_name(uint32_t st)
{
    static const char *const names[] = {"ST_OK (OK)",
                                        "ST_NA (device not available)",
                                        "ST_DEV_BUSY (device already imported)",
                                        "ST_DEV_ERR (device in error state)",
                                        "ST_NODEV (no such bus id)",
                                        "ST_ERROR (error)"};
    return st < SX_ARRAY_SIZE(names) ? names[st] : "unknown status";
}

void sx_usbip_devlist_free(sx_usbip_devlist *l)
{
    if (!l)
        return;
    free(l->devices);
    l->devices = NULL;
    l->n = 0;
}

static int put_u16be(sx_buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return sx_buf_append(b, x, 2);
}

/* A fixed-size NUL-padded string field; the value must leave room for one NUL. */
static int put_str(sx_buf *b, const char *s, size_t field, const char *name)
{
    size_t n = strnlen(s, field);
    if (n >= field)
        return sx_err(SYSEXT_EINVAL, "USB/IP: %s '%.40s' does not fit in %zu bytes", name, s,
                      field - 1);
    int r = sx_buf_append(b, s, n);
    if (r < 0)
        return r;
    static const uint8_t zeros[SX_USBIP_PATH_LEN];
    return sx_buf_append(b, zeros, field - n);
}

/* Copy a NUL-padded field; a field with no NUL is accepted (Linux does the same) and
 * cut at its size. Bytes after the first NUL are ignored. */
static void get_str(const uint8_t *p, size_t field, char *out)
{
    size_t n = strnlen((const char *)p, field);
    memcpy(out, p, n);
    out[n] = '\0';
}

/* ---- management phase ---- */

int sx_usbip_op_header_encode(sx_buf *out, uint16_t code, uint32_t status)
{
    int r = put_u16be(out, SX_USBIP_VERSION);
    if (r == 0)
        r = put_u16be(out, code);
    if (r == 0)
        r = sx_buf_put_u32be(out, status);
    return r;
}

int sx_usbip_op_header_decode(const uint8_t *p, size_t len, sx_usbip_op_header *out,
                              const char *what)
{
    sx_reader rd;
    sx_reader_init(&rd, p, len, what);
    int r;
    if ((r = sx_rd_u16be(&rd, &out->version)) < 0 || (r = sx_rd_u16be(&rd, &out->code)) < 0 ||
        (r = sx_rd_u32be(&rd, &out->status)) < 0)
        return r;
    if (out->version != SX_USBIP_VERSION)
        return sx_err(SYSEXT_EFORMAT,
                      "%s at offset 0: protocol version 0x%04x, expected 0x%04x", what,
                      out->version, SX_USBIP_VERSION);
    return 0;
}

int sx_usbip_req_devlist_encode(sx_buf *out)
{
    return sx_usbip_op_header_encode(out, SX_USBIP_OP_REQ_DEVLIST, 0);
}

int sx_usbip_req_import_encode(sx_buf *out, const char *busid)
{
    int r = sx_usbip_op_header_encode(out, SX_USBIP_OP_REQ_IMPORT, 0);
    return r < 0 ? r : put_str(out, busid, SX_USBIP_BUSID_LEN, "bus id");
}

int sx_usbip_req_import_decode(const uint8_t *p, size_t len, char busid[SX_USBIP_BUSID_LEN + 1])
{
    sx_usbip_op_header h;
    int r = sx_usbip_op_header_decode(p, len, &h, "OP_REQ_IMPORT");
    if (r < 0)
        return r;
    if (h.code != SX_USBIP_OP_REQ_IMPORT)
        return sx_err(SYSEXT_EFORMAT, "OP_REQ_IMPORT at offset 2: code 0x%04x, expected 0x%04x",
                      h.code, SX_USBIP_OP_REQ_IMPORT);
    if (len < SX_USBIP_REQ_IMPORT_LEN)
        return sx_err(SYSEXT_EFORMAT, "OP_REQ_IMPORT: truncated at offset %zu: need %u bytes",
                      len, SX_USBIP_REQ_IMPORT_LEN);
    get_str(p + SX_USBIP_OP_HDR_LEN, SX_USBIP_BUSID_LEN, busid);
    return 0;
}

int sx_usbip_device_encode(sx_buf *out, const sx_usbip_device *d, bool with_interfaces)
{
    int r;
    if ((r = put_str(out, d->path, SX_USBIP_PATH_LEN, "path")) < 0 ||
        (r = put_str(out, d->busid, SX_USBIP_BUSID_LEN, "bus id")) < 0 ||
        (r = sx_buf_put_u32be(out, d->busnum)) < 0 ||
        (r = sx_buf_put_u32be(out, d->devnum)) < 0 || (r = sx_buf_put_u32be(out, d->speed)) < 0 ||
        (r = put_u16be(out, d->id_vendor)) < 0 || (r = put_u16be(out, d->id_product)) < 0 ||
        (r = put_u16be(out, d->bcd_device)) < 0)
        return r;
    uint8_t tail[6] = {d->device_class,       d->device_subclass,    d->device_protocol,
                       d->configuration_value, d->num_configurations, d->num_interfaces};
    if ((r = sx_buf_append(out, tail, sizeof(tail))) < 0)
        return r;
    if (!with_interfaces)
        return 0;
    for (unsigned i = 0; i < d->num_interfaces; i++) {
        const sx_usbip_interface *it = &d->interfaces[i];
        uint8_t e[4] = {it->cls, it->subclass, it->protocol, 0};
        if ((r = sx_buf_append(out, e, sizeof(e))) < 0)
            return r;
    }
    return 0;
}

/* The 312-byte block at the reader's cursor. */
static int device_decode(sx_reader *rd, sx_usbip_device *d)
{
    const uint8_t *p;
    int r = sx_rd_bytes(rd, SX_USBIP_PATH_LEN + SX_USBIP_BUSID_LEN, &p);
    if (r < 0)
        return r;
    memset(d, 0, sizeof(*d));
    get_str(p, SX_USBIP_PATH_LEN, d->path);
    get_str(p + SX_USBIP_PATH_LEN, SX_USBIP_BUSID_LEN, d->busid);
    if ((r = sx_rd_u32be(rd, &d->busnum)) < 0 || (r = sx_rd_u32be(rd, &d->devnum)) < 0 ||
        (r = sx_rd_u32be(rd, &d->speed)) < 0 || (r = sx_rd_u16be(rd, &d->id_vendor)) < 0 ||
        (r = sx_rd_u16be(rd, &d->id_product)) < 0 || (r = sx_rd_u16be(rd, &d->bcd_device)) < 0 ||
        (r = sx_rd_u8(rd, &d->device_class)) < 0 || (r = sx_rd_u8(rd, &d->device_subclass)) < 0 ||
        (r = sx_rd_u8(rd, &d->device_protocol)) < 0 ||
        (r = sx_rd_u8(rd, &d->configuration_value)) < 0 ||
        (r = sx_rd_u8(rd, &d->num_configurations)) < 0 ||
        (r = sx_rd_u8(rd, &d->num_interfaces)) < 0)
        return r;
    return 0;
}

int sx_usbip_rep_devlist_encode(sx_buf *out, const sx_usbip_device *devs, size_t n)
{
    if (n > SX_USBIP_MAX_DEVICES)
        return sx_err(SYSEXT_ELIMIT, "USB/IP: %zu devices exceed the limit of %u", n,
                      SX_USBIP_MAX_DEVICES);
    int r = sx_usbip_op_header_encode(out, SX_USBIP_OP_REP_DEVLIST, SX_USBIP_ST_OK);
    if (r == 0)
        r = sx_buf_put_u32be(out, (uint32_t)n);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = sx_usbip_device_encode(out, &devs[i], true);
    return r;
}

static int devlist_header(const uint8_t *p, size_t len, uint32_t *n)
{
    sx_usbip_op_header h;
    int r = sx_usbip_op_header_decode(p, len, &h, "OP_REP_DEVLIST");
    if (r < 0)
        return r;
    if (h.code != SX_USBIP_OP_REP_DEVLIST)
        return sx_err(SYSEXT_EFORMAT, "OP_REP_DEVLIST at offset 2: code 0x%04x (%s), expected 0x%04x",
                      h.code, sx_usbip_op_name(h.code), SX_USBIP_OP_REP_DEVLIST);
    if (h.status != SX_USBIP_ST_OK)
        return sx_err(SYSEXT_EREJECTED, "OP_REP_DEVLIST: the server answered status %u (%s)",
                      h.status, sx_usbip_status_name(h.status));
    sx_reader rd;
    sx_reader_init(&rd, p, len, "OP_REP_DEVLIST");
    rd.pos = SX_USBIP_OP_HDR_LEN;
    if ((r = sx_rd_u32be(&rd, n)) < 0)
        return r;
    if (*n > SX_USBIP_MAX_DEVICES)
        return sx_err(SYSEXT_ELIMIT, "OP_REP_DEVLIST at offset 8: %u devices exceed the limit of %u",
                      *n, SX_USBIP_MAX_DEVICES);
    return 0;
}

int sx_usbip_devlist_need(const uint8_t *p, size_t len, size_t *need)
{
    if (len < SX_USBIP_OP_HDR_LEN + 4) {
        /* Check what we have early so a wrong version is reported without waiting. */
        if (len >= 2 && (p[0] << 8 | p[1]) != SX_USBIP_VERSION)
            return sx_err(SYSEXT_EFORMAT,
                          "OP_REP_DEVLIST at offset 0: protocol version 0x%04x, expected 0x%04x",
                          p[0] << 8 | p[1], SX_USBIP_VERSION);
        *need = SX_USBIP_OP_HDR_LEN + 4;
        return 0;
    }
    uint32_t n;
    int r = devlist_header(p, len, &n);
    if (r < 0)
        return r;
    size_t off = SX_USBIP_OP_HDR_LEN + 4;
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < SX_USBIP_DEVICE_LEN) {
            *need = off + SX_USBIP_DEVICE_LEN;
            return 0;
        }
        uint8_t nif = p[off + SX_USBIP_DEVICE_LEN - 1];
        off += SX_USBIP_DEVICE_LEN + (size_t)nif * SX_USBIP_INTF_LEN;
        if (off > len) {
            *need = off;
            return 0;
        }
    }
    *need = off;
    return 0;
}

int sx_usbip_rep_devlist_decode(const uint8_t *p, size_t len, sx_usbip_devlist *out,
                                size_t *consumed)
{
    uint32_t n;
    int r = devlist_header(p, len, &n);
    if (r < 0)
        return r;
    sx_usbip_device *devs = NULL;
    if (n) {
        /* Never allocate more than the message can describe. */
        if ((size_t)n > (len - SX_USBIP_OP_HDR_LEN - 4) / SX_USBIP_DEVICE_LEN)
            return sx_err(SYSEXT_EFORMAT,
                          "OP_REP_DEVLIST at offset 8: %u devices do not fit in the %zu-byte message",
                          n, len);
        devs = calloc(n, sizeof(*devs));
        if (!devs)
            return sx_err(SYSEXT_ENOMEM, "out of memory for %u USB/IP devices", n);
    }
    sx_reader rd;
    sx_reader_init(&rd, p, len, "OP_REP_DEVLIST");
    rd.pos = SX_USBIP_OP_HDR_LEN + 4;
    for (uint32_t i = 0; i < n; i++) {
        size_t at = sx_reader_offset(&rd);
        if ((r = device_decode(&rd, &devs[i])) < 0)
            goto fail;
        if (devs[i].busid[0] == '\0') {
            r = sx_err(SYSEXT_EFORMAT, "OP_REP_DEVLIST: device %u at offset %zu has an empty bus id",
                       i, at + SX_USBIP_PATH_LEN);
            goto fail;
        }
        for (unsigned k = 0; k < devs[i].num_interfaces; k++) {
            sx_usbip_interface *it = &devs[i].interfaces[k];
            uint8_t pad;
            if ((r = sx_rd_u8(&rd, &it->cls)) < 0 || (r = sx_rd_u8(&rd, &it->subclass)) < 0 ||
                (r = sx_rd_u8(&rd, &it->protocol)) < 0 || (r = sx_rd_u8(&rd, &pad)) < 0)
                goto fail;
        }
    }
    out->n = n;
    out->devices = devs;
    if (consumed)
        *consumed = rd.pos;
    return 0;
fail:
    free(devs);
    return r;
}

int sx_usbip_rep_import_encode(sx_buf *out, uint32_t status, const sx_usbip_device *d)
{
    int r = sx_usbip_op_header_encode(out, SX_USBIP_OP_REP_IMPORT, status);
    if (r < 0 || status != SX_USBIP_ST_OK)
        return r;
    return sx_usbip_device_encode(out, d, false);
}

int sx_usbip_import_need(const uint8_t *p, size_t len, size_t *need)
{
    if (len < SX_USBIP_OP_HDR_LEN) {
        *need = SX_USBIP_OP_HDR_LEN;
        return 0;
    }
    sx_usbip_op_header h;
    int r = sx_usbip_op_header_decode(p, len, &h, "OP_REP_IMPORT");
    if (r < 0)
        return r;
    *need = h.status == SX_USBIP_ST_OK ? SX_USBIP_REP_IMPORT_LEN : SX_USBIP_OP_HDR_LEN;
    return 0;
}

int sx_usbip_rep_import_decode(const uint8_t *p, size_t len, sx_usbip_device *out,
                               uint32_t *status)
{
    sx_usbip_op_header h;
    int r = sx_usbip_op_header_decode(p, len, &h, "OP_REP_IMPORT");
    if (r < 0)
        return r;
    if (h.code != SX_USBIP_OP_REP_IMPORT)
        return sx_err(SYSEXT_EFORMAT, "OP_REP_IMPORT at offset 2: code 0x%04x (%s), expected 0x%04x",
                      h.code, sx_usbip_op_name(h.code), SX_USBIP_OP_REP_IMPORT);
    if (status)
        *status = h.status;
    if (h.status != SX_USBIP_ST_OK)
        return sx_err(SYSEXT_EREJECTED, "OP_REP_IMPORT: the server refused the import: status %u (%s)",
                      h.status, sx_usbip_status_name(h.status));
    sx_reader rd;
    sx_reader_init(&rd, p, len, "OP_REP_IMPORT");
    rd.pos = SX_USBIP_OP_HDR_LEN;
    if ((r = device_decode(&rd, out)) < 0)
        return r;
    if (out->busid[0] == '\0')
        return sx_err(SYSEXT_EFORMAT, "OP_REP_IMPORT at offset %u: empty bus id",
                      SX_USBIP_OP_HDR_LEN + SX_USBIP_PATH_LEN);
    return 0;
}

/* ---- URB phase ---- */

static bool is_iso_count(uint32_t n)
{
    return n != 0 && n != UINT32_MAX;
}

static int check_iso_count(uint32_t n, const char *what)
{
    if (is_iso_count(n) && n > SX_USBIP_MAX_ISO_PACKETS)
        return sx_err(SYSEXT_EFORMAT,
                      "%s at offset 0x20: number_of_packets %u is neither a packet count <= %u nor 0/0xffffffff",
                      what, n, SX_USBIP_MAX_ISO_PACKETS);
    return 0;
}

static int check_length(uint32_t v, size_t off, const char *field, const char *what)
{
    if (v > INT32_MAX)
        return sx_err(SYSEXT_EFORMAT, "%s at offset 0x%zx: %s %d is negative", what, off, field,
                      (int32_t)v);
    if (v > SX_USBIP_MAX_TRANSFER)
        return sx_err(SYSEXT_ELIMIT, "%s at offset 0x%zx: %s %u exceeds the limit of %u bytes",
                      what, off, field, v, SX_USBIP_MAX_TRANSFER);
    return 0;
}

int sx_usbip_urb_encode(sx_buf *out, const sx_usbip_urb *u, const void *data, size_t data_len,
                        const sx_usbip_iso_desc *iso, bool in_data)
{
    const char *what = sx_usbip_command_name(u->command);
    uint32_t npk = u->number_of_packets;
    if (npk == UINT32_MAX)
        npk = 0;
    if (npk > SX_USBIP_MAX_ISO_PACKETS || (npk && !iso))
        return sx_err(SYSEXT_EINVAL, "%s: %u ISO packets (max %u) and descriptors %s", what, npk,
                      SX_USBIP_MAX_ISO_PACKETS, iso ? "given" : "missing");
    size_t want = 0;
    switch (u->command) {
    case SX_USBIP_CMD_SUBMIT:
        if (u->direction > 1 || u->ep > 15)
            return sx_err(SYSEXT_EINVAL, "%s: direction %u / ep %u out of range", what,
                          u->direction, u->ep);
        if (u->length > SX_USBIP_MAX_TRANSFER)
            return sx_err(SYSEXT_ELIMIT, "%s: transfer length %u exceeds %u", what, u->length,
                          SX_USBIP_MAX_TRANSFER);
        want = u->direction == SX_USBIP_DIR_OUT ? u->length : 0;
        break;
    case SX_USBIP_RET_SUBMIT:
        if (u->length > SX_USBIP_MAX_TRANSFER)
            return sx_err(SYSEXT_ELIMIT, "%s: actual length %u exceeds %u", what, u->length,
                          SX_USBIP_MAX_TRANSFER);
        if (in_data) {
            want = u->length;
            if (npk) {
                want = 0;
                for (uint32_t i = 0; i < npk; i++)
                    want += iso[i].actual_length;
            }
        }
        break;
    case SX_USBIP_CMD_UNLINK:
    case SX_USBIP_RET_UNLINK:
        if (npk)
            return sx_err(SYSEXT_EINVAL, "%s carries no ISO descriptors", what);
        break;
    default:
        return sx_err(SYSEXT_EINVAL, "USB/IP: cannot encode command %u", u->command);
    }
    if (data_len != want)
        return sx_err(SYSEXT_EINVAL, "%s: %zu data bytes given, the header calls for %zu", what,
                      data_len, want);

    bool cmd = u->command == SX_USBIP_CMD_SUBMIT || u->command == SX_USBIP_CMD_UNLINK;
    uint32_t w[12] = {0};
    w[0] = u->command;
    w[1] = u->seqnum;
    w[2] = cmd ? u->devid : 0;
    w[3] = cmd ? u->direction : 0;
    w[4] = cmd ? u->ep : 0;
    switch (u->command) {
    case SX_USBIP_CMD_SUBMIT:
        w[5] = u->transfer_flags;
        w[6] = u->length;
        w[7] = u->start_frame;
        w[8] = npk ? npk : UINT32_MAX;
        w[9] = u->interval;
        break;
    case SX_USBIP_RET_SUBMIT:
        w[5] = (uint32_t)u->status;
        w[6] = u->length;
        w[7] = u->start_frame;
        w[8] = npk;
        w[9] = u->error_count;
        break;
    case SX_USBIP_CMD_UNLINK:
        w[5] = u->unlink_seqnum;
        break;
    default: /* RET_UNLINK */
        w[5] = (uint32_t)u->status;
        break;
    }
    size_t start = out->len;
    int r = 0;
    for (int i = 0; r == 0 && i < 10; i++)
        r = sx_buf_put_u32be(out, w[i]);
    if (r == 0) {
        static const uint8_t zero8[8];
        r = sx_buf_append(out, u->command == SX_USBIP_CMD_SUBMIT ? u->setup : zero8, 8);
    }
    if (r == 0 && data_len)
        r = sx_buf_append(out, data, data_len);
    for (uint32_t i = 0; r == 0 && i < npk; i++) {
        if ((r = sx_buf_put_u32be(out, iso[i].offset)) == 0 &&
            (r = sx_buf_put_u32be(out, iso[i].length)) == 0 &&
            (r = sx_buf_put_u32be(out, iso[i].actual_length)) == 0)
            r = sx_buf_put_u32be(out, (uint32_t)iso[i].status);
    }
    if (r < 0)
        out->len = start; /* leave no half message behind */
    return r;
}

int sx_usbip_urb_header_decode(const uint8_t *p, size_t len, sx_usbip_urb *u)
{
    sx_reader rd;
    sx_reader_init(&rd, p, len, "USB/IP URB header");
    uint32_t w[10];
    int r;
    if (len < SX_USBIP_URB_HDR_LEN)
        return sx_err(SYSEXT_EFORMAT, "USB/IP URB header: truncated at offset %zu: need %u bytes",
                      len, SX_USBIP_URB_HDR_LEN);
    for (int i = 0; i < 10; i++)
        if ((r = sx_rd_u32be(&rd, &w[i])) < 0)
            return r;
    memset(u, 0, sizeof(*u));
    u->command = w[0];
    u->seqnum = w[1];
    u->devid = w[2];
    u->direction = w[3];
    u->ep = w[4];
    const char *what = sx_usbip_command_name(u->command);
    switch (u->command) {
    case SX_USBIP_CMD_SUBMIT:
        if (u->direction > 1)
            return sx_err(SYSEXT_EFORMAT, "%s at offset 0x0c: direction %u is neither 0 nor 1",
                          what, u->direction);
        if (u->ep > 15)
            return sx_err(SYSEXT_EFORMAT, "%s at offset 0x10: endpoint %u is not 0-15", what,
                          u->ep);
        u->transfer_flags = w[5];
        if ((r = check_length(w[6], 0x18, "transfer_buffer_length", what)) < 0)
            return r;
        u->length = w[6];
        u->start_frame = w[7];
        if ((r = check_iso_count(w[8], what)) < 0)
            return r;
        u->number_of_packets = is_iso_count(w[8]) ? w[8] : 0;
        u->interval = w[9];
        memcpy(u->setup, p + 0x28, 8);
        break;
    case SX_USBIP_RET_SUBMIT:
        u->status = (int32_t)w[5];
        if ((r = check_length(w[6], 0x18, "actual_length", what)) < 0)
            return r;
        u->length = w[6];
        u->start_frame = w[7];
        if ((r = check_iso_count(w[8], what)) < 0)
            return r;
        u->number_of_packets = is_iso_count(w[8]) ? w[8] : 0;
        u->error_count = w[9];
        if (u->number_of_packets && u->error_count > u->number_of_packets)
            return sx_err(SYSEXT_EFORMAT, "%s at offset 0x24: error_count %u > number_of_packets %u",
                          what, u->error_count, u->number_of_packets);
        break;
    case SX_USBIP_CMD_UNLINK:
        u->unlink_seqnum = w[5];
        break;
    case SX_USBIP_RET_UNLINK:
        u->status = (int32_t)w[5];
        break;
    default:
        return sx_err(SYSEXT_EFORMAT, "USB/IP URB header at offset 0: unknown command 0x%08x",
                      u->command);
    }
    return 0;
}

int sx_usbip_urb_payload_len(const sx_usbip_urb *u, bool ret_dir_in, size_t *out)
{
    size_t n = 0;
    switch (u->command) {
    case SX_USBIP_CMD_SUBMIT:
        n = u->direction == SX_USBIP_DIR_OUT ? u->length : 0;
        break;
    case SX_USBIP_RET_SUBMIT:
        n = ret_dir_in ? u->length : 0;
        break;
    default:
        break;
    }
    size_t iso;
    if (SX_MUL_OVERFLOW((size_t)u->number_of_packets, (size_t)SX_USBIP_ISO_DESC_LEN, &iso) ||
        SX_ADD_OVERFLOW(n, iso, &n))
        return sx_err(SYSEXT_ELIMIT, "%s: payload length overflows",
                      sx_usbip_command_name(u->command));
    *out = n;
    return 0;
}

int sx_usbip_iso_decode(const uint8_t *p, size_t len, size_t origin, uint32_t n,
                        uint32_t buffer_len, size_t data_len, sx_usbip_iso_desc *out)
{
    sx_reader rd;
    sx_reader_init(&rd, p, len, "USB/IP ISO descriptors");
    size_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sx_usbip_iso_desc *d = &out[i];
        uint32_t st;
        size_t at = origin + (size_t)i * SX_USBIP_ISO_DESC_LEN;
        int r;
        if ((r = sx_rd_u32be(&rd, &d->offset)) < 0 || (r = sx_rd_u32be(&rd, &d->length)) < 0 ||
            (r = sx_rd_u32be(&rd, &d->actual_length)) < 0 || (r = sx_rd_u32be(&rd, &st)) < 0)
            return sx_err(SYSEXT_EFORMAT, "ISO descriptor %u at offset %zu: truncated", i, at);
        d->status = (int32_t)st;
        if (d->offset > buffer_len || buffer_len - d->offset < d->length)
            return sx_err(SYSEXT_EFORMAT,
                          "ISO descriptor %u at offset %zu: packet at %u+%u lies outside the %u-byte buffer",
                          i, at, d->offset, d->length, buffer_len);
        if (d->actual_length > d->length)
            return sx_err(SYSEXT_EFORMAT,
                          "ISO descriptor %u at offset %zu: actual_length %u > length %u", i,
                          at + 8, d->actual_length, d->length);
        sum += d->actual_length;
    }
    if (data_len != SIZE_MAX && sum != data_len)
        return sx_err(SYSEXT_EFORMAT,
                      "ISO descriptors at offset %zu: packet lengths add up to %zu, but %zu data bytes came",
                      origin, sum, data_len);
    return 0;
}
