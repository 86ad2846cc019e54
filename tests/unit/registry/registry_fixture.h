/* Shared helpers of the registry tests: descriptor builders and personality dictionaries. */
#ifndef SX_TESTS_REGISTRY_FIXTURE_H
#define SX_TESTS_REGISTRY_FIXTURE_H
#include <plist/plist.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/matching.h"
#include "registry/registry.h"

typedef struct fx_iface {
    uint8_t number, cls, sub, proto, n_alts;
} fx_iface;

/* 18 raw bytes of a device descriptor. */
void fx_device_bytes(uint8_t out[18], uint16_t vid, uint16_t pid, uint16_t bcd, uint8_t cls,
                     uint8_t sub, uint8_t proto);
sx_usb_device_descriptor fx_device(uint16_t vid, uint16_t pid, uint16_t bcd, uint8_t cls,
                                   uint8_t sub, uint8_t proto);
/* A configuration descriptor with the interfaces (each with n_alts extra alternate settings
 * and one bulk endpoint per setting); returns its length. */
size_t fx_config(uint8_t *buf, size_t cap, uint8_t value, const fx_iface *ifaces, size_t n);

/* A dictionary from "s:Key", "string" / "u:Key", int / "a:Key", count, ints... pairs, NULL
 * terminated. */
plist_t fx_dict(const char *first, ...);
/* A personality (owned strings) built from fx_dict(...). */
sx_personality fx_personality(const char *bundle, const char *version, const char *name,
                              plist_t dict);
void fx_personality_free(sx_personality *p);
#endif
