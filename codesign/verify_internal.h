#ifndef SX_CS_VERIFY_INTERNAL_H
#define SX_CS_VERIFY_INTERNAL_H

#include <json-c/json.h>
#include <openssl/x509.h>
#include <plist/plist.h>
#include <stdbool.h>
#include <time.h>

#include "bundle/bundle.h"
#include "codesign/hash.h"
#include "sysext/codesign.h"
#include "util/report.h"

/* What verification learned about one piece of code. */
typedef struct sx_vresult {
    bool valid, is_signed, adhoc, has_cdhash, satisfies_dr;
    bool chain_trusted, anchor_is_apple;
    char *identifier, *team_id, *format;
    uint8_t cdhash[SX_CDHASH_LEN];
    time_t signing_time;
    STACK_OF(X509) *chain;
    plist_t entitlements;
    json_object *nested; /* array of nested results */
} sx_vresult;

/* Verify `path` (bundle or Mach-O) adding every problem to `report`. 0 valid,
 * SYSEXT_EINVALID with problems, others on hard errors. The daemon and the notary call this. */
int sx_verify_path(const char *path, const sysext_verify_options *o, sx_report *report,
                   sx_vresult *v);
void sx_vresult_free(sx_vresult *v);
json_object *sx_vresult_to_json(const sx_vresult *v, const char *shown);

#endif
