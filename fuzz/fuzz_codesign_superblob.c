/* SuperBlob parsing, every CodeDirectory inside, and the Mach-O locator. */
#include "util/common.h"
#include "codesign/codedirectory.h"
#include "codesign/requirement.h"
#include "codesign/superblob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch_cd(const uint8_t *p, size_t n)
{
    sx_cd cd;
    if (sx_cd_parse(p, n, "fuzz CD", &cd) < 0)
        return;
    uint8_t h[SX_HASH_MAX_SIZE];
    size_t hn;
    volatile uint8_t sink = 0;
    sx_cd_full_hash(&cd, h, &hn);
    sx_cd_cdhash(&cd, h);
    for (unsigned s = 0; s <= cd.n_special + 1 && s <= 64; s++) {
        const uint8_t *x = sx_cd_special(&cd, s);
        if (x)
            sink ^= x[0] ^ x[cd.hash_size - 1];
        sink ^= (uint8_t)sx_cd_special_is_zero(&cd, s);
    }
    for (uint32_t i = 0; i < cd.n_code && i < 4096; i++) {
        const uint8_t *x = sx_cd_code_slot(&cd, i);
        sink ^= x[0] ^ x[cd.hash_size - 1];
    }
    sink ^= (uint8_t)strlen(cd.identifier);
    if (cd.team_id)
        sink ^= (uint8_t)strlen(cd.team_id);
    (void)sink;
}

static void touch_superblob(const uint8_t *p, size_t n, unsigned depth)
{
    sx_superblob sb;
    if (sx_superblob_parse(p, n, "fuzz SuperBlob", &sb) < 0)
        return;
    for (size_t i = 0; i < sb.count; i++) {
        const sx_blob_ref *b = &sb.blobs[i];
        if (b->magic == SX_CSMAGIC_CODEDIRECTORY)
            touch_cd(b->data, b->len);
        else if (b->magic == SX_CSMAGIC_EMBEDDED_SIGNATURE && depth == 0)
            touch_superblob(b->data, b->len, depth + 1);
        else if (b->magic == SX_CSMAGIC_REQUIREMENTS) {
            const uint8_t *r;
            size_t rn;
            if (sx_reqset_find(b->data, b->len, SX_REQ_DESIGNATED, &r, &rn) == 0) {
                sx_buf t = SX_BUF_INIT;
                sx_req_to_text(r, rn, &t);
                sx_buf_free(&t);
            }
        }
    }
    sx_superblob_check_strict(&sb, "fuzz");
    sx_cd cds[SX_MAX_CDS];
    size_t ncd, best;
    if (sx_superblob_cds(&sb, "fuzz", cds, &ncd, &best) == 0 && (ncd == 0 || best >= ncd))
        __builtin_trap();
    sx_buf re = SX_BUF_INIT;
    sx_superblob_build(sb.blobs, sb.count, &re);
    sx_buf_free(&re);
    sx_superblob_free(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sx_macho_is_macho(data, size)) {
        sx_macho_slice *s = NULL;
        size_t n = 0;
        if (sx_macho_slices(data, size, "fuzz Mach-O", &s, &n) == 0) {
            for (size_t i = 0; i < n; i++)
                if (s[i].has_signature)
                    touch_superblob(data + s[i].offset + s[i].sig_offset, s[i].sig_size, 0);
            free(s);
        }
        return 0;
    }
    touch_superblob(data, size, 0);
    touch_cd(data, size);
    return 0;
}
