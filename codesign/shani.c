/* See shani.h. The block functions follow the structure of Intel's published SHA-NI sample
 * code (message schedule with sha*msg1/sha*msg2, four rounds per sha1rnds4 and two per
 * sha256rnds2). */
#include "util/common.h"
#include "codesign/shani.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SX_HAVE_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define SX_HAVE_SHANI 0
#endif

static void be32_out(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
}

#if SX_HAVE_SHANI

#define TGT __attribute__((target("sha,sse4.1,ssse3")))

static const uint32_t K256[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

/* ---- SHA-256: 16 quads of 4 rounds; W[q] holds message words 4q..4q+3 ---- */
#define S256_DECL                                                                                \
    __m128i a_st0, a_st1, a_save0, a_save1, aw[16], am;                                          \
    const __m128i a_mask = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL)

#define S256_LOAD(state)                                                                         \
    do {                                                                                         \
        __m128i t_ = _mm_loadu_si128((const __m128i *)&(state)[0]);                              \
        a_st1 = _mm_loadu_si128((const __m128i *)&(state)[4]);                                   \
        t_ = _mm_shuffle_epi32(t_, 0xB1);                                                        \
        a_st1 = _mm_shuffle_epi32(a_st1, 0x1B);                                                  \
        a_st0 = _mm_alignr_epi8(t_, a_st1, 8);                                                   \
        a_st1 = _mm_blend_epi16(a_st1, t_, 0xF0);                                                \
    } while (0)

#define S256_STORE(state)                                                                        \
    do {                                                                                         \
        __m128i t_ = _mm_shuffle_epi32(a_st0, 0x1B);                                             \
        a_st1 = _mm_shuffle_epi32(a_st1, 0xB1);                                                  \
        a_st0 = _mm_blend_epi16(t_, a_st1, 0xF0);                                                \
        a_st1 = _mm_alignr_epi8(a_st1, t_, 8);                                                   \
        _mm_storeu_si128((__m128i *)&(state)[0], a_st0);                                         \
        _mm_storeu_si128((__m128i *)&(state)[4], a_st1);                                         \
    } while (0)

#define S256_BEGIN() (a_save0 = a_st0, a_save1 = a_st1)
#define S256_END() (a_st0 = _mm_add_epi32(a_st0, a_save0), a_st1 = _mm_add_epi32(a_st1, a_save1))

#define S256_Q(q, data)                                                                          \
    do {                                                                                         \
        if ((q) < 4) {                                                                           \
            aw[q] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((data) + 16 * (q))),      \
                                     a_mask);                                                    \
        } else {                                                                                 \
            __m128i m_ = _mm_sha256msg1_epu32(aw[((q) + 12) & 15], aw[((q) + 13) & 15]);         \
            m_ = _mm_add_epi32(m_, _mm_alignr_epi8(aw[((q) + 15) & 15], aw[((q) + 14) & 15], 4)); \
            aw[q] = _mm_sha256msg2_epu32(m_, aw[((q) + 15) & 15]);                               \
        }                                                                                        \
        am = _mm_add_epi32(aw[q], _mm_load_si128((const __m128i *)&K256[4 * (q)]));              \
        a_st1 = _mm_sha256rnds2_epu32(a_st1, a_st0, am);                                         \
        a_st0 = _mm_sha256rnds2_epu32(a_st0, a_st1, _mm_shuffle_epi32(am, 0x0E));                \
    } while (0)

/* ---- SHA-1: 20 groups of 4 rounds; W[g] holds message words 4g..4g+3 ---- */
#define S1_DECL                                                                                  \
    __m128i b_abcd, b_e, b_prev, b_in, b_save_abcd, b_save_e, bw[20];                            \
    const __m128i b_mask = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL)

#define S1_LOAD(state)                                                                           \
    do {                                                                                         \
        b_abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(state)), 0x1B);             \
        b_e = _mm_set_epi32((int)(state)[4], 0, 0, 0);                                           \
    } while (0)

#define S1_STORE(state)                                                                          \
    do {                                                                                         \
        _mm_storeu_si128((__m128i *)(state), _mm_shuffle_epi32(b_abcd, 0x1B));                   \
        (state)[4] = (uint32_t)_mm_extract_epi32(b_e, 3);                                        \
    } while (0)

#define S1_BEGIN() (b_save_abcd = b_abcd, b_save_e = b_e)
#define S1_END()                                                                                 \
    (b_e = _mm_sha1nexte_epu32(b_prev, b_save_e), b_abcd = _mm_add_epi32(b_abcd, b_save_abcd))

#define S1_G(g, f, data)                                                                         \
    do {                                                                                         \
        if ((g) < 4)                                                                             \
            bw[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)((data) + 16 * (g))),      \
                                     b_mask);                                                    \
        else                                                                                     \
            bw[g] = _mm_sha1msg2_epu32(                                                          \
                _mm_xor_si128(_mm_sha1msg1_epu32(bw[(g) < 4 ? 0 : (g)-4], bw[(g) < 3 ? 0 : (g)-3]), \
                              bw[(g) < 2 ? 0 : (g)-2]),                                          \
                bw[(g) < 1 ? 0 : (g)-1]);                                                        \
        b_in = (g) == 0 ? _mm_add_epi32(b_e, bw[0]) : _mm_sha1nexte_epu32(b_prev, bw[g]);        \
        b_prev = b_abcd;                                                                         \
        b_abcd = _mm_sha1rnds4_epu32(b_abcd, b_in, f);                                           \
    } while (0)

#define S1_ALL(d)                                                                                \
    S1_G(0, 0, d); S1_G(1, 0, d); S1_G(2, 0, d); S1_G(3, 0, d); S1_G(4, 0, d);                  \
    S1_G(5, 1, d); S1_G(6, 1, d); S1_G(7, 1, d); S1_G(8, 1, d); S1_G(9, 1, d);                  \
    S1_G(10, 2, d); S1_G(11, 2, d); S1_G(12, 2, d); S1_G(13, 2, d); S1_G(14, 2, d);             \
    S1_G(15, 3, d); S1_G(16, 3, d); S1_G(17, 3, d); S1_G(18, 3, d); S1_G(19, 3, d)

#define S256_ALL(d)                                                                              \
    S256_Q(0, d); S256_Q(1, d); S256_Q(2, d); S256_Q(3, d); S256_Q(4, d); S256_Q(5, d);          \
    S256_Q(6, d); S256_Q(7, d); S256_Q(8, d); S256_Q(9, d); S256_Q(10, d); S256_Q(11, d);        \
    S256_Q(12, d); S256_Q(13, d); S256_Q(14, d); S256_Q(15, d)

/* Interleaved: a SHA-1 group and a SHA-256 quad in turn. */
#define BOTH_ALL(d)                                                                              \
    S1_G(0, 0, d); S256_Q(0, d); S1_G(1, 0, d); S256_Q(1, d); S1_G(2, 0, d); S256_Q(2, d);       \
    S1_G(3, 0, d); S256_Q(3, d); S1_G(4, 0, d); S256_Q(4, d); S1_G(5, 1, d); S256_Q(5, d);       \
    S1_G(6, 1, d); S256_Q(6, d); S1_G(7, 1, d); S256_Q(7, d); S1_G(8, 1, d); S256_Q(8, d);       \
    S1_G(9, 1, d); S256_Q(9, d); S1_G(10, 2, d); S256_Q(10, d); S1_G(11, 2, d);                  \
    S256_Q(11, d); S1_G(12, 2, d); S256_Q(12, d); S1_G(13, 2, d); S256_Q(13, d);                 \
    S1_G(14, 2, d); S256_Q(14, d); S1_G(15, 3, d); S256_Q(15, d); S1_G(16, 3, d);                \
    S1_G(17, 3, d); S1_G(18, 3, d); S1_G(19, 3, d)

TGT static void blocks_sha1(uint32_t st[5], const uint8_t *p, size_t n)
{
    S1_DECL;
    S1_LOAD(st);
    for (; n; n--, p += 64) {
        S1_BEGIN();
        S1_ALL(p);
        S1_END();
    }
    S1_STORE(st);
}

TGT static void blocks_sha256(uint32_t st[8], const uint8_t *p, size_t n)
{
    S256_DECL;
    S256_LOAD(st);
    for (; n; n--, p += 64) {
        S256_BEGIN();
        S256_ALL(p);
        S256_END();
    }
    S256_STORE(st);
}

TGT static void blocks_both(uint32_t s1[5], uint32_t s256[8], const uint8_t *p, size_t n)
{
    S1_DECL;
    S256_DECL;
    S1_LOAD(s1);
    S256_LOAD(s256);
    for (; n; n--, p += 64) {
        S1_BEGIN();
        S256_BEGIN();
        BOTH_ALL(p);
        S1_END();
        S256_END();
    }
    S1_STORE(s1);
    S256_STORE(s256);
}

static int detect(void)
{
    unsigned a, b, c, d;
    if (getenv("SYSEXT_NO_SHANI"))
        return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) || !(c & (1u << 19)))
        return 0; /* SSSE3, SSE4.1 */
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 29)) ? 1 : 0; /* SHA */
}

bool sx_shani_available(void)
{
    static int state = -1; /* racy but idempotent */
    int s = __atomic_load_n(&state, __ATOMIC_RELAXED);
    if (s < 0) {
        s = detect();
        __atomic_store_n(&state, s, __ATOMIC_RELAXED);
    }
    return s == 1;
}

#else

static void blocks_sha1(uint32_t st[5], const uint8_t *p, size_t n)
{
    (void)st, (void)p, (void)n;
}
static void blocks_sha256(uint32_t st[8], const uint8_t *p, size_t n)
{
    (void)st, (void)p, (void)n;
}
static void blocks_both(uint32_t s1[5], uint32_t s256[8], const uint8_t *p, size_t n)
{
    (void)s1, (void)s256, (void)p, (void)n;
}

bool sx_shani_available(void)
{
    return false;
}

#endif

static void blocks(sx_shani_ctx *c, const uint8_t *p, size_t n)
{
    if (c->want1 && c->want256)
        blocks_both(c->s1, c->s256, p, n);
    else if (c->want1)
        blocks_sha1(c->s1, p, n);
    else
        blocks_sha256(c->s256, p, n);
}

void sx_shani_init(sx_shani_ctx *c, bool want1, bool want256)
{
    static const uint32_t i1[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    static const uint32_t i256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->s1, i1, sizeof(i1));
    memcpy(c->s256, i256, sizeof(i256));
    c->total = 0;
    c->nbuf = 0;
    c->want1 = want1;
    c->want256 = want256 || !want1;
}

void sx_shani_update(sx_shani_ctx *c, const uint8_t *p, size_t n)
{
    c->total += n;
    if (c->nbuf) {
        size_t k = 64 - c->nbuf < n ? 64 - c->nbuf : n;
        memcpy(c->buf + c->nbuf, p, k);
        c->nbuf += k;
        p += k;
        n -= k;
        if (c->nbuf < 64)
            return;
        blocks(c, c->buf, 1);
        c->nbuf = 0;
    }
    if (n >= 64) {
        blocks(c, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    if (n) {
        memcpy(c->buf, p, n);
        c->nbuf = n;
    }
}

void sx_shani_final(sx_shani_ctx *c, uint8_t sha1[20], uint8_t sha256[32])
{
    uint8_t pad[128];
    uint64_t bits = c->total * 8;
    size_t n = c->nbuf, padlen = n < 56 ? 64 : 128;
    memcpy(pad, c->buf, n);
    pad[n] = 0x80;
    memset(pad + n + 1, 0, padlen - n - 1);
    for (int i = 0; i < 8; i++)
        pad[padlen - 1 - i] = (uint8_t)(bits >> (8 * i));
    blocks(c, pad, padlen / 64);
    if (c->want1 && sha1)
        for (int i = 0; i < 5; i++)
            be32_out(sha1 + 4 * i, c->s1[i]);
    if (c->want256 && sha256)
        for (int i = 0; i < 8; i++)
            be32_out(sha256 + 4 * i, c->s256[i]);
}
