/*
 * lk_simd.c -- conv and dense with packed weights for the SIMD variants.
 *
 * Every path reduces a layer to exact int32 dot products, then requantizes each element
 * with the same lk_requant as the scalar kernel, so the variants can only differ in how
 * they add integers -- which is exact -- never in rounding.
 *
 *   int16 paths (AVX2 vpmaddwd, NEON smlal): weights widened to int16 [N][Kp] at prepare;
 *     per output pixel the receptive field is gathered ("im2col" of one pixel) as
 *     int16 (x - zx), with 0 at padded positions; acc = bias + dot.
 *     |x - zx| <= 255 and |w| <= 128, so a vpmaddwd pair sum (<= 65280) cannot overflow.
 *   SDOT path (NEON dot product): weights stay int8 [N][Kp]; the pixel gather copies raw
 *     int8 x with zx at padded positions; the zero point is folded into the bias at
 *     prepare: acc = (bias - zx * sum(w)) + sum(x * w), an exact int32 identity.
 *   depthwise (groups == C == Cout), all SIMD variants: weights transposed to int16
 *     [KH*KW][C] so the per-channel loop is contiguous and the compiler vectorizes it.
 *
 * Kp is K rounded up to 16 (zeros in both the weights and the gathered pixel). Layers of
 * other shapes (general groups, depthwise with channel multiplier) stay on the scalar
 * kernel (lk_prepare leaves their `packed` NULL).
 *
 * The ISA-specific functions use function-level target attributes, so the file builds
 * with baseline flags and lk_variant_supported() decides at run time.
 */
#include "lk_internal.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define LK_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__GNUC__)
#define LK_ARM 1
#include <arm_neon.h>
#endif

enum { PACK_NONE = 0, PACK_GEMM = 1, PACK_DEPTHWISE = 2 };

static int32_t kpad(int32_t k) { return (k + 15) & ~15; }

static int variant_has_simd(int variant)
{
#if LK_X86
    if (variant == LK_VARIANT_AVX2) return 1;
#endif
#if LK_ARM
    if (variant == LK_VARIANT_NEON || variant == LK_VARIANT_NEON_DOTPROD) return 1;
#endif
    (void)variant;
    return 0;
}

/* Which packed path a layer takes, with its N (outputs) and K (dot length). */
static int pack_kind(const lk_model *m, const lk_layer *L, int32_t *N, int32_t *K)
{
    if (L->op == LK_OP_DENSE) {
        const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
        *K = X->shape[X->ndim - 1];
        *N = Y->shape[Y->ndim - 1];
        return PACK_GEMM;
    }
    if (L->op == LK_OP_CONV) {
        lk_conv_geom g;
        lk_conv_geometry(m, L, &g);
        *N = g.CO;
        *K = g.K;
        if (g.G == 1) return PACK_GEMM;
        if (g.G == g.C && g.CO == g.C) { *K = g.KH * g.KW; return PACK_DEPTHWISE; }
    }
    return PACK_NONE;
}

size_t lk_simd_packed_size(const lk_model *m, const lk_layer *L, int variant)
{
    int32_t N, K;
    if (!variant_has_simd(variant)) return 0;
    switch (pack_kind(m, L, &N, &K)) {
    case PACK_GEMM:
        if (variant == LK_VARIANT_NEON_DOTPROD)
            return (size_t)N * (size_t)kpad(K) + 4u * (size_t)N;   /* int8 w + folded bias */
        return 2u * (size_t)N * (size_t)kpad(K);                   /* int16 w */
    case PACK_DEPTHWISE:
        return 2u * (size_t)N * (size_t)K;                         /* int16 [KH*KW][C] */
    default:
        return 0;
    }
}

size_t lk_simd_scratch_size(const lk_model *m, const lk_layer *L, int variant)
{
    int32_t N, K;
    if (!variant_has_simd(variant)) return 0;
    switch (pack_kind(m, L, &N, &K)) {
    case PACK_GEMM:
        return 2u * (size_t)kpad(K) + 4u * (size_t)N + 64u;
    case PACK_DEPTHWISE:
        return 4u * (size_t)N + 64u;
    default:
        return 0;
    }
}

void lk_simd_pack(const lk_model *m, lk_layer *L, int variant, void *buf)
{
    int32_t N, K;
    const int kind = pack_kind(m, L, &N, &K);
    const int32_t Kp = kpad(K);
    if (kind == PACK_GEMM && variant == LK_VARIANT_NEON_DOTPROD) {
        int8_t *w8 = (int8_t *)buf;
        int32_t *bias = (int32_t *)(void *)(w8 + (size_t)N * Kp);
        const int32_t zx = m->tensors[L->in[0]].zero_point;
        for (int32_t n = 0; n < N; n++) {
            int32_t sum = 0;
            for (int32_t k = 0; k < Kp; k++) {
                const int8_t v = k < K ? L->weight[(size_t)n * K + k] : 0;
                w8[(size_t)n * Kp + k] = v;
                sum += v;
            }
            bias[n] = L->bias[n] - zx * sum;
        }
    } else if (kind == PACK_GEMM) {
        int16_t *w16 = (int16_t *)buf;
        for (int32_t n = 0; n < N; n++)
            for (int32_t k = 0; k < Kp; k++)
                w16[(size_t)n * Kp + k] = k < K ? L->weight[(size_t)n * K + k] : 0;
    } else if (kind == PACK_DEPTHWISE) {
        int16_t *w16 = (int16_t *)buf;   /* weight [C][KH][KW][1] -> [KH*KW][C] */
        for (int32_t c = 0; c < N; c++)
            for (int32_t k = 0; k < K; k++) w16[(size_t)k * N + c] = L->weight[(size_t)c * K + k];
    }
}

/* ------------------------------------------------------------------ dot-product cores */
/* acc[n] = sum_k x[k] * w[n*Kp + k] for n < N; Kp is a multiple of 16. */

#if LK_X86
__attribute__((target("avx2")))
static void dot16_avx2(const int16_t *x, const int16_t *w, int32_t Kp, int32_t N, int32_t *acc)
{
    int32_t n = 0;
    for (; n + 4 <= N; n += 4) {
        const int16_t *w0 = w + (size_t)n * Kp, *w1 = w0 + Kp, *w2 = w1 + Kp, *w3 = w2 + Kp;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (int32_t k = 0; k < Kp; k += 16) {
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)(x + k));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(const void *)(w0 + k))));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(const void *)(w1 + k))));
            a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(const void *)(w2 + k))));
            a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(xv, _mm256_loadu_si256((const __m256i *)(const void *)(w3 + k))));
        }
        /* per 128-bit lane: hadd(hadd(a0,a1), hadd(a2,a3)) = [a0, a1, a2, a3] partial sums */
        const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
        const __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        _mm_storeu_si128((__m128i *)(void *)(acc + n), r);
    }
    for (; n < N; n++) {
        const int16_t *w0 = w + (size_t)n * Kp;
        __m256i a0 = _mm256_setzero_si256();
        for (int32_t k = 0; k < Kp; k += 16)
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(
                _mm256_loadu_si256((const __m256i *)(const void *)(x + k)),
                _mm256_loadu_si256((const __m256i *)(const void *)(w0 + k))));
        __m128i r = _mm_add_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1));
        r = _mm_hadd_epi32(r, r);
        r = _mm_hadd_epi32(r, r);
        acc[n] = _mm_cvtsi128_si32(r);
    }
}
#endif

#if LK_ARM
static void dot16_neon(const int16_t *x, const int16_t *w, int32_t Kp, int32_t N, int32_t *acc)
{
    int32_t n = 0;
    for (; n + 4 <= N; n += 4) {
        const int16_t *w0 = w + (size_t)n * Kp, *w1 = w0 + Kp, *w2 = w1 + Kp, *w3 = w2 + Kp;
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int32_t k = 0; k < Kp; k += 8) {
            const int16x8_t xv = vld1q_s16(x + k);
            int16x8_t wv = vld1q_s16(w0 + k);
            a0 = vmlal_s16(a0, vget_low_s16(xv), vget_low_s16(wv));
            a0 = vmlal_high_s16(a0, xv, wv);
            wv = vld1q_s16(w1 + k);
            a1 = vmlal_s16(a1, vget_low_s16(xv), vget_low_s16(wv));
            a1 = vmlal_high_s16(a1, xv, wv);
            wv = vld1q_s16(w2 + k);
            a2 = vmlal_s16(a2, vget_low_s16(xv), vget_low_s16(wv));
            a2 = vmlal_high_s16(a2, xv, wv);
            wv = vld1q_s16(w3 + k);
            a3 = vmlal_s16(a3, vget_low_s16(xv), vget_low_s16(wv));
            a3 = vmlal_high_s16(a3, xv, wv);
        }
        acc[n] = vaddvq_s32(a0);
        acc[n + 1] = vaddvq_s32(a1);
        acc[n + 2] = vaddvq_s32(a2);
        acc[n + 3] = vaddvq_s32(a3);
    }
    for (; n < N; n++) {
        const int16_t *w0 = w + (size_t)n * Kp;
        int32x4_t a0 = vdupq_n_s32(0);
        for (int32_t k = 0; k < Kp; k += 8) {
            const int16x8_t xv = vld1q_s16(x + k), wv = vld1q_s16(w0 + k);
            a0 = vmlal_s16(a0, vget_low_s16(xv), vget_low_s16(wv));
            a0 = vmlal_high_s16(a0, xv, wv);
        }
        acc[n] = vaddvq_s32(a0);
    }
}

__attribute__((target("arch=armv8.2-a+dotprod")))
static void dot8_sdot(const int8_t *x, const int8_t *w, int32_t Kp, int32_t N, int32_t *acc)
{
    int32_t n = 0;
    for (; n + 4 <= N; n += 4) {
        const int8_t *w0 = w + (size_t)n * Kp, *w1 = w0 + Kp, *w2 = w1 + Kp, *w3 = w2 + Kp;
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int32_t k = 0; k < Kp; k += 16) {
            const int8x16_t xv = vld1q_s8(x + k);
            a0 = vdotq_s32(a0, xv, vld1q_s8(w0 + k));
            a1 = vdotq_s32(a1, xv, vld1q_s8(w1 + k));
            a2 = vdotq_s32(a2, xv, vld1q_s8(w2 + k));
            a3 = vdotq_s32(a3, xv, vld1q_s8(w3 + k));
        }
        acc[n] = vaddvq_s32(a0);
        acc[n + 1] = vaddvq_s32(a1);
        acc[n + 2] = vaddvq_s32(a2);
        acc[n + 3] = vaddvq_s32(a3);
    }
    for (; n < N; n++) {
        const int8_t *w0 = w + (size_t)n * Kp;
        int32x4_t a0 = vdupq_n_s32(0);
        for (int32_t k = 0; k < Kp; k += 16) a0 = vdotq_s32(a0, vld1q_s8(x + k), vld1q_s8(w0 + k));
        acc[n] = vaddvq_s32(a0);
    }
}
#endif

/* The dot products of one gathered pixel / input row against every packed weight row. */
static void dots(int variant, const void *patch, const void *packed, int32_t Kp, int32_t N,
                 int32_t *acc)
{
#if LK_X86
    if (variant == LK_VARIANT_AVX2) { dot16_avx2(patch, packed, Kp, N, acc); return; }
#endif
#if LK_ARM
    if (variant == LK_VARIANT_NEON_DOTPROD) { dot8_sdot(patch, packed, Kp, N, acc); return; }
    if (variant == LK_VARIANT_NEON) { dot16_neon(patch, packed, Kp, N, acc); return; }
#endif
    (void)variant; (void)patch; (void)packed; (void)Kp; (void)N; (void)acc;
}

/* Bias the packed path adds: the folded one (SDOT) or the layer's own. */
static const int32_t *gemm_bias(const lk_layer *L, int variant, int32_t N, int32_t Kp)
{
    if (variant == LK_VARIANT_NEON_DOTPROD)
        return (const int32_t *)(const void *)((const int8_t *)L->packed + (size_t)N * Kp);
    return L->bias;
}

static void requant_row(const lk_layer *L, const int32_t *acc, const int32_t *bias, int32_t N,
                        int32_t zy, int8_t *y)
{
    const float lo = (float)(L->act_min - zy), hi = (float)(L->act_max - zy);
    for (int32_t n = 0; n < N; n++) y[n] = lk_requant(acc[n] + bias[n], L->multiplier[n], lo, hi, zy);
}

int lk_simd_dense(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch)
{
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    const int32_t K = X->shape[X->ndim - 1], N = Y->shape[Y->ndim - 1], Kp = kpad(K);
    const int32_t rows = lk_tensor_size(X) / K, zx = X->zero_point, v = m->variant;
    int32_t *acc = (int32_t *)scratch;
    void *patch = acc + ((N + 15) & ~15);
    const int32_t *bias = gemm_bias(L, v, N, Kp);
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *x = (const int8_t *)(arena + X->offset) + (size_t)r * K;
        if (v == LK_VARIANT_NEON_DOTPROD) {
            int8_t *p8 = (int8_t *)patch;
            memcpy(p8, x, (size_t)K);
            memset(p8 + K, 0, (size_t)(Kp - K));
        } else {
            int16_t *p16 = (int16_t *)patch;
            for (int32_t k = 0; k < K; k++) p16[k] = (int16_t)(x[k] - zx);
            for (int32_t k = K; k < Kp; k++) p16[k] = 0;
        }
        dots(v, patch, L->packed, Kp, N, acc);
        requant_row(L, acc, bias, N, Y->zero_point, (int8_t *)(arena + Y->offset) + (size_t)r * N);
    }
    return LK_OK;
}

static int depthwise(const lk_model *m, const lk_layer *L, uint8_t *arena, int32_t *acc)
{
    lk_conv_geom g;
    lk_conv_geometry(m, L, &g);
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    const int8_t *x = (const int8_t *)(arena + X->offset);
    int8_t *y = (int8_t *)(arena + Y->offset);
    const int16_t *w = (const int16_t *)L->packed;
    const int32_t zx = X->zero_point, C = g.C;
    for (int32_t oy = 0; oy < g.OH; oy++)
        for (int32_t ox = 0; ox < g.OW; ox++) {
            for (int32_t c = 0; c < C; c++) acc[c] = 0;
            for (int32_t ki = 0; ki < g.KH; ki++) {
                const int32_t iy = oy * g.SH - g.PT + ki * g.DH;
                if (iy < 0 || iy >= g.H) continue;
                for (int32_t kj = 0; kj < g.KW; kj++) {
                    const int32_t ix = ox * g.SW - g.PL + kj * g.DW;
                    if (ix < 0 || ix >= g.W) continue;
                    const int8_t *xp = x + ((size_t)iy * g.W + ix) * C;
                    const int16_t *wp = w + (size_t)(ki * g.KW + kj) * C;
                    for (int32_t c = 0; c < C; c++) acc[c] += (int32_t)(int16_t)(xp[c] - zx) * wp[c];
                }
            }
            requant_row(L, acc, L->bias, C, Y->zero_point, y + ((size_t)oy * g.OW + ox) * C);
        }
    return LK_OK;
}

int lk_simd_conv(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch)
{
    int32_t N, K;
    if (pack_kind(m, L, &N, &K) == PACK_DEPTHWISE) return depthwise(m, L, arena, scratch);
    lk_conv_geom g;
    lk_conv_geometry(m, L, &g);
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    const int8_t *x = (const int8_t *)(arena + X->offset);
    int8_t *y = (int8_t *)(arena + Y->offset);
    const int32_t Kp = kpad(g.K), C = g.C, zx = X->zero_point, v = m->variant;
    int32_t *acc = (int32_t *)scratch;
    void *patch = acc + ((N + 15) & ~15);
    const int32_t *bias = gemm_bias(L, v, N, Kp);
    int8_t *p8 = (int8_t *)patch;
    int16_t *p16 = (int16_t *)patch;
    if (v == LK_VARIANT_NEON_DOTPROD) memset(p8, 0, (size_t)Kp);
    else memset(p16, 0, 2u * (size_t)Kp);
    for (int32_t oy = 0; oy < g.OH; oy++)
        for (int32_t ox = 0; ox < g.OW; ox++) {
            /* gather this pixel's receptive field in weight order [ki][kj][c] */
            for (int32_t ki = 0; ki < g.KH; ki++) {
                const int32_t iy = oy * g.SH - g.PT + ki * g.DH;
                for (int32_t kj = 0; kj < g.KW; kj++) {
                    const int32_t ix = ox * g.SW - g.PL + kj * g.DW;
                    const size_t at = (size_t)(ki * g.KW + kj) * C;
                    const int inside = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
                    const int8_t *xp = inside ? x + ((size_t)iy * g.W + ix) * C : x;
                    if (v == LK_VARIANT_NEON_DOTPROD) {
                        if (inside) memcpy(p8 + at, xp, (size_t)C);
                        else memset(p8 + at, zx, (size_t)C);
                    } else if (inside) {
                        for (int32_t c = 0; c < C; c++) p16[at + c] = (int16_t)(xp[c] - zx);
                    } else {
                        for (int32_t c = 0; c < C; c++) p16[at + c] = 0;
                    }
                }
            }
            dots(v, patch, L->packed, Kp, N, acc);
            requant_row(L, acc, bias, N, Y->zero_point, y + ((size_t)oy * g.OW + ox) * N);
        }
    return LK_OK;
}
