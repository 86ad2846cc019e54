/* Arbitrary bytes as what a USB device reports: the first 18 bytes as its device descriptor,
 * the rest as its active configuration descriptor. Exercises the descriptor parsers, nub
 * creation, matching of a few personalities (device and interface rows), rematch, unplug, and
 * the snapshot + ioreg rendering of the result.
 * Seeds (corpus/fuzz_registry_descriptors/): valid devices, and malformed configurations. */
#include "util/common.h"

#include "registry/matching.h"
#include "registry/registry.h"
#include "sysext/ioreg.h"

static plist_t personalities(void)
{
    plist_t all = plist_new_dict();
    plist_t a = plist_new_dict();
    plist_dict_set_item(a, "IOProviderClass", plist_new_string("IOUSBHostInterface"));
    plist_dict_set_item(a, "bInterfaceClass", plist_new_uint(3));
    plist_dict_set_item(a, "bInterfaceSubClass", plist_new_uint(1));
    plist_dict_set_item(all, "HID", a);
    plist_t b = plist_new_dict();
    plist_dict_set_item(b, "IOProviderClass", plist_new_string("IOUSBHostDevice"));
    plist_dict_set_item(b, "idVendor", plist_new_uint(0x1209));
    plist_dict_set_item(b, "bDeviceSubClass", plist_new_uint(0));
    plist_dict_set_item(all, "Vendor", b);
    plist_t c = plist_new_dict();
    plist_dict_set_item(c, "IOProviderClass", plist_new_string("IOUSBHostInterface"));
    plist_dict_set_item(c, "idVendor", plist_new_uint(0x1209));
    plist_dict_set_item(c, "bInterfaceSubClass", plist_new_uint(0));
    plist_dict_set_item(c, "IOMatchCategory", plist_new_string("Other"));
    plist_dict_set_item(all, "VendorIf", c);
    return all;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sx_usb_device_descriptor dd;
    if (size < 18 || sx_usb_parse_device_descriptor(data, 18, &dd) < 0) {
        sx_usb_config_info ci;
        (void)sx_usb_parse_config_descriptor(data, size, &ci);
        return 0;
    }
    sx_registry *reg = NULL;
    if (sx_registry_new(&reg) < 0)
        return 0;
    sx_usb_device_info info = {.device = &dd, .config = data + 18, .config_len = size - 18,
                               .location_id = 0x14100000, .product = "fuzz"};
    sx_nub *dev = NULL;
    if (sx_registry_add_usb_device(reg, &info, &dev) == 0) {
        sx_personality_set set;
        sx_personality_set_init(&set);
        plist_t ps = personalities();
        (void)sx_personality_set_add_bundle(&set, "com.example.fuzz", "1", ps);
        plist_free(ps);
        (void)sx_registry_rematch(reg, &set, NULL, NULL);
        uint8_t *bin = NULL;
        size_t len = 0;
        if (sx_registry_snapshot_bin(reg, &bin, &len) == 0) {
            char *text = NULL;
            if (sysext_ioreg_render(bin, len, 0, &text) == 0)
                free(text);
            free(bin);
        }
        (void)sx_registry_terminate(reg, dev);
        (void)sx_registry_rematch(reg, &set, NULL, NULL);
        sx_personality_set_free(&set);
    }
    sx_registry_free(reg);
    return 0;
}
