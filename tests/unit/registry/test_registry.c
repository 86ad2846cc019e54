/* The registry: descriptor parsing (with malformed inputs), nubs and their properties,
 * termination. */
#include <criterion/criterion.h>

#include "util/common.h"
#include "tests/unit/registry/registry_fixture.h"

TestSuite(registry);

static uint64_t prop(const sx_nub *n, const char *key)
{
    uint64_t v = 0;
    cr_assert(sx_nub_get_uint(n, key, &v), "%s has %s", n->name, key);
    return v;
}

Test(registry, device_descriptor_parses_and_rejects)
{
    uint8_t b[18];
    sx_usb_device_descriptor d;
    fx_device_bytes(b, 0x05ac, 0x1234, 0x0210, 0xff, 1, 2);
    cr_assert_eq(sx_usb_parse_device_descriptor(b, 18, &d), 0, "%s", sx_errmsg());
    cr_assert_eq(d.idVendor, 0x05ac);
    cr_assert_eq(d.idProduct, 0x1234);
    cr_assert_eq(d.bcdDevice, 0x0210);
    cr_assert_eq(d.bcdUSB, 0x0200);
    cr_assert_eq(d.bDeviceClass, 0xff);
    cr_assert_eq(sx_usb_parse_device_descriptor(b, 17, &d), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "17 bytes, expected 18"), "%s", sx_errmsg());
    b[0] = 12;
    cr_assert_eq(sx_usb_parse_device_descriptor(b, 18, &d), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "bLength 12, expected 18"), "%s", sx_errmsg());
    b[0] = 18;
    b[1] = 2;
    cr_assert_eq(sx_usb_parse_device_descriptor(b, 18, &d), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 1: bDescriptorType 2"), "%s", sx_errmsg());
}

Test(registry, config_descriptor_interfaces_and_alternates)
{
    uint8_t buf[512];
    const fx_iface ifs[] = {{0, 0xff, 1, 2, 2}, {1, 0x03, 1, 1, 0}};
    size_t len = fx_config(buf, sizeof(buf), 1, ifs, 2);
    sx_usb_config_info c;
    cr_assert_eq(sx_usb_parse_config_descriptor(buf, len, &c), 0, "%s", sx_errmsg());
    cr_assert_eq(c.wTotalLength, len);
    cr_assert_eq(c.bConfigurationValue, 1);
    cr_assert_eq(c.n_interfaces, 2);
    cr_assert_eq(c.interfaces[0].alternate_settings, 3);
    cr_assert_eq(c.interfaces[1].bInterfaceClass, 3);
    cr_assert_eq(c.interfaces[1].alternate_settings, 1);
    /* Trailing bytes after wTotalLength are ignored. */
    cr_assert_eq(sx_usb_parse_config_descriptor(buf, len + 5, &c), 0);
}

static int parse_err(const uint8_t *buf, size_t len)
{
    sx_usb_config_info c;
    return sx_usb_parse_config_descriptor(buf, len, &c);
}

Test(registry, malformed_config_descriptors_give_precise_errors)
{
    uint8_t buf[2048];
    const fx_iface ifs[] = {{0, 0xff, 1, 2, 0}, {1, 0x03, 1, 1, 0}};
    size_t len = fx_config(buf, sizeof(buf), 1, ifs, 2);

    cr_assert_eq(parse_err(buf, 8), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "8 bytes, expected at least 9"), "%s", sx_errmsg());

    /* wTotalLength larger than what was received */
    cr_assert_eq(parse_err(buf, len - 1), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 2: wTotalLength 41 exceeds the 40 bytes"), "%s",
              sx_errmsg());

    /* the header type */
    buf[1] = 4;
    cr_assert_eq(parse_err(buf, len), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 1: bDescriptorType 4, expected 2"), "%s", sx_errmsg());
    buf[1] = 2;

    /* an interface descriptor's bLength runs past wTotalLength (the second interface at 25) */
    buf[25] = 40;
    cr_assert_eq(parse_err(buf, len), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 25: bLength 40 runs past wTotalLength 41"), "%s",
              sx_errmsg());
    /* bLength 0 would loop forever */
    buf[25] = 0;
    cr_assert_eq(parse_err(buf, len), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 25: bLength 0 is below 2"), "%s", sx_errmsg());
    /* an interface descriptor too short for its fields */
    buf[25] = 5;
    cr_assert_eq(parse_err(buf, len), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 25: interface descriptor bLength 5"), "%s", sx_errmsg());
    buf[25] = 9;

    /* bNumInterfaces disagrees */
    buf[4] = 3;
    cr_assert_eq(parse_err(buf, len), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "bNumInterfaces 3, but 2 interface(s) found"), "%s",
              sx_errmsg());
    buf[4] = 2;
    /* a duplicate interface number */
    buf[27] = 0;
    cr_assert_eq(parse_err(buf, len), SYSEXT_EFORMAT);
    cr_assert(strstr(sx_errmsg(), "offset 25: interface 0 declared twice"), "%s", sx_errmsg());
    buf[27] = 1;
    cr_assert_eq(parse_err(buf, len), 0, "%s", sx_errmsg());

    /* too many interfaces */
    fx_iface many[40];
    for (int i = 0; i < 40; i++)
        many[i] = (fx_iface){(uint8_t)i, 0xff, 0, 0, 0};
    len = fx_config(buf, sizeof(buf), 1, many, 33);
    cr_assert_eq(parse_err(buf, len), SYSEXT_ELIMIT);
    cr_assert(strstr(sx_errmsg(), "bNumInterfaces 33 exceeds the limit of 32"), "%s", sx_errmsg());
    buf[4] = 32; /* lying about the count does not get past the limit */
    cr_assert_eq(parse_err(buf, len), SYSEXT_ELIMIT);
    cr_assert(strstr(sx_errmsg(), "more than 32 interfaces"), "%s", sx_errmsg());
}

Test(registry, new_registry_has_resources)
{
    sx_registry *reg = NULL;
    cr_assert_eq(sx_registry_new(&reg), 0);
    sx_nub *root = sx_registry_root(reg);
    cr_assert_str_eq(root->class_name, "IORegistryEntry");
    cr_assert_eq(root->id, SX_REGISTRY_FIRST_ID);
    cr_assert_eq(root->n_children, 2);
    cr_assert_str_eq(sx_registry_resources(reg)->class_name, "IOResources");
    cr_assert_str_eq(sx_registry_user_resources(reg)->class_name, "IOUserResources");
    cr_assert_not_null(plist_dict_get_item(sx_registry_resources(reg)->props, "IOKit"));
    cr_assert_eq(sx_registry_terminate(reg, root), SYSEXT_EINVAL);
    cr_assert_eq(sx_registry_unpublish_resource(reg, "Nope"), SYSEXT_ENOTFOUND);
    cr_assert_eq(sx_registry_count(reg), 3);
    sx_registry_free(reg);
}

Test(registry, usb_device_nub_and_interfaces)
{
    sx_registry *reg = NULL;
    cr_assert_eq(sx_registry_new(&reg), 0);
    sx_usb_device_descriptor dd = fx_device(0x1209, 0x0001, 0x0100, 0, 0, 0);
    uint8_t cfg[256];
    const fx_iface ifs[] = {{0, 0xff, 0x5d, 0x01, 1}, {2, 0x0a, 0, 0, 0}};
    size_t cl = fx_config(cfg, sizeof(cfg), 3, ifs, 2);
    sx_usb_device_info info = {.device = &dd, .config = cfg, .config_len = cl,
                               .location_id = 0x14100000, .address = 5,
                               .speed = SX_USB_SPEED_HIGH, .product = "Sensor",
                               .serial = "ABC"};
    sx_nub *dev = NULL;
    cr_assert_eq(sx_registry_add_usb_device(reg, &info, &dev), 0, "%s", sx_errmsg());
    cr_assert_str_eq(dev->class_name, "IOUSBHostDevice");
    cr_assert_str_eq(dev->name, "Sensor");
    cr_assert_str_eq(dev->location, "14100000");
    cr_assert_eq(prop(dev, "idVendor"), 0x1209);
    cr_assert_eq(prop(dev, "idProduct"), 1);
    cr_assert_eq(prop(dev, "bcdDevice"), 0x100);
    cr_assert_eq(prop(dev, "bMaxPacketSize0"), 64);
    cr_assert_eq(prop(dev, "iSerialNumber"), 3);
    cr_assert_eq(prop(dev, "bNumConfigurations"), 1);
    cr_assert_eq(prop(dev, "locationID"), 0x14100000);
    cr_assert_eq(prop(dev, "USB Address"), 5);
    cr_assert_eq(prop(dev, "USBSpeed"), 2);
    cr_assert_str_eq(plist_get_string_ptr(plist_dict_get_item(dev->props, "USB Serial Number"),
                                          NULL), "ABC");
    cr_assert_null(plist_dict_get_item(dev->props, "USB Vendor Name"));
    cr_assert_eq(dev->n_children, 2);
    sx_nub *i1 = dev->children[1];
    cr_assert_str_eq(i1->class_name, "IOUSBHostInterface");
    cr_assert_str_eq(i1->location, "2");
    cr_assert_eq(prop(i1, "bInterfaceNumber"), 2);
    cr_assert_eq(prop(i1, "bAlternateSetting"), 0);
    cr_assert_eq(prop(i1, "bConfigurationValue"), 3);
    cr_assert_eq(prop(i1, "bInterfaceClass"), 0x0a);
    cr_assert_eq(prop(i1, "bNumEndpoints"), 1);
    cr_assert_eq(prop(i1, "idVendor"), 0x1209);
    cr_assert_eq(prop(i1, "idProduct"), 1);
    cr_assert_eq(prop(i1, "bcdDevice"), 0x100);
    cr_assert_eq(sx_registry_count(reg), 6);
    cr_assert_eq(sx_registry_find(reg, i1->id), i1);
    cr_assert_eq(sx_registry_find_usb_device(reg, 0x14100000), dev);

    /* the same port twice */
    cr_assert_eq(sx_registry_add_usb_device(reg, &info, NULL), SYSEXT_EEXISTS);
    /* a malformed configuration adds nothing */
    info.location_id = 0x14200000;
    info.config_len = cl - 1;
    cr_assert_eq(sx_registry_add_usb_device(reg, &info, NULL), SYSEXT_EFORMAT);
    cr_assert_eq(sx_registry_count(reg), 6);
    /* unconfigured: the device only */
    info.config = NULL;
    info.product = NULL;
    sx_nub *d2 = NULL;
    cr_assert_eq(sx_registry_add_usb_device(reg, &info, &d2), 0);
    cr_assert_str_eq(d2->name, "IOUSBHostDevice");
    cr_assert_eq(d2->n_children, 0);
    cr_assert_gt(d2->id, i1->id);

    /* unplug: terminated with the interfaces, freed by the rematch */
    uint64_t gone = i1->id;
    cr_assert_eq(sx_registry_terminate(reg, dev), 0);
    cr_assert(i1->state & SX_NUB_TERMINATED);
    cr_assert_null(sx_registry_find_usb_device(reg, 0x14100000));
    cr_assert_eq(sx_registry_rematch(reg, NULL, NULL, NULL), 0);
    cr_assert_null(sx_registry_find(reg, gone));
    cr_assert_eq(sx_registry_count(reg), 4);
    sx_registry_free(reg);
}

Test(registry, snapshot_is_a_binary_plist_of_the_tree)
{
    sx_registry *reg = NULL;
    cr_assert_eq(sx_registry_new(&reg), 0);
    uint8_t *bin = NULL;
    size_t len = 0;
    cr_assert_eq(sx_registry_snapshot_bin(reg, &bin, &len), 0);
    cr_assert(len > 8 && memcmp(bin, "bplist00", 8) == 0);
    plist_t doc = NULL;
    plist_from_memory((const char *)bin, (uint32_t)len, &doc);
    cr_assert_not_null(doc);
    plist_t root = plist_dict_get_item(doc, "IORegistryRoot");
    cr_assert_str_eq(plist_get_string_ptr(plist_dict_get_item(root, "IOObjectClass"), NULL),
                     "IORegistryEntry");
    plist_t kids = plist_dict_get_item(root, "IORegistryEntryChildren");
    cr_assert_eq(plist_array_get_size(kids), 2);
    plist_free(doc);
    free(bin);
    sx_registry_free(reg);
}
