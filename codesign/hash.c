#include "util/common.h"
#include "codesign/hash.h"
#include "codesign/shani.h"

#include <openssl/evp.h>

static const EVP_MD *md_of(uint8_t type)
{
    switch (type) {
    case SX_HASH_SHA1:
        return EVP_sha1();
    case SX_HASH_SHA256:
    case SX_HASH_SHA256_TRUNCATED:
        return EVP_sha256();
    case SX_HASH_SHA384:
        return EVP_sha384();
    default:
        return NULL;
    }
}

size_t sx_hash_size(uint8_t type)
{
    switch (type) {
    case SX_HASH_SHA1:
    case SX_HASH_SHA256_TRUNCATED:
        return 20;
    case SX_HASH_SHA256:
        return 32;
    case SX_HASH_SHA384:
        return 48;
    default:
        return 0;
    }
}

const char *sx_hash_name(uint8_t type)
{
    switch (type) {
    case SX_HASH_SHA1:
        return "sha1";
    case SX_HASH_SHA256:
        return "sha256";
    case SX_HASH_SHA256_TRUNCATED:
        return "sha256-truncated";
    case SX_HASH_SHA384:
        return "sha384";
    default:
        return "unknown";
    }
}

int sx_hash(uint8_t type, const void *data, size_t len, uint8_t *out)
{
    const EVP_MD *md = md_of(type);
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!md)
        return sx_err(SYSEXT_EUNSUPPORTED, "unknown hash type %u", type);
    /* Large buffers (a CodeResources, the hash cache) through SHA-NI when there is one. */
    if (type != SX_HASH_SHA384 && len >= 4096 && sx_shani_available()) {
        sx_shani_ctx c;
        bool one = type == SX_HASH_SHA1;
        sx_shani_init(&c, one, !one);
        sx_shani_update(&c, data, len);
        sx_shani_final(&c, full, full);
        memcpy(out, full, sx_hash_size(type));
        return 0;
    }
    if (!EVP_Digest(data, len, full, &n, md, NULL))
        return sx_err(SYSEXT_ERROR, "%s digest failed", sx_hash_name(type));
    memcpy(out, full, sx_hash_size(type));
    return 0;
}
