/* The interleaved SHA-NI SHA-1/SHA-256 against OpenSSL: every length around the block and
 * padding boundaries, split updates, each digest alone and both together. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include "util/common.h"
#include "codesign/hash.h"
#include "codesign/shani.h"

#define BUF (3 * 4096 + 77)
static uint8_t data[BUF];

static void fill(void)
{
    uint32_t x = 0x12345678;
    for (size_t i = 0; i < sizeof(data); i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (uint8_t)(x >> 16);
    }
}

static void reference(const uint8_t *p, size_t n, uint8_t s1[20], uint8_t s256[32])
{
    unsigned l;
    cr_assert(EVP_Digest(p, n, s1, &l, EVP_sha1(), NULL));
    cr_assert(EVP_Digest(p, n, s256, &l, EVP_sha256(), NULL));
}

/* Hash p[0..n) fed in pieces of `step` bytes (0: one update). */
static void ours(const uint8_t *p, size_t n, size_t step, bool w1, bool w256, uint8_t s1[20],
                 uint8_t s256[32])
{
    sx_shani_ctx c;
    sx_shani_init(&c, w1, w256);
    if (!step)
        step = n ? n : 1;
    for (size_t off = 0; off < n; off += step)
        sx_shani_update(&c, p + off, n - off < step ? n - off : step);
    sx_shani_final(&c, s1, s256);
}

static void skip_without_shani(void)
{
    if (!sx_shani_available())
        cr_skip_test("no SHA extensions on this CPU");
}

Test(codesign_shani, every_length_to_300_all_modes)
{
    skip_without_shani();
    fill();
    for (size_t n = 0; n <= 300; n++) {
        uint8_t r1[20], r2[32];
        reference(data, n, r1, r2);
        for (int mode = 1; mode <= 3; mode++) {
            uint8_t a[20] = {0}, b[32] = {0};
            ours(data, n, 0, mode & 1, mode & 2, a, b);
            if (mode & 1)
                cr_assert_arr_eq(a, r1, 20, "sha1, length %zu, mode %d", n, mode);
            if (mode & 2)
                cr_assert_arr_eq(b, r2, 32, "sha256, length %zu, mode %d", n, mode);
        }
    }
}

Test(codesign_shani, split_updates)
{
    skip_without_shani();
    fill();
    static const size_t lens[] = {55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 4096, BUF};
    static const size_t steps[] = {1, 3, 63, 64, 65, 1000};
    for (size_t i = 0; i < SX_ARRAY_SIZE(lens); i++) {
        uint8_t r1[20], r2[32];
        reference(data, lens[i], r1, r2);
        for (size_t k = 0; k < SX_ARRAY_SIZE(steps); k++) {
            uint8_t a[20], b[32];
            ours(data, lens[i], steps[k], true, true, a, b);
            cr_assert_arr_eq(a, r1, 20, "sha1, length %zu, step %zu", lens[i], steps[k]);
            cr_assert_arr_eq(b, r2, 32, "sha256, length %zu, step %zu", lens[i], steps[k]);
        }
    }
}

Test(codesign_shani, known_answers)
{
    skip_without_shani();
    /* FIPS 180 "abc". */
    static const uint8_t k1[20] = {0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e,
                                   0x25, 0x71, 0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d};
    static const uint8_t k2[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                   0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                   0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t a[20], b[32];
    ours((const uint8_t *)"abc", 3, 0, true, true, a, b);
    cr_assert_arr_eq(a, k1, 20);
    cr_assert_arr_eq(b, k2, 32);
}

/* sx_hash takes this path for buffers of 4 KiB and more. */
Test(codesign_shani, sx_hash_large_buffers)
{
    skip_without_shani();
    fill();
    for (size_t n = 4096; n <= BUF; n += 1111) {
        uint8_t r1[20], r2[32], a[20], b[32];
        reference(data, n, r1, r2);
        cr_assert_eq(sx_hash(SX_HASH_SHA1, data, n, a), 0);
        cr_assert_eq(sx_hash(SX_HASH_SHA256, data, n, b), 0);
        cr_assert_arr_eq(a, r1, 20, "length %zu", n);
        cr_assert_arr_eq(b, r2, 32, "length %zu", n);
        cr_assert_eq(sx_hash(SX_HASH_SHA256_TRUNCATED, data, n, a), 0);
        cr_assert_arr_eq(a, r2, 20, "truncated, length %zu", n);
    }
}
