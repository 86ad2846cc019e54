/* Entitlement blobs (reference section 4): XML (0xfade7171) and DER (0xfade7172). */
#ifndef SX_CS_ENTITLEMENTS_H
#define SX_CS_ENTITLEMENTS_H

#include <plist/plist.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* The XML blob: magic, length, then the plist XML exactly as given (the bytes of the user's
 * entitlements file are kept, as codesign does). */
int sx_ent_xml_blob(const uint8_t *xml, size_t len, sx_buf *out);
/* The DER blob: Apple's DER encoding of the same dictionary (reference 4.2). */
int sx_ent_der_blob(plist_t dict, sx_buf *out);
/* Parse either blob back into a dictionary (caller frees with plist_free). */
int sx_ent_parse_xml_blob(const uint8_t *blob, size_t len, plist_t *out);
int sx_ent_parse_der_blob(const uint8_t *blob, size_t len, plist_t *out);

#endif
