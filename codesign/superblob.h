/* SuperBlob containers (0xfade0cc0 embedded, 0xfade0cc1 detached) and the Mach-O locator
 * for a signature embedded in a thin or universal binary. */
#ifndef SX_CS_SUPERBLOB_H
#define SX_CS_SUPERBLOB_H

#include <stddef.h>
#include <stdint.h>

#include "codesign/codedirectory.h"
#include "util/buf.h"

typedef struct sx_blob_ref {
    uint32_t type;        /* index type: 0, 2, 5, 7, 0x1000.., 0x10000 */
    uint32_t magic;
    const uint8_t *data;  /* the whole sub-blob, header included */
    size_t len;
} sx_blob_ref;

typedef struct sx_superblob {
    uint32_t magic;
    size_t count;
    sx_blob_ref *blobs;  /* owned array; data pointers borrow from the input */
    const uint8_t *base; /* the SuperBlob's first byte (borrowed) */
    size_t len;          /* its own length field */
} sx_superblob;

/* Parse and bounds-check a SuperBlob (magic 0xfade0cc0, 0xfade0cc1 or 0xfade0c01): every
 * index entry and sub-blob inside it, sub-blob lengths consistent, no duplicate index types.
 * Sub-blob contents are not parsed. Free with sx_superblob_free(). */
int sx_superblob_parse(const uint8_t *data, size_t len, const char *what, sx_superblob *out);
void sx_superblob_free(sx_superblob *sb);
/* The layout codesign writes and its strict reader demands (reference 1.3): index entries in
 * ascending type order, sub-blobs in that same order packed back to back from the end of the
 * index to the end of the SuperBlob. SYSEXT_EFORMAT naming the first gap or overlap. */
int sx_superblob_check_strict(const sx_superblob *sb, const char *what);
const sx_blob_ref *sx_superblob_find(const sx_superblob *sb, uint32_t type);

/* Every CodeDirectory of an embedded signature (reference 2.10, 2.12): slot 0 first, then
 * the alternates 0x1000..0x1004 in slot order, parsed into cds[] (pointers borrow from the
 * SuperBlob's input). SYSEXT_ENOTFOUND if slot 0 is missing ("code object is not signed at
 * all"); SYSEXT_EFORMAT for a malformed CD, a slot that is not a CD, or two CDs with the same
 * hash type. A CD with an unknown hash type (slot 0 included) is skipped; SYSEXT_EUNSUPPORTED
 * if that leaves none. *best = index in cds[] of the preferred CD (sx_hash_type_rank).
 * `cds` must hold SX_MAX_CDS entries. */
#define SX_MAX_CDS 6
int sx_superblob_cds(const sx_superblob *sb, const char *what, sx_cd *cds, size_t *n, size_t *best);

/* Build an embedded-signature SuperBlob from sub-blobs (sorted by type as codesign does). */
int sx_superblob_build(const sx_blob_ref *blobs, size_t n, sx_buf *out);
/* Same with another SuperBlob magic (0xfade0cc1 detached, 0xfade0c01 requirement set). Each
 * blob's `data`/`len` is copied as is; `magic` of the refs is not used. */
int sx_superblob_build_magic(uint32_t magic, const sx_blob_ref *blobs, size_t n, sx_buf *out);

/* One architecture slice of a Mach-O file and its LC_CODE_SIGNATURE, if any. */
typedef struct sx_macho_slice {
    uint32_t cputype, cpusubtype;
    uint64_t offset, size;          /* slice inside the file */
    uint64_t sig_offset, sig_size;  /* LC_CODE_SIGNATURE dataoff/datasize, relative to slice */
    uint64_t text_offset, text_size;/* __TEXT segment file range (execSeg) */
    uint32_t filetype;              /* MH_EXECUTE = 2, ... */
    int has_signature;
} sx_macho_slice;

/* True if the bytes start with a Mach-O or fat magic. */
int sx_macho_is_macho(const uint8_t *data, size_t len);
/* Find every slice (1 for thin) with its signature location. Caller frees *slices. */
int sx_macho_slices(const uint8_t *data, size_t len, const char *what, sx_macho_slice **slices,
                    size_t *n);

#endif
