/* Matching personalities (IOKitPersonalities entries of enabled extensions) against registry
 * nubs, IOKit style, with Apple's USB matching rules.
 *
 * For one personality and one nub (sx_match_personality):
 *  1. IOProviderClass must be a string equal to the nub's class (exactly: no superclasses).
 *  2. IOResourceMatch, if present, must be a string naming a resource published on IOResources.
 *  3. IOPropertyMatch, if present, must be a dictionary whose every key is present in the nub's
 *     properties with an equal value.
 *  4. On IOUSBHostDevice / IOUSBHostInterface nubs, the USB keys of the personality must form
 *     exactly one of the rows of the precedence table (reference 8.5), all values integers, each
 *     equal to the nub's property; the row's score is the base score:
 *       device:    idVendor+idProduct+bcdDevice 100000; idVendor+idProduct 90000;
 *                  idVendor+bDeviceSubClass+bDeviceProtocol 80000 and idVendor+bDeviceSubClass
 *                  70000 (only when the device's bDeviceClass is 0xFF; the personality may add
 *                  bDeviceClass = 0xFF); bDeviceClass+bDeviceSubClass+bDeviceProtocol 60000 and
 *                  bDeviceClass+bDeviceSubClass 50000 (only when bDeviceClass is not 0xFF).
 *       interface: idVendor+idProduct+bInterfaceNumber+bConfigurationValue+bcdDevice 100000;
 *                  without bcdDevice 90000; idVendor+bInterfaceSubClass+bInterfaceProtocol
 *                  80000 and idVendor+bInterfaceSubClass 70000 (only when bInterfaceClass is
 *                  0xFF; the personality may add bInterfaceClass = 0xFF);
 *                  bInterfaceClass+bInterfaceSubClass+bInterfaceProtocol 60000 and
 *                  bInterfaceClass+bInterfaceSubClass 50000 (only when bInterfaceClass != 0xFF).
 *     idProductArray (array of integers, the nub's idProduct must be one of them) stands for
 *     idProduct; idProductMask (needs idProduct) compares (idProduct & mask). USBSpeed and
 *     USBPortType may be added to any row (+100 each when equal; for an interface, the device's
 *     values). Any other USB key, a missing key of the row, or a non-integer value: no match.
 *     A USB nub with no USB key in the personality does not match.
 *     Nubs of other classes ignore USB keys; their base score is 0.
 *  5. score = base + IOProbeScore (an integer, signed; absent = 0; not an integer: no match).
 *  6. category = IOMatchCategory (a string) or "IODefaultMatchCategory".
 *
 * Winner per category (sx_match_nub), deterministic: higher score; then higher base score (the
 * more specific USB row); then the smaller CFBundleIdentifier (strcmp); then the smaller
 * personality name (strcmp); then the earlier in the input order. Several categories give
 * several winners, returned sorted by category name. */
#ifndef SX_REGISTRY_MATCHING_H
#define SX_REGISTRY_MATCHING_H
#include <stddef.h>
#include <stdint.h>
#include <plist/plist.h>

#include "registry/registry.h"

/* One personality of an enabled extension. */
typedef struct sx_personality {
    char *bundle_id;      /* owning extension (CFBundleIdentifier of the bundle) */
    char *bundle_version; /* its CFBundleVersion */
    char *name;           /* the key in IOKitPersonalities */
    plist_t dict;         /* the personality dictionary */
} sx_personality;

/* The personalities of the enabled extensions, by bundle id (one version of each bundle). */
typedef struct sx_personality_set {
    sx_personality *items;
    size_t n;
} sx_personality_set;

typedef struct sx_match {
    const sx_personality *personality; /* borrowed from the input */
    const char *category;              /* borrowed from the personality (or the default) */
    int64_t base_score;                /* USB row score (+ bonuses); 0 for other classes */
    int64_t probe_score;               /* IOProbeScore */
    int64_t score;                     /* base + probe */
} sx_match;

typedef struct sx_match_results {
    sx_match *winners; /* one per category, sorted by category */
    size_t n;
} sx_match_results;

/* 1 and *out filled if `p` matches `nub`, 0 if not, negative on error. */
int sx_match_personality(const sx_nub *nub, const sx_personality *p, sx_match *out);

/* Match all `n` personalities against `nub`; the winners go to `results` (free with
 * sx_match_results_free). Terminated nubs match nothing. */
int sx_match_nub(const sx_nub *nub, const sx_personality *const *personalities, size_t n,
                 sx_match_results *results);
void sx_match_results_free(sx_match_results *r);

/* Compare two matches with the tie rule above: < 0 when `a` wins. */
int sx_match_compare(const sx_match *a, const sx_match *b);

void sx_personality_set_init(sx_personality_set *set);
void sx_personality_set_free(sx_personality_set *set);
/* Add (or replace, for an upgrade: every personality of the same bundle id goes first) the
 * personalities of one extension. `personalities` is its IOKitPersonalities dictionary (copied);
 * entries that are not dictionaries are skipped. */
int sx_personality_set_add_bundle(sx_personality_set *set, const char *bundle_id,
                                  const char *bundle_version, plist_t personalities);
/* Remove a bundle's personalities; ENOTFOUND if it has none in the set. */
int sx_personality_set_remove_bundle(sx_personality_set *set, const char *bundle_id);

/* Called by sx_registry_rematch for every change of a nub's driver in one category:
 * gained (previous NULL), replaced (both set) or lost (winner NULL). Pointers are valid during
 * the call only. For a lost driver of a terminated nub, the nub is freed after the rematch. */
typedef void (*sx_rematch_cb)(void *ctx, const sx_nub *nub, const sx_binding *winner,
                              const sx_binding *previous);

/* Bring every nub's drivers in line with `set`: terminated nubs lose theirs (and are freed),
 * registered nubs get the winner of each category, replacing a different one (another
 * personality, bundle or version: an upgrade re-binds the nub to the new version) and dropping
 * categories that no longer match. A driver keeps its state string when the binding is
 * unchanged. Walks the tree in pre-order, categories sorted. */
int sx_registry_rematch(sx_registry *reg, const sx_personality_set *set, sx_rematch_cb cb,
                        void *ctx);
#endif
