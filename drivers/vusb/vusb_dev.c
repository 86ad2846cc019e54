/* The emulated USB 2.0 devices: descriptors, standard and vendor control requests, and the
 * data endpoints (sensor interrupt IN 0x81; loopback bulk OUT 0x02 -> bulk IN 0x82). */
#include "util/common.h"

#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "drivers/vusb/vusb.h"

#define LOOPBACK_FIFO (1u << 20)

static const uint8_t dev_desc_tmpl[18] = {
    18, 0x01, 0x00, 0x02, /* bcdUSB 2.00 */
    0x00, 0x00, 0x00,     /* class in the interface */
    64,                   /* bMaxPacketSize0 */
    VUSB_VENDOR & 0xff, VUSB_VENDOR >> 8, 0, 0, /* idProduct filled in */
    0x00, 0x01,           /* bcdDevice 1.00 */
    1, 2, 3,              /* iManufacturer, iProduct, iSerialNumber */
    1};

static const uint8_t qualifier_desc[10] = {10, 0x06, 0x00, 0x02, 0, 0, 0, 64, 1, 0};

static const uint8_t sensor_cfg[25] = {
    9, 0x02, 25, 0, 1, 1, 0, 0x80, 50,    /* config 1, bus powered, 100 mA */
    9, 0x04, 0, 0, 1, 0xff, 0, 0, 0,      /* interface 0: vendor-specific, 1 endpoint */
    7, 0x05, 0x81, 0x03, VUSB_SENSOR_SAMPLE_LEN, 0, 4, /* interrupt IN, 16 bytes, 1 ms */
};

static const uint8_t loopback_cfg[32] = {
    9, 0x02, 32, 0, 1, 1, 0, 0x80, 50,
    9, 0x04, 0, 0, 2, 0xff, 0, 0, 0,
    7, 0x05, 0x02, 0x02, 0x00, 0x02, 0, /* bulk OUT, 512 */
    7, 0x05, 0x82, 0x02, 0x00, 0x02, 0, /* bulk IN, 512 */
};

static const char *string_for(const vusb_device *d, unsigned index)
{
    switch (index) {
    case 1:
        return "sysext";
    case 2:
        return d->kind == VUSB_SENSOR ? "sysext virtual sensor" : "sysext virtual loopback";
    case 3:
        return d->kind == VUSB_SENSOR ? "VUSB-SENSOR-0001" : "VUSB-LOOPBACK-0001";
    default:
        return NULL;
    }
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int arm_timer(vusb_device *d, bool on)
{
    if (d->timerfd < 0)
        return 0;
    struct itimerspec its = {0};
    if (on && d->rate_hz) {
        uint64_t ns = 1000000000ull / d->rate_hz;
        its.it_interval.tv_sec = (time_t)(ns / 1000000000ull);
        its.it_interval.tv_nsec = (long)(ns % 1000000000ull);
        its.it_value = its.it_interval;
    }
    if (timerfd_settime(d->timerfd, 0, &its, NULL) < 0)
        return sx_err_errno(SYSEXT_EIO, errno, "timerfd_settime");
    return 0;
}

int vusb_device_init(vusb_device *d, vusb_kind kind, unsigned index, uint32_t rate_hz)
{
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    d->timerfd = -1;
    d->default_rate_hz = d->rate_hz = rate_hz;
    sx_usbip_device *i = &d->info;
    snprintf(i->busid, sizeof(i->busid), "1-%u", index + 1);
    snprintf(i->path, sizeof(i->path), "/sys/devices/platform/sysext-vusb/usb1/1-%u", index + 1);
    i->busnum = 1;
    i->devnum = index + 2; /* 1 is the root hub */
    i->speed = 3;          /* high speed */
    i->id_vendor = VUSB_VENDOR;
    i->id_product = kind == VUSB_SENSOR ? VUSB_PRODUCT_SENSOR : VUSB_PRODUCT_LOOPBACK;
    i->bcd_device = 0x0100;
    i->configuration_value = 1; /* as a Linux host leaves an exported device */
    i->num_configurations = 1;
    i->num_interfaces = 1;
    i->interfaces[0] = (sx_usbip_interface){0xff, 0, 0};
    d->config = 1;
    if (kind == VUSB_SENSOR) {
        d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (d->timerfd < 0)
            return sx_err_errno(SYSEXT_EIO, errno, "timerfd_create");
    } else {
        d->fifo_cap = LOOPBACK_FIFO;
        d->fifo = malloc(d->fifo_cap);
        if (!d->fifo)
            return sx_err(SYSEXT_ENOMEM, "out of memory for the loopback FIFO");
    }
    return 0;
}

static void free_queue(vusb_urb **q)
{
    while (*q) {
        vusb_urb *u = *q;
        *q = u->next;
        vusb_urb_free(u);
    }
}

void vusb_device_destroy(vusb_device *d)
{
    free_queue(&d->in_q);
    free_queue(&d->out_q);
    if (d->timerfd >= 0)
        close(d->timerfd);
    free(d->fifo);
    d->fifo = NULL;
    d->timerfd = -1;
}

static void reset_state(vusb_device *d)
{
    free_queue(&d->in_q);
    free_queue(&d->out_q);
    memset(d->halted, 0, sizeof(d->halted));
    d->config = 1;
    d->info.configuration_value = 1;
    d->alt = 0;
    d->rate_hz = d->default_rate_hz;
    d->counter = 0;
    d->s_head = d->s_count = 0;
    d->f_head = d->f_len = 0;
}

int vusb_device_attach(vusb_device *d, struct vusb_conn *c)
{
    reset_state(d);
    d->owner = c;
    return arm_timer(d, true);
}

void vusb_device_detach(vusb_device *d)
{
    arm_timer(d, false);
    reset_state(d);
    d->owner = NULL;
}

static void enqueue(vusb_urb **q, vusb_urb *u)
{
    u->next = NULL;
    while (*q)
        q = &(*q)->next;
    *q = u;
}

static vusb_urb *dequeue(vusb_urb **q)
{
    vusb_urb *u = *q;
    if (u)
        *q = u->next;
    return u;
}

/* ---- sensor ---- */

static void sensor_pump(vusb_device *d)
{
    while (d->in_q && d->s_count) {
        vusb_urb *u = dequeue(&d->in_q);
        vusb_complete(d->owner, u, 0, d->samples[d->s_head], VUSB_SENSOR_SAMPLE_LEN);
        d->s_head = (d->s_head + 1) % SX_ARRAY_SIZE(d->samples);
        d->s_count--;
    }
}

void vusb_device_tick(vusb_device *d)
{
    uint64_t n = 0;
    if (read(d->timerfd, &n, sizeof(n)) != (ssize_t)sizeof(n) || !d->owner || !d->config)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (n > SX_ARRAY_SIZE(d->samples))
        n = SX_ARRAY_SIZE(d->samples);
    for (uint64_t k = 0; k < n; k++) {
        const unsigned cap = SX_ARRAY_SIZE(d->samples);
        if (d->s_count == cap) { /* nobody reads: the oldest sample is lost */
            d->s_head = (d->s_head + 1) % cap;
            d->s_count--;
        }
        uint8_t *s = d->samples[(d->s_head + d->s_count) % cap];
        le64(s, d->counter++);
        le64(s + 8, now);
        d->s_count++;
    }
    sensor_pump(d);
}

/* ---- loopback ---- */

static void loopback_pump(vusb_device *d)
{
    bool progress = true;
    while (progress) {
        progress = false;
        /* OUT data into the FIFO while there is room */
        while (d->out_q && d->f_len < d->fifo_cap) {
            vusb_urb *u = d->out_q;
            uint32_t left = u->len - u->done;
            size_t room = d->fifo_cap - d->f_len;
            size_t n = left < room ? left : room;
            for (size_t k = 0; k < n;) {
                size_t tail = (d->f_head + d->f_len) % d->fifo_cap;
                size_t chunk = d->fifo_cap - tail;
                if (chunk > n - k)
                    chunk = n - k;
                memcpy(d->fifo + tail, u->data + u->done + k, chunk);
                d->f_len += chunk;
                k += chunk;
            }
            u->done += (uint32_t)n;
            progress |= n > 0;
            if (u->done < u->len)
                break;
            dequeue(&d->out_q);
            vusb_complete(d->owner, u, 0, NULL, u->len);
        }
        /* FIFO into pending IN URBs, in order */
        while (d->in_q && d->f_len) {
            vusb_urb *u = dequeue(&d->in_q);
            size_t n = u->len < d->f_len ? u->len : d->f_len;
            size_t first = d->fifo_cap - d->f_head;
            if (first > n)
                first = n;
            const uint8_t *a = d->fifo + d->f_head;
            d->f_head = (d->f_head + n) % d->fifo_cap;
            d->f_len -= n;
            vusb_complete2(d->owner, u, 0, a, (uint32_t)first, d->fifo, (uint32_t)(n - first));
            progress = true;
        }
    }
}

/* ---- control ---- */

/* SET_CONFIGURATION / SET_INTERFACE disable the endpoints: their URBs die, as on Linux. */
static void kill_data_urbs(vusb_device *d)
{
    vusb_urb *u;
    while ((u = dequeue(&d->in_q)))
        vusb_complete(d->owner, u, SX_USBIP_ESHUTDOWN, NULL, 0);
    while ((u = dequeue(&d->out_q)))
        vusb_complete(d->owner, u, SX_USBIP_ESHUTDOWN, NULL, u->done);
}

/* Answer a control URB. status < 0 stalls (or fails) it. */
static void ctl_reply(vusb_device *d, vusb_urb *u, int32_t status, const void *data, size_t n)
{
    uint16_t wlength = (uint16_t)(u->setup[6] | u->setup[7] << 8);
    if (n > wlength)
        n = wlength;
    if (n > u->len)
        n = u->len;
    if (status < 0 || u->dir == SX_USBIP_DIR_OUT)
        vusb_complete(d->owner, u, status, NULL, status < 0 ? 0 : u->len);
    else
        vusb_complete(d->owner, u, status, data, (uint32_t)n);
}

static bool valid_ep(const vusb_device *d, uint32_t ep, uint32_t dir)
{
    if (d->kind == VUSB_SENSOR)
        return ep == 1 && dir == SX_USBIP_DIR_IN;
    return ep == 2;
}

static void get_descriptor(vusb_device *d, vusb_urb *u, uint8_t type, uint8_t index)
{
    uint8_t buf[256];
    switch (type) {
    case 0x01:
        memcpy(buf, dev_desc_tmpl, sizeof(dev_desc_tmpl));
        buf[10] = (uint8_t)d->info.id_product;
        buf[11] = (uint8_t)(d->info.id_product >> 8);
        ctl_reply(d, u, 0, buf, sizeof(dev_desc_tmpl));
        return;
    case 0x02:
        if (index != 0)
            break;
        if (d->kind == VUSB_SENSOR)
            ctl_reply(d, u, 0, sensor_cfg, sizeof(sensor_cfg));
        else
            ctl_reply(d, u, 0, loopback_cfg, sizeof(loopback_cfg));
        return;
    case 0x03: {
        if (index == 0) {
            static const uint8_t langs[4] = {4, 0x03, 0x09, 0x04}; /* en-US */
            ctl_reply(d, u, 0, langs, sizeof(langs));
            return;
        }
        const char *s = string_for(d, index);
        if (!s)
            break;
        size_t n = strlen(s);
        buf[0] = (uint8_t)(2 + 2 * n);
        buf[1] = 0x03;
        for (size_t k = 0; k < n; k++) {
            buf[2 + 2 * k] = (uint8_t)s[k];
            buf[3 + 2 * k] = 0;
        }
        ctl_reply(d, u, 0, buf, 2 + 2 * n);
        return;
    }
    case 0x06:
        ctl_reply(d, u, 0, qualifier_desc, sizeof(qualifier_desc));
        return;
    default:
        break;
    }
    ctl_reply(d, u, SX_USBIP_EPIPE, NULL, 0);
}

static void control(vusb_device *d, vusb_urb *u)
{
    uint8_t bm = u->setup[0], req = u->setup[1];
    uint16_t wvalue = (uint16_t)(u->setup[2] | u->setup[3] << 8);
    uint16_t windex = (uint16_t)(u->setup[4] | u->setup[5] << 8);
    uint8_t type = (bm >> 5) & 3, recip = bm & 0x1f;
    uint8_t b[4] = {0};

    if (type == 2 && d->kind == VUSB_SENSOR) { /* vendor */
        if (bm == 0x40 && req == VUSB_REQ_SET_RATE && wvalue >= 1 &&
            wvalue <= VUSB_SENSOR_MAX_RATE) {
            d->rate_hz = wvalue;
            arm_timer(d, d->config != 0);
            ctl_reply(d, u, 0, NULL, 0);
            return;
        }
        if (bm == 0xc0 && req == VUSB_REQ_GET_RATE) {
            b[0] = (uint8_t)d->rate_hz;
            b[1] = (uint8_t)(d->rate_hz >> 8);
            b[2] = (uint8_t)(d->rate_hz >> 16);
            b[3] = (uint8_t)(d->rate_hz >> 24);
            ctl_reply(d, u, 0, b, 4);
            return;
        }
        ctl_reply(d, u, SX_USBIP_EPIPE, NULL, 0);
        return;
    }
    if (type != 0) {
        ctl_reply(d, u, SX_USBIP_EPIPE, NULL, 0);
        return;
    }
    switch (req) {
    case 0x00: /* GET_STATUS */
        if (!(bm & 0x80))
            break;
        if (recip == 2) {
            uint32_t ep = windex & 0x0f, dir = (windex & 0x80) ? 1 : 0;
            if (ep != 0 && !valid_ep(d, ep, dir))
                break;
            b[0] = ep ? d->halted[ep + 16 * dir] : 0;
        }
        ctl_reply(d, u, 0, b, 2);
        return;
    case 0x01: /* CLEAR_FEATURE */
    case 0x03: /* SET_FEATURE */
        if (recip == 2 && wvalue == 0) { /* ENDPOINT_HALT */
            uint32_t ep = windex & 0x0f, dir = (windex & 0x80) ? 1 : 0;
            if (ep != 0 && !valid_ep(d, ep, dir))
                break;
            if (ep)
                d->halted[ep + 16 * dir] = req == 0x03;
            ctl_reply(d, u, 0, NULL, 0);
            return;
        }
        if (recip == 0 && wvalue == 1) { /* DEVICE_REMOTE_WAKEUP */
            ctl_reply(d, u, 0, NULL, 0);
            return;
        }
        break;
    case 0x05: /* SET_ADDRESS: never forwarded by a real client; harmless */
        ctl_reply(d, u, 0, NULL, 0);
        return;
    case 0x06: /* GET_DESCRIPTOR */
        if (bm != 0x80)
            break;
        get_descriptor(d, u, (uint8_t)(wvalue >> 8), (uint8_t)wvalue);
        return;
    case 0x08: /* GET_CONFIGURATION */
        b[0] = d->config;
        ctl_reply(d, u, 0, b, 1);
        return;
    case 0x09: /* SET_CONFIGURATION */
        if (wvalue > 1)
            break;
        kill_data_urbs(d);
        d->config = (uint8_t)wvalue;
        d->info.configuration_value = d->config;
        d->alt = 0;
        memset(d->halted, 0, sizeof(d->halted));
        arm_timer(d, d->config != 0);
        ctl_reply(d, u, 0, NULL, 0);
        return;
    case 0x0a: /* GET_INTERFACE */
        if (!d->config || windex != 0)
            break;
        b[0] = d->alt;
        ctl_reply(d, u, 0, b, 1);
        return;
    case 0x0b: /* SET_INTERFACE */
        if (!d->config || windex != 0 || wvalue != 0)
            break;
        kill_data_urbs(d);
        memset(d->halted, 0, sizeof(d->halted));
        ctl_reply(d, u, 0, NULL, 0);
        return;
    default:
        break;
    }
    ctl_reply(d, u, SX_USBIP_EPIPE, NULL, 0);
}

void vusb_device_submit(vusb_device *d, vusb_urb *u, bool stall)
{
    if (u->ep == 0) {
        if (stall)
            vusb_complete(d->owner, u, SX_USBIP_EPIPE, NULL, 0);
        else
            control(d, u);
        return;
    }
    if (!d->config || !valid_ep(d, u->ep, u->dir)) {
        vusb_complete(d->owner, u, SX_USBIP_EPIPE, NULL, 0);
        return;
    }
    bool *halt = &d->halted[u->ep + 16 * u->dir];
    if (stall)
        *halt = true;
    if (*halt) {
        vusb_complete(d->owner, u, SX_USBIP_EPIPE, NULL, 0);
        return;
    }
    if (u->len == 0) {
        vusb_complete(d->owner, u, 0, NULL, 0);
        return;
    }
    if (d->kind == VUSB_SENSOR) {
        if (u->len < VUSB_SENSOR_SAMPLE_LEN) { /* the device would babble */
            vusb_complete(d->owner, u, SX_USBIP_EOVERFLOW, NULL, 0);
            return;
        }
        enqueue(&d->in_q, u);
        sensor_pump(d);
        return;
    }
    bool out = u->dir == SX_USBIP_DIR_OUT;
    enqueue(out ? &d->out_q : &d->in_q, u);
    loopback_pump(d);
    /* An OUT still queued (the FIFO is full) must own its data: it was borrowed. */
    if (out)
        for (vusb_urb *q = d->out_q; q; q = q->next)
            if (q == u && vusb_urb_keep(q) < 0) {
                vusb_urb *dead = q;
                for (vusb_urb **pp = &d->out_q; *pp; pp = &(*pp)->next)
                    if (*pp == dead) {
                        *pp = dead->next;
                        break;
                    }
                dead->data = NULL;
                vusb_complete(d->owner, dead, SX_USBIP_ESHUTDOWN, NULL, dead->done);
                break;
            }
}

static bool unlink_from(vusb_urb **q, uint32_t seqnum)
{
    for (; *q; q = &(*q)->next) {
        if ((*q)->seqnum == seqnum) {
            vusb_urb *u = *q;
            *q = u->next;
            vusb_urb_free(u);
            return true;
        }
    }
    return false;
}

bool vusb_device_unlink(vusb_device *d, uint32_t seqnum)
{
    bool found = unlink_from(&d->in_q, seqnum) || unlink_from(&d->out_q, seqnum);
    if (found && d->kind == VUSB_LOOPBACK)
        loopback_pump(d);
    return found;
}
