/*
 * lk_arm.h -- what the aarch64 SIMD files share (lk_neon.c: NEON; lk_sdot.c: NEON with the
 * dot-product extension). Not part of the API; empty on other targets.
 */
#ifndef LK_ARM_H
#define LK_ARM_H

#include "lk_internal.h"

#if defined(__aarch64__) && defined(__GNUC__)
#define LK_ARM 1
#include <arm_neon.h>

/* lk_requant on 4 lanes: float32 convert and multiply (separate instructions, no fusion),
 * clamp, round half to even (fcvtns), zero-point add, narrow. */
static inline void lk_requant4_neon(int32x4_t acc, const int32_t *bias, const float *mult,
                                    float32x4_t vlo, float32x4_t vhi, int32x4_t vz, int8_t *y,
                                    int32_t count)
{
    float32x4_t v = vmulq_f32(vcvtq_f32_s32(vaddq_s32(acc, vld1q_s32(bias))), vld1q_f32(mult));
    v = vminq_f32(vmaxq_f32(v, vlo), vhi);
    const int32x4_t q = vaddq_s32(vcvtnq_s32_f32(v), vz);
    const int8x8_t q8 = vqmovn_s16(vcombine_s16(vqmovn_s32(q), vqmovn_s32(q)));
    if (count >= 4) {   /* one 32-bit store: a variable-size memcpy is a library call, which
                         * took ~110k of cnn2d_32's instructions per inference (qemu count) */
        const uint32_t w = vget_lane_u32(vreinterpret_u32_s8(q8), 0);
        memcpy(y, &w, 4);
        return;
    }
    int8_t tmp[8];
    vst1_s8(tmp, q8);
    memcpy(y, tmp, (size_t)count);
}
#else
#define LK_ARM 0
#endif

#endif /* LK_ARM_H */
