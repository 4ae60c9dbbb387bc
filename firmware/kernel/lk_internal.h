/*
 * lk_internal.h -- shared inline arithmetic and kernel prototypes (not part of the API).
 *
 * The inline functions here ARE lanthorn.device.int8 in C; every variant uses them for the
 * final per-element step, so the variants can only differ in how they sum integers
 * (exactly) -- never in rounding.
 */
#ifndef LK_INTERNAL_H
#define LK_INTERNAL_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lk.h"

#if defined(__FAST_MATH__)
#error "lanthorn's kernel must not be built with -ffast-math (it breaks exact rounding)"
#endif

/* Whether this compiler can emit the x86 VNNI variants (lk_vnni.c): GCC >= 11, clang >= 12.
 * Older ones still build AVX2; the VNNI variants then report "unsupported". */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11))
#define LK_X86_VNNI 1
#else
#define LK_X86_VNNI 0
#endif

/* Round half to even for |v| <= 2**22 (callers clamp first), in the default rounding
 * mode, without libm: adding and subtracting 1.5 * 2**23 leaves v's integer part in the
 * float32 mantissa, rounded by the FPU's own round-to-nearest-even. Where float
 * expressions are evaluated in extra precision (x87), fall back to nearbyintf. */
static inline float lk_round_even(float v)
{
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
    return nearbyintf(v);
#else
    /* int8.ROUND_EVEN_SHIFTER: the C side of the one rounding int8.py specifies */
    const float round_even_shifter = 12582912.0f; /* 1.5 * 2**23 */
    float t = v + round_even_shifter; /* two roundings: no fast-math, so never re-associated */
    return t - round_even_shifter;
#endif
}

static inline float lk_clampf(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* int8.requantize: float32(acc) * m, clamp to [lo - zp, hi - zp], round, + zp. The bounds
 * are integers, so clamping before rounding equals clamping after. */
static inline int8_t lk_requant(int32_t acc, float m, float lo_f, float hi_f, int32_t zp)
{
    float v = (float)acc * m;
    v = lk_clampf(v, lo_f, hi_f);
    return (int8_t)((int32_t)lk_round_even(v) + zp);
}

/* sum over i < n of (x[i] - zx) * w[i]: the inner product of conv and dense. On cores with
 * the 32-bit SIMD (DSP) extension (Cortex-M4/M7/M33) four products per step: sxtb16
 * splits 4 int8 into two pairs of int16, ssub16 takes the zero point off (|x - zx| <= 255,
 * never saturating), smlad adds both products of a pair -- exact integer arithmetic. */
#if defined(__ARM_FEATURE_SIMD32) && !defined(LK_NO_SIMD32)
#include <arm_acle.h>
#endif
static inline int32_t lk_dot_zx(const int8_t *x, const int8_t *w, int32_t n, int32_t zx)
{
    int32_t acc = 0, i = 0;
#if defined(__ARM_FEATURE_SIMD32) && !defined(LK_NO_SIMD32)
    const int16x2_t z2 = (int16x2_t)(((uint32_t)(uint16_t)zx << 16) | (uint16_t)zx);
    for (; i + 4 <= n; i += 4) {
        uint32_t xv, wv;
        memcpy(&xv, x + i, 4);
        memcpy(&wv, w + i, 4);
        const int16x2_t x02 = __ssub16(__sxtb16((int8x4_t)xv), z2);
        const int16x2_t x13 = __ssub16(__sxtb16((int8x4_t)((xv >> 8) | (xv << 24))), z2);
        acc = __smlad(x02, __sxtb16((int8x4_t)wv), acc);
        acc = __smlad(x13, __sxtb16((int8x4_t)((wv >> 8) | (wv << 24))), acc);
    }
#endif
    for (; i < n; i++) acc += ((int32_t)x[i] - zx) * (int32_t)w[i];
    return acc;
}

/* fmaf(a, r, t) for an integer |a| < 2**9: the exact a * r + t rounded once to float32
 * (half to even), in integer arithmetic. For cores without a hardware FMA, where libm's fmaf
 * would pull in double-precision software floating point. Exact: the product a * m_r has at
 * most 33 bits; both terms are placed with >= 28 zero bits below their significands, the
 * smaller is aligned with a sticky bit, and the int64 sum is rounded to 24 bits. Results
 * below the float32 normal range flush to zero (irrelevant here: they round to integer 0). */
static inline float lk_fma_int(int32_t a, float r, float t)
{
    uint32_t rb, tb;
    memcpy(&rb, &r, 4);
    memcpy(&tb, &t, 4);
    const int32_t er = (int32_t)((rb >> 23) & 0xFF), et = (int32_t)((tb >> 23) & 0xFF);
    int64_t mr = (int64_t)((rb & 0x7FFFFF) | (er ? 0x800000u : 0));
    int64_t mt = (int64_t)((tb & 0x7FFFFF) | (et ? 0x800000u : 0));
    if (rb >> 31) mr = -mr;
    if (tb >> 31) mt = -mt;
    int64_t P = (int64_t)a * mr * ((int64_t)1 << 28);    /* |P| < 2**61 */
    int64_t T = mt * ((int64_t)1 << 37);                 /* |T| < 2**61 */
    int32_t ep = (er ? er : 1) - 150 - 28, eT = (et ? et : 1) - 150 - 37;
    if (P == 0) ep = eT;
    if (T == 0) eT = ep;
    const int32_t E = ep > eT ? ep : eT;
    int64_t *small = ep < eT ? &P : &T;
    const int32_t D = ep < eT ? eT - ep : ep - eT;
    if (D > 0) {                                       /* align, keeping a sticky bit */
        const int64_t v = *small;
        const uint64_t mag = (uint64_t)(v < 0 ? -v : v);
        uint64_t sh = D >= 63 ? 0 : mag >> D;
        if (D >= 63 ? mag != 0 : (mag & (((uint64_t)1 << D) - 1)) != 0) sh |= 1;
        *small = v < 0 ? -(int64_t)sh : (int64_t)sh;
    }
    const int64_t S = P + T;
    if (S == 0) return 0.0f;
    uint64_t m = (uint64_t)(S < 0 ? -S : S);
    int32_t h = 63;
    while (!((m >> h) & 1)) h--;
    int32_t shift = h - 23, e = E;
    if (shift > 0) {
        const uint64_t rem = m & (((uint64_t)1 << shift) - 1), half = (uint64_t)1 << (shift - 1);
        m >>= shift;
        if (rem > half || (rem == half && (m & 1))) m++;
        if (m >> 24) { m >>= 1; shift++; }
        e += shift;
    } else {
        m <<= -shift;
        e += shift;
    }
    const int32_t bexp = e + 23 + 127;                 /* m in [2**23, 2**24) */
    if (bexp <= 0) return 0.0f;
    const uint32_t bits = ((S < 0) ? 0x80000000u : 0u) | ((uint32_t)bexp << 23) | ((uint32_t)m & 0x7FFFFF);
    float y;
    memcpy(&y, &bits, 4);
    return y;
}

/* The FMA lk_add uses: the hardware's where it has one (or libm's, on hosted systems),
 * the exact integer version on cores without an FPU FMA (Cortex-M0/M3). */
#if defined(LK_SOFT_FMA) || (defined(__arm__) && !defined(__ARM_FEATURE_FMA))
#define LK_FMA(a, r, t) lk_fma_int((a), (r), (t))
#else
#define LK_FMA(a, r, t) fmaf((float)(a), (r), (t))
#endif

static inline int32_t lk_tensor_size(const lk_tensor *t)
{
    int32_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* Convolution geometry, read once per layer. */
typedef struct lk_conv_geom {
    int32_t H, W, C, OH, OW, CO, KH, KW, SH, SW, DH, DW, PT, PL, G, CG, CPG, K;
} lk_conv_geom;

void lk_conv_geometry(const lk_model *m, const lk_layer *L, lk_conv_geom *g);

/* Scalar kernels (the reference C, also the microcontroller path). */
int lk_conv_scalar(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_dense_scalar(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_maxpool(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_avgpool(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_global_avgpool(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_add(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_concat(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_reshape(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_transpose(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_lut(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_mul(const lk_model *m, const lk_layer *L, uint8_t *arena);
int lk_gather(const lk_model *m, const lk_layer *L, uint8_t *arena);

/* Packed-weight SIMD paths: lk_simd.c packs and drives them and dispatches to the per-ISA
 * files (lk_avx2.c, lk_vnni.c, lk_neon.c, lk_sdot.c; layouts in lk_pack.h). */
size_t lk_simd_packed_size(const lk_model *m, const lk_layer *L, int variant);
void lk_simd_pack(const lk_model *m, lk_layer *L, int variant, void *buf);
size_t lk_simd_scratch_size(const lk_model *m, const lk_layer *L, int variant);
int lk_simd_conv(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch);
int lk_simd_dense(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch);
int lk_simd_add(const lk_model *m, const lk_layer *L, uint8_t *arena); /* or lk_add */
int lk_simd_maxpool(const lk_model *m, const lk_layer *L, uint8_t *arena); /* or lk_maxpool */

#endif /* LK_INTERNAL_H */
