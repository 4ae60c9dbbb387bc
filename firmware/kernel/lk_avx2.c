/*
 * lk_avx2.c -- the AVX2 kernels: conv/dense tiles, depthwise, requantization and QLinearAdd.
 *
 * The per-ISA file beside the scalar reference (lk_ops.c), as TFLite Micro keeps its
 * optimized kernels apart; lk_simd.c packs the weights and gathers the patches, this file
 * only sums exactly and requantizes with lk_requant's float32 operations (lk_x86.h's
 * lk_requant8_avx2). Two tile modes (layouts in lk_simd.c):
 *   MODE_U8S8: uint8 x + 128 against int8 weights with |w| <= 64, vpmaddubsw (pair sums at
 *     most 2 * 255 * 64 = 32640, never saturating) then vpmaddwd by 1;
 *   MODE_I16:  int16 x - zx against any int8 weights, vpmaddwd (pair sums <= 2 * 255 * 128).
 * Every function carries its own target attribute, so the file builds with baseline flags
 * and lk_variant_supported() decides at run time. Empty on other targets.
 */
#include "lk_pack.h"
#include "lk_x86.h"

#if defined(LK_X86)
#define LD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

/* u8 x s8 -> int32 lanes: vpmaddubsw (pairs, exact for |w| <= 64) then vpmaddwd by 1 */
#define MADD8(acc, x, w) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones))

/* One tile: P pixels (patches xs[p], 4*K4 bytes each) x NBT blocks of 8 outputs starting
 * at block nb; requantized into ys[p][8*nb ...]. WIDE selects MODE_I16 (int16 pairs,
 * vpmaddwd) over MODE_U8S8 (uint8 x int8 quads, vpmaddubsw + vpmaddwd). P, NBT and WIDE are
 * compile-time constants at every call site, so the accumulators live in registers. */
#define MADD16(acc, x, w) _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
__attribute__((target("avx2"), always_inline))
static inline void avx2_tile(const uint8_t *const *xs, const int P, const lk_tile_args *t,
                             int32_t nb, const int NBT, const int WIDE, __m256 vlo, __m256 vhi,
                             __m256i vz, int8_t *const *ys)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const int32_t K4 = t->K4;
    const int8_t *w0 = t->tiles + (size_t)nb * K4 * 32u, *w1 = w0 + (size_t)K4 * 32u;
    __m256i a[4][2];
#pragma GCC unroll 4
    for (int p = 0; p < P; p++) a[p][0] = a[p][1] = _mm256_setzero_si256();
    for (int32_t kq = 0; kq < K4; kq++) {
        const __m256i wv0 = LD(w0 + 32 * kq);
        const __m256i wv1 = NBT == 2 ? LD(w1 + 32 * kq) : wv0;
#pragma GCC unroll 4
        for (int p = 0; p < P; p++) {
            int32_t q;
            memcpy(&q, xs[p] + 4 * kq, 4);
            const __m256i xb = _mm256_set1_epi32(q);
            if (WIDE) {
                a[p][0] = MADD16(a[p][0], xb, wv0);
                if (NBT == 2) a[p][1] = MADD16(a[p][1], xb, wv1);
            } else {
                a[p][0] = MADD8(a[p][0], xb, wv0);
                if (NBT == 2) a[p][1] = MADD8(a[p][1], xb, wv1);
            }
        }
    }
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
        for (int j = 0; j < NBT; j++) {
            const int32_t n0 = 8 * (nb + j), count = t->N - n0 < 8 ? t->N - n0 : 8;
            lk_requant8_avx2(a[p][j], t->bias + n0, t->mult + n0, vlo, vhi, vz, ys[p] + n0, count);
        }
}

/* P pixels through every output block of a MODE_U8S8 / MODE_I16 layer. */
__attribute__((target("avx2"), always_inline))
static inline void avx2_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K,
                               int32_t N, int32_t zy, int8_t *const *ys, const int WIDE)
{
    const lk_tile_args t = lk_tile_args_of(L, WIDE ? MODE_I16 : MODE_U8S8, K, N, zy);
    const __m256 vlo = _mm256_set1_ps(t.lo), vhi = _mm256_set1_ps(t.hi);
    const __m256i vz = _mm256_set1_epi32(t.zy);
    int32_t nb = 0;
    if (P == 4) {
        for (; nb + 2 <= t.NB; nb += 2) avx2_tile(xs, 4, &t, nb, 2, WIDE, vlo, vhi, vz, ys);
        if (nb < t.NB) avx2_tile(xs, 4, &t, nb, 1, WIDE, vlo, vhi, vz, ys);
        return;
    }
    for (int p = 0; p < P; p++) {
        for (nb = 0; nb + 2 <= t.NB; nb += 2) avx2_tile(xs + p, 1, &t, nb, 2, WIDE, vlo, vhi, vz, ys + p);
        if (nb < t.NB) avx2_tile(xs + p, 1, &t, nb, 1, WIDE, vlo, vhi, vz, ys + p);
    }
}

__attribute__((target("avx2")))
void lk_avx2_u8s8_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K,
                         int32_t N, int32_t zy, int8_t *const *ys)
{
    avx2_pixels(xs, P, L, K, N, zy, ys, 0);
}

__attribute__((target("avx2")))
void lk_avx2_i16_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K,
                        int32_t N, int32_t zy, int8_t *const *ys)
{
    avx2_pixels(xs, P, L, K, N, zy, ys, 1);
}

/* Depthwise on 16 channels at a time: int16 products are exact (|x - zx| <= 255,
 * |w| <= 128, so |p| <= 32640), widened to int32 before accumulating, and requantized
 * from the accumulator registers (no round trip through memory). The caller gives the
 * pixel's in-bounds taps as a rectangle (no bounds test per tap or block). */
__attribute__((target("avx2")))
int32_t lk_avx2_dw_pixel(const int8_t *xp, size_t xrow, size_t xcol, const int16_t *wp,
                         size_t wrow, int32_t C, int32_t ni, int32_t nj, int32_t zx,
                         const lk_layer *L, int32_t zy, int8_t *y)
{
    const int32_t C16 = C & ~15;
    const __m256i vzx = _mm256_set1_epi16((int16_t)zx);
    const __m256 vlo = _mm256_set1_ps((float)(L->act_min - zy));
    const __m256 vhi = _mm256_set1_ps((float)(L->act_max - zy));
    const __m256i vz = _mm256_set1_epi32(zy);
    for (int32_t c = 0; c < C16; c += 16) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
        for (int32_t i = 0; i < ni; i++) {
            const int8_t *xr = xp + i * xrow + c;
            const int16_t *wr = wp + i * wrow + c;
            for (int32_t j = 0; j < nj; j++) {
                const __m256i xv = _mm256_sub_epi16(
                    _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(xr + j * xcol))),
                    vzx);
                const __m256i pr = _mm256_mullo_epi16(xv, LD(wr + (size_t)j * C));
                a0 = _mm256_add_epi32(a0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(pr)));
                a1 = _mm256_add_epi32(a1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(pr, 1)));
            }
        }
        lk_requant8_avx2(a0, L->bias + c, L->multiplier + c, vlo, vhi, vz, y + c, 8);
        lk_requant8_avx2(a1, L->bias + c + 8, L->multiplier + c + 8, vlo, vhi, vz, y + c + 8, 8);
    }
    if (C - C16 < 8) return C16;
    /* one block of 8 (MobileNet's 8-channel first depthwise): 128-bit products, widened */
    const __m128i vzx8 = _mm_set1_epi16((int16_t)zx);
    __m256i a = _mm256_setzero_si256();
    for (int32_t i = 0; i < ni; i++) {
        const int8_t *xr = xp + i * xrow + C16;
        const int16_t *wr = wp + i * wrow + C16;
        for (int32_t j = 0; j < nj; j++) {
            const __m128i xv = _mm_sub_epi16(
                _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(const void *)(xr + j * xcol))), vzx8);
            const __m128i pr = _mm_mullo_epi16(xv, _mm_loadu_si128((const __m128i *)(const void *)(wr + (size_t)j * C)));
            a = _mm256_add_epi32(a, _mm256_cvtepi16_epi32(pr));
        }
    }
    lk_requant8_avx2(a, L->bias + C16, L->multiplier + C16, vlo, vhi, vz, y + C16, 8);
    return C16 + 8;
}

/* Four depthwise output pixels of one row whose taps are all in bounds, 16 channels at a
 * time: each weight vector is loaded once for the four pixels (px[p] = their first taps),
 * eight accumulators in registers. The same products and sums as lk_avx2_dw_pixel. */
__attribute__((target("avx2")))
int32_t lk_avx2_dw_pixels4(const int8_t *const *px, size_t xrow, size_t xcol, const int16_t *wp,
                           size_t wrow, int32_t C, int32_t ni, int32_t nj, int32_t zx,
                           const lk_layer *L, int32_t zy, int8_t *const *y)
{
    const int32_t C16 = C & ~15;
    const __m256i vzx = _mm256_set1_epi16((int16_t)zx);
    const __m256 vlo = _mm256_set1_ps((float)(L->act_min - zy));
    const __m256 vhi = _mm256_set1_ps((float)(L->act_max - zy));
    const __m256i vz = _mm256_set1_epi32(zy);
    for (int32_t c = 0; c < C16; c += 16) {
        __m256i a[8];
        for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_si256();
        for (int32_t i = 0; i < ni; i++)
            for (int32_t j = 0; j < nj; j++) {
                const size_t off = i * xrow + j * xcol + (size_t)c;
                const __m256i wv = LD(wp + i * wrow + (size_t)j * C + c);
                for (int p = 0; p < 4; p++) {
                    const __m256i xv = _mm256_sub_epi16(
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(px[p] + off))), vzx);
                    const __m256i pr = _mm256_mullo_epi16(xv, wv);
                    a[2 * p] = _mm256_add_epi32(a[2 * p], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(pr)));
                    a[2 * p + 1] = _mm256_add_epi32(a[2 * p + 1],
                                                    _mm256_cvtepi16_epi32(_mm256_extracti128_si256(pr, 1)));
                }
            }
        for (int p = 0; p < 4; p++) {
            lk_requant8_avx2(a[2 * p], L->bias + c, L->multiplier + c, vlo, vhi, vz, y[p] + c, 8);
            lk_requant8_avx2(a[2 * p + 1], L->bias + c + 8, L->multiplier + c + 8, vlo, vhi, vz,
                             y[p] + c + 8, 8);
        }
    }
    return C16;
}

/* lk_requant on the whole 8-lane blocks of a row of N outputs (lk_requant8_avx2); returns
 * how many it did (lk_simd.c's requant_row finishes the tail with lk_requant). */
__attribute__((target("avx2")))
int32_t lk_avx2_requant_row(const lk_layer *L, const int32_t *acc, const int32_t *bias, int32_t N,
                            int32_t zy, int8_t *y)
{
    const __m256 vlo = _mm256_set1_ps((float)(L->act_min - zy));
    const __m256 vhi = _mm256_set1_ps((float)(L->act_max - zy));
    const __m256i vz = _mm256_set1_epi32(zy);
    int32_t n = 0;
    for (; n + 8 <= N; n += 8)
        lk_requant8_avx2(LD(acc + n), bias + n, L->multiplier + n, vlo, vhi, vz, y + n, 8);
    return n;
}

/* QLinearAdd 8 elements at a time: vfmadd231ps rounds once, exactly like fmaf, so
 * t = fma(b, rb, fixed), y = fma(a, ra, t), clamp, round half to even (vcvtps2dq) is the
 * scalar lk_add bit for bit. */
__attribute__((target("avx2,fma")))
void lk_avx2_add(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, float ra, float rb,
                 float fixed, float lo, float hi)
{
    const __m256 vra = _mm256_set1_ps(ra), vrb = _mm256_set1_ps(rb), vfix = _mm256_set1_ps(fixed);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 fa = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(a + i))));
        const __m256 fb = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + i))));
        __m256 v = _mm256_fmadd_ps(fa, vra, _mm256_fmadd_ps(fb, vrb, vfix));
        v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
        const __m256i q = _mm256_cvtps_epi32(v);
        const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(void *)(y + i), _mm_packs_epi16(q16, q16));
    }
    for (; i < n; i++) {
        float v = fmaf((float)a[i], ra, fmaf((float)b[i], rb, fixed));
        y[i] = (int8_t)lk_round_even(lk_clampf(v, lo, hi));
    }
}

#else
typedef int lk_avx2_not_built; /* ISO C wants at least one declaration per file */
#endif
