/*
 * lk_neon.c -- the plain NEON (aarch64) kernels: MODE_I8 conv/dense dot rows and the
 * 4-lane requantization of a row.
 *
 * The per-ISA file beside the scalar reference (lk_ops.c), as TFLite Micro keeps its
 * optimized kernels apart; lk_simd.c packs the weights (int8 rows [N][Kp], the input zero
 * point folded into the bias) and gathers the patches (raw int8 x, padding zx), this file
 * only sums exactly -- smull (int8 products fit int16: |p| <= 16384) + sadalp into int32 --
 * and requantizes with lk_requant's float32 operations (lk_arm.h). Empty on other targets.
 */
#include "lk_pack.h"
#include "lk_arm.h"

#if LK_ARM
/* acc[n] = sum_k x[k] * w[n*Kp + k] for n < N: one patch (Kp % 32 == 0) against every
 * weight row, four rows at a time. */
void lk_neon_dot_i8(const int8_t *x, const int8_t *w, int32_t Kp, int32_t N, int32_t *acc)
{
    int32_t n = 0;
    for (; n + 4 <= N; n += 4) {
        const int8_t *w0 = w + (size_t)n * Kp, *w1 = w0 + Kp, *w2 = w1 + Kp, *w3 = w2 + Kp;
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int32_t k = 0; k < Kp; k += 16) {
            const int8x16_t xv = vld1q_s8(x + k);
            int8x16_t wv = vld1q_s8(w0 + k);
            a0 = vpadalq_s16(a0, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
            a0 = vpadalq_s16(a0, vmull_high_s8(xv, wv));
            wv = vld1q_s8(w1 + k);
            a1 = vpadalq_s16(a1, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
            a1 = vpadalq_s16(a1, vmull_high_s8(xv, wv));
            wv = vld1q_s8(w2 + k);
            a2 = vpadalq_s16(a2, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
            a2 = vpadalq_s16(a2, vmull_high_s8(xv, wv));
            wv = vld1q_s8(w3 + k);
            a3 = vpadalq_s16(a3, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
            a3 = vpadalq_s16(a3, vmull_high_s8(xv, wv));
        }
        acc[n] = vaddvq_s32(a0);
        acc[n + 1] = vaddvq_s32(a1);
        acc[n + 2] = vaddvq_s32(a2);
        acc[n + 3] = vaddvq_s32(a3);
    }
    for (; n < N; n++) {
        const int8_t *w0 = w + (size_t)n * Kp;
        int32x4_t a0 = vdupq_n_s32(0);
        for (int32_t k = 0; k < Kp; k += 16) {
            const int8x16_t xv = vld1q_s8(x + k), wv = vld1q_s8(w0 + k);
            a0 = vpadalq_s16(a0, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
            a0 = vpadalq_s16(a0, vmull_high_s8(xv, wv));
        }
        acc[n] = vaddvq_s32(a0);
    }
}

/* MODE_I8 (plain NEON) pixels: one dot row per output, 64 outputs at a time on the stack. */
void lk_neon_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                    int32_t zy, int8_t *const *ys)
{
    const int32_t Kp = lk_kpad(K);
    const int8_t *w = (const int8_t *)lk_packed_w(L);
    const int32_t *bias = lk_i8_bias(L, N, Kp);
    const float lo = (float)(L->act_min - zy), hi = (float)(L->act_max - zy);
    int32_t acc[64];
    for (int p = 0; p < P; p++)
        for (int32_t n0 = 0; n0 < N; n0 += 64) {
            const int32_t nc = N - n0 < 64 ? N - n0 : 64;
            lk_neon_dot_i8((const int8_t *)xs[p], w + (size_t)n0 * Kp, Kp, nc, acc);
            int32_t i = 0;
            for (; i + 4 <= nc; i += 4)
                lk_requant4_neon(vld1q_s32(acc + i), bias + n0 + i, L->multiplier + n0 + i,
                              vdupq_n_f32(lo), vdupq_n_f32(hi), vdupq_n_s32(zy), ys[p] + n0 + i, 4);
            for (; i < nc; i++)
                ys[p][n0 + i] = lk_requant(acc[i] + bias[n0 + i], L->multiplier[n0 + i], lo, hi, zy);
        }
}

/* Depthwise (MODE_DW, layouts in lk_pack.h), used by both ARM variants: per output pixel
 * and block of 16 channels, each tap is two int16x8 loads of the padded input against the
 * packed weights, smlal/smlal2 into four int32x4 accumulators kept in registers through
 * lk_requant4_neon. No tap is bounds-checked (the input is padded); T is a compile-time
 * constant for 3x3. */
/* lk_requant on 4 lanes (lk_requant4_neon's operations), kept as int32 for narrowing. */
static inline int32x4_t dw_requant4(int32x4_t acc, const int32_t *bias, const float *mult,
                                    float32x4_t vlo, float32x4_t vhi, int32x4_t vz)
{
    float32x4_t v = vmulq_f32(vcvtq_f32_s32(vaddq_s32(acc, vld1q_s32(bias))), vld1q_f32(mult));
    v = vminq_f32(vmaxq_f32(v, vlo), vhi);
    return vaddq_s32(vcvtnq_s32_f32(v), vz);
}

/* Store the first n (< 16) bytes of q with fixed-size stores (no library call). */
static inline void dw_store_tail(int8_t *y, int8x16_t q, int32_t n)
{
    if (n & 8) { vst1_s8(y, vget_low_s8(q)); y += 8; q = vextq_s8(q, q, 8); }
    if (n & 4) { const uint32_t w = vgetq_lane_u32(vreinterpretq_u32_s8(q), 0); memcpy(y, &w, 4); y += 4; q = vextq_s8(q, q, 4); }
    if (n & 2) { const uint16_t w = vgetq_lane_u16(vreinterpretq_u16_s8(q), 0); memcpy(y, &w, 2); y += 2; q = vextq_s8(q, q, 2); }
    if (n & 1) *y = vgetq_lane_s8(q, 0);
}

static inline void dw_pixel(const lk_dw_args *a, const int16_t *x, const int T, float32x4_t vlo,
                            float32x4_t vhi, int32x4_t vz, int8_t *y)
{
    const int16_t *w = a->w;
    for (int32_t c = 0; c < a->Cp; c += 16, w += 16 * lk_dw_t2(T)) {
        int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
        for (int t = 0; t < T; t++) {
            const int16x8_t x0 = vld1q_s16(x + c + a->off[t]), x1 = vld1q_s16(x + c + a->off[t] + 8);
            const int16x8_t w0 = vld1q_s16(w + 16 * t), w1 = vld1q_s16(w + 16 * t + 8);
            acc[0] = vmlal_s16(acc[0], vget_low_s16(x0), vget_low_s16(w0));
            acc[1] = vmlal_high_s16(acc[1], x0, w0);
            acc[2] = vmlal_s16(acc[2], vget_low_s16(x1), vget_low_s16(w1));
            acc[3] = vmlal_high_s16(acc[3], x1, w1);
        }
        int32x4_t q[4];
        for (int j = 0; j < 4; j++)
            q[j] = dw_requant4(acc[j], a->bias + c + 4 * j, a->mult + c + 4 * j, vlo, vhi, vz);
        const int8x16_t q8 = vcombine_s8(vqmovn_s16(vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]))),
                                         vqmovn_s16(vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]))));
        if (a->C - c >= 16) vst1q_s8(y + c, q8);
        else dw_store_tail(y + c, q8, a->C - c);
    }
}

static inline void dw_layer(const lk_dw_args *a, const int16_t *x, int8_t *y, const int T)
{
    const float32x4_t vlo = vdupq_n_f32(a->lo), vhi = vdupq_n_f32(a->hi);
    const int32x4_t vz = vdupq_n_s32(a->zy);
    for (int32_t oy = 0; oy < a->OH; oy++) {
        const int16_t *xr = x + (ptrdiff_t)oy * a->row_step;
        int8_t *yr = y + (size_t)oy * a->OW * a->C;
        for (int32_t ox = 0; ox < a->OW; ox++)
            dw_pixel(a, xr + (ptrdiff_t)ox * a->pix_step, T, vlo, vhi, vz, yr + (size_t)ox * a->C);
    }
}

void lk_neon_depthwise(const lk_dw_args *a, const int16_t *x, int8_t *y)
{
    if (a->T == 9) dw_layer(a, x, y, 9);          /* 3x3: every tap unrolled */
    else dw_layer(a, x, y, a->T);
}

/* Max-pooling, one output pixel: the channel-wise max of the n (>= 1) window pixels at
 * x + off[i] (C channels each), 16 channels per smax, then one at a time. */
void lk_neon_max_taps(const int8_t *x, const ptrdiff_t *off, int32_t n, int32_t C, int8_t *y)
{
    int32_t c = 0;
    for (; c + 16 <= C; c += 16) {
        int8x16_t v = vld1q_s8(x + off[0] + c);
        for (int32_t i = 1; i < n; i++) v = vmaxq_s8(v, vld1q_s8(x + off[i] + c));
        vst1q_s8(y + c, v);
    }
    for (; c < C; c++) {
        int8_t v = x[off[0] + c];
        for (int32_t i = 1; i < n; i++) v = x[off[i] + c] > v ? x[off[i] + c] : v;
        y[c] = v;
    }
}

/* lk_requant on the whole 4-lane blocks of a row of N outputs (measured under qemu: the
 * depthwise layer of cnn2d_32 spent ~120k of its instructions per inference in the scalar
 * loop); returns how many it did (lk_simd.c's requant_row finishes the tail). */
int32_t lk_neon_requant_row(const lk_layer *L, const int32_t *acc, const int32_t *bias, int32_t N,
                            int32_t zy, int8_t *y)
{
    const float32x4_t vlo = vdupq_n_f32((float)(L->act_min - zy));
    const float32x4_t vhi = vdupq_n_f32((float)(L->act_max - zy));
    const int32x4_t vz = vdupq_n_s32(zy);
    int32_t n = 0;
    for (; n + 4 <= N; n += 4)
        lk_requant4_neon(vld1q_s32(acc + n), bias + n, L->multiplier + n, vlo, vhi, vz, y + n, 4);
    return n;
}

#else
typedef int lk_neon_not_built; /* ISO C wants at least one declaration per file */
#endif
