/* The IOService-style registry of nubs (providers) that drivers match against.
 *
 * A tree rooted at "Root" (IORegistryEntry) with two resource nubs created up front,
 * IOResources (its properties are the published resources, "IOKit" among them) and
 * IOUserResources (the provider of virtual dexts), and one IOUSBHostDevice nub per attached
 * device with one IOUSBHostInterface child per interface of its active configuration.
 *
 * Each nub carries a class, a name, a registry id (u64, unique, never reused), a property
 * dictionary (plist), a state (registered / matched / terminated) and the drivers bound to it,
 * one per IOMatchCategory. Matching lives in registry/matching.h; the rendering of snapshots in
 * registry/ioreg.c (public: sysext/ioreg.h).
 *
 * Not thread-safe: the owner (the daemon) serialises access. */
#ifndef SX_REGISTRY_REGISTRY_H
#define SX_REGISTRY_REGISTRY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <plist/plist.h>

/* Limits on what one device may declare. */
#define SX_USB_MAX_INTERFACES 32          /* distinct interfaces of a configuration */
#define SX_USB_MAX_INTERFACE_DESCRIPTORS 256 /* interface descriptors, alternate settings included */
#define SX_REGISTRY_MAX_NUBS 4096

/* Registry ids start here (like the kernel's) and grow by one per entry. */
#define SX_REGISTRY_FIRST_ID UINT64_C(0x100000100)

#define SX_DEFAULT_MATCH_CATEGORY "IODefaultMatchCategory"

/* USB speeds, as IOUSBHostFamily's USBSpeed property (kUSBHostSpeed*). */
enum { SX_USB_SPEED_LOW = 0, SX_USB_SPEED_FULL = 1, SX_USB_SPEED_HIGH = 2, SX_USB_SPEED_SUPER = 3,
       SX_USB_SPEED_SUPER_PLUS = 4 };

/* A USB device descriptor (USB 2.0 9.6.1), fields in host byte order. */
typedef struct sx_usb_device_descriptor {
    uint8_t bLength, bDescriptorType;
    uint16_t bcdUSB;
    uint8_t bDeviceClass, bDeviceSubClass, bDeviceProtocol, bMaxPacketSize0;
    uint16_t idVendor, idProduct, bcdDevice;
    uint8_t iManufacturer, iProduct, iSerialNumber, bNumConfigurations;
} sx_usb_device_descriptor;

/* One interface (alternate setting 0) of a configuration. */
typedef struct sx_usb_interface_info {
    uint8_t bInterfaceNumber, bAlternateSetting, bNumEndpoints;
    uint8_t bInterfaceClass, bInterfaceSubClass, bInterfaceProtocol, iInterface;
    uint8_t alternate_settings; /* how many alternate settings the configuration declares */
} sx_usb_interface_info;

/* A parsed configuration descriptor with its interfaces (alternate setting 0 of each, in
 * descriptor order). */
typedef struct sx_usb_config_info {
    uint16_t wTotalLength;
    uint8_t bNumInterfaces, bConfigurationValue, iConfiguration, bmAttributes, bMaxPower;
    size_t n_interfaces;
    sx_usb_interface_info interfaces[SX_USB_MAX_INTERFACES];
} sx_usb_config_info;

/* Parse the 18-byte device descriptor. EFORMAT with the offset when short or mistyped. */
int sx_usb_parse_device_descriptor(const void *data, size_t len, sx_usb_device_descriptor *out);

/* Parse a full configuration descriptor (wTotalLength bytes, with its interface, endpoint and
 * class descriptors). Checks: header type and length, wTotalLength within `len` and not below
 * the header, every descriptor's bLength (>= 2 and inside wTotalLength; interface descriptors
 * >= 9), bNumInterfaces against the interfaces found, no duplicate interface number.
 * EFORMAT naming the byte offset, or ELIMIT past SX_USB_MAX_INTERFACES. */
int sx_usb_parse_config_descriptor(const void *data, size_t len, sx_usb_config_info *out);

typedef enum sx_nub_state {
    SX_NUB_REGISTERED = 1u << 0,
    SX_NUB_MATCHED = 1u << 1, /* at least one driver bound */
    SX_NUB_TERMINATED = 1u << 2,
} sx_nub_state;

/* A driver bound to a nub (one per match category). All strings owned by the nub. */
typedef struct sx_binding {
    char *category;       /* IOMatchCategory, SX_DEFAULT_MATCH_CATEGORY by default */
    char *bundle_id;      /* the extension's CFBundleIdentifier */
    char *bundle_version; /* its CFBundleVersion, "" if unknown */
    char *personality;    /* the IOKitPersonalities key */
    char *server_name;    /* IOUserServerName, "" if absent */
    char *user_class;     /* IOUserClass, "" if absent */
    char *io_class;       /* IOClass, "" if absent */
    char *state;          /* process state, set by the owner ("matched" on binding) */
    int64_t score;        /* the winning match score */
} sx_binding;

typedef struct sx_registry sx_registry;
typedef struct sx_nub sx_nub;

struct sx_nub {
    sx_registry *registry;
    sx_nub *parent;
    sx_nub **children;
    size_t n_children, cap_children;
    char *class_name;
    char *name;
    char *location; /* "14100000" for a device (locationID in hex), "0" for interface 0; or NULL */
    uint64_t id;
    unsigned state; /* sx_nub_state bits */
    plist_t props;  /* dictionary, owned */
    sx_binding *bindings;
    size_t n_bindings;
};

/* Describes one attached USB device for sx_registry_add_usb_device. */
typedef struct sx_usb_device_info {
    const sx_usb_device_descriptor *device; /* required */
    const void *config;     /* the active configuration descriptor, NULL if unconfigured */
    size_t config_len;
    uint32_t location_id;
    uint8_t address;        /* USB Address */
    uint8_t speed;          /* SX_USB_SPEED_* */
    uint8_t port_type;      /* USBPortType (0 = standard) */
    const char *manufacturer, *product, *serial; /* string descriptors, each may be NULL */
} sx_usb_device_info;

/* A registry with Root, IOResources (publishing "IOKit") and IOUserResources. Free with
 * sx_registry_free. */
int sx_registry_new(sx_registry **out);
void sx_registry_free(sx_registry *reg);

sx_nub *sx_registry_root(const sx_registry *reg);
sx_nub *sx_registry_resources(const sx_registry *reg);      /* IOResources */
sx_nub *sx_registry_user_resources(const sx_registry *reg); /* IOUserResources */
size_t sx_registry_count(const sx_registry *reg);
/* The nub with this id, or NULL (terminated nubs are found until the next rematch reaps them). */
sx_nub *sx_registry_find(const sx_registry *reg, uint64_t id);

/* Add a generic registered nub under `parent` (NULL: the root). `props` is copied (may be NULL).
 * The new nub is borrowed through *out (may be NULL). */
int sx_registry_add_nub(sx_registry *reg, sx_nub *parent, const char *class_name, const char *name,
                        plist_t props, sx_nub **out);

/* Publish / withdraw a resource name on IOResources (what IOResourceMatch looks for). A
 * rematch afterwards binds or unbinds the personalities that wait for it. */
int sx_registry_publish_resource(sx_registry *reg, const char *name);
int sx_registry_unpublish_resource(sx_registry *reg, const char *name);

/* Create the IOUSBHostDevice nub (child of the root) and, when `config` is given, one
 * IOUSBHostInterface child per interface of that configuration. The properties are listed in
 * docs/ioreg.md. On a malformed descriptor nothing is added and the parse error is returned.
 * *out borrows the device nub. */
int sx_registry_add_usb_device(sx_registry *reg, const sx_usb_device_info *info, sx_nub **out);

/* The device with this locationID (not terminated), or NULL. */
sx_nub *sx_registry_find_usb_device(const sx_registry *reg, uint32_t location_id);

/* Mark a nub and its whole subtree terminated (unplug). Their drivers are reported lost and
 * the nubs freed by the next sx_registry_rematch. Root and the resource nubs cannot be
 * terminated (EINVAL). */
int sx_registry_terminate(sx_registry *reg, sx_nub *nub);

/* Set the process state string shown for the driver of `category` (NULL: the default
 * category) on `nub`. ENOTFOUND if no such driver is bound. */
int sx_nub_set_driver_state(sx_nub *nub, const char *category, const char *state);

/* The driver bound in `category` (NULL: default), or NULL. */
const sx_binding *sx_nub_driver(const sx_nub *nub, const char *category);

/* Integer property of a nub (plist uint), false if absent or not an integer. */
bool sx_nub_get_uint(const sx_nub *nub, const char *key, uint64_t *out);

/* Internal, for matching.c: bind/unbind. `b` is deep-copied. */
int sx_nub_bind(sx_nub *nub, const sx_binding *b);
void sx_nub_unbind(sx_nub *nub, size_t index);
void sx_binding_clear(sx_binding *b);
int sx_binding_copy(sx_binding *dst, const sx_binding *src);
/* Free the terminated subtrees (after their drivers were reported lost). */
void sx_registry_reap(sx_registry *reg);

/* The registry as a snapshot plist (the format of docs/ioreg.md); new reference in *out. */
int sx_registry_snapshot(const sx_registry *reg, plist_t *out);
/* The same, as binary plist bytes (free() them). */
int sx_registry_snapshot_bin(const sx_registry *reg, uint8_t **out, size_t *out_len);
#endif
