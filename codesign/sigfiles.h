/* The components of one signature, loaded from a bundle's _CodeSignature/ folder (detached,
 * as codesign writes them for a non-Mach-O main executable) or from a Mach-O slice's embedded
 * SuperBlob. Shared by verify and display. */
#ifndef SX_CS_SIGFILES_H
#define SX_CS_SIGFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codesign/codedirectory.h"

#define SX_MAX_CDS 6 /* slot 0 and alternates 0x1000..0x1004 */

/* Names of the detached component files (reference 7.1). */
#define SX_SIGFILE_CD "CodeDirectory"
#define SX_SIGFILE_REQS "CodeRequirements"
#define SX_SIGFILE_RESOURCES "CodeResources"
#define SX_SIGFILE_ENTS "CodeEntitlements"
#define SX_SIGFILE_ENTS_DER "CodeEntitlementDER"
#define SX_SIGFILE_CMS "CodeSignature"

typedef struct sx_blob {
    uint8_t *data; /* owned */
    size_t len;
    bool present;
} sx_blob;

typedef struct sx_sigfiles {
    char *dir;                 /* the _CodeSignature folder, or NULL for an embedded signature */
    sx_blob cd_blob[SX_MAX_CDS];
    sx_cd cd[SX_MAX_CDS];      /* parsed; cd[i] valid when cd_blob[i].present */
    size_t n_cds;              /* present CDs, slot 0 first */
    sx_blob reqs, resources, ents, ents_der, cms;
} sx_sigfiles;

/* Load every component from `sigdir`. SYSEXT_ENOTFOUND (message "code object is not signed at
 * all") when there is no CodeDirectory; SYSEXT_EFORMAT when a component is malformed. */
int sx_sigfiles_load(const char *sigdir, sx_sigfiles *out);
/* Load from a SuperBlob (an embedded signature). */
int sx_sigfiles_from_superblob(const uint8_t *data, size_t len, const char *what, sx_sigfiles *out);
void sx_sigfiles_free(sx_sigfiles *s);
/* The CD by the preference order of reference 2.4; NULL if none. */
const sx_cd *sx_sigfiles_best_cd(const sx_sigfiles *s);
/* cdhashes of every CD in ascending hash-type order (what the CMS attribute lists). */
size_t sx_sigfiles_cdhashes(const sx_sigfiles *s, uint8_t out[SX_MAX_CDS][SX_CDHASH_LEN],
                            uint8_t types[SX_MAX_CDS]);

#endif
