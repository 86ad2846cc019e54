#include "util/common.h"

#include "registry/registry.h"
#include "util/buf.h"
#include "util/reader.h"

struct sx_registry {
    sx_nub *root;
    sx_nub *resources;
    sx_nub *user_resources;
    uint64_t next_id;
    size_t count;
};

/* ---- descriptors ---------------------------------------------------------------------- */

int sx_usb_parse_device_descriptor(const void *data, size_t len, sx_usb_device_descriptor *out)
{
    SX_ASSERT_ARG(data || !len);
    SX_ASSERT_ARG(out);
    memset(out, 0, sizeof(*out));
    sx_reader r;
    sx_reader_init(&r, data, len, "device descriptor");
    if (len < 18)
        return sx_err(SYSEXT_EFORMAT, "device descriptor: %zu bytes, expected 18", len);
    int rc = 0;
    rc |= sx_rd_u8(&r, &out->bLength);
    rc |= sx_rd_u8(&r, &out->bDescriptorType);
    rc |= sx_rd_u16le(&r, &out->bcdUSB);
    rc |= sx_rd_u8(&r, &out->bDeviceClass);
    rc |= sx_rd_u8(&r, &out->bDeviceSubClass);
    rc |= sx_rd_u8(&r, &out->bDeviceProtocol);
    rc |= sx_rd_u8(&r, &out->bMaxPacketSize0);
    rc |= sx_rd_u16le(&r, &out->idVendor);
    rc |= sx_rd_u16le(&r, &out->idProduct);
    rc |= sx_rd_u16le(&r, &out->bcdDevice);
    rc |= sx_rd_u8(&r, &out->iManufacturer);
    rc |= sx_rd_u8(&r, &out->iProduct);
    rc |= sx_rd_u8(&r, &out->iSerialNumber);
    rc |= sx_rd_u8(&r, &out->bNumConfigurations);
    if (rc)
        return sx_err(SYSEXT_EFORMAT, "device descriptor: truncated");
    if (out->bLength != 18)
        return sx_err(SYSEXT_EFORMAT, "device descriptor at offset 0: bLength %u, expected 18",
                      out->bLength);
    if (out->bDescriptorType != 1)
        return sx_err(SYSEXT_EFORMAT,
                      "device descriptor at offset 1: bDescriptorType %u, expected 1 (DEVICE)",
                      out->bDescriptorType);
    return 0;
}

int sx_usb_parse_config_descriptor(const void *data, size_t len, sx_usb_config_info *out)
{
    SX_ASSERT_ARG(data || !len);
    SX_ASSERT_ARG(out);
    memset(out, 0, sizeof(*out));
    sx_reader r;
    sx_reader_init(&r, data, len, "configuration descriptor");
    uint8_t blen = 0, type = 0;
    if (len < 9)
        return sx_err(SYSEXT_EFORMAT, "configuration descriptor: %zu bytes, expected at least 9",
                      len);
    (void)sx_rd_u8(&r, &blen);
    (void)sx_rd_u8(&r, &type);
    (void)sx_rd_u16le(&r, &out->wTotalLength);
    (void)sx_rd_u8(&r, &out->bNumInterfaces);
    (void)sx_rd_u8(&r, &out->bConfigurationValue);
    (void)sx_rd_u8(&r, &out->iConfiguration);
    (void)sx_rd_u8(&r, &out->bmAttributes);
    (void)sx_rd_u8(&r, &out->bMaxPower);
    if (type != 2)
        return sx_err(SYSEXT_EFORMAT,
                      "configuration descriptor at offset 1: bDescriptorType %u, expected 2 "
                      "(CONFIGURATION)", type);
    if (blen < 9)
        return sx_err(SYSEXT_EFORMAT,
                      "configuration descriptor at offset 0: bLength %u, expected at least 9", blen);
    if (out->wTotalLength > len)
        return sx_err(SYSEXT_EFORMAT,
                      "configuration descriptor at offset 2: wTotalLength %u exceeds the %zu bytes "
                      "received", out->wTotalLength, len);
    if (out->wTotalLength < blen)
        return sx_err(SYSEXT_EFORMAT,
                      "configuration descriptor at offset 2: wTotalLength %u is shorter than its "
                      "bLength %u", out->wTotalLength, blen);
    if (out->bNumInterfaces > SX_USB_MAX_INTERFACES)
        return sx_err(SYSEXT_ELIMIT,
                      "configuration descriptor at offset 4: bNumInterfaces %u exceeds the limit "
                      "of %d", out->bNumInterfaces, SX_USB_MAX_INTERFACES);

    /* Walk the descriptors inside wTotalLength. */
    sx_reader all;
    sx_reader_init(&all, data, out->wTotalLength, "configuration descriptor");
    size_t off = blen;
    size_t n_iface_desc = 0;
    while (off < out->wTotalLength) {
        sx_reader d;
        uint8_t dlen = 0, dtype = 0;
        if (out->wTotalLength - off < 2)
            return sx_err(SYSEXT_EFORMAT,
                          "configuration descriptor at offset %zu: %zu trailing byte(s), too short "
                          "for a descriptor header", off, (size_t)out->wTotalLength - off);
        if (sx_rd_seek(&all, off) < 0 || sx_rd_u8(&all, &dlen) < 0 || sx_rd_u8(&all, &dtype) < 0)
            return sx_err(SYSEXT_EFORMAT, "configuration descriptor at offset %zu: truncated", off);
        if (dlen < 2)
            return sx_err(SYSEXT_EFORMAT,
                          "configuration descriptor at offset %zu: bLength %u is below 2", off, dlen);
        if (dlen > out->wTotalLength - off)
            return sx_err(SYSEXT_EFORMAT,
                          "configuration descriptor at offset %zu: bLength %u runs past wTotalLength "
                          "%u", off, dlen, out->wTotalLength);
        if (dtype == 4) { /* INTERFACE */
            if (dlen < 9)
                return sx_err(SYSEXT_EFORMAT,
                              "configuration descriptor at offset %zu: interface descriptor "
                              "bLength %u, expected at least 9", off, dlen);
            if (++n_iface_desc > SX_USB_MAX_INTERFACE_DESCRIPTORS)
                return sx_err(SYSEXT_ELIMIT,
                              "configuration descriptor at offset %zu: more than %d interface "
                              "descriptors", off, SX_USB_MAX_INTERFACE_DESCRIPTORS);
            if (sx_rd_window(&all, off, dlen, &d, "interface descriptor") < 0)
                return sx_err(SYSEXT_EFORMAT, "configuration descriptor at offset %zu: truncated",
                              off);
            sx_usb_interface_info ii = {0};
            (void)sx_rd_skip(&d, 2);
            (void)sx_rd_u8(&d, &ii.bInterfaceNumber);
            (void)sx_rd_u8(&d, &ii.bAlternateSetting);
            (void)sx_rd_u8(&d, &ii.bNumEndpoints);
            (void)sx_rd_u8(&d, &ii.bInterfaceClass);
            (void)sx_rd_u8(&d, &ii.bInterfaceSubClass);
            (void)sx_rd_u8(&d, &ii.bInterfaceProtocol);
            (void)sx_rd_u8(&d, &ii.iInterface);
            size_t found = out->n_interfaces;
            for (size_t i = 0; i < out->n_interfaces; i++)
                if (out->interfaces[i].bInterfaceNumber == ii.bInterfaceNumber)
                    found = i;
            if (ii.bAlternateSetting == 0) {
                if (found != out->n_interfaces)
                    return sx_err(SYSEXT_EFORMAT,
                                  "configuration descriptor at offset %zu: interface %u declared "
                                  "twice", off, ii.bInterfaceNumber);
                if (out->n_interfaces >= SX_USB_MAX_INTERFACES)
                    return sx_err(SYSEXT_ELIMIT,
                                  "configuration descriptor at offset %zu: more than %d "
                                  "interfaces", off, SX_USB_MAX_INTERFACES);
                ii.alternate_settings = 1;
                out->interfaces[out->n_interfaces++] = ii;
            } else if (found == out->n_interfaces) {
                return sx_err(SYSEXT_EFORMAT,
                              "configuration descriptor at offset %zu: alternate setting %u of "
                              "interface %u comes before its setting 0", off,
                              ii.bAlternateSetting, ii.bInterfaceNumber);
            } else if (out->interfaces[found].alternate_settings < UINT8_MAX) {
                out->interfaces[found].alternate_settings++;
            }
        }
        off += dlen;
    }
    if (out->n_interfaces != out->bNumInterfaces)
        return sx_err(SYSEXT_EFORMAT,
                      "configuration descriptor at offset 4: bNumInterfaces %u, but %zu interface(s) "
                      "found", out->bNumInterfaces, out->n_interfaces);
    return 0;
}

/* ---- nubs ----------------------------------------------------------------------------- */

void sx_binding_clear(sx_binding *b)
{
    if (!b)
        return;
    free(b->category);
    free(b->bundle_id);
    free(b->bundle_version);
    free(b->personality);
    free(b->server_name);
    free(b->user_class);
    free(b->io_class);
    free(b->state);
    memset(b, 0, sizeof(*b));
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int sx_binding_copy(sx_binding *dst, const sx_binding *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->category = strdup(src->category ? src->category : SX_DEFAULT_MATCH_CATEGORY);
    dst->bundle_id = dup_or_empty(src->bundle_id);
    dst->bundle_version = dup_or_empty(src->bundle_version);
    dst->personality = dup_or_empty(src->personality);
    dst->server_name = dup_or_empty(src->server_name);
    dst->user_class = dup_or_empty(src->user_class);
    dst->io_class = dup_or_empty(src->io_class);
    dst->state = strdup(src->state ? src->state : "matched");
    dst->score = src->score;
    if (!dst->category || !dst->bundle_id || !dst->bundle_version || !dst->personality ||
        !dst->server_name || !dst->user_class || !dst->io_class || !dst->state) {
        sx_binding_clear(dst);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    return 0;
}

static void nub_free(sx_nub *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_children; i++)
        nub_free(n->children[i]);
    if (n->registry && n->registry->count)
        n->registry->count--;
    free(n->children);
    for (size_t i = 0; i < n->n_bindings; i++)
        sx_binding_clear(&n->bindings[i]);
    free(n->bindings);
    free(n->class_name);
    free(n->name);
    free(n->location);
    plist_free(n->props);
    free(n);
}

static int nub_new(sx_registry *reg, sx_nub *parent, const char *cls, const char *name,
                   plist_t props, sx_nub **out)
{
    if (reg->count >= SX_REGISTRY_MAX_NUBS)
        return sx_err(SYSEXT_ELIMIT, "registry: more than %d entries", SX_REGISTRY_MAX_NUBS);
    if (parent && parent->n_children == parent->cap_children) {
        size_t cap = parent->cap_children ? parent->cap_children * 2 : 4;
        sx_nub **c = reallocarray(parent->children, cap, sizeof(*c));
        if (!c)
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        parent->children = c;
        parent->cap_children = cap;
    }
    sx_nub *n = calloc(1, sizeof(*n));
    if (!n)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    n->registry = reg;
    n->class_name = strdup(cls);
    n->name = strdup(name);
    n->props = props ? plist_copy(props) : plist_new_dict();
    if (!n->class_name || !n->name || !n->props) {
        free(n->class_name);
        free(n->name);
        plist_free(n->props);
        free(n);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    if (plist_get_node_type(n->props) != PLIST_DICT) {
        plist_free(n->props);
        free(n->class_name);
        free(n->name);
        free(n);
        return sx_err(SYSEXT_EINVAL, "registry: properties of %s must be a dictionary", name);
    }
    n->id = reg->next_id++;
    n->state = SX_NUB_REGISTERED;
    n->parent = parent;
    if (parent)
        parent->children[parent->n_children++] = n;
    reg->count++;
    *out = n;
    return 0;
}

int sx_registry_new(sx_registry **out)
{
    SX_ASSERT_ARG(out);
    *out = NULL;
    sx_registry *reg = calloc(1, sizeof(*reg));
    if (!reg)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    reg->next_id = SX_REGISTRY_FIRST_ID;
    int rc = nub_new(reg, NULL, "IORegistryEntry", "Root", NULL, &reg->root);
    if (rc == 0)
        rc = nub_new(reg, reg->root, "IOResources", "IOResources", NULL, &reg->resources);
    if (rc == 0)
        rc = nub_new(reg, reg->root, "IOUserResources", "IOUserResources", NULL,
                     &reg->user_resources);
    if (rc == 0)
        rc = sx_registry_publish_resource(reg, "IOKit");
    if (rc < 0) {
        sx_registry_free(reg);
        return rc;
    }
    *out = reg;
    return 0;
}

void sx_registry_free(sx_registry *reg)
{
    if (!reg)
        return;
    nub_free(reg->root);
    free(reg);
}

sx_nub *sx_registry_root(const sx_registry *reg)
{
    return reg ? reg->root : NULL;
}

sx_nub *sx_registry_resources(const sx_registry *reg)
{
    return reg ? reg->resources : NULL;
}

sx_nub *sx_registry_user_resources(const sx_registry *reg)
{
    return reg ? reg->user_resources : NULL;
}

size_t sx_registry_count(const sx_registry *reg)
{
    return reg ? reg->count : 0;
}

static sx_nub *find_id(sx_nub *n, uint64_t id)
{
    if (n->id == id)
        return n;
    for (size_t i = 0; i < n->n_children; i++) {
        sx_nub *f = find_id(n->children[i], id);
        if (f)
            return f;
    }
    return NULL;
}

sx_nub *sx_registry_find(const sx_registry *reg, uint64_t id)
{
    return reg ? find_id(reg->root, id) : NULL;
}

int sx_registry_add_nub(sx_registry *reg, sx_nub *parent, const char *class_name, const char *name,
                        plist_t props, sx_nub **out)
{
    SX_ASSERT_ARG(reg);
    SX_ASSERT_ARG(class_name);
    SX_ASSERT_ARG(name);
    if (parent && (parent->registry != reg || (parent->state & SX_NUB_TERMINATED)))
        return sx_err(SYSEXT_EINVAL, "registry: parent 0x%llx is terminated or foreign",
                      (unsigned long long)parent->id);
    sx_nub *n = NULL;
    int rc = nub_new(reg, parent ? parent : reg->root, class_name, name, props, &n);
    if (rc < 0)
        return rc;
    if (out)
        *out = n;
    return 0;
}

int sx_registry_publish_resource(sx_registry *reg, const char *name)
{
    SX_ASSERT_ARG(reg);
    SX_ASSERT_ARG(name);
    plist_t v = plist_new_string(name);
    if (!v)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    plist_dict_set_item(reg->resources->props, name, v);
    return 0;
}

int sx_registry_unpublish_resource(sx_registry *reg, const char *name)
{
    SX_ASSERT_ARG(reg);
    SX_ASSERT_ARG(name);
    if (!plist_dict_get_item(reg->resources->props, name))
        return sx_err(SYSEXT_ENOTFOUND, "IOResources: no resource '%s'", name);
    plist_dict_remove_item(reg->resources->props, name);
    return 0;
}

static int set_uint(plist_t d, const char *key, uint64_t v)
{
    plist_t n = plist_new_uint(v);
    if (!n)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    plist_dict_set_item(d, key, n);
    return 0;
}

static int set_str(plist_t d, const char *key, const char *v)
{
    plist_t n = plist_new_string(v);
    if (!n)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    plist_dict_set_item(d, key, n);
    return 0;
}

static int device_props(const sx_usb_device_info *info, const sx_usb_config_info *cfg, plist_t d)
{
    const sx_usb_device_descriptor *dd = info->device;
    int rc = 0;
    rc |= set_uint(d, "idVendor", dd->idVendor);
    rc |= set_uint(d, "idProduct", dd->idProduct);
    rc |= set_uint(d, "bcdDevice", dd->bcdDevice);
    rc |= set_uint(d, "bcdUSB", dd->bcdUSB);
    rc |= set_uint(d, "bDeviceClass", dd->bDeviceClass);
    rc |= set_uint(d, "bDeviceSubClass", dd->bDeviceSubClass);
    rc |= set_uint(d, "bDeviceProtocol", dd->bDeviceProtocol);
    rc |= set_uint(d, "bMaxPacketSize0", dd->bMaxPacketSize0);
    rc |= set_uint(d, "iManufacturer", dd->iManufacturer);
    rc |= set_uint(d, "iProduct", dd->iProduct);
    rc |= set_uint(d, "iSerialNumber", dd->iSerialNumber);
    rc |= set_uint(d, "bNumConfigurations", dd->bNumConfigurations);
    rc |= set_uint(d, "locationID", info->location_id);
    rc |= set_uint(d, "USB Address", info->address);
    rc |= set_uint(d, "USBSpeed", info->speed);
    rc |= set_uint(d, "Device Speed", info->speed);
    rc |= set_uint(d, "USBPortType", info->port_type);
    if (cfg)
        rc |= set_uint(d, "kUSBCurrentConfiguration", cfg->bConfigurationValue);
    if (info->manufacturer)
        rc |= set_str(d, "USB Vendor Name", info->manufacturer);
    if (info->product)
        rc |= set_str(d, "USB Product Name", info->product);
    if (info->serial)
        rc |= set_str(d, "USB Serial Number", info->serial);
    return rc ? SYSEXT_ENOMEM : 0;
}

static int interface_props(const sx_usb_device_descriptor *dd, const sx_usb_config_info *cfg,
                           const sx_usb_interface_info *ii, plist_t d)
{
    int rc = 0;
    rc |= set_uint(d, "bInterfaceNumber", ii->bInterfaceNumber);
    rc |= set_uint(d, "bAlternateSetting", ii->bAlternateSetting);
    rc |= set_uint(d, "bConfigurationValue", cfg->bConfigurationValue);
    rc |= set_uint(d, "bInterfaceClass", ii->bInterfaceClass);
    rc |= set_uint(d, "bInterfaceSubClass", ii->bInterfaceSubClass);
    rc |= set_uint(d, "bInterfaceProtocol", ii->bInterfaceProtocol);
    rc |= set_uint(d, "bNumEndpoints", ii->bNumEndpoints);
    rc |= set_uint(d, "iInterface", ii->iInterface);
    rc |= set_uint(d, "idVendor", dd->idVendor);
    rc |= set_uint(d, "idProduct", dd->idProduct);
    rc |= set_uint(d, "bcdDevice", dd->bcdDevice);
    return rc ? SYSEXT_ENOMEM : 0;
}

int sx_registry_add_usb_device(sx_registry *reg, const sx_usb_device_info *info, sx_nub **out)
{
    SX_ASSERT_ARG(reg);
    SX_ASSERT_ARG(info);
    SX_ASSERT_ARG(info->device);
    if (out)
        *out = NULL;
    sx_usb_config_info cfg;
    const sx_usb_config_info *pcfg = NULL;
    if (info->config) {
        int rc = sx_usb_parse_config_descriptor(info->config, info->config_len, &cfg);
        if (rc < 0)
            return rc;
        pcfg = &cfg;
    }
    size_t need = 1 + (pcfg ? pcfg->n_interfaces : 0);
    if (reg->count + need > SX_REGISTRY_MAX_NUBS)
        return sx_err(SYSEXT_ELIMIT, "registry: more than %d entries", SX_REGISTRY_MAX_NUBS);
    if (sx_registry_find_usb_device(reg, info->location_id))
        return sx_err(SYSEXT_EEXISTS, "registry: a USB device at locationID 0x%08x exists",
                      info->location_id);

    plist_t props = plist_new_dict();
    if (!props)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    int rc = device_props(info, pcfg, props);
    if (rc < 0) {
        plist_free(props);
        return sx_err(rc, "out of memory");
    }
    sx_nub *dev = NULL;
    const char *name = info->product && *info->product ? info->product : "IOUSBHostDevice";
    rc = nub_new(reg, reg->root, "IOUSBHostDevice", name, props, &dev);
    plist_free(props);
    if (rc < 0)
        return rc;
    char loc[16];
    snprintf(loc, sizeof(loc), "%08x", info->location_id);
    dev->location = strdup(loc);
    if (!dev->location) {
        rc = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; pcfg && i < pcfg->n_interfaces; i++) {
        const sx_usb_interface_info *ii = &pcfg->interfaces[i];
        plist_t ip = plist_new_dict();
        if (!ip) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto fail;
        }
        rc = interface_props(info->device, pcfg, ii, ip);
        sx_nub *in = NULL;
        if (rc == 0)
            rc = nub_new(reg, dev, "IOUSBHostInterface", "IOUSBHostInterface", ip, &in);
        else
            rc = sx_err(rc, "out of memory");
        plist_free(ip);
        if (rc < 0)
            goto fail;
        snprintf(loc, sizeof(loc), "%u", ii->bInterfaceNumber);
        in->location = strdup(loc);
        if (!in->location) {
            rc = sx_err(SYSEXT_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (out)
        *out = dev;
    return 0;
fail:
    /* Unlink the half-built device from the root (it is the last child). */
    reg->root->n_children--;
    nub_free(dev);
    return rc;
}

sx_nub *sx_registry_find_usb_device(const sx_registry *reg, uint32_t location_id)
{
    if (!reg)
        return NULL;
    for (size_t i = 0; i < reg->root->n_children; i++) {
        sx_nub *n = reg->root->children[i];
        uint64_t loc;
        if (!(n->state & SX_NUB_TERMINATED) && strcmp(n->class_name, "IOUSBHostDevice") == 0 &&
            sx_nub_get_uint(n, "locationID", &loc) && loc == location_id)
            return n;
    }
    return NULL;
}

static void mark_terminated(sx_nub *n)
{
    n->state |= SX_NUB_TERMINATED;
    n->state &= ~(unsigned)SX_NUB_REGISTERED;
    for (size_t i = 0; i < n->n_children; i++)
        mark_terminated(n->children[i]);
}

int sx_registry_terminate(sx_registry *reg, sx_nub *nub)
{
    SX_ASSERT_ARG(reg);
    SX_ASSERT_ARG(nub);
    if (nub == reg->root || nub == reg->resources || nub == reg->user_resources)
        return sx_err(SYSEXT_EINVAL, "registry: %s (id 0x%llx) cannot be terminated", nub->name,
                      (unsigned long long)nub->id);
    if (nub->registry != reg)
        return sx_err(SYSEXT_EINVAL, "registry: nub 0x%llx belongs to another registry",
                      (unsigned long long)nub->id);
    mark_terminated(nub);
    return 0;
}

static void reap(sx_nub *n)
{
    size_t w = 0;
    for (size_t i = 0; i < n->n_children; i++) {
        sx_nub *c = n->children[i];
        if (c->state & SX_NUB_TERMINATED) {
            nub_free(c);
        } else {
            reap(c);
            n->children[w++] = c;
        }
    }
    n->n_children = w;
}

void sx_registry_reap(sx_registry *reg)
{
    if (reg)
        reap(reg->root);
}

static sx_binding *find_binding(const sx_nub *nub, const char *category)
{
    if (!category)
        category = SX_DEFAULT_MATCH_CATEGORY;
    for (size_t i = 0; i < nub->n_bindings; i++)
        if (strcmp(nub->bindings[i].category, category) == 0)
            return &nub->bindings[i];
    return NULL;
}

const sx_binding *sx_nub_driver(const sx_nub *nub, const char *category)
{
    return nub ? find_binding(nub, category) : NULL;
}

int sx_nub_set_driver_state(sx_nub *nub, const char *category, const char *state)
{
    SX_ASSERT_ARG(nub);
    SX_ASSERT_ARG(state);
    sx_binding *b = find_binding(nub, category);
    if (!b)
        return sx_err(SYSEXT_ENOTFOUND, "registry: %s (id 0x%llx) has no driver in category %s",
                      nub->name, (unsigned long long)nub->id,
                      category ? category : SX_DEFAULT_MATCH_CATEGORY);
    char *s = strdup(state);
    if (!s)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    free(b->state);
    b->state = s;
    return 0;
}

bool sx_nub_get_uint(const sx_nub *nub, const char *key, uint64_t *out)
{
    plist_t v = nub ? plist_dict_get_item(nub->props, key) : NULL;
    if (!v || plist_get_node_type(v) != PLIST_UINT)
        return false;
    plist_get_uint_val(v, out);
    return true;
}

int sx_nub_bind(sx_nub *nub, const sx_binding *b)
{
    sx_binding *existing = find_binding(nub, b->category);
    sx_binding copy;
    int rc = sx_binding_copy(&copy, b);
    if (rc < 0)
        return rc;
    if (existing) {
        sx_binding_clear(existing);
        *existing = copy;
    } else {
        sx_binding *nb = reallocarray(nub->bindings, nub->n_bindings + 1, sizeof(*nb));
        if (!nb) {
            sx_binding_clear(&copy);
            return sx_err(SYSEXT_ENOMEM, "out of memory");
        }
        nub->bindings = nb;
        nub->bindings[nub->n_bindings++] = copy;
    }
    nub->state |= SX_NUB_MATCHED;
    return 0;
}

void sx_nub_unbind(sx_nub *nub, size_t index)
{
    if (index >= nub->n_bindings)
        return;
    sx_binding_clear(&nub->bindings[index]);
    memmove(&nub->bindings[index], &nub->bindings[index + 1],
            (nub->n_bindings - index - 1) * sizeof(*nub->bindings));
    nub->n_bindings--;
    if (!nub->n_bindings)
        nub->state &= ~(unsigned)SX_NUB_MATCHED;
}

/* ---- snapshot ------------------------------------------------------------------------- */

#define SNAP_MAX_DEPTH 64

static plist_t binding_plist(const sx_binding *b)
{
    plist_t d = plist_new_dict();
    if (!d)
        return NULL;
    int rc = 0;
    rc |= set_str(d, "IOMatchCategory", b->category);
    rc |= set_str(d, "CFBundleIdentifier", b->bundle_id);
    rc |= set_str(d, "CFBundleVersion", b->bundle_version);
    rc |= set_str(d, "IOPersonalityName", b->personality);
    rc |= set_str(d, "IOUserServerName", b->server_name);
    rc |= set_str(d, "IOUserClass", b->user_class);
    rc |= set_str(d, "IOClass", b->io_class);
    rc |= set_str(d, "State", b->state);
    rc |= set_uint(d, "MatchScore", b->score > 0 ? (uint64_t)b->score : 0); /* doc: clamped */
    if (rc) {
        plist_free(d);
        return NULL;
    }
    return d;
}

static plist_t nub_plist(const sx_nub *n, int depth)
{
    if (depth > SNAP_MAX_DEPTH)
        return NULL;
    plist_t d = plist_new_dict();
    plist_t drivers = plist_new_array();
    plist_t children = plist_new_array();
    plist_t props = plist_copy(n->props);
    if (!d || !drivers || !children || !props)
        goto fail;
    int rc = 0;
    rc |= set_str(d, "IORegistryEntryName", n->name);
    rc |= set_str(d, "IOObjectClass", n->class_name);
    rc |= set_uint(d, "IORegistryEntryID", n->id);
    if (n->location)
        rc |= set_str(d, "IORegistryEntryLocation", n->location);
    plist_dict_set_item(d, "Registered", plist_new_bool(!!(n->state & SX_NUB_REGISTERED)));
    plist_dict_set_item(d, "Matched", plist_new_bool(!!(n->state & SX_NUB_MATCHED)));
    plist_dict_set_item(d, "Terminated", plist_new_bool(!!(n->state & SX_NUB_TERMINATED)));
    rc |= set_uint(d, "BusyState", 0);
    if (rc)
        goto fail;
    for (size_t i = 0; i < n->n_bindings; i++) {
        plist_t b = binding_plist(&n->bindings[i]);
        if (!b)
            goto fail;
        plist_array_append_item(drivers, b);
    }
    for (size_t i = 0; i < n->n_children; i++) {
        plist_t c = nub_plist(n->children[i], depth + 1);
        if (!c)
            goto fail;
        plist_array_append_item(children, c);
    }
    plist_dict_set_item(d, "IORegistryEntryProperties", props);
    plist_dict_set_item(d, "IORegistryEntryDrivers", drivers);
    plist_dict_set_item(d, "IORegistryEntryChildren", children);
    return d;
fail:
    plist_free(d);
    plist_free(drivers);
    plist_free(children);
    plist_free(props);
    return NULL;
}

int sx_registry_snapshot(const sx_registry *reg, plist_t *out)
{
    SX_ASSERT_ARG(reg);
    SX_ASSERT_ARG(out);
    *out = NULL;
    plist_t root = nub_plist(reg->root, 0);
    if (!root)
        return sx_err(SYSEXT_ENOMEM, "registry snapshot: out of memory or tree deeper than %d",
                      SNAP_MAX_DEPTH);
    plist_t doc = plist_new_dict();
    if (!doc) {
        plist_free(root);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    plist_dict_set_item(doc, "SXRegistrySnapshotVersion", plist_new_uint(1));
    plist_dict_set_item(doc, "IORegistryRoot", root);
    *out = doc;
    return 0;
}

int sx_registry_snapshot_bin(const sx_registry *reg, uint8_t **out, size_t *out_len)
{
    SX_ASSERT_ARG(out);
    SX_ASSERT_ARG(out_len);
    *out = NULL;
    *out_len = 0;
    plist_t doc = NULL;
    int rc = sx_registry_snapshot(reg, &doc);
    if (rc < 0)
        return rc;
    char *bin = NULL;
    uint32_t len = 0;
    plist_to_bin(doc, &bin, &len);
    plist_free(doc);
    if (!bin)
        return sx_err(SYSEXT_ENOMEM, "registry snapshot: binary plist encoding failed");
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        plist_to_bin_free(bin);
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    }
    memcpy(copy, bin, len);
    plist_to_bin_free(bin);
    *out = copy;
    *out_len = len;
    return 0;
}
