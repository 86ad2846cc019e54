/* CodeDirectory blobs (magic 0xfade0c02): build exactly as codesign writes them, and parse
 * hostile ones with every integrity check of reference section 2.12. */
#ifndef SX_CS_CODEDIRECTORY_H
#define SX_CS_CODEDIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codesign/hash.h"
#include "util/buf.h"

#define SX_CSMAGIC_CODEDIRECTORY 0xfade0c02u
#define SX_CSMAGIC_REQUIREMENT 0xfade0c00u
#define SX_CSMAGIC_REQUIREMENTS 0xfade0c01u
#define SX_CSMAGIC_EMBEDDED_SIGNATURE 0xfade0cc0u
#define SX_CSMAGIC_DETACHED_SIGNATURE 0xfade0cc1u
#define SX_CSMAGIC_BLOBWRAPPER 0xfade0b01u
#define SX_CSMAGIC_EMBEDDED_ENTITLEMENTS 0xfade7171u
#define SX_CSMAGIC_EMBEDDED_DER_ENTITLEMENTS 0xfade7172u

/* Special slots (reference 2.8). */
enum {
    SX_SLOT_INFO = 1,
    SX_SLOT_REQUIREMENTS = 2,
    SX_SLOT_RESOURCES = 3,
    SX_SLOT_APPLICATION = 4,
    SX_SLOT_ENTITLEMENTS = 5,
    SX_SLOT_REPSPECIFIC = 6,
    SX_SLOT_ENTITLEMENTS_DER = 7,
    SX_SLOT_MAX_SPECIAL = 11,
};
/* Superblob index types. */
#define SX_CSSLOT_CODEDIRECTORY 0u
#define SX_CSSLOT_ALTERNATE_CD 0x1000u
#define SX_CSSLOT_SIGNATURE 0x10000u

/* CD flags (reference 2.6). */
#define SX_CS_ADHOC 0x2u
#define SX_CS_RUNTIME 0x10000u
#define SX_CS_LINKER_SIGNED 0x20000u

typedef struct sx_cd_params {
    const char *identifier;  /* required */
    const char *team_id;     /* NULL: none (ad-hoc) */
    uint8_t hash_type;       /* SX_HASH_SHA256 or SX_HASH_SHA1 */
    uint32_t flags;          /* e.g. SX_CS_ADHOC */
    uint8_t page_size_log2;  /* 0: the whole code is one page (non-Mach-O) */
    uint64_t code_limit;     /* bytes covered */
    /* Code-slot hashes, already computed by the caller (n_code_slots * hash size bytes). */
    const uint8_t *code_hashes;
    uint32_t n_code_slots;
    /* special[n] is the hash for special slot n (1..SX_SLOT_MAX_SPECIAL), NULL = absent (zero). */
    const uint8_t *special[SX_SLOT_MAX_SPECIAL + 1];
    /* Mach-O only; all zero for a generic executable. */
    uint64_t exec_seg_base, exec_seg_limit, exec_seg_flags;
    uint32_t runtime_version;
    uint8_t platform; /* 0 for third-party code; Apple's own binaries carry a platform id */
} sx_cd_params;

/* Append a CodeDirectory blob to `out`, choosing the lowest version that can express it
 * (reference 2.3) and nSpecialSlots = highest filled special slot. */
int sx_cd_build(const sx_cd_params *p, sx_buf *out);

/* A parsed CodeDirectory. Pointers borrow from the blob given to sx_cd_parse(). */
typedef struct sx_cd {
    const uint8_t *blob;
    size_t len; /* the CD's own length field, <= the buffer given */
    uint32_t version, flags;
    uint32_t hash_offset, ident_offset, team_offset;
    uint32_t n_special, n_code;
    uint64_t code_limit;
    uint8_t hash_size, hash_type, platform, page_size_log2;
    uint64_t exec_seg_base, exec_seg_limit, exec_seg_flags;
    uint32_t runtime_version;
    const char *identifier; /* NUL-terminated inside the blob */
    const char *team_id;    /* NULL if none */
} sx_cd;

/* Validate and parse. `what` names the input in error messages ("Contents/_CodeSignature/
 * CodeDirectory"). Rejects every inconsistency of reference 2.12 with SYSEXT_EFORMAT; an
 * unknown hash type or a scatter vector gives SYSEXT_EUNSUPPORTED (a verifier may skip such
 * an alternate CD when another one is usable). */
int sx_cd_parse(const uint8_t *data, size_t len, const char *what, sx_cd *out);
/* Hash of special slot n, or NULL if n is beyond nSpecialSlots. An all-zero hash means absent. */
const uint8_t *sx_cd_special(const sx_cd *cd, unsigned n);
bool sx_cd_special_is_zero(const sx_cd *cd, unsigned n);
const uint8_t *sx_cd_code_slot(const sx_cd *cd, uint32_t i);
/* Full hash of the CD blob with its own hash type; `*n` = its size. cdhash = first 20 bytes. */
int sx_cd_full_hash(const sx_cd *cd, uint8_t out[SX_HASH_MAX_SIZE], size_t *n);
int sx_cd_cdhash(const sx_cd *cd, uint8_t out[SX_CDHASH_LEN]);
/* Preference among several CDs: 4 (SHA-384) > 2 (SHA-256) > 3 > 1 (reference 2.4). */
int sx_hash_type_rank(uint8_t hash_type);

#endif
