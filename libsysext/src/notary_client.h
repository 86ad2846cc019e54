/* Internal: the notary client's ticket lookup, used by sysext_assess --online. */
#ifndef SX_NOTARY_CLIENT_H
#define SX_NOTARY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codesign/hash.h"

/* GET {server}/v1/tickets/{cdhash}: 0 with the ticket (*revoked false) or with *revoked true
 * (no ticket); SYSEXT_ENOTFOUND when the notary has none; SYSEXT_ENETWORK / SYSEXT_EPROTO. */
int sx_notary_fetch_ticket(const char *server, const uint8_t cdhash[SX_CDHASH_LEN],
                           unsigned retries, uint8_t **ticket, size_t *len, bool *revoked);

#endif
