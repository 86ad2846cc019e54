/* The SHA-256 computed behind its writer equals the one computed after it, however the writes
 * are published. */
#include <criterion/criterion.h>

#include "util/common.h"
#include "codesign/hash.h"
#include "codesign/trailing_digest.h"

TestSuite(codesign_trailing_digest);

static void check(size_t len, size_t step)
{
    uint8_t *buf = malloc(len ? len : 1), want[32], got[32];
    cr_assert_not_null(buf);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    cr_assert_eq(sx_hash(SX_HASH_SHA256, buf, len, want), 0);
    sx_trailing_digest *t = sx_trailing_digest_start(buf);
    cr_assert_not_null(t);
    for (size_t at = step; step && at < len; at += step)
        sx_trailing_digest_publish(t, at);
    cr_assert_eq(sx_trailing_digest_finish(t, len, got), 0);
    cr_assert_arr_eq(got, want, 32, "len %zu, published every %zu", len, step);
    free(buf);
}

Test(codesign_trailing_digest, equals_the_digest_after_the_fact)
{
    check(0, 0);
    check(1, 0);
    check(63, 1);
    check(64, 64);
    check(100000, 1);
    check(100000, 4095);
    check(3u << 20, 65536);
    check(3u << 20, 0);
}

/* A publish that goes back (never done by the writer) changes nothing. */
Test(codesign_trailing_digest, publishing_less_than_before_is_ignored)
{
    uint8_t buf[300], want[32], got[32];
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(sx_hash(SX_HASH_SHA256, buf, sizeof(buf), want), 0);
    sx_trailing_digest *t = sx_trailing_digest_start(buf);
    sx_trailing_digest_publish(t, 200);
    sx_trailing_digest_publish(t, 100);
    cr_assert_eq(sx_trailing_digest_finish(t, sizeof(buf), got), 0);
    cr_assert_arr_eq(got, want, 32);
}
