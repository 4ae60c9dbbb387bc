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

/* Depthwise (MODE_DW, layouts in lk_pack.h): per output pixel and block of 16 channels,
 * two taps at a time -- vpunpcklwd/hwd interleave the two taps' int16 inputs, one vpmaddwd
 * against the pre-interleaved weights adds both products of 8 channels into int32 lanes --
 * with the accumulators kept in registers through requantization. The input is padded, so
 * no tap is bounds-checked; T is a compile-time constant for 3x3 (unrolled) and a loop
 * bound otherwise. Accumulator lane order: channels 0-3, 8-11 (a0) and 4-7, 12-15 (a1),
 * which vpackssdw turns back into 0-15; bias and multipliers are packed in lane order. */
/* Requantize one pixel's block of 16 channels from its two accumulators (lane order above)
 * and store its C - c (at most 16) int8 outputs. */
__attribute__((target("avx2"), always_inline))
static inline void dw_store(__m256i a0, __m256i a1, const int32_t *bias, const float *mult,
                            __m256 vlo, __m256 vhi, __m256i vz, int8_t *y, int32_t n)
{
    const __m256 v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(a0, LD(bias))), _mm256_loadu_ps(mult));
    const __m256 v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(a1, LD(bias + 8))), _mm256_loadu_ps(mult + 8));
    const __m256i q0 = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v0, vlo), vhi)), vz);
    const __m256i q1 = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v1, vlo), vhi)), vz);
    const __m256i q16 = _mm256_packs_epi32(q0, q1);   /* channels 0-7 | 8-15 */
    const __m128i q8 = _mm_packs_epi16(_mm256_castsi256_si128(q16), _mm256_extracti128_si256(q16, 1));
    if (n >= 16) {
        _mm_storeu_si128((__m128i *)(void *)y, q8);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)(void *)tmp, q8);
        memcpy(y, tmp, (size_t)n);
    }
}

/* P (1 or 2) pixels whose windows start at x and x + ps: two independent chains share each
 * weight load. */
__attribute__((target("avx2"), always_inline))
static inline void dw_pixels(const int16_t *restrict x, const ptrdiff_t ps, const int P,
                             const int16_t *restrict w, const ptrdiff_t *restrict off,
                             const int32_t *restrict bias, const float *restrict mult,
                             const int32_t C, const int32_t Cp, const int T, __m256 vlo,
                             __m256 vhi, __m256i vz, int8_t *restrict y)
{
    for (int32_t c = 0; c < Cp; c += 16, w += 16 * lk_dw_t2(T)) {
        __m256i acc[2][2];
        for (int p = 0; p < P; p++) acc[p][0] = acc[p][1] = _mm256_setzero_si256();
        for (int t = 0; t < T; t += 2) {
            const __m256i wl = LD(w + 16 * t), wh = LD(w + 16 * t + 16);
            for (int p = 0; p < P; p++) {
                const int16_t *xc = x + p * ps + c;
                const __m256i xa = LD(xc + off[t]);
                const __m256i xb = t + 1 < T ? LD(xc + off[t + 1]) : _mm256_setzero_si256();
                acc[p][0] = _mm256_add_epi32(acc[p][0], _mm256_madd_epi16(_mm256_unpacklo_epi16(xa, xb), wl));
                acc[p][1] = _mm256_add_epi32(acc[p][1], _mm256_madd_epi16(_mm256_unpackhi_epi16(xa, xb), wh));
            }
        }
        for (int p = 0; p < P; p++)
            dw_store(acc[p][0], acc[p][1], bias + c, mult + c, vlo, vhi, vz, y + (size_t)p * C + c, C - c);
    }
}

/* Every output pixel, two at a time, with the layer's fields in locals (a byte store could
 * alias *a). */
__attribute__((target("avx2"), always_inline))
static inline void dw_layer(const lk_dw_args *a, const int16_t *x, int8_t *y, const int T)
{
    const __m256 vlo = _mm256_set1_ps(a->lo), vhi = _mm256_set1_ps(a->hi);
    const __m256i vz = _mm256_set1_epi32(a->zy);
    const int32_t C = a->C, Cp = a->Cp, OH = a->OH, OW = a->OW;
    const ptrdiff_t ps = a->pix_step, rs = a->row_step;
    const int16_t *w = a->w;
    const int32_t *bias = a->bias;
    const float *mult = a->mult;
    const ptrdiff_t *off = a->off;
    for (int32_t oy = 0; oy < OH; oy++) {
        const int16_t *xr = x + (ptrdiff_t)oy * rs;
        int8_t *yr = y + (size_t)oy * OW * C;
        int32_t ox = 0;
        for (; ox + 2 <= OW; ox += 2)
            dw_pixels(xr + (ptrdiff_t)ox * ps, ps, 2, w, off, bias, mult, C, Cp, T, vlo, vhi, vz, yr + (size_t)ox * C);
        if (ox < OW)
            dw_pixels(xr + (ptrdiff_t)ox * ps, ps, 1, w, off, bias, mult, C, Cp, T, vlo, vhi, vz, yr + (size_t)ox * C);
    }
}

__attribute__((target("avx2")))
void lk_avx2_depthwise(const lk_dw_args *a, const int16_t *x, int8_t *y)
{
    if (a->T == 9) dw_layer(a, x, y, 9);          /* 3x3: every tap unrolled */
    else dw_layer(a, x, y, a->T);
}

/* dst[k] = src[k] - zx as int16 for k < n: depthwise's padded input rows (lk_simd.c), 16
 * values per vpmovsxbw, instead of the baseline build's SSE2 loop. */
__attribute__((target("avx2")))
void lk_avx2_widen_row(const int8_t *src, int16_t *dst, int32_t n, int32_t zx)
{
    const __m256i vzx = _mm256_set1_epi16((int16_t)zx);
    int32_t k = 0;
    for (; k + 16 <= n; k += 16)
        _mm256_storeu_si256((__m256i *)(void *)(dst + k), _mm256_sub_epi16(
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(src + k))), vzx));
    for (; k < n; k++) dst[k] = (int16_t)(src[k] - zx);
}

/* Max-pooling, one output pixel: the channel-wise max of the n (>= 1) window pixels at
 * x + off[i] (C channels each), 32 channels per vpmaxsb, then 16, then one at a time. */
__attribute__((target("avx2")))
void lk_avx2_max_taps(const int8_t *x, const ptrdiff_t *off, int32_t n, int32_t C, int8_t *y)
{
    int32_t c = 0;
    for (; c + 32 <= C; c += 32) {
        __m256i v = LD(x + off[0] + c);
        for (int32_t i = 1; i < n; i++) v = _mm256_max_epi8(v, LD(x + off[i] + c));
        _mm256_storeu_si256((__m256i *)(void *)(y + c), v);
    }
    for (; c + 16 <= C; c += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(x + off[0] + c));
        for (int32_t i = 1; i < n; i++)
            v = _mm_max_epi8(v, _mm_loadu_si128((const __m128i *)(const void *)(x + off[i] + c)));
        _mm_storeu_si128((__m128i *)(void *)(y + c), v);
    }
    for (; c < C; c++) {
        int8_t v = x[off[0] + c];
        for (int32_t i = 1; i < n; i++) v = x[off[i] + c] > v ? x[off[i] + c] : v;
        y[c] = v;
    }
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
